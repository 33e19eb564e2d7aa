//! (stub) policy
