//! Known-answer and oracle tests for the cryptographic layer (`tcvault::crypto`) and the
//! key-derivation cost rules of `tcvault::header::kdf`.
//!
//! What is covered:
//!
//! * Block ciphers with 256-bit keys: AES-256 (FIPS-197 appendix C.3), Camellia-256 (RFC 3713
//!   appendix A), Kuznyechik (GOST R 34.12-2015 / RFC 7801, in the byte order of the RustCrypto
//!   `kuznyechik` crate), Serpent-256 (NESSIE set 1 and set 4) and Twofish-256 (the Twofish
//!   paper's tables, including the 49-step iterated table), each encrypted and decrypted, one
//!   block and many blocks per call; plus every cipher against its RustCrypto crate on random
//!   keys and batches of every length up to 13 blocks.
//! * XTS: IEEE 1619-2007 annex B vectors 10–14 (XTS-AES-256, 512-byte data units, data unit
//!   sequence numbers 0xff … 0xffffffffff, kept in `tests/vectors/ieee1619_xts_aes256.txt`), and
//!   random keys and buffers against the `xts-mode` crate for every cipher, whole and short last
//!   data units, several first unit numbers.
//! * Chains: the internal order of the fifteen chains against docs/format.md §6, and every chain
//!   against a composition of per-cipher `xts-mode` passes with the key material split as
//!   docs/format.md §4 describes (including buffers larger than the chain's 64 KiB working slice).
//! * PBKDF2: RFC 6070 (HMAC-SHA-1), RFC 7914 §11 (HMAC-SHA-256), the VeraCrypt self-test output
//!   prefixes of docs/format.md §4, every PRF and every block index against the `pbkdf2` crate, and
//!   the stop flag of `pbkdf2_block`.
//! * Argon2id: our wrapper against the `argon2` crate called directly, parameter errors, and the
//!   PIM-to-cost rule of docs/format.md §4.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use cipher::consts::U16;
use cipher::{BlockCipherDecrypt, BlockCipherEncrypt, BlockSizeUser, KeyInit};
use xts_mode::{Xts128, get_tweak_default};

use tcvault::crypto::chain::{ChainId, XtsChain};
use tcvault::crypto::cipher::{Block, CipherId};
use tcvault::crypto::kdf::{Argon2Params, Prf, Stopped, argon2id, pbkdf2, pbkdf2_block};
use tcvault::crypto::xts::{DATA_UNIT, Direction, xts};
use tcvault::header::kdf::{Family, Kdf, argon2_params};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Decodes a hex test vector; whitespace inside the string is ignored.
fn unhex(s: &str) -> Vec<u8> {
    let compact: String = s.split_whitespace().collect();
    hex::decode(compact).expect("test vector is valid hex")
}

/// Decodes a hex test vector of exactly `N` bytes.
fn unhex_array<const N: usize>(s: &str) -> [u8; N] {
    unhex(s)
        .try_into()
        .expect("test vector has the expected length")
}

/// Deterministic xorshift64* generator, so that every run tests the same inputs.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // Any non-zero state works; mix the seed so that small seeds differ in every bit.
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }

    fn key(&mut self) -> [u8; 32] {
        let mut k = [0u8; 32];
        self.fill(&mut k);
        k
    }
}

/// The PRFs that PBKDF2 can drive (every PRF but Argon2id).
const PBKDF2_PRFS: [Prf; 7] = [
    Prf::Sha512,
    Prf::Sha256,
    Prf::Blake2s,
    Prf::Whirlpool,
    Prf::Streebog,
    Prf::Ripemd160,
    Prf::Sha1,
];

// ---------------------------------------------------------------------------------------------
// 1. Block ciphers
// ---------------------------------------------------------------------------------------------

/// Checks one known answer with one block per call and with many copies of it per call (which
/// takes the multi-block paths of the batched implementations).
fn check_block_kat(id: CipherId, key: &str, plaintext: &str, ciphertext: &str) {
    let key: [u8; 32] = unhex_array(key);
    let pt: Block = unhex_array(plaintext);
    let ct: Block = unhex_array(ciphertext);
    let cipher = id.keyed(&key);

    let mut one = [pt];
    cipher.encrypt_blocks(&mut one);
    assert_eq!(hex::encode(one[0]), hex::encode(ct), "{id}: encryption");
    cipher.decrypt_blocks(&mut one);
    assert_eq!(hex::encode(one[0]), hex::encode(pt), "{id}: decryption");

    let mut many = [pt; 11];
    cipher.encrypt_blocks(&mut many);
    for (i, b) in many.iter().enumerate() {
        assert_eq!(hex::encode(b), hex::encode(ct), "{id}: block {i} of 11");
    }
    cipher.decrypt_blocks(&mut many);
    assert!(many.iter().all(|b| *b == pt), "{id}: batch decryption");
}

