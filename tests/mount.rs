//! `tcvault mount`, `unmount` and `list` end to end, and `tcvault::mount::format_volume`.
//!
//! These need root, `/dev/fuse` and `/dev/loop-control` (and the tools that
//! `scripts/setup.d/mount.sh` installs). Without them each test says so and passes, except
//! when `CI` is set: then a missing piece is a failure. The tests share the machine's slots,
//! loop devices and `/run/tcvault`, so they run one at a time (a global lock).
//!
//! Covered: every manifest volume with a file of known content in its root directory, mounted
//! read-only through the FAT driver (fusefat here: this kernel has no vfat); volumes we make
//! (a VeraCrypt header written by the helper below) formatted by `format_volume` with ext4,
//! exFAT, NTFS and FAT, written through the mount, unmounted, remounted and compared;
//! `--no-filesystem` against `tcvault decrypt`; `list --json`; mounting twice refused; unmount
//! refused while a file is open or a shell sits in the mount point, `--force`; hidden-volume
//! protection; and a killed service giving I/O errors, then a clean unmount and the synced data
//! back after a remount.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    entry, in_ci, manifest_entries, password_bytes, password_file, pattern, run, run_ok, str_field,
    tcvault, temp_dir, u64_field, unlock_args, volume_path,
};
use serde_json::Value;
use tempfile::TempDir;

use tcvault::crypto::chain::{ChainId, XtsChain};
use tcvault::crypto::prf::{Prf, pbkdf2};
use tcvault::header::Family;
use tcvault::header::format::Header;
use tcvault::header::{Credentials, UnlockOptions};
use tcvault::mount::{FsKind, format_volume};
use tcvault::secret::{Password, SecretBytes};
use tcvault::volume::{SlotChoice, Volume};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the global lock; `None` (after saying why) when this machine cannot mount.
fn mount_env() -> Option<std::sync::MutexGuard<'static, ()>> {
    let root = fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    let missing: Vec<&str> = [
        (!root.unwrap_or(false), "root"),
        (!Path::new("/dev/fuse").exists(), "/dev/fuse"),
        (
            !Path::new("/dev/loop-control").exists(),
            "/dev/loop-control",
        ),
    ]
    .into_iter()
    .filter_map(|(m, what)| m.then_some(what))
    .collect();
    if !missing.is_empty() {
        assert!(!in_ci(), "CI must be able to mount; missing: {missing:?}");
        eprintln!("skipped: mounting needs {missing:?}");
        return None;
    }
    Some(
        SERIAL
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}

const TEST_PASSWORD: &[u8] = b"mount-test password";
/// PIM 1: 16,000 PBKDF2-SHA-512 iterations, cheap for tests.
const TEST_PIM: u32 = 1;

/// Writes a VeraCrypt AES/SHA-512 volume of `size` bytes (sparse data area) with the test
/// password and PIM, from the format facts: header fields, CRCs, PBKDF2, XTS over bytes 64..512,
/// and the embedded backup header.
fn make_volume(path: &Path, size: u64) {
    make_volume_with(path, size, ChainId::Aes);
}

/// As [`make_volume`] with another cipher chain.
fn make_volume_with(path: &Path, size: u64, chain: ChainId) {
    let mut random = [0u8; 64 + 256 + 64];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .expect("read /dev/urandom");
    let data_len = size - 2 * 131_072;
    let header = Header {
        family: Family::VeraCrypt,
        version: 5,
        min_program_version: 0x010B,
        legacy_times: [0; 16],
        hidden_volume_size: 0,
        volume_size: data_len,
        encrypted_area_start: 131_072,
        encrypted_area_length: data_len,
        flags: 0,
        sector_size: 512,
        key_area: SecretBytes::from_slice(&random[64..320]),
    };
    let f = fs::File::create(path).expect("create volume file");
    f.set_len(size).expect("size volume file");
    for (at, salt) in [(0u64, &random[..64]), (size - 131_072, &random[320..])] {
        let salt: [u8; 64] = salt.try_into().expect("64-byte salt");
        let mut bytes = header.serialize(&salt);
        let mut key = [0u8; 192];
        pbkdf2(
            Prf::Sha512,
            TEST_PASSWORD,
            &salt,
            15_000 + 1_000 * TEST_PIM,
            &mut key,
        );
        XtsChain::new(chain, &key)
            .expect("192 bytes key every chain")
            .encrypt(&mut bytes.expose_mut()[64..], 0);
        f.write_all_at(bytes.expose(), at).expect("write header");
    }
    f.sync_all().expect("sync volume file");
}

