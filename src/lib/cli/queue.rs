//! `pure-uploadscript queue list | retry | drop`: the administrator's view
//! of the upload queue and its controls. They work while the daemon runs:
//! a request is appended under the queue's writers' lock and the daemon
//! picks it up within a second.

use std::io::{self, Write};
use std::path::Path;

use crate::cli::uploadscript::{ExitStatus, QueueCommand};
use crate::upload::queue::format::Entry;
use crate::upload::queue::state::{Item, ItemState, Queue};
use crate::upload::queue::store::{QueueError, Snapshot, Store};
use crate::upload::queue::{self, between, now_us};

impl From<&QueueError> for ExitStatus {
    /// A request that does not apply is a usage error; a queue that cannot
    /// be read or written, a runtime error.
    fn from(error: &QueueError) -> Self {
        match error {
            QueueError::Request(_) => ExitStatus::Usage,
            QueueError::Io { .. } | QueueError::Busy(_) => ExitStatus::Runtime,
        }
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn seconds(us: u64) -> String {
    let s = us / 1_000_000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}min", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// The text table: one line per record, oldest first.
pub fn text(snapshot: &Snapshot, now: u64, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "ID\tSTATE\tAGE\tATTEMPTS\tNEXT\tUSER\tFILE")?;
    for i in snapshot.queue.items() {
        let next = match i.state {
            ItemState::Pending { due_us } if due_us > now => {
                format!("in {}", seconds(due_us - now))
            }
            _ => "-".into(),
        };
        writeln!(
            out,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            i.id,
            i.state.as_str(),
            seconds(now.saturating_sub(i.queued_us)),
            i.attempts,
            next,
            lossy(&i.user),
            lossy(&i.file)
        )?;
    }
    if !snapshot.reader_running {
        writeln!(out, "# no reader holds the queue: nothing runs now")?;
    }
    if let Some(damage) = &snapshot.damaged {
        writeln!(
            out,
            "# damaged: {damage}; the reader sets it aside at its next start"
        )?;
    }
    Ok(())
}

/// One JSON object per record, one per line.
pub fn json(snapshot: &Snapshot, now: u64, out: &mut dyn Write) -> io::Result<()> {
    for i in snapshot.queue.items() {
        let due = match i.state {
            ItemState::Pending { due_us } if due_us > now => Some(due_us),
            _ => None,
        };
        let value = serde_json::json!({
            "id": i.id,
            "state": i.state.as_str(),
            "queued_usec": i.queued_us,
            "age_usec": now.saturating_sub(i.queued_us),
            "attempts": i.attempts,
            "failures": i.failures,
            "due_usec": due,
            "user": lossy(&i.user),
            "path": lossy(&i.path),
            "file": lossy(&i.file),
        });
        writeln!(out, "{value}")?;
    }
    Ok(())
}

fn log(message_id: &str, item: &Item, what: &str) {
    let file = lossy(&item.file);
    tracing::info!(
        MESSAGE_ID = message_id,
        QUEUE_ID = item.id,
        UPLOAD_FILE = file.as_str(),
        UPLOAD_VUSER = lossy(&item.user).as_str(),
        QUEUE_ATTEMPT = item.attempts,
        QUEUE_WAIT_USEC = between(item.queued_us, now_us()).as_micros() as u64,
        "{file}: {what} (record {})",
        item.id
    );
}

/// Runs one queue command on the queue in `dir`, writing to `out`.
pub fn run(command: &QueueCommand, dir: &Path, out: &mut dyn Write) -> Result<(), QueueError> {
    let write_error = |source| QueueError::Io {
        action: "write to standard output",
        path: "-".into(),
        source,
    };
    match command {
        QueueCommand::List { json: as_json } => {
            let snapshot = Store::snapshot(dir)?;
            let now = now_us();
            if *as_json {
                json(&snapshot, now, out).map_err(write_error)?;
            } else {
                text(&snapshot, now, out).map_err(write_error)?;
            }
        }
        QueueCommand::Retry { id, all_failed } => {
            let mut chosen: Vec<Item> = Vec::new();
            Store::request(dir, |q: &Queue| {
                chosen = match id {
                    Some(id) if !all_failed => {
                        q.check_retry(*id)?;
                        q.get(*id).into_iter().cloned().collect()
                    }
                    _ => q
                        .items()
                        .filter(|i| i.state == ItemState::Failed)
                        .cloned()
                        .collect(),
                };
                Ok(chosen
                    .iter()
                    .map(|i| Entry::Requeued { id: i.id })
                    .collect())
            })?;
            for item in &chosen {
                log(queue::message_ids::REQUEUED, item, "to be run again");
                writeln!(out, "{}\tpending\t{}", item.id, lossy(&item.file))
                    .map_err(write_error)?;
            }
        }
        QueueCommand::Drop { id } => {
            let mut dropped = None;
            Store::request(dir, |q: &Queue| {
                q.check_drop(*id)?;
                dropped = q.get(*id).cloned();
                Ok(vec![Entry::Dropped { id: *id }])
            })?;
            if let Some(item) = dropped {
                log(queue::message_ids::DROPPED, &item, "dropped from the queue");
                writeln!(out, "{}\tdropped\t{}", item.id, lossy(&item.file))
                    .map_err(write_error)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upload::queue::state::RequestError;

    fn queued(id: u64, file: &str) -> Entry {
        Entry::Queued {
            id,
            at_us: now_us() - 5_000_000,
            user: b"alice".to_vec(),
            path: file.as_bytes().to_vec(),
            file: file.as_bytes().to_vec(),
        }
    }

    fn output(command: QueueCommand, dir: &Path) -> Result<String, QueueError> {
        let mut out = Vec::new();
        run(&command, dir, &mut out)?;
        Ok(String::from_utf8(out).unwrap())
    }

    #[test]
    fn list_retry_and_drop_while_a_reader_holds_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let mut opened = Store::open(dir.path()).unwrap();
        opened
            .store
            .append(
                &[
                    queued(1, "/srv/a"),
                    Entry::Started {
                        id: 1,
                        attempt: 1,
                        at_us: 0,
                    },
                    Entry::Failed { id: 1, attempt: 1 },
                    queued(2, "/srv/b"),
                ],
                true,
            )
            .unwrap();
        let list = output(QueueCommand::List { json: false }, dir.path()).unwrap();
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines[0], "ID\tSTATE\tAGE\tATTEMPTS\tNEXT\tUSER\tFILE");
        assert_eq!(lines[1], "1\tfailed\t5s\t1\t-\talice\t/srv/a");
        assert_eq!(lines[2], "2\tpending\t5s\t0\t-\talice\t/srv/b");
        assert_eq!(lines.len(), 3, "{list}");
        let json = output(QueueCommand::List { json: true }, dir.path()).unwrap();
        let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
        assert_eq!(first["state"], "failed");
        assert_eq!(first["file"], "/srv/a");
        assert_eq!(first["attempts"], 1);
        let e = output(
            QueueCommand::Retry {
                id: Some(2),
                all_failed: false,
            },
            dir.path(),
        )
        .unwrap_err();
        assert!(matches!(e, QueueError::Request(RequestError::NotFailed(2))));
        assert_eq!(ExitStatus::from(&e), ExitStatus::Usage);
        let done = output(
            QueueCommand::Retry {
                id: None,
                all_failed: true,
            },
            dir.path(),
        )
        .unwrap();
        assert_eq!(done, "1\tpending\t/srv/a\n");
        assert_eq!(
            output(QueueCommand::Drop { id: 2 }, dir.path()).unwrap(),
            "2\tdropped\t/srv/b\n"
        );
        let e = output(QueueCommand::Drop { id: 2 }, dir.path()).unwrap_err();
        assert!(matches!(
            e,
            QueueError::Request(RequestError::NoSuchRecord(2))
        ));
        // The reader sees both requests.
        let others = opened.store.others().unwrap();
        assert_eq!(
            others,
            [Entry::Requeued { id: 1 }, Entry::Dropped { id: 2 }]
        );
        drop(opened);
        let list = output(QueueCommand::List { json: false }, dir.path()).unwrap();
        assert!(list.contains("no reader holds the queue"), "{list}");
    }
}
