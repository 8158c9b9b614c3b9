//! The keyed audit: a chain of HMAC-SHA-256 tags that also records the state of every user,
//! escrow entry and deletion request, so that a change made with database access but without
//! the audit key is found by [`Store::verify_audit`](super::Store::verify_audit).
//!
//! # Design
//!
//! * **The key lives outside the database**: 32 random bytes in a file of their own (mode 0600,
//!   `<AUDIT_KEY>`, by default `audit.key` beside the configuration), loaded into a
//!   [`SecretBytes`]. Someone who can write the database but cannot read that file cannot
//!   produce a valid row.
//! * **Row MACs.** Each covered row has a MAC, computed from its columns (not stored beside
//!   them): HMAC-SHA-256 under the audit key over `tcvault-escrow-row-v2`, the table name, the
//!   primary key and every column (length-prefixed; integers as 8 big-endian bytes). An escrow
//!   entry's MAC covers its owner (`USER_NAME`), the volume and authority fingerprints, the
//!   metadata, the packet, the origin, its date and its sorted set of salts, so adding or
//!   removing an `ESCROW_SALT` row changes the entry's MAC.
//! * **The chain records the row MACs.** Every audited action notes, for each covered row it
//!   creates, changes or deletes, the row's MAC before and after (`null` for "absent") in the
//!   `ROW_CHANGES` column of its audit row (JSON `[[table, key, before, after], …]`). Audit rows
//!   from the keying row on are tagged with HMAC-SHA-256 over `tcvault-escrow-audit-v2`, every
//!   column including `ROW_CHANGES`, and the previous row's tag.
//! * **Verify replays the chain**: it checks every tag, and that each recorded "before" is the
//!   MAC the chain last recorded for that row (so a row changed outside the server and then
//!   changed again by the server is still caught). It then compares the tables with the replayed
//!   state: every row must be one the chain recorded, with the MAC it last recorded; every row
//!   the chain says exists must exist. An old row version put back (with its old, genuine MAC)
//!   differs from the newest recorded MAC and is caught too, which a MAC column in the row
//!   itself would not catch; hence the chain, not the row, holds the MACs.
//! * **Writers** change covered rows only inside `track` (or call `created` after an insert)
//!   and append the audit row in the same transaction: `append_audit` takes the changes noted
//!   since the previous audit row of the transaction, and a transaction that noted changes
//!   without appending is rolled back.
//! * **Keying an existing database**: the first time a store is opened with a key (server
//!   start, any `tcvault-escrowd` command), audit rows with event `audit_keyed` record the MAC
//!   of every row present then (one transaction holding the audit lock that reads every packet
//!   once). Rows of the chain before the first `audit_keyed` row keep their
//!   unkeyed SHA-256 check only; since the keying row's tag covers the hash of the row before
//!   it, they cannot be rewritten afterwards either. Whatever was changed before the keying
//!   cannot be told from the original.
//!
//! What this cannot detect: the database put back whole into an earlier consistent state (an
//! old backup, or the newest audit rows removed together with everything they recorded). Note
//! the head tag that `audit verify` prints somewhere else to detect that.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::{AUDIT_GENESIS, AuditEvent, AuditReport, StoreError, Tx, Value, int, text};
use crate::secret::SecretBytes;

/// Length of the audit key in bytes.
pub const AUDIT_KEY_LEN: usize = 32;

/// The event of the audit rows that key the chain (the first one marks where keying starts).
pub const KEYED_EVENT: &str = "audit_keyed";

/// Covered rows recorded per `audit_keyed` row when an existing database is keyed.
const SNAPSHOT_CHUNK: usize = 1000;
/// Escrow entries (with their packets) read at once.
const ENTRY_CHUNK: i64 = 200;
/// Users and deletion requests read at once.
const ROW_CHUNK: i64 = 2000;
/// Audit rows read at once.
const AUDIT_CHUNK: i64 = 5000;

/// The secret key of the audit chain.
pub struct AuditKey(SecretBytes);

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(<redacted>)")
    }
}

impl AuditKey {
    /// A new random key.
    ///
    /// # Errors
    /// [`StoreError::Random`] when the operating system has no random bytes.
    pub fn generate() -> Result<AuditKey, StoreError> {
        let mut key = SecretBytes::zeroed(AUDIT_KEY_LEN);
        crate::crypto::random::fill(key.expose_mut()).map_err(StoreError::Random)?;
        Ok(AuditKey(key))
    }

