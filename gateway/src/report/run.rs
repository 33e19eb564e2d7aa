//! One reporting run: picks the buckets that are due, finds where their domain wants
//! reports (`_smtp._tls.DOMAIN` for TLS-RPT, `_dmarc.DOMAIN` for DMARC with RFC 7489 §7.1
//! verification of destinations outside the domain), builds each report and queues it
//! together with the removal of its buckets.
//!
//! A bucket taken out of the book goes back (merged with anything counted meanwhile)
//! when its report is not queued for a reason that may pass: a DNS error, a full run, the
//! DMARC rate limit, a queue failure. It is dropped when the domain asks for no reports.

use super::Inner;
use super::book::{self, Book};
use super::dmarc::{self, DmarcHour, Identity};
use super::tlsrpt::TlsDay;
use crate::config::Config;
use crate::dns::{DnsError, Resolver};
use crate::envelope::{Envelope, Recipient};
use crate::observe::events::Event;
use crate::observe::reports::Sent;
use crate::queue::Change;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use std::sync::Arc;

/// Why a report was not queued, as counted and shown.
enum Outcome {
    Queued(String),
    /// Kept for a later run.
    Later(&'static str, String),
    /// The data is dropped: the domain wants no (deliverable) report.
    Dropped(&'static str, String),
}

pub struct Run<'a> {
    inner: &'a Inner,
    config: Arc<Config>,
    force: bool,
    now: u64,
    /// Our `[[auth.dkim]]` keys: a report from a domain we sign for is signed like its
    /// other mail (receivers check DMARC on reports too).
    signer: crate::dkim::Signer,
    /// Reports and bytes this run may still queue.
    reports_left: u32,
    bytes_left: u64,
    sent: Vec<Sent>,
}

impl<'a> Run<'a> {
    pub fn new(inner: &'a Inner, force: bool) -> Run<'a> {
        let config = inner.config.borrow().clone();
        let signer = crate::dkim::Signer::load(&config).unwrap_or_else(|e| {
            log::warn!("reports: DKIM keys unusable, reports go unsigned: {e}");
            crate::dkim::Signer::default()
        });
        Run {
            inner,
            signer,
            force,
            now: crate::time::unix_now(),
            reports_left: config.auth.report_max_per_run,
            bytes_left: config.auth.report_max_bytes.0,
            config,
            sent: Vec::new(),
        }
    }

    pub async fn go(mut self) -> Vec<Sent> {
        let auth = &self.config.auth;
        if !auth.tls_reports && !auth.dmarc_reports {
            return self.sent;
        }
        let resolver = match Resolver::new(&self.config.dns) {
            Ok(resolver) => resolver,
            Err(e) => {
                log::warn!("reports: no DNS resolver, nothing sent this run: {e}");
                return self.sent;
            }
        };
        if auth.tls_reports {
            self.tls(&resolver).await;
        }
        if self.config.auth.dmarc_reports {
            self.dmarc(&resolver).await;
        }
        self.sent
    }

    async fn tls(&mut self, resolver: &Resolver) {
        let (now, force) = (self.now, self.force);
        let due: Vec<(u64, String)> = self
            .inner
            .book()
            .tls
            .keys()
            .filter(|(day, _)| force || (day + 1) * 86_400 <= now)
            .cloned()
            .collect();
        for key in due {
            let Some(bucket) = self.inner.book().tls.remove(&key) else {
                continue;
            };
            let outcome = self.tls_report(resolver, key.0, &bucket).await;
            let domain = bucket.domain.clone();
            match &outcome {
                Outcome::Later(..) => put_back_tls(&mut self.inner.book(), key, bucket),
                Outcome::Queued(_) if (key.0 + 1) * 86_400 > now => {
                    self.inner.book().tls_cut.insert(key, now);
                }
                _ => {}
            }
            self.note("tlsrpt", &domain, outcome);
        }
        self.inner
            .book()
            .tls_cut
            .retain(|(day, _), _| (day + 1) * 86_400 > now);
    }

    async fn tls_report(&mut self, resolver: &Resolver, day: u64, bucket: &TlsDay) -> Outcome {
        let domain = &bucket.domain;
        let key = book::tls_key(day, domain);
        let name = format!("_smtp._tls.{domain}");
        let record = match resolver.txt(&name).await {
            Ok(texts) => texts.iter().find_map(|t| TlsRpt::parse(t.as_bytes()).ok()),
            Err(e) => return Outcome::Later("failed", format!("{name}: {e}")),
        };
        let Some(record) = record else {
            return self
                .discard(
                    &[key],
                    "skipped_no_policy",
                    format!("no TLSRPTv1 record at {name}"),
                )
                .await;
        };
        let mut to = Vec::new();
        for uri in &record.rua {
            match uri {
                ReportUri::Mail(address) => {
                    to.push(address.trim_start_matches("mailto:").to_string())
                }
                ReportUri::Http(url) => {
                    log::info!("reports: {domain}: rua {url} skipped: only mailto: is supported")
                }
            }
        }
        if to.is_empty() {
            return self
                .discard(
                    &[key],
                    "skipped_no_mailto",
                    format!("{name} has no mailto: rua"),
                )
                .await;
        }
        let end = ((day + 1) * 86_400).min(self.now);
        let auth = &self.config.auth;
        let report_id = format!(
            "{}.{}.{}@{}",
            bucket.begin,
            domain,
            fastrand::u32(..),
            submitter(&auth.report_from)
        );
        let contact = match auth.report_contact.is_empty() {
            true => format!("mailto:{}", auth.report_from),
            false => auth.report_contact.clone(),
        };
        let report = bucket.report(&auth.report_org_name, &contact, &report_id, end);
        let mut message = Vec::new();
        let from = (auth.report_org_name.as_str(), auth.report_from.as_str());
        if let Err(e) = report.write_rfc5322(
            domain,
            submitter(&auth.report_from),
            from,
            to.iter().map(String::as_str),
            &mut message,
        ) {
            return Outcome::Dropped("failed", format!("cannot build the report: {e}"));
        }
        self.queue(message, &to, vec![Change::DeleteRecord(key)])
            .await
    }

    async fn dmarc(&mut self, resolver: &Resolver) {
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

    /// Queues `message` to `to` with `changes` in one commit, within the run's limits.
    async fn queue(
        &mut self,
        message: Vec<u8>,
        to: &[String],
        mut changes: Vec<Change>,
    ) -> Outcome {
        let message = match self.signer.sign(&message) {
            Ok(mut fields) => {
                fields.extend_from_slice(&message);
                fields
            }
            Err(e) => {
                log::warn!("reports: DKIM signing failed, the report goes unsigned: {e}");
                message
            }
        };
        let size = message.len() as u64;
        if self.reports_left == 0 || size > self.bytes_left {
            return Outcome::Later(
                "skipped_run_limit",
                "the run's report or byte limit is reached; next run".into(),
            );
        }
        let auth = &self.config.auth;
        let recipients = to.iter().map(|a| Recipient::pending(a.clone())).collect();
        let envelope = Envelope {
            client: format!("{} (report)", self.config.hostname),
            eight_bit: !message.is_ascii(),
            ..Envelope::new(auth.report_from.clone(), recipients, self.now)
        };
        changes.insert(
            0,
            Change::Insert {
                envelope,
                body: message,
            },
        );
        match self.inner.queue.apply(changes).await {
            Ok(ids) => {
                self.reports_left -= 1;
                self.bytes_left -= size;
                let id = ids.first().map(|id| id.to_string()).unwrap_or_default();
                Outcome::Queued(format!("{id} to {}", to.join(", ")))
            }
            Err(e) => Outcome::Later("failed", format!("cannot queue the report: {e}")),
        }
    }

    /// Removes the stored buckets `keys` of a domain that gets no report.
    async fn discard(&self, keys: &[String], result: &'static str, why: String) -> Outcome {
        let changes = keys.iter().cloned().map(Change::DeleteRecord).collect();
        if let Err(e) = self.inner.queue.apply(changes).await {
            // Still in the store: read back (and dropped again) after a restart.
            log::warn!("reports: cannot remove the aggregate: {e}");
        }
        Outcome::Dropped(result, why)
    }

    fn note(&mut self, kind: &'static str, domain: &str, outcome: Outcome) {
        let (result, detail) = match outcome {
            Outcome::Queued(detail) => ("queued", detail),
            Outcome::Later(result, detail) | Outcome::Dropped(result, detail) => (result, detail),
        };
        log::info!("reports: {kind} {domain}: {result}: {detail}");
        self.inner.events.publish(&Event::ReportSent {
            kind,
            domain,
            result,
        });
        self.sent.push(Sent {
            kind: kind.into(),
            domain: domain.into(),
            at: self.now,
            result: result.into(),
            detail,
        });
    }
}

fn put_back_tls(book: &mut Book, key: (u64, String), bucket: TlsDay) {
    match book.tls.get_mut(&key) {
        Some(newer) => {
            newer.merge(bucket);
            book.dirty.insert(book::tls_key(key.0, &key.1));
        }
        None => {
            book.tls.insert(key, bucket);
        }
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

/// The domain reports are submitted by: that of `report_from`.
fn submitter(report_from: &str) -> &str {
    report_from.rsplit_once('@').map_or(report_from, |(_, d)| d)
}

/// The DMARC record that applies to `domain`: its own, else the nearest parent's (the
/// Organizational Domain without a public suffix list: the walk stops before the top
/// level). Returns where it was found and its text.
async fn find_policy(
    resolver: &Resolver,
    domain: &str,
) -> Result<Option<(String, String)>, DnsError> {
    let labels: Vec<&str> = domain.split('.').collect();
    for start in 0..labels.len().saturating_sub(1) {
        let name = labels[start..].join(".");
        let texts = resolver.txt(&format!("_dmarc.{name}")).await?;
        if let Some(text) = texts.into_iter().find(|t| is_dmarc(t)) {
            return Ok(Some((name, text)));
        }
    }
    Ok(None)
}

fn is_dmarc(text: &str) -> bool {
    text.trim_start()
        .get(..8)
        .is_some_and(|v| v.eq_ignore_ascii_case("v=DMARC1"))
}

/// RFC 7489 §7.1: a destination outside the policy domain (neither the domain, one of its
/// subdomains, nor a parent) must publish `POLICY._report._dmarc.DEST` with `v=DMARC1`.
async fn verified(resolver: &Resolver, policy_domain: &str, address: &str) -> bool {
    let Some((_, dest)) = address.rsplit_once('@') else {
        return false;
    };
    let dest = dest.to_ascii_lowercase();
    let related = |a: &str, b: &str| a == b || a.ends_with(&format!(".{b}"));
    if related(&dest, policy_domain) || related(policy_domain, &dest) {
        return true;
    }
    let name = format!("{policy_domain}._report._dmarc.{dest}");
    match resolver.txt(&name).await {
        Ok(texts) => texts.iter().any(|t| is_dmarc(t)),
        Err(DnsError::Permanent(_)) => false,
        Err(e) => {
            log::warn!("reports: {name}: {e}; the destination is not used this time");
            false
        }
    }
}
