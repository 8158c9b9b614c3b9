//! The escrow packet (version 3; versions 1 and 2 are still read) and the escrow authority's
//! RSA keys.
//!
//! A packet carries what is needed to rebuild a volume header under a new password: the
//! decrypted 512-byte header (all fields and the 256-byte master key area; its salt bytes are
//! zero), readable only by the holder of the escrow authority's RSA private key. Version 2
//! adds the derived header key the deposited header was encrypted with: the restore uses it to
//! prove that the packet belongs to the target (one of the target's header copies decrypts
//! under it to the very same header), since the salts the server reports are a search hint
//! that anyone may post. A version-1 packet has no header key; only its keys decrypting the
//! target's data to a recognised filesystem can tie it to a volume. Version 3 adds the salt
//! the deposited header was stored with: with the header key, it rebuilds that header byte for
//! byte, so that a restore can put it back and the password of the time opens it again
//! (`tcvault -R … --old-password`).
//!
//! ```text
//! offset  size  field
//! 0       8     magic "TCVESCPK"
//! 8       2     packet version, big-endian (1, 2 or 3; 3 is written)
//! 10      4     n = length of the metadata, big-endian (at most 16 KiB)
//! 14      n     metadata: UTF-8 JSON object (see `Metadata`), in the clear
//! 14+n    2     r = number of recipients, big-endian (1..=16)
//!               r times: 32 bytes recipient fingerprint (SHA-256 of the DER
//!               SubjectPublicKeyInfo), 2 bytes length w, w bytes RSA-OAEP-SHA-256 (label
//!               empty) encryption of the 32-byte content key
//! ...     12    AES-256-GCM nonce
//! ...     rest  AES-256-GCM ciphertext and 16-byte tag of the payload:
//!               version 1: the 512-byte header (528 bytes with the tag);
//!               version 2: the 512-byte header, then the 192-byte derived header key
//!               (`DERIVED_KEY_LEN`; bytes past the chain's key material are zero), 720
//!               bytes with the tag;
//!               version 3: as version 2, then the header's 64-byte salt (784 with the tag)
//! ```
//!
//! The associated data of AES-256-GCM is every byte before the nonce: magic, version,
//! metadata and recipient list cannot be changed without the packet failing to open. The
//! content key is random per packet and zeroized after use; only [`Packet::open`] (used by
//! the restore client) and [`Packet::open_with_recovery`] (self-service recovery) decrypt.
//!
//! **Recovery recipient.** A packet may carry, besides the authority keys, one recipient that
//! is the depositing user's recovery passphrase: its fingerprint is [`RECOVERY_RECIPIENT`]
//! (32 ASCII bytes, never a SHA-256 of a key in practice) and its wrapped key is a
//! passphrase-sealed envelope ([`crate::escrow::sealed`], format [`RECOVERY_FORMAT`],
//! Argon2id at [`Cost::strong`]) of the content key, as JSON. Readers that know only RSA
//! recipients skip it, so it needs no new packet version.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Nonce, Payload};
use getrandom::SysRng;
use pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding};
pub use rsa::PrivateKey as RsaPrivateKey;
use rsa::PublicKey as RsaPublicKey;
use rsa::traits::PublicKeyParts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::escrow::sealed::{self, Cost, SealError};
use crate::header::format::Header;
use crate::header::layout::{HEADER_SIZE, SALT_LEN};
use crate::header::unlock::{DERIVED_KEY_LEN, UnlockedHeader};
use crate::secret::{SecretArray, SecretBytes, SecretText};

/// First bytes of every packet.
pub const MAGIC: &[u8; 8] = b"TCVESCPK";
/// The packet version written today.
pub const PACKET_VERSION: u16 = 3;
/// The oldest packet version still read (no header key).
pub const OLDEST_PACKET_VERSION: u16 = 1;
/// Smallest authority key `keygen` makes and the client accepts.
pub const MIN_KEY_BITS: usize = 3072;
/// Largest metadata accepted.
pub const MAX_METADATA: usize = 16 * 1024;
/// Most recipients in one packet.
pub const MAX_RECIPIENTS: usize = 16;
/// Largest public key read. The rsa crate decodes moduli of up to 8192 bits; authority keys
/// stay at 4096 bits at most, the limit tcvault has always read.
pub const MAX_PUBLIC_KEY_BITS: usize = 4096;
/// The fingerprint that marks the recovery passphrase's recipient.
pub const RECOVERY_RECIPIENT: &[u8; 32] = b"tcvault recovery passphrase v1\0\0";
/// The envelope format of the recovery recipient's wrapped key.
pub const RECOVERY_FORMAT: &str = "tcvault-escrow-recovery";
/// Shortest recovery passphrase accepted, in characters: the packet it opens is kept by the
/// server, where whoever reads the database can guess at it offline.
pub const MIN_RECOVERY_PASSPHRASE: usize = 12;
const NONCE_LEN: usize = 12;
const CONTENT_KEY_LEN: usize = 32;
/// scrypt cost of the encrypted private key: N = 2^17, r = 8, p = 1 (128 MiB), with a 16-byte
/// salt and AES-256-CBC under a 16-byte IV, as every authority key has been written.
const PEM_SCRYPT_LOG_N: u8 = 17;
const PEM_SCRYPT_R: u32 = 8;
const PEM_SCRYPT_P: u32 = 1;
const PEM_SALT_LEN: usize = 16;

