//! Header backup files (1,024 and 131,072 bytes): crafted backups, made of the crafted
//! volume's own header with changed fields or of raw header bytes, open as backups (no data
//! area) and are restored onto the volume with `restore-header --file`. A refused restore
//! changes nothing; an accepted one changes only the header places of the restored header,
//! keeps the old slots exactly, leaves a data area clear of those places, opens with the
//! backup's password to the backup's header, and without `--force` shows a filesystem.

use tcvault::header::format::Header;
use tcvault::header::kdf::Family;
use tcvault::header::layout::{BACKUP_FILE_SIZE, HEADER_SIZE, SALT_LEN};
use tcvault::header::unlock::unlock;
use tcvault::volume::probe;
use tcvault::volume::write::{self, BackupSource};
use tcvault::volume::{Host, SlotChoice, Volume, VolumeError};

use super::common::{
    Input, PASSWORD, assert_only_windows_changed, craft, creds, fix_crcs, header_windows, opts,
    plain_of, scratch_file, seal_plain,
};

/// Input: the crafted volume (see [`craft`]), then the backup: mode (0: the volume's header
/// with one field changed, 1: raw header bytes), flags, and the bytes.
pub fn check(data: &[u8], backup_size: u64) {
    let mut inp = Input::new(data);
    let c = craft(&mut inp);
    let mode = inp.byte();
    let flags = inp.byte();
    let force = flags & 1 == 1;
    let keep = flags & 2 == 2;
    let mut plain = plain_of(&c.header);
    if mode.is_multiple_of(2) {
        let mut h = c.header.clone();
        match inp.byte() % 8 {
            1 => h.encrypted_area_start = h.encrypted_area_start.wrapping_add(512),
            2 => h.encrypted_area_length = h.encrypted_area_length.wrapping_sub(512),
            3 => h.hidden_volume_size ^= 512,
            4 => h.version = u16::from(inp.byte() % 6),
            5 => h.volume_size = u64::from(inp.u16()),
            6 => h.flags = 1,
            _ => {}
        }
        plain = plain_of(&h);
    } else {
        let raw = inp.take(HEADER_SIZE - SALT_LEN);
        plain[SALT_LEN..SALT_LEN + raw.len()].copy_from_slice(raw);
        if flags & 4 == 4 {
            fix_crcs(&mut plain);
        }
    }
    let second = if backup_size == BACKUP_FILE_SIZE {
        65_536
    } else {
        512
    };
    let mut bytes: Vec<u8> = (0..backup_size as usize)
        .map(|i| (i as u8).wrapping_mul(151) ^ 0x3C)
        .collect();
    bytes[..HEADER_SIZE].copy_from_slice(&seal_plain(&plain, c.scheme));
    if flags & 8 == 8 {
        // The same header in the hidden slot as well.
        bytes[second..second + HEADER_SIZE].copy_from_slice(&seal_plain(&plain, c.scheme));
    }
    let bpath = scratch_file(&format!("backup-{backup_size}"));
    std::fs::write(&bpath, &bytes).expect("write backup");
    let vpath = scratch_file(&format!("backup-{backup_size}-volume"));
    std::fs::write(&vpath, &c.bytes).expect("write volume");
    let kpath = scratch_file(&format!("backup-{backup_size}-keep"));
    let _ = std::fs::remove_file(&kpath);
    let pw = creds(PASSWORD, 0);
    let tc = opts(Family::TrueCrypt, c.scheme);

    let expected = Header::parse(&plain).ok();
    let from_backup = match Volume::open(&bpath, &pw, SlotChoice::default(), &tc) {
        Ok(b) => {
            assert_eq!(b.data_len(), 0, "a backup file has no data area");
            let mut unit = [0u8; 512];
            assert!(matches!(
                b.read_data(0, &mut unit),
                Err(VolumeError::NoDataArea { .. })
            ));
            let h = b.unlocked().header.clone();
            assert_eq!(
                Some(&h),
                expected.as_ref(),
                "the backup opened to another header"
            );
            Some(h)
        }
        Err(_) => None,
    };
    let keep_at = keep.then_some(kpath.as_path());
    let r = write::restore_header(&vpath, BackupSource::File(&bpath), &pw, &tc, keep_at, force);
    let after = std::fs::read(&vpath).expect("read back");
    let Ok(slot) = r else {
        assert!(after == c.bytes, "a refused restore changed the volume");
        assert!(
            !kpath.exists(),
            "a refused restore kept the old slots in a file"
        );
        return;
    };
    let h = from_backup.expect("a restore from a backup that does not open");
    let size = c.bytes.len() as u64;
    let windows = header_windows(&h, size);
    assert_only_windows_changed(&c.bytes, &after, &windows, "restore");
    if keep {
        let kept = std::fs::read(&kpath).expect("old slots kept");
        if h.version < 4 {
            let n = c.bytes.len();
            let mut want = c.bytes[..512].to_vec();
            want.extend_from_slice(&c.bytes[n - 1536..n - 1024]);
            assert!(kept == want, "kept legacy headers differ");
        } else {
            assert!(kept == c.bytes[..131_072], "kept slots differ");
        }
    }
    // The place written opens to the backup's header. (Another slot may still hold an older
    // header under the same password: a legacy-layout backup restored onto a current-layout
    // volume, say; the slot tried first would then open that one.)
    let host = Host::open(&vpath).expect("reopen");
    let cands = host.candidates(&[slot]).expect("the restored slot exists");
    let u = unlock(&cands, &pw, &tc).expect("the restored header opens");
    assert_eq!(u.header, h, "restored another header");
    let v = Volume::with_header(host, u).expect("its data area fits");
    let a = v.data_area();
    assert!(
        !windows
            .iter()
            .any(|&w| w < a.start + a.len && a.start < w + 512),
        "restored a header whose data area covers its own place"
    );
    if !force {
        let n = probe::PROBE_LEN.min(v.data_len() as usize) / 512 * 512;
        let mut head = vec![0u8; n];
        v.read_data(0, &mut head).expect("read the data area");
        assert!(
            probe::detect(&head).is_some(),
            "restored without --force onto no filesystem"
        );
    }
}
