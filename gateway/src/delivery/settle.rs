//! The outcome of one delivery attempt applied to an envelope: per-recipient status, expiry,
//! the next attempt. Pure but for the events it publishes (delivered, deferred, bounced), so
//! the rules are tested without sockets or a store.

use crate::config;
use crate::config::flow::Expired;
use crate::envelope::{Envelope, RcptStatus, Recipient};
use crate::observe::events::{Event, Events};
use crate::queue::{dsn, schedule};
use crate::smtp::client::wire::Reply;
use std::sync::Arc;

/// What one recipient got in this attempt.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Index into `Envelope::recipients`.
    pub index: usize,
    pub reply: Reply,
    /// The next hop that gave `reply`; `None` for our own verdicts (connect failures…).
    pub mta: Option<Arc<str>>,
    /// The next hop offers DSN and was given the recipient's NOTIFY: reporting success
    /// is its job from here on (RFC 3461 §6.2.1).
    pub dsn_passed: bool,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Recipients that failed in this attempt (5xx, or still open at expiry), as the DSN
    /// should report them: expired ones stay open (pending or deferred), which the DSN
    /// reports as `4.4.7`.
    pub failed: Vec<Recipient>,
    /// Recipients relayed in this attempt to a next hop without DSN (the `relayed` DSN
    /// names those that asked for `NOTIFY=SUCCESS`).
    pub relayed: Vec<Recipient>,
    /// No recipient is left to deliver: the message can be deleted.
    pub finished: bool,
}

/// 2xx delivered, 5xx failed, anything else deferred; deferred recipients of an expired
/// message fail with `4.4.7` (or, with `Expired::Hold`, the message is held for the
/// operator instead); an unfinished message gets its next attempt time.
pub fn settle(
    env: &mut Envelope,
    outcomes: &[Outcome],
    now: u64,
    queue: &config::Queue,
    on_expiry: Expired,
    events: &Events,
) -> Settled {
    let mut failed: Vec<Recipient> = Vec::new();
    let mut relayed: Vec<Recipient> = Vec::new();
    for outcome in outcomes {
        let Some(rcpt) = env.recipients.get_mut(outcome.index) else {
            continue;
        };
        if !rcpt.status.is_open() {
            continue;
        }
        let text = outcome.reply.text();
        let reply = match &outcome.mta {
            Some(mta) => dsn::remote_reply(mta, &text),
            None => text,
        };
        rcpt.status = if outcome.reply.is_positive() {
            RcptStatus::Delivered { reply, at: now }
        } else if outcome.reply.is_permanent() {
            RcptStatus::Failed { reply, at: now }
        } else {
            RcptStatus::Deferred { reply, at: now }
        };
        events.publish(&Event::Recipient {
            id: env.id,
            status: &rcpt.status,
        });
        if outcome.reply.is_permanent() {
            failed.push(rcpt.clone());
        } else if outcome.reply.is_positive() && !outcome.dsn_passed {
            relayed.push(rcpt.clone());
        }
    }
    let expired = !env.is_finished() && schedule::expired(env, now, queue);
    if expired && on_expiry == Expired::Hold {
        if !env.held {
            log::warn!(
                "{} expired undelivered; held for the operator (flow.expired = \"hold\")",
                env.id
            );
        }
        env.hold_for(crate::envelope::Hold::Expired);
    } else if expired {
        for rcpt in env.recipients.iter_mut().filter(|r| r.status.is_open()) {
            // The DSN gets the recipient still open, which it reports as expired (4.4.7),
            // with the last remote host and its reply as they were stored
            // (`Remote-MTA`, `Diagnostic-Code: smtp;`).
            let open = rcpt.clone();
            let last = match &rcpt.status {
                RcptStatus::Deferred { reply, .. } => format!("; last reply: {reply}"),
                _ => String::new(),
            };
            failed.push(open);
            let reply = format!("4.4.7 message expired, not delivered{last}");
            rcpt.status = RcptStatus::Failed { reply, at: now };
            events.publish(&Event::Recipient {
                id: env.id,
                status: &rcpt.status,
            });
        }
    }
    let finished = env.is_finished();
    if !finished {
        env.attempts += 1;
        env.next_attempt = schedule::next_attempt(now, env.attempts, queue);
    }
    Settled {
        failed,
        relayed,
        finished,
    }
}

