//! The 8-lane PBKDF2-HMAC-SHA-512 kernel: AVX-512F, one 64-bit lane per PBKDF2 block, the
//! 128-byte key blocks and 64-bit words of SHA-512 (otherwise as the 32-bit lanes).
//!
//! The first iteration of every job (the salt, of any length) is computed with the RustCrypto
//! HMAC; the kernel runs the rest, where every message is exactly one 64-byte digest. Lanes
//! past the group repeat its first job and are discarded.

use std::sync::atomic::{AtomicBool, Ordering};

use digest::{KeyInit, Mac};
use hmac::Hmac;

use super::{LaneJob, STOP_CHECK_EVERY, Stopped};
use crate::crypto::cpu::Avx512;

/// How many blocks one call advances together.
pub const LANES: usize = 8;

/// PBKDF2-HMAC-SHA-512 blocks for up to [`LANES`] jobs into `outs` (up to 64 bytes each).
///
/// # Panics
/// If `group` is empty or `outs` is longer than [`LANES`].
#[cfg(target_arch = "x86_64")]
pub fn pbkdf2_group(
    _avx512: Avx512,
    group: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    let mut keys = [[0u64; 16]; 8];
    let mut firsts = [[0u64; 8]; 8];
    for lane in 0..8 {
        let job = group[lane.min(group.len() - 1)];
        let mut key = [0u8; 128];
        if job.password.len() > 128 {
            let mut d = <sha2::Sha512 as digest::Digest>::digest(job.password);
            key[..64].copy_from_slice(&d);
            zeroize::Zeroize::zeroize(d.as_mut_slice());
        } else {
            key[..job.password.len()].copy_from_slice(job.password);
        }
        for (w, c) in keys[lane].iter_mut().zip(key.chunks_exact(8)) {
            *w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        }
        let mut mac = match <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(&key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        zeroize::Zeroize::zeroize(&mut key);
        mac.update(job.salt);
        mac.update(&job.index.to_be_bytes());
        let mut u = mac.finalize().into_bytes();
        for (w, c) in firsts[lane].iter_mut().zip(u.chunks_exact(8)) {
            *w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        }
        zeroize::Zeroize::zeroize(u.as_mut_slice());
    }
    // SAFETY: the `Avx512` token proves this CPU has AVX-512F, the kernel's only feature.
    let result = unsafe { avx512::sha512(&keys, &firsts, iterations, stop) };
    zeroize::Zeroize::zeroize(keys.as_flattened_mut());
    zeroize::Zeroize::zeroize(firsts.as_flattened_mut());
    let mut acc = result?;
    for (lane, out) in outs.iter_mut().enumerate() {
        let mut bytes = [0u8; 64];
        for (c, w) in bytes.chunks_exact_mut(8).zip(&acc[lane]) {
            c.copy_from_slice(&w.to_be_bytes());
        }
        let n = out.len().min(64);
        out[..n].copy_from_slice(&bytes[..n]);
        zeroize::Zeroize::zeroize(&mut bytes);
    }
    zeroize::Zeroize::zeroize(acc.as_flattened_mut());
    Ok(())
}

/// SHA-512 initial value and round constants (FIPS 180-4 §4.2.3, §5.3.5): the first 64 bits of
/// the fractional parts of the square roots of the first 8 primes and of the cube roots of the
/// first 80 primes, computed at compile time.
const SHA512_IV: [u64; 8] = {
    let mut iv = [0u64; 8];
    let primes = first_primes::<8>();
    let mut i = 0;
    while i < 8 {
        iv[i] = frac_root64(primes[i], 2);
        i += 1;
    }
    iv
};
const SHA512_K: [u64; 80] = {
    let mut k = [0u64; 80];
    let primes = first_primes::<80>();
    let mut i = 0;
    while i < 80 {
        k[i] = frac_root64(primes[i], 3);
        i += 1;
    }
    k
};

const fn first_primes<const N: usize>() -> [u64; N] {
    let mut out = [0u64; N];
    let mut n = 0;
    let mut p = 2u64;
    while n < N {
        let mut d = 2;
        let mut prime = true;
        while d * d <= p {
            if p.is_multiple_of(d) {
                prime = false;
            }
            d += 1;
        }
        if prime {
            out[n] = p;
            n += 1;
        }
        p += 1;
    }
    out
}

/// The low 64 bits of floor(p^(1/e) · 2^64) (e = 2 or 3): bisection on r with r^e compared
/// against p · 2^(64 e) in 256-bit arithmetic.
const fn frac_root64(p: u64, e: u32) -> u64 {
    let (mut lo, mut hi) = (0u128, 1u128 << 72);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let r = [mid as u64, (mid >> 64) as u64, 0, 0];
        let mut pow = r;
        let mut i = 1;
        while i < e {
            pow = mul256(pow, r);
            i += 1;
        }
        let mut target = [0u64; 4];
        target[e as usize] = p;
        if le256(pow, target) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    lo as u64
}

/// a · b modulo 2^256 on little-endian limbs.
const fn mul256(a: [u64; 4], b: [u64; 4]) -> [u64; 4] {
    let mut out = [0u64; 4];
    let mut i = 0;
    while i < 4 {
        let mut carry = 0u128;
        let mut j = 0;
        while i + j < 4 {
            let t = (a[i] as u128) * (b[j] as u128) + (out[i + j] as u128) + carry;
            out[i + j] = t as u64;
            carry = t >> 64;
            j += 1;
        }
        i += 1;
    }
    out
}

const fn le256(a: [u64; 4], b: [u64; 4]) -> bool {
    let mut i = 4;
    while i > 0 {
        i -= 1;
        if a[i] != b[i] {
            return a[i] < b[i];
        }
    }
    true
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use core::arch::x86_64::*;

    use super::{AtomicBool, Ordering, SHA512_IV, SHA512_K, STOP_CHECK_EVERY, Stopped};
    use crate::crypto::simd::{load512, store512};

    type V = __m512i;

    /// Round `T` of SHA-512 on (a..h) in eight 64-bit lanes, schedule in a ring of 16 words.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sha512_round<const T: usize>(s: &mut [V; 8], w: &mut [V; 16]) {
        if T >= 16 {
            let w15 = w[(T + 1) % 16];
            let w2 = w[(T + 14) % 16];
            let s0 = _mm512_ternarylogic_epi64::<0x96>(
                _mm512_ror_epi64::<1>(w15),
                _mm512_ror_epi64::<8>(w15),
                _mm512_srli_epi64::<7>(w15),
            );
            let s1 = _mm512_ternarylogic_epi64::<0x96>(
                _mm512_ror_epi64::<19>(w2),
                _mm512_ror_epi64::<61>(w2),
                _mm512_srli_epi64::<6>(w2),
            );
            w[T % 16] = _mm512_add_epi64(
                _mm512_add_epi64(w[T % 16], s0),
                _mm512_add_epi64(w[(T + 9) % 16], s1),
            );
        }
        let [a, b, c, d, e, f, g, h] = *s;
        let s1 = _mm512_ternarylogic_epi64::<0x96>(
            _mm512_ror_epi64::<14>(e),
            _mm512_ror_epi64::<18>(e),
            _mm512_ror_epi64::<41>(e),
        );
        let ch = _mm512_ternarylogic_epi64::<0xca>(e, f, g);
        let t1 = _mm512_add_epi64(
            _mm512_add_epi64(h, s1),
            _mm512_add_epi64(
                ch,
                _mm512_add_epi64(w[T % 16], _mm512_set1_epi64(SHA512_K[T] as i64)),
            ),
        );
        let s0 = _mm512_ternarylogic_epi64::<0x96>(
            _mm512_ror_epi64::<28>(a),
            _mm512_ror_epi64::<34>(a),
            _mm512_ror_epi64::<39>(a),
        );
        let maj = _mm512_ternarylogic_epi64::<0xe8>(a, b, c);
        *s = [
            _mm512_add_epi64(t1, _mm512_add_epi64(s0, maj)),
            a,
            b,
            c,
            _mm512_add_epi64(d, t1),
            e,
            f,
            g,
        ];
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn sha512_compress(h: &[V; 8], x: &[V; 16]) -> [V; 8] {
        let mut w = *x;
        let mut s = *h;
        macro_rules! rounds {
            ($($t:literal)*) => {
                $( sha512_round::<$t>(&mut s, &mut w); )*
            };
        }
        rounds!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
        core::array::from_fn(|i| _mm512_add_epi64(h[i], s[i]))
    }

    /// PBKDF2-HMAC-SHA-512 iterations 2..=`iterations` for 8 lanes (key blocks and U as
    /// big-endian 64-bit words).
    #[target_feature(enable = "avx512f")]
    pub(super) fn sha512(
        keys: &[[u64; 16]; 8],
        firsts: &[[u64; 8]; 8],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<[[u64; 8]; 8], Stopped> {
        let column = |f: &dyn Fn(usize) -> u64| {
            let mut w = [0u64; 8];
            for (lane, v) in w.iter_mut().enumerate() {
                *v = f(lane);
            }
            let v = load512(&w);
            zeroize::Zeroize::zeroize(&mut w);
            v
        };
        let iv: [V; 8] = core::array::from_fn(|i| _mm512_set1_epi64(SHA512_IV[i] as i64));
        let keyed = |pad: u64| {
            let x: [V; 16] = core::array::from_fn(|i| column(&|lane| keys[lane][i] ^ pad));
            sha512_compress(&iv, &x)
        };
        let inner = keyed(0x3636_3636_3636_3636);
        let outer = keyed(0x5c5c_5c5c_5c5c_5c5c);
        // 64 message bytes, 0x80, zeros, the bit length (128 + 64 bytes) big-endian at the end.
        let mut x = [_mm512_setzero_si512(); 16];
        x[8] = _mm512_set1_epi64(i64::MIN);
        x[15] = _mm512_set1_epi64((128 + 64) * 8);
        let mut u: [V; 8] = core::array::from_fn(|i| column(&|lane| firsts[lane][i]));
        let mut acc = u;
        for i in 1..iterations {
            if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            x[..8].copy_from_slice(&u);
            let ih = sha512_compress(&inner, &x);
            x[..8].copy_from_slice(&ih);
            u = sha512_compress(&outer, &x);
            for (a, v) in acc.iter_mut().zip(&u) {
                *a = _mm512_xor_si512(*a, *v);
            }
        }
        let mut out = [[0u64; 8]; 8];
        for (i, v) in acc.iter().enumerate() {
            let mut w = [0u64; 8];
            store512(&mut w, *v);
            for (lane, o) in out.iter_mut().enumerate() {
                o[i] = w[lane];
            }
            zeroize::Zeroize::zeroize(&mut w);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_fips_180_4() {
        assert_eq!(SHA512_IV[0], 0x6a09_e667_f3bc_c908);
        assert_eq!(SHA512_IV[7], 0x5be0_cd19_137e_2179);
        assert_eq!(SHA512_K[0], 0x428a_2f98_d728_ae22);
        assert_eq!(SHA512_K[79], 0x6c44_198c_4a47_5817);
    }
}
