//! GRUB's environment block on the ESP: the boot-counting state shared by GRUB
//! (`image/grub/grub.cfg`), init and the firmware commands.
//!
//! # Format
//!
//! Exactly [`ENV_SIZE`] bytes: the line `# GRUB Environment Block`, then
//! `name=value` lines, padded to the end with `#` (zero padding makes GRUB
//! reject the block). GRUB keeps no checksum: a torn write loses every
//! variable, which is why `grub.cfg` sets safe defaults before `load_env` and
//! why [`BootState::default`] here is the same state (slot A good, B empty).
//!
//! # Variables
//!
//! RAUC's names, so standard tools read the block: `ORDER` (slots in boot
//! preference, e.g. `A B`), `A_OK`/`B_OK` (`1`: bootable), `A_TRY`/`B_TRY`
//! (boots GRUB started since the slot was last committed). GRUB picks the first
//! slot of `ORDER` that is OK, has a kernel and has used fewer than
//! [`MAX_TRIES`] tries, and saves the incremented try *before* loading the
//! kernel, so a kernel that fails to load or panics still uses a try. Init
//! resets the counter (commit) once the gateway passed its health gate. One
//! variable of our own, `TRIAL`, names a slot armed by an update and not yet
//! committed (empty otherwise): it decides whether a failed boot is a failed
//! update (fall back) or a fault of a good slot (bounded by init's counter).
//!
//! # Writing
//!
//! Our writes never tear the live block: the new block goes to a temporary
//! file, is fsynced, renamed over `grubenv` and the directory is fsynced. GRUB
//! itself rewrites the block in place (`save_env` cannot allocate); a torn
//! GRUB write boots the defaults and init rewrites a valid block.

use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use super::slot::Slot;

/// The size GRUB requires of an environment block.
pub const ENV_SIZE: usize = 1024;
/// Tries a slot gets before GRUB moves on to the next slot of `ORDER`.
pub const MAX_TRIES: u8 = 3;
/// Where init mounts the ESP.
pub const ESP_MOUNT: &str = "/esp";
/// The block on the ESP, as seen through [`ESP_MOUNT`].
pub const GRUBENV: &str = "/esp/boot/grub/grubenv";

const HEADER: &str = "# GRUB Environment Block\n";

#[derive(Debug, thiserror::Error)]
pub enum BootEnvError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Not a GRUB environment block (torn, zeroed or truncated): GRUB boots its defaults.
    #[error("invalid GRUB environment block: {0}")]
    Invalid(&'static str),
    #[error("the GRUB environment block is full ({0} bytes of variables)")]
    TooBig(usize),
    #[error("slot {0} is not marked good: nothing to roll back to")]
    NotGood(Slot),
}

/// The variables of a block, in file order (unknown ones are kept as they are).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: Vec<(String, String)>,
}

impl Env {
    /// Parses a block; anything GRUB's `load_env` would refuse is an error.
    pub fn parse(block: &[u8]) -> Result<Env, BootEnvError> {
        if block.len() != ENV_SIZE {
            return Err(BootEnvError::Invalid("not 1024 bytes"));
        }
        let rest = block
            .strip_prefix(HEADER.as_bytes())
            .ok_or(BootEnvError::Invalid("no header line"))?;
        let text = std::str::from_utf8(rest).map_err(|_| BootEnvError::Invalid("not text"))?;
        // Zeros are what a torn or never-completed write leaves.
        if text.contains('\0') {
            return Err(BootEnvError::Invalid("zero bytes (torn write)"));
        }
        let mut vars = Vec::new();
        for line in text.split_inclusive('\n') {
            // Padding (and comments) start with '#'; the tail may be padding without '\n'.
            if line.starts_with('#') {
                continue;
            }
            let Some(line) = line.strip_suffix('\n') else {
                return Err(BootEnvError::Invalid("unterminated line"));
            };
            let (name, value) = line
                .split_once('=')
                .ok_or(BootEnvError::Invalid("a line without '='"))?;
            vars.push((name.to_string(), value.to_string()));
        }
        Ok(Env { vars })
    }

