//! PBKDF2-HMAC-Streebog-512 with an AVX-512 kernel (VBMI byte permutes and GFNI affine maps).
//!
//! Streebog's round function LPS works on a 64-byte state, which fits one `zmm` register:
//! * S (the byte substitution π) is a 256-entry byte lookup: two `vpermi2b` over 128 entries
//!   each and a select on the index's top bit;
//! * P (a byte transposition) and L (a GF(2)-linear map on each 64-bit word) are done together.
//!   Write the state as words `x_j` (little-endian, as the `streebog` crate stores it); output word
//!   `i` is the XOR over `j` of `Lin_j(S(byte i of x_j))`, where `Lin_j` maps the 8 bits `k` of a
//!   byte to `A[8 j + k]`. Byte `m` of `Lin_j` is an 8×8 bit matrix `M_jm`. The kernel keeps every
//!   512-bit value *transposed* (`t[8 i + j] = x_j` byte `i`): then broadcasting "column `j`" to
//!   all eight lanes is one `vpermb`, and one `vgf2p8affineqb` with `M_j0..M_j7` in lanes 0..7
//!   yields term `j` of every output byte, already in the transposed layout. LPS = 4 instructions
//!   for S, 8 permutes, 8 affine maps and 4 three-way XORs, with no table in memory.
//!
//! Only the 512-bit additions of the message sum Σ run in scalar code. The first PBKDF2
//! iteration (salt of any length) uses the `streebog` crate; the kernel runs the rest, where
//! every message is exactly one 64-byte block. Without AVX-512 VBMI and GFNI the caller falls
//! back to the crate (the dispatcher decides by the `Avx512Vbmi` token).

use std::sync::atomic::{AtomicBool, Ordering};

use super::{LaneJob, STOP_CHECK_EVERY, Stopped};
use crate::crypto::cpu::Avx512Vbmi;

/// The substitution π (RFC 6986 §6.2), the S-box shared with Kuznyechik.
const PI: [u8; 256] = [
    252, 238, 221, 17, 207, 110, 49, 22, 251, 196, 250, 218, 35, 197, 4, 77, 233, 119, 240, 219,
    147, 46, 153, 186, 23, 54, 241, 187, 20, 205, 95, 193, 249, 24, 101, 90, 226, 92, 239, 33, 129,
    28, 60, 66, 139, 1, 142, 79, 5, 132, 2, 174, 227, 106, 143, 160, 6, 11, 237, 152, 127, 212,
    211, 31, 235, 52, 44, 81, 234, 200, 72, 171, 242, 42, 104, 162, 253, 58, 206, 204, 181, 112,
    14, 86, 8, 12, 118, 18, 191, 114, 19, 71, 156, 183, 93, 135, 21, 161, 150, 41, 16, 123, 154,
    199, 243, 145, 120, 111, 157, 158, 178, 177, 50, 117, 25, 61, 255, 53, 138, 126, 109, 84, 198,
    128, 195, 189, 13, 87, 223, 245, 36, 169, 62, 168, 67, 201, 215, 121, 214, 246, 124, 34, 185,
    3, 224, 15, 236, 222, 122, 148, 176, 188, 220, 232, 40, 80, 78, 51, 10, 74, 167, 151, 96, 115,
    30, 0, 98, 68, 26, 184, 56, 130, 100, 159, 38, 65, 173, 69, 70, 146, 39, 94, 85, 47, 140, 163,
    165, 125, 105, 213, 149, 59, 7, 88, 179, 64, 134, 172, 29, 247, 48, 55, 107, 228, 136, 217,
    231, 137, 225, 27, 131, 73, 76, 63, 248, 254, 141, 83, 170, 144, 202, 216, 133, 97, 32, 113,
    103, 164, 45, 43, 9, 91, 203, 155, 37, 208, 190, 229, 108, 82, 89, 166, 116, 210, 230, 244,
    180, 192, 209, 102, 175, 194, 57, 75, 99, 182,
];

