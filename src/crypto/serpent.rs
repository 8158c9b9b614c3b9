//! Temporary: Serpent through the RustCrypto crate until the multi-block kernel lands.
use super::cipher::{Block, BlockCipher};
use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit, consts::U16};

/// Serpent-256.
pub struct Serpent(::serpent::Serpent);
impl Serpent {
    /// Keyed Serpent.
    pub fn new(key: &[u8; 32]) -> Serpent {
        Serpent(::serpent::Serpent::new_from_slice(key).expect("32-byte key"))
    }
}
impl BlockCipher for Serpent {
    fn encrypt_blocks(&self, b: &mut [Block]) {
        self.0
            .encrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(b));
    }
    fn decrypt_blocks(&self, b: &mut [Block]) {
        self.0
            .decrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(b));
    }
}
impl std::fmt::Debug for Serpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Serpent { .. }")
    }
}
