//! LRW (TrueCrypt 4.1–4.3): `C = E(P ⊕ T) ⊕ T` with `T = K2 ⊗ I` in GF(2^n).
//!
//! Elements are big-endian (docs/legacy-format.md): the most significant bit of byte 0 is the coefficient
//! of x^(n−1), so a block read with `from_be_bytes` is the polynomial with bit i = coefficient of
//! x^i. n = 128 (polynomial x^128 + x^7 + x^2 + x + 1) for 16-byte blocks, n = 64
//! (x^64 + x^4 + x^3 + x + 1) for 8-byte blocks; both live in a `u128`.
//!
//! Consecutive indices make the tweaks cheap: I ⊕ (I + 1) = 2^(k+1) − 1 where k is the number of
//! trailing one bits of I, so `T(I + 1) = T(I) ⊕ K2 ⊗ (2^(k+1) − 1)`, one table lookup per block.
//! Only the first index of a run takes a full multiplication.

use zeroize::Zeroize;

use super::ciphers::Blocks;

/// Multiplies `a` by `b` in GF(2^bits), bits = 128 or 64, without branching on the operands.
pub(crate) fn gf_mul(a: u128, b: u128, bits: u32) -> u128 {
    let (mask, poly) = field(bits);
    let mut a = a & mask;
    let mut r = 0u128;
    for i in 0..bits {
        r ^= a & ((b >> i) & 1).wrapping_neg();
        a = times_x(a, bits, mask, poly);
    }
    r
}

/// Multiplication in GF(2^128) with the LRW/GCM polynomial, big-endian bit order.
pub fn gf128_mul(a: u128, b: u128) -> u128 {
    gf_mul(a, b, 128)
}

/// Multiplication in GF(2^64) with x^64 + x^4 + x^3 + x + 1, big-endian bit order.
pub fn gf64_mul(a: u64, b: u64) -> u64 {
    gf_mul(u128::from(a), u128::from(b), 64) as u64
}

fn field(bits: u32) -> (u128, u128) {
    if bits == 128 {
        (u128::MAX, 0x87)
    } else {
        ((1u128 << bits) - 1, 0x1b)
    }
}

#[inline(always)]
fn times_x(a: u128, bits: u32, mask: u128, poly: u128) -> u128 {
    let carry = (a >> (bits - 1)) & 1;
    ((a << 1) & mask) ^ (poly & carry.wrapping_neg())
}

/// The LRW tweak key K2 and its increment table.
pub(crate) struct LrwKey {
    bits: u32,
    k2: u128,
    /// `inc[k] = K2 ⊗ (2^(k+1) − 1)`.
    inc: [u128; 128],
}

impl LrwKey {
    /// K2 from its big-endian bytes: 16 for GF(2^128), 8 for GF(2^64).
    pub(crate) fn new(k2: &[u8]) -> LrwKey {
        let bits = (k2.len() * 8) as u32;
        assert!(
            bits == 128 || bits == 64,
            "LRW tweak key must be 8 or 16 bytes"
        );
        let mut be = [0u8; 16];
        be[16 - k2.len()..].copy_from_slice(k2);
        let k2 = u128::from_be_bytes(be);
        be.zeroize();
        let (mask, poly) = field(bits);
        let mut inc = [0u128; 128];
        let mut power = k2; // K2 ⊗ x^k
        let mut acc = 0u128;
        for slot in inc.iter_mut().take(bits as usize) {
            acc ^= power;
            *slot = acc;
            power = times_x(power, bits, mask, poly);
        }
        LrwKey { bits, k2, inc }
    }

    /// Block size in bytes of the ciphers this key goes with.
    pub(crate) fn block_len(&self) -> usize {
        self.bits as usize / 8
    }

    fn mask(&self) -> u128 {
        field(self.bits).0
    }

    /// `K2 ⊗ index`.
    pub(crate) fn tweak(&self, index: u128) -> u128 {
        gf_mul(self.k2, index & self.mask(), self.bits)
    }
}

impl Drop for LrwKey {
    fn drop(&mut self) {
        self.k2.zeroize();
        self.inc.zeroize();
    }
}

/// Tweaks for consecutive indices, starting at a given one.
struct Tweaks<'a> {
    key: &'a LrwKey,
    index: u128,
    t: u128,
}

impl<'a> Tweaks<'a> {
    fn new(key: &'a LrwKey, first: u128) -> Self {
        let index = first & key.mask();
        Tweaks {
            key,
            index,
            t: key.tweak(index),
        }
    }

    /// The current tweak as a block, then steps to the next index.
    #[inline(always)]
    fn next<const B: usize>(&mut self) -> [u8; B] {
        let bytes = self.t.to_be_bytes();
        let k = self.index.trailing_ones();
        self.t ^= if k < self.key.bits {
            self.key.inc[k as usize]
        } else {
            // All-ones index: the next one wraps to 0, whose tweak is 0.
            self.t
        };
        self.index = self.index.wrapping_add(1) & self.key.mask();
        let mut out = [0u8; B];
        out.copy_from_slice(&bytes[16 - B..]);
        out
    }
}

