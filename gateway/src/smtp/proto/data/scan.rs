//! Word-at-a-time search for the bytes that need attention in message data.

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Returns the index of the first NUL, CR or LF in `s` (or `s.len()`), and whether any byte
/// before it has the high bit set. Eight bytes are tested at once: a word with no byte below
/// 0x0e cannot hold NUL, CR or LF; the rare word that might (TAB, say) is checked bytewise.
pub(super) fn scan(s: &[u8]) -> (usize, bool) {
    let (words, tail) = s.as_chunks::<8>();
    let mut high_words = 0u64;
    let mut high_bytes = 0u8;
    for (k, word) in words.iter().enumerate() {
        let w = u64::from_ne_bytes(*word);
        // Bit Twiddling Hacks' `hasless(w, 0x0e)`: exact as to whether such a byte exists.
        if w.wrapping_sub(ONES * 0x0e) & !w & HIGH == 0 {
            high_words |= w;
            continue;
        }
        for (j, &b) in word.iter().enumerate() {
            if is_special(b) {
                return (k * 8 + j, high_words & HIGH != 0 || high_bytes >= 0x80);
            }
            high_bytes |= b;
        }
    }
    let base = words.len() * 8;
    for (j, &b) in tail.iter().enumerate() {
        if is_special(b) {
            return (base + j, high_words & HIGH != 0 || high_bytes >= 0x80);
        }
        high_bytes |= b;
    }
    (s.len(), high_words & HIGH != 0 || high_bytes >= 0x80)
}

fn is_special(b: u8) -> bool {
    b == b'\r' || b == b'\n' || b == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(s: &[u8]) -> (usize, bool) {
        let n = s.iter().position(|&b| is_special(b)).unwrap_or(s.len());
        (n, s[..n].iter().any(|&b| b >= 0x80))
    }

    #[test]
    fn agrees_with_the_naive_search_at_every_offset() {
        let mut base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        base[3] = b'\t';
        base[13] = 0x0b;
        for special in [b'\r', b'\n', 0, 0xe9, 0x0d, 0x0e, 0x7f, 0xff] {
            for at in 0..base.len() {
                let mut s = base.clone();
                s[at] = special;
                for start in 0..9 {
                    assert_eq!(
                        scan(&s[start..]),
                        naive(&s[start..]),
                        "{special:#x} at {at} from {start}"
                    );
                }
            }
        }
        assert_eq!(scan(b""), (0, false));
    }
}
