//! The JSON API under `/v1/` (see the module docs of [`super`] for the request shapes).
//!
//! Authentication is HTTP Basic (network user name and password) on every request, over TLS,
//! checked against the local user table, else (with `<LDAP>`) by the directory.
//! Admin routes additionally need `USER_ADMIN` = 1 *and* a TCP peer address inside one of the
//! `ADMIN_SUBNET_MASK` networks; export and import need their own rights and the same networks.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::secret::SecretBytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value as Json_;

use super::auth::{Login, Sessions, Throttle, Verifier};
use super::authority::AuthorityKey;
use super::batch::DepositQueue;
use super::bundle::{self, BundleContent, BundleError};
use super::config::Config;
use super::ldap::{Directory, DirectoryLogin};
use super::store::{
    AuditEvent, EntrySummary, NewEntry, SearchQuery, Store, StoreError, UserRecord,
    packet_has_recovery,
};
use crate::escrow::wire::{
    self, API_VERSION, Account, DeletionList, DeletionRequestBody, DeletionState, DeletionStatus,
    DepositRequest, DepositResponse, Entry, EntryList, EntryWithPacket, ErrorBody, ExportRequest,
    ExportResponse, FetchList, FetchRequestBody, FetchState, FetchStatus, Health, ImportRequest,
    ImportResponse, Imported, SaltsRequest, SearchParams, SessionResponse, route,
};
use crate::header::layout::SALT_LEN;

/// Longest accepted user name.
pub const MAX_USER_NAME: usize = 128;
/// Largest accepted packet (decoded bytes).
pub const MAX_PACKET_BYTES: usize = 256 * 1024;
/// Largest accepted clear metadata (serialised JSON bytes).
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
/// Most salts per deposit.
pub const MAX_SALTS: usize = 16;
/// Most entries a search returns.
pub const MAX_SEARCH_RESULTS: i64 = 1000;

/// Everything the handlers share.
#[derive(Debug)]
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// The configuration.
    pub config: Config,
    /// Failed-login bookkeeping.
    pub throttle: Throttle,
    /// The LDAP directory that checks the logins of user names not in the local table.
    pub directory: Option<Directory>,
    /// The authority public key.
    pub authority: AuthorityKey,
    /// Password checks: the verified-credential cache, one Argon2id run per credential at a
    /// time.
    pub verifier: Verifier,
    /// Deposits waiting for the next group commit.
    pub deposits: DepositQueue,
    /// Open session tokens.
    pub sessions: Sessions,
}

type Shared = Arc<AppState>;

/// An API error: an HTTP status and a JSON body `{"error": code, "message": text}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }
    /// The HTTP status the error answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The short error code of the JSON body (`"bad_request"`, `"wrong_authority"` …).
    pub fn code(&self) -> &'static str {
        self.code
    }

    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server could not complete the request (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            Json(ErrorBody {
                error: self.code.to_owned(),
                message: self.message,
            }),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tcvault-escrow\", charset=\"UTF-8\""),
            );
        }
        if let Some(wait) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoSuchEntry(n) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no escrow entry {n}"),
            ),
            StoreError::NoSuchRequest(n) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no deletion request {n}"),
            ),
            StoreError::Forbidden(m) => Self::new(StatusCode::FORBIDDEN, "forbidden", m),
            StoreError::NotPending(n) => Self::new(
                StatusCode::CONFLICT,
                "not_pending",
                format!("deletion request {n} was already decided"),
            ),
            StoreError::NoSuchFetchRequest(n) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no fetch request {n}"),
            ),
            StoreError::FetchNotPending(n) => Self::new(
                StatusCode::CONFLICT,
                "not_pending",
                format!("fetch request {n} was already decided"),
            ),
            StoreError::ApprovalNeeded(n) => Self::new(
                StatusCode::FORBIDDEN,
                wire::APPROVAL_REQUIRED,
                format!(
                    "this server requires a second admin's approval before the packet of entry \
                     {n} is fetched: ask for it (POST {}) and have another admin approve it",
                    route::ADMIN_FETCH_REQUESTS
                ),
            ),
            StoreError::NoRecovery(n) => Self::new(
                StatusCode::CONFLICT,
                wire::NO_RECOVERY,
                format!(
                    "escrow entry {n} was deposited without a recovery passphrase: only the help \
                     desk can restore it"
                ),
            ),
            other => {
                log_line(&format!("storage error: {other}"));
                Self::internal()
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            return Self::new(status, "too_large", r.body_text());
        }
        // Malformed JSON and JSON of the wrong shape (axum's 422) alike are a bad request.
        Self::new(StatusCode::BAD_REQUEST, "bad_json", r.body_text())
    }
}

