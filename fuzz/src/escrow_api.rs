//! The escrow API's request bodies (the serde types of `src/escrow/wire.rs`, which client and
//! server share) and the checks the handlers run on them: any JSON is refused or accepted
//! without a panic; an accepted deposit becomes an entry in shape (lower-case hex of the right
//! lengths, sorted distinct salts, metadata an object within its limit, a packet within its
//! limit) that the request type, as the client serialises it, carries back to the same entry,
//! and an unknown field makes it a refusal; a search is in range; refusals are 400 (409 for another authority key);
//! passwords in bodies never show in `Debug` output.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::Value;
use tcvault::escrow::server::api::{
    self, ApiError, MAX_METADATA_BYTES, MAX_PACKET_BYTES, MAX_SALTS, MAX_SEARCH_RESULTS,
};
use tcvault::escrow::server::store::NewEntry;
use tcvault::escrow::wire::{
    DeletionRequestBody, DepositRequest, ExportRequest, ImportRequest, SearchParams,
};
use tcvault::header::layout::SALT_LEN;

/// The server's authority key fingerprint in these checks.
pub const AUTHORITY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

fn is_hex(s: &str, bytes: std::ops::RangeInclusive<usize>) -> bool {
    s.len().is_multiple_of(2)
        && bytes.contains(&(s.len() / 2))
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn refusal(e: &ApiError) {
    let s = e.status().as_u16();
    assert!(
        s == 400 || (s == 409 && e.code() == "wrong_authority"),
        "refused with {s} {}",
        e.code()
    );
}

/// First byte: which body (deposit, search, deletion request, export, import); the rest is
/// its JSON.
pub fn check(data: &[u8]) {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    match which % 5 {
        0 => deposit(json),
        1 => search(json),
        2 => {
            if let Ok(b) = serde_json::from_slice::<DeletionRequestBody>(json) {
                let v: Value = serde_json::from_slice(json).expect("valid JSON");
                assert_eq!(
                    Some(b.escrow_number),
                    field(&v, "escrow_number", 0).as_i64()
                );
                assert_eq!(b.reason, field(&v, "reason", 1).as_str().unwrap_or(""));
            }
        }
        3 => debug_hides_password::<ExportRequest>(json),
        _ => {
            if let Ok(b) = serde_json::from_slice::<ImportRequest>(json) {
                let v: Value = serde_json::from_slice(json).expect("valid JSON");
                assert_eq!(Some(b.bundle.as_str()), field(&v, "bundle", 0).as_str());
                debug_hides_password::<ImportRequest>(json);
            }
        }
    }
}

/// The `Debug` output of a body does not depend on its `bundle_password`.
fn debug_hides_password<T: serde::de::DeserializeOwned + std::fmt::Debug>(json: &[u8]) {
    let Ok(b) = serde_json::from_slice::<T>(json) else {
        return;
    };
    let mut v: Value = serde_json::from_slice(json).expect("valid JSON");
    let other = Value::String("another password".into());
    match &mut v {
        // serde also reads a struct from an array of its fields in order.
        Value::Array(a) => a[1] = other,
        v => v["bundle_password"] = other,
    }
    let other: T = serde_json::from_value(v).expect("the same body with another password");
    assert_eq!(
        format!("{b:?}"),
        format!("{other:?}"),
        "the password shows in Debug output"
    );
}

/// A body's field by name, or by position when the body is an array (serde reads a struct
/// from either).
fn field<'a>(v: &'a Value, name: &str, index: usize) -> &'a Value {
    match v {
        Value::Array(a) => a.get(index).unwrap_or(&Value::Null),
        v => v.get(name).unwrap_or(&Value::Null),
    }
}

fn deposit(json: &[u8]) {
    let Ok(r) = serde_json::from_slice::<DepositRequest>(json) else {
        return;
    };
    let e = match api::validate_deposit(AUTHORITY, "user", r) {
        Ok(e) => e,
        Err(e) => return refusal(&e),
    };
    assert!(is_hex(&e.volume_fingerprint, 16..=64));
    assert!((1..=MAX_SALTS).contains(&e.salts.len()));
    assert!(e.salts.iter().all(|s| is_hex(s, SALT_LEN..=SALT_LEN)));
    assert!(
        e.salts.windows(2).all(|w| w[0] < w[1]),
        "salts not sorted and distinct"
    );
    assert_eq!(e.authority_fingerprint, AUTHORITY);
    assert!(e.metadata.len() <= MAX_METADATA_BYTES);
    let meta: Value = serde_json::from_str(&e.metadata).expect("metadata is JSON");
    assert!(meta.is_object());
    assert!(!e.packet.is_empty() && e.packet.len() <= MAX_PACKET_BYTES);
    assert_eq!((e.user.as_str(), e.origin.as_str()), ("user", "local"));

    // The request, as the client builds and serialises it, carries the entry back unchanged.
    let d = DepositRequest {
        volume_fingerprint: e.volume_fingerprint.clone(),
        salts: e.salts.clone(),
        authority_fingerprint: e.authority_fingerprint.clone(),
        metadata: meta,
        packet: B64.encode(&e.packet),
    };
    let wire = serde_json::to_vec(&d).expect("serialize");
    let r2: DepositRequest = serde_json::from_slice(&wire).expect("the server reads the client");
    let e2 = api::validate_deposit(AUTHORITY, "user", r2).expect("accepted again");
    assert!(
        same(&e, &e2),
        "the client's request does not carry the entry back"
    );

    // Unknown fields are refused.
    let mut v: Value = serde_json::from_slice(&wire).expect("JSON");
    v["unknown_field"] = Value::Bool(true);
    assert!(serde_json::from_value::<DepositRequest>(v).is_err());
}

fn same(a: &NewEntry, b: &NewEntry) -> bool {
    a.volume_fingerprint == b.volume_fingerprint
        && a.salts == b.salts
        && a.authority_fingerprint == b.authority_fingerprint
        && a.metadata == b.metadata
        && a.packet == b.packet
}

fn search(json: &[u8]) {
    let Ok(p) = serde_json::from_slice::<SearchParams>(json) else {
        return;
    };
    let q = match api::search_query(p) {
        Ok(q) => q,
        Err(e) => {
            assert_eq!(e.status().as_u16(), 400);
            return;
        }
    };
    assert!((1..=MAX_SEARCH_RESULTS).contains(&q.limit));
    if let Some(s) = &q.salt {
        assert!(is_hex(s, SALT_LEN..=SALT_LEN));
    }
    if let Some(f) = &q.fingerprint {
        assert!(is_hex(f, 16..=64));
    }
}
