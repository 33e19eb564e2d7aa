//! The appliance kernel's configuration: every option `image/kernel/edgemx.config`
//! requires must hold in the `.config` the kernel was built with, so a source
//! update that renames or hides an option fails here, not at boot. The Buildroot
//! tree must build from the same fragment.
//!
//! The built-config check runs `scripts/build-kernel` (instant when its cache is
//! warm; scripts/test builds the kernel first) and is behind the `kernel` feature,
//! so that a plain `cargo test --workspace` never starts a kernel build.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
        .to_path_buf()
}

/// What a fragment line demands of the final configuration.
#[derive(Debug, PartialEq)]
enum Want {
    /// `CONFIG_X=value`: exactly this value.
    Value(String, String),
    /// `# CONFIG_X is not set`: absent or unset.
    Unset(String),
}

fn fragment_wants(text: &str) -> Vec<Want> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# ")
                && let Some(name) = rest.strip_suffix(" is not set")
                && name.starts_with("CONFIG_")
            {
                return Some(Want::Unset(name.to_string()));
            }
            let (name, value) = line.split_once('=')?;
            name.starts_with("CONFIG_")
                .then(|| Want::Value(name.to_string(), value.to_string()))
        })
        .collect()
}

/// The fragment's demands that `config` (a full .config) does not meet, each
/// with what the config has instead.
fn unmet(wants: &[Want], config: &str) -> Vec<String> {
    let value = |name: &str| {
        config.lines().find_map(|l| {
            let (n, v) = l.split_once('=')?;
            (n == name).then(|| v.to_string())
        })
    };
    wants
        .iter()
        .filter_map(|want| match want {
            Want::Value(name, v) => match value(name) {
                Some(got) if &got == v => None,
                got => Some(format!(
                    "{name}={v} (got: {})",
                    got.as_deref().unwrap_or("unset")
                )),
            },
            Want::Unset(name) => value(name).map(|got| format!("{name} unset (got: {got})")),
        })
        .collect()
}

fn fragment() -> String {
    std::fs::read_to_string(repo_root().join("image/kernel/edgemx.config"))
        .expect("image/kernel/edgemx.config")
}

#[test]
fn the_fragment_parses_into_the_options_the_appliance_needs() {
    let wants = fragment_wants(&fragment());
    // A few the appliance cannot boot without (tinyconfig drops each).
    for needed in [
        "CONFIG_BLOCK",
        "CONFIG_KERNEL_LZ4",
        "CONFIG_VIRTIO_BLK",
        "CONFIG_EXT4_FS",
        "CONFIG_EPOLL",
        "CONFIG_FUTEX",
        "CONFIG_UNIX98_PTYS",
        "CONFIG_DEVTMPFS",
    ] {
        assert!(
            wants.contains(&Want::Value(needed.into(), "y".into())),
            "the fragment does not set {needed}=y"
        );
    }
    assert!(wants.contains(&Want::Unset("CONFIG_MODULES".into())));
}

#[test]
fn an_option_dropped_by_olddefconfig_is_named() {
    let wants = fragment_wants(
        "# comment\nCONFIG_A=y\nCONFIG_B=y\nCONFIG_S=\"x\"\n# CONFIG_M is not set\n",
    );
    let config = "CONFIG_A=y\n# CONFIG_B is not set\nCONFIG_S=\"x\"\nCONFIG_M=y\n";
    assert_eq!(
        unmet(&wants, config),
        vec!["CONFIG_B=y (got: unset)", "CONFIG_M unset (got: y)"]
    );
    assert!(unmet(&wants, "CONFIG_A=y\nCONFIG_B=y\nCONFIG_S=\"x\"\n").is_empty());
}

#[test]
fn buildroot_builds_from_the_same_fragment() {
    let buildroot =
        std::fs::read_to_string(repo_root().join("buildroot/board/edgemx/linux.fragment"))
            .expect("buildroot/board/edgemx/linux.fragment");
    assert_eq!(
        buildroot,
        fragment(),
        "the Buildroot fragment differs from image/kernel/edgemx.config"
    );
}

/// The cache directory of the built kernel (scripts/build-kernel prints it).
#[cfg(feature = "kernel")]
fn built_kernel() -> PathBuf {
    let out = std::process::Command::new(repo_root().join("scripts/build-kernel"))
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/build-kernel runs");
    assert!(out.status.success(), "scripts/build-kernel failed");
    PathBuf::from(String::from_utf8(out.stdout).expect("a path").trim())
}

#[cfg(feature = "kernel")]
#[test]
fn the_built_kernel_config_holds_every_option_of_the_fragment() {
    let config_path = built_kernel().join("config");
    let config = std::fs::read_to_string(&config_path)
        .unwrap_or_else(|e| panic!("{}: {e}", config_path.display()));
    let missing = unmet(&fragment_wants(&fragment()), &config);
    assert!(
        missing.is_empty(),
        "options of image/kernel/edgemx.config missing from {}:\n  {}",
        config_path.display(),
        missing.join("\n  ")
    );
}

/// Buildroot starts from `linux-tiny.defconfig` where scripts/build-kernel starts
/// from `make tinyconfig`: the two must be the same base for the same source.
#[cfg(feature = "kernel")]
#[test]
fn buildroot_starts_from_the_same_tinyconfig_base() {
    let built = built_kernel().join("tiny.defconfig");
    let built =
        std::fs::read_to_string(&built).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
    let ours =
        std::fs::read_to_string(repo_root().join("buildroot/board/edgemx/linux-tiny.defconfig"))
            .expect("buildroot/board/edgemx/linux-tiny.defconfig");
    assert_eq!(
        ours, built,
        "buildroot/board/edgemx/linux-tiny.defconfig is not `make tinyconfig savedefconfig` of this source: copy it from the kernel cache"
    );
}

/// Kconfig drops defconfig lines it cannot honour without a word; the check
/// runs against the vendored Buildroot release (it says SKIPPED without one).
#[cfg(feature = "kernel")]
#[test]
fn buildroot_defconfig_keeps_every_line() {
    let status = std::process::Command::new(repo_root().join("scripts/check-buildroot"))
        .status()
        .expect("scripts/check-buildroot runs");
    assert!(
        status.success(),
        "scripts/check-buildroot failed (see above)"
    );
}