/// Writes one line to the server log (standard error).
pub fn log_line(line: &str) {
    use std::io::Write;
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let _ = writeln!(std::io::stderr().lock(), "{now} {line}");
}

/// Runs a store call on a blocking thread.
async fn blocking<T: Send + 'static>(
    state: &Shared,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || f(&store)).await {
        Ok(r) => r.map_err(ApiError::from),
        Err(e) => {
            log_line(&format!("storage task failed: {e}"));
            Err(ApiError::internal())
        }
    }
}

/// The user name the request authenticated as, filled in by [`Authed`] for the log line.
#[derive(Clone, Debug, Default)]
struct LogUser(Arc<Mutex<Option<String>>>);

fn peer_of(parts: &Parts) -> Result<SocketAddr, ApiError> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .ok_or_else(ApiError::internal)
}

/// An authenticated caller.
#[derive(Debug)]
pub struct Authed {
    user: UserRecord,
    peer: SocketAddr,
    /// Authenticated by a session token rather than the password.
    by_token: bool,
    /// Authenticated by the LDAP directory (no local account).
    by_directory: bool,
}

impl Authed {
    fn event(&self, event: &str) -> AuditEvent {
        AuditEvent::new(&self.user.name, &self.peer.to_string(), event)
    }
}

/// The user name and password of an HTTP Basic `Authorization` header, decoded straight into
/// secret buffers (the header value itself belongs to the HTTP stack).
fn basic_credentials(parts: &Parts) -> Option<(String, SecretBytes)> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let b64 = b64.trim();
    let mut decoded = SecretBytes::zeroed(base64::decoded_len_estimate(b64.len()));
    let n = B64.decode_slice(b64, decoded.expose_mut()).ok()?;
    let decoded = &decoded.expose()[..n];
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?.to_owned();
    Some((user, SecretBytes::from_slice(&decoded[colon + 1..])))
}

/// The token of an `Authorization: Bearer` header, copied into a secret buffer.
fn bearer_token(parts: &Parts) -> Option<SecretBytes> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| SecretBytes::from_slice(token.trim().as_bytes()))
}

/// The caller of a request bearing a session token: the token's user, if the session holds
/// for that user's row as it is now (password unchanged, user present).
async fn session_user(
    parts: &Parts,
    state: &Shared,
    peer: SocketAddr,
    token: &SecretBytes,
) -> Result<Authed, ApiError> {
    let ended = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the session token is unknown, expired or ended (password changed, server \
             restarted): log in again",
        )
    };
    let name = state.sessions.user_of(token.expose()).ok_or_else(ended)?;
    let lookup = name.clone();
    let stored = blocking(state, move |s| s.user(&lookup)).await?;
    let hash = stored.as_ref().map(|u| u.password_hash.as_str());
    if !state.sessions.holds(token.expose(), &name, hash) {
        return Err(ended());
    }
    let user = stored.ok_or_else(ended)?;
    if let Some(slot) = parts.extensions.get::<LogUser>()
        && let Ok(mut g) = slot.0.lock()
    {
        *g = Some(user.name.clone());
    }
    Ok(Authed {
        user,
        peer,
        by_token: true,
        by_directory: false,
    })
}

/// A login of `name` refused for `wait` by the throttle, audited (a failure to audit it is
/// the answer then).
async fn throttled(state: &Shared, name: &str, peer: SocketAddr, wait: Duration) -> ApiError {
    let ev = AuditEvent::new(name, &peer.to_string(), "login_failure")
        .detail("refused: too many failed logins");
    if let Err(e) = blocking(state, move |s| s.record(&ev, &[])).await {
        return e;
    }
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled",
        format!(
            "too many failed logins for this user or address; try again in {} s",
            wait.as_secs().max(1)
        ),
    );
    e.retry_after = Some(wait);
    e
}

