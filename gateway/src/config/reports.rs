//! The reporting identity and limits of `[auth]` (`tls_reports`, `dmarc_reports`,
//! `report_*`): checked here so `auth.rs` stays about verification and signing.
//!
//! Reports are off by default: a report names its sender, and mail from an address the
//! operator never chose (or one that does not receive bounces) is worse than no report.
//! Turning either kind on requires `report_from`.

use super::ConfigError;
use super::auth::Auth;
use super::nexthop::valid_hostname;

/// Normalises the report settings (org name defaulting to `hostname`) and returns every
/// problem found.
pub fn check(auth: &mut Auth, hostname: &str) -> Vec<ConfigError> {
    let mut out = Vec::new();
    let mut add = |key: &str, value: &str, problem: &str| {
        out.push(ConfigError {
            key: format!("auth.{key}"),
            value: value.to_string(),
            problem: problem.to_string(),
        })
    };
    auth.report_org_name = auth.report_org_name.trim().to_string();
    if auth.report_org_name.is_empty() {
        auth.report_org_name = hostname.to_string();
    }
    auth.report_from = auth.report_from.trim().to_string();
    let from = auth.report_from.as_str();
    if !from.is_empty() && !valid_address(from) {
        add("report_from", from, "not an address (local@domain)");
    } else if from.is_empty() && (auth.tls_reports || auth.dmarc_reports) {
        let which = if auth.dmarc_reports {
            "dmarc_reports"
        } else {
            "tls_reports"
        };
        add(
            "report_from",
            "",
            &format!("needed when {which} is on: reports name their sender"),
        );
    }
    if auth.report_contact.chars().any(char::is_control) {
        add(
            "report_contact",
            &auth.report_contact.escape_default().to_string(),
            "must be one line",
        );
    }
    if auth.report_max_per_run == 0 {
        add("report_max_per_run", "0", "must be at least 1");
    }
    if auth.report_max_bytes.0 < 4096 {
        add(
            "report_max_bytes",
            &auth.report_max_bytes.0.to_string(),
            "must be at least 4096",
        );
    }
    out
}

/// `local@domain` with a plain (dot-atom) local part and a host name: what may go in a
/// From: field and a MAIL FROM unquoted.
fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b))
        })
        && valid_hostname(domain)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const BASE: &str = "hostname = \"mx1.example.net\"\ndata_dir = \"/tmp/x\"\n[[listener]]\naddress = \"127.0.0.1:25\"\n";

    #[test]
    fn reports_are_off_by_default_and_named_after_the_host() {
        let config = Config::parse(BASE).unwrap();
        assert!(!config.auth.tls_reports && !config.auth.dmarc_reports);
        assert_eq!(config.auth.report_org_name, "mx1.example.net");
        let on = Config::parse(&format!(
            "{BASE}[auth]\ndmarc_reports = true\ntls_reports = true\nreport_from = \"dmarc@example.net\"\n"
        ))
        .unwrap();
        assert!(on.auth.dmarc_reports && on.auth.tls_reports);
    }

    #[test]
    fn every_report_setting_error_names_its_key() {
        let shown = |text: &str| -> Vec<String> {
            Config::parse(&format!("{BASE}[auth]\n{text}"))
                .unwrap_err()
                .iter()
                .map(|e| e.to_string())
                .collect()
        };
        let errors = shown("dmarc_reports = true\n");
        assert!(errors[0].contains("auth.report_from"), "{errors:?}");
        assert!(errors[0].contains("dmarc_reports"), "{errors:?}");
        let errors = shown("report_from = \"no address\"\n");
        assert!(
            errors[0].contains("auth.report_from = no address"),
            "{errors:?}"
        );
        let errors = shown("report_max_per_run = 0\nreport_max_bytes = 100\n");
        assert!(errors.iter().any(|e| e.contains("auth.report_max_per_run")));
        assert!(errors.iter().any(|e| e.contains("auth.report_max_bytes")));
        // Type errors come from the TOML reader, which names the line and the value.
        let errors = shown("tls_reports = \"yes\"\n");
        assert!(errors[0].contains("\"yes\""), "{errors:?}");
    }
}
