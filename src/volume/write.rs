//! Writing volumes and headers: create, change password, header backup and restore.
//!
//! Every header written here was sealed and verified first ([`crate::header::seal`]). The
//! order of writes keeps at least one header that opens on disk whatever moment the process
//! dies at: a new volume gets its primary header last; a password change writes the embedded
//! backup, syncs, then the primary; a restore writes the (broken) primary first, syncs, then
//! the backup. Before a header is overwritten its host's first 128 KiB (normal and hidden
//! header slots) can be kept in a file in the 131,072-byte backup format, which
//! `restore-header --file` takes back.
//!
//! Volumes of TrueCrypt before 6.0 (the legacy layout: one header at 0, a hidden volume's
//! header 1,536 bytes before the end, no embedded backups) are rewritten in their own layout
//! and mode; their backups are the 1,024-byte format. New volumes are never legacy ones.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use super::probe::{self, PROBE_LEN};
use super::{Host, SlotChoice, Volume, VolumeError, device_size};
use crate::crypto::random::{self, RandomError};
use crate::crypto::scheme::{Scheme, SectorCipher};
use crate::crypto::xts::DATA_UNIT;
use crate::header::format::Header;
use crate::header::kdf::Family;
use crate::header::layout::{
    BACKUP_FILE_SIZE, BACKUP_HIDDEN_FROM_END, BACKUP_NORMAL_FROM_END, DATA_AREA_OFFSET, DataArea,
    HEADER_SIZE, HEADER_SLOT_SIZE, HIDDEN_HEADER_OFFSET, HeaderRole, HostKind,
    LEGACY_BACKUP_FILE_SIZE, LEGACY_HIDDEN_FROM_END, MIN_LEGACY_VOLUME_SIZE, MIN_VOLUME_SIZE,
    SALT_LEN, Slot,
};
use crate::header::seal::{
    CURRENT_HEADER_VERSION, Protection, SealError, VERACRYPT_MIN_PROGRAM_VERSION, fake_header,
    new_header, seal, seal_as_before,
};
use crate::header::unlock::{Credentials, UnlockOptions, UnlockedHeader};
use crate::secret::SecretBytes;

/// Bytes encrypted and written per step of the fill: large enough for the engine's threads.
const FILL_CHUNK: usize = 4 * 1024 * 1024;

/// Environment variable that makes header rewrites pause between their two writes, printing
/// a line on standard error, so that tests can kill the process there. Honoured only in builds
/// with the `test-hooks` feature (the test suite's); other builds ignore it.
pub const PAUSE_ENV: &str = "TCVAULT_TEST_PAUSE_BETWEEN_HEADER_WRITES";

/// Why a volume or header could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Opening or reading failed (including a wrong password).
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// A header could not be sealed or did not verify.
    #[error(transparent)]
    Seal(#[from] SealError),
    /// No random bytes.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The target exists and `force` was not given.
    #[error("{path}: already exists")]
    Exists {
        /// The target.
        path: PathBuf,
    },
    /// The file asked to keep the current headers in exists (it is never replaced: it may
    /// hold the only copy of older headers).
    #[error("{path}: already exists; the current headers are kept only in a new file")]
    KeepExists {
        /// The file.
        path: PathBuf,
    },
    /// A size that cannot hold a volume or is not whole sectors.
    #[error("{size} bytes: {why}")]
    BadSize {
        /// The size asked for.
        size: u64,
        /// What is wrong with it.
        why: String,
    },
    /// A device that is mounted or otherwise in use.
    #[error("{path}: the device is in use (mounted, or held by another program)")]
    DeviceBusy {
        /// The device.
        path: PathBuf,
    },
    /// A device that holds a filesystem or partition table.
    #[error("{path}: holds a {what}; creating a volume would destroy it")]
    DeviceHasData {
        /// The device.
        path: PathBuf,
        /// What was found.
        what: &'static str,
    },
    /// The filesystem that would hold a new container has too little room for it.
    #[error("{path}: a {needed}-byte container does not fit; its filesystem has {free} bytes free")]
    NoRoom {
        /// The container to be.
        path: PathBuf,
        /// Its size.
        needed: u64,
        /// What the filesystem has free (for this user).
        free: u64,
    },
    /// Ctrl-C (or another cancel) stopped the work; nothing that opens was left half-written.
    #[error("cancelled; {0}")]
    Cancelled(String),
    /// A header backup file of neither backup size.
    #[error("{path}: {size} bytes is not a header backup (131072 or 1024 bytes)")]
    NotABackup {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// The backup's header does not describe this volume.
    #[error("{path}: {why}")]
    WrongVolume {
        /// The volume.
        path: PathBuf,
        /// What does not match.
        why: String,
    },
    /// The header opened is not of the role its use needs: a backup's normal header that
    /// opened from a hidden slot (the hidden volume's password given as the outer one), or
    /// a header whose fields claim another role than the slot it was read from.
    #[error("{path}: {why}")]
    WrongRole {
        /// The volume.
        path: PathBuf,
        /// What opened and what was needed.
        why: String,
    },
    /// A volume whose header layout this command does not rewrite.
    #[error("{path}: {why}")]
    Unsupported {
        /// The volume.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The directory a new file goes into cannot take it.
    #[error("{path}: cannot create it: the folder {dir} {why}")]
    NoDirectory {
        /// The file asked for.
        path: PathBuf,
        /// Its directory.
        dir: PathBuf,
        /// What is wrong with the directory.
        why: &'static str,
    },
    /// A header write that would land in a data area or past the end of the host; nothing
    /// was written.
    #[error("{path}: refusing to write the header")]
    UnsafePlace {
        /// The volume.
        path: PathBuf,
        /// Which place, and why.
        #[source]
        why: PlaceError,
    },
    /// An I/O error on some file.
    #[error("{path}: {what}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn io_err<'a>(path: &'a Path, what: &'static str) -> impl FnOnce(io::Error) -> WriteError + 'a {
    move |source| WriteError::Io {
        path: path.to_path_buf(),
        what,
        source,
    }
}

/// What a new volume is made of.
#[derive(Clone, Copy, Debug)]
pub struct NewVolume {
    /// Family, key derivation and cipher chain.
    pub prot: Protection,
    /// Sector size recorded in the header (512 for files; 512–4096 for devices).
    pub sector_size: u32,
    /// Skip filling the data area with random-looking data.
    pub quick: bool,
}

/// Where a new volume goes.
#[derive(Clone, Copy, Debug)]
pub enum CreateTarget<'a> {
    /// A new file container of `size` bytes; an existing file is replaced only with `force`.
    File {
        /// The container's path.
        path: &'a Path,
        /// Its size in bytes.
        size: u64,
        /// Replace an existing regular file.
        force: bool,
    },
    /// A whole block device; one holding a filesystem or partition table only with `force`.
    Device {
        /// The device.
        path: &'a Path,
        /// Overwrite whatever the device holds.
        force: bool,
    },
}

/// Progress callback: bytes done, bytes in all.
pub type Progress<'a> = &'a mut dyn FnMut(u64, u64);

/// The data area of a new file container of `size` bytes (the size less the header area at
/// its start and the backup headers at its end).
pub fn data_len_of(size: u64) -> u64 {
    size.saturating_sub(DATA_AREA_OFFSET + BACKUP_NORMAL_FROM_END)
}

/// Checks, before any password is asked for or a byte written, that a fully allocated new
/// container of `size` bytes at `path` fits in its filesystem (`--quick` makes a sparse one,
/// which is warned about instead). An existing file at `path` counts as room (it is replaced).
///
/// # Errors
/// [`WriteError::NoRoom`]; a filesystem that cannot be asked is no error.
pub fn check_room(path: &Path, size: u64) -> Result<(), WriteError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(st) = rustix::fs::statvfs(dir) else {
        return Ok(());
    };
    let free = st.f_bavail.saturating_mul(st.f_frsize);
    let existing = std::fs::metadata(path).map_or(0, |m| m.blocks() * 512);
    if free.saturating_add(existing) < size {
        return Err(WriteError::NoRoom {
            path: path.to_path_buf(),
            needed: size,
            free,
        });
    }
    Ok(())
}

