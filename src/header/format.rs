//! The 512-byte header: decrypted bytes ⇄ typed [`Header`] (docs/format.md §1).

use super::kdf::Family;
use super::layout::{HEADER_SIZE, SALT_LEN};
use crate::secret::SecretBytes;

/// Offsets inside the header (docs/format.md §1).
mod off {
    pub const MAGIC: usize = 64;
    pub const VERSION: usize = 68;
    pub const MIN_PROGRAM_VERSION: usize = 70;
    pub const KEY_AREA_CRC: usize = 72;
    pub const LEGACY_TIMES: usize = 76;
    pub const HIDDEN_SIZE: usize = 92;
    pub const VOLUME_SIZE: usize = 100;
    pub const AREA_START: usize = 108;
    pub const AREA_LENGTH: usize = 116;
    pub const FLAGS: usize = 124;
    pub const SECTOR_SIZE: usize = 128;
    pub const HEADER_CRC: usize = 252;
    pub const KEY_AREA: usize = 256;
}

/// Size of the master key area (docs/format.md §1).
pub const KEY_AREA_LEN: usize = 256;
/// Highest header version known (docs/format.md §1).
pub const MAX_HEADER_VERSION: u16 = 5;
/// Header version written today.
pub const CURRENT_HEADER_VERSION: u16 = 5;
/// Minimum program version VeraCrypt writes (docs/format.md §1).
pub const VERACRYPT_MIN_PROGRAM_VERSION: u16 = 0x010B;
/// Minimum program version TrueCrypt 7 writes (docs/format.md §1).
pub const TRUECRYPT_MIN_PROGRAM_VERSION: u16 = 0x0700;
/// Flag bit 0: system encryption.
pub const FLAG_SYSTEM: u32 = 1;
/// Flag bit 1: non-system in-place encryption.
pub const FLAG_IN_PLACE: u32 = 2;

/// Why decrypted header bytes are not a valid header. During trial decryption every variant
/// just means "not this key"; once a header has been accepted they describe real damage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The magic is neither `VERA` nor `TRUE`.
    #[error("no header magic")]
    BadMagic,
    /// The header version is newer than any known.
    #[error("unsupported header version {0}")]
    UnsupportedVersion(u16),
    /// CRC-32 of bytes 64–251 does not match.
    #[error("header checksum mismatch")]
    HeaderCrc,
    /// The header asks for a newer program than this format knows.
    #[error("the volume needs program version {0:#06x} or newer")]
    ProgramVersion(u16),
    /// CRC-32 of the key area does not match.
    #[error("key-area checksum mismatch")]
    KeyAreaCrc,
    /// Sector size outside 512–4096 or not a multiple of 512.
    #[error("invalid sector size {0}")]
    SectorSize(u32),
}

