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
//! protection, on the device and under mounted ext4 and FAT (fusefat) outer filesystems, where
//! every write after the trip must fail visibly; and a killed service giving I/O errors, then a clean unmount and the synced data
//! back after a remount.

#[path = "../common/mod.rs"]
mod common;
mod table;
mod user_mode;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{
    entry, manifest_entries, password_bytes, password_file, pattern, run, run_ok, str_field,
    tcvault, temp_dir, u64_field, unlock_args, volume_path, write_file,
};
use serde_json::Value;
use tempfile::TempDir;

use tcvault::crypto::chain::{ChainId, XtsChain};
use tcvault::crypto::kdf::{Prf, pbkdf2};
use tcvault::header::Family;
use tcvault::header::format::Header;
use tcvault::header::{Credentials, UnlockOptions};
use tcvault::mount::{FsKind, format_volume};
use tcvault::secret::{Password, SecretBytes};
use tcvault::volume::{SlotChoice, Volume};

static SERIAL: Mutex<()> = Mutex::new(());

/// Holds the global lock; `None` (after saying why) when this machine cannot mount.
fn mount_env() -> Option<std::sync::MutexGuard<'static, ()>> {
    if !common::can_mount() {
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
    let limits_before = loop_request_limits();
    format_volume(open_test_volume(&vol), FsKind::Ext4, Some("tcvtest"), false)
        .expect("format ext4");
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
    // The data path: loop requests capped at FUSE's 1 MiB, so each reaches the service whole,
    // and the service's I/O buffers (plaintext) locked in memory.
    let dev = l["device"].as_str().expect("device");
    let cap = fs::read_to_string(format!(
        "/sys/block/{}/queue/max_sectors_kb",
        dev.trim_start_matches("/dev/")
    ))
    .expect("loop queue limits");
    assert_eq!(cap.trim(), "1024", "{dev}: max_sectors_kb");
    let pid = l["pid"].as_u64().expect("service pid");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("service status");
    let locked_kb: u64 = status
        .lines()
        .find_map(|x| x.strip_prefix("VmLck:"))
        .and_then(|x| x.split_whitespace().next()?.parse().ok())
        .expect("VmLck");
    assert!(
        locked_kb >= 2048,
        "service I/O buffers not locked: {locked_kb} kB"
    );
    // ext4 made by tcvault has its inode tables zeroed already: no background zeroing (all
    // encrypted writes) after the first mount.
    let groups = Command::new("dumpe2fs")
        .arg(dev)
        .output()
        .expect("run dumpe2fs");
    let groups = String::from_utf8_lossy(&groups.stdout);
    let groups: Vec<&str> = groups
        .lines()
        .filter(|x| {
            x.strip_prefix("Group ")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        })
        .collect();
    assert!(!groups.is_empty(), "dumpe2fs lists the block groups");
    for g in &groups {
        assert!(g.contains("ITABLE_ZEROED"), "lazy inode table: {g}");
    }

    let twice = mount_cmd(&vol, &unlock, &[]);
    assert_eq!(twice.status.code(), Some(4), "second mount must be refused");
    assert!(String::from_utf8_lossy(&twice.stderr).contains("already mounted"));

    unmount_ok(&vol);
    assert!(!common_is_mounted(&mp), "still mounted after unmount");
    // The loop device's own request limit is back for its next user.
    let name = dev.trim_start_matches("/dev/");
    if let Some(before) = limits_before.get(name) {
        assert_eq!(loop_request_limits().get(name), Some(before), "{dev}");
    }
    mount_ok(&vol, &unlock, &["--read-only", mp.to_str().expect("path")]);
    check_files(&mp, 7);
    unmount_ok(&mp);
}

/// `max_sectors_kb` of every loop device that exists now, by name (`loop0`).
fn loop_request_limits() -> std::collections::HashMap<String, String> {
    fs::read_dir("/sys/block")
        .expect("/sys/block")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let kb = fs::read_to_string(format!("/sys/block/{name}/queue/max_sectors_kb")).ok()?;
            name.starts_with("loop")
                .then(|| (name, kb.trim().to_string()))
        })
        .collect()
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
        format_volume(open_test_volume(&vol), kind, Some("TCV"), false).expect("format");
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

    // Under -q only the device is printed (what was asked for), and unmount says nothing.
    let out = run(tcvault()
        .args(["-q", "mount"])
        .arg(&vol)
        .args(&unlock)
        .args(["--no-filesystem", "--read-only"]));
    assert!(out.status.success(), "{out:?}");
    let dev = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(dev.starts_with("/dev"), "{out:?}");
    assert!(out.stderr.is_empty(), "-q mount said: {out:?}");
    let out = run(tcvault().args(["-q", "unmount"]).arg(&dev));
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "{out:?}"
    );
}

