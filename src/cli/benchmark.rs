//! `tcvault benchmark`: the engine's speed on this machine, each figure beside a baseline taken
//! in the same run (memcpy for the cipher table; the same reads without decryption for
//! `--device`), because shared machines drift too much for absolute numbers to compare.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Write};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tcvault::crypto::chain::{ChainId, XtsChain};
use tcvault::crypto::cipher::aes_xts::AesBackend;
use tcvault::crypto::cipher::serpent::SerpentBackend;
use tcvault::crypto::kdf::{LaneJob, Prf, argon2id, pbkdf2_block, pbkdf2_blocks};
use tcvault::crypto::xts::{DATA_UNIT, Direction};
use tcvault::header::kdf::{Family, Kdf};

use super::args::{BenchmarkArgs, ChainArg};
use super::exit::{BAD_INPUT, CliError, FAILED, USAGE};
use super::unlock::{chain_of, prf_of};

/// Largest in-memory buffer accepted for the cipher table.
const MAX_BUFFER: u64 = 4 << 30;

pub fn run(a: &BenchmarkArgs) -> Result<(), CliError> {
    if !(a.min_time.is_finite() && a.min_time > 0.0 && a.min_time <= 600.0) {
        return Err(CliError::msg(
            "--min-time must be between 0 and 600 seconds",
            USAGE,
        ));
    }
    let chains = selected_chains(&a.cipher);
    let out = if let Some(dev) = &a.device {
        device_report(a, dev, chains[0])?
    } else {
        memory_report(a, &chains)?
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}"), FAILED))
}

fn selected_chains(args: &[ChainArg]) -> Vec<ChainId> {
    if args.is_empty() {
        return ChainId::ALL.to_vec();
    }
    let mut v: Vec<ChainId> = Vec::new();
    for c in args {
        let id = chain_of(*c);
        if !v.contains(&id) {
            v.push(id);
        }
    }
    v
}

/// A one-line progress indicator on standard error, only when it is a terminal (and no `-q`).
struct Progress {
    on: bool,
    total: usize,
    done: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            on: super::print::progress_shown(),
            total,
            done: 0,
        }
    }

    fn step(&mut self, what: &str) {
        self.done += 1;
        if self.on {
            err!("\r\x1b[K[{}/{}] {what}…", self.done, self.total);
            let _ = io::stderr().flush();
        }
    }

    fn finish(&self) {
        if self.on {
            err!("\r\x1b[K");
            let _ = io::stderr().flush();
        }
    }
}

/// Bytes per second, human-readable.
fn rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} GB/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.0} MB/s", bps / 1e6)
    } else {
        format!("{:.0} kB/s", bps / 1e3)
    }
}

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Key material for benchmarks: any bytes do, the speed does not depend on the key.
fn bench_key() -> Vec<u8> {
    (0..256u32)
        .map(|i| (i.wrapping_mul(0x9d) ^ 0x3a) as u8)
        .collect()
}

/// Repeats `f` (after one warm-up call) until `min` has passed; returns calls per second.
fn repeat(min: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let start = Instant::now();
    let mut n = 0u64;
    loop {
        f();
        n += 1;
        let t = start.elapsed();
        if t >= min {
            return n as f64 / t.as_secs_f64();
        }
    }
}

struct CipherRow {
    chain: ChainId,
    /// encrypt 1 thread, decrypt 1 thread, encrypt all, decrypt all (bytes per second).
    rates: [f64; 4],
}

struct PrfRow {
    prf: Prf,
    pim: u32,
    kdf: Kdf,
    /// Seconds for the first PBKDF2 block (what a single-cipher volume needs) or the whole
    /// Argon2id output.
    first: f64,
    /// Seconds for the 192-byte key of a three-cipher chain on one thread.
    full: f64,
}

