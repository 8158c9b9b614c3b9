//! Volumes cut short, as a half-finished copy or an image of a drive's first MiBs leaves them:
//! `info` prints the header with a warning (and `truncation` in `--json`); `decrypt` refuses
//! (exit 5, with a hint) unless `--partial`, which writes the sectors present, nothing for the
//! missing ones, and says how many are missing; header rewrites, header backups, hidden-volume
//! creation and mounting refuse them, also when only the embedded backup headers after the
//! data area are cut off (a rewrite would put them on data).
//!
//! Each test makes its own 1 MiB volume with `tcvault create` (data area: 1,536 sectors from
//! byte 131,072), decrypts it whole, then cuts copies of it. A system-encryption header in a
//! drive image is built with the library. A real TrueCrypt 7 volume from the shared third-party
//! folder is cut too when that folder is present (always in CI).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{in_ci, password_file, run, run_json, run_ok, tcvault, temp_dir};
use serde_json::Value;
use tcvault::crypto::kdf::Prf;
use tcvault::header::format::FLAG_SYSTEM;
use tcvault::header::seal::{Protection, seal};
use tcvault::header::{Credentials, UnlockOptions};
use tcvault::secret::Password;
use tcvault::volume::{SlotChoice, Volume};
use tempfile::TempDir;

const SIZE: u64 = 1 << 20;
const DATA_START: u64 = 131_072;
/// Sectors in the data area of a 1 MiB volume: 128 KiB of headers before and after it.
const SECTORS: u64 = (SIZE - 2 * DATA_START) / 512;
const PASSWORD: &[u8] = b"cut short";
const UNLOCK: [&str; 4] = ["--pim", "1", "--prf", "sha512"];

/// A copy of the first `len` bytes of the volume, which keeps `present` sectors of its data.
struct Cut {
    name: &'static str,
    len: u64,
    present: u64,
}

const CUTS: [Cut; 4] = [
    Cut {
        name: "in-data.hc",
        len: DATA_START + 1000 * 512,
        present: 1000,
    },
    Cut {
        name: "mid-sector.hc",
        len: DATA_START + 1000 * 512 + 300,
        present: 1000,
    },
    Cut {
        name: "before-data.hc",
        len: 100_000,
        present: 0,
    },
    Cut {
        name: "in-backup-headers.hc",
        len: SIZE - 65_536,
        present: SECTORS,
    },
];

/// A volume made by `tcvault create` and its whole decrypted data area.
struct Made {
    dir: TempDir,
    pw: PathBuf,
    full: PathBuf,
    plain: Vec<u8>,
}

impl Made {
    fn new() -> Made {
        let dir = temp_dir();
        let pw = password_file(&dir, PASSWORD);
        let full = dir.path().join("full.hc");
        run_ok(
            tcvault()
                .args(["create", "--size", "1M", "--pim", "1", "--password-file"])
                .arg(&pw)
                .arg(&full),
        );
        let mut m = Made {
            dir,
            pw,
            full,
            plain: Vec::new(),
        };
        m.plain = run_ok(&mut m.cmd("decrypt", &m.full)).stdout;
        assert_eq!(m.plain.len() as u64, SECTORS * 512, "whole data area");
        m
    }

    /// `tcvault COMMAND VOLUME --password-file PW --pim 1 --prf sha512`.
    fn cmd(&self, command: &str, volume: &Path) -> assert_cmd::Command {
        let mut c = tcvault();
        c.arg(command)
            .arg(volume)
            .arg("--password-file")
            .arg(&self.pw)
            .args(UNLOCK);
        c
    }

    /// A copy of the first `c.len` bytes of the volume.
    fn cut(&self, c: &Cut) -> PathBuf {
        let bytes = fs::read(&self.full).expect("read the volume");
        let path = self.dir.path().join(c.name);
        fs::write(&path, &bytes[..c.len as usize]).expect("write the cut copy");
        path
    }

