//! Kernel modules: loads the initramfs's modules that the machine's hardware
//! needs, udev-style but without udev.
//!
//! `scripts/build-image` resolves `image/modules.list` with depmod into two
//! files under `/lib/modules/RELEASE/`: `edgemx.load` (every module of the
//! closure as `path: dependencies`, dependencies in load order) and
//! `edgemx.want` (each listed module as `path alias-pattern...`). A wanted
//! module is loaded when the `modalias` of a device in `/sys/bus/*/devices`
//! matches one of its patterns, or unconditionally when it has none
//! (filesystems, crc32c). Loading a bus driver makes new devices appear
//! (virtio devices behind virtio_pci, USB disks behind xhci), so callers that
//! wait for a device call [`rescan`] while they wait.
//!
//! Loading every driver regardless of hardware costs seconds under emulation,
//! which is why matching is worth its few lines. Failures are expected and
//! quiet: a driver may refuse with ENODEV (`hv_vmbus` outside Hyper-V) and
//! its dependents are then skipped.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

/// Modules slower than this are named in the debug log (boot-time tuning).
const SLOW: Duration = Duration::from_millis(50);

struct Catalog {
    dir: String,
    deps: HashMap<String, Vec<String>>,
    /// Listed modules not yet loaded, with their alias patterns.
    wanted: Vec<(String, Vec<String>)>,
    loaded: HashSet<String>,
    failed: HashSet<String>,
}

static CATALOG: Mutex<Option<Catalog>> = Mutex::new(None);

/// Reads the module lists and loads what the hardware present at boot needs.
pub fn load_all() {
    let started = Instant::now();
    let Some(catalog) = Catalog::read() else {
        return;
    };
    let Ok(mut guard) = CATALOG.lock() else {
        return;
    };
    let catalog = guard.insert(catalog);
    let loaded = catalog.load_matching();
    let mut names: Vec<&str> = catalog
        .loaded
        .iter()
        .map(|p| p.rsplit('/').next().unwrap_or(p))
        .collect();
    names.sort_unstable();
    debug!("modules: {}", names.join(" "));
    info!(
        "loaded {loaded} kernel modules for this hardware in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// Ends module loading: deletes the module files from the initramfs (a
/// tmpfs, so they occupy RAM; ~11 MiB) once boot no longer waits for
/// devices. Loaded modules live on in the kernel; devices plugged in later
/// get no driver, as there is no hotplug handling after boot.
pub fn release() {
    if let Ok(mut guard) = CATALOG.lock()
        && let Some(catalog) = guard.take()
    {
        match fs::remove_dir_all(&catalog.dir) {
            Ok(()) => debug!("removed {} from memory", catalog.dir),
            Err(e) => debug!("cannot remove {}: {e}", catalog.dir),
        }
    }
}

/// Loads modules for devices that appeared since the last scan; returns how
/// many were loaded.
pub fn rescan() -> usize {
    match CATALOG.lock() {
        Ok(mut guard) => guard.as_mut().map_or(0, Catalog::load_matching),
        Err(_) => 0,
    }
}

impl Catalog {
    fn read() -> Option<Catalog> {
        let Some(release) = super::read_trimmed("/proc/sys/kernel/osrelease") else {
            warn!("cannot read the kernel release; loading no modules");
            return None;
        };
        let dir = format!("/lib/modules/{release}");
        // Our kernel (scripts/build-kernel) has every driver built in and the
        // image carries no module tree: nothing to load, nothing to report.
        if !std::path::Path::new(&dir).is_dir() {
            info!("kernel {release}: drivers built in, no modules to load");
            return None;
        }
        let read = |name: &str| match fs::read_to_string(format!("{dir}/{name}")) {
            Ok(text) => Some(text),
            Err(e) => {
                info!("no {name} for kernel {release} ({e}); loading no modules");
                None
            }
        };
        let (load, want) = (read("edgemx.load")?, read("edgemx.want")?);
        let deps = load
            .lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(path, deps)| {
                (
                    path.trim().to_string(),
                    deps.split_whitespace().map(str::to_string).collect(),
                )
            })
            .collect();
        let wanted = want
            .lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace().map(str::to_string);
                Some((words.next()?, words.collect()))
            })
            .collect();
        Some(Catalog {
            dir,
            deps,
            wanted,
            loaded: HashSet::new(),
            failed: HashSet::new(),
        })
    }

    /// Loads wanted modules that match present devices, repeating while
    /// loading reveals new devices.
    fn load_matching(&mut self) -> usize {
        let mut total = 0;
        loop {
            let aliases = device_aliases();
            let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.wanted)
                .into_iter()
                .partition(|(_, patterns)| {
                    patterns.is_empty()
                        || patterns.iter().any(|p| aliases.iter().any(|a| glob(p, a)))
                });
            self.wanted = later;
            if now.is_empty() {
                return total;
            }
            for (path, _) in now {
                total += self.load_with_deps(&path);
            }
        }
    }

    fn load_with_deps(&mut self, path: &str) -> usize {
        let deps = self.deps.get(path).cloned().unwrap_or_default();
        let mut count = 0;
        for module in deps.iter().map(String::as_str).chain([path]) {
            if self.loaded.contains(module) || self.failed.contains(module) {
                continue;
            }
            let name = module
                .rsplit('/')
                .next()
                .unwrap_or(module)
                .trim_end_matches(".ko");
            let blocked = self
                .deps
                .get(module)
                .is_some_and(|d| d.iter().any(|d| self.failed.contains(d)));
            if blocked {
                debug!("module {name}: skipped, a dependency did not load");
                self.failed.insert(module.to_string());
                continue;
            }
            let t = Instant::now();
            match load(&format!("{}/{module}", self.dir)) {
                Ok(()) | Err(Errno::EEXIST) => {
                    self.loaded.insert(module.to_string());
                    count += 1;
                }
                Err(e @ (Errno::ENODEV | Errno::ENXIO)) => {
                    debug!("module {name}: {e} (no such hardware)");
                    self.failed.insert(module.to_string());
                }
                Err(e) => {
                    warn!("module {name}: {e}");
                    self.failed.insert(module.to_string());
                }
            }
            if t.elapsed() > SLOW {
                debug!("module {name}: {} ms", t.elapsed().as_millis());
            }
        }
        count
    }
}

