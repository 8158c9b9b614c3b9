//! Writing volumes and headers: `create`, `change-password`, `backup-header`, `restore-header`,
//! hidden volumes, the crash-safety of header rewrites, and bad input.
//!
//! The chain × PRF matrix runs through the library (hundreds of key derivations); the
//! workflows run the binary. PIM 1 keeps PBKDF2 at 16,000 iterations and Argon2id at 64 MiB.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::AtomicBool;

use crate::common::{
    create_quick, in_ci, password_file, run, run_json, run_ok, tcvault, temp_dir, volume_path,
};
use tcvault::crypto::chain::ChainId;
use tcvault::crypto::kdf::Prf;
use tcvault::crypto::scheme::Scheme;
use tcvault::header::seal::Protection;
use tcvault::header::{Credentials, Family, UnlockOptions};
use tcvault::secret::Password;
use tcvault::volume::write::{self, BackupSource, CreateTarget, NewProtection, NewVolume};
use tcvault::volume::{Host, SlotChoice, Volume};

const PRFS: [Prf; 6] = [
    Prf::Sha512,
    Prf::Sha256,
    Prf::Blake2s,
    Prf::Whirlpool,
    Prf::Streebog,
    Prf::Argon2id,
];

fn creds(pw: &[u8], pim: u32) -> Credentials {
    let pw = Password::new(pw).expect("short password");
    Credentials::new(&pw, &[], pim).expect("credentials")
}

fn opts_for(prf: Prf, chain: ChainId) -> UnlockOptions {
    UnlockOptions {
        prf: Some(prf),
        chain: Some(chain),
        ..UnlockOptions::default()
    }
}

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn write_pattern(path: &Path, c: &Credentials, o: &UnlockOptions, offset: u64, data: &[u8]) {
    let host = Host::open_writable(path).expect("open writable");
    let vol = Volume::open_on(host, c, SlotChoice::default(), o).expect("opens");
    let mut buf = data.to_vec();
    vol.write_data(offset, &mut buf).expect("write data");
}

fn read_back(
    path: &Path,
    c: &Credentials,
    o: &UnlockOptions,
    slots: SlotChoice,
    offset: u64,
    len: usize,
) -> Vec<u8> {
    let vol = Volume::open(path, c, slots, o).expect("opens");
    let mut buf = vec![0u8; len];
    vol.read_data(offset, &mut buf).expect("read data");
    buf
}

/// Create, write, read, change password, back up, damage the primary header, restore, open
/// with the new password: the data are unchanged. For every chain; the PRFs rotate over the
/// chains here, and every chain × PRF pair is created and opened in the next test.
#[test]
fn round_trip_every_chain() {
    let dir = temp_dir();
    for (i, chain) in ChainId::ALL.into_iter().enumerate() {
        let prf = PRFS[i % PRFS.len()];
        let new_prf = PRFS[(i + 1) % PRFS.len()];
        let path = dir.path().join(format!("v{i}.hc"));
        let old = creds(b"old password", 1);
        let new = creds(b"new password", 2);
        let prot = Protection::new(Family::VeraCrypt, prf, 1, chain).expect("protection");
        let spec = NewVolume {
            prot,
            sector_size: 512,
            quick: false,
        };
        let never = AtomicBool::new(false);
        write::create(
            CreateTarget::File {
                path: &path,
                size: 400 * 1024,
                force: false,
            },
            &spec,
            &old,
            &mut |_, _| {},
            &never,
        )
        .expect("create");
        let data = pattern(i as u8, 8192);
        let o = opts_for(prf, chain);
        write_pattern(&path, &old, &o, 4096, &data);
        assert_eq!(
            read_back(&path, &old, &o, SlotChoice::default(), 4096, 8192),
            data,
            "{chain}"
        );

        let host = Host::open_writable(&path).expect("open");
        let vol = Volume::open_on(host, &old, SlotChoice::default(), &o).expect("opens");
        let new_prot = Protection::new(Family::VeraCrypt, new_prf, 2, chain).expect("protection");
        write::change_password(
            &vol,
            &NewProtection {
                creds: &new,
                prot: new_prot,
            },
            None,
        )
        .expect("change password");
        drop(vol);
        let no = opts_for(new_prf, chain);
        assert!(
            Volume::open(&path, &old, SlotChoice::default(), &o).is_err(),
            "old password still opens {chain}"
        );
        let backup_slots = SlotChoice {
            backup: true,
            ..SlotChoice::default()
        };
        assert_eq!(
            read_back(&path, &new, &no, backup_slots, 4096, 8192),
            data,
            "embedded backup {chain}"
        );

        let vol = Volume::open(&path, &new, SlotChoice::default(), &no).expect("opens");
        let bytes = write::backup_bytes(&vol, None, false).expect("backup");
        assert_eq!(bytes.len(), 131_072);
        let backup = dir.path().join(format!("v{i}.backup"));
        write::write_backup_file(&backup, &bytes, false).expect("write backup");
        drop(vol);

        // Damage the primary header, then restore from the file (the data holds no filesystem,
        // hence force).
        let mut all = fs::read(&path).expect("read volume");
        all[100..200].fill(0);
        fs::write(&path, &all).expect("damage");
        assert!(Volume::open(&path, &new, SlotChoice::default(), &no).is_err());
        write::restore_header(&path, BackupSource::File(&backup), &new, &no, None, true)
            .expect("restore");
        assert_eq!(
            read_back(&path, &new, &no, SlotChoice::default(), 4096, 8192),
            data,
            "after restore {chain}"
        );
    }
}