/// The linear map's rows (RFC 6986 §6.4): input bit `k` of byte `j` (least significant first)
/// contributes `A[8 * j + k]` to every output word, in the byte order of the `streebog` crate.
const A: [u64; 64] = [
    0x641c314b2b8ee083,
    0xc83862965601dd1b,
    0x8d70c431ac02a736,
    0x07e095624504536c,
    0x0edd37c48a08a6d8,
    0x1ca76e95091051ad,
    0x3853dc371220a247,
    0x70a6a56e2440598e,
    0xa48b474f9ef5dc18,
    0x550b8e9e21f7a530,
    0xaa16012142f35760,
    0x492c024284fbaec0,
    0x9258048415eb419d,
    0x39b008152acb8227,
    0x727d102a548b194e,
    0xe4fa2054a80b329c,
    0xf97d86d98a327728,
    0xeffa11af0964ee50,
    0xc3e9224312c8c1a0,
    0x9bcf4486248d9f5d,
    0x2b838811480723ba,
    0x561b0d22900e4669,
    0xac361a443d1c8cd2,
    0x456c34887a3805b9,
    0x5b068c651810a89e,
    0xb60c05ca30204d21,
    0x71180a8960409a42,
    0xe230140fc0802984,
    0xd960281e9d1d5215,
    0xafc0503c273aa42a,
    0x439da0784e745554,
    0x86275df09ce8aaa8,
    0x0321658cba93c138,
    0x0642ca05693b9f70,
    0x0c84890ad27623e0,
    0x18150f14b9ec46dd,
    0x302a1e286fc58ca7,
    0x60543c50de970553,
    0xc0a878a0a1330aa6,
    0x9d4df05d5f661451,
    0xaccc9ca9328a8950,
    0x4585254f64090fa0,
    0x8a174a9ec8121e5d,
    0x092e94218d243cba,
    0x125c354207487869,
    0x24b86a840e90f0d2,
    0x486dd4151c3dfdb9,
    0x90dab52a387ae76f,
    0x46b60f011a83988e,
    0x8c711e02341b2d01,
    0x05e23c0468365a02,
    0x0ad97808d06cb404,
    0x14aff010bdd87508,
    0x2843fd2067adea10,
    0x5086e740ce47c920,
    0xa011d380818e8f40,
    0x83478b07b2468764,
    0x1b8e0b0e798c13c8,
    0x3601161cf205268d,
    0x6c022c38f90a4c07,
    0xd8045870ef14980e,
    0xad08b0e0c3282d1c,
    0x47107ddd9b505a38,
    0x8e20faa72ba0b470,
];