fn memory_report(a: &BenchmarkArgs, chains: &[ChainId]) -> Result<String, CliError> {
    if a.buffer > MAX_BUFFER {
        return Err(CliError::msg("--buffer may be at most 4G", USAGE));
    }
    // Whole data units, at least one.
    let len = usize::try_from((a.buffer / DATA_UNIT as u64).max(1) * DATA_UNIT as u64)
        .map_err(|_| CliError::msg("--buffer does not fit in memory", USAGE))?;
    let prfs: Vec<Prf> = if a.prf.is_empty() {
        Prf::ALL.to_vec()
    } else {
        a.prf.iter().map(|p| prf_of(*p)).collect()
    };
    let pims: Vec<u32> = std::iter::once(0)
        .chain(a.pim.filter(|p| *p != 0))
        .collect();
    let do_ciphers = !a.no_cipher;
    let do_prfs = !a.no_prf;
    let all = threads();
    let steps = if do_ciphers { 1 + chains.len() * 4 } else { 0 }
        + if do_prfs { prfs.len() * pims.len() } else { 0 };
    let mut progress = Progress::new(steps);
    let min = Duration::from_secs_f64(a.min_time);

    let mut memcpy = 0.0;
    let mut rows = Vec::new();
    if do_ciphers {
        let mut buf = vec![0x5au8; len];
        let mut other = vec![0xa5u8; len];
        progress.step("memcpy baseline");
        memcpy = repeat(min, || {
            other.copy_from_slice(std::hint::black_box(&buf));
            std::hint::black_box(&mut other);
        }) * len as f64;
        drop(other);
        let key = bench_key();
        for &chain in chains {
            let x = XtsChain::new(chain, &key)
                .map_err(|_| CliError::msg("benchmark key too short", FAILED))?;
            let mut rates = [0.0; 4];
            for (i, (dir, t)) in [
                (Direction::Encrypt, 1),
                (Direction::Decrypt, 1),
                (Direction::Encrypt, all),
                (Direction::Decrypt, all),
            ]
            .into_iter()
            .enumerate()
            {
                let what = format!(
                    "{chain} {} on {t} thread{}",
                    if dir == Direction::Encrypt {
                        "encrypt"
                    } else {
                        "decrypt"
                    },
                    if t == 1 { "" } else { "s" }
                );
                progress.step(&what);
                rates[i] = repeat(min, || {
                    x.run_with_threads(dir, std::hint::black_box(&mut buf), 1 << 20, t);
                }) * len as f64;
            }
            rows.push(CipherRow { chain, rates });
        }
    }

    let mut prf_rows = Vec::new();
    if do_prfs {
        for &prf in &prfs {
            for &pim in &pims {
                progress.step(&format!("{prf} at PIM {pim}"));
                let Some(kdf) = Kdf::for_header(Family::VeraCrypt, prf, pim, false).or_else(|| {
                    // TrueCrypt-only PRFs (SHA-1) take no PIM.
                    if pim == 0 {
                        Kdf::for_header(Family::TrueCrypt, prf, 0, false)
                    } else {
                        None
                    }
                }) else {
                    continue;
                };
                prf_rows.push(time_kdf(prf, pim, kdf)?);
            }
        }
    }
    progress.finish();

    Ok(if a.json {
        let ciphers: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "chain": r.chain.name(),
                    "encrypt_1_thread_bytes_per_sec": r.rates[0].round(),
                    "decrypt_1_thread_bytes_per_sec": r.rates[1].round(),
                    "encrypt_all_threads_bytes_per_sec": r.rates[2].round(),
                    "decrypt_all_threads_bytes_per_sec": r.rates[3].round(),
                })
            })
            .collect();
        let kdfs: Vec<Value> = prf_rows
            .iter()
            .map(|r| {
                json!({
                    "prf": r.prf.id(),
                    "pim": r.pim,
                    "cost": r.kdf.cost_summary(),
                    "first_block_seconds": r.first,
                    "key_192_bytes_seconds": r.full,
                })
            })
            .collect();
        let mut v = json!({
            "threads": all,
            "kernels": {
                "aes": AesBackend::detect().name(),
                "serpent": SerpentBackend::detect().name(),
            },
        });
        if do_ciphers {
            v["buffer_bytes"] = json!(len);
            v["memcpy_bytes_per_sec"] = json!(memcpy.round());
            v["ciphers"] = json!(ciphers);
        }
        if do_prfs {
            v["prfs"] = json!(kdfs);
        }
        format!("{v:#}\n")
    } else {
        let mut s = String::new();
        s.push_str(&format!(
            "Kernels: AES {}, Serpent {}; {all} threads\n",
            AesBackend::detect().name(),
            SerpentBackend::detect().name()
        ));
        if do_ciphers {
            s.push_str(&format!(
                "\nXTS throughput, {} buffer (memcpy of the same buffer: {})\n",
                size_text(len as u64),
                rate(memcpy)
            ));
            s.push_str(&format!(
                "{:<28} {:>12} {:>12} {:>12} {:>12}\n",
                "Chain",
                "Encrypt 1T",
                "Decrypt 1T",
                format!("Encrypt {all}T"),
                format!("Decrypt {all}T")
            ));
            for r in &rows {
                s.push_str(&format!(
                    "{:<28} {:>12} {:>12} {:>12} {:>12}\n",
                    r.chain.name(),
                    rate(r.rates[0]),
                    rate(r.rates[1]),
                    rate(r.rates[2]),
                    rate(r.rates[3])
                ));
            }
        }
        if do_prfs {
            s.push_str("\nKey derivation, one thread (VeraCrypt header)\n");
            s.push_str(&format!(
                "{:<18} {:>6} {:<32} {:>12} {:>12}\n",
                "PRF", "PIM", "Cost", "One block", "192 B key"
            ));
            for r in &prf_rows {
                s.push_str(&format!(
                    "{:<18} {:>6} {:<32} {:>11.3}s {:>11.3}s\n",
                    r.prf.display_name(),
                    r.pim,
                    r.kdf.cost_summary(),
                    r.first,
                    r.full
                ));
            }
        }
        s
    })
}

