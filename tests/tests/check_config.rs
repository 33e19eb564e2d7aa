//! `edgemx check-config` warnings on a valid configuration: a route that accepts every
//! recipient (backscatter) is named, and the configuration is still valid (exit 0).

use std::process::Command;

#[test]
fn a_route_without_recipient_checks_is_warned_about_and_still_valid() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("edgemx.toml");
    let users = dir.path().join("users.txt");
    std::fs::write(&users, "bob@local.example.com\n").unwrap();
    std::fs::write(
        &path,
        format!(
            "hostname = \"mx.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n\
             [dns]\nnameservers = [\"127.0.0.1:53\"]\n\
             [[route]]\nname = \"cloud\"\ndomains = [\"example.com\"]\nnext_hops = [\"127.0.0.1:2526\"]\n\
             [[route]]\nname = \"onprem\"\ndomains = [\"local.example.com\"]\nnext_hops = [\"127.0.0.1:2527\"]\nrecipients = \"{}\"\n",
            dir.path().display(),
            users.display()
        ),
    )
    .unwrap();
    let out = Command::new(edgemx_tests::gateway::binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stderr.contains("warning: route \"cloud\" (serves example.com) accepts every recipient"),
        "{stderr}"
    );
    assert!(!stderr.contains("\"onprem\""), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn bad_dane_mta_sts_and_ssh_keys_are_named_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (section, line, named) in [
        ("dane", "mode = \"sometimes\"", "`log-only`"),
        ("mta_sts", "prot = 443", "unknown field `prot`"),
        ("delivery", "mx_port = \"twenty-five\"", "line 6"),
        (
            "dane",
            "trust_anchor = \"/nonexistent/anchor.keys\"",
            "dane.trust_anchor",
        ),
        ("mta_sts", "ca = \"/nonexistent/ca.pem\"", "mta_sts.ca"),
        // The console over SSH: a key that is not one, on without keys, a bad address.
        (
            "ssh",
            "authorized_keys = [\"ssh-ed25519 AAAAnot-a-key admin@laptop\"]",
            "ssh.authorized_keys[0]",
        ),
        ("ssh", "enabled = true", "ssh.authorized_keys"),
        ("ssh", "address = [\"somewhere:22\"]", "line 6"),
        ("ssh", "login = \"admin\"", "ssh.login"),
        ("ssh", "max_connections = 0", "ssh.max_connections"),
    ] {
        let path = dir.path().join("edgemx.toml");
        std::fs::write(
            &path,
            format!(
                "hostname = \"mx.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n[{section}]\n{line}\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let out = Command::new(edgemx_tests::gateway::binary())
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{section}: {out:?}");
        assert!(stderr.contains(named), "{section}: {stderr}");
    }
}