fn test_unlock(dir: &TempDir) -> Vec<String> {
    let pw = password_file(dir, TEST_PASSWORD);
    vec![
        "--password-file".into(),
        pw.display().to_string(),
        "--prf".into(),
        "sha512".into(),
        "--pim".into(),
        TEST_PIM.to_string(),
    ]
}

fn open_test_volume(path: &Path) -> Volume {
    let pw = Password::new(TEST_PASSWORD).expect("test password");
    let creds = Credentials::new(&pw, &[], TEST_PIM).expect("credentials");
    let opts = UnlockOptions {
        prf: Some(Prf::Sha512),
        ..UnlockOptions::default()
    };
    Volume::open(path, &creds, SlotChoice::default(), &opts).expect("open the test volume")
}

/// `tcvault list --json`.
fn list() -> Vec<Value> {
    let out = run_ok(tcvault().args(["list", "--json"]));
    serde_json::from_slice::<Value>(&out.stdout)
        .expect("list --json prints JSON")
        .as_array()
        .expect("list --json prints an array")
        .clone()
}

fn list_entry(volume: &Path) -> Value {
    let abs = std::path::absolute(volume).expect("absolute path");
    list()
        .into_iter()
        .find(|e| e["volume"].as_str() == Some(abs.to_str().expect("UTF-8 path")))
        .unwrap_or_else(|| panic!("{} not in list --json", volume.display()))
}

/// Unmounts whatever is left of `target` when a test fails half way.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = tcvault().args(["unmount", "--force"]).arg(t).output();
        }
    }
}

fn mount_cmd(volume: &Path, unlock: &[String], extra: &[&str]) -> std::process::Output {
    run(tcvault().arg("mount").arg(volume).args(unlock).args(extra))
}

