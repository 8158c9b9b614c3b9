//! Trial decryption: find which (slot, family, PRF, chain) opens a header.
//!
//! The format stores no hint of its PRF or cipher, so every combination the options allow is
//! tried. The work is organised as *jobs* of PBKDF2 output blocks (several of one PRF at once in
//! SIMD lanes, see [`crate::crypto::kdf`]), run on every core:
//! single-cipher chains need only the first 64 derived bytes, two-cipher chains 128, three-cipher
//! chains 192, so the jobs for the first 64 bytes of every PRF and slot come first, and a trial's
//! chains are tested as soon as the bytes they need are complete. The moment one header decrypts,
//! a shared flag stops every running derivation.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::format::Header;
use super::kdf::{Family, Kdf};
use super::layout::{HEADER_SIZE, SALT_LEN, Slot};
use crate::crypto::chain::ChainId;
use crate::crypto::kdf::{LaneJob, Prf, argon2id, lanes, pbkdf2_blocks};
use crate::crypto::keyfile::{KeyfileError, KeyfilePool};
use crate::crypto::scheme::{Scheme, SectorCipher};
use crate::secret::{Password, SecretBytes};

/// Bytes derived from the password: enough for the largest key (3 ciphers × 2 × 32).
pub const DERIVED_KEY_LEN: usize = 192;

/// A header as read from its slot, still encrypted.
#[derive(Clone)]
pub struct Candidate {
    /// Where it was read from.
    pub slot: Slot,
    /// The 512 raw bytes.
    pub bytes: [u8; HEADER_SIZE],
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Candidate {{ slot: {:?} }}", self.slot)
    }
}

/// The password (and keyfiles) as PBKDF2 input for each family.
#[derive(Debug, Clone)]
pub struct Credentials {
    veracrypt: SecretBytes,
    /// `None` when the password is too long to be a TrueCrypt one.
    truecrypt: Option<SecretBytes>,
    pim: u32,
}

/// Why credentials could not be formed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither a password nor a keyfile.
    #[error("an empty password is allowed only together with keyfiles")]
    EmptyPassword,
    /// A keyfile could not be mixed in.
    #[error("keyfile {index}")]
    Keyfile {
        /// 0-based position in the list given.
        index: usize,
        /// What went wrong.
        #[source]
        source: KeyfileError,
    },
}

impl Credentials {
    /// Builds the PBKDF2 passwords from `password`, the contents of `keyfiles` (each already cut
    /// to its first MiB or not: only the first MiB counts) and the PIM (0 = default).
    ///
    /// # Errors
    /// [`CredentialsError::EmptyPassword`] without password and keyfiles; a keyfile error
    /// (empty keyfile) with its position.
    pub fn new(
        password: &Password,
        keyfiles: &[SecretBytes],
        pim: u32,
    ) -> Result<Credentials, CredentialsError> {
        let pw = password.expose();
        if pw.is_empty() && keyfiles.is_empty() {
            return Err(CredentialsError::EmptyPassword);
        }
        let tc_ok = pw.len() <= Family::TrueCrypt.max_password_len();
        if keyfiles.is_empty() {
            return Ok(Credentials {
                veracrypt: SecretBytes::from_slice(pw),
                truecrypt: tc_ok.then(|| SecretBytes::from_slice(pw)),
                pim,
            });
        }
        let mix = |truecrypt: bool| -> Result<SecretBytes, CredentialsError> {
            let mut pool = KeyfilePool::new(pw, KeyfilePool::size_for(pw.len(), truecrypt));
            for (index, k) in keyfiles.iter().enumerate() {
                pool.add(k.expose())
                    .map_err(|source| CredentialsError::Keyfile { index, source })?;
            }
            Ok(pool.into_secret())
        };
        Ok(Credentials {
            veracrypt: mix(false)?,
            truecrypt: if tc_ok { Some(mix(true)?) } else { None },
            pim,
        })
    }

    /// The PIM these credentials were made with (0 = default).
    pub fn pim(&self) -> u32 {
        self.pim
    }

    /// The PBKDF2 password for `family`; `None` for TrueCrypt when the password is too long.
    pub fn for_family(&self, family: Family) -> Option<&SecretBytes> {
        match family {
            Family::VeraCrypt => Some(&self.veracrypt),
            Family::TrueCrypt => self.truecrypt.as_ref(),
        }
    }
}

