//! (stub) observe
