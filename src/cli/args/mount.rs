//! Arguments of mount, unmount and list. Only `clap` and `std` here (build.rs compiles it).

use std::path::PathBuf;

use clap::Args;

use super::{EscrowArgs, UnlockArgs};

/// `tcvault mount`.
#[derive(Args, Debug, Clone)]
pub struct MountArgs {
    /// The volume: a file container or a block device.
    #[arg(value_name = "VOLUME", required_unless_present_any = ["all", "entry"])]
    pub volume: Option<PathBuf>,
    /// Where to mount its filesystem (created if missing). Default: a new directory named
    /// after the volume, printed: under /media/tcvault/ for root, under media/ in your state
    /// directory ($XDG_RUNTIME_DIR/tcvault) otherwise.
    #[arg(value_name = "MOUNTPOINT", conflicts_with = "no_filesystem")]
    pub mountpoint: Option<PathBuf>,
    /// How to unlock it.
    #[command(flatten)]
    pub unlock: UnlockArgs,
    /// Key escrow after the password is accepted.
    #[command(flatten)]
    pub escrow: EscrowArgs,
    /// Mount read-only: nothing is written to the volume.
    #[arg(long, short = 'r')]
    pub read_only: bool,
    /// Do not mount a filesystem; only set up the decrypted block device and print its path.
    #[arg(long)]
    pub no_filesystem: bool,
    /// Extra mount options for the filesystem (comma-separated, as for mount -o).
    #[arg(long, short = 'o', value_name = "OPTIONS")]
    pub mount_options: Option<String>,
    /// Owner of all files, for FAT, exFAT and NTFS (default: the user who ran sudo, if any).
    #[arg(long, value_name = "UID")]
    pub uid: Option<u32>,
    /// Group of all files, for FAT, exFAT and NTFS (default: the group of the user who ran
    /// sudo, if any).
    #[arg(long, value_name = "GID")]
    pub gid: Option<u32>,
    /// Permission mask in octal, for FAT, exFAT and NTFS (e.g. 077).
    #[arg(long, value_name = "OCTAL", value_parser = parse_octal)]
    pub umask: Option<u32>,
    /// Use this slot number (1 to 64) instead of the lowest free one.
    #[arg(long, value_name = "N")]
    pub slot: Option<u32>,
    /// Protect the hidden volume inside this (outer) volume: its password is asked for too,
    /// and any write that would land in the hidden volume is refused, after which the volume
    /// stays read-only until unmounted.
    #[arg(long, conflicts_with = "read_only")]
    pub protect_hidden: bool,
    /// Read the hidden volume's password from FILE ('-' for standard input) for
    /// --protect-hidden; without it the password is asked for on the terminal.
    #[arg(long, value_name = "FILE", requires = "protect_hidden")]
    pub hidden_password_file: Option<PathBuf>,
    /// A keyfile of the hidden volume, for --protect-hidden; repeat for several.
    #[arg(
        long = "hidden-keyfile",
        value_name = "PATH",
        requires = "protect_hidden"
    )]
    pub hidden_keyfiles: Vec<PathBuf>,
    /// The hidden volume's PIM, for --protect-hidden.
    #[arg(long, value_name = "N", requires = "protect_hidden")]
    pub hidden_pim: Option<u32>,
    /// Mount every entry of the mount table (--table) not marked noauto. Entries already
    /// mounted are left alone and reported; one that fails does not stop the others.
    #[arg(
        long,
        short = 'a',
        conflicts_with_all = ["volume", "entry", "slot", "protect_hidden", "no_filesystem"]
    )]
    pub all: bool,
    /// Mount the mount table's entry NAME (also a noauto one).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["volume", "protect_hidden"])]
    pub entry: Option<String>,
    /// The mount table for --all and --entry (default /etc/tcvault/tab). Its lines: name,
    /// volume, mount point (- for the default), password file (none: ask) and options (ro,
    /// noauto, pim=N, prf=NAME, keyfile=PATH); see tcvault-mount(1), MOUNT TABLE.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Print what was mounted as JSON (the object `list --json` gives for it; an array with
    /// --all), and an error as one JSON object with its exit code.
    #[arg(long)]
    pub json: bool,
    /// Mount the way an ordinary user does (the default without root): no loop device and no
    /// kernel mount, a FUSE filesystem driver (fuse2fs, fusefat, ntfs-3g) running
    /// as you on the decrypted FUSE file.
    #[arg(long)]
    pub user_mode: bool,
}

fn parse_octal(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|&m| m <= 0o777)
        .ok_or_else(|| format!("{s}: not an octal mask between 000 and 777"))
}

/// `tcvault unmount`.
#[derive(Args, Debug)]
pub struct UnmountArgs {
    /// A mount point, a volume, a decrypted device (/dev/loopN) or a slot number; several may
    /// be given.
    #[arg(value_name = "MOUNTPOINT|VOLUME", required_unless_present_any = ["all", "entry"])]
    pub targets: Vec<PathBuf>,
    /// Unmount every volume tcvault has mounted (and clean up after dead services); with
    /// --table, every mounted entry of that mount table.
    #[arg(long, short = 'a', conflicts_with = "targets")]
    pub all: bool,
    /// Unmount the mount table's entry NAME (not mounted: said, and not an error).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["targets", "all"])]
    pub entry: Option<String>,
    /// The mount table for --entry and --all (default with --entry: /etc/tcvault/tab).
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Print what was unmounted as a JSON array, and an error as one JSON object with its exit
    /// code.
    #[arg(long)]
    pub json: bool,
    /// Unmount even when files are open or a process sits in the mount point (they get I/O
    /// errors from then on).
    #[arg(long, short = 'f')]
    pub force: bool,
}

/// `tcvault list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print a JSON array (snake_case keys) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `tcvault __mount-service` (hidden): the background service `mount` starts. It reads its
/// settings and keys from standard input, which must be the socket `mount` passes.
#[derive(Args, Debug)]
pub struct MountServiceArgs {}
