//! The DNS audit of a mail domain: MX set, SPF, DMARC, MTA-STS and TLS-RPT records, their
//! TTLs and whether several resolvers agree (`edgemx dns check`), and a timed plan for an MX
//! change from the live TTLs (`edgemx dns plan-mx-change`).
//!
//! Owns the rules and their findings; every lookup goes through [`super::Resolver`] built
//! from `--resolver` or `[dns]`, never a public provider. It only reads DNS.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `mx.rs` | MX targets: CNAME, IP literal, resolution, equal preferences, our place |
//! | `spf.rs` | SPF syntax, the 10-lookup limit (recursive), `all`, coverage of our addresses |
//! | `dmarc.rs` | DMARC policy and reporting; MTA-STS and TLS-RPT records |
//! | `report.rs` | human and JSON output |
//! | `plan.rs` | the MX change plan |
//! | `cli.rs` | the `edgemx dns` subcommands and their exit codes |

pub mod cli;
mod dmarc;
mod mx;
mod plan;
mod report;
mod spf;

use super::Resolver;
use serde::Serialize;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warning,
    Error,
}

/// One result of a rule: `check` is a stable identifier (`mx.cname`, `spf.lookups`…).
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    pub check: &'static str,
    pub message: String,
}

/// The role this gateway plays for the domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Primary,
    Secondary,
}

/// What the audit knows about us, to check our place in the MX set and SPF coverage.
#[derive(Debug, Clone, Default)]
pub struct Ours {
    pub hostname: Option<String>,
    pub role: Option<Role>,
    /// Addresses our outbound mail leaves from.
    pub outbound: Vec<IpAddr>,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub domain: String,
    pub resolvers: Vec<String>,
    pub mx: mx::MxReport,
    pub spf: spf::SpfReport,
    pub dmarc: dmarc::DmarcReport,
    pub mta_sts: dmarc::PolicyRecord,
    pub tls_rpt: dmarc::PolicyRecord,
    pub findings: Vec<Finding>,
    pub errors: usize,
    pub warnings: usize,
}

impl Report {
    fn add(&mut self, level: Level, check: &'static str, message: impl Into<String>) {
        let message = message.into();
        // Lookup errors carry the enhanced status delivery would use (`4.4.3 …`): noise here.
        let message = match message.split_once(' ') {
            Some((code, rest)) if is_status(code) => rest.to_owned(),
            _ => message,
        };
        self.findings.push(Finding {
            level,
            check,
            message,
        });
    }

    /// Counts and orders the findings: errors first, then warnings, then notes.
    fn finish(&mut self) {
        self.findings.sort_by_key(|f| std::cmp::Reverse(f.level));
        self.errors = self.count(Level::Error);
        self.warnings = self.count(Level::Warning);
    }

    fn count(&self, level: Level) -> usize {
        self.findings.iter().filter(|f| f.level == level).count()
    }

    pub fn human(&self) -> String {
        report::human(self)
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

/// Audits `domain` with the first resolver and compares the key answers of the others.
/// `names` label the resolvers in the output.
pub async fn check(domain: &str, resolvers: &[(String, Resolver)], ours: &Ours) -> Report {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let mut report = Report {
        domain: domain.clone(),
        resolvers: resolvers.iter().map(|(name, _)| name.clone()).collect(),
        ..Report::default()
    };
    let Some((_, first)) = resolvers.first() else {
        report.add(Level::Error, "resolver", "no resolver to ask");
        report.finish();
        return report;
    };
    mx::check(first, &domain, ours, &mut report).await;
    spf::check(first, &domain, ours, &mut report).await;
    dmarc::check(first, &domain, &mut report).await;
    agreement(&domain, resolvers, &mut report).await;
    report.finish();
    report
}

pub use plan::{Plan, plan};

/// `4.4.3`, `5.1.2`: an RFC 3463 enhanced status code.
fn is_status(word: &str) -> bool {
    let parts: Vec<&str> = word.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The answers that must be the same everywhere: MX set, SPF and DMARC records.
async fn key_answers(resolver: &Resolver, domain: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let mut mx = match resolver.mx_hosts(domain).await {
        Ok(hosts) => hosts.into_iter().map(|(p, h)| format!("{p} {h}")).collect(),
        Err(e) => vec![format!("error: {e}")],
    };
    mx.sort();
    out.push(("MX", mx.join(", ")));
    let dmarc = format!("_dmarc.{domain}");
    for (what, name, tag) in [("SPF", domain, "v=spf1"), ("DMARC", &dmarc, "v=dmarc1")] {
        let mut texts: Vec<String> = match resolver.txt(name).await {
            Ok(texts) => texts
                .into_iter()
                .filter(|t| t.to_ascii_lowercase().starts_with(tag))
                .collect(),
            Err(e) => vec![format!("error: {e}")],
        };
        texts.sort();
        out.push((what, texts.join(" | ")));
    }
    out
}

async fn agreement(domain: &str, resolvers: &[(String, Resolver)], report: &mut Report) {
    let [(first_name, first), rest @ ..] = resolvers else {
        return;
    };
    if rest.is_empty() {
        return;
    }
    let reference = key_answers(first, domain).await;
    for (name, resolver) in rest {
        let answers = key_answers(resolver, domain).await;
        for ((what, ours), (_, theirs)) in reference.iter().zip(&answers) {
            if ours != theirs {
                report.add(
                    Level::Warning,
                    "resolvers.disagree",
                    format!(
                        "{what}: {first_name} answers [{ours}] but {name} answers [{theirs}] \
                         (a change still propagating, or a stale secondary)"
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_errors_lose_their_enhanced_status() {
        let mut report = Report::default();
        report.add(
            Level::Error,
            "mx.lookup",
            "4.4.3 MX lookup for a.test failed",
        );
        report.add(Level::Info, "x", "10 hosts");
        assert_eq!(report.findings[0].message, "MX lookup for a.test failed");
        assert_eq!(report.findings[1].message, "10 hosts");
        assert!(is_status("5.1.10") && !is_status("5.1") && !is_status("a.b.c"));
    }
}
