//! SMTP: the I/O-free protocol core (`proto`) and the inbound server (`inbound`).

pub mod inbound;
pub mod proto;
