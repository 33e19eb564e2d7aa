//! TLS-RPT (RFC 8460) and DMARC aggregate reports (RFC 7489 §7.2) sent through the
//! gateway's own queue and read at the sink by an independent parser: Python's `email`,
//! `gzip`, `json` and `xml.etree`. TLS policy outcomes are published on the gateway's
//! event bus as delivery publishes them; DMARC rows come from real verified mail. Every
//! report is sent with `request reports send` (the control call), never by waiting for
//! the day to end.

use edgemx::control::{ConsoleRequest, Request};
use edgemx::dkim::keygen::Algorithm;
use edgemx::observe::events::Event;
use edgemx_tests::dns::{DnsServer, Zone};
use edgemx_tests::mailauth::{message, new_key, signed, signed_message};
use edgemx_tests::{FakeBackend, Gateway, GatewayProcess, ReceivedMessage, send_mail};
use serde_json::Value;
use std::net::IpAddr;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(30);

const IDENTITY: &str = "report_org_name = \"Gateway Test Org\"\nreport_from = \"reports@gateway.test\"\nreport_contact = \"https://gateway.test/reports\"\n";

/// Reads a report message the way a domain owner's tooling would, with nothing of ours:
/// prints the headers that matter, the attachment's name and type, and the report itself
/// (JSON as is; XML as a JSON digest of the RFC 7489 elements).
const PARSER: &str = r#"
import sys, email, gzip, json
import xml.etree.ElementTree as ET
from email import policy
msg = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=policy.default)
out = {"subject": str(msg["Subject"]), "from": str(msg["From"]),
       "tls_domain": msg["TLS-Report-Domain"], "tls_submitter": msg["TLS-Report-Submitter"],
       "type": msg.get_content_type(), "report_type": msg.get_param("report-type")}
for part in msg.walk():
    ct = part.get_content_type()
    if ct not in ("application/tlsrpt+gzip", "application/gzip"):
        continue
    data = gzip.decompress(part.get_payload(decode=True))
    out["filename"] = part.get_filename()
    out["attachment"] = ct
    if ct == "application/tlsrpt+gzip":
        out["report"] = json.loads(data)
        continue
    root = ET.fromstring(data)
    for el in root.iter():
        el.tag = el.tag.split("}", 1)[-1]
    t = root.findtext
    out["report"] = {
        "org_name": t("report_metadata/org_name"), "email": t("report_metadata/email"),
        "extra_contact_info": t("report_metadata/extra_contact_info"),
        "report_id": t("report_metadata/report_id"),
        "begin": int(t("report_metadata/date_range/begin")),
        "end": int(t("report_metadata/date_range/end")),
        "domain": t("policy_published/domain"), "p": t("policy_published/p"),
        "records": [{
            "source_ip": r.findtext("row/source_ip"), "count": int(r.findtext("row/count")),
            "disposition": r.findtext("row/policy_evaluated/disposition"),
            "dkim": r.findtext("row/policy_evaluated/dkim"),
            "spf": r.findtext("row/policy_evaluated/spf"),
            "header_from": r.findtext("identifiers/header_from"),
            "envelope_from": r.findtext("identifiers/envelope_from"),
            "auth_dkim": [[d.findtext("domain"), d.findtext("selector"), d.findtext("result")]
                          for d in r.findall("auth_results/dkim")],
            "auth_spf": [[s.findtext("domain"), s.findtext("scope"), s.findtext("result")]
                         for s in r.findall("auth_results/spf")],
        } for r in root.findall("record")],
    }
print(json.dumps(out))
"#;

