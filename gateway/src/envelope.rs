//! Envelope and per-recipient delivery state, as stored beside each message.

use crate::smtp::proto::dsn::{Notify, Orcpt, Ret};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Queue identifier, shown as 16 upper-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct QueueId(pub u64);

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{:016X}", self.0)
    }
}

impl FromStr for QueueId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s.trim(), 16)
            .map(QueueId)
            .map_err(|_| format!("`{s}` is not a queue id (16 hex digits)"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Assigned by the queue on insert; `QueueId(0)` before that.
    pub id: QueueId,
    /// Reverse path without angle brackets; empty for the null sender `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    /// Unix seconds when the message was accepted.
    pub received: u64,
    /// Size of the stored message in bytes.
    pub size: u64,
    /// The sender asked for SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// BODY=8BITMIME was declared or 8-bit content was seen.
    pub eight_bit: bool,
    /// Who gave us the message, e.g. `mail.example.org [192.0.2.1]`; for logs and DSNs.
    pub client: String,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Unix seconds of the next attempt; 0 means as soon as possible.
    pub next_attempt: u64,
    /// Never delivered until an operator releases it (hold, quarantine, expired mail kept).
    #[serde(default)]
    pub held: bool,
    /// Why it is held; `None` in records written before reasons were kept (shown as
    /// "reason not recorded") and in messages that are not held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<Hold>,
    /// The sender already got its one `delayed` DSN.
    #[serde(default)]
    pub delay_notified: bool,
    /// DSN `RET=` (RFC 3461); records without it read as `None` (headers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, decoded; reported as `Original-Envelope-Id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
}

/// Why a message is held (`Envelope::held`); shown by `queue list` and `queue show`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Hold {
    /// `edgemx queue hold`.
    Operator,
    /// DMARC policy `quarantine` (`[auth] dmarc = "enforce"`).
    Quarantine,
    /// Still undelivered at expiry with `flow.expired = "hold"`.
    Expired,
    /// The stored body no longer matches its checksum: never delivered as it is.
    Corrupt { detail: String },
    /// A content scan's verdict configured as `quarantine` (`[scan]`).
    Scan { reason: String },
}

impl fmt::Display for Hold {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Hold::Operator => f.write_str("by the operator"),
            Hold::Quarantine => f.write_str("DMARC quarantine"),
            Hold::Expired => f.write_str("expired undelivered (flow.expired = \"hold\")"),
            Hold::Corrupt { detail } => write!(f, "stored body is corrupt: {detail}"),
            Hold::Scan { reason } => write!(f, "content scan quarantine: {reason}"),
        }
    }
}

impl Envelope {
    /// `held` with its reason, for people: `None` when not held.
    pub fn hold_reason(&self) -> Option<String> {
        self.held.then(|| match &self.hold {
            Some(hold) => hold.to_string(),
            None => "reason not recorded".to_string(),
        })
    }

    /// Holds the message for `why` (the first reason stays when it is held already).
    pub fn hold_for(&mut self, why: Hold) {
        if !self.held || self.hold.is_none() {
            self.hold = Some(why);
        }
        self.held = true;
    }

    /// Releases a hold.
    pub fn release(&mut self) {
        self.held = false;
        self.hold = None;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    /// Forward path as accepted, without angle brackets.
    pub address: String,
    /// Lower-case domain of `address`: the routing key.
    pub domain: String,
    pub status: RcptStatus,
    /// The route chosen at RCPT time (or a fallback chosen at delivery), by name; `None`
    /// routes by domain. Stored so delivery groups by route and a restart keeps the choice;
    /// records written before routes existed read as `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// DSN `NOTIFY=`; `None` (and every record older than DSN support) means
    /// [`Notify::DEFAULT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`, decoded; reported as `Original-Recipient` and passed on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<Orcpt>,
}

/// Temporary and permanent failures are distinct: only `Pending` and `Deferred` recipients
/// are attempted again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RcptStatus {
    Pending,
    Deferred { reply: String, at: u64 },
    Delivered { reply: String, at: u64 },
    Failed { reply: String, at: u64 },
}

impl RcptStatus {
    /// Still to be delivered.
    pub fn is_open(&self) -> bool {
        matches!(self, RcptStatus::Pending | RcptStatus::Deferred { .. })
    }
}

impl Recipient {
    /// The DSNs this recipient asked for (RFC 3461 NOTIFY).
    pub fn notify(&self) -> Notify {
        self.notify.unwrap_or(Notify::DEFAULT)
    }

    /// A recipient still to be delivered; its routing domain is the lower-cased part after
    /// the last `@`.
    pub fn pending(address: impl Into<String>) -> Recipient {
        let address = address.into();
        let domain = address
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_lowercase();
        Recipient {
            address,
            domain,
            status: RcptStatus::Pending,
            route: None,
            notify: None,
            orcpt: None,
        }
    }
}

impl Envelope {
    /// A message from `sender` (empty for `<>`) accepted at `received` (Unix seconds), not
    /// yet stored nor attempted; the queue assigns id and size when it stores it.
    pub fn new(sender: impl Into<String>, recipients: Vec<Recipient>, received: u64) -> Envelope {
        Envelope {
            id: QueueId(0),
            sender: sender.into(),
            recipients,
            received,
            size: 0,
            smtputf8: false,
            eight_bit: false,
            client: String::new(),
            attempts: 0,
            next_attempt: 0,
            held: false,
            hold: None,
            delay_notified: false,
            ret: None,
            envid: None,
        }
    }

    /// True when no recipient is left to deliver.
    pub fn is_finished(&self) -> bool {
        !self.recipients.iter().any(|r| r.status.is_open())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_without_dsn_fields_still_read() {
        let old = r#"{"id":7,"sender":"a@x.test","recipients":[{"address":"b@y.test",
            "domain":"y.test","status":"Pending"}],"received":1,"size":2,"smtputf8":false,
            "eight_bit":false,"client":"c","attempts":0,"next_attempt":0}"#;
        let env: Envelope = serde_json::from_str(old).expect("an old record");
        assert_eq!((env.ret, env.envid.as_deref()), (None, None));
        assert_eq!(env.recipients[0].notify(), Notify::DEFAULT);
        assert_eq!(env.recipients[0].orcpt, None);
    }

    #[test]
    fn dsn_fields_round_trip() {
        let mut env = Envelope::new("a@x.test", vec![Recipient::pending("b@y.test")], 1);
        env.ret = Some(Ret::Hdrs);
        env.envid = Some("QQ+1".into());
        env.recipients[0].notify = Some(Notify::default());
        env.recipients[0].orcpt = Some(Orcpt {
            kind: "rfc822".into(),
            address: "b+x@y.test".into(),
        });
        let json = serde_json::to_string(&env).expect("encodes");
        assert_eq!(
            serde_json::from_str::<Envelope>(&json).expect("decodes"),
            env
        );
        let plain = serde_json::to_string(&Envelope::new("a@x.test", Vec::new(), 1)).unwrap();
        assert!(
            !plain.contains("notify") && !plain.contains("envid"),
            "{plain}"
        );
    }
}
