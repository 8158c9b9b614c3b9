//! The help-desk restore (`tcvault -R ADMIN TARGET`): find the entries whose recorded salts
//! the target still shows ([`matching_entries`]), [`fetch`] one and open its packet with the
//! authority's private key, [`prove`] that it belongs to the target, [`write()`] the escrowed
//! header under a new password (checked by reading it back), and record the salts it wrote on
//! the entry so that the next restore finds it; or, with [`write_as_escrowed`], put the header
//! back byte for byte as it was escrowed (packet version 3), so that the password of that time
//! opens it again. The prompts, the choice among entries and the `--force` confirmation are the
//! command line's.
//!
//! Self-service recovery (`tcvault recover`) is the same workflow for the user who deposited
//! an entry with a recovery passphrase: [`own_recoverable_entries`] and [`fetch_own`] (their own
//! entry's recovery packet, opened with the passphrase) take the place of the admin's search
//! and fetch; the proof and the writing are the same.
//!
//! Before a header rebuilt from an escrow packet is written, [`prove`] must show that the
//! packet belongs to the target. The salts the escrow server reports for an entry are only a
//! search hint: salts are readable from any volume without its password, so anyone can post
//! another volume's salts with their own packet.
//!
//! Two proofs count:
//!
//! - [`Proof::HeaderCopy`]: one of the target's header copies (in the slot of the packet's
//!   header role) decrypts under the derived header key the packet carries (packet version 2)
//!   to exactly the packet's header (magic, checksums, fields and master keys). Only a target
//!   that still holds the deposited header, or a header backup file made from it, has one.
//! - [`Proof::Data`]: on a volume (not a backup file), the data area the packet's header
//!   describes, placed as the volume's layout demands and fitting its size, decrypts under
//!   the packet's master keys to a recognised filesystem or partition table. A signature is
//!   only a few bytes (ext4's is two): someone who can read the target could try random keys
//!   until its data "decrypt" to one, and escrow a volume made with those keys. So the
//!   decrypted start must also hold an all-zero 16-byte block, as every real filesystem's
//!   first sectors do (boot blocks, padding); under a wrong key each block is random, and
//!   hitting a zero one takes about 2^128 tries.

use std::fmt;
use std::path::{Path, PathBuf};

use rsa::PrivateKey as RsaPrivateKey;

use super::http::{ClientError, EscrowClient, Login};
use super::packet::{Opened, Packet, PacketError};
use super::readable_salts;
use crate::crypto::kdf::Prf;
use crate::crypto::scheme::{Scheme, SectorCipher};
use crate::escrow::wire::{Entry, SearchParams};
use crate::header::format::Header;
use crate::header::layout::{HEADER_SIZE, HeaderRole, HostKind, SALT_LEN, Slot};
use crate::header::seal::Protection;
use crate::header::unlock::Credentials;
use crate::secret::{SecretArray, SecretBytes};
use crate::volume::write::{self, WriteError, fitting_area};
use crate::volume::{Host, SlotChoice, Volume, VolumeError, probe};

/// What ties a packet to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The header copy in this slot decrypts under the packet's header key to the packet's
    /// header.
    HeaderCopy(Slot),
    /// The volume's data decrypt under the packet's keys to this filesystem or partition table.
    Data(&'static str),
}

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Proof::HeaderCopy(s) => write!(
                f,
                "the target's {} header copy decrypts under the packet's header key to the \
                 escrowed header",
                s.id()
            ),
            Proof::Data(fs) => write!(
                f,
                "with the packet's keys the volume's data show a {fs} filesystem"
            ),
        }
    }
}

/// Why nothing ties the packet to the target.
#[derive(Debug, thiserror::Error)]
pub enum NoProof {
    /// The packet's data area does not fit the volume: it is certainly another volume's.
    #[error(
        "the packet describes a data area of {len} bytes at byte {start}, which does not fit \
         this {size}-byte volume"
    )]
    DoesNotFit {
        /// Data area start recorded in the packet's header.
        start: u64,
        /// Its length.
        len: u64,
        /// The volume's size.
        size: u64,
    },
    /// Neither proof holds.
    #[error("{0}")]
    Nothing(String),
    /// The target could not be read.
    #[error(transparent)]
    Unreadable(#[from] VolumeError),
}

