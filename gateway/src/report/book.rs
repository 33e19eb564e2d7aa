//! The aggregates in memory: TLS-RPT sessions per (UTC day, policy domain) and DMARC rows
//! per (From: domain, UTC hour), with the keys changed since the last flush.
//!
//! Counting happens on the publisher's thread (a session, a delivery worker) under one
//! short mutex: a map lookup and an add. The whole book is the truth; the queue's `records`
//! table holds the copy as of the last flush (`mod.rs`), one record per bucket:
//!
//! | key | value |
//! | --- | --- |
//! | `tlsrpt/DAY/DOMAIN` | format byte `1`, then a [`TlsDay`] as JSON |
//! | `dmarc/DOMAIN/HOUR` | format byte `1`, then a [`DmarcHour`] as JSON |
//! | `dmarc-sent/DOMAIN` | format byte `1`, then the unix time of the last report, as JSON |
//!
//! DAY and HOUR are days and hours since the Unix epoch, zero-padded so keys sort by time.

use super::dmarc::DmarcHour;
use super::tlsrpt::TlsDay;
use crate::observe::events::{DmarcChecked, Event};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// Buckets per kind at most: a flood of distinct domains cannot grow the book (or the
/// store) without bound; what does not fit is not counted, with one warning per flush.
pub const MAX_BUCKETS: usize = 20_000;

const FORMAT: u8 = 1;

/// Every record of this module starts with one of these.
pub const PREFIXES: [&str; 2] = ["tlsrpt/", "dmarc"];

#[derive(Default)]
pub struct Book {
    pub tls: BTreeMap<(u64, String), TlsDay>,
    pub dmarc: BTreeMap<(String, u64), DmarcHour>,
    /// DMARC: when each domain was last sent a report (unix seconds).
    pub dmarc_sent: BTreeMap<String, u64>,
    /// Record keys changed since the last flush.
    pub dirty: BTreeSet<String>,
    /// TLS-RPT: where a report sent before its day ended stopped, so the rest of the day
    /// begins there (not kept across restarts: a date range may then overlap, counts never).
    pub tls_cut: BTreeMap<(u64, String), u64>,
    /// Events not counted for want of room since the last flush.
    pub dropped: u64,
    pub tls_on: bool,
    pub dmarc_on: bool,
}

impl Book {
    /// Counts one event at `now` (unix seconds); anything but the two report events is
    /// ignored.
    pub fn record(&mut self, event: &Event<'_>, now: u64) {
        match event {
            Event::TlsPolicyOutcome {
                policy_domain,
                policy_type,
                policy_string,
                mx_host,
                receiving_ip,
                failure,
                ..
            } if self.tls_on => {
                let domain = policy_domain.trim_end_matches('.').to_ascii_lowercase();
                let key = (now / 86_400, domain);
                if !self.tls.contains_key(&key) && self.tls.len() >= MAX_BUCKETS {
                    self.dropped += 1;
                    return;
                }
                self.dirty.insert(tls_key(key.0, &key.1));
                let begin = (key.0 * 86_400).max(self.tls_cut.get(&key).copied().unwrap_or(0));
                let day = self
                    .tls
                    .entry(key.clone())
                    .or_insert_with(|| TlsDay::new(&key.1, begin));
                day.count(policy_type, policy_string, mx_host, *receiving_ip, *failure);
            }
            Event::DmarcChecked(row) if self.dmarc_on => self.dmarc_row(row, now),
            _ => {}
        }
    }

    fn dmarc_row(&mut self, row: &DmarcChecked, now: u64) {
        let key = (row.header_from.clone(), now / 3_600);
        if !self.dmarc.contains_key(&key) && self.dmarc.len() >= MAX_BUCKETS {
            self.dropped += 1;
            return;
        }
        self.dirty.insert(dmarc_key(&key.0, key.1));
        self.dmarc
            .entry(key.clone())
            .or_insert_with(|| DmarcHour::new(&key.0, key.1))
            .count(row);
    }

    /// Loads the records read back from the store (at start).
    pub fn load(&mut self, records: Vec<(String, Vec<u8>)>) {
        for (key, value) in records {
            let parts: Vec<&str> = key.splitn(3, '/').collect();
            let loaded = match parts[..] {
                ["tlsrpt", day, domain] => {
                    day.parse()
                        .ok()
                        .zip(decode::<TlsDay>(&value))
                        .map(|(day, bucket)| {
                            self.tls.insert((day, domain.to_string()), bucket);
                        })
                }
                ["dmarc", domain, hour] => {
                    hour.parse()
                        .ok()
                        .zip(decode::<DmarcHour>(&value))
                        .map(|(hour, bucket)| {
                            self.dmarc.insert((domain.to_string(), hour), bucket);
                        })
                }
                ["dmarc-sent", domain] => decode::<u64>(&value).map(|at| {
                    self.dmarc_sent.insert(domain.to_string(), at);
                }),
                _ => None,
            };
            if loaded.is_none() {
                log::warn!("reports: stored aggregate {key} is unreadable; ignored");
            }
        }
    }

