//! Split control of the escrow authority key.
//!
//! `tcvault escrow keygen --shares N --threshold M` splits the authority private key (its
//! PKCS#8 DER encoding) with Shamir's scheme over GF(256) into N shares, any M of which
//! rebuild the key and fewer of which tell nothing about it. Each share is sealed under its
//! holder's passphrase in an [`Envelope`] of format [`SHARE_FORMAT`] (Argon2id at
//! [`Cost::strong`], XChaCha20-Poly1305) and written to a file of its own: JSON with the
//! share's number, the threshold, the number of shares and the authority key's fingerprint
//! in the clear (so that a wrong or repeated share is refused before any passphrase is
//! asked), and the same facts again inside the seal, which are the ones believed.
//!
//! The sealed plaintext is binary: the share's number, the threshold and the number of
//! shares (one byte each), the 32-byte fingerprint, then the share's bytes.

use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rsa::PrivateKey as RsaPrivateKey;
use serde::{Deserialize, Serialize};

use super::packet::key_fingerprint;
use crate::escrow::sealed::{self, Cost, Envelope, SealError};
use crate::secret::SecretBytes;

/// The `format` of a share file and of its envelope.
pub const SHARE_FORMAT: &str = "tcvault-escrow-key-share";
/// The most shares a key is split into.
pub const MAX_SHARES: u8 = 32;

const FINGERPRINT_LEN: usize = 32;
const HEAD_LEN: usize = 3 + FINGERPRINT_LEN;

/// Why shares could not be made, read or combined.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// A threshold or count that cannot work.
    #[error(
        "a key is split into 2 to {MAX_SHARES} shares with a threshold of 2 to the number of \
         shares (asked: {threshold} of {count})"
    )]
    Parameters {
        /// M.
        threshold: u8,
        /// N.
        count: u8,
    },
    /// The number of passphrases differs from the number of shares.
    #[error("{count} shares need {count} passphrases, one per holder ({given} given)")]
    Passphrases {
        /// N.
        count: u8,
        /// How many were given.
        given: usize,
    },
    /// Not a share file, or a damaged one.
    #[error("not a tcvault escrow key share: {0}")]
    Format(String),
    /// The passphrase does not open this share (or the file was changed).
    #[error("wrong passphrase for key share {index}, or its file was changed or damaged")]
    WrongPassphrase {
        /// The share's number.
        index: u8,
    },
    /// The same share given twice.
    #[error("key share {index} is given twice; each share counts once")]
    Duplicate {
        /// The share's number.
        index: u8,
    },
    /// Shares of different keys or of different splits.
    #[error("the key shares are not of one split of one key: {0}")]
    Mixed(String),
    /// Fewer shares than the threshold.
    #[error("{have} key shares given, {need} are needed")]
    TooFew {
        /// Distinct shares given.
        have: usize,
        /// The threshold.
        need: u8,
    },
    /// The shares rebuilt something that is not the key they name.
    #[error("the key shares do not rebuild the authority key they name: {0}")]
    NotTheKey(String),
    /// Sealing failed (the random generator, key derivation).
    #[error("cannot seal the key share: {0}")]
    Seal(String),
}

/// A share as its file holds it: the clear facts and the sealed share.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedShare {
    /// [`SHARE_FORMAT`].
    pub format: String,
    /// The share's number, 1 to `count`.
    pub index: u8,
    /// How many shares rebuild the key (M).
    pub threshold: u8,
    /// How many shares were made (N).
    pub count: u8,
    /// Hex SHA-256 of the authority public key's SubjectPublicKeyInfo.
    pub authority_fingerprint: String,
    /// The share, sealed under its holder's passphrase.
    pub sealed: Envelope,
}

/// A share opened with its holder's passphrase.
#[derive(Debug)]
pub struct OpenedShare {
    index: u8,
    threshold: u8,
    fingerprint: [u8; FINGERPRINT_LEN],
    y: SecretBytes,
}

impl OpenedShare {
    /// The share's number.
    pub fn index(&self) -> u8 {
        self.index
    }
}

