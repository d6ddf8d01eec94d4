//! The checksum logged with each upload: one type for the `hash` setting
//! (`--hash`, `hash = "sha256"`), the algorithm the program runner applies
//! and the journal field that carries the result.

use std::fmt;

use serde::Deserialize;

/// A checksum of each uploaded file, or none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Hash {
    /// No checksum.
    #[default]
    None,
    /// SHA-256, in lower-case hex.
    Sha256,
}

impl Hash {
    /// Every value, in the order `--help` lists them.
    pub const ALL: [Hash; 2] = [Hash::None, Hash::Sha256];

    /// The name given in the configuration and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            Hash::None => "none",
            Hash::Sha256 => "sha256",
        }
    }

    /// The journal field that carries the checksum: `UPLOAD_` and the
    /// upper-cased [`Hash::name`]; `None` for no checksum.
    pub const fn field(self) -> Option<&'static str> {
        match self {
            Hash::None => None,
            Hash::Sha256 => Some("UPLOAD_SHA256"),
        }
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn one_name_everywhere_and_the_field_follows_it() {
        assert_eq!(Hash::ALL.len(), Hash::value_variants().len());
        for hash in Hash::ALL {
            let clap_name = hash.to_possible_value().unwrap().get_name().to_owned();
            assert_eq!(clap_name, hash.name());
            let parsed: Hash = toml::Value::String(hash.name().into()).try_into().unwrap();
            assert_eq!(parsed, hash);
            match hash.field() {
                Some(field) => assert_eq!(field, format!("UPLOAD_{}", hash.name().to_uppercase())),
                None => assert_eq!(hash, Hash::None),
            }
        }
        assert_eq!(Hash::default(), Hash::None);
    }

    #[test]
    fn unknown_names_are_refused() {
        for bad in ["md5", "SHA256", "", "sha-256"] {
            assert!(Hash::from_str(bad, false).is_err(), "{bad}");
            let r: Result<Hash, _> = toml::Value::String(bad.into()).try_into();
            assert!(r.is_err(), "{bad}");
        }
    }
}
