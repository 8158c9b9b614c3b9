//! Argon2id (RFC 9106, version 0x13) with an AVX-512 compression function.
//!
//! The compression G(X, Y) runs the BLAKE2b-based permutation P over the eight rows and then
//! the eight columns of the 1 KiB block. Here all eight rows go through P at once, one row per
//! 64-bit lane of sixteen `zmm` registers (register `k`, lane `i` = word `16 i + k`), so P is
//! pure vertical arithmetic; two 8×8 word transposes switch to the column layout (register
//! `m`, lane `j` = word `m` of column `j`) and one interleave back to memory order. The rest
//! (H0, the variable-length hash H', block indexing) follows RFC 9106 §3.2–3.4 in portable
//! code. The block memory stays on ordinary pages: transparent huge pages saved TLB misses
//! on the random reference reads when memory was warm, but cost more than they saved on a
//! first run (measured here). Without AVX-512 the `argon2` crate runs instead (the dispatcher
//! decides by the `Avx512` token); the crate is also the oracle of the tests.

use digest::Digest;

use crate::crypto::cpu::Avx512;

/// Whether [`argon2id`] handles these parameters (the tag length must be 32, 64 or a multiple
/// of 32 above 64, which covers every length the format uses).
pub fn supports(out_len: usize, parallelism: u32) -> bool {
    parallelism >= 1 && (out_len == 32 || (out_len >= 64 && out_len.is_multiple_of(32)))
}

const BLOCK_WORDS: usize = 128;
type Block = [u64; BLOCK_WORDS];
const SYNC_POINTS: u32 = 4;
const ADDRESSES_PER_BLOCK: u32 = 128;

/// Argon2id of `password` and `salt` with `memory_kib`, `passes` and `parallelism`, into `out`.
///
/// # Errors
/// When the memory cannot be allocated.
///
/// # Panics
/// If [`supports`] is false for `out.len()` and `parallelism`.
pub fn argon2id(
    avx512: Avx512,
    password: &[u8],
    salt: &[u8],
    memory_kib: u32,
    passes: u32,
    parallelism: u32,
    out: &mut [u8],
) -> Result<(), std::collections::TryReserveError> {
    assert!(supports(out.len(), parallelism), "parameters not supported");
    let p = parallelism;
    let m_prime = (memory_kib.max(8 * p) / (SYNC_POINTS * p)) * (SYNC_POINTS * p);
    let q = m_prime / p;
    let segment = q / SYNC_POINTS;
    let le = |x: u32| x.to_le_bytes();
    let mut h0 = blake2::Blake2b512::new();
    for part in [
        &le(p)[..],
        &le(u32::try_from(out.len()).unwrap_or(u32::MAX)),
        &le(memory_kib),
        &le(passes),
        &le(0x13),
        &le(2),
        &le(u32::try_from(password.len()).unwrap_or(u32::MAX)),
        password,
        &le(u32::try_from(salt.len()).unwrap_or(u32::MAX)),
        salt,
        &le(0),
        &le(0),
    ] {
        h0.update(part);
    }
    let mut h0 = h0.finalize();

    let mut memory: Vec<Block> = Vec::new();
    memory.try_reserve_exact(m_prime as usize)?;
    memory.resize(m_prime as usize, [0u64; BLOCK_WORDS]);
    let mut bytes = [0u8; 1024];
    for lane in 0..p {
        for j in 0..2u32 {
            h_prime(&[&h0, &le(j), &le(lane)], &mut bytes);
            let b = &mut memory[(lane * q + j) as usize];
            for (w, c) in b.iter_mut().zip(bytes.chunks_exact(8)) {
                *w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
            }
        }
    }
    zeroize::Zeroize::zeroize(h0.as_mut_slice());

    for pass in 0..passes {
        for slice in 0..SYNC_POINTS {
            for lane in 0..p {
                fill_segment(
                    avx512,
                    &mut memory,
                    pass,
                    slice,
                    lane,
                    p,
                    q,
                    segment,
                    m_prime,
                    passes,
                );
            }
        }
    }

    let mut c = memory[(q - 1) as usize];
    for lane in 1..p {
        for (a, b) in c.iter_mut().zip(memory[(lane * q + q - 1) as usize].iter()) {
            *a ^= b;
        }
    }
    for (chunk, w) in bytes.chunks_exact_mut(8).zip(c.iter()) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    h_prime(&[&bytes], out);
    zeroize::Zeroize::zeroize(&mut bytes);
    zeroize::Zeroize::zeroize(&mut c);
    zeroize::Zeroize::zeroize(memory.as_flattened_mut());
    Ok(())
}