/// Why a packet or key could not be made, read or opened.
#[derive(Debug, thiserror::Error)]
pub enum PacketError {
    /// Not a packet, a truncated one, or one of a newer version.
    #[error("not a valid escrow packet: {0}")]
    Malformed(String),
    /// None of the recipients is the key given.
    #[error(
        "the packet is not encrypted to this private key (its fingerprint {have} is not among \
         the packet's recipients {recipients:?})"
    )]
    NotForThisKey {
        /// The key's fingerprint.
        have: String,
        /// The packet's recipient fingerprints.
        recipients: Vec<String>,
    },
    /// RSA-OAEP unwrapping or AES-GCM authentication failed.
    #[error("the packet does not decrypt: it is damaged or was altered")]
    Decrypt,
    /// A key file is not what it should be.
    #[error("{0}")]
    Key(String),
    /// The key is smaller than [`MIN_KEY_BITS`].
    #[error("the authority key has {0} bits; at least {MIN_KEY_BITS} are required")]
    KeyTooSmall(usize),
    /// No random bytes or RSA failure while sealing.
    #[error("cannot seal the packet: {0}")]
    Encrypt(String),
    /// The packet has no recovery passphrase recipient.
    #[error("the packet was deposited without a recovery passphrase")]
    NoRecovery,
    /// The recovery passphrase does not open the packet's recovery recipient.
    #[error("wrong recovery passphrase (or the escrow entry was changed)")]
    WrongRecoveryPassphrase,
    /// A recovery passphrase shorter than [`MIN_RECOVERY_PASSPHRASE`] characters.
    #[error(
        "the recovery passphrase has {0} characters; at least {MIN_RECOVERY_PASSPHRASE} are \
         required"
    )]
    RecoveryTooShort(usize),
}

/// A recovery passphrase and the cost of its key derivation.
#[derive(Clone, Copy)]
pub struct Recovery<'a> {
    /// The passphrase (at least [`MIN_RECOVERY_PASSPHRASE`] characters).
    pub passphrase: &'a [u8],
    /// Argon2id cost ([`Cost::strong`] for every real deposit).
    pub cost: Cost,
}

impl fmt::Debug for Recovery<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recovery")
            .field("cost", &self.cost)
            .finish_non_exhaustive()
    }
}

impl<'a> Recovery<'a> {
    /// `passphrase` at [`Cost::strong`], checked for length.
    ///
    /// # Errors
    /// [`PacketError::RecoveryTooShort`].
    pub fn new(passphrase: &'a [u8]) -> Result<Recovery<'a>, PacketError> {
        let chars = String::from_utf8_lossy(passphrase).chars().count();
        if chars < MIN_RECOVERY_PASSPHRASE {
            return Err(PacketError::RecoveryTooShort(chars));
        }
        Ok(Recovery {
            passphrase,
            cost: Cost::strong(),
        })
    }
}

/// The packet's clear metadata (bound to the ciphertext as associated data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Equal to the packet version.
    pub packet_version: u16,
    /// "veracrypt" or "truecrypt".
    pub format: String,
    /// Whether the header is a hidden volume's.
    pub hidden: bool,
    /// Cipher chain, e.g. "AES" or "Serpent-AES" (XTS); a legacy TrueCrypt volume's chain
    /// with its mode, e.g. "AES-Blowfish/CBC" ([`crate::crypto::scheme::Scheme::id`]).
    pub chain: String,
    /// PRF of the header when escrowed (e.g. "sha512").
    pub prf: String,
    /// Sector size.
    pub sector_size: u32,
    /// Volume data size in bytes.
    pub volume_size: u64,
    /// Absolute byte offset of the data area.
    pub data_start: u64,
    /// Length of the data area.
    pub data_len: u64,
    /// Fingerprint of the volume (see [`volume_fingerprint`]).
    pub volume_fingerprint: String,
    /// Fingerprints of the recipients' keys, hex.
    pub authority_fingerprints: Vec<String>,
    /// When it was sealed (Unix seconds).
    pub created_unix: u64,
    /// The network user who escrowed it.
    pub user: String,
}

/// A parsed, still sealed packet.
pub struct Packet {
    /// The clear metadata.
    pub metadata: Metadata,
    /// The recipients: fingerprint and wrapped content key.
    recipients: Vec<([u8; 32], Vec<u8>)>,
    aad_len: usize,
    version: u16,
    bytes: Vec<u8>,
}

