//! The keyfile pool (docs/format.md §5): keyfiles are mixed into the password before PBKDF2.
//!
//! Each keyfile is hashed on its own with a running CRC-32 whose four bytes, after every input
//! byte, are added (mod 256) into the pool at a rotating position. Addition commutes, so the
//! order of keyfiles does not matter and a keyfile named twice counts twice.

use std::io::{self, Read};

use crate::secret::SecretBytes;

/// Only the first MiB of a keyfile counts.
pub const KEYFILE_MAX_BYTES: u64 = 1024 * 1024;
/// Pool size for passwords of up to 64 bytes, and always for TrueCrypt.
pub const POOL_SIZE_SMALL: usize = 64;
/// Pool size when the password is longer than 64 bytes (VeraCrypt only).
pub const POOL_SIZE_LARGE: usize = 128;

/// Reflected CRC-32 table (polynomial 0xEDB88320).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Why a keyfile could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileError {
    /// The keyfile has no bytes; the format rejects it because it would change nothing.
    #[error("the keyfile is empty")]
    Empty,
    /// Reading the keyfile failed.
    #[error("could not read the keyfile")]
    Io(#[source] io::Error),
}

/// A password being mixed with keyfiles.
#[derive(Debug)]
pub struct KeyfilePool {
    pool: SecretBytes,
}

impl KeyfilePool {
    /// Starts a pool of `size` bytes holding `password`, zero-padded.
    ///
    /// # Panics
    /// If the password does not fit (callers size the pool from the password length).
    pub fn new(password: &[u8], size: usize) -> Self {
        assert!(
            password.len() <= size,
            "pool sized from the password length"
        );
        let mut pool = SecretBytes::zeroed(size);
        pool.expose_mut()[..password.len()].copy_from_slice(password);
        KeyfilePool { pool }
    }

    /// The pool size VeraCrypt uses for a password of `password_len` bytes.
    pub fn size_for(password_len: usize, truecrypt: bool) -> usize {
        if truecrypt || password_len <= POOL_SIZE_SMALL {
            POOL_SIZE_SMALL
        } else {
            POOL_SIZE_LARGE
        }
    }

    /// Mixes one keyfile (its first [`KEYFILE_MAX_BYTES`] bytes) into the pool.
    ///
    /// # Errors
    /// [`KeyfileError::Empty`] for an empty keyfile, [`KeyfileError::Io`] when reading fails.
    pub fn add<R: Read>(&mut self, keyfile: R) -> Result<(), KeyfileError> {
        let size = self.pool.len();
        let pool = self.pool.expose_mut();
        let mut reader = keyfile.take(KEYFILE_MAX_BYTES);
        let mut buf = SecretBytes::zeroed(64 * 1024);
        let mut crc: u32 = 0xFFFF_FFFF;
        let mut pos = 0usize;
        let mut total = 0u64;
        loop {
            let n = match reader.read(buf.expose_mut()) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(KeyfileError::Io(e)),
            };
            total += n as u64;
            for &b in &buf.expose()[..n] {
                crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
                for byte in crc.to_be_bytes() {
                    pool[pos] = pool[pos].wrapping_add(byte);
                    pos += 1;
                    if pos == size {
                        pos = 0;
                    }
                }
            }
        }
        if total == 0 {
            return Err(KeyfileError::Empty);
        }
        Ok(())
    }

    /// The mixed pool: the PBKDF2 password (all of it, trailing zeros included).
    pub fn into_secret(self) -> SecretBytes {
        self.pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_table_matches_crc32() {
        // Running the table with the final inversion must give the standard CRC-32.
        let mut crc = 0xFFFF_FFFFu32;
        for &b in b"123456789" {
            crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
        }
        assert_eq!(!crc, 0xCBF4_3926);
    }

    #[test]
    fn order_does_not_matter_and_twice_counts_twice() {
        let mut a = KeyfilePool::new(b"pw", 64);
        a.add(&b"first keyfile"[..]).expect("in-memory read");
        a.add(&b"second"[..]).expect("in-memory read");
        let mut b = KeyfilePool::new(b"pw", 64);
        b.add(&b"second"[..]).expect("in-memory read");
        b.add(&b"first keyfile"[..]).expect("in-memory read");
        assert_eq!(a.into_secret(), b.into_secret());

        let mut once = KeyfilePool::new(b"pw", 64);
        once.add(&b"k"[..]).expect("in-memory read");
        let mut twice = KeyfilePool::new(b"pw", 64);
        twice.add(&b"k"[..]).expect("in-memory read");
        twice.add(&b"k"[..]).expect("in-memory read");
        assert_ne!(once.into_secret(), twice.into_secret());
    }

    #[test]
    fn empty_keyfile_is_refused() {
        let mut p = KeyfilePool::new(b"pw", 64);
        assert!(matches!(p.add(&b""[..]), Err(KeyfileError::Empty)));
    }

    #[test]
    fn only_first_mib_counts() {
        let big = vec![0xA5u8; 1024 * 1024 + 4096];
        let mut a = KeyfilePool::new(b"", 64);
        a.add(&big[..]).expect("in-memory read");
        let mut b = KeyfilePool::new(b"", 64);
        b.add(&big[..1024 * 1024]).expect("in-memory read");
        assert_eq!(a.into_secret(), b.into_secret());
    }

    #[test]
    fn pool_sizes() {
        assert_eq!(KeyfilePool::size_for(64, false), 64);
        assert_eq!(KeyfilePool::size_for(65, false), 128);
        assert_eq!(KeyfilePool::size_for(100, true), 64);
    }
}
