//! Volumes cut short, as a half-finished copy or an image of a drive's first MiBs leaves them:
//! header rewrites, header backups, hidden-volume creation and mounting refuse them (exit 5),
//! also when only the embedded backup headers after the data area are cut off (a rewrite would
//! put them on data).
//!
//! Each test makes its own 1 MiB volume with `tcvault create` (data area: 1,536 sectors from
//! byte 131,072), decrypts it whole, then cuts copies of it.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::{password_file, run, run_ok, tcvault, temp_dir};
use tempfile::TempDir;

const SIZE: u64 = 1 << 20;
const DATA_START: u64 = 131_072;
/// Sectors in the data area of a 1 MiB volume: 128 KiB of headers before and after it.
const SECTORS: u64 = (SIZE - 2 * DATA_START) / 512;
const PASSWORD: &[u8] = b"cut short";
const UNLOCK: [&str; 4] = ["--pim", "1", "--prf", "sha512"];

/// A copy of the first `len` bytes of the volume.
struct Cut {
    name: &'static str,
    len: u64,
}

const CUTS: [Cut; 4] = [
    Cut {
        name: "in-data.hc",
        len: DATA_START + 1000 * 512,
    },
    Cut {
        name: "mid-sector.hc",
        len: DATA_START + 1000 * 512 + 300,
    },
    Cut {
        name: "before-data.hc",
        len: 100_000,
    },
    Cut {
        name: "in-backup-headers.hc",
        len: SIZE - 65_536,
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
fn header_rewrites_and_mounting_refuse_a_cut_volume() {
    let m = Made::new();
    let new_pw = m.dir.path().join("new-password");
    fs::write(&new_pw, "a new one").expect("write the new password");
    let mount_point = m.dir.path().join("mnt");
    fs::create_dir(&mount_point).expect("mount point");
    let can_mount = common::can_mount();
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
