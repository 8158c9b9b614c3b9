//! Password-based key derivation: PBKDF2-HMAC over the format's hashes, and Argon2id.
//!
//! PBKDF2 is computed one output block at a time ([`pbkdf2_block`]) so that the unlock code can
//! derive only the blocks the remaining cipher chains need, run independent blocks on different
//! cores, and abandon a derivation the moment another one has opened the header. Independent
//! blocks of one PRF and iteration count can also run side by side in the SIMD lanes of one
//! thread ([`pbkdf2_blocks`], in groups of [`lanes`]): the unlock worst case derives ten
//! RIPEMD-160 blocks for each header, and one AVX-512 instruction advances sixteen chains.
//!
//! # Layout
//!
//! This file holds the shared types ([`Prf`], [`Stopped`], [`LaneJob`]) and the one dispatcher:
//! `kernel(prf)` decides, for this CPU, which kernel computes a PRF and how many blocks one
//! call of it advances; [`pbkdf2_block`], [`pbkdf2_blocks`], [`lanes`], [`pbkdf2`] and
//! [`argon2id`] all ask it. Each kernel is one file that imports only the types of this file
//! (never another kernel):
//!
//! * `portable`: one block at a time on any CPU: the generic RustCrypto HMAC loop, the loop over
//!   precomputed key-block states (BLAKE2s, Streebog) and SHA-512 over the bare compression
//!   function;
//! * `lanes32`: RIPEMD-160, SHA-256 and BLAKE2s in 16 lanes of 32 bits (AVX-512F);
//! * `sha512_lanes`: SHA-512 in 8 lanes of 64 bits (AVX-512F);
//! * `streebog`, `whirlpool`: three interleaved chains, one block per register (AVX-512 VBMI
//!   and GFNI);
//! * `argon2`: Argon2id with an AVX-512F compression function (the `argon2` crate otherwise).
//!
//! The CPU features come from `crypto::cpu` as tokens: `kernel` asks for the token of a fast
//! kernel and passes it along, and the kernel cites it where it enters `#[target_feature]`
//! code. The kernels' 512-bit loads and stores are `crypto::simd`'s.
//!
//! In every PBKDF2 kernel the first iteration (the salt, of any length) is computed with the
//! RustCrypto HMAC; the kernel runs the rest, where every message is exactly one hash output.
//!
//! To add a PRF: a variant of [`Prf`] (with its names and block length), an arm in
//! `portable::pbkdf2_block`, and a row in `kernel` if a faster kernel exists. To add a kernel:
//! a file here that takes jobs as [`LaneJob`]s and returns [`Stopped`] when the flag is seen
//! raised (checked every `STOP_CHECK_EVERY` iterations), a `Kernel` variant with its lane
//! count and CPU token, its row in `kernel`, and its arms in [`pbkdf2_block`] and
//! [`pbkdf2_blocks`].

use std::fmt;
use std::sync::atomic::AtomicBool;

use super::cpu;

#[allow(unsafe_code)]
mod argon2;
#[cfg(test)]
mod kernel_checks;
#[allow(unsafe_code)]
mod lanes32;
mod portable;
#[allow(unsafe_code)]
mod sha512_lanes;
#[allow(unsafe_code)]
mod streebog;
#[allow(unsafe_code)]
mod whirlpool;

/// A key-derivation function of the format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prf {
    /// PBKDF2-HMAC-SHA-512.
    Sha512,
    /// PBKDF2-HMAC-SHA-256.
    Sha256,
    /// PBKDF2-HMAC-BLAKE2s-256.
    Blake2s,
    /// PBKDF2-HMAC-Whirlpool.
    Whirlpool,
    /// PBKDF2-HMAC-Streebog-512.
    Streebog,
    /// PBKDF2-HMAC-RIPEMD-160 (TrueCrypt, VeraCrypt ≤ 1.25.9).
    Ripemd160,
    /// PBKDF2-HMAC-SHA-1 (TrueCrypt before 5.0).
    Sha1,
    /// Argon2id (VeraCrypt 1.26.27+).
    Argon2id,
}

impl Prf {
    /// Every PRF, in the order an unlock tries them (the common ones first).
    pub const ALL: [Prf; 8] = [
        Prf::Sha512,
        Prf::Sha256,
        Prf::Blake2s,
        Prf::Whirlpool,
        Prf::Streebog,
        Prf::Ripemd160,
        Prf::Sha1,
        Prf::Argon2id,
    ];

