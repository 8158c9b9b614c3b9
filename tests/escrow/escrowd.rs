//! The escrow server through a real HTTPS client: a real server on 127.0.0.1 port 0, real TLS
//! (the client trusts only the certificate `init` generated), a fresh database per test. Every
//! scenario runs against SQLite and against PostgreSQL; the PostgreSQL variants need
//! `TCVAULT_TEST_POSTGRES_URL` (scripts/setup.d/postgres.sh) and skip without it, except under
//! CI=true, where they fail.
//!
//! The server, database and binary scaffolding is in `tests/common/escrow_server.rs`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tcvault::escrow::server::auth::hash_password;
use tcvault::escrow::server::config::{self, Config};
use tcvault::escrow::server::store::{AuditEvent, AuditKey, Store, audit_hash, audit_mac};

use crate::common::escrow_server::{
    Kind, Options, TestServer, authority, binary_setup, both_backends, col_int, col_text,
    deposit_body, escrowd, new_entry, poison_trigger, random_hex, run_escrowd, start,
    write_authority,
};
use crate::common::private_tempdir;

both_backends!(
    deposit_and_already_in_escrow,
    concurrent_same_deposit_gets_one_number,
    admin_search_and_fetch,
    non_admin_is_refused,
    admin_outside_admin_network_is_refused,
    wrong_password_then_throttled,
    concurrent_guesses_are_counted_before_checking,
    nobody_locks_a_user_out_from_elsewhere,
    deletion_request_and_approval,
    export_and_import_between_servers,
    audit_verify_detects_tampering,
    failed_audit_write_fails_the_action,
    bad_requests_get_clear_errors_and_server_keeps_serving,
    untouched_database_verifies_after_a_normal_workflow,
    audit_rows_rewritten_with_sha256_are_detected,
    audit_rows_rewritten_with_a_wrong_key_are_detected,
    deleted_escrow_entry_is_detected,
    changed_entry_owner_is_detected,
    inserted_rows_are_detected,
    flipped_admin_flag_is_detected_even_after_a_later_change,
    replaced_password_hash_is_detected,
    deleted_deletion_request_is_detected,
    concurrent_deposits_are_all_acknowledged_and_survive_a_restart,
    a_failing_deposit_does_not_fail_its_batch,
    concurrent_first_logins_run_argon2id_once_per_credential,
    a_wrong_password_beside_the_right_one_is_refused_and_counted,
    concurrent_identical_guesses_are_counted_before_checking,
    a_deposit_failing_after_its_change_leaves_the_audit_intact,
    a_batch_stores_what_one_deposit_after_another_would,
    a_session_token_stands_for_its_user_until_the_password_changes,
    dual_control_one_approval_serves_one_fetch,
    recovery_packets_are_their_owners_alone_and_outlive_plain_deposits,
);

// ---------- scenarios ----------

async fn deposit_and_already_in_escrow(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    let fp = random_hex(32);
    let salt1 = random_hex(64);
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, std::slice::from_ref(&salt1), b"packet-1"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["already_in_escrow"], false);
    let n = v["escrow_number"].as_i64().expect("number");

    // Same user, same volume after a password change: new salt, same fingerprint.
    let salt2 = random_hex(64);
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, std::slice::from_ref(&salt2), b"packet-2"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["already_in_escrow"], true);
    assert_eq!(v["escrow_number"].as_i64(), Some(n));

    // Another user escrowing the same keys gets their own number.
    let (st, v) = s
        .as_user("bob")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, std::slice::from_ref(&salt1), b"packet-3"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let m = v["escrow_number"].as_i64().expect("number");
    assert_ne!(m, n);

    // Alice's own list: one entry, both salts recorded, the first packet kept.
    let (st, v) = s.as_user("alice").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::OK);
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    let mut salts: Vec<String> = entries[0]["salts"]
        .as_array()
        .expect("salts")
        .iter()
        .map(|x| x.as_str().expect("salt").to_owned())
        .collect();
    salts.sort();
    let mut want = vec![salt1, salt2];
    want.sort();
    assert_eq!(salts, want);
    assert_eq!(entries[0]["metadata"]["prf"], "SHA-512");
    s.stop().await;
}

async fn concurrent_same_deposit_gets_one_number(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("carol", "carol pw", false, false, false).await;
    let fp = random_hex(32);
    let body = deposit_body(&fp, &[random_hex(64)], b"same volume");
    let client = s.client();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = client.clone();
        let url = s.url("/v1/deposits");
        let b = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = c
                .post(url)
                .basic_auth("carol", Some("carol pw"))
                .json(&b)
                .send()
                .await
                .expect("deposit");
            let st = r.status();
            let v: Value = r.json().await.expect("json");
            (st, v["escrow_number"].as_i64().expect("number"))
        }));
    }
    let mut numbers = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (st, n) = t.await.expect("task");
        if st == StatusCode::CREATED {
            created += 1;
        } else {
            assert_eq!(st, StatusCode::OK);
        }
        numbers.push(n);
    }
    assert_eq!(created, 1, "exactly one deposit creates the entry");
    numbers.dedup();
    assert_eq!(numbers.len(), 1, "all got the same number: {numbers:?}");
    s.stop().await;
}

async fn admin_search_and_fetch(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("root", "root pw", true, false, false).await;
    let fp = random_hex(32);
    let salt = random_hex(64);
    let packet: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, std::slice::from_ref(&salt), &packet),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let n = v["escrow_number"].as_i64().expect("number");
    // A second, unrelated entry that must not match the searches below.
    let (st, _) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"other"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    for query in [
        format!("salt={salt}"),
        format!("salt={}", salt.to_uppercase()),
        format!("fingerprint={fp}"),
        format!("number={n}"),
        format!(
            "user=alice&fingerprint={fp}&from={}&to={}",
            now - 600,
            now + 600
        ),
    ] {
        let (st, v) = s
            .as_user("root")
            .get(&format!("/v1/admin/entries?{query}"))
            .await;
        assert_eq!(st, StatusCode::OK, "{query}: {v}");
        let e = v["entries"].as_array().expect("entries");
        assert_eq!(e.len(), 1, "{query}: {v}");
        assert_eq!(e[0]["escrow_number"].as_i64(), Some(n));
        assert_eq!(e[0]["user"], "alice");
        assert!(e[0]["created"].as_str().expect("date").ends_with('Z'));
        assert!(e[0].get("packet").is_none(), "search never returns packets");
    }
    let (st, v) = s.as_user("root").get("/v1/admin/entries?user=alice").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["entries"].as_array().expect("entries").len(), 2);
    // A date range in the future finds nothing (RFC 3339 accepted too).
    let (st, v) = s
        .as_user("root")
        .get("/v1/admin/entries?from=2999-01-01T00:00:00Z")
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["entries"].as_array().expect("entries").is_empty());

    let (st, v) = s
        .as_user("root")
        .get(&format!("/v1/admin/entries/{n}"))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        B64.decode(v["packet"].as_str().expect("packet"))
            .expect("base64"),
        packet
    );
    assert_eq!(v["volume_fingerprint"], fp.as_str());
    let (st, _) = s.as_user("root").get("/v1/admin/entries/999999").await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // The authority key needs no login and its fingerprint is what the test computed.
    let r = s
        .client()
        .get(s.url("/v1/authority-key"))
        .send()
        .await
        .expect("authority key");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["fingerprint"], authority().1.as_str());
    assert_eq!(v["bits"], 2048);
    assert!(
        v["public_key_pem"]
            .as_str()
            .expect("pem")
            .contains("BEGIN PUBLIC KEY")
    );

    // Searches and fetches are in the audit table with the escrow number.
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop().await;
}

async fn non_admin_is_refused(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, true, true).await;
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let n = v["escrow_number"].as_i64().expect("number");
    let (st, v) = s.as_user("alice").get("/v1/admin/entries?user=alice").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "forbidden");
    let (st, _) = s
        .as_user("alice")
        .get(&format!("/v1/admin/entries/{n}"))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s.as_user("alice").get("/v1/admin/deletion-requests").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // No credentials at all.
    let r = s
        .client()
        .get(s.url("/v1/admin/entries"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get("www-authenticate").is_some());
    s.stop().await;
}

async fn admin_outside_admin_network_is_refused(kind: Kind) {
    let opts = Options {
        admin_networks: "10.0.0.0/8,fd00::/8",
        ..Options::default()
    };
    let Some(s) = start(kind, opts).await else {
        return;
    };
    s.add_user("root", "root pw", true, true, true).await;
    let (st, v) = s.as_user("root").get("/v1/admin/entries").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("ADMIN_SUBNET_MASK"),
        "{v}"
    );
    // A forged forwarding header changes nothing: only the TCP peer address counts.
    let r = s
        .client()
        .get(s.url("/v1/admin/entries"))
        .basic_auth("root", Some("root pw"))
        .header("X-Forwarded-For", "10.1.2.3")
        .header("X-Real-IP", "10.1.2.3")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (st, _) = s.as_user("root").get("/v1/admin/entries/1").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, _) = s
        .as_user("root")
        .post(
            "/v1/admin/export",
            &json!({"escrow_numbers": [1], "bundle_password": "long enough"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    // Depositing is not an admin operation.
    let (st, _) = s
        .as_user("root")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    s.stop().await;
}

async fn wrong_password_then_throttled(kind: Kind) {
    let opts = Options {
        max_failures: 3,
        ..Options::default()
    };
    let Some(s) = start(kind, opts).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    for _ in 0..3 {
        let (st, v) = s.get("alice", "not it", "/v1/deposits").await;
        assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
        assert_eq!(v["message"], "wrong user name or password");
    }
    // Now even the right password is refused, with a Retry-After.
    let r = s
        .client()
        .get(s.url("/v1/deposits"))
        .basic_auth("alice", Some("alice pw"))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!(retry >= 1);
    // The address is throttled too: bob from the same address is refused.
    let (st, _) = s.as_user("bob").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::TOO_MANY_REQUESTS);
    // An unknown user gets the same answer as a wrong password (on a fresh server).
    let report = s.db.verify().await;
    assert!(report.rows >= 5, "login failures are audited: {report:?}");
    s.stop().await;

    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    let (st, v) = s.get("nobody", "whatever", "/v1/deposits").await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(v["message"], "wrong user name or password");
    s.stop().await;
}

/// 40 wrong guesses at once from a fresh address used to be checked all 40 (the limit was tested
/// before and counted after); now at most the limit are checked and the rest get 429.
async fn concurrent_guesses_are_counted_before_checking(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("victim", "the real one", false, false, false)
        .await;
    let client = s.client_from(std::net::Ipv4Addr::new(127, 0, 0, 9).into());
    let url = s.url("/v1/deposits");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            client
                .get(url)
                .basic_auth("victim", Some(format!("guess {i}")))
                .send()
                .await
                .expect("request")
                .status()
        });
    }
    let answers = tasks.join_all().await;
    let checked = answers
        .iter()
        .filter(|st| **st == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 40, "{answers:?}");
    assert!(checked <= 5, "{checked} guesses were checked: {answers:?}");
    s.stop().await;
}

