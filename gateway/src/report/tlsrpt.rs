//! TLS-RPT (RFC 8460): one policy domain's sessions of one UTC day, and the report built
//! from them with mail-auth's types (JSON per §4, gzip and the §5.3 message).

use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Distinct failure lines (result, MX host, address) per policy at most; more are summed
/// into the policy's failure count without a detail line.
const MAX_FAILURE_DETAILS: usize = 100;

/// MX host names listed per policy (`mx-host`) at most.
const MAX_MX_HOSTS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsDay {
    pub domain: String,
    /// Unix seconds: the day's start, or the end of the last report cut from it.
    pub begin: u64,
    pub policies: Vec<TlsPolicy>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsPolicy {
    pub policy_type: String,
    pub policy_string: Vec<String>,
    pub mx_hosts: Vec<String>,
    pub success: u64,
    pub failure: u64,
    pub failures: Vec<TlsFailure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFailure {
    pub result_type: String,
    pub mx_host: String,
    pub receiving_ip: Option<IpAddr>,
    pub count: u64,
}

impl TlsDay {
    pub fn new(domain: &str, begin: u64) -> TlsDay {
        TlsDay {
            domain: domain.to_string(),
            begin,
            policies: Vec::new(),
        }
    }

    pub fn count(
        &mut self,
        policy_type: &str,
        policy_string: &[String],
        mx_host: &str,
        receiving_ip: Option<IpAddr>,
        failure: Option<&str>,
    ) {
        let found = self
            .policies
            .iter()
            .position(|p| p.policy_type == policy_type && p.policy_string == policy_string);
        let index = found.unwrap_or_else(|| {
            self.policies.push(TlsPolicy {
                policy_type: policy_type.to_string(),
                policy_string: policy_string.to_vec(),
                mx_hosts: Vec::new(),
                success: 0,
                failure: 0,
                failures: Vec::new(),
            });
            self.policies.len() - 1
        });
        let policy = &mut self.policies[index];
        let mx_host = mx_host.trim_end_matches('.').to_ascii_lowercase();
        if !policy.mx_hosts.contains(&mx_host) && policy.mx_hosts.len() < MAX_MX_HOSTS {
            policy.mx_hosts.push(mx_host.clone());
        }
        let Some(result) = failure else {
            policy.success += 1;
            return;
        };
        policy.failure += 1;
        let room = policy.failures.len() < MAX_FAILURE_DETAILS;
        let line = policy.failures.iter_mut().find(|f| {
            f.result_type == result && f.mx_host == mx_host && f.receiving_ip == receiving_ip
        });
        match line {
            Some(line) => line.count += 1,
            None if room => policy.failures.push(TlsFailure {
                result_type: result.to_string(),
                mx_host,
                receiving_ip,
                count: 1,
            }),
            None => {}
        }
    }

    /// Adds `other` (the same domain and day) into this one.
    pub fn merge(&mut self, other: TlsDay) {
        self.begin = self.begin.min(other.begin);
        for theirs in other.policies {
            match self.policies.iter_mut().find(|p| {
                p.policy_type == theirs.policy_type && p.policy_string == theirs.policy_string
            }) {
                None => self.policies.push(theirs),
                Some(ours) => {
                    for mx in theirs.mx_hosts {
                        if !ours.mx_hosts.contains(&mx) && ours.mx_hosts.len() < MAX_MX_HOSTS {
                            ours.mx_hosts.push(mx);
                        }
                    }
                    ours.success += theirs.success;
                    ours.failure += theirs.failure;
                    for f in theirs.failures {
                        match ours.failures.iter_mut().find(|o| {
                            o.result_type == f.result_type
                                && o.mx_host == f.mx_host
                                && o.receiving_ip == f.receiving_ip
                        }) {
                            Some(o) => o.count += f.count,
                            None => ours.failures.push(f),
                        }
                    }
                }
            }
        }
    }

    /// Successful and failed sessions.
    pub fn totals(&self) -> (u64, u64) {
        self.policies
            .iter()
            .fold((0, 0), |(s, f), p| (s + p.success, f + p.failure))
    }

    /// The RFC 8460 report of this aggregate for [`begin`, `end`).
    pub fn report(&self, org_name: &str, contact: &str, report_id: &str, end: u64) -> TlsReport {
        TlsReport {
            organization_name: Some(org_name.to_string()),
            date_range: DateRange {
                start_datetime: mail_parser::DateTime::from_timestamp(self.begin as i64),
                end_datetime: mail_parser::DateTime::from_timestamp(end as i64),
            },
            contact_info: Some(contact.to_string()),
            report_id: report_id.to_string(),
            policies: self
                .policies
                .iter()
                .map(|p| policy(p, &self.domain))
                .collect(),
        }
    }
}

fn policy(p: &TlsPolicy, domain: &str) -> Policy {
    let mut mx_hosts = p.mx_hosts.clone();
    mx_hosts.sort();
    Policy {
        policy: PolicyDetails {
            policy_type: match p.policy_type.as_str() {
                "tlsa" => PolicyType::Tlsa,
                "sts" => PolicyType::Sts,
                _ => PolicyType::NoPolicyFound,
            },
            policy_string: p.policy_string.clone(),
            policy_domain: domain.to_string(),
            mx_host: mx_hosts,
        },
        summary: Summary {
            total_success: clamp(p.success),
            total_failure: clamp(p.failure),
        },
        failure_details: p
            .failures
            .iter()
            .map(|f| FailureDetails {
                result_type: result_type(&f.result_type),
                sending_mta_ip: None,
                receiving_mx_hostname: Some(f.mx_host.clone()),
                receiving_mx_helo: None,
                receiving_ip: f.receiving_ip,
                failed_session_count: clamp(f.count),
                additional_information: None,
                failure_reason_code: None,
            })
            .collect(),
    }
}

fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn result_type(word: &str) -> ResultType {
    match word {
        "starttls-not-supported" => ResultType::StartTlsNotSupported,
        "certificate-host-mismatch" => ResultType::CertificateHostMismatch,
        "certificate-expired" => ResultType::CertificateExpired,
        "certificate-not-trusted" => ResultType::CertificateNotTrusted,
        "validation-failure" => ResultType::ValidationFailure,
        "tlsa-invalid" => ResultType::TlsaInvalid,
        "dnssec-invalid" => ResultType::DnssecInvalid,
        "dane-required" => ResultType::DaneRequired,
        "sts-policy-fetch-error" => ResultType::StsPolicyFetchError,
        "sts-policy-invalid" => ResultType::StsPolicyInvalid,
        "sts-webpki-invalid" => ResultType::StsWebpkiInvalid,
        _ => ResultType::ValidationFailure,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_json_has_rfc_8460_names_and_counts_per_result_type() {
        let mut day = TlsDay::new("example.org", 1_700_006_400);
        let sts = ["version: STSv1".to_string(), "mode: enforce".to_string()];
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        day.count("sts", &sts, "MX1.example.org.", Some(ip), None);
        day.count("sts", &sts, "mx1.example.org", Some(ip), None);
        day.count(
            "sts",
            &sts,
            "mx2.example.org",
            Some(ip),
            Some("certificate-expired"),
        );
        day.count(
            "sts",
            &sts,
            "mx2.example.org",
            Some(ip),
            Some("certificate-expired"),
        );
        day.count(
            "no-policy-found",
            &[],
            "mx1.example.org",
            None,
            Some("starttls-not-supported"),
        );
        let json = day
            .report("Gateway Inc", "mailto:tls@gw.test", "r1", 1_700_092_800)
            .to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["organization-name"], "Gateway Inc");
        assert_eq!(v["report-id"], "r1");
        assert_eq!(v["date-range"]["start-datetime"], "2023-11-15T00:00:00Z");
        let sts = &v["policies"][0];
        assert_eq!(sts["policy"]["policy-type"], "sts");
        assert_eq!(sts["policy"]["policy-domain"], "example.org");
        assert_eq!(
            sts["policy"]["mx-host"],
            serde_json::json!(["mx1.example.org", "mx2.example.org"])
        );
        assert_eq!(sts["policy"]["policy-string"][1], "mode: enforce");
        assert_eq!(sts["summary"]["total-successful-session-count"], 2);
        assert_eq!(sts["summary"]["total-failure-session-count"], 2);
        let detail = &sts["failure-details"][0];
        assert_eq!(detail["result-type"], "certificate-expired");
        assert_eq!(detail["receiving-mx-hostname"], "mx2.example.org");
        assert_eq!(detail["receiving-ip"], "192.0.2.7");
        assert_eq!(detail["failed-session-count"], 2);
        let none = &v["policies"][1];
        assert_eq!(none["policy"]["policy-type"], "no-policy-found");
        assert_eq!(
            none["failure-details"][0]["result-type"],
            "starttls-not-supported"
        );
    }

    #[test]
    fn merging_adds_counts_line_by_line() {
        let mut a = TlsDay::new("example.org", 100);
        a.count("sts", &[], "mx", None, Some("validation-failure"));
        let mut b = TlsDay::new("example.org", 50);
        b.count("sts", &[], "mx", None, Some("validation-failure"));
        b.count("sts", &[], "mx", None, None);
        b.count("tlsa", &[], "mx", None, None);
        a.merge(b);
        assert_eq!(a.begin, 50);
        assert_eq!(a.totals(), (2, 2));
        assert_eq!(a.policies[0].failures[0].count, 2);
    }
}
