//! Arguments of key escrow: the escrow options of the commands that accept a password, `escrow
//! keygen`, and the help-desk restore (`restore --admin ADMIN TARGET`, `-R ADMIN TARGET`).
//! Only `clap` and `std` here (build.rs compiles it).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::{NewSecretArgs, PrfArg};

/// When to escrow a volume's keys.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum EscrowPolicyArg {
    /// Ask on the terminal (without a terminal: do not escrow).
    Ask,
    /// Escrow without asking.
    Yes,
    /// Do not escrow.
    No,
}

/// Key escrow after the password is accepted (only when escrow is configured).
#[derive(Args, Debug, Clone, Default)]
pub struct EscrowArgs {
    /// Escrow the volume's keys: ask, yes or no (default: the configuration's policy, else ask).
    #[arg(long, value_enum, ignore_case = true, value_name = "WHEN")]
    pub escrow: Option<EscrowPolicyArg>,
    /// The escrow client configuration (default: ~/.config/tcvault/escrow.xml, else
    /// /etc/tcvault/escrow.xml).
    #[arg(long, value_name = "FILE")]
    pub escrow_config: Option<PathBuf>,
    /// Read the network user name (first line) and password (second line) for escrow from
    /// FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub escrow_credentials: Option<PathBuf>,
    /// Let this recovery passphrase (read from FILE; at least 12 characters) open the escrow
    /// packet too, so that `tcvault recover` can reset the password without the help desk.
    /// Without it, a deposit asked for on a terminal (`--escrow ask`) asks for one.
    #[arg(long, value_name = "FILE")]
    pub recovery_passphrase_file: Option<PathBuf>,
}

/// `tcvault escrow`.
#[derive(Args, Debug)]
pub struct EscrowCmdArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: EscrowCommand,
}

/// The escrow subcommands.
#[derive(Subcommand, Debug)]
pub enum EscrowCommand {
    /// Make the escrow authority's RSA key pair: the private key as encrypted PKCS#8 PEM, the
    /// public key as PEM; prints the fingerprint (SHA-256 of the DER public key).
    Keygen(KeygenArgs),
    /// List escrow entries: an admin's search (by volume, salt, fingerprint, user, dates), or
    /// with --mine the caller's own deposits.
    Search(EscrowSearchArgs),
    /// Show one escrow entry (an admin any, a user their own).
    Show(EscrowShowArgs),
    /// Ask for an escrow entry to be deleted (a user their own, an admin any); a second admin
    /// approves or rejects it.
    RequestDeletion(EscrowRequestDeletionArgs),
    /// List the pending deletion requests (admin).
    Deletions(EscrowLoginOnlyArgs),
    /// Approve a pending deletion request: the entry is deleted (admin; not the requester).
    Approve(EscrowDecideArgs),
    /// Reject a pending deletion request: the entry stays (admin).
    Reject(EscrowDecideArgs),
    /// List the pending packet fetch requests, under a server's dual control (admin).
    FetchRequests(EscrowLoginOnlyArgs),
    /// Approve a pending fetch request: its admin may then fetch that packet once, for a
    /// restore (admin; not the requester).
    ApproveFetch(EscrowDecideArgs),
    /// Reject a pending fetch request (admin; the requester may withdraw their own).
    RejectFetch(EscrowDecideArgs),
    /// Export escrow entries to a password-protected bundle file (export right).
    Export(EscrowExportArgs),
    /// Import a bundle file made by export, on this or another server (import right).
    Import(EscrowImportArgs),
}

