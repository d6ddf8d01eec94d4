//! Each run of the program in a systemd unit of its own.
//!
//! `pure-uploadscript-run.socket` (and `-strict.socket`) listen on a
//! root-only `SOCK_SEQPACKET` socket with `Accept=yes`; every connection
//! starts one `pure-uploadscript-run@.service` instance, which is this
//! binary with `--run-instance PROFILE`. The reader ([`client`]) checks the
//! file as in process mode, connects once per record, sends the record, what
//! it saw of the file and the file's descriptor ([`wire`]), and waits for the
//! answer while its own loop goes on; while more records wait, it connects
//! the next run's unit ahead, during the current run. The instance ([`instance`]) reads the
//! program, identity, timeout and limits from its own configuration, runs the
//! program in a sub-cgroup of its unit with the same argv, `UPLOAD_*`
//! variables and `UPLOAD_FD=3` as in process mode, logs the program's output
//! lines to the journal with the upload's fields, and answers with the
//! outcome, CPU time and peak memory.

pub mod client;
pub mod instance;
pub mod wire;
