//! (stub) dns
