//! `tcvault decrypt`: stream the decrypted data area out, in large chunks, constant memory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tcvault::header::HostKind;
use tcvault::volume::Volume;

use super::args::DecryptArgs;
use super::exit::{BAD_INPUT, CliError, FAILED};
use super::unlock::open_volume;

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
    if let Some(p) = a.output.as_ref().filter(|_| !to_stdout) {
        if p.exists() && !a.force && !is_block_device(p) {
            return Err(
                CliError::msg(format!("{}: already exists", p.display()), BAD_INPUT)
                    .hint("add --force to overwrite it"),
            );
        }
    }
    let vol = open_volume(&a.volume, &a.unlock)?;
    if vol.host().kind() != HostKind::Volume {
        return Err(CliError::msg(
            format!(
                "{}: is a header backup file; it holds no data",
                a.volume.display()
            ),
            BAD_INPUT,
        ));
    }
    match a.output.as_ref().filter(|_| !to_stdout) {
        None => stream(&vol, &mut io::stdout().lock()),
        Some(path) if is_block_device(path) => {
            let mut f = OpenOptions::new()
                .write(true)
                .open(path)
                .map_err(|e| out_err(path, e))?;
            stream(&vol, &mut f)?;
            f.sync_all().map_err(|e| out_err(path, e))
        }
        Some(path) => write_file(&vol, path),
    }
}

/// Writes into a temporary file beside `path` and renames it into place only when complete, so
/// an interrupted or failed run never leaves a half-written file under the requested name.
fn write_file(vol: &Volume, path: &Path) -> Result<(), CliError> {
    let tmp = partial_name(path);
    let mut f = File::create(&tmp).map_err(|e| out_err(&tmp, e))?;
    let result = stream(vol, &mut f)
        .and_then(|()| f.sync_all().map_err(|e| out_err(path, e)))
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| out_err(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn partial_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map_or_else(|| "output".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tcvault-partial"))
}

fn stream(vol: &Volume, out: &mut dyn Write) -> Result<(), CliError> {
    let total = vol.data_len();
    let bar = if io::stderr().is_terminal() {
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
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(total).unwrap_or(CHUNK))];
    let mut pos = 0u64;
    while pos < total {
        let n = usize::try_from((total - pos).min(buf.len() as u64)).unwrap_or(buf.len());
        vol.read_data(pos, &mut buf[..n])?;
        out.write_all(&buf[..n]).map_err(write_err)?;
        pos += n as u64;
        bar.set_position(pos);
    }
    out.flush().map_err(write_err)?;
    // The buffer held plaintext: wipe it before it goes back to the allocator.
    zeroize::Zeroize::zeroize(&mut buf);
    bar.finish_and_clear();
    Ok(())
}

fn is_block_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    fs::metadata(p).is_ok_and(|m| m.file_type().is_block_device())
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