    /// The stored form of the bucket under `key`, or `None` when it is gone (delete it).
    pub fn encoded(&self, key: &str) -> Option<Vec<u8>> {
        let parts: Vec<&str> = key.splitn(3, '/').collect();
        match parts[..] {
            ["tlsrpt", day, domain] => {
                let day = day.parse().ok()?;
                encode(self.tls.get(&(day, domain.to_string()))?)
            }
            ["dmarc", domain, hour] => {
                let hour = hour.parse().ok()?;
                encode(self.dmarc.get(&(domain.to_string(), hour))?)
            }
            ["dmarc-sent", domain] => encode(self.dmarc_sent.get(domain)?),
            _ => None,
        }
    }
}

pub fn tls_key(day: u64, domain: &str) -> String {
    format!("tlsrpt/{day:06}/{domain}")
}

pub fn dmarc_key(domain: &str, hour: u64) -> String {
    format!("dmarc/{domain}/{hour:08}")
}

pub fn sent_key(domain: &str) -> String {
    format!("dmarc-sent/{domain}")
}

pub fn encode<T: Serialize>(value: &T) -> Option<Vec<u8>> {
    let mut out = vec![FORMAT];
    serde_json::to_writer(&mut out, value).ok()?;
    Some(out)
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Option<T> {
    match bytes.split_first() {
        Some((&FORMAT, json)) => serde_json::from_slice(json).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome<'a>(domain: &'a str, failure: Option<&'static str>) -> Event<'a> {
        Event::TlsPolicyOutcome {
            policy_domain: domain,
            policy_type: "sts",
            policy_string: &[],
            mx_host: "mx.example.org",
            receiving_ip: Some("192.0.2.1".parse().unwrap()),
            failure,
            enforced: true,
        }
    }

    #[test]
    fn sessions_are_counted_per_domain_and_day_and_survive_a_store_round_trip() {
        let mut book = Book {
            tls_on: true,
            ..Book::default()
        };
        let day = 20_000 * 86_400;
        book.record(&outcome("Example.ORG.", None), day + 5);
        book.record(&outcome("example.org", None), day + 6);
        book.record(
            &outcome("example.org", Some("certificate-expired")),
            day + 7,
        );
        book.record(&outcome("example.org", None), day + 86_400);
        assert_eq!(book.tls.len(), 2, "two days");
        let first = &book.tls[&(20_000, "example.org".to_string())];
        assert_eq!(first.totals(), (2, 1));
        assert_eq!(
            book.dirty.iter().collect::<Vec<_>>(),
            ["tlsrpt/020000/example.org", "tlsrpt/020001/example.org"]
        );
        let stored: Vec<(String, Vec<u8>)> = book
            .dirty
            .iter()
            .map(|k| (k.clone(), book.encoded(k).unwrap()))
            .collect();
        let mut again = Book::default();
        again.load(stored);
        assert_eq!(again.tls, book.tls);
    }

    #[test]
    fn dmarc_rows_are_counted_per_from_domain_and_hour_and_survive_a_round_trip() {
        let mut book = Book {
            dmarc_on: true,
            ..Book::default()
        };
        let row = DmarcChecked {
            source_ip: "192.0.2.1".parse().unwrap(),
            header_from: "example.org".into(),
            envelope_from: "example.org".into(),
            adkim: "r",
            aspf: "r",
            p: "reject",
            sp: "reject",
            disposition: "reject",
            dkim_aligned: "fail",
            spf_aligned: "fail",
            dkim: Vec::new(),
            spf: ("example.org".into(), "mfrom", "fail"),
        };
        book.record(&Event::DmarcChecked(&row), 7_200 + 5);
        book.record(&Event::DmarcChecked(&row), 7_200 + 3_599);
        book.record(&Event::DmarcChecked(&row), 10_800);
        assert_eq!(book.dmarc.len(), 2, "two hours");
        assert_eq!(book.dmarc[&("example.org".to_string(), 2)].totals(), (2, 2));
        book.dmarc_sent.insert("example.org".into(), 99);
        book.dirty.insert(sent_key("example.org"));
        let stored: Vec<(String, Vec<u8>)> = book
            .dirty
            .iter()
            .map(|k| (k.clone(), book.encoded(k).unwrap()))
            .collect();
        assert_eq!(stored.len(), 3);
        let mut again = Book::default();
        again.load(stored);
        assert_eq!(again.dmarc, book.dmarc);
        assert_eq!(again.dmarc_sent, book.dmarc_sent);
    }

    #[test]
    fn nothing_is_counted_while_reporting_is_off() {
        let mut book = Book::default();
        book.record(&outcome("example.org", None), 1);
        assert!(book.tls.is_empty() && book.dirty.is_empty());
    }
}
