//! Delivery status notifications (RFC 3464 multipart/report) for bounces and expiry.
//!
//! A DSN is a new message from the null sender to the original sender with three parts: a
//! human-readable explanation, the `message/delivery-status` report, and the original
//! headers as `text/rfc822-headers`. No DSN is made for a message from the null sender (no
//! DSN about a DSN, RFC 3464 §2 / RFC 5321 §4.5.5).
//!
//! Output is CRLF throughout and 7-bit, except in two cases that need SMTPUTF8 or 8BITMIME
//! anyway: a non-ASCII original sender appears as UTF-8 in `To:` (RFC 6532) and the DSN's
//! envelope is marked `smtputf8`; original headers holding 8-bit bytes are copied as they are
//! under `Content-Transfer-Encoding: 8bit` and the envelope is marked `eight_bit`.
//! Non-ASCII recipient addresses use the `utf-8` address type with RFC 6533's
//! `\x{HEX}` encoding, which is 7-bit.
//!
//! The sender's DSN requests (RFC 3461) are honoured here, whoever calls: a recipient is
//! named only in the kinds of DSN its `NOTIFY` asks for (none for `NEVER`; failure and delay
//! without NOTIFY), `RET=FULL` returns the whole message in a failure DSN (otherwise the
//! headers only), and `ORCPT`/`ENVID` come back as `Original-Recipient` and
//! `Original-Envelope-Id`.
//!
//! Replies stored by delivery may name the remote MTA as `host said: 550 5.1.1 …` (see
//! [`remote_reply`]); that host becomes the `Remote-MTA` field.

use super::{Envelope, RcptStatus, Recipient};
use crate::smtp::proto::dsn::Ret;
use crate::time::rfc5322_date;
use std::fmt::Write;

/// Original headers beyond this are cut at a line boundary.
const MAX_HEADERS: usize = 64 << 10;
/// Longest diagnostic text kept, so that no line exceeds RFC 5322's 998 characters.
const MAX_DIAGNOSTIC: usize = 800;
const SAID: &str = " said: ";

/// What happened to the recipients a DSN reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Given up: rejected with 5xx, or still undelivered at expiry.
    Failed,
    /// Still being retried until the given Unix time (a warning to the sender).
    Delayed { until: u64 },
    /// Accepted by a next hop that does not offer DSN, for recipients with
    /// `NOTIFY=SUCCESS`: no later notice can come (RFC 3461 §6.2.1).
    Relayed,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str(self.word())
    }
}

impl Action {
    fn word(self) -> &'static str {
        match self {
            Action::Failed => "failed",
            Action::Delayed { .. } => "delayed",
            Action::Relayed => "relayed",
        }
    }

    /// Whether `rcpt` asked for this kind of DSN.
    fn wanted_by(self, rcpt: &Recipient) -> bool {
        let notify = rcpt.notify();
        match self {
            Action::Failed => notify.failure,
            Action::Delayed { .. } => notify.delay,
            Action::Relayed => notify.success,
        }
    }
}