    /// Writes a new random key to `path`, which must not exist; the file is created with mode
    /// 0600 in the same call (never readable by others, not even briefly).
    ///
    /// # Errors
    /// [`StoreError::AuditKeyIo`] (also when `path` exists), [`StoreError::Random`].
    pub fn create(path: &Path) -> Result<AuditKey, StoreError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let key = Self::generate()?;
        let io = |source| StoreError::AuditKeyIo {
            path: path.to_owned(),
            source,
        };
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        f.write_all(key.0.expose()).map_err(io)?;
        f.sync_all().map_err(io)?;
        Ok(key)
    }

    /// Reads the key file at `path`: exactly 32 bytes, a regular file that neither group nor
    /// others may read.
    ///
    /// # Errors
    /// [`StoreError::AuditKeyIo`], [`StoreError::AuditKeyExposed`],
    /// [`StoreError::AuditKeyMalformed`].
    pub fn load(path: &Path) -> Result<AuditKey, StoreError> {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let io = |source| StoreError::AuditKeyIo {
            path: path.to_owned(),
            source,
        };
        let f = std::fs::File::open(path).map_err(io)?;
        // The mode of the file actually opened (no window between a check and the open).
        let meta = f.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(StoreError::AuditKeyMalformed {
                path: path.to_owned(),
                what: "not a regular file".to_owned(),
            });
        }
        if meta.mode() & 0o077 != 0 {
            return Err(StoreError::AuditKeyExposed {
                path: path.to_owned(),
                mode: meta.mode() & 0o7777,
            });
        }
        let data =
            crate::secret::read_secret(f.take(AUDIT_KEY_LEN as u64 + 1), AUDIT_KEY_LEN + 1, false)
                .map_err(io)?;
        if data.len() != AUDIT_KEY_LEN {
            return Err(StoreError::AuditKeyMalformed {
                path: path.to_owned(),
                what: if data.len() > AUDIT_KEY_LEN {
                    format!("longer than {AUDIT_KEY_LEN} bytes")
                } else {
                    format!("{} bytes long", data.len())
                },
            });
        }
        Ok(AuditKey(data))
    }

    fn mac(&self, domain: &[u8]) -> MacInput {
        let mut mac = match <Hmac<Sha256> as KeyInit>::new_from_slice(self.0.expose()) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(domain);
        MacInput(mac)
    }
}

/// An HMAC being fed length-prefixed fields.
struct MacInput(Hmac<Sha256>);

impl MacInput {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn int(&mut self, v: i64) {
        self.0.update(&v.to_be_bytes());
    }
    fn finish(self) -> RowMac {
        self.0.finalize().into_bytes().into()
    }
}

pub(super) type RowMac = [u8; 32];

/// The HMAC-SHA-256 tag of one audit row from the keying row on (lower-case hex).
#[allow(clippy::too_many_arguments)] // one argument per audited column, in column order
pub fn audit_mac(
    key: &AuditKey,
    seq: i64,
    time: i64,
    actor: &str,
    peer: &str,
    event: &str,
    numbers: &str,
    detail: &str,
    row_changes: &str,
    prev_hash: &str,
) -> String {
    let mut m = key.mac(b"tcvault-escrow-audit-v2\0");
    m.int(seq);
    m.int(time);
    for field in [actor, peer, event, numbers, detail, row_changes, prev_hash] {
        m.text(field);
    }
    hex::encode(m.finish())
}

/// A covered table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) enum Table {
    User,
    Escrow,
    DeletionRequest,
    FetchRequest,
}

impl Table {
    pub(super) fn name(self) -> &'static str {
        match self {
            Table::User => "USER",
            Table::Escrow => "ESCROW",
            Table::DeletionRequest => "DELETION_REQUEST",
            Table::FetchRequest => "FETCH_REQUEST",
        }
    }
    fn from_name(s: &str) -> Option<Table> {
        [
            Table::User,
            Table::Escrow,
            Table::DeletionRequest,
            Table::FetchRequest,
        ]
        .into_iter()
        .find(|t| t.name() == s)
    }
    fn describe(self, key: &str) -> String {
        match self {
            Table::User => format!("user {key:?}"),
            Table::Escrow => format!("escrow entry {key}"),
            Table::DeletionRequest => format!("deletion request {key}"),
            Table::FetchRequest => format!("fetch request {key}"),
        }
    }
    fn row_mac(self, key: &AuditKey, pk: &str) -> MacInput {
        let mut m = key.mac(b"tcvault-escrow-row-v2\0");
        m.text(self.name());
        m.text(pk);
        m
    }
}

/// One covered row, by table and primary key (numbers in decimal).
pub(super) type RowRef = (Table, String);

struct RowChange {
    row: RowRef,
    before: Option<RowMac>,
    after: Option<RowMac>,
}

/// The audit bookkeeping of one store transaction: the key, and the covered rows changed since
/// the last audit row was appended. Opaque outside the store.
pub struct AuditState {
    key: Option<Arc<AuditKey>>,
    pending: Vec<RowChange>,
}

