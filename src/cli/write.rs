//! The commands that write: `create`, `change-password`, `backup-header`, `restore-header`.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use indicatif::{ProgressBar, ProgressStyle};
use tcvault::crypto::kdf::Prf;
use tcvault::header::layout::DataArea;
use tcvault::header::seal::Protection;
use tcvault::header::{Family, SealError, Slot};
use tcvault::volume::write::{
    self, BackupSource, CreateTarget, NewProtection, NewVolume, WriteError,
};
use tcvault::volume::{Host, SlotChoice, Volume};

use super::args::{
    BackupHeaderArgs, ChangePasswordArgs, CreateArgs, FilesystemArg, FormatArg, PrfArg,
    RestoreHeaderArgs,
};
use super::exit::{BAD_INPUT, CliError, DAMAGED, FAILED, INTERRUPTED, USAGE};
use super::unlock::{chain_of, credentials, open_for_read, open_for_write, prf_of, unlock_inputs};

impl From<WriteError> for CliError {
    fn from(e: WriteError) -> Self {
        let (code, hint) = match &e {
            WriteError::Volume(_) => {
                return match e {
                    WriteError::Volume(v) => CliError::from(v),
                    _ => CliError::new(e, FAILED),
                };
            }
            WriteError::Seal(SealError::Verify) | WriteError::Random(_) => (FAILED, None),
            WriteError::Seal(_) => (USAGE, None),
            WriteError::Exists { .. } => (BAD_INPUT, Some("add --force to replace it")),
            WriteError::KeepExists { .. } => (
                BAD_INPUT,
                Some("name a file that does not exist yet with --keep-old-header"),
            ),
            WriteError::BadSize { .. } => (BAD_INPUT, None),
            WriteError::NoRoom { .. } => (
                FAILED,
                Some("make room, give a smaller --size, or --quick for a sparse container"),
            ),
            WriteError::DeviceBusy { .. } => (BAD_INPUT, Some("unmount it first")),
            WriteError::DeviceHasData { .. } => (
                BAD_INPUT,
                Some("add --force if its contents may be destroyed"),
            ),
            WriteError::Cancelled(_) => (INTERRUPTED, None),
            WriteError::NotABackup { .. } => (BAD_INPUT, None),
            WriteError::WrongVolume { .. } => (
                BAD_INPUT,
                Some("check that the backup belongs to this volume; --force restores anyway"),
            ),
            WriteError::WrongRole { .. } | WriteError::Unsupported { .. } => (BAD_INPUT, None),
            WriteError::NoDirectory { .. } => (BAD_INPUT, Some("create the folder first")),
            WriteError::UnsafePlace { .. } => (
                DAMAGED,
                Some(
                    "nothing was written; check that the volume file is complete (compare its \
                     size with the original)",
                ),
            ),
            WriteError::Io { .. } => (FAILED, None),
        };
        let c = CliError::new(e, code);
        match hint {
            Some(h) => c.hint(h),
            None => c,
        }
    }
}

