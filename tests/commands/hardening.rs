//! Off the happy path: truncated and crafted volumes given to the commands that write headers,
//! crashes that must not dump secrets, killed writes that must leave nothing behind, and
//! inputs that used to hang or panic. Each test reproduces a defect first found on main.

use std::fs;
use std::path::Path;

use crate::common::{create_quick, run, run_ok, tcvault, temp_dir, write_file};
use tcvault::crypto::chain::ChainId;
use tcvault::crypto::kdf::Prf;
use tcvault::header::seal::{Protection, new_header, seal};
use tcvault::header::{Credentials, Family, UnlockOptions};
use tcvault::secret::Password;
use tcvault::volume::write::{self, NewProtection};
use tcvault::volume::{Host, SlotChoice, Volume};

/// The binary as a plain process (for spawning, killing and redirecting).
fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tcvault"))
}

fn creds(pw: &[u8]) -> Credentials {
    let pw = Password::new(pw).expect("short password");
    Credentials::new(&pw, &[], 1).expect("credentials")
}

/// A volume file cut 64 KiB short: `change-password` used to write the "embedded backup" at
/// the new size − 128 KiB, inside the data area, and exit 0. Now it refuses with exit 5 and
/// writes nothing. (`volume::write::header_places`, which every header write goes through, is
/// tested on crafted headers below and in its unit tests.)
#[test]
fn header_writes_refuse_a_truncated_volume() {
    let dir = temp_dir();
    let pw = write_file(&dir, "old", b"old password");
    let new_pw = write_file(&dir, "new", b"new password");
    let vol = dir.path().join("cut.hc");
    create_quick("4M", &pw, &vol);
    // Real data throughout the data area, so a stray header write would show.
    {
        let host = Host::open_writable(&vol).expect("open");
        let v = Volume::open_on(
            host,
            &creds(b"old password"),
            SlotChoice::default(),
            &opts(),
        )
        .expect("opens");
        let mut data: Vec<u8> = (0..v.data_len()).map(|i| (i % 251) as u8).collect();
        v.write_data(0, &mut data).expect("write data");
    }
    let cut = (4 << 20) - 65_536;
    fs::OpenOptions::new()
        .write(true)
        .open(&vol)
        .expect("open")
        .set_len(cut)
        .expect("truncate");
    let before = fs::read(&vol).expect("read");
    for args in [
        vec!["change-password", "--pim", "1", "--new-pim", "1"],
        vec![
            "change-password",
            "--pim",
            "1",
            "--new-pim",
            "1",
            "--backup-header",
        ],
    ] {
        let out = run(tcvault()
            .args(&args)
            .arg("--password-file")
            .arg(&pw)
            .arg("--new-password-file")
            .arg(&new_pw)
            .arg(&vol));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {stderr}");
        // Opening refuses a host cut inside the embedded backup headers (the header's data
        // area plus 128 KiB must fit); header_places refuses it again before any write.
        assert!(
            stderr.contains("truncated volume?") || stderr.contains("refusing to write"),
            "{stderr}"
        );
        assert_eq!(fs::read(&vol).expect("read"), before, "{args:?} wrote");
    }
    // The library refuses the same way, at open.
    let host = Host::open_writable(&vol).expect("open");
    let err = Volume::open_on(
        host,
        &creds(b"old password"),
        SlotChoice::default(),
        &opts(),
    )
    .expect_err("refused");
    assert!(
        matches!(err, tcvault::volume::VolumeError::BackupHeadersCut { .. }),
        "{err}"
    );
    assert_eq!(fs::read(&vol).expect("read"), before);
}

fn opts() -> UnlockOptions {
    UnlockOptions {
        prf: Some(Prf::Sha512),
        chain: Some(ChainId::Aes),
        ..UnlockOptions::default()
    }
}

fn protection() -> Protection {
    Protection::new(Family::VeraCrypt, Prf::Sha512, 1, ChainId::Aes).expect("protection")
}