impl fmt::Debug for AuditState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditState")
            .field("keyed", &self.key.is_some())
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl AuditState {
    pub(super) fn new(key: Option<Arc<AuditKey>>) -> Self {
        AuditState {
            key,
            pending: Vec::new(),
        }
    }
    pub(super) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

fn state(tx: &mut dyn Tx) -> Result<&mut AuditState, StoreError> {
    tx.audit_state()
        .ok_or_else(|| StoreError::msg("a covered row was written outside a store transaction"))
}

/// The transaction's audit key.
pub(super) fn key_of(tx: &mut dyn Tx) -> Result<Arc<AuditKey>, StoreError> {
    state(tx)?.key.clone().ok_or(StoreError::NoAuditKey)
}

// ---- row MACs, computed from what the database holds ----

const USER_SELECT: &str = "SELECT USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, \
                           USER_IMPORT, CREATED_AT, ESCROW_REQUIRED FROM \"USER\"";
const ENTRY_SELECT: &str = "SELECT ESCROW_NUMBER, CREATED_AT, USER_NAME, VOLUME_FINGERPRINT, \
                            AUTHORITY_FINGERPRINT, METADATA, PACKET, ORIGIN, RECOVERY_PACKET \
                            FROM ESCROW";
/// The columns of both request tables (deletions, fetches), which have the same shape.
const REQUEST_COLUMNS: &str = "REQUEST_ID, ESCROW_NUMBER, REQUESTED_BY, REQUESTED_AT, REASON, \
                               STATUS, DECIDED_BY, DECIDED_AT";

/// MACs of the users selected by `tail` (a `WHERE …` clause, with ordering and limit).
fn user_macs(
    tx: &mut dyn Tx,
    key: &AuditKey,
    tail: &str,
    params: &[Value],
) -> Result<Vec<(String, RowMac)>, StoreError> {
    let rows = tx.query(&format!("{USER_SELECT} {tail}"), params)?;
    rows.iter()
        .map(|r| {
            let name = text(r, 0)?;
            let mut m = Table::User.row_mac(key, &name);
            m.text(&text(r, 1)?);
            for i in 2..6 {
                m.int(int(r, i)?);
            }
            // A column added later is covered only where it is set, so the MACs of rows
            // written before it existed stay valid.
            let escrow_required = int(r, 6)?;
            if escrow_required != 0 {
                m.int(escrow_required);
            }
            Ok((name, m.finish()))
        })
        .collect()
}

/// MACs of the escrow entries selected by `tail`, each over its salts too.
fn entry_macs(
    tx: &mut dyn Tx,
    key: &AuditKey,
    tail: &str,
    params: &[Value],
) -> Result<Vec<(i64, RowMac)>, StoreError> {
    let rows = tx.query(&format!("{ENTRY_SELECT} {tail}"), params)?;
    let numbers = rows
        .iter()
        .map(|r| int(r, 0))
        .collect::<Result<Vec<_>, _>>()?;
    let (Some(lo), Some(hi)) = (numbers.iter().min(), numbers.iter().max()) else {
        return Ok(Vec::new());
    };
    let mut salts: HashMap<i64, Vec<String>> = HashMap::new();
    for r in tx.query(
        "SELECT ESCROW_NUMBER, SALT FROM ESCROW_SALT WHERE ESCROW_NUMBER >= ? \
         AND ESCROW_NUMBER <= ?",
        &[(*lo).into(), (*hi).into()],
    )? {
        salts.entry(int(&r, 0)?).or_default().push(text(&r, 1)?);
    }
    rows.iter()
        .map(|r| {
            let number = int(r, 0)?;
            let packet = match r.get(6) {
                Some(Value::Bytes(b)) => b.as_slice(),
                _ => return Err(StoreError::Corrupt { column: 6 }),
            };
            let recovery_packet = match r.get(8) {
                Some(Value::Bytes(b)) => Some(b.as_slice()),
                Some(Value::Null) => None,
                _ => return Err(StoreError::Corrupt { column: 8 }),
            };
            let mac = entry_mac(
                key,
                &EntryColumns {
                    number,
                    created_at: int(r, 1)?,
                    user: &text(r, 2)?,
                    volume_fingerprint: &text(r, 3)?,
                    authority_fingerprint: &text(r, 4)?,
                    metadata: &text(r, 5)?,
                    packet,
                    origin: &text(r, 7)?,
                    recovery_packet,
                },
                salts.remove(&number).unwrap_or_default(),
            );
            Ok((number, mac))
        })
        .collect()
}

/// The columns of an escrow entry that its MAC covers (with its salts).
pub(super) struct EntryColumns<'a> {
    pub number: i64,
    pub created_at: i64,
    pub user: &'a str,
    pub volume_fingerprint: &'a str,
    pub authority_fingerprint: &'a str,
    pub metadata: &'a str,
    pub packet: &'a [u8],
    pub origin: &'a str,
    /// `RECOVERY_PACKET`, where set.
    pub recovery_packet: Option<&'a [u8]>,
}

/// The MAC of an escrow entry holding `e` and the set of `salts` (in any order, without
/// repeats: the `ESCROW_SALT` rows).
pub(super) fn entry_mac(key: &AuditKey, e: &EntryColumns<'_>, mut salts: Vec<String>) -> RowMac {
    let mut m = Table::Escrow.row_mac(key, &e.number.to_string());
    m.int(e.created_at);
    for t in [
        e.user,
        e.volume_fingerprint,
        e.authority_fingerprint,
        e.metadata,
    ] {
        m.text(t);
    }
    m.bytes(e.packet);
    m.text(e.origin);
    // Byte order, whatever the database's collation.
    salts.sort();
    m.int(salts.len() as i64);
    for salt in &salts {
        m.text(salt);
    }
    // Added later: covered only where set, so the MACs of older rows stay valid.
    if let Some(r) = e.recovery_packet {
        m.text("recovery");
        m.bytes(r);
    }
    m.finish()
}

