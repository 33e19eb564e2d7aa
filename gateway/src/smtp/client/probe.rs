//! The recipient probe used by the RCPT-time callout: `MAIL FROM:<>`, `RCPT TO:<address>`,
//! `RSET`, in lock step. Nothing is ever sent after RCPT but RSET, so no message can be
//! delivered by a probe.

use super::Session;
use super::wire::Reply;

impl Session {
    /// `Ok(Ok(rcpt reply))`, `Ok(Err(mail reply))` when the null sender was refused, or
    /// `Err(why)` when the connection failed.
    pub async fn probe(&mut self, address: &str) -> Result<Result<Reply, Reply>, String> {
        if address
            .bytes()
            .any(|b| b == b'\r' || b == b'\n' || b == b'>')
        {
            return Ok(Err(Reply::local(553, "5.1.3 address not usable in SMTP")));
        }
        let limit = self.settings.command_timeout;
        let mail = self
            .command(b"MAIL FROM:<>\r\n", limit)
            .await
            .map_err(|e| format!("lost connection during MAIL FROM: {e}"))?;
        if !mail.is_positive() {
            return Ok(Err(mail));
        }
        let line = format!("RCPT TO:<{address}>\r\n");
        let rcpt = self
            .command(line.as_bytes(), limit)
            .await
            .map_err(|e| format!("lost connection during RCPT TO: {e}"))?;
        // The reply to RSET does not change the verdict; a failure here only ends the session.
        let _ = self.command(b"RSET\r\n", limit).await;
        Ok(Ok(rcpt))
    }
}