/// What an opened packet holds.
pub struct Opened {
    /// The header, checked against the clear metadata.
    pub header: Header,
    /// The derived key the deposited header was encrypted with (version 2 and later).
    pub header_key: Option<SecretBytes>,
    /// The salt the deposited header was stored with (version 3 and later).
    pub salt: Option<[u8; SALT_LEN]>,
}

impl fmt::Debug for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opened")
            .field("header_key", &self.header_key.is_some())
            .finish_non_exhaustive()
    }
}

fn payload_len(version: u16) -> usize {
    match version {
        1 => HEADER_SIZE,
        2 => HEADER_SIZE + DERIVED_KEY_LEN,
        _ => HEADER_SIZE + DERIVED_KEY_LEN + SALT_LEN,
    }
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// A stable fingerprint of a volume's master keys that reveals nothing about them: SHA-256
/// over a domain label, the chain name and the key material, in hex. Equal for every header
/// of the same volume (password changes keep the keys).
pub fn volume_fingerprint(u: &UnlockedHeader) -> String {
    let k = u.scheme.key_material_len();
    let mut h = Sha256::new();
    h.update(b"tcvault escrow volume fingerprint v1\0");
    h.update(u.scheme.id().as_bytes());
    h.update([0u8]);
    h.update(&u.header.key_area.expose()[..k]);
    hex::encode(h.finalize())
}

/// SHA-256 of the DER SubjectPublicKeyInfo of `key`, as raw bytes.
///
/// # Errors
/// The key cannot be encoded (never expected).
pub fn key_fingerprint(key: &RsaPublicKey) -> Result<[u8; 32], PacketError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| PacketError::Key(format!("cannot encode the public key: {e}")))?;
    Ok(Sha256::digest(der.as_bytes()).into())
}

/// Parses a PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`) of at least [`MIN_KEY_BITS`].
///
/// # Errors
/// [`PacketError::Key`] or [`PacketError::KeyTooSmall`].
pub fn parse_public_key(pem: &str) -> Result<RsaPublicKey, PacketError> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    if pem.contains("PRIVATE KEY") {
        return Err(PacketError::Key(
            "this file holds a private key where a public key belongs".into(),
        ));
    }
    let key = RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|_| PacketError::Key("not a PEM RSA public key".into()))?;
    let bits = key.size() * 8;
    if bits > MAX_PUBLIC_KEY_BITS {
        return Err(PacketError::Key("not a PEM RSA public key".into()));
    }
    if bits < MIN_KEY_BITS {
        return Err(PacketError::KeyTooSmall(bits));
    }
    Ok(key)
}

/// A new authority key pair of `bits` bits (at least [`MIN_KEY_BITS`]).
///
/// # Errors
/// Too small, or RSA key generation failed.
pub fn generate_key(bits: usize) -> Result<RsaPrivateKey, PacketError> {
    if bits < MIN_KEY_BITS {
        return Err(PacketError::KeyTooSmall(bits));
    }
    RsaPrivateKey::new(&mut SysRng, bits).map_err(|e| PacketError::Key(e.to_string()))
}

/// The private key as encrypted PKCS#8 PEM (PBES2: scrypt and AES-256-CBC) under `passphrase`.
///
/// # Errors
/// Encoding failed.
pub fn encrypted_private_pem(
    key: &RsaPrivateKey,
    passphrase: &[u8],
) -> Result<SecretText, PacketError> {
    use pkcs8::der::pem::PemLabel;
    use pkcs8::pkcs5::{pbes2, scrypt};
    fn fail(e: impl fmt::Display) -> PacketError {
        PacketError::Key(format!("cannot encrypt the private key: {e}"))
    }
    let mut salt = [0u8; PEM_SALT_LEN];
    let mut iv = [0u8; 16];
    crate::crypto::random::fill(&mut salt).map_err(fail)?;
    crate::crypto::random::fill(&mut iv).map_err(fail)?;
    let cost = scrypt::Params::new(PEM_SCRYPT_LOG_N, PEM_SCRYPT_R, PEM_SCRYPT_P).map_err(fail)?;
    let params = pbes2::Parameters::generate_scrypt_aes256cbc(cost, &salt, iv).map_err(fail)?;
    let der = key.to_pkcs8_der().map_err(fail)?;
    let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_bytes()).map_err(fail)?;
    let mut pem = info
        .encrypt_with_params(params, passphrase)
        .map_err(fail)?
        .to_pem(pkcs8::EncryptedPrivateKeyInfoRef::PEM_LABEL, LineEnding::LF)
        .map_err(fail)?;
    Ok(SecretText::from_string(std::mem::take(&mut *pem)))
}

/// The public key as PEM (`PUBLIC KEY`).
///
/// # Errors
/// Encoding failed.
pub fn public_pem(key: &RsaPublicKey) -> Result<String, PacketError> {
    key.to_public_key_pem(LineEnding::LF)
        .map_err(|e| PacketError::Key(format!("cannot encode the public key: {e}")))
}