mod crafted {
    use super::*;
    use proptest::prelude::*;

    const SIZE: u64 = 1 << 20;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Headers with valid checksums but crafted fields (data area, hidden size, version),
        /// in hosts of crafted sizes: a password change either is refused with nothing
        /// written, or changes bytes only outside the data area the header describes.
        #[test]
        fn change_password_never_writes_into_the_data_area(
            start in prop_oneof![Just(131_072u64), 0u64..SIZE, any::<u64>()],
            len in prop_oneof![Just(SIZE - 262_144), 0u64..SIZE, any::<u64>()],
            hidden in prop_oneof![Just(0u64), 0u64..SIZE],
            version in prop_oneof![Just(5u16), 1u16..6],
            cut in prop_oneof![Just(0u64), 0u64..(SIZE / 2)],
            in_hidden_slot in any::<bool>(),
        ) {
            let dir = temp_dir();
            let vol = dir.path().join("crafted.hc");
            let size = (SIZE - cut).max(tcvault::header::layout::MIN_LEGACY_VOLUME_SIZE);
            let mut image: Vec<u8> = (0..size).map(|i| (i * 7 % 253) as u8).collect();
            let prot = protection();
            let c = creds(b"crafted");
            let mut header = new_header(prot, start, len, hidden != 0, 512).expect("header");
            header.hidden_volume_size = hidden;
            header.version = version;
            let sealed = seal(&header, prot, &c).expect("seal");
            let at = if in_hidden_slot { 65_536 } else { 0 };
            image[at..at + 512].copy_from_slice(&sealed);
            fs::write(&vol, &image).expect("write");
            let opened = Host::open_writable(&vol)
                .map_err(write::WriteError::from)
                .and_then(|h| Ok(Volume::open_on(h, &c, SlotChoice::default(), &opts())?));
            let Ok(v) = opened else {
                // Refused when opening: nothing could be written.
                prop_assert_eq!(fs::read(&vol).expect("read"), image);
                return Ok(());
            };
            let area = v.data_area();
            let new = creds(b"changed");
            let result = write::change_password(
                &v,
                &NewProtection { creds: &new, prot },
                None,
            );
            drop(v);
            let after = fs::read(&vol).expect("read");
            prop_assert_eq!(after.len(), image.len());
            match result {
                Err(_) => prop_assert!(after == image, "a refused write changed bytes"),
                Ok(()) => {
                    let (s, e) = (area.start as usize, (area.start + area.len) as usize);
                    prop_assert!(after[s..e] == image[s..e], "the data area changed");
                }
            }
        }
    }
}

// ---------- core dumps ----------

mod core_dumps {
    use std::ffi::OsString;
    use std::io::Write;
    use std::os::unix::process::ExitStatusExt;
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use crate::common::{in_ci, temp_dir};

