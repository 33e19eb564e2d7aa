//! (stub) delivery