/// The variable-length hash H' of RFC 9106 §3.3 over the concatenation of `parts`, for output
/// lengths of 32, 64 or a multiple of 32 above 64.
fn h_prime(parts: &[&[u8]], out: &mut [u8]) {
    let t = u32::try_from(out.len()).unwrap_or(u32::MAX);
    if out.len() <= 64 {
        let mut h = blake2::Blake2b512::new();
        let mut d = if out.len() == 32 {
            let mut h = blake2::Blake2b256::new();
            h.update(t.to_le_bytes());
            for part in parts {
                h.update(part);
            }
            let mut d = [0u8; 64];
            d[..32].copy_from_slice(&h.finalize());
            d
        } else {
            h.update(t.to_le_bytes());
            for part in parts {
                h.update(part);
            }
            let mut d = [0u8; 64];
            d.copy_from_slice(&h.finalize());
            d
        };
        out.copy_from_slice(&d[..out.len()]);
        zeroize::Zeroize::zeroize(&mut d);
        return;
    }
    let mut h = blake2::Blake2b512::new();
    h.update(t.to_le_bytes());
    for part in parts {
        h.update(part);
    }
    let mut v = h.finalize();
    let r = out.len().div_ceil(32) - 2;
    out[..32].copy_from_slice(&v[..32]);
    for i in 1..r {
        v = blake2::Blake2b512::digest(v);
        out[32 * i..32 * i + 32].copy_from_slice(&v[..32]);
    }
    // The last hash has T − 32 r = 64 bytes for the lengths supported.
    v = blake2::Blake2b512::digest(v);
    out[32 * r..].copy_from_slice(&v);
    zeroize::Zeroize::zeroize(v.as_mut_slice());
}

#[allow(clippy::too_many_arguments)]
fn fill_segment(
    avx512: Avx512,
    memory: &mut [Block],
    pass: u32,
    slice: u32,
    lane: u32,
    p: u32,
    q: u32,
    segment: u32,
    m_prime: u32,
    passes: u32,
) {
    let data_independent = pass == 0 && slice < 2;
    let mut input = [0u64; BLOCK_WORDS];
    let mut addresses = [0u64; BLOCK_WORDS];
    let zero = [0u64; BLOCK_WORDS];
    if data_independent {
        input[0] = u64::from(pass);
        input[1] = u64::from(lane);
        input[2] = u64::from(slice);
        input[3] = u64::from(m_prime);
        input[4] = u64::from(passes);
        input[5] = 2;
    }
    let next_addresses = |input: &mut Block, addresses: &mut Block| {
        input[6] += 1;
        let mut tmp = [0u64; BLOCK_WORDS];
        compress(avx512, &zero, input, &mut tmp, false);
        compress(avx512, &zero, &tmp, addresses, false);
    };
    let start = if pass == 0 && slice == 0 { 2 } else { 0 };
    if data_independent && start != 0 {
        next_addresses(&mut input, &mut addresses);
    }
    for i in start..segment {
        let index = slice * segment + i;
        let cur = (lane * q + index) as usize;
        let prev = if index == 0 {
            cur + q as usize - 1
        } else {
            cur - 1
        };
        let rand = if data_independent {
            if i % ADDRESSES_PER_BLOCK == 0 {
                next_addresses(&mut input, &mut addresses);
            }
            addresses[(i % ADDRESSES_PER_BLOCK) as usize]
        } else {
            memory[prev][0]
        };
        let j1 = rand & 0xffff_ffff;
        let j2 = rand >> 32;
        let ref_lane = if pass == 0 && slice == 0 {
            lane
        } else {
            (j2 % u64::from(p)) as u32
        };
        let same_lane = ref_lane == lane;
        let area: u64 = if pass == 0 {
            if slice == 0 || same_lane {
                u64::from(index) - 1
            } else {
                u64::from(slice * segment) - u64::from(i == 0)
            }
        } else if same_lane {
            u64::from(q - segment + i) - 1
        } else {
            u64::from(q - segment) - u64::from(i == 0)
        };
        let x = (j1 * j1) >> 32;
        let relative = area - 1 - ((area * x) >> 32);
        let start_pos = if pass == 0 || slice == SYNC_POINTS - 1 {
            0
        } else {
            u64::from((slice + 1) * segment)
        };
        let absolute = ((start_pos + relative) % u64::from(q)) as u32;
        let reference = (ref_lane * q + absolute) as usize;
        // `cur` differs from `prev` and `reference` (both lie before it in the pass's order).
        let (x_block, y_block) = (memory[prev], memory[reference]);
        compress(avx512, &x_block, &y_block, &mut memory[cur], pass > 0);
    }
    zeroize::Zeroize::zeroize(&mut addresses);
}

