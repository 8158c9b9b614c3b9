//! The cipher engine of legacy TrueCrypt volumes (1.0–4.3): LRW and CBC modes over the three
//! 128-bit ciphers and the three old 64-bit ones (Blowfish, CAST5, Triple DES).
//!
//! Key material (the derived header key or the decrypted key area) is laid out the same way in
//! both modes: 32 "secondary" bytes (LRW: the tweak key K2; CBC: the IV seed), then the cipher
//! keys in the chain's internal order (docs/legacy-format.md; docs/format.md §6–§7).
//!
//! A chain is split into *groups* of ciphers that share one mode pass:
//! - LRW: consecutive ciphers of the same block size share one whitening (two LRW passes with the
//!   same K2 and indices equal one pass of the composed cipher, since the inner ⊕T cancel); the
//!   mixed chains get one pass per block size, each with its own indices and GF(2^n).
//! - CBC: "outer CBC" (one group: the whole chain is E) unless the chain mixes block sizes, then
//!   "inner CBC" (one group per cipher, each with its own IV and whitening).
//!
//! Encryption runs the groups in internal order, decryption in reverse.

mod cbc;
mod ciphers;
mod lrw;

pub use lrw::{gf64_mul, gf128_mul};

use std::fmt;
use std::sync::OnceLock;

use crate::secret::SecretArray;
use ciphers::{Blocks, Layer};
use lrw::LrwKey;

/// A cipher of legacy TrueCrypt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegacyCipherId {
    /// AES-256.
    Aes,
    /// Serpent-256.
    Serpent,
    /// Twofish-256.
    Twofish,
    /// Blowfish with a 448-bit key, TrueCrypt's little-endian variant.
    Blowfish,
    /// CAST5 (RFC 2144), 128-bit key.
    Cast5,
    /// Triple DES (EDE, three 56-bit keys in 24 bytes).
    TripleDes,
}

impl LegacyCipherId {
    /// Every legacy cipher.
    pub const ALL: [LegacyCipherId; 6] = [
        LegacyCipherId::Aes,
        LegacyCipherId::Serpent,
        LegacyCipherId::Twofish,
        LegacyCipherId::Blowfish,
        LegacyCipherId::Cast5,
        LegacyCipherId::TripleDes,
    ];

    /// The name TrueCrypt shows.
    pub fn name(self) -> &'static str {
        match self {
            LegacyCipherId::Aes => "AES",
            LegacyCipherId::Serpent => "Serpent",
            LegacyCipherId::Twofish => "Twofish",
            LegacyCipherId::Blowfish => "Blowfish",
            LegacyCipherId::Cast5 => "CAST5",
            LegacyCipherId::TripleDes => "Triple DES",
        }
    }

    /// Block size in bytes: 16 or 8.
    pub fn block_len(self) -> usize {
        match self {
            LegacyCipherId::Aes | LegacyCipherId::Serpent | LegacyCipherId::Twofish => 16,
            LegacyCipherId::Blowfish | LegacyCipherId::Cast5 | LegacyCipherId::TripleDes => 8,
        }
    }

    /// Key size in bytes.
    pub fn key_len(self) -> usize {
        match self {
            LegacyCipherId::Aes | LegacyCipherId::Serpent | LegacyCipherId::Twofish => 32,
            LegacyCipherId::Blowfish => 56,
            LegacyCipherId::Cast5 => 16,
            LegacyCipherId::TripleDes => 24,
        }
    }
}