    /// Short lower-case name used on the command line and in JSON (`sha512`, `blake2s`, …).
    pub fn id(self) -> &'static str {
        match self {
            Prf::Sha512 => "sha512",
            Prf::Sha256 => "sha256",
            Prf::Blake2s => "blake2s",
            Prf::Whirlpool => "whirlpool",
            Prf::Streebog => "streebog",
            Prf::Ripemd160 => "ripemd160",
            Prf::Sha1 => "sha1",
            Prf::Argon2id => "argon2id",
        }
    }

    /// The name VeraCrypt shows (`HMAC-SHA-512`, …).
    pub fn display_name(self) -> &'static str {
        match self {
            Prf::Sha512 => "HMAC-SHA-512",
            Prf::Sha256 => "HMAC-SHA-256",
            Prf::Blake2s => "HMAC-BLAKE2s-256",
            Prf::Whirlpool => "HMAC-Whirlpool",
            Prf::Streebog => "HMAC-Streebog",
            Prf::Ripemd160 => "HMAC-RIPEMD-160",
            Prf::Sha1 => "HMAC-SHA-1",
            Prf::Argon2id => "Argon2id",
        }
    }

    /// Parses a PRF name as users write it: `sha512`, `SHA-512`, `hmac-sha-512`, `ripemd-160`…
    pub fn from_name(name: &str) -> Option<Prf> {
        let norm: String = name
            .trim()
            .to_ascii_lowercase()
            .trim_start_matches("hmac-")
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect();
        let norm = match norm.as_str() {
            "blake2s256" => "blake2s",
            "streebog512" => "streebog",
            "ripemd" | "rmd160" => "ripemd160",
            other => other,
        };
        Prf::ALL.into_iter().find(|p| p.id() == norm)
    }

    /// Bytes one PBKDF2 block yields (the hash length); Argon2id yields its whole output at once.
    pub fn block_len(self) -> usize {
        match self {
            Prf::Sha512 | Prf::Whirlpool | Prf::Streebog => 64,
            Prf::Sha256 | Prf::Blake2s => 32,
            Prf::Ripemd160 | Prf::Sha1 => 20,
            Prf::Argon2id => usize::MAX,
        }
    }
}

impl fmt::Display for Prf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.display_name())
    }
}

/// The derivation was abandoned because `stop` was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped;

/// How many iterations run between two looks at the stop flag.
const STOP_CHECK_EVERY: u32 = 2048;

/// One PBKDF2 block to derive.
#[derive(Clone, Copy)]
pub struct LaneJob<'a> {
    /// The PBKDF2 password (already mixed with keyfiles).
    pub password: &'a [u8],
    /// The salt.
    pub salt: &'a [u8],
    /// 1-based block index.
    pub index: u32,
}

impl std::fmt::Debug for LaneJob<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneJob")
            .field("salt_len", &self.salt.len())
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

/// The code that computes a PRF on this CPU, with the CPU-feature token it needs.
#[derive(Clone, Copy, Debug)]
enum Kernel {
    /// One block at a time, any CPU (`portable`).
    Portable,
    /// RIPEMD-160, SHA-256 or BLAKE2s in 16 lanes of 32 bits, AVX-512F (`lanes32`).
    Lanes32(cpu::Avx512),
    /// SHA-512 in 8 lanes of 64 bits, AVX-512F (`sha512_lanes`).
    Sha512Lanes(cpu::Avx512),
    /// Streebog-512, three interleaved chains, AVX-512 VBMI and GFNI (`streebog`).
    Streebog(cpu::Avx512Vbmi),
    /// Whirlpool, three interleaved chains, AVX-512 VBMI and GFNI (`whirlpool`).
    Whirlpool(cpu::Avx512Vbmi),
    /// Argon2id with the AVX-512F compression function (`argon2`).
    Argon2(cpu::Avx512),
    /// Argon2id by the `argon2` crate.
    Argon2Crate,
}

impl Kernel {
    /// How many blocks one call advances together (1 = no lane kernel).
    fn lanes(self) -> usize {
        match self {
            Kernel::Lanes32(_) => lanes32::LANES,
            Kernel::Sha512Lanes(_) => sha512_lanes::LANES,
            Kernel::Streebog(_) => streebog::CHAINS,
            Kernel::Whirlpool(_) => whirlpool::CHAINS,
            Kernel::Portable | Kernel::Argon2(_) | Kernel::Argon2Crate => 1,
        }
    }
}

