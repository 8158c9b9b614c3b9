//! The escrow server's `/v1/` wire contract: every route's path and every request and answer
//! body, defined once for both sides (the server's handlers in `escrow::server::api`, the
//! client in [`crate::escrow::client::http`]).
//!
//! All bodies are JSON. Requests are strict (unknown fields are refused with 400); answers
//! are read leniently (an added field does not break an older client). Byte strings are
//! lower-case hex (salts, fingerprints) or standard padded base64 (packets, bundles); dates
//! are RFC 3339 in UTC, with the Unix seconds beside them where a client may compute with
//! them. Errors are an [`ErrorBody`] with an HTTP status: 400 malformed, 401 wrong
//! credentials, 403 not allowed (admin rights, admin network), 404 no such entry or route,
//! 409 conflict (another authority key, a request already decided), 413 too large, 429
//! throttled (with `Retry-After`), 500 internal.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::secret::SecretText;

/// The API version in every path.
pub const API_VERSION: &str = "v1";

/// The routes, as paths below the server's base URL.
pub mod route {
    /// `GET`: [`super::Health`].
    pub const HEALTH: &str = "/v1/health";
    /// `GET`: [`super::AuthorityKey`].
    pub const AUTHORITY_KEY: &str = "/v1/authority-key";
    /// `POST` [`super::DepositRequest`] → [`super::DepositResponse`] (201 new, 200 already in
    /// escrow); `GET` → [`super::EntryList`] of the caller's own entries.
    pub const DEPOSITS: &str = "/v1/deposits";
    /// `POST` (HTTP Basic only) → 201 [`super::SessionResponse`]: a short-lived token that
    /// later requests may present instead of the password (`Authorization: Bearer`).
    pub const SESSION: &str = "/v1/session";
    /// `GET` → [`super::Account`]: the caller's own account, as the client needs it before a
    /// deposit (whether escrow is required of them).
    pub const ACCOUNT: &str = "/v1/account";
    /// `POST` [`super::DeletionRequestBody`] → 201 [`super::DeletionStatus`]: a user asks
    /// for their own entry (an admin for any) to be deleted.
    pub const DELETION_REQUESTS: &str = "/v1/deletion-requests";
    /// `GET` with [`super::SearchParams`] → [`super::EntryList`] (admin).
    pub const ADMIN_ENTRIES: &str = "/v1/admin/entries";
    /// `GET` → [`super::DeletionList`] of pending requests (admin).
    pub const ADMIN_DELETIONS: &str = "/v1/admin/deletion-requests";
    /// `POST` [`super::ExportRequest`] → [`super::ExportResponse`] (export right).
    pub const ADMIN_EXPORT: &str = "/v1/admin/export";
    /// `POST` [`super::ImportRequest`] → [`super::ImportResponse`] (import right).
    pub const ADMIN_IMPORT: &str = "/v1/admin/import";
    /// Dual control: `POST` [`super::FetchRequestBody`] → 201 [`super::FetchStatus`] (an
    /// admin asks to fetch a packet); `GET` → [`super::FetchList`] of pending requests
    /// (admin).
    pub const ADMIN_FETCH_REQUESTS: &str = "/v1/admin/fetch-requests";

    /// `GET` → [`super::EntryWithPacket`] with the entry's recovery packet (the caller's own
    /// entries only; audited as `recovery_fetch`): self-service recovery.
    pub fn own_recovery(number: i64) -> String {
        format!("{DEPOSITS}/{number}/recovery")
    }
    /// `GET` → [`super::EntryWithPacket`] (admin; audited as a fetch).
    pub fn admin_entry(number: i64) -> String {
        format!("{ADMIN_ENTRIES}/{number}")
    }
    /// `POST` [`super::SaltsRequest`] → [`super::Entry`]: records salts a restore wrote
    /// (admin).
    pub fn admin_entry_salts(number: i64) -> String {
        format!("{ADMIN_ENTRIES}/{number}/salts")
    }
    /// `POST` → [`super::DeletionStatus`] (admin; not the requester).
    pub fn approve(id: i64) -> String {
        format!("{ADMIN_DELETIONS}/{id}/approve")
    }
    /// `POST` → [`super::DeletionStatus`] (admin).
    pub fn reject(id: i64) -> String {
        format!("{ADMIN_DELETIONS}/{id}/reject")
    }
    /// `POST` → [`super::FetchStatus`] (admin; not the requester).
    pub fn approve_fetch(id: i64) -> String {
        format!("{ADMIN_FETCH_REQUESTS}/{id}/approve")
    }
    /// `POST` → [`super::FetchStatus`] (admin).
    pub fn reject_fetch(id: i64) -> String {
        format!("{ADMIN_FETCH_REQUESTS}/{id}/reject")
    }