/// A login of `name`, who has no local account, checked by the LDAP directory: throttled and
/// audited as every login; the user is an admin when the directory says they are in the admin
/// group. User names are kept in lower case, as the directory compares them.
async fn directory_login(
    parts: &Parts,
    state: &Shared,
    directory: &Directory,
    peer: SocketAddr,
    name: &str,
    password: &SecretBytes,
) -> Result<Authed, ApiError> {
    let attempt = match state.throttle.begin(name, peer.ip()).await {
        Ok(a) => a,
        Err(wait) => return Err(throttled(state, name, peer, wait).await),
    };
    let refused = |detail: &'static str, message: &'static str| {
        let ev = AuditEvent::new(name, &peer.to_string(), "login_failure").detail(detail);
        (
            ev,
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
        )
    };
    let (ev, err) = match directory.login(name, password.expose()).await {
        Ok(DirectoryLogin::Accepted { admin, .. }) => {
            attempt.succeeded();
            let user = UserRecord {
                name: name.to_lowercase(),
                password_hash: String::new(),
                admin,
                export: false,
                import: false,
                escrow_required: false,
            };
            if let Some(slot) = parts.extensions.get::<LogUser>()
                && let Ok(mut g) = slot.0.lock()
            {
                *g = Some(user.name.clone());
            }
            return Ok(Authed {
                user,
                peer,
                by_token: false,
                by_directory: true,
            });
        }
        Ok(DirectoryLogin::Refused) => {
            attempt.failed();
            refused(
                "ldap: wrong user name or password",
                "wrong user name or password",
            )
        }
        Ok(DirectoryLogin::Disabled) => {
            attempt.failed();
            refused("ldap: account disabled", "this account is disabled")
        }
        Err(e) => {
            // Counted as a failure: an outage must not open a way around the throttle.
            attempt.failed();
            log_line(&e.to_string());
            let ev = AuditEvent::new(name, &peer.to_string(), "login_failure")
                .detail("ldap: the directory cannot be reached");
            (
                ev,
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the directory that checks logins cannot be reached; try again later",
                ),
            )
        }
    };
    blocking(state, move |s| s.record(&ev, &[])).await?;
    Err(err)
}

/// `POST /v1/session`: a session token for the caller, who logged in with the password.
async fn open_session(State(state): State<Shared>, who: Authed) -> Result<Response, ApiError> {
    if who.by_token {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a session is opened with the password (HTTP Basic), not with another session",
        ));
    }
    if who.by_directory {
        // The directory may disable the account or change its groups at any time: its users
        // log in with each request.
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "sessions are for local accounts; a directory (LDAP) user sends the password with \
             each request",
        ));
    }
    let token = state
        .sessions
        .issue(&who.user.name, &who.user.password_hash)
        .map_err(|e| {
            log_line(&format!("cannot open a session: {e}"));
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the server cannot open a session now; use the password on each request",
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(SessionResponse {
            token,
            user: who.user.name.clone(),
            expires_in: state.sessions.ttl().as_secs(),
        }),
    )
        .into_response())
}

impl FromRequestParts<Shared> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Shared) -> Result<Self, ApiError> {
        let peer = peer_of(parts)?;
        if let Some(token) = bearer_token(parts) {
            return session_user(parts, state, peer, &token).await;
        }
        let Some((name, password)) = basic_credentials(parts) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this request needs HTTP Basic authentication with your network user name",
            ));
        };
        if name.is_empty() || name.len() > MAX_USER_NAME || name.chars().any(char::is_control) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "wrong user name or password",
            ));
        }
        let lookup = name.clone();
        let stored = blocking(state, move |s| s.user(&lookup)).await?;
        if stored.is_none()
            && let Some(directory) = &state.directory
        {
            return directory_login(parts, state, directory, peer, &name, &password).await;
        }
        let hash = stored.as_ref().map(|u| u.password_hash.as_str());
        let login = state
            .verifier
            .login(&state.throttle, &name, peer.ip(), password, hash)
            .await
            .map_err(|_| ApiError::internal())?;
        let user = match login {
            Login::Accepted => stored,
            Login::Refused => None,
            Login::Throttled(wait) => return Err(throttled(state, &name, peer, wait).await),
        };
        match user {
            Some(user) => {
                if let Some(slot) = parts.extensions.get::<LogUser>()
                    && let Ok(mut g) = slot.0.lock()
                {
                    *g = Some(user.name.clone());
                }
                Ok(Authed {
                    user,
                    peer,
                    by_token: false,
                    by_directory: false,
                })
            }
            None => {
                let ev = AuditEvent::new(&name, &peer.to_string(), "login_failure")
                    .detail("wrong user name or password");
                blocking(state, move |s| s.record(&ev, &[])).await?;
                Err(ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "wrong user name or password",
                ))
            }
        }
    }
}

/// Which right an admin-network route needs.
#[derive(Clone, Copy, Debug)]
enum Right {
    Admin,
    Export,
    Import,
}