/// The one table of which kernel runs `prf` on this CPU (the portable one when the CPU lacks
/// the features of the fast one).
fn kernel(prf: Prf) -> Kernel {
    let or_portable = |k: Option<Kernel>| k.unwrap_or(Kernel::Portable);
    match prf {
        Prf::Ripemd160 | Prf::Sha256 | Prf::Blake2s => {
            or_portable(cpu::avx512().map(Kernel::Lanes32))
        }
        Prf::Sha512 => or_portable(cpu::avx512().map(Kernel::Sha512Lanes)),
        Prf::Streebog => or_portable(cpu::avx512_vbmi().map(Kernel::Streebog)),
        Prf::Whirlpool => or_portable(cpu::avx512_vbmi().map(Kernel::Whirlpool)),
        Prf::Sha1 => Kernel::Portable,
        Prf::Argon2id => cpu::avx512().map_or(Kernel::Argon2Crate, Kernel::Argon2),
    }
}

/// Fewest jobs for which one lane-kernel call beats running them one by one: a single chain
/// runs faster on its own (scalar SHA-512 with no lane bookkeeping, SHA-256 with the SHA
/// instructions), so lanes pay only from this many blocks on (measured on Zen 4).
fn min_lane_jobs(prf: Prf) -> usize {
    match prf {
        Prf::Sha256 => 4,
        _ => 2,
    }
}

/// How many blocks of `prf` one kernel call advances together on this CPU (1 = no lane kernel).
/// A call costs about the same for any number of blocks up to this.
pub fn lanes(prf: Prf) -> usize {
    kernel(prf).lanes()
}

/// Computes PBKDF2 output block `index` (1-based, RFC 8018 §5.2) of `prf` into `out`.
///
/// `out` receives `min(out.len(), prf.block_len())` bytes. The computation checks `stop` every
/// few thousand iterations and returns [`Stopped`] once it is set.
///
/// # Panics
/// If `prf` is [`Prf::Argon2id`] (not a PBKDF2 PRF) or `iterations` is 0.
pub fn pbkdf2_block(
    prf: Prf,
    password: &[u8],
    salt: &[u8],
    iterations: u32,
    index: u32,
    out: &mut [u8],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    assert!(iterations > 0, "PBKDF2 needs at least one iteration");
    match kernel(prf) {
        Kernel::Streebog(t) => {
            streebog::pbkdf2_block(t, password, salt, iterations, index, out, stop)
        }
        Kernel::Whirlpool(t) => {
            whirlpool::pbkdf2_block(t, password, salt, iterations, index, out, stop)
        }
        // One chain of a lane kernel's PRF runs faster in the portable code.
        Kernel::Portable | Kernel::Lanes32(_) | Kernel::Sha512Lanes(_) => {
            portable::pbkdf2_block(prf, password, salt, iterations, index, out, stop)
        }
        Kernel::Argon2(_) | Kernel::Argon2Crate => panic!("Argon2id is not a PBKDF2 PRF"),
    }
}

