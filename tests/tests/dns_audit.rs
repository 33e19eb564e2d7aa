//! `edgemx dns check` and `edgemx dns plan-mx-change` against zones with planted mistakes,
//! served by the loopback DNS server: each mistake is found, the clean domain passes.

use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::gateway::binary;
use serde_json::Value;
use std::net::SocketAddr;

const OUTBOUND: &str = "192.0.2.10";
const SPF: &str = "v=spf1 ip4:192.0.2.10 mx -all";
const DMARC: &str = "v=DMARC1; p=reject; rua=mailto:dmarc@reports.test";

/// A domain with nothing wrong, except what the caller leaves out or replaces.
fn domain(zone: Zone, name: &str, spf: &[&str], dmarc: Option<&str>) -> Zone {
    let mut zone = zone
        .mx(name, 10, &format!("mx1.{name}"))
        .mx(name, 20, &format!("mx2.{name}"))
        .a(&format!("mx1.{name}"), "127.0.0.1".parse().unwrap())
        .a(&format!("mx2.{name}"), "127.0.0.2".parse().unwrap())
        .txt(&format!("_mta-sts.{name}"), "v=STSv1; id=20261126")
        .txt(
            &format!("_smtp._tls.{name}"),
            "v=TLSRPTv1; rua=mailto:tls@reports.test",
        );
    for record in spf {
        zone = zone.txt(name, record);
    }
    if let Some(dmarc) = dmarc {
        zone = zone.txt(&format!("_dmarc.{name}"), dmarc);
    }
    zone
}

fn zone() -> Zone {
    let mut z = domain(Zone::new(), "clean.test", &[SPF], Some(DMARC));
    // MX target is an alias.
    z = domain(z, "cname.test", &[SPF], Some(DMARC))
        .mx("cname.test", 30, "alias.cname.test")
        .cname("alias.cname.test", "mx1.cname.test");
    // MX target is an IP address written as a name.
    z = domain(z, "literal.test", &[SPF], Some(DMARC)).mx("literal.test", 30, "192.0.2.1");
    // MX target without address records.
    z = domain(z, "dangling.test", &[SPF], Some(DMARC)).mx(
        "dangling.test",
        30,
        "gone.dangling.test",
    );
    // Eleven includes: one DNS lookup too many.
    let includes: Vec<String> = (1..=11)
        .map(|i| format!("include:i{i}.lookups.test"))
        .collect();
    let spf = format!("v=spf1 ip4:192.0.2.10 {} -all", includes.join(" "));
    z = domain(z, "lookups.test", &[&spf], Some(DMARC));
    for i in 1..=11 {
        z = z.txt(
            &format!("i{i}.lookups.test"),
            &format!("v=spf1 ip4:198.51.100.{i} -all"),
        );
    }
    z = domain(
        z,
        "plusall.test",
        &["v=spf1 ip4:192.0.2.10 +all"],
        Some(DMARC),
    );
    z = domain(z, "twospf.test", &[SPF, "v=spf1 -all"], Some(DMARC));
    z = domain(z, "nodmarc.test", &[SPF], None);
    z = domain(
        z,
        "pnone.test",
        &[SPF],
        Some("v=DMARC1; p=none; rua=mailto:d@reports.test"),
    );
    z = domain(
        z,
        "uncovered.test",
        &["v=spf1 ip4:198.51.100.0/24 -all"],
        Some(DMARC),
    );
    // A long TTL to plan a change from.
    z.ttl(7200)
        .mx("plan.test", 10, "mx1.plan.test")
        .a("mx1.plan.test", "127.0.0.1".parse().unwrap())
}

async fn edgemx(args: &[&str]) -> (i32, String) {
    let out = tokio::process::Command::new(binary())
        .args(args)
        .output()
        .await
        .expect("run edgemx");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.is_empty() || out.status.code() != Some(0),
        "{stderr}"
    );
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `dns check DOMAIN --json` as ourselves (mx1 of the domain, primary, sending from OUTBOUND).
async fn check(domain: &str, resolvers: &[SocketAddr]) -> (i32, Value) {
    let hostname = format!("mx1.{domain}");
    let mut args = vec!["dns", "check", domain, "--json", "--hostname", &hostname];
    args.extend(["--role", "primary", "--outbound", OUTBOUND]);
    let addrs: Vec<String> = resolvers.iter().map(|a| a.to_string()).collect();
    for a in &addrs {
        args.extend(["--resolver", a.as_str()]);
    }
    let (code, out) = edgemx(&args).await;
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    (code, report)
}

