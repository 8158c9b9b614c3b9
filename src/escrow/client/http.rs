//! HTTPS client of the escrow server's `/v1/` API: one method per route of
//! [`crate::escrow::wire`], whose types it sends and reads. TLS trusts only the configured CA
//! or pinned certificate when one is given.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::config::ClientConfig;
use crate::escrow::wire::{
    self, DeletionList, DeletionRequestBody, DeletionStatus, DepositRequest, DepositResponse,
    Entry, EntryList, EntryWithPacket, ErrorBody, ExportRequest, ExportResponse, FetchList,
    FetchRequestBody, FetchStatus, ImportRequest, ImportResponse, SaltsRequest, SearchParams,
    route,
};
use crate::secret::SecretText;

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

/// A network user name and password (HTTP Basic over TLS), and the session token that stands
/// for the password once [`EscrowClient::open_session`] got one.
#[derive(Clone)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Password.
    pub password: crate::secret::SecretText,
    token: Option<SecretText>,
}

impl Login {
    /// A login with a password, and no session yet.
    pub fn new(user: String, password: SecretText) -> Login {
        Login {
            user,
            password,
            token: None,
        }
    }

    /// Whether requests present a session token instead of the password.
    pub fn has_session(&self) -> bool {
        self.token.is_some()
    }
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// The escrow server, as the client sees it.
#[derive(Debug)]
pub struct EscrowClient {
    http: reqwest::blocking::Client,
    base: String,
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
        let body: ErrorBody = resp.json().unwrap_or(ErrorBody {
            error: String::new(),
            message: status.canonical_reason().unwrap_or("error").to_owned(),
        });
        Err(ClientError::Refused {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
        })
    }

    fn json<T: DeserializeOwned>(resp: reqwest::blocking::Response) -> Result<T, ClientError> {
        resp.json()
            .map_err(|e| ClientError::BadAnswer(e.to_string()))
    }

    /// `req` authenticated as `login`: its session token, else its password.
    fn auth(
        req: reqwest::blocking::RequestBuilder,
        login: &Login,
    ) -> reqwest::blocking::RequestBuilder {
        match &login.token {
            Some(t) => req.bearer_auth(t.as_str()),
            None => req.basic_auth(&login.user, Some(login.password.as_str())),
        }
    }