/// MACs of the deletion requests selected by `tail`.
fn request_macs(
    tx: &mut dyn Tx,
    key: &AuditKey,
    table: Table,
    tail: &str,
    params: &[Value],
) -> Result<Vec<(i64, RowMac)>, StoreError> {
    let rows = tx.query(
        &format!("SELECT {REQUEST_COLUMNS} FROM {} {tail}", table.name()),
        params,
    )?;
    rows.iter()
        .map(|r| {
            let id = int(r, 0)?;
            let mut m = table.row_mac(key, &id.to_string());
            m.int(int(r, 1)?);
            m.text(&text(r, 2)?);
            m.int(int(r, 3)?);
            m.text(&text(r, 4)?);
            m.text(&text(r, 5)?);
            m.text(&text(r, 6)?);
            m.int(int(r, 7)?);
            Ok((id, m.finish()))
        })
        .collect()
}

fn int_key(row: &RowRef) -> Result<i64, StoreError> {
    row.1
        .parse()
        .map_err(|_| StoreError::msg(format!("bad key {:?} of {}", row.1, row.0.name())))
}

/// The MAC of one covered row as it is now, `None` when it does not exist.
fn current_mac(
    tx: &mut dyn Tx,
    key: &AuditKey,
    row: &RowRef,
) -> Result<Option<RowMac>, StoreError> {
    let found = match row.0 {
        Table::User => user_macs(tx, key, "WHERE USER_NAME = ?", &[row.1.as_str().into()])?
            .into_iter()
            .map(|(_, m)| m)
            .next(),
        Table::Escrow => entry_macs(tx, key, "WHERE ESCROW_NUMBER = ?", &[int_key(row)?.into()])?
            .into_iter()
            .map(|(_, m)| m)
            .next(),
        table @ (Table::DeletionRequest | Table::FetchRequest) => request_macs(
            tx,
            key,
            table,
            "WHERE REQUEST_ID = ?",
            &[int_key(row)?.into()],
        )?
        .into_iter()
        .map(|(_, m)| m)
        .next(),
    };
    Ok(found)
}

fn note(
    tx: &mut dyn Tx,
    row: RowRef,
    before: Option<RowMac>,
    after: Option<RowMac>,
) -> Result<(), StoreError> {
    if before != after {
        state(tx)?.pending.push(RowChange { row, before, after });
    }
    Ok(())
}

/// Runs `f`, which may change the covered `rows`, and notes each row's MAC before and after
/// for the next audit row.
pub(super) fn track<T>(
    tx: &mut dyn Tx,
    rows: &[RowRef],
    f: impl FnOnce(&mut dyn Tx) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let key = key_of(tx)?;
    let before = rows
        .iter()
        .map(|r| current_mac(tx, &key, r))
        .collect::<Result<Vec<_>, _>>()?;
    let out = f(tx)?;
    for (row, before) in rows.iter().zip(before) {
        let after = current_mac(tx, &key, row)?;
        note(tx, row.clone(), before, after)?;
    }
    Ok(out)
}

/// Notes a row that `tx` has just created.
pub(super) fn created(tx: &mut dyn Tx, row: RowRef) -> Result<(), StoreError> {
    let key = key_of(tx)?;
    let after = current_mac(tx, &key, &row)?;
    note(tx, row, None, after)
}

/// Notes an escrow entry that `tx` has just created as `e` with `salts` (no repeats), without
/// reading it back: [`created`] for a batch of inserts written together.
pub(super) fn created_entry(
    tx: &mut dyn Tx,
    e: &EntryColumns<'_>,
    salts: Vec<String>,
) -> Result<(), StoreError> {
    let key = key_of(tx)?;
    let after = entry_mac(&key, e, salts);
    note(tx, (Table::Escrow, e.number.to_string()), None, Some(after))
}

/// Forgets the changes noted since the last audit row: their statements were rolled back (to a
/// savepoint), so no audit row may claim them.
pub(super) fn discard_changes(tx: &mut dyn Tx) -> Result<(), StoreError> {
    state(tx)?.pending.clear();
    Ok(())
}

/// The changes noted since the last audit row, as `ROW_CHANGES` text ("" for none); the
/// list is emptied.
pub(super) fn take_changes(tx: &mut dyn Tx) -> Result<String, StoreError> {
    let pending = std::mem::take(&mut state(tx)?.pending);
    if pending.is_empty() {
        return Ok(String::new());
    }
    let mac = |m: Option<RowMac>| m.map(hex::encode);
    let list: Vec<_> = pending
        .into_iter()
        .map(|c| (c.row.0.name(), c.row.1, mac(c.before), mac(c.after)))
        .collect();
    serde_json::to_string(&list).map_err(StoreError::db)
}

fn parse_changes(s: &str) -> Option<Vec<RowChange>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    let list: Vec<(String, String, Option<String>, Option<String>)> =
        serde_json::from_str(s).ok()?;
    let mac = |m: Option<String>| -> Option<Option<RowMac>> {
        match m {
            None => Some(None),
            Some(h) => {
                let mut out = [0u8; 32];
                hex::decode_to_slice(h, &mut out).ok()?;
                Some(Some(out))
            }
        }
    };
    list.into_iter()
        .map(|(t, k, b, a)| {
            Some(RowChange {
                row: (Table::from_name(&t)?, k),
                before: mac(b)?,
                after: mac(a)?,
            })
        })
        .collect()
}

// ---- keying ----

