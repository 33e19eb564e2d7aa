//! Operational answers from the gateway as text for the terminal.

use crate::config::store::Revision;
#[cfg(test)]
use crate::control::reply::TlsCertificate;
use crate::control::reply::{Probe, Route, ScanStatus, Status, Tls};
use crate::delivery::TlsPolicyView;
use std::fmt::Write;

pub fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// `2026-11-26 09:30:00` (UTC).
fn date(secs: u64) -> String {
    let (y, m, d) = crate::time::civil(secs / 86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs % 86_400 / 3_600,
        secs / 60 % 60,
        secs % 60
    )
}

pub fn status(v: &Status) -> String {
    let mut out = String::new();
    let q = &v.queue;
    let _ = writeln!(out, "edgemx {}  {}", v.version, v.hostname);
    let _ = writeln!(out, "uptime        {}", age(v.uptime));
    let _ = writeln!(
        out,
        "revision      {}",
        v.revision.map_or("-".into(), |r| r.to_string())
    );
    if let Some(p) = &v.pending_confirm {
        let _ = writeln!(
            out,
            "pending       revision {} rolls back in {} unless `confirm`",
            p.revision,
            age(p.rolls_back_in)
        );
    }
    let _ = writeln!(out, "connections   {} open", v.connections);
    let oldest = q.oldest_age.map_or("-".into(), age);
    let _ = writeln!(
        out,
        "queue         {} messages, {} bytes, {} recipients deferred, oldest {oldest}",
        q.messages, q.bytes, q.deferred_recipients
    );
    let _ = writeln!(
        out,
        "commits       {} durable queue commits since start",
        q.commits
    );
    if let Some(why) = &q.failing {
        let _ = writeln!(
            out,
            "STORAGE       cannot commit, refusing mail (452): {why}"
        );
    }
    for d in &q.domains {
        let _ = writeln!(
            out,
            "  {:<30} {:>6} pending {:>6} deferred",
            d.domain, d.pending, d.deferred
        );
    }
    out
}

/// `show scan`: each scanner's reachability, then the last verdicts, newest last.
/// `show tls policy DOMAIN`.
pub fn tls_policy(v: &TlsPolicyView) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}: {}", v.domain, v.applies);
    let _ = writeln!(out, "  why        {}", v.why);
    let route = v.route.as_deref().unwrap_or("(none: delivery defaults)");
    let _ = writeln!(
        out,
        "  route      {route}, next hops {}",
        v.next_hops.join(" ")
    );
    let _ = writeln!(out, "  tls        {}", v.tls);
    let _ = writeln!(out, "  dane       {}", v.dane);
    let _ = writeln!(out, "  mta-sts    record: {}", v.sts_record);
    match &v.sts_cached {
        Some(cached) => {
            let _ = writeln!(out, "             cached: {cached}");
            for line in &v.sts_policy {
                let _ = writeln!(out, "               {line}");
            }
        }
        None => {
            let _ = writeln!(out, "             cached: nothing");
        }
    }
    for h in &v.hosts {
        let _ = writeln!(
            out,
            "  mx {:>5}   {}  dnssec {}  -> {}",
            h.preference, h.host, h.dnssec, h.policy
        );
        for t in &h.tlsa {
            let _ = writeln!(out, "             TLSA {t}");
        }
    }
    out
}

pub fn scan(v: &ScanStatus) -> String {
    let mut out = String::new();
    if !v.enabled {
        return "content scanning is off: [scan] names no rspamd or clamd\n".into();
    }
    for s in &v.scanners {
        let _ = match s.answered_ms {
            Some(ms) => writeln!(out, "{:<7} {}  reachable ({ms:.1} ms)", s.scanner, s.at),
            None => writeln!(
                out,
                "{:<7} {}  UNREACHABLE: {}",
                s.scanner,
                s.at,
                s.error.as_deref().unwrap_or("no answer")
            ),
        };
    }
    if v.recent.is_empty() {
        out.push_str("no verdicts yet\n");
        return out;
    }
    let _ = writeln!(out, "last {} verdicts:", v.recent.len());
    for r in &v.recent {
        let _ = writeln!(
            out,
            "  {:02}:{:02}:{:02}Z  {:<7} {:<14} {:.3}s",
            r.at % 86_400 / 3_600,
            r.at / 60 % 60,
            r.at % 60,
            r.scanner,
            r.verdict,
            r.seconds
        );
    }
    out
}

