//! Which of ring's code paths this CPU runs (`show tls`). ring 0.17 reads CPUID once and
//! picks, per primitive, the best of its implementations; it offers no switch to force a
//! slower one. These rules mirror its choices in 0.17.14 (`aead/aes_gcm.rs`,
//! `digest/sha2/sha2_32.rs`, `aead/chacha.rs`, `cpu/intel.rs`), from the same CPUID bits
//! as seen by `std::arch::is_x86_feature_detected!`. Revisit them when ring is upgraded.

/// CPU features relevant to ring's choices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub aes: bool,
    pub pclmulqdq: bool,
    pub vaes: bool,
    pub vpclmulqdq: bool,
    pub avx: bool,
    pub avx2: bool,
    pub movbe: bool,
    pub ssse3: bool,
    pub sha: bool,
    /// A GenuineIntel CPU: ring uses its AVX SHA-2 code only there (slow on pre-Zen AMD).
    pub intel: bool,
}

impl Features {
    /// This CPU's.
    pub fn detect() -> Features {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            Features {
                aes: has!("aes"),
                pclmulqdq: has!("pclmulqdq"),
                vaes: has!("vaes"),
                vpclmulqdq: has!("vpclmulqdq"),
                avx: has!("avx"),
                avx2: has!("avx2"),
                movbe: has!("movbe"),
                ssse3: has!("ssse3"),
                sha: has!("sha"),
                intel: intel(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Features::default()
    }

    /// The named features and whether this CPU has them, for the `CPU crypto` line.
    pub fn listed(&self) -> Vec<(&'static str, bool)> {
        vec![
            ("AES-NI", self.aes),
            ("VAES", self.vaes),
            ("PCLMULQDQ", self.pclmulqdq),
            ("VPCLMULQDQ", self.vpclmulqdq),
            ("AVX", self.avx),
            ("AVX2", self.avx2),
            ("SHA-NI", self.sha),
        ]
    }
}

/// `(primitive, code path)` for AES-GCM (AES and GHASH), ChaCha20 and SHA-256/384.
pub fn paths(f: &Features) -> Vec<(&'static str, &'static str)> {
    let aes_gcm = if f.aes && f.pclmulqdq && f.ssse3 {
        if f.vaes && f.vpclmulqdq && f.avx && f.avx2 {
            "VAES + VPCLMULQDQ, AVX2 (256-bit, 2 blocks per instruction)"
        } else if f.avx && f.movbe {
            "AES-NI + PCLMULQDQ, AVX + MOVBE (stitched)"
        } else {
            "AES-NI + PCLMULQDQ"
        }
    } else if f.ssse3 {
        "SSSE3 vector permutes (no AES-NI/PCLMULQDQ: constant-time software)"
    } else {
        "portable software (no AES-NI)"
    };
    let chacha = if f.avx2 {
        "AVX2"
    } else if f.ssse3 {
        "SSSE3"
    } else {
        "portable software"
    };
    let sha256 = if f.sha && f.ssse3 {
        "SHA-NI"
    } else if f.avx && f.intel {
        "AVX"
    } else if f.ssse3 {
        "SSSE3"
    } else {
        "portable software"
    };
    let sha384 = if f.avx && f.intel {
        "AVX"
    } else {
        "portable software (no SHA-512 instructions used)"
    };
    vec![
        ("AES-GCM", aes_gcm),
        ("ChaCha20", chacha),
        ("SHA-256", sha256),
        ("SHA-384", sha384),
    ]
}

#[cfg(target_arch = "x86_64")]
fn intel() -> bool {
    // SAFETY: CPUID leaf 0 exists on every x86-64 CPU and has no side effects.
    #[allow(unused_unsafe)] // `__cpuid` became safe to call in newer Rust.
    let leaf = unsafe { std::arch::x86_64::__cpuid(0) };
    // "GenuineIntel" in EBX, EDX, ECX.
    (leaf.ebx, leaf.edx, leaf.ecx) == (0x756e_6547, 0x4965_6e69, 0x6c65_746e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(f: &Features, name: &str) -> &'static str {
        paths(f).into_iter().find(|(n, _)| *n == name).unwrap().1
    }

    #[test]
    fn the_fastest_path_needs_every_feature_it_uses() {
        let all = Features {
            aes: true,
            pclmulqdq: true,
            vaes: true,
            vpclmulqdq: true,
            avx: true,
            avx2: true,
            movbe: true,
            ssse3: true,
            sha: true,
            intel: true,
        };
        assert!(path(&all, "AES-GCM").starts_with("VAES + VPCLMULQDQ"));
        assert_eq!(path(&all, "SHA-256"), "SHA-NI");
        let no_vpclmul = Features {
            vpclmulqdq: false,
            ..all
        };
        assert!(path(&no_vpclmul, "AES-GCM").starts_with("AES-NI + PCLMULQDQ, AVX"));
        let no_clmul = Features {
            pclmulqdq: false,
            ..all
        };
        assert!(path(&no_clmul, "AES-GCM").starts_with("SSSE3"));
        let amd_without_sha = Features {
            sha: false,
            intel: false,
            ..all
        };
        assert_eq!(path(&amd_without_sha, "SHA-256"), "SSSE3");
        assert_eq!(path(&Features::default(), "ChaCha20"), "portable software");
    }
}