async fn require(state: &Shared, who: &Authed, right: Right) -> Result<(), ApiError> {
    let (has, what) = match right {
        Right::Admin => (who.user.admin, "admin (USER_ADMIN = 1)"),
        Right::Export => (who.user.export, "export"),
        Right::Import => (who.user.import, "import"),
    };
    let refusal = if !has {
        Some(format!(
            "user {} does not have the {what} right",
            who.user.name
        ))
    } else if !state.config.is_admin_network(who.peer.ip()) {
        Some(format!(
            "this operation is allowed only from the ADMIN_SUBNET_MASK networks; {} is outside them",
            who.peer.ip()
        ))
    } else {
        None
    };
    match refusal {
        None => Ok(()),
        Some(message) => {
            let ev = who.event("denied").detail(message.clone());
            blocking(state, move |s| s.record(&ev, &[])).await?;
            Err(ApiError::new(StatusCode::FORBIDDEN, "forbidden", message))
        }
    }
}

fn rfc3339(unix: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn parse_time(s: &str, what: &str) -> Result<i64, ApiError> {
    if let Ok(n) = s.parse::<i64>() {
        return Ok(n);
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        ApiError::bad(format!(
            "{what}: {s:?} is neither Unix seconds nor an RFC 3339 date like 2026-11-29T12:00:00Z"
        ))
    })?;
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .map_err(|_| ApiError::bad(format!("{what}: before 1970")))
}

fn parse_hex(s: &str, what: &str, min: usize, max: usize) -> Result<String, ApiError> {
    let bytes =
        hex::decode(s.trim()).map_err(|_| ApiError::bad(format!("{what} must be hexadecimal")))?;
    if bytes.len() < min || bytes.len() > max {
        return Err(ApiError::bad(if min == max {
            format!("{what} must be {min} bytes")
        } else {
            format!("{what} must be {min} to {max} bytes")
        }));
    }
    Ok(hex::encode(bytes))
}

fn entry_wire(e: &EntrySummary) -> Entry {
    Entry {
        escrow_number: e.number,
        created: rfc3339(e.created_at),
        created_unix: e.created_at,
        user: e.user.clone(),
        volume_fingerprint: e.volume_fingerprint.clone(),
        salts: e.salts.clone(),
        authority_fingerprint: e.authority_fingerprint.clone(),
        metadata: serde_json::from_str(&e.metadata).unwrap_or(Json_::Null),
        origin: e.origin.clone(),
        recovery: e.recovery,
    }
}

fn entry_list(entries: &[EntrySummary]) -> Json<EntryList> {
    Json(EntryList {
        entries: entries.iter().map(entry_wire).collect(),
    })
}

// ---- handlers ----

async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        api: API_VERSION.to_owned(),
    })
}

async fn authority_key(State(state): State<Shared>) -> Json<wire::AuthorityKey> {
    Json(wire::AuthorityKey {
        algorithm: "RSA".to_owned(),
        bits: state.authority.bits,
        public_key_pem: state.authority.pem.clone(),
        fingerprint: state.authority.fingerprint.clone(),
        fingerprint_algorithm: "SHA-256 of the DER SubjectPublicKeyInfo".to_owned(),
    })
}

/// Checks a deposit from `user` against the server's authority key fingerprint (lower-case
/// hex) and turns it into the entry to store: hex fields lower-cased, salts sorted and
/// deduplicated, metadata as JSON text, the packet decoded.
///
/// # Errors
/// 400 for a field out of shape or size, 409 `wrong_authority` for a packet sealed to another
/// authority key.
pub fn validate_deposit(
    authority_fingerprint_expected: &str,
    user: &str,
    r: DepositRequest,
) -> Result<NewEntry, ApiError> {
    let volume_fingerprint = parse_hex(&r.volume_fingerprint, "volume_fingerprint", 16, 64)?;
    let salts = checked_salts(&r.salts, "each salt")?;
    let authority_fingerprint =
        parse_hex(&r.authority_fingerprint, "authority_fingerprint", 32, 32)?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        authority_fingerprint.as_bytes(),
        authority_fingerprint_expected.as_bytes(),
    )) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "wrong_authority",
            format!(
                "the packet is sealed to authority key {authority_fingerprint}, but this server \
                 escrows for {authority_fingerprint_expected}; fetch /v1/authority-key and seal \
                 again"
            ),
        ));
    }
    if !r.metadata.is_object() {
        return Err(ApiError::bad("metadata must be a JSON object"));
    }
    let metadata = r.metadata.to_string();
    if metadata.len() > MAX_METADATA_BYTES {
        return Err(ApiError::bad(format!(
            "metadata is larger than {MAX_METADATA_BYTES} bytes"
        )));
    }
    let packet = B64
        .decode(r.packet.as_bytes())
        .map_err(|_| ApiError::bad("packet must be base64 (standard alphabet, padded)"))?;
    if packet.is_empty() || packet.len() > MAX_PACKET_BYTES {
        return Err(ApiError::bad(format!(
            "packet must be 1 to {MAX_PACKET_BYTES} bytes"
        )));
    }
    Ok(NewEntry {
        user: user.to_owned(),
        volume_fingerprint,
        salts,
        authority_fingerprint,
        metadata,
        recovery: packet_has_recovery(&packet),
        packet,
        created_at: None,
        origin: "local".to_owned(),
    })
}

