//! The signed update bundle: format, manifest, signing and verification.
//!
//! # Bundle format (version 1)
//!
//! ```text
//! offset  size  field
//!      0     8  magic "EDGEMXFW"
//!      8     2  format version, u16 big-endian (1)
//!     10     2  reserved, zero
//!     12     4  manifest length, u32 big-endian, 1 ..= MAX_MANIFEST
//!     16     8  key id: the first 8 bytes of SHA-256 of the signer's Ed25519 public key
//!     24    64  Ed25519 signature over  "edgemx bundle v1\0" || bytes 0..24 || manifest
//!     88     8  reserved, zero
//!     96     …  manifest (UTF-8 JSON, see [`Manifest`])
//!      …     …  payload: exactly `manifest.payload.size` bytes, then end of file
//! ```
//!
//! The signature covers the header fields before it (magic, format, manifest length, key id)
//! and the manifest, so nothing that decides how the rest is read can change without
//! breaking it. The payload is covered through the manifest: its SHA-256 and, because an
//! install streams it, the SHA-256 of every [`BLOCK`]-sized block, so each block can be
//! checked *before* it is written and no unverified byte ever reaches a slot.
//!
//! The payload is the slot's boot file system: a FAT image sized to its content holding
//! `vmlinuz`, `initrd.img` and `manifest.json` (the build manifest), written raw at the start
//! of the slot partition. Install is therefore a block copy, and the boot side needs no FAT
//! writer. `manifest.artifacts` lists the files inside it with sizes and hashes for audit.
//!
//! # The slot seal
//!
//! The first 96 + manifest bytes of a bundle (its *seal*) are also written into the last
//! [`SEAL_REGION`] bytes of a slot partition, after the payload has been written and checked.
//! A slot's version and build are read from its seal; a slot without a valid seal (never
//! installed, or an install cut short) is empty. Install clears the seal first.
//!
//! No X.509, no validity dates: appliances have no trusted clock. Keys are rotated by
//! shipping an image that trusts the new key beside the old one (see `keys`).

use super::keys::{KeyId, Keyring};
use ring::digest::{Context, SHA256};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"EDGEMXFW";
pub const FORMAT: u16 = 1;
pub const HEADER_LEN: usize = 96;
pub const MAX_MANIFEST: u32 = 256 * 1024;
/// The payload block each manifest hash covers.
pub const BLOCK: u32 = 1024 * 1024;
/// The tail of every slot partition that holds its seal.
pub const SEAL_REGION: u64 = 1024 * 1024;
/// Domain separation: a signature over a bundle is never a valid signature over anything else.
const CONTEXT: &[u8] = b"edgemx bundle v1\0";
pub const PAYLOAD_KIND: &str = "slot-fat";

/// Why a bundle is refused. Each names what failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("not an edgemx bundle (bad magic)")]
    NotABundle,
    #[error("bundle format {0} is not supported (this build reads format {FORMAT})")]
    Format(u16),
    #[error("manifest length {0} is out of range (1..={MAX_MANIFEST})")]
    ManifestLength(u32),
    #[error("truncated bundle: {0} ends early")]
    Truncated(&'static str),
    #[error("signed by unknown key {0} (not among the keys this firmware trusts)")]
    UnknownKey(KeyId),
    #[error("bad signature by key {0}: the header or manifest was altered")]
    BadSignature(KeyId),
    #[error("bad manifest: {0}")]
    Manifest(String),
    #[error("wrong compatible string {found:?} (this firmware accepts {want:?})")]
    Incompatible { found: String, want: String },
    #[error(
        "downgrade refused: version {offered} is lower than the running version {running}{why}"
    )]
    Downgrade {
        offered: u64,
        running: u64,
        why: &'static str,
    },
    #[error("payload of {size} bytes does not fit the slot ({limit} bytes at most)")]
    TooBig { size: u64, limit: u64 },
    #[error("payload block {0} does not match the manifest (corrupted or tampered payload)")]
    Block(u64),
    #[error("payload SHA-256 does not match the manifest (corrupted or tampered payload)")]
    PayloadHash,
    #[error("bytes after the end of the payload")]
    Trailing,
}

