//! One transaction on an open session: MAIL, RCPT, DATA (pipelined when offered), the
//! dot-stuffed body and the per-recipient verdicts.

use super::wire::{self, Reply, WireError};
use super::{Broken, Outgoing, Session};
use crate::smtp::proto::dsn::xtext;
use std::fmt::Write as _;

impl Session {
    /// Sends one message and returns one reply per recipient, in order: the `RCPT` reply for
    /// refused recipients, the final reply for accepted ones, the `MAIL` reply for all when
    /// `MAIL` failed.
    pub async fn send(&mut self, msg: &Outgoing<'_>) -> Result<Vec<Reply>, Broken> {
        let all = |reply: Reply| vec![reply; msg.recipients.len()];
        if let Some(reply) = self.precheck(msg) {
            return Ok(all(reply));
        }
        let reuse = self.sent > 0;
        self.sent += 1;
        self.build_commands(msg, reuse);
        let (mail, rcpts, data) = if self.ext.pipelining {
            self.pipelined(msg.recipients.len(), reuse).await?
        } else {
            self.lockstep(msg, reuse).await?
        };
        if !mail.is_positive() {
            if data.as_ref().is_some_and(|d| d.code == 354) {
                self.end_empty_data().await?;
            }
            return Ok(all(mail));
        }
        let accepted = rcpts.iter().filter(|r| r.is_positive()).count();
        let data = match data {
            Some(data) => data,
            None => return Ok(rcpts),
        };
        if data.code != 354 {
            return Ok(merge(rcpts, &data));
        }
        if accepted == 0 {
            // A pipelining server that said 354 with no recipient: end the empty message.
            self.end_empty_data().await?;
            return Ok(rcpts);
        }
        self.stuff_body(msg.body);
        let final_reply = self.finish_data().await?;
        Ok(merge(rcpts, &final_reply))
    }

    /// Refusals decided before talking: we must not send what the peer cannot take.
    fn precheck(&self, msg: &Outgoing<'_>) -> Option<Reply> {
        let who = format!("{}[{}]", self.host, self.peer.ip());
        let unsafe_path = |a: &str| a.bytes().any(|b| b == b'\r' || b == b'\n' || b == b'>');
        if unsafe_path(msg.sender) || msg.recipients.iter().any(|r| unsafe_path(r)) {
            return Some(Reply::local(553, "5.1.3 address not usable in SMTP"));
        }
        if msg.smtputf8 && !self.ext.smtputf8 {
            return Some(Reply::local(
                554,
                format!("5.6.7 {who} does not support SMTPUTF8, which this message requires"),
            ));
        }
        match self.ext.size {
            Some(limit) if limit > 0 && msg.body.len() as u64 > limit => Some(Reply::local(
                552,
                format!("5.3.4 message exceeds the size limit of {who} ({limit} bytes)"),
            )),
            _ => None,
        }
    }

    fn build_commands(&mut self, msg: &Outgoing<'_>, reuse: bool) {
        let mut cmd = String::with_capacity(64 + 48 * msg.recipients.len());
        if reuse {
            cmd.push_str("RSET\r\n");
        }
        let _ = write!(cmd, "MAIL FROM:<{}>", msg.sender);
        if self.ext.size.is_some() {
            let _ = write!(cmd, " SIZE={}", msg.body.len());
        }
        if msg.eight_bit && self.ext.eight_bit_mime {
            cmd.push_str(" BODY=8BITMIME");
        }
        if msg.smtputf8 {
            cmd.push_str(" SMTPUTF8");
        }
        let dsn = self.ext.dsn.then_some(&msg.dsn);
        if let Some(ret) = dsn.and_then(|d| d.ret) {
            let _ = write!(cmd, " RET={ret}");
        }
        if let Some(envid) = dsn.and_then(|d| d.envid) {
            let _ = write!(cmd, " ENVID={}", xtext(envid));
        }
        cmd.push_str("\r\n");
        for (i, rcpt) in msg.recipients.iter().enumerate() {
            let _ = write!(cmd, "RCPT TO:<{rcpt}>");
            if let Some(r) = dsn.and_then(|d| d.rcpts.get(i)) {
                if let Some(notify) = r.notify {
                    let _ = write!(cmd, " NOTIFY={notify}");
                }
                if let Some(orcpt) = r.orcpt {
                    let _ = write!(cmd, " ORCPT={orcpt}");
                }
            }
            cmd.push_str("\r\n");
        }
        cmd.push_str("DATA\r\n");
        self.buf.clear();
        self.buf.extend_from_slice(cmd.as_bytes());
    }