async fn deposit(
    State(state): State<Shared>,
    who: Authed,
    body: Result<Json<DepositRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body?;
    let entry = validate_deposit(&state.authority.fingerprint, &who.user.name, req)?;
    let ev = who.event("deposit");
    // Answered only once the group commit holding this deposit is done.
    let out = state.deposits.deposit(entry, ev).await?;
    let status = if out.already_in_escrow {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(DepositResponse {
            escrow_number: out.number,
            already_in_escrow: out.already_in_escrow,
            created: rfc3339(out.created_at),
        }),
    )
        .into_response())
}

async fn account(who: Authed) -> Json<Account> {
    Json(Account {
        user: who.user.name.clone(),
        admin: who.user.admin,
        escrow_required: who.user.escrow_required,
    })
}

async fn own_entries(
    State(state): State<Shared>,
    who: Authed,
) -> Result<Json<EntryList>, ApiError> {
    let name = who.user.name.clone();
    let entries = blocking(&state, move |s| s.own_entries(&name)).await?;
    Ok(entry_list(&entries))
}

/// Self-service recovery: the caller's own entry with its recovery packet. Another user's
/// entry is answered as no entry (404), so that numbers reveal nothing.
async fn own_recovery(
    State(state): State<Shared>,
    who: Authed,
    number: Result<Path<i64>, PathRejection>,
) -> Result<Json<EntryWithPacket>, ApiError> {
    if !state.config.self_service_recovery {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this server does not offer self-service recovery (SELF_SERVICE_RECOVERY is 0); \
             ask the help desk for a restore",
        ));
    }
    let Path(number) = number.map_err(|r| ApiError::bad(r.body_text()))?;
    let ev = who.event("recovery_fetch");
    let user = who.user.name.clone();
    let (entry, packet) = blocking(&state, move |s| s.fetch_recovery(number, &user, &ev)).await?;
    Ok(Json(EntryWithPacket {
        entry: entry_wire(&entry),
        packet: B64.encode(packet),
    }))
}

async fn search(
    State(state): State<Shared>,
    who: Authed,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<EntryList>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Query(p) = params.map_err(|r| ApiError::bad(r.body_text()))?;
    let q = search_query(p)?;
    let criteria = format!(
        "salt={} fingerprint={} user={} from={} to={} number={}",
        q.salt.is_some(),
        q.fingerprint.as_deref().unwrap_or("-"),
        q.user.as_deref().unwrap_or("-"),
        q.from.map_or("-".to_owned(), |v| v.to_string()),
        q.to.map_or("-".to_owned(), |v| v.to_string()),
        q.number.map_or("-".to_owned(), |v| v.to_string()),
    );
    let ev = who.event("search").detail(criteria);
    let found = blocking(&state, move |s| s.search(&q, &ev)).await?;
    Ok(entry_list(&found))
}

/// The search an admin asked for: hex lower-cased and checked, dates as Unix seconds (or RFC
/// 3339), `limit` clamped to 1..=[`MAX_SEARCH_RESULTS`] (100 when absent).
///
/// # Errors
/// 400 for a malformed salt, fingerprint, date or number.
pub fn search_query(p: SearchParams) -> Result<SearchQuery, ApiError> {
    Ok(SearchQuery {
        salt: p
            .salt
            .map(|s| parse_hex(&s, "salt", SALT_LEN, SALT_LEN))
            .transpose()?,
        fingerprint: p
            .fingerprint
            .map(|s| parse_hex(&s, "fingerprint", 16, 64))
            .transpose()?,
        user: p.user,
        from: p.from.map(|s| parse_time(&s, "from")).transpose()?,
        to: p.to.map(|s| parse_time(&s, "to")).transpose()?,
        number: p
            .number
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::bad("number must be an integer"))
            })
            .transpose()?,
        limit: p
            .limit
            .map(|s| {
                s.parse::<i64>()
                    .map_err(|_| ApiError::bad("limit must be an integer"))
            })
            .transpose()?
            .unwrap_or(100)
            .clamp(1, MAX_SEARCH_RESULTS),
    })
}

