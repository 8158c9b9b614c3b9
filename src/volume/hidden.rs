//! Hidden volumes inside an existing outer volume.
//!
//! A hidden volume of requested size S occupies the end of the outer volume's data area:
//! its data starts at host size − 131,072 − S (docs/format.md §2). Before anything is written
//! there, tcvault proves that the outer volume's filesystem does not use that space: it decrypts
//! the outer filesystem's allocation table and finds the end of the last allocated cluster. Only
//! FAT12/16/32 is read today (what VeraCrypt's own formatter and most outer volumes use); for
//! any other filesystem, or none, the hidden volume is refused rather than risk outer data.

use std::sync::atomic::AtomicBool;

use super::write::{NewVolume, Order, Progress, SealedHeader, WriteError};
use super::{Volume, probe};
use crate::crypto::xts::DATA_UNIT;
use crate::header::layout::{BACKUP_NORMAL_FROM_END, HeaderRole, HostKind, Slot};
use crate::header::seal::new_header;
use crate::header::unlock::Credentials;

/// Smallest hidden volume (docs/format.md §2).
pub const MIN_HIDDEN_SIZE: u64 = 40 * 1024;
/// Smallest host that can hold a hidden volume (docs/format.md §2).
pub const MIN_HIDDEN_HOST: u64 = 340 * 1024;
/// Below this requested size the hidden data area is S − 4,096, above S − 131,072.
const SMALL_HIDDEN: u64 = 2 * 1024 * 1024;

/// Where a hidden volume of requested size `size` lives in a host of `host_size` bytes:
/// (absolute data start, data length).
pub fn hidden_layout(host_size: u64, size: u64) -> Option<(u64, u64)> {
    let start = host_size
        .checked_sub(BACKUP_NORMAL_FROM_END)?
        .checked_sub(size)?;
    let len = if size < SMALL_HIDDEN {
        size.checked_sub(4096)?
    } else {
        size.checked_sub(BACKUP_NORMAL_FROM_END)?
    };
    Some((start, len))
}

/// How many leading bytes of the outer volume's data area its FAT filesystem uses: up to the
/// end of the highest allocated cluster (the boot sector, FATs and root directory included).
///
/// # Errors
/// [`WriteError::Unsupported`] when the data area holds no FAT filesystem tcvault can read.
pub fn outer_used_bytes(outer: &Volume) -> Result<u64, WriteError> {
    let unsupported = |why: String| WriteError::Unsupported {
        path: outer.host().path().to_path_buf(),
        why,
    };
    let mut boot = vec![0u8; DATA_UNIT];
    outer.read_data(0, &mut boot)?;
    let le16 = |o: usize| u64::from(u16::from_le_bytes([boot[o], boot[o + 1]]));
    let le32 = |o: usize| {
        u64::from(u32::from_le_bytes([
            boot[o],
            boot[o + 1],
            boot[o + 2],
            boot[o + 3],
        ]))
    };
    let fs = probe::detect(&boot);
    if fs != Some("FAT") {
        return Err(unsupported(format!(
            "the outer volume holds {}; tcvault proves free space for a hidden volume only on \
             FAT, so it will not write into it",
            fs.map_or_else(|| "no filesystem it recognises".to_string(), str::to_string)
        )));
    }
    let bps = le16(0x0B);
    let spc = u64::from(boot[0x0D]);
    let reserved = le16(0x0E);
    let nfats = u64::from(boot[0x10]);
    let root_entries = le16(0x11);
    let total = if le16(0x13) != 0 {
        le16(0x13)
    } else {
        le32(0x20)
    };
    let fat_sectors = if le16(0x16) != 0 {
        le16(0x16)
    } else {
        le32(0x24)
    };
    if !matches!(bps, 512 | 1024 | 2048 | 4096) || spc == 0 || nfats == 0 || fat_sectors == 0 {
        return Err(unsupported(
            "the outer volume's FAT boot sector is damaged".into(),
        ));
    }
    let root_sectors = (root_entries * 32).div_ceil(bps);
    let first_data = reserved + nfats * fat_sectors + root_sectors;
    let clusters = total.saturating_sub(first_data) / spc;
    let fat_bytes = fat_sectors * bps;
    if (reserved + fat_sectors) * bps > outer.data_len() || fat_bytes > 64 * 1024 * 1024 {
        return Err(unsupported(
            "the outer volume's FAT does not fit its data area".into(),
        ));
    }
    // Read the first FAT (whole data units covering it).
    let fat_start = reserved * bps;
    let unit = DATA_UNIT as u64;
    let read_from = fat_start - fat_start % unit;
    let read_len = (fat_start + fat_bytes).div_ceil(unit) * unit - read_from;
    let mut fat = vec![0u8; usize::try_from(read_len).unwrap_or(0)];
    outer.read_data(read_from, &mut fat)?;
    let fat = &fat[usize::try_from(fat_start - read_from).unwrap_or(0)..];
    let entry = |c: u64| -> u64 {
        let c = usize::try_from(c).unwrap_or(usize::MAX);
        let get = |i: usize| fat.get(i).copied().map_or(0, u64::from);
        if clusters < 4085 {
            let off = c + c / 2;
            let v = get(off) | (get(off + 1) << 8);
            if c % 2 == 0 { v & 0xFFF } else { v >> 4 }
        } else if clusters < 65525 {
            get(2 * c) | (get(2 * c + 1) << 8)
        } else {
            (get(4 * c) | (get(4 * c + 1) << 8) | (get(4 * c + 2) << 16) | (get(4 * c + 3) << 24))
                & 0x0FFF_FFFF
        }
    };
    let last_used = (2..clusters + 2).rev().find(|&c| entry(c) != 0);
    let used_sectors = match last_used {
        Some(c) => first_data + (c - 2 + 1) * spc,
        None => first_data,
    };
    Ok(used_sectors * bps)
}

