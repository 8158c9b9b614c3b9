//! Every reference volume opens with its documented credentials and holds its documented data.
//!
//! Driven by `testvolumes/manifest.json` (volumes made by real VeraCrypt 1.26.27) and, when the
//! shared folder is present, by `../shared/testvolumes/veracrypt/third_party/manifest.json`
//! (VeraCrypt's own Windows-made volumes, a RIPEMD-160 one, and a genuine TrueCrypt 7 volume).
//! Tests pass the manifest's PRF so that they do not spend minutes on auto-detection; the
//! auto-detect path has its own deliberate tests in `tests/commands/cli.rs`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use tcvault::crypto::chain::ChainId;
use tcvault::crypto::kdf::Prf;
use tcvault::crypto::scheme::Scheme;
use tcvault::header::{Credentials, Family, HostKind, Slot, UnlockOptions};
use tcvault::secret::{Password, SecretBytes};
use tcvault::volume::keyfiles::read_keyfiles;
use tcvault::volume::{SlotChoice, Volume, VolumeError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testvolumes")
}

fn manifest(dir: &Path) -> Value {
    let text = fs::read_to_string(dir.join("manifest.json")).expect("manifest readable");
    serde_json::from_str(&text).expect("manifest is JSON")
}

fn entries(m: &Value) -> Vec<&Value> {
    m["entries"]
        .as_array()
        .expect("entries array")
        .iter()
        .collect()
}

fn s<'a>(e: &'a Value, key: &str) -> &'a str {
    e[key]
        .as_str()
        .unwrap_or_else(|| panic!("manifest field {key} in {e}"))
}

/// The password bytes of an entry: `password_utf8_hex` when present, else `password`'s UTF-8.
fn password_of(e: &Value, key: &str) -> Password {
    let bytes = match e.get(format!("{key}_utf8_hex")).and_then(Value::as_str) {
        Some(h) => hex::decode(h).expect("hex password"),
        None => s(e, key).as_bytes().to_vec(),
    };
    Password::new(&bytes).expect("manifest password within limits")
}

/// `sha512` or `ripemd160 (PBKDF2-HMAC-RIPEMD-160, …)` → the PRF.
fn prf_of(e: &Value) -> Prf {
    let name = s(e, "prf").split_whitespace().next().unwrap_or_default();
    Prf::from_name(name).unwrap_or_else(|| panic!("unknown PRF {name}"))
}

fn creds(dir: &Path, e: &Value, pw_key: &str) -> Credentials {
    let keyfiles: Vec<PathBuf> = e["keyfiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|k| dir.join(k))
                .collect()
        })
        .unwrap_or_default();
    let pools = read_keyfiles(&keyfiles).expect("keyfiles readable");
    let pim = e["pim"].as_u64().unwrap_or(0) as u32;
    Credentials::new(&password_of(e, pw_key), &pools, pim).expect("valid credentials")
}

fn open(
    path: &Path,
    creds: &Credentials,
    prf: Prf,
    slots: SlotChoice,
) -> Result<Volume, VolumeError> {
    let opts = UnlockOptions {
        prf: Some(prf),
        ..UnlockOptions::default()
    };
    Volume::open(path, creds, slots, &opts)
}

