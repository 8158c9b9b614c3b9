//! The mount table, `/etc/tcvault/tab`: the volumes `tcvault mount --all` (and the systemd
//! units in `systemd/`) mount, one per line, in crypttab's spirit.
//!
//! ```text
//! # name   volume              mount point        password file        options
//! home     /dev/sdb2           /home/alice/vault  none                 pim=5,prf=sha512
//! backup   /srv/backup.hc      -                  /etc/tcvault/backup.pw  ro,noauto,keyfile=/etc/tcvault/backup.key
//! ```
//!
//! Columns are separated by blanks; `#` starts a comment line. A column holding a blank or a
//! backslash writes it as an octal escape, as fstab does (`\040` for a space, `\134` for a
//! backslash). The mount point `-` means the default one; the password file `none` means the
//! password is asked for (on the terminal, or through `systemd-ask-password` under systemd).
//! The options column may be left out or be `-`; options are `ro`, `noauto` (not mounted by
//! `--all`), `pim=N`, `prf=NAME` and `keyfile=PATH` (repeat for several).

use std::fmt;
use std::path::{Path, PathBuf};

/// Where the table is unless `--table` says otherwise.
pub const DEFAULT_TABLE: &str = "/etc/tcvault/tab";

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TabEntry {
    /// Its name (letters, digits, `-`, `_`, `.`), unique in the table.
    pub name: String,
    /// The volume: an absolute path to a file container or a block device.
    pub volume: PathBuf,
    /// Where to mount it; `None`: the default mount point.
    pub mountpoint: Option<PathBuf>,
    /// A file holding the password; `None`: ask for it.
    pub password_file: Option<PathBuf>,
    /// Mount read-only.
    pub read_only: bool,
    /// Left out by `mount --all`.
    pub noauto: bool,
    /// The PIM.
    pub pim: Option<u32>,
    /// The PRF's command-line name (checked by the command that uses it).
    pub prf: Option<String>,
    /// VeraCrypt keyfiles.
    pub keyfiles: Vec<PathBuf>,
}

