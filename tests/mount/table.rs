//! The mount table: `mount --all` and `--entry`, `unmount --all --table` and `--entry`, from a
//! table in a temporary directory (`--table`), with a password file, a password asked through
//! `systemd-ask-password` (a stand-in on PATH, as a unit's process sees it: `INVOCATION_ID`
//! set, no terminal), a noauto entry and options; idempotent runs; a malformed table.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use super::common::{password_file, run, tcvault, temp_dir};
use super::{Cleanup, TEST_PASSWORD, TEST_PIM, formatted_volume, list, path_str};
use tcvault::mount::FsKind;

fn with_table(table: &Path, args: &[&str]) -> Output {
    run(tcvault().args(args).arg("--table").arg(table))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn mount_all_from_a_table_is_idempotent_and_unmounts_by_entry() {
    let Some(_g) = super::mount_env() else { return };
    let dir = temp_dir();
    let a = formatted_volume(&dir, "a.hc", 24 << 20, FsKind::Ext4);
    let b = formatted_volume(&dir, "b.hc", 24 << 20, FsKind::Ext4);
    let c = formatted_volume(&dir, "c.hc", 24 << 20, FsKind::Ext4);
    let _c = Cleanup(vec![a.clone(), b.clone(), c.clone()]);
    let pw = password_file(&dir, TEST_PASSWORD);
    // The stand-in prints the password, as systemd-ask-password does, and records its prompt.
    let bin = dir.path().join("bin");
    fs::create_dir(&bin).expect("bin dir");
    let asked = dir.path().join("asked");
    let ask = bin.join("systemd-ask-password");
    fs::write(
        &ask,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\ncat '{}'\n",
            asked.display(),
            pw.display()
        ),
    )
    .expect("write the stand-in");
    fs::set_permissions(&ask, fs::Permissions::from_mode(0o755)).expect("chmod");
    let (ma, mb, mc) = (
        dir.path().join("ma"),
        dir.path().join("m b"),
        dir.path().join("mc"),
    );
    let table = dir.path().join("tab");
    fs::write(
        &table,
        format!(
            "# test table\n\
             alpha {a} {ma} {pw} pim={TEST_PIM},prf=sha512\n\
             beta  {b} {mb} none pim={TEST_PIM},ro\n\
             gamma {c} {mc} {pw} noauto,pim={TEST_PIM}\n",
            a = a.display(),
            b = b.display(),
            c = c.display(),
            ma = ma.display(),
            mb = mb.display().to_string().replace(' ', "\\040"),
            mc = mc.display(),
            pw = pw.display(),
        ),
    )
    .expect("write the table");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mount_all = || {
        run(tcvault()
            .args(["mount", "--all", "--escrow", "no", "--table"])
            .arg(&table)
            .env("PATH", &path)
            .env("INVOCATION_ID", "0123456789abcdef"))
    };
    let out = mount_all();
    assert!(out.status.success(), "mount --all: {out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("alpha: ") && text.contains("beta: "),
        "{text}"
    );
    assert!(!text.contains("gamma"), "noauto entry mounted: {text}");
    assert!(tcvault::mount::fs::is_mountpoint(&ma) && tcvault::mount::fs::is_mountpoint(&mb));
    assert!(!tcvault::mount::fs::is_mountpoint(&mc));
    let prompt = fs::read_to_string(&asked).expect("systemd-ask-password was asked");
    assert!(
        prompt.contains(path_str(&b)),
        "the prompt names the volume: {prompt}"
    );
    let listed = list();
    let beta = listed
        .iter()
        .find(|e| e["volume"].as_str() == Some(path_str(&b)))
        .expect("beta listed");
    assert_eq!(beta["read_only"], true, "ro option: {beta}");

    // Again: nothing new, both reported as left alone.
    let out = mount_all();
    assert!(out.status.success(), "second mount --all: {out:?}");
    let text = stdout(&out);
    assert_eq!(text.matches("already mounted").count(), 2, "{text}");
    assert_eq!(list().len(), listed.len(), "a second run mounted more");

    // The noauto entry by name.
    let out = with_table(&table, &["mount", "--entry", "gamma", "--escrow", "no"]);
    assert!(out.status.success(), "mount --entry gamma: {out:?}");
    assert!(tcvault::mount::fs::is_mountpoint(&mc));

    let out = with_table(&table, &["unmount", "--entry", "alpha"]);
    assert!(
        out.status.success() && stdout(&out).contains("alpha: unmounted"),
        "{out:?}"
    );
    let out = with_table(&table, &["unmount", "--entry", "alpha"]);
    assert!(
        out.status.success() && stdout(&out).contains("alpha: not mounted"),
        "{out:?}"
    );
    let out = with_table(&table, &["unmount", "--all"]);
    assert!(out.status.success(), "unmount --all --table: {out:?}");
    let text = stdout(&out);
    assert!(
        text.contains("beta: unmounted") && text.contains("gamma: unmounted"),
        "{text}"
    );
    for m in [&ma, &mb, &mc] {
        assert!(
            !tcvault::mount::fs::is_mountpoint(m),
            "{} still mounted",
            m.display()
        );
    }

    let out = with_table(&table, &["mount", "--entry", "delta"]);
    assert_eq!(out.status.code(), Some(4), "unknown entry: {out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no entry named delta"));
}

#[test]
fn a_malformed_table_names_the_line() {
    let dir = temp_dir();
    let table = dir.path().join("tab");
    fs::write(
        &table,
        "# ok\nalpha /v.hc /mnt none\nbeta relative.hc /mnt none\n",
    )
    .expect("tab");
    let out = with_table(&table, &["mount", "--all"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", table.display())), "{err}");
    assert!(err.contains("not an absolute path"), "{err}");
    let missing = dir.path().join("none");
    let out = with_table(&missing, &["mount", "--all"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the mount table"));
}
