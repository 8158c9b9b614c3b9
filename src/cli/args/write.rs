//! Arguments of the commands that write volumes and headers: create, change-password,
//! backup-header, restore-header. Only `clap` and `std` here (build.rs compiles it).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{ChainArg, EscrowArgs, PrfArg, UnlockArgs};

/// A new password, keyfiles and PIM: what `create` protects a volume with and what
/// `change-password` changes to. Without a password file the password is asked for twice on
/// the terminal.
#[derive(Args, Debug, Clone, Default)]
pub struct NewSecretArgs {
    /// Read the new password from FILE ('-' for standard input); one trailing newline is
    /// removed.
    #[arg(long = "new-password-file", value_name = "FILE")]
    pub new_password_file: Option<PathBuf>,
    /// A keyfile (or every file of a directory) for the new header; repeat for several.
    #[arg(long = "new-keyfile", value_name = "PATH")]
    pub new_keyfiles: Vec<PathBuf>,
    /// PIM for the new header (0 or absent: the default iteration count).
    #[arg(long = "new-pim", value_name = "N")]
    pub new_pim: Option<u32>,
}

/// Volume formats `create` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FormatArg {
    /// VeraCrypt (magic VERA, VeraCrypt iteration counts, PIM).
    #[default]
    Veracrypt,
    /// TrueCrypt 7 (magic TRUE; SHA-512, Whirlpool or RIPEMD-160 with TrueCrypt's counts; the
    /// first eight ciphers; no PIM; passwords up to 64 bytes).
    Truecrypt,
}

/// Filesystems `create` can put on a new volume.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FilesystemArg {
    /// No filesystem: the data area holds only the random fill.
    None,
    /// ext4 (mkfs.ext4).
    Ext4,
    /// XFS (mkfs.xfs).
    Xfs,
    /// Btrfs (mkfs.btrfs).
    Btrfs,
    /// FAT12/16/32, chosen by size (mkfs.fat); what VeraCrypt volumes usually hold.
    Fat,
    /// exFAT (mkfs.exfat).
    Exfat,
    /// NTFS (mkfs.ntfs).
    Ntfs,
}

/// `tcvault create`.
#[derive(Args, Debug, Clone)]
pub struct CreateArgs {
    /// The new file container, or a block device (its whole size is used).
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// Size of a new file container: bytes, or a number with K, M, G or T (powers of 1024),
    /// e.g. 500M or 2G. Not used on block devices.
    #[arg(long, value_name = "SIZE", value_parser = parse_volume_size)]
    pub size: Option<u64>,
    /// Cipher chain.
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "aes",
        value_name = "CHAIN"
    )]
    pub cipher: ChainArg,
    /// Key derivation: sha512, sha256, blake2s, whirlpool, streebog or argon2id (VeraCrypt);
    /// sha512, whirlpool or ripemd160 (TrueCrypt).
    #[arg(
        long,
        value_enum,
        ignore_case = true,
        default_value = "sha512",
        value_name = "PRF"
    )]
    pub prf: PrfArg,
    /// Volume format [default: veracrypt; with --hidden, the outer volume's format, the only
    /// one a hidden volume may have].
    #[arg(long, value_enum, ignore_case = true)]
    pub format: Option<FormatArg>,
    /// Read the password from FILE ('-' for standard input); one trailing newline is removed.
    /// Without it the password is asked for twice on the terminal.
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// Use a keyfile (or every file of a directory); repeat for several keyfiles.
    #[arg(short = 'k', long = "keyfile", value_name = "PATH")]
    pub keyfiles: Vec<PathBuf>,
    /// Personal Iterations Multiplier (VeraCrypt only; 0 or absent: the default count).
    #[arg(long, value_name = "N")]
    pub pim: Option<u32>,
    /// Sector size recorded in the header: 512 (files), up to 4096 for devices with larger
    /// sectors.
    #[arg(long, value_name = "BYTES", default_value_t = 512)]
    pub sector_size: u32,
    /// Do not fill the data area with random-looking data (faster; free space then shows
    /// which parts were never written).
    #[arg(long)]
    pub quick: bool,
    /// Replace an existing file, or overwrite a device that holds a filesystem or partition
    /// table.
    #[arg(long)]
    pub force: bool,
    /// Make this filesystem on the new volume (through the same FUSE path as `mount`, with a
    /// loop device as root; needs the mkfs program), so that it is ready to mount. Left out,
    /// it is asked for on a terminal (ext4 offered: the Linux default, which every Linux
    /// kernel and fuse2fs mount; fat or exfat for a volume also used on Windows or macOS, fat
    /// for an outer volume that will hold a hidden one); without a terminal it is `none`.
    /// A hidden volume is offered ext4 as well.
    #[arg(long, value_enum, ignore_case = true, value_name = "FS")]
    pub filesystem: Option<FilesystemArg>,
    /// Filesystem label, with --filesystem.
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// Create a hidden volume inside the existing outer volume VOLUME (needs the outer
    /// volume's password).
    #[arg(long, requires = "size")]
    pub hidden: bool,
    /// The outer volume's password file, for --hidden ('-' for standard input).
    #[arg(long, value_name = "FILE", requires = "hidden")]
    pub outer_password_file: Option<PathBuf>,
    /// The outer volume's keyfiles, for --hidden.
    #[arg(long = "outer-keyfile", value_name = "PATH", requires = "hidden")]
    pub outer_keyfiles: Vec<PathBuf>,
    /// The outer volume's PIM, for --hidden.
    #[arg(long, value_name = "N", requires = "hidden")]
    pub outer_pim: Option<u32>,
    /// Key escrow after the password is accepted.
    #[command(flatten)]
    pub escrow: EscrowArgs,
    /// Print the new volume's settings as one JSON object, and an error as one JSON object
    /// with its exit code.
    #[arg(long)]
    pub json: bool,
}

