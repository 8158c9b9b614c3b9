//! User-mode mounts, run as real unprivileged users: `create --filesystem`, `mount`, `list` and
//! `unmount` without root (a FUSE filesystem driver on the decrypted FUSE file, no loop
//! device), and what one user may not do to another's volume and mount.
//!
//! The tests run as root and make two system users (`tcvault-test1`, `tcvault-test2`) with
//! `useradd` when they are missing; each command then runs as one of them through `runuser`,
//! with a state directory of its own (`XDG_RUNTIME_DIR`). The binary is copied into the test's
//! directory, which every user can enter, since the build directory may not be. Users need
//! read-write access to `/dev/fuse` (`scripts/setup.d/mount.sh` gives it where a container
//! made it root's alone) and `fuse2fs`.

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use super::common::{in_ci, tcvault, temp_dir};
use super::{mount_env, path_str, random_bytes, tcvault_loop_devices};

const PASSWORD: &[u8] = b"user-mode password";

/// An unprivileged user with a home for the test (mode 0700, theirs) and a runtime directory.
struct TestUser {
    name: &'static str,
    uid: u32,
    gid: u32,
    home: PathBuf,
    runtime: PathBuf,
    password: PathBuf,
}

/// The test's world: a directory every user can enter, the binary in it, two users.
struct World {
    _dir: TempDir,
    root: PathBuf,
    exe: PathBuf,
    users: [TestUser; 2],
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn ensure_user(name: &str) -> Option<(u32, u32)> {
    if id_of(name, "-u").is_none() {
        let made = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ])
            .output();
        match made {
            Ok(o) if o.status.success() => {}
            other => {
                assert!(
                    !in_ci(),
                    "CI must be able to add the user {name}: {other:?}"
                );
                eprintln!("skipped: cannot add the user {name}: {other:?}");
                return None;
            }
        }
    }
    Some((id_of(name, "-u")?, id_of(name, "-g")?))
}

/// Sets up the world, or says why not and returns `None` (a failure under CI).
fn world() -> Option<World> {
    let fuse = Path::new("/dev/fuse");
    let open_to_all = fs::metadata(fuse).is_ok_and(|m| m.mode() & 0o006 == 0o006);
    let tools = ["runuser", "useradd", "fuse2fs", "fusermount3"]
        .into_iter()
        .filter(|t| tcvault::mount::fs::find_program(t).is_none())
        .collect::<Vec<_>>();
    if !open_to_all || !tools.is_empty() {
        let why = format!("/dev/fuse open to users: {open_to_all}; missing: {tools:?}");
        assert!(!in_ci(), "CI must run user-mode mounts ({why})");
        eprintln!("skipped: user-mode mounts need {why}");
        return None;
    }
    let dir = temp_dir();
    let root = dir.path().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod test dir");
    let exe = root.join("tcvault");
    let built = tcvault().get_program().to_owned();
    fs::copy(&built, &exe).expect("copy the tcvault binary");
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).expect("chmod the binary");
    let mut users = Vec::new();
    for name in ["tcvault-test1", "tcvault-test2"] {
        let (uid, gid) = ensure_user(name)?;
        let home = root.join(name);
        let runtime = home.join("run");
        for d in [&home, &runtime] {
            fs::create_dir(d).expect("make a user directory");
            fs::set_permissions(d, fs::Permissions::from_mode(0o700)).expect("chmod");
            chown(d, Some(uid), Some(gid)).expect("chown a user directory");
        }
        let password = home.join("pw");
        fs::write(&password, PASSWORD).expect("write the password file");
        fs::set_permissions(&password, fs::Permissions::from_mode(0o600)).expect("chmod");
        chown(&password, Some(uid), Some(gid)).expect("chown the password file");
        users.push(TestUser {
            name,
            uid,
            gid,
            home,
            runtime,
            password,
        });
    }
    let users: [TestUser; 2] = users.try_into().ok()?;
    Some(World {
        _dir: dir,
        root,
        exe,
        users,
    })
}

