//! The TOML blocks of README.md and docs/*.md, and what it takes to check them.
//!
//! The blocks are the ```` ```toml ```` fences of README.md and docs/*.md, and the file the
//! README's quick start writes (its `<<'TOML'` heredoc). A block that begins with top-level
//! keys (`hostname = …`) is a whole `edgemx.toml`. A block that begins with a `[section]`
//! header is a fragment: it is checked appended to [`BASE`], which also serves
//! `example.com` unless the fragment declares a `[[domain]]` or `[[route]]` of its own
//! ([`whole`]).
//!
//! The examples name files a real gateway has (`/etc/edgemx/…`, `/var/lib/edgemx/…`) and a
//! group of its host (`mailadm`). [`install_files`] makes those files in a temporary
//! directory (certificates from one CA, DKIM keys with `edgemx dkim keygen`, the map files
//! from the example in docs/routing.md), and [`localize`] moves the paths there and names
//! the group `root`, which every host has. Nothing else in a block is changed.

use crate::pki::Ca;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// What a fragment is appended to.
pub const BASE: &str = "hostname = \"mx1.example.net\"\ndata_dir = \"/var/lib/edgemx\"\n\n\
                    [[listener]]\naddress = \"127.0.0.1:2525\"\n\n";
/// Added to [`BASE`] for a fragment that serves no domain itself (a probe names one).
pub const SERVED: &str = "[[domain]]\nname = \"example.com\"\nnext_hops = [\"10.1.2.3:25\"]\n\n";

#[derive(Debug)]
pub struct Block {
    /// `FILE:LINE` of the block's first line.
    pub place: String,
    pub text: String,
}

impl Block {
    /// Begins with a `[section]` header: part of a file, not a whole one.
    pub fn fragment(&self) -> bool {
        self.text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .is_some_and(|l| l.starts_with('['))
    }
}

pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md, then docs/*.md in name order.
pub fn documents() -> Vec<PathBuf> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(repository().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    docs.insert(0, repository().join("README.md"));
    docs
}

pub fn blocks(file: &Path) -> Vec<Block> {
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

pub fn declares_mail_domains(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("[[domain]]") || l.starts_with("[[route]]"))
}

/// The documented host's paths and group, moved to the test's directory and host.
pub fn localize(text: &str, root: &Path) -> String {
    let root = root.display();
    text.replace("/etc/edgemx/", &format!("{root}/etc/edgemx/"))
        .replace("/var/lib/edgemx", &format!("{root}/var/lib/edgemx"))
        .replace("/tmp/edgemx/", &format!("{root}/tmp/edgemx/"))
        .replace("group = \"mailadm\"", "group = \"root\"")
}

/// The files the examples name, as a gateway would have them.
pub fn install_files(root: &Path) {
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
    // The RSA certificate served beside it (rcgen cannot make RSA keys with ring).
    let rsa = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../gateway/src/tls/testdata/rsa-2048"
    );
    std::fs::copy(format!("{rsa}.pem"), etc.join("rsa.pem")).unwrap();
    std::fs::copy(format!("{rsa}.key"), etc.join("rsa.key")).unwrap();
    ca.issue("edge.example.com", &["edge.example.com"])
        .write(&etc, "edge.example.com");
    ca.issue("edge.example.com", &["edge.example.com"])
        .write(&etc, "edge-client");
    // A zone's key as ldns-keygen writes it: a DNSSEC trust anchor (docs/transport-security.md).
    std::fs::write(
        etc.join("dnssec-anchor.keys"),
        "example.\tIN\tDNSKEY\t257 3 13 /+RrkwU/5eK61Iz22i/5l9226kbIy0RtD/3PYp9NgmS6lgo0/NJGPR2oMLQwu7wjFzcfyw8CzGP7Ea6/yeiOfQ==\n",
    )
    .unwrap();
    for (name, contents) in map_files() {
        std::fs::write(etc.join(name), contents).unwrap();
    }
    for (selector, algorithm) in [("edge2026r", "rsa"), ("edge2026e", "ed25519")] {
        let key = dkim.join(format!("example.com.{selector}.key"));
        let out = Command::new(crate::gateway::binary())
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

/// What a block is checked after: nothing for a whole file, [`BASE`] (and [`SERVED`]) for
/// a fragment.
pub fn before(block: &Block) -> String {
    match (block.fragment(), declares_mail_domains(&block.text)) {
        (false, _) => String::new(),
        (true, true) => BASE.to_string(),
        (true, false) => format!("{BASE}{SERVED}"),
    }
}

/// The block as a whole configuration: [`before`] and the block.
pub fn whole(block: &Block) -> String {
    format!("{}{}", before(block), block.text)
}

/// `edgemx check-config` on `text`, localized to `root`, written to `root/NAME`.
pub fn check_config(root: &Path, name: &str, text: &str) -> Output {
    let path = root.join(name);
    std::fs::write(&path, localize(text, root)).unwrap();
    Command::new(crate::gateway::binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap()
}