/// What to try; `None` means "every one".
#[derive(Debug, Clone, Default)]
pub struct UnlockOptions {
    /// Only this family.
    pub family: Option<Family>,
    /// Only this PRF.
    pub prf: Option<Prf>,
    /// Only this chain (by name: XTS, or the legacy chain of the same name in LRW or CBC).
    pub chain: Option<ChainId>,
    /// Only this exact chain and mode (used to check a header just written).
    pub scheme: Option<Scheme>,
    /// System-encryption iteration counts.
    pub system: bool,
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Where the search reports how far it has got (for a progress line); none by default.
    pub progress: Option<Arc<UnlockProgress>>,
}

/// How far an [`unlock`] has got: the key derivations finished and planned, and the family and
/// PRF of the one started last. Shared with whoever draws a progress line while the search runs.
#[derive(Debug, Default)]
pub struct UnlockProgress {
    done: AtomicUsize,
    total: AtomicUsize,
    /// 0 before the first job; else 1 + the family's index × 16 + the PRF's index in [`Prf::ALL`].
    current: AtomicUsize,
}

impl UnlockProgress {
    /// A fresh progress record to put in [`UnlockOptions::progress`].
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// (jobs finished, jobs planned, family and PRF of the job started last). A job is one
    /// PBKDF2 block set or one Argon2id derivation, so the counts move unevenly.
    pub fn snapshot(&self) -> (usize, usize, Option<(Family, Prf)>) {
        let done = self.done.load(Ordering::Relaxed);
        let total = self.total.load(Ordering::Relaxed);
        let current = match self.current.load(Ordering::Relaxed) {
            0 => None,
            n => {
                let family = if (n - 1) / 16 == 0 {
                    Family::VeraCrypt
                } else {
                    Family::TrueCrypt
                };
                Prf::ALL.get((n - 1) % 16).map(|&p| (family, p))
            }
        };
        (done, total, current)
    }

    fn start(&self, total: usize) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
        self.current.store(0, Ordering::Relaxed);
    }

    fn running(&self, family: Family, prf: Prf) {
        let f = usize::from(family == Family::TrueCrypt);
        let p = Prf::ALL.iter().position(|&x| x == prf).unwrap_or(0);
        self.current.store(1 + f * 16 + p, Ordering::Relaxed);
    }

    fn finished(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// A header that decrypted: everything needed to read the volume and to rewrite the header.
pub struct UnlockedHeader {
    /// The decrypted header fields and master keys.
    pub header: Header,
    /// The slot it came from.
    pub slot: Slot,
    /// The key derivation that opened it.
    pub kdf: Kdf,
    /// The cipher chain and mode.
    pub scheme: Scheme,
    /// Its salt.
    pub salt: [u8; SALT_LEN],
    data_cipher: SectorCipher,
    /// The key derived from the password and salt that decrypted the header:
    /// [`DERIVED_KEY_LEN`] bytes, those past the scheme's key material zero.
    header_key: SecretBytes,
}

impl UnlockedHeader {
    /// The scheme keyed with the master keys, for the data area.
    pub fn data_cipher(&self) -> &SectorCipher {
        &self.data_cipher
    }

    /// The family (told by the magic, which matched the iteration counts).
    pub fn family(&self) -> Family {
        self.header.family
    }

    /// The derived header key this header was decrypted with ([`DERIVED_KEY_LEN`] bytes; only
    /// the first `scheme.key_material_len()` count, the rest are zero). It decrypts this very
    /// header copy (this salt) and no other.
    pub fn header_key(&self) -> &SecretBytes {
        &self.header_key
    }
}

impl std::fmt::Debug for UnlockedHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnlockedHeader")
            .field("slot", &self.slot)
            .field("kdf", &self.kdf)
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// Why no header opened.
#[derive(Debug, thiserror::Error)]
pub enum UnlockError {
    /// The one deliberately vague answer: the format cannot tell these apart.
    #[error("wrong password, wrong keyfiles, wrong PIM, or not a TrueCrypt/VeraCrypt volume")]
    NoMatch,
    /// The options exclude every combination (e.g. `--truecrypt --prf sha256`).
    #[error("no key derivation matches the options given ({0})")]
    NothingToTry(String),
    /// No PBKDF2 header opened, and the Argon2id trials could not run (most often: not enough
    /// memory for them), so the volume may still be an Argon2id one.
    #[error(
        "no header opened with PBKDF2, and Argon2id could not be tried ({reason}; it needs \
         {needed_mib} MiB per trial)"
    )]
    Argon2Failed {
        /// What failed.
        reason: String,
        /// The memory one trial needs.
        needed_mib: u64,
    },
}

