//! `edgemx user add|delete|hash` through the real binary: the users file the gateway reads
//! for SMTP AUTH, and hashes printed for hand-written files.

#[test]
fn the_user_cli_adds_replaces_deletes_and_hashes() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edgemx.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"mx.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let run = |args: &[&str], stdin: &str| {
        let mut child = Command::new(edgemx_tests::gateway::binary())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // A command that refuses its arguments exits without reading: EPIPE is fine.
        let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
        child.wait_with_output().unwrap()
    };
    let cfg = config.to_str().unwrap();
    let users = edgemx::policy::users::Users::new(dir.path().join("users"));
    let out = run(&["user", "add", "app", "--config", cfg], "first pw\n");
    assert!(out.status.success(), "{out:?}");
    assert!(users.verify("app", "first pw"));
    let out = run(&["user", "add", "app", "--config", cfg], "second pw\n");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("updated"),
        "{out:?}"
    );
    assert!(users.verify("app", "second pw") && !users.verify("app", "first pw"));
    let out = run(&["user", "add", "bad:name", "--config", cfg], "pw\n");
    assert_eq!(out.status.code(), Some(65));
    let out = run(&["user", "delete", "app", "--config", cfg], "");
    assert!(out.status.success() && !users.verify("app", "second pw"));

    let out = run(&["user", "hash"], "printed pw\n");
    let hash = String::from_utf8(out.stdout).unwrap();
    assert!(
        edgemx::password::verify("printed pw", hash.trim()),
        "{hash}"
    );
    let out = run(&["user", "hash"], "\n");
    assert_eq!(out.status.code(), Some(65), "empty passwords are refused");
}

#[test]
fn user_add_before_the_first_serve_creates_the_data_directory() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("var/lib/edgemx");
    let config = dir.path().join("edgemx.toml");
    std::fs::write(
        &config,
        format!(
            "hostname = \"mx.test\"\ndata_dir = \"{}\"\n[[listener]]\naddress = \"127.0.0.1:2525\"\n",
            data.display()
        ),
    )
    .unwrap();
    let mut child = Command::new(edgemx_tests::gateway::binary())
        .args(["user", "add", "app", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"early pw\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700, "the data directory as serve makes it");
    let users = edgemx::policy::users::Users::new(data.join("users"));
    assert!(users.verify("app", "early pw"));
}
