//! Key escrow end to end: the real `tcvault` binary against a real escrow server on 127.0.0.1
//! (port 0, TLS with the certificate `init` generated, a fresh SQLite database per test):
//! keygen, deposits from the create / change-password hooks, "already in escrow", a second
//! user's entry, and the help-desk restore `-R ADMIN TARGET` of a volume and of a 1 KB header
//! backup, each proven to belong to its target (a header copy under the packet's header key, or
//! a filesystem under its keys), with the refusals (non-admin, wrong private-key passphrase,
//! another volume's entry, decoy salts posted with one's own packet, unreachable server); and the same restore for a legacy TrueCrypt (LRW) volume and its 1 KB
//! backup, the volume built by the tests' own independent builder.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use assert_cmd::Command;
use tcvault::escrow::server::auth::hash_password;
use tcvault::escrow::server::store::{AuditEvent, Store, UserRecord};
use tcvault::header::{Credentials, UnlockOptions};
use tcvault::secret::Password;
use tcvault::volume::{Host, SlotChoice, Volume};

use crate::common::escrow_server::{self, Kind, Options, TestServer};
use crate::common::private_tempdir;

const PIM: &str = "1";

/// The authority key pair made once per test process with `tcvault escrow keygen`.
struct Authority {
    _dir: tempfile::TempDir,
    private: PathBuf,
    public: PathBuf,
    passphrase: PathBuf,
    fingerprint: String,
    /// For a split key: its share files and their holders' passphrase files, in order.
    shares: Vec<(PathBuf, PathBuf)>,
}

/// `tcvault escrow keygen` into a new folder, with `extra` arguments; the fingerprint it
/// printed.
fn keygen(dir: &Path, extra: &[&std::ffi::OsStr]) -> (Output, String) {
    let out = Command::cargo_bin("tcvault")
        .expect("binary")
        .args(["escrow", "keygen", "--private-key"])
        .arg(dir.join("authority.key.pem"))
        .arg("--public-key")
        .arg(dir.join("authority.pub.pem"))
        .args(extra)
        .output()
        .expect("run keygen");
    let fingerprint = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out, fingerprint)
}

fn authority() -> &'static Authority {
    static A: OnceLock<Authority> = OnceLock::new();
    A.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let passphrase = dir.path().join("passphrase");
        std::fs::write(&passphrase, "help desk secret\n").expect("write passphrase");
        let (out, fingerprint) = keygen(
            dir.path(),
            &["--passphrase-file".as_ref(), passphrase.as_os_str()],
        );
        assert!(
            out.status.success(),
            "keygen: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Authority {
            private: dir.path().join("authority.key.pem"),
            public: dir.path().join("authority.pub.pem"),
            passphrase,
            fingerprint,
            shares: Vec::new(),
            _dir: dir,
        }
    })
}

/// An authority key split 3 of 5 by `escrow keygen --shares 5 --threshold 3`, each share
/// under its own holder's passphrase; no file holds the whole key.
fn split_authority() -> &'static Authority {
    static A: OnceLock<Authority> = OnceLock::new();
    A.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<std::ffi::OsString> = ["--shares", "5", "--threshold", "3"]
            .iter()
            .map(Into::into)
            .collect();
        let mut shares = Vec::new();
        for i in 1..=5 {
            let pass = dir.path().join(format!("holder{i}.pass"));
            std::fs::write(&pass, format!("holder {i} passphrase\n")).expect("write");
            args.push("--share-passphrase-file".into());
            args.push(pass.clone().into());
            shares.push((dir.path().join(format!("authority.key.pem.share{i}")), pass));
        }
        let args: Vec<&std::ffi::OsStr> = args.iter().map(AsRef::as_ref).collect();
        let (out, fingerprint) = keygen(dir.path(), &args);
        assert!(
            out.status.success(),
            "keygen --shares: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Authority {
            private: dir.path().join("authority.key.pem"),
            public: dir.path().join("authority.pub.pem"),
            passphrase: dir.path().join("no-passphrase"),
            fingerprint,
            shares,
            _dir: dir,
        }
    })
}

/// A running server, a client configuration for it and a scratch directory.
struct Env {
    rt: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    config: PathBuf,
    db_url: String,
    audit_key: PathBuf,
    server: Option<TestServer>,
    authority: &'static Authority,
}

impl Env {
    fn start() -> Env {
        Env::start_with("127.0.0.0/8")
    }

    /// A server (the suite's common one, on SQLite, with this file's authority key) whose
    /// admins must call from `admin_network`.
    fn start_with(admin_network: &'static str) -> Env {
        Env::start_for(authority(), admin_network)
    }

    /// As [`Env::start_with`], for the authority key `a`.
    fn start_for(a: &'static Authority, admin_network: &'static str) -> Env {
        Env::start_opts(
            a,
            Options {
                admin_networks: admin_network,
                ..Options::default()
            },
        )
    }

    /// A server with `opts` (its authority key: `a`'s).
    fn start_opts(a: &'static Authority, opts: Options) -> Env {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let opts = Options {
            authority_key: Some(&a.public),
            ..opts
        };
        let server = rt
            .block_on(escrow_server::start(Kind::Sqlite, opts))
            .expect("an SQLite server always starts");
        let dir = private_tempdir();
        let cert = dir.path().join("server-cert.pem");
        std::fs::write(&cert, &server.cert_pem).expect("write the server certificate");
        let config = dir.path().join("escrow.xml");
        write_client_config(&config, &server.url(""), &cert, a);
        let env = Env {
            rt,
            dir,
            config,
            db_url: server.db.url(),
            audit_key: server.db.audit_key.clone(),
            server: Some(server),
            authority: a,
        };
        env.add_user("alice", "alice pw", false);
        env.add_user("bob", "bob pw", false);
        env.add_user("helpdesk", "helpdesk pw", true);
        env
    }

    /// `tcvault-escrowd user require-escrow NAME yes|no`, as the store does it.
    fn require_escrow(&self, name: &str, on: bool) {
        Store::open_keyed(&self.db_url, Path::new("/"), &self.audit_key)
            .expect("open store")
            .set_escrow_required(name, on, &AuditEvent::new("test", "local", "require"))
            .expect("set the flag");
    }

    fn add_user(&self, name: &str, password: &str, admin: bool) {
        self.add_user_with(name, password, admin, false);
    }

    /// A user; `bundles`: with the export and import rights too.
    fn add_user_with(&self, name: &str, password: &str, admin: bool, bundles: bool) {
        let store =
            Store::open_keyed(&self.db_url, Path::new("/"), &self.audit_key).expect("open store");
        let rec = UserRecord {
            name: name.to_owned(),
            password_hash: hash_password(password.as_bytes()).expect("hash"),
            admin,
            export: bundles,
            import: bundles,
            escrow_required: false,
        };
        store
            .add_user(&rec, &AuditEvent::new("test", "local", "user_add"))
            .expect("add user");
        // Each user gets a credentials file for --escrow-credentials / --admin-password-file.
        std::fs::write(
            self.path(&format!("{name}.creds")),
            format!("{name}\n{password}\n"),
        )
        .expect("creds");
        std::fs::write(self.path(&format!("{name}.pw")), format!("{password}\n")).expect("pw");
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn secret(&self, name: &str, value: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, format!("{value}\n")).expect("write secret");
        p
    }

    fn tcvault(&self) -> Command {
        let mut c = Command::cargo_bin("tcvault").expect("binary");
        c.current_dir(self.dir.path());
        c.env("HOME", self.dir.path());
        c.env_remove("XDG_STATE_HOME");
        c
    }

    /// `tcvault create` of a 1 MiB volume with escrow as `user` (or `None`: no escrow).
    fn create(&self, name: &str, password: &str, user: Option<&str>) -> (PathBuf, Output) {
        let vol = self.path(name);
        let pw = self.secret(&format!("{name}.volpw"), password);
        let mut c = self.tcvault();
        c.arg("create")
            .arg(&vol)
            .args(["--size", "1M", "--quick", "--pim", PIM, "--password-file"])
            .arg(&pw)
            .arg("--escrow-config")
            .arg(&self.config);
        match user {
            Some(u) => c
                .args(["--escrow", "yes", "--escrow-credentials"])
                .arg(self.path(&format!("{u}.creds"))),
            None => c.args(["--escrow", "no"]),
        };
        let out = c.output().expect("run create");
        assert!(out.status.success(), "create: {}", stderr(&out));
        (vol, out)
    }

    /// `tcvault change-password VOL` from the password file `old` to `new`, escrowing the keys
    /// as `user`; with `pim`, PIM 1 both ways (legacy TrueCrypt volumes take no PIM).
    fn change_password_escrowed(
        &self,
        vol: &Path,
        old: &Path,
        new: &Path,
        user: &str,
        pim: bool,
    ) -> Output {
        let mut c = self.tcvault();
        c.arg("change-password")
            .arg(vol)
            .arg("--password-file")
            .arg(old);
        if pim {
            c.args(["--pim", PIM, "--new-pim", PIM]);
        }
        c.args(["--escrow", "yes", "--escrow-config"])
            .arg(&self.config)
            .arg("--escrow-credentials")
            .arg(self.path(&format!("{user}.creds")))
            .arg("--new-password-file")
            .arg(new)
            .output()
            .expect("change-password")
    }

    /// `tcvault -R admin TARGET --entry N …`.
    fn restore(&self, admin: &str, target: &Path, entry: Option<i64>, new_pw: &str) -> Output {
        let n = entry.map(|n| n.to_string());
        let extra: Vec<&str> = match &n {
            Some(n) => vec!["--entry", n],
            None => vec![],
        };
        self.restore_with(admin, target, &extra, new_pw)
    }

    /// `tcvault -R admin TARGET` with `extra` arguments and the new password `new_pw`, no
    /// terminal.
    fn restore_with(&self, admin: &str, target: &Path, extra: &[&str], new_pw: &str) -> Output {
        let np = self.secret("new.pw", new_pw);
        self.restore_cmd(admin, target)
            .arg("--new-password-file")
            .arg(&np)
            .args(["--new-pim", PIM])
            .args(extra)
            .output()
            .expect("run restore")
    }

    /// `tcvault mount VOL` (password file `pw`, escrow as alice with `config`) fails with
    /// exit 1 saying `said`, and nothing is mounted.
    fn mount_refused(&self, vol: &Path, pw: &Path, config: &Path, said: &str) {
        let out = self
            .tcvault()
            .arg("mount")
            .arg(vol)
            .arg("--password-file")
            .arg(pw)
            .args(["--pim", PIM, "--no-filesystem"])
            .arg("--escrow-config")
            .arg(config)
            .arg("--escrow-credentials")
            .arg(self.path("alice.creds"))
            .output()
            .expect("run mount");
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
        assert!(
            tcvault::mount::state::find_volume(vol).is_none(),
            "mounted although escrow failed"
        );
    }

    /// `tcvault -R admin TARGET` as the admin, with the authority key, old headers not kept;
    /// the caller adds the rest.
    fn restore_cmd(&self, admin: &str, target: &Path) -> Command {
        let a = self.authority;
        let mut c = self.restore_cmd_keyless(admin, target);
        c.arg("--private-key")
            .arg(&a.private)
            .arg("--private-key-passphrase-file")
            .arg(&a.passphrase);
        c
    }

    /// As [`Env::restore_cmd`], without the private key: the caller gives it (or shares).
    fn restore_cmd_keyless(&self, admin: &str, target: &Path) -> Command {
        let mut c = self.tcvault();
        c.arg("-R")
            .arg(admin)
            .arg(target)
            .arg("--escrow-config")
            .arg(&self.config)
            .arg("--admin-password-file")
            .arg(self.path(&format!("{admin}.pw")))
            .arg("--no-keep-old-header");
        c
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            self.rt.block_on(server.stop());
        }
    }
}

