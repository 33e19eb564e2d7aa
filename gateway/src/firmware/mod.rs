//! Signed A/B firmware updates: the two slots and GRUB's boot counting, the bundle format
//! and its checks, the keys this build trusts, fetching a bundle and writing it into the
//! inactive slot, and the commands (`edgemx firmware …`, the console's `… firmware …`).
//!
//! | file | owns |
//! | --- | --- |
//! | `bootenv` | GRUB's environment block on the ESP: boot counting (`ORDER`, `X_OK`, `X_TRY`), arm/commit/rollback |
//! | `slot` | the two slots: which booted, their partitions, their state for the operator |
//! | `bundle` | format, manifest, signing, signature and payload checks (design note there) |
//! | `keys` | the embedded trusted public keys, key ids, reading signing keys |
//! | `fetch` | the streaming HTTP/1.1 GET (http and https, no redirects, size limit) |
//! | `install` | verify pass, write pass into the inactive slot, read-back, seal |
//! | `ops` | status, install, rollback, commit for the console and the control socket |
//! | `crate::cli` (`cli/firmware.rs`) | `edgemx firmware verify|inspect|sign|keygen`, and `status|install|rollback|commit` on the appliance, over the control socket |
//!
//! Nothing here writes to `gw-data` except the one-line install record, and nothing here
//! ever opens the running slot for writing.

pub mod bootenv;
pub mod bundle;
pub mod install;
pub mod keys;
pub mod ops;
pub mod slot;

#[cfg(test)]
mod tests;

/// The image family this build's firmware belongs to; bundles must name it.
pub const COMPATIBLE: &str = "edgemx-x86_64";
/// Size of a slot partition in the image (`SLOT_MIB` in scripts/build-image); host-side
/// checks use it, the appliance reads the real size from sysfs.
pub const SLOT_SIZE: u64 = 64 * 1024 * 1024;
