//! Legacy TrueCrypt volumes (1.0–5.1a: CBC, LRW, and TrueCrypt 5's XTS with the legacy layout),
//! issue 8. The volumes are built here from first principles by `tests/common/legacy.rs` (its
//! own PBKDF2, LRW, CBC-with-whitening and XTS over RustCrypto block ciphers, no tcvault code),
//! then the binary must open them (`info`, `decrypt`), rewrite their headers
//! (`change-password`, `backup-header --compact`, `restore-header`) so that the same
//! independent code opens the result, refuse bad input cleanly, and mount one with ext4.
//!
//! Every tcvault call names `--truecrypt` (VeraCrypt's 500,000-iteration trials would
//! make the matrix slow); most also name the PRF; `autodetect_*` runs without them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Output};

use crate::common::legacy::{
    self, Built, HiddenSpec, LegacySpec, Mode, Prf, area_of, build, decrypt_area, header_slots,
    open_header, pattern,
};
use crate::common::{in_ci, run, run_json, run_ok, tcvault, temp_dir};
use serde_json::Value;
use tempfile::TempDir;

const KIB: u64 = 1024;

/// Writes a password file (one trailing newline, as `echo` writes it).
fn pwfile(dir: &TempDir, name: &str, pw: &[u8]) -> PathBuf {
    let p = dir.path().join(name);
    let mut c = pw.to_vec();
    c.push(b'\n');
    fs::write(&p, c).expect("write password file");
    p
}

/// `tcvault info --json --truecrypt EXTRA --password-file PW VOL`.
fn info(vol: &Path, pw: &Path, extra: &[&str]) -> Value {
    run_json(
        tcvault()
            .args(["info", "--json", "--truecrypt"])
            .args(extra)
            .arg("--password-file")
            .arg(pw)
            .arg(vol),
    )
}

/// `tcvault decrypt --truecrypt EXTRA --password-file PW VOL -o OUT`, the output's bytes.
fn decrypt(vol: &Path, pw: &Path, extra: &[&str]) -> Vec<u8> {
    let out = vol.with_extension(format!("out{}", std::process::id()));
    let _ = fs::remove_file(&out);
    run_ok(
        tcvault()
            .args(["decrypt", "--truecrypt"])
            .args(extra)
            .arg("--password-file")
            .arg(pw)
            .arg(vol)
            .arg("-o")
            .arg(&out),
    );
    let data = fs::read(&out).expect("decrypt wrote its output");
    fs::remove_file(&out).expect("remove output");
    data
}

/// The `info --json` fields of a legacy volume, checked against what was built.
fn check_info(v: &Value, b: &Built, prf: Prf, hidden: bool, what: &str) {
    let part = if hidden {
        b.hidden.as_ref().expect("built with a hidden volume")
    } else {
        &b.normal
    };
    let len = if hidden {
        part.data.len() as u64
    } else {
        b.host_size - 512
    };
    assert_eq!(v["family"], "truecrypt", "{what}: {v}");
    assert_eq!(v["mode"], b.mode.json(), "{what}: {v}");
    assert_eq!(v["cipher"], b.chain.as_str(), "{what}: {v}");
    assert_eq!(v["prf"], prf.name(), "{what}: {v}");
    assert_eq!(v["layout"], "legacy", "{what}: {v}");
    assert_eq!(
        v["type"],
        if hidden { "hidden" } else { "normal" },
        "{what}: {v}"
    );
    assert_eq!(v["header_version"], part.fields.version, "{what}: {v}");
    assert_eq!(v["data_area_start"], part.start, "{what}: {v}");
    assert_eq!(v["data_area_length"], len, "{what}: {v}");
    assert_eq!(
        v["min_program_version"],
        format!("{:#06x}", part.fields.min_program),
        "{what}: {v}"
    );
    if hidden {
        assert_eq!(v["hidden_volume_size"], len, "{what}: {v}");
    }
}

/// Exit code, no panic, one `tcvault: error:` line naming `needle` (case-insensitive; any of
/// the `|`-separated words).
fn assert_fails(out: &Output, codes: &[i32], needle: &str, what: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some_and(|c| codes.contains(&c)),
        "{what}: exit {:?}, expected one of {codes:?}; stderr:\n{stderr}",
        out.status.code()
    );
    assert!(!stderr.contains("panicked"), "{what}: panic:\n{stderr}");
    assert!(
        stderr.lines().any(|l| l.starts_with("tcvault: error: ")),
        "{what}: no error line:\n{stderr}"
    );
    let low = stderr.to_lowercase();
    assert!(
        needle.split('|').any(|n| low.contains(&n.to_lowercase())),
        "{what}: the message should mention {needle}:\n{stderr}"
    );
}

/// A built volume in its own temporary directory, with its password files.
struct Vol {
    dir: TempDir,
    path: PathBuf,
    built: Built,
    pw: PathBuf,
    hpw: Option<PathBuf>,
}

const PASSWORD: &[u8] = b"legacy password";
const HIDDEN_PASSWORD: &[u8] = b"hidden legacy password";

fn make(spec: &LegacySpec) -> Vol {
    let dir = temp_dir();
    let path = dir.path().join("legacy.tc");
    let built = build(spec, &path);
    let pw = pwfile(&dir, "pw", spec.password);
    let hpw = spec
        .hidden
        .as_ref()
        .map(|h| pwfile(&dir, "hpw", h.password));
    Vol {
        dir,
        path,
        built,
        pw,
        hpw,
    }
}

/// A volume with a hidden volume of `hidden` bytes.
fn make_hidden(mode: Mode, chain: &str, prf: Prf, hprf: Prf, host: u64, hidden: u64) -> Vol {
    let mut spec = LegacySpec::new(mode, chain, prf, PASSWORD, host);
    spec.hidden = Some(HiddenSpec {
        password: HIDDEN_PASSWORD,
        prf: hprf,
        size: hidden,
        data: None,
    });
    make(&spec)
}

/// info + decrypt of the normal volume, checked.
fn check_normal(v: &Vol, prf: Prf, extra: &[&str], what: &str) {
    let mut args = vec!["--prf", prf.name()];
    args.extend_from_slice(extra);
    check_info(&info(&v.path, &v.pw, &args), &v.built, prf, false, what);
    v.built.check_normal(&decrypt(&v.path, &v.pw, &args), what);
}

// ---------------------------------------------------------------------------------------------
// The builder itself, against published vectors and its own round trips.

