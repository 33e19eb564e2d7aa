//! `[scan]`: content scanning at the end of DATA by rspamd (`/checkv2`) and clamd
//! (`INSTREAM`), and what each verdict does.
//!
//! Owns the shape, defaults and checks of these keys; the clients live in [`crate::scan`].
//! Scanning is on when `rspamd` or `clamd` is given; `scan = false` on a `[[domain]]` or
//! `[[route]]` leaves that mail unscanned (a message is scanned unless every recipient's
//! route or domain says `false`).

use super::keys::{Key, Keys, Kind, key};
use super::{Bytes, ConfigError, Span};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scan {
    /// rspamd's normal worker: `http://HOST:PORT`.
    pub rspamd: Option<String>,
    /// clamd: `HOST:PORT` or `unix:PATH`.
    pub clamd: Option<String>,
    /// One scan's whole exchange (connect, send, verdict), per scanner.
    pub timeout: Span,
    /// A scanner down, slow or answering garbage.
    pub on_error: OnError,
    /// Larger messages pass unscanned, with a header saying so.
    pub max_size: Bytes,
    /// The header carrying rspamd's action, score and symbols (and clamd's result).
    pub header: String,
    /// rspamd's `reject`.
    pub spam: Severe,
    /// rspamd's `add header` and `rewrite subject`.
    pub suspect: Suspect,
    /// clamd's `FOUND`.
    pub virus: Severe,
    /// Connections to each scanner at once (kept alive for rspamd); scans beyond wait.
    pub max_connections: usize,
    /// Quarantined mail older than this is deleted; absent: kept until released or deleted.
    pub quarantine_expiry: Option<Span>,
    #[serde(skip)]
    pub rspamd_at: Option<Endpoint>,
    #[serde(skip)]
    pub clamd_at: Option<Endpoint>,
}

impl Keys for Scan {
    const KEYS: &'static [Key] = &[
        key(
            "rspamd",
            Kind::Str("http://HOST:PORT"),
            "rspamd's normal worker (/checkv2)",
        ),
        key(
            "clamd",
            Kind::Str("HOST:PORT|unix:PATH"),
            "clamd (INSTREAM)",
        ),
        key("timeout", Kind::Span, "one scan, per scanner"),
        key(
            "on_error",
            Kind::Enum(&["tempfail", "accept"]),
            "scanner down or garbled: 451 4.7.1, or accept with a header",
        ),
        key("max_size", Kind::Size, "larger messages pass unscanned"),
        key("header", Kind::Str("NAME"), "header with score and symbols"),
        key(
            "spam",
            Kind::Enum(&["reject", "quarantine"]),
            "rspamd's reject",
        ),
        key(
            "suspect",
            Kind::Enum(&["header", "quarantine"]),
            "rspamd's add header / rewrite subject",
        ),
        key(
            "virus",
            Kind::Enum(&["reject", "quarantine"]),
            "clamd found a virus",
        ),
        key("max_connections", Kind::Int, "connections per scanner"),
        key(
            "quarantine_expiry",
            Kind::Span,
            "quarantined mail older than this is deleted (absent: kept)",
        ),
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// `451 4.7.1`: the sender tries again later.
    Tempfail,
    /// Accepted with a header saying the scan failed, and a log line.
    Accept,
}

/// What a spam or virus verdict does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severe {
    /// `554 5.7.1` at the end of DATA.
    Reject,
    /// Queued held, with the verdict as the reason, until an operator releases it.
    Quarantine,
}

/// What rspamd's milder actions do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suspect {
    /// Accepted with the headers and subject rspamd asks for.
    Header,
    Quarantine,
}

/// Where a scanner listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Endpoint::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Endpoint::Tcp { host, port } => write!(f, "{host}:{port}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

impl Scan {
    /// Some scanner is configured.
    pub fn enabled(&self) -> bool {
        self.rspamd_at.is_some() || self.clamd_at.is_some()
    }
}

