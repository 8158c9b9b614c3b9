//! The few system calls the mount layer needs that have no safe wrapper: loop-device ioctls
//! (linux/loop.h), `BLKROSET`, `FS_IOC_SHUTDOWN`, `umount2`, `setsid`, the memory mapping
//! behind [`IoBuffer`] and the io_uring submissions of [`HostRing`]. Every block states why it is sound; nothing else in
//! the crate's mount layer uses `unsafe`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// ioctl numbers and flags from linux/loop.h (stable kernel ABI).
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_SET_DIRECT_IO: libc::c_ulong = 0x4C08;
const LOOP_SET_BLOCK_SIZE: libc::c_ulong = 0x4C09;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
// BLKROSET, _IO(0x12, 93), from linux/fs.h.
const BLKROSET: libc::c_ulong = 0x125D;
// FS_IOC_SHUTDOWN, _IOR('X', 125, __u32), and its "drop the log" flag, from linux/fs.h.
const FS_IOC_SHUTDOWN: libc::c_ulong = 0x8004_587D;
const FS_SHUTDOWN_FLAGS_NOLOGFLUSH: u32 = 2;

/// The device refuses writes.
pub const LO_FLAGS_READ_ONLY: u32 = 1;
/// The device detaches itself when its last opener closes it.
pub const LO_FLAGS_AUTOCLEAR: u32 = 4;
/// The device reads and writes its backing file with direct I/O.
pub const LO_FLAGS_DIRECT_IO: u32 = 16;

const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64` of linux/loop.h.
#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config` of linux/loop.h.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

const _: () = assert!(std::mem::size_of::<LoopInfo64>() == 232);
const _: () = assert!(std::mem::size_of::<LoopConfig>() == 304);

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn info(flags: u32, name: &[u8]) -> LoopInfo64 {
    let mut info = LoopInfo64 {
        lo_device: 0,
        lo_inode: 0,
        lo_rdevice: 0,
        lo_offset: 0,
        lo_sizelimit: 0,
        lo_number: 0,
        lo_encrypt_type: 0,
        lo_encrypt_key_size: 0,
        lo_flags: flags,
        lo_file_name: [0; LO_NAME_SIZE],
        lo_crypt_name: [0; LO_NAME_SIZE],
        lo_encrypt_key: [0; LO_KEY_SIZE],
        lo_init: [0; 2],
    };
    // Keep the terminating NUL: the kernel shows the name as a C string.
    let n = name.len().min(LO_NAME_SIZE - 1);
    info.lo_file_name[..n].copy_from_slice(&name[..n]);
    info
}

/// `LOOP_CTL_GET_FREE` on /dev/loop-control: the number of a free loop device (created if
/// needed).
pub fn loop_ctl_get_free(control: &File) -> io::Result<u32> {
    // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1; the fd is
    // open for the duration of the call.
    let n = check(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) })?;
    u32::try_from(n).map_err(|_| io::Error::other("negative loop device number"))
}

/// `LOOP_CONFIGURE`: binds `backing` to the loop device in one step with `flags` and
/// `block_size` (Linux 5.8 and later).
pub fn loop_configure(
    dev: &File,
    backing: &File,
    flags: u32,
    block_size: u32,
    name: &[u8],
) -> io::Result<()> {
    let fd = u32::try_from(backing.as_raw_fd()).map_err(|_| io::Error::other("bad fd"))?;
    let cfg = LoopConfig {
        fd,
        block_size,
        info: info(flags, name),
        reserved: [0; 8],
    };
    // SAFETY: the kernel reads a `struct loop_config` (304 bytes, layout checked above) from
    // the pointer during the call only; `cfg` outlives it and both fds are open.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, std::ptr::from_ref(&cfg)) })
        .map(drop)
}

/// The pre-5.8 way: `LOOP_SET_FD`, then `LOOP_SET_STATUS64` with `flags` (the direct-I/O and
/// block-size settings follow with their own ioctls).
pub fn loop_set_fd_status(dev: &File, backing: &File, flags: u32, name: &[u8]) -> io::Result<()> {
    // SAFETY: LOOP_SET_FD takes a file descriptor by value; both fds are open.
    check(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_FD,
            libc::c_ulong::try_from(backing.as_raw_fd()).unwrap_or(libc::c_ulong::MAX),
        )
    })?;
    let i = info(flags & !LO_FLAGS_DIRECT_IO, name);
    // SAFETY: the kernel reads a `struct loop_info64` (232 bytes, layout checked above) from
    // the pointer during the call only.
    let r =
        check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_STATUS64, std::ptr::from_ref(&i)) });
    if let Err(e) = r {
        let _ = loop_clr_fd(dev);
        return Err(e);
    }
    Ok(())
}

