//! Unaligned loads and stores of 128-, 256- and 512-bit registers from and to arrays of exactly
//! that size, shared by the cipher and key-derivation kernels so that none needs raw pointers of
//! its own for them: a kernel cuts its buffer into fixed-size arrays (`as_chunks`,
//! `as_chunks_mut`) and hands each one to a function here.
//!
//! The functions are safe `#[target_feature]` functions (SSE2 for 128 bits, AVX for 256,
//! AVX-512F for 512): a kernel compiled with that feature (or more) calls them directly, and
//! anything else needs the matching token of [`super::cpu`] first.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{
    __m128i, __m256i, __m512i, _mm_loadu_si128, _mm_storeu_si128, _mm256_loadu_si256,
    _mm256_storeu_si256, _mm512_loadu_si512, _mm512_storeu_si512,
};

/// A 64-byte array of plain integers: exactly one 512-bit register, any bit pattern valid.
pub trait Bits512: Copy + sealed::Sealed {
    /// All zero.
    const ZERO: Self;
}

impl Bits512 for [u8; 64] {
    const ZERO: Self = [0; 64];
}

impl Bits512 for [u32; 16] {
    const ZERO: Self = [0; 16];
}

impl Bits512 for [u64; 8] {
    const ZERO: Self = [0; 8];
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for [u8; 64] {}
    impl Sealed for [u32; 16] {}
    impl Sealed for [u64; 8] {}
}

/// The 16 bytes of `src` as one register (lane order = memory order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
pub fn load128(src: &[u8; 16]) -> __m128i {
    // SAFETY: `src` is 16 readable bytes; the load is unaligned.
    unsafe { _mm_loadu_si128(src.as_ptr().cast()) }
}

/// Writes the register `v` into the 16 bytes of `dst` (memory order = lane order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "sse2")]
pub fn store128(dst: &mut [u8; 16], v: __m128i) {
    // SAFETY: `dst` is 16 writable bytes, any bit pattern a valid value; the store is unaligned.
    unsafe { _mm_storeu_si128(dst.as_mut_ptr().cast(), v) };
}

/// The 32 bytes of `src` as one register (lane order = memory order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx")]
pub fn load256(src: &[u8; 32]) -> __m256i {
    // SAFETY: `src` is 32 readable bytes; the load is unaligned.
    unsafe { _mm256_loadu_si256(src.as_ptr().cast()) }
}

/// Writes the register `v` into the 32 bytes of `dst` (memory order = lane order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx")]
pub fn store256(dst: &mut [u8; 32], v: __m256i) {
    // SAFETY: `dst` is 32 writable bytes, any bit pattern a valid value; the store is unaligned.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
}

/// The 64 bytes of `src` as one register (lane order = memory order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub fn load512<T: Bits512>(src: &T) -> __m512i {
    // SAFETY: every `Bits512` type is 64 readable bytes; the load is unaligned.
    unsafe { _mm512_loadu_si512(core::ptr::from_ref(src).cast()) }
}

/// Writes the register `v` into the 64 bytes of `dst` (memory order = lane order).
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub fn store512<T: Bits512>(dst: &mut T, v: __m512i) {
    // SAFETY: every `Bits512` type is 64 writable bytes of plain integers, so any bit pattern
    // is a valid value; the store is unaligned.
    unsafe { _mm512_storeu_si512(core::ptr::from_mut(dst).cast(), v) };
}

/// The register `v` as a new 64-byte array.
#[cfg(target_arch = "x86_64")]
#[inline]
#[target_feature(enable = "avx512f")]
pub fn to_array<T: Bits512>(v: __m512i) -> T {
    let mut out = T::ZERO;
    store512(&mut out, v);
    out
}
