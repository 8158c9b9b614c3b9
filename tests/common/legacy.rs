//! An independent builder and reader of legacy TrueCrypt (1.0–5.1a) volumes, for the tests of
//! issue 8. Written from `docs/legacy-format.md` and docs/format.md §1–§3, §7 with RustCrypto block
//! ciphers and hashes used directly: no tcvault code. Everything is done block by block, the
//! plain way (slow, but the volumes are small), so that a reader can check it against the facts.
//!
//! - Key material (the PBKDF2 output and the master key area) for LRW and CBC: bytes 0..32 are
//!   the LRW tweak key / the CBC IV seed, the cipher keys follow from byte 32 in the chain's
//!   internal order (the display name reversed). For XTS (TrueCrypt 5): all primary keys, then
//!   all secondary keys, 32 bytes each, internal order.
//! - LRW: T = K2 ⊗ I in GF(2^n), big-endian, C = E(P ⊕ T) ⊕ T; one full pass per cipher of the
//!   chain (internal order), each with its own block size and indices.
//! - CBC: C_i = E(P_i ⊕ C_{i−1}), stored C_i ⊕ W; outer CBC for 128-bit cascades (the chain is
//!   E), inner CBC (one pass per cipher) for the mixed chains.

use std::fs;
use std::ops::Range;
use std::path::Path;

use cipher::{Block, BlockCipherDecrypt, BlockCipherEncrypt, KeyInit};

/// Size of a legacy header.
pub const HEADER: usize = 512;
/// Sector size of every legacy volume.
pub const SECTOR: usize = 512;
/// The hidden header sits this many bytes before the end of the host.
pub const HIDDEN_HEADER_FROM_END: u64 = 1536;

/// Encryption mode of a legacy volume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// TrueCrypt 4.1–4.3.
    Lrw,
    /// TrueCrypt 1.0–4.0.
    Cbc,
    /// TrueCrypt 5.0–5.1a: XTS with header version 3 and the legacy layout.
    Xts5,
}

impl Mode {
    /// The name `info --json` prints.
    pub fn json(self) -> &'static str {
        match self {
            Mode::Lrw => "LRW",
            Mode::Cbc => "CBC",
            Mode::Xts5 => "XTS",
        }
    }
}

/// PBKDF2 PRFs of TrueCrypt, with TrueCrypt's iteration counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prf {
    Sha1,
    Ripemd160,
    Whirlpool,
    Sha512,
}

impl Prf {
    pub const ALL: [Prf; 4] = [Prf::Sha1, Prf::Ripemd160, Prf::Whirlpool, Prf::Sha512];

    /// The name `info --json` prints and `--prf` takes.
    pub fn name(self) -> &'static str {
        match self {
            Prf::Sha1 => "sha1",
            Prf::Ripemd160 => "ripemd160",
            Prf::Whirlpool => "whirlpool",
            Prf::Sha512 => "sha512",
        }
    }

    pub fn iterations(self) -> u32 {
        match self {
            Prf::Sha1 | Prf::Ripemd160 => 2000,
            Prf::Whirlpool | Prf::Sha512 => 1000,
        }
    }

    /// PBKDF2-HMAC-this of `password` and `salt`: 192 bytes.
    pub fn derive(self, password: &[u8], salt: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; 192];
        let n = self.iterations();
        match self {
            Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, n, &mut out),
            Prf::Ripemd160 => pbkdf2::pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, n, &mut out),
            Prf::Whirlpool => {
                pbkdf2::pbkdf2_hmac::<whirlpool::Whirlpool>(password, salt, n, &mut out)
            }
            Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, n, &mut out),
        }
        out
    }
}

/// The PBKDF2 password when keyfiles are used (docs/format.md §5, TrueCrypt's 64-byte pool): the
/// password zero-padded to 64 bytes, then for each keyfile a running CRC-32 (reflected, no final
/// xor) over its first 1 MiB whose four bytes (most significant first) are added into the pool
/// after every byte.
pub fn keyfile_pool(password: &[u8], keyfiles: &[&[u8]]) -> Vec<u8> {
    assert!(password.len() <= 64);
    let mut pool = vec![0u8; 64];
    pool[..password.len()].copy_from_slice(password);
    for kf in keyfiles {
        let (mut crc, mut pos) = (0xFFFF_FFFFu32, 0usize);
        for &b in kf.iter().take(1 << 20) {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
            for byte in crc.to_be_bytes() {
                pool[pos] = pool[pos].wrapping_add(byte);
                pos = (pos + 1) % 64;
            }
        }
    }
    pool
}

