//! The write commands on crafted volumes, through the library functions the CLI calls:
//! `change-password` (also `--to-veracrypt`), `restore-header` (embedded, and from a backup
//! that `backup-header` made) and the header rewrite of the escrow restore (`-R`). After every
//! write: nothing changed outside the header places the format gives the header, the data
//! area reads back the same through the volume, the volume opens with the credentials it
//! should now have, and a refused write changed nothing at all.

use std::path::Path;

use tcvault::crypto::kdf::Prf;
use tcvault::header::format::Header;
use tcvault::header::kdf::Family;
use tcvault::header::layout::HeaderRole;
use tcvault::header::seal::Protection;
use tcvault::header::unlock::Credentials;
use tcvault::volume::write::{self, BackupSource, NewProtection};
use tcvault::volume::{Host, SlotChoice, Volume};

use super::common::{
    Crafted, Input, NEW_PASSWORD, PASSWORD, assert_only_windows_changed, craft, creds,
    header_windows, opts, scratch_file,
};

/// Input: the crafted volume (see [`craft`]), then the operation and its options.
pub fn check(data: &[u8]) {
    let mut inp = Input::new(data);
    let c = craft(&mut inp);
    let op = inp.byte();
    let keep = inp.byte() & 1 == 1;
    let force = inp.byte() & 1 == 1;
    let path = scratch_file("cli_write");
    std::fs::write(&path, &c.bytes).expect("write crafted volume");
    let keep_path = scratch_file("cli_write-keep");
    let _ = std::fs::remove_file(&keep_path);
    let keep_at = keep.then_some(keep_path.as_path());
    let old = creds(PASSWORD, 0);
    let tc = opts(Family::TrueCrypt, c.scheme);
    let slots = SlotChoice {
        hidden: c.header.is_hidden(),
        ..SlotChoice::default()
    };
    let before = open_rw(&path, &old, slots, Family::TrueCrypt, &c);
    let Some(before) = before else {
        // Tweaked fields the library refuses to open: the embedded restore is the only write
        // that does not need the volume open, and it must leave the host as it was.
        if op % 5 == 2 {
            let r = write::restore_header(&path, BackupSource::Embedded, &old, &tc, keep_at, force);
            if r.is_err() {
                assert_eq!(
                    std::fs::read(&path).expect("read"),
                    c.bytes,
                    "refused, yet written"
                );
            }
        }
        return;
    };
    // The header as it reads back (fields an old version does not store read as defaults).
    let orig = before.unlocked().header.clone();
    let plain_before = read_area(&before);
    // The header says hidden (a non-zero hidden size) where its slot says normal, or the
    // reverse: every write must refuse it (the places follow the slot, and the fields
    // contradict it).
    let mismatch = before.unlocked().slot.is_hidden() != orig.is_hidden();
    let (result, expect_creds, family, expect_header) = match op % 5 {
        0 => {
            let new = creds(NEW_PASSWORD, 0);
            let prot = Protection::for_scheme(Family::TrueCrypt, Prf::Sha512, 0, c.scheme)
                .expect("TrueCrypt SHA-512");
            let np = NewProtection { creds: &new, prot };
            let r = write::change_password(&before, &np, keep_at);
            (r.map(drop), new, Family::TrueCrypt, orig.clone())
        }
        1 => {
            let new = creds(NEW_PASSWORD, 1);
            let Ok(prot) = Protection::for_scheme(Family::VeraCrypt, Prf::Sha512, 1, c.scheme)
            else {
                // Legacy schemes have no VeraCrypt form; nothing to write.
                return;
            };
            let np = NewProtection { creds: &new, prot };
            let r = write::change_password(&before, &np, keep_at);
            let mut h = orig.clone();
            h.family = Family::VeraCrypt;
            h.min_program_version = 0x010B;
            h.version = 5;
            (r.map(drop), new, Family::VeraCrypt, h)
        }
        2 => {
            let r = write::restore_header(&path, BackupSource::Embedded, &old, &tc, keep_at, force);
            (r.map(drop), old, Family::TrueCrypt, orig.clone())
        }
        3 => {
            let compact = inp.byte() & 1 == 1;
            let Ok(backup) = write::backup_bytes(&before, None, compact) else {
                assert_eq!(std::fs::read(&path).expect("read"), c.bytes);
                return;
            };
            let bpath = scratch_file("cli_write-backup");
            std::fs::write(&bpath, &backup).expect("write backup");
            // The backup opens with the same password to the same header.
            let b = Volume::open(&bpath, &old, SlotChoice::default(), &tc).expect("backup opens");
            assert_eq!(b.unlocked().header, orig, "the backup holds another header");
            assert_eq!(b.data_len(), 0);
            let r =
                write::restore_header(&path, BackupSource::File(&bpath), &old, &tc, keep_at, force);
            (r.map(drop), old, Family::TrueCrypt, orig.clone())
        }
        _ => {
            // What `tcvault -R` writes to a volume: the escrowed header under a new password.
            let new = creds(NEW_PASSWORD, 0);
            let prot = Protection::for_scheme(Family::TrueCrypt, Prf::Sha512, 0, c.scheme)
                .expect("TrueCrypt SHA-512");
            let role = HeaderRole::of_slot(before.unlocked().slot);
            let r = write::rewrite_header(before.host(), &orig, role, prot, &new, keep_at);
            (r.map(drop), new, Family::TrueCrypt, orig.clone())
        }
    };
    drop(before);
    let after = std::fs::read(&path).expect("read back");
    if result.is_err() {
        assert!(after == c.bytes, "a refused write changed the volume");
        return;
    }
    assert!(
        !mismatch,
        "a header that contradicts its slot was rewritten"
    );
    let size = c.bytes.len() as u64;
    let windows = header_windows(&expect_header, size);
    assert_only_windows_changed(&c.bytes, &after, &windows, "write");
    if let Some(k) = keep_at {
        check_keep(k, &c.bytes, &orig);
    }
    let v = open_rw(&path, &expect_creds, slots, family, &c)
        .expect("the volume opens with its new credentials");
    assert_eq!(v.unlocked().header, expect_header, "the header changed");
    let a = v.data_area();
    let overlaps = windows
        .iter()
        .any(|&w| w < a.start + a.len && a.start < w + 512);
    assert!(
        !overlaps,
        "a header whose data area covers its own place was rewritten"
    );
    assert!(read_area(&v) == plain_before, "the data area changed");
}

