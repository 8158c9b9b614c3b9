//! The decrypted-header parser: whatever 512 bytes come in, [`Header::parse`] must not panic,
//! and a header it accepts must serialize back to the same bytes in every field it reads, and
//! parse again to the same header.

use tcvault::header::format::{Header, HeaderError, MAX_HEADER_VERSION};
use tcvault::header::layout::{HEADER_SIZE, SALT_LEN};

use super::common::{Input, fix_crcs};

/// First byte: bit 0 sets both CRCs to match (so the fuzzer gets past them); the rest are the
/// header's bytes.
pub fn check(data: &[u8]) {
    let mut inp = Input::new(data);
    let fix = inp.byte() & 1 == 1;
    let mut b = [0u8; HEADER_SIZE];
    let rest = inp.rest();
    let n = rest.len().min(HEADER_SIZE);
    b[..n].copy_from_slice(&rest[..n]);
    if fix {
        fix_crcs(&mut b);
    }
    let magic_ok = &b[64..68] == b"VERA" || &b[64..68] == b"TRUE";
    let version = u16::from_be_bytes([b[68], b[69]]);
    match Header::parse(&b) {
        Ok(h) => {
            assert!(magic_ok && version <= MAX_HEADER_VERSION);
            assert_eq!(h.version, version);
            assert!((512..=4096).contains(&h.sector_size) && h.sector_size % 512 == 0);
            assert_eq!(h.is_hidden(), h.hidden_volume_size != 0);
            let salt: [u8; SALT_LEN] = b[..SALT_LEN].try_into().expect("64 bytes");
            let out = h.serialize(&salt);
            let out = out.expose();
            // Bytes the parser does not keep: reserved 132–251 and, before version 5, the
            // sector size. The header CRC (version 4 on) covers them, so it comes back the
            // same only when they were zero, as serialize writes them.
            let dropped =
                |i: usize| (132..252).contains(&i) || (version < 5 && (128..132).contains(&i));
            let dropped_zero = (64..252).filter(|&i| dropped(i)).all(|i| b[i] == 0);
            let unread = |i: usize| {
                dropped(i) || ((252..256).contains(&i) && (version < 4 || !dropped_zero))
            };
            for i in (0..HEADER_SIZE).filter(|&i| !unread(i)) {
                assert_eq!(
                    out[i], b[i],
                    "byte {i} does not survive parse and serialize"
                );
            }
            let back: &[u8; HEADER_SIZE] = out.try_into().expect("512 bytes");
            assert_eq!(Header::parse(back).as_ref(), Ok(&h));
        }
        Err(HeaderError::BadMagic) => assert!(!magic_ok),
        Err(HeaderError::UnsupportedVersion(v)) => {
            assert!(magic_ok && v == version && v > MAX_HEADER_VERSION);
        }
        Err(HeaderError::HeaderCrc) => assert!(!fix && version >= 4),
        Err(HeaderError::KeyAreaCrc) => assert!(!fix),
        Err(HeaderError::ProgramVersion(_) | HeaderError::SectorSize(_)) => assert!(magic_ok),
    }
}
