//! Layer 1: cryptographic primitives, no I/O.
//!
//! Ciphers work on slices of blocks ([`cipher::BlockCipher`]), XTS on whole buffers of 512-byte
//! data units ([`xts`]), chains stack complete XTS passes ([`chain::XtsChain`]), and key
//! derivation is PBKDF2 block by block or Argon2id ([`prf`]). The keyfile pool lives in
//! [`keyfile`]. TrueCrypt volumes from before 5.0 use LRW or CBC and older ciphers ([`legacy`]);
//! [`scheme`] is the one type the layers above see for "what encrypts this volume", XTS or
//! legacy.

#[allow(unsafe_code)]
pub mod aes_xts;
#[allow(unsafe_code)]
pub mod argon2;
pub mod chain;
pub mod cipher;
#[cfg(test)]
mod kernel_checks;
pub mod keyfile;
pub mod legacy;
#[allow(unsafe_code)]
pub mod pbkdf2_lanes;
pub mod prf;
pub mod random;
pub mod scheme;
#[allow(unsafe_code)]
pub mod serpent;
#[allow(unsafe_code)]
pub mod streebog;
pub mod twofish;
#[allow(unsafe_code)]
pub mod whirlpool;
pub mod xts;
