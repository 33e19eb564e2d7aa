use super::*;

const BOTH: [LineEndings; 2] = [LineEndings::Reject, LineEndings::Normalize];

/// The SMTP smuggling end-of-data variants (facts.md). None of them ends DATA.
const SMUGGLING: [&[u8]; 11] = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\r\n\x00.\r\n",
];

#[derive(Debug, PartialEq)]
struct Decoded {
    /// `Some(n)` if the end marker was found after `n` input bytes.
    consumed: Option<usize>,
    out: Vec<u8>,
    outcome: Result<DataSummary, DataError>,
}

/// Feeds `input` in pieces cut at `cuts` (ascending), as a session reading a socket would:
/// after `End`, the rest is not fed.
fn decode_cut(input: &[u8], mode: LineEndings, max: u64, cuts: &[usize]) -> Decoded {
    let mut decoder = DataDecoder::new(max, mode);
    let mut out = Vec::new();
    let mut start = 0;
    let mut consumed = None;
    for &end in cuts.iter().chain([input.len()].iter()) {
        if let Feed::End { consumed: n } = decoder.feed(&input[start..end], &mut out) {
            consumed = Some(start + n);
            break;
        }
        start = end;
    }
    let outcome = decoder.outcome();
    if outcome.is_err() {
        // After an error `out` holds whatever was stored before it, which depends on where
        // the input was cut; the session discards it.
        out.clear();
    }
    Decoded {
        consumed,
        out,
        outcome,
    }
}

fn decode(input: &[u8], mode: LineEndings) -> Decoded {
    decode_cut(input, mode, u64::MAX, &[])
}

/// Whole, at every single split point, and byte by byte: all must agree.
fn decode_every_way(input: &[u8], mode: LineEndings, max: u64) -> Decoded {
    let whole = decode_cut(input, mode, max, &[]);
    for k in 0..=input.len() {
        assert_eq!(
            decode_cut(input, mode, max, &[k]),
            whole,
            "{input:?} split at {k}"
        );
    }
    let bytewise: Vec<usize> = (1..input.len()).collect();
    assert_eq!(
        decode_cut(input, mode, max, &bytewise),
        whole,
        "{input:?} byte by byte"
    );
    whole
}

/// Where a correct decoder must stop: after the first CRLF "." CRLF, counting a CRLF
/// before the first byte.
fn true_end(input: &[u8]) -> Option<usize> {
    let framed = [&b"\r\n"[..], input].concat();
    framed
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|j| j + 3)
}

fn is_crlf_clean(data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, &b)| match b {
        b'\r' => data.get(i + 1) == Some(&b'\n'),
        b'\n' => i > 0 && data[i - 1] == b'\r',
        0 => false,
        _ => true,
    })
}

fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    dot_stuff(body, &mut out);
    out
}

