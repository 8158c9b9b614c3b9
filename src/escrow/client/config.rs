//! The escrow client's configuration: an XML file, by default `/etc/tcvault/escrow.xml`,
//! replaced by `~/.config/tcvault/escrow.xml` when that exists, and by `--escrow-config`.
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
//!   <!-- ask (default), yes or no -->
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
}

impl Policy {
    /// Parses "ask", "yes" or "no".
    pub fn from_name(s: &str) -> Option<Policy> {
        match s.trim().to_ascii_lowercase().as_str() {
            "ask" => Some(Policy::Ask),
            "yes" => Some(Policy::Yes),
            "no" => Some(Policy::No),
            _ => None,
        }
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
        if let Some(p) = explicit {
            return ClientConfig::load(p).map(Some);
        }
        let mut places = Vec::new();
        if let Some(home) = std::env::var_os("HOME") {
            places.push(PathBuf::from(home).join(".config/tcvault/escrow.xml"));
        }
        places.push(PathBuf::from(SYSTEM_CONFIG));
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
                        invalid(format!("line {line}: <policy> is ask, yes or no"))
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
