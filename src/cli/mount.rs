//! `tcvault mount`, `unmount` and `list`, and the hidden service subcommand.

use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;
use tcvault::mount::state::Entry;
use tcvault::mount::table::TabEntry;
use tcvault::mount::{self as m, MountError, MountRequest};

use super::unlock::warn_if_short_of_space;

use super::args::{ListArgs, MountArgs, PrfArg, UnlockArgs, UnmountArgs};
use super::exit::{BAD_INPUT, CliError, FAILED, USAGE};
use super::unlock::open_volume;

pub(super) fn cli_err(e: MountError) -> CliError {
    match e {
        MountError::Volume(v) => CliError::from(v),
        MountError::Usage(_) => CliError::new(e, USAGE),
        MountError::Busy { .. } => CliError::new(e, FAILED).hint(
            "close the files and leave the directory (cd elsewhere), or use --force: processes \
             still using it then get I/O errors",
        ),
        MountError::NoDriver { .. } | MountError::ServiceNoDriver(_) | MountError::NoFilesystem => {
            CliError::new(e, FAILED)
                .hint("--no-filesystem gives the decrypted block device without mounting it")
        }
        MountError::MissingProgram { .. } => {
            CliError::new(e, FAILED).hint("scripts/setup.d/mount.sh installs what mount needs")
        }
        MountError::AlreadyMounted { .. } => {
            CliError::new(e, BAD_INPUT).hint("`tcvault list` shows what is mounted")
        }
        MountError::NotMounted(_) => {
            CliError::new(e, BAD_INPUT).hint("`tcvault list` shows what is mounted")
        }
        e => CliError::new(e, FAILED),
    }
}

fn sudo_id(var: &str) -> Option<u32> {
    std::env::var(var).ok()?.parse().ok().filter(|&n| n != 0)
}

pub fn mount(a: &MountArgs) -> Result<(), CliError> {
    match &a.volume {
        Some(v) if !a.all && a.entry.is_none() => {
            let st = mount_one(a, v)?;
            if a.json {
                print_json(&state_json(&st))
            } else {
                print_mounted(&st, None)
            }
        }
        _ => mount_table(a),
    }
}

fn table_path(t: Option<&Path>) -> PathBuf {
    t.map_or_else(|| PathBuf::from(m::table::DEFAULT_TABLE), Path::to_path_buf)
}

fn read_table(t: Option<&Path>) -> Result<(PathBuf, Vec<TabEntry>), CliError> {
    let path = table_path(t);
    let entries = m::table::read(&path).map_err(|e| {
        let hint = if e.line == 0 {
            "--table FILE names another table; tcvault-mount(1), MOUNT TABLE, says what it holds"
        } else {
            "a line is: name, volume, mount point (- for the default), password file (none: ask), \
             options"
        };
        CliError::new(e, BAD_INPUT).hint(hint)
    })?;
    Ok((path, entries))
}

fn find_entry<'t>(
    path: &Path,
    entries: &'t [TabEntry],
    name: &str,
) -> Result<&'t TabEntry, CliError> {
    entries.iter().find(|e| e.name == name).ok_or_else(|| {
        CliError::msg(
            format!("{}: no entry named {name}", path.display()),
            BAD_INPUT,
        )
    })
}

/// `mount --all` and `mount --entry NAME`: each entry as `tcvault mount` with the entry's
/// settings (the command line's other options apply to all), reported by name.
fn mount_table(a: &MountArgs) -> Result<(), CliError> {
    let (path, entries) = read_table(a.table.as_deref())?;
    let chosen: Vec<&TabEntry> = match &a.entry {
        Some(name) => vec![find_entry(&path, &entries, name)?],
        None => entries.iter().filter(|e| !e.noauto).collect(),
    };
    for_each_entry(&path, &chosen, a.json, "mounted", |e| {
        if let Some(st) = m::state::find_volume(&e.volume).and_then(|x| x.state) {
            if a.json {
                return Ok(Some(state_json(&st)));
            }
            if super::print::quiet() {
                return Ok(None);
            }
            outln!(
                "{}: already mounted{} (slot {}); left alone",
                e.name,
                st.mountpoint
                    .as_ref()
                    .map(|p| format!(" at {}", p.display()))
                    .unwrap_or_default(),
                st.slot
            );
            return Ok(None);
        }
        let st = entry_args(a, e).and_then(|args| mount_one(&args, &e.volume))?;
        if a.json {
            return Ok(Some(state_json(&st)));
        }
        print_mounted(&st, Some(&e.name))?;
        Ok(None)
    })
}