    fn out(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn missing(total: u64, present: u64) -> String {
    format!("{} of {total} sectors missing", total - present)
}

/// Asserts a run refused with exit 5: one error line mentioning `needle`, and returns stderr.
fn assert_damaged(out: &Output, needle: &str, what: &str) -> String {
    let err = stderr(out);
    assert_eq!(
        out.status.code(),
        Some(5),
        "{what}: exit status; stderr:\n{err}"
    );
    assert!(out.stdout.is_empty(), "{what}: nothing on stdout");
    assert!(
        err.starts_with("tcvault: error: ") && err.contains(needle),
        "{what}: error line mentioning {needle:?}:\n{err}"
    );
    err
}

#[test]
fn info_prints_the_header_of_a_cut_volume_with_a_warning() {
    let m = Made::new();
    let whole = run_json(m.cmd("info", &m.full).arg("--json"));
    assert!(whole["truncation"].is_null(), "a whole volume: {whole}");
    for c in &CUTS {
        let vol = m.cut(c);
        let out = run_ok(&mut m.cmd("info", &vol));
        let table = String::from_utf8_lossy(&out.stdout);
        let row = |label: &str| {
            table
                .lines()
                .find_map(|l| l.strip_prefix(label)?.strip_prefix(':'))
                .map(str::trim)
                .unwrap_or_else(|| panic!("{}: no {label:?} row in\n{table}", c.name))
                .to_string()
        };
        assert_eq!(row("Cipher"), "AES", "{}", c.name);
        assert_eq!(
            row("Encrypted area length"),
            "786432 bytes (768 KiB)",
            "{}",
            c.name
        );
        assert_eq!(
            row("Cut short"),
            format!(
                "host ends at byte {} of {SIZE}; {}",
                c.len,
                missing(SECTORS, c.present)
            ),
            "{}",
            c.name
        );
        let err = stderr(&out);
        assert!(
            err.starts_with("tcvault: warning: ") && err.contains(&missing(SECTORS, c.present)),
            "{}: a warning with the missing sectors:\n{err}",
            c.name
        );
        assert!(err.contains("cannot be mounted"), "{}: {err}", c.name);
        if c.present < SECTORS {
            assert!(err.contains("decrypt --partial"), "{}: {err}", c.name);
        }

        let info = run_json(m.cmd("info", &vol).arg("--json"));
        for key in [
            "cipher",
            "prf",
            "volume_size",
            "encrypted_area_start",
            "encrypted_area_length",
            "data_area_start",
            "data_area_length",
        ] {
            assert_eq!(info[key], whole[key], "{}: {key}", c.name);
        }
        let t = &info["truncation"];
        assert_eq!(t["host_size"], c.len, "{}: {t}", c.name);
        assert_eq!(t["volume_end"], SIZE, "{}: {t}", c.name);
        assert_eq!(t["sectors"], SECTORS, "{}: {t}", c.name);
        assert_eq!(t["sectors_present"], c.present, "{}: {t}", c.name);
        assert_eq!(t["sectors_missing"], SECTORS - c.present, "{}: {t}", c.name);
        assert_eq!(t["data_present"], c.present * 512, "{}: {t}", c.name);
    }
}

#[test]
fn decrypt_refuses_a_cut_volume_without_partial() {
    let m = Made::new();
    for c in &CUTS {
        let vol = m.cut(c);
        let out_path = m.out(&format!("{}.out", c.name));
        let out = run(m.cmd("decrypt", &vol).arg("-o").arg(&out_path));
        if c.present < SECTORS {
            let err = assert_damaged(&out, "truncated", c.name);
            let hint = format!("--partial to write the {} of {SECTORS} sectors", c.present);
            assert!(
                err.lines()
                    .any(|l| l.starts_with("hint: ") && l.contains(&hint)),
                "{}: a hint with {hint:?}:\n{err}",
                c.name
            );
            assert!(!out_path.exists(), "{}: no output", c.name);
        } else {
            // Only the backup headers are gone: the data are all there.
            let err = stderr(&out);
            assert_eq!(out.status.code(), Some(0), "{}: {err}", c.name);
            assert!(
                fs::read(&out_path).expect("output") == m.plain,
                "{}: the whole data area",
                c.name
            );
            assert!(
                err.starts_with("tcvault: warning: ") && err.contains(&missing(SECTORS, SECTORS)),
                "{}: {err}",
                c.name
            );
        }
    }
}

#[test]
fn decrypt_partial_writes_the_sectors_present() {
    let m = Made::new();
    for c in &CUTS {
        let vol = m.cut(c);
        let want = &m.plain[..(c.present * 512) as usize];
        let out_path = m.out(&format!("{}.out", c.name));
        let out = run_ok(
            m.cmd("decrypt", &vol)
                .arg("--partial")
                .arg("-o")
                .arg(&out_path),
        );
        assert!(
            fs::read(&out_path).expect("output") == want,
            "{}: the first {} sectors of the whole volume's data",
            c.name,
            c.present
        );
        let err = stderr(&out);
        assert!(
            err.starts_with("tcvault: warning: ") && err.contains(&missing(SECTORS, c.present)),
            "{}: {err}",
            c.name
        );
        let out = run_ok(m.cmd("decrypt", &vol).arg("--partial"));
        assert!(
            out.stdout == want,
            "{}: the same on standard output",
            c.name
        );
    }
    // A whole volume: --partial changes nothing and warns of nothing.
    let out = run_ok(m.cmd("decrypt", &m.full).arg("--partial"));
    assert!(out.stdout == m.plain);
    assert_eq!(stderr(&out), "");
}

#[test]
fn header_rewrites_and_mounting_refuse_a_cut_volume() {
    let m = Made::new();
    let new_pw = m.dir.path().join("new-password");
    fs::write(&new_pw, "a new one").expect("write the new password");
    let mount_point = m.dir.path().join("mnt");
    fs::create_dir(&mount_point).expect("mount point");
    let can_mount = crate::common::can_mount();
    for c in &CUTS {
        let vol = m.cut(c);
        let before = fs::read(&vol).expect("read the cut copy");
        let out = run(m
            .cmd("change-password", &vol)
            .arg("--new-password-file")
            .arg(&new_pw));
        assert_damaged(&out, "truncated", &format!("{} change-password", c.name));

        let backup = m.out(&format!("{}.backup", c.name));
        let out = run(m.cmd("backup-header", &vol).arg(&backup));
        assert_damaged(&out, "truncated", &format!("{} backup-header", c.name));
        assert!(!backup.exists(), "{}: no backup file", c.name);

        let out = run(tcvault()
            .args(["create", "--hidden", "--size", "64K", "--password-file"])
            .arg(&new_pw)
            .arg("--outer-password-file")
            .arg(&m.pw)
            .args(["--outer-pim", "1"])
            .arg(&vol));
        assert_damaged(&out, "truncated", &format!("{} create --hidden", c.name));

        if can_mount {
            let out = run(m.cmd("mount", &vol).arg(&mount_point));
            if out.status.success() {
                run(tcvault().arg("unmount").arg(&mount_point));
            }
            assert_damaged(&out, "truncated", &format!("{} mount", c.name));
        }
        assert!(
            fs::read(&vol).expect("read the cut copy") == before,
            "{}: the file changed",
            c.name
        );
    }
}

/// A system-encryption header (sector 62) whose encrypted partition starts at 1 MiB and is
/// 64 GiB long, in an image of the drive's first 2 MiB: the header shows, 2,048 sectors of the
/// partition decrypt.
#[test]
fn system_header_in_an_image_of_a_drive_start() {
    const PART_START: u64 = 1 << 20;
    const PART_LEN: u64 = 64 << 30;
    const IMAGE: u64 = 2 << 20;
    let m = Made::new();
    let creds =
        Credentials::new(&Password::new(PASSWORD).expect("password"), &[], 1).expect("credentials");
    let opts = UnlockOptions {
        prf: Some(Prf::Sha512),
        ..UnlockOptions::default()
    };
    let vol = Volume::open(&m.full, &creds, SlotChoice::default(), &opts).expect("opens");
    let u = vol.unlocked();
    let mut header = u.header.clone();
    header.flags |= FLAG_SYSTEM;
    header.encrypted_area_start = PART_START;
    header.encrypted_area_length = PART_LEN;
    header.volume_size = PART_LEN;
    let prot = Protection {
        family: header.family,
        kdf: u.kdf,
        scheme: u.scheme,
    };
    let sealed = seal(&header, prot, &creds).expect("seal");
    let plain: Vec<u8> = (0..IMAGE - PART_START)
        .map(|i| (i.wrapping_mul(7) ^ (i >> 9)) as u8)
        .collect();
    let mut image = vec![0u8; IMAGE as usize];
    image[31_744..31_744 + 512].copy_from_slice(&sealed);
    let mut enc = plain.clone();
    u.data_cipher().encrypt(&mut enc, PART_START / 512);
    image[PART_START as usize..].copy_from_slice(&enc);
    let img = m.out("drive-start.img");
    fs::write(&img, &image).expect("write the image");

    let total = PART_LEN / 512;
    let present = (IMAGE - PART_START) / 512;
    let out = run_ok(m.cmd("info", &img).arg("--system"));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("Type:") && table.contains("system"),
        "{table}"
    );
    assert!(
        stderr(&out).contains(&missing(total, present)),
        "{}",
        stderr(&out)
    );
    let info = run_json(m.cmd("info", &img).args(["--system", "--json"]));
    assert_eq!(info["header_slot"], "system", "{info}");
    assert_eq!(
        info["truncation"]["volume_end"],
        PART_START + PART_LEN,
        "{info}"
    );
    assert_eq!(
        info["truncation"]["sectors_missing"],
        total - present,
        "{info}"
    );

    let out_path = m.out("partition.img");
    let out = run(m
        .cmd("decrypt", &img)
        .arg("--system")
        .arg("-o")
        .arg(&out_path));
    assert_damaged(&out, "truncated", "system decrypt");
    let out = run_ok(
        m.cmd("decrypt", &img)
            .args(["--system", "--partial", "-o"])
            .arg(&out_path),
    );
    assert!(
        fs::read(&out_path).expect("output") == plain,
        "the partition's first MiB"
    );
    assert!(
        stderr(&out).contains(&missing(total, present)),
        "{}",
        stderr(&out)
    );
}

/// The shared third-party folder, read in place (never copied into the project).
fn third_party_dir() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/testvolumes/veracrypt/third_party");
    if dir.join("manifest.json").exists() {
        return Some(dir);
    }
    assert!(!in_ci(), "CI must have {}", dir.display());
    eprintln!("skipped: {} is not present", dir.display());
    None
}