fn size_text(n: u64) -> String {
    if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} bytes")
    }
}

fn time_kdf(prf: Prf, pim: u32, kdf: Kdf) -> Result<PrfRow, CliError> {
    let password = b"benchmark password";
    let salt = [0x11u8; 64];
    let never = AtomicBool::new(false);
    let mut out = [0u8; 192];
    let start = Instant::now();
    match kdf {
        Kdf::Pbkdf2 { prf, iterations } => {
            let _ = pbkdf2_block(prf, password, &salt, iterations, 1, &mut out, &never);
            let first = start.elapsed().as_secs_f64();
            // The whole key as an unlock derives it: every block in one call, in SIMD lanes
            // where this CPU has them.
            let blocks = 192u32.div_ceil(prf.block_len() as u32);
            let jobs: Vec<LaneJob<'_>> = (1..=blocks)
                .map(|index| LaneJob {
                    password,
                    salt: &salt,
                    index,
                })
                .collect();
            let mut bufs = vec![vec![0u8; prf.block_len()]; jobs.len()];
            let mut outs: Vec<&mut [u8]> = bufs.iter_mut().map(|b| b.as_mut_slice()).collect();
            let start = Instant::now();
            let _ = pbkdf2_blocks(prf, &jobs, iterations, &mut outs, &never);
            Ok(PrfRow {
                prf,
                pim,
                kdf,
                first,
                full: start.elapsed().as_secs_f64(),
            })
        }
        Kdf::Argon2id(params) => {
            argon2id(password, &salt, params, &mut out).map_err(|e| CliError::new(e, FAILED))?;
            let t = start.elapsed().as_secs_f64();
            Ok(PrfRow {
                prf,
                pim,
                kdf,
                first: t,
                full: t,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --device
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pattern {
    Sequential,
    Random,
}

impl Pattern {
    fn name(self) -> &'static str {
        match self {
            Pattern::Sequential => "sequential",
            Pattern::Random => "random",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Read,
    Write,
}

struct IoRow {
    pattern: Pattern,
    op: Op,
    qd: u32,
    req: u64,
    plain: f64,
    encrypted: f64,
}

fn device_report(a: &BenchmarkArgs, dev: &Path, chain: ChainId) -> Result<String, CliError> {
    if !(a.duration.is_finite() && a.duration > 0.0 && a.duration <= 3600.0) {
        return Err(CliError::msg(
            "--duration must be between 0 and 3600 seconds",
            USAGE,
        ));
    }
    for (name, v) in [("--seq-size", a.seq_size), ("--rand-size", a.rand_size)] {
        if !v.is_multiple_of(4096) || v > (64 << 20) {
            return Err(CliError::msg(
                format!("{name} must be a multiple of 4K and at most 64M (O_DIRECT alignment)"),
                USAGE,
            ));
        }
    }
    if a.queue_depth.is_empty() || a.queue_depth.iter().any(|q| *q == 0 || *q > 256) {
        return Err(CliError::msg(
            "queue depths must be between 1 and 256",
            USAGE,
        ));
    }
    let meta = std::fs::metadata(dev).map_err(|e| open_error(dev, e))?;
    if !(meta.is_file() || meta.file_type().is_block_device()) {
        return Err(CliError::msg(
            format!(
                "{} is neither a block device nor a regular file",
                dev.display()
            ),
            BAD_INPUT,
        ));
    }
    if a.write {
        refuse_if_in_use(dev)?;
        if !a.yes {
            confirm_destroy(dev)?;
        }
    }
    let (file, direct) = open_device(dev, a.write)?;
    let size = tcvault::volume::device_size(&file).map_err(|e| {
        CliError::msg(
            format!("cannot find the size of {}: {e}", dev.display()),
            FAILED,
        )
    })?;
    let max_req = a.seq_size.max(a.rand_size);
    if size < max_req.saturating_mul(4) {
        return Err(CliError::msg(
            format!(
                "{} is too small: {} bytes, the test needs at least {}",
                dev.display(),
                size,
                max_req * 4
            ),
            BAD_INPUT,
        ));
    }
    let x = XtsChain::new(chain, &bench_key())
        .map_err(|_| CliError::msg("benchmark key too short", FAILED))?;
    let ops: &[Op] = if a.write {
        &[Op::Read, Op::Write]
    } else {
        &[Op::Read]
    };
    let patterns = [Pattern::Sequential, Pattern::Random];
    let mut progress = Progress::new(ops.len() * patterns.len() * a.queue_depth.len() * 2);
    let duration = Duration::from_secs_f64(a.duration);
    let mut rows = Vec::new();
    for &op in ops {
        for pattern in patterns {
            let req = if pattern == Pattern::Sequential {
                a.seq_size
            } else {
                a.rand_size
            };
            for &qd in &a.queue_depth {
                let mut figures = [0.0; 2];
                for (i, cipher) in [None, Some(&x)].into_iter().enumerate() {
                    progress.step(&format!(
                        "{} {} qd {qd}{}",
                        pattern.name(),
                        if op == Op::Read { "read" } else { "write" },
                        if cipher.is_some() { " (encrypted)" } else { "" }
                    ));
                    figures[i] = io_run(&file, size, op, pattern, req, qd, duration, cipher)
                        .map_err(|e| {
                            CliError::msg(format!("I/O on {} failed: {e}", dev.display()), FAILED)
                        })?;
                }
                rows.push(IoRow {
                    pattern,
                    op,
                    qd,
                    req,
                    plain: figures[0],
                    encrypted: figures[1],
                });
            }
        }
    }
    progress.finish();

    Ok(if a.json {
        let results: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "pattern": r.pattern.name(),
                    "op": if r.op == Op::Read { "read" } else { "write" },
                    "queue_depth": r.qd,
                    "request_bytes": r.req,
                    "plain_bytes_per_sec": r.plain.round(),
                    "encrypted_bytes_per_sec": r.encrypted.round(),
                    "encrypted_to_plain": if r.plain > 0.0 { r.encrypted / r.plain } else { 0.0 },
                })
            })
            .collect();
        let v = json!({
            "device": dev.display().to_string(),
            "size_bytes": size,
            "direct_io": direct,
            "chain": chain.name(),
            "kernels": {
                "aes": AesBackend::detect().name(),
                "serpent": SerpentBackend::detect().name(),
            },
            "results": results,
        });
        format!("{v:#}\n")
    } else {
        let mut s = format!(
            "{}: {} bytes, {}, chain {}\n",
            dev.display(),
            size,
            if direct {
                "O_DIRECT"
            } else {
                "buffered (O_DIRECT not supported here)"
            },
            chain.name()
        );
        s.push_str(&format!(
            "{:<11} {:<6} {:>4} {:>9} {:>12} {:>12} {:>10} {:>8}\n",
            "Pattern", "Op", "QD", "Request", "Plain", "Encrypted", "IOPS", "Ratio"
        ));
        for r in &rows {
            s.push_str(&format!(
                "{:<11} {:<6} {:>4} {:>9} {:>12} {:>12} {:>10.0} {:>7.0}%\n",
                r.pattern.name(),
                if r.op == Op::Read { "read" } else { "write" },
                r.qd,
                size_text(r.req),
                rate(r.plain),
                rate(r.encrypted),
                r.encrypted / r.req as f64,
                if r.plain > 0.0 {
                    100.0 * r.encrypted / r.plain
                } else {
                    0.0
                }
            ));
        }
        s
    })
}

fn open_error(dev: &Path, e: io::Error) -> CliError {
    let hint = match e.kind() {
        io::ErrorKind::PermissionDenied => Some("block devices usually need root (sudo)"),
        _ => None,
    };
    let c = CliError::msg(format!("cannot open {}: {e}", dev.display()), BAD_INPUT);
    match hint {
        Some(h) => c.hint(h),
        None => c,
    }
}

/// Opens with O_DIRECT, falling back to buffered I/O where the file system refuses it (tmpfs).
fn open_device(dev: &Path, write: bool) -> Result<(File, bool), CliError> {
    let open = |flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(flags)
            .open(dev)
    };
    match open(libc::O_DIRECT) {
        Ok(f) => {
            // Some file systems accept the flag at open and refuse the first read.
            let mut probe = AlignedBuf::new(4096);
            match f.read_at(probe.as_mut(), 0) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    open(0).map(|f| (f, false)).map_err(|e| open_error(dev, e))
                }
                _ => Ok((f, true)),
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            open(0).map(|f| (f, false)).map_err(|e| open_error(dev, e))
        }
        Err(e) => Err(open_error(dev, e)),
    }
}

