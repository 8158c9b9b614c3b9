//! The mount service: a background process, one per mounted volume, that serves the decrypted
//! data area and owns the loop device and the mount.
//!
//! [`start`] runs the service program (the `tcvault` binary with a hidden subcommand, which
//! calls [`serve`]) with one end of a socket pair as its standard input, and sends it the
//! non-secret settings as JSON and then the header's key area as raw bytes: no password or key
//! is ever on a command line or in the environment. The service leaves the terminal's session,
//! sets everything up, answers with the resulting [`MountState`] (or an error) and then waits
//! for SIGTERM, on which it unmounts, detaches, syncs and wipes its keys. [`unmount`] is what
//! any later `tcvault` process uses to stop it, or to clean up after one that died.

use std::io::{self, Read, Write};
use std::ops::Range;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::crypto::scheme::Scheme;
use crate::secret::SecretBytes;
use crate::volume::Volume;

use super::area::{AreaSpec, KeyedArea};
use super::fs::{self, FsOptions};
use super::fuse::FuseBackend;
use super::loopdev;
use super::state::{self, Entry, MountState};
use super::{Attached, Backend, MountError, sys};

/// The hidden subcommand that runs [`serve`].
pub const SERVICE_SUBCOMMAND: &str = "__mount-service";
/// Where root's default mount points are made; an ordinary user's are under `media/` in
/// their state directory ([`state::run_dir`]).
pub const MEDIA_DIR: &str = "/media/tcvault";
const MAX_MESSAGE: u32 = 1 << 20;
/// Why `--protect-hidden` needs root.
pub const USER_MODE_NO_PROTECTION: &str = "hidden-volume protection needs a mount as root: \
    only there can tcvault stop every layer above the volume from writing at once when it \
    refuses a write (a user-mode FUSE driver may keep writing from its cache and lose data)";
/// How long `start` waits for the service's answer.
const START_TIMEOUT: Duration = Duration::from_secs(300);

/// What to mount and how (everything but the keys).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountRequest {
    /// Mount point; `None`: a new directory under [`MEDIA_DIR`] (root) or the user's state
    /// directory.
    pub mountpoint: Option<PathBuf>,
    /// Read-only device and filesystem.
    pub read_only: bool,
    /// Only the decrypted block device, no filesystem.
    pub no_filesystem: bool,
    /// Extra mount options.
    pub mount_options: Option<String>,
    /// Owner of files (FAT, exFAT, NTFS).
    pub uid: Option<u32>,
    /// Group of files (FAT, exFAT, NTFS).
    pub gid: Option<u32>,
    /// Permission mask (FAT, exFAT, NTFS).
    pub umask: Option<u32>,
    /// Slot number; `None`: the lowest free one.
    pub slot: Option<u32>,
    /// Host byte range of a hidden volume to protect from writes.
    pub protect: Option<Range<u64>>,
    /// `uid`/`gid` are a default (the user behind sudo), dropped for filesystems that store
    /// owners themselves instead of being an error.
    pub default_owner: bool,
    /// User mode: no loop device and no kernel mount; a FUSE filesystem driver runs as the
    /// user on the decrypted FUSE file (what an ordinary user can do; root may ask for it).
    #[serde(default)]
    pub user_mode: bool,
}

#[derive(Serialize, Deserialize)]
struct Setup {
    request: MountRequest,
    host: PathBuf,
    start: u64,
    len: u64,
    /// [`Scheme::id`]: the chain, and the mode of a legacy one.
    chain: String,
    first_unit: u64,
    prf: String,
    kind: String,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    state: Option<MountState>,
    error: Option<String>,
    no_driver: bool,
}

fn proto(e: impl std::fmt::Display) -> MountError {
    MountError::Protocol(format!("mount service protocol: {e}"))
}

fn write_frame(w: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let n = u32::try_from(bytes.len()).map_err(|_| io::Error::other("message too large"))?;
    w.write_all(&n.to_le_bytes())?;
    w.write_all(bytes)
}

fn read_len(r: &mut impl Read) -> Result<usize, MountError> {
    let mut n = [0u8; 4];
    r.read_exact(&mut n).map_err(proto)?;
    let n = u32::from_le_bytes(n);
    if n > MAX_MESSAGE {
        return Err(proto("message too large"));
    }
    Ok(n as usize)
}