    /// The router's patterns of the routes with a parameter.
    pub mod pattern {
        /// [`super::own_recovery`].
        pub const OWN_RECOVERY: &str = "/v1/deposits/{number}/recovery";
        /// [`super::admin_entry`].
        pub const ADMIN_ENTRY: &str = "/v1/admin/entries/{number}";
        /// [`super::admin_entry_salts`].
        pub const ADMIN_ENTRY_SALTS: &str = "/v1/admin/entries/{number}/salts";
        /// [`super::approve`].
        pub const APPROVE: &str = "/v1/admin/deletion-requests/{id}/approve";
        /// [`super::reject`].
        pub const REJECT: &str = "/v1/admin/deletion-requests/{id}/reject";
        /// [`super::approve_fetch`].
        pub const APPROVE_FETCH: &str = "/v1/admin/fetch-requests/{id}/approve";
        /// [`super::reject_fetch`].
        pub const REJECT_FETCH: &str = "/v1/admin/fetch-requests/{id}/reject";
    }
}

/// Every error answer.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A stable code (`bad_request`, `unauthorized`, `forbidden`, `throttled`, …).
    #[serde(default)]
    pub error: String,
    /// What happened, for people.
    #[serde(default)]
    pub message: String,
}

/// `GET /v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// [`API_VERSION`].
    pub api: String,
}

/// `GET /v1/authority-key`: the public key packets are sealed to.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AuthorityKey {
    /// `RSA`.
    pub algorithm: String,
    /// Modulus size.
    pub bits: usize,
    /// SubjectPublicKeyInfo PEM.
    pub public_key_pem: String,
    /// Hex SHA-256 of the DER SubjectPublicKeyInfo.
    pub fingerprint: String,
    /// How [`AuthorityKey::fingerprint`] is computed, spelled out.
    pub fingerprint_algorithm: String,
}

/// `POST /v1/deposits` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepositRequest {
    /// Hex, 16 to 64 bytes: stable fingerprint derived from the master keys.
    pub volume_fingerprint: String,
    /// Hex, 64 bytes each, 1 to 16: the salts readable without a password.
    pub salts: Vec<String>,
    /// Hex, 32 bytes: must equal the server's authority key fingerprint.
    pub authority_fingerprint: String,
    /// The packet's clear metadata: a JSON object.
    pub metadata: Value,
    /// The sealed packet, base64.
    pub packet: String,
}

/// `POST /v1/session` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct SessionResponse {
    /// The token (64 hex digits), for `Authorization: Bearer <token>`.
    pub token: SecretText,
    /// The user it was issued to (the only one it authenticates).
    pub user: String,
    /// Seconds it is accepted for, from now (not extended by use). It also ends when the
    /// user's password changes, the user is removed or the server restarts: then requests
    /// with it get 401 and the client logs in again.
    pub expires_in: u64,
}

/// `GET /v1/account` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Account {
    /// The user name the request authenticated.
    pub user: String,
    /// `USER_ADMIN` = 1.
    #[serde(default)]
    pub admin: bool,
    /// The site requires this user to escrow every volume before it is used
    /// (`tcvault-escrowd user require-escrow`).
    #[serde(default)]
    pub escrow_required: bool,
}

/// `POST /v1/deposits` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DepositResponse {
    /// The escrow number (new, or the existing one).
    pub escrow_number: i64,
    /// True when this user had already escrowed this volume fingerprint.
    pub already_in_escrow: bool,
    /// RFC 3339 date of the entry.
    pub created: String,
}

