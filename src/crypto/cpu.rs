//! CPU features, detected in one place.
//!
//! Each token type below stands for one set of x86-64 features a kernel is compiled for. A
//! token can only be made by its function here, which returns it only after
//! `is_x86_feature_detected!` has confirmed every feature of the set on this CPU (the standard
//! library caches the detection, so asking again is a couple of loads). A kernel takes its
//! token, and the `// SAFETY:` comment of each call into `#[target_feature]` code cites it: no
//! other file detects CPU features. Off x86-64 every function returns `None`.
//!
//! To add a feature set: a token type with its private `()` field and one function that makes
//! it after detecting exactly the features the kernel enables.

// The one file allowed to detect CPU features (clippy.toml disallows the macro elsewhere).
#![allow(clippy::disallowed_macros)]

/// AVX-512F: the 16-lane and 8-lane PBKDF2 kernels, the Argon2id compression, Serpent at
/// 512 bits.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

/// AVX-512F, BW and VBMI with GFNI: the Streebog and Whirlpool kernels.
#[derive(Clone, Copy, Debug)]
pub struct Avx512Vbmi(());

/// VAES and VPCLMULQDQ on 512-bit registers (with AVX-512F and BW): AES-XTS.
#[derive(Clone, Copy, Debug)]
pub struct Vaes512(());

/// VAES and VPCLMULQDQ on 256-bit registers (with AVX2): AES-XTS.
#[derive(Clone, Copy, Debug)]
pub struct Vaes256(());

/// AES-NI (with SSE2): AES-XTS one block per instruction.
#[derive(Clone, Copy, Debug)]
pub struct AesNi(());

/// AVX2: Serpent at 256 bits.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

/// `Some(token)` when `detected`, on x86-64 only.
fn token<T>(detected: impl FnOnce() -> bool, make: T) -> Option<T> {
    if cfg!(target_arch = "x86_64") && detected() {
        Some(make)
    } else {
        None
    }
}

macro_rules! detect {
    ($($feature:tt),+) => {{
        #[cfg(target_arch = "x86_64")]
        {
            || true $(&& std::is_x86_feature_detected!($feature))+
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            || false
        }
    }};
}

/// AVX-512F, when this CPU has it.
pub fn avx512() -> Option<Avx512> {
    token(detect!("avx512f"), Avx512(()))
}

/// AVX-512F, BW, VBMI and GFNI, when this CPU has them all.
pub fn avx512_vbmi() -> Option<Avx512Vbmi> {
    token(
        detect!("avx512f", "avx512bw", "avx512vbmi", "gfni"),
        Avx512Vbmi(()),
    )
}

/// AVX-512F, BW, VAES and VPCLMULQDQ, when this CPU has them all.
pub fn vaes512() -> Option<Vaes512> {
    token(
        detect!("avx512f", "avx512bw", "vaes", "vpclmulqdq"),
        Vaes512(()),
    )
}

/// AVX2, VAES and VPCLMULQDQ, when this CPU has them all.
pub fn vaes256() -> Option<Vaes256> {
    token(detect!("avx2", "vaes", "vpclmulqdq"), Vaes256(()))
}

/// AES-NI and SSE2, when this CPU has them.
pub fn aes_ni() -> Option<AesNi> {
    token(detect!("aes", "sse2"), AesNi(()))
}

/// AVX2, when this CPU has it.
pub fn avx2() -> Option<Avx2> {
    token(detect!("avx2"), Avx2(()))
}
