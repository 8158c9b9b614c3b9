//! Writing headers: a fresh random salt, the header key derived from it, the serialized header
//! encrypted with that key, and a check that the result decrypts back (through the same trial
//! decryption every reader uses) before anyone writes it.
//!
//! Also makes the pieces a new volume needs: random master keys (never with equal XTS halves)
//! and the random-keyed "fake" headers that fill unused hidden-header slots, so that a slot
//! holding a hidden volume cannot be told from one that does not.

use super::format::{Header, KEY_AREA_LEN};
use super::kdf::{Family, Kdf};
use super::layout::{HEADER_SIZE, SALT_LEN, Slot};
use super::unlock::{Candidate, Credentials, DERIVED_KEY_LEN, UnlockOptions, unlock};
use crate::crypto::chain::ChainId;
use crate::crypto::cipher::CipherId;
use crate::crypto::kdf::{Prf, argon2id, pbkdf2};
use crate::crypto::random::{self, RandomError};
use crate::crypto::scheme::{Scheme, SectorCipher};
use crate::secret::SecretBytes;

/// The program version VeraCrypt writes in new headers (docs/format.md §1).
pub const VERACRYPT_MIN_PROGRAM_VERSION: u16 = 0x010B;
/// The program version TrueCrypt 7 writes in new headers (docs/format.md §1).
pub const TRUECRYPT_MIN_PROGRAM_VERSION: u16 = 0x0700;
/// The header format version written today (docs/format.md §1).
pub const CURRENT_HEADER_VERSION: u16 = 5;

/// Why a header could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// No random bytes.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// The family has no such key derivation (e.g. TrueCrypt with Argon2id or a PIM).
    #[error("{family} volumes cannot use {prf} with PIM {pim}")]
    NoSuchKdf {
        /// Family asked for.
        family: &'static str,
        /// PRF asked for.
        prf: &'static str,
        /// PIM asked for.
        pim: u32,
    },
    /// The chain does not exist in the family (TrueCrypt has the first eight).
    #[error("{family} volumes cannot use the cipher {chain}")]
    NoSuchChain {
        /// Family asked for.
        family: &'static str,
        /// Chain asked for.
        chain: String,
    },
    /// The password is longer than the family allows (TrueCrypt: 64 bytes).
    #[error("the password is too long for a {0} volume (at most 64 bytes)")]
    PasswordTooLong(&'static str),
    /// Key derivation failed (Argon2id memory).
    #[error("key derivation failed: {0}")]
    Kdf(String),
    /// The sealed header did not decrypt back to the same header. Never expected: it means a
    /// bug or failing memory, and nothing was written.
    #[error("the new header did not verify after encryption; nothing was written")]
    Verify,
}

/// How a header is protected: family (magic and counts), key derivation and cipher chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protection {
    /// VeraCrypt or TrueCrypt.
    pub family: Family,
    /// The key derivation (PRF and its cost).
    pub kdf: Kdf,
    /// The cipher chain and mode of both the header and the data.
    pub scheme: Scheme,
}

impl Protection {
    /// Unlock options that try only this protection: how a header just written with it is
    /// opened again to check it.
    pub fn only(self) -> UnlockOptions {
        UnlockOptions {
            family: Some(self.family),
            prf: Some(self.kdf.prf()),
            scheme: Some(self.scheme),
            ..UnlockOptions::default()
        }
    }

    /// The protection for `family`, `prf` and `pim`, checked against what the family allows.
    ///
    /// # Errors
    /// [`SealError::NoSuchKdf`] or [`SealError::NoSuchChain`].
    pub fn new(family: Family, prf: Prf, pim: u32, chain: ChainId) -> Result<Self, SealError> {
        Self::for_scheme(family, prf, pim, Scheme::Xts(chain))
    }

    /// As [`Protection::new`] for any scheme: the legacy LRW and CBC schemes exist only in
    /// TrueCrypt volumes, and only they may keep SHA-1 (TrueCrypt before 5.0).
    ///
    /// # Errors
    /// [`SealError::NoSuchKdf`] or [`SealError::NoSuchChain`].
    pub fn for_scheme(
        family: Family,
        prf: Prf,
        pim: u32,
        scheme: Scheme,
    ) -> Result<Self, SealError> {
        let kdf = Kdf::for_header(family, prf, pim, false)
            .filter(|_| prf != Prf::Sha1 || scheme.is_legacy())
            .ok_or(SealError::NoSuchKdf {
                family: family.id(),
                prf: prf.id(),
                pim,
            })?;
        let known = match scheme {
            Scheme::Xts(c) => family == Family::VeraCrypt || c.in_truecrypt(),
            Scheme::Legacy(..) => family == Family::TrueCrypt,
        };
        if !known {
            return Err(SealError::NoSuchChain {
                family: family.id(),
                chain: scheme.to_string(),
            });
        }
        Ok(Protection {
            family,
            kdf,
            scheme,
        })
    }
}

