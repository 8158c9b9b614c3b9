//! The arguments of `tcvault-escrowd`. build.rs compiles this file too (for the man page and
//! shell completions), so it may use only `clap` and `std`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// The tcvault key escrow server: stores volume key escrow packets (sealed to the escrow
/// authority's key; the server never sees a volume key) and hands them to help-desk admins.
#[derive(Debug, Parser)]
#[command(name = "tcvault-escrowd", version)]
pub struct Cli {
    /// Configuration file.
    #[arg(short, long, global = true, default_value = "/etc/tcvault/escrowd.xml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (stops cleanly on SIGTERM or Ctrl-C).
    Serve,
    /// Check the configuration file and exit.
    CheckConfig,
    /// Write a sample configuration, a self-signed certificate, a new audit key and an SQLite
    /// path into DIR.
    Init {
        /// Folder to write into (created if needed; existing files are not overwritten).
        dir: PathBuf,
        /// Host name clients use to reach the server (goes into the certificate).
        #[arg(long)]
        host: String,
        /// Port to listen on (on all addresses).
        #[arg(long, default_value_t = 8443, conflicts_with = "listen")]
        port: u16,
        /// Address and port to listen on, e.g. 10.1.2.3:8443 (IPv6 in brackets; instead of --port).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// The escrow authority's RSA PUBLIC key (PEM) to install; private keys are refused.
        #[arg(long, value_name = "PEM")]
        authority_key: Option<PathBuf>,
    },
    /// Manage users (the USER table).
    #[command(subcommand)]
    User(UserCommand),
    /// Audit table tools.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Add a user (password from a prompt or --password-file).
    Add {
        /// User name (the network user name).
        name: String,
        /// USER_ADMIN = 1: may search, fetch packets for restore, approve deletions.
        #[arg(long)]
        admin: bool,
        /// May export bundles.
        #[arg(long)]
        export: bool,
        /// May import bundles.
        #[arg(long)]
        import: bool,
        /// The user's volumes must be escrowed before use (see `user require-escrow`).
        #[arg(long)]
        escrow_required: bool,
        /// Read the password from the first line of FILE ("-" = standard input).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Change a user's password.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from the first line of FILE ("-" = standard input).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Remove a user (their escrow entries stay).
    Remove {
        /// User name.
        name: String,
    },
    /// List users and their rights.
    List,
    /// Set or clear USER_ADMIN.
    SetAdmin {
        /// User name.
        name: String,
        /// yes or no.
        value: YesNo,
    },
    /// Require (or with `no`, stop requiring) that the user's tcvault escrow every volume
    /// they open, create or give a new header, before it is used. Their tcvault learns it at
    /// its next login to this server and remembers it.
    RequireEscrow {
        /// User name.
        name: String,
        /// yes (the default) or no.
        value: Option<YesNo>,
    },
    /// Set or clear the export and import rights.
    SetRights {
        /// User name.
        name: String,
        /// May export bundles.
        #[arg(long)]
        export: Option<YesNo>,
        /// May import bundles.
        #[arg(long)]
        import: Option<YesNo>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check the keyed audit chain and the users, escrow entries and deletion requests it
    /// records; exit 3 if anything was changed, added or removed behind the server's back.
    Verify,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum YesNo {
    /// Set it.
    Yes,
    /// Clear it.
    No,
}
