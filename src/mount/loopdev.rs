//! Loop devices: attach a file (the FUSE file of the decrypted area) as a block device with
//! direct I/O and auto-clear, detach it, and tell who still uses one.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::MountError;
use super::sys;

/// Logical block size of our loop devices: 512 bytes suits every filesystem a volume can hold
/// (FAT with 512-byte sectors included) and is the XTS data-unit size.
pub const BLOCK_SIZE: u32 = 512;

/// An attached loop device; detached on [`LoopDevice::detach`] (or by the kernel when its last
/// user closes it, since auto-clear is set).
#[derive(Debug)]
pub struct LoopDevice {
    file: File,
    path: PathBuf,
    number: u32,
    direct_io: bool,
    /// The request size limit before [`LoopDevice::limit_request_size`], put back on detach
    /// (the kernel keeps a limit set through sysfs for the device's next user).
    saved_max_sectors_kb: Option<String>,
    /// `strict_limit` and `max_ratio_fine` of the device's write-back before
    /// [`LoopDevice::limit_dirty`], put back on detach (kept by the kernel, as above).
    saved_dirty: Option<(String, String)>,
    /// [`LoopDevice::set_read_only`] was called: undone on detach (kept by the kernel too).
    made_read_only: bool,
}

impl LoopDevice {
    /// Attaches `backing` to a free loop device.
    ///
    /// # Errors
    /// No loop support, no free device, or the kernel refused the backing file.
    pub fn attach(
        backing: &Path,
        read_only: bool,
        direct_io: bool,
        label: &str,
    ) -> Result<LoopDevice, MountError> {
        let control = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .map_err(|e| MountError::io(Path::new("/dev/loop-control"), "cannot open", e))?;
        let back = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .open(backing)
            .map_err(|e| MountError::io(backing, "cannot open", e))?;
        let mut flags = sys::LO_FLAGS_AUTOCLEAR;
        if read_only {
            flags |= sys::LO_FLAGS_READ_ONLY;
        }
        let name = label.as_bytes();
        let mut last = None;
        // Another process may take the free device between GET_FREE and CONFIGURE: retry.
        for _ in 0..16 {
            let n = sys::loop_ctl_get_free(&control).map_err(|e| {
                MountError::io(Path::new("/dev/loop-control"), "no free loop device", e)
            })?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let dev = match open_dev(&path, read_only) {
                Ok(d) => d,
                Err(e) => {
                    last = Some(MountError::io(&path, "cannot open", e));
                    continue;
                }
            };
            let want_dio = if direct_io {
                sys::LO_FLAGS_DIRECT_IO
            } else {
                0
            };
            let r = match sys::loop_configure(&dev, &back, flags | want_dio, BLOCK_SIZE, name) {
                Err(e) if direct_io && e.raw_os_error() == Some(libc::EINVAL) => {
                    sys::loop_configure(&dev, &back, flags, BLOCK_SIZE, name)
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => {
                    // Kernel before 5.8: the four-step way.
                    sys::loop_set_fd_status(&dev, &back, flags, name).map(|()| {
                        let _ = sys::loop_set_block_size(&dev, BLOCK_SIZE);
                        if direct_io {
                            let _ = sys::loop_set_direct_io(&dev, true);
                        }
                    })
                }
                r => r,
            };
            match r {
                Ok(()) => {
                    let dio = read_sys(n, "dio").is_some_and(|s| s == "1");
                    return Ok(LoopDevice {
                        file: dev,
                        path,
                        number: n,
                        direct_io: dio,
                        saved_max_sectors_kb: None,
                        saved_dirty: None,
                        made_read_only: false,
                    });
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    last = Some(MountError::io(&path, "busy", e));
                }
                Err(e) => {
                    return Err(MountError::io(
                        &path,
                        "cannot attach the decrypted file to",
                        e,
                    ));
                }
            }
        }
        Err(last.unwrap_or(MountError::Protocol("no free loop device".into())))
    }

    /// Caps the size of the requests the device sends to its backing file at `bytes` (a
    /// multiple of 4 KiB), best effort. The loop driver's own limit (1.25 MiB here) is not a
    /// multiple of FUSE's largest request (1 MiB), so each of its requests would reach the
    /// service as two, one of them small; every host I/O costs about the same whatever its size,
    /// and reads measured 1.6-2.3 GB/s with the driver's limit against 2.6-3.1 GB/s with 1 MiB.
    pub fn limit_request_size(&mut self, bytes: u32) {
        let path = max_sectors_path(self.number);
        let Ok(old) = std::fs::read_to_string(&path) else {
            return;
        };
        let new = (bytes / 1024).to_string();
        if old.trim() != new && std::fs::write(&path, &new).is_ok() {
            self.saved_max_sectors_kb = Some(old.trim().to_string());
        }
    }

    /// Holds the unwritten data the kernel may cache for this device (the page cache of the
    /// filesystem on it and the device's own) to about `bytes`, best effort: writers then wait
    /// for write-back as they go instead of leaving it for later.
    pub fn limit_dirty(&mut self, bytes: u64) {
        let (strict, ratio) = (
            bdi_path(self.number, "strict_limit"),
            bdi_path(self.number, "max_ratio_fine"),
        );
        let (Ok(old_strict), Ok(old_ratio)) = (
            std::fs::read_to_string(&strict),
            std::fs::read_to_string(&ratio),
        ) else {
            return;
        };
        self.saved_dirty = Some((old_strict.trim().to_string(), old_ratio.trim().to_string()));
        let _ = std::fs::write(&strict, "1");
        let _ = std::fs::write(bdi_path(self.number, "max_bytes"), bytes.to_string());
    }

    /// Makes the device refuse writes (`sys::blk_set_read_only`, the BLKROSET ioctl); undone on detach.
    ///
    /// # Errors
    /// The kernel refused `BLKROSET`.
    pub fn set_read_only(&mut self) -> Result<(), MountError> {
        self.made_read_only = true;
        sys::blk_set_read_only(&self.file, true)
            .map_err(|e| MountError::io(&self.path, "cannot make read-only", e))
    }

    /// `/dev/loopN`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the kernel reads the backing file with direct I/O.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    /// Detaches the device (the kernel finishes once every other user has closed it) and
    /// waits up to 10 s for that.
    ///
    /// # Errors
    /// The kernel refused `LOOP_CLR_FD`.
    pub fn detach(self) -> Result<(), MountError> {
        // Write back what a driver left in the device's page cache first: once LOOP_CLR_FD has
        // put the device into rundown (we are its last opener), the kernel's own write-back
        // at close would fail.
        let _ = self.file.sync_all();
        if self.made_read_only {
            let _ = sys::blk_set_read_only(&self.file, false);
        }
        let r = sys::loop_clr_fd(&self.file);
        let n = self.number;
        drop(self.file);
        match r {
            Ok(()) => {}
            // Already detached (auto-clear won the race).
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
            Err(e) => return Err(MountError::io(&self.path, "cannot detach", e)),
        }
        wait_detached(n, Duration::from_secs(10));
        if let Some(kb) = &self.saved_max_sectors_kb {
            let _ = std::fs::write(max_sectors_path(n), kb);
        }
        if let Some((strict, ratio)) = &self.saved_dirty {
            let _ = std::fs::write(bdi_path(n, "max_ratio_fine"), ratio);
            let _ = std::fs::write(bdi_path(n, "strict_limit"), strict);
        }
        Ok(())
    }
}

/// Puts loop device `n`'s settings back to the kernel's defaults, best effort: the request size
/// limit (writing 0, which kernels since 6.10 take as "no limit of the user's"), the write-back
/// limits and the read-only flag. The cleanup after a dead service, whose [`LoopDevice`] could
/// not put back what it had changed.
pub fn reset_settings(n: u32) {
    let _ = std::fs::write(max_sectors_path(n), "0");
    let _ = std::fs::write(bdi_path(n, "max_ratio"), "100");
    let _ = std::fs::write(bdi_path(n, "strict_limit"), "0");
    if let Ok(f) = open_dev(Path::new(&format!("/dev/loop{n}")), true) {
        let _ = sys::blk_set_read_only(&f, false);
    }
}

/// The sysfs file of loop device `n`'s request size limit.
fn max_sectors_path(n: u32) -> String {
    format!("/sys/block/loop{n}/queue/max_sectors_kb")
}

/// A sysfs file of loop device `n`'s write-back settings.
fn bdi_path(n: u32, what: &str) -> String {
    format!("/sys/block/loop{n}/bdi/{what}")
}

fn open_dev(path: &Path, read_only: bool) -> io::Result<File> {
    OpenOptions::new().read(true).write(!read_only).open(path)
}

fn read_sys(n: u32, what: &str) -> Option<String> {
    std::fs::read_to_string(format!("/sys/block/loop{n}/loop/{what}"))
        .ok()
        .map(|s| s.trim().to_string())
}

/// The number of `/dev/loopN`, if `dev` names one.
pub fn loop_number(dev: &Path) -> Option<u32> {
    dev.to_str()?.strip_prefix("/dev/loop")?.parse().ok()
}

/// The backing file of loop device `n`, if attached.
pub fn backing_file(n: u32) -> Option<PathBuf> {
    read_sys(n, "backing_file").map(PathBuf::from)
}

/// Waits until loop device `n` has no backing file, up to `limit`.
pub fn wait_detached(n: u32, limit: Duration) -> bool {
    let until = Instant::now() + limit;
    loop {
        if backing_file(n).is_none() {
            return true;
        }
        if Instant::now() >= until {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Detaches `/dev/loopN` whatever holds it (used to clean up after a dead service).
///
/// # Errors
/// The device cannot be opened or refused `LOOP_CLR_FD`.
pub fn force_detach(dev: &Path) -> Result<(), MountError> {
    let f = open_dev(dev, true).map_err(|e| MountError::io(dev, "cannot open", e))?;
    match sys::loop_clr_fd(&f) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => Ok(()),
        Err(e) => Err(MountError::io(dev, "cannot detach", e)),
    }
}