/// How the escrow commands log in to the server of the client configuration.
#[derive(Args, Debug, Clone, Default)]
pub struct EscrowLoginArgs {
    /// The escrow client configuration (default: ~/.config/tcvault/escrow.xml, else
    /// /etc/tcvault/escrow.xml).
    #[arg(long, value_name = "FILE")]
    pub escrow_config: Option<PathBuf>,
    /// Read the network user name (first line) and password (second line) from FILE.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["login", "login_password_file"])]
    pub escrow_credentials: Option<PathBuf>,
    /// The network user name (default: asked).
    #[arg(long, value_name = "NAME")]
    pub login: Option<String>,
    /// Read the network password from FILE instead of asking.
    #[arg(long = "password-file", value_name = "FILE")]
    pub login_password_file: Option<PathBuf>,
    /// Print the server's answer as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// `tcvault escrow deletions`.
#[derive(Args, Debug)]
pub struct EscrowLoginOnlyArgs {
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow search`.
#[derive(Args, Debug)]
pub struct EscrowSearchArgs {
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
    /// The caller's own deposits instead of an admin search (no criteria).
    #[arg(long, conflicts_with_all = ["volume", "salt", "fingerprint", "user", "from", "to", "limit"])]
    pub mine: bool,
    /// Entries whose recorded salts this volume or header backup shows (a search hint only).
    #[arg(long, value_name = "PATH")]
    pub volume: Option<PathBuf>,
    /// A salt (hex).
    #[arg(long, value_name = "HEX", conflicts_with = "volume")]
    pub salt: Option<String>,
    /// A volume fingerprint (hex).
    #[arg(long, value_name = "HEX")]
    pub fingerprint: Option<String>,
    /// Entries escrowed by this user.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// From this date (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// Up to this date.
    #[arg(long, value_name = "DATE")]
    pub to: Option<String>,
    /// At most this many entries (1 to 1000; default 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// `tcvault escrow show`.
#[derive(Args, Debug)]
pub struct EscrowShowArgs {
    /// The escrow number.
    #[arg(value_name = "N")]
    pub number: i64,
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow request-deletion`.
#[derive(Args, Debug)]
pub struct EscrowRequestDeletionArgs {
    /// The escrow number.
    #[arg(value_name = "N")]
    pub number: i64,
    /// Why (shown to the approving admin; at most 1000 characters).
    #[arg(long, value_name = "TEXT", default_value = "")]
    pub reason: String,
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow approve|reject`.
#[derive(Args, Debug)]
pub struct EscrowDecideArgs {
    /// The request's id (see `tcvault escrow deletions` or `tcvault escrow fetch-requests`).
    #[arg(value_name = "ID")]
    pub id: i64,
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow export`.
#[derive(Args, Debug)]
pub struct EscrowExportArgs {
    /// The escrow numbers to export.
    #[arg(value_name = "N", required = true)]
    pub numbers: Vec<i64>,
    /// Where to write the bundle (mode 0600).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: PathBuf,
    /// Read the bundle's password (at least 8 characters) from FILE instead of asking twice.
    #[arg(long, value_name = "FILE")]
    pub bundle_password_file: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow import`.
#[derive(Args, Debug)]
pub struct EscrowImportArgs {
    /// A bundle file made by `tcvault escrow export`.
    #[arg(value_name = "FILE")]
    pub bundle: PathBuf,
    /// Read the bundle's password from FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub bundle_password_file: Option<PathBuf>,
    /// Login and output.
    #[command(flatten)]
    pub login: EscrowLoginArgs,
}

/// `tcvault escrow keygen`.
#[derive(Args, Debug)]
pub struct KeygenArgs {
    /// Where to write the encrypted private key (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub private_key: PathBuf,
    /// Where to write the public key.
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,
    /// Read the private key's passphrase from FILE instead of asking twice.
    #[arg(long, value_name = "FILE", conflicts_with = "shares")]
    pub passphrase_file: Option<PathBuf>,
    /// Split control: do not write the private key whole, but split it into N shares
    /// (FILE.share1 … FILE.shareN for --private-key FILE), each sealed under its own holder's
    /// passphrase; any --threshold of them rebuild it for a restore, fewer tell nothing.
    #[arg(long, value_name = "N", requires = "threshold")]
    pub shares: Option<u8>,
    /// How many of the --shares a restore needs (2 to N).
    #[arg(long, value_name = "M", requires = "shares")]
    pub threshold: Option<u8>,
    /// The passphrase of one share, in share order: give it once per share, or leave it out
    /// and each holder is asked in turn.
    #[arg(long, value_name = "FILE", requires = "shares")]
    pub share_passphrase_file: Vec<PathBuf>,
    /// Key size in bits (at least 3072).
    #[arg(long, value_name = "BITS", default_value_t = 3072)]
    pub bits: usize,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// The options of the help-desk restore (`restore --admin` and `-R`).
#[derive(Args, Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Pick this escrow number without asking.
    #[arg(long, value_name = "N")]
    pub entry: Option<i64>,
    /// The escrow authority's encrypted private key (PEM).
    #[arg(long, value_name = "FILE", conflicts_with = "share")]
    pub private_key: Option<PathBuf>,
    /// Read the private key's passphrase from FILE instead of asking.
    #[arg(long, value_name = "FILE", conflicts_with = "share")]
    pub private_key_passphrase_file: Option<PathBuf>,
    /// A share of the authority private key (from `escrow keygen --shares`): give as many as
    /// its threshold, each once; each holder is asked for their passphrase.
    #[arg(long, value_name = "FILE")]
    pub share: Vec<PathBuf>,
    /// The passphrase of a --share, in the same order: once per share, or not at all.
    #[arg(long, value_name = "FILE", requires = "share")]
    pub share_passphrase_file: Vec<PathBuf>,
    /// Read the admin's network password from FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub admin_password_file: Option<PathBuf>,
    /// The escrow client configuration.
    #[arg(long = "escrow-config", value_name = "FILE")]
    pub restore_escrow_config: Option<PathBuf>,
    /// Search by this user when no entry matches TARGET's salts.
    #[arg(long, value_name = "USER")]
    pub search_user: Option<String>,
    /// Search from this date (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "DATE")]
    pub search_from: Option<String>,
    /// Search up to this date (RFC 3339 or Unix seconds).
    #[arg(long, value_name = "DATE")]
    pub search_to: Option<String>,
    /// What to write, and where the old headers go.
    #[command(flatten)]
    pub write: EscrowedWriteArgs,
    /// Write even when nothing proves that the entry belongs to TARGET (no header copy of it
    /// decrypts under the packet's header key, and its keys show no filesystem in the
    /// volume's data): only on a terminal, after a warning and a typed confirmation, with the
    /// old headers kept. Salts in common are never proof.
    #[arg(long)]
    pub force: bool,
}

/// How a header rebuilt from an escrow entry is written (`-R`, `restore`, `recover`).
#[derive(Args, Debug, Clone, Default)]
pub struct EscrowedWriteArgs {
    /// The new password, keyfiles and PIM.
    #[command(flatten)]
    pub new: NewSecretArgs,
    /// Key derivation of the new header (default: the one recorded in the escrow packet).
    #[arg(long, value_enum, ignore_case = true, value_name = "PRF")]
    pub new_prf: Option<PrfArg>,
    /// Put the header back exactly as it was escrowed, so that the password, keyfiles and PIM
    /// of that time open the volume again; no new password is asked for. Needs an entry in
    /// escrow packet version 3 or later (older packets lack the header's salt, and are
    /// refused before anything is written).
    #[arg(
        long,
        conflicts_with_all = ["new_password_file", "new_keyfiles", "new_pim", "new_prf"]
    )]
    pub old_password: bool,
    /// For a header backup file: write the restored backup to FILE instead of replacing it.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Where to save TARGET's current headers first (default: NAME.old-headers-TIMESTAMP in
    /// the current directory).
    #[arg(long, value_name = "FILE")]
    pub keep_old_header: Option<PathBuf>,
    /// Do not save TARGET's current headers first.
    #[arg(long, conflicts_with = "keep_old_header")]
    pub no_keep_old_header: bool,
}

/// `tcvault recover TARGET`: self-service recovery with the recovery passphrase.
#[derive(Args, Debug)]
pub struct RecoverArgs {
    /// A volume, or a header backup file (131,072 or 1,024 bytes).
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// Read the recovery passphrase (given at the deposit) from FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub recovery_passphrase_file: Option<PathBuf>,
    /// The escrow client configuration (default: ~/.config/tcvault/escrow.xml, else
    /// /etc/tcvault/escrow.xml).
    #[arg(long, value_name = "FILE")]
    pub escrow_config: Option<PathBuf>,
    /// Read your escrow network user name (first line) and password (second line) from FILE
    /// instead of asking.
    #[arg(long, value_name = "FILE")]
    pub escrow_credentials: Option<PathBuf>,
    /// Recover from this escrow number of yours without asking.
    #[arg(long, value_name = "N")]
    pub entry: Option<i64>,
    /// What to write, and where the old headers go.
    #[command(flatten)]
    pub write: EscrowedWriteArgs,
}

/// `tcvault restore --admin ADMIN TARGET`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The escrow admin's network user name.
    #[arg(long, value_name = "ADMIN")]
    pub admin: String,
    /// A volume, or a header backup file (131,072 or 1,024 bytes).
    #[arg(value_name = "TARGET")]
    pub target: PathBuf,
    /// Restore options.
    #[command(flatten)]
    pub opts: RestoreOptions,
}