impl World {
    /// Runs the copied `tcvault` as `user` with `args`.
    fn tcvault_as(&self, user: &TestUser, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", user.name, "--", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", user.runtime.display()))
            .arg(format!("HOME={}", user.home.display()))
            .arg(&self.exe)
            .args(args)
            .output()
            .expect("run runuser")
    }

    fn tcvault_ok(&self, user: &TestUser, args: &[&str]) -> String {
        let out = self.tcvault_as(user, args);
        assert!(
            out.status.success(),
            "tcvault {args:?} as {} failed: {}",
            user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a program (no shell) as `user`.
    fn as_user(&self, user: &TestUser, program: &str, args: &[&str]) -> Output {
        Command::new("runuser")
            .args(["-u", user.name, "--", program])
            .args(args)
            .output()
            .expect("run runuser")
    }

    fn list_as(&self, user: &TestUser) -> Vec<Value> {
        let out = self.tcvault_ok(user, &["list", "--json"]);
        serde_json::from_str::<Value>(&out)
            .expect("list --json prints JSON")
            .as_array()
            .expect("an array")
            .clone()
    }

    /// Unmounts everything `user` has left, whatever a failed assertion left behind.
    fn cleanup(&self, user: &TestUser) {
        let _ = self.tcvault_as(user, &["unmount", "--all", "--force"]);
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for u in &self.users {
            self.cleanup(u);
        }
    }
}

fn create_args<'a>(vol: &'a str, pw: &'a str, size: &'a str, fs: &'a str) -> Vec<&'a str> {
    vec![
        "create",
        vol,
        "--size",
        size,
        "--password-file",
        pw,
        "--pim",
        "1",
        "--filesystem",
        fs,
        "--quick",
        "--escrow",
        "no",
    ]
}

/// `tcvault mount VOL [MP] EXTRA...` unlocked with the test password file and PIM 1, no escrow.
fn mount_args<'a>(
    vol: &'a str,
    mp: Option<&'a str>,
    pw: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["mount", vol];
    args.extend(mp);
    args.extend(["--password-file", pw, "--pim", "1", "--escrow", "no"]);
    args.extend(extra);
    args
}

fn is_mounted(mp: &Path) -> bool {
    tcvault::mount::fs::is_mountpoint(mp)
}

/// An ordinary user makes an ext4 volume, mounts it (fuse2fs on the FUSE file, no loop
/// device), writes through it, lists and unmounts it, and reads the data back after a
/// read-only remount; the filesystem checks clean afterwards. Another user can neither open
/// the volume, nor read the decrypted file, nor unmount the mount; root's list does not show
/// it (each user has their own state).
#[test]
fn user_mounts_their_own_volume_without_root() {
    let Some(_g) = mount_env() else { return };
    let Some(w) = world() else { return };
    let [u1, u2] = &w.users;
    let vol = u1.home.join("own.hc");
    let (v, pw) = (path_str(&vol), path_str(&u1.password));
    w.tcvault_ok(u1, &create_args(v, pw, "40M", "ext4"));

    let loops_before = tcvault_loop_devices();
    let mp = u1.home.join("mnt");
    let out = w.tcvault_ok(u1, &mount_args(v, Some(path_str(&mp)), pw, &[]));
    assert!(out.contains("via fuse2fs"), "user mode uses fuse2fs: {out}");
    assert!(is_mounted(&mp), "nothing mounted at {}", mp.display());
    assert_eq!(
        tcvault_loop_devices(),
        loops_before,
        "user mode attached a loop device"
    );
    let listed = w.list_as(u1);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["user_mode"], Value::Bool(true), "{listed:?}");
    let device = PathBuf::from(listed[0]["device"].as_str().expect("device"));
    assert!(
        device.starts_with(&u1.runtime),
        "the decrypted file is in the user's state directory: {}",
        device.display()
    );
    let root_list = Command::new(tcvault().get_program())
        .args(["list", "--json"])
        .output()
        .expect("list as root");
    assert!(
        !String::from_utf8_lossy(&root_list.stdout).contains(path_str(&vol)),
        "root's list shows a user's mount"
    );

    // Data written through the mount by the user.
    let data = random_bytes(3 << 20, 41);
    let src = u1.home.join("src.bin");
    fs::write(&src, &data).expect("write the source file");
    chown(&src, Some(u1.uid), Some(u1.gid)).expect("chown");
    let dst = mp.join("data.bin");
    let cp = w.as_user(u1, "cp", &[path_str(&src), path_str(&dst)]);
    assert!(cp.status.success(), "cp into the mount: {cp:?}");

    // The other user: the volume file, the decrypted file and the mount are not theirs.
    let other = w.tcvault_as(u2, &mount_args(v, None, path_str(&u2.password), &[]));
    assert_eq!(
        other.status.code(),
        Some(4),
        "another user's volume: {other:?}"
    );
    let err = String::from_utf8_lossy(&other.stderr);
    assert!(err.contains("ermission denied"), "says why: {err}");
    let peek = w.as_user(u2, "head", &["-c", "512", path_str(&device)]);
    assert!(
        !peek.status.success(),
        "another user read the decrypted file"
    );
    let theirs = w.tcvault_as(u2, &["unmount", path_str(&mp)]);
    assert_eq!(
        theirs.status.code(),
        Some(4),
        "another user's mount: {theirs:?}"
    );
    assert!(
        is_mounted(&mp),
        "another user's unmount took the mount away"
    );
    let fusermount = w.as_user(u2, "fusermount3", &["-u", path_str(&mp)]);
    assert!(
        !fusermount.status.success(),
        "fusermount3 let another user unmount"
    );
    assert!(w.list_as(u2).is_empty(), "the other user sees the mount");

    let out = w.tcvault_ok(u1, &["unmount", path_str(&mp)]);
    assert!(out.contains("unmounted"), "{out}");
    assert!(!is_mounted(&mp), "still mounted");
    assert!(w.list_as(u1).is_empty(), "state left after unmount");
    assert!(
        !u1.runtime.join("tcvault/slot1").exists(),
        "slot directory left after unmount"
    );

    let out = w.tcvault_ok(u1, &mount_args(v, Some(path_str(&mp)), pw, &["-r"]));
    assert!(out.contains("read-only"), "{out}");
    let cmp = w.as_user(u1, "cmp", &[path_str(&src), path_str(&dst)]);
    assert!(cmp.status.success(), "data read back differ: {cmp:?}");
    w.tcvault_ok(u1, &["unmount", "--all"]);
    assert!(!is_mounted(&mp));

    // The filesystem fuse2fs wrote is sound.
    let image = w.root.join("own.img");
    let dec = Command::new(tcvault().get_program())
        .args([
            "decrypt",
            v,
            "-o",
            path_str(&image),
            "--password-file",
            pw,
            "--pim",
            "1",
        ])
        .output()
        .expect("decrypt as root");
    assert!(dec.status.success(), "decrypt: {dec:?}");
    let fsck = Command::new(tcvault::mount::fs::find_program("e2fsck").expect("e2fsck"))
        .args(["-f", "-n", path_str(&image)])
        .output()
        .expect("run e2fsck");
    assert!(
        fsck.status.success(),
        "e2fsck after user-mode writes: {fsck:?}"
    );
}

