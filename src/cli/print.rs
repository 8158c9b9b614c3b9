//! Printing that never panics, for both binaries.
//!
//! `println!` and `eprintln!` panic (exit 101) when their stream cannot be written: a closed
//! pipe, a full disk, `/dev/full`. The binaries print through these macros instead, and the
//! lints at the top of `cli/` (`clippy::print_stdout`, `clippy::print_stderr`) hold the rule.
//! `outln!`/`out!` write to standard output; a failure is remembered, and the command then
//! exits 1 ([`stdout_failed`]), since what it was asked to print was lost. `errln!`/`err!`
//! write to standard error and ignore a failure: there is nowhere left to report it.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

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