    /// The block GRUB reads: header, variables, `#` padding to 1024 bytes.
    pub fn to_block(&self) -> Result<Vec<u8>, BootEnvError> {
        let mut out = HEADER.to_string();
        for (name, value) in &self.vars {
            out.push_str(name);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        if out.len() > ENV_SIZE {
            return Err(BootEnvError::TooBig(out.len()));
        }
        let mut block = out.into_bytes();
        block.resize(ENV_SIZE, b'#');
        Ok(block)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, name: &str, value: &str) {
        match self.vars.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((name.to_string(), value.to_string())),
        }
    }
}

/// Boot-counting state of both slots, as GRUB sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BootState {
    /// Boot preference; a slot missing from `ORDER` comes last.
    pub order: [Slot; 2],
    /// `X_OK`, indexed by [`Slot::index`].
    pub ok: [bool; 2],
    /// `X_TRY`, indexed by [`Slot::index`].
    pub tries: [u8; 2],
    /// A slot armed for a trial boot and not committed yet.
    pub trial: Option<Slot>,
}

impl Default for BootState {
    /// What `grub.cfg` sets before `load_env`: slot A good, slot B empty.
    fn default() -> Self {
        BootState {
            order: [Slot::A, Slot::B],
            ok: [true, false],
            tries: [0, 0],
            trial: None,
        }
    }
}

impl BootState {
    /// Reads the state from the variables; a missing or garbled variable keeps
    /// its default, as in `grub.cfg` (load_env only overrides what it finds).
    pub fn from_env(env: &Env) -> BootState {
        let mut state = BootState::default();
        if let Some(order) = env.get("ORDER") {
            let mut slots: Vec<Slot> = order.split_whitespace().filter_map(Slot::parse).collect();
            slots.dedup();
            if let Some(&first) = slots.first() {
                state.order = [first, first.other()];
            }
        }
        for slot in [Slot::A, Slot::B] {
            let i = slot.index();
            if let Some(ok) = env.get(&format!("{slot}_OK")) {
                state.ok[i] = ok == "1";
            }
            if let Some(tries) = env.get(&format!("{slot}_TRY")).and_then(|t| t.parse().ok()) {
                state.tries[i] = tries;
            }
        }
        state.trial = env.get("TRIAL").and_then(Slot::parse);
        state
    }

    /// Writes the state into `env`, keeping its other variables.
    pub fn apply(&self, env: &mut Env) {
        env.set("ORDER", &format!("{} {}", self.order[0], self.order[1]));
        for slot in [Slot::A, Slot::B] {
            let i = slot.index();
            env.set(&format!("{slot}_OK"), if self.ok[i] { "1" } else { "0" });
            env.set(&format!("{slot}_TRY"), &self.tries[i].to_string());
        }
        env.set(
            "TRIAL",
            &self.trial.map(|s| s.to_string()).unwrap_or_default(),
        );
    }

    /// The slot GRUB boots next: the first of `ORDER` that is OK with tries
    /// left, else the first OK one (grub.cfg's last resort; init then stops
    /// the reboots), else A.
    pub fn next_boot(&self) -> Slot {
        let usable = |s: &&Slot| self.ok[s.index()];
        self.order
            .iter()
            .filter(usable)
            .find(|s| self.tries[s.index()] < MAX_TRIES)
            .or_else(|| self.order.iter().find(usable))
            .copied()
            .unwrap_or(Slot::A)
    }

    /// Tries left for `slot` before GRUB gives up on it.
    pub fn attempts_left(&self, slot: Slot) -> u8 {
        MAX_TRIES.saturating_sub(self.tries[slot.index()])
    }

    fn prefer(&mut self, slot: Slot) {
        self.order = [slot, slot.other()];
    }

    /// `slot` boots next, on trial, with [`MAX_TRIES`] tries.
    pub fn arm_trial(&mut self, slot: Slot) {
        self.prefer(slot);
        self.ok[slot.index()] = true;
        self.tries[slot.index()] = 0;
        self.trial = Some(slot);
    }

    /// `slot` proved healthy: good, first in `ORDER`, try counter reset.
    pub fn commit(&mut self, slot: Slot) {
        self.prefer(slot);
        self.ok[slot.index()] = true;
        self.tries[slot.index()] = 0;
        if self.trial == Some(slot) {
            self.trial = None;
        }
    }