    /// Starts `program args` the way an attacker who wants a core would: in `dir`, with
    /// `ulimit -c unlimited`, stdin a pipe that gets `stdin` but stays open.
    fn start(dir: &Path, program: &Path, args: &[OsString], stdin: &[u8]) -> Child {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg("ulimit -c unlimited && exec \"$0\" \"$@\"")
            .arg(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(stdin)
            .expect("write stdin");
        child
    }

    /// Sends `signal` to `pid`, then reports whether the kernel dumped a core for `child`
    /// (WCOREDUMP) and which core files appeared in `dir`.
    fn crash(mut child: Child, pid: u32, signal: &str, dir: &Path) -> (bool, Vec<PathBuf>) {
        raise_core_limit(pid);
        let st = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(st.success());
        let status = child.wait().expect("wait");
        (status.core_dumped(), core_files_in(dir))
    }

    /// What an attacker with root would do after the process lowered its own limit: raise it
    /// again from outside (`prlimit`), so that only the process's non-dumpable flag stands
    /// between its memory and a core file. Without root this fails, and the limit stays.
    fn raise_core_limit(pid: u32) {
        let _ = Command::new("prlimit")
            .arg("--pid")
            .arg(pid.to_string())
            .arg("--core=unlimited:unlimited")
            .stderr(Stdio::null())
            .status();
    }

    fn core_files_in(dir: &Path) -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("core"))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The mount service holds the master keys for as long as the volume is mounted: a crash
    /// (its core limit raised from outside first) leaves no core in its working folder.
    #[test]
    fn a_crashed_mount_service_dumps_nothing() {
        if !crate::common::can_mount() || !cores_are_written() {
            return;
        }
        let dir = temp_dir();
        let pw = super::write_file(&dir, "pw", b"service secret");
        let vol = dir.path().join("svc.hc");
        super::create_quick("4M", &pw, &vol);
        let unlock = ["--pim", "1", "--prf", "sha512", "--password-file"];
        super::run_ok(
            super::tcvault()
                .arg("mount")
                .arg(&vol)
                .args(unlock)
                .arg(&pw)
                .arg("--no-filesystem"),
        );
        let list = super::run_ok(super::tcvault().args(["list", "--json"]));
        let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
        let entry = list
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["volume"].as_str() == vol.to_str())
                    .cloned()
            })
            .expect("listed");
        let pid = u32::try_from(entry["pid"].as_u64().expect("pid")).expect("pid");
        let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).expect("service cwd");
        let before = core_files_in(&cwd);
        raise_core_limit(pid);
        let st = Command::new("kill")
            .args(["-SEGV", &pid.to_string()])
            .status()
            .expect("kill");
        assert!(st.success());
        for _ in 0..100 {
            if !Path::new(&format!("/proc/{pid}")).exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let after = core_files_in(&cwd);
        let _ = super::tcvault()
            .args(["unmount", "--force"])
            .arg(&vol)
            .output();
        assert_eq!(
            before,
            after,
            "the crashed service dumped a core in {}",
            cwd.display()
        );
    }

    /// Whether this machine writes core files at all: a plain `sleep` crashed the same way
    /// must leave one, or the tests below could not tell anything.
    fn cores_are_written() -> bool {
        let dir = temp_dir();
        let child = start(dir.path(), Path::new("/bin/sleep"), &["30".into()], b"");
        std::thread::sleep(Duration::from_millis(200));
        let pid = child.id();
        let (dumped, cores) = crash(child, pid, "SEGV", dir.path());
        if dumped && !cores.is_empty() {
            return true;
        }
        let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap_or_default();
        assert!(
            !in_ci(),
            "CI must write core files to the crashing process's folder (core_pattern {pattern:?})"
        );
        eprintln!("skipped: this machine writes no core files here (core_pattern {pattern:?})");
        false
    }

    /// `tcvault info` in the middle of key derivation (a random 1 MiB file: every PRF is tried
    /// for seconds) holds the password and derived keys: SIGSEGV and SIGABRT leave no core.
    #[test]
    fn a_crash_during_key_derivation_dumps_nothing() {
        if !cores_are_written() {
            return;
        }
        for signal in ["SEGV", "ABRT"] {
            let dir = temp_dir();
            let noise: Vec<u8> = (0..1u32 << 20)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            let vol = dir.path().join("noise.img");
            std::fs::write(&vol, noise).expect("write");
            let args: Vec<OsString> = vec![
                "info".into(),
                "--password-file".into(),
                "-".into(),
                vol.into(),
            ];
            let child = start(
                dir.path(),
                Path::new(env!("CARGO_BIN_EXE_tcvault")),
                &args,
                b"the password",
            );
            // Close stdin so the password is read and derivation starts.
            let mut child = child;
            drop(child.stdin.take());
            std::thread::sleep(Duration::from_millis(800));
            let pid = child.id();
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "info finished before the crash: the test proves nothing"
            );
            let (dumped, cores) = crash(child, pid, signal, dir.path());
            assert!(
                !dumped && cores.is_empty(),
                "SIG{signal}: core dumped {cores:?}"
            );
        }
    }

    /// `tcvault-escrowd user add` and `tcvault info`, reading a password that has not ended yet
    /// (the pipe stays open), hold what they read so far: a crash leaves no core.
    #[test]
    #[cfg(feature = "escrow-server")]
    fn a_crash_while_reading_a_password_dumps_nothing() {
        if !cores_are_written() {
            return;
        }
        let dir = temp_dir();
        let escrowd = Path::new(env!("CARGO_BIN_EXE_tcvault-escrowd"));
        let conf = dir.path().join("conf");
        let st = Command::new(escrowd)
            .arg("init")
            .arg(&conf)
            .args(["--host", "localhost"])
            .stdout(Stdio::null())
            .status()
            .expect("init");
        assert!(st.success());
        let vol = dir.path().join("noise.img");
        std::fs::write(&vol, vec![0x5a; 1 << 20]).expect("write");
        let cases: [(&Path, Vec<OsString>); 2] = [
            (
                escrowd,
                vec![
                    "-c".into(),
                    conf.join("escrowd.xml").into(),
                    "user".into(),
                    "add".into(),
                    "bob".into(),
                    "--password-file".into(),
                    "-".into(),
                ],
            ),
            (
                Path::new(env!("CARGO_BIN_EXE_tcvault")),
                vec![
                    "info".into(),
                    "--password-file".into(),
                    "-".into(),
                    vol.into(),
                ],
            ),
        ];
        for (program, args) in cases {
            let mut child = start(dir.path(), program, &args, b"half a pass");
            std::thread::sleep(Duration::from_millis(500));
            assert!(
                child.try_wait().expect("try_wait").is_none(),
                "{}: did not wait for the rest of the password",
                program.display()
            );
            let pid = child.id();
            let (dumped, cores) = crash(child, pid, "SEGV", dir.path());
            assert!(
                !dumped && cores.is_empty(),
                "{}: core dumped {cores:?}",
                program.display()
            );
        }
    }
}

