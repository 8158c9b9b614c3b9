//! Exit codes and error rendering. The codes are fixed and listed in the man page (EXIT STATUS).

use std::error::Error as StdError;
use std::fmt;

use tcvault::header::unlock::{CredentialsError, UnlockError};
use tcvault::volume::VolumeError;
use tcvault::volume::keyfiles::KeyfileReadError;

/// Exit status: everything worked.
pub const OK: u8 = 0;
/// Exit status: an operation failed (I/O error while reading or writing, a full disk, …).
pub const FAILED: u8 = 1;
/// Exit status: wrong command-line usage (also what the argument parser returns).
pub const USAGE: u8 = 2;
/// Exit status: no header opened: wrong password, keyfiles or PIM, or not a volume.
pub const WRONG_CREDENTIALS: u8 = 3;
/// Exit status: an input could not be used (missing, a directory, unreadable, too small, an
/// empty keyfile, no terminal to ask for a password).
pub const BAD_INPUT: u8 = 4;
/// Exit status: the volume opened but is damaged or truncated.
pub const DAMAGED: u8 = 5;
/// Exit status: interrupted by Ctrl-C (SIGINT), or a long write cancelled by Ctrl-C or SIGTERM
/// (128 + SIGINT, as a shell reports a program Ctrl-C stopped).
pub const INTERRUPTED: u8 = 130;

/// Set when the command was given `--json`: [`CliError::report`] then also prints the error as
/// one JSON object (`error`, `hint`, `exit_code`) on standard output, for scripts.
pub static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// An error on its way to the user: the error, an optional hint, and an exit code.
#[derive(Debug)]
pub struct CliError {
    error: Box<dyn StdError + Send + Sync>,
    hint: Option<String>,
    code: u8,
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}

impl CliError {
    /// A new error with `code`.
    pub fn new(error: impl Into<Box<dyn StdError + Send + Sync>>, code: u8) -> Self {
        CliError {
            error: error.into(),
            hint: None,
            code,
        }
    }

    /// A plain message.
    pub fn msg(message: impl fmt::Display, code: u8) -> Self {
        CliError::new(message.to_string(), code)
    }

    /// Adds a hint line.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The same error after `what` was done: "`what`, but …" (code and hint kept).
    pub fn after(self, what: impl fmt::Display) -> Self {
        CliError {
            error: format!("{what}, but {}", self.error).into(),
            ..self
        }
    }

    /// The exit code.
    pub fn code(&self) -> u8 {
        debug_assert_ne!(self.code, OK);
        self.code
    }

    /// Prints `tcvault: error: …: cause: cause` and the hint to standard error.
    pub fn report(&self) {
        let mut message = self.error.to_string();
        let mut source = self.error.source();
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        errln!("tcvault: error: {message}");
        if let Some(h) = &self.hint {
            errln!("hint: {h}");
        }
        if JSON_ERRORS.load(std::sync::atomic::Ordering::SeqCst) {
            let v = serde_json::json!({
                "error": message,
                "hint": self.hint,
                "exit_code": self.code,
            });
            outln!("{v}");
        }
    }
}

impl From<VolumeError> for CliError {
    fn from(e: VolumeError) -> Self {
        let (code, hint) = match &e {
            VolumeError::Unlock(UnlockError::NoMatch) => (
                WRONG_CREDENTIALS,
                Some(
                    "check the password, keyfiles and PIM; for a hidden volume give its own \
                     password; --prf and --cipher narrow the search",
                ),
            ),
            VolumeError::Unlock(UnlockError::Argon2Failed { .. }) => (
                FAILED,
                Some(
                    "check the password, keyfiles and PIM; if the volume uses Argon2id, free \
                     memory and try again",
                ),
            ),
            VolumeError::Unlock(UnlockError::NothingToTry(_)) => (
                USAGE,
                Some("TrueCrypt volumes use only sha512, whirlpool, ripemd160 or sha1, and no PIM"),
            ),
            VolumeError::NotFound { .. } => (BAD_INPUT, None),
            VolumeError::IsDirectory { .. } => {
                (BAD_INPUT, Some("give the container file inside it"))
            }
            VolumeError::PermissionDenied { .. } => (
                BAD_INPUT,
                Some("block devices usually need root (sudo) or the disk group"),
            ),
            VolumeError::TooSmall { .. } | VolumeError::NotAFileOrDevice { .. } => {
                (BAD_INPUT, None)
            }
            VolumeError::NoSuchSlot { .. } => (BAD_INPUT, None),
            VolumeError::NoDataArea { .. } => (
                BAD_INPUT,
                Some("restore the backup into its volume, then decrypt the volume"),
            ),
            VolumeError::Truncated { .. } => (
                DAMAGED,
                Some("the file may have been cut short by a copy; try the original"),
            ),
            VolumeError::BackupHeadersCut { .. } => (
                DAMAGED,
                Some(
                    "the file may have been cut short by a copy; try the original (`tcvault \
                     decrypt` still reads its data)",
                ),
            ),
            VolumeError::Io { .. } => (FAILED, None),
        };
        let mut c = CliError::new(e, code);
        c.hint = hint.map(str::to_string);
        c
    }
}

impl From<KeyfileReadError> for CliError {
    fn from(e: KeyfileReadError) -> Self {
        CliError::new(e, BAD_INPUT)
    }
}

impl From<CredentialsError> for CliError {
    fn from(e: CredentialsError) -> Self {
        match e {
            CredentialsError::EmptyPassword => {
                CliError::new(e, BAD_INPUT).hint("type a password, or add -k KEYFILE")
            }
            CredentialsError::Keyfile { .. } => CliError::new(e, BAD_INPUT),
        }
    }
}
