use super::*;
use crate::delivery::health::State;
use crate::envelope::{Hold, QueueId, Recipient};
use serde_json::{Value, json};
use std::fmt::Debug;
use std::time::{Duration, UNIX_EPOCH};

/// What the server sends (through [`Reply`], as on the wire) is what the reader decodes.
fn round_trip<T>(sample: T)
where
    T: Clone + Debug + PartialEq + DeserializeOwned + Into<Reply>,
{
    let line = serde_json::to_string(&Response::Ok {
        data: sample.clone().into(),
    })
    .unwrap();
    let answer: Response<Value> = serde_json::from_str(&line).unwrap();
    let Response::Ok { data } = answer else {
        panic!("not an ok answer: {line}");
    };
    assert_eq!(decode::<T>(data), Ok(sample), "{line}");
}

/// Dropping any one field of the encoded `sample` is refused, naming that field.
fn every_field_required<T: Serialize + DeserializeOwned + Debug>(sample: &T) {
    let full = serde_json::to_value(sample).unwrap();
    let fields = full.as_object().expect("a struct encodes as an object");
    assert!(!fields.is_empty());
    for key in fields.keys() {
        let mut partial = fields.clone();
        partial.remove(key);
        let error = decode::<T>(Value::Object(partial)).expect_err(key);
        assert_eq!(error, format!("bad reply: missing field `{key}`"));
    }
}

fn envelope() -> Envelope {
    let mut e = Envelope::new(
        "s@a.test",
        vec![Recipient::pending("r@b.test")],
        1_700_000_000,
    );
    e.id = QueueId(0x1234);
    e.held = true;
    e.hold = Some(Hold::Operator);
    e
}

fn revision() -> Revision {
    Revision {
        number: 7,
        time: 1_700_000_000,
        comment: "console commit".into(),
    }
}

fn shown() -> Shown {
    Shown {
        envelope: envelope(),
        headers: "Subject: hi".into(),
    }
}

fn hop() -> HopHealth {
    HopHealth {
        name: "10.0.0.5:25".into(),
        tls: "opportunistic".into(),
        used_by: vec!["domain example.com".into()],
        state: State::Down,
        since: UNIX_EPOCH + Duration::new(1_700_000_000, 5),
        last_error: Some("421 busy".into()),
    }
}

fn probe_status() -> crate::probe::Status {
    crate::probe::Status {
        next_hop: "10.0.0.5:25".into(),
        route: Some("example.com".into()),
        recipient: "probe@example.com".into(),
        up: Some(true),
        since: 1_700_000_000,
        last_run: 1_700_000_060,
        last_success: None,
        last_reply: "250 ok".into(),
        duration_ms: 12,
        runs: 3,
        failures: 1,
        message: None,
    }
}

fn status() -> Status {
    Status {
        version: "0.1.0".into(),
        hostname: "mx.example.com".into(),
        uptime: 3_600,
        revision: Some(7),
        pending_confirm: Some(PendingConfirm {
            revision: 7,
            rolls_back_in: 120,
        }),
        connections: 2,
        queue: QueueStatus {
            messages: 1,
            bytes: 512,
            deferred_recipients: 1,
            oldest_age: None,
            commits: 9,
            failing: Some("disk full".into()),
            domains: vec![DomainQueue {
                domain: "example.com".into(),
                pending: 1,
                deferred: 0,
            }],
        },
    }
}

fn tls() -> Tls {
    Tls {
        certificates: vec![TlsCertificate {
            path: "/data/edgemx/tls/cert.pem".into(),
            generated: true,
            key: "ECDSA P-256".into(),
            chain_length: 1,
            sha256: "AB:CD".into(),
            subject: "CN=mx.test".into(),
            issuer: "CN=mx.test".into(),
            names: vec!["DNS:mx.test".into()],
            not_after: None,
        }],
        versions: vec!["TLSv1.3".into(), "TLSv1.2".into()],
        cipher_suites: vec!["TLS13_AES_256_GCM_SHA384".into()],
        cpu: vec![("AES-NI".into(), true), ("VAES".into(), false)],
        code_paths: vec![("SHA-256".into(), "SHA-NI".into())],
    }
}

fn route() -> Route {
    Route {
        domain: "example.com".into(),
        accepted: true,
        route: None,
        next_hops: vec!["10.0.0.5:25".into()],
        tls: "opportunistic".into(),
        rewriting: "none".into(),
        verdict: "accepted (a domain we serve)".into(),
    }
}

fn firmware() -> FirmwareStatus {
    FirmwareStatus {
        booted: Some("A".into()),
        slots: vec![slot()],
        last_result: None,
        last_install: Some("2026-12-01 installed".into()),
    }
}

fn slot() -> SlotStatus {
    SlotStatus {
        slot: "B".into(),
        state: "trial".into(),
        attempts_left: 2,
        booted: false,
        next: true,
        version: Some(42),
        build: None,
    }
}