/// A decrypted, validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Family told by the magic.
    pub family: Family,
    /// Header format version (5 today; 1–4 on old TrueCrypt volumes).
    pub version: u16,
    /// Minimum program version needed to open the volume.
    pub min_program_version: u16,
    /// Bytes 76–91: zero today; creation/modification times on old TrueCrypt volumes. Kept
    /// as-is so that a parsed header serializes back to the same bytes.
    pub legacy_times: [u8; 16],
    /// Non-zero only in a hidden volume's header: its data size.
    pub hidden_volume_size: u64,
    /// Volume data size in bytes.
    pub volume_size: u64,
    /// Absolute byte offset of the data area in the host.
    pub encrypted_area_start: u64,
    /// Length of the data area in bytes.
    pub encrypted_area_length: u64,
    /// Flag bits ([`FLAG_SYSTEM`], [`FLAG_IN_PLACE`]).
    pub flags: u32,
    /// Sector size in bytes (512 for headers older than version 5).
    pub sector_size: u32,
    /// The 256-byte master key area.
    pub key_area: SecretBytes,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Header {
    /// Parses and validates a header whose bytes 64–511 have been decrypted (bytes 0–63, the
    /// salt, are not read). Checks in docs/format.md's order: magic, version, header CRC (version ≥
    /// 4), program version, key-area CRC, sector size.
    ///
    /// # Errors
    /// The first check that fails, as a [`HeaderError`].
    pub fn parse(b: &[u8; HEADER_SIZE]) -> Result<Header, HeaderError> {
        let family = match &b[off::MAGIC..off::MAGIC + 4] {
            m if m == Family::VeraCrypt.magic() => Family::VeraCrypt,
            m if m == Family::TrueCrypt.magic() => Family::TrueCrypt,
            _ => return Err(HeaderError::BadMagic),
        };
        let version = be16(b, off::VERSION);
        if version > MAX_HEADER_VERSION {
            return Err(HeaderError::UnsupportedVersion(version));
        }
        if version >= 4 && crc32(&b[off::MAGIC..off::HEADER_CRC]) != be32(b, off::HEADER_CRC) {
            return Err(HeaderError::HeaderCrc);
        }
        let min_program_version = be16(b, off::MIN_PROGRAM_VERSION);
        if min_program_version > max_program_version(family) {
            return Err(HeaderError::ProgramVersion(min_program_version));
        }
        if crc32(&b[off::KEY_AREA..]) != be32(b, off::KEY_AREA_CRC) {
            return Err(HeaderError::KeyAreaCrc);
        }
        let sector_size = if version >= 5 {
            be32(b, off::SECTOR_SIZE)
        } else {
            512
        };
        if !(512..=4096).contains(&sector_size) || sector_size % 512 != 0 {
            return Err(HeaderError::SectorSize(sector_size));
        }
        let mut legacy_times = [0u8; 16];
        legacy_times.copy_from_slice(&b[off::LEGACY_TIMES..off::LEGACY_TIMES + 16]);
        Ok(Header {
            family,
            version,
            min_program_version,
            legacy_times,
            hidden_volume_size: be64(b, off::HIDDEN_SIZE),
            volume_size: be64(b, off::VOLUME_SIZE),
            encrypted_area_start: be64(b, off::AREA_START),
            encrypted_area_length: be64(b, off::AREA_LENGTH),
            flags: be32(b, off::FLAGS),
            sector_size,
            key_area: SecretBytes::from_slice(&b[off::KEY_AREA..]),
        })
    }

    /// The plaintext header: `salt` in bytes 0–63, the fields in 64–511, both CRCs computed.
    /// The result is secret (it holds the master keys); the caller encrypts bytes 64–511.
    pub fn serialize(&self, salt: &[u8; SALT_LEN]) -> SecretBytes {
        let mut out = SecretBytes::zeroed(HEADER_SIZE);
        let b = out.expose_mut();
        b[..SALT_LEN].copy_from_slice(salt);
        b[off::MAGIC..off::MAGIC + 4].copy_from_slice(self.family.magic());
        b[off::VERSION..off::VERSION + 2].copy_from_slice(&self.version.to_be_bytes());
        b[off::MIN_PROGRAM_VERSION..off::MIN_PROGRAM_VERSION + 2]
            .copy_from_slice(&self.min_program_version.to_be_bytes());
        b[off::LEGACY_TIMES..off::LEGACY_TIMES + 16].copy_from_slice(&self.legacy_times);
        b[off::HIDDEN_SIZE..off::HIDDEN_SIZE + 8]
            .copy_from_slice(&self.hidden_volume_size.to_be_bytes());
        b[off::VOLUME_SIZE..off::VOLUME_SIZE + 8].copy_from_slice(&self.volume_size.to_be_bytes());
        b[off::AREA_START..off::AREA_START + 8]
            .copy_from_slice(&self.encrypted_area_start.to_be_bytes());
        b[off::AREA_LENGTH..off::AREA_LENGTH + 8]
            .copy_from_slice(&self.encrypted_area_length.to_be_bytes());
        b[off::FLAGS..off::FLAGS + 4].copy_from_slice(&self.flags.to_be_bytes());
        if self.version >= 5 {
            b[off::SECTOR_SIZE..off::SECTOR_SIZE + 4]
                .copy_from_slice(&self.sector_size.to_be_bytes());
        }
        let key_len = self.key_area.len().min(KEY_AREA_LEN);
        b[off::KEY_AREA..off::KEY_AREA + key_len]
            .copy_from_slice(&self.key_area.expose()[..key_len]);
        let key_crc = crc32(&b[off::KEY_AREA..]);
        b[off::KEY_AREA_CRC..off::KEY_AREA_CRC + 4].copy_from_slice(&key_crc.to_be_bytes());
        if self.version >= 4 {
            let header_crc = crc32(&b[off::MAGIC..off::HEADER_CRC]);
            b[off::HEADER_CRC..off::HEADER_CRC + 4].copy_from_slice(&header_crc.to_be_bytes());
        }
        out
    }

    /// Whether this is a hidden volume's header.
    pub fn is_hidden(&self) -> bool {
        self.hidden_volume_size != 0
    }

    /// Whether the system-encryption flag is set.
    pub fn is_system(&self) -> bool {
        self.flags & FLAG_SYSTEM != 0
    }
}