/// An escrow entry as the server lists it (without its packet).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The escrow number.
    pub escrow_number: i64,
    /// When it was escrowed (RFC 3339).
    pub created: String,
    /// The same, Unix seconds.
    #[serde(default)]
    pub created_unix: i64,
    /// Who escrowed it.
    pub user: String,
    /// The volume fingerprint (hex).
    #[serde(default)]
    pub volume_fingerprint: String,
    /// Salts recorded for it (hex): a search hint, never proof that it belongs to a volume.
    #[serde(default)]
    pub salts: Vec<String>,
    /// The authority key it is sealed to (hex fingerprint).
    #[serde(default)]
    pub authority_fingerprint: String,
    /// The packet's clear metadata.
    #[serde(default)]
    pub metadata: Value,
    /// `local`, or `import:SERVER#NUMBER`.
    #[serde(default)]
    pub origin: String,
    /// Whether the user deposited it with a recovery passphrase (`tcvault recover` works).
    #[serde(default)]
    pub recovery: bool,
}

/// A list of entries.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntryList {
    /// The entries, newest first.
    pub entries: Vec<Entry>,
}

/// `GET /v1/admin/entries/{number}`: the entry and its packet.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EntryWithPacket {
    /// The entry.
    #[serde(flatten)]
    pub entry: Entry,
    /// The sealed packet, base64.
    pub packet: String,
}

/// `GET /v1/admin/entries` query: every criterion given must match.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// A salt (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
    /// A volume fingerprint (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// A user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// From this date (Unix seconds or RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Up to this date.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// An escrow number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
    /// Most results (1 to 1000; 100 when absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

/// `POST /v1/admin/entries/{number}/salts` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaltsRequest {
    /// Hex, 64 bytes each, 1 to 16.
    pub salts: Vec<String>,
}

/// `POST /v1/deletion-requests` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletionRequestBody {
    /// The entry to delete.
    pub escrow_number: i64,
    /// Why (shown to the approving admin; at most 1000 characters).
    #[serde(default)]
    pub reason: String,
}

/// Where a deletion request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionState {
    /// Waiting for a second admin.
    Pending,
    /// Approved: the entry is deleted.
    Approved,
    /// Rejected: the entry stays.
    Rejected,
}

impl DeletionState {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionState::Pending => "pending",
            DeletionState::Approved => "approved",
            DeletionState::Rejected => "rejected",
        }
    }

    /// The state named `s`.
    pub fn from_name(s: &str) -> Option<DeletionState> {
        [
            DeletionState::Pending,
            DeletionState::Approved,
            DeletionState::Rejected,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }
}

/// The answer to a deletion request, approval or rejection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeletionStatus {
    /// The request.
    pub request_id: i64,
    /// Its entry.
    pub escrow_number: i64,
    /// Where it stands now.
    pub status: DeletionState,
    /// Whether the entry is gone.
    #[serde(default)]
    pub deleted: bool,
}

/// A pending deletion request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deletion {
    /// The request.
    pub request_id: i64,
    /// Its entry.
    pub escrow_number: i64,
    /// Who asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
    /// Where it stands.
    pub status: DeletionState,
}

/// `GET /v1/admin/deletion-requests`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeletionList {
    /// The pending requests, oldest first.
    pub requests: Vec<Deletion>,
}

/// The [`ErrorBody::error`] of a packet fetch refused for want of a second admin's approval
/// (HTTP 403): the client then asks for one ([`route::ADMIN_FETCH_REQUESTS`]).
pub const APPROVAL_REQUIRED: &str = "approval_required";

/// The [`ErrorBody::error`] of a recovery fetch of an entry deposited without a recovery
/// passphrase (HTTP 409).
pub const NO_RECOVERY: &str = "no_recovery";

/// `POST /v1/admin/fetch-requests` body.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchRequestBody {
    /// The entry whose packet the admin wants.
    pub escrow_number: i64,
    /// Why (shown to the approving admin; at most 1000 characters).
    #[serde(default)]
    pub reason: String,
}

