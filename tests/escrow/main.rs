//! The escrow server and client over real TLS, on SQLite and PostgreSQL: the server API and its attacks, the client commands and `-R`, the demo script and the kill test.
//!
//! One test crate (one link of the library) per area; each file is a module of it.

#[path = "../common/mod.rs"]
mod common;

mod demo;
mod escrow_client;
mod escrowd;
mod kill_test;
mod ldap;
