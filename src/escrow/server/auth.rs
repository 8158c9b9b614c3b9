//! Passwords and failed-login throttling.
//!
//! Passwords are stored as Argon2id PHC strings; verification compares in constant time (inside
//! the argon2 crate) and runs a dummy verification for unknown users so that "no such user" and
//! "wrong password" take the same time and give the same answer. Failed logins are counted
//! before each check, per (user name, address), per address and per user name ([`Throttle`]);
//! past a limit, attempts are refused without checking. A credential that passed is remembered
//! for a while ([`CredentialCache`]), and many requests bringing the same credential at once
//! share one check ([`Verifier`]): under load, Argon2id runs once per credential, not once per
//! client.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::config::ThrottleConfig;
use crate::secret::{SecretBytes, SecretText};

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
    /// One user name from one address: the lockout an attacker meets first.
    Pair(String, IpAddr),
    /// One address, whatever user names it tries (a spray over many users).
    Addr(IpAddr),
    /// One user name from anywhere (guesses spread over many addresses): a higher limit, and
    /// it never refuses an address this user logged in from before.
    User(String),
}

#[derive(Debug, Default)]
struct Counter {
    /// Failed attempts in the window, and attempts still being verified (counted as failures
    /// until they succeed).
    failures: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// Failed-login bookkeeping for one server process.
///
/// Every password check first takes a reservation ([`Throttle::begin`]), which counts as a
/// failure until the check succeeds ([`Attempt::succeeded`]): the count is taken before the
/// verification and atomically with the limit test, so concurrent guesses cannot all slip
/// under the limit. Attempts beyond the limit wait while earlier ones are still being verified
/// (they may succeed and free their place) and are refused once the failures alone reach it.
///
/// Limits, per window: `max_failures` per (user name, address) and per address, then a lockout;
/// `4 × max_failures` per user name over all addresses, then a lockout that does not apply to
/// the addresses that user has logged in from since the server started. So nobody can lock a
/// user out from elsewhere: guesses from other addresses only lock those addresses.
#[derive(Debug)]
pub struct Throttle {
    config: ThrottleConfig,
    state: Mutex<State>,
    changed: tokio::sync::Notify,
}

#[derive(Debug, Default)]
struct State {
    counters: HashMap<Key, Counter>,
    /// (user name, address) pairs that logged in successfully.
    known: std::collections::HashSet<(String, IpAddr)>,
}

/// Entries kept before expired ones are pruned.
const PRUNE_AT: usize = 100_000;
/// The longest an attempt waits for earlier ones of the same user name or address.
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How many times `max_failures` a user name may fail over all addresses.
const USER_FACTOR: usize = 4;

/// A password check in progress, counted as a failed login until [`Attempt::succeeded`].
#[derive(Debug)]
#[must_use = "an attempt counts as a failed login unless it succeeds"]
pub struct Attempt<'a> {
    throttle: &'a Throttle,
    keys: Vec<Key>,
    user: String,
    addr: IpAddr,
    at: Instant,
}

enum Decision {
    Go,
    Wait,
    Refuse(Duration),
}

impl Throttle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Throttle {
            config,
            state: Mutex::new(State::default()),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn limit(&self, k: &Key) -> usize {
        let m = self.config.max_failures.max(1) as usize;
        match k {
            Key::User(_) => m * USER_FACTOR,
            _ => m,
        }
    }

