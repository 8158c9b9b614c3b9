//! Opening crafted volumes and header backup files through the library's open path
//! ([`Volume::open`]): a header that parses (and that the family, scheme and slot rules allow)
//! must open, from the place it was written, with exactly its fields; anything else must be
//! refused with the error that says why; an opened volume's data area must lie inside the host,
//! and reading a data unit and writing it back must leave the host unchanged.

use tcvault::header::format::Header;
use tcvault::header::kdf::Family;
use tcvault::header::layout::{
    BACKUP_FILE_SIZE, DataArea, HEADER_SIZE, HostKind, LEGACY_BACKUP_FILE_SIZE,
    MIN_LEGACY_VOLUME_SIZE, MIN_VOLUME_SIZE, SALT_LEN, Slot,
};
use tcvault::header::unlock::UnlockError;
use tcvault::volume::{Host, SlotChoice, Volume, VolumeError};

use super::common::{Input, PASSWORD, creds, fix_crcs, opts, scheme_of, scratch_file, seal_plain};

/// Input: scheme, flags (bit 0: fix the CRCs, bit 1: write the `TRUE` magic), host size
/// (selector and count), slot, then the header's bytes 64–511 and filler for the rest.
pub fn check(data: &[u8]) {
    let mut inp = Input::new(data);
    let scheme = scheme_of(inp.byte());
    let flags = inp.byte();
    let size_sel = inp.byte();
    let k = u64::from(inp.byte());
    let slot_sel = inp.byte();
    let size = match size_sel % 5 {
        0 => LEGACY_BACKUP_FILE_SIZE,
        1 => BACKUP_FILE_SIZE,
        2 => MIN_VOLUME_SIZE + 512 * k,
        3 => MIN_LEGACY_VOLUME_SIZE + 512 * k,
        _ => 512 * (k % 8),
    };
    let mut plain = [0u8; HEADER_SIZE];
    let fields = inp.take(HEADER_SIZE - SALT_LEN);
    plain[SALT_LEN..SALT_LEN + fields.len()].copy_from_slice(fields);
    if flags & 2 != 0 {
        plain[64..68].copy_from_slice(b"TRUE");
    }
    if flags & 1 != 0 {
        fix_crcs(&mut plain);
    }
    let filler = inp.rest();
    let kind = HostKind::of_size(size);
    let slots: &[Slot] = match kind {
        HostKind::Volume => &[
            Slot::Normal,
            Slot::Hidden,
            Slot::LegacyHidden,
            Slot::BackupNormal,
            Slot::BackupHidden,
        ],
        _ => &[Slot::Normal, Slot::Hidden],
    };
    let slot = slots[usize::from(slot_sel) % slots.len()];
    let place = slot.offset(kind, size);
    let mut bytes: Vec<u8> = (0..size as usize)
        .map(|i| filler.get(i % filler.len().max(1)).copied().unwrap_or(0) ^ (i >> 9) as u8)
        .collect();
    if let Some(at) = place {
        let at = at as usize;
        bytes[at..at + HEADER_SIZE].copy_from_slice(&seal_plain(&plain, scheme));
    }
    let path = scratch_file("volume_open");
    std::fs::write(&path, &bytes).expect("write crafted volume");

    let backup = matches!(slot, Slot::BackupNormal | Slot::BackupHidden);
    let choice = SlotChoice {
        backup,
        ..SlotChoice::default()
    };
    let parsed = Header::parse(&plain);
    let opens = place.is_some()
        && parsed.as_ref().is_ok_and(|h| {
            h.family == Family::TrueCrypt && !(scheme.is_legacy() && (h.version >= 4 || backup))
        });
    let too_small = kind == HostKind::Volume && size < MIN_LEGACY_VOLUME_SIZE;
    let pw = creds(PASSWORD, 0);
    match Volume::open(&path, &pw, choice, &opts(Family::TrueCrypt, scheme)) {
        Ok(v) => {
            assert!(opens, "a header that should not open opened");
            let h = parsed.as_ref().expect("parsed");
            let u = v.unlocked();
            assert_eq!(&u.header, h, "opened with other fields than were written");
            assert_eq!(u.scheme, scheme);
            assert_eq!(u.salt, super::common::SALT);
            assert_eq!(
                u.slot.offset(kind, size),
                place,
                "opened from another place"
            );
            check_data(&v, &path, &bytes, kind, size);
        }
        Err(VolumeError::TooSmall { .. }) => assert!(too_small),
        Err(VolumeError::Truncated { .. }) => {
            assert!(
                opens && kind == HostKind::Volume,
                "truncated, but should not open"
            );
            let h = parsed.as_ref().expect("parsed");
            // The slot it opened from is one whose offset is `place`.
            let all_fit = slots
                .iter()
                .filter(|s| s.offset(kind, size) == place)
                .all(|&s| {
                    DataArea::of(h, s, scheme, size)
                        .is_some_and(|a| a.start.checked_add(a.len).is_some_and(|e| e <= size))
                });
            assert!(!all_fit, "the data area fits, yet truncated");
        }
        // A current-layout header in a host too short for the volume it describes (its data
        // area and the embedded backup headers after it): a header rewrite would land on data.
        Err(VolumeError::BackupHeadersCut { .. }) => {
            let h = parsed.as_ref().expect("parsed");
            assert!(opens && kind == HostKind::Volume && h.version >= 4);
        }
        Err(VolumeError::Unlock(UnlockError::NoMatch)) => assert!(!opens || too_small),
        Err(VolumeError::NoSuchSlot { .. }) => assert!(!opens),
        // The embedded backup slots never held the legacy schemes: nothing to try there.
        Err(VolumeError::Unlock(UnlockError::NothingToTry(_))) => {
            assert!(backup && scheme.is_legacy());
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
}

/// Data of an opened host: none in a backup file; inside the host for a volume, and a unit read
/// and written back changes nothing.
fn check_data(v: &Volume, path: &std::path::Path, bytes: &[u8], kind: HostKind, size: u64) {
    let mut unit = vec![0u8; 512];
    if kind != HostKind::Volume {
        assert_eq!(v.data_len(), 0);
        assert!(matches!(
            v.read_data(0, &mut unit),
            Err(VolumeError::NoDataArea { .. })
        ));
        return;
    }
    let a = v.data_area();
    assert!(a.start.checked_add(a.len).is_some_and(|e| e <= size));
    assert_eq!(a.len, v.data_len());
    let past = v.data_len().next_multiple_of(512);
    assert!(
        v.read_data(past, &mut unit).is_err(),
        "read past the data area"
    );
    if v.data_len() < 512 {
        return;
    }
    let last = (v.data_len() / 512 - 1) * 512;
    let host = Host::open_writable(path).expect("reopen writable");
    let w = Volume::with_header(host, clone_unlocked(v, path)).expect("same header");
    for off in [0, last] {
        w.read_data(off, &mut unit)
            .expect("read a unit inside the data area");
        w.write_data(off, &mut unit).expect("write it back");
    }
    let after = std::fs::read(path).expect("read back");
    assert!(
        after == bytes,
        "reading a unit and writing it back changed the host"
    );
}

/// Opens `path` again with the same narrow options, to get a second [`UnlockedHeader`].
fn clone_unlocked(v: &Volume, path: &std::path::Path) -> tcvault::header::UnlockedHeader {
    let u = v.unlocked();
    let host = Host::open(path).expect("reopen");
    let cands = host.candidates(&[u.slot]).expect("slot exists");
    tcvault::header::unlock(
        &cands,
        &creds(PASSWORD, 0),
        &opts(Family::TrueCrypt, u.scheme),
    )
    .expect("opens again")
}