    /// `slot` failed (its trial or its install): never boot it again until re-armed.
    pub fn mark_bad(&mut self, slot: Slot) {
        self.ok[slot.index()] = false;
        self.tries[slot.index()] = 0;
        if self.order[0] == slot {
            self.prefer(slot.other());
        }
        if self.trial == Some(slot) {
            self.trial = None;
        }
    }

    /// Boot the other slot next, which must be good. Returns it.
    pub fn rollback(&mut self, running: Slot) -> Result<Slot, BootEnvError> {
        let target = running.other();
        if !self.ok[target.index()] {
            return Err(BootEnvError::NotGood(target));
        }
        self.prefer(target);
        self.tries[target.index()] = 0;
        if self.trial == Some(target) {
            self.trial = None;
        }
        Ok(target)
    }
}

/// The environment block file (normally [`GRUBENV`] on the mounted ESP).
#[derive(Debug, Clone)]
pub struct BootEnv {
    path: PathBuf,
}

impl BootEnv {
    pub fn at(path: impl Into<PathBuf>) -> BootEnv {
        BootEnv { path: path.into() }
    }

    /// The block on the ESP as init mounts it.
    pub fn esp() -> BootEnv {
        BootEnv::at(GRUBENV)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The block's variables; [`BootEnvError::Invalid`] when it is torn.
    pub fn read(&self) -> Result<Env, BootEnvError> {
        let block = fs::read(&self.path).map_err(|e| self.io(e))?;
        Env::parse(&block)
    }

    /// The state GRUB used: the block's, or the defaults when it is unreadable.
    pub fn state(&self) -> Result<BootState, BootEnvError> {
        self.read().map(|env| BootState::from_env(&env))
    }

    /// Replaces the block atomically: write a new file, fsync, rename, fsync the directory.
    pub fn write(&self, env: &Env) -> Result<(), BootEnvError> {
        let block = env.to_block()?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join("grubenv.new");
        let written = File::create(&tmp).and_then(|mut f| {
            f.write_all(&block)?;
            f.sync_all()
        });
        written.map_err(|e| self.io(e))?;
        fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        let dir = File::open(dir).map_err(|e| self.io(e))?;
        dir.sync_all().map_err(|e| self.io(e))?;
        // FAT keeps the cluster chains of the replaced file in its allocation
        // table, which an fsync of the file and the directory did not always
        // write out (seen: a power cut right after left a chain mtools refused).
        // SAFETY: `dir` is an open descriptor for the duration of the call.
        if unsafe { nix::libc::syncfs(dir.as_raw_fd()) } != 0 {
            return Err(self.io(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Reads the state (defaults when torn), lets `change` edit it, writes it
    /// back keeping unknown variables; returns what `change` returned.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut BootState) -> Result<T, BootEnvError>,
    ) -> Result<T, BootEnvError> {
        let mut env = match self.read() {
            Ok(env) => env,
            Err(BootEnvError::Invalid(why)) => {
                log::warn!(
                    "{}: {why}; rewriting it from the defaults",
                    self.path.display()
                );
                Env::default()
            }
            Err(e) => return Err(e),
        };
        let mut state = BootState::from_env(&env);
        let out = change(&mut state)?;
        state.apply(&mut env);
        self.write(&env)?;
        Ok(out)
    }

    fn io(&self, source: std::io::Error) -> BootEnvError {
        BootEnvError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }
}

/// Arms a trial boot of `slot` (after an install into it).
pub fn arm_trial(slot: Slot) -> Result<(), BootEnvError> {
    BootEnv::esp().update(|s| {
        s.arm_trial(slot);
        Ok(())
    })
}

/// Marks `slot` good (the health gate passed, or the operator said so).
pub fn commit(slot: Slot) -> Result<(), BootEnvError> {
    BootEnv::esp().update(|s| {
        s.commit(slot);
        Ok(())
    })
}

/// Boots the other slot next (it must be good); returns it. Takes the running
/// slot from the kernel command line.
pub fn rollback() -> Result<Slot, BootEnvError> {
    let running = super::slot::booted().unwrap_or(Slot::A);
    BootEnv::esp().update(|s| s.rollback(running))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> Vec<u8> {
        let mut b = format!("{HEADER}{text}").into_bytes();
        b.resize(ENV_SIZE, b'#');
        b
    }

    #[test]
    fn a_block_round_trips_and_keeps_unknown_variables() {
        let env = Env::parse(&block("ORDER=B A\nB_OK=1\nB_TRY=2\nother=x=y\n")).unwrap();
        assert_eq!(env.get("other"), Some("x=y"));
        let state = BootState::from_env(&env);
        assert_eq!(state.order, [Slot::B, Slot::A]);
        assert_eq!(state.tries, [0, 2]);
        assert_eq!(state.ok, [true, true]);
        let mut env2 = env.clone();
        state.apply(&mut env2);
        let bytes = env2.to_block().unwrap();
        assert_eq!(bytes.len(), ENV_SIZE);
        assert!(bytes.starts_with(b"# GRUB Environment Block\nORDER=B A\n"));
        assert_eq!(*bytes.last().unwrap(), b'#');
        assert_eq!(Env::parse(&bytes).unwrap().get("other"), Some("x=y"));
        assert_eq!(BootState::from_env(&Env::parse(&bytes).unwrap()), state);
    }

    #[test]
    fn torn_zeroed_or_truncated_blocks_are_refused_and_boot_the_defaults() {
        let zeroed = vec![0u8; ENV_SIZE];
        assert!(matches!(Env::parse(&zeroed), Err(BootEnvError::Invalid(_))));
        let mut torn = block("ORDER=B A\nB_OK=1\n");
        torn[512..].fill(0);
        assert!(Env::parse(&torn).is_err());
        assert!(Env::parse(&block("ORDER=A B\n")[..512]).is_err());
        let mut zero_padded = format!("{HEADER}A_OK=1\n").into_bytes();
        zero_padded.resize(ENV_SIZE, 0);
        assert!(Env::parse(&zero_padded).is_err());
        // The defaults boot A and never the empty B.
        let d = BootState::default();
        assert_eq!(d.next_boot(), Slot::A);
        assert!(!d.ok[Slot::B.index()]);
    }

    #[test]
    fn a_trial_gets_three_tries_then_the_good_slot_boots() {
        let mut s = BootState::default();
        s.arm_trial(Slot::B);
        for _ in 0..MAX_TRIES {
            assert_eq!(s.next_boot(), Slot::B);
            s.tries[Slot::B.index()] += 1; // what grub.cfg saves before loading the kernel
        }
        assert_eq!(s.attempts_left(Slot::B), 0);
        assert_eq!(s.next_boot(), Slot::A);
        s.commit(Slot::A);
        s.mark_bad(Slot::B);
        assert_eq!(s.order, [Slot::A, Slot::B]);
        assert_eq!(s.trial, None);
        assert_eq!(s.next_boot(), Slot::A);
    }

    #[test]
    fn a_committed_trial_becomes_the_good_first_slot() {
        let mut s = BootState::default();
        s.arm_trial(Slot::B);
        s.tries[1] = 1;
        s.commit(Slot::B);
        assert_eq!(
            (s.order, s.ok, s.tries, s.trial),
            ([Slot::B, Slot::A], [true, true], [0, 0], None)
        );
        assert_eq!(s.rollback(Slot::B).unwrap(), Slot::A);
        assert_eq!(s.next_boot(), Slot::A);
        let mut only_a = BootState::default();
        assert!(matches!(
            only_a.rollback(Slot::A),
            Err(BootEnvError::NotGood(Slot::B))
        ));
    }

    #[test]
    fn writes_replace_the_file_whole_and_a_torn_file_is_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let env = BootEnv::at(dir.path().join("grubenv"));
        fs::write(env.path(), vec![0u8; ENV_SIZE]).unwrap();
        assert!(matches!(env.state(), Err(BootEnvError::Invalid(_))));
        env.update(|s| {
            s.arm_trial(Slot::B);
            Ok(())
        })
        .unwrap();
        let bytes = fs::read(env.path()).unwrap();
        assert_eq!(bytes.len(), ENV_SIZE);
        let state = env.state().unwrap();
        assert_eq!(state.trial, Some(Slot::B));
        assert_eq!(state.next_boot(), Slot::B);
        assert!(!dir.path().join("grubenv.new").exists());
    }

    #[test]
    fn a_block_too_full_is_refused_before_writing() {
        let mut env = Env::default();
        env.set("X", &"y".repeat(ENV_SIZE));
        assert!(matches!(env.to_block(), Err(BootEnvError::TooBig(_))));
    }
}
