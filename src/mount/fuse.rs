//! The FUSE backend: a private FUSE filesystem with one file, the decrypted data area, and a
//! loop device on that file; in user mode no loop device: the file itself is what a FUSE
//! filesystem driver running as the user opens.
//!
//! The kernel sends large requests (1 MiB, `max_pages` 256) to several worker threads, each
//! with its own `/dev/fuse` descriptor; read replies are sent straight from the thread's
//! decryption buffer. The loop device reads the file with direct I/O, so no page cache holds
//! the plaintext twice, and its requests are capped at the FUSE request size so that each
//! arrives whole.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, INodeNo, InitFlags,
    KernelConfig, LockOwner, MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, SessionACL, WriteFlags,
};

use super::area::KeyedArea;
use super::loopdev::LoopDevice;
use super::{Attached, Backend, MountError};

/// Largest FUSE read/write request asked for.
pub const MAX_REQUEST: u32 = 1 << 20;
/// How much unwritten data the kernel may hold for the loop device of a volume with
/// hidden-volume protection (its filesystem's page cache and the device's own). Protection
/// can only refuse a write when the data reach the service; a program whose data are still
/// cached has been told they were written. With the kernel's usual limits (a tenth of memory,
/// 30 s) a whole copy would fit, its program would exit 0, and the loss surface only at
/// write-back, where FUSE drivers such as fusefat drop the error. Held to this, the writing
/// program waits for write-back as it goes, so protection trips while it is still writing.
/// The price, measured on a debug build: 400 MiB written with fsync to ext4 took 8.8 s against
/// 7.0 s without the limit; 16 MiB took 7.6 s, but left four times as much of a copy unchecked.
pub const PROTECTED_DIRTY_LIMIT: u64 = 4 << 20;
/// Name of the one file in the FUSE filesystem.
pub const FILE_NAME: &str = "volume";
const FILE_INO: INodeNo = INodeNo(2);
const TTL: Duration = Duration::from_secs(3600);

struct AreaFs {
    area: Arc<KeyedArea>,
    started: SystemTime,
    /// Owner of the file and directory: the service's user (`default_permissions` lets only
    /// them in).
    uid: u32,
    gid: u32,
}

fn errno(e: &io::Error) -> Errno {
    Errno::from_i32(e.raw_os_error().unwrap_or(libc::EIO))
}

impl AreaFs {
    fn attr(&self, ino: INodeNo) -> Option<FileAttr> {
        let (kind, perm, size, nlink) = match ino {
            INodeNo::ROOT => (FileType::Directory, 0o700, 0, 2),
            FILE_INO => (
                FileType::RegularFile,
                if self.area.spec().read_only {
                    0o400
                } else {
                    0o600
                },
                self.area.len(),
                1,
            ),
            _ => return None,
        };
        Some(FileAttr {
            ino,
            size,
            blocks: size.div_ceil(512),
            atime: self.started,
            mtime: self.started,
            ctime: self.started,
            crtime: self.started,
            kind,
            perm,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: 0,
            blksize: MAX_REQUEST,
            flags: 0,
        })
    }
}