/// The sequence number of the row that keyed the chain, if any.
pub(super) fn keyed_from(tx: &mut dyn Tx) -> Result<Option<i64>, StoreError> {
    // The literal (not a parameter) lets both databases use the partial index AUDIT_KEYED.
    let rows = tx.query(
        "SELECT MIN(SEQ) FROM AUDIT WHERE EVENT = 'audit_keyed'",
        &[],
    )?;
    Ok(match rows.first().and_then(|r| r.first()) {
        Some(Value::Int(v)) => Some(*v),
        _ => None,
    })
}

/// Keys the chain: appends `audit_keyed` rows recording the MAC of every covered row present
/// now. The caller holds the audit lock.
pub(super) fn key_chain(tx: &mut dyn Tx) -> Result<(), StoreError> {
    let key = key_of(tx)?;
    let mut counts = Vec::new();
    for table in ["\"USER\"", "ESCROW", "DELETION_REQUEST"] {
        let rows = tx.query(&format!("SELECT COUNT(*) FROM {table}"), &[])?;
        counts.push(rows.first().map(|r| int(r, 0)).transpose()?.unwrap_or(0));
    }
    let first = AuditEvent::new("tcvault-escrowd", "local", KEYED_EVENT).detail(format!(
        "the audit chain is keyed (HMAC-SHA-256) from this row on; existing rows recorded: \
         {} users, {} escrow entries, {} deletion requests",
        counts[0], counts[1], counts[2]
    ));
    let more = AuditEvent::new("tcvault-escrowd", "local", KEYED_EVENT)
        .detail("existing rows recorded (continued)");
    let mut appended = false;
    let mut flush = |tx: &mut dyn Tx, all: bool| -> Result<(), StoreError> {
        let n = state(tx)?.pending.len();
        if n >= SNAPSHOT_CHUNK || (all && (n > 0 || !appended)) {
            super::append_audit(tx, if appended { &more } else { &first }, &[])?;
            appended = true;
        }
        Ok(())
    };
    let mut after_name = None;
    loop {
        let chunk = user_chunk(tx, &key, after_name.as_deref())?;
        let Some(last) = chunk.last().map(|c| c.0.clone()) else {
            break;
        };
        for (name, mac) in chunk {
            note(tx, (Table::User, name), None, Some(mac))?;
            flush(tx, false)?;
        }
        after_name = Some(last);
    }
    for (table, limit) in [
        (Table::Escrow, ENTRY_CHUNK),
        (Table::DeletionRequest, ROW_CHUNK),
        (Table::FetchRequest, ROW_CHUNK),
    ] {
        let mut after = i64::MIN;
        loop {
            let chunk = int_chunk(tx, &key, table, after, limit)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            for (id, mac) in chunk {
                note(tx, (table, id.to_string()), None, Some(mac))?;
                flush(tx, false)?;
            }
            after = last;
        }
    }
    flush(tx, true)
}

/// The next users by name after `after` (from the first when `None`).
fn user_chunk(
    tx: &mut dyn Tx,
    key: &AuditKey,
    after: Option<&str>,
) -> Result<Vec<(String, RowMac)>, StoreError> {
    match after {
        None => user_macs(tx, key, "ORDER BY USER_NAME LIMIT ?", &[ROW_CHUNK.into()]),
        Some(name) => user_macs(
            tx,
            key,
            "WHERE USER_NAME > ? ORDER BY USER_NAME LIMIT ?",
            &[name.into(), ROW_CHUNK.into()],
        ),
    }
}

fn int_chunk(
    tx: &mut dyn Tx,
    key: &AuditKey,
    table: Table,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, RowMac)>, StoreError> {
    let params = [after.into(), limit.into()];
    match table {
        Table::Escrow => entry_macs(
            tx,
            key,
            "WHERE ESCROW_NUMBER > ? ORDER BY ESCROW_NUMBER LIMIT ?",
            &params,
        ),
        Table::DeletionRequest | Table::FetchRequest => request_macs(
            tx,
            key,
            table,
            "WHERE REQUEST_ID > ? ORDER BY REQUEST_ID LIMIT ?",
            &params,
        ),
        Table::User => Err(StoreError::msg("users are keyed by name")),
    }
}

/// Whether the row that keyed the chain carries a valid tag under `key`: `Ok(None)` when the
/// chain is not keyed yet, `Ok(Some(seq))` when it is and the key fits.
///
/// # Errors
/// [`StoreError::WrongAuditKey`], database errors.
pub(super) fn check_key(tx: &mut dyn Tx, key: &AuditKey) -> Result<Option<i64>, StoreError> {
    let Some(seq) = keyed_from(tx)? else {
        return Ok(None);
    };
    let rows = tx.query(
        "SELECT SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, ROW_CHANGES, \
         PREV_HASH, HASH FROM AUDIT WHERE SEQ = ?",
        &[seq.into()],
    )?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::msg("the keying audit row vanished"))?;
    if tag_of(key, row)? != text(row, 9)? {
        return Err(StoreError::WrongAuditKey { seq });
    }
    Ok(Some(seq))
}

/// The v2 tag of a row read with the column list of [`check_key`] / [`verify`].
fn tag_of(key: &AuditKey, row: &super::Row) -> Result<String, StoreError> {
    Ok(audit_mac(
        key,
        int(row, 0)?,
        int(row, 1)?,
        &text(row, 2)?,
        &text(row, 3)?,
        &text(row, 4)?,
        &text(row, 5)?,
        &text(row, 6)?,
        &text(row, 7)?,
        &text(row, 8)?,
    ))
}

