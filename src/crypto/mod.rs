//! Layer 1: cryptographic primitives, no I/O.
//!
//! Ciphers work on slices of blocks ([`cipher::BlockCipher`]; the ciphers with kernels of their
//! own have a file each under [`cipher`]), XTS on whole buffers of 512-byte data units
//! ([`xts`]), chains stack complete XTS passes ([`chain::XtsChain`]), and key
//! derivation is PBKDF2 (block by block, or several blocks in SIMD lanes) or Argon2id
//! ([`kdf`]: the PRFs, one dispatcher, one file per kernel). The keyfile pool lives in
//! [`keyfile`]. TrueCrypt volumes from before 5.0 use LRW or CBC and older ciphers ([`legacy`]);
//! [`scheme`] is the one type the layers above see for "what encrypts this volume", XTS or
//! legacy.
//!
//! CPU features are detected only in `cpu`, which hands the kernels tokens (one per feature
//! set); the kernels' vector loads and stores (128, 256 and 512 bits, from and to fixed-size
//! arrays) are in `simd`. Unsafe code lives in the kernel files, `simd` and nowhere else.

pub mod chain;
pub mod cipher;
pub(crate) mod cpu;
pub mod kdf;
pub mod keyfile;
pub mod legacy;
pub mod random;
pub mod scheme;
#[allow(unsafe_code)]
pub(crate) mod simd;
pub mod xts;
