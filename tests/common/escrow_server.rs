//! The escrow server's test scaffolding (`tests/escrow`): a real server on 127.0.0.1 port 0
//! with real TLS (clients trust only the certificate `init` generated), a fresh SQLite or
//! PostgreSQL database per test, the authority key, the users and requests of a test, and the
//! `tcvault-escrowd` binary set up on the loopback interface.
//!
//! The PostgreSQL databases need `TCVAULT_TEST_POSTGRES_URL` (scripts/setup.d/postgres.sh);
//! without it their tests skip, except under CI=true, where they fail.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use getrandom::SysRng;
use reqwest::StatusCode;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tcvault::escrow::server::Server;
use tcvault::escrow::server::api::AppState;
use tcvault::escrow::server::auth::hash_password;
use tcvault::escrow::server::config::{self, Config};
use tcvault::escrow::server::store::postgres::PostgresBackend;
use tcvault::escrow::server::store::sqlite::SqliteBackend;
use tcvault::escrow::server::store::{
    AUDIT_GENESIS, AuditEvent, AuditKey, AuditReport, Backend, NewEntry, Store, UserRecord,
    Value as SqlValue,
};

use super::private_tempdir;

/// One RSA authority key pair per test process (only the public half goes to the server).
pub fn authority() -> &'static (String, String, String) {
    static KEY: OnceLock<(String, String, String)> = OnceLock::new();
    KEY.get_or_init(|| {
        let private = rsa::PrivateKey::new(&mut SysRng, 2048).expect("RSA key generation");
        let public = private.to_public_key();
        let pem = public
            .to_public_key_pem(LineEnding::LF)
            .expect("public key PEM");
        let der = public.to_public_key_der().expect("public key DER");
        let fingerprint = hex::encode(Sha256::digest(der.as_bytes()));
        let private_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .expect("private key PEM")
            .to_string();
        (pem, fingerprint, private_pem)
    })
}

pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    tcvault::crypto::random::fill(&mut b).expect("random bytes");
    hex::encode(b)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh database for one test, with the audit key the server and the helpers open it with.
#[derive(Clone, Debug)]
pub struct Db {
    at: DbAt,
    pub audit_key: PathBuf,
}

#[derive(Clone, Debug)]
enum DbAt {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Db {
    pub fn url(&self) -> String {
        match &self.at {
            DbAt::Sqlite(p) => format!("sqlite:{}", p.display()),
            DbAt::Postgres(u) => u.clone(),
        }
    }

    /// Runs raw SQL against the database behind the server's back (tampering, triggers).
    pub async fn exec(&self, sql: &str) {
        let db = self.at.clone();
        let sql = sql.to_owned();
        tokio::task::spawn_blocking(move || match db {
            DbAt::Sqlite(p) => {
                let c = rusqlite::Connection::open(p).expect("open sqlite");
                c.busy_timeout(Duration::from_secs(10))
                    .expect("busy timeout");
                c.execute_batch(&sql).expect("raw sql");
            }
            DbAt::Postgres(u) => {
                let mut c = ::postgres::Client::connect(&u, ::postgres::NoTls).expect("connect pg");
                c.batch_execute(&sql).expect("raw sql");
            }
        })
        .await
        .expect("raw sql task");
    }

    /// Walks the audit chain (the store is synchronous: off the async threads).
    pub async fn verify(&self) -> AuditReport {
        let (url, key) = (self.url(), self.audit_key.clone());
        tokio::task::spawn_blocking(move || {
            Store::open(&url, Path::new("/"))
                .expect("open store")
                .with_audit_key(AuditKey::load(&key).expect("audit key"))
                .expect("keyed store")
                .verify_audit()
                .expect("verify")
        })
        .await
        .expect("verify task")
    }

    /// The store's own backend over this database, for raw statements behind the server's back.
    pub fn backend(&self) -> Box<dyn Backend> {
        match &self.at {
            DbAt::Sqlite(p) => Box::new(SqliteBackend::open(p).expect("open sqlite")),
            DbAt::Postgres(u) => Box::new(PostgresBackend::connect(u).expect("connect pg")),
        }
    }

