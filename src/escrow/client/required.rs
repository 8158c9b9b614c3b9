//! Which escrow users must escrow, as their server said at their last login
//! (`tcvault-escrowd user require-escrow`, read from `GET /v1/account`).
//!
//! The client keeps it so that once a required user's tcvault has logged in, it no longer
//! offers to skip escrow: the file is `$XDG_STATE_HOME/tcvault/escrow-required` (by default
//! `~/.local/state/tcvault/escrow-required`), one `SERVER<TAB>USER` line per required user,
//! written whole (`volume::write`'s temporary file renamed over it) with mode 0600. A later login that the
//! server answers with "not required" removes the line.

use std::path::{Path, PathBuf};

/// The users the servers require escrow of, as this machine account last heard.
#[derive(Debug)]
pub struct RequiredUsers {
    path: PathBuf,
    entries: Vec<(String, String)>,
}

impl RequiredUsers {
    /// Where the file lives for this process (`None` without `XDG_STATE_HOME` or `HOME`).
    pub fn default_path() -> Option<PathBuf> {
        let base = match std::env::var_os("XDG_STATE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?)
                .join(".local/state"),
        };
        Some(base.join("tcvault/escrow-required"))
    }

    /// The file at `path`; one that is missing or unreadable holds nobody.
    pub fn load(path: &Path) -> RequiredUsers {
        let entries = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (server, user) = l.split_once('\t')?;
                (!server.is_empty() && !user.is_empty())
                    .then(|| (server.to_owned(), user.to_owned()))
            })
            .collect();
        RequiredUsers {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A user of `server` that must escrow, if any.
    pub fn user_for(&self, server: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(s, _)| s == server)
            .map(|(_, u)| u.as_str())
    }

    /// Records what `server` said of `user`, writing the file when that changes anything.
    ///
    /// # Errors
    /// The file (or its folder) cannot be written.
    pub fn set(&mut self, server: &str, user: &str, required: bool) -> std::io::Result<()> {
        let known = self.entries.iter().any(|(s, u)| s == server && u == user);
        if known == required {
            return Ok(());
        }
        if required {
            self.entries.push((server.to_owned(), user.to_owned()));
        } else {
            self.entries.retain(|(s, u)| !(s == server && u == user));
        }
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let text: String = self
            .entries
            .iter()
            .map(|(s, u)| format!("{s}\t{u}\n"))
            .collect();
        crate::volume::write::write_new_file(&self.path, text.as_bytes(), true)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::RequiredUsers;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn set_and_clear_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/tcvault/escrow-required");
        let mut r = RequiredUsers::load(&path);
        assert_eq!(r.user_for("https://a"), None);
        r.set("https://a", "alice", true).expect("set");
        r.set("https://b", "bob", false).expect("no-op");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut again = RequiredUsers::load(&path);
        assert_eq!(again.user_for("https://a"), Some("alice"));
        assert_eq!(again.user_for("https://b"), None);
        again.set("https://a", "alice", false).expect("clear");
        assert_eq!(RequiredUsers::load(&path).user_for("https://a"), None);
    }

    #[test]
    fn a_damaged_file_holds_nobody() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("escrow-required");
        std::fs::write(&path, b"no tab here\n\t\n\xff\xfe").expect("write");
        assert_eq!(RequiredUsers::load(&path).user_for(""), None);
    }
}
