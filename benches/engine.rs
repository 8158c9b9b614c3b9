//! Engine throughput per cipher chain and unlock time, each beside a baseline measured in the
//! same run: the `xts-mode` crate over `aes` for XTS, the `pbkdf2` crate for PBKDF2.
//!
//! `cargo bench` runs everything; `cargo bench -- xts/AES` narrows it.

use std::hint::black_box;
use std::path::Path;

use cipher::KeyInit;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tcvault::crypto::chain::{ChainId, XtsChain};
use tcvault::crypto::kdf::Prf;
use tcvault::header::{Credentials, UnlockOptions};
use tcvault::secret::Password;
use tcvault::volume::{SlotChoice, Volume};

/// Below the engine's threading threshold: one core.
const ONE_THREAD: usize = 128 * 1024;
/// Large enough to be split across every core.
const ALL_THREADS: usize = 8 * 1024 * 1024;

fn key_material() -> Vec<u8> {
    (0..192u32)
        .map(|i| (i.wrapping_mul(37) ^ 0x5c) as u8)
        .collect()
}

fn xts(c: &mut Criterion) {
    let key = key_material();
    let mut g = c.benchmark_group("xts");
    g.sample_size(10);
    for size in [ONE_THREAD, ALL_THREADS] {
        let label = if size == ONE_THREAD {
            "1-thread"
        } else {
            "all-threads"
        };
        g.throughput(Throughput::Bytes(size as u64));
        let mut buf = vec![0x42u8; size];
        for chain in ChainId::ALL {
            let x = XtsChain::new(chain, &key).expect("192 bytes cover every chain");
            g.bench_with_input(
                BenchmarkId::new(format!("{chain}/encrypt"), label),
                &size,
                |b, _| {
                    b.iter(|| x.encrypt(black_box(&mut buf), 256));
                },
            );
            if chain == ChainId::Aes {
                g.bench_with_input(BenchmarkId::new("AES/decrypt", label), &size, |b, _| {
                    b.iter(|| x.decrypt(black_box(&mut buf), 256));
                });
            }
        }
        if size == ONE_THREAD {
            // Baseline: the xts-mode crate (one block per call) over the same AES.
            let k1 = aes::Aes256::new_from_slice(&key[..32]).expect("32-byte key");
            let k2 = aes::Aes256::new_from_slice(&key[32..64]).expect("32-byte key");
            let x = xts_mode::Xts128::new(k1, k2);
            g.bench_with_input(
                BenchmarkId::new("baseline-xts-mode-AES/encrypt", label),
                &size,
                |b, _| {
                    b.iter(|| {
                        x.encrypt_area(black_box(&mut buf), 512, 256, xts_mode::get_tweak_default)
                    });
                },
            );
        }
    }
    g.finish();
}

fn unlock(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("testvolumes/aes_sha512.hc");
    let pw = Password::new(b"DevSet-vc-Passw0rd-2026").expect("short password");
    let creds = Credentials::new(&pw, &[], 0).expect("credentials");
    let mut g = c.benchmark_group("unlock");
    g.sample_size(10);
    g.bench_function("aes_sha512.hc/auto-detect", |b| {
        b.iter(|| {
            Volume::open(
                &path,
                &creds,
                SlotChoice::default(),
                &UnlockOptions::default(),
            )
            .expect("opens")
        });
    });
    let sha512 = UnlockOptions {
        prf: Some(Prf::Sha512),
        ..UnlockOptions::default()
    };
    g.bench_function("aes_sha512.hc/--prf-sha512", |b| {
        b.iter(|| Volume::open(&path, &creds, SlotChoice::default(), &sha512).expect("opens"));
    });
    // The worst case: a wrong password tries every PRF on the normal and the hidden header.
    let wrong = Password::new(b"not the password").expect("short password");
    let wrong = Credentials::new(&wrong, &[], 0).expect("credentials");
    g.bench_function("aes_sha512.hc/wrong-password", |b| {
        b.iter(|| {
            Volume::open(
                &path,
                &wrong,
                SlotChoice::default(),
                &UnlockOptions::default(),
            )
            .expect_err("a wrong password opens nothing")
        });
    });
    // Baseline: what a plain PBKDF2 of the whole 192-byte key costs (VeraCrypt's way).
    g.bench_function("baseline-pbkdf2-crate-sha512-500000-192B", |b| {
        b.iter(|| {
            let mut out = [0u8; 192];
            pbkdf2::pbkdf2_hmac::<sha2::Sha512>(
                b"DevSet-vc-Passw0rd-2026",
                &[7u8; 64],
                500_000,
                &mut out,
            );
            out
        });
    });
    g.finish();
}

