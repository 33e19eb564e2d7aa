//! Routing: recipient → route → destination (ordered next hops and TLS policy), address
//! rewriting and the per-recipient map. Pure functions of the configuration and the loaded
//! maps; the only I/O is in `load.rs`, the map loader.
//!
//! # Layout
//!
//! | file | job |
//! | --- | --- |
//! | `table.rs` | routes by name, domain match (exact, then longest `*.suffix`) |
//! | `map.rs` | recipient map, alias map and recipient lists parsed from text |
//! | `load.rs` | reading those files, reloading them when they change (I/O) |
//! | `rewrite.rs` | recipient domain rewriting, sender masquerading |
//! | `routes.rs` | recipient → destination for delivery (memoized), delivery-time fallback |
//!
//! A destination is what a connection can be shared by. Two routes with the same explicit
//! next hops and policy share one destination (one set of connections); a destination that
//! uses `mx` also names its domain, because the MX records differ per domain.

pub mod load;
pub mod map;
pub mod rewrite;
pub mod table;

mod routes;

pub use load::{Maps, Snapshot};
pub use routes::{Destination, Routes};
pub use table::{Route, RouteId, Table};

/// A backend's "no such user": 5xx with enhanced status 5.1.1 (5.1.10 is Microsoft 365's
/// form), or a bare `550` without an enhanced status. `text` is the reply text after the
/// code. This is what sends a recipient to its route's fallback.
pub fn unknown_user(code: u16, text: &str) -> bool {
    if !(500..600).contains(&code) {
        return false;
    }
    match text.split_whitespace().next() {
        Some("5.1.1" | "5.1.10") => true,
        Some(word) => code == 550 && !word.starts_with("5."),
        None => code == 550,
    }
}

#[cfg(test)]
mod tests {
    use super::unknown_user;

    #[test]
    fn only_no_such_user_replies_count_as_unknown_users() {
        assert!(unknown_user(550, "5.1.1 user unknown"));
        assert!(unknown_user(
            550,
            "5.1.10 RESOLVER.ADR.RecipientNotFound; not found"
        ));
        assert!(unknown_user(550, "No such user here"));
        assert!(!unknown_user(550, "5.7.1 relaying denied"));
        assert!(!unknown_user(554, "5.7.1 rejected"));
        assert!(!unknown_user(450, "4.1.1 try later"));
        assert!(!unknown_user(250, "2.1.5 ok"));
    }
}
