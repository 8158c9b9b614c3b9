//! Unaligned loads and stores of 512-bit registers from and to 64-byte arrays, shared by the
//! AVX-512 kernels so that none needs raw pointers of its own for them.
//!
//! The functions are safe `#[target_feature(enable = "avx512f")]` functions: a kernel compiled
//! with AVX-512F (or more) calls them directly, and anything else needs the
//! [`super::cpu::Avx512`] (or a larger) token first.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::{__m512i, _mm512_loadu_si512, _mm512_storeu_si512};

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
