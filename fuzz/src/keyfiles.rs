//! Keyfiles: the pool ([`KeyfilePool`]), reading keyfiles and keyfile folders from disk
//! ([`read_keyfiles`]) and credentials made with them ([`Credentials::new`]). The order of
//! keyfiles does not matter, how a reader splits its bytes does not matter, an empty keyfile is
//! refused by its position, a folder gives its files sorted by name without dot-files, and the
//! TrueCrypt form exists exactly for passwords of at most 64 bytes.

use std::io::{self, Read};

use tcvault::crypto::keyfile::{KeyfileError, KeyfilePool};
use tcvault::header::kdf::Family;
use tcvault::header::unlock::{Credentials, CredentialsError};
use tcvault::secret::{MAX_PASSWORD_LEN, Password, SecretBytes};
use tcvault::volume::keyfiles::{KeyfileReadError, read_keyfiles};

use super::common::{Input, scratch_file};

/// A reader that hands out its bytes in pieces of the given sizes, with an interruption
/// before each piece.
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    next: usize,
    interrupted: bool,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted {
            self.interrupted = true;
            return Err(io::Error::from(io::ErrorKind::Interrupted));
        }
        self.interrupted = false;
        let size = usize::from(
            self.sizes
                .get(self.next % self.sizes.len().max(1))
                .copied()
                .unwrap_or(1),
        )
        .max(1);
        self.next += 1;
        let n = size.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn pool(password: &[u8], size: usize, keyfiles: &[&[u8]]) -> Result<SecretBytes, KeyfileError> {
    let mut p = KeyfilePool::new(password, size);
    for k in keyfiles {
        p.add(*k)?;
    }
    Ok(p.into_secret())
}

/// Input: password length (then the password), keyfile count (up to 6, then each keyfile's
/// length as two bytes and its bytes), then the piece sizes for the split reader.
pub fn check(data: &[u8]) {
    let mut inp = Input::new(data);
    let pw_len = usize::from(inp.byte()) % (MAX_PASSWORD_LEN + 1);
    let password = inp.take(pw_len);
    let count = usize::from(inp.byte() % 7);
    let keyfiles: Vec<&[u8]> = (0..count)
        .map(|_| {
            let n = usize::from(inp.u16() % 2048);
            inp.take(n)
        })
        .collect();
    let sizes = inp.rest();

    // The pool: order and reader splits do not matter; an empty keyfile is refused.
    for truecrypt in [false, true] {
        if truecrypt && password.len() > 64 {
            continue;
        }
        let size = KeyfilePool::size_for(password.len(), truecrypt);
        let forward = pool(password, size, &keyfiles);
        let mut reversed_files = keyfiles.clone();
        reversed_files.reverse();
        let reversed = pool(password, size, &reversed_files);
        let empty = keyfiles.iter().any(|k| k.is_empty());
        match (&forward, &reversed) {
            (Ok(a), Ok(b)) => {
                assert!(!empty);
                assert_eq!(a, b, "the order of keyfiles changed the pool");
                assert_eq!(a.len(), size);
                let mut split = KeyfilePool::new(password, size);
                for k in &keyfiles {
                    split
                        .add(Pieces {
                            data: k,
                            sizes,
                            next: 0,
                            interrupted: false,
                        })
                        .expect("a split reader");
                }
                assert_eq!(
                    &split.into_secret(),
                    a,
                    "how the reader split the bytes mattered"
                );
            }
            (Err(KeyfileError::Empty), Err(KeyfileError::Empty)) => assert!(empty),
            _ => panic!("the pool refused one order and not the other"),
        }
    }

    // Credentials: the TrueCrypt form exists exactly for passwords of at most 64 bytes, an
    // empty keyfile is named by its position, and the order does not matter.
    let pw = Password::new(password).expect("at most 128 bytes");
    let secrets: Vec<SecretBytes> = keyfiles
        .iter()
        .map(|k| SecretBytes::from_slice(k))
        .collect();
    match Credentials::new(&pw, &secrets, 0) {
        Ok(c) => {
            assert!(!password.is_empty() || !keyfiles.is_empty());
            assert_eq!(
                c.for_family(Family::TrueCrypt).is_some(),
                password.len() <= 64
            );
            if keyfiles.is_empty() {
                assert_eq!(
                    c.for_family(Family::VeraCrypt).map(SecretBytes::expose),
                    Some(password)
                );
            }
            let mut rev = secrets.clone();
            rev.reverse();
            let r = Credentials::new(&pw, &rev, 0).expect("the same keyfiles reversed");
            for f in [Family::VeraCrypt, Family::TrueCrypt] {
                assert_eq!(c.for_family(f), r.for_family(f));
            }
        }
        Err(CredentialsError::EmptyPassword) => assert!(password.is_empty() && keyfiles.is_empty()),
        Err(CredentialsError::Keyfile { index, source }) => {
            assert!(matches!(source, KeyfileError::Empty));
            assert_eq!(Some(index), keyfiles.iter().position(|k| k.is_empty()));
        }
    }

    from_disk(&keyfiles);
}

/// Keyfiles written to disk read back the same, one by one and as a folder.
fn from_disk(keyfiles: &[&[u8]]) {
    let dir = scratch_file("keyfiles");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("folder");
    let mut paths = Vec::new();
    for (i, k) in keyfiles.iter().enumerate() {
        // Names that sort differently from their order: z5, y4, ...
        let p = dir.join(format!("{}{i}", char::from(b'z' - i as u8)));
        std::fs::write(&p, k).expect("write keyfile");
        paths.push(p);
    }
    std::fs::write(dir.join(".hidden"), b"dot-files are not keyfiles").expect("dot-file");
    let first_empty = keyfiles.iter().position(|k| k.is_empty());
    match read_keyfiles(&paths) {
        Ok(read) => {
            assert!(first_empty.is_none());
            let got: Vec<&[u8]> = read.iter().map(SecretBytes::expose).collect();
            assert_eq!(got, keyfiles, "keyfiles read back differently");
        }
        Err(KeyfileReadError::Empty { path }) => {
            assert_eq!(Some(path), first_empty.map(|i| paths[i].clone()));
        }
        Err(e) => panic!("unexpected error: {e}"),
    }
    let sorted: Vec<&[u8]> = {
        let mut named: Vec<(&std::path::PathBuf, &[u8])> =
            paths.iter().zip(keyfiles.iter().copied()).collect();
        named.sort();
        named.into_iter().map(|(_, k)| k).collect()
    };
    match read_keyfiles(std::slice::from_ref(&dir)) {
        Ok(read) => {
            let got: Vec<&[u8]> = read.iter().map(SecretBytes::expose).collect();
            assert_eq!(got, sorted, "a keyfile folder read back differently");
        }
        Err(KeyfileReadError::EmptyDirectory { .. }) => assert!(keyfiles.is_empty()),
        Err(KeyfileReadError::Empty { .. }) => assert!(first_empty.is_some()),
        Err(e) => panic!("unexpected error: {e}"),
    }
}
