//! Where headers and data live in a host (file or device) and in header backup files.
//! Every constant cites docs/format.md, the project's summary of the on-disk facts.

use std::fmt;

use super::format::Header;
use crate::crypto::legacy::LegacyMode;
use crate::crypto::scheme::Scheme;

/// Size of one header (docs/format.md §1).
pub const HEADER_SIZE: usize = 512;
/// The clear salt at the start of a header (docs/format.md §1).
pub const SALT_LEN: usize = 64;
/// Size of one header slot in the current layout (docs/format.md §1, §2).
pub const HEADER_SLOT_SIZE: u64 = 65_536;
/// Hidden-volume header offset (docs/format.md §2).
pub const HIDDEN_HEADER_OFFSET: u64 = 65_536;
/// The embedded backup of the normal header sits this far before the end (docs/format.md §2).
pub const BACKUP_NORMAL_FROM_END: u64 = 131_072;
/// The embedded backup of the hidden header sits this far before the end (docs/format.md §2).
pub const BACKUP_HIDDEN_FROM_END: u64 = 65_536;
/// Start of the normal data area in the current layout (docs/format.md §2).
pub const DATA_AREA_OFFSET: u64 = 131_072;
/// System-encryption header: sector 62 of the drive (docs/format.md §2).
pub const SYSTEM_HEADER_OFFSET: u64 = 31_744;
/// Legacy layout: the hidden header sits this far before the end (docs/format.md §2).
pub const LEGACY_HIDDEN_FROM_END: u64 = 1_536;
/// Smallest volume of the current layout (docs/format.md §2).
pub const MIN_VOLUME_SIZE: u64 = 292 * 1024;
/// Smallest host of the legacy layout (TrueCrypt before 6.0): a header, one data unit and the
/// legacy hidden-header place (docs/format.md §2).
pub const MIN_LEGACY_VOLUME_SIZE: u64 = 2 * HEADER_SIZE as u64 + LEGACY_HIDDEN_FROM_END;
/// A current-format header backup file: two 64 KiB slots (docs/format.md §3).
pub const BACKUP_FILE_SIZE: u64 = 131_072;
/// A legacy header backup file: two 512-byte headers (docs/format.md §3).
pub const LEGACY_BACKUP_FILE_SIZE: u64 = 1_024;

/// What a host is, told apart by its size: a volume or one of the two backup-file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostKind {
    /// A volume (file container or block device).
    Volume,
    /// A 131,072-byte header backup file.
    BackupFile,
    /// A 1,024-byte legacy header backup file.
    LegacyBackupFile,
}

impl HostKind {
    /// Classifies a host of `size` bytes.
    pub fn of_size(size: u64) -> HostKind {
        match size {
            BACKUP_FILE_SIZE => HostKind::BackupFile,
            LEGACY_BACKUP_FILE_SIZE => HostKind::LegacyBackupFile,
            _ => HostKind::Volume,
        }
    }
}

/// A place a header can be read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Slot {
    /// The normal (outer) header at offset 0.
    Normal,
    /// The hidden-volume header at 64 KiB.
    Hidden,
    /// The embedded backup of the normal header.
    BackupNormal,
    /// The embedded backup of the hidden header.
    BackupHidden,
    /// The system-encryption header in sector 62.
    System,
    /// The hidden header of the legacy (TrueCrypt < 6.0) layout.
    LegacyHidden,
}

impl Slot {
    /// Byte offset of this slot in a host of `host_size` bytes of kind `kind`, if it has one.
    pub fn offset(self, kind: HostKind, host_size: u64) -> Option<u64> {
        let off = match (kind, self) {
            (HostKind::Volume, Slot::Normal) => 0,
            (HostKind::Volume, Slot::Hidden) => HIDDEN_HEADER_OFFSET,
            (HostKind::Volume, Slot::BackupNormal) => {
                host_size.checked_sub(BACKUP_NORMAL_FROM_END)?
            }
            (HostKind::Volume, Slot::BackupHidden) => {
                host_size.checked_sub(BACKUP_HIDDEN_FROM_END)?
            }
            (HostKind::Volume, Slot::System) => SYSTEM_HEADER_OFFSET,
            (HostKind::Volume, Slot::LegacyHidden) => {
                host_size.checked_sub(LEGACY_HIDDEN_FROM_END)?
            }
            (HostKind::BackupFile, Slot::Normal) => 0,
            (HostKind::BackupFile, Slot::Hidden) => HEADER_SLOT_SIZE,
            (HostKind::LegacyBackupFile, Slot::Normal) => 0,
            (HostKind::LegacyBackupFile, Slot::Hidden) => HEADER_SIZE as u64,
            _ => return None,
        };
        (off.checked_add(HEADER_SIZE as u64)? <= host_size).then_some(off)
    }

    /// Whether this slot holds a hidden volume's header.
    pub fn is_hidden(self) -> bool {
        matches!(self, Slot::Hidden | Slot::BackupHidden | Slot::LegacyHidden)
    }

