//! Passphrase-sealed envelopes: the format of export bundles and of authority key shares.
//!
//! An envelope is JSON: a clear header (its `format` and `version`, the Argon2id parameters
//! and salt, the cipher, the nonce) and the ciphertext, sealed with XChaCha20-Poly1305 under
//! a key derived from the passphrase with Argon2id; the header is the associated data, so
//! changing any parameter breaks the seal. A wrong passphrase and a changed envelope cannot
//! be told apart.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};

use crate::secret::{SecretArray, SecretBytes};

/// The only envelope version.
pub const VERSION: u32 = 1;
/// The only cipher.
const CIPHER: &str = "xchacha20poly1305";

/// Why an envelope could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Not an envelope of the expected format and version.
    #[error("{0}")]
    Format(String),
    /// Key derivation parameters outside the accepted range (protects the reader from an
    /// envelope that would take all its memory).
    #[error("key derivation parameters are out of range")]
    Params,
    /// Wrong passphrase, or a changed or damaged envelope.
    #[error("wrong passphrase, or the file was changed or damaged")]
    Open,
    /// Key derivation or sealing failed.
    #[error("cannot seal: {0}")]
    Seal(String),
}

/// How costly the passphrase's key derivation is.
#[derive(Clone, Copy, Debug)]
pub struct Cost {
    /// Argon2id memory, KiB.
    pub m_cost: u32,
    /// Argon2id passes.
    pub t_cost: u32,
    /// Argon2id lanes.
    pub p_cost: u32,
}

impl Cost {
    /// Argon2's own defaults (19 MiB, 2 passes): for bundles moved between servers.
    pub fn standard() -> Cost {
        let d = argon2::Params::default();
        Cost {
            m_cost: d.m_cost(),
            t_cost: d.t_cost(),
            p_cost: d.p_cost(),
        }
    }

    /// 256 MiB, 3 passes: for what is kept for years under a holder's passphrase.
    pub fn strong() -> Cost {
        Cost {
            m_cost: 256 * 1024,
            t_cost: 3,
            p_cost: 1,
        }
    }

    /// The least this module accepts (64 KiB, one pass): for the tests' own envelopes only.
    #[cfg(test)]
    pub(crate) fn cheapest() -> Cost {
        Cost {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Kdf {
    algorithm: String,
    m_cost: u32,
    t_cost: u32,
    p_cost: u32,
    salt: String,
}

/// A sealed envelope, as it is stored (serialise it with `serde_json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// What the envelope holds (`tcvault-escrow-bundle`, `tcvault-escrow-key-share`).
    pub format: String,
    /// [`VERSION`].
    pub version: u32,
    kdf: Kdf,
    cipher: String,
    nonce: String,
    ciphertext: String,
}

impl Envelope {
    fn aad(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}|{}|{}|{}",
            self.format,
            self.version,
            self.kdf.algorithm,
            self.kdf.m_cost,
            self.kdf.t_cost,
            self.kdf.p_cost,
            self.kdf.salt,
            self.cipher,
            self.nonce
        )
    }
}

fn derive(password: &[u8], kdf: &Kdf) -> Result<SecretArray<32>, SealError> {
    if kdf.algorithm != "argon2id"
        || !(8..=1 << 20).contains(&kdf.m_cost)
        || !(1..=16).contains(&kdf.t_cost)
        || !(1..=16).contains(&kdf.p_cost)
    {
        return Err(SealError::Params);
    }
    let salt = hex::decode(&kdf.salt).map_err(|_| SealError::Params)?;
    let params = argon2::Params::new(kdf.m_cost, kdf.t_cost, kdf.p_cost, Some(32))
        .map_err(|_| SealError::Params)?;
    let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let mut key = SecretArray::<32>::zeroed();
    argon
        .hash_password_into(password, &salt, key.expose_mut())
        .map_err(|e| SealError::Seal(e.to_string()))?;
    Ok(key)
}

/// Seals `plain` under `password` as an envelope of `format`.
///
/// # Errors
/// [`SealError::Seal`]: the random generator or key derivation failed.
pub fn seal(
    format: &str,
    plain: &[u8],
    password: &[u8],
    cost: Cost,
) -> Result<Envelope, SealError> {
    let mut salt = [0u8; 16];
    crate::crypto::random::fill(&mut salt).map_err(|e| SealError::Seal(e.to_string()))?;
    let mut nonce = [0u8; 24];
    crate::crypto::random::fill(&mut nonce).map_err(|e| SealError::Seal(e.to_string()))?;
    let mut env = Envelope {
        format: format.to_owned(),
        version: VERSION,
        kdf: Kdf {
            algorithm: "argon2id".to_owned(),
            m_cost: cost.m_cost,
            t_cost: cost.t_cost,
            p_cost: cost.p_cost,
            salt: hex::encode(salt),
        },
        cipher: CIPHER.to_owned(),
        nonce: hex::encode(nonce),
        ciphertext: String::new(),
    };
    let key = derive(password, &env.kdf)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    let ct = cipher
        .encrypt(
            &XNonce::from(nonce),
            Payload {
                msg: plain,
                aad: env.aad().as_bytes(),
            },
        )
        .map_err(|_| SealError::Seal("encryption failed".to_owned()))?;
    env.ciphertext = B64.encode(ct);
    Ok(env)
}

/// Opens an envelope that must be of `format`.
///
/// # Errors
/// [`SealError::Format`], [`SealError::Params`], [`SealError::Open`].
pub fn open(env: &Envelope, format: &str, password: &[u8]) -> Result<SecretBytes, SealError> {
    if env.format != format || env.version != VERSION || env.cipher != CIPHER {
        return Err(SealError::Format(format!(
            "not a {format} (version {VERSION}): unknown format, version or cipher"
        )));
    }
    let nonce = hex::decode(&env.nonce).map_err(|_| SealError::Format("bad nonce".to_owned()))?;
    let nonce =
        XNonce::try_from(&nonce[..]).map_err(|_| SealError::Format("bad nonce length".into()))?;
    let ct = B64
        .decode(&env.ciphertext)
        .map_err(|_| SealError::Format("the ciphertext is not base64".to_owned()))?;
    let key = derive(password, &env.kdf)?;
    let cipher = XChaCha20Poly1305::new(key.expose().into());
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &ct,
                aad: env.aad().as_bytes(),
            },
        )
        .map(SecretBytes::from_vec)
        .map_err(|_| SealError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_wrong_passphrase_wrong_format_and_a_changed_header() {
        let env = seal("fmt-a", b"plain text", b"pass phrase", Cost::cheapest()).expect("seal");
        assert_eq!(
            open(&env, "fmt-a", b"pass phrase").expect("open").expose(),
            b"plain text"
        );
        assert!(matches!(
            open(&env, "fmt-a", b"pass phrasE"),
            Err(SealError::Open)
        ));
        assert!(matches!(
            open(&env, "fmt-b", b"pass phrase"),
            Err(SealError::Format(_))
        ));
        let mut changed = env.clone();
        changed.kdf.t_cost = 2;
        assert!(matches!(
            open(&changed, "fmt-a", b"pass phrase"),
            Err(SealError::Open)
        ));
        let mut huge = env;
        huge.kdf.m_cost = u32::MAX;
        assert!(matches!(
            open(&huge, "fmt-a", b"pass phrase"),
            Err(SealError::Params)
        ));
    }
}
