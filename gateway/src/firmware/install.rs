//! Installing a bundle into the inactive slot.
//!
//! Order of operations, and why:
//! 1. **Verify pass**: the whole bundle is read once and checked (signature, trusted key,
//!    compatible string, version, size, every payload block and the payload hash) without
//!    writing anything. Every refusal happens here, so a bad bundle writes nothing.
//! 2. **Write pass**: the bundle is read again; its header and manifest must be the very
//!    ones verified. The slot's seal is cleared (and synced) first, so from here until step 4
//!    the slot reads as empty and is never booted. Each payload block is checked against the
//!    manifest before it is written: no unverified byte reaches the slot, even if the source
//!    changed between the passes.
//! 3. The slot is synced, its cached pages dropped, and the payload read back and hashed.
//! 4. The seal is written and synced; only then does the caller arm the trial boot.
//!
//! The target is never the slot that is running: [`install`] refuses a target that is the
//! same file or device as `active`. A power cut at any point leaves the running slot as it
//! was and the target without a seal (empty).

use super::bundle::{BundleError, HEADER_LEN, Header, PayloadCheck, Policy, SEAL_REGION, Verified};
use super::keys::Keyring;
use crate::dns::Resolver;
use crate::fetch::{self, Body, FetchError, Url};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Where a bundle comes from; each pass opens it afresh.
#[derive(Clone, Debug)]
pub enum Source {
    Url(Url),
    File(PathBuf),
}

impl Source {
    pub fn parse(text: &str) -> Result<Source, FetchError> {
        match text.contains("://") {
            true => Url::parse(text).map(Source::Url),
            false => Ok(Source::File(PathBuf::from(text))),
        }
    }
}

/// A slot to write: its device (or a file standing in for it) and its size in bytes.
#[derive(Clone, Debug)]
pub struct Target {
    pub device: PathBuf,
    pub size: u64,
}

impl Target {
    /// The largest payload the slot holds: everything but the seal region.
    pub fn capacity(&self) -> u64 {
        self.size.saturating_sub(SEAL_REGION)
    }
}