/// Every chain × PRF pair: a created volume opens with auto-detection of its PRF and chain
/// restricted to the family only, and the header says what was asked.
#[test]
fn every_chain_and_prf_creates_and_opens() {
    let dir = temp_dir();
    let never = AtomicBool::new(false);
    for prf in PRFS {
        for chain in ChainId::ALL {
            let path = dir.path().join(format!("{}-{}.hc", prf.id(), chain.name()));
            let c = creds(b"matrix", 1);
            let prot = Protection::new(Family::VeraCrypt, prf, 1, chain).expect("protection");
            let spec = NewVolume {
                prot,
                sector_size: 512,
                quick: true,
            };
            write::create(
                CreateTarget::File {
                    path: &path,
                    size: 300 * 1024,
                    force: false,
                },
                &spec,
                &c,
                &mut |_, _| {},
                &never,
            )
            .expect("create");
            let vol = Volume::open(&path, &c, SlotChoice::default(), &opts_for(prf, chain))
                .expect("opens");
            assert_eq!(vol.unlocked().scheme, Scheme::Xts(chain));
            assert_eq!(vol.unlocked().kdf.prf(), prf);
            assert_eq!(vol.data_len(), 300 * 1024 - 262_144);
        }
    }
}

/// `tcvault info --json OPTS --password-file PW VOL`, parsed.
fn info_json(opts: &[&str], pw: &Path, vol: &Path) -> serde_json::Value {
    run_json(
        tcvault()
            .arg("info")
            .arg("--json")
            .args(opts)
            .arg("--password-file")
            .arg(pw)
            .arg(vol),
    )
}

/// The decrypted data area: `tcvault decrypt OPTS --password-file PW VOL`.
fn decrypted(opts: &[&str], pw: &Path, vol: &Path) -> Vec<u8> {
    run_ok(
        tcvault()
            .arg("decrypt")
            .args(opts)
            .arg("--password-file")
            .arg(pw)
            .arg(vol),
    )
    .stdout
}

/// Whether the tests run as root (`id -u` prints 0).
fn is_root() -> bool {
    StdCommand::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// Mounts a small tmpfs with `opts` at `at` (root only); whether it worked.
fn mount_tmpfs(at: &Path, opts: &str) -> bool {
    StdCommand::new("mount")
        .args(["-t", "tmpfs", "-o", opts, "tcvault-test"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

fn pwfile(dir: &tempfile::TempDir, name: &str, pw: &str) -> PathBuf {
    let p = dir.path().join(name);
    fs::write(&p, pw).expect("write password file");
    p
}

/// The binary's create → info round trip with the defaults (VeraCrypt, AES, SHA-512).
#[test]
fn create_defaults_and_info() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"create me");
    let vol = dir.path().join("new.hc");
    let out = run_ok(
        tcvault()
            .args(["create", "--size", "1M", "--pim", "1", "--password-file"])
            .arg(&pw)
            .arg(&vol),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Created"));
    assert_eq!(fs::metadata(&vol).expect("exists").len(), 1 << 20);
    let info = info_json(&["--pim", "1"], &pw, &vol);
    assert_eq!(info["family"], "veracrypt", "{info}");
    assert_eq!(info["cipher"], "AES", "{info}");
    assert_eq!(info["encrypted_area_start"], 131_072);
    assert_eq!(info["volume_size"], (1u64 << 20) - 262_144);
    // Only the owner may read a new container.
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs::metadata(&vol).expect("exists").permissions().mode() & 0o077,
        0
    );
}

/// TrueCrypt format: magic TRUE, TrueCrypt counts; PIM and VeraCrypt-only choices refused.
#[test]
fn create_truecrypt_format() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"old school");
    let vol = dir.path().join("tc.tc");
    run_ok(
        tcvault()
            .args([
                "create",
                "--format",
                "truecrypt",
                "--prf",
                "whirlpool",
                "--cipher",
                "serpent-twofish-aes",
                "--size",
                "512K",
                "--password-file",
            ])
            .arg(&pw)
            .arg(&vol),
    );
    let info = info_json(&["--truecrypt"], &pw, &vol);
    assert_eq!(info["family"], "truecrypt", "{info}");
    assert_eq!(info["cipher"], "Serpent-Twofish-AES", "{info}");
    for bad in [
        vec!["--format", "truecrypt", "--pim", "5"],
        vec!["--format", "truecrypt", "--prf", "sha256"],
        vec!["--format", "truecrypt", "--cipher", "camellia"],
        vec!["--prf", "ripemd160"],
    ] {
        let target = dir.path().join("refused.tc");
        let out = run(tcvault()
            .arg("create")
            .args(&bad)
            .args(["--size", "512K", "--password-file"])
            .arg(&pw)
            .arg(&target));
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!target.exists(), "{bad:?} left a file");
    }
}

