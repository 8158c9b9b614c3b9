//! End-to-end tests of the `tcvault` command line on the reference volumes in `testvolumes/`,
//! which real VeraCrypt 1.26.27 made (see `testvolumes/manifest.json`).
//!
//! Covered: `--help`/`--version`; `info` (table with PRF auto-detection, `--json`,
//! `--show-keys`, PIM, hidden and outer volumes, header backup files); `decrypt` (to a file and
//! to standard output, the manifest's data patterns at their offsets, `--force`, no partial file
//! left behind, refusing header backups); the error cases with their exit codes (0 ok, 2 usage,
//! 3 wrong credentials or not a volume, 4 bad input, 5 damaged) and one clear message each;
//! keyfiles (order, directories, long passwords, big keyfiles) and password files.
//!
//! Unlocking runs the real key derivation (500,000 PBKDF2 iterations), so every test passes the
//! manifest's `--prf` except the one about PRF auto-detection, and tests that only need *some*
//! volume use `pim3_aes_sha512.hc` (18,000 iterations). Each test works in its own temporary
//! directory, so they run in parallel.
//!
//! The ignored tests at the end describe known bugs of `decrypt -o FILE` (world-readable output,
//! a followed symlink at the temporary name, special files replaced, the input overwritten);
//! run them with `cargo test --test commands cli:: -- --ignored` once those are fixed.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Output;

use crate::common::{
    expected_layout, keyfiles, manifest_entries, password_bytes, password_file, pattern, run,
    run_json, run_ok, str_field, tcvault, temp_dir, u64_field, unlock_args, volume_path,
    write_file,
};
use predicates::prelude::*;
use serde_json::Value;

/// A cheap volume (PIM 3: 18,000 iterations) for tests that need just some volume.
const FAST_VOLUME: &str = "pim3_aes_sha512.hc";
/// The volume the `info` and `decrypt` checks use (PRF auto-detection included).
const MAIN_VOLUME: &str = "aes_sha512.hc";

/// `tcvault COMMAND VOLUME --password-file PW`, for the options that follow.
fn with_password(
    command: &str,
    volume: impl AsRef<std::ffi::OsStr>,
    pw: &Path,
) -> assert_cmd::Command {
    let mut cmd = tcvault();
    cmd.arg(command).arg(volume).arg("--password-file").arg(pw);
    cmd
}

/// The manifest entry of `file`'s normal (or outer) volume.
fn normal_entry(file: &str) -> Value {
    manifest_entries()
        .into_iter()
        .find(|e| e["file"] == file && (e["type"] == "normal" || e["type"] == "outer"))
        .unwrap_or_else(|| panic!("manifest.json has no normal/outer entry for {file}"))
}

/// Asserts a failed run: exit `code`, nothing on stdout, no panic, and on stderr exactly one
/// `tcvault: error: …` line containing `needle` (case-insensitive), optionally followed by hint
/// lines. Returns stderr.
fn assert_error(out: &Output, code: i32, needle: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit status; stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on error, got {} bytes",
        out.stdout.len()
    );
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let errors: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("tcvault: error: "))
        .collect();
    assert_eq!(
        errors.len(),
        1,
        "exactly one error line expected:\n{stderr}"
    );
    assert!(
        lines[0].starts_with("tcvault: error: "),
        "the error comes first:\n{stderr}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("tcvault: error: ") || l.starts_with("hint: ")),
        "only the error line and hints:\n{stderr}"
    );
    assert!(
        errors[0].to_lowercase().contains(&needle.to_lowercase()),
        "error line should mention {needle:?}:\n{stderr}"
    );
    stderr
}

/// Asserts a usage error from the argument parser: exit 2, `error:` and `needle` on stderr.
fn assert_usage_error(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "exit status; stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on a usage error");
    assert!(!stderr.contains("panicked"), "panic:\n{stderr}");
    assert!(stderr.starts_with("error: "), "clap-style error:\n{stderr}");
    assert!(
        stderr.contains(needle),
        "stderr should mention {needle:?}:\n{stderr}"
    );
}

/// `info VOLUME --json` with `entry`'s credentials (password field `pw_field`) and `prf`.
fn info_json(entry: &Value, volume: &Path, pw_field: &str, prf: &str) -> Value {
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(entry, pw_field));
    run_json(
        tcvault()
            .arg("info")
            .arg(volume)
            .arg("--json")
            .args(unlock_args(entry, &pw, prf)),
    )
}

/// The file names in `dir`, sorted.
fn dir_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("temporary directory is readable")
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Asserts that `data` (a decrypted data area of the volume `entry` describes) has the manifest's
/// length and its patterns at their offsets.
fn assert_data_area(entry: &Value, data: &[u8]) {
    let file = str_field(entry, "file");
    let (_, len, _) = expected_layout(entry);
    assert_eq!(data.len() as u64, len, "{file}: decrypted data-area length");
    for dw in entry["data_written"].as_array().into_iter().flatten() {
        let what = str_field(dw, "what");
        let off = usize::try_from(u64_field(dw, "decrypted_data_area_offset"))
            .expect("offset fits in usize");
        let want = pattern(what);
        let got = data
            .get(off..off + want.len())
            .unwrap_or_else(|| panic!("{file}: {what} at {off} lies beyond the data"));
        assert!(
            got == want.as_slice(),
            "{file}: {what} not found at data-area offset {off}"
        );
    }
}