/// One block cipher of a chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algo {
    Aes,
    Serpent,
    Twofish,
    Blowfish,
    Cast5,
    TripleDes,
}

impl Algo {
    fn from_name(name: &str) -> Algo {
        match name {
            "AES" => Algo::Aes,
            "Serpent" => Algo::Serpent,
            "Twofish" => Algo::Twofish,
            "Blowfish" => Algo::Blowfish,
            "CAST5" => Algo::Cast5,
            "Triple DES" => Algo::TripleDes,
            _ => panic!("unknown cipher {name}"),
        }
    }

    pub fn key_len(self) -> usize {
        match self {
            Algo::Aes | Algo::Serpent | Algo::Twofish => 32,
            Algo::Blowfish => 56,
            Algo::Cast5 => 16,
            Algo::TripleDes => 24,
        }
    }

    pub fn block_len(self) -> usize {
        match self {
            Algo::Aes | Algo::Serpent | Algo::Twofish => 16,
            Algo::Blowfish | Algo::Cast5 | Algo::TripleDes => 8,
        }
    }

    pub fn keyed(self, key: &[u8]) -> Keyed {
        assert_eq!(key.len(), self.key_len(), "{self:?} key length");
        match self {
            Algo::Aes => Keyed::Aes(Box::new(aes::Aes256::new_from_slice(key).expect("key"))),
            Algo::Serpent => Keyed::Serpent(Box::new(
                serpent::Serpent::new_from_slice(key).expect("key"),
            )),
            Algo::Twofish => Keyed::Twofish(Box::new(
                twofish::Twofish::new_from_slice(key).expect("key"),
            )),
            Algo::Blowfish => Keyed::Blowfish(Box::new(
                blowfish::BlowfishLE::new_from_slice(key).expect("key"),
            )),
            Algo::Cast5 => Keyed::Cast5(Box::new(cast5::Cast5::new_from_slice(key).expect("key"))),
            Algo::TripleDes => {
                Keyed::TripleDes(Box::new(des::TdesEde3::new_from_slice(key).expect("key")))
            }
        }
    }
}

/// A keyed block cipher.
pub enum Keyed {
    Aes(Box<aes::Aes256>),
    Serpent(Box<serpent::Serpent>),
    Twofish(Box<twofish::Twofish>),
    Blowfish(Box<blowfish::BlowfishLE>),
    Cast5(Box<cast5::Cast5>),
    TripleDes(Box<des::TdesEde3>),
}

pub fn enc_with<C: BlockCipherEncrypt>(c: &C, block: &mut [u8]) {
    let mut a = Block::<C>::try_from(&*block).expect("one block");
    c.encrypt_block(&mut a);
    block.copy_from_slice(&a);
}

pub fn dec_with<C: BlockCipherDecrypt>(c: &C, block: &mut [u8]) {
    let mut a = Block::<C>::try_from(&*block).expect("one block");
    c.decrypt_block(&mut a);
    block.copy_from_slice(&a);
}

impl Keyed {
    pub fn encrypt(&self, block: &mut [u8]) {
        match self {
            Keyed::Aes(c) => enc_with(&**c, block),
            Keyed::Serpent(c) => enc_with(&**c, block),
            Keyed::Twofish(c) => enc_with(&**c, block),
            Keyed::Blowfish(c) => enc_with(&**c, block),
            Keyed::Cast5(c) => enc_with(&**c, block),
            Keyed::TripleDes(c) => enc_with(&**c, block),
        }
    }