/// Wrong guesses from other addresses lock those addresses, never the user where they work:
/// the pair and the address lock at 5, the user name over all addresses at 20.
async fn nobody_locks_a_user_out_from_elsewhere(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("admin", "admin pw", true, false, false).await;
    let desk = [127, 0, 0, 1];
    assert_eq!(
        s.get_from(desk, "admin", "admin pw", "/v1/deposits").await,
        StatusCode::OK
    );
    // An attacker from one address: locked after 5, the admin at the desk is not.
    for _ in 0..5 {
        let st = s
            .get_from([127, 0, 0, 2], "admin", "guess", "/v1/deposits")
            .await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
    }
    let st = s
        .get_from([127, 0, 0, 2], "admin", "guess", "/v1/deposits")
        .await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "the attacker's address is locked"
    );
    assert_eq!(
        s.get_from(desk, "admin", "admin pw", "/v1/deposits").await,
        StatusCode::OK,
        "the admin at the desk is not locked out"
    );
    // Guesses spread over many addresses (20 with the 5 above): the user name locks for new
    // addresses...
    for a in 3..=5u8 {
        for _ in 0..5 {
            let st = s
                .get_from([127, 0, 0, a], "admin", "guess", "/v1/deposits")
                .await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "from 127.0.0.{a}");
        }
    }
    let st = s
        .get_from([127, 0, 0, 7], "admin", "guess", "/v1/deposits")
        .await;
    assert_eq!(
        st,
        StatusCode::TOO_MANY_REQUESTS,
        "a new address is refused"
    );
    // ...but not for the desk (a remembered credential here; the exemption of addresses the
    // user logged in from, which matters once it is forgotten, is tested in `auth`).
    assert_eq!(
        s.get_from(desk, "admin", "admin pw", "/v1/deposits").await,
        StatusCode::OK
    );
    s.stop().await;
}

/// Dual control on the API: a fetch without approval is 403 `approval_required`; the
/// requester cannot approve their own request, a plain user cannot list or approve; after
/// another admin's approval, of two fetches racing for it exactly one gets the packet; a
/// decided request cannot be decided again; exports are off.
async fn dual_control_one_approval_serves_one_fetch(kind: Kind) {
    let Some(s) = start(
        kind,
        Options {
            fetch_approval: Some(Duration::from_secs(600)),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("admin1", "admin1 pw", true, true, false).await;
    s.add_user("admin2", "admin2 pw", true, false, false).await;
    let (_, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
        )
        .await;
    let n = v["escrow_number"].as_i64().expect("number");
    let fetch = format!("/v1/admin/entries/{n}");

    let (st, v) = s.as_user("admin1").get(&fetch).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"], "approval_required", "{v}");
    let (st, v) = s
        .as_user("admin1")
        .post(
            "/v1/admin/fetch-requests",
            &json!({"escrow_number": n, "reason": "help desk ticket 12"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let id = v["request_id"].as_i64().expect("id");
    let (st, v) = s
        .as_user("admin1")
        .post("/v1/admin/fetch-requests", &json!({"escrow_number": n}))
        .await;
    assert_eq!(
        (st, v["request_id"].as_i64()),
        (StatusCode::CREATED, Some(id))
    );
    let (st, _) = s.as_user("alice").get("/v1/admin/fetch-requests").await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s.as_user("admin2").get("/v1/admin/fetch-requests").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["requests"][0]["reason"], "help desk ticket 12", "{v}");

    let approve = format!("/v1/admin/fetch-requests/{id}/approve");
    let (st, v) = s.as_user("admin1").post(&approve, &json!(null)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = s.as_user("alice").post(&approve, &json!(null)).await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s.as_user("admin2").post(&approve, &json!(null)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "approved");
    let (st, _) = s.as_user("admin2").post(&approve, &json!(null)).await;
    assert_eq!(st, StatusCode::CONFLICT, "decided once");

    let a = s.as_user("admin1");
    let b = s.as_user("admin1");
    let ((st1, _), (st2, _)) = tokio::join!(a.get(&fetch), b.get(&fetch));
    let mut got = [st1, st2];
    got.sort();
    assert_eq!(
        got,
        [StatusCode::OK, StatusCode::FORBIDDEN],
        "one approval, one fetch"
    );

    let (st, v) = s
        .as_user("admin1")
        .post(
            "/v1/admin/export",
            &json!({"escrow_numbers": [n], "bundle_password": "long enough pw"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
}

async fn deletion_request_and_approval(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("mallory", "mallory pw", false, false, false)
        .await;
    s.add_user("admin1", "admin1 pw", true, false, false).await;
    s.add_user("admin2", "admin2 pw", true, false, false).await;
    let dep = |fp: String| deposit_body(&fp, &[random_hex(64)], b"p");
    let (_, v) = s
        .as_user("alice")
        .post("/v1/deposits", &dep(random_hex(32)))
        .await;
    let n = v["escrow_number"].as_i64().expect("number");
    let (_, v) = s
        .as_user("admin1")
        .post("/v1/deposits", &dep(random_hex(32)))
        .await;
    let own = v["escrow_number"].as_i64().expect("number");

    // Another user may not ask to delete alice's entry.
    let (st, _) = s
        .as_user("mallory")
        .post("/v1/deletion-requests", &json!({"escrow_number": n}))
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deletion-requests",
            &json!({"escrow_number": n, "reason": "disk retired"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let req = v["request_id"].as_i64().expect("id");
    let (st, v) = s
        .as_user("admin1")
        .post("/v1/deletion-requests", &json!({"escrow_number": own}))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let own_req = v["request_id"].as_i64().expect("id");

    let (st, v) = s.as_user("admin1").get("/v1/admin/deletion-requests").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["requests"].as_array().expect("list").len(), 2);
    assert_eq!(v["requests"][0]["reason"], "disk retired");

    // An admin cannot approve their own request; a plain user cannot approve at all.
    let (st, v) = s.as_user("admin1").decide(own_req, "approve").await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, _) = s.as_user("alice").decide(req, "approve").await;
    assert_eq!(st, StatusCode::FORBIDDEN);

    let (st, v) = s.as_user("admin1").decide(req, "approve").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["escrow_number"].as_i64(), Some(n));
    let (st, _) = s
        .as_user("admin2")
        .get(&format!("/v1/admin/entries/{n}"))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s.as_user("admin2").decide(req, "approve").await;
    assert_eq!(st, StatusCode::CONFLICT, "approved once only");
    let (st, _) = s.as_user("admin2").decide(own_req, "approve").await;
    assert_eq!(
        st,
        StatusCode::OK,
        "a second admin approves admin1's request"
    );
    let (_, v) = s.as_user("admin2").get("/v1/admin/entries").await;
    assert!(v["entries"].as_array().expect("entries").is_empty());

    // A rejected request leaves the entry in place.
    let (_, v) = s
        .as_user("alice")
        .post("/v1/deposits", &dep(random_hex(32)))
        .await;
    let kept = v["escrow_number"].as_i64().expect("number");
    let (_, v) = s
        .as_user("alice")
        .post("/v1/deletion-requests", &json!({"escrow_number": kept}))
        .await;
    let rej = v["request_id"].as_i64().expect("id");
    let (st, v) = s.as_user("admin2").decide(rej, "reject").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s.as_user("admin1").decide(rej, "approve").await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a rejected request cannot be approved"
    );
    let (st, _) = s
        .as_user("admin1")
        .get(&format!("/v1/admin/entries/{kept}"))
        .await;
    assert_eq!(st, StatusCode::OK, "the entry is still there");
    let (st, v) = s.as_user("admin2").get("/v1/admin/deletion-requests").await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["requests"].as_array().expect("list").is_empty());
    s.stop().await;
}

async fn export_and_import_between_servers(kind: Kind) {
    let Some(a) = start(kind, Options::default()).await else {
        return;
    };
    let Some(b) = start(
        kind,
        Options {
            name: "escrow-b",
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    a.add_user("alice", "alice pw", false, false, false).await;
    a.add_user("exporter", "exp pw", false, true, false).await;
    a.add_user("root", "root pw", true, false, false).await;
    b.add_user("importer", "imp pw", false, false, true).await;
    b.add_user("exporter", "exp pw", false, true, false).await;
    b.add_user("root", "root pw", true, false, false).await;

    let fp1 = random_hex(32);
    let fp2 = random_hex(32);
    let (_, v) = a
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp1, &[random_hex(64)], b"one"),
        )
        .await;
    let n1 = v["escrow_number"].as_i64().expect("n1");
    let (_, v) = a
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp2, &[random_hex(64)], b"two"),
        )
        .await;
    let n2 = v["escrow_number"].as_i64().expect("n2");

    // Rights are separate: an admin without the export right cannot export.
    let export_req = json!({"escrow_numbers": [n1, n2], "bundle_password": "bundle secret 1"});
    let (st, _) = a
        .as_user("root")
        .post("/v1/admin/export", &export_req)
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN);
    let (st, v) = a
        .post("exporter", "exp pw", "/v1/admin/export", &export_req)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["count"], 2);
    let bundle = v["bundle"].as_str().expect("bundle").to_owned();
    let raw = B64.decode(&bundle).expect("base64");
    let raw = String::from_utf8(raw).expect("bundle is JSON text");
    assert!(
        !raw.contains(&fp1) && !raw.contains("alice"),
        "the bundle carries nothing in the clear"
    );

    let import_req = json!({"bundle": bundle, "bundle_password": "bundle secret 1"});
    let (st, _) = b
        .post("exporter", "exp pw", "/v1/admin/import", &import_req)
        .await;
    assert_eq!(
        st,
        StatusCode::FORBIDDEN,
        "export right does not allow import"
    );
    let (st, v) = b
        .post(
            "importer",
            "imp pw",
            "/v1/admin/import",
            &json!({"bundle": bundle, "bundle_password": "wrong password"}),
        )
        .await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{v}");
    let (st, v) = b
        .post("importer", "imp pw", "/v1/admin/import", &import_req)
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["imported"].as_array().expect("imported").len(), 2);
    assert!(v["already_present"].as_array().expect("present").is_empty());
    // Importing again duplicates nothing.
    let (st, v) = b
        .post("importer", "imp pw", "/v1/admin/import", &import_req)
        .await;
    assert_eq!(st, StatusCode::OK);
    assert!(v["imported"].as_array().expect("imported").is_empty());
    assert_eq!(v["already_present"].as_array().expect("present").len(), 2);

    let (st, v) = b
        .as_user("root")
        .get(&format!("/v1/admin/entries?fingerprint={fp1}"))
        .await;
    assert_eq!(st, StatusCode::OK);
    let e = v["entries"].as_array().expect("entries");
    assert_eq!(e.len(), 1);
    assert_eq!(e[0]["user"], "alice");
    assert_eq!(e[0]["origin"], format!("import:escrow-a#{n1}").as_str());
    let nb = e[0]["escrow_number"].as_i64().expect("number");
    let (_, v) = b
        .as_user("root")
        .get(&format!("/v1/admin/entries/{nb}"))
        .await;
    assert_eq!(
        B64.decode(v["packet"].as_str().expect("packet"))
            .expect("b64"),
        b"one"
    );
    let (_, v) = b.as_user("root").get("/v1/admin/entries").await;
    assert_eq!(v["entries"].as_array().expect("entries").len(), 2);
    a.stop().await;
    b.stop().await;
}

