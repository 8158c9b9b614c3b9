//! PBKDF2-HMAC-Whirlpool with an AVX-512 kernel (VBMI byte permutes and GFNI affine maps).
//!
//! Whirlpool's 8×8-byte state (row `i` = bytes `8 i .. 8 i + 8`) fits one `zmm` register, one
//! row per 64-bit lane. A round is
//! * γ, the S-box: a 256-entry byte lookup as two `vpermi2b` and a select on the top bit;
//! * π, column `j` rotated down by `j` rows: one `vpermb`;
//! * θ, each row times the circulant matrix cir(1, 1, 4, 1, 8, 5, 2, 9) over GF(2^8) modulo
//!   x^8 + x^4 + x^3 + x^2 + 1: output byte `j` is the XOR over `t` of `c_t` times input byte
//!   `j − t` of the same row, i.e. the row rotated by `t` bytes (`vprolq`) times a constant,
//!   which is a GF(2)-linear map of each byte (`vgf2p8affineqb`);
//! * σ, the round key XOR.
//!
//! The S-box is built from the mini-boxes E and R of the Whirlpool specification (Barreto and
//! Rijmen, 2003) at compile time. The first PBKDF2 iteration (salt of any length) uses the
//! `whirlpool` crate through `hmac`; the kernel runs the rest, where each HMAC hash is the
//! precomputed key block, one 64-byte message block and one constant padding block.

use std::sync::atomic::{AtomicBool, Ordering};

use super::{LaneJob, STOP_CHECK_EVERY, Stopped};
use crate::crypto::cpu::Avx512Vbmi;

/// The mini-box E of the specification and its inverse, and the mini-box R.
const MINI_E: [u8; 16] = [
    0x1, 0xB, 0x9, 0xC, 0xD, 0x6, 0xF, 0x3, 0xE, 0x8, 0x7, 0x4, 0xA, 0x2, 0x5, 0x0,
];
const MINI_R: [u8; 16] = [
    0x7, 0xC, 0xB, 0xD, 0xE, 0x4, 0x9, 0xF, 0x6, 0x3, 0x8, 0xA, 0x2, 0x5, 0x1, 0x0,
];

/// The S-box: high nibble through E, low nibble through E⁻¹, both mixed through R and back.
const fn sbox() -> [u8; 256] {
    let mut inv = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        inv[MINI_E[i] as usize] = i as u8;
        i += 1;
    }
    let mut s = [0u8; 256];
    let mut x = 0;
    while x < 256 {
        let u = MINI_E[x >> 4];
        let l = inv[x & 15];
        let r = MINI_R[(u ^ l) as usize];
        s[x] = (MINI_E[(u ^ r) as usize] << 4) | inv[(l ^ r) as usize];
        x += 1;
    }
    s
}

const SBOX: [u8; 256] = sbox();

/// The `vgf2p8affineqb` matrix of multiplication by `c` modulo x^8 + x^4 + x^3 + x^2 + 1: the
/// row for output bit `i` in byte `7 − i`, its bit `k` = bit `i` of `c · x^k`.
const fn mul_matrix(c: u8) -> u64 {
    let mut cols = [0u8; 8];
    let mut v = c;
    let mut k = 0;
    while k < 8 {
        cols[k] = v;
        v = if v & 0x80 != 0 {
            (v << 1) ^ 0x1d
        } else {
            v << 1
        };
        k += 1;
    }
    let mut q = 0u64;
    let mut i = 0;
    while i < 8 {
        let mut row = 0u64;
        let mut k = 0;
        while k < 8 {
            row |= (((cols[k] >> i) & 1) as u64) << k;
            k += 1;
        }
        q |= row << (8 * (7 - i));
        i += 1;
    }
    q
}

/// PBKDF2-HMAC-Whirlpool output block `index` (1-based) into `out` (up to 64 bytes), with the
/// stop flag checked every few thousand iterations.
///
/// # Panics
/// If `iterations` is 0.
pub fn pbkdf2_block(
    vbmi: Avx512Vbmi,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    let job = LaneJob {
        password,
        salt,
        index,
    };
    pbkdf2_blocks(vbmi, &[job], iterations, &mut [out], stop)
}

/// How many blocks [`pbkdf2_blocks`] interleaves in one thread.
pub const CHAINS: usize = 3;

