//! DATA: stream the message through the strict decoder, prepend our Received header, and
//! answer `250` only once the queue has it on disk.

use super::BUDGET_UNIT;
use super::deadline::Pace;
use super::io::ReadEnd;
use super::scan::Scanned;
use super::session::{Flow, Session};
use crate::config::{LineEndings as ConfigLineEndings, LongLines};
use crate::envelope::{Envelope, QueueId};
use crate::observe::events::Event;
use crate::queue::QueueError;
use crate::smtp::proto::{Body, DataDecoder, DataSummary, Feed, Reply, ReversePath};
use crate::smtp::proto::{LineEndings, lines};
use crate::time::rfc5322_date;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A session's share of `limits.inflight_bytes`, grown as its message grows.
pub struct Budget {
    pool: Arc<Semaphore>,
    held: Option<OwnedSemaphorePermit>,
}

impl Budget {
    pub fn new(pool: Arc<Semaphore>) -> Budget {
        Budget { pool, held: None }
    }

    /// Makes sure `bytes` are covered; false when the shared budget is exhausted.
    pub fn cover(&mut self, bytes: usize) -> bool {
        let needed = bytes.div_ceil(BUDGET_UNIT) as u32;
        let held = self.held.as_ref().map_or(0, |p| p.num_permits() as u32);
        if needed <= held {
            return true;
        }
        match self.pool.clone().try_acquire_many_owned(needed - held) {
            Ok(more) => {
                match self.held.as_mut() {
                    Some(permit) => permit.merge(more),
                    None => self.held = Some(more),
                }
                true
            }
            Err(_) => false,
        }
    }
}

impl Session {
    pub async fn data(&mut self) -> Flow {
        let id = self.ctx.queue.reserve_id();
        self.conn.reply(&Reply::start_data());
        let limits = &self.ctx.config.limits;
        let max = limits.max_message_size.0;
        let mut decoder = DataDecoder::new(max, line_endings(limits.line_endings));
        let mut body = Vec::with_capacity(8 * 1024);
        self.received_header(id, &mut body);
        let mut budget = Budget::new(self.ctx.inflight.clone());
        let mut over_budget = false;
        let mut scratch = Vec::new();
        let mut pace = Pace::transfer(limits, Instant::now());
        loop {
            let input = self.conn.buffered();
            let target = if over_budget { &mut scratch } else { &mut body };
            let fed = decoder.feed(input, target);
            let n = input.len();
            scratch.clear();
            match fed {
                Feed::End { consumed } => {
                    self.conn.consume(consumed);
                    break;
                }
                Feed::NeedMore => self.conn.consume(n),
            }
            if !over_budget && !budget.cover(body.capacity()) {
                over_budget = true;
                body = Vec::new();
            }
            if let Err(end) = self.read_payload(&mut pace).await {
                return end;
            }
        }
        let summary = match decoder.outcome() {
            Ok(summary) => summary,
            Err(e) => {
                self.tx = None;
                log::info!("{}: message refused: {e}", self.peer);
                return self.refuse(e.reply());
            }
        };
        if over_budget {
            self.tx = None;
            log::warn!(
                "{}: message refused: in-flight memory budget exhausted",
                self.peer
            );
            return self.refuse(Reply::storage_full());
        }
        self.queue_message(id, body, summary).await
    }

    /// Reads more message payload within the phase's `pace` (`deadline.rs`); on failure
    /// the session ends (after a `421` for a timeout) and the message is not acknowledged.
    pub async fn read_payload(&mut self, pace: &mut Pace) -> Result<(), Flow> {
        match self.read_within(pace).await {
            Ok(_) => Ok(()),
            Err(ReadEnd::Timeout) => {
                log::info!("{}: too slow in DATA/BDAT, closing", self.peer);
                self.conn.last_words(&Reply::timeout()).await;
                Err(Flow::Close)
            }
            Err(_) => Err(Flow::Close),
        }
    }

