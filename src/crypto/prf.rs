//! Password-based key derivation: PBKDF2-HMAC over the format's hashes, and Argon2id.
//!
//! PBKDF2 is computed one output block at a time ([`pbkdf2_block`]) so that the unlock code can
//! derive only the blocks the remaining cipher chains need, run independent blocks on different
//! cores, and abandon a derivation the moment another one has opened the header. The keyed HMAC
//! state is built once per block and cloned for each iteration, so the password is hashed into
//! the inner and outer pads only once.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};

use digest::Digest;
use digest::block_api::{Block as HashBlock, BlockSizeUser, CoreProxy, UpdateCore};
use digest::{KeyInit, Mac};
use hmac::Hmac;

/// A key-derivation function of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prf {
    /// PBKDF2-HMAC-SHA-512.
    Sha512,
    /// PBKDF2-HMAC-SHA-256.
    Sha256,
    /// PBKDF2-HMAC-BLAKE2s-256.
    Blake2s,
    /// PBKDF2-HMAC-Whirlpool.
    Whirlpool,
    /// PBKDF2-HMAC-Streebog-512.
    Streebog,
    /// PBKDF2-HMAC-RIPEMD-160 (TrueCrypt, VeraCrypt ≤ 1.25.9).
    Ripemd160,
    /// PBKDF2-HMAC-SHA-1 (TrueCrypt before 5.0).
    Sha1,
    /// Argon2id (VeraCrypt 1.26.27+).
    Argon2id,
}

impl Prf {
    /// Every PRF, in the order an unlock tries them (the common ones first).
    pub const ALL: [Prf; 8] = [
        Prf::Sha512,
        Prf::Sha256,
        Prf::Blake2s,
        Prf::Whirlpool,
        Prf::Streebog,
        Prf::Ripemd160,
        Prf::Sha1,
        Prf::Argon2id,
    ];

    /// Short lower-case name used on the command line and in JSON (`sha512`, `blake2s`, …).
    pub fn id(self) -> &'static str {
        match self {
            Prf::Sha512 => "sha512",
            Prf::Sha256 => "sha256",
            Prf::Blake2s => "blake2s",
            Prf::Whirlpool => "whirlpool",
            Prf::Streebog => "streebog",
            Prf::Ripemd160 => "ripemd160",
            Prf::Sha1 => "sha1",
            Prf::Argon2id => "argon2id",
        }
    }

    /// The name VeraCrypt shows (`HMAC-SHA-512`, …).
    pub fn display_name(self) -> &'static str {
        match self {
            Prf::Sha512 => "HMAC-SHA-512",
            Prf::Sha256 => "HMAC-SHA-256",
            Prf::Blake2s => "HMAC-BLAKE2s-256",
            Prf::Whirlpool => "HMAC-Whirlpool",
            Prf::Streebog => "HMAC-Streebog",
            Prf::Ripemd160 => "HMAC-RIPEMD-160",
            Prf::Sha1 => "HMAC-SHA-1",
            Prf::Argon2id => "Argon2id",
        }
    }

    /// Parses a PRF name as users write it: `sha512`, `SHA-512`, `hmac-sha-512`, `ripemd-160`…
    pub fn from_name(name: &str) -> Option<Prf> {
        let norm: String = name
            .trim()
            .to_ascii_lowercase()
            .trim_start_matches("hmac-")
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect();
        let norm = match norm.as_str() {
            "blake2s256" => "blake2s",
            "streebog512" => "streebog",
            "ripemd" | "rmd160" => "ripemd160",
            other => other,
        };
        Prf::ALL.into_iter().find(|p| p.id() == norm)
    }

    /// Bytes one PBKDF2 block yields (the hash length); Argon2id yields its whole output at once.
    pub fn block_len(self) -> usize {
        match self {
            Prf::Sha512 | Prf::Whirlpool | Prf::Streebog => 64,
            Prf::Sha256 | Prf::Blake2s => 32,
            Prf::Ripemd160 | Prf::Sha1 => 20,
            Prf::Argon2id => usize::MAX,
        }
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// The derivation was abandoned because `stop` was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// How many iterations run between two looks at the stop flag.
const STOP_CHECK_EVERY: u32 = 2048;

/// Computes PBKDF2 output block `index` (1-based, RFC 8018 §5.2) of `prf` into `out`.
///
/// `out` receives `min(out.len(), prf.block_len())` bytes. The computation checks `stop` every
/// few thousand iterations and returns [`Stopped`] once it is set.
///
/// # Panics
/// If `prf` is [`Prf::Argon2id`] (not a PBKDF2 PRF) or `iterations` is 0.
pub fn pbkdf2_block(
    prf: Prf,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    assert!(iterations > 0, "PBKDF2 needs at least one iteration");
    match prf {
        Prf::Sha512 => block_sha512(password, salt, iterations, index, out, stop),
        Prf::Sha256 => block::<Hmac<sha2::Sha256>>(password, salt, iterations, index, out, stop),
        Prf::Blake2s => {
            block_precomputed::<blake2::Blake2s256>(password, salt, iterations, index, out, stop)
        }
        Prf::Whirlpool if super::whirlpool::available() => {
            super::whirlpool::pbkdf2_block(password, salt, iterations, index, out, stop)
        }
        Prf::Whirlpool => {
            block::<Hmac<whirlpool::Whirlpool>>(password, salt, iterations, index, out, stop)
        }
        Prf::Streebog if super::streebog::available() => {
            super::streebog::pbkdf2_block(password, salt, iterations, index, out, stop)
        }
        Prf::Streebog => {
            block_precomputed::<streebog::Streebog512>(password, salt, iterations, index, out, stop)
        }
        Prf::Ripemd160 => {
            block::<Hmac<ripemd::Ripemd160>>(password, salt, iterations, index, out, stop)
        }
        Prf::Sha1 => block::<Hmac<sha1::Sha1>>(password, salt, iterations, index, out, stop),
        Prf::Argon2id => panic!("Argon2id is not a PBKDF2 PRF"),
    }
}

fn block<M: Mac + KeyInit + Clone>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    let keyed = match <M as KeyInit>::new_from_slice(password) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    let mut h = keyed.clone();
    h.update(salt);
    h.update(&index.to_be_bytes());
    let mut u = h.finalize().into_bytes();
    let mut acc = u.clone();
    for i in 1..iterations {
        if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            zeroize::Zeroize::zeroize(acc.as_mut_slice());
            zeroize::Zeroize::zeroize(u.as_mut_slice());
            return Err(Stopped);
        }
        let mut h = keyed.clone();
        h.update(&u);
        u = h.finalize().into_bytes();
        for (a, b) in acc.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    let n = out.len().min(acc.len());
    out[..n].copy_from_slice(&acc[..n]);
    zeroize::Zeroize::zeroize(acc.as_mut_slice());
    zeroize::Zeroize::zeroize(u.as_mut_slice());
    Ok(())
}

