//! Password-protected export bundles: escrow entries moved between servers.
//!
//! A bundle is JSON: a clear header (format, KDF parameters and salt, cipher, nonce) and the
//! entries, sealed with XChaCha20-Poly1305 under a key derived from the bundle password with
//! Argon2id; the header is the associated data, so changing a parameter breaks the seal. The
//! packets inside stay sealed to the escrow authority as they were.

use crate::secret::SecretArray;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

/// The bundle's `format` value.
pub const BUNDLE_FORMAT: &str = "tcvault-escrow-bundle";
/// Shortest bundle password accepted.
pub const MIN_BUNDLE_PASSWORD: usize = 8;

/// Bundle errors.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Not a bundle, or a version we do not read.
    #[error("not a tcvault escrow bundle (version 1): {0}")]
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

#[derive(Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    format: String,
    version: u32,
    kdf: Kdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

fn aad(s: &Sealed) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}",
        s.format,
        s.version,
        s.kdf.algorithm,
        s.kdf.m_cost,
        s.kdf.t_cost,
        s.kdf.p_cost,
        s.kdf.salt,
        s.cipher,
        s.nonce
    )
}

fn derive(password: &[u8], kdf: &Kdf) -> Result<SecretArray<32>, BundleError> {
    if kdf.algorithm != "argon2id"
        || !(8..=1 << 20).contains(&kdf.m_cost)
        || !(1..=16).contains(&kdf.t_cost)
        || !(1..=16).contains(&kdf.p_cost)
    {
        return Err(BundleError::Params);
    }
    let salt = hex::decode(&kdf.salt).map_err(|_| BundleError::Params)?;
    let params = argon2::Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|_| BundleError::Params)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = SecretArray::<32>::zeroed();
    argon
        .hash_password_into(password, &salt, key.expose_mut())
        .map_err(|e| BundleError::Seal(e.to_string()))?;
    Ok(key)
}

/// Encrypts `content` under `password`; returns the bundle bytes (JSON).
///
/// # Errors
/// [`BundleError::WeakPassword`], [`BundleError::Seal`].
pub fn encrypt(content: &BundleContent, password: &[u8]) -> Result<Vec<u8>, BundleError> {
    if password.len() < MIN_BUNDLE_PASSWORD {
        return Err(BundleError::WeakPassword);
    }
    let mut salt = [0u8; 16];
    crate::crypto::random::fill(&mut salt).map_err(|e| BundleError::Seal(e.to_string()))?;
    let mut nonce = [0u8; 24];
    crate::crypto::random::fill(&mut nonce).map_err(|e| BundleError::Seal(e.to_string()))?;
    let d = argon2::Params::default();
    let mut sealed = Sealed {
        format: BUNDLE_FORMAT.to_owned(),
        version: 1,
        kdf: Kdf {
            algorithm: "argon2id".to_owned(),
            m_cost: d.m_cost(),
            t_cost: d.t_cost(),
            p_cost: d.p_cost(),
            salt: hex::encode(salt),
        },
        cipher: "xchacha20poly1305".to_owned(),
        nonce: hex::encode(nonce),
        ciphertext: String::new(),
    };
    let key = derive(password, &sealed.kdf)?;
    // The content is what the database holds (packets sealed to the authority key, salts,
    // metadata): protected by the bundle's password in transit, not a secret in memory.
    let plain = serde_json::to_vec(content).map_err(|e| BundleError::Seal(e.to_string()))?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: &plain,
                aad: aad(&sealed).as_bytes(),
            },
        )
        .map_err(|_| BundleError::Seal("encryption failed".to_owned()))?;
    sealed.ciphertext = B64.encode(ct);
    serde_json::to_vec(&sealed).map_err(|e| BundleError::Seal(e.to_string()))
}

/// Decrypts a bundle.
///
/// # Errors
/// [`BundleError::Format`], [`BundleError::Params`], [`BundleError::Open`].
pub fn decrypt(bundle: &[u8], password: &[u8]) -> Result<BundleContent, BundleError> {
    let sealed: Sealed =
        serde_json::from_slice(bundle).map_err(|e| BundleError::Format(e.to_string()))?;
    if sealed.format != BUNDLE_FORMAT || sealed.version != 1 || sealed.cipher != "xchacha20poly1305"
    {
        return Err(BundleError::Format(
            "unknown format, version or cipher".to_owned(),
        ));
    }
    let nonce = hex::decode(&sealed.nonce).map_err(|_| BundleError::Format("nonce".to_owned()))?;
    let nonce =
        XNonce::try_from(&nonce[..]).map_err(|_| BundleError::Format("nonce length".to_owned()))?;
    let ct = B64
        .decode(&sealed.ciphertext)
        .map_err(|_| BundleError::Format("ciphertext is not base64".to_owned()))?;
    let key = derive(password, &sealed.kdf)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let plain = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &ct,
                aad: aad(&sealed).as_bytes(),
            },
        )
        .map_err(|_| BundleError::Open)?;
    serde_json::from_slice(&plain).map_err(|e| BundleError::Format(e.to_string()))
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
