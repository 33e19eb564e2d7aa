//! `edgemx firmware verify|inspect|sign`: host-side (and appliance-side) bundle tools, and
//! `edgemx firmware status|install|rollback|commit` against the appliance's gateway.
//!
//! `verify` and `inspect` read the whole bundle through the same checks an install makes
//! (signature, trusted key, compatible string, sizes, every payload hash) and exit 0, or
//! print what failed and exit 65 (EX_DATAERR). `sign` makes a bundle from a payload.

use crate::control::reply::Done;
use crate::control::{ConsoleRequest, ControlClient, Request};
use crate::firmware::bundle::{self, Artifact, Manifest, Policy, Verified};
use crate::firmware::install::{self, Context, Source};
use crate::firmware::keys::{self, Keyring};
use crate::firmware::ops::FirmwareOp;
use clap::Subcommand;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_USAGE: u8 = 64;
const EXIT_DATAERR: u8 = 65;
const EXIT_NOINPUT: u8 = 66;
const EXIT_CANTCREAT: u8 = 73;
/// Refusals and failures reported by the gateway (the reason is printed).
const EXIT_UNAVAILABLE: u8 = 69;

#[derive(Subcommand)]
pub enum FirmwareAction {
    /// Check a bundle: signature, trusted key, compatible string, size, hashes.
    Verify(Check),
    /// Check a bundle like verify, then print its manifest.
    Inspect(Check),
    /// Sign a payload (a slot file system image) into a bundle.
    Sign(Sign),
    /// Generate a PKCS#8 Ed25519 signing key into FILE; prints its public key line.
    Keygen { file: PathBuf },
    /// On the appliance: both slots, boot state, last trial and install.
    Status(Appliance),
    /// On the appliance: fetch a bundle into the other slot and arm a trial boot.
    Install {
        /// http:// or https:// URL of the bundle.
        url: String,
        /// Accept a lower version than the running one, if the bundle permits it.
        #[arg(long)]
        allow_downgrade: bool,
        #[command(flatten)]
        on: Appliance,
    },
    /// On the appliance: boot the other (good) slot next.
    Rollback(Appliance),
    /// On the appliance: mark the running trial slot good now.
    Commit(Appliance),
}

/// The running gateway these commands talk to (its control socket).
#[derive(clap::Args)]
pub struct Appliance {
    #[arg(long, short, default_value = "/etc/edgemx/edgemx.toml")]
    config: PathBuf,
}

#[derive(clap::Args)]
pub struct Check {
    /// The bundle file.
    file: PathBuf,
    /// Also trust the public keys in FILE (`ed25519:<base64>` lines), e.g. another signer's.
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Refuse versions lower than N, as an appliance running version N would.
    #[arg(long, value_name = "N")]
    running_version: Option<u64>,
    /// With --running-version: accept a lower version if the manifest permits it.
    #[arg(long)]
    allow_downgrade: bool,
    /// Slot size in bytes the payload must fit (with its seal).
    #[arg(long, default_value_t = crate::firmware::SLOT_SIZE)]
    slot_size: u64,
}

#[derive(clap::Args)]
pub struct Sign {
    /// PKCS#8 Ed25519 private key (DER or PEM).
    #[arg(long)]
    key: PathBuf,
    /// Monotonic version number.
    #[arg(long)]
    version: u64,
    /// The build's description (git describe); default: the --from bundle's.
    #[arg(long)]
    build: Option<String>,
    #[arg(long, default_value = crate::firmware::COMPATIBLE)]
    compatible: String,
    /// Permit installing this bundle over a newer version (the operator must still ask).
    #[arg(long)]
    allow_downgrade: bool,
    /// The slot file system image.
    #[arg(long, required_unless_present = "from", conflicts_with = "from")]
    payload: Option<PathBuf>,
    /// NAME=PATH of a file inside the payload, listed with its size and hash.
    #[arg(long = "artifact", value_name = "NAME=PATH")]
    artifacts: Vec<String>,
    /// Re-sign the payload and artifact list of an existing bundle (another version).
    #[arg(long, value_name = "BUNDLE")]
    from: Option<PathBuf>,
    /// Where to write the bundle.
    #[arg(long)]
    out: PathBuf,
    /// Also write the seal (header and manifest) to FILE, for a slot made at build time.
    #[arg(long, value_name = "FILE")]
    seal_out: Option<PathBuf>,
}