fn parse(message: &ReceivedMessage) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.eml");
    std::fs::write(&path, &message.data).unwrap();
    let out = std::process::Command::new("python3")
        .args(["-c", PARSER])
        .arg(&path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn reports(gw: &Gateway, send: bool) -> Value {
    let call = ConsoleRequest::Reports { send };
    edgemx_tests::control::call(gw, Request::Console { call })
        .await
        .unwrap()
}

fn results(status: &Value) -> Vec<(String, String)> {
    status["sent"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["domain"].as_str().unwrap().to_string(),
                s["result"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn outcome(gw: &Gateway, domain: &str, mx: &str, failure: Option<&'static str>) {
    let sts = [
        "version: STSv1".to_string(),
        "mode: enforce".to_string(),
        format!("mx: *.{domain}"),
    ];
    let ip: IpAddr = "127.0.0.9".parse().unwrap();
    gw.events.publish(&Event::TlsPolicyOutcome {
        policy_domain: domain,
        policy_type: "sts",
        policy_string: &sts,
        mx_host: mx,
        receiving_ip: Some(ip),
        failure,
        enforced: true,
    });
}

fn tls_zone() -> Zone {
    Zone::new()
        .txt("rep._domainkey.gateway.test", &signing_key().1)
        .txt(
            "_smtp._tls.policy.test",
            "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
        )
        .txt(
            "_smtp._tls.web.test",
            "v=TLSRPTv1; rua=https://reports.web.test/tlsrpt",
        )
}

/// The gateway's own DKIM key for gateway.test (the domain of `report_from`), one per
/// test binary: the PEM and the TXT record.
fn signing_key() -> &'static (String, String) {
    static KEY: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    KEY.get_or_init(|| {
        let pair = edgemx::dkim::keygen::generate(Algorithm::Ed25519).unwrap();
        (pair.pem(), pair.record())
    })
}

/// A gateway reporting TLS-RPT, with `dir` as data directory (the DKIM key is put at its
/// default place there once).
async fn tls_gateway(
    dns: &DnsServer,
    backend: &FakeBackend,
    dir: tempfile::TempDir,
    auth: &str,
) -> Gateway {
    let key = edgemx::config::auth::default_key_path(dir.path(), "gateway.test", "rep");
    if !key.exists() {
        edgemx::dkim::keygen::write_key(&key, &signing_key().0).unwrap();
    }
    let extra = format!(
        "{}\n[auth]\nverify = false\ntls_reports = true\n{IDENTITY}{auth}\n[[auth.dkim]]\ndomain = \"gateway.test\"\nselector = \"rep\"\n",
        dns.config()
    );
    let gw = Gateway::start_in(dir, backend.addr(), &extra).await;
    edgemx_tests::control::ready(&gw, WAIT).await;
    gw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_report_counts_sessions_per_result_type_and_reaches_the_rua() {
    let dns = DnsServer::start(tls_zone()).await;
    let backend = FakeBackend::start().await;
    let gw = tls_gateway(&dns, &backend, tempfile::tempdir().unwrap(), "").await;
    for _ in 0..3 {
        outcome(&gw, "policy.test", "mx1.policy.test", None);
    }
    outcome(
        &gw,
        "policy.test",
        "mx2.policy.test",
        Some("certificate-expired"),
    );
    outcome(
        &gw,
        "policy.test",
        "mx2.policy.test",
        Some("certificate-expired"),
    );
    outcome(
        &gw,
        "policy.test",
        "mx1.policy.test",
        Some("starttls-not-supported"),
    );
    outcome(&gw, "web.test", "mx.web.test", None);
    outcome(
        &gw,
        "quiet.test",
        "mx.quiet.test",
        Some("validation-failure"),
    );
    let shown = reports(&gw, false).await;
    assert_eq!(shown["pending"].as_array().unwrap().len(), 3, "{shown}");

    let status = reports(&gw, true).await;
    let sent = results(&status);
    assert!(
        sent.contains(&("policy.test".into(), "queued".into())),
        "{status}"
    );
    assert!(
        sent.contains(&("web.test".into(), "skipped_no_mailto".into())),
        "{status}"
    );
    assert!(
        sent.contains(&("quiet.test".into(), "skipped_no_policy".into())),
        "{status}"
    );
    let got = backend.wait_for_messages(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_to, ["tlsrpt@example.com"]);
    assert_eq!(got[0].mail_from, "reports@gateway.test");
    // Signed with the key of report_from's domain, as the gateway signs its other mail.
    let dkim = edgemx_tests::mailauth::verify(&dns, &got[0].data).await;
    assert_eq!(dkim, [mail_auth::DkimResult::Pass]);
    let mail = parse(&got[0]);
    assert_eq!(mail["type"], "multipart/report");
    assert_eq!(mail["report_type"], "tlsrpt");
    assert_eq!(mail["tls_domain"], "policy.test");
    assert_eq!(mail["tls_submitter"], "gateway.test");
    assert_eq!(mail["attachment"], "application/tlsrpt+gzip");
    let subject = mail["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Report Domain: policy.test Submitter: gateway.test Report-ID: <"),
        "{subject}"
    );
    let filename = mail["filename"].as_str().unwrap();
    assert!(
        filename.starts_with("gateway.test!policy.test!"),
        "{filename}"
    );
    assert!(filename.ends_with(".json.gz"), "{filename}");
    let report = &mail["report"];
    assert_eq!(report["organization-name"], "Gateway Test Org");
    assert_eq!(report["contact-info"], "https://gateway.test/reports");
    let policy = &report["policies"][0];
    assert_eq!(policy["policy"]["policy-type"], "sts");
    assert_eq!(policy["policy"]["policy-domain"], "policy.test");
    assert_eq!(policy["policy"]["policy-string"][1], "mode: enforce");
    assert_eq!(
        policy["policy"]["mx-host"],
        serde_json::json!(["mx1.policy.test", "mx2.policy.test"])
    );
    assert_eq!(policy["summary"]["total-successful-session-count"], 3);
    assert_eq!(policy["summary"]["total-failure-session-count"], 3);
    let details = policy["failure-details"].as_array().unwrap();
    let count = |result: &str| -> u64 {
        details
            .iter()
            .filter(|d| d["result-type"] == result)
            .map(|d| d["failed-session-count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(count("certificate-expired"), 2);
    assert_eq!(count("starttls-not-supported"), 1);
    let expired = details
        .iter()
        .find(|d| d["result-type"] == "certificate-expired")
        .unwrap();
    assert_eq!(expired["receiving-mx-hostname"], "mx2.policy.test");
    assert_eq!(expired["receiving-ip"], "127.0.0.9");

    // Sent data is gone; a second run has nothing to say.
    let again = reports(&gw, true).await;
    assert!(results(&again).is_empty(), "{again}");
    assert!(again["pending"].as_array().unwrap().is_empty(), "{again}");
    let metrics = gw.metrics().await;
    assert!(
        metrics.contains(r#"edgemx_reports_sent_total{kind="tlsrpt",result="queued"} 1"#),
        "{metrics}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_counts_survive_a_restart_and_are_reported_once() {
    let dns = DnsServer::start(tls_zone()).await;
    let backend = FakeBackend::start().await;
    let gw = tls_gateway(&dns, &backend, tempfile::tempdir().unwrap(), "").await;
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    outcome(
        &gw,
        "policy.test",
        "mx1.policy.test",
        Some("validation-failure"),
    );
    let dir = gw.stop().await;
    let gw = tls_gateway(&dns, &backend, dir, "").await;
    let shown = reports(&gw, false).await;
    assert_eq!(shown["pending"][0]["count"], 3, "{shown}");
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    let status = reports(&gw, true).await;
    assert_eq!(results(&status), [("policy.test".into(), "queued".into())]);
    let got = backend.wait_for_messages(1, WAIT).await;
    let report = &parse(&got[0])["report"];
    let summary = &report["policies"][0]["summary"];
    assert_eq!(summary["total-successful-session-count"], 3, "{report}");
    assert_eq!(summary["total-failure-session-count"], 1, "{report}");
    // The report and the removal of its data were one commit: nothing comes back.
    let dir = gw.stop().await;
    let gw = tls_gateway(&dns, &backend, dir, "").await;
    assert!(
        reports(&gw, false).await["pending"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_queues_at_most_report_max_per_run_and_the_rest_waits_for_the_next() {
    let zone = tls_zone().txt(
        "_smtp._tls.second.test",
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
    );
    let dns = DnsServer::start(zone).await;
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let gw = tls_gateway(&dns, &backend, dir, "report_max_per_run = 1\n").await;
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    outcome(&gw, "second.test", "mx1.second.test", None);
    let first = results(&reports(&gw, true).await);
    let mut kinds: Vec<&str> = first.iter().map(|(_, r)| r.as_str()).collect();
    kinds.sort();
    assert_eq!(kinds, ["queued", "skipped_run_limit"], "{first:?}");
    let waiting = reports(&gw, false).await;
    assert_eq!(waiting["pending"].as_array().unwrap().len(), 1, "{waiting}");
    let second = results(&reports(&gw, true).await);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].1, "queued");
    assert_ne!(
        second[0].0,
        first.iter().find(|(_, r)| r == "queued").unwrap().0
    );
    let got = backend.wait_for_messages(2, WAIT).await;
    let mut domains: Vec<String> = got
        .iter()
        .map(|m| parse(m)["tls_domain"].as_str().unwrap().to_string())
        .collect();
    domains.sort();
    assert_eq!(domains, ["policy.test", "second.test"]);
    gw.stop().await;
}

#[test]
fn check_config_names_a_bad_report_setting_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgemx.toml");
    std::fs::write(
        &path,
        format!(
            "hostname = \"mx.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
             [auth]\ndmarc_reports = true\nreport_max_per_run = 0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(edgemx_tests::gateway::binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(stderr.contains("auth.report_from"), "{stderr}");
    assert!(stderr.contains("auth.report_max_per_run"), "{stderr}");
}

/// Senders and their DMARC records: `pass.test` and `reject.test` report to example.com,
/// which authorises them (RFC 7489 §7.1); `unverified.test` reports there unauthorised.
fn dmarc_zone(dkim_record: &str) -> Zone {
    Zone::new()
        .txt("client.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt(
            "_dmarc.pass.test",
            "v=DMARC1; p=none; rua=mailto:dmarc@example.com",
        )
        .txt("s1._domainkey.pass.test", dkim_record)
        .txt("pass.test._report._dmarc.example.com", "v=DMARC1")
        .txt("reject.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt(
            "_dmarc.reject.test",
            "v=DMARC1; p=reject; rua=mailto:dmarc@example.com",
        )
        .txt("reject.test._report._dmarc.example.com", "v=DMARC1")
        .txt("unverified.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt(
            "_dmarc.unverified.test",
            "v=DMARC1; p=none; rua=mailto:dmarc@example.com",
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dmarc_aggregate_reports_carry_what_was_verified_and_respect_the_rate_limit() {
    let keys = tempfile::tempdir().unwrap();
    let (key, record) = new_key(keys.path(), Algorithm::Ed25519, "pass.test", "s1");
    let dns = DnsServer::start(dmarc_zone(&record)).await;
    let backend = FakeBackend::start().await;
    let extra = format!(
        "{}\n[auth]\nverify = true\ndmarc_reports = true\n{IDENTITY}",
        dns.config()
    );
    let gw = Gateway::start(backend.addr(), &extra).await;
    let to = ["user@example.com"];
    let signed = String::from_utf8(signed(
        key,
        "pass.test",
        "s1",
        &signed_message("a@pass.test"),
    ))
    .unwrap();
    for body in [
        signed,
        message("a@pass.test", ""),
        message("b@pass.test", ""),
    ] {
        let reply = send_mail(gw.addr, "a@pass.test", &to, &body).await.unwrap();
        assert!(reply.is("250"), "{reply:?}");
    }
    // A subdomain without a record of its own is reported under its parent's policy.
    let reply = send_mail(
        gw.addr,
        "c@sub.pass.test",
        &to,
        &message("c@sub.pass.test", ""),
    )
    .await
    .unwrap();
    assert!(reply.is("250"), "{reply:?}");
    let reply = send_mail(gw.addr, "x@reject.test", &to, &message("x@reject.test", ""))
        .await
        .unwrap();
    assert!(reply.is("550 5.7.1"), "{reply:?}");
    let reply = send_mail(
        gw.addr,
        "u@unverified.test",
        &to,
        &message("u@unverified.test", ""),
    )
    .await
    .unwrap();
    assert!(reply.is("250"), "{reply:?}");
    backend.wait_for_messages(5, WAIT).await;

    let status = reports(&gw, true).await;
    let mut sent = results(&status);
    sent.sort();
    assert_eq!(
        sent,
        [
            ("pass.test".into(), "queued".into()),
            ("reject.test".into(), "queued".into()),
            ("unverified.test".into(), "skipped_unverified".into()),
        ],
        "{status}"
    );
    let got = backend.wait_for_messages(7, WAIT).await;
    assert_eq!(got.len(), 7);
    let reports_got: Vec<Value> = got[5..].iter().map(parse).collect();
    assert!(got[5..].iter().all(|m| m.rcpt_to == ["dmarc@example.com"]));
    let of = |domain: &str| {
        reports_got
            .iter()
            .find(|r| r["report"]["domain"] == domain)
            .unwrap_or_else(|| panic!("no report for {domain}: {reports_got:?}"))
    };

    let pass = of("pass.test");
    let subject = pass["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("Report Domain: pass.test Submitter: gateway.test Report-ID: "),
        "{subject}"
    );
    let filename = pass["filename"].as_str().unwrap();
    assert!(
        filename.starts_with("gateway.test!pass.test!"),
        "{filename}"
    );
    assert!(filename.ends_with(".xml.gz"), "{filename}");
    let report = &pass["report"];
    assert_eq!(report["org_name"], "Gateway Test Org");
    assert_eq!(report["email"], "reports@gateway.test");
    assert_eq!(report["p"], "none");
    assert!(
        report["begin"].as_u64() < report["end"].as_u64(),
        "{report}"
    );
    let (records, sub): (Vec<&Value>, Vec<&Value>) = report["records"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|r| r["header_from"] == "pass.test");
    assert_eq!(records.len(), 2, "signed and unsigned differ: {report}");
    let total: u64 = records.iter().map(|r| r["count"].as_u64().unwrap()).sum();
    assert_eq!(total, 3);
    assert_eq!(sub.len(), 1, "{report}");
    assert_eq!(sub[0]["header_from"], "sub.pass.test");
    assert_eq!(
        (&sub[0]["dkim"], &sub[0]["spf"]),
        (&"fail".into(), &"fail".into())
    );
    assert_eq!(
        sub[0]["auth_spf"],
        serde_json::json!([["sub.pass.test", "mfrom", "none"]])
    );
    let signed_row = records.iter().find(|r| r["count"] == 1).unwrap();
    assert_eq!(
        signed_row["auth_dkim"],
        serde_json::json!([["pass.test", "s1", "pass"]])
    );
    assert_eq!(signed_row["dkim"], "pass");
    let plain = records.iter().find(|r| r["count"] == 2).unwrap();
    assert_eq!(plain["auth_dkim"], serde_json::json!([]));
    assert_eq!(plain["dkim"], "fail");
    for r in &records {
        assert_eq!(r["source_ip"], "127.0.0.1");
        assert_eq!(r["disposition"], "none");
        assert_eq!(r["spf"], "pass");
        assert_eq!(r["header_from"], "pass.test");
        assert_eq!(r["envelope_from"], "pass.test");
        assert_eq!(
            r["auth_spf"],
            serde_json::json!([["pass.test", "mfrom", "pass"]])
        );
    }

    let reject = &of("reject.test")["report"];
    assert_eq!(reject["p"], "reject");
    let row = &reject["records"][0];
    assert_eq!(row["count"], 1);
    assert_eq!(row["disposition"], "reject");
    assert_eq!(
        (&row["dkim"], &row["spf"]),
        (&"fail".into(), &"fail".into())
    );
    assert_eq!(
        row["auth_spf"],
        serde_json::json!([["reject.test", "mfrom", "fail"]])
    );

    // One report per domain per period: new mail waits for the next period.
    let reply = send_mail(gw.addr, "a@pass.test", &to, &message("a@pass.test", ""))
        .await
        .unwrap();
    assert!(reply.is("250"), "{reply:?}");
    let status = reports(&gw, true).await;
    assert_eq!(
        results(&status),
        [("pass.test".into(), "skipped_rate_limit".into())]
    );
    let pending = &status["pending"][0];
    assert_eq!(
        (&pending["domain"], &pending["count"]),
        (&"pass.test".into(), &1.into())
    );
    let metrics = gw.metrics().await;
    for line in [
        r#"edgemx_reports_sent_total{kind="dmarc",result="queued"} 2"#,
        r#"edgemx_reports_sent_total{kind="dmarc",result="skipped_unverified"} 1"#,
        r#"edgemx_reports_sent_total{kind="dmarc",result="skipped_rate_limit"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line}\n{metrics}");
    }
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_counted_or_sent_while_reporting_is_off() {
    let keys = tempfile::tempdir().unwrap();
    let (_, record) = new_key(keys.path(), Algorithm::Ed25519, "pass.test", "s1");
    let zone = dmarc_zone(&record).txt(
        "_smtp._tls.policy.test",
        "v=TLSRPTv1; rua=mailto:tlsrpt@example.com",
    );
    let dns = DnsServer::start(zone).await;
    let backend = FakeBackend::start().await;
    let extra = format!("{}\n[auth]\nverify = true\n{IDENTITY}", dns.config());
    let gw = Gateway::start(backend.addr(), &extra).await;
    let to = ["user@example.com"];
    let reply = send_mail(gw.addr, "a@pass.test", &to, &message("a@pass.test", ""))
        .await
        .unwrap();
    assert!(reply.is("250"), "{reply:?}");
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    backend.wait_for_messages(1, WAIT).await;
    let status = reports(&gw, true).await;
    assert_eq!(status["tls_reports"], false);
    assert_eq!(status["dmarc_reports"], false);
    assert!(results(&status).is_empty(), "{status}");
    assert!(status["pending"].as_array().unwrap().is_empty(), "{status}");
    let queued = edgemx_tests::control::queued(&gw).await;
    assert!(
        queued.iter().all(|e| e["sender"] != "reports@gateway.test"),
        "{queued:?}"
    );
    assert_eq!(backend.messages().len(), 1, "only the mail itself");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_binary_keeps_dmarc_counts_over_sigterm_and_edgemx_reports_sends_them() {
    let keys = tempfile::tempdir().unwrap();
    let (_, record) = new_key(keys.path(), Algorithm::Ed25519, "pass.test", "s1");
    let dns = DnsServer::start(dmarc_zone(&record)).await;
    let backend = FakeBackend::start().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\n[auth]\nverify = true\ndmarc_reports = true\n{IDENTITY}",
        dns.config()
    );
    let gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let to = ["user@example.com"];
    for _ in 0..2 {
        let reply = send_mail(gw.addr, "a@pass.test", &to, &message("a@pass.test", ""))
            .await
            .unwrap();
        assert!(reply.is("250"), "{reply:?}");
    }
    backend.wait_for_messages(2, WAIT).await;
    // The counts live in memory until a flush; SIGTERM's clean shutdown writes them.
    assert!(gw.terminate().success());
    let gw = GatewayProcess::spawn(dir.path(), backend.addr(), &extra);
    let out = gw.cli(&["reports"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("DMARC aggregate reports on"), "{text}");
    assert!(text.contains("dmarc  pass.test"), "{text}");
    assert!(text.contains("2 messages, 0 failed"), "{text}");
    let out = gw.cli(&["reports", "send"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(text.contains("dmarc  pass.test"), "{text}");
    assert!(text.contains("queued"), "{text}");
    let got = backend.wait_for_messages(3, WAIT).await;
    let report = &parse(&got[2])["report"];
    assert_eq!(report["domain"], "pass.test");
    assert_eq!(report["records"][0]["count"], 2, "{report}");
    assert!(gw.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_takes_no_report_and_keeps_its_data() {
    let dns = DnsServer::start(tls_zone()).await;
    let down = FakeBackend::start().await;
    let addr = down.stop();
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "{}\n[queue]\nmax_messages = 1\n\n[auth]\nverify = false\ntls_reports = true\n{IDENTITY}",
        dns.config()
    );
    let gw = Gateway::start_in(dir, addr, &extra).await;
    // One message waits for its next hop: the queue is at its quota.
    let reply = send_mail(
        gw.addr,
        "a@client.test",
        &["user@example.com"],
        "Subject: x\r\n\r\nx\r\n",
    )
    .await
    .unwrap();
    assert!(reply.is("250"), "{reply:?}");
    outcome(&gw, "policy.test", "mx1.policy.test", None);
    let status = reports(&gw, true).await;
    assert_eq!(results(&status), [("policy.test".into(), "failed".into())]);
    assert!(
        status["sent"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("queue"),
        "{status}"
    );
    assert_eq!(
        status["pending"][0]["count"], 1,
        "kept for the next run: {status}"
    );
    assert_eq!(edgemx_tests::control::queued(&gw).await.len(), 1);
    gw.stop().await;
}