/// Where a fetch request stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FetchState {
    /// Waiting for a second admin.
    Pending,
    /// Approved: the requester may fetch the packet once.
    Approved,
    /// Rejected.
    Rejected,
    /// Approved and used by a fetch.
    Used,
}

impl FetchState {
    /// The name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            FetchState::Pending => "pending",
            FetchState::Approved => "approved",
            FetchState::Rejected => "rejected",
            FetchState::Used => "used",
        }
    }
}

/// The answer to a fetch request, approval or rejection.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchStatus {
    /// The request.
    pub request_id: i64,
    /// Its entry.
    pub escrow_number: i64,
    /// Where it stands now.
    pub status: FetchState,
}

/// A pending fetch request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchRequest {
    /// The request.
    pub request_id: i64,
    /// Its entry.
    pub escrow_number: i64,
    /// Which admin asked.
    pub requested_by: String,
    /// When (RFC 3339).
    pub requested: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// `GET /v1/admin/fetch-requests`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FetchList {
    /// The pending requests, oldest first.
    pub requests: Vec<FetchRequest>,
}

/// `POST /v1/admin/export` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// Entries to export (1 to 10,000).
    pub escrow_numbers: Vec<i64>,
    /// Password protecting the bundle (at least 8 characters).
    pub bundle_password: SecretText,
}

/// `POST /v1/admin/export` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportResponse {
    /// The password-protected bundle, base64.
    pub bundle: String,
    /// Entries in it.
    pub count: usize,
}

/// `POST /v1/admin/import` body.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// A bundle as [`ExportResponse::bundle`] gives it.
    pub bundle: String,
    /// Its password.
    pub bundle_password: SecretText,
}

/// One imported entry: its number on the exporting server and here.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Imported {
    /// The number it had on the server that exported it.
    pub source_number: i64,
    /// Its number here.
    pub escrow_number: i64,
}

/// `POST /v1/admin/import` answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportResponse {
    /// Entries new here.
    pub imported: Vec<Imported>,
    /// Entries this server held already (same user and volume fingerprint).
    pub already_present: Vec<Imported>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_refuse_unknown_fields_and_answers_accept_them() {
        let r: Result<DeletionRequestBody, _> =
            serde_json::from_str(r#"{"escrow_number": 1, "reason": "", "extra": 1}"#);
        assert!(r.is_err());
        let a: DeletionStatus = serde_json::from_str(
            r#"{"request_id": 2, "escrow_number": 1, "status": "approved", "deleted": true, "new": 0}"#,
        )
        .expect("lenient answer");
        assert_eq!(a.status, DeletionState::Approved);
    }

    #[test]
    fn secrets_cross_the_wire_but_never_print() {
        let e = ExportRequest {
            escrow_numbers: vec![3],
            bundle_password: SecretText::from_string("bundle pass".into()),
        };
        let json = serde_json::to_string(&e).expect("serialise");
        assert!(json.contains("\"bundle_password\":\"bundle pass\""));
        let back: ExportRequest = serde_json::from_str(&json).expect("parse");
        assert_eq!(back.bundle_password.as_str(), "bundle pass");
        assert!(!format!("{back:?}").contains("bundle pass"));
    }

    #[test]
    fn search_params_leave_out_what_is_not_given() {
        let p = SearchParams {
            user: Some("alice".into()),
            ..SearchParams::default()
        };
        assert_eq!(
            serde_json::to_string(&p).expect("serialise"),
            r#"{"user":"alice"}"#
        );
    }

    #[test]
    fn routes_and_their_patterns_agree() {
        assert_eq!(
            route::admin_entry(7),
            route::pattern::ADMIN_ENTRY.replace("{number}", "7")
        );
        assert_eq!(
            route::admin_entry_salts(7),
            route::pattern::ADMIN_ENTRY_SALTS.replace("{number}", "7")
        );
        assert_eq!(
            route::approve(4),
            route::pattern::APPROVE.replace("{id}", "4")
        );
        assert_eq!(
            route::reject(4),
            route::pattern::REJECT.replace("{id}", "4")
        );
        assert!(route::HEALTH.starts_with(&format!("/{API_VERSION}/")));
    }
}
