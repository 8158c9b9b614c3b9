//! The escrow server's XML configuration ([`Config::parse`], which reads no file): any text
//! is parsed or refused without a panic, an accepted configuration is in range, and written out
//! again it parses to an equal [`Config`].

use std::path::Path;

use tcvault::escrow::server::config::Config;

use super::client_config::escape;

/// Where the configuration is said to live (relative paths are resolved against it).
const PATH: &str = "/nonexistent/tcvault-fuzz/escrowd.xml";

/// The input is the configuration text (invalid UTF-8 is replaced).
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new(PATH);
    let Ok(c) = Config::parse(&text, path) else {
        return;
    };
    assert!(!c.admin_networks.is_empty());
    assert!(c.max_body_bytes >= 4096);
    assert!(c.throttle.max_failures >= 1);
    assert!(c.throttle.window.as_secs() >= 1 && c.throttle.lockout.as_secs() >= 1);
    assert!(!c.server_name.is_empty());
    assert!(c.tls_certificate.is_absolute() && c.tls_key.is_absolute());
    assert!(c.authority_public_key.is_absolute());
    assert!(
        c.database_url.starts_with("sqlite:/")
            || c.database_url.starts_with("postgres://")
            || c.database_url.starts_with("postgresql://")
    );
    let p = |x: &Path| escape(&x.display().to_string());
    let nets: Vec<String> = c.admin_networks.iter().map(|n| n.to_string()).collect();
    let xml = format!(
        "<TCVAULT_ESCROWD>\n<LISTEN_ADDRESS>{}</LISTEN_ADDRESS>\n<LISTEN_PORT>{}</LISTEN_PORT>\n\
         <TLS_CERTIFICATE>{}</TLS_CERTIFICATE>\n<TLS_KEY>{}</TLS_KEY>\n\
         <DATABASE_URL>{}</DATABASE_URL>\n<ADMIN_SUBNET_MASK>{}</ADMIN_SUBNET_MASK>\n\
         <AUTHORITY_PUBLIC_KEY>{}</AUTHORITY_PUBLIC_KEY>\n<LOGIN_THROTTLE>\n\
         <MAX_FAILURES>{}</MAX_FAILURES>\n<WINDOW_SECONDS>{}</WINDOW_SECONDS>\n\
         <LOCKOUT_SECONDS>{}</LOCKOUT_SECONDS>\n</LOGIN_THROTTLE>\n\
         <MAX_BODY_BYTES>{}</MAX_BODY_BYTES>\n<SERVER_NAME>{}</SERVER_NAME>\n</TCVAULT_ESCROWD>\n",
        c.listen.ip(),
        c.listen.port(),
        p(&c.tls_certificate),
        p(&c.tls_key),
        escape(&c.database_url),
        nets.join(" "),
        p(&c.authority_public_key),
        c.throttle.max_failures,
        c.throttle.window.as_secs(),
        c.throttle.lockout.as_secs(),
        c.max_body_bytes,
        escape(&c.server_name),
    );
    let back = Config::parse(&xml, path).expect("a written-out configuration parses");
    assert_eq!(
        back, c,
        "written out and parsed again, the configuration differs"
    );
}
