//! Escrow storage: one schema and one set of queries over two SQL backends.
//!
//! The backends ([`sqlite`], [`postgres`]) only know how to run a statement inside a transaction
//! ([`Backend`], [`Tx`]); everything the server means by "deposit", "search" or "approve a
//! deletion" is written once here, so both databases behave the same and one test suite covers
//! both. Every action that changes or reveals escrow data appends its audit row in the *same*
//! transaction: if the audit row cannot be written, the action does not happen.
//!
//! The audit chain is keyed with a secret kept outside the database and records the MAC of
//! every user, escrow entry and deletion request it creates, changes or deletes, so that
//! [`Store::verify_audit`] finds changes made behind the server's back ([`audit`] has the
//! design). A store opened without its [`AuditKey`] can read but not audit: every audited
//! action fails with [`StoreError::NoAuditKey`].
//!
//! Statements use `?` placeholders; the PostgreSQL backend numbers them. Integers are 64-bit
//! everywhere (`BIGINT`), times are Unix seconds, salts and fingerprints lower-case hex.

pub mod audit;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;

pub use audit::{AUDIT_KEY_LEN, AuditKey, AuditState, KEYED_EVENT, audit_mac};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// A value bound to or read from a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL (only ever read, never bound).
    Null,
    /// A 64-bit integer (`BIGINT`).
    Int(i64),
    /// Text (`TEXT`).
    Text(String),
    /// Bytes (`BLOB` / `BYTEA`).
    Bytes(Vec<u8>),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Int(i64::from(v))
    }
}

/// One result row.
pub type Row = Vec<Value>;

/// Which database a [`Backend`] talks to (the only place the schema differs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// An SQLite file.
    Sqlite,
    /// A PostgreSQL database.
    Postgres,
}

/// Errors of the escrow store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database driver failed (connection, SQL, constraint, disk full …).
    #[error("database error: {message}")]
    Database {
        /// What the driver said.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A row had a value of an unexpected type (schema drift or a damaged database).
    #[error("unexpected value in column {column} of the escrow database")]
    Corrupt {
        /// The column index in the statement.
        column: usize,
    },
    /// The database file (or its folder) is open to other users of this machine.
    #[error(
        "{path} has mode {mode:04o}: other users could read the password hashes and escrow \
         entries; chmod {want:o} {path} (and keep its folder 0700)"
    )]
    Exposed {
        /// The file or folder.
        path: std::path::PathBuf,
        /// Its mode.
        mode: u32,
        /// The mode it should have.
        want: u32,
    },
    /// The database URL names no supported backend.
    #[error("unsupported database URL {url:?}: use sqlite:PATH, a file path, or postgres://…")]
    BadUrl {
        /// The URL as configured (without password).
        url: String,
    },
    /// The database was written by a newer server.
    #[error("the database schema is version {found}, newer than this server's {supported}")]
    SchemaTooNew {
        /// Version in the database.
        found: i64,
        /// Newest version this server knows.
        supported: i64,
    },
    /// A user of that name already exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// No user of that name.
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// No escrow entry with that number.
    #[error("no escrow entry number {0}")]
    NoSuchEntry(i64),
    /// No deletion request with that id.
    #[error("no deletion request {0}")]
    NoSuchRequest(i64),
    /// The caller may not do this to this entry or request.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The deletion request was already decided.
    #[error("deletion request {0} is not pending")]
    NotPending(i64),
    /// No packet fetch request with that id.
    #[error("no fetch request {0}")]
    NoSuchFetchRequest(i64),
    /// The fetch request was already decided.
    #[error("fetch request {0} is not pending")]
    FetchNotPending(i64),
    /// Fetching this entry's packet needs a second admin's approval first (dual control).
    #[error("fetching the packet of escrow entry {0} needs another admin's approval first")]
    ApprovalNeeded(i64),
    /// The entry was deposited without a recovery passphrase.
    #[error("escrow entry {0} was deposited without a recovery passphrase")]
    NoRecovery(i64),
    /// The audit key file cannot be read or written.
    #[error(
        "audit key {path}: {source} (`tcvault-escrowd init` creates it; <AUDIT_KEY> in the \
         configuration names it)"
    )]
    AuditKeyIo {
        /// The key file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The audit key file is open to other users of this machine.
    #[error(
        "{path} has mode {mode:04o}: other users could read the audit key and forge the audit \
         trail; chmod 600 {path}"
    )]
    AuditKeyExposed {
        /// The key file.
        path: PathBuf,
        /// Its mode.
        mode: u32,
    },
    /// The audit key file does not hold a key.
    #[error("audit key {path}: {what}; an audit key file holds exactly 32 random bytes")]
    AuditKeyMalformed {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        what: String,
    },
    /// An audited action (or `verify_audit`) on a store opened without its audit key.
    #[error(
        "no audit key: this store was opened without one, so it cannot write or check audit rows"
    )]
    NoAuditKey,
    /// The key does not verify the audit row that keyed this database's chain.
    #[error(
        "the audit key does not verify audit row {seq}, which keyed this database's audit \
         chain: the key file belongs to another database, or the audit table was changed \
         (run `tcvault-escrowd audit verify`)"
    )]
    WrongAuditKey {
        /// The keying row.
        seq: i64,
    },
    /// The operating system had no random bytes for a new audit key.
    #[error(transparent)]
    Random(crate::crypto::random::RandomError),
}

impl StoreError {
    pub(crate) fn db<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        StoreError::Database {
            message: e.to_string(),
            source: Some(Box::new(e)),
        }
    }
    pub(crate) fn msg(message: impl Into<String>) -> Self {
        StoreError::Database {
            message: message.into(),
            source: None,
        }
    }
}

/// Statements inside one open transaction.
pub trait Tx {
    /// Runs a statement that returns no rows; returns the number of rows changed.
    ///
    /// # Errors
    /// Whatever the database reports.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError>;
    /// Runs a query and returns all its rows.
    ///
    /// # Errors
    /// Whatever the database reports; [`StoreError::Corrupt`] for a column type we do not map.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError>;
    /// Inserts `rows` into `table` (each row one value per column of `columns`, none of them
    /// NULL) and returns what `tail` (`ON CONFLICT …`, `RETURNING …`, or empty) gives back.
    /// The default writes multi-row `VALUES` statements (a few, so as to stay below SQLite's
    /// limit on parameters); PostgreSQL binds one array per column to a single statement
    /// (`SELECT … FROM UNNEST(…)`), so that a batch of rows is one round trip whatever its size.
    ///
    /// # Errors
    /// Whatever the database reports; an error for a row of the wrong width.
    fn insert_rows(
        &mut self,
        table: &str,
        columns: &[(&str, ColumnKind)],
        rows: &[Vec<Value>],
        tail: &str,
    ) -> Result<Vec<Row>, StoreError> {
        insert_rows_with_values(self, table, columns, rows, tail)
    }
    /// The store's audit bookkeeping for this transaction; a backend's own transactions have
    /// none (the store wraps them).
    fn audit_state(&mut self) -> Option<&mut AuditState> {
        None
    }
}

/// The type of a column written by [`Tx::insert_rows`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// `BIGINT`.
    Int,
    /// `TEXT`.
    Text,
    /// `BLOB` / `BYTEA`.
    Bytes,
}

/// Parameters per statement of the default [`Tx::insert_rows`] (SQLite allowed 999 before
/// version 3.32).
const MAX_VALUES_PARAMS: usize = 999;

/// [`Tx::insert_rows`] as multi-row `INSERT … VALUES (…), (…)` statements.
fn insert_rows_with_values<T: Tx + ?Sized>(
    tx: &mut T,
    table: &str,
    columns: &[(&str, ColumnKind)],
    rows: &[Vec<Value>],
    tail: &str,
) -> Result<Vec<Row>, StoreError> {
    let width = columns.len();
    if width == 0 || rows.iter().any(|r| r.len() != width) {
        return Err(StoreError::msg(format!(
            "insert into {table}: a row does not have {width} values (a store bug)"
        )));
    }
    let names = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
    let one = format!("({})", vec!["?"; width].join(", "));
    let mut out = Vec::new();
    for chunk in rows.chunks((MAX_VALUES_PARAMS / width).max(1)) {
        let sql = format!(
            "INSERT INTO {table} ({names}) VALUES {} {tail}",
            vec![one.as_str(); chunk.len()].join(", ")
        );
        let params: Vec<Value> = chunk.iter().flatten().cloned().collect();
        out.extend(tx.query(&sql, &params)?);
    }
    Ok(out)
}

/// A database that can run a closure in one transaction.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Which SQL dialect this is.
    fn kind(&self) -> BackendKind;
    /// Runs `f` in a transaction that commits when `f` returns `Ok` and rolls back otherwise.
    ///
    /// # Errors
    /// `f`'s error, or the database's when beginning or committing fails.
    fn with_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Runs `f` in a read-only transaction that sees one consistent snapshot of the database
    /// and does not hold back writers.
    ///
    /// # Errors
    /// `f`'s error, or the database's.
    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Runs one read-only query on its own, as [`Backend::with_snapshot`] would (PostgreSQL:
    /// one round trip, without `BEGIN` and `COMMIT`).
    ///
    /// # Errors
    /// Whatever the database reports.
    fn read(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut out = Vec::new();
        self.with_snapshot(&mut |tx| {
            out = tx.query(sql, params)?;
            Ok(())
        })?;
        Ok(out)
    }
}

