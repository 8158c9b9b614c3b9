//! Random bytes for salts, master keys and fill keys: the operating system's generator only
//! (`getrandom(2)`), never a user-space generator seeded once.

/// The operating system could not supply random bytes.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random generator failed: {0}")]
pub struct RandomError(String);

/// Fills `buf` with random bytes from the operating system.
///
/// # Errors
/// When `getrandom(2)` fails (it does not on a booted Linux system).
pub fn fill(buf: &mut [u8]) -> Result<(), RandomError> {
    getrandom::fill(buf).map_err(|e| RandomError(e.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn two_draws_differ_and_are_not_zero() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        super::fill(&mut a).expect("getrandom");
        super::fill(&mut b).expect("getrandom");
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 64]);
    }
}