    /// Short lower-case name for JSON and messages.
    pub fn id(self) -> &'static str {
        match self {
            Slot::Normal => "normal",
            Slot::Hidden => "hidden",
            Slot::BackupNormal => "backup-normal",
            Slot::BackupHidden => "backup-hidden",
            Slot::System => "system",
            Slot::LegacyHidden => "legacy-hidden",
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Slot::Normal => "primary header",
            Slot::Hidden => "hidden-volume header",
            Slot::BackupNormal => "embedded backup header",
            Slot::BackupHidden => "embedded backup of the hidden-volume header",
            Slot::System => "system-encryption header (sector 62)",
            Slot::LegacyHidden => "legacy hidden-volume header",
        })
    }
}

/// Which of a volume's two headers a header write puts back: the one of the volume itself or
/// the one of a hidden volume inside it. It follows from the slot a header was read from, never
/// from the header's own fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderRole {
    /// The normal (outer) volume's header.
    Normal,
    /// A hidden volume's header.
    Hidden,
}

impl HeaderRole {
    /// The role of a header read from `slot` (of a volume or of a header backup file).
    pub fn of_slot(slot: Slot) -> HeaderRole {
        if slot.is_hidden() {
            HeaderRole::Hidden
        } else {
            HeaderRole::Normal
        }
    }

    /// The role a header's own fields claim (a non-zero hidden-volume size: hidden). Where the
    /// header was read from a slot, that slot's role ([`HeaderRole::of_slot`]) decides, and a
    /// header whose claim differs is refused.
    pub fn claimed_by(header: &Header) -> HeaderRole {
        if header.is_hidden() {
            HeaderRole::Hidden
        } else {
            HeaderRole::Normal
        }
    }

    /// The slots a header of this role is written to in a host: its primary slot and, in the
    /// current layout, its embedded backup (docs/format.md §2). The legacy layout (TrueCrypt before
    /// 6.0) has no embedded backups and keeps a hidden volume's header 1,536 bytes before the
    /// end.
    pub fn slots(self, legacy: bool) -> (Slot, Option<Slot>) {
        match (legacy, self) {
            (true, HeaderRole::Normal) => (Slot::Normal, None),
            (true, HeaderRole::Hidden) => (Slot::LegacyHidden, None),
            (false, HeaderRole::Normal) => (Slot::Normal, Some(Slot::BackupNormal)),
            (false, HeaderRole::Hidden) => (Slot::Hidden, Some(Slot::BackupHidden)),
        }
    }
}

impl fmt::Display for HeaderRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HeaderRole::Normal => "normal volume",
            HeaderRole::Hidden => "hidden volume",
        })
    }
}

/// Where a volume's data area lies in its host, and the number of its first 512-byte data unit
/// as the cipher counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataArea {
    /// Absolute byte offset in the host.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// The data-unit number the cipher uses for the first 512 bytes (each next unit counts
    /// one more).
    pub first_unit: u64,
}

impl DataArea {
    /// The data area that `header` (opened from `slot` with `scheme`) describes in a host of
    /// `host_size` bytes; `None` when the header places it outside any host of that size.
    ///
    /// Current layout (header version 4 and later): the header's own start and length fields,
    /// units counted from the start of the host. Legacy layout (versions 1–3, TrueCrypt
    /// before 6.0; docs/format.md §2, §7): a hidden volume's data ends 1,536 bytes before the end
    /// of the host and is as long as its hidden-size field; a normal volume's data starts at the
    /// start field or, when that is 0 (versions 1–2), at byte 512, and runs to the end of the
    /// host unless the length field says otherwise. Units: XTS counts from the start of the
    /// host, LRW from the start of the data area, CBC from the start field (512 when 0), for
    /// hidden volumes too.
    pub fn of(header: &Header, slot: Slot, scheme: Scheme, host_size: u64) -> Option<DataArea> {
        let unit = DATA_UNIT_LEN;
        if header.version >= 4 {
            let start = header.encrypted_area_start;
            return Some(DataArea {
                start,
                len: header.encrypted_area_length,
                first_unit: start / unit,
            });
        }
        let field_start = match header.encrypted_area_start {
            0 => HEADER_SIZE as u64,
            s => s,
        };
        let (start, len) = if header.is_hidden() || slot == Slot::LegacyHidden {
            let len = header.hidden_volume_size;
            let start = host_size.checked_sub(len.checked_add(LEGACY_HIDDEN_FROM_END)?)?;
            (start, len)
        } else {
            let len = match header.encrypted_area_length {
                0 => host_size.checked_sub(field_start)?,
                l => l,
            };
            (field_start, len)
        };
        let first_unit = match scheme {
            Scheme::Xts(_) => start / unit,
            Scheme::Legacy(_, LegacyMode::Lrw) => 0,
            Scheme::Legacy(_, LegacyMode::Cbc) => field_start / unit,
        };
        Some(DataArea {
            start,
            len,
            first_unit,
        })
    }

    /// Whether `header` uses the layout of TrueCrypt before 6.0 (header at 0 only, no
    /// embedded backups, hidden header 1,536 bytes before the end).
    pub fn is_legacy_layout(header: &Header) -> bool {
        header.version < 4
    }
}