    /// Reserves a password check for `user` from `addr`: `Err(retry_after)` when this pair,
    /// this address or (for an address it never logged in from) this user name is locked out.
    /// Waits while attempts still being verified fill the limit.
    ///
    /// # Errors
    /// The time to wait before trying again.
    pub async fn begin(&self, user: &str, addr: IpAddr) -> Result<Attempt<'_>, Duration> {
        let user = user.to_lowercase();
        let addr = addr.to_canonical();
        let deadline = tokio::time::Instant::now() + MAX_WAIT;
        loop {
            let changed = self.changed.notified();
            match self.try_begin(&user, addr) {
                Ok(Some(a)) => return Ok(a),
                Ok(None) => {
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        return Err(MAX_WAIT);
                    }
                }
                Err(wait) => return Err(wait),
            }
        }
    }

    fn try_begin(&self, user: &str, addr: IpAddr) -> Result<Option<Attempt<'_>>, Duration> {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return Err(self.config.lockout);
        };
        let window = self.config.window;
        if state.counters.len() > PRUNE_AT {
            state.counters.retain(|_, c| {
                c.locked_until.is_some_and(|u| u > now)
                    || c.failures
                        .last()
                        .is_some_and(|t| now.duration_since(*t) < window)
            });
        }
        let known = state.known.contains(&(user.to_owned(), addr));
        let mut keys = vec![Key::Pair(user.to_owned(), addr), Key::Addr(addr)];
        if !known {
            keys.push(Key::User(user.to_owned()));
        }
        let mut decision = Decision::Go;
        for k in &keys {
            let limit = self.limit(k);
            let c = state.counters.entry(k.clone()).or_default();
            c.failures.retain(|t| now.duration_since(*t) < window);
            let d = match c.locked_until {
                Some(until) if until > now => Decision::Refuse(until - now),
                _ if c.failures.len() >= limit => Decision::Wait,
                _ => Decision::Go,
            };
            decision = match (decision, d) {
                (Decision::Refuse(a), Decision::Refuse(b)) => Decision::Refuse(a.max(b)),
                (Decision::Refuse(a), _) | (_, Decision::Refuse(a)) => Decision::Refuse(a),
                (Decision::Wait, _) | (_, Decision::Wait) => Decision::Wait,
                _ => Decision::Go,
            };
        }
        match decision {
            Decision::Refuse(wait) => Err(wait),
            Decision::Wait => Ok(None),
            Decision::Go => {
                for k in &keys {
                    if let Some(c) = state.counters.get_mut(k) {
                        c.failures.push(now);
                    }
                }
                Ok(Some(Attempt {
                    throttle: self,
                    keys,
                    user: user.to_owned(),
                    addr,
                    at: now,
                }))
            }
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the reservation no longer counts, this pair's failures are
    /// forgotten, and the address becomes one this user name is known to log in from.
    pub fn succeeded(self) {
        let t = self.throttle;
        if let Ok(mut state) = t.state.lock() {
            for k in &self.keys {
                if let Some(c) = state.counters.get_mut(k)
                    && let Some(i) = c.failures.iter().position(|x| *x == self.at)
                {
                    c.failures.remove(i);
                }
            }
            state
                .counters
                .remove(&Key::Pair(self.user.clone(), self.addr));
            if state.known.len() < PRUNE_AT {
                state.known.insert((self.user.clone(), self.addr));
            }
        }
        t.changed.notify_waiters();
    }

    /// The password was wrong (also what dropping an attempt means): it stays counted, and a
    /// key that reached its limit is locked out.
    pub fn failed(self) {
        drop(self);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let t = self.throttle;
        let now = Instant::now();
        if let Ok(mut state) = t.state.lock() {
            for k in &self.keys {
                let limit = t.limit(k);
                if let Some(c) = state.counters.get_mut(k)
                    && c.failures.contains(&self.at)
                    && c.failures.len() >= limit
                    && c.locked_until.is_none_or(|u| u <= now)
                {
                    c.locked_until = Some(now + t.config.lockout);
                    c.failures.clear();
                }
            }
        }
        t.changed.notify_waiters();
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
        let mut secret = [0u8; 32];
        // A server whose random generator fails does not start.
        crate::crypto::random::fill(&mut secret).expect("the operating system's random generator");
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

/// Short-lived session tokens: a client logs in once (`POST /v1/session` with its password,
/// one Argon2id check) and presents the token on its later requests (`Authorization: Bearer`),
/// which then need no password check at all.
///
/// A token is 32 random bytes (64 hex digits), handed out once in a [`SecretText`] and kept
/// here only as its SHA-256, with the user it was issued to, the password hash that user's
/// password was verified against, and its expiry ([`Sessions::TTL`] after the login; it is
/// not extended by use). A token is accepted only for that user, only until then, and only
/// while the user's stored password hash is the one it was issued against: a password change
/// or a removed user ends every session of that user at its next use. Sessions live in the
/// server process: a restart ends them all (clients log in again).
pub struct Sessions {
    ttl: Duration,
    entries: Mutex<HashMap<[u8; 32], Session>>,
}

struct Session {
    user: String,
    password_hash: String,
    expires: Instant,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new(Sessions::TTL)
    }
}

/// No session could be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The operating system had no random bytes.
    #[error("no random bytes for a session token")]
    Random,
    /// [`Sessions::MAX`] sessions are open.
    #[error("too many open sessions")]
    Full,
}