/// Runs `act` on each chosen table entry, the shared part of `mount` and `unmount` from the
/// table: `act` says its own line, or gives its JSON object under `--json` (printed together
/// as one array at the end). With one entry its error is the command's; with several, each
/// failure is reported under the entry's name and the rest go on.
fn for_each_entry(
    path: &Path,
    chosen: &[&TabEntry],
    json: bool,
    done_word: &str,
    mut act: impl FnMut(&TabEntry) -> Result<Option<serde_json::Value>, CliError>,
) -> Result<(), CliError> {
    let mut failures = 0;
    let mut done = Vec::new();
    for e in chosen {
        match act(e) {
            Ok(Some(v)) => done.push(v),
            Ok(None) => {}
            Err(err) if chosen.len() == 1 => return Err(err),
            Err(err) => {
                errln!("tcvault: {}:", e.name);
                err.report();
                failures += 1;
            }
        }
    }
    if json {
        print_json(&serde_json::Value::Array(done))?;
    }
    if failures == 0 {
        Ok(())
    } else {
        Err(CliError::msg(
            format!(
                "{failures} of {} entries of {} were not {done_word}",
                chosen.len(),
                path.display()
            ),
            FAILED,
        ))
    }
}

/// The arguments of one table entry's mount.
fn entry_args(a: &MountArgs, e: &TabEntry) -> Result<MountArgs, CliError> {
    let prf = match &e.prf {
        None => a.unlock.prf,
        Some(p) => Some(<PrfArg as clap::ValueEnum>::from_str(p, true).map_err(|_| {
            CliError::msg(
                format!("{}: prf={p}: not a PRF tcvault knows", e.name),
                USAGE,
            )
            .hint("use sha512, sha256, blake2s, whirlpool, streebog, ripemd160, sha1 or argon2id")
        })?),
    };
    let mut args = a.clone();
    args.volume = Some(e.volume.clone());
    args.mountpoint.clone_from(&e.mountpoint);
    args.read_only = a.read_only || e.read_only;
    args.unlock.password_file = e
        .password_file
        .clone()
        .or_else(|| a.unlock.password_file.clone());
    args.unlock.keyfiles = [a.unlock.keyfiles.clone(), e.keyfiles.clone()].concat();
    args.unlock.pim = e.pim.or(a.unlock.pim);
    args.unlock.prf = prf;
    args.all = false;
    args.entry = None;
    Ok(args)
}