/// FAT through fusefat as an ordinary user; `--protect-hidden` refused in user mode before any
/// password is asked for; a filesystem with no user-mode driver (XFS) refused with a message
/// that says so and leaves nothing mounted; and root asking for `--user-mode` gets the same
/// path (no loop device).
#[test]
fn user_mode_fat_refusals_and_root_user_mode() {
    let Some(_g) = mount_env() else { return };
    let Some(w) = world() else { return };
    let u1 = &w.users[0];
    let pw = path_str(&u1.password);
    let fat = u1.home.join("fat.hc");
    w.tcvault_ok(u1, &create_args(path_str(&fat), pw, "24M", "fat"));
    let mp = u1.home.join("fat-mnt");
    let (f, m) = (path_str(&fat), Some(path_str(&mp)));
    let out = w.tcvault_ok(u1, &mount_args(f, m, pw, &[]));
    assert!(out.contains("via fusefat"), "{out}");
    let file = mp.join("note.txt");
    let wrote = w.as_user(u1, "cp", &[path_str(&u1.password), path_str(&file)]);
    assert!(wrote.status.success(), "write to FAT: {wrote:?}");
    w.tcvault_ok(u1, &["unmount", path_str(&mp)]);
    w.tcvault_ok(u1, &mount_args(f, m, pw, &["-r"]));
    let read = w.as_user(u1, "cat", &[path_str(&file)]);
    assert_eq!(read.stdout, PASSWORD, "FAT file read back");
    w.tcvault_ok(u1, &["unmount", path_str(&mp)]);

    // No password file: refused before the prompt (there is no terminal either).
    let prot = w.tcvault_as(u1, &["mount", path_str(&fat), "--protect-hidden"]);
    assert_eq!(prot.status.code(), Some(2), "{prot:?}");
    let err = String::from_utf8_lossy(&prot.stderr);
    assert!(
        err.contains("hidden-volume protection needs a mount as root"),
        "{err}"
    );

    let xfs = u1.home.join("xfs.hc");
    w.tcvault_ok(u1, &create_args(path_str(&xfs), pw, "320M", "xfs"));
    let out = w.tcvault_as(u1, &mount_args(path_str(&xfs), m, pw, &[]));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no driver that runs without root for the xfs"),
        "{err}"
    );
    assert!(!is_mounted(&mp) && w.list_as(u1).is_empty(), "left mounted");

    // Root, asking for user mode.
    let loops_before = tcvault_loop_devices();
    let rmp = w.root.join("root-mnt");
    let out = Command::new(tcvault().get_program())
        .args(mount_args(f, Some(path_str(&rmp)), pw, &["--user-mode"]))
        .output()
        .expect("mount as root");
    assert!(out.status.success(), "root --user-mode: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("via fusefat"));
    assert_eq!(
        tcvault_loop_devices(),
        loops_before,
        "--user-mode used a loop device"
    );
    let read = fs::read(rmp.join("note.txt")).expect("read as root");
    assert_eq!(read, PASSWORD);
    let out = Command::new(tcvault().get_program())
        .args(["unmount", path_str(&rmp)])
        .output()
        .expect("unmount as root");
    assert!(out.status.success(), "{out:?}");
}