/// The slots of `kind` where a header of the packet's role (hidden or normal) lives.
fn role_slots(kind: HostKind, hidden: bool) -> &'static [Slot] {
    match (kind, hidden) {
        (HostKind::Volume, false) => &[Slot::Normal, Slot::BackupNormal],
        (HostKind::Volume, true) => &[Slot::Hidden, Slot::BackupHidden, Slot::LegacyHidden],
        (_, false) => &[Slot::Normal],
        (_, true) => &[Slot::Hidden],
    }
}

/// The first header copy of `host` in the packet header's role that decrypts under
/// `header_key` with `scheme` to exactly `header`.
fn header_copy(
    host: &Host,
    header: &Header,
    scheme: Scheme,
    header_key: &SecretBytes,
) -> Result<Option<Slot>, VolumeError> {
    let Ok(cipher) = SectorCipher::new(scheme, header_key.expose()) else {
        return Ok(None);
    };
    let slots = role_slots(host.kind(), header.is_hidden());
    let candidates = match host.candidates(slots) {
        Ok(c) => c,
        Err(VolumeError::NoSuchSlot { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    for c in candidates {
        let mut plain = SecretArray::<HEADER_SIZE>::zeroed();
        *plain.expose_mut() = c.bytes;
        cipher.decrypt_header(&mut plain.expose_mut()[SALT_LEN..]);
        if Header::parse(plain.expose()).is_ok_and(|h| h == *header) {
            return Ok(Some(c.slot));
        }
    }
    Ok(None)
}

/// Whether `head` holds a 16-byte-aligned block of zeros.
fn has_zero_block(head: &[u8]) -> bool {
    head.chunks_exact(16).any(|b| b.iter().all(|&x| x == 0))
}

/// Proves that the escrowed `header` (with `scheme`, and the packet's derived `header_key`
/// when it carries one) belongs to `host`, or says why nothing does. Salts are never proof.
///
/// # Errors
/// [`NoProof`]: the area does not fit, no proof holds, or the target cannot be read.
pub fn prove(
    host: &Host,
    header: &Header,
    scheme: Scheme,
    header_key: Option<&SecretBytes>,
) -> Result<Proof, NoProof> {
    let volume = host.kind() == HostKind::Volume;
    let area = if volume {
        let size = host.size();
        Some(
            fitting_area(header, scheme, size).ok_or(NoProof::DoesNotFit {
                start: header.encrypted_area_start,
                len: header.encrypted_area_length,
                size,
            })?,
        )
    } else {
        None
    };
    if let Some(k) = header_key
        && let Some(slot) = header_copy(host, header, scheme, k)?
    {
        return Ok(Proof::HeaderCopy(slot));
    }
    let no_copy = match header_key {
        Some(_) => "none of its header copies decrypts under the packet's header key",
        None => "the packet (version 1) carries no header key to check its header copies with",
    };
    let Some(area) = area else {
        return Err(NoProof::Nothing(format!(
            "{no_copy}, and a header backup file holds no data to check the keys against"
        )));
    };
    let cipher = SectorCipher::new(scheme, header.key_area.expose()).map_err(|_| {
        NoProof::Nothing("the packet's key area does not fit its cipher".to_owned())
    })?;
    let n = probe::PROBE_LEN.min(usize::try_from(area.len).unwrap_or(0));
    let n = n - n % 512;
    let mut head = SecretBytes::zeroed(n);
    host.read_at(area.start, head.expose_mut())?;
    cipher.decrypt(head.expose_mut(), area.first_unit);
    match probe::detect(head.expose()) {
        Some(fs) if has_zero_block(head.expose()) => Ok(Proof::Data(fs)),
        Some(fs) => Err(NoProof::Nothing(format!(
            "{no_copy}, and with the packet's keys its data show a {fs} signature but no zeroed \
             block, which real filesystems have and keys tried at random do not give"
        ))),
        None => Err(NoProof::Nothing(format!(
            "{no_copy}, and with the packet's keys its data show no filesystem or partition table"
        ))),
    }
}

/// Why a restore stopped.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The escrow server refused or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The packet does not parse or open.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// The entry's packet is not the one the entry describes.
    #[error("escrow entry {number}: its packet does not match the entry's fingerprint")]
    EntryMismatch {
        /// The entry.
        number: i64,
    },
    /// The packet names a cipher this program does not know.
    #[error("escrow entry {number}: unknown cipher {chain}")]
    UnknownChain {
        /// The entry.
        number: i64,
        /// Its cipher name.
        chain: String,
    },
    /// The target could not be read.
    #[error(transparent)]
    Volume(#[from] VolumeError),
    /// The header could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// What was written does not open with the new password to the escrowed header.
    #[error("{0}: does not read back as written")]
    DoesNotReadBack(PathBuf),
    /// The packet cannot rebuild the header as it was escrowed (it predates packet version 3,
    /// which carries the header key and salt).
    #[error(
        "escrow entry {number} was deposited in packet version {version}, which does not keep \
         the header's salt and key: the old header cannot be rebuilt from it"
    )]
    CannotReproduce {
        /// The entry.
        number: i64,
        /// Its packet version.
        version: u16,
    },
}

/// The entries whose recorded salts `target` still shows (a search hint only: see
/// [`prove`]), each once, in the server's order.
///
/// # Errors
/// The server's errors, or the target's.
pub fn matching_entries(
    client: &EscrowClient,
    login: &Login,
    target: &Host,
) -> Result<Vec<Entry>, RestoreError> {
    let mut entries: Vec<Entry> = Vec::new();
    for salt in readable_salts(target)? {
        let q = SearchParams {
            salt: Some(hex::encode(salt)),
            ..SearchParams::default()
        };
        for e in client.search(login, &q)? {
            if !entries.iter().any(|x| x.escrow_number == e.escrow_number) {
                entries.push(e);
            }
        }
    }
    Ok(entries)
}

/// An escrow entry with its packet opened.
pub struct Escrowed {
    /// The entry as the server lists it.
    pub entry: Entry,
    /// The escrowed header.
    pub header: Header,
    /// Its cipher and mode.
    pub scheme: Scheme,
    /// The PRF it was protected with, when the packet names one this program knows.
    pub prf: Option<Prf>,
    /// The derived header key it was sealed with (packet version 2 and later).
    header_key: Option<SecretBytes>,
    /// The salt it was stored with (packet version 3 and later).
    salt: Option<[u8; SALT_LEN]>,
    /// The packet version.
    pub packet_version: u16,
}

impl fmt::Debug for Escrowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Escrowed")
            .field("entry", &self.entry.escrow_number)
            .field("scheme", &self.scheme)
            .field("header_key", &self.header_key.is_some())
            .finish_non_exhaustive()
    }
}