/// Parses the `info` table into `label → value`.
fn table(stdout: &[u8]) -> BTreeMap<String, String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Help and version

#[test]
fn help_mentions_commands_and_options() {
    tcvault()
        .arg("--help")
        .assert()
        .success()
        .stdout(predicate::str::contains("info").and(predicate::str::contains("decrypt")));

    let unlock = [
        "--password-file",
        "--keyfile",
        "--pim",
        "--prf",
        "--cipher",
        "--truecrypt",
        "--veracrypt",
        "--hidden",
        "--backup-header",
        "--system",
    ];
    let info = run_ok(tcvault().args(["info", "--help"]));
    let info = String::from_utf8_lossy(&info.stdout);
    for opt in unlock.iter().chain(&["--json", "--show-keys"]) {
        assert!(
            info.contains(opt),
            "info --help should mention {opt}:\n{info}"
        );
    }
    let decrypt = run_ok(tcvault().args(["decrypt", "--help"]));
    let decrypt = String::from_utf8_lossy(&decrypt.stdout);
    for opt in unlock.iter().chain(&["--output", "--force", "--partial"]) {
        assert!(
            decrypt.contains(opt),
            "decrypt --help should mention {opt}:\n{decrypt}"
        );
    }
}

/// The top-level help leads with the commands: `-R`'s many options are under `restore --help`
/// (and still parse after `-R`).
#[test]
fn top_help_keeps_restore_options_under_restore() {
    let top = run_ok(tcvault().arg("--help"));
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(
        top.contains("-R <ADMIN> <TARGET>") && top.contains("restore --help"),
        "{top}"
    );
    for opt in ["--private-key", "--search-user", "--new-password-file"] {
        assert!(!top.contains(opt), "top-level help lists {opt}:\n{top}");
    }
    let restore = run_ok(tcvault().args(["restore", "--help"]));
    let restore = String::from_utf8_lossy(&restore.stdout);
    for opt in ["--private-key", "--search-user", "--new-password-file"] {
        assert!(restore.contains(opt), "restore --help lacks {opt}");
    }
    // Hidden from the help, not from the parser: this fails later, not as a usage error.
    let dir = temp_dir();
    let out = run(tcvault()
        .args(["-R", "admin"])
        .arg(dir.path().join("missing.hc"))
        .args(["--search-user", "bob"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("tcvault: error:") && !err.contains("unexpected argument"),
        "-R options refused by the parser: {err}"
    );
}

/// VeraCrypt's and cryptsetup's arguments and commands get the tcvault equivalent, exit 2.
#[test]
fn other_tools_syntax_gets_the_tcvault_equivalent() {
    for (args, says) in [
        (&["--mount", "v.hc"][..], "tcvault mount VOLUME"),
        (&["-d"], "tcvault unmount"),
        (&["-l"], "tcvault list"),
        (&["--create", "v.hc"], "tcvault create VOLUME"),
        (&["create", "v.hc", "--encryption=AES"], "--cipher"),
        (&["mount", "v.hc", "--hash", "sha512"], "--prf"),
        (&["info", "v.hc", "--password", "x"], "--password-file"),
        (&["open", "v.hc", "name"], "--no-filesystem"),
        (&["close", "name"], "tcvault unmount"),
        (&["status", "name"], "tcvault list"),
        (&["tcryptDump", "v.hc"], "tcvault info VOLUME"),
    ] {
        let out = run(tcvault().args(args));
        let err = assert_error(&out, 2, "tcvault does not know");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!err.contains("similar"), "{args:?}: {err}");
    }
    // Anything else is still clap's message.
    assert_usage_error(&run(tcvault().arg("--bogus")), "--bogus");
}

#[test]
fn version_prints_the_package_version() {
    tcvault()
        .arg("--version")
        .assert()
        .success()
        .stdout(predicate::str::contains(env!("CARGO_PKG_VERSION")));
}

// ---------------------------------------------------------------------------------------------
// info

/// The one PRF auto-detection test: no `--prf`.
#[test]
fn info_table_autodetects_the_prf() {
    let e = normal_entry(MAIN_VOLUME);
    let vc = &e["veracrypt_list_verbose"];
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let out = run_ok(&mut with_password("info", volume_path(MAIN_VOLUME), &pw));
    assert!(
        out.stderr.is_empty(),
        "no warning without --show-keys: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let t = table(&out.stdout);
    let (start, len, _) = expected_layout(&e);
    assert_eq!(t["Format"], "VeraCrypt");
    assert_eq!(t["Type"], "normal");
    assert_eq!(t["Cipher"], str_field(vc, "Encryption Algorithm"));
    assert_eq!(t["Cipher"], str_field(&e, "cipher"));
    assert_eq!(t["Mode"], "XTS");
    assert!(
        t["PRF"].starts_with(str_field(vc, "KDF")) && t["PRF"].contains("500000 iterations"),
        "PRF row: {}",
        t["PRF"]
    );
    assert!(
        t["Volume size"].starts_with(&format!("{len} bytes")),
        "Volume size row: {}",
        t["Volume size"]
    );
    assert_eq!(
        len, 786_432,
        "docs/format.md: 1 MiB container, 768 KiB of data"
    );
    assert_eq!(t["Encrypted area start"], format!("byte {start}"));
    assert_eq!(t["Sector size"], "512 bytes");
    assert_eq!(t["Header slot"], "primary header");
    assert!(
        !t.contains_key("Master key (primary)"),
        "no keys without --show-keys"
    );
}

#[test]
fn info_json_reports_the_header_fields() {
    let e = normal_entry(MAIN_VOLUME);
    let j = info_json(
        &e,
        &volume_path(MAIN_VOLUME),
        "password",
        str_field(&e, "prf"),
    );
    let (start, len, _) = expected_layout(&e);
    assert_eq!(j["family"], "veracrypt");
    assert_eq!(j["type"], "normal");
    assert_eq!(j["cipher"], str_field(&e, "cipher"));
    assert_eq!(j["prf"], str_field(&e, "prf"));
    assert_eq!(j["kdf"], "HMAC-SHA-512");
    assert_eq!(j["iterations"], 500_000);
    assert_eq!(j["mode"], "XTS");
    assert_eq!(j["sector_size"], 512);
    assert_eq!(j["header_version"], 5);
    assert_eq!(j["volume_size"], len);
    assert_eq!(j["encrypted_area_start"], 131_072);
    assert_eq!(j["encrypted_area_start"], start);
    assert_eq!(j["encrypted_area_length"], len);
    assert_eq!(j["hidden_volume_size"], 0);
    assert_eq!(j["header_slot"], "normal");
    assert_eq!(j["host_kind"], "file");
    assert_eq!(j["host_size"], u64_field(&e, "size"));
    assert_eq!(j["flags"], 0);
    assert!(
        j.get("master_key_primary_hex").is_none(),
        "no keys without --show-keys"
    );
    assert!(
        j.get("master_key_secondary_hex").is_none(),
        "no keys without --show-keys"
    );
}

#[test]
fn info_show_keys_warns_and_prints_the_keys() {
    let e = normal_entry(FAST_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let prf = str_field(&e, "prf");

    let out = run_ok(
        tcvault()
            .arg("info")
            .arg(volume_path(FAST_VOLUME))
            .args(["--json", "--show-keys"])
            .args(unlock_args(&e, &pw, prf)),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("warning"), "a warning on stderr: {stderr}");
    let j: Value = serde_json::from_slice(&out.stdout).expect("info --json prints JSON");
    let primary = j["master_key_primary_hex"]
        .as_str()
        .expect("master_key_primary_hex");
    let secondary = j["master_key_secondary_hex"]
        .as_str()
        .expect("master_key_secondary_hex");
    for k in [primary, secondary] {
        assert_eq!(k.len(), 64, "one AES-256 key in hex: {k}");
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()), "hex: {k}");
    }
    assert_ne!(primary, secondary, "XTS halves differ");

    let out = run_ok(
        tcvault()
            .arg("info")
            .arg(volume_path(FAST_VOLUME))
            .arg("--show-keys")
            .args(unlock_args(&e, &pw, prf)),
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning"));
    let t = table(&out.stdout);
    assert_eq!(t["Master key (primary)"], primary);
    assert_eq!(t["Master key (XTS tweak)"], secondary);
}

#[test]
fn info_pim_volumes_use_the_pim_iteration_count() {
    let pim_entries: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| e["pim"].as_u64().is_some_and(|p| p > 0) && e["type"] == "normal")
        .collect();
    assert!(!pim_entries.is_empty(), "the manifest has PIM volumes");
    for e in &pim_entries {
        let file = str_field(e, "file");
        let j = info_json(e, &volume_path(file), "password", str_field(e, "prf"));
        let pim = u64_field(e, "pim");
        assert_eq!(j["iterations"], 15_000 + 1_000 * pim, "{file}");
        assert_eq!(j["cipher"], str_field(e, "cipher"), "{file}");
        assert_eq!(j["prf"], str_field(e, "prf"), "{file}");
    }
}

#[test]
fn info_wrong_pim_is_refused() {
    let e = normal_entry(FAST_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let pim = u64_field(&e, "pim") + 1;
    let out = run(with_password("info", volume_path(FAST_VOLUME), &pw).args([
        "--prf",
        str_field(&e, "prf"),
        "--pim",
        &pim.to_string(),
    ]));
    assert_error(&out, 3, "wrong PIM");
}

#[test]
fn hidden_volume_opens_with_its_own_password() {
    let e = crate::common::entry("outer_hidden.hc", "hidden");
    // No --hidden: the normal slot is tried first, then the hidden one.
    let j = info_json(
        &e,
        &volume_path("outer_hidden.hc"),
        "password",
        str_field(&e, "prf"),
    );
    let (start, len, hidden) = expected_layout(&e);
    assert_eq!(j["type"], "hidden");
    assert_eq!(j["header_slot"], "hidden");
    assert_eq!(j["cipher"], str_field(&e, "cipher"));
    assert_eq!(j["prf"], "sha256");
    assert_eq!(j["encrypted_area_start"], start);
    assert_eq!(j["volume_size"], len);
    assert_eq!(j["hidden_volume_size"], hidden);
    let vc_size = str_field(&e["veracrypt_list_verbose"], "Size");
    assert_eq!(format!("{} KiB", len / 1024), vc_size, "VeraCrypt's size");
}

#[test]
fn outer_volume_opens_as_a_normal_volume() {
    let e = crate::common::entry("outer_hidden.hc", "outer");
    let j = info_json(
        &e,
        &volume_path("outer_hidden.hc"),
        "password",
        str_field(&e, "prf"),
    );
    let (start, len, _) = expected_layout(&e);
    assert_eq!(j["type"], "normal");
    assert_eq!(j["header_slot"], "normal");
    assert_eq!(j["hidden_volume_size"], 0);
    assert_eq!(j["encrypted_area_start"], start);
    assert_eq!(j["volume_size"], len);
}

/// Each `.backup` entry opens with the password of its volume's normal header (and, where the
/// manifest gives one, with the hidden volume's password).
#[test]
fn header_backup_files_open() {
    let backups: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| e["type"] == "backup")
        .collect();
    assert!(
        !backups.is_empty(),
        "the manifest lists header backup files"
    );
    for b in &backups {
        let file = str_field(b, "file");
        let of = str_field(b, "of_volume");
        let vol = normal_entry(of);
        let j = info_json(b, &volume_path(file), "password", str_field(&vol, "prf"));
        assert_eq!(j["host_kind"], "header-backup", "{file}");
        assert_eq!(j["host_size"], u64_field(b, "size"), "{file}");
        assert_eq!(j["header_slot"], "normal", "{file}");
        assert_eq!(j["type"], "normal", "{file}");
        assert_eq!(j["cipher"], str_field(&vol, "cipher"), "{file}");
        assert_eq!(j["volume_size"], expected_layout(&vol).1, "{file}");
        if b.get("hidden_password").is_some() {
            let hidden = crate::common::entry(of, "hidden");
            let j = info_json(
                b,
                &volume_path(file),
                "hidden_password",
                str_field(&hidden, "prf"),
            );
            assert_eq!(j["host_kind"], "header-backup", "{file} hidden");
            assert_eq!(j["header_slot"], "hidden", "{file} hidden");
            assert_eq!(j["type"], "hidden", "{file} hidden");
            assert_eq!(
                j["volume_size"],
                expected_layout(&hidden).1,
                "{file} hidden"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// decrypt

#[test]
fn decrypt_refuses_header_backup_files() {
    let backups: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| e["type"] == "backup")
        .collect();
    assert!(
        !backups.is_empty(),
        "the manifest lists header backup files"
    );
    for b in &backups {
        let file = str_field(b, "file");
        let vol = normal_entry(str_field(b, "of_volume"));
        let dir = temp_dir();
        let pw = password_file(&dir, &password_bytes(b, "password"));
        let out_path = dir.path().join("data.bin");
        let out = run(tcvault()
            .arg("decrypt")
            .arg(volume_path(file))
            .args(unlock_args(b, &pw, str_field(&vol, "prf")))
            .arg("-o")
            .arg(&out_path));
        assert_error(&out, 4, "header backup");
        assert_eq!(
            dir_names(dir.path()),
            ["password"],
            "{file}: no output left"
        );
    }
}

/// Every manifest volume with written data: `decrypt -o FILE` gives the whole data area with the
/// patterns at their offsets, and leaves no partial file.
#[test]
fn decrypt_to_file_writes_the_data_area_with_the_patterns() {
    let with_data: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| {
            ["normal", "outer", "hidden"].contains(&e["type"].as_str().unwrap_or(""))
                && e["data_written"].as_array().is_some_and(|d| !d.is_empty())
        })
        .collect();
    assert!(
        with_data.len() >= 2,
        "the manifest has volumes with patterns"
    );
    for e in &with_data {
        let file = str_field(e, "file");
        let dir = temp_dir();
        let pw = password_file(&dir, &password_bytes(e, "password"));
        let out_path = dir.path().join("data.bin");
        let mut cmd = tcvault();
        cmd.arg("decrypt")
            .arg(volume_path(file))
            .args(unlock_args(e, &pw, str_field(e, "prf")))
            .args(["--cipher", &str_field(e, "cipher").to_lowercase()])
            .arg("-o")
            .arg(&out_path);
        if e["type"] == "hidden" {
            cmd.arg("--hidden");
        }
        let out = run_ok(&mut cmd);
        assert!(out.stdout.is_empty(), "{file}: nothing on stdout with -o");
        let data = fs::read(&out_path).expect("decrypt wrote the output file");
        assert_data_area(e, &data);
        assert_eq!(
            dir_names(dir.path()),
            ["data.bin", "password"],
            "{file}: no .tcvault-partial file left"
        );
    }
}

#[test]
fn decrypt_to_stdout_gives_the_same_bytes_as_to_a_file() {
    let e = normal_entry(MAIN_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let prf = str_field(&e, "prf");
    let out_path = dir.path().join("data.bin");
    run_ok(
        tcvault()
            .arg("decrypt")
            .arg(volume_path(MAIN_VOLUME))
            .args(unlock_args(&e, &pw, prf))
            .arg("-o")
            .arg(&out_path),
    );
    let from_file = fs::read(&out_path).expect("decrypt wrote the output file");
    assert_data_area(&e, &from_file);

    let dash = run_ok(
        tcvault()
            .arg("decrypt")
            .arg(volume_path(MAIN_VOLUME))
            .args(unlock_args(&e, &pw, prf))
            .args(["-o", "-"]),
    );
    assert!(
        dash.stdout == from_file,
        "-o - gives the same bytes as -o FILE"
    );
    let plain = run_ok(
        tcvault()
            .arg("decrypt")
            .arg(volume_path(MAIN_VOLUME))
            .args(unlock_args(&e, &pw, prf)),
    );
    assert!(
        plain.stdout == from_file,
        "no -o gives the same bytes as -o FILE"
    );
    assert_eq!(dir_names(dir.path()), ["data.bin", "password"]);
}

#[test]
fn decrypt_refuses_an_existing_output_without_force() {
    let e = normal_entry(FAST_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let prf = str_field(&e, "prf");
    let out_path = write_file(&dir, "data.bin", b"keep me");

    let out = run(tcvault()
        .arg("decrypt")
        .arg(volume_path(FAST_VOLUME))
        .args(unlock_args(&e, &pw, prf))
        .arg("-o")
        .arg(&out_path));
    let stderr = assert_error(&out, 4, "already exists");
    assert!(stderr.contains("--force"), "hint names --force:\n{stderr}");
    assert_eq!(fs::read(&out_path).expect("output still there"), b"keep me");

    run_ok(
        tcvault()
            .arg("decrypt")
            .arg(volume_path(FAST_VOLUME))
            .args(unlock_args(&e, &pw, prf))
            .arg("-o")
            .arg(&out_path)
            .arg("--force"),
    );
    let data = fs::read(&out_path).expect("decrypt wrote the output file");
    assert_data_area(&e, &data);
    if str_field(&e, "filesystem").starts_with("FAT") {
        assert_eq!(&data[510..512], [0x55, 0xAA], "a FAT boot sector signature");
    }
    assert_eq!(
        dir_names(dir.path()),
        ["data.bin", "password"],
        "no .tcvault-partial file left"
    );
}

// ---------------------------------------------------------------------------------------------
// Errors: exit code, one clear line, no panic

#[test]
fn error_missing_volume() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(
        with_password("info", dir.path().join("no-such-volume.hc"), &pw).args(["--prf", "sha512"]),
    );
    assert_error(&out, 4, "no such file");
}

#[test]
fn error_volume_is_a_directory() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(with_password("info", dir.path(), &pw).args(["--prf", "sha512"]));
    assert_error(&out, 4, "directory");
}

#[test]
fn error_empty_and_tiny_files_are_too_small() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    for (name, len) in [("empty.hc", 0usize), ("tiny.hc", 1000)] {
        let vol = write_file(&dir, name, &vec![0x42; len]);
        for command in ["info", "decrypt"] {
            let out = run(with_password(command, &vol, &pw).args(["--prf", "sha512"]));
            assert_error(&out, 4, "too small");
        }
    }
}

#[test]
fn error_random_bytes_are_not_a_volume() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"DevSet-vc-Passw0rd-2026");
    // xorshift64*: reproducible bytes that look random.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let random: Vec<u8> = (0..299_008)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect();
    let vol = write_file(&dir, "random.hc", &random);
    let out = run(with_password("info", &vol, &pw).args(["--prf", "sha512"]));
    assert_error(&out, 3, "wrong password");
}

