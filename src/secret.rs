//! Secret-holding types: passwords, PIMs, keyfile pools and key material.
//!
//! Every type here wipes its bytes on drop, prints as `<redacted>` in `Debug`, and asks the OS to
//! keep its heap buffer out of swap (`mlock`) and out of core dumps (`MADV_DONTDUMP`) where that
//! is allowed. Nothing in the crate stores a secret in a plain `Vec<u8>` (nor in a bare
//! `zeroize::Zeroizing`, which `clippy.toml` refuses). [`harden_process`]
//! makes a whole process non-dumpable; every binary calls it before it reads a secret.

use std::fmt;

use zeroize::Zeroize;

/// The longest password VeraCrypt accepts for non-system volumes (docs/format.md §4).
pub const MAX_PASSWORD_LEN: usize = 128;

/// Makes this process unable to leave its memory anywhere a secret could be read back: no core
/// dump (`RLIMIT_CORE` 0, and `PR_SET_DUMPABLE` 0, which also covers a core handler that
/// ignores the limit and keeps other processes of the same user from attaching with ptrace or
/// reading `/proc/PID/mem`). Every binary calls it first thing, before it reads any secret;
/// it is inherited by threads and forks, and each program it executes calls it again.
///
/// (A closed standard descriptor needs nothing here: Rust's runtime opens `/dev/null` on
/// any of 0–2 that is closed before `main`, so a volume opened later never becomes "stdout".)
///
/// # Errors
/// The OS refused one of the settings.
pub fn harden_process() -> std::io::Result<()> {
    let none = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limits.
    if unsafe { libc::setrlimit(libc::RLIMIT_CORE, &none) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: PR_SET_DUMPABLE takes an integer argument and touches no memory of ours.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether this process is marked non-dumpable ([`harden_process`]).
pub fn process_is_hardened() -> bool {
    // SAFETY: PR_GET_DUMPABLE takes no pointer and only reads the flag.
    unsafe { libc::prctl(libc::PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 }
}

/// Bytes that must never reach a log, a swap file, a core dump or a terminal.
///
/// The buffer is allocated once at its final size in pages of its own (so that no other data
/// shares them), locked in memory where the OS allows (`mlock`), excluded from core dumps
/// (`MADV_DONTDUMP`), and zeroized (then unlocked) on drop.
pub struct SecretBytes {
    page: PageBuf,
    locked: bool,
}

impl SecretBytes {
    /// A zero-filled secret buffer of `len` bytes.
    pub fn zeroed(len: usize) -> Self {
        let page = PageBuf::zeroed(len);
        let locked = page.protect();
        SecretBytes { page, locked }
    }

    /// Copies `data` into a new secret buffer. The caller remains responsible for wiping `data`.
    pub fn from_slice(data: &[u8]) -> Self {
        let mut s = Self::zeroed(data.len());
        s.expose_mut().copy_from_slice(data);
        s
    }

    /// Takes over a secret another library handed out in a `Vec` (a decrypted key, say): its
    /// bytes are copied into a new secret buffer and the `Vec` is wiped.
    pub fn from_vec(mut data: Vec<u8>) -> Self {
        let s = Self::from_slice(&data);
        data.zeroize();
        s
    }

    /// The secret bytes.
    pub fn expose(&self) -> &[u8] {
        self.page.bytes()
    }

    /// The secret bytes, writable.
    pub fn expose_mut(&mut self) -> &mut [u8] {
        self.page.bytes_mut()
    }

    /// Number of bytes held.
    pub fn len(&self) -> usize {
        self.page.len
    }

    /// Whether no bytes are held.
    pub fn is_empty(&self) -> bool {
        self.page.len == 0
    }

    /// Whether the buffer is locked in memory (the OS may refuse, e.g. over `RLIMIT_MEMLOCK`).
    pub fn is_locked(&self) -> bool {
        self.locked
    }
}

impl Clone for SecretBytes {
    fn clone(&self) -> Self {
        Self::from_slice(self.expose())
    }
}

impl Drop for SecretBytes {
    fn drop(&mut self) {
        self.page.bytes_mut().zeroize();
        if self.locked {
            self.page.unlock();
        }
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes(<redacted {} bytes>)", self.len())
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time in the contents (lengths are not secret).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self
                .expose()
                .iter()
                .zip(other.expose().iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}
impl Eq for SecretBytes {}

/// The page size the buffers are rounded to (4 KiB on every Linux target we build for; a
/// larger real page size only means `madvise` and `mlock` round further).
const PAGE: usize = 4096;

/// A zero-initialised heap buffer of `len` bytes on whole pages of its own.
struct PageBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: PageBuf owns its allocation exclusively (like a Box<[u8]>); moving it between threads
// or sharing `&PageBuf` only ever reads through `&self` or writes through `&mut self`.
unsafe impl Send for PageBuf {}
// SAFETY: as above; no interior mutability.
unsafe impl Sync for PageBuf {}

impl PageBuf {
    fn layout(len: usize) -> std::alloc::Layout {
        let size = len.div_ceil(PAGE).max(1) * PAGE;
        std::alloc::Layout::from_size_align(size, PAGE).unwrap_or_else(|_| {
            // Only a length near usize::MAX gets here; allocation would fail anyway.
            std::alloc::handle_alloc_error(std::alloc::Layout::new::<[u8; PAGE]>())
        })
    }

    fn zeroed(len: usize) -> PageBuf {
        let layout = Self::layout(len);
        // SAFETY: the layout has a non-zero size (at least one page).
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            std::alloc::handle_alloc_error(layout)
        };
        PageBuf { ptr, len }
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` points to at least `len` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Excludes the pages from core dumps and locks them in memory; whether the lock held.
    fn protect(&self) -> bool {
        let size = Self::layout(self.len).size();
        // SAFETY: the range is exactly this allocation's pages (page-aligned start and size);
        // madvise and mlock change only paging attributes, never the contents.
        unsafe {
            libc::madvise(self.ptr.as_ptr().cast(), size, libc::MADV_DONTDUMP);
            libc::mlock(self.ptr.as_ptr().cast(), size) == 0
        }
    }

    fn unlock(&self) {
        let size = Self::layout(self.len).size();
        // SAFETY: as in `protect`; the range was locked there.
        unsafe {
            libc::munlock(self.ptr.as_ptr().cast(), size);
        }
    }
}

impl Drop for PageBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this same layout, and freed only here.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::layout(self.len)) }
    }
}

/// A secret of exactly `N` bytes (a key, an IV seed): a [`SecretBytes`] whose length is part of
/// its type, for code that takes keys as arrays.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretArray<const N: usize>(SecretBytes);

impl<const N: usize> SecretArray<N> {
    /// `N` zero bytes, to be filled through [`SecretArray::expose_mut`].
    pub fn zeroed() -> Self {
        SecretArray(SecretBytes::zeroed(N))
    }

    /// The bytes.
    pub fn expose(&self) -> &[u8; N] {
        match self.0.expose().try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("a SecretArray<N> holds N bytes (it is made only by zeroed)"),
        }
    }

    /// The bytes, writable.
    pub fn expose_mut(&mut self) -> &mut [u8; N] {
        match self.0.expose_mut().try_into() {
            Ok(a) => a,
            Err(_) => unreachable!("a SecretArray<N> holds N bytes (it is made only by zeroed)"),
        }
    }
}

impl<const N: usize> fmt::Debug for SecretArray<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretArray<{N}>(<redacted>)")
    }
}

/// A volume password: its UTF-8 bytes as typed (VeraCrypt hashes the bytes, no normalisation).
#[derive(Clone, PartialEq, Eq)]
pub struct Password(SecretBytes);

/// Why a password was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Longer than the format allows.
    #[error("the password is {len} bytes long; at most {max} bytes are allowed")]
    TooLong {
        /// Length in bytes of the given password.
        len: usize,
        /// The limit for this format.
        max: usize,
    },
}

impl Password {
    /// Wraps password bytes, refusing more than [`MAX_PASSWORD_LEN`] bytes.
    ///
    /// # Errors
    /// [`PasswordError::TooLong`] when `bytes` exceeds the limit.
    pub fn new(bytes: &[u8]) -> Result<Self, PasswordError> {
        if bytes.len() > MAX_PASSWORD_LEN {
            return Err(PasswordError::TooLong {
                len: bytes.len(),
                max: MAX_PASSWORD_LEN,
            });
        }
        Ok(Password(SecretBytes::from_slice(bytes)))
    }

    /// The empty password (allowed only together with keyfiles).
    pub fn empty() -> Self {
        Password(SecretBytes::zeroed(0))
    }

    /// The password bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Whether the password is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// A secret that is text: a network password, a key passphrase, a private key's PEM. Valid
/// UTF-8 held in a [`SecretBytes`] buffer (locked, out of core dumps, wiped on drop).
#[derive(Clone, PartialEq, Eq)]
pub struct SecretText(SecretBytes);

impl SecretText {
    /// Takes `s` over: its bytes are copied into a secret buffer and `s` is wiped.
    pub fn from_string(mut s: String) -> Self {
        let t = SecretText(SecretBytes::from_slice(s.as_bytes()));
        s.zeroize();
        t
    }

    /// The secret bytes as text, when they are UTF-8 (else `None`).
    pub fn from_secret(bytes: SecretBytes) -> Option<Self> {
        std::str::from_utf8(bytes.expose())
            .is_ok()
            .then_some(SecretText(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only valid UTF-8 is ever stored (see the constructors).
        std::str::from_utf8(self.0.expose()).unwrap_or_default()
    }

    /// The text's bytes.
    pub fn expose(&self) -> &[u8] {
        self.0.expose()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

/// A JSON request body's password field. The serialiser's output buffer is the caller's to
/// wipe (the HTTP client sends it and drops it).
impl serde::Serialize for SecretText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Read from a JSON body: the parsed string is moved into a secret buffer and wiped.
impl<'de> serde::Deserialize<'de> for SecretText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SecretText::from_string)
    }
}

/// Reads all of `reader`, at most `limit` bytes, straight into a secret buffer (never through a
/// growing `Vec`, whose reallocations would leave copies behind) and returns what was read,
/// with one trailing newline (`\n` or `\r\n`) removed when `trim_newline`.
///
/// # Errors
/// The reader's error; [`std::io::ErrorKind::InvalidData`] when there is more than `limit`.
pub fn read_secret(
    mut reader: impl std::io::Read,
    limit: usize,
    trim_newline: bool,
) -> std::io::Result<SecretBytes> {
    // One byte more than allowed: input that fills it is too long, never silently cut.
    let mut buf = SecretBytes::zeroed(limit + 1);
    let mut filled = 0;
    while filled <= limit {
        match reader.read(&mut buf.expose_mut()[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if filled > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("longer than {limit} bytes"),
        ));
    }
    let mut bytes = &buf.expose()[..filled];
    if trim_newline && let Some(rest) = bytes.strip_suffix(b"\n") {
        bytes = rest.strip_suffix(b"\r").unwrap_or(rest);
    }
    Ok(SecretBytes::from_slice(bytes))
}

/// Personal Iterations Multiplier; 0 means "the default iteration count".
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct Pim(u32);

impl Pim {
    /// The largest PIM accepted; VeraCrypt's own limit for non-system volumes is 2,147,468 but
    /// anything beyond this takes hours to derive and is almost certainly a typo.
    pub const MAX: u32 = 2_147_468;

    /// A PIM value.
    ///
    /// # Errors
    /// Returns the value back when it exceeds [`Pim::MAX`].
    pub fn new(value: u32) -> Result<Self, u32> {
        if value > Self::MAX {
            Err(value)
        } else {
            Ok(Pim(value))
        }
    }

    /// The numeric value (0 = default).
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for Pim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A PIM is part of the credential: do not print it.
        f.write_str("Pim(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secret() {
        let p = Password::new(b"hunter2-secret").expect("short password");
        assert!(!format!("{p:?}").contains("hunter2"));
        let s = SecretBytes::from_slice(b"topsecretkey");
        assert!(!format!("{s:?}").contains("topsecret"));
        let pim = Pim::new(485).expect("valid pim");
        assert!(!format!("{pim:?}").contains("485"));
    }

    #[test]
    fn fixed_size_secrets_and_taken_over_vecs() {
        let mut k = SecretArray::<32>::zeroed();
        assert_eq!(k.expose(), &[0u8; 32]);
        k.expose_mut()[31] = 7;
        assert_eq!(k.expose()[31], 7);
        assert_eq!(k.clone(), k);
        assert_eq!(format!("{k:?}"), "SecretArray<32>(<redacted>)");
        let v = SecretBytes::from_vec(b"decrypted key".to_vec());
        assert_eq!(v.expose(), b"decrypted key");
        assert_eq!(v.expose().as_ptr() as usize % PAGE, 0, "on its own pages");
    }

    #[test]
    fn password_length_limit() {
        assert!(Password::new(&[b'a'; 128]).is_ok());
        assert_eq!(
            Password::new(&[b'a'; 129]).err(),
            Some(PasswordError::TooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn secret_buffers_are_page_aligned_and_wiped_on_their_own_pages() {
        for len in [0, 1, 64, 4096, 4097] {
            let mut s = SecretBytes::zeroed(len);
            assert_eq!(s.len(), len);
            assert_eq!(s.expose().as_ptr() as usize % PAGE, 0);
            s.expose_mut().fill(0xA5);
            assert!(s.expose().iter().all(|&b| b == 0xA5));
            let c = s.clone();
            assert_eq!(c, s);
        }
    }

    /// The kernel's own view of a secret buffer's pages: excluded from core dumps ("dd" in
    /// /proc/self/smaps) and, where the lock was granted, locked ("lo").
    #[test]
    fn secret_pages_are_out_of_core_dumps_and_locked() {
        let s = SecretBytes::from_slice(b"a key that must not reach a core file");
        let addr = s.expose().as_ptr() as usize;
        let smaps = std::fs::read_to_string("/proc/self/smaps").expect("smaps");
        let mut inside = false;
        let mut flags = None;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((lo, hi)) = range.split_once('-')
                && let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
            {
                inside = (lo..hi).contains(&addr);
            } else if inside && let Some(f) = line.strip_prefix("VmFlags:") {
                flags = Some(f.split_whitespace().map(str::to_owned).collect::<Vec<_>>());
            }
        }
        let flags = flags.expect("the buffer's mapping is listed");
        assert!(
            flags.iter().any(|f| f == "dd"),
            "not MADV_DONTDUMP: {flags:?}"
        );
        if s.is_locked() {
            assert!(
                flags.iter().any(|f| f == "lo"),
                "locked, yet not: {flags:?}"
            );
        }
    }

    #[test]
    fn hardening_makes_the_process_non_dumpable() {
        // Run in a child so the test harness itself keeps its settings.
        let exe = std::env::current_exe().expect("test binary");
        if std::env::var_os("TCVAULT_HARDEN_CHILD").is_some() {
            harden_process().expect("harden");
            assert!(process_is_hardened());
            let mut lim = libc::rlimit {
                rlim_cur: 1,
                rlim_max: 1,
            };
            // SAFETY: getrlimit writes the struct it is given.
            assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_CORE, &mut lim) }, 0);
            assert_eq!((lim.rlim_cur, lim.rlim_max), (0, 0));
            return;
        }
        let out = std::process::Command::new(exe)
            .args([
                "--exact",
                "secret::tests::hardening_makes_the_process_non_dumpable",
            ])
            .env("TCVAULT_HARDEN_CHILD", "1")
            .output()
            .expect("child");
        assert!(out.status.success(), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
    }

    #[test]
    fn secrets_read_into_their_own_buffers() {
        let s = read_secret(&b"pass phrase\r\n"[..], 64, true).expect("read");
        assert_eq!(s.expose(), b"pass phrase");
        let s = read_secret(&b"abcd"[..], 4, false).expect("read");
        assert_eq!(s.expose(), b"abcd");
        // More than the limit is refused, never cut to it.
        let e = read_secret(&b"abcdef"[..], 4, false).expect_err("too long");
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidData);
        let t = SecretText::from_secret(SecretBytes::from_slice("pässword".as_bytes()));
        assert_eq!(t.expect("utf-8").as_str(), "pässword");
        assert!(SecretText::from_secret(SecretBytes::from_slice(&[0xff])).is_none());
        assert!(!format!("{:?}", SecretText::from_string("hunter2".into())).contains("hunter"));
    }

    #[test]
    fn secret_equality() {
        assert_eq!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"abc")
        );
        assert_ne!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"abd")
        );
        assert_ne!(
            SecretBytes::from_slice(b"abc"),
            SecretBytes::from_slice(b"ab")
        );
    }
}
