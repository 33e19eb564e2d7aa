//! Delivery-time fallback (shared address space): a recipient whose backend answered "no
//! such user" moves to its route's fallback route and stays open, instead of bouncing. It
//! bounces only when the last route in the chain says so too.

use super::settle::Outcome;
use crate::envelope::Envelope;
use crate::routing::{self, Routes};

/// Moves every recipient of `env` that got an unknown-user reply and has a fallback to it,
/// and drops those outcomes so they are not settled. True when any recipient moved.
pub fn reroute(routes: &Routes, env: &mut Envelope, outcomes: &mut Vec<Outcome>) -> bool {
    let before = outcomes.len();
    outcomes.retain(|outcome| {
        let reply = &outcome.reply;
        if !routing::unknown_user(reply.code, &reply.lines.join(" ")) {
            return true;
        }
        let Some(rcpt) = env.recipients.get_mut(outcome.index) else {
            return true;
        };
        let Some(moved) = rcpt
            .status
            .is_open()
            .then(|| routes.fallback(rcpt))
            .flatten()
        else {
            return true;
        };
        log::info!(
            "{} <{}> unknown on its route ({}); trying route {} as <{}>",
            env.id,
            rcpt.address,
            reply.text(),
            moved.route.as_deref().unwrap_or("-"),
            moved.address
        );
        *rcpt = moved;
        false
    });
    outcomes.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::delivery::Reply;
    use crate::envelope::{RcptStatus, Recipient};
    use std::sync::Arc;

    fn routes() -> Routes {
        let text = r#"
            hostname = "mx.test"
            data_dir = "/tmp/x"
            [[listener]]
            address = "127.0.0.1:2525"
            [[route]]
            name = "cloud"
            domains = ["example.com"]
            next_hops = ["10.9.0.1:25"]
            fallback = "onprem"
            [[route]]
            name = "onprem"
            next_hops = ["10.9.0.2:25"]
        "#;
        Routes::new(Arc::new(Config::parse(text).unwrap()))
    }

    fn outcome(index: usize, code: u16, text: &str) -> Outcome {
        Outcome {
            index,
            reply: Reply::local(code, text),
            mta: Some("mx.test".into()),
            dsn_passed: false,
        }
    }

    #[test]
    fn unknown_users_move_to_the_fallback_and_others_settle_as_usual() {
        let routes = routes();
        let rcpts = ["a@example.com", "b@example.com", "c@example.com"].map(Recipient::pending);
        let mut env = Envelope::new("s@x.test", rcpts.to_vec(), 0);
        let mut outcomes = vec![
            outcome(0, 550, "5.1.1 unknown"),
            outcome(1, 550, "5.7.1 policy"),
            outcome(2, 250, "2.0.0 ok"),
        ];
        assert!(reroute(&routes, &mut env, &mut outcomes));
        assert_eq!(outcomes.len(), 2);
        assert_eq!(env.recipients[0].route.as_deref(), Some("onprem"));
        assert_eq!(env.recipients[0].status, RcptStatus::Pending);
        assert_eq!(env.recipients[1].route, None);
        // On the last route, "unknown" is final: nothing moves.
        let mut again = vec![outcome(0, 550, "5.1.1 unknown")];
        assert!(!reroute(&routes, &mut env, &mut again));
        assert_eq!(again.len(), 1);
    }
}
