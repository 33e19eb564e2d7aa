//! (stub) routing
