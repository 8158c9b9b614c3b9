//! Format, crypto and engine tests: published vectors, the SIMD kernels against their oracles, the reference volumes, legacy modes, truncated volumes, the independent Python check, and the fuzz corpora replayed.
//!
//! One test crate (one link of the library) per area; each file is a module of it.

#[path = "../common/mod.rs"]
mod common;

mod engine_kernels;
mod fuzz_corpus;
mod independent;
mod legacy_modes;
mod reference_volumes;
mod truncated;
mod vectors;
