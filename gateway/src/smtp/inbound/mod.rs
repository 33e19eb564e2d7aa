//! (stub) inbound