/// PBKDF2-HMAC-SHA-512, the PRF of most volumes, as a loop over the bare compression function.
///
/// Every iteration hashes a 64-byte message with the inner key state and the 64-byte inner
/// digest with the outer one, so both are exactly one padded 128-byte block whose padding and
/// length never change. They are laid out once and only their first 64 bytes are rewritten per
/// iteration: two compressions and no hasher bookkeeping (buffers, counters, clones) at all.
fn block_sha512(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    use sha2::block_api::compress512;
    const IV: [u64; 8] = [
        0x6a09_e667_f3bc_c908,
        0xbb67_ae85_84ca_a73b,
        0x3c6e_f372_fe94_f82b,
        0xa54f_f53a_5f1d_36f1,
        0x510e_527f_ade6_82d1,
        0x9b05_688c_2b3e_6c1f,
        0x1f83_d9ab_fb41_bd6b,
        0x5be0_cd19_137e_2179,
    ];
    // The first iteration hashes the salt, of any length: the generic HMAC does it.
    let keyed = match <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(password) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    let mut h = keyed;
    h.update(salt);
    h.update(&index.to_be_bytes());
    let mut first = h.finalize().into_bytes();

    let mut key = [0u8; 128];
    if password.len() > 128 {
        let mut d = <sha2::Sha512 as Digest>::digest(password);
        key[..64].copy_from_slice(&d);
        zeroize::Zeroize::zeroize(d.as_mut_slice());
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let pad_state = |pad: u8| {
        let mut blk = [0u8; 128];
        for (b, k) in blk.iter_mut().zip(key.iter()) {
            *b = k ^ pad;
        }
        let mut st = IV;
        compress512(&mut st, std::slice::from_ref(&blk));
        zeroize::Zeroize::zeroize(&mut blk);
        st
    };
    let inner = pad_state(0x36);
    let outer = pad_state(0x5c);
    zeroize::Zeroize::zeroize(&mut key);

    // One 128-byte block: 64 message bytes, the 0x80 marker, zeros, and the bit length of
    // key block plus message (128 + 64 bytes) in the last 16 bytes.
    let mut blk = [0u8; 128];
    blk[64] = 0x80;
    blk[120..].copy_from_slice(&((128u64 + 64) * 8).to_be_bytes());
    blk[..64].copy_from_slice(&first);
    let mut acc = [0u64; 8];
    for (a, c) in acc.iter_mut().zip(first.chunks_exact(8)) {
        *a = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
    }
    zeroize::Zeroize::zeroize(first.as_mut_slice());
    let put = |blk: &mut [u8; 128], st: &[u64; 8]| {
        for (c, w) in blk[..64].chunks_exact_mut(8).zip(st) {
            c.copy_from_slice(&w.to_be_bytes());
        }
    };
    let mut st = [0u64; 8];
    for i in 1..iterations {
        if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            zeroize::Zeroize::zeroize(&mut acc);
            zeroize::Zeroize::zeroize(&mut st);
            zeroize::Zeroize::zeroize(&mut blk);
            return Err(Stopped);
        }
        st = inner;
        compress512(&mut st, std::slice::from_ref(&blk));
        put(&mut blk, &st);
        st = outer;
        compress512(&mut st, std::slice::from_ref(&blk));
        put(&mut blk, &st);
        for (a, w) in acc.iter_mut().zip(&st) {
            *a ^= w;
        }
    }
    let mut bytes = [0u8; 64];
    for (c, w) in bytes.chunks_exact_mut(8).zip(&acc) {
        c.copy_from_slice(&w.to_be_bytes());
    }
    let n = out.len().min(64);
    out[..n].copy_from_slice(&bytes[..n]);
    zeroize::Zeroize::zeroize(&mut bytes);
    zeroize::Zeroize::zeroize(&mut acc);
    zeroize::Zeroize::zeroize(&mut st);
    zeroize::Zeroize::zeroize(&mut blk);
    Ok(())
}