/// The genesis value of the audit chain's "previous hash".
pub const AUDIT_GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Schema migrations, in order. Each is applied once and recorded in `SCHEMA_VERSION`.
fn migrations(kind: BackendKind) -> Vec<(i64, Vec<String>)> {
    let (serial, blob) = match kind {
        BackendKind::Sqlite => ("INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
        BackendKind::Postgres => (
            "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
            "BYTEA",
        ),
    };
    vec![
        (
            1,
            vec![
                // `USER` is reserved in PostgreSQL, hence the quotes (harmless in SQLite).
                "CREATE TABLE \"USER\" (USER_NAME TEXT PRIMARY KEY, PASSWORD_HASH TEXT NOT NULL, \
             USER_ADMIN BIGINT NOT NULL DEFAULT 0, USER_EXPORT BIGINT NOT NULL DEFAULT 0, \
             USER_IMPORT BIGINT NOT NULL DEFAULT 0, CREATED_AT BIGINT NOT NULL)"
                    .to_owned(),
                format!(
                    "CREATE TABLE ESCROW (ESCROW_NUMBER {serial}, CREATED_AT BIGINT NOT NULL, \
                 USER_NAME TEXT NOT NULL, VOLUME_FINGERPRINT TEXT NOT NULL, \
                 AUTHORITY_FINGERPRINT TEXT NOT NULL, METADATA TEXT NOT NULL, \
                 PACKET {blob} NOT NULL, ORIGIN TEXT NOT NULL, \
                 UNIQUE (USER_NAME, VOLUME_FINGERPRINT))"
                ),
                "CREATE INDEX ESCROW_BY_FINGERPRINT ON ESCROW (VOLUME_FINGERPRINT)".to_owned(),
                "CREATE INDEX ESCROW_BY_DATE ON ESCROW (CREATED_AT)".to_owned(),
                "CREATE TABLE ESCROW_SALT (ESCROW_NUMBER BIGINT NOT NULL, SALT TEXT NOT NULL, \
             PRIMARY KEY (ESCROW_NUMBER, SALT))"
                    .to_owned(),
                "CREATE INDEX ESCROW_SALT_BY_SALT ON ESCROW_SALT (SALT)".to_owned(),
                format!(
                    "CREATE TABLE DELETION_REQUEST (REQUEST_ID {serial}, ESCROW_NUMBER BIGINT NOT NULL, \
                 REQUESTED_BY TEXT NOT NULL, REQUESTED_AT BIGINT NOT NULL, REASON TEXT NOT NULL, \
                 STATUS TEXT NOT NULL, DECIDED_BY TEXT NOT NULL, DECIDED_AT BIGINT NOT NULL)"
                ),
                "CREATE TABLE AUDIT (SEQ BIGINT PRIMARY KEY, AUDIT_TIME BIGINT NOT NULL, \
             ACTOR TEXT NOT NULL, PEER TEXT NOT NULL, EVENT TEXT NOT NULL, \
             ESCROW_NUMBERS TEXT NOT NULL, DETAIL TEXT NOT NULL, PREV_HASH TEXT NOT NULL, \
             HASH TEXT NOT NULL)"
                    .to_owned(),
                // The head row guards against silently dropping the newest audit rows, and its row
                // lock serialises audit appends across several servers sharing one PostgreSQL.
                "CREATE TABLE AUDIT_HEAD (ID BIGINT PRIMARY KEY, SEQ BIGINT NOT NULL, \
             HASH TEXT NOT NULL)"
                    .to_owned(),
                format!("INSERT INTO AUDIT_HEAD (ID, SEQ, HASH) VALUES (1, 0, '{AUDIT_GENESIS}')"),
            ],
        ),
        (
            2,
            vec![
                // The MACs of the covered rows each audited action changed (see `audit`).
                "ALTER TABLE AUDIT ADD COLUMN ROW_CHANGES TEXT NOT NULL DEFAULT ''".to_owned(),
                // Finds the row that keyed the chain without reading the whole table.
                "CREATE INDEX AUDIT_KEYED ON AUDIT (SEQ) WHERE EVENT = 'audit_keyed'".to_owned(),
            ],
        ),
        (
            3,
            vec![
                // `user require-escrow`: the user's volumes must be escrowed before use.
                "ALTER TABLE \"USER\" ADD COLUMN ESCROW_REQUIRED BIGINT NOT NULL DEFAULT 0"
                    .to_owned(),
                // Dual control (`FETCH_APPROVAL_SECONDS`): a packet fetch an admin asked for,
                // approved by another admin, used once.
                format!(
                    "CREATE TABLE FETCH_REQUEST (REQUEST_ID {serial}, ESCROW_NUMBER BIGINT NOT NULL, \
                 REQUESTED_BY TEXT NOT NULL, REQUESTED_AT BIGINT NOT NULL, REASON TEXT NOT NULL, \
                 STATUS TEXT NOT NULL, DECIDED_BY TEXT NOT NULL, DECIDED_AT BIGINT NOT NULL)"
                ),
            ],
        ),
        (
            4,
            vec![
                // Self-service recovery: the newest packet the user deposited with a recovery
                // passphrase (NULL: never), kept apart from PACKET, which a deposit without
                // one replaces.
                format!("ALTER TABLE ESCROW ADD COLUMN RECOVERY_PACKET {blob}"),
            ],
        ),
        (
            5,
            vec![
                // `<UPSTREAM>`: per upstream URL, the newest escrow number it acknowledged.
                "CREATE TABLE UPSTREAM_PUSH (UPSTREAM TEXT PRIMARY KEY, LAST_NUMBER BIGINT NOT NULL)"
                    .to_owned(),
            ],
        ),
    ]
}

/// A user account.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// `USER_NAME`.
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// `USER_ADMIN` = 1: may search and fetch packets (restore), and approve deletions.
    pub admin: bool,
    /// May export bundles.
    pub export: bool,
    /// May import bundles.
    pub import: bool,
    /// `ESCROW_REQUIRED` = 1: the user's tcvault must escrow every volume they open, create
    /// or give a new header (the client learns it at its next login, `GET /v1/account`).
    pub escrow_required: bool,
}

impl fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRecord")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .field("export", &self.export)
            .field("import", &self.import)
            .field("escrow_required", &self.escrow_required)
            .finish_non_exhaustive()
    }
}

/// What is recorded in the audit table for one action.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    /// Who: a user name, or `cli` for local administration.
    pub actor: String,
    /// The TCP peer address, or `local`.
    pub peer: String,
    /// What: `deposit`, `search`, `fetch`, `login_failure` …
    pub event: String,
    /// Short detail; never a password or a packet.
    pub detail: String,
}

impl AuditEvent {
    /// An event with empty detail.
    pub fn new(actor: &str, peer: &str, event: &str) -> Self {
        AuditEvent {
            actor: actor.to_owned(),
            peer: peer.to_owned(),
            event: event.to_owned(),
            detail: String::new(),
        }
    }
    /// The same event with a detail text.
    #[must_use]
    pub fn detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }
}

/// A deposit as validated by the API layer.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// Depositing user.
    pub user: String,
    /// Lower-case hex.
    pub volume_fingerprint: String,
    /// Lower-case hex, deduplicated.
    pub salts: Vec<String>,
    /// Lower-case hex SHA-256 of the authority key's SubjectPublicKeyInfo.
    pub authority_fingerprint: String,
    /// The packet's clear metadata, as JSON text.
    pub metadata: String,
    /// The opaque packet.
    pub packet: Vec<u8>,
    /// Unix seconds; `None` = now.
    pub created_at: Option<i64>,
    /// Where the entry came from (`local` or `import:<server>#<number>`).
    pub origin: String,
    /// The packet has a recovery passphrase recipient ([`packet_has_recovery`]): it is kept
    /// as the entry's recovery packet too.
    pub recovery: bool,
}

/// Whether `packet` parses as an escrow packet with a recovery passphrase recipient. The
/// server keeps packets opaque otherwise; one that does not parse has none.
pub fn packet_has_recovery(packet: &[u8]) -> bool {
    crate::escrow::client::packet::Packet::parse(packet).is_ok_and(|p| p.has_recovery())
}

/// An escrow entry without its packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySummary {
    /// The escrow number.
    pub number: i64,
    /// Unix seconds.
    pub created_at: i64,
    /// Depositing user.
    pub user: String,
    /// Lower-case hex.
    pub volume_fingerprint: String,
    /// Lower-case hex.
    pub salts: Vec<String>,
    /// Lower-case hex.
    pub authority_fingerprint: String,
    /// JSON text.
    pub metadata: String,
    /// `local` or where it was imported from.
    pub origin: String,
    /// Whether the user deposited it with a recovery passphrase (self-service recovery).
    pub recovery: bool,
}

/// Search criteria; all given criteria must match.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// One of the entry's salts (lower-case hex).
    pub salt: Option<String>,
    /// The volume fingerprint (lower-case hex).
    pub fingerprint: Option<String>,
    /// Depositing user.
    pub user: Option<String>,
    /// Deposited at or after (Unix seconds).
    pub from: Option<i64>,
    /// Deposited at or before (Unix seconds).
    pub to: Option<i64>,
    /// The escrow number.
    pub number: Option<i64>,
    /// At most this many entries (newest first).
    pub limit: i64,
}

