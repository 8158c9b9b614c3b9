//! Cross-check of `tcvault` against an independent implementation.
//!
//! `tests/independent_check.py` opens the reference volumes with code that shares nothing with
//! tcvault (Python's `hashlib.pbkdf2_hmac`, the `cryptography` package's AES-XTS, `zlib.crc32`
//! and its own keyfile pool), checks magic, CRCs, layout and the data patterns itself, and prints
//! one JSON line per header it opened. This test runs it and then asks
//! `tcvault info --json --show-keys` for the same header (`--hidden` for a hidden header,
//! `--backup-header` for an embedded backup), comparing master key halves and header fields.
//!
//! Which headers are expected comes from `testvolumes/manifest.json`: every AES volume with PRF
//! sha512 or sha256 (primary and embedded backup header; for a hidden volume the hidden header
//! and its embedded backup) and the header slots of their `.backup` files.
//!
//! The test needs `python3` with `cryptography`. Without them it is skipped with a message,
//! except when the `CI` environment variable is set: then it fails.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command as StdCommand;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::{
    entry, in_ci, keyfiles, manifest_entries, password_bytes, password_file, run_json, str_field,
    tcvault, temp_dir, u64_field, unlock_args, volume_path,
};
use serde_json::Value;

/// PRFs the independent implementation covers (those `hashlib` has).
const PRFS: [&str; 2] = ["sha512", "sha256"];

/// Why the independent check cannot run here, if it cannot.
fn python_unavailable(root: &Path) -> Option<String> {
    match StdCommand::new("python3")
        .args(["-c", "import cryptography, hashlib, zlib"])
        .current_dir(root)
        .output()
    {
        Err(e) => Some(format!("python3 cannot be run: {e}")),
        Ok(o) if !o.status.success() => Some(format!(
            "python3 lacks the `cryptography` package (python3 -m pip install cryptography): {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("no message")
        )),
        Ok(_) => None,
    }
}

/// Whether a manifest volume entry is one the independent implementation handles.
fn covered(e: &Value) -> bool {
    ["normal", "outer", "hidden"].contains(&e["type"].as_str().unwrap_or(""))
        && e["cipher"] == "AES"
        && PRFS.contains(&e["prf"].as_str().unwrap_or(""))
}

/// The (file, slot) pairs the manifest says the independent check must report.
fn expected_headers() -> BTreeSet<(String, String)> {
    let entries = manifest_entries();
    let mut want = BTreeSet::new();
    for e in entries.iter().filter(|e| covered(e)) {
        let file = str_field(e, "file").to_string();
        let slots = if e["type"] == "hidden" {
            ["hidden", "backup-hidden"]
        } else {
            ["normal", "backup-normal"]
        };
        for slot in slots {
            want.insert((file.clone(), slot.to_string()));
        }
    }
    for b in entries.iter().filter(|e| e["type"] == "backup") {
        let of = str_field(b, "of_volume");
        for v in entries.iter().filter(|v| v["file"] == of && covered(v)) {
            let slot = if v["type"] == "hidden" {
                if b.get("hidden_password").is_none() {
                    continue;
                }
                "hidden"
            } else {
                "normal"
            };
            want.insert((str_field(b, "file").to_string(), slot.to_string()));
        }
    }
    want
}

/// Runs `tcvault info --json --show-keys` for the header `line` describes and returns the
/// differences from what the independent implementation found.
fn compare_with_tcvault(line: &Value) -> Vec<String> {
    let file = str_field(line, "file");
    let slot = str_field(line, "slot");
    let prf = str_field(line, "prf");
    let backup_file = line["host_kind"] == "header-backup";
    let (cred_entry, pw_field) = if backup_file {
        let field = if slot == "hidden" {
            "hidden_password"
        } else {
            "password"
        };
        (entry(file, "backup"), field)
    } else {
        (entry(file, str_field(line, "type")), "password")
    };
    let mut problems = Vec::new();
    let what = format!("{file} {slot}");
    if line["pim"].as_u64().unwrap_or(0) != cred_entry["pim"].as_u64().unwrap_or(0)
        || line["keyfiles"].as_array().map(Vec::len).unwrap_or(0) != keyfiles(&cred_entry).len()
    {
        problems.push(format!(
            "{what}: the script used other credentials than the manifest"
        ));
    }

    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&cred_entry, pw_field));
    let mut cmd = tcvault();
    cmd.arg("info")
        .arg(volume_path(file))
        .args(["--json", "--show-keys"])
        .args(unlock_args(&cred_entry, &pw, prf));
    if slot == "hidden" || slot == "backup-hidden" {
        cmd.arg("--hidden");
    }
    if slot.starts_with("backup-") {
        cmd.arg("--backup-header");
    }
    let got = run_json(&mut cmd);

    let want_type = if line["type"] == "hidden" {
        "hidden"
    } else {
        "normal"
    };
    let mut check = |key: &str, want: &Value| {
        if &got[key] != want {
            problems.push(format!(
                "{what}: {key}: tcvault says {}, the independent check {want}",
                got[key]
            ));
        }
    };
    check("header_slot", &Value::from(slot));
    check("type", &Value::from(want_type));
    check("host_kind", &line["host_kind"]);
    check("prf", &line["prf"]);
    check("cipher", &Value::from("AES"));
    for key in [
        "master_key_primary_hex",
        "master_key_secondary_hex",
        "iterations",
        "header_version",
        "sector_size",
        "flags",
        "volume_size",
        "hidden_volume_size",
        "encrypted_area_start",
        "encrypted_area_length",
    ] {
        check(key, &line[key]);
    }
    let want_version = format!(
        "{:#06x}",
        line["min_program_version"].as_u64().unwrap_or(u64::MAX)
    );
    if got["min_program_version"].as_str() != Some(want_version.as_str()) {
        problems.push(format!("{what}: min_program_version differs"));
    }
    problems
}

#[test]
fn master_keys_match_an_independent_implementation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(reason) = python_unavailable(root) {
        assert!(
            !in_ci(),
            "CI is set, so the independent check must run: {reason}"
        );
        eprintln!("SKIPPED master_keys_match_an_independent_implementation: {reason}");
        return;
    }

    let out = StdCommand::new("python3")
        .args(["tests/independent_check.py", "testvolumes"])
        .current_dir(root)
        .output()
        .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "tests/independent_check.py found mismatches (exit {:?}):\n{stderr}",
        out.status.code()
    );
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .expect("the script prints UTF-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();

    let reported: BTreeSet<(String, String)> = lines
        .iter()
        .map(|l| {
            (
                str_field(l, "file").to_string(),
                str_field(l, "slot").to_string(),
            )
        })
        .collect();
    assert_eq!(reported.len(), lines.len(), "each header is reported once");
    assert_eq!(
        reported,
        expected_headers(),
        "the script must report exactly the headers the manifest implies"
    );
    let patterns: u64 = lines.iter().map(|l| u64_field(l, "patterns_checked")).sum();
    assert!(patterns > 0, "the script checked data patterns");

    // Two tcvault processes at a time: each unlock runs the real PBKDF2.
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(2));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                while let Some(line) = lines.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let p = compare_with_tcvault(line);
                    problems
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .extend(p);
                }
            });
        }
    });
    let problems = problems
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    assert!(
        problems.is_empty(),
        "tcvault disagrees with the independent implementation:\n{}",
        problems.join("\n")
    );
    eprintln!(
        "{} headers agree with the independent implementation",
        lines.len()
    );
}
