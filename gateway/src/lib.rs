//! edgemx: an edge mail gateway.
//!
//! # Layout
//!
//! | module | owns |
//! | --- | --- |
//! | [`cli`] | the `edgemx` command line (the binary is a one-line `main`) |
//! | [`config`] | typed configuration, parsed and validated once; errors name the key |
//! | [`smtp::proto`] | command and DATA/BDAT parsing with no I/O; strict line endings |
//! | [`smtp::inbound`] | listener, session state machine (one file per stage), STARTTLS, limits |
//! | [`policy`] | who may relay (networks, AUTH users, client certificates), which recipients are accepted; SPF/DKIM/DMARC/ARC verdicts |
//! | [`dkim`] | DKIM signing keys, signing outbound mail, `edgemx dkim keygen` |
//! | [`routing`] | recipient → route (next hops, TLS policy); pure functions |
//! | [`scan`] | content scanning at the end of DATA: rspamd and clamd clients, verdicts, quarantine decisions |
//! | [`envelope`] | a message's envelope as stored: sender, recipients and their status, hold reasons, DSN parameters |
//! | [`queue`] | the redb store (the only code touching redb), group commit, retry schedule, DSNs |
//! | [`delivery`] | SMTP client, next-hop selection and failover, connection reuse, scheduler |
//! | [`tls`] | rustls configurations (ring provider), certificates, client-certificate trust, per-policy verifiers |
//! | [`dns`] | hickory resolver construction; the DNS audit (`edgemx dns check`, `plan-mx-change`) |
//! | [`observe`] | logging (journald or stderr), the events the data path publishes, the metrics registry (a value subscribed to them) and the admin HTTP listener |
//! | [`report`] | TLS-RPT and DMARC aggregate reports: aggregates heard from events, kept in the queue's store, sent as mail through the queue |
//! | [`probe`] | mail-flow probes of next hops and probe messages, one [`probe::Probes`] per gateway |
//! | [`time`] | wall clock, RFC 5322 and log time stamps |
//! | [`server`] | the gateway assembled: start order and the one shutdown path |
//! | [`ssh`] | the operator console over SSH: public keys only, a console per session |
//! | [`control`] | the root-only control socket used by `edgemx queue …` |
//! | [`console`] | the operator CLI (serial console) |
//! | [`password`] | salted slow password hashes (SMTP AUTH users, console admin) |
//! | [`init`] | PID 1 duties inside the appliance image |
//! | [`firmware`] | the A/B firmware slots, GRUB's boot counting, signed update bundles and their install |
//! | [`fetch`] | a small HTTP/1.1 GET over rustls (firmware bundles, MTA-STS policies) |
//! | [`mtasts`] | MTA-STS (RFC 8461): the `_mta-sts` record, the policy, its fetch and persisted cache |
//!
//! Data flows one way: listener → session → policy/routing → queue (durable) → `250` →
//! scheduler → delivery → backend → queue state. Nothing downstream calls back upstream
//! except through the queue.

pub mod cli;
pub mod config;
pub mod console;
pub mod control;
pub mod delivery;
pub mod dkim;
pub mod dns;
pub mod envelope;
pub mod fetch;
pub mod firmware;
pub mod init;
pub mod loader;
pub mod mtasts;
pub mod observe;
pub mod password;
pub mod policy;
pub mod probe;
pub mod queue;
pub mod report;
pub mod routing;
pub mod scan;
pub mod server;
pub mod smtp;
pub mod ssh;
pub mod time;
pub mod tls;