#[test]
fn error_wrong_password() {
    let e = normal_entry(MAIN_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, b"not-the-password");
    let out =
        run(with_password("info", volume_path(MAIN_VOLUME), &pw)
            .args(["--prf", str_field(&e, "prf")]));
    assert_error(&out, 3, "wrong password");
}

/// The header opens, but the data area it describes runs past the end of the file.
#[test]
fn error_truncated_volume() {
    let e = normal_entry(MAIN_VOLUME);
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let full = fs::read(volume_path(MAIN_VOLUME)).expect("reference volume is readable");
    let vol = write_file(&dir, "truncated.hc", &full[..600_000]);
    let out_path = dir.path().join("data.bin");
    let out = run(tcvault()
        .arg("decrypt")
        .arg(&vol)
        .args(unlock_args(&e, &pw, str_field(&e, "prf")))
        .arg("-o")
        .arg(&out_path));
    assert_error(&out, 5, "truncated");
    assert_eq!(
        dir_names(dir.path()),
        ["password", "truncated.hc"],
        "no output and no partial file"
    );
}

#[test]
fn error_unknown_prf_is_a_usage_error() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(with_password("info", volume_path(MAIN_VOLUME), &pw).args(["--prf", "md5"]));
    assert_usage_error(&out, "md5");
}

