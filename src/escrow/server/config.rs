//! The escrow server's XML configuration, and the sample that `tcvault-escrowd init` writes.
//!
//! ```xml
//! <TCVAULT_ESCROWD>
//!   <LISTEN_ADDRESS>0.0.0.0</LISTEN_ADDRESS>
//!   <LISTEN_PORT>8443</LISTEN_PORT>
//!   <TLS_CERTIFICATE>cert.pem</TLS_CERTIFICATE>
//!   <TLS_KEY>key.pem</TLS_KEY>
//!   <AUDIT_KEY>audit.key</AUDIT_KEY>                      <!-- optional, this default -->
//!   <DATABASE_URL>sqlite:escrow.sqlite3</DATABASE_URL>
//!   <ADMIN_SUBNET_MASK>10.0.0.0/8</ADMIN_SUBNET_MASK>      <!-- one or more, IPv4/IPv6 -->
//!   <AUTHORITY_PUBLIC_KEY>authority-public.pem</AUTHORITY_PUBLIC_KEY>
//!   <LOGIN_THROTTLE>                                       <!-- optional -->
//!     <MAX_FAILURES>5</MAX_FAILURES>
//!     <WINDOW_SECONDS>300</WINDOW_SECONDS>
//!     <LOCKOUT_SECONDS>300</LOCKOUT_SECONDS>
//!   </LOGIN_THROTTLE>
//!   <MAX_BODY_BYTES>1048576</MAX_BODY_BYTES>               <!-- optional -->
//!   <SERVER_NAME>escrow1.example.org</SERVER_NAME>         <!-- optional, names exports -->
//!   <FETCH_APPROVAL_SECONDS>3600</FETCH_APPROVAL_SECONDS>  <!-- optional: dual control -->
//!   <SELF_SERVICE_RECOVERY>1</SELF_SERVICE_RECOVERY>      <!-- optional, this default -->
//!   <LDAP>                                                 <!-- optional: directory logins -->
//!     <URL>ldaps://ldap.example.org</URL>                  <!-- or ldap://… with STARTTLS 1 -->
//!     <STARTTLS>0</STARTTLS>
//!     <CA_CERTIFICATE>ldap-ca.pem</CA_CERTIFICATE>         <!-- required with TLS -->
//!     <BIND_DN>uid={user},ou=people,dc=example,dc=org</BIND_DN>
//!     <!-- or: <SEARCH_BASE>, <SEARCH_FILTER>(uid={user})</SEARCH_FILTER>, and optionally
//!          <SEARCH_BIND_DN> with <SEARCH_BIND_PASSWORD_FILE> -->
//!     <ENABLED_FILTER>(!(employeeType=disabled))</ENABLED_FILTER>   <!-- optional -->
//!     <ADMIN_GROUP>cn=escrow-admins,ou=groups,dc=example,dc=org</ADMIN_GROUP> <!-- optional -->
//!     <TIMEOUT_SECONDS>10</TIMEOUT_SECONDS>
//!   </LDAP>
//!   <UPSTREAM>                                             <!-- optional: push entries up -->
//!     <URL>https://escrow-hq.example.org:8443</URL>
//!     <CA_CERTIFICATE>hq-ca.pem</CA_CERTIFICATE>
//!     <USER>branch-1</USER>                                <!-- import right there -->
//!     <PASSWORD_FILE>upstream.pw</PASSWORD_FILE>
//!     <INTERVAL_SECONDS>60</INTERVAL_SECONDS>
//!   </UPSTREAM>
//! </TCVAULT_ESCROWD>
//! ```
//!
//! Relative paths (and `sqlite:` paths) are relative to the configuration file's folder.
//! `AUDIT_KEY` names the file with the secret key of the audit chain (32 random bytes, mode
//! 0600, written by `init`); it must not be stored in the database, whose tampering it exposes.
//! `FETCH_APPROVAL_SECONDS` turns on dual control: an admin fetches a packet (for a restore)
//! only with a fetch request another admin approved at most that many seconds before, once
//! per approval; absent or 0, an admin alone may fetch. `SELF_SERVICE_RECOVERY` 0 stops users
//! from fetching the recovery packets of their own entries (`tcvault recover`); 1, the
//! default, allows it.
//! Unknown, missing, repeated and malformed elements are errors that name their line.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use super::ldap::{LdapConfig, UserLookup};
pub use super::upstream::UpstreamConfig;

