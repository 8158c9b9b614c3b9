//! Filesystems on the decrypted device: detection (blkid), choosing a driver (the kernel's, or a
//! FUSE driver from the distribution when the kernel has none or the mount is a user's),
//! mounting and unmounting, making one (mkfs), and finding the processes that keep a mount
//! busy.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::MountError;

/// Filesystems `tcvault create --filesystem` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsKind {
    /// ext4 (mkfs.ext4, e2fsprogs).
    Ext4,
    /// XFS (mkfs.xfs, xfsprogs).
    Xfs,
    /// Btrfs (mkfs.btrfs, btrfs-progs).
    Btrfs,
    /// FAT12/16/32, chosen by size (mkfs.fat, dosfstools).
    Fat,
    /// exFAT (mkfs.exfat, exfatprogs).
    Exfat,
    /// NTFS (mkfs.ntfs, ntfs-3g).
    Ntfs,
}

impl FsKind {
    /// The name blkid reports for it.
    pub fn blkid_type(self) -> &'static str {
        match self {
            FsKind::Ext4 => "ext4",
            FsKind::Xfs => "xfs",
            FsKind::Btrfs => "btrfs",
            FsKind::Fat => "vfat",
            FsKind::Exfat => "exfat",
            FsKind::Ntfs => "ntfs",
        }
    }

    /// Parses the names used on the command line (`ext4`, `xfs`, `btrfs`, `fat`/`vfat`,
    /// `exfat`, `ntfs`).
    pub fn from_name(s: &str) -> Option<FsKind> {
        Some(match s.to_ascii_lowercase().as_str() {
            "ext4" => FsKind::Ext4,
            "xfs" => FsKind::Xfs,
            "btrfs" => FsKind::Btrfs,
            "fat" | "vfat" | "fat12" | "fat16" | "fat32" => FsKind::Fat,
            "exfat" => FsKind::Exfat,
            "ntfs" => FsKind::Ntfs,
            _ => return None,
        })
    }

    /// The mkfs program and its Debian package.
    pub fn mkfs_program(self) -> (&'static str, &'static str) {
        match self {
            FsKind::Ext4 => ("mkfs.ext4", "e2fsprogs"),
            FsKind::Xfs => ("mkfs.xfs", "xfsprogs"),
            FsKind::Btrfs => ("mkfs.btrfs", "btrfs-progs"),
            FsKind::Fat => ("mkfs.fat", "dosfstools"),
            FsKind::Exfat => ("mkfs.exfat", "exfatprogs"),
            FsKind::Ntfs => ("mkfs.ntfs", "ntfs-3g"),
        }
    }

    /// The smallest data area its mkfs accepts, where that is more than the smallest volume
    /// (measured: mkfs.xfs 6.1 needs 300 MiB, mkfs.btrfs 6.2 114,294,784 bytes, mkfs.exfat
    /// 1.2 2.5 MiB, mkfs.ntfs 2022.10 1.25 MiB; mkfs.ext4 and mkfs.fat take 768 KiB).
    pub fn min_size(self) -> u64 {
        match self {
            FsKind::Xfs => 300 << 20,
            FsKind::Btrfs => 114_294_784,
            FsKind::Exfat => 2560 << 10,
            FsKind::Ntfs => 1280 << 10,
            FsKind::Ext4 | FsKind::Fat => 0,
        }
    }

    /// The mkfs command line for `dev` (no discards: the device sits on a FUSE file). An ext4
    /// root directory belongs to the user running mkfs (root, or the user of a user-mode
    /// `create`).
    pub fn mkfs_args(self, dev: &Path, label: Option<&str>) -> Vec<String> {
        let d = dev.display().to_string();
        let mut a: Vec<String> = match self {
            FsKind::Ext4 => vec![
                "-q".into(),
                "-F".into(),
                "-E".into(),
                "nodiscard,lazy_itable_init=0,lazy_journal_init=0,root_owner".into(),
            ],
            FsKind::Xfs => vec!["-q".into(), "-f".into(), "-K".into()],
            FsKind::Btrfs => vec!["-q".into(), "-f".into(), "-K".into()],
            FsKind::Fat => vec![],
            FsKind::Exfat => vec![],
            FsKind::Ntfs => vec!["-Q".into(), "-F".into(), "-q".into()],
        };
        if let Some(l) = label {
            a.push(if self == FsKind::Fat { "-n" } else { "-L" }.into());
            a.push(l.into());
        }
        a.push(d);
        a
    }
}

impl fmt::Display for FsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FsKind::Fat => "fat",
            k => k.blkid_type(),
        })
    }
}

