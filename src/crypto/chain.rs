//! The fifteen cipher chains of VeraCrypt (eight of them TrueCrypt's) keyed for XTS.
//!
//! A chain is a list of ciphers in *internal order* (docs/format.md §6): that is the order of the
//! keys in the key material and the order in which encryption applies them, each as one complete
//! XTS pass over the buffer; decryption runs the list backwards. The display name is the list
//! reversed.

use std::fmt;
use std::sync::OnceLock;

use super::cipher::CipherId;
use super::xts::{DATA_UNIT, Direction, XtsCipher};

use CipherId::{Aes, Camellia, Kuznyechik, Serpent, Twofish};

/// A cipher chain of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChainId {
    /// AES
    Aes,
    /// Serpent
    Serpent,
    /// Twofish
    Twofish,
    /// Camellia
    Camellia,
    /// Kuznyechik
    Kuznyechik,
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
    /// Camellia-Kuznyechik
    CamelliaKuznyechik,
    /// Camellia-Serpent
    CamelliaSerpent,
    /// Kuznyechik-AES
    KuznyechikAes,
    /// Kuznyechik-Serpent-Camellia
    KuznyechikSerpentCamellia,
    /// Kuznyechik-Twofish
    KuznyechikTwofish,
}

impl ChainId {
    /// Every chain; the first eight are the TrueCrypt 7.1a ones.
    pub const ALL: [ChainId; 15] = [
        ChainId::Aes,
        ChainId::Serpent,
        ChainId::Twofish,
        ChainId::AesTwofish,
        ChainId::AesTwofishSerpent,
        ChainId::SerpentAes,
        ChainId::SerpentTwofishAes,
        ChainId::TwofishSerpent,
        ChainId::Camellia,
        ChainId::Kuznyechik,
        ChainId::CamelliaKuznyechik,
        ChainId::CamelliaSerpent,
        ChainId::KuznyechikAes,
        ChainId::KuznyechikSerpentCamellia,
        ChainId::KuznyechikTwofish,
    ];

    /// Ciphers in internal order (key order and encryption order; docs/format.md §6).
    pub fn ciphers(self) -> &'static [CipherId] {
        match self {
            ChainId::Aes => &[Aes],
            ChainId::Serpent => &[Serpent],
            ChainId::Twofish => &[Twofish],
            ChainId::Camellia => &[Camellia],
            ChainId::Kuznyechik => &[Kuznyechik],
            ChainId::AesTwofish => &[Twofish, Aes],
            ChainId::AesTwofishSerpent => &[Serpent, Twofish, Aes],
            ChainId::SerpentAes => &[Aes, Serpent],
            ChainId::SerpentTwofishAes => &[Aes, Twofish, Serpent],
            ChainId::TwofishSerpent => &[Serpent, Twofish],
            ChainId::CamelliaKuznyechik => &[Kuznyechik, Camellia],
            ChainId::CamelliaSerpent => &[Serpent, Camellia],
            ChainId::KuznyechikAes => &[Aes, Kuznyechik],
            ChainId::KuznyechikSerpentCamellia => &[Camellia, Serpent, Kuznyechik],
            ChainId::KuznyechikTwofish => &[Twofish, Kuznyechik],
        }
    }

    /// The display name, e.g. `AES-Twofish-Serpent` (the internal order reversed).
    pub fn name(self) -> String {
        let names: Vec<&str> = self.ciphers().iter().rev().map(|c| c.name()).collect();
        names.join("-")
    }

    /// Whether TrueCrypt 7.1a knew this chain.
    pub fn in_truecrypt(self) -> bool {
        self.ciphers()
            .iter()
            .all(|c| matches!(c, Aes | Serpent | Twofish))
    }

    /// Bytes of XTS key material: a 32-byte primary and a 32-byte tweak key per cipher.
    pub fn key_material_len(self) -> usize {
        2 * CipherId::KEY_LEN * self.ciphers().len()
    }

    /// Finds a chain by its display name, case-insensitively (`aes-twofish`, `AES-Twofish`).
    pub fn from_name(name: &str) -> Option<ChainId> {
        ChainId::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name.trim()))
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A chain keyed for XTS: for each cipher of the chain, its primary and its tweak cipher.
pub struct XtsChain {
    id: ChainId,
    layers: Vec<Box<dyn XtsCipher>>,
}

/// Bytes per slice in which all layers of a chain are applied before moving on, so that a
/// multi-cipher chain works on data still in L2 cache.
const SLICE: usize = 64 * 1024;