/// Random master keys for `chain`: a 256-byte key area with the chain's primary keys, then its
/// secondary keys, zero after. Drawn again in the (astronomically unlikely) case that a
/// cipher's primary and secondary keys are equal, which VeraCrypt refuses (docs/format.md §6).
///
/// # Errors
/// No random bytes.
pub fn random_key_area(chain: ChainId) -> Result<SecretBytes, RandomError> {
    let mut area = SecretBytes::zeroed(KEY_AREA_LEN);
    let k = chain.key_material_len();
    loop {
        random::fill(&mut area.expose_mut()[..k])?;
        if !has_equal_xts_halves(chain, area.expose()) {
            return Ok(area);
        }
    }
}

/// Whether any cipher of `chain` would get equal primary and secondary keys from `key_area`.
pub fn has_equal_xts_halves(chain: ChainId, key_area: &[u8]) -> bool {
    let half = chain.key_material_len() / 2;
    let n = chain.ciphers().len();
    (0..n).any(|i| {
        let p = &key_area[i * CipherId::KEY_LEN..(i + 1) * CipherId::KEY_LEN];
        let s = &key_area[half + i * CipherId::KEY_LEN..half + (i + 1) * CipherId::KEY_LEN];
        p == s
    }) || key_area[..half] == key_area[half..2 * half]
}

/// Derives the header key of `creds` for `kdf` and `salt` (all 192 bytes).
fn derive(
    family: Family,
    kdf: Kdf,
    creds: &Credentials,
    salt: &[u8; SALT_LEN],
) -> Result<SecretBytes, SealError> {
    let password = creds
        .for_family(family)
        .ok_or(SealError::PasswordTooLong(family.id()))?;
    let mut key = SecretBytes::zeroed(DERIVED_KEY_LEN);
    match kdf {
        Kdf::Pbkdf2 { prf, iterations } => {
            pbkdf2(prf, password.expose(), salt, iterations, key.expose_mut());
        }
        Kdf::Argon2id(p) => argon2id(password.expose(), salt, p, key.expose_mut())
            .map_err(|e| SealError::Kdf(e.to_string()))?,
    }
    Ok(key)
}

/// Encrypts `header` under `creds` with a fresh random salt and checks that the result opens
/// with `creds` (full key derivation again, through [`unlock`]) and decrypts to the same
/// fields and keys. The header's family must match `prot.family`.
///
/// # Errors
/// See [`SealError`].
pub fn seal(
    header: &Header,
    prot: Protection,
    creds: &Credentials,
) -> Result<[u8; HEADER_SIZE], SealError> {
    let mut salt = [0u8; SALT_LEN];
    random::fill(&mut salt)?;
    let key = derive(prot.family, prot.kdf, creds, &salt)?;
    let sealed = encrypt_with(header, prot.scheme, key.expose(), &salt);
    verify(&sealed, header, prot, creds)?;
    Ok(sealed)
}

/// Encrypts `header` exactly as it was once stored: under the derived `header_key` it was
/// sealed with, behind its old `salt` (an escrowed header put back so that the password of the
/// time opens it again). Checked by decrypting the result under the same key. No key
/// derivation runs: the key is given.
///
/// # Errors
/// [`SealError::Verify`] when the result does not decrypt to `header` (a key that is not the
/// scheme's, or too short).
pub fn seal_as_before(
    header: &Header,
    scheme: Scheme,
    salt: &[u8; SALT_LEN],
    header_key: &SecretBytes,
) -> Result<[u8; HEADER_SIZE], SealError> {
    let sealed = encrypt_with(header, scheme, header_key.expose(), salt);
    let cipher = SectorCipher::new(scheme, header_key.expose()).map_err(|_| SealError::Verify)?;
    let mut plain = SecretBytes::from_slice(&sealed);
    cipher.decrypt_header(&mut plain.expose_mut()[SALT_LEN..]);
    let bytes: &[u8; HEADER_SIZE] = plain.expose().try_into().map_err(|_| SealError::Verify)?;
    match Header::parse(bytes) {
        Ok(back) if back == *header => Ok(sealed),
        _ => Err(SealError::Verify),
    }
}

fn encrypt_with(
    header: &Header,
    scheme: Scheme,
    header_key: &[u8],
    salt: &[u8; SALT_LEN],
) -> [u8; HEADER_SIZE] {
    let mut plain = header.serialize(salt);
    // The key length always suffices: `header_key` is DERIVED_KEY_LEN (192) bytes. Should it
    // not, the header stays unencrypted and the verification after sealing refuses it.
    if let Ok(cipher) = SectorCipher::new(scheme, header_key) {
        cipher.encrypt_header(&mut plain.expose_mut()[SALT_LEN..]);
    }
    let mut out = [0u8; HEADER_SIZE];
    out.copy_from_slice(plain.expose());
    out
}

