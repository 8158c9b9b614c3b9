//! XTS (IEEE 1619) over whole buffers of 512-byte data units.
//!
//! The tweak of data unit `n` is `E_k2(n as little-endian u64, zero-padded to 16 bytes)`, then
//! multiplied by α for each following 16-byte block (docs/format.md §6). Units are processed in
//! batches so that each cipher call sees hundreds of blocks: the tweak keys of a whole batch are
//! encrypted in one call and the data of a whole batch in another.

use super::cipher::{Block, BlockCipher};

/// Bytes per XTS data unit in every TrueCrypt/VeraCrypt volume, whatever its sector size.
pub const DATA_UNIT: usize = 512;
const BLOCKS_PER_UNIT: usize = DATA_UNIT / 16;
/// Units per batch: 8 units = 256 blocks = 4 KiB of tweaks on the stack.
const BATCH_UNITS: usize = 8;

/// Direction of an XTS pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plaintext to ciphertext.
    Encrypt,
    /// Ciphertext to plaintext.
    Decrypt,
}

/// An XTS-keyed cipher (a primary and a tweak key) that runs whole passes over buffers of data
/// units. Fused kernels (AES) implement it directly; every other cipher goes through
/// [`GenericXts`], the batched loop below.
pub trait XtsCipher: Send + Sync {
    /// Runs one XTS pass over `buf`, whose first byte starts data unit `first_unit`; the same
    /// contract as [`xts`].
    fn xts(&self, dir: Direction, buf: &mut [u8], first_unit: u64);
}

/// XTS over any [`BlockCipher`] pair with the batched loop of [`xts`].
pub struct GenericXts {
    primary: Box<dyn BlockCipher>,
    tweak: Box<dyn BlockCipher>,
}

impl GenericXts {
    /// Pairs a primary and a tweak cipher.
    pub fn new(primary: Box<dyn BlockCipher>, tweak: Box<dyn BlockCipher>) -> GenericXts {
        GenericXts { primary, tweak }
    }
}

impl XtsCipher for GenericXts {
    fn xts(&self, dir: Direction, buf: &mut [u8], first_unit: u64) {
        xts(
            self.primary.as_ref(),
            self.tweak.as_ref(),
            dir,
            buf,
            first_unit,
        );
    }
}

impl std::fmt::Debug for GenericXts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GenericXts { .. }")
    }
}

/// Runs one XTS pass of `primary`/`tweak` over `buf`, whose first byte starts data unit
/// `first_unit`.
///
/// `buf` holds whole 512-byte units, except that the last unit may be shorter (the 448-byte
/// encrypted part of a header is one such unit).
///
/// # Panics
/// If `buf.len()` is not a multiple of 16: every caller works on whole cipher blocks, so a
/// partial block is a bug, not an input error.
pub fn xts(
    primary: &dyn BlockCipher,
    tweak: &dyn BlockCipher,
    dir: Direction,
    buf: &mut [u8],
    first_unit: u64,
) {
    let (blocks, rest) = buf.as_chunks_mut::<16>();
    assert!(rest.is_empty(), "XTS buffer must hold whole 16-byte blocks");
    let mut tweaks = [[0u8; 16]; BATCH_UNITS * BLOCKS_PER_UNIT];
    let mut unit = first_unit;
    for batch in blocks.chunks_mut(BATCH_UNITS * BLOCKS_PER_UNIT) {
        let units = batch.len().div_ceil(BLOCKS_PER_UNIT);
        let mut starts = [[0u8; 16]; BATCH_UNITS];
        for (i, s) in starts[..units].iter_mut().enumerate() {
            s[..8].copy_from_slice(&unit.wrapping_add(i as u64).to_le_bytes());
        }
        tweak.encrypt_blocks(&mut starts[..units]);
        let tw = &mut tweaks[..batch.len()];
        for (per_unit, start) in tw.chunks_mut(BLOCKS_PER_UNIT).zip(starts.iter()) {
            let mut t = u128::from_le_bytes(*start);
            for slot in per_unit {
                *slot = t.to_le_bytes();
                t = mul_alpha(t);
            }
        }
        xor_blocks(batch, tw);
        match dir {
            Direction::Encrypt => primary.encrypt_blocks(batch),
            Direction::Decrypt => primary.decrypt_blocks(batch),
        }
        xor_blocks(batch, tw);
        unit = unit.wrapping_add(units as u64);
    }
}

/// Multiplication by α (x) in GF(2^128) with the XTS polynomial x^128 + x^7 + x^2 + x + 1,
/// on the little-endian reading of the block.
#[inline(always)]
fn mul_alpha(t: u128) -> u128 {
    let carry = (t >> 127) as u8;
    (t << 1) ^ u128::from(0x87 * carry)
}

#[inline(always)]
fn xor_blocks(data: &mut [Block], tweaks: &[Block]) {
    for (d, t) in data.iter_mut().zip(tweaks) {
        let v = u128::from_ne_bytes(*d) ^ u128::from_ne_bytes(*t);
        *d = v.to_ne_bytes();
    }
}