fn mount_one(a: &MountArgs, volume: &Path) -> Result<m::MountState, CliError> {
    super::escrow::check_allowed(&a.escrow)?;
    let user_mode = a.user_mode || !m::running_as_root();
    if user_mode {
        m::check_user_mode().map_err(cli_err)?;
        if a.protect_hidden {
            return Err(CliError::msg(m::service::USER_MODE_NO_PROTECTION, USAGE)
                .hint("run the mount with sudo"));
        }
    } else if !Path::new("/dev/fuse").exists() {
        return Err(
            CliError::msg("/dev/fuse is missing: this kernel has no FUSE", FAILED)
                .hint("load it with `modprobe fuse`"),
        );
    }
    if let Some(e) = m::state::find_volume(volume) {
        return Err(cli_err(MountError::AlreadyMounted {
            volume: volume.to_path_buf(),
            slot: e.slot,
            mountpoint: e.state.and_then(|s| s.mountpoint),
        }));
    }
    if let Some(n) = a.slot {
        check_slot(n)?;
    }
    let vol = open_volume(volume, &a.unlock)?;
    super::escrow::offer(volume, vol.unlocked(), &a.escrow)?;
    let mut req = MountRequest {
        mountpoint: a.mountpoint.clone(),
        read_only: a.read_only,
        no_filesystem: a.no_filesystem,
        mount_options: a.mount_options.clone(),
        uid: a.uid,
        gid: a.gid,
        umask: a.umask,
        slot: a.slot,
        protect: None,
        default_owner: false,
        user_mode,
    };
    if req.uid.is_none() && req.gid.is_none() && !a.no_filesystem && !user_mode {
        req.uid = sudo_id("SUDO_UID");
        req.gid = sudo_id("SUDO_GID");
        req.default_owner = true;
    }
    if a.protect_hidden {
        if vol.unlocked().slot.is_hidden() {
            return Err(CliError::msg(
                "the password given opens the hidden volume itself; --protect-hidden takes the \
                 outer volume's password first, then the hidden volume's",
                USAGE,
            ));
        }
        let hidden_args = UnlockArgs {
            password_file: a.hidden_password_file.clone(),
            keyfiles: a.hidden_keyfiles.clone(),
            pim: a.hidden_pim,
            hidden: true,
            prf: None,
            cipher: None,
            ..a.unlock.clone()
        };
        errln!("tcvault: now the hidden volume's password, for its protection");
        let hidden = open_volume(volume, &hidden_args).map_err(|e| {
            e.hint(
                "--protect-hidden needs the hidden volume's own password (and keyfiles/PIM: \
                 --hidden-password-file, --hidden-keyfile, --hidden-pim)",
            )
        })?;
        let area = hidden.data_area();
        req.protect = Some(area.start..area.start.saturating_add(area.len));
    }
    if !a.read_only {
        warn_if_short_of_space(vol.host());
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::msg(format!("cannot find the tcvault program: {e}"), FAILED))?;
    let st = m::start(&vol, &req, &exe).map_err(cli_err)?;
    drop(vol);
    Ok(st)
}

/// The JSON of a mount: the object `list --json` gives for it.
fn state_json(st: &m::MountState) -> serde_json::Value {
    let mut v = serde_json::to_value(st).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.insert("alive".into(), json!(true));
    }
    v
}

fn print_json(v: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "null".into());
    writeln!(io::stdout().lock(), "{text}")
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}"), FAILED))
}

/// Says what was mounted (`name`: the table entry's).
fn print_mounted(st: &m::MountState, name: Option<&str>) -> Result<(), CliError> {
    detailln!(
        "{} volume, {} with {}; served by process {} from {}{}",
        st.kind,
        st.chain,
        st.prf,
        st.pid,
        st.fuse_dir.display(),
        if st.loop_direct_io {
            "; loop device with direct I/O"
        } else {
            ""
        }
    );
    // Under -q the report of a mount goes; the device of --no-filesystem is what was asked for.
    if super::print::quiet() && st.mountpoint.is_some() {
        return Ok(());
    }
    let dev = st
        .device
        .as_deref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut out = io::stdout().lock();
    let who = name.map(|n| format!("{n}: ")).unwrap_or_default();
    let r = match &st.mountpoint {
        Some(mp) => writeln!(
            out,
            "{who}{} mounted at {} (slot {}, {} via {}, {}{}{})",
            st.volume.display(),
            mp.display(),
            st.slot,
            st.filesystem.as_deref().unwrap_or("?"),
            st.driver.as_deref().unwrap_or("?"),
            dev,
            if st.read_only { ", read-only" } else { "" },
            if st.protect_hidden {
                ", hidden volume protected"
            } else {
                ""
            },
        ),
        None => writeln!(out, "{who}{dev}"),
    };
    r.map_err(|e| CliError::msg(format!("cannot write to standard output: {e}"), FAILED))
}

