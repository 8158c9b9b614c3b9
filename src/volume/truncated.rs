//! Volumes on hosts that end before the volume does: a copy cut short, the first MiBs of a
//! drive. The header opens, so it can be shown, and the data sectors that are present can be
//! read and rescued.
//!
//! [`ReadableVolume`] only reads. Mounting and header rewrites take a [`Volume`], which only a
//! complete host gives ([`ReadableVolume::into_volume`] refuses the others): on a cut host the
//! embedded backup headers would be written where the header's data area still runs, over data.

use std::fmt;
use std::path::Path;

use super::{Host, SlotChoice, Volume, VolumeError};
use crate::crypto::xts::DATA_UNIT;
use crate::header::layout::{BACKUP_NORMAL_FROM_END, DataArea, HostKind, Slot};
use crate::header::unlock::{Credentials, UnlockOptions, UnlockedHeader, unlock};

/// How far a host falls short of the volume its header describes. Sectors are the cipher's
/// 512-byte data units, counted from the start of the data area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truncation {
    /// The host's size in bytes.
    pub host_size: u64,
    /// Where the volume ends according to its header: the end of its data area, plus in the
    /// current layout the embedded backup headers after it (docs/format.md §2).
    pub volume_end: u64,
    /// Length of the data area according to the header.
    pub data_len: u64,
    /// Bytes of the data area the host holds, whole sectors only (a sector cut in the middle
    /// cannot be decrypted, so it counts as missing).
    pub data_present: u64,
}

impl Truncation {
    /// Sectors of the data area according to the header.
    pub fn sectors(&self) -> u64 {
        self.data_len.div_ceil(DATA_UNIT as u64)
    }

    /// Sectors of the data area the host holds.
    pub fn sectors_present(&self) -> u64 {
        self.data_present / DATA_UNIT as u64
    }

    /// Sectors of the data area the host lacks (0 when only the embedded backup headers after
    /// the data area are cut off).
    pub fn sectors_missing(&self) -> u64 {
        self.sectors() - self.sectors_present()
    }
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the host ends at byte {}, the volume at byte {}: {} of {} sectors missing",
            self.host_size,
            self.volume_end,
            self.sectors_missing(),
            self.sectors()
        )?;
        if self.sectors_missing() == 0 {
            f.write_str(" (only the embedded backup headers after the data area are cut off)")?;
        }
        Ok(())
    }
}

/// A volume whose header opened, on a host that may be cut short. Reads the data sectors the
/// host holds; writes nothing.
#[derive(Debug)]
pub struct ReadableVolume {
    /// The volume with its data area limited to the sectors present.
    present: Volume,
    /// The data area as the header describes it.
    area: DataArea,
    truncation: Option<Truncation>,
}

impl ReadableVolume {
    /// Opens the volume or backup file at `path` with `creds`, also when the host ends before
    /// the volume does.
    ///
    /// # Errors
    /// Any [`Host::open`] error, [`VolumeError::Unlock`] when no header opens, and
    /// [`VolumeError::Truncated`] when the header's data area cannot be placed in this host at
    /// all (a legacy-layout hidden volume, placed from the end, in a host shorter than it).
    pub fn open(
        path: &Path,
        creds: &Credentials,
        slots: SlotChoice,
        opts: &UnlockOptions,
    ) -> Result<ReadableVolume, VolumeError> {
        Self::open_on(Host::open(path)?, creds, slots, opts)
    }

    /// As [`ReadableVolume::open`], on a host already opened.
    ///
    /// # Errors
    /// As [`ReadableVolume::open`].
    pub fn open_on(
        host: Host,
        creds: &Credentials,
        slots: SlotChoice,
        opts: &UnlockOptions,
    ) -> Result<ReadableVolume, VolumeError> {
        let mut opts = opts.clone();
        opts.system |= slots.system;
        let candidates = host.candidates(&slots.slots())?;
        let unlocked = unlock(&candidates, creds, &opts)?;
        ReadableVolume::with_header(host, unlocked)
    }

