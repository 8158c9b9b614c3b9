//! Turning `UnlockArgs` into credentials and options, reading the password.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tcvault::crypto::chain::ChainId;
use tcvault::crypto::kdf::Prf;
use tcvault::header::unlock::{UnlockError, UnlockProgress, UnlockedHeader};
use tcvault::header::{Credentials, Family, UnlockOptions};
use tcvault::secret::{Password, Pim, SecretBytes, read_secret};
use tcvault::volume::keyfiles::read_keyfiles;
use tcvault::volume::truncated::ReadableVolume;
use tcvault::volume::{Host, SlotChoice, Volume, VolumeError};

use super::args::{ChainArg, PrfArg, UnlockArgs};
use super::exit::{BAD_INPUT, CliError, USAGE};
pub(super) use super::prompt::prompt_secret;

/// Reads the password and keyfiles, then opens `path` (to mount it).
#[cfg(feature = "mount")]
pub fn open_volume(path: &Path, a: &UnlockArgs) -> Result<Volume, CliError> {
    open_for_read(path, a).map(|(v, _)| v)
}

/// Reads the password and keyfiles, then opens `path` for reading, also when it is cut short.
pub fn open_readable(path: &Path, a: &UnlockArgs) -> Result<ReadableVolume, CliError> {
    with_tries(path, a, |creds, opts, slots| {
        ReadableVolume::open(path, creds, slots, opts)
    })
    .map(|(v, _)| v)
}

/// Reads the password and keyfiles, opens `path` read-only (whole, not cut short), and returns
/// the volume with the credentials that opened it.
pub fn open_for_read(path: &Path, a: &UnlockArgs) -> Result<(Volume, Credentials), CliError> {
    with_tries(path, a, |creds, opts, slots| {
        Volume::open(path, creds, slots, opts)
    })
}

/// Reads the password and keyfiles, opens `path` for writing, and returns the volume with the
/// credentials that opened it.
pub fn open_for_write(path: &Path, a: &UnlockArgs) -> Result<(Volume, Credentials), CliError> {
    with_tries(path, a, |creds, opts, slots| {
        let host = Host::open_writable(path)?;
        Volume::open_on(host, creds, slots, opts)
    })
}

/// How often a password typed on the terminal may be wrong before tcvault gives up (as
/// cryptsetup does).
pub const TRIES: u32 = 3;

/// A volume opened by [`with_tries`]: what `-v` says about the header that opened it.
trait OpenedVolume {
    fn header(&self) -> &UnlockedHeader;
}

impl OpenedVolume for Volume {
    fn header(&self) -> &UnlockedHeader {
        self.unlocked()
    }
}

impl OpenedVolume for ReadableVolume {
    fn header(&self) -> &UnlockedHeader {
        self.unlocked()
    }
}

/// Checks `path` first (a missing or unusable volume is said before any password is asked
/// for), then reads the password and keyfiles and calls `open`. A password typed on the
/// terminal that opens no header is said, and asked for again, up to [`TRIES`] times; one from
/// a file is tried once. While the key search runs, a terminal shows what it is trying.
fn with_tries<T: OpenedVolume>(
    path: &Path,
    a: &UnlockArgs,
    open: impl Fn(&Credentials, &UnlockOptions, SlotChoice) -> Result<T, VolumeError>,
) -> Result<(T, Credentials), CliError> {
    drop(Host::open(path)?);
    let typed = a.password_file.is_none() && io::stdin().is_terminal();
    let mut attempt = 1;
    loop {
        let (creds, mut opts, slots) = unlock_inputs(path, a)?;
        let started = Instant::now();
        let result = if super::print::progress_shown() {
            let progress = UnlockProgress::new();
            opts.progress = Some(Arc::clone(&progress));
            search_with_progress(&progress, || open(&creds, &opts, slots))
        } else {
            open(&creds, &opts, slots)
        };
        match result {
            Ok(v) => {
                let u = v.header();
                detailln!(
                    "{} opened with its {}: {}, {}, {} (key search {:.2} s)",
                    path.display(),
                    u.slot,
                    u.header.family,
                    u.kdf.prf().display_name(),
                    u.scheme,
                    started.elapsed().as_secs_f64()
                );
                return Ok((v, creds));
            }
            Err(VolumeError::Unlock(UnlockError::NoMatch)) if typed && attempt < TRIES => {
                attempt += 1;
                errln!(
                    "tcvault: no header opens with that password, keyfiles and PIM; try again \
                     ({attempt} of {TRIES})"
                );
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `search` while a line on standard error says what it is trying (the format and PRF,
/// and how many of the planned key derivations are done), redrawn a few times a second, and
/// cleared at the end.
fn search_with_progress<T>(progress: &UnlockProgress, search: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let line = match progress.snapshot() {
                    (_, _, None) => "Checking the password".to_string(),
                    (n, total, Some((family, prf))) => format!(
                        "Checking the password: {family} {} ({n} of {total} key derivations)",
                        prf.display_name()
                    ),
                };
                err!("\r\x1b[K{line} (Ctrl-C stops)...");
                std::thread::park_timeout(Duration::from_millis(150));
            }
            err!("\r\x1b[K");
        });
        let out = search();
        done.store(true, Ordering::Relaxed);
        ticker.thread().unpark();
        out
    })
}