/// Opens the crafted volume writable with `c`'s scheme; `None` when it does not open.
fn open_rw(
    path: &Path,
    cr: &Credentials,
    slots: SlotChoice,
    family: Family,
    c: &Crafted,
) -> Option<Volume> {
    let host = Host::open_writable(path).ok()?;
    Volume::open_on(host, cr, slots, &opts(family, c.scheme)).ok()
}

/// The whole decrypted data area.
fn read_area(v: &Volume) -> Vec<u8> {
    let len = v.data_len() - v.data_len() % 512;
    let mut buf = vec![0u8; len as usize];
    if len > 0 {
        v.read_data(0, &mut buf).expect("read the data area");
    }
    buf
}

/// The kept file holds the host's header slots as they were: the first 128 KiB, or in the
/// legacy layout the headers at 0 and 1,536 bytes before the end.
fn check_keep(keep: &Path, before: &[u8], header: &Header) {
    let kept = std::fs::read(keep).expect("the old headers were kept");
    if header.version < 4 {
        let n = before.len();
        let mut want = before[..512].to_vec();
        want.extend_from_slice(&before[n - 1536..n - 1024]);
        assert!(
            kept == want,
            "the kept legacy headers differ from the old ones"
        );
    } else {
        assert!(
            kept == before[..131_072],
            "the kept header slots differ from the old ones"
        );
    }
}
