//! What encrypts a volume: a cipher chain in XTS (TrueCrypt 5+ and every VeraCrypt volume) or,
//! on TrueCrypt volumes before 5.0, a legacy chain in LRW or CBC mode.
//!
//! [`Scheme`] names one; [`SectorCipher`] is one keyed, with the same two operations for every
//! mode: the 448 encrypted bytes of a header, and whole 512-byte data units numbered by the
//! caller (see [`crate::header::layout::DataArea`] for how the numbers start in each mode).

use std::fmt;

use super::chain::{ChainId, XtsChain};
use super::legacy::{LegacyChain, LegacyCipher, LegacyMode};

/// A cipher chain and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// One of the fifteen chains in XTS mode.
    Xts(ChainId),
    /// A TrueCrypt 1.0–4.3 chain in LRW or CBC mode (opened and rewritten, never created).
    Legacy(LegacyChain, LegacyMode),
}

impl Scheme {
    /// Every legacy scheme: each chain in LRW, then each in CBC.
    pub fn all_legacy() -> impl Iterator<Item = Scheme> {
        [LegacyMode::Lrw, LegacyMode::Cbc]
            .into_iter()
            .flat_map(|m| {
                LegacyChain::ALL
                    .into_iter()
                    .map(move |c| Scheme::Legacy(c, m))
            })
    }

    /// The chain's display name (`AES-Twofish`, `AES-Blowfish`, `Triple DES`).
    pub fn name(self) -> String {
        match self {
            Scheme::Xts(c) => c.name(),
            Scheme::Legacy(c, _) => c.name(),
        }
    }

    /// `XTS`, `LRW` or `CBC`.
    pub fn mode_name(self) -> &'static str {
        match self {
            Scheme::Xts(_) => "XTS",
            Scheme::Legacy(_, m) => m.name(),
        }
    }

    /// A stable identifier: the chain name for XTS (as before legacy modes existed, so that
    /// escrow packets and mount state written then still parse), `NAME/MODE` otherwise.
    pub fn id(self) -> String {
        match self {
            Scheme::Xts(c) => c.name(),
            Scheme::Legacy(c, m) => format!("{}/{}", c.name(), m.name()),
        }
    }

    /// Parses [`Scheme::id`] (case-insensitive).
    pub fn from_id(id: &str) -> Option<Scheme> {
        match id.split_once('/') {
            None => ChainId::from_name(id).map(Scheme::Xts),
            Some((c, m)) if m.eq_ignore_ascii_case("xts") => ChainId::from_name(c).map(Scheme::Xts),
            Some((c, m)) => Some(Scheme::Legacy(
                LegacyChain::from_name(c)?,
                LegacyMode::from_name(m)?,
            )),
        }
    }

    /// Bytes of key material the scheme uses, from the start of a derived key or key area.
    pub fn key_material_len(self) -> usize {
        match self {
            Scheme::Xts(c) => c.key_material_len(),
            Scheme::Legacy(c, _) => c.key_material_len(),
        }
    }

    /// How many 64-byte steps of derived key the scheme needs (1–3): trial decryption tests it
    /// as soon as that many bytes are known.
    pub fn stage(self) -> usize {
        self.key_material_len().div_ceil(64)
    }

    /// Whether this is a mode of TrueCrypt before 5.0.
    pub fn is_legacy(self) -> bool {
        matches!(self, Scheme::Legacy(..))
    }

    /// The XTS chain, if this is one.
    pub fn xts(self) -> Option<ChainId> {
        match self {
            Scheme::Xts(c) => Some(c),
            Scheme::Legacy(..) => None,
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Xts(c) => write!(f, "{c}"),
            Scheme::Legacy(c, m) => write!(f, "{} ({} mode)", c.name(), m.name()),
        }
    }
}

/// A scheme keyed: encrypts headers and data units.
#[derive(Debug)]
pub enum SectorCipher {
    /// An XTS chain.
    Xts(XtsChain),
    /// A legacy chain in LRW or CBC mode (boxed: its key schedules are large).
    Legacy(Box<LegacyCipher>),
}

impl SectorCipher {
    /// Keys `scheme` from `key_material` (a derived header key or a key area).
    ///
    /// # Errors
    /// The length needed when `key_material` is too short.
    pub fn new(scheme: Scheme, key_material: &[u8]) -> Result<SectorCipher, usize> {
        Ok(match scheme {
            Scheme::Xts(c) => SectorCipher::Xts(XtsChain::new(c, key_material)?),
            Scheme::Legacy(c, m) => {
                SectorCipher::Legacy(Box::new(LegacyCipher::new(c, m, key_material)?))
            }
        })
    }

    /// The scheme it was keyed for.
    pub fn scheme(&self) -> Scheme {
        match self {
            SectorCipher::Xts(x) => Scheme::Xts(x.id()),
            SectorCipher::Legacy(l) => Scheme::Legacy(l.chain(), l.mode()),
        }
    }

    /// Encrypts the 448 bytes that follow a header's salt.
    pub fn encrypt_header(&self, buf: &mut [u8]) {
        match self {
            SectorCipher::Xts(x) => x.encrypt(buf, 0),
            SectorCipher::Legacy(l) => l.encrypt_header(buf),
        }
    }

    /// Decrypts the 448 bytes that follow a header's salt.
    pub fn decrypt_header(&self, buf: &mut [u8]) {
        match self {
            SectorCipher::Xts(x) => x.decrypt(buf, 0),
            SectorCipher::Legacy(l) => l.decrypt_header(buf),
        }
    }

    /// Encrypts whole 512-byte data units in place; `unit` numbers the first of them.
    pub fn encrypt(&self, buf: &mut [u8], unit: u64) {
        match self {
            SectorCipher::Xts(x) => x.encrypt(buf, unit),
            SectorCipher::Legacy(l) => l.encrypt_sectors(buf, unit),
        }
    }

    /// Decrypts whole 512-byte data units in place; `unit` numbers the first of them.
    pub fn decrypt(&self, buf: &mut [u8], unit: u64) {
        match self {
            SectorCipher::Xts(x) => x.decrypt(buf, unit),
            SectorCipher::Legacy(l) => l.decrypt_sectors(buf, unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip() {
        for c in ChainId::ALL {
            let s = Scheme::Xts(c);
            assert_eq!(s.id(), c.name());
            assert_eq!(Scheme::from_id(&s.id()), Some(s));
        }
        for s in Scheme::all_legacy() {
            assert_eq!(Scheme::from_id(&s.id()), Some(s), "{}", s.id());
            assert!(s.stage() <= 3, "{s} needs more than 192 derived bytes");
        }
        assert_eq!(Scheme::all_legacy().count(), 26);
        assert_eq!(Scheme::from_id("aes/xts"), Some(Scheme::Xts(ChainId::Aes)));
        assert_eq!(Scheme::from_id("AES/ECB"), None);
        assert_eq!(Scheme::from_id("Blowfish"), None);
    }
}
