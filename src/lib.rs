//! tcvault: TrueCrypt- and VeraCrypt-format encrypted volumes.
//!
//! The crate is layered; a lower layer never uses a higher one:
//!
//! ```text
//! cli/      (binary only) arguments, prompts, commands, exit codes
//! mount/    the mount service: FUSE file + loop device + filesystem, state under /run/tcvault
//! escrow/   escrow packets, the client, and the tcvault-escrowd server
//! volume/   hosts (files, devices), opening volumes, sector I/O over the data area
//! header/   512-byte header layout, parse/serialize, key derivation choice, trial decryption
//! crypto/   ciphers, XTS, chains, legacy LRW/CBC, PBKDF2/Argon2id, keyfile pool — no I/O
//! secret    passwords and keys that wipe themselves
//! ```
//!
//! Opening a volume and reading its first data sector:
//!
//! ```no_run
//! use std::path::Path;
//! use tcvault::header::{Credentials, UnlockOptions};
//! use tcvault::secret::Password;
//! use tcvault::volume::{SlotChoice, Volume};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let password = Password::new(b"my password")?;
//! let creds = Credentials::new(&password, &[], 0)?;
//! let volume = Volume::open(
//!     Path::new("volume.hc"),
//!     &creds,
//!     SlotChoice::default(),
//!     &UnlockOptions::default(),
//! )?;
//! let mut sector = vec![0u8; 512];
//! volume.read_data(0, &mut sector)?;
//! println!("{} uses {}", volume.host().path().display(), volume.unlocked().scheme);
//! # Ok(())
//! # }
//! ```

// `unsafe_code` is denied for every target in Cargo.toml; the modules below that need it say so.

pub mod crypto;
pub mod escrow;
pub mod header;
#[cfg(feature = "mount")]
pub mod mount;
#[allow(unsafe_code)]
pub mod secret;
pub mod volume;