impl Sessions {
    /// How long a token is accepted after its login.
    pub const TTL: Duration = Duration::from_secs(300);
    /// Open sessions at most (expired ones are pruned first).
    pub const MAX: usize = 100_000;
    /// Length of a token in hex digits.
    pub const TOKEN_LEN: usize = 64;

    /// No sessions; tokens live `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Sessions {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// How long a new token lives.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn id(token: &[u8]) -> [u8; 32] {
        use sha2::{Digest, Sha256};
        Sha256::digest(token).into()
    }

    /// A new token for `user`, whose password was just verified against `password_hash`.
    ///
    /// # Errors
    /// [`SessionError`].
    pub fn issue(&self, user: &str, password_hash: &str) -> Result<SecretText, SessionError> {
        let mut raw = SecretBytes::zeroed(Self::TOKEN_LEN / 2);
        crate::crypto::random::fill(raw.expose_mut()).map_err(|_| SessionError::Random)?;
        let mut token = SecretBytes::zeroed(Self::TOKEN_LEN);
        hex::encode_to_slice(raw.expose(), token.expose_mut()).map_err(|_| SessionError::Random)?;
        let now = Instant::now();
        let mut entries = self.entries.lock().map_err(|_| SessionError::Full)?;
        if entries.len() >= Self::MAX {
            entries.retain(|_, s| s.expires > now);
            if entries.len() >= Self::MAX {
                return Err(SessionError::Full);
            }
        }
        entries.insert(
            Self::id(token.expose()),
            Session {
                user: user.to_owned(),
                password_hash: password_hash.to_owned(),
                expires: now + self.ttl,
            },
        );
        SecretText::from_secret(token).ok_or(SessionError::Random)
    }

    /// The user a live token was issued to (`None`: unknown or expired).
    pub fn user_of(&self, token: &[u8]) -> Option<String> {
        let id = Self::id(token);
        let mut entries = self.entries.lock().ok()?;
        match entries.get(&id) {
            Some(s) if s.expires > Instant::now() => Some(s.user.clone()),
            Some(_) => {
                entries.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Whether the session of `token` still holds for `user`, whose stored password hash is
    /// now `stored_hash` (`None`: the user is gone). A session that no longer holds is ended.
    pub fn holds(&self, token: &[u8], user: &str, stored_hash: Option<&str>) -> bool {
        let id = Self::id(token);
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        let ok = entries.get(&id).is_some_and(|s| {
            s.expires > Instant::now()
                && s.user == user
                && stored_hash.is_some_and(|h| {
                    bool::from(subtle::ConstantTimeEq::ct_eq(
                        s.password_hash.as_bytes(),
                        h.as_bytes(),
                    ))
                })
        });
        if !ok {
            entries.remove(&id);
        }
        ok
    }

    /// Open sessions, expired ones included until pruned (tests).
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len())
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A credential checked against one stored hash (`None`: an unknown user).
type FlightKey = ([u8; 32], Option<String>);

/// Password checks with one Argon2id verification per credential at a time.
///
/// When many requests bring the same credential at once (a client's first requests, many
/// clients of one user), the first one runs the check and the others wait for it and share its
/// result; a success goes into the [`CredentialCache`] before anyone is told, so every later
/// request hits the cache. Checks are keyed by the cache key *and* the stored hash, so a request
/// that read a changed password hash never shares a check against the old one.
///
/// [`Verifier::login`] keeps the [`Throttle`]'s rules: a request joining a check that is already
/// running needs no reservation and passes only if that check succeeds (as good as a cache hit);
/// otherwise it takes its reservation first, and its failure is counted like any other, whether
/// it ran the check or shared it. Argon2id needs ~19 MiB per verification, so at most
/// `parallel` run at once.
pub struct Verifier {
    cache: CredentialCache,
    slots: tokio::sync::Semaphore,
    flights: Mutex<HashMap<FlightKey, tokio::sync::watch::Receiver<Option<bool>>>>,
    checks: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("checks", &self.checks_run())
            .finish_non_exhaustive()
    }
}

/// What [`Verifier::login`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
    /// The password is right.
    Accepted,
    /// Wrong user name or password (counted by the throttle).
    Refused,
    /// Too many failed logins: try again after this long (nothing was checked).
    Throttled(Duration),
}

/// A password check could not run (its task panicked); the attempt counts as failed.
#[derive(Debug, thiserror::Error)]
#[error("the password check did not complete")]
pub struct VerifyError;

