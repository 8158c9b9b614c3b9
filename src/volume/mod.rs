//! Layer 3: volumes on files and block devices.
//!
//! [`Host`] is the file or device holding a volume (or a header backup file); [`Volume`] is a
//! host whose header a password opened, with sector I/O over its decrypted data area.
//! [`keyfiles`] reads keyfiles (and keyfile directories) from disk; [`write`](mod@write) creates volumes
//! and rewrites, backs up and restores headers; [`hidden`] adds hidden volumes; [`probe`] recognises filesystem signatures.
//! [`truncated`] opens volumes whose host is cut short, for reading what is left.

pub mod hidden;
pub mod keyfiles;
pub mod probe;
pub mod truncated;
pub mod write;

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use crate::crypto::xts::DATA_UNIT;
use crate::header::layout::{
    DataArea, HEADER_SIZE, HostKind, MIN_LEGACY_VOLUME_SIZE, MIN_VOLUME_SIZE, Slot,
};
use crate::header::unlock::{Candidate, Credentials, UnlockError, UnlockOptions, UnlockedHeader};

/// Why a volume could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The path does not exist.
    #[error("{path}: no such file or device")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The path is a directory.
    #[error("{path}: is a directory, not a volume")]
    IsDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// No permission to read.
    #[error("{path}: permission denied")]
    PermissionDenied {
        /// The path given.
        path: PathBuf,
    },
    /// Smaller than any volume or backup file.
    #[error(
        "{path}: {size} bytes is too small for a volume (at least {min} bytes; {MIN_VOLUME_SIZE} \
         since TrueCrypt 6.0) or a header backup (131072 or 1024 bytes)"
    )]
    TooSmall {
        /// The path given.
        path: PathBuf,
        /// Its size.
        size: u64,
        /// The smallest volume.
        min: u64,
    },
    /// Not a regular file or block device.
    #[error("{path}: not a regular file or block device")]
    NotAFileOrDevice {
        /// The path given.
        path: PathBuf,
    },
    /// An I/O error on the host.
    #[error("{path}: {what}")]
    Io {
        /// The path given.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No header opened.
    #[error(transparent)]
    Unlock(#[from] UnlockError),
    /// The requested header slots do not exist in this host.
    #[error("{path}: has no {what} header slot")]
    NoSuchSlot {
        /// The path given.
        path: PathBuf,
        /// Which slot kind was asked for.
        what: &'static str,
    },
    /// The header places the data area beyond the end of the host.
    #[error(
        "{path}: the header says the data area ends at byte {end}, but the host has only {size} \
         bytes (truncated volume?)"
    )]
    Truncated {
        /// The path given.
        path: PathBuf,
        /// End of the data area according to the header.
        end: u64,
        /// Actual host size.
        size: u64,
    },
    /// The data area is whole, but the host ends inside the embedded backup headers after it:
    /// a header rewrite would put them on data.
    #[error(
        "{path}: the host ends at byte {size}, inside the embedded backup headers that follow \
         the data area (which ends at byte {data_end}; truncated volume?)"
    )]
    BackupHeadersCut {
        /// The path given.
        path: PathBuf,
        /// End of the data area according to the header.
        data_end: u64,
        /// Actual host size.
        size: u64,
    },
    /// A header backup file has headers but no data.
    #[error("{path}: is a header backup file; it holds no data")]
    NoDataArea {
        /// The path given.
        path: PathBuf,
    },
}

/// What [`Host::sparse_space`] finds: a sparse host file can run out of room before it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseSpace {
    /// Bytes of the file not yet allocated on its filesystem.
    pub unallocated: u64,
    /// Bytes its filesystem has free (for root, which the mount service runs as).
    pub free: u64,
}

impl SparseSpace {
    /// Whether filling the file's holes would need more than its filesystem has free.
    pub fn short(&self) -> bool {
        self.unallocated > self.free
    }
}