/// The twelve round constants C_1..C_12 (RFC 6986 §6.6), as stored little-endian bytes.
const C: [[u8; 64]; 12] = [
    [
        0x07, 0x45, 0xa6, 0xf2, 0x59, 0x65, 0x80, 0xdd, 0x23, 0x4d, 0x74, 0xcc, 0x36, 0x74, 0x76,
        0x05, 0x15, 0xd3, 0x60, 0xa4, 0x08, 0x2a, 0x42, 0xa2, 0x01, 0x69, 0x67, 0x92, 0x91, 0xe0,
        0x7c, 0x4b, 0xfc, 0xc4, 0x85, 0x75, 0x8d, 0xb8, 0x4e, 0x71, 0x16, 0xd0, 0x45, 0x2e, 0x43,
        0x76, 0x6a, 0x2f, 0x1f, 0x7c, 0x65, 0xc0, 0x81, 0x2f, 0xcb, 0xeb, 0xe9, 0xda, 0xca, 0x1e,
        0xda, 0x5b, 0x08, 0xb1,
    ],
    [
        0xb7, 0x9b, 0xb1, 0x21, 0x70, 0x04, 0x79, 0xe6, 0x56, 0xcd, 0xcb, 0xd7, 0x1b, 0xa2, 0xdd,
        0x55, 0xca, 0xa7, 0x0a, 0xdb, 0xc2, 0x61, 0xb5, 0x5c, 0x58, 0x99, 0xd6, 0x12, 0x6b, 0x17,
        0xb5, 0x9a, 0x31, 0x01, 0xb5, 0x16, 0x0f, 0x5e, 0xd5, 0x61, 0x98, 0x2b, 0x23, 0x0a, 0x72,
        0xea, 0xfe, 0xf3, 0xd7, 0xb5, 0x70, 0x0f, 0x46, 0x9d, 0xe3, 0x4f, 0x1a, 0x2f, 0x9d, 0xa9,
        0x8a, 0xb5, 0xa3, 0x6f,
    ],
    [
        0xb2, 0x0a, 0xba, 0x0a, 0xf5, 0x96, 0x1e, 0x99, 0x31, 0xdb, 0x7a, 0x86, 0x43, 0xf4, 0xb6,
        0xc2, 0x09, 0xdb, 0x62, 0x60, 0x37, 0x3a, 0xc9, 0xc1, 0xb1, 0x9e, 0x35, 0x90, 0xe4, 0x0f,
        0xe2, 0xd3, 0x7b, 0x7b, 0x29, 0xb1, 0x14, 0x75, 0xea, 0xf2, 0x8b, 0x1f, 0x9c, 0x52, 0x5f,
        0x5e, 0xf1, 0x06, 0x35, 0x84, 0x3d, 0x6a, 0x28, 0xfc, 0x39, 0x0a, 0xc7, 0x2f, 0xce, 0x2b,
        0xac, 0xdc, 0x74, 0xf5,
    ],
    [
        0x2e, 0xd1, 0xe3, 0x84, 0xbc, 0xbe, 0x0c, 0x22, 0xf1, 0x37, 0xe8, 0x93, 0xa1, 0xea, 0x53,
        0x34, 0xbe, 0x03, 0x52, 0x93, 0x33, 0x13, 0xb7, 0xd8, 0x75, 0xd6, 0x03, 0xed, 0x82, 0x2c,
        0xd7, 0xa9, 0x3f, 0x35, 0x5e, 0x68, 0xad, 0x1c, 0x72, 0x9d, 0x7d, 0x3c, 0x5c, 0x33, 0x7e,
        0x85, 0x8e, 0x48, 0xdd, 0xe4, 0x71, 0x5d, 0xa0, 0xe1, 0x48, 0xf9, 0xd2, 0x66, 0x15, 0xe8,
        0xb3, 0xdf, 0x1f, 0xef,
    ],
    [
        0x57, 0xfe, 0x6c, 0x7c, 0xfd, 0x58, 0x17, 0x60, 0xf5, 0x63, 0xea, 0xa9, 0x7e, 0xa2, 0x56,
        0x7a, 0x16, 0x1a, 0x27, 0x23, 0xb7, 0x00, 0xff, 0xdf, 0xa3, 0xf5, 0x3a, 0x25, 0x47, 0x17,
        0xcd, 0xbf, 0xbd, 0xff, 0x0f, 0x80, 0xd7, 0x35, 0x9e, 0x35, 0x4a, 0x10, 0x86, 0x16, 0x1f,
        0x1c, 0x15, 0x7f, 0x63, 0x23, 0xa9, 0x6c, 0x0c, 0x41, 0x3f, 0x9a, 0x99, 0x47, 0x47, 0xad,
        0xac, 0x6b, 0xea, 0x4b,
    ],
    [
        0x6e, 0x7d, 0x64, 0x46, 0x7a, 0x40, 0x68, 0xfa, 0x35, 0x4f, 0x90, 0x36, 0x72, 0xc5, 0x71,
        0xbf, 0xb6, 0xc6, 0xbe, 0xc2, 0x66, 0x1f, 0xf2, 0x0a, 0xb4, 0xb7, 0x9a, 0x1c, 0xb7, 0xa6,
        0xfa, 0xcf, 0xc6, 0x8e, 0xf0, 0x9a, 0xb4, 0x9a, 0x7f, 0x18, 0x6c, 0xa4, 0x42, 0x51, 0xf9,
        0xc4, 0x66, 0x2d, 0xc0, 0x39, 0x30, 0x7a, 0x3b, 0xc3, 0xa4, 0x6f, 0xd9, 0xd3, 0x3a, 0x1d,
        0xae, 0xae, 0x4f, 0xae,
    ],
    [
        0x93, 0xd4, 0x14, 0x3a, 0x4d, 0x56, 0x86, 0x88, 0xf3, 0x4a, 0x3c, 0xa2, 0x4c, 0x45, 0x17,
        0x35, 0x04, 0x05, 0x4a, 0x28, 0x83, 0x69, 0x47, 0x06, 0x37, 0x2c, 0x82, 0x2d, 0xc5, 0xab,
        0x92, 0x09, 0xc9, 0x93, 0x7a, 0x19, 0x33, 0x3e, 0x47, 0xd3, 0xc9, 0x87, 0xbf, 0xe6, 0xc7,
        0xc6, 0x9e, 0x39, 0x54, 0x09, 0x24, 0xbf, 0xfe, 0x86, 0xac, 0x51, 0xec, 0xc5, 0xaa, 0xee,
        0x16, 0x0e, 0xc7, 0xf4,
    ],
    [
        0x1e, 0xe7, 0x02, 0xbf, 0xd4, 0x0d, 0x7f, 0xa4, 0xd9, 0xa8, 0x51, 0x59, 0x35, 0xc2, 0xac,
        0x36, 0x2f, 0xc4, 0xa5, 0xd1, 0x2b, 0x8d, 0xd1, 0x69, 0x90, 0x06, 0x9b, 0x92, 0xcb, 0x2b,
        0x89, 0xf4, 0x9a, 0xc4, 0xdb, 0x4d, 0x3b, 0x44, 0xb4, 0x89, 0x1e, 0xde, 0x36, 0x9c, 0x71,
        0xf8, 0xb7, 0x4e, 0x41, 0x41, 0x6e, 0x0c, 0x02, 0xaa, 0xe7, 0x03, 0xa7, 0xc9, 0x93, 0x4d,
        0x42, 0x5b, 0x1f, 0x9b,
    ],
    [
        0xdb, 0x5a, 0x23, 0x83, 0x51, 0x44, 0x61, 0x72, 0x60, 0x2a, 0x1f, 0xcb, 0x92, 0xdc, 0x38,
        0x0e, 0x54, 0x9c, 0x07, 0xa6, 0x9a, 0x8a, 0x2b, 0x7b, 0xb1, 0xce, 0xb2, 0xdb, 0x0b, 0x44,
        0x0a, 0x80, 0x84, 0x09, 0x0d, 0xe0, 0xb7, 0x55, 0xd9, 0x3c, 0x24, 0x42, 0x89, 0x25, 0x1b,
        0x3a, 0x7d, 0x3a, 0xde, 0x5f, 0x16, 0xec, 0xd8, 0x9a, 0x4c, 0x94, 0x9b, 0x22, 0x31, 0x16,
        0x54, 0x5a, 0x8f, 0x37,
    ],
    [
        0xed, 0x9c, 0x45, 0x98, 0xfb, 0xc7, 0xb4, 0x74, 0xc3, 0xb6, 0x3b, 0x15, 0xd1, 0xfa, 0x98,
        0x36, 0xf4, 0x52, 0x76, 0x3b, 0x30, 0x6c, 0x1e, 0x7a, 0x4b, 0x33, 0x69, 0xaf, 0x02, 0x67,
        0xe7, 0x9f, 0x03, 0x61, 0x33, 0x1b, 0x8a, 0xe1, 0xff, 0x1f, 0xdb, 0x78, 0x8a, 0xff, 0x1c,
        0xe7, 0x41, 0x89, 0xf3, 0xf3, 0xe4, 0xb2, 0x48, 0xe5, 0x2a, 0x38, 0x52, 0x6f, 0x05, 0x80,
        0xa6, 0xde, 0xbe, 0xab,
    ],
    [
        0x1b, 0x2d, 0xf3, 0x81, 0xcd, 0xa4, 0xca, 0x6b, 0x5d, 0xd8, 0x6f, 0xc0, 0x4a, 0x59, 0xa2,
        0xde, 0x98, 0x6e, 0x47, 0x7d, 0x1d, 0xcd, 0xba, 0xef, 0xca, 0xb9, 0x48, 0xea, 0xef, 0x71,
        0x1d, 0x8a, 0x79, 0x66, 0x84, 0x14, 0x21, 0x80, 0x01, 0x20, 0x61, 0x07, 0xab, 0xeb, 0xbb,
        0x6b, 0xfa, 0xd8, 0x94, 0xfe, 0x5a, 0x63, 0xcd, 0xc6, 0x02, 0x30, 0xfb, 0x89, 0xc8, 0xef,
        0xd0, 0x9e, 0xcd, 0x7b,
    ],
    [
        0x20, 0xd7, 0x1b, 0xf1, 0x4a, 0x92, 0xbc, 0x48, 0x99, 0x1b, 0xb2, 0xd9, 0xd5, 0x17, 0xf4,
        0xfa, 0x52, 0x28, 0xe1, 0x88, 0xaa, 0xa4, 0x1d, 0xe7, 0x86, 0xcc, 0x91, 0x18, 0x9d, 0xef,
        0x80, 0x5d, 0x9b, 0x9f, 0x21, 0x30, 0xd4, 0x12, 0x20, 0xf8, 0x77, 0x1d, 0xdf, 0xbc, 0x32,
        0x3c, 0xa4, 0xcd, 0x7a, 0xb1, 0x49, 0x04, 0xb0, 0x80, 0x13, 0xd2, 0xba, 0x31, 0x16, 0xf1,
        0x67, 0xe7, 0x8e, 0x37,
    ],
];