    /// What someone with write access to the database but not the audit key can do after
    /// changing audit rows: recompute the chain from row `from` on with `tag(row, prev_hash)`
    /// (row = SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, ROW_CHANGES) and
    /// move the head along.
    pub async fn rechain(
        &self,
        from: i64,
        tag: impl Fn(&[SqlValue], &str) -> String + Send + 'static,
    ) {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            db.backend()
                .with_tx(&mut |tx| {
                    let mut prev = match tx
                        .query("SELECT HASH FROM AUDIT WHERE SEQ = ?", &[(from - 1).into()])?
                        .first()
                    {
                        Some(r) => col_text(r, 0).to_owned(),
                        None => AUDIT_GENESIS.to_owned(),
                    };
                    let rows = tx.query(
                        "SELECT SEQ, AUDIT_TIME, ACTOR, PEER, EVENT, ESCROW_NUMBERS, DETAIL, \
                         ROW_CHANGES FROM AUDIT WHERE SEQ >= ? ORDER BY SEQ",
                        &[from.into()],
                    )?;
                    for r in &rows {
                        let hash = tag(r, &prev);
                        tx.execute(
                            "UPDATE AUDIT SET PREV_HASH = ?, HASH = ? WHERE SEQ = ?",
                            &[prev.as_str().into(), hash.as_str().into(), r[0].clone()],
                        )?;
                        prev = hash;
                    }
                    tx.execute("UPDATE AUDIT_HEAD SET HASH = ?", &[prev.as_str().into()])?;
                    Ok(())
                })
                .expect("rechain");
        })
        .await
        .expect("rechain task");
    }

    /// Verifies and asserts that some problem mentions each of `wanted`.
    pub async fn assert_problems(&self, wanted: &[&str]) -> AuditReport {
        let report = self.verify().await;
        for w in wanted {
            assert!(
                report.problems.iter().any(|p| p.contains(w)),
                "no problem mentions {w:?}: {:?}",
                report.problems
            );
        }
        report
    }

    pub async fn store(&self) -> Store {
        let (url, key) = (self.url(), self.audit_key.clone());
        tokio::task::spawn_blocking(move || Store::open_keyed(&url, Path::new("/"), &key))
            .await
            .expect("store task")
            .expect("open store")
    }
}

/// A fresh database and a new audit key in `dir`, or `None` when PostgreSQL is not available
/// outside CI.
async fn fresh_db(kind: Kind, dir: &Path) -> Option<Db> {
    let tag = random_hex(4);
    let audit_key = dir.join(format!("audit-{tag}.key"));
    AuditKey::create(&audit_key).expect("audit key");
    let at = fresh_db_at(kind, dir, &tag).await?;
    Some(Db { at, audit_key })
}

async fn fresh_db_at(kind: Kind, dir: &Path, tag: &str) -> Option<DbAt> {
    match kind {
        Kind::Sqlite => Some(DbAt::Sqlite(dir.join(format!("escrow-{tag}.sqlite3")))),
        Kind::Postgres => {
            let Ok(base) = std::env::var("TCVAULT_TEST_POSTGRES_URL") else {
                assert!(
                    !super::in_ci(),
                    "CI=true but TCVAULT_TEST_POSTGRES_URL is not set (run scripts/setup.d/postgres.sh)"
                );
                eprintln!("skipping the PostgreSQL variant: TCVAULT_TEST_POSTGRES_URL is not set");
                return None;
            };
            let name = format!("tcvault_test_{}", random_hex(8));
            let create = format!("CREATE DATABASE {name}");
            let admin_url = base.clone();
            tokio::task::spawn_blocking(move || {
                let mut c = ::postgres::Client::connect(&admin_url, ::postgres::NoTls)
                    .expect("connect to pg");
                c.batch_execute(&create).expect("create database");
            })
            .await
            .expect("create db task");
            let (head, tail) = match base.split_once('?') {
                Some((h, t)) => (h.to_owned(), format!("?{t}")),
                None => (base.clone(), String::new()),
            };
            let cut = head.rfind('/').expect("database URL has a path");
            Some(DbAt::Postgres(format!("{}/{name}{tail}", &head[..cut])))
        }
    }
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub cert_pem: Vec<u8>,
    pub db: Db,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    /// The configuration it was started with (for a restart on the same database).
    pub config: Config,
    /// Its handlers' state (counters).
    pub state: Arc<AppState>,
    _dir: tempfile::TempDir,
}

pub struct Options {
    /// The authority public key the server is given (default: this process's own test key).
    pub authority_key: Option<&'static Path>,
    pub admin_networks: &'static str,
    pub max_failures: u32,
    pub max_body: usize,
    pub name: &'static str,
    /// Dual control: `FETCH_APPROVAL_SECONDS` (`None`: off).
    pub fetch_approval: Option<std::time::Duration>,
    /// `SELF_SERVICE_RECOVERY` (default on).
    pub self_service_recovery: bool,
    /// `<LDAP>` (default none).
    pub ldap: Option<config::LdapConfig>,
    /// `<UPSTREAM>` (default none).
    pub upstream: Option<config::UpstreamConfig>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            authority_key: None,
            admin_networks: "127.0.0.0/8",
            max_failures: 5,
            max_body: config::DEFAULT_MAX_BODY_BYTES,
            name: "escrow-a",
            fetch_approval: None,
            self_service_recovery: true,
            ldap: None,
            upstream: None,
        }
    }
}

