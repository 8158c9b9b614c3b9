//! Key escrow in the CLI: the offer to escrow after a password is accepted, `escrow keygen`,
//! and the help-desk restore (`tcvault -R ADMIN TARGET`, `tcvault restore --admin ADMIN
//! TARGET`).

use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};

use tcvault::crypto::kdf::Prf;
use tcvault::escrow::client::config::{ClientConfig, Policy};
use tcvault::escrow::client::deposit::{self, DepositError};
use tcvault::escrow::client::http::{ClientError, EscrowClient, Login};
use tcvault::escrow::client::packet::{self, PacketError, Recovery, RsaPrivateKey};
use tcvault::escrow::client::required::RequiredUsers;
use tcvault::escrow::client::restore::{self as escrow_restore, Escrowed, NoProof, RestoreError};
use tcvault::escrow::client::shares::{self, SealedShare, ShareError};
use tcvault::escrow::sealed::Cost;
use tcvault::escrow::wire::{APPROVAL_REQUIRED, Entry, SearchParams};
use tcvault::header::seal::Protection;
use tcvault::header::{Credentials, HostKind, UnlockOptions, UnlockedHeader};
use tcvault::secret::{SecretBytes, SecretText, read_secret};
use tcvault::volume::write::{self, WriteError};
use tcvault::volume::{Host, SlotChoice, Volume};

use super::args::{
    EscrowArgs, EscrowPolicyArg, EscrowedWriteArgs, KeygenArgs, RecoverArgs, RestoreOptions,
};
use super::exit::{BAD_INPUT, CliError, FAILED, USAGE, WRONG_CREDENTIALS};
use super::prompt::ask_line;
use super::unlock::{credentials, prf_of, prompt_secret};

// ---------- the escrow hook ----------

/// Why escrow is required, where it is: the site's configuration, or the server (what it
/// said at the user's last login, remembered in [`RequiredUsers`]).
fn requirement(cfg: &ClientConfig) -> Option<String> {
    if cfg.policy == Policy::Require {
        return Some(format!(
            "escrow is required here (<policy>require</policy> in {})",
            cfg.path.display()
        ));
    }
    let remembered = RequiredUsers::load(&RequiredUsers::default_path()?);
    remembered.user_for(&cfg.server).map(|user| {
        format!(
            "the escrow server {} requires escrow of {user}'s volumes (it said so at the last \
             login; remembered in {})",
            cfg.server,
            remembered.path().display()
        )
    })
}

/// `--escrow no` where escrow is required, for `why`.
fn refused_no(why: &str) -> CliError {
    CliError::msg(format!("{why}: --escrow no is refused"), USAGE)
}

/// A deposit to make.
struct Decision {
    cfg: ClientConfig,
    /// Why escrow is required, where it is.
    required: Option<String>,
    /// The user was asked on a terminal (and may be asked for a recovery passphrase).
    asked: bool,
}

/// Whether to escrow now, with which configuration, and why escrow is required if it is;
/// `None` means "not now" (after saying why, where the user asked for escrow).
///
/// # Errors
/// `--escrow no` where escrow is required; a configuration that cannot be read while the
/// user asked for escrow is only said.
fn decide(a: &EscrowArgs) -> Result<Option<Decision>, CliError> {
    let cfg = match ClientConfig::discover(a.escrow_config.as_deref()) {
        Ok(Some(c)) => c,
        Ok(None) => {
            if a.escrow == Some(EscrowPolicyArg::Yes) {
                errln!(
                    "tcvault: key escrow is not configured (no ~/.config/tcvault/escrow.xml or \
                     /etc/tcvault/escrow.xml); the keys were not escrowed"
                );
            }
            return Ok(None);
        }
        Err(e) => {
            if a.escrow != Some(EscrowPolicyArg::No) {
                errln!("tcvault: {e}; the keys were not escrowed");
            }
            return Ok(None);
        }
    };
    detailln!("escrow server {} (from {})", cfg.server, cfg.path.display());
    if let Some(why) = requirement(&cfg) {
        if a.escrow == Some(EscrowPolicyArg::No) {
            return Err(refused_no(&why));
        }
        return Ok(Some(Decision {
            cfg,
            required: Some(why),
            asked: false,
        }));
    }
    let policy = match a.escrow {
        Some(EscrowPolicyArg::Yes) => Policy::Yes,
        Some(EscrowPolicyArg::Ask) => Policy::Ask,
        Some(EscrowPolicyArg::No) => Policy::No,
        None => cfg.policy,
    };
    Ok(match policy {
        Policy::No => None,
        Policy::Yes | Policy::Require => Some(Decision {
            cfg,
            required: None,
            asked: false,
        }),
        Policy::Ask => {
            if !io::stdin().is_terminal() {
                errln!(
                    "tcvault: the keys were not escrowed: no terminal to ask (use --escrow yes \
                     with --escrow-credentials FILE in scripts)"
                );
                return Ok(None);
            }
            match ask_line("Escrow the keys of this volume? [y/N] ") {
                Ok(ans) if matches!(ans.trim(), "y" | "Y" | "yes" | "Yes" | "YES") => {
                    Some(Decision {
                        cfg,
                        required: None,
                        asked: true,
                    })
                }
                _ => None,
            }
        }
    })
}

