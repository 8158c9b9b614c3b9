//! Serpent-256, word-sliced: written from the Serpent specification (Anderson, Biham, Knudsen,
//! "Serpent: A Proposal for the AES", bitslice mode).
//!
//! In bitslice mode a block is four 32-bit words and every S-box application works on the four
//! words as 32 parallel 4-bit lookups. A SIMD register holding the same word of many blocks
//! therefore runs many blocks with the same instructions: 8 blocks per AVX2 register set, 16 per
//! AVX-512 set, and the kernels keep two sets in flight (16 or 32 blocks) so that the long
//! dependency chain of each round overlaps with the other set's.
//!
//! The S-boxes are evaluated from their tables, not from hand-found circuits: with AVX-512 each
//! output bit is two 3-input lookups (`vpternlogd`, one for x3 = 0 and one for x3 = 1) and a
//! select, twelve instructions per S-box; elsewhere each output bit is the XOR of its algebraic
//! normal form monomials, computed once per S-box from the table at compile time.

use std::fmt;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

use zeroize::Zeroize;

use super::{Block, BlockCipher};
use crate::crypto::cpu;

/// The eight S-boxes of the specification.
const SBOX: [[u8; 16]; 8] = [
    [3, 8, 15, 1, 10, 6, 5, 11, 14, 13, 4, 2, 7, 0, 9, 12],
    [15, 12, 2, 7, 9, 0, 5, 10, 1, 11, 14, 8, 6, 13, 3, 4],
    [8, 6, 7, 9, 3, 12, 10, 15, 13, 1, 14, 4, 0, 11, 5, 2],
    [0, 15, 11, 8, 12, 9, 6, 3, 13, 1, 2, 4, 10, 7, 5, 14],
    [1, 15, 8, 3, 12, 0, 11, 6, 2, 5, 4, 10, 9, 14, 7, 13],
    [15, 5, 2, 11, 4, 10, 9, 12, 0, 3, 14, 8, 13, 6, 7, 1],
    [7, 2, 12, 5, 8, 4, 6, 11, 14, 9, 1, 15, 13, 3, 10, 0],
    [1, 13, 15, 0, 14, 8, 2, 11, 7, 4, 12, 10, 9, 3, 5, 6],
];

/// The inverse S-boxes.
const SBOX_INV: [[u8; 16]; 8] = {
    let mut inv = [[0u8; 16]; 8];
    let mut s = 0;
    while s < 8 {
        let mut x = 0;
        while x < 16 {
            inv[s][SBOX[s][x] as usize] = x as u8;
            x += 1;
        }
        s += 1;
    }
    inv
};

/// Algebraic normal form of each output bit: bit `m` of `anf(t)[k]` says whether the monomial
/// `∏_{i ∈ m} x_i` appears in output bit `k` (Möbius transform of the truth table).
const fn anf(table: &[u8; 16]) -> [u16; 4] {
    let mut out = [0u16; 4];
    let mut k = 0;
    while k < 4 {
        let mut f = [0u8; 16];
        let mut x = 0;
        while x < 16 {
            f[x] = (table[x] >> k) & 1;
            x += 1;
        }
        let mut i = 0;
        while i < 4 {
            let mut x = 0;
            while x < 16 {
                if x & (1 << i) != 0 {
                    f[x] ^= f[x ^ (1 << i)];
                }
                x += 1;
            }
            i += 1;
        }
        let mut m = 0;
        while m < 16 {
            out[k] |= (f[m] as u16) << m;
            m += 1;
        }
        k += 1;
    }
    out
}

const ANF: [[u16; 4]; 8] = {
    let mut a = [[0u16; 4]; 8];
    let mut s = 0;
    while s < 8 {
        a[s] = anf(&SBOX[s]);
        s += 1;
    }
    a
};

const ANF_INV: [[u16; 4]; 8] = {
    let mut a = [[0u16; 4]; 8];
    let mut s = 0;
    while s < 8 {
        a[s] = anf(&SBOX_INV[s]);
        s += 1;
    }
    a
};