/// Starts a service for `volume` by running `exe` (a `tcvault` binary) and waits until the
/// volume is mounted (or the service failed).
///
/// # Errors
/// The volume is already mounted, the service could not start, or it reported an error.
pub fn start(volume: &Volume, req: &MountRequest, exe: &Path) -> Result<MountState, MountError> {
    if req.user_mode && req.protect.is_some() {
        return Err(MountError::Usage(USER_MODE_NO_PROTECTION.into()));
    }
    let host = std::path::absolute(volume.host().path())
        .map_err(|e| MountError::io(volume.host().path(), "cannot resolve", e))?;
    if let Some(e) = state::find_volume(&host) {
        return Err(already(&host, &e));
    }
    let u = volume.unlocked();
    let setup = Setup {
        request: req.clone(),
        host,
        start: volume.data_area().start,
        len: volume.data_len(),
        chain: u.scheme.id(),
        first_unit: volume.data_area().first_unit,
        prf: u.kdf.prf().id().to_string(),
        kind: if u.slot.is_hidden() {
            "hidden"
        } else {
            "normal"
        }
        .to_string(),
    };
    let json = serde_json::to_vec(&setup).map_err(proto)?;
    let (mut ours, theirs) =
        UnixStream::pair().map_err(|e| MountError::io(exe, "socketpair for", e))?;
    let mut child = Command::new(exe)
        .arg(SERVICE_SUBCOMMAND)
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| MountError::io(exe, "cannot start the mount service", e))?;
    let sent = write_frame(&mut ours, &json)
        .and_then(|()| write_frame(&mut ours, u.header.key_area.expose()));
    if let Err(e) = sent {
        let _ = child.kill();
        let _ = child.wait();
        return Err(MountError::Service(format!(
            "could not send the settings: {e}"
        )));
    }
    // The service keeps its copy of the socket (its standard input) open: the answer is
    // one length-prefixed frame, not "everything until EOF". A service stuck in a mount
    // helper must not keep the command waiting forever.
    let _ = ours.set_read_timeout(Some(START_TIMEOUT));
    let reply: Option<Reply> = read_len(&mut ours).ok().and_then(|n| {
        let mut answer = vec![0u8; n];
        ours.read_exact(&mut answer).ok()?;
        serde_json::from_slice(&answer).ok()
    });
    match reply {
        Some(Reply { state: Some(s), .. }) => Ok(s),
        Some(Reply {
            error: Some(msg),
            no_driver,
            ..
        }) => {
            let _ = child.wait();
            Err(if no_driver {
                MountError::ServiceNoDriver(msg)
            } else {
                MountError::Service(msg)
            })
        }
        _ => {
            let status = child.wait().ok();
            Err(MountError::Service(format!(
                "the service ended without an answer ({})",
                status.map_or_else(|| "unknown status".to_string(), |s| s.to_string())
            )))
        }
    }
}

fn already(host: &Path, e: &Entry) -> MountError {
    MountError::AlreadyMounted {
        volume: host.to_path_buf(),
        slot: e.slot,
        mountpoint: e.state.as_ref().and_then(|s| s.mountpoint.clone()),
    }
}

/// A tiny append-only log in the slot directory: what happened, never a secret.
struct Log(Option<std::fs::File>);

impl Log {
    fn line(&mut self, msg: &str) {
        if let Some(f) = &mut self.0 {
            let t = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let _ = writeln!(f, "{t} {msg}");
        }
    }
}

/// What wakes the service's main loop.
enum Event {
    /// A signal to stop on.
    Signal(i32),
    /// Hidden-volume protection refused a write.
    Tripped,
}

/// What the service set up, in the order it is torn down.
struct Running {
    dir: PathBuf,
    state: MountState,
    attached: Option<Box<dyn Attached>>,
    area: Option<Arc<KeyedArea>>,
    /// The driver of the mounted filesystem.
    driver: Option<fs::Driver>,
    mounted: bool,
}

