//! Test support shared by the kernels' unit tests: the rule for CPU-specific kernels the CPU
//! lacks, a deterministic input generator, and the checks every 64-byte-output PBKDF2 kernel
//! (Streebog, Whirlpool) runs against its reference.

use std::sync::atomic::AtomicBool;

use super::{LaneJob, Stopped};

/// PBKDF2 of the reference implementation: password, salt, iterations, whole output.
pub type Reference = fn(&[u8], &[u8], u32, &mut [u8]);
/// One output block of a kernel: password, salt, iterations, 1-based index, output, stop flag.
pub type Block = fn(&[u8], &[u8], u32, u32, &mut [u8], &AtomicBool) -> Result<(), Stopped>;
/// Several blocks in one call of a kernel.
pub type Blocks = fn(&[LaneJob<'_>], u32, &mut [&mut [u8]], &AtomicBool) -> Result<(), Stopped>;

/// Whether the CPU has the kernel a test checks (`present`). Without it the kernel's checks
/// cannot run on this machine, on CI neither: they are skipped, saying so on standard error
/// (shown with `--nocapture`); `scripts/test.sh` ends by naming the CPU features this
/// machine lacks, so a CI log shows which kernels went unchecked. The portable paths these
/// kernels stand in for are checked on every machine.
pub fn kernel_present(present: bool, what: &str) -> bool {
    if !present {
        eprintln!("this CPU has no {what} kernel: its checks do not run here");
    }
    present
}

/// A small deterministic generator for test inputs (SplitMix64).
pub fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Blocks 1–3 of random passwords (0–150 bytes) and salts (0–100 bytes) at iteration counts
/// around the stop-flag check equal the reference's 192-byte output.
pub fn single_blocks_match(seed: u64, reference: Reference, block: Block) {
    let never = AtomicBool::new(false);
    let mut seed = seed;
    for case in 0..24 {
        let pw_len = [0, 1, 20, 63, 64, 65, 128, 150][case % 8];
        let salt_len = [64, 0, 16, 100][case % 4];
        let iterations = [1, 2, 3, 17, 1000, 2049][case % 6];
        let password: Vec<u8> = (0..pw_len).map(|_| next(&mut seed) as u8).collect();
        let salt: Vec<u8> = (0..salt_len).map(|_| next(&mut seed) as u8).collect();
        let mut want = [0u8; 192];
        reference(&password, &salt, iterations, &mut want);
        for index in 1..=3u32 {
            let mut got = [0u8; 64];
            block(&password, &salt, iterations, index, &mut got, &never).expect("never stopped");
            let at = (index as usize - 1) * 64;
            assert_eq!(
                got[..],
                want[at..at + 64],
                "case {case}: password {pw_len} B, salt {salt_len} B, {iterations} iterations, block {index}"
            );
        }
    }
}

/// 1 to 7 jobs in one call (more than one group of chains, partial groups) equal the reference.
pub fn grouped_blocks_match(seed: u64, reference: Reference, blocks: Blocks) {
    let never = AtomicBool::new(false);
    let mut seed = seed;
    let specs: Vec<(Vec<u8>, Vec<u8>, u32)> = (0..7)
        .map(|i| {
            let pw = (0..[3usize, 64, 90][i % 3])
                .map(|_| next(&mut seed) as u8)
                .collect();
            let salt = (0..64).map(|_| next(&mut seed) as u8).collect();
            (pw, salt, 1 + (i as u32 % 3))
        })
        .collect();
    for n in 1..=specs.len() {
        let jobs: Vec<LaneJob<'_>> = specs[..n]
            .iter()
            .map(|(p, s, i)| LaneJob {
                password: p,
                salt: s,
                index: *i,
            })
            .collect();
        let mut got = vec![[0u8; 64]; n];
        let mut outs: Vec<&mut [u8]> = got.iter_mut().map(|b| b.as_mut_slice()).collect();
        blocks(&jobs, 33, &mut outs, &never).expect("never stopped");
        for (k, (p, s, i)) in specs[..n].iter().enumerate() {
            let mut want = [0u8; 192];
            reference(p, s, 33, &mut want);
            let at = (*i as usize - 1) * 64;
            assert_eq!(got[k][..], want[at..at + 64], "{n} jobs, job {k}");
        }
    }
}

/// A raised stop flag stops the kernel, which then writes nothing.
pub fn stops_when_flag_raised(block: Block) {
    let stop = AtomicBool::new(true);
    let mut out = [0u8; 64];
    assert_eq!(
        block(b"pw", b"salt", 100_000, 1, &mut out, &stop),
        Err(Stopped)
    );
    assert_eq!(out, [0u8; 64], "nothing written when stopped");
}