/// The independent check: Python's hashlib and `cryptography` open the primary and embedded
/// backup headers of AES volumes we create (SHA-512 and SHA-256) and read back our data.
#[test]
fn python_opens_volumes_we_create() {
    let ok = StdCommand::new("python3")
        .args(["-c", "import cryptography"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(!in_ci(), "python3 with cryptography is required in CI");
        eprintln!("skipped: python3 with cryptography is missing");
        return;
    }
    let dir = temp_dir();
    for prf in ["sha512", "sha256"] {
        let pwf = pwfile(&dir, "pw", "independent check");
        let vol = dir.path().join(format!("{prf}.hc"));
        run_ok(
            tcvault()
                .args([
                    "create",
                    "--size",
                    "640K",
                    "--pim",
                    "3",
                    "--prf",
                    prf,
                    "--password-file",
                ])
                .arg(&pwf)
                .arg(&vol),
        );
        let c = creds(b"independent check", 3);
        let data = pattern(7, 4096);
        let p = Prf::from_name(prf).expect("known PRF");
        write_pattern(&vol, &c, &opts_for(p, ChainId::Aes), 8192, &data);
        let out = StdCommand::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent_created.py"))
            .arg(&vol)
            .args(["independent check", prf, "3", "8192", "4096"])
            .output()
            .expect("run python3");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{prf}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(v["data_hex"], hex::encode(&data), "{prf}");
        assert_eq!(v["header"]["length"], 640 * 1024 - 262_144);
    }
}

/// Changing the password through the binary, with --keep-old-header; the old header file
/// restores the old password.
#[test]
fn change_password_and_keep_old_header() {
    let dir = temp_dir();
    let old = pwfile(&dir, "old", "first password");
    let new = pwfile(&dir, "new", "second password");
    let vol = dir.path().join("v.hc");
    create_quick("400K", &old, &vol);
    let keep = dir.path().join("old-headers");
    run_ok(
        tcvault()
            .args(["change-password", "--pim", "1", "--password-file"])
            .arg(&old)
            .args([
                "--new-pim",
                "2",
                "--new-prf",
                "sha256",
                "--new-password-file",
            ])
            .arg(&new)
            .arg("--keep-old-header")
            .arg(&keep)
            .arg(&vol),
    );
    assert_eq!(fs::metadata(&keep).expect("kept").len(), 131_072);
    // A keep file that exists is never replaced, and the hint names an option that exists.
    let kept = fs::read(&keep).expect("kept");
    let before = fs::read(&vol).expect("volume");
    let out = run(tcvault()
        .args(["change-password", "--pim", "2", "--password-file"])
        .arg(&new)
        .args(["--new-pim", "2", "--new-password-file"])
        .arg(&old)
        .arg("--keep-old-header")
        .arg(&keep)
        .arg(&vol));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(err.contains("already exists"), "{err}");
    assert!(
        err.contains("--keep-old-header") && !err.contains("--force"),
        "{err}"
    );
    assert_eq!(
        fs::read(&keep).expect("kept"),
        kept,
        "the keep file is unchanged"
    );
    assert_eq!(
        fs::read(&vol).expect("volume"),
        before,
        "the volume is unchanged"
    );
    let info = info_json(&["--pim", "2"], &new, &vol);
    assert_eq!(info["prf"], "sha256", "{info}");
    let out = run(tcvault()
        .args(["info", "--pim", "1", "--prf", "sha512", "--password-file"])
        .arg(&old)
        .arg(&vol));
    assert_eq!(
        out.status.code(),
        Some(3),
        "the old password no longer opens"
    );
    // The kept slots bring the old password back.
    run_ok(
        tcvault()
            .args([
                "restore-header",
                "--force",
                "--no-keep-old-header",
                "--pim",
                "1",
                "--prf",
                "sha512",
                "--password-file",
            ])
            .arg(&old)
            .arg("--file")
            .arg(&keep)
            .arg(&vol),
    );
    run_ok(
        tcvault()
            .args(["info", "--pim", "1", "--prf", "sha512", "--password-file"])
            .arg(&old)
            .arg(&vol),
    );
}

/// A TrueCrypt header becomes a VeraCrypt one; the data stay readable.
#[test]
fn change_password_to_veracrypt() {
    let dir = temp_dir();
    let pw = pwfile(&dir, "pw", "convert me");
    let vol = dir.path().join("tc.hc");
    run_ok(
        tcvault()
            .args([
                "create",
                "--format",
                "truecrypt",
                "--size",
                "400K",
                "--password-file",
            ])
            .arg(&pw)
            .arg(&vol),
    );
    let c = creds(b"convert me", 0);
    let tc_opts = UnlockOptions {
        family: Some(Family::TrueCrypt),
        ..UnlockOptions::default()
    };
    let data = pattern(3, 2048);
    write_pattern(&vol, &c, &tc_opts, 0, &data);
    run_ok(
        tcvault()
            .args([
                "change-password",
                "--truecrypt",
                "--to-veracrypt",
                "--new-pim",
                "1",
                "--password-file",
            ])
            .arg(&pw)
            .arg("--new-password-file")
            .arg(&pw)
            .arg(&vol),
    );
    let info = run_json(
        tcvault()
            .args([
                "info",
                "--json",
                "--veracrypt",
                "--pim",
                "1",
                "--password-file",
            ])
            .arg(&pw)
            .arg(&vol),
    );
    assert_eq!(info["family"], "veracrypt", "{info}");
    let vc = creds(b"convert me", 1);
    let vc_opts = UnlockOptions {
        family: Some(Family::VeraCrypt),
        ..UnlockOptions::default()
    };
    assert_eq!(
        read_back(&vol, &vc, &vc_opts, SlotChoice::default(), 0, 2048),
        data
    );
}

/// Killed between the two header writes of a password change, the volume still opens: the
/// primary with the old password, the embedded backup with the new one. Needs the pause hook
/// (the `test-hooks` feature, which scripts/test.sh turns on).
#[test]
fn killed_between_header_writes_still_opens() {
    if !cfg!(feature = "test-hooks") {
        assert!(!in_ci(), "CI runs the tests with --features test-hooks");
        eprintln!("skipped: needs --features test-hooks");
        return;
    }
    let dir = temp_dir();
    let old = pwfile(&dir, "old", "before");
    let new = pwfile(&dir, "new", "after");
    let vol = dir.path().join("v.hc");
    create_quick("400K", &old, &vol);
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_tcvault"))
        .args([
            "change-password",
            "--pim",
            "1",
            "--new-pim",
            "1",
            "--password-file",
        ])
        .arg(&old)
        .arg("--new-password-file")
        .arg(&new)
        .arg(&vol)
        .env(write::PAUSE_ENV, "1")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tcvault");
    let stderr = child.stderr.take().expect("stderr");
    let mut line = String::new();
    BufReader::new(stderr)
        .read_line(&mut line)
        .expect("read stderr");
    assert!(
        line.contains("paused after writing the embedded backup"),
        "{line}"
    );
    child.kill().expect("kill");
    let _ = child.wait();
    run_ok(
        tcvault()
            .args(["info", "--pim", "1", "--password-file"])
            .arg(&old)
            .arg(&vol),
    );
    run_ok(
        tcvault()
            .args(["info", "--backup-header", "--pim", "1", "--password-file"])
            .arg(&new)
            .arg(&vol),
    );
    // Finishing the job: restore the new header from the embedded backup.
    run_ok(
        tcvault()
            .args([
                "restore-header",
                "--embedded",
                "--force",
                "--no-keep-old-header",
                "--pim",
                "1",
                "--password-file",
            ])
            .arg(&new)
            .arg(&vol),
    );
    run_ok(
        tcvault()
            .args(["info", "--pim", "1", "--password-file"])
            .arg(&new)
            .arg(&vol),
    );
}

/// Backups made by real VeraCrypt restore into a copy of their volume (normal and, with the
/// hidden password, hidden), after the primary headers were destroyed.
#[test]
fn veracrypt_backups_restore() {
    let dir = temp_dir();
    let m = crate::common::manifest_entries();
    for e in m.iter().filter(|e| e["type"] == "backup") {
        let file = crate::common::str_field(e, "file");
        let volume = file.trim_end_matches(".backup");
        let copy = dir.path().join(volume);
        fs::copy(volume_path(volume), &copy).expect("copy volume");
        let mut bytes = fs::read(&copy).expect("read");
        bytes[..131_072].fill(0x5A);
        fs::write(&copy, &bytes).expect("destroy headers");
        let mut tries = vec![("password", false)];
        if e.get("hidden_password").is_some() {
            tries.push(("hidden_password", true));
        }
        for (field, hidden) in tries {
            let pw = crate::common::password_bytes(e, field);
            let pwf = dir.path().join("pw");
            fs::write(&pwf, &pw).expect("password file");
            run_ok(
                tcvault()
                    .args(["restore-header", "--no-keep-old-header", "--password-file"])
                    .arg(&pwf)
                    .arg("--file")
                    .arg(volume_path(file))
                    .arg(&copy),
            );
            let mut info = tcvault();
            info.args(["info", "--json", "--password-file"])
                .arg(&pwf)
                .arg(&copy);
            if hidden {
                info.arg("--hidden");
            }
            let v = run_json(&mut info);
            assert_eq!(
                v["type"],
                if hidden { "hidden" } else { "normal" },
                "{file}: {v}"
            );
        }
        // The restored volume's data decrypt to what the original's do.
        let pwf = dir.path().join("pw");
        fs::write(&pwf, crate::common::password_bytes(e, "password")).expect("password file");
        let a = run_ok(
            tcvault()
                .args(["decrypt", "--password-file"])
                .arg(&pwf)
                .arg(volume_path(volume)),
        )
        .stdout;
        let b = decrypted(&[], &pwf, &copy);
        assert!(a == b, "{volume}: data differ after restore");
    }
}

/// A hidden volume inside an outer volume made by real VeraCrypt: both passwords open the
/// right volume, the outer's files are untouched, and space the outer FAT uses is refused.
#[test]
fn hidden_volume_in_a_veracrypt_outer() {
    let dir = temp_dir();
    let e = crate::common::entry("aes_sha512.hc", "normal");
    let outer = dir.path().join("outer.hc");
    fs::copy(volume_path("aes_sha512.hc"), &outer).expect("copy");
    let opw = dir.path().join("outer-pw");
    fs::write(&opw, crate::common::password_bytes(&e, "password")).expect("pw");
    let hpw = pwfile(&dir, "hidden-pw", "hidden one");
    let before = decrypted(&["--prf", "sha512"], &opw, &outer);
    // Far too big: the outer FAT's files are in the way.
    let out = run(tcvault()
        .args([
            "create",
            "--hidden",
            "--size",
            "760K",
            "--pim",
            "1",
            "--password-file",
        ])
        .arg(&hpw)
        .arg("--outer-password-file")
        .arg(&opw)
        .arg(&outer));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("free"));
    run_ok(
        tcvault()
            .args([
                "create",
                "--hidden",
                "--size",
                "256K",
                "--pim",
                "1",
                "--password-file",
            ])
            .arg(&hpw)
            .arg("--outer-password-file")
            .arg(&opw)
            .arg(&outer),
    );
    let h = info_json(&["--pim", "1"], &hpw, &outer);
    assert_eq!(h["type"], "hidden", "{h}");
    let o = info_json(&["--prf", "sha512"], &opw, &outer);
    assert_eq!(o["type"], "normal", "{o}");
    let after = decrypted(&["--prf", "sha512"], &opw, &outer);
    let start = h["encrypted_area_start"].as_u64().expect("start") as usize - 131_072;
    assert!(
        before[..start] == after[..start],
        "the outer volume's used part changed"
    );
    // Data written to the hidden volume reads back.
    let c = creds(b"hidden one", 1);
    let slots = SlotChoice {
        hidden: true,
        ..SlotChoice::default()
    };
    let host = Host::open_writable(&outer).expect("open");
    let hv = Volume::open_on(host, &c, slots, &UnlockOptions::default()).expect("hidden opens");
    let data = pattern(9, 4096);
    let mut buf = data.clone();
    hv.write_data(0, &mut buf).expect("write hidden");
    drop(hv);
    assert_eq!(
        read_back(&outer, &c, &UnlockOptions::default(), slots, 0, 4096),
        data
    );
}