/// Removes a check from the running ones when its leader finishes or is dropped (a client that
/// disconnects): waiters then find no value and run their own.
struct Lead<'a> {
    verifier: &'a Verifier,
    key: FlightKey,
    done: tokio::sync::watch::Sender<Option<bool>>,
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if let Ok(mut flights) = self.verifier.flights.lock()
            && flights
                .get(&self.key)
                .is_some_and(|rx| rx.same_channel(&self.done.subscribe()))
        {
            flights.remove(&self.key);
        }
    }
}

enum Role<'a> {
    Cached,
    Join(tokio::sync::watch::Receiver<Option<bool>>),
    Lead(Lead<'a>),
}

impl Verifier {
    /// A verifier running at most `parallel` Argon2id checks at once.
    pub fn new(parallel: usize) -> Self {
        Verifier {
            cache: CredentialCache::default(),
            slots: tokio::sync::Semaphore::new(parallel.max(1)),
            flights: Mutex::new(HashMap::new()),
            checks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// How many Argon2id verifications this verifier has run (tests and diagnostics).
    pub fn checks_run(&self) -> u64 {
        self.checks.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Decides a login of `user` from `addr` with `password`, given the user's stored hash
    /// (`None` when there is no such user: a dummy check runs, and it fails).
    ///
    /// # Errors
    /// [`VerifyError`] when the check could not run (counted as a failed attempt).
    pub async fn login(
        &self,
        throttle: &Throttle,
        user: &str,
        addr: IpAddr,
        password: SecretBytes,
        stored_hash: Option<&str>,
    ) -> Result<Login, VerifyError> {
        let key = self.cache.key(user, password.expose());
        if let Some(hash) = stored_hash {
            // A credential verified recently needs no new check, so it does not count against
            // the throttle either (a wrong password is never in the cache); nor does one whose
            // check is running right now, if that check succeeds.
            if self.cache.hit(&key, hash) || self.join(&key, hash).await == Some(true) {
                return Ok(Login::Accepted);
            }
        }
        let attempt = match throttle.begin(user, addr).await {
            Ok(a) => a,
            Err(wait) => return Ok(Login::Throttled(wait)),
        };
        let ok = self.verify(key, password, stored_hash).await?;
        if ok {
            attempt.succeeded();
            Ok(Login::Accepted)
        } else {
            attempt.failed();
            Ok(Login::Refused)
        }
    }

    /// The result of a check of this credential against `hash` that is running now, once it is
    /// done; `None` when none runs (or its leader went away).
    async fn join(&self, key: &[u8; 32], hash: &str) -> Option<bool> {
        let flight = (*key, Some(hash.to_owned()));
        let mut rx = self.flights.lock().ok()?.get(&flight)?.clone();
        wait(&mut rx).await
    }

    /// Checks `password` against `stored_hash`, sharing a check of the same credential that is
    /// already running, or answering from the cache when one just succeeded.
    async fn verify(
        &self,
        key: [u8; 32],
        password: SecretBytes,
        stored_hash: Option<&str>,
    ) -> Result<bool, VerifyError> {
        let flight: FlightKey = (key, stored_hash.map(str::to_owned));
        loop {
            let role = {
                let mut flights = self.flights.lock().map_err(|_| VerifyError)?;
                // Looked at under the same lock as the running checks: a leader fills the cache
                // before it leaves them, so a success is never missed in between (and never
                // checked twice).
                if stored_hash.is_some_and(|h| self.cache.hit(&key, h)) {
                    Role::Cached
                } else if let Some(rx) = flights.get(&flight) {
                    Role::Join(rx.clone())
                } else {
                    let (done, rx) = tokio::sync::watch::channel(None);
                    flights.insert(flight.clone(), rx);
                    Role::Lead(Lead {
                        verifier: self,
                        key: flight.clone(),
                        done,
                    })
                }
            };
            match role {
                Role::Cached => return Ok(true),
                Role::Join(mut rx) => match wait(&mut rx).await {
                    Some(ok) => return Ok(ok),
                    // Its leader went away before finishing: try again (and maybe lead).
                    None => continue,
                },
                Role::Lead(lead) => {
                    let _permit = self.slots.acquire().await.map_err(|_| VerifyError)?;
                    self.checks
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let hash = stored_hash.map(str::to_owned);
                    let ok =
                        in_background(move || verify_password(password.expose(), hash.as_deref()))
                            .await?;
                    if ok && let Some(h) = stored_hash {
                        self.cache.insert(key, h);
                    }
                    lead.done.send_replace(Some(ok));
                    drop(lead);
                    return Ok(ok);
                }
            }
        }
    }
}

/// The nice value of the threads that run Argon2id checks (the server's other threads keep 0).
pub const CHECK_NICE: i32 = 10;

/// Runs `f` (an Argon2id check) on a thread of its own whose scheduling priority is lowered to
/// nice [`CHECK_NICE`] (Linux; elsewhere it keeps the normal priority).
///
/// An Argon2id verification is tens of milliseconds of CPU; on a small machine a few of them at
/// once, at the same priority as everything else, held every request behind them, including
/// those whose credential was already verified. At nice 10 a check gets about a tenth of a
/// busy core while requests are waiting for CPU, and all of it when the machine is otherwise
/// idle: requests that need no check are not delayed by those that do, and a login is slower
/// only while the server is saturated.
async fn in_background<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, VerifyError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("escrow-argon2".to_owned())
        .spawn(move || {
            lower_priority();
            let _ = tx.send(f());
        })
        .map_err(|_| VerifyError)?;
    rx.await.map_err(|_| VerifyError)
}

/// Lowers the calling thread's scheduling priority to nice [`CHECK_NICE`]. On Linux the nice
/// value is a per-thread attribute (`setpriority(PRIO_PROCESS, gettid())`). Best effort: a
/// system that refuses leaves the thread at its priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), CHECK_NICE);
    }
}