impl fmt::Display for LegacyCipherId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A cipher chain that legacy TrueCrypt volumes use (named by display name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegacyChain {
    /// AES
    Aes,
    /// Serpent
    Serpent,
    /// Twofish
    Twofish,
    /// Blowfish
    Blowfish,
    /// CAST5
    Cast5,
    /// Triple DES
    TripleDes,
    /// AES-Twofish
    AesTwofish,
    /// AES-Twofish-Serpent
    AesTwofishSerpent,
    /// Serpent-AES
    SerpentAes,
    /// Serpent-Twofish-AES
    SerpentTwofishAes,
    /// Twofish-Serpent
    TwofishSerpent,
    /// AES-Blowfish (mixed block sizes)
    AesBlowfish,
    /// AES-Blowfish-Serpent (mixed block sizes)
    AesBlowfishSerpent,
}

use LegacyCipherId as C;

impl LegacyChain {
    /// Every legacy chain.
    pub const ALL: [LegacyChain; 13] = [
        LegacyChain::Aes,
        LegacyChain::Serpent,
        LegacyChain::Twofish,
        LegacyChain::Blowfish,
        LegacyChain::Cast5,
        LegacyChain::TripleDes,
        LegacyChain::AesTwofish,
        LegacyChain::AesTwofishSerpent,
        LegacyChain::SerpentAes,
        LegacyChain::SerpentTwofishAes,
        LegacyChain::TwofishSerpent,
        LegacyChain::AesBlowfish,
        LegacyChain::AesBlowfishSerpent,
    ];

    /// Ciphers in internal order (key order and encryption order).
    pub fn ciphers(self) -> &'static [LegacyCipherId] {
        match self {
            LegacyChain::Aes => &[C::Aes],
            LegacyChain::Serpent => &[C::Serpent],
            LegacyChain::Twofish => &[C::Twofish],
            LegacyChain::Blowfish => &[C::Blowfish],
            LegacyChain::Cast5 => &[C::Cast5],
            LegacyChain::TripleDes => &[C::TripleDes],
            LegacyChain::AesTwofish => &[C::Twofish, C::Aes],
            LegacyChain::AesTwofishSerpent => &[C::Serpent, C::Twofish, C::Aes],
            LegacyChain::SerpentAes => &[C::Aes, C::Serpent],
            LegacyChain::SerpentTwofishAes => &[C::Aes, C::Twofish, C::Serpent],
            LegacyChain::TwofishSerpent => &[C::Serpent, C::Twofish],
            LegacyChain::AesBlowfish => &[C::Blowfish, C::Aes],
            LegacyChain::AesBlowfishSerpent => &[C::Serpent, C::Blowfish, C::Aes],
        }
    }

    /// The display name: the internal order reversed, joined by `-` (`AES-Blowfish`).
    pub fn name(self) -> String {
        let names: Vec<&str> = self.ciphers().iter().rev().map(|c| c.name()).collect();
        names.join("-")
    }

    /// Finds a chain by its display name, case-insensitively.
    pub fn from_name(name: &str) -> Option<LegacyChain> {
        LegacyChain::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }

    /// Bytes of key material: 32 secondary bytes plus every cipher key.
    pub fn key_material_len(self) -> usize {
        32 + self.ciphers().iter().map(|c| c.key_len()).sum::<usize>()
    }

    /// Whether CBC runs one pass per cipher ("inner CBC"): the chains that mix 64- and 128-bit
    /// blocks. The others run the whole chain as one E ("outer CBC").
    pub fn inner_cbc(self) -> bool {
        let c = self.ciphers();
        c.iter().any(|x| x.block_len() != c[0].block_len())
    }
}

impl fmt::Display for LegacyChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The mode of a legacy volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LegacyMode {
    /// LRW (TrueCrypt 4.1–4.3).
    Lrw,
    /// CBC with whitening (TrueCrypt 1.0–4.0).
    Cbc,
}

