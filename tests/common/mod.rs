//! Helpers shared by the end-to-end tests (`tests/commands/cli.rs`, `tests/format/independent.rs`,
//! the escrow tests).
//!
//! Everything about the reference volumes comes from `testvolumes/manifest.json`, written when
//! real VeraCrypt made them: passwords, PIMs, keyfiles, cipher, PRF, sizes and the data patterns
//! with their offsets inside the decrypted data area. Passwords always go through a password file
//! inside a [`TempDir`], so the tests never share a file and can run in parallel.

// Each test crate uses its own subset of these helpers.
#![allow(dead_code)]

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// Legacy TrueCrypt (1.0–5.1a) volumes built from first principles (issue 8).
pub mod legacy;

/// The escrow server, its databases and its binary for the escrow test crate (which requires
/// these features).
#[cfg(all(feature = "escrow-server", feature = "postgres"))]
pub mod escrow_server;

/// Bytes before the data area of a current-layout volume (docs/format.md §2); the same again
/// follows it (the embedded backup headers).
pub const DATA_AREA_OFFSET: u64 = 131_072;

/// The reference-volume directory.
pub fn volumes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testvolumes")
}

/// A file in the reference-volume directory.
pub fn volume_path(file: &str) -> PathBuf {
    volumes_dir().join(file)
}

/// The entries of `testvolumes/manifest.json`.
pub fn manifest_entries() -> Vec<Value> {
    let path = volumes_dir().join("manifest.json");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let manifest: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    manifest["entries"]
        .as_array()
        .expect("manifest.json has an `entries` array")
        .clone()
}

/// The manifest entry for `file` of type `kind` (`normal`, `outer`, `hidden`, `backup`, …).
pub fn entry(file: &str, kind: &str) -> Value {
    manifest_entries()
        .into_iter()
        .find(|e| e["file"] == file && e["type"] == kind)
        .unwrap_or_else(|| panic!("manifest.json has no {kind} entry for {file}"))
}

/// A string field of a manifest entry.
pub fn str_field<'a>(entry: &'a Value, key: &str) -> &'a str {
    entry[key]
        .as_str()
        .unwrap_or_else(|| panic!("manifest entry {} has no string `{key}`", entry["file"]))
}

/// An integer field of a manifest entry.
pub fn u64_field(entry: &Value, key: &str) -> u64 {
    entry[key]
        .as_u64()
        .unwrap_or_else(|| panic!("manifest entry {} has no integer `{key}`", entry["file"]))
}

/// The keyfile names of a manifest entry (possibly none).
pub fn keyfiles(entry: &Value) -> Vec<String> {
    entry["keyfiles"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| k.as_str().expect("keyfile names are strings").to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// The password bytes of an entry's `field` (`password` or `hidden_password`): its UTF-8 bytes,
/// or `password_utf8_hex` when the manifest gives them explicitly.
pub fn password_bytes(entry: &Value, field: &str) -> Vec<u8> {
    if field == "password"
        && let Some(h) = entry["password_utf8_hex"].as_str()
    {
        return hex::decode(h).expect("password_utf8_hex is hex");
    }
    str_field(entry, field).as_bytes().to_vec()
}

/// Writes `contents` to a new file `name` in `dir` and returns its path.
pub fn write_file(dir: &TempDir, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.path().join(name);
    fs::write(&path, contents).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// Writes a password file (with one trailing newline, as `echo` would) into `dir`.
pub fn password_file(dir: &TempDir, password: &[u8]) -> PathBuf {
    let mut contents = password.to_vec();
    contents.push(b'\n');
    write_file(dir, "password", &contents)
}

/// A new temporary directory.
pub fn temp_dir() -> TempDir {
    tempfile::tempdir().expect("cannot create a temporary directory")
}

/// A temporary folder only this user may enter, as the escrow server wants its database's.
pub fn private_tempdir() -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    dir
}

/// The `tcvault` binary built by cargo for this test run.
pub fn tcvault() -> Command {
    Command::cargo_bin("tcvault").expect("cargo builds the tcvault binary for integration tests")
}

/// The unlock options for `entry`: password file, `--prf`, `--pim` (when not 0) and `-k` for
/// each keyfile, in the manifest's order. `prf` overrides the entry's PRF (backup entries have
/// none of their own).
pub fn unlock_args(entry: &Value, password_file: &Path, prf: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--password-file".into(),
        password_file.into(),
        "--prf".into(),
        prf.into(),
    ];
    let pim = entry["pim"].as_u64().unwrap_or(0);
    if pim != 0 {
        args.push("--pim".into());
        args.push(pim.to_string().into());
    }
    for k in keyfiles(entry) {
        args.push("-k".into());
        args.push(volume_path(&k).into());
    }
    args
}

/// Runs `cmd`, asserting it did not panic, and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("cannot run tcvault");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("panicked"),
        "tcvault panicked: {cmd:?}\nstderr:\n{stderr}"
    );
    out
}