/// The PBKDF2 blocks a wrong password needs per PRF (every block of the 192-byte key, for the
/// normal and the hidden header's salt) in one call of the lane kernels, beside the same
/// blocks one by one; 5,000 iterations so that a run stays short (cost is linear in them).
fn pbkdf2_lanes(c: &mut Criterion) {
    use std::sync::atomic::AtomicBool;
    use tcvault::crypto::kdf::{LaneJob, pbkdf2_block, pbkdf2_blocks};
    const ITERATIONS: u32 = 5_000;
    let stop = AtomicBool::new(false);
    let salts = [[1u8; 64], [2u8; 64]];
    let mut g = c.benchmark_group("pbkdf2-lanes");
    g.sample_size(10);
    for prf in [
        Prf::Sha512,
        Prf::Sha256,
        Prf::Blake2s,
        Prf::Whirlpool,
        Prf::Streebog,
        Prf::Ripemd160,
    ] {
        let blocks = 192u32.div_ceil(prf.block_len() as u32);
        let jobs: Vec<LaneJob<'_>> = salts
            .iter()
            .flat_map(|salt| {
                (1..=blocks).map(move |index| LaneJob {
                    password: b"bench password",
                    salt,
                    index,
                })
            })
            .collect();
        let mut outs = vec![vec![0u8; prf.block_len()]; jobs.len()];
        g.bench_function(format!("{}/{}-blocks/lanes", prf.id(), jobs.len()), |b| {
            b.iter(|| {
                let mut o: Vec<&mut [u8]> = outs.iter_mut().map(|v| v.as_mut_slice()).collect();
                pbkdf2_blocks(prf, &jobs, ITERATIONS, &mut o, &stop).expect("not stopped");
            });
        });
        g.bench_function(
            format!("{}/{}-blocks/one-by-one", prf.id(), jobs.len()),
            |b| {
                b.iter(|| {
                    for (job, out) in jobs.iter().zip(outs.iter_mut()) {
                        pbkdf2_block(
                            prf,
                            job.password,
                            job.salt,
                            ITERATIONS,
                            job.index,
                            out,
                            &stop,
                        )
                        .expect("not stopped");
                    }
                });
            },
        );
    }
    g.finish();
}

/// Each AES-XTS and Serpent kernel this CPU runs, one thread, 16 KiB (the size `openssl speed`
/// reports), so the kernels can be compared with each other and with OpenSSL.
fn kernels(c: &mut Criterion) {
    use tcvault::crypto::cipher::BlockCipher;
    use tcvault::crypto::cipher::aes_xts::{AesBackend, AesXts};
    use tcvault::crypto::cipher::serpent::{Serpent, SerpentBackend};
    use tcvault::crypto::xts::{Direction, GenericXts, XtsCipher};

    const LEN: usize = 16 * 1024;
    let key = key_material();
    let k1: &[u8; 32] = key[..32].try_into().expect("32 bytes");
    let k2: &[u8; 32] = key[32..64].try_into().expect("32 bytes");
    let mut g = c.benchmark_group("kernels");
    g.sample_size(20);
    g.throughput(Throughput::Bytes(LEN as u64));
    let mut buf = vec![0x42u8; LEN];
    for b in AesBackend::ALL {
        let Some(x) = AesXts::with_backend(k1, k2, b) else {
            continue;
        };
        for (dir, name) in [
            (Direction::Encrypt, "encrypt"),
            (Direction::Decrypt, "decrypt"),
        ] {
            g.bench_function(format!("aes-xts-{}/{name}", b.name()), |bch| {
                bch.iter(|| x.xts(dir, black_box(&mut buf), 1));
            });
        }
    }
    for b in SerpentBackend::ALL {
        let (Some(p), Some(t)) = (Serpent::with_backend(k1, b), Serpent::with_backend(k2, b))
        else {
            continue;
        };
        let x = GenericXts::new(Box::new(p) as Box<dyn BlockCipher>, Box::new(t));
        g.bench_function(format!("serpent-xts-{}/encrypt", b.name()), |bch| {
            bch.iter(|| x.xts(Direction::Encrypt, black_box(&mut buf), 1));
        });
    }
    g.finish();
}

criterion_group!(benches, kernels, xts, unlock, pbkdf2_lanes);
criterion_main!(benches);
