//! The power button: `KEY_POWER` presses from evdev (the ACPI button driver
//! registers the button as an input device; QEMU's `system_powerdown`
//! presses it) become a power-off request to init.
//!
//! One blocking reader thread per input device that can report `KEY_POWER`;
//! a press is turned into SIGUSR2 to PID 1, the same request as
//! `kill -USR2 1`, so the main loop has a single way in.

use std::fs::{self, File};
use std::io::Read;
use std::thread;

use log::{info, warn};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

const EV_KEY: u16 = 1;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit Linux: timeval (16), type, code, value.
const EVENT_SIZE: usize = 24;

/// Starts a reader for every input device with a power key.
pub fn watch() {
    let Ok(entries) = fs::read_dir("/dev/input") else {
        warn!("no /dev/input: the power button is not handled");
        return;
    };
    let mut watching = 0;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("event") || !has_power_key(&name) {
            continue;
        }
        let path = entry.path();
        let label = fs::read_to_string(format!("/sys/class/input/{name}/device/name"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| name.clone());
        let spawned = File::open(&path).and_then(|file| {
            thread::Builder::new()
                .name(format!("power-{name}"))
                .spawn(move || read_events(file))
        });
        match spawned {
            Ok(_) => {
                info!("power button: {} ({label})", path.display());
                watching += 1;
            }
            Err(e) => warn!("cannot watch {}: {e}", path.display()),
        }
    }
    if watching == 0 {
        info!("no power button found");
    }
}

/// Whether `/sys/class/input/NAME/device/capabilities/key` has KEY_POWER.
/// The file is a bitmap of hex words, most significant first.
fn has_power_key(event: &str) -> bool {
    let path = format!("/sys/class/input/{event}/device/capabilities/key");
    fs::read_to_string(path).is_ok_and(|bits| bitmap_has(&bits, KEY_POWER))
}

fn bitmap_has(bits: &str, bit: u16) -> bool {
    let word_bits = usize::BITS as usize;
    let (index, offset) = (usize::from(bit) / word_bits, usize::from(bit) % word_bits);
    bits.split_whitespace()
        .rev()
        .nth(index)
        .and_then(|word| usize::from_str_radix(word, 16).ok())
        .is_some_and(|word| word >> offset & 1 == 1)
}

fn read_events(mut file: File) {
    let mut event = [0u8; EVENT_SIZE];
    while file.read_exact(&mut event).is_ok() {
        let kind = u16::from_ne_bytes([event[16], event[17]]);
        let code = u16::from_ne_bytes([event[18], event[19]]);
        let value = i32::from_ne_bytes([event[20], event[21], event[22], event[23]]);
        if kind == EV_KEY && code == KEY_POWER && value == 1 {
            info!("power button pressed");
            if let Err(e) = kill(Pid::from_raw(1), Signal::SIGUSR2) {
                warn!("cannot request power off: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_key_power_in_a_capability_bitmap() {
        // An ACPI power button: only KEY_POWER (bit 116 = word 1, bit 52).
        assert!(bitmap_has("10000000000000 0", KEY_POWER));
        assert!(!bitmap_has("0", KEY_POWER));
        assert!(!bitmap_has("10000000000000", KEY_POWER));
    }
}