/// What the signer states about the payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The hardware and image family the payload is for, e.g. `edgemx-x86_64`.
    pub compatible: String,
    /// Monotonic release number; installs refuse a lower one unless permitted.
    pub version: u64,
    /// The build's `git describe`.
    pub build: String,
    /// Whether the signer permits installing this over a newer version.
    #[serde(default)]
    pub allow_downgrade: bool,
    pub payload: Payload,
    /// The files inside the payload's file system (kernel, initramfs, build manifest).
    #[serde(default)]
    pub artifacts: Vec<Artifact>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// [`PAYLOAD_KIND`]: a raw image written at the start of the slot partition.
    pub kind: String,
    pub size: u64,
    /// SHA-256 of the whole payload, lower-case hex.
    pub sha256: String,
    pub block_size: u32,
    /// SHA-256 of each `block_size` block (the last may be shorter), lower-case hex.
    pub blocks: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Artifact {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A bundle's header and manifest whose signature checked out against a trusted key.
#[derive(Clone, Debug)]
pub struct Verified {
    pub key: KeyId,
    pub manifest: Manifest,
    /// Header and manifest bytes as signed: the slot seal.
    pub seal: Vec<u8>,
}

/// What the running system accepts.
#[derive(Clone, Debug)]
pub struct Policy {
    pub compatible: String,
    /// The running firmware's version; `None` when it has none (nothing to downgrade from).
    pub running: Option<u64>,
    /// The operator asked for `allow-downgrade`.
    pub allow_downgrade: bool,
    /// Largest payload the target slot holds.
    pub max_payload: u64,
}

/// The parsed fixed header (not yet trusted).
#[derive(Clone, Copy, Debug)]
pub struct Header {
    pub manifest_len: u32,
    pub key: KeyId,
    signature: [u8; 64],
}

impl Header {
    pub fn parse(bytes: &[u8]) -> Result<Header, BundleError> {
        if bytes.len() < HEADER_LEN {
            return Err(if MAGIC.starts_with(&bytes[..bytes.len().min(8)]) {
                BundleError::Truncated("the header")
            } else {
                BundleError::NotABundle
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(BundleError::NotABundle);
        }
        let format = u16::from_be_bytes([bytes[8], bytes[9]]);
        if format != FORMAT {
            return Err(BundleError::Format(format));
        }
        let manifest_len = u32::from_be_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if manifest_len == 0 || manifest_len > MAX_MANIFEST {
            return Err(BundleError::ManifestLength(manifest_len));
        }
        let mut key = [0u8; 8];
        key.copy_from_slice(&bytes[16..24]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&bytes[24..88]);
        Ok(Header {
            manifest_len,
            key: KeyId(key),
            signature,
        })
    }
}

/// Checks the signature of `header_bytes` (the first [`HEADER_LEN`]) and `manifest` against
/// `keys`, then parses the manifest. Nothing in the manifest is looked at before that.
pub fn verify(
    header_bytes: &[u8],
    manifest: &[u8],
    keys: &Keyring,
) -> Result<Verified, BundleError> {
    let header = Header::parse(header_bytes)?;
    if manifest.len() < header.manifest_len as usize {
        return Err(BundleError::Truncated("the manifest"));
    }
    let manifest = &manifest[..header.manifest_len as usize];
    let Some(public) = keys.find(header.key) else {
        return Err(BundleError::UnknownKey(header.key));
    };
    let message = signed_message(&header_bytes[..24], manifest);
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&message, &header.signature)
        .map_err(|_| BundleError::BadSignature(header.key))?;
    let parsed: Manifest =
        serde_json::from_slice(manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
    check_shape(&parsed)?;
    let mut seal = header_bytes[..HEADER_LEN].to_vec();
    seal.extend_from_slice(manifest);
    Ok(Verified {
        key: header.key,
        manifest: parsed,
        seal,
    })
}

/// The manifest agrees with itself: block list and sizes line up.
fn check_shape(m: &Manifest) -> Result<(), BundleError> {
    let p = &m.payload;
    let bad = |what: &str| Err(BundleError::Manifest(what.to_string()));
    if p.kind != PAYLOAD_KIND {
        return bad(&format!(
            "payload kind {:?} is not {PAYLOAD_KIND:?}",
            p.kind
        ));
    }
    if p.block_size == 0 || p.size.div_ceil(u64::from(p.block_size)) != p.blocks.len() as u64 {
        return bad("the block list does not cover the payload size");
    }
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(&p.sha256) || !p.blocks.iter().all(|b| hex(b)) {
        return bad("a payload hash is not 64 hex digits");
    }
    Ok(())
}

impl Policy {
    /// Compatibility, version and size: refusals decided from the signed manifest alone.
    pub fn check(&self, m: &Manifest) -> Result<(), BundleError> {
        if m.compatible != self.compatible {
            return Err(BundleError::Incompatible {
                found: m.compatible.clone(),
                want: self.compatible.clone(),
            });
        }
        if let Some(running) = self.running
            && m.version < running
        {
            let why = match (self.allow_downgrade, m.allow_downgrade) {
                (false, _) => " (say allow-downgrade to install it anyway)",
                (true, false) => " (the bundle's manifest does not permit downgrades)",
                (true, true) => "",
            };
            if !why.is_empty() {
                return Err(BundleError::Downgrade {
                    offered: m.version,
                    running,
                    why,
                });
            }
        }
        if m.payload.size > self.max_payload {
            return Err(BundleError::TooBig {
                size: m.payload.size,
                limit: self.max_payload,
            });
        }
        Ok(())
    }
}

/// Checks payload bytes block by block against a verified manifest.
pub struct PayloadCheck<'a> {
    payload: &'a Payload,
    next: u64,
    whole: Context,
}

impl<'a> PayloadCheck<'a> {
    pub fn new(payload: &'a Payload) -> PayloadCheck<'a> {
        PayloadCheck {
            payload,
            next: 0,
            whole: Context::new(&SHA256),
        }
    }

    /// Length of block `index`, or `None` past the end.
    pub fn block_len(&self) -> Option<usize> {
        let size = u64::from(self.payload.block_size);
        let start = self.next * size;
        (start < self.payload.size).then(|| (self.payload.size - start).min(size) as usize)
    }

    /// The next block, exactly [`Self::block_len`] bytes; an error if it does not match.
    pub fn block(&mut self, data: &[u8]) -> Result<(), BundleError> {
        let index = self.next;
        let matches = self
            .payload
            .blocks
            .get(index as usize)
            .is_some_and(|want| *want == sha256_hex(data));
        if Some(data.len()) != self.block_len() || !matches {
            return Err(BundleError::Block(index));
        }
        self.whole.update(data);
        self.next += 1;
        Ok(())
    }

    /// All blocks seen and the whole-payload hash agrees.
    pub fn finish(self) -> Result<(), BundleError> {
        if self.block_len().is_some() {
            return Err(BundleError::Truncated("the payload"));
        }
        match hex(self.whole.finish().as_ref()) == self.payload.sha256 {
            true => Ok(()),
            false => Err(BundleError::PayloadHash),
        }
    }
}

/// Signs `manifest` with `key`: the header and manifest bytes (the seal); the payload follows.
pub fn sign(manifest: &Manifest, key: &Ed25519KeyPair) -> Result<Vec<u8>, BundleError> {
    let json =
        serde_json::to_vec_pretty(manifest).map_err(|e| BundleError::Manifest(e.to_string()))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|l| *l <= MAX_MANIFEST)
        .ok_or(BundleError::ManifestLength(u32::MAX))?;
    let mut out = Vec::with_capacity(HEADER_LEN + json.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&KeyId::of(key.public_key().as_ref()).0);
    let signature = key.sign(&signed_message(&out[..24], &json));
    out.extend_from_slice(signature.as_ref());
    out.extend_from_slice(&[0u8; 8]);
    out.extend_from_slice(&json);
    Ok(out)
}

/// The payload section of a manifest for `payload`.
pub fn describe_payload(payload: &[u8]) -> Payload {
    Payload {
        kind: PAYLOAD_KIND.to_string(),
        size: payload.len() as u64,
        sha256: sha256_hex(payload),
        block_size: BLOCK,
        blocks: payload.chunks(BLOCK as usize).map(sha256_hex).collect(),
    }
}

fn signed_message(header: &[u8], manifest: &[u8]) -> Vec<u8> {
    [CONTEXT, header, manifest].concat()
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, data).as_ref())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