/// `out = G(x, y)`, or `out ^= G(x, y)` when `xor`.
fn compress(_avx512: Avx512, x: &Block, y: &Block, out: &mut Block, xor: bool) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the `Avx512` token proves this CPU has AVX-512F, the kernel's only feature.
    unsafe {
        kernel::compress(x, y, out, xor)
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("no CPU token exists off x86-64: {x:?} {y:?} {out:?} {xor}")
}

#[cfg(target_arch = "x86_64")]
mod kernel {
    use core::arch::x86_64::*;

    use super::Block;
    use crate::crypto::simd::{load512, store512};

    type V = __m512i;

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn fbl(a: V, b: V) -> V {
        let m = _mm512_mul_epu32(a, b);
        _mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(m, m))
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn gb(v: &mut [V; 16], a: usize, b: usize, c: usize, d: usize) {
        v[a] = fbl(v[a], v[b]);
        v[d] = _mm512_ror_epi64::<32>(_mm512_xor_si512(v[d], v[a]));
        v[c] = fbl(v[c], v[d]);
        v[b] = _mm512_ror_epi64::<24>(_mm512_xor_si512(v[b], v[c]));
        v[a] = fbl(v[a], v[b]);
        v[d] = _mm512_ror_epi64::<16>(_mm512_xor_si512(v[d], v[a]));
        v[c] = fbl(v[c], v[d]);
        v[b] = _mm512_ror_epi64::<63>(_mm512_xor_si512(v[b], v[c]));
    }

    /// P on eight 16-word groups at once, one group per lane.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn permute(v: &mut [V; 16]) {
        gb(v, 0, 4, 8, 12);
        gb(v, 1, 5, 9, 13);
        gb(v, 2, 6, 10, 14);
        gb(v, 3, 7, 11, 15);
        gb(v, 0, 5, 10, 15);
        gb(v, 1, 6, 11, 12);
        gb(v, 2, 7, 8, 13);
        gb(v, 3, 4, 9, 14);
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn idx(i: [i64; 8]) -> V {
        _mm512_set_epi64(i[7], i[6], i[5], i[4], i[3], i[2], i[1], i[0])
    }