/// Finds `program` in PATH plus the sbin directories (often missing from a user's PATH).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// Runs a program to completion with no standard input, capturing its output.
fn run(program: &str, package: &str, args: &[String]) -> Result<(), MountError> {
    let exe = find_program(program).ok_or_else(|| MountError::MissingProgram {
        program: program.into(),
        package: package.into(),
    })?;
    let out = Command::new(&exe)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| MountError::io(&exe, "cannot run", e))?;
    if out.status.success() {
        Ok(())
    } else {
        let mut msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if msg.is_empty() {
            msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
        }
        Err(MountError::ToolFailed {
            program: program.into(),
            status: out.status.code().unwrap_or(-1),
            message: msg,
        })
    }
}

/// Makes filesystem `kind` on `dev`.
///
/// # Errors
/// The mkfs program is missing or failed.
pub fn mkfs(kind: FsKind, dev: &Path, label: Option<&str>) -> Result<(), MountError> {
    let (prog, pkg) = kind.mkfs_program();
    run(prog, pkg, &kind.mkfs_args(dev, label))
}

/// The filesystem type blkid finds on `dev` (`None`: no known signature).
///
/// # Errors
/// blkid is missing or failed for another reason than "nothing found".
pub fn detect(dev: &Path) -> Result<Option<String>, MountError> {
    let exe = find_program("blkid").ok_or_else(|| MountError::MissingProgram {
        program: "blkid".into(),
        package: "util-linux".into(),
    })?;
    let out = Command::new(&exe)
        .args(["-p", "-o", "export", "--"])
        .arg(dev)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| MountError::io(&exe, "cannot run", e))?;
    // blkid exits 2 when it finds no signature.
    if out.status.code() == Some(2) {
        return Ok(None);
    }
    if !out.status.success() {
        return Err(MountError::ToolFailed {
            program: "blkid".into(),
            status: out.status.code().unwrap_or(-1),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("TYPE="))
        .map(str::to_string))
}

/// How a filesystem gets mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Driver {
    /// The kernel's driver, by `mount -t TYPE`.
    Kernel(String),
    /// A FUSE driver program, run as `PROGRAM -o OPTIONS DEVICE MOUNTPOINT`.
    Fuse(PathBuf),
}

impl Driver {
    /// A short name for `list`.
    pub fn name(&self) -> String {
        match self {
            Driver::Kernel(t) => format!("kernel {t}"),
            Driver::Fuse(p) => p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
        }
    }
}

fn kernel_has(fstype: &str) -> bool {
    let listed = |t: &str| {
        std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|s| s.lines().any(|l| l.split_whitespace().last() == Some(t)))
    };
    if listed(fstype) {
        return true;
    }
    // A module may provide it.
    if let Some(mp) = find_program("modprobe") {
        let _ = Command::new(mp)
            .args(["-q", fstype])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
        return listed(fstype);
    }
    false
}

/// The FUSE drivers tried for types the kernel lacks: (program, Debian package).
fn fuse_drivers(fstype: &str) -> &'static [(&'static str, &'static str)] {
    match fstype {
        "vfat" | "msdos" => &[("fusefat", "fusefat")],
        "exfat" => &[
            ("mount.exfat-fuse", "exfat-fuse"),
            ("exfat-fuse", "exfat-fuse"),
        ],
        "ntfs" => &[("ntfs-3g", "ntfs-3g")],
        _ => &[],
    }
}

/// The FUSE drivers of a user-mode mount, which run as the user on the decrypted file:
/// (program, Debian package). Not exFAT: `mount.exfat-fuse` always asks for `allow_other`,
/// and its FUSE 2 library passes options that `fusermount3` refuses (tried on Debian 12).
fn user_drivers(fstype: &str) -> &'static [(&'static str, &'static str)] {
    match fstype {
        "ext2" | "ext3" | "ext4" => &[("fuse2fs", "fuse2fs")],
        "vfat" | "msdos" | "ntfs" => fuse_drivers(fstype),
        _ => &[],
    }
}

/// Picks a driver for `fstype`: the kernel's first, else a FUSE driver; in user mode
/// (`user_mode`) only a FUSE driver, which runs as the user.
///
/// # Errors
/// [`MountError::NoDriver`] naming what to install.
pub fn choose_driver(fstype: &str, user_mode: bool) -> Result<Driver, MountError> {
    let candidates = if user_mode {
        user_drivers(fstype)
    } else {
        let kernel_name = match fstype {
            "ntfs" if !kernel_has("ntfs") => "ntfs3",
            t => t,
        };
        if kernel_has(kernel_name) {
            return Ok(Driver::Kernel(kernel_name.to_string()));
        }
        fuse_drivers(fstype)
    };
    for (prog, _) in candidates {
        if let Some(p) = find_program(prog) {
            return Ok(Driver::Fuse(p));
        }
    }
    Err(MountError::NoDriver {
        fstype: fstype.to_string(),
        install: candidates.first().map(|(_, pkg)| (*pkg).to_string()),
        user_mode,
    })
}