/// One (candidate, family, KDF) combination under trial.
struct Trial {
    cand: usize,
    family: Family,
    kdf: Kdf,
    /// Schemes to test, ordered by the derived bytes they need ([`Scheme::stage`]).
    schemes: Vec<Scheme>,
    /// Highest stage among `schemes`.
    max_stage: usize,
    state: Mutex<TrialState>,
}

struct TrialState {
    key: SecretBytes,
    /// Which PBKDF2 blocks are in `key`.
    have: Vec<bool>,
    /// Stages (number of ciphers) already tested.
    tested: usize,
}

/// One unit of work: PBKDF2 blocks of one family, PRF and iteration count, derived together in
/// the SIMD lanes of one thread ([`lanes`]), or one Argon2id derivation.
struct Job {
    /// (trial, 1-based PBKDF2 block index; 0 = the whole Argon2id output).
    parts: Vec<(usize, u32)>,
}

fn blocks_for(prf: Prf, bytes: usize) -> u32 {
    u32::try_from(bytes.div_ceil(prf.block_len())).unwrap_or(u32::MAX)
}

/// Finds the first candidate header that `creds` open under `opts`.
///
/// # Errors
/// [`UnlockError::NoMatch`] when none opens; [`UnlockError::NothingToTry`] when the options
/// rule out every key derivation.
pub fn unlock(
    candidates: &[Candidate],
    creds: &Credentials,
    opts: &UnlockOptions,
) -> Result<UnlockedHeader, UnlockError> {
    let trials = plan_trials(candidates, creds, opts)?;
    let jobs = plan_jobs(&trials);
    let progress = opts.progress.as_deref();
    if let Some(p) = progress {
        p.start(jobs.len());
    }
    let stop = AtomicBool::new(false);
    let next = AtomicUsize::new(0);
    let found: Mutex<Option<UnlockedHeader>> = Mutex::new(None);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        opts.threads
    }
    .min(jobs.len().max(1));

    let argon2_cost = jobs
        .iter()
        .filter_map(|j| match trials[j.parts[0].0].kdf {
            Kdf::Argon2id(p) => Some(u64::from(p.memory_kib) * 1024),
            Kdf::Pbkdf2 { .. } => None,
        })
        .max();
    let pbkdf2_jobs = jobs
        .iter()
        .filter(|j| matches!(trials[j.parts[0].0].kdf, Kdf::Pbkdf2 { .. }))
        .count();
    let at_once = argon2_cost.map_or(1, |cost| argon2_at_once(cost, threads));
    let gate = Argon2Gate::new(pbkdf2_jobs, at_once);
    let argon2_failed: Mutex<Option<String>> = Mutex::new(None);

    let work = || {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(job) = jobs.get(i) else { break };
            let argon2 = matches!(trials[job.parts[0].0].kdf, Kdf::Argon2id(_));
            // Argon2id waits until every PBKDF2 job is done (it would take a core and hundreds
            // of MiB from them), and runs as many at once as memory allows.
            let _turn = if argon2 {
                match gate.enter(&stop) {
                    Some(turn) => Some(turn),
                    None => break,
                }
            } else {
                None
            };
            if let (Some(p), Some(&(t, _))) = (progress, job.parts.first()) {
                p.running(trials[t].family, trials[t].kdf.prf());
            }
            let opened = run_job(job, &trials, candidates, creds, &stop);
            if let Some(p) = progress {
                p.finished();
            }
            if !argon2 {
                gate.pbkdf2_done();
            }
            match opened {
                Ok(Some(h)) => {
                    stop.store(true, Ordering::Relaxed);
                    gate.wake();
                    let mut slot = found.lock().unwrap_or_else(PoisonError::into_inner);
                    if slot.is_none() {
                        *slot = Some(h);
                    }
                }
                Ok(None) => {}
                Err(reason) => {
                    let mut f = argon2_failed.lock().unwrap_or_else(PoisonError::into_inner);
                    f.get_or_insert(reason);
                }
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 1..threads {
            s.spawn(work);
        }
        work();
    });
    if let Some(h) = found.into_inner().unwrap_or_else(PoisonError::into_inner) {
        return Ok(h);
    }
    match argon2_failed
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        Some(reason) => Err(UnlockError::Argon2Failed {
            reason,
            needed_mib: argon2_cost.unwrap_or(0) >> 20,
        }),
        None => Err(UnlockError::NoMatch),
    }
}

