//! Password-protected export bundles: escrow entries moved between servers.
//!
//! A bundle is an [`Envelope`] of format [`BUNDLE_FORMAT`] (Argon2id at Argon2's default
//! cost, XChaCha20-Poly1305, the clear header as associated data) holding the entries as
//! JSON. The packets inside stay sealed to the escrow authority as they were.

use serde::{Deserialize, Serialize};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::store::{EntrySummary, now_unix};
use crate::escrow::sealed::{self, Cost, Envelope, SealError};

/// The bundle's `format` value.
pub const BUNDLE_FORMAT: &str = "tcvault-escrow-bundle";
/// Shortest bundle password accepted.
pub const MIN_BUNDLE_PASSWORD: usize = 8;

/// Bundle errors.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle, or a version we do not read.
    #[error("not a tcvault escrow bundle: {0}")]
    Format(String),
    /// KDF parameters outside the accepted range (protects the importing server).
    #[error("bundle key derivation parameters are out of range")]
    Params,
    /// Wrong password or damaged bundle (AEAD cannot tell which).
    #[error("wrong bundle password, or the bundle was changed or damaged")]
    Open,
    /// The password is too short.
    #[error("the bundle password must have at least {MIN_BUNDLE_PASSWORD} characters")]
    WeakPassword,
    /// Key derivation or sealing failed.
    #[error("cannot seal the bundle: {0}")]
    Seal(String),
}

/// One exported entry.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleEntry {
    /// Number on the exporting server.
    pub source_number: i64,
    /// Unix seconds of the original deposit.
    pub created_at: i64,
    /// Depositing user.
    pub user: String,
    /// Lower-case hex.
    pub volume_fingerprint: String,
    /// Lower-case hex.
    pub salts: Vec<String>,
    /// Lower-case hex.
    pub authority_fingerprint: String,
    /// Clear metadata (JSON object).
    pub metadata: serde_json::Value,
    /// The packet, base64.
    pub packet: String,
}

impl BundleContent {
    /// A bundle of `rows` (entries with their packets) from the server named `origin`, made now.
    pub fn of(origin: &str, rows: &[(EntrySummary, Vec<u8>)]) -> BundleContent {
        BundleContent {
            origin: origin.to_owned(),
            exported_at: now_unix(),
            entries: rows
                .iter()
                .map(|(e, p)| BundleEntry {
                    source_number: e.number,
                    created_at: e.created_at,
                    user: e.user.clone(),
                    volume_fingerprint: e.volume_fingerprint.clone(),
                    salts: e.salts.clone(),
                    authority_fingerprint: e.authority_fingerprint.clone(),
                    metadata: serde_json::from_str(&e.metadata).unwrap_or(serde_json::Value::Null),
                    packet: B64.encode(p),
                })
                .collect(),
        }
    }
}

/// What a bundle holds once opened.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BundleContent {
    /// `SERVER_NAME` of the exporting server.
    pub origin: String,
    /// Unix seconds.
    pub exported_at: i64,
    /// The entries.
    pub entries: Vec<BundleEntry>,
}

impl From<SealError> for BundleError {
    fn from(e: SealError) -> Self {
        match e {
            SealError::Format(why) => BundleError::Format(why),
            SealError::Params => BundleError::Params,
            SealError::Open => BundleError::Open,
            SealError::Seal(why) => BundleError::Seal(why),
        }
    }
}

/// Encrypts `content` under `password`; returns the bundle bytes (JSON).
///
/// # Errors
/// [`BundleError::WeakPassword`], [`BundleError::Seal`].
pub fn encrypt(content: &BundleContent, password: &[u8]) -> Result<Vec<u8>, BundleError> {
    if password.len() < MIN_BUNDLE_PASSWORD {
        return Err(BundleError::WeakPassword);
    }
    // The content is what the database holds (packets sealed to the authority key, salts,
    // metadata): protected by the bundle's password in transit, not a secret in memory.
    let plain = serde_json::to_vec(content).map_err(|e| BundleError::Seal(e.to_string()))?;
    let env = sealed::seal(BUNDLE_FORMAT, &plain, password, Cost::standard())?;
    serde_json::to_vec(&env).map_err(|e| BundleError::Seal(e.to_string()))
}

/// Decrypts a bundle.
///
/// # Errors
/// [`BundleError::Format`], [`BundleError::Params`], [`BundleError::Open`].
pub fn decrypt(bundle: &[u8], password: &[u8]) -> Result<BundleContent, BundleError> {
    let env: Envelope =
        serde_json::from_slice(bundle).map_err(|e| BundleError::Format(e.to_string()))?;
    let plain = sealed::open(&env, BUNDLE_FORMAT, password)?;
    serde_json::from_slice(plain.expose()).map_err(|e| BundleError::Format(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypt_decrypt_round_trip_and_wrong_password() {
        let content = BundleContent {
            origin: "a".into(),
            exported_at: 5,
            entries: vec![BundleEntry {
                source_number: 1,
                created_at: 2,
                user: "u".into(),
                volume_fingerprint: "ab".into(),
                salts: vec!["cd".into()],
                authority_fingerprint: "ef".into(),
                metadata: serde_json::json!({"k": 1}),
                packet: "AAE=".into(),
            }],
        };
        let b = encrypt(&content, b"correct horse").expect("seal");
        assert_eq!(decrypt(&b, b"correct horse").expect("open"), content);
        assert!(matches!(
            decrypt(&b, b"wrong horse!"),
            Err(BundleError::Open)
        ));
        assert!(matches!(
            encrypt(&content, b"short"),
            Err(BundleError::WeakPassword)
        ));
    }

    /// A bundle written by an earlier build (`tests/vectors/escrow_bundle.json`): Argon2id
    /// and XChaCha20-Poly1305 must keep opening it.
    #[test]
    fn bundle_of_an_earlier_build_still_opens() {
        let b = include_bytes!("../../../tests/vectors/escrow_bundle.json");
        let content = decrypt(b, b"tcvault bundle test vector").expect("the bundle opens");
        assert_eq!(
            content,
            BundleContent {
                origin: "vector-server".into(),
                exported_at: 1_700_000_000,
                entries: vec![BundleEntry {
                    source_number: 7,
                    created_at: 1_699_999_000,
                    user: "alice".into(),
                    volume_fingerprint: "ab".repeat(32),
                    salts: vec!["cd".repeat(64)],
                    authority_fingerprint: "ef".repeat(32),
                    metadata: serde_json::json!({"packet_version": 2, "user": "alice"}),
                    packet: "VENWRVNDUEs=".into(),
                }],
            }
        );
        assert!(matches!(
            decrypt(b, b"tcvault bundle test vectoR"),
            Err(BundleError::Open)
        ));
    }
}