/// The size of a data unit, as a `u64` for offset arithmetic.
const DATA_UNIT_LEN: u64 = 512;

/// A header with the given version and size fields, for tests of the layout's arithmetic.
#[cfg(test)]
pub(crate) fn test_header(version: u16, hidden: u64, start: u64, len: u64) -> Header {
    Header {
        family: crate::header::Family::TrueCrypt,
        version,
        min_program_version: 0x0410,
        legacy_times: [0; 16],
        hidden_volume_size: hidden,
        volume_size: len,
        encrypted_area_start: start,
        encrypted_area_length: len,
        flags: 0,
        sector_size: 512,
        key_area: crate::secret::SecretBytes::zeroed(256),
    }
}

#[cfg(test)]
mod tests {
    use super::test_header as header;
    use super::*;

    #[test]
    fn slot_offsets() {
        let size = 1_048_576;
        assert_eq!(Slot::Normal.offset(HostKind::Volume, size), Some(0));
        assert_eq!(Slot::Hidden.offset(HostKind::Volume, size), Some(65_536));
        assert_eq!(
            Slot::BackupNormal.offset(HostKind::Volume, size),
            Some(917_504)
        );
        assert_eq!(
            Slot::BackupHidden.offset(HostKind::Volume, size),
            Some(983_040)
        );
        assert_eq!(
            Slot::LegacyHidden.offset(HostKind::Volume, size),
            Some(1_047_040)
        );
        assert_eq!(
            Slot::Hidden.offset(HostKind::BackupFile, BACKUP_FILE_SIZE),
            Some(65_536)
        );
        assert_eq!(
            Slot::Hidden.offset(HostKind::LegacyBackupFile, 1024),
            Some(512)
        );
        assert_eq!(
            Slot::System.offset(HostKind::BackupFile, BACKUP_FILE_SIZE),
            None
        );
        // A host too small for a slot has no such slot.
        assert_eq!(Slot::Hidden.offset(HostKind::Volume, 1000), None);
        assert_eq!(Slot::BackupNormal.offset(HostKind::Volume, 1000), None);
    }

    #[test]
    fn data_areas_of_each_layout_and_mode() {
        use crate::crypto::chain::ChainId;
        use crate::crypto::legacy::LegacyChain;
        let host = 1 << 20;
        let lrw = Scheme::Legacy(LegacyChain::Aes, LegacyMode::Lrw);
        let cbc = Scheme::Legacy(LegacyChain::Blowfish, LegacyMode::Cbc);
        let xts = Scheme::Xts(ChainId::Aes);
        let area = |start, len, first_unit| DataArea {
            start,
            len,
            first_unit,
        };
        // Current layout: the header's fields, units from the start of the host.
        let h = header(5, 0, 131_072, host - 262_144);
        assert_eq!(
            DataArea::of(&h, Slot::Normal, xts, host),
            Some(area(131_072, host - 262_144, 256))
        );
        // Legacy normal volume, fields 0 (versions 1-2): data from 512 to the end.
        let h = header(2, 0, 0, 0);
        assert_eq!(
            DataArea::of(&h, Slot::Normal, lrw, host),
            Some(area(512, host - 512, 0))
        );
        assert_eq!(
            DataArea::of(&h, Slot::Normal, cbc, host),
            Some(area(512, host - 512, 1))
        );
        // Legacy hidden volume: ends 1,536 bytes before the end; CBC counts from 512 still.
        let h = header(2, 65_536, 0, 0);
        let start = host - 65_536 - 1_536;
        assert_eq!(
            DataArea::of(&h, Slot::LegacyHidden, cbc, host),
            Some(area(start, 65_536, 1))
        );
        assert_eq!(
            DataArea::of(&h, Slot::LegacyHidden, lrw, host),
            Some(area(start, 65_536, 0))
        );
        // TrueCrypt 5 (version 3, XTS): the fields, units absolute; hidden at the legacy place.
        let h = header(3, 0, 512, host - 512);
        assert_eq!(
            DataArea::of(&h, Slot::Normal, xts, host),
            Some(area(512, host - 512, 1))
        );
        let h = header(3, 65_536, start, 65_536);
        assert_eq!(
            DataArea::of(&h, Slot::LegacyHidden, xts, host),
            Some(area(start, 65_536, start / 512))
        );
        // A hidden size larger than the host places the data nowhere.
        let h = header(2, host, 0, 0);
        assert_eq!(DataArea::of(&h, Slot::LegacyHidden, lrw, host), None);
        assert!(DataArea::is_legacy_layout(&header(3, 0, 0, 0)));
        assert!(!DataArea::is_legacy_layout(&header(4, 0, 0, 0)));
    }

    #[test]
    fn host_kinds() {
        assert_eq!(HostKind::of_size(131_072), HostKind::BackupFile);
        assert_eq!(HostKind::of_size(1_024), HostKind::LegacyBackupFile);
        assert_eq!(HostKind::of_size(299_008), HostKind::Volume);
    }
}
