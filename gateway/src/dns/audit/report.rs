//! The human form of a [`Report`] (the JSON form is its serde serialization): the records
//! as found, then the findings, errors first.

use super::{Level, Report};
use std::fmt::Write;

pub fn human(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "DNS audit of {} (resolvers: {})",
        r.domain,
        r.resolvers.join(", ")
    );
    let _ = writeln!(out, "\nMX{}", ttl(r.mx.ttl));
    if r.mx.null_mx {
        let _ = writeln!(out, "  0 .  (null MX: accepts no mail)");
    }
    for h in &r.mx.hosts {
        let addrs: Vec<String> = h.addresses.iter().map(|a| a.to_string()).collect();
        let mut notes = Vec::new();
        if let Some(alias) = &h.cname {
            notes.push(format!("CNAME for {alias}"));
        }
        if h.ip_literal {
            notes.push("IP literal".into());
        }
        if h.ours {
            notes.push("this gateway".into());
        }
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("  ({})", notes.join(", "))
        };
        let addrs = if addrs.is_empty() {
            "-".to_string()
        } else {
            addrs.join(" ")
        };
        let _ = writeln!(out, "  {:>5} {:<32} {addrs}{notes}", h.preference, h.host);
    }
    let _ = writeln!(
        out,
        "\nSPF{}: {}",
        ttl(r.spf.ttl),
        r.spf.record.as_deref().unwrap_or("(none)")
    );
    if r.spf.record.is_some() {
        let _ = writeln!(
            out,
            "  {} DNS lookups of 10; all: {}",
            r.spf.lookups,
            r.spf.all.as_deref().unwrap_or("(none)")
        );
    }
    for (ip, result) in &r.spf.ours {
        let _ = writeln!(out, "  our address {ip}: {result}");
    }
    let _ = writeln!(
        out,
        "\nDMARC{}: {}",
        ttl(r.dmarc.ttl),
        r.dmarc.record.as_deref().unwrap_or("(none)")
    );
    if r.dmarc.record.is_some() {
        let list = |l: &[String]| {
            if l.is_empty() {
                "-".to_string()
            } else {
                l.join(", ")
            }
        };
        let _ = writeln!(
            out,
            "  policy {}; subdomains {}; rua {}; ruf {}",
            r.dmarc.policy.as_deref().unwrap_or("-"),
            r.dmarc.subdomain_policy.as_deref().unwrap_or("(as policy)"),
            list(&r.dmarc.rua),
            list(&r.dmarc.ruf)
        );
    }
    let _ = writeln!(
        out,
        "\nMTA-STS{}: {}",
        ttl(r.mta_sts.ttl),
        r.mta_sts.record.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(
        out,
        "TLS-RPT{}: {}",
        ttl(r.tls_rpt.ttl),
        r.tls_rpt.record.as_deref().unwrap_or("(none)")
    );
    let _ = writeln!(out, "\nFindings");
    for f in &r.findings {
        let level = match f.level {
            Level::Error => "ERROR",
            Level::Warning => "WARNING",
            Level::Info => "info",
        };
        let _ = writeln!(out, "  {level:<8} {:<22} {}", f.check, f.message);
    }
    let _ = writeln!(out, "\n{} error(s), {} warning(s)", r.errors, r.warnings);
    out
}

fn ttl(ttl: Option<u32>) -> String {
    ttl.map_or(String::new(), |t| format!(" (TTL {t}s)"))
}