fn write_client_config(path: &Path, url: &str, cert: &Path, a: &Authority) {
    let xml = format!(
        "<tcvault-escrow>\n  <server>{url}</server>\n  <ca-certificate>{}</ca-certificate>\n  \
         <authority-key>{}</authority-key>\n  <authority-fingerprint>{}</authority-fingerprint>\n  \
         <policy>ask</policy>\n</tcvault-escrow>\n",
        cert.display(),
        a.public.display(),
        a.fingerprint
    );
    std::fs::write(path, xml).expect("write client config");
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The escrow number printed by a deposit.
fn escrow_number(o: &Output) -> i64 {
    let s = stderr(o);
    let tail = s
        .split("escrow number ")
        .nth(1)
        .or_else(|| s.split("in escrow with number ").nth(1))
        .unwrap_or_else(|| panic!("no escrow number in: {s}"));
    tail.trim_end_matches(|c: char| !c.is_ascii_digit())
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no escrow number in: {s}"))
}

/// The events of the server's audit table, oldest first.
fn audit_events(env: &Env) -> Vec<String> {
    let path = env.db_url.strip_prefix("sqlite:").expect("an SQLite URL");
    let db = rusqlite::Connection::open(path).expect("open the database");
    let mut q = db
        .prepare("SELECT EVENT FROM AUDIT ORDER BY SEQ")
        .expect("query");
    q.query_map([], |r| r.get::<_, String>(0))
        .expect("rows")
        .collect::<Result<_, _>>()
        .expect("events")
}

fn creds(password: &str) -> Credentials {
    let pw = Password::new(password.as_bytes()).expect("password");
    Credentials::new(&pw, &[], 1).expect("credentials")
}

fn open(vol: &Path, password: &str) -> Result<Volume, tcvault::volume::VolumeError> {
    Volume::open(
        vol,
        &creds(password),
        SlotChoice::default(),
        &UnlockOptions::default(),
    )
}

/// Writes 64 KiB of data (a zeroed boot block and an ext4 superblock magic at 0x438, so that
/// header restores can see a filesystem, and a pattern elsewhere) and returns it.
fn write_data(vol: &Path, password: &str) -> Vec<u8> {
    let host = Host::open_writable(vol).expect("open writable");
    let v = Volume::open_on(
        host,
        &creds(password),
        SlotChoice::default(),
        &UnlockOptions::default(),
    )
    .expect("open to write");
    let mut data: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    data[..1024].fill(0);
    data[0x438] = 0x53;
    data[0x439] = 0xEF;
    let mut buf = data.clone();
    v.write_data(0, &mut buf).expect("write data");
    data
}

fn read_data(vol: &Path, password: &str) -> Vec<u8> {
    let v = open(vol, password).expect("opens");
    let mut buf = vec![0u8; 65_536];
    v.read_data(0, &mut buf).expect("read data");
    buf
}

/// Makes the volume's password unknown: change-password to a random one nobody keeps.
impl Env {
    /// The user's `tcvault restore-header VOL --file BACKUP` with the password `password`
    /// (written to the secret file `name`), no terminal, old headers not kept.
    fn restore_header(&self, vol: &Path, backup: &Path, name: &str, password: &str) -> Output {
        let pw = self.secret(name, password);
        self.tcvault()
            .arg("restore-header")
            .arg(vol)
            .arg("--file")
            .arg(backup)
            .args([
                "--pim",
                PIM,
                "--escrow",
                "no",
                "--no-keep-old-header",
                "--password-file",
            ])
            .arg(&pw)
            .output()
            .expect("restore-header")
    }

    /// The server's keyed audit verifies intact.
    fn assert_audit_intact(&self) {
        let store =
            Store::open_keyed(&self.db_url, Path::new("/"), &self.audit_key).expect("open store");
        let report = store.verify_audit().expect("verify");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
    }
}

/// Whether the embedded backup of the normal header opens with `password`.
fn backup_opens(vol: &Path, password: &str) -> bool {
    let slots = SlotChoice {
        backup: true,
        ..SlotChoice::default()
    };
    Volume::open(vol, &creds(password), slots, &UnlockOptions::default()).is_ok()
}

fn forget_password(env: &Env, vol: &Path, old: &str) {
    let oldp = env.secret("old.pw", old);
    let lost = env.secret("lost.pw", &format!("lost {}", std::process::id()));
    let out = env
        .tcvault()
        .arg("change-password")
        .arg(vol)
        .arg("--password-file")
        .arg(&oldp)
        .args([
            "--pim",
            PIM,
            "--new-pim",
            PIM,
            "--escrow",
            "no",
            "--new-password-file",
        ])
        .arg(&lost)
        .output()
        .expect("run change-password");
    assert!(out.status.success(), "change-password: {}", stderr(&out));
    assert!(open(vol, old).is_err(), "the old password no longer opens");
}

#[test]
fn escrow_and_restore_a_volume() {
    let env = Env::start();
    let (vol, out) = env.create("vol.tc", "user pw 1", Some("alice"));
    let n = escrow_number(&out);
    assert!(
        stderr(&out).contains("Escrowed the keys"),
        "{}",
        stderr(&out)
    );
    let data = write_data(&vol, "user pw 1");

    // Same user, same keys (password changed meanwhile): already in escrow, same number.
    let oldp = env.secret("p1", "user pw 1");
    let newp = env.secret("p2", "user pw 2");
    let out = env.change_password_escrowed(&vol, &oldp, &newp, "alice", true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("already in escrow with number {n}")),
        "{}",
        stderr(&out)
    );

    // A second user escrows the same volume: a second entry.
    let out = env.change_password_escrowed(&vol, &newp, &newp, "bob", true);
    assert!(out.status.success(), "{}", stderr(&out));
    let n_bob = escrow_number(&out);
    assert_ne!(n_bob, n);

    forget_password(&env, &vol, "user pw 2");

    // A non-admin is refused; nothing is written.
    let out = env.restore("alice", &vol, Some(n), "reset pw");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    assert!(open(&vol, "reset pw").is_err());

    // Wrong private-key passphrase: refused with exit code 3 before the server is asked
    // anything (no search, no fetch in the audit), nothing written.
    let audited = audit_events(&env).len();
    let bad = env.secret("bad.pass", "not the passphrase");
    let np = env.secret("np", "reset pw");
    let out = env
        .tcvault()
        .arg("-R")
        .arg("helpdesk")
        .arg(&vol)
        .arg("--escrow-config")
        .arg(&env.config)
        .arg("--admin-password-file")
        .arg(env.path("helpdesk.pw"))
        .arg("--private-key")
        .arg(&authority().private)
        .arg("--private-key-passphrase-file")
        .arg(&bad)
        .arg("--new-password-file")
        .arg(&np)
        .args(["--entry", &n.to_string()])
        .output()
        .expect("restore");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong passphrase"),
        "{}",
        stderr(&out)
    );
    assert!(open(&vol, "reset pw").is_err());
    assert_eq!(
        audit_events(&env)[audited..],
        [] as [String; 0],
        "nothing was asked of the server"
    );

    // Both entries are listed (found by the salts the volume still holds).
    let out = env.restore("helpdesk", &vol, Some(n), "reset pw");
    assert!(out.status.success(), "{}", stderr(&out));
    let s = stderr(&out);
    assert!(s.contains("alice") && s.contains("bob"), "{s}");
    assert!(s.contains("show a ext2/3/4 filesystem"), "data proof: {s}");
    assert!(s.contains("master key did not change"), "{s}");
    assert_eq!(read_data(&vol, "reset pw"), data, "data unchanged");
    assert!(open(&vol, "user pw 2").is_err());
    assert!(
        backup_opens(&vol, "reset pw"),
        "the embedded backup opens with the new password"
    );
}