#[test]
fn aes256_fips197_appendix_c3() {
    check_block_kat(
        CipherId::Aes,
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "00112233445566778899aabbccddeeff",
        "8ea2b7ca516745bfeafc49904b496089",
    );
}

#[test]
fn camellia256_rfc3713_appendix_a() {
    check_block_kat(
        CipherId::Camellia,
        "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
        "0123456789abcdeffedcba9876543210",
        "9acc237dff16d76c20ef7c919e3a7509",
    );
}

#[test]
fn kuznyechik_gost_r_34_12_2015_example() {
    // RFC 7801 §5 / GOST R 34.12-2015 appendix A.1, written as the RustCrypto crate (and
    // VeraCrypt) read the bytes: the standard's most significant byte first.
    check_block_kat(
        CipherId::Kuznyechik,
        "8899aabbccddeeff0011223344556677fedcba98765432100123456789abcdef",
        "1122334455667700ffeeddccbbaa9988",
        "7f679d90bebc24305a468d42b9d4edcd",
    );
}

#[test]
fn serpent256_nessie() {
    // NESSIE Serpent-256 set 1 vector 0 (key 80 00 .. 00, plaintext zero).
    check_block_kat(
        CipherId::Serpent,
        "8000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000",
        "a223aa1288463c0e2be38ebd825616c0",
    );
    // NESSIE Serpent-256 set 4 vector 0.
    check_block_kat(
        CipherId::Serpent,
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "00112233445566778899aabbccddeeff",
        "2868b7a2d28ecd5e4fdefac3c4330074",
    );
}

#[test]
fn twofish256_paper_vectors() {
    // Twofish paper, 256-bit key, zero key and plaintext (ecb_tbl I=1).
    check_block_kat(
        CipherId::Twofish,
        "0000000000000000000000000000000000000000000000000000000000000000",
        "00000000000000000000000000000000",
        "57ff739d4dc92c1bd7fc01700cc8216f",
    );
    // Twofish paper, section "Test vectors", 256-bit key.
    check_block_kat(
        CipherId::Twofish,
        "0123456789abcdeffedcba987654321000112233445566778899aabbccddeeff",
        "00000000000000000000000000000000",
        "37527be0052334b89f0cfccae87cfa20",
    );
}

#[test]
fn twofish256_iterated_table() {
    // The Twofish paper's ecb_tbl.txt for 256-bit keys: start from a zero key and plaintext;
    // after step i the key becomes (plaintext_i || first half of key_i) and the plaintext
    // becomes ciphertext_i.
    let expected: [(usize, &str); 7] = [
        (1, "57ff739d4dc92c1bd7fc01700cc8216f"),
        (2, "d43bb7556ea32e46f2a282b7d45b4e0d"),
        (3, "90afe91bb288544f2c32dc239b2635e6"),
        (4, "6cb4561c40bf0a9705931cb6d408e7fa"),
        (5, "3059d6d61753b958d92f4781c8640e58"),
        (48, "431058f4dbc7f734da4f02f04cc4f459"),
        (49, "37fe26ff1cf66175f5ddf4c33b97a205"),
    ];
    let mut key = [0u8; 32];
    let mut plain: Block = [0u8; 16];
    for step in 1..=49 {
        let cipher = CipherId::Twofish.keyed(&key);
        let mut block = [plain];
        cipher.encrypt_blocks(&mut block);
        let ct = block[0];
        cipher.decrypt_blocks(&mut block);
        assert_eq!(block[0], plain, "Twofish step {step}: decryption");
        if let Some((_, want)) = expected.iter().find(|(i, _)| *i == step) {
            assert_eq!(hex::encode(ct), *want, "Twofish iterated table, I={step}");
        }
        let (first, second) = key.split_at_mut(16);
        second.copy_from_slice(first);
        first.copy_from_slice(&plain);
        plain = ct;
    }
}

/// Encrypts (or decrypts) `blocks` one at a time with the RustCrypto implementation of `id`.
fn rustcrypto_blocks(id: CipherId, key: &[u8; 32], blocks: &mut [Block], encrypt: bool) {
    fn run<C>(key: &[u8; 32], blocks: &mut [Block], encrypt: bool)
    where
        C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>,
    {
        let c = C::new_from_slice(key).expect("RustCrypto cipher takes a 32-byte key");
        for b in blocks {
            let mut a = cipher::Array::<u8, U16>::from(*b);
            if encrypt {
                c.encrypt_block(&mut a);
            } else {
                c.decrypt_block(&mut a);
            }
            *b = a.into();
        }
    }
    match id {
        CipherId::Aes => run::<aes::Aes256>(key, blocks, encrypt),
        CipherId::Serpent => run::<serpent::Serpent>(key, blocks, encrypt),
        CipherId::Twofish => run::<twofish::Twofish>(key, blocks, encrypt),
        CipherId::Camellia => run::<camellia::Camellia256>(key, blocks, encrypt),
        CipherId::Kuznyechik => run::<kuznyechik::Kuznyechik>(key, blocks, encrypt),
    }
}

