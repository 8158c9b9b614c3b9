//! The block-cipher interface of the engine and the five VeraCrypt ciphers behind it.
//!
//! Every cipher works on whole slices of blocks so that batched (AES-NI/VAES) and multi-block
//! kernels see many blocks per call; nothing in the engine encrypts one block per call.
//!
//! This file holds the [`BlockCipher`] trait, the [`CipherId`] of every cipher and the adapter
//! for the RustCrypto ciphers (Camellia, Kuznyechik, and AES inside chains); the ciphers with
//! kernels of their own have a file each: [`aes_xts`] (the fused AES-XTS kernels), [`serpent`]
//! and [`twofish`].

use std::fmt;

#[allow(unsafe_code)]
pub mod aes_xts;
#[allow(unsafe_code)]
pub mod serpent;
pub mod twofish;

use super::xts::{GenericXts, XtsCipher};
use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit, consts::U16};

/// One 16-byte cipher block.
pub type Block = [u8; 16];

/// A 128-bit block cipher with a 256-bit key that works on many blocks per call.
pub trait BlockCipher: Send + Sync {
    /// Encrypts every block in place.
    fn encrypt_blocks(&self, blocks: &mut [Block]);
    /// Decrypts every block in place.
    fn decrypt_blocks(&self, blocks: &mut [Block]);
}

/// The ciphers of the VeraCrypt format (all 128-bit block, 256-bit key; docs/format.md §6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CipherId {
    /// AES-256 (FIPS 197).
    Aes,
    /// Serpent-256.
    Serpent,
    /// Twofish-256.
    Twofish,
    /// Camellia-256 (RFC 3713).
    Camellia,
    /// Kuznyechik (GOST R 34.12-2015).
    Kuznyechik,
}

impl CipherId {
    /// Every cipher, in a stable order.
    pub const ALL: [CipherId; 5] = [
        CipherId::Aes,
        CipherId::Serpent,
        CipherId::Twofish,
        CipherId::Camellia,
        CipherId::Kuznyechik,
    ];

    /// Key length in bytes (every cipher of the format takes 256-bit keys).
    pub const KEY_LEN: usize = 32;

    /// The name VeraCrypt shows.
    pub fn name(self) -> &'static str {
        match self {
            CipherId::Aes => "AES",
            CipherId::Serpent => "Serpent",
            CipherId::Twofish => "Twofish",
            CipherId::Camellia => "Camellia",
            CipherId::Kuznyechik => "Kuznyechik",
        }
    }

    /// A keyed instance of this cipher.
    pub fn keyed(self, key: &[u8; 32]) -> Box<dyn BlockCipher> {
        match self {
            CipherId::Aes => Box::new(RustCrypto::<aes::Aes256>::new(key)),
            CipherId::Serpent => Box::new(serpent::Serpent::new(key)),
            CipherId::Twofish => Box::new(twofish::Twofish::new(key)),
            CipherId::Camellia => Box::new(RustCrypto::<camellia::Camellia256>::new(key)),
            CipherId::Kuznyechik => Box::new(RustCrypto::<kuznyechik::Kuznyechik>::new(key)),
        }
    }
}

impl CipherId {
    /// This cipher keyed for XTS with its fastest kernel: the fused AES-XTS kernel for AES, the
    /// batched XTS loop over [`CipherId::keyed`] for the others.
    pub fn keyed_xts(self, primary: &[u8; 32], tweak: &[u8; 32]) -> Box<dyn XtsCipher> {
        match self {
            CipherId::Aes => Box::new(aes_xts::AesXts::new(primary, tweak)),
            _ => Box::new(GenericXts::new(self.keyed(primary), self.keyed(tweak))),
        }
    }
}

impl fmt::Display for CipherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Adapter from a RustCrypto block cipher (which zeroizes its own key schedule on drop) to
/// [`BlockCipher`], passing whole slices through so the crate's batched backends are used.
pub struct RustCrypto<C>(C);

impl<C: KeyInit> RustCrypto<C> {
    fn new(key: &[u8; 32]) -> Self {
        // Every cipher of the format takes a 32-byte key, so the length always matches.
        match C::new_from_slice(key) {
            Ok(c) => RustCrypto(c),
            Err(_) => unreachable!("all VeraCrypt ciphers take 256-bit keys"),
        }
    }
}

impl<C> BlockCipher for RustCrypto<C>
where
    C: BlockCipherEncrypt<BlockSize = U16> + BlockCipherDecrypt<BlockSize = U16> + Send + Sync,
{
    fn encrypt_blocks(&self, blocks: &mut [Block]) {
        self.0
            .encrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(blocks));
    }

    fn decrypt_blocks(&self, blocks: &mut [Block]) {
        self.0
            .decrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(blocks));
    }
}

impl<C> fmt::Debug for RustCrypto<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RustCrypto { .. }")
    }
}
