//! Multi-lane PBKDF2: several independent PBKDF2 blocks of one PRF and iteration count computed
//! side by side in the SIMD lanes of one thread.
//!
//! The unlock worst case derives ten RIPEMD-160 blocks for each header (and several blocks of
//! the other PRFs); each block is a chain of sequential HMAC calls, but different blocks (other
//! block index, other header's salt, other password) are independent, so one 32-bit lane per
//! block lets a single AVX-512 instruction advance sixteen chains at once.
//!
//! [`pbkdf2_blocks`] is the entry point for the unlock scheduler: it takes any number of jobs,
//! runs them through a lane kernel when the CPU and PRF have one (in groups of [`lanes`]), and
//! otherwise one after another with [`pbkdf2_block`]. The first iteration of every job (the salt,
//! of any length) is computed with the RustCrypto HMAC; the kernel runs the rest, where every
//! message is exactly one hash output. Kernels: RIPEMD-160 with AVX-512 (16 lanes).

use std::sync::atomic::{AtomicBool, Ordering};

use digest::{KeyInit, Mac};
use hmac::Hmac;

use super::prf::{Prf, Stopped, pbkdf2_block};

/// How many iterations run between two looks at the stop flag.
const STOP_CHECK_EVERY: u32 = 2048;

/// One PBKDF2 block to derive.
#[derive(Clone, Copy)]
pub struct LaneJob<'a> {
    /// The PBKDF2 password (already mixed with keyfiles).
    pub password: &'a [u8],
    /// The salt.
    pub salt: &'a [u8],
    /// 1-based block index.
    pub index: u32,
}

impl std::fmt::Debug for LaneJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneJob")
            .field("salt_len", &self.salt.len())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// How many blocks of `prf` one kernel call advances together on this CPU (1 = no lane kernel).
pub fn lanes(prf: Prf) -> usize {
    match prf {
        Prf::Ripemd160 if avx512() => 16,
        _ => 1,
    }
}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Derives PBKDF2 block `jobs[i].index` of `jobs[i].password` and `jobs[i].salt` into `outs[i]`
/// (up to one hash length each) for every job, all with `prf` and `iterations`.
///
/// Returns [`Stopped`] as soon as `stop` is seen raised (checked every few thousand iterations);
/// the outputs are then unspecified.
///
/// # Panics
/// If `jobs` and `outs` differ in length, `iterations` is 0 or `prf` is Argon2id.
pub fn pbkdf2_blocks(
    prf: Prf,
    jobs: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    assert_eq!(jobs.len(), outs.len(), "one output per job");
    assert!(iterations > 0, "PBKDF2 needs at least one iteration");
    let width = lanes(prf);
    if width == 1 {
        for (job, out) in jobs.iter().zip(outs.iter_mut()) {
            pbkdf2_block(
                prf,
                job.password,
                job.salt,
                iterations,
                job.index,
                out,
                stop,
            )?;
        }
        return Ok(());
    }
    for (group, outs) in jobs.chunks(width).zip(outs.chunks_mut(width)) {
        match prf {
            #[cfg(target_arch = "x86_64")]
            Prf::Ripemd160 => ripemd160_group(group, iterations, outs, stop)?,
            _ => unreachable!("lanes() offers no kernel for {prf:?}"),
        }
    }
    Ok(())
}

/// RIPEMD-160 initial chaining value.
const RMD_IV: [u32; 5] = [
    0x6745_2301,
    0xefcd_ab89,
    0x98ba_dcfe,
    0x1032_5476,
    0xc3d2_e1f0,
];

