//! SMTP replies as values: a code, an enhanced status (RFC 3463, RFC 2034) and text lines.
//!
//! Handlers never spell codes: they use the named constructors in `catalog.rs`. Reply text
//! may echo peer input, so every line is sanitized to printable ASCII on construction and
//! again when written (the fields are public).

use std::fmt;

/// Longest text per reply line. RFC 5321 §4.5.3.1.5 caps a reply line at 512 octets including
/// the code, the enhanced status and CRLF; 480 leaves room for all of them.
const MAX_TEXT: usize = 480;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: EnhancedStatus,
    pub lines: Vec<String>,
}

/// `class.subject.detail`. Class 0 ([`EnhancedStatus::NONE`]) marks a reply written without
/// enhanced status: the greeting, the EHLO/HELO reply and 354 (RFC 2034 §3 covers only 2xx,
/// 4xx and 5xx replies after the greeting and EHLO).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnhancedStatus(pub u8, pub u16, pub u16);

impl EnhancedStatus {
    pub const NONE: EnhancedStatus = EnhancedStatus(0, 0, 0);

    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for EnhancedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Reply {
    pub fn new(code: u16, status: (u8, u16, u16), text: impl Into<String>) -> Reply {
        Reply::multiline(code, status, vec![text.into()])
    }

    pub fn multiline(code: u16, status: (u8, u16, u16), lines: Vec<String>) -> Reply {
        let (class, subject, detail) = status;
        Reply {
            code,
            status: EnhancedStatus(class, subject, detail),
            lines: lines.into_iter().map(|l| sanitize(&l)).collect(),
        }
    }

    /// A reply without enhanced status: the 220 greeting, the EHLO/HELO 250 and 354.
    pub fn plain(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            status: EnhancedStatus::NONE,
            lines: lines.into_iter().map(|l| sanitize(&l)).collect(),
        }
    }

    /// Appends the wire form: `250-2.0.0 a\r\n250 2.0.0 b\r\n`. A reply with no lines is
    /// written as one line with empty text.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let last = self.lines.len().saturating_sub(1);
        for i in 0..=last {
            let text = self.lines.get(i).map_or("", String::as_str);
            let sep = if i == last { ' ' } else { '-' };
            let mut head = format!("{:03}{sep}", self.code);
            if !self.status.is_none() {
                head.push_str(&self.status.to_string());
                if !text.is_empty() {
                    head.push(' ');
                }
            }
            out.extend_from_slice(head.as_bytes());
            out.extend(text.bytes().take(MAX_TEXT).map(clean_byte));
            out.extend_from_slice(b"\r\n");
        }
    }

    /// 2xx and 3xx: the command was accepted (completed or awaiting more).
    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

/// One line for logs: `550 5.7.1 Relay access denied`, multiline text joined with ` / `.
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.code)?;
        if !self.status.is_none() {
            write!(f, " {}", self.status)?;
        }
        for (i, line) in self.lines.iter().enumerate() {
            let sep = if i == 0 { " " } else { " / " };
            let text: String = line
                .bytes()
                .take(MAX_TEXT)
                .map(|b| clean_byte(b) as char)
                .collect();
            write!(f, "{sep}{text}")?;
        }
        Ok(())
    }
}

/// Printable ASCII only: CR, LF and other controls would let echoed peer input forge reply
/// lines; non-ASCII is not allowed in reply text without SMTPUTF8 negotiation.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(MAX_TEXT)
        .map(|c| {
            if c == ' ' || c.is_ascii_graphic() {
                c
            } else {
                '?'
            }
        })
        .collect()
}

fn clean_byte(b: u8) -> u8 {
    if b == b' ' || b.is_ascii_graphic() {
        b
    } else {
        b'?'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(r: &Reply) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn single_line_carries_enhanced_status() {
        assert_eq!(wire(&Reply::new(250, (2, 0, 0), "OK")), "250 2.0.0 OK\r\n");
    }

    #[test]
    fn every_line_of_a_multiline_reply_carries_enhanced_status() {
        let r = Reply::multiline(250, (2, 0, 0), vec!["a".into(), "b".into()]);
        assert_eq!(wire(&r), "250-2.0.0 a\r\n250 2.0.0 b\r\n");
    }

    #[test]
    fn plain_reply_has_no_enhanced_status() {
        let r = Reply::plain(
            250,
            vec!["mx.example".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            wire(&r),
            "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
    }

    #[test]
    fn empty_reply_is_one_line() {
        assert_eq!(
            wire(&Reply::multiline(250, (2, 0, 0), vec![])),
            "250 2.0.0\r\n"
        );
        assert_eq!(wire(&Reply::plain(220, vec![])), "220 \r\n");
    }

    #[test]
    fn peer_text_cannot_inject_lines() {
        let r = Reply::new(501, (5, 5, 4), "bad <x>\r\n250 2.0.0 OK\0\u{e9}");
        assert_eq!(wire(&r), "501 5.5.4 bad <x>??250 2.0.0 OK??\r\n");
        let mut raw = r.clone();
        raw.lines = vec!["a\r\nb".into()];
        assert_eq!(wire(&raw), "501 5.5.4 a??b\r\n");
        assert!(!raw.to_string().contains('\n'));
    }

    #[test]
    fn long_text_is_truncated() {
        let r = Reply::new(250, (2, 0, 0), "x".repeat(2000));
        assert!(wire(&r).len() <= 512);
    }

    #[test]
    fn classes() {
        assert!(Reply::new(354, (2, 0, 0), "").is_positive());
        assert!(Reply::new(451, (4, 3, 0), "").is_transient());
        assert!(Reply::new(554, (5, 6, 0), "").is_permanent());
        assert!(!Reply::new(250, (2, 0, 0), "").is_permanent());
    }

    #[test]
    fn display_is_one_line() {
        let r = Reply::multiline(250, (2, 0, 0), vec!["a".into(), "b".into()]);
        assert_eq!(r.to_string(), "250 2.0.0 a / b");
        assert_eq!(Reply::plain(220, vec!["hi".into()]).to_string(), "220 hi");
    }
}