/// Several PBKDF2-HMAC-Whirlpool blocks (any passwords, salts and indices), run [`CHAINS`] at
/// a time interleaved in one thread; `outs[i]` receives up to 64 bytes of job `i`.
///
/// # Panics
/// If `iterations` is 0 or `jobs` and `outs` differ in length.
pub fn pbkdf2_blocks(
    vbmi: Avx512Vbmi,
    jobs: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    assert!(iterations > 0, "PBKDF2 needs at least one iteration");
    assert_eq!(jobs.len(), outs.len(), "one output per job");
    for (group, outs) in jobs.chunks(CHAINS).zip(outs.chunks_mut(CHAINS)) {
        match group.len() {
            3 => chains::<3>(vbmi, group, iterations, outs, stop)?,
            2 => chains::<2>(vbmi, group, iterations, outs, stop)?,
            _ => chains::<1>(vbmi, group, iterations, outs, stop)?,
        }
    }
    Ok(())
}

fn chains<const N: usize>(
    _vbmi: Avx512Vbmi,
    group: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    use digest::{KeyInit, Mac};
    let mut keys = [[0u8; 64]; N];
    let mut firsts = [[0u8; 64]; N];
    for ((job, key), first) in group.iter().zip(&mut keys).zip(&mut firsts) {
        if job.password.len() > 64 {
            let mut d = <::whirlpool::Whirlpool as digest::Digest>::digest(job.password);
            key.copy_from_slice(&d);
            zeroize::Zeroize::zeroize(d.as_mut_slice());
        } else {
            key[..job.password.len()].copy_from_slice(job.password);
        }
        let mut mac = match <hmac::Hmac<::whirlpool::Whirlpool> as KeyInit>::new_from_slice(key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(job.salt);
        mac.update(&job.index.to_be_bytes());
        let mut u = mac.finalize().into_bytes();
        first.copy_from_slice(&u);
        zeroize::Zeroize::zeroize(u.as_mut_slice());
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `Avx512Vbmi` token proves this CPU has every target feature the kernel is
    // compiled with.
    let result = unsafe { kernel::run::<N>(&keys, &firsts, iterations, stop) };
    #[cfg(not(target_arch = "x86_64"))]
    let result: Result<[[u8; 64]; N], Stopped> = unreachable!("no CPU token exists off x86-64");
    zeroize::Zeroize::zeroize(keys.as_flattened_mut());
    zeroize::Zeroize::zeroize(firsts.as_flattened_mut());
    let mut acc = result?;
    for (out, a) in outs.iter_mut().zip(&acc) {
        let n = out.len().min(64);
        out[..n].copy_from_slice(&a[..n]);
    }
    zeroize::Zeroize::zeroize(acc.as_flattened_mut());
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use core::arch::x86_64::*;

    use crate::crypto::simd::{load512, to_array};

    use super::{AtomicBool, Ordering, SBOX, STOP_CHECK_EVERY, Stopped, mul_matrix};

    struct Consts {
        sbox: [__m512i; 4],
        shift: __m512i,
        /// Multiplication by 4, 8, 5, 2 and 9.
        mul: [__m512i; 5],
        rc: [__m512i; 10],
        /// The padding block of a 128-byte message (key block + 64 bytes).
        pad: __m512i,
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn consts() -> Consts {
        let mut sbox = [_mm512_setzero_si512(); 4];
        for (q, s) in sbox.iter_mut().enumerate() {
            let mut b = [0u8; 64];
            b.copy_from_slice(&SBOX[64 * q..64 * (q + 1)]);
            *s = load512(&b);
        }
        // π: output row i, column j takes input row (i − j) mod 8, column j.
        let mut idx = [0u8; 64];
        for (p, v) in idx.iter_mut().enumerate() {
            let (i, j) = (p / 8, p % 8);
            *v = (8 * ((i + 8 - j) % 8) + j) as u8;
        }
        let shift = load512(&idx);
        let mul = [4u8, 8, 5, 2, 9].map(|c| _mm512_set1_epi64(mul_matrix(c) as i64));
        let rc = core::array::from_fn(|r| {
            let mut b = [0u8; 64];
            b[..8].copy_from_slice(&SBOX[8 * r..8 * r + 8]);
            load512(&b)
        });
        let mut p = [0u8; 64];
        p[0] = 0x80;
        p[62..].copy_from_slice(&1024u16.to_be_bytes());
        Consts {
            sbox,
            shift,
            mul,
            rc,
            pad: load512(&p),
        }
    }

    /// θ ∘ π ∘ γ.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn round(x: __m512i, k: &Consts) -> __m512i {
        let lo = _mm512_permutex2var_epi8(k.sbox[0], x, k.sbox[1]);
        let hi = _mm512_permutex2var_epi8(k.sbox[2], x, k.sbox[3]);
        let s = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), lo, hi);
        let a = _mm512_permutexvar_epi8(k.shift, s);
        // Row byte j gets c_t · byte (j − t): a rotation left by t bytes of the little-endian lane.
        let m = |c: usize, v: __m512i| _mm512_gf2p8affine_epi64_epi8::<0>(v, k.mul[c]);
        let t0 = _mm512_ternarylogic_epi64::<0x96>(
            a,
            _mm512_rol_epi64::<8>(a),
            _mm512_rol_epi64::<24>(a),
        );
        let t1 = _mm512_ternarylogic_epi64::<0x96>(
            m(0, _mm512_rol_epi64::<16>(a)),
            m(1, _mm512_rol_epi64::<32>(a)),
            m(2, _mm512_rol_epi64::<40>(a)),
        );
        let t2 = _mm512_ternarylogic_epi64::<0x96>(
            m(3, _mm512_rol_epi64::<48>(a)),
            m(4, _mm512_rol_epi64::<56>(a)),
            t0,
        );
        _mm512_xor_si512(t1, t2)
    }

    /// The compression function W[h](m) ⊕ h ⊕ m of `N` independent chains side by side
    /// (2 `N` rounds in flight per step: every chain's key and data).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn compress<const N: usize>(h: [__m512i; N], m: [__m512i; N], k: &Consts) -> [__m512i; N] {
        let mut key = h;
        let mut s: [__m512i; N] = core::array::from_fn(|c| _mm512_xor_si512(m[c], h[c]));
        for rc in &k.rc {
            let rk: [__m512i; N] = core::array::from_fn(|c| round(key[c], k));
            let rs: [__m512i; N] = core::array::from_fn(|c| round(s[c], k));
            key = core::array::from_fn(|c| _mm512_xor_si512(rk[c], *rc));
            s = core::array::from_fn(|c| _mm512_ternarylogic_epi64::<0x96>(rs[c], rk[c], *rc));
        }
        core::array::from_fn(|c| _mm512_ternarylogic_epi64::<0x96>(s[c], h[c], m[c]))
    }

    /// Iterations 2..=`iterations` of `N` PBKDF2 blocks (key blocks `keys`, first U `firsts`).
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    pub(super) fn run<const N: usize>(
        keys: &[[u8; 64]; N],
        firsts: &[[u8; 64]; N],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<[[u8; 64]; N], Stopped> {
        let k = consts();
        let keyed = |pad: u8| {
            let blocks: [__m512i; N] = core::array::from_fn(|c| {
                let mut blk = keys[c];
                for b in &mut blk {
                    *b ^= pad;
                }
                let v = load512(&blk);
                zeroize::Zeroize::zeroize(&mut blk);
                v
            });
            compress([_mm512_setzero_si512(); N], blocks, &k)
        };
        let inner = keyed(0x36);
        let outer = keyed(0x5c);
        let pad = [k.pad; N];
        let mut u: [__m512i; N] = core::array::from_fn(|c| load512(&firsts[c]));
        let mut acc = u;
        for i in 1..iterations {
            if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let ih = compress(compress(inner, u, &k), pad, &k);
            u = compress(compress(outer, ih, &k), pad, &k);
            for (a, v) in acc.iter_mut().zip(&u) {
                *a = _mm512_xor_si512(*a, *v);
            }
        }
        Ok(core::array::from_fn(|c| to_array::<[u8; 64]>(acc[c])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::cpu;
    use crate::crypto::kdf::kernel_checks;

    /// The kernel with this CPU's token (the tests run it only after `kernel_present`).
    fn block(
        password: &[u8],
        salt: &[u8],
        iterations: u32,
        index: u32,
        out: &mut [u8],
        stop: &AtomicBool,
    ) -> Result<(), Stopped> {
        let vbmi = cpu::avx512_vbmi().expect("AVX-512 VBMI and GFNI");
        pbkdf2_block(vbmi, password, salt, iterations, index, out, stop)
    }

    fn blocks(
        jobs: &[LaneJob<'_>],
        iterations: u32,
        outs: &mut [&mut [u8]],
        stop: &AtomicBool,
    ) -> Result<(), Stopped> {
        let vbmi = cpu::avx512_vbmi().expect("AVX-512 VBMI and GFNI");
        pbkdf2_blocks(vbmi, jobs, iterations, outs, stop)
    }

    fn reference(password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        pbkdf2::pbkdf2_hmac::<::whirlpool::Whirlpool>(password, salt, iterations, out);
    }

    #[test]
    fn kernel_matches_whirlpool_crate_on_random_inputs() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Whirlpool") {
            return;
        }
        kernel_checks::single_blocks_match(0x5eed_0002, reference, block);
    }

    #[test]
    fn interleaved_chains_match_whirlpool_crate() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Whirlpool") {
            return;
        }
        kernel_checks::grouped_blocks_match(0x5eed_0004, reference, blocks);
    }

    #[test]
    fn kernel_stops_when_flag_raised() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Whirlpool") {
            return;
        }
        kernel_checks::stops_when_flag_raised(block);
    }
}
