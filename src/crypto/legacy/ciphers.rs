//! The six ciphers of legacy TrueCrypt behind one slice-of-blocks interface per block size.
//!
//! AES, Serpent and Twofish come from the engine ([`CipherId::keyed`]); Blowfish (TrueCrypt's
//! little-endian variant), CAST5 and Triple DES from the RustCrypto crates, which zeroize their
//! key schedules on drop.

use cipher::consts::{U8, U16};
use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

use super::LegacyCipherId;
use crate::crypto::cipher::{BlockCipher, CipherId};

/// A keyed block cipher with `B`-byte blocks that works on whole slices of blocks.
pub(crate) trait Blocks<const B: usize>: Send + Sync {
    /// Encrypts every block in place.
    fn encrypt(&self, blocks: &mut [[u8; B]]);
    /// Decrypts every block in place.
    fn decrypt(&self, blocks: &mut [[u8; B]]);
}

/// One keyed cipher of a chain, by block size.
pub(crate) enum Layer {
    /// A 128-bit-block cipher.
    Wide(Box<dyn Blocks<16>>),
    /// A 64-bit-block cipher.
    Narrow(Box<dyn Blocks<8>>),
}

/// Keys `id` with the first `id.key_len()` bytes of `key`, which the caller has checked are there.
pub(crate) fn keyed(id: LegacyCipherId, key: &[u8]) -> Layer {
    let key = &key[..id.key_len()];
    match id {
        LegacyCipherId::Aes => Layer::Wide(Box::new(Engine(CipherId::Aes.keyed(key32(key))))),
        LegacyCipherId::Serpent => {
            Layer::Wide(Box::new(Engine(CipherId::Serpent.keyed(key32(key)))))
        }
        LegacyCipherId::Twofish => {
            Layer::Wide(Box::new(Engine(CipherId::Twofish.keyed(key32(key)))))
        }
        LegacyCipherId::Blowfish => {
            Layer::Narrow(Box::new(Crate(new_crate::<blowfish::BlowfishLE>(key))))
        }
        LegacyCipherId::Cast5 => Layer::Narrow(Box::new(Crate(new_crate::<cast5::Cast5>(key)))),
        LegacyCipherId::TripleDes => {
            Layer::Narrow(Box::new(Crate(new_crate::<des::TdesEde3>(key))))
        }
    }
}

fn key32(key: &[u8]) -> &[u8; 32] {
    match key.first_chunk::<32>() {
        Some(k) => k,
        None => unreachable!("AES, Serpent and Twofish keys are 32 bytes"),
    }
}

fn new_crate<C: KeyInit>(key: &[u8]) -> C {
    match C::new_from_slice(key) {
        Ok(c) => c,
        Err(_) => unreachable!("legacy key lengths match the crates' key sizes"),
    }
}

/// An engine cipher (AES, Serpent, Twofish) as 16-byte [`Blocks`].
struct Engine(Box<dyn BlockCipher>);

impl Blocks<16> for Engine {
    fn encrypt(&self, blocks: &mut [[u8; 16]]) {
        self.0.encrypt_blocks(blocks);
    }

    fn decrypt(&self, blocks: &mut [[u8; 16]]) {
        self.0.decrypt_blocks(blocks);
    }
}

/// A RustCrypto block cipher as [`Blocks`] of its block size (8 or 16 bytes), whole slices per
/// call.
pub(crate) struct Crate<C>(pub(crate) C);

impl<C> Blocks<8> for Crate<C>
where
    C: BlockCipherEncrypt<BlockSize = U8> + BlockCipherDecrypt<BlockSize = U8> + Send + Sync,
{
    fn encrypt(&self, blocks: &mut [[u8; 8]]) {
        self.0
            .encrypt_blocks(Array::<u8, U8>::cast_slice_from_core_mut(blocks));
    }

    fn decrypt(&self, blocks: &mut [[u8; 8]]) {
        self.0
            .decrypt_blocks(Array::<u8, U8>::cast_slice_from_core_mut(blocks));
    }
}