/// Creates a hidden volume of requested size `size` inside `outer` (opened writable with its
/// normal header): checks the space is free ([`outer_used_bytes`]), fills the hidden data area
/// (unless quick), then writes the hidden header's embedded backup and its primary.
/// Returns the hidden data area's (absolute start, length).
///
/// # Errors
/// See [`WriteError`].
pub fn create_hidden(
    outer: &Volume,
    size: u64,
    spec: &NewVolume,
    creds: &Credentials,
    progress: Progress<'_>,
    cancel: &AtomicBool,
) -> Result<(u64, u64), WriteError> {
    let host = outer.host();
    let u = outer.unlocked();
    let path = host.path().to_path_buf();
    let refuse = |why: String| WriteError::Unsupported {
        path: path.clone(),
        why,
    };
    if host.kind() != HostKind::Volume || u.slot != Slot::Normal || u.header.is_hidden() {
        return Err(refuse(
            "open the outer volume with its own password (normal header) to add a hidden \
             volume"
                .into(),
        ));
    }
    if u.header.version < 4 || u.header.is_system() {
        return Err(refuse(
            "hidden volumes are created only in current-layout volumes".into(),
        ));
    }
    if spec.prot.family != u.header.family {
        return Err(refuse(format!(
            "the outer volume is in {} format; a hidden volume inside it must be too (a {} \
             hidden header would not open where the outer one does)",
            u.header.family.id(),
            spec.prot.family.id()
        )));
    }
    let host_size = host.size();
    if host_size < MIN_HIDDEN_HOST {
        return Err(WriteError::BadSize {
            size: host_size,
            why: format!("an outer volume needs at least {MIN_HIDDEN_HOST} bytes"),
        });
    }
    let sector = u64::from(u.header.sector_size);
    if size < MIN_HIDDEN_SIZE || !size.is_multiple_of(sector.max(DATA_UNIT as u64)) {
        return Err(WriteError::BadSize {
            size,
            why: format!(
                "a hidden volume needs at least {MIN_HIDDEN_SIZE} bytes, in whole {sector}-byte \
                 sectors"
            ),
        });
    }
    let (start, len) = hidden_layout(host_size, size).ok_or(WriteError::BadSize {
        size,
        why: "larger than the outer volume".into(),
    })?;
    let outer_start = u.header.encrypted_area_start;
    let used_end = outer_start + outer_used_bytes(outer)?;
    if start < used_end {
        let free = (host_size - BACKUP_NORMAL_FROM_END).saturating_sub(used_end);
        return Err(WriteError::BadSize {
            size,
            why: format!(
                "the outer volume's filesystem uses its data area up to byte {used_end}; at most \
                 {} bytes are free at its end for a hidden volume",
                free - free % sector.max(DATA_UNIT as u64)
            ),
        });
    }
    let header = new_header(spec.prot, start, len, true, u.header.sector_size)?;
    // Checked and sealed before the fill: a wrong option fails here, not after it.
    let sealed = SealedHeader::new(
        &path,
        host_size,
        &header,
        spec.prot,
        creds,
        HeaderRole::Hidden,
    )?;
    let file = host.file();
    if !spec.quick {
        super::write::fill_area(file, &path, start, len, spec, progress, cancel)?;
    }
    sealed.write(file, &path, Order::BackupFirst, None)?;
    Ok((start, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_follows_the_format() {
        // 1 MiB host, 200 KiB hidden: data at 1 MiB − 128 KiB − 200 KiB, S − 4 KiB long.
        assert_eq!(
            hidden_layout(1 << 20, 200 * 1024),
            Some(((1 << 20) - 131_072 - 204_800, 204_800 - 4096))
        );
        assert_eq!(
            hidden_layout(16 << 20, 4 << 20),
            Some(((16 << 20) - 131_072 - (4 << 20), (4 << 20) - 131_072))
        );
        assert_eq!(hidden_layout(100_000, 200_000), None);
    }
}