/// Checks that `size` can hold a volume with sectors of `sector_size` bytes.
///
/// # Errors
/// [`WriteError::BadSize`].
pub fn check_volume_size(size: u64, sector_size: u32) -> Result<(), WriteError> {
    let bad = |why: String| Err(WriteError::BadSize { size, why });
    if !(512..=4096).contains(&sector_size) || !sector_size.is_power_of_two() {
        return bad(format!(
            "sector size {sector_size} is not 512, 1024, 2048 or 4096"
        ));
    }
    if size < MIN_VOLUME_SIZE {
        return bad(format!(
            "too small; a volume needs at least {MIN_VOLUME_SIZE} bytes (292 KiB)"
        ));
    }
    if !size.is_multiple_of(u64::from(sector_size)) {
        return bad(format!(
            "not a multiple of the sector size ({sector_size} bytes)"
        ));
    }
    Ok(())
}

/// Creates a volume at `target`: random fill of the data area (unless quick), random-keyed
/// fake headers in both hidden slots, the embedded backup and finally the primary header.
/// A new file container is built as an unnamed file in its folder and named only when complete
/// (`O_TMPFILE`); a cancelled, failed or killed run leaves nothing behind. On a device, the primary
/// header is the last write, so a cancelled run leaves no header at all.
///
/// # Errors
/// See [`WriteError`]; [`WriteError::Cancelled`] when `cancel` was raised.
pub fn create(
    target: CreateTarget<'_>,
    spec: &NewVolume,
    creds: &Credentials,
    progress: Progress<'_>,
    cancel: &AtomicBool,
) -> Result<(), WriteError> {
    match target {
        CreateTarget::File { path, size, force } => {
            check_volume_size(size, spec.sector_size)?;
            if let Ok(m) = std::fs::symlink_metadata(path) {
                if !force {
                    return Err(WriteError::Exists {
                        path: path.to_path_buf(),
                    });
                }
                if !m.is_file() {
                    return Err(WriteError::Unsupported {
                        path: path.to_path_buf(),
                        why: "exists and is not a regular file; refusing to replace it".into(),
                    });
                }
            }
            let tmp = NewFile::beside(path)?;
            tmp.file
                .set_len(size)
                .map_err(io_err(path, "cannot size the new container"))?;
            write_layout(&tmp.file, path, size, spec, creds, progress, cancel)?;
            tmp.persist(path, force)
        }
        CreateTarget::Device { path, force } => {
            let file = open_device_exclusive(path)?;
            let size = device_size(&file).map_err(io_err(path, "cannot read the device size"))?;
            check_volume_size(size, spec.sector_size)?;
            if !force {
                let mut head = vec![0u8; PROBE_LEN.min(usize::try_from(size).unwrap_or(0))];
                read_exact_at(&file, &mut head, 0).map_err(io_err(path, "read failed"))?;
                if let Some(what) = probe::detect(&head) {
                    return Err(WriteError::DeviceHasData {
                        path: path.to_path_buf(),
                        what,
                    });
                }
            }
            write_layout(&file, path, size, spec, creds, progress, cancel)
        }
    }
}

/// Opens a block device for writing with `O_EXCL`, which Linux refuses (EBUSY) while the
/// device is mounted or held by another exclusive user.
fn open_device_exclusive(path: &Path) -> Result<File, WriteError> {
    let meta = std::fs::metadata(path).map_err(io_err(path, "cannot stat"))?;
    if !meta.file_type().is_block_device() {
        return Err(WriteError::Unsupported {
            path: path.to_path_buf(),
            why: "is not a block device".into(),
        });
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::EBUSY) {
                WriteError::DeviceBusy {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(path, "cannot open for writing")(e)
            }
        })
}

fn read_exact_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    file.read_exact_at(buf, offset)
}

fn write_all_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<(), WriteError> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
        .map_err(io_err(path, "write failed"))
}

fn sync(file: &File, path: &Path) -> Result<(), WriteError> {
    file.sync_all().map_err(io_err(path, "sync failed"))
}

/// A 64 KiB header slot: `header` then random bytes.
fn slot_bytes(header: &[u8; HEADER_SIZE]) -> Result<Vec<u8>, RandomError> {
    let mut slot = vec![0u8; HEADER_SLOT_SIZE as usize];
    random::fill(&mut slot[HEADER_SIZE..])?;
    slot[..HEADER_SIZE].copy_from_slice(header);
    Ok(slot)
}

fn write_layout(
    file: &File,
    path: &Path,
    size: u64,
    spec: &NewVolume,
    creds: &Credentials,
    progress: Progress<'_>,
    cancel: &AtomicBool,
) -> Result<(), WriteError> {
    let data_len = data_len_of(size);
    let header = new_header(
        spec.prot,
        DATA_AREA_OFFSET,
        data_len,
        false,
        spec.sector_size,
    )?;
    // Checked and sealed before touching the disk: a wrong option fails here, not midway.
    let sealed = SealedHeader::new(path, size, &header, spec.prot, creds, HeaderRole::Normal)?;
    if !spec.quick {
        fill_area(
            file,
            path,
            DATA_AREA_OFFSET,
            data_len,
            spec,
            progress,
            cancel,
        )?;
    }
    // Both hidden slots get random-keyed headers and every slot random bytes after its header;
    // the real header's two copies come last, the primary after the backup.
    let random_slot = slot_bytes(&fake_header()?)?;
    write_all_at(file, path, &random_slot, HIDDEN_HEADER_OFFSET)?;
    write_all_at(file, path, &random_slot, size - BACKUP_HIDDEN_FROM_END)?;
    let mut padding = vec![0u8; (HEADER_SLOT_SIZE as usize) - HEADER_SIZE];
    random::fill(&mut padding)?;
    write_all_at(file, path, &padding, HEADER_SIZE as u64)?;
    random::fill(&mut padding)?;
    write_all_at(
        file,
        path,
        &padding,
        size - BACKUP_NORMAL_FROM_END + HEADER_SIZE as u64,
    )?;
    sync(file, path)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(WriteError::Cancelled("no header was written".into()));
    }
    sealed.write(file, path, Order::BackupFirst, None).map(drop)
}