/// A file or block device that holds a volume or a header backup, opened for reading (and for
/// writing when asked).
#[derive(Debug)]
pub struct Host {
    file: File,
    path: PathBuf,
    size: u64,
    kind: HostKind,
    block_device: bool,
}

impl Host {
    /// Opens `path` read-only and classifies it by size.
    ///
    /// # Errors
    /// Missing path, a directory, no permission, something that is neither a regular file nor a
    /// block device, or a host too small for any volume or backup file.
    pub fn open(path: &Path) -> Result<Host, VolumeError> {
        Self::open_mode(path, false)
    }

    /// Opens `path` for reading and writing; otherwise as [`Host::open`].
    ///
    /// # Errors
    /// As [`Host::open`]; a read-only file or file system is [`VolumeError::PermissionDenied`]
    /// or an I/O error.
    pub fn open_writable(path: &Path) -> Result<Host, VolumeError> {
        Self::open_mode(path, true)
    }

    fn open_mode(path: &Path, writable: bool) -> Result<Host, VolumeError> {
        let p = path.to_path_buf();
        let file = open_without_blocking(path, writable);
        let file = file.map_err(|e| match e.kind() {
            // A FIFO opened for writing without a reader.
            _ if e.raw_os_error() == Some(libc::ENXIO) => {
                VolumeError::NotAFileOrDevice { path: p.clone() }
            }
            io::ErrorKind::NotFound => VolumeError::NotFound { path: p.clone() },
            io::ErrorKind::PermissionDenied => VolumeError::PermissionDenied { path: p.clone() },
            _ => VolumeError::Io {
                path: p.clone(),
                what: "cannot open",
                source: e,
            },
        })?;
        let meta = file.metadata().map_err(|e| VolumeError::Io {
            path: p.clone(),
            what: "cannot stat",
            source: e,
        })?;
        let ft = meta.file_type();
        if ft.is_dir() {
            return Err(VolumeError::IsDirectory { path: p });
        }
        let block_device = ft.is_block_device();
        if !ft.is_file() && !block_device {
            return Err(VolumeError::NotAFileOrDevice { path: p });
        }
        let size = if block_device {
            device_size(&file).map_err(|e| VolumeError::Io {
                path: p.clone(),
                what: "cannot read the device size",
                source: e,
            })?
        } else {
            meta.len()
        };
        let kind = HostKind::of_size(size);
        if kind == HostKind::Volume && size < MIN_LEGACY_VOLUME_SIZE {
            return Err(VolumeError::TooSmall {
                path: p,
                size,
                min: MIN_LEGACY_VOLUME_SIZE,
            });
        }
        Ok(Host {
            file,
            path: p,
            size,
            kind,
            block_device,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Volume or backup file.
    pub fn kind(&self) -> HostKind {
        self.kind
    }

    /// Whether it is a block device.
    pub fn is_block_device(&self) -> bool {
        self.block_device
    }

    /// For a host file with holes (a sparse file, as `create --quick` makes): how much of it is
    /// not yet allocated, and how much its filesystem has free for root. `None` for a block
    /// device, a fully allocated file, or when the filesystem cannot tell.
    pub fn sparse_space(&self) -> Option<SparseSpace> {
        use std::os::unix::fs::MetadataExt;
        if self.block_device {
            return None;
        }
        let allocated = self.file.metadata().ok()?.blocks().saturating_mul(512);
        let unallocated = self.size.saturating_sub(allocated);
        if unallocated == 0 {
            return None;
        }
        let fs = rustix::fs::fstatvfs(&self.file).ok()?;
        Some(SparseSpace {
            unallocated,
            free: fs.f_bfree.saturating_mul(fs.f_frsize),
        })
    }

    /// Reads exactly `buf.len()` bytes at `offset`.
    ///
    /// # Errors
    /// An I/O error, or a short read (unexpected end of file).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        self.file
            .read_exact_at(buf, offset)
            .map_err(|e| VolumeError::Io {
                path: self.path.clone(),
                what: "read failed",
                source: e,
            })
    }

    /// Writes all of `buf` at `offset` (not synced: see [`Host::sync`]).
    ///
    /// # Errors
    /// An I/O error (a host opened read-only, a full disk, a failing device).
    pub fn write_at(&self, offset: u64, buf: &[u8]) -> Result<(), VolumeError> {
        use std::os::unix::fs::FileExt;
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| VolumeError::Io {
                path: self.path.clone(),
                what: "write failed",
                source: e,
            })
    }

    /// Flushes written data to the device (`fsync`).
    ///
    /// # Errors
    /// An I/O error reported by the file system or device.
    pub fn sync(&self) -> Result<(), VolumeError> {
        self.file.sync_all().map_err(|e| VolumeError::Io {
            path: self.path.clone(),
            what: "sync failed",
            source: e,
        })
    }

    /// The open file, for callers that need its descriptor (direct I/O, `ioctl`s).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Reads the headers of `slots` that exist in this host.
    ///
    /// # Errors
    /// An I/O error; [`VolumeError::NoSuchSlot`] when none of `slots` exists here.
    pub fn candidates(&self, slots: &[Slot]) -> Result<Vec<Candidate>, VolumeError> {
        let mut out = Vec::new();
        for &slot in slots {
            if let Some(off) = slot.offset(self.kind, self.size) {
                let mut bytes = [0u8; HEADER_SIZE];
                self.read_at(off, &mut bytes)?;
                out.push(Candidate { slot, bytes });
            }
        }
        if out.is_empty() {
            return Err(VolumeError::NoSuchSlot {
                path: self.path.clone(),
                what: slots.first().map_or("any", |s| s.id()),
            });
        }
        Ok(out)
    }
}

/// Opens `path` without ever blocking in `open` (a FIFO with no writer would block forever):
/// with `O_NONBLOCK`, cleared again once open, so the caller checks the file type on the open
/// file and reads and writes as usual.
///
/// # Errors
/// The open's error, or `fcntl`'s.
pub(crate) fn open_without_blocking(path: &Path, writable: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(writable)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let flags = rustix::fs::fcntl_getfl(&file)?;
    rustix::fs::fcntl_setfl(&file, flags - rustix::fs::OFlags::NONBLOCK)?;
    Ok(file)
}

/// The size of a block device: seeking to its end is the portable way that needs no ioctl.
/// The size of the block device (or file) open as `file`: where its end is. (`metadata().len()`
/// is 0 for a block device.) It moves the file's position to the end: callers read and write
/// at explicit offsets.
///
/// # Errors
/// The seek's error.
pub fn device_size(file: &File) -> io::Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = file.try_clone()?;
    f.seek(SeekFrom::End(0))
}

