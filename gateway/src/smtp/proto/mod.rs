//! (stub) SMTP protocol core
