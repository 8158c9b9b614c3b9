//! The `tcvault-escrowd` binary: the key escrow server (see `tcvault::escrow::server`).

#[path = "../cli/escrowd.rs"]
mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}