/// The golden-ratio constant of the key schedule.
const PHI: u32 = 0x9e37_79b9;

/// A vector of 32-bit lanes, each lane one word of a different block.
trait Lanes: Copy {
    fn splat(v: u32) -> Self;
    fn xor(self, o: Self) -> Self;
    fn and(self, o: Self) -> Self;
    fn rotl<const N: i32>(self) -> Self;
    fn shl<const N: u32>(self) -> Self;
    /// `a ^ b ^ c`.
    // Inlined into each kernel: a default method is otherwise compiled once, without the
    // kernel's target features (the AVX2 kernel then ran at 9 MB/s, slower than portable code).
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        a.xor(b).xor(c)
    }
    /// S-box `S` (forward when `INV` is false) applied word-sliced.
    #[inline(always)]
    fn sbox<const S: usize, const INV: bool>(x: [Self; 4]) -> [Self; 4] {
        let anf = if INV { &ANF_INV[S] } else { &ANF[S] };
        anf_eval(anf, x)
    }
}

/// Evaluates four output bits from their algebraic normal forms.
#[inline(always)]
fn anf_eval<W: Lanes>(anf: &[u16; 4], [a, b, c, d]: [W; 4]) -> [W; 4] {
    let ones = W::splat(u32::MAX);
    let ab = a.and(b);
    let ac = a.and(c);
    let bc = b.and(c);
    let ad = a.and(d);
    let bd = b.and(d);
    let cd = c.and(d);
    let mono = [
        ones,
        a,
        b,
        ab,
        c,
        ac,
        bc,
        ab.and(c),
        d,
        ad,
        bd,
        ab.and(d),
        cd,
        ac.and(d),
        bc.and(d),
        ab.and(cd),
    ];
    let mut out = [W::splat(0); 4];
    for k in 0..4 {
        let mut acc: Option<W> = None;
        for (m, v) in mono.iter().enumerate() {
            if anf[k] >> m & 1 == 1 {
                acc = Some(match acc {
                    None => *v,
                    Some(x) => x.xor(*v),
                });
            }
        }
        out[k] = acc.unwrap_or(W::splat(0));
    }
    out
}

impl Lanes for u32 {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        v
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        self ^ o
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        self & o
    }
    #[inline(always)]
    fn rotl<const N: i32>(self) -> Self {
        self.rotate_left(N as u32)
    }
    #[inline(always)]
    fn shl<const N: u32>(self) -> Self {
        self << N
    }
}

/// Two independent register sets side by side, for instruction-level parallelism.
#[derive(Clone, Copy)]
struct X2<W>(W, W);

impl<W: Lanes> Lanes for X2<W> {
    #[inline(always)]
    fn splat(v: u32) -> Self {
        X2(W::splat(v), W::splat(v))
    }
    #[inline(always)]
    fn xor(self, o: Self) -> Self {
        X2(self.0.xor(o.0), self.1.xor(o.1))
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        X2(self.0.and(o.0), self.1.and(o.1))
    }
    #[inline(always)]
    fn rotl<const N: i32>(self) -> Self {
        X2(self.0.rotl::<N>(), self.1.rotl::<N>())
    }
    #[inline(always)]
    fn shl<const N: u32>(self) -> Self {
        X2(self.0.shl::<N>(), self.1.shl::<N>())
    }
    #[inline(always)]
    fn xor3(a: Self, b: Self, c: Self) -> Self {
        X2(W::xor3(a.0, b.0, c.0), W::xor3(a.1, b.1, c.1))
    }
    #[inline(always)]
    fn sbox<const S: usize, const INV: bool>(x: [Self; 4]) -> [Self; 4] {
        let y0 = W::sbox::<S, INV>([x[0].0, x[1].0, x[2].0, x[3].0]);
        let y1 = W::sbox::<S, INV>([x[0].1, x[1].1, x[2].1, x[3].1]);
        [
            X2(y0[0], y1[0]),
            X2(y0[1], y1[1]),
            X2(y0[2], y1[2]),
            X2(y0[3], y1[3]),
        ]
    }
}