async fn audit_verify_detects_tampering(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("root", "root pw", true, false, false).await;
    for _ in 0..3 {
        let (st, _) = s
            .as_user("alice")
            .post(
                "/v1/deposits",
                &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
            )
            .await;
        assert_eq!(st, StatusCode::CREATED);
    }
    let (st, _) = s.as_user("root").get("/v1/admin/entries?user=alice").await;
    assert_eq!(st, StatusCode::OK);
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(report.rows >= 6, "{report:?}");

    // Changing a row is detected.
    s.db.exec("UPDATE AUDIT SET ACTOR = 'someone else' WHERE SEQ = 3")
        .await;
    let report = s.db.verify().await;
    assert!(
        report.problems.iter().any(|p| p.contains("row 3")),
        "{:?}",
        report.problems
    );
    s.stop().await;

    // Removing a row in the middle, or the newest row, is detected too.
    for sql in [
        "DELETE FROM AUDIT WHERE SEQ = 2",
        "DELETE FROM AUDIT WHERE SEQ = (SELECT MAX(SEQ) FROM AUDIT)",
    ] {
        let Some(s) = start(kind, Options::default()).await else {
            return;
        };
        s.add_user("alice", "alice pw", false, false, false).await;
        for _ in 0..2 {
            s.as_user("alice")
                .post(
                    "/v1/deposits",
                    &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
                )
                .await;
        }
        assert!(s.db.verify().await.problems.is_empty());
        s.db.exec(sql).await;
        let report = s.db.verify().await;
        assert!(!report.problems.is_empty(), "{sql} went unnoticed");
        s.stop().await;
    }
}

async fn failed_audit_write_fails_the_action(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    let (block, unblock) = match kind {
        Kind::Sqlite => (
            "CREATE TRIGGER no_audit BEFORE INSERT ON AUDIT BEGIN SELECT RAISE(ABORT, 'audit disabled'); END;",
            "DROP TRIGGER no_audit;",
        ),
        Kind::Postgres => (
            "CREATE FUNCTION no_audit() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'audit disabled'; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER no_audit BEFORE INSERT ON AUDIT FOR EACH ROW EXECUTE FUNCTION no_audit();",
            "DROP TRIGGER no_audit ON AUDIT;",
        ),
    };
    s.db.exec(block).await;
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
        )
        .await;
    assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "{v}");
    s.db.exec(unblock).await;
    let (st, v) = s.as_user("alice").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        v["entries"].as_array().expect("entries").is_empty(),
        "the deposit was rolled back with its audit row: {v}"
    );
    s.stop().await;
}

async fn bad_requests_get_clear_errors_and_server_keeps_serving(kind: Kind) {
    let opts = Options {
        max_body: 8192,
        ..Options::default()
    };
    let Some(s) = start(kind, opts).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    let c = s.client();
    let send = |body: Vec<u8>| {
        c.post(s.url("/v1/deposits"))
            .basic_auth("alice", Some("alice pw"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let r = send(b"{\"volume_fingerprint\": ".to_vec())
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let v: Value = r.json().await.expect("json error body");
    assert_eq!(v["error"], "bad_json");

    let big = deposit_body(&random_hex(32), &[random_hex(64)], &vec![7u8; 20_000]);
    let r = send(serde_json::to_vec(&big).expect("json"))
        .await
        .expect("send");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let mut unknown = deposit_body(&random_hex(32), &[random_hex(64)], b"p");
    unknown["private_key"] = json!("nope");
    let (st, _) = s.as_user("alice").post("/v1/deposits", &unknown).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    let mut wrong_auth = deposit_body(&random_hex(32), &[random_hex(64)], b"p");
    wrong_auth["authority_fingerprint"] = json!(random_hex(32));
    let (st, v) = s.as_user("alice").post("/v1/deposits", &wrong_auth).await;
    assert_eq!(st, StatusCode::CONFLICT);
    assert_eq!(v["error"], "wrong_authority");

    let (st, v) = s
        .as_user("alice")
        .post("/v1/deposits", &deposit_body("zz", &[random_hex(64)], b"p"))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        v["message"]
            .as_str()
            .expect("message")
            .contains("volume_fingerprint")
    );
    let (st, _) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(10)], b"p"),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);

    // Plain HTTP and garbage on the TLS port: the connection fails, the server carries on.
    let addr = s.addr;
    tokio::task::spawn_blocking(move || {
        for junk in [
            &b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            &[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5][..],
        ] {
            let mut t = TcpStream::connect(addr).expect("connect");
            t.set_read_timeout(Some(Duration::from_secs(15)))
                .expect("timeout");
            let _ = t.write_all(junk);
            let mut buf = [0u8; 512];
            let n = t.read(&mut buf).unwrap_or(0);
            assert!(
                !buf[..n].starts_with(b"HTTP/1.1 200"),
                "no plaintext service"
            );
        }
    })
    .await
    .expect("junk task");

    let (st, v) = s.as_user("alice").get("/v1/health").await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _) = s.as_user("alice").get("/v1/nope").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    s.stop().await;
}

// ---------- the keyed audit against changes behind the server's back ----------

/// What [`audit_workflow`] left in the database.
struct Facts {
    /// Alice's entry, escrowed twice (the second time with a new salt).
    kept: i64,
    /// Bob's pending deletion request.
    pending_request: i64,
}

/// Users, deposits (one again with a new salt), a deletion approved, one rejected, one left
/// pending, a search and a fetch; the audit verifies intact afterwards.
async fn audit_workflow(kind: Kind) -> Option<(TestServer, Facts)> {
    let s = start(kind, Options::default()).await?;
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    s.add_user("root", "root pw", true, false, false).await;
    s.add_user("admin2", "admin2 pw", true, false, false).await;
    let deposit = async |user: &str, fp: &str, salt: String| {
        let (st, v) = s
            .as_user(user)
            .post("/v1/deposits", &deposit_body(fp, &[salt], b"packet"))
            .await;
        assert!(st.is_success(), "{v}");
        v["escrow_number"].as_i64().expect("number")
    };
    let fp = random_hex(32);
    let kept = deposit("alice", &fp, random_hex(64)).await;
    assert_eq!(deposit("alice", &fp, random_hex(64)).await, kept);
    let gone = deposit("alice", &random_hex(32), random_hex(64)).await;
    let bobs = deposit("bob", &random_hex(32), random_hex(64)).await;
    let ask = async |user: &str, n: i64| {
        let (st, v) = s
            .as_user(user)
            .post("/v1/deletion-requests", &json!({"escrow_number": n}))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
        v["request_id"].as_i64().expect("id")
    };
    let approved = ask("alice", gone).await;
    assert_eq!(
        s.as_user("root").decide(approved, "approve").await.0,
        StatusCode::OK
    );
    let rejected = ask("alice", kept).await;
    assert_eq!(
        s.as_user("admin2").decide(rejected, "reject").await.0,
        StatusCode::OK
    );
    let pending_request = ask("bob", bobs).await;
    assert_eq!(
        s.as_user("root")
            .get("/v1/admin/entries?user=alice")
            .await
            .0,
        StatusCode::OK
    );
    let fetch = format!("/v1/admin/entries/{kept}");
    assert_eq!(s.as_user("root").get(&fetch).await.0, StatusCode::OK);
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Some((
        s,
        Facts {
            kept,
            pending_request,
        },
    ))
}

async fn untouched_database_verifies_after_a_normal_workflow(kind: Kind) {
    let Some((s, f)) = audit_workflow(kind).await else {
        return;
    };
    // User administration through the store, as the CLI does it.
    let store = s.db.store().await;
    tokio::task::spawn_blocking(move || {
        let ev = AuditEvent::new("test", "local", "user_admin");
        store.set_admin("bob", true, &ev).expect("set admin");
        store.set_export("bob", true, &ev).expect("set export");
        let hash = hash_password(b"bob new pw").expect("hash");
        store.set_password("bob", &hash, &ev).expect("set password");
        store.remove_user("admin2", &ev).expect("remove user");
    })
    .await
    .expect("admin task");
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(
        report.keyed_from,
        Some(1),
        "a new database is keyed from its first row"
    );
    // 3 users, 2 entries, 3 deletion requests.
    assert_eq!(report.records, 8, "{report:?}");
    assert!(f.kept > 0 && f.pending_request > 0);
    s.stop().await;
}

async fn audit_rows_rewritten_with_sha256_are_detected(kind: Kind) {
    let Some((s, _)) = audit_workflow(kind).await else {
        return;
    };
    s.db.exec("UPDATE AUDIT SET ACTOR = 'someone else' WHERE SEQ = 3")
        .await;
    s.db.rechain(3, |r, prev| {
        audit_hash(
            col_int(r, 0),
            col_int(r, 1),
            col_text(r, 2),
            col_text(r, 3),
            col_text(r, 4),
            col_text(r, 5),
            col_text(r, 6),
            prev,
        )
    })
    .await;
    let report =
        s.db.assert_problems(&["row 3: contents do not match its MAC"])
            .await;
    assert!(
        !report.problems.iter().any(|p| p.contains("previous-hash")),
        "the links are consistent, only the keyed tags fail: {:?}",
        report.problems
    );
    s.stop().await;
}

async fn audit_rows_rewritten_with_a_wrong_key_are_detected(kind: Kind) {
    let Some((s, _)) = audit_workflow(kind).await else {
        return;
    };
    // Grant alice admin and rewrite the whole keyed chain under a key of one's own.
    s.db.exec("UPDATE \"USER\" SET USER_ADMIN = 1 WHERE USER_NAME = 'alice'")
        .await;
    let wrong = AuditKey::generate().expect("key");
    s.db.rechain(1, move |r, prev| {
        audit_mac(
            &wrong,
            col_int(r, 0),
            col_int(r, 1),
            col_text(r, 2),
            col_text(r, 3),
            col_text(r, 4),
            col_text(r, 5),
            col_text(r, 6),
            col_text(r, 7),
            prev,
        )
    })
    .await;
    s.db.assert_problems(&[
        "row 1: the row that keyed the chain does not match its MAC",
        "row 2: contents do not match its MAC",
        "user \"alice\" is not what the audit chain last recorded",
    ])
    .await;
    // The server refuses to start on a key that does not fit the chain (here: the real one
    // no longer fits, exactly as a wrong key file would not).
    let (url, key) = (s.db.url(), s.db.audit_key.clone());
    let e = tokio::task::spawn_blocking(move || Store::open_keyed(&url, Path::new("/"), &key))
        .await
        .expect("task")
        .expect_err("a key that does not verify the keying row is refused");
    assert!(e.to_string().contains("does not verify audit row 1"), "{e}");
    s.stop().await;
}

async fn deleted_escrow_entry_is_detected(kind: Kind) {
    let Some((s, f)) = audit_workflow(kind).await else {
        return;
    };
    s.db.exec(&format!(
        "DELETE FROM ESCROW_SALT WHERE ESCROW_NUMBER = {0}; \
         DELETE FROM ESCROW WHERE ESCROW_NUMBER = {0}",
        f.kept
    ))
    .await;
    s.db.assert_problems(&[&format!(
        "escrow entry {} is missing, but the audit chain records it",
        f.kept
    )])
    .await;
    s.stop().await;
}

async fn changed_entry_owner_is_detected(kind: Kind) {
    let Some((s, f)) = audit_workflow(kind).await else {
        return;
    };
    s.db.exec(&format!(
        "UPDATE ESCROW SET USER_NAME = 'bob' WHERE ESCROW_NUMBER = {}",
        f.kept
    ))
    .await;
    s.db.assert_problems(&[&format!(
        "escrow entry {} is not what the audit chain last recorded",
        f.kept
    )])
    .await;
    s.stop().await;
}

