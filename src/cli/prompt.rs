//! Asking on the terminal: a line ([`ask_line`]), or a secret with no echo, line editing (Backspace, Ctrl-U), and Ctrl-C
//! as an interrupt that puts the terminal back as it was and ends tcvault with exit status 130.
//!
//! The terminal is switched to non-canonical mode without echo and without signal keys for the
//! time of the prompt, so that Ctrl-C arrives as a byte and the terminal is restored before
//! tcvault exits (a killed prompt would leave the shell without echo).

use std::fs::File;
use std::io::{self, BufRead, IsTerminal, Read, Write};

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use tcvault::secret::SecretBytes;

use super::exit::{BAD_INPUT, CliError, INTERRUPTED};

/// Asks a question on standard error and reads one line of answer from standard input (with
/// its newline; empty at the end of input).
pub(super) fn ask_line(prompt: &str) -> io::Result<String> {
    err!("{prompt}");
    io::stderr().flush()?;
    let mut s = String::new();
    io::stdin().lock().read_line(&mut s)?;
    Ok(s)
}

/// Longest secret accepted from the prompt (far more than any password).
const MAX_TYPED: usize = 4096;

/// Asks for a secret on the terminal without echo; refused when standard input is not a
/// terminal. Ctrl-C: [`INTERRUPTED`]; Ctrl-D on an empty line: no secret (an error).
pub(super) fn prompt_secret(prompt: &str) -> Result<SecretBytes, CliError> {
    if !io::stdin().is_terminal() {
        return Err(CliError::msg(
            format!(
                "no terminal to ask: {}",
                prompt.trim_end_matches([':', ' '])
            ),
            BAD_INPUT,
        ));
    }
    let tty = File::options()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .map_err(|e| CliError::msg(format!("cannot open the terminal: {e}"), BAD_INPUT))?;
    let saved = termios::tcgetattr(&tty).map_err(|e| {
        CliError::msg(
            format!("cannot read the terminal's settings: {e}"),
            BAD_INPUT,
        )
    })?;
    let mut quiet = saved.clone();
    quiet
        .local_modes
        .remove(LocalModes::ECHO | LocalModes::ICANON | LocalModes::ISIG);
    quiet.special_codes[SpecialCodeIndex::VMIN] = 1;
    quiet.special_codes[SpecialCodeIndex::VTIME] = 0;
    termios::tcsetattr(&tty, OptionalActions::Flush, &quiet)
        .map_err(|e| CliError::msg(format!("cannot turn echo off: {e}"), BAD_INPUT))?;
    let restore = Restore { tty: &tty, saved };
    let _ = (&tty).write_all(prompt.as_bytes());
    let typed = read_line(&tty);
    drop(restore);
    let _ = (&tty).write_all(b"\n");
    match typed {
        Typed::Line(s) => Ok(s),
        Typed::Interrupted => Err(CliError::msg("interrupted", INTERRUPTED)),
        Typed::End => Err(CliError::msg("nothing was typed (Ctrl-D)", BAD_INPUT)),
        Typed::Failed(e) => Err(CliError::msg(
            format!("cannot read the terminal: {e}"),
            BAD_INPUT,
        )),
    }
}

/// Puts the terminal's settings back when dropped.
struct Restore<'a> {
    tty: &'a File,
    saved: Termios,
}

impl Drop for Restore<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.tty, OptionalActions::Now, &self.saved);
    }
}

enum Typed {
    Line(SecretBytes),
    Interrupted,
    End,
    Failed(io::Error),
}

/// Reads keys up to Enter: Backspace removes the last character (all of its UTF-8 bytes),
/// Ctrl-U the whole line, Ctrl-C interrupts, Ctrl-D on an empty line ends.
fn read_line(mut tty: &File) -> Typed {
    let mut buf = SecretBytes::zeroed(MAX_TYPED);
    let mut n = 0;
    let mut key = [0u8; 1];
    loop {
        match tty.read(&mut key) {
            Ok(0) => return if n == 0 { Typed::End } else { break },
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Typed::Failed(e),
        }
        match key[0] {
            b'\r' | b'\n' => break,
            0x03 => return Typed::Interrupted,
            0x04 if n == 0 => return Typed::End,
            0x04 => break,
            0x7f | 0x08 => {
                // A UTF-8 character's continuation bytes are 10xxxxxx.
                while n > 0 {
                    n -= 1;
                    if buf.expose()[n] & 0xc0 != 0x80 {
                        break;
                    }
                }
            }
            0x15 => n = 0,
            b if n < MAX_TYPED => {
                buf.expose_mut()[n] = b;
                n += 1;
            }
            _ => {}
        }
    }
    Typed::Line(SecretBytes::from_slice(&buf.expose()[..n]))
}