    /// Transposes the 8×8 word matrix whose rows are `r` (row `i` = `r[i]`).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn transpose(r: [V; 8]) -> [V; 8] {
        let t: [V; 8] = core::array::from_fn(|k| {
            let (a, b) = (r[2 * (k / 2)], r[2 * (k / 2) + 1]);
            if k % 2 == 0 {
                _mm512_unpacklo_epi64(a, b)
            } else {
                _mm512_unpackhi_epi64(a, b)
            }
        });
        // t[2h] = rows 2h, 2h+1 at even columns; t[2h+1] at odd columns.
        let lo = idx([0, 1, 8, 9, 4, 5, 12, 13]);
        let hi = idx([2, 3, 10, 11, 6, 7, 14, 15]);
        // u[c] for c in 0..4 (rows 0-3) and u[4 + c] (rows 4-7): columns c and c + 4.
        let u = [
            _mm512_permutex2var_epi64(t[0], lo, t[2]),
            _mm512_permutex2var_epi64(t[1], lo, t[3]),
            _mm512_permutex2var_epi64(t[0], hi, t[2]),
            _mm512_permutex2var_epi64(t[1], hi, t[3]),
            _mm512_permutex2var_epi64(t[4], lo, t[6]),
            _mm512_permutex2var_epi64(t[5], lo, t[7]),
            _mm512_permutex2var_epi64(t[4], hi, t[6]),
            _mm512_permutex2var_epi64(t[5], hi, t[7]),
        ];
        let first = idx([0, 1, 2, 3, 8, 9, 10, 11]);
        let second = idx([4, 5, 6, 7, 12, 13, 14, 15]);
        core::array::from_fn(|c| {
            let (a, b) = (u[c % 4], u[4 + c % 4]);
            if c < 4 {
                _mm512_permutex2var_epi64(a, first, b)
            } else {
                _mm512_permutex2var_epi64(a, second, b)
            }
        })
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn compress(x: &Block, y: &Block, out: &mut Block, xor: bool) {
        let load = |b: &Block, q: usize| load512(&b.as_chunks::<8>().0[q]);
        let r: [V; 16] = core::array::from_fn(|q| _mm512_xor_si512(load(x, q), load(y, q)));
        // Rows: register k, lane i = word 16 i + k.
        let even = transpose(core::array::from_fn(|i| r[2 * i]));
        let odd = transpose(core::array::from_fn(|i| r[2 * i + 1]));
        let mut v: [V; 16] = core::array::from_fn(|k| if k < 8 { even[k] } else { odd[k - 8] });
        permute(&mut v);
        // Columns: register m, lane j = word m of column j (words 16 (m / 2) + 2 j + m % 2).
        let we = transpose(core::array::from_fn(|j| v[2 * j]));
        let wo = transpose(core::array::from_fn(|j| v[2 * j + 1]));
        let mut w: [V; 16] =
            core::array::from_fn(|m| if m % 2 == 0 { we[m / 2] } else { wo[m / 2] });
        permute(&mut w);
        let low = idx([0, 8, 1, 9, 2, 10, 3, 11]);
        let high = idx([4, 12, 5, 13, 6, 14, 7, 15]);
        for q in 0..16 {
            let (a, b) = (w[2 * (q / 2)], w[2 * (q / 2) + 1]);
            let z = if q % 2 == 0 {
                _mm512_permutex2var_epi64(a, low, b)
            } else {
                _mm512_permutex2var_epi64(a, high, b)
            };
            let mut res = _mm512_xor_si512(z, r[q]);
            if xor {
                res = _mm512_xor_si512(res, load(out, q));
            }
            store512(&mut out.as_chunks_mut::<8>().0[q], res);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(password: &[u8], salt: &[u8], m: u32, t: u32, p: u32, out: &mut [u8]) {
        let params = argon2::Params::new(m, t, p, Some(out.len())).expect("valid parameters");
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(password, salt, out)
            .expect("argon2 crate");
    }

    #[test]
    fn matches_argon2_crate() {
        if !crate::crypto::kdf::kernel_checks::kernel_present(
            crate::crypto::cpu::avx512().is_some(),
            "Argon2",
        ) {
            return;
        }
        let avx512 = crate::crypto::cpu::avx512().expect("AVX-512F");
        let cases: [(u32, u32, u32, usize); 8] = [
            (8, 1, 1, 32),
            (64, 1, 1, 64),
            (64, 3, 1, 192),
            (256, 2, 1, 192),
            (1000, 3, 1, 96),
            (2048, 4, 1, 192),
            (64, 2, 2, 64),
            (333, 3, 3, 128),
        ];
        for (n, &(m, t, p, len)) in cases.iter().enumerate() {
            let password: Vec<u8> = (0..(n * 7) as u8).map(|i| i.wrapping_mul(31)).collect();
            let salt: Vec<u8> = (0..64u8).map(|i| i ^ n as u8).collect();
            let mut want = vec![0u8; len];
            reference(&password, &salt, m, t, p, &mut want);
            let mut got = vec![0u8; len];
            argon2id(avx512, &password, &salt, m, t, p, &mut got).expect("memory");
            assert_eq!(got, want, "m={m} KiB t={t} p={p} len={len}");
        }
    }
}