/// Unmount refuses while a file is open or a process sits in the mount point, names the
/// process, and goes ahead with --force.
#[test]
fn unmount_refused_while_busy() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("busy.hc");
    make_volume(&vol, 16 << 20);
    format_volume(open_test_volume(&vol), FsKind::Ext4, None, false).expect("format ext4");
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
    assert!(
        err.contains(&shell.id().to_string()),
        "names the pid: {err}"
    );
    assert!(common_is_mounted(&mp), "a refused unmount unmounted it");
    assert_eq!(list_entry(&vol)["alive"], true);
    run_ok(tcvault().args(["unmount", "--force"]).arg(&mp));
    let _ = shell.kill();
    let _ = shell.wait();
    assert!(!common_is_mounted(&mp));
    assert!(list().iter().all(|x| x["volume"].as_str() != vol.to_str()));
}

/// Hidden-volume protection: writes to the outer volume work until one would land in the
/// hidden volume; that one and every later write (and flush) are refused, `list` says so, and
/// the hidden volume's bytes are unchanged.
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
    // A flush must not tell a program (or a filesystem) that what it wrote is safe.
    let out = Command::new("sync").arg(&dev).output().expect("run sync");
    assert!(
        !out.status.success(),
        "a flush of the device succeeded after protection tripped"
    );
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

/// Size of the outer volumes of the protection-trip tests, and of the hidden volume at their end.
const TRIP_OUTER: u64 = 64 << 20;
const TRIP_HIDDEN: u64 = 24 << 20;
/// What the tripping copy writes: more than the outer volume has before the hidden volume
/// (about 40 MiB), so that at least 8 MiB of it would land in the hidden volume.
const TRIP_COPY: usize = 48 << 20;

/// An outer volume of [`TRIP_OUTER`] bytes holding `outer_fs` ("vfat" or "ext4"), with a
/// hidden FAT volume of [`TRIP_HIDDEN`] bytes at its end that holds `secret.bin`
/// (`random_bytes(1 MiB, 77)`). Returns the volume, the outer and hidden password files.
///
/// `create --hidden` proves the hidden volume's room on FAT outer volumes only, so the ext4 one
/// is made from the FAT one: ext4 (4 KiB blocks, one block group, hence no backup superblocks)
/// is written over the outer volume's whole data area through a protected `--no-filesystem`
/// mount, which shows that mkfs kept out of the hidden volume.
fn outer_with_hidden(dir: &TempDir, outer_fs: &str) -> (PathBuf, PathBuf, PathBuf) {
    let vol = dir.path().join("outer.hc");
    let opw = write_file(dir, "outer-password", b"outer volume password");
    let hpw = write_file(dir, "hidden-password", b"hidden volume password");
    let pim = ["--pim", "1"];
    run_ok(
        tcvault()
            .args(["create", "--quick", "--filesystem", "fat"])
            .args(["--size", &TRIP_OUTER.to_string()])
            .arg("--password-file")
            .arg(&opw)
            .args(pim)
            .arg(&vol),
    );
    run_ok(
        tcvault()
            .args(["create", "--hidden", "--filesystem", "fat"])
            .args(["--size", &TRIP_HIDDEN.to_string()])
            .arg("--outer-password-file")
            .arg(&opw)
            .args(["--outer-pim", "1"])
            .arg("--password-file")
            .arg(&hpw)
            .args(pim)
            .arg(&vol),
    );
    let mp = dir.path().join("hidden");
    let _c = Cleanup(vec![mp.clone()]);
    let hidden_unlock = [
        "--hidden".to_string(),
        "--password-file".into(),
        path_str(&hpw).into(),
        "--pim".into(),
        "1".into(),
    ];
    mount_ok(&vol, &hidden_unlock, &[path_str(&mp)]);
    fs::write(mp.join("secret.bin"), random_bytes(1 << 20, 77)).expect("write the hidden file");
    unmount_ok(&mp);
    if outer_fs == "ext4" {
        let out = mount_ok(&vol, &protected_unlock(&opw, &hpw), &["--no-filesystem"]);
        let dev = PathBuf::from(out.trim());
        let _c = Cleanup(vec![dev.clone()]);
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-b", "4096", "-E"])
            .arg("nodiscard,lazy_itable_init=0,lazy_journal_init=0")
            .arg(&dev)
            .status()
            .expect("run mkfs.ext4");
        assert!(st.success(), "mkfs.ext4 on the outer volume failed");
        let st = Command::new("sync").arg(&dev).status().expect("run sync");
        assert!(st.success(), "sync {} failed", dev.display());
        assert_eq!(
            list_entry(&vol)["protection_tripped"],
            false,
            "mkfs.ext4 wrote into the hidden volume"
        );
        unmount_ok(&dev);
    }
    (vol, opw, hpw)
}

/// The unlock options of a protected outer-volume mount (both PIMs 1).
fn protected_unlock(opw: &Path, hpw: &Path) -> Vec<String> {
    [
        "--password-file",
        path_str(opw),
        "--pim",
        "1",
        "--protect-hidden",
        "--hidden-password-file",
        path_str(hpw),
        "--hidden-pim",
        "1",
    ]
    .map(str::to_string)
    .to_vec()
}

