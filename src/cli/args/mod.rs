//! The command-line definition: the top level and the options shared by several commands
//! here, each group of commands' own arguments in a file beside it. build.rs compiles this
//! folder too (to generate man pages and shell completions), so it may use only `clap` and
//! `std`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Create, open and repair TrueCrypt and VeraCrypt volumes.
#[derive(Parser, Debug)]
#[command(
    name = "tcvault",
    version,
    about = "Create, open and repair TrueCrypt and VeraCrypt volumes",
    long_about = "tcvault opens TrueCrypt- and VeraCrypt-format encrypted volumes (file containers, \
                  block devices and header backup files) with its own userspace cipher engine. \
                  Passwords are read from a terminal prompt or a file, never from the command \
                  line or the environment."
)]
#[command(args_conflicts_with_subcommands = true, arg_required_else_help = true)]
pub struct Cli {
    /// Help-desk restore: reset the password of TARGET (a volume or a header backup file) from
    /// an escrow entry, as the escrow admin ADMIN: the shortcut of `restore --admin ADMIN
    /// TARGET`, which takes the same options (`tcvault restore --help` lists them).
    #[arg(short = 'R', num_args = 2, value_names = ["ADMIN", "TARGET"])]
    pub restore: Option<Vec<PathBuf>>,
    /// Options of -R (hidden in this help: see [`command`]).
    #[command(flatten, next_help_heading = RESTORE_HEADING)]
    pub restore_opts: RestoreOptions,
    /// Say less: no progress lines and no reports of what was done. Errors, warnings,
    /// prompts and the output a command is asked for (`list`, `info`, `--json`) stay.
    #[arg(short = 'q', long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Say more: which header opened (format, PRF, cipher, slot) and how long the key search
    /// took, the programs tcvault runs, the escrow server it talks to.
    #[arg(short = 'v', long, global = true)]
    pub verbose: bool,
    /// The command to run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The help heading of `-R`'s options at the top level.
const RESTORE_HEADING: &str = "Options of -R (help-desk restore)";

/// The command line `tcvault` parses and documents: [`Cli`], with `-R`'s options hidden from
/// the top-level help (they would fill its first screen before the commands); they still parse
/// there, and `tcvault restore --help` and tcvault-restore(1) list them.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command().mut_args(|a| {
        if a.get_help_heading() == Some(RESTORE_HEADING) {
            a.hide(true)
        } else {
            a
        }
    })
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show what a volume's header says (format, cipher, PRF, sizes, offsets).
    Info(InfoArgs),
    /// Write a volume's decrypted data area to a file or to standard output.
    Decrypt(DecryptArgs),
    /// Measure cipher, key-derivation and device throughput on this machine.
    Benchmark(BenchmarkArgs),
    /// Mount a volume: unlock it, serve its decrypted data in the background and mount its
    /// filesystem (or only set up the decrypted block device).
    Mount(MountArgs),
    /// Unmount volumes mounted by tcvault: filesystem, device, service and keys.
    #[command(visible_alias = "umount")]
    Unmount(UnmountArgs),
    /// List the volumes tcvault has mounted.
    List(ListArgs),
    /// The background service of `mount` (internal).
    #[command(name = "__mount-service", hide = true)]
    MountService(MountServiceArgs),
    /// Create a volume: a new file container, a whole block device, or (--hidden) a hidden
    /// volume inside an existing one.
    Create(CreateArgs),
    /// Change a volume's password, keyfiles, PIM or key derivation (rewrites its header and
    /// embedded backup with fresh salts).
    ChangePassword(ChangePasswordArgs),
    /// Write a header backup file (131,072 bytes, or 1,024 with --compact).
    BackupHeader(BackupHeaderArgs),
    /// Restore a volume's header from a backup file or from its embedded backup.
    RestoreHeader(RestoreHeaderArgs),
    /// Key escrow administration (authority keys).
    Escrow(EscrowCmdArgs),
    /// Help-desk restore: reset the password of a volume or header backup file from an escrow
    /// entry (also `tcvault -R ADMIN TARGET`).
    Restore(RestoreArgs),
    /// Self-service recovery: reset the password of your own volume or header backup file
    /// from your escrow entry, with the recovery passphrase you gave at the deposit.
    Recover(RecoverArgs),
}

