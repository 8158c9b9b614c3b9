//! `scripts/kill-test.sh` with a few dozen trials against the binaries of this build: `create`,
//! `change-password`, `restore-header` and the escrow restore `-R` killed at random moments
//! (and between their two header writes), each followed by the checks the script makes: the
//! volume opens with the old or the new password, its data are intact, and nothing is left
//! behind. The script's own default is hundreds of trials; `TCVAULT_KILL_TRIALS` sets the count
//! here.

use std::process::Command;

#[test]
fn kill_test_script() {
    let trials = std::env::var("TCVAULT_KILL_TRIALS").unwrap_or_else(|_| "32".to_owned());
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kill-test.sh"))
        .arg(&trials)
        .env("TCVAULT", env!("CARGO_BIN_EXE_tcvault"))
        .env("TCVAULT_ESCROWD", env!("CARGO_BIN_EXE_tcvault-escrowd"))
        .env("KILL_TEST_VERBOSE", "1")
        .output()
        .expect("run scripts/kill-test.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains(&format!("kill-test: {trials} trials")),
        "the script did not run its trials:\n{stdout}\n{stderr}"
    );
    assert!(
        out.status.success(),
        "kill test failed:\n{stdout}\n{stderr}"
    );
}