/// `LOOP_SET_DIRECT_IO`.
pub fn loop_set_direct_io(dev: &File, on: bool) -> io::Result<()> {
    // SAFETY: the argument is passed by value; the fd is open.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_DIRECT_IO, libc::c_ulong::from(on)) })
        .map(drop)
}

/// `LOOP_SET_BLOCK_SIZE`.
pub fn loop_set_block_size(dev: &File, size: u32) -> io::Result<()> {
    // SAFETY: the argument is passed by value; the fd is open.
    check(unsafe {
        libc::ioctl(
            dev.as_raw_fd(),
            LOOP_SET_BLOCK_SIZE,
            libc::c_ulong::from(size),
        )
    })
    .map(drop)
}

/// `LOOP_CLR_FD`: detaches the backing file (deferred by the kernel until the last opener
/// closes the device).
pub fn loop_clr_fd(dev: &File) -> io::Result<()> {
    // SAFETY: LOOP_CLR_FD takes no argument; the fd is open.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD, 0 as libc::c_ulong) }).map(drop)
}

/// `BLKROSET`: makes the block device `dev` refuse writes (`true`) or take them again. The
/// setting outlives the opener and, for a loop device, its detaching.
pub fn blk_set_read_only(dev: &File, read_only: bool) -> io::Result<()> {
    let v = libc::c_int::from(read_only);
    // SAFETY: BLKROSET reads one int through the pointer, which points at `v` for the call.
    check(unsafe { libc::ioctl(dev.as_raw_fd(), BLKROSET, std::ptr::from_ref(&v)) }).map(drop)
}

/// `FS_IOC_SHUTDOWN` without flushing the log, on `file` (any file or directory of the
/// filesystem): every later operation on the filesystem fails (ext4, XFS and a few others;
/// `ENOTTY` elsewhere).
pub fn fs_shutdown(file: &File) -> io::Result<()> {
    let flags = FS_SHUTDOWN_FLAGS_NOLOGFLUSH;
    // SAFETY: FS_IOC_SHUTDOWN reads one u32 through the pointer, which points at `flags`.
    check(unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FS_IOC_SHUTDOWN,
            std::ptr::from_ref(&flags),
        )
    })
    .map(drop)
}

/// `umount2(path, flags)`.
pub fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    check(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
}

/// The effective user id of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective group id of this process.
pub fn egid() -> u32 {
    // SAFETY: getegid takes no arguments and cannot fail.
    unsafe { libc::getegid() }
}

/// Whether this process may read and write `path` (`access(2)` with the real ids, which are
/// the effective ones for tcvault: it is never installed setuid).
pub fn can_read_write(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    unsafe { libc::access(c.as_ptr(), libc::R_OK | libc::W_OK) == 0 }
}

/// `setsid()`: leave the caller's session and controlling terminal.
pub fn setsid() -> io::Result<()> {
    // SAFETY: setsid has no memory arguments; failure is reported through errno.
    check(unsafe { libc::setsid() }).map(drop)
}

/// Whether process `pid` exists (`kill(pid, 0)`; EPERM still means it exists).
pub fn process_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence and permission; no memory is involved.
    let r = unsafe { libc::kill(pid, 0) };
    let exists = r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // A killed service whose new parent does not reap it stays a zombie: dead all the same.
    exists && !is_zombie(pid)
}

fn is_zombie(pid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        // The state follows the command name, which is in parentheses and may hold spaces.
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next())
            .is_some_and(|st| st == "Z" || st == "X")
    })
}

