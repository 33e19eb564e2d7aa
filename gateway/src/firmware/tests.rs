//! Bundle checks and installs against a plain file standing in for the slot device, with
//! bundles served by a loopback HTTP server in the test.

use super::bundle::{self, BundleError, HEADER_LEN, Manifest, Policy, SEAL_REGION};
use super::install::{self, Context, InstallError, Source, Target};
use super::keys::{KeyId, Keyring};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SLOT: u64 = 4 * 1024 * 1024;

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn ring_of(key: &Ed25519KeyPair) -> Keyring {
    let mut ring = Keyring::default();
    ring.add(key.public_key().as_ref().try_into().unwrap());
    ring
}

/// A payload of 2.5 blocks so that the last block is short.
fn payload(seed: u8) -> Vec<u8> {
    (0..(bundle::BLOCK as usize * 5 / 2))
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn manifest(version: u64, payload: &[u8]) -> Manifest {
    Manifest {
        compatible: super::COMPATIBLE.into(),
        version,
        build: format!("v{version}-test"),
        allow_downgrade: false,
        payload: bundle::describe_payload(payload),
        artifacts: Vec::new(),
    }
}

fn make(key: &Ed25519KeyPair, m: &Manifest, payload: &[u8]) -> Vec<u8> {
    [bundle::sign(m, key).unwrap(), payload.to_vec()].concat()
}

fn policy(running: Option<u64>, allow_downgrade: bool) -> Policy {
    Policy {
        compatible: super::COMPATIBLE.into(),
        running,
        allow_downgrade,
        max_payload: SLOT - SEAL_REGION,
    }
}

struct Setup {
    dir: tempfile::TempDir,
    keys: Keyring,
    policy: Policy,
}

impl Setup {
    fn new(keys: Keyring) -> Setup {
        Setup {
            dir: tempfile::tempdir().unwrap(),
            keys,
            policy: policy(Some(5), false),
        }
    }

    fn ctx(&self) -> Context<'_> {
        Context {
            keys: &self.keys,
            policy: self.policy.clone(),
            resolver: None,
            ca: Path::new(crate::fetch::CA_BUNDLE),
        }
    }

    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// A slot file filled with a recognisable old content.
    fn slot(&self, name: &str) -> Target {
        let device = self.file(name, &vec![0x5a; SLOT as usize]);
        Target { device, size: SLOT }
    }

    async fn verify(&self, bytes: &[u8]) -> Result<bundle::Verified, InstallError> {
        let path = self.file("b.bundle", bytes);
        install::verify(&Source::File(path), &self.ctx()).await
    }
}

fn refusal(r: Result<bundle::Verified, InstallError>) -> BundleError {
    match r {
        Err(InstallError::Bundle(e)) => e,
        other => panic!("expected a bundle refusal, got {other:?}"),
    }
}

fn digest(path: &Path) -> String {
    bundle::sha256_hex(&std::fs::read(path).unwrap())
}

#[tokio::test]
async fn a_good_bundle_verifies_and_names_its_key_and_version() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let p = payload(1);
    let v = s.verify(&make(&k, &manifest(6, &p), &p)).await.unwrap();
    assert_eq!(v.manifest.version, 6);
    assert_eq!(v.key, KeyId::of(k.public_key().as_ref()));
}

