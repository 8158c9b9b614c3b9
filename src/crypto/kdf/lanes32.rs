//! The 16-lane PBKDF2 kernel: RIPEMD-160, SHA-256 and BLAKE2s with AVX-512F, one 32-bit lane
//! per PBKDF2 block, so one instruction advances sixteen independent chains (other block
//! index, other header's salt, other password).
//!
//! The first iteration of every job (the salt, of any length) is computed with the RustCrypto
//! HMAC; the kernel runs the rest, where every message is exactly one hash output. Lanes past
//! the group repeat its first job and are discarded.

use std::sync::atomic::{AtomicBool, Ordering};

use digest::{KeyInit, Mac};
use hmac::Hmac;

use super::{LaneJob, Prf, STOP_CHECK_EVERY, Stopped};
use crate::crypto::cpu::Avx512;

/// How many blocks one call advances together.
pub const LANES: usize = 16;

/// RIPEMD-160 initial chaining value.
const RMD_IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

/// Per-lane kernel inputs: each lane's HMAC key block (16 words) and first U (up to 8 words),
/// in the hash's word order; lanes past the group repeat its first job and are discarded.
struct Prepared {
    keys: [[u32; 16]; 16],
    firsts: [[u32; 8]; 16],
}

impl Drop for Prepared {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.keys);
        zeroize::Zeroize::zeroize(&mut self.firsts);
    }
}

/// The first HMAC of a block, `HMAC(key, salt || INT(index))`, by the RustCrypto crates.
fn first_u(prf: Prf, key: &[u8; 64], salt: &[u8], index: u32, out: &mut [u8; 32]) {
    fn mac<M: Mac + KeyInit>(key: &[u8], salt: &[u8], index: u32, out: &mut [u8; 32]) {
        let mut m = match <M as KeyInit>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        m.update(salt);
        m.update(&index.to_be_bytes());
        let mut u = m.finalize().into_bytes();
        out[..u.len()].copy_from_slice(&u);
        zeroize::Zeroize::zeroize(u.as_mut_slice());
    }
    match prf {
        Prf::Ripemd160 => mac::<Hmac<ripemd::Ripemd160>>(key, salt, index, out),
        Prf::Sha256 => mac::<Hmac<sha2::Sha256>>(key, salt, index, out),
        Prf::Blake2s => mac::<hmac::SimpleHmac<blake2::Blake2s256>>(key, salt, index, out),
        other => unreachable!("no 32-bit lane kernel for {other:?}"),
    }
}