/// PBKDF2 over HMAC for hashes without an eager block core (BLAKE2s, Streebog), which the
/// `hmac` crate only offers as `SimpleHmac`: that one hashes the outer key block again on every
/// call, and BLAKE2's lazy buffer defers the inner key block too, so each iteration paid one or
/// two extra compressions. Here both key blocks are compressed once into hash cores, and each
/// iteration resumes from clones of them (RFC 2104 with the key block pre-hashed).
fn block_precomputed<D>(
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped>
where
    D: Digest + CoreProxy,
    D::Core: UpdateCore + BlockSizeUser + Clone,
{
    let block_len = <D::Core as BlockSizeUser>::block_size();
    let mut key = HashBlock::<D::Core>::default();
    if password.len() > block_len {
        let mut h = D::digest(password);
        key[..h.len()].copy_from_slice(&h);
        zeroize::Zeroize::zeroize(h.as_mut_slice());
    } else {
        key[..password.len()].copy_from_slice(password);
    }
    let keyed = |pad: u8| -> D::Core {
        let mut blk = key.clone();
        for b in blk.iter_mut() {
            *b ^= pad;
        }
        let (mut core, _) = D::new().decompose();
        core.update_blocks(std::slice::from_ref(&blk));
        zeroize::Zeroize::zeroize(blk.as_mut_slice());
        core
    };
    let inner = keyed(0x36);
    let outer = keyed(0x5c);
    zeroize::Zeroize::zeroize(key.as_mut_slice());
    let mac = |parts: &[&[u8]]| {
        let mut h = D::compose(inner.clone(), Default::default());
        for p in parts {
            Digest::update(&mut h, p);
        }
        let mut ih = h.finalize();
        let mut o = D::compose(outer.clone(), Default::default());
        Digest::update(&mut o, &ih);
        zeroize::Zeroize::zeroize(ih.as_mut_slice());
        o.finalize()
    };
    let mut u = mac(&[salt, &index.to_be_bytes()]);
    let mut acc = u.clone();
    for i in 1..iterations {
        if i % STOP_CHECK_EVERY == 0 && stop.load(Ordering::Relaxed) {
            zeroize::Zeroize::zeroize(acc.as_mut_slice());
            zeroize::Zeroize::zeroize(u.as_mut_slice());
            return Err(Stopped);
        }
        let next = mac(&[&u]);
        zeroize::Zeroize::zeroize(u.as_mut_slice());
        u = next;
        for (a, b) in acc.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    let n = out.len().min(acc.len());
    out[..n].copy_from_slice(&acc[..n]);
    zeroize::Zeroize::zeroize(acc.as_mut_slice());
    zeroize::Zeroize::zeroize(u.as_mut_slice());
    Ok(())
}

/// PBKDF2 output of `out.len()` bytes (all blocks, one after another, on this thread).
///
/// # Panics
/// As [`pbkdf2_block`].
pub fn pbkdf2(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let never = AtomicBool::new(false);
    for (i, chunk) in out.chunks_mut(prf.block_len()).enumerate() {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        // The flag is never raised, so the block always completes.
        let _ = pbkdf2_block(prf, password, salt, iterations, index, chunk, &never);
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub passes: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// Why Argon2id could not run.
#[derive(Debug, thiserror::Error)]
#[error("Argon2id failed: {0}")]
pub struct Argon2Error(String);

/// Argon2id (version 0x13) of `password` and `salt` into `out`.
///
/// # Errors
/// When the parameters are out of Argon2's range or the memory cannot be allocated.
pub fn argon2id(
    password: &[u8],
    salt: &[u8],
    params: Argon2Params,
    out: &mut [u8],
) -> Result<(), Argon2Error> {
    let p = argon2::Params::new(
        params.memory_kib,
        params.passes,
        params.parallelism,
        Some(out.len()),
    )
    .map_err(|e| Argon2Error(e.to_string()))?;
    // Our kernel, once the crate has validated the parameters (and the salt has Argon2's
    // minimum of 8 bytes); the crate itself otherwise.
    if salt.len() >= argon2::MIN_SALT_LEN && super::argon2::supports(out.len(), params.parallelism)
    {
        return super::argon2::argon2id(
            password,
            salt,
            params.memory_kib,
            params.passes,
            params.parallelism,
            out,
        )
        .map_err(|e| Argon2Error(e.to_string()));
    }
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, p)
        .hash_password_into(password, salt, out)
        .map_err(|e| Argon2Error(e.to_string()))
}
