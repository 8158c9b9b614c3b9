//! What the targets share: reading fuzz input, cheap credentials, sealing crafted headers with a
//! fixed salt, building crafted volumes, and comparing hosts before and after a write.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tcvault::crypto::chain::ChainId;
use tcvault::crypto::kdf::{Prf, pbkdf2};
use tcvault::crypto::legacy::{LegacyChain, LegacyMode};
use tcvault::crypto::scheme::{Scheme, SectorCipher};
use tcvault::header::format::{Header, KEY_AREA_LEN, crc32};
use tcvault::header::kdf::Family;
use tcvault::header::layout::{
    BACKUP_HIDDEN_FROM_END, BACKUP_NORMAL_FROM_END, DATA_AREA_OFFSET, HEADER_SIZE,
    HIDDEN_HEADER_OFFSET, LEGACY_HIDDEN_FROM_END, MIN_VOLUME_SIZE, SALT_LEN,
};
use tcvault::header::unlock::{Credentials, DERIVED_KEY_LEN, UnlockOptions};
use tcvault::secret::{Password, SecretBytes};

/// The password every crafted header is sealed under.
pub const PASSWORD: &[u8] = b"fuzz password";
/// The password write operations change to.
pub const NEW_PASSWORD: &[u8] = b"new fuzz password";
/// The salt of every crafted header, so that its key is derived once per process.
pub const SALT: [u8; SALT_LEN] = [0x5A; SALT_LEN];
/// TrueCrypt's SHA-512 iteration count: the cheapest key derivation of the format.
pub const ITERATIONS: u32 = 1_000;

/// Reads fuzz input front to back; past the end every read gives zeros.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Input<'a> {
    /// Starts at the first byte.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, at: 0 }
    }

    /// One byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at = self.at.saturating_add(1);
        b
    }

    /// A big-endian u16.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    /// Up to `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.at = self.at.saturating_add(n);
        &self.data[start..end]
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        self.at = self.data.len();
        &self.data[start..]
    }
}

/// Credentials of `password` without keyfiles.
pub fn creds(password: &[u8], pim: u32) -> Credentials {
    let pw = Password::new(password).expect("short password");
    Credentials::new(&pw, &[], pim).expect("non-empty password")
}

/// Trial decryption narrowed to one family (SHA-512) and one scheme, on this thread only.
pub fn opts(family: Family, scheme: Scheme) -> UnlockOptions {
    UnlockOptions {
        family: Some(family),
        prf: Some(Prf::Sha512),
        scheme: Some(scheme),
        threads: 1,
        ..UnlockOptions::default()
    }
}

/// The schemes crafted volumes use: XTS with one and with three ciphers, LRW and CBC.
pub const SCHEMES: [Scheme; 5] = [
    Scheme::Xts(ChainId::Aes),
    Scheme::Xts(ChainId::SerpentTwofishAes),
    Scheme::Legacy(LegacyChain::Aes, LegacyMode::Lrw),
    Scheme::Legacy(LegacyChain::Blowfish, LegacyMode::Cbc),
    Scheme::Legacy(LegacyChain::AesTwofish, LegacyMode::Cbc),
];

/// A scheme chosen by one input byte.
pub fn scheme_of(b: u8) -> Scheme {
    SCHEMES[usize::from(b) % SCHEMES.len()]
}

/// The TrueCrypt header key of [`PASSWORD`] and [`SALT`], derived once.
pub fn header_key() -> &'static [u8] {
    static KEY: OnceLock<Vec<u8>> = OnceLock::new();
    KEY.get_or_init(|| {
        let mut k = vec![0u8; DERIVED_KEY_LEN];
        pbkdf2(Prf::Sha512, PASSWORD, &SALT, ITERATIONS, &mut k);
        k
    })
}

/// Sets both CRC fields of decrypted header bytes to match their contents.
pub fn fix_crcs(b: &mut [u8; HEADER_SIZE]) {
    let key_crc = crc32(&b[256..]);
    b[72..76].copy_from_slice(&key_crc.to_be_bytes());
    let header_crc = crc32(&b[64..252]);
    b[252..256].copy_from_slice(&header_crc.to_be_bytes());
}

