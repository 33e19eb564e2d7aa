//! What the control socket answers: one type per request kind, built by the server and
//! decoded by every reader (`edgemx queue …`, `edgemx probes`, `edgemx firmware`, the
//! console). Server and readers share these types, so renaming a field changes both sides
//! at once, and an answer that lacks a field the reader needs is refused as
//! `bad reply: missing field `x`` instead of being printed as `?`.
//!
//! On the wire a reply is the `data` of an ok [`Response`] line, encoded as the type itself
//! without a tag: the reader knows which request it sent and decodes the matching type.
//!
//! | request | reply |
//! | --- | --- |
//! | `List` | `Vec<Envelope>` |
//! | `Show` | [`Shown`] |
//! | `Retry`, `Delete`, `Hold`, `Release`, `Flush` | [`Done`] |
//! | `Stats` | [`QueueStats`] |
//! | `Health` | `Vec<HopHealth>` |
//! | `Probes` | `Vec<probe::Status>` |
//! | console `Running` | [`Running`] |
//! | console `Check`, `Confirm` | [`Done`] |
//! | console `Commit` | [`Committed`] |
//! | console `History` | `Vec<Revision>` |
//! | console `Revision` | [`RevisionText`] |
//! | console `Status` | [`Status`] |
//! | console `Log` | `Vec<String>` |
//! | console `LogSince` | [`LogTail`] |
//! | console `Track` | `Vec<observe::track::Trail>` |
//! | console `Tls`, `RenewCert` | [`Tls`] |
//! | console `Scan` | [`ScanStatus`] |
//! | console `Reports` | [`ReportsStatus`] |
//! | console `Route` | [`Route`] |
//! | console `Probe` | [`Probe`] |
//! | console `InstallCert` | [`InstalledCert`] |
//! | console `Firmware` | [`FirmwareStatus`] for `Status`, else [`Done`] |
//!
//! `Option` fields are read with `deserialize_with = "Option::deserialize"`: serde would
//! take an absent one for `None`, and a reply must say `null` to mean nothing.
//!
//! The types carried unchanged from their owners (`Envelope`, `QueueStats`, `HopHealth`,
//! `probe::Status`, `Revision`, `FirmwareStatus`) are re-used rather than copied, so there
//! is one model of each.

use crate::config::store::Revision;
use crate::delivery::health::HopHealth;
use crate::envelope::Envelope;
pub use crate::firmware::ops::{FirmwareStatus, SlotStatus};
pub use crate::observe::reports::ReportsStatus;
use crate::queue::QueueStats;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One answer line: `{"status":"ok","data":…}` or `{"status":"error","error":"…"}`. The
/// server sends `Response<Reply>`; clients read `Response<serde_json::Value>` and then
/// decode `data` as the type of the request they sent ([`decode`]).
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Response<T> {
    Ok { data: T },
    Error { error: String },
}

/// Decodes the `data` of an ok answer as the reply type of the request that was sent.
pub fn decode<T: DeserializeOwned>(data: serde_json::Value) -> Result<T, String> {
    serde_json::from_value(data).map_err(|e| format!("bad reply: {e}"))
}

/// The one-line outcome of an action, printed as it is (`3 message(s) held`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Done(pub String);

impl Done {
    pub fn new(text: impl Into<String>) -> Done {
        Done(text.into())
    }
}

/// `queue show`: the envelope and the headers (empty when the stored body is corrupt).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shown {
    pub envelope: Envelope,
    pub headers: String,
}

/// The running configuration text and the number of its revision (0 before the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Running {
    pub text: String,
    pub revision: u64,
}

/// A stored revision and its text (`rollback N`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevisionText {
    pub revision: Revision,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Committed {
    pub revision: Revision,
    /// Keys whose new values apply only after a restart.
    pub restart: Vec<String>,
    /// Seconds before the automatic rollback of a `commit confirmed`.
    #[serde(deserialize_with = "Option::deserialize")]
    pub rollback_in: Option<u64>,
}

/// `show status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub hostname: String,
    /// Seconds since the gateway started.
    pub uptime: u64,
    /// The newest stored revision.
    #[serde(deserialize_with = "Option::deserialize")]
    pub revision: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub pending_confirm: Option<PendingConfirm>,
    /// Inbound SMTP connections open now.
    pub connections: u64,
    pub queue: QueueStatus,
}

