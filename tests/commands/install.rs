//! `scripts/install.sh` into a temporary prefix: the binary, man pages `man -M` finds, the
//! completions each shell loads, and systemd units that `systemd-analyze verify` accepts (with
//! their man page found through MANPATH).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::common::{in_ci, tcvault, temp_dir};

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn built_dir() -> PathBuf {
    tcvault()
        .get_program()
        .to_owned()
        .into_string()
        .map(PathBuf::from)
        .expect("UTF-8 binary path")
        .parent()
        .expect("the binary's directory")
        .to_path_buf()
}

fn install(prefix: &Path, destdir: Option<&Path>) {
    let mut cmd = Command::new("scripts/install.sh");
    cmd.arg("--from")
        .arg(built_dir())
        .arg("--prefix")
        .arg(prefix);
    if let Some(d) = destdir {
        cmd.arg("--destdir").arg(d);
    }
    let out = cmd.output().expect("run scripts/install.sh");
    assert!(out.status.success(), "install.sh failed: {out:?}");
}

#[test]
fn install_into_a_prefix_gives_man_pages_completions_and_units() {
    let dir = temp_dir();
    let prefix = dir.path().join("usr");
    install(&prefix, None);
    let bin = prefix.join("bin/tcvault");
    let v = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("run it");
    assert!(v.status.success() && String::from_utf8_lossy(&v.stdout).contains("tcvault"));

    let man = prefix.join("share/man");
    if have("man") {
        for page in [
            "tcvault",
            "tcvault-mount",
            "tcvault-create",
            "tcvault-restore",
        ] {
            let out = Command::new("man")
                .arg("-M")
                .arg(&man)
                .args(["-w", page])
                .output()
                .expect("run man");
            assert!(out.status.success(), "man -M finds no {page}: {out:?}");
            let found = String::from_utf8_lossy(&out.stdout);
            assert!(
                found.trim().starts_with(man.to_str().expect("UTF-8")),
                "{found}"
            );
        }
    } else {
        assert!(!in_ci(), "CI must have man (scripts/setup.d/install.sh)");
        eprintln!("man is missing: only the files are checked");
    }
    assert!(man.join("man1/tcvault-mount.1").is_file());

    let bash = prefix.join("share/bash-completion/completions/tcvault");
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source '{}' && complete -p tcvault",
            bash.display()
        ))
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "bash does not load the completion: {out:?}"
    );
    let zsh = std::fs::read_to_string(prefix.join("share/zsh/site-functions/_tcvault"))
        .expect("zsh completion");
    assert!(
        zsh.starts_with("#compdef tcvault"),
        "{}",
        &zsh[..40.min(zsh.len())]
    );
    let fish = std::fs::read_to_string(prefix.join("share/fish/vendor_completions.d/tcvault.fish"))
        .expect("fish completion");
    assert!(fish.contains("complete -c tcvault"));

    let units = prefix.join("lib/systemd/system");
    for unit in ["tcvault.service", "tcvault@.service"] {
        let text = std::fs::read_to_string(units.join(unit)).expect("unit installed");
        assert!(!text.contains("@BINDIR@"), "{unit}: @BINDIR@ left");
        assert!(
            text.contains(&format!("ExecStart={}", bin.display())),
            "{unit}: {text}"
        );
    }
    assert!(prefix.join("share/doc/tcvault/tab.example").is_file());
    if !have("systemd-analyze") {
        assert!(
            !in_ci(),
            "CI must have systemd-analyze (scripts/setup.d/install.sh)"
        );
        eprintln!("systemd-analyze is missing: the units are not verified");
        return;
    }
    // An instance of the template is what systemd would run.
    std::os::unix::fs::symlink("tcvault@.service", units.join("tcvault@home.service"))
        .expect("instance link");
    for unit in ["tcvault.service", "tcvault@home.service"] {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(units.join(unit))
            .env("MANPATH", &man)
            .output()
            .expect("run systemd-analyze");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "systemd-analyze verify {unit}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--destdir` puts everything under it while the units name the final prefix; bad arguments
/// exit 2 with a message.
#[test]
fn install_with_destdir_and_bad_arguments() {
    let dir = temp_dir();
    let dest = dir.path().join("stage");
    install(Path::new("/opt/tcv"), Some(&dest));
    assert!(dest.join("opt/tcv/bin/tcvault").is_file());
    let unit = std::fs::read_to_string(dest.join("opt/tcv/lib/systemd/system/tcvault.service"))
        .expect("unit staged");
    assert!(unit.contains("ExecStart=/opt/tcv/bin/tcvault "), "{unit}");
    assert!(!Path::new("/opt/tcv").exists(), "wrote outside --destdir");
    for bad in [&["--prefix", "relative"][..], &["--bogus"]] {
        let out = Command::new("scripts/install.sh")
            .args(bad)
            .arg("--from")
            .arg(built_dir())
            .output()
            .expect("run install.sh");
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
}

/// The main page's SYNOPSIS gives `-R` its two operands and names every command's page, and no
/// page is named that does not exist (no `tcvault-help`).
#[test]
fn main_man_page_names_only_pages_that_exist() {
    let man = built_dir().join("man");
    let page = std::fs::read_to_string(man.join("tcvault.1")).expect("tcvault.1 built");
    assert!(
        page.contains("\\fBtcvault \\-R\\fR \\fIADMIN TARGET\\fR"),
        "SYNOPSIS: -R operands"
    );
    assert!(!page.contains("[-R ]") && !page.contains("tcvault\\-help"));
    let mut named = 0;
    for part in page.split("\\fBtcvault\\-").skip(1) {
        let name = part.split("\\fR").next().expect("a name");
        assert!(
            man.join(format!("tcvault-{name}.1")).is_file(),
            "tcvault.1 names tcvault-{name}(1), which was not built"
        );
        named += 1;
    }
    assert!(named >= 12, "only {named} pages named");
}