fn verify(
    sealed: &[u8; HEADER_SIZE],
    header: &Header,
    prot: Protection,
    creds: &Credentials,
) -> Result<(), SealError> {
    let cand = Candidate {
        slot: Slot::Normal,
        bytes: *sealed,
    };
    let back = unlock(&[cand], creds, &prot.only()).map_err(|_| SealError::Verify)?;
    if back.header != *header || back.kdf != prot.kdf || back.scheme != prot.scheme {
        return Err(SealError::Verify);
    }
    Ok(())
}

/// A header encrypted under random keys with a random salt: what fills an unused hidden-header
/// slot (docs/format.md §2). Nobody can open it; it looks like a real one.
///
/// # Errors
/// No random bytes.
pub fn fake_header() -> Result<[u8; HEADER_SIZE], RandomError> {
    let chain = ChainId::Aes;
    let header = Header {
        family: Family::VeraCrypt,
        version: CURRENT_HEADER_VERSION,
        min_program_version: VERACRYPT_MIN_PROGRAM_VERSION,
        legacy_times: [0; 16],
        hidden_volume_size: 0,
        volume_size: 0,
        encrypted_area_start: 0,
        encrypted_area_length: 0,
        flags: 0,
        sector_size: 512,
        key_area: random_key_area(chain)?,
    };
    let mut salt = [0u8; SALT_LEN];
    random::fill(&mut salt)?;
    let mut key = SecretBytes::zeroed(DERIVED_KEY_LEN);
    random::fill(key.expose_mut())?;
    Ok(encrypt_with(
        &header,
        Scheme::Xts(chain),
        key.expose(),
        &salt,
    ))
}

/// A new header for a data area of `data_len` bytes at absolute `data_start`, with fresh master
/// keys. `hidden` makes it a hidden volume's header (its hidden-size field holds `data_len`).
///
/// # Errors
/// No random bytes.
pub fn new_header(
    prot: Protection,
    data_start: u64,
    data_len: u64,
    hidden: bool,
    sector_size: u32,
) -> Result<Header, RandomError> {
    Ok(Header {
        family: prot.family,
        version: CURRENT_HEADER_VERSION,
        min_program_version: match prot.family {
            Family::VeraCrypt => VERACRYPT_MIN_PROGRAM_VERSION,
            Family::TrueCrypt => TRUECRYPT_MIN_PROGRAM_VERSION,
        },
        legacy_times: [0; 16],
        hidden_volume_size: if hidden { data_len } else { 0 },
        volume_size: data_len,
        encrypted_area_start: data_start,
        encrypted_area_length: data_len,
        flags: 0,
        sector_size,
        key_area: match prot.scheme {
            Scheme::Xts(chain) => random_key_area(chain)?,
            Scheme::Legacy(..) => {
                let mut area = SecretBytes::zeroed(KEY_AREA_LEN);
                random::fill(&mut area.expose_mut()[..prot.scheme.key_material_len()])?;
                area
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Password;

    fn creds() -> Credentials {
        let pw = Password::new(b"seal test").expect("short password");
        Credentials::new(&pw, &[], 1).expect("credentials")
    }

    #[test]
    fn sealed_header_opens_and_salts_differ() {
        let prot = Protection::new(Family::VeraCrypt, Prf::Sha256, 1, ChainId::SerpentAes)
            .expect("valid protection");
        let h = new_header(prot, 131_072, 1 << 20, false, 512).expect("random");
        let a = seal(&h, prot, &creds()).expect("seal");
        let b = seal(&h, prot, &creds()).expect("seal");
        assert_ne!(a[..SALT_LEN], b[..SALT_LEN], "each seal draws a new salt");
        assert_ne!(a[SALT_LEN..], b[SALT_LEN..]);
    }

    #[test]
    fn truecrypt_refuses_what_it_never_had() {
        assert!(Protection::new(Family::TrueCrypt, Prf::Sha256, 0, ChainId::Aes).is_err());
        assert!(Protection::new(Family::TrueCrypt, Prf::Sha512, 5, ChainId::Aes).is_err());
        assert!(Protection::new(Family::TrueCrypt, Prf::Argon2id, 0, ChainId::Aes).is_err());
        let camellia = ChainId::ALL
            .into_iter()
            .find(|c| !c.in_truecrypt())
            .expect("a VeraCrypt-only chain");
        assert!(Protection::new(Family::TrueCrypt, Prf::Sha512, 0, camellia).is_err());
        assert!(Protection::new(Family::TrueCrypt, Prf::Whirlpool, 0, ChainId::Aes).is_ok());
    }

    #[test]
    fn equal_halves_are_detected() {
        let chain = ChainId::Aes;
        let mut area = [7u8; 256];
        assert!(has_equal_xts_halves(chain, &area));
        area[40] = 8;
        assert!(!has_equal_xts_halves(chain, &area));
        let k = random_key_area(chain).expect("random");
        assert!(!has_equal_xts_halves(chain, k.expose()));
        assert!(
            k.expose()[chain.key_material_len()..]
                .iter()
                .all(|&b| b == 0)
        );
    }
}