/// The recipients to name in the one `delayed` DSN, when the message has waited `after`
/// (0: never) and the sender was not told yet; marks the envelope as told, so the notice
/// and the mark are written in one commit.
pub fn delay_notice(env: &mut Envelope, now: u64, after: std::time::Duration) -> Vec<Recipient> {
    let waited = now.saturating_sub(env.received);
    if after.is_zero() || env.delay_notified || env.is_finished() || waited < after.as_secs() {
        return Vec::new();
    }
    env.delay_notified = true;
    if env.sender.is_empty() {
        return Vec::new();
    }
    let open = env.recipients.iter().filter(|r| r.status.is_open());
    open.cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{QueueId, Recipient};
    use std::time::Duration;

    fn envelope(received: u64) -> Envelope {
        let recipients = ["1@b.test", "2@b.test", "3@b.test"].map(Recipient::pending);
        Envelope {
            id: QueueId(7),
            size: 10,
            ..Envelope::new("a@a.test", recipients.to_vec(), received)
        }
    }

    fn outcome(index: usize, code: u16, text: &str) -> Outcome {
        Outcome {
            index,
            reply: Reply::local(code, text),
            mta: Some("mx.b.test".into()),
            dsn_passed: false,
        }
    }

    fn queue_config() -> config::Queue {
        config::Queue {
            retry_intervals: vec![config::Span(Duration::from_secs(60))],
            retry_jitter: 0.0,
            max_lifetime: config::Span(Duration::from_secs(3600)),
            ..config::Queue::default()
        }
    }

    #[test]
    fn each_recipient_gets_its_own_status() {
        let mut env = envelope(1000);
        let outcomes = [
            outcome(0, 250, "2.0.0 ok"),
            outcome(1, 450, "4.2.1 busy"),
            outcome(2, 550, "5.1.1 unknown"),
        ];
        let settled = settle(
            &mut env,
            &outcomes,
            1000,
            &queue_config(),
            Expired::Bounce,
            &Events::new(),
        );
        assert_eq!(settled.failed, [env.recipients[2].clone()]);
        assert!(!settled.finished);
        assert!(matches!(
            env.recipients[0].status,
            RcptStatus::Delivered { .. }
        ));
        assert!(
            matches!(&env.recipients[1].status, RcptStatus::Deferred { reply, .. } if reply == "mx.b.test said: 450 4.2.1 busy")
        );
        assert!(matches!(
            env.recipients[2].status,
            RcptStatus::Failed { .. }
        ));
        assert_eq!(env.attempts, 1);
        assert!(env.next_attempt >= 1000 + 59 && env.next_attempt <= 1000 + 61);
    }

    #[test]
    fn a_fully_settled_message_is_finished() {
        let mut env = envelope(1000);
        let outcomes = [
            outcome(0, 250, "2.0.0 ok"),
            outcome(1, 250, "2.0.0 ok"),
            outcome(2, 554, "5.7.1 no"),
        ];
        let settled = settle(
            &mut env,
            &outcomes,
            1000,
            &queue_config(),
            Expired::Bounce,
            &Events::new(),
        );
        assert_eq!(settled.failed, [env.recipients[2].clone()]);
        assert!(settled.finished);
        assert_eq!(env.attempts, 0);
    }

    #[test]
    fn deferred_recipients_of_an_expired_message_fail_with_4_4_7() {
        let mut env = envelope(1000);
        env.recipients[0].status = RcptStatus::Delivered {
            reply: "250 ok".into(),
            at: 1,
        };
        let outcomes = [outcome(1, 451, "4.4.1 connect failed")];
        let settled = settle(
            &mut env,
            &outcomes,
            1000 + 3601,
            &queue_config(),
            Expired::Bounce,
            &Events::new(),
        );
        assert!(settled.finished);
        // The DSN sees the last deferral (it reports 4.4.7 or that reply's own status).
        let seen: Vec<&RcptStatus> = settled.failed.iter().map(|r| &r.status).collect();
        assert!(matches!(
            seen[..],
            [RcptStatus::Deferred { .. }, RcptStatus::Pending]
        ));
        match &env.recipients[1].status {
            RcptStatus::Failed { reply, .. } => {
                assert!(
                    reply.starts_with("4.4.7 ") && reply.contains("4.4.1 connect failed"),
                    "{reply}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expired_mail_can_be_held_instead_of_bounced() {
        let mut env = envelope(1000);
        let outcomes = [outcome(0, 451, "4.4.1 connect failed")];
        let settled = settle(
            &mut env,
            &outcomes,
            5000,
            &queue_config(),
            Expired::Hold,
            &Events::new(),
        );
        assert!(settled.failed.is_empty() && !settled.finished);
        assert!(env.held);
        assert!(env.recipients.iter().all(|r| r.status.is_open()));
    }

    #[test]
    fn one_delay_notice_per_message_after_the_delay() {
        let four_hours = Duration::from_secs(4 * 3600);
        let mut env = envelope(1000);
        env.recipients[0].status = RcptStatus::Delivered {
            reply: "250 ok".into(),
            at: 1,
        };
        assert!(delay_notice(&mut env, 1000 + 4 * 3600 - 1, four_hours).is_empty());
        let told = delay_notice(&mut env, 1000 + 4 * 3600, four_hours);
        assert_eq!(told, env.recipients[1..].to_vec());
        assert!(env.delay_notified);
        assert!(delay_notice(&mut env, 1000 + 9 * 3600, four_hours).is_empty());
        let mut never = envelope(0);
        assert!(delay_notice(&mut never, 99_999, Duration::ZERO).is_empty());
    }

    #[test]
    fn dsns_carry_the_next_hops_reply_verbatim() {
        let mut env = envelope(1000);
        let refused = [outcome(0, 550, "no such user here")];
        let settled = settle(
            &mut env,
            &refused,
            1000,
            &queue_config(),
            Expired::Bounce,
            &Events::new(),
        );
        let (_, dsn) = dsn::bounce(
            "gw.test",
            &env,
            b"Subject: x\r\n\r\n",
            &[&settled.failed[0]],
            1000,
        )
        .expect("a DSN");
        let dsn = String::from_utf8(dsn).expect("utf-8");
        assert!(dsn.contains("Remote-MTA: dns; mx.b.test\r\n"), "{dsn}");
        assert!(
            dsn.contains("Diagnostic-Code: smtp; 550 no such user here\r\n"),
            "{dsn}"
        );
        assert!(dsn.contains("Status: 5.0.0\r\n"), "{dsn}");
    }

    #[test]
    fn the_expiry_dsn_names_the_last_remote_host_and_its_reply() {
        let mut env = envelope(1000);
        let deferred = [outcome(1, 451, "4.3.0 mailbox locked")];
        let settled = settle(
            &mut env,
            &deferred,
            1000 + 3601,
            &queue_config(),
            Expired::Bounce,
            &Events::new(),
        );
        let one: Vec<&Recipient> = settled
            .failed
            .iter()
            .filter(|r| r.address == "2@b.test")
            .collect();
        let (_, dsn) =
            dsn::bounce("gw.test", &env, b"Subject: x\r\n\r\n", &one, 5000).expect("a DSN");
        let dsn = String::from_utf8(dsn).expect("utf-8");
        assert!(dsn.contains("Status: 4.4.7\r\n"), "{dsn}");
        assert!(dsn.contains("Remote-MTA: dns; mx.b.test\r\n"), "{dsn}");
        assert!(
            dsn.contains("Diagnostic-Code: smtp; 451 4.3.0 mailbox locked\r\n"),
            "{dsn}"
        );
        assert!(!dsn.contains("X-edgemx"), "{dsn}");
        assert!(dsn.contains("<2@b.test>: delivery time expired; last reply: host mx.b.test said: 451 4.3.0 mailbox locked"), "{dsn}");
    }
}
