//! PostgreSQL backend: a small pool of synchronous connections (the server calls the store from
//! blocking threads). The connection is not encrypted (`NoTls`): run the database on the same
//! host or a trusted network.
//!
//! Each connection keeps the statements it has prepared: a statement sent as text is parsed and
//! described (one round trip) before it runs (another), and a deposit runs about ten of them
//! one after the other, so preparing each once per connection halves the round trips of the
//! deposit writer. A batch of deposits is written with multi-row statements
//! ([`Tx::insert_rows`]: one array per column, `UNNEST`ed), so its round trips do not grow
//! with its size.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use postgres::types::{ToSql, Type};
use postgres::{Config, IsolationLevel, NoTls, Statement};
use r2d2_postgres::PostgresConnectionManager;

use super::{Backend, BackendKind, ColumnKind, Row, StoreError, Tx, Value, redact_url};

/// Prepared statements kept per connection at most (the queries are a fixed set, plus the
/// search's combinations of criteria).
const MAX_STATEMENTS: usize = 256;

/// A pooled connection and the statements prepared on it, by their `?` text.
struct Conn {
    client: postgres::Client,
    statements: HashMap<String, Statement>,
}

/// [`PostgresConnectionManager`] with a statement cache per connection.
#[derive(Debug)]
struct Manager(PostgresConnectionManager<NoTls>);

impl r2d2::ManageConnection for Manager {
    type Connection = Conn;
    type Error = postgres::Error;