/// Fills `len` bytes at absolute `start` with zeros encrypted under a throwaway random key of
/// the volume's chain: indistinguishable from data, and (unlike zeros under the master key)
/// not telling the outer volume's password holder where a hidden volume could start.
pub(crate) fn fill_area(
    file: &File,
    path: &Path,
    start: u64,
    len: u64,
    spec: &NewVolume,
    progress: Progress<'_>,
    cancel: &AtomicBool,
) -> Result<(), WriteError> {
    let scheme = spec.prot.scheme;
    let mut key = crate::secret::SecretBytes::zeroed(scheme.key_material_len());
    random::fill(key.expose_mut())?;
    let cipher = SectorCipher::new(scheme, key.expose()).map_err(|_| SealError::Verify)?;
    let mut buf = vec![0u8; FILL_CHUNK];
    let mut done = 0u64;
    while done < len {
        if cancel.load(Ordering::Relaxed) {
            return Err(WriteError::Cancelled(
                "the data area was partly filled; no header was written".into(),
            ));
        }
        let n = usize::try_from((len - done).min(FILL_CHUNK as u64)).unwrap_or(FILL_CHUNK);
        let chunk = &mut buf[..n];
        chunk.fill(0);
        let at = start + done;
        cipher.encrypt(chunk, at / DATA_UNIT as u64);
        write_all_at(file, path, chunk, at)?;
        done += n as u64;
        progress(done, len);
    }
    Ok(())
}

/// Why a header write was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceError {
    /// The header read from a slot of one role claims the other role.
    #[error("the header read from a {role}'s slot says it is a {claims}'s header")]
    RoleMismatch {
        /// The role of the slot it was read from.
        role: HeaderRole,
        /// The role its fields claim.
        claims: HeaderRole,
    },
    /// The host has no room for one of the header's places.
    #[error("the {size}-byte host has no room for the {slot}")]
    NoSlot {
        /// The slot.
        slot: Slot,
        /// The host's size.
        size: u64,
    },
    /// The header's data area does not lie inside the host.
    #[error(
        "the header's data area (bytes {start}..{end}) does not fit the {size}-byte host \
         (truncated volume?)"
    )]
    DataOutside {
        /// Where the data area starts.
        start: u64,
        /// Where it ends (`u64::MAX` when the fields overflow).
        end: u64,
        /// The host's size.
        size: u64,
    },
    /// A place a header copy would be written to lies inside a data area.
    #[error(
        "the {slot} (bytes {at}..{}) would lie inside the data area (bytes {start}..{end}): the \
         {size}-byte host does not match the header (truncated or resized volume?)",
        at + HEADER_SIZE as u64
    )]
    Overlap {
        /// The slot.
        slot: Slot,
        /// Its offset.
        at: u64,
        /// Where the data area starts.
        start: u64,
        /// Where it ends.
        end: u64,
        /// The host's size.
        size: u64,
    },
}

/// Where the copies of one header go in a host, checked by [`header_places`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderPlaces {
    /// The primary slot and its offset.
    pub primary: (Slot, u64),
    /// The embedded backup's slot and offset (current layout only).
    pub backup: Option<(Slot, u64)>,
}

impl HeaderPlaces {
    /// Every place, primary first.
    pub fn all(&self) -> impl Iterator<Item = (Slot, u64)> {
        std::iter::once(self.primary).chain(self.backup)
    }
}

/// Where the header of `role` (read from a slot of that role, with `scheme`) goes in a volume
/// of `size` bytes: derived from the layout and the role alone ([`HeaderRole::slots`]), never
/// from the header's size fields, and checked against every data area it could overlap.
///
/// Refused: a header whose fields claim the other role; a place the host has no room for; a
/// data area (from the header's fields) that runs past the end of the host; in the current
/// layout, a data area reaching into the first or the last 128 KiB (the header groups, where
/// every header place and the slots of the other role lie); in the legacy layout, a data area
/// holding the place itself. So a header write can never land in a data area, whatever a
/// truncated host or a crafted header says.
///
/// # Errors
/// [`PlaceError`].
pub fn header_places(
    header: &Header,
    scheme: Scheme,
    role: HeaderRole,
    size: u64,
) -> Result<HeaderPlaces, PlaceError> {
    let claims = HeaderRole::claimed_by(header);
    if claims != role {
        return Err(PlaceError::RoleMismatch { role, claims });
    }
    let legacy = DataArea::is_legacy_layout(header);
    let (primary, backup) = role.slots(legacy);
    let place = |slot: Slot| {
        slot.offset(HostKind::Volume, size)
            .map(|at| (slot, at))
            .ok_or(PlaceError::NoSlot { slot, size })
    };
    let places = HeaderPlaces {
        primary: place(primary)?,
        backup: backup.map(place).transpose()?,
    };
    let area = DataArea::of(header, primary, scheme, size);
    let (start, end) = match area {
        Some(a) => (a.start, a.start.saturating_add(a.len)),
        None => (0, u64::MAX),
    };
    if area.is_none() || end > size || start > end {
        return Err(PlaceError::DataOutside { start, end, size });
    }
    let overlaps = |lo: u64, hi: u64| start < hi && lo < end;
    // In the current layout the first and last 128 KiB are the header groups, where every
    // header place (of either role) lies: the data must stay between them.
    let tail = size.saturating_sub(BACKUP_NORMAL_FROM_END);
    let in_groups = if legacy {
        None
    } else if overlaps(0, DATA_AREA_OFFSET) {
        Some(places.primary)
    } else if overlaps(tail, size) {
        Some(places.backup.unwrap_or(places.primary))
    } else {
        None
    };
    let in_data = places
        .all()
        .find(|&(_, at)| overlaps(at, at + HEADER_SIZE as u64));
    if let Some((slot, at)) = in_groups.or(in_data) {
        return Err(PlaceError::Overlap {
            slot,
            at,
            start,
            end,
            size,
        });
    }
    Ok(places)
}

/// Which copy of a header a rewrite writes first (and syncs before the other).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// The embedded backup first: a password change (the primary still opens meanwhile).
    BackupFirst,
    /// The primary first: a restore (the primary is the broken one).
    PrimaryFirst,
}