/// Result of a deposit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DepositOutcome {
    /// The new or existing escrow number.
    pub number: i64,
    /// The same user had already escrowed this volume fingerprint.
    pub already_in_escrow: bool,
    /// Unix seconds of the (existing) entry.
    pub created_at: i64,
}

/// A request that waits for a second admin: a deletion, or a packet fetch under dual control.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeletionRequest {
    /// Request id.
    pub id: i64,
    /// The entry to delete or fetch.
    pub number: i64,
    /// Who asked.
    pub requested_by: String,
    /// Unix seconds.
    pub requested_at: i64,
    /// Free text from the requester.
    pub reason: String,
    /// `pending`, `approved`, `rejected` (and for a fetch, `used`).
    pub status: String,
}

/// Outcome of [`Store::verify_audit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// Audit rows checked.
    pub rows: u64,
    /// Hash (tag) of the newest row: note it somewhere else to detect the database being put
    /// back into an earlier state.
    pub head_hash: String,
    /// The row from which the chain is keyed (earlier rows have the unkeyed check only).
    pub keyed_from: Option<i64>,
    /// Users, escrow entries and deletion requests compared with the chain.
    pub records: u64,
    /// What is wrong; empty when the chain and the tables are intact.
    pub problems: Vec<String>,
}

/// Unix seconds now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The unkeyed chained hash of one audit row written before the chain was keyed.
#[allow(clippy::too_many_arguments)] // one argument per audited column, in column order
pub fn audit_hash(
    seq: i64,
    time: i64,
    actor: &str,
    peer: &str,
    event: &str,
    numbers: &str,
    detail: &str,
    prev_hash: &str,
) -> String {
    let mut h = Sha256::new();
    h.update(b"tcvault-escrow-audit-v1\0");
    h.update(seq.to_be_bytes());
    h.update(time.to_be_bytes());
    for field in [actor, peer, event, numbers, detail, prev_hash] {
        // Length prefixes keep field boundaries unambiguous.
        h.update((field.len() as u64).to_be_bytes());
        h.update(field.as_bytes());
    }
    hex::encode(h.finalize())
}