pub fn tls(v: &Tls) -> String {
    let mut out = String::new();
    for (i, c) in v.certificates.iter().enumerate() {
        if i > 0 {
            out.push_str("(served to clients without ECDSA)\n");
        }
        let generated = if c.generated {
            " (self-signed, generated)"
        } else {
            ""
        };
        let _ = writeln!(out, "certificate   {}{generated}", c.path);
        let _ = writeln!(out, "key           {}", c.key);
        let _ = writeln!(out, "subject       {}", c.subject);
        let _ = writeln!(out, "names         {}", c.names.join(", "));
        let _ = writeln!(out, "issuer        {}", c.issuer);
        let _ = writeln!(out, "SHA-256       {}", c.sha256);
        let _ = writeln!(
            out,
            "expires       {}",
            c.not_after.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(out, "chain         {} certificate(s)", c.chain_length);
    }
    let _ = writeln!(out, "versions      {}", v.versions.join(" "));
    let _ = writeln!(out, "ciphers       {}", v.cipher_suites.join(" "));
    let cpu: Vec<String> = v
        .cpu
        .iter()
        .map(|(name, has)| format!("{name} {}", if *has { "yes" } else { "no" }))
        .collect();
    let _ = writeln!(out, "CPU crypto    {}", cpu.join(", "));
    for (primitive, path) in &v.code_paths {
        let _ = writeln!(out, "ring {primitive:<9}{path}");
    }
    out
}

pub fn history(revisions: &[Revision]) -> String {
    let mut out = String::from("  #  revision  committed             comment\n");
    for (i, r) in revisions.iter().enumerate() {
        let _ = writeln!(
            out,
            "{i:>3}  {:>8}  {}  {}",
            r.number,
            date(r.time),
            r.comment
        );
    }
    out.push_str("(`rollback #` loads a revision into the candidate)\n");
    out
}

pub fn route(v: &Route) -> String {
    format!(
        "domain      {}\nverdict     {}\nroute       {}\nnext hops   {}\nTLS         {}\nrewriting   {}\n",
        v.domain,
        v.verdict,
        v.route
            .as_deref()
            .unwrap_or("(none: the domain's own settings)"),
        v.next_hops.join(", "),
        v.tls,
        v.rewriting,
    )
}

/// `probe HOST:PORT`: the dialogue, then the time it took.
pub fn probe(v: &Probe) -> String {
    let mut out = String::new();
    for line in &v.transcript {
        let _ = writeln!(out, "  {line}");
    }
    let _ = writeln!(out, "probe ok in {} ms", v.ms);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::status::{Reach, Seen};

    #[test]
    fn show_tls_policy_says_what_applies_and_lists_hosts_and_records() {
        let v = TlsPolicyView {
            domain: "example.net".into(),
            applies: "DANE (enforce)".into(),
            why: "an MX host has usable TLSA records".into(),
            route: None,
            next_hops: vec!["mx".into()],
            tls: "opportunistic".into(),
            dane: "enforce (from dane.mode)".into(),
            sts_record: "none".into(),
            sts_cached: None,
            sts_policy: Vec::new(),
            hosts: vec![crate::delivery::HostView {
                preference: 10,
                host: "mx1.example.net".into(),
                dnssec: "secure".into(),
                tlsa: vec!["3 1 1 AB01".into()],
                policy: "DANE (enforce)".into(),
            }],
        };
        let text = tls_policy(&v);
        assert!(text.starts_with("example.net: DANE (enforce)\n"), "{text}");
        assert!(text.contains("cached: nothing"), "{text}");
        assert!(
            text.contains("mx1.example.net  dnssec secure  -> DANE (enforce)"),
            "{text}"
        );
        assert!(text.contains("TLSA 3 1 1 AB01"), "{text}");
    }

    #[test]
    fn show_scan_names_each_scanner_and_the_last_verdicts() {
        let v = ScanStatus {
            enabled: true,
            scanners: vec![
                Reach {
                    scanner: "rspamd".into(),
                    at: "127.0.0.1:11333".into(),
                    answered_ms: Some(1.25),
                    error: None,
                },
                Reach {
                    scanner: "clamd".into(),
                    at: "unix:/run/clamd.ctl".into(),
                    answered_ms: None,
                    error: Some("cannot connect: No such file or directory".into()),
                },
            ],
            recent: vec![Seen {
                at: 3_661,
                scanner: "rspamd".into(),
                verdict: "reject".into(),
                seconds: 0.012,
            }],
        };
        let text = scan(&v);
        assert!(
            text.contains("rspamd  127.0.0.1:11333  reachable (1.2 ms)"),
            "{text}"
        );
        assert!(
            text.contains("clamd   unix:/run/clamd.ctl  UNREACHABLE: cannot connect"),
            "{text}"
        );
        assert!(
            text.contains("01:01:01Z  rspamd  reject         0.012s"),
            "{text}"
        );
        let off = scan(&ScanStatus {
            enabled: false,
            scanners: Vec::new(),
            recent: Vec::new(),
        });
        assert!(off.starts_with("content scanning is off"), "{off}");
    }
    use crate::control::reply::{DomainQueue, PendingConfirm, QueueStatus};

    #[test]
    fn status_prints_every_field_of_the_reply() {
        let v = Status {
            version: "0.1.0".into(),
            hostname: "mx.example.com".into(),
            uptime: 7_300,
            revision: Some(3),
            pending_confirm: Some(PendingConfirm {
                revision: 3,
                rolls_back_in: 200,
            }),
            connections: 4,
            queue: QueueStatus {
                messages: 3,
                bytes: 999,
                deferred_recipients: 1,
                oldest_age: Some(5_000),
                commits: 17,
                failing: Some("disk full".into()),
                domains: vec![DomainQueue {
                    domain: "example.com".into(),
                    pending: 2,
                    deferred: 1,
                }],
            },
        };
        assert_eq!(
            status(&v),
            "edgemx 0.1.0  mx.example.com\n\
             uptime        2h\n\
             revision      3\n\
             pending       revision 3 rolls back in 3m unless `confirm`\n\
             connections   4 open\n\
             queue         3 messages, 999 bytes, 1 recipients deferred, oldest 83m\n\
             commits       17 durable queue commits since start\n\
             STORAGE       cannot commit, refusing mail (452): disk full\n  \
             example.com                         2 pending      1 deferred\n"
        );
    }

    #[test]
    fn tls_route_history_and_probe_read_as_before() {
        let cert = TlsCertificate {
            path: "/data/tls/cert.pem".into(),
            generated: true,
            key: "ECDSA P-256".into(),
            chain_length: 1,
            sha256: "AB:CD".into(),
            subject: "CN=mx.test".into(),
            issuer: "CN=mx.test".into(),
            names: vec!["DNS:mx.test".into(), "IP:192.0.2.1".into()],
            not_after: None,
        };
        let rsa = TlsCertificate {
            path: "/etc/rsa.pem".into(),
            generated: false,
            key: "RSA 2048".into(),
            not_after: Some("2030-01-01 00:00:00 UTC".into()),
            ..cert.clone()
        };
        let t = Tls {
            certificates: vec![cert, rsa],
            versions: vec!["TLSv1.3".into(), "TLSv1.2".into()],
            cipher_suites: vec!["A".into(), "B".into()],
            cpu: vec![("AES-NI".into(), true), ("VAES".into(), false)],
            code_paths: vec![("AES-GCM".into(), "AES-NI + PCLMULQDQ".into())],
        };
        assert_eq!(
            tls(&t),
            "certificate   /data/tls/cert.pem (self-signed, generated)\n\
             key           ECDSA P-256\n\
             subject       CN=mx.test\n\
             names         DNS:mx.test, IP:192.0.2.1\n\
             issuer        CN=mx.test\n\
             SHA-256       AB:CD\n\
             expires       unknown\n\
             chain         1 certificate(s)\n\
             (served to clients without ECDSA)\n\
             certificate   /etc/rsa.pem\n\
             key           RSA 2048\n\
             subject       CN=mx.test\n\
             names         DNS:mx.test, IP:192.0.2.1\n\
             issuer        CN=mx.test\n\
             SHA-256       AB:CD\n\
             expires       2030-01-01 00:00:00 UTC\n\
             chain         1 certificate(s)\n\
             versions      TLSv1.3 TLSv1.2\n\
             ciphers       A B\n\
             CPU crypto    AES-NI yes, VAES no\n\
             ring AES-GCM  AES-NI + PCLMULQDQ\n"
        );
        let r = Route {
            domain: "example.com".into(),
            accepted: false,
            route: None,
            next_hops: vec!["a:25".into(), "b:25".into()],
            tls: "verify".into(),
            rewriting: "none".into(),
            verdict: "relayed (network 10.0.0.0/8)".into(),
        };
        assert_eq!(
            route(&r),
            "domain      example.com\n\
             verdict     relayed (network 10.0.0.0/8)\n\
             route       (none: the domain's own settings)\n\
             next hops   a:25, b:25\n\
             TLS         verify\n\
             rewriting   none\n"
        );
        let h = [Revision {
            number: 4,
            time: 1_700_000_000,
            comment: "added other.test".into(),
        }];
        assert_eq!(
            history(&h),
            "  #  revision  committed             comment\n  \
             0         4  2023-11-14 22:13:20  added other.test\n\
             (`rollback #` loads a revision into the candidate)\n"
        );
        let p = Probe {
            transcript: vec!["< 220 hi".into(), "> QUIT".into()],
            ms: 12,
        };
        assert_eq!(probe(&p), "  < 220 hi\n  > QUIT\nprobe ok in 12 ms\n");
    }
}