mod builder {
    use crate::common::legacy::*;
    use cipher::KeyInit;
    use std::fs;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s.replace(' ', "")).expect("hex")
    }

    /// IEEE P1619 draft LRW-32-AES vectors (as in Linux crypto/testmgr.h "lrw(aes)"):
    /// AES key, tweak key K2, index (16-byte big-endian), plaintext, ciphertext.
    const LRW_AES: [(&str, &str, u128, &str); 5] = [
        (
            "4562ac25f828176d4c268414b5680185",
            "258e2a05e73e9d03ee5a830ccc094c87",
            1,
            "f1b273cd65a3df5fe95d489254634eb8",
        ),
        (
            "59704714f557478cd779e80f54887944",
            "0d48f0b7b15a53ea1caa6b29c2cafbaf",
            2,
            "00c82bae95bbcde5274f0769b260e136",
        ),
        (
            "d82a9134b26a565030fe69e2377f9847",
            "cdf90b160c648fb6b00d0d1bae85871f",
            2 << 32,
            "76322183ed8ff182f9596203690e5e01",
        ),
        (
            "f8d476ffd646ee6c2384cb1c77d6195dfef1a9f37bbc8d21a79c21f8cb900289",
            "a845348ec8c5b5f126f50e76fefd1b1e",
            1,
            "bd06b8e1db98899ec498e491cf1c702b",
        ),
        (
            "fb7615b23d80891dd470980bc79584c8b2fb64ce6097878d17fce45a49e830b7",
            "6e7817e72d5e12d46064047af12f9e0c",
            2 << 32,
            "5b908ec1abdd675f3d698a9553c89ce5",
        ),
    ];

    #[test]
    fn lrw_aes_p1619_vectors() {
        let p = h("30313233343536373839414243444546");
        for (key, k2, index, c) in LRW_AES {
            let key = h(key);
            let k2 = h(k2);
            let t = gf128_mul(
                u128::from_be_bytes(k2.clone().try_into().expect("16")),
                index,
            )
            .to_be_bytes();
            let mut b = p.clone();
            xor(&mut b, &t);
            match key.len() {
                16 => enc_with(&aes::Aes128::new_from_slice(&key).expect("key"), &mut b),
                24 => enc_with(&aes::Aes192::new_from_slice(&key).expect("key"), &mut b),
                _ => enc_with(&aes::Aes256::new_from_slice(&key).expect("key"), &mut b),
            }
            xor(&mut b, &t);
            assert_eq!(hex::encode(&b), c, "LRW-AES vector index {index:#x}");
            // The same through lrw_pass (AES-256 ones only: Keyed is AES-256).
            if key.len() == 32 {
                let k = Algo::Aes.keyed(&key);
                let mut b = p.clone();
                lrw_pass(&k, 16, &k2, index as u64, &mut b, true);
                assert_eq!(hex::encode(&b), c);
                lrw_pass(&k, 16, &k2, index as u64, &mut b, false);
                assert_eq!(b, p);
            }
        }
    }

    #[test]
    fn gf_multiplication_laws() {
        let mut x = 0x0123_4567_89ab_cdef_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..50 {
            let (a, b, c) = (next(), next(), next());
            assert_eq!(gf64_mul(a, b), gf64_mul(b, a));
            assert_eq!(gf64_mul(a, b ^ c), gf64_mul(a, b) ^ gf64_mul(a, c));
            assert_eq!(gf64_mul(a, 1), a);
            assert_eq!(
                gf64_mul(gf64_mul(a, b), c),
                gf64_mul(a, gf64_mul(b, c)),
                "associative"
            );
            let (a, b, c) = (
                (next() as u128) << 64 | next() as u128,
                (next() as u128) << 64 | next() as u128,
                (next() as u128) << 64 | next() as u128,
            );
            assert_eq!(gf128_mul(a, b), gf128_mul(b, a));
            assert_eq!(gf128_mul(a, b ^ c), gf128_mul(a, b) ^ gf128_mul(a, c));
            assert_eq!(gf128_mul(gf128_mul(a, b), c), gf128_mul(a, gf128_mul(b, c)));
        }
        // x^64 = x^4 + x^3 + x + 1 and x^128 = x^7 + x^2 + x + 1.
        assert_eq!(gf64_mul(1 << 63, 2), 0x1B);
        assert_eq!(gf128_mul(1 << 127, 2), 0x87);
    }

    /// NIST SP 800-38A F.2.5/F.2.6 (CBC-AES256) through the CBC core with W = 0.
    #[test]
    fn cbc_core_nist_aes256() {
        let key = h("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4");
        let iv = h("000102030405060708090a0b0c0d0e0f");
        let p = h(
            "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51\
                   30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710",
        );
        let c = "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d\
                 39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b";
        let k = Algo::Aes.keyed(&key);
        let mut b = p.clone();
        cbc_encrypt(&|x: &mut [u8]| k.encrypt(x), 16, &iv, &[0; 8], &mut b);
        assert_eq!(hex::encode(&b), c.replace(' ', ""));
        cbc_decrypt(&|x: &mut [u8]| k.decrypt(x), 16, &iv, &[0; 8], &mut b);
        assert_eq!(b, p);
    }

    /// Whitening is applied after chaining: with W ≠ 0 the stored blocks are the W = 0 ones
    /// XOR W, so chaining uses the unwhitened C_i.
    #[test]
    fn cbc_whitening_is_outside_the_chain() {
        let k = Algo::Serpent.keyed(&[7u8; 32]);
        let iv = [3u8; 16];
        let w = [0xA5, 1, 2, 3, 4, 5, 6, 0x5A];
        let p = pattern(9, 512);
        let mut plain_cbc = p.clone();
        cbc_encrypt(
            &|x: &mut [u8]| k.encrypt(x),
            16,
            &iv,
            &[0; 8],
            &mut plain_cbc,
        );
        let mut white = p.clone();
        cbc_encrypt(&|x: &mut [u8]| k.encrypt(x), 16, &iv, &w, &mut white);
        for (i, (a, b)) in plain_cbc.iter().zip(&white).enumerate() {
            assert_eq!(a ^ w[i % 8], *b);
        }
    }

    /// TrueCrypt's Blowfish is standard Blowfish on byte-swapped 32-bit halves.
    #[test]
    fn blowfish_le_is_byte_swapped_standard_blowfish() {
        let key: Vec<u8> = (0..56u8).map(|i| i.wrapping_mul(37) ^ 0x5c).collect();
        let le = blowfish::BlowfishLE::new_from_slice(&key).expect("key");
        let be: blowfish::Blowfish = blowfish::Blowfish::new_from_slice(&key).expect("key");
        for seed in 0..8u64 {
            let p = pattern(seed, 8);
            let mut a = p.clone();
            enc_with(&le, &mut a);
            let mut b = p.clone();
            b[..4].reverse();
            b[4..].reverse();
            enc_with(&be, &mut b);
            b[..4].reverse();
            b[4..].reverse();
            assert_eq!(a, b);
        }
        // And the standard one is the standard one: Schneier's vector (all-zero 8-byte key).
        let z: blowfish::Blowfish = blowfish::Blowfish::new_from_slice(&[0u8; 8]).expect("key");
        let mut b = [0u8; 8];
        enc_with(&z, &mut b);
        assert_eq!(hex::encode(b), "4ef997456198dd78");
    }

    /// The CRC XOR shortcut the facts mention: crc(a) ⊕ crc(b) equals the raw (no init, no
    /// final xor) CRCs XORed, for 4-byte inputs.
    #[test]
    fn sector_iv_and_whitening_shape() {
        let seed: Vec<u8> = (0..32u8).collect();
        let (iv16, w16) = cbc_sector_iv(&seed, 5, 16);
        let (iv8, w8) = cbc_sector_iv(&seed, 5, 8);
        assert_eq!(iv16.len(), 16);
        assert_eq!(iv8.len(), 8);
        assert_eq!(iv16[..8], iv8[..]);
        assert_eq!(iv16[0], 5, "LE64(5) XORed into word 0");
        assert_eq!(iv16[8], 8 ^ 5, "and into word 1");
        assert_ne!(w16, w8);
        assert_eq!(w16.len(), 8);
    }

    /// The keyfile pool's running CRC is the standard CRC-32 without its final xor.
    #[test]
    fn keyfile_pool_crc() {
        for b in [0u8, 1, 0x5a, 0xff] {
            let pool = keyfile_pool(b"", &[&[b]]);
            assert_eq!(pool[..4], (!crc32fast::hash(&[b])).to_be_bytes());
            assert!(pool[4..].iter().all(|&x| x == 0));
        }
        // Two keyfiles add up; the order does not matter.
        let (a, b) = (pattern(1, 300), pattern(2, 77));
        assert_eq!(
            keyfile_pool(b"pw", &[&a, &b]),
            keyfile_pool(b"pw", &[&b, &a])
        );
        assert_ne!(keyfile_pool(b"pw", &[&a]), keyfile_pool(b"pw", &[&b]));
    }

    #[test]
    fn headers_round_trip_every_mode_and_chain() {
        for (i, (mode, chain)) in modes_and_chains().into_iter().enumerate() {
            let prf = Prf::ALL[i % 4];
            let f = Fields {
                version: 2,
                min_program: 0x0410,
                hidden_size: 12345,
                volume_size: 0,
                area_start: 0,
                area_len: 0,
                key_area: random_key_area(),
            };
            let sealed = seal_header(mode, chain, prf, b"pw", &f, None);
            let o = open_header(&sealed, b"pw").expect("opens");
            assert_eq!((o.mode, o.chain, o.prf), (mode, chain, prf));
            assert_eq!(o.fields, f);
            assert!(open_header(&sealed, b"pW").is_none());
        }
    }

    #[test]
    fn data_round_trip_and_sector_dependence() {
        let dir = tempfile::tempdir().expect("tmp");
        for (i, (mode, chain)) in modes_and_chains().into_iter().enumerate() {
            let path = dir.path().join(format!("v{i}"));
            let mut spec = LegacySpec::new(mode, chain, Prf::ALL[i % 4], b"secret", 64 * 1024);
            spec.hidden = Some(HiddenSpec {
                password: b"hidden",
                prf: Prf::ALL[(i + 1) % 4],
                size: 8192,
                data: None,
            });
            let b = build(&spec, &path);
            let file = fs::read(&path).expect("read");
            let (nh, hh) = header_slots(&file);
            let o = open_header(nh, b"secret").expect("normal opens");
            let (s, l) = area_of(&o, b.host_size, false);
            b.check_normal(&decrypt_area(&o, &file, s, l), chain);
            let oh = open_header(hh, b"hidden").expect("hidden opens");
            let (s, l) = area_of(&oh, b.host_size, true);
            let hidden = b.hidden.as_ref().expect("hidden");
            assert_eq!(s, hidden.start);
            assert!(
                decrypt_area(&oh, &file, s, l) == hidden.data,
                "{mode:?} {chain}"
            );
            // Equal plaintext sectors encrypt differently (sector-dependent tweak/IV).
            let mut two = vec![0u8; 1024];
            data_crypt(mode, chain, &o.fields.key_area, 512, 1, &mut two, true);
            assert_ne!(two[..512], two[512..], "{mode:?} {chain}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The matrix: every mode × chain, PRFs rotated, header versions 1 (CBC) and 2.

fn matrix(mode: Mode, chains: &[&str], version_of: impl Fn(usize) -> u16, prf_shift: usize) {
    for (i, chain) in chains.iter().enumerate() {
        let prf = Prf::ALL[(i + prf_shift) % 4];
        let mut spec = LegacySpec::new(mode, chain, prf, PASSWORD, 256 * KIB);
        spec.header_version = version_of(i);
        let v = make(&spec);
        let what = format!(
            "{} {chain} {} v{}",
            mode.json(),
            prf.name(),
            spec.header_version
        );
        check_normal(&v, prf, &[], &what);
    }
}

#[test]
fn lrw_every_chain_opens_and_decrypts() {
    matrix(Mode::Lrw, &legacy::CHAINS, |_| 2, 0);
}

#[test]
fn cbc_every_chain_opens_and_decrypts() {
    matrix(Mode::Cbc, &legacy::CHAINS, |i| 1 + (i % 2) as u16, 1);
}

#[test]
fn truecrypt5_xts_every_chain_opens_and_decrypts() {
    matrix(Mode::Xts5, &legacy::CHAINS[..8], |_| 3, 2);
}

// ---------------------------------------------------------------------------------------------
// Hidden volumes.

/// The outer volume opens with its password (type normal, the data outside the hidden part
/// intact); the hidden one with `--hidden` and without (tried after the normal header).
fn check_hidden(v: &Vol, prf: Prf, hprf: Prf, what: &str) {
    let hpw = v.hpw.as_ref().expect("hidden password");
    let b = &v.built;
    check_info(&info(&v.path, &v.pw, &[]), b, prf, false, what);
    b.check_normal(&decrypt(&v.path, &v.pw, &[]), what);
    check_info(&info(&v.path, hpw, &["--hidden"]), b, hprf, true, what);
    check_info(&info(&v.path, hpw, &[]), b, hprf, true, what);
    let hidden = decrypt(&v.path, hpw, &["--hidden"]);
    assert!(
        hidden == b.hidden.as_ref().expect("hidden").data,
        "{what}: hidden data differ"
    );
    let out = run(tcvault()
        .args(["info", "--truecrypt", "--hidden", "--password-file"])
        .arg(&v.pw)
        .arg(&v.path));
    assert_fails(
        &out,
        &[3],
        "password",
        &format!("{what}: outer password as hidden"),
    );
}

#[test]
fn lrw_hidden_volume() {
    let v = make_hidden(
        Mode::Lrw,
        "AES",
        Prf::Ripemd160,
        Prf::Sha1,
        512 * KIB,
        128 * KIB,
    );
    check_hidden(&v, Prf::Ripemd160, Prf::Sha1, "LRW AES hidden");
    // A 64-bit-block chain too (GF(2^64) tweaks relative to the hidden area).
    let v = make_hidden(
        Mode::Lrw,
        "CAST5",
        Prf::Whirlpool,
        Prf::Ripemd160,
        384 * KIB,
        64 * KIB,
    );
    check_hidden(&v, Prf::Whirlpool, Prf::Ripemd160, "LRW CAST5 hidden");
}

#[test]
fn cbc_hidden_volume() {
    // Inner CBC (mixed block sizes) and a single 64-bit cipher.
    let v = make_hidden(
        Mode::Cbc,
        "AES-Blowfish",
        Prf::Sha1,
        Prf::Whirlpool,
        512 * KIB,
        128 * KIB,
    );
    check_hidden(&v, Prf::Sha1, Prf::Whirlpool, "CBC AES-Blowfish hidden");
    let v = make_hidden(
        Mode::Cbc,
        "Serpent-AES",
        Prf::Ripemd160,
        Prf::Sha1,
        384 * KIB,
        64 * KIB,
    );
    check_hidden(&v, Prf::Ripemd160, Prf::Sha1, "CBC Serpent-AES hidden");
}

#[test]
fn truecrypt5_xts_hidden_volume() {
    let v = make_hidden(
        Mode::Xts5,
        "Serpent",
        Prf::Sha512,
        Prf::Whirlpool,
        512 * KIB,
        128 * KIB,
    );
    check_hidden(
        &v,
        Prf::Sha512,
        Prf::Whirlpool,
        "XTS Serpent hidden (TrueCrypt 5)",
    );
}

/// The PRF, mode and chain found without `--prf` (and without `--truecrypt` once).
#[test]
fn autodetect_without_prf_and_family() {
    let v = make(&LegacySpec::new(
        Mode::Lrw,
        "Twofish-Serpent",
        Prf::Whirlpool,
        PASSWORD,
        256 * KIB,
    ));
    check_info(
        &info(&v.path, &v.pw, &[]),
        &v.built,
        Prf::Whirlpool,
        false,
        "no --prf",
    );
    let plain = run_json(
        tcvault()
            .args(["info", "--json", "--password-file"])
            .arg(&v.pw)
            .arg(&v.path),
    );
    check_info(
        &plain,
        &v.built,
        Prf::Whirlpool,
        false,
        "no --prf, no --truecrypt",
    );
}

// ---------------------------------------------------------------------------------------------
// Header rewrites, checked with the independent reader.

/// `tcvault change-password`, keeping the old headers in `keep` (a legacy volume has no
/// embedded backup; without `--keep-old-header` they would land in the current directory).
fn change_password(vol: &Path, old: &Path, new: &Path, keep: &Path, extra: &[&str]) -> Output {
    run(tcvault()
        .args(["change-password", "--truecrypt"])
        .args(extra)
        .arg("--keep-old-header")
        .arg(keep)
        .arg("--password-file")
        .arg(old)
        .arg("--new-password-file")
        .arg(new)
        .arg(vol))
}

/// change-password rewrites the normal header in place: same mode and chain, same master keys,
/// opens with the new password only; the rest of the file is untouched; the data still
/// decrypt through tcvault.
#[test]
fn change_password_rewrites_legacy_header() {
    for (mode, chain, prf, version) in [
        (Mode::Lrw, "AES-Twofish", Prf::Sha1, 2),
        (Mode::Cbc, "Triple DES", Prf::Ripemd160, 1),
        (Mode::Cbc, "AES-Blowfish-Serpent", Prf::Whirlpool, 2),
        (Mode::Xts5, "AES", Prf::Sha512, 3),
    ] {
        let what = format!("{} {chain}", mode.json());
        let mut spec = LegacySpec::new(mode, chain, prf, PASSWORD, 256 * KIB);
        spec.header_version = version;
        let v = make(&spec);
        let new = pwfile(&v.dir, "new", b"a new password");
        let before = fs::read(&v.path).expect("read");
        let keep = v.dir.path().join("old.headers");
        let out = change_password(&v.path, &v.pw, &new, &keep, &[]);
        assert!(
            out.status.success(),
            "{what}: change-password failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = fs::read(&v.path).expect("read");
        assert_eq!(after.len(), before.len(), "{what}: size changed");
        assert!(
            after[512..] == before[512..],
            "{what}: bytes after the header changed"
        );
        // The old headers kept: a 1,024-byte legacy backup that the old password opens.
        let kept = fs::read(&keep).expect("--keep-old-header wrote its file");
        assert_eq!(kept.len(), 1024, "{what}: kept headers");
        let k = open_header(&kept[..512], PASSWORD)
            .unwrap_or_else(|| panic!("{what}: kept header does not open"));
        assert!(
            k.fields.key_area == v.built.normal.fields.key_area,
            "{what}: kept keys"
        );
        let o = open_header(&after[..512], b"a new password").unwrap_or_else(|| {
            panic!("{what}: the new header does not open with the new password")
        });
        assert_eq!((o.mode, o.chain), (mode, chain), "{what}");
        assert_eq!(o.prf, prf, "{what}: the PRF is kept by default");
        assert!(
            o.fields.key_area == v.built.normal.fields.key_area,
            "{what}: master keys changed"
        );
        assert_eq!(o.fields.hidden_size, 0, "{what}");
        assert!(
            open_header(&after[..512], PASSWORD).is_none(),
            "{what}: old password still opens"
        );
        let (s, l) = area_of(&o, v.built.host_size, false);
        v.built.check_normal(&decrypt_area(&o, &after, s, l), &what);
        let out = run(tcvault()
            .args(["info", "--truecrypt", "--password-file"])
            .arg(&v.pw)
            .arg(&v.path));
        assert_fails(&out, &[3], "password", &format!("{what}: old password"));
        check_normal(
            &Vol {
                pw: new.clone(),
                ..v
            },
            prf,
            &[],
            &format!("{what} after change-password"),
        );
    }
}

/// The hidden header at host − 1536 is rewritten by `change-password --hidden`; the normal one
/// is untouched.
#[test]
fn change_password_of_hidden_legacy_volume() {
    for (mode, chain) in [(Mode::Lrw, "Serpent"), (Mode::Cbc, "Blowfish")] {
        let what = format!("{} {chain} hidden", mode.json());
        let v = make_hidden(mode, chain, Prf::Sha1, Prf::Ripemd160, 384 * KIB, 64 * KIB);
        let hpw = v.hpw.clone().expect("hidden");
        let new = pwfile(&v.dir, "new", b"new hidden password");
        let before = fs::read(&v.path).expect("read");
        let keep = v.dir.path().join("old.headers");
        let out = change_password(&v.path, &hpw, &new, &keep, &["--hidden"]);
        assert!(
            out.status.success(),
            "{what}: change-password --hidden failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = fs::read(&v.path).expect("read");
        let at = after.len() - 1536;
        assert!(
            after[..at] == before[..at],
            "{what}: bytes before the hidden header changed"
        );
        assert!(
            after[at + 512..] == before[at + 512..],
            "{what}: bytes after it changed"
        );
        let kept = fs::read(&keep).expect("--keep-old-header wrote its file");
        assert_eq!(kept.len(), 1024, "{what}: kept headers");
        assert!(
            open_header(&kept[512..], HIDDEN_PASSWORD).is_some(),
            "{what}: the kept hidden header does not open with the old password"
        );
        let (_, slot) = header_slots(&after);
        let o = open_header(slot, b"new hidden password")
            .unwrap_or_else(|| panic!("{what}: the hidden header does not open"));
        assert_eq!((o.mode, o.chain), (mode, chain), "{what}");
        let hidden = v.built.hidden.as_ref().expect("hidden");
        assert!(
            o.fields.key_area == hidden.fields.key_area,
            "{what}: master keys changed"
        );
        assert_eq!(o.fields.hidden_size, hidden.data.len() as u64, "{what}");
        assert!(
            open_header(slot, HIDDEN_PASSWORD).is_none(),
            "{what}: old password opens"
        );
        let got = decrypt(&v.path, &new, &["--hidden"]);
        assert!(got == hidden.data, "{what}: hidden data differ");
    }
}

/// `--to-veracrypt` cannot turn a legacy header into a VeraCrypt one (VeraCrypt has no LRW or
/// CBC): refused with a message, the file unchanged.
#[test]
fn to_veracrypt_is_refused_for_legacy() {
    for (mode, chain) in [(Mode::Lrw, "AES"), (Mode::Cbc, "CAST5")] {
        let v = make(&LegacySpec::new(
            mode,
            chain,
            Prf::Sha1,
            PASSWORD,
            256 * KIB,
        ));
        let before = fs::read(&v.path).expect("read");
        let keep = v.dir.path().join("old.headers");
        let out = change_password(&v.path, &v.pw, &v.pw, &keep, &["--to-veracrypt"]);
        assert_fails(
            &out,
            &[1, 2, 4],
            "legacy|lrw|cbc|truecrypt 4|not supported|cannot",
            &format!("{} --to-veracrypt", mode.json()),
        );
        assert!(
            fs::read(&v.path).expect("read") == before,
            "the volume changed"
        );
    }
}

fn backup_compact(v: &Vol, file: &Path, with_hidden: bool) -> Output {
    let mut cmd = tcvault();
    cmd.args([
        "backup-header",
        "--compact",
        "--truecrypt",
        "--password-file",
    ])
    .arg(&v.pw);
    if with_hidden {
        cmd.arg("--hidden-password-file")
            .arg(v.hpw.as_ref().expect("hidden password"));
    }
    run(cmd.arg(&v.path).arg(file))
}

fn restore(vol: &Path, pw: &Path, file: &Path, extra: &[&str]) -> Output {
    run(tcvault()
        .args([
            "restore-header",
            "--truecrypt",
            "--force",
            "--no-keep-old-header",
        ])
        .args(extra)
        .arg("--password-file")
        .arg(pw)
        .arg("--file")
        .arg(file)
        .arg(vol))
}

/// `backup-header --compact` writes 1,024 bytes: the normal header (and the hidden one when its
/// password is given), which the independent reader opens with the same master keys.
#[test]
fn compact_backup_of_legacy_volumes() {
    for (mode, chain) in [
        (Mode::Lrw, "Serpent-Twofish-AES"),
        (Mode::Cbc, "AES-Blowfish"),
    ] {
        let what = format!("{} {chain}", mode.json());
        let v = make_hidden(mode, chain, Prf::Ripemd160, Prf::Sha1, 384 * KIB, 64 * KIB);
        let before = fs::read(&v.path).expect("read");
        let file = v.dir.path().join("backup.1k");
        let out = backup_compact(&v, &file, true);
        assert!(
            out.status.success(),
            "{what}: backup-header --compact failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = fs::read(&file).expect("backup written");
        assert_eq!(bytes.len(), 1024, "{what}: a legacy backup is 1,024 bytes");
        assert!(
            fs::read(&v.path).expect("read") == before,
            "{what}: volume changed"
        );
        let o =
            open_header(&bytes[..512], PASSWORD).unwrap_or_else(|| panic!("{what}: normal half"));
        assert_eq!((o.mode, o.chain), (mode, chain), "{what}");
        assert!(
            o.fields.key_area == v.built.normal.fields.key_area,
            "{what}: normal keys"
        );
        let h = open_header(&bytes[512..], HIDDEN_PASSWORD)
            .unwrap_or_else(|| panic!("{what}: hidden half"));
        let hidden = v.built.hidden.as_ref().expect("hidden");
        assert!(
            h.fields.key_area == hidden.fields.key_area,
            "{what}: hidden keys"
        );
        assert_eq!(h.fields.hidden_size, hidden.data.len() as u64, "{what}");

        // Without the hidden password the second half is not the hidden header.
        let file2 = v.dir.path().join("backup2.1k");
        let out = backup_compact(&v, &file2, false);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = fs::read(&file2).expect("backup written");
        assert_eq!(bytes.len(), 1024);
        assert!(
            open_header(&bytes[..512], PASSWORD).is_some(),
            "{what}: normal half"
        );
        assert!(
            open_header(&bytes[512..], PASSWORD).is_none(),
            "{what}: second half"
        );
    }
}

/// The first 512 bytes overwritten with random bytes: the volume no longer opens; restoring
/// from tcvault's own compact backup brings it back with the data unchanged.
#[test]
fn restore_from_compact_backup_after_damage() {
    for (mode, chain, prf) in [
        (Mode::Lrw, "Blowfish", Prf::Whirlpool),
        (Mode::Cbc, "Twofish", Prf::Sha1),
        (Mode::Xts5, "Twofish-Serpent", Prf::Ripemd160),
    ] {
        let what = format!("{} {chain}", mode.json());
        let v = make(&LegacySpec::new(mode, chain, prf, PASSWORD, 256 * KIB));
        let file = v.dir.path().join("backup.1k");
        let out = backup_compact(&v, &file, false);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut all = fs::read(&v.path).expect("read");
        let mut noise = [0u8; 512];
        getrandom::fill(&mut noise).expect("random");
        all[..512].copy_from_slice(&noise);
        fs::write(&v.path, &all).expect("damage");
        let out = run(tcvault()
            .args(["info", "--truecrypt", "--password-file"])
            .arg(&v.pw)
            .arg(&v.path));
        assert_fails(&out, &[3], "password", &format!("{what}: damaged"));
        let out = restore(&v.path, &v.pw, &file, &[]);
        assert!(
            out.status.success(),
            "{what}: restore-header: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = fs::read(&v.path).expect("read");
        assert!(
            after[512..] == all[512..],
            "{what}: restore touched more than the header"
        );
        let o = open_header(&after[..512], PASSWORD).unwrap_or_else(|| panic!("{what}: restored"));
        assert!(
            o.fields.key_area == v.built.normal.fields.key_area,
            "{what}"
        );
        check_normal(&v, prf, &[], &format!("{what} restored"));
    }
}

/// Restoring from a 1,024-byte backup made by the independent builder, under a password the
/// volume never had: the normal header, then (with `--hidden`) the hidden one.
#[test]
fn restore_from_builder_made_backup() {
    for (mode, chain) in [(Mode::Lrw, "AES-Blowfish-Serpent"), (Mode::Cbc, "Serpent")] {
        let what = format!("{} {chain}", mode.json());
        let v = make_hidden(mode, chain, Prf::Sha1, Prf::Sha1, 384 * KIB, 64 * KIB);
        let bytes =
            legacy::backup_1k_with(&v.built, Prf::Ripemd160, b"help desk", b"help desk hidden");
        let file = v.dir.path().join("desk.1k");
        fs::write(&file, &bytes).expect("write backup");
        let desk = pwfile(&v.dir, "desk", b"help desk");
        let desk_h = pwfile(&v.dir, "deskh", b"help desk hidden");
        let before = fs::read(&v.path).expect("read");

        let out = restore(&v.path, &desk, &file, &[]);
        assert!(
            out.status.success(),
            "{what}: restore-header: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after = fs::read(&v.path).expect("read");
        assert!(
            after[512..] == before[512..],
            "{what}: normal restore touched more than 0..512"
        );
        let o = open_header(&after[..512], b"help desk").unwrap_or_else(|| panic!("{what}"));
        assert_eq!(o.prf, Prf::Ripemd160);
        let vol = Vol {
            pw: desk.clone(),
            hpw: Some(desk_h.clone()),
            built: v.built.clone(),
            path: v.path.clone(),
            dir: temp_dir(),
        };
        check_normal(
            &vol,
            Prf::Ripemd160,
            &[],
            &format!("{what} restored normal"),
        );

        let out = restore(&v.path, &desk_h, &file, &["--hidden"]);
        assert!(
            out.status.success(),
            "{what}: restore-header --hidden: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let after2 = fs::read(&v.path).expect("read");
        let at = after2.len() - 1536;
        assert!(
            after2[..at] == after[..at] && after2[at + 512..] == after[at + 512..],
            "{what}: hidden restore touched more than its slot"
        );
        let got = decrypt(&v.path, &desk_h, &["--hidden"]);
        assert!(
            got == v.built.hidden.as_ref().expect("hidden").data,
            "{what}: hidden data"
        );
        // The plain copy of the headers (what TrueCrypt 4 wrote) restores the original ones.
        let copy = v.dir.path().join("copy.1k");
        fs::write(&copy, [&before[..512], &before[at..at + 512]].concat()).expect("write");
        let out = restore(&v.path, &v.pw, &copy, &[]);
        assert!(
            out.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_info(
            &info(&v.path, &v.pw, &[]),
            &v.built,
            Prf::Sha1,
            false,
            &what,
        );
    }
}

/// Keyfiles (TrueCrypt's 64-byte pool) with a password and without one.
#[test]
fn keyfiles_with_legacy_volumes() {
    let cases: [(Mode, &str, Prf, &[u8]); 2] = [
        (
            Mode::Lrw,
            "AES-Twofish-Serpent",
            Prf::Ripemd160,
            b"with keyfiles",
        ),
        (Mode::Cbc, "CAST5", Prf::Sha1, b""),
    ];
    for (mode, chain, prf, pw) in cases {
        let what = format!("{} {chain} keyfiles", mode.json());
        let (k1, k2) = (pattern(5, 3000), pattern(6, 100));
        let pool = legacy::keyfile_pool(pw, &[&k1, &k2]);
        let v = make(&LegacySpec::new(mode, chain, prf, &pool, 256 * KIB));
        let pwf = pwfile(&v.dir, "real-pw", pw);
        let kf1 = v.dir.path().join("k1");
        let kf2 = v.dir.path().join("k2");
        fs::write(&kf1, &k1).expect("keyfile");
        fs::write(&kf2, &k2).expect("keyfile");
        let (a, b) = (kf1.to_str().expect("UTF-8"), kf2.to_str().expect("UTF-8"));
        let args = ["--prf", prf.name(), "-k", a, "-k", b];
        check_info(&info(&v.path, &pwf, &args), &v.built, prf, false, &what);
        v.built.check_normal(&decrypt(&v.path, &pwf, &args), &what);
        let out = run(tcvault()
            .args(["info", "--truecrypt", "-k", a, "--password-file"])
            .arg(&pwf)
            .arg(&v.path));
        assert_fails(
            &out,
            &[3],
            "password",
            &format!("{what}: one keyfile missing"),
        );
    }
}

/// Without `--keep-old-header`, a legacy volume (no embedded backup) keeps its old headers in
/// the current directory as a 1,024-byte backup that the old password opens. When that name
/// is taken, the old file is not replaced and the answer is actionable: either another name,
/// or a refusal that leaves the volume unchanged and names only options the command has.
#[test]
fn change_password_default_keep_file() {
    let v = make(&LegacySpec::new(
        Mode::Lrw,
        "AES",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let new = pwfile(&v.dir, "new", b"kept elsewhere");
    let cwd = temp_dir();
    let change = |vol: &Path| {
        run(tcvault()
            .current_dir(cwd.path())
            .args(["change-password", "--truecrypt", "--password-file"])
            .arg(&v.pw)
            .arg("--new-password-file")
            .arg(&new)
            .arg(vol))
    };
    let kept = |prefix: &str| -> Vec<PathBuf> {
        let mut k: Vec<PathBuf> = fs::read_dir(cwd.path())
            .expect("read cwd")
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .collect();
        k.sort();
        k
    };
    let out = change(&v.path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = kept("legacy.tc.old-headers");
    assert_eq!(
        files.len(),
        1,
        "one kept-headers file in the current directory"
    );
    let bytes = fs::read(&files[0]).expect("read kept file");
    assert_eq!(bytes.len(), 1024);
    let o = open_header(&bytes[..512], PASSWORD).expect("the old password opens the kept file");
    assert!(o.fields.key_area == v.built.normal.fields.key_area);
    fs::remove_file(&files[0]).expect("rm");

    // Every name the next minute could give is taken (another volume called legacy.tc).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for t in now - 2..now + 60 {
        fs::write(
            cwd.path().join(format!("legacy.tc.old-headers-{t}")),
            b"precious",
        )
        .expect("write");
    }
    let w = make(&LegacySpec::new(
        Mode::Cbc,
        "AES",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let before = fs::read(&w.path).expect("read");
    let out = change(&w.path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    for p in kept("legacy.tc.old-headers-") {
        let b = fs::read(&p).expect("read");
        if b.len() == 8 {
            assert_eq!(b, b"precious", "{} replaced", p.display());
        }
    }
    if out.status.success() {
        let fresh: Vec<PathBuf> = kept("legacy.tc.old-headers")
            .into_iter()
            .filter(|p| fs::read(p).is_ok_and(|b| b.len() == 1024))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "the old headers were kept under another name"
        );
    } else {
        assert_eq!(out.status.code(), Some(4), "{stderr}");
        assert!(
            fs::read(&w.path).expect("read") == before,
            "the volume changed"
        );
        let help = run_ok(tcvault().args(["change-password", "--help"]));
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            !stderr.contains("--force") || help.contains("--force"),
            "the hint names --force, which change-password does not have:\n{stderr}"
        );
    }
}

/// `change-password --new-prf` re-derives the legacy header with another TrueCrypt PRF.
#[test]
fn change_password_with_new_prf() {
    let v = make(&LegacySpec::new(
        Mode::Lrw,
        "Twofish",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let new = pwfile(&v.dir, "new", b"whirled");
    let keep = v.dir.path().join("old.headers");
    let out = change_password(&v.path, &v.pw, &new, &keep, &["--new-prf", "whirlpool"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = fs::read(&v.path).expect("read");
    let o = open_header(&after[..512], b"whirled").expect("the new header opens");
    assert_eq!(
        (o.mode, o.chain, o.prf),
        (Mode::Lrw, "Twofish", Prf::Whirlpool)
    );
    assert!(o.fields.key_area == v.built.normal.fields.key_area);
    check_normal(
        &Vol { pw: new, ..v },
        Prf::Whirlpool,
        &[],
        "LRW Twofish after --new-prf whirlpool",
    );
}

// ---------------------------------------------------------------------------------------------
// Bad input.

#[test]
fn damaged_legacy_header_is_wrong_password_or_not_a_volume() {
    for (mode, chain) in [
        (Mode::Lrw, "AES"),
        (Mode::Cbc, "Triple DES"),
        (Mode::Xts5, "Serpent"),
    ] {
        let v = make(&LegacySpec::new(
            mode,
            chain,
            Prf::Sha1,
            PASSWORD,
            256 * KIB,
        ));
        let mut all = fs::read(&v.path).expect("read");
        // One flipped bit in the encrypted key area: the key-area CRC fails.
        all[400] ^= 0x10;
        fs::write(&v.path, &all).expect("damage");
        for cmd in ["info", "decrypt"] {
            let out = run(tcvault()
                .args([cmd, "--truecrypt", "--password-file"])
                .arg(&v.pw)
                .arg(&v.path));
            assert_fails(
                &out,
                &[3],
                "password",
                &format!("{} {chain} {cmd}", mode.json()),
            );
            assert!(out.stdout.is_empty(), "nothing on stdout");
        }
    }
}

#[test]
fn truncated_legacy_volumes_are_refused() {
    // Shorter than any legacy volume.
    let v = make(&LegacySpec::new(
        Mode::Lrw,
        "AES",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let all = fs::read(&v.path).expect("read");
    fs::write(&v.path, &all[..2000]).expect("truncate");
    let out = run(tcvault()
        .args(["info", "--truecrypt", "--password-file"])
        .arg(&v.pw)
        .arg(&v.path));
    assert_fails(&out, &[4], "too small", "2,000-byte legacy volume");
    // A TrueCrypt 5 header (version 3 records the data area) in a file cut short.
    let v = make(&LegacySpec::new(
        Mode::Xts5,
        "AES",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let all = fs::read(&v.path).expect("read");
    // (200 KiB: 128 KiB would be taken for a header backup file.)
    fs::write(&v.path, &all[..200 * 1024]).expect("truncate");
    let out_path = v.dir.path().join("out.bin");
    let out = run(tcvault()
        .args(["decrypt", "--truecrypt", "--password-file"])
        .arg(&v.pw)
        .arg(&v.path)
        .arg("-o")
        .arg(&out_path));
    assert_fails(&out, &[5], "truncated", "truncated TrueCrypt 5 volume");
    assert!(!out_path.exists(), "no partial output");
}

#[test]
fn bad_legacy_backup_files_are_refused() {
    let v = make(&LegacySpec::new(
        Mode::Lrw,
        "AES",
        Prf::Sha1,
        PASSWORD,
        256 * KIB,
    ));
    let before = fs::read(&v.path).expect("read");
    // 1,024 random bytes: not a backup of this (or any) volume.
    let mut noise = vec![0u8; 1024];
    getrandom::fill(&mut noise).expect("random");
    let junk = v.dir.path().join("junk.1k");
    fs::write(&junk, &noise).expect("write");
    let out = restore(&v.path, &v.pw, &junk, &[]);
    assert_fails(
        &out,
        &[3, 4],
        "password|backup|header",
        "random 1,024-byte backup",
    );
    assert!(
        fs::read(&v.path).expect("read") == before,
        "the volume changed"
    );
    // Wrong sizes, even with a real header inside.
    for size in [512usize, 1000, 1536, 2048] {
        let mut bytes = before[..512].to_vec();
        bytes.resize(size, 0);
        let odd = v.dir.path().join(format!("odd{size}"));
        fs::write(&odd, &bytes).expect("write");
        let out = restore(&v.path, &v.pw, &odd, &[]);
        assert_fails(
            &out,
            &[4],
            "size|bytes|backup",
            &format!("{size}-byte backup"),
        );
        assert!(
            fs::read(&v.path).expect("read") == before,
            "the volume changed"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Mount.

/// A system tool, also when /usr/sbin is not on PATH.
fn sbin(tool: &str) -> StdCommand {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut c = StdCommand::new(tool);
    c.env("PATH", format!("{path}:/usr/sbin:/sbin"));
    c
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = tcvault().args(["unmount", "--force"]).arg(&self.0).output();
    }
}

/// A plain ext4 image of `len` bytes made by mkfs.ext4 on a file.
fn ext4_image(dir: &TempDir, len: u64) -> Vec<u8> {
    let image = dir.path().join("plain.ext4");
    fs::File::create(&image)
        .and_then(|f| f.set_len(len))
        .expect("image file");
    let st = sbin("mkfs.ext4")
        .args(["-q", "-F", "-L", "legacy"])
        .arg(&image)
        .status()
        .expect("run mkfs.ext4 (e2fsprogs, scripts/setup.d/mount.sh)");
    assert!(st.success(), "mkfs.ext4 failed");
    let bytes = fs::read(&image).expect("read image");
    fs::remove_file(&image).expect("remove image");
    bytes
}

/// A legacy volume (or, with `hidden`, the hidden volume inside one) whose data area is an
/// ext4 image: mounted read-write, a file written, unmounted, remounted read-only, read back;
/// then the independent reader decrypts the data area and finds the ext4 superblock and the
/// file (debugfs), and, for a hidden volume, the outer data untouched.
fn ext4_round_trip(mode: Mode, chain: &str, prf: Prf, hidden: bool) {
    let what = format!(
        "{} {chain}{}",
        mode.json(),
        if hidden { " hidden" } else { "" }
    );
    let dir = temp_dir();
    let fs_len: u64 = 8 << 20;
    let image = ext4_image(&dir, fs_len);
    let (spec_pw, host) = if hidden {
        (HIDDEN_PASSWORD, 2 * fs_len + 4096)
    } else {
        (PASSWORD, fs_len + 512)
    };
    let mut spec = LegacySpec::new(mode, chain, prf, PASSWORD, host);
    if hidden {
        spec.hidden = Some(HiddenSpec {
            password: HIDDEN_PASSWORD,
            prf,
            size: fs_len,
            data: Some(image),
        });
    } else {
        spec.data = Some(image);
    }
    let vol = dir.path().join("ext4.tc");
    let built = build(&spec, &vol);
    let pw = pwfile(&dir, "pw", spec_pw);
    let mut unlock = vec!["--truecrypt", "--prf", prf.name()];
    if hidden {
        unlock.push("--hidden");
    }
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).expect("mount point");
    let _guard = Unmount(mp.clone());
    let mount = |extra: &[&str]| {
        run_ok(
            tcvault()
                .arg("mount")
                .arg(&vol)
                .args(&unlock)
                .args(extra)
                .arg("--password-file")
                .arg(&pw)
                .arg(&mp),
        );
    };

    mount(&[]);
    let text = pattern(77, 100_000);
    fs::write(mp.join("hello.bin"), &text).expect("write through the mount");
    run_ok(tcvault().arg("unmount").arg(&mp));
    assert!(!mp.join("hello.bin").exists(), "{what}: still mounted");
    mount(&["--read-only"]);
    assert!(
        fs::read(mp.join("hello.bin")).expect("read back") == text,
        "{what}: file differs after remount"
    );
    run_ok(tcvault().arg("unmount").arg(&mp));

    // Decrypted by the independent reader: an ext4 image with the file in it.
    let file = fs::read(&vol).expect("read volume");
    let (normal_slot, hidden_slot) = header_slots(&file);
    let o = open_header(if hidden { hidden_slot } else { normal_slot }, spec_pw)
        .unwrap_or_else(|| panic!("{what}: header no longer opens"));
    let part = if hidden {
        built.hidden.as_ref().expect("hidden")
    } else {
        &built.normal
    };
    assert!(o.fields.key_area == part.fields.key_area, "{what}: keys");
    let (start, len) = area_of(&o, built.host_size, hidden);
    assert_eq!((start, len), (part.start, fs_len), "{what}");
    let plain = decrypt_area(&o, &file, start, len);
    assert_eq!(
        &plain[1024 + 56..1024 + 58],
        &[0x53, 0xEF],
        "{what}: ext4 superblock magic"
    );
    let out_image = dir.path().join("after.ext4");
    fs::write(&out_image, &plain).expect("write decrypted image");
    let out = sbin("debugfs")
        .args(["-R", "cat /hello.bin"])
        .arg(&out_image)
        .output()
        .expect("run debugfs");
    assert!(
        out.stdout == text,
        "{what}: debugfs does not find the file written through the mount ({} bytes; {})",
        out.stdout.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    if hidden {
        let o = open_header(normal_slot, PASSWORD).expect("outer header opens");
        let (s, l) = area_of(&o, built.host_size, false);
        built.check_normal(&decrypt_area(&o, &file, s, l), &format!("{what}: outer"));
    }
}

#[test]
fn ext4_on_legacy_volumes_mounts_read_write() {
    if !crate::common::can_mount() {
        return;
    }
    ext4_round_trip(Mode::Lrw, "AES", Prf::Sha1, false);
    // Inner CBC (mixed block sizes): every write re-encrypts whole sectors with both passes.
    ext4_round_trip(Mode::Cbc, "AES-Blowfish", Prf::Ripemd160, false);
    // A hidden CBC volume: sector numbers from 1 relative to the hidden area.
    ext4_round_trip(Mode::Cbc, "Serpent", Prf::Sha1, true);
}

// ---------------------------------------------------------------------------------------------
// A third implementation: tests/legacy_check.py (hashlib, zlib, `cryptography`).

/// Volumes made by Python from the facts: the Rust builder's reader and tcvault both open them
/// and find Python's data.
#[test]
fn python_made_legacy_volumes_open() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let probe = StdCommand::new("python3")
        .args(["-c", "import cryptography, hashlib, zlib"])
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        assert!(
            !in_ci(),
            "CI is set: python3 with `cryptography` must be there"
        );
        eprintln!("skipped: python3 with the `cryptography` package is missing");
        return;
    }
    let dir = temp_dir();
    let out = StdCommand::new("python3")
        .arg(root.join("tests/legacy_check.py"))
        .arg(dir.path())
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "legacy_check.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pw = pwfile(&dir, "pw", b"python legacy");
    let lines = String::from_utf8(out.stdout).expect("UTF-8");
    let mut n = 0;
    for line in lines.lines() {
        let e: Value = serde_json::from_str(line).expect("one JSON object a line");
        let name = e["file"].as_str().expect("file");
        let path = dir.path().join(name);
        let file = fs::read(&path).expect("python wrote the volume");
        let host = file.len() as u64;
        assert_eq!(e["host_size"], host);
        let want: Vec<u8> = (0..host as usize - 512)
            .map(|i| ((7 * i + 3 * (i >> 9) + 1) & 0xFF) as u8)
            .collect();
        // The Rust reader.
        let o = open_header(&file[..512], b"python legacy")
            .unwrap_or_else(|| panic!("{name}: the Rust reader does not open it"));
        assert_eq!(o.mode.json(), e["mode"], "{name}");
        assert_eq!(o.chain, e["cipher"], "{name}");
        assert_eq!(o.prf.name(), e["prf"], "{name}");
        assert_eq!(hex::encode(&o.fields.key_area), e["key_area"], "{name}");
        let (s, l) = area_of(&o, host, false);
        assert!(
            decrypt_area(&o, &file, s, l) == want,
            "{name}: Rust reader's data"
        );
        // tcvault.
        let v = info(&path, &pw, &[]);
        assert_eq!(v["mode"], e["mode"], "{name}: {v}");
        assert_eq!(v["cipher"], e["cipher"], "{name}: {v}");
        assert_eq!(v["prf"], e["prf"], "{name}: {v}");
        assert_eq!(v["layout"], "legacy", "{name}: {v}");
        assert_eq!(v["header_version"], e["header_version"], "{name}: {v}");
        assert_eq!(v["data_area_start"], 512, "{name}: {v}");
        assert!(decrypt(&path, &pw, &[]) == want, "{name}: tcvault's data");
        n += 1;
    }
    assert_eq!(n, 3, "legacy_check.py makes three volumes");
}
