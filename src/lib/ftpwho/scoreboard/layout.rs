//! Where each field of a record lies: [`Layout`], per build of the server,
//! and the fixed [`offsets`].

/// Size of a `struct sockaddr_storage` on Linux.
pub const SOCKADDR_STORAGE_LEN: usize = 128;

/// Offsets and sizes of one build's `FTPWhoEntry`. Fields before `account`
/// are at the same offsets on every LP64 Linux build; the account length
/// (`MAX_USER_LENGTH + 1`) and the file name length vary.
///
/// In configuration files a layout is written as for `--layout`
/// (`"debian"`, `"upstream"`, `"MAXUSER,FILENAMELEN"`) or as a table of
/// these five fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "LayoutRepr")]
pub struct Layout {
    /// Size of the whole record (the file size).
    pub size: usize,
    /// Offset of `account`.
    pub account_offset: usize,
    /// Length of `account`, terminating NUL included.
    pub account_len: usize,
    /// Offset of `filename`.
    pub filename_offset: usize,
    /// Length of `filename`, terminating NUL included.
    pub filename_len: usize,
}

impl Layout {
    /// Debian 12 amd64, pure-ftpd 1.0.50: `MAX_USER_LENGTH` 128, 1464 bytes.
    pub const DEBIAN: Layout = Layout {
        size: 1464,
        account_offset: 304,
        account_len: 129,
        filename_offset: 433,
        filename_len: 1024,
    };
    /// Upstream's default build: `MAX_USER_LENGTH` 127, 1456 bytes.
    pub const UPSTREAM: Layout = Layout {
        size: 1456,
        account_offset: 304,
        account_len: 128,
        filename_offset: 432,
        filename_len: 1024,
    };
    /// The known layouts, tried in this order when recognising a file by size.
    pub const KNOWN: [Layout; 2] = [Layout::DEBIAN, Layout::UPSTREAM];

    /// The known layout whose record size is `size`.
    pub fn for_size(size: u64) -> Option<Layout> {
        Layout::KNOWN.into_iter().find(|l| l.size as u64 == size)
    }

    /// The layout of a build whose `MAX_USER_LENGTH` is `max_user_length`
    /// and whose file name buffer is `filename_len` bytes, with the C
    /// compiler's padding to 8 bytes at the end.
    pub fn with_lengths(max_user_length: usize, filename_len: usize) -> Layout {
        let account_offset = 304;
        let account_len = max_user_length + 1;
        let filename_offset = account_offset + account_len;
        let size = (filename_offset + filename_len).div_ceil(8) * 8;
        Layout {
            size,
            account_offset,
            account_len,
            filename_offset,
            filename_len,
        }
    }
}

/// Why a layout specification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scoreboard layout {spec:?}: {why}")]
pub struct LayoutSpecError {
    spec: String,
    why: &'static str,
}

impl std::str::FromStr for Layout {
    type Err = LayoutSpecError;

    /// `debian` (1464-byte records), `upstream` (1456), or
    /// `MAXUSER,FILENAMELEN`: the build's `MAX_USER_LENGTH` and the length
    /// of its `filename` buffer (see [`Layout::with_lengths`]).
    fn from_str(spec: &str) -> Result<Layout, LayoutSpecError> {
        let err = |why| LayoutSpecError {
            spec: spec.to_string(),
            why,
        };
        match spec.trim().to_ascii_lowercase().as_str() {
            "debian" => return Ok(Layout::DEBIAN),
            "upstream" => return Ok(Layout::UPSTREAM),
            _ => {}
        }
        let (user, file) = spec
            .split_once(',')
            .ok_or_else(|| err("expected debian, upstream or MAXUSER,FILENAMELEN"))?;
        let parse = |s: &str| s.trim().parse::<usize>().ok().filter(|&n| n <= 1 << 20);
        let user = parse(user).ok_or_else(|| err("MAXUSER is not a number up to 1048576"))?;
        let file = parse(file)
            .filter(|&n| n > 0)
            .ok_or_else(|| err("FILENAMELEN is not a number from 1 to 1048576"))?;
        Ok(Layout::with_lengths(user, file))
    }
}