impl Drop for Tweaks<'_> {
    fn drop(&mut self) {
        self.t.zeroize();
    }
}

/// Blocks per batch: 4 KiB of tweaks (16-byte blocks) on the stack.
const BATCH: usize = 256;

/// Encrypts (`encrypt = true`) or decrypts `buf` in place with LRW over the cipher group
/// `ciphers` (applied in order when encrypting, in reverse when decrypting, all inside one
/// whitening: equal to one LRW pass per cipher with the same K2 and indices). The first block
/// of `buf` has index `first_index`, the next ones +1, +2, …
///
/// # Panics
/// If `buf.len()` is not a multiple of `B` or `key` is not for `B`-byte blocks.
pub(crate) fn lrw<const B: usize>(
    ciphers: &[Box<dyn Blocks<B>>],
    key: &LrwKey,
    buf: &mut [u8],
    first_index: u128,
    encrypt: bool,
) {
    assert_eq!(key.block_len(), B, "LRW key for another block size");
    let (blocks, rest) = buf.as_chunks_mut::<B>();
    assert!(rest.is_empty(), "LRW buffer must hold whole blocks");
    let mut tweaks = Tweaks::new(key, first_index);
    let mut tw = [[0u8; B]; BATCH];
    for batch in blocks.chunks_mut(BATCH) {
        let tw = &mut tw[..batch.len()];
        for (t, b) in tw.iter_mut().zip(batch.iter_mut()) {
            *t = tweaks.next();
            xor(b, t);
        }
        if encrypt {
            for c in ciphers {
                c.encrypt(batch);
            }
        } else {
            for c in ciphers.iter().rev() {
                c.decrypt(batch);
            }
        }
        for (t, b) in tw.iter().zip(batch.iter_mut()) {
            xor(b, t);
        }
    }
    tw.zeroize();
}

