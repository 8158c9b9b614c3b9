//! The decrypted data area of an unlocked volume as something to read and write at byte
//! offsets, from many threads at once, without allocating per request.
//!
//! Each I/O thread owns one buffer (huge-page backed and locked, see `sys::IoBuffer`; grown
//! only when a request is larger than any before it), reads ciphertext into it with direct I/O
//! when the host allows (through the thread's `sys::HostRing`), and decrypts in place. Writes
//! copy the caller's plaintext into that buffer and encrypt there. Hidden-volume protection
//! refuses, and from then on every write is refused, as soon as a write would touch the
//! protected host range.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::crypto::chain::ChainId;
use crate::crypto::scheme::{Scheme, SectorCipher};
use crate::crypto::xts::DATA_UNIT;
use crate::volume::Volume;

use super::{MountError, sys};

const UNIT: u64 = DATA_UNIT as u64;
/// The smallest I/O buffer a thread makes: one request of the largest size FUSE sends.
const MIN_BUFFER: usize = 1 << 20;
/// Requests are encrypted or decrypted in slices of this size on the calling thread: the
/// service already has several I/O threads, and the engine's own per-request threads cost more
/// than they save. The exception is decryption with the slower chains (everything but AES),
/// which keeps the engine's split across cores: reads come paced by read-ahead, and an
/// AES-Twofish-Serpent volume read at 470-548 MB/s with the split against 434-452 MB/s without,
/// while its writes, which arrive in floods at write-back, ran at 622-647 MB/s on the calling
/// thread against 430-490 MB/s with the split (Serpent writes: 1.5-1.7 against 1.3-1.4 GB/s).
const CRYPT_SLICE: usize = 128 * 1024;

/// Where the data area lives and how it is keyed; everything the service needs, nothing more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaSpec {
    /// The host (file or block device) holding the volume.
    pub host: PathBuf,
    /// Host byte offset of the data area.
    pub start: u64,
    /// Length of the data area in bytes.
    pub len: u64,
    /// The cipher chain and mode.
    pub scheme: Scheme,
    /// The cipher's number for the area's first 512-byte unit
    /// ([`crate::header::layout::DataArea::first_unit`]).
    pub first_unit: u64,
    /// Open the host read-only and refuse every write.
    pub read_only: bool,
    /// Host byte range that writes must not touch (the hidden volume), if protection is on.
    pub protect: Option<Range<u64>>,
    /// Use direct I/O to the host where the host accepts it.
    pub direct_io: bool,
}

impl AreaSpec {
    /// The spec of `volume`'s data area.
    pub fn of(volume: &Volume, read_only: bool) -> AreaSpec {
        let area = volume.data_area();
        AreaSpec {
            host: volume.host().path().to_path_buf(),
            start: area.start,
            len: area.len,
            scheme: volume.unlocked().scheme,
            first_unit: area.first_unit,
            read_only,
            protect: None,
            direct_io: true,
        }
    }
}

/// A volume's data area open with its keys (the header layout's [`crate::header::layout::DataArea`] says where it lies).
pub struct KeyedArea {
    spec: AreaSpec,
    buffered: File,
    direct: Option<File>,
    /// Set once the host refused an unaligned direct request; the buffered file is used after.
    direct_failed: AtomicBool,
    cipher: SectorCipher,
    tripped: AtomicBool,
    /// Called once, by the write that trips protection (see [`KeyedArea::on_trip`]).
    on_trip: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl std::fmt::Debug for KeyedArea {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedArea")
            .field("spec", &self.spec)
            .field("direct", &self.direct.is_some())
            .finish_non_exhaustive()
    }
}

thread_local! {
    static BUF: RefCell<AlignedBuf> = const { RefCell::new(AlignedBuf(None)) };
}

/// The calling thread's I/O buffer ([`sys::IoBuffer`]: huge-page backed, locked, wiped), made
/// on first use and replaced only when a request is larger than any before it.
struct AlignedBuf(Option<sys::IoBuffer>);

impl AlignedBuf {
    /// A slice of exactly `len` bytes, aligned to a huge page.
    fn get(&mut self, len: usize) -> io::Result<&mut [u8]> {
        let buf = match self.0.take() {
            Some(b) if b.len() >= len => b,
            // The old buffer (if any) is wiped and unmapped before the larger one is made.
            old => {
                drop(old);
                sys::IoBuffer::new(len.max(MIN_BUFFER))?
            }
        };
        Ok(&mut self.0.insert(buf).as_mut_slice()[..len])
    }
}

thread_local! {
    /// The calling thread's io_uring for direct host I/O: `None` until first used,
    /// `Some(None)` where the kernel offers none (then `pread`/`pwrite` are used).
    static RING: RefCell<Option<Option<sys::HostRing>>> = const { RefCell::new(None) };
}

