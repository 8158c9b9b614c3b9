//! The checks behind tcvault's fuzz targets, one module per target, each with a
//! `check(data: &[u8])` that panics when a property fails. The same functions run under
//! libFuzzer (`fuzz_targets/`, `scripts/fuzz.sh`) and as ordinary tests that replay the
//! checked-in corpora (`tests/format/fuzz_corpus.rs` of the main package includes this file).
//!
//! Key derivation is kept cheap without any test hook in the library: crafted volumes are
//! TrueCrypt-family headers under PBKDF2-HMAC-SHA-512 with 1,000 iterations (the cheapest
//! derivation the format has), opened through the real trial decryption narrowed to that PRF
//! and one scheme.
//!
//! [`seeds`] makes the seed corpora; every seed is deterministic, so the test can check that
//! the corpus on disk holds them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod common;
pub mod seeds;

pub mod cli_write;
pub mod client_config;
pub mod escrow_api;
pub mod escrow_packet;
pub mod header_parse;
pub mod keyfiles;
pub mod server_config;
pub mod volume_open;

mod backup_file;

/// Header backup files of 1,024 bytes (two 512-byte headers) restored onto crafted volumes.
pub mod backup_file_1k {
    /// See [`super::backup_file`].
    pub fn check(data: &[u8]) {
        super::backup_file::check(data, tcvault::header::layout::LEGACY_BACKUP_FILE_SIZE);
    }
}

/// Header backup files of 131,072 bytes (two 64 KiB slots) restored onto crafted volumes.
pub mod backup_file_128k {
    /// See [`super::backup_file`].
    pub fn check(data: &[u8]) {
        super::backup_file::check(data, tcvault::header::layout::BACKUP_FILE_SIZE);
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name, for the corpus replay.
pub const TARGETS: &[(&str, Check)] = &[
    ("header_parse", header_parse::check),
    ("volume_open", volume_open::check),
    ("backup_file_1k", backup_file_1k::check),
    ("backup_file_128k", backup_file_128k::check),
    ("escrow_packet", escrow_packet::check),
    ("client_config", client_config::check),
    ("server_config", server_config::check),
    ("escrow_api", escrow_api::check),
    ("keyfiles", keyfiles::check),
    ("cli_write", cli_write::check),
];