/// Runs `script` with `sh -c`; whether it exited 0, and its standard error.
fn shell(script: &str) -> (bool, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Hidden-volume protection on a mounted outer filesystem (`outer_fs`, through the driver
/// `driver`): a copy larger than the room before the hidden volume trips it, and from then on
/// every program that writes fails visibly: the tripping `cp` itself (followed by `sync`),
/// `dd conv=fsync`, and a later `cp` followed by `sync`; `list` and the service log say so;
/// the mount still unmounts cleanly, and the hidden volume opens with its own password with
/// its file intact.
fn protection_trip_fails_writes(outer_fs: &str, driver: &str) {
    let dir = temp_dir();
    let (vol, opw, hpw) = outer_with_hidden(&dir, outer_fs);
    let src = write_file(&dir, "big.bin", &random_bytes(TRIP_COPY, 5));
    let small = write_file(&dir, "small.bin", &random_bytes(64 << 10, 6));
    let mp = dir.path().join("outer");
    let _c = Cleanup(vec![mp.clone()]);
    mount_ok(&vol, &protected_unlock(&opw, &hpw), &[path_str(&mp)]);
    let l = list_entry(&vol);
    assert_eq!(l["driver"], driver);
    assert_eq!(l["protection_tripped"], false);
    let dev = l["device"]
        .as_str()
        .expect("device")
        .trim_start_matches("/dev/")
        .to_string();
    let sys = |what: &str| {
        fs::read_to_string(format!("/sys/block/{dev}/{what}"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| panic!("/sys/block/{dev}/{what}: {e}"))
    };
    assert_eq!(
        sys("bdi/strict_limit"),
        "1",
        "{outer_fs}: no write-back limit on the protected device"
    );
    let (m, s) = (path_str(&mp), path_str(&src));

    let (ok, err) = shell(&format!("cp {s} {m}/big.bin && sync"));
    assert!(
        !ok,
        "{outer_fs}: a {TRIP_COPY}-byte copy into the hidden volume's area and sync reported \
         success"
    );
    assert!(
        err.contains("Input/output error")
            || err.contains("Read-only file system")
            || err.contains("Operation not permitted"),
        "{outer_fs}: cp failed without a write error: {err}"
    );
    let l = list_entry(&vol);
    assert_eq!(l["protection_tripped"], true, "{outer_fs}: list: {l}");
    let text = String::from_utf8(run_ok(tcvault().arg("list")).stdout).expect("UTF-8 list");
    assert!(
        text.contains("protection tripped"),
        "{outer_fs}: list does not say so:\n{text}"
    );
    let slot = l["slot"].as_u64().expect("slot");
    let log = fs::read_to_string(tcvault::mount::state::slot_dir(slot as u32).join("service.log"))
        .expect("read the service log");
    assert!(
        log.contains("protection tripped"),
        "{outer_fs}: service log:\n{log}"
    );

    let later = [
        format!("dd if={} of={m}/dd.bin bs=64k conv=fsync", path_str(&small)),
        format!("cp {} {m}/small.bin && sync", path_str(&small)),
        format!(
            "dd if={} of={m}/big.bin bs=64k count=1 conv=notrunc,fsync",
            path_str(&small)
        ),
    ];
    for script in &later {
        let (ok, err) = shell(script);
        assert!(
            !ok,
            "{outer_fs}: `{script}` succeeded after protection tripped ({err})"
        );
    }

    assert_eq!(
        sys("ro"),
        "1",
        "{outer_fs}: the device was not made read-only"
    );
    unmount_ok(&mp);
    assert!(!common_is_mounted(&mp));
    // The kernel keeps these for the loop device's next user (unless one has taken it since:
    // tests of other checkouts may run at the same time).
    if loop_backing_file(Path::new(&format!("/dev/{dev}"))).is_none() {
        assert_eq!(sys("ro"), "0", "{outer_fs}: the device stayed read-only");
        assert_eq!(
            (sys("bdi/strict_limit"), sys("bdi/max_ratio_fine")),
            ("0".to_string(), "1000000".to_string()),
            "{outer_fs}: the device's write-back limits were not put back"
        );
    }
    let hidden = dir.path().join("hidden");
    let hidden_unlock = [
        "--hidden".to_string(),
        "--password-file".into(),
        path_str(&hpw).into(),
        "--pim".into(),
        "1".into(),
        "--read-only".into(),
    ];
    mount_ok(&vol, &hidden_unlock, &[path_str(&hidden)]);
    let got = fs::read(hidden.join("secret.bin")).expect("read the hidden file");
    unmount_ok(&hidden);
    assert!(
        got == random_bytes(1 << 20, 77),
        "{outer_fs}: the hidden volume's file changed"
    );
}

/// [`protection_trip_fails_writes`] with ext4 (the kernel's driver) as the outer filesystem.
#[test]
fn protection_trip_fails_writes_on_ext4() {
    let Some(_g) = mount_env() else { return };
    protection_trip_fails_writes("ext4", "kernel ext4");
}

/// [`protection_trip_fails_writes`] with FAT through fusefat as the outer filesystem.
#[test]
fn protection_trip_fails_writes_on_fusefat() {
    let Some(_g) = mount_env() else { return };
    protection_trip_fails_writes("vfat", "fusefat");
}

/// SIGKILL on the service: the filesystem gives I/O errors instead of hanging, unmount cleans
/// up, and after a remount the data synced before the kill is there.
#[test]
fn killed_service_gives_io_errors_and_unmount_cleans_up() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("kill.hc");
    make_volume(&vol, 32 << 20);
    let limits_before = loop_request_limits();
    format_volume(open_test_volume(&vol), FsKind::Ext4, None, false).expect("format ext4");
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
    // The dead service could not put the loop device's request limit back; the cleanup did.
    let name = dev.to_str().expect("device").trim_start_matches("/dev/");
    if let Some(before) = limits_before.get(name) {
        assert_eq!(loop_request_limits().get(name), Some(before), "{name}");
    }
    assert!(list().iter().all(|x| x["volume"].as_str() != vol.to_str()));
    mount_ok(&vol, &unlock, &[mp.to_str().expect("path")]);
    check_files(&mp, 3);
    unmount_ok(&mp);
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The line of /proc/self/mountinfo for `mp`, if mounted.
fn mountinfo_line(mp: &Path) -> Option<String> {
    let canon = mp.canonicalize().unwrap_or_else(|_| mp.to_path_buf());
    fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .find(|l| l.split(' ').nth(4) == canon.to_str())
        .map(str::to_string)
}

/// The per-mount options of the mount at `mp` (field 6 of mountinfo), e.g. `rw,noatime`.
fn mount_options_of(mp: &Path) -> Vec<String> {
    let line = mountinfo_line(mp).unwrap_or_else(|| panic!("{} is not mounted", mp.display()));
    line.split(' ')
        .nth(5)
        .expect("mountinfo has mount options")
        .split(',')
        .map(str::to_string)
        .collect()
}

/// The lowest slot number from `from` on that has no state directory.
fn free_slot(from: u32) -> u32 {
    (from..=tcvault::mount::state::MAX_SLOT)
        .find(|n| !tcvault::mount::state::slot_dir(*n).exists())
        .expect("a free slot")
}

/// A process id that belonged to a process which has exited (and been reaped).
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().expect("run true");
    let pid = c.id();
    c.wait().expect("wait for true");
    pid
}

/// The file loop device `dev` is attached to (`None`: detached).
fn loop_backing_file(dev: &Path) -> Option<String> {
    let name = dev.file_name()?.to_str()?;
    fs::read_to_string(format!("/sys/block/{name}/loop/backing_file"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// A volume of `size` bytes with filesystem `kind`, in `dir`.
fn formatted_volume(dir: &TempDir, name: &str, size: u64, kind: FsKind) -> PathBuf {
    let vol = dir.path().join(name);
    make_volume(&vol, size);
    format_volume(open_test_volume(&vol), kind, None, false).expect("format the test volume");
    vol
}

/// `--uid/--gid/--umask` on FAT and exFAT: the mount point, a new file and a new directory
/// all show that owner, and the mode the mask leaves; the mount point tcvault created for the
/// mount is removed at unmount.
#[test]
fn owner_options_on_fat_and_exfat() {
    use std::os::unix::fs::MetadataExt;
    let Some(_g) = mount_env() else { return };
    for kind in [FsKind::Fat, FsKind::Exfat] {
        let dir = temp_dir();
        let vol = formatted_volume(&dir, &format!("{kind}.hc"), 16 << 20, kind);
        let unlock = test_unlock(&dir);
        let mp = dir.path().join("mnt");
        let _c = Cleanup(vec![mp.clone()]);
        let opts = ["--uid", "1234", "--gid", "2345", "--umask", "027"];
        mount_ok(&vol, &unlock, &[&opts[..], &[path_str(&mp)]].concat());
        fs::write(mp.join("a.txt"), b"owned").expect("write a file");
        fs::create_dir(mp.join("sub")).expect("make a directory");
        for (p, is_dir) in [
            (mp.clone(), true),
            (mp.join("a.txt"), false),
            (mp.join("sub"), true),
        ] {
            let m = fs::metadata(&p).expect("stat");
            let what = format!("{kind}: {}", p.display());
            assert_eq!((m.uid(), m.gid()), (1234, 2345), "owner of {what}");
            let mode = m.mode() & 0o777;
            if is_dir {
                assert_eq!(mode, 0o750, "mode of {what}: {mode:o}");
            } else {
                assert_eq!(mode & 0o027, 0, "umask 027 not applied to {what}: {mode:o}");
                assert_eq!(
                    mode & 0o600,
                    0o600,
                    "owner cannot read/write {what}: {mode:o}"
                );
            }
        }
        assert_eq!(list_entry(&vol)["created_mountpoint"], true);
        unmount_ok(&mp);
        assert!(
            !mp.exists(),
            "{kind}: the mount point tcvault made is still there"
        );
    }
}

/// ext4 stores owners itself: an explicit `--uid/--gid/--umask` is refused with a message
/// saying so (nothing stays mounted or listed, the mount point made for it is removed); the
/// default owner `mount` takes from sudo (SUDO_UID/SUDO_GID) is dropped silently instead.
#[test]
fn owner_options_on_ext4_refused_or_dropped() {
    use std::os::unix::fs::MetadataExt;
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = formatted_volume(&dir, "ext4.hc", 16 << 20, FsKind::Ext4);
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    let _c = Cleanup(vec![mp.clone()]);
    let out = mount_cmd(
        &vol,
        &unlock,
        &[
            "--uid",
            "1234",
            "--gid",
            "2345",
            "--umask",
            "027",
            path_str(&mp),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "--uid on ext4 must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--uid") && err.contains("ext4") && err.contains("FAT"),
        "the refusal says why: {err}"
    );
    assert!(!common_is_mounted(&mp), "mounted despite the refusal");
    assert!(
        !mp.exists(),
        "the mount point made for the refused mount is left"
    );
    let abs = std::path::absolute(&vol).expect("absolute path");
    assert!(
        list().iter().all(|e| e["volume"].as_str() != abs.to_str()),
        "the refused mount is still listed"
    );

    let out = run(tcvault()
        .arg("mount")
        .arg(&vol)
        .args(&unlock)
        .arg(&mp)
        .env("SUDO_UID", "1234")
        .env("SUDO_GID", "2345"));
    assert!(
        out.status.success(),
        "the sudo user's default owner must not stop an ext4 mount: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let opts = mount_options_of(&mp).join(",");
    let line = mountinfo_line(&mp).expect("mounted");
    assert!(!line.contains("uid="), "owner option reached ext4: {line}");
    fs::write(mp.join("x"), b"x").expect("write a file");
    let me = fs::metadata("/proc/self").expect("stat /proc/self").uid();
    assert_eq!(
        fs::metadata(mp.join("x")).expect("stat").uid(),
        me,
        "ext4 keeps the writer as owner ({opts})"
    );
    unmount_ok(&mp);
}

/// `--mount-options` reach the filesystem's mount (noatime and nodiratime in
/// /proc/self/mountinfo; `ro` makes it read-only), and an option the filesystem rejects fails
/// with the mount program's message, leaving nothing mounted, listed or attached.
#[test]
fn mount_options_reach_the_mount() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = formatted_volume(&dir, "opts.hc", 16 << 20, FsKind::Ext4);
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).expect("make the mount point");
    let _c = Cleanup(vec![mp.clone()]);

    mount_ok(&vol, &unlock, &["-o", "noatime,nodiratime", path_str(&mp)]);
    let opts = mount_options_of(&mp);
    assert!(
        opts.iter().any(|o| o == "noatime") && opts.iter().any(|o| o == "nodiratime"),
        "options not in mountinfo: {opts:?}"
    );
    fs::write(mp.join("f"), b"data").expect("write");
    unmount_ok(&mp);

    mount_ok(&vol, &unlock, &["--mount-options", "ro", path_str(&mp)]);
    let opts = mount_options_of(&mp);
    assert_eq!(opts[0], "ro", "-o ro did not make it read-only: {opts:?}");
    assert_eq!(fs::read(mp.join("f")).expect("read"), b"data");
    assert!(
        fs::write(mp.join("g"), b"x").is_err(),
        "a write went through on -o ro"
    );
    unmount_ok(&mp);

    let loops_before = tcvault_loop_devices();
    let out = mount_cmd(
        &vol,
        &unlock,
        &["-o", "tcvault_no_such_option", path_str(&mp)],
    );
    assert!(!out.status.success(), "a bad mount option was accepted");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mount"), "the failure says what failed: {err}");
    assert!(!common_is_mounted(&mp));
    assert!(mp.is_dir(), "the mount point given by the user was removed");
    let abs = std::path::absolute(&vol).expect("absolute path");
    assert!(list().iter().all(|e| e["volume"].as_str() != abs.to_str()));
    assert_eq!(
        tcvault_loop_devices(),
        loops_before,
        "the failed mount left a loop device attached"
    );
}

/// Loop devices attached to a tcvault FUSE file (under /run/tcvault).
fn tcvault_loop_devices() -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir("/sys/block")
        .expect("/sys/block")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let b = loop_backing_file(&Path::new("/dev").join(&name))?;
            b.starts_with(tcvault::mount::state::RUN_DIR)
                .then(|| format!("{name} {b}"))
        })
        .collect();
    v.sort();
    v
}

/// `--slot N`: the state lands in /run/tcvault/slotN and `list` shows slot N; another volume
/// asking for that slot is refused with a message naming the holder, before its password is
/// used (a wrong one gets the same answer); slots outside 1..=64 are a usage error; unmounting
/// a volume that is not mounted says so. Then `unmount --all` with two volumes mounted:
/// both leave `list` and mountinfo, their loop devices are detached, the mount point tcvault
/// made is removed and the one that existed before is kept.
#[test]
fn slot_choice_and_unmount_all() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let a = formatted_volume(&dir, "a.hc", 16 << 20, FsKind::Ext4);
    let b = formatted_volume(&dir, "b.hc", 16 << 20, FsKind::Fat);
    let unlock = test_unlock(&dir);
    let mpa = dir.path().join("a-mnt");
    let mpb = dir.path().join("b-mnt");
    fs::create_dir(&mpb).expect("make b's mount point");
    let _c = Cleanup(vec![mpa.clone(), mpb.clone()]);
    let n = free_slot(37);
    let ns = n.to_string();

    let out = mount_ok(&a, &unlock, &["--slot", &ns, path_str(&mpa)]);
    assert!(out.contains(&format!("slot {n}")), "{out}");
    let state_file = tcvault::mount::state::slot_dir(n).join("state.json");
    let st: Value = serde_json::from_slice(&fs::read(&state_file).expect("state.json in the slot"))
        .expect("state.json is JSON");
    assert_eq!(st["slot"], n);
    let abs_a = std::path::absolute(&a).expect("absolute path");
    assert_eq!(st["volume"].as_str(), abs_a.to_str());
    assert_eq!(list_entry(&a)["slot"], n);

    let wrong = dir.path().join("wrong");
    fs::write(&wrong, b"not the password").expect("write a wrong password");
    for pw in [unlock[1].clone(), wrong.display().to_string()] {
        let mut u = unlock.clone();
        u[1] = pw;
        let out = mount_cmd(&b, &u, &["--slot", &ns, path_str(&mpb)]);
        assert_eq!(out.status.code(), Some(4), "slot {n} given twice");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("slot {n} is in use")) && err.contains(path_str(&abs_a)),
            "the refusal names the slot and its volume: {err}"
        );
        assert!(!common_is_mounted(&mpb));
    }
    for bad in ["0", "65"] {
        let out = mount_cmd(&b, &unlock, &["--slot", bad, path_str(&mpb)]);
        assert_eq!(out.status.code(), Some(2), "--slot {bad} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--slot must be 1 to 64"), "{err}");
    }
    let out = run(tcvault().arg("unmount").arg(&b));
    assert_eq!(
        out.status.code(),
        Some(4),
        "unmount of a volume not mounted"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not mounted by tcvault"), "{err}");
    let abs_b = std::path::absolute(&b).expect("absolute path");
    assert!(
        list()
            .iter()
            .all(|e| e["volume"].as_str() != abs_b.to_str())
    );
    assert_eq!(list_entry(&a)["slot"], n, "the refusal disturbed slot {n}");

    mount_ok(&b, &unlock, &[path_str(&mpb)]);
    let eb = list_entry(&b);
    assert_ne!(eb["slot"], n);
    let ea = list_entry(&a);
    let ours: Vec<(String, PathBuf)> = [&ea, &eb]
        .iter()
        .map(|e| {
            (
                e["device"].as_str().expect("device").to_string(),
                PathBuf::from(e["fuse_dir"].as_str().expect("fuse_dir")),
            )
        })
        .collect();
    // `--all` stops every tcvault mount on the machine: wait until only ours are left.
    let deadline = Instant::now() + Duration::from_secs(60);
    while list().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "other tcvault mounts on this machine: {:?}",
            list()
        );
        std::thread::sleep(Duration::from_millis(500));
    }

    let out = run_ok(tcvault().args(["unmount", "--all"]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("unmounted").count(), 2, "{text}");
    assert!(list().is_empty(), "still listed: {:?}", list());
    assert!(!common_is_mounted(&mpa) && !common_is_mounted(&mpb));
    assert!(!mpa.exists(), "the mount point tcvault made is still there");
    assert!(
        mpb.is_dir(),
        "the mount point given by the user was removed"
    );
    for (dev, fuse_dir) in &ours {
        let b = loop_backing_file(Path::new(dev));
        assert!(
            b.is_none_or(|b| !Path::new(&b).starts_with(fuse_dir)),
            "{dev} still attached to {}",
            fuse_dir.display()
        );
        assert!(!fuse_dir.exists(), "{} left behind", fuse_dir.display());
    }
    assert!(!tcvault::mount::state::slot_dir(n).exists());
}