/// Buffers at least this large are split across cores; below it, starting threads costs more
/// than it saves.
const PARALLEL_MIN: usize = 256 * 1024;

/// Worker count for large buffers: the cores the process may use, looked up once.
fn parallelism() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

impl XtsChain {
    /// Keys `id` from `key_material`: all primary keys (internal order), then all tweak keys.
    ///
    /// # Errors
    /// Returns the expected length when `key_material` is shorter than
    /// [`ChainId::key_material_len`]; longer material is fine (the tail is ignored), since the
    /// key area and the derived key are always 192 or 256 bytes.
    pub fn new(id: ChainId, key_material: &[u8]) -> Result<XtsChain, usize> {
        let need = id.key_material_len();
        if key_material.len() < need {
            return Err(need);
        }
        let half = need / 2;
        let layers = id
            .ciphers()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let primary = as_key(&key_material[32 * i..]);
                let tweak = as_key(&key_material[half + 32 * i..]);
                c.keyed_xts(primary, tweak)
            })
            .collect();
        Ok(XtsChain { id, layers })
    }

    /// Which chain this is.
    pub fn id(&self) -> ChainId {
        self.id
    }

    /// Encrypts `buf` in place; its first byte starts data unit `first_unit`.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 16 (see [`crate::crypto::xts`]).
    pub fn encrypt(&self, buf: &mut [u8], first_unit: u64) {
        self.run(buf, first_unit, Direction::Encrypt);
    }

    /// Decrypts `buf` in place; its first byte starts data unit `first_unit`.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 16 (see [`crate::crypto::xts`]).
    pub fn decrypt(&self, buf: &mut [u8], first_unit: u64) {
        self.run(buf, first_unit, Direction::Decrypt);
    }

    /// Runs one direction over `buf` on at most `threads` threads (0 = one per core); buffers
    /// below the threading threshold always run on the calling thread. For benchmarks that
    /// compare one thread with all.
    ///
    /// # Panics
    /// If `buf.len()` is not a multiple of 16 (see [`xts`](super::xts::xts)).
    pub fn run_with_threads(
        &self,
        dir: Direction,
        buf: &mut [u8],
        first_unit: u64,
        threads: usize,
    ) {
        let threads = if threads == 0 { parallelism() } else { threads };
        self.run_threads(buf, first_unit, dir, threads);
    }

    /// Splits large buffers across cores (XTS data units are independent), then runs every
    /// layer slice by slice.
    fn run(&self, buf: &mut [u8], first_unit: u64, dir: Direction) {
        self.run_threads(buf, first_unit, dir, parallelism());
    }

    fn run_threads(&self, buf: &mut [u8], first_unit: u64, dir: Direction, threads: usize) {
        if threads < 2 || buf.len() < PARALLEL_MIN {
            return self.run_on_this_thread(buf, first_unit, dir);
        }
        let units = buf.len().div_ceil(DATA_UNIT);
        let per_thread = units.div_ceil(threads) * DATA_UNIT;
        std::thread::scope(|s| {
            let mut parts = buf.chunks_mut(per_thread).enumerate();
            let first = parts.next();
            for (i, part) in parts {
                let unit = first_unit.wrapping_add((i * per_thread / DATA_UNIT) as u64);
                s.spawn(move || self.run_on_this_thread(part, unit, dir));
            }
            if let Some((_, part)) = first {
                self.run_on_this_thread(part, first_unit, dir);
            }
        });
    }

    fn run_on_this_thread(&self, buf: &mut [u8], first_unit: u64, dir: Direction) {
        let mut unit = first_unit;
        for slice in buf.chunks_mut(SLICE) {
            match dir {
                Direction::Encrypt => {
                    for layer in &self.layers {
                        layer.xts(dir, slice, unit);
                    }
                }
                Direction::Decrypt => {
                    for layer in self.layers.iter().rev() {
                        layer.xts(dir, slice, unit);
                    }
                }
            }
            unit = unit.wrapping_add((slice.len() / DATA_UNIT) as u64);
        }
    }
}

/// The first 32 bytes of `bytes`, which the caller has checked are there.
fn as_key(bytes: &[u8]) -> &[u8; 32] {
    match bytes.first_chunk::<32>() {
        Some(k) => k,
        None => unreachable!("key material length checked by the caller"),
    }
}

impl fmt::Debug for XtsChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "XtsChain {{ id: {}, keys: <redacted> }}", self.id)
    }
}