pub fn run(action: FirmwareAction) -> ExitCode {
    match action {
        FirmwareAction::Verify(check) => match checked(&check) {
            Ok(v) => {
                let m = &v.manifest;
                println!(
                    "{}: good: version {} ({}) for {}, signed by key {}, payload {} bytes",
                    check.file.display(),
                    m.version,
                    m.build,
                    m.compatible,
                    v.key,
                    m.payload.size
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        FirmwareAction::Inspect(check) => match checked(&check) {
            Ok(v) => {
                println!("key: {}", v.key);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v.manifest).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(code) => code,
        },
        FirmwareAction::Keygen { file } => keygen(&file),
        FirmwareAction::Status(on) => remote(&on, FirmwareOp::Status),
        FirmwareAction::Install {
            url,
            allow_downgrade,
            on,
        } => remote(
            &on,
            FirmwareOp::Install {
                url,
                allow_downgrade,
            },
        ),
        FirmwareAction::Rollback(on) => remote(&on, FirmwareOp::Rollback),
        FirmwareAction::Commit(on) => remote(&on, FirmwareOp::Commit),
        FirmwareAction::Sign(sign) => match make(&sign) {
            Ok(()) => ExitCode::SUCCESS,
            Err((code, message)) => {
                eprintln!("edgemx: {message}");
                ExitCode::from(code)
            }
        },
    }
}

fn keygen(file: &Path) -> ExitCode {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let rng = ring::rand::SystemRandom::new();
    let made = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "no randomness".to_string())
        .and_then(|pkcs8| {
            let pair = keys::private(pkcs8.as_ref()).map_err(|e| e.to_string())?;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(file)
                .and_then(|mut f| f.write_all(pkcs8.as_ref()).and_then(|()| f.sync_all()))
                .map_err(|e| format!("{}: {e}", file.display()))?;
            Ok(pair)
        });
    match made {
        Ok(pair) => {
            println!("{}", keys::public_text(&pair));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: {e}");
            ExitCode::from(EXIT_CANTCREAT)
        }
    }
}

fn remote(on: &Appliance, op: FirmwareOp) -> ExitCode {
    let config = match crate::cli::load(&on.config) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let status = matches!(op, FirmwareOp::Status);
    let request = Request::Console {
        call: ConsoleRequest::Firmware { op },
    };
    let answer = ControlClient::connect(&config.control_socket()).and_then(|mut c| {
        if status {
            c.ask(&request)
                .map(|v| crate::firmware::ops::format_status(&v))
        } else {
            c.ask(&request).map(|Done(text)| text + "\n")
        }
    });
    match answer {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("edgemx: firmware: {e}");
            ExitCode::from(EXIT_UNAVAILABLE)
        }
    }
}

fn checked(check: &Check) -> Result<Verified, ExitCode> {
    let mut keys = Keyring::embedded();
    if let Some(path) = &check.trust {
        let more = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| Keyring::parse(&t).map_err(|e| e.to_string()));
        match more {
            Ok(more) => keys.extend(&more),
            Err(e) => {
                eprintln!("edgemx: {}: {e}", path.display());
                return Err(ExitCode::from(EXIT_USAGE));
            }
        }
    }
    let target = install::Target {
        device: PathBuf::new(),
        size: check.slot_size,
    };
    let ctx = Context {
        keys: &keys,
        policy: Policy {
            compatible: crate::firmware::COMPATIBLE.to_string(),
            running: check.running_version,
            allow_downgrade: check.allow_downgrade,
            max_payload: target.capacity(),
        },
        resolver: None,
        ca: Path::new(crate::fetch::CA_BUNDLE),
    };
    let source = Source::File(check.file.clone());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("edgemx: cannot start the runtime: {e}");
            ExitCode::from(70)
        })?;
    runtime
        .block_on(install::verify(&source, &ctx))
        .map_err(|e| {
            eprintln!("edgemx: {}: refused: {e}", check.file.display());
            let code = match e {
                install::InstallError::Open { .. } => EXIT_NOINPUT,
                _ => EXIT_DATAERR,
            };
            ExitCode::from(code)
        })
}

fn make(sign: &Sign) -> Result<(), (u8, String)> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| (EXIT_NOINPUT, format!("{}: {e}", p.display())));
    let key = keys::private(&read(&sign.key)?)
        .map_err(|e| (EXIT_DATAERR, format!("{}: {e}", sign.key.display())))?;
    let (payload, mut artifacts, old_build) = match (&sign.from, &sign.payload) {
        (Some(from), _) => {
            let data = read(from)?;
            let bad = |e: String| (EXIT_DATAERR, format!("{}: {e}", from.display()));
            let header = bundle::Header::parse(&data).map_err(|e| bad(e.to_string()))?;
            let start = bundle::HEADER_LEN + header.manifest_len as usize;
            let old: Manifest = data
                .get(bundle::HEADER_LEN..start)
                .and_then(|m| serde_json::from_slice(m).ok())
                .ok_or_else(|| bad("no readable manifest".into()))?;
            (data[start..].to_vec(), old.artifacts, Some(old.build))
        }
        (None, Some(payload)) => (read(payload)?, Vec::new(), None),
        (None, None) => return Err((EXIT_USAGE, "--payload or --from is required".into())),
    };
    for spec in &sign.artifacts {
        let Some((name, path)) = spec.split_once('=') else {
            return Err((EXIT_USAGE, format!("--artifact {spec:?} is not NAME=PATH")));
        };
        let data = read(Path::new(path))?;
        artifacts.retain(|a| a.name != name);
        artifacts.push(Artifact {
            name: name.to_string(),
            size: data.len() as u64,
            sha256: bundle::sha256_hex(&data),
        });
    }
    let manifest = Manifest {
        compatible: sign.compatible.clone(),
        version: sign.version,
        build: sign.build.clone().or(old_build).unwrap_or_default(),
        allow_downgrade: sign.allow_downgrade,
        payload: bundle::describe_payload(&payload),
        artifacts,
    };
    let seal = bundle::sign(&manifest, &key).map_err(|e| (EXIT_DATAERR, e.to_string()))?;
    let cant = |p: &Path, e: std::io::Error| (EXIT_CANTCREAT, format!("{}: {e}", p.display()));
    std::fs::write(&sign.out, [seal.as_slice(), &payload].concat())
        .map_err(|e| cant(&sign.out, e))?;
    if let Some(path) = &sign.seal_out {
        std::fs::write(path, &seal).map_err(|e| cant(path, e))?;
    }
    eprintln!(
        "edgemx: {}: version {} signed by key {} ({})",
        sign.out.display(),
        manifest.version,
        crate::firmware::keys::KeyId::of(ring::signature::KeyPair::public_key(&key).as_ref()),
        keys::public_text(&key)
    );
    Ok(())
}