#[inline(always)]
fn linear<W: Lanes>([x0, x1, x2, x3]: [W; 4]) -> [W; 4] {
    let x0 = x0.rotl::<13>();
    let x2 = x2.rotl::<3>();
    let x1 = W::xor3(x1, x0, x2);
    let x3 = W::xor3(x3, x2, x0.shl::<3>());
    let x1 = x1.rotl::<1>();
    let x3 = x3.rotl::<7>();
    let x0 = W::xor3(x0, x1, x3);
    let x2 = W::xor3(x2, x3, x1.shl::<7>());
    [x0.rotl::<5>(), x1, x2.rotl::<22>(), x3]
}

#[inline(always)]
fn linear_inv<W: Lanes>([x0, x1, x2, x3]: [W; 4]) -> [W; 4] {
    let x2 = x2.rotl::<{ 32 - 22 }>();
    let x0 = x0.rotl::<{ 32 - 5 }>();
    let x2 = W::xor3(x2, x3, x1.shl::<7>());
    let x0 = W::xor3(x0, x1, x3);
    let x3 = x3.rotl::<{ 32 - 7 }>();
    let x1 = x1.rotl::<{ 32 - 1 }>();
    let x3 = W::xor3(x3, x2, x0.shl::<3>());
    let x1 = W::xor3(x1, x0, x2);
    let x2 = x2.rotl::<{ 32 - 3 }>();
    let x0 = x0.rotl::<{ 32 - 13 }>();
    [x0, x1, x2, x3]
}

#[inline(always)]
fn mix<W: Lanes>(x: [W; 4], k: &[u32; 4]) -> [W; 4] {
    [
        x[0].xor(W::splat(k[0])),
        x[1].xor(W::splat(k[1])),
        x[2].xor(W::splat(k[2])),
        x[3].xor(W::splat(k[3])),
    ]
}

/// Eight rounds `r..r+8`, with the round keys of round `r + i` at `rk[r + i]`.
#[inline(always)]
fn enc8<W: Lanes>(mut x: [W; 4], rk: &[[u32; 4]; 33], r: usize, last: bool) -> [W; 4] {
    macro_rules! round {
        ($s:literal) => {
            x = W::sbox::<$s, false>(mix(x, &rk[r + $s]));
            if !(last && $s == 7) {
                x = linear(x);
            }
        };
    }
    round!(0);
    round!(1);
    round!(2);
    round!(3);
    round!(4);
    round!(5);
    round!(6);
    round!(7);
    x
}

#[inline(always)]
fn dec8<W: Lanes>(mut x: [W; 4], rk: &[[u32; 4]; 33], r: usize, last: bool) -> [W; 4] {
    macro_rules! round {
        ($s:literal) => {
            if !(last && $s == 7) {
                x = linear_inv(x);
            }
            x = mix(W::sbox::<$s, true>(x), &rk[r + $s]);
        };
    }
    round!(7);
    round!(6);
    round!(5);
    round!(4);
    round!(3);
    round!(2);
    round!(1);
    round!(0);
    x
}

#[inline(always)]
fn encrypt_words<W: Lanes>(x: [W; 4], rk: &[[u32; 4]; 33]) -> [W; 4] {
    let x = enc8(x, rk, 0, false);
    let x = enc8(x, rk, 8, false);
    let x = enc8(x, rk, 16, false);
    let x = enc8(x, rk, 24, true);
    mix(x, &rk[32])
}

#[inline(always)]
fn decrypt_words<W: Lanes>(x: [W; 4], rk: &[[u32; 4]; 33]) -> [W; 4] {
    let x = mix(x, &rk[32]);
    let x = dec8(x, rk, 24, true);
    let x = dec8(x, rk, 16, false);
    let x = dec8(x, rk, 8, false);
    dec8(x, rk, 0, false)
}