/// Whether `/etc/fuse.conf` lets ordinary users mount FUSE filesystems with `allow_other` or
/// `allow_root` (its `user_allow_other` line).
pub fn user_allow_other() -> bool {
    std::fs::read_to_string("/etc/fuse.conf")
        .is_ok_and(|s| s.lines().any(|l| l.trim() == "user_allow_other"))
}

/// In user mode, checks that `driver` can work for an ordinary user here: a setuid-root
/// `ntfs-3g` (as Debian installs it) opens the decrypted file as root, which the FUSE file
/// lets in only with `user_allow_other` in `/etc/fuse.conf`.
///
/// # Errors
/// [`MountError::Unavailable`] saying so.
pub fn check_user_driver(driver: &Driver) -> Result<(), MountError> {
    let Driver::Fuse(p) = driver else {
        return Ok(());
    };
    let setuid = std::fs::metadata(p).is_ok_and(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o4000 != 0
    });
    if !setuid || user_allow_other() {
        return Ok(());
    }
    Err(MountError::Unavailable(format!(
        "{} is installed setuid root here and opens the decrypted file as root, which \
         fusermount3 allows only when /etc/fuse.conf has a `user_allow_other` line; ask an \
         administrator to add it, or mount as root",
        driver.name()
    )))
}

/// Whether `fstype` stores no Unix ownership, so that uid/gid/umask options apply.
pub fn takes_owner_options(fstype: &str) -> bool {
    matches!(fstype, "vfat" | "msdos" | "exfat" | "ntfs" | "ntfs3")
}

/// What `mount` needs to know besides the device and mount point.
#[derive(Debug, Clone, Default)]
pub struct FsOptions {
    /// Mount read-only.
    pub read_only: bool,
    /// Extra options given by the user (comma-separated).
    pub extra: Option<String>,
    /// Owner of all files (FAT, exFAT, NTFS).
    pub uid: Option<u32>,
    /// Group of all files (FAT, exFAT, NTFS).
    pub gid: Option<u32>,
    /// Permission mask (FAT, exFAT, NTFS).
    pub umask: Option<u32>,
    /// A user-mode mount: the FUSE driver runs as the user, for the user alone.
    pub user_mode: bool,
}

/// Mounts `dev` (holding `fstype`) at `mountpoint` with `driver`.
///
/// # Errors
/// Ownership options on a filesystem that has its own, or the mount program failed.
pub fn mount(
    dev: &Path,
    fstype: &str,
    driver: &Driver,
    mountpoint: &Path,
    o: &FsOptions,
) -> Result<(), MountError> {
    let mut opts: Vec<String> = Vec::new();
    let fuse = matches!(driver, Driver::Fuse(_));
    let is_fusefat = matches!(driver, Driver::Fuse(p) if p.ends_with("fusefat"));
    if o.read_only {
        opts.push("ro".into());
    } else if is_fusefat {
        // fusefat mounts read-only unless asked for its (experimental) write support.
        opts.push("rw+".into());
    } else {
        opts.push("rw".into());
    }
    let owner = [("uid", o.uid), ("gid", o.gid)];
    if (o.uid.is_some() || o.gid.is_some() || o.umask.is_some()) && !takes_owner_options(fstype) {
        return Err(MountError::Usage(format!(
            "--uid, --gid and --umask apply to FAT, exFAT and NTFS only; {fstype} stores \
             owners and permissions itself"
        )));
    }
    for (k, v) in owner {
        if let Some(v) = v {
            opts.push(format!("{k}={v}"));
        }
    }
    if let Some(m) = o.umask {
        opts.push(format!("umask={m:o}"));
    }
    if fuse && !o.user_mode {
        // Root mounts it; the owner given with --uid must be able to enter it.
        opts.push("allow_other".into());
    }
    if o.user_mode && matches!(driver, Driver::Fuse(p) if p.ends_with("fuse2fs")) {
        // The user holds the volume's keys, so its permissions keep nothing from them; without
        // this a volume made by root could not be written to by its owner at all. What the user
        // writes is owned by the user.
        opts.push("fakeroot".into());
    }
    if let Some(x) = o.extra.as_deref().filter(|s| !s.is_empty()) {
        opts.push(x.to_string());
    }
    let optstr = opts.join(",");
    let dev_s = dev.display().to_string();
    let mp_s = mountpoint.display().to_string();
    match driver {
        Driver::Kernel(t) => run(
            "mount",
            "mount",
            &["-t".into(), t.clone(), "-o".into(), optstr, dev_s, mp_s],
        ),
        Driver::Fuse(p) => {
            let prog = p.display().to_string();
            run(&prog, "", &["-o".into(), optstr, dev_s, mp_s])
        }
    }
}