    pub fn decrypt(&self, block: &mut [u8]) {
        match self {
            Keyed::Aes(c) => dec_with(&**c, block),
            Keyed::Serpent(c) => dec_with(&**c, block),
            Keyed::Twofish(c) => dec_with(&**c, block),
            Keyed::Blowfish(c) => dec_with(&**c, block),
            Keyed::Cast5(c) => dec_with(&**c, block),
            Keyed::TripleDes(c) => dec_with(&**c, block),
        }
    }
}

/// The 13 legacy chains (display names). The first 8 are all-128-bit.
pub const CHAINS: [&str; 13] = [
    "AES",
    "Serpent",
    "Twofish",
    "AES-Twofish",
    "AES-Twofish-Serpent",
    "Serpent-AES",
    "Serpent-Twofish-AES",
    "Twofish-Serpent",
    "Blowfish",
    "CAST5",
    "Triple DES",
    "AES-Blowfish",
    "AES-Blowfish-Serpent",
];

/// The internal order (= key order = encryption order) of a display name: reversed.
pub fn internal(chain: &str) -> Vec<Algo> {
    chain.split('-').rev().map(Algo::from_name).collect()
}

/// The chain's ciphers keyed from key material laid out as LRW/CBC want it (keys from byte 32).
fn keyed_legacy(chain: &str, km: &[u8]) -> Vec<(Algo, Keyed)> {
    let mut at = 32;
    internal(chain)
        .into_iter()
        .map(|a| {
            let k = a.keyed(&km[at..at + a.key_len()]);
            at += a.key_len();
            (a, k)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// GF(2^128) and GF(2^64), big-endian: bit 127 (63) is the coefficient of x^127 (x^63).

/// a ⊗ b modulo x^128 + x^7 + x^2 + x + 1.
pub fn gf128_mul(a: u128, b: u128) -> u128 {
    let (mut a, mut r) = (a, 0u128);
    for i in 0..128 {
        if (b >> i) & 1 == 1 {
            r ^= a;
        }
        let carry = a >> 127;
        a <<= 1;
        if carry == 1 {
            a ^= 0x87;
        }
    }
    r
}

/// a ⊗ b modulo x^64 + x^4 + x^3 + x + 1.
pub fn gf64_mul(a: u64, b: u64) -> u64 {
    let (mut a, mut r) = (a, 0u64);
    for i in 0..64 {
        if (b >> i) & 1 == 1 {
            r ^= a;
        }
        let carry = a >> 63;
        a <<= 1;
        if carry == 1 {
            a ^= 0x1B;
        }
    }
    r
}

/// The LRW tweak of block `index` with tweak key `k2` (`bs` bytes of it).
fn lrw_tweak(k2: &[u8], index: u64, bs: usize) -> Vec<u8> {
    if bs == 16 {
        let k = u128::from_be_bytes(k2[..16].try_into().expect("16 bytes"));
        gf128_mul(k, index as u128).to_be_bytes().to_vec()
    } else {
        let k = u64::from_be_bytes(k2[..8].try_into().expect("8 bytes"));
        gf64_mul(k, index).to_be_bytes().to_vec()
    }
}

/// One LRW pass of one cipher over `data`, block indices `first`, `first + 1`, …
pub fn lrw_pass(c: &Keyed, bs: usize, k2: &[u8], first: u64, data: &mut [u8], encrypt: bool) {
    assert_eq!(data.len() % bs, 0);
    for (j, block) in data.chunks_mut(bs).enumerate() {
        let t = lrw_tweak(k2, first + j as u64, bs);
        xor(block, &t);
        if encrypt {
            c.encrypt(block);
        } else {
            c.decrypt(block);
        }
        xor(block, &t);
    }
}

/// LRW over a run of `data` whose first 16-byte-block position is `first_unit` of a 512-byte
/// unit (header: the run starts at index 1; data: sector s starts at index s·(512/b) + 1).
fn lrw_chain(chain: &str, km: &[u8], first_sector: Option<u64>, data: &mut [u8], encrypt: bool) {
    let ciphers = keyed_legacy(chain, km);
    let mut order: Vec<&(Algo, Keyed)> = ciphers.iter().collect();
    if !encrypt {
        order.reverse();
    }
    for (a, k) in order {
        let bs = a.block_len();
        let first = match first_sector {
            None => 1,
            Some(s) => s * (SECTOR / bs) as u64 + 1,
        };
        lrw_pass(k, bs, &km[..bs], first, data, encrypt);
    }
}

// ---------------------------------------------------------------------------------------------
// CBC with whitening.

pub fn xor(a: &mut [u8], b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

/// The CBC core: E(P_i ⊕ C_{i−1}), stored C_i ⊕ W (W on every 8-byte piece).
pub fn cbc_encrypt(e: &dyn Fn(&mut [u8]), bs: usize, iv: &[u8], w: &[u8], data: &mut [u8]) {
    let mut prev = iv[..bs].to_vec();
    for block in data.chunks_mut(bs) {
        xor(block, &prev);
        e(block);
        prev.copy_from_slice(block);
        for piece in block.chunks_mut(8) {
            xor(piece, &w[..8]);
        }
    }
}

/// The inverse of [`cbc_encrypt`].
pub fn cbc_decrypt(d: &dyn Fn(&mut [u8]), bs: usize, iv: &[u8], w: &[u8], data: &mut [u8]) {
    let mut prev = iv[..bs].to_vec();
    for block in data.chunks_mut(bs) {
        for piece in block.chunks_mut(8) {
            xor(piece, &w[..8]);
        }
        let c = block.to_vec();
        d(block);
        xor(block, &prev);
        prev = c;
    }
}

/// IV and whitening of data sector `s` (absolute CBC sector number) for block size `bs`.
pub fn cbc_sector_iv(seed: &[u8], s: u64, bs: usize) -> (Vec<u8>, Vec<u8>) {
    let mut x = seed[..32].to_vec();
    for word in x.chunks_mut(8) {
        xor(word, &s.to_le_bytes());
    }
    let crc = |r: Range<usize>| crc32fast::hash(&x[r]);
    let (iv, w0, w1) = if bs == 16 {
        (
            x[..16].to_vec(),
            crc(16..20) ^ crc(28..32),
            crc(20..24) ^ crc(24..28),
        )
    } else {
        (
            x[..8].to_vec(),
            crc(8..12) ^ crc(20..24),
            crc(12..16) ^ crc(16..20),
        )
    };
    let mut w = w0.to_le_bytes().to_vec();
    w.extend_from_slice(&w1.to_le_bytes());
    (iv, w)
}

/// Groups of a chain for CBC: one group with the whole chain (single ciphers and all-128-bit
/// cascades, "outer CBC"), or one group per cipher (mixed block sizes, "inner CBC").
fn cbc_groups(ciphers: &[(Algo, Keyed)]) -> Vec<Vec<&(Algo, Keyed)>> {
    let mixed = ciphers
        .iter()
        .any(|(a, _)| a.block_len() != ciphers[0].0.block_len());
    if mixed {
        ciphers.iter().map(|c| vec![c]).collect()
    } else {
        vec![ciphers.iter().collect()]
    }
}

/// CBC over a header (`sector` None: IV km[0..b], W km[8..16]) or one data sector.
fn cbc_chain(chain: &str, km: &[u8], sector: Option<u64>, data: &mut [u8], encrypt: bool) {
    let ciphers = keyed_legacy(chain, km);
    let mut groups = cbc_groups(&ciphers);
    if !encrypt {
        groups.reverse();
    }
    for g in groups {
        let bs = g[0].0.block_len();
        let (iv, w) = match sector {
            None => (km[..bs].to_vec(), km[8..16].to_vec()),
            Some(s) => cbc_sector_iv(&km[..32], s, bs),
        };
        if encrypt {
            let e = |b: &mut [u8]| g.iter().for_each(|(_, k)| k.encrypt(b));
            cbc_encrypt(&e, bs, &iv, &w, data);
        } else {
            let d = |b: &mut [u8]| g.iter().rev().for_each(|(_, k)| k.decrypt(b));
            cbc_decrypt(&d, bs, &iv, &w, data);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// XTS (TrueCrypt 5), IEEE 1619, data unit = 512 bytes.

fn xts_pass(k1: &Keyed, k2: &Keyed, unit: u64, data: &mut [u8], encrypt: bool) {
    let mut t = [0u8; 16];
    t[..8].copy_from_slice(&unit.to_le_bytes());
    k2.encrypt(&mut t);
    for block in data.chunks_mut(16) {
        xor(block, &t);
        if encrypt {
            k1.encrypt(block);
        } else {
            k1.decrypt(block);
        }
        xor(block, &t);
        // t = t · α, little-endian.
        let v = u128::from_le_bytes(t);
        let v = (v << 1) ^ if v >> 127 == 1 { 0x87 } else { 0 };
        t = v.to_le_bytes();
    }
}

/// XTS of the chain over `data`, data units `first_unit`, `first_unit + 1`, … (512 bytes each;
/// a shorter run, the 448-byte header, is one unit).
fn xts_chain(chain: &str, km: &[u8], first_unit: u64, data: &mut [u8], encrypt: bool) {
    let algos = internal(chain);
    let n = algos.len();
    let mut keyed: Vec<(Keyed, Keyed)> = algos
        .iter()
        .enumerate()
        .map(|(i, a)| {
            assert_eq!(a.block_len(), 16, "XTS needs 128-bit ciphers");
            (
                a.keyed(&km[32 * i..32 * i + 32]),
                a.keyed(&km[32 * (n + i)..32 * (n + i) + 32]),
            )
        })
        .collect();
    if !encrypt {
        keyed.reverse();
    }
    for (k1, k2) in &keyed {
        for (u, unit) in data.chunks_mut(SECTOR).enumerate() {
            xts_pass(k1, k2, first_unit + u as u64, unit, encrypt);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers.

/// The decrypted fields of a legacy header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fields {
    pub version: u16,
    pub min_program: u16,
    pub hidden_size: u64,
    pub volume_size: u64,
    pub area_start: u64,
    pub area_len: u64,
    /// The 256-byte master key area.
    pub key_area: Vec<u8>,
}

/// A header opened by [`open_header`].
#[derive(Clone, Debug)]
pub struct Opened {
    pub mode: Mode,
    pub chain: &'static str,
    pub prf: Prf,
    pub fields: Fields,
}

/// Encrypts or decrypts the 448 bytes after the salt with header key material `dk`.
fn header_crypt(mode: Mode, chain: &str, dk: &[u8], body: &mut [u8], encrypt: bool) {
    match mode {
        Mode::Lrw => lrw_chain(chain, dk, None, body, encrypt),
        Mode::Cbc => cbc_chain(chain, dk, None, body, encrypt),
        Mode::Xts5 => xts_chain(chain, dk, 0, body, encrypt),
    }
}

/// A sealed 512-byte header: `salt` (random when None), fields serialized big-endian,
/// key-area CRC at 72, no header CRC (version < 4), encrypted with `password` under `prf`.
pub fn seal_header(
    mode: Mode,
    chain: &str,
    prf: Prf,
    password: &[u8],
    f: &Fields,
    salt: Option<[u8; 64]>,
) -> Vec<u8> {
    assert_eq!(f.key_area.len(), 256);
    let salt = salt.unwrap_or_else(|| {
        let mut s = [0u8; 64];
        getrandom::fill(&mut s).expect("random salt");
        s
    });
    let mut h = vec![0u8; HEADER];
    h[..64].copy_from_slice(&salt);
    h[64..68].copy_from_slice(b"TRUE");
    h[68..70].copy_from_slice(&f.version.to_be_bytes());
    h[70..72].copy_from_slice(&f.min_program.to_be_bytes());
    h[72..76].copy_from_slice(&crc32fast::hash(&f.key_area).to_be_bytes());
    h[92..100].copy_from_slice(&f.hidden_size.to_be_bytes());
    h[100..108].copy_from_slice(&f.volume_size.to_be_bytes());
    h[108..116].copy_from_slice(&f.area_start.to_be_bytes());
    h[116..124].copy_from_slice(&f.area_len.to_be_bytes());
    h[256..512].copy_from_slice(&f.key_area);
    let dk = prf.derive(password, &salt);
    header_crypt(mode, chain, &dk, &mut h[64..], true);
    h
}

/// Parses a decrypted header; None unless magic TRUE and the key-area CRC match.
fn parse(h: &[u8]) -> Option<Fields> {
    let be64 = |at: usize| u64::from_be_bytes(h[at..at + 8].try_into().expect("8 bytes"));
    if &h[64..68] != b"TRUE" {
        return None;
    }
    let crc = u32::from_be_bytes(h[72..76].try_into().expect("4 bytes"));
    if crc != crc32fast::hash(&h[256..512]) {
        return None;
    }
    Some(Fields {
        version: u16::from_be_bytes([h[68], h[69]]),
        min_program: u16::from_be_bytes([h[70], h[71]]),
        hidden_size: be64(92),
        volume_size: be64(100),
        area_start: be64(108),
        area_len: be64(116),
        key_area: h[256..512].to_vec(),
    })
}

/// Every (mode, chain) a legacy volume can have.
pub fn modes_and_chains() -> Vec<(Mode, &'static str)> {
    let mut v = Vec::new();
    for c in CHAINS {
        v.push((Mode::Lrw, c));
        v.push((Mode::Cbc, c));
    }
    for c in &CHAINS[..8] {
        v.push((Mode::Xts5, *c));
    }
    v
}

/// Tries every PRF, mode and chain on a 512-byte header.
pub fn open_header(h: &[u8], password: &[u8]) -> Option<Opened> {
    assert!(h.len() >= HEADER);
    for prf in Prf::ALL {
        let dk = prf.derive(password, &h[..64]);
        for (mode, chain) in modes_and_chains() {
            let mut plain = h[..HEADER].to_vec();
            header_crypt(mode, chain, &dk, &mut plain[64..], false);
            if let Some(fields) = parse(&plain) {
                return Some(Opened {
                    mode,
                    chain,
                    prf,
                    fields,
                });
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Data areas.

/// Encrypts or decrypts a data area in place. `rel0` is the relative sector of `data`'s first
/// byte inside its data area; `cbc_base` is the CBC sector number of relative sector 0
/// ((area-start field, or 512 when 0) / 512); `area_start` the absolute byte offset (XTS).
pub fn data_crypt(
    mode: Mode,
    chain: &str,
    key_area: &[u8],
    area_start: u64,
    cbc_base: u64,
    data: &mut [u8],
    encrypt: bool,
) {
    assert_eq!(data.len() % SECTOR, 0, "whole sectors");
    match mode {
        Mode::Lrw => {
            // One run: sector s block j has index s·(512/b) + 1 + j, continuous across sectors.
            lrw_chain(chain, key_area, Some(0), data, encrypt);
        }
        Mode::Cbc => {
            for (s, sector) in data.chunks_mut(SECTOR).enumerate() {
                cbc_chain(chain, key_area, Some(cbc_base + s as u64), sector, encrypt);
            }
        }
        Mode::Xts5 => xts_chain(chain, key_area, area_start / SECTOR as u64, data, encrypt),
    }
}

/// Decrypts the data area `[start, start + len)` of `host` (a whole volume file) with the
/// keys of `o`.
pub fn decrypt_area(o: &Opened, host: &[u8], start: u64, len: u64) -> Vec<u8> {
    let mut data = host[start as usize..(start + len) as usize].to_vec();
    let base = if o.fields.area_start == 0 {
        512
    } else {
        o.fields.area_start
    } / SECTOR as u64;
    data_crypt(
        o.mode,
        o.chain,
        &o.fields.key_area,
        start,
        base,
        &mut data,
        false,
    );
    data
}

/// Where a header's data area is in a host of `host_size` bytes, per the legacy layout:
/// (start, length).
pub fn area_of(o: &Opened, host_size: u64, hidden: bool) -> (u64, u64) {
    if hidden {
        let hs = o.fields.hidden_size;
        (host_size - hs - HIDDEN_HEADER_FROM_END, hs)
    } else if o.fields.area_start != 0 {
        (o.fields.area_start, o.fields.area_len)
    } else {
        (512, host_size - 512)
    }
}

// ---------------------------------------------------------------------------------------------
// The builder.

/// A deterministic data pattern (different for each seed and position).
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| {
            let x = (i ^ (seed << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            (x >> 56) as u8 ^ (i >> 9) as u8
        })
        .collect()
}

/// The hidden volume of a [`LegacySpec`].
#[derive(Clone, Debug)]
pub struct HiddenSpec<'a> {
    pub password: &'a [u8],
    pub prf: Prf,
    /// Bytes of hidden data (a multiple of 512).
    pub size: u64,
    /// The hidden volume's plaintext (default: [`pattern`] with seed 2), `size` bytes.
    pub data: Option<Vec<u8>>,
}

/// What to build.
#[derive(Clone, Debug)]
pub struct LegacySpec<'a> {
    pub mode: Mode,
    /// Display name, e.g. "AES-Blowfish".
    pub chain: &'a str,
    pub prf: Prf,
    pub password: &'a [u8],
    /// 1 or 2 (CBC, LRW), 3 (XTS).
    pub header_version: u16,
    pub hidden: Option<HiddenSpec<'a>>,
    /// The host size (a multiple of 512).
    pub host_size: u64,
    /// The normal volume's plaintext (default: [`pattern`] with seed 1), host − 512 bytes.
    pub data: Option<Vec<u8>>,
}

impl<'a> LegacySpec<'a> {
    /// A spec with no hidden volume and the default pattern.
    pub fn new(mode: Mode, chain: &'a str, prf: Prf, password: &'a [u8], host_size: u64) -> Self {
        LegacySpec {
            mode,
            chain,
            prf,
            password,
            header_version: if mode == Mode::Xts5 { 3 } else { 2 },
            hidden: None,
            host_size,
            data: None,
        }
    }
}

/// One volume (normal or hidden) of a built file.
#[derive(Clone, Debug)]
pub struct Part {
    /// Absolute byte offset of the data area.
    pub start: u64,
    /// Its plaintext.
    pub data: Vec<u8>,
    /// The header fields (key area included).
    pub fields: Fields,
}

/// A built legacy volume.
#[derive(Clone, Debug)]
pub struct Built {
    pub mode: Mode,
    pub chain: String,
    pub host_size: u64,
    pub normal: Part,
    pub hidden: Option<Part>,
}

impl Built {
    /// The part of the normal data area (relative byte range) that the hidden volume and its
    /// header overwrote; the normal plaintext outside it is intact.
    pub fn overwritten(&self) -> Option<Range<usize>> {
        self.hidden
            .as_ref()
            .map(|h| (h.start - 512) as usize..(self.host_size - 1024 - 512) as usize)
    }

    /// Asserts that `got` (a decryption of the normal data area) equals the plaintext, outside
    /// the range a hidden volume overwrote.
    pub fn check_normal(&self, got: &[u8], what: &str) {
        let want = &self.normal.data;
        assert_eq!(got.len(), want.len(), "{what}: normal data length");
        let r = self.overwritten().unwrap_or(want.len()..want.len());
        assert!(
            got[..r.start] == want[..r.start] && got[r.end..] == want[r.end..],
            "{what}: normal data differ (first difference at byte {:?})",
            got.iter().zip(want.iter()).position(|(a, b)| a != b)
        );
    }
}

fn min_program(mode: Mode, chain: &str, hidden: bool) -> u16 {
    match mode {
        Mode::Xts5 => 0x0500,
        Mode::Lrw => 0x0410,
        Mode::Cbc if hidden || internal(chain).len() > 1 => 0x0300,
        Mode::Cbc => 0x0100,
    }
}

pub fn random_key_area() -> Vec<u8> {
    let mut k = vec![0u8; 256];
    getrandom::fill(&mut k).expect("random key area");
    k
}

/// Builds the volume file `path` from `spec` and returns what it holds.
pub fn build(spec: &LegacySpec, path: &Path) -> Built {
    let host = spec.host_size;
    assert_eq!(host % 512, 0);
    let v3 = spec.header_version >= 3;
    let mut file = vec![0u8; host as usize];
    // Normal volume: header at 0, data from 512 to the end.
    let n_len = host - 512;
    let data = spec
        .data
        .clone()
        .unwrap_or_else(|| pattern(1, n_len as usize));
    assert_eq!(data.len() as u64, n_len, "normal data length");
    let fields = Fields {
        version: spec.header_version,
        min_program: min_program(spec.mode, spec.chain, false),
        hidden_size: 0,
        volume_size: if v3 { n_len } else { 0 },
        area_start: if v3 { 512 } else { 0 },
        area_len: if v3 { n_len } else { 0 },
        key_area: random_key_area(),
    };
    let mut enc = data.clone();
    data_crypt(
        spec.mode,
        spec.chain,
        &fields.key_area,
        512,
        1,
        &mut enc,
        true,
    );
    file[512..].copy_from_slice(&enc);
    let header = seal_header(
        spec.mode,
        spec.chain,
        spec.prf,
        spec.password,
        &fields,
        None,
    );
    file[..512].copy_from_slice(&header);
    let normal = Part {
        start: 512,
        data,
        fields,
    };
    let hidden = spec.hidden.as_ref().map(|h| {
        assert_eq!(h.size % 512, 0);
        let start = host - h.size - HIDDEN_HEADER_FROM_END;
        let fields = Fields {
            version: spec.header_version,
            min_program: min_program(spec.mode, spec.chain, true),
            hidden_size: h.size,
            volume_size: if v3 { h.size } else { 0 },
            area_start: if v3 { start } else { 0 },
            area_len: if v3 { h.size } else { 0 },
            key_area: random_key_area(),
        };
        let data = h
            .data
            .clone()
            .unwrap_or_else(|| pattern(2, h.size as usize));
        assert_eq!(data.len() as u64, h.size, "hidden data length");
        let mut enc = data.clone();
        // CBC: sector numbers from the area-start field, or 512 when it is 0.
        let cbc_base = if v3 { start / 512 } else { 1 };
        data_crypt(
            spec.mode,
            spec.chain,
            &fields.key_area,
            start,
            cbc_base,
            &mut enc,
            true,
        );
        file[start as usize..(start + h.size) as usize].copy_from_slice(&enc);
        let hh = seal_header(spec.mode, spec.chain, h.prf, h.password, &fields, None);
        let at = (host - HIDDEN_HEADER_FROM_END) as usize;
        file[at..at + 512].copy_from_slice(&hh);
        Part {
            start,
            data,
            fields,
        }
    });
    fs::write(path, &file).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    Built {
        mode: spec.mode,
        chain: spec.chain.to_string(),
        host_size: host,
        normal,
        hidden,
    }
}

/// The two header slots of a legacy volume file: bytes 0..512 and host − 1536 .. host − 1024.
pub fn header_slots(file: &[u8]) -> (&[u8], &[u8]) {
    let h = file.len() - HIDDEN_HEADER_FROM_END as usize;
    (&file[..512], &file[h..h + 512])
}

/// A 1,024-byte legacy header backup of the volume file `path` as TrueCrypt 4 wrote one: the
/// normal header, then the hidden header slot.
pub fn backup_1k(path: &Path) -> Vec<u8> {
    let file = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (n, h) = header_slots(&file);
    [n, h].concat()
}

/// A 1,024-byte backup holding the headers of `built` re-sealed (fresh salts) under other
/// passwords: the normal half under `normal_pw`; the hidden half under `hidden_pw` when the
/// volume has a hidden volume, else random bytes.
pub fn backup_1k_with(built: &Built, prf: Prf, normal_pw: &[u8], hidden_pw: &[u8]) -> Vec<u8> {
    let mut out = seal_header(
        built.mode,
        &built.chain,
        prf,
        normal_pw,
        &built.normal.fields,
        None,
    );
    match &built.hidden {
        Some(h) => out.extend(seal_header(
            built.mode,
            &built.chain,
            prf,
            hidden_pw,
            &h.fields,
            None,
        )),
        None => {
            let mut r = vec![0u8; 512];
            getrandom::fill(&mut r).expect("random");
            out.extend(r);
        }
    }
    out
}
