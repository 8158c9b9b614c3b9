//! Layer 5 (binary only): arguments, password prompts, commands, error rendering, exit codes.
//! Everything printed goes through [`print`]'s macros, which never panic.
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod print;
pub mod args;
mod benchmark;
mod decrypt;
mod escrow;
mod escrow_manage;
mod exit;
mod foreign;
mod info;
#[cfg(feature = "mount")]
mod mount;
mod prompt;
mod unlock;
mod write;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};

pub use args::Cli;
use args::Command;
pub use foreign::parse;

/// Runs a parsed command line and turns its outcome into an exit code, printing errors as a
/// cause chain and a hint on standard error.
pub fn run(cli: Cli) -> ExitCode {
    // The mount service has its own handling of signals (a clean teardown).
    if !matches!(cli.command, Some(Command::MountService(_))) {
        exit_on_interrupt();
    }
    print::set_verbosity(if cli.quiet {
        print::Verbosity::Quiet
    } else if cli.verbose {
        print::Verbosity::Verbose
    } else {
        print::Verbosity::Normal
    });
    let Some(command) = cli.command else {
        return exit_code(escrow::run_dash_r(cli.restore, &cli.restore_opts));
    };
    // Commands whose --json also turns an error into one JSON object on standard output.
    let json = match &command {
        Command::Mount(a) => a.json,
        Command::Unmount(a) => a.json,
        Command::Create(a) => a.json,
        _ => false,
    };
    if json {
        exit::JSON_ERRORS.store(true, Ordering::SeqCst);
    }
    let result = match command {
        Command::Info(a) => info::run(&a),
        Command::Decrypt(a) => decrypt::run(&a),
        Command::Benchmark(a) => benchmark::run(&a),
        #[cfg(feature = "mount")]
        Command::Mount(a) => mount::mount(&a),
        #[cfg(feature = "mount")]
        Command::Unmount(a) => mount::unmount(&a),
        #[cfg(feature = "mount")]
        Command::List(a) => mount::list(&a),
        #[cfg(feature = "mount")]
        Command::MountService(_) => return mount::service(),
        #[cfg(not(feature = "mount"))]
        Command::Mount(_) | Command::Unmount(_) | Command::List(_) | Command::MountService(_) => {
            Err(no_mount_support())
        }
        Command::Create(a) => write::create(&a),
        Command::ChangePassword(a) => write::change_password(&a),
        Command::BackupHeader(a) => write::backup_header(&a),
        Command::RestoreHeader(a) => write::restore_header(&a),
        Command::Escrow(a) => escrow_manage::command(&a),
        Command::Restore(a) => escrow::restore(&a.admin, &a.target, &a.opts),
        Command::Recover(a) => escrow::recover(&a),
    };
    exit_code(result)
}

/// Whether Ctrl-C (SIGINT) ends tcvault at once with [`exit::INTERRUPTED`]; off while a command
/// has taken it over as a clean cancel ([`interrupt_cancels`]). The password prompt reads
/// Ctrl-C as a key instead (see `prompt.rs`).
static SIGINT_EXITS: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(true)));

fn exit_on_interrupt() {
    // Registration fails only for forbidden signals; SIGINT is allowed.
    let _ = signal_hook::flag::register_conditional_shutdown(
        signal_hook::consts::SIGINT,
        i32::from(exit::INTERRUPTED),
        Arc::clone(&SIGINT_EXITS),
    );
}

/// From now on Ctrl-C only raises the command's own cancel flag (a long write that stops
/// between two steps and then exits with [`exit::INTERRUPTED`]).
fn interrupt_cancels() {
    SIGINT_EXITS.store(false, Ordering::SeqCst);
}

/// The error of a mount command, or of `create --filesystem`, in a build without the `mount`
/// feature.
fn no_mount_support() -> exit::CliError {
    exit::CliError::msg(
        "this tcvault was built without mounting (the `mount` feature): it cannot mount, \
         unmount or list volumes, nor make a filesystem in a new one",
        exit::USAGE,
    )
    .hint("build it with the default features, or use `tcvault decrypt` to read the data")
}

/// The exit code of a command's `result`: its error's code, or 1 when what it printed to
/// standard output was lost (a closed pipe, a full disk).
fn exit_code(result: Result<(), exit::CliError>) -> ExitCode {
    match result {
        Ok(()) if print::stdout_failed() => {
            errln!("tcvault: error: standard output could not be written");
            ExitCode::from(exit::FAILED)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            e.report();
            ExitCode::from(e.code())
        }
    }
}