/// Everything an install needs besides the source and target.
pub struct Context<'a> {
    pub keys: &'a Keyring,
    pub policy: Policy,
    pub resolver: Option<&'a Resolver>,
    pub ca: &'a Path,
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Bundle(#[from] BundleError),
    #[error("fetching the bundle: {0}")]
    Fetch(#[from] FetchError),
    #[error("reading {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refused: {0} is the running slot")]
    ActiveSlot(PathBuf),
    #[error("the bundle changed between the verify and the write pass")]
    Changed,
    #[error("writing the slot {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("read-back of the slot does not match the bundle (block {0})")]
    ReadBack(u64),
}

/// Reads and checks a whole bundle without writing anything (pass 1, and `firmware verify`).
pub async fn verify(source: &Source, ctx: &Context<'_>) -> Result<Verified, InstallError> {
    let mut body = open(source, ctx).await?;
    let verified = read_verified(&mut body, ctx).await?;
    read_payload(&mut body, &verified, |_| Ok(())).await?;
    Ok(verified)
}

/// Installs the bundle at `source` into `target` (see the module doc for the steps).
pub async fn install(
    source: &Source,
    target: &Target,
    active: Option<&Path>,
    ctx: &Context<'_>,
) -> Result<Verified, InstallError> {
    if let Some(active) = active
        && same_file(active, &target.device)
    {
        return Err(InstallError::ActiveSlot(target.device.clone()));
    }
    let first = verify(source, ctx).await?;
    let mut body = open(source, ctx).await?;
    let second = read_verified(&mut body, ctx).await?;
    if second.seal != first.seal {
        return Err(InstallError::Changed);
    }
    let write = |source| InstallError::Write {
        path: target.device.clone(),
        source,
    };
    let mut slot = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(&target.device)
        .map_err(write)?;
    write_at(&mut slot, target.size - SEAL_REGION, &[0u8; 4096]).map_err(write)?;
    slot.seek(SeekFrom::Start(0)).map_err(write)?;
    // Plain blocking writes of one block at a time: an install is rare, the control task
    // runs it on its own, and a 1 MiB write does not hold a worker for long.
    read_payload(&mut body, &second, |block| {
        slot.write_all(block).map_err(write)
    })
    .await?;
    slot.sync_all().map_err(write)?;
    read_back(&mut slot, &second)?;
    write_at(&mut slot, target.size - SEAL_REGION, &second.seal).map_err(write)?;
    Ok(second)
}

/// The verified seal of a slot, if it has one.
pub fn read_seal(target: &Target, keys: &Keyring) -> Result<Verified, InstallError> {
    let open = |source| InstallError::Open {
        path: target.device.clone(),
        source,
    };
    let mut slot = std::fs::File::open(&target.device).map_err(open)?;
    slot.seek(SeekFrom::Start(target.size.saturating_sub(SEAL_REGION)))
        .map_err(open)?;
    let mut header = [0u8; HEADER_LEN];
    slot.read_exact(&mut header).map_err(open)?;
    let parsed = Header::parse(&header)?;
    let mut manifest = vec![0u8; parsed.manifest_len as usize];
    slot.read_exact(&mut manifest).map_err(open)?;
    Ok(super::bundle::verify(&header, &manifest, keys)?)
}

async fn open(source: &Source, ctx: &Context<'_>) -> Result<Body, InstallError> {
    match source {
        Source::File(path) => {
            let file = tokio::fs::File::open(path)
                .await
                .map_err(|e| InstallError::Open {
                    path: path.clone(),
                    source: e,
                })?;
            Ok(Box::pin(file))
        }
        Source::Url(url) => {
            let limit =
                HEADER_LEN as u64 + u64::from(super::bundle::MAX_MANIFEST) + ctx.policy.max_payload;
            let (body, _) = fetch::get(url, limit, ctx.resolver, ctx.ca).await?;
            Ok(body)
        }
    }
}

/// Header and manifest: signature first, then the policy.
async fn read_verified<R: AsyncRead + Unpin>(
    r: &mut R,
    ctx: &Context<'_>,
) -> Result<Verified, InstallError> {
    let mut header = [0u8; HEADER_LEN];
    let n = read_full(r, &mut header).await?;
    let parsed = Header::parse(&header[..n])?;
    let mut manifest = vec![0u8; parsed.manifest_len as usize];
    if read_full(r, &mut manifest).await? < manifest.len() {
        return Err(BundleError::Truncated("the manifest").into());
    }
    let verified = super::bundle::verify(&header, &manifest, ctx.keys)?;
    ctx.policy.check(&verified.manifest)?;
    Ok(verified)
}

/// Reads the payload block by block; each block goes to `sink` only once it matched.
async fn read_payload<R, F>(r: &mut R, v: &Verified, mut sink: F) -> Result<(), InstallError>
where
    R: AsyncRead + Unpin,
    F: FnMut(&[u8]) -> Result<(), InstallError>,
{
    let mut check = PayloadCheck::new(&v.manifest.payload);
    let mut buf = vec![0u8; v.manifest.payload.block_size as usize];
    while let Some(len) = check.block_len() {
        if read_full(r, &mut buf[..len]).await? < len {
            return Err(BundleError::Truncated("the payload").into());
        }
        check.block(&buf[..len])?;
        sink(&buf[..len])?;
    }
    check.finish()?;
    if read_full(r, &mut [0u8; 1]).await? != 0 {
        return Err(BundleError::Trailing.into());
    }
    Ok(())
}

/// Re-reads what was written, from the device rather than the page cache.
fn read_back(slot: &mut std::fs::File, v: &Verified) -> Result<(), InstallError> {
    use nix::fcntl::{PosixFadviseAdvice, posix_fadvise};
    // Block devices drop clean cached pages on DONTNEED, so the read below hits the disk.
    let _advisory = posix_fadvise(&*slot, 0, 0, PosixFadviseAdvice::POSIX_FADV_DONTNEED);
    let mut check = PayloadCheck::new(&v.manifest.payload);
    let mut buf = vec![0u8; v.manifest.payload.block_size as usize];
    let mut index = 0;
    slot.seek(SeekFrom::Start(0))
        .map_err(|_| InstallError::ReadBack(0))?;
    while let Some(len) = check.block_len() {
        slot.read_exact(&mut buf[..len])
            .map_err(|_| InstallError::ReadBack(index))?;
        check
            .block(&buf[..len])
            .map_err(|_| InstallError::ReadBack(index))?;
        index += 1;
    }
    check.finish().map_err(|_| InstallError::ReadBack(index))
}

fn write_at(file: &mut std::fs::File, offset: u64, data: &[u8]) -> std::io::Result<()> {
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(data)?;
    file.sync_all()
}

/// Reads until `buf` is full or the end; returns how much was read.
async fn read_full<R: AsyncRead + Unpin>(r: &mut R, buf: &mut [u8]) -> Result<usize, InstallError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]).await {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(FetchError::Io(e).into()),
        }
    }
    Ok(got)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => {
            (a.dev() == b.dev() && a.ino() == b.ino()) || (a.rdev() != 0 && a.rdev() == b.rdev())
        }
        // Cannot tell: treat as the same, never risk the running slot.
        _ => true,
    }
}
