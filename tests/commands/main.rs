//! The `tcvault` binary run as a user runs it: every command but mount and escrow, header writes, legacy TrueCrypt volumes, hardening against bad input, the benchmark command.
//!
//! One test crate (one link of the library) per area; each file is a module of it.

#[path = "../common/mod.rs"]
mod common;

mod benchmark_cli;
mod cli;
mod hardening;
mod install;
mod legacy;
mod prompt;
mod write;