    fn get<T: DeserializeOwned>(&self, login: &Login, path: &str) -> Result<T, ClientError> {
        let req = Self::auth(self.http.get(self.url(path)), login);
        Self::json(self.send(req)?)
    }

    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        login: &Login,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut req = Self::auth(self.http.post(self.url(path)), login);
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::json(self.send(req)?)
    }

    /// `GET /v1/authority-key`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn authority_key(&self) -> Result<wire::AuthorityKey, ClientError> {
        Self::json(self.send(self.http.get(self.url(route::AUTHORITY_KEY)))?)
    }

    /// `POST /v1/session`: `login` with a session token, so that the requests that follow
    /// cost the server no password check each. A server that offers no session (an older
    /// one, or one that cannot open it now) leaves `login` with its password.
    ///
    /// # Errors
    /// See [`ClientError`] (a wrong password among them).
    pub fn open_session(&self, login: &Login) -> Result<Login, ClientError> {
        let req = self
            .http
            .post(self.url(route::SESSION))
            .basic_auth(&login.user, Some(login.password.as_str()));
        match self.send(req) {
            Ok(resp) => {
                let s: wire::SessionResponse = Self::json(resp)?;
                Ok(Login {
                    token: Some(s.token),
                    ..login.clone()
                })
            }
            Err(ClientError::Refused {
                status: 404 | 503, ..
            }) => Ok(login.clone()),
            Err(e) => Err(e),
        }
    }

    /// `GET /v1/account`: the caller's account (`None` from a server without the route).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn account(&self, login: &Login) -> Result<Option<wire::Account>, ClientError> {
        match self.get(login, route::ACCOUNT) {
            Ok(a) => Ok(Some(a)),
            Err(ClientError::Refused { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /v1/deposits`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn deposit(
        &self,
        login: &Login,
        d: &DepositRequest,
    ) -> Result<DepositResponse, ClientError> {
        self.post(login, route::DEPOSITS, Some(d))
    }

    /// `GET /v1/deposits`: the caller's own entries.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn own_entries(&self, login: &Login) -> Result<Vec<Entry>, ClientError> {
        let l: EntryList = self.get(login, route::DEPOSITS)?;
        Ok(l.entries)
    }

    /// `GET /v1/admin/entries?…`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn search(&self, login: &Login, q: &SearchParams) -> Result<Vec<Entry>, ClientError> {
        let req = Self::auth(self.http.get(self.url(route::ADMIN_ENTRIES)), login).query(q);
        let l: EntryList = Self::json(self.send(req)?)?;
        Ok(l.entries)
    }

    /// `GET /v1/admin/entries/{number}`: the entry and its packet.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn fetch(&self, login: &Login, number: i64) -> Result<(Entry, Vec<u8>), ClientError> {
        Self::with_packet(self.get(login, &route::admin_entry(number))?)
    }

    /// `GET /v1/deposits/{number}/recovery`: the caller's own entry and its recovery packet.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn fetch_recovery(
        &self,
        login: &Login,
        number: i64,
    ) -> Result<(Entry, Vec<u8>), ClientError> {
        Self::with_packet(self.get(login, &route::own_recovery(number))?)
    }

    fn with_packet(f: EntryWithPacket) -> Result<(Entry, Vec<u8>), ClientError> {
        let bytes = B64
            .decode(f.packet.as_bytes())
            .map_err(|e| ClientError::BadAnswer(format!("packet: {e}")))?;
        Ok((f.entry, bytes))
    }

    /// `POST /v1/admin/entries/{number}/salts`: records salts a restore wrote.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn record_salts(
        &self,
        login: &Login,
        number: i64,
        salts: Vec<String>,
    ) -> Result<Entry, ClientError> {
        self.post(
            login,
            &route::admin_entry_salts(number),
            Some(&SaltsRequest { salts }),
        )
    }

    /// `POST /v1/deletion-requests`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn request_deletion(
        &self,
        login: &Login,
        number: i64,
        reason: &str,
    ) -> Result<DeletionStatus, ClientError> {
        let body = DeletionRequestBody {
            escrow_number: number,
            reason: reason.to_owned(),
        };
        self.post(login, route::DELETION_REQUESTS, Some(&body))
    }

    /// `GET /v1/admin/deletion-requests`: the pending requests.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn pending_deletions(&self, login: &Login) -> Result<DeletionList, ClientError> {
        self.get(login, route::ADMIN_DELETIONS)
    }

    /// Approves (`true`) or rejects deletion request `id`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn decide_deletion(
        &self,
        login: &Login,
        id: i64,
        approve: bool,
    ) -> Result<DeletionStatus, ClientError> {
        let path = if approve {
            route::approve(id)
        } else {
            route::reject(id)
        };
        self.post::<(), _>(login, &path, None)
    }

    /// `POST /v1/admin/fetch-requests`: asks that another admin approve fetching the packet
    /// of entry `number` (dual control).
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn request_fetch(
        &self,
        login: &Login,
        number: i64,
        reason: &str,
    ) -> Result<FetchStatus, ClientError> {
        let body = FetchRequestBody {
            escrow_number: number,
            reason: reason.to_owned(),
        };
        self.post(login, route::ADMIN_FETCH_REQUESTS, Some(&body))
    }

    /// `GET /v1/admin/fetch-requests`: the pending fetch requests.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn pending_fetches(&self, login: &Login) -> Result<FetchList, ClientError> {
        self.get(login, route::ADMIN_FETCH_REQUESTS)
    }

    /// Approves (`true`) or rejects fetch request `id`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn decide_fetch(
        &self,
        login: &Login,
        id: i64,
        approve: bool,
    ) -> Result<FetchStatus, ClientError> {
        let path = if approve {
            route::approve_fetch(id)
        } else {
            route::reject_fetch(id)
        };
        self.post::<(), _>(login, &path, None)
    }

    /// `POST /v1/admin/export`: the entries `numbers` in a bundle sealed with `password`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn export(
        &self,
        login: &Login,
        numbers: Vec<i64>,
        password: SecretText,
    ) -> Result<ExportResponse, ClientError> {
        let body = ExportRequest {
            escrow_numbers: numbers,
            bundle_password: password,
        };
        self.post(login, route::ADMIN_EXPORT, Some(&body))
    }

    /// `POST /v1/admin/import`.
    ///
    /// # Errors
    /// See [`ClientError`].
    pub fn import(
        &self,
        login: &Login,
        bundle: String,
        password: SecretText,
    ) -> Result<ImportResponse, ClientError> {
        let body = ImportRequest {
            bundle,
            bundle_password: password,
        };
        self.post(login, route::ADMIN_IMPORT, Some(&body))
    }
}