/// The highest minimum-program-version a header of `family` may ask for and still be opened.
/// VeraCrypt headers written by any 1.x release ask for at most 1.x; TrueCrypt ones for 7.1a.
fn max_program_version(family: Family) -> u16 {
    match family {
        Family::VeraCrypt => 0x01FF,
        Family::TrueCrypt => 0x071A,
    }
}

/// CRC-32 (reflected, polynomial 0xEDB88320).
pub fn crc32(data: &[u8]) -> u32 {
    crc32fast::hash(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> Header {
        let mut key = [0u8; KEY_AREA_LEN];
        for (i, k) in key.iter_mut().enumerate().take(64) {
            *k = i as u8 + 1;
        }
        Header {
            family: Family::VeraCrypt,
            version: 5,
            min_program_version: VERACRYPT_MIN_PROGRAM_VERSION,
            legacy_times: [0; 16],
            hidden_volume_size: 0,
            volume_size: 786_432,
            encrypted_area_start: 131_072,
            encrypted_area_length: 786_432,
            flags: 0,
            sector_size: 512,
            key_area: SecretBytes::from_slice(&key),
        }
    }

    fn bytes(h: &Header) -> [u8; HEADER_SIZE] {
        let s = h.serialize(&[7u8; SALT_LEN]);
        let mut a = [0u8; HEADER_SIZE];
        a.copy_from_slice(s.expose());
        a
    }

    #[test]
    fn round_trip() {
        for h in [
            sample(),
            Header {
                family: Family::TrueCrypt,
                min_program_version: 0x0700,
                ..sample()
            },
            Header {
                sector_size: 4096,
                hidden_volume_size: 65536,
                ..sample()
            },
            Header {
                version: 4,
                legacy_times: [9; 16],
                ..sample()
            },
        ] {
            let b = bytes(&h);
            assert_eq!(&b[..SALT_LEN], &[7u8; SALT_LEN]);
            assert_eq!(Header::parse(&b), Ok(h.clone()));
            // Serializing the parsed header gives the same bytes.
            assert_eq!(bytes(&Header::parse(&b).expect("valid")), b);
        }
    }

    #[test]
    fn each_check_fires() {
        let good = bytes(&sample());
        let mut b = good;
        b[64] = b'X';
        assert_eq!(Header::parse(&b), Err(HeaderError::BadMagic));
        let mut b = good;
        b[69] = 6;
        assert_eq!(Header::parse(&b), Err(HeaderError::UnsupportedVersion(6)));
        let mut b = good;
        b[100] ^= 1;
        assert_eq!(Header::parse(&b), Err(HeaderError::HeaderCrc));
        let mut b = good;
        b[300] ^= 1;
        assert_eq!(Header::parse(&b), Err(HeaderError::KeyAreaCrc));
        let h = Header {
            sector_size: 1000,
            ..sample()
        };
        assert_eq!(
            Header::parse(&bytes(&h)),
            Err(HeaderError::SectorSize(1000))
        );
        let h = Header {
            min_program_version: 0x0200,
            ..sample()
        };
        assert_eq!(
            Header::parse(&bytes(&h)),
            Err(HeaderError::ProgramVersion(0x0200))
        );
    }

    #[test]
    fn old_versions_skip_header_crc_and_sector_size() {
        let mut b = bytes(&Header {
            version: 3,
            ..sample()
        });
        // Version 3 has no header CRC: a wrong value there does not matter.
        b[252] ^= 0xFF;
        b[128] = 0xFF;
        let h = Header::parse(&b).expect("version 3 header");
        assert_eq!(h.sector_size, 512);
    }
}