fn load(path: &str) -> Result<(), Errno> {
    let file =
        File::open(path).map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    finit_module(&file, c"", ModuleInitFlags::empty())
}

/// The `modalias` of every device on every bus.
fn device_aliases() -> Vec<String> {
    let mut aliases = Vec::new();
    for bus in fs::read_dir("/sys/bus").into_iter().flatten().flatten() {
        for dev in fs::read_dir(bus.path().join("devices"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if let Ok(alias) = fs::read_to_string(dev.path().join("modalias")) {
                aliases.push(alias.trim().to_string());
            }
        }
    }
    aliases
}

/// fnmatch(3) without flags, as modules.alias patterns use it: `*`, `?` and
/// `[...]` classes with ranges and `!`/`^` negation.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some(b'*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some(b'?') => Some(pi + 1),
            Some(b'[') => class(p, pi, t[ti]),
            Some(&c) if c == t[ti] => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ti += 1;
            }
            (None, Some((sp, st))) => {
                pi = sp + 1;
                ti = st + 1;
                star = Some((sp, st + 1));
            }
            (None, None) => return false,
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `p[start] == b'['`; returns the
/// index after the class on a match.
fn class(p: &[u8], start: usize, c: u8) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    while let Some(&b) = p.get(i) {
        if b == b']' && !first {
            return (matched != negate).then_some(i + 1);
        }
        if p.get(i + 1) == Some(&b'-') && p.get(i + 2).is_some_and(|&e| e != b']') {
            matched |= (b..=p[i + 2]).contains(&c);
            i += 3;
        } else {
            matched |= b == c;
            i += 1;
        }
        first = false;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs_match_like_modules_alias() {
        let virtio_pci = "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00";
        assert!(glob("pci:v00001AF4d*sv*sd*bc*sc*i*", virtio_pci));
        assert!(!glob("pci:v00008086d*sv*sd*bc*sc*i*", virtio_pci));
        assert!(glob("acpi*:PNP0C0C:*", "acpi:PNP0C0C:"));
        assert!(glob("virtio:d00000001v*", "virtio:d00000001v00001AF4"));
        assert!(!glob("virtio:d00000001v*", "virtio:d00000002v00001AF4"));
        assert!(glob("usb:v*p*d0[0-2]*dc*", "usb:v1234p5678d01xxdc00"));
        assert!(!glob("usb:v*p*d0[!0-2]*dc*", "usb:v1234p5678d01xxdc00"));
        assert!(glob("a?c", "abc") && !glob("a?c", "ac"));
        assert!(glob("*", "") && !glob("x", ""));
    }
}