/// A leftover state entry whose service is gone (a dead pid, as after a crash): `list` shows
/// it with alive=false, `mount --slot` of that slot says how to clean it, `unmount VOLUME`
/// removes it (and the mount point it had made), and the volume then mounts in that slot. A
/// leftover holding only a pid file is listed and cleaned by slot number.
#[test]
fn stale_state_entry_is_listed_and_removed() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = formatted_volume(&dir, "stale.hc", 16 << 20, FsKind::Ext4);
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    fs::create_dir(&mp).expect("make the stale mount point");
    let n = free_slot(50);
    let slot_dir = tcvault::mount::state::slot_dir(n);
    let _c = Cleanup(vec![vol.clone(), mp.clone()]);
    let abs = std::path::absolute(&vol).expect("absolute path");
    let (volume_dev, volume_ino) = tcvault::mount::state::identity(&abs).expect("identity");
    let stale = tcvault::mount::MountState {
        slot: n,
        pid: dead_pid(),
        phase: "mounted".into(),
        volume: abs.clone(),
        volume_dev,
        volume_ino,
        mountpoint: Some(mp.clone()),
        created_mountpoint: true,
        device: None,
        fuse_dir: slot_dir.join("fuse"),
        filesystem: Some("ext4".into()),
        driver: Some("kernel ext4".into()),
        chain: "AES".into(),
        prf: "sha512".into(),
        kind: "normal".into(),
        read_only: false,
        protect_hidden: false,
        protection_tripped: false,
        loop_direct_io: true,
        user_mode: false,
        started: 1,
    };
    fs::create_dir_all(slot_dir.join("fuse")).expect("make the stale slot");
    fs::write(
        slot_dir.join("state.json"),
        serde_json::to_vec(&stale).expect("encode state"),
    )
    .expect("write the stale state");

    let e = list_entry(&vol);
    assert_eq!(e["alive"], false, "{e}");
    assert_eq!(e["slot"], n);
    let table = run_ok(tcvault().arg("list")).stdout;
    assert!(
        String::from_utf8_lossy(&table).contains("service gone"),
        "the table does not mark the stale entry"
    );
    let out = mount_cmd(&vol, &unlock, &["--slot", &n.to_string(), path_str(&mp)]);
    assert_eq!(out.status.code(), Some(4), "a stale slot was taken over");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("tcvault unmount {n}")),
        "the refusal says how to clean up: {err}"
    );

    let out = run_ok(tcvault().arg("unmount").arg(&vol));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cleaned up"), "{text}");
    assert!(!slot_dir.exists(), "the stale slot is still there");
    assert!(!mp.exists(), "the stale entry's mount point is still there");
    assert!(list().iter().all(|e| e["slot"] != n));

    let out = mount_ok(&vol, &unlock, &["--slot", &n.to_string(), path_str(&mp)]);
    assert!(out.contains(&format!("slot {n}")), "{out}");
    let e = list_entry(&vol);
    assert_eq!(e["alive"], true, "{e}");
    assert_eq!(e["slot"], n, "{e}");
    fs::write(mp.join("after.txt"), b"after").expect("write after the cleanup");
    unmount_ok(&mp);

    // Only a pid file, as when a service died before writing its state.
    let m = free_slot(50);
    let leftover = tcvault::mount::state::slot_dir(m);
    fs::create_dir(&leftover).expect("make the leftover slot");
    fs::write(leftover.join("pid"), dead_pid().to_string()).expect("write pid");
    let e = list()
        .into_iter()
        .find(|e| e["slot"] == m)
        .expect("the leftover is listed");
    assert_eq!(e["alive"], false, "{e}");
    let out = run_ok(tcvault().arg("unmount").arg(m.to_string()));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("cleaned up slot {m}")));
    assert!(!leftover.exists(), "the leftover slot is still there");
}