#[test]
fn error_pim_out_of_range_is_a_usage_error() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(with_password("info", volume_path(MAIN_VOLUME), &pw).args([
        "--prf",
        "sha512",
        "--pim",
        "4000000000",
    ]));
    assert_error(&out, 2, "--pim");
}

#[test]
fn error_truecrypt_with_sha256_is_a_usage_error() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(with_password("info", volume_path(MAIN_VOLUME), &pw).args([
        "--truecrypt",
        "--prf",
        "sha256",
    ]));
    assert_error(&out, 2, "sha256");
}

#[test]
fn error_empty_keyfile() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let kf = write_file(&dir, "empty.key", b"");
    let out = run(with_password("info", volume_path(MAIN_VOLUME), &pw)
        .args(["--prf", "sha512", "-k"])
        .arg(&kf));
    assert_error(&out, 4, "empty");
}

#[test]
fn error_missing_keyfile() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"whatever");
    let out = run(with_password("info", volume_path(MAIN_VOLUME), &pw)
        .args(["--prf", "sha512", "-k"])
        .arg(dir.path().join("no-such.key")));
    assert_error(&out, 4, "no such file");
}

#[test]
fn error_missing_password_file() {
    let dir = temp_dir();
    let out = run(tcvault()
        .arg("info")
        .arg(volume_path(MAIN_VOLUME))
        .arg("--password-file")
        .arg(dir.path().join("no-such-password"))
        .args(["--prf", "sha512"]));
    assert_error(&out, 4, "password file");
}

