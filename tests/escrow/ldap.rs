//! LDAP logins of the escrow server against a real OpenLDAP `slapd` (the Debian package,
//! installed by scripts/setup.d/ldap.sh), started here on 127.0.0.1 with a throwaway database
//! and StartTLS: right and wrong passwords, a disabled account, admin-group membership, names
//! that try to inject into the DN or the filter, the empty password (an anonymous bind), the
//! throttle, local accounts beside the directory, and a directory that went away.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tcvault::escrow::server::config::{LdapConfig, UserLookup};

use crate::common::escrow_server::{Kind, Options, deposit_body, random_hex, start};
use crate::common::private_tempdir;

const SUFFIX: &str = "dc=example,dc=org";

/// A running slapd, killed when dropped.
pub(crate) struct Slapd {
    child: Child,
    port: u16,
    ca: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The directory's people: lara (a user), ada (in the admin group), dave (disabled by the
/// site's ENABLED_FILTER).
const LDIF: &str = "dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=lara,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: lara
cn: Lara
sn: Lara
userPassword: lara pw

dn: uid=ada,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ada
cn: Ada
sn: Ada
userPassword: ada pw

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave
sn: Dave
employeeType: disabled
userPassword: dave pw

dn: cn=escrow-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: escrow-admins
member: uid=ada,ou=people,dc=example,dc=org
";

/// Starts slapd with StartTLS on a free loopback port; `None` when slapd is not installed
/// (outside CI only).
pub(crate) fn slapd() -> Option<Slapd> {
    let Some(bin) = std::env::var_os("TCVAULT_TEST_SLAPD")
        .map(PathBuf::from)
        .or_else(|| Some(PathBuf::from("/usr/sbin/slapd")).filter(|p| p.exists()))
    else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but there is no slapd (scripts/setup.d/ldap.sh installs it)"
        );
        eprintln!("no slapd: the LDAP tests did not run");
        return None;
    };
    let dir = private_tempdir();
    let d = dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    std::fs::write(d.join("cert.pem"), cert.cert.pem()).expect("cert");
    std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).expect("key");
    std::fs::create_dir(d.join("db")).expect("db dir");
    let conf = format!(
        "include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {d}/slapd.pid
TLSCertificateFile {d}/cert.pem
TLSCertificateKeyFile {d}/key.pem
database mdb
maxsize 10485760
suffix \"{SUFFIX}\"
rootdn \"cn=admin,{SUFFIX}\"
rootpw \"root secret\"
directory {d}/db
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
",
        d = d.display()
    );
    let conf_path = d.join("slapd.conf");
    std::fs::write(&conf_path, conf).expect("slapd.conf");
    std::fs::write(d.join("data.ldif"), LDIF).expect("ldif");
    let slapadd = bin.with_file_name("slapadd");
    let out = Command::new(&slapadd)
        .arg("-f")
        .arg(&conf_path)
        .arg("-l")
        .arg(d.join("data.ldif"))
        .output()
        .expect("run slapadd");
    assert!(out.status.success(), "slapadd: {out:?}");
    let port = free_port();
    let child = Command::new(&bin)
        .arg("-f")
        .arg(&conf_path)
        .arg("-h")
        .arg(format!("ldap://127.0.0.1:{port}/"))
        .args(["-d", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slapd");
    let s = Slapd {
        child,
        port,
        ca: d.join("cert.pem"),
        _dir: dir,
    };
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).is_err() {
        assert!(Instant::now() < until, "slapd did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(s)
}

pub(crate) fn ldap_config(s: &Slapd, lookup: UserLookup) -> LdapConfig {
    LdapConfig {
        url: format!("ldap://127.0.0.1:{}", s.port),
        starttls: true,
        ca_certificate: Some(s.ca.clone()),
        lookup,
        enabled_filter: Some("(!(employeeType=disabled))".to_owned()),
        admin_group: Some(format!("cn=escrow-admins,ou=groups,{SUFFIX}")),
        timeout: Duration::from_secs(5),
    }
}

pub(crate) fn template() -> UserLookup {
    UserLookup::Template(format!("uid={{user}},ou=people,{SUFFIX}"))
}

/// Logins checked by the directory, found by the DN template and by a search: what each user
/// may do follows from the directory alone, and every refusal is audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_users_log_in_with_their_directory_password() {
    let Some(dir) = slapd() else {
        return;
    };
    let search_pw = dir.ca.with_file_name("search.pw");
    std::fs::write(&search_pw, "root secret\n").expect("password file");
    let search = |bind: Option<(String, PathBuf)>| UserLookup::Search {
        base: format!("ou=people,{SUFFIX}"),
        filter: "(&(objectClass=inetOrgPerson)(uid={user}))".to_owned(),
        bind,
    };
    for lookup in [
        template(),
        search(None),
        search(Some((format!("cn=admin,{SUFFIX}"), search_pw.clone()))),
    ] {
        let Some(s) = start(
            Kind::Sqlite,
            Options {
                ldap: Some(ldap_config(&dir, lookup.clone())),
                max_failures: 50,
                ..Options::default()
            },
        )
        .await
        else {
            panic!("an SQLite server always starts");
        };
        let what = format!("{lookup:?}");

        let (st, v) = s.get("lara", "lara pw", "/v1/account").await;
        assert_eq!(st, StatusCode::OK, "{what}: {v}");
        assert_eq!(
            (v["user"].as_str(), v["admin"].as_bool()),
            (Some("lara"), Some(false)),
            "{v}"
        );
        let (st, _) = s
            .get("lara", "lara pw", "/v1/admin/entries?user=lara")
            .await;
        assert_eq!(st, StatusCode::FORBIDDEN, "{what}: lara is no admin");

        let (st, v) = s.get("ada", "ada pw", "/v1/account").await;
        assert_eq!(
            (st, v["admin"].as_bool()),
            (StatusCode::OK, Some(true)),
            "{what}: {v}"
        );
        let (st, v) = s.get("ada", "ada pw", "/v1/admin/entries?user=lara").await;
        assert_eq!(
            st,
            StatusCode::OK,
            "{what}: the admin group's member searches: {v}"
        );

        // Wrong password, unknown user, disabled account, empty password, injection.
        for (user, pw, why) in [
            ("lara", "not lara pw", "wrong password"),
            ("nobody", "lara pw", "no such user"),
            ("dave", "dave pw", "disabled"),
            ("lara", "", "empty password (anonymous bind)"),
            ("*", "lara pw", "a wildcard name"),
            ("lara)(uid=*", "lara pw", "filter injection"),
            ("lara,ou=people", "lara pw", "DN injection"),
        ] {
            let (st, v) = s.get(user, pw, "/v1/account").await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{what}: {why}: {v}");
        }
        let (_, v) = s.get("dave", "dave pw", "/v1/account").await;
        assert!(
            v["message"].as_str().unwrap_or("").contains("disabled"),
            "{what}: {v}"
        );

        // A directory user deposits and sees their entry, under any case of their name; no
        // session for them (the client goes on with the password).
        let fp = random_hex(32);
        let (st, v) = s
            .post(
                "lara",
                "lara pw",
                "/v1/deposits",
                &deposit_body(&fp, &[random_hex(64)], b"p"),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED, "{what}: {v}");
        let (_, v) = s.get("Lara", "lara pw", "/v1/deposits").await;
        assert_eq!(v["entries"][0]["user"], "lara", "{what}: {v}");
        let (st, _) = s.post("lara", "lara pw", "/v1/session", &json!(null)).await;
        assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE, "{what}");

        // Local accounts still log in beside the directory.
        s.add_user("bob", "bob pw", false, false, false).await;
        let (st, _) = s.get("bob", "bob pw", "/v1/account").await;
        assert_eq!(st, StatusCode::OK, "{what}");

        let failures: Vec<String> = {
            let path = s.db.url();
            let db = rusqlite::Connection::open(path.strip_prefix("sqlite:").expect("SQLite"))
                .expect("open the database");
            let mut q = db
                .prepare("SELECT DETAIL FROM AUDIT WHERE EVENT = 'login_failure'")
                .expect("query");
            q.query_map([], |r| r.get::<_, String>(0))
                .expect("rows")
                .collect::<Result<_, _>>()
                .expect("details")
        };
        assert!(
            failures.iter().any(|d| d == "ldap: account disabled")
                && failures
                    .iter()
                    .any(|d| d == "ldap: wrong user name or password"),
            "{what}: {failures:?}"
        );
        assert!(s.db.verify().await.problems.is_empty());
        s.stop().await;
    }
}