/// Login throttling: after `max_failures` failed logins within `window` for one user name or one
/// peer address, further attempts for it are refused for `lockout`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures allowed within the window.
    pub max_failures: u32,
    /// Window over which failures are counted.
    pub window: Duration,
    /// How long a user name or address is refused after too many failures.
    pub lockout: Duration,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            max_failures: 5,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(300),
        }
    }
}

/// The default request body limit (1 MiB): packets are a few KiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// The audit key file when `<AUDIT_KEY>` is absent, beside the configuration file.
pub const DEFAULT_AUDIT_KEY: &str = "audit.key";

/// A parsed configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Where to listen.
    pub listen: SocketAddr,
    /// PEM certificate chain.
    pub tls_certificate: PathBuf,
    /// PEM private key of the certificate.
    pub tls_key: PathBuf,
    /// The secret key of the audit chain (never in the database).
    pub audit_key: PathBuf,
    /// `sqlite:PATH` (resolved to an absolute path) or `postgres://…`.
    pub database_url: String,
    /// Networks admins may call from (checked against the TCP peer address).
    pub admin_networks: Vec<IpNet>,
    /// PEM file with the escrow authority's RSA public key.
    pub authority_public_key: PathBuf,
    /// Failed-login throttling.
    pub throttle: ThrottleConfig,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
    /// This server's name in export bundles.
    pub server_name: String,
    /// Dual control: how long a second admin's approval of a packet fetch stays usable
    /// (`None`: an admin alone may fetch).
    pub fetch_approval: Option<Duration>,
    /// Users may fetch the recovery packets of their own entries (`SELF_SERVICE_RECOVERY`).
    pub self_service_recovery: bool,
    /// LDAP / Active Directory logins for user names not in the local table (`<LDAP>`).
    pub ldap: Option<LdapConfig>,
    /// The server new entries are pushed to (`<UPSTREAM>`).
    pub upstream: Option<UpstreamConfig>,
}

/// Configuration errors, each naming the file and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Not well-formed XML.
    #[error("{path}: not well-formed XML: {source}")]
    Xml {
        /// The file.
        path: PathBuf,
        /// The parser's error (it carries the position).
        #[source]
        source: roxmltree::Error,
    },
    /// An element we do not know.
    #[error("{path}:{line}: unknown element <{element}>{hint}")]
    Unknown {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u32,
        /// The element's name.
        element: String,
        /// Where it may belong.
        hint: String,
    },
    /// A required element is absent.
    #[error("{path}:{line}: <{parent}> has no <{element}> (required)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// Line of the parent element.
        line: u32,
        /// The parent.
        parent: String,
        /// The missing element.
        element: String,
    },
    /// An element that may appear once appears again.
    #[error("{path}:{line}: <{element}> given twice")]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// Line of the second occurrence.
        line: u32,
        /// The element.
        element: String,
    },
    /// The value is not what the element needs.
    #[error("{path}:{line}: <{element}>: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Line of the element.
        line: u32,
        /// The element.
        element: String,
        /// What is wrong.
        message: String,
    },
}

