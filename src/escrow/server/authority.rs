//! The escrow authority's RSA public key, as the server holds it: a PEM file with a
//! `PUBLIC KEY` (SubjectPublicKeyInfo) or `RSA PUBLIC KEY` (PKCS#1) block. The server never
//! needs the private key and refuses a file that contains one.

use std::path::{Path, PathBuf};

use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey, LineEnding};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

/// The smallest authority key accepted.
pub const MIN_AUTHORITY_BITS: usize = 2048;

/// Problems with the authority key file.
#[derive(Debug, thiserror::Error)]
pub enum AuthorityKeyError {
    /// The file could not be read.
    #[error("cannot read the authority public key {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds a private key.
    #[error(
        "{path} contains a PRIVATE key: the escrow server must hold only the authority's PUBLIC \
         key (extract it with `openssl pkey -in private.pem -pubout`) and the private key must \
         stay with the escrow authority"
    )]
    PrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// Not an RSA public key in PEM.
    #[error("{path} is not a PEM RSA public key (\"PUBLIC KEY\" or \"RSA PUBLIC KEY\")")]
    NotRsa {
        /// The file.
        path: PathBuf,
    },
    /// Too short to be safe.
    #[error(
        "{path}: the authority key has {bits} bits; at least {MIN_AUTHORITY_BITS} are required"
    )]
    TooSmall {
        /// The file.
        path: PathBuf,
        /// Its size.
        bits: usize,
    },
}

/// The authority public key and its fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorityKey {
    /// Normalised PEM (`PUBLIC KEY`, SubjectPublicKeyInfo).
    pub pem: String,
    /// Lower-case hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fingerprint: String,
    /// Modulus size.
    pub bits: usize,
}

impl AuthorityKey {
    /// Reads and checks the key file.
    ///
    /// # Errors
    /// See [`AuthorityKeyError`].
    pub fn load(path: &Path) -> Result<Self, AuthorityKeyError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthorityKeyError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::from_pem(&text, path)
    }

    /// Parses PEM text; `path` only names it in errors.
    ///
    /// # Errors
    /// See [`AuthorityKeyError`].
    pub fn from_pem(text: &str, path: &Path) -> Result<Self, AuthorityKeyError> {
        if text.contains("PRIVATE KEY") {
            return Err(AuthorityKeyError::PrivateKey {
                path: path.to_owned(),
            });
        }
        let not_rsa = || AuthorityKeyError::NotRsa {
            path: path.to_owned(),
        };
        let key = rsa::PublicKey::from_public_key_pem(text.trim())
            .or_else(|_| rsa::PublicKey::from_pkcs1_pem(text.trim()))
            .map_err(|_| not_rsa())?;
        let bits = key.size() * 8;
        if bits > crate::escrow::client::packet::MAX_PUBLIC_KEY_BITS {
            return Err(not_rsa());
        }
        if bits < MIN_AUTHORITY_BITS {
            return Err(AuthorityKeyError::TooSmall {
                path: path.to_owned(),
                bits,
            });
        }
        let der = key.to_public_key_der().map_err(|_| not_rsa())?;
        let pem = key
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| not_rsa())?;
        Ok(AuthorityKey {
            pem,
            fingerprint: hex::encode(Sha256::digest(der.as_bytes())),
            bits,
        })
    }
}
