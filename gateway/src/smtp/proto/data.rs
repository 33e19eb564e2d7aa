//! Message data: the DATA decoder (after `354`), the BDAT chunk checker and dot-stuffing for
//! relay. Bytes in, message bytes out; no I/O.
//!
//! The security property this module exists for: only CRLF "." CRLF ends DATA, the data
//! beginning as if preceded by CRLF. Bare CR, bare LF and NUL never start or end a line for
//! that purpose. With [`LineEndings::Reject`] they fail the message (`554 5.6.0`); with
//! [`LineEndings::Normalize`] bare CR and bare LF are stored as CRLF and NUL is dropped.
//! Either way the stored message is CRLF-clean and NUL-free, so a next hop that is lax about
//! line endings or strips NULs cannot be made to see an end of data we did not see.
//!
//! Dot-unstuffing removes the first "." of a line (a line that follows a real CRLF). A "."
//! followed by a bare line ending is kept as data, so such a would-be terminator survives
//! visibly and is re-stuffed on relay.

mod chunk;
pub mod lines;
mod scan;
mod stuff;

pub use chunk::ChunkChecker;
pub use stuff::dot_stuff;

use super::reply::Reply;
use scan::scan;

/// What to do with a CR or LF that is not part of a CRLF pair, and with NUL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineEndings {
    Reject,
    Normalize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All of the input was consumed; the end marker has not been seen.
    NeedMore,
    /// The end marker ends at `input[consumed - 1]`; the bytes after it are the next command.
    End { consumed: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSummary {
    /// Bytes stored: unstuffed, normalized, the end marker excluded.
    pub size: u64,
    pub has_8bit: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("message exceeds the size limit")]
    TooBig,
    #[error("bare CR or LF in message data")]
    BareLineEnding,
    #[error("NUL in message data")]
    Nul,
    /// `outcome` was asked before the end: a bug in the caller, not the peer.
    #[error("message data not terminated")]
    Incomplete,
}

impl DataError {
    pub fn reply(&self) -> Reply {
        match self {
            DataError::TooBig => Reply::message_too_big(),
            DataError::BareLineEnding => Reply::bare_line_ending(),
            DataError::Nul => Reply::nul_in_data(),
            DataError::Incomplete => Reply::local_error(),
        }
    }
}

/// Decodes DATA. After the first error it stops storing but keeps looking for the end
/// marker, so the session stays in step with the client.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    state: State,
    sink: Sink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After CRLF, or at the start.
    LineStart,
    Text,
    /// A CR inside a line, not yet stored.
    Cr,
    /// A "." at the start of a line, not yet stored.
    Dot,
    /// "." CR at the start of a line, not yet stored.
    DotCr,
    Done,
}

impl DataDecoder {
    pub fn new(max_size: u64, line_endings: LineEndings) -> Self {
        DataDecoder {
            state: State::LineStart,
            sink: Sink::new(max_size, line_endings),
        }
    }

    /// Consumes bytes of `input` and appends the unstuffed message to `out` until an error
    /// or the size limit is hit. Stops right after the end marker: the bytes after it belong
    /// to the next command and are not consumed.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        if self.state == State::Done {
            return Feed::End { consumed: 0 };
        }
        // input[run..i] has been examined and goes to `out` verbatim, in one copy.
        let mut run = 0;
        let mut i = 0;
        while let Some(&b) = input.get(i) {
            match self.state {
                State::LineStart if b == b'.' => {
                    self.sink.store(&input[run..i], out);
                    i += 1;
                    run = i;
                    self.state = State::Dot;
                }
                State::LineStart | State::Text => (i, run) = self.text(input, i, run, out),
                State::Cr => {
                    if b == b'\n' {
                        self.sink.store(b"\r\n", out);
                        i += 1;
                        self.state = State::LineStart;
                    } else {
                        self.sink.bare(b"", out);
                        self.state = State::Text;
                    }
                    run = i;
                }
                State::Dot => match b {
                    b'\r' => {
                        i += 1;
                        run = i;
                        self.state = State::DotCr;
                    }
                    b'\n' => {
                        self.sink.bare(b".", out);
                        i += 1;
                        run = i;
                        self.state = State::Text;
                    }
                    // The stuffing dot is dropped: `run` already starts after it.
                    _ => self.state = State::Text,
                },
                State::DotCr if b == b'\n' => {
                    self.state = State::Done;
                    return Feed::End { consumed: i + 1 };
                }
                State::DotCr => {
                    self.sink.bare(b".", out);
                    self.state = State::Text;
                    run = i;
                }
                State::Done => return Feed::End { consumed: i },
            }
        }
        self.sink.store(&input[run..], out);
        Feed::NeedMore
    }

    /// The result once [`Feed::End`] was returned.
    pub fn outcome(&self) -> Result<DataSummary, DataError> {
        if self.state == State::Done {
            self.sink.summary()
        } else {
            Err(DataError::Incomplete)
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// From `input[i]`, inside a line: copies up to the next CR, LF or NUL and deals with it.
    /// Returns the new `i` and `run`.
    fn text(&mut self, input: &[u8], i: usize, run: usize, out: &mut Vec<u8>) -> (usize, usize) {
        self.state = State::Text;
        let (n, high) = scan(&input[i..]);
        self.sink.has_8bit |= high;
        let i = i + n;
        match (input.get(i), input.get(i + 1)) {
            (None, _) => return (i, run),
            (Some(b'\r'), Some(b'\n')) => {
                self.state = State::LineStart;
                return (i + 2, run);
            }
            (Some(b'\r'), None) => {
                self.sink.store(&input[run..i], out);
                self.state = State::Cr;
            }
            (Some(b'\r' | b'\n'), _) => self.sink.bare(&input[run..i], out),
            (Some(_), _) => self.sink.nul(&input[run..i], out),
        }
        (i + 1, i + 1)
    }
}

/// Size accounting and line-ending policy shared by DATA and BDAT.
#[derive(Debug, Clone)]
struct Sink {
    max_size: u64,
    line_endings: LineEndings,
    size: u64,
    has_8bit: bool,
    error: Option<DataError>,
}

impl Sink {
    fn new(max_size: u64, line_endings: LineEndings) -> Self {
        Sink {
            max_size,
            line_endings,
            size: 0,
            has_8bit: false,
            error: None,
        }
    }

    fn store(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        if self.error.is_some() || bytes.is_empty() {
            return;
        }
        let size = self.size.saturating_add(bytes.len() as u64);
        if size > self.max_size {
            self.error = Some(DataError::TooBig);
            return;
        }
        out.extend_from_slice(bytes);
        self.size = size;
    }

    /// Stores `before`, then deals with the bare CR or LF that followed it.
    fn bare(&mut self, before: &[u8], out: &mut Vec<u8>) {
        self.store(before, out);
        match self.line_endings {
            LineEndings::Normalize => self.store(b"\r\n", out),
            LineEndings::Reject => self.fail(DataError::BareLineEnding),
        }
    }

    /// Stores `before`, then deals with the NUL that followed it.
    fn nul(&mut self, before: &[u8], out: &mut Vec<u8>) {
        self.store(before, out);
        if self.line_endings == LineEndings::Reject {
            self.fail(DataError::Nul);
        }
    }

    fn fail(&mut self, error: DataError) {
        self.error.get_or_insert(error);
    }

    fn summary(&self) -> Result<DataSummary, DataError> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(DataSummary {
                size: self.size,
                has_8bit: self.has_8bit,
            }),
        }
    }
}

#[cfg(test)]
mod tests;
