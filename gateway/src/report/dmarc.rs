//! DMARC aggregate reports (RFC 7489 §7.2): one From: domain's checked messages of one UTC
//! hour as rows with counts, and the XML report of a reporting period built from them with
//! mail-auth's types.
//!
//! Hours, not periods, are stored: the period is the policy's `ri` as published when the
//! report is due (read then, with the `rua`), so a record changed meanwhile still gets the
//! period it asks for.

use crate::observe::events::DmarcChecked;
use mail_auth::report::{
    ActionDisposition, Alignment, DKIMAuthResult, Disposition, DkimResult, DmarcResult, Record,
    Report, SPFAuthResult, SPFDomainScope, SpfResult,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Distinct rows per hour at most; more messages still count in `overflow`.
const MAX_ROWS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DmarcHour {
    pub domain: String,
    pub hour: u64,
    /// The policy as published when the last message was checked.
    pub adkim: String,
    pub aspf: String,
    pub p: String,
    pub sp: String,
    pub rows: Vec<Row>,
    /// Messages not in `rows` for want of room.
    pub overflow: u64,
}

/// Messages alike in everything a report says about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub source_ip: IpAddr,
    pub disposition: String,
    pub dkim_aligned: String,
    pub spf_aligned: String,
    pub header_from: String,
    pub envelope_from: String,
    pub dkim: Vec<(String, String, String)>,
    pub spf: (String, String, String),
    pub count: u64,
}

impl Row {
    fn of(c: &DmarcChecked) -> Row {
        Row {
            source_ip: c.source_ip,
            disposition: c.disposition.to_string(),
            dkim_aligned: c.dkim_aligned.to_string(),
            spf_aligned: c.spf_aligned.to_string(),
            header_from: c.header_from.clone(),
            envelope_from: c.envelope_from.clone(),
            dkim: c
                .dkim
                .iter()
                .map(|(d, s, r)| (d.clone(), s.clone(), r.to_string()))
                .collect(),
            spf: (c.spf.0.clone(), c.spf.1.to_string(), c.spf.2.to_string()),
            count: 0,
        }
    }

    fn same(&self, other: &Row) -> bool {
        Row {
            count: 0,
            ..self.clone()
        } == Row {
            count: 0,
            ..other.clone()
        }
    }

    fn passed(&self) -> bool {
        self.dkim_aligned == "pass" || self.spf_aligned == "pass"
    }
}

impl DmarcHour {
    pub fn new(domain: &str, hour: u64) -> DmarcHour {
        DmarcHour {
            domain: domain.to_string(),
            hour,
            adkim: "r".into(),
            aspf: "r".into(),
            p: "none".into(),
            sp: "none".into(),
            rows: Vec::new(),
            overflow: 0,
        }
    }

    pub fn count(&mut self, checked: &DmarcChecked) {
        self.adkim = checked.adkim.into();
        self.aspf = checked.aspf.into();
        self.p = checked.p.into();
        self.sp = checked.sp.into();
        let row = Row::of(checked);
        let room = self.rows.len() < MAX_ROWS;
        match self.rows.iter_mut().find(|r| r.same(&row)) {
            Some(r) => r.count += 1,
            None if room => self.rows.push(Row { count: 1, ..row }),
            None => self.overflow += 1,
        }
    }

    pub fn merge(&mut self, other: DmarcHour) {
        for row in other.rows {
            match self.rows.iter_mut().find(|r| r.same(&row)) {
                Some(r) => r.count += row.count,
                None => self.rows.push(row),
            }
        }
        self.overflow += other.overflow;
    }

    /// Messages counted, and of them those that did not pass DMARC.
    pub fn totals(&self) -> (u64, u64) {
        let all = self.rows.iter().map(|r| r.count).sum::<u64>() + self.overflow;
        let failed = self
            .rows
            .iter()
            .filter(|r| !r.passed())
            .map(|r| r.count)
            .sum();
        (all, failed)
    }
}