/// Derives PBKDF2 block `jobs[i].index` of `jobs[i].password` and `jobs[i].salt` into `outs[i]`
/// (up to one hash length each) for every job, all with `prf` and `iterations`: through the
/// lane kernel when the CPU and PRF have one (in groups of [`lanes`]), otherwise one after
/// another with [`pbkdf2_block`].
///
/// Returns [`Stopped`] as soon as `stop` is seen raised (checked every few thousand iterations);
/// the outputs are then unspecified.
///
/// # Panics
/// If `jobs` and `outs` differ in length, `iterations` is 0 or `prf` is Argon2id.
pub fn pbkdf2_blocks(
    prf: Prf,
    jobs: &[LaneJob<'_>],
    iterations: u32,
    outs: &mut [&mut [u8]],
    stop: &AtomicBool,
) -> Result<(), Stopped> {
    assert_eq!(jobs.len(), outs.len(), "one output per job");
    assert!(iterations > 0, "PBKDF2 needs at least one iteration");
    let one_by_one = |jobs: &[LaneJob<'_>], outs: &mut [&mut [u8]]| {
        for (job, out) in jobs.iter().zip(outs.iter_mut()) {
            pbkdf2_block(
                prf,
                job.password,
                job.salt,
                iterations,
                job.index,
                out,
                stop,
            )?;
        }
        Ok(())
    };
    let kernel = kernel(prf);
    match kernel {
        Kernel::Streebog(t) => streebog::pbkdf2_blocks(t, jobs, iterations, outs, stop),
        Kernel::Whirlpool(t) => whirlpool::pbkdf2_blocks(t, jobs, iterations, outs, stop),
        Kernel::Lanes32(_) | Kernel::Sha512Lanes(_) => {
            let width = kernel.lanes();
            for (group, outs) in jobs.chunks(width).zip(outs.chunks_mut(width)) {
                if group.len() < min_lane_jobs(prf) {
                    one_by_one(group, outs)?;
                    continue;
                }
                match kernel {
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Lanes32(t) => {
                        lanes32::pbkdf2_group(t, prf, group, iterations, outs, stop)?;
                    }
                    #[cfg(target_arch = "x86_64")]
                    Kernel::Sha512Lanes(t) => {
                        sha512_lanes::pbkdf2_group(t, group, iterations, outs, stop)?;
                    }
                    _ => unreachable!("no lane kernel for {prf:?} on this CPU"),
                }
            }
            Ok(())
        }
        Kernel::Portable | Kernel::Argon2(_) | Kernel::Argon2Crate => one_by_one(jobs, outs),
    }
}

/// PBKDF2 output of `out.len()` bytes (all blocks, one after another, on this thread).
///
/// # Panics
/// As [`pbkdf2_block`].
pub fn pbkdf2(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
    let never = AtomicBool::new(false);
    for (i, chunk) in out.chunks_mut(prf.block_len()).enumerate() {
        let index = u32::try_from(i + 1).unwrap_or(u32::MAX);
        // The flag is never raised, so the block always completes.
        let _ = pbkdf2_block(prf, password, salt, iterations, index, chunk, &never);
    }
}

/// Argon2id cost parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub passes: u32,
    /// Lanes.
    pub parallelism: u32,
}

/// Why Argon2id could not run.
#[derive(Debug, thiserror::Error)]
#[error("Argon2id failed: {0}")]
pub struct Argon2Error(String);

/// Argon2id (version 0x13) of `password` and `salt` into `out`.
///
/// # Errors
/// When the parameters are out of Argon2's range or the memory cannot be allocated.
pub fn argon2id(
    password: &[u8],
    salt: &[u8],
    params: Argon2Params,
    out: &mut [u8],
) -> Result<(), Argon2Error> {
    let p = ::argon2::Params::new(
        params.memory_kib,
        params.passes,
        params.parallelism,
        Some(out.len()),
    )
    .map_err(|e| Argon2Error(e.to_string()))?;
    // Our kernel, once the crate has validated the parameters (and the salt has Argon2's
    // minimum of 8 bytes); the crate itself otherwise.
    if let Kernel::Argon2(t) = kernel(Prf::Argon2id)
        && salt.len() >= ::argon2::MIN_SALT_LEN
        && argon2::supports(out.len(), params.parallelism)
    {
        return argon2::argon2id(
            t,
            password,
            salt,
            params.memory_kib,
            params.passes,
            params.parallelism,
            out,
        )
        .map_err(|_| Argon2Error(NOT_ENOUGH_MEMORY.into()));
    }
    // The crate, on CPUs without our kernel: its failed allocation says the same as ours.
    ::argon2::Argon2::new(::argon2::Algorithm::Argon2id, ::argon2::Version::V0x13, p)
        .hash_password_into(password, salt, out)
        .map_err(|e| match e {
            ::argon2::Error::OutOfMemory => Argon2Error(NOT_ENOUGH_MEMORY.into()),
            other => Argon2Error(other.to_string()),
        })
}

/// What an Argon2id derivation that could not get its memory says, whichever path ran.
const NOT_ENOUGH_MEMORY: &str = "not enough memory";

#[cfg(test)]
mod tests {
    use super::*;

    use kernel_checks::next;