// ---------- leftovers of killed writes ----------

fn leftovers(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("read dir")
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(".tcvault-"))
        .collect()
}

/// A `create` killed while it fills the data area used to leave a full-size `.tcvault-new-*`
/// file; now the new container is an unnamed file until complete, so nothing is left.
#[test]
fn a_killed_create_leaves_nothing() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"killed");
    let vol = dir.path().join("big.hc");
    let mut child = bin()
        .args(["create", "--size", "512M", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(&vol)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    // Killed as soon as the fill is under way (8 MiB of the container's 512 MiB are on
    // disk), not after a fixed time, which a fast machine could outrun.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while fill_written(child.id(), dir.path()) < 8 << 20 {
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "create finished before the kill: the test proves nothing"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "create wrote nothing in 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("wait");
    assert!(!vol.exists(), "a half-made container stands under its name");
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

/// The bytes on disk of the files process `pid` has open below `dir` (named or not: the
/// open descriptor reaches an unnamed temporary file too).
fn fill_written(pid: u32, dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    fds.flatten()
        .filter(|fd| fs::read_link(fd.path()).is_ok_and(|t| t.starts_with(dir)))
        .filter_map(|fd| fs::metadata(fd.path()).ok())
        .filter(fs::Metadata::is_file)
        .map(|m| m.blocks() * 512)
        .sum()
}

/// Where a filesystem has no unnamed files, the named temporary files carry their writer's
/// pid: the next run removes a dead writer's and leaves a live writer's alone.
#[test]
fn a_dead_writers_temporary_file_is_removed_by_the_next_run() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"next run");
    let dead = {
        let mut c = std::process::Command::new("true").spawn().expect("spawn");
        let pid = c.id();
        c.wait().expect("wait");
        pid
    };
    let dead_name = format!(".tcvault-new-{dead}-abcdef");
    let live_name = format!(".tcvault-new-{}-abcdef", std::process::id());
    let other = ".tcvault-new-notapid".to_string();
    for n in [&dead_name, &live_name, &other] {
        fs::write(dir.path().join(n), b"old headers").expect("write");
    }
    create_quick("1M", &pw, &dir.path().join("v.hc"));
    let mut left = leftovers(dir.path());
    left.sort();
    let mut want = vec![live_name, other];
    want.sort();
    assert_eq!(left, want);
}

