//! The few system calls the mount layer needs that have no safe wrapper: loop-device ioctls
//! (linux/loop.h), `umount2` and `setsid`. Every block states why it is sound; nothing else in
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

/// `umount2(path, flags)`.
pub fn umount2(path: &Path, flags: libc::c_int) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    check(unsafe { libc::umount2(c.as_ptr(), flags) }).map(drop)
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