/// `--slot N` must name a free slot: said before the password is asked for. (The service
/// claims the slot atomically; this only gives the common case a clear message early.)
fn check_slot(n: u32) -> Result<(), CliError> {
    if n == 0 || n > m::state::MAX_SLOT {
        return Err(CliError::msg(
            format!("--slot must be 1 to {}", m::state::MAX_SLOT),
            USAGE,
        ));
    }
    let Some(e) = m::list().into_iter().find(|e| e.slot == n) else {
        return Ok(());
    };
    let holder = e.state.as_ref().map_or_else(
        || "a volume being mounted or a crashed service".to_string(),
        |s| s.volume.display().to_string(),
    );
    Err(if e.alive {
        CliError::msg(format!("slot {n} is in use by {holder}"), BAD_INPUT).hint(
            "`tcvault list` shows what is mounted; without --slot the lowest free slot is used",
        )
    } else {
        CliError::msg(
            format!("slot {n} still holds what a stopped service left ({holder})"),
            BAD_INPUT,
        )
        .hint(format!("`tcvault unmount {n}` cleans it up"))
    })
}

fn describe(e: &Entry) -> String {
    e.state
        .as_ref()
        .and_then(|s| s.mountpoint.as_ref().or(s.device.as_ref()))
        .map_or_else(|| format!("slot {}", e.slot), |p| p.display().to_string())
}

pub fn unmount(a: &UnmountArgs) -> Result<(), CliError> {
    if a.entry.is_some() || (a.all && a.table.is_some()) {
        return unmount_table(a);
    }
    let entries: Vec<Entry> = if a.all {
        m::list()
    } else {
        let mut v = Vec::new();
        for t in &a.targets {
            v.push(m::service::find(t).ok_or_else(|| cli_err(MountError::NotMounted(t.clone())))?);
        }
        v
    };
    let mut first_err = None;
    let mut done = Vec::new();
    for e in &entries {
        match m::unmount(e, a.force) {
            Ok(o) if a.json => done.push(unmounted_json(e, &o, None)),
            Ok(_) if super::print::quiet() => {}
            Ok(o) => {
                let what = describe(e);
                if o.was_stale {
                    outln!("cleaned up {what} (its service had stopped)");
                } else {
                    outln!("unmounted {what}");
                }
            }
            Err(err) => {
                let c = cli_err(err);
                if a.all {
                    c.report();
                }
                first_err.get_or_insert(c);
            }
        }
    }
    if a.json {
        print_json(&serde_json::Value::Array(done))?;
    }
    match first_err {
        Some(e) if !a.all || entries.len() == 1 => Err(e),
        Some(_) => Err(CliError::msg("some volumes could not be unmounted", FAILED)),
        None => Ok(()),
    }
}

/// `unmount --entry NAME` and `unmount --all --table FILE`: the table's entries that are
/// mounted; one that is not is said and is no error.
fn unmount_table(a: &UnmountArgs) -> Result<(), CliError> {
    let (path, entries) = read_table(a.table.as_deref())?;
    let chosen: Vec<&TabEntry> = match &a.entry {
        Some(name) => vec![find_entry(&path, &entries, name)?],
        None => entries.iter().collect(),
    };
    for_each_entry(&path, &chosen, a.json, "unmounted", |e| {
        let Some(found) = m::state::find_volume(&e.volume) else {
            if a.entry.is_some() && !a.json && !super::print::quiet() {
                outln!("{}: not mounted", e.name);
            }
            return Ok(None);
        };
        let o = m::unmount(&found, a.force).map_err(cli_err)?;
        if a.json {
            return Ok(Some(unmounted_json(&found, &o, Some(&e.name))));
        }
        if !super::print::quiet() {
            outln!("{}: unmounted {}", e.name, describe(&found));
        }
        Ok(None)
    })
}

