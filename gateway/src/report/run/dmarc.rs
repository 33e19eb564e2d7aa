//! DMARC aggregate reports in a run: the periods of the policy's `ri` that have ended (or
//! all, when forced), one report per domain and period, destinations verified (RFC 7489
//! §7.1) and within their `!size`.

use super::lookup::{find_policy, submitter, verified};
use super::{Outcome, Run};
use crate::dns::Resolver;
use crate::queue::Change;
use crate::report::book::{self, Book};
use crate::report::dmarc::{self, DmarcHour, Identity};
use mail_auth::common::parse::TxtRecordParser;
use std::collections::BTreeMap;

impl Run<'_> {
    /// Reports per policy domain: the From: domains whose policy is found at the same
    /// domain (their own, or a parent's) share one report.
    pub(super) async fn dmarc(&mut self, resolver: &Resolver) {
        let (now, force) = (self.now, self.force);
        // Nothing can be due before an hour has ended (the shortest period): no lookup.
        let domains: Vec<String> = {
            let book = self.inner.book();
            let mut domains: Vec<String> = book
                .dmarc
                .keys()
                .filter(|(_, h)| force || (h + 1) * 3_600 <= now)
                .map(|(d, _)| d.clone())
                .collect();
            domains.dedup();
            domains
        };
        let mut policies: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for domain in domains {
            match find_policy(resolver, &domain).await {
                Ok(Some((policy_domain, text))) => {
                    let entry = policies.entry(policy_domain).or_insert((text, Vec::new()));
                    entry.1.push(domain);
                }
                Ok(None) => {
                    let keys: Vec<String> = self
                        .take_dmarc(std::slice::from_ref(&domain), |_| true)
                        .iter()
                        .map(|h| book::dmarc_key(&h.domain, h.hour))
                        .collect();
                    let why = format!("no DMARC record for {domain}");
                    let outcome = self.discard(&keys, "skipped_no_policy", why).await;
                    self.note("dmarc", &domain, outcome);
                }
                Err(e) => {
                    let why = format!("DMARC record of {domain}: {e}");
                    self.note("dmarc", &domain, Outcome::Later("failed", why));
                }
            }
        }
        for (policy_domain, (text, domains)) in policies {
            let outcome = self
                .dmarc_policy(resolver, &policy_domain, &text, &domains)
                .await;
            if let Some(outcome) = outcome {
                self.note("dmarc", &policy_domain, outcome);
            }
        }
    }

    /// The report of `policy_domain` (published as `text`) on `domains`; `None` when
    /// nothing is due yet.
    async fn dmarc_policy(
        &mut self,
        resolver: &Resolver,
        policy_domain: &str,
        text: &str,
        domains: &[String],
    ) -> Option<Outcome> {
        let (now, force) = (self.now, self.force);
        let period = dmarc::period(dmarc::ri(text));
        let due = |hour: u64| force || dmarc::period_of(hour, period).1 <= now;
        let any_due = self
            .inner
            .book()
            .dmarc
            .keys()
            .any(|(d, h)| domains.contains(d) && due(*h));
        if !any_due {
            return None;
        }
        let last = self.inner.book().dmarc_sent.get(policy_domain).copied();
        if last.is_some_and(|at| at / period == now / period) {
            return Some(Outcome::Later(
                "skipped_rate_limit",
                format!(
                    "one report per {} h, sent already in this period",
                    period / 3_600
                ),
            ));
        }
        let hours = self.take_dmarc(domains, due);
        let outcome = self
            .dmarc_report(resolver, policy_domain, text, &hours, period)
            .await;
        let mut book = self.inner.book();
        match &outcome {
            Outcome::Later(..) => {
                for hour in hours {
                    put_back_dmarc(&mut book, hour);
                }
            }
            Outcome::Queued(_) => {
                book.dmarc_sent.insert(policy_domain.to_string(), now);
            }
            Outcome::Dropped(..) => {}
        }
        Some(outcome)
    }

    async fn dmarc_report(
        &mut self,
        resolver: &Resolver,
        policy_domain: &str,
        text: &str,
        hours: &[DmarcHour],
        period: u64,
    ) -> Outcome {
        let keys: Vec<String> = hours
            .iter()
            .map(|h| book::dmarc_key(&h.domain, h.hour))
            .collect();
        let record = match mail_auth::dmarc::Dmarc::parse(text.as_bytes()) {
            Ok(record) => record,
            Err(e) => {
                return self
                    .discard(
                        &keys,
                        "skipped_no_policy",
                        format!("DMARC record of {policy_domain} unreadable: {e:?}"),
                    )
                    .await;
            }
        };
        let mut allowed = Vec::new();
        let mut refused = Vec::new();
        for uri in record.rua() {
            let address = uri.uri().trim_start_matches("mailto:").to_string();
            match verified(resolver, policy_domain, &address).await {
                true => allowed.push((address, uri.max_size())),
                false => refused.push(address),
            }
        }
        if !refused.is_empty() {
            log::warn!(
                "reports: {policy_domain}: rua {} refused: no {policy_domain}._report._dmarc record authorises it (RFC 7489 §7.1)",
                refused.join(", ")
            );
        }
        if allowed.is_empty() {
            let why = match refused.is_empty() {
                true => format!("no rua in the DMARC record of {policy_domain}"),
                false => format!("destination not authorised: {}", refused.join(", ")),
            };
            let result = if refused.is_empty() {
                "skipped_no_rua"
            } else {
                "skipped_unverified"
            };
            return self.discard(&keys, result, why).await;
        }
        let begin = hours
            .iter()
            .map(|h| dmarc::period_of(h.hour, period).0)
            .min()
            .unwrap_or(self.now);
        let end = hours
            .iter()
            .map(|h| dmarc::period_of(h.hour, period).1)
            .max()
            .unwrap_or(self.now)
            .min(self.now);
        let auth = &self.config.auth;
        let submitter = submitter(&auth.report_from);
        let who = Identity {
            org_name: &auth.report_org_name,
            email: &auth.report_from,
            contact: &auth.report_contact,
        };
        let report_id = format!("{policy_domain}.{begin}.{}", fastrand::u32(..));
        let report = dmarc::report(&who, policy_domain, hours, &report_id, begin, end);
        let build = |to: &[&str]| {
            let mut message = Vec::new();
            let from = (auth.report_org_name.as_str(), auth.report_from.as_str());
            report
                .write_rfc5322(submitter, from, to.iter().copied(), &mut message)
                .map(|()| message)
        };
        let everyone: Vec<&str> = allowed.iter().map(|(a, _)| a.as_str()).collect();
        let size = match build(&everyone) {
            Ok(message) => message.len(),
            Err(e) => return Outcome::Dropped("failed", format!("cannot build the report: {e}")),
        };
        // `!size` (RFC 7489 §6.2): a destination that takes less is left out.
        let (fit, too_big): (Vec<_>, Vec<_>) = allowed
            .iter()
            .partition(|(_, max)| *max == 0 || size <= *max);
        if fit.is_empty() {
            let why = format!("{size} bytes is over the size limit of every rua");
            return self.discard(&keys, "skipped_too_big", why).await;
        }
        for (address, max) in &too_big {
            log::info!(
                "reports: {policy_domain}: {address} skipped: the report ({size} bytes) is over its !{max}"
            );
        }
        let to: Vec<String> = fit.iter().map(|(a, _)| a.clone()).collect();
        let message = match build(&to.iter().map(String::as_str).collect::<Vec<_>>()) {
            Ok(message) => message,
            Err(e) => return Outcome::Dropped("failed", format!("cannot build the report: {e}")),
        };
        let mut changes: Vec<Change> = keys.into_iter().map(Change::DeleteRecord).collect();
        if let Some(value) = book::encode(&self.now) {
            changes.push(Change::PutRecord {
                key: book::sent_key(policy_domain),
                value,
            });
        }
        self.queue(message, &to, changes).await
    }

    /// Takes the buckets of `domains` whose hour passes `due` out of the book.
    fn take_dmarc(&self, domains: &[String], due: impl Fn(u64) -> bool) -> Vec<DmarcHour> {
        let mut book = self.inner.book();
        let keys: Vec<(String, u64)> = book
            .dmarc
            .keys()
            .filter(|(d, h)| domains.contains(d) && due(*h))
            .cloned()
            .collect();
        keys.into_iter()
            .filter_map(|k| book.dmarc.remove(&k))
            .collect()
    }
}

fn put_back_dmarc(book: &mut Book, hour: DmarcHour) {
    let key = (hour.domain.clone(), hour.hour);
    match book.dmarc.get_mut(&key) {
        Some(newer) => {
            newer.merge(hour);
            book.dirty.insert(book::dmarc_key(&key.0, key.1));
        }
        None => {
            book.dmarc.insert(key, hour);
        }
    }
}