/// `tcvault change-password`.
#[derive(Args, Debug)]
pub struct ChangePasswordArgs {
    /// The volume (file container or block device).
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// How to open it now (the current password; --hidden for the hidden volume's header).
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// The new password, keyfiles and PIM.
    #[command(flatten)]
    pub new: NewSecretArgs,
    /// A new key derivation (default: keep the current one; with --to-veracrypt: sha512).
    #[arg(long, value_enum, ignore_case = true, value_name = "PRF")]
    pub new_prf: Option<PrfArg>,
    /// Turn a TrueCrypt header into a VeraCrypt one (VeraCrypt counts; keys and data stay).
    #[arg(long)]
    pub to_veracrypt: bool,
    /// Before writing, save the volume's current header slots (first 128 KiB) to FILE in
    /// the 131,072-byte backup format.
    #[arg(long, value_name = "FILE")]
    pub keep_old_header: Option<PathBuf>,
    /// Key escrow after the password is accepted.
    #[command(flatten)]
    pub escrow: EscrowArgs,
}

/// `tcvault backup-header`.
#[derive(Args, Debug)]
pub struct BackupHeaderArgs {
    /// The volume (file container or block device).
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// The backup file to write.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// How to open the normal (outer) volume's header.
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// The hidden volume's password file, to back its header up too ('-' for standard
    /// input). Without it (and without a terminal answer) the hidden half is random.
    #[arg(long, value_name = "FILE")]
    pub hidden_password_file: Option<PathBuf>,
    /// The hidden volume's keyfiles.
    #[arg(long = "hidden-keyfile", value_name = "PATH")]
    pub hidden_keyfiles: Vec<PathBuf>,
    /// The hidden volume's PIM.
    #[arg(long, value_name = "N")]
    pub hidden_pim: Option<u32>,
    /// Also back up the hidden volume's header, asking for its password on the terminal.
    #[arg(long)]
    pub with_hidden: bool,
    /// Write the 1,024-byte format (normal + hidden header) instead of 131,072 bytes.
    #[arg(long)]
    pub compact: bool,
    /// Copy the normal and hidden header slots as they are on disk, still encrypted (1,024
    /// bytes), without asking for a password: the backup a help desk can restore with `-R`
    /// when the password is lost.
    #[arg(long, conflicts_with_all = [
        "password_file", "keyfiles", "pim", "prf", "cipher", "truecrypt", "veracrypt",
        "hidden", "backup_header", "system", "hidden_password_file", "hidden_keyfiles",
        "hidden_pim", "with_hidden", "compact",
    ])]
    pub raw: bool,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// `tcvault restore-header`.
#[derive(Args, Debug)]
pub struct RestoreHeaderArgs {
    /// The volume whose header is restored.
    #[arg(value_name = "VOLUME")]
    pub volume: PathBuf,
    /// Restore from this header backup file (131,072 or 1,024 bytes).
    #[arg(long, value_name = "FILE", required_unless_present = "embedded")]
    pub file: Option<PathBuf>,
    /// Restore from the volume's own embedded backup header.
    #[arg(long, conflicts_with = "file")]
    pub embedded: bool,
    /// How to open the backup (its password, keyfiles, PIM).
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// Where to save the current header slots before writing (default:
    /// VOLUME-NAME.old-headers-TIMESTAMP in the current directory).
    #[arg(long, value_name = "FILE")]
    pub keep_old_header: Option<PathBuf>,
    /// Do not save the current header slots first.
    #[arg(long, conflicts_with = "keep_old_header")]
    pub no_keep_old_header: bool,
    /// Restore even when the backup's keys show no filesystem in this volume's data.
    #[arg(long)]
    pub force: bool,
    /// Key escrow after the password is accepted.
    #[command(flatten)]
    pub escrow: EscrowArgs,
}

/// Parses a size: bytes, or a number with K, M, G, T (powers of 1024; KiB… and KB… accepted).
fn parse_volume_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 1048576, 500M, 2G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("'{s}': unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}