#[test]
fn block_ciphers_match_rustcrypto_on_random_batches() {
    let mut rng = Rng::new(1);
    for id in CipherId::ALL {
        for round in 0..4 {
            let key = rng.key();
            let cipher = id.keyed(&key);
            // Every batch length up to 13 covers each remainder of the multi-lane kernels.
            for n in 1..=13 {
                let mut ours: Vec<Block> = (0..n)
                    .map(|_| {
                        let mut b = [0u8; 16];
                        rng.fill(&mut b);
                        b
                    })
                    .collect();
                let plain = ours.clone();
                let mut oracle = ours.clone();
                cipher.encrypt_blocks(&mut ours);
                rustcrypto_blocks(id, &key, &mut oracle, true);
                assert_eq!(ours, oracle, "{id}: encrypt, round {round}, {n} blocks");
                cipher.decrypt_blocks(&mut ours);
                assert_eq!(ours, plain, "{id}: decrypt, round {round}, {n} blocks");
                rustcrypto_blocks(id, &key, &mut oracle, false);
                assert_eq!(oracle, plain, "{id}: oracle round trip");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. XTS known answers (IEEE 1619-2007 annex B)
// ---------------------------------------------------------------------------------------------

const IEEE1619_KEY1: &str = "2718281828459045235360287471352662497757247093699959574966967627";
const IEEE1619_KEY2: &str = "3141592653589793238462643383279502884197169399375105820974944592";

/// One vector of `tests/vectors/ieee1619_xts_aes256.txt`.
struct XtsVector {
    number: u32,
    data_unit: u64,
    ciphertext: Vec<u8>,
}

fn ieee1619_vectors() -> Vec<XtsVector> {
    include_str!("../vectors/ieee1619_xts_aes256.txt")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(fields.len(), 3, "vector line has three fields: {line}");
            XtsVector {
                number: fields[0].parse().expect("vector number is decimal"),
                data_unit: u64::from_str_radix(fields[1], 16).expect("data unit number is hex"),
                ciphertext: unhex(fields[2]),
            }
        })
        .collect()
}

#[test]
fn xts_aes256_ieee1619_vectors_10_to_14() {
    let vectors = ieee1619_vectors();
    let numbers: Vec<u32> = vectors.iter().map(|v| v.number).collect();
    assert_eq!(
        numbers,
        [10, 11, 12, 13, 14],
        "the data file holds vectors 10-14"
    );

    let key1: [u8; 32] = unhex_array(IEEE1619_KEY1);
    let key2: [u8; 32] = unhex_array(IEEE1619_KEY2);
    let primary = CipherId::Aes.keyed(&key1);
    let tweak = CipherId::Aes.keyed(&key2);
    let plaintext: Vec<u8> = (0..DATA_UNIT).map(|i| i as u8).collect();

    // The same vectors through a single-cipher chain: key material is key1 || key2.
    let mut material = key1.to_vec();
    material.extend_from_slice(&key2);
    let chain = XtsChain::new(ChainId::Aes, &material).expect("64 bytes key an AES chain");

    let mut expected_units = vec![0xff_u64, 0xffff, 0xff_ffff, 0xffff_ffff, 0xff_ffff_ffff];
    for v in &vectors {
        assert_eq!(v.ciphertext.len(), DATA_UNIT, "vector {}", v.number);
        assert_eq!(v.data_unit, expected_units.remove(0), "vector {}", v.number);

        let mut buf = plaintext.clone();
        xts(
            primary.as_ref(),
            tweak.as_ref(),
            Direction::Encrypt,
            &mut buf,
            v.data_unit,
        );
        assert_eq!(
            hex::encode(&buf),
            hex::encode(&v.ciphertext),
            "vector {}",
            v.number
        );
        xts(
            primary.as_ref(),
            tweak.as_ref(),
            Direction::Decrypt,
            &mut buf,
            v.data_unit,
        );
        assert_eq!(buf, plaintext, "vector {}: decryption", v.number);

        let mut buf = plaintext.clone();
        chain.encrypt(&mut buf, v.data_unit);
        assert_eq!(buf, v.ciphertext, "vector {} through XtsChain", v.number);
        chain.decrypt(&mut buf, v.data_unit);
        assert_eq!(
            buf, plaintext,
            "vector {} through XtsChain: decryption",
            v.number
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 3. XTS and chains against the xts-mode crate
// ---------------------------------------------------------------------------------------------

/// One XTS pass by the `xts-mode` crate with the RustCrypto implementation of `id`.
fn oracle_xts(
    id: CipherId,
    primary: &[u8; 32],
    tweak: &[u8; 32],
    dir: Direction,
    buf: &mut [u8],
    first_unit: u64,
) {
    fn run<C>(primary: &[u8; 32], tweak: &[u8; 32], dir: Direction, buf: &mut [u8], first: u64)
    where
        C: KeyInit + BlockCipherEncrypt + BlockCipherDecrypt + BlockSizeUser<BlockSize = U16>,
    {
        let xts = Xts128::<C>::new(
            C::new_from_slice(primary).expect("RustCrypto cipher takes a 32-byte key"),
            C::new_from_slice(tweak).expect("RustCrypto cipher takes a 32-byte key"),
        );
        let first = u128::from(first);
        match dir {
            Direction::Encrypt => xts.encrypt_area(buf, DATA_UNIT, first, get_tweak_default),
            Direction::Decrypt => xts.decrypt_area(buf, DATA_UNIT, first, get_tweak_default),
        }
    }
    match id {
        CipherId::Aes => run::<aes::Aes256>(primary, tweak, dir, buf, first_unit),
        CipherId::Serpent => run::<serpent::Serpent>(primary, tweak, dir, buf, first_unit),
        CipherId::Twofish => run::<twofish::Twofish>(primary, tweak, dir, buf, first_unit),
        CipherId::Camellia => run::<camellia::Camellia256>(primary, tweak, dir, buf, first_unit),
        CipherId::Kuznyechik => run::<kuznyechik::Kuznyechik>(primary, tweak, dir, buf, first_unit),
    }
}

/// Compares our `xts` with the oracle in both directions for one cipher, size and start unit.
fn check_xts_against_oracle(id: CipherId, rng: &mut Rng, len: usize, first_unit: u64) {
    let k1 = rng.key();
    let k2 = rng.key();
    let primary = id.keyed(&k1);
    let tweak = id.keyed(&k2);
    let plain = rng.bytes(len);
    let what = format!("{id}, {len} bytes from unit {first_unit}");

    let mut ours = plain.clone();
    xts(
        primary.as_ref(),
        tweak.as_ref(),
        Direction::Encrypt,
        &mut ours,
        first_unit,
    );
    let mut oracle = plain.clone();
    oracle_xts(id, &k1, &k2, Direction::Encrypt, &mut oracle, first_unit);
    assert!(ours == oracle, "{what}: encryption differs from xts-mode");
    assert!(ours != plain, "{what}: encryption changed nothing");

    // Decrypt the oracle's ciphertext with ours and our ciphertext with the oracle.
    xts(
        primary.as_ref(),
        tweak.as_ref(),
        Direction::Decrypt,
        &mut oracle,
        first_unit,
    );
    assert!(oracle == plain, "{what}: our decryption of xts-mode output");
    oracle_xts(id, &k1, &k2, Direction::Decrypt, &mut ours, first_unit);
    assert!(ours == plain, "{what}: xts-mode decryption of our output");
}

/// Start units: the first, the first data unit of a file volume, one past 2^32 (so the high
/// half of the 64-bit number matters) and one near the top of the 64-bit range.
const FIRST_UNITS: [u64; 4] = [0, 256, (1 << 32) + 5, u64::MAX - 40];

#[test]
fn xts_matches_xts_mode_for_every_cipher() {
    let mut rng = Rng::new(2);
    for id in CipherId::ALL {
        for units in [1usize, 2, 9, 17] {
            for first in FIRST_UNITS {
                check_xts_against_oracle(id, &mut rng, units * DATA_UNIT, first);
            }
        }
    }
}

#[test]
fn xts_short_last_unit_matches_xts_mode() {
    // The encrypted part of a header is one 448-byte unit; other short tails (any multiple of
    // 16 bytes) follow the same rule: the tweak of their unit, no ciphertext stealing.
    let mut rng = Rng::new(3);
    for id in CipherId::ALL {
        for first in FIRST_UNITS {
            check_xts_against_oracle(id, &mut rng, 448, first);
            check_xts_against_oracle(id, &mut rng, 2 * DATA_UNIT + 448, first);
            check_xts_against_oracle(id, &mut rng, 8 * DATA_UNIT + 16, first);
            check_xts_against_oracle(id, &mut rng, 16, first);
        }
    }
}

#[test]
fn xts_units_are_independent_of_buffer_split() {
    // Encrypting units one call at a time with the right unit numbers gives the same bytes as
    // one call over all of them.
    let mut rng = Rng::new(4);
    for id in CipherId::ALL {
        let primary = id.keyed(&rng.key());
        let tweak = id.keyed(&rng.key());
        let plain = rng.bytes(19 * DATA_UNIT);
        let mut whole = plain.clone();
        xts(
            primary.as_ref(),
            tweak.as_ref(),
            Direction::Encrypt,
            &mut whole,
            1000,
        );
        let mut pieces = plain.clone();
        for (i, unit) in pieces.chunks_mut(DATA_UNIT).enumerate() {
            xts(
                primary.as_ref(),
                tweak.as_ref(),
                Direction::Encrypt,
                unit,
                1000 + i as u64,
            );
        }
        assert!(whole == pieces, "{id}: one call vs one call per unit");
    }
}

/// The chains of docs/format.md §6: display name and internal order.
const FORMAT_MD_CHAINS: [(&str, &[CipherId]); 15] = {
    use CipherId::{Aes, Camellia, Kuznyechik, Serpent, Twofish};
    [
        ("AES", &[Aes]),
        ("Serpent", &[Serpent]),
        ("Twofish", &[Twofish]),
        ("Camellia", &[Camellia]),
        ("Kuznyechik", &[Kuznyechik]),
        ("AES-Twofish", &[Twofish, Aes]),
        ("AES-Twofish-Serpent", &[Serpent, Twofish, Aes]),
        ("Serpent-AES", &[Aes, Serpent]),
        ("Serpent-Twofish-AES", &[Aes, Twofish, Serpent]),
        ("Twofish-Serpent", &[Serpent, Twofish]),
        ("Camellia-Kuznyechik", &[Kuznyechik, Camellia]),
        ("Camellia-Serpent", &[Serpent, Camellia]),
        ("Kuznyechik-AES", &[Aes, Kuznyechik]),
        (
            "Kuznyechik-Serpent-Camellia",
            &[Camellia, Serpent, Kuznyechik],
        ),
        ("Kuznyechik-Twofish", &[Twofish, Kuznyechik]),
    ]
};

#[test]
fn chain_internal_order_matches_format_md() {
    assert_eq!(ChainId::ALL.len(), FORMAT_MD_CHAINS.len());
    for (name, order) in FORMAT_MD_CHAINS {
        let id = ChainId::from_name(name).unwrap_or_else(|| panic!("no chain named {name}"));
        assert_eq!(id.name(), name);
        assert_eq!(id.ciphers(), order, "{name}: internal order");
        assert_eq!(
            id.key_material_len(),
            64 * order.len(),
            "{name}: key material"
        );
        assert!(ChainId::ALL.contains(&id), "{name} is in ChainId::ALL");
    }
    // The first eight of ALL are TrueCrypt 7.1a's, and only those.
    for (i, id) in ChainId::ALL.into_iter().enumerate() {
        assert_eq!(id.in_truecrypt(), i < 8, "{id}: in_truecrypt");
    }
}

/// Our chain result versus one `xts-mode` pass per cipher in internal order (encryption) or
/// reverse order (decryption), keys split as docs/format.md §4 describes.
fn check_chain_against_oracle(id: ChainId, rng: &mut Rng, len: usize, first_unit: u64) {
    let ciphers = id.ciphers();
    let n = ciphers.len();
    let material = rng.bytes(64 * n);
    let key_at = |offset: usize| -> [u8; 32] {
        material[offset..offset + 32]
            .try_into()
            .expect("key material slice is 32 bytes")
    };
    let chain = XtsChain::new(id, &material).expect("exact key material length");
    assert_eq!(chain.id(), id);
    let plain = rng.bytes(len);
    let what = format!("{id}, {len} bytes from unit {first_unit}");

    let mut ours = plain.clone();
    chain.encrypt(&mut ours, first_unit);
    let mut oracle = plain.clone();
    for (i, c) in ciphers.iter().enumerate() {
        let (p, t) = (key_at(32 * i), key_at(32 * (n + i)));
        oracle_xts(*c, &p, &t, Direction::Encrypt, &mut oracle, first_unit);
    }
    assert!(
        ours == oracle,
        "{what}: encryption differs from layered xts-mode"
    );

    chain.decrypt(&mut oracle, first_unit);
    assert!(
        oracle == plain,
        "{what}: our decryption of layered xts-mode output"
    );
    for (i, c) in ciphers.iter().enumerate().rev() {
        let (p, t) = (key_at(32 * i), key_at(32 * (n + i)));
        oracle_xts(*c, &p, &t, Direction::Decrypt, &mut ours, first_unit);
    }
    assert!(
        ours == plain,
        "{what}: layered xts-mode decryption of our output"
    );
}

#[test]
fn chains_match_layered_xts_mode() {
    let mut rng = Rng::new(5);
    for id in ChainId::ALL {
        check_chain_against_oracle(id, &mut rng, DATA_UNIT, 0);
        check_chain_against_oracle(id, &mut rng, 2 * DATA_UNIT, 256);
        check_chain_against_oracle(id, &mut rng, 17 * DATA_UNIT, (1 << 32) + 5);
        check_chain_against_oracle(id, &mut rng, 448, 0);
        check_chain_against_oracle(id, &mut rng, 448, 256);
        // Past the chain's 64 KiB working slice (128 units), whole and with a short tail.
        check_chain_against_oracle(id, &mut rng, 130 * DATA_UNIT, 256);
        check_chain_against_oracle(id, &mut rng, 257 * DATA_UNIT + 448, 77);
    }
}

#[test]
fn chains_match_layered_xts_mode_on_large_buffers() {
    // Large buffers may be split across threads; each part must keep its own unit numbers.
    // 512 units is 256 KiB; 1,025 units plus a short tail does not split evenly.
    let mut rng = Rng::new(9);
    for id in ChainId::ALL {
        check_chain_against_oracle(id, &mut rng, 512 * DATA_UNIT, 256);
        check_chain_against_oracle(id, &mut rng, 1025 * DATA_UNIT + 448, (1 << 32) - 300);
    }
}

#[test]
fn chain_key_material_length() {
    let mut rng = Rng::new(6);
    for id in ChainId::ALL {
        let need = id.key_material_len();
        let material = rng.bytes(256);
        assert_eq!(
            XtsChain::new(id, &material[..need - 1]).err(),
            Some(need),
            "{id}: one byte short"
        );
        assert_eq!(XtsChain::new(id, &[]).err(), Some(need), "{id}: empty");

        // Longer material (a 192-byte derived key, a 256-byte key area) ignores the tail.
        let exact = XtsChain::new(id, &material[..need]).expect("exact length");
        let long = XtsChain::new(id, &material).expect("longer material is accepted");
        let plain = rng.bytes(3 * DATA_UNIT);
        let mut a = plain.clone();
        let mut b = plain.clone();
        exact.encrypt(&mut a, 9);
        long.encrypt(&mut b, 9);
        assert!(
            a == b,
            "{id}: the tail of longer key material changed the result"
        );
        assert!(a != plain, "{id}: encryption changed nothing");
    }
}

// ---------------------------------------------------------------------------------------------
// 4. PBKDF2
// ---------------------------------------------------------------------------------------------

fn derive(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    pbkdf2(prf, password, salt, iterations, &mut out);
    out
}

#[test]
fn pbkdf2_hmac_sha1_rfc6070() {
    let cases: [(&[u8], &[u8], u32, &str); 5] = [
        (
            b"password",
            b"salt",
            1,
            "0c60c80f961f0e71f3a9b524af6012062fe037a6",
        ),
        (
            b"password",
            b"salt",
            2,
            "ea6c014dc72d6f8ccd1ed92ace1d41f0d8de8957",
        ),
        (
            b"password",
            b"salt",
            4096,
            "4b007901b765489abead49d926f721d065a429c1",
        ),
        (
            b"passwordPASSWORDpassword",
            b"saltSALTsaltSALTsaltSALTsaltSALTsalt",
            4096,
            "3d2eec4fe41c849b80c8d83662c0e44a8b291a964cf2f07038",
        ),
        (
            b"pass\0word",
            b"sa\0lt",
            4096,
            "56fa6aa75548099dcc37d7f03425e0c3",
        ),
    ];
    for (password, salt, iterations, want) in cases {
        let got = derive(Prf::Sha1, password, salt, iterations, want.len() / 2);
        assert_eq!(hex::encode(got), want, "c = {iterations}");
    }
}

/// The long RFC 6070 case on its own test, so that it runs in parallel with the others (a few
/// seconds with the optimised test profile).
#[test]
fn pbkdf2_hmac_sha1_rfc6070_16m_iterations() {
    let got = derive(Prf::Sha1, b"password", b"salt", 16_777_216, 20);
    assert_eq!(hex::encode(got), "eefe3d61cd4da4e4e9945b3d6ba2158c2634e984");
}

#[test]
fn pbkdf2_hmac_sha256_rfc7914() {
    let got = derive(Prf::Sha256, b"passwd", b"salt", 1, 64);
    assert_eq!(
        hex::encode(got),
        "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc\
         49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783"
    );
    let got = derive(Prf::Sha256, b"Password", b"NaCl", 80_000, 64);
    assert_eq!(
        hex::encode(got),
        "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56\
         a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d"
    );
}

#[test]
fn pbkdf2_veracrypt_self_test_prefixes() {
    // docs/format.md §4: password "password", salt 12 34 56 78, 5 iterations, first four bytes.
    // RIPEMD-160's prefix is not in docs/format.md; it was checked against OpenSSL's PBKDF2.
    let cases = [
        (Prf::Sha512, "1364aef8"),
        (Prf::Sha256, "f2a04fb2"),
        (Prf::Whirlpool, "507c366f"),
        (Prf::Blake2s, "8d51fa31"),
        (Prf::Streebog, "d053a230"),
        (Prf::Ripemd160, "7a3d7c03"),
    ];
    for (prf, want) in cases {
        let got = derive(prf, b"password", &[0x12, 0x34, 0x56, 0x78], 5, 4);
        assert_eq!(hex::encode(got), want, "{prf}");
    }
}

/// PBKDF2 by the `pbkdf2` crate over the RustCrypto HMAC of the PRF's hash.
fn oracle_pbkdf2(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    use hmac::SimpleHmac;
    match prf {
        Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, out),
        Prf::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out),
        Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out),
        Prf::Ripemd160 => pbkdf2::pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, iterations, out),
        Prf::Whirlpool => {
            pbkdf2::pbkdf2_hmac::<whirlpool::Whirlpool>(password, salt, iterations, out)
        }
        // BLAKE2s and Streebog have no eager block core, so `Hmac` does not take them.
        Prf::Blake2s => {
            pbkdf2::pbkdf2::<SimpleHmac<blake2::Blake2s256>>(password, salt, iterations, out)
                .expect("HMAC takes keys of any length")
        }
        Prf::Streebog => {
            pbkdf2::pbkdf2::<SimpleHmac<streebog::Streebog512>>(password, salt, iterations, out)
                .expect("HMAC takes keys of any length")
        }
        Prf::Argon2id => unreachable!("Argon2id is not a PBKDF2 PRF"),
    }
}

#[test]
fn pbkdf2_matches_pbkdf2_crate_for_every_prf() {
    let mut rng = Rng::new(7);
    // Password lengths around the hash block sizes (64 and 128 bytes), where HMAC switches to
    // hashing the key; 129 bytes is a long VeraCrypt keyfile pool plus one.
    let cases: [(usize, usize, u32); 7] = [
        (0, 64, 1),
        (8, 64, 2),
        (63, 64, 3),
        (64, 64, 5),
        (65, 4, 7),
        (128, 64, 11),
        (129, 64, 100),
    ];
    let never = AtomicBool::new(false);
    for prf in PBKDF2_PRFS {
        let bl = prf.block_len();
        for (pw_len, salt_len, iterations) in cases {
            let password = rng.bytes(pw_len);
            let salt = rng.bytes(salt_len);
            let what = format!("{prf}, password {pw_len} B, salt {salt_len} B, c = {iterations}");

            // The 192 bytes a header derivation needs.
            let ours = derive(prf, &password, &salt, iterations, 192);
            let mut oracle = vec![0u8; 192];
            oracle_pbkdf2(prf, &password, &salt, iterations, &mut oracle);
            assert_eq!(hex::encode(&ours), hex::encode(&oracle), "{what}: pbkdf2");

            // Every block on its own, one block past the 192 bytes too.
            let blocks = 192usize.div_ceil(bl) + 1;
            let mut longer = vec![0u8; blocks * bl];
            oracle_pbkdf2(prf, &password, &salt, iterations, &mut longer);
            for (i, want) in longer.chunks(bl).enumerate() {
                let index = u32::try_from(i + 1).expect("small index");
                let mut out = vec![0u8; bl];
                pbkdf2_block(prf, &password, &salt, iterations, index, &mut out, &never)
                    .expect("flag never raised");
                assert_eq!(
                    hex::encode(&out),
                    hex::encode(want),
                    "{what}: block {index}"
                );
            }

            // A shorter output gets the block's prefix; a longer one only the block's bytes.
            let mut short = [0u8; 5];
            pbkdf2_block(prf, &password, &salt, iterations, 2, &mut short, &never)
                .expect("flag never raised");
            assert_eq!(short[..], longer[bl..bl + 5], "{what}: short output");
            let mut wide = vec![0xAAu8; bl + 7];
            pbkdf2_block(prf, &password, &salt, iterations, 1, &mut wide, &never)
                .expect("flag never raised");
            assert_eq!(wide[..bl], longer[..bl], "{what}: wide output");
            assert!(
                wide[bl..].iter().all(|b| *b == 0xAA),
                "{what}: bytes past block"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 5. The stop flag of pbkdf2_block
// ---------------------------------------------------------------------------------------------

/// Runs `pbkdf2_block` with an enormous iteration count on another thread and returns its
/// result, or fails the test if it has not returned within `limit`.
fn run_stoppable(prf: Prf, stop: Arc<AtomicBool>, limit: Duration) -> Result<(), Stopped> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut out = [0u8; 64];
        let r = pbkdf2_block(prf, b"password", &[7u8; 64], u32::MAX, 1, &mut out, &stop);
        // The receiver is gone only when the test has already failed.
        let _ = tx.send(r);
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{prf}: pbkdf2_block ignored its stop flag for {limit:?}"))
}

#[test]
fn pbkdf2_block_returns_stopped_when_flag_preset() {
    for prf in PBKDF2_PRFS {
        let start = Instant::now();
        let r = run_stoppable(
            prf,
            Arc::new(AtomicBool::new(true)),
            Duration::from_secs(30),
        );
        assert_eq!(r, Err(Stopped), "{prf}");
        // A few thousand HMACs at most; u32::MAX iterations would take hours.
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{prf}: took {:?}",
            start.elapsed()
        );
    }
}

#[test]
fn pbkdf2_block_returns_stopped_when_flag_raised_later() {
    let stop = Arc::new(AtomicBool::new(false));
    let raiser = {
        let stop = Arc::clone(&stop);
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(100));
            stop.store(true, Ordering::Relaxed);
        })
    };
    let r = run_stoppable(Prf::Sha512, stop, Duration::from_secs(30));
    raiser.join().expect("flag thread finished");
    assert_eq!(r, Err(Stopped));
}