/// Bad input: sizes, existing targets, wrong backup sizes, a backup of another volume, wrong
/// outer password, a read-only directory. A clear message, the documented code, nothing left.
#[test]
fn bad_input_is_refused_cleanly() {
    let dir = temp_dir();
    let pw = pwfile(&dir, "pw", "bad input");
    let target = dir.path().join("t.hc");
    for (size, code) in [("100K", 4), ("300001", 4), ("lots", 2)] {
        let out = run(tcvault()
            .args(["create", "--size", size, "--password-file"])
            .arg(&pw)
            .arg(&target));
        assert_eq!(
            out.status.code(),
            Some(code),
            "{size}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!target.exists());
    }
    let out = run(tcvault()
        .args(["create", "--password-file"])
        .arg(&pw)
        .arg(&target));
    assert_eq!(out.status.code(), Some(2), "no --size");
    fs::write(&target, b"precious").expect("write");
    let out = run(tcvault()
        .args(["create", "--size", "400K", "--password-file"])
        .arg(&pw)
        .arg(&target));
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        fs::read(&target).expect("read"),
        b"precious",
        "an existing file was touched"
    );
    fs::remove_file(&target).expect("rm");
    create_quick("400K", &pw, &target);
    // Backup files of the wrong size.
    let odd = dir.path().join("odd.backup");
    fs::write(&odd, vec![0u8; 2048]).expect("write");
    let out = run(tcvault()
        .args(["restore-header", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg("--file")
        .arg(&odd)
        .arg(&target));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A backup of another volume (another size) is refused and nothing is written.
    let other = dir.path().join("other.hc");
    create_quick("600K", &pw, &other);
    let ob = dir.path().join("other.backup");
    run_ok(
        tcvault()
            .args(["backup-header", "--pim", "1", "--password-file"])
            .arg(&pw)
            .arg(&other)
            .arg(&ob),
    );
    let before = fs::read(&target).expect("read");
    let out = run(tcvault()
        .args([
            "restore-header",
            "--no-keep-old-header",
            "--pim",
            "1",
            "--password-file",
        ])
        .arg(&pw)
        .arg("--file")
        .arg(&ob)
        .arg(&target));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("another volume"));
    assert!(
        fs::read(&target).expect("read") == before,
        "the volume changed"
    );
    // A wrong outer password.
    let wrong = pwfile(&dir, "wrong", "not it");
    let out = run(tcvault()
        .args(["create", "--hidden", "--size", "64K", "--password-file"])
        .arg(&pw)
        .arg("--outer-password-file")
        .arg(&wrong)
        .arg(&target));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read(&target).expect("read") == before,
        "the volume changed"
    );
    // An outer volume without a filesystem cannot prove free space.
    let out = run(tcvault()
        .args(["create", "--hidden", "--size", "64K", "--password-file"])
        .arg(&pw)
        .arg("--outer-password-file")
        .arg(&pw)
        .arg("--outer-pim")
        .arg("1")
        .arg(&target));
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        fs::read(&target).expect("read") == before,
        "the volume changed"
    );
}