/// Reads an encrypted PKCS#8 PEM private key with `passphrase`.
///
/// # Errors
/// [`PacketError::Key`] for a wrong passphrase or a file that is not such a key.
pub fn load_private_key(pem: &str, passphrase: &[u8]) -> Result<RsaPrivateKey, PacketError> {
    if !pem.contains("ENCRYPTED PRIVATE KEY") {
        return Err(PacketError::Key(
            "not an encrypted PKCS#8 private key (\"ENCRYPTED PRIVATE KEY\" PEM)".into(),
        ));
    }
    RsaPrivateKey::from_pkcs8_encrypted_pem(pem, passphrase).map_err(|_| {
        PacketError::Key("wrong passphrase for the private key, or the key file is damaged".into())
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seals the header `u` opened into a packet for `recipients` (and the user's `recovery`
/// passphrase, when given), recording `user`.
///
/// # Errors
/// No recipients, too many, or a failure of the random generator, RSA or key derivation.
pub fn encrypt_to(
    u: &UnlockedHeader,
    user: &str,
    recipients: &[RsaPublicKey],
    recovery: Option<Recovery<'_>>,
) -> Result<(Metadata, Vec<u8>), PacketError> {
    encrypt_as(PACKET_VERSION, u, user, recipients, recovery)
}

/// [`encrypt_to`] in packet format `version` (1: without the header key; tests of old
/// packets).
fn encrypt_as(
    version: u16,
    u: &UnlockedHeader,
    user: &str,
    recipients: &[RsaPublicKey],
    recovery: Option<Recovery<'_>>,
) -> Result<(Metadata, Vec<u8>), PacketError> {
    if recipients.is_empty() || recipients.len() + usize::from(recovery.is_some()) > MAX_RECIPIENTS
    {
        return Err(PacketError::Encrypt(format!(
            "{} recipients (1 to {MAX_RECIPIENTS} allowed)",
            recipients.len()
        )));
    }
    let h = &u.header;
    let fps = recipients
        .iter()
        .map(key_fingerprint)
        .collect::<Result<Vec<_>, _>>()?;
    let metadata = Metadata {
        packet_version: version,
        format: h.family.id().to_owned(),
        hidden: h.is_hidden(),
        chain: u.scheme.id(),
        prf: u.kdf.prf().id().to_owned(),
        sector_size: h.sector_size,
        volume_size: h.volume_size,
        data_start: h.encrypted_area_start,
        data_len: h.encrypted_area_length,
        volume_fingerprint: volume_fingerprint(u),
        authority_fingerprints: fps.iter().map(hex::encode).collect(),
        created_unix: now_unix(),
        user: user.to_owned(),
    };
    let meta = serde_json::to_vec(&metadata).map_err(|e| PacketError::Encrypt(e.to_string()))?;
    let mut key = SecretArray::<CONTENT_KEY_LEN>::zeroed();
    crate::crypto::random::fill(key.expose_mut())
        .map_err(|e| PacketError::Encrypt(e.to_string()))?;
    let mut out = Vec::with_capacity(2048);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&u32::try_from(meta.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(&meta);
    let count = recipients.len() + usize::from(recovery.is_some());
    out.extend_from_slice(&u16::try_from(count).unwrap_or(0).to_be_bytes());
    let mut push = |fp: &[u8; 32], wrapped: &[u8]| -> Result<(), PacketError> {
        let w = u16::try_from(wrapped.len())
            .map_err(|_| PacketError::Encrypt("a wrapped key is too long".into()))?;
        out.extend_from_slice(fp);
        out.extend_from_slice(&w.to_be_bytes());
        out.extend_from_slice(wrapped);
        Ok(())
    };
    for (r, fp) in recipients.iter().zip(&fps) {
        let wrapped = r
            .oaep_encrypt_with_rng::<Sha256, _>(&mut SysRng, key.expose())
            .map_err(|e| PacketError::Encrypt(format!("RSA-OAEP: {e}")))?;
        push(fp, &wrapped)?;
    }
    if let Some(r) = recovery {
        let envelope = sealed::seal(RECOVERY_FORMAT, key.expose(), r.passphrase, r.cost)
            .map_err(|e| PacketError::Encrypt(e.to_string()))?;
        let json =
            serde_json::to_vec(&envelope).map_err(|e| PacketError::Encrypt(e.to_string()))?;
        push(RECOVERY_RECIPIENT, &json)?;
    }
    let aad_len = out.len();
    let mut nonce = [0u8; NONCE_LEN];
    crate::crypto::random::fill(&mut nonce).map_err(|e| PacketError::Encrypt(e.to_string()))?;
    let mut plain = SecretBytes::zeroed(payload_len(version));
    plain.expose_mut()[..HEADER_SIZE].copy_from_slice(h.serialize(&[0u8; SALT_LEN]).expose());
    if version >= 2 {
        let hk = u.header_key().expose();
        let used = hk.len().min(DERIVED_KEY_LEN);
        plain.expose_mut()[HEADER_SIZE..HEADER_SIZE + used].copy_from_slice(&hk[..used]);
    }
    if version >= 3 {
        let at = HEADER_SIZE + DERIVED_KEY_LEN;
        plain.expose_mut()[at..at + SALT_LEN].copy_from_slice(&u.salt);
    }
    let cipher = Aes256Gcm::new_from_slice(key.expose())
        .map_err(|_| PacketError::Encrypt("AES-256-GCM key".into()))?;
    let sealed = cipher
        .encrypt(
            &Nonce::<Aes256Gcm>::from(nonce),
            Payload {
                msg: plain.expose(),
                aad: &out[..aad_len],
            },
        )
        .map_err(|_| PacketError::Encrypt("AES-256-GCM".into()))?;
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Ok((metadata, out))
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], PacketError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| PacketError::Malformed(format!("cut short in the {what}")))?;
        let s = &self.b[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u16(&mut self, what: &str) -> Result<u16, PacketError> {
        let s = self.take(2, what)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }
}

impl Packet {
    /// Parses a packet without decrypting it.
    ///
    /// # Errors
    /// [`PacketError::Malformed`].
    pub fn parse(bytes: &[u8]) -> Result<Packet, PacketError> {
        let mut r = Reader { b: bytes, at: 0 };
        if r.take(8, "magic")? != MAGIC {
            return Err(PacketError::Malformed("no packet magic".into()));
        }
        let version = r.u16("version")?;
        if !(OLDEST_PACKET_VERSION..=PACKET_VERSION).contains(&version) {
            return Err(PacketError::Malformed(format!(
                "packet version {version} (this tcvault reads versions \
                 {OLDEST_PACKET_VERSION} to {PACKET_VERSION})"
            )));
        }
        let n = r.take(4, "metadata length")?;
        let n = u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize;
        if n > MAX_METADATA {
            return Err(PacketError::Malformed("metadata too large".into()));
        }
        let metadata: Metadata = serde_json::from_slice(r.take(n, "metadata")?)
            .map_err(|e| PacketError::Malformed(format!("metadata: {e}")))?;
        if metadata.packet_version != version {
            return Err(PacketError::Malformed("metadata version differs".into()));
        }
        let count = usize::from(r.u16("recipient count")?);
        if count == 0 || count > MAX_RECIPIENTS {
            return Err(PacketError::Malformed(format!("{count} recipients")));
        }
        let mut recipients = Vec::with_capacity(count);
        for _ in 0..count {
            let mut fp = [0u8; 32];
            fp.copy_from_slice(r.take(32, "recipient")?);
            let w = usize::from(r.u16("recipient")?);
            recipients.push((fp, r.take(w, "wrapped key")?.to_vec()));
        }
        let aad_len = r.at;
        r.take(NONCE_LEN, "nonce")?;
        if bytes.len() - r.at != payload_len(version) + 16 {
            return Err(PacketError::Malformed("wrong payload length".into()));
        }
        Ok(Packet {
            metadata,
            recipients,
            aad_len,
            version,
            bytes: bytes.to_vec(),
        })
    }

    /// The recipients' key fingerprints, hex (the authority keys; not the recovery
    /// passphrase).
    pub fn recipients(&self) -> Vec<String> {
        self.recipients
            .iter()
            .filter(|(f, _)| f != RECOVERY_RECIPIENT)
            .map(|(f, _)| hex::encode(f))
            .collect()
    }

    /// Whether the depositing user's recovery passphrase opens the packet too.
    pub fn has_recovery(&self) -> bool {
        self.recipients.iter().any(|(f, _)| f == RECOVERY_RECIPIENT)
    }

    /// Decrypts the packet with the user's recovery passphrase, as [`Packet::open_all`] does
    /// with the authority key.
    ///
    /// # Errors
    /// [`PacketError::NoRecovery`], [`PacketError::WrongRecoveryPassphrase`] (a changed
    /// envelope looks the same), [`PacketError::Malformed`] for an envelope that is not one
    /// or asks for a key derivation out of range, and the errors of [`Packet::open_all`].
    pub fn open_with_recovery(&self, passphrase: &[u8]) -> Result<Opened, PacketError> {
        let (_, wrapped) = self
            .recipients
            .iter()
            .find(|(f, _)| f == RECOVERY_RECIPIENT)
            .ok_or(PacketError::NoRecovery)?;
        let envelope: sealed::Envelope = serde_json::from_slice(wrapped)
            .map_err(|e| PacketError::Malformed(format!("recovery recipient: {e}")))?;
        let ck = sealed::open(&envelope, RECOVERY_FORMAT, passphrase).map_err(|e| match e {
            SealError::Open => PacketError::WrongRecoveryPassphrase,
            other => PacketError::Malformed(format!("recovery recipient: {other}")),
        })?;
        self.open_content(&ck)
    }

    /// The packet's format version (1 to 3).
    pub fn version(&self) -> u16 {
        self.version
    }

    /// Decrypts the packet with the authority private key and returns the header it holds,
    /// checked against the clear metadata.
    ///
    /// # Errors
    /// As [`Packet::open_all`].
    pub fn open(&self, key: &RsaPrivateKey) -> Result<Header, PacketError> {
        Ok(self.open_all(key)?.header)
    }

    /// Decrypts the packet with the authority private key: the header it holds, checked
    /// against the clear metadata, and (version 2) the derived header key it was sealed with.
    ///
    /// # Errors
    /// [`PacketError::NotForThisKey`], [`PacketError::Decrypt`], or
    /// [`PacketError::Malformed`] when the payload is no header or contradicts the metadata.
    pub fn open_all(&self, key: &RsaPrivateKey) -> Result<Opened, PacketError> {
        let fp = key_fingerprint(&key.to_public_key())?;
        let (_, wrapped) = self
            .recipients
            .iter()
            .find(|(f, _)| *f == fp)
            .ok_or_else(|| PacketError::NotForThisKey {
                have: hex::encode(fp),
                recipients: self.recipients(),
            })?;
        let ck = SecretBytes::from_vec(
            key.oaep_decrypt_with_rng::<Sha256, _>(&mut SysRng, wrapped)
                .map_err(|_| PacketError::Decrypt)?,
        );
        self.open_content(&ck)
    }

    /// Decrypts the payload under the content key `ck` and checks it against the metadata.
    fn open_content(&self, ck: &SecretBytes) -> Result<Opened, PacketError> {
        let cipher = Aes256Gcm::new_from_slice(ck.expose()).map_err(|_| PacketError::Decrypt)?;
        let nonce = <&Nonce<Aes256Gcm>>::try_from(&self.bytes[self.aad_len..][..NONCE_LEN])
            .map_err(|_| PacketError::Decrypt)?;
        let plain = SecretBytes::from_vec(
            cipher
                .decrypt(
                    nonce,
                    Payload {
                        msg: &self.bytes[self.aad_len + NONCE_LEN..],
                        aad: &self.bytes[..self.aad_len],
                    },
                )
                .map_err(|_| PacketError::Decrypt)?,
        );
        let plain = plain.expose();
        let mut raw = SecretArray::<HEADER_SIZE>::zeroed();
        if plain.len() != payload_len(self.version) {
            return Err(PacketError::Malformed("payload is not a header".into()));
        }
        raw.expose_mut().copy_from_slice(&plain[..HEADER_SIZE]);
        let key_end = HEADER_SIZE + DERIVED_KEY_LEN;
        let header_key =
            (self.version >= 2).then(|| SecretBytes::from_slice(&plain[HEADER_SIZE..key_end]));
        let salt = (self.version >= 3).then(|| {
            let mut s = [0u8; SALT_LEN];
            s.copy_from_slice(&plain[key_end..key_end + SALT_LEN]);
            s
        });
        let header = Header::parse(raw.expose())
            .map_err(|e| PacketError::Malformed(format!("payload header: {e}")))?;
        let m = &self.metadata;
        if header.family.id() != m.format
            || header.is_hidden() != m.hidden
            || header.encrypted_area_start != m.data_start
            || header.encrypted_area_length != m.data_len
            || header.sector_size != m.sector_size
        {
            return Err(PacketError::Malformed(
                "the sealed header contradicts the clear metadata".into(),
            ));
        }
        Ok(Opened {
            header,
            header_key,
            salt,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::chain::ChainId;
    use crate::crypto::kdf::Prf;
    use crate::header::kdf::Family;
    use crate::header::layout::Slot;
    use crate::header::seal::{self, Protection};
    use crate::header::unlock::{Candidate, Credentials, UnlockOptions, unlock};
    use crate::secret::Password;
    use std::sync::OnceLock;

    fn key() -> &'static RsaPrivateKey {
        static K: OnceLock<RsaPrivateKey> = OnceLock::new();
        K.get_or_init(|| generate_key(MIN_KEY_BITS).expect("RSA key"))
    }

    fn unlocked() -> UnlockedHeader {
        let prot = Protection::new(Family::VeraCrypt, Prf::Sha256, 1, ChainId::SerpentAes)
            .expect("protection");
        let h = seal::new_header(prot, 131_072, 1 << 20, false, 512).expect("header");
        let pw = Password::new(b"packet test").expect("password");
        let creds = Credentials::new(&pw, &[], 1).expect("credentials");
        let bytes = seal::seal(&h, prot, &creds).expect("seal");
        let cand = Candidate {
            slot: Slot::Normal,
            bytes,
        };
        unlock(&[cand], &creds, &UnlockOptions::default()).expect("unlock")
    }

    #[test]
    fn round_trip_and_tampering() {
        let u = unlocked();
        let public = key().to_public_key();
        let (meta, bytes) =
            encrypt_to(&u, "alice", std::slice::from_ref(&public), None).expect("seal");
        assert_eq!(meta.volume_fingerprint, volume_fingerprint(&u));
        assert_eq!(meta.chain, "Serpent-AES");
        let p = Packet::parse(&bytes).expect("parse");
        assert_eq!(p.metadata, meta);
        let back = p.open(key()).expect("open");
        assert_eq!(back, u.header, "fields and master keys come back");
        let all = p.open_all(key()).expect("open all");
        assert_eq!(p.version(), PACKET_VERSION);
        assert_eq!(
            all.header_key.as_ref().map(SecretBytes::expose),
            Some(u.header_key().expose()),
            "the derived header key comes back"
        );
        assert_eq!(all.salt, Some(u.salt), "the header's salt comes back");
        // Version 2 packets carry the key but no salt.
        let (_, v2) =
            encrypt_as(2, &u, "alice", std::slice::from_ref(&public), None).expect("seal");
        let v2 = Packet::parse(&v2)
            .expect("parse v2")
            .open_all(key())
            .expect("open v2");
        assert!(v2.header_key.is_some() && v2.salt.is_none());

        // Any change to the clear metadata (associated data) or the ciphertext is caught.
        let mut t = bytes.clone();
        let pos = t
            .windows(5)
            .position(|w| w == b"alice")
            .expect("user in metadata");
        t[pos] = b'm';
        let p = Packet::parse(&t).expect("still parses");
        assert!(matches!(p.open(key()), Err(PacketError::Decrypt)));
        let mut t = bytes.clone();
        let last = t.len() - 1;
        t[last] ^= 1;
        assert!(matches!(
            Packet::parse(&t).expect("parses").open(key()),
            Err(PacketError::Decrypt)
        ));
        assert!(Packet::parse(&bytes[..bytes.len() - 1]).is_err());
    }

    /// A packet with a recovery recipient opens with the authority key and with the passphrase
    /// alike; a wrong passphrase, a packet without one, a short passphrase and a changed
    /// recovery recipient are each told apart from success.
    #[test]
    fn the_recovery_passphrase_opens_the_packet_as_the_authority_key_does() {
        let u = unlocked();
        let public = key().to_public_key();
        let recovery = Recovery {
            passphrase: b"correct horse battery",
            cost: Cost::cheapest(),
        };
        let (meta, bytes) =
            encrypt_to(&u, "alice", std::slice::from_ref(&public), Some(recovery)).expect("seal");
        let p = Packet::parse(&bytes).expect("parse");
        assert!(p.has_recovery());
        assert_eq!(p.recipients(), meta.authority_fingerprints, "RSA keys only");
        let by_key = p.open_all(key()).expect("the authority key opens it");
        let by_pass = p
            .open_with_recovery(b"correct horse battery")
            .expect("the passphrase opens it");
        assert_eq!(by_pass.header, u.header);
        assert_eq!(by_key.header, by_pass.header);
        assert_eq!(by_pass.salt, Some(u.salt));
        assert_eq!(
            by_pass.header_key.as_ref().map(SecretBytes::expose),
            Some(u.header_key().expose())
        );
        assert!(matches!(
            p.open_with_recovery(b"correct horse batterY"),
            Err(PacketError::WrongRecoveryPassphrase)
        ));
        // A changed envelope (its cost) is caught like a wrong passphrase.
        let at = bytes
            .windows(8)
            .position(|w| w == b"\"m_cost\"")
            .expect("the envelope is in the packet");
        let mut t = bytes.clone();
        let digit = t[at..].iter().position(u8::is_ascii_digit).expect("digit") + at;
        t[digit] = if t[digit] == b'9' { b'8' } else { t[digit] + 1 };
        assert!(matches!(
            Packet::parse(&t)
                .expect("parses")
                .open_with_recovery(b"correct horse battery"),
            Err(PacketError::WrongRecoveryPassphrase)
        ));
        assert!(
            Packet::parse(&t).expect("parses").open_all(key()).is_err(),
            "the recipient list is associated data"
        );

        let (_, plain) =
            encrypt_to(&u, "alice", std::slice::from_ref(&public), None).expect("seal");
        let p = Packet::parse(&plain).expect("parse");
        assert!(!p.has_recovery());
        assert!(matches!(
            p.open_with_recovery(b"correct horse battery"),
            Err(PacketError::NoRecovery)
        ));
        assert!(matches!(
            Recovery::new(b"eleven char"),
            Err(PacketError::RecoveryTooShort(11))
        ));
        assert!(Recovery::new("twelve chärs".as_bytes()).is_ok());
    }

    #[test]
    fn version_1_packets_still_open_without_a_header_key() {
        let u = unlocked();
        let public = key().to_public_key();
        let (meta, bytes) =
            encrypt_as(1, &u, "alice", std::slice::from_ref(&public), None).expect("seal");
        assert_eq!(meta.packet_version, 1);
        let p = Packet::parse(&bytes).expect("parse v1");
        assert_eq!(p.version(), 1);
        let all = p.open_all(key()).expect("open v1");
        assert_eq!(all.header, u.header);
        assert!(all.header_key.is_none(), "version 1 carries no header key");
        // A version-1 payload in a packet that says version 2 (or the reverse) is refused.
        let mut t = bytes.clone();
        t[9] = 2;
        assert!(Packet::parse(&t).is_err());
        let mut t = bytes;
        t[9] = 3;
        assert!(Packet::parse(&t).is_err(), "newer versions are refused");
    }

    #[test]
    fn private_key_pem_needs_its_passphrase() {
        let pem = encrypted_private_pem(key(), b"right").expect("pem");
        assert!(pem.as_str().contains("ENCRYPTED PRIVATE KEY"));
        assert!(load_private_key(pem.as_str(), b"right").is_ok());
        assert!(matches!(
            load_private_key(pem.as_str(), b"wrong"),
            Err(PacketError::Key(_))
        ));
        let public = public_pem(&key().to_public_key()).expect("public pem");
        assert!(parse_public_key(&public).is_ok());
        assert!(
            parse_public_key(pem.as_str()).is_err(),
            "a private key is no public key"
        );
    }

    /// The scheme of an encrypted private key: scrypt cost, block size, parallelization, key
    /// length, salt length, and whether the cipher is AES-256-CBC with a 16-byte IV.
    fn pem_scheme(pem: &str) -> impl PartialEq + fmt::Debug {
        use pkcs8::pkcs5::{EncryptionScheme, pbes2};
        let (label, der) = pkcs8::Document::from_pem(pem).expect("PEM");
        assert_eq!(label, "ENCRYPTED PRIVATE KEY");
        let info =
            pkcs8::EncryptedPrivateKeyInfoRef::try_from(der.as_bytes()).expect("encrypted PKCS#8");
        let EncryptionScheme::Pbes2(p) = info.encryption_algorithm else {
            panic!("not PBES2");
        };
        let s = *p.kdf.scrypt().expect("scrypt");
        let cbc =
            matches!(p.encryption, pbes2::EncryptionScheme::Aes256Cbc { iv } if iv.len() == 16);
        let scheme = (
            s.cost_parameter,
            s.block_size,
            s.parallelization,
            s.key_length,
        );
        (scheme, s.salt.as_ref().len(), cbc)
    }

    #[test]
    fn private_keys_are_written_as_they_always_were() {
        let pem = encrypted_private_pem(key(), b"right").expect("pem");
        let earlier = include_str!("../../../tests/vectors/escrow_authority.key.pem");
        assert_eq!(pem_scheme(pem.as_str()), pem_scheme(earlier));
        assert!(
            pem.as_str()
                .starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
        );
    }

    /// An authority key and packets (versions 1 and 2) written by an earlier build, kept in
    /// `tests/vectors/escrow_*`: the encrypted PKCS#8 PEM (scrypt, AES-256-CBC), the
    /// fingerprint, the RSA-OAEP key wrap and the AES-256-GCM seal must keep reading them.
    #[test]
    fn key_and_packets_of_an_earlier_build_still_open() {
        let pem = include_str!("../../../tests/vectors/escrow_authority.key.pem");
        let public_text = include_str!("../../../tests/vectors/escrow_authority.pub.pem");
        let plain = include_str!("../../../tests/vectors/escrow_packet_plain.txt");
        let field = |name: &str| {
            plain
                .lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("{name} in escrow_packet_plain.txt"))
        };
        let key = load_private_key(pem, b"tcvault escrow test vector").expect("the PEM key loads");
        assert!(matches!(
            load_private_key(pem, b"tcvault escrow test vectoR"),
            Err(PacketError::Key(_))
        ));
        let public = parse_public_key(public_text).expect("public key");
        assert!(
            public == key.to_public_key(),
            "the public key is the private key's"
        );
        assert_eq!(public_pem(&public).expect("public pem"), public_text);
        let fingerprint = hex::encode(key_fingerprint(&public).expect("fingerprint"));
        assert_eq!(fingerprint, field("fingerprint"));
        let header = hex::decode(field("header")).expect("hex");
        let header_key = hex::decode(field("header_key")).expect("hex");
        for (bytes, version) in [
            (
                &include_bytes!("../../../tests/vectors/escrow_packet_v1.bin")[..],
                1,
            ),
            (
                &include_bytes!("../../../tests/vectors/escrow_packet_v2.bin")[..],
                2,
            ),
        ] {
            let p = Packet::parse(bytes).expect("parse");
            assert_eq!(p.version(), version);
            assert_eq!(p.recipients(), vec![fingerprint.clone()]);
            assert_eq!(p.metadata.volume_fingerprint, field("volume_fingerprint"));
            assert_eq!(p.metadata.chain, "Serpent-AES");
            assert_eq!(p.metadata.user, "alice");
            let all = p.open_all(&key).expect("the packet opens");
            assert_eq!(all.header.serialize(&[0u8; SALT_LEN]).expose(), &header[..]);
            assert_eq!(
                all.header_key.as_ref().map(SecretBytes::expose),
                (version >= 2).then_some(&header_key[..])
            );
        }
    }
}