    fn connect(&self) -> Result<Conn, postgres::Error> {
        Ok(Conn {
            client: self.0.connect()?,
            statements: HashMap::new(),
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), postgres::Error> {
        self.0.is_valid(&mut conn.client)
    }

    fn has_broken(&self, conn: &mut Conn) -> bool {
        self.0.has_broken(&mut conn.client)
    }
}

/// A PostgreSQL database.
pub struct PostgresBackend {
    // An Option only so that Drop can move the pool to a plain thread.
    pool: Option<r2d2::Pool<Manager>>,
}

impl Drop for PostgresBackend {
    fn drop(&mut self) {
        // The synchronous client closes its connection by running a small runtime of its own,
        // which panics inside an async task: close the pool on a thread of its own.
        if let Some(pool) = self.pool.take() {
            let _ = std::thread::spawn(move || drop(pool)).join();
        }
    }
}

impl std::fmt::Debug for PostgresBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresBackend").finish_non_exhaustive()
    }
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user[:password]@host[:port]/database`).
    ///
    /// # Errors
    /// A malformed URL or no connection within 10 seconds.
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        let config = Config::from_str(url).map_err(|e| StoreError::Database {
            message: format!("bad PostgreSQL URL {}: {e}", redact_url(url)),
            source: Some(Box::new(e)),
        })?;
        let manager = Manager(PostgresConnectionManager::new(config, NoTls));
        let pool = r2d2::Pool::builder()
            .max_size(8)
            .min_idle(Some(1))
            .connection_timeout(Duration::from_secs(10))
            .build(manager)
            .map_err(|e| StoreError::Database {
                message: format!("cannot connect to PostgreSQL at {}: {e}", redact_url(url)),
                source: Some(Box::new(e)),
            })?;
        Ok(PostgresBackend { pool: Some(pool) })
    }

    /// A connection from the pool.
    fn connection(&self) -> Result<r2d2::PooledConnection<Manager>, StoreError> {
        let pool = self
            .pool
            .as_ref()
            .ok_or_else(|| StoreError::msg("the PostgreSQL pool is closed"))?;
        pool.get().map_err(|e| StoreError::Database {
            message: format!("no PostgreSQL connection available: {e}"),
            source: Some(Box::new(e)),
        })
    }
}

/// `?` placeholders to `$1, $2, …` (our statements have no `?` inside literals).
fn number_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn params(values: &[Value]) -> Vec<Box<dyn ToSql + Sync>> {
    values
        .iter()
        .map(|v| -> Box<dyn ToSql + Sync> {
            match v {
                Value::Null => Box::new(Option::<String>::None),
                Value::Int(i) => Box::new(*i),
                Value::Text(s) => Box::new(s.clone()),
                Value::Bytes(b) => Box::new(b.clone()),
            }
        })
        .collect()
}

struct PgTx<'a, 'b> {
    tx: &'a mut postgres::Transaction<'b>,
    statements: &'a mut HashMap<String, Statement>,
}

impl PgTx<'_, '_> {
    /// `sql` prepared on this connection (once: prepared statements outlive transactions).
    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(s) = self.statements.get(sql) {
            return Ok(s.clone());
        }
        let s = self
            .tx
            .prepare(&number_placeholders(sql))
            .map_err(StoreError::db)?;
        if self.statements.len() >= MAX_STATEMENTS {
            self.statements.clear();
        }
        self.statements.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

/// The columns of `rows` as one array parameter each, for `UNNEST`.
fn column_arrays(
    columns: &[(&str, ColumnKind)],
    rows: &[Vec<Value>],
) -> Result<Vec<Box<dyn ToSql + Sync>>, StoreError> {
    let bad = |table_col: &str| {
        StoreError::msg(format!(
            "insert: a value of column {table_col} does not have its type (a store bug)"
        ))
    };
    let mut out: Vec<Box<dyn ToSql + Sync>> = Vec::with_capacity(columns.len());
    for (i, (name, kind)) in columns.iter().enumerate() {
        let cell = |r: &Vec<Value>| r.get(i).cloned().ok_or_else(|| bad(name));
        match kind {
            ColumnKind::Int => out.push(Box::new(
                rows.iter()
                    .map(|r| match cell(r)? {
                        Value::Int(v) => Ok(v),
                        _ => Err(bad(name)),
                    })
                    .collect::<Result<Vec<i64>, _>>()?,
            )),
            ColumnKind::Text => out.push(Box::new(
                rows.iter()
                    .map(|r| match cell(r)? {
                        Value::Text(v) => Ok(v),
                        _ => Err(bad(name)),
                    })
                    .collect::<Result<Vec<String>, _>>()?,
            )),
            ColumnKind::Bytes => out.push(Box::new(
                rows.iter()
                    .map(|r| match cell(r)? {
                        Value::Bytes(v) => Ok(v),
                        _ => Err(bad(name)),
                    })
                    .collect::<Result<Vec<Vec<u8>>, _>>()?,
            )),
        }
    }
    Ok(out)
}

impl Tx for PgTx<'_, '_> {
    fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, StoreError> {
        let statement = self.statement(sql)?;
        let owned = params(values);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        self.tx.execute(&statement, &refs).map_err(StoreError::db)
    }

    fn query(&mut self, sql: &str, values: &[Value]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        let owned = params(values);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.tx.query(&statement, &refs).map_err(StoreError::db)?;
        rows_out(&rows)
    }

    /// One statement whatever the number of rows: each column is bound as one array and the
    /// rows are `UNNEST`ed from them (the statement text does not depend on the row count, so
    /// it is prepared once per connection).
    fn insert_rows(
        &mut self,
        table: &str,
        columns: &[(&str, ColumnKind)],
        rows: &[Vec<Value>],
        tail: &str,
    ) -> Result<Vec<Row>, StoreError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let names = columns.iter().map(|c| c.0).collect::<Vec<_>>().join(", ");
        let arrays = columns
            .iter()
            .enumerate()
            .map(|(i, (_, kind))| {
                let ty = match kind {
                    ColumnKind::Int => "BIGINT",
                    ColumnKind::Text => "TEXT",
                    ColumnKind::Bytes => "BYTEA",
                };
                format!("${}::{ty}[]", i + 1)
            })
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!("INSERT INTO {table} ({names}) SELECT * FROM UNNEST({arrays}) {tail}");
        let statement = self.statement(&sql)?;
        let owned = column_arrays(columns, rows)?;
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        let rows = self.tx.query(&statement, &refs).map_err(StoreError::db)?;
        rows_out(&rows)
    }
}

/// Rows as the store's [`Value`]s.
fn rows_out(rows: &[postgres::Row]) -> Result<Vec<Row>, StoreError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut r = Vec::with_capacity(row.len());
        for (i, col) in row.columns().iter().enumerate() {
            let bad = |_| StoreError::Corrupt { column: i };
            let v = match *col.type_() {
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)
                    .map_err(bad)?
                    .map(Value::Int),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)
                    .map_err(bad)?
                    .map(|v| Value::Int(v.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)
                    .map_err(bad)?
                    .map(|v| Value::Int(v.into())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)
                    .map_err(bad)?
                    .map(Value::from),
                Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
                    .try_get::<_, Option<String>>(i)
                    .map_err(bad)?
                    .map(Value::Text),
                Type::BYTEA => row
                    .try_get::<_, Option<Vec<u8>>>(i)
                    .map_err(bad)?
                    .map(Value::Bytes),
                _ => return Err(StoreError::Corrupt { column: i }),
            };
            r.push(v.unwrap_or(Value::Null));
        }
        out.push(r);
    }
    Ok(out)
}

impl Backend for PostgresBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Postgres
    }

    fn read(&self, sql: &str, values: &[Value]) -> Result<Vec<Row>, StoreError> {
        let mut conn = self.connection()?;
        let conn = &mut *conn;
        let statement = match conn.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn
                    .client
                    .prepare(&number_placeholders(sql))
                    .map_err(StoreError::db)?;
                if conn.statements.len() >= MAX_STATEMENTS {
                    conn.statements.clear();
                }
                conn.statements.insert(sql.to_owned(), s.clone());
                s
            }
        };
        let owned = params(values);
        let refs: Vec<&(dyn ToSql + Sync)> = owned.iter().map(|b| b.as_ref()).collect();
        // Outside a transaction: the statement runs in one of its own, on its own snapshot.
        let rows = conn
            .client
            .query(&statement, &refs)
            .map_err(StoreError::db)?;
        rows_out(&rows)
    }

    fn with_tx(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        let conn = &mut *conn;
        let mut tx = conn.client.transaction().map_err(StoreError::db)?;
        f(&mut PgTx {
            tx: &mut tx,
            statements: &mut conn.statements,
        })?;
        tx.commit().map_err(StoreError::db)
    }

    fn with_snapshot(
        &self,
        f: &mut dyn FnMut(&mut dyn Tx) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut conn = self.connection()?;
        // REPEATABLE READ: every statement sees the snapshot taken at the first one.
        let conn = &mut *conn;
        let mut tx = conn
            .client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(StoreError::db)?;
        f(&mut PgTx {
            tx: &mut tx,
            statements: &mut conn.statements,
        })?;
        tx.commit().map_err(StoreError::db)
    }
}
