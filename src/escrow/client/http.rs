//! HTTPS client of the escrow server's `/v1/` API (see [`crate::escrow::server`]): deposits
//! for users, searches and packet downloads for admins. TLS trusts only the configured CA
//! or pinned certificate when one is given.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::ClientConfig;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached (connection refused, DNS, timeout, TLS).
    #[error("the escrow server {server} cannot be reached: {why}")]
    Unreachable {
        /// Base URL.
        server: String,
        /// What happened.
        why: String,
    },
    /// The server answered with an error.
    #[error("the escrow server refused: {message} (HTTP {status}, {code})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The API error code.
        code: String,
        /// The server's message.
        message: String,
    },
    /// An answer that does not parse.
    #[error("unexpected answer from the escrow server: {0}")]
    BadAnswer(String),
    /// The client could not be set up (bad CA file).
    #[error("cannot set up the HTTPS client: {0}")]
    Setup(String),
}

/// A network user name and password (HTTP Basic over TLS).
#[derive(Clone)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password.
    pub password: crate::secret::SecretText,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// A deposit request body.
#[derive(Debug, Serialize)]
pub struct Deposit {
    /// Stable volume fingerprint (hex).
    pub volume_fingerprint: String,
    /// Salts readable without a password (hex).
    pub salts: Vec<String>,
    /// The authority key's fingerprint (hex).
    pub authority_fingerprint: String,
    /// The packet's clear metadata.
    pub metadata: Value,
    /// The packet, base64.
    pub packet: String,
}

/// The answer to a deposit.
#[derive(Debug, Deserialize)]
pub struct DepositAnswer {
    /// The escrow number.
    pub escrow_number: i64,
    /// Whether this user had escrowed this volume already.
    pub already_in_escrow: bool,
}

/// An entry as the server lists it.
#[derive(Clone, Debug, Deserialize)]
pub struct Entry {
    /// The escrow number.
    pub escrow_number: i64,
    /// When (RFC 3339).
    pub created: String,
    /// Who escrowed it.
    pub user: String,
    /// Volume fingerprint.
    #[serde(default)]
    pub volume_fingerprint: String,
    /// Salts recorded.
    #[serde(default)]
    pub salts: Vec<String>,
    /// Clear metadata.
    #[serde(default)]
    pub metadata: Value,
}

/// What an admin searches by.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// A salt (hex).
    pub salt: Option<String>,
    /// A volume fingerprint (hex).
    pub fingerprint: Option<String>,
    /// A user name.
    pub user: Option<String>,
    /// From this date (Unix seconds or RFC 3339).
    pub from: Option<String>,
    /// Up to this date.
    pub to: Option<String>,
    /// An escrow number.
    pub number: Option<i64>,
}

/// The escrow server, as the client sees it.
#[derive(Debug)]
pub struct EscrowClient {
    http: reqwest::blocking::Client,
    base: String,
}

#[derive(Deserialize)]
struct ApiErr {
    #[serde(default)]
    error: String,
    #[serde(default)]
    message: String,
}

impl EscrowClient {
    /// A client for the server of `cfg`.
    ///
    /// # Errors
    /// [`ClientError::Setup`].
    pub fn new(cfg: &ClientConfig) -> Result<EscrowClient, ClientError> {
        let mut b = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .https_only(true)
            .connect_timeout(cfg.timeout)
            .timeout(cfg.timeout);
        if let Some(pem) = &cfg.ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Setup(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Setup(
                    "the CA file holds no certificate".into(),
                ));
            }
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b.build().map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(EscrowClient {
            http,
            base: cfg.server.clone(),
        })
    }

    fn send(
        &self,
        req: reqwest::blocking::RequestBuilder,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let resp = req.send().map_err(|e| {
            let mut why = e.to_string();
            let mut s = std::error::Error::source(&e);
            while let Some(x) = s {
                why.push_str(": ");
                why.push_str(&x.to_string());
                s = x.source();
            }
            ClientError::Unreachable {
                server: self.base.clone(),
                why,
            }
        })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let body: ApiErr = resp.json().unwrap_or(ApiErr {
            error: String::new(),
            message: status.canonical_reason().unwrap_or("error").to_owned(),
        });
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
        })
    }

    fn json<T: serde::de::DeserializeOwned>(
        resp: reqwest::blocking::Response,
    ) -> Result<T, ClientError> {
        resp.json()
            .map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `GET /v1/authority-key`: the PEM and its fingerprint.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn authority_key(&self) -> Result<(String, String), ClientError> {
        #[derive(Deserialize)]
        struct A {
            public_key_pem: String,
            fingerprint: String,
        }
        let a: A =
            Self::json(self.send(self.http.get(format!("{}/v1/authority-key", self.base)))?)?;
        Ok((a.public_key_pem, a.fingerprint))
    }

    /// `POST /v1/deposits`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn deposit(&self, login: &Login, d: &Deposit) -> Result<DepositAnswer, ClientError> {
        let req = self
            .http
            .post(format!("{}/v1/deposits", self.base))
            .basic_auth(&login.user, Some(login.password.as_str()))
            .json(d);
        Self::json(self.send(req)?)
    }

    /// `GET /v1/admin/entries?…`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn search(&self, login: &Login, q: &Query) -> Result<Vec<Entry>, ClientError> {
        #[derive(Deserialize)]
        struct L {
            entries: Vec<Entry>,
        }
        let mut params: Vec<(&str, String)> = Vec::new();
        let opt = [
            ("salt", &q.salt),
            ("fingerprint", &q.fingerprint),
            ("user", &q.user),
            ("from", &q.from),
            ("to", &q.to),
        ];
        for (k, v) in opt {
            if let Some(v) = v {
                params.push((k, v.clone()));
            }
        }
        if let Some(n) = q.number {
            params.push(("number", n.to_string()));
        }
        let req = self
            .http
            .get(format!("{}/v1/admin/entries", self.base))
            .basic_auth(&login.user, Some(login.password.as_str()))
            .query(&params);
        let l: L = Self::json(self.send(req)?)?;
        Ok(l.entries)
    }

    /// `GET /v1/admin/entries/{number}`: the entry and its packet.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn fetch(&self, login: &Login, number: i64) -> Result<(Entry, Vec<u8>), ClientError> {
        #[derive(Deserialize)]
        struct F {
            #[serde(flatten)]
            entry: Entry,
            packet: String,
        }
        let req = self
            .http
            .get(format!("{}/v1/admin/entries/{number}", self.base))
            .basic_auth(&login.user, Some(login.password.as_str()));
        let f: F = Self::json(self.send(req)?)?;
        let bytes = B64
            .decode(f.packet.as_bytes())
            .map_err(|e| ClientError::BadAnswer(format!("packet: {e}")))?;
        Ok((f.entry, bytes))
    }
}