/// Compact (1,024-byte) backups with the hidden header, and restoring the hidden header from it.
#[test]
fn compact_backup_with_hidden_header() {
    let dir = temp_dir();
    let e = crate::common::entry("outer_hidden.hc", "outer");
    let h = crate::common::entry("outer_hidden.hc", "hidden");
    let vol = dir.path().join("oh.hc");
    fs::copy(volume_path("outer_hidden.hc"), &vol).expect("copy");
    let opw = dir.path().join("o");
    fs::write(&opw, crate::common::password_bytes(&e, "password")).expect("pw");
    let hpw = dir.path().join("h");
    fs::write(&hpw, crate::common::password_bytes(&h, "password")).expect("pw");
    let b = dir.path().join("oh.bak");
    run_ok(
        tcvault()
            .args(["backup-header", "--compact", "--password-file"])
            .arg(&opw)
            .arg("--hidden-password-file")
            .arg(&hpw)
            .arg(&vol)
            .arg(&b),
    );
    assert_eq!(fs::metadata(&b).expect("backup").len(), 1024);
    // The hidden header slot is destroyed, then restored from the compact backup.
    let mut bytes = fs::read(&vol).expect("read");
    bytes[65_536..65_536 + 512].fill(0);
    fs::write(&vol, &bytes).expect("damage");
    let out = run(tcvault()
        .args(["info", "--hidden", "--password-file"])
        .arg(&hpw)
        .arg(&vol));
    assert_eq!(out.status.code(), Some(3));
    run_ok(
        tcvault()
            .args(["restore-header", "--no-keep-old-header", "--password-file"])
            .arg(&hpw)
            .arg("--file")
            .arg(&b)
            .arg(&vol),
    );
    let v = info_json(&["--hidden"], &hpw, &vol);
    assert_eq!(v["type"], "hidden");
}

