//! Command line of `tcvault-escrowd` (compiled into that binary only): password prompts,
//! running the server until SIGTERM, exit codes. The arguments are `args.rs`.
//!
//! Exit codes: 0 success, 1 error (a missing or unreadable audit key included), 2 usage error,
//! 3 `audit verify` found a problem (a broken chain, or a user, escrow entry or deletion
//! request changed, added or removed behind the server's back).
//! Everything printed goes through [`print`](mod@print)'s macros, which never panic.
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
#[path = "../../cli/print.rs"]
// The verbosity level (-q/-v) is the volume tool's; this binary prints at the default level.
#[allow(dead_code)]
mod print;

use std::io::{IsTerminal, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use crate::args::{AuditCommand, Cli, Command, UserCommand, YesNo};
use tcvault::escrow::server::auth::{MAX_PASSWORD_BYTES, hash_password};
use tcvault::escrow::server::config::{self, Config};
use tcvault::escrow::server::store::{AuditEvent, AuditKey, Store, UserRecord};
use tcvault::escrow::server::{Server, ServerError};
use tcvault::secret::{SecretBytes, SecretText};

impl YesNo {
    fn on(self) -> bool {
        matches!(self, YesNo::Yes)
    }
}

type Failure = (u8, String);

fn fail(e: impl std::fmt::Display) -> Failure {
    (1, e.to_string())
}

/// Runs the command line; errors are printed as one line plus a hint.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(()) if print::stdout_failed() => {
            errln!("tcvault-escrowd: error: standard output could not be written");
            ExitCode::from(1)
        }
        Ok(()) => ExitCode::SUCCESS,
        Err((code, msg)) => {
            errln!("tcvault-escrowd: error: {msg}");
            ExitCode::from(code)
        }
    }
}

fn load(path: &Path) -> Result<Config, Failure> {
    Config::load(path).map_err(|e| {
        let hint = if matches!(e, config::ConfigError::Io { .. }) {
            "\nhint: write a sample with `tcvault-escrowd init DIR --host NAME` and pass -c DIR/escrowd.xml"
        } else {
            ""
        };
        (1, format!("{e}{hint}"))
    })
}

fn open_store(config: &Config) -> Result<Store, Failure> {
    Store::open_keyed(&config.database_url, Path::new("."), &config.audit_key).map_err(fail)
}

/// The most problems `audit verify` lists one by one.
const SHOWN_PROBLEMS: usize = 20;

fn verify(config: &Config) -> Result<(), Failure> {
    // A wrong key is not refused here: verify reports what does not check out under it.
    let key = AuditKey::load(&config.audit_key).map_err(fail)?;
    let store = Store::open(&config.database_url, Path::new("."))
        .and_then(|s| s.with_audit_key(key))
        .map_err(fail)?;
    let report = store.verify_audit().map_err(fail)?;
    let keyed = report
        .keyed_from
        .map_or_else(String::new, |seq| format!(", keyed from row {seq}"));
    if report.problems.is_empty() {
        outln!(
            "audit chain intact: {} rows{keyed}, {} users/entries/deletion requests match, \
             head {}",
            report.rows,
            report.records,
            report.head_hash
        );
        Ok(())
    } else {
        // A wrong key or a rewritten table breaks every row: the first problems say what
        // is wrong, the count says how much.
        for p in report.problems.iter().take(SHOWN_PROBLEMS) {
            outln!("audit: {p}");
        }
        if report.problems.len() > SHOWN_PROBLEMS {
            outln!(
                "audit: … and {} more problems (the first {SHOWN_PROBLEMS} are shown)",
                report.problems.len() - SHOWN_PROBLEMS
            );
        }
        Err((
            3,
            format!(
                "audit chain BROKEN: {} problem(s) in {} rows and {} records",
                report.problems.len(),
                report.rows,
                report.records
            ),
        ))
    }
}

fn local_event(event: &str) -> AuditEvent {
    let who = std::env::var("SUDO_USER")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "unknown".to_owned());
    AuditEvent::new(&format!("cli:{who}"), "local", event)
}