/// How many Argon2id trials of `cost` bytes may run at once on `threads` threads: as many as
/// the free memory holds (one at least: the allocation is tried, and fails cleanly).
fn argon2_at_once(cost: u64, threads: usize) -> usize {
    let fit = free_memory().map_or(threads, |free| {
        usize::try_from(free / cost.max(1)).unwrap_or(usize::MAX)
    });
    fit.clamp(1, threads.max(1))
}

/// The memory this process may still take: the kernel's `MemAvailable`, and below it the
/// room left in the process's cgroup (v2) when that has a limit; `None` when neither is known.
fn free_memory() -> Option<u64> {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    });
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|c| {
            let path = c.lines().find_map(|l| l.strip_prefix("0::"))?;
            let dir = std::path::Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/'));
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok();
            let max = read("memory.max")?.trim().parse::<u64>().ok()?;
            let current = read("memory.current")?.trim().parse::<u64>().ok()?;
            Some(max.saturating_sub(current))
        });
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

/// Holds Argon2id trials back until the PBKDF2 jobs are done, then lets `at_once` run together.
struct Argon2Gate {
    state: Mutex<(usize, usize)>,
    changed: Condvar,
    at_once: usize,
}

/// A running Argon2id trial's place in the [`Argon2Gate`], given back when dropped.
struct Turn<'a>(&'a Argon2Gate);

impl Argon2Gate {
    fn new(pbkdf2_jobs: usize, at_once: usize) -> Self {
        Argon2Gate {
            state: Mutex::new((pbkdf2_jobs, 0)),
            changed: Condvar::new(),
            at_once,
        }
    }

    /// Waits for the PBKDF2 jobs to end and for a free place; `None` once `stop` is set.
    fn enter(&self, stop: &AtomicBool) -> Option<Turn<'_>> {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            let (pbkdf2_left, running) = *st;
            if pbkdf2_left == 0 && running < self.at_once {
                st.1 += 1;
                return Some(Turn(self));
            }
            // The timeout only guards against a missed wake-up; every change notifies.
            st = self
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn pbkdf2_done(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.0 = st.0.saturating_sub(1);
        self.changed.notify_all();
    }

    fn wake(&self) {
        let _st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.changed.notify_all();
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut st = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.1 = st.1.saturating_sub(1);
        self.0.changed.notify_all();
    }
}

fn plan_trials(
    candidates: &[Candidate],
    creds: &Credentials,
    opts: &UnlockOptions,
) -> Result<Vec<Trial>, UnlockError> {
    let mut trials = Vec::new();
    for family in [Family::TrueCrypt, Family::VeraCrypt] {
        if opts.family.is_some_and(|f| f != family) || creds.for_family(family).is_none() {
            continue;
        }
        for prf in Prf::ALL {
            if opts.prf.is_some_and(|p| p != prf) {
                continue;
            }
            let Some(kdf) = Kdf::for_header(family, prf, creds.pim, opts.system) else {
                continue;
            };
            for (cand, c) in candidates.iter().enumerate() {
                let schemes = schemes_for(family, c.slot, opts);
                let Some(max_stage) = schemes.iter().map(|s| s.stage()).max() else {
                    continue;
                };
                let blocks = match kdf {
                    Kdf::Argon2id(_) => 1,
                    Kdf::Pbkdf2 { prf, .. } => blocks_for(prf, DERIVED_KEY_LEN) as usize,
                };
                trials.push(Trial {
                    cand,
                    family,
                    kdf,
                    schemes,
                    max_stage,
                    state: Mutex::new(TrialState {
                        key: SecretBytes::zeroed(DERIVED_KEY_LEN),
                        have: vec![false; blocks],
                        tested: 0,
                    }),
                });
            }
        }
    }
    if trials.is_empty() {
        let what = format!(
            "family {}, PRF {}, PIM {}",
            opts.family.map_or("any", |f| f.id()),
            opts.prf.map_or("any", |p| p.id()),
            creds.pim
        );
        return Err(UnlockError::NothingToTry(what));
    }
    Ok(trials)
}