impl Running {
    /// After hidden-volume protection refused a write, the data area refuses every write; this
    /// makes the layers above refuse them too, so that programs see the failure instead of
    /// writing into caches whose write-back fails: the device becomes read-only (a FUSE
    /// driver's own writes to it fail from then on), a kernel filesystem is stopped from
    /// writing ([`fs::stop_writes`]), and `list` and the log say so.
    fn protection_tripped(&mut self, log: &mut Log) {
        if self.state.protection_tripped {
            return;
        }
        self.state.protection_tripped = true;
        log.line(
            "hidden-volume protection tripped: a write into the hidden volume was refused; \
             every write is refused from now on, and writes made just before may be lost",
        );
        if let Err(e) = state::write(&self.state) {
            log.line(&format!("state: {}", error_chain(&e)));
        }
        // The filesystem first: mount(8) refuses to remount one whose device is read-only.
        if let (true, Some(driver), Some(mp)) = (self.mounted, &self.driver, &self.state.mountpoint)
        {
            match fs::stop_writes(driver, mp) {
                Ok(Some(how)) => log.line(&format!("{}: {how}", mp.display())),
                Ok(None) => {}
                Err(e) => log.line(&format!(
                    "{}: cannot stop the filesystem from writing ({}); its programs see the \
                     refused writes at fsync only",
                    mp.display(),
                    error_chain(&e)
                )),
            }
        }
        if let Some(a) = &mut self.attached {
            match a.refuse_writes() {
                Ok(()) => log.line(&format!("{}: read-only", a.device().display())),
                Err(e) => log.line(&format!(
                    "cannot make the device read-only: {}",
                    error_chain(&e)
                )),
            }
        }
    }

