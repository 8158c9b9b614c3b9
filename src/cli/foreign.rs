//! Parsing the command line, with tips for users coming from VeraCrypt's or cryptsetup's
//! syntax: an argument or command tcvault does not know, but one of theirs, gets the tcvault
//! equivalent instead of clap's "a similar argument exists".

use std::ffi::OsString;
use std::process::ExitCode;

use clap::FromArgMatches;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use super::args::{Cli, command};
use super::exit::{CliError, USAGE};

/// Another tool's argument or command, and what tcvault says instead.
const TIPS: &[(&[&str], &str, &str)] = &[
    (
        &["--mount", "-m"],
        "VeraCrypt",
        "`tcvault mount VOLUME [MOUNTPOINT]`",
    ),
    (
        &["--dismount", "-d"],
        "VeraCrypt",
        "`tcvault unmount MOUNTPOINT|VOLUME`, or `tcvault unmount --all`",
    ),
    (&["--list", "-l"], "VeraCrypt", "`tcvault list`"),
    (
        &["--create", "-c"],
        "VeraCrypt",
        "`tcvault create VOLUME --size SIZE [--cipher CHAIN] [--prf PRF] [--filesystem FS]`",
    ),
    (
        &["--encryption"],
        "VeraCrypt",
        "`--cipher CHAIN` (e.g. --cipher aes-twofish)",
    ),
    (&["--hash"], "VeraCrypt", "`--prf PRF` (e.g. --prf sha512)"),
    (
        &["--password", "-p"],
        "VeraCrypt",
        "`--password-file FILE` (or - for standard input), or the prompt: tcvault never takes \
         a password on its command line",
    ),
    (
        &["--keyfiles"],
        "VeraCrypt",
        "`-k/--keyfile PATH`, repeated for several",
    ),
    (
        &["--volume-type"],
        "VeraCrypt",
        "`tcvault create --hidden` for a hidden volume",
    ),
    (
        &["--change", "-C"],
        "VeraCrypt",
        "`tcvault change-password VOLUME`",
    ),
    (
        &["--backup-headers"],
        "VeraCrypt",
        "`tcvault backup-header VOLUME FILE`",
    ),
    (
        &["--restore-headers"],
        "VeraCrypt",
        "`tcvault restore-header VOLUME --file FILE`",
    ),
    (
        &["--text", "-t", "--non-interactive"],
        "VeraCrypt",
        "nothing: tcvault is text-only, and without a terminal it never prompts (give \
         --password-file)",
    ),
    (
        &["open", "luksOpen", "tcryptOpen"],
        "cryptsetup",
        "`tcvault mount VOLUME --no-filesystem` for the decrypted device, or `tcvault mount \
         VOLUME MOUNTPOINT`",
    ),
    (
        &["close", "luksClose"],
        "cryptsetup",
        "`tcvault unmount DEVICE|VOLUME`",
    ),
    (&["status"], "cryptsetup", "`tcvault list`"),
    (
        &["tcryptDump", "luksDump"],
        "cryptsetup",
        "`tcvault info VOLUME`",
    ),
    (
        &["--type"],
        "cryptsetup",
        "nothing: tcvault finds the format by itself",
    ),
    (&["--veracrypt-pim"], "cryptsetup", "`--pim N`"),
    (&["--tcrypt-hidden"], "cryptsetup", "`--hidden`"),
];

/// The tip for the argument or command `given`, if it is another tool's.
pub fn tip_for(given: &str) -> Option<String> {
    let name = given.split_once('=').map_or(given, |(n, _)| n);
    TIPS.iter()
        .find(|(names, _, _)| names.contains(&name))
        .map(|(_, tool, ours)| format!("{name} is {tool}'s; tcvault's equivalent is {ours}"))
}

/// `tcvault -q COMMAND ...` as `tcvault COMMAND -q ...`: the top level's own options (`-R`'s)
/// exclude a command, which clap applies to the global `-q`/`-v` as well when they come
/// before the command's name; after it they are the command's.
fn lift_globals(argv: Vec<OsString>) -> Vec<OsString> {
    let is_global =
        |a: &OsString| matches!(a.to_str(), Some("-q" | "--quiet" | "-v" | "--verbose"));
    let lead = argv.iter().skip(1).take_while(|a| is_global(a)).count();
    let Some(word) = argv.get(1 + lead).and_then(|w| w.to_str()) else {
        return argv;
    };
    if lead == 0 || command().find_subcommand(word).is_none() {
        return argv;
    }
    let mut out = Vec::with_capacity(argv.len());
    out.extend(argv.first().cloned());
    out.push(argv[1 + lead].clone());
    out.extend(argv[1..=lead].iter().cloned());
    out.extend(argv[2 + lead..].iter().cloned());
    out
}

/// Parses the command line. An error is printed by clap and exits 2 (help and version exit
/// 0), except where the offending argument is another tool's: then the tcvault equivalent is
/// said (exit 2).
pub fn parse() -> Result<Cli, ExitCode> {
    let argv = lift_globals(std::env::args_os().collect());
    let parsed = command()
        .try_get_matches_from(&argv)
        .and_then(|m| Cli::from_arg_matches(&m));
    match parsed {
        Ok(cli) => Ok(cli),
        Err(e) => {
            let offending = match e.kind() {
                ErrorKind::UnknownArgument => e.get(ContextKind::InvalidArg),
                ErrorKind::InvalidSubcommand => e.get(ContextKind::InvalidSubcommand),
                _ => None,
            };
            let tip = match offending {
                Some(ContextValue::String(s)) => tip_for(s),
                _ => None,
            };
            match tip {
                Some(tip) => {
                    let given = match offending {
                        Some(ContextValue::String(s)) => s.as_str(),
                        _ => "",
                    };
                    CliError::msg(format!("tcvault does not know {given:?}"), USAGE)
                        .hint(tip)
                        .report();
                    Err(ExitCode::from(USAGE))
                }
                None => e.exit(),
            }
        }
    }
}