/// Encrypts decrypted header bytes (salt in 0–63, replaced by [`SALT`]) under the key of
/// [`PASSWORD`] with `scheme`.
pub fn seal_plain(plain: &[u8; HEADER_SIZE], scheme: Scheme) -> [u8; HEADER_SIZE] {
    let mut out = *plain;
    out[..SALT_LEN].copy_from_slice(&SALT);
    let cipher = SectorCipher::new(scheme, header_key()).expect("192 bytes key every scheme");
    cipher.encrypt_header(&mut out[SALT_LEN..]);
    out
}

/// The decrypted bytes of `header` with [`SALT`].
pub fn plain_of(header: &Header) -> [u8; HEADER_SIZE] {
    let s = header.serialize(&SALT);
    let mut b = [0u8; HEADER_SIZE];
    b.copy_from_slice(s.expose());
    b
}

/// A folder for this process's scratch files (under `TMPDIR`; the fuzz script points that at a
/// folder it removes afterwards).
pub fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = std::env::temp_dir().join(format!("tcvault-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("scratch folder");
        d
    })
}

/// A scratch file name unique to this thread (tests run in parallel).
pub fn scratch_file(name: &str) -> PathBuf {
    let t = format!("{:?}", std::thread::current().id());
    let t: String = t.chars().filter(char::is_ascii_digit).collect();
    scratch().join(format!("{name}-{t}"))
}

/// Where a header's places are, as the format defines them (not as the library computes them):
/// the byte offsets a rewrite of `header` may write 512 bytes at, in a host of `size` bytes.
pub fn header_windows(header: &Header, size: u64) -> Vec<u64> {
    match (header.version < 4, header.hidden_volume_size != 0) {
        (true, false) => vec![0],
        (true, true) => vec![size - LEGACY_HIDDEN_FROM_END],
        (false, false) => vec![0, size - BACKUP_NORMAL_FROM_END],
        (false, true) => vec![HIDDEN_HEADER_OFFSET, size - BACKUP_HIDDEN_FROM_END],
    }
}

/// Asserts that `after` differs from `before` only inside the 512-byte windows at `windows`.
pub fn assert_only_windows_changed(before: &[u8], after: &[u8], windows: &[u64], what: &str) {
    assert_eq!(before.len(), after.len(), "{what}: the host changed size");
    let inside = |i: usize| {
        windows
            .iter()
            .any(|&w| (i as u64) >= w && (i as u64) < w + HEADER_SIZE as u64)
    };
    if let Some(i) = (0..before.len()).find(|&i| before[i] != after[i] && !inside(i)) {
        panic!("{what}: byte {i} changed outside the header places {windows:?}");
    }
}

/// The layouts a crafted volume can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Header at 0 and its embedded backup 128 KiB before the end.
    Normal,
    /// A hidden volume's header at 64 KiB and its backup 64 KiB before the end.
    Hidden,
    /// TrueCrypt before 6.0: one header at 0.
    LegacyNormal,
    /// TrueCrypt before 6.0: a hidden header 1,536 bytes before the end.
    LegacyHidden,
}

/// A crafted volume: its bytes, the header sealed in it, and the plaintext of its data area.
#[derive(Debug)]
pub struct Crafted {
    /// The host's bytes.
    pub bytes: Vec<u8>,
    /// The header (master keys and fields).
    pub header: Header,
    /// Its scheme.
    pub scheme: Scheme,
    /// Where its data lie (absolute start, length) when they lie inside the host.
    pub area: Option<(u64, u64)>,
}