/// The credentials, unlock options and slots `a` asks for (reads the password).
pub fn unlock_inputs(
    path: &Path,
    a: &UnlockArgs,
) -> Result<(Credentials, UnlockOptions, SlotChoice), CliError> {
    if a.pim.is_some_and(|p| p != 0) && a.truecrypt {
        return Err(CliError::msg("TrueCrypt volumes take no PIM", USAGE));
    }
    let prompt = format!("Password for {}", path.display());
    let creds = credentials(
        a.password_file.as_deref(),
        &a.keyfiles,
        a.pim,
        &prompt,
        false,
    )?;
    let opts = UnlockOptions {
        family: match (a.truecrypt, a.veracrypt) {
            (true, _) => Some(Family::TrueCrypt),
            (_, true) => Some(Family::VeraCrypt),
            _ => None,
        },
        prf: a.prf.map(prf_of),
        chain: a.cipher.map(chain_of),
        system: a.system,
        ..UnlockOptions::default()
    };
    let slots = SlotChoice {
        hidden: a.hidden,
        backup: a.backup_header,
        system: a.system,
    };
    Ok((creds, opts, slots))
}

/// Builds credentials from a password (read from `password_file`, or asked for on the terminal
/// with `prompt`, twice when `confirm`), keyfiles and a PIM.
pub fn credentials(
    password_file: Option<&Path>,
    keyfiles: &[PathBuf],
    pim: Option<u32>,
    prompt: &str,
    confirm: bool,
) -> Result<Credentials, CliError> {
    let pim = match pim {
        None => 0,
        Some(n) => Pim::new(n)
            .map_err(|n| CliError::msg(format!("--pim {n} is larger than {}", Pim::MAX), USAGE))?
            .value(),
    };
    let keyfiles = read_keyfiles(keyfiles)?;
    let password = read_password(password_file, prompt, !keyfiles.is_empty(), confirm)?;
    Ok(Credentials::new(&password, &keyfiles, pim)?)
}

fn read_password(
    password_file: Option<&Path>,
    prompt: &str,
    have_keyfiles: bool,
    confirm: bool,
) -> Result<Password, CliError> {
    let raw = match password_file {
        Some(p) if p.as_os_str() == "-" => {
            read_secret(io::stdin().lock(), MAX_PASSWORD_FILE, false).map_err(|e| {
                CliError::new(e, BAD_INPUT).hint("could not read the password from standard input")
            })?
        }
        Some(p) => {
            let f = File::open(p).map_err(|e| {
                CliError::msg(format!("password file {}: {e}", p.display()), BAD_INPUT)
            })?;
            read_secret(f, MAX_PASSWORD_FILE, false).map_err(|e| {
                CliError::msg(format!("password file {}: {e}", p.display()), BAD_INPUT)
            })?
        }
        None if !io::stdin().is_terminal() && under_systemd() => ask_systemd(prompt)?,
        None => {
            if !io::stdin().is_terminal() {
                return Err(
                    CliError::msg("no terminal to ask for the password", BAD_INPUT).hint(
                        "use --password-file FILE, or --password-file - to read standard input",
                    ),
                );
            }
            let prompt = if have_keyfiles {
                format!("{prompt} (Enter for none): ")
            } else {
                format!("{prompt}: ")
            };
            let mut attempt = 1;
            loop {
                let first = prompt_secret(&prompt)?;
                if !confirm {
                    break first;
                }
                let again = prompt_secret("Repeat it: ")?;
                if again.expose() == first.expose() {
                    break first;
                }
                if attempt == TRIES {
                    return Err(CliError::msg("the two passwords differ", BAD_INPUT));
                }
                attempt += 1;
                errln!("tcvault: the two passwords differ; again ({attempt} of {TRIES})");
            }
        }
    };
    let mut bytes = raw.expose();
    if (password_file.is_some() || !io::stdin().is_terminal())
        && let Some(stripped) = bytes.strip_suffix(b"\n")
    {
        bytes = stripped.strip_suffix(b"\r").unwrap_or(stripped);
    }
    let password = Password::new(bytes).map_err(|e| CliError::new(e, BAD_INPUT))?;
    if confirm && password_file.is_none() && !have_keyfiles {
        warn_if_short(bytes);
    }
    Ok(password)
}