/// The schemes a header of `family` read from `slot` may use, narrowed by `opts`, ordered by
/// stage. VeraCrypt knows only XTS and never used the legacy hidden slot; TrueCrypt adds its
/// eight XTS chains and, outside system and embedded-backup slots (which came with XTS), the
/// legacy LRW and CBC schemes.
fn schemes_for(family: Family, slot: Slot, opts: &UnlockOptions) -> Vec<Scheme> {
    if family == Family::VeraCrypt && slot == Slot::LegacyHidden {
        return Vec::new();
    }
    let xts = ChainId::ALL
        .into_iter()
        .filter(|c| family == Family::VeraCrypt || c.in_truecrypt())
        .map(Scheme::Xts);
    let legacy_slot = !matches!(slot, Slot::System | Slot::BackupNormal | Slot::BackupHidden);
    let legacy = Scheme::all_legacy().filter(|_| family == Family::TrueCrypt && legacy_slot);
    let mut schemes: Vec<Scheme> = xts
        .chain(legacy)
        .filter(|s| {
            opts.chain
                .is_none_or(|c| c.name().eq_ignore_ascii_case(&s.name()))
        })
        .filter(|s| opts.scheme.is_none_or(|o| o == *s))
        .collect();
    schemes.sort_by_key(|s| s.stage());
    schemes
}

/// Orders the work: cheap TrueCrypt derivations first, then for each stage (bytes for 1, 2, 3
/// ciphers) the blocks every VeraCrypt PRF needs, normal slot before hidden, common PRFs first;
/// Argon2id last, as it costs hundreds of MiB and seconds. Blocks of one family, PRF and
/// iteration count are then packed, in that order, into jobs of as many blocks as the PRF's
/// lane kernel advances at once (every block of a PRF costs about as much as one), except the
/// very first VeraCrypt block: most volumes are opened by it, and one chain on its own is
/// quicker than a full set of lanes. The cheap PRFs keep their places; the costly ones
/// (Streebog, RIPEMD-160, Whirlpool) follow, largest first, so that both cores reach the
/// Argon2id jobs at nearly the same time.
fn plan_jobs(trials: &[Trial]) -> Vec<Job> {
    let mut units = Vec::new();
    let mut ordered: Vec<usize> = (0..trials.len()).collect();
    ordered.sort_by_key(|&t| (trials[t].family == Family::VeraCrypt, trials[t].cand));
    for stage in 1..=3usize {
        for &t in &ordered {
            let trial = &trials[t];
            let Kdf::Pbkdf2 { prf, .. } = trial.kdf else {
                continue;
            };
            if stage > trial.max_stage {
                continue;
            }
            let from = if stage == 1 {
                1
            } else {
                blocks_for(prf, 64 * (stage - 1)) + 1
            };
            for block in from..=blocks_for(prf, 64 * stage) {
                units.push((t, block));
            }
        }
    }
    units.sort_by_key(|&(t, _)| trials[t].family == Family::VeraCrypt);
    for &t in &ordered {
        if matches!(trials[t].kdf, Kdf::Argon2id(_)) {
            units.push((t, 0));
        }
    }

    let mut jobs: Vec<Job> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut first_veracrypt = true;
    let mut lone = None;
    for (t, block) in units {
        let trial = &trials[t];
        let width = match trial.kdf {
            Kdf::Pbkdf2 { prf, .. } => lanes(prf),
            Kdf::Argon2id(_) => 1,
        };
        let alone = trial.family == Family::VeraCrypt && std::mem::take(&mut first_veracrypt);
        if alone {
            lone = Some((t, block));
        }
        let joinable = open.iter().copied().find(|&j| {
            let (t0, _) = jobs[j].parts[0];
            trials[t0].family == trial.family
                && trials[t0].kdf == trial.kdf
                && jobs[j].parts.len() < width
        });
        match joinable {
            Some(j) if !alone => jobs[j].parts.push((t, block)),
            _ => {
                if width > 1 && !alone {
                    open.push(jobs.len());
                }
                jobs.push(Job {
                    parts: vec![(t, block)],
                });
            }
        }
    }
    // The lone first VeraCrypt block goes even before the (cheap) TrueCrypt trials, which
    // the other cores take meanwhile.
    let rank = |job: &Job| {
        let trial = &trials[job.parts[0].0];
        let costly = match trial.kdf.prf() {
            Prf::Streebog => 1,
            Prf::Ripemd160 => 2,
            Prf::Whirlpool => 3,
            Prf::Argon2id => 4,
            _ => 0,
        };
        let first = job.parts.len() == 1 && Some(job.parts[0]) == lone;
        (!first, trial.family == Family::VeraCrypt, costly)
    };
    jobs.sort_by_key(rank);
    // Argon2id last whatever the ranks say (a stable sort): `unlock` holds an Argon2id job
    // until every PBKDF2 job is done, so no PBKDF2 job may wait behind one.
    jobs.sort_by_key(|job| matches!(trials[job.parts[0].0].kdf, Kdf::Argon2id(_)));
    jobs
}