/// A line of the table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}:{line}: {message}")]
pub struct TableError {
    /// The table's path.
    pub table: String,
    /// The line number (from 1; 0 when the table could not be read at all).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Reads and parses the table at `path`.
///
/// # Errors
/// The table cannot be read, or a line is malformed (the error names the line).
pub fn read(path: &Path) -> Result<Vec<TabEntry>, TableError> {
    let text = std::fs::read_to_string(path).map_err(|e| TableError {
        table: path.display().to_string(),
        line: 0,
        message: format!("cannot read the mount table: {e}"),
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses the text of a table (`table` names it in errors).
///
/// # Errors
/// A line is malformed, or two lines have the same name.
pub fn parse(text: &str, table: &str) -> Result<Vec<TabEntry>, TableError> {
    let mut out: Vec<TabEntry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let err = |message: String| TableError {
            table: table.to_string(),
            line: i + 1,
            message,
        };
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let cols: Vec<String> = line
            .split_whitespace()
            .map(unescape)
            .collect::<Result<_, _>>()
            .map_err(err)?;
        if !(4..=5).contains(&cols.len()) {
            return Err(err(format!(
                "{} columns; a line has 4 or 5: name, volume, mount point, password file, \
                 [options]",
                cols.len()
            )));
        }
        let name = cols[0].clone();
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            || name.starts_with(['-', '.'])
        {
            return Err(err(format!(
                "{name:?}: a name has letters, digits, '-', '_' and '.' only"
            )));
        }
        if out.iter().any(|e| e.name == name) {
            return Err(err(format!("{name}: named twice")));
        }
        let absolute = |what: &str, s: &str| -> Result<PathBuf, TableError> {
            let p = PathBuf::from(s);
            if p.is_absolute() {
                Ok(p)
            } else {
                Err(err(format!("{what} {s:?} is not an absolute path")))
            }
        };
        let volume = absolute("the volume", &cols[1])?;
        let mountpoint = match cols[2].as_str() {
            "-" => None,
            s => Some(absolute("the mount point", s)?),
        };
        let password_file = match cols[3].as_str() {
            "none" | "-" => None,
            s => Some(absolute("the password file", s)?),
        };
        let mut e = TabEntry {
            name,
            volume,
            mountpoint,
            password_file,
            read_only: false,
            noauto: false,
            pim: None,
            prf: None,
            keyfiles: Vec::new(),
        };
        let opts = cols.get(4).map_or("-", String::as_str);
        for o in opts.split(',').filter(|o| !o.is_empty() && *o != "-") {
            match o.split_once('=') {
                None if o == "ro" => e.read_only = true,
                None if o == "rw" => e.read_only = false,
                None if o == "noauto" => e.noauto = true,
                None if o == "auto" || o == "defaults" => e.noauto = false,
                Some(("pim", n)) => {
                    e.pim = Some(
                        n.parse()
                            .map_err(|_| err(format!("pim={n}: not a number")))?,
                    );
                }
                Some(("prf", p)) if !p.is_empty() => e.prf = Some(p.to_string()),
                Some(("keyfile", k)) => e.keyfiles.push(absolute("the keyfile", k)?),
                _ => {
                    return Err(err(format!(
                        "unknown option {o:?} (known: ro, noauto, pim=N, prf=NAME, \
                         keyfile=PATH)"
                    )));
                }
            }
        }
        out.push(e);
    }
    Ok(out)
}

/// Undoes fstab-style octal escapes (`\040`).
fn unescape(s: &str) -> Result<String, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            let v = b
                .get(i + 1..i + 4)
                .and_then(|d| std::str::from_utf8(d).ok())
                .and_then(|d| u8::from_str_radix(d, 8).ok())
                .ok_or_else(|| format!("{s:?}: a backslash starts a 3-digit octal escape"))?;
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{s:?}: not UTF-8 after its escapes"))
}

impl fmt::Display for TabEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.volume.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_with_every_column_and_option() {
        let t = "# comment\n\n home /dev/sdb2 /home/a\\040b none pim=5,prf=sha512\n\
                 backup /srv/b.hc - /etc/tcvault/b.pw ro,noauto,keyfile=/k1,keyfile=/k2\n\
                 plain /srv/p.hc /mnt/p /etc/p.pw\n";
        let e = parse(t, "tab").expect("parses");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "home");
        assert_eq!(e[0].mountpoint.as_deref(), Some(Path::new("/home/a b")));
        assert_eq!(e[0].password_file, None);
        assert_eq!((e[0].pim, e[0].prf.as_deref()), (Some(5), Some("sha512")));
        assert!(e[1].read_only && e[1].noauto && e[1].mountpoint.is_none());
        assert_eq!(e[1].keyfiles, [PathBuf::from("/k1"), PathBuf::from("/k2")]);
        assert_eq!(e[2].password_file.as_deref(), Some(Path::new("/etc/p.pw")));
        assert!(!e[2].read_only && !e[2].noauto && e[2].keyfiles.is_empty());
    }

    #[test]
    fn malformed_lines_name_their_line() {
        for (t, says) in [
            ("a /v /m", "3 columns"),
            ("a /v /m none ro extra", "6 columns"),
            ("a v /m none", "not an absolute path"),
            ("a /v m none", "not an absolute path"),
            ("a /v /m pw", "not an absolute path"),
            ("a /v /m none pim=x", "not a number"),
            ("a /v /m none nosuch", "unknown option"),
            ("a /v /m none keyfile=k", "not an absolute path"),
            ("a/b /v /m none", "a name has"),
            ("a /v\\04 /m none", "octal escape"),
            ("a /v /m none\na /w /n none", "named twice"),
        ] {
            let e = parse(&format!("# first\n{t}"), "tab").expect_err(t);
            assert!(e.message.contains(says), "{t}: {e}");
            assert!(e.line >= 2, "{t}: line {}", e.line);
            assert!(e.to_string().starts_with("tab:"), "{e}");
        }
    }
}
