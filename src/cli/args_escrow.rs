// Arguments of key escrow: the escrow options of the commands that accept a password, `escrow
// keygen`, and the help-desk restore (`restore --admin ADMIN TARGET`, `-R ADMIN TARGET`).
// Included by args.rs (clap and std only).

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
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
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
    #[arg(long, value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Read the private key's passphrase from FILE instead of asking.
    #[arg(long, value_name = "FILE")]
    pub private_key_passphrase_file: Option<PathBuf>,
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
    /// The new password, keyfiles and PIM.
    #[command(flatten)]
    pub new: NewSecretArgs,
    /// Key derivation of the new header (default: the one recorded in the escrow packet).
    #[arg(long, value_enum, ignore_case = true, value_name = "PRF")]
    pub new_prf: Option<PrfArg>,
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
    /// Write even when nothing proves that the entry belongs to TARGET (no header copy of it
    /// decrypts under the packet's header key, and its keys show no filesystem in the
    /// volume's data): only on a terminal, after a warning and a typed confirmation, with the
    /// old headers kept. Salts in common are never proof.
    #[arg(long)]
    pub force: bool,
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