fn findings(report: &Value, level: &str) -> Vec<String> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["level"] == level)
        .map(|f| f["check"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clean_domain_passes_with_exit_0() {
    let dns = DnsServer::start(zone()).await;
    let (code, report) = check("clean.test", &[dns.addr]).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(findings(&report, "error").is_empty(), "{report:#}");
    assert!(findings(&report, "warning").is_empty(), "{report:#}");
    assert_eq!(report["mx"]["ttl"], 300);
    assert_eq!(report["mx"]["hosts"][0]["ours"], true);
    assert_eq!(report["spf"]["lookups"], 1);
    assert_eq!(report["spf"]["all"], "-all");
    assert_eq!(report["spf"]["ours"][0][1], "pass");
    assert_eq!(report["dmarc"]["policy"], "reject");
    assert!(report["mta_sts"]["record"].is_string());
    // The human form says the same.
    let (code, text) = edgemx(&[
        "dns",
        "check",
        "clean.test",
        "--resolver",
        &dns.addr.to_string(),
    ])
    .await;
    assert_eq!(code, 0);
    assert!(
        text.contains("mx1.clean.test") && text.contains("0 error(s), 0 warning(s)"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_planted_mistake_is_found() {
    let dns = DnsServer::start(zone()).await;
    let cases = [
        ("cname.test", "error", "mx.cname"),
        ("literal.test", "error", "mx.ip_literal"),
        ("dangling.test", "error", "mx.unresolvable"),
        ("lookups.test", "error", "spf.lookups"),
        ("plusall.test", "error", "spf.all"),
        ("twospf.test", "error", "spf.multiple"),
        ("nodmarc.test", "error", "dmarc.missing"),
        ("pnone.test", "warning", "dmarc.policy"),
        ("uncovered.test", "error", "spf.coverage"),
    ];
    for (domain, level, check_id) in cases {
        let (code, report) = check(domain, &[dns.addr]).await;
        let found = findings(&report, level);
        assert!(
            found.contains(&check_id.to_string()),
            "{domain}: {report:#}"
        );
        // Only the planted mistake: nothing else is wrong with these domains.
        assert_eq!(found.len(), 1, "{domain}: {found:?}");
        let errors = findings(&report, "error").len() + findings(&report, "warning").len();
        assert_eq!(errors, 1, "{domain}: {report:#}");
        assert_eq!(code, if level == "error" { 1 } else { 0 }, "{domain}");
    }
    let (_, report) = check("lookups.test", &[dns.addr]).await;
    assert_eq!(report["spf"]["lookups"], 11, "one per include");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolvers_that_disagree_are_reported() {
    let dns = DnsServer::start(zone()).await;
    let (_, report) = check("clean.test", &[dns.addr, dns.addr]).await;
    assert!(findings(&report, "warning").is_empty(), "{report:#}");
    let stale = domain(Zone::new(), "clean.test", &[SPF], Some(DMARC)).mx(
        "clean.test",
        5,
        "old.clean.test",
    );
    let other = DnsServer::start(stale).await;
    let (code, report) = check("clean.test", &[dns.addr, other.addr]).await;
    assert_eq!(
        findings(&report, "warning"),
        ["resolvers.disagree"],
        "{report:#}"
    );
    assert_eq!(code, 0, "a disagreement is a warning");
    let text = report["findings"][0]["message"].as_str().unwrap();
    assert!(text.contains("5 old.clean.test"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mx_change_plan_follows_the_live_ttl() {
    let dns = DnsServer::start(zone()).await;
    let resolver = dns.addr.to_string();
    let args = [
        "dns",
        "plan-mx-change",
        "plan.test",
        "--to",
        "10:mx.new.test,20:mx2.new.test",
    ];
    let mut json = args.to_vec();
    json.extend(["--json", "--resolver", &resolver]);
    let (code, out) = edgemx(&json).await;
    assert_eq!(code, 0, "{out}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["current_ttl"], 7200);
    let problems = plan["problems"].as_array().unwrap();
    assert_eq!(
        problems.len(),
        2,
        "the new hosts do not resolve: {problems:?}"
    );
    assert!(
        problems[0]
            .as_str()
            .unwrap()
            .contains("mx.new.test does not resolve")
    );
    let at = |i: usize| plan["steps"][i]["at"].as_u64().unwrap();
    assert_eq!(at(1) - at(0), 7200, "switch after one old TTL");
    assert_eq!(at(2) - at(1), 300, "restore after one low TTL");
    let (code, text) = edgemx(&[&args[..], &["--resolver", &resolver]].concat()).await;
    assert_eq!(code, 0);
    assert!(
        text.contains("from 7200s to 300s") && text.contains("now + 7200s"),
        "{text}"
    );
    assert!(
        text.contains("Restore the TTL to its original 7200s"),
        "{text}"
    );
    let (code, _) = edgemx(&[
        "dns",
        "plan-mx-change",
        "plan.test",
        "--to",
        "192.0.2.1",
        "--resolver",
        &resolver,
    ])
    .await;
    assert_eq!(code, 64, "an IP address is not an MX host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_supplies_resolvers_and_our_name() {
    let dns = DnsServer::start(zone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgemx.toml");
    let config = format!(
        "hostname = \"mx2.clean.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n{}",
        dir.path().display(),
        dns.config()
    );
    std::fs::write(&path, config).unwrap();
    let path = path.to_str().unwrap();
    let (code, out) = edgemx(&["dns", "check", "clean.test", "--json", "--config", path]).await;
    assert_eq!(code, 0, "{out}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["resolvers"][0], dns.addr.to_string());
    assert_eq!(report["mx"]["hosts"][1]["ours"], true, "{report:#}");
    assert_eq!(report["mx"]["hosts"][0]["ours"], false);
    // Secondary at preference 20 below a 10: as it should be; as primary it is misplaced.
    let args = [
        "dns",
        "check",
        "clean.test",
        "--json",
        "--config",
        path,
        "--role",
        "primary",
    ];
    let (code, out) = edgemx(&args).await;
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(findings(&report, "warning"), ["mx.role"], "{report:#}");
    assert_eq!(code, 0);
    std::fs::write(dir.path().join("bad.toml"), "hostname = 1\n").unwrap();
    let bad = dir.path().join("bad.toml");
    let (code, _) = edgemx(&[
        "dns",
        "check",
        "clean.test",
        "--config",
        bad.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code, 64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_mx_ttl_is_never_raised_during_the_change_and_is_restored() {
    use edgemx_tests::dns::Zone;
    let dns = DnsServer::start(
        Zone::new()
            .ttl(60)
            .mx("short.test", 10, "mx1.short.test")
            .a("mx1.short.test", "127.0.0.1".parse().unwrap()),
    )
    .await;
    let resolver = dns.addr.to_string();
    let args = [
        "dns",
        "plan-mx-change",
        "short.test",
        "--to",
        "mx1.short.test",
    ];
    let (code, out) = edgemx(&[&args[..], &["--json", "--resolver", &resolver]].concat()).await;
    assert_eq!(code, 0, "{out}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["current_ttl"], 60);
    assert_eq!(plan["low_ttl"], 60, "min(current TTL, --low-ttl 300)");
    let at = |i: usize| plan["steps"][i]["at"].as_u64().unwrap();
    assert_eq!(at(1), at(0), "nothing to wait for before the switch");
    assert_eq!(at(2) - at(1), 60, "the old set expires after one 60s TTL");
    let action = |i: usize| plan["steps"][i]["action"].as_str().unwrap().to_string();
    assert!(action(1).contains("with TTL 60s"), "{}", action(1));
    assert!(
        action(2).contains("Restore the TTL to its original 60s"),
        "{}",
        action(2)
    );
}
