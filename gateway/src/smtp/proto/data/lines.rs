//! RFC 5322 §2.1.1 line length: at most 998 octets per line, CRLF excluded. A message
//! with longer lines has them broken Postfix's way (`limits.long_lines = "fold"`, the
//! default: CRLF SPACE inserted, as `smtp_line_length_limit` does) or is refused
//! (`"reject"`). Folding runs on the stored, CRLF-clean message before we sign it (so our
//! signature covers exactly the bytes relayed) and after we verified the sender's
//! signatures (so the verdict is on what the sender signed).

/// The longest line RFC 5322 allows, CRLF excluded.
pub const MAX_LINE: usize = 998;

/// Length of the longest line of `message` (CRLF-terminated lines), CRLF excluded.
pub fn longest_line(message: &[u8]) -> usize {
    message
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line).len())
        .max()
        .unwrap_or(0)
}

/// `message` with every line longer than `max` broken by CRLF SPACE so that no line is
/// longer than `max`; `None` when nothing needed breaking. A break never splits a UTF-8
/// sequence.
pub fn fold(message: &[u8], max: usize) -> Option<Vec<u8>> {
    if longest_line(message) <= max {
        return None;
    }
    let max = max.max(8);
    let mut out = Vec::with_capacity(message.len() + message.len() / max * 3 + 3);
    for (i, line) in message.split(|&b| b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let (mut rest, cr) = match line.strip_suffix(b"\r") {
            Some(text) => (text, true),
            None => (line, false),
        };
        // Continuation lines start with the inserted space.
        let mut room = max;
        while rest.len() > room {
            let mut cut = room;
            while cut > 1 && (rest[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            out.extend_from_slice(&rest[..cut]);
            out.extend_from_slice(b"\r\n ");
            rest = &rest[cut..];
            room = max - 1;
        }
        out.extend_from_slice(rest);
        if cr {
            out.push(b'\r');
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_line_excludes_crlf() {
        assert_eq!(longest_line(b""), 0);
        assert_eq!(longest_line(b"ab\r\ncdef\r\n"), 4);
        let long = format!("a: b\r\n\r\n{}\r\nshort\r\n", "x".repeat(999));
        assert_eq!(longest_line(long.as_bytes()), 999);
    }

    #[test]
    fn lines_within_the_limit_are_left_alone() {
        let ok = format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(MAX_LINE));
        assert_eq!(fold(ok.as_bytes(), MAX_LINE), None);
    }

    #[test]
    fn long_lines_are_broken_with_crlf_space_and_nothing_is_lost() {
        let body = "z".repeat(2500);
        let message = format!("Subject: x\r\n\r\n{body}\r\nend\r\n");
        let folded = fold(message.as_bytes(), MAX_LINE).unwrap();
        assert!(longest_line(&folded) <= MAX_LINE);
        let text = String::from_utf8(folded).unwrap();
        assert!(text.ends_with("\r\nend\r\n"), "{text}");
        // Undoing the folds gives the original back.
        assert_eq!(text.replace("\r\n ", ""), message);
        assert_eq!(text.matches("\r\n ").count(), 2);
    }

    #[test]
    fn a_break_never_splits_a_utf8_sequence() {
        let message = format!("{}\r\n", "é".repeat(600));
        let folded = fold(message.as_bytes(), MAX_LINE).unwrap();
        let text = String::from_utf8(folded).expect("still UTF-8");
        assert!(longest_line(text.as_bytes()) <= MAX_LINE);
        assert_eq!(text.replace("\r\n ", ""), message);
    }
}