/// Runs `f` with the calling thread's ring (made on first use), or with `None` without one.
fn with_ring<R>(f: impl FnOnce(Option<&mut sys::HostRing>) -> R) -> R {
    RING.with_borrow_mut(|slot| {
        let ring = slot.get_or_insert_with(|| sys::HostRing::new().ok());
        let r = f(ring.as_mut());
        if ring.as_ref().is_some_and(|r| !r.usable()) {
            *ring = None;
        }
        r
    })
}

/// Fills `buf` from `file` (opened with `O_DIRECT`) at `at`.
fn direct_read(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    with_ring(|ring| {
        let Some(ring) = ring else {
            return file.read_exact_at(buf, at);
        };
        let mut done = 0;
        while done < buf.len() {
            match ring.read_at(file, &mut buf[done..], at + done as u64) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

/// Writes all of `buf` to `file` (opened with `O_DIRECT`) at `at`.
fn direct_write(file: &File, buf: &[u8], at: u64) -> io::Result<()> {
    with_ring(|ring| {
        let Some(ring) = ring else {
            return file.write_all_at(buf, at);
        };
        let mut done = 0;
        while done < buf.len() {
            match ring.write_at(file, &buf[done..], at + done as u64) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    })
}

impl KeyedArea {
    /// Opens the host named in `spec` and keys the chain with `key_material` (the header's
    /// key area: primary keys, then tweak keys).
    ///
    /// # Errors
    /// The host cannot be opened, or the key material is too short for the chain.
    pub fn open(spec: AreaSpec, key_material: &[u8]) -> Result<KeyedArea, MountError> {
        let cipher = SectorCipher::new(spec.scheme, key_material).map_err(|need| {
            MountError::Protocol(format!("key material shorter than {need} bytes"))
        })?;
        let open = |direct: bool| {
            let mut o = OpenOptions::new();
            o.read(true).write(!spec.read_only);
            if direct {
                o.custom_flags(libc::O_DIRECT);
            }
            o.open(&spec.host)
        };
        let buffered = open(false).map_err(|e| MountError::io(&spec.host, "cannot open", e))?;
        let direct = if spec.direct_io {
            open(true).ok()
        } else {
            None
        };
        Ok(KeyedArea {
            spec,
            buffered,
            direct,
            direct_failed: AtomicBool::new(false),
            cipher,
            tripped: AtomicBool::new(false),
            on_trip: OnceLock::new(),
        })
    }

    /// Opens `volume`'s data area through a file of its own (so that direct I/O and writes do
    /// not depend on how the volume was opened).
    ///
    /// # Errors
    /// As [`KeyedArea::open`].
    pub fn of_volume(volume: &Volume, read_only: bool) -> Result<KeyedArea, MountError> {
        KeyedArea::open(
            AreaSpec::of(volume, read_only),
            volume.unlocked().header.key_area.expose(),
        )
    }

    /// What this area is.
    pub fn spec(&self) -> &AreaSpec {
        &self.spec
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        self.spec.len
    }

    /// Whether the area is empty (never for a real volume).
    pub fn is_empty(&self) -> bool {
        self.spec.len == 0
    }

    /// Whether a write was refused by hidden-volume protection (the area is read-only since).
    pub fn protection_tripped(&self) -> bool {
        self.tripped.load(Ordering::Relaxed)
    }

    /// Has `f` called, once, as soon as a write trips hidden-volume protection (on the thread
    /// of that write, which waits for it: `f` should only pass the news on). Whoever mounted
    /// the area must then stop the programs above it from writing into caches that can no
    /// longer be written back. Only the first `f` given is kept.
    pub fn on_trip(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.on_trip.set(Box::new(f));
    }

    /// Whether writes are refused (read-only, or protection tripped).
    pub fn is_read_only(&self) -> bool {
        self.spec.read_only || self.protection_tripped()
    }

    fn host_read(&self, buf: &mut [u8], at: u64) -> io::Result<()> {
        if let Some(d) = &self.direct
            && !self.direct_failed.load(Ordering::Relaxed)
        {
            match direct_read(d, buf, at) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct_failed.store(true, Ordering::Relaxed);
                }
                r => return r,
            }
        }
        self.buffered.read_exact_at(buf, at)
    }

    fn host_write(&self, buf: &[u8], at: u64) -> io::Result<()> {
        if let Some(d) = &self.direct
            && !self.direct_failed.load(Ordering::Relaxed)
        {
            match direct_write(d, buf, at) {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    self.direct_failed.store(true, Ordering::Relaxed);
                }
                r => return r,
            }
        }
        self.buffered.write_all_at(buf, at)
    }

    /// The cipher's number for the unit at host offset `host` (inside the area).
    fn unit_at(&self, host: u64) -> u64 {
        self.spec.first_unit + (host - self.spec.start) / UNIT
    }

    /// Encrypts or decrypts `buf`, which starts at host offset `host`, slice by slice.
    fn crypt(&self, buf: &mut [u8], host: u64, encrypt: bool) {
        let mut unit = self.unit_at(host);
        if !encrypt && self.spec.scheme != Scheme::Xts(ChainId::Aes) {
            self.cipher.decrypt(buf, unit);
            return;
        }
        for slice in buf.chunks_mut(CRYPT_SLICE) {
            if encrypt {
                self.cipher.encrypt(slice, unit);
            } else {
                self.cipher.decrypt(slice, unit);
            }
            unit += (slice.len() / DATA_UNIT) as u64;
        }
    }

    /// The aligned unit range covering `offset..offset+len`, clamped to the area.
    fn cover(&self, offset: u64, len: usize) -> Option<(u64, u64)> {
        if offset >= self.spec.len {
            return None;
        }
        let end = offset.saturating_add(len as u64).min(self.spec.len);
        let a = offset - offset % UNIT;
        let b = end.div_ceil(UNIT) * UNIT;
        Some((a, b.min(self.spec.len)))
    }

    /// Reads up to `len` bytes at `offset` (fewer at the end of the area) and hands the
    /// plaintext to `f` without copying it.
    ///
    /// # Errors
    /// Host I/O errors.
    pub fn read_with<R>(
        &self,
        offset: u64,
        len: usize,
        f: impl FnOnce(&[u8]) -> R,
    ) -> io::Result<R> {
        let Some((a, b)) = self.cover(offset, len) else {
            return Ok(f(&[]));
        };
        let n = usize::try_from(b - a).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        BUF.with_borrow_mut(|buf| {
            let buf = buf.get(n)?;
            let host = self.spec.start + a;
            self.host_read(buf, host)?;
            self.crypt(buf, host, false);
            let skip = (offset - a) as usize;
            let want = len.min((self.spec.len - offset) as usize);
            Ok(f(&buf[skip..skip + want]))
        })
    }

    /// Reads exactly `out.len()` bytes at `offset` into `out`.
    ///
    /// # Errors
    /// Host I/O errors; reading past the end of the area is `UnexpectedEof`.
    pub fn read_into(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let got = self.read_with(offset, out.len(), |p| {
            out[..p.len()].copy_from_slice(p);
            p.len()
        })?;
        if got != out.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    /// Encrypts and writes `data` at `offset`. Unaligned edges are read, merged and rewritten.
    ///
    /// # Errors
    /// `EROFS` when read-only or after protection tripped, `EPERM` for the write that trips it,
    /// `ENOSPC` past the end of the area, or host I/O errors.
    pub fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if self.is_read_only() {
            return Err(io::Error::from_raw_os_error(libc::EROFS));
        }
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|&e| e <= self.spec.len)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOSPC))?;
        let a = offset - offset % UNIT;
        let b = end.div_ceil(UNIT) * UNIT;
        if let Some(p) = &self.spec.protect {
            let (ha, hb) = (self.spec.start + a, self.spec.start + b);
            if ha < p.end && p.start < hb {
                if !self.tripped.swap(true, Ordering::SeqCst)
                    && let Some(f) = self.on_trip.get()
                {
                    f();
                }
                return Err(io::Error::from_raw_os_error(libc::EPERM));
            }
        }
        let n = usize::try_from(b - a).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        BUF.with_borrow_mut(|buf| {
            let buf = buf.get(n)?;
            let host = self.spec.start + a;
            let head = (offset - a) as usize;
            let tail_start = head + data.len();
            if head != 0 {
                self.host_read(&mut buf[..DATA_UNIT], host)?;
                self.cipher
                    .decrypt(&mut buf[..DATA_UNIT], self.unit_at(host));
            }
            if tail_start != n && (head == 0 || n > DATA_UNIT) {
                let last = n - DATA_UNIT;
                let lh = host + last as u64;
                self.host_read(&mut buf[last..], lh)?;
                self.cipher.decrypt(&mut buf[last..], self.unit_at(lh));
            }
            buf[head..tail_start].copy_from_slice(data);
            self.crypt(buf, host, true);
            self.host_write(buf, host)
        })
    }

    /// Flushes written data to the host's storage.
    ///
    /// # Errors
    /// The host's `fdatasync` failed.
    pub fn sync(&self) -> io::Result<()> {
        if self.spec.read_only {
            return Ok(());
        }
        self.buffered.sync_data()
    }

    /// The host path.
    pub fn host_path(&self) -> &Path {
        &self.spec.host
    }
}
