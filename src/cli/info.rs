//! `tcvault info`: what a volume's header says.

use std::io::{self, Write};

use serde_json::json;
use tcvault::header::format::{FLAG_IN_PLACE, FLAG_SYSTEM};
use tcvault::header::layout::DataArea;
use tcvault::header::{HostKind, Kdf};
use tcvault::volume::truncated::{ReadableVolume, Truncation};

use super::args::InfoArgs;
use super::exit::{CliError, FAILED};
use super::unlock::open_readable;

pub fn run(a: &InfoArgs) -> Result<(), CliError> {
    let vol = open_readable(&a.volume, &a.unlock)?;
    if let Some(t) = vol.truncation() {
        warn_truncated(&vol, t);
    }
    if a.show_keys {
        errln!(
            "tcvault: warning: the master keys below decrypt this volume for as long as it \
             exists, whatever its password becomes; do not store or share them"
        );
    }
    let out = if a.json {
        json_report(&vol, a.show_keys)
    } else {
        text_report(&vol, a.show_keys)
    };
    let mut stdout = io::stdout().lock();
    stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| CliError::msg(format!("cannot write to standard output: {e}"), FAILED))
}

/// The header opened, but the host ends before the volume does: say what that means.
fn warn_truncated(vol: &ReadableVolume, t: Truncation) {
    let path = vol.host().path().display();
    let rescue = if t.sectors_missing() > 0 {
        "; `tcvault decrypt --partial` writes the sectors that are present"
    } else {
        ""
    };
    errln!(
        "tcvault: warning: {path}: {t}; it cannot be mounted and its header cannot be \
         changed{rescue}"
    );
}

fn volume_type(vol: &ReadableVolume) -> &'static str {
    let u = vol.unlocked();
    if u.header.is_system() {
        "system"
    } else if u.slot.is_hidden() || u.header.is_hidden() {
        "hidden"
    } else {
        "normal"
    }
}

fn host_kind(vol: &ReadableVolume) -> &'static str {
    match vol.host().kind() {
        HostKind::Volume if vol.host().is_block_device() => "block-device",
        HostKind::Volume => "file",
        HostKind::BackupFile => "header-backup",
        HostKind::LegacyBackupFile => "legacy-header-backup",
    }
}

fn flag_names(flags: u32) -> Vec<&'static str> {
    let mut v = Vec::new();
    if flags & FLAG_SYSTEM != 0 {
        v.push("system-encryption");
    }
    if flags & FLAG_IN_PLACE != 0 {
        v.push("in-place-encryption");
    }
    v
}

/// The used part of the key area in hex: the cipher keys and the secondary keys (XTS: the
/// primary half and the tweak half; legacy modes: the keys after the first 32 bytes, and those
/// 32 bytes, the LRW tweak key or CBC IV seed).
fn key_halves(vol: &ReadableVolume) -> (String, String) {
    let u = vol.unlocked();
    let len = u.scheme.key_material_len();
    let keys = &u.header.key_area.expose()[..len];
    if u.scheme.is_legacy() {
        (hex(&keys[32..]), hex(&keys[..32]))
    } else {
        (hex(&keys[..len / 2]), hex(&keys[len / 2..]))
    }
}

