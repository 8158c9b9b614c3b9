//! Layer 4a: unlocked volumes as block devices and mounted filesystems.
//!
//! A [`Backend`] turns a volume's decrypted data area ([`area::KeyedArea`]) into a block device;
//! the one backend today is [`fuse::FuseBackend`] (a private FUSE file with a loop device on
//! it; this kernel has no device-mapper). [`service`] runs that in a background process that
//! outlives the command, keeps its state under `/run/tcvault/` ([`state`]), mounts the
//! filesystem found on the device ([`fs`]), and tears everything down on unmount or SIGTERM.
//! [`format_volume`] uses the same path in-process to make a filesystem on a new volume.
//!
//! User mode (`MountRequest::user_mode`, what an ordinary user gets) needs no root: no loop
//! device and no kernel mount; the FUSE file itself goes to a FUSE filesystem driver
//! (`fuse2fs`, `fusefat`, `ntfs-3g`) running as the user, unmounts go through
//! `fusermount3`, and the state lives in the user's runtime directory.

pub mod area;
pub mod fs;
pub mod fuse;
pub mod loopdev;
pub mod service;
pub mod state;
#[allow(unsafe_code)]
mod sys;
pub mod table;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use area::{AreaSpec, KeyedArea};
pub use fs::FsKind;
pub use service::{MountRequest, UnmountOutcome, list, start, unmount};
pub use state::MountState;

use crate::volume::{Volume, VolumeError};

/// Why mounting, unmounting or formatting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// An I/O error on a named path.
    #[error("{path}: {what}")]
    Io {
        /// The path.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Opening the volume failed.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// A program the operation needs is not installed.
    #[error("{program} is not installed (Debian package {package})")]
    MissingProgram {
        /// The program.
        program: String,
        /// Where to get it.
        package: String,
    },
    /// Neither the kernel nor an installed FUSE driver can mount this filesystem (in user mode:
    /// no FUSE driver that runs as the user).
    #[error("{}", no_driver_message(fstype, install.as_deref(), *user_mode))]
    NoDriver {
        /// blkid's name of the filesystem.
        fstype: String,
        /// A package that would provide a driver.
        install: Option<String>,
        /// A user-mode mount, where only FUSE drivers count.
        user_mode: bool,
    },
    /// blkid found no filesystem on the decrypted device.
    #[error("no filesystem found on the decrypted volume")]
    NoFilesystem,
    /// An external program failed.
    #[error("{program} failed (exit status {status}): {message}")]
    ToolFailed {
        /// The program.
        program: String,
        /// Its exit status.
        status: i32,
        /// What it printed.
        message: String,
    },
    /// The volume is already mounted.
    #[error("{volume} is already mounted (slot {slot}{})",
        mountpoint.as_ref().map(|m| format!(", at {}", m.display())).unwrap_or_default())]
    AlreadyMounted {
        /// The volume.
        volume: PathBuf,
        /// Its slot.
        slot: u32,
        /// Where.
        mountpoint: Option<PathBuf>,
    },
    /// The requested slot is taken.
    #[error("slot {slot} is in use")]
    SlotInUse {
        /// The slot.
        slot: u32,
    },
    /// Files are open on the mount (or the device is in use).
    #[error("{target} is busy: {}", users.join(", "))]
    Busy {
        /// The mount point or device.
        target: PathBuf,
        /// "PID (command, how)" for each user found; may be empty when the kernel says busy
        /// but no process could be named.
        users: Vec<String>,
    },
    /// Nothing mounted matches.
    #[error("{0}: not mounted by tcvault")]
    NotMounted(PathBuf),
    /// Options that do not fit together.
    #[error("{0}")]
    Usage(String),
    /// Something this machine or user lacks for the operation (access to /dev/fuse, a safe
    /// state directory).
    #[error("{0}")]
    Unavailable(String),
    /// The mount service reported an error or went away.
    #[error("mount service: {0}")]
    Service(String),
    /// The mount service found no driver for the filesystem (its message says which).
    #[error("mount service: {0}")]
    ServiceNoDriver(String),
    /// A malformed message between the command and the service, or another internal problem.
    #[error("{0}")]
    Protocol(String),
}

fn no_driver_message(fstype: &str, install: Option<&str>, user_mode: bool) -> String {
    match (user_mode, install) {
        (false, None) => format!("no driver for the {fstype} filesystem: the kernel has none"),
        (false, Some(p)) => format!(
            "no driver for the {fstype} filesystem: the kernel has none and the FUSE driver is \
             not installed (Debian package {p})"
        ),
        (true, None) => format!(
            "no driver that runs without root for the {fstype} filesystem (user mode mounts \
             ext2/3/4, FAT and NTFS); mount it as root"
        ),
        (true, Some(p)) => {
            format!("mounting {fstype} without root needs its FUSE driver (Debian package {p})")
        }
    }
}

impl MountError {
    pub(crate) fn io(path: &Path, what: &'static str, source: io::Error) -> MountError {
        MountError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    }
}

