//! Arguments of `tcvault benchmark`. Only `clap` and `std` here (build.rs compiles it).

use std::path::PathBuf;

use clap::Args;

use super::{ChainArg, PrfArg};

/// `tcvault benchmark`.
#[derive(Args, Debug)]
#[command(
    long_about = "Measures the cipher engine and the key derivations on this machine. Without \
                  --device: XTS encryption and decryption throughput of every cipher chain on \
                  one thread and on all threads, then the time one header key derivation costs \
                  for each PRF at the default PIM (and at --pim). With --device: end-to-end \
                  sequential and random reads of a block device or file with O_DIRECT at several \
                  queue depths, each beside the same reads without decryption, so the ratio \
                  shows what encryption costs. Figures vary with machine load: compare ratios \
                  taken in one run."
)]
pub struct BenchmarkArgs {
    /// Buffer size of each cipher pass (suffixes K, M, G; powers of 1024).
    #[arg(long, value_name = "SIZE", default_value = "32M", value_parser = parse_size)]
    pub buffer: u64,
    /// Only this cipher chain; repeat for several.
    #[arg(long, value_enum, ignore_case = true, value_name = "CHAIN")]
    pub cipher: Vec<ChainArg>,
    /// Only this key derivation function; repeat for several.
    #[arg(long, value_enum, ignore_case = true, value_name = "PRF")]
    pub prf: Vec<PrfArg>,
    /// Also time the key derivations at this PIM.
    #[arg(long, value_name = "N")]
    pub pim: Option<u32>,
    /// Skip the cipher table.
    #[arg(long, conflicts_with = "no_prf")]
    pub no_cipher: bool,
    /// Skip the key-derivation table.
    #[arg(long)]
    pub no_prf: bool,
    /// Minimum seconds spent on each cipher measurement.
    #[arg(long, value_name = "SECONDS", default_value = "0.5")]
    pub min_time: f64,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Measure end-to-end reads on this block device or file instead of the in-memory tables.
    #[arg(long, value_name = "DEV")]
    pub device: Option<PathBuf>,
    /// With --device: also measure writes. DESTROYS the contents of DEV.
    #[arg(long, requires = "device")]
    pub write: bool,
    /// With --write: do not ask for confirmation.
    #[arg(long, requires = "write")]
    pub yes: bool,
    /// With --device: queue depths (concurrent requests) to measure, comma-separated.
    #[arg(
        long,
        value_name = "N,…",
        value_delimiter = ',',
        default_value = "1,4,16"
    )]
    pub queue_depth: Vec<u32>,
    /// With --device: seconds per measurement.
    #[arg(long, value_name = "SECONDS", default_value = "2")]
    pub duration: f64,
    /// With --device: request size of sequential I/O.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    pub seq_size: u64,
    /// With --device: request size of random I/O.
    #[arg(long, value_name = "SIZE", default_value = "4K", value_parser = parse_size)]
    pub rand_size: u64,
}

/// Parses `4096`, `4K`, `1M`, `2G` (powers of 1024; a trailing `B` or `iB` is accepted).
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("unknown size suffix '{c}' (use K, M or G)")),
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 32M)"))?;
    let v = n
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if v == 0 {
        return Err("the size must be at least 1 byte".to_string());
    }
    Ok(v)
}