impl<C> Blocks<16> for Crate<C>
where
    C: BlockCipherEncrypt<BlockSize = U16> + BlockCipherDecrypt<BlockSize = U16> + Send + Sync,
{
    fn encrypt(&self, blocks: &mut [[u8; 16]]) {
        self.0
            .encrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(blocks));
    }

    fn decrypt(&self, blocks: &mut [[u8; 16]]) {
        self.0
            .decrypt_blocks(Array::<u8, U16>::cast_slice_from_core_mut(blocks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("test hex")
    }

    fn narrow(id: LegacyCipherId, key: &[u8]) -> Box<dyn Blocks<8>> {
        match keyed(id, key) {
            Layer::Narrow(c) => c,
            Layer::Wide(_) => panic!("{id:?} has 64-bit blocks"),
        }
    }

    fn block8(b: &[u8]) -> [u8; 8] {
        b.try_into().expect("8-byte block")
    }

    /// Reverses the bytes of each 4-byte half: the little-endian reading of a big-endian block.
    fn swap_halves(b: [u8; 8]) -> [u8; 8] {
        [b[3], b[2], b[1], b[0], b[7], b[6], b[5], b[4]]
    }

    #[test]
    fn big_endian_blowfish_matches_the_standard_vectors() {
        // Eric Young's Blowfish vectors (key, plaintext, ciphertext), the reference for the
        // big-endian crate type that the little-endian checks below lean on.
        for (k, p, c) in [
            ("0000000000000000", "0000000000000000", "4ef997456198dd78"),
            ("ffffffffffffffff", "ffffffffffffffff", "51866fd5b85ecb8a"),
            ("3000000000000000", "1000000000000001", "7d856f9a613063f2"),
            ("0123456789abcdef", "1111111111111111", "61f9c3802281b096"),
            ("fedcba9876543210", "0123456789abcdef", "0aceab0fc6a0a28d"),
        ] {
            // `Blowfish` with its default byte order is the standard big-endian cipher.
            let bf: blowfish::Blowfish = KeyInit::new_from_slice(&hex(k)).expect("key length");
            let mut b = [block8(&hex(p))];
            Crate(bf).encrypt(&mut b);
            assert_eq!(hex::encode(b[0]), c, "key {k}");
        }
    }

    #[test]
    fn little_endian_blowfish_is_big_endian_blowfish_on_swapped_halves() {
        let mut key = [0u8; 56];
        for (i, k) in key.iter_mut().enumerate() {
            *k = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        let ours = narrow(LegacyCipherId::Blowfish, &key);
        let be: blowfish::Blowfish = KeyInit::new_from_slice(&key).expect("56-byte key");
        let be = Crate(be);
        let mut plain = [[0u8; 8]; 64];
        for (i, b) in plain.iter_mut().enumerate() {
            for (j, x) in b.iter_mut().enumerate() {
                *x = (i * 8 + j) as u8 ^ 0xa5;
            }
        }
        let mut le = plain;
        ours.encrypt(&mut le);
        let mut swapped = plain.map(swap_halves);
        be.encrypt(&mut swapped);
        assert_eq!(le, swapped.map(swap_halves));
        assert_ne!(le, plain);
        ours.decrypt(&mut le);
        assert_eq!(le, plain);
    }

    #[test]
    fn little_endian_blowfish_standard_key_schedule() {
        // A 56-byte key made of an 8-byte key repeated gives the same schedule as that 8-byte key
        // (the schedule cycles through the key bytes), so the standard vector for the all-zero
        // key holds here once the halves are swapped.
        let ours = narrow(LegacyCipherId::Blowfish, &[0u8; 56]);
        let mut b = [[0u8; 8]];
        ours.encrypt(&mut b);
        assert_eq!(b[0], swap_halves(block8(&hex("4ef997456198dd78"))));
        let key: Vec<u8> = hex("0123456789abcdef").repeat(7);
        let ours = narrow(LegacyCipherId::Blowfish, &key);
        let mut b = [swap_halves(block8(&hex("1111111111111111")))];
        ours.encrypt(&mut b);
        assert_eq!(b[0], swap_halves(block8(&hex("61f9c3802281b096"))));
    }

    #[test]
    fn crate_ciphers_wipe_their_key_schedules() {
        // Compiles only while the crates' `zeroize` features are on (Cargo.toml): then their
        // key schedules are wiped on drop.
        fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
        wiped_on_drop::<blowfish::BlowfishLE>();
        wiped_on_drop::<cast5::Cast5>();
        wiped_on_drop::<des::TdesEde3>();
    }

    #[test]
    fn cast5_rfc2144_vector() {
        let c = narrow(
            LegacyCipherId::Cast5,
            &hex("0123456712345678234567893456789a"),
        );
        let mut b = [block8(&hex("0123456789abcdef"))];
        c.encrypt(&mut b);
        assert_eq!(hex::encode(b[0]), "238b4fe5847e44b2");
        c.decrypt(&mut b);
        assert_eq!(hex::encode(b[0]), "0123456789abcdef");
    }

    #[test]
    fn triple_des_vectors() {
        // NIST SP 800-67 example: three independent keys, "The qufck brown fox jump".
        let c = narrow(
            LegacyCipherId::TripleDes,
            &hex("0123456789abcdef23456789abcdef01456789abcdef0123"),
        );
        let mut b = [
            block8(&hex("5468652071756663")),
            block8(&hex("6b2062726f776e20")),
            block8(&hex("666f78206a756d70")),
        ];
        c.encrypt(&mut b);
        assert_eq!(
            b.map(hex::encode),
            ["a826fd8ce53b855f", "cce21c8112256fe6", "68d5c05dd9b6b900"]
        );
        c.decrypt(&mut b);
        assert_eq!(hex::encode(b[0]), "5468652071756663");
        // K1 = K2 = K3 is single DES: the classic textbook vector.
        let c = narrow(
            LegacyCipherId::TripleDes,
            &hex("133457799bbcdff1").repeat(3),
        );
        let mut b = [block8(&hex("0123456789abcdef"))];
        c.encrypt(&mut b);
        assert_eq!(hex::encode(b[0]), "85e813540f0ab405");
    }
}