/// The service outlives the terminal and stops cleanly on SIGTERM: without MOUNTPOINT the
/// volume is mounted under /media/tcvault/ (printed); the service runs in a session of its own
/// and ignores SIGHUP (what closing the terminal sends); SIGTERM alone unmounts, detaches and
/// removes the state and the mount point it made, and a file written without fsync is on
/// the volume after a remount.
#[test]
fn service_survives_sighup_and_stops_cleanly_on_sigterm() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let name = format!("tcvault-test-{}.hc", std::process::id());
    let vol = formatted_volume(&dir, &name, 16 << 20, FsKind::Ext4);
    let unlock = test_unlock(&dir);
    let _c = Cleanup(vec![vol.clone()]);
    let out = mount_ok(&vol, &unlock, &[]);
    let e = list_entry(&vol);
    let mp = PathBuf::from(e["mountpoint"].as_str().expect("a mount point"));
    assert!(
        mp.starts_with("/media/tcvault") && out.contains(path_str(&mp)),
        "default mount point {} not under /media/tcvault or not printed: {out}",
        mp.display()
    );
    assert!(common_is_mounted(&mp));
    assert_eq!(e["created_mountpoint"], true);
    let pid = e["pid"].as_u64().expect("pid");
    let session = |pid: u64| -> u64 {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat of a process");
        // The fields after the command name (which ends with the last ')').
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        rest.split(' ')
            .nth(3)
            .and_then(|s| s.parse().ok())
            .expect("session id")
    };
    assert_eq!(
        session(pid),
        pid,
        "the service did not start its own session"
    );
    assert_ne!(session(u64::from(std::process::id())), pid);

    let signal = |sig: &str| {
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill {sig} {pid}");
    };
    signal("-HUP");
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(
        list_entry(&vol)["alive"],
        true,
        "SIGHUP stopped the service"
    );
    assert!(common_is_mounted(&mp), "SIGHUP unmounted the volume");

    let data = random_bytes(3 << 20, 99);
    fs::write(mp.join("unsynced.bin"), &data).expect("write without fsync");
    let dev = PathBuf::from(e["device"].as_str().expect("device"));
    let fuse_dir = PathBuf::from(e["fuse_dir"].as_str().expect("fuse_dir"));
    signal("-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(Instant::now() < deadline, "the service ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!common_is_mounted(&mp), "still mounted after SIGTERM");
    assert!(
        !mp.exists(),
        "the default mount point is left after SIGTERM"
    );
    let abs = std::path::absolute(&vol).expect("absolute path");
    assert!(list().iter().all(|x| x["volume"].as_str() != abs.to_str()));
    assert!(
        loop_backing_file(&dev).is_none_or(|b| !Path::new(&b).starts_with(&fuse_dir)),
        "{} still attached after SIGTERM",
        dev.display()
    );

    let mp = dir.path().join("again");
    mount_ok(&vol, &unlock, &["--read-only", path_str(&mp)]);
    assert!(
        fs::read(mp.join("unsynced.bin")).expect("the file written before SIGTERM") == data,
        "the file written before SIGTERM differs"
    );
    unmount_ok(&mp);
}