fn hidden() -> SlotChoice {
    SlotChoice {
        hidden: true,
        ..SlotChoice::default()
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// "768 KiB" → 786432.
fn parse_size(text: &str) -> u64 {
    let mut it = text.split_whitespace();
    let n: u64 = it.next().and_then(|n| n.parse().ok()).expect("size number");
    match it.next() {
        Some("KiB") => n * 1024,
        Some("MiB") => n * 1024 * 1024,
        Some("GiB") => n * 1024 * 1024 * 1024,
        other => panic!("unknown unit {other:?}"),
    }
}

fn is_volume(e: &Value) -> bool {
    matches!(s(e, "type"), "normal" | "outer" | "hidden")
}

#[test]
fn every_fixture_has_a_manifest_entry_and_the_reverse() {
    let dir = fixtures();
    let m = manifest(&dir);
    let listed: BTreeSet<String> = entries(&m)
        .iter()
        .map(|e| s(e, "file").to_string())
        .collect();
    let present: BTreeSet<String> = fs::read_dir(&dir)
        .expect("testvolumes readable")
        .filter_map(Result::ok)
        .map(|d| d.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "manifest.json")
        .collect();
    assert_eq!(listed, present, "testvolumes/ and its manifest disagree");
    for e in entries(&m) {
        let data = fs::read(dir.join(s(e, "file"))).expect("fixture readable");
        assert_eq!(
            sha256_hex(&data),
            s(e, "sha256_of_file"),
            "{} was modified",
            s(e, "file")
        );
        assert_eq!(
            data.len() as u64,
            e["size"].as_u64().expect("size"),
            "{}",
            s(e, "file")
        );
    }
}

#[test]
fn every_volume_and_its_embedded_backup_open_with_their_fields_and_data() {
    let dir = fixtures();
    let m = manifest(&dir);
    let mut opened = 0;
    for e in entries(&m).into_iter().filter(|e| is_volume(e)) {
        let file = s(e, "file");
        let slots = if s(e, "type") == "hidden" {
            hidden()
        } else {
            SlotChoice::default()
        };
        let prf = prf_of(e);
        let vol = open(&dir.join(file), &creds(&dir, e, "password"), prf, slots)
            .unwrap_or_else(|err| panic!("{file} ({}): {err}", s(e, "type")));
        let u = vol.unlocked();
        let chain = ChainId::from_name(s(e, "cipher")).expect("known chain");
        assert_eq!(u.scheme, Scheme::Xts(chain), "{file}: chain");
        assert_eq!(u.kdf.prf(), prf, "{file}: PRF");
        assert_eq!(u.family(), Family::VeraCrypt, "{file}: family");
        assert_eq!(u.header.version, 5, "{file}: header version");
        assert_eq!(u.header.sector_size, 512, "{file}: sector size");
        let expected_size = parse_size(s(&e["veracrypt_list_verbose"], "Size"));
        assert_eq!(u.header.volume_size, expected_size, "{file}: volume size");
        assert_eq!(
            u.header.encrypted_area_length, expected_size,
            "{file}: area length"
        );
        if s(e, "type") == "hidden" {
            assert_eq!(u.slot, Slot::Hidden, "{file}");
            assert_eq!(u.header.hidden_volume_size, expected_size, "{file}");
            // Hidden data ends where the embedded backup headers begin (docs/format.md §2).
            let host = e["size"].as_u64().expect("size");
            let requested = 300 * 1024;
            assert_eq!(
                u.header.encrypted_area_start,
                host - 131_072 - requested,
                "{file}"
            );
        } else {
            assert_eq!(u.slot, Slot::Normal, "{file}");
            assert_eq!(u.header.hidden_volume_size, 0, "{file}");
            assert_eq!(u.header.encrypted_area_start, 131_072, "{file}");
            assert_eq!(
                expected_size,
                e["size"].as_u64().expect("size") - 262_144,
                "{file}"
            );
        }
        for d in e["data_written"].as_array().expect("data_written") {
            let off = d["decrypted_data_area_offset"].as_u64().expect("offset");
            let mut buf = vec![0u8; 4096];
            vol.read_data(off, &mut buf).expect("read pattern");
            assert_eq!(sha256_hex(&buf), s(d, "sha256"), "{file}: data at {off}");
        }
        // The embedded backup header: its own salt, the same fields and master keys.
        let backup = SlotChoice {
            backup: true,
            ..slots
        };
        let opts = UnlockOptions {
            prf: Some(prf),
            chain: Some(chain),
            ..UnlockOptions::default()
        };
        let b = Volume::open(&dir.join(file), &creds(&dir, e, "password"), backup, &opts)
            .unwrap_or_else(|err| panic!("{file}: embedded backup: {err}"));
        let expected_slot = if slots.hidden {
            Slot::BackupHidden
        } else {
            Slot::BackupNormal
        };
        assert_eq!(b.unlocked().slot, expected_slot, "{file}");
        assert_ne!(
            b.unlocked().salt,
            u.salt,
            "{file}: the backup has its own salt"
        );
        assert_eq!(
            b.unlocked().header,
            u.header,
            "{file}: same fields and keys"
        );
        opened += 1;
    }
    assert!(opened >= 25, "only {opened} volumes in the manifest");
}

#[test]
fn header_backup_files_open_with_the_volume_master_keys() {
    let dir = fixtures();
    let m = manifest(&dir);
    let all = entries(&m);
    for e in all.iter().filter(|e| s(e, "type") == "backup") {
        let file = s(e, "file");
        let of = s(e, "of_volume");
        let mut pairs = vec![("password", "outer_or_normal")];
        if e.get("hidden_password").is_some() {
            pairs.push(("hidden_password", "hidden"));
        }
        for (pw_key, which) in pairs {
            let vol_entry = all
                .iter()
                .find(|v| {
                    s(v, "file") == of
                        && is_volume(v)
                        && (s(v, "type") == "hidden") == (which == "hidden")
                })
                .expect("the backed-up volume is in the manifest");
            let prf = prf_of(vol_entry);
            let c = creds(&dir, e, pw_key);
            let slots = if which == "hidden" {
                hidden()
            } else {
                SlotChoice::default()
            };
            let backup = open(&dir.join(file), &c, prf, slots).expect("backup opens");
            assert_eq!(backup.host().kind(), HostKind::BackupFile, "{file}");
            assert_eq!(backup.data_len(), 0, "{file}: a backup holds no data");
            let vol = open(&dir.join(of), &c, prf, slots).expect("volume opens");
            assert_eq!(
                backup.unlocked().header,
                vol.unlocked().header,
                "{file} {which}"
            );
            assert!(matches!(
                backup.read_data(0, &mut [0u8; 512]),
                Err(VolumeError::NoDataArea { .. })
            ));
        }
    }
}

#[test]
fn a_wrong_password_fails_for_every_volume() {
    let dir = fixtures();
    let m = manifest(&dir);
    for e in entries(&m)
        .into_iter()
        .filter(|e| is_volume(e) && s(e, "type") != "hidden")
    {
        let file = s(e, "file");
        let wrong = Credentials::new(
            &Password::new(b"not-the-password").expect("short"),
            &[] as &[SecretBytes],
            0,
        )
        .expect("credentials");
        // Naming the chain keeps this to the PBKDF2 blocks that chain needs; the full search
        // is covered once in tests/commands/cli.rs.
        let opts = UnlockOptions {
            prf: Some(prf_of(e)),
            chain: ChainId::from_name(s(e, "cipher")),
            ..UnlockOptions::default()
        };
        let r = Volume::open(&dir.join(file), &wrong, SlotChoice::default(), &opts);
        assert!(
            matches!(
                r,
                Err(VolumeError::Unlock(tcvault::header::UnlockError::NoMatch))
            ),
            "{file}: {r:?}"
        );
    }
}

#[test]
fn a_changed_password_replaces_the_old_one() {
    let dir = fixtures();
    let m = manifest(&dir);
    let e = entries(&m)
        .into_iter()
        .find(|e| e.get("original_password").is_some())
        .expect("the re-keyed volume is in the manifest");
    let old = creds(&dir, e, "original_password");
    let r = open(
        &dir.join(s(e, "file")),
        &old,
        Prf::Sha512,
        SlotChoice::default(),
    );
    assert!(
        r.is_err(),
        "the old password must no longer open the volume"
    );
}

/// Where the third-party volumes are read from: the shared folder, never copied into the project.
fn third_party_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testvolumes/veracrypt/third_party")
}

/// Under CI the shared folder must be there: the tests that need it would otherwise only show
/// as ignored.
#[test]
fn third_party_volumes_are_present_in_ci() {
    if std::env::var_os("CI").is_some() {
        assert!(
            third_party_dir().join("manifest.json").exists() && cfg!(shared_third_party),
            "CI must have {} (and the build must have seen it)",
            third_party_dir().display()
        );
    }
}

fn check_header(file: &str, vol: &Volume, h: &Value) {
    let u = vol.unlocked();
    let hdr = &u.header;
    let family = if s(h, "magic") == "TRUE" {
        Family::TrueCrypt
    } else {
        Family::VeraCrypt
    };
    assert_eq!(u.family(), family, "{file}");
    assert_eq!(
        u64::from(hdr.version),
        h["header_version"].as_u64().expect("v"),
        "{file}"
    );
    let prog = u16::from_str_radix(
        s(h, "required_program_version").trim_start_matches("0x"),
        16,
    )
    .expect("hex program version");
    assert_eq!(hdr.min_program_version, prog, "{file}");
    assert_eq!(
        hdr.hidden_volume_size,
        h["hidden_volume_size"].as_u64().expect("h"),
        "{file}"
    );
    assert_eq!(
        hdr.volume_size,
        h["volume_size"].as_u64().expect("vs"),
        "{file}"
    );
    assert_eq!(
        hdr.encrypted_area_start,
        h["encrypted_area_start"].as_u64().expect("s"),
        "{file}"
    );
    assert_eq!(
        hdr.encrypted_area_length,
        h["encrypted_area_length"].as_u64().expect("l"),
        "{file}"
    );
    assert_eq!(
        u64::from(hdr.sector_size),
        h["sector_size"].as_u64().expect("ss"),
        "{file}"
    );
    let keys = hdr.key_area.expose();
    assert_eq!(
        hex::encode(&keys[..32]),
        s(h, "master_key_primary_hex"),
        "{file}"
    );
    assert_eq!(
        hex::encode(&keys[32..64]),
        s(h, "master_key_secondary_hex"),
        "{file}"
    );
}

#[test]
#[cfg_attr(
    not(shared_third_party),
    ignore = "needs ../shared/testvolumes/veracrypt/third_party, which is absent"
)]
fn third_party_volumes_open() {
    let dir = third_party_dir();
    let m = manifest(&dir);
    for e in entries(&m) {
        let file = s(e, "file");
        let path = dir.join(file);
        let prf = prf_of(e);
        let c = creds(&dir, e, "password");
        let vol = open(&path, &c, prf, SlotChoice::default())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        if let Some(cipher) = e.get("cipher").and_then(Value::as_str) {
            assert_eq!(vol.unlocked().scheme.name(), cipher, "{file}");
        }
        for key in ["header", "header_normal"] {
            if let Some(h) = e.get(key) {
                check_header(file, &vol, h);
            }
        }
        // Every byte of the data area decrypts (no read beyond the host).
        let mut buf = vec![0u8; vol.data_len() as usize];
        vol.read_data(0, &mut buf).expect("whole data area");
        if e.get("hidden_password").is_some() {
            let hc = creds(&dir, e, "hidden_password");
            let hv = open(&path, &hc, prf, hidden())
                .unwrap_or_else(|err| panic!("{file} hidden: {err}"));
            assert!(hv.unlocked().header.is_hidden(), "{file}");
            if let Some(h) = e.get("header_hidden") {
                check_header(file, &hv, h);
            }
        }
    }
}
