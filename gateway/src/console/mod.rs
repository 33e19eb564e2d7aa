//! (stub) console