impl Escrowed {
    /// [`prove`] for this entry and `target`.
    ///
    /// # Errors
    /// See [`NoProof`].
    pub fn prove(&self, target: &Host) -> Result<Proof, NoProof> {
        prove(target, &self.header, self.scheme, self.header_key.as_ref())
    }
}

/// Fetches entry `number` (the server audits it) and opens its packet with `key`.
///
/// # Errors
/// See [`RestoreError`].
pub fn fetch(
    client: &EscrowClient,
    login: &Login,
    number: i64,
    key: &RsaPrivateKey,
) -> Result<Escrowed, RestoreError> {
    let (entry, bytes) = client.fetch(login, number)?;
    escrowed(entry, &bytes, |p| p.open_all(key))
}

/// Self-service recovery: fetches the recovery packet of the caller's own entry `number`
/// (the server audits it) and opens it with the recovery `passphrase`.
///
/// # Errors
/// See [`RestoreError`]; [`PacketError::WrongRecoveryPassphrase`] in
/// [`RestoreError::Packet`] for a wrong passphrase.
pub fn fetch_own(
    client: &EscrowClient,
    login: &Login,
    number: i64,
    passphrase: &[u8],
) -> Result<Escrowed, RestoreError> {
    let (entry, bytes) = client.fetch_recovery(login, number)?;
    escrowed(entry, &bytes, |p| p.open_with_recovery(passphrase))
}

