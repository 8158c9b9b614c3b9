//! Layer 2: header bytes ⇄ typed headers, and trial decryption.
//!
//! [`layout`] says where headers and data live, [`format`](mod@format) parses and serializes the 512-byte
//! header, [`kdf`] maps family, PRF and PIM to a key derivation, [`unlock`](mod@unlock) finds the header a
//! password opens, and [`seal`] encrypts new headers and checks them before they are written.

pub mod format;
pub mod kdf;
pub mod layout;
pub mod seal;
pub mod unlock;

pub use format::{Header, HeaderError};
pub use kdf::{Family, Kdf};
pub use layout::{HeaderRole, HostKind, Slot};
pub use seal::{Protection, SealError};
pub use unlock::{Candidate, Credentials, UnlockError, UnlockOptions, UnlockedHeader, unlock};