/// Who reports, as `[auth]` configures it.
pub struct Identity<'a> {
    pub org_name: &'a str,
    pub email: &'a str,
    pub contact: &'a str,
}

/// The report on `hours` (not empty; of the From: domains whose policy is at
/// `policy_domain`) for [`begin`, `end`).
pub fn report(
    who: &Identity<'_>,
    policy_domain: &str,
    hours: &[DmarcHour],
    report_id: &str,
    begin: u64,
    end: u64,
) -> Report {
    let newest = hours
        .iter()
        .max_by_key(|h| h.hour)
        .expect("hours is not empty");
    let mut report = Report::new()
        .with_version(1.0)
        .with_org_name(who.org_name)
        .with_email(who.email)
        .with_report_id(report_id)
        .with_date_range_begin(begin)
        .with_date_range_end(end)
        .with_domain(policy_domain)
        .with_adkim(alignment(&newest.adkim))
        .with_aspf(alignment(&newest.aspf))
        .with_p(disposition(&newest.p))
        .with_sp(disposition(&newest.sp));
    if !who.contact.is_empty() {
        report = report.with_extra_contact_info(who.contact);
    }
    let mut rows: Vec<Row> = Vec::new();
    for hour in hours {
        for row in &hour.rows {
            match rows.iter_mut().find(|r| r.same(row)) {
                Some(r) => r.count += row.count,
                None => rows.push(row.clone()),
            }
        }
    }
    for row in rows {
        report.add_record(record(&row));
    }
    report
}

fn record(row: &Row) -> Record {
    let mut record = Record::new()
        .with_source_ip(row.source_ip)
        .with_count(u32::try_from(row.count).unwrap_or(u32::MAX))
        .with_action_disposition(match row.disposition.as_str() {
            "reject" => ActionDisposition::Reject,
            "quarantine" => ActionDisposition::Quarantine,
            _ => ActionDisposition::None,
        })
        .with_dmarc_dkim_result(aligned(&row.dkim_aligned))
        .with_dmarc_spf_result(aligned(&row.spf_aligned))
        .with_header_from(&row.header_from)
        .with_envelope_from(&row.envelope_from);
    for (domain, selector, result) in &row.dkim {
        record = record.with_dkim_auth_result(
            DKIMAuthResult::new()
                .with_domain(domain)
                .with_selector(selector)
                .with_result(match result.as_str() {
                    "pass" => DkimResult::Pass,
                    "fail" => DkimResult::Fail,
                    "neutral" => DkimResult::Neutral,
                    "temperror" => DkimResult::TempError,
                    "permerror" => DkimResult::PermError,
                    _ => DkimResult::None,
                }),
        );
    }
    let (domain, scope, result) = &row.spf;
    record.with_spf_auth_result(
        SPFAuthResult::new()
            .with_domain(domain)
            .with_scope(match scope.as_str() {
                "helo" => SPFDomainScope::Helo,
                _ => SPFDomainScope::MailFrom,
            })
            .with_result(match result.as_str() {
                "pass" => SpfResult::Pass,
                "fail" => SpfResult::Fail,
                "softfail" => SpfResult::SoftFail,
                "neutral" => SpfResult::Neutral,
                "temperror" => SpfResult::TempError,
                "permerror" => SpfResult::PermError,
                _ => SpfResult::None,
            }),
    )
}

fn aligned(word: &str) -> DmarcResult {
    match word {
        "pass" => DmarcResult::Pass,
        _ => DmarcResult::Fail,
    }
}

fn alignment(word: &str) -> Alignment {
    match word {
        "s" => Alignment::Strict,
        _ => Alignment::Relaxed,
    }
}

fn disposition(word: &str) -> Disposition {
    match word {
        "reject" => Disposition::Reject,
        "quarantine" => Disposition::Quarantine,
        _ => Disposition::None,
    }
}

