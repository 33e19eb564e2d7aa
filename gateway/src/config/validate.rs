//! Semantic checks run after parsing: each finding names its key and value.

use super::nexthop::valid_hostname;
use super::{Config, ConfigError, NextHop};
use std::collections::HashSet;

pub fn from_toml(e: &toml::de::Error, text: &str) -> ConfigError {
    let (key, value) = match e.span() {
        Some(span) => {
            let line = text[..span.start].matches('\n').count() + 1;
            let snippet: String = text[span.clone()].chars().take(80).collect();
            (format!("line {line}"), snippet)
        }
        None => (String::new(), String::new()),
    };
    ConfigError {
        key,
        value,
        problem: e.message().trim().to_string(),
    }
}

pub fn check(config: &mut Config) -> Vec<ConfigError> {
    let mut out = Findings::default();
    config.hostname = config.hostname.trim_end_matches('.').to_ascii_lowercase();
    if !valid_hostname(&config.hostname) {
        out.add("hostname", &config.hostname, "not a valid host name");
    }
    if config.data_dir.as_os_str().is_empty() {
        out.add("data_dir", "", "must name a directory");
    }
    check_listeners(config, &mut out);
    check_domains(config, &mut out);
    check_limits(config, &mut out);
    check_queue(config, &mut out);
    check_delivery(config, &mut out);
    check_rest(config, &mut out);
    check_access(config, &mut out);
    out.0.extend(super::routes::check(config));
    let mut flow = super::flow::check(&mut config.flow);
    flow.extend(super::flow::check_roles(config));
    for (key, value, problem) in flow {
        out.add(key, value, problem);
    }
    for (key, value, problem) in super::transport::problems(&config.mta_sts) {
        out.add(key, value, problem);
    }
    out.0.extend(super::admin::check(config));
    out.0.extend(super::control::check(&mut config.control));
    out.0.extend(super::ssh::check(&config.ssh));
    out.0
        .extend(super::auth::check(&mut config.auth, &config.hostname));
    out.0
}

#[derive(Default)]
struct Findings(Vec<ConfigError>);

impl Findings {
    fn add(
        &mut self,
        key: impl Into<String>,
        value: impl std::fmt::Display,
        problem: impl Into<String>,
    ) {
        self.0.push(ConfigError {
            key: key.into(),
            value: value.to_string(),
            problem: problem.into(),
        });
    }

    fn at_least(&mut self, key: &str, value: u64, min: u64) {
        if value < min {
            self.add(key, value, format!("must be at least {min}"));
        }
    }
}

fn check_listeners(config: &Config, out: &mut Findings) {
    if config.listeners.is_empty() {
        out.add("listener", "", "at least one [[listener]] is required");
    }
    let mut seen = HashSet::new();
    for (i, l) in config.listeners.iter().enumerate() {
        if !seen.insert(l.address) {
            out.add(format!("listener[{i}].address"), l.address, "listed twice");
        }
    }
}

fn check_domains(config: &mut Config, out: &mut Findings) {
    let mut seen = HashSet::new();
    for (i, d) in config.domains.iter_mut().enumerate() {
        d.name = d.name.trim_end_matches('.').to_ascii_lowercase();
        if !valid_hostname(&d.name) {
            out.add(
                format!("domain[{i}].name"),
                &d.name,
                "not a valid domain name",
            );
        } else if !seen.insert(d.name.clone()) {
            out.add(format!("domain[{i}].name"), &d.name, "domain listed twice");
        }
        if d.next_hops.is_empty() {
            out.add(
                format!("domain[{i}].next_hops"),
                "[]",
                "needs at least one next hop",
            );
        }
        d.hops = parse_hops(&d.next_hops, &format!("domain[{i}].next_hops"), out);
    }
}

fn parse_hops(texts: &[String], key: &str, out: &mut Findings) -> Vec<NextHop> {
    let mut hops = Vec::new();
    for (j, text) in texts.iter().enumerate() {
        match NextHop::parse(text) {
            Ok(hop) => hops.push(hop),
            Err(problem) => out.add(format!("{key}[{j}]"), format!("{text:?}"), problem),
        }
    }
    hops
}

fn check_limits(config: &Config, out: &mut Findings) {
    let l = &config.limits;
    out.at_least("limits.max_message_size", l.max_message_size.0, 1024);
    // RFC 5321 §4.5.3.1.4: a command line of 512 octets must always be accepted.
    out.at_least("limits.max_line_length", l.max_line_length as u64, 512);
    // RFC 5321 §4.5.3.1.8 asks servers to take 100 recipients; a lower cap is the
    // operator's call, so only zero is refused.
    out.at_least("limits.max_recipients", l.max_recipients as u64, 1);
    out.at_least("limits.max_errors", u64::from(l.max_errors), 1);
    out.at_least("limits.max_commands", u64::from(l.max_commands), 10);
    out.at_least(
        "limits.max_messages_per_session",
        u64::from(l.max_messages_per_session),
        1,
    );
    out.at_least("limits.max_connections", l.max_connections as u64, 1);
    out.at_least(
        "limits.max_connections_per_ip",
        l.max_connections_per_ip as u64,
        1,
    );
    if l.max_connections_per_ip > l.max_connections {
        out.add(
            "limits.max_connections_per_ip",
            l.max_connections_per_ip,
            "exceeds limits.max_connections",
        );
    }
    for (key, span) in [
        ("limits.command_timeout", l.command_timeout),
        ("limits.data_timeout", l.data_timeout),
        ("limits.shutdown_timeout", l.shutdown_timeout),
        ("limits.stress_timeout", l.stress_timeout),
    ] {
        if span.0.as_millis() < 100 {
            out.add(key, span, "must be at least 100ms");
        }
    }
    out.at_least("limits.min_data_rate", l.min_data_rate.0, 1);
    if !(l.stress_threshold > 0.0 && l.stress_threshold <= 1.0) {
        out.add(
            "limits.stress_threshold",
            l.stress_threshold,
            "must be above 0 and at most 1",
        );
    }
    if l.inflight_bytes.0 < l.max_message_size.0 {
        out.add(
            "limits.inflight_bytes",
            l.inflight_bytes.0,
            "must hold at least one message of limits.max_message_size",
        );
    }
}