/// Something that exposes a data area as a block device.
pub trait Backend {
    /// Short name for messages.
    fn name(&self) -> &'static str;
    /// Exposes `area` as a block device, keeping private files under `work_dir`; `label`
    /// names it in mount tables.
    ///
    /// # Errors
    /// The device cannot be set up.
    fn attach(
        &self,
        area: Arc<KeyedArea>,
        work_dir: &Path,
        label: &str,
    ) -> Result<Box<dyn Attached>, MountError>;
}

/// A block device a [`Backend`] set up.
pub trait Attached: Send + std::fmt::Debug {
    /// The block device.
    fn device(&self) -> &Path;
    /// Whether the device does direct I/O to what is below it.
    fn direct_io(&self) -> bool;
    /// Makes the device refuse writes from now on, at once: a program (a FUSE filesystem
    /// driver, or `dd` on the device) then gets an error from the write itself instead of
    /// having it cached for a write-back that will fail. Undone at detach.
    ///
    /// # Errors
    /// The kernel refused.
    fn refuse_writes(&mut self) -> Result<(), MountError>;
    /// Removes the device and stops serving it.
    ///
    /// # Errors
    /// The device could not be removed cleanly (it is still removed as far as possible).
    fn detach(self: Box<Self>) -> Result<(), MountError>;
}

/// Whether this process runs as root (effective user id 0): root mounts through a loop device
/// and the kernel, anyone else in user mode.
pub fn running_as_root() -> bool {
    sys::euid() == 0
}

/// Checks what a user-mode mount needs beyond root's: read-write access to `/dev/fuse` (the
/// FUSE filesystem drivers open it themselves; most distributions make it mode 0666) and
/// `fusermount3` (which mounts and unmounts FUSE filesystems for ordinary users).
///
/// # Errors
/// [`MountError::Unavailable`] saying what is missing, [`MountError::MissingProgram`] for
/// `fusermount3`.
pub fn check_user_mode() -> Result<(), MountError> {
    let dev = Path::new("/dev/fuse");
    if !dev.exists() {
        return Err(MountError::Unavailable(
            "/dev/fuse is missing: this kernel has no FUSE (load it with `modprobe fuse`)".into(),
        ));
    }
    if !sys::can_read_write(dev) {
        return Err(MountError::Unavailable(
            "mounting without root needs read and write access to /dev/fuse, which this \
             machine does not give you (most distributions make it mode 0666; an \
             administrator can run `chmod 0666 /dev/fuse`)"
                .into(),
        ));
    }
    if fs::find_program("fusermount3").is_none() {
        return Err(MountError::MissingProgram {
            program: "fusermount3".into(),
            package: "fuse3".into(),
        });
    }
    Ok(())
}

/// Checks that `fs` can be made on a data area of `data_len` bytes: its mkfs program is
/// installed and the area is not below its minimum ([`FsKind::min_size`]). `create` asks this
/// before the password and the fill.
///
/// # Errors
/// [`MountError::MissingProgram`], or [`MountError::Usage`] for a size too small.
pub fn check_can_format(fs: FsKind, data_len: u64) -> Result<(), MountError> {
    let (prog, pkg) = fs.mkfs_program();
    if fs::find_program(prog).is_none() {
        return Err(MountError::MissingProgram {
            program: prog.into(),
            package: pkg.into(),
        });
    }
    if data_len < fs.min_size() {
        return Err(MountError::Usage(format!(
            "{fs} needs a data area of at least {} bytes ({} MiB); this volume's would be {data_len}",
            fs.min_size(),
            fs.min_size().div_ceil(1 << 20)
        )));
    }
    Ok(())
}

/// Makes filesystem `fs` (with `label`) on `volume`'s data area, through the same FUSE + loop
/// path as `mount` (in user mode, on the FUSE file alone), then tears the path down and syncs
/// the host. The volume's host is reopened for writing by path; `volume` itself may have been
/// opened read-only.
///
/// Needs `/dev/fuse` and the mkfs program (see [`FsKind::mkfs_program`]); without
/// `user_mode`, root and `/dev/loop-control` too.
///
/// # Errors
/// [`MountError::MissingProgram`] when mkfs is not installed, [`MountError::ToolFailed`] when
/// it fails, and I/O errors from setting up the device.
pub fn format_volume(
    volume: Volume,
    fs: FsKind,
    label: Option<&str>,
    user_mode: bool,
) -> Result<(), MountError> {
    check_can_format(fs, volume.data_len())?;
    let area = Arc::new(KeyedArea::of_volume(&volume, false)?);
    drop(volume);
    let work = tempfile::Builder::new()
        .prefix("tcvault-format-")
        .tempdir()
        .map_err(|e| MountError::io(Path::new("/tmp"), "cannot create a directory in", e))?;
    let backend = if user_mode {
        fuse::FuseBackend::user_mode()
    } else {
        fuse::FuseBackend::default()
    };
    let attached = backend.attach(Arc::clone(&area), work.path(), "format")?;
    let made = fs::mkfs(fs, attached.device(), label);
    let detached = attached.detach();
    let synced = area
        .sync()
        .map_err(|e| MountError::io(area.host_path(), "cannot sync", e));
    made.and(detached).and(synced)
}
