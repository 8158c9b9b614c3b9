//! The deposit workflow: after a password opened a header, seal the header (and the derived
//! header key) to the escrow authority's public key and post it with the salts the volume
//! shows without a password. The server never sees a key: the packet opens only with the
//! authority's private key, and, where the user gave one, with their recovery passphrase.

use rsa::PublicKey as RsaPublicKey;

use super::config::ClientConfig;
use super::http::{ClientError, EscrowClient, Login};
use super::packet::{self, PacketError, Recovery};
use super::readable_salts;
use crate::escrow::wire::{Account, DepositRequest};
use crate::header::UnlockedHeader;
use crate::volume::{Host, VolumeError};

/// Why a deposit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DepositError {
    /// The server could not be reached (the user may try again later).
    #[error(transparent)]
    Unreachable(ClientError),
    /// The server refused, or answered nonsense.
    #[error(transparent)]
    Server(ClientError),
    /// The authority key (configured or served) is unusable.
    #[error("authority key: {0}")]
    AuthorityKey(PacketError),
    /// The authority key is not the one the configuration pins.
    #[error("the authority key's fingerprint {fingerprint} is not the pinned {pinned}")]
    NotPinned {
        /// The key's fingerprint.
        fingerprint: String,
        /// The configuration's.
        pinned: String,
    },
    /// The packet could not be sealed.
    #[error(transparent)]
    Packet(PacketError),
    /// The volume's salts could not be read.
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

impl From<ClientError> for DepositError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Unreachable { .. } => DepositError::Unreachable(e),
            other => DepositError::Server(other),
        }
    }
}

/// What the server answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deposited {
    /// The entry's escrow number.
    pub escrow_number: i64,
    /// Whether this user had escrowed this volume already (the server kept its entry and
    /// added the new salts to it).
    pub already_in_escrow: bool,
}

/// The authority public key: from the configuration, or from the server; either way checked
/// against the pinned fingerprint when the configuration has one.
///
/// # Errors
/// [`DepositError::AuthorityKey`], [`DepositError::NotPinned`], or the server's errors.
pub fn authority_key(
    cfg: &ClientConfig,
    client: &EscrowClient,
) -> Result<RsaPublicKey, DepositError> {
    let key = match &cfg.authority_pem {
        Some(pem) => packet::parse_public_key(pem).map_err(DepositError::AuthorityKey)?,
        None => packet::parse_public_key(&client.authority_key()?.public_key_pem)
            .map_err(DepositError::AuthorityKey)?,
    };
    let fingerprint =
        hex::encode(packet::key_fingerprint(&key).map_err(DepositError::AuthorityKey)?);
    if let Some(pinned) = &cfg.authority_fingerprint
        && *pinned != fingerprint
    {
        return Err(DepositError::NotPinned {
            fingerprint,
            pinned: pinned.clone(),
        });
    }
    Ok(key)
}

/// Logs in to the server of `cfg` (a session, where it offers one: the deposit then costs it
/// no second password check) and reads what it says of the account (`None`: a server too
/// old to say). Done before a deposit, so that a server that requires escrow of this user is
/// known to, even when the deposit then fails.
///
/// # Errors
/// The server's errors (a wrong password included).
pub fn log_in(cfg: &ClientConfig, login: &Login) -> Result<(Login, Option<Account>), DepositError> {
    let client = EscrowClient::new(cfg)?;
    let session = client.open_session(login)?;
    let account = client.account(&session)?;
    Ok((session, account))
}

/// Escrows the header `u`, opened from `host`, as `login` on the server of `cfg`; with
/// `recovery`, the user's recovery passphrase opens the packet too (self-service recovery).
///
/// # Errors
/// See [`DepositError`].
pub fn deposit(
    host: &Host,
    u: &UnlockedHeader,
    cfg: &ClientConfig,
    login: &Login,
    recovery: Option<Recovery<'_>>,
) -> Result<Deposited, DepositError> {
    let client = EscrowClient::new(cfg)?;
    let key = authority_key(cfg, &client)?;
    let salts = readable_salts(host)?;
    let (meta, sealed) =
        packet::encrypt_to(u, &login.user, &[key], recovery).map_err(DepositError::Packet)?;
    let metadata = serde_json::to_value(&meta)
        .map_err(|e| DepositError::Packet(PacketError::Encrypt(e.to_string())))?;
    let request = DepositRequest {
        volume_fingerprint: meta.volume_fingerprint.clone(),
        salts: salts.iter().map(hex::encode).collect(),
        authority_fingerprint: meta
            .authority_fingerprints
            .first()
            .cloned()
            .unwrap_or_default(),
        metadata,
        packet: base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &sealed),
    };
    let answer = client.deposit(login, &request)?;
    Ok(Deposited {
        escrow_number: answer.escrow_number,
        already_in_escrow: answer.already_in_escrow,
    })
}
