//! Which key derivation a header uses: family, PRF, PIM and system flag to iteration counts
//! (docs/format.md §4).

use std::fmt;

use crate::crypto::kdf::{Argon2Params, Prf};

/// The two header families; they differ in magic and in PBKDF2 iteration counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// VeraCrypt (magic `VERA`).
    VeraCrypt,
    /// TrueCrypt (magic `TRUE`).
    TrueCrypt,
}

impl Family {
    /// The header magic of this family.
    pub fn magic(self) -> &'static [u8; 4] {
        match self {
            Family::VeraCrypt => b"VERA",
            Family::TrueCrypt => b"TRUE",
        }
    }

    /// Short lower-case name.
    pub fn id(self) -> &'static str {
        match self {
            Family::VeraCrypt => "veracrypt",
            Family::TrueCrypt => "truecrypt",
        }
    }

    /// Longest password the family accepts (docs/format.md §4).
    pub fn max_password_len(self) -> usize {
        match self {
            Family::VeraCrypt => 128,
            Family::TrueCrypt => 64,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::VeraCrypt => "VeraCrypt",
            Family::TrueCrypt => "TrueCrypt",
        })
    }
}

/// A fully specified key derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kdf {
    /// PBKDF2 with this PRF and iteration count.
    Pbkdf2 {
        /// The HMAC hash.
        prf: Prf,
        /// Iterations.
        iterations: u32,
    },
    /// Argon2id with these costs.
    Argon2id(Argon2Params),
}

impl Kdf {
    /// The PRF of this derivation.
    pub fn prf(self) -> Prf {
        match self {
            Kdf::Pbkdf2 { prf, .. } => prf,
            Kdf::Argon2id(_) => Prf::Argon2id,
        }
    }

    /// The key derivation `family` uses for `prf` with `pim` (0 = default) on a system (`system`)
    /// or non-system header, or `None` when the family has no such PRF.
    pub fn for_header(family: Family, prf: Prf, pim: u32, system: bool) -> Option<Kdf> {
        let iterations = match family {
            Family::TrueCrypt => {
                if pim != 0 {
                    return None;
                }
                match (prf, system) {
                    (Prf::Sha512 | Prf::Whirlpool, _) => 1_000,
                    (Prf::Ripemd160, true) => 1_000,
                    (Prf::Ripemd160 | Prf::Sha1, false) => 2_000,
                    _ => return None,
                }
            }
            Family::VeraCrypt => match prf {
                Prf::Sha1 => return None,
                Prf::Argon2id => return Some(Kdf::Argon2id(argon2_params(pim))),
                Prf::Sha512 | Prf::Whirlpool => pbkdf2_count(pim, 500_000, 15_000, 1_000),
                Prf::Sha256 | Prf::Blake2s | Prf::Streebog => {
                    if system {
                        pbkdf2_count(pim, 200_000, 0, 2_048)
                    } else {
                        pbkdf2_count(pim, 500_000, 15_000, 1_000)
                    }
                }
                Prf::Ripemd160 => {
                    if system {
                        pbkdf2_count(pim, 327_661, 0, 2_048)
                    } else {
                        pbkdf2_count(pim, 655_331, 15_000, 1_000)
                    }
                }
            },
        };
        Some(Kdf::Pbkdf2 { prf, iterations })
    }

    /// Iteration count (PBKDF2) or passes (Argon2id), for display.
    pub fn cost_summary(self) -> String {
        match self {
            Kdf::Pbkdf2 { iterations, .. } => format!("{iterations} iterations"),
            Kdf::Argon2id(p) => format!(
                "{} MiB, {} passes, {} lane",
                p.memory_kib / 1024,
                p.passes,
                p.parallelism
            ),
        }
    }
}

/// `default` for PIM 0, else `base + per_pim * pim` (saturating: a huge PIM is refused upstream).
fn pbkdf2_count(pim: u32, default: u32, base: u32, per_pim: u32) -> u32 {
    if pim == 0 {
        default
    } else {
        base.saturating_add(per_pim.saturating_mul(pim))
    }
}

/// Argon2id costs for a PIM (docs/format.md §4); PIM 0 acts as PIM 12.
pub fn argon2_params(pim: u32) -> Argon2Params {
    let n = if pim == 0 { 12 } else { pim };
    let memory_mib = (64 + 32 * (n.min(32) - 1)).min(1024);
    let passes = if n <= 31 {
        3 + (n - 1) / 3
    } else {
        13 + (n - 31)
    };
    Argon2Params {
        memory_kib: memory_mib * 1024,
        passes,
        parallelism: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iters(f: Family, p: Prf, pim: u32, sys: bool) -> Option<u32> {
        match Kdf::for_header(f, p, pim, sys)? {
            Kdf::Pbkdf2 { iterations, .. } => Some(iterations),
            Kdf::Argon2id(_) => None,
        }
    }

    #[test]
    fn veracrypt_counts() {
        use Family::VeraCrypt as V;
        for p in [
            Prf::Sha512,
            Prf::Whirlpool,
            Prf::Sha256,
            Prf::Blake2s,
            Prf::Streebog,
        ] {
            assert_eq!(iters(V, p, 0, false), Some(500_000));
            assert_eq!(iters(V, p, 3, false), Some(18_000));
        }
        assert_eq!(iters(V, Prf::Ripemd160, 0, false), Some(655_331));
        assert_eq!(iters(V, Prf::Ripemd160, 0, true), Some(327_661));
        assert_eq!(iters(V, Prf::Ripemd160, 5, true), Some(10_240));
        assert_eq!(iters(V, Prf::Sha512, 0, true), Some(500_000));
        assert_eq!(iters(V, Prf::Sha512, 5, true), Some(20_000));
        assert_eq!(iters(V, Prf::Sha256, 0, true), Some(200_000));
        assert_eq!(iters(V, Prf::Streebog, 7, true), Some(14_336));
        assert_eq!(iters(V, Prf::Sha1, 0, false), None);
    }

    #[test]
    fn truecrypt_counts() {
        use Family::TrueCrypt as T;
        assert_eq!(iters(T, Prf::Sha512, 0, false), Some(1_000));
        assert_eq!(iters(T, Prf::Whirlpool, 0, false), Some(1_000));
        assert_eq!(iters(T, Prf::Ripemd160, 0, false), Some(2_000));
        assert_eq!(iters(T, Prf::Ripemd160, 0, true), Some(1_000));
        assert_eq!(iters(T, Prf::Sha1, 0, false), Some(2_000));
        assert_eq!(iters(T, Prf::Sha256, 0, false), None);
        assert_eq!(
            iters(T, Prf::Sha512, 5, false),
            None,
            "TrueCrypt takes no PIM"
        );
    }

    #[test]
    fn argon2_costs() {
        assert_eq!(
            argon2_params(0),
            Argon2Params {
                memory_kib: 416 * 1024,
                passes: 6,
                parallelism: 1
            }
        );
        assert_eq!(argon2_params(1).memory_kib, 64 * 1024);
        assert_eq!(argon2_params(1).passes, 3);
        assert_eq!(argon2_params(31).memory_kib, 1024 * 1024);
        assert_eq!(argon2_params(31).passes, 13);
        assert_eq!(argon2_params(40).memory_kib, 1024 * 1024);
        assert_eq!(argon2_params(40).passes, 22);
    }
}