async fn inserted_rows_are_detected(kind: Kind) {
    let Some((s, f)) = audit_workflow(kind).await else {
        return;
    };
    let hash = hash_password(b"mallory pw").expect("hash");
    s.db.exec(&format!(
        "INSERT INTO \"USER\" (USER_NAME, PASSWORD_HASH, USER_ADMIN, USER_EXPORT, USER_IMPORT, \
         CREATED_AT) VALUES ('mallory', '{hash}', 1, 1, 1, 0); \
         INSERT INTO ESCROW_SALT (ESCROW_NUMBER, SALT) VALUES ({}, '{}'); \
         INSERT INTO ESCROW_SALT (ESCROW_NUMBER, SALT) VALUES (999999, '{}')",
        f.kept,
        random_hex(64),
        random_hex(64)
    ))
    .await;
    s.db.assert_problems(&[
        "user \"mallory\" exists, but no audit row records it",
        &format!(
            "escrow entry {} is not what the audit chain last recorded",
            f.kept
        ),
        "salts of escrow entry 999999, which does not exist",
    ])
    .await;
    s.stop().await;
}

async fn flipped_admin_flag_is_detected_even_after_a_later_change(kind: Kind) {
    let Some((s, _)) = audit_workflow(kind).await else {
        return;
    };
    s.db.exec("UPDATE \"USER\" SET USER_ADMIN = 1 WHERE USER_NAME = 'alice'")
        .await;
    s.db.assert_problems(&["user \"alice\" is not what the audit chain last recorded"])
        .await;
    // A later legitimate change to the row does not launder the flip into the chain.
    let store = s.db.store().await;
    tokio::task::spawn_blocking(move || {
        store
            .set_export(
                "alice",
                true,
                &AuditEvent::new("test", "local", "user_set_rights"),
            )
            .expect("set export");
    })
    .await
    .expect("task");
    s.db.assert_problems(&[
        "user \"alice\" was changed by the server from a state the audit chain never recorded",
    ])
    .await;
    s.stop().await;
}

async fn replaced_password_hash_is_detected(kind: Kind) {
    let Some((s, _)) = audit_workflow(kind).await else {
        return;
    };
    // Put back bob's previous (genuine, once audited) hash after a password change …
    let store = s.db.store().await;
    let old = tokio::task::spawn_blocking(move || {
        let old = store.user("bob").expect("read").expect("bob").password_hash;
        let new = hash_password(b"bob new pw").expect("hash");
        store
            .set_password(
                "bob",
                &new,
                &AuditEvent::new("test", "local", "user_passwd"),
            )
            .expect("set password");
        old
    })
    .await
    .expect("task");
    assert!(s.db.verify().await.problems.is_empty());
    s.db.exec(&format!(
        "UPDATE \"USER\" SET PASSWORD_HASH = '{old}' WHERE USER_NAME = 'bob'"
    ))
    .await;
    s.db.assert_problems(&["user \"bob\" is not what the audit chain last recorded"])
        .await;
    // … or one the attacker knows the password of.
    let known = hash_password(b"mallory pw").expect("hash");
    s.db.exec(&format!(
        "UPDATE \"USER\" SET PASSWORD_HASH = '{known}' WHERE USER_NAME = 'root'"
    ))
    .await;
    s.db.assert_problems(&["user \"root\" is not what the audit chain last recorded"])
        .await;
    s.stop().await;
}

async fn deleted_deletion_request_is_detected(kind: Kind) {
    let Some((s, f)) = audit_workflow(kind).await else {
        return;
    };
    s.db.exec(&format!(
        "DELETE FROM DELETION_REQUEST WHERE REQUEST_ID = {}",
        f.pending_request
    ))
    .await;
    s.db.assert_problems(&[&format!(
        "deletion request {} is missing, but the audit chain records it",
        f.pending_request
    )])
    .await;
    s.stop().await;
}

// ---------- configuration ----------

const GOOD: &str = r#"<?xml version="1.0"?>
<TCVAULT_ESCROWD>
  <LISTEN_ADDRESS>127.0.0.1</LISTEN_ADDRESS>
  <LISTEN_PORT>8443</LISTEN_PORT>
  <TLS_CERTIFICATE>cert.pem</TLS_CERTIFICATE>
  <TLS_KEY>key.pem</TLS_KEY>
  <DATABASE_URL>sqlite:db.sqlite3</DATABASE_URL>
  <ADMIN_SUBNET_MASK>10.0.0.0/8, 192.168.1.0/24</ADMIN_SUBNET_MASK>
  <ADMIN_SUBNET_MASK>fd00::/8</ADMIN_SUBNET_MASK>
  <AUTHORITY_PUBLIC_KEY>/etc/tcvault/authority.pem</AUTHORITY_PUBLIC_KEY>
</TCVAULT_ESCROWD>
"#;

/// Many clients depositing at once go through the group commit: every deposit is acknowledged
/// with its own number, and every acknowledged one is there after a restart, with an intact
/// audit chain.
async fn concurrent_deposits_are_all_acknowledged_and_survive_a_restart(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    let users = ["ann", "ben", "cat", "dan"];
    for u in users {
        s.add_user(u, &format!("{u} pw"), false, false, false).await;
    }
    let url = s.url("/v1/deposits");
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..16 {
        // Each task its own client, so its own connections: the deposits really overlap.
        let client = s.client();
        let url = url.clone();
        let user = users[c % users.len()];
        tasks.spawn(async move {
            let mut acked = Vec::new();
            for _ in 0..15 {
                let fp = random_hex(32);
                let r = client
                    .post(&url)
                    .basic_auth(user, Some(format!("{user} pw")))
                    .json(&deposit_body(&fp, &[random_hex(64)], b"group commit"))
                    .send()
                    .await
                    .expect("deposit");
                let st = r.status();
                let v: Value = r.json().await.expect("json");
                assert_eq!(st, StatusCode::CREATED, "{v}");
                acked.push((
                    user,
                    fp,
                    v["escrow_number"].as_i64().expect("escrow number"),
                ));
            }
            acked
        });
    }
    let acked: Vec<(&str, String, i64)> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(acked.len(), 16 * 15);
    let numbers: std::collections::HashSet<i64> = acked.iter().map(|a| a.2).collect();
    assert_eq!(
        numbers.len(),
        acked.len(),
        "every deposit has its own number"
    );

    let s = s.restart().await;
    for u in users {
        let (st, v) = s.as_user(u).get("/v1/deposits").await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let stored: std::collections::HashSet<(String, i64)> = v["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| {
                (
                    e["volume_fingerprint"].as_str().expect("fp").to_owned(),
                    e["escrow_number"].as_i64().expect("number"),
                )
            })
            .collect();
        let mine: std::collections::HashSet<(String, i64)> = acked
            .iter()
            .filter(|a| a.0 == u)
            .map(|a| (a.1.clone(), a.2))
            .collect();
        assert_eq!(
            stored, mine,
            "{u}'s acknowledged deposits after the restart"
        );
    }
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop().await;
}