/// Wrong directory passwords are throttled like local ones; a directory that went away is
/// 503, not a wrong password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_logins_are_throttled_and_an_outage_is_said() {
    let Some(dir) = slapd() else {
        return;
    };
    let Some(s) = start(
        Kind::Sqlite,
        Options {
            ldap: Some(ldap_config(&dir, template())),
            max_failures: 3,
            ..Options::default()
        },
    )
    .await
    else {
        panic!("an SQLite server always starts");
    };
    for _ in 0..3 {
        let (st, _) = s.get("lara", "guess", "/v1/account").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let (st, _) = s.get("lara", "lara pw", "/v1/account").await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "throttled, even with the right password"
    );
    let st = s
        .get_from([127, 0, 0, 2], "ada", "ada pw", "/v1/account")
        .await;
    assert_eq!(
        st,
        StatusCode::OK,
        "another user elsewhere is not locked out"
    );
    drop(dir);
    let st = s
        .get_from([127, 0, 0, 2], "ada", "ada pw", "/v1/account")
        .await;
    assert_eq!(st, StatusCode::SERVICE_UNAVAILABLE);
    s.stop().await;
}

/// `<LDAP>` in the configuration: TLS is required off loopback, the CA with TLS, `{user}` in
/// the template; each mistake names its line.
#[test]
fn ldap_configuration_is_checked() {
    let sample = private_tempdir();
    tcvault::escrow::server::config::init(sample.path(), "localhost", 8443, None).expect("init");
    let base = std::fs::read_to_string(sample.path().join("escrowd.xml")).expect("sample config");
    let with =
        |ldap: &str| base.replace("</TCVAULT_ESCROWD>", &format!("{ldap}\n</TCVAULT_ESCROWD>"));
    let parse =
        |xml: &str| tcvault::escrow::server::config::Config::parse(xml, Path::new("/srv/e/x.xml"));
    let good = with(
        "<LDAP><URL>ldaps://ldap.example.org</URL><CA_CERTIFICATE>ldap-ca.pem</CA_CERTIFICATE>\
         <BIND_DN>{user}@example.org</BIND_DN><ADMIN_GROUP>cn=a,dc=x</ADMIN_GROUP></LDAP>",
    );
    let c = parse(&good).expect("parses");
    let l = c.ldap.expect("ldap");
    assert_eq!(
        l.lookup,
        UserLookup::Template("{user}@example.org".to_owned())
    );
    assert_eq!(l.ca_certificate, Some(PathBuf::from("/srv/e/ldap-ca.pem")));
    assert_eq!(l.timeout, Duration::from_secs(10));
    for (bad, says) in [
        (
            "<LDAP><URL>ldap://ldap.example.org</URL><BIND_DN>uid={user}</BIND_DN></LDAP>",
            "in the clear",
        ),
        (
            "<LDAP><URL>ldaps://h</URL><BIND_DN>uid={user}</BIND_DN></LDAP>",
            "CA_CERTIFICATE",
        ),
        (
            "<LDAP><URL>ldap://127.0.0.1</URL><BIND_DN>uid=lara</BIND_DN></LDAP>",
            "{user}",
        ),
        (
            "<LDAP><URL>ldap://127.0.0.1</URL><SEARCH_BASE>dc=x</SEARCH_BASE></LDAP>",
            "SEARCH_FILTER",
        ),
        (
            "<LDAP><URL>ldap://127.0.0.1</URL><BIND_DN>uid={user}</BIND_DN><PORT>1</PORT></LDAP>",
            "PORT",
        ),
    ] {
        let e = parse(&with(bad)).expect_err(bad).to_string();
        assert!(e.contains(says) && e.contains("x.xml:"), "{bad}: {e}");
    }
    let plain_loopback =
        with("<LDAP><URL>ldap://127.0.0.1:389</URL><BIND_DN>uid={user},dc=x</BIND_DN></LDAP>");
    assert!(
        parse(&plain_loopback).is_ok(),
        "plain LDAP to loopback is allowed"
    );
}
