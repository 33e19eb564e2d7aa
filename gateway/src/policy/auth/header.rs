//! Editing the header section of a received message in place: removing the
//! Authentication-Results fields that claim our authserv-id (RFC 8601 §5: they can only be
//! forgeries, since we add ours after receipt) and prepending our own fields.
//!
//! The message comes from the strict DATA/BDAT decoder, so lines end in CRLF; a bare LF is
//! still treated as a line end so a normalising configuration cannot confuse the scan.

use std::ops::Range;

/// Removes every `Authentication-Results` field whose authserv-id is `authserv_id`
/// (compared case-insensitively); returns how many were removed. Fields of other
/// authserv-ids, and ARC-Authentication-Results, are kept.
pub fn strip_forged(message: &mut Vec<u8>, authserv_id: &str) -> usize {
    let forged: Vec<Range<usize>> = fields(message)
        .filter(|r| claims(&message[r.clone()], authserv_id))
        .collect();
    // Back to front, so earlier ranges stay valid while later bytes move.
    for range in forged.iter().rev() {
        message.drain(range.clone());
    }
    forged.len()
}

/// Puts `fields` (complete header fields, CRLF-terminated) at the top of `message`.
pub fn prepend(message: &mut Vec<u8>, fields: &[u8]) {
    message.splice(0..0, fields.iter().copied());
}

/// The byte ranges of the header fields, continuation lines included, up to the blank line
/// that ends the header section (or the end of the message).
fn fields(message: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let start = pos;
        let first = line_end(message, start)?;
        if is_blank(&message[start..first]) {
            return None;
        }
        let mut end = first;
        while end < message.len() && matches!(message[end], b' ' | b'\t') {
            end = line_end(message, end)?;
        }
        pos = end;
        Some(start..end)
    })
}

/// The index just past the line starting at `start`; `None` at the end of the message.
fn line_end(message: &[u8], start: usize) -> Option<usize> {
    if start >= message.len() {
        return None;
    }
    Some(
        memchr(b'\n', &message[start..])
            .map(|i| start + i + 1)
            .unwrap_or(message.len()),
    )
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

fn is_blank(line: &[u8]) -> bool {
    matches!(line, b"\r\n" | b"\n")
}

/// True when `field` is an Authentication-Results field naming `authserv_id`.
fn claims(field: &[u8], authserv_id: &str) -> bool {
    let Some(colon) = memchr(b':', field) else {
        return false;
    };
    let name = field[..colon].trim_ascii();
    if !name.eq_ignore_ascii_case(b"authentication-results") {
        return false;
    }
    authserv_id_of(&field[colon + 1..]).is_some_and(|id| id.eq_ignore_ascii_case(authserv_id))
}

/// The authserv-id at the start of an Authentication-Results value (RFC 8601 §2.2): after
/// optional CFWS, a token or quoted string, ended by CFWS or `;`.
fn authserv_id_of(value: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let mut chars = text.chars().peekable();
    let mut depth = 0u32;
    while let Some(&c) = chars.peek() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            c if depth > 0 || c.is_whitespace() => {}
            _ => break,
        }
        chars.next();
    }
    let mut id = String::new();
    if chars.peek() == Some(&'"') {
        chars.next();
        for c in chars.by_ref() {
            if c == '"' {
                break;
            }
            id.push(c);
        }
    } else {
        for c in chars {
            if c == ';' || c == '(' || c.is_whitespace() {
                break;
            }
            id.push(c);
        }
    }
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &[u8] = b"Received: from x\r\n\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n\
Authentication-Results: MX.example.net; spf=pass\r\n\
Authentication-Results: (comment) mx.example.net 1;\r\n\tdkim=pass header.d=evil.test\r\n\
Authentication-Results: other.example.org; dmarc=pass\r\n\
ARC-Authentication-Results: i=1; mx.example.net; spf=pass\r\n\
authentication-results : \"mx.example.net\"; arc=pass\r\n\
Subject: hi\r\n\
\r\n\
Authentication-Results: mx.example.net; in the body, not a header\r\n";

    #[test]
    fn only_fields_claiming_our_id_are_removed() {
        let mut message = MESSAGE.to_vec();
        assert_eq!(strip_forged(&mut message, "mx.example.net"), 3);
        let text = String::from_utf8(message).unwrap();
        assert!(!text.contains("spf=pass\r\nAuth"), "{text}");
        assert!(!text.contains("evil.test"), "{text}");
        assert!(!text.contains("\"; arc=pass"), "{text}");
        assert!(text.contains("Authentication-Results: other.example.org; dmarc=pass\r\n"));
        assert!(text.contains("ARC-Authentication-Results: i=1; mx.example.net; spf=pass\r\n"));
        assert!(
            text.contains("Subject: hi\r\n\r\nAuthentication-Results: mx.example.net; in the body")
        );
        assert!(text.starts_with("Received: from x\r\n\tby y;"));
    }

    #[test]
    fn similar_ids_are_not_ours() {
        let mut message =
            b"Authentication-Results: mx.example.net.evil; spf=pass\r\n\r\nbody\r\n".to_vec();
        assert_eq!(strip_forged(&mut message, "mx.example.net"), 0);
    }

    #[test]
    fn prepend_puts_fields_first() {
        let mut message = b"Subject: x\r\n\r\nbody\r\n".to_vec();
        prepend(&mut message, b"A: 1\r\n");
        assert_eq!(message, b"A: 1\r\nSubject: x\r\n\r\nbody\r\n");
    }
}