/// Which Serpent kernel runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SerpentBackend {
    /// AVX-512F: 32 blocks per step, S-boxes by `vpternlogd`.
    Avx512,
    /// AVX2: 16 blocks per step.
    Avx2,
    /// Plain 32-bit words, one block at a time.
    Portable,
}

impl SerpentBackend {
    /// Every backend, fastest first.
    pub const ALL: [SerpentBackend; 3] = [
        SerpentBackend::Avx512,
        SerpentBackend::Avx2,
        SerpentBackend::Portable,
    ];

    /// Whether this CPU can run the backend.
    pub fn is_available(self) -> bool {
        self.kernel().is_some()
    }

    /// The backend's kernel with the CPU token it needs, when this CPU has the features.
    fn kernel(self) -> Option<Kernel> {
        match self {
            SerpentBackend::Avx512 => cpu::avx512().map(Kernel::Avx512),
            SerpentBackend::Avx2 => cpu::avx2().map(Kernel::Avx2),
            SerpentBackend::Portable => Some(Kernel::Portable),
        }
    }

    /// The fastest backend this CPU can run.
    pub fn detect() -> SerpentBackend {
        static BEST: std::sync::OnceLock<SerpentBackend> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| {
            SerpentBackend::ALL
                .into_iter()
                .find(|b| b.is_available())
                .unwrap_or(SerpentBackend::Portable)
        })
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            SerpentBackend::Avx512 => "avx-512",
            SerpentBackend::Avx2 => "avx2",
            SerpentBackend::Portable => "portable",
        }
    }

    /// Blocks per kernel step.
    fn width(self) -> usize {
        match self {
            SerpentBackend::Avx512 => 32,
            SerpentBackend::Avx2 => 16,
            SerpentBackend::Portable => 1,
        }
    }
}

/// The kernel of a backend, holding the CPU token its `#[target_feature]` code needs.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    Avx512(cpu::Avx512),
    Avx2(cpu::Avx2),
    Portable,
}

/// Serpent-256 with its 33 round keys; the keys are wiped on drop.
pub struct Serpent {
    rk: [[u32; 4]; 33],
    backend: SerpentBackend,
    kernel: Kernel,
}

impl Serpent {
    /// Keyed Serpent running the fastest kernel of this CPU.
    pub fn new(key: &[u8; 32]) -> Serpent {
        Self::build(key, SerpentBackend::detect())
    }

    /// Keyed Serpent with a given kernel, or `None` when this CPU cannot run it.
    pub fn with_backend(key: &[u8; 32], backend: SerpentBackend) -> Option<Serpent> {
        backend.is_available().then(|| Self::build(key, backend))
    }

    /// The kernel in use.
    pub fn backend(&self) -> SerpentBackend {
        self.backend
    }