    /// Stores the finished message of the current transaction and answers the client.
    pub async fn queue_message(
        &mut self,
        id: QueueId,
        mut body: Vec<u8>,
        summary: DataSummary,
    ) -> Flow {
        let Some(tx) = self.tx.take() else {
            return self.refuse(Reply::bad_sequence());
        };
        // Our mail is folded before it is signed, so the signature covers what is relayed;
        // other mail after its signatures were verified, so the verdict is on what the
        // sender signed. A refusal needs neither.
        let policy = self.ctx.config.limits.long_lines;
        let fold_first = policy == LongLines::Reject || self.outbound();
        if fold_first && let Err(reply) = long_lines(policy, &mut body) {
            log::info!("{}: message refused: {reply}", self.peer);
            return self.refuse(reply);
        }
        if let Err(reply) = super::hops::check(&body, self.ctx.config.flow.max_hops) {
            log::info!("{}: message refused: {reply}", self.peer);
            return self.refuse(reply);
        }
        let held = match self.authenticate(&tx, &mut body).await {
            Ok(held) => held,
            Err(reply) => return self.refuse(reply),
        };
        if !fold_first {
            // Folding cannot fail.
            let _ = long_lines(policy, &mut body);
        }
        // Scanned last, on the bytes that will be queued.
        let hold = match self.scan(&tx, id, &mut body).await {
            Scanned::Queue(Some(hold)) => Some(hold),
            Scanned::Queue(None) => held.then_some(crate::envelope::Hold::Quarantine),
            Scanned::Refuse { reply, permanent } if permanent => return self.refuse(reply),
            Scanned::Refuse { reply, .. } => return self.decline(reply),
        };
        let sender = match &tx.from {
            ReversePath::Null => String::new(),
            ReversePath::Mailbox(m) => m.to_string(),
        };
        let sender = self.ctx.recipients.sender(sender, self.outbound());
        let envelope = Envelope {
            id,
            size: body.len() as u64,
            smtputf8: tx.params.smtputf8,
            eight_bit: summary.has_8bit || tx.params.body == Body::EightBitMime,
            client: self.client(),
            held: hold.is_some(),
            hold,
            ret: tx.params.ret,
            envid: tx.params.envid.clone(),
            ..Envelope::new(sender, tx.rcpts, crate::time::unix_now())
        };
        let (sender, rcpts, size) = (
            envelope.sender.clone(),
            envelope.recipients.len(),
            envelope.size,
        );
        let to: Vec<String> = envelope
            .recipients
            .iter()
            .map(|r| r.address.clone())
            .collect();
        let (message_id, verdicts) = tracking_fields(&body);
        match self.ctx.queue.enqueue(envelope, body).await {
            Ok(stored) => {
                self.messages += 1;
                self.idle_commands = 0;
                self.ctx.events.publish(&Event::Accepted);
                // One line with everything message tracking searches by (`track`).
                log::info!(
                    "queued {} from=<{sender}> size={size} rcpts={rcpts} client={} tls={} \
                     to=<{}> msgid={message_id} auth={verdicts}",
                    stored.id,
                    // One word: `helo[192.0.2.1]`, as Postfix writes a client.
                    self.client().replace(' ', ""),
                    self.tls.as_deref().unwrap_or("no"),
                    to.join(">,<"),
                );
                self.answer(Reply::queued(&stored.id.to_string()))
            }
            Err(e) => {
                log::warn!("{}: queueing failed, answered 4xx: {e}", self.peer);
                self.refuse(match e {
                    // Out of room (a quota, the reserve, a full disk): 4.3.1.
                    QueueError::Full(_) | QueueError::DiskFull(_) => Reply::storage_full(),
                    QueueError::Io(_)
                    | QueueError::Open { .. }
                    | QueueError::Closed
                    | QueueError::Corrupt { .. } => Reply::local_error(),
                })
            }
        }
    }

