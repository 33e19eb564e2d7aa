//! BDAT chunks (RFC 3030): no dot handling and no end marker, but the same line-ending
//! policy and size accounting as DATA. A CRLF may be split across two chunks.

use super::scan::scan;
use super::{DataError, DataSummary, LineEndings, Sink};

#[derive(Debug, Clone)]
pub struct ChunkChecker {
    sink: Sink,
    /// Reject mode: the last chunk ended in CR, not yet stored.
    pending_cr: bool,
    /// Normalize mode: the last chunk ended in CR, already stored as CRLF; a leading LF in the
    /// next chunk completes that pair and is skipped.
    skip_lf: bool,
}

impl ChunkChecker {
    pub fn new(max_size: u64, line_endings: LineEndings) -> Self {
        ChunkChecker {
            sink: Sink::new(max_size, line_endings),
            pending_cr: false,
            skip_lf: false,
        }
    }

    /// Appends the checked chunk to `out` until an error or the size limit is hit.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let Some(&first) = chunk.first() else { return };
        let mut i = 0;
        if self.skip_lf {
            self.skip_lf = false;
            i = usize::from(first == b'\n');
        } else if self.pending_cr {
            self.pending_cr = false;
            if first == b'\n' {
                self.sink.store(b"\r\n", out);
                i = 1;
            } else {
                self.sink.bare(b"", out);
            }
        }
        let mut run = i;
        while i < chunk.len() {
            let (n, high) = scan(&chunk[i..]);
            self.sink.has_8bit |= high;
            i += n;
            match chunk.get(i) {
                None => break,
                Some(b'\r') if chunk.get(i + 1) == Some(&b'\n') => {
                    i += 2;
                    continue;
                }
                Some(b'\r') if i + 1 == chunk.len() => {
                    self.sink.store(&chunk[run..i], out);
                    match self.sink.line_endings {
                        LineEndings::Normalize => {
                            self.sink.store(b"\r\n", out);
                            self.skip_lf = true;
                        }
                        LineEndings::Reject => self.pending_cr = true,
                    }
                }
                Some(b'\r' | b'\n') => self.sink.bare(&chunk[run..i], out),
                Some(_) => self.sink.nul(&chunk[run..i], out),
            }
            i += 1;
            run = i;
        }
        self.sink.store(&chunk[run..], out);
    }

    /// The result after the LAST chunk. A CR ending the last chunk is bare.
    pub fn finish(&self) -> Result<DataSummary, DataError> {
        match (self.sink.error, self.pending_cr) {
            (None, true) => Err(DataError::BareLineEnding),
            _ => self.sink.summary(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        chunks: &[&[u8]],
        mode: LineEndings,
        max: u64,
    ) -> (Vec<u8>, Result<DataSummary, DataError>) {
        let mut checker = ChunkChecker::new(max, mode);
        let mut out = Vec::new();
        for chunk in chunks {
            checker.feed(chunk, &mut out);
        }
        (out, checker.finish())
    }

    const BOTH: [LineEndings; 2] = [LineEndings::Reject, LineEndings::Normalize];

    #[test]
    fn clean_chunks_pass_through_even_with_dots() {
        for mode in BOTH {
            let (out, res) = check(&[b"a\r\n.\r\n", b"", b"..b\r", b"\nc\xc3\xa9"], mode, 100);
            assert_eq!(out, b"a\r\n.\r\n..b\r\nc\xc3\xa9");
            assert_eq!(
                res,
                Ok(DataSummary {
                    size: 14,
                    has_8bit: true
                })
            );
        }
    }

    #[test]
    fn crlf_split_across_chunks_at_every_point() {
        let msg = b"ab\r\ncd\r\n\r\nef";
        for mode in BOTH {
            for k in 0..=msg.len() {
                let (out, res) = check(&[&msg[..k], &msg[k..]], mode, 100);
                assert_eq!(
                    (out.as_slice(), res.map(|s| s.size)),
                    (&msg[..], Ok(12)),
                    "split {k}"
                );
            }
        }
    }

    #[test]
    fn bare_endings_are_rejected_or_normalized() {
        for input in [&b"a\rb"[..], b"a\nb", b"a\r\rb", b"a\n\rb"] {
            for k in 0..=input.len() {
                let (_, res) = check(&[&input[..k], &input[k..]], LineEndings::Reject, 100);
                assert_eq!(res, Err(DataError::BareLineEnding), "{input:?} split {k}");
                let (out, res) = check(&[&input[..k], &input[k..]], LineEndings::Normalize, 100);
                let lines = out.split(|&b| b == b'\n').count();
                assert!(
                    res.is_ok() && !out.windows(2).any(|w| w == b"\r\r"),
                    "{input:?} {out:?}"
                );
                assert_eq!(
                    lines,
                    input.iter().filter(|&&b| b == b'\r' || b == b'\n').count() + 1
                );
            }
        }
    }

    #[test]
    fn cr_ending_the_last_chunk() {
        assert_eq!(
            check(&[b"a\r"], LineEndings::Reject, 100).1,
            Err(DataError::BareLineEnding)
        );
        let (out, res) = check(&[b"a\r", b""], LineEndings::Normalize, 100);
        assert_eq!(
            (out.as_slice(), res.map(|s| s.size)),
            (&b"a\r\n"[..], Ok(3))
        );
    }

    #[test]
    fn nul_is_rejected_or_dropped() {
        assert_eq!(
            check(&[b"a\0b"], LineEndings::Reject, 100).1,
            Err(DataError::Nul)
        );
        let (out, res) = check(&[b"\r\n\0.\r\n"], LineEndings::Normalize, 100);
        assert_eq!((out.as_slice(), res.is_ok()), (&b"\r\n.\r\n"[..], true));
    }

    #[test]
    fn size_limit_spans_chunks() {
        assert!(
            check(&[b"12345", b"67890"], LineEndings::Reject, 10)
                .1
                .is_ok()
        );
        let (out, res) = check(&[b"12345", b"67890", b"1"], LineEndings::Reject, 10);
        assert_eq!((out.len(), res), (10, Err(DataError::TooBig)));
    }
}
