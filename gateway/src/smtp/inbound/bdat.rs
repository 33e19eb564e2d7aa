//! BDAT (RFC 3030 CHUNKING): exact-size chunks, no dot-stuffing, the same line-ending
//! policy and size limit as DATA; the LAST chunk queues the message.

use super::data::{Budget, line_endings};
use super::deadline::Pace;
use super::session::{Flow, Session};
use crate::envelope::QueueId;
use crate::smtp::proto::{ChunkChecker, Reply};
use std::time::Instant;

/// A message being received in chunks.
pub struct Chunking {
    id: QueueId,
    body: Vec<u8>,
    checker: ChunkChecker,
    budget: Budget,
    over_budget: bool,
}

impl Session {
    pub async fn bdat(&mut self, size: u64, last: bool) -> Flow {
        let mut chunking = match self.tx.as_mut().and_then(|t| t.chunking.take()) {
            Some(chunking) => chunking,
            None => self.start_chunking(),
        };
        let mut remaining = size;
        let mut scratch = Vec::new();
        let mut pace = Pace::transfer(&self.ctx.config.limits, Instant::now());
        loop {
            let input = self.conn.buffered();
            let take = input
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            let target = if chunking.over_budget {
                &mut scratch
            } else {
                &mut chunking.body
            };
            chunking.checker.feed(&input[..take], target);
            scratch.clear();
            self.conn.consume(take);
            remaining -= take as u64;
            if !chunking.over_budget && !chunking.budget.cover(chunking.body.capacity()) {
                chunking.over_budget = true;
                chunking.body = Vec::new();
            }
            if remaining == 0 {
                break;
            }
            if let Err(end) = self.read_payload(&mut pace).await {
                return end;
            }
        }
        if !last {
            if let Some(tx) = self.tx.as_mut() {
                tx.chunking = Some(chunking);
            }
            return self.answer(Reply::chunk_received(size));
        }
        let summary = match chunking.checker.finish() {
            Ok(summary) => summary,
            Err(e) => {
                self.tx = None;
                log::info!("{}: message refused: {e}", self.peer);
                return self.refuse(e.reply());
            }
        };
        if chunking.over_budget {
            self.tx = None;
            return self.refuse(Reply::storage_full());
        }
        self.queue_message(chunking.id, chunking.body, summary)
            .await
    }

    fn start_chunking(&self) -> Chunking {
        let limits = &self.ctx.config.limits;
        let id = self.ctx.queue.reserve_id();
        let mut body = Vec::with_capacity(8 * 1024);
        self.received_header(id, &mut body);
        Chunking {
            id,
            body,
            checker: ChunkChecker::new(
                limits.max_message_size.0,
                line_endings(limits.line_endings),
            ),
            budget: Budget::new(self.ctx.inflight.clone()),
            over_budget: false,
        }
    }

    /// Reads and drops a chunk that arrived out of sequence, so its bytes are never taken
    /// for commands.
    pub async fn skip_chunk(&mut self, size: u64) -> Result<(), Flow> {
        let mut remaining = size;
        let mut pace = Pace::transfer(&self.ctx.config.limits, Instant::now());
        loop {
            let take = self
                .conn
                .buffered()
                .len()
                .min(usize::try_from(remaining).unwrap_or(usize::MAX));
            self.conn.consume(take);
            remaining -= take as u64;
            if remaining == 0 {
                return Ok(());
            }
            self.read_payload(&mut pace).await?;
        }
    }
}
