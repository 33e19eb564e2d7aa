//! `queue.min_free_space`: the free space the queue leaves on the data partition.
//!
//! `"auto"` (the default) scales with the file system: 5 % of its size, at most
//! 256 MiB. The data partition grows with its disk (init's `grow`), so a fixed
//! reserve would waste most of a small disk (320 MiB with 256 MiB kept free) and
//! mean nothing on a large one. A size (`"1GiB"`, `0`) is kept as given.

use super::units::{Bytes, parse_bytes};
use serde::de::{self, Deserialize, Deserializer};
use std::fmt;

/// Share of the file system kept free by `"auto"`, in percent…
pub const AUTO_PERCENT: u64 = 5;
/// …and its ceiling.
pub const AUTO_CAP: u64 = 256 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reserve {
    #[default]
    Auto,
    Fixed(Bytes),
}

impl Reserve {
    /// The bytes to keep free on a file system of `fs_size` bytes.
    pub fn bytes(self, fs_size: u64) -> u64 {
        match self {
            Reserve::Auto => (fs_size.saturating_mul(AUTO_PERCENT) / 100).min(AUTO_CAP),
            Reserve::Fixed(b) => b.0,
        }
    }
}

impl fmt::Display for Reserve {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Reserve::Auto => f.write_str("auto"),
            Reserve::Fixed(b) => write!(f, "{} bytes", b.0),
        }
    }
}

impl<'de> Deserialize<'de> for Reserve {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Reserve;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("\"auto\" or a byte count such as 26214400 or \"25MiB\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reserve, E> {
                u64::try_from(v)
                    .map(|v| Reserve::Fixed(Bytes(v)))
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reserve, E> {
                Ok(Reserve::Fixed(Bytes(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Reserve, E> {
                if v == "auto" {
                    return Ok(Reserve::Auto);
                }
                parse_bytes(v)
                    .map(|b| Reserve::Fixed(Bytes(b)))
                    .map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_keeps_five_percent_capped_and_sizes_are_kept_as_given() {
        assert_eq!(Reserve::Auto.bytes(320 << 20), 16 << 20);
        assert_eq!(Reserve::Auto.bytes(100_000_000_000), AUTO_CAP);
        assert_eq!(Reserve::Fixed(Bytes(7)).bytes(100_000_000_000), 7);
        let parse = |t: &str| {
            toml::from_str::<toml::Table>(&format!("r = {t}")).unwrap()["r"]
                .clone()
                .try_into::<Reserve>()
        };
        assert_eq!(parse("\"auto\"").unwrap(), Reserve::Auto);
        assert_eq!(parse("0").unwrap(), Reserve::Fixed(Bytes(0)));
        assert_eq!(parse("\"1MiB\"").unwrap(), Reserve::Fixed(Bytes(1 << 20)));
        assert!(parse("\"lots\"").is_err());
    }
}