impl LegacyMode {
    /// `LRW` or `CBC`.
    pub fn name(self) -> &'static str {
        match self {
            LegacyMode::Lrw => "LRW",
            LegacyMode::Cbc => "CBC",
        }
    }

    /// Parses [`LegacyMode::name`], case-insensitively.
    pub fn from_name(name: &str) -> Option<LegacyMode> {
        [LegacyMode::Lrw, LegacyMode::Cbc]
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for LegacyMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Ciphers of one block size that share a mode pass, in internal order.
enum Group {
    Wide(Vec<Box<dyn Blocks<16>>>),
    Narrow(Vec<Box<dyn Blocks<8>>>),
}

/// Where a pass runs: the header (LRW indices from 1, CBC IV/W from the key) or data sectors
/// starting at a sector number.
#[derive(Clone, Copy)]
enum Target {
    Header,
    Sectors(u64),
}

/// A legacy chain keyed for one mode.
pub struct LegacyCipher {
    chain: LegacyChain,
    mode: LegacyMode,
    groups: Vec<Group>,
    /// Key material bytes 0..32: LRW tweak key or CBC IV seed.
    secondary: SecretArray<32>,
    lrw128: Option<LrwKey>,
    lrw64: Option<LrwKey>,
}

/// Bytes per slice in which all groups are applied before moving on (cache locality).
const SLICE: usize = 64 * 1024;
/// Buffers at least this large are split across cores.
const PARALLEL_MIN: usize = 256 * 1024;

fn parallelism() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl LegacyCipher {
    /// Keys `chain` for `mode` from `key_material` (secondary bytes, then the cipher keys in
    /// internal order).
    ///
    /// # Errors
    /// `Err(needed_len)` when `key_material` is shorter than [`LegacyChain::key_material_len`];
    /// longer material is fine (the tail is ignored).
    pub fn new(
        chain: LegacyChain,
        mode: LegacyMode,
        key_material: &[u8],
    ) -> Result<LegacyCipher, usize> {
        let need = chain.key_material_len();
        if key_material.len() < need {
            return Err(need);
        }
        let mut secondary = SecretArray::<32>::zeroed();
        secondary.expose_mut().copy_from_slice(&key_material[..32]);
        let mut groups: Vec<Group> = Vec::new();
        let mut off = 32;
        for &id in chain.ciphers() {
            let layer = ciphers::keyed(id, &key_material[off..]);
            off += id.key_len();
            // LRW merges neighbours of one block size; CBC merges all (outer) or none (inner).
            let merge = match mode {
                LegacyMode::Lrw => true,
                LegacyMode::Cbc => !chain.inner_cbc(),
            };
            match (groups.last_mut(), layer) {
                (Some(Group::Wide(g)), Layer::Wide(c)) if merge => g.push(c),
                (Some(Group::Narrow(g)), Layer::Narrow(c)) if merge => g.push(c),
                (_, Layer::Wide(c)) => groups.push(Group::Wide(vec![c])),
                (_, Layer::Narrow(c)) => groups.push(Group::Narrow(vec![c])),
            }
        }
        let has = |len: usize| chain.ciphers().iter().any(|c| c.block_len() == len);
        let (lrw128, lrw64) = match mode {
            LegacyMode::Lrw => (
                has(16).then(|| LrwKey::new(&secondary.expose()[..16])),
                has(8).then(|| LrwKey::new(&secondary.expose()[..8])),
            ),
            LegacyMode::Cbc => (None, None),
        };
        Ok(LegacyCipher {
            chain,
            mode,
            groups,
            secondary,
            lrw128,
            lrw64,
        })
    }

    /// The chain.
    pub fn chain(&self) -> LegacyChain {
        self.chain
    }

    /// The mode.
    pub fn mode(&self) -> LegacyMode {
        self.mode
    }

    /// Encrypts the 448 encrypted header bytes (header bytes 64..512) in place: LRW with
    /// indices 1, 2, 3, …; CBC as one run with IV = key bytes 0..b and W = key bytes 8..16.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 16 or (CBC) exceeds 512 bytes.
    pub fn encrypt_header(&self, buf: &mut [u8]) {
        self.header(buf, true);
    }

    /// Decrypts what [`LegacyCipher::encrypt_header`] produced.
    ///
    /// # Panics
    /// As [`LegacyCipher::encrypt_header`].
    pub fn decrypt_header(&self, buf: &mut [u8]) {
        self.header(buf, false);
    }

    /// Encrypts whole 512-byte sectors in place; `buf[0..512]` is sector `first_sector`
    /// (relative to the data area for LRW, absolute for CBC: the caller decides), the next ones
    /// follow.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 512.
    pub fn encrypt_sectors(&self, buf: &mut [u8], first_sector: u64) {
        self.sectors(buf, first_sector, true);
    }

    /// Decrypts whole 512-byte sectors in place; numbering as in
    /// [`LegacyCipher::encrypt_sectors`].
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 512.
    pub fn decrypt_sectors(&self, buf: &mut [u8], first_sector: u64) {
        self.sectors(buf, first_sector, false);
    }

    fn header(&self, buf: &mut [u8], encrypt: bool) {
        assert!(
            buf.len().is_multiple_of(16),
            "legacy header area must hold whole 16-byte blocks"
        );
        if !buf.is_empty() {
            self.all_groups(buf, Target::Header, encrypt);
        }
    }

    fn sectors(&self, buf: &mut [u8], first_sector: u64, encrypt: bool) {
        assert!(
            buf.len().is_multiple_of(cbc::SECTOR),
            "legacy data must be whole 512-byte sectors"
        );
        let threads = parallelism();
        if threads < 2 || buf.len() < PARALLEL_MIN {
            return self.sectors_on_this_thread(buf, first_sector, encrypt);
        }
        let sectors = buf.len() / cbc::SECTOR;
        let per_thread = sectors.div_ceil(threads) * cbc::SECTOR;
        std::thread::scope(|s| {
            let mut parts = buf.chunks_mut(per_thread).enumerate();
            let first = parts.next();
            for (i, part) in parts {
                let sector = first_sector.wrapping_add((i * per_thread / cbc::SECTOR) as u64);
                s.spawn(move || self.sectors_on_this_thread(part, sector, encrypt));
            }
            if let Some((_, part)) = first {
                self.sectors_on_this_thread(part, first_sector, encrypt);
            }
        });
    }

    fn sectors_on_this_thread(&self, buf: &mut [u8], first_sector: u64, encrypt: bool) {
        let mut sector = first_sector;
        for slice in buf.chunks_mut(SLICE) {
            self.all_groups(slice, Target::Sectors(sector), encrypt);
            sector = sector.wrapping_add((slice.len() / cbc::SECTOR) as u64);
        }
    }

    fn all_groups(&self, buf: &mut [u8], target: Target, encrypt: bool) {
        if encrypt {
            for g in &self.groups {
                self.pass(g, buf, target, true);
            }
        } else {
            for g in self.groups.iter().rev() {
                self.pass(g, buf, target, false);
            }
        }
    }

    /// One mode pass of one group over `buf`.
    fn pass(&self, group: &Group, buf: &mut [u8], target: Target, encrypt: bool) {
        match group {
            Group::Wide(c) => self.pass_sized::<16>(c, self.lrw128.as_ref(), buf, target, encrypt),
            Group::Narrow(c) => self.pass_sized::<8>(c, self.lrw64.as_ref(), buf, target, encrypt),
        }
    }

    fn pass_sized<const B: usize>(
        &self,
        ciphers: &[Box<dyn Blocks<B>>],
        lrw_key: Option<&LrwKey>,
        buf: &mut [u8],
        target: Target,
        encrypt: bool,
    ) {
        match self.mode {
            LegacyMode::Lrw => {
                let Some(key) = lrw_key else {
                    unreachable!("LRW keys exist for every block size of the chain")
                };
                // Block j of sector s: (s << 5) + 1 + j for 16-byte blocks, (s << 6) + 1 + j
                // for 8-byte ones; the header is index 1 onwards (as sector 0).
                let first = match target {
                    Target::Header => 1,
                    Target::Sectors(s) => (u128::from(s) << (cbc::SECTOR / B).trailing_zeros()) + 1,
                };
                lrw::lrw(ciphers, key, buf, first, encrypt);
            }
            LegacyMode::Cbc => {
                let secondary = self.secondary.expose();
                match target {
                    Target::Header => {
                        let run = buf.len();
                        let key = |_| cbc::header_key::<B>(secondary);
                        if encrypt {
                            cbc::encrypt(ciphers, buf, run, key);
                        } else {
                            cbc::decrypt(ciphers, buf, run, key);
                        }
                    }
                    Target::Sectors(s) => {
                        let key =
                            |r: usize| cbc::sector_key::<B>(secondary, s.wrapping_add(r as u64));
                        if encrypt {
                            cbc::encrypt(ciphers, buf, cbc::SECTOR, key);
                        } else {
                            cbc::decrypt(ciphers, buf, cbc::SECTOR, key);
                        }
                    }
                }
            }
        }
    }
}

impl fmt::Debug for LegacyCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "LegacyCipher {{ chain: {}, mode: {}, keys: <redacted> }}",
            self.chain, self.mode
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_orders_and_lengths() {
        assert_eq!(LegacyChain::AesBlowfish.name(), "AES-Blowfish");
        assert_eq!(
            LegacyChain::AesBlowfishSerpent.name(),
            "AES-Blowfish-Serpent"
        );
        assert_eq!(LegacyChain::TripleDes.name(), "Triple DES");
        assert_eq!(LegacyChain::Cast5.name(), "CAST5");
        assert_eq!(LegacyChain::SerpentTwofishAes.name(), "Serpent-Twofish-AES");
        assert_eq!(LegacyChain::AesBlowfishSerpent.key_material_len(), 152);
        assert_eq!(LegacyChain::AesBlowfish.key_material_len(), 120);
        assert_eq!(LegacyChain::TripleDes.key_material_len(), 56);
        assert!(LegacyChain::ALL.iter().all(|c| c.key_material_len() <= 152));
        for c in LegacyChain::ALL {
            assert_eq!(LegacyChain::from_name(&c.name().to_lowercase()), Some(c));
            assert_eq!(LegacyChain::from_name(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(LegacyChain::from_name("AES-Camellia"), None);
        let inner: Vec<_> = LegacyChain::ALL
            .into_iter()
            .filter(|c| c.inner_cbc())
            .collect();
        assert_eq!(
            inner,
            [LegacyChain::AesBlowfish, LegacyChain::AesBlowfishSerpent]
        );
        assert_eq!(LegacyMode::from_name("lrw"), Some(LegacyMode::Lrw));
        assert_eq!(LegacyMode::from_name("CBC"), Some(LegacyMode::Cbc));
        assert_eq!(LegacyMode::from_name("xts"), None);
    }

    #[test]
    fn short_key_material_reports_the_needed_length() {
        for c in LegacyChain::ALL {
            let need = c.key_material_len();
            let err = LegacyCipher::new(c, LegacyMode::Lrw, &vec![1; need - 1]).err();
            assert_eq!(err, Some(need));
            assert!(LegacyCipher::new(c, LegacyMode::Cbc, &[1; 192]).is_ok());
        }
    }

    #[test]
    fn groups_follow_the_mode() {
        let km = [7u8; 192];
        let sizes = |c: &LegacyCipher| -> Vec<(usize, usize)> {
            c.groups
                .iter()
                .map(|g| match g {
                    Group::Wide(v) => (16, v.len()),
                    Group::Narrow(v) => (8, v.len()),
                })
                .collect()
        };
        let lrw = |ch| LegacyCipher::new(ch, LegacyMode::Lrw, &km).expect("key");
        let cbc = |ch| LegacyCipher::new(ch, LegacyMode::Cbc, &km).expect("key");
        assert_eq!(sizes(&lrw(LegacyChain::SerpentTwofishAes)), [(16, 3)]);
        assert_eq!(sizes(&cbc(LegacyChain::SerpentTwofishAes)), [(16, 3)]);
        assert_eq!(
            sizes(&lrw(LegacyChain::AesBlowfishSerpent)),
            [(16, 1), (8, 1), (16, 1)]
        );
        assert_eq!(sizes(&cbc(LegacyChain::AesBlowfish)), [(8, 1), (16, 1)]);
        assert!(format!("{:?}", lrw(LegacyChain::AesBlowfish)).contains("AES-Blowfish"));
    }
}
