//! What is mounted: one directory per slot under the user's state directory ([`run_dir`]:
//! `/run/tcvault/` for root, the user's runtime directory for anyone else), holding
//! `state.json` (written atomically by the service) and the private FUSE mount point. Any
//! `tcvault` process of the same user can read it to list or unmount; an entry whose service
//! is gone is stale and can be cleaned up. Each user sees only their own mounts.

use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::MountError;
use super::sys;

/// Where root's state lives.
pub const RUN_DIR: &str = "/run/tcvault";

/// The state directory of this process's user: [`RUN_DIR`] for root; for anyone else
/// `tcvault/` in `$XDG_RUNTIME_DIR` (the per-user runtime directory systemd-logind makes, mode
/// 0700, emptied at logout), else in `/run/user/UID` when that exists, else `/tmp/tcvault-UID`.
/// [`claim`] refuses a directory that is not the user's own with mode 0700.
pub fn run_dir() -> PathBuf {
    let uid = sys::euid();
    if uid == 0 {
        return PathBuf::from(RUN_DIR);
    }
    let owned = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_dir() && m.uid() == uid && m.mode() & 0o077 == 0)
    };
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from)
        && x.is_absolute()
        && owned(&x)
    {
        return x.join("tcvault");
    }
    let run_user = PathBuf::from(format!("/run/user/{uid}"));
    if owned(&run_user) {
        return run_user.join("tcvault");
    }
    std::env::temp_dir().join(format!("tcvault-{uid}"))
}
/// Highest slot number.
pub const MAX_SLOT: u32 = 64;

/// One mounted volume, as the service describes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountState {
    /// Slot number (1..=64).
    pub slot: u32,
    /// Process id of the service.
    pub pid: u32,
    /// "starting" while being set up, then "mounted".
    pub phase: String,
    /// The volume's path as given (made absolute).
    pub volume: PathBuf,
    /// Device and inode of the volume, to refuse mounting it twice.
    pub volume_dev: u64,
    /// See `volume_dev`.
    pub volume_ino: u64,
    /// Where the filesystem is mounted (none with --no-filesystem).
    pub mountpoint: Option<PathBuf>,
    /// Whether the service created the mount point (and removes it at unmount).
    pub created_mountpoint: bool,
    /// The decrypted block device (`/dev/loopN`), or in user mode the decrypted FUSE file.
    pub device: Option<PathBuf>,
    /// The private FUSE mount holding the decrypted file.
    pub fuse_dir: PathBuf,
    /// Filesystem type found by blkid.
    pub filesystem: Option<String>,
    /// How the filesystem is mounted ("kernel ext4", "fusefat", …).
    pub driver: Option<String>,
    /// Cipher chain.
    pub chain: String,
    /// Key derivation (PRF) that opened the header.
    pub prf: String,
    /// "normal" or "hidden".
    pub kind: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// Hidden-volume protection on.
    pub protect_hidden: bool,
    /// Protection refused a write; the volume is read-only since.
    pub protection_tripped: bool,
    /// The loop device uses direct I/O.
    pub loop_direct_io: bool,
    /// Mounted in user mode: no loop device, the filesystem driver runs as the user on the
    /// FUSE file (`device` is that file).
    #[serde(default)]
    pub user_mode: bool,
    /// Seconds since the epoch when mounted.
    pub started: u64,
}

/// A state entry with liveness.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its slot directory.
    pub dir: PathBuf,
    /// The state (`None` if unreadable, e.g. a crash during start).
    pub state: Option<MountState>,
    /// Slot number.
    pub slot: u32,
    /// Whether the service process is running.
    pub alive: bool,
}

/// The directory of slot `n`.
pub fn slot_dir(n: u32) -> PathBuf {
    run_dir().join(format!("slot{n}"))
}

fn ensure_run_dir() -> Result<(), MountError> {
    let dir = run_dir();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|e| MountError::io(&dir, "cannot create", e))?;
    // In a shared directory such as /tmp someone else may have made it first: the keys'
    // service would then keep its FUSE mount where that user can reach it.
    let m =
        std::fs::symlink_metadata(&dir).map_err(|e| MountError::io(&dir, "cannot examine", e))?;
    if !m.is_dir() || m.uid() != sys::euid() || m.mode() & 0o077 != 0 {
        return Err(MountError::Unavailable(format!(
            "{}: not a directory of your own with mode 0700; remove it or set XDG_RUNTIME_DIR",
            dir.display()
        )));
    }
    Ok(())
}