/// Which header slots to try.
#[derive(Debug, Clone, Copy, Default)]
pub struct SlotChoice {
    /// Only the hidden-volume slot(s).
    pub hidden: bool,
    /// The embedded backup headers instead of the primary ones.
    pub backup: bool,
    /// The system-encryption header (sector 62).
    pub system: bool,
}

impl SlotChoice {
    /// The slots to read, in the order they are tried.
    pub fn slots(self) -> Vec<Slot> {
        match (self.system, self.backup, self.hidden) {
            (true, _, _) => vec![Slot::System],
            (false, true, true) => vec![Slot::BackupHidden],
            (false, true, false) => vec![Slot::BackupNormal, Slot::BackupHidden],
            (false, false, true) => vec![Slot::Hidden, Slot::LegacyHidden],
            (false, false, false) => vec![Slot::Normal, Slot::Hidden, Slot::LegacyHidden],
        }
    }
}

/// A volume whose header has been opened: reads decrypted data.
#[derive(Debug)]
pub struct Volume {
    host: Host,
    unlocked: UnlockedHeader,
    /// Where the data lies (empty for a header backup file).
    area: DataArea,
}

impl Volume {
    /// Opens the volume or backup file at `path` with `creds`.
    ///
    /// # Errors
    /// Any [`Host::open`] error, [`VolumeError::Unlock`] when no header opens, and
    /// [`VolumeError::Truncated`] or [`VolumeError::BackupHeadersCut`] when the volume the
    /// header describes does not fit in the host.
    pub fn open(
        path: &Path,
        creds: &Credentials,
        slots: SlotChoice,
        opts: &UnlockOptions,
    ) -> Result<Volume, VolumeError> {
        Self::open_on(Host::open(path)?, creds, slots, opts)
    }