/// `backup-header` given the hidden volume's password as the main one: the default slots open
/// the hidden header, which must not become the backup's normal header (restoring that backup
/// would put the hidden header where the outer one belongs, and the outer header would be in
/// no backup at all). Refused with exit 4, no file written.
#[test]
fn backup_with_the_hidden_password_as_the_main_one_is_refused() {
    let dir = temp_dir();
    let h = crate::common::entry("outer_hidden.hc", "hidden");
    let vol = volume_path("outer_hidden.hc");
    let hpw = dir.path().join("h");
    fs::write(&hpw, crate::common::password_bytes(&h, "password")).expect("pw");
    for compact in [false, true] {
        let b = dir.path().join(format!("hidden-as-normal-{compact}.bak"));
        let mut cmd = tcvault();
        cmd.arg("backup-header");
        if compact {
            cmd.arg("--compact");
        }
        let out = run(cmd.arg("--password-file").arg(&hpw).arg(&vol).arg(&b));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{err}");
        assert!(err.contains("hidden volume"), "{err}");
        assert!(!b.exists(), "a backup was written");
    }
}

/// A disk too small for the container: a clear error before anything is written (the room
/// check; a disk that fills up midway, after the check, ends the same way, with "No space
/// left"), no container left behind. Needs root to mount a small tmpfs (skipped without it,
/// except in CI).
#[test]
fn full_disk_midway_leaves_nothing() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root");
        eprintln!("skipped: needs root to mount a small tmpfs");
        return;
    }
    let dir = temp_dir();
    let mnt = dir.path().join("small");
    fs::create_dir(&mnt).expect("mkdir");
    assert!(mount_tmpfs(&mnt, "size=2m"), "mount tmpfs");
    let pw = pwfile(&dir, "pw", "no room");
    let out = run(tcvault()
        .args(["create", "--size", "8M", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(mnt.join("big.hc")));
    let left: Vec<_> = fs::read_dir(&mnt).expect("list").collect();
    let _ = StdCommand::new("umount").arg(&mnt).status();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("does not fit; its filesystem has 2097152 bytes free")
            || err.contains("No space left"),
        "{err}"
    );
    assert!(left.is_empty(), "files left on the full disk: {left:?}");
}

