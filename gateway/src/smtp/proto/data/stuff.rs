//! Dot-stuffing for relay (RFC 5321 §4.5.2), defensive about what it is given.

use super::scan::scan;

/// Appends `body` as DATA content followed by the end marker: CRLF line endings (a bare CR
/// or LF becomes CRLF), a leading "." doubled, a final CRLF ensured, then ".\r\n". NUL is
/// dropped, so a next hop that strips NULs cannot find an end marker in what we send.
pub fn dot_stuff(body: &[u8], out: &mut Vec<u8>) {
    out.reserve(body.len() + body.len() / 64 + 5);
    let mut line_start = true;
    let mut i = 0;
    while let Some(&b) = body.get(i) {
        if line_start {
            match b {
                0 => {
                    i += 1;
                    continue;
                }
                b'.' => out.push(b'.'),
                _ => {}
            }
            line_start = false;
        }
        let n = scan(&body[i..]).0;
        out.extend_from_slice(&body[i..i + n]);
        i += n;
        match body.get(i) {
            None => break,
            Some(0) => i += 1,
            Some(&b) => {
                out.extend_from_slice(b"\r\n");
                i += if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                line_start = true;
            }
        }
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stuffed(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff(body, &mut out);
        out
    }

    #[test]
    fn leading_dots_are_doubled() {
        assert_eq!(
            stuffed(b".a\r\n..\r\n.\r\nb.\r\n"),
            b"..a\r\n...\r\n..\r\nb.\r\n.\r\n"
        );
    }

    #[test]
    fn final_crlf_is_ensured() {
        assert_eq!(stuffed(b""), b".\r\n");
        assert_eq!(stuffed(b"a"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"."), b"..\r\n.\r\n");
    }

    #[test]
    fn bare_line_endings_become_crlf() {
        assert_eq!(stuffed(b"a\nb\rc\r\r\nd"), b"a\r\nb\r\nc\r\n\r\nd\r\n.\r\n");
        assert_eq!(stuffed(b"x\n.\n"), b"x\r\n..\r\n.\r\n");
        assert_eq!(stuffed(b"x\r.\r"), b"x\r\n..\r\n.\r\n");
    }

    #[test]
    fn nul_cannot_hide_a_leading_dot() {
        assert_eq!(stuffed(b"a\r\n\0.\r\nb\0c"), b"a\r\n..\r\nbc\r\n.\r\n");
        assert_eq!(stuffed(b"\0"), b".\r\n");
    }
}
