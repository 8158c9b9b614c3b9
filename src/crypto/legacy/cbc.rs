//! CBC with whitening (TrueCrypt 1.0–4.0).
//!
//! The core, for one group of ciphers applied to each block as one E: `C_0 = IV`,
//! `C_i = E(P_i ⊕ C_{i−1})`, stored `C_i ⊕ W` with the 8-byte whitening value `W` XORed into
//! every 8-byte piece; chaining uses the unwhitened `C_i`. A buffer is a sequence of independent
//! runs (512-byte sectors, or the one 448-byte header run), each with its own IV and W.
//!
//! Sectors are processed several at a time: encryption is serial within a run, so block j of up
//! to [`LANES`] sectors goes through the ciphers in one call; decryption of a whole batch is one
//! call per cipher.

use zeroize::Zeroize;

use super::ciphers::Blocks;

/// Bytes per data sector of a legacy volume.
pub(crate) const SECTOR: usize = 512;
/// Runs processed side by side.
const LANES: usize = 16;

/// IV and whitening value of one run.
pub(crate) struct RunKey<const B: usize> {
    pub(crate) iv: [u8; B],
    pub(crate) w: [u8; 8],
}

impl<const B: usize> Drop for RunKey<B> {
    fn drop(&mut self) {
        self.iv.zeroize();
        self.w.zeroize();
    }
}

/// The header's IV and whitening: IV = key bytes 0..B, W = key bytes 8..16 (docs/legacy-format.md).
pub(crate) fn header_key<const B: usize>(secondary: &[u8; 32]) -> RunKey<B> {
    let mut iv = [0u8; B];
    iv.copy_from_slice(&secondary[..B]);
    let mut w = [0u8; 8];
    w.copy_from_slice(&secondary[8..16]);
    RunKey { iv, w }
}

/// IV and whitening of data sector `sector` for `B`-byte blocks, from the 32-byte IV seed.
pub(crate) fn sector_key<const B: usize>(seed: &[u8; 32], sector: u64) -> RunKey<B> {
    let mut x = *seed;
    let (words, _) = x.as_chunks_mut::<8>();
    for word in words {
        *word = (u64::from_le_bytes(*word) ^ sector).to_le_bytes();
    }
    let crc = |from: usize| crc32fast::hash(&x[from..from + 4]);
    let (w0, w1) = if B == 16 {
        (crc(16) ^ crc(28), crc(20) ^ crc(24))
    } else {
        (crc(8) ^ crc(20), crc(12) ^ crc(16))
    };
    let mut iv = [0u8; B];
    iv.copy_from_slice(&x[..B]);
    let mut w = [0u8; 8];
    w[..4].copy_from_slice(&w0.to_le_bytes());
    w[4..].copy_from_slice(&w1.to_le_bytes());
    x.zeroize();
    RunKey { iv, w }
}

/// Encrypts `buf`, made of runs of `run_len` bytes (the last may be shorter, all multiples of
/// `B`), run `r` with `key(r)`.
///
/// # Panics
/// If `run_len` is 0, above 512 or not a multiple of `B`, or `buf.len()` is not a multiple of
/// `B`.
pub(crate) fn encrypt<const B: usize>(
    ciphers: &[Box<dyn Blocks<B>>],
    buf: &mut [u8],
    run_len: usize,
    key: impl Fn(usize) -> RunKey<B>,
) {
    check::<B>(buf, run_len);
    let mut lanes = [[0u8; B]; LANES];
    let mut prev = [[0u8; B]; LANES];
    let mut whitening = [[0u8; 8]; LANES];
    for (batch_no, batch) in buf.chunks_mut(run_len * LANES).enumerate() {
        let runs = batch.len().div_ceil(run_len);
        for r in 0..runs {
            let k = key(batch_no * LANES + r);
            prev[r] = k.iv;
            whitening[r] = k.w;
        }
        for off in (0..run_len).step_by(B) {
            // Runs still holding a block at `off` (only the last run may be shorter).
            let live = (0..runs)
                .take_while(|r| r * run_len + off < batch.len())
                .count();
            for r in 0..live {
                let block = block_mut::<B>(batch, r * run_len + off);
                lanes[r] = *block;
                xor(&mut lanes[r], &prev[r]);
            }
            for c in ciphers {
                c.encrypt(&mut lanes[..live]);
            }
            for r in 0..live {
                *block_mut::<B>(batch, r * run_len + off) = lanes[r];
                prev[r] = lanes[r];
            }
        }
        for (run, w) in batch.chunks_mut(run_len).zip(&whitening) {
            whiten(run, w);
        }
    }
    lanes.zeroize();
    prev.zeroize();
    whitening.zeroize();
}

