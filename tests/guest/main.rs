//! Tests that run inside a Linux guest with device-mapper and dm-crypt (`scripts/guest.sh`: Debian's
//! kernel, cryptsetup and tcplay under QEMU), for what this machine's kernel cannot do.
//!
//! `peers`: every kind of volume `tcvault` writes that Debian's cryptsetup supports is opened by
//! cryptsetup in the guest (`tcryptDump --dump-volume-key` and `open --type tcrypt`), and the
//! TrueCrypt-format ones by tcplay too; the master keys and the decrypted data must be the ones
//! `tcvault` reports.
//!
//! The guest needs `scripts/setup.d/guest.sh` (sourced by `scripts/test.sh`), which prepares it
//! and exports `TCVAULT_GUEST`. Without it the tests say so and pass, except when `CI` is set.

#[path = "../common/mod.rs"]
mod common;
mod peers;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest script, when the guest is prepared; `None` (after saying so) when it is not and
/// this is not CI. In CI a missing guest is a failure.
pub fn guest() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/guest.sh");
    if std::env::var_os("TCVAULT_GUEST").is_none() {
        assert!(
            !common::in_ci(),
            "CI must run the guest tests: TCVAULT_GUEST is not set (scripts/setup.d/guest.sh)"
        );
        eprintln!("skipped: the guest is not prepared (source scripts/setup.d/guest.sh)");
        return None;
    }
    Some(script)
}

/// Boots the guest on `disk` (an ext4 image with `run.sh` at its root) and returns what its
/// console printed. Panics when the guest did not finish.
pub fn run_guest(script: &Path, disk: &Path) -> String {
    let out = Command::new(script)
        .arg("run")
        .arg(disk)
        .output()
        .expect("cannot start scripts/guest.sh");
    let console = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "the guest failed ({:?}):\n{}\n{console}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    console
}

/// An ext4 image at `image` holding the files of `dir`, with room to spare.
pub fn ext4_image(dir: &Path, image: &Path) {
    let bytes: u64 = std::fs::read_dir(dir)
        .expect("cannot list the guest's files")
        .map(|e| e.and_then(|e| e.metadata()).map_or(0, |m| m.len()))
        .sum();
    let mib = bytes / (1 << 20) + 64;
    let out = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(dir)
        .arg(image)
        .arg(format!("{mib}M"))
        .output()
        .expect("cannot run mkfs.ext4");
    assert!(
        out.status.success(),
        "mkfs.ext4 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
