//! Every engine kernel against the portable code and the RustCrypto crates.
//!
//! * AES-XTS: each backend this CPU can run (VAES-512, VAES-256, AES-NI, portable) against the
//!   `xts-mode` crate over `aes`, both directions, on random keys, random buffers of whole and
//!   short last units, and first unit numbers at 0, random, and around 2^32 and 2^64 (where the
//!   unit counter wraps inside one buffer).
//! * Serpent: the SIMD kernels (AVX-512, AVX2) and the portable word-sliced code against the
//!   `serpent` crate, block counts that leave every possible remainder, and XTS through the chain.
//!
//! Backends the CPU lacks are reported and skipped, except under `CI=true`, where the CI
//! machine's missing kernels fail the test so that a silent fallback is noticed.

use cipher::KeyInit;
use xts_mode::{Xts128, get_tweak_default};

use tcvault::crypto::cipher::aes_xts::{AesBackend, AesXts};
use tcvault::crypto::cipher::serpent::{Serpent, SerpentBackend};
use tcvault::crypto::cipher::{BlockCipher, CipherId};
use tcvault::crypto::xts::{DATA_UNIT, Direction, XtsCipher};

/// Deterministic xorshift64* so that a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
    fn key(&mut self) -> [u8; 32] {
        let mut k = [0u8; 32];
        self.fill(&mut k);
        k
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn oracle_aes_xts(k1: &[u8; 32], k2: &[u8; 32], dir: Direction, buf: &mut [u8], unit: u64) {
    let x = Xts128::new(
        aes::Aes256::new_from_slice(k1).expect("32-byte key"),
        aes::Aes256::new_from_slice(k2).expect("32-byte key"),
    );
    for (i, chunk) in buf.chunks_mut(DATA_UNIT).enumerate() {
        let tweak = get_tweak_default(u128::from(unit.wrapping_add(i as u64)));
        match dir {
            Direction::Encrypt => x.encrypt_sector(chunk, tweak),
            Direction::Decrypt => x.decrypt_sector(chunk, tweak),
        }
    }
}

/// Backends to test: all this CPU runs. Under CI the AES-NI kernel must be among them.
fn aes_backends() -> Vec<AesBackend> {
    let ci = crate::common::in_ci();
    let mut out = Vec::new();
    for b in AesBackend::ALL {
        if b.is_available() {
            out.push(b);
        } else {
            eprintln!("note: this CPU cannot run the {} AES-XTS kernel", b.name());
        }
    }
    if ci {
        assert!(
            out.contains(&AesBackend::AesNi),
            "CI machine without AES-NI: the hardware kernels would go untested"
        );
    }
    out
}

const UNIT_STARTS: [u64; 7] = [
    0,
    1,
    (1 << 32) - 3,
    u32::MAX as u64,
    u64::MAX - 2,
    u64::MAX,
    0x0123_4567_89ab_cdef,
];

#[test]
fn aes_xts_backends_match_xts_mode() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for backend in aes_backends() {
        for round in 0..40 {
            let k1 = rng.key();
            let k2 = rng.key();
            let x = AesXts::with_backend(&k1, &k2, backend).expect("backend is available");
            assert_eq!(x.backend(), backend);
            // Whole units (1..=11, so every group remainder of the 4- and 2-unit kernels
            // occurs) or a short last unit of any whole number of blocks.
            let units = 1 + rng.below(11) as usize;
            let len = if round % 3 == 0 {
                (units - 1) * DATA_UNIT + 16 * (1 + rng.below(31) as usize)
            } else {
                units * DATA_UNIT
            };
            let unit = UNIT_STARTS
                .get(round)
                .copied()
                .unwrap_or_else(|| rng.next());
            let mut plain = vec![0u8; len];
            rng.fill(&mut plain);
            let mut ours = plain.clone();
            let mut theirs = plain.clone();
            x.xts(Direction::Encrypt, &mut ours, unit);
            oracle_aes_xts(&k1, &k2, Direction::Encrypt, &mut theirs, unit);
            assert!(
                ours == theirs,
                "{} encrypt differs from xts-mode: len {len}, unit {unit:#x}",
                backend.name()
            );
            x.xts(Direction::Decrypt, &mut ours, unit);
            assert!(
                ours == plain,
                "{} decrypt does not invert encrypt: len {len}, unit {unit:#x}",
                backend.name()
            );
            // Decrypt random "ciphertext" too, against the oracle.
            let mut ours = plain.clone();
            let mut theirs = plain.clone();
            x.xts(Direction::Decrypt, &mut ours, unit);
            oracle_aes_xts(&k1, &k2, Direction::Decrypt, &mut theirs, unit);
            assert!(
                ours == theirs,
                "{} decrypt differs from xts-mode: len {len}, unit {unit:#x}",
                backend.name()
            );
        }
    }
}

#[test]
fn aes_xts_backends_agree_with_portable_on_large_buffers() {
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let k1 = rng.key();
    let k2 = rng.key();
    let portable =
        AesXts::with_backend(&k1, &k2, AesBackend::Portable).expect("portable always runs");
    let mut plain = vec![0u8; 300 * DATA_UNIT + 64];
    rng.fill(&mut plain);
    let mut expected = plain.clone();
    portable.xts(Direction::Encrypt, &mut expected, (1 << 32) - 100);
    for backend in aes_backends() {
        let x = AesXts::with_backend(&k1, &k2, backend).expect("backend is available");
        let mut buf = plain.clone();
        x.xts(Direction::Encrypt, &mut buf, (1 << 32) - 100);
        assert!(buf == expected, "{} differs from portable", backend.name());
        x.xts(Direction::Decrypt, &mut buf, (1 << 32) - 100);
        assert!(buf == plain, "{} does not round-trip", backend.name());
    }
}