    fn teardown(&mut self, log: &mut Log) {
        if self.mounted
            && let Some(mp) = self.state.mountpoint.clone()
        {
            if let Err(e) = fs::unmount(&mp, false) {
                log.line(&format!("umount {}: {e}; detaching lazily", mp.display()));
                let _ = fs::unmount(&mp, true);
            }
            self.mounted = false;
        }
        // A FUSE driver (fusefat, ntfs-3g …) finishes writing after the unmount returns: wait
        // until it has closed the device, so that nothing it writes is lost.
        if let Some(dev) = &self.state.device
            && self.state.mountpoint.is_some()
        {
            let me = [std::process::id()];
            let until = Instant::now() + Duration::from_secs(20);
            while !fs::users_of(dev, &me).is_empty() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if let Some(a) = self.attached.take()
            && let Err(e) = a.detach()
        {
            log.line(&format!("detach: {e}"));
        }
        if let Some(area) = self.area.take() {
            if let Err(e) = area.sync() {
                log.line(&format!("sync: {e}"));
            }
            // The last reference: dropping it wipes the keys.
            drop(area);
        }
        if self.state.created_mountpoint
            && let Some(mp) = &self.state.mountpoint
        {
            let _ = std::fs::remove_dir(mp);
        }
        log.line("stopped");
        state::remove(&self.dir);
    }
}

/// Runs the service on `control` (the socket [`start`] passed as standard input); returns
/// the process exit status.
pub fn serve(mut control: UnixStream) -> i32 {
    // Leave the terminal's session: closing it must not stop us.
    let _ = sys::setsid();
    let (tx, rx) = mpsc::channel::<Event>();
    let signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGHUP,
    ]);
    let handle = match signals {
        Ok(mut s) => {
            let h = s.handle();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for sig in s.forever() {
                    if sig != signal_hook::consts::SIGHUP && tx.send(Event::Signal(sig)).is_err() {
                        break;
                    }
                }
            });
            Some(h)
        }
        Err(_) => None,
    };
    let mut log = Log(None);
    let mut running = None;
    let result = setup(&mut control, &mut log, &mut running, &tx);
    drop(tx);
    let reply = match &result {
        Ok(st) => Reply {
            state: Some(st.clone()),
            error: None,
            no_driver: false,
        },
        Err(e) => Reply {
            state: None,
            error: Some(error_chain(e)),
            no_driver: matches!(e, MountError::NoDriver { .. } | MountError::NoFilesystem),
        },
    };
    if let Err(e) = &result {
        log.line(&format!("failed: {}", error_chain(e)));
    }
    if let Ok(b) = serde_json::to_vec(&reply) {
        let _ = write_frame(&mut control, &b);
    }
    drop(control);
    let mut run = match (running, result.is_ok()) {
        (Some(r), true) => r,
        (Some(mut r), false) => {
            r.teardown(&mut log);
            return 1;
        }
        (None, _) => return 1,
    };
    log.line("mounted; waiting for SIGTERM");
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(Event::Signal(sig)) => {
                log.line(&format!("signal {sig}: stopping"));
                break;
            }
            Ok(Event::Tripped) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // No signal thread (and the area is gone): nothing can stop us cleanly but
                // the unmount command's SIGKILL path; idle.
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        if run.area.as_ref().is_some_and(|a| a.protection_tripped()) {
            run.protection_tripped(&mut log);
        }
    }
    run.teardown(&mut log);
    if let Some(h) = handle {
        h.close();
    }
    0
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn setup(
    control: &mut UnixStream,
    log: &mut Log,
    running: &mut Option<Running>,
    events: &mpsc::Sender<Event>,
) -> Result<MountState, MountError> {
    let n = read_len(control)?;
    let mut json = vec![0u8; n];
    control.read_exact(&mut json).map_err(proto)?;
    let setup: Setup = serde_json::from_slice(&json).map_err(proto)?;
    let n = read_len(control)?;
    let mut key = SecretBytes::zeroed(n);
    control.read_exact(key.expose_mut()).map_err(proto)?;
    let req = setup.request;
    let scheme = Scheme::from_id(&setup.chain)
        .ok_or_else(|| proto(format!("unknown cipher {}", setup.chain)))?;

    let (volume_dev, volume_ino) = state::identity(&setup.host)
        .map_err(|e| MountError::io(&setup.host, "cannot examine", e))?;
    let (slot, dir) = state::claim(req.slot)?;
    *log = Log(std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("service.log"))
        .ok());
    log.line(&format!("starting for {}", setup.host.display()));
    let mut st = MountState {
        slot,
        pid: std::process::id(),
        phase: "starting".into(),
        volume: setup.host.clone(),
        volume_dev,
        volume_ino,
        mountpoint: None,
        created_mountpoint: false,
        device: None,
        fuse_dir: dir.join("fuse"),
        filesystem: None,
        driver: None,
        chain: scheme.id(),
        prf: setup.prf,
        kind: setup.kind,
        read_only: req.read_only,
        protect_hidden: req.protect.is_some(),
        protection_tripped: false,
        loop_direct_io: false,
        user_mode: req.user_mode,
        started: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };
    *running = Some(Running {
        dir: dir.clone(),
        state: st.clone(),
        attached: None,
        area: None,
        driver: None,
        mounted: false,
    });
    let run = running.as_mut().ok_or_else(|| proto("state lost"))?;
    // Someone else may have mounted it between the command's check and our claim.
    if let Some(other) = state::entries().into_iter().find(|e| {
        e.slot != slot
            && e.alive
            && e.state
                .as_ref()
                .is_some_and(|s| (s.volume_dev, s.volume_ino) == (volume_dev, volume_ino))
    }) {
        return Err(already(&setup.host, &other));
    }
    state::write(&st)?;

    let spec = AreaSpec {
        host: setup.host.clone(),
        start: setup.start,
        len: setup.len,
        scheme,
        first_unit: setup.first_unit,
        read_only: req.read_only,
        protect: req.protect.clone(),
        direct_io: true,
    };
    let area = Arc::new(KeyedArea::open(spec, key.expose())?);
    drop(key);
    let tripped = events.clone();
    area.on_trip(move || {
        let _ = tripped.send(Event::Tripped);
    });
    run.area = Some(Arc::clone(&area));
    let label = setup.host.display().to_string();
    let backend = if req.user_mode {
        FuseBackend::user_mode()
    } else {
        FuseBackend::default()
    };
    let attached = backend.attach(area, &dir, &label)?;
    st.device = Some(attached.device().to_path_buf());
    st.loop_direct_io = attached.direct_io();
    run.attached = Some(attached);
    run.state = st.clone();
    log.line(&format!(
        "device {} (loop direct I/O {})",
        st.device.as_deref().unwrap_or(Path::new("?")).display(),
        st.loop_direct_io
    ));

    if !req.no_filesystem {
        let dev = st.device.clone().ok_or_else(|| proto("no device"))?;
        let fstype = fs::detect(&dev)?.ok_or(MountError::NoFilesystem)?;
        let driver = fs::choose_driver(&fstype, req.user_mode)?;
        if req.user_mode {
            fs::check_user_driver(&driver)?;
        }
        let (mp, created) = match &req.mountpoint {
            Some(m) => prepare_mountpoint(m)?,
            None => default_mountpoint(&setup.host)?,
        };
        st.mountpoint = Some(mp.clone());
        st.created_mountpoint = created;
        st.filesystem = Some(fstype.clone());
        st.driver = Some(driver.name());
        run.state = st.clone();
        let keep_owner = !req.default_owner || fs::takes_owner_options(&fstype);
        let opts = FsOptions {
            read_only: req.read_only,
            extra: req.mount_options.clone(),
            uid: req.uid.filter(|_| keep_owner),
            gid: req.gid.filter(|_| keep_owner),
            umask: req.umask,
            user_mode: req.user_mode,
        };
        fs::mount(&dev, &fstype, &driver, &mp, &opts)?;
        run.mounted = true;
        run.driver = Some(driver.clone());
        log.line(&format!(
            "mounted {fstype} at {} with {}",
            mp.display(),
            driver.name()
        ));
    }
    st.phase = "mounted".into();
    run.state = st.clone();
    state::write(&st)?;
    Ok(st)
}

