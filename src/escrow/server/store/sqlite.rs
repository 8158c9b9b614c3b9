//! SQLite backend: one connection behind a mutex for transactions (SQLite has a single writer
//! anyway), WAL journal, `synchronous=FULL` so that an acknowledged deposit survives a crash.
//! Read-only snapshots run on connections of their own: in WAL mode a reader neither waits for
//! the writer nor holds it back, so a request's user lookup does not wait behind the commit
//! (and fsync) of the deposits before it.
//!
//! Checkpoints (copying the WAL back into the database file, and its fsync) run on a thread of
//! their own every [`CHECKPOINT_EVERY`], not in the commit that happens to pass 1000 WAL pages
//! (SQLite's default): that commit's deposits used to wait for the copy too. A commit is as
//! durable as before (it is in the fsynced WAL); a kill before a checkpoint leaves more WAL
//! for the next open to replay.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{Connection, TransactionBehavior, params_from_iter};

use super::{Backend, BackendKind, Row, StoreError, Tx, Value};

/// An SQLite database file.
#[derive(Debug)]
pub struct SqliteBackend {
    conn: Mutex<Connection>,
    path: std::path::PathBuf,
    /// Idle read-only connections (opened when none is idle, at most [`MAX_READERS`] kept).
    readers: Mutex<Vec<Connection>>,
    /// Dropped with the backend, which stops the checkpoint thread.
    _checkpoints: Option<std::sync::mpsc::Sender<()>>,
}

/// How often the checkpoint thread copies the WAL into the database file.
pub const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Idle reader connections kept.
const MAX_READERS: usize = 4;

impl SqliteBackend {
    /// Opens (creating if needed, mode 0600) the database file at `path`. The file holds every
    /// password hash and escrow entry: it, its WAL files and its folder must not be open to
    /// other users (checked first; SQLite gives the WAL files the database file's mode).
    ///
    /// # Errors
    /// [`StoreError::Exposed`]; the file cannot be opened or is not an SQLite database.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        check_private(path)?;
        let conn = Connection::open(path).map_err(|e| StoreError::Database {
            message: format!("cannot open SQLite database {}: {e}", path.display()),
            source: Some(Box::new(e)),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(StoreError::db)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(StoreError::db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(StoreError::db)?;
        let checkpoints = start_checkpoints(path);
        if checkpoints.is_some() {
            conn.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(StoreError::db)?;
        }
        Ok(SqliteBackend {
            conn: Mutex::new(conn),
            path: path.to_path_buf(),
            readers: Mutex::new(Vec::new()),
            _checkpoints: checkpoints,
        })
    }

    /// An idle reader connection, or a new one.
    fn reader(&self) -> Result<Connection, StoreError> {
        if let Some(c) = self.readers.lock().ok().and_then(|mut r| r.pop()) {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Database {
            message: format!("cannot open SQLite database {}: {e}", self.path.display()),
            source: Some(Box::new(e)),
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(StoreError::db)?;
        // Snapshots only read (the flag makes any write on this connection an error).
        conn.pragma_update(None, "query_only", true)
            .map_err(StoreError::db)?;
        Ok(conn)
    }

    /// Runs `f` in a transaction of `behavior` on the one connection, and commits.
    fn run(
        &self,
        behavior: TransactionBehavior,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self
            .conn
            .lock()
            .map_err(|_| StoreError::msg("the SQLite connection was poisoned by a panic"))?;
        let tx = conn
            .transaction_with_behavior(behavior)
            .map_err(StoreError::db)?;
        f(&mut SqliteTx(&tx))?;
        tx.commit().map_err(StoreError::db)
    }
}

/// Starts the thread that checkpoints `path`'s WAL every [`CHECKPOINT_EVERY`] (passive: it
/// never waits for the writer or readers, and copies what no reader still needs) until the
/// returned sender is dropped. `None` when it cannot start: the commits then checkpoint as
/// SQLite does by default.
fn start_checkpoints(path: &Path) -> Option<std::sync::mpsc::Sender<()>> {
    let conn = Connection::open(path).ok()?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).ok()?;
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("escrow-checkpoint".to_owned())
        .spawn(move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(CHECKPOINT_EVERY)
            {
                // Returns (busy, WAL frames, frames checkpointed); a failure is tried again.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
        })
        .ok()?;
    Some(stop)
}

/// Refuses a database file, WAL file or folder that group or others may use, and creates a
/// missing database file with mode 0600 (before SQLite would make it 0644).
fn check_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let exposed = |p: &Path, mode: u32, want: u32| StoreError::Exposed {
        path: p.to_path_buf(),
        mode: mode & 0o7777,
        want,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(m) = std::fs::metadata(dir)
        && m.mode() & 0o077 != 0
    {
        return Err(exposed(dir, m.mode(), 0o700));
    }
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let mut shm = path.as_os_str().to_owned();
    shm.push("-shm");
    for p in [path, Path::new(&wal), Path::new(&shm)] {
        if let Ok(m) = std::fs::symlink_metadata(p)
            && m.mode() & 0o077 != 0
        {
            return Err(exposed(p, m.mode(), 0o600));
        }
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database {
            message: format!("cannot create SQLite database {}: {e}", path.display()),
            source: Some(Box::new(e)),
        }),
    }
}

struct SqliteTx<'a>(&'a rusqlite::Transaction<'a>);

fn to_sql(v: &Value) -> SqlValue {
    match v {
        Value::Null => SqlValue::Null,
        Value::Int(i) => SqlValue::Integer(*i),
        Value::Text(s) => SqlValue::Text(s.clone()),
        Value::Bytes(b) => SqlValue::Blob(b.clone()),
    }
}

impl Tx for SqliteTx<'_> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(StoreError::db)?;
        let n = stmt
            .execute(params_from_iter(params.iter().map(to_sql)))
            .map_err(StoreError::db)?;
        Ok(n as u64)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut stmt = self.0.prepare_cached(sql).map_err(StoreError::db)?;
        let ncols = stmt.column_count();
        let mut rows = stmt
            .query(params_from_iter(params.iter().map(to_sql)))
            .map_err(StoreError::db)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(StoreError::db)? {
            let mut r = Vec::with_capacity(ncols);
            for i in 0..ncols {
                r.push(match row.get_ref(i).map_err(StoreError::db)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(_) => return Err(StoreError::Corrupt { column: i }),
                    ValueRef::Text(t) => Value::Text(
                        String::from_utf8(t.to_vec())
                            .map_err(|_| StoreError::Corrupt { column: i })?,
                    ),
                    ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
                });
            }
            out.push(r);
        }
        Ok(out)
    }
}