/// Before anything is asked or written: `--escrow no` where escrow is required is refused.
///
/// # Errors
/// That refusal.
pub fn check_allowed(a: &EscrowArgs) -> Result<(), CliError> {
    if let Some(f) = &a.recovery_passphrase_file {
        recovery_from_file(f)?;
    }
    if a.escrow != Some(EscrowPolicyArg::No) {
        return Ok(());
    }
    match ClientConfig::discover(a.escrow_config.as_deref()) {
        Ok(Some(cfg)) => match requirement(&cfg) {
            Some(why) => Err(refused_no(&why)),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// After a password was accepted: offers to escrow the keys of the header `u` of the volume
/// at `volume`. Problems (an unreachable server included) are reported and the command goes
/// on, unless escrow is required. (Made on mount, before the volume is mounted.)
///
/// # Errors
/// Where escrow is required: the deposit was not acknowledged.
#[cfg(feature = "mount")]
pub fn offer(volume: &Path, u: &UnlockedHeader, a: &EscrowArgs) -> Result<(), CliError> {
    match decide(a)? {
        Some(d) => deposit(volume, u, &d, a),
        None => Ok(()),
    }
}

/// As [`offer`], for commands that hold only the credentials of the header they wrote
/// (`create`, `restore-header`): the header is opened again only when escrow goes ahead.
///
/// # Errors
/// As [`offer`].
pub fn offer_new(
    volume: &Path,
    creds: &Credentials,
    hidden: bool,
    opts: &UnlockOptions,
    a: &EscrowArgs,
) -> Result<(), CliError> {
    let Some(d) = decide(a)? else {
        return Ok(());
    };
    let slots = SlotChoice {
        hidden,
        ..SlotChoice::default()
    };
    match Volume::open(volume, creds, slots, opts) {
        Ok(v) => deposit(volume, v.unlocked(), &d, a),
        Err(e) => not_escrowed(
            d.required.as_deref(),
            format!("cannot reopen {} for escrow: {e}", volume.display()),
        ),
    }
}

/// Says that the keys were not escrowed because of `why`: a warning, or where escrow is
/// `required` (for that reason) the command's error.
fn not_escrowed(required: Option<&str>, why: String) -> Result<(), CliError> {
    if let Some(rule) = required {
        return Err(
            CliError::msg(format!("{why}; {rule}, so this cannot go ahead"), FAILED)
                .hint("try again once the escrow server acknowledges the deposit"),
        );
    }
    errln!("tcvault: {why}");
    Ok(())
}

fn deposit(
    volume: &Path,
    u: &UnlockedHeader,
    d: &Decision,
    a: &EscrowArgs,
) -> Result<(), CliError> {
    let mut required = d.required.clone();
    match try_deposit(volume, u, d, a, &mut required) {
        Ok(d) if d.already_in_escrow => {
            noteln!(
                "The keys of {} are already in escrow with number {}.",
                volume.display(),
                d.escrow_number
            );
            Ok(())
        }
        Ok(d) => {
            noteln!(
                "Escrowed the keys of {}: escrow number {}.",
                volume.display(),
                d.escrow_number
            );
            Ok(())
        }
        Err(DepositFailure::Library(DepositError::Unreachable(e))) if required.is_none() => {
            errln!(
                "tcvault: {e}\ntcvault: the keys of {} were not escrowed; try again later (open \
                 the volume with --escrow yes)",
                volume.display()
            );
            Ok(())
        }
        Err(e) => not_escrowed(
            required.as_deref(),
            format!(
                "escrow failed: {e}; the keys of {} were not escrowed",
                volume.display()
            ),
        ),
    }
}

#[derive(Debug, thiserror::Error)]
enum DepositFailure {
    #[error(transparent)]
    Library(#[from] DepositError),
    #[error("{0}")]
    Login(String),
    #[error("{0}")]
    Recovery(String),
    #[error(transparent)]
    Volume(#[from] tcvault::volume::VolumeError),
}

/// Logs in, learns whether the server requires escrow of this user (setting `required` and
/// remembering it when it does), and deposits.
fn try_deposit(
    volume: &Path,
    u: &UnlockedHeader,
    d: &Decision,
    a: &EscrowArgs,
    required: &mut Option<String>,
) -> Result<deposit::Deposited, DepositFailure> {
    let cfg = &d.cfg;
    let login = match &a.escrow_credentials {
        Some(f) => login_from_file(f).map_err(DepositFailure::Login)?,
        None => {
            let user = ask_line("Escrow network user name: ")
                .map_err(|e| DepositFailure::Login(format!("cannot read the user name: {e}")))?;
            let password = prompt_secret("Escrow network password: ")
                .map_err(|e| DepositFailure::Login(format!("cannot read the password: {e}")))?;
            let password = SecretText::from_secret(password)
                .ok_or_else(|| DepositFailure::Login("the password is not UTF-8".to_owned()))?;
            Login::new(user.trim().to_owned(), password)
        }
    };
    let (login, account) = deposit::log_in(cfg, &login)?;
    if let Some(account) = account {
        remember(cfg, &account.user, account.escrow_required);
        if account.escrow_required && required.is_none() {
            *required = Some(format!(
                "the escrow server {} requires escrow of {}'s volumes",
                cfg.server, account.user
            ));
        }
    }
    let recovery = match &a.recovery_passphrase_file {
        Some(f) => {
            Some(recovery_from_file(f).map_err(|e| DepositFailure::Recovery(e.to_string()))?)
        }
        None if d.asked => {
            ask_recovery_passphrase().map_err(|e| DepositFailure::Recovery(e.to_string()))?
        }
        None => None,
    };
    let recovery = recovery
        .as_ref()
        .map(|p| Recovery::new(p.expose()))
        .transpose()
        .map_err(|e| DepositFailure::Recovery(e.to_string()))?;
    let host = Host::open(volume)?;
    Ok(deposit::deposit(&host, u, cfg, &login, recovery)?)
}

/// A recovery passphrase from `path`, checked for length.
fn recovery_from_file(path: &Path) -> Result<SecretBytes, CliError> {
    let p = secret_from_file(path, "recovery passphrase file")?;
    Recovery::new(p.expose()).map_err(|e| CliError::new(e, USAGE))?;
    Ok(p)
}

/// On a terminal, after the user agreed to escrow: an optional recovery passphrase (asked
/// twice; Enter for none), at least [`packet::MIN_RECOVERY_PASSPHRASE`] characters.
fn ask_recovery_passphrase() -> Result<Option<SecretBytes>, CliError> {
    let prompt = format!(
        "Recovery passphrase, so that `tcvault recover` can reset the password without the help \
         desk (at least {} characters; Enter: none): ",
        packet::MIN_RECOVERY_PASSPHRASE
    );
    loop {
        let a = prompt_secret(&prompt)?;
        if a.is_empty() {
            return Ok(None);
        }
        if let Err(e) = Recovery::new(a.expose()) {
            errln!("tcvault: {e}");
            continue;
        }
        if prompt_secret("Repeat the recovery passphrase: ")? != a {
            errln!("tcvault: the two passphrases differ");
            continue;
        }
        return Ok(Some(a));
    }
}

/// Keeps what the server said of `user` for the next commands (a failure to write it is
/// only said: the server asks again at the next login).
fn remember(cfg: &ClientConfig, user: &str, escrow_required: bool) {
    let Some(path) = RequiredUsers::default_path() else {
        return;
    };
    let mut r = RequiredUsers::load(&path);
    if let Err(e) = r.set(&cfg.server, user, escrow_required) {
        errln!(
            "tcvault: cannot record in {} that escrow is {}required of {user}: {e}",
            path.display(),
            if escrow_required { "" } else { "no longer " }
        );
    } else if escrow_required {
        detailln!("the escrow server requires escrow of {user}'s volumes");
    }
}

/// At most 64 KiB of `path`, straight into a secret buffer.
pub(super) fn read_small(path: &Path, what: &str, trim: bool) -> Result<SecretBytes, String> {
    let f = std::fs::File::open(path).map_err(|e| format!("{what} {}: {e}", path.display()))?;
    read_secret(f, 64 * 1024, trim).map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// A credentials file: the user name on the first line, the password on the second.
pub(super) fn login_from_file(path: &Path) -> Result<Login, String> {
    let raw = read_small(path, "escrow credentials file", false)?;
    let text = std::str::from_utf8(raw.expose())
        .map_err(|_| format!("escrow credentials file {}: not UTF-8", path.display()))?;
    let mut lines = text.lines();
    let user = lines.next().unwrap_or("").trim();
    let password = lines.next().unwrap_or("");
    if user.is_empty() || password.is_empty() {
        return Err(format!(
            "escrow credentials file {}: the user name goes on the first line, the password \
             on the second",
            path.display()
        ));
    }
    Ok(Login::new(
        user.to_owned(),
        SecretText::from_secret(SecretBytes::from_slice(password.as_bytes()))
            .ok_or_else(|| format!("escrow credentials file {}: not UTF-8", path.display()))?,
    ))
}

/// A secret from a file (one trailing newline removed).
pub(super) fn secret_from_file(path: &Path, what: &str) -> Result<SecretBytes, CliError> {
    read_small(path, what, true).map_err(|m| CliError::msg(m, BAD_INPUT))
}

// ---------- escrow keygen ----------

pub(super) fn packet_err(e: PacketError) -> CliError {
    let code = match e {
        PacketError::KeyTooSmall(_) | PacketError::RecoveryTooShort(_) => USAGE,
        PacketError::Key(_) | PacketError::WrongRecoveryPassphrase => WRONG_CREDENTIALS,
        _ => BAD_INPUT,
    };
    CliError::new(e, code)
}

/// A new passphrase: from `file`, or asked twice as `prompt`.
fn new_passphrase(file: Option<&Path>, prompt: &str) -> Result<SecretBytes, CliError> {
    let pass = match file {
        Some(f) => secret_from_file(f, "passphrase file")?,
        None => {
            let a = prompt_secret(prompt)?;
            let b = prompt_secret("Repeat it: ")?;
            if a != b {
                return Err(CliError::msg("the two passphrases differ", BAD_INPUT));
            }
            a
        }
    };
    if pass.is_empty() {
        return Err(CliError::msg("an empty passphrase protects nothing", USAGE));
    }
    Ok(pass)
}

/// The files of a split key: FILE.share1 … FILE.shareN.
fn share_paths(base: &Path, count: u8) -> Vec<PathBuf> {
    (1..=count)
        .map(|i| {
            let mut p = base.as_os_str().to_owned();
            p.push(format!(".share{i}"));
            PathBuf::from(p)
        })
        .collect()
}

/// `tcvault escrow keygen`.
pub(super) fn keygen(k: &KeygenArgs) -> Result<(), CliError> {
    if k.bits < packet::MIN_KEY_BITS {
        return Err(packet_err(PacketError::KeyTooSmall(k.bits)));
    }
    let private_files = match (k.shares, k.threshold) {
        (Some(count), Some(threshold)) => {
            if !(2..=shares::MAX_SHARES).contains(&count) || !(2..=count).contains(&threshold) {
                return Err(CliError::new(
                    ShareError::Parameters { threshold, count },
                    USAGE,
                ));
            }
            if !k.share_passphrase_file.is_empty()
                && k.share_passphrase_file.len() != usize::from(count)
            {
                return Err(CliError::new(
                    ShareError::Passphrases {
                        count,
                        given: k.share_passphrase_file.len(),
                    },
                    USAGE,
                ));
            }
            share_paths(&k.private_key, count)
        }
        _ => vec![k.private_key.clone()],
    };
    for p in private_files.iter().chain([&k.public_key]) {
        if p.exists() && !k.force {
            return Err(CliError::msg(format!("{} exists", p.display()), BAD_INPUT)
                .hint("add --force to replace it"));
        }
    }
    // Every passphrase is asked for before the key exists.
    let passes = match k.shares {
        Some(count) => (1..=count)
            .map(|i| {
                let file = k.share_passphrase_file.get(usize::from(i) - 1);
                new_passphrase(
                    file.map(PathBuf::as_path),
                    &format!(
                        "Passphrase of share {i} of {count} (its holder; {}): ",
                        private_files[usize::from(i) - 1].display()
                    ),
                )
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![new_passphrase(
            k.passphrase_file.as_deref(),
            "Passphrase for the new private key: ",
        )?],
    };
    noteln!("Generating a {}-bit RSA key…", k.bits);
    let key = packet::generate_key(k.bits).map_err(packet_err)?;
    let public_key = key.to_public_key();
    let public = packet::public_pem(&public_key).map_err(packet_err)?;
    let fp = hex::encode(packet::key_fingerprint(&public_key).map_err(packet_err)?);
    match k.threshold {
        Some(threshold) => {
            let split = shares::split(&key, threshold, &passes, Cost::strong())
                .map_err(|e| CliError::new(e, FAILED))?;
            drop(key);
            for (share, path) in split.iter().zip(&private_files) {
                let text = share.to_json().map_err(|e| CliError::new(e, FAILED))?;
                write::write_backup_file(path, &text, k.force)?;
            }
            write::write_backup_file(&k.public_key, public.as_bytes(), k.force)?;
            noteln!(
                "Split the private key into {} shares, any {threshold} of which rebuild it: \
                 {} … {}; the public key is in {}. Give each share to its holder; no file \
                 holds the whole key.",
                split.len(),
                private_files[0].display(),
                private_files[private_files.len() - 1].display(),
                k.public_key.display()
            );
        }
        None => {
            let private =
                packet::encrypted_private_pem(&key, passes[0].expose()).map_err(packet_err)?;
            write::write_backup_file(&k.private_key, private.expose(), k.force)?;
            write::write_backup_file(&k.public_key, public.as_bytes(), k.force)?;
            noteln!(
                "Wrote the encrypted private key to {} and the public key to {}.",
                k.private_key.display(),
                k.public_key.display()
            );
        }
    }
    outln!("{fp}");
    Ok(())
}

/// The authority private key of a restore: the whole key (`--private-key`), or rebuilt from
/// its shares (`--share`, each opened with its holder's passphrase). Done before anything
/// is asked of the server.
fn authority_private_key(o: &RestoreOptions) -> Result<RsaPrivateKey, CliError> {
    if !o.share.is_empty() {
        return key_from_shares(o);
    }
    let key_path = o.private_key.as_deref().ok_or_else(|| {
        CliError::msg("restore needs the escrow authority's private key", USAGE)
            .hint("give --private-key FILE, or --share FILE once per share of a split key")
    })?;
    let key_pem =
        read_small(key_path, "private key", false).map_err(|m| CliError::msg(m, BAD_INPUT))?;
    let key_pem = SecretText::from_secret(key_pem)
        .ok_or_else(|| CliError::msg(format!("{}: not PEM text", key_path.display()), BAD_INPUT))?;
    let passphrase = match &o.private_key_passphrase_file {
        Some(f) => secret_from_file(f, "passphrase file")?,
        None => prompt_secret(&format!("Passphrase of {}: ", key_path.display()))?,
    };
    packet::load_private_key(key_pem.as_str(), passphrase.expose()).map_err(packet_err)
}

fn share_err(e: ShareError, file: Option<&Path>) -> CliError {
    let code = match e {
        ShareError::WrongPassphrase { .. } => WRONG_CREDENTIALS,
        ShareError::Parameters { .. }
        | ShareError::Passphrases { .. }
        | ShareError::TooFew { .. }
        | ShareError::Duplicate { .. } => USAGE,
        _ => BAD_INPUT,
    };
    match file {
        Some(f) => CliError::msg(format!("{}: {e}", f.display()), code),
        None => CliError::new(e, code),
    }
}

fn key_from_shares(o: &RestoreOptions) -> Result<RsaPrivateKey, CliError> {
    if !o.share_passphrase_file.is_empty() && o.share_passphrase_file.len() != o.share.len() {
        return Err(CliError::msg(
            format!(
                "{} --share files need {0} --share-passphrase-file files in the same order \
                 ({} given), or none (each holder is asked)",
                o.share.len(),
                o.share_passphrase_file.len()
            ),
            USAGE,
        ));
    }
    let mut sealed = Vec::with_capacity(o.share.len());
    for f in &o.share {
        let bytes = std::fs::read(f)
            .map_err(|e| CliError::msg(format!("key share {}: {e}", f.display()), BAD_INPUT))?;
        sealed.push(SealedShare::parse(&bytes).map_err(|e| share_err(e, Some(f)))?);
    }
    shares::check_set(&sealed).map_err(|e| share_err(e, None))?;
    let mut opened = Vec::with_capacity(sealed.len());
    for (i, (s, f)) in sealed.iter().zip(&o.share).enumerate() {
        let pass = match o.share_passphrase_file.get(i) {
            Some(p) => secret_from_file(p, "share passphrase file")?,
            None => prompt_secret(&format!(
                "Passphrase of key share {} of {} ({}): ",
                s.index,
                s.count,
                f.display()
            ))?,
        };
        opened.push(s.open(pass.expose()).map_err(|e| share_err(e, Some(f)))?);
    }
    let key = shares::combine(&opened).map_err(|e| share_err(e, None))?;
    detailln!(
        "rebuilt the authority private key from shares {}",
        opened
            .iter()
            .map(|s| s.index().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(key)
}

// ---------- the help-desk restore ----------

/// `tcvault` without a subcommand: `-R ADMIN TARGET`, or a usage error.
pub fn run_dash_r(restore: Option<Vec<PathBuf>>, opts: &RestoreOptions) -> Result<(), CliError> {
    match restore.as_deref() {
        Some([admin, target]) => match admin.to_str() {
            Some(admin) => self::restore(admin, target, opts),
            None => Err(CliError::msg("ADMIN is not valid UTF-8", USAGE)),
        },
        _ => Err(CliError::msg("no command given", USAGE).hint("see tcvault --help")),
    }
}

fn client_err(e: ClientError) -> CliError {
    let code = match &e {
        ClientError::Refused { status: 401, .. } => WRONG_CREDENTIALS,
        ClientError::Refused { status: 403, .. } => FAILED,
        _ => FAILED,
    };
    let hint = match &e {
        ClientError::Refused { status: 403, .. } => Some(
            "restore needs an escrow admin (USER_ADMIN = 1) calling from a network the server's \
             ADMIN_SUBNET_MASK allows",
        ),
        _ => None,
    };
    let c = CliError::new(e, code);
    match hint {
        Some(h) => c.hint(h),
        None => c,
    }
}

fn restore_err(e: RestoreError) -> CliError {
    match e {
        RestoreError::Client(e) => client_err(e),
        RestoreError::Packet(e) => packet_err(e),
        RestoreError::Volume(e) => e.into(),
        RestoreError::Write(e) => e.into(),
        e @ (RestoreError::EntryMismatch { .. } | RestoreError::UnknownChain { .. }) => {
            CliError::new(e, BAD_INPUT)
        }
        e @ RestoreError::DoesNotReadBack(_) => CliError::new(e, FAILED),
        e @ RestoreError::CannotReproduce { .. } => CliError::new(e, BAD_INPUT)
            .hint("restore under a new password instead (leave out --old-password)"),
    }
}

/// Under the server's dual control: asks for the approval of fetching entry `number` (or
/// finds the request already waiting), and says what happens next; nothing was written.
fn ask_fetch_approval(
    client: &EscrowClient,
    login: &Login,
    number: i64,
    target: &Path,
) -> CliError {
    let reason = format!("restore of {}", target.display());
    match client.request_fetch(login, number, &reason) {
        Ok(s) => CliError::msg(
            format!(
                "the escrow server requires a second admin's approval before the packet of \
                 entry {number} is fetched; fetch request {} waits for it (nothing was written)",
                s.request_id
            ),
            FAILED,
        )
        .hint(format!(
            "another escrow admin approves it with `tcvault escrow approve-fetch {}`; then run \
             this restore again",
            s.request_id
        )),
        Err(e) => client_err(e),
    }
}

fn print_entries(entries: &[Entry]) {
    errln!(
        "  {:>8}  {:<25}  {:<20}  header",
        "number",
        "escrowed",
        "user"
    );
    for e in entries {
        let m = &e.metadata;
        let what = format!(
            "{} {} {}",
            m.get("format").and_then(|v| v.as_str()).unwrap_or("?"),
            if m.get("hidden").and_then(serde_json::Value::as_bool) == Some(true) {
                "hidden"
            } else {
                "normal"
            },
            m.get("chain").and_then(|v| v.as_str()).unwrap_or("?"),
        );
        errln!(
            "  {:>8}  {:<25}  {:<20}  {what}",
            e.escrow_number,
            e.created,
            e.user
        );
    }
}

/// `tcvault -R ADMIN TARGET` / `tcvault restore --admin ADMIN TARGET`.
pub fn restore(admin: &str, target: &Path, o: &RestoreOptions) -> Result<(), CliError> {
    let cfg = escrow_config(o.restore_escrow_config.as_deref())?;
    let host = Host::open(target)?;
    let is_backup = host.kind() != HostKind::Volume;

    // The private key opens before anything is asked of the server: a wrong passphrase (or
    // share) costs no fetch and leaves no audit row.
    let key = authority_private_key(o)?;

    let password = match &o.admin_password_file {
        Some(f) => secret_from_file(f, "admin password file")?,
        None => prompt_secret(&format!("Escrow network password of {admin}: "))?,
    };
    let login = Login::new(
        admin.to_owned(),
        SecretText::from_secret(password)
            .ok_or_else(|| CliError::msg("the admin password is not UTF-8", BAD_INPUT))?,
    );
    let client = EscrowClient::new(&cfg).map_err(client_err)?;
    // One password check for the searches, the fetch and the salts that follow.
    let login = client.open_session(&login).map_err(client_err)?;

    let mut entries =
        escrow_restore::matching_entries(&client, &login, &host).map_err(restore_err)?;
    drop(host);
    if entries.is_empty() {
        errln!(
            "No escrow entry matches the salts of {} (a header backup, or a header changed \
             since the escrow).",
            target.display()
        );
        entries = search_by_hand(&client, &login, o)?;
    }
    if entries.is_empty() {
        return Err(CliError::msg("no escrow entry found", BAD_INPUT));
    }
    errln!("Escrow entries:");
    print_entries(&entries);
    let number = pick_entry(&entries, o.entry)?;
    let escrowed = match escrow_restore::fetch(&client, &login, number, &key) {
        Err(RestoreError::Client(ClientError::Refused {
            status: 403, code, ..
        })) if code == APPROVAL_REQUIRED => {
            return Err(ask_fetch_approval(&client, &login, number, target));
        }
        other => other.map_err(restore_err)?,
    };
    drop(key);

    // Prove that the entry belongs to TARGET before anything is written; the salts the
    // server reports are only how the entry was found.
    check_target(
        target,
        number,
        &escrowed,
        o.force,
        !o.write.no_keep_old_header,
    )?;
    let Some((restored, _, _)) = write_escrowed(target, number, &escrowed, &o.write, is_backup)?
    else {
        return Ok(());
    };
    // The next restore finds the entry by the new header's salts. Not fatal: the header is
    // written, and a search by user or date still finds the entry.
    if !restored.new_salts.is_empty() {
        match client.record_salts(&login, number, restored.new_salts) {
            Ok(_) => noteln!("Recorded the new header's salts on escrow entry {number}."),
            Err(e) => errln!(
                "tcvault: warning: could not record the new header's salts on escrow entry \
                 {number}: {e}"
            ),
        }
    }
    said_master_key_unchanged();
    Ok(())
}

/// Writes the header of `escrowed` (entry `number`, proven to belong to `target`) as `w`
/// says: back as escrowed (`--old-password`: `None` is returned, nothing more to do), or
/// under new credentials (asked for here, and returned with the header's protection), the old
/// headers kept first unless told not to.
fn write_escrowed(
    target: &Path,
    number: i64,
    escrowed: &Escrowed,
    w: &EscrowedWriteArgs,
    is_backup: bool,
) -> Result<Option<(escrow_restore::Restored, Credentials, Protection)>, CliError> {
    let header = &escrowed.header;
    let keep = if w.no_keep_old_header {
        None
    } else {
        Some(
            w.keep_old_header
                .clone()
                .unwrap_or_else(|| write::default_keep_path(target)),
        )
    };
    let output = w.output.as_deref().filter(|_| is_backup);
    if w.old_password {
        let restored = escrow_restore::write_as_escrowed(target, escrowed, keep.as_deref(), output)
            .map_err(restore_err)?;
        said_kept(target, keep.as_deref());
        noteln!(
            "Restored the {} header of {} as escrowed in entry {number} (by {} on {}): the \
             password, keyfiles and PIM of that time open it again.",
            role_word(header),
            restored.path.display(),
            escrowed.entry.user,
            escrowed.entry.created
        );
        said_how_to_restore(is_backup, &restored.path);
        return Ok(None);
    }
    let prf = match w.new_prf {
        Some(p) => prf_of(p),
        None => escrowed.prf.unwrap_or(Prf::Sha512),
    };
    let creds = credentials(
        w.new.new_password_file.as_deref(),
        &w.new.new_keyfiles,
        w.new.new_pim,
        &format!("New password for {}", target.display()),
        true,
    )?;
    let prot = Protection::for_scheme(header.family, prf, creds.pim(), escrowed.scheme)
        .map_err(WriteError::from)?;
    let restored = escrow_restore::write(target, escrowed, prot, &creds, keep.as_deref(), output)
        .map_err(restore_err)?;
    said_kept(target, keep.as_deref());
    noteln!(
        "Restored the {} header of {} from escrow entry {number} (escrowed by {} on {}); it \
         opens with the new password.",
        role_word(header),
        restored.path.display(),
        escrowed.entry.user,
        escrowed.entry.created
    );
    said_how_to_restore(is_backup, &restored.path);
    Ok(Some((restored, creds, prot)))
}

/// After a restore under a new password.
fn said_master_key_unchanged() {
    noteln!(
        "Reminder: the master key did not change. Older headers and header backups still open \
         the volume with their old passwords; to revoke them, copy the data to a new volume."
    );
}

// ---------- self-service recovery ----------

/// The escrow client configuration `path` names, or the one found; an error when there is
/// none.
fn escrow_config(path: Option<&Path>) -> Result<ClientConfig, CliError> {
    ClientConfig::discover(path)
        .map_err(|e| CliError::new(e, BAD_INPUT))?
        .ok_or_else(|| {
            CliError::msg("key escrow is not configured", USAGE)
                .hint("give --escrow-config FILE or write ~/.config/tcvault/escrow.xml")
        })
}

/// The server's refusals of a recovery, with what they mean to the user.
fn recover_client_err(e: ClientError) -> CliError {
    let code = match &e {
        ClientError::Refused { status: 401, .. } => WRONG_CREDENTIALS,
        ClientError::Refused {
            status: 404 | 409, ..
        } => BAD_INPUT,
        _ => FAILED,
    };
    CliError::new(e, code)
}

/// `tcvault recover TARGET`: the user who deposited an entry with a recovery passphrase
/// fetches it (logged in as themselves: no admin, no authority key), opens it with the
/// passphrase, proves that it belongs to TARGET and writes the header under a new password
/// (or as escrowed), then escrows the new header with the same passphrase.
pub fn recover(a: &RecoverArgs) -> Result<(), CliError> {
    let target = a.target.as_path();
    let cfg = escrow_config(a.escrow_config.as_deref())?;
    let host = Host::open(target)?;
    let is_backup = host.kind() != HostKind::Volume;
    let login = match &a.escrow_credentials {
        Some(f) => login_from_file(f).map_err(|m| CliError::msg(m, BAD_INPUT))?,
        None => {
            let user = ask_line("Escrow network user name: ")
                .map_err(|e| CliError::msg(format!("cannot read the user name: {e}"), BAD_INPUT))?;
            let password = prompt_secret("Escrow network password: ")?;
            let password = SecretText::from_secret(password)
                .ok_or_else(|| CliError::msg("the password is not UTF-8", BAD_INPUT))?;
            Login::new(user.trim().to_owned(), password)
        }
    };
    let client = EscrowClient::new(&cfg).map_err(recover_client_err)?;
    let login = client.open_session(&login).map_err(recover_client_err)?;
    let (matching, all) =
        escrow_restore::own_recoverable_entries(&client, &login, &host).map_err(|e| match e {
            RestoreError::Client(e) => recover_client_err(e),
            other => restore_err(other),
        })?;
    drop(host);
    if all.is_empty() {
        return Err(CliError::msg(
            format!(
                "none of {}'s escrow entries has a recovery passphrase; nothing was written",
                login.user
            ),
            BAD_INPUT,
        )
        .hint("ask the help desk for a restore (tcvault -R)"));
    }
    let entries = if matching.is_empty() {
        errln!(
            "None of your entries matches the salts of {} (a header backup, or a header              changed since the escrow); these are all your entries with a recovery passphrase:",
            target.display()
        );
        all
    } else {
        errln!("Your escrow entries with a recovery passphrase:");
        matching
    };
    print_entries(&entries);
    let number = pick_entry(&entries, a.entry)?;
    let passphrase = match &a.recovery_passphrase_file {
        Some(f) => secret_from_file(f, "recovery passphrase file")?,
        None => prompt_secret("Recovery passphrase: ")?,
    };
    let escrowed = escrow_restore::fetch_own(&client, &login, number, passphrase.expose())
        .map_err(|e| match e {
            RestoreError::Client(e) => recover_client_err(e),
            other => restore_err(other),
        })?;
    // The same proof as the help desk's restore, and no --force: a user never writes an
    // entry that nothing ties to the target.
    check_target(
        target,
        number,
        &escrowed,
        false,
        !a.write.no_keep_old_header,
    )?;
    let Some((restored, creds, prot)) =
        write_escrowed(target, number, &escrowed, &a.write, is_backup)?
    else {
        return Ok(());
    };
    // Escrow the new header with the same passphrase: the entry then holds the header the
    // volume has, and the next recovery or restore finds it by its salts. Not fatal: the
    // header is written.
    let slots = SlotChoice {
        hidden: escrowed.header.is_hidden(),
        ..SlotChoice::default()
    };
    let again = Volume::open(&restored.path, &creds, slots, &prot.only())
        .map_err(|e| e.to_string())
        .and_then(|v| {
            let recovery = Recovery::new(passphrase.expose()).map_err(|e| e.to_string())?;
            deposit::deposit(v.host(), v.unlocked(), &cfg, &login, Some(recovery))
                .map_err(|e| e.to_string())
        });
    match again {
        Ok(d) => noteln!(
            "Escrowed the new header with the same recovery passphrase (escrow number {}).",
            d.escrow_number
        ),
        Err(e) => errln!(
            "tcvault: warning: the new header was not escrowed: {e}; open the volume with \
             --escrow yes to escrow it"
        ),
    }
    said_master_key_unchanged();
    Ok(())
}

/// "normal" or "hidden volume's", for the header restored.
fn role_word(header: &tcvault::header::format::Header) -> &'static str {
    if header.is_hidden() {
        "hidden volume's"
    } else {
        "normal"
    }
}

/// For a header backup file restored: how the user puts it back into the volume.
fn said_how_to_restore(is_backup: bool, path: &Path) {
    if is_backup {
        errln!(
            "The user restores it with `tcvault restore-header VOLUME --file {}`.",
            path.display()
        );
    }
}

/// Says where the previous headers of `target` were saved, when they were.
fn said_kept(target: &Path, keep: Option<&Path>) {
    if let Some(k) = keep {
        errln!(
            "Saved the previous headers of {} to {}.",
            target.display(),
            k.display()
        );
    }
}

/// The search an admin gives (options, or prompts on a terminal) when no entry matches the
/// target's salts.
fn search_by_hand(
    client: &EscrowClient,
    login: &Login,
    o: &RestoreOptions,
) -> Result<Vec<Entry>, CliError> {
    let mut q = SearchParams {
        user: o.search_user.clone(),
        from: o.search_from.clone(),
        to: o.search_to.clone(),
        number: o.entry.map(|n| n.to_string()),
        ..SearchParams::default()
    };
    let given = q.user.is_some() || q.from.is_some() || q.to.is_some() || q.number.is_some();
    if !given {
        if !io::stdin().is_terminal() {
            return Err(CliError::msg("no escrow entry matches TARGET", BAD_INPUT)
                .hint("search with --search-user, --search-from, --search-to, or pick --entry N"));
        }
        let nonempty = |s: String| {
            let t = s.trim().to_owned();
            (!t.is_empty()).then_some(t)
        };
        q.user = ask_line("Search by user (Enter: any): ")
            .ok()
            .and_then(nonempty);
        q.from = ask_line("From date (RFC 3339 or Unix seconds; Enter: any): ")
            .ok()
            .and_then(nonempty);
        q.to = ask_line("Up to date (Enter: any): ")
            .ok()
            .and_then(nonempty);
    }
    client.search(login, &q).map_err(client_err)
}

/// The entry to restore from: `--entry N`, the only one without a terminal, or asked.
fn pick_entry(entries: &[Entry], given: Option<i64>) -> Result<i64, CliError> {
    let number = match given {
        Some(n) => n,
        None if entries.len() == 1 && !io::stdin().is_terminal() => entries[0].escrow_number,
        None => {
            if !io::stdin().is_terminal() {
                return Err(CliError::msg(
                    "several entries match; pick one with --entry N",
                    USAGE,
                ));
            }
            ask_line("Escrow number to restore from: ")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| CliError::msg("not an escrow number", USAGE))?
        }
    };
    if !entries.iter().any(|e| e.escrow_number == number) {
        return Err(CliError::msg(
            format!("escrow number {number} is not among the entries listed"),
            USAGE,
        ));
    }
    Ok(number)
}

/// Asks the library for proof that escrow entry `number` belongs to `target`. Without proof:
/// refused (exit 4), or, with `force` on a terminal (and the old headers kept), written after
/// a warning and an explicit confirmation.
fn check_target(
    target: &Path,
    number: i64,
    escrowed: &Escrowed,
    force: bool,
    keeps_old: bool,
) -> Result<(), CliError> {
    let host = Host::open(target)?;
    let why = match escrowed.prove(&host) {
        Ok(p) => {
            noteln!("Checked: {p}.");
            return Ok(());
        }
        Err(NoProof::Unreadable(e)) => return Err(e.into()),
        Err(e @ NoProof::DoesNotFit { .. }) => {
            return Err(CliError::msg(
                format!(
                    "escrow entry {number} belongs to another volume: {e}; nothing was written"
                ),
                BAD_INPUT,
            ));
        }
        Err(NoProof::Nothing(why)) => why,
    };
    let refusal = || {
        CliError::msg(
            format!(
                "nothing shows that escrow entry {number} belongs to {}: {why}; it may be \
                 another volume's (the salts the server reports can be posted by anyone, so \
                 they prove nothing); nothing was written",
                target.display()
            ),
            BAD_INPUT,
        )
    };
    if !force {
        return Err(refusal().hint(
            "restore from a header backup made while the password was known, or add --force \
             on a terminal to write anyway",
        ));
    }
    if !io::stdin().is_terminal() {
        return Err(refusal().hint("--force is honoured only on a terminal, after a warning"));
    }
    if !keeps_old {
        return Err(refusal().hint("--force needs the old headers kept: drop --no-keep-old-header"));
    }
    errln!(
        "WARNING: nothing shows that escrow entry {number} belongs to {}: {why}.\n\
         The salts the server reports can be posted by anyone. If the entry is another \
         volume's, writing it puts the wrong keys into this header: the volume no longer opens \
         with its own password (and shows garbage under the new one) until its old header is \
         restored from the kept copy.",
        target.display()
    );
    match ask_line("Type \"overwrite\" to write it anyway: ") {
        Ok(ans) if ans.trim() == "overwrite" => {
            errln!("Writing entry {number} unproven (--force, confirmed).");
            Ok(())
        }
        _ => Err(refusal().hint("not confirmed")),
    }
}