/// A `commit confirmed` waiting for `confirm`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingConfirm {
    pub revision: u64,
    /// Seconds left before the rollback.
    #[serde(rename = "in")]
    pub rolls_back_in: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStatus {
    pub messages: u64,
    pub bytes: u64,
    pub deferred_recipients: u64,
    /// Seconds since the oldest queued message arrived; `None` when the queue is empty.
    #[serde(deserialize_with = "Option::deserialize")]
    pub oldest_age: Option<u64>,
    /// Durable queue commits since start.
    pub commits: u64,
    /// Why the queue cannot commit, while it cannot.
    #[serde(deserialize_with = "Option::deserialize")]
    pub failing: Option<String>,
    pub domains: Vec<DomainQueue>,
}

/// Recipients waiting for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainQueue {
    pub domain: String,
    pub pending: u64,
    pub deferred: u64,
}

/// `show tls`: the certificates in use and what this build and CPU offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tls {
    /// In the order of preference: `tls.certificate` (or the generated one), then
    /// `tls.rsa_certificate` for clients without ECDSA.
    pub certificates: Vec<TlsCertificate>,
    pub versions: Vec<String>,
    pub cipher_suites: Vec<String>,
    /// CPU features the crypto code can use, and whether this CPU has them.
    pub cpu: Vec<(String, bool)>,
    /// ring's code path per primitive on this CPU: `("AES-GCM", "VAES + VPCLMULQDQ …")`.
    pub code_paths: Vec<(String, String)>,
}

/// One certificate of `show tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsCertificate {
    pub path: String,
    /// The self-signed certificate made by the gateway (no `tls.certificate` configured).
    pub generated: bool,
    /// The public key: `ECDSA P-256`, `RSA 2048`; empty when unreadable.
    pub key: String,
    pub chain_length: u64,
    /// The leaf's fingerprint, `AB:CD:…`.
    pub sha256: String,
    /// The leaf's subject and issuer (`CN=…, O=…`), empty when unreadable.
    pub subject: String,
    pub issuer: String,
    /// The leaf's subject alternative names: `DNS:mx.example.com`, `IP:192.0.2.1`.
    pub names: Vec<String>,
    /// `None` when the leaf's validity cannot be read.
    #[serde(deserialize_with = "Option::deserialize")]
    pub not_after: Option<String>,
}

/// `test route ADDRESS`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub domain: String,
    /// A domain we serve (otherwise relaying is denied).
    pub accepted: bool,
    #[serde(deserialize_with = "Option::deserialize")]
    pub route: Option<String>,
    pub next_hops: Vec<String>,
    pub tls: String,
    /// `none`, or `to ADDRESS`.
    pub rewriting: String,
    /// What RCPT would answer this client: `accepted (a domain we serve)`, `relayed
    /// (network 10.0.0.0/8)`, or the refusal with its reply code.
    pub verdict: String,
}

/// `probe HOST:PORT`: the dialogue and how long it took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    pub transcript: Vec<String>,
    pub ms: u64,
}

/// Where a pasted certificate and key were stored, to be put in `tls.certificate` and
/// `tls.private_key`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstalledCert {
    pub certificate: String,
    pub private_key: String,
}

/// `monitor`: the log lines after the reader's last one, and where to ask from next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogTail {
    pub next: u64,
    pub lines: Vec<String>,
}

/// Defines [`Reply`] with a variant per reply type and `From` each type into it.
/// `show scan`: whether each configured scanner answers now, and the last verdicts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanStatus {
    pub enabled: bool,
    pub scanners: Vec<crate::scan::status::Reach>,
    pub recent: Vec<crate::scan::status::Seen>,
}

macro_rules! replies {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// Every reply the server can give, as it goes on the wire (untagged: each variant
        /// is encoded as its content).
        #[derive(Debug, Serialize)]
        #[serde(untagged)]
        pub enum Reply {
            $($variant($ty),)*
        }

        $(impl From<$ty> for Reply {
            fn from(reply: $ty) -> Reply {
                Reply::$variant(reply)
            }
        })*
    };
}

replies!(
    Done(Done),
    Listing(Vec<Envelope>),
    Shown(Shown),
    Stats(QueueStats),
    Health(Vec<HopHealth>),
    Probes(Vec<crate::probe::Status>),
    Running(Running),
    Committed(Committed),
    History(Vec<Revision>),
    Revision(RevisionText),
    Status(Status),
    Log(Vec<String>),
    LogTail(LogTail),
    Trails(Vec<crate::observe::track::Trail>),
    Tls(Tls),
    Scan(ScanStatus),
    Reports(ReportsStatus),
    TlsPolicy(crate::delivery::TlsPolicyView),
    Route(Route),
    Probe(Probe),
    InstalledCert(InstalledCert),
    Firmware(FirmwareStatus),
);

#[cfg(test)]
#[path = "reply_tests.rs"]
mod tests;