/// A flag raised by Ctrl-C (SIGINT) or SIGTERM, so long writes stop between two steps.
fn cancel_flag() -> Arc<AtomicBool> {
    super::interrupt_cancels();
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals; these two are allowed.
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

fn progress_bar(what: &str) -> ProgressBar {
    if !super::print::progress_shown() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(&format!(
        "{what} {{bar:40}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"
    )) {
        b.set_style(style);
    }
    b
}

/// Runs a fill with a progress bar on a terminal and Ctrl-C (or SIGTERM) as a clean cancel.
fn with_fill_progress<T>(
    fill: impl FnOnce(&mut dyn FnMut(u64, u64), &AtomicBool) -> Result<T, WriteError>,
) -> Result<T, WriteError> {
    let cancel = cancel_flag();
    let bar = progress_bar("filling");
    let mut progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let result = fill(&mut progress, &cancel);
    bar.finish_and_clear();
    result
}

fn family_of(f: FormatArg) -> Family {
    match f {
        FormatArg::Veracrypt => Family::VeraCrypt,
        FormatArg::Truecrypt => Family::TrueCrypt,
    }
}

/// PRFs `create` offers: VeraCrypt 1.26's set, and TrueCrypt 7's.
fn check_create_prf(family: Family, prf: PrfArg) -> Result<Prf, CliError> {
    let ok = match family {
        Family::VeraCrypt => !matches!(prf, PrfArg::Ripemd160 | PrfArg::Sha1),
        Family::TrueCrypt => matches!(prf, PrfArg::Sha512 | PrfArg::Whirlpool | PrfArg::Ripemd160),
    };
    if !ok {
        return Err(CliError::msg(
            format!(
                "{} volumes are not created with {}",
                family.id(),
                prf_of(prf).display_name()
            ),
            USAGE,
        )
        .hint(match family {
            Family::VeraCrypt => "use sha512, sha256, blake2s, whirlpool, streebog or argon2id",
            Family::TrueCrypt => "use sha512, whirlpool or ripemd160",
        }));
    }
    Ok(prf_of(prf))
}

pub fn create(a: &CreateArgs) -> Result<(), CliError> {
    super::escrow::check_allowed(&a.escrow)?;
    if a.hidden {
        let size = a
            .size
            .ok_or_else(|| CliError::msg("--hidden needs --size", USAGE))?;
        let a = &with_filesystem(a)?;
        return create_hidden(a, size);
    }
    let family = family_of(a.format.unwrap_or_default());
    let prf = check_create_prf(family, a.prf)?;
    let pim = a.pim.unwrap_or(0);
    let prot = Protection::new(family, prf, pim, chain_of(a.cipher)).map_err(WriteError::from)?;
    let is_device = std::fs::metadata(&a.volume).is_ok_and(|m| {
        use std::os::unix::fs::FileTypeExt;
        m.file_type().is_block_device()
    });
    let target = if is_device {
        if a.size.is_some() {
            return Err(CliError::msg(
                "--size applies to file containers; a device is used whole",
                USAGE,
            ));
        }
        CreateTarget::Device {
            path: &a.volume,
            force: a.force,
        }
    } else {
        let size = a.size.ok_or_else(|| {
            CliError::msg("a new file container needs --size", USAGE)
                .hint("e.g. --size 500M or --size 2G")
        })?;
        CreateTarget::File {
            path: &a.volume,
            size,
            force: a.force,
        }
    };
    let resolved = with_filesystem(a)?;
    let a = &resolved;
    if let CreateTarget::File { size, .. } = target {
        write::check_volume_size(size, a.sector_size)?;
        if a.sector_size != 512 {
            return Err(CliError::msg("file containers use 512-byte sectors", USAGE));
        }
        check_filesystem(a, write::data_len_of(size))?;
        if !a.quick {
            write::check_room(&a.volume, size)?;
        }
    }
    let creds = credentials(
        a.password_file.as_deref(),
        &a.keyfiles,
        a.pim,
        &format!("New password for {}", a.volume.display()),
        true,
    )?;
    let spec = NewVolume {
        prot,
        sector_size: a.sector_size,
        quick: a.quick,
    };
    with_fill_progress(|progress, cancel| write::create(target, &spec, &creds, progress, cancel))?;
    noteln!(
        "Created {} ({}, {}, {}).",
        a.volume.display(),
        family.id(),
        prot.scheme.name(),
        prot.kdf.prf().display_name()
    );
    if a.quick
        && let Ok(host) = tcvault::volume::Host::open(&a.volume)
    {
        super::unlock::warn_if_short_of_space(&host);
    }
    // Under the policy `require` an escrow that failed fails the command, after the volume
    // is finished (it is kept, and said to be not escrowed).
    let escrowed = super::escrow::offer_new(&a.volume, &creds, false, &prot.only(), &a.escrow);
    make_filesystem(a, &creds, prot, SlotChoice::default())?;
    escrowed.map_err(|e| e.after(format!("{} was created", a.volume.display())))?;
    if a.json {
        print_created(a, family, prot, "normal");
    }
    Ok(())
}

/// `create --json`: the new volume's settings as one object.
fn print_created(a: &CreateArgs, family: Family, prot: Protection, kind: &str) {
    let size = std::fs::metadata(&a.volume).map(|m| m.len()).ok();
    let v = serde_json::json!({
        "volume": a.volume,
        "type": kind,
        "format": family.id(),
        "cipher": prot.scheme.name(),
        "prf": prot.kdf.prf().id(),
        "pim": a.pim.unwrap_or(0),
        "size": size,
        "filesystem": format!("{:?}", chosen(a)).to_lowercase(),
    });
    outln!("{v}");
}

/// `--filesystem`: opens the new volume (normal or hidden) and runs mkfs on it through the
/// mount path.
#[cfg(not(feature = "mount"))]
fn make_filesystem(
    _: &CreateArgs,
    _: &tcvault::header::Credentials,
    _: Protection,
    _: SlotChoice,
) -> Result<(), CliError> {
    // `create` refuses --filesystem first in a build without mounting.
    Ok(())
}

/// `a` with its filesystem settled: `--filesystem` as given, or asked for on a terminal
/// ([`ask_filesystem`]), or `none`. Then, before any password and the fill (which may take
/// minutes): a build without mounting refuses a filesystem, and a filesystem made without
/// root needs what user mode needs.
fn with_filesystem(a: &CreateArgs) -> Result<CreateArgs, CliError> {
    let mut a = a.clone();
    if a.filesystem.is_none() {
        let asked = cfg!(feature = "mount")
            && !a.json
            && std::io::IsTerminal::is_terminal(&std::io::stdin())
            && std::io::IsTerminal::is_terminal(&std::io::stderr());
        a.filesystem = Some(if asked {
            ask_filesystem(a.hidden)?
        } else {
            FilesystemArg::None
        });
    }
    if chosen(&a) == FilesystemArg::None {
        return Ok(a);
    }
    if !cfg!(feature = "mount") {
        return Err(super::no_mount_support());
    }
    #[cfg(feature = "mount")]
    if !tcvault::mount::running_as_root() {
        tcvault::mount::check_user_mode().map_err(super::mount::cli_err)?;
    }
    Ok(a)
}

/// The filesystem of a settled `a` ([`with_filesystem`]).
fn chosen(a: &CreateArgs) -> FilesystemArg {
    a.filesystem.unwrap_or(FilesystemArg::None)
}

/// Asks on the terminal which filesystem to make, offering ext4 (or fat where mkfs.ext4 is
/// missing, or none where neither mkfs is). An empty answer takes the offer; a wrong one is
/// asked again, up to [`TRIES`](super::unlock::TRIES) times.
fn ask_filesystem(hidden: bool) -> Result<FilesystemArg, CliError> {
    #[cfg(feature = "mount")]
    let have = |p: &str| tcvault::mount::fs::find_program(p).is_some();
    #[cfg(not(feature = "mount"))]
    let have = |_: &str| false;
    let offer = if have("mkfs.ext4") {
        FilesystemArg::Ext4
    } else if have("mkfs.fat") {
        FilesystemArg::Fat
    } else {
        FilesystemArg::None
    };
    let name = |f: FilesystemArg| format!("{f:?}").to_lowercase();
    let why = if hidden {
        ""
    } else {
        " (fat or exfat to use it on Windows or macOS too; fat for an outer volume that will \
         hold a hidden one: `create --hidden` needs a FAT outer volume)"
    };
    noteln!(
        "Filesystem for the new {}volume{why}:",
        if hidden { "hidden " } else { "" }
    );
    for _ in 0..super::unlock::TRIES {
        let line = super::prompt::ask_line(&format!(
            "ext4, xfs, btrfs, fat, exfat, ntfs or none [{}]: ",
            name(offer)
        ))
        .map_err(|e| CliError::msg(format!("cannot read the answer: {e}"), FAILED))?;
        if line.is_empty() {
            return Err(CliError::msg("no filesystem chosen (end of input)", USAGE)
                .hint("give --filesystem FS"));
        }
        let answer = line.trim();
        if answer.is_empty() {
            return Ok(offer);
        }
        match <FilesystemArg as clap::ValueEnum>::from_str(answer, true) {
            Ok(f) => return Ok(f),
            Err(_) => errln!("tcvault: {answer}: not a filesystem tcvault makes"),
        }
    }
    Err(CliError::msg("no filesystem chosen", USAGE).hint("give --filesystem FS"))
}

/// The filesystem `--filesystem` asks for (`None`: none).
#[cfg(feature = "mount")]
fn fs_kind(f: FilesystemArg) -> Option<tcvault::mount::FsKind> {
    use tcvault::mount::FsKind;
    Some(match f {
        FilesystemArg::None => return None,
        FilesystemArg::Ext4 => FsKind::Ext4,
        FilesystemArg::Xfs => FsKind::Xfs,
        FilesystemArg::Btrfs => FsKind::Btrfs,
        FilesystemArg::Fat => FsKind::Fat,
        FilesystemArg::Exfat => FsKind::Exfat,
        FilesystemArg::Ntfs => FsKind::Ntfs,
    })
}

/// Before the password and the fill: `--filesystem`'s mkfs is installed and the data area of
/// `data_len` bytes is large enough for it.
#[cfg(feature = "mount")]
fn check_filesystem(a: &CreateArgs, data_len: u64) -> Result<(), CliError> {
    match fs_kind(chosen(a)) {
        Some(fs) => tcvault::mount::check_can_format(fs, data_len).map_err(super::mount::cli_err),
        None => Ok(()),
    }
}

#[cfg(not(feature = "mount"))]
fn check_filesystem(_: &CreateArgs, _: u64) -> Result<(), CliError> {
    Ok(())
}

/// `--filesystem`: opens the new volume (normal or hidden) and runs mkfs on it through the
/// mount path.
#[cfg(feature = "mount")]
fn make_filesystem(
    a: &CreateArgs,
    creds: &tcvault::header::Credentials,
    prot: Protection,
    slots: SlotChoice,
) -> Result<(), CliError> {
    let Some(fs) = fs_kind(chosen(a)) else {
        return Ok(());
    };
    let opts = prot.only();
    let vol = Volume::open(&a.volume, creds, slots, &opts)?;
    // Without root, through the FUSE file alone (no loop device).
    let user_mode = !tcvault::mount::running_as_root();
    tcvault::mount::format_volume(vol, fs, a.label.as_deref(), user_mode).map_err(|e| {
        CliError::new(e, FAILED).hint(
            "the volume was created without a filesystem; `tcvault mount --no-filesystem` gives \
             its device for mkfs",
        )
    })?;
    noteln!("Formatted it as {}.", fs.blkid_type());
    Ok(())
}

pub fn change_password(a: &ChangePasswordArgs) -> Result<(), CliError> {
    super::escrow::check_allowed(&a.escrow)?;
    let (vol, _old) = open_for_write(&a.volume, &a.unlock)?;
    let u = vol.unlocked();
    let family = if a.to_veracrypt {
        if u.family() == Family::VeraCrypt {
            return Err(CliError::msg(
                format!("{}: is a VeraCrypt volume already", a.volume.display()),
                USAGE,
            ));
        }
        if u.scheme.is_legacy() || DataArea::is_legacy_layout(&u.header) {
            return Err(CliError::msg(
                format!(
                    "{}: is a TrueCrypt volume from before 6.0 ({}, legacy layout); VeraCrypt \
                     needs XTS and the current layout, so --to-veracrypt would mean \
                     re-encrypting its data",
                    a.volume.display(),
                    u.scheme
                ),
                USAGE,
            )
            .hint("copy its files into a new volume made with `tcvault create` instead"));
        }
        Family::VeraCrypt
    } else {
        u.family()
    };
    let prf = match (a.new_prf, a.to_veracrypt) {
        (Some(p), _) => prf_of(p),
        // TrueCrypt's PRFs other than SHA-512 and Whirlpool have no VeraCrypt 1.26 form.
        (None, true) if !matches!(u.kdf.prf(), Prf::Sha512 | Prf::Whirlpool) => Prf::Sha512,
        (None, _) => u.kdf.prf(),
    };
    if u.scheme.is_legacy() && prf == Prf::Sha512 && u.kdf.prf() != Prf::Sha512 {
        errln!(
            "tcvault: warning: TrueCrypt before 5.0, which made this {} volume, does not know \
             SHA-512; after this change only TrueCrypt 5.0-7.1a, cryptsetup and tcvault open it",
            u.scheme.mode_name()
        );
    }
    let pim = a.new.new_pim.unwrap_or(0);
    if family == Family::TrueCrypt && pim != 0 {
        return Err(CliError::msg("TrueCrypt volumes take no PIM", USAGE)
            .hint("add --to-veracrypt to make it a VeraCrypt volume"));
    }
    let prot = Protection::for_scheme(family, prf, pim, u.scheme).map_err(WriteError::from)?;
    let creds = credentials(
        a.new.new_password_file.as_deref(),
        &a.new.new_keyfiles,
        a.new.new_pim,
        &format!("New password for {}", a.volume.display()),
        true,
    )?;
    let new = NewProtection {
        creds: &creds,
        prot,
    };
    // A legacy volume has one header and no embedded backup: unless told where, its old header
    // is kept next to the user (as restore-header does), so that a failed write loses nothing.
    let keep = match (&a.keep_old_header, write::is_legacy(&vol)) {
        (Some(k), _) => Some(k.clone()),
        (None, true) => Some(write::default_keep_path(&a.volume)),
        (None, false) => None,
    };
    write::change_password(&vol, &new, keep.as_deref())?;
    if let (None, Some(k)) = (&a.keep_old_header, &keep) {
        errln!(
            "Saved the previous header to {} (1,024-byte backup format): this legacy volume has \
             no embedded backup header. It opens with the old password; delete it once the new \
             one works.",
            k.display()
        );
    }
    // The escrow gets the header just written (its salt and derived key are on the volume
    // now), so that a header backup made from it proves the escrow packet at a restore.
    super::escrow::offer_new(
        &a.volume,
        &creds,
        u.header.is_hidden(),
        &prot.only(),
        &a.escrow,
    )
    .map_err(|e| e.after(format!("the header of {} was changed", a.volume.display())))?;
    noteln!(
        "Changed the {} header of {} ({}, {}).",
        if u.header.is_hidden() {
            "hidden volume's"
        } else {
            "volume's"
        },
        a.volume.display(),
        family.id(),
        prf.display_name()
    );
    Ok(())
}

pub fn backup_header(a: &BackupHeaderArgs) -> Result<(), CliError> {
    if a.raw {
        let host = Host::open(&a.volume)?;
        let bytes = write::raw_backup_bytes(&host)?;
        write::write_backup_file(&a.file, &bytes, a.force)?;
        noteln!(
            "Wrote {} ({} bytes: the normal and hidden header slots as they are on disk, still \
             encrypted; they open with the passwords the volume has now, or through escrow).",
            a.file.display(),
            bytes.len()
        );
        return Ok(());
    }
    if a.unlock.hidden || a.unlock.system {
        return Err(CliError::msg(
            "backup-header opens the normal header with the main options; give the hidden \
             volume's password with --hidden-password-file or --with-hidden",
            USAGE,
        ));
    }
    let (normal, _creds) = open_for_read(&a.volume, &a.unlock)?;
    let want_hidden = a.with_hidden
        || a.hidden_password_file.is_some()
        || !a.hidden_keyfiles.is_empty()
        || a.hidden_pim.is_some();
    let hidden = if want_hidden {
        let hc = credentials(
            a.hidden_password_file.as_deref(),
            &a.hidden_keyfiles,
            a.hidden_pim,
            &format!("Hidden volume's password for {}", a.volume.display()),
            false,
        )?;
        let hslots = SlotChoice {
            hidden: true,
            backup: a.unlock.backup_header,
            system: false,
        };
        let hopts = tcvault::header::UnlockOptions::default();
        let hv = Volume::open(&a.volume, &hc, hslots, &hopts)?;
        Some((hv, hc))
    } else {
        None
    };
    let bytes = write::backup_bytes(&normal, hidden.as_ref().map(|(v, c)| (v, c)), a.compact)?;
    write::write_backup_file(&a.file, &bytes, a.force)?;
    if !a.compact && write::is_legacy(&normal) {
        noteln!(
            "Note: {} uses the layout of TrueCrypt before 6.0, whose header backups are the \
             1,024-byte format; that is what was written.",
            a.volume.display()
        );
    }
    noteln!(
        "Wrote {} ({} bytes: normal header{}).",
        a.file.display(),
        bytes.len(),
        if hidden.is_some() {
            " and hidden header"
        } else {
            "; random in place of a hidden header"
        }
    );
    Ok(())
}

pub fn restore_header(a: &RestoreHeaderArgs) -> Result<(), CliError> {
    super::escrow::check_allowed(&a.escrow)?;
    let source = match &a.file {
        Some(f) => {
            let size = std::fs::metadata(f)
                .map_err(|e| CliError::msg(format!("{}: {e}", f.display()), BAD_INPUT))?
                .len();
            if size != 131_072 && size != 1_024 {
                return Err(WriteError::NotABackup {
                    path: f.clone(),
                    size,
                }
                .into());
            }
            BackupSource::File(f)
        }
        None => BackupSource::Embedded,
    };
    // Open the target read-only first, so a missing or unwritable volume is reported before
    // any password is asked for.
    Host::open(&a.volume)?;
    let (creds, opts, _) = unlock_inputs(a.file.as_deref().unwrap_or(&a.volume), &a.unlock)?;
    let keep = if a.no_keep_old_header {
        None
    } else {
        Some(
            a.keep_old_header
                .clone()
                .unwrap_or_else(|| write::default_keep_path(&a.volume)),
        )
    };
    let slot = write::restore_header(&a.volume, source, &creds, &opts, keep.as_deref(), a.force)?;
    super::escrow::offer_new(&a.volume, &creds, slot == Slot::Hidden, &opts, &a.escrow)
        .map_err(|e| e.after(format!("the header of {} was restored", a.volume.display())))?;
    if let Some(k) = &keep {
        errln!("Saved the previous header slots to {}.", k.display());
    }
    noteln!(
        "Restored the {} header of {}.",
        if slot == Slot::Hidden {
            "hidden volume's"
        } else {
            "normal"
        },
        a.volume.display()
    );
    Ok(())
}

fn create_hidden(a: &CreateArgs, size: u64) -> Result<(), CliError> {
    let outer_creds = credentials(
        a.outer_password_file.as_deref(),
        &a.outer_keyfiles,
        a.outer_pim,
        &format!("Outer volume's password for {}", a.volume.display()),
        false,
    )?;
    let host = Host::open_writable(&a.volume)?;
    let outer = Volume::open_on(
        host,
        &outer_creds,
        SlotChoice::default(),
        &tcvault::header::UnlockOptions::default(),
    )?;
    // A hidden header has its outer volume's format (the library refuses any other).
    let family = a.format.map_or(outer.unlocked().family(), family_of);
    let prf = check_create_prf(family, a.prf)?;
    let prot = Protection::new(family, prf, a.pim.unwrap_or(0), chain_of(a.cipher))
        .map_err(WriteError::from)?;
    let creds = credentials(
        a.password_file.as_deref(),
        &a.keyfiles,
        a.pim,
        &format!("New hidden volume's password for {}", a.volume.display()),
        true,
    )?;
    let spec = NewVolume {
        prot,
        sector_size: outer.unlocked().header.sector_size,
        quick: a.quick,
    };
    let (start, len) = with_fill_progress(|progress, cancel| {
        tcvault::volume::hidden::create_hidden(&outer, size, &spec, &creds, progress, cancel)
    })?;
    errln!(
        "Created a hidden volume of {len} bytes at byte {start} of {}. Writing more to the \
         outer volume than it holds now can overwrite it: mount the outer volume with hidden-volume \
         protection.",
        a.volume.display()
    );
    let hidden = SlotChoice {
        hidden: true,
        ..SlotChoice::default()
    };
    let escrowed = super::escrow::offer_new(&a.volume, &creds, true, &prot.only(), &a.escrow);
    make_filesystem(a, &creds, prot, hidden)?;
    escrowed.map_err(|e| {
        e.after(format!(
            "the hidden volume in {} was created",
            a.volume.display()
        ))
    })?;
    if a.json {
        print_created(a, prot.family, prot, "hidden");
    }
    Ok(())
}