const TOP: &[&str] = &[
    "LISTEN_ADDRESS",
    "LISTEN_PORT",
    "TLS_CERTIFICATE",
    "TLS_KEY",
    "AUDIT_KEY",
    "DATABASE_URL",
    "ADMIN_SUBNET_MASK",
    "AUTHORITY_PUBLIC_KEY",
    "LOGIN_THROTTLE",
    "MAX_BODY_BYTES",
    "SERVER_NAME",
    "FETCH_APPROVAL_SECONDS",
    "SELF_SERVICE_RECOVERY",
    "LDAP",
    "UPSTREAM",
];
const UPSTREAM: &[&str] = &[
    "URL",
    "CA_CERTIFICATE",
    "USER",
    "PASSWORD_FILE",
    "INTERVAL_SECONDS",
];
const LDAP: &[&str] = &[
    "URL",
    "STARTTLS",
    "CA_CERTIFICATE",
    "BIND_DN",
    "SEARCH_BASE",
    "SEARCH_FILTER",
    "SEARCH_BIND_DN",
    "SEARCH_BIND_PASSWORD_FILE",
    "ENABLED_FILTER",
    "ADMIN_GROUP",
    "TIMEOUT_SECONDS",
];
const THROTTLE: &[&str] = &["MAX_FAILURES", "WINDOW_SECONDS", "LOCKOUT_SECONDS"];
const ROOT: &str = "TCVAULT_ESCROWD";

struct Parser<'a, 'i> {
    doc: &'a roxmltree::Document<'i>,
    path: &'a Path,
}

impl<'a, 'i> Parser<'a, 'i> {
    fn line(&self, n: roxmltree::Node<'_, '_>) -> u32 {
        self.doc.text_pos_at(n.range().start).row
    }

    /// The element children of `parent`, each checked against `known`.
    fn children(
        &self,
        parent: roxmltree::Node<'a, 'i>,
        known: &[&str],
    ) -> Result<Vec<roxmltree::Node<'a, 'i>>, ConfigError> {
        let mut out = Vec::new();
        for child in parent.children() {
            if child.is_text() && !child.text().unwrap_or("").trim().is_empty() {
                return Err(ConfigError::Invalid {
                    path: self.path.to_owned(),
                    line: self.line(child),
                    element: parent.tag_name().name().to_owned(),
                    message: "unexpected text; expected only child elements".to_owned(),
                });
            }
            if !child.is_element() {
                continue;
            }
            let name = child.tag_name().name();
            if !known.contains(&name) {
                let hint = if THROTTLE.contains(&name) {
                    " (it belongs inside <LOGIN_THROTTLE>)".to_owned()
                } else {
                    format!(" (known here: {})", known.join(", "))
                };
                return Err(ConfigError::Unknown {
                    path: self.path.to_owned(),
                    line: self.line(child),
                    element: name.to_owned(),
                    hint,
                });
            }
            out.push(child);
        }
        Ok(out)
    }

    fn one(
        &self,
        parent: roxmltree::Node<'a, 'i>,
        kids: &[roxmltree::Node<'a, 'i>],
        name: &str,
        required: bool,
    ) -> Result<Option<(String, u32)>, ConfigError> {
        let mut found = kids.iter().filter(|k| k.tag_name().name() == name);
        let first = found.next();
        if let Some(second) = found.next() {
            return Err(ConfigError::Duplicate {
                path: self.path.to_owned(),
                line: self.line(*second),
                element: name.to_owned(),
            });
        }
        match first {
            Some(n) => Ok(Some((self.text(*n)?, self.line(*n)))),
            None if required => Err(ConfigError::Missing {
                path: self.path.to_owned(),
                line: self.line(parent),
                parent: parent.tag_name().name().to_owned(),
                element: name.to_owned(),
            }),
            None => Ok(None),
        }
    }

    fn text(&self, n: roxmltree::Node<'_, '_>) -> Result<String, ConfigError> {
        if let Some(c) = n.children().find(|c| c.is_element()) {
            return Err(self.invalid(
                c,
                n.tag_name().name(),
                "expected text, found a child element",
            ));
        }
        Ok(n.text().unwrap_or("").trim().to_owned())
    }

    fn invalid(&self, n: roxmltree::Node<'_, '_>, element: &str, message: &str) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_owned(),
            line: self.line(n),
            element: element.to_owned(),
            message: message.to_owned(),
        }
    }
}

fn invalid_at(path: &Path, line: u32, element: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        line,
        element: element.to_owned(),
        message: message.into(),
    }
}

