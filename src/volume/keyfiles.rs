//! Reading keyfiles from disk: files, and directories (every file directly inside, skipping
//! dot-files; docs/format.md §5). Contents are read into secret buffers, at most the first MiB
//! each.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::crypto::keyfile::KEYFILE_MAX_BYTES;
use crate::secret::SecretBytes;

/// Why a keyfile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum KeyfileReadError {
    /// The keyfile does not exist.
    #[error("keyfile {path}: no such file or directory")]
    NotFound {
        /// The path given.
        path: PathBuf,
    },
    /// The keyfile is empty.
    #[error("keyfile {path}: is empty (an empty keyfile would add nothing)")]
    Empty {
        /// The path given.
        path: PathBuf,
    },
    /// A keyfile directory holds no usable file.
    #[error("keyfile directory {path}: holds no files")]
    EmptyDirectory {
        /// The path given.
        path: PathBuf,
    },
    /// Not a regular file or block device (a FIFO, socket or character device would never
    /// end, or block forever).
    #[error("keyfile {path}: not a regular file or block device")]
    NotAFile {
        /// The path given.
        path: PathBuf,
    },
    /// Reading failed.
    #[error("keyfile {path}: cannot read")]
    Io {
        /// The path given.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Reads every keyfile named by `paths`, expanding directories, in a stable order.
///
/// # Errors
/// A missing, empty or unreadable keyfile, or a directory with no files.
pub fn read_keyfiles(paths: &[PathBuf]) -> Result<Vec<SecretBytes>, KeyfileReadError> {
    let mut out = Vec::new();
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| io_err(path, e))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(|e| io_err(path, e))?
                .filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect();
            if files.is_empty() {
                return Err(KeyfileReadError::EmptyDirectory { path: path.clone() });
            }
            files.sort();
            for f in files {
                out.push(read_one(&f)?);
            }
        } else {
            out.push(read_one(path)?);
        }
    }
    Ok(out)
}

fn read_one(path: &Path) -> Result<SecretBytes, KeyfileReadError> {
    use std::os::unix::fs::FileTypeExt;
    let file = super::open_without_blocking(path, false).map_err(|e| io_err(path, e))?;
    let kind = file.metadata().map_err(|e| io_err(path, e))?.file_type();
    if !kind.is_file() && !kind.is_block_device() {
        return Err(KeyfileReadError::NotAFile {
            path: path.to_path_buf(),
        });
    }
    let mut buf = SecretBytes::zeroed(KEYFILE_MAX_BYTES as usize);
    let mut reader = file.take(KEYFILE_MAX_BYTES);
    let mut filled = 0;
    loop {
        match reader.read(&mut buf.expose_mut()[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_err(path, e)),
        }
    }
    if filled == 0 {
        return Err(KeyfileReadError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(SecretBytes::from_slice(&buf.expose()[..filled]))
}

fn io_err(path: &Path, e: io::Error) -> KeyfileReadError {
    if e.kind() == io::ErrorKind::NotFound {
        KeyfileReadError::NotFound {
            path: path.to_path_buf(),
        }
    } else {
        KeyfileReadError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}