// ---- verification ----

/// Walks the chain and reconciles the covered tables with it, all inside one snapshot `tx`.
pub(super) fn verify(tx: &mut dyn Tx, key: &AuditKey) -> Result<AuditReport, StoreError> {
    let mut report = AuditReport {
        rows: 0,
        head_hash: AUDIT_GENESIS.to_owned(),
        keyed_from: None,
        records: 0,
        problems: Vec::new(),
    };
    let problems = &mut report.problems;
    // The newest MAC the chain recorded for each covered row it says exists.
    let mut state: BTreeMap<RowRef, RowMac> = BTreeMap::new();
    let mut expected_seq = 1i64;
    let mut prev_hash = AUDIT_GENESIS.to_owned();
    let mut last_seq = 0i64;
    loop {
        let rows = tx.query(
            "SELECT SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, ROW_CHANGES, \
             PREV_HASH, HASH FROM AUDIT WHERE SEQ > ? ORDER BY SEQ LIMIT ?",
            &[last_seq.into(), AUDIT_CHUNK.into()],
        )?;
        if rows.is_empty() {
            break;
        }
        for row in &rows {
            let seq = int(row, 0)?;
            let event = text(row, 4)?;
            let changes = text(row, 7)?;
            let stored_prev = text(row, 8)?;
            let stored_hash = text(row, 9)?;
            if seq != expected_seq {
                problems.push(format!(
                    "row {expected_seq}..{} is missing (next row is {seq})",
                    seq - 1
                ));
            }
            if stored_prev != prev_hash {
                problems.push(format!(
                    "row {seq}: its previous-hash does not match the row before it"
                ));
            }
            if report.keyed_from.is_none() && event == KEYED_EVENT {
                report.keyed_from = Some(seq);
            }
            match report.keyed_from {
                Some(from) => {
                    if tag_of(key, row)? != stored_hash {
                        problems.push(if seq == from {
                            format!(
                                "row {seq}: the row that keyed the chain does not match its \
                                 MAC: changed, or this is not the audit key of this database"
                            )
                        } else {
                            format!(
                                "row {seq}: contents do not match its MAC (changed, or \
                                 written without the audit key)"
                            )
                        });
                    }
                    replay(seq, &changes, &mut state, problems);
                }
                None => {
                    let computed = super::audit_hash(
                        seq,
                        int(row, 1)?,
                        &text(row, 2)?,
                        &text(row, 3)?,
                        &event,
                        &text(row, 5)?,
                        &text(row, 6)?,
                        &stored_prev,
                    );
                    if computed != stored_hash {
                        problems.push(format!(
                            "row {seq}: contents do not match its hash (changed)"
                        ));
                    }
                    if !changes.is_empty() {
                        problems.push(format!(
                            "row {seq}: written before the chain was keyed, yet it records \
                             row changes (inserted or changed)"
                        ));
                    }
                }
            }
            report.rows += 1;
            expected_seq = seq + 1;
            prev_hash = stored_hash;
            last_seq = seq;
        }
    }
    let head = tx.query("SELECT SEQ, HASH FROM AUDIT_HEAD WHERE ID = 1", &[])?;
    match head.first() {
        Some(row) => {
            let (seq, hash) = (int(row, 0)?, text(row, 1)?);
            if seq != last_seq || hash != prev_hash {
                problems.push(format!(
                    "the chain ends at row {last_seq} but the head records row {seq}: \
                     the newest rows were removed or the head was changed"
                ));
            }
        }
        None => problems.push("the AUDIT_HEAD row is missing".to_owned()),
    }
    report.head_hash = prev_hash;
    if report.keyed_from.is_none() {
        problems.push(format!(
            "no row keys the chain (event {KEYED_EVENT}): the audit table was rewritten \
             without the audit key"
        ));
        return Ok(report);
    }
    report.records = reconcile(tx, key, &mut state, problems)?;
    for (row, _) in state {
        problems.push(format!(
            "{} is missing, but the audit chain records it (deleted outside the server)",
            row.0.describe(&row.1)
        ));
    }
    let orphans = tx.query(
        "SELECT DISTINCT ESCROW_NUMBER FROM ESCROW_SALT WHERE ESCROW_NUMBER NOT IN \
         (SELECT ESCROW_NUMBER FROM ESCROW) ORDER BY ESCROW_NUMBER",
        &[],
    )?;
    for r in &orphans {
        problems.push(format!(
            "salts of escrow entry {}, which does not exist (written outside the server)",
            int(r, 0)?
        ));
    }
    Ok(report)
}

/// Applies one audit row's recorded changes to the replayed state.
fn replay(
    seq: i64,
    changes: &str,
    state: &mut BTreeMap<RowRef, RowMac>,
    problems: &mut Vec<String>,
) {
    let Some(list) = parse_changes(changes) else {
        problems.push(format!("row {seq}: its row changes cannot be read"));
        return;
    };
    for c in list {
        let what = c.row.0.describe(&c.row.1);
        if state.get(&c.row) != c.before.as_ref() {
            problems.push(format!(
                "row {seq}: {what} was changed by the server from a state the audit chain \
                 never recorded (it had been changed outside the server)"
            ));
        }
        match c.after {
            Some(m) => state.insert(c.row, m),
            None => state.remove(&c.row),
        };
    }
}