/// A real TrueCrypt 7 volume (tc-play's test volume), cut in the middle of a sector.
#[test]
fn real_truecrypt_volume_cut_short() {
    let Some(dir) = third_party_dir() else { return };
    let manifest: Value = serde_json::from_slice(
        &fs::read(dir.join("manifest.json")).expect("read the third-party manifest"),
    )
    .expect("manifest is JSON");
    let file = "tcplay_test_long.tc";
    let e = manifest["entries"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["file"] == file))
        .unwrap_or_else(|| panic!("the third-party manifest has no {file}"));
    let h = &e["header"];
    let start = h["encrypted_area_start"].as_u64().expect("start");
    let sectors = h["encrypted_area_length"].as_u64().expect("length") / 512;
    let tmp = temp_dir();
    let pw = password_file(&tmp, e["password"].as_str().expect("password").as_bytes());
    let cmd = |command: &str, vol: &Path| {
        let mut c = tcvault();
        c.arg(command)
            .arg(vol)
            .arg("--password-file")
            .arg(&pw)
            .args(["--truecrypt", "--prf", "ripemd160"]);
        c
    };
    let full = dir.join(file);
    let plain = run_ok(&mut cmd("decrypt", &full)).stdout;
    let cut_at = start + 700 * 512 + 100;
    let vol = tmp.path().join("cut.tc");
    fs::write(&vol, &fs::read(&full).expect("read")[..cut_at as usize]).expect("write");

    let out = run_ok(&mut cmd("info", &vol));
    assert!(String::from_utf8_lossy(&out.stdout).contains("TrueCrypt"));
    assert!(
        stderr(&out).contains(&missing(sectors, 700)),
        "{}",
        stderr(&out)
    );
    let out = run(&mut cmd("decrypt", &vol));
    assert_damaged(&out, "truncated", "TrueCrypt 7 decrypt");
    let out = run_ok(cmd("decrypt", &vol).arg("--partial"));
    assert!(out.stdout == plain[..700 * 512], "the sectors present");
    assert!(
        stderr(&out).contains(&missing(sectors, 700)),
        "{}",
        stderr(&out)
    );
}
