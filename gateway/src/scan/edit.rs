//! The changes a verdict makes to the message's header: fields added (at the top, as a
//! trace field would be), fields removed (every occurrence, continuation lines included)
//! and the subject rewritten. Pure functions over the message bytes.

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Edits {
    pub add: Vec<(String, String)>,
    pub remove: Vec<String>,
    pub subject: Option<String>,
}

impl Edits {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty() && self.subject.is_none()
    }

    /// Applies the edits to `message` (CRLF line endings, header then blank line).
    pub fn apply(&self, message: &mut Vec<u8>) {
        if self.is_empty() {
            return;
        }
        let header_end = find(message, b"\r\n\r\n").map_or(message.len(), |at| at + 2);
        let (header, body) = message.split_at(header_end);
        let mut remove: Vec<String> = self.remove.iter().map(|n| n.to_ascii_lowercase()).collect();
        if self.subject.is_some() {
            remove.push("subject".into());
        }
        let mut out = Vec::with_capacity(message.len() + 256);
        for (name, value) in &self.add {
            field(&mut out, name, value);
        }
        if let Some(subject) = &self.subject {
            field(&mut out, "Subject", subject);
        }
        let mut dropping = false;
        for line in header.split_inclusive(|&b| b == b'\n') {
            let continuation = line.first().is_some_and(|b| *b == b' ' || *b == b'\t');
            if !continuation {
                let name = line.iter().position(|&b| b == b':').map(|at| {
                    String::from_utf8_lossy(&line[..at])
                        .trim()
                        .to_ascii_lowercase()
                });
                dropping = name.is_some_and(|n| remove.contains(&n));
            }
            if !dropping {
                out.extend_from_slice(line);
            }
        }
        out.extend_from_slice(body);
        *message = out;
    }
}

/// `Name: value` CRLF, with any line breaks in `value` dropped and long values folded.
fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    let value: String = value.chars().filter(|c| *c != '\r' && *c != '\n').collect();
    let mut line_len = name.len() + 2;
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b":");
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 && line_len + word.len() + 1 > 78 {
            out.extend_from_slice(b"\r\n\t");
            line_len = 1;
        } else {
            out.push(b' ');
            line_len += 1;
        }
        out.extend_from_slice(word.as_bytes());
        line_len += word.len();
    }
    out.extend_from_slice(b"\r\n");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_added_removed_and_the_subject_rewritten() {
        let mut message = b"Received: x\r\nX-Remove-Me: a\r\n\tmore\r\nSubject: hi\r\n\
                            From: a@b\r\n\r\nX-Remove-Me: body stays\r\n"
            .to_vec();
        Edits {
            add: vec![("X-Spam".into(), "Yes".into())],
            remove: vec!["x-remove-me".into()],
            subject: Some("*** SPAM *** hi".into()),
        }
        .apply(&mut message);
        assert_eq!(
            String::from_utf8(message).unwrap(),
            "X-Spam: Yes\r\nSubject: *** SPAM *** hi\r\nReceived: x\r\nFrom: a@b\r\n\r\n\
             X-Remove-Me: body stays\r\n"
        );
    }

    #[test]
    fn long_values_are_folded_and_breaks_dropped() {
        let mut out = Vec::new();
        let words = ["SYMBOL_NUMBER_ONE(1.00)"; 8].join(" ");
        field(&mut out, "X-Spam-Status", &format!("Yes\r\n{words}"));
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().all(|l| l.len() <= 78), "{text}");
        assert!(text.contains("\r\n\t") && text.ends_with("\r\n") && !text.contains("Yes\r\n"));
    }
}