/// Compares every covered row with the replayed state, removing the rows found from it;
/// returns how many rows were checked.
fn reconcile(
    tx: &mut dyn Tx,
    key: &AuditKey,
    state: &mut BTreeMap<RowRef, RowMac>,
    problems: &mut Vec<String>,
) -> Result<u64, StoreError> {
    let mut checked = 0u64;
    let mut check = |row: RowRef, mac: RowMac| {
        checked += 1;
        let what = row.0.describe(&row.1);
        match state.remove(&row) {
            None => problems.push(format!(
                "{what} exists, but no audit row records it (inserted outside the server)"
            )),
            Some(recorded) if recorded != mac => problems.push(format!(
                "{what} is not what the audit chain last recorded (changed outside the server)"
            )),
            Some(_) => {}
        }
    };
    let mut after_name = None;
    loop {
        let chunk = user_chunk(tx, key, after_name.as_deref())?;
        let Some(last) = chunk.last().map(|c| c.0.clone()) else {
            break;
        };
        for (name, mac) in chunk {
            check((Table::User, name), mac);
        }
        after_name = Some(last);
    }
    for (table, limit) in [
        (Table::Escrow, ENTRY_CHUNK),
        (Table::DeletionRequest, ROW_CHUNK),
        (Table::FetchRequest, ROW_CHUNK),
    ] {
        let mut after = i64::MIN;
        loop {
            let chunk = int_chunk(tx, key, table, after, limit)?;
            let Some(&(last, _)) = chunk.last() else {
                break;
            };
            for (id, mac) in chunk {
                check((table, id.to_string()), mac);
            }
            after = last;
        }
    }
    Ok(checked)
}

#[cfg(test)]
mod tests {
    use super::super::{Backend, Store, audit_hash, now_unix, postgres, sqlite};
    use super::*;