/// This thread's nice value (tests).
#[cfg(all(test, target_os = "linux"))]
fn thread_nice() -> i32 {
    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(i32::MIN)
}

/// The outcome a running check publishes; `None` when it ended without one.
async fn wait(rx: &mut tokio::sync::watch::Receiver<Option<bool>>) -> Option<bool> {
    if let Ok(v) = rx.wait_for(Option::is_some).await {
        return *v;
    }
    *rx.borrow()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Throttle {
        Throttle::new(ThrottleConfig {
            max_failures: 3,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn reservations_count_before_the_check() {
        let t = throttle();
        // Three checks in flight fill the limit: a fourth waits, then is refused once the
        // three fail.
        let a: Vec<_> = [0; 3]
            .iter()
            .map(|_| {
                t.try_begin("u", ip(1))
                    .expect("not locked")
                    .expect("a place")
            })
            .collect();
        assert!(matches!(t.try_begin("u", ip(1)), Ok(None)), "waits");
        for x in a {
            x.failed();
        }
        assert!(
            t.try_begin("u", ip(1)).is_err(),
            "locked after three failures"
        );
        // Another address is not locked for this user, nor this address for another user...
        t.begin("u", ip(2))
            .await
            .expect("other address")
            .succeeded();
        // ...except that the address itself is locked for everyone.
        assert!(t.begin("v", ip(1)).await.is_err());
    }

    #[tokio::test]
    async fn a_success_frees_its_place_for_a_waiter() {
        let t2 = throttle();
        let first = t2.try_begin("w", ip(3)).expect("ok").expect("place");
        let second = t2.try_begin("w", ip(3)).expect("ok").expect("place");
        let third = t2.try_begin("w", ip(3)).expect("ok").expect("place");
        assert!(matches!(t2.try_begin("w", ip(3)), Ok(None)));
        first.succeeded();
        let fourth = t2.try_begin("w", ip(3)).expect("ok").expect("freed");
        for a in [second, third, fourth] {
            a.succeeded();
        }
    }

    fn password(pw: &str) -> SecretBytes {
        SecretBytes::from_slice(pw.as_bytes())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_logins_share_one_check() {
        let hash = hash_password(b"right").expect("hash");
        let v = std::sync::Arc::new(Verifier::new(2));
        let t = std::sync::Arc::new(throttle());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (v, t, hash) = (v.clone(), t.clone(), hash.clone());
            tasks.spawn(async move {
                v.login(&t, "u", ip(1), password("right"), Some(&hash))
                    .await
                    .expect("check ran")
            });
        }
        let all = tasks.join_all().await;
        assert!(all.iter().all(|l| *l == Login::Accepted), "{all:?}");
        assert_eq!(v.checks_run(), 1);
        // A wrong password is its own check, refused; the right one is cached.
        let wrong = v
            .login(&t, "u", ip(1), password("wrong"), Some(&hash))
            .await;
        assert_eq!(wrong.expect("check ran"), Login::Refused);
        let again = v
            .login(&t, "u", ip(1), password("right"), Some(&hash))
            .await;
        assert_eq!(again.expect("cached"), Login::Accepted);
        assert_eq!(v.checks_run(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_of_an_abandoned_check_run_their_own() {
        let hash = hash_password(b"right").expect("hash");
        let v = std::sync::Arc::new(Verifier::new(1));
        let t = std::sync::Arc::new(throttle());
        // Hold the only Argon2id slot: the first login registers its check and waits for it.
        let slot = v.slots.acquire().await.expect("slot");
        let leader = {
            let (v, t, hash) = (v.clone(), t.clone(), hash.clone());
            tokio::spawn(async move {
                v.login(&t, "u", ip(1), password("right"), Some(&hash))
                    .await
            })
        };
        while v.flights.lock().expect("flights").is_empty() {
            tokio::task::yield_now().await;
        }
        // Polled once, the second login finds the running check and waits for it.
        let mut waiter = std::pin::pin!(v.login(&t, "u", ip(1), password("right"), Some(&hash)));
        let first = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(std::future::Future::poll(waiter.as_mut(), cx))
        })
        .await;
        assert!(first.is_pending(), "waits for the running check");
        // The leader's client goes away before its check ran; the waiter must neither hang nor
        // take a failure for it.
        leader.abort();
        assert!(leader.await.is_err(), "aborted");
        drop(slot);
        assert_eq!(waiter.await.expect("check ran"), Login::Accepted);
        assert_eq!(v.checks_run(), 1);
        assert!(v.flights.lock().expect("flights").is_empty());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn checks_run_at_a_lower_priority_than_the_server() {
        let here = thread_nice();
        let check = in_background(thread_nice).await.expect("ran");
        assert_eq!(check, CHECK_NICE.max(here), "the check's thread");
        assert_eq!(
            thread_nice(),
            here,
            "the caller's thread keeps its priority"
        );
        let other = tokio::task::spawn_blocking(thread_nice).await.expect("ran");
        assert_eq!(other, here, "the runtime's other threads too");
    }

    #[test]
    fn a_session_is_bound_to_its_user_and_password_and_expires() {
        let sessions = Sessions::new(Duration::from_millis(200));
        let token = sessions.issue("alice", "hash-1").expect("token");
        assert_eq!(token.len(), Sessions::TOKEN_LEN);
        assert!(token.as_str().bytes().all(|b| b.is_ascii_hexdigit()));
        let t = token.expose();
        assert_eq!(sessions.user_of(t).as_deref(), Some("alice"));
        assert!(sessions.holds(t, "alice", Some("hash-1")));
        assert!(sessions.user_of(b"not a token").is_none());
        // Another user cannot use it; trying ends it.
        let other = sessions.issue("alice", "hash-1").expect("token");
        assert!(!sessions.holds(other.expose(), "bob", Some("hash-1")));
        assert!(sessions.user_of(other.expose()).is_none());
        // A changed password (another stored hash) or a removed user ends it.
        let changed = sessions.issue("alice", "hash-1").expect("token");
        assert!(!sessions.holds(changed.expose(), "alice", Some("hash-2")));
        assert!(sessions.user_of(changed.expose()).is_none());
        let removed = sessions.issue("alice", "hash-1").expect("token");
        assert!(!sessions.holds(removed.expose(), "alice", None));
        // Tokens differ, and none is stored in the clear.
        assert_ne!(token.as_str(), other.as_str());
        let kept = sessions.entries.lock().expect("sessions");
        assert!(!kept.contains_key(&{
            let mut k = [0u8; 32];
            k.copy_from_slice(&t[..32]);
            k
        }));
        drop(kept);
        std::thread::sleep(Duration::from_millis(250));
        assert!(sessions.user_of(t).is_none(), "expired");
        assert!(!sessions.holds(t, "alice", Some("hash-1")));
    }

    #[tokio::test]
    async fn the_user_lock_spares_known_addresses() {
        let t = throttle();
        t.begin("admin", ip(1))
            .await
            .expect("first login")
            .succeeded();
        // 4 × 3 failures from four other addresses lock the user name for new addresses.
        for a in 10..14 {
            for _ in 0..3 {
                t.begin("admin", ip(a))
                    .await
                    .expect("not yet locked")
                    .failed();
            }
        }
        assert!(t.begin("admin", ip(20)).await.is_err(), "a new address");
        let at_desk = t.begin("admin", ip(1)).await;
        assert!(at_desk.is_ok(), "the address it logged in from");
    }
}
