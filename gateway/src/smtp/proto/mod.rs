//! The I/O-free SMTP protocol core: bytes in, values out.
//!
//! Owns the wire grammar of the inbound side and of relayed data: command lines to
//! [`Command`] values, paths and mailboxes (with relay-hack detection), replies as values,
//! and message data (DATA decoding with strict end-of-data detection, BDAT chunk checking,
//! dot-stuffing for relay). It must not touch sockets, clocks, configuration files or the
//! queue, and it knows nothing of session state: whether a command is allowed now, which
//! extensions were offered, and which limits apply are the session's to decide and pass in.
//!
//! # Layout
//!
//! | file | owns |
//! | --- | --- |
//! | `reply.rs` | [`Reply`] and its wire form; text sanitized against injection |
//! | `catalog.rs` | the named replies (`Reply::ok()`, `Reply::relay_denied()`, …) |
//! | `command.rs` | [`parse_command`], [`CommandError`] and its one mapping to replies |
//! | `params.rs` | MAIL/RCPT parameters: SIZE, BODY, SMTPUTF8, DSN |
//! | `dsn.rs` | DSN parameter values (RFC 3461): RET, ENVID, NOTIFY, ORCPT, xtext |
//! | `address.rs` | reverse/forward paths, [`Mailbox`], [`RelayHack`] |
//! | `domain.rs` | domain names and address literals |
//! | `data.rs` | [`DataDecoder`], [`ChunkChecker`], [`dot_stuff`] |

pub mod address;
mod catalog;
pub mod command;
pub mod data;
pub mod domain;
pub mod dsn;
pub mod params;
pub mod reply;

pub use address::{AddressError, ForwardPath, Mailbox, RelayHack, ReversePath};
pub use command::{Command, CommandError, parse_command, parse_command_with};
pub use data::{
    ChunkChecker, DataDecoder, DataError, DataSummary, Feed, LineEndings, dot_stuff, lines,
};
pub use domain::Domain;
pub use params::{Body, MailParams, ParamError, RcptParams};
pub use reply::{EnhancedStatus, Reply};
