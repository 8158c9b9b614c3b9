//! The README's main-job command, `scripts/demo.sh`, runs the whole story end to end with the
//! binaries of this build: escrow server, authority keys, create with escrow, mount and write
//! (as root with FUSE), forgotten password, `tcvault -R` through a 1 KB header backup,
//! `restore-header`, and the data read back. It must end with identical data.

use std::path::Path;
use std::process::Command;

#[test]
fn readme_story_runs_end_to_end() {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tcvault"))
        .parent()
        .expect("the binary has a folder");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("TCVAULT_BIN_DIR", bin_dir)
        .output()
        .expect("run scripts/demo.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("decrypted data area: identical"),
        "{stdout}"
    );
    assert!(stderr.contains("escrow number 1"), "{stderr}");
    assert!(stdout.trim_end().ends_with("Done."), "{stdout}");
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if root && Path::new("/dev/fuse").exists() {
        assert!(
            stdout.contains("data.bin read back through the mount: identical"),
            "{stdout}"
        );
        assert!(
            stderr.contains("already in escrow with number 1"),
            "the mount's escrow hook: {stderr}"
        );
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs as root with FUSE"
        );
    }
}
