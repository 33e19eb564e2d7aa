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

impl Run<'_> {
    pub(super) async fn dmarc(&mut self, resolver: &Resolver) {
        let domains: Vec<String> = {
            let book = self.inner.book();
            let mut domains: Vec<String> = book.dmarc.keys().map(|(d, _)| d.clone()).collect();
            domains.dedup();
            domains
        };
        for domain in domains {
            if let Some(outcome) = self.dmarc_domain(resolver, &domain).await {
                self.note("dmarc", &domain, outcome);
            }
        }
    }

    /// `None` when nothing of `domain` is due yet.
    async fn dmarc_domain(&mut self, resolver: &Resolver, domain: &str) -> Option<Outcome> {
        let (policy_domain, text) = match find_policy(resolver, domain).await {
            Ok(Some(found)) => found,
            Ok(None) => {
                let keys = self
                    .take_dmarc(domain, |_| true)
                    .into_iter()
                    .map(|h| book::dmarc_key(domain, h.hour))
                    .collect::<Vec<_>>();
                return Some(
                    self.discard(
                        &keys,
                        "skipped_no_policy",
                        format!("no DMARC record for {domain}"),
                    )
                    .await,
                );
            }
            Err(e) => {
                return Some(Outcome::Later(
                    "failed",
                    format!("DMARC record of {domain}: {e}"),
                ));
            }
        };
        let period = dmarc::period(dmarc::ri(&text));
        let (now, force) = (self.now, self.force);
        let due = |hour: u64| force || (hour * 3_600 / period + 1) * period <= now;
        let any_due = self
            .inner
            .book()
            .dmarc
            .iter()
            .any(|((d, h), _)| d == domain && due(*h));
        if !any_due {
            return None;
        }
        let last = self.inner.book().dmarc_sent.get(domain).copied();
        if last.is_some_and(|at| at / period == now / period) {
            return Some(Outcome::Later(
                "skipped_rate_limit",
                format!(
                    "one report per {} h, sent already in this period",
                    period / 3_600
                ),
            ));
        }
        let hours = self.take_dmarc(domain, due);
        let outcome = self
            .dmarc_report(resolver, domain, &policy_domain, &text, &hours, period)
            .await;
        let mut book = self.inner.book();
        match &outcome {
            Outcome::Later(..) => {
                for hour in hours {
                    put_back_dmarc(&mut book, hour);
                }
            }
            Outcome::Queued(_) => {
                book.dmarc_sent.insert(domain.to_string(), now);
            }
            Outcome::Dropped(..) => {}
        }
        Some(outcome)
    }

    async fn dmarc_report(
        &mut self,
        resolver: &Resolver,
        domain: &str,
        policy_domain: &str,
        text: &str,
        hours: &[DmarcHour],
        period: u64,
    ) -> Outcome {
        let keys: Vec<String> = hours
            .iter()
            .map(|h| book::dmarc_key(domain, h.hour))
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
            .map(|h| h.hour * 3_600 / period * period)
            .min()
            .unwrap_or(self.now);
        let end = hours
            .iter()
            .map(|h| (h.hour * 3_600 / period + 1) * period)
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
        let report_id = format!("{domain}.{begin}.{}", fastrand::u32(..));
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
                "reports: {domain}: {address} skipped: the report ({size} bytes) is over its !{max}"
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
                key: book::sent_key(domain),
                value,
            });
        }
        self.queue(message, &to, changes).await
    }

    /// Takes `domain`'s buckets whose hour passes `due` out of the book, oldest first.
    fn take_dmarc(&self, domain: &str, due: impl Fn(u64) -> bool) -> Vec<DmarcHour> {
        let mut book = self.inner.book();
        let keys: Vec<(String, u64)> = book
            .dmarc
            .keys()
            .filter(|(d, h)| d == domain && due(*h))
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
