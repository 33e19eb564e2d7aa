//! TEMPORARY stand-ins for functions that live on branches not merged yet
//! (`queue::schedule`, `queue::dsn` on `queue`; `smtp::proto::dot_stuff` on `proto`).
//! Same names and signatures as the real ones; this file is deleted after those merges.

/// Copies `body` to `out`, doubling every `.` that starts a line (RFC 5321 §4.5.2).
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    let mut line_start = true;
    for &b in body {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
}

pub mod schedule {
    use crate::config;

    /// Unix seconds of the attempt after `attempts` attempts, with jitter.
    pub fn next_attempt(config: &config::Queue, attempts: u32, now: u64) -> u64 {
        let index = (attempts as usize).saturating_sub(1);
        let wait = config
            .retry_intervals
            .get(index)
            .or(config.retry_intervals.last())
            .map(|s| s.0.as_secs_f64())
            .unwrap_or(60.0);
        let jitter = 1.0 + config.retry_jitter * (fastrand::f64() * 2.0 - 1.0);
        now + (wait * jitter).round().max(1.0) as u64
    }

    /// The message has been queued longer than `max_lifetime`.
    pub fn expired(config: &config::Queue, received: u64, now: u64) -> bool {
        now.saturating_sub(received) >= config.max_lifetime.0.as_secs()
    }
}

pub mod dsn {
    use crate::queue::{Envelope, QueueId, RcptStatus, Recipient};

    /// A minimal plain-text bounce; the real RFC 3464 one comes with the `queue` branch.
    pub fn bounce(
        hostname: &str,
        original: &Envelope,
        _body: &[u8],
        failed: &[&Recipient],
        now: u64,
    ) -> Option<(Envelope, Vec<u8>)> {
        if original.sender.is_empty() || failed.is_empty() {
            return None;
        }
        let mut text = format!(
            "From: MAILER-DAEMON@{hostname}\r\nTo: <{}>\r\nSubject: Undelivered Mail\r\n\r\n",
            original.sender
        );
        for r in failed {
            if let RcptStatus::Failed { reply, .. } = &r.status {
                text.push_str(&format!("<{}>: {reply}\r\n", r.address));
            }
        }
        let domain = original
            .sender
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        let envelope = Envelope {
            id: QueueId(0),
            sender: String::new(),
            recipients: vec![Recipient {
                address: original.sender.clone(),
                domain,
                status: RcptStatus::Pending,
            }],
            received: now,
            size: text.len() as u64,
            smtputf8: false,
            eight_bit: false,
            client: "local bounce".into(),
            attempts: 0,
            next_attempt: 0,
        };
        Some((envelope, text.into_bytes()))
    }
}
