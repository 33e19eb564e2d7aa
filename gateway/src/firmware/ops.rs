//! The operations behind `show system firmware`, `request firmware install|rollback|commit`
//! (console) and `edgemx firmware status|install|rollback|commit` (appliance shell). They
//! run in the gateway process, reached over the control socket, so both surfaces share
//! one implementation and one install at a time.
//!
//! An install picks the slot that is not running, marks it not bootable in the boot
//! environment before the first byte is written (GRUB must never fall back to a
//! half-written slot), installs (see `install`), and arms a trial boot only when the slot
//! is complete and sealed. Each outcome is recorded in [`LAST_INSTALL`] on `gw-data`.

use super::bootenv::{self, BootEnv};
use super::bundle::Policy;
use super::install::{self, Context, Source, Target};
use super::keys::Keyring;
use super::slot::{self, Slot};
use crate::dns::Resolver;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One line: the result of the last install and why.
pub const LAST_INSTALL: &str = "/data/firmware/last-install";

/// What the console or the CLI asks for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "firmware", rename_all = "snake_case")]
pub enum FirmwareOp {
    Status,
    Install { url: String, allow_downgrade: bool },
    Rollback,
    Commit,
}

/// `show system firmware` and `edgemx firmware status`, as the control socket sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FirmwareStatus {
    /// The running slot, if the kernel command line names it.
    #[serde(deserialize_with = "Option::deserialize")]
    pub booted: Option<String>,
    pub slots: Vec<SlotStatus>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_result: Option<String>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub last_install: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotStatus {
    pub slot: String,
    pub state: String,
    pub attempts_left: u8,
    pub booted: bool,
    pub next: bool,
    /// `None` for a slot without a sealed install.
    #[serde(deserialize_with = "Option::deserialize")]
    pub version: Option<u64>,
    #[serde(deserialize_with = "Option::deserialize")]
    pub build: Option<String>,
}

/// What an operation answers: the status, or one line saying what was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Status(FirmwareStatus),
    Done(String),
}

/// One install at a time: a second request waits rather than interleaving writes.
static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn execute(op: FirmwareOp, resolver: Option<&Resolver>) -> Result<Outcome, String> {
    match op {
        FirmwareOp::Status => Ok(Outcome::Status(status())),
        FirmwareOp::Install {
            url,
            allow_downgrade,
        } => {
            let _one = INSTALLING.lock().await;
            let result = install(&url, allow_downgrade, resolver).await;
            let line = match &result {
                Ok(text) => format!("installed: {text}"),
                Err(e) => format!("failed: {e}"),
            };
            record(&format!("{} {line}", crate::time::iso8601_now()));
            result.map(Outcome::Done)
        }
        FirmwareOp::Rollback => {
            let to = bootenv::rollback().map_err(|e| e.to_string())?;
            Ok(Outcome::Done(format!(
                "slot {to} boots next; reboot to switch"
            )))
        }
        FirmwareOp::Commit => {
            let running = slot::booted().ok_or("the running slot is unknown (no edgemx.slot=)")?;
            bootenv::commit(running).map_err(|e| e.to_string())?;
            Ok(Outcome::Done(format!("slot {running} marked good")))
        }
    }
}

