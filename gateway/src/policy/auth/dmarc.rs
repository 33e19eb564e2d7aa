//! DMARC policy discovery in the order of RFC 7489 §6.6.3, around mail-auth's evaluation.
//!
//! mail-auth 0.13 discovers the policy with the DMARCbis tree walk: it queries `_dmarc.` at
//! the From: domain *and every parent up to the top-level domain*, and any DNS error on the
//! way makes the verdict a temporary error. So a sender whose own record exists and whose
//! mail passes everything was deferred (`451`) whenever a parent's lookup failed — with an
//! authoritative-only resolver, for every message (`_dmarc.com.` is not its zone).
//!
//! RFC 7489 §6.6.3 looks at the Organizational Domain only when the From: domain has no
//! record. We keep mail-auth's evaluation (alignment, `p`/`sp`/`np`, `t=y`) and feed it the
//! DNS answers through a per-message cache:
//! - the From: domain's own record is looked up first; without one, or on an error there,
//!   mail-auth runs unchanged (the parent lookups then decide, errors included);
//! - with one, the parents are still asked (they tell relaxed alignment where the
//!   Organizational Domain is), but a parent whose lookup fails is recorded as having no
//!   record instead of failing the message;
//! - a failed parent can only change the verdict for an identifier (SPF or DKIM domain that
//!   passed) at or under that parent and different from the From: domain: if the result is
//!   not a pass and such an identifier exists, the verdict stays a temporary error, as
//!   before. Exact alignment (`d=` or MAIL FROM domain equal to the From: domain) never
//!   needs the parents, and a top-level domain is never an Organizational Domain.

use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::dmarc::{Dmarc, Psd};
use mail_auth::{
    DkimResult, DmarcOutput, DmarcResult, DnsError, Error, MessageAuthenticator, Parameters,
    ResolverCache, SpfResult, Txt,
};
use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Instant;

pub async fn verify(auth: &MessageAuthenticator, params: DmarcParameters<'_>) -> DmarcOutput {
    let answers = Answers::default();
    let failed = match from_domain(&params) {
        Some(domain) => discover(auth, &domain, &answers).await,
        None => Vec::new(),
    };
    let identifiers = passing_identifiers(&params);
    let from = from_domain(&params).unwrap_or_default();
    let output = auth
        .verify_dmarc(Parameters::new(params).with_txt_cache(&answers))
        .await;
    if failed.is_empty() || output.result() == DmarcResult::Pass {
        return output;
    }
    let depends = identifiers.iter().any(|id| {
        *id != from
            && failed
                .iter()
                .any(|p| id == p || id.ends_with(&format!(".{p}")))
    });
    match depends {
        true => output.with_dkim_result(DmarcResult::TempError(Error::Dns(DnsError::Resolver(
            "no answer for a parent domain's DMARC record".into(),
        )))),
        false => output,
    }
}

/// Fills `answers` for the From: domain's walk; returns the parents whose lookup failed
/// while the domain's own record exists (empty otherwise).
async fn discover(auth: &MessageAuthenticator, domain: &str, answers: &Answers) -> Vec<String> {
    let names = walk(domain);
    let Some((exact, parents)) = names.split_first() else {
        return Vec::new();
    };
    match auth.txt_lookup::<Dmarc>(key(exact), Some(answers)).await {
        Ok(record) if !matches!(record.psd, Psd::Yes | Psd::No) => {}
        // No record of its own (the Organizational Domain decides), a DNS error (the
        // verdict is open) or a record that ends the walk: mail-auth as it is.
        _ => return Vec::new(),
    }
    let mut failed = Vec::new();
    for parent in parents {
        match auth.txt_lookup::<Dmarc>(key(parent), Some(answers)).await {
            Ok(record) if matches!(record.psd, Psd::Yes | Psd::No) => break,
            Ok(_) => {}
            Err(e @ Error::Dns(DnsError::RecordNotFound(_) | DnsError::InvalidRecordType)) => {
                answers.insert(key(parent).into(), Txt::Error(e), Instant::now());
            }
            Err(_) => {
                let none = Txt::Error(Error::Dns(DnsError::InvalidRecordType));
                answers.insert(key(parent).into(), none, Instant::now());
                // A top-level domain is a public suffix, never an Organizational Domain
                // (RFC 7489 §3.2): its record could not make an identifier align.
                if parent.contains('.') {
                    failed.push(parent.clone());
                }
            }
        }
    }
    failed
}

/// The names mail-auth's tree walk queries for `domain`, in order: the domain, then (from 8
/// labels on) its last 7 labels, then one label fewer each time down to the top level.
fn walk(domain: &str) -> Vec<String> {
    let labels: Vec<&str> = domain.split('.').filter(|l| !l.is_empty()).collect();
    let total = labels.len();
    if total < 2 {
        return Vec::new();
    }
    let mut names = Vec::new();
    let mut count = total;
    loop {
        names.push(labels[total - count..].join("."));
        if count == 1 {
            break names;
        }
        count = if count >= 8 { 7 } else { count - 1 };
    }
}

fn key(name: &str) -> String {
    format!("_dmarc.{name}.")
}

/// The single From: domain DMARC applies to (lower case), as mail-auth selects it.
fn from_domain(params: &DmarcParameters<'_>) -> Option<String> {
    let mut domains = params
        .message
        .from
        .iter()
        .filter_map(|f| f.rsplit_once('@'))
        .map(|(_, d)| mail_auth::common::to_a_label(d).to_ascii_lowercase());
    let first = domains.next()?;
    domains.all(|d| d == first).then_some(first)
}

/// The domains of the SPF and DKIM results that passed, lower case.
fn passing_identifiers(params: &DmarcParameters<'_>) -> Vec<String> {
    let mut ids: Vec<String> = params
        .dkim_output
        .iter()
        .filter(|o| *o.result() == DkimResult::Pass)
        .filter_map(|o| o.signature())
        .map(|s| s.d.to_ascii_lowercase())
        .collect();
    if params.spf_output.result() == SpfResult::Pass {
        ids.push(params.rfc5321_mail_from_domain.to_ascii_lowercase());
    }
    ids
}

/// One message's DMARC TXT answers, consulted by mail-auth before it asks the resolver.
#[derive(Default)]
struct Answers(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Answers {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().ok()?.remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _valid_until: Instant) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_queries_the_domain_then_each_parent() {
        assert_eq!(
            walk("a.example.com"),
            ["a.example.com", "example.com", "com"]
        );
        assert_eq!(walk("com"), Vec::<String>::new());
        let long = "a.b.c.d.e.f.g.h.example.com";
        let names = walk(long);
        assert_eq!(names[0], long);
        assert_eq!(names[1], "d.e.f.g.h.example.com", "the last 7 labels");
        assert_eq!(names.last().unwrap(), "com");
    }
}