/// Decrypts what [`encrypt`] produced with the same `run_len` and keys.
///
/// # Panics
/// As [`encrypt`].
pub(crate) fn decrypt<const B: usize>(
    ciphers: &[Box<dyn Blocks<B>>],
    buf: &mut [u8],
    run_len: usize,
    key: impl Fn(usize) -> RunKey<B>,
) {
    check::<B>(buf, run_len);
    let mut saved = [0u8; SECTOR * LANES];
    for (batch_no, batch) in buf.chunks_mut(run_len * LANES).enumerate() {
        let mut ivs = [[0u8; B]; LANES];
        for (r, run) in batch.chunks_mut(run_len).enumerate() {
            let k = key(batch_no * LANES + r);
            whiten(run, &k.w);
            ivs[r] = k.iv;
        }
        // The unwhitened ciphertext is the chaining value of the next block.
        let saved = &mut saved[..batch.len()];
        saved.copy_from_slice(batch);
        let (blocks, _) = batch.as_chunks_mut::<B>();
        for c in ciphers.iter().rev() {
            c.decrypt(blocks);
        }
        for (r, run) in batch.chunks_mut(run_len).enumerate() {
            let start = r * run_len;
            let (blocks, _) = run.as_chunks_mut::<B>();
            for (i, b) in blocks.iter_mut().enumerate() {
                if i == 0 {
                    xor(b, &ivs[r]);
                } else {
                    let p = start + (i - 1) * B;
                    xor_slice(b, &saved[p..p + B]);
                }
            }
        }
        ivs.zeroize();
    }
    saved.zeroize();
}

fn check<const B: usize>(buf: &[u8], run_len: usize) {
    assert!(
        run_len > 0 && run_len <= SECTOR && run_len.is_multiple_of(B),
        "CBC run length must be a multiple of the block size up to 512"
    );
    assert!(
        buf.len().is_multiple_of(B),
        "CBC buffer must hold whole blocks"
    );
}

#[inline(always)]
fn block_mut<const B: usize>(buf: &mut [u8], at: usize) -> &mut [u8; B] {
    match buf[at..].first_chunk_mut::<B>() {
        Some(b) => b,
        None => unreachable!("offsets stay inside whole blocks"),
    }
}

fn whiten(run: &mut [u8], w: &[u8; 8]) {
    let w = u64::from_ne_bytes(*w);
    let (pieces, _) = run.as_chunks_mut::<8>();
    for p in pieces {
        *p = (u64::from_ne_bytes(*p) ^ w).to_ne_bytes();
    }
}