fn check_parameters(threshold: u8, count: u8) -> Result<(), ShareError> {
    if !(2..=MAX_SHARES).contains(&count) || !(2..=count).contains(&threshold) {
        return Err(ShareError::Parameters { threshold, count });
    }
    Ok(())
}

/// Splits `key` into `passphrases.len()` shares, any `threshold` of which rebuild it; share
/// `i` (numbered from 1) is sealed under `passphrases[i - 1]`.
///
/// # Errors
/// [`ShareError::Parameters`], [`ShareError::Seal`].
pub fn split(
    key: &RsaPrivateKey,
    threshold: u8,
    passphrases: &[SecretBytes],
    cost: Cost,
) -> Result<Vec<SealedShare>, ShareError> {
    let count = u8::try_from(passphrases.len()).unwrap_or(u8::MAX);
    check_parameters(threshold, count)?;
    let fingerprint =
        key_fingerprint(&key.to_public_key()).map_err(|e| ShareError::Seal(e.to_string()))?;
    let der = key
        .to_pkcs8_der()
        .map_err(|e| ShareError::Seal(format!("cannot encode the private key: {e}")))?;
    let dealer = blahaj::Sharks(threshold).dealer(der.as_bytes());
    let mut out = Vec::with_capacity(passphrases.len());
    for (share, pass) in dealer.zip(passphrases) {
        let index = share.x.0;
        let mut plain = SecretBytes::zeroed(HEAD_LEN + share.y.len());
        let p = plain.expose_mut();
        p[0] = index;
        p[1] = threshold;
        p[2] = count;
        p[3..HEAD_LEN].copy_from_slice(&fingerprint);
        for (dst, y) in p[HEAD_LEN..].iter_mut().zip(&share.y) {
            *dst = y.0;
        }
        let sealed = sealed::seal(SHARE_FORMAT, plain.expose(), pass.expose(), cost)
            .map_err(|e| ShareError::Seal(e.to_string()))?;
        out.push(SealedShare {
            format: SHARE_FORMAT.to_owned(),
            index,
            threshold,
            count,
            authority_fingerprint: hex::encode(fingerprint),
            sealed,
        });
    }
    Ok(out)
}

impl SealedShare {
    /// Reads a share file.
    ///
    /// # Errors
    /// [`ShareError::Format`].
    pub fn parse(bytes: &[u8]) -> Result<SealedShare, ShareError> {
        let s: SealedShare =
            serde_json::from_slice(bytes).map_err(|e| ShareError::Format(e.to_string()))?;
        if s.format != SHARE_FORMAT {
            return Err(ShareError::Format(format!("format {:?}", s.format)));
        }
        check_parameters(s.threshold, s.count).map_err(|e| ShareError::Format(e.to_string()))?;
        if s.index == 0 || s.index > s.count {
            return Err(ShareError::Format(format!(
                "share number {} of {}",
                s.index, s.count
            )));
        }
        Ok(s)
    }

    /// The file's text (JSON).
    ///
    /// # Errors
    /// [`ShareError::Seal`] (it cannot be encoded).
    pub fn to_json(&self) -> Result<Vec<u8>, ShareError> {
        let mut v = serde_json::to_vec_pretty(self).map_err(|e| ShareError::Seal(e.to_string()))?;
        v.push(b'\n');
        Ok(v)
    }

    /// Opens the share with its holder's passphrase; the facts inside the seal must be the
    /// clear ones.
    ///
    /// # Errors
    /// [`ShareError::WrongPassphrase`], [`ShareError::Format`].
    pub fn open(&self, passphrase: &[u8]) -> Result<OpenedShare, ShareError> {
        let plain = match sealed::open(&self.sealed, SHARE_FORMAT, passphrase) {
            Ok(p) => p,
            Err(SealError::Open) => {
                return Err(ShareError::WrongPassphrase { index: self.index });
            }
            Err(e) => return Err(ShareError::Format(e.to_string())),
        };
        let p = plain.expose();
        if p.len() <= HEAD_LEN {
            return Err(ShareError::Format("the sealed share is too short".into()));
        }
        let mut fingerprint = [0u8; FINGERPRINT_LEN];
        fingerprint.copy_from_slice(&p[3..HEAD_LEN]);
        if p[0] != self.index
            || p[1] != self.threshold
            || p[2] != self.count
            || hex::encode(fingerprint) != self.authority_fingerprint
        {
            return Err(ShareError::Format(
                "the share's clear facts differ from the sealed ones".into(),
            ));
        }
        Ok(OpenedShare {
            index: p[0],
            threshold: p[1],
            fingerprint,
            y: SecretBytes::from_slice(&p[HEAD_LEN..]),
        })
    }
}