/// A header sealed for the places [`header_places`] accepted, not yet written: every check
/// and every key derivation is done, so that [`SealedHeader::write`] can only fail on I/O.
pub(crate) struct SealedHeader {
    places: HeaderPlaces,
    primary: [u8; HEADER_SIZE],
    backup: Option<[u8; HEADER_SIZE]>,
}

impl SealedHeader {
    /// Checks the places of `header` as the header of `role` in a host of `size` bytes at
    /// `path`, and seals one copy per place (each with its own salt).
    pub(crate) fn new(
        path: &Path,
        size: u64,
        header: &Header,
        prot: Protection,
        creds: &Credentials,
        role: HeaderRole,
    ) -> Result<SealedHeader, WriteError> {
        Self::sealed_by(path, size, header, prot.scheme, role, || {
            Ok(seal(header, prot, creds)?)
        })
    }

    /// As [`SealedHeader::new`], each copy sealed by `seal_one`.
    fn sealed_by(
        path: &Path,
        size: u64,
        header: &Header,
        scheme: Scheme,
        role: HeaderRole,
        mut seal_one: impl FnMut() -> Result<[u8; HEADER_SIZE], WriteError>,
    ) -> Result<SealedHeader, WriteError> {
        let places =
            header_places(header, scheme, role, size).map_err(|why| WriteError::UnsafePlace {
                path: path.to_path_buf(),
                why,
            })?;
        let primary = seal_one()?;
        let backup = match places.backup {
            Some(_) => Some(seal_one()?),
            None => None,
        };
        Ok(SealedHeader {
            places,
            primary,
            backup,
        })
    }

    /// Keeps the old header slots in `keep_old` when given, then writes the copies in `order`,
    /// syncing after each. Returns the primary slot written.
    pub(crate) fn write(
        &self,
        file: &File,
        path: &Path,
        order: Order,
        keep_old: Option<(&Host, &Path)>,
    ) -> Result<Slot, WriteError> {
        if let Some((host, keep)) = keep_old {
            keep_old_headers(host, keep, self.backup.is_none())?;
        }
        let primary = Some((self.places.primary.1, &self.primary));
        let backup = self
            .places
            .backup
            .map(|(_, at)| at)
            .zip(self.backup.as_ref());
        let (first, second) = match order {
            Order::BackupFirst => (backup, primary),
            Order::PrimaryFirst => (primary, backup),
        };
        if let Some((at, bytes)) = first {
            write_all_at(file, path, bytes, at)?;
            sync(file, path)?;
        }
        if let Some((at, bytes)) = second {
            if first.is_some() {
                pause_for_tests(match order {
                    Order::BackupFirst => "embedded backup header",
                    Order::PrimaryFirst => "primary header",
                });
            }
            write_all_at(file, path, bytes, at)?;
            sync(file, path)?;
        }
        Ok(self.places.primary.0)
    }
}

/// The one way a header reaches a volume: [`SealedHeader::new`] (places checked, every copy
/// sealed, so a refusal writes nothing), then [`SealedHeader::write`].
#[allow(clippy::too_many_arguments)]
fn write_header(
    file: &File,
    path: &Path,
    size: u64,
    header: &Header,
    prot: Protection,
    creds: &Credentials,
    role: HeaderRole,
    order: Order,
    keep_old: Option<(&Host, &Path)>,
) -> Result<Slot, WriteError> {
    SealedHeader::new(path, size, header, prot, creds, role)?.write(file, path, order, keep_old)
}

/// Refuses headers this module cannot rewrite in place (system-encryption headers) and hosts
/// too small for the header's layout.
fn check_rewritable(u: &UnlockedHeader, host: &Host) -> Result<(), WriteError> {
    let unsupported = |why: &str| {
        Err(WriteError::Unsupported {
            path: host.path().to_path_buf(),
            why: why.into(),
        })
    };
    if u.header.is_system() || u.slot == Slot::System {
        return unsupported("is a system-encryption header; tcvault does not rewrite those");
    }
    let min = if DataArea::is_legacy_layout(&u.header) {
        MIN_LEGACY_VOLUME_SIZE
    } else {
        MIN_VOLUME_SIZE
    };
    if host.kind() != HostKind::Volume || host.size() < min {
        return unsupported("is not a volume");
    }
    Ok(())
}

/// Copies the host's header slots as they are now to `keep`, created exclusively with mode
/// 0600 and synced: the first 128 KiB in the 131,072-byte backup format, or, for the legacy
/// layout, the header at 0 and the one 1,536 bytes before the end in the 1,024-byte format.
///
/// # Errors
/// `keep` exists, or an I/O error.
pub fn keep_old_headers(host: &Host, keep: &Path, legacy: bool) -> Result<(), WriteError> {
    let buf = if legacy {
        let mut buf = vec![0u8; LEGACY_BACKUP_FILE_SIZE as usize];
        let (normal, hidden) = buf.split_at_mut(HEADER_SIZE);
        host.read_at(0, normal)?;
        host.read_at(host.size() - LEGACY_HIDDEN_FROM_END, hidden)?;
        buf
    } else {
        let mut buf = vec![0u8; BACKUP_FILE_SIZE as usize];
        host.read_at(0, &mut buf)?;
        buf
    };
    write_keep_file(keep, &buf)
}

/// Writes `bytes` (headers as they were) to the new file `keep` (mode 0600, via a temporary file
/// renamed into place). An existing file is never replaced: it may hold the only copy of older
/// headers.
///
/// # Errors
/// [`WriteError::KeepExists`], or an I/O error.
pub fn write_keep_file(keep: &Path, bytes: &[u8]) -> Result<(), WriteError> {
    write_new_file(keep, bytes, false).map_err(|e| match e {
        WriteError::Exists { path } => WriteError::KeepExists { path },
        e => e,
    })
}

/// Writes `data` to a new file at `path` (mode 0600, via a temporary file renamed into place;
/// an existing file is replaced only with `force`).
pub(crate) fn write_new_file(path: &Path, data: &[u8], force: bool) -> Result<(), WriteError> {
    use std::io::Write;
    write_file_atomically(path, force, |f| {
        f.write_all(data).map_err(io_err(path, "write failed"))
    })
}

/// Creates `path` through a new file in its folder (mode 0600; unnamed where the filesystem
/// allows) that `fill` writes; it is synced and given its name only when
/// complete, replacing an existing file only with `force`. A failure, or even a kill, leaves
/// no half-written file under `path` or beside it.
///
/// # Errors
/// [`WriteError::Exists`] without `force`, an I/O error, or what `fill` returns.
pub fn write_file_atomically<E: From<WriteError>>(
    path: &Path,
    force: bool,
    fill: impl FnOnce(&mut File) -> Result<(), E>,
) -> Result<(), E> {
    if std::fs::symlink_metadata(path).is_ok() && !force {
        return Err(WriteError::Exists {
            path: path.to_path_buf(),
        }
        .into());
    }
    let mut tmp = NewFile::beside(path)?;
    fill(&mut tmp.file)?;
    tmp.file.sync_all().map_err(io_err(path, "sync failed"))?;
    Ok(tmp.persist(path, force)?)
}

