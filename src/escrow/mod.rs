//! Layer 4b: key escrow.
//!
//! [`server`] is the escrow server `tcvault-escrowd`: it stores escrow packets that only the
//! escrow authority's private key can open and hands them only to authorised admins. The
//! packet format and the client come with their own modules; [`wire`] is the `/v1/` contract
//! both sides speak; [`sealed`] is the passphrase-sealed envelope of export bundles and of
//! authority key shares.

pub mod client;
pub mod sealed;
#[cfg(feature = "escrow-server")]
pub mod server;
pub mod wire;
