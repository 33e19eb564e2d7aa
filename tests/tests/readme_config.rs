//! Every TOML block of the documentation is a configuration `edgemx check-config` accepts.
//!
//! The blocks are the ```` ```toml ```` fences of README.md and docs/*.md, and the file the
//! README's quick start writes (its `<<'TOML'` heredoc). A block that begins with top-level
//! keys (`hostname = …`) is a whole `edgemx.toml` and is checked as it stands. A block that
//! begins with a `[section]` header is a fragment: it is checked appended to [`BASE`], which
//! also serves `example.com` unless the fragment declares a `[[domain]]` or `[[route]]` of
//! its own.
//!
//! The examples name files a real gateway has (`/etc/edgemx/…`, `/var/lib/edgemx/…`) and a
//! group of its host (`mailadm`). The test makes those files in a temporary directory
//! (certificates from one CA, DKIM keys with `edgemx dkim keygen`, the map files from the
//! example in docs/routing.md), moves the paths there and names the group `root`, which
//! every host has. Nothing else in a block is changed.

use edgemx_tests::pki::Ca;
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a fragment is appended to.
const BASE: &str = "hostname = \"mx1.example.net\"\ndata_dir = \"/var/lib/edgemx\"\n\n\
                    [[listener]]\naddress = \"127.0.0.1:2525\"\n\n";
/// Added to [`BASE`] for a fragment that serves no domain itself (a probe names one).
const SERVED: &str = "[[domain]]\nname = \"example.com\"\nnext_hops = [\"10.1.2.3:25\"]\n\n";

#[test]
fn every_documented_toml_block_passes_check_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    install_files(root);
    let blocks: Vec<Block> = documents().iter().flat_map(|f| blocks(f)).collect();
    let whole = blocks.iter().filter(|b| !b.fragment()).count();
    assert!(
        blocks.iter().any(|b| b.place.starts_with("README.md")) && whole > 0,
        "no whole configuration found: {blocks:?}"
    );
    assert!(whole < blocks.len(), "no fragment found: {blocks:?}");
    let mut failed = Vec::new();
    for (n, block) in blocks.iter().enumerate() {
        let (kind, text) = match block.fragment() {
            false => ("whole", block.text.clone()),
            true if declares_mail_domains(&block.text) => {
                ("fragment", format!("{BASE}{}", block.text))
            }
            true => ("fragment", format!("{BASE}{SERVED}{}", block.text)),
        };
        let path = root.join(format!("block-{n}.toml"));
        std::fs::write(&path, localize(&text, root)).unwrap();
        let out = Command::new(edgemx_tests::gateway::binary())
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        println!("{} ({kind}): {}", block.place, out.status);
        if !out.status.success() {
            failed.push(format!(
                "{} ({kind}):\n{}{}",
                block.place,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[derive(Debug)]
struct Block {
    /// `FILE:LINE` of the block's first line.
    place: String,
    text: String,
}

impl Block {
    fn fragment(&self) -> bool {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('['))
    }
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md, then docs/*.md in name order.
fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repository().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, repository().join("README.md"));
    docs
}

fn blocks(file: &Path) -> Vec<Block> {
    let name = file.strip_prefix(repository()).unwrap_or(file).display();
    let text = std::fs::read_to_string(file).unwrap();
    let mut out = Vec::new();
    // The line that closes the open block, where it started, and its text so far.
    let mut open: Option<(&str, usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match &mut open {
            None if line == "```toml" => open = Some(("```", n + 2, String::new())),
            None if line.ends_with("<<'TOML'") => open = Some(("TOML", n + 2, String::new())),
            None => {}
            Some((end, start, body)) if line == *end => {
                out.push(Block {
                    place: format!("{name}:{start}"),
                    text: std::mem::take(body),
                });
                open = None;
            }
            Some((_, _, body)) => {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    assert!(open.is_none(), "{name}: a TOML block is not closed");
    out
}

fn declares_mail_domains(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("[[domain]]") || l.starts_with("[[route]]"))
}

/// The documented host's paths and group, moved to the test's directory and host.
fn localize(text: &str, root: &Path) -> String {
    let root = root.display();
    text.replace("/etc/edgemx/", &format!("{root}/etc/edgemx/"))
        .replace("/var/lib/edgemx", &format!("{root}/var/lib/edgemx"))
        .replace("/tmp/edgemx/", &format!("{root}/tmp/edgemx/"))
        .replace("group = \"mailadm\"", "group = \"root\"")
}

/// The files the examples name, as a gateway would have them.
fn install_files(root: &Path) {
    let etc = root.join("etc/edgemx");
    let dkim = root.join("var/lib/edgemx/dkim");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&dkim).unwrap();
    let ca = Ca::new("edgemx documentation CA");
    for name in ["connector-ca.pem", "cloud-ca.pem", "corp-ca.pem"] {
        ca.write(&etc, name);
    }
    let server = ca.issue("mx1.example.net", &["mx1.example.net"]);
    std::fs::write(etc.join("cert.pem"), &server.cert_pem).unwrap();
    std::fs::write(etc.join("key.pem"), &server.key_pem).unwrap();
    ca.issue("edge.example.com", &["edge.example.com"])
        .write(&etc, "edge.example.com");
    ca.issue("edge.example.com", &["edge.example.com"])
        .write(&etc, "edge-client");
    for (name, contents) in map_files() {
        std::fs::write(etc.join(name), contents).unwrap();
    }
    for (selector, algorithm) in [("edge2026r", "rsa"), ("edge2026e", "ed25519")] {
        let key = dkim.join(format!("example.com.{selector}.key"));
        let out = Command::new(edgemx_tests::gateway::binary())
            .args(["dkim", "keygen", "example.com", selector, "--algorithm"])
            .arg(algorithm)
            .arg("--out")
            .arg(&key)
            .output()
            .unwrap();
        assert!(out.status.success(), "dkim keygen: {out:?}");
    }
}

/// The map, alias and list files exactly as docs/routing.md shows them: one block, each
/// file introduced by a comment line naming it (`# /etc/edgemx/aliases: …`).
fn map_files() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repository().join("docs/routing.md")).unwrap();
    let section = text
        .split("## Map, alias and list files")
        .nth(1)
        .expect("docs/routing.md has the map files section");
    let block = section
        .split("```text\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the map files example");
    let mut files: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if let Some(name) = line
            .strip_prefix("# /etc/edgemx/")
            .and_then(|rest| rest.split(':').next())
        {
            files.push((name.to_string(), String::new()));
        }
        if let Some((_, contents)) = files.last_mut() {
            contents.push_str(line);
            contents.push('\n');
        }
    }
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["recipients.map", "aliases", "onprem-users.txt"]);
    files
}
