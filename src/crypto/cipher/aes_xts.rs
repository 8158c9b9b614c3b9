//! AES-256-XTS as one fused kernel: tweak generation, whitening and the AES rounds in a single
//! pass over each 512-byte data unit, so no tweak buffer is written and read back.
//!
//! Four kernels share one key schedule and are picked once per key by CPU feature detection:
//! VAES + VPCLMULQDQ at AVX-512 width (four blocks per instruction), the same at AVX2 width (two),
//! plain AES-NI (one block per instruction, eight in flight), and the portable batched XTS over
//! the `aes` crate for every other CPU. The tweaks of a unit are `T·α^j`; the vector kernels make
//! four (or two) of them at once with per-lane variable shifts and fold the bits that leave the
//! top of the 128-bit lane back in with one carry-less multiply by 0x87.
//!
//! The last AES round and the output whitening are merged: `aesenclast(x, k ^ t)` equals
//! `aesenclast(x, k) ^ t`, so whitening costs nothing on the way out.

use std::fmt;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::{BlockCipher, CipherId};
use crate::crypto::cpu;
#[cfg(target_arch = "x86_64")]
use crate::crypto::simd::{load128, load256, load512, store128, store256, store512, to_array};
use crate::crypto::xts::{DATA_UNIT, Direction, XtsCipher, xts};

/// Which AES-XTS kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AesBackend {
    /// VAES and VPCLMULQDQ on 512-bit registers (AVX-512F and BW).
    Vaes512,
    /// VAES and VPCLMULQDQ on 256-bit registers (AVX2).
    Vaes256,
    /// AES-NI, one block per instruction, eight blocks in flight.
    AesNi,
    /// Batched XTS over the `aes` crate (which has its own run-time detection).
    Portable,
}

impl AesBackend {
    /// Every backend, fastest first.
    pub const ALL: [AesBackend; 4] = [
        AesBackend::Vaes512,
        AesBackend::Vaes256,
        AesBackend::AesNi,
        AesBackend::Portable,
    ];

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        self.kernel().is_some()
    }

    /// The backend's kernel with the CPU token it needs, when this CPU has the features.
    fn kernel(self) -> Option<Kernel> {
        match self {
            AesBackend::Vaes512 => cpu::vaes512().map(Kernel::Vaes512),
            AesBackend::Vaes256 => cpu::vaes256().map(Kernel::Vaes256),
            AesBackend::AesNi => cpu::aes_ni().map(Kernel::AesNi),
            AesBackend::Portable => Some(Kernel::Portable),
        }
    }

    /// The fastest backend this CPU can run.
    pub fn detect() -> AesBackend {
        static BEST: std::sync::OnceLock<AesBackend> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            AesBackend::ALL
                .into_iter()
                .find(|b| b.is_available())
                .unwrap_or(AesBackend::Portable)
        })
    }

    /// Short name for reports (`vaes-512`, `aes-ni`, …).
    pub fn name(self) -> &'static str {
        match self {
            AesBackend::Vaes512 => "vaes-512",
            AesBackend::Vaes256 => "vaes-256",
            AesBackend::AesNi => "aes-ni",
            AesBackend::Portable => "portable",
        }
    }
}

/// The kernel of a backend, holding the CPU token its `#[target_feature]` code needs.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    Vaes512(cpu::Vaes512),
    Vaes256(cpu::Vaes256),
    AesNi(cpu::AesNi),
    Portable,
}

/// AES-256 round keys; wiped on drop.
struct RoundKeys([[u8; 16]; 15]);

impl Drop for RoundKeys {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// AES-256 in XTS mode with a primary and a tweak key, running the fastest kernel the CPU has.
pub struct AesXts {
    backend: AesBackend,
    kernel: Kernel,
    /// Primary key schedule for encryption.
    enc: RoundKeys,
    /// Primary key schedule for the equivalent inverse cipher (aesdec order).
    dec: RoundKeys,
    /// Tweak key schedule (always encryption).
    tweak: RoundKeys,
    /// The block ciphers of the portable backend.
    portable: Option<(Box<dyn BlockCipher>, Box<dyn BlockCipher>)>,
}

impl AesXts {
    /// Keys AES-XTS with the fastest backend of this CPU.
    pub fn new(primary: &[u8; 32], tweak: &[u8; 32]) -> AesXts {
        Self::build(primary, tweak, AesBackend::detect())
    }

