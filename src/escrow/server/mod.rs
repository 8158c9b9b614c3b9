//! The escrow server (`tcvault-escrowd`): HTTPS + JSON under `/v1/`, SQLite or PostgreSQL.
//!
//! The packet is opaque here: the server stores bytes it cannot decrypt (sealed by the client to
//! the escrow authority's RSA public key) next to the clear facts the client sends for finding
//! it again. The server holds only the authority's **public** key.
//!
//! # API (version 1)
//!
//! The bodies below are the types of [`crate::escrow::wire`], which the client uses too; this
//! table is the overview.
//!
//! All bodies are JSON; errors are `{"error": "<code>", "message": "<text>"}` with a fitting
//! status (400 bad input, 401 wrong or missing credentials, 403 refused, 404, 409, 413 body too
//! large, 429 throttled with `Retry-After`). Authenticated routes take HTTP Basic credentials
//! (the network user name and password) on every request, or a session token
//! (`Authorization: Bearer`, from `POST /v1/session`: [`auth::Sessions`]); TLS is mandatory.
//! A user name missing from the local user table is checked by the LDAP directory where
//! `<LDAP>` configures one ([`ldap`]; such users get no session: 503, and the client sends the
//! password with each request).
//!
//! | Method and path | Who | What |
//! |---|---|---|
//! | `GET /v1/health` | anyone | `{"status":"ok","api":"v1"}` |
//! | `GET /v1/authority-key` | anyone | `{"algorithm":"RSA","bits","public_key_pem","fingerprint"}` |
//! | `POST /v1/session` | any user, with the password | 201 `{"token","user","expires_in"}`: a token that stands for the password on later requests until it expires (5 min), the password changes or the server restarts |
//! | `POST /v1/deposits` | any user | deposit (below) |
//! | `GET /v1/deposits` | any user | the caller's own entries `{"entries":[entry…]}` |
//! | `GET /v1/deposits/{n}/recovery` | the entry's owner | `{"entry","packet"}`: the recovery packet (self-service recovery; 404 for anyone else, 409 `no_recovery`, 403 when `SELF_SERVICE_RECOVERY` is 0) |
//! | `GET /v1/account` | any user | `{"user","admin","escrow_required"}`: the client asks before a deposit (`user require-escrow`) |
//! | `POST /v1/deletion-requests` | owner (or admin) | `{"escrow_number":N,"reason":"…"}` → 201 `{"request_id","escrow_number","status":"pending"}` |
//! | `GET /v1/admin/entries?salt=&fingerprint=&user=&from=&to=&number=&limit=` | admin | search → `{"entries":[entry…]}` (newest first, `limit` ≤ 1000, default 100; dates as Unix seconds or RFC 3339) |
//! | `GET /v1/admin/entries/{number}` | admin | one entry plus `"packet"` (base64); under dual control (`FETCH_APPROVAL_SECONDS`) only with an approved fetch request of the caller's, once, else 403 `approval_required` |
//! | `POST /v1/admin/entries/{number}/salts` | admin | `{"salts":["<hex>"…]}` → the entry: records the salts a restore wrote (audited `salts_recorded`; a search hint like every salt) |
//! | `GET /v1/admin/deletion-requests` | admin | pending requests |
//! | `POST /v1/admin/deletion-requests/{id}/approve` | admin, not the requester | deletes the entry |
//! | `POST /v1/admin/deletion-requests/{id}/reject` | admin | keeps the entry, closes the request |
//! | `POST /v1/admin/fetch-requests` | admin | `{"escrow_number":N,"reason":"…"}` → 201 `{"request_id","escrow_number","status":"pending"}` (dual control) |
//! | `GET /v1/admin/fetch-requests` | admin | pending fetch requests |
//! | `POST /v1/admin/fetch-requests/{id}/approve` | admin, not the requester | the requester may fetch that packet once |
//! | `POST /v1/admin/fetch-requests/{id}/reject` | admin | closes the request |
//! | `POST /v1/admin/export` | export right | `{"escrow_numbers":[…],"bundle_password":"…"}` → `{"bundle":"<base64>","count"}`; refused under dual control (a bundle carries the packets) |
//! | `POST /v1/admin/import` | import right | `{"bundle":"<base64>","bundle_password":"…"}` → `{"imported":[{"source_number","escrow_number"}],"already_present":[…]}` |
//!
//! "admin" means `USER_ADMIN` = 1 **and** a TCP peer address inside an `ADMIN_SUBNET_MASK`
//! network; export and import need their own right (`user set-rights`) and the same networks.
//!
//! ## Deposit request (`POST /v1/deposits`)
//!
//! ```json
//! {
//!   "volume_fingerprint": "<hex, 16..64 bytes: stable, derived from the master keys, never the keys>",
//!   "salts": ["<hex, 64 bytes>", "..."],
//!   "authority_fingerprint": "<hex, 32 bytes: SHA-256 of the authority key's DER SubjectPublicKeyInfo>",
//!   "metadata": { "<the packet's clear metadata>": "any JSON object, at most 16 KiB" },
//!   "packet": "<base64 (standard, padded) of the sealed packet, at most 256 KiB>"
//! }
//! ```
//!
//! * `salts`: 1 to 16 salts that can be read from the volume without a password (primary
//!   header, hidden-volume slot, embedded backup headers); restore searches by them.
//! * `authority_fingerprint` must equal `GET /v1/authority-key`'s `fingerprint` (else 409
//!   `wrong_authority`): a packet sealed to another key would be useless here.
//! * Unknown fields are refused (400).
//!
//! Answer: 201 `{"escrow_number": N, "already_in_escrow": false, "created": "<RFC 3339>"}` for a
//! new entry; 200 with `"already_in_escrow": true` and the existing number when the same user
//! already escrowed the same `volume_fingerprint`. In that case the new packet replaces the old
//! one (after a password change it holds the header the volume holds now, which a restore proves
//! the entry against) and salts not yet recorded are added to the entry (restore looks the entry
//! up by them). An import never replaces a packet.
//!
//! Either answer is sent only after the transaction holding the deposit has committed: deposits
//! that arrive together are committed together ([`batch`]), one commit and so one fsync for all
//! of them, and each is answered after it.
//!
//! An `entry` in answers: `{"escrow_number", "created", "created_unix", "user",
//! "volume_fingerprint", "salts", "authority_fingerprint", "metadata", "origin"}`.
//!
//! # Audit
//!
//! Login failures, refusals, deposits, searches, fetches, deletion requests and approvals,
//! exports, imports and user administration are appended to the `AUDIT` table in the same
//! transaction as the action.
//!
//! The chain is keyed: each row carries an HMAC-SHA-256 tag under a secret **audit key** kept
//! outside the database (`<AUDIT_KEY>`, default `audit.key` beside the configuration, 32 random
//! bytes written by `init` with mode 0600; the server refuses to start when the file is open to
//! group or others, or when the key does not verify the chain). Each audit row also records the
//! MAC (same key) of every user, escrow entry (owner, fingerprints, metadata, packet, origin,
//! salts) and deletion request that its action created, changed or deleted.
//! `tcvault-escrowd audit verify` ([`store::Store::verify_audit`]) checks every tag and replays
//! the recorded MACs against the tables, so an edited, inserted or deleted row, a changed owner,
//! admin flag or password hash, or an audit table rewritten with SHA-256 or another key, is
//! named and makes it exit 3. Someone who can read the key can forge all of it: keep the key
//! out of database backups, keep a copy somewhere safe, and give servers sharing one database
//! the same key.
//!
//! A database from before the keyed chain is keyed on its first open with a key (server start
//! or any command): `audit_keyed` rows record every row present then; older audit rows keep
//! their unkeyed hash check, and cannot be rewritten afterwards because the first keyed row's
//! tag covers the last unkeyed hash. The design is in [`store::audit`].

pub mod api;
pub mod auth;
pub mod authority;
pub mod batch;
pub mod bundle;
pub mod config;
pub mod http;
pub mod ldap;
pub mod store;
pub mod upstream;

pub use config::{Config, ConfigError};
pub use http::{Server, ServerError};
pub use store::Store;
