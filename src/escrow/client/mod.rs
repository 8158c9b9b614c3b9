//! The escrow client: the packet format and authority keys ([`packet`]), the client's XML
//! configuration ([`config`]), which users their servers require escrow of ([`required`]),
//! the HTTPS client of the escrow server ([`http`]), and the two workflows: [`deposit`]
//! (after a password opened a volume) and the help desk's [`restore`] with its proof that a
//! packet belongs to its target. The prompts and messages are the binary's
//! (`src/cli/escrow.rs`).

pub mod config;
pub mod deposit;
pub mod http;
pub mod packet;
pub mod required;
pub mod restore;
pub mod shares;

use crate::header::layout::{HostKind, SALT_LEN, Slot};
use crate::volume::{Host, VolumeError};

/// The salts `host` holds that can be read without a password: the first 64 bytes of each
/// header slot (on a volume: primary, hidden, and both embedded backups; on a backup file:
/// its two headers). Duplicates are dropped.
///
/// # Errors
/// An I/O error.
pub fn readable_salts(host: &Host) -> Result<Vec<[u8; SALT_LEN]>, VolumeError> {
    let slots: &[Slot] = match host.kind() {
        HostKind::Volume => &[
            Slot::Normal,
            Slot::Hidden,
            Slot::BackupNormal,
            Slot::BackupHidden,
            Slot::LegacyHidden,
        ],
        HostKind::BackupFile | HostKind::LegacyBackupFile => &[Slot::Normal, Slot::Hidden],
    };
    let mut out: Vec<[u8; SALT_LEN]> = Vec::new();
    for c in host.candidates(slots)? {
        let mut s = [0u8; SALT_LEN];
        s.copy_from_slice(&c.bytes[..SALT_LEN]);
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}