/// The failure DSN for `failed` recipients of `original`, ready to enqueue; `None` for the
/// null sender or when no recipient is given. Recipients still open (pending or deferred)
/// are reported as expired (`4.4.7`).
/// The message a DSN is about, as read from the queue: its stored bytes, or why they could
/// not be read. A DSN is still sent then (the sender must learn the outcome), saying in its
/// text that the original is not attached and why.
#[derive(Debug, Clone, Copy)]
pub enum Original<'a> {
    Body(&'a [u8]),
    Unreadable(&'a str),
}

impl<'a> From<&'a [u8]> for Original<'a> {
    fn from(body: &'a [u8]) -> Original<'a> {
        Original::Body(body)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Original<'a> {
    fn from(body: &'a [u8; N]) -> Original<'a> {
        Original::Body(body)
    }
}

impl<'a> From<&'a Vec<u8>> for Original<'a> {
    fn from(body: &'a Vec<u8>) -> Original<'a> {
        Original::Body(body)
    }
}

pub fn bounce<'a>(
    hostname: &str,
    original: &Envelope,
    original_body: impl Into<Original<'a>>,
    failed: &[&Recipient],
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    report(
        hostname,
        original,
        original_body,
        failed,
        Action::Failed,
        now,
    )
}

/// A DSN with the given `action` for `recipients` of `original`; see [`bounce`].
pub fn report<'a>(
    hostname: &str,
    original: &Envelope,
    original_body: impl Into<Original<'a>>,
    recipients: &[&Recipient],
    action: Action,
    now: u64,
) -> Option<(Envelope, Vec<u8>)> {
    let recipients: Vec<&Recipient> = recipients
        .iter()
        .copied()
        .filter(|r| action.wanted_by(r))
        .collect();
    if original.sender.is_empty() || recipients.is_empty() {
        return None;
    }
    let recipients = &recipients[..];
    let (original_body, unreadable) = match original_body.into() {
        Original::Body(body) => (body, None),
        Original::Unreadable(why) => (&[][..], Some(why)),
    };
    let full = action == Action::Failed && original.ret == Some(Ret::Full);
    let headers = if full {
        original_body
    } else {
        original_headers(original_body)
    };
    let eight_bit = !headers.is_ascii();
    let mut boundary = new_boundary(now);
    while contains(headers, boundary.as_bytes()) {
        boundary = new_boundary(now);
    }
    let mut out = String::with_capacity(2_048 + headers.len());
    write_headers(&mut out, hostname, original, action, &boundary, now);
    write_text(&mut out, hostname, original, recipients, action, &boundary);
    if let Some(why) = unreadable {
        // Said in the human-readable part, where the sender looks (RFC 3462 makes the
        // third part optional).
        let _ = write!(
            out,
            "Your message could not be read from the queue ({}); it is not\r\n\
             attached.\r\n\r\n",
            clean(why)
        );
    }
    write_status(&mut out, hostname, original, recipients, action, &boundary);
    if unreadable.is_some() {
        out.push_str(&format!("--{boundary}--\r\n"));
        let body = out.into_bytes();
        let envelope = Envelope {
            size: body.len() as u64,
            smtputf8: !original.sender.is_ascii(),
            client: format!("{hostname} (delivery status notification)"),
            ..Envelope::new("", vec![Recipient::pending(original.sender.clone())], now)
        };
        return Some((envelope, body));
    }
    let _ = if full {
        write!(
            out,
            "--{boundary}\r\nContent-Description: Undelivered Message\r\n\
             Content-Type: message/rfc822\r\n"
        )
    } else {
        write!(
            out,
            "--{boundary}\r\nContent-Description: {what}\r\n\
             Content-Type: text/rfc822-headers\r\n",
            what = match action {
                Action::Relayed => "Message Headers",
                _ => "Undelivered Message Headers",
            }
        )
    };
    if eight_bit {
        out.push_str("Content-Transfer-Encoding: 8bit\r\n");
    }
    out.push_str("\r\n");
    let mut body = out.into_bytes();
    copy_lines(&mut body, headers);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());

    let envelope = Envelope {
        size: body.len() as u64,
        smtputf8: !original.sender.is_ascii(),
        eight_bit,
        client: format!("{hostname} (delivery status notification)"),
        ..Envelope::new("", vec![Recipient::pending(original.sender.clone())], now)
    };
    Some((envelope, body))
}

/// The form in which delivery should store a remote reply so that DSNs can name the
/// remote MTA: `mx.example.org said: 550 5.1.1 no such user`.
pub fn remote_reply(remote_mta: &str, reply: &str) -> String {
    format!("{remote_mta}{SAID}{reply}")
}

fn write_headers(
    out: &mut String,
    hostname: &str,
    original: &Envelope,
    action: Action,
    boundary: &str,
    now: u64,
) {
    let subject = match action {
        Action::Failed => "Undelivered Mail Returned to Sender",
        Action::Delayed { .. } => "Delayed Mail (still being retried)",
        Action::Relayed => "Successful Mail Delivery Report",
    };
    let _ = write!(
        out,
        "Date: {date}\r\n\
         From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n\
         To: <{to}>\r\n\
         Subject: {subject}\r\n\
         Message-ID: <{now}.{rand:016x}@{hostname}>\r\n\
         Auto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status;\r\n\
         \tboundary=\"{boundary}\"\r\n\
         \r\n\
         This is a MIME-encapsulated message.\r\n\
         \r\n",
        date = rfc5322_date(now),
        to = original.sender,
        rand = fastrand::u64(..),
    );
}