fn mount_ok(volume: &Path, unlock: &[String], extra: &[&str]) -> String {
    let out = mount_cmd(volume, unlock, extra);
    assert!(
        out.status.success(),
        "mount {} failed: {}",
        volume.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn unmount_ok(target: &Path) {
    run_ok(tcvault().arg("unmount").arg(target));
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    // xorshift: reproducible, incompressible enough for checksums.
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

const SIZES: [usize; 6] = [0, 1, 4095, 4096, (1 << 20) + 3, 5 << 20];

fn write_files(dir: &Path, seed: u64) {
    for (i, n) in SIZES.iter().enumerate() {
        let mut f = fs::File::create(dir.join(format!("f{i}.bin"))).expect("create file");
        f.write_all(&random_bytes(*n, seed + i as u64))
            .expect("write file");
        f.sync_all().expect("fsync file");
    }
}

fn check_files(dir: &Path, seed: u64) {
    for (i, n) in SIZES.iter().enumerate() {
        let got = fs::read(dir.join(format!("f{i}.bin"))).unwrap_or_else(|e| {
            let names: Vec<_> = fs::read_dir(dir)
                .map(|d| d.flatten().map(|e| e.file_name()).collect())
                .unwrap_or_default();
            panic!("f{i}.bin in {}: {e}; there: {names:?}", dir.display())
        });
        assert!(
            got == random_bytes(*n, seed + i as u64),
            "f{i}.bin ({n} bytes) differs after remount"
        );
    }
}

/// Every manifest volume with a file of documented content in its root directory, mounted
/// read-only: the file reads back as the documented pattern, and `list` describes the mount.
#[test]
fn reference_volumes_mount_read_only_with_their_files() {
    let Some(_g) = mount_env() else { return };
    let mut checked = 0;
    for e in manifest_entries() {
        let kind = e["type"].as_str().unwrap_or("");
        if kind != "normal" && kind != "outer" && kind != "hidden" {
            continue;
        }
        for d in e["data_written"].as_array().into_iter().flatten() {
            let where_ = str_field(d, "where");
            let Some(name) = where_
                .strip_prefix("file /")
                .and_then(|r| r.split_whitespace().next())
            else {
                continue;
            };
            let file = str_field(&e, "file");
            let dir = temp_dir();
            let pw = password_file(&dir, &password_bytes(&e, "password"));
            let unlock: Vec<String> = unlock_args(&e, &pw, str_field(&e, "prf"))
                .into_iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            let mut unlock = unlock;
            if kind == "hidden" {
                unlock.push("--hidden".into());
            }
            let mp = dir.path().join("mnt");
            let vol = volume_path(file);
            let _c = Cleanup(vec![mp.clone()]);
            let out = mount_ok(&vol, &unlock, &["--read-only", mp.to_str().expect("path")]);
            assert!(
                out.contains(mp.to_str().expect("path")),
                "mount prints the mount point: {out}"
            );
            let got = fs::read(mp.join(name))
                .unwrap_or_else(|err| panic!("{file} ({kind}): cannot read /{name}: {err}"));
            assert!(
                got == pattern(str_field(d, "what")),
                "{file} ({kind}): /{name} differs from the manifest's pattern"
            );
            let l = list_entry(&vol);
            assert_eq!(l["filesystem"], "vfat", "{file}: {l}");
            assert_eq!(l["read_only"], true);
            assert_eq!(
                l["kind"],
                if kind == "hidden" { "hidden" } else { "normal" }
            );
            assert_eq!(l["chain"], str_field(&e, "cipher"));
            assert_eq!(l["alive"], true);
            assert!(
                fs::write(mp.join("new.txt"), b"x").is_err(),
                "read-only mount took a write"
            );
            unmount_ok(&mp);
            assert!(
                list()
                    .iter()
                    .all(|x| x["mountpoint"].as_str() != mp.to_str()),
                "unmounted volume still listed"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "the manifest names at least four files, found {checked}"
    );
}

/// A volume formatted with ext4 by `format_volume`, files written through the mount, then
/// read back after an unmount and a remount; mounting it twice is refused; `list --json` says
/// how it is mounted.
#[test]
fn ext4_write_unmount_remount_read_back() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("ext4.hc");
    make_volume(&vol, 64 << 20);
    format_volume(open_test_volume(&vol), FsKind::Ext4, Some("tcvtest")).expect("format ext4");
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    let _c = Cleanup(vec![mp.clone()]);
    mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);
    write_files(&mp, 7);
    let l = list_entry(&vol);
    assert_eq!(l["filesystem"], "ext4");
    assert_eq!(l["driver"], "kernel ext4");
    assert_eq!(l["read_only"], false);
    assert_eq!(l["protect_hidden"], false);
    assert_eq!(l["prf"], "sha512");
    assert!(
        l["device"]
            .as_str()
            .is_some_and(|d| d.starts_with("/dev/loop")),
        "{l}"
    );
    assert!(l["slot"].as_u64().is_some_and(|s| s >= 1));

    let twice = mount_cmd(&vol, &unlock, &[]);
    assert_eq!(twice.status.code(), Some(4), "second mount must be refused");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already mounted"));

    unmount_ok(&vol);
    assert!(!common_is_mounted(&mp), "still mounted after unmount");
    mount_ok(&vol, &unlock, &["--read-only", mp.to_str().expect("path")]);
    check_files(&mp, 7);
    unmount_ok(&mp);
}

fn common_is_mounted(mp: &Path) -> bool {
    let canon = mp.canonicalize().unwrap_or_else(|_| mp.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .any(|l| l.split(' ').nth(4) == canon.to_str())
}

/// exFAT, NTFS and FAT made by `format_volume` and mounted read-write through whichever driver
/// this machine has (FUSE drivers here), then read back after a remount.
#[test]
fn exfat_ntfs_fat_read_write() {
    let Some(_g) = mount_env() else { return };
    for (kind, blkid) in [
        (FsKind::Exfat, "exfat"),
        (FsKind::Ntfs, "ntfs"),
        (FsKind::Fat, "vfat"),
    ] {
        let dir = temp_dir();
        let vol = dir.path().join(format!("{kind}.hc"));
        make_volume(&vol, 32 << 20);
        format_volume(open_test_volume(&vol), kind, Some("TCV")).expect("format");
        let unlock = test_unlock(&dir);
        let mp = dir.path().join("mnt");
        let _c = Cleanup(vec![mp.clone()]);
        mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);
        assert_eq!(list_entry(&vol)["filesystem"], blkid);
        write_files(&mp, 11);
        unmount_ok(&mp);
        mount_ok(&vol, &unlock, &["--read-only", mp.to_str().expect("path")]);
        check_files(&mp, 11);
        unmount_ok(&mp);
    }
}

/// `--no-filesystem` prints a device whose bytes are exactly what `tcvault decrypt` writes,
/// with the manifest's raw patterns at their offsets.
#[test]
fn no_filesystem_device_equals_decrypt() {
    let Some(_g) = mount_env() else { return };
    let e = entry("kuznyechik-serpent-camellia_sha256.hc", "normal");
    let dir = temp_dir();
    let pw = password_file(&dir, &password_bytes(&e, "password"));
    let unlock: Vec<String> = unlock_args(&e, &pw, "sha256")
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let vol = volume_path(str_field(&e, "file"));
    let _c = Cleanup(vec![vol.clone()]);
    let out = mount_ok(&vol, &unlock, &["--no-filesystem", "--read-only"]);
    let dev = PathBuf::from(out.trim());
    assert!(
        dev.starts_with("/dev"),
        "--no-filesystem prints the device: {out}"
    );
    let device_bytes = fs::read(&dev).expect("read the decrypted device");
    let decrypted = run_ok(tcvault().arg("decrypt").arg(&vol).args(&unlock)).stdout;
    assert_eq!(device_bytes.len(), decrypted.len());
    assert!(
        device_bytes == decrypted,
        "device bytes differ from tcvault decrypt"
    );
    for d in e["data_written"].as_array().expect("data_written") {
        let at = u64_field(d, "decrypted_data_area_offset") as usize;
        assert!(device_bytes[at..at + 4096] == pattern(str_field(d, "what")));
    }
    assert_eq!(list_entry(&vol)["mountpoint"], Value::Null);
    unmount_ok(&dev);
}

/// Unmount refuses while a file is open or a process sits in the mount point, names the
/// process, and goes ahead with --force.
#[test]
fn unmount_refused_while_busy() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("busy.hc");
    make_volume(&vol, 16 << 20);
    format_volume(open_test_volume(&vol), FsKind::Ext4, None).expect("format ext4");
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    let _c = Cleanup(vec![mp.clone()]);
    mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);

    let open = fs::File::create(mp.join("open.txt")).expect("create a file");
    let out = run(tcvault().arg("unmount").arg(&mp));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("busy"), "{err}");
    assert!(
        err.contains(&std::process::id().to_string()),
        "names the process: {err}"
    );
    assert!(err.contains("--force"), "says how to override: {err}");
    drop(open);

    let mut shell = Command::new("sleep")
        .arg("60")
        .current_dir(&mp)
        .spawn()
        .expect("start a process in the mount point");
    let out = run(tcvault().arg("unmount").arg(&mp));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sleep") && err.contains("cwd"), "{err}");
    run_ok(tcvault().args(["unmount", "--force"]).arg(&mp));
    let _ = shell.kill();
    let _ = shell.wait();
    assert!(!common_is_mounted(&mp));
    assert!(list().iter().all(|x| x["volume"].as_str() != vol.to_str()));
}