/// Sends `signal` to process `pid`.
pub fn kill(pid: u32, signal: libc::c_int) -> io::Result<()> {
    let pid =
        libc::pid_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    if pid <= 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill has no memory arguments; pid is a single positive process id.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// Size and alignment of a transparent huge page on x86-64 (and the unit [`IoBuffer`]s grow by).
pub const HUGE_PAGE: usize = 2 << 20;

/// Memory for the data path's I/O buffers: an anonymous mapping aligned to 2 MiB and offered to
/// the kernel for transparent huge pages, locked in memory where allowed (it holds plaintext),
/// left out of core dumps and of forked children, and wiped before it is unmapped.
///
/// The huge pages matter for direct I/O: a 1 MiB read into 256 separate 4 KiB pages needs 256
/// segments, more than a virtio disk takes in one request (254 here), so the kernel splits it
/// in two, while one huge page is a single segment.
pub struct IoBuffer {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

impl IoBuffer {
    /// A zero-filled buffer of at least `len` bytes (rounded up to a whole huge page).
    ///
    /// # Errors
    /// The kernel refused the mapping (out of memory or address space).
    pub fn new(len: usize) -> io::Result<IoBuffer> {
        let len = len
            .max(1)
            .checked_next_multiple_of(HUGE_PAGE)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let span = len
            .checked_add(HUGE_PAGE)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: a new private anonymous mapping at an address of the kernel's choosing; no
        // existing memory is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let head = base.cast::<u8>().align_offset(HUGE_PAGE);
        let tail = span - head - len;
        // SAFETY: `base..base + span` is the mapping made above and nothing else refers to it;
        // the unaligned head and the tail beyond `len` are given back, leaving
        // `base + head .. base + head + len`, which stays mapped until `drop`.
        let start = unsafe {
            if head > 0 {
                libc::munmap(base, head);
            }
            let start = base.cast::<u8>().add(head);
            if tail > 0 {
                libc::munmap(start.add(len).cast(), tail);
            }
            // Advice and locking are best effort: without them the buffer still works, with
            // 4 KiB pages or swappable memory.
            libc::madvise(start.cast(), len, libc::MADV_HUGEPAGE);
            libc::madvise(start.cast(), len, libc::MADV_DONTDUMP);
            libc::madvise(start.cast(), len, libc::MADV_DONTFORK);
            libc::mlock(start.cast(), len);
            start
        };
        let ptr = std::ptr::NonNull::new(start)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        Ok(IoBuffer { ptr, len })
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The whole buffer.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr..ptr + len` is mapped read-write for the life of `self`, and the
        // `&mut self` borrow makes this the only reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for IoBuffer {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self.as_mut_slice());
        // SAFETY: the range is the mapping made in `new`, unmapped exactly once, here; no
        // reference into it outlives `self`.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One thread's io_uring for host I/O: one read or write at a time, submitted and waited for.
///
/// This is synchronous for the caller, but not for the host filesystem: a direct write that
/// allocates blocks (a sparse volume file, or a first write after `fallocate`) makes ext4 take
/// the file's inode lock exclusively, and a plain `pwrite` holds it until the disk has finished,
/// so the service's threads would write one at a time. Submitted through io_uring the write is
/// asynchronous for the filesystem, which lets go of the lock once the I/O is issued.
pub struct HostRing {
    /// `None` once the ring failed in a way that left it unusable.
    ring: Option<io_uring::IoUring>,
}

impl HostRing {
    /// A new ring, or the reason there is none (an old kernel, io_uring disabled by sysctl or a
    /// seccomp policy): callers then use `pread`/`pwrite`.
    ///
    /// # Errors
    /// The kernel refused to set up the ring.
    pub fn new() -> io::Result<HostRing> {
        let ring = io_uring::IoUring::builder().dontfork().build(4)?;
        Ok(HostRing { ring: Some(ring) })
    }

    /// Whether the ring still works (callers drop it and use `pread`/`pwrite` when not).
    pub fn usable(&self) -> bool {
        self.ring.is_some()
    }

    /// Reads into `buf` at `offset`; the number of bytes read.
    ///
    /// # Errors
    /// The read failed (for example `EINVAL` for direct I/O the file refuses).
    pub fn read_at(&mut self, file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let len = rw_len(buf.len());
        let sqe = io_uring::opcode::Read::new(
            io_uring::types::Fd(file.as_raw_fd()),
            buf.as_mut_ptr(),
            len,
        )
        .offset(offset)
        .build();
        // SAFETY: `buf` is borrowed mutably for the whole call and `run` returns only after the
        // kernel has completed (or never accepted) the request, so the kernel writes only into
        // memory we lend it, while we lend it.
        unsafe { self.run(&sqe) }
    }

    /// Writes `buf` at `offset`; the number of bytes written.
    ///
    /// # Errors
    /// The write failed.
    pub fn write_at(&mut self, file: &File, buf: &[u8], offset: u64) -> io::Result<usize> {
        let len = rw_len(buf.len());
        let sqe =
            io_uring::opcode::Write::new(io_uring::types::Fd(file.as_raw_fd()), buf.as_ptr(), len)
                .offset(offset)
                .build();
        // SAFETY: as in `read_at`; the kernel only reads `buf`, which is borrowed for the call.
        unsafe { self.run(&sqe) }
    }

    /// Submits `sqe` and waits for its completion.
    ///
    /// # Safety
    /// The buffer `sqe` names must stay valid until this returns; it returns only once the
    /// kernel is done with the request or never took it.
    unsafe fn run(&mut self, sqe: &io_uring::squeue::Entry) -> io::Result<usize> {
        let ring = self
            .ring
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        // SAFETY: forwarded from the caller; the queue is empty (one request at a time).
        unsafe { ring.submission().push(sqe) }
            .map_err(|_| io::Error::from(io::ErrorKind::WouldBlock))?;
        loop {
            match ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if retry(&e) => {}
                Err(e) => {
                    if !ring.submission().is_empty() {
                        // The kernel never took the request, so nothing refers to the buffer;
                        // dropping the ring discards the queued entry.
                        self.ring = None;
                        return Err(e);
                    }
                    // The request is in flight and waiting for it failed: returning would let
                    // the kernel use memory the caller takes back. A valid ring never gets
                    // here; if one does, the service stops (the mount then reports I/O errors
                    // and `tcvault unmount` cleans up).
                    std::process::abort();
                }
            }
            if let Some(cqe) = ring.completion().next() {
                let r = cqe.result();
                return if r < 0 {
                    Err(io::Error::from_raw_os_error(-r))
                } else {
                    Ok(r.unsigned_abs() as usize)
                };
            }
        }
    }
}

/// Errors of `io_uring_enter` after which waiting again is right.
fn retry(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
    )
}

/// The length of one request: at most what a single read or write transfers.
fn rw_len(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX).min(0x7fff_f000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};

    #[test]
    fn io_buffer_is_zeroed_aligned_whole_huge_pages() {
        for want in [1, 4096, HUGE_PAGE, HUGE_PAGE + 1, 3 << 20] {
            let mut b = IoBuffer::new(want).expect("map an I/O buffer");
            assert!(b.len() >= want);
            assert_eq!(b.len() % HUGE_PAGE, 0, "{want}: whole huge pages");
            let s = b.as_mut_slice();
            assert_eq!(s.as_ptr() as usize % HUGE_PAGE, 0, "{want}: aligned");
            assert!(s.iter().all(|&x| x == 0), "{want}: zero-filled");
            s.fill(0xA5);
            assert!(s.iter().all(|&x| x == 0xA5), "{want}: writable");
        }
    }

    /// A ring round trip on `file`: write a pattern at an offset, check it through `check` (a
    /// buffered descriptor of the same file), read it back, and read past the end (a short
    /// read, then 0).
    fn round_trip(file: &File, check: &File, ring: &mut HostRing) {
        let mut buf = IoBuffer::new(1 << 20).expect("buffer");
        let data = &mut buf.as_mut_slice()[..1 << 20];
        for (i, b) in data.iter_mut().enumerate() {
            *b = (i * 7 + i / 4096) as u8;
        }
        let expect = data.to_vec();
        assert_eq!(ring.write_at(file, data, 8192).expect("write"), 1 << 20);
        let mut plain = vec![0u8; 1 << 20];
        check
            .read_exact_at(&mut plain, 8192)
            .expect("read back with pread");
        assert!(plain == expect, "pread sees what the ring wrote");
        data.fill(0);
        assert_eq!(ring.read_at(file, data, 8192).expect("read"), 1 << 20);
        assert!(data[..] == expect[..], "the ring reads what it wrote");
        let end = 8192 + (1 << 20);
        assert_eq!(
            ring.read_at(file, &mut data[..8192], end - 4096)
                .expect("read at the end"),
            4096
        );
        assert_eq!(ring.read_at(file, &mut data[..4096], end).expect("EOF"), 0);
    }

    /// A ring, or `None` (test skipped) where the kernel offers none, which is never so in CI.
    fn ring_or_skip() -> Option<HostRing> {
        match HostRing::new() {
            Ok(r) => Some(r),
            // The fallback (pread/pwrite) is what runs then; CI machines have io_uring.
            Err(e) if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: no io_uring here ({e})");
                None
            }
            Err(e) => panic!("io_uring is unavailable on a CI machine: {e}"),
        }
    }

    #[test]
    fn host_ring_reads_and_writes_buffered_and_direct() {
        let Some(mut ring) = ring_or_skip() else {
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("host");
        let buffered = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .expect("create");
        round_trip(&buffered, &buffered, &mut ring);
        let direct = File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&path)
            .expect("open with O_DIRECT");
        let mut probe = IoBuffer::new(4096).expect("buffer");
        match ring.read_at(&direct, &mut probe.as_mut_slice()[..4096], 0) {
            Ok(_) => round_trip(&direct, &buffered, &mut ring),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                eprintln!("direct I/O not supported in {}", dir.path().display());
            }
            Err(e) => panic!("direct read: {e}"),
        }
        assert!(ring.usable());
    }

    #[test]
    fn host_ring_reports_errors_of_the_request() {
        let Some(mut ring) = ring_or_skip() else {
            return;
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ro");
        std::fs::write(&path, [1u8; 4096]).expect("write");
        let read_only = File::open(&path).expect("open");
        let e = ring
            .write_at(&read_only, &[0u8; 512], 0)
            .expect_err("writing a read-only descriptor fails");
        assert_eq!(e.raw_os_error(), Some(libc::EBADF), "{e}");
        assert!(ring.usable(), "a failed request leaves the ring usable");
        let mut b = [0u8; 4096];
        assert_eq!(ring.read_at(&read_only, &mut b, 0).expect("read"), 4096);
        assert_eq!(b, [1u8; 4096]);
    }
}