fn int(row: &Row, i: usize) -> Result<i64, StoreError> {
    match row.get(i) {
        Some(Value::Int(v)) => Ok(*v),
        _ => Err(StoreError::Corrupt { column: i }),
    }
}
fn text(row: &Row, i: usize) -> Result<String, StoreError> {
    match row.get(i) {
        Some(Value::Text(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt { column: i }),
    }
}
fn bytes(row: &Row, i: usize) -> Result<Vec<u8>, StoreError> {
    match row.get(i) {
        Some(Value::Bytes(v)) => Ok(v.clone()),
        _ => Err(StoreError::Corrupt { column: i }),
    }
}

/// Takes the audit head's lock first, so every audited transaction is serialised the same way
/// (no deadlocks, one chain even with several servers).
fn lock_audit(tx: &mut dyn Tx) -> Result<(), StoreError> {
    tx.execute("UPDATE AUDIT_HEAD SET ID = ID WHERE ID = 1", &[])?;
    Ok(())
}

/// The columns of an `AUDIT` row, in the order [`audit_row`] gives their values.
const AUDIT_COLUMNS: [(&str, ColumnKind); 10] = [
    ("SEQ", ColumnKind::Int),
    ("AUDIT_TIME", ColumnKind::Int),
    ("ACTOR", ColumnKind::Text),
    ("PEER", ColumnKind::Text),
    ("EVENT", ColumnKind::Text),
    ("ESCROW_NUMBERS", ColumnKind::Text),
    ("DETAIL", ColumnKind::Text),
    ("ROW_CHANGES", ColumnKind::Text),
    ("PREV_HASH", ColumnKind::Text),
    ("HASH", ColumnKind::Text),
];

/// The values of the audit row of `ev` that follows the row (`prev_seq`, `prev_hash`), tagged
/// under `key`, and its tag.
fn audit_row(
    key: &AuditKey,
    (prev_seq, prev_hash): (i64, String),
    time: i64,
    ev: &AuditEvent,
    numbers: &[i64],
    changes: String,
) -> (Vec<Value>, String) {
    let seq = prev_seq + 1;
    let nums = numbers
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let hash = audit_mac(
        key, seq, time, &ev.actor, &ev.peer, &ev.event, &nums, &ev.detail, &changes, &prev_hash,
    );
    let values = vec![
        seq.into(),
        time.into(),
        ev.actor.as_str().into(),
        ev.peer.as_str().into(),
        ev.event.as_str().into(),
        nums.into(),
        ev.detail.as_str().into(),
        changes.into(),
        prev_hash.into(),
        hash.clone().into(),
    ];
    (values, hash)
}

/// The audit head (sequence number and tag of the newest row).
fn audit_head(rows: &[Row]) -> Result<(i64, String), StoreError> {
    let row = rows
        .first()
        .ok_or_else(|| StoreError::msg("the AUDIT_HEAD row is missing"))?;
    Ok((int(row, 0)?, text(row, 1)?))
}

/// Appends the audit row of `ev`, tagged under the transaction's audit key, with the covered
/// rows changed since the previous audit row of this transaction.
fn append_audit(tx: &mut dyn Tx, ev: &AuditEvent, numbers: &[i64]) -> Result<(), StoreError> {
    let key = audit::key_of(tx)?;
    let changes = audit::take_changes(tx)?;
    let head = audit_head(&tx.query("SELECT SEQ, HASH FROM AUDIT_HEAD WHERE ID = 1", &[])?)?;
    let seq = head.0 + 1;
    let (values, hash) = audit_row(&key, head, now_unix(), ev, numbers, changes);
    tx.execute(
        "INSERT INTO AUDIT (SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, \
         ROW_CHANGES, PREV_HASH, HASH) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        &values,
    )?;
    tx.execute(
        "UPDATE AUDIT_HEAD SET SEQ = ?, HASH = ? WHERE ID = 1",
        &[seq.into(), hash.into()],
    )?;
    Ok(())
}

const ENTRY_COLUMNS: &str = "ESCROW_NUMBER, CREATED_AT, USER_NAME, VOLUME_FINGERPRINT, \
                             AUTHORITY_FINGERPRINT, METADATA, ORIGIN, \
                             CAST(CASE WHEN RECOVERY_PACKET IS NULL THEN 0 ELSE 1 END AS BIGINT)";

fn entry_from_row(tx: &mut dyn Tx, row: &Row) -> Result<EntrySummary, StoreError> {
    let number = int(row, 0)?;
    let salts = tx
        .query(
            "SELECT SALT FROM ESCROW_SALT WHERE ESCROW_NUMBER = ? ORDER BY SALT",
            &[number.into()],
        )?
        .iter()
        .map(|r| text(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(EntrySummary {
        number,
        created_at: int(row, 1)?,
        user: text(row, 2)?,
        volume_fingerprint: text(row, 3)?,
        authority_fingerprint: text(row, 4)?,
        metadata: text(row, 5)?,
        origin: text(row, 6)?,
        recovery: int(row, 7)? == 1,
        salts,
    })
}

fn add_salts(tx: &mut dyn Tx, number: i64, salts: &[String]) -> Result<(), StoreError> {
    for salt in salts {
        tx.execute(
            "INSERT INTO ESCROW_SALT (ESCROW_NUMBER, SALT) VALUES (?, ?) \
             ON CONFLICT (ESCROW_NUMBER, SALT) DO NOTHING",
            &[number.into(), salt.as_str().into()],
        )?;
    }
    Ok(())
}

/// Inserts an entry, or finds the same user's entry for the same volume fingerprint: then adds any
/// new salts to it (after a password change the volume has new salts, and restore looks for
/// them) and, for a deposit, stores its newer packet.
fn insert_or_find(tx: &mut dyn Tx, e: &NewEntry) -> Result<DepositOutcome, StoreError> {
    let created = e.created_at.unwrap_or_else(now_unix);
    let rows = tx.query(
        "INSERT INTO ESCROW (CREATED_AT, USER_NAME, VOLUME_FINGERPRINT, AUTHORITY_FINGERPRINT, \
         METADATA, PACKET, ORIGIN) VALUES (?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (USER_NAME, VOLUME_FINGERPRINT) DO NOTHING RETURNING ESCROW_NUMBER",
        &[
            created.into(),
            e.user.as_str().into(),
            e.volume_fingerprint.as_str().into(),
            e.authority_fingerprint.as_str().into(),
            e.metadata.as_str().into(),
            Value::Bytes(e.packet.clone()),
            e.origin.as_str().into(),
        ],
    )?;
    if let Some(row) = rows.first() {
        let number = int(row, 0)?;
        add_salts(tx, number, &e.salts)?;
        if e.recovery {
            keep_as_recovery(tx, number)?;
        }
        audit::created(tx, (audit::Table::Escrow, number.to_string()))?;
        return Ok(DepositOutcome {
            number,
            already_in_escrow: false,
            created_at: created,
        });
    }
    merge_existing(tx, e)
}

/// Keeps the packet of entry `number` as its recovery packet too (its recipients include the
/// user's recovery passphrase).
fn keep_as_recovery(tx: &mut dyn Tx, number: i64) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE ESCROW SET RECOVERY_PACKET = PACKET WHERE ESCROW_NUMBER = ?",
        &[number.into()],
    )?;
    Ok(())
}

/// The same user's existing entry for `e`'s volume fingerprint, with `e`'s new salts added
/// and, for a deposit, its newer packet stored.
fn merge_existing(tx: &mut dyn Tx, e: &NewEntry) -> Result<DepositOutcome, StoreError> {
    let outcome = {
        let rows = tx.query(
            "SELECT ESCROW_NUMBER, CREATED_AT FROM ESCROW \
             WHERE USER_NAME = ? AND VOLUME_FINGERPRINT = ?",
            &[e.user.as_str().into(), e.volume_fingerprint.as_str().into()],
        )?;
        let row = rows
            .first()
            .ok_or_else(|| StoreError::msg("deposit conflicted but no existing entry was found"))?;
        DepositOutcome {
            number: int(row, 0)?,
            already_in_escrow: true,
            created_at: int(row, 1)?,
        }
    };
    let known = tx
        .query(
            "SELECT SALT FROM ESCROW_SALT WHERE ESCROW_NUMBER = ?",
            &[outcome.number.into()],
        )?
        .iter()
        .map(|r| text(r, 0))
        .collect::<Result<std::collections::HashSet<_>, _>>()?;
    let new: Vec<String> = e
        .salts
        .iter()
        .filter(|s| !known.contains(*s))
        .cloned()
        .collect();
    // A deposit (not an import: `created_at` is its own date there, and an older bundle must not
    // undo a newer deposit) replaces the packet: the newest header is the one the volume and
    // its later backups hold, and a restore proves an entry against exactly that header. The
    // recovery packet is replaced only by a deposit that has a recovery passphrase: one
    // without (a mount that escrows again) must not take the user's recovery away.
    let newer_packet = e.created_at.is_none();
    if !new.is_empty() || newer_packet {
        // The salts and the packet are part of the entry's MAC.
        let row = (audit::Table::Escrow, outcome.number.to_string());
        audit::track(tx, &[row], |tx| {
            if newer_packet {
                tx.execute(
                    "UPDATE ESCROW SET PACKET = ?, METADATA = ?, AUTHORITY_FINGERPRINT = ? \
                     WHERE ESCROW_NUMBER = ?",
                    &[
                        Value::Bytes(e.packet.clone()),
                        e.metadata.as_str().into(),
                        e.authority_fingerprint.as_str().into(),
                        outcome.number.into(),
                    ],
                )?;
                if e.recovery {
                    keep_as_recovery(tx, outcome.number)?;
                }
            }
            add_salts(tx, outcome.number, &new)
        })?;
    }
    Ok(outcome)
}

/// The audit detail of a deposit, as [`Store::deposit`] writes it.
fn deposit_detail(out: &DepositOutcome, entry: &NewEntry) -> String {
    if out.already_in_escrow {
        format!("already in escrow; {} salts", entry.salts.len())
    } else {
        format!("new entry; {} salts", entry.salts.len())
    }
}

/// The columns [`deposit_rows`] writes to `ESCROW`.
const ESCROW_INSERT_COLUMNS: [(&str, ColumnKind); 7] = [
    ("CREATED_AT", ColumnKind::Int),
    ("USER_NAME", ColumnKind::Text),
    ("VOLUME_FINGERPRINT", ColumnKind::Text),
    ("AUTHORITY_FINGERPRINT", ColumnKind::Text),
    ("METADATA", ColumnKind::Text),
    ("PACKET", ColumnKind::Bytes),
    ("ORIGIN", ColumnKind::Text),
];

/// Stores `batch` as [`insert_or_find`] and [`append_audit`] would one deposit after the
/// other, in a constant number of statements: the audit lock and head in one, the new entries
/// in one multi-row insert, their salts in another, the audit rows (chained and tagged here)
/// in a third, then the new head. Only deposits of a volume the user already escrowed (before
/// or earlier in the batch) take statements of their own ([`merge_existing`]), in batch order
/// after the inserts; the result is the same, since nothing else in the batch touches their
/// entry, and every audit row records the changes of its own deposit in batch order.
fn deposit_rows(
    tx: &mut dyn Tx,
    batch: &[(NewEntry, AuditEvent)],
) -> Result<Vec<DepositOutcome>, StoreError> {
    let key = audit::key_of(tx)?;
    // Takes the audit lock as `lock_audit` does and reads the head in the same statement.
    let mut head = audit_head(&tx.query(
        "UPDATE AUDIT_HEAD SET ID = ID WHERE ID = 1 RETURNING SEQ, HASH",
        &[],
    )?)?;
    let now = now_unix();
    // The first deposit of each (user, volume) may be new; later ones in the batch merge.
    let mut first = std::collections::HashSet::new();
    let tried: Vec<usize> = (0..batch.len())
        .filter(|&i| first.insert((&batch[i].0.user, &batch[i].0.volume_fingerprint)))
        .collect();
    let rows: Vec<Vec<Value>> = tried
        .iter()
        .map(|&i| {
            let e = &batch[i].0;
            vec![
                e.created_at.unwrap_or(now).into(),
                e.user.as_str().into(),
                e.volume_fingerprint.as_str().into(),
                e.authority_fingerprint.as_str().into(),
                e.metadata.as_str().into(),
                Value::Bytes(e.packet.clone()),
                e.origin.as_str().into(),
            ]
        })
        .collect();
    let inserted = tx.insert_rows(
        "ESCROW",
        &ESCROW_INSERT_COLUMNS,
        &rows,
        "ON CONFLICT (USER_NAME, VOLUME_FINGERPRINT) DO NOTHING \
         RETURNING ESCROW_NUMBER, USER_NAME, VOLUME_FINGERPRINT",
    )?;
    let mut numbers = std::collections::HashMap::new();
    for r in &inserted {
        numbers.insert((text(r, 1)?, text(r, 2)?), int(r, 0)?);
    }
    let number_of = |e: &NewEntry| {
        numbers
            .get(&(e.user.clone(), e.volume_fingerprint.clone()))
            .copied()
    };
    // The salts of the new entries, without repeats (the table's key).
    let mut new_salts: Vec<Option<Vec<String>>> = vec![None; batch.len()];
    let mut salt_rows = Vec::new();
    for &i in &tried {
        let e = &batch[i].0;
        if let Some(number) = number_of(e) {
            let mut salts = e.salts.clone();
            salts.sort();
            salts.dedup();
            salt_rows.extend(
                salts
                    .iter()
                    .map(|s| vec![Value::Int(number), s.as_str().into()]),
            );
            new_salts[i] = Some(salts);
        }
    }
    tx.insert_rows(
        "ESCROW_SALT",
        &[
            ("ESCROW_NUMBER", ColumnKind::Int),
            ("SALT", ColumnKind::Text),
        ],
        &salt_rows,
        "ON CONFLICT (ESCROW_NUMBER, SALT) DO NOTHING",
    )?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut audit_rows = Vec::with_capacity(batch.len());
    for ((entry, ev), salts) in batch.iter().zip(new_salts) {
        let out = match (salts, number_of(entry)) {
            (Some(salts), Some(number)) => {
                if entry.recovery {
                    keep_as_recovery(tx, number)?;
                }
                let created_at = entry.created_at.unwrap_or(now);
                let columns = audit::EntryColumns {
                    number,
                    created_at,
                    user: &entry.user,
                    volume_fingerprint: &entry.volume_fingerprint,
                    authority_fingerprint: &entry.authority_fingerprint,
                    metadata: &entry.metadata,
                    packet: &entry.packet,
                    origin: &entry.origin,
                    recovery_packet: entry.recovery.then_some(&entry.packet[..]),
                };
                audit::created_entry(tx, &columns, salts)?;
                DepositOutcome {
                    number,
                    already_in_escrow: false,
                    created_at,
                }
            }
            _ => merge_existing(tx, entry)?,
        };
        let ev = ev.clone().detail(deposit_detail(&out, entry));
        let changes = audit::take_changes(tx)?;
        let (values, hash) = audit_row(&key, head.clone(), now, &ev, &[out.number], changes);
        head = (head.0 + 1, hash);
        audit_rows.push(values);
        outcomes.push(out);
    }
    tx.insert_rows("AUDIT", &AUDIT_COLUMNS, &audit_rows, "")?;
    tx.execute(
        "UPDATE AUDIT_HEAD SET SEQ = ?, HASH = ? WHERE ID = 1",
        &[head.0.into(), head.1.into()],
    )?;
    Ok(outcomes)
}

/// The escrow store: business operations over a [`Backend`].
#[derive(Debug)]
pub struct Store {
    backend: Box<dyn Backend>,
    key: Option<Arc<AuditKey>>,
}

/// A backend's transaction with the store's audit bookkeeping.
struct StoreTx<'a> {
    inner: &'a mut dyn Tx,
    state: AuditState,
}

impl Tx for StoreTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        self.inner.execute(sql, params)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        self.inner.query(sql, params)
    }
    fn insert_rows(
        &mut self,
        table: &str,
        columns: &[(&str, ColumnKind)],
        rows: &[Vec<Value>],
        tail: &str,
    ) -> Result<Vec<Row>, StoreError> {
        self.inner.insert_rows(table, columns, rows, tail)
    }
    fn audit_state(&mut self) -> Option<&mut AuditState> {
        Some(&mut self.state)
    }
}