#[test]
fn aes_xts_default_backend_is_the_fastest_available() {
    let best = AesBackend::detect();
    assert!(best.is_available());
    for b in AesBackend::ALL {
        if b == best {
            break;
        }
        assert!(
            !b.is_available(),
            "{} is available but not chosen",
            b.name()
        );
    }
    let x = AesXts::new(&[7; 32], &[9; 32]);
    assert_eq!(x.backend(), best);
}

fn oracle_serpent(key: &[u8; 32], blocks: &mut [[u8; 16]], encrypt: bool) {
    use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt};
    let c = serpent::Serpent::new_from_slice(key).expect("32-byte key");
    for b in blocks {
        let mut a = Array::from(*b);
        if encrypt {
            c.encrypt_block(&mut a);
        } else {
            c.decrypt_block(&mut a);
        }
        b.copy_from_slice(&a);
    }
}

fn serpent_backends() -> Vec<SerpentBackend> {
    let ci = crate::common::in_ci();
    let mut out = Vec::new();
    for b in SerpentBackend::ALL {
        if b.is_available() {
            out.push(b);
        } else {
            eprintln!("note: this CPU cannot run the {} Serpent kernel", b.name());
        }
    }
    if ci {
        assert!(
            out.contains(&SerpentBackend::Avx2),
            "CI machine without AVX2: the SIMD Serpent kernels would go untested"
        );
    }
    out
}

#[test]
fn serpent_backends_match_serpent_crate() {
    let mut rng = Rng(0x5e49_e47a_0000_0001);
    for backend in serpent_backends() {
        // Every count up to 70 blocks (all remainders of the 16- and 32-block steps), then a
        // few larger batches.
        for n in (0..=70).chain([97, 256, 1000]) {
            let key = rng.key();
            let s = Serpent::with_backend(&key, backend).expect("backend is available");
            assert_eq!(s.backend(), backend);
            let mut plain = vec![[0u8; 16]; n];
            for b in &mut plain {
                rng.fill(b);
            }
            let mut ours = plain.clone();
            let mut theirs = plain.clone();
            s.encrypt_blocks(&mut ours);
            oracle_serpent(&key, &mut theirs, true);
            assert!(
                ours == theirs,
                "{} encrypt differs from the serpent crate with {n} blocks",
                backend.name()
            );
            let mut ours = plain.clone();
            let mut theirs = plain.clone();
            s.decrypt_blocks(&mut ours);
            oracle_serpent(&key, &mut theirs, false);
            assert!(
                ours == theirs,
                "{} decrypt differs from the serpent crate with {n} blocks",
                backend.name()
            );
        }
    }
}

#[test]
fn serpent_default_xts_matches_xts_mode() {
    let mut rng = Rng(0x0bad_cafe_1234_5678);
    for round in 0..12 {
        let k1 = rng.key();
        let k2 = rng.key();
        let layer = CipherId::Serpent.keyed_xts(&k1, &k2);
        let units = 1 + rng.below(20) as usize;
        let len = if round % 2 == 0 {
            units * DATA_UNIT
        } else {
            units * DATA_UNIT - 64
        };
        let unit = UNIT_STARTS
            .get(round)
            .copied()
            .unwrap_or_else(|| rng.next());
        let mut plain = vec![0u8; len];
        rng.fill(&mut plain);
        let mut ours = plain.clone();
        layer.xts(Direction::Encrypt, &mut ours, unit);
        let x = Xts128::new(
            serpent::Serpent::new_from_slice(&k1).expect("32-byte key"),
            serpent::Serpent::new_from_slice(&k2).expect("32-byte key"),
        );
        let mut theirs = plain.clone();
        for (i, chunk) in theirs.chunks_mut(DATA_UNIT).enumerate() {
            x.encrypt_sector(
                chunk,
                get_tweak_default(u128::from(unit.wrapping_add(i as u64))),
            );
        }
        assert!(
            ours == theirs,
            "Serpent-XTS differs: len {len}, unit {unit:#x}"
        );
        layer.xts(Direction::Decrypt, &mut ours, unit);
        assert!(ours == plain, "Serpent-XTS does not round-trip");
    }
}

#[test]
fn twofish_matches_twofish_crate_on_every_batch_size() {
    use cipher::{Array, BlockCipherDecrypt, BlockCipherEncrypt};
    let mut rng = Rng(0x7f15_4a11_0000_0003);
    // Every count up to 40 (all remainders of the 4-block interleave, and of a 16- or 32-block
    // SIMD group should one come), then larger batches.
    for n in (0..=40).chain([64, 100]) {
        let key = rng.key();
        let ours = CipherId::Twofish.keyed(&key);
        let oracle = twofish::Twofish::new_from_slice(&key).expect("32-byte key");
        let mut plain = vec![[0u8; 16]; n];
        for b in &mut plain {
            rng.fill(b);
        }
        let mut enc = plain.clone();
        ours.encrypt_blocks(&mut enc);
        for (p, c) in plain.iter().zip(&enc) {
            let mut a = Array::from(*p);
            oracle.encrypt_block(&mut a);
            assert_eq!(a.as_slice(), c.as_slice(), "encrypt, {n} blocks");
        }
        let mut dec = plain.clone();
        ours.decrypt_blocks(&mut dec);
        for (p, d) in plain.iter().zip(&dec) {
            let mut a = Array::from(*p);
            oracle.decrypt_block(&mut a);
            assert_eq!(a.as_slice(), d.as_slice(), "decrypt, {n} blocks");
        }
    }
}