/// Standard input is a pipe here, never a terminal: without --password-file there is no way
/// to ask for the password.
#[test]
fn error_no_terminal_for_the_password() {
    for command in ["info", "decrypt"] {
        let out = run(tcvault()
            .arg(command)
            .arg(volume_path(MAIN_VOLUME))
            .args(["--prf", "sha512"]));
        let stderr = assert_error(&out, 4, "terminal");
        assert!(
            stderr.contains("--password-file"),
            "hint about --password-file:\n{stderr}"
        );
    }
}

#[test]
fn error_password_longer_than_128_bytes() {
    let e = normal_entry(FAST_VOLUME);
    let dir = temp_dir();
    let pw = write_file(&dir, "password", &[b'a'; 129]);
    let out = run(tcvault()
        .arg("info")
        .arg(volume_path(FAST_VOLUME))
        .args(unlock_args(&e, &pw, str_field(&e, "prf"))));
    assert_error(&out, 4, "128");

    // 128 bytes and the newline that is removed: a valid (if wrong) password.
    let mut exactly = vec![b'a'; 128];
    exactly.push(b'\n');
    let pw = write_file(&dir, "password", &exactly);
    let out = run(tcvault()
        .arg("info")
        .arg(volume_path(FAST_VOLUME))
        .args(unlock_args(&e, &pw, str_field(&e, "prf"))));
    assert_error(&out, 3, "wrong password");
}

