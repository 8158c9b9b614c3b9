//! The password prompt driven through a pseudo-terminal (`tests/common/pty_drive.py`): the
//! volume is checked before the prompt, a wrong password is asked for again up to 3 times,
//! Backspace edits (whole UTF-8 characters), and Ctrl-C at the prompt or during the search
//! exits 130 with the terminal's echo back on; the search says what it is trying; `create`
//! asks for a filesystem when none is given.

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
            "create",
            v,
            "--size",
            "4M",
            "--quick",
            "--pim",
            "1",
            "--escrow",
            "no",
            "--filesystem",
            "none",
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
        &[
            "create",
            o,
            "--size",
            "4M",
            "--quick",
            "--escrow",
            "no",
            "--filesystem",
            "none",
        ],
    );
    assert_eq!(status(&r), 4, "three mismatches: {r}");
    assert!(
        !other.exists(),
        "a volume was made without a confirmed password"
    );
}

/// While a wrong password is checked, the terminal is told which format and PRF the search is
/// on and how far it has got; under `-q` nothing is drawn.
#[test]
fn the_search_names_what_it_tries_and_q_keeps_it_quiet() {
    let dir = temp_dir();
    let vol = dir.path().join("v.hc");
    create_quick("4M", &password_file(&dir, PASSWORD), &vol);
    let v = vol.to_str().expect("UTF-8 path");
    let steps = json!([
        ["expect", "Password for"],
        ["send", "wrong\r"],
        ["expect", "Checking the password: "],
        ["expect", "key derivations)"],
        ["send", "\u{3}"]
    ]);
    let r = drive(&steps, &["info", v]);
    assert_eq!(status(&r), 130, "{r}");
    let output = r["output"].as_str().expect("output");
    assert!(
        output.contains("Checking the password: VeraCrypt HMAC-")
            || output.contains("Checking the password: TrueCrypt HMAC-"),
        "names the format and PRF: {output}"
    );

    let pw = String::from_utf8(PASSWORD.to_vec()).expect("UTF-8");
    let steps = json!([["expect", "Password for"], ["send", format!("{pw}\r")]]);
    let r = drive(&steps, &["-q", "info", v, "--pim", "1"]);
    assert_eq!(status(&r), 0, "{r}");
    let output = r["output"].as_str().expect("output");
    assert!(!output.contains("Checking"), "-q drew progress: {output}");
    assert!(
        output.contains("HMAC-SHA-512"),
        "info's own output stays: {output}"
    );
}

/// `create` without `--filesystem` on a terminal asks which one, says what it offers, asks
/// again after an answer it does not know, and makes what was chosen; an empty answer takes
/// the offer (ext4, where mkfs.ext4 is installed), and the volume then holds ext4.
#[test]
fn create_asks_for_a_filesystem_on_a_terminal() {
    let dir = temp_dir();
    let vol = dir.path().join("asked.hc");
    let v = vol.to_str().expect("UTF-8 path");
    let pw = password_file(&dir, PASSWORD);
    let p = pw.to_str().expect("UTF-8 path");
    let steps = json!([
        ["expect", "Filesystem for the new volume"],
        ["expect", "none ["],
        ["send", "zfs\r"],
        ["expect", "zfs: not a filesystem tcvault makes"],
        ["expect", "none ["],
        ["send", "none\r"],
    ]);
    let create = [
        "create",
        v,
        "--size",
        "8M",
        "--quick",
        "--pim",
        "1",
        "--escrow",
        "no",
        "--password-file",
        p,
    ];
    let r = drive(&steps, &create);
    assert_eq!(status(&r), 0, "{r}");
    assert!(vol.exists(), "no volume made");

    if !super::common::can_mount() {
        return;
    }
    std::fs::remove_file(&vol).expect("remove the first volume");
    let steps = json!([["expect", "none [ext4]: "], ["send", "\r"]]);
    let r = drive(&steps, &create);
    assert_eq!(status(&r), 0, "{r}");
    let output = r["output"].as_str().expect("output");
    assert!(output.contains("Formatted it as ext4"), "{output}");
    let image = dir.path().join("asked.img");
    let dec = Command::new(tcvault().get_program())
        .args(["decrypt", v, "--pim", "1", "--password-file", p, "-o"])
        .arg(&image)
        .output()
        .expect("run decrypt");
    assert!(dec.status.success(), "{dec:?}");
    let data = std::fs::read(&image).expect("read the image");
    assert_eq!(&data[1080..1082], &[0x53, 0xef], "no ext4 superblock magic");
}