/// A header backup (what `--keep-old-header` and `backup-header` write) appears only
/// complete: no `.tcvault-partial-*` beside it, ever.
#[test]
fn backup_files_are_written_without_a_named_temporary() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"backed up");
    let vol = dir.path().join("v.hc");
    create_quick("1M", &pw, &vol);
    let out = dir.path().join("v.backup");
    run_ok(
        tcvault()
            .args(["backup-header", "--pim", "1", "--password-file"])
            .arg(&pw)
            .arg(&vol)
            .arg(&out),
    );
    assert_eq!(fs::metadata(&out).expect("backup").len(), 131_072);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    // Refused to replace an existing file, and nothing left either.
    let again = run(tcvault()
        .args(["backup-header", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(&vol)
        .arg(&out));
    assert_eq!(again.status.code(), Some(4));
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

// ---------- small ones ----------

/// A FIFO given as a volume or a keyfile used to block forever in `open`: now refused at once.
#[test]
fn a_fifo_as_volume_or_keyfile_is_refused_at_once() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"fifo");
    let fifo = dir.path().join("fifo");
    let st = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(st.success());
    let vol = dir.path().join("v.hc");
    create_quick("1M", &pw, &vol);
    let cases: [Vec<std::ffi::OsString>; 3] = [
        vec![
            "info".into(),
            "--password-file".into(),
            pw.clone().into(),
            fifo.clone().into(),
        ],
        vec![
            "info".into(),
            "--password-file".into(),
            pw.clone().into(),
            "-k".into(),
            fifo.clone().into(),
            vol.clone().into(),
        ],
        vec![
            "change-password".into(),
            "--password-file".into(),
            pw.clone().into(),
            "--new-password-file".into(),
            pw.clone().into(),
            fifo.clone().into(),
        ],
    ];
    for args in cases {
        let mut child = bin()
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut waited = 0;
        let status = loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                break st;
            }
            if waited > 100 {
                let _ = child.kill();
                panic!("{args:?} hung on the FIFO");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            waited += 1;
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().expect("stderr"), &mut err)
            .expect("stderr");
        assert_eq!(status.code(), Some(4), "{args:?}: {err}");
        assert!(err.contains("not a regular file or block device"), "{err}");
    }
}

/// `create` into a folder that does not exist: exit 4 (as the man page says), a message that
/// names the folder, and no temporary path in it.
#[test]
fn create_into_a_missing_folder_is_bad_input() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"nowhere");
    let vol = dir.path().join("missing").join("v.hc");
    let out = run(tcvault()
        .args(["create", "--size", "1M", "--pim", "1", "--password-file"])
        .arg(&pw)
        .arg(&vol));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{err}");
    assert!(
        err.contains("does not exist") && err.contains("missing"),
        "{err}"
    );
    assert!(!err.contains(".tcvault-"), "{err}");
}

/// Standard output and error both unwritable (`/dev/full`): never a panic (exit
/// 101); a command whose output is lost fails with exit 1.
#[test]
fn unwritable_output_is_no_panic() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"output");
    let vol = dir.path().join("v.hc");
    create_quick("1M", &pw, &vol);
    let full = || {
        fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full")
    };
    for args in [
        vec!["info", "--pim", "1", "--password-file"],
        vec!["info", "--json", "--pim", "1", "--password-file"],
    ] {
        let out = bin()
            .args(&args)
            .arg(&pw)
            .arg(&vol)
            .stdout(full())
            .stderr(full())
            .status()
            .expect("run");
        assert_eq!(out.code(), Some(1), "{args:?}");
    }
}