#[inline(always)]
fn xor<const B: usize>(a: &mut [u8; B], b: &[u8; B]) {
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

    #[test]
    fn gf128_identity_zero_and_commutativity() {
        let a = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210u128;
        let b = 0x8000_0000_0000_0000_0000_0000_0000_0001u128;
        assert_eq!(gf128_mul(a, 1), a);
        assert_eq!(gf128_mul(1, a), a);
        assert_eq!(gf128_mul(a, 0), 0);
        assert_eq!(gf128_mul(a, b), gf128_mul(b, a));
    }

    #[test]
    fn gf128_distributive_and_associative() {
        let a = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834u128;
        let b = 0x1082_276b_f3a2_7251_f86c_6a11_d0c1_8e95u128;
        let c = 0xdead_beef_0bad_f00d_cafe_babe_1234_5678u128;
        assert_eq!(gf128_mul(a, b ^ c), gf128_mul(a, b) ^ gf128_mul(a, c));
        assert_eq!(gf128_mul(gf128_mul(a, b), c), gf128_mul(a, gf128_mul(b, c)));
    }

    #[test]
    fn gf128_hand_checked_products() {
        // x · x = x^2; (x + 1)(x + 1) = x^2 + 1.
        assert_eq!(gf128_mul(2, 2), 4);
        assert_eq!(gf128_mul(3, 3), 5);
        // x^127 · x = x^128 = x^7 + x^2 + x + 1 (0x87).
        assert_eq!(gf128_mul(1 << 127, 2), 0x87);
        // x^127 · x^2 = x^8 + x^3 + x^2 + x (0x10e).
        assert_eq!(gf128_mul(1 << 127, 4), 0x10e);
        // (x^127 + 1) · (x + 1) = x^128 + x^127 + x + 1 = x^127 + x^7 + x^2.
        assert_eq!(gf128_mul((1 << 127) | 1, 3), (1 << 127) | 0x84);
    }

    #[test]
    fn gf64_properties_and_reduction() {
        let a = 0x0123_4567_89ab_cdefu64;
        let b = 0xfedc_ba98_7654_3211u64;
        let c = 0x8000_0000_0000_0001u64;
        assert_eq!(gf64_mul(a, 1), a);
        assert_eq!(gf64_mul(a, b), gf64_mul(b, a));
        assert_eq!(gf64_mul(a, b ^ c), gf64_mul(a, b) ^ gf64_mul(a, c));
        assert_eq!(gf64_mul(gf64_mul(a, b), c), gf64_mul(a, gf64_mul(b, c)));
        // x^63 · x = x^64 = x^4 + x^3 + x + 1 (0x1b); x^63 · x^2 = x^5 + x^4 + x^2 + x (0x36).
        assert_eq!(gf64_mul(1 << 63, 2), 0x1b);
        assert_eq!(gf64_mul(1 << 63, 4), 0x36);
        assert_eq!(gf64_mul(3, 3), 5);
    }

    #[test]
    fn incremental_tweaks_equal_full_multiplications() {
        for k2 in [
            hex("45 62 ac 25 f8 28 17 6d 4c 26 84 14 b5 68 01 85"),
            hex("80 00 00 00 00 00 00 01 ff ff ff ff ff ff ff ff"),
            hex("0f 6a ef f8 d3 d2 bb 15"),
        ] {
            let key = LrwKey::new(&k2);
            let mask = key.mask();
            for first in [0u128, 1, 31, 0xffff_ffff, (7u128 << 64) - 3, mask - 2] {
                let mut t = Tweaks::new(&key, first);
                for i in 0..70u128 {
                    let idx = first.wrapping_add(i) & mask;
                    let want = key.tweak(idx).to_be_bytes();
                    let got: [u8; 16] = if key.bits == 128 {
                        t.next::<16>()
                    } else {
                        let mut b = [0u8; 16];
                        b[8..].copy_from_slice(&t.next::<8>());
                        b
                    };
                    assert_eq!(got, want, "index {idx:#x}");
                }
            }
        }
    }

    struct Vector {
        key: &'static str,
        iv: &'static str,
        plain: &'static str,
        cipher: &'static str,
    }

    /// IEEE P1619 draft LRW-32-AES vectors 1–7 as carried by Linux crypto/testmgr.h
    /// ("lrw(aes)"): key = AES key ‖ 16-byte tweak key, iv = big-endian index of the first block.
    const P1619: [Vector; 7] = [
        Vector {
            key: "4562ac25f828176d4c268414b5680185 258e2a05e73e9d03ee5a830ccc094c87",
            iv: "00000000000000000000000000000001",
            plain: "30313233343536373839414243444546",
            cipher: "f1b273cd65a3df5fe95d489254634eb8",
        },
        Vector {
            key: "59704714f557478cd779e80f54887944 0d48f0b7b15a53ea1caa6b29c2cafbaf",
            iv: "00000000000000000000000000000002",
            plain: "30313233343536373839414243444546",
            cipher: "00c82bae95bbcde5274f0769b260e136",
        },
        Vector {
            key: "d82a9134b26a565030fe69e2377f9847 cdf90b160c648fb6b00d0d1bae85871f",
            iv: "00000000000000000000000200000000",
            plain: "30313233343536373839414243444546",
            cipher: "76322183ed8ff182f9596203690e5e01",
        },
        Vector {
            key: "0f6aeff8d3d2bb152583f73c1f012874cac6bc354d4a6554 90ae61cf7baebdccade494c54a29ae70",
            iv: "00000000000000000000000000000001",
            plain: "30313233343536373839414243444546",
            cipher: "9c0f152f55a2d8f0d67b8f9e2822bc41",
        },
        Vector {
            key: "8ad4ee102fbd81fff886ceac93c5adc6a01907c09df7bbdd 5213b2b7f0ff11d8d608d0cd2eb1176f",
            iv: "00000000000000000000000200000000",
            plain: "30313233343536373839414243444546",
            cipher: "d4276a7f14913d65c860480287e33406",
        },
        Vector {
            key: "f8d476ffd646ee6c2384cb1c77d6195dfef1a9f37bbc8d21a79c21f8cb900289 \
                  a845348ec8c5b5f126f50e76fefd1b1e",
            iv: "00000000000000000000000000000001",
            plain: "30313233343536373839414243444546",
            cipher: "bd06b8e1db98899ec498e491cf1c702b",
        },
        Vector {
            key: "fb7615b23d80891dd470980bc79584c8b2fb64ce6097878d17fce45a49e830b7 \
                  6e7817e72d5e12d46064047af12f9e0c",
            iv: "00000000000000000000000200000000",
            plain: "30313233343536373839414243444546",
            cipher: "5b908ec1abdd675f3d698a9553c89ce5",
        },
    ];

    /// Runs one vector through [`lrw`] with the AES size its key implies; checks both ways.
    fn check(v: &Vector) {
        let key = hex(v.key);
        let (aes_key, k2) = key.split_at(key.len() - 16);
        let cipher: Box<dyn Blocks<16>> = match aes_key.len() {
            16 => Box::new(Crate(aes::Aes128::new_from_slice(aes_key).expect("key"))),
            24 => Box::new(Crate(aes::Aes192::new_from_slice(aes_key).expect("key"))),
            32 => Box::new(Crate(aes::Aes256::new_from_slice(aes_key).expect("key"))),
            n => panic!("AES key of {n} bytes"),
        };
        let ciphers = [cipher];
        let lrw_key = LrwKey::new(k2);
        let first = u128::from_be_bytes(hex(v.iv).try_into().expect("16-byte iv"));
        let plain = hex(v.plain);
        let mut buf = plain.clone();
        lrw(&ciphers, &lrw_key, &mut buf, first, true);
        assert_eq!(
            hex::encode(&buf),
            hex::encode(hex(v.cipher)),
            "key {}",
            v.key
        );
        lrw(&ciphers, &lrw_key, &mut buf, first, false);
        assert_eq!(buf, plain);
    }

    #[test]
    fn p1619_lrw_aes_single_block_vectors() {
        for v in &P1619 {
            check(v);
        }
    }

    #[test]
    fn p1619_lrw_aes_512_byte_vector() {
        // testmgr.h's eighth "lrw(aes)" vector (from the P1619 mailing list, msg00173): one
        // 512-byte sector, 32 blocks with consecutive indices from 1.
        check(&Vector {
            key: "f8d476ffd646ee6c2384cb1c77d6195dfef1a9f37bbc8d21a79c21f8cb900289 \
                  a845348ec8c5b5f126f50e76fefd1b1e",
            iv: "00000000000000000000000000000001",
            plain: "0511b718abc62dac705df62294cde56c176bf61cf0f36ef850381f7149b657d6
                    8fcb8d6be3a62990fe2a6282ae6d8bf6ad1e9e205f38be04da108eeda2a487ab
                    da6bb40c75bad37cc9ac4231957cc904ebd56e32698adba615d73f4f2f666903
                    9c1f540fde1ff3654c9612ed7c9203016fbc3593acf127f1b496825a5fb0a050
                    89a48e664485ccfd331470e396b2c3d3bb545a1af974a2c52d6475ddb454e674
                    8cd39d9e86ab5153b7933e6fd04e2c40f6a82e3e9df466a5761273441a56d772
                    88cd218c4c0ffeda95e03aa6a58446cdd53e9d3ae267e6601ae2708558c21b09
                    e1d72ccaada88ff9acb30edbca2ee2b85171d93c6cf156f8ea9cf1fb0ce6b710
                    1cf8a97ce85335c1903e764a74a4212cf62c4e0f943a882e41096a337df6dd3f
                    8d23317484eb886eccb9bc2283190722a52ddfa5f380857884396a6d6a994fa5
                    15fe46b0e46ca5413cce8f426071a7750840658a82bff5437196a94d448a20be
                    fa4dbbc07d319665e775e53efd923bc955bb167ef7c28ca4401de5ef0edfe49a
                    627365fd4663253d2bafe564fea55ccf24f3b4ac64badf4bc6967d812d8d97f7
                    c5687784322bcc857496f0127761b9eb71aa82cb1cdb89c8c6b5e35c7d390724
                    da398745c02bbb01acbc2a5c7ffce8ce6d9c6fedd3c1a1d6c555a9662fe1c832
                    a65da43a9873e845a4c7a8b4f61303f6e92ec4290f84dbc421c4c2756789370a",
            cipher: "1a1da930adf92f9bb61daeeff02ff85a393cbf2ab245b2231b633ccfaabecf4e
                     fae829c220682b3c2e8bf76e25bde33d6627d6afd6643ee3e85846973951 07de
                     cb37bca9c05f75c30e84231d16d41c599c1a0255ab3a971ddfddc70651d770ae
                     23c68cf51ea0e582b8b2bf04a0328e68ebaf6e2d94222fce4cb559e2a22fa098
                     1a97c6d4b50059f2841472b19a6ea37fea20e7cb65773adfc8976715c22a27cc
                     1855a1240b2424af5bec68b8c8f5ba63ffed89ced53d88f325ef057c3aefebd8
                     7a320dd11e5859999025b526b0e32b6c4ca98b844f5e0150413058c56274521d
                     45246a42644f971ca866b56d79d40d48c55ff39032dddde1e4a99ffcc3525a46
                     e481849536597a6baab360adce9f9f28e0017522c44ea9625c620d00cb13e843
                     72d42d5346b5d1162218df3433f5d61cb879789794ff72134c27fccbbf0153a6
                     b4506ededfb543a459df52f97ce0116f2d148e24612ce117ccce510c198a8230
                     94d53d6a53065ebdb7ebfafd2751de851e865311539400ee2b8c082abfddae11
                     cb1ea2079a80cf629b09dc953c968eb109bde4ebdbca707a9efa3118453c2133
                     b0b32beaf3712de103ad1b48d46727f062e43dfb9b0876e7dd2b0139045a587a
                     f71190ecbd515c326bd73539026bf2a6d00d07e106c45b7de46ad7ee151f83b4
                     a3a75ec390b7efd3b74ff8924cb73c29cd7e2b5d43ea42e7743f7d588875de3e",
        });
    }
}