/// The name prefix of the temporary files this module makes where a filesystem cannot make
/// unnamed ones; the writer's process id follows, so that a later run can tell a dead
/// writer's leftover from a live writer's file.
const TEMP_PREFIX: &str = ".tcvault-new-";

/// A file being written that appears under its final name only when complete.
///
/// Where the filesystem allows (ext4, xfs, btrfs, tmpfs …) it is an unnamed file (`O_TMPFILE`)
/// that `linkat` gives its name: a process killed before that leaves nothing behind, the kernel
/// frees the blocks. Elsewhere it is a named file `.tcvault-new-PID-XXXXXX` beside the target,
/// removed on failure and, after a kill, by the next run that writes into the same directory
/// ([`remove_dead_leftovers`]).
struct NewFile {
    file: File,
    dir: PathBuf,
    /// The temporary name, when the filesystem could not make an unnamed file.
    named: Option<tempfile::TempPath>,
}

impl NewFile {
    /// A new empty file (mode 0600) in the directory of `path`.
    fn beside(path: &Path) -> Result<NewFile, WriteError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(WriteError::NoDirectory {
                    path: path.to_path_buf(),
                    dir,
                    why: "is not a directory",
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(WriteError::NoDirectory {
                    path: path.to_path_buf(),
                    dir,
                    why: "does not exist",
                });
            }
            Err(e) => return Err(io_err(&dir, "cannot use this directory")(e)),
        }
        remove_dead_leftovers(&dir);
        let unnamed = OpenOptions::new()
            .read(true)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(&dir);
        match unnamed {
            Ok(file) => Ok(NewFile {
                file,
                dir,
                named: None,
            }),
            // EOPNOTSUPP (and EISDIR from kernels without O_TMPFILE): a named file instead.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EOPNOTSUPP | libc::EISDIR)) => {
                let tmp = tempfile::Builder::new()
                    .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
                    .tempfile_in(&dir)
                    .map_err(io_err(&dir, "cannot create a file in this directory"))?;
                let (file, named) = tmp.into_parts();
                Ok(NewFile {
                    file,
                    dir,
                    named: Some(named),
                })
            }
            Err(e) => Err(match e.kind() {
                io::ErrorKind::PermissionDenied => WriteError::NoDirectory {
                    path: path.to_path_buf(),
                    dir,
                    why: "is not writable",
                },
                _ => io_err(&dir, "cannot create a file in this directory")(e),
            }),
        }
    }

    /// Gives the file the name `path`, replacing an existing file only with `force`.
    fn persist(self, path: &Path, force: bool) -> Result<(), WriteError> {
        let placed = |e: io::Error| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                WriteError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                io_err(path, "cannot put the new file into place")(e)
            }
        };
        if let Some(named) = self.named {
            let tmp = tempfile::NamedTempFile::from_parts(self.file, named);
            let done = if force {
                tmp.persist(path).map(drop)
            } else {
                tmp.persist_noclobber(path).map(drop)
            };
            return done.map_err(|e| placed(e.error));
        }
        if !force {
            // linkat fails with EEXIST when the name exists: nothing is ever replaced unasked.
            return link_unnamed(&self.file, path).map_err(placed);
        }
        // Replacing: link under a temporary name, then rename over the target (atomic). A kill
        // between the two leaves a complete file under the temporary name, which the next run
        // removes.
        let tmp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{:016x}",
            std::process::id(),
            random_tag()?
        ));
        link_unnamed(&self.file, &tmp).map_err(placed)?;
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            placed(e)
        })
    }
}

