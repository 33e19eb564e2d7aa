//! (stub) tls