/// Checks, before any passphrase is asked, that `shares` are distinct shares of one split
/// of one key and that there are enough of them.
///
/// # Errors
/// [`ShareError::Duplicate`], [`ShareError::Mixed`], [`ShareError::TooFew`].
pub fn check_set(shares: &[SealedShare]) -> Result<(), ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::TooFew { have: 0, need: 2 });
    };
    for (i, s) in shares.iter().enumerate() {
        if s.authority_fingerprint != first.authority_fingerprint {
            return Err(ShareError::Mixed(format!(
                "share {} is of the key {}, share {} of {}",
                first.index, first.authority_fingerprint, s.index, s.authority_fingerprint
            )));
        }
        if (s.threshold, s.count) != (first.threshold, first.count) {
            return Err(ShareError::Mixed(format!(
                "share {} is one of {} (threshold {}), share {} one of {} (threshold {})",
                first.index, first.count, first.threshold, s.index, s.count, s.threshold
            )));
        }
        if shares[..i].iter().any(|o| o.index == s.index) {
            return Err(ShareError::Duplicate { index: s.index });
        }
    }
    if shares.len() < usize::from(first.threshold) {
        return Err(ShareError::TooFew {
            have: shares.len(),
            need: first.threshold,
        });
    }
    Ok(())
}