async fn fetch(
    State(state): State<Shared>,
    who: Authed,
    number: Result<Path<i64>, PathRejection>,
) -> Result<Json<EntryWithPacket>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Path(number) = number.map_err(|r| ApiError::bad(r.body_text()))?;
    let ev = who.event("fetch");
    let (entry, packet) = match state.config.fetch_approval {
        None => blocking(&state, move |s| s.fetch(number, &ev)).await?,
        Some(valid) => {
            let admin = who.user.name.clone();
            let refused = who
                .event("fetch_refused")
                .detail("no approval by another admin");
            blocking(&state, move |s| {
                match s.fetch_approved(number, &admin, valid, &ev) {
                    Err(StoreError::ApprovalNeeded(n)) => {
                        s.record(&refused, &[n])?;
                        Err(StoreError::ApprovalNeeded(n))
                    }
                    other => other,
                }
            })
            .await?
        }
    };
    Ok(Json(EntryWithPacket {
        entry: entry_wire(&entry),
        packet: B64.encode(packet),
    }))
}

/// Salts of a body, checked and lower-cased, sorted and distinct.
fn checked_salts(salts: &[String], what: &str) -> Result<Vec<String>, ApiError> {
    if salts.is_empty() || salts.len() > MAX_SALTS {
        return Err(ApiError::bad(format!("salts: give 1 to {MAX_SALTS} salts")));
    }
    let mut out = salts
        .iter()
        .map(|s| parse_hex(s, what, SALT_LEN, SALT_LEN))
        .collect::<Result<Vec<_>, _>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

/// An admin records the salts a restore wrote, so that the next restore finds the entry by
/// salt. Like every salt, they are only a search hint.
async fn record_salts(
    State(state): State<Shared>,
    who: Authed,
    number: Result<Path<i64>, PathRejection>,
    body: Result<Json<SaltsRequest>, JsonRejection>,
) -> Result<Json<Entry>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Path(number) = number.map_err(|r| ApiError::bad(r.body_text()))?;
    let Json(b) = body?;
    let salts = checked_salts(&b.salts, "each salt")?;
    let ev = who
        .event("salts_recorded")
        .detail(format!("salts={}", salts.len()));
    let entry = blocking(&state, move |s| s.record_salts(number, &salts, &ev)).await?;
    Ok(Json(entry_wire(&entry)))
}

async fn request_deletion(
    State(state): State<Shared>,
    who: Authed,
    body: Result<Json<DeletionRequestBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(b) = body?;
    if b.reason.chars().count() > 1000 {
        return Err(ApiError::bad("reason: at most 1000 characters"));
    }
    let may_any = who.user.admin && state.config.is_admin_network(who.peer.ip());
    let ev = who.event("deletion_request");
    let name = who.user.name.clone();
    let id = blocking(&state, move |s| {
        s.request_deletion(b.escrow_number, &name, may_any, &b.reason, &ev)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(DeletionStatus {
            request_id: id,
            escrow_number: b.escrow_number,
            status: DeletionState::Pending,
            deleted: false,
        }),
    )
        .into_response())
}

