//! Printing that never panics, for both binaries.
//!
//! `println!` and `eprintln!` panic (exit 101) when their stream cannot be written: a closed
//! pipe, a full disk, `/dev/full`. The binaries print through these macros instead, and the
//! lints at the top of `cli/` (`clippy::print_stdout`, `clippy::print_stderr`) hold the rule.
//! `outln!`/`out!` write to standard output; a failure is remembered, and the command then
//! exits 1 ([`stdout_failed`]), since what it was asked to print was lost. `errln!`/`err!`
//! write to standard error and ignore a failure: there is nowhere left to report it.
//!
//! How much a command says is set once from `-q`/`-v` ([`set_verbosity`]): `noteln!` is a
//! report of what was done or a progress line, left out under `-q`; `detailln!` is said only
//! under `-v`. Errors, warnings, prompts and the output a command was asked for (`list`,
//! `info`, `--json`) are printed whatever the level.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// How much the commands say (`-q`, neither, `-v`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// `-q`: errors, warnings, prompts and asked-for output only.
    Quiet = 0,
    /// The default: also progress lines and reports of what was done.
    Normal = 1,
    /// `-v`: also details (which header opened and how, the programs run, the server used).
    Verbose = 2,
}

static VERBOSITY: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the level for the rest of the run (from the command line, before the command runs).
pub fn set_verbosity(v: Verbosity) {
    VERBOSITY.store(v as u8, Ordering::Relaxed);
}

/// Whether `-q` was given: no progress lines, no reports.
pub fn quiet() -> bool {
    VERBOSITY.load(Ordering::Relaxed) == Verbosity::Quiet as u8
}

/// Whether `-v` was given: details too.
pub fn verbose() -> bool {
    VERBOSITY.load(Ordering::Relaxed) == Verbosity::Verbose as u8
}

/// Whether a progress line or bar may be drawn on standard error: it is a terminal and `-q`
/// was not given.
pub fn progress_shown() -> bool {
    !quiet() && std::io::IsTerminal::is_terminal(&io::stderr())
}

/// Writes `args` (and a newline when `line`) to standard output, remembering a failure.
pub fn out(args: fmt::Arguments<'_>, line: bool) {
    let mut o = io::stdout().lock();
    let r = o
        .write_fmt(args)
        .and_then(|()| if line { o.write_all(b"\n") } else { Ok(()) });
    if r.is_err() {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
    }
}

/// Writes `args` (and a newline when `line`) to standard error; a failure is ignored.
pub fn err(args: fmt::Arguments<'_>, line: bool) {
    let mut e = io::stderr().lock();
    let _ = e
        .write_fmt(args)
        .and_then(|()| if line { e.write_all(b"\n") } else { Ok(()) });
}

/// Flushes standard output and tells whether anything written to it was lost.
pub fn stdout_failed() -> bool {
    if io::stdout().lock().flush().is_err() {
        STDOUT_FAILED.store(true, Ordering::Relaxed);
    }
    STDOUT_FAILED.load(Ordering::Relaxed)
}

/// `println!` that never panics (see the module docs).
macro_rules! outln {
    () => {
        $crate::cli::print::out(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::print::out(format_args!($($arg)*), true)
    };
}

/// `print!` that never panics.
#[allow(unused_macros)]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::print::out(format_args!($($arg)*), false)
    };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    () => {
        $crate::cli::print::err(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::print::err(format_args!($($arg)*), true)
    };
}

/// `eprint!` that never panics.
#[allow(unused_macros)]
macro_rules! err {
    ($($arg:tt)*) => {
        $crate::cli::print::err(format_args!($($arg)*), false)
    };
}

/// A report of what was done, on standard error; left out under `-q`.
#[allow(unused_macros)]
macro_rules! noteln {
    ($($arg:tt)*) => {
        if !$crate::cli::print::quiet() {
            $crate::cli::print::err(format_args!($($arg)*), true)
        }
    };
}

/// A detail said only under `-v`, on standard error, after `tcvault: `.
#[allow(unused_macros)]
macro_rules! detailln {
    ($($arg:tt)*) => {
        if $crate::cli::print::verbose() {
            $crate::cli::print::err(format_args!("tcvault: {}", format_args!($($arg)*)), true)
        }
    };
}