/// Runs one job; `Err` says why an Argon2id derivation could not run.
fn run_job(
    job: &Job,
    trials: &[Trial],
    candidates: &[Candidate],
    creds: &Credentials,
    stop: &AtomicBool,
) -> Result<Option<UnlockedHeader>, String> {
    let Some(&(first, _)) = job.parts.first() else {
        return Ok(None);
    };
    let kdf = trials[first].kdf;
    let mut outs: Vec<SecretBytes> = job
        .parts
        .iter()
        .map(|_| SecretBytes::zeroed(DERIVED_KEY_LEN))
        .collect();
    let mut ranges = Vec::with_capacity(job.parts.len());
    match kdf {
        Kdf::Pbkdf2 { prf, iterations } => {
            let mut lane_jobs = Vec::with_capacity(job.parts.len());
            for &(t, block) in &job.parts {
                let trial = &trials[t];
                let Some(password) = creds.for_family(trial.family) else {
                    return Ok(None);
                };
                lane_jobs.push(LaneJob {
                    password: password.expose(),
                    salt: &candidates[trial.cand].bytes[..SALT_LEN],
                    index: block,
                });
                let start = (block as usize - 1) * prf.block_len();
                ranges.push(start..(start + prf.block_len()).min(DERIVED_KEY_LEN));
            }
            let mut slices: Vec<&mut [u8]> = outs
                .iter_mut()
                .zip(&ranges)
                .map(|(o, r)| &mut o.expose_mut()[r.clone()])
                .collect();
            // Fails only when stopped (another job found the header).
            if pbkdf2_blocks(prf, &lane_jobs, iterations, &mut slices, stop).is_err() {
                return Ok(None);
            }
        }
        Kdf::Argon2id(params) => {
            let trial = &trials[first];
            let Some(password) = creds.for_family(trial.family) else {
                return Ok(None);
            };
            let salt = &candidates[trial.cand].bytes[..SALT_LEN];
            argon2id(password.expose(), salt, params, outs[0].expose_mut())
                .map_err(|e| e.to_string())?;
            ranges.push(0..DERIVED_KEY_LEN);
        }
    }
    for ((&(t, block), out), range) in job.parts.iter().zip(&outs).zip(ranges) {
        if let Some(h) = record(&trials[t], &candidates[trials[t].cand], block, out, range) {
            return Ok(Some(h));
        }
    }
    Ok(None)
}

/// Stores a finished block in its trial and tests every scheme whose key bytes are complete.
fn record(
    trial: &Trial,
    cand: &Candidate,
    block: u32,
    out: &SecretBytes,
    range: std::ops::Range<usize>,
) -> Option<UnlockedHeader> {
    let mut st = trial.state.lock().unwrap_or_else(PoisonError::into_inner);
    st.key.expose_mut()[range.clone()].copy_from_slice(&out.expose()[range]);
    let idx = block.saturating_sub(1) as usize;
    st.have[idx] = true;
    while st.tested < trial.max_stage {
        let stage = st.tested + 1;
        let needed = match trial.kdf {
            Kdf::Pbkdf2 { prf, .. } => blocks_for(prf, 64 * stage) as usize,
            Kdf::Argon2id(_) => 1,
        };
        if !st.have[..needed].iter().all(|&h| h) {
            break;
        }
        st.tested = stage;
        for &scheme in trial.schemes.iter().filter(|s| s.stage() == stage) {
            if let Some(h) = try_scheme(cand, scheme, st.key.expose(), trial) {
                return Some(h);
            }
        }
    }
    None
}

