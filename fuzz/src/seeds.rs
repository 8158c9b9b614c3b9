//! The seed corpora: a few inputs per target that reach its interesting paths (valid headers
//! in each layout and scheme, each write operation, well-formed packets, configurations and
//! request bodies). Deterministic, so that `tests/format/fuzz_corpus.rs` can check that
//! `fuzz/corpus/<target>/seed-*` holds exactly these.

use serde_json::json;
use tcvault::header::format::Header;
use tcvault::header::kdf::Family;
use tcvault::header::layout::{DATA_AREA_OFFSET, MIN_VOLUME_SIZE, SALT_LEN};
use tcvault::secret::SecretBytes;

use super::common::plain_of;
use super::escrow_packet::hand_made;

/// A valid TrueCrypt header for a current-layout volume of `size` bytes.
fn header(version: u16, hidden: u64, size: u64) -> Header {
    let mut key = [0u8; 256];
    for (i, k) in key.iter_mut().enumerate().take(192) {
        *k = (i as u8).wrapping_mul(73) ^ 0x2B;
    }
    Header {
        family: Family::TrueCrypt,
        version,
        min_program_version: if version >= 4 { 0x0700 } else { 0x0410 },
        legacy_times: [0; 16],
        hidden_volume_size: hidden,
        volume_size: size - 2 * DATA_AREA_OFFSET,
        encrypted_area_start: DATA_AREA_OFFSET,
        encrypted_area_length: size - 2 * DATA_AREA_OFFSET,
        flags: 0,
        sector_size: 512,
        key_area: SecretBytes::from_slice(&key),
    }
}

fn fields(h: &Header) -> Vec<u8> {
    plain_of(h)[SALT_LEN..].to_vec()
}