fn prepare_mountpoint(m: &Path) -> Result<(PathBuf, bool), MountError> {
    let m = std::path::absolute(m).map_err(|e| MountError::io(m, "cannot resolve", e))?;
    if m.exists() {
        if !m.is_dir() {
            return Err(MountError::Usage(format!(
                "{}: not a directory",
                m.display()
            )));
        }
        if fs::is_mountpoint(&m) {
            return Err(MountError::Usage(format!(
                "{}: something is already mounted there",
                m.display()
            )));
        }
        Ok((m, false))
    } else {
        std::fs::create_dir_all(&m).map_err(|e| MountError::io(&m, "cannot create", e))?;
        Ok((m, true))
    }
}

fn default_mountpoint(host: &Path) -> Result<(PathBuf, bool), MountError> {
    let stem = host
        .file_stem()
        .map(|s| {
            s.to_string_lossy()
                .replace(|c: char| c.is_whitespace() || c == '/', "_")
        })
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .unwrap_or_else(|| "volume".to_string());
    let media = if sys::euid() == 0 {
        PathBuf::from(MEDIA_DIR)
    } else {
        state::run_dir().join("media")
    };
    let media = media.as_path();
    std::fs::create_dir_all(media).map_err(|e| MountError::io(media, "cannot create", e))?;
    for i in 1..1000 {
        let name = if i == 1 {
            stem.clone()
        } else {
            format!("{stem}-{i}")
        };
        let p = media.join(name);
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok((p, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MountError::io(&p, "cannot create", e)),
        }
    }
    Err(MountError::Usage(format!(
        "no free mount point name for {stem} under {}",
        media.display()
    )))
}

/// Every slot in use, live or stale.
pub fn list() -> Vec<Entry> {
    state::entries()
}

/// Finds the entry `target` names: a mount point, a volume, a loop device, or `slotN`.
pub fn find(target: &Path) -> Option<Entry> {
    let entries = state::entries();
    if let Some(n) = target
        .to_str()
        .and_then(|s| s.strip_prefix("slot").or(Some(s)))
        .and_then(|s| s.parse::<u32>().ok())
        && let Some(e) = entries.iter().find(|e| e.slot == n)
    {
        return Some(e.clone());
    }
    let canon = target.canonicalize().ok();
    let id = state::identity(target).ok();
    entries.into_iter().find(|e| {
        let Some(s) = &e.state else { return false };
        let same = |p: &Option<PathBuf>| {
            p.as_ref()
                .zip(canon.as_ref())
                .is_some_and(|(a, b)| a.canonicalize().is_ok_and(|a| &a == b) || a == b)
        };
        same(&s.mountpoint)
            || same(&s.device)
            || id.is_some_and(|id| (s.volume_dev, s.volume_ino) == id && !same(&s.device))
    })
}