#[derive(serde::Deserialize)]
#[serde(untagged)]
enum LayoutRepr {
    Spec(String),
    Fields {
        size: usize,
        account_offset: usize,
        account_len: usize,
        filename_offset: usize,
        filename_len: usize,
    },
}

impl TryFrom<LayoutRepr> for Layout {
    type Error = String;

    fn try_from(repr: LayoutRepr) -> Result<Layout, String> {
        let layout = match repr {
            LayoutRepr::Spec(spec) => spec.parse::<Layout>().map_err(|e| e.to_string())?,
            LayoutRepr::Fields {
                size,
                account_offset,
                account_len,
                filename_offset,
                filename_len,
            } => Layout {
                size,
                account_offset,
                account_len,
                filename_offset,
                filename_len,
            },
        };
        if !layout.is_consistent() {
            return Err("layout fields overlap or overrun the record size".to_string());
        }
        Ok(layout)
    }
}

/// Offsets of the fixed fields of `FTPWhoEntry` (LP64 Linux).
pub mod offsets {
    /// `int state`
    pub const STATE: usize = 0;
    /// `pid_t pid`
    pub const PID: usize = 4;
    /// `struct sockaddr_storage addr` (the peer)
    pub const ADDR: usize = 8;
    /// `struct sockaddr_storage local_addr`
    pub const LOCAL_ADDR: usize = 136;
    /// `time_t date` (session start)
    pub const DATE: usize = 264;
    /// `time_t xfer_date` (transfer start)
    pub const XFER_DATE: usize = 272;
    /// `off_t restartat`
    pub const RESTARTAT: usize = 280;
    /// `off_t download_total_size`
    pub const TOTAL_SIZE: usize = 288;
    /// `off_t download_current_size`
    pub const CURRENT_SIZE: usize = 296;
}

impl Layout {
    /// True when every field lies inside `size` and the strings do not
    /// overlap the fixed fields or each other.
    pub fn is_consistent(&self) -> bool {
        let fixed_end = offsets::CURRENT_SIZE + 8;
        let account = (
            self.account_offset,
            self.account_offset.saturating_add(self.account_len),
        );
        let filename = (
            self.filename_offset,
            self.filename_offset.saturating_add(self.filename_len),
        );
        let apart = account.1 <= filename.0 || filename.1 <= account.0;
        self.account_len > 0
            && self.filename_len > 0
            && account.0 >= fixed_end
            && filename.0 >= fixed_end
            && account.1 <= self.size
            && filename.1 <= self.size
            && apart
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_by_name_and_lengths() {
        assert_eq!("debian".parse::<Layout>().unwrap(), Layout::DEBIAN);
        assert_eq!(" Upstream ".parse::<Layout>().unwrap(), Layout::UPSTREAM);
        assert_eq!("128,1024".parse::<Layout>().unwrap(), Layout::DEBIAN);
        assert_eq!("127,1024".parse::<Layout>().unwrap(), Layout::UPSTREAM);
        let l = "31,512".parse::<Layout>().unwrap();
        assert_eq!((l.account_len, l.filename_offset, l.size), (32, 336, 848));
        for bad in ["", "x", "1,", ",1", "1,0", "-1,5", "9999999,1", "1,2,3"] {
            assert!(bad.parse::<Layout>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn layouts_in_configuration_files() {
        #[derive(serde::Deserialize)]
        struct Config {
            layout: Layout,
        }
        let c: Config = toml::from_str("layout = \"debian\"").unwrap();
        assert_eq!(c.layout, Layout::DEBIAN);
        let c: Config = toml::from_str("layout = \"127,1024\"").unwrap();
        assert_eq!(c.layout, Layout::UPSTREAM);
        let c: Config = toml::from_str(
            "[layout]\nsize = 1464\naccount_offset = 304\naccount_len = 129\n\
             filename_offset = 433\nfilename_len = 1024\n",
        )
        .unwrap();
        assert_eq!(c.layout, Layout::DEBIAN);
        let err = toml::from_str::<Config>(
            "[layout]\nsize = 10\naccount_offset = 304\naccount_len = 129\n\
             filename_offset = 433\nfilename_len = 1024\n",
        );
        assert!(err.is_err());
        assert!(toml::from_str::<Config>("layout = \"huge\"").is_err());
    }
}