#[inline(always)]
fn xor<const B: usize>(a: &mut [u8; B], b: &[u8; B]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

#[inline(always)]
fn xor_slice<const B: usize>(a: &mut [u8; B], b: &[u8]) {
    for (x, y) in a.iter_mut().zip(b) {
        *x ^= y;
    }
}

#[cfg(test)]
mod tests {
    use super::super::ciphers::Crate;
    use super::*;
    use cipher::KeyInit;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        hex::decode(s).expect("test hex")
    }

    fn aes256(key: &str) -> [Box<dyn Blocks<16>>; 1] {
        [Box::new(Crate(
            aes::Aes256::new_from_slice(&hex(key)).expect("key"),
        ))]
    }

    const KEY: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";
    const IV: &str = "000102030405060708090a0b0c0d0e0f";
    const PLAIN: &str = "6bc1bee22e409f96e93d7e117393172a ae2d8a571e03ac9c9eb76fac45af8e51
                         30c81c46a35ce411e5fbc1191a0a52ef f69f2445df4f9b17ad2b417be66c3710";
    const CIPHER: &str = "f58c4c04d6e5f1ba779eabfb5f7bfbd6 9cfc4e967edb808d679f777bc6702c7d
                          39f23369a9d9bacfa530e26304231461 b2eb05e2c39be9fcda6c19078c6a9d1b";

    fn run_key(w: [u8; 8]) -> RunKey<16> {
        RunKey {
            iv: hex(IV).try_into().expect("16-byte IV"),
            w,
        }
    }

    #[test]
    fn sp800_38a_cbc_aes256_with_zero_whitening() {
        // F.2.5 (encrypt) and F.2.6 (decrypt).
        let c = aes256(KEY);
        let mut buf = hex(PLAIN);
        encrypt(&c, &mut buf, 64, |_| run_key([0; 8]));
        assert_eq!(hex::encode(&buf), hex::encode(hex(CIPHER)));
        decrypt(&c, &mut buf, 64, |_| run_key([0; 8]));
        assert_eq!(hex::encode(&buf), hex::encode(hex(PLAIN)));
    }

    #[test]
    fn whitening_is_xored_into_every_8_byte_piece_after_chaining() {
        let c = aes256(KEY);
        let w = [1, 2, 3, 4, 5, 6, 7, 0x80];
        let mut buf = hex(PLAIN);
        encrypt(&c, &mut buf, 64, |_| run_key(w));
        let mut want = hex(CIPHER);
        for (i, b) in want.iter_mut().enumerate() {
            *b ^= w[i % 8];
        }
        assert_eq!(buf, want);
        decrypt(&c, &mut buf, 64, |_| run_key(w));
        assert_eq!(buf, hex(PLAIN));
    }

    #[test]
    fn many_runs_in_one_call_equal_one_call_per_run() {
        // More runs than lanes and a short last run exercise the batching.
        let c = aes256(KEY);
        let run_len = 96;
        let total = run_len * (LANES + 3) + 48;
        let plain: Vec<u8> = (0..total).map(|i| (i * 7 + 3) as u8).collect();
        let key = |r: usize| {
            let mut k = run_key([r as u8; 8]);
            k.iv[0] ^= r as u8;
            k
        };
        let mut all = plain.clone();
        encrypt(&c, &mut all, run_len, key);
        let mut one_by_one = plain.clone();
        for (r, run) in one_by_one.chunks_mut(run_len).enumerate() {
            encrypt(&c, run, run_len, |_| key(r));
        }
        assert_eq!(all, one_by_one);
        decrypt(&c, &mut all, run_len, key);
        assert_eq!(all, plain);
    }

    #[test]
    fn sector_iv_and_whitening_follow_the_seed_rule() {
        let seed: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(29).wrapping_add(5));
        let s = 0x0102_0304_0506_0708u64;
        let mut x = seed;
        for k in 0..4 {
            for j in 0..8 {
                x[8 * k + j] ^= s.to_le_bytes()[j];
            }
        }
        let crc = |a: usize| crc32fast::hash(&x[a..a + 4]);
        let k16 = sector_key::<16>(&seed, s);
        assert_eq!(k16.iv[..], x[..16]);
        assert_eq!(k16.w[..4], (crc(16) ^ crc(28)).to_le_bytes());
        assert_eq!(k16.w[4..], (crc(20) ^ crc(24)).to_le_bytes());
        let k8 = sector_key::<8>(&seed, s);
        assert_eq!(k8.iv[..], x[..8]);
        assert_eq!(k8.w[..4], (crc(8) ^ crc(20)).to_le_bytes());
        assert_eq!(k8.w[4..], (crc(12) ^ crc(16)).to_le_bytes());
        // The XOR of two CRCs does not depend on init and final XOR (docs/legacy-format.md): check
        // against a bare reflected CRC without them.
        let raw = |a: usize| {
            let mut c = 0u32;
            for &byte in &x[a..a + 4] {
                c ^= u32::from(byte);
                for _ in 0..8 {
                    c = if c & 1 == 1 {
                        (c >> 1) ^ 0xedb8_8320
                    } else {
                        c >> 1
                    };
                }
            }
            c
        };
        assert_eq!(crc(16) ^ crc(28), raw(16) ^ raw(28));
    }
}