/// Whether root, /dev/fuse and loop devices are here (what `--filesystem` needs).
fn can_format() -> bool {
    is_root() && Path::new("/dev/fuse").exists() && Path::new("/dev/loop-control").exists()
}

/// `create --filesystem fat` makes a volume ready to mount, and a hidden volume goes inside
/// this outer volume made by us: both passwords open the right volume, and the outer's FAT
/// (found by the free-space check) is unchanged.
#[test]
fn hidden_volume_in_our_own_fat_outer() {
    if !can_format() {
        assert!(!in_ci(), "CI runs as root with FUSE and loop devices");
        eprintln!("skipped: needs root, /dev/fuse and loop devices");
        return;
    }
    let dir = temp_dir();
    let opw = pwfile(&dir, "outer", "outer of ours");
    let hpw = pwfile(&dir, "hidden", "hidden of ours");
    let vol = dir.path().join("ours.hc");
    run_ok(
        tcvault()
            .args([
                "create",
                "--size",
                "8M",
                "--pim",
                "1",
                "--filesystem",
                "fat",
                "--password-file",
            ])
            .arg(&opw)
            .arg(&vol),
    );
    let before = decrypted(&["--pim", "1"], &opw, &vol);
    assert_eq!(&before[510..512], [0x55, 0xAA], "a FAT boot sector");
    run_ok(
        tcvault()
            .args([
                "create",
                "--hidden",
                "--size",
                "3M",
                "--pim",
                "1",
                "--filesystem",
                "fat",
                "--password-file",
            ])
            .arg(&hpw)
            .args(["--outer-pim", "1", "--outer-password-file"])
            .arg(&opw)
            .arg(&vol),
    );
    let h = info_json(&["--pim", "1"], &hpw, &vol);
    assert_eq!(h["type"], "hidden", "{h}");
    let o = info_json(&["--pim", "1"], &opw, &vol);
    assert_eq!(o["type"], "normal", "{o}");
    let after = decrypted(&["--pim", "1"], &opw, &vol);
    let start = h["encrypted_area_start"].as_u64().expect("start") as usize - 131_072;
    assert!(
        before[..start] == after[..start],
        "the outer volume's used part changed"
    );
    let hidden = decrypted(&["--hidden", "--pim", "1"], &hpw, &vol);
    assert_eq!(
        &hidden[510..512],
        [0x55, 0xAA],
        "the hidden volume has its own FAT"
    );
}