    fn reference(prf: Prf, password: &[u8], salt: &[u8], iterations: u32, out: &mut [u8]) {
        match prf {
            Prf::Ripemd160 => {
                pbkdf2::pbkdf2_hmac::<ripemd::Ripemd160>(password, salt, iterations, out)
            }
            Prf::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, out),
            Prf::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, out),
            Prf::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, out),
            Prf::Blake2s => {
                pbkdf2::pbkdf2::<hmac::SimpleHmac<blake2::Blake2s256>>(
                    password, salt, iterations, out,
                )
                .expect("HMAC takes any key length");
            }
            Prf::Whirlpool => {
                pbkdf2::pbkdf2_hmac::<::whirlpool::Whirlpool>(password, salt, iterations, out)
            }
            Prf::Streebog => {
                pbkdf2::pbkdf2::<hmac::SimpleHmac<::streebog::Streebog512>>(
                    password, salt, iterations, out,
                )
                .expect("HMAC takes any key length");
            }
            other => unreachable!("no oracle wired for {other:?}"),
        }
    }

    fn check(prf: Prf, seed: u64) {
        let mut seed = seed;
        let never = AtomicBool::new(false);
        let len = prf.block_len();
        for iterations in [1u32, 2, 3, 1000, 2049] {
            // Up to 21 jobs (more than one group), mixed passwords, salts and block indices.
            let n = 1 + (next(&mut seed) % 21) as usize;
            let specs: Vec<(Vec<u8>, Vec<u8>, u32)> = (0..n)
                .map(|_| {
                    let pw_len = [0usize, 5, 64, 65, 100][(next(&mut seed) % 5) as usize];
                    let salt_len = [64usize, 0, 16, 100][(next(&mut seed) % 4) as usize];
                    let pw = (0..pw_len).map(|_| next(&mut seed) as u8).collect();
                    let salt = (0..salt_len).map(|_| next(&mut seed) as u8).collect();
                    (pw, salt, 1 + (next(&mut seed) % 10) as u32)
                })
                .collect();
            let jobs: Vec<LaneJob<'_>> = specs
                .iter()
                .map(|(p, s, i)| LaneJob {
                    password: p,
                    salt: s,
                    index: *i,
                })
                .collect();
            let mut got = vec![vec![0u8; len]; n];
            let mut outs: Vec<&mut [u8]> = got.iter_mut().map(|v| v.as_mut_slice()).collect();
            pbkdf2_blocks(prf, &jobs, iterations, &mut outs, &never).expect("never stopped");
            for (k, (p, s, i)) in specs.iter().enumerate() {
                let mut want = vec![0u8; len * *i as usize];
                reference(prf, p, s, iterations, &mut want);
                assert_eq!(
                    got[k][..],
                    want[len * (*i as usize - 1)..],
                    "{prf:?} job {k} of {n}: password {} B, salt {} B, block {i}, {iterations} iterations",
                    p.len(),
                    s.len()
                );
            }
        }
    }

    fn require_kernel(prf: Prf) -> bool {
        kernel_checks::kernel_present(lanes(prf) > 1, &format!("{prf:?} lane"))
    }

    #[test]
    fn ripemd160_lanes_match_pbkdf2_crate() {
        require_kernel(Prf::Ripemd160);
        check(Prf::Ripemd160, 0x0001_0160);
    }

    #[test]
    fn sha256_lanes_match_pbkdf2_crate() {
        require_kernel(Prf::Sha256);
        check(Prf::Sha256, 0x0001_0256);
    }

    #[test]
    fn blake2s_lanes_match_pbkdf2_crate() {
        require_kernel(Prf::Blake2s);
        check(Prf::Blake2s, 0x0001_b125);
    }

    #[test]
    fn streebog_and_whirlpool_groups_match_pbkdf2_crate() {
        require_kernel(Prf::Streebog);
        check(Prf::Streebog, 0x0001_5b06);
        require_kernel(Prf::Whirlpool);
        check(Prf::Whirlpool, 0x0001_3412);
    }

    #[test]
    fn sha512_lanes_match_pbkdf2_crate() {
        require_kernel(Prf::Sha512);
        check(Prf::Sha512, 0x0001_0512);
    }

    #[test]
    fn sha1_without_lane_kernel_runs_one_by_one() {
        check(Prf::Sha1, 0x0001_0001);
    }

    #[test]
    fn lanes_stop_when_flag_raised() {
        let stop = AtomicBool::new(true);
        let jobs = [LaneJob {
            password: b"pw",
            salt: b"salt",
            index: 1,
        }; 3];
        let mut bufs = [[0u8; 20]; 3];
        let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
        assert_eq!(
            pbkdf2_blocks(Prf::Ripemd160, &jobs, 100_000, &mut outs, &stop),
            Err(Stopped)
        );
    }
}