#[test]
fn every_reply_reads_back_as_the_server_sent_it() {
    round_trip(Done::new("3 message(s) held"));
    round_trip(vec![envelope()]);
    round_trip(shown());
    round_trip(QueueStats {
        messages: 1,
        bytes: 2,
    });
    round_trip(vec![hop()]);
    round_trip(vec![probe_status()]);
    round_trip(Running {
        text: "hostname = \"mx\"\n".into(),
        revision: 7,
    });
    round_trip(Committed {
        revision: revision(),
        restart: vec!["dns".into()],
        rollback_in: Some(300),
    });
    round_trip(vec![revision()]);
    round_trip(RevisionText {
        revision: revision(),
        text: "hostname = \"mx\"\n".into(),
    });
    round_trip(status());
    round_trip(vec!["a log line".to_string()]);
    round_trip(tls());
    round_trip(route());
    round_trip(Probe {
        transcript: vec!["< 220 hi".into()],
        ms: 5,
    });
    round_trip(InstalledCert {
        certificate: "/data/tls/installed-cert.pem".into(),
        private_key: "/data/tls/installed-key.pem".into(),
    });
    round_trip(firmware());
    round_trip(reports());
}

fn reports() -> ReportsStatus {
    use crate::observe::reports::{Pending, Sent};
    let sent = Sent {
        kind: "dmarc".into(),
        domain: "example.org".into(),
        at: 1_700_000_000,
        result: "queued".into(),
        detail: "0000000000000007 to dmarc@example.net".into(),
    };
    ReportsStatus {
        tls_reports: true,
        dmarc_reports: true,
        pending: vec![Pending {
            kind: "tlsrpt".into(),
            domain: "example.com".into(),
            begin: 1_699_920_000,
            count: 3,
            failed: 1,
        }],
        recent: vec![sent.clone()],
        sent: vec![sent],
    }
}

#[test]
fn a_reply_missing_a_field_is_an_error_naming_the_field() {
    every_field_required(&shown());
    every_field_required(&QueueStats::default());
    every_field_required(&hop());
    every_field_required(&probe_status());
    every_field_required(&crate::probe::Status {
        message: Some(Default::default()),
        ..probe_status()
    });
    every_field_required(&revision());
    every_field_required(&Running {
        text: String::new(),
        revision: 0,
    });
    every_field_required(&Committed {
        revision: revision(),
        restart: Vec::new(),
        rollback_in: None,
    });
    every_field_required(&RevisionText {
        revision: revision(),
        text: String::new(),
    });
    let status = status();
    every_field_required(&status);
    every_field_required(&status.queue);
    every_field_required(&status.queue.domains[0]);
    every_field_required(status.pending_confirm.as_ref().unwrap());
    every_field_required(&tls());
    every_field_required(&route());
    every_field_required(&Probe {
        transcript: Vec::new(),
        ms: 0,
    });
    every_field_required(&InstalledCert {
        certificate: String::new(),
        private_key: String::new(),
    });
    every_field_required(&firmware());
    every_field_required(&slot());
    let reports = reports();
    every_field_required(&reports);
    every_field_required(&reports.pending[0]);
    every_field_required(&reports.sent[0]);
}

#[test]
fn a_reply_of_the_wrong_shape_is_an_error_not_a_default() {
    let error = decode::<Status>(json!("valid")).unwrap_err();
    assert!(error.starts_with("bad reply: invalid type"), "{error}");
    let error = decode::<Done>(json!({ "text": "held" })).unwrap_err();
    assert!(error.starts_with("bad reply: invalid type"), "{error}");
}

#[test]
fn the_wire_format_is_unchanged() {
    let line = |r: Response<Reply>| serde_json::to_string(&r).unwrap();
    assert_eq!(
        line(Response::Ok {
            data: Done::new("3 message(s) held").into()
        }),
        r#"{"status":"ok","data":"3 message(s) held"}"#
    );
    assert_eq!(
        line(Response::Error {
            error: "no message".into()
        }),
        r#"{"status":"error","error":"no message"}"#
    );
    let pending = serde_json::to_value(status().pending_confirm).unwrap();
    assert_eq!(pending, json!({ "revision": 7, "in": 120 }));
    let cpu = serde_json::to_value(tls()).unwrap()["cpu"].clone();
    assert_eq!(cpu, json!([["AES-NI", true], ["VAES", false]]));
    let paths = serde_json::to_value(tls()).unwrap()["code_paths"].clone();
    assert_eq!(paths, json!([["SHA-256", "SHA-NI"]]));
    let since = serde_json::to_value(hop()).unwrap()["since"].clone();
    assert_eq!(
        since,
        json!({ "secs_since_epoch": 1_700_000_000u64, "nanos_since_epoch": 5 })
    );
}