impl Filesystem for AreaFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // Each setting is best effort: an older kernel keeps its own limit.
        let _ = config.set_max_write(MAX_REQUEST);
        let _ = config.set_max_readahead(MAX_REQUEST);
        let _ = config.set_max_background(64);
        let _ = config.set_congestion_threshold(48);
        let _ = config.add_capabilities(InitFlags::FUSE_ASYNC_DIO);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match (parent, self.attr(FILE_INO)) {
            (INodeNo::ROOT, Some(a)) if name == FILE_NAME => {
                reply.entry(&TTL, &a, fuser::Generation(0));
            }
            _ => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(ino) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // The size is the volume's; an O_TRUNC open or a truncate to the same size is fine.
        match (self.attr(ino), size) {
            (Some(a), Some(s)) if s != a.size => reply.error(Errno::EPERM),
            (Some(a), _) => reply.attr(&TTL, &a),
            (None, _) => reply.error(Errno::ENOENT),
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        if ino != FILE_INO {
            return reply.error(Errno::EISDIR);
        }
        let acc = flags.0 & libc::O_ACCMODE;
        if acc != libc::O_RDONLY && self.area.spec().read_only {
            return reply.error(Errno::EROFS);
        }
        reply.opened(FileHandle(0), FopenFlags::empty());
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != FILE_INO {
            return reply.error(Errno::EISDIR);
        }
        let mut reply = Some(reply);
        let r = self.area.read_with(offset, size as usize, |plain| {
            if let Some(r) = reply.take() {
                r.data(plain);
            }
        });
        if let (Err(e), Some(r)) = (r, reply) {
            r.error(errno(&e));
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        if ino != FILE_INO {
            return reply.error(Errno::EISDIR);
        }
        match self.area.write(offset, data) {
            Ok(()) => reply.written(u32::try_from(data.len()).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(&self, _req: &Request, _ino: INodeNo, _fh: FileHandle, _ds: bool, reply: ReplyEmpty) {
        match self.area.sync() {
            // Writes were refused since protection tripped: a flush must not say that what the
            // filesystem above wrote is safe.
            Ok(()) if self.area.protection_tripped() => reply.error(Errno::EIO),
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        if ino != INodeNo::ROOT {
            return reply.error(Errno::ENOTDIR);
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (FILE_INO, FileType::RegularFile, FILE_NAME),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(offset as usize) {
            if reply.add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(self.area.len() / 512, 0, 0, 1, 0, 512, 255, 512);
    }
}

/// The FUSE + loop backend.
#[derive(Debug, Clone)]
pub struct FuseBackend {
    /// FUSE worker threads. Each has one host I/O in flight at a time, so this is also the
    /// service's queue depth on the host: writing back 1 GiB took 0.31-0.32 s with 8 against
    /// 0.35-0.37 s with 4 (12 and 16 were no faster), beside 0.29-0.30 s for a plain loop device.
    pub threads: usize,
    /// Ask the loop driver for direct I/O on the FUSE file.
    pub loop_direct_io: bool,
    /// Put a loop device on the FUSE file (root's mounts). Without one (user mode), the
    /// attached "device" is the FUSE file itself.
    pub loop_device: bool,
}

impl Default for FuseBackend {
    fn default() -> Self {
        FuseBackend {
            threads: 8,
            loop_direct_io: true,
            loop_device: true,
        }
    }
}

impl FuseBackend {
    /// The backend of a user-mode mount: the FUSE file alone.
    pub fn user_mode() -> FuseBackend {
        FuseBackend {
            loop_device: false,
            ..FuseBackend::default()
        }
    }
}

/// A running FUSE session with a loop device on its file.
struct FuseAttached {
    session: Option<fuser::BackgroundSession>,
    fuse_dir: PathBuf,
    loop_dev: Option<LoopDevice>,
    device: PathBuf,
}

impl std::fmt::Debug for FuseAttached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseAttached")
            .field("fuse_dir", &self.fuse_dir)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

impl Backend for FuseBackend {
    fn name(&self) -> &'static str {
        "fuse"
    }

    fn attach(
        &self,
        area: Arc<KeyedArea>,
        work_dir: &Path,
        label: &str,
    ) -> Result<Box<dyn Attached>, MountError> {
        let fuse_dir = work_dir.join("fuse");
        std::fs::create_dir_all(&fuse_dir)
            .map_err(|e| MountError::io(&fuse_dir, "cannot create", e))?;
        let read_only = area.spec().read_only;
        let protected = area.spec().protect.is_some();
        let mut config = Config::default();
        config.mount_options = vec![
            MountOption::FSName(format!("tcvault:{label}")),
            MountOption::Subtype("tcvault".into()),
            MountOption::NoDev,
            MountOption::NoSuid,
            MountOption::NoExec,
            MountOption::NoAtime,
            MountOption::DefaultPermissions,
            if read_only {
                MountOption::RO
            } else {
                MountOption::RW
            },
        ];
        // A user-mode mount lets root in too where the site allows it (`user_allow_other`):
        // a setuid FUSE driver such as Debian's ntfs-3g opens the file as root. Other users
        // stay out either way (the session checks who asks; the file is 0600).
        config.acl = if !self.loop_device && super::fs::user_allow_other() {
            SessionACL::RootAndOwner
        } else {
            SessionACL::Owner
        };
        config.n_threads = Some(self.threads.max(1));
        // Each worker's own descriptor is a clone made by opening /dev/fuse; a user who cannot
        // open it (fusermount3 opens it for them) shares the session's one.
        config.clone_fd = super::sys::can_read_write(Path::new("/dev/fuse"));
        let fs = AreaFs {
            area,
            started: SystemTime::now(),
            uid: super::sys::euid(),
            gid: super::sys::egid(),
        };
        let session = fuser::Session::new(fs, &fuse_dir, &config)
            .map_err(|e| MountError::io(&fuse_dir, "cannot mount the FUSE filesystem on", e))?
            .spawn()
            .map_err(|e| MountError::io(&fuse_dir, "cannot start the FUSE session on", e))?;
        let mut attached = FuseAttached {
            session: Some(session),
            fuse_dir: fuse_dir.clone(),
            loop_dev: None,
            device: PathBuf::new(),
        };
        let file = fuse_dir.join(FILE_NAME);
        if !self.loop_device {
            attached.device = file;
            return Ok(Box::new(attached));
        }
        let mut dev = LoopDevice::attach(&file, read_only, self.loop_direct_io, label)?;
        dev.limit_request_size(MAX_REQUEST);
        if protected && !read_only {
            dev.limit_dirty(PROTECTED_DIRTY_LIMIT);
        }
        attached.device = dev.path().to_path_buf();
        attached.loop_dev = Some(dev);
        Ok(Box::new(attached))
    }
}

impl Attached for FuseAttached {
    fn device(&self) -> &Path {
        &self.device
    }

    fn direct_io(&self) -> bool {
        self.loop_dev.as_ref().is_some_and(LoopDevice::direct_io)
    }

    fn refuse_writes(&mut self) -> Result<(), MountError> {
        match &mut self.loop_dev {
            Some(dev) => dev.set_read_only(),
            None => Ok(()),
        }
    }

    fn detach(mut self: Box<Self>) -> Result<(), MountError> {
        let mut first_err = None;
        if let Some(dev) = self.loop_dev.take()
            && let Err(e) = dev.detach()
        {
            first_err = Some(e);
        }
        if let Some(s) = self.session.take() {
            // The loop driver drops its reference to the file asynchronously; a lazy unmount
            // lets the session end as soon as it has.
            if super::fs::unmount(&self.fuse_dir, false).is_err() {
                let _ = super::fs::unmount(&self.fuse_dir, true);
            }
            let _ = s.join();
        }
        let _ = std::fs::remove_dir(&self.fuse_dir);
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for FuseAttached {
    fn drop(&mut self) {
        if let Some(dev) = self.loop_dev.take() {
            let _ = dev.detach();
        }
        if self.session.is_some() {
            let _ = super::fs::unmount(&self.fuse_dir, true);
        }
    }
}