/// The user's own entries with a recovery passphrase whose recorded salts `target` still
/// shows (a search hint only: see [`prove`]), and all of their entries with one.
///
/// # Errors
/// The server's errors, or the target's.
pub fn own_recoverable_entries(
    client: &EscrowClient,
    login: &Login,
    target: &Host,
) -> Result<(Vec<Entry>, Vec<Entry>), RestoreError> {
    let salts: Vec<String> = readable_salts(target)?.iter().map(hex::encode).collect();
    let all: Vec<Entry> = client
        .own_entries(login)?
        .into_iter()
        .filter(|e| e.recovery)
        .collect();
    let matching = all
        .iter()
        .filter(|e| e.salts.iter().any(|s| salts.contains(s)))
        .cloned()
        .collect();
    Ok((matching, all))
}

/// The packet `bytes` of `entry`, checked against it and opened with `open`.
fn escrowed(
    entry: Entry,
    bytes: &[u8],
    open: impl FnOnce(&Packet) -> Result<Opened, PacketError>,
) -> Result<Escrowed, RestoreError> {
    let number = entry.escrow_number;
    let packet = Packet::parse(bytes)?;
    if packet.metadata.volume_fingerprint != entry.volume_fingerprint {
        return Err(RestoreError::EntryMismatch { number });
    }
    let opened = open(&packet)?;
    let scheme =
        Scheme::from_id(&packet.metadata.chain).ok_or_else(|| RestoreError::UnknownChain {
            number,
            chain: packet.metadata.chain.clone(),
        })?;
    Ok(Escrowed {
        entry,
        header: opened.header,
        scheme,
        prf: Prf::from_name(&packet.metadata.prf),
        header_key: opened.header_key,
        salt: opened.salt,
        packet_version: packet.version(),
    })
}

/// What [`write()`] wrote.
#[derive(Debug)]
pub struct Restored {
    /// The file or device written: the target, or the output file of a backup.
    pub path: PathBuf,
    /// The salts (hex) of the header copies written, for the entry's record.
    pub new_salts: Vec<String>,
}

/// Writes the escrowed header to `target` under `creds` with `prot`: on a volume to its
/// header slots (embedded backup first, then the primary); on a header backup file to its
/// slot, the result going to `output` (default: the file itself). The previous headers go to
/// `keep` first when given. The result must open with `creds` to the escrowed header.
///
/// Call it only after [`Escrowed::prove`] (or an explicit, confirmed override).
///
/// # Errors
/// See [`RestoreError`].
pub fn write(
    target: &Path,
    e: &Escrowed,
    prot: Protection,
    creds: &Credentials,
    keep: Option<&Path>,
    output: Option<&Path>,
) -> Result<Restored, RestoreError> {
    let host = Host::open_writable(target)?;
    let before = readable_salts(&host)?;
    let path = if host.kind() == HostKind::Volume {
        // The packet has no slot: the escrowed header's own claim is its role.
        write::rewrite_header(
            &host,
            &e.header,
            HeaderRole::claimed_by(&e.header),
            prot,
            creds,
            keep,
        )?;
        target.to_path_buf()
    } else {
        let out = output.unwrap_or(target);
        write::rewrite_backup_slot(&host, &e.header, prot, creds, keep, out)?;
        out.to_path_buf()
    };
    drop(host);
    let slots = SlotChoice {
        hidden: e.header.is_hidden(),
        ..SlotChoice::default()
    };
    let back = Volume::open(&path, creds, slots, &prot.only())?;
    if back.unlocked().header != e.header {
        return Err(RestoreError::DoesNotReadBack(path));
    }
    let new_salts = readable_salts(back.host())?
        .iter()
        .filter(|s| !before.contains(s))
        .map(hex::encode)
        .collect();
    Ok(Restored { path, new_salts })
}