// ---------------------------------------------------------------------------------------------
// Keyfiles

/// Every manifest volume with keyfiles opens with them, given in the manifest's order; an empty
/// password is given as an empty (0-byte) password file.
#[test]
fn keyfile_volumes_open_with_their_keyfiles() {
    let with_keyfiles: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| e["type"] == "normal" && !keyfiles(e).is_empty())
        .collect();
    assert!(
        with_keyfiles.len() >= 4,
        "the manifest has keyfile volumes (keyfile only, two keyfiles, long password, big keyfile)"
    );
    for e in &with_keyfiles {
        let file = str_field(e, "file");
        let dir = temp_dir();
        let password = password_bytes(e, "password");
        let pw = if password.is_empty() {
            write_file(&dir, "password", b"")
        } else {
            password_file(&dir, &password)
        };
        let j = run_json(
            tcvault()
                .arg("info")
                .arg(volume_path(file))
                .arg("--json")
                .args(unlock_args(e, &pw, str_field(e, "prf"))),
        );
        assert_eq!(j["cipher"], str_field(e, "cipher"), "{file}");
        assert_eq!(j["prf"], str_field(e, "prf"), "{file}");
        assert_eq!(j["type"], "normal", "{file}");
    }
}

fn multi_keyfile_entries() -> Vec<Value> {
    let v: Vec<Value> = manifest_entries()
        .into_iter()
        .filter(|e| e["type"] == "normal" && keyfiles(e).len() >= 2)
        .collect();
    assert!(
        !v.is_empty(),
        "the manifest has a volume with several keyfiles"
    );
    v
}

#[test]
fn keyfile_order_does_not_matter() {
    for e in &multi_keyfile_entries() {
        let file = str_field(e, "file");
        let dir = temp_dir();
        let pw = password_file(&dir, &password_bytes(e, "password"));
        let mut cmd = tcvault();
        cmd.arg("info")
            .arg(volume_path(file))
            .arg("--json")
            .arg("--password-file")
            .arg(&pw)
            .args(["--prf", str_field(e, "prf")]);
        for k in keyfiles(e).iter().rev() {
            cmd.arg("-k").arg(volume_path(k));
        }
        let j = run_json(&mut cmd);
        assert_eq!(j["cipher"], str_field(e, "cipher"), "{file}");
    }
}