fn number<T>(
    path: &Path,
    v: Option<(String, u32)>,
    element: &str,
    default: T,
    min: T,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match v {
        None => Ok(default),
        Some((text, line)) => {
            let n: T = text.parse().map_err(|_| {
                invalid_at(
                    path,
                    line,
                    element,
                    format!("{text:?} is not a whole number"),
                )
            })?;
            if n < min {
                return Err(invalid_at(
                    path,
                    line,
                    element,
                    format!("must be at least {min}"),
                ));
            }
            Ok(n)
        }
    }
}

impl Config {
    /// Reads and checks the configuration file at `path`.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses configuration text; `path` names it in errors and anchors relative paths.
    ///
    /// # Errors
    /// See [`ConfigError`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let doc = roxmltree::Document::parse(text).map_err(|source| ConfigError::Xml {
            path: path.to_owned(),
            source,
        })?;
        let p = Parser { doc: &doc, path };
        let root = doc.root_element();
        if root.tag_name().name() != ROOT {
            return Err(ConfigError::Unknown {
                path: path.to_owned(),
                line: p.line(root),
                element: root.tag_name().name().to_owned(),
                hint: format!(" (the root element must be <{ROOT}>)"),
            });
        }
        let base = path.parent().unwrap_or(Path::new("."));
        let resolve = |s: &str| -> PathBuf {
            let pb = PathBuf::from(s);
            if pb.is_absolute() { pb } else { base.join(pb) }
        };
        let kids = p.children(root, TOP)?;
        let req = |name: &str| -> Result<(String, u32), ConfigError> {
            p.one(root, &kids, name, true)?
                .ok_or_else(|| ConfigError::Missing {
                    path: path.to_owned(),
                    line: p.line(root),
                    parent: ROOT.to_owned(),
                    element: name.to_owned(),
                })
        };
        let (addr, addr_line) = req("LISTEN_ADDRESS")?;
        let ip: IpAddr = addr.parse().map_err(|_| {
            invalid_at(
                path,
                addr_line,
                "LISTEN_ADDRESS",
                format!("{addr:?} is not an IP address"),
            )
        })?;
        let (port, port_line) = req("LISTEN_PORT")?;
        let port: u16 = port.parse().map_err(|_| {
            invalid_at(
                path,
                port_line,
                "LISTEN_PORT",
                format!("{port:?} is not a port (0-65535)"),
            )
        })?;
        let (cert, _) = req("TLS_CERTIFICATE")?;
        let (key, _) = req("TLS_KEY")?;
        let audit_key = match p.one(root, &kids, "AUDIT_KEY", false)? {
            Some((file, line)) if file.is_empty() => {
                return Err(invalid_at(path, line, "AUDIT_KEY", "empty"));
            }
            Some((file, _)) => resolve(&file),
            None => resolve(DEFAULT_AUDIT_KEY),
        };
        let (db, db_line) = req("DATABASE_URL")?;
        let (authority, _) = req("AUTHORITY_PUBLIC_KEY")?;
        if db.is_empty() {
            return Err(invalid_at(path, db_line, "DATABASE_URL", "empty"));
        }
        let database_url = if db.starts_with("postgres://") || db.starts_with("postgresql://") {
            db
        } else if db.contains("://") && !db.starts_with("sqlite:") {
            return Err(invalid_at(
                path,
                db_line,
                "DATABASE_URL",
                "use sqlite:PATH, a file path, or postgres://user@host/database",
            ));
        } else {
            let file = db.strip_prefix("sqlite:").unwrap_or(&db);
            format!("sqlite:{}", resolve(file).display())
        };

        let mut admin_networks = Vec::new();
        let masks: Vec<_> = kids
            .iter()
            .filter(|k| k.tag_name().name() == "ADMIN_SUBNET_MASK")
            .collect();
        if masks.is_empty() {
            return Err(ConfigError::Missing {
                path: path.to_owned(),
                line: p.line(root),
                parent: ROOT.to_owned(),
                element: "ADMIN_SUBNET_MASK".to_owned(),
            });
        }
        for m in masks {
            let text = p.text(*m)?;
            // One network per element, or several separated by commas/spaces.
            for item in text.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty()) {
                let net = parse_network(item).ok_or_else(|| {
                    p.invalid(
                        *m,
                        "ADMIN_SUBNET_MASK",
                        &format!("{item:?} is not a network like 10.1.0.0/16 or fd00::/8"),
                    )
                })?;
                admin_networks.push(net);
            }
        }
        if admin_networks.is_empty() {
            return Err(p.invalid(root, "ADMIN_SUBNET_MASK", "no network given"));
        }

        let mut throttles = kids
            .iter()
            .filter(|k| k.tag_name().name() == "LOGIN_THROTTLE");
        let first_throttle = throttles.next().copied();
        if let Some(second) = throttles.next() {
            return Err(ConfigError::Duplicate {
                path: path.to_owned(),
                line: p.line(*second),
                element: "LOGIN_THROTTLE".to_owned(),
            });
        }
        let throttle = match first_throttle {
            None => ThrottleConfig::default(),
            Some(node) => {
                let tk = p.children(node, THROTTLE)?;
                let d = ThrottleConfig::default();
                ThrottleConfig {
                    max_failures: number(
                        path,
                        p.one(node, &tk, "MAX_FAILURES", false)?,
                        "MAX_FAILURES",
                        d.max_failures,
                        1,
                    )?,
                    window: Duration::from_secs(number(
                        path,
                        p.one(node, &tk, "WINDOW_SECONDS", false)?,
                        "WINDOW_SECONDS",
                        d.window.as_secs(),
                        1,
                    )?),
                    lockout: Duration::from_secs(number(
                        path,
                        p.one(node, &tk, "LOCKOUT_SECONDS", false)?,
                        "LOCKOUT_SECONDS",
                        d.lockout.as_secs(),
                        1,
                    )?),
                }
            }
        };
        let max_body_bytes = number(
            path,
            p.one(root, &kids, "MAX_BODY_BYTES", false)?,
            "MAX_BODY_BYTES",
            DEFAULT_MAX_BODY_BYTES,
            4096,
        )?;
        let server_name = p
            .one(root, &kids, "SERVER_NAME", false)?
            .map(|(s, _)| s)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "tcvault-escrowd".to_owned());

        let fetch_approval = number(
            path,
            p.one(root, &kids, "FETCH_APPROVAL_SECONDS", false)?,
            "FETCH_APPROVAL_SECONDS",
            0u64,
            0,
        )?;

        let self_service_recovery = match p.one(root, &kids, "SELF_SERVICE_RECOVERY", false)? {
            None => true,
            Some((v, _)) if v == "1" => true,
            Some((v, _)) if v == "0" => false,
            Some((v, line)) => {
                return Err(invalid_at(
                    path,
                    line,
                    "SELF_SERVICE_RECOVERY",
                    format!("{v:?} is neither 0 nor 1"),
                ));
            }
        };

        let mut ldaps = kids.iter().filter(|k| k.tag_name().name() == "LDAP");
        let first_ldap = ldaps.next().copied();
        if let Some(second) = ldaps.next() {
            return Err(ConfigError::Duplicate {
                path: path.to_owned(),
                line: p.line(*second),
                element: "LDAP".to_owned(),
            });
        }
        let ldap = first_ldap
            .map(|node| parse_ldap(&p, node, &resolve))
            .transpose()?;
        let mut ups = kids.iter().filter(|k| k.tag_name().name() == "UPSTREAM");
        let first_up = ups.next().copied();
        if let Some(second) = ups.next() {
            return Err(ConfigError::Duplicate {
                path: path.to_owned(),
                line: p.line(*second),
                element: "UPSTREAM".to_owned(),
            });
        }
        let upstream = match first_up {
            None => None,
            Some(node) => {
                let uk = p.children(node, UPSTREAM)?;
                let (url, line) = p.one(node, &uk, "URL", true)?.unwrap_or_default();
                if !url.starts_with("https://") {
                    return Err(invalid_at(
                        path,
                        line,
                        "URL",
                        "the upstream is an https:// URL",
                    ));
                }
                let file = |name: &str| -> Result<PathBuf, ConfigError> {
                    Ok(resolve(
                        &p.one(node, &uk, name, true)?.unwrap_or_default().0,
                    ))
                };
                Some(UpstreamConfig {
                    url,
                    ca_certificate: file("CA_CERTIFICATE")?,
                    user: p.one(node, &uk, "USER", true)?.unwrap_or_default().0,
                    password_file: file("PASSWORD_FILE")?,
                    interval: Duration::from_secs(number(
                        path,
                        p.one(node, &uk, "INTERVAL_SECONDS", false)?,
                        "INTERVAL_SECONDS",
                        60u64,
                        1,
                    )?),
                })
            }
        };

        Ok(Config {
            listen: SocketAddr::new(ip, port),
            tls_certificate: resolve(&cert),
            tls_key: resolve(&key),
            audit_key,
            database_url,
            admin_networks,
            authority_public_key: resolve(&authority),
            throttle,
            max_body_bytes,
            server_name,
            fetch_approval: (fetch_approval > 0).then(|| Duration::from_secs(fetch_approval)),
            self_service_recovery,
            ldap,
            upstream,
        })
    }

    /// Whether `ip` (the TCP peer) lies in one of the admin networks. IPv4-mapped IPv6 peers
    /// count as their IPv4 address.
    pub fn is_admin_network(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.admin_networks.iter().any(|n| n.contains(&ip))
    }
}