    /// Keys AES-XTS with a given backend, or `None` when this CPU cannot run it (for tests and
    /// benchmarks that compare backends).
    pub fn with_backend(primary: &[u8; 32], tweak: &[u8; 32], b: AesBackend) -> Option<AesXts> {
        b.is_available().then(|| Self::build(primary, tweak, b))
    }

    fn build(primary: &[u8; 32], tweak: &[u8; 32], backend: AesBackend) -> AesXts {
        let Some(kernel) = backend.kernel() else {
            unreachable!("only backends this CPU can run are built")
        };
        let enc = expand_key(primary);
        let dec = inverse_schedule(&enc);
        let portable = (backend == AesBackend::Portable)
            .then(|| (CipherId::Aes.keyed(primary), CipherId::Aes.keyed(tweak)));
        AesXts {
            backend,
            kernel,
            enc,
            dec,
            tweak: expand_key(tweak),
            portable,
        }
    }

    /// The kernel in use.
    pub fn backend(&self) -> AesBackend {
        self.backend
    }

    /// Runs the vector kernel over whole units; `buf.len()` is a multiple of [`DATA_UNIT`].
    fn run_units(&self, dir: Direction, buf: &mut [u8], first_unit: u64) {
        let (units, rest) = buf.as_chunks_mut::<DATA_UNIT>();
        debug_assert!(rest.is_empty());
        let keys = match dir {
            Direction::Encrypt => &self.enc.0,
            Direction::Decrypt => &self.dec.0,
        };
        let tk = &self.tweak.0;
        #[cfg(target_arch = "x86_64")]
        match (self.kernel, dir) {
            // Each kernel holds the token of the CPU features it is compiled for.
            // SAFETY: the `Vaes512` token proves VAES, VPCLMULQDQ and AVX-512F/BW.
            (Kernel::Vaes512(_), Direction::Encrypt) => unsafe {
                vaes512::<false>(keys, tk, units, first_unit)
            },
            // SAFETY: the `Vaes512` token proves VAES, VPCLMULQDQ and AVX-512F/BW.
            (Kernel::Vaes512(_), Direction::Decrypt) => unsafe {
                vaes512::<true>(keys, tk, units, first_unit)
            },
            // SAFETY: the `Vaes256` token proves VAES, VPCLMULQDQ and AVX2.
            (Kernel::Vaes256(_), Direction::Encrypt) => unsafe {
                vaes256::<false>(keys, tk, units, first_unit)
            },
            // SAFETY: the `Vaes256` token proves VAES, VPCLMULQDQ and AVX2.
            (Kernel::Vaes256(_), Direction::Decrypt) => unsafe {
                vaes256::<true>(keys, tk, units, first_unit)
            },
            // SAFETY: the `AesNi` token proves AES-NI and SSE2.
            (Kernel::AesNi(_), Direction::Encrypt) => unsafe {
                aesni::<false>(keys, tk, units, first_unit)
            },
            // SAFETY: the `AesNi` token proves AES-NI and SSE2.
            (Kernel::AesNi(_), Direction::Decrypt) => unsafe {
                aesni::<true>(keys, tk, units, first_unit)
            },
            (Kernel::Portable, _) => unreachable!("portable backend handled by the caller"),
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (keys, tk, units, first_unit);
            unreachable!("only the portable backend exists off x86-64")
        }
    }
}

impl XtsCipher for AesXts {
    fn xts(&self, dir: Direction, buf: &mut [u8], first_unit: u64) {
        assert!(
            buf.len().is_multiple_of(16),
            "XTS buffer must hold whole 16-byte blocks"
        );
        if let Some((p, t)) = &self.portable {
            return xts(p.as_ref(), t.as_ref(), dir, buf, first_unit);
        }
        let whole = buf.len() / DATA_UNIT * DATA_UNIT;
        let (units, tail) = buf.split_at_mut(whole);
        if !units.is_empty() {
            self.run_units(dir, units, first_unit);
        }
        if !tail.is_empty() {
            // A short last unit (the 448-byte encrypted part of a header): run it as a whole
            // unit on the stack and keep only its first blocks, which XTS computes identically.
            let mut unit = [0u8; DATA_UNIT];
            unit[..tail.len()].copy_from_slice(tail);
            let n = first_unit.wrapping_add((whole / DATA_UNIT) as u64);
            self.run_units(dir, &mut unit, n);
            tail.copy_from_slice(&unit[..tail.len()]);
            unit.zeroize();
        }
    }
}

impl fmt::Debug for AesXts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AesXts {{ backend: {}, keys: <redacted> }}",
            self.backend.name()
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Key schedule (FIPS 197 §5.2 and §5.3.5), portable: it runs once per key.
// ---------------------------------------------------------------------------------------------

/// Multiplication in GF(2^8) modulo x^8 + x^4 + x^3 + x + 1.
const fn gmul(mut a: u8, mut b: u8) -> u8 {
    let mut acc = 0u8;
    while b != 0 {
        if b & 1 != 0 {
            acc ^= a;
        }
        let hi = a & 0x80;
        a <<= 1;
        if hi != 0 {
            a ^= 0x1b;
        }
        b >>= 1;
    }
    acc
}

/// The AES S-box, built from its definition: inversion in GF(2^8), then the affine map.
const SBOX: [u8; 256] = {
    let mut s = [0u8; 256];
    let mut x = 0usize;
    while x < 256 {
        // x^254 is the inverse (and maps 0 to 0).
        let mut inv = 1u8;
        let mut i = 0;
        while i < 254 {
            inv = gmul(inv, x as u8);
            i += 1;
        }
        let b = inv;
        s[x] = b ^ b.rotate_left(1) ^ b.rotate_left(2) ^ b.rotate_left(3) ^ b.rotate_left(4) ^ 0x63;
        x += 1;
    }
    s
};

fn expand_key(key: &[u8; 32]) -> RoundKeys {
    const RCON: [u8; 7] = [0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40];
    let mut w = [[0u8; 4]; 60];
    for (i, word) in w.iter_mut().take(8).enumerate() {
        word.copy_from_slice(&key[4 * i..4 * i + 4]);
    }
    for i in 8..60 {
        let mut t = w[i - 1];
        if i % 8 == 0 {
            t = [
                SBOX[t[1] as usize] ^ RCON[i / 8 - 1],
                SBOX[t[2] as usize],
                SBOX[t[3] as usize],
                SBOX[t[0] as usize],
            ];
        } else if i % 8 == 4 {
            t = t.map(|b| SBOX[b as usize]);
        }
        for (j, b) in t.iter().enumerate() {
            w[i][j] = w[i - 8][j] ^ b;
        }
    }
    let mut rk = RoundKeys([[0u8; 16]; 15]);
    for (r, k) in rk.0.iter_mut().enumerate() {
        for c in 0..4 {
            k[4 * c..4 * c + 4].copy_from_slice(&w[4 * r + c]);
        }
    }
    w.zeroize();
    rk
}

/// Round keys of the equivalent inverse cipher, in the order `aesdec` uses them.
fn inverse_schedule(enc: &RoundKeys) -> RoundKeys {
    let mut dec = RoundKeys([[0u8; 16]; 15]);
    dec.0[0] = enc.0[14];
    dec.0[14] = enc.0[0];
    for r in 1..14 {
        let k = &enc.0[14 - r];
        let d = &mut dec.0[r];
        for c in 0..4 {
            let [a0, a1, a2, a3] = [k[4 * c], k[4 * c + 1], k[4 * c + 2], k[4 * c + 3]];
            d[4 * c] = gmul(a0, 14) ^ gmul(a1, 11) ^ gmul(a2, 13) ^ gmul(a3, 9);
            d[4 * c + 1] = gmul(a0, 9) ^ gmul(a1, 14) ^ gmul(a2, 11) ^ gmul(a3, 13);
            d[4 * c + 2] = gmul(a0, 13) ^ gmul(a1, 9) ^ gmul(a2, 14) ^ gmul(a3, 11);
            d[4 * c + 3] = gmul(a0, 11) ^ gmul(a1, 13) ^ gmul(a2, 9) ^ gmul(a3, 14);
        }
    }
    dec
}

// ---------------------------------------------------------------------------------------------
// Kernels
// ---------------------------------------------------------------------------------------------

/// VAES-512: one data unit is eight registers of four blocks; the tweak starts of four units are
/// encrypted together in one register. The CPU must have AVX-512F/BW, VAES and VPCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,vaes,vpclmulqdq")]
fn vaes512<const DEC: bool>(
    keys: &[[u8; 16]; 15],
    tkeys: &[[u8; 16]; 15],
    units: &mut [[u8; DATA_UNIT]],
    first_unit: u64,
) {
    let mut rk = [_mm512_setzero_si512(); 15];
    let mut tk = [_mm512_setzero_si512(); 15];
    for i in 0..15 {
        rk[i] = _mm512_broadcast_i32x4(load128(&keys[i]));
        tk[i] = _mm512_broadcast_i32x4(load128(&tkeys[i]));
    }
    let poly = _mm512_set1_epi64(0x87);
    // Lane j of a broadcast tweak is multiplied by α^j: shift left by j, carry the j bits that
    // leave each 64-bit half (a shift by 64 yields zero for lane 0).
    let shl = _mm512_set_epi64(3, 3, 2, 2, 1, 1, 0, 0);
    let shr = _mm512_set_epi64(61, 61, 62, 62, 63, 63, 64, 64);
    let mut n = first_unit;
    for group in units.chunks_mut(4) {
        let idx = _mm512_set_epi64(
            0,
            n.wrapping_add(3) as i64,
            0,
            n.wrapping_add(2) as i64,
            0,
            n.wrapping_add(1) as i64,
            0,
            n as i64,
        );
        let mut t = _mm512_xor_si512(idx, tk[0]);
        for k in &tk[1..14] {
            t = _mm512_aesenc_epi128(t, *k);
        }
        t = _mm512_aesenclast_epi128(t, tk[14]);
        let mut starts: [u8; 64] = to_array(t);
        for (unit, start) in group.iter_mut().zip(starts.as_chunks::<16>().0) {
            let t0 = _mm512_broadcast_i32x4(load128(start));
            let c = _mm512_srlv_epi64(t0, shr);
            let mut tw = [_mm512_setzero_si512(); 8];
            tw[0] = xor3_512(
                _mm512_sllv_epi64(t0, shl),
                _mm512_bslli_epi128::<8>(c),
                _mm512_clmulepi64_epi128::<0x01>(c, poly),
            );
            for j in 1..8 {
                let c = _mm512_srli_epi64::<60>(tw[j - 1]);
                tw[j] = xor3_512(
                    _mm512_slli_epi64::<4>(tw[j - 1]),
                    _mm512_bslli_epi128::<8>(c),
                    _mm512_clmulepi64_epi128::<0x01>(c, poly),
                );
            }
            let data = unit.as_chunks_mut::<64>().0;
            let mut x = [_mm512_setzero_si512(); 8];
            for ((x, d), t) in x.iter_mut().zip(data.iter()).zip(&tw) {
                *x = xor3_512(load512(d), *t, rk[0]);
            }
            for k in &rk[1..14] {
                for v in &mut x {
                    *v = if DEC {
                        _mm512_aesdec_epi128(*v, *k)
                    } else {
                        _mm512_aesenc_epi128(*v, *k)
                    };
                }
            }
            for ((d, x), t) in data.iter_mut().zip(&x).zip(&tw) {
                let last = _mm512_xor_si512(rk[14], *t);
                let y = if DEC {
                    _mm512_aesdeclast_epi128(*x, last)
                } else {
                    _mm512_aesenclast_epi128(*x, last)
                };
                store512(d, y);
            }
        }
        starts.zeroize();
        n = n.wrapping_add(group.len() as u64);
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn xor3_512(a: __m512i, b: __m512i, c: __m512i) -> __m512i {
    _mm512_ternarylogic_epi64::<0x96>(a, b, c)
}

/// VAES at AVX2 width: a unit is two halves of eight registers of two blocks each. The CPU must
/// have AVX2, VAES and VPCLMULQDQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,vaes,vpclmulqdq")]
fn vaes256<const DEC: bool>(
    keys: &[[u8; 16]; 15],
    tkeys: &[[u8; 16]; 15],
    units: &mut [[u8; DATA_UNIT]],
    first_unit: u64,
) {
    let mut rk = [_mm256_setzero_si256(); 15];
    let mut tk = [_mm256_setzero_si256(); 15];
    for i in 0..15 {
        rk[i] = _mm256_broadcastsi128_si256(load128(&keys[i]));
        tk[i] = _mm256_broadcastsi128_si256(load128(&tkeys[i]));
    }
    let poly = _mm256_set1_epi64x(0x87);
    let shl = _mm256_set_epi64x(1, 1, 0, 0);
    let shr = _mm256_set_epi64x(63, 63, 64, 64);
    let mul_a2 = |t: __m256i| -> __m256i {
        let c = _mm256_srli_epi64::<62>(t);
        _mm256_xor_si256(
            _mm256_xor_si256(_mm256_slli_epi64::<2>(t), _mm256_bslli_epi128::<8>(c)),
            _mm256_clmulepi64_epi128::<0x01>(c, poly),
        )
    };
    let mut n = first_unit;
    for group in units.chunks_mut(2) {
        let idx = _mm256_set_epi64x(0, n.wrapping_add(1) as i64, 0, n as i64);
        let mut t = _mm256_xor_si256(idx, tk[0]);
        for k in &tk[1..14] {
            t = _mm256_aesenc_epi128(t, *k);
        }
        t = _mm256_aesenclast_epi128(t, tk[14]);
        let mut starts = [0u8; 32];
        store256(&mut starts, t);
        for (unit, start) in group.iter_mut().zip(starts.as_chunks::<16>().0) {
            let t0 = _mm256_broadcastsi128_si256(load128(start));
            let c = _mm256_srlv_epi64(t0, shr);
            let mut next = _mm256_xor_si256(
                _mm256_xor_si256(_mm256_sllv_epi64(t0, shl), _mm256_bslli_epi128::<8>(c)),
                _mm256_clmulepi64_epi128::<0x01>(c, poly),
            );
            for half in unit.as_chunks_mut::<256>().0 {
                let mut tw = [_mm256_setzero_si256(); 8];
                tw[0] = next;
                for j in 1..8 {
                    tw[j] = mul_a2(tw[j - 1]);
                }
                next = mul_a2(tw[7]);
                let data = half.as_chunks_mut::<32>().0;
                let mut x = [_mm256_setzero_si256(); 8];
                for ((x, d), t) in x.iter_mut().zip(data.iter()).zip(&tw) {
                    *x = _mm256_xor_si256(_mm256_xor_si256(load256(d), *t), rk[0]);
                }
                for k in &rk[1..14] {
                    for v in &mut x {
                        *v = if DEC {
                            _mm256_aesdec_epi128(*v, *k)
                        } else {
                            _mm256_aesenc_epi128(*v, *k)
                        };
                    }
                }
                for ((d, x), t) in data.iter_mut().zip(&x).zip(&tw) {
                    let last = _mm256_xor_si256(rk[14], *t);
                    let y = if DEC {
                        _mm256_aesdeclast_epi128(*x, last)
                    } else {
                        _mm256_aesenclast_epi128(*x, last)
                    };
                    store256(d, y);
                }
            }
        }
        starts.zeroize();
        n = n.wrapping_add(group.len() as u64);
    }
}

/// AES-NI: eight blocks in flight, tweaks stepped in a general-purpose register. The CPU must
/// have AES-NI.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "aes,sse2")]
fn aesni<const DEC: bool>(
    keys: &[[u8; 16]; 15],
    tkeys: &[[u8; 16]; 15],
    units: &mut [[u8; DATA_UNIT]],
    first_unit: u64,
) {
    let mut rk = [_mm_setzero_si128(); 15];
    let mut tk = [_mm_setzero_si128(); 15];
    for i in 0..15 {
        rk[i] = load128(&keys[i]);
        tk[i] = load128(&tkeys[i]);
    }
    let mut n = first_unit;
    for unit in units {
        let mut t = _mm_xor_si128(_mm_set_epi64x(0, n as i64), tk[0]);
        for k in &tk[1..14] {
            t = _mm_aesenc_si128(t, *k);
        }
        t = _mm_aesenclast_si128(t, tk[14]);
        let mut start = [0u8; 16];
        store128(&mut start, t);
        let mut tweak = u128::from_le_bytes(start);
        start.zeroize();
        // The batches step a copy: stepping `tweak` itself, whose address the wipe below takes,
        // kept it in memory across the batches (a store-forwarding stall every eight blocks).
        let mut next = tweak;
        for batch in unit.as_chunks_mut::<128>().0 {
            let mut tw = [_mm_setzero_si128(); 8];
            for slot in &mut tw {
                *slot = _mm_set_epi64x((next >> 64) as i64, next as i64);
                next = (next << 1) ^ (0x87 * (next >> 127));
            }
            let data = batch.as_chunks_mut::<16>().0;
            let mut x = [_mm_setzero_si128(); 8];
            for ((x, d), t) in x.iter_mut().zip(data.iter()).zip(&tw) {
                *x = _mm_xor_si128(_mm_xor_si128(load128(d), *t), rk[0]);
            }
            for k in &rk[1..14] {
                for v in &mut x {
                    *v = if DEC {
                        _mm_aesdec_si128(*v, *k)
                    } else {
                        _mm_aesenc_si128(*v, *k)
                    };
                }
            }
            for ((d, x), t) in data.iter_mut().zip(&x).zip(&tw) {
                let last = _mm_xor_si128(rk[14], *t);
                let y = if DEC {
                    _mm_aesdeclast_si128(*x, last)
                } else {
                    _mm_aesenclast_si128(*x, last)
                };
                store128(d, y);
            }
        }
        tweak.zeroize();
        n = n.wrapping_add(1);
    }
}