/// `create --hidden` inside a TrueCrypt-format outer volume used to write a VeraCrypt hidden
/// header; now the hidden volume takes the outer's format, and asking for the other is refused.
#[test]
fn a_hidden_volume_follows_its_outer_volumes_format() {
    let dir = temp_dir();
    let opw = write_file(&dir, "outer", b"truecrypt outer");
    let hpw = write_file(&dir, "hidden", b"truecrypt hidden");
    let vol = dir.path().join("tc.tc");
    run_ok(
        tcvault()
            .args([
                "create",
                "--format",
                "truecrypt",
                "--size",
                "8M",
                "--filesystem",
                "fat",
                "--password-file",
            ])
            .arg(&opw)
            .arg(&vol),
    );
    let hidden = |extra: &[&str]| {
        run(tcvault()
            .args(["create", "--hidden", "--size", "2M", "--quick"])
            .args(extra)
            .arg("--password-file")
            .arg(&hpw)
            .arg("--outer-password-file")
            .arg(&opw)
            .arg(&vol))
    };
    let refused = hidden(&["--format", "veracrypt"]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(4), "{err}");
    assert!(err.contains("truecrypt format"), "{err}");
    let made = hidden(&[]);
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let info = run_ok(
        tcvault()
            .args([
                "info",
                "--json",
                "--hidden",
                "--truecrypt",
                "--password-file",
            ])
            .arg(&hpw)
            .arg(&vol),
    );
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("json");
    assert_eq!(info["family"], "truecrypt", "{info}");
    assert_eq!(info["type"], "hidden", "{info}");
}

/// With little memory (an address-space limit far below one Argon2id trial at PIM 5, 192 MiB),
/// a PBKDF2 volume still opens: Argon2id runs only after every PBKDF2 job, and its failed
/// allocation is no crash. A wrong password then says that Argon2id could not be tried and
/// why (exit 1), and so does an Argon2id volume, which cannot open in that memory.
#[test]
fn little_memory_still_unlocks_pbkdf2_and_says_why_argon2id_did_not_run() {
    let dir = temp_dir();
    let pw = write_file(&dir, "pw", b"little memory password");
    let wrong = write_file(&dir, "wrong", b"not it");
    let make = |name: &str, prf: &str| {
        let vol = dir.path().join(name);
        run_ok(
            tcvault()
                .args([
                    "create", "--quick", "--size", "4M", "--pim", "5", "--escrow", "no",
                ])
                .args(["--prf", prf, "--password-file"])
                .arg(&pw)
                .arg(&vol),
        );
        vol
    };
    let whirlpool = make("w.hc", "whirlpool");
    let argon = make("a.hc", "argon2id");
    let exe = tcvault().get_program().to_owned();
    let limited = |pw: &Path, vol: &Path| {
        std::process::Command::new("prlimit")
            .arg(format!("--as={}", 128u64 << 20))
            .arg(&exe)
            .args(["info", "--pim", "5", "--password-file"])
            .arg(pw)
            .arg(vol)
            .output()
            .expect("run prlimit (util-linux)")
    };
    let out = limited(&pw, &whirlpool);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HMAC-Whirlpool"),
        "{out:?}"
    );
    for (pw, vol) in [(&wrong, &whirlpool), (&pw, &argon)] {
        let out = limited(pw, vol);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("Argon2id could not be tried")
                && err.contains("not enough memory")
                && err.contains("192 MiB"),
            "{err}"
        );
    }
    // Without the limit the Argon2id volume opens.
    run_ok(
        tcvault()
            .args(["info", "--pim", "5", "--password-file"])
            .arg(&pw)
            .arg(&argon),
    );
}
