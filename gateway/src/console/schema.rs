//! What the console knows about `edgemx.toml`: the key tree the configuration types
//! declare (`config::keys`), walked for `set`/`delete` paths, `?` help, completion and the
//! typing of values, and how each kind of value is written. Validation proper stays with
//! `Config::parse` at commit.
//!
//! Nothing is listed here: a key added to a configuration type is a console key at once
//! (the tests in `config::keys` refuse a field without one).

use crate::config::{Config, Keys};
pub use crate::config::{Key, Kind, keys::find};

/// The top of the file: `hostname`, `data_dir` and every section.
pub fn root() -> &'static [Key] {
    Config::KEYS
}

/// How a value of `kind` is written, for `?` help.
pub fn placeholder(kind: Kind) -> String {
    match kind {
        Kind::Str(p) => format!("<{p}>"),
        Kind::List(p) => format!("<{p}> ..."),
        Kind::Int => "<NUMBER>".into(),
        Kind::Float => "<DECIMAL>".into(),
        Kind::Bool => "true|false".into(),
        Kind::Enum(choices) => choices.join("|"),
        Kind::Size => "<BYTES, e.g. 25MiB>".into(),
        Kind::SizeOr(word) => format!("{word}|<BYTES, e.g. 1GiB>"),
        Kind::Span => "<DURATION, e.g. 30s, 5m>".into(),
        Kind::Map(name, value) => format!("<{name}> <{value}>"),
        Kind::Table(_) => "<KEY>".into(),
        Kind::Entries { placeholder, .. } => format!("<{placeholder}>"),
    }
}