/// The reporting period of a policy's `ri` (seconds): at least an hour, at most a day, and
/// a whole number of hours that divides the day, so periods start at fixed UTC times.
pub fn period(ri: Option<u64>) -> u64 {
    let hours = ri.unwrap_or(86_400) / 3_600;
    [24, 12, 8, 6, 4, 3, 2, 1]
        .into_iter()
        .find(|h| *h <= hours)
        .unwrap_or(1)
        * 3_600
}

/// The reporting period (`period` seconds, see [`period`]) that hour number `hour` falls
/// in, as unix seconds [begin, end).
pub fn period_of(hour: u64, period: u64) -> (u64, u64) {
    let begin = hour * 3_600 / period * period;
    (begin, begin + period)
}

/// The `ri=` tag of a DMARC record text, if any (mail-auth 0.13 does not keep it).
pub fn ri(record: &str) -> Option<u64> {
    record
        .split(';')
        .filter_map(|tag| tag.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("ri"))
        .and_then(|(_, value)| value.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(ip: &str, dkim: &'static str, spf: &'static str) -> DmarcChecked {
        DmarcChecked {
            source_ip: ip.parse().unwrap(),
            header_from: "example.org".into(),
            envelope_from: "example.org".into(),
            adkim: "r",
            aspf: "s",
            p: "reject",
            sp: "quarantine",
            disposition: if dkim == "pass" || spf == "pass" {
                "none"
            } else {
                "reject"
            },
            dkim_aligned: dkim,
            spf_aligned: spf,
            dkim: vec![("example.org".into(), "sel".into(), dkim)],
            spf: ("example.org".into(), "mfrom", spf),
        }
    }

    #[test]
    fn rows_count_alike_messages_and_the_xml_carries_them() {
        let mut a = DmarcHour::new("example.org", 10);
        a.count(&checked("192.0.2.1", "pass", "pass"));
        a.count(&checked("192.0.2.1", "pass", "pass"));
        a.count(&checked("192.0.2.9", "fail", "fail"));
        let mut b = DmarcHour::new("example.org", 11);
        b.count(&checked("192.0.2.1", "pass", "pass"));
        assert_eq!(a.totals(), (3, 1));
        let who = Identity {
            org_name: "Gateway & Co",
            email: "dmarc@gw.test",
            contact: "",
        };
        let xml = report(&who, "example.org", &[a, b], "id-1", 36_000, 43_200).to_xml();
        assert!(
            xml.contains("<org_name>Gateway &amp; Co</org_name>"),
            "{xml}"
        );
        assert!(xml.contains("<begin>36000</begin>"), "{xml}");
        assert!(
            xml.contains("<p>reject</p>") && xml.contains("<aspf>s</aspf>"),
            "{xml}"
        );
        assert_eq!(xml.matches("<record>").count(), 2, "{xml}");
        assert!(xml.contains("<source_ip>192.0.2.1</source_ip>"), "{xml}");
        assert!(xml.contains("<count>3</count>"), "merged over hours: {xml}");
        assert!(xml.contains("<disposition>reject</disposition>"), "{xml}");
        assert!(xml.contains("<selector>sel</selector>"), "{xml}");
        assert!(xml.contains("<scope>mfrom</scope>"), "{xml}");
    }

    #[test]
    fn the_period_follows_ri_within_an_hour_and_a_day() {
        assert_eq!(period(None), 86_400);
        assert_eq!(period(Some(86_400 * 7)), 86_400);
        assert_eq!(period(Some(3_600)), 3_600);
        assert_eq!(period(Some(60)), 3_600);
        assert_eq!(period(Some(5 * 3_600)), 4 * 3_600);
        assert_eq!(
            ri("v=DMARC1; p=none; RI = 7200; rua=mailto:a@b"),
            Some(7_200)
        );
        assert_eq!(ri("v=DMARC1; p=none"), None);
        // Hour 30 (06:00–07:00 on day 1) in 4-hour periods: 04:00–08:00.
        assert_eq!(period_of(30, 4 * 3_600), (28 * 3_600, 32 * 3_600));
        assert_eq!(period_of(23, 86_400), (0, 86_400));
    }
}