async fn pending_deletions(
    State(state): State<Shared>,
    who: Authed,
) -> Result<Json<DeletionList>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let list = blocking(&state, |s| s.pending_deletions()).await?;
    let requests = list
        .iter()
        .map(|r| {
            Ok(wire::Deletion {
                request_id: r.id,
                escrow_number: r.number,
                requested_by: r.requested_by.clone(),
                requested: rfc3339(r.requested_at),
                reason: r.reason.clone(),
                status: DeletionState::from_name(&r.status).ok_or_else(ApiError::internal)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(Json(DeletionList { requests }))
}

async fn approve_deletion(
    State(state): State<Shared>,
    who: Authed,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeletionStatus>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Path(id) = id.map_err(|r| ApiError::bad(r.body_text()))?;
    let ev = who.event("deletion_approve");
    let name = who.user.name.clone();
    let number = blocking(&state, move |s| s.approve_deletion(id, &name, &ev)).await?;
    Ok(Json(DeletionStatus {
        request_id: id,
        escrow_number: number,
        status: DeletionState::Approved,
        deleted: true,
    }))
}

async fn reject_deletion(
    State(state): State<Shared>,
    who: Authed,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<DeletionStatus>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Path(id) = id.map_err(|r| ApiError::bad(r.body_text()))?;
    let ev = who.event("deletion_reject");
    let name = who.user.name.clone();
    let number = blocking(&state, move |s| s.reject_deletion(id, &name, &ev)).await?;
    Ok(Json(DeletionStatus {
        request_id: id,
        escrow_number: number,
        status: DeletionState::Rejected,
        deleted: false,
    }))
}

async fn request_fetch(
    State(state): State<Shared>,
    who: Authed,
    body: Result<Json<FetchRequestBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Json(b) = body?;
    if b.reason.chars().count() > 1000 {
        return Err(ApiError::bad("reason: at most 1000 characters"));
    }
    let ev = who.event("fetch_request");
    let name = who.user.name.clone();
    let id = blocking(&state, move |s| {
        s.request_fetch(b.escrow_number, &name, &b.reason, &ev)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(FetchStatus {
            request_id: id,
            escrow_number: b.escrow_number,
            status: FetchState::Pending,
        }),
    )
        .into_response())
}

async fn pending_fetches(
    State(state): State<Shared>,
    who: Authed,
) -> Result<Json<FetchList>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let list = blocking(&state, |s| s.pending_fetches()).await?;
    let requests = list
        .iter()
        .map(|r| wire::FetchRequest {
            request_id: r.id,
            escrow_number: r.number,
            requested_by: r.requested_by.clone(),
            requested: rfc3339(r.requested_at),
            reason: r.reason.clone(),
        })
        .collect();
    Ok(Json(FetchList { requests }))
}

async fn decide_fetch(
    state: Shared,
    who: Authed,
    id: Result<Path<i64>, PathRejection>,
    approve: bool,
) -> Result<Json<FetchStatus>, ApiError> {
    require(&state, &who, Right::Admin).await?;
    let Path(id) = id.map_err(|r| ApiError::bad(r.body_text()))?;
    let ev = who.event(if approve {
        "fetch_approve"
    } else {
        "fetch_reject"
    });
    let name = who.user.name.clone();
    let number = blocking(&state, move |s| s.decide_fetch(id, &name, approve, &ev)).await?;
    Ok(Json(FetchStatus {
        request_id: id,
        escrow_number: number,
        status: if approve {
            FetchState::Approved
        } else {
            FetchState::Rejected
        },
    }))
}

async fn approve_fetch(
    State(state): State<Shared>,
    who: Authed,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<FetchStatus>, ApiError> {
    decide_fetch(state, who, id, true).await
}

async fn reject_fetch(
    State(state): State<Shared>,
    who: Authed,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<FetchStatus>, ApiError> {
    decide_fetch(state, who, id, false).await
}

async fn export(
    State(state): State<Shared>,
    who: Authed,
    body: Result<Json<ExportRequest>, JsonRejection>,
) -> Result<Json<ExportResponse>, ApiError> {
    require(&state, &who, Right::Export).await?;
    if state.config.fetch_approval.is_some() {
        // A bundle carries the packets: exporting would be a fetch without the approval.
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "this server is under dual control (FETCH_APPROVAL_SECONDS): exports, which carry \
             the packets, are off",
        ));
    }
    let Json(b) = body?;
    if b.escrow_numbers.is_empty() || b.escrow_numbers.len() > 10_000 {
        return Err(ApiError::bad("escrow_numbers: give 1 to 10000 numbers"));
    }
    if b.bundle_password.len() < bundle::MIN_BUNDLE_PASSWORD {
        return Err(ApiError::bad(BundleError::WeakPassword.to_string()));
    }
    let ev = who.event("export");
    let numbers = b.escrow_numbers.clone();
    let rows = blocking(&state, move |s| s.export(&numbers, &ev)).await?;
    let content = BundleContent::of(&state.config.server_name, &rows);
    let count = content.entries.len();
    let sealed =
        tokio::task::spawn_blocking(move || bundle::encrypt(&content, b.bundle_password.expose()))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(ExportResponse {
        bundle: B64.encode(sealed),
        count,
    }))
}

async fn import(
    State(state): State<Shared>,
    who: Authed,
    body: Result<Json<ImportRequest>, JsonRejection>,
) -> Result<Json<ImportResponse>, ApiError> {
    require(&state, &who, Right::Import).await?;
    let Json(b) = body?;
    let raw = B64
        .decode(b.bundle.as_bytes())
        .map_err(|_| ApiError::bad("bundle must be base64"))?;
    let content =
        tokio::task::spawn_blocking(move || bundle::decrypt(&raw, b.bundle_password.expose()))
            .await
            .map_err(|_| ApiError::internal())?
            .map_err(|e| match e {
                BundleError::Open => {
                    ApiError::new(StatusCode::FORBIDDEN, "bundle_open", e.to_string())
                }
                other => ApiError::bad(other.to_string()),
            })?;
    let mut entries = Vec::with_capacity(content.entries.len());
    for e in &content.entries {
        let metadata = if e.metadata.is_object() {
            e.metadata.to_string()
        } else {
            return Err(ApiError::bad("bundle entry metadata must be a JSON object"));
        };
        let mut salts = e
            .salts
            .iter()
            .map(|s| parse_hex(s, "bundle salt", SALT_LEN, SALT_LEN))
            .collect::<Result<Vec<_>, _>>()?;
        salts.sort();
        salts.dedup();
        let packet = B64
            .decode(e.packet.as_bytes())
            .map_err(|_| ApiError::bad("bundle packet is not base64"))?;
        entries.push(NewEntry {
            user: e.user.clone(),
            volume_fingerprint: parse_hex(&e.volume_fingerprint, "bundle fingerprint", 16, 64)?,
            salts,
            authority_fingerprint: parse_hex(
                &e.authority_fingerprint,
                "bundle authority fingerprint",
                32,
                32,
            )?,
            metadata,
            recovery: packet_has_recovery(&packet),
            packet,
            created_at: Some(e.created_at),
            origin: format!("import:{}#{}", content.origin, e.source_number),
        });
    }
    let ev = who.event("import").detail(format!(
        "origin={} entries={}",
        content.origin,
        entries.len()
    ));
    let outcomes = blocking(&state, move |s| s.import(&entries, &ev)).await?;
    let mut imported = Vec::new();
    let mut present = Vec::new();
    for (e, o) in content.entries.iter().zip(&outcomes) {
        let item = Imported {
            source_number: e.source_number,
            escrow_number: o.number,
        };
        if o.already_in_escrow {
            present.push(item);
        } else {
            imported.push(item);
        }
    }
    Ok(Json(ImportResponse {
        imported,
        already_present: present,
    }))
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API route (see /v1/)",
    )
}