    fn build(key: &[u8; 32], backend: SerpentBackend) -> Serpent {
        // Prekeys w_-8 .. w_131 (w_-8 at index 0).
        let mut w = [0u32; 140];
        for (i, chunk) in key.chunks_exact(4).enumerate() {
            w[i] = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        for i in 8..140 {
            w[i] =
                (w[i - 8] ^ w[i - 5] ^ w[i - 3] ^ w[i - 1] ^ PHI ^ (i as u32 - 8)).rotate_left(11);
        }
        let mut rk = [[0u32; 4]; 33];
        for (i, k) in rk.iter_mut().enumerate() {
            let x = [w[8 + 4 * i], w[9 + 4 * i], w[10 + 4 * i], w[11 + 4 * i]];
            // Round key i goes through S-box (3 - i) mod 8.
            *k = match (35 - i) % 8 {
                0 => u32::sbox::<0, false>(x),
                1 => u32::sbox::<1, false>(x),
                2 => u32::sbox::<2, false>(x),
                3 => u32::sbox::<3, false>(x),
                4 => u32::sbox::<4, false>(x),
                5 => u32::sbox::<5, false>(x),
                6 => u32::sbox::<6, false>(x),
                _ => u32::sbox::<7, false>(x),
            };
        }
        w.zeroize();
        let Some(kernel) = backend.kernel() else {
            unreachable!("only backends this CPU can run are built")
        };
        Serpent {
            rk,
            backend,
            kernel,
        }
    }

    /// Runs `width` blocks (a whole kernel step) in place.
    fn step(&self, blocks: &mut [Block], encrypt: bool) {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(_) => {
                // SAFETY: the `Avx512` token proves this CPU has AVX-512F.
                unsafe { simd::avx512(&self.rk, blocks, encrypt) }
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(_) => {
                // SAFETY: the `Avx2` token proves this CPU has AVX2.
                unsafe { simd::avx2(&self.rk, blocks, encrypt) }
            }
            _ => {
                for b in blocks {
                    portable_block(&self.rk, b, encrypt);
                }
            }
        }
    }

    fn run(&self, blocks: &mut [Block], encrypt: bool) {
        let width = self.backend.width();
        let mut chunks = blocks.chunks_exact_mut(width);
        for c in &mut chunks {
            self.step(c, encrypt);
        }
        let rest = chunks.into_remainder();
        if rest.is_empty() {
            return;
        }
        if width == 1 || rest.len() < 4 {
            for b in rest {
                portable_block(&self.rk, b, encrypt);
            }
            return;
        }
        // A short tail runs as one padded step: cheaper than block-at-a-time above 3 blocks.
        let mut pad = [[0u8; 16]; 32];
        pad[..rest.len()].copy_from_slice(rest);
        self.step(&mut pad[..width], encrypt);
        rest.copy_from_slice(&pad[..rest.len()]);
        pad.zeroize();
    }
}

fn portable_block(rk: &[[u32; 4]; 33], b: &mut Block, encrypt: bool) {
    let mut x = [0u32; 4];
    for (w, chunk) in x.iter_mut().zip(b.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    let y = if encrypt {
        encrypt_words(x, rk)
    } else {
        decrypt_words(x, rk)
    };
    for (w, chunk) in y.iter().zip(b.chunks_exact_mut(4)) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
}

impl BlockCipher for Serpent {
    fn encrypt_blocks(&self, blocks: &mut [Block]) {
        self.run(blocks, true);
    }
    fn decrypt_blocks(&self, blocks: &mut [Block]) {
        self.run(blocks, false);
    }
}

impl Drop for Serpent {
    fn drop(&mut self) {
        self.rk.zeroize();
    }
}

impl fmt::Debug for Serpent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Serpent {{ backend: {}, keys: <redacted> }}",
            self.backend.name()
        )
    }
}

#[cfg(target_arch = "x86_64")]
mod simd {
    //! The x86-64 register types behind [`Lanes`] and the kernels that load, transpose and
    //! store blocks around the generic rounds.

    use super::*;
    use crate::crypto::simd::{load256, load512, store256, store512};

    /// Sixteen 32-bit lanes (AVX-512F).
    #[derive(Clone, Copy)]
    pub(super) struct Z(__m512i);

    /// Eight 32-bit lanes (AVX2).
    #[derive(Clone, Copy)]
    pub(super) struct Y(__m256i);

    // The methods below call intrinsics of AVX-512F (for `Z`) and AVX2 (for `Y`). Values of
    // these types are only created inside `avx512` and `avx2`, whose callers checked the CPU
    // features, and every method is inlined into those functions.