/// A sparse volume file on a filesystem with less room than the file's holes: a read-write
/// mount warns (naming the file and both sizes) and still mounts; a read-only mount, and a
/// sparse volume with room enough, do not warn.
#[test]
fn sparse_volume_short_of_host_space_warns() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    // A 48 MiB ext4 filesystem as the host, holding a 128 MiB sparse volume.
    let img = dir.path().join("host.img");
    fs::File::create(&img)
        .and_then(|f| f.set_len(48 << 20))
        .expect("host image");
    let mk = Command::new("mkfs.ext4")
        .args(["-q", "-F"])
        .arg(&img)
        .status()
        .expect("mkfs.ext4");
    assert!(mk.success());
    let host_dir = dir.path().join("host");
    fs::create_dir(&host_dir).expect("host dir");
    let st = Command::new("mount")
        .args(["-o", "loop"])
        .arg(&img)
        .arg(&host_dir)
        .status()
        .expect("mount the host image");
    assert!(st.success());
    struct Umount(PathBuf);
    impl Drop for Umount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _host = Umount(host_dir.clone());
    let vol = host_dir.join("sparse.hc");
    make_volume(&vol, 128 << 20);
    let unlock = test_unlock(&dir);
    let _c = Cleanup(vec![vol.clone()]);

    // Standard error of a command that must succeed.
    let stderr_of =
        |cmd: &mut assert_cmd::Command| String::from_utf8_lossy(&run_ok(cmd).stderr).into_owned();
    let mount = |vol: &Path, extra: &[&str]| {
        stderr_of(tcvault().arg("mount").arg(vol).args(&unlock).args(extra))
    };

    let err = mount(&vol, &["--no-filesystem"]);
    assert!(
        err.contains("warning")
            && err.contains("sparse")
            && err.contains(vol.to_str().expect("path")),
        "no warning about the host's space: {err}"
    );
    unmount_ok(&vol);

    let err = mount(&vol, &["--no-filesystem", "--read-only"]);
    assert!(
        !err.contains("sparse"),
        "a read-only mount cannot fill the holes: {err}"
    );
    unmount_ok(&vol);

    // create --quick says the same of a new sparse volume there.
    let pw = password_file(&dir, TEST_PASSWORD);
    let err = stderr_of(
        tcvault()
            .args(["create", "--quick", "--size", "96M", "--pim", "1"])
            .arg("--password-file")
            .arg(&pw)
            .arg(host_dir.join("new.hc")),
    );
    assert!(
        err.contains("warning") && err.contains("new.hc") && err.contains("sparse"),
        "create --quick did not warn: {err}"
    );

    // The same volume where there is room: no warning.
    let roomy = dir.path().join("roomy.hc");
    make_volume(&roomy, 128 << 20);
    let err = mount(&roomy, &["--no-filesystem"]);
    assert!(!err.contains("sparse"), "{err}");
    unmount_ok(&roomy);
}

