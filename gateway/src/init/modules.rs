//! Kernel modules: loads the modules packed into the initramfs.
//!
//! `scripts/build-image` resolves `image/modules.list` with depmod into
//! `/lib/modules/RELEASE/edgemx.load`, one path per line with every module's
//! dependencies before it, so init needs neither modprobe nor modules.dep.
//! Drivers for absent hardware load and stay idle, or refuse with ENODEV;
//! neither is an error.

use std::fs::{self, File};
use std::time::Instant;

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::kmod::{ModuleInitFlags, finit_module};

/// Loads every module of the build-time list, in order.
pub fn load_all() {
    let started = Instant::now();
    let Some(release) = super::read_trimmed("/proc/sys/kernel/osrelease") else {
        warn!("cannot read the kernel release; loading no modules");
        return;
    };
    let dir = format!("/lib/modules/{release}");
    let list = match fs::read_to_string(format!("{dir}/edgemx.load")) {
        Ok(list) => list,
        Err(e) => {
            warn!("no module list for kernel {release} ({e}); loading no modules");
            return;
        }
    };
    let (mut loaded, mut absent) = (0, Vec::new());
    for rel in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let name = rel
            .rsplit('/')
            .next()
            .unwrap_or(rel)
            .trim_end_matches(".ko");
        match load(&format!("{dir}/{rel}")) {
            Ok(()) => loaded += 1,
            Err(Errno::EEXIST) => debug!("module {name}: already loaded"),
            Err(Errno::ENODEV | Errno::ENXIO) => absent.push(name.to_string()),
            Err(e) => warn!("module {name}: {e}"),
        }
    }
    info!(
        "loaded {loaded} kernel modules in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    if !absent.is_empty() {
        debug!("no hardware for: {}", absent.join(" "));
    }
}

fn load(path: &str) -> Result<(), Errno> {
    let file =
        File::open(path).map_err(|e| e.raw_os_error().map_or(Errno::EIO, Errno::from_raw))?;
    finit_module(&file, c"", ModuleInitFlags::empty())
}
