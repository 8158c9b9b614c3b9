//! The portable PBKDF2 kernel: one block at a time on one thread, for every PBKDF2 PRF and
//! every CPU. The dispatcher (`super::kernel`) sends here every single block of a PRF whose
//! fast kernel is a lane kernel (one chain runs faster on its own), every group too small for
//! the lanes, and every PRF without a kernel for this CPU.
//!
//! Three loops: the generic RustCrypto HMAC (`block`: SHA-256, RIPEMD-160, SHA-1,
//! Whirlpool), HMAC with both key blocks compressed once into hash cores
//! (`block_precomputed`: BLAKE2s, Streebog), and SHA-512 over the bare compression function
//! (`block_sha512`).

use std::sync::atomic::{AtomicBool, Ordering};

use digest::Digest;
use digest::block_api::{Block as HashBlock, BlockSizeUser, CoreProxy, UpdateCore};
use digest::{KeyInit, Mac};
use hmac::Hmac;

use super::{Prf, STOP_CHECK_EVERY, Stopped};

/// PBKDF2 block `index` of `prf` into `out` (up to one hash length), the stop flag checked
/// every few thousand iterations.
///
/// # Panics
/// If `prf` is [`Prf::Argon2id`].
pub fn pbkdf2_block(
    prf: Prf,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    match prf {
        Prf::Sha512 => block_sha512(password, salt, iterations, index, out, stop),
        Prf::Sha256 => block::<Hmac<sha2::Sha256>>(password, salt, iterations, index, out, stop),
        Prf::Blake2s => {
            block_precomputed::<blake2::Blake2s256>(password, salt, iterations, index, out, stop)
        }
        Prf::Whirlpool => {
            block::<Hmac<::whirlpool::Whirlpool>>(password, salt, iterations, index, out, stop)
        }
        Prf::Streebog => block_precomputed::<::streebog::Streebog512>(
            password, salt, iterations, index, out, stop,
        ),
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