/// The length below which a new password gets a warning: VeraCrypt's advice is 20 characters
/// or more (it warns below that too), since a shorter one falls to a brute-force search.
pub const SHORT_PASSWORD: usize = 20;

/// Warns about a new password typed at the prompt with fewer than [`SHORT_PASSWORD`]
/// characters and no keyfiles beside it.
fn warn_if_short(password: &[u8]) {
    let chars = String::from_utf8_lossy(password).chars().count();
    if chars < SHORT_PASSWORD {
        errln!(
            "tcvault: warning: the new password has {chars} characters; short passwords fall \
             to brute-force searches: 20 or more are advised"
        );
    }
}

/// Whether this process runs in a systemd unit (systemd gives each one `INVOCATION_ID`) and
/// `systemd-ask-password` is installed: then a password with no terminal to ask on is asked
/// through it (its agents ask on the console, in Plymouth at boot, or in
/// `systemd-tty-ask-password-agent`).
fn under_systemd() -> bool {
    std::env::var_os("INVOCATION_ID").is_some() && ask_password_program().is_some()
}

fn ask_password_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|d| d.join("systemd-ask-password"))
        .find(|p| p.is_file())
}

/// Asks through `systemd-ask-password`, which prints the password and a newline.
fn ask_systemd(prompt: &str) -> Result<SecretBytes, CliError> {
    let exe = ask_password_program()
        .ok_or_else(|| CliError::msg("systemd-ask-password is not installed", BAD_INPUT))?;
    let mut child = std::process::Command::new(&exe)
        .arg("--id=tcvault")
        .arg("--timeout=0")
        .arg(format!("{prompt}:"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| CliError::msg(format!("cannot run {}: {e}", exe.display()), BAD_INPUT))?;
    let read = child
        .stdout
        .take()
        .map(|out| read_secret(out, MAX_PASSWORD_FILE, false));
    let status = child.wait();
    match (read, status) {
        (Some(Ok(pw)), Ok(st)) if st.success() => Ok(pw),
        (_, st) => Err(CliError::msg(
            format!(
                "systemd-ask-password gave no password ({})",
                st.map_or_else(|e| e.to_string(), |s| s.to_string())
            ),
            BAD_INPUT,
        )),
    }
}

/// Most bytes read from a password file (far more than any password).
const MAX_PASSWORD_FILE: usize = 4096;

pub fn prf_of(p: PrfArg) -> Prf {
    match p {
        PrfArg::Sha512 => Prf::Sha512,
        PrfArg::Sha256 => Prf::Sha256,
        PrfArg::Blake2s => Prf::Blake2s,
        PrfArg::Whirlpool => Prf::Whirlpool,
        PrfArg::Streebog => Prf::Streebog,
        PrfArg::Ripemd160 => Prf::Ripemd160,
        PrfArg::Sha1 => Prf::Sha1,
        PrfArg::Argon2id => Prf::Argon2id,
    }
}

pub fn chain_of(c: ChainArg) -> ChainId {
    match c {
        ChainArg::Aes => ChainId::Aes,
        ChainArg::Serpent => ChainId::Serpent,
        ChainArg::Twofish => ChainId::Twofish,
        ChainArg::Camellia => ChainId::Camellia,
        ChainArg::Kuznyechik => ChainId::Kuznyechik,
        ChainArg::AesTwofish => ChainId::AesTwofish,
        ChainArg::AesTwofishSerpent => ChainId::AesTwofishSerpent,
        ChainArg::SerpentAes => ChainId::SerpentAes,
        ChainArg::SerpentTwofishAes => ChainId::SerpentTwofishAes,
        ChainArg::TwofishSerpent => ChainId::TwofishSerpent,
        ChainArg::CamelliaKuznyechik => ChainId::CamelliaKuznyechik,
        ChainArg::CamelliaSerpent => ChainId::CamelliaSerpent,
        ChainArg::KuznyechikAes => ChainId::KuznyechikAes,
        ChainArg::KuznyechikSerpentCamellia => ChainId::KuznyechikSerpentCamellia,
        ChainArg::KuznyechikTwofish => ChainId::KuznyechikTwofish,
    }
}

/// A sparse volume file whose filesystem cannot hold the rest of it: say so (before mounting,
/// and after `create --quick`), because once the space is gone the filesystem in the volume
/// only sees I/O errors.
pub fn warn_if_short_of_space(host: &Host) {
    if let Some(s) = host.sparse_space().filter(|s| s.short()) {
        let gib = |b: u64| b as f64 / f64::from(1u32 << 30);
        errln!(
            "tcvault: warning: {} is a sparse file with {:.2} GiB not yet allocated, and its \
             filesystem has {:.2} GiB free: once that is used up, writes to the volume fail \
             with I/O errors",
            host.path().display(),
            gib(s.unallocated),
            gib(s.free)
        );
    }
}
