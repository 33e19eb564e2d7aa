//! AUTH (RFC 4954) with PLAIN (RFC 4616) and LOGIN, on submission listeners and only
//! after STARTTLS: passwords never cross the network in clear text.
//!
//! Success sets the session's relay grant to [`RelayGrant::User`]. Failure is `535 5.7.8`
//! and counts towards `limits.max_errors`, which bounds guessing per connection; the slow
//! hash ([`crate::password`]) bounds it per second. The hash runs on a blocking thread.

use super::deadline::Pace;
use super::io::{Line, ReadEnd};
use super::session::{Flow, Session};
use crate::config::Role;
use crate::policy::relay::RelayGrant;
use crate::smtp::proto::Reply;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::time::Instant;

/// Why an exchange ended without credentials.
enum Exchange {
    /// The client answered `*` (RFC 4954 §4).
    Cancelled,
    /// Not base64, not UTF-8, or not the mechanism's shape.
    Malformed,
    /// The connection ended or timed out; the session is over.
    Ended(Flow),
}

impl Session {
    /// AUTH is offered (and accepted) on submission listeners once TLS is up.
    pub fn offers_auth(&self) -> bool {
        self.role == Role::Submission && self.tls.is_some()
    }

    pub fn authenticated(&self) -> bool {
        matches!(self.relay, Some(RelayGrant::User(_)))
    }

    pub async fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Flow {
        if self.role != Role::Submission {
            return self.refuse(Reply::not_implemented());
        }
        if self.tls.is_none() {
            return self.refuse(Reply::encryption_required());
        }
        let credentials = match mechanism {
            "PLAIN" => self.plain(initial).await,
            "LOGIN" => self.login(initial).await,
            _ => return self.refuse(Reply::auth_mechanism_unknown()),
        };
        let (user, password) = match credentials {
            Ok(pair) => pair,
            Err(Exchange::Cancelled) => return self.refuse(Reply::auth_cancelled()),
            Err(Exchange::Malformed) => return self.refuse(Reply::auth_malformed()),
            Err(Exchange::Ended(flow)) => return flow,
        };
        let ctx = self.ctx.clone();
        let name = user.clone();
        let verified =
            tokio::task::spawn_blocking(move || ctx.access.users.verify(&name, &password)).await;
        match verified {
            Ok(true) => {
                log::info!("{}: AUTH {mechanism} as {user}", self.peer);
                self.relay = Some(RelayGrant::User(user));
                self.answer(Reply::auth_ok())
            }
            Ok(false) => {
                log::warn!("{}: AUTH {mechanism} failed for {user:?}", self.peer);
                self.refuse(Reply::auth_failed())
            }
            Err(e) => {
                log::error!("{}: AUTH check failed: {e}", self.peer);
                self.refuse(Reply::auth_unavailable())
            }
        }
    }

    /// `[authzid] NUL authcid NUL passwd`; an authzid other than the user is refused,
    /// since we do not let one user act for another.
    async fn plain(&mut self, initial: Option<String>) -> Result<(String, String), Exchange> {
        let response = match initial {
            // RFC 4954 §4: "=" is an empty initial response.
            Some(text) if text == "=" => Vec::new(),
            Some(text) => decode(text.as_bytes())?,
            None => self.challenge("").await?,
        };
        let text = String::from_utf8(response).map_err(|_| Exchange::Malformed)?;
        let mut parts = text.split('\0');
        let (Some(authzid), Some(user), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Exchange::Malformed);
        };
        if user.is_empty() || (!authzid.is_empty() && authzid != user) {
            return Err(Exchange::Malformed);
        }
        Ok((user.to_string(), password.to_string()))
    }

    /// Username and password in two challenges (the user may come as initial response).
    async fn login(&mut self, initial: Option<String>) -> Result<(String, String), Exchange> {
        let user = match initial {
            Some(text) => decode(text.as_bytes())?,
            None => self.challenge("Username:").await?,
        };
        let password = self.challenge("Password:").await?;
        match (String::from_utf8(user), String::from_utf8(password)) {
            (Ok(user), Ok(password)) if !user.is_empty() => Ok((user, password)),
            _ => Err(Exchange::Malformed),
        }
    }

    /// Sends `334 base64(prompt)` and reads the client's base64 answer.
    async fn challenge(&mut self, prompt: &str) -> Result<Vec<u8>, Exchange> {
        self.conn
            .reply(&Reply::auth_challenge(&STANDARD.encode(prompt)));
        let ctx = self.ctx.clone();
        let limits = &ctx.config.limits;
        let max = limits.max_line_length;
        let mut pace = Pace::command(limits, Instant::now());
        let line = loop {
            if let Some(line) = self.conn.take_line(max) {
                break line;
            }
            match self.read_within(&mut pace).await {
                Ok(_) => {}
                Err(ReadEnd::Timeout) => {
                    self.conn.last_words(&Reply::timeout()).await;
                    return Err(Exchange::Ended(Flow::Close));
                }
                Err(_) => return Err(Exchange::Ended(Flow::Close)),
            }
        };
        match line {
            Line::Complete(bytes) if bytes == b"*" => Err(Exchange::Cancelled),
            Line::Complete(bytes) => decode(&bytes),
            Line::BareLf | Line::TooLong => Err(Exchange::Malformed),
        }
    }
}

fn decode(text: &[u8]) -> Result<Vec<u8>, Exchange> {
    STANDARD.decode(text).map_err(|_| Exchange::Malformed)
}