/// The device and size of `slot`.
fn target(slot: Slot) -> Result<Target, String> {
    let device = slot
        .device()
        .ok_or_else(|| format!("no {} partition found", slot.partname()))?;
    let name = device.trim_start_matches("/dev/");
    let sectors: u64 = std::fs::read_to_string(format!("/sys/class/block/{name}/size"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| format!("cannot read the size of {device}"))?;
    Ok(Target {
        device: device.into(),
        size: sectors * 512,
    })
}

async fn install(
    url: &str,
    allow_downgrade: bool,
    resolver: Option<&Resolver>,
) -> Result<String, String> {
    let running = slot::booted().ok_or("the running slot is unknown (no edgemx.slot=)")?;
    let inactive = running.other();
    let keys = Keyring::embedded();
    let active = target(running)?;
    let to = target(inactive)?;
    let version = install::read_seal(&active, &keys)
        .ok()
        .map(|v| v.manifest.version);
    let source = Source::parse(url).map_err(|e| e.to_string())?;
    let ctx = Context {
        keys: &keys,
        policy: Policy {
            compatible: super::COMPATIBLE.to_string(),
            running: version,
            allow_downgrade,
            max_payload: to.capacity(),
        },
        resolver,
        ca: Path::new(crate::fetch::CA_BUNDLE),
    };
    log::info!(
        "firmware: installing {url} into slot {inactive} (running slot {running}, version {version:?})"
    );
    // Refusals happen in the verify pass, before the slot or the boot environment change.
    install::verify(&source, &ctx)
        .await
        .map_err(|e| e.to_string())?;
    BootEnv::esp()
        .update(|s| {
            s.mark_bad(inactive);
            Ok(())
        })
        .map_err(|e| format!("cannot mark slot {inactive} unbootable before writing: {e}"))?;
    let done = install::install(&source, &to, Some(&active.device), &ctx)
        .await
        .map_err(|e| e.to_string())?;
    bootenv::arm_trial(inactive)
        .map_err(|e| format!("installed, but arming the trial failed: {e}"))?;
    let m = &done.manifest;
    let text = format!(
        "version {} ({}) in slot {inactive}, trial boot armed; reboot to try it",
        m.version, m.build
    );
    log::info!("firmware: {text}");
    Ok(text)
}

fn status() -> FirmwareStatus {
    let keys = Keyring::embedded();
    let boot = BootEnv::esp().state().unwrap_or_default();
    let booted = slot::booted();
    let seals = [Slot::A, Slot::B].map(|s| {
        target(s)
            .ok()
            .and_then(|t| install::read_seal(&t, &keys).ok())
    });
    let installed = [seals[0].is_some(), seals[1].is_some()];
    let states = slot::states(&boot, booted, installed);
    let slots = states
        .iter()
        .zip(&seals)
        .map(|(st, seal)| SlotStatus {
            slot: st.slot.to_string(),
            state: st.state.to_string(),
            attempts_left: st.attempts_left,
            booted: st.booted,
            next: st.next,
            version: seal.as_ref().map(|v| v.manifest.version),
            build: seal.as_ref().map(|v| v.manifest.build.clone()),
        })
        .collect();
    FirmwareStatus {
        booted: booted.map(|s| s.to_string()),
        slots,
        last_result: slot::last_result(),
        last_install: std::fs::read_to_string(LAST_INSTALL)
            .ok()
            .map(|s| s.trim().to_string()),
    }
}

/// The status as the console and `edgemx firmware status` print it.
pub fn format_status(v: &FirmwareStatus) -> String {
    let mut out = String::from("slot  state   version  build                 tries left  \n");
    for s in &v.slots {
        let mut marks = Vec::new();
        if s.booted {
            marks.push("booted");
        }
        if s.next {
            marks.push("boots next");
        }
        out.push_str(&format!(
            "{:<5} {:<7} {:<8} {:<21} {:<11} {}\n",
            s.slot,
            s.state,
            s.version.map_or("-".to_string(), |v| v.to_string()),
            s.build.as_deref().unwrap_or("-"),
            s.attempts_left,
            marks.join(", ")
        ));
    }
    for (text, label) in [
        (&v.last_result, "last trial"),
        (&v.last_install, "last install"),
    ] {
        if let Some(text) = text {
            out.push_str(&format!("{label}: {text}\n"));
        }
    }
    out
}

fn record(line: &str) {
    let path = Path::new(LAST_INSTALL);
    if let Some(dir) = path.parent()
        && let Err(e) = std::fs::create_dir_all(dir)
    {
        log::warn!("cannot create {}: {e}", dir.display());
        return;
    }
    if let Err(e) = crate::config::store::write_atomic(path, format!("{line}\n").as_bytes()) {
        log::warn!("cannot record the install result in {LAST_INSTALL}: {e}");
    }
}
