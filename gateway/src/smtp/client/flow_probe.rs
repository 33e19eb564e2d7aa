//! The mail-flow probe on an open session: MAIL with a configured sender, RCPT, RSET, without
//! sending a message. Used by [`crate::probe`] (the callout uses `probe.rs`).

use super::Session;
use super::wire::Reply;

impl Session {
    /// Says `MAIL FROM:<sender>` and `RCPT TO:<recipient>`, then `RSET` whatever the answers.
    /// Returns the RCPT reply (or the MAIL reply when MAIL was refused); `Err` when the
    /// connection failed.
    pub async fn probe_rcpt(&mut self, sender: &str, recipient: &str) -> Result<Reply, String> {
        let limit = self.settings.command_timeout;
        let mail = format!("MAIL FROM:<{sender}>\r\n");
        let reply = self
            .command(mail.as_bytes(), limit)
            .await
            .map_err(|e| format!("MAIL: {e}"))?;
        let reply = if reply.is_positive() {
            let rcpt = format!("RCPT TO:<{recipient}>\r\n");
            self.command(rcpt.as_bytes(), limit)
                .await
                .map_err(|e| format!("RCPT: {e}"))?
        } else {
            reply
        };
        let _ = self.command(b"RSET\r\n", limit).await;
        Ok(reply)
    }
}