#[test]
fn restore_through_a_compact_backup_file() {
    let env = Env::start();
    let (vol, out) = env.create("vol2.tc", "pw a", Some("alice"));
    let n = escrow_number(&out);
    let data = write_data(&vol, "pw a");
    let pa = env.secret("pa", "pw a");
    let bk = env.path("vol2.hdr");
    let out = env
        .tcvault()
        .arg("backup-header")
        .arg(&vol)
        .arg(&bk)
        .args(["--compact", "--pim", PIM, "--password-file"])
        .arg(&pa)
        .output()
        .expect("backup-header");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&bk).expect("backup").len(), 1024);
    forget_password(&env, &vol, "pw a");

    let out = env.restore("helpdesk", &bk, Some(n), "pw new");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("normal header copy decrypts under the packet's header key"),
        "header-copy proof: {}",
        stderr(&out)
    );
    assert_eq!(std::fs::metadata(&bk).expect("backup").len(), 1024);
    assert!(stderr(&out).contains("restore-header"), "{}", stderr(&out));

    // The user restores the returned backup into the volume.
    let out = env.restore_header(&vol, &bk, "pn", "pw new");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "pw new"), data);
    assert!(open(&vol, "pw a").is_err());
}

impl Env {
    /// `tcvault escrow ARGS` logged in as `user` (its password file), no terminal.
    fn escrow_cmd(&self, user: &str, args: &[&str]) -> Output {
        self.tcvault()
            .arg("escrow")
            .args(args)
            .arg("--escrow-config")
            .arg(&self.config)
            .args(["--login", user, "--password-file"])
            .arg(self.path(&format!("{user}.pw")))
            .output()
            .expect("run tcvault escrow")
    }
}

fn json_of(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON on standard output")
}

fn numbers_in(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|e| e["escrow_number"].as_i64().expect("number"))
        .collect()
}

/// After an escrowed password change the entry holds the new header: a raw backup made after
/// the user forgot the new password is proven by its header copy (with the first packet kept,
/// nothing could prove it: a backup file holds no data to check the keys against).
#[test]
fn a_raw_backup_after_an_escrowed_password_change_restores() {
    let env = Env::start();
    let (vol, out) = env.create("chg.tc", "pw one", Some("alice"));
    let n = escrow_number(&out);
    let data = write_data(&vol, "pw one");
    let p1 = env.secret("chg.p1", "pw one");
    let p2 = env.secret("chg.p2", "pw two");
    let out = env.change_password_escrowed(&vol, &p1, &p2, "alice", true);
    assert!(
        stderr(&out).contains(&format!("already in escrow with number {n}")),
        "{}",
        stderr(&out)
    );
    // "pw two" is forgotten: a raw backup, no password.
    let raw = env.path("chg.hdr");
    let out = env
        .tcvault()
        .args(["backup-header", "--raw"])
        .arg(&vol)
        .arg(&raw)
        .output()
        .expect("backup-header --raw");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = env.restore("helpdesk", &raw, None, "pw three");
    let s = stderr(&out);
    assert!(out.status.success(), "{s}");
    assert!(
        s.contains("normal header copy decrypts under the packet's header key"),
        "{s}"
    );
    let out = env.restore_header(&vol, &raw, "chg.p3", "pw three");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "pw three"), data);
    env.assert_audit_intact();
}