/// Rebuilds the authority private key from opened shares (the first `threshold` of them)
/// and checks it is the key they name.
///
/// # Errors
/// [`ShareError::Duplicate`], [`ShareError::Mixed`], [`ShareError::TooFew`],
/// [`ShareError::NotTheKey`].
pub fn combine(shares: &[OpenedShare]) -> Result<RsaPrivateKey, ShareError> {
    let Some(first) = shares.first() else {
        return Err(ShareError::TooFew { have: 0, need: 2 });
    };
    for (i, s) in shares.iter().enumerate() {
        if s.fingerprint != first.fingerprint || s.threshold != first.threshold {
            return Err(ShareError::Mixed(format!(
                "shares {} and {} differ inside their seals",
                first.index, s.index
            )));
        }
        if s.y.len() != first.y.len() {
            return Err(ShareError::Mixed(format!(
                "shares {} and {} have different lengths",
                first.index, s.index
            )));
        }
        if shares[..i].iter().any(|o| o.index == s.index) {
            return Err(ShareError::Duplicate { index: s.index });
        }
    }
    let need = usize::from(first.threshold);
    if shares.len() < need {
        return Err(ShareError::TooFew {
            have: shares.len(),
            need: first.threshold,
        });
    }
    let points = shares[..need]
        .iter()
        .map(|s| {
            // The crate's byte form of a share: its number, then its bytes.
            let mut bytes = SecretBytes::zeroed(1 + s.y.len());
            bytes.expose_mut()[0] = s.index;
            bytes.expose_mut()[1..].copy_from_slice(s.y.expose());
            blahaj::Share::try_from(bytes.expose()).map_err(|e| ShareError::Mixed(e.to_owned()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let der = blahaj::Sharks(first.threshold)
        .recover(&points)
        .map(SecretBytes::from_vec)
        .map_err(|e| ShareError::NotTheKey(e.to_owned()))?;
    let key = RsaPrivateKey::from_pkcs8_der(der.expose())
        .map_err(|_| ShareError::NotTheKey("the result is not a private key".into()))?;
    let fingerprint =
        key_fingerprint(&key.to_public_key()).map_err(|e| ShareError::NotTheKey(e.to_string()))?;
    if fingerprint != first.fingerprint {
        return Err(ShareError::NotTheKey(
            "its public key has another fingerprint".into(),
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RsaPrivateKey {
        // The test vector's authority key: generating one would take seconds.
        let pem = include_str!("../../../tests/vectors/escrow_authority.key.pem");
        crate::escrow::client::packet::load_private_key(pem, b"tcvault escrow test vector")
            .expect("the test vector key opens")
    }

    fn passes(n: usize) -> Vec<SecretBytes> {
        (1..=n)
            .map(|i| SecretBytes::from_slice(format!("holder {i}").as_bytes()))
            .collect()
    }

    fn open_all(shares: &[SealedShare], which: &[usize]) -> Vec<OpenedShare> {
        which
            .iter()
            .map(|&i| {
                shares[i - 1]
                    .open(format!("holder {i}").as_bytes())
                    .expect("open")
            })
            .collect()
    }

    #[test]
    fn every_two_of_three_rebuild_the_key_and_one_does_not() {
        let key = key();
        let shares = split(&key, 2, &passes(3), Cost::cheapest()).expect("split");
        assert_eq!(
            shares.iter().map(|s| s.index).collect::<Vec<_>>(),
            [1, 2, 3]
        );
        for pair in [[1, 2], [1, 3], [3, 2]] {
            let opened = open_all(&shares, &pair);
            assert_eq!(combine(&opened).expect("combine"), key, "{pair:?}");
        }
        let one = open_all(&shares, &[2]);
        assert!(matches!(
            combine(&one),
            Err(ShareError::TooFew { have: 1, need: 2 })
        ));
        assert!(matches!(
            check_set(&shares[..1]),
            Err(ShareError::TooFew { have: 1, need: 2 })
        ));
    }

    #[test]
    fn three_of_five_and_the_file_round_trip() {
        let key = key();
        let shares = split(&key, 3, &passes(5), Cost::cheapest()).expect("split");
        let reread: Vec<SealedShare> = shares
            .iter()
            .map(|s| SealedShare::parse(&s.to_json().expect("json")).expect("parse"))
            .collect();
        check_set(&reread[1..4]).expect("three distinct shares");
        let opened = open_all(&reread, &[5, 1, 3]);
        assert_eq!(combine(&opened).expect("combine"), key);
        assert!(matches!(
            combine(&open_all(&reread, &[5, 1])),
            Err(ShareError::TooFew { have: 2, need: 3 })
        ));
    }

    #[test]
    fn a_wrong_passphrase_a_duplicate_and_a_share_of_another_split_are_refused() {
        let key = key();
        let shares = split(&key, 2, &passes(3), Cost::cheapest()).expect("split");
        assert!(matches!(
            shares[0].open(b"holder 2"),
            Err(ShareError::WrongPassphrase { index: 1 })
        ));
        let twice = [shares[1].clone(), shares[1].clone()];
        assert!(matches!(
            check_set(&twice),
            Err(ShareError::Duplicate { index: 2 })
        ));
        assert!(matches!(
            combine(&open_all(&twice, &[2, 2])),
            Err(ShareError::Duplicate { index: 2 })
        ));
        // Another split of the same key: its shares do not combine with these.
        let other = split(&key, 2, &passes(3), Cost::cheapest()).expect("split again");
        let mixed = vec![
            shares[0].open(b"holder 1").expect("open"),
            other[1].open(b"holder 2").expect("open"),
        ];
        assert!(matches!(combine(&mixed), Err(ShareError::NotTheKey(_))));
        // A share whose clear number was changed: refused once opened.
        let mut renumbered = shares[2].clone();
        renumbered.index = 1;
        assert!(matches!(
            renumbered.open(b"holder 3"),
            Err(ShareError::Format(_))
        ));
        assert!(matches!(
            split(&key, 1, &passes(3), Cost::cheapest()),
            Err(ShareError::Parameters { .. })
        ));
        assert!(matches!(
            split(&key, 4, &passes(3), Cost::cheapest()),
            Err(ShareError::Parameters { .. })
        ));
        assert!(matches!(
            SealedShare::parse(b"{\"format\": \"x\"}"),
            Err(ShareError::Format(_))
        ));
    }
}
