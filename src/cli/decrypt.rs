//! `tcvault decrypt`: stream the decrypted data area out, in large chunks, constant memory.

use std::fs::{self, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use tcvault::header::HostKind;
use tcvault::secret::SecretBytes;
use tcvault::volume::truncated::ReadableVolume;
use tcvault::volume::write;

use super::args::DecryptArgs;
use super::exit::{BAD_INPUT, CliError, FAILED};
use super::unlock::open_readable;

/// Bytes read, decrypted and written per step: large enough for the engine's threads and for
/// sequential device throughput, small enough to keep memory constant.
const CHUNK: usize = 4 * 1024 * 1024;

pub fn run(a: &DecryptArgs) -> Result<(), CliError> {
    let to_stdout = a.output.as_ref().is_none_or(|p| p.as_os_str() == "-");
    if to_stdout && io::stdout().is_terminal() {
        return Err(CliError::msg(
            "refusing to write decrypted binary data to a terminal",
            BAD_INPUT,
        )
        .hint("use -o FILE, or redirect standard output"));
    }
    let out_path = a.output.as_deref().filter(|_| !to_stdout);
    if let Some(p) = out_path {
        check_output(p, &a.volume, a.force)?;
    }
    let vol = open_readable(&a.volume, &a.unlock)?;
    if vol.host().kind() != HostKind::Volume {
        return Err(CliError::msg(
            format!(
                "{}: is a header backup file; it holds no data",
                a.volume.display()
            ),
            BAD_INPUT,
        ));
    }
    if !a.partial {
        vol.require_data().map_err(|e| {
            let (n, m) = vol
                .truncation()
                .map_or((0, 0), |t| (t.sectors_present(), t.sectors()));
            CliError::from(e).hint(format!(
                "the file may have been cut short by a copy: try the original, or add \
                 --partial to write the {n} of {m} sectors that are present"
            ))
        })?;
    }
    write_out(&vol, out_path)?;
    if let Some(t) = vol.truncation() {
        let done = if t.sectors_missing() == 0 {
            "the data written is complete".to_string()
        } else {
            format!(
                "wrote the {} sectors present ({} bytes) and nothing for the missing ones",
                t.sectors_present(),
                t.data_present
            )
        };
        errln!("tcvault: warning: {}: {t}; {done}", a.volume.display());
    }
    Ok(())
}

/// Writes the readable part of the data area to `out_path`, or to standard output.
fn write_out(vol: &ReadableVolume, out_path: Option<&Path>) -> Result<(), CliError> {
    match out_path {
        None => stream(vol, &mut io::stdout().lock()),
        Some(path) if is_special(path) => {
            // Devices and FIFOs are written in place, never replaced.
            let mut f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| out_err(path, e))?;
            stream(vol, &mut f)?;
            match f.sync_all() {
                // FIFOs and character devices cannot be synced; that is not an error.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
                r => r.map_err(|e| out_err(path, e)),
            }
        }
        Some(path) => write_file(vol, path),
    }
}

/// Refuses an output that already exists (unless `force`) and, always, one that is the volume
/// itself (the same device and inode, whatever the path says).
fn check_output(out: &Path, volume: &Path, force: bool) -> Result<(), CliError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(o) = fs::metadata(out) else {
        return Ok(());
    };
    let same = fs::metadata(volume).is_ok_and(|v| {
        (v.dev() == o.dev() && v.ino() == o.ino())
            || (is_block(&v) && is_block(&o) && v.rdev() == o.rdev())
    });
    if same {
        return Err(CliError::msg(
            format!(
                "{}: is the volume being decrypted; refusing to overwrite it",
                out.display()
            ),
            BAD_INPUT,
        ));
    }
    if !force && o.file_type().is_file() {
        return Err(
            CliError::msg(format!("{}: already exists", out.display()), BAD_INPUT)
                .hint("add --force to overwrite it"),
        );
    }
    Ok(())
}

/// Writes into a fresh temporary file beside `path` and renames it into place only when
/// complete ([`write::write_file_atomically`]), so an interrupted or failed run never leaves a
/// half-written file under the requested name and the plaintext is never readable by other
/// users. Whether an existing `path` may be replaced was settled by [`check_output`].
fn write_file(vol: &ReadableVolume, path: &Path) -> Result<(), CliError> {
    write::write_file_atomically(path, true, |f| stream(vol, f))
}

fn stream(vol: &ReadableVolume, out: &mut dyn Write) -> Result<(), CliError> {
    let total = vol.readable_len();
    let bar = if super::print::progress_shown() {
        let b = ProgressBar::new(total);
        if let Ok(style) =
            ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
        {
            b.set_style(style);
        }
        b
    } else {
        ProgressBar::hidden()
    };
    // The buffer holds plaintext: a secret buffer, wiped on every path out of here.
    let mut buf = SecretBytes::zeroed(CHUNK.min(usize::try_from(total).unwrap_or(CHUNK)));
    let mut pos = 0u64;
    while pos < total {
        let n = usize::try_from((total - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        vol.read_data(pos, &mut buf.expose_mut()[..n])?;
        out.write_all(&buf.expose()[..n]).map_err(write_err)?;
        pos += n as u64;
        bar.set_position(pos);
    }
    out.flush().map_err(write_err)?;
    bar.finish_and_clear();
    Ok(())
}

fn is_block(m: &fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_block_device()
}

/// An existing output that is not a regular file or directory: a block or character device,
/// a FIFO or a socket.
fn is_special(p: &Path) -> bool {
    fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

fn write_err(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CliError::msg("output closed before all data was written", FAILED)
    } else {
        CliError::msg(format!("cannot write the output: {e}"), FAILED)
    }
}

fn out_err(path: &Path, e: io::Error) -> CliError {
    CliError::msg(format!("{}: {e}", path.display()), FAILED)
}