/// Writes the escrowed header back exactly as it was escrowed (its old salt, under its old
/// derived key), so that the password, keyfiles and PIM of that time open it again; no new
/// password is involved. On a volume to its header slots (embedded backup first); on a header
/// backup file to its slot, the result going to `output` (default: the file itself). The
/// previous headers go to `keep` first when given. The result is read back: the header copy
/// written must decrypt under the escrowed key to the escrowed header.
///
/// Call it only after [`Escrowed::prove`] (or an explicit, confirmed override).
///
/// # Errors
/// [`RestoreError::CannotReproduce`] for a packet before version 3 (nothing is written), and
/// see [`RestoreError`].
pub fn write_as_escrowed(
    target: &Path,
    e: &Escrowed,
    keep: Option<&Path>,
    output: Option<&Path>,
) -> Result<Restored, RestoreError> {
    let (Some(key), Some(salt)) = (e.header_key.as_ref(), e.salt.as_ref()) else {
        return Err(RestoreError::CannotReproduce {
            number: e.entry.escrow_number,
            version: e.packet_version,
        });
    };
    let host = Host::open_writable(target)?;
    let role = HeaderRole::claimed_by(&e.header);
    let path = if host.kind() == HostKind::Volume {
        write::rewrite_header_as_before(&host, &e.header, role, e.scheme, salt, key, keep)?;
        target.to_path_buf()
    } else {
        let out = output.unwrap_or(target);
        write::rewrite_backup_slot_as_before(&host, &e.header, e.scheme, salt, key, keep, out)?;
        out.to_path_buf()
    };
    drop(host);
    let back = Host::open(&path)?;
    match prove(&back, &e.header, e.scheme, Some(key)) {
        Ok(Proof::HeaderCopy(_)) => Ok(Restored {
            path,
            new_salts: Vec::new(),
        }),
        _ => Err(RestoreError::DoesNotReadBack(path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::chain::ChainId;
    use crate::crypto::kdf::Prf;
    use crate::header::kdf::Family;
    use crate::header::seal::{self, Protection};
    use crate::header::unlock::{Candidate, Credentials, UnlockOptions, UnlockedHeader, unlock};
    use crate::secret::Password;

    const SIZE: u64 = 1 << 20;
    const START: u64 = 131_072;

    /// A sealed normal header for a 1 MiB volume and what its password opens.
    fn header(password: &[u8]) -> ([u8; HEADER_SIZE], UnlockedHeader) {
        let prot =
            Protection::new(Family::VeraCrypt, Prf::Sha256, 1, ChainId::Aes).expect("protection");
        let h = seal::new_header(prot, START, SIZE - 2 * START, false, 512).expect("header");
        let pw = Password::new(password).expect("password");
        let creds = Credentials::new(&pw, &[], 1).expect("credentials");
        let bytes = seal::seal(&h, prot, &creds).expect("seal");
        let cand = Candidate {
            slot: Slot::Normal,
            bytes,
        };
        let u = unlock(&[cand], &creds, &UnlockOptions::default()).expect("unlock");
        (bytes, u)
    }

    fn escrowed(u: &UnlockedHeader, salt: Option<[u8; SALT_LEN]>, version: u16) -> Escrowed {
        Escrowed {
            entry: Entry {
                escrow_number: 7,
                created: "2026-12-02T00:00:00Z".into(),
                created_unix: 0,
                user: "alice".into(),
                volume_fingerprint: String::new(),
                salts: Vec::new(),
                authority_fingerprint: String::new(),
                metadata: serde_json::Value::Null,
                origin: "local".into(),
                recovery: false,
            },
            header: u.header.clone(),
            scheme: u.scheme,
            prf: Some(u.kdf.prf()),
            header_key: Some(SecretBytes::from_slice(u.header_key().expose())),
            salt,
            packet_version: version,
        }
    }

    /// The header goes back byte for byte: the old password opens the primary and the
    /// embedded backup slot again. A packet without the salt (version 2) is refused and
    /// nothing is written.
    #[test]
    fn as_escrowed_rebuilds_the_old_header_or_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.hc");
        let (bytes, u) = header(b"the old one");
        std::fs::write(&path, vec![0u8; SIZE as usize]).expect("write volume");

        let before = std::fs::read(&path).expect("read");
        let err = write_as_escrowed(&path, &escrowed(&u, None, 2), None, None)
            .expect_err("a version 2 packet cannot rebuild the header");
        assert!(matches!(
            err,
            RestoreError::CannotReproduce {
                number: 7,
                version: 2
            }
        ));
        assert_eq!(std::fs::read(&path).expect("read"), before, "written");

        let done = write_as_escrowed(&path, &escrowed(&u, Some(u.salt), 3), None, None)
            .expect("restore as escrowed");
        assert_eq!(done.path, path);
        let vol = std::fs::read(&path).expect("read");
        assert_eq!(
            &vol[..HEADER_SIZE],
            &bytes[..],
            "the primary slot is the old header"
        );
        let pw = Password::new(b"the old one").expect("password");
        let creds = Credentials::new(&pw, &[], 1).expect("credentials");
        for backup in [false, true] {
            let slots = SlotChoice {
                backup,
                ..SlotChoice::default()
            };
            let v = Volume::open(&path, &creds, slots, &UnlockOptions::default())
                .expect("the old password opens");
            assert_eq!(v.unlocked().header, u.header);
        }
    }

    #[test]
    fn header_copy_data_and_neither() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("v.hc");
        let (bytes, u) = header(b"prove a");
        let (_, other) = header(b"prove b");
        let mut vol = vec![0u8; SIZE as usize];
        vol[..HEADER_SIZE].copy_from_slice(&bytes);
        std::fs::write(&path, &vol).expect("write volume");
        let host = Host::open(&path).expect("host");

        // The packet's header key decrypts the volume's own header copy to the packet's header.
        assert_eq!(
            prove(&host, &u.header, u.scheme, Some(u.header_key())).expect("proof"),
            Proof::HeaderCopy(Slot::Normal)
        );
        // Another volume's packet (its own header and header key) finds no copy, and its keys
        // show nothing in this volume's data; nor does a packet without a header key.
        assert!(matches!(
            prove(&host, &other.header, other.scheme, Some(other.header_key())),
            Err(NoProof::Nothing(_))
        ));
        assert!(matches!(
            prove(&host, &u.header, u.scheme, None),
            Err(NoProof::Nothing(_))
        ));
        // A header key alone does not do it: it must decrypt the copy to the same header.
        assert!(matches!(
            prove(&host, &other.header, other.scheme, Some(u.header_key())),
            Err(NoProof::Nothing(_))
        ));

        // An ext4 superblock magic under the volume's keys: the data proof.
        let mut head = vec![0u8; 4096];
        head[0x438] = 0x53;
        head[0x439] = 0xEF;
        let area = fitting_area(&u.header, u.scheme, SIZE).expect("fits");
        u.data_cipher().encrypt(&mut head, area.first_unit);
        vol[area.start as usize..area.start as usize + head.len()].copy_from_slice(&head);
        std::fs::write(&path, &vol).expect("write data");
        let host = Host::open(&path).expect("host");
        assert_eq!(
            prove(&host, &u.header, u.scheme, None).expect("proof"),
            Proof::Data("ext2/3/4")
        );
        assert!(matches!(
            prove(&host, &other.header, other.scheme, Some(other.header_key())),
            Err(NoProof::Nothing(_))
        ));

        // The signature alone, every other byte non-zero (as keys tried at random would give):
        // not proof.
        let mut noisy = vec![0x5Au8; 4096];
        noisy[0x438] = 0x53;
        noisy[0x439] = 0xEF;
        u.data_cipher().encrypt(&mut noisy, area.first_unit);
        let mut v2 = vol.clone();
        v2[area.start as usize..area.start as usize + noisy.len()].copy_from_slice(&noisy);
        let rest = area.start as usize + noisy.len();
        let mut tail = vec![0x5Au8; probe::PROBE_LEN];
        u.data_cipher().encrypt(&mut tail, area.first_unit + 8);
        v2[rest..rest + tail.len()].copy_from_slice(&tail);
        std::fs::write(&path, &v2).expect("write noisy");
        let host = Host::open(&path).expect("host");
        assert!(matches!(
            prove(&host, &u.header, u.scheme, None),
            Err(NoProof::Nothing(m)) if m.contains("no zeroed block")
        ));

        // A 1 MiB packet header on a 2 MiB volume: does not fit.
        let mut big = vol.clone();
        big.resize(2 * SIZE as usize, 0);
        std::fs::write(&path, &big).expect("write big");
        let host = Host::open(&path).expect("host");
        assert!(matches!(
            prove(&host, &u.header, u.scheme, Some(u.header_key())),
            Err(NoProof::DoesNotFit { .. })
        ));
    }
}