/// Options that say how to unlock a volume; shared by every command that opens one.
#[derive(Args, Debug, Clone, Default)]
pub struct UnlockArgs {
    /// Read the password from FILE ('-' for standard input); one trailing newline is removed.
    /// Without it the password is asked for on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Use a keyfile (or every file of a directory); repeat for several keyfiles.
    #[arg(short = 'k', long = "keyfile", value_name = "PATH")]
    pub keyfiles: Vec<PathBuf>,
    /// Personal Iterations Multiplier (0 or absent: the default iteration count).
    #[arg(long, value_name = "N")]
    pub pim: Option<u32>,
    /// Try only this key derivation function instead of all of them.
    #[arg(long, value_enum, ignore_case = true, value_name = "PRF")]
    pub prf: Option<PrfArg>,
    /// Try only this cipher chain instead of all of them.
    #[arg(long, value_enum, ignore_case = true, value_name = "CHAIN")]
    pub cipher: Option<ChainArg>,
    /// Treat the volume as a TrueCrypt volume only (TrueCrypt iteration counts, magic TRUE).
    #[arg(long, conflicts_with = "veracrypt")]
    pub truecrypt: bool,
    /// Treat the volume as a VeraCrypt volume only.
    #[arg(long)]
    pub veracrypt: bool,
    /// Open the hidden volume's header only (by default the normal one, then the hidden one).
    #[arg(long)]
    pub hidden: bool,
    /// Use the backup headers embedded at the end of the volume instead of the primary ones.
    #[arg(long)]
    pub backup_header: bool,
    /// Open a system-encryption header (sector 62 of a drive or drive image).
    #[arg(long, conflicts_with_all = ["hidden", "backup_header"])]
    pub system: bool,
}

/// Key derivation functions, as named on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrfArg {
    /// PBKDF2-HMAC-SHA-512
    #[value(alias = "sha-512")]
    Sha512,
    /// PBKDF2-HMAC-SHA-256
    #[value(alias = "sha-256")]
    Sha256,
    /// PBKDF2-HMAC-BLAKE2s-256
    #[value(alias = "blake2s-256")]
    Blake2s,
    /// PBKDF2-HMAC-Whirlpool
    Whirlpool,
    /// PBKDF2-HMAC-Streebog-512
    Streebog,
    /// PBKDF2-HMAC-RIPEMD-160 (TrueCrypt, VeraCrypt up to 1.25.9)
    #[value(alias = "ripemd-160")]
    Ripemd160,
    /// PBKDF2-HMAC-SHA-1 (TrueCrypt before 5.0)
    #[value(alias = "sha-1")]
    Sha1,
    /// Argon2id (VeraCrypt 1.26.27 and later)
    Argon2id,
}

/// Cipher chains, as named on the command line (VeraCrypt's names, case-insensitive).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainArg {
    /// AES
    Aes,
    /// Serpent
    Serpent,
    /// Twofish
    Twofish,
    /// Camellia
    Camellia,
    /// Kuznyechik
    Kuznyechik,
    /// AES-Twofish
    AesTwofish,
    /// AES-Twofish-Serpent
    AesTwofishSerpent,
    /// Serpent-AES
    SerpentAes,
    /// Serpent-Twofish-AES
    SerpentTwofishAes,
    /// Twofish-Serpent
    TwofishSerpent,
    /// Camellia-Kuznyechik
    CamelliaKuznyechik,
    /// Camellia-Serpent
    CamelliaSerpent,
    /// Kuznyechik-AES
    KuznyechikAes,
    /// Kuznyechik-Serpent-Camellia
    KuznyechikSerpentCamellia,
    /// Kuznyechik-Twofish
    KuznyechikTwofish,
}

/// `tcvault info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The volume: a file container, a block device, or a header backup file.
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// How to unlock it.
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// Print one JSON object (snake_case keys) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also print the master keys in hex. Anyone who sees them can decrypt the volume for as
    /// long as it exists, whatever its password becomes.
    #[arg(long)]
    pub show_keys: bool,
}

/// `tcvault decrypt`.
#[derive(Args, Debug)]
pub struct DecryptArgs {
    /// The volume: a file container or a block device.
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// How to unlock it.
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// Write to FILE instead of standard output ('-' also means standard output).
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Overwrite FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Also decrypt a volume cut short (a partial copy, the first MiBs of a drive): write the
    /// sectors that are present, nothing for the missing ones, and say how many are missing.
    #[arg(long)]
    pub partial: bool,
}

mod benchmark;
mod escrow;
mod mount;
mod write;

pub use benchmark::*;
pub use escrow::*;
pub use mount::*;
pub use write::*;
