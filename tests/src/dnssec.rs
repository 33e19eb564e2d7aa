//! A DNSSEC-signed zone served by a real authoritative server on loopback: the zone is
//! signed offline with `ldns-signzone` (one ECDSA P-256 key, Debian package `ldnsutils`) and
//! served by Debian's `knot` (`knotd`), both installed by `scripts/setup`. The zone's DNSKEY is
//! written as the trust anchor for `dane.trust_anchor`, so validation needs no root.
//!
//! A record can be tampered with after signing (its RRSIG then fails: a Bogus answer).

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SignedZone {
    /// Where knotd answers, UDP and TCP.
    pub addr: SocketAddr,
    /// DNSKEY records of the zone, for `dane.trust_anchor`.
    pub anchor: PathBuf,
    knotd: Child,
    _dir: tempfile::TempDir,
}

impl SignedZone {
    /// Signs `records` (zone-file lines relative to `origin`, without SOA/NS) and serves
    /// them. Each `(from, to)` in `tamper` is replaced in the signed file afterwards.
    pub fn start(origin: &str, records: &str, tamper: &[(&str, &str)]) -> SignedZone {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path();
        let zone = format!(
            "$ORIGIN {origin}.\n$TTL 300\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A 127.0.0.1\n{records}\n"
        );
        std::fs::write(path.join("zone"), zone).expect("write zone");
        let key = run(
            path,
            "ldns-keygen",
            &["-a", "ECDSAP256SHA256", "-k", origin],
        );
        let key = key.trim();
        run(
            path,
            "ldns-signzone",
            &["-o", &format!("{origin}."), "-f", "signed", "zone", key],
        );
        let signed_path = path.join("signed");
        let mut signed = std::fs::read_to_string(&signed_path).expect("signed zone");
        for (from, to) in tamper {
            assert!(signed.contains(from), "nothing to tamper: {from}");
            signed = signed.replace(from, to);
        }
        std::fs::write(&signed_path, signed).expect("write signed zone");
        let anchor = path.join("anchor.keys");
        std::fs::copy(path.join(format!("{key}.key")), &anchor).expect("anchor");
        let addr = crate::gateway::free_port();
        let conf = format!(
            "server:\n    rundir: \"{dir}\"\n    listen: {ip}@{port}\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{dir}\"\n\
             template:\n  - id: default\n    storage: \"{dir}\"\n    zonefile-sync: -1\n    journal-content: none\n\
             zone:\n  - domain: {origin}\n    file: \"{dir}/signed\"\n",
            dir = path.display(),
            ip = addr.ip(),
            port = addr.port(),
        );
        std::fs::write(path.join("knot.conf"), conf).expect("knot.conf");
        let knotd = Command::new("knotd")
            .args(["-c", "knot.conf"])
            .current_dir(path)
            .stdin(Stdio::null())
            .spawn()
            .expect("knotd (scripts/setup installs knot)");
        let zone = SignedZone {
            addr,
            anchor,
            knotd,
            _dir: dir,
        };
        zone.wait_listening();
        zone
    }

    /// `[dns]` and `[dane]` sections pointing the gateway at this zone.
    pub fn config(&self, mode: &str) -> String {
        format!(
            "[dns]\nnameservers = [\"{addr}\"]\ntimeout = \"2s\"\n\n[dane]\nmode = \"{mode}\"\ntrust_anchor = \"{anchor}\"\n\n",
            addr = self.addr,
            anchor = self.anchor.display(),
        )
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(self.addr).is_err() {
            assert!(
                Instant::now() < deadline,
                "knotd never listened on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SignedZone {
    fn drop(&mut self) {
        let _ = self.knotd.kill();
        let _ = self.knotd.wait();
    }
}

fn run(dir: &Path, tool: &str, args: &[&str]) -> String {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (scripts/setup installs ldnsutils): {e}"));
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `3 1 1 HEX` for the leaf of `chain`: DANE-EE, SPKI, SHA-256.
pub fn tlsa_ee(chain: &[rustls::pki_types::CertificateDer<'_>]) -> String {
    let digest = edgemx::tls::spki_sha256(&chain[0]).expect("spki");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("3 1 1 {hex}")
}

/// `2 0 1 HEX` for the CA certificate of `chain`: DANE-TA, full certificate, SHA-256.
pub fn tlsa_ta(chain: &[rustls::pki_types::CertificateDer<'_>]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, chain[1].as_ref());
    let hex: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("2 0 1 {hex}")
}
