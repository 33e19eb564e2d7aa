//! SMTP in three layers, each its own node in the module graph: the I/O-free protocol
//! core (`proto`, used by everyone), the one client (`client`: delivery, callouts, probes,
//! `test route` and the control socket's checks) and the inbound server (`inbound`, which
//! uses the layers below it and the queue, policy and delivery).

pub mod client;
pub mod inbound;
pub mod proto;