/// What [`unmount`] did.
#[derive(Debug, Clone)]
pub struct UnmountOutcome {
    /// The slot freed.
    pub slot: u32,
    /// The volume.
    pub volume: Option<PathBuf>,
    /// The service had died; its leftovers were cleaned up.
    pub was_stale: bool,
}

/// Unmounts the filesystem of `entry`, stops its service (which detaches the device, syncs
/// and wipes its keys) and waits for it; cleans up after a dead service.
///
/// # Errors
/// [`MountError::Busy`] when files are open (unless `force`), or a step that failed.
pub fn unmount(entry: &Entry, force: bool) -> Result<UnmountOutcome, MountError> {
    let st = entry.state.clone();
    let pid = st.as_ref().map(|s| s.pid);
    let skip: Vec<u32> = pid.into_iter().collect();
    if let Some(s) = &st {
        if let Some(mp) = &s.mountpoint
            && fs::is_mountpoint(mp)
        {
            match fs::unmount(mp, false) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    if !force {
                        return Err(busy(mp, &skip));
                    }
                    fs::unmount(mp, true).map_err(|e| MountError::io(mp, "cannot unmount", e))?;
                }
                Err(e) if !entry.alive => {
                    // A dead FUSE driver or service: the lazy way always works.
                    let _ = e;
                    let _ = fs::unmount(mp, true);
                }
                Err(e) => return Err(MountError::io(mp, "cannot unmount", e)),
            }
        } else if s.mountpoint.is_none()
            && let Some(dev) = &s.device
            && entry.alive
            && !force
        {
            let users = fs::users_of(dev, &skip);
            if !users.is_empty() {
                return Err(busy(dev, &skip));
            }
        }
    }
    let mut was_stale = !entry.alive;
    if let Some(pid) = pid.filter(|_| entry.alive) {
        let _ = sys::kill(pid, libc::SIGTERM);
        let until = Instant::now() + Duration::from_secs(30);
        while sys::process_alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(25));
        }
        if sys::process_alive(pid) {
            let _ = sys::kill(pid, libc::SIGKILL);
            std::thread::sleep(Duration::from_millis(200));
            was_stale = true;
        }
    }
    if was_stale || entry.dir.exists() {
        clean_stale(entry);
    }
    Ok(UnmountOutcome {
        slot: entry.slot,
        volume: st.map(|s| s.volume),
        was_stale,
    })
}

fn busy(target: &Path, skip: &[u32]) -> MountError {
    MountError::Busy {
        target: target.to_path_buf(),
        users: fs::users_of(target, skip)
            .into_iter()
            .map(|u| format!("{} ({}, {})", u.pid, u.command, u.how))
            .collect(),
    }
}

/// Removes what a dead service left: the mount, the loop device, the FUSE mount, the state.
fn clean_stale(entry: &Entry) {
    if let Some(s) = &entry.state {
        if let Some(mp) = &s.mountpoint
            && fs::is_mountpoint(mp)
        {
            let _ = fs::unmount(mp, true);
        }
        if let Some(dev) = &s.device
            && let Some(n) = loopdev::loop_number(dev)
        {
            let ours = loopdev::backing_file(n).is_some_and(|b| b.starts_with(&s.fuse_dir));
            if ours {
                let _ = loopdev::force_detach(dev);
            }
            // Detached now (by us, or by auto-clear when the filesystem let go of it): the
            // dead service could not put its device settings back.
            let free = if ours {
                loopdev::wait_detached(n, Duration::from_secs(5))
            } else {
                loopdev::backing_file(n).is_none()
            };
            if free {
                loopdev::reset_settings(n);
            }
        }
        if s.created_mountpoint
            && let Some(mp) = &s.mountpoint
            && !fs::is_mountpoint(mp)
        {
            let _ = std::fs::remove_dir(mp);
        }
    }
    let fuse_dir = entry.dir.join("fuse");
    if fs::is_mountpoint(&fuse_dir) && fs::unmount(&fuse_dir, false).is_err() {
        let _ = fs::unmount(&fuse_dir, true);
    }
    state::remove(&entry.dir);
}