/// A keyfile directory stands for every file directly inside it; dot-files are skipped.
#[test]
fn keyfile_directory_counts_every_file_in_it() {
    for e in &multi_keyfile_entries() {
        let file = str_field(e, "file");
        let dir = temp_dir();
        let pw = password_file(&dir, &password_bytes(e, "password"));
        let keys = dir.path().join("keys");
        fs::create_dir(&keys).expect("create keyfile directory");
        for k in keyfiles(e) {
            fs::copy(volume_path(&k), keys.join(&k)).expect("copy keyfile");
        }
        fs::write(keys.join(".ignored"), b"a dot-file is not a keyfile").expect("write dot-file");
        let j = run_json(
            tcvault()
                .arg("info")
                .arg(volume_path(file))
                .arg("--json")
                .arg("--password-file")
                .arg(&pw)
                .args(["--prf", str_field(e, "prf"), "-k"])
                .arg(&keys),
        );
        assert_eq!(j["cipher"], str_field(e, "cipher"), "{file}");
    }
}

// ---------------------------------------------------------------------------------------------
// Passwords

#[test]
fn password_file_trailing_newline_is_optional() {
    let e = normal_entry(FAST_VOLUME);
    let password = password_bytes(&e, "password");
    let prf = str_field(&e, "prf");
    let dir = temp_dir();

    let mut with_newline = password.clone();
    with_newline.push(b'\n');
    for contents in [&password, &with_newline] {
        let pw = write_file(&dir, "password", contents);
        run_json(
            tcvault()
                .arg("info")
                .arg(volume_path(FAST_VOLUME))
                .arg("--json")
                .args(unlock_args(&e, &pw, prf)),
        );
    }

    // Only one newline is removed: a second one is part of the password.
    let mut two_newlines = with_newline.clone();
    two_newlines.push(b'\n');
    let pw = write_file(&dir, "password", &two_newlines);
    let out = run(tcvault()
        .arg("info")
        .arg(volume_path(FAST_VOLUME))
        .args(unlock_args(&e, &pw, prf)));
    assert_error(&out, 3, "wrong password");
}

#[test]
fn password_from_standard_input() {
    let e = normal_entry(FAST_VOLUME);
    let mut stdin = password_bytes(&e, "password");
    stdin.push(b'\n');
    let j = run_json(
        tcvault()
            .arg("info")
            .arg(volume_path(FAST_VOLUME))
            .args(["--json", "--password-file", "-"])
            .args(["--prf", str_field(&e, "prf")])
            .args(["--pim", &u64_field(&e, "pim").to_string()])
            .write_stdin(stdin),
    );
    assert_eq!(j["cipher"], str_field(&e, "cipher"));
}

/// Non-ASCII passwords are used as their UTF-8 bytes.
#[test]
fn utf8_password() {
    let e = normal_entry("utf8pw_aes_sha512.hc");
    let j = info_json(
        &e,
        &volume_path("utf8pw_aes_sha512.hc"),
        "password",
        str_field(&e, "prf"),
    );
    assert_eq!(j["cipher"], str_field(&e, "cipher"));
}

// ---------------------------------------------------------------------------------------------
// Known bugs in `decrypt -o FILE` (src/cli/decrypt.rs, `write_file`): these tests describe the
// expected behaviour and are ignored until the bugs are fixed. Run them with
// `cargo test --test commands cli:: -- --ignored`.

/// `decrypt -o FILE` of the cheap volume into `dir`, with extra arguments.
fn decrypt_fast_volume_to(
    dir: &tempfile::TempDir,
    volume: &Path,
    out: &Path,
    extra: &[&str],
) -> Output {
    let e = normal_entry(FAST_VOLUME);
    let pw = password_file(dir, &password_bytes(&e, "password"));
    run(tcvault()
        .arg("decrypt")
        .arg(volume)
        .args(unlock_args(&e, &pw, str_field(&e, "prf")))
        .arg("-o")
        .arg(out)
        .args(extra))
}

/// Plaintext must not become readable by other users: the output is created with mode 0600.
#[test]
fn decrypt_output_is_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let out_path = dir.path().join("data.bin");
    let out = decrypt_fast_volume_to(&dir, &volume_path(FAST_VOLUME), &out_path, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = fs::metadata(&out_path)
        .expect("output exists")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "output mode {mode:o} lets others read the plaintext"
    );
}

/// The temporary `.NAME.tcvault-partial` file has a predictable name; a symlink planted there
/// must not redirect the plaintext into (and truncate) another file.
#[test]
fn decrypt_does_not_follow_a_planted_partial_symlink() {
    let dir = temp_dir();
    let victim = write_file(&dir, "victim", b"must stay as it is");
    std::os::unix::fs::symlink(&victim, dir.path().join(".data.bin.tcvault-partial"))
        .expect("plant symlink");
    let out_path = dir.path().join("data.bin");
    decrypt_fast_volume_to(&dir, &volume_path(FAST_VOLUME), &out_path, &[]);
    assert_eq!(
        fs::read(&victim).expect("victim still readable"),
        b"must stay as it is",
        "the plaintext went through the planted symlink"
    );
}