/// Refuses a device that is mounted, holds a mounted partition, or is active swap.
fn refuse_if_in_use(dev: &Path) -> Result<(), CliError> {
    let target = std::fs::canonicalize(dev).map_err(|e| open_error(dev, e))?;
    let mut sources: Vec<PathBuf> = Vec::new();
    for (file, col) in [("/proc/self/mounts", 0), ("/proc/swaps", 0)] {
        if let Ok(text) = std::fs::read_to_string(file) {
            for line in text.lines() {
                if let Some(src) = line.split_whitespace().nth(col)
                    && src.starts_with('/')
                {
                    sources.push(std::fs::canonicalize(src).unwrap_or_else(|_| src.into()));
                }
            }
        }
    }
    let is_blk = std::fs::metadata(&target).is_ok_and(|m| m.file_type().is_block_device());
    let t = target.to_string_lossy().to_string();
    for s in &sources {
        let st = s.to_string_lossy();
        // /dev/sda holds /dev/sda1, /dev/nvme0n1 holds /dev/nvme0n1p1, /dev/loop0 /dev/loop0p1.
        let partition_of = is_blk
            && st.len() > t.len()
            && st.starts_with(t.as_str())
            && st[t.len()..]
                .trim_start_matches('p')
                .chars()
                .all(|c| c.is_ascii_digit());
        if *s == target || partition_of {
            return Err(CliError::msg(
                format!(
                    "{} is in use ({} is mounted or used as swap); --write would destroy it",
                    dev.display(),
                    s.display()
                ),
                BAD_INPUT,
            )
            .hint("unmount it (and its partitions) first"));
        }
    }
    Ok(())
}