pub fn write_authority(dir: &Path) -> PathBuf {
    let p = dir.join("authority-in.pem");
    std::fs::write(&p, &authority().0).expect("write authority key");
    p
}

pub async fn start(kind: Kind, opts: Options) -> Option<TestServer> {
    let dir = private_tempdir();
    let db = fresh_db(kind, dir.path()).await?;
    let conf_dir = dir.path().join("conf");
    let key = match opts.authority_key {
        Some(k) => k.to_path_buf(),
        None => write_authority(dir.path()),
    };
    config::init(&conf_dir, "localhost", 8443, Some(&key)).expect("init");
    let mut cfg = Config::load(&conf_dir.join("escrowd.xml")).expect("load sample config");
    cfg.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    cfg.database_url = db.url();
    cfg.audit_key = db.audit_key.clone();
    cfg.admin_networks = opts
        .admin_networks
        .split(',')
        .map(|n| n.parse().expect("network"))
        .collect();
    cfg.throttle.max_failures = opts.max_failures;
    cfg.max_body_bytes = opts.max_body;
    cfg.server_name = opts.name.to_owned();
    cfg.fetch_approval = opts.fetch_approval;
    cfg.self_service_recovery = opts.self_service_recovery;
    cfg.ldap = opts.ldap;
    cfg.upstream = opts.upstream;
    let cert_pem = std::fs::read(conf_dir.join("cert.pem")).expect("cert");
    Some(serve(cfg, cert_pem, db, dir).await)
}

/// Binds and runs a server with `cfg`.
async fn serve(cfg: Config, cert_pem: Vec<u8>, db: Db, dir: tempfile::TempDir) -> TestServer {
    let server = Server::bind(cfg.clone()).await.expect("server binds");
    let addr = server.local_addr();
    let state = server.state();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        cert_pem,
        db,
        stop: Some(tx),
        task: Some(task),
        config: cfg,
        state,
        _dir: dir,
    }
}

impl TestServer {
    pub fn client(&self) -> reqwest::Client {
        self.client_from(std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// A client whose connections come from `ip` (any 127.0.0.0/8 address reaches the server).
    pub fn client_from(&self, ip: std::net::IpAddr) -> reqwest::Client {
        reqwest::Client::builder()
            .local_address(ip)
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&self.cert_pem).expect("cert parses"),
            )
            .resolve("localhost", self.addr)
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    pub async fn add_user(
        &self,
        name: &str,
        password: &str,
        admin: bool,
        export: bool,
        import: bool,
    ) {
        let store = self.db.store().await;
        let rec = UserRecord {
            name: name.to_owned(),
            password_hash: hash_password(password.as_bytes()).expect("hash"),
            admin,
            export,
            import,
            escrow_required: false,
        };
        tokio::task::spawn_blocking(move || {
            store
                .add_user(&rec, &AuditEvent::new("test", "local", "user_add"))
                .expect("add user");
        })
        .await
        .expect("add user task");
    }

    /// Requests as `user` with the password the tests give every user: "<user> pw".
    pub fn as_user<'a>(&'a self, user: &'a str) -> AsUser<'a> {
        AsUser {
            server: self,
            user,
            pw: format!("{user} pw"),
        }
    }

    pub async fn get(&self, user: &str, pw: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .client()
            .get(self.url(path))
            .basic_auth(user, Some(pw))
            .send()
            .await
            .expect("request");
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// A GET as `user` from the source address `ip`; the status only.
    pub async fn get_from(&self, ip: [u8; 4], user: &str, pw: &str, path: &str) -> StatusCode {
        self.client_from(std::net::Ipv4Addr::from(ip).into())
            .get(self.url(path))
            .basic_auth(user, Some(pw))
            .send()
            .await
            .expect("request")
            .status()
    }

    pub async fn post(
        &self,
        user: &str,
        pw: &str,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let r = self
            .client()
            .post(self.url(path))
            .basic_auth(user, Some(pw))
            .json(body)
            .send()
            .await
            .expect("request");
        let s = r.status();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn stop(mut self) {
        self.halt().await;
    }

    async fn halt(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(20), t)
                .await
                .expect("server stops within 20 s")
                .expect("server task");
        }
    }

    /// Stops this server and starts a new one on the same database and configuration (another
    /// port), as after a restart of the service.
    pub async fn restart(self) -> TestServer {
        self.restart_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
    }

    /// As [`TestServer::restart`], listening on the same address again (servers that push
    /// to it find it there).
    pub async fn restart_in_place(self) -> TestServer {
        let addr = self.addr;
        self.restart_at(addr).await
    }

    /// A second server on this one's database and configuration, at once, on another port
    /// (several servers sharing one PostgreSQL).
    pub async fn twin(&self) -> TestServer {
        let mut cfg = self.config.clone();
        cfg.listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        serve(
            cfg,
            self.cert_pem.clone(),
            self.db.clone(),
            private_tempdir(),
        )
        .await
    }

    async fn restart_at(mut self, listen: SocketAddr) -> TestServer {
        self.halt().await;
        let mut cfg = self.config.clone();
        cfg.listen = listen;
        let TestServer {
            cert_pem, db, _dir, ..
        } = self;
        serve(cfg, cert_pem, db, _dir).await
    }
}

/// A [`TestServer`] with one user's credentials.
pub struct AsUser<'a> {
    server: &'a TestServer,
    user: &'a str,
    pw: String,
}