#[cfg(target_arch = "x86_64")]
fn ripemd160_group(
    group: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    // Lane-major inputs: key blocks (16 words) and first U (5 words) of every lane; lanes past
    // the group repeat its first job and are discarded.
    let mut keys = [[0u32; 16]; 16];
    let mut firsts = [[0u32; 5]; 16];
    for lane in 0..16 {
        let job = group[lane.min(group.len() - 1)];
        let mut key = [0u8; 64];
        if job.password.len() > 64 {
            let mut d = <ripemd::Ripemd160 as digest::Digest>::digest(job.password);
            key[..20].copy_from_slice(&d);
            zeroize::Zeroize::zeroize(d.as_mut_slice());
        } else {
            key[..job.password.len()].copy_from_slice(job.password);
        }
        for (w, c) in keys[lane].iter_mut().zip(key.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        let mut mac = match <Hmac<ripemd::Ripemd160> as KeyInit>::new_from_slice(&key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        zeroize::Zeroize::zeroize(&mut key);
        mac.update(job.salt);
        mac.update(&job.index.to_be_bytes());
        let mut u = mac.finalize().into_bytes();
        for (w, c) in firsts[lane].iter_mut().zip(u.chunks_exact(4)) {
            *w = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
        zeroize::Zeroize::zeroize(u.as_mut_slice());
    }
    // SAFETY: `lanes()` returned 16 only after detecting AVX-512F, the kernel's only feature.
    let result = unsafe { rmd_avx512::run(&keys, &firsts, iterations, stop) };
    zeroize::Zeroize::zeroize(&mut keys);
    zeroize::Zeroize::zeroize(&mut firsts);
    let mut acc = result?;
    for (lane, out) in outs.iter_mut().enumerate() {
        let mut bytes = [0u8; 20];
        for (c, w) in bytes.chunks_exact_mut(4).zip(&acc[lane]) {
            c.copy_from_slice(&w.to_le_bytes());
        }
        let n = out.len().min(20);
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

#[cfg(target_arch = "x86_64")]
mod rmd_avx512 {
    use core::arch::x86_64::*;

    use super::{AtomicBool, Ordering, RMD_IV, RMD_K, RMD_R, RMD_S, STOP_CHECK_EVERY, Stopped};

    type State = [__m512i; 5];

    /// The five boolean functions as `vpternlogd` truth tables (x, y, z = first, second, third).
    const F: [i32; 5] = [0x96, 0xca, 0x59, 0xe4, 0x2d];

    #[inline(always)]
    fn f<const IMM: i32>(x: __m512i, y: __m512i, z: __m512i) -> __m512i {
        // SAFETY: only called from `compress`, which runs with AVX-512F enabled.
        unsafe { _mm512_ternarylogic_epi32::<IMM>(x, y, z) }
    }

    /// One line (left `L = 0`, right `L = 1`) of the compression function.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn line<const L: usize>(h: &State, x: &[__m512i; 16]) -> State {
        let [mut a, mut b, mut c, mut d, mut e] = *h;
        for j in 0..80 {
            let round = j / 16;
            let func = if L == 0 { round } else { 4 - round };
            let fx = match func {
                0 => f::<{ F[0] }>(b, c, d),
                1 => f::<{ F[1] }>(b, c, d),
                2 => f::<{ F[2] }>(b, c, d),
                3 => f::<{ F[3] }>(b, c, d),
                _ => f::<{ F[4] }>(b, c, d),
            };
            let k = _mm512_set1_epi32(RMD_K[L][round] as i32);
            let sum =
                _mm512_add_epi32(_mm512_add_epi32(a, fx), _mm512_add_epi32(x[RMD_R[L][j]], k));
            let t = _mm512_add_epi32(
                _mm512_rolv_epi32(sum, _mm512_set1_epi32(RMD_S[L][j] as i32)),
                e,
            );
            a = e;
            e = d;
            d = _mm512_rol_epi32::<10>(c);
            c = b;
            b = t;
        }
        [a, b, c, d, e]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn compress(h: &State, x: &[__m512i; 16]) -> State {
        let l = line::<0>(h, x);
        let r = line::<1>(h, x);
        let add3 = |p: __m512i, q: __m512i, s: __m512i| _mm512_add_epi32(p, _mm512_add_epi32(q, s));
        [
            add3(h[1], l[2], r[3]),
            add3(h[2], l[3], r[4]),
            add3(h[3], l[4], r[0]),
            add3(h[4], l[0], r[1]),
            add3(h[0], l[1], r[2]),
        ]
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn lanes_of(words: &[u32; 16]) -> __m512i {
        // SAFETY: the pointer covers 64 readable bytes; the load is unaligned.
        unsafe { _mm512_loadu_si512(words.as_ptr().cast()) }
    }

    /// Iterations 2..=`iterations` for 16 lanes, given each lane's HMAC key block and first U.
    #[target_feature(enable = "avx512f")]
    pub(super) fn run(
        keys: &[[u32; 16]; 16],
        firsts: &[[u32; 5]; 16],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<[[u32; 5]; 16], Stopped> {
        let column = |f: &dyn Fn(usize) -> u32| {
            let mut w = [0u32; 16];
            for (lane, v) in w.iter_mut().enumerate() {
                *v = f(lane);
            }
            lanes_of(&w)
        };
        let iv: State = core::array::from_fn(|i| _mm512_set1_epi32(RMD_IV[i] as i32));
        let keyed = |pad: u32| {
            let x: [__m512i; 16] = core::array::from_fn(|i| column(&|lane| keys[lane][i] ^ pad));
            compress(&iv, &x)
        };
        let inner = keyed(0x3636_3636);
        let outer = keyed(0x5c5c_5c5c);
        // The message block of every HMAC hash here: 20 bytes, 0x80, zeros, bit length of
        // key block plus message (64 + 20 bytes) little-endian in words 14 and 15.
        let zero = _mm512_setzero_si512();
        let mut x = [zero; 16];
        x[5] = _mm512_set1_epi32(0x80);
        x[14] = _mm512_set1_epi32((64 + 20) * 8);
        let mut u: [__m512i; 5] = core::array::from_fn(|i| column(&|lane| firsts[lane][i]));
        let mut acc = u;
        for i in 1..iterations {
            if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            x[..5].copy_from_slice(&u);
            let ih = compress(&inner, &x);
            x[..5].copy_from_slice(&ih);
            u = compress(&outer, &x);
            for (a, v) in acc.iter_mut().zip(&u) {
                *a = _mm512_xor_si512(*a, *v);
            }
        }
        let mut out = [[0u32; 5]; 16];
        for (i, v) in acc.iter().enumerate() {
            let mut w = [0u32; 16];
            // SAFETY: the pointer covers 64 writable bytes; the store is unaligned.
            unsafe { _mm512_storeu_si512(w.as_mut_ptr().cast(), *v) };
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

    /// A small deterministic generator for test inputs (SplitMix64).
    fn next(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn reference(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match prf {
            Prf::Ripemd160 => {
                pbkdf2::pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, iterations, out)
            }
            other => unreachable!("no oracle wired for {other:?}"),
        }
    }

    fn check(prf: Prf, seed: u64) {
        let mut seed = seed;
        let never = AtomicBool::new(false);
        let len = prf.block_len();
        for iterations in [1u32, 2, 3, 1000, 2049] {
            // Up to 21 jobs (more than one group), mixed passwords, salts and block indices.
            let n = 1 + (next(&mut seed) % 21) as usize;
            let specs: Vec<(Vec<u8>, Vec<u8>, u32)> = (0..n)
                .map(|_| {
                    let pw_len = [0usize, 5, 64, 65, 100][(next(&mut seed) % 5) as usize];
                    let salt_len = [64usize, 0, 16, 100][(next(&mut seed) % 4) as usize];
                    let pw = (0..pw_len).map(|_| next(&mut seed) as u8).collect();
                    let salt = (0..salt_len).map(|_| next(&mut seed) as u8).collect();
                    (pw, salt, 1 + (next(&mut seed) % 10) as u32)
                })
                .collect();
            let jobs: Vec<LaneJob<'_>> = specs
                .iter()
                .map(|(p, s, i)| LaneJob {
                    password: p,
                    salt: s,
                    index: *i,
                })
                .collect();
            let mut got = vec![vec![0u8; len]; n];
            let mut outs: Vec<&mut [u8]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
            pbkdf2_blocks(prf, &jobs, iterations, &mut outs, &never).expect("never stopped");
            for (k, (p, s, i)) in specs.iter().enumerate() {
                let mut want = vec![0u8; len * *i as usize];
                reference(prf, p, s, iterations, &mut want);
                assert_eq!(
                    got[k][..],
                    want[len * (*i as usize - 1)..],
                    "{prf:?} job {k} of {n}: password {} B, salt {} B, block {i}, {iterations} iterations",
                    p.len(),
                    s.len()
                );
            }
        }
    }

    fn require_kernel(prf: Prf) -> bool {
        if lanes(prf) > 1 {
            return true;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI machines must run the {prf:?} lane kernel"
        );
        eprintln!("no lane kernel for {prf:?} on this CPU: checking the fallback only");
        false
    }

    #[test]
    fn ripemd160_lanes_match_pbkdf2_crate() {
        require_kernel(Prf::Ripemd160);
        check(Prf::Ripemd160, 0x0001_0160);
    }

    #[test]
    fn lanes_stop_when_flag_raised() {
        let stop = AtomicBool::new(true);
        let jobs = [LaneJob {
            password: b"pw",
            salt: b"salt",
            index: 1,
        }; 3];
        let mut bufs = [[0u8; 20]; 3];
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        assert_eq!(
            pbkdf2_blocks(Prf::Ripemd160, &jobs, 100_000, &mut outs, &stop),
            Err(Stopped)
        );
    }
}