/// `legacy` for the layout of TrueCrypt before 6.0, `current` otherwise.
fn layout(vol: &ReadableVolume) -> &'static str {
    if DataArea::is_legacy_layout(&vol.unlocked().header) {
        "legacy"
    } else {
        "current"
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn json_report(vol: &ReadableVolume, show_keys: bool) -> String {
    let u = vol.unlocked();
    let h = &u.header;
    let (iterations, argon2) = match u.kdf {
        Kdf::Pbkdf2 { iterations, .. } => (json!(iterations), json!(null)),
        Kdf::Argon2id(p) => (
            json!(null),
            json!({"memory_kib": p.memory_kib, "passes": p.passes, "parallelism": p.parallelism}),
        ),
    };
    let mut v = json!({
        "volume": vol.host().path().display().to_string(),
        "host_kind": host_kind(vol),
        "host_size": vol.host().size(),
        "family": u.family().id(),
        "type": volume_type(vol),
        "header_slot": u.slot.id(),
        "prf": u.kdf.prf().id(),
        "kdf": u.kdf.prf().display_name(),
        "iterations": iterations,
        "argon2": argon2,
        "cipher": u.scheme.name(),
        "mode": u.scheme.mode_name(),
        "layout": layout(vol),
        "data_area_start": vol.data_area().start,
        "data_area_length": vol.data_area().len,
        "header_version": h.version,
        "min_program_version": format!("{:#06x}", h.min_program_version),
        "sector_size": h.sector_size,
        "volume_size": h.volume_size,
        "hidden_volume_size": h.hidden_volume_size,
        "encrypted_area_start": h.encrypted_area_start,
        "encrypted_area_length": h.encrypted_area_length,
        "flags": h.flags,
        "flag_names": flag_names(h.flags),
        "truncation": vol.truncation().map(|t| json!({
            "host_size": t.host_size,
            "volume_end": t.volume_end,
            "data_present": t.data_present,
            "sectors": t.sectors(),
            "sectors_present": t.sectors_present(),
            "sectors_missing": t.sectors_missing(),
        })),
    });
    if show_keys {
        let (p, s) = key_halves(vol);
        v["master_key_primary_hex"] = json!(p);
        v["master_key_secondary_hex"] = json!(s);
    }
    let mut s = v.to_string();
    s.push('\n');
    s
}

fn text_report(vol: &ReadableVolume, show_keys: bool) -> String {
    let u = vol.unlocked();
    let h = &u.header;
    let flags = flag_names(h.flags);
    let mut rows: Vec<(&str, String)> = vec![
        ("Volume", vol.host().path().display().to_string()),
        (
            "Host",
            format!("{} ({})", host_kind(vol), size(vol.host().size())),
        ),
        ("Format", u.family().to_string()),
        ("Type", volume_type(vol).to_string()),
        ("Header slot", u.slot.to_string()),
        (
            "PRF",
            format!("{} ({})", u.kdf.prf().display_name(), u.kdf.cost_summary()),
        ),
        ("Cipher", u.scheme.name()),
        ("Mode", u.scheme.mode_name().to_string()),
        (
            "Layout",
            match layout(vol) {
                "legacy" => "TrueCrypt before 6.0 (no embedded backup headers)".to_string(),
                _ => "current".to_string(),
            },
        ),
        ("Header version", h.version.to_string()),
        (
            "Min. program version",
            format!("{:#06x}", h.min_program_version),
        ),
        ("Sector size", format!("{} bytes", h.sector_size)),
        ("Volume size", size(h.volume_size)),
        ("Hidden volume size", size(h.hidden_volume_size)),
        (
            "Encrypted area start",
            format!("byte {}", h.encrypted_area_start),
        ),
        ("Encrypted area length", size(h.encrypted_area_length)),
        (
            "Data area",
            if vol.host().kind() == HostKind::Volume {
                format!(
                    "{} from byte {}",
                    size(vol.data_area().len),
                    vol.data_area().start
                )
            } else {
                "none (a header backup file)".to_string()
            },
        ),
        (
            "Flags",
            if flags.is_empty() {
                "none".to_string()
            } else {
                flags.join(", ")
            },
        ),
    ];
    if let Some(t) = vol.truncation() {
        rows.push((
            "Cut short",
            format!(
                "host ends at byte {} of {}; {} of {} sectors missing",
                t.host_size,
                t.volume_end,
                t.sectors_missing(),
                t.sectors()
            ),
        ));
    }
    if show_keys {
        let (p, s) = key_halves(vol);
        rows.push(("Master key (primary)", p));
        rows.push((
            match u.scheme.mode_name() {
                "LRW" => "Master key (LRW tweak)",
                "CBC" => "Master key (CBC IV seed)",
                _ => "Master key (XTS tweak)",
            },
            s,
        ));
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:<width$}  {v}\n", format!("{k}:"), width = width + 1))
        .collect()
}

/// `786432 bytes (768 KiB)`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    let mut v = bytes as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v.fract() == 0.0 {
        format!("{bytes} bytes ({v:.0} {unit})")
    } else {
        format!("{bytes} bytes ({v:.1} {unit})")
    }
}