/// The admin's command line: search (by volume, by user, own entries), show, the deletion
/// workflow both ways, and the seed workflow: export to a password-protected bundle on one
/// server, import on another (twice: the second time the entry is present), refusals with
/// their exit statuses.
#[test]
fn escrow_commands_search_show_delete_export_import() {
    let env = Env::start();
    env.add_user("admin2", "admin2 pw", true);
    env.add_user_with("seeder", "seeder pw", true, true);
    let (vol, out) = env.create("cmd.tc", "pw cmd", Some("alice"));
    let n = escrow_number(&out);
    let (_, out) = env.create("cmd2.tc", "pw cmd2", Some("alice"));
    let n2 = escrow_number(&out);
    let vol_s = vol.to_str().expect("path");

    // Search: by the volume's salts (admin), by user, and a user's own deposits.
    let v = json_of(&env.escrow_cmd("helpdesk", &["search", "--volume", vol_s, "--json"]));
    assert_eq!(numbers_in(&v), [n]);
    let v = json_of(&env.escrow_cmd("helpdesk", &["search", "--user", "alice", "--json"]));
    assert_eq!(numbers_in(&v), [n2, n], "newest first");
    let out = env.escrow_cmd("alice", &["search", "--mine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        table.contains("number") && table.contains("alice"),
        "{table}"
    );
    // A user's search of everyone's entries: refused (403, exit 1); a wrong password: exit 3.
    let out = env.escrow_cmd("alice", &["search", "--user", "bob"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    let wrong = env.secret("wrong.pw", "not alice's");
    let out = env
        .tcvault()
        .args([
            "escrow",
            "search",
            "--mine",
            "--login",
            "alice",
            "--escrow-config",
        ])
        .arg(&env.config)
        .arg("--password-file")
        .arg(&wrong)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    // Show: an admin any entry, a user their own; an unknown number: exit 4.
    let e = json_of(&env.escrow_cmd("helpdesk", &["show", &n.to_string(), "--json"]));
    assert_eq!(e["user"], "alice");
    assert_eq!(e["escrow_number"].as_i64(), Some(n));
    let out = env.escrow_cmd("alice", &["show", &n.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("volume fingerprint:"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.escrow_cmd("bob", &["show", &n.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(4),
        "bob may not see it: {}",
        stderr(&out)
    );

    // Deletion: alice asks, an admin approves; the entry is gone.
    let r = json_of(&env.escrow_cmd(
        "alice",
        &[
            "request-deletion",
            &n.to_string(),
            "--reason",
            "volume shredded",
            "--json",
        ],
    ));
    assert_eq!(r["status"], "pending");
    let id = r["request_id"].as_i64().expect("id");
    let list = json_of(&env.escrow_cmd("helpdesk", &["deletions", "--json"]));
    let pending = list["requests"].as_array().expect("requests");
    assert!(
        pending
            .iter()
            .any(|p| p["request_id"].as_i64() == Some(id) && p["reason"] == "volume shredded"),
        "{list}"
    );
    let out = env.escrow_cmd("alice", &["approve", &id.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "a user cannot approve: {}",
        stderr(&out)
    );
    let out = env.escrow_cmd("helpdesk", &["approve", &id.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the entry is deleted"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = env.escrow_cmd("helpdesk", &["show", &n.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    // Deciding it again: the server says it is decided (exit 4).
    let out = env.escrow_cmd("admin2", &["reject", &id.to_string()]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));

    // The other way: asked for, rejected; the entry stays.
    let r = json_of(&env.escrow_cmd("helpdesk", &["request-deletion", &n2.to_string(), "--json"]));
    let id2 = r["request_id"].as_i64().expect("id");
    let r = json_of(&env.escrow_cmd("admin2", &["reject", &id2.to_string(), "--json"]));
    assert_eq!(
        (r["status"].as_str(), r["deleted"].as_bool()),
        (Some("rejected"), Some(false))
    );
    let out = env.escrow_cmd("helpdesk", &["show", &n2.to_string()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Seed workflow: export from this server, import on another.
    let bundle = env.path("alice.bundle");
    let bpw = env.secret("bundle.pw", "a bundle password");
    let bundle_s = bundle.to_str().expect("path");
    let bpw_s = bpw.to_str().expect("path");
    let out = env.escrow_cmd(
        "helpdesk",
        &[
            "export",
            &n2.to_string(),
            "-o",
            bundle_s,
            "--bundle-password-file",
            bpw_s,
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "no export right: {}",
        stderr(&out)
    );
    assert!(!bundle.exists());
    let out = env.escrow_cmd(
        "seeder",
        &[
            "export",
            &n2.to_string(),
            "-o",
            bundle_s,
            "--bundle-password-file",
            bpw_s,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&bundle)
            .expect("bundle")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let other = Env::start();
    other.add_user_with("seeder", "seeder pw", true, true);
    let bad = other.secret("bad.pw", "not the bundle password");
    let out = other.escrow_cmd(
        "seeder",
        &[
            "import",
            bundle_s,
            "--bundle-password-file",
            bad.to_str().expect("path"),
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let r = json_of(&other.escrow_cmd(
        "seeder",
        &[
            "import",
            bundle_s,
            "--bundle-password-file",
            bpw_s,
            "--json",
        ],
    ));
    let imported = r["imported"].as_array().expect("imported");
    assert_eq!(imported.len(), 1, "{r}");
    assert_eq!(imported[0]["source_number"].as_i64(), Some(n2));
    let m = imported[0]["escrow_number"].as_i64().expect("number");
    let r = json_of(&other.escrow_cmd(
        "seeder",
        &[
            "import",
            bundle_s,
            "--bundle-password-file",
            bpw_s,
            "--json",
        ],
    ));
    assert_eq!(r["imported"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(
        r["already_present"].as_array().map(Vec::len),
        Some(1),
        "{r}"
    );
    let e = json_of(&other.escrow_cmd("seeder", &["show", &m.to_string(), "--json"]));
    assert_eq!(e["user"], "alice");
    assert!(
        e["origin"]
            .as_str()
            .is_some_and(|o| o.starts_with("import:")),
        "{e}"
    );
}

/// The forgotten-password story without any backup made beforehand: `backup-header --raw`
/// copies the header slots without a password; `-R` finds the entry by their salts, proves it
/// by the header copy, writes the new header into the backup and records its salts; the user
/// restores the backup into the volume; and the next `-R` on the volume finds the entry by the
/// salts the first one recorded.
#[test]
fn raw_backup_restores_a_volume_whose_password_is_lost() {
    let env = Env::start();
    let (vol, out) = env.create("raw.tc", "pw forgotten", Some("alice"));
    let n = escrow_number(&out);
    let data = write_data(&vol, "pw forgotten");

    // No password given, none asked (no terminal): the slots as they are.
    let raw = env.path("raw.hdr");
    let out = env
        .tcvault()
        .arg("backup-header")
        .arg("--raw")
        .arg(&vol)
        .arg(&raw)
        .output()
        .expect("backup-header --raw");
    assert!(out.status.success(), "{}", stderr(&out));
    let bytes = std::fs::read(&raw).expect("raw backup");
    let disk = std::fs::read(&vol).expect("volume");
    assert_eq!(bytes.len(), 1024);
    assert_eq!(bytes[..512], disk[..512], "the normal slot, verbatim");
    assert_eq!(
        bytes[512..],
        disk[65_536..66_048],
        "the hidden slot, verbatim"
    );
    // --raw takes no password options.
    let pw = env.secret("raw.pw", "pw forgotten");
    let out = env
        .tcvault()
        .args(["backup-header", "--raw", "--password-file"])
        .arg(&pw)
        .arg(&vol)
        .arg(env.path("other.hdr"))
        .output()
        .expect("backup-header --raw --password-file");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Found by salt (no --entry, no search), proven by the header copy.
    let out = env.restore("helpdesk", &raw, None, "pw from the help desk");
    let s = stderr(&out);
    assert!(out.status.success(), "{s}");
    assert!(!s.contains("No escrow entry matches"), "{s}");
    assert!(
        s.contains("normal header copy decrypts under the packet's header key"),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "Recorded the new header's salts on escrow entry {n}"
        )),
        "{s}"
    );
    let after = std::fs::read(&raw).expect("restored backup");
    assert_eq!(after.len(), 1024);
    assert_eq!(after[512..], bytes[512..], "the hidden slot is untouched");
    assert!(audit_events(&env).iter().any(|e| e == "salts_recorded"));

    let out = env.restore_header(&vol, &raw, "raw.new", "pw from the help desk");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "pw from the help desk"), data);

    // The volume now carries the salts the restore recorded: the next restore finds the entry
    // by them alone.
    let out = env.restore("helpdesk", &vol, None, "pw second");
    let s = stderr(&out);
    assert!(out.status.success(), "{s}");
    assert!(!s.contains("No escrow entry matches"), "{s}");
    assert_eq!(read_data(&vol, "pw second"), data);

    // The recorded salts went through the keyed audit: the chain verifies intact.
    env.assert_audit_intact();
}

/// A volume that still holds the escrowed header (its password forgotten, never changed) and
/// no filesystem: the header-copy proof alone lets the restore write.
#[test]
fn restore_proven_by_the_volumes_own_header_copy() {
    let env = Env::start();
    let (vol, out) = env.create("hc.tc", "pw h", Some("alice"));
    let n = escrow_number(&out);
    let out = env.restore("helpdesk", &vol, Some(n), "pw h2");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("normal header copy decrypts under the packet's header key"),
        "{}",
        stderr(&out)
    );
    assert!(open(&vol, "pw h2").is_ok());
    assert!(open(&vol, "pw h").is_err());
}

#[test]
fn another_volumes_entry_is_refused_before_writing() {
    let env = Env::start();
    let (_a, out) = env.create("a.tc", "pw a", Some("alice"));
    let n = escrow_number(&out);
    let (b, _) = env.create("b.tc", "pw b", None);
    let before = std::fs::read(&b).expect("read b");
    let out = env.restore("helpdesk", &b, Some(n), "pw x");
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("another volume"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&b).expect("read b"),
        before,
        "nothing written"
    );
    assert!(open(&b, "pw b").is_ok());
}

/// The decoy-salt attack: alice re-posts her own packet for her volume A with the salt of
/// another user's volume B (salts are readable without a password). The server answers
/// "already in escrow" and records B's salt on alice's entry; a help-desk restore of B, run
/// without a terminal, must still refuse to write A's keys into B (with or without `--entry`,
/// and with `--force`, which needs a terminal).
#[test]
fn decoy_salts_do_not_make_restore_overwrite_another_volume() {
    use base64::Engine;
    use tcvault::escrow::client::config::ClientConfig;
    use tcvault::escrow::client::http::{EscrowClient, Login};
    use tcvault::escrow::client::{packet, readable_salts};
    use tcvault::escrow::wire::DepositRequest;
    use tcvault::secret::SecretText;

    let env = Env::start();
    let (a, out) = env.create("a.tc", "pw a", Some("alice"));
    let n = escrow_number(&out);
    let (b, _) = env.create("b.tc", "pw b", None);
    write_data(&b, "pw b");
    let before = std::fs::read(&b).expect("read b");

    // Alice builds a deposit for A exactly as the client does, but with B's salt.
    let b_salt = hex::encode(readable_salts(&Host::open(&b).expect("open b")).expect("salts")[0]);
    let va = open(&a, "pw a").expect("a opens");
    let key = packet::parse_public_key(&std::fs::read_to_string(&authority().public).expect("pub"))
        .expect("public key");
    let (meta, sealed) = packet::encrypt_to(va.unlocked(), "alice", &[key], None).expect("seal");
    let d = DepositRequest {
        volume_fingerprint: meta.volume_fingerprint.clone(),
        salts: vec![b_salt],
        authority_fingerprint: meta.authority_fingerprints[0].clone(),
        metadata: serde_json::to_value(&meta).expect("metadata"),
        packet: base64::engine::general_purpose::STANDARD.encode(&sealed),
    };
    let cfg = ClientConfig::load(&env.config).expect("client config");
    let client = EscrowClient::new(&cfg).expect("client");
    let login = Login::new(
        "alice".to_owned(),
        SecretText::from_string("alice pw".to_owned()),
    );
    let ans = client.deposit(&login, &d).expect("deposit");
    assert!(
        ans.already_in_escrow,
        "the server merges it into alice's entry"
    );
    assert_eq!(ans.escrow_number, n);

    let cases: [&[&str]; 3] = [
        &[],
        &["--entry", &n.to_string()],
        &["--entry", &n.to_string(), "--force"],
    ];
    for extra in cases {
        let out = env.restore_with("helpdesk", &b, extra, "stolen pw");
        assert_eq!(out.status.code(), Some(4), "{extra:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("can be posted by anyone"),
            "{extra:?}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(&b).expect("read b"),
            before,
            "{extra:?}: B is left byte for byte"
        );
        assert!(
            open(&b, "pw b").is_ok(),
            "B still opens with its own password"
        );
        assert!(open(&b, "stolen pw").is_err());
    }
}

#[test]
fn unreachable_server_does_not_fail_create() {
    let env = Env::start();
    let dead = env.path("dead.xml");
    // A port nobody listens on: bind one, note it, close it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    write_client_config(
        &dead,
        &format!("https://localhost:{port}"),
        &env.path("server-cert.pem"),
        authority(),
    );
    let pw = env.secret("dead.volpw", "pw d");
    let vol = env.path("dead.tc");
    let out = env
        .tcvault()
        .arg("create")
        .arg(&vol)
        .args([
            "--size",
            "1M",
            "--quick",
            "--pim",
            PIM,
            "--escrow",
            "yes",
            "--password-file",
        ])
        .arg(&pw)
        .arg("--escrow-config")
        .arg(&dead)
        .arg("--escrow-credentials")
        .arg(env.path("alice.creds"))
        .output()
        .expect("create");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be reached"),
        "{}",
        stderr(&out)
    );
    assert!(open(&vol, "pw d").is_ok());
}

#[test]
fn hidden_volume_restore() {
    use tcvault::crypto::chain::ChainId;
    use tcvault::crypto::kdf::Prf;
    use tcvault::header::Family;
    use tcvault::header::seal::{Protection, new_header, seal};

    let env = Env::start();
    let (vol, _) = env.create("outer.tc", "outer pw", None);
    // A hidden volume of 256 KiB ending 128 KiB before the embedded backups, its header in the
    // hidden slot and the hidden backup slot (the layout of docs/format.md §2).
    let size = std::fs::metadata(&vol).expect("size").len();
    let len = 256 * 1024;
    let start = size - 131_072 - len;
    let prot = Protection::new(Family::VeraCrypt, Prf::Sha512, 1, ChainId::Aes).expect("prot");
    let h = new_header(prot, start, len, true, 512).expect("header");
    let hc = creds("hidden pw");
    let host = Host::open_writable(&vol).expect("writable");
    host.write_at(65_536, &seal(&h, prot, &hc).expect("seal"))
        .expect("write hidden header");
    host.write_at(size - 65_536, &seal(&h, prot, &hc).expect("seal"))
        .expect("write hidden backup");
    host.sync().expect("sync");
    drop(host);
    let hidden = SlotChoice {
        hidden: true,
        ..SlotChoice::default()
    };
    let v = Volume::open_on(
        Host::open_writable(&vol).expect("writable"),
        &hc,
        hidden,
        &UnlockOptions::default(),
    )
    .expect("hidden opens");
    // A zeroed boot block and an ext4 superblock magic: the restore's data proof (the hidden header's password is
    // changed below, so no header copy of the escrowed one is left).
    let mut data: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    data[..1024].fill(0);
    data[0x438] = 0x53;
    data[0x439] = 0xEF;
    let mut buf = data.clone();
    v.write_data(0, &mut buf).expect("write hidden data");
    drop(v);

    // Escrow the hidden volume through the change-password hook, then lose its password.
    let hp = env.secret("hp", "hidden pw");
    let out = env
        .tcvault()
        .arg("change-password")
        .arg(&vol)
        .args([
            "--hidden",
            "--pim",
            PIM,
            "--new-pim",
            PIM,
            "--escrow",
            "yes",
        ])
        .arg("--password-file")
        .arg(&hp)
        .arg("--new-password-file")
        .arg(&hp)
        .arg("--escrow-config")
        .arg(&env.config)
        .arg("--escrow-credentials")
        .arg(env.path("alice.creds"))
        .output()
        .expect("change-password");
    assert!(out.status.success(), "{}", stderr(&out));
    let n = escrow_number(&out);
    let lost = env.secret("hlost", "hidden lost");
    let out = env
        .tcvault()
        .arg("change-password")
        .arg(&vol)
        .args(["--hidden", "--pim", PIM, "--new-pim", PIM, "--escrow", "no"])
        .arg("--password-file")
        .arg(&hp)
        .arg("--new-password-file")
        .arg(&lost)
        .output()
        .expect("change-password");
    assert!(out.status.success(), "{}", stderr(&out));

    let out = env.restore("helpdesk", &vol, Some(n), "hidden new");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("hidden volume's header"),
        "{}",
        stderr(&out)
    );
    let v = Volume::open(
        &vol,
        &creds("hidden new"),
        hidden,
        &UnlockOptions::default(),
    )
    .expect("hidden opens with the new password");
    let mut back = vec![0u8; 65_536];
    v.read_data(0, &mut back).expect("read hidden");
    assert_eq!(back, data);
    let b = Volume::open(
        &vol,
        &creds("hidden new"),
        SlotChoice {
            hidden: true,
            backup: true,
            system: false,
        },
        &UnlockOptions::default(),
    );
    assert!(b.is_ok(), "the hidden backup slot was rewritten");
    assert!(
        open(&vol, "outer pw").is_ok(),
        "the outer header is untouched"
    );
}

#[test]
fn admin_outside_the_allowed_network_is_refused() {
    let env = Env::start_with("10.99.0.0/16");
    let (vol, out) = env.create("far.tc", "pw f", Some("alice"));
    let n = escrow_number(&out);
    let before = std::fs::read(&vol).expect("read");
    let out = env.restore("helpdesk", &vol, Some(n), "pw g");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ADMIN_SUBNET_MASK"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&vol).expect("read"),
        before,
        "nothing written"
    );
}

/// Runs `tcvault ARGS…` in the environment and returns its output.
fn run_in(env: &Env, args: &[&std::ffi::OsStr]) -> Output {
    env.tcvault().args(args).output().expect("run tcvault")
}

/// Legacy volumes take no PIM: credentials with the default.
fn legacy_open(vol: &Path, password: &str) -> Result<Volume, tcvault::volume::VolumeError> {
    let pw = Password::new(password.as_bytes()).expect("password");
    let c = Credentials::new(&pw, &[], 0).expect("credentials");
    Volume::open(vol, &c, SlotChoice::default(), &UnlockOptions::default())
}

fn legacy_data(vol: &Path, password: &str) -> Vec<u8> {
    let v = legacy_open(vol, password).expect("legacy volume opens");
    let mut buf = vec![0u8; usize::try_from(v.data_len()).expect("small volume")];
    v.read_data(0, &mut buf).expect("read data");
    buf
}

#[test]
fn restore_a_legacy_truecrypt_volume_and_its_1k_backup() {
    use crate::common::legacy::{LegacySpec, Mode, Prf as LPrf, build, pattern};
    let env = Env::start();
    let vol = env.path("old4.tc");
    let size = 1 << 20;
    // A zeroed boot block and an ext4 superblock magic where a restore's filesystem check
    // looks (byte 0x438).
    let mut data = pattern(7, size - 512);
    data[..1024].fill(0);
    data[0x438] = 0x53;
    data[0x439] = 0xEF;
    let mut spec = LegacySpec::new(Mode::Lrw, "AES-Twofish", LPrf::Sha1, b"tc4 pw", size as u64);
    spec.data = Some(data.clone());
    build(&spec, &vol);
    assert_eq!(legacy_data(&vol, "tc4 pw"), data);

    // The user escrows the keys while changing the password (the change-password hook).
    let old = env.secret("tc4.old", "tc4 pw");
    let kept = env.secret("tc4.kept", "tc4 pw 2");
    let out = env.change_password_escrowed(&vol, &old, &kept, "alice", false);
    assert!(out.status.success(), "change-password: {}", stderr(&out));
    let n = escrow_number(&out);
    // A 1 KB backup of it, then the password is lost.
    let bk = env.path("old4.hdr");
    let out = run_in(
        &env,
        &[
            "backup-header".as_ref(),
            "--compact".as_ref(),
            vol.as_os_str(),
            bk.as_os_str(),
            "--password-file".as_ref(),
            kept.as_os_str(),
        ],
    );
    assert!(out.status.success(), "backup-header: {}", stderr(&out));
    assert_eq!(std::fs::metadata(&bk).expect("backup").len(), 1024);
    let lost = env.secret("tc4.lost", &format!("lost {}", std::process::id()));
    let out = run_in(
        &env,
        &[
            "change-password".as_ref(),
            vol.as_os_str(),
            "--password-file".as_ref(),
            kept.as_os_str(),
            "--new-password-file".as_ref(),
            lost.as_os_str(),
            "--keep-old-header".as_ref(),
            env.path("tc4.before2").as_os_str(),
            "--escrow".as_ref(),
            "no".as_ref(),
        ],
    );
    assert!(out.status.success(), "change-password: {}", stderr(&out));
    assert!(legacy_open(&vol, "tc4 pw 2").is_err());

    // The help desk restores the volume itself, then the 1 KB backup.
    let a = authority();
    let restore = |target: &Path, new_pw: &str| {
        let np = env.secret("tc4.new", new_pw);
        run_in(
            &env,
            &[
                "-R".as_ref(),
                "helpdesk".as_ref(),
                target.as_os_str(),
                "--entry".as_ref(),
                n.to_string().as_ref(),
                "--escrow-config".as_ref(),
                env.config.as_os_str(),
                "--admin-password-file".as_ref(),
                env.path("helpdesk.pw").as_os_str(),
                "--private-key".as_ref(),
                a.private.as_os_str(),
                "--private-key-passphrase-file".as_ref(),
                a.passphrase.as_os_str(),
                "--new-password-file".as_ref(),
                np.as_os_str(),
                "--no-keep-old-header".as_ref(),
            ],
        )
    };
    let out = restore(&vol, "desk pw");
    assert!(out.status.success(), "-R volume: {}", stderr(&out));
    let v = legacy_open(&vol, "desk pw").expect("opens with the help desk's password");
    assert_eq!(v.unlocked().scheme.id(), "AES-Twofish/LRW");
    assert_eq!(v.unlocked().kdf.prf().id(), "sha1", "the PRF is kept");
    drop(v);
    assert_eq!(legacy_data(&vol, "desk pw"), data);

    let out = restore(&bk, "desk pw 2");
    assert!(out.status.success(), "-R backup: {}", stderr(&out));
    assert_eq!(std::fs::metadata(&bk).expect("backup").len(), 1024);
    let pw2 = env.secret("tc4.pw2", "desk pw 2");
    let out = run_in(
        &env,
        &[
            "restore-header".as_ref(),
            vol.as_os_str(),
            "--file".as_ref(),
            bk.as_os_str(),
            "--password-file".as_ref(),
            pw2.as_os_str(),
            "--no-keep-old-header".as_ref(),
            "--escrow".as_ref(),
            "no".as_ref(),
        ],
    );
    assert!(out.status.success(), "restore-header: {}", stderr(&out));
    assert_eq!(legacy_data(&vol, "desk pw 2"), data);
    assert!(legacy_open(&vol, "desk pw").is_err());
}

/// `-R … --old-password` puts the header back as it was escrowed: after the password was
/// changed (and forgotten), the password of the escrow opens the volume again, in both header
/// slots, with the data intact and no new password asked for. Giving a new password beside it
/// is a usage error.
#[test]
fn old_password_restore_puts_the_escrowed_header_back() {
    let env = Env::start();
    let (vol, out) = env.create("old.tc", "the old pw", Some("alice"));
    let n = escrow_number(&out);
    let data = write_data(&vol, "the old pw");
    forget_password(&env, &vol, "the old pw");

    let entry = n.to_string();
    let out = env.restore_with(
        "helpdesk",
        &vol,
        &["--entry", &entry, "--old-password"],
        "x",
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let out = env
        .restore_cmd("helpdesk", &vol)
        .args(["--entry", &entry, "--old-password"])
        .output()
        .expect("run restore");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("open it again"), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "the old pw"), data, "data unchanged");
    assert!(
        backup_opens(&vol, "the old pw"),
        "the embedded backup opens with the old password"
    );
}

/// Under `<policy>require</policy>`: `--escrow no` is refused before anything is asked or
/// written; with the server up, create escrows as usual; with the server unreachable, create
/// keeps the volume but fails (exit 1) saying it is not escrowed, change-password fails the
/// same way after writing, and mount fails without mounting anything.
#[test]
fn required_escrow_fails_the_command_until_the_deposit_is_acknowledged() {
    let env = Env::start();
    let text = std::fs::read_to_string(&env.config).expect("read client config");
    let required = env.path("required.xml");
    std::fs::write(
        &required,
        text.replace("<policy>ask</policy>", "<policy>require</policy>"),
    )
    .expect("write");
    let dead_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url_start = text.find("https://localhost:").expect("server URL");
    let url_end = text[url_start..].find('<').expect("end of URL") + url_start;
    let unreachable = env.path("unreachable.xml");
    std::fs::write(
        &unreachable,
        format!(
            "{}https://localhost:{dead_port}{}",
            &text[..url_start],
            &text[url_end..]
        )
        .replace("<policy>ask</policy>", "<policy>require</policy>"),
    )
    .expect("write");
    let pw = env.secret("req.pw", "required escrow pw");
    let create = |name: &str, config: &Path, escrow: &[&str]| {
        let vol = env.path(name);
        let out = env
            .tcvault()
            .arg("create")
            .arg(&vol)
            .args(["--size", "1M", "--quick", "--pim", PIM, "--password-file"])
            .arg(&pw)
            .arg("--escrow-config")
            .arg(config)
            .arg("--escrow-credentials")
            .arg(env.path("alice.creds"))
            .args(escrow)
            .output()
            .expect("run create");
        (vol, out)
    };

    let (vol, out) = create("refused.tc", &required, &["--escrow", "no"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("escrow is required"),
        "{}",
        stderr(&out)
    );
    assert!(
        !vol.exists(),
        "a volume was made under a refused --escrow no"
    );

    let (vol, out) = create("escrowed.tc", &required, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    escrow_number(&out);
    assert!(open(&vol, "required escrow pw").is_ok());

    let (vol, out) = create("kept.tc", &unreachable, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("was created, but") && err.contains("escrow is required"),
        "{err}"
    );
    assert!(
        open(&vol, "required escrow pw").is_ok(),
        "the volume is kept"
    );

    let newp = env.secret("req2.pw", "changed under policy");
    let out = env
        .tcvault()
        .arg("change-password")
        .arg(&vol)
        .arg("--password-file")
        .arg(&pw)
        .args(["--pim", PIM, "--new-pim", PIM, "--new-password-file"])
        .arg(&newp)
        .arg("--escrow-config")
        .arg(&unreachable)
        .arg("--escrow-credentials")
        .arg(env.path("alice.creds"))
        .output()
        .expect("run change-password");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was changed, but"),
        "{}",
        stderr(&out)
    );

    if !crate::common::can_mount() {
        return;
    }
    env.mount_refused(&vol, &newp, &unreachable, "escrow is required");
}

/// The server's per-user flag: escrow goes ahead under the default policy `ask` with no
/// terminal; the client remembers the flag, so `--escrow no` is then refused and a server
/// that cannot be reached fails the command (create keeps the volume, mount mounts nothing);
/// a wrong escrow password fails it too; once the admin clears the flag, the next login
/// forgets it.
#[test]
fn a_user_the_server_requires_escrow_of_cannot_skip_it() {
    let env = Env::start();
    env.require_escrow("alice", true);
    let state = env.path(".local/state/tcvault/escrow-required");
    let pw = env.secret("flag.pw", "flagged user pw");
    let create = |env: &Env, name: &str, creds: &str, escrow: &[&str]| {
        let vol = env.path(name);
        let out = env
            .tcvault()
            .arg("create")
            .arg(&vol)
            .args(["--size", "1M", "--quick", "--pim", PIM, "--password-file"])
            .arg(&pw)
            .arg("--escrow-config")
            .arg(&env.config)
            .arg("--escrow-credentials")
            .arg(env.path(creds))
            .args(escrow)
            .output()
            .expect("run create");
        (vol, out)
    };

    // Before the first login nothing is known: `ask` without a terminal does not escrow.
    let (_, out) = create(&env, "unknown.tc", "alice.creds", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("were not escrowed"),
        "{}",
        stderr(&out)
    );
    assert!(!state.exists());

    // The first login learns it (and escrows, as asked).
    let (_, out) = create(&env, "first.tc", "alice.creds", &["--escrow", "yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    escrow_number(&out);
    let kept = std::fs::read_to_string(&state).expect("the flag is remembered");
    assert!(kept.contains("\talice"), "{kept}");

    // From then on: no question, and `--escrow no` refused before anything is written.
    let (_, out) = create(&env, "asked.tc", "alice.creds", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    escrow_number(&out);
    let (vol, out) = create(&env, "refused.tc", "alice.creds", &["--escrow", "no"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("requires escrow of alice's volumes"),
        "{}",
        stderr(&out)
    );
    assert!(
        !vol.exists(),
        "a volume was made under a refused --escrow no"
    );

    // A wrong escrow password is no longer only a warning.
    std::fs::write(env.path("wrong.creds"), "alice\nnot her pw\n").expect("creds");
    let (vol, out) = create(&env, "wrongpw.tc", "wrong.creds", &["--escrow", "yes"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("was created, but") && stderr(&out).contains("requires escrow"),
        "{}",
        stderr(&out)
    );
    assert!(open(&vol, "flagged user pw").is_ok(), "the volume is kept");

    // Cleared on the server: the next login forgets it, and `--escrow no` is allowed again.
    env.require_escrow("alice", false);
    let (_, out) = create(&env, "cleared.tc", "alice.creds", &["--escrow", "yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kept = std::fs::read_to_string(&state).expect("state file");
    assert!(!kept.contains("alice"), "{kept}");
    let (_, out) = create(&env, "free.tc", "alice.creds", &["--escrow", "no"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Required again, and the server gone: the command fails, saying why.
    env.require_escrow("alice", true);
    let (again, out) = create(&env, "again.tc", "alice.creds", &["--escrow", "yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut env = env;
    if let Some(server) = env.server.take() {
        env.rt.block_on(server.stop());
    }
    let (vol, out) = create(&env, "offline.tc", "alice.creds", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot be reached") && stderr(&out).contains("requires escrow"),
        "{}",
        stderr(&out)
    );
    assert!(vol.exists(), "the created volume is kept");

    // Nor is a volume mounted while the server that requires its escrow is away.
    if !crate::common::can_mount() {
        return;
    }
    env.mount_refused(
        &again,
        &pw,
        &env.config,
        "requires escrow of alice's volumes",
    );
}

/// Split control: keygen wrote five shares (0600) and no whole key; `-R` with three of them
/// (in any order, each under its holder's passphrase) restores; two are too few, a share
/// given twice counts once, and a wrong passphrase is exit 3, each refused before the server
/// is asked anything.
#[test]
fn a_split_authority_key_restores_with_three_of_five_shares() {
    use std::os::unix::fs::PermissionsExt;
    let a = split_authority();
    assert!(!a.private.exists(), "no file holds the whole key");
    for (share, _) in &a.shares {
        let mode = std::fs::metadata(share)
            .expect("share file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{}", share.display());
    }
    let env = Env::start_for(a, "127.0.0.0/8");
    let (vol, out) = env.create("split.tc", "split pw", Some("alice"));
    let n = escrow_number(&out).to_string();
    let data = write_data(&vol, "split pw");
    forget_password(&env, &vol, "split pw");
    let np = env.secret("split-new.pw", "rebuilt key pw");
    let restore = |which: &[usize], passes: &[&Path]| {
        let mut c = env.restore_cmd_keyless("helpdesk", &vol);
        for &i in which {
            c.arg("--share").arg(&a.shares[i - 1].0);
        }
        for p in passes {
            c.arg("--share-passphrase-file").arg(p);
        }
        c.arg("--new-password-file")
            .arg(&np)
            .args(["--new-pim", PIM, "--entry", &n])
            .output()
            .expect("run restore")
    };
    let pass = |i: usize| a.shares[i - 1].1.as_path();
    let audited = audit_events(&env).len();

    for (shares, passes, code, said) in [
        (
            &[4, 2][..],
            [pass(4), pass(2)].to_vec(),
            2,
            "2 key shares given, 3 are needed",
        ),
        (
            &[4, 2, 4],
            [pass(4), pass(2), pass(4)].to_vec(),
            2,
            "key share 4 is given twice",
        ),
        (
            &[4, 2, 5],
            [pass(4), pass(1), pass(5)].to_vec(),
            3,
            "wrong passphrase for key share 2",
        ),
    ] {
        let out = restore(shares, &passes);
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        assert!(stderr(&out).contains(said), "{}", stderr(&out));
    }
    assert_eq!(
        audit_events(&env)[audited..],
        [] as [String; 0],
        "nothing was asked of the server"
    );
    assert!(open(&vol, "rebuilt key pw").is_err(), "nothing was written");

    let out = restore(&[5, 2, 4], &[pass(5), pass(2), pass(4)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "rebuilt key pw"), data, "data unchanged");
}

/// Dual control (`FETCH_APPROVAL_SECONDS`): `-R` alone is refused and files a fetch request,
/// writing nothing; the requester cannot approve it; once another admin has, `-R` restores;
/// the approval is used up by that one fetch; the audit records it all and still verifies.
#[test]
fn dual_control_needs_a_second_admin_for_each_fetch() {
    let env = Env::start_opts(
        authority(),
        Options {
            fetch_approval: Some(std::time::Duration::from_secs(600)),
            ..Options::default()
        },
    );
    env.add_user("auditor", "auditor pw", true);
    let (vol, out) = env.create("dual.tc", "dual pw", Some("alice"));
    let n = escrow_number(&out);
    let data = write_data(&vol, "dual pw");
    forget_password(&env, &vol, "dual pw");
    let escrow = |user: &str, args: &[&str]| env.escrow_cmd(user, args);

    let out = env.restore("helpdesk", &vol, Some(n), "dual new pw");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("second admin's approval"), "{err}");
    let id = err
        .split("fetch request ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .expect("request id")
        .to_owned();
    assert!(open(&vol, "dual new pw").is_err(), "nothing was written");
    // Asking again finds the same request.
    let out = env.restore("helpdesk", &vol, Some(n), "dual new pw");
    assert!(
        stderr(&out).contains(&format!("fetch request {id} waits")),
        "{}",
        stderr(&out)
    );

    let out = escrow("auditor", &["fetch-requests"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        listed.contains("helpdesk") && listed.contains(&id),
        "{listed}"
    );

    let out = escrow("helpdesk", &["approve-fetch", &id]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot approve their own"),
        "{}",
        stderr(&out)
    );
    let out = escrow("alice", &["approve-fetch", &id]);
    assert!(
        !out.status.success(),
        "a non-admin approved: {}",
        stderr(&out)
    );

    let out = escrow("auditor", &["approve-fetch", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("approved"), "{}", stderr(&out));
    let out = env.restore("helpdesk", &vol, Some(n), "dual new pw");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(read_data(&vol, "dual new pw"), data, "data unchanged");

    // One approval, one fetch.
    let out = env.restore("helpdesk", &vol, Some(n), "dual other pw");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("second admin's approval"),
        "{}",
        stderr(&out)
    );
    assert!(open(&vol, "dual other pw").is_err());

    // Nor can the packets leave in an export bundle.
    env.add_user_with("mover", "mover pw", true, true);
    let bundle_pw = env.secret("bundle.pw", "bundle password long enough");
    let bundle = env.path("out.bundle");
    let out = env.escrow_cmd(
        "mover",
        &[
            "export",
            &n.to_string(),
            "--output",
            bundle.to_str().expect("UTF-8 path"),
            "--bundle-password-file",
            bundle_pw.to_str().expect("UTF-8 path"),
        ],
    );
    assert!(!out.status.success(), "exported under dual control");
    assert!(stderr(&out).contains("dual control"), "{}", stderr(&out));
    assert!(!bundle.exists());

    let events = audit_events(&env);
    for e in ["fetch_refused", "fetch_request", "fetch_approve", "fetch"] {
        assert!(events.iter().any(|x| x == e), "{e} not in {events:?}");
    }
    let store = Store::open_keyed(&env.db_url, Path::new("/"), &env.audit_key).expect("open store");
    assert!(
        store.verify_audit().expect("verify").problems.is_empty(),
        "the audit verifies"
    );
    // An approval forged with database access alone is caught.
    let path = env.db_url.strip_prefix("sqlite:").expect("an SQLite URL");
    rusqlite::Connection::open(path)
        .expect("open the database")
        .execute(
            "UPDATE FETCH_REQUEST SET STATUS = 'approved', DECIDED_BY = 'auditor'",
            [],
        )
        .expect("forge");
    let problems = store.verify_audit().expect("verify").problems;
    assert!(
        problems.iter().any(|p| p.contains("fetch request")),
        "{problems:?}"
    );
}

/// The client logs in once: a session token stands for the password on the requests that
/// follow (the account, the deposit), and a wrong password is refused at the session.
#[test]
fn the_client_presents_a_session_token_after_one_password_check() {
    use tcvault::escrow::client::config::ClientConfig;
    use tcvault::escrow::client::http::{ClientError, EscrowClient, Login};
    use tcvault::secret::SecretText;
    let env = Env::start();
    let cfg = ClientConfig::load(&env.config).expect("client config");
    let client = EscrowClient::new(&cfg).expect("client");
    let login = Login::new(
        "alice".to_owned(),
        SecretText::from_string("alice pw".into()),
    );
    assert!(!login.has_session());
    let session = client.open_session(&login).expect("session");
    assert!(session.has_session());
    // The token alone authenticates: a wrong password beside it is not looked at.
    let mut token_only = session.clone();
    token_only.password = SecretText::from_string("not the password".into());
    let account = client
        .account(&token_only)
        .expect("account")
        .expect("the server has the route");
    assert_eq!(account.user, "alice");
    assert!(!account.escrow_required);
    let wrong = Login::new("alice".to_owned(), SecretText::from_string("wrong".into()));
    assert!(matches!(
        client.open_session(&wrong),
        Err(ClientError::Refused { status: 401, .. })
    ));
}

impl Env {
    /// `tcvault create VOL` (1 MiB, password file `pw`) escrowed as alice with the recovery
    /// passphrase file `passphrase`, no terminal.
    fn create_recoverable(&self, vol: &Path, pw: &Path, passphrase: &Path) -> Output {
        self.tcvault()
            .arg("create")
            .arg(vol)
            .args(["--size", "1M", "--quick", "--pim", PIM, "--password-file"])
            .arg(pw)
            .arg("--escrow-config")
            .arg(&self.config)
            .args(["--escrow", "yes", "--escrow-credentials"])
            .arg(self.path("alice.creds"))
            .arg("--recovery-passphrase-file")
            .arg(passphrase)
            .output()
            .expect("create")
    }

    /// `tcvault recover TARGET` as `user` with the recovery passphrase file `passphrase`, the
    /// new password `new_pw` and `extra` arguments, no terminal.
    fn recover(
        &self,
        user: &str,
        target: &Path,
        passphrase: &Path,
        new_pw: &str,
        extra: &[&str],
    ) -> Output {
        let np = self.secret("recovered.pw", new_pw);
        self.tcvault()
            .arg("recover")
            .arg(target)
            .arg("--escrow-config")
            .arg(&self.config)
            .arg("--escrow-credentials")
            .arg(self.path(&format!("{user}.creds")))
            .arg("--recovery-passphrase-file")
            .arg(passphrase)
            .arg("--new-password-file")
            .arg(&np)
            .args(["--new-pim", PIM])
            .args(extra)
            .output()
            .expect("run tcvault recover")
    }
}

/// Self-service recovery: the user gives a recovery passphrase at the deposit and later, having
/// lost the volume's password, resets it themselves: logged in as themselves, with no admin
/// and no authority key, with the same proof the help desk's restore needs. A later deposit
/// without the passphrase keeps it; another user, a wrong passphrase and an entry without one
/// are refused with nothing written; every fetch is audited and the audit stays intact.
#[test]
fn a_user_recovers_their_own_volume_with_the_recovery_passphrase() {
    let env = Env::start();
    let passphrase = env.secret("recovery.pass", "a long recovery phrase");

    // Too short: refused before anything is created.
    let short = env.secret("short.pass", "eleven char");
    let vol = env.path("short.tc");
    let pw = env.secret("short.volpw", "pw short");
    let out = env.create_recoverable(&vol, &pw, &short);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("at least 12"), "{}", stderr(&out));
    assert!(!vol.exists(), "nothing was created");

    // Alice creates a volume, escrowed with a recovery passphrase.
    let vol = env.path("mine.tc");
    let pw = env.secret("mine.volpw", "pw one");
    let out = env.create_recoverable(&vol, &pw, &passphrase);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let n = escrow_number(&out);
    let data = write_data(&vol, "pw one");

    // A later deposit without the passphrase (a password change that escrows again) does not
    // take the recovery away; then the password is lost.
    let p2 = env.secret("p2", "pw two");
    let out = env.change_password_escrowed(&vol, &pw, &p2, "alice", true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("already in escrow"),
        "{}",
        stderr(&out)
    );
    forget_password(&env, &vol, "pw two");
    let before = std::fs::read(&vol).expect("read volume");

    // Bob cannot recover Alice's volume: none of his entries has a passphrase, and the
    // server answers her entry's number as no entry at all.
    let out = env.recover(
        "bob",
        &vol,
        &passphrase,
        "bob's pw",
        &["--entry", &n.to_string()],
    );
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("none of bob's escrow entries"),
        "{}",
        stderr(&out)
    );
    {
        use tcvault::escrow::client::config::ClientConfig;
        use tcvault::escrow::client::http::{ClientError, EscrowClient, Login};
        use tcvault::secret::SecretText;
        let cfg = ClientConfig::load(&env.config).expect("client config");
        let client = EscrowClient::new(&cfg).expect("client");
        let bob = Login::new(
            "bob".to_owned(),
            SecretText::from_string("bob pw".to_owned()),
        );
        match client.fetch_recovery(&bob, n) {
            Err(ClientError::Refused { status, .. }) => assert_eq!(status, 404),
            other => panic!(
                "bob fetched alice's recovery packet: {:?}",
                other.map(|(e, _)| e)
            ),
        }
    }

    // A wrong passphrase: exit 3, nothing written.
    let wrong = env.secret("wrong.pass", "a long recovery phrasE");
    let out = env.recover(
        "alice",
        &vol,
        &wrong,
        "reset pw",
        &["--entry", &n.to_string()],
    );
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("wrong recovery passphrase"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&vol).expect("read"),
        before,
        "nothing written"
    );

    // The right one. The recovery packet holds the header of the first deposit (the volume's
    // header changed twice since), so the proof is the data; the old headers are kept, and
    // the new header is escrowed again with the same passphrase.
    let out = env.recover("alice", &vol, &passphrase, "reset pw", &[]);
    let s = stderr(&out);
    assert!(out.status.success(), "recover: {s}");
    assert!(s.contains("show a ext2/3/4 filesystem"), "data proof: {s}");
    assert!(s.contains("Saved the previous headers"), "{s}");
    assert!(
        s.contains(&format!("same recovery passphrase (escrow number {n})")),
        "{s}"
    );
    assert_eq!(read_data(&vol, "reset pw"), data, "data unchanged");
    assert!(backup_opens(&vol, "reset pw"));

    // That deposit made the entry current: the next recovery proves it by the header copy.
    let out = env.recover("alice", &vol, &passphrase, "second reset", &[]);
    let s = stderr(&out);
    assert!(out.status.success(), "recover again: {s}");
    assert!(
        s.contains("Your escrow entries with a recovery passphrase:"),
        "{s}"
    );
    assert!(s.contains("header copy decrypts"), "header proof: {s}");
    assert_eq!(read_data(&vol, "second reset"), data);

    // Bob's own entry has no passphrase: refused, nothing written.
    let (bvol, _) = env.create("bob.tc", "pw bob", Some("bob"));
    let bbefore = std::fs::read(&bvol).expect("read");
    let out = env.recover("bob", &bvol, &passphrase, "x pw", &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(std::fs::read(&bvol).expect("read"), bbefore);

    let events = audit_events(&env);
    assert_eq!(
        events.iter().filter(|e| *e == "recovery_fetch").count(),
        3,
        "the wrong passphrase's fetch and both recoveries: {events:?}"
    );
    env.assert_audit_intact();
}

/// A server with `SELF_SERVICE_RECOVERY` 0 gives users no recovery packet: only the help
/// desk restores.
#[test]
fn a_server_without_self_service_recovery_refuses_it() {
    let env = Env::start_opts(
        authority(),
        Options {
            self_service_recovery: false,
            ..Options::default()
        },
    );
    let passphrase = env.secret("recovery.pass", "a long recovery phrase");
    let vol = env.path("mine.tc");
    let pw = env.secret("mine.volpw", "pw one");
    let out = env.create_recoverable(&vol, &pw, &passphrase);
    assert!(out.status.success(), "create: {}", stderr(&out));
    let before = std::fs::read(&vol).expect("read");
    let out = env.recover("alice", &vol, &passphrase, "reset pw", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("does not offer self-service recovery"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&vol).expect("read"),
        before,
        "nothing written"
    );
    assert!(!audit_events(&env).iter().any(|e| e == "recovery_fetch"));
}

/// The whole workflow with directory accounts: a user of the LDAP directory escrows a volume
/// with `tcvault create` (the server offers directory users no session: the client goes on with
/// the password), a member of the directory's admin group restores it with `-R`, a plain
/// directory user cannot.
#[test]
fn directory_users_escrow_and_a_directory_admin_restores() {
    let Some(dir) = crate::ldap::slapd() else {
        return;
    };
    let env = Env::start_opts(
        authority(),
        Options {
            ldap: Some(crate::ldap::ldap_config(&dir, crate::ldap::template())),
            ..Options::default()
        },
    );
    for (user, pw) in [("lara", "lara pw"), ("ada", "ada pw")] {
        std::fs::write(
            env.path(&format!("{user}.creds")),
            format!("{user}\n{pw}\n"),
        )
        .expect("creds");
        std::fs::write(env.path(&format!("{user}.pw")), format!("{pw}\n")).expect("pw");
    }
    let (vol, out) = env.create("dir.tc", "pw one", Some("lara"));
    assert!(
        stderr(&out).contains("Escrowed the keys"),
        "{}",
        stderr(&out)
    );
    let n = escrow_number(&out);
    let data = write_data(&vol, "pw one");
    forget_password(&env, &vol, "pw one");

    let out = env.restore("lara", &vol, Some(n), "reset pw");
    assert!(
        !out.status.success(),
        "a directory user who is no admin cannot restore"
    );
    assert!(stderr(&out).contains("403"), "{}", stderr(&out));

    let out = env.restore("ada", &vol, Some(n), "reset pw");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("escrowed by lara"),
        "{}",
        stderr(&out)
    );
    assert_eq!(read_data(&vol, "reset pw"), data);
    env.assert_audit_intact();
}