fn read_password(file: Option<&Path>, confirm: bool) -> Result<SecretText, Failure> {
    let pw = match file {
        Some(path) => {
            // One line: the password ends at the first newline.
            let raw = if path == Path::new("-") {
                read_secret_line(std::io::stdin().lock())
            } else {
                let f = std::fs::File::open(path)
                    .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
                read_secret_line(f)
            };
            let raw = raw.map_err(|e| fail(format!("cannot read the password: {e}")))?;
            SecretText::from_secret(raw).ok_or_else(|| fail("the password is not UTF-8"))?
        }
        None => {
            if !std::io::stdin().is_terminal() {
                return Err(fail(
                    "no terminal to ask for the password; use --password-file FILE (or - for stdin)",
                ));
            }
            let first = SecretText::from_string(
                rpassword::prompt_password("Password: ").map_err(|e| fail(e.to_string()))?,
            );
            if confirm {
                let again = SecretText::from_string(
                    rpassword::prompt_password("Repeat password: ")
                        .map_err(|e| fail(e.to_string()))?,
                );
                if first != again {
                    return Err(fail("the passwords differ"));
                }
            }
            first
        }
    };
    if pw.is_empty() {
        return Err(fail("empty password"));
    }
    if pw.len() > MAX_PASSWORD_BYTES {
        return Err(fail(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(pw)
}

/// The first line of `r` (without its newline), read byte by byte into a secret buffer so that
/// nothing past the line is consumed and no copy is left in a growing string.
fn read_secret_line(mut r: impl Read) -> std::io::Result<SecretBytes> {
    let mut buf = SecretBytes::zeroed(MAX_PASSWORD_BYTES + 2);
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf.expose_mut()[n..=n]) {
            Ok(0) => break,
            Ok(_) if buf.expose()[n] == b'\n' => break,
            Ok(_) => n += 1,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let line = &buf.expose()[..n];
    Ok(SecretBytes::from_slice(
        line.strip_suffix(b"\r").unwrap_or(line),
    ))
}

fn dispatch(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Init {
            dir,
            host,
            port,
            listen,
            authority_key,
        } => {
            let listen = listen.unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], port)));
            let out =
                config::init_listen(&dir, &host, listen, authority_key.as_deref()).map_err(fail)?;
            outln!("wrote {} (listen {listen})", out.config.display());
            outln!(
                "certificate for clients to trust: {}",
                out.certificate.display()
            );
            outln!(
                "audit key: {} (keep a copy apart from the database; audit verify needs it)",
                out.audit_key.display()
            );
            if out.authority_key.is_none() {
                outln!(
                    "next: copy the escrow authority's RSA PUBLIC key (PEM) to {}",
                    out.authority_key_path.display()
                );
            }
            outln!(
                "then: tcvault-escrowd -c {} user add NAME --admin; tcvault-escrowd -c {} serve",
                out.config.display(),
                out.config.display()
            );
            Ok(())
        }
        Command::CheckConfig => {
            let c = load(&cli.config)?;
            tcvault::escrow::server::authority::AuthorityKey::load(&c.authority_public_key)
                .map_err(fail)?;
            AuditKey::load(&c.audit_key).map_err(fail)?;
            outln!("{}: ok (listen {})", cli.config.display(), c.listen);
            Ok(())
        }
        Command::Serve => serve(load(&cli.config)?),
        Command::User(u) => user(&load(&cli.config)?, u),
        Command::Audit(AuditCommand::Verify) => verify(&load(&cli.config)?),
    }
}

fn user(config: &Config, cmd: UserCommand) -> Result<(), Failure> {
    let store = open_store(config)?;
    match cmd {
        UserCommand::Add {
            name,
            admin,
            export,
            import,
            escrow_required,
            password_file,
        } => {
            if name.is_empty()
                || name.len() > 128
                || name.chars().any(|c| c.is_control() || c == ':')
            {
                return Err(fail(
                    "a user name has 1 to 128 characters, no ':' and no control characters",
                ));
            }
            let pw = read_password(password_file.as_deref(), true)?;
            let hash = hash_password(pw.expose()).map_err(fail)?;
            store
                .add_user(
                    &UserRecord {
                        name: name.clone(),
                        password_hash: hash,
                        admin,
                        export,
                        import,
                        escrow_required,
                    },
                    &local_event("user_add"),
                )
                .map_err(fail)?;
            outln!("added user {name}");
        }
        UserCommand::Passwd {
            name,
            password_file,
        } => {
            if store.user(&name).map_err(fail)?.is_none() {
                return Err(fail(format!("no user {name:?}")));
            }
            let pw = read_password(password_file.as_deref(), true)?;
            let hash = hash_password(pw.expose()).map_err(fail)?;
            store
                .set_password(&name, &hash, &local_event("user_passwd"))
                .map_err(fail)?;
            outln!("changed the password of {name}");
        }
        UserCommand::Remove { name } => {
            store
                .remove_user(&name, &local_event("user_remove"))
                .map_err(fail)?;
            outln!("removed user {name}");
        }
        UserCommand::List => {
            for u in store.users().map_err(fail)? {
                let yn = |b: bool| if b { "yes" } else { "no" };
                outln!(
                    "{}\tadmin={}\texport={}\timport={}\trequire-escrow={}",
                    u.name,
                    yn(u.admin),
                    yn(u.export),
                    yn(u.import),
                    yn(u.escrow_required)
                );
            }
        }
        UserCommand::SetAdmin { name, value } => {
            store
                .set_admin(&name, value.on(), &local_event("user_set_admin"))
                .map_err(fail)?;
            outln!("{name}: admin={}", value.on());
        }
        UserCommand::RequireEscrow { name, value } => {
            let on = value.is_none_or(YesNo::on);
            store
                .set_escrow_required(&name, on, &local_event("user_require_escrow"))
                .map_err(fail)?;
            if on {
                outln!(
                    "{name}: escrow required (their tcvault learns it at the next login to this \
                     server)"
                );
            } else {
                outln!("{name}: escrow no longer required");
            }
        }
        UserCommand::SetRights {
            name,
            export,
            import,
        } => {
            if export.is_none() && import.is_none() {
                return Err((2, "give --export yes|no and/or --import yes|no".to_owned()));
            }
            if let Some(v) = export {
                store
                    .set_export(&name, v.on(), &local_event("user_set_rights"))
                    .map_err(fail)?;
            }
            if let Some(v) = import {
                store
                    .set_import(&name, v.on(), &local_event("user_set_rights"))
                    .map_err(fail)?;
            }
            outln!("{name}: rights updated");
        }
    }
    Ok(())
}

fn serve(config: Config) -> Result<(), Failure> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(format!("cannot start the runtime: {e}")))?;
    rt.block_on(async move {
        let server = Server::bind(config)
            .await
            .map_err(|e: ServerError| fail(e))?;
        server.run(stop_signal()).await;
        Ok(())
    })
}

/// Completes on SIGTERM or SIGINT.
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            // Without signal handlers the process still dies on SIGTERM by default.
            std::future::pending::<()>().await;
        }
    }
}
