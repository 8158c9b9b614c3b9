//! The escrow client's XML configuration ([`ClientConfig::parse`]): any text is parsed or
//! refused without a panic; an accepted configuration is in shape (an `https://` server without
//! a trailing slash, a 64-digit lower-case fingerprint, a timeout of 1–600 s, an authority key
//! or fingerprint, the named files' contents), and written out again it parses to the same.
//!
//! The files a configuration names are read; so that fuzzing never opens a device or a file
//! outside its scratch folder, inputs naming a file by anything but a bare name are skipped
//! (the library reads whatever path an administrator writes, which is its job).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use tcvault::escrow::client::config::ClientConfig;

use super::common::scratch;

const FILE_ELEMENTS: [&str; 3] = ["ca-certificate", "pinned-certificate", "authority-key"];

/// Files in the configuration's folder, by name and contents.
const FILES: [(&str, &[u8]); 3] = [
    (
        "ca.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    ),
    (
        "authority.pem",
        b"-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n",
    ),
    ("binary.bin", b"\xff\xfe\x00not utf-8"),
];

fn config_path() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = scratch().join("client-config");
        std::fs::create_dir_all(&dir).expect("folder");
        for (name, bytes) in FILES {
            std::fs::write(dir.join(name), bytes).expect("write file");
        }
        dir.join("escrow.xml")
    })
}

/// Whether every file the text names is a bare name (no folder, no device).
fn names_only_bare_files(text: &str) -> bool {
    let Ok(doc) = roxmltree::Document::parse(text) else {
        // The library refuses it before it reads any file.
        return true;
    };
    doc.descendants()
        .filter(|n| n.is_element() && FILE_ELEMENTS.contains(&n.tag_name().name()))
        .all(|n| {
            let v = n.text().unwrap_or("").trim();
            !v.contains('/') && !v.contains('\0')
        })
}

/// The input is the configuration text (invalid UTF-8 is replaced).
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if !names_only_bare_files(&text) {
        return;
    }
    let path = config_path();
    let Ok(cfg) = ClientConfig::parse(&text, path) else {
        return;
    };
    assert_eq!(cfg.path, path);
    assert!(cfg.server.starts_with("https://") && !cfg.server.ends_with('/'));
    if let Some(fp) = &cfg.authority_fingerprint {
        assert!(fp.len() == 64 && fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    }
    assert!((1..=600).contains(&cfg.timeout.as_secs()));
    assert!(cfg.authority_pem.is_some() || cfg.authority_fingerprint.is_some());
    let file_of = |bytes: &[u8]| {
        FILES
            .iter()
            .find(|(_, b)| *b == bytes)
            .map(|(n, _)| *n)
            .expect("a named file's contents")
    };
    // Written out again, it parses to the same configuration.
    let mut xml = String::from("<tcvault-escrow>\n");
    xml += &format!("<server>{}</server>\n", escape(&cfg.server));
    if let Some(ca) = &cfg.ca_pem {
        xml += &format!("<ca-certificate>{}</ca-certificate>\n", file_of(ca));
    }
    if let Some(k) = &cfg.authority_pem {
        xml += &format!("<authority-key>{}</authority-key>\n", file_of(k.as_bytes()));
    }
    if let Some(fp) = &cfg.authority_fingerprint {
        xml += &format!("<authority-fingerprint>{fp}</authority-fingerprint>\n");
    }
    let policy = cfg.policy.name();
    xml += &format!(
        "<policy>{policy}</policy>\n<timeout-seconds>{}</timeout-seconds>\n</tcvault-escrow>\n",
        cfg.timeout.as_secs()
    );
    let back = ClientConfig::parse(&xml, path).expect("a written-out configuration parses");
    assert_eq!(back.server, cfg.server);
    assert_eq!(back.ca_pem, cfg.ca_pem);
    assert_eq!(back.authority_pem, cfg.authority_pem);
    assert_eq!(back.authority_fingerprint, cfg.authority_fingerprint);
    assert_eq!(back.policy, cfg.policy);
    assert_eq!(back.timeout, cfg.timeout);
}

/// Text as XML character data: markup characters and anything outside printable ASCII as
/// character references, so that the parser's line-end and whitespace rules change nothing.
pub fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            ' ' | '!' | '#'..='%' | '('..=';' | '=' | '?'..='~' => c.to_string(),
            c => format!("&#x{:X};", u32::from(c)),
        })
        .collect()
}