impl Backend for SqliteBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Sqlite
    }

    fn with_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // IMMEDIATE takes the write lock up front: no upgrade deadlocks between processes.
        self.run(TransactionBehavior::Immediate, f)
    }

    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        // DEFERRED: in WAL mode the first read fixes a snapshot, and writers go on meanwhile.
        let mut conn = self.reader()?;
        let result = (|| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Deferred)
                .map_err(StoreError::db)?;
            f(&mut SqliteTx(&tx))?;
            tx.commit().map_err(StoreError::db)
        })();
        if result.is_ok()
            && let Ok(mut idle) = self.readers.lock()
            && idle.len() < MAX_READERS
        {
            idle.push(conn);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wal_is_checkpointed_by_its_own_thread() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let path = dir.path().join("c.sqlite3");
        let db = SqliteBackend::open(&path).expect("open");
        db.with_tx(&mut |tx| {
            tx.execute("CREATE TABLE T (B BLOB NOT NULL)", &[])?;
            // 2 MiB: below the 1000 pages at which a commit would checkpoint by default.
            for _ in 0..64 {
                tx.execute(
                    "INSERT INTO T (B) VALUES (?)",
                    &[Value::Bytes(vec![7; 32 * 1024])],
                )?;
            }
            Ok(())
        })
        .expect("write");
        let size = || std::fs::metadata(&path).map_or(0, |m| m.len());
        let deadline = std::time::Instant::now() + 20 * CHECKPOINT_EVERY;
        while size() < 2 << 20 && std::time::Instant::now() < deadline {
            std::thread::sleep(CHECKPOINT_EVERY / 2);
        }
        assert!(
            size() >= 2 << 20,
            "the database file holds the rows: {}",
            size()
        );
        let rows = db.read("SELECT COUNT(*) FROM T", &[]).expect("count");
        assert_eq!(rows, vec![vec![Value::Int(64)]]);
    }
}