impl Default for Scan {
    fn default() -> Self {
        Scan {
            rspamd: None,
            clamd: None,
            timeout: Span(Duration::from_secs(20)),
            on_error: OnError::Tempfail,
            max_size: Bytes(25 << 20),
            header: "X-Spam-Status".into(),
            spam: Severe::Reject,
            suspect: Suspect::Header,
            virus: Severe::Reject,
            max_connections: 32,
            quarantine_expiry: None,
            rspamd_at: None,
            clamd_at: None,
        }
    }
}

/// `HOST:PORT` or `[V6]:PORT`.
fn host_port(text: &str) -> Result<Endpoint, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or("must be HOST:PORT".to_string())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port
        .parse()
        .map_err(|_| format!("`{port}` is not a port number"))?;
    if host.is_empty() || port == 0 {
        return Err("must be HOST:PORT".into());
    }
    Ok(Endpoint::Tcp {
        host: host.to_string(),
        port,
    })
}

fn rspamd_url(text: &str) -> Result<Endpoint, String> {
    let rest = text
        .strip_prefix("http://")
        .ok_or("must be http://HOST:PORT (rspamd's normal worker speaks plain HTTP)")?;
    host_port(rest.trim_end_matches('/'))
}

fn clamd_address(text: &str) -> Result<Endpoint, String> {
    match text.strip_prefix("unix:") {
        Some(path) if path.starts_with('/') => Ok(Endpoint::Unix(PathBuf::from(path))),
        Some(_) => Err("unix: needs an absolute path".into()),
        None => host_port(text),
    }
}

/// Checks `[scan]`, parses its addresses and the header name; findings name their key.
pub fn check(scan: &mut Scan) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let mut add = |key: &str, value: String, problem: String| {
        errors.push(ConfigError {
            key: format!("scan.{key}"),
            value,
            problem,
        })
    };
    scan.rspamd_at = None;
    scan.clamd_at = None;
    if let Some(text) = &scan.rspamd {
        match rspamd_url(text) {
            Ok(at) => scan.rspamd_at = Some(at),
            Err(problem) => add("rspamd", text.clone(), problem),
        }
    }
    if let Some(text) = &scan.clamd {
        match clamd_address(text) {
            Ok(at) => scan.clamd_at = Some(at),
            Err(problem) => add("clamd", text.clone(), problem),
        }
    }
    if scan.timeout.0 < Duration::from_millis(100) {
        add(
            "timeout",
            scan.timeout.to_string(),
            "must be at least 100ms".into(),
        );
    }
    let name_ok = !scan.header.is_empty()
        && scan
            .header
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b':');
    if !name_ok {
        add(
            "header",
            scan.header.clone(),
            "must be a header field name (printable ASCII, no colon)".into(),
        );
    }
    if let Some(expiry) = scan.quarantine_expiry
        && expiry.0 < Duration::from_secs(1)
    {
        add(
            "quarantine_expiry",
            expiry.to_string(),
            "must be at least 1s".into(),
        );
    }
    if scan.max_connections == 0 {
        add("max_connections", "0".into(), "must be at least 1".into());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(text: &str) -> (Scan, Vec<ConfigError>) {
        let mut scan: Scan = toml::from_str(text).unwrap();
        let errors = check(&mut scan);
        (scan, errors)
    }

    #[test]
    fn addresses_are_parsed_and_bad_ones_name_their_key() {
        let (scan, errors) =
            checked("rspamd = \"http://127.0.0.1:11333/\"\nclamd = \"unix:/run/clamav/clamd.ctl\"");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            scan.rspamd_at,
            Some(Endpoint::Tcp {
                host: "127.0.0.1".into(),
                port: 11333
            })
        );
        assert_eq!(
            scan.clamd_at,
            Some(Endpoint::Unix("/run/clamav/clamd.ctl".into()))
        );
        let (_, errors) =
            checked("rspamd = \"https://x:1\"\nclamd = \"localhost\"\nheader = \"X: y\"");
        let keys: Vec<&str> = errors.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["scan.rspamd", "scan.clamd", "scan.header"]);
    }

    #[test]
    fn nothing_configured_scans_nothing() {
        let (scan, errors) = checked("");
        assert!(errors.is_empty() && !scan.enabled());
        assert_eq!(scan.on_error, OnError::Tempfail);
    }
}
