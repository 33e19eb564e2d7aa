//! TLS-RPT in a run: the days that have ended (or all, when forced), the domain's
//! `_smtp._tls` record, the RFC 8460 §5.3 message to its `mailto:` destinations.

use super::lookup::{records, submitter};
use super::{Outcome, Run};
use crate::dns::Resolver;
use crate::queue::Change;
use crate::report::book::{self, Book};
use crate::report::tlsrpt::TlsDay;
use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};

impl Run<'_> {
    pub(super) async fn tls(&mut self, resolver: &Resolver) {
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
        let record = match records(resolver, &name).await {
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