fn write_text(
    out: &mut String,
    hostname: &str,
    original: &Envelope,
    recipients: &[&Recipient],
    action: Action,
    boundary: &str,
) {
    let _ = write!(
        out,
        "--{boundary}\r\nContent-Description: Notification\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n\
         This is the mail system at host {hostname}.\r\n\r\n"
    );
    let queued = rfc5322_date(original.received);
    match action {
        Action::Failed => {
            let _ = write!(
                out,
                "Your message, queued here on {queued} as {id}, could not be\r\n\
                 delivered to the recipients below. The headers of your message are\r\n\
                 attached.\r\n\r\n",
                id = original.id
            );
        }
        Action::Delayed { until } => {
            let _ = write!(
                out,
                "Your message, queued here on {queued} as {id}, has not been\r\n\
                 delivered yet to the recipients below. Delivery will be retried until\r\n\
                 {until}; you do not need to send it again.\r\n\r\n",
                id = original.id,
                until = rfc5322_date(until)
            );
        }
        Action::Relayed => {
            let _ = write!(
                out,
                "Your message, queued here on {queued} as {id}, was relayed to the\r\n\
                 recipients below. The next system does not offer delivery notifications,\r\n\
                 so this is the last report you will get about it.\r\n\r\n",
                id = original.id
            );
        }
    }
    for r in recipients {
        let reply = reply_of(&r.status).map(split_reply);
        let detail = match (reply, &r.status) {
            (Some((Some(mta), text)), _) => format!("host {mta} said: {text}"),
            (Some((None, text)), _) => text.to_string(),
            (None, _) if action == Action::Failed => "delivery time expired".into(),
            (None, _) if action == Action::Relayed => "relayed".into(),
            (None, _) => "not delivered yet".into(),
        };
        let detail = if action == Action::Failed && r.status.is_open() && reply.is_some() {
            format!("delivery time expired; last reply: {detail}")
        } else {
            detail
        };
        let _ = write!(out, "<{}>: {}\r\n", seven_bit(&r.address), clean(&detail));
    }
    out.push_str("\r\n");
}

fn write_status(
    out: &mut String,
    hostname: &str,
    original: &Envelope,
    recipients: &[&Recipient],
    action: Action,
    boundary: &str,
) {
    let _ = write!(
        out,
        "--{boundary}\r\nContent-Description: Delivery report\r\n\
         Content-Type: message/delivery-status\r\n\r\n\
"
    );
    if let Some(envid) = &original.envid {
        let _ = write!(out, "Original-Envelope-Id: {}\r\n", printable(envid));
    }
    let _ = write!(out, "Reporting-MTA: dns; {hostname}\r\n");
    if let Some(client) = original.client.split_whitespace().next() {
        let _ = write!(out, "Received-From-MTA: dns; {}\r\n", clean(client));
    }
    let _ = write!(out, "Arrival-Date: {}\r\n", rfc5322_date(original.received));
    for r in recipients {
        let reply = reply_of(&r.status).map(split_reply);
        out.push_str("\r\n");
        if let Some(orcpt) = &r.orcpt {
            // Decoded, as Postfix reports it; what is not printable stays in xtext.
            let _ = write!(
                out,
                "Original-Recipient: {};{}\r\n",
                orcpt.kind,
                printable(&orcpt.address)
            );
        }
        let _ = write!(
            out,
            "Final-Recipient: {}\r\nAction: {}\r\nStatus: {}\r\n",
            address_field(&r.address),
            action.word(),
            status_code(&r.status, action)
        );
        if let Some((Some(mta), _)) = reply {
            let _ = write!(out, "Remote-MTA: dns; {}\r\n", clean(mta));
        }
        if let Some((_, text)) = reply {
            let kind = if starts_with_code(text) {
                "smtp"
            } else {
                "X-edgemx"
            };
            let _ = write!(out, "Diagnostic-Code: {kind}; {}\r\n", clean(text));
        }
        if let RcptStatus::Deferred { at, .. } | RcptStatus::Failed { at, .. } = r.status {
            let _ = write!(out, "Last-Attempt-Date: {}\r\n", rfc5322_date(at));
        }
        if let Action::Delayed { until } = action {
            let _ = write!(out, "Will-Retry-Until: {}\r\n", rfc5322_date(until));
        }
    }
    out.push_str("\r\n");
}

/// RFC 3463 status: the reply's enhanced code when it has one, else one derived from the
/// basic code; `4.4.7` for recipients still open at expiry without a better code.
fn status_code(status: &RcptStatus, action: Action) -> String {
    if action == Action::Failed && status.is_open() {
        // Still open when we gave up: expiry is the reason, whatever the last reply said.
        return "4.4.7".into();
    }
    let reply = reply_of(status).map(|r| split_reply(r).1);
    if let Some(code) = reply.and_then(enhanced_code) {
        return code.to_string();
    }
    let class = reply
        .and_then(|r| r.bytes().next())
        .filter(|c| *c == b'4' || *c == b'5');
    match (action, status) {
        (Action::Failed, RcptStatus::Failed { .. }) if class == Some(b'4') => "4.0.0".into(),
        (Action::Failed, RcptStatus::Failed { .. }) => "5.0.0".into(),
        (Action::Failed, _) => "4.4.7".into(),
        (Action::Delayed { .. }, _) => "4.0.0".into(),
        (Action::Relayed, _) => "2.0.0".into(),
    }
}

mod text;
use text::*;

#[cfg(test)]
mod tests;
