//! Layer 4b: key escrow.
//!
//! [`server`] is the escrow server `tcvault-escrowd`: it stores escrow packets that only the
//! escrow authority's private key can open and hands them only to authorised admins. The
//! packet format and the client come with their own modules.

pub mod client;
pub mod server;