#[tokio::test]
async fn each_kind_of_bad_bundle_is_refused_with_its_reason() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let p = payload(2);
    let good = make(&k, &manifest(6, &p), &p);

    let mut tampered = good.clone();
    let at = HEADER_LEN + 20; // inside the manifest JSON
    tampered[at] ^= 1;
    assert!(matches!(
        refusal(s.verify(&tampered).await),
        BundleError::BadSignature(_)
    ));

    let mut tampered = good.clone();
    let last = tampered.len() - 10;
    tampered[last] ^= 1;
    assert_eq!(refusal(s.verify(&tampered).await), BundleError::Block(2));

    let cut = &good[..good.len() - 1000];
    assert_eq!(
        refusal(s.verify(cut).await),
        BundleError::Truncated("the payload")
    );
    assert_eq!(
        refusal(s.verify(&good[..50]).await),
        BundleError::Truncated("the header")
    );
    assert_eq!(
        refusal(s.verify(&[good.as_slice(), b"x"].concat()).await),
        BundleError::Trailing
    );
    assert_eq!(
        refusal(s.verify(b"PK\x03\x04 a zip file, say").await),
        BundleError::NotABundle
    );

    let stranger = key();
    let r = refusal(s.verify(&make(&stranger, &manifest(6, &p), &p)).await);
    assert_eq!(
        r,
        BundleError::UnknownKey(KeyId::of(stranger.public_key().as_ref()))
    );

    let mut m = manifest(6, &p);
    m.compatible = "edgemx-aarch64".into();
    assert!(matches!(
        refusal(s.verify(&make(&k, &m, &p)).await),
        BundleError::Incompatible { .. }
    ));
}

#[tokio::test]
async fn a_downgrade_needs_both_the_operator_and_the_manifest() {
    let k = key();
    let mut s = Setup::new(ring_of(&k));
    let p = payload(3);
    let old = make(&k, &manifest(4, &p), &p);
    assert!(matches!(
        refusal(s.verify(&old).await),
        BundleError::Downgrade {
            offered: 4,
            running: 5,
            ..
        }
    ));
    s.policy.allow_downgrade = true;
    let r = refusal(s.verify(&old).await);
    assert!(r.to_string().contains("does not permit"), "{r}");
    let mut m = manifest(4, &p);
    m.allow_downgrade = true;
    assert!(s.verify(&make(&k, &m, &p)).await.is_ok());
    s.policy.allow_downgrade = false;
    assert!(s.verify(&make(&k, &m, &p)).await.is_err());
    // The same version again is a reinstall, not a downgrade.
    assert!(s.verify(&make(&k, &manifest(5, &p), &p)).await.is_ok());
}

#[tokio::test]
async fn a_payload_bigger_than_the_slot_is_refused_before_reading_it() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let big = vec![7u8; (SLOT - SEAL_REGION + 1) as usize];
    let r = refusal(s.verify(&make(&k, &manifest(6, &big), &big)).await);
    assert!(matches!(r, BundleError::TooBig { .. }), "{r}");
}

#[tokio::test]
async fn install_writes_the_payload_and_seal_and_refusals_leave_the_slot_untouched() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let target = s.slot("slot-b");
    let active = s.slot("slot-a");
    let before = digest(&target.device);
    let p = payload(4);
    let good = make(&k, &manifest(6, &p), &p);

    let mut tampered = good.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x80;
    let stranger = key();
    for bad in [
        tampered,
        make(&stranger, &manifest(6, &p), &p),
        make(&k, &manifest(3, &p), &p),
    ] {
        let src = Source::File(s.file("bad.bundle", &bad));
        let r = install::install(&src, &target, Some(&active.device), &s.ctx()).await;
        assert!(r.is_err());
        assert_eq!(
            digest(&target.device),
            before,
            "a refused bundle wrote to the slot"
        );
    }
    assert!(
        install::read_seal(&target, &s.keys).is_err(),
        "an untouched slot has no seal"
    );

    let src = Source::File(s.file("good.bundle", &good));
    let v = install::install(&src, &target, Some(&active.device), &s.ctx())
        .await
        .unwrap();
    let written = std::fs::read(&target.device).unwrap();
    assert_eq!(&written[..p.len()], p.as_slice());
    let seal = install::read_seal(&target, &s.keys).unwrap();
    assert_eq!((seal.manifest.version, seal.seal), (6, v.seal));
}

#[tokio::test]
async fn install_never_writes_the_running_slot() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let active = s.slot("slot-a");
    let before = digest(&active.device);
    let p = payload(5);
    let src = Source::File(s.file("good.bundle", &make(&k, &manifest(6, &p), &p)));
    let r = install::install(&src, &active, Some(&active.device), &s.ctx()).await;
    assert!(matches!(r, Err(InstallError::ActiveSlot(_))), "{r:?}");
    // Another name for the same file is the same slot.
    let link = s.dir.path().join("link");
    std::os::unix::fs::symlink(&active.device, &link).unwrap();
    let alias = Target {
        device: link,
        size: SLOT,
    };
    let r = install::install(&src, &alias, Some(&active.device), &s.ctx()).await;
    assert!(matches!(r, Err(InstallError::ActiveSlot(_))), "{r:?}");
    assert_eq!(digest(&active.device), before);
}

