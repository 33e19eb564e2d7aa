//! Mutation fuzzing of the parsers that read untrusted or operator input, on stable Rust:
//! SMTP commands (with their address and parameter parsers), addresses, DATA and BDAT
//! decoding, the configuration parser, the routing map, alias and list loaders, the DSN
//! parameters (with an xtext round trip) and the next-hop reply reader.
//!
//! Each target starts from its committed corpus (`tests/fuzz/corpus/TARGET/`) and runs
//! `EDGEMX_FUZZ_ITERATIONS` mutated inputs (default 2,000: a bounded run for `scripts/test`;
//! `scripts/fuzz` runs far more). A panic is the failure; the input that caused it is written
//! to `target/fuzz-crash-TARGET` so it can be added to the corpus. The mutator is a small
//! deterministic one (bit flips, byte insertions, splices of corpus entries and of tokens
//! the parsers care about), seeded from `EDGEMX_FUZZ_SEED` so a failure repeats.
//! Why not cargo-fuzz: see `scripts/fuzz`.

use edgemx::smtp::proto::{
    ChunkChecker, DataDecoder, Feed, LineEndings, Mailbox, parse_command_with,
};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::Duration;

/// Byte strings the parsers branch on, spliced into inputs.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b".\r\n",
    b"\r\n.\r\n",
    b"\0",
    b"<",
    b">",
    b"@",
    b":",
    b",",
    b"\"",
    b"\\",
    b"[",
    b"]",
    b"=",
    b" ",
    b"IPv6:",
    b"%",
    b"!",
    b"SIZE=",
    b"BODY=8BITMIME",
    b"LAST",
    b"[[route]]\n",
    b"[auth]\n",
    b"= \"",
    b"\xff",
    b"\xc3\xbc",
    b"#",
    b"*.",
];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut input = seeds[rng.below(seeds.len())].clone();
    for _ in 0..=rng.below(8) {
        let at = rng.below(input.len() + 1);
        match rng.below(6) {
            0 if !input.is_empty() => {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
            1 if !input.is_empty() => {
                let end = (at + rng.below(16)).min(input.len());
                input.drain(at.min(end)..end);
            }
            2 => input.insert(at, rng.next() as u8),
            3 => {
                let token = TOKENS[rng.below(TOKENS.len())];
                input.splice(at..at, token.iter().copied());
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                input.splice(at..at, other[from..].iter().copied());
            }
            _ => {
                let times = rng.below(64);
                let byte = input.get(at).copied().unwrap_or(b'a');
                input.splice(at..at, std::iter::repeat_n(byte, times));
            }
        }
    }
    input
}

/// Runs `check` on the corpus and on mutated inputs; a panic fails the test, its input
/// saved for the corpus.
fn fuzz(target: &str, check: impl Fn(&[u8])) {
    if let Some(input) = first_panic(target, check) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target")
            .join(format!("fuzz-crash-{target}"));
        let saved = std::fs::write(&path, &input).is_ok();
        panic!(
            "{target}: panic on {:?} (saved to {}: {saved})",
            String::from_utf8_lossy(&input),
            path.display()
        );
    }
}

/// The first input (corpus first, then mutations) on which `check` panics.
fn first_panic(target: &str, check: impl Fn(&[u8])) -> Option<Vec<u8>> {
    let iterations: usize = std::env::var("EDGEMX_FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let seed: u64 = std::env::var("EDGEMX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed);
    let seeds = corpus(target);
    let mut rng = Rng(seed ^ target.len() as u64 ^ 0x9e37_79b9_7f4a_7c15);
    let mut inputs = seeds
        .iter()
        .cloned()
        .chain((0..iterations).map(|_| mutate(&mut rng, &seeds)));
    inputs.find(|input| catch_unwind(AssertUnwindSafe(|| check(input))).is_err())
}

#[test]
fn the_harness_finds_a_planted_bug_by_mutation() {
    // No corpus entry of `command` holds a NUL byte; mutations splice one in.
    let found = first_panic("command", |input| assert!(!input.contains(&0)));
    assert!(found.is_some_and(|input| input.contains(&0)));
}

#[test]
fn smtp_commands_with_addresses_and_parameters() {
    fuzz("command", |input| {
        for smtputf8 in [false, true] {
            let _ = parse_command_with(input, smtputf8);
        }
    });
}

#[test]
fn addresses() {
    fuzz("address", |input| {
        let text = String::from_utf8_lossy(input);
        for smtputf8 in [false, true] {
            let _ = Mailbox::parse(&text, smtputf8);
        }
    });
}

#[test]
fn data_decoding_in_any_split() {
    fuzz("data", |input| {
        for mode in [LineEndings::Reject, LineEndings::Normalize] {
            let mut decoder = DataDecoder::new(1 << 16, mode);
            let mut out = Vec::new();
            // Split in two, as a read boundary may fall anywhere in the end marker.
            let (first, second) = input.split_at(input.len() / 2);
            if let Feed::NeedMore = decoder.feed(first, &mut out)
                && let Feed::End { consumed } = decoder.feed(second, &mut out)
            {
                assert!(consumed <= second.len());
            }
            let _ = (decoder.outcome(), decoder.is_done());
        }
    });
}

#[test]
fn bdat_chunks() {
    fuzz("bdat", |input| {
        for mode in [LineEndings::Reject, LineEndings::Normalize] {
            let mut checker = ChunkChecker::new(1 << 16, mode);
            let mut out = Vec::new();
            for chunk in input.chunks(7) {
                checker.feed(chunk, &mut out);
            }
            let _ = checker.finish();
        }
    });
}

#[test]
fn configuration_files() {
    fuzz("config", |input| {
        let _ = edgemx::config::Config::parse(&String::from_utf8_lossy(input));
    });
}

#[test]
fn routing_map_alias_and_list_files() {
    use edgemx::routing::map::{AddressList, Aliases, RecipientMap};
    fuzz("routing_map", |input| {
        let text = String::from_utf8_lossy(input);
        let _ = RecipientMap::parse(&text, |name| (name == "cloud").then_some(0));
        let _ = Aliases::parse(&text);
        let _ = AddressList::parse(&text);
    });
}

#[test]
fn dsn_parameters_and_xtext() {
    use edgemx::smtp::proto::dsn;
    fuzz("dsn", |input| {
        let text = String::from_utf8_lossy(input);
        let _ = dsn::parse_ret(&text);
        let _ = dsn::parse_envid(&text);
        let _ = dsn::parse_notify(&text);
        let _ = dsn::parse_orcpt(&text);
        // What we write, we read back unchanged (ORCPT and ENVID go to next hops as xtext).
        assert_eq!(dsn::unxtext(&dsn::xtext(&text)).as_deref(), Some(&*text));
    });
}

#[test]
fn next_hop_replies() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    fuzz("reply", |input| {
        runtime.block_on(async {
            let mut reader = input;
            // Read every reply the bytes hold, as a pipelining client does.
            for _ in 0..input.len() + 1 {
                let before = reader.len();
                match edgemx::delivery::read_reply(&mut reader, Duration::from_secs(1)).await {
                    Ok(reply) => assert!(
                        reader.len() < before,
                        "a reply consumed no bytes: {reply:?}"
                    ),
                    Err(_) => break,
                }
            }
        })
    });
}