/// Stops the filesystem mounted at `mountpoint` with kernel driver `driver` from taking writes
/// (after hidden-volume protection tripped: its device refuses them from then on, and what it
/// accepted into its cache would be lost at write-back). Tried in turn: a read-only remount
/// (refused while files are open for writing), then for ext2/3/4 the `abort` remount option
/// (the journal is aborted and the filesystem turns read-only at once, open files included;
/// reads go on working), then `FS_IOC_SHUTDOWN` (every later operation fails, reads too).
/// Returns what worked; `None` for a FUSE driver, whose writes to the device fail by themselves
/// once the device is read-only.
///
/// # Errors
/// Each way failed (the last error is returned).
pub fn stop_writes(driver: &Driver, mountpoint: &Path) -> Result<Option<&'static str>, MountError> {
    let Driver::Kernel(fstype) = driver else {
        return Ok(None);
    };
    let mp = mountpoint.display().to_string();
    let remount = |opts: &str| run("mount", "mount", &["-o".into(), opts.into(), mp.clone()]);
    let mut err = match remount("remount,ro") {
        Ok(()) => return Ok(Some("remounted read-only")),
        Err(e) => e,
    };
    if matches!(fstype.as_str(), "ext2" | "ext3" | "ext4") {
        match remount("remount,abort") {
            Ok(()) => return Ok(Some("aborted its journal: read-only, reads still work")),
            Err(e) => err = e,
        }
    }
    let shut = std::fs::File::open(mountpoint).and_then(|f| super::sys::fs_shutdown(&f));
    match shut {
        Ok(()) => Ok(Some("shut it down: reads fail too until unmounted")),
        Err(e) if e.raw_os_error() == Some(libc::ENOTTY) => Err(err),
        Err(e) => Err(MountError::io(
            mountpoint,
            "cannot shut down the filesystem at",
            e,
        )),
    }
}

/// Unmounts `path` (`lazy`: detach it now, finish when it is no longer busy): with
/// `umount2(2)` as root, through the setuid `fusermount3 -u` for an ordinary user (who can
/// only unmount their own FUSE mounts). A busy mount fails with `EBUSY` either way.
///
/// # Errors
/// The unmount failed.
pub fn unmount(path: &Path, lazy: bool) -> std::io::Result<()> {
    if super::sys::euid() == 0 {
        return super::sys::umount2(path, if lazy { libc::MNT_DETACH } else { 0 });
    }
    let exe = find_program("fusermount3").ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "fusermount3 is not installed (Debian package fuse3)",
        )
    })?;
    let mut cmd = Command::new(exe);
    cmd.arg("-u").arg("-q");
    if lazy {
        cmd.arg("-z");
    }
    let out = cmd
        .arg("--")
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .output()?;
    if out.status.success() {
        return Ok(());
    }
    let msg = String::from_utf8_lossy(&out.stderr);
    if msg.contains("busy") {
        Err(std::io::Error::from_raw_os_error(libc::EBUSY))
    } else {
        Err(std::io::Error::other(format!(
            "fusermount3: {}",
            msg.trim().trim_start_matches("fusermount3: ")
        )))
    }
}

/// Whether `path` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mountpoint(path: &Path) -> bool {
    // A FUSE mount whose server died cannot be examined (ENOTCONN): resolve only its parent.
    let canon = match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map_or_else(|_| path.to_path_buf(), |p| p.join(name)),
        _ => path.to_path_buf(),
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        l.split(' ')
            .nth(4)
            .is_some_and(|m| Path::new(&unescape_mountinfo(m)) == canon)
    })
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 4])
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A process that keeps a mount point or device busy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its process id.
    pub pid: u32,
    /// Its command name.
    pub command: String,
    /// How it uses it: "cwd", "root" or "open file".
    pub how: &'static str,
}

/// The processes whose working directory, root or open files lie at or under `path`,
/// except `skip`.
pub fn users_of(path: &Path, skip: &[u32]) -> Vec<User> {
    let Ok(canon) = path.canonicalize() else {
        return Vec::new();
    };
    let under = |p: &Path| p.starts_with(&canon);
    let mut users = Vec::new();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return users;
    };
    for e in procs.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if skip.contains(&pid) || pid == std::process::id() {
            continue;
        }
        let base = e.path();
        let command = std::fs::read_to_string(base.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let mut how = None;
        if std::fs::read_link(base.join("cwd")).is_ok_and(|p| under(&p)) {
            how = Some("cwd");
        } else if std::fs::read_link(base.join("root"))
            .is_ok_and(|p| under(&p) && p != Path::new("/"))
        {
            how = Some("root");
        } else if let Ok(fds) = std::fs::read_dir(base.join("fd"))
            && fds
                .flatten()
                .any(|f| std::fs::read_link(f.path()).is_ok_and(|p| under(&p)))
        {
            how = Some("open file");
        }
        if let Some(how) = how {
            users.push(User { pid, command, how });
        }
    }
    users
}