/// Gives the unnamed (`O_TMPFILE`) `file` the name `path` through its `/proc/self/fd` link,
/// which needs no privilege (unlike `AT_EMPTY_PATH`).
fn link_unnamed(file: &File, path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd_path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    rustix::fs::linkat(
        rustix::fs::CWD,
        &fd_path,
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(io::Error::from)
}

fn random_tag() -> Result<u64, WriteError> {
    let mut b = [0u8; 8];
    random::fill(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Removes the named temporary files (`.tcvault-new-PID-…`) in `dir` whose writer is no longer
/// running: what a killed run on a filesystem without unnamed files left. A file of a running
/// process (this one included) is left alone, as is anything not named that way. Best effort:
/// an unreadable directory is simply not cleaned.
pub fn remove_dead_leftovers(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(TEMP_PREFIX))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Test hook: see [`PAUSE_ENV`]. Does nothing without the `test-hooks` feature.
fn pause_for_tests(what: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os(PAUSE_ENV).is_some() {
        eprintln!("tcvault: paused after writing the {what}");
        std::thread::sleep(std::time::Duration::from_secs(60));
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = what;
}

/// What a password change should produce.
#[derive(Debug)]
pub struct NewProtection<'a> {
    /// The new credentials (password, keyfiles, PIM).
    pub creds: &'a Credentials,
    /// The new protection (family, key derivation; the chain must stay the volume's).
    pub prot: Protection,
}

/// Re-encrypts the header `vol` was opened with (normal or hidden) under new credentials and
/// key derivation, and writes it, with fresh salts, to its primary slot and its embedded
/// backup: the backup first, synced, then the primary. With `to_veracrypt`, a TrueCrypt
/// header becomes a VeraCrypt one (magic, program version; the keys and data stay as they are).
///
/// # Errors
/// See [`WriteError`].
pub fn change_password(
    vol: &Volume,
    new: &NewProtection<'_>,
    keep_old: Option<&Path>,
) -> Result<(), WriteError> {
    let u = vol.unlocked();
    let host = vol.host();
    check_rewritable(u, host)?;
    let mut header = u.header.clone();
    if new.prot.scheme != u.scheme {
        return Err(WriteError::Unsupported {
            path: host.path().to_path_buf(),
            why: "the cipher of an existing volume cannot change (its data would need \
                  re-encryption)"
                .into(),
        });
    }
    if new.prot.family != header.family {
        if new.prot.family != Family::VeraCrypt {
            return Err(WriteError::Unsupported {
                path: host.path().to_path_buf(),
                why: "a VeraCrypt header cannot become a TrueCrypt one".into(),
            });
        }
        if u.scheme.is_legacy() || DataArea::is_legacy_layout(&header) {
            return Err(WriteError::Unsupported {
                path: host.path().to_path_buf(),
                why: format!(
                    "is a TrueCrypt volume from before 6.0 ({}, legacy layout); VeraCrypt \
                     needs XTS and the current layout, so its data would have to be \
                     re-encrypted: copy the files into a new volume instead",
                    u.scheme
                ),
            });
        }
        header.family = Family::VeraCrypt;
        header.min_program_version = VERACRYPT_MIN_PROGRAM_VERSION;
        header.version = CURRENT_HEADER_VERSION;
    }
    let role = HeaderRole::of_slot(u.slot);
    rewrite_header(host, &header, role, new.prot, new.creds, keep_old).map(drop)
}

/// Seals `header` (fresh salt, verified) as the header of `role`, keeps the old header slots in
/// `keep_old` when given, then, in the current layout, writes a second sealing to the embedded
/// backup and syncs before it writes the primary slot and syncs again. The legacy layout has
/// only the primary slot. Refused, with nothing written, when a place would lie in a data area
/// or past the end ([`header_places`]).
///
/// # Errors
/// See [`WriteError`].
pub fn rewrite_header(
    host: &Host,
    header: &Header,
    role: HeaderRole,
    prot: Protection,
    creds: &Credentials,
    keep_old: Option<&Path>,
) -> Result<Slot, WriteError> {
    write_header(
        host.file(),
        host.path(),
        host.size(),
        header,
        prot,
        creds,
        role,
        Order::BackupFirst,
        keep_old.map(|k| (host, k)),
    )
}

/// Writes `header` of `role` to its slots in `host` exactly as it was once stored (every copy
/// under its old `salt` and derived `header_key`, [`seal_as_before`]), so that the password of
/// that time opens it again: the places are checked as for [`rewrite_header`], the old slots
/// kept in `keep_old` first when given, the embedded backup written before the primary.
///
/// # Errors
/// See [`WriteError`].
pub fn rewrite_header_as_before(
    host: &Host,
    header: &Header,
    role: HeaderRole,
    scheme: Scheme,
    salt: &[u8; SALT_LEN],
    header_key: &SecretBytes,
    keep_old: Option<&Path>,
) -> Result<Slot, WriteError> {
    SealedHeader::sealed_by(host.path(), host.size(), header, scheme, role, || {
        Ok(seal_as_before(header, scheme, salt, header_key)?)
    })?
    .write(
        host.file(),
        host.path(),
        Order::BackupFirst,
        keep_old.map(|k| (host, k)),
    )
}

/// Where a header backup comes from.
#[derive(Clone, Copy, Debug)]
pub enum BackupSource<'a> {
    /// A header backup file (131,072 or 1,024 bytes).
    File(&'a Path),
    /// The volume's own embedded backup headers.
    Embedded,
}

/// Reads the header backup `source` holds for the volume at `volume` with `creds`, checks that
/// it describes this volume (its data area fits this host exactly and, unless `force`, its keys
/// decrypt a recognisable filesystem), and writes it to the primary slot and the embedded
/// backup with fresh salts: the primary first, synced, then the backup. The header keeps its
/// key derivation and chain; only the salts change.
///
/// # Errors
/// See [`WriteError`].
pub fn restore_header(
    volume: &Path,
    source: BackupSource<'_>,
    creds: &Credentials,
    opts: &UnlockOptions,
    keep_old: Option<&Path>,
    force: bool,
) -> Result<Slot, WriteError> {
    let host = Host::open_writable(volume)?;
    if host.kind() != HostKind::Volume {
        return Err(WriteError::Unsupported {
            path: volume.to_path_buf(),
            why: "is a header backup file, not a volume".into(),
        });
    }
    let from = match source {
        BackupSource::File(p) => {
            let b = Host::open(p)?;
            if !matches!(b.kind(), HostKind::BackupFile | HostKind::LegacyBackupFile) {
                return Err(WriteError::NotABackup {
                    path: p.to_path_buf(),
                    size: b.size(),
                });
            }
            Volume::open_on(b, creds, SlotChoice::default(), opts)?
        }
        BackupSource::Embedded => {
            // Both embedded backups are tried: normal, then hidden.
            let b = Host::open(volume)?;
            let cands = b.candidates(&[Slot::BackupNormal, Slot::BackupHidden])?;
            let u = crate::header::unlock::unlock(&cands, creds, opts).map_err(|e| {
                match (e, b.size() < MIN_VOLUME_SIZE) {
                    (_, true) => WriteError::Unsupported {
                        path: volume.to_path_buf(),
                        why: "is too small to hold embedded backup headers".into(),
                    },
                    (e, false) => VolumeError::from(e).into(),
                }
            })?;
            Volume::with_header(b, u)?
        }
    };
    let u = from.unlocked();
    check_rewritable(u, &host)?;
    let header = &u.header;
    let size = host.size();
    let area = fitting_area(header, u.scheme, size).ok_or_else(|| WriteError::WrongVolume {
        path: volume.to_path_buf(),
        why: format!(
            "the backup describes a data area of {} bytes at byte {}, which does not fit this \
             {size}-byte volume: it belongs to another volume",
            header.encrypted_area_length, header.encrypted_area_start
        ),
    })?;
    if !force {
        let n = PROBE_LEN.min(usize::try_from(area.len).unwrap_or(0));
        let n = n - n % DATA_UNIT;
        let mut head = SecretBytes::zeroed(n);
        host.read_at(area.start, head.expose_mut())?;
        u.data_cipher().decrypt(head.expose_mut(), area.first_unit);
        if probe::detect(head.expose()).is_none() {
            return Err(WriteError::WrongVolume {
                path: volume.to_path_buf(),
                why: "with the backup's keys this volume's data shows no filesystem: the \
                      backup may belong to another volume"
                    .into(),
            });
        }
    }
    let prot = Protection {
        family: header.family,
        kdf: u.kdf,
        scheme: u.scheme,
    };
    write_header(
        host.file(),
        host.path(),
        size,
        header,
        prot,
        creds,
        HeaderRole::of_slot(u.slot),
        Order::PrimaryFirst,
        keep_old.map(|k| (&host, k)),
    )
}

/// The data area `header` (with `scheme`) describes, if it fits a volume of `size` bytes
/// exactly as its layout demands: in the current layout a normal volume's data runs from
/// 128 KiB to 128 KiB before the end and a hidden one lies inside that; in the legacy layout a
/// normal volume's data starts at 512 (its length, when recorded, reaching the end of the host)
/// and a hidden one ends 1,536 bytes before the end, past the normal header.
pub fn fitting_area(header: &Header, scheme: Scheme, size: u64) -> Option<DataArea> {
    let legacy = DataArea::is_legacy_layout(header);
    let slot = if header.is_hidden() && legacy {
        Slot::LegacyHidden
    } else {
        Slot::Normal
    };
    let area = DataArea::of(header, slot, scheme, size)?;
    let end = area.start.checked_add(area.len)?;
    let fits = match (legacy, header.is_hidden()) {
        (false, true) => {
            area.start >= DATA_AREA_OFFSET && end <= size.checked_sub(BACKUP_NORMAL_FROM_END)?
        }
        (false, false) => {
            area.start == DATA_AREA_OFFSET && end == size.checked_sub(BACKUP_NORMAL_FROM_END)?
        }
        (true, true) => area.start >= HEADER_SIZE as u64 && end <= size,
        (true, false) => area.start == HEADER_SIZE as u64 && end == size,
    };
    fits.then_some(area)
}

/// The header backup of `normal` (and of `hidden` when given, else a random-keyed header in
/// its place): the 131,072-byte format (two 64 KiB slots, random after each header) or, with
/// `compact`, the 1,024-byte one.
///
/// The normal header is copied verbatim from the slot it opened from (same salt, same derived
/// key): a backup made while the password is known thus holds the very header an escrow
/// packet was sealed from, which is what lets the help desk prove that the packet belongs to
/// the backup. The hidden header is re-encrypted with a fresh salt: a verbatim copy would
/// equal the volume's hidden slot, and that equality alone would tell anyone holding both
/// files that a hidden volume exists (without one, that place holds fresh random bytes).
///
/// # Errors
/// See [`WriteError`].
pub fn backup_bytes(
    normal: &Volume,
    hidden: Option<(&Volume, &Credentials)>,
    compact: bool,
) -> Result<Vec<u8>, WriteError> {
    let verbatim = |v: &Volume| -> Result<[u8; HEADER_SIZE], WriteError> {
        let u = v.unlocked();
        check_rewritable(u, v.host())?;
        check_role(v, HeaderRole::Normal)?;
        let c = v.host().candidates(&[u.slot])?;
        match c.first() {
            Some(c) if c.bytes[..SALT_LEN] == u.salt => Ok(c.bytes),
            _ => Err(WriteError::Volume(VolumeError::NoSuchSlot {
                path: v.host().path().to_path_buf(),
                what: u.slot.id(),
            })),
        }
    };
    let reseal = |v: &Volume, c: &Credentials| -> Result<[u8; HEADER_SIZE], WriteError> {
        let u = v.unlocked();
        check_rewritable(u, v.host())?;
        check_role(v, HeaderRole::Hidden)?;
        let prot = Protection {
            family: u.header.family,
            kdf: u.kdf,
            scheme: u.scheme,
        };
        Ok(seal(&u.header, prot, c)?)
    };
    let n = verbatim(normal)?;
    let h = match hidden {
        Some((v, c)) => reseal(v, c)?,
        None => fake_header()?,
    };
    // A legacy volume's headers go back only to the legacy places: its backup is always the
    // 1,024-byte format, which is also what TrueCrypt before 6.0 wrote.
    if compact || is_legacy(normal) || hidden.is_some_and(|(v, _)| is_legacy(v)) {
        let mut out = Vec::with_capacity(LEGACY_BACKUP_FILE_SIZE as usize);
        out.extend_from_slice(&n);
        out.extend_from_slice(&h);
        Ok(out)
    } else {
        let mut out = slot_bytes(&n)?;
        out.extend_from_slice(&slot_bytes(&h)?);
        Ok(out)
    }
}

/// Refuses `v` unless both the slot it opened from and its header's fields are of `want`: a
/// backup file's places are by role, so a header of the other role there would later be
/// restored to the other role's place.
fn check_role(v: &Volume, want: HeaderRole) -> Result<(), WriteError> {
    let u = v.unlocked();
    let slot = HeaderRole::of_slot(u.slot);
    let claims = HeaderRole::claimed_by(&u.header);
    let why = if slot != want {
        format!(
            "the password opened the {slot}'s header, not the {want}'s: a header backup \
             needs the outer volume's password, and the hidden volume's separately"
        )
    } else if claims != want {
        format!(
            "the header read from the {slot}'s place says it is a {claims}'s header; it is not \
             copied into a backup"
        )
    } else {
        return Ok(());
    };
    Err(WriteError::WrongRole {
        path: v.host().path().to_path_buf(),
        why,
    })
}

/// Whether `v` uses the layout of TrueCrypt before 6.0.
pub fn is_legacy(v: &Volume) -> bool {
    DataArea::is_legacy_layout(&v.unlocked().header)
}

/// Writes a header backup file (see [`backup_bytes`]) to `out`: mode 0600, via a temporary
/// file renamed into place; an existing file is replaced only with `force`.
///
/// # Errors
/// See [`WriteError`].
pub fn write_backup_file(out: &Path, bytes: &[u8], force: bool) -> Result<(), WriteError> {
    write_new_file(out, bytes, force)
}

/// The default file for the old header slots: `NAME.old-headers-SECONDS` in the current
/// directory (never beside a device node), `-2`, `-3`… appended when that name is taken.
pub fn default_keep_path(volume: &Path) -> PathBuf {
    let name = volume
        .file_name()
        .map_or_else(|| "volume".into(), |n| n.to_string_lossy().into_owned());
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Two volumes of the same name rewritten within one second get distinct files.
    let base = format!("{name}.old-headers-{secs}");
    (1..)
        .map(|i| match i {
            1 => PathBuf::from(&base),
            i => PathBuf::from(format!("{base}-{i}")),
        })
        .find(|p| std::fs::symlink_metadata(p).is_err())
        .unwrap_or_else(|| PathBuf::from(base))
}

/// The raw header backup of `host`, a volume: its normal and hidden header slots exactly as
/// they are on disk (still encrypted), 1,024 bytes in the legacy backup file's layout. No
/// password is needed, so it can be made for a volume whose password is lost; it restores
/// only what the slots hold (whichever of them holds a header that a password, or an escrow
/// packet, opens). On a volume from TrueCrypt before 6.0 a hidden header lives near the end
/// instead and is not in it.
///
/// # Errors
/// [`WriteError::Unsupported`] for a header backup file, or a volume too short for both
/// slots; I/O errors.
pub fn raw_backup_bytes(host: &Host) -> Result<Vec<u8>, WriteError> {
    if host.kind() != HostKind::Volume {
        return Err(WriteError::Unsupported {
            path: host.path().to_path_buf(),
            why: "is a header backup file already; copy it instead".into(),
        });
    }
    let mut out = vec![0u8; LEGACY_BACKUP_FILE_SIZE as usize];
    for (i, slot) in [Slot::Normal, Slot::Hidden].into_iter().enumerate() {
        let at =
            slot.offset(HostKind::Volume, host.size())
                .ok_or_else(|| WriteError::Unsupported {
                    path: host.path().to_path_buf(),
                    why: format!("is too short to hold a {} header slot", slot.id()),
                })?;
        host.read_at(at, &mut out[i * HEADER_SIZE..(i + 1) * HEADER_SIZE])?;
    }
    Ok(out)
}

/// Writes `header`, sealed under `creds` with `prot`, into its slot (normal or hidden, by the
/// header's own claim) of the header backup file `backup`, the other slot unchanged, to
/// `out` (which may be `backup` itself): the file as it was goes to `keep` first when given,
/// and the result replaces `out` atomically.
///
/// # Errors
/// [`WriteError::NotABackup`] when `backup` is not a header backup file; see [`WriteError`].
pub fn rewrite_backup_slot(
    backup: &Host,
    header: &Header,
    prot: Protection,
    creds: &Credentials,
    keep: Option<&Path>,
    out: &Path,
) -> Result<(), WriteError> {
    rewrite_backup_slot_by(backup, header, keep, out, || Ok(seal(header, prot, creds)?))
}

/// As [`rewrite_backup_slot`], the header sealed exactly as it was once stored
/// ([`rewrite_header_as_before`]).
///
/// # Errors
/// See [`WriteError`].
pub fn rewrite_backup_slot_as_before(
    backup: &Host,
    header: &Header,
    scheme: Scheme,
    salt: &[u8; SALT_LEN],
    header_key: &SecretBytes,
    keep: Option<&Path>,
    out: &Path,
) -> Result<(), WriteError> {
    rewrite_backup_slot_by(backup, header, keep, out, || {
        Ok(seal_as_before(header, scheme, salt, header_key)?)
    })
}

fn rewrite_backup_slot_by(
    backup: &Host,
    header: &Header,
    keep: Option<&Path>,
    out: &Path,
    seal_one: impl FnOnce() -> Result<[u8; HEADER_SIZE], WriteError>,
) -> Result<(), WriteError> {
    let kind = backup.kind();
    let size = backup.size();
    if kind == HostKind::Volume {
        return Err(WriteError::NotABackup {
            path: backup.path().to_path_buf(),
            size,
        });
    }
    let mut bytes = vec![0u8; usize::try_from(size).unwrap_or(usize::MAX)];
    backup.read_at(0, &mut bytes)?;
    // A backup file has one slot per role (docs/format.md §2).
    let slot = match HeaderRole::claimed_by(header) {
        HeaderRole::Normal => Slot::Normal,
        HeaderRole::Hidden => Slot::Hidden,
    };
    let at = slot
        .offset(kind, size)
        .and_then(|a| usize::try_from(a).ok())
        .ok_or_else(|| WriteError::NotABackup {
            path: backup.path().to_path_buf(),
            size,
        })?;
    let sealed = seal_one()?;
    if let Some(k) = keep {
        write_keep_file(k, &bytes)?;
    }
    bytes[at..at + sealed.len()].copy_from_slice(&sealed);
    write_new_file(out, &bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked() {
        assert!(check_volume_size(MIN_VOLUME_SIZE, 512).is_ok());
        assert!(check_volume_size(MIN_VOLUME_SIZE - 512, 512).is_err());
        assert!(check_volume_size(MIN_VOLUME_SIZE + 100, 512).is_err());
        assert!(check_volume_size(1 << 20, 4096).is_ok());
        assert!(check_volume_size((1 << 20) + 512, 4096).is_err());
        assert!(check_volume_size(1 << 20, 1000).is_err());
    }

    use crate::header::layout::test_header as header;

    const XTS: Scheme = Scheme::Xts(crate::crypto::chain::ChainId::Aes);

    #[test]
    fn places_follow_the_layout_and_the_role() {
        let size = 4 << 20;
        let normal = header(5, 0, DATA_AREA_OFFSET, size - 2 * DATA_AREA_OFFSET);
        let p = header_places(&normal, XTS, HeaderRole::Normal, size).expect("fits");
        assert_eq!(p.primary, (Slot::Normal, 0));
        assert_eq!(p.backup, Some((Slot::BackupNormal, size - 131_072)));
        let hidden = header(5, 1 << 20, size - 131_072 - (1 << 20), 1 << 20);
        let p = header_places(&hidden, XTS, HeaderRole::Hidden, size).expect("fits");
        assert_eq!(p.primary, (Slot::Hidden, 65_536));
        assert_eq!(p.backup, Some((Slot::BackupHidden, size - 65_536)));
        // A header whose fields claim the other role is refused.
        assert!(matches!(
            header_places(&hidden, XTS, HeaderRole::Normal, size),
            Err(PlaceError::RoleMismatch { .. })
        ));
        // The volume file cut 64 KiB short: the embedded backup's place is in the data area.
        let cut = size - 65_536;
        assert!(matches!(
            header_places(&normal, XTS, HeaderRole::Normal, cut),
            Err(PlaceError::Overlap {
                slot: Slot::BackupNormal,
                ..
            })
        ));
        // Cut inside the data area: the data run past the end.
        assert!(matches!(
            header_places(&normal, XTS, HeaderRole::Normal, 1 << 20),
            Err(PlaceError::DataOutside { .. })
        ));
        // A grown host keeps its data; the backup goes to the new end, outside them.
        let p = header_places(&normal, XTS, HeaderRole::Normal, size + (1 << 20)).expect("fits");
        assert_eq!(
            p.backup,
            Some((Slot::BackupNormal, size + (1 << 20) - 131_072))
        );
        // Legacy layout: one header at 0, data from 512; the hidden one 1,536 before the end.
        let legacy = header(2, 0, 0, 0);
        let p = header_places(&legacy, XTS, HeaderRole::Normal, size).expect("fits");
        assert_eq!((p.primary, p.backup), ((Slot::Normal, 0), None));
        let legacy_hidden = header(2, 65_536, 0, 0);
        let p = header_places(&legacy_hidden, XTS, HeaderRole::Hidden, size).expect("fits");
        assert_eq!(p.primary, (Slot::LegacyHidden, size - 1_536));
    }

    proptest::proptest! {
        /// Whatever a header's fields and the host's size say, an accepted place lies inside
        /// the host and outside the data area the header describes.
        #[test]
        fn no_place_lands_in_a_data_area(
            version in proptest::sample::select(vec![1u16, 2, 3, 4, 5]),
            hidden in proptest::prop_oneof![proptest::strategy::Just(0u64), 0u64..(8 << 20), proptest::num::u64::ANY],
            start in proptest::prop_oneof![proptest::strategy::Just(DATA_AREA_OFFSET), 0u64..(8 << 20), proptest::num::u64::ANY],
            len in proptest::prop_oneof![0u64..(8 << 20), proptest::num::u64::ANY],
            size in proptest::prop_oneof![proptest::strategy::Just(4u64 << 20), MIN_LEGACY_VOLUME_SIZE..(8 << 20)],
            role_hidden in proptest::bool::ANY,
        ) {
            let h = header(version, hidden, start, len);
            let role = if role_hidden { HeaderRole::Hidden } else { HeaderRole::Normal };
            if let Ok(places) = header_places(&h, XTS, role, size) {
                let (primary, _) = role.slots(version < 4);
                let area = DataArea::of(&h, primary, XTS, size).expect("accepted: an area");
                let end = area.start.checked_add(area.len).expect("accepted: no overflow");
                proptest::prop_assert!(end <= size);
                for (_, at) in places.all() {
                    proptest::prop_assert!(at + HEADER_SIZE as u64 <= size);
                    proptest::prop_assert!(at + HEADER_SIZE as u64 <= area.start || at >= end);
                }
            }
        }
    }
}
