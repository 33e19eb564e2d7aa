//! The two firmware slots: which one booted, where each lives, and the state
//! `show system firmware` reports for each.
//!
//! A slot is a GPT partition named `gw-slot-a` / `gw-slot-b` holding a FAT
//! file system with `vmlinuz` and `initrd.img`. GRUB passes the slot it booted
//! as `edgemx.slot=a|b` on the kernel command line. Partitions are found by the
//! name the kernel publishes as `PARTNAME=` in `/sys/class/block/*/uevent` (no
//! udev, no blkid); init finds `gw-data` and the ESP the same way.

use std::fmt;
use std::fs;

use log::warn;

use super::bootenv::BootState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    A,
    B,
}

impl Slot {
    /// `A`/`a` or `B`/`b`.
    pub fn parse(text: &str) -> Option<Slot> {
        match text {
            "A" | "a" => Some(Slot::A),
            "B" | "b" => Some(Slot::B),
            _ => None,
        }
    }

    pub fn other(self) -> Slot {
        match self {
            Slot::A => Slot::B,
            Slot::B => Slot::A,
        }
    }

    /// Index into per-slot arrays (`A` = 0).
    pub fn index(self) -> usize {
        match self {
            Slot::A => 0,
            Slot::B => 1,
        }
    }

    /// The slot's GPT partition name.
    pub fn partname(self) -> &'static str {
        match self {
            Slot::A => "gw-slot-a",
            Slot::B => "gw-slot-b",
        }
    }

    /// `/dev/…` of the slot's partition, when the disk is there.
    pub fn device(self) -> Option<String> {
        find_partition(self.partname())
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::A => "A",
            Slot::B => "B",
        })
    }
}

/// The slot GRUB booted, from `edgemx.slot=` on the kernel command line.
pub fn booted() -> Option<Slot> {
    fs::read_to_string("/proc/cmdline")
        .ok()
        .and_then(|line| from_cmdline(&line))
}

fn from_cmdline(line: &str) -> Option<Slot> {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("edgemx.slot="))
        .and_then(Slot::parse)
}

/// `/dev/NAME` of the first block device whose GPT partition name is `name`.
pub fn find_partition(name: &str) -> Option<String> {
    let mut found: Vec<String> = fs::read_dir("/sys/class/block")
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let uevent = fs::read_to_string(entry.path().join("uevent")).ok()?;
            let field = |key: &str| {
                uevent
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(str::to_string)
            };
            (field("PARTNAME=")?.as_str() == name).then(|| field("DEVNAME="))?
        })
        .collect();
    // Deterministic choice when several disks carry the name (e.g. the USB
    // stick the appliance was installed from is still plugged in).
    found.sort();
    if found.len() > 1 {
        warn!(
            "several {name} partitions ({}); using {}",
            found.join(", "),
            found[0]
        );
    }
    found.into_iter().next().map(|dev| format!("/dev/{dev}"))
}

/// What a slot is, for the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Booted and committed (passed the health gate this boot).
    Active,
    /// Booted but not committed yet, or armed to boot on trial next.
    Trial,
    /// Not running; GRUB may boot it.
    Good,
    /// Holds firmware that failed (its trial or its install); GRUB skips it.
    Bad,
    /// Holds no firmware.
    Empty,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Active => "active",
            State::Trial => "trial",
            State::Good => "good",
            State::Bad => "bad",
            State::Empty => "empty",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    pub slot: Slot,
    pub state: State,
    /// Boots GRUB still allows this slot before falling back.
    pub attempts_left: u8,
    /// This is the running slot.
    pub booted: bool,
    /// GRUB boots this slot next.
    pub next: bool,
}

/// Both slots' states from the boot-counting state, the running slot, and
/// whether each slot holds firmware (`installed`; the caller looks for a
/// kernel in the slot or trusts its own install record).
pub fn states(boot: &BootState, booted: Option<Slot>, installed: [bool; 2]) -> [SlotState; 2] {
    let next = boot.next_boot();
    [Slot::A, Slot::B].map(|slot| {
        let i = slot.index();
        let running = booted == Some(slot);
        let state = if running {
            // GRUB counts every boot; the counter is reset only by a commit.
            if boot.tries[i] == 0 && boot.trial != Some(slot) {
                State::Active
            } else {
                State::Trial
            }
        } else if !boot.ok[i] {
            if installed[i] {
                State::Bad
            } else {
                State::Empty
            }
        } else if boot.trial == Some(slot) {
            State::Trial
        } else {
            State::Good
        };
        SlotState {
            slot,
            state,
            attempts_left: boot.attempts_left(slot),
            booted: running,
            next: next == slot,
        }
    })
}

/// Where init records the outcome of the last trial (and why) on `gw-data`.
pub const LAST_RESULT: &str = "/data/firmware/last-result";

/// The last recorded trial outcome, one line, e.g. "slot B failed its trial:
/// /healthz: unavailable: … (3 boots); back on slot A".
pub fn last_result() -> Option<String> {
    fs::read_to_string(LAST_RESULT)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_booted_slot_comes_from_the_kernel_command_line() {
        assert_eq!(
            from_cmdline("console=ttyS0 edgemx.slot=b panic=10"),
            Some(Slot::B)
        );
        assert_eq!(from_cmdline("edgemx.slot=a"), Some(Slot::A));
        assert_eq!(from_cmdline("edgemx.slot=c"), None);
        assert_eq!(from_cmdline("console=ttyS0"), None);
    }

    #[test]
    fn states_tell_active_trial_good_bad_and_empty_apart() {
        let mut boot = BootState::default();
        let [a, b] = states(&boot, Some(Slot::A), [true, false]);
        assert_eq!((a.state, a.booted, a.next), (State::Active, true, true));
        assert_eq!(b.state, State::Empty);

        boot.arm_trial(Slot::B);
        let [a, b] = states(&boot, Some(Slot::A), [true, true]);
        assert_eq!(
            (a.state, b.state, b.next, b.attempts_left),
            (State::Active, State::Trial, true, 3)
        );

        boot.tries[1] = 1; // GRUB booted B once
        let [a, b] = states(&boot, Some(Slot::B), [true, true]);
        assert_eq!(
            (a.state, b.state, b.attempts_left),
            (State::Good, State::Trial, 2)
        );

        boot.tries[1] = 3;
        boot.tries[0] = 1;
        boot.mark_bad(Slot::B);
        let [a, b] = states(&boot, Some(Slot::A), [true, true]);
        assert_eq!((a.state, b.state), (State::Trial, State::Bad));
        boot.commit(Slot::A);
        assert_eq!(
            states(&boot, Some(Slot::A), [true, true])[0].state,
            State::Active
        );
    }
}