/// An existing output that is not a regular file (FIFO, character device such as /dev/null)
/// must be written to (or refused), never replaced by renaming a regular file over it.
#[test]
fn decrypt_never_replaces_a_special_file() {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let dir = temp_dir();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success(), "mkfifo failed");
    // A non-blocking reader keeps the FIFO open, so a writer neither blocks on open nor (the data
    // area is 36 KiB, less than a pipe's 64 KiB) on write.
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open FIFO for reading");
    let out = decrypt_fast_volume_to(&dir, &volume_path(FAST_VOLUME), &fifo, &["--force"]);
    let kind = fs::symlink_metadata(&fifo)
        .expect("FIFO path exists")
        .file_type();
    assert!(kind.is_fifo(), "the FIFO was replaced by {kind:?}");
    if out.status.success() {
        let mut data = Vec::new();
        let _ = reader.read_to_end(&mut data);
        assert_eq!(
            data.len() as u64,
            expected_layout(&normal_entry(FAST_VOLUME)).1
        );
    } else {
        assert_error(&out, 4, "");
    }
}

/// `-o` naming the volume itself must be refused even with `--force`.
#[test]
fn decrypt_refuses_to_overwrite_its_own_input() {
    let dir = temp_dir();
    let original = fs::read(volume_path(FAST_VOLUME)).expect("reference volume is readable");
    let vol = write_file(&dir, "volume.hc", &original);
    let out = decrypt_fast_volume_to(&dir, &vol, &vol, &["--force"]);
    assert!(
        !out.status.success(),
        "decrypting a volume onto itself must fail"
    );
    assert!(
        fs::read(&vol).expect("volume still readable") == original,
        "the volume was overwritten"
    );
}

/// build.rs writes a page per command at every level, beside the binaries, for both binaries;
/// the server's page has its own exit statuses, not tcvault's; and the server describes itself
/// as the server.
#[test]
#[cfg(feature = "escrow-server")]
fn man_pages_for_every_command_of_both_binaries() {
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_tcvault"));
    let man = bin.parent().expect("target dir").join("man");
    let page = |name: &str| {
        std::fs::read_to_string(man.join(format!("{name}.1")))
            .unwrap_or_else(|e| panic!("{name}.1: {e}"))
    };
    for sub in [
        "search",
        "show",
        "request-deletion",
        "deletions",
        "approve",
        "reject",
        "export",
        "import",
        "keygen",
    ] {
        let p = page(&format!("tcvault-escrow-{sub}"));
        assert!(p.contains(".SH \"EXIT STATUS\""), "tcvault-escrow-{sub}");
    }
    assert!(page("tcvault-escrow-search").contains("EXAMPLES"));
    let server = page("tcvault-escrowd");
    for section in ["CONFIGURATION", "AUDIT", "EXIT STATUS", "EXAMPLES"] {
        assert!(server.contains(&format!(".SH \"{section}\"")), "{section}");
    }
    assert!(
        !server.contains("The volume opened but is damaged"),
        "tcvault's exit statuses in the server's page"
    );
    for sub in ["serve", "init", "user-add", "audit-verify"] {
        page(&format!("tcvault-escrowd-{sub}"));
    }
    let help = assert_cmd::Command::cargo_bin("tcvault-escrowd")
        .expect("server binary")
        .arg("--help")
        .output()
        .expect("run");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("key escrow server"), "{help}");
}

/// `-q` leaves out the reports of what was done (errors stay); `-v` says which header opened
/// and how; the two together are a usage error.
#[test]
fn quiet_and_verbose() {
    let dir = temp_dir();
    let pw = password_file(&dir, b"quiet and verbose password");
    let vol = dir.path().join("q.hc");
    let create = |quiet: bool, vol: &Path| {
        let mut c = tcvault();
        if quiet {
            c.arg("-q");
        }
        c.args([
            "create", "--quick", "--size", "4M", "--pim", "1", "--escrow", "no",
        ])
        .arg("--password-file")
        .arg(&pw)
        .arg(vol)
        .output()
        .expect("run create")
    };
    let out = create(true, &vol);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "-q create said: {out:?}");
    let loud = dir.path().join("loud.hc");
    let out = create(false, &loud);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Created"),
        "{out:?}"
    );

    let out = tcvault()
        .args(["info", "-v", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(&vol)
        .output()
        .expect("run info");
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("opened with its primary header: VeraCrypt, HMAC-SHA-512, AES")
            && err.contains("key search"),
        "-v: {err}"
    );

    let wrong = password_file(&dir, b"not the password");
    let out = tcvault()
        .args([
            "-q",
            "info",
            "--pim",
            "1",
            "--prf",
            "sha512",
            "--password-file",
        ])
        .arg(&wrong)
        .arg(&vol)
        .output()
        .expect("run info");
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("tcvault: error:"),
        "-q hid the error: {out:?}"
    );

    let out = tcvault()
        .args(["-q", "-v", "info"])
        .arg(&vol)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