/// A deposit that fails after it changed its entry (the re-deposit's new packet and salt are
/// written, then its audit row is refused) is rolled back to its savepoint alone: the next
/// deposit of the batch is stored and the chain verifies (no audit row claims the rolled-back
/// change).
async fn a_deposit_failing_after_its_change_leaves_the_audit_intact(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("eve", "eve pw", false, false, false).await;
    let store = std::sync::Arc::new(s.db.store().await);
    let ev = AuditEvent::new("eve", "127.0.0.1:1", "deposit");
    let fp = random_hex(32);
    let first = vec![(new_entry("eve", &fp, r#"{"n":1}"#), ev.clone())];
    let st = store.clone();
    let r = tokio::task::spawn_blocking(move || st.deposit_batch(&first))
        .await
        .expect("batch task");
    assert!(r[0].is_ok(), "{r:?}");

    let (poison, cure) = match kind {
        Kind::Sqlite => (
            "CREATE TRIGGER poison BEFORE INSERT ON AUDIT WHEN NEW.DETAIL LIKE \
             'already in escrow; 2 salts%' BEGIN SELECT RAISE(ABORT, 'poisoned audit'); END;",
            "DROP TRIGGER poison;",
        ),
        Kind::Postgres => (
            "CREATE FUNCTION poison() RETURNS trigger AS $$ BEGIN \
               IF NEW.DETAIL LIKE 'already in escrow; 2 salts%' THEN \
               RAISE EXCEPTION 'poisoned audit'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
             CREATE TRIGGER poison BEFORE INSERT ON AUDIT FOR EACH ROW EXECUTE FUNCTION poison();",
            "DROP TRIGGER poison ON AUDIT;",
        ),
    };
    s.db.exec(poison).await;
    let mut again = new_entry("eve", &fp, r#"{"n":2}"#);
    again.salts.push(random_hex(64));
    again.packet = b"newer".to_vec();
    let batch = vec![
        (again, ev.clone()),
        (new_entry("eve", &random_hex(32), r#"{"n":3}"#), ev.clone()),
    ];
    let st = store.clone();
    let r = tokio::task::spawn_blocking(move || st.deposit_batch(&batch))
        .await
        .expect("batch task");
    assert!(
        r[0].is_err(),
        "the re-deposit's audit row is refused: {r:?}"
    );
    assert!(r[1].is_ok(), "{r:?}");
    s.db.exec(cure).await;
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

/// One deposit the database refuses (a trigger here) fails alone: the others of its batch are
/// stored with their audit rows, and the chain stays intact. Through the store (one batch for
/// sure) and through the server (whatever batches the writer makes of concurrent deposits).
async fn a_failing_deposit_does_not_fail_its_batch(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("eve", "eve pw", false, false, false).await;
    let (poison, cure) = poison_trigger(kind);
    s.db.exec(poison).await;

    let store = s.db.store().await;
    let ev = AuditEvent::new("eve", "127.0.0.1:1", "deposit");
    let (fp1, fp2) = (random_hex(32), random_hex(32));
    let batch = vec![
        (new_entry("eve", &fp1, r#"{"n":1}"#), ev.clone()),
        (
            new_entry("eve", &random_hex(32), r#"{"poison":true}"#),
            ev.clone(),
        ),
        (new_entry("eve", &fp2, r#"{"n":2}"#), ev.clone()),
        // The same volume again in the same batch: already in escrow, with the first number.
        (new_entry("eve", &fp1, r#"{"n":3}"#), ev.clone()),
    ];
    let results = tokio::task::spawn_blocking(move || store.deposit_batch(&batch))
        .await
        .expect("batch task");
    assert_eq!(results.len(), 4);
    let first = results[0].as_ref().expect("first deposit stored");
    assert!(!first.already_in_escrow);
    let err = results[1].as_ref().expect_err("the poisoned deposit fails");
    // The driver's own message sits in the error's source (PostgreSQL's Display is "db error").
    assert!(format!("{err:?}").contains("poisoned deposit"), "{err:?}");
    let third = results[2].as_ref().expect("third deposit stored");
    assert!(!third.already_in_escrow);
    let again = results[3].as_ref().expect("same volume again");
    assert!(again.already_in_escrow);
    assert_eq!(again.number, first.number);

    // Through the server: concurrent deposits, one of them poisoned.
    let client = s.client();
    let url = s.url("/v1/deposits");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            let mut body = deposit_body(&random_hex(32), &[random_hex(64)], b"p");
            if i == 7 {
                body["metadata"] = json!({"poison": true});
            }
            let r = client
                .post(url)
                .basic_auth("eve", Some("eve pw"))
                .json(&body)
                .send()
                .await
                .expect("deposit");
            (i, r.status())
        });
    }
    for (i, st) in tasks.join_all().await {
        if i == 7 {
            assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR, "the poisoned one");
        } else {
            assert_eq!(st, StatusCode::CREATED, "deposit {i}");
        }
    }
    s.db.exec(cure).await;
    let (st, v) = s.as_user("eve").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::OK);
    let entries = v["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 2 + 23, "{v}");
    assert!(
        entries
            .iter()
            .all(|e| e["metadata"].get("poison").is_none())
    );
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop().await;
}

/// Many first requests with the same credential at once (a client's first requests, many
/// clients of one user) run one Argon2id check per credential; the others share its result.
async fn concurrent_first_logins_run_argon2id_once_per_credential(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("fay", "fay pw", false, false, false).await;
    s.add_user("gus", "gus pw", false, false, false).await;
    assert_eq!(s.state.verifier.checks_run(), 0);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..24 {
        let client = s.client();
        let url = s.url("/v1/deposits");
        let user = if i % 2 == 0 { "fay" } else { "gus" };
        tasks.spawn(async move {
            client
                .get(url)
                .basic_auth(user, Some(format!("{user} pw")))
                .send()
                .await
                .expect("request")
                .status()
        });
    }
    let answers = tasks.join_all().await;
    assert!(
        answers.iter().all(|st| *st == StatusCode::OK),
        "{answers:?}"
    );
    assert_eq!(
        s.state.verifier.checks_run(),
        2,
        "one Argon2id check per credential"
    );
    // Later requests hit the cache.
    let (st, _) = s.as_user("fay").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(s.state.verifier.checks_run(), 2);
    s.stop().await;
}

/// A wrong password sent while the right one is being checked never shares that check: it is
/// refused, and the throttle counts it like any other failure.
async fn a_wrong_password_beside_the_right_one_is_refused_and_counted(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("hal", "the right one", false, false, false)
        .await;
    let desk = s.client_from(Ipv4Addr::new(127, 0, 0, 1).into());
    let elsewhere = s.client_from(Ipv4Addr::new(127, 0, 0, 7).into());
    let url = s.url("/v1/deposits");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..14 {
        // Ten right ones from the desk, four times the same wrong one from elsewhere.
        let (client, pw) = if i < 10 {
            (desk.clone(), "the right one")
        } else {
            (elsewhere.clone(), "the wrong one")
        };
        let url = url.clone();
        tasks.spawn(async move {
            let st = client
                .get(url)
                .basic_auth("hal", Some(pw))
                .send()
                .await
                .expect("request")
                .status();
            (pw, st)
        });
    }
    let answers = tasks.join_all().await;
    let right: Vec<_> = answers.iter().filter(|a| a.0 == "the right one").collect();
    let wrong: Vec<_> = answers.iter().filter(|a| a.0 == "the wrong one").collect();
    assert_eq!((right.len(), wrong.len()), (10, 4));
    assert!(right.iter().all(|a| a.1 == StatusCode::OK), "{answers:?}");
    assert!(
        wrong.iter().all(|a| a.1 == StatusCode::UNAUTHORIZED),
        "{answers:?}"
    );
    // The four were counted: the fifth failure from that address locks it (limit 5).
    let path = "/v1/deposits";
    assert_eq!(
        s.get_from([127, 0, 0, 7], "hal", "the wrong one", path)
            .await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        s.get_from([127, 0, 0, 7], "hal", "another guess", path)
            .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    s.stop().await;
}

/// 40 copies of one wrong guess at once share checks, but each is still counted before it is
/// answered: at most the limit are answered 401, the rest 429.
async fn concurrent_identical_guesses_are_counted_before_checking(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("ivy", "the real one", false, false, false).await;
    let client = s.client_from(Ipv4Addr::new(127, 0, 0, 9).into());
    let url = s.url("/v1/deposits");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..40 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move {
            client
                .get(url)
                .basic_auth("ivy", Some("the same guess"))
                .send()
                .await
                .expect("request")
                .status()
        });
    }
    let answers = tasks.join_all().await;
    let checked = answers
        .iter()
        .filter(|st| **st == StatusCode::UNAUTHORIZED)
        .count();
    let refused = answers
        .iter()
        .filter(|st| **st == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(checked + refused, 40, "{answers:?}");
    assert!(checked <= 5, "{checked} guesses were answered: {answers:?}");
    assert!(s.state.verifier.checks_run() <= 5);
    s.stop().await;
}

#[test]
fn config_parses_and_checks_networks() {
    let c = Config::parse(GOOD, Path::new("/srv/escrow/escrowd.xml")).expect("parses");
    assert_eq!(c.listen.port(), 8443);
    assert_eq!(c.database_url, "sqlite:/srv/escrow/db.sqlite3");
    assert_eq!(c.tls_key, PathBuf::from("/srv/escrow/key.pem"));
    assert_eq!(c.admin_networks.len(), 3);
    assert!(c.is_admin_network("10.9.8.7".parse().expect("ip")));
    assert!(c.is_admin_network("::ffff:192.168.1.20".parse().expect("ip")));
    assert!(c.is_admin_network("fd12::1".parse().expect("ip")));
    assert!(!c.is_admin_network("127.0.0.1".parse().expect("ip")));
    assert!(!c.is_admin_network("192.168.2.1".parse().expect("ip")));
    assert_eq!(c.throttle.max_failures, 5);
    assert_eq!(c.fetch_approval, None, "no dual control unless asked");
    let dual = GOOD.replace(
        "</TCVAULT_ESCROWD>",
        "  <FETCH_APPROVAL_SECONDS>900</FETCH_APPROVAL_SECONDS>\n</TCVAULT_ESCROWD>",
    );
    let c = Config::parse(&dual, Path::new("/srv/escrow/escrowd.xml")).expect("parses");
    assert_eq!(c.fetch_approval, Some(Duration::from_secs(900)));
    let off = dual.replace(">900<", ">0<");
    let c = Config::parse(&off, Path::new("/srv/escrow/escrowd.xml")).expect("parses");
    assert_eq!(c.fetch_approval, None);
    let bad = dual.replace(">900<", ">soon<");
    assert!(Config::parse(&bad, Path::new("x.xml")).is_err());

    assert!(
        c.self_service_recovery,
        "self-service recovery unless turned off"
    );
    let no_self = GOOD.replace(
        "</TCVAULT_ESCROWD>",
        "  <SELF_SERVICE_RECOVERY>0</SELF_SERVICE_RECOVERY>\n</TCVAULT_ESCROWD>",
    );
    let c = Config::parse(&no_self, Path::new("x.xml")).expect("parses");
    assert!(!c.self_service_recovery);
    let e = Config::parse(&no_self.replace(">0<", ">yes<"), Path::new("x.xml"))
        .expect_err("neither 0 nor 1")
        .to_string();
    assert!(
        e.contains("SELF_SERVICE_RECOVERY") && e.contains("x.xml:"),
        "{e}"
    );
}

#[test]
fn config_errors_name_the_line() {
    let p = Path::new("x.xml");
    let unknown = GOOD.replace("  <TLS_KEY>", "  <LISTEN_PROT>1</LISTEN_PROT>\n  <TLS_KEY>");
    let e = Config::parse(&unknown, p)
        .expect_err("unknown element")
        .to_string();
    assert!(e.contains("x.xml:6:") && e.contains("LISTEN_PROT"), "{e}");

    let missing = GOOD.replace("  <TLS_KEY>key.pem</TLS_KEY>\n", "");
    let e = Config::parse(&missing, p)
        .expect_err("missing element")
        .to_string();
    assert!(e.contains("TLS_KEY") && e.contains("x.xml:2:"), "{e}");

    let bad_net = GOOD.replace("fd00::/8", "fd00::/999");
    let e = Config::parse(&bad_net, p)
        .expect_err("bad network")
        .to_string();
    assert!(e.contains("x.xml:9:") && e.contains("fd00::/999"), "{e}");

    let e = Config::parse("<TCVAULT_ESCROWD><LISTEN_PORT>1</TCVAULT_ESCROWD>", p)
        .expect_err("malformed")
        .to_string();
    assert!(e.contains("not well-formed"), "{e}");

    let dup = GOOD.replace("  <TLS_KEY>", "  <LISTEN_PORT>9</LISTEN_PORT>\n  <TLS_KEY>");
    let e = Config::parse(&dup, p).expect_err("duplicate").to_string();
    assert!(e.contains("given twice") && e.contains(":6:"), "{e}");

    let throttle = GOOD.replace(
        "</TCVAULT_ESCROWD>",
        "<LOGIN_THROTTLE><MAX_FAILURES>x</MAX_FAILURES></LOGIN_THROTTLE></TCVAULT_ESCROWD>",
    );
    let e = Config::parse(&throttle, p)
        .expect_err("bad number")
        .to_string();
    assert!(e.contains("MAX_FAILURES"), "{e}");
}

/// The SQLite files used to be 0644 in a 0755 folder: any local user read the password hashes
/// and every entry. A new database is 0600; an exposed file or folder is refused at start.
#[test]
fn sqlite_files_and_folder_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = private_tempdir();
    let db = dir.path().join("escrow.sqlite3");
    let url = format!("sqlite:{}", db.display());
    drop(Store::open(&url, Path::new("/")).expect("opens"));
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&db), 0o600);
    for wal in ["-wal", "-shm"] {
        let p = PathBuf::from(format!("{}{wal}", db.display()));
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    let chmod = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    chmod(&db, 0o644);
    let e = Store::open(&url, Path::new("/"))
        .expect_err("exposed file")
        .to_string();
    assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
    chmod(&db, 0o600);
    chmod(dir.path(), 0o755);
    let e = Store::open(&url, Path::new("/"))
        .expect_err("exposed folder")
        .to_string();
    assert!(e.contains("chmod 700"), "{e}");
    chmod(dir.path(), 0o700);
    assert!(Store::open(&url, Path::new("/")).is_ok());
    // `init` makes its folder 0700.
    let conf = dir.path().join("conf");
    config::init(&conf, "localhost", 8443, None).expect("init");
    assert_eq!(mode(&conf), 0o700);
}

#[test]
fn authority_private_key_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("private.pem");
    std::fs::write(&private, &authority().2).expect("write");
    let e = config::init(&dir.path().join("conf"), "localhost", 8443, Some(&private))
        .expect_err("private key refused")
        .to_string();
    assert!(e.contains("PRIVATE key"), "{e}");
}

// ---------- the binary end to end ----------

#[test]
fn binary_init_users_serve_sigterm_and_audit_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_authority(dir.path());
    let conf_dir = dir.path().join("conf");
    let out = escrowd()
        .args([
            "init",
            conf_dir.to_str().expect("utf8"),
            "--host",
            "localhost",
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
    // Listen on a free port of the loopback interface.
    let xml = std::fs::read_to_string(&conf).expect("config");
    std::fs::write(
        &conf,
        xml.replace("<LISTEN_PORT>8443<", "<LISTEN_PORT>0<")
            .replace("<LISTEN_ADDRESS>0.0.0.0<", "<LISTEN_ADDRESS>127.0.0.1<"),
    )
    .expect("write config");
    let pwfile = dir.path().join("pw");
    std::fs::write(&pwfile, "s3cret pw\n").expect("pw file");
    let c = conf.to_str().expect("utf8");
    let out = escrowd()
        .args(["-c", c, "user", "add", "root", "--admin", "--password-file"])
        .arg(&pwfile)
        .output()
        .expect("user add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = escrowd()
        .args(["-c", c, "user", "add", "root", "--password-file"])
        .arg(&pwfile)
        .output()
        .expect("user add again");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = escrowd()
        .args(["-c", c, "user", "add", "bob", "--password-file", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("user add empty");
    assert_eq!(out.status.code(), Some(1), "empty password refused");
    let out = escrowd()
        .args(["-c", c, "user", "add", "bob", "--password-file"])
        .arg(&pwfile)
        .output()
        .expect("user add bob");
    assert!(out.status.success());
    let out = escrowd()
        .args(["-c", c, "user", "set-admin", "bob", "yes"])
        .output()
        .expect("set-admin");
    assert!(out.status.success());
    let out = escrowd()
        .args(["-c", c, "user", "set-rights", "bob", "--export", "yes"])
        .output()
        .expect("set-rights");
    assert!(out.status.success());
    let out = escrowd()
        .args(["-c", c, "user", "list"])
        .output()
        .expect("list");
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains("bob\tadmin=yes\texport=yes\timport=no\trequire-escrow=no"),
        "{list}"
    );
    assert!(list.contains("root\tadmin=yes"), "{list}");
    // `require-escrow` sets the flag (yes by default) and `no` clears it; the served account
    // says so below.
    for (args, shown) in [
        (
            &["bob"][..],
            "bob\tadmin=yes\texport=yes\timport=no\trequire-escrow=yes",
        ),
        (
            &["bob", "no"][..],
            "bob\tadmin=yes\texport=yes\timport=no\trequire-escrow=no",
        ),
        (
            &["root", "yes"][..],
            "root\tadmin=yes\texport=no\timport=no\trequire-escrow=yes",
        ),
    ] {
        let out = escrowd()
            .args(["-c", c, "user", "require-escrow"])
            .args(args)
            .output()
            .expect("require-escrow");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = escrowd()
            .args(["-c", c, "user", "list"])
            .output()
            .expect("list");
        let list = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(list.contains(shown), "{args:?}: {list}");
    }
    let out = escrowd()
        .args(["-c", c, "user", "require-escrow", "nobody"])
        .output()
        .expect("require-escrow of nobody");
    assert_eq!(out.status.code(), Some(1), "no such user");
    let out = escrowd()
        .args(["-c", c, "user", "remove", "bob"])
        .output()
        .expect("remove");
    assert!(out.status.success());
    let out = escrowd()
        .args(["-c", c, "user", "list"])
        .output()
        .expect("list");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("bob"));

    // Serve, find the port in the log, call it over TLS, stop with SIGTERM.
    let mut child = escrowd()
        .args(["-c", c, "serve"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut log = Vec::new();
    let addr: SocketAddr = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs its address");
        log.push(line.clone());
        if let Some(a) = line.split("listening on https://").nth(1) {
            break a.trim().parse().expect("address");
        }
    };
    let cert = std::fs::read(conf_dir.join("cert.pem")).expect("cert");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&cert).expect("cert"))
            .resolve("localhost", addr)
            .build()
            .expect("client");
        let r = client
            .get(format!(
                "https://localhost:{}/v1/admin/entries",
                addr.port()
            ))
            .basic_auth("root", Some("s3cret pw"))
            .send()
            .await
            .expect("search");
        assert_eq!(r.status(), StatusCode::OK);
        let r = client
            .get(format!("https://localhost:{}/v1/account", addr.port()))
            .basic_auth("root", Some("s3cret pw"))
            .send()
            .await
            .expect("account");
        assert_eq!(r.status(), StatusCode::OK);
        let account: tcvault::escrow::wire::Account = r.json().await.expect("account body");
        assert_eq!(account.user, "root");
        assert!(account.admin && account.escrow_required, "{account:?}");
        let r = client
            .get(format!("https://localhost:{}/v1/deposits", addr.port()))
            .basic_auth("root", Some("wrong"))
            .send()
            .await
            .expect("wrong pw");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    });
    // SAFETY-free signal delivery through the kill(1) utility.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "clean stop on SIGTERM: {exit:?}");
    reader.join().expect("reader");
    log.extend(rx.try_iter());
    let text = log.join("\n");
    assert!(text.contains("GET /v1/admin/entries 200"), "{text}");
    assert!(text.contains("user=root"), "{text}");
    assert!(text.contains("stopped"), "{text}");
    assert!(!text.contains("s3cret"), "no password in the log");

    let out = escrowd()
        .args(["-c", c, "audit", "verify"])
        .output()
        .expect("verify");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    let db = conf_dir.join("escrow.sqlite3");
    let conn = rusqlite::Connection::open(&db).expect("open db");
    conn.execute("UPDATE AUDIT SET PEER = '10.0.0.1' WHERE SEQ = 1", [])
        .expect("tamper");
    drop(conn);
    let out = escrowd()
        .args(["-c", c, "audit", "verify"])
        .output()
        .expect("verify");
    assert_eq!(out.status.code(), Some(3), "tampering detected");
    assert!(String::from_utf8_lossy(&out.stdout).contains("row 1"));

    // A config error names the line and exits 1.
    std::fs::write(
        &conf,
        GOOD.replace("<TLS_KEY>key.pem</TLS_KEY>", "<TLS_KEYS>k</TLS_KEYS>"),
    )
    .expect("write");
    let out = escrowd()
        .args(["-c", c, "check-config"])
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("escrowd.xml:6: unknown element <TLS_KEYS>"),
        "{err}"
    );
}

/// `init` writes a 32-byte audit key that only its owner may read (created so, never chmod-ed
/// after the fact), and a key file open to group or others is refused.
#[test]
fn audit_key_is_created_private_and_an_exposed_one_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = private_tempdir();
    let conf = dir.path().join("conf");
    let out = config::init(&conf, "localhost", 8443, None).expect("init");
    assert_eq!(out.audit_key, conf.join("audit.key"));
    let meta = std::fs::metadata(&out.audit_key).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(meta.len(), 32);
    let cfg = Config::load(&out.config).expect("config");
    assert_eq!(cfg.audit_key, out.audit_key, "the sample config names it");
    let url = format!("sqlite:{}", dir.path().join("escrow.sqlite3").display());
    assert!(Store::open_keyed(&url, Path::new("/"), &cfg.audit_key).is_ok());

    let chmod = |m: u32| {
        std::fs::set_permissions(&cfg.audit_key, std::fs::Permissions::from_mode(m)).expect("chmod")
    };
    for mode in [0o644, 0o640, 0o604] {
        chmod(mode);
        let e = Store::open_keyed(&url, Path::new("/"), &cfg.audit_key)
            .expect_err("exposed audit key")
            .to_string();
        assert!(
            e.contains(&format!("mode {mode:04o}")) && e.contains("chmod 600"),
            "{e}"
        );
    }
    chmod(0o600);
    // A key file that is not 32 bytes, or absent, is an error that names it.
    std::fs::write(&cfg.audit_key, b"short").expect("write");
    let e = AuditKey::load(&cfg.audit_key)
        .expect_err("short key")
        .to_string();
    assert!(e.contains("5 bytes long") && e.contains("audit.key"), "{e}");
    std::fs::remove_file(&cfg.audit_key).expect("rm");
    let e = AuditKey::load(&cfg.audit_key)
        .expect_err("no key")
        .to_string();
    assert!(e.contains("audit.key") && e.contains("init"), "{e}");
    // `init` never overwrites a key (nor anything else).
    let again = dir.path().join("again");
    std::fs::create_dir(&again).expect("mkdir");
    std::fs::write(again.join("audit.key"), [0u8; 32]).expect("write");
    let e = config::init(&again, "localhost", 8443, None)
        .expect_err("existing key")
        .to_string();
    assert!(e.contains("audit.key already exists"), "{e}");
}

#[test]
fn binary_audit_verify_exits_3_on_changed_tables_and_1_without_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let conf = binary_setup(dir.path());
    let db = conf.with_file_name("escrow.sqlite3");
    let audit_key = conf.with_file_name("audit.key");
    let (code, out, err) = run_escrowd(&conf, &["audit", "verify"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("intact") && out.contains("keyed from row 1"),
        "{out}"
    );
    assert!(
        out.contains("2 users/entries/deletion requests match"),
        "{out}"
    );

    // Bob made admin behind the server's back: named, exit 3.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    conn.execute(
        "UPDATE \"USER\" SET USER_ADMIN = 1 WHERE USER_NAME = 'bob'",
        [],
    )
    .expect("tamper");
    let (code, out, err) = run_escrowd(&conf, &["audit", "verify"]);
    assert_eq!(code, Some(3), "{out}{err}");
    assert!(
        out.contains("audit: user \"bob\" is not what the audit chain last recorded"),
        "{out}"
    );
    assert!(err.contains("BROKEN"), "{err}");
    // Putting the flag back restores exactly what the chain recorded.
    conn.execute(
        "UPDATE \"USER\" SET USER_ADMIN = 0 WHERE USER_NAME = 'bob'",
        [],
    )
    .expect("untamper");
    drop(conn);
    assert_eq!(run_escrowd(&conf, &["audit", "verify"]).0, Some(0));

    // A missing or exposed key is an error (1), not a broken chain; the server commands refuse too.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&audit_key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    for args in [
        &["audit", "verify"][..],
        &["user", "list"],
        &["check-config"],
    ] {
        let (code, _, err) = run_escrowd(&conf, args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(
            err.contains("mode 0644") && err.contains("chmod 600"),
            "{err}"
        );
    }
    std::fs::set_permissions(&audit_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let moved = conf.with_file_name("audit.key.moved");
    std::fs::rename(&audit_key, &moved).expect("move key");
    let (code, _, err) = run_escrowd(&conf, &["audit", "verify"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("audit key") && err.contains("audit.key"),
        "{err}"
    );

    // Another database's key: administration is refused, verify reports the chain broken.
    AuditKey::create(&audit_key).expect("another key");
    let (code, _, err) = run_escrowd(&conf, &["user", "list"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("does not verify audit row 1"), "{err}");
    let (code, out, _) = run_escrowd(&conf, &["audit", "verify"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("row 1: the row that keyed the chain does not match its MAC"),
        "{out}"
    );
    std::fs::rename(&moved, &audit_key).expect("put the key back");
    assert_eq!(run_escrowd(&conf, &["audit", "verify"]).0, Some(0));

    // Many problems (60 users added behind the server's back): the first 20 are listed, then
    // how many more there are; the summary counts them all.
    let conn = rusqlite::Connection::open(&db).expect("open db");
    for i in 0..60 {
        conn.execute(
            "INSERT INTO \"USER\" (USER_NAME, PASSWORD_HASH, CREATED_AT) VALUES (?1, 'x', 0)",
            [format!("intruder{i}")],
        )
        .expect("insert");
    }
    drop(conn);
    let (code, out, err) = run_escrowd(&conf, &["audit", "verify"]);
    assert_eq!(code, Some(3), "{out}{err}");
    let listed = out.lines().filter(|l| l.starts_with("audit: ")).count();
    assert_eq!(listed, 21, "20 problems and the count: {out}");
    assert!(out.contains("… and 40 more problems"), "{out}");
    assert!(err.contains("60 problem(s)"), "{err}");
}

#[test]
fn binary_init_listen_goes_into_the_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = write_authority(dir.path());
    for (listen, want) in [
        ("[::1]:9443", "[::1]:9443"),
        ("10.1.2.3:8080", "10.1.2.3:8080"),
    ] {
        let conf_dir = dir.path().join(random_hex(4));
        let out = escrowd()
            .arg("init")
            .arg(&conf_dir)
            .args([
                "--host",
                "escrow.example.org",
                "--listen",
                listen,
                "--authority-key",
            ])
            .arg(&key)
            .output()
            .expect("init");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let conf = conf_dir.join("escrowd.xml");
        let c = Config::load(&conf).expect("config");
        assert_eq!(c.listen, want.parse::<SocketAddr>().expect("addr"));
        let (code, out, err) = run_escrowd(&conf, &["check-config"]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains(&format!("listen {want}")), "{out}");
    }
    // Without --listen: all addresses, --port or 8443.
    let conf_dir = dir.path().join("default");
    let out = escrowd()
        .arg("init")
        .arg(&conf_dir)
        .args(["--host", "localhost", "--port", "9000"])
        .output()
        .expect("init");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Config::load(&conf_dir.join("escrowd.xml")).expect("config");
    assert_eq!(
        c.listen,
        "0.0.0.0:9000".parse::<SocketAddr>().expect("addr")
    );
    // Usage errors: both, or no port.
    for bad in [
        &["--listen", "127.0.0.1:1", "--port", "2"][..],
        &["--listen", "127.0.0.1"],
    ] {
        let out = escrowd()
            .arg("init")
            .arg(dir.path().join(random_hex(4)))
            .args(["--host", "localhost"])
            .args(bad)
            .output()
            .expect("init");
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
    }
}

/// A batch (a few multi-row statements) stores what the same deposits stored one after the
/// other store: new entries, a volume already in escrow before the batch, the same volume twice
/// in the batch (the second merges its salt and packet into the first), a salt listed twice;
/// the same outcomes, entries and audit details, and the chain verifies.
async fn a_batch_stores_what_one_deposit_after_another_would(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    let store = std::sync::Arc::new(s.db.store().await);
    let (fp_a, fp_b, fp_x) = (random_hex(32), random_hex(32), random_hex(32));
    let (s1, s2, s3) = (random_hex(64), random_hex(64), random_hex(64));
    let (x0, x1) = (random_hex(64), random_hex(64));
    let deposits = |user: &str| {
        let ev = AuditEvent::new(user, "127.0.0.1:1", "deposit");
        let mut a = new_entry(user, &fp_a, r#"{"n":1}"#);
        a.salts = vec![s1.clone()];
        let mut x = new_entry(user, &fp_x, r#"{"n":2}"#);
        x.packet = b"newer x".to_vec();
        x.salts = vec![x1.clone()];
        let mut a2 = new_entry(user, &fp_a, r#"{"n":3}"#);
        a2.salts = vec![s1.clone(), s2.clone()];
        a2.packet = b"newer a".to_vec();
        let mut b = new_entry(user, &fp_b, r#"{"n":4}"#);
        b.salts = vec![s3.clone(), s3.clone(), s1.clone()];
        vec![(a, ev.clone()), (x, ev.clone()), (a2, ev.clone()), (b, ev)]
    };
    let (alice, bob) = (deposits("alice"), deposits("bob"));
    let st = store.clone();
    let (batched, one_by_one) = tokio::task::spawn_blocking(move || {
        for user in ["alice", "bob"] {
            let ev = AuditEvent::new(user, "127.0.0.1:1", "deposit");
            let mut x = new_entry(user, &fp_x, r#"{"n":0}"#);
            x.salts = vec![x0.clone()];
            st.deposit(&x, &ev).expect("first deposit of x");
        }
        let batched: Vec<_> = st
            .deposit_batch(&alice)
            .into_iter()
            .map(|r| r.expect("batched deposit"))
            .collect();
        let one_by_one: Vec<_> = bob
            .iter()
            .map(|(e, ev)| st.deposit(e, ev).expect("single deposit"))
            .collect();
        (batched, one_by_one)
    })
    .await
    .expect("deposit task");
    let flags = |v: &[tcvault::escrow::server::store::DepositOutcome]| {
        v.iter().map(|o| o.already_in_escrow).collect::<Vec<_>>()
    };
    assert_eq!(flags(&batched), [false, true, true, false]);
    assert_eq!(flags(&batched), flags(&one_by_one));
    assert_eq!(
        batched[0].number, batched[2].number,
        "the same volume twice"
    );

    let st = store.clone();
    let entries = tokio::task::spawn_blocking(move || {
        ["alice", "bob"].map(|user| {
            let ev = AuditEvent::new("admin", "127.0.0.1:1", "fetch");
            let mut mine: Vec<_> = st
                .own_entries(user)
                .expect("entries")
                .into_iter()
                .map(|e| {
                    let (_, packet) = st.fetch(e.number, &ev).expect("fetch");
                    (e.volume_fingerprint, e.salts, e.metadata, packet)
                })
                .collect();
            mine.sort();
            mine
        })
    })
    .await
    .expect("entries task");
    assert_eq!(entries[0].len(), 3);
    assert_eq!(entries[0], entries[1], "alice's batch and bob's deposits");
    let a = entries[0].iter().find(|e| e.0 == fp_a).expect("volume a");
    let mut both = vec![s1.clone(), s2.clone()];
    both.sort();
    assert_eq!(a.1, both, "the second deposit's salt merged");
    assert_eq!(a.3, b"newer a", "and its packet");
    let b = entries[0].iter().find(|e| e.0 == fp_b).expect("volume b");
    assert_eq!(b.1.len(), 2, "a salt listed twice is stored once");

    let backend = s.db.backend();
    let details = tokio::task::spawn_blocking(move || {
        ["alice", "bob"].map(|user| {
            backend
                .read(
                    "SELECT DETAIL, ESCROW_NUMBERS = '' FROM AUDIT WHERE ACTOR = ? \
                     ORDER BY SEQ",
                    &[user.into()],
                )
                .expect("audit rows")
                .iter()
                .map(|r| col_text(r, 0).to_owned())
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("audit task");
    assert_eq!(details[0].len(), 5);
    assert_eq!(details[0], details[1]);
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop().await;
}

/// `POST /v1/session` (with the password) gives a token that later requests present instead of
/// the password, with no Argon2id check; it is the user's only, cannot open another session,
/// and ends when the password changes or the user is removed (and with the server).
async fn a_session_token_stands_for_its_user_until_the_password_changes(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    let client = s.client();
    let session = |user: &'static str, pw: &'static str| {
        let (client, url) = (client.clone(), s.url("/v1/session"));
        async move {
            let r = client
                .post(url)
                .basic_auth(user, Some(pw))
                .send()
                .await
                .expect("session request");
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let with_token = |token: String, body: Value| {
        let (client, url) = (client.clone(), s.url("/v1/deposits"));
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("deposit");
            let st = r.status();
            (st, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (st, _) = session("alice", "wrong").await;
    assert_eq!(
        st,
        StatusCode::UNAUTHORIZED,
        "no session without the password"
    );
    let (st, v) = session("alice", "alice pw").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    assert_eq!(v["user"], "alice");
    assert!(v["expires_in"].as_u64().is_some_and(|t| t > 0 && t <= 3600));
    let token = v["token"].as_str().expect("token").to_owned();
    assert_eq!(token.len(), 64);

    let fp = random_hex(32);
    let (st, v) = with_token(token.clone(), deposit_body(&fp, &[random_hex(64)], b"p")).await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let n = v["escrow_number"].as_i64().expect("number");
    // The entry is alice's: she sees it with her password too.
    let (st, v) = s.as_user("alice").get("/v1/deposits").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(v["entries"][0]["escrow_number"], n, "{v}");
    assert_eq!(v["entries"][0]["user"], "alice");
    // A token does not open another session, and a made-up one is refused.
    let r = client
        .post(s.url("/v1/session"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("session with a token");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let (st, _) = with_token(
        "0".repeat(64),
        deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // Bob's password changes: his session ends at once; alice's goes on.
    let (st, v) = session("bob", "bob pw").await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let bobs = v["token"].as_str().expect("token").to_owned();
    let (st, _) = with_token(
        bobs.clone(),
        deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED);
    let store = s.db.store().await;
    tokio::task::spawn_blocking(move || {
        let hash = hash_password(b"bob new pw").expect("hash");
        let ev = AuditEvent::new("test", "local", "user_passwd");
        store.set_password("bob", &hash, &ev).expect("set password");
    })
    .await
    .expect("password task");
    let (st, v) = with_token(
        bobs.clone(),
        deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
    )
    .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    let (st, _) = with_token(
        token.clone(),
        deposit_body(&random_hex(32), &[random_hex(64)], b"p"),
    )
    .await;
    assert_eq!(st, StatusCode::CREATED, "alice's session is hers alone");

    // A restart ends every session.
    let s = s.restart().await;
    let r = s
        .client()
        .post(s.url("/v1/deposits"))
        .bearer_auth(&token)
        .json(&deposit_body(&random_hex(32), &[random_hex(64)], b"p"))
        .send()
        .await
        .expect("deposit after restart");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    s.stop().await;
}

/// A sealed escrow packet of a fresh volume header (keys random per call), with the recovery
/// passphrase `recovery` as a recipient when given (at the least Argon2id cost, for speed).
fn real_packet(recovery: Option<&[u8]>) -> Vec<u8> {
    use tcvault::crypto::chain::ChainId;
    use tcvault::crypto::kdf::Prf;
    use tcvault::escrow::client::packet::{self, Recovery};
    use tcvault::escrow::sealed::Cost;
    use tcvault::header::kdf::Family;
    use tcvault::header::layout::Slot;
    use tcvault::header::seal::{self, Protection};
    use tcvault::header::unlock::{Candidate, Credentials, UnlockOptions, unlock};
    use tcvault::secret::Password;
    let prot = Protection::new(Family::VeraCrypt, Prf::Sha256, 1, ChainId::Aes).expect("prot");
    let h = seal::new_header(prot, 131_072, 1 << 20, false, 512).expect("header");
    let pw = Password::new(b"packet pw").expect("password");
    let creds = Credentials::new(&pw, &[], 1).expect("credentials");
    let bytes = seal::seal(&h, prot, &creds).expect("seal");
    let cand = Candidate {
        slot: Slot::Normal,
        bytes,
    };
    let u = unlock(&[cand], &creds, &UnlockOptions::default()).expect("unlock");
    // The suite's authority key is small (2048 bits: quick to make), below what deposits
    // accept; the server never looks at the key, only at the recipient list.
    let key = {
        use rsa::pkcs8::DecodePublicKey;
        rsa::PublicKey::from_public_key_pem(&authority().0).expect("authority key")
    };
    let recovery = recovery.map(|p| Recovery {
        passphrase: p,
        cost: Cost {
            m_cost: 64,
            t_cost: 1,
            p_cost: 1,
        },
    });
    packet::encrypt_to(&u, "alice", &[key], recovery)
        .expect("seal")
        .1
}

/// The recovery packet route: only the entry's owner gets it (anyone else, and a number that
/// does not exist, get the same 404); a deposit without a recovery passphrase replaces the
/// packet but keeps the recovery packet, one with a passphrase replaces both; an entry
/// deposited without one answers 409 `no_recovery`; the audit records each fetch and stays
/// intact.
async fn recovery_packets_are_their_owners_alone_and_outlive_plain_deposits(kind: Kind) {
    let Some(s) = start(kind, Options::default()).await else {
        return;
    };
    s.add_user("alice", "alice pw", false, false, false).await;
    s.add_user("bob", "bob pw", false, false, false).await;
    s.add_user("admin", "admin pw", true, false, false).await;
    let fp = random_hex(32);
    let with = real_packet(Some(b"a long recovery phrase"));
    let plain = real_packet(None);
    let (st, v) = s
        .as_user("alice")
        .post("/v1/deposits", &deposit_body(&fp, &[random_hex(64)], &with))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let n = v["escrow_number"].as_i64().expect("number");
    let (_, v) = s.as_user("alice").get("/v1/deposits").await;
    assert_eq!(v["entries"][0]["recovery"], true, "{v}");

    let own = format!("/v1/deposits/{n}/recovery");
    let packet_of = |v: &Value| {
        B64.decode(v["packet"].as_str().expect("packet"))
            .expect("b64")
    };
    let (st, v) = s.as_user("alice").get(&own).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(packet_of(&v), with);
    let (st, v) = s.as_user("bob").get(&own).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "{v}");
    let (st2, v2) = s.as_user("bob").get("/v1/deposits/999999/recovery").await;
    assert_eq!((st2, &v2["error"]), (StatusCode::NOT_FOUND, &v["error"]));
    let (st, _) = s.as_user("admin").get(&own).await;
    assert_eq!(
        st,
        StatusCode::NOT_FOUND,
        "not even an admin: it is alice's"
    );

    // A plain deposit of the same volume: already in escrow; the packet is replaced, the
    // recovery packet kept.
    let (st, v) = s
        .as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, &[random_hex(64)], &plain),
        )
        .await;
    assert_eq!(
        (st, v["already_in_escrow"].as_bool()),
        (StatusCode::OK, Some(true)),
        "{v}"
    );
    let (_, v) = s
        .as_user("admin")
        .get(&format!("/v1/admin/entries/{n}"))
        .await;
    assert_eq!(packet_of(&v), plain);
    let (_, v) = s.as_user("alice").get(&own).await;
    assert_eq!(packet_of(&v), with, "the recovery survives");
    // A deposit with a new passphrase replaces both.
    let newer = real_packet(Some(b"another recovery phrase"));
    s.as_user("alice")
        .post(
            "/v1/deposits",
            &deposit_body(&fp, &[random_hex(64)], &newer),
        )
        .await;
    let (_, v) = s.as_user("alice").get(&own).await;
    assert_eq!(packet_of(&v), newer);

    let (_, v) = s
        .as_user("bob")
        .post(
            "/v1/deposits",
            &deposit_body(&random_hex(32), &[random_hex(64)], &plain),
        )
        .await;
    let b = v["escrow_number"].as_i64().expect("number");
    let (st, v) = s
        .as_user("bob")
        .get(&format!("/v1/deposits/{b}/recovery"))
        .await;
    assert_eq!(
        (st, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("no_recovery")),
        "{v}"
    );

    let report = s.db.verify().await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    // Changing the recovery packet without the key is caught like any other column.
    s.db.exec("UPDATE ESCROW SET RECOVERY_PACKET = PACKET")
        .await;
    let report = s.db.verify().await;
    assert!(
        !report.problems.is_empty(),
        "a swapped recovery packet went unnoticed"
    );
    s.stop().await;
}

/// The number of audit rows of `event` in an SQLite server's database.
async fn audit_count(s: &TestServer, event: &str) -> i64 {
    let url = s.db.url();
    let event = event.to_owned();
    tokio::task::spawn_blocking(move || {
        let db = rusqlite::Connection::open(url.strip_prefix("sqlite:").expect("SQLite"))
            .expect("open the database");
        db.query_row(
            "SELECT COUNT(*) FROM AUDIT WHERE EVENT = ?1",
            [&event],
            |r| r.get::<_, i64>(0),
        )
        .expect("count")
    })
    .await
    .expect("count")
}

/// Polls `f` every 100 ms until it holds, for at most 30 s.
async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = std::time::Instant::now() + Duration::from_secs(30);
    while !f().await {
        assert!(std::time::Instant::now() < until, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A branch server pushes its entries to its upstream (`<UPSTREAM>`): they arrive with their
/// salts and the very packets, so a restore there finds them; a push the upstream refuses is
/// tried again later; restarts of either side lose and repeat nothing; a push sent again
/// (the branch forgot it was acknowledged) stores nothing twice. Both audits stay intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_reach_the_upstream_once_whatever_restarts() {
    let Some(hq) = start(
        Kind::Sqlite,
        Options {
            name: "hq",
            ..Options::default()
        },
    )
    .await
    else {
        panic!("an SQLite server always starts");
    };
    // The branch's account there, at first without the import right.
    hq.add_user("branch1", "branch1 pw", false, false, false)
        .await;
    hq.add_user("hqadmin", "hqadmin pw", true, false, false)
        .await;
    let dir = private_tempdir();
    let ca = dir.path().join("hq-ca.pem");
    std::fs::write(&ca, &hq.cert_pem).expect("ca");
    let pw = dir.path().join("upstream.pw");
    std::fs::write(&pw, "branch1 pw\n").expect("pw");
    let Some(branch) = start(
        Kind::Sqlite,
        Options {
            name: "branch",
            upstream: Some(config::UpstreamConfig {
                url: hq.url(""),
                ca_certificate: ca.clone(),
                user: "branch1".to_owned(),
                password_file: pw.clone(),
                interval: Duration::from_secs(1),
            }),
            ..Options::default()
        },
    )
    .await
    else {
        panic!("an SQLite server always starts");
    };
    branch
        .add_user("alice", "alice pw", false, false, false)
        .await;
    branch
        .add_user("admin", "admin pw", true, false, false)
        .await;
    let salts: Vec<String> = (0..3).map(|_| random_hex(64)).collect();
    let deposit = |i: usize| {
        deposit_body(
            &random_hex(32),
            &[salts[i].clone()],
            format!("packet {i}").as_bytes(),
        )
    };
    for i in 0..2 {
        let (st, v) = branch
            .as_user("alice")
            .post("/v1/deposits", &deposit(i))
            .await;
        assert_eq!(st, StatusCode::CREATED, "{v}");
    }
    let found = |salt: &str| {
        let path = format!("/v1/admin/entries?salt={salt}");
        let hq = &hq;
        async move {
            let (st, v) = hq.get("hqadmin", "hqadmin pw", &path).await;
            assert_eq!(st, StatusCode::OK, "{v}");
            v["entries"].as_array().map_or(0, Vec::len)
        }
    };

    // Refused (no import right): nothing arrives, and nothing is marked as pushed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(found(&salts[0]).await, 0);
    assert_eq!(audit_count(&branch, "upstream_push").await, 0);
    hq.db
        .store()
        .await
        .set_import("branch1", true, &AuditEvent::new("test", "local", "rights"))
        .expect("grant import");
    eventually("the first two entries arrive", || async {
        found(&salts[0]).await == 1 && found(&salts[1]).await == 1
    })
    .await;

    // What arrived is what the branch holds: user, salts, the packet itself.
    let (_, there) = hq
        .get(
            "hqadmin",
            "hqadmin pw",
            &format!("/v1/admin/entries?salt={}", salts[1]),
        )
        .await;
    let n_hq = there["entries"][0]["escrow_number"]
        .as_i64()
        .expect("number");
    assert_eq!(there["entries"][0]["user"], "alice");
    assert!(
        there["entries"][0]["origin"]
            .as_str()
            .unwrap_or("")
            .starts_with("import:branch#"),
        "{there}"
    );
    let (_, fetched) = hq
        .get(
            "hqadmin",
            "hqadmin pw",
            &format!("/v1/admin/entries/{n_hq}"),
        )
        .await;
    assert_eq!(
        B64.decode(fetched["packet"].as_str().expect("packet"))
            .expect("b64"),
        b"packet 1"
    );

    // Both sides restart; the third entry still arrives, the first two are not sent again.
    let pushes = audit_count(&branch, "upstream_push").await;
    let hq = hq.restart_in_place().await;
    let branch = branch.restart().await;
    let (st, _) = branch
        .as_user("alice")
        .post("/v1/deposits", &deposit(2))
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let found = |salt: &str| {
        let path = format!("/v1/admin/entries?salt={salt}");
        let hq = &hq;
        async move {
            let (_, v) = hq.get("hqadmin", "hqadmin pw", &path).await;
            v["entries"].as_array().map_or(0, Vec::len)
        }
    };
    eventually("the third entry arrives after the restarts", || async {
        found(&salts[2]).await == 1
    })
    .await;
    let (_, all) = hq
        .get("hqadmin", "hqadmin pw", "/v1/admin/entries?user=alice")
        .await;
    assert_eq!(all["entries"].as_array().map(Vec::len), Some(3), "{all}");
    assert_eq!(
        audit_count(&branch, "upstream_push").await,
        pushes + 1,
        "only the new entry"
    );

    // The branch forgets what was acknowledged (as if it died before recording it): all three
    // go again, and the upstream keeps one of each.
    branch
        .db
        .exec("UPDATE UPSTREAM_PUSH SET LAST_NUMBER = 0")
        .await;
    eventually("the repeated push is acknowledged", || async {
        audit_count(&branch, "upstream_push").await == pushes + 2
    })
    .await;
    let (_, all) = hq
        .get("hqadmin", "hqadmin pw", "/v1/admin/entries?user=alice")
        .await;
    assert_eq!(
        all["entries"].as_array().map(Vec::len),
        Some(3),
        "nothing twice: {all}"
    );
    assert!(hq.db.verify().await.problems.is_empty());
    assert!(branch.db.verify().await.problems.is_empty());
    branch.stop().await;
    hq.stop().await;
}

/// Two servers on one PostgreSQL database at once share their entries: deposits made through
/// both at the same time get distinct numbers, each server lists and fetches the other's, and
/// the one audit chain stays intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_servers_on_one_postgres_share_entries() {
    let Some(a) = start(Kind::Postgres, Options::default()).await else {
        return;
    };
    let b = a.twin().await;
    a.add_user("alice", "alice pw", false, false, false).await;
    a.add_user("admin", "admin pw", true, false, false).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..20 {
        for s in [a.url(""), b.url("")] {
            let client = a.client();
            tasks.spawn(async move {
                let r = client
                    .post(format!("{s}/v1/deposits"))
                    .basic_auth("alice", Some("alice pw"))
                    .json(&deposit_body(
                        &random_hex(32),
                        &[random_hex(64)],
                        format!("p{i}").as_bytes(),
                    ))
                    .send()
                    .await
                    .expect("deposit");
                assert_eq!(r.status(), StatusCode::CREATED);
                r.json::<Value>().await.expect("json")["escrow_number"]
                    .as_i64()
                    .expect("number")
            });
        }
    }
    let mut numbers = tasks.join_all().await;
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 40, "distinct numbers across both servers");
    for s in [&a, &b] {
        let (_, v) = s.as_user("alice").get("/v1/deposits").await;
        assert_eq!(v["entries"].as_array().map(Vec::len), Some(40), "{v}");
    }
    let (st, v) = b
        .as_user("admin")
        .get(&format!("/v1/admin/entries/{}", numbers[0]))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(a.db.verify().await.problems.is_empty());
    b.stop().await;
    a.stop().await;
}
