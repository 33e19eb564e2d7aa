//! (stub) init