/// A read-only target: creating in a read-only filesystem and changing the password of a
/// volume on it fail with a clear message, and the volume is unchanged. Needs root to mount.
#[test]
fn read_only_target_is_refused() {
    if !is_root() {
        assert!(!in_ci(), "CI runs as root");
        eprintln!("skipped: needs root to mount a read-only tmpfs");
        return;
    }
    let dir = temp_dir();
    let pw = pwfile(&dir, "pw", "read only");
    let new = pwfile(&dir, "new", "never written");
    let mnt = dir.path().join("ro");
    fs::create_dir(&mnt).expect("mkdir");
    assert!(mount_tmpfs(&mnt, "size=4m"), "mount tmpfs");
    let vol = mnt.join("v.hc");
    let made = run(tcvault()
        .args([
            "create",
            "--quick",
            "--size",
            "400K",
            "--pim",
            "1",
            "--password-file",
        ])
        .arg(&pw)
        .arg(&vol));
    let remounted = StdCommand::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    let before = fs::read(&vol).ok();
    let create = run(tcvault()
        .args(["create", "--size", "400K", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(mnt.join("other.hc")));
    let change = run(tcvault()
        .args([
            "change-password",
            "--pim",
            "1",
            "--new-pim",
            "1",
            "--password-file",
        ])
        .arg(&pw)
        .arg("--new-password-file")
        .arg(&new)
        .arg(&vol));
    let after = fs::read(&vol).ok();
    let other_exists = mnt.join("other.hc").exists();
    let _ = StdCommand::new("umount").arg(&mnt).status();
    assert!(made.status.success() && remounted, "set-up failed");
    for (what, out) in [("create", &create), ("change-password", &change)] {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            matches!(out.status.code(), Some(1) | Some(4)),
            "{what}: {:?} {err}",
            out.status.code()
        );
        assert!(err.contains("Read-only file system"), "{what}: {err}");
    }
    assert!(!other_exists, "a file appeared on a read-only filesystem");
    assert!(before.is_some() && before == after, "the volume changed");
}

/// `create` says what cannot work before it asks for a password or fills anything: a
/// filesystem larger than the volume (XFS needs 300 MiB), and a container larger than the room
/// its filesystem has (without --quick). No terminal and no password file: the checks must
/// come first, or the error would be "no terminal".
#[test]
fn create_checks_size_and_room_before_the_password() {
    let dir = tempfile::tempdir().expect("temp dir");
    let vol = dir.path().join("small.hc");
    let out = run(tcvault()
        .args([
            "create",
            "--size",
            "100M",
            "--filesystem",
            "xfs",
            "--escrow",
            "no",
        ])
        .arg(&vol));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("xfs needs a data area of at least"), "{err}");
    assert!(!vol.exists(), "a file was left");

    let huge = dir.path().join("huge.hc");
    let out = run(tcvault()
        .args(["create", "--size", "1000T", "--escrow", "no"])
        .arg(&huge));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not fit; its filesystem has"), "{err}");
    assert!(err.contains("--quick"), "the hint names --quick: {err}");
    assert!(!huge.exists(), "a file was left");
}

/// `create --json` prints the new volume's settings as one object; an error under `--json` is
/// one object on standard output too (message, hint, exit code), beside the usual message.
#[test]
fn create_json_on_success_and_on_error() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"json password");
    let vol = dir.path().join("j.hc");
    let out = run_ok(
        tcvault()
            .args([
                "create", "--size", "1M", "--quick", "--pim", "1", "--json", "--escrow", "no",
            ])
            .arg("--password-file")
            .arg(&pw)
            .arg(&vol),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(v["format"], "veracrypt", "{v}");
    assert_eq!(v["size"], 1 << 20, "{v}");
    assert_eq!(v["type"], "normal", "{v}");
    let out = run(tcvault()
        .args(["create", "--size", "100M", "--filesystem", "xfs", "--json"])
        .arg(dir.path().join("x.hc")));
    assert_eq!(out.status.code(), Some(2));
    let e: serde_json::Value = serde_json::from_slice(&out.stdout).expect("an error object");
    assert_eq!(e["exit_code"], 2, "{e}");
    assert!(
        e["error"].as_str().is_some_and(|m| m.contains("xfs needs")),
        "{e}"
    );
}
