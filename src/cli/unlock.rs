//! Turning `UnlockArgs` into credentials and options, reading the password.

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::Path;

use tcvault::crypto::chain::ChainId;
use tcvault::crypto::prf::Prf;
use tcvault::header::{Credentials, Family, UnlockOptions};
use tcvault::secret::{Password, Pim, SecretBytes};
use tcvault::volume::keyfiles::read_keyfiles;
use tcvault::volume::{SlotChoice, Volume};

use super::args::{ChainArg, PrfArg, UnlockArgs};
use super::exit::{BAD_INPUT, CliError, USAGE};

/// Reads the password and keyfiles, then opens `path`.
pub fn open_volume(path: &Path, a: &UnlockArgs) -> Result<Volume, CliError> {
    let pim = match a.pim {
        None => 0,
        Some(n) => Pim::new(n)
            .map_err(|n| CliError::msg(format!("--pim {n} is larger than {}", Pim::MAX), USAGE))?
            .value(),
    };
    if pim != 0 && a.truecrypt {
        return Err(CliError::msg("TrueCrypt volumes take no PIM", USAGE));
    }
    let keyfiles = read_keyfiles(&a.keyfiles)?;
    let password = read_password(a, path, !keyfiles.is_empty())?;
    let creds = Credentials::new(&password, &keyfiles, pim)?;
    drop(keyfiles);
    let opts = UnlockOptions {
        family: match (a.truecrypt, a.veracrypt) {
            (true, _) => Some(Family::TrueCrypt),
            (_, true) => Some(Family::VeraCrypt),
            _ => None,
        },
        prf: a.prf.map(prf_of),
        chain: a.cipher.map(chain_of),
        system: a.system,
        threads: 0,
    };
    let slots = SlotChoice {
        hidden: a.hidden,
        backup: a.backup_header,
        system: a.system,
    };
    Ok(Volume::open(path, &creds, slots, &opts)?)
}

fn read_password(a: &UnlockArgs, volume: &Path, have_keyfiles: bool) -> Result<Password, CliError> {
    let raw = match &a.password_file {
        Some(p) if p.as_os_str() == "-" => read_secret(io::stdin().lock()).map_err(|e| {
            CliError::new(e, BAD_INPUT).hint("could not read the password from standard input")
        })?,
        Some(p) => {
            let f = File::open(p).map_err(|e| {
                CliError::msg(format!("password file {}: {e}", p.display()), BAD_INPUT)
            })?;
            read_secret(f).map_err(|e| {
                CliError::msg(format!("password file {}: {e}", p.display()), BAD_INPUT)
            })?
        }
        None => {
            if !io::stdin().is_terminal() {
                return Err(
                    CliError::msg("no terminal to ask for the password", BAD_INPUT).hint(
                        "use --password-file FILE, or --password-file - to read standard input",
                    ),
                );
            }
            let prompt = if have_keyfiles {
                format!("Password for {} (Enter for none): ", volume.display())
            } else {
                format!("Password for {}: ", volume.display())
            };
            let typed = rpassword::prompt_password(prompt)
                .map_err(|e| CliError::msg(format!("cannot read the password: {e}"), BAD_INPUT))?;
            let s = SecretBytes::from_slice(typed.as_bytes());
            let mut typed = typed;
            zeroize::Zeroize::zeroize(&mut typed);
            s
        }
    };
    let mut bytes = raw.expose();
    if a.password_file.is_some()
        && let Some(stripped) = bytes.strip_suffix(b"\n")
    {
        bytes = stripped.strip_suffix(b"\r").unwrap_or(stripped);
    }
    Password::new(bytes).map_err(|e| CliError::new(e, BAD_INPUT))
}

/// Reads a small secret (at most 4 KiB) without leaving copies behind.
fn read_secret(r: impl Read) -> io::Result<SecretBytes> {
    const LIMIT: usize = 4096;
    let mut buf = SecretBytes::zeroed(LIMIT + 1);
    let mut r = r.take(LIMIT as u64 + 1);
    let mut n = 0;
    loop {
        match r.read(&mut buf.expose_mut()[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if n > LIMIT {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "longer than any password",
        ));
    }
    Ok(SecretBytes::from_slice(&buf.expose()[..n]))
}

fn prf_of(p: PrfArg) -> Prf {
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

fn chain_of(c: ChainArg) -> ChainId {
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