// ---------------------------------------------------------------------------------------------
// 6. Argon2id
// ---------------------------------------------------------------------------------------------

fn argon2_crate(password: &[u8], salt: &[u8], m: u32, t: u32, p: u32, out: &mut [u8]) {
    let params = argon2::Params::new(m, t, p, Some(out.len())).expect("valid Argon2 parameters");
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(password, salt, out)
        .expect("Argon2id runs");
}

#[test]
fn argon2id_matches_argon2_crate() {
    let mut rng = Rng::new(8);
    // (memory KiB, passes, lanes, output bytes). The (16, 32) case would also pass Argon2's
    // range checks with memory and passes swapped, so it catches a swap.
    let cases: [(u32, u32, u32, usize); 4] = [
        (64, 2, 1, 192),
        (64, 3, 2, 64),
        (16, 32, 1, 192),
        (256, 1, 4, 32),
    ];
    for (memory_kib, passes, parallelism, len) in cases {
        let password = rng.bytes(20);
        let salt = rng.bytes(64);
        let params = Argon2Params {
            memory_kib,
            passes,
            parallelism,
        };
        let mut ours = vec![0u8; len];
        argon2id(&password, &salt, params, &mut ours).expect("valid parameters");
        let mut oracle = vec![0u8; len];
        argon2_crate(
            &password,
            &salt,
            memory_kib,
            passes,
            parallelism,
            &mut oracle,
        );
        assert_eq!(
            hex::encode(&ours),
            hex::encode(&oracle),
            "{params:?}, {len} bytes"
        );
    }
}