/// PBKDF2-HMAC-Streebog-512 output block `index` (1-based) into `out` (up to 64 bytes), with
/// the stop flag checked every few thousand iterations.
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

/// Several PBKDF2-HMAC-Streebog-512 blocks (any passwords, salts and indices), run
/// [`CHAINS`] at a time interleaved in one thread; `outs[i]` receives up to 64 bytes of job `i`.
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
            3 => chains::<3, 6>(vbmi, group, iterations, outs, stop)?,
            2 => chains::<2, 4>(vbmi, group, iterations, outs, stop)?,
            _ => chains::<1, 2>(vbmi, group, iterations, outs, stop)?,
        }
    }
    Ok(())
}

/// How many blocks [`pbkdf2_blocks`] interleaves in one thread.
pub const CHAINS: usize = 3;

fn chains<const N: usize, const M: usize>(
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
            let mut d = <::streebog::Streebog512 as digest::Digest>::digest(job.password);
            key.copy_from_slice(&d);
            zeroize::Zeroize::zeroize(d.as_mut_slice());
        } else {
            key[..job.password.len()].copy_from_slice(job.password);
        }
        let mut mac =
            match <hmac::SimpleHmac<::streebog::Streebog512> as KeyInit>::new_from_slice(key) {
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
    let result = unsafe { kernel::run::<N, M>(&keys, &firsts, iterations, stop) };
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

/// `a += b` modulo 2^512 on little-endian words.
fn add512(a: &mut [u64; 8], b: &[u64; 8]) {
    let mut carry = false;
    for (x, y) in a.iter_mut().zip(b) {
        let (s1, c1) = x.overflowing_add(*y);
        let (s2, c2) = s1.overflowing_add(u64::from(carry));
        *x = s2;
        carry = c1 || c2;
    }
}

/// The `vgf2p8affineqb` matrices: entry `j`, lane `m` is `M_jm` (byte `m` of `Lin_j`), with the
/// row for output bit `i` in byte `7 - i` and input bit `k` of that row in its bit `k`.
const fn matrices() -> [[u64; 8]; 8] {
    let mut out = [[0u64; 8]; 8];
    let mut j = 0;
    while j < 8 {
        let mut m = 0;
        while m < 8 {
            let mut q = 0u64;
            let mut i = 0;
            while i < 8 {
                let mut row = 0u64;
                let mut k = 0;
                while k < 8 {
                    row |= ((A[8 * j + k] >> (8 * m + i)) & 1) << k;
                    k += 1;
                }
                q |= row << (8 * (7 - i));
                i += 1;
            }
            out[j][m] = q;
            m += 1;
        }
        j += 1;
    }
    out
}

const MATRICES: [[u64; 8]; 8] = matrices();

#[cfg(target_arch = "x86_64")]
mod kernel {
    use core::arch::x86_64::*;

    use crate::crypto::simd::{load512, to_array};

    use super::{AtomicBool, C, MATRICES, Ordering, PI, STOP_CHECK_EVERY, Stopped, add512};

    struct Consts {
        sbox: [__m512i; 4],
        gather: [__m512i; 8],
        mats: [__m512i; 8],
        transpose: __m512i,
        c: [__m512i; 12],
        /// N = 512, N = 1024 and the padding block of an empty tail (the integer 1), transposed.
        n512: __m512i,
        n1024: __m512i,
        pad: __m512i,
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn consts() -> Consts {
        let index = |f: &dyn Fn(usize) -> usize| {
            let mut b = [0u8; 64];
            for (p, v) in b.iter_mut().enumerate() {
                *v = f(p) as u8;
            }
            load512(&b)
        };
        let transpose = index(&|p| 8 * (p % 8) + p / 8);
        let t = |v: __m512i| _mm512_permutexvar_epi8(transpose, v);
        let mut sbox = [_mm512_setzero_si512(); 4];
        for (q, s) in sbox.iter_mut().enumerate() {
            let mut b = [0u8; 64];
            b.copy_from_slice(&PI[64 * q..64 * (q + 1)]);
            *s = load512(&b);
        }
        let mut gather = [_mm512_setzero_si512(); 8];
        let mut mats = [_mm512_setzero_si512(); 8];
        for j in 0..8 {
            gather[j] = index(&|p| 8 * (p % 8) + j);
            mats[j] = load512(&MATRICES[j]);
        }
        let mut c = [_mm512_setzero_si512(); 12];
        for (v, bytes) in c.iter_mut().zip(C.iter()) {
            *v = t(load512(bytes));
        }
        let word0 = |x: u64| t(load512(&[x, 0, 0, 0, 0, 0, 0, 0]));
        Consts {
            sbox,
            gather,
            mats,
            transpose,
            c,
            n512: word0(512),
            n1024: word0(1024),
            pad: word0(1),
        }
    }

    /// LPS on a transposed state.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn lps(x: __m512i, k: &Consts) -> __m512i {
        let lo = _mm512_permutex2var_epi8(k.sbox[0], x, k.sbox[1]);
        let hi = _mm512_permutex2var_epi8(k.sbox[2], x, k.sbox[3]);
        let s = _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), lo, hi);
        let term = |j: usize| {
            _mm512_gf2p8affine_epi64_epi8::<0>(_mm512_permutexvar_epi8(k.gather[j], s), k.mats[j])
        };
        let a = _mm512_ternarylogic_epi64::<0x96>(term(0), term(1), term(2));
        let b = _mm512_ternarylogic_epi64::<0x96>(term(3), term(4), term(5));
        let c = _mm512_ternarylogic_epi64::<0x96>(term(6), term(7), a);
        _mm512_xor_si512(b, c)
    }

    /// The compression g_N(h, m) of `N` independent chains side by side, every value
    /// transposed. Each of the twelve steps runs `M` = 2 `N` LPS (every chain's data and key),
    /// which keeps the vector units busy while one LPS waits on the previous one.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn g<const N: usize, const M: usize>(
        h: [__m512i; N],
        n: __m512i,
        m: [__m512i; N],
        k: &Consts,
    ) -> [__m512i; N] {
        let mut key: [__m512i; N] = core::array::from_fn(|c| lps(_mm512_xor_si512(h[c], n), k));
        let mut t = m;
        for rc in &k.c {
            let both: [__m512i; M] = core::array::from_fn(|i| {
                if i < N {
                    lps(_mm512_xor_si512(t[i], key[i]), k)
                } else {
                    lps(_mm512_xor_si512(key[i - N], *rc), k)
                }
            });
            t = core::array::from_fn(|c| both[c]);
            key = core::array::from_fn(|c| both[N + c]);
        }
        core::array::from_fn(|c| {
            _mm512_ternarylogic_epi64::<0x96>(h[c], m[c], _mm512_xor_si512(t[c], key[c]))
        })
    }

    /// One HMAC half of `N` chains after their key blocks: chaining values (transposed) and
    /// Σ + 1 (words).
    struct Halves<const N: usize> {
        h: [__m512i; N],
        sigma_plus_one: [[u64; 8]; N],
    }

    impl<const N: usize> Drop for Halves<N> {
        fn drop(&mut self) {
            zeroize::Zeroize::zeroize(self.sigma_plus_one.as_flattened_mut());
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn halves<const N: usize, const M: usize>(
        keys: &[[u8; 64]; N],
        pad: u8,
        k: &Consts,
    ) -> Halves<N> {
        let mut sigma_plus_one = [[0u64; 8]; N];
        let blocks: [__m512i; N] = core::array::from_fn(|c| {
            let mut blk = keys[c];
            for b in &mut blk {
                *b ^= pad;
            }
            let v = load512(&blk);
            zeroize::Zeroize::zeroize(&mut blk);
            sigma_plus_one[c] = to_array::<[u64; 8]>(v);
            add512(&mut sigma_plus_one[c], &[1, 0, 0, 0, 0, 0, 0, 0]);
            _mm512_permutexvar_epi8(k.transpose, v)
        });
        let zero = _mm512_setzero_si512();
        let h = g::<N, M>([zero; N], zero, blocks, k);
        Halves { h, sigma_plus_one }
    }

    /// Streebog-512 of each chain's key block followed by its 64-byte message (transposed):
    /// the message block, the padding block of the empty tail, then N and Σ.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    fn hash<const N: usize, const M: usize>(
        half: &Halves<N>,
        m: [__m512i; N],
        k: &Consts,
    ) -> [__m512i; N] {
        let zero = _mm512_setzero_si512();
        let h = g::<N, M>(half.h, k.n512, m, k);
        let h = g::<N, M>(h, k.n1024, [k.pad; N], k);
        let h = g::<N, M>(h, zero, [k.n1024; N], k);
        let s: [__m512i; N] = core::array::from_fn(|c| {
            let mut msg = to_array::<[u64; 8]>(_mm512_permutexvar_epi8(k.transpose, m[c]));
            let mut sigma = half.sigma_plus_one[c];
            add512(&mut sigma, &msg);
            let s = _mm512_permutexvar_epi8(k.transpose, load512(&sigma));
            zeroize::Zeroize::zeroize(&mut msg);
            zeroize::Zeroize::zeroize(&mut sigma);
            s
        });
        g::<N, M>(h, zero, s, k)
    }

    /// Iterations 2..=`iterations` of `N` PBKDF2 blocks (key blocks `keys`, first U `firsts`),
    /// `M` = 2 `N`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    pub(super) fn run<const N: usize, const M: usize>(
        keys: &[[u8; 64]; N],
        firsts: &[[u8; 64]; N],
        iterations: u32,
        stop: &AtomicBool,
    ) -> Result<[[u8; 64]; N], Stopped> {
        debug_assert_eq!(M, 2 * N);
        let k = consts();
        let inner = halves::<N, M>(keys, 0x36, &k);
        let outer = halves::<N, M>(keys, 0x5c, &k);
        let mut u: [__m512i; N] =
            core::array::from_fn(|c| _mm512_permutexvar_epi8(k.transpose, load512(&firsts[c])));
        let mut acc = u;
        for i in 1..iterations {
            if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
                return Err(Stopped);
            }
            let ih = hash::<N, M>(&inner, u, &k);
            u = hash::<N, M>(&outer, ih, &k);
            for (a, v) in acc.iter_mut().zip(&u) {
                *a = _mm512_xor_si512(*a, *v);
            }
        }
        Ok(core::array::from_fn(|c| {
            to_array::<[u8; 64]>(_mm512_permutexvar_epi8(k.transpose, acc[c]))
        }))
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
        pbkdf2::pbkdf2::<hmac::SimpleHmac<::streebog::Streebog512>>(
            password, salt, iterations, out,
        )
        .expect("HMAC takes any key length");
    }

    #[test]
    fn kernel_matches_streebog_crate_on_random_inputs() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Streebog") {
            return;
        }
        kernel_checks::single_blocks_match(0x5eed_0001, reference, block);
    }

    #[test]
    fn interleaved_chains_match_streebog_crate() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Streebog") {
            return;
        }
        kernel_checks::grouped_blocks_match(0x5eed_0003, reference, blocks);
    }

    #[test]
    fn kernel_stops_when_flag_raised() {
        if !kernel_checks::kernel_present(cpu::avx512_vbmi().is_some(), "Streebog") {
            return;
        }
        kernel_checks::stops_when_flag_raised(block);
    }
}
