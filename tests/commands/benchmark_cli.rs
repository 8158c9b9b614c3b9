//! `tcvault benchmark` end to end: the in-memory tables (text and JSON, filters, PIM), the
//! `--device` measurements on a file, the confirmation that `--write` demands, and the refusal
//! to write to a mounted device.

use std::fs;
use std::os::unix::fs::FileTypeExt;

use assert_cmd::Command;
use predicates::prelude::*;
use serde_json::Value;

fn tcvault() -> Command {
    Command::cargo_bin("tcvault").expect("cargo builds the tcvault binary for integration tests")
}

fn json_of(out: &[u8]) -> Value {
    serde_json::from_slice(out).expect("benchmark --json prints one JSON object")
}

#[test]
fn help_documents_the_options() {
    tcvault()
        .args(["benchmark", "--help"])
        .assert()
        .success()
        .stdout(predicate::str::contains("--device"))
        .stdout(predicate::str::contains("--json"))
        .stdout(predicate::str::contains("--write"))
        .stdout(predicate::str::contains("--queue-depth"));
}

#[test]
fn cipher_and_prf_tables_as_json() {
    let out = tcvault()
        .args([
            "benchmark",
            "--json",
            "--cipher",
            "aes",
            "--cipher",
            "serpent-twofish-aes",
            "--prf",
            "sha256",
            "--pim",
            "1",
            "--buffer",
            "1M",
            "--min-time",
            "0.05",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out.stdout);
    assert_eq!(v["buffer_bytes"], 1 << 20);
    let ciphers = v["ciphers"].as_array().expect("ciphers array");
    let names: Vec<&str> = ciphers
        .iter()
        .map(|c| c["chain"].as_str().expect("chain name"))
        .collect();
    assert_eq!(names, ["AES", "Serpent-Twofish-AES"]);
    for c in ciphers {
        for k in [
            "encrypt_1_thread_bytes_per_sec",
            "decrypt_1_thread_bytes_per_sec",
            "encrypt_all_threads_bytes_per_sec",
            "decrypt_all_threads_bytes_per_sec",
        ] {
            assert!(c[k].as_f64().expect("a number") > 0.0, "{k} of {c}");
        }
    }
    assert!(v["memcpy_bytes_per_sec"].as_f64().expect("a number") > 0.0);
    let prfs = v["prfs"].as_array().expect("prfs array");
    assert_eq!(prfs.len(), 2, "default PIM and PIM 1: {prfs:?}");
    assert_eq!(prfs[0]["prf"], "sha256");
    assert_eq!(prfs[0]["pim"], 0);
    assert_eq!(prfs[0]["cost"], "500000 iterations");
    assert_eq!(prfs[1]["pim"], 1);
    assert_eq!(prfs[1]["cost"], "16000 iterations");
    let t0 = prfs[0]["first_block_seconds"].as_f64().expect("seconds");
    let t1 = prfs[1]["first_block_seconds"].as_f64().expect("seconds");
    assert!(t0 > 0.0 && t1 > 0.0);
    // 500,000 iterations cannot be cheaper than 16,000.
    assert!(t0 > t1, "PIM 0 took {t0} s, PIM 1 {t1} s");
}

#[test]
fn text_table_lists_only_the_selected_chain() {
    let out = tcvault()
        .args([
            "benchmark",
            "--no-prf",
            "--cipher",
            "twofish",
            "--buffer",
            "256K",
            "--min-time",
            "0.02",
        ])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 table");
    let rows: Vec<&str> = text
        .lines()
        .skip_while(|l| !l.starts_with("Chain"))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].starts_with("Twofish "), "{text}");
    assert_eq!(rows[0].matches("B/s").count(), 4, "{text}");
    assert!(!text.contains("Key derivation"), "{text}");
}

#[test]
fn bad_sizes_are_usage_errors() {
    tcvault()
        .args(["benchmark", "--buffer", "12Q"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("size suffix"));
    tcvault()
        .args(["benchmark", "--min-time", "-1", "--no-prf"])
        .assert()
        .code(2);
}

fn device_file(len: usize) -> tempfile::NamedTempFile {
    // Inside the target directory rather than /tmp, which may be a tmpfs without O_DIRECT.
    let dir = std::env::var("CARGO_TARGET_TMPDIR").unwrap_or_else(|_| ".".into());
    let f = tempfile::NamedTempFile::new_in(dir).expect("temporary file");
    let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    fs::write(f.path(), &data).expect("fill the file");
    f
}

#[test]
fn device_reads_beside_plain_reads() {
    let f = device_file(8 << 20);
    let before = fs::read(f.path()).expect("read back");
    let out = tcvault()
        .arg("benchmark")
        .arg("--device")
        .arg(f.path())
        .args(["--json", "--duration", "0.2", "--queue-depth", "1,2"])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out.stdout);
    assert_eq!(v["chain"], "AES");
    assert_eq!(v["size_bytes"], 8 << 20);
    let rows = v["results"].as_array().expect("results");
    assert_eq!(
        rows.len(),
        4,
        "sequential and random at two depths: {rows:?}"
    );
    for r in rows {
        assert_eq!(r["op"], "read");
        assert!(r["plain_bytes_per_sec"].as_f64().expect("number") > 0.0);
        assert!(r["encrypted_bytes_per_sec"].as_f64().expect("number") > 0.0);
    }
    assert_eq!(rows[0]["pattern"], "sequential");
    assert_eq!(rows[0]["request_bytes"], 1 << 20);
    assert_eq!(rows[2]["pattern"], "random");
    assert_eq!(rows[2]["request_bytes"], 4096);
    assert_eq!(rows[3]["queue_depth"], 2);
    assert_eq!(fs::read(f.path()).expect("read back"), before, "reads only");
}

#[test]
fn write_needs_confirmation() {
    let f = device_file(4 << 20);
    let before = fs::read(f.path()).expect("read back");
    tcvault()
        .arg("benchmark")
        .arg("--device")
        .arg(f.path())
        .args(["--write", "--duration", "0.1", "--queue-depth", "1"])
        .write_stdin("no\n")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("Type 'yes'"))
        .stderr(predicate::str::contains("nothing was written"));
    assert_eq!(fs::read(f.path()).expect("read back"), before);

    let out = tcvault()
        .arg("benchmark")
        .arg("--device")
        .arg(f.path())
        .args([
            "--write",
            "--json",
            "--duration",
            "0.1",
            "--queue-depth",
            "1",
        ])
        .write_stdin("yes\n")
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_of(&out.stdout);
    let rows = v["results"].as_array().expect("results");
    assert!(rows.iter().any(|r| r["op"] == "write"));
    assert_ne!(
        fs::read(f.path()).expect("read back"),
        before,
        "--write wrote"
    );
}

#[test]
fn write_refuses_a_mounted_device() {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("/proc/self/mounts");
    let dev = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|s| {
            s.starts_with("/dev/") && fs::metadata(s).is_ok_and(|m| m.file_type().is_block_device())
        });
    let Some(dev) = dev else {
        assert!(
            !crate::common::in_ci(),
            "no mounted block device to test the refusal with"
        );
        eprintln!("skipped: no mounted block device here");
        return;
    };
    tcvault()
        .args(["benchmark", "--device", dev, "--write", "--yes"])
        .assert()
        .code(4)
        .stderr(predicate::str::contains("in use"));
}