    /// RFC 5321 §4.4 trace header, with the protocol names of RFC 3848 / RFC 6531.
    pub fn received_header(&self, id: QueueId, out: &mut Vec<u8>) {
        let Some(tx) = self.tx.as_ref() else { return };
        let mut protocol = String::from(if tx.params.smtputf8 {
            "UTF8SMTP"
        } else {
            "ESMTP"
        });
        if self.helo.as_ref().is_some_and(|h| !h.extended) {
            protocol = "SMTP".into();
        }
        if self.tls.is_some() {
            protocol.push('S');
        }
        if self.authenticated() {
            protocol.push('A');
        }
        let helo = self.helo.as_ref().map_or("unknown", |h| h.name.as_str());
        let mut header = format!(
            "Received: from {helo} ([{}])\r\n\tby {} (edgemx) with {protocol} id {id}",
            self.peer.ip(),
            self.ctx.config.hostname,
        );
        if let Some(tls) = &self.tls {
            let (version, cipher) = tls.split_once(' ').unwrap_or((tls.as_str(), ""));
            header.push_str(&format!("\r\n\t(using {version} with cipher {cipher})"));
        }
        if let [only] = tx.rcpts.as_slice() {
            header.push_str(&format!("\r\n\tfor <{}>", only.address));
        }
        header.push_str(&format!("; {}\r\n", rfc5322_date(crate::time::unix_now())));
        out.extend_from_slice(header.as_bytes());
    }
}

/// Applies `limits.long_lines` to a received message.
fn long_lines(setting: LongLines, body: &mut Vec<u8>) -> Result<(), Reply> {
    match setting {
        LongLines::Reject if lines::longest_line(body) > lines::MAX_LINE => {
            Err(Reply::line_too_long_in_data())
        }
        LongLines::Reject => Ok(()),
        LongLines::Fold => {
            if let Some(folded) = lines::fold(body, lines::MAX_LINE) {
                *body = folded;
            }
            Ok(())
        }
    }
}

pub fn line_endings(setting: ConfigLineEndings) -> LineEndings {
    match setting {
        ConfigLineEndings::Reject => LineEndings::Reject,
        ConfigLineEndings::Normalize => LineEndings::Normalize,
    }
}

/// The Message-ID (`<…>`, or `-`) and our Authentication-Results verdicts
/// (`spf=pass,dkim=pass,dmarc=pass`, or `-`) of a message about to be queued, for the
/// `queued` log line that message tracking searches.
fn tracking_fields(body: &[u8]) -> (String, String) {
    let head = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(body, |end| &body[..end]);
    let head = String::from_utf8_lossy(head)
        .replace("\r\n\t", " ")
        .replace("\r\n ", " ");
    let field = |name: &str| {
        head.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_string())
        })
    };
    let message_id = field("Message-ID")
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "-".into());
    let results = field("Authentication-Results").unwrap_or_default();
    let verdicts: Vec<&str> = results
        .split([';', ' '])
        .filter(|w| {
            w.split_once('=')
                .is_some_and(|(k, _)| matches!(k, "spf" | "dkim" | "dmarc" | "arc"))
        })
        .collect();
    let verdicts = if verdicts.is_empty() {
        "-".to_string()
    } else {
        verdicts.join(",")
    };
    (message_id, verdicts)
}

#[cfg(test)]
mod tracking_tests {
    #[test]
    fn the_queued_line_carries_message_id_and_verdicts() {
        let body = b"Authentication-Results: mx.test; spf=pass smtp.mailfrom=a@b.test;\r\n\tdkim=fail header.d=b.test; dmarc=none\r\nMessage-ID:\r\n <x1@b.test>\r\nSubject: hi\r\n\r\nMessage-ID: <not@this>\r\n";
        let (id, verdicts) = super::tracking_fields(body);
        assert_eq!(id, "<x1@b.test>");
        assert_eq!(verdicts, "spf=pass,dkim=fail,dmarc=none");
        assert_eq!(
            super::tracking_fields(b"\r\n\r\nbody"),
            ("-".into(), "-".into())
        );
    }
}