fn confirm_destroy(dev: &Path) -> Result<(), CliError> {
    err!(
        "tcvault: --write overwrites {} with benchmark data; everything on it is lost.\n\
         Type 'yes' to continue: ",
        dev.display()
    );
    let _ = io::stderr().flush();
    let mut line = String::new();
    io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| CliError::msg(format!("cannot read the confirmation: {e}"), FAILED))?;
    if line.trim() == "yes" {
        Ok(())
    } else {
        Err(CliError::msg("not confirmed; nothing was written", USAGE)
            .hint("type 'yes', or pass --yes to skip the question"))
    }
}

/// A heap buffer whose usable part starts on a 4096-byte boundary (O_DIRECT needs it).
struct AlignedBuf {
    raw: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> AlignedBuf {
        let raw = vec![0u8; len + 4096];
        let off = raw.as_ptr().align_offset(4096).min(4096);
        AlignedBuf { raw, off, len }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.off..self.off + self.len]
    }
}

/// Runs `qd` workers for `duration`, each with one request in flight; returns bytes per second.
#[allow(clippy::too_many_arguments)]
fn io_run(
    file: &File,
    size: u64,
    op: Op,
    pattern: Pattern,
    req: u64,
    qd: u32,
    duration: Duration,
    cipher: Option<&XtsChain>,
) -> io::Result<f64> {
    let slots = size / req;
    let next = AtomicU64::new(0);
    let total = AtomicU64::new(0);
    let start = Instant::now();
    let deadline = start + duration;
    let result: io::Result<()> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..qd)
            .map(|w| {
                let next = &next;
                let total = &total;
                s.spawn(move || -> io::Result<()> {
                    let mut buf = AlignedBuf::new(req as usize);
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (u64::from(w) << 32 | 1);
                    let b = buf.as_mut();
                    for (i, byte) in b.iter_mut().enumerate() {
                        *byte = i as u8;
                    }
                    while Instant::now() < deadline {
                        let slot = match pattern {
                            Pattern::Sequential => next.fetch_add(1, Ordering::Relaxed) % slots,
                            Pattern::Random => {
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                rng % slots
                            }
                        };
                        let off = slot * req;
                        let unit = off / DATA_UNIT as u64;
                        match op {
                            Op::Read => {
                                read_full(file, b, off)?;
                                if let Some(x) = cipher {
                                    x.run_with_threads(Direction::Decrypt, b, unit, 1);
                                }
                            }
                            Op::Write => {
                                if let Some(x) = cipher {
                                    x.run_with_threads(Direction::Encrypt, b, unit, 1);
                                }
                                file.write_all_at(b, off)?;
                            }
                        }
                        total.fetch_add(req, Ordering::Relaxed);
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            match w.join() {
                Ok(r) => r?,
                Err(_) => return Err(io::Error::other("a benchmark worker panicked")),
            }
        }
        Ok(())
    });
    result?;
    if op == Op::Write {
        file.sync_data()?;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(total.load(Ordering::Relaxed) as f64 / secs)
}

fn read_full(file: &File, mut buf: &mut [u8], mut off: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, off) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "device ended early",
                ));
            }
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