#[tokio::test]
async fn an_install_cut_short_leaves_a_slot_without_a_seal() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let target = s.slot("slot-b");
    let p = payload(6);
    let src = Source::File(s.file("v6.bundle", &make(&k, &manifest(6, &p), &p)));
    install::install(&src, &target, None, &s.ctx())
        .await
        .unwrap();
    // What the write pass does first: clear the seal. A power cut after it (payload half
    // written) must read as empty, not as the old or the new version.
    let mut slot = std::fs::read(&target.device).unwrap();
    let seal = (SLOT - SEAL_REGION) as usize;
    slot[seal..seal + 4096].fill(0);
    slot[..1000].fill(0xee);
    std::fs::write(&target.device, &slot).unwrap();
    assert!(matches!(
        install::read_seal(&target, &s.keys),
        Err(InstallError::Bundle(BundleError::NotABundle))
    ));
    // And a second install succeeds.
    install::install(&src, &target, None, &s.ctx())
        .await
        .unwrap();
    assert_eq!(
        install::read_seal(&target, &s.keys)
            .unwrap()
            .manifest
            .version,
        6
    );
}

/// Serves `body` for every request with the given status and headers; returns the URL.
async fn serve(body: Vec<u8>, head: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = head.replace("{len}", &body.len().to_string());
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/edgemx.bundle")
}

const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\n\r\n";

#[tokio::test]
async fn install_over_http_streams_into_the_slot() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let target = s.slot("slot-b");
    let p = payload(7);
    let url = serve(make(&k, &manifest(7, &p), &p), OK).await;
    let src = Source::parse(&url).unwrap();
    install::install(&src, &target, None, &s.ctx())
        .await
        .unwrap();
    assert_eq!(
        &std::fs::read(&target.device).unwrap()[..p.len()],
        p.as_slice()
    );
}

#[tokio::test]
async fn http_refusals_name_the_reason_and_write_nothing() {
    let k = key();
    let s = Setup::new(ring_of(&k));
    let target = s.slot("slot-b");
    let before = digest(&target.device);
    let p = payload(8);
    let good = make(&k, &manifest(7, &p), &p);
    let short = good[..good.len() / 2].to_vec();
    // Claims the full length, sends half: truncated.
    let liar = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", good.len()).leak();
    let cases: Vec<(Vec<u8>, &'static str, &str)> = vec![
        (short, liar, "truncated"),
        (
            good.clone(),
            "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/x\r\nContent-Length: 0\r\n\r\n",
            "redirect",
        ),
        (
            good.clone(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: {len}\r\n\r\n",
            "404",
        ),
        (
            good.clone(),
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "Content-Length",
        ),
        (
            vec![0u8; 16],
            "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n",
            "at most",
        ),
    ];
    for (body, head, reason) in cases {
        let url = serve(body, head).await;
        let r = install::install(&Source::parse(&url).unwrap(), &target, None, &s.ctx()).await;
        let e = r.expect_err(reason).to_string();
        assert!(e.contains(reason), "{e:?} does not say {reason:?}");
        assert_eq!(digest(&target.device), before, "{reason}: the slot changed");
    }
}

#[test]
fn keyring_text_holds_several_keys_and_refuses_garbage() {
    let (a, b) = (key(), key());
    let text = format!(
        "# rotation\n{}  # old\n{}\n",
        super::keys::public_text(&a),
        super::keys::public_text(&b)
    );
    let ring = Keyring::parse(&text).unwrap();
    assert_eq!(ring.ids().count(), 2);
    assert!(ring.find(KeyId::of(b.public_key().as_ref())).is_some());
    assert!(Keyring::parse("ed25519:AAAA").is_err());
    assert!(Keyring::parse("rsa:xyz").is_err());
}
