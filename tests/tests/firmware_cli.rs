//! `edgemx firmware keygen|sign|verify|inspect` through the real binary: a bundle signed with
//! one key verifies against that key only, and every kind of bad bundle is refused with exit
//! 65 and a message naming what failed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(edgemx_tests::gateway::binary())
        .arg("firmware")
        .args(args)
        .output()
        .expect("edgemx runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A key pair: the private key file and a trust file holding its public key.
    fn key(&self, name: &str) {
        let out = run(&["keygen", &self.s(&format!("{name}.pk8"))]);
        assert!(out.status.success(), "{}", text(&out));
        std::fs::write(self.path(&format!("{name}.pub")), &out.stdout).unwrap();
    }

    fn sign(&self, key: &str, version: &str, out: &str, extra: &[&str]) {
        let key = self.s(&format!("{key}.pk8"));
        let (payload, out) = (self.s("payload.img"), self.s(out));
        let mut args = vec![
            "sign",
            "--key",
            &key,
            "--version",
            version,
            "--build",
            "test",
        ];
        args.extend(["--out", &out]);
        if !extra.contains(&"--from") {
            args.extend(["--payload", &payload]);
        }
        args.extend(extra);
        let o = run(&args);
        assert!(o.status.success(), "{}", text(&o));
    }

    /// Verifies `bundle` trusting `key`; returns the exit code and the output.
    fn verify(&self, bundle: &str, key: &str, extra: &[&str]) -> (Option<i32>, String) {
        let (file, trust) = (self.s(bundle), self.s(&format!("{key}.pub")));
        let mut args = vec!["verify", &file, "--trust", &trust];
        args.extend(extra);
        let out = run(&args);
        (out.status.code(), text(&out))
    }

    fn edit(&self, from: &str, to: &str, change: impl FnOnce(&mut Vec<u8>)) {
        let mut b = std::fs::read(self.path(from)).unwrap();
        change(&mut b);
        std::fs::write(self.path(to), b).unwrap();
    }
}

fn refused(got: (Option<i32>, String), reason: &str) {
    assert_eq!(got.0, Some(65), "{}", got.1);
    assert!(
        got.1.contains(reason),
        "{:?} does not name {reason:?}",
        got.1
    );
}

#[test]
fn bundles_verify_against_their_key_and_each_fault_is_named() {
    let d = Dir(tempfile::tempdir().unwrap());
    d.key("dev");
    d.key("other");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(d.path("payload.img"), &payload).unwrap();
    d.sign("dev", "10", "v10.bundle", &[]);

    let (code, out) = d.verify("v10.bundle", "dev", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("good: version 10 (test) for edgemx-x86_64"),
        "{out}"
    );
    let inspect = run(&["inspect", &d.s("v10.bundle"), "--trust", &d.s("dev.pub")]);
    assert!(
        text(&inspect).contains("\"version\": 10"),
        "{}",
        text(&inspect)
    );

    refused(d.verify("v10.bundle", "other", &[]), "unknown key");
    d.sign("other", "10", "stranger.bundle", &[]);
    refused(d.verify("stranger.bundle", "dev", &[]), "unknown key");

    d.edit("v10.bundle", "manifest.bundle", |b| {
        let at = 96 + b[96..].iter().position(|&c| c == b'1').unwrap();
        b[at] = b'2'; // a digit inside the manifest
    });
    refused(d.verify("manifest.bundle", "dev", &[]), "bad signature");
    d.edit("v10.bundle", "payload.bundle", |b| {
        let last = b.len() - 1;
        b[last] ^= 1;
    });
    refused(d.verify("payload.bundle", "dev", &[]), "payload block 2");
    d.edit("v10.bundle", "short.bundle", |b| b.truncate(b.len() - 5000));
    refused(d.verify("short.bundle", "dev", &[]), "truncated");

    d.sign(
        "dev",
        "10",
        "arm.bundle",
        &["--compatible", "edgemx-aarch64"],
    );
    refused(d.verify("arm.bundle", "dev", &[]), "wrong compatible");

    d.sign("dev", "9", "v9.bundle", &[]);
    let running = ["--running-version", "10"];
    refused(d.verify("v9.bundle", "dev", &running), "downgrade refused");
    let asked = ["--running-version", "10", "--allow-downgrade"];
    refused(d.verify("v9.bundle", "dev", &asked), "does not permit");
    d.sign("dev", "9", "v9ok.bundle", &["--allow-downgrade"]);
    assert_eq!(d.verify("v9ok.bundle", "dev", &asked).0, Some(0));
    refused(
        d.verify("v9ok.bundle", "dev", &running),
        "downgrade refused",
    );

    refused(
        d.verify("v10.bundle", "dev", &["--slot-size", "2000000"]),
        "does not fit",
    );

    // Version N+1 of the same payload, re-signed without the payload file.
    let from = d.s("v10.bundle");
    d.sign("dev", "11", "v11.bundle", &["--from", &from]);
    let (code, out) = d.verify("v11.bundle", "dev", &["--running-version", "10"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("version 11 (test)"), "{out}");
    let tail = |f: &Path| {
        let b = std::fs::read(f).unwrap();
        b[b.len() - payload.len()..].to_vec()
    };
    assert_eq!(tail(&d.path("v11.bundle")), payload);
    assert_eq!(
        run(&["verify", &d.s("missing.bundle")]).status.code(),
        Some(66)
    );
}