/// The HMAC key block of `password` (hashed first when longer than the 64-byte block).
fn key_block(prf: Prf, password: &[u8]) -> [u8; 64] {
    fn digest_into<D: digest::Digest>(password: &[u8], key: &mut [u8; 64]) {
        let mut d = D::digest(password);
        key[..d.len()].copy_from_slice(&d);
        zeroize::Zeroize::zeroize(d.as_mut_slice());
    }
    let mut key = [0u8; 64];
    if password.len() > 64 {
        match prf {
            Prf::Ripemd160 => digest_into::<ripemd::Ripemd160>(password, &mut key),
            Prf::Sha256 => digest_into::<sha2::Sha256>(password, &mut key),
            Prf::Blake2s => digest_into::<blake2::Blake2s256>(password, &mut key),
            other => unreachable!("no 32-bit lane kernel for {other:?}"),
        }
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    key
}

/// Whether the hash reads and writes its 32-bit words big-endian (SHA-256) or little-endian.
fn big_endian(prf: Prf) -> bool {
    prf == Prf::Sha256
}

fn word(bytes: &[u8], big: bool) -> u32 {
    let b = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if big {
        u32::from_be_bytes(b)
    } else {
        u32::from_le_bytes(b)
    }
}

fn prepare(prf: Prf, group: &[LaneJob<'_>]) -> Prepared {
    let big = big_endian(prf);
    let mut p = Prepared {
        keys: [[0; 16]; 16],
        firsts: [[0; 8]; 16],
    };
    for lane in 0..16 {
        let job = group[lane.min(group.len() - 1)];
        let mut key = key_block(prf, job.password);
        for (w, c) in p.keys[lane].iter_mut().zip(key.chunks_exact(4)) {
            *w = word(c, big);
        }
        let mut u = [0u8; 32];
        first_u(prf, &key, job.salt, job.index, &mut u);
        for (w, c) in p.firsts[lane].iter_mut().zip(u.chunks_exact(4)) {
            *w = word(c, big);
        }
        zeroize::Zeroize::zeroize(&mut key);
        zeroize::Zeroize::zeroize(&mut u);
    }
    p
}

/// PBKDF2 blocks of `prf` (RIPEMD-160, SHA-256 or BLAKE2s) for up to [`LANES`] jobs into
/// `outs` (up to one hash length each).
///
/// # Panics
/// If `group` is empty or `outs` is longer than [`LANES`].
#[cfg(target_arch = "x86_64")]
pub fn pbkdf2_group(
    _avx512: Avx512,
    prf: Prf,
    group: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    let p = prepare(prf, group);
    // SAFETY: the `Avx512` token proves this CPU has AVX-512F, the kernels' only feature.
    let result = unsafe {
        match prf {
            Prf::Ripemd160 => avx512::ripemd160(&p.keys, &p.firsts, iterations, stop),
            Prf::Sha256 => avx512::sha256(&p.keys, &p.firsts, iterations, stop),
            _ => avx512::blake2s(&p.keys, &p.firsts, iterations, stop),
        }
    };
    drop(p);
    let mut acc = result?;
    let big = big_endian(prf);
    for (lane, out) in outs.iter_mut().enumerate() {
        let mut bytes = [0u8; 32];
        for (c, w) in bytes.chunks_exact_mut(4).zip(&acc[lane]) {
            c.copy_from_slice(&if big {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            });
        }
        let n = out.len().min(prf.block_len());
        out[..n].copy_from_slice(&bytes[..n]);
        zeroize::Zeroize::zeroize(&mut bytes);
    }
    zeroize::Zeroize::zeroize(&mut acc);
    Ok(())
}

/// RIPEMD-160 message word order, rotations and constants (ISO/IEC 10118-3, Dobbertin,
/// Bosselaers and Preneel 1996), left line then right line.
const RMD_R: [[usize; 80]; 2] = [
    [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, //
        7, 4, 13, 1, 10, 6, 15, 3, 12, 0, 9, 5, 2, 14, 11, 8, //
        3, 10, 14, 4, 9, 15, 8, 1, 2, 7, 0, 6, 13, 11, 5, 12, //
        1, 9, 11, 10, 0, 8, 12, 4, 13, 3, 7, 15, 14, 5, 6, 2, //
        4, 0, 5, 9, 7, 12, 2, 10, 14, 1, 3, 8, 11, 6, 15, 13,
    ],
    [
        5, 14, 7, 0, 9, 2, 11, 4, 13, 6, 15, 8, 1, 10, 3, 12, //
        6, 11, 3, 7, 0, 13, 5, 10, 14, 15, 8, 12, 4, 9, 1, 2, //
        15, 5, 1, 3, 7, 14, 6, 9, 11, 8, 12, 2, 10, 0, 4, 13, //
        8, 6, 4, 1, 3, 11, 15, 0, 5, 12, 2, 13, 9, 7, 10, 14, //
        12, 15, 10, 4, 1, 5, 8, 7, 6, 2, 13, 14, 0, 3, 9, 11,
    ],
];
const RMD_S: [[u32; 80]; 2] = [
    [
        11, 14, 15, 12, 5, 8, 7, 9, 11, 13, 14, 15, 6, 7, 9, 8, //
        7, 6, 8, 13, 11, 9, 7, 15, 7, 12, 15, 9, 11, 7, 13, 12, //
        11, 13, 6, 7, 14, 9, 13, 15, 14, 8, 13, 6, 5, 12, 7, 5, //
        11, 12, 14, 15, 14, 15, 9, 8, 9, 14, 5, 6, 8, 6, 5, 12, //
        9, 15, 5, 11, 6, 8, 13, 12, 5, 12, 13, 14, 11, 8, 5, 6,
    ],
    [
        8, 9, 9, 11, 13, 15, 15, 5, 7, 7, 8, 11, 14, 14, 12, 6, //
        9, 13, 15, 7, 12, 8, 9, 11, 7, 7, 12, 7, 6, 15, 13, 11, //
        9, 7, 15, 11, 8, 6, 6, 14, 12, 13, 5, 14, 13, 13, 7, 5, //
        15, 5, 8, 11, 14, 14, 6, 14, 6, 9, 12, 9, 12, 5, 15, 8, //
        8, 5, 12, 9, 12, 5, 14, 6, 8, 13, 6, 5, 15, 13, 11, 11,
    ],
];
const RMD_K: [[u32; 5]; 2] = [
    [
        0x0000_0000,
        0x5a82_7999,
        0x6ed9_eba1,
        0x8f1b_bcdc,
        0xa953_fd4e,
    ],
    [
        0x50a2_8be6,
        0x5c4d_d124,
        0x6d70_3ef3,
        0x7a6d_76e9,
        0x0000_0000,
    ],
];

/// SHA-256 and BLAKE2s share their initial value: the first 32 bits of the fractional parts of
/// the square roots of the first eight primes. Computed here rather than typed in.
const SQRT_IV: [u32; 8] = {
    let primes = [2u128, 3, 5, 7, 11, 13, 17, 19];
    let mut iv = [0u32; 8];
    let mut i = 0;
    while i < 8 {
        // floor(sqrt(p · 2^64)) = floor(sqrt(p) · 2^32); its low 32 bits are the fraction.
        iv[i] = int_root(primes[i] << 64, 2) as u32;
        i += 1;
    }
    iv
};

/// SHA-256 round constants: the first 32 bits of the fractional parts of the cube roots of the
/// first 64 primes (FIPS 180-4 §4.2.2), computed at compile time.
const SHA256_K: [u32; 64] = {
    let mut k = [0u32; 64];
    let mut n = 0;
    let mut p = 2u128;
    while n < 64 {
        let mut d = 2;
        let mut prime = true;
        while d * d <= p {
            if p.is_multiple_of(d) {
                prime = false;
            }
            d += 1;
        }
        if prime {
            k[n] = int_root(p << 96, 3) as u32;
            n += 1;
        }
        p += 1;
    }
    k
};

/// floor(x^(1/e)) for e = 2 or 3 by bisection (x < 2^110).
const fn int_root(x: u128, e: u32) -> u128 {
    let (mut lo, mut hi) = (0u128, 1u128 << 40);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if mid.pow(e) <= x {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo
}

/// BLAKE2s message schedule (RFC 7693 §2.7).
const BLAKE2S_SIGMA: [[usize; 16]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
    [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
    [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
    [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
    [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
    [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
    [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
    [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
    [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0],
];

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{
        AtomicBool, BLAKE2S_SIGMA, Ordering, RMD_IV, RMD_K, RMD_R, RMD_S, SHA256_K, SQRT_IV,
        STOP_CHECK_EVERY, Stopped,
    };
    use crate::crypto::simd::{load512, store512};

    type V = __m512i;

    /// The kernels' result: each lane's XOR of all U, as words.
    type Acc = [[u32; 8]; 16];

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn column(f: &dyn Fn(usize) -> u32) -> V {
        let mut w = [0u32; 16];
        for (lane, v) in w.iter_mut().enumerate() {
            *v = f(lane);
        }
        let v = load512(&w);
        zeroize::Zeroize::zeroize(&mut w);
        v
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn splat(x: u32) -> V {
        _mm512_set1_epi32(x as i32)
    }

    #[target_feature(enable = "avx512f")]
    fn unpack(acc: &[V]) -> Acc {
        let mut out = [[0u32; 8]; 16];
        for (i, v) in acc.iter().enumerate() {
            let mut w = [0u32; 16];
            store512(&mut w, *v);
            for (lane, o) in out.iter_mut().enumerate() {
                o[i] = w[lane];
            }
            zeroize::Zeroize::zeroize(&mut w);
        }
        out
    }

    /// The PBKDF2 loop shared by the kernels: `N` state words per lane, message words `x`
    /// (message in words `0..N`, the constant padding elsewhere), `compress(state, x)`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn pbkdf2<const N: usize>(
        inner: &[V; N],
        outer: &[V; N],
        pad: [V; 16],
        firsts: &[[u32; 8]; 16],
        iterations: u32,
        stop: &AtomicBool,
        compress: impl Fn(&[V; N], &[V; 16]) -> [V; N],
    ) -> Result<Acc, Stopped> {
        let mut x = pad;
        let mut u: [V; N] = core::array::from_fn(|i| column(&|lane| firsts[lane][i]));
        let mut acc = u;
        for i in 1..iterations {
            if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            x[..N].copy_from_slice(&u);
            let ih = compress(inner, &x);
            x[..N].copy_from_slice(&ih);
            u = compress(outer, &x);
            for (a, v) in acc.iter_mut().zip(&u) {
                *a = _mm512_xor_si512(*a, *v);
            }
        }
        Ok(unpack(&acc))
    }

    fn keyed<const N: usize>(
        keys: &[[u32; 16]; 16],
        pad: u32,
        compress: &impl Fn(&[V; N], &[V; 16]) -> [V; N],
        iv: &[V; N],
    ) -> [V; N] {
        // SAFETY: only called from the kernels below, which run with AVX-512F enabled (their
        // caller holds the `Avx512` token).
        let x: [V; 16] = core::array::from_fn(|i| unsafe { column(&|lane| keys[lane][i] ^ pad) });
        compress(iv, &x)
    }

    // ---- RIPEMD-160 -------------------------------------------------------------------------

    /// The five boolean functions as `vpternlogd` truth tables (x, y, z = first, second, third).
    const RMD_F: [i32; 5] = [0x96, 0xca, 0x59, 0xe4, 0x2d];

    /// Step `J` of line `L` (left 0, right 1) of the RIPEMD-160 compression function on the
    /// line's registers (a, b, c, d, e); every index, constant and rotation is known at compile
    /// time.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rmd_step<const L: usize, const J: usize>(s: &mut [V; 5], x: &[V; 16]) {
        let [a, b, c, d, e] = *s;
        let round = J / 16;
        let func = if L == 0 { round } else { 4 - round };
        let fx = match func {
            0 => _mm512_ternarylogic_epi32::<{ RMD_F[0] }>(b, c, d),
            1 => _mm512_ternarylogic_epi32::<{ RMD_F[1] }>(b, c, d),
            2 => _mm512_ternarylogic_epi32::<{ RMD_F[2] }>(b, c, d),
            3 => _mm512_ternarylogic_epi32::<{ RMD_F[3] }>(b, c, d),
            _ => _mm512_ternarylogic_epi32::<{ RMD_F[4] }>(b, c, d),
        };
        let sum = _mm512_add_epi32(
            _mm512_add_epi32(a, fx),
            _mm512_add_epi32(x[RMD_R[L][J]], splat(RMD_K[L][round])),
        );
        let t = _mm512_add_epi32(_mm512_rolv_epi32(sum, splat(RMD_S[L][J])), e);
        *s = [e, t, b, _mm512_rol_epi32::<10>(c), d];
    }

    /// Both lines, step by step side by side.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn rmd_compress(h: &[V; 5], x: &[V; 16]) -> [V; 5] {
        let mut l = *h;
        let mut r = *h;
        macro_rules! steps {
            ($($j:literal)*) => {
                $(
                    rmd_step::<0, $j>(&mut l, x);
                    rmd_step::<1, $j>(&mut r, x);
                )*
            };
        }
        steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
        let add3 = |p: V, q: V, s: V| _mm512_add_epi32(p, _mm512_add_epi32(q, s));
        [
            add3(h[1], l[2], r[3]),
            add3(h[2], l[3], r[4]),
            add3(h[3], l[4], r[0]),
            add3(h[4], l[0], r[1]),
            add3(h[0], l[1], r[2]),
        ]
    }

    /// PBKDF2-HMAC-RIPEMD-160 iterations 2..=`iterations` for 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) fn ripemd160(
        keys: &[[u32; 16]; 16],
        firsts: &[[u32; 8]; 16],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<Acc, Stopped> {
        // The closure inherits this function's target features.
        let compress = |h: &[V; 5], x: &[V; 16]| rmd_compress(h, x);
        let iv: [V; 5] = core::array::from_fn(|i| splat(RMD_IV[i]));
        let inner = keyed(keys, 0x3636_3636, &compress, &iv);
        let outer = keyed(keys, 0x5c5c_5c5c, &compress, &iv);
        // 20 message bytes, 0x80, zeros, the bit length of key block plus message
        // (64 + 20 bytes) little-endian in words 14 and 15.
        let mut pad = [_mm512_setzero_si512(); 16];
        pad[5] = splat(0x80);
        pad[14] = splat((64 + 20) * 8);
        pbkdf2(&inner, &outer, pad, firsts, iterations, stop, compress)
    }

    // ---- SHA-256 ----------------------------------------------------------------------------

    /// Round `T` of SHA-256 on (a..h), with the message schedule kept in a ring of 16 words.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sha256_round<const T: usize>(s: &mut [V; 8], w: &mut [V; 16]) {
        if T >= 16 {
            let w15 = w[(T + 1) % 16];
            let w2 = w[(T + 14) % 16];
            let s0 = _mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<7>(w15),
                _mm512_ror_epi32::<18>(w15),
                _mm512_srli_epi32::<3>(w15),
            );
            let s1 = _mm512_ternarylogic_epi32::<0x96>(
                _mm512_ror_epi32::<17>(w2),
                _mm512_ror_epi32::<19>(w2),
                _mm512_srli_epi32::<10>(w2),
            );
            w[T % 16] = _mm512_add_epi32(
                _mm512_add_epi32(w[T % 16], s0),
                _mm512_add_epi32(w[(T + 9) % 16], s1),
            );
        }
        let [a, b, c, d, e, f, g, h] = *s;
        let s1 = _mm512_ternarylogic_epi32::<0x96>(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        );
        let ch = _mm512_ternarylogic_epi32::<0xca>(e, f, g);
        let t1 = _mm512_add_epi32(
            _mm512_add_epi32(h, s1),
            _mm512_add_epi32(ch, _mm512_add_epi32(w[T % 16], splat(SHA256_K[T]))),
        );
        let s0 = _mm512_ternarylogic_epi32::<0x96>(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        );
        let maj = _mm512_ternarylogic_epi32::<0xe8>(a, b, c);
        *s = [
            _mm512_add_epi32(t1, _mm512_add_epi32(s0, maj)),
            a,
            b,
            c,
            _mm512_add_epi32(d, t1),
            e,
            f,
            g,
        ];
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sha256_compress(h: &[V; 8], x: &[V; 16]) -> [V; 8] {
        let mut w = *x;
        let mut s = *h;
        macro_rules! rounds {
            ($($t:literal)*) => {
                $( sha256_round::<$t>(&mut s, &mut w); )*
            };
        }
        rounds!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63);
        core::array::from_fn(|i| _mm512_add_epi32(h[i], s[i]))
    }

    /// PBKDF2-HMAC-SHA-256 iterations 2..=`iterations` for 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) fn sha256(
        keys: &[[u32; 16]; 16],
        firsts: &[[u32; 8]; 16],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<Acc, Stopped> {
        // The closure inherits this function's target features.
        let compress = |h: &[V; 8], x: &[V; 16]| sha256_compress(h, x);
        let iv: [V; 8] = core::array::from_fn(|i| splat(SQRT_IV[i]));
        let inner = keyed(keys, 0x3636_3636, &compress, &iv);
        let outer = keyed(keys, 0x5c5c_5c5c, &compress, &iv);
        // 32 message bytes, 0x80, zeros, the bit length (64 + 32 bytes) big-endian at the end.
        let mut pad = [_mm512_setzero_si512(); 16];
        pad[8] = splat(0x8000_0000);
        pad[15] = splat((64 + 32) * 8);
        pbkdf2(&inner, &outer, pad, firsts, iterations, stop, compress)
    }

    // ---- BLAKE2s ----------------------------------------------------------------------------

    /// BLAKE2s compression of a final block of `bytes` bytes counted in total (`f0` set when
    /// `last`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn blake2s_compress(h: &[V; 8], m: &[V; 16], bytes: u32, last: bool) -> [V; 8] {
        let mut v = [_mm512_setzero_si512(); 16];
        v[..8].copy_from_slice(h);
        for i in 0..4 {
            v[8 + i] = splat(SQRT_IV[i]);
        }
        v[12] = splat(SQRT_IV[4] ^ bytes);
        v[13] = splat(SQRT_IV[5]);
        v[14] = splat(if last { !SQRT_IV[6] } else { SQRT_IV[6] });
        v[15] = splat(SQRT_IV[7]);
        let g = |v: &mut [V; 16], a: usize, b: usize, c: usize, d: usize, x: V, y: V| {
            v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), x);
            v[d] = _mm512_ror_epi32::<16>(_mm512_xor_si512(v[d], v[a]));
            v[c] = _mm512_add_epi32(v[c], v[d]);
            v[b] = _mm512_ror_epi32::<12>(_mm512_xor_si512(v[b], v[c]));
            v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), y);
            v[d] = _mm512_ror_epi32::<8>(_mm512_xor_si512(v[d], v[a]));
            v[c] = _mm512_add_epi32(v[c], v[d]);
            v[b] = _mm512_ror_epi32::<7>(_mm512_xor_si512(v[b], v[c]));
        };
        for s in &BLAKE2S_SIGMA {
            g(&mut v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
            g(&mut v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
            g(&mut v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
            g(&mut v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
            g(&mut v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
            g(&mut v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
            g(&mut v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
            g(&mut v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
        }
        core::array::from_fn(|i| _mm512_ternarylogic_epi32::<0x96>(h[i], v[i], v[i + 8]))
    }

    /// PBKDF2-HMAC-BLAKE2s-256 iterations 2..=`iterations` for 16 lanes.
    #[target_feature(enable = "avx512f")]
    pub(super) fn blake2s(
        keys: &[[u32; 16]; 16],
        firsts: &[[u32; 8]; 16],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<Acc, Stopped> {
        // Parameter block: digest length 32, no key, fanout 1, depth 1.
        let mut iv: [V; 8] = core::array::from_fn(|i| splat(SQRT_IV[i]));
        iv[0] = splat(SQRT_IV[0] ^ 0x0101_0020);
        // The key block is not the last one: 64 bytes counted, no final flag.
        // The closures inherit this function's target features.
        let key_compress = |h: &[V; 8], x: &[V; 16]| blake2s_compress(h, x, 64, false);
        let inner = keyed(keys, 0x3636_3636, &key_compress, &iv);
        let outer = keyed(keys, 0x5c5c_5c5c, &key_compress, &iv);
        // Then the 32-byte message, zero-padded, as the last block: 96 bytes counted.
        let compress = |h: &[V; 8], x: &[V; 16]| blake2s_compress(h, x, 96, true);
        let pad = [_mm512_setzero_si512(); 16];
        pbkdf2(&inner, &outer, pad, firsts, iterations, stop, compress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_fips_180_4() {
        assert_eq!(SQRT_IV[0], 0x6a09_e667);
        assert_eq!(SQRT_IV[7], 0x5be0_cd19);
        assert_eq!(SHA256_K[0], 0x428a_2f98);
        assert_eq!(SHA256_K[63], 0xc671_78f2);
    }
}