/// Every seed: (target, name, bytes).
pub fn all() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut out: Vec<(&'static str, String, Vec<u8>)> = Vec::new();
    let mut add =
        |t: &'static str, name: &str, b: Vec<u8>| out.push((t, format!("seed-{name}"), b));

    // header_parse: flag byte, then 512 bytes.
    let size = MIN_VOLUME_SIZE;
    for (name, h) in [
        ("v5", header(5, 0, size)),
        ("v4-hidden", header(4, 65_536, size)),
        ("v3", header(3, 0, size)),
        (
            "v2-vera",
            Header {
                family: Family::VeraCrypt,
                min_program_version: 0x010B,
                ..header(2, 0, size)
            },
        ),
    ] {
        let mut b = vec![0];
        b.extend_from_slice(&plain_of(&h));
        add("header_parse", name, b);
    }
    add("header_parse", "v4-reserved-bytes-fixed-crc", {
        let mut b = vec![1];
        b.extend_from_slice(&plain_of(&header(4, 0, size)));
        b[1 + 200] = 7;
        b
    });
    add("header_parse", "garbage-fixed-crc", {
        let mut b = vec![1];
        b.extend((0..512u32).map(|i| (i * 7) as u8));
        b[65..69].copy_from_slice(b"TRUE");
        b
    });

    // volume_open: scheme, flags, size selector, count, slot, header bytes 64-511, filler.
    for (name, scheme, size_sel, k, slot, h) in [
        ("xts-normal", 0u8, 2u8, 0u8, 0u8, header(5, 0, size)),
        ("xts3-backup", 1, 2, 0, 3, header(5, 0, size)),
        (
            "lrw-legacy",
            2,
            3,
            40,
            0,
            Header {
                encrypted_area_start: 0,
                encrypted_area_length: 0,
                ..header(2, 0, size)
            },
        ),
        (
            "cbc-legacy-hidden",
            3,
            3,
            200,
            2,
            Header {
                encrypted_area_start: 0,
                encrypted_area_length: 0,
                ..header(2, 8192, size)
            },
        ),
        ("backup-128k-hidden", 0, 1, 0, 1, header(5, 65_536, size)),
        ("backup-1k", 4, 0, 0, 0, header(3, 0, size)),
    ] {
        let mut b = vec![scheme, 0, size_sel, k, slot];
        b.extend(fields(&h));
        b.extend_from_slice(b"filler bytes");
        add("volume_open", name, b);
    }

    // Crafted volumes (see common::craft): layout, scheme, size, tweak, 16 key bytes,
    // pattern, filesystem flag (even: magic), hidden length.
    let crafted = |layout: u8, scheme: u8, tweak: u8| {
        let mut b = vec![layout, scheme, 3, tweak];
        b.extend((0..16u8).map(|i| i.wrapping_mul(29) ^ layout));
        b.extend([0x44, 0, 10]);
        b
    };
    for (name, layout, scheme) in [
        ("normal", 0u8, 0u8),
        ("hidden", 1, 1),
        ("legacy", 2, 2),
        ("legacy-hidden", 3, 3),
    ] {
        for (bname, bt) in [("backup_file_1k", "1k"), ("backup_file_128k", "128k")] {
            let _ = bt;
            let mut b = crafted(layout, scheme, 0);
            b.extend([0, 0, 0]);
            add(bname, &format!("{name}-same"), b.clone());
            let mut forced = crafted(layout, scheme, 0);
            forced.extend([0, 1 | 2 | 8, 1]);
            add(bname, &format!("{name}-moved-force-keep"), forced);
        }
    }
    add("backup_file_128k", "raw", {
        let mut b = crafted(0, 0, 0);
        b.extend([1, 4]);
        b.extend(fields(&header(5, 0, size)));
        b
    });
    for (name, layout, scheme) in [
        ("normal", 0u8, 0u8),
        ("hidden", 1, 1),
        ("legacy", 2, 2),
        ("legacy-hidden", 3, 4),
    ] {
        for op in 0..5u8 {
            let mut b = crafted(layout, scheme, 0);
            b.extend([op, op % 2, 0, op % 2]);
            add("cli_write", &format!("{name}-op{op}"), b);
        }
    }
    add("cli_write", "area-at-zero-op0", {
        let mut b = crafted(0, 0, 5);
        b.extend([0, 0, 0]);
        b
    });

    // escrow_packet: a hand-made packet, the genuine packet, and changes to it.
    let meta = json!({
        "packet_version": 1, "format": "truecrypt", "hidden": false, "chain": "AES",
        "prf": "sha512", "sector_size": 512, "volume_size": 36864, "data_start": 131072,
        "data_len": 36864, "volume_fingerprint": "ab", "authority_fingerprints": ["cd"],
        "created_unix": 1, "user": "u"
    })
    .to_string();
    add("escrow_packet", "hand-made", {
        let mut b = vec![0];
        b.extend(hand_made(meta.as_bytes(), &[1u8; 128], 528));
        b
    });
    add("escrow_packet", "genuine", vec![1]);
    add("escrow_packet", "flip-metadata", vec![1, 0, 20, 1]);
    add("escrow_packet", "flip-body", vec![1, 0x7F, 0xF0, 0x80]);
    add("escrow_packet", "cut", vec![1, 0x80, 0x40, 0]);

    // client_config
    let fp = "ab".repeat(32);
    add("client_config", "full", format!(
        "<tcvault-escrow>\n  <server>https://escrow.example.org:8443/</server>\n  \
         <ca-certificate>ca.pem</ca-certificate>\n  <authority-key>authority.pem</authority-key>\n  \
         <authority-fingerprint>{}</authority-fingerprint>\n  <policy>Yes</policy>\n  \
         <timeout-seconds>30</timeout-seconds>\n</tcvault-escrow>\n",
        fp.to_uppercase()
    ).into_bytes());
    add("client_config", "fingerprint-only", format!(
        "<tcvault-escrow><server>https://h</server><authority-fingerprint>{fp}</authority-fingerprint></tcvault-escrow>"
    ).into_bytes());
    add("client_config", "binary-key", b"<tcvault-escrow><server>https://h</server><authority-key>binary.bin</authority-key></tcvault-escrow>".to_vec());

    // server_config
    add(
        "server_config",
        "full",
        b"<TCVAULT_ESCROWD>\n  <LISTEN_ADDRESS>0.0.0.0</LISTEN_ADDRESS>\n  \
        <LISTEN_PORT>8443</LISTEN_PORT>\n  <TLS_CERTIFICATE>cert.pem</TLS_CERTIFICATE>\n  \
        <TLS_KEY>key.pem</TLS_KEY>\n  <DATABASE_URL>sqlite:escrow.sqlite3</DATABASE_URL>\n  \
        <ADMIN_SUBNET_MASK>10.0.0.0/8, fd00::/8</ADMIN_SUBNET_MASK>\n  \
        <ADMIN_SUBNET_MASK>192.168.1.7</ADMIN_SUBNET_MASK>\n  \
        <AUTHORITY_PUBLIC_KEY>authority-public.pem</AUTHORITY_PUBLIC_KEY>\n  \
        <LOGIN_THROTTLE><MAX_FAILURES>5</MAX_FAILURES><WINDOW_SECONDS>300</WINDOW_SECONDS>\
        <LOCKOUT_SECONDS>60</LOCKOUT_SECONDS></LOGIN_THROTTLE>\n  \
        <MAX_BODY_BYTES>1048576</MAX_BODY_BYTES>\n  <SERVER_NAME>escrow1</SERVER_NAME>\n\
        </TCVAULT_ESCROWD>\n"
            .to_vec(),
    );
    add(
        "server_config",
        "postgres-minimal",
        b"<TCVAULT_ESCROWD><LISTEN_ADDRESS>::1</LISTEN_ADDRESS>\
        <LISTEN_PORT>0</LISTEN_PORT><TLS_CERTIFICATE>/c</TLS_CERTIFICATE><TLS_KEY>/k</TLS_KEY>\
        <DATABASE_URL>postgres://u@h/db</DATABASE_URL><ADMIN_SUBNET_MASK>::/0</ADMIN_SUBNET_MASK>\
        <AUTHORITY_PUBLIC_KEY>a &amp; b.pem</AUTHORITY_PUBLIC_KEY></TCVAULT_ESCROWD>"
            .to_vec(),
    );

    // escrow_api: body selector, then JSON.
    let salt = "5a".repeat(64);
    let body = |sel: u8, v: serde_json::Value| {
        let mut b = vec![sel];
        b.extend(v.to_string().into_bytes());
        b
    };
    add(
        "escrow_api",
        "deposit",
        body(
            0,
            json!({
                "volume_fingerprint": "AB".repeat(32), "salts": [salt, salt, "01".repeat(64)],
                "authority_fingerprint": super::escrow_api::AUTHORITY.to_uppercase(),
                "metadata": {"chain": "AES"}, "packet": "VENWRVNDUEsAAQ=="
            }),
        ),
    );
    add(
        "escrow_api",
        "deposit-other-authority",
        body(
            0,
            json!({
                "volume_fingerprint": "ab".repeat(16), "salts": ["5a".repeat(64)],
                "authority_fingerprint": "ff".repeat(32), "metadata": {}, "packet": "AA=="
            }),
        ),
    );
    add(
        "escrow_api",
        "search",
        body(
            1,
            json!({
                "salt": "5A".repeat(64), "fingerprint": "ab".repeat(20), "user": "alice",
                "from": "2026-01-01T00:00:00Z", "to": "1900000000", "number": "7", "limit": "5000"
            }),
        ),
    );
    add(
        "escrow_api",
        "deletion",
        body(2, json!({"escrow_number": 3, "reason": "gone"})),
    );
    add(
        "escrow_api",
        "export",
        body(
            3,
            json!({"escrow_numbers": [1, 2], "bundle_password": "correct horse"}),
        ),
    );
    add(
        "escrow_api",
        "import",
        body(
            4,
            json!({"bundle": "AAAA", "bundle_password": "correct horse"}),
        ),
    );

    // keyfiles: password length and bytes, count, each length (2 bytes) and bytes, splits.
    add("keyfiles", "two", {
        let mut b = vec![4];
        b.extend_from_slice(b"pass");
        b.push(2);
        b.extend([0, 5]);
        b.extend_from_slice(b"first");
        b.extend([0, 6]);
        b.extend_from_slice(b"second");
        b.extend([1, 3, 7]);
        b
    });
    add("keyfiles", "long-password-empty-keyfile", {
        let mut b = vec![100];
        b.extend(std::iter::repeat_n(b'p', 100));
        b.push(3);
        b.extend([0, 3]);
        b.extend_from_slice(b"abc");
        b.extend([0, 0]);
        b.extend([0, 1]);
        b.push(b'z');
        b
    });
    add("keyfiles", "no-password", vec![0, 1, 0, 4, 1, 2, 3, 4]);
    out
}
