//! The escrow client's configuration: an XML file, by default `/etc/tcvault/escrow.xml`,
//! replaced by `~/.config/tcvault/escrow.xml` when that exists, and by `--escrow-config`;
//! except that a system file with `<policy>require</policy>` is a site rule, and is used
//! whatever else exists (a user's own file could otherwise name a server of their own).
//!
//! ```xml
//! <tcvault-escrow>
//!   <server>https://escrow.example.org:8443</server>
//!   <!-- The CA (or the server's own, pinned, self-signed certificate) to trust; without
//!        it the built-in web roots are used. -->
//!   <ca-certificate>escrow-ca.pem</ca-certificate>
//!   <!-- The escrow authority's public key (PEM); or only its fingerprint, and the key is
//!        fetched from the server and checked against it. -->
//!   <authority-key>escrow-authority.pem</authority-key>
//!   <authority-fingerprint>3f1c…(64 hex digits)</authority-fingerprint>
//!   <!-- ask (default), yes, no, or require: every volume opened, created or given a new
//!        header must be escrowed first (the commands fail until the server acknowledges) -->
//!   <policy>ask</policy>
//!   <timeout-seconds>10</timeout-seconds>
//! </tcvault-escrow>
//! ```
//!
//! Relative paths are taken from the configuration file's directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the system-wide configuration lives.
pub const SYSTEM_CONFIG: &str = "/etc/tcvault/escrow.xml";

/// When to escrow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Policy {
    /// Ask on the terminal (no terminal: do not escrow).
    #[default]
    Ask,
    /// Always escrow.
    Yes,
    /// Never escrow.
    No,
    /// Escrow always, and a command that opens, creates or rewrites a volume fails until the
    /// deposit is acknowledged (a site policy: `--escrow no` is refused).
    Require,
}

impl Policy {
    /// The name written in the file (`ask`, `yes`, `no`, `require`).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Ask => "ask",
            Policy::Yes => "yes",
            Policy::No => "no",
            Policy::Require => "require",
        }
    }

    /// Parses "ask", "yes", "no" or "require".
    pub fn from_name(s: &str) -> Option<Policy> {
        let s = s.trim().to_ascii_lowercase();
        [Policy::Ask, Policy::Yes, Policy::No, Policy::Require]
            .into_iter()
            .find(|p| p.name() == s)
    }
}

/// Problems with the configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the escrow configuration {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not what it should be.
    #[error("escrow configuration {path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (with a line number where known).
        why: String,
    },
}

/// A loaded client configuration.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// Base URL (`https://host:port`).
    pub server: String,
    /// PEM of the CA or pinned server certificate.
    pub ca_pem: Option<Vec<u8>>,
    /// PEM of the authority public key.
    pub authority_pem: Option<String>,
    /// Pinned authority fingerprint (lower-case hex).
    pub authority_fingerprint: Option<String>,
    /// The default policy.
    pub policy: Policy,
    /// Connect and request timeout.
    pub timeout: Duration,
}

