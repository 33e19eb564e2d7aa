//! (stub) control