/// One log line per request: time, peer, method, path (no query), status, duration, user.
async fn log_requests(mut req: Request, next: Next) -> Response {
    let start = Instant::now();
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |c| c.0.to_string());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let slot = LogUser::default();
    req.extensions_mut().insert(slot.clone());
    let resp = next.run(req).await;
    let user = slot
        .0
        .lock()
        .ok()
        .and_then(|g| g.clone())
        .unwrap_or_else(|| "-".to_owned());
    log_line(&format!(
        "{peer} {method} {path} {} {}ms user={user}",
        resp.status().as_u16(),
        start.elapsed().as_millis()
    ));
    resp
}

/// The API router (expects a `ConnectInfo<SocketAddr>` extension on every request).
pub fn router(state: Arc<AppState>) -> Router {
    let limit = state.config.max_body_bytes;
    Router::new()
        .route(route::HEALTH, get(health))
        .route(route::AUTHORITY_KEY, get(authority_key))
        .route(route::DEPOSITS, post(deposit).get(own_entries))
        .route(route::SESSION, post(open_session))
        .route(route::ACCOUNT, get(account))
        .route(route::pattern::OWN_RECOVERY, get(own_recovery))
        .route(route::DELETION_REQUESTS, post(request_deletion))
        .route(route::ADMIN_ENTRIES, get(search))
        .route(route::pattern::ADMIN_ENTRY, get(fetch))
        .route(route::pattern::ADMIN_ENTRY_SALTS, post(record_salts))
        .route(route::ADMIN_DELETIONS, get(pending_deletions))
        .route(route::pattern::APPROVE, post(approve_deletion))
        .route(route::pattern::REJECT, post(reject_deletion))
        .route(route::ADMIN_EXPORT, post(export))
        .route(route::ADMIN_IMPORT, post(import))
        .route(
            route::ADMIN_FETCH_REQUESTS,
            post(request_fetch).get(pending_fetches),
        )
        .route(route::pattern::APPROVE_FETCH, post(approve_fetch))
        .route(route::pattern::REJECT_FETCH, post(reject_fetch))
        .fallback(not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn(log_requests))
}