impl ClientConfig {
    /// The configuration to use: `explicit`, else the per-user file, else the system one.
    /// `Ok(None)` when none exists (escrow is not configured).
    ///
    /// # Errors
    /// A file that exists but cannot be read or parsed.
    pub fn discover(explicit: Option<&Path>) -> Result<Option<ClientConfig>, ConfigError> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        Self::discover_in(explicit, home.as_deref(), Path::new(SYSTEM_CONFIG))
    }

    /// [`ClientConfig::discover`] with the home folder and the system file given: a system
    /// file whose policy is `require` wins over every other; else `explicit`, else the
    /// per-user file under `home`, else the system file.
    ///
    /// # Errors
    /// As [`ClientConfig::discover`].
    pub fn discover_in(
        explicit: Option<&Path>,
        home: Option<&Path>,
        system: &Path,
    ) -> Result<Option<ClientConfig>, ConfigError> {
        // A system file that cannot be read is no site rule (and is an error below only when
        // it is the one chosen).
        if let Ok(site) = ClientConfig::load(system)
            && site.policy == Policy::Require
        {
            return Ok(Some(site));
        }
        if let Some(p) = explicit {
            return ClientConfig::load(p).map(Some);
        }
        let mut places = Vec::new();
        if let Some(home) = home {
            places.push(home.join(".config/tcvault/escrow.xml"));
        }
        places.push(system.to_path_buf());
        for p in places {
            if p.exists() {
                return ClientConfig::load(&p).map(Some);
            }
        }
        Ok(None)
    }

    /// Loads the file at `path`.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(path: &Path) -> Result<ClientConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text as if read from `path`: `path` names the file in errors, and
    /// relative paths in it (the CA certificate, the authority key) are read from its folder.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn parse(text: &str, path: &Path) -> Result<ClientConfig, ConfigError> {
        let invalid = |why: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            why,
        };
        let doc = roxmltree::Document::parse(text).map_err(|e| invalid(e.to_string()))?;
        let root = doc.root_element();
        if root.tag_name().name() != "tcvault-escrow" {
            return Err(invalid("the root element must be <tcvault-escrow>".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let resolve = |s: &str| {
            let p = PathBuf::from(s.trim());
            if p.is_absolute() { p } else { dir.join(p) }
        };
        let read_file =
            |p: PathBuf| std::fs::read(&p).map_err(|source| ConfigError::Io { path: p, source });
        let mut cfg = ClientConfig {
            path: path.to_path_buf(),
            server: String::new(),
            ca_pem: None,
            authority_pem: None,
            authority_fingerprint: None,
            policy: Policy::Ask,
            timeout: Duration::from_secs(10),
        };
        for node in root.children().filter(roxmltree::Node::is_element) {
            let line = doc.text_pos_at(node.range().start).row;
            let value = node.text().unwrap_or("").trim();
            match node.tag_name().name() {
                "server" => {
                    // Trailing slashes (and blanks among them) go, so that paths append.
                    let base = value.trim_end_matches(|c: char| c == '/' || c.is_whitespace());
                    if !value.starts_with("https://") || base.len() <= "https://".len() {
                        return Err(invalid(format!(
                            "line {line}: <server> must be an https:// URL with a host"
                        )));
                    }
                    cfg.server = base.to_owned();
                }
                "ca-certificate" | "pinned-certificate" => {
                    cfg.ca_pem = Some(read_file(resolve(value))?);
                }
                "authority-key" => {
                    let bytes = read_file(resolve(value))?;
                    cfg.authority_pem = Some(String::from_utf8(bytes).map_err(|_| {
                        invalid(format!("line {line}: the authority key is not PEM text"))
                    })?);
                }
                "authority-fingerprint" => {
                    let fp = value.to_ascii_lowercase().replace(':', "");
                    if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
                        return Err(invalid(format!(
                            "line {line}: <authority-fingerprint> must be 64 hex digits"
                        )));
                    }
                    cfg.authority_fingerprint = Some(fp);
                }
                "policy" => {
                    cfg.policy = Policy::from_name(value).ok_or_else(|| {
                        invalid(format!("line {line}: <policy> is ask, yes, no or require"))
                    })?;
                }
                "timeout-seconds" => {
                    let s: u64 = value
                        .parse()
                        .ok()
                        .filter(|&s| (1..=600).contains(&s))
                        .ok_or_else(|| {
                            invalid(format!("line {line}: <timeout-seconds> is 1 to 600"))
                        })?;
                    cfg.timeout = Duration::from_secs(s);
                }
                other => {
                    return Err(invalid(format!("line {line}: unknown element <{other}>")));
                }
            }
        }
        if cfg.server.is_empty() {
            return Err(invalid("<server> is missing".into()));
        }
        if cfg.authority_pem.is_none() && cfg.authority_fingerprint.is_none() {
            return Err(invalid(
                "give <authority-key> or <authority-fingerprint> (the key is then fetched from \
                 the server and checked against it)"
                    .into(),
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, policy: &str, server: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(
            &p,
            format!(
                "<tcvault-escrow><server>https://{server}</server><policy>{policy}</policy>\
                 <authority-fingerprint>{}</authority-fingerprint></tcvault-escrow>",
                "ab".repeat(32)
            ),
        )
        .expect("write config");
        p
    }

    /// The explicit file wins over the user's, which wins over the system's; but a system
    /// file whose policy is `require` wins over both (a user cannot point escrow elsewhere).
    #[test]
    fn a_required_site_policy_is_not_overridden() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        let system = write(dir.path(), "etc/escrow.xml", "ask", "site.example");
        let user = write(&home, ".config/tcvault/escrow.xml", "no", "mine.example");
        let explicit = write(dir.path(), "explicit.xml", "yes", "other.example");
        let pick = |explicit: Option<&Path>| {
            ClientConfig::discover_in(explicit, Some(&home), &system)
                .expect("discover")
                .expect("a configuration")
        };
        assert_eq!(pick(Some(&explicit)).server, "https://other.example");
        assert_eq!(pick(None).server, "https://mine.example");
        assert_eq!(pick(None).policy, Policy::No);
        std::fs::remove_file(&user).expect("remove");
        assert_eq!(pick(None).server, "https://site.example");

        write(dir.path(), "etc/escrow.xml", "require", "site.example");
        write(&home, ".config/tcvault/escrow.xml", "no", "mine.example");
        for e in [None, Some(explicit.as_path())] {
            let cfg = pick(e);
            assert_eq!(cfg.server, "https://site.example");
            assert_eq!(cfg.policy, Policy::Require);
        }
        assert!(Policy::from_name("Require") == Some(Policy::Require));
    }
}