/// Hidden-volume protection: writes to the outer volume work until one would land in the
/// hidden volume; that one and every later write are refused, `list` says so, and the hidden
/// volume's bytes are unchanged.
#[test]
fn hidden_volume_protection() {
    let Some(_g) = mount_env() else { return };
    let outer = entry("outer_hidden.hc", "outer");
    let hidden = entry("outer_hidden.hc", "hidden");
    let dir = temp_dir();
    let vol = dir.path().join("outer_hidden.hc");
    fs::copy(volume_path("outer_hidden.hc"), &vol).expect("copy the volume");
    let opw = password_file(&dir, &password_bytes(&outer, "password"));
    let hpw = dir.path().join("hidden-password");
    fs::write(&hpw, password_bytes(&hidden, "password")).expect("write hidden password");
    let size = u64_field(&outer, "size");
    let (hstart, hlen, _) = common::expected_layout(&hidden);
    let before = fs::read(&vol).expect("read volume");
    let _c = Cleanup(vec![vol.clone()]);
    let mut args: Vec<String> = unlock_args(&outer, &opw, "sha512")
        .into_iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    args.extend([
        "--protect-hidden".into(),
        "--hidden-password-file".into(),
        hpw.display().to_string(),
    ]);
    let out = mount_ok(&vol, &args, &["--no-filesystem"]);
    let dev = PathBuf::from(out.trim());
    let l = list_entry(&vol);
    assert_eq!(l["protect_hidden"], true);
    assert_eq!(l["protection_tripped"], false);

    let outer_start = 131_072u64;
    let dd = |offset_in_area: u64| {
        Command::new("dd")
            .arg("if=/dev/urandom")
            .arg(format!("of={}", dev.display()))
            .args([
                "bs=4096",
                "count=1",
                "oflag=direct,seek_bytes",
                "conv=notrunc",
            ])
            .arg(format!("seek={offset_in_area}"))
            .output()
            .expect("run dd")
            .status
            .success()
    };
    assert!(dd(0), "a write far from the hidden volume must work");
    assert!(
        !dd(hstart - outer_start),
        "a write into the hidden volume must fail"
    );
    assert!(!dd(4096), "after protection tripped every write must fail");
    let deadline = Instant::now() + Duration::from_secs(5);
    while list_entry(&vol)["protection_tripped"] != true {
        assert!(
            Instant::now() < deadline,
            "list never showed the refused write"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    unmount_ok(&dev);
    let after = fs::read(&vol).expect("read volume");
    assert_eq!(after.len() as u64, size);
    let (a, b) = (hstart as usize, (hstart + hlen) as usize);
    assert!(
        before[a..b] == after[a..b],
        "the hidden volume's bytes changed"
    );
    assert!(
        before[131_072..135_168] != after[131_072..135_168],
        "the first (allowed) write did not reach the volume"
    );
}

/// SIGKILL on the service: the filesystem gives I/O errors instead of hanging, unmount cleans
/// up, and after a remount the data synced before the kill is there.
#[test]
fn killed_service_gives_io_errors_and_unmount_cleans_up() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("kill.hc");
    make_volume(&vol, 32 << 20);
    format_volume(open_test_volume(&vol), FsKind::Ext4, None).expect("format ext4");
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    let _c = Cleanup(vec![mp.clone()]);
    mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);
    write_files(&mp, 3);
    let l = list_entry(&vol);
    let pid = l["pid"].as_u64().expect("pid");
    let dev = PathBuf::from(l["device"].as_str().expect("device"));
    let st = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    // Reading the device bypassing every cache must fail promptly.
    let (tx, rx) = std::sync::mpsc::channel();
    let d2 = dev.clone();
    std::thread::spawn(move || {
        let r = Command::new("dd")
            .arg(format!("if={}", d2.display()))
            .args(["of=/dev/null", "bs=4096", "count=1", "iflag=direct"])
            .output();
        let _ = tx.send(r.map(|o| o.status.success()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("a read after the service died hung instead of failing");
    assert!(
        !r.expect("run dd"),
        "a read after the service died succeeded"
    );
    let l = list_entry(&vol);
    assert_eq!(l["alive"], false);
    let out = run_ok(tcvault().arg("unmount").arg(&mp));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cleaned up"));
    assert!(!common_is_mounted(&mp));
    assert!(list().iter().all(|x| x["volume"].as_str() != vol.to_str()));
    mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);
    check_files(&mp, 3);
    unmount_ok(&mp);
}

/// Not a test: makes the volumes `scripts/bench-mount.sh` measures. With
/// TCVAULT_BENCH_VOLUME=PATH, TCVAULT_BENCH_CHAIN=NAME and TCVAULT_BENCH_SIZE=BYTES it writes a
/// volume (test password and PIM) and formats it with ext4.
#[test]
#[ignore = "run by scripts/bench-mount.sh"]
fn bench_volume() {
    let Some(_g) = mount_env() else { return };
    let path =
        PathBuf::from(std::env::var_os("TCVAULT_BENCH_VOLUME").expect("TCVAULT_BENCH_VOLUME"));
    let chain = std::env::var("TCVAULT_BENCH_CHAIN").unwrap_or_else(|_| "AES".into());
    let chain = ChainId::from_name(&chain).expect("a chain name such as AES or Serpent");
    let size: u64 = std::env::var("TCVAULT_BENCH_SIZE")
        .map(|s| s.parse().expect("TCVAULT_BENCH_SIZE in bytes"))
        .unwrap_or(1200 << 20);
    make_volume_with(&path, size, chain);
    format_volume(open_test_volume(&path), FsKind::Ext4, Some("bench")).expect("format ext4");
}
