//! Server hierarchies (`<UPSTREAM>` in the configuration): a server pushes its entries to an
//! upstream server at an interval, so that a restore on the upstream finds them.
//!
//! Each push sends the entries numbered after the cursor the upstream last acknowledged
//! (`UPSTREAM_PUSH`, one row per upstream URL), at most [`BATCH`] at a time, as an export
//! bundle under a random one-time password to the upstream's import route (`POST
//! /v1/admin/import`, as a user with the import right calling from one of its admin
//! networks); the cursor moves only after the upstream answered, in a transaction that audits
//! the push (`upstream_push`). Delivery is at least once: a push whose answer was lost is sent
//! again, and the upstream merges an entry it holds already (same user and volume
//! fingerprint) instead of storing it twice. The cursor is in the database, so restarts of
//! either side lose nothing. The packets stay sealed to the escrow authority throughout.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use super::bundle::{self, BundleContent, BundleError};
use super::store::{AuditEvent, Store, StoreError};
use crate::escrow::client::config::{ClientConfig, Policy};
use crate::escrow::client::http::{ClientError, EscrowClient, Login};
use crate::secret::SecretText;

/// Most entries in one push.
pub const BATCH: i64 = 500;

/// The `<UPSTREAM>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The upstream server's base URL (`https://host:port`).
    pub url: String,
    /// The CA (or the certificate) the upstream's TLS certificate must chain to.
    pub ca_certificate: PathBuf,
    /// The user this server logs in as there (import right).
    pub user: String,
    /// The file holding that user's password.
    pub password_file: PathBuf,
    /// How long between pushes.
    pub interval: Duration,
}

/// Why a push did not go through.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// A configured file cannot be read.
    #[error("upstream {0}")]
    Setup(String),
    /// The local database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundle could not be sealed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The upstream refused or could not be reached.
    #[error("upstream: {0}")]
    Client(#[from] ClientError),
    /// The upstream answered for other entries than were sent.
    #[error("upstream answered for {answered} entries, {sent} were sent")]
    Answer {
        /// Sent.
        sent: usize,
        /// Answered.
        answered: usize,
    },
}

/// A configured upstream, ready to push to.
pub struct Upstream {
    cfg: UpstreamConfig,
    client: EscrowClient,
    login: Login,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Reads the CA certificate and the password file of `cfg`.
    ///
    /// # Errors
    /// [`UpstreamError::Setup`], or a client that cannot be built.
    pub fn new(cfg: &UpstreamConfig) -> Result<Upstream, UpstreamError> {
        let read = |p: &PathBuf, what: &str| {
            std::fs::read(p)
                .map_err(|e| UpstreamError::Setup(format!("{what} {}: {e}", p.display())))
        };
        let ca_pem = read(&cfg.ca_certificate, "CA_CERTIFICATE")?;
        let f = std::fs::File::open(&cfg.password_file).map_err(|e| {
            UpstreamError::Setup(format!(
                "PASSWORD_FILE {}: {e}",
                cfg.password_file.display()
            ))
        })?;
        let password = crate::secret::read_secret(f, 4096, true)
            .ok()
            .and_then(SecretText::from_secret)
            .filter(|p| !p.as_str().is_empty())
            .ok_or_else(|| {
                UpstreamError::Setup(format!(
                    "PASSWORD_FILE {}: no UTF-8 password in it",
                    cfg.password_file.display()
                ))
            })?;
        let client_cfg = ClientConfig {
            path: cfg.ca_certificate.clone(),
            server: cfg.url.trim_end_matches('/').to_owned(),
            ca_pem: Some(ca_pem),
            authority_pem: None,
            authority_fingerprint: None,
            policy: Policy::No,
            timeout: Duration::from_secs(60),
        };
        Ok(Upstream {
            client: EscrowClient::new(&client_cfg)?,
            login: Login::new(cfg.user.clone(), password),
            cfg: cfg.clone(),
        })
    }

    /// The upstream's URL.
    pub fn url(&self) -> &str {
        &self.cfg.url
    }

    /// How long between pushes.
    pub fn interval(&self) -> Duration {
        self.cfg.interval
    }

    /// Pushes every entry of `store` the upstream has not acknowledged yet, batch after batch,
    /// as the server `server_name`; returns how many were sent. Blocking (HTTP and database).
    ///
    /// # Errors
    /// See [`UpstreamError`]; what was acknowledged before stays acknowledged.
    pub fn push_all(&self, store: &Store, server_name: &str) -> Result<usize, UpstreamError> {
        let mut sent = 0;
        loop {
            let after = store.push_cursor(&self.cfg.url)?;
            let rows = store.entries_after(after, BATCH)?;
            let Some(last) = rows.last().map(|(e, _)| e.number) else {
                return Ok(sent);
            };
            let content = BundleContent::of(server_name, &rows);
            let mut raw = [0u8; 24];
            crate::crypto::random::fill(&mut raw)
                .map_err(|e| UpstreamError::Setup(format!("random: {e}")))?;
            let password = SecretText::from_string(hex::encode(raw));
            let sealed = bundle::encrypt(&content, password.as_str().as_bytes())?;
            let answer = self
                .client
                .import(&self.login, B64.encode(sealed), password)?;
            let answered = answer.imported.len() + answer.already_present.len();
            if answered != rows.len() {
                return Err(UpstreamError::Answer {
                    sent: rows.len(),
                    answered,
                });
            }
            let numbers: Vec<i64> = rows.iter().map(|(e, _)| e.number).collect();
            let ev = AuditEvent::new("server", "local", "upstream_push").detail(format!(
                "to {}: {} new there, {} there already",
                self.cfg.url,
                answer.imported.len(),
                answer.already_present.len()
            ));
            store.record_push(&self.cfg.url, last, &numbers, &ev)?;
            sent += rows.len();
        }
    }
}