/// Every slot directory, sorted by slot.
pub fn entries() -> Vec<Entry> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(run_dir()) else {
        return out;
    };
    for e in rd.flatten() {
        let Some(slot) = e
            .file_name()
            .to_str()
            .and_then(|s| s.strip_prefix("slot"))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let dir = e.path();
        let state = read(&dir);
        let pid = state.as_ref().map(|s| s.pid).or_else(|| {
            std::fs::read_to_string(dir.join("pid"))
                .ok()?
                .trim()
                .parse()
                .ok()
        });
        let alive = pid.is_some_and(sys::process_alive);
        out.push(Entry {
            dir,
            state,
            slot,
            alive,
        });
    }
    out.sort_by_key(|e| e.slot);
    out
}

fn read(dir: &Path) -> Option<MountState> {
    let s = std::fs::read(dir.join("state.json")).ok()?;
    serde_json::from_slice(&s).ok()
}

/// Writes `state` into its slot directory atomically.
///
/// # Errors
/// The state file cannot be written.
pub fn write(state: &MountState) -> Result<(), MountError> {
    let dir = slot_dir(state.slot);
    let tmp = dir.join("state.json.tmp");
    let body = serde_json::to_vec_pretty(state)
        .map_err(|e| MountError::Protocol(format!("cannot encode state: {e}")))?;
    let w = || -> io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join("state.json"))
    };
    w().map_err(|e| MountError::io(&dir, "cannot write state in", e))
}

/// Claims slot `want` (or the lowest free one) by creating its directory. A stale slot (its
/// service gone) is never reused: it stays taken until `tcvault unmount` cleans it up.
///
/// # Errors
/// The slot is in use, all are, or the state directory ([`run_dir`]) cannot be written.
pub fn claim(want: Option<u32>) -> Result<(u32, PathBuf), MountError> {
    ensure_run_dir()?;
    let mkdir = |n: u32| -> io::Result<PathBuf> {
        let d = slot_dir(n);
        std::fs::DirBuilder::new().mode(0o700).create(&d)?;
        std::fs::write(d.join("pid"), std::process::id().to_string())?;
        Ok(d)
    };
    if let Some(n) = want {
        if n == 0 || n > MAX_SLOT {
            return Err(MountError::Usage(format!("--slot must be 1 to {MAX_SLOT}")));
        }
        return match mkdir(n) {
            Ok(d) => Ok((n, d)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(MountError::SlotInUse { slot: n })
            }
            Err(e) => Err(MountError::io(&slot_dir(n), "cannot create", e)),
        };
    }
    for n in 1..=MAX_SLOT {
        match mkdir(n) {
            Ok(d) => return Ok((n, d)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MountError::io(&slot_dir(n), "cannot create", e)),
        }
    }
    Err(MountError::Protocol(format!(
        "all {MAX_SLOT} slots are in use"
    )))
}

/// Device and inode of `path`.
///
/// # Errors
/// `path` cannot be examined.
pub fn identity(path: &Path) -> io::Result<(u64, u64)> {
    let m = std::fs::metadata(path)?;
    // A block device is known by the device it is, a file by where it lives.
    if std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()) {
        Ok((m.rdev(), 0))
    } else {
        Ok((m.dev(), m.ino()))
    }
}

/// The live entry that has `path` mounted, if any.
pub fn find_volume(path: &Path) -> Option<Entry> {
    let id = identity(path).ok()?;
    entries().into_iter().find(|e| {
        e.alive
            && e.state
                .as_ref()
                .is_some_and(|s| (s.volume_dev, s.volume_ino) == id)
    })
}

/// Removes a slot directory (after its FUSE mount is gone).
pub fn remove(dir: &Path) {
    let _ = std::fs::remove_file(dir.join("state.json"));
    let _ = std::fs::remove_file(dir.join("state.json.tmp"));
    let _ = std::fs::remove_file(dir.join("pid"));
    let _ = std::fs::remove_file(dir.join("service.log"));
    let _ = std::fs::remove_dir(dir.join("fuse"));
    let _ = std::fs::remove_dir(dir);
}