    /// RFC 2920: the whole group in one write, then the replies in order.
    async fn pipelined(
        &mut self,
        count: usize,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let limit = self.settings.command_timeout;
        let buf = std::mem::take(&mut self.buf);
        let written = wire::write_all(&mut self.io, &buf, limit).await;
        // A large message's copy must not outlive its transaction on a cached connection:
        // its share of the byte budget ends with the transaction.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        written.map_err(|e| self.broken("MAIL FROM", e, true))?;
        if reuse {
            self.read(limit)
                .await
                .map_err(|e| self.broken("RSET", e, true))?;
        }
        let mail = self
            .read(limit)
            .await
            .map_err(|e| self.broken("MAIL FROM", e, true))?;
        let mut rcpts = Vec::with_capacity(count);
        for _ in 0..count {
            rcpts.push(
                self.read(limit)
                    .await
                    .map_err(|e| self.broken("RCPT TO", e, true))?,
            );
        }
        let data = self
            .read(limit)
            .await
            .map_err(|e| self.broken("DATA", e, true))?;
        Ok((mail, rcpts, Some(data)))
    }

    /// Without PIPELINING: one command, one reply, stopping as soon as the outcome is known.
    async fn lockstep(
        &mut self,
        msg: &Outgoing<'_>,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let commands = std::mem::take(&mut self.buf);
        let result = self
            .lockstep_inner(&commands, msg.recipients.len(), reuse)
            .await;
        self.buf = commands;
        result
    }

    async fn lockstep_inner(
        &mut self,
        commands: &[u8],
        count: usize,
        reuse: bool,
    ) -> Result<(Reply, Vec<Reply>, Option<Reply>), Broken> {
        let mut lines = commands.split_inclusive(|&b| b == b'\n');
        if reuse {
            self.step(lines.next(), "RSET").await?;
        }
        let mail = self.step(lines.next(), "MAIL FROM").await?;
        if !mail.is_positive() {
            return Ok((mail, Vec::new(), None));
        }
        let mut rcpts = Vec::with_capacity(count);
        for _ in 0..count {
            rcpts.push(self.step(lines.next(), "RCPT TO").await?);
        }
        if !rcpts.iter().any(Reply::is_positive) {
            return Ok((mail, rcpts, None));
        }
        let data = self.step(lines.next(), "DATA").await?;
        Ok((mail, rcpts, Some(data)))
    }

    async fn step(&mut self, line: Option<&[u8]>, stage: &str) -> Result<Reply, Broken> {
        let limit = self.settings.command_timeout;
        self.command(line.unwrap_or(b"NOOP\r\n"), limit)
            .await
            .map_err(|e| self.broken(stage, e, true))
    }

    fn stuff_body(&mut self, body: &[u8]) {
        self.buf.clear();
        // The one copy of the body: CRLF, dot-stuffed, with the end-of-data mark.
        crate::smtp::proto::dot_stuff(body, &mut self.buf);
    }

    async fn end_empty_data(&mut self) -> Result<Reply, Broken> {
        self.buf.clear();
        self.buf.extend_from_slice(b".\r\n");
        self.finish_data().await
    }

    /// Sends the prepared data (ending with `.\r\n`) and reads the final reply.
    async fn finish_data(&mut self) -> Result<Reply, Broken> {
        let limit = self.settings.data_timeout;
        let buf = std::mem::take(&mut self.buf);
        let written = wire::write_all(&mut self.io, &buf, limit).await;
        // A large message's copy must not outlive its transaction on a cached connection:
        // its share of the byte budget ends with the transaction.
        if buf.capacity() <= 1 << 20 {
            self.buf = buf;
        }
        written.map_err(|e| self.broken("message data", e, false))?;
        self.read(limit)
            .await
            .map_err(|e| self.broken("end of data", e, false))
    }

    fn broken(&self, stage: &str, e: WireError, retry_safe: bool) -> Broken {
        let who = format!("{}[{}]:{}", self.host, self.peer.ip(), self.peer.port());
        if let Some(alert) = self
            .tls
            .is_some()
            .then(|| super::tlsfail::alert(&e))
            .flatten()
        {
            let reply = self.refused_by_peer(&who, alert);
            return Broken { reply, retry_safe };
        }
        Broken {
            reply: Reply::local(
                451,
                format!("4.4.2 lost connection with {who} during {stage}: {e}"),
            ),
            retry_safe,
        }
    }
}

/// Refused recipients keep their RCPT reply; accepted ones get `outcome`.
fn merge(rcpts: Vec<Reply>, outcome: &Reply) -> Vec<Reply> {
    rcpts
        .into_iter()
        .map(|r| if r.is_positive() { outcome.clone() } else { r })
        .collect()
}