/// A volume with no filesystem, and one whose filesystem has no driver (a swap signature:
/// neither the kernel nor a FUSE driver mounts it), fail with a message saying so and
/// pointing to `--no-filesystem`; nothing stays mounted, listed or attached, and the mount
/// point made for the attempt is removed.
#[test]
fn no_filesystem_and_missing_driver_said_clearly() {
    let Some(_g) = mount_env() else { return };
    let dir = temp_dir();
    let vol = dir.path().join("raw.hc");
    make_volume(&vol, 8 << 20);
    let unlock = test_unlock(&dir);
    let mp = dir.path().join("mnt");
    let _c = Cleanup(vec![vol.clone()]);
    let abs = std::path::absolute(&vol).expect("absolute path");
    let refused = |what: &str| {
        let loops_before = tcvault_loop_devices();
        let out = mount_cmd(&vol, &unlock, &[path_str(&mp)]);
        assert_eq!(out.status.code(), Some(1), "{what}: mount must fail");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(err.contains("--no-filesystem"), "{what}: no hint: {err}");
        assert!(!common_is_mounted(&mp), "{what}: mounted anyway");
        assert!(!mp.exists(), "{what}: the mount point made is left");
        assert!(list().iter().all(|e| e["volume"].as_str() != abs.to_str()));
        assert_eq!(tcvault_loop_devices(), loops_before, "{what}: loop left");
        err
    };
    // The data area was never written: it decrypts to noise.
    let err = refused("no filesystem");
    assert!(err.contains("no filesystem found"), "{err}");

    let out = mount_ok(&vol, &unlock, &["--no-filesystem"]);
    let dev = PathBuf::from(out.trim());
    let made = Command::new("mkswap")
        .arg(&dev)
        .output()
        .expect("run mkswap (util-linux)");
    assert!(made.status.success(), "mkswap failed: {made:?}");
    unmount_ok(&dev);
    let err = refused("swap");
    assert!(
        err.contains("no driver for the swap filesystem"),
        "the message names the missing driver: {err}"
    );
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
    format_volume(open_test_volume(&path), FsKind::Ext4, Some("bench"), false)
        .expect("format ext4");
}