    /// A fresh SQLite database, and a fresh PostgreSQL one when `TCVAULT_TEST_POSTGRES_URL` is
    /// set (required under CI=true).
    fn backends(dir: &Path) -> Vec<Box<dyn Backend>> {
        let mut out: Vec<Box<dyn Backend>> = vec![Box::new(
            sqlite::SqliteBackend::open(&dir.join("v1.sqlite3")).expect("sqlite"),
        )];
        match std::env::var("TCVAULT_TEST_POSTGRES_URL") {
            Ok(base) => {
                let mut name = [0u8; 8];
                crate::crypto::random::fill(&mut name).expect("random");
                let name = format!("tcvault_unit_{}", hex::encode(name));
                let mut c = ::postgres::Client::connect(&base, ::postgres::NoTls).expect("pg");
                c.batch_execute(&format!("CREATE DATABASE {name}"))
                    .expect("create database");
                drop(std::thread::spawn(move || drop(c)).join());
                let (head, tail) = base.split_once('?').unwrap_or((base.as_str(), ""));
                let cut = head.rfind('/').expect("database URL has a path");
                let tail = if tail.is_empty() {
                    String::new()
                } else {
                    format!("?{tail}")
                };
                let url = format!("{}/{name}{tail}", &head[..cut]);
                out.push(Box::new(
                    postgres::PostgresBackend::connect(&url).expect("pg"),
                ));
            }
            Err(_) => assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but TCVAULT_TEST_POSTGRES_URL is not set"
            ),
        }
        out
    }

    /// An audit row as the unkeyed (schema version 1) server wrote it.
    fn v1_audit(tx: &mut dyn Tx, event: &str, numbers: &str) -> Result<(), StoreError> {
        let head = tx.query("SELECT SEQ, HASH FROM AUDIT_HEAD WHERE ID = 1", &[])?;
        let (seq, prev) = (int(&head[0], 0)? + 1, text(&head[0], 1)?);
        let time = now_unix();
        let hash = audit_hash(seq, time, "cli:old", "local", event, numbers, "", &prev);
        tx.execute(
            "INSERT INTO AUDIT (SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, \
             PREV_HASH, HASH) VALUES (?, ?, 'cli:old', 'local', ?, ?, '', ?, ?)",
            &[
                seq.into(),
                time.into(),
                event.into(),
                numbers.into(),
                prev.into(),
                hash.as_str().into(),
            ],
        )?;
        tx.execute(
            "UPDATE AUDIT_HEAD SET SEQ = ?, HASH = ? WHERE ID = 1",
            &[seq.into(), hash.into()],
        )?;
        Ok(())
    }

    fn old_database(backend: Box<dyn Backend>) -> Store {
        let store = Store { backend, key: None };
        store.migrate_upto(1).expect("schema version 1");
        assert_eq!(store.schema_version().expect("version"), 1);
        store
            .backend
            .with_tx(&mut |tx| {
                tx.execute(
                    "INSERT INTO \"USER\" (USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, \
                     USER_IMPORT, CREATED_AT) VALUES ('alice', 'hash', 0, 0, 0, 1)",
                    &[],
                )?;
                v1_audit(tx, "user_add", "")?;
                let n = tx.query(
                    "INSERT INTO ESCROW (CREATED_AT, USER_NAME, VOLUME_FINGERPRINT, \
                     AUTHORITY_FINGERPRINT, METADATA, PACKET, ORIGIN) \
                     VALUES (1, 'alice', 'aa', 'bb', '{}', ?, 'local') RETURNING ESCROW_NUMBER",
                    &[Value::Bytes(b"packet".to_vec())],
                )?;
                let n = int(&n[0], 0)?;
                tx.execute(
                    "INSERT INTO ESCROW_SALT (ESCROW_NUMBER, SALT) VALUES (?, 'cc')",
                    &[n.into()],
                )?;
                v1_audit(tx, "deposit", &n.to_string())?;
                tx.execute(
                    "INSERT INTO DELETION_REQUEST (ESCROW_NUMBER, REQUESTED_BY, REQUESTED_AT, \
                     REASON, STATUS, DECIDED_BY, DECIDED_AT) \
                     VALUES (?, 'alice', 1, '', 'pending', '', 0)",
                    &[n.into()],
                )?;
                v1_audit(tx, "deletion_request", &n.to_string())
            })
            .expect("old rows");
        store
    }

    #[test]
    fn an_old_database_is_migrated_and_keyed_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let key_file = dir.path().join("audit.key");
        AuditKey::create(&key_file).expect("key");
        for backend in backends(dir.path()) {
            let kind = backend.kind();
            let store = old_database(backend);
            store.migrate().expect("migrates");
            let latest = super::super::migrations(kind).last().map_or(0, |m| m.0);
            assert_eq!(store.schema_version().expect("version"), latest, "{kind:?}");
            let store = store
                .with_audit_key(AuditKey::load(&key_file).expect("key"))
                .expect("keyed");
            let report = store.verify_audit().expect("verify");
            assert!(
                report.problems.is_empty(),
                "{kind:?}: {:?}",
                report.problems
            );
            assert_eq!(
                (report.rows, report.keyed_from, report.records),
                (4, Some(4), 3),
                "{kind:?}: three old rows, then the keying row recording 3 records"
            );
            // Opening it again with the key keys nothing more; another key is refused.
            let store = store
                .with_audit_key(AuditKey::load(&key_file).expect("key"))
                .expect("keyed");
            assert_eq!(store.check_audit_key().expect("fits"), Some(4));
            let keyed = store
                .tx(|tx| {
                    tx.query(
                        "SELECT COUNT(*) FROM AUDIT WHERE EVENT = 'audit_keyed'",
                        &[],
                    )
                })
                .expect("count");
            assert_eq!(keyed[0][0], Value::Int(1), "{kind:?}");
            let store = store
                .with_audit_key(AuditKey::generate().expect("key"))
                .expect("attach");
            assert!(matches!(
                store.check_audit_key(),
                Err(StoreError::WrongAuditKey { seq: 4 })
            ));
            let store = store
                .with_audit_key(AuditKey::load(&key_file).expect("key"))
                .expect("keyed");

            // The old rows stay covered: the keyed row's tag seals the hash of the one before.
            store
                .backend
                .with_tx(&mut |tx| {
                    tx.execute("UPDATE AUDIT SET ACTOR = 'someone else' WHERE SEQ = 1", &[])?;
                    let mut prev = AUDIT_GENESIS.to_owned();
                    for r in tx.query(
                        "SELECT SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL \
                         FROM AUDIT WHERE SEQ < 4 ORDER BY SEQ",
                        &[],
                    )? {
                        let hash = audit_hash(
                            int(&r, 0)?,
                            int(&r, 1)?,
                            &text(&r, 2)?,
                            &text(&r, 3)?,
                            &text(&r, 4)?,
                            &text(&r, 5)?,
                            &text(&r, 6)?,
                            &prev,
                        );
                        tx.execute(
                            "UPDATE AUDIT SET PREV_HASH = ?, HASH = ? WHERE SEQ = ?",
                            &[prev.as_str().into(), hash.as_str().into(), r[0].clone()],
                        )?;
                        prev = hash;
                    }
                    Ok(())
                })
                .expect("tamper");
            let report = store.verify_audit().expect("verify");
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.contains("row 4: its previous-hash")),
                "{kind:?}: {:?}",
                report.problems
            );
        }
    }

    #[test]
    fn a_store_without_its_key_reads_but_does_not_audit() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .expect("chmod");
        let url = format!("sqlite:{}", dir.path().join("db.sqlite3").display());
        let store = Store::open(&url, Path::new("/")).expect("open");
        let user = super::super::UserRecord {
            name: "alice".to_owned(),
            password_hash: "hash".to_owned(),
            admin: false,
            export: false,
            import: false,
            escrow_required: false,
        };
        let ev = AuditEvent::new("test", "local", "user_add");
        assert!(matches!(
            store.add_user(&user, &ev),
            Err(StoreError::NoAuditKey)
        ));
        assert!(matches!(store.verify_audit(), Err(StoreError::NoAuditKey)));
        assert!(
            store.users().expect("reads").is_empty(),
            "nothing was written"
        );
        assert_eq!(
            format!("{:?}", AuditKey::generate().expect("key")),
            "AuditKey(<redacted>)"
        );
    }
}
