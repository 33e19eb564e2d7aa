//! (stub) queue
