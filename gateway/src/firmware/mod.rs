//! Firmware slots and A/B updates.
//!
//! | file | owns |
//! | --- | --- |
//! | `bootenv` | GRUB's environment block on the ESP: boot counting (`ORDER`, `X_OK`, `X_TRY`), arm/commit/rollback |
//! | `slot` | the two slots: which booted, their partitions, their state for the operator |

pub mod bootenv;
pub mod slot;
