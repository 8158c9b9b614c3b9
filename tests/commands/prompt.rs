//! The password prompt driven through a pseudo-terminal (`tests/common/pty_drive.py`): the
//! volume is checked before the prompt, a wrong password is asked for again up to 3 times,
//! Backspace edits (whole UTF-8 characters), and Ctrl-C at the prompt or during the search
//! exits 130 with the terminal's echo back on.

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::common::{create_quick, password_file, tcvault, temp_dir};

const PASSWORD: &[u8] = b"prompt-test password";

/// Runs `tcvault ARGS` on a new terminal through `steps`; the driver's JSON report.
fn drive(steps: &Value, args: &[&str]) -> Value {
    let exe = tcvault().get_program().to_owned();
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/common/pty_drive.py");
    let out = Command::new("python3")
        .arg(driver)
        .arg(steps.to_string())
        .arg(exe)
        .args(args)
        .output()
        .expect("run python3 (scripts/test.sh installs it)");
    assert!(out.status.success(), "the pty driver failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("the driver prints JSON")
}

fn status(r: &Value) -> i64 {
    assert_eq!(r["timed_out_at"], Value::Null, "a step timed out: {r}");
    r["status"].as_i64().expect("status")
}

#[test]
fn wrong_passwords_are_asked_again_and_backspace_edits() {
    let dir = temp_dir();
    let vol = dir.path().join("v.hc");
    create_quick("4M", &password_file(&dir, PASSWORD), &vol);
    let v = vol.to_str().expect("UTF-8 path");
    let pw = String::from_utf8(PASSWORD.to_vec()).expect("UTF-8");
    // Two wrong, then the right one typed with corrections (an "é" is two bytes).
    let steps = json!([
        ["expect", "Password for"],
        ["send", "wrong\r"],
        ["expect", "try again (2 of 3)"],
        ["expect", "Password for"],
        ["send", "still wrong\r"],
        ["expect", "try again (3 of 3)"],
        ["expect", "Password for"],
        ["send", format!("xy\u{7f}\u{7f}\u{e9}\u{7f}{pw}\r")],
    ]);
    let r = drive(&steps, &["info", v, "--prf", "sha512", "--pim", "1"]);
    assert_eq!(status(&r), 0, "{r}");
    let output = r["output"].as_str().expect("output");
    assert!(
        output.contains("HMAC-SHA-512"),
        "info after the third try: {output}"
    );
    assert!(!output.contains(&pw), "the password was echoed: {output}");
    assert_eq!(r["echo"], true, "echo left off");

    let steps = json!([
        ["expect", "Password for"],
        ["send", "a\r"],
        ["expect", "Password for"],
        ["send", "b\r"],
        ["expect", "Password for"],
        ["send", "c\r"],
    ]);
    let r = drive(&steps, &["info", v, "--prf", "sha512", "--pim", "1"]);
    assert_eq!(status(&r), 3, "three wrong passwords: {r}");
    let output = r["output"].as_str().expect("output");
    assert_eq!(output.matches("Password for").count(), 3, "{output}");
    assert!(output.contains("tcvault: error:"), "{output}");
}

#[test]
fn ctrl_c_exits_130_with_the_terminal_restored() {
    let dir = temp_dir();
    let vol = dir.path().join("v.hc");
    create_quick("4M", &password_file(&dir, PASSWORD), &vol);
    let v = vol.to_str().expect("UTF-8 path");
    // At the prompt (echo is off then).
    let r = drive(
        &json!([["expect", "Password for"], ["send", "abc\u{3}"]]),
        &["info", v],
    );
    assert_eq!(status(&r), 130, "{r}");
    assert_eq!(r["echo"], true, "Ctrl-C at the prompt left echo off: {r}");
    // During the search: a wrong password with every PRF to try takes seconds.
    let r = drive(
        &json!([
            ["expect", "Password for"],
            ["send", "wrong\r"],
            ["expect", "Checking"],
            ["sleep", 0.3],
            ["send", "\u{3}"]
        ]),
        &["info", v],
    );
    assert_eq!(status(&r), 130, "Ctrl-C during the search: {r}");
    assert_eq!(r["echo"], true);
}

#[test]
fn a_missing_volume_is_said_before_the_prompt() {
    let dir = temp_dir();
    let missing = dir.path().join("missing.hc");
    let m = missing.to_str().expect("UTF-8 path");
    let out = dir.path().join("out");
    let o = out.to_str().expect("UTF-8 path");
    for cmd in ["info", "decrypt", "change-password", "backup-header"] {
        let mut args = vec![cmd, m];
        match cmd {
            "backup-header" => args.push(o),
            "decrypt" => args.extend(["-o", o]),
            _ => {}
        }
        let r = drive(&json!([]), &args);
        assert_eq!(status(&r), 4, "{cmd}: {r}");
        let output = r["output"].as_str().expect("output");
        assert!(!output.contains("Password"), "{cmd} asked first: {output}");
        assert!(output.contains("no such file"), "{cmd}: {output}");
    }
}

/// `create` asks for the new password twice, again when the two differ (up to 3 times), and
/// warns about a short one; the volume then opens with it.
#[test]
fn create_asks_again_on_a_mismatch_and_warns_about_a_short_password() {
    let dir = temp_dir();
    let vol = dir.path().join("new.hc");
    let v = vol.to_str().expect("UTF-8 path");
    let steps = json!([
        ["expect", "password for"],
        ["send", "short\r"],
        ["expect", "Repeat"],
        ["send", "shirt\r"],
        ["expect", "differ; again (2 of 3)"],
        ["expect", "password for"],
        ["send", "short\r"],
        ["expect", "Repeat"],
        ["send", "short\r"],
    ]);
    let r = drive(
        &steps,
        &[
            "create", v, "--size", "4M", "--quick", "--pim", "1", "--escrow", "no",
        ],
    );
    assert_eq!(status(&r), 0, "{r}");
    let output = r["output"].as_str().expect("output");
    assert!(
        output.contains("has 5 characters") && output.contains("20 or more"),
        "{output}"
    );
    let pw = password_file(&dir, b"short");
    let info = Command::new(tcvault().get_program())
        .args([
            "info",
            v,
            "--pim",
            "1",
            "--prf",
            "sha512",
            "--password-file",
        ])
        .arg(pw)
        .output()
        .expect("run info");
    assert!(
        info.status.success(),
        "the new volume does not open: {info:?}"
    );

    let steps = json!([
        ["expect", "password for"],
        ["send", "a\r"],
        ["expect", "Repeat"],
        ["send", "b\r"],
        ["expect", "password for"],
        ["send", "a\r"],
        ["expect", "Repeat"],
        ["send", "b\r"],
        ["expect", "password for"],
        ["send", "a\r"],
        ["expect", "Repeat"],
        ["send", "b\r"],
    ]);
    let other = dir.path().join("other.hc");
    let o = other.to_str().expect("UTF-8 path");
    let r = drive(
        &steps,
        &["create", o, "--size", "4M", "--quick", "--escrow", "no"],
    );
    assert_eq!(status(&r), 4, "three mismatches: {r}");
    assert!(
        !other.exists(),
        "a volume was made without a confirmed password"
    );
}
