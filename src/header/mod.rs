//! Layer 2: header bytes ⇄ typed headers, and trial decryption.
//!
//! [`layout`] says where headers and data live, [`format`] parses and serializes the 512-byte
//! header, [`kdf`] maps family, PRF and PIM to a key derivation, and [`unlock`] finds the header a
//! password opens.

pub mod format;
pub mod kdf;
pub mod layout;
pub mod unlock;

pub use format::{Header, HeaderError};
pub use kdf::{Family, Kdf};
pub use layout::{HostKind, Slot};
pub use unlock::{Candidate, Credentials, UnlockError, UnlockOptions, UnlockedHeader, unlock};