impl AsUser<'_> {
    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.server.get(self.user, &self.pw, path).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.server.post(self.user, &self.pw, path, body).await
    }

    /// Approves or rejects (`verdict`) deletion request `request`.
    pub async fn decide(&self, request: i64, verdict: &str) -> (StatusCode, Value) {
        let path = format!("/v1/admin/deletion-requests/{request}/{verdict}");
        self.post(&path, &json!({})).await
    }
}

pub fn deposit_body(fingerprint: &str, salts: &[String], packet: &[u8]) -> Value {
    json!({
        "volume_fingerprint": fingerprint,
        "salts": salts,
        "authority_fingerprint": authority().1,
        "metadata": {"format": "veracrypt", "hidden": false, "cipher": "AES", "prf": "SHA-512"},
        "packet": B64.encode(packet),
    })
}

/// SQL that makes the database refuse escrow entries whose metadata mentions "poison", and
/// SQL that undoes it.
pub fn poison_trigger(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Sqlite => (
            "CREATE TRIGGER poison BEFORE INSERT ON ESCROW WHEN NEW.METADATA LIKE '%poison%' \
             BEGIN SELECT RAISE(ABORT, 'poisoned deposit'); END;",
            "DROP TRIGGER poison;",
        ),
        Kind::Postgres => (
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
               IF NEW.METADATA LIKE '%poison%' THEN RAISE EXCEPTION 'poisoned deposit'; END IF; \
               RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER poison BEFORE INSERT ON ESCROW FOR EACH ROW EXECUTE FUNCTION poison();",
            "DROP TRIGGER poison ON ESCROW;",
        ),
    }
}

/// A store-level escrow entry of `user` for the volume `fingerprint` with one random salt.
pub fn new_entry(user: &str, fingerprint: &str, metadata: &str) -> NewEntry {
    NewEntry {
        user: user.to_owned(),
        volume_fingerprint: fingerprint.to_owned(),
        salts: vec![random_hex(64)],
        authority_fingerprint: authority().1.clone(),
        metadata: metadata.to_owned(),
        packet: b"batched".to_vec(),
        recovery: false,
        created_at: None,
        origin: "local".to_owned(),
    }
}

pub fn col_text(row: &[SqlValue], i: usize) -> &str {
    match &row[i] {
        SqlValue::Text(t) => t,
        other => panic!("column {i} is not text: {other:?}"),
    }
}

pub fn col_int(row: &[SqlValue], i: usize) -> i64 {
    match &row[i] {
        SqlValue::Int(v) => *v,
        other => panic!("column {i} is not an integer: {other:?}"),
    }
}

/// `both_backends!(scenario, …)`: for each `async fn scenario(kind: Kind)` of the invoking
/// module, a test `sqlite::scenario` and a test `postgres::scenario` that run it on that database.
// Only the escrow crate's escrowd.rs expands it; the other test crates compile this file unused.
#[allow(unused_macros)]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::escrow_server::Kind::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::escrow_server::Kind::Postgres).await;
                }
            )*
        }
    };
}

pub fn escrowd() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_tcvault-escrowd"))
}

/// Writes a configuration with `init` (listening on the loopback interface) and the users
/// root (admin) and bob; returns the configuration file.
pub fn binary_setup(dir: &Path) -> PathBuf {
    let key = write_authority(dir);
    let conf_dir = dir.join("conf");
    let out = escrowd()
        .arg("init")
        .arg(&conf_dir)
        .args([
            "--host",
            "localhost",
            "--listen",
            "127.0.0.1:0",
            "--authority-key",
        ])
        .arg(&key)
        .output()
        .expect("run init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let conf = conf_dir.join("escrowd.xml");
    let pwfile = dir.join("pw");
    std::fs::write(&pwfile, "s3cret pw\n").expect("pw file");
    for args in [["root", "--admin"].as_slice(), &["bob"]] {
        let out = escrowd()
            .arg("-c")
            .arg(&conf)
            .args(["user", "add"])
            .args(args)
            .arg("--password-file")
            .arg(&pwfile)
            .output()
            .expect("user add");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    conf
}

pub fn run_escrowd(conf: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = escrowd()
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .expect("run tcvault-escrowd");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[allow(unused_imports)]
pub(crate) use both_backends;
