//! Secret-holding types: passwords, PIMs, keyfile pools and key material.
//!
//! Every type here wipes its bytes on drop, prints as `<redacted>` in `Debug`, and asks the OS to
//! keep its heap buffer out of swap (`mlock`) where that is allowed. Nothing in the crate stores a
//! secret in a plain `Vec<u8>`.

use std::fmt;

use zeroize::{Zeroize, Zeroizing};

/// The longest password VeraCrypt accepts for non-system volumes (format.md §4).
pub const MAX_PASSWORD_LEN: usize = 128;

/// Bytes that must never reach a log, a swap file or a terminal.
///
/// The buffer is allocated once at its final capacity, locked in memory where the OS allows, and
/// zeroized (then unlocked) on drop.
pub struct SecretBytes {
    bytes: Zeroizing<Vec<u8>>,
    locked: bool,
}

impl SecretBytes {
    /// A zero-filled secret buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        let bytes = Zeroizing::new(vec![0u8; len]);
        let locked = lock(&bytes);
        SecretBytes { bytes, locked }
    }

    /// Copies `data` into a new secret buffer. The caller remains responsible for wiping `data`.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut s = Self::zeroed(data.len());
        s.bytes.copy_from_slice(data);
        s
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        &self.bytes
    }

    /// The secret bytes, writable.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.bytes.zeroize();
        if self.locked {
            unlock(&self.bytes);
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.bytes.len())
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time in the contents (lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        self.bytes.len() == other.bytes.len()
            && self
                .bytes
                .iter()
                .zip(other.bytes.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
impl Eq for SecretBytes {}

fn lock(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return false;
    }
    // SAFETY: the pointer and length describe a live allocation owned by the caller; mlock only
    // changes paging attributes and never reads or writes the memory.
    unsafe { libc::mlock(buf.as_ptr().cast(), buf.len()) == 0 }
}

fn unlock(buf: &[u8]) {
    // SAFETY: as in `lock`; the range was locked by `lock` on the same allocation.
    unsafe {
        libc::munlock(buf.as_ptr().cast(), buf.len());
    }
}

/// A volume password: its UTF-8 bytes as typed (VeraCrypt hashes the bytes, no normalisation).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(SecretBytes);

/// Why a password was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Longer than the format allows.
    #[error("the password is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// Length in bytes of the given password.
        len: usize,
        /// The limit for this format.
        max: usize,
    },
}

impl Password {
    /// Wraps password bytes, refusing more than [`MAX_PASSWORD_LEN`] bytes.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] when `bytes` exceeds the limit.
    pub fn new(bytes: &[u8]) -> Result<Self, PasswordError> {
        if bytes.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong {
                len: bytes.len(),
                max: MAX_PASSWORD_LEN,
            });
        }
        Ok(Password(SecretBytes::from_slice(bytes)))
    }

    /// The empty password (allowed only together with keyfiles).
    pub fn empty() -> Self {
        Password(SecretBytes::zeroed(0))
    }

    /// The password bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Personal Iterations Multiplier; 0 means "the default iteration count".
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Pim(u32);

impl Pim {
    /// The largest PIM accepted; VeraCrypt's own limit for non-system volumes is 2,147,468 but
    /// anything beyond this takes hours to derive and is almost certainly a typo.
    pub const MAX: u32 = 2_147_468;

    /// A PIM value.
    ///
    /// # Errors
    /// Returns the value back when it exceeds [`Pim::MAX`].
    pub fn new(value: u32) -> Result<Self, u32> {
        if value > Self::MAX {
            Err(value)
        } else {
            Ok(Pim(value))
        }
    }

    /// The numeric value (0 = default).
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Pim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A PIM is part of the credential: do not print it.
        f.write_str("Pim(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret() {
        let p = Password::new(b"hunter2-secret").expect("short password");
        assert!(!format!("{p:?}").contains("hunter2"));
        let s = SecretBytes::from_slice(b"topsecretkey");
        assert!(!format!("{s:?}").contains("topsecret"));
        let pim = Pim::new(485).expect("valid pim");
        assert!(!format!("{pim:?}").contains("485"));
    }

    #[test]
    fn password_length_limit() {
        assert!(Password::new(&[b'a'; 128]).is_ok());
        assert_eq!(
            Password::new(&[b'a'; 129]).err(),
            Some(PasswordError::TooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn secret_equality() {
        assert_eq!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"abc")
        );
        assert_ne!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"abd")
        );
        assert_ne!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"ab")
        );
    }
}