/// Runs `cmd` and asserts exit status 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "tcvault failed ({:?}): {cmd:?}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` and parses its standard output as one JSON object.
pub fn run_json(cmd: &mut Command) -> Value {
    let out = run_ok(cmd);
    let text = String::from_utf8(out.stdout).expect("info --json prints UTF-8");
    assert_eq!(
        text.trim_end().lines().count(),
        1,
        "info --json prints one line, got:\n{text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

/// The 4096-byte data pattern a manifest `what` field names.
pub fn pattern(what: &str) -> Vec<u8> {
    if what.starts_with("pattern A") {
        (0..4096usize).map(|i| ((7 * i + 3) % 256) as u8).collect()
    } else if what.starts_with("pattern B") {
        (0..4096usize)
            .map(|i| ((i * i + 0x5A) % 256) as u8)
            .collect()
    } else {
        panic!("unknown pattern in manifest: {what}")
    }
}

/// `300K` → 307200 (VeraCrypt's `--size` syntax).
pub fn parse_size(text: &str) -> u64 {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], c.to_ascii_uppercase()),
        _ => (t, 'B'),
    };
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|e| panic!("bad size {text}: {e}"));
    n * match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => panic!("bad size unit in {text}"),
    }
}

/// Where docs/format.md §2 puts the data area of the volume `entry` describes:
/// (encrypted area start, data area length = volume size, hidden volume size field).
pub fn expected_layout(entry: &Value) -> (u64, u64, u64) {
    let size = u64_field(entry, "size");
    if entry["type"] == "hidden" {
        let requested = parse_size(str_field(entry, "hidden_volume_size_requested"));
        let data = if requested < 2 << 20 {
            requested - 4096
        } else {
            requested - DATA_AREA_OFFSET
        };
        (size - DATA_AREA_OFFSET - requested, data, data)
    } else {
        (DATA_AREA_OFFSET, size - 2 * DATA_AREA_OFFSET, 0)
    }
}

/// Whether this run is CI (the `CI` environment variable is set).
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Whether this machine can mount (root, /dev/fuse, loop devices). When it cannot, says what
/// is missing and returns false, except in CI, where mounting must work and this panics.
pub fn can_mount() -> bool {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let missing: Vec<&str> = [
        (!root.unwrap_or(false), "root"),
        (!Path::new("/dev/fuse").exists(), "/dev/fuse"),
        (
            !Path::new("/dev/loop-control").exists(),
            "/dev/loop-control",
        ),
    ]
    .into_iter()
    .filter_map(|(m, what)| m.then_some(what))
    .collect();
    if !missing.is_empty() {
        assert!(!in_ci(), "CI must be able to mount; missing: {missing:?}");
        eprintln!("skipped: mounting needs {missing:?}");
        return false;
    }
    true
}

/// `tcvault create --quick --size SIZE --pim 1` of a VeraCrypt AES volume at `vol`.
pub fn create_quick(size: &str, pw: &Path, vol: &Path) {
    run_ok(
        tcvault()
            .args([
                "create",
                "--quick",
                "--size",
                size,
                "--pim",
                "1",
                "--password-file",
            ])
            .arg(pw)
            .arg(vol),
    );
}