/// The `<LDAP>` element.
fn parse_ldap<'a, 'i>(
    p: &Parser<'a, 'i>,
    node: roxmltree::Node<'a, 'i>,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<LdapConfig, ConfigError> {
    let kids = p.children(node, LDAP)?;
    let get = |name: &str| p.one(node, &kids, name, false);
    let flag = |name: &str| -> Result<bool, ConfigError> {
        match get(name)? {
            None => Ok(false),
            Some((v, _)) if v == "1" => Ok(true),
            Some((v, _)) if v == "0" => Ok(false),
            Some((v, line)) => Err(invalid_at(
                p.path,
                line,
                name,
                format!("{v:?} is neither 0 nor 1"),
            )),
        }
    };
    let (url, url_line) = p.one(node, &kids, "URL", true)?.unwrap_or_default();
    let starttls = flag("STARTTLS")?;
    let tls = url.starts_with("ldaps://") || starttls;
    let host = url
        .strip_prefix("ldaps://")
        .or_else(|| url.strip_prefix("ldap://"))
        .ok_or_else(|| invalid_at(p.path, url_line, "URL", "use ldaps://HOST or ldap://HOST"))?;
    let host = host.split('/').next().unwrap_or("");
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let loopback = name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if starttls && url.starts_with("ldaps://") {
        return Err(invalid_at(
            p.path,
            url_line,
            "STARTTLS",
            "an ldaps:// URL is TLS already",
        ));
    }
    if !tls && !loopback {
        return Err(invalid_at(
            p.path,
            url_line,
            "URL",
            "passwords would cross the network in the clear: use ldaps:// or \
             <STARTTLS>1</STARTTLS> (plain ldap:// only to a loopback address)",
        ));
    }
    let ca_certificate = get("CA_CERTIFICATE")?.map(|(s, _)| resolve(&s));
    if tls && ca_certificate.is_none() {
        return Err(ConfigError::Missing {
            path: p.path.to_owned(),
            line: p.line(node),
            parent: "LDAP".to_owned(),
            element: "CA_CERTIFICATE".to_owned(),
        });
    }
    let with_user = |name: &str, v: Option<(String, u32)>| -> Result<Option<String>, ConfigError> {
        match v {
            Some((s, line)) if !s.contains("{user}") => Err(invalid_at(
                p.path,
                line,
                name,
                "must contain {user}, where the user name goes",
            )),
            other => Ok(other.map(|(s, _)| s)),
        }
    };
    let template = with_user("BIND_DN", get("BIND_DN")?)?;
    let base = get("SEARCH_BASE")?;
    let filter = with_user("SEARCH_FILTER", get("SEARCH_FILTER")?)?;
    let bind_dn = get("SEARCH_BIND_DN")?;
    let bind_pw = get("SEARCH_BIND_PASSWORD_FILE")?;
    let lookup = match (template, base, filter) {
        (Some(t), None, None) if bind_dn.is_none() && bind_pw.is_none() => UserLookup::Template(t),
        (None, Some((base, _)), Some(filter)) => UserLookup::Search {
            base,
            filter,
            bind: match (bind_dn, bind_pw) {
                (None, None) => None,
                (Some((dn, _)), Some((file, _))) => Some((dn, resolve(&file))),
                _ => {
                    return Err(p.invalid(
                        node,
                        "LDAP",
                        "SEARCH_BIND_DN and SEARCH_BIND_PASSWORD_FILE go together",
                    ));
                }
            },
        },
        _ => {
            return Err(p.invalid(
                node,
                "LDAP",
                "give BIND_DN (a template with {user}), or SEARCH_BASE with SEARCH_FILTER \
                 (and optionally SEARCH_BIND_DN with SEARCH_BIND_PASSWORD_FILE)",
            ));
        }
    };
    let timeout = number(p.path, get("TIMEOUT_SECONDS")?, "TIMEOUT_SECONDS", 10u64, 1)?;
    Ok(LdapConfig {
        url,
        starttls,
        ca_certificate,
        lookup,
        enabled_filter: get("ENABLED_FILTER")?.map(|(s, _)| s),
        admin_group: get("ADMIN_GROUP")?.map(|(s, _)| s),
        timeout: Duration::from_secs(timeout),
    })
}

/// `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128).
fn parse_network(s: &str) -> Option<IpNet> {
    if let Ok(n) = s.parse::<IpNet>() {
        return Some(n.trunc());
    }
    s.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Errors of `tcvault-escrowd init`.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A file would be overwritten.
    #[error("{0} already exists; choose an empty folder")]
    Exists(PathBuf),
    /// Writing failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("cannot make a certificate for {host:?}: {source}")]
    Certificate {
        /// The host name.
        host: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
    /// The authority key given is not an RSA public key.
    #[error(transparent)]
    Authority(#[from] super::authority::AuthorityKeyError),
    /// The audit key could not be created.
    #[error(transparent)]
    AuditKey(super::store::StoreError),
}

/// What `init` wrote.
#[derive(Clone, Debug)]
pub struct InitOutcome {
    /// The configuration file.
    pub config: PathBuf,
    /// The certificate clients must trust.
    pub certificate: PathBuf,
    /// Whether an authority public key was installed (else the admin must copy one there).
    pub authority_key: Option<PathBuf>,
    /// Where the authority key is expected.
    pub authority_key_path: PathBuf,
    /// The new audit key (back it up apart from the database).
    pub audit_key: PathBuf,
}

/// Writes a sample configuration into `dir` that listens on all addresses at `port`; see
/// [`init_listen`].
///
/// # Errors
/// See [`InitError`].
pub fn init(
    dir: &Path,
    host: &str,
    port: u16,
    authority_key: Option<&Path>,
) -> Result<InitOutcome, InitError> {
    init_listen(
        dir,
        host,
        SocketAddr::from(([0, 0, 0, 0], port)),
        authority_key,
    )
}

/// Writes a sample configuration into `dir`: `escrowd.xml` listening on `listen`, a self-signed
/// certificate for `host` (`cert.pem`, `key.pem` mode 0600), a new audit key (`audit.key`, mode
/// 0600), an SQLite database path, and, when `authority_key` is given, a copy of that RSA
/// **public** key (private keys are refused).
///
/// # Errors
/// See [`InitError`].
pub fn init_listen(
    dir: &Path,
    host: &str,
    listen: SocketAddr,
    authority_key: Option<&Path>,
) -> Result<InitOutcome, InitError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InitError::Io { path, source }
    };
    let existed = dir.exists();
    fs::create_dir_all(dir).map_err(io(dir))?;
    if !existed {
        // It holds the TLS key and (by default) the database: this user's only.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io(dir))?;
    }
    let config = dir.join("escrowd.xml");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let authority = dir.join("authority-public.pem");
    let audit_key = dir.join(DEFAULT_AUDIT_KEY);
    for f in [&config, &cert, &key, &authority, &audit_key] {
        if f.exists() {
            return Err(InitError::Exists(f.clone()));
        }
    }
    let authority_pem = match authority_key {
        Some(src) => {
            let text = fs::read_to_string(src).map_err(io(src))?;
            super::authority::AuthorityKey::from_pem(&text, src)?;
            Some(text)
        }
        None => None,
    };
    let mut names = vec![host.to_owned()];
    if host != "localhost" {
        names.push("localhost".to_owned());
    }
    let certified =
        rcgen::generate_simple_self_signed(names).map_err(|source| InitError::Certificate {
            host: host.to_owned(),
            source,
        })?;
    write_private(&key, certified.signing_key.serialize_pem().as_bytes()).map_err(io(&key))?;
    fs::write(&cert, certified.cert.pem()).map_err(io(&cert))?;
    super::store::AuditKey::create(&audit_key).map_err(InitError::AuditKey)?;
    if let Some(pem) = &authority_pem {
        fs::write(&authority, pem).map_err(io(&authority))?;
    }
    let (address, port) = (listen.ip(), listen.port());
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- tcvault-escrowd configuration. Relative paths are relative to this file. -->
<TCVAULT_ESCROWD>
  <LISTEN_ADDRESS>{address}</LISTEN_ADDRESS>
  <LISTEN_PORT>{port}</LISTEN_PORT>
  <!-- Self-signed for {host}; clients must trust cert.pem (or use a certificate from your CA). -->
  <TLS_CERTIFICATE>cert.pem</TLS_CERTIFICATE>
  <TLS_KEY>key.pem</TLS_KEY>
  <!-- The audit chain's secret key (mode 0600). Keep it out of the database and its backups,
       and a copy of it somewhere safe: without it the audit cannot be verified. Servers that
       share one database share this key. -->
  <AUDIT_KEY>{DEFAULT_AUDIT_KEY}</AUDIT_KEY>
  <!-- sqlite:FILE, or postgres://user@host/database for several servers sharing one database. -->
  <DATABASE_URL>sqlite:escrow.sqlite3</DATABASE_URL>
  <!-- Admins (search, fetch, approve) may call only from these networks; repeat the element. -->
  <ADMIN_SUBNET_MASK>127.0.0.0/8</ADMIN_SUBNET_MASK>
  <ADMIN_SUBNET_MASK>::1/128</ADMIN_SUBNET_MASK>
  <!-- The escrow authority's RSA PUBLIC key. The private key never goes on this server. -->
  <AUTHORITY_PUBLIC_KEY>authority-public.pem</AUTHORITY_PUBLIC_KEY>
  <LOGIN_THROTTLE>
    <MAX_FAILURES>5</MAX_FAILURES>
    <WINDOW_SECONDS>300</WINDOW_SECONDS>
    <LOCKOUT_SECONDS>300</LOCKOUT_SECONDS>
  </LOGIN_THROTTLE>
  <MAX_BODY_BYTES>{DEFAULT_MAX_BODY_BYTES}</MAX_BODY_BYTES>
  <SERVER_NAME>{host}</SERVER_NAME>
  <!-- Dual control: a packet fetch (a restore) needs another admin's approval, usable once
       within this many seconds. 0 = an admin alone may fetch. -->
  <FETCH_APPROVAL_SECONDS>0</FETCH_APPROVAL_SECONDS>
  <!-- Users may fetch their own entries' recovery packets (`tcvault recover`): they open only
       with the recovery passphrase the user gave at the deposit. 0 = only admins restore. -->
  <SELF_SERVICE_RECOVERY>1</SELF_SERVICE_RECOVERY>
</TCVAULT_ESCROWD>
"#
    );
    fs::write(&config, xml).map_err(io(&config))?;
    Ok(InitOutcome {
        config,
        certificate: cert,
        authority_key: authority_pem.map(|_| authority.clone()),
        authority_key_path: authority,
        audit_key,
    })
}

fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}
