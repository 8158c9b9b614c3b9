//! The `tcvault` binary: parse the command line, run it, exit with its code.

mod cli;

fn main() -> std::process::ExitCode {
    // First of all, before any secret is read: no core dumps, no ptrace.
    if let Err(e) = tcvault::secret::harden_process() {
        eprintln!("tcvault: error: cannot turn core dumps off: {e}");
        return std::process::ExitCode::from(1);
    }
    match cli::parse() {
        Ok(c) => cli::run(c),
        Err(code) => code,
    }
}