    /// As [`Volume::open`], on a host already opened (read-only or writable).
    ///
    /// # Errors
    /// As [`Volume::open`].
    pub fn open_on(
        host: Host,
        creds: &Credentials,
        slots: SlotChoice,
        opts: &UnlockOptions,
    ) -> Result<Volume, VolumeError> {
        truncated::ReadableVolume::open_on(host, creds, slots, opts)?.into_volume()
    }

    /// A volume from a header already opened on `host`.
    ///
    /// # Errors
    /// [`VolumeError::Truncated`] when the header's data area does not fit in the host,
    /// [`VolumeError::BackupHeadersCut`] when the embedded backup headers after it do not.
    pub fn with_header(host: Host, unlocked: UnlockedHeader) -> Result<Volume, VolumeError> {
        truncated::ReadableVolume::with_header(host, unlocked)?.into_volume()
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// The opened header.
    pub fn unlocked(&self) -> &UnlockedHeader {
        &self.unlocked
    }

    /// Length of the decrypted data area in bytes (0 for a header backup file).
    pub fn data_len(&self) -> u64 {
        self.area.len
    }

    /// Where the data area lies in the host and how its units are numbered (all zero for a
    /// header backup file).
    pub fn data_area(&self) -> DataArea {
        self.area
    }

    /// Reads and decrypts `buf.len()` bytes of the data area starting at `offset`; both must be
    /// multiples of 512 and the range must lie inside the data area.
    ///
    /// # Errors
    /// [`VolumeError::NoDataArea`] on a header backup file, an I/O error, or
    /// [`VolumeError::Truncated`] for a range beyond the data area.
    pub fn read_data(&self, offset: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        let host_offset = self.data_range_check(offset, buf.len())?;
        self.host.read_at(host_offset, buf)?;
        self.unlocked
            .data_cipher()
            .decrypt(buf, self.unit_at(offset));
        Ok(())
    }

    /// Encrypts `buf` (whole data units) in place and writes it at `offset` of the data area.
    /// `buf` holds ciphertext afterwards. The host must have been opened writable.
    ///
    /// # Errors
    /// As [`Volume::read_data`], plus write errors.
    pub fn write_data(&self, offset: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        let host_offset = self.data_range_check(offset, buf.len())?;
        self.unlocked
            .data_cipher()
            .encrypt(buf, self.unit_at(offset));
        self.host.write_at(host_offset, buf)
    }

    /// The cipher's number for the data unit at `offset` of the data area.
    fn unit_at(&self, offset: u64) -> u64 {
        self.area.first_unit + offset / DATA_UNIT as u64
    }

    /// Checks that `offset..offset+len` is whole data units inside the data area and returns
    /// the host offset where it starts.
    fn data_range_check(&self, offset: u64, len: usize) -> Result<u64, VolumeError> {
        if self.host.kind != HostKind::Volume {
            return Err(VolumeError::NoDataArea {
                path: self.host.path.clone(),
            });
        }
        let unit = DATA_UNIT as u64;
        let len = len as u64;
        let end = offset.checked_add(len);
        if !offset.is_multiple_of(unit)
            || !len.is_multiple_of(unit)
            || end.is_none_or(|e| e > self.data_len())
        {
            return Err(VolumeError::Truncated {
                path: self.host.path.clone(),
                end: end.unwrap_or(u64::MAX),
                size: self.data_len(),
            });
        }
        Ok(self.area.start + offset)
    }
}