pub fn list(a: &ListArgs) -> Result<(), CliError> {
    let entries = m::list();
    let mut out = String::new();
    if a.json {
        let arr: Vec<_> = entries
            .iter()
            .map(|e| match &e.state {
                Some(s) => {
                    let mut v = serde_json::to_value(s).unwrap_or_else(|_| json!({}));
                    if let Some(o) = v.as_object_mut() {
                        o.insert("alive".into(), json!(e.alive));
                    }
                    v
                }
                None => json!({"slot": e.slot, "alive": e.alive, "phase": "unknown"}),
            })
            .collect();
        out = serde_json::to_string_pretty(&arr).unwrap_or_else(|_| "[]".into());
        out.push('\n');
    } else if !entries.is_empty() {
        let mut rows: Vec<Vec<String>> = vec![
            [
                "SLOT",
                "VOLUME",
                "MOUNTPOINT",
                "DEVICE",
                "FS",
                "CHAIN",
                "PRF",
                "TYPE",
                "MODE",
                "PROTECTION",
            ]
            .map(String::from)
            .to_vec(),
        ];
        let mut notes = Vec::new();
        for e in &entries {
            let Some(s) = &e.state else {
                rows.push(vec![
                    e.slot.to_string(),
                    "?".into(),
                    "(starting or crashed)".into(),
                ]);
                continue;
            };
            let protection = match (s.protect_hidden, s.protection_tripped) {
                (false, _) => "-",
                (true, false) => "on",
                (true, true) => "TRIPPED (read-only)",
            };
            let path = |p: &Option<std::path::PathBuf>| {
                p.as_ref().map_or("-".into(), |p| p.display().to_string())
            };
            rows.push(vec![
                s.slot.to_string(),
                s.volume.display().to_string(),
                path(&s.mountpoint),
                path(&s.device),
                s.filesystem.clone().unwrap_or_else(|| "-".into()),
                s.chain.clone(),
                s.prf.clone(),
                s.kind.clone(),
                if s.read_only || s.protection_tripped {
                    "ro"
                } else {
                    "rw"
                }
                .into(),
                protection.into(),
            ]);
            if !e.alive {
                notes.push(format!(
                    "slot {}: [service gone: `tcvault unmount {}` cleans up]",
                    s.slot, s.slot
                ));
            }
        }
        out.push_str(&aligned(&rows));
        for n in notes {
            out.push_str(&n);
            out.push('\n');
        }
        for s in entries.iter().filter_map(|e| e.state.as_ref()) {
            if s.protection_tripped {
                out.push_str(&format!(
                    "slot {}: hidden-volume protection tripped: a write that would have \
                     overwritten the hidden volume was refused, and every write since fails; \
                     the outer volume's last writes may be lost. Unmount it, then check the \
                     outer filesystem.\n",
                    s.slot
                ));
            }
        }
    }
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}"), FAILED))
}

/// What `unmount --json` says of one unmount.
fn unmounted_json(e: &Entry, o: &m::UnmountOutcome, name: Option<&str>) -> serde_json::Value {
    json!({
        "slot": o.slot,
        "volume": o.volume,
        "mountpoint": e.state.as_ref().and_then(|s| s.mountpoint.clone()),
        "was_stale": o.was_stale,
        "entry": name,
    })
}

/// `rows` as columns padded to their widest cell (in characters), two spaces apart; the last
/// column is not padded.
fn aligned(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter(|r| r.len() > c + 1)
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 < r.len() {
                line.push_str(&format!("{cell:<w$}  ", w = width[c]));
            } else {
                line.push_str(cell);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The hidden `__mount-service` subcommand: standard input must be the socket `mount` passes.
pub fn service() -> ExitCode {
    let sock = io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .filter(|fd| {
            std::fs::metadata(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(fd)
            ))
            .is_ok_and(|m| std::os::unix::fs::FileTypeExt::is_socket(&m.file_type()))
        })
        .map(UnixStream::from);
    match sock {
        Some(s) => ExitCode::from(u8::try_from(m::service::serve(s)).unwrap_or(1)),
        None => {
            errln!("tcvault: this internal command is started by `tcvault mount`");
            ExitCode::from(USAGE)
        }
    }
}