    impl Lanes for Z {
        #[inline(always)]
        fn splat(v: u32) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_set1_epi32(v as i32) })
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_xor_si512(self.0, o.0) })
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_and_si512(self.0, o.0) })
        }
        #[inline(always)]
        fn rotl<const N: i32>(self) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_rol_epi32::<N>(self.0) })
        }
        #[inline(always)]
        fn shl<const N: u32>(self) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_slli_epi32::<N>(self.0) })
        }
        #[inline(always)]
        fn xor3(a: Self, b: Self, c: Self) -> Self {
            // SAFETY: see the note above the impls.
            Z(unsafe { _mm512_ternarylogic_epi32::<0x96>(a.0, b.0, c.0) })
        }
        #[inline(always)]
        fn sbox<const S: usize, const INV: bool>(x: [Self; 4]) -> [Self; 4] {
            match (S, INV) {
                (0, false) => s0(x),
                (1, false) => s1(x),
                (2, false) => s2(x),
                (3, false) => s3(x),
                (4, false) => s4(x),
                (5, false) => s5(x),
                (6, false) => s6(x),
                (7, false) => s7(x),
                (0, true) => i0(x),
                (1, true) => i1(x),
                (2, true) => i2(x),
                (3, true) => i3(x),
                (4, true) => i4(x),
                (5, true) => i5(x),
                (6, true) => i6(x),
                _ => i7(x),
            }
        }
    }

    /// `vpternlogd` immediates of each S-box: for output bit k, `[k][0]` is the lookup of
    /// (x2, x1, x0) when x3 = 0 and `[k][1]` when x3 = 1.
    const fn tern(table: &[u8; 16]) -> [[u8; 2]; 4] {
        let mut out = [[0u8; 2]; 4];
        let mut k = 0;
        while k < 4 {
            let mut x = 0;
            while x < 16 {
                out[k][x / 8] |= ((table[x] >> k) & 1) << (x % 8);
                x += 1;
            }
            k += 1;
        }
        out
    }

    /// `x3 ? T1(x2, x1, x0) : T0(x2, x1, x0)` for one output bit.
    #[inline(always)]
    fn select<const T0: i32, const T1: i32>([x0, x1, x2, x3]: [Z; 4]) -> Z {
        // SAFETY: `Z` values exist only under AVX-512F (see the note above the impls).
        unsafe {
            let g0 = _mm512_ternarylogic_epi32::<T0>(x2.0, x1.0, x0.0);
            let g1 = _mm512_ternarylogic_epi32::<T1>(x2.0, x1.0, x0.0);
            Z(_mm512_ternarylogic_epi32::<0xCA>(x3.0, g1, g0))
        }
    }

    /// One function per S-box and inverse S-box, with its immediates as constants.
    macro_rules! tern_sboxes {
        ($($name:ident = $table:expr;)*) => {$(
            #[inline(always)]
            fn $name(x: [Z; 4]) -> [Z; 4] {
                const T: [[u8; 2]; 4] = tern(&$table);
                [
                    select::<{ T[0][0] as i32 }, { T[0][1] as i32 }>(x),
                    select::<{ T[1][0] as i32 }, { T[1][1] as i32 }>(x),
                    select::<{ T[2][0] as i32 }, { T[2][1] as i32 }>(x),
                    select::<{ T[3][0] as i32 }, { T[3][1] as i32 }>(x),
                ]
            }
        )*};
    }

    tern_sboxes! {
        s0 = SBOX[0]; s1 = SBOX[1]; s2 = SBOX[2]; s3 = SBOX[3];
        s4 = SBOX[4]; s5 = SBOX[5]; s6 = SBOX[6]; s7 = SBOX[7];
        i0 = SBOX_INV[0]; i1 = SBOX_INV[1]; i2 = SBOX_INV[2]; i3 = SBOX_INV[3];
        i4 = SBOX_INV[4]; i5 = SBOX_INV[5]; i6 = SBOX_INV[6]; i7 = SBOX_INV[7];
    }

    impl Lanes for Y {
        #[inline(always)]
        fn splat(v: u32) -> Self {
            // SAFETY: see the note above the impls.
            Y(unsafe { _mm256_set1_epi32(v as i32) })
        }
        #[inline(always)]
        fn xor(self, o: Self) -> Self {
            // SAFETY: see the note above the impls.
            Y(unsafe { _mm256_xor_si256(self.0, o.0) })
        }
        #[inline(always)]
        fn and(self, o: Self) -> Self {
            // SAFETY: see the note above the impls.
            Y(unsafe { _mm256_and_si256(self.0, o.0) })
        }
        #[inline(always)]
        fn rotl<const N: i32>(self) -> Self {
            // SAFETY: see the note above the impls.
            Y(unsafe {
                let n = _mm_cvtsi32_si128(N);
                let m = _mm_cvtsi32_si128(32 - N);
                _mm256_or_si256(_mm256_sll_epi32(self.0, n), _mm256_srl_epi32(self.0, m))
            })
        }
        #[inline(always)]
        fn shl<const N: u32>(self) -> Self {
            // SAFETY: see the note above the impls.
            Y(unsafe { _mm256_sll_epi32(self.0, _mm_cvtsi32_si128(N as i32)) })
        }
    }

    /// A kernel over two register sets: loads four registers per set and transposes each
    /// 128-bit lane group (a 4×4 word transpose, its own inverse) so that register j holds word
    /// j of every block, runs the rounds, transposes back and stores.
    macro_rules! kernel {
        ($name:ident, $feat:literal, $W:ident, $load:ident, $store:ident,
         $lo32:ident, $hi32:ident, $lo64:ident, $hi64:ident, $bytes:literal) => {
            /// The CPU must have the named features. Panics unless `blocks` holds exactly two
            /// register sets of blocks.
            #[target_feature(enable = $feat)]
            pub(super) fn $name(rk: &[[u32; 4]; 33], blocks: &mut [Block], encrypt: bool) {
                assert_eq!(blocks.len(), 8 * $bytes / 16);
                let regs = blocks.as_flattened_mut().as_chunks_mut::<$bytes>().0;
                macro_rules! transpose {
                    ($r:expr) => {{
                        let [r0, r1, r2, r3] = $r;
                        let t0 = $lo32(r0, r1);
                        let t1 = $hi32(r0, r1);
                        let t2 = $lo32(r2, r3);
                        let t3 = $hi32(r2, r3);
                        [$lo64(t0, t2), $hi64(t0, t2), $lo64(t1, t3), $hi64(t1, t3)]
                    }};
                }
                let mut raw = [[$W::splat(0).0; 4]; 2];
                for (set, r) in raw.iter_mut().enumerate() {
                    for (i, reg) in r.iter_mut().enumerate() {
                        *reg = $load(&regs[4 * set + i]);
                    }
                }
                let a = transpose!(raw[0]);
                let b = transpose!(raw[1]);
                let x = [
                    X2($W(a[0]), $W(b[0])),
                    X2($W(a[1]), $W(b[1])),
                    X2($W(a[2]), $W(b[2])),
                    X2($W(a[3]), $W(b[3])),
                ];
                let y = if encrypt {
                    encrypt_words(x, rk)
                } else {
                    decrypt_words(x, rk)
                };
                let a = transpose!([y[0].0.0, y[1].0.0, y[2].0.0, y[3].0.0]);
                let b = transpose!([y[0].1.0, y[1].1.0, y[2].1.0, y[3].1.0]);
                for (set, r) in [a, b].iter().enumerate() {
                    for (i, reg) in r.iter().enumerate() {
                        $store(&mut regs[4 * set + i], *reg);
                    }
                }
            }
        };
    }

    kernel!(
        avx512,
        "avx512f",
        Z,
        load512,
        store512,
        _mm512_unpacklo_epi32,
        _mm512_unpackhi_epi32,
        _mm512_unpacklo_epi64,
        _mm512_unpackhi_epi64,
        64
    );
    kernel!(
        avx2,
        "avx2",
        Y,
        load256,
        store256,
        _mm256_unpacklo_epi32,
        _mm256_unpackhi_epi32,
        _mm256_unpacklo_epi64,
        _mm256_unpackhi_epi64,
        32
    );
}