#[test]
fn ends_at_the_marker_and_leaves_the_next_command() {
    for mode in BOTH {
        let d = decode_every_way(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", mode, 1000);
        assert_eq!(d.consumed, Some(24));
        assert_eq!(d.out, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(
            d.outcome,
            Ok(DataSummary {
                size: 21,
                has_8bit: false
            })
        );
    }
}

#[test]
fn a_first_line_of_dot_is_an_empty_message() {
    let d = decode_every_way(b".\r\nRSET\r\n", LineEndings::Reject, 1000);
    assert_eq!((d.consumed, d.out.len()), (Some(3), 0));
    assert_eq!(
        d.outcome,
        Ok(DataSummary {
            size: 0,
            has_8bit: false
        })
    );
}

#[test]
fn leading_dots_are_unstuffed() {
    let d = decode_every_way(
        b"..a\r\n..\r\n...\r\nb.c\r\n.\r\n",
        LineEndings::Reject,
        1000,
    );
    assert_eq!(d.out, b".a\r\n.\r\n..\r\nb.c\r\n");
    assert_eq!(d.consumed, Some(22));
}

#[test]
fn smuggled_end_markers_do_not_end_data() {
    for variant in SMUGGLING {
        for prefix in [&b""[..], b"a", b"a\r\n"] {
            let input = [prefix, variant, &b"MAIL FROM:<x@evil>\r\n.\r\nNEXT"[..]].concat();
            let end = input.len() - 4;
            for mode in BOTH {
                let d = decode_every_way(&input, mode, 1_000_000);
                assert_eq!(d.consumed, Some(end), "{input:?} {mode:?}");
                let expected = match mode {
                    LineEndings::Normalize => d.outcome.map(|_| ()),
                    LineEndings::Reject if variant.contains(&0) => Err(DataError::Nul),
                    LineEndings::Reject => Err(DataError::BareLineEnding),
                };
                assert_eq!(d.outcome.map(|_| ()), expected, "{input:?} {mode:?}");
                if mode == LineEndings::Normalize {
                    assert!(
                        d.outcome.is_ok() && is_crlf_clean(&d.out),
                        "{input:?} -> {:?}",
                        d.out
                    );
                    // What we relay ends where we ended: the smuggled command stays data.
                    let relayed = stuffed(&d.out);
                    let again = decode(&relayed, LineEndings::Reject);
                    assert_eq!(
                        (again.consumed, again.out),
                        (Some(relayed.len()), d.out.clone())
                    );
                }
            }
        }
    }
}

#[test]
fn normalize_turns_bare_endings_into_crlf_and_keeps_lone_dots() {
    let d = decode_every_way(b"a\nb\rc\r\n.\nd\r\n.\r\n", LineEndings::Normalize, 1000);
    assert_eq!(d.out, b"a\r\nb\r\nc\r\n.\r\nd\r\n");
    assert_eq!(d.outcome.map(|s| s.size), Ok(15));
}

#[test]
fn nul_is_rejected_or_dropped() {
    let r = decode_every_way(b"a\0b\r\n.\r\n", LineEndings::Reject, 1000);
    assert_eq!(r.outcome, Err(DataError::Nul));
    let n = decode_every_way(b"a\0b\r\n\0.\r\n.\r\n", LineEndings::Normalize, 1000);
    assert_eq!(n.out, b"ab\r\n.\r\n");
}

#[test]
fn size_limit_counts_stored_bytes_and_keeps_scanning() {
    let input = b"..12345678\r\n.\r\nQUIT";
    let fits = decode_every_way(input, LineEndings::Reject, 11);
    assert_eq!(fits.outcome.map(|s| s.size), Ok(11));
    let over = decode_every_way(input, LineEndings::Reject, 10);
    assert_eq!(
        (over.consumed, over.outcome),
        (Some(15), Err(DataError::TooBig))
    );
    for cut in 0..input.len() {
        let mut decoder = DataDecoder::new(10, LineEndings::Normalize);
        let mut out = Vec::new();
        decoder.feed(&input[..cut], &mut out);
        decoder.feed(&input[cut..], &mut out);
        assert!(out.len() <= 10, "cut at {cut}: {out:?}");
    }
}

#[test]
fn first_error_wins() {
    let d = decode_every_way(b"123456789\n\r\n.\r\n", LineEndings::Reject, 5);
    assert_eq!(d.outcome, Err(DataError::TooBig));
    let d = decode_every_way(b"1\n23456789\r\n.\r\n", LineEndings::Reject, 5);
    assert_eq!(d.outcome, Err(DataError::BareLineEnding));
}

#[test]
fn eight_bit_content_is_tracked() {
    let d = decode_every_way(
        "caf\u{e9} and more text\r\n.\r\n".as_bytes(),
        LineEndings::Reject,
        100,
    );
    assert_eq!(d.outcome.map(|s| s.has_8bit), Ok(true));
    let d = decode_every_way(
        b"plain ascii, long enough for words\r\n.\r\n",
        LineEndings::Reject,
        100,
    );
    assert_eq!(d.outcome.map(|s| s.has_8bit), Ok(false));
}

#[test]
fn unfinished_and_finished_decoders() {
    let mut decoder = DataDecoder::new(100, LineEndings::Reject);
    let mut out = Vec::new();
    assert_eq!(decoder.feed(b"a\r\n.\r", &mut out), Feed::NeedMore);
    assert_eq!(decoder.outcome(), Err(DataError::Incomplete));
    assert_eq!(decoder.feed(b"\nQUIT", &mut out), Feed::End { consumed: 1 });
    assert_eq!(decoder.feed(b"more", &mut out), Feed::End { consumed: 0 });
    assert!(decoder.is_done());
    assert_eq!(out, b"a\r\n");
}

#[test]
fn errors_map_to_permanent_replies() {
    assert_eq!(DataError::TooBig.reply().code, 552);
    assert_eq!(
        DataError::BareLineEnding.reply().status,
        crate::smtp::proto::EnhancedStatus(5, 6, 0)
    );
    assert!(DataError::Nul.reply().is_permanent());
}

/// xorshift64: deterministic, no crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, alphabet: &[u8], max_len: usize) -> Vec<u8> {
        let len = self.below(max_len + 1);
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }

    fn cuts(&mut self, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..self.below(6)).map(|_| self.below(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }
}

#[test]
fn fuzz_random_splits_agree_and_the_end_is_exact() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let alphabet = b"\r\n\r\n..\0ab\xc3";
    for _ in 0..20_000 {
        let input = rng.bytes(alphabet, 40);
        for mode in BOTH {
            let whole = decode_cut(&input, mode, 30, &[]);
            assert_eq!(whole.consumed, true_end(&input), "{input:?}");
            let cuts = rng.cuts(input.len());
            assert_eq!(
                decode_cut(&input, mode, 30, &cuts),
                whole,
                "{input:?} cut at {cuts:?}"
            );
            if mode == LineEndings::Normalize && whole.outcome.is_ok() {
                assert!(is_crlf_clean(&whole.out), "{input:?} -> {:?}", whole.out);
                let relayed = stuffed(&whole.out);
                let again = decode(&relayed, LineEndings::Reject);
                assert_eq!(
                    (again.consumed, &again.out),
                    (Some(relayed.len()), &whole.out),
                    "{input:?}"
                );
            }
        }
    }
}

#[test]
fn fuzz_dot_stuffing_round_trips() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    for _ in 0..20_000 {
        let lines: Vec<Vec<u8>> = (0..rng.below(8))
            .map(|_| rng.bytes(b"..ab \xc3\xa9", 12))
            .collect();
        let body: Vec<u8> = lines
            .iter()
            .flat_map(|l| [&l[..], &b"\r\n"[..]].concat())
            .collect();
        let relayed = stuffed(&body);
        let cuts = rng.cuts(relayed.len());
        let d = decode_cut(&relayed, LineEndings::Reject, u64::MAX, &cuts);
        assert_eq!(d.consumed, Some(relayed.len()), "{body:?}");
        assert_eq!(d.out, body);
        assert_eq!(d.outcome.map(|s| s.size), Ok(body.len() as u64));
    }
}