    /// A readable volume from a header already opened on `host`.
    ///
    /// # Errors
    /// As [`ReadableVolume::open`].
    pub fn with_header(
        host: Host,
        unlocked: UnlockedHeader,
    ) -> Result<ReadableVolume, VolumeError> {
        if host.kind != HostKind::Volume {
            let empty = DataArea {
                start: 0,
                len: 0,
                first_unit: 0,
            };
            return Ok(ReadableVolume {
                present: Volume {
                    host,
                    unlocked,
                    area: empty,
                },
                area: empty,
                truncation: None,
            });
        }
        let h = &unlocked.header;
        let area = DataArea::of(h, unlocked.slot, unlocked.scheme, host.size);
        let data_end = area.and_then(|a| a.start.checked_add(a.len));
        let volume_end = data_end.and_then(|e| e.checked_add(trailer(&unlocked)));
        let (Some(area), Some(volume_end)) = (area, volume_end) else {
            return Err(VolumeError::Truncated {
                path: host.path.clone(),
                end: data_end.unwrap_or(u64::MAX),
                size: host.size,
            });
        };
        let truncation = (volume_end > host.size).then(|| {
            let held = area.len.min(host.size.saturating_sub(area.start));
            Truncation {
                host_size: host.size,
                volume_end,
                data_len: area.len,
                data_present: held - held % DATA_UNIT as u64,
            }
        });
        let present = DataArea {
            len: truncation.map_or(area.len, |t| t.data_present),
            ..area
        };
        Ok(ReadableVolume {
            present: Volume {
                host,
                unlocked,
                area: present,
            },
            area,
            truncation,
        })
    }

    /// The volume, when its host is complete.
    ///
    /// # Errors
    /// [`VolumeError::Truncated`] when sectors of the data area are missing,
    /// [`VolumeError::BackupHeadersCut`] when only the embedded backup headers are.
    pub fn into_volume(self) -> Result<Volume, VolumeError> {
        self.require_data()?;
        match self.truncation {
            None => Ok(self.present),
            Some(t) => Err(VolumeError::BackupHeadersCut {
                path: self.present.host.path.clone(),
                data_end: self.area.start + self.area.len,
                size: t.host_size,
            }),
        }
    }

    /// Checks that the host holds every sector of the data area (the embedded backup headers
    /// after it may be cut off).
    ///
    /// # Errors
    /// [`VolumeError::Truncated`] when sectors are missing.
    pub fn require_data(&self) -> Result<(), VolumeError> {
        match self.truncation {
            Some(t) if t.sectors_missing() > 0 => Err(VolumeError::Truncated {
                path: self.present.host.path.clone(),
                end: self.area.start + self.area.len,
                size: t.host_size,
            }),
            _ => Ok(()),
        }
    }

    /// The host.
    pub fn host(&self) -> &Host {
        &self.present.host
    }

    /// The opened header.
    pub fn unlocked(&self) -> &UnlockedHeader {
        &self.present.unlocked
    }

    /// The data area as the header describes it (all zero for a header backup file), whether
    /// or not the host holds all of it.
    pub fn data_area(&self) -> DataArea {
        self.area
    }

    /// How the host falls short of the volume; `None` when it holds all of it.
    pub fn truncation(&self) -> Option<Truncation> {
        self.truncation
    }

    /// Bytes of the data area that [`ReadableVolume::read_data`] can read: all of it, or the
    /// whole sectors present on a cut host (0 for a header backup file).
    pub fn readable_len(&self) -> u64 {
        self.present.data_len()
    }

    /// Reads and decrypts `buf.len()` bytes of the data area starting at `offset`; both must be
    /// multiples of 512 and the range must lie inside [`ReadableVolume::readable_len`].
    ///
    /// # Errors
    /// As [`Volume::read_data`].
    pub fn read_data(&self, offset: u64, buf: &mut [u8]) -> Result<(), VolumeError> {
        self.present.read_data(offset, buf)
    }
}

/// Bytes the layout keeps after the data area: the embedded backup headers of the current
/// layout (docs/format.md §2). The legacy layout has none, nor has a system-encryption header (its
/// data area is a stretch of the drive).
fn trailer(u: &UnlockedHeader) -> u64 {
    let system = u.slot == Slot::System || u.header.is_system();
    if system || DataArea::is_legacy_layout(&u.header) {
        0
    } else {
        BACKUP_NORMAL_FROM_END
    }
}