#[test]
fn argon2id_reports_invalid_parameters() {
    let salt = [1u8; 64];
    let mut out = [0u8; 192];
    let bad = [
        Argon2Params {
            memory_kib: 64,
            passes: 0,
            parallelism: 1,
        },
        Argon2Params {
            memory_kib: 64,
            passes: 2,
            parallelism: 0,
        },
        Argon2Params {
            memory_kib: 1,
            passes: 2,
            parallelism: 1,
        },
    ];
    for params in bad {
        assert!(
            argon2id(b"password", &salt, params, &mut out).is_err(),
            "{params:?} accepted"
        );
    }
    // A salt shorter than Argon2's minimum of 8 bytes.
    let ok = Argon2Params {
        memory_kib: 64,
        passes: 1,
        parallelism: 1,
    };
    assert!(argon2id(b"password", &salt[..4], ok, &mut out).is_err());
}

#[test]
fn argon2_params_follow_format_md() {
    // docs/format.md §4: memory min(64 + 32·(N−1), 1024) MiB; passes 3 + ⌊(N−1)/3⌋ for N ≤ 31, else
    // 13 + (N − 31); one lane; PIM 0 acts as PIM 12. Values worked out by hand.
    let cases: [(u32, u32, u32); 8] = [
        (0, 416, 6),
        (1, 64, 3),
        (3, 128, 3),
        (4, 160, 4),
        (12, 416, 6),
        (31, 1024, 13),
        (32, 1024, 14),
        (40, 1024, 22),
    ];
    for (pim, memory_mib, passes) in cases {
        let want = Argon2Params {
            memory_kib: memory_mib * 1024,
            passes,
            parallelism: 1,
        };
        assert_eq!(argon2_params(pim), want, "PIM {pim}");
        for system in [false, true] {
            assert_eq!(
                Kdf::for_header(Family::VeraCrypt, Prf::Argon2id, pim, system),
                Some(Kdf::Argon2id(want)),
                "VeraCrypt Argon2id, PIM {pim}, system {system}"
            );
        }
    }
    assert_eq!(
        Kdf::for_header(Family::TrueCrypt, Prf::Argon2id, 0, false),
        None,
        "TrueCrypt has no Argon2id"
    );
}
