//! Human-readable output of control answers for `edgemx queue list|show|health`.

use crate::envelope::{Envelope, RcptStatus};
use std::fmt::Write;

/// One line per message: id, age, size, sender, then each recipient with its state.
pub fn format_list(data: &serde_json::Value) -> String {
    let envelopes: Vec<Envelope> = serde_json::from_value(data.clone()).unwrap_or_default();
    let now = crate::time::unix_now();
    let mut out = String::new();
    for e in &envelopes {
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
    let _ = writeln!(out, "{} message(s)", envelopes.len());
    out
}

/// One line per watched next hop: state, since when, last error.
pub fn format_health(data: &serde_json::Value) -> String {
    let mut out = String::new();
    let now = crate::time::unix_now();
    for hop in data.as_array().into_iter().flatten() {
        let since = hop["since"]["secs_since_epoch"].as_u64().unwrap_or(now);
        // Destinations with the same next hops differ by TLS policy: name both, and who
        // delivers there, so no two rows read the same.
        let used: Vec<&str> = hop["used_by"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| u.as_str())
            .collect();
        let _ = writeln!(
            out,
            "{:<5} {:>6}  {}  tls={}  [{}]  {}",
            hop["state"].as_str().unwrap_or("?"),
            age(now.saturating_sub(since)),
            hop["name"].as_str().unwrap_or("?"),
            hop["tls"].as_str().unwrap_or("?"),
            if used.is_empty() {
                "queued mail only".to_string()
            } else {
                used.join(", ")
            },
            hop["last_error"].as_str().unwrap_or("")
        );
    }
    out
}

pub fn format_show(data: &serde_json::Value) -> String {
    let mut out = String::new();
    if let Ok(e) = serde_json::from_value::<Envelope>(data["envelope"].clone()) {
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
    }
    if let Some(headers) = data["headers"].as_str() {
        let _ = writeln!(out, "\n{headers}");
    }
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
        let list = format_list(&serde_json::to_value(&all).unwrap());
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
        let list = format_list(&serde_json::to_value([free]).unwrap());
        assert!(!list.contains("HELD"), "{list}");

        let show = format_show(&serde_json::json!({ "envelope": all[1] }));
        assert!(show.contains("held:      DMARC quarantine"), "{show}");
    }
}