fn try_scheme(
    cand: &Candidate,
    scheme: Scheme,
    key: &[u8],
    trial: &Trial,
) -> Option<UnlockedHeader> {
    let header_cipher = SectorCipher::new(scheme, key).ok()?;
    let mut plain = SecretBytes::from_slice(&cand.bytes);
    header_cipher.decrypt_header(&mut plain.expose_mut()[SALT_LEN..]);
    let bytes: &[u8; HEADER_SIZE] = plain.expose().try_into().ok()?;
    let header = Header::parse(bytes).ok()?;
    if header.family != trial.family || (scheme.is_legacy() && header.version >= 4) {
        return None;
    }
    let data_cipher = SectorCipher::new(scheme, header.key_area.expose()).ok()?;
    let mut salt = [0u8; SALT_LEN];
    salt.copy_from_slice(&cand.bytes[..SALT_LEN]);
    let mut header_key = SecretBytes::zeroed(DERIVED_KEY_LEN);
    let used = scheme
        .key_material_len()
        .min(DERIVED_KEY_LEN)
        .min(key.len());
    header_key.expose_mut()[..used].copy_from_slice(&key[..used]);
    Some(UnlockedHeader {
        header,
        slot: cand.slot,
        kdf: trial.kdf,
        scheme,
        salt,
        data_cipher,
        header_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Argon2id trials enter only once every PBKDF2 job is done, and no more than `at_once`
    /// run together; a stop lets waiters go without a turn.
    #[test]
    fn argon2_waits_for_pbkdf2_and_for_a_place() {
        let gate = Argon2Gate::new(2, 1);
        let stop = AtomicBool::new(false);
        let entered = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let running = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    let turn = gate.enter(&stop).expect("a turn");
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    entered.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    drop(turn);
                });
            }
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(
                entered.load(Ordering::SeqCst),
                0,
                "entered before PBKDF2 ended"
            );
            gate.pbkdf2_done();
            std::thread::sleep(Duration::from_millis(150));
            assert_eq!(
                entered.load(Ordering::SeqCst),
                0,
                "entered with a PBKDF2 job left"
            );
            gate.pbkdf2_done();
        });
        assert_eq!(entered.load(Ordering::SeqCst), 3);
        assert_eq!(most.load(Ordering::SeqCst), 1, "more than one at once");

        let gate = Argon2Gate::new(1, 1);
        stop.store(true, Ordering::SeqCst);
        std::thread::scope(|s| {
            s.spawn(|| assert!(gate.enter(&stop).is_none(), "a turn after the stop"));
            gate.wake();
        });
    }

    /// Every Argon2id job comes after every PBKDF2 job, whatever the family, slot or PIM.
    #[test]
    fn argon2_jobs_come_last() {
        let pw = Password::new(b"order").expect("password");
        let creds = Credentials::new(&pw, &[], 0).expect("credentials");
        let cands: Vec<Candidate> = [Slot::Normal, Slot::Hidden, Slot::LegacyHidden]
            .into_iter()
            .map(|slot| Candidate {
                slot,
                bytes: [0u8; HEADER_SIZE],
            })
            .collect();
        let trials = plan_trials(&cands, &creds, &UnlockOptions::default()).expect("trials");
        let jobs = plan_jobs(&trials);
        let argon: Vec<bool> = jobs
            .iter()
            .map(|j| matches!(trials[j.parts[0].0].kdf, Kdf::Argon2id(_)))
            .collect();
        let first = argon.iter().position(|&a| a).expect("an Argon2id job");
        assert!(
            argon[first..].iter().all(|&a| a),
            "a PBKDF2 job after Argon2id"
        );
    }

    #[test]
    fn free_memory_is_read() {
        let free = free_memory().expect("/proc/meminfo has MemAvailable");
        assert!(free > 0);
        assert_eq!(argon2_at_once(u64::MAX, 4), 1, "one at least");
        assert_eq!(argon2_at_once(1, 2), 2, "never more than the threads");
    }
}
