//! The `tcvault-escrowd` binary: the key escrow server (see `tcvault::escrow::server`).

mod args;
mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // First of all, before any secret is read: no core dumps, no ptrace.
    if let Err(e) = tcvault::secret::harden_process() {
        eprintln!("tcvault-escrowd: error: cannot turn core dumps off: {e}");
        return std::process::ExitCode::from(1);
    }
    cli::run(args::Cli::parse())
}
