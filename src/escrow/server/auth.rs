//! Passwords and failed-login throttling.
//!
//! Passwords are stored as Argon2id PHC strings; verification compares in constant time (inside
//! the argon2 crate) and runs a dummy verification for unknown users so that "no such user" and
//! "wrong password" take the same time and give the same answer. Failed logins are counted per
//! user name and per peer address; past the limit, attempts are refused without checking.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::config::ThrottleConfig;

/// The longest password the server accepts (bytes).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Password hashing failed (only on absurd inputs).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct HashError(String);

/// Hashes a password with Argon2id (default parameters, random salt) into a PHC string.
///
/// # Errors
/// [`HashError`] for a password the hasher refuses.
pub fn hash_password(password: &[u8]) -> Result<String, HashError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(HashError(format!("longer than {MAX_PASSWORD_BYTES} bytes")));
    }
    Argon2::default()
        .hash_password(password)
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(b"tcvault dummy password").unwrap_or_default())
}

/// Checks `password` against a stored PHC string; `None` (unknown user) burns the same time and
/// fails.
pub fn verify_password(password: &[u8], stored: Option<&str>) -> bool {
    if password.len() > MAX_PASSWORD_BYTES {
        return false;
    }
    match stored {
        Some(phc) => Argon2::default().verify_password(password, phc).is_ok(),
        None => {
            let _ = Argon2::default().verify_password(password, dummy_hash());
            false
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Debug, Default)]
struct Counter {
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Failed-login bookkeeping for one server process.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    state: Mutex<HashMap<Key, Counter>>,
}

/// Entries kept before expired ones are pruned.
const PRUNE_AT: usize = 100_000;

impl Throttle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            state: Mutex::new(HashMap::new()),
        }
    }

    fn keys(user: &str, addr: IpAddr) -> [Key; 2] {
        [
            Key::User(user.to_lowercase()),
            Key::Addr(addr.to_canonical()),
        ]
    }

    /// `Err(retry_after)` when this user name or this address is locked out.
    pub fn check(&self, user: &str, addr: IpAddr) -> Result<(), Duration> {
        let now = Instant::now();
        let Ok(state) = self.state.lock() else {
            return Err(self.config.lockout);
        };
        let mut wait = Duration::ZERO;
        for k in Self::keys(user, addr) {
            if let Some(until) = state.get(&k).and_then(|c| c.locked_until)
                && until > now
            {
                wait = wait.max(until - now);
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Records a failed login for this user name and address.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if state.len() > PRUNE_AT {
            let window = self.config.window;
            state.retain(|_, c| {
                c.locked_until.is_some_and(|u| u > now)
                    || c.failures
                        .last()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        for k in Self::keys(user, addr) {
            let c = state.entry(k).or_default();
            c.failures
                .retain(|t| now.duration_since(*t) < self.config.window);
            c.failures.push(now);
            if c.failures.len() >= self.config.max_failures as usize {
                c.locked_until = Some(now + self.config.lockout);
                c.failures.clear();
            }
        }
    }

    /// A successful login clears the user name's failures (not the address's).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut state) = self.state.lock() {
            state.remove(&Key::User(user.to_lowercase()));
        }
    }
}

/// Recently verified credentials, so that a client making many requests does not pay an Argon2id
/// verification (tens of milliseconds of CPU, ~19 MiB) on each one.
///
/// An entry is keyed by SHA-256 over a random per-process secret, the user name and the
/// password, and remembers the stored hash it was verified against: a password change or a
/// removed user (the server still reads the user row on every request) invalidates it at once.
/// Entries live [`CredentialCache::TTL`]. Failed logins are never cached.
pub struct CredentialCache {
    secret: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl std::fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialCache").finish_non_exhaustive()
    }
}

impl Default for CredentialCache {
    fn default() -> Self {
        use chacha20poly1305::aead::OsRng;
        use chacha20poly1305::aead::rand_core::RngCore;
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        CredentialCache {
            secret,
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl CredentialCache {
    /// How long a verified credential is remembered.
    pub const TTL: Duration = Duration::from_secs(300);
    const MAX_ENTRIES: usize = 10_000;

    /// The cache key of a user name and password.
    pub fn key(&self, user: &str, password: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(self.secret);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize().into()
    }

    /// Whether `key` was verified recently against exactly `stored_hash`.
    pub fn hit(&self, key: &[u8; 32], stored_hash: &str) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries.get(key).is_some_and(|(hash, at)| {
            at.elapsed() < Self::TTL
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    hash.as_bytes(),
                    stored_hash.as_bytes(),
                ))
        })
    }

    /// Remembers a successful verification.
    pub fn insert(&self, key: [u8; 32], stored_hash: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= Self::MAX_ENTRIES {
                entries.retain(|_, (_, at)| at.elapsed() < Self::TTL);
                if entries.len() >= Self::MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(key, (stored_hash.to_owned(), Instant::now()));
        }
    }
}