impl Store {
    /// Opens the database named by `url` and applies pending migrations, without an audit key:
    /// reads work, audited actions fail (see [`Store::with_audit_key`], [`Store::open_keyed`]).
    ///
    /// `postgres://…` / `postgresql://…` selects PostgreSQL; `sqlite:PATH` or a plain path
    /// selects SQLite, relative paths being taken from `base_dir` (the configuration's folder).
    ///
    /// # Errors
    /// Connection, migration or URL errors.
    pub fn open(url: &str, base_dir: &Path) -> Result<Store, StoreError> {
        let backend: Box<dyn Backend> =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                #[cfg(feature = "postgres")]
                {
                    Box::new(postgres::PostgresBackend::connect(url)?)
                }
                #[cfg(not(feature = "postgres"))]
                return Err(StoreError::msg(
                    "this tcvault-escrowd was built without PostgreSQL support (the `postgres` \
                     feature)",
                ));
            } else {
                let path = url.strip_prefix("sqlite:").unwrap_or(url);
                let path = path.strip_prefix("//").unwrap_or(path);
                if path.is_empty() || url.contains("://") && !url.starts_with("sqlite:") {
                    return Err(StoreError::BadUrl {
                        url: redact_url(url),
                    });
                }
                Box::new(sqlite::SqliteBackend::open(&base_dir.join(path))?)
            };
        Self::with_backend(backend)
    }

    /// Opens the database as [`Store::open`] does, with the audit key from `key_file`, keying
    /// the chain if it is not yet ([`Store::with_audit_key`]), and checks that the key is the
    /// one the chain was keyed with ([`Store::check_audit_key`]). What the server and the
    /// administration commands use.
    ///
    /// # Errors
    /// As [`Store::open`], [`AuditKey::load`] and [`Store::check_audit_key`].
    pub fn open_keyed(url: &str, base_dir: &Path, key_file: &Path) -> Result<Store, StoreError> {
        let key = AuditKey::load(key_file)?;
        let store = Self::open(url, base_dir)?.with_audit_key(key)?;
        store.check_audit_key()?;
        Ok(store)
    }

    /// A store over an already opened backend (migrations applied), without an audit key.
    ///
    /// # Errors
    /// Migration errors.
    pub fn with_backend(backend: Box<dyn Backend>) -> Result<Store, StoreError> {
        let store = Store { backend, key: None };
        store.migrate()?;
        Ok(store)
    }

    /// The same store with its audit key. A chain that is not keyed yet (a new database, or
    /// one written by an older server) is keyed now: `audit_keyed` audit rows record every
    /// user, escrow entry and deletion request present, and every later row is tagged with
    /// the key.
    ///
    /// # Errors
    /// Database errors.
    pub fn with_audit_key(mut self, key: AuditKey) -> Result<Store, StoreError> {
        self.key = Some(Arc::new(key));
        if self.tx(audit::keyed_from)?.is_none() {
            self.tx(|tx| {
                lock_audit(tx)?;
                // Another server may have keyed it meanwhile.
                if audit::keyed_from(tx)?.is_none() {
                    audit::key_chain(tx)?;
                }
                Ok(())
            })?;
        }
        Ok(self)
    }

    /// Checks that this store's key verifies the row that keyed the chain, so that a server
    /// given another database's key refuses to start instead of writing rows nobody can
    /// verify. Returns that row's number (`None` when the chain is not keyed).
    ///
    /// # Errors
    /// [`StoreError::NoAuditKey`], [`StoreError::WrongAuditKey`], database errors.
    pub fn check_audit_key(&self) -> Result<Option<i64>, StoreError> {
        let key = self.key.clone().ok_or(StoreError::NoAuditKey)?;
        self.tx(|tx| audit::check_key(tx, &key))
    }

    /// Which backend this store uses.
    pub fn kind(&self) -> BackendKind {
        self.backend.kind()
    }

    fn tx<T>(
        &self,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.backend.with_tx(&mut |inner| {
            let mut tx = StoreTx {
                inner,
                state: AuditState::new(self.key.clone()),
            };
            out = Some(f(&mut tx)?);
            if tx.state.has_pending() {
                // Rolls back: a covered row must never change without its audit row.
                return Err(StoreError::msg(
                    "covered rows were changed without an audit row (a store bug)",
                ));
            }
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::msg("transaction produced no result"))
    }

    /// Runs `f` and its audit row in one transaction; `numbers` picks the escrow numbers to record
    /// from `f`'s result.
    fn audited<T>(
        &self,
        ev: &AuditEvent,
        mut f: impl FnMut(&mut dyn Tx) -> Result<T, StoreError>,
        numbers: impl Fn(&T) -> Vec<i64>,
    ) -> Result<T, StoreError> {
        self.tx(|tx| {
            lock_audit(tx)?;
            let out = f(tx)?;
            append_audit(tx, ev, &numbers(&out))?;
            Ok(out)
        })
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.migrate_upto(i64::MAX)
    }

    /// Applies the migrations up to version `upto` (tests build old databases with it).
    fn migrate_upto(&self, upto: i64) -> Result<(), StoreError> {
        let kind = self.kind();
        let all = migrations(kind);
        let supported = all.last().map_or(0, |m| m.0);
        self.tx(|tx| {
            if kind == BackendKind::Postgres {
                // Several servers may start at once against one database.
                tx.execute("SELECT pg_advisory_xact_lock(7426001)", &[])?;
            }
            tx.execute(
                "CREATE TABLE IF NOT EXISTS SCHEMA_VERSION (VERSION BIGINT PRIMARY KEY, \
                 APPLIED_AT BIGINT NOT NULL)",
                &[],
            )?;
            let rows = tx.query("SELECT MAX(VERSION) FROM SCHEMA_VERSION", &[])?;
            let current = match rows.first().and_then(|r| r.first()) {
                Some(Value::Int(v)) => *v,
                _ => 0,
            };
            if current > supported {
                return Err(StoreError::SchemaTooNew {
                    found: current,
                    supported,
                });
            }
            for (version, statements) in &all {
                if *version <= current || *version > upto {
                    continue;
                }
                for sql in statements {
                    tx.execute(sql, &[])?;
                }
                tx.execute(
                    "INSERT INTO SCHEMA_VERSION (VERSION, APPLIED_AT) VALUES (?, ?)",
                    &[(*version).into(), now_unix().into()],
                )?;
            }
            Ok(())
        })
    }

    /// The schema version in the database.
    ///
    /// # Errors
    /// Database errors.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.tx(|tx| {
            let rows = tx.query("SELECT MAX(VERSION) FROM SCHEMA_VERSION", &[])?;
            Ok(match rows.first().and_then(|r| r.first()) {
                Some(Value::Int(v)) => *v,
                _ => 0,
            })
        })
    }

    // ---- users ----

    /// Adds a user.
    ///
    /// # Errors
    /// [`StoreError::UserExists`], database errors.
    pub fn add_user(&self, user: &UserRecord, actor: &AuditEvent) -> Result<(), StoreError> {
        let ev = actor.clone().detail(format!(
            "user={} admin={} export={} import={} escrow_required={}",
            user.name, user.admin, user.export, user.import, user.escrow_required
        ));
        self.audited(
            &ev,
            |tx| {
                let exists = tx.query(
                    "SELECT USER_NAME FROM \"USER\" WHERE USER_NAME = ?",
                    &[user.name.as_str().into()],
                )?;
                if !exists.is_empty() {
                    return Err(StoreError::UserExists(user.name.clone()));
                }
                tx.execute(
                    "INSERT INTO \"USER\" (USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, \
                     USER_IMPORT, CREATED_AT, ESCROW_REQUIRED) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    &[
                        user.name.as_str().into(),
                        user.password_hash.as_str().into(),
                        user.admin.into(),
                        user.export.into(),
                        user.import.into(),
                        now_unix().into(),
                        user.escrow_required.into(),
                    ],
                )?;
                audit::created(tx, (audit::Table::User, user.name.clone()))
            },
            |_| vec![],
        )
    }

    fn update_user(
        &self,
        name: &str,
        set: &str,
        value: Value,
        ev: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.audited(
            ev,
            |tx| {
                let sql = format!("UPDATE \"USER\" SET {set} = ? WHERE USER_NAME = ?");
                audit::track(tx, &[(audit::Table::User, name.to_owned())], |tx| {
                    let n = tx.execute(&sql, &[value.clone(), name.into()])?;
                    if n == 0 {
                        return Err(StoreError::NoSuchUser(name.to_owned()));
                    }
                    Ok(())
                })
            },
            |_| vec![],
        )
    }

    /// Replaces a user's password hash.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn set_password(&self, name: &str, hash: &str, ev: &AuditEvent) -> Result<(), StoreError> {
        let ev = ev.clone().detail(format!("user={name}"));
        self.update_user(name, "PASSWORD_HASH", hash.into(), &ev)
    }

    /// Sets or clears `USER_ADMIN`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn set_admin(&self, name: &str, admin: bool, ev: &AuditEvent) -> Result<(), StoreError> {
        let ev = ev.clone().detail(format!("user={name} admin={admin}"));
        self.update_user(name, "USER_ADMIN", admin.into(), &ev)
    }

    /// Sets or clears the export right.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn set_export(&self, name: &str, on: bool, ev: &AuditEvent) -> Result<(), StoreError> {
        let ev = ev.clone().detail(format!("user={name} export={on}"));
        self.update_user(name, "USER_EXPORT", on.into(), &ev)
    }

    /// Sets or clears the import right.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn set_import(&self, name: &str, on: bool, ev: &AuditEvent) -> Result<(), StoreError> {
        let ev = ev.clone().detail(format!("user={name} import={on}"));
        self.update_user(name, "USER_IMPORT", on.into(), &ev)
    }

    /// Sets or clears `ESCROW_REQUIRED`.
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn set_escrow_required(
        &self,
        name: &str,
        on: bool,
        ev: &AuditEvent,
    ) -> Result<(), StoreError> {
        let ev = ev
            .clone()
            .detail(format!("user={name} escrow_required={on}"));
        self.update_user(name, "ESCROW_REQUIRED", on.into(), &ev)
    }

    /// Removes a user (their escrow entries stay).
    ///
    /// # Errors
    /// [`StoreError::NoSuchUser`], database errors.
    pub fn remove_user(&self, name: &str, ev: &AuditEvent) -> Result<(), StoreError> {
        let ev = ev.clone().detail(format!("user={name}"));
        self.audited(
            &ev,
            |tx| {
                audit::track(tx, &[(audit::Table::User, name.to_owned())], |tx| {
                    let n =
                        tx.execute("DELETE FROM \"USER\" WHERE USER_NAME = ?", &[name.into()])?;
                    if n == 0 {
                        return Err(StoreError::NoSuchUser(name.to_owned()));
                    }
                    Ok(())
                })
            },
            |_| vec![],
        )
    }

    /// One user, if present.
    ///
    /// # Errors
    /// Database errors.
    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        // Every request reads its user: on a snapshot of its own, which does not wait for the
        // deposits being committed (SQLite) and costs one round trip (PostgreSQL).
        let rows = self.backend.read(
            "SELECT USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, USER_IMPORT, \
             ESCROW_REQUIRED FROM \"USER\" WHERE USER_NAME = ?",
            &[name.into()],
        )?;
        rows.first().map(user_from_row).transpose()
    }

    /// All users, by name.
    ///
    /// # Errors
    /// Database errors.
    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        self.tx(|tx| {
            tx.query(
                "SELECT USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, USER_IMPORT, \
                 ESCROW_REQUIRED FROM \"USER\" ORDER BY USER_NAME",
                &[],
            )?
            .iter()
            .map(user_from_row)
            .collect()
        })
    }

    // ---- audit ----

    /// Appends an audit row on its own (login failures, refusals).
    ///
    /// # Errors
    /// Database errors.
    pub fn record(&self, ev: &AuditEvent, numbers: &[i64]) -> Result<(), StoreError> {
        self.tx(|tx| {
            lock_audit(tx)?;
            append_audit(tx, ev, numbers)
        })
    }

    /// Walks the whole audit chain, checking every row's hash or tag, and compares the users,
    /// escrow entries (with their salts) and deletion requests with what the chain recorded;
    /// reports every inconsistency. Reads one consistent snapshot and does not hold back the
    /// server's writes.
    ///
    /// # Errors
    /// [`StoreError::NoAuditKey`], database errors (a broken chain or a table changed behind
    /// the server's back is reported in [`AuditReport::problems`]).
    pub fn verify_audit(&self) -> Result<AuditReport, StoreError> {
        let key = self.key.clone().ok_or(StoreError::NoAuditKey)?;
        let mut out = None;
        self.backend.with_snapshot(&mut |tx| {
            out = Some(audit::verify(tx, &key)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::msg("transaction produced no result"))
    }

    // ---- escrow ----

    /// Stores a deposit, or returns the existing number when this user already escrowed this
    /// volume fingerprint.
    ///
    /// # Errors
    /// Database errors (including a failed audit write: then nothing is stored).
    pub fn deposit(&self, entry: &NewEntry, ev: &AuditEvent) -> Result<DepositOutcome, StoreError> {
        let mut outcome_event = ev.clone();
        // The audit detail says whether it was new; computed inside the transaction.
        self.tx(|tx| {
            lock_audit(tx)?;
            let out = insert_or_find(tx, entry)?;
            outcome_event.detail = if out.already_in_escrow {
                format!("already in escrow; {} salts", entry.salts.len())
            } else {
                format!("new entry; {} salts", entry.salts.len())
            };
            append_audit(tx, &outcome_event, &[out.number])?;
            Ok(out)
        })
    }

    /// Stores several deposits in **one** transaction (one commit, so one fsync), in order, each
    /// with its own audit row as [`Store::deposit`] writes it. Returns one outcome per deposit,
    /// in order, and only after the commit: an `Ok` is durable.
    ///
    /// The batch is first tried plainly, in a constant number of statements whatever its size
    /// (`deposit_rows`: multi-row inserts; on PostgreSQL, where each statement is a round
    /// trip to the server, that is what bounded deposits per second).
    ///
    /// One deposit that fails (a constraint, a trigger, a failed audit write) does not fail the
    /// others: when anything in the plain try fails, that
    /// transaction is rolled back and the batch runs again with each deposit in its own
    /// savepoint, so the failing one is rolled back alone and gets its error while the others
    /// are stored. (Savepoints only then: on PostgreSQL each one costs round trips.) When the
    /// transaction itself fails (begin, a savepoint, the commit), nothing is stored and every
    /// deposit gets that error.
    pub fn deposit_batch(
        &self,
        batch: &[(NewEntry, AuditEvent)],
    ) -> Vec<Result<DepositOutcome, StoreError>> {
        let deposit_one = |tx: &mut dyn Tx, entry: &NewEntry, ev: &AuditEvent| {
            let out = insert_or_find(tx, entry)?;
            let ev = ev.clone().detail(deposit_detail(&out, entry));
            append_audit(tx, &ev, &[out.number])?;
            Ok(out)
        };
        let plain = self.tx(|tx| deposit_rows(tx, batch));
        let e = match plain {
            Ok(outcomes) => return outcomes.into_iter().map(Ok).collect(),
            Err(e) if batch.len() == 1 => return vec![Err(e)],
            Err(e) => e,
        };
        let isolated = self.tx(|tx| {
            lock_audit(tx)?;
            let mut results = Vec::with_capacity(batch.len());
            for (entry, ev) in batch {
                tx.execute("SAVEPOINT tcvault_deposit", &[])?;
                let one = deposit_one(tx, entry, ev);
                if one.is_err() {
                    tx.execute("ROLLBACK TO SAVEPOINT tcvault_deposit", &[])?;
                    // What the failed deposit noted for its audit row (if it failed before the
                    // row took the notes) was rolled back with it.
                    audit::discard_changes(tx)?;
                }
                tx.execute("RELEASE SAVEPOINT tcvault_deposit", &[])?;
                results.push(one);
            }
            Ok(results)
        });
        match isolated {
            Ok(results) => results,
            Err(again) => {
                let shared = std::sync::Arc::new(again);
                batch
                    .iter()
                    .map(|_| {
                        Err(StoreError::Database {
                            message: format!(
                                "the deposits' transaction failed: {shared} (first try: {e})"
                            ),
                            source: Some(Box::new(shared.clone())),
                        })
                    })
                    .collect()
            }
        }
    }

    /// The caller's own entries.
    ///
    /// # Errors
    /// Database errors.
    pub fn own_entries(&self, user: &str) -> Result<Vec<EntrySummary>, StoreError> {
        self.tx(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS} FROM ESCROW WHERE USER_NAME = ? \
                     ORDER BY ESCROW_NUMBER DESC LIMIT 1000"
                ),
                &[user.into()],
            )?;
            rows.iter().map(|r| entry_from_row(tx, r)).collect()
        })
    }

    /// Entries matching all given criteria, newest first.
    ///
    /// # Errors
    /// Database errors.
    pub fn search(
        &self,
        q: &SearchQuery,
        ev: &AuditEvent,
    ) -> Result<Vec<EntrySummary>, StoreError> {
        let mut conds = Vec::new();
        let mut params: Vec<Value> = Vec::new();
        if let Some(s) = &q.salt {
            conds.push("ESCROW_NUMBER IN (SELECT ESCROW_NUMBER FROM ESCROW_SALT WHERE SALT = ?)");
            params.push(s.as_str().into());
        }
        if let Some(f) = &q.fingerprint {
            conds.push("VOLUME_FINGERPRINT = ?");
            params.push(f.as_str().into());
        }
        if let Some(u) = &q.user {
            conds.push("USER_NAME = ?");
            params.push(u.as_str().into());
        }
        if let Some(t) = q.from {
            conds.push("CREATED_AT >= ?");
            params.push(t.into());
        }
        if let Some(t) = q.to {
            conds.push("CREATED_AT <= ?");
            params.push(t.into());
        }
        if let Some(n) = q.number {
            conds.push("ESCROW_NUMBER = ?");
            params.push(n.into());
        }
        let filter = if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        };
        params.push(q.limit.into());
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ESCROW {filter} ORDER BY ESCROW_NUMBER DESC LIMIT ?"
        );
        self.audited(
            ev,
            |tx| {
                let rows = tx.query(&sql, &params)?;
                rows.iter().map(|r| entry_from_row(tx, r)).collect()
            },
            |found: &Vec<EntrySummary>| found.iter().map(|e| e.number).collect(),
        )
    }

    /// One entry with its packet.
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`] (the attempt is not audited as a fetch), database errors.
    pub fn fetch(
        &self,
        number: i64,
        ev: &AuditEvent,
    ) -> Result<(EntrySummary, Vec<u8>), StoreError> {
        self.audited(ev, |tx| fetch_in(tx, number), |(e, _)| vec![e.number])
    }

    /// Self-service recovery: the recovery packet of entry `number`, which `user` deposited
    /// (audited). Another user's entry is answered as no entry at all.
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`] (none, or not `user`'s: not audited as a fetch),
    /// [`StoreError::NoRecovery`], database errors.
    pub fn fetch_recovery(
        &self,
        number: i64,
        user: &str,
        ev: &AuditEvent,
    ) -> Result<(EntrySummary, Vec<u8>), StoreError> {
        self.audited(
            ev,
            |tx| {
                let rows = tx.query(
                    &format!(
                        "SELECT {ENTRY_COLUMNS}, RECOVERY_PACKET FROM ESCROW \
                         WHERE ESCROW_NUMBER = ? AND USER_NAME = ?"
                    ),
                    &[number.into(), user.into()],
                )?;
                let row = rows.first().ok_or(StoreError::NoSuchEntry(number))?;
                let packet = match row.get(8) {
                    Some(Value::Bytes(b)) => b.clone(),
                    _ => return Err(StoreError::NoRecovery(number)),
                };
                Ok((entry_from_row(tx, row)?, packet))
            },
            |(e, _)| vec![e.number],
        )
    }

    /// Under dual control: fetches entry `number` for `admin` with an approval of theirs that
    /// another admin gave at most `valid` ago, and marks that approval used (one fetch each).
    ///
    /// # Errors
    /// [`StoreError::ApprovalNeeded`] (no such approval), [`StoreError::NoSuchEntry`],
    /// database errors.
    pub fn fetch_approved(
        &self,
        number: i64,
        admin: &str,
        valid: std::time::Duration,
        ev: &AuditEvent,
    ) -> Result<(EntrySummary, Vec<u8>), StoreError> {
        let since = now_unix().saturating_sub(i64::try_from(valid.as_secs()).unwrap_or(i64::MAX));
        self.audited(
            ev,
            |tx| {
                let found = fetch_in(tx, number)?;
                let rows = tx.query(
                    "SELECT REQUEST_ID FROM FETCH_REQUEST WHERE ESCROW_NUMBER = ? AND \
                     REQUESTED_BY = ? AND STATUS = 'approved' AND DECIDED_AT >= ? \
                     ORDER BY REQUEST_ID LIMIT 1",
                    &[number.into(), admin.into(), since.into()],
                )?;
                let Some(id) = rows.first().map(|r| int(r, 0)).transpose()? else {
                    return Err(StoreError::ApprovalNeeded(number));
                };
                let row = (audit::Table::FetchRequest, id.to_string());
                // Still approved once this transaction holds the row: of two fetches racing
                // for one approval (several servers on one PostgreSQL), one gets it.
                let used = audit::track(tx, &[row], |tx| {
                    tx.execute(
                        "UPDATE FETCH_REQUEST SET STATUS = 'used' WHERE REQUEST_ID = ? \
                         AND STATUS = 'approved'",
                        &[id.into()],
                    )
                })?;
                if used != 1 {
                    return Err(StoreError::ApprovalNeeded(number));
                }
                Ok(found)
            },
            |(e, _)| vec![e.number],
        )
    }

    /// An admin asks to fetch the packet of entry `number` (dual control). A pending request
    /// of theirs for it is returned instead of a second one.
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`], database errors.
    pub fn request_fetch(
        &self,
        number: i64,
        admin: &str,
        reason: &str,
        ev: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ev = ev
            .clone()
            .detail(format!("reason: {}", truncate(reason, 200)));
        self.audited(
            &ev,
            |tx| {
                fetch_in(tx, number)?;
                pending_or_new_request(tx, audit::Table::FetchRequest, number, admin, reason)
            },
            |_| vec![number],
        )
    }

    /// Decides a pending fetch request: `approve` (not by the requester: that is the point)
    /// or reject (anyone, the requester withdrawing it included). Returns its entry.
    ///
    /// # Errors
    /// [`StoreError::NoSuchFetchRequest`], [`StoreError::FetchNotPending`],
    /// [`StoreError::Forbidden`], database errors.
    pub fn decide_fetch(
        &self,
        request_id: i64,
        decider: &str,
        approve: bool,
        ev: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ev = ev.clone().detail(format!("request={request_id}"));
        self.audited(
            &ev,
            |tx| {
                let rows = tx.query(
                    "SELECT ESCROW_NUMBER, REQUESTED_BY, STATUS FROM FETCH_REQUEST \
                     WHERE REQUEST_ID = ?",
                    &[request_id.into()],
                )?;
                let row = rows
                    .first()
                    .ok_or(StoreError::NoSuchFetchRequest(request_id))?;
                let (number, by, status) = (int(row, 0)?, text(row, 1)?, text(row, 2)?);
                if status != "pending" {
                    return Err(StoreError::FetchNotPending(request_id));
                }
                if approve && by == decider {
                    return Err(StoreError::Forbidden(
                        "an admin cannot approve their own fetch request",
                    ));
                }
                let row = (audit::Table::FetchRequest, request_id.to_string());
                let decided = audit::track(tx, &[row], |tx| {
                    tx.execute(
                        "UPDATE FETCH_REQUEST SET STATUS = ?, DECIDED_BY = ?, DECIDED_AT = ? \
                         WHERE REQUEST_ID = ? AND STATUS = 'pending'",
                        &[
                            if approve { "approved" } else { "rejected" }.into(),
                            decider.into(),
                            now_unix().into(),
                            request_id.into(),
                        ],
                    )
                })?;
                if decided != 1 {
                    return Err(StoreError::FetchNotPending(request_id));
                }
                Ok(number)
            },
            |n| vec![*n],
        )
    }

    /// Adds `salts` (lower-case hex, checked) to entry `number`: the salts of a header a
    /// restore wrote from it. Returns the entry as it is now.
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`], database errors.
    pub fn record_salts(
        &self,
        number: i64,
        salts: &[String],
        ev: &AuditEvent,
    ) -> Result<EntrySummary, StoreError> {
        self.audited(
            ev,
            |tx| {
                fetch_in(tx, number)?;
                // The salts are part of the entry's MAC.
                let row = (audit::Table::Escrow, number.to_string());
                audit::track(tx, &[row], |tx| add_salts(tx, number, salts))?;
                fetch_in(tx, number).map(|(e, _)| e)
            },
            |e| vec![e.number],
        )
    }

    /// Asks for an entry to be deleted. The owner may ask; so may an admin (`may_any`).
    /// A second identical pending request returns the first one's id.
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`], [`StoreError::Forbidden`], database errors.
    pub fn request_deletion(
        &self,
        number: i64,
        user: &str,
        may_any: bool,
        reason: &str,
        ev: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ev = ev
            .clone()
            .detail(format!("reason: {}", truncate(reason, 200)));
        self.audited(
            &ev,
            |tx| {
                let rows = tx.query(
                    "SELECT USER_NAME FROM ESCROW WHERE ESCROW_NUMBER = ?",
                    &[number.into()],
                )?;
                let owner = match rows.first() {
                    Some(r) => text(r, 0)?,
                    None => return Err(StoreError::NoSuchEntry(number)),
                };
                if owner != user && !may_any {
                    return Err(StoreError::Forbidden(
                        "only the depositing user or an admin may request deletion of an entry",
                    ));
                }
                pending_or_new_request(tx, audit::Table::DeletionRequest, number, user, reason)
            },
            |_| vec![number],
        )
    }

    /// Deletion requests that wait for approval.
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_deletions(&self) -> Result<Vec<DeletionRequest>, StoreError> {
        self.pending_in(audit::Table::DeletionRequest)
    }

    /// Packet fetch requests that wait for approval.
    ///
    /// # Errors
    /// Database errors.
    pub fn pending_fetches(&self) -> Result<Vec<DeletionRequest>, StoreError> {
        self.pending_in(audit::Table::FetchRequest)
    }

    fn pending_in(&self, table: audit::Table) -> Result<Vec<DeletionRequest>, StoreError> {
        let table = table.name();
        self.tx(|tx| {
            tx.query(
                &format!(
                    "SELECT REQUEST_ID, ESCROW_NUMBER, REQUESTED_BY, REQUESTED_AT, REASON, STATUS \
                     FROM {table} WHERE STATUS = 'pending' ORDER BY REQUEST_ID"
                ),
                &[],
            )?
            .iter()
            .map(|r| {
                Ok(DeletionRequest {
                    id: int(r, 0)?,
                    number: int(r, 1)?,
                    requested_by: text(r, 2)?,
                    requested_at: int(r, 3)?,
                    reason: text(r, 4)?,
                    status: text(r, 5)?,
                })
            })
            .collect()
        })
    }

    /// Approves a pending deletion request and deletes its entry. The requester cannot approve.
    ///
    /// # Errors
    /// [`StoreError::NoSuchRequest`], [`StoreError::NotPending`], [`StoreError::Forbidden`],
    /// database errors.
    pub fn approve_deletion(
        &self,
        request_id: i64,
        approver: &str,
        ev: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ev = ev.clone().detail(format!("request={request_id}"));
        self.audited(
            &ev,
            |tx| {
                let rows = tx.query(
                    "SELECT ESCROW_NUMBER, REQUESTED_BY, STATUS FROM DELETION_REQUEST \
                     WHERE REQUEST_ID = ?",
                    &[request_id.into()],
                )?;
                let row = rows.first().ok_or(StoreError::NoSuchRequest(request_id))?;
                let (number, by, status) = (int(row, 0)?, text(row, 1)?, text(row, 2)?);
                if status != "pending" {
                    return Err(StoreError::NotPending(request_id));
                }
                if by == approver {
                    return Err(StoreError::Forbidden(
                        "an admin cannot approve their own deletion request",
                    ));
                }
                // Other pending requests for the same entry are settled by this approval.
                let settled = tx.query(
                    "SELECT REQUEST_ID FROM DELETION_REQUEST WHERE ESCROW_NUMBER = ? \
                     AND STATUS = 'pending'",
                    &[number.into()],
                )?;
                let mut rows = vec![(audit::Table::Escrow, number.to_string())];
                for r in &settled {
                    rows.push((audit::Table::DeletionRequest, int(r, 0)?.to_string()));
                }
                audit::track(tx, &rows, |tx| {
                    tx.execute(
                        "DELETE FROM ESCROW_SALT WHERE ESCROW_NUMBER = ?",
                        &[number.into()],
                    )?;
                    tx.execute(
                        "DELETE FROM ESCROW WHERE ESCROW_NUMBER = ?",
                        &[number.into()],
                    )?;
                    tx.execute(
                        "UPDATE DELETION_REQUEST SET STATUS = 'approved', DECIDED_BY = ?, \
                         DECIDED_AT = ? WHERE ESCROW_NUMBER = ? AND STATUS = 'pending'",
                        &[approver.into(), now_unix().into(), number.into()],
                    )?;
                    Ok(())
                })?;
                Ok(number)
            },
            |n| vec![*n],
        )
    }

    /// Rejects a pending deletion request; the entry stays. Any admin may reject, the requester
    /// included (that withdraws the request).
    ///
    /// # Errors
    /// [`StoreError::NoSuchRequest`], [`StoreError::NotPending`], database errors.
    pub fn reject_deletion(
        &self,
        request_id: i64,
        decider: &str,
        ev: &AuditEvent,
    ) -> Result<i64, StoreError> {
        let ev = ev.clone().detail(format!("request={request_id}"));
        self.audited(
            &ev,
            |tx| {
                let rows = tx.query(
                    "SELECT ESCROW_NUMBER, STATUS FROM DELETION_REQUEST WHERE REQUEST_ID = ?",
                    &[request_id.into()],
                )?;
                let row = rows.first().ok_or(StoreError::NoSuchRequest(request_id))?;
                let (number, status) = (int(row, 0)?, text(row, 1)?);
                if status != "pending" {
                    return Err(StoreError::NotPending(request_id));
                }
                let row = (audit::Table::DeletionRequest, request_id.to_string());
                audit::track(tx, &[row], |tx| {
                    tx.execute(
                        "UPDATE DELETION_REQUEST SET STATUS = 'rejected', DECIDED_BY = ?, \
                         DECIDED_AT = ? WHERE REQUEST_ID = ?",
                        &[decider.into(), now_unix().into(), request_id.into()],
                    )
                })?;
                Ok(number)
            },
            |n| vec![*n],
        )
    }

    /// Entries with packets, for an export bundle. Missing numbers are an error (nothing is
    /// exported then).
    ///
    /// # Errors
    /// [`StoreError::NoSuchEntry`], database errors.
    pub fn export(
        &self,
        numbers: &[i64],
        ev: &AuditEvent,
    ) -> Result<Vec<(EntrySummary, Vec<u8>)>, StoreError> {
        self.audited(
            ev,
            |tx| numbers.iter().map(|n| fetch_in(tx, *n)).collect(),
            |v: &Vec<(EntrySummary, Vec<u8>)>| v.iter().map(|(e, _)| e.number).collect(),
        )
    }

    /// Up to `limit` entries numbered after `after`, with their packets, in number order (what
    /// a push to the upstream server sends; audited when the upstream acknowledged it, by
    /// [`Store::record_push`]).
    ///
    /// # Errors
    /// Database errors.
    pub fn entries_after(
        &self,
        after: i64,
        limit: i64,
    ) -> Result<Vec<(EntrySummary, Vec<u8>)>, StoreError> {
        self.tx(|tx| {
            let rows = tx.query(
                &format!(
                    "SELECT {ENTRY_COLUMNS}, PACKET FROM ESCROW WHERE ESCROW_NUMBER > ? \
                     ORDER BY ESCROW_NUMBER LIMIT ?"
                ),
                &[after.into(), limit.into()],
            )?;
            rows.iter()
                .map(|r| Ok((entry_from_row(tx, r)?, bytes(r, 8)?)))
                .collect()
        })
    }

    /// The newest escrow number `upstream` acknowledged (0: none yet).
    ///
    /// # Errors
    /// Database errors.
    pub fn push_cursor(&self, upstream: &str) -> Result<i64, StoreError> {
        self.tx(|tx| {
            let rows = tx.query(
                "SELECT LAST_NUMBER FROM UPSTREAM_PUSH WHERE UPSTREAM = ?",
                &[upstream.into()],
            )?;
            rows.first().map_or(Ok(0), |r| int(r, 0))
        })
    }

    /// Records that `upstream` acknowledged the entries `numbers` (the newest of them
    /// `last`): the cursor moves forward (never back), and the push is audited.
    ///
    /// # Errors
    /// Database errors.
    pub fn record_push(
        &self,
        upstream: &str,
        last: i64,
        numbers: &[i64],
        ev: &AuditEvent,
    ) -> Result<(), StoreError> {
        self.audited(
            ev,
            |tx| {
                tx.execute(
                    "INSERT INTO UPSTREAM_PUSH (UPSTREAM, LAST_NUMBER) VALUES (?, ?) \
                     ON CONFLICT (UPSTREAM) DO UPDATE SET LAST_NUMBER = \
                     CASE WHEN excluded.LAST_NUMBER > UPSTREAM_PUSH.LAST_NUMBER \
                     THEN excluded.LAST_NUMBER ELSE UPSTREAM_PUSH.LAST_NUMBER END",
                    &[upstream.into(), last.into()],
                )?;
                Ok(())
            },
            |()| numbers.to_vec(),
        )
    }

    /// Imports entries; an entry whose user already escrowed the same volume fingerprint here is
    /// not duplicated (its salts are merged). Returns, per entry, the local number and whether it
    /// was already present.
    ///
    /// # Errors
    /// Database errors (then nothing is imported).
    pub fn import(
        &self,
        entries: &[NewEntry],
        ev: &AuditEvent,
    ) -> Result<Vec<DepositOutcome>, StoreError> {
        self.audited(
            ev,
            |tx| entries.iter().map(|e| insert_or_find(tx, e)).collect(),
            |v: &Vec<DepositOutcome>| v.iter().map(|o| o.number).collect(),
        )
    }
}

/// The pending request of `user` for entry `number` in `table` (deletions or fetches), else a
/// new one; its id.
fn pending_or_new_request(
    tx: &mut dyn Tx,
    table: audit::Table,
    number: i64,
    user: &str,
    reason: &str,
) -> Result<i64, StoreError> {
    let name = table.name();
    let existing = tx.query(
        &format!(
            "SELECT REQUEST_ID FROM {name} WHERE ESCROW_NUMBER = ? AND REQUESTED_BY = ? \
             AND STATUS = 'pending'"
        ),
        &[number.into(), user.into()],
    )?;
    if let Some(r) = existing.first() {
        return int(r, 0);
    }
    let rows = tx.query(
        &format!(
            "INSERT INTO {name} (ESCROW_NUMBER, REQUESTED_BY, REQUESTED_AT, REASON, STATUS, \
             DECIDED_BY, DECIDED_AT) VALUES (?, ?, ?, ?, 'pending', '', 0) RETURNING REQUEST_ID"
        ),
        &[number.into(), user.into(), now_unix().into(), reason.into()],
    )?;
    let id = rows
        .first()
        .map(|r| int(r, 0))
        .ok_or_else(|| StoreError::msg("insert returned no id"))??;
    audit::created(tx, (table, id.to_string()))?;
    Ok(id)
}

fn fetch_in(tx: &mut dyn Tx, number: i64) -> Result<(EntrySummary, Vec<u8>), StoreError> {
    let rows = tx.query(
        &format!("SELECT {ENTRY_COLUMNS}, PACKET FROM ESCROW WHERE ESCROW_NUMBER = ?"),
        &[number.into()],
    )?;
    let row = rows.first().ok_or(StoreError::NoSuchEntry(number))?;
    let packet = bytes(row, 8)?;
    Ok((entry_from_row(tx, row)?, packet))
}

fn user_from_row(r: &Row) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        name: text(r, 0)?,
        password_hash: text(r, 1)?,
        admin: int(r, 2)? == 1,
        export: int(r, 3)? == 1,
        import: int(r, 4)? == 1,
        escrow_required: int(r, 5)? == 1,
    })
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The URL without any password, for messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{}:***{}", &url[..scheme_end + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}