fn check_queue(config: &Config, out: &mut Findings) {
    let q = &config.queue;
    out.at_least("queue.max_messages", q.max_messages, 1);
    out.at_least("queue.max_batch", q.max_batch as u64, 1);
    if q.retry_intervals.is_empty() {
        out.add("queue.retry_intervals", "[]", "needs at least one interval");
    }
    if q.retry_intervals.iter().any(|s| s.0.is_zero()) {
        out.add("queue.retry_intervals", "0", "intervals must be positive");
    }
    if !(0.0..=0.5).contains(&q.retry_jitter) {
        out.add(
            "queue.retry_jitter",
            q.retry_jitter,
            "must be between 0 and 0.5",
        );
    }
    if q.max_lifetime.0.is_zero() {
        out.add("queue.max_lifetime", q.max_lifetime, "must be positive");
    }
}

fn check_delivery(config: &mut Config, out: &mut Findings) {
    let d = &mut config.delivery;
    d.default_hops = parse_hops(&d.default_next_hops, "delivery.default_next_hops", out);
    out.at_least(
        "delivery.max_connections_per_next_hop",
        d.max_connections_per_next_hop as u64,
        1,
    );
    out.at_least(
        "delivery.max_messages_per_connection",
        d.max_messages_per_connection as u64,
        1,
    );
    out.at_least("delivery.max_concurrent", d.max_concurrent as u64, 1);
    for (key, span) in [
        ("delivery.connect_timeout", d.connect_timeout),
        ("delivery.command_timeout", d.command_timeout),
        ("delivery.data_timeout", d.data_timeout),
    ] {
        if span.0.as_millis() < 100 {
            out.add(key, span, "must be at least 100ms");
        }
    }
}

fn check_rest(config: &Config, out: &mut Findings) {
    let tls = &config.tls;
    for (cert, key, cert_name, key_name) in [
        (
            &tls.certificate,
            &tls.private_key,
            "tls.certificate",
            "tls.private_key",
        ),
        (
            &tls.rsa_certificate,
            &tls.rsa_private_key,
            "tls.rsa_certificate",
            "tls.rsa_private_key",
        ),
    ] {
        match (cert, key) {
            (Some(_), None) => out.add(key_name, "", format!("required when {cert_name} is set")),
            (None, Some(_)) => out.add(cert_name, "", format!("required when {key_name} is set")),
            _ => {}
        }
    }
    if !["error", "warn", "info", "debug", "trace"].contains(&config.log.level.as_str()) {
        out.add(
            "log.level",
            &config.log.level,
            "must be error, warn, info, debug or trace",
        );
    }
    if !["auto", "journald", "stderr", "file"].contains(&config.log.target.as_str()) {
        out.add(
            "log.target",
            &config.log.target,
            "must be auto, journald, stderr or file",
        );
    }
    if config.log.max_size.0 < 64 << 10 {
        out.add(
            "log.max_size",
            config.log.max_size.0.to_string(),
            "must be at least 64KiB",
        );
    }
    if !(1..=100).contains(&config.log.keep) {
        out.add("log.keep", config.log.keep.to_string(), "must be 1 to 100");
    }
    out.0.extend(super::syslog::check(&config.log.syslog));
}

/// Relay access and every TLS policy (issue 4, items 5 and 6).
fn check_access(config: &mut Config, out: &mut Findings) {
    for (key, value, problem) in super::relay::problems(config) {
        out.add(key, value, problem);
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const GOOD: &str = r#"
hostname = "mx1.example.net"
data_dir = "/var/lib/edgemx"

[[listener]]
address = "0.0.0.0:25"

[[domain]]
name = "Example.COM"
next_hops = ["10.1.2.3:25", "backup.example.net:25"]
"#;

    #[test]
    fn the_documented_example_is_valid() {
        let config = Config::parse(GOOD).expect("valid");
        assert_eq!(config.domains[0].name, "example.com");
        assert_eq!(config.domains[0].hops.len(), 2);
        assert_eq!(config.limits.max_recipients, 100);
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        let errors = Config::parse(&format!("{GOOD}\nmax_size = 3\n")).unwrap_err();
        assert!(errors[0].to_string().contains("max_size"), "{:?}", errors);
        let errors = Config::parse(&GOOD.replace("name =", "nmae =")).unwrap_err();
        assert!(errors[0].to_string().contains("nmae"), "{:?}", errors);
    }

    #[test]
    fn every_semantic_error_is_reported_with_key_and_value() {
        let text = GOOD
            .replace("backup.example.net:25", "bad host:25")
            .replace("mx1.example.net", "not a host")
            + "\n[limits]\nmax_line_length = 80\n[queue]\nretry_jitter = 2.0\n";
        let errors = Config::parse(&text).unwrap_err();
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        let has = |needle: &str| shown.iter().any(|s| s.contains(needle));
        assert!(has("domain[0].next_hops[1] = \"bad host:25\""), "{shown:?}");
        assert!(has("hostname = not a host"), "{shown:?}");
        assert!(has("limits.max_line_length = 80"), "{shown:?}");
        assert!(has("queue.retry_jitter = 2"), "{shown:?}");
    }
}
