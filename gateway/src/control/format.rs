//! Human-readable output of control answers for `edgemx queue list|show|health`.

use super::reply::Shown;
use crate::delivery::health::HopHealth;
use crate::envelope::{Envelope, RcptStatus};
use std::fmt::Write;
use std::time::UNIX_EPOCH;

/// One line per message: id, age, size, sender, then each recipient with its state.
pub fn format_list(envelopes: &[Envelope]) -> String {
    let mut out = format_entries(envelopes);
    let _ = writeln!(out, "{} message(s)", envelopes.len());
    out
}

/// The lines of [`format_list`] without the count: one page of a longer listing.
pub fn format_entries(envelopes: &[Envelope]) -> String {
    let now = crate::time::unix_now();
    let mut out = String::new();
    for e in envelopes {
        let sender = if e.sender.is_empty() { "<>" } else { &e.sender };
        let _ = writeln!(
            out,
            "{}  {:>6}  {:>8}  {sender}",
            e.id,
            age(now.saturating_sub(e.received)),
            e.size
        );
        if let Some(why) = e.hold_reason() {
            let _ = writeln!(out, "    HELD: {why}");
        }
        for r in &e.recipients {
            let _ = writeln!(out, "    {}  {}", r.address, status(&r.status));
        }
    }
    out
}

/// One line per watched next hop: state, since when, last error.
pub fn format_health(hops: &[HopHealth]) -> String {
    let mut out = String::new();
    let now = crate::time::unix_now();
    for hop in hops {
        let since = hop
            .since
            .duration_since(UNIX_EPOCH)
            .map_or(now, |d| d.as_secs());
        // Destinations with the same next hops differ by TLS policy: name both, and who
        // delivers there, so no two rows read the same.
        let _ = writeln!(
            out,
            "{:<5} {:>6}  {}  tls={}  [{}]  {}",
            hop.state.as_str(),
            age(now.saturating_sub(since)),
            hop.name,
            hop.tls,
            if hop.used_by.is_empty() {
                "queued mail only".to_string()
            } else {
                hop.used_by.join(", ")
            },
            hop.last_error.as_deref().unwrap_or("")
        );
    }
    out
}

/// The envelope, each recipient's state, then the headers.
pub fn format_show(shown: &Shown) -> String {
    let mut out = String::new();
    let e = &shown.envelope;
    let now = crate::time::unix_now();
    let _ = writeln!(out, "id:        {}", e.id);
    let _ = writeln!(out, "from:      <{}>", e.sender);
    let _ = writeln!(out, "client:    {}", e.client);
    let _ = writeln!(
        out,
        "received:  {} ({} ago)",
        crate::time::rfc5322_date(e.received),
        age(now.saturating_sub(e.received))
    );
    let _ = writeln!(out, "size:      {}", e.size);
    let _ = writeln!(out, "attempts:  {}", e.attempts);
    if let Some(why) = e.hold_reason() {
        let _ = writeln!(
            out,
            "held:      {why}; `edgemx queue release {}` lets it go",
            e.id
        );
    }
    if e.next_attempt > now {
        let _ = writeln!(out, "next try:  in {}", age(e.next_attempt - now));
    }
    for r in &e.recipients {
        let _ = writeln!(out, "rcpt:      {}  {}", r.address, status(&r.status));
    }
    let _ = writeln!(out, "\n{}", shown.headers);
    out
}

fn status(s: &RcptStatus) -> String {
    match s {
        RcptStatus::Pending => "pending".into(),
        RcptStatus::Deferred { reply, .. } => format!("deferred: {reply}"),
        RcptStatus::Delivered { reply, .. } => format!("delivered: {reply}"),
        RcptStatus::Failed { reply, .. } => format!("failed: {reply}"),
    }
}

fn age(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Hold, QueueId, Recipient};

    fn held(id: u64, hold: Option<Hold>) -> Envelope {
        let mut e = Envelope::new("s@a.test", vec![Recipient::pending("r@b.test")], 0);
        e.id = QueueId(id);
        e.held = true;
        e.hold = hold;
        e
    }

    #[test]
    fn list_and_show_say_that_a_message_is_held_and_why() {
        let corrupt = Hold::Corrupt {
            detail: "CRC-32 0000002A expected".into(),
        };
        let all = [
            held(1, Some(Hold::Operator)),
            held(2, Some(Hold::Quarantine)),
            held(3, Some(Hold::Expired)),
            held(4, Some(corrupt)),
            held(5, None),
        ];
        let list = format_list(&all);
        for why in [
            "HELD: by the operator",
            "HELD: DMARC quarantine",
            "HELD: expired undelivered",
            "HELD: stored body is corrupt: CRC-32 0000002A expected",
            "HELD: reason not recorded",
        ] {
            assert!(list.contains(why), "{why} missing from\n{list}");
        }
        let mut free = held(6, None);
        free.held = false;
        let list = format_list(&[free]);
        assert!(!list.contains("HELD"), "{list}");

        let show = format_show(&Shown {
            envelope: all[1].clone(),
            headers: String::new(),
        });
        assert!(show.contains("held:      DMARC quarantine"), "{show}");
    }
}
