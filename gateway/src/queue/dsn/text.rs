//! Field values of a DSN: replies split into host and text, status codes, addresses and
//! diagnostics made 7-bit and one line, the original headers cut and copied with CRLF.

use super::{MAX_DIAGNOSTIC, MAX_HEADERS, SAID};
use crate::envelope::RcptStatus;
use crate::smtp::proto::dsn::xtext;
use std::fmt::Write;

pub(super) fn reply_of(status: &RcptStatus) -> Option<&str> {
    match status {
        RcptStatus::Deferred { reply, .. }
        | RcptStatus::Failed { reply, .. }
        | RcptStatus::Delivered { reply, .. } => Some(reply.as_str()).filter(|r| !r.is_empty()),
        RcptStatus::Pending => None,
    }
}

/// Splits `host said: reply` into the host and the reply.
pub(super) fn split_reply(reply: &str) -> (Option<&str>, &str) {
    match reply.split_once(SAID) {
        Some((mta, rest)) if !mta.is_empty() && !mta.contains(' ') => (Some(mta), rest),
        _ => (None, reply),
    }
}

pub(super) fn starts_with_code(reply: &str) -> bool {
    let b = reply.as_bytes();
    b.len() >= 3 && b[..3].iter().all(u8::is_ascii_digit)
}

/// `5.1.1` out of `550 5.1.1 no such user` or `550-5.1.1 …`.
pub(super) fn enhanced_code(reply: &str) -> Option<&str> {
    if !starts_with_code(reply) {
        return None;
    }
    let token = reply.get(4..)?.split_whitespace().next()?;
    let mut parts = token.split('.');
    let class = parts.next()?;
    let ok = matches!(class, "2" | "4" | "5")
        && parts.clone().count() == 2
        && parts.all(|p| (1..=3).contains(&p.len()) && p.bytes().all(|c| c.is_ascii_digit()));
    ok.then_some(token)
}

/// `rfc822; a@b` or, for a non-ASCII address, `utf-8; ` with RFC 6533's 7-bit encoding.
pub(super) fn address_field(address: &str) -> String {
    if address.is_ascii() && !address.bytes().any(|b| b.is_ascii_control()) {
        format!("rfc822; {address}")
    } else {
        format!("utf-8; {}", seven_bit(address))
    }
}

/// RFC 6533 `utf-8-addr-xtext`: characters outside printable ASCII, and `\`, `+`, `=`,
/// become `\x{HEX}`; plain ASCII addresses are left as they are.
pub(super) fn seven_bit(address: &str) -> String {
    if address.is_ascii() && !address.bytes().any(|b| b.is_ascii_control()) {
        return address.to_string();
    }
    let mut out = String::with_capacity(address.len() * 2);
    for c in address.chars() {
        if c.is_ascii_graphic() && !matches!(c, '\\' | '+' | '=') {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", c as u32);
        }
    }
    out
}

/// `text` as it is when it is printable ASCII, else in xtext.
pub(super) fn printable(text: &str) -> String {
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        text.to_string()
    } else {
        xtext(text)
    }
}

/// Diagnostic text on one 7-bit line: line breaks become spaces, other control and
/// non-ASCII characters `?`, cut at [`MAX_DIAGNOSTIC`].
pub(super) fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DIAGNOSTIC));
    for c in text.chars().take(MAX_DIAGNOSTIC) {
        out.push(match c {
            '\r' | '\n' | '\t' => ' ',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        });
    }
    out.trim_end().to_string()
}

/// The header block of a message: up to (not including) the empty line, cut at a line end
/// if longer than [`MAX_HEADERS`].
pub(super) fn original_headers(body: &[u8]) -> &[u8] {
    let end = find(body, b"\r\n\r\n").map_or(body.len(), |i| i + 2);
    let headers = &body[..end];
    if headers.len() <= MAX_HEADERS {
        return headers;
    }
    let cut = headers[..MAX_HEADERS]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    &headers[..cut]
}

/// Appends `text` with every line ending (CRLF, bare LF, bare CR) written as CRLF.
pub(super) fn copy_lines(out: &mut Vec<u8>, text: &[u8]) {
    let mut lines = text.split(|b| *b == b'\n').peekable();
    while let Some(line) = lines.next() {
        let last = lines.peek().is_none();
        if last && line.is_empty() {
            break;
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        for part in line.split(|b| *b == b'\r') {
            out.extend_from_slice(part);
            out.extend_from_slice(b"\r\n");
        }
    }
}

pub(super) fn new_boundary(now: u64) -> String {
    format!("=_edgemx_{now:x}_{:016x}", fastrand::u64(..))
}

pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    find(haystack, needle).is_some()
}