/// Builds a crafted volume from input: layout, scheme, size, master keys, data pattern, and
/// small changes of the header's fields (so that the fuzzer reaches odd layouts too).
pub fn craft(inp: &mut Input<'_>) -> Crafted {
    let layout = match inp.byte() % 4 {
        0 => Layout::Normal,
        1 => Layout::Hidden,
        2 => Layout::LegacyNormal,
        _ => Layout::LegacyHidden,
    };
    let legacy = matches!(layout, Layout::LegacyNormal | Layout::LegacyHidden);
    let sb = inp.byte();
    let scheme = if legacy {
        scheme_of(sb)
    } else {
        scheme_of(sb % 2)
    };
    let size = MIN_VOLUME_SIZE + 512 * u64::from(inp.byte() % 64);
    let tweak = inp.byte();
    let mut key_area = [0u8; KEY_AREA_LEN];
    let keys = inp.take(16);
    for (i, k) in key_area
        .iter_mut()
        .enumerate()
        .take(scheme.key_material_len())
    {
        // A keyed pattern that never has equal XTS halves.
        *k = keys.get(i % 16).copied().unwrap_or(0) ^ (i as u8).wrapping_mul(37) ^ 0x11;
    }
    let pattern = inp.byte();
    let fs_magic = inp.byte() & 1 == 0;
    let hidden_len = 512 * (64 + u64::from(inp.byte() % 64));
    let (version, start, len, hidden) = match layout {
        Layout::Normal => (5, DATA_AREA_OFFSET, size - 2 * DATA_AREA_OFFSET, 0),
        Layout::Hidden => {
            let start = size - BACKUP_NORMAL_FROM_END - hidden_len;
            (5, start, hidden_len, hidden_len)
        }
        Layout::LegacyNormal => (if scheme.is_legacy() { 2 } else { 3 }, 0, 0, 0),
        Layout::LegacyHidden => (if scheme.is_legacy() { 2 } else { 3 }, 0, 0, hidden_len),
    };
    let mut header = Header {
        family: Family::TrueCrypt,
        version,
        min_program_version: if version >= 4 { 0x0700 } else { 0x0410 },
        legacy_times: [0; 16],
        hidden_volume_size: hidden,
        volume_size: if hidden != 0 { hidden } else { len },
        encrypted_area_start: start,
        encrypted_area_length: len,
        flags: 0,
        sector_size: 512,
        key_area: SecretBytes::from_slice(&key_area),
    };
    // Tweaks: move the area, change its length, set flags, change the version.
    match tweak % 16 {
        1 => header.encrypted_area_start = header.encrypted_area_start.wrapping_sub(512),
        2 => header.encrypted_area_start = header.encrypted_area_start.wrapping_add(512),
        3 => header.encrypted_area_length = header.encrypted_area_length.wrapping_add(512),
        4 => header.encrypted_area_length = header.encrypted_area_length.wrapping_sub(512),
        5 => header.encrypted_area_start = 0,
        6 => header.flags = u32::from(inp.byte() % 4),
        7 => header.hidden_volume_size = 0,
        8 => header.hidden_volume_size = u64::from(inp.u16()) * 512,
        9 => header.version = u16::from(inp.byte() % 6),
        10 => header.encrypted_area_length = 0,
        11 => header.sector_size = 4096,
        _ => {}
    }
    let plain = plain_of(&header);
    let sealed = seal_plain(&plain, scheme);
    let mut bytes = vec![0u8; size as usize];
    // Everything not written below is random-looking filler.
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i as u32).wrapping_mul(2_654_435_761).to_be_bytes()[0] ^ pattern;
    }
    let places: Vec<u64> = match layout {
        Layout::Normal => vec![0, size - BACKUP_NORMAL_FROM_END],
        Layout::Hidden => vec![HIDDEN_HEADER_OFFSET, size - BACKUP_HIDDEN_FROM_END],
        Layout::LegacyNormal => vec![0],
        Layout::LegacyHidden => vec![size - LEGACY_HIDDEN_FROM_END],
    };
    // The data area as the layout places it (not as tweaked fields may claim).
    let area = match layout {
        Layout::Normal | Layout::Hidden => Some((start, len)),
        Layout::LegacyNormal => Some((512, size - 512)),
        Layout::LegacyHidden => Some((size - LEGACY_HIDDEN_FROM_END - hidden_len, hidden_len)),
    };
    if let Some((start, len)) = area {
        let mut data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(pattern | 1) ^ (i >> 9) as u8)
            .collect();
        if fs_magic && data.len() > 0x43A {
            data[0x438] = 0x53;
            data[0x439] = 0xEF;
        }
        let cipher = SectorCipher::new(scheme, header.key_area.expose()).expect("key area");
        let first_unit = match scheme {
            Scheme::Xts(_) => start / 512,
            Scheme::Legacy(_, LegacyMode::Lrw) => 0,
            Scheme::Legacy(_, LegacyMode::Cbc) => 1,
        };
        cipher.encrypt(&mut data, first_unit);
        bytes[start as usize..(start + len) as usize].copy_from_slice(&data);
    }
    for p in places {
        bytes[p as usize..p as usize + HEADER_SIZE].copy_from_slice(&sealed);
    }
    Crafted {
        bytes,
        header,
        scheme,
        area,
    }
}
