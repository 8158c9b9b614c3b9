//! Load and fault check for `tcvault-escrowd` (issue 5): N concurrent clients deposit M packets
//! in total over real TLS; optionally the server is killed with SIGKILL part-way and restarted.
//! At the end every acknowledged escrow number must be in the database with the fingerprint it
//! was acknowledged for, none twice, and the audit chain must verify.
//!
//! ```sh
//! cargo build --bin tcvault-escrowd --example escrow_load
//! target/debug/examples/escrow_load --clients 100 --deposits 10000 --kill-after 3000
//! ```
//!
//! Prints throughput and p50/p90/p99 latency of acknowledged deposits.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use rsa::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// An acknowledged deposit: user, volume fingerprint, escrow number, latency.
type Acked = (String, String, i64, Duration);

struct Args {
    clients: usize,
    deposits: usize,
    kill_after: Option<usize>,
    bin: PathBuf,
}

fn parse_args() -> Result<Args, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let default_bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("tcvault-escrowd"))
        .ok_or("cannot locate tcvault-escrowd")?;
    let mut a = Args {
        clients: 100,
        deposits: 10_000,
        kill_after: None,
        bin: default_bin,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => a.clients = val()?.parse().map_err(|_| "bad --clients")?,
            "--deposits" => a.deposits = val()?.parse().map_err(|_| "bad --deposits")?,
            "--kill-after" => a.kill_after = Some(val()?.parse().map_err(|_| "bad --kill-after")?),
            "--bin" => a.bin = PathBuf::from(val()?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn start_server(bin: &Path, conf: &Path) -> Result<Child, String> {
    let mut child = Command::new(bin)
        .args(["-c"])
        .arg(conf)
        .arg("serve")
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut said = false;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if !said && line.contains("listening on") {
                let _ = tx.send(());
                said = true;
            }
            if line.contains("storage error") || line.contains("TLS handshake failed") {
                eprintln!("server: {line}");
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60))
        .map_err(|_| "server did not start".to_owned())?;
    Ok(child)
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed: {}",
            cmd,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = parse_args()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let conf_dir = dir.path().join("conf");

    let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| e.to_string())?;
    let public = key.to_public_key();
    let pem = public
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    let der = public.to_public_key_der().map_err(|e| e.to_string())?;
    let authority_fp = hex::encode(Sha256::digest(der.as_bytes()));
    let key_file = dir.path().join("authority.pem");
    std::fs::write(&key_file, pem).map_err(|e| e.to_string())?;
    run(Command::new(&args.bin)
        .arg("init")
        .arg(&conf_dir)
        .args(["--host", "localhost", "--authority-key"])
        .arg(&key_file))?;
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let conf = conf_dir.join("escrowd.xml");
    let xml = std::fs::read_to_string(&conf).map_err(|e| e.to_string())?;
    std::fs::write(
        &conf,
        xml.replace("<LISTEN_PORT>8443<", &format!("<LISTEN_PORT>{port}<"))
            .replace("<LISTEN_ADDRESS>0.0.0.0<", "<LISTEN_ADDRESS>127.0.0.1<"),
    )
    .map_err(|e| e.to_string())?;
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "load test password\n").map_err(|e| e.to_string())?;
    let users: Vec<String> = (0..10).map(|i| format!("user{i}")).collect();
    for u in &users {
        run(Command::new(&args.bin)
            .arg("-c")
            .arg(&conf)
            .args(["user", "add", u, "--password-file"])
            .arg(&pw_file))?;
    }

    let server = Arc::new(Mutex::new(start_server(&args.bin, &conf)?));
    let cert = std::fs::read(conf_dir.join("cert.pem")).map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&cert).map_err(|e| e.to_string())?)
        .resolve("localhost", addr)
        .pool_max_idle_per_host(args.clients)
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("https://localhost:{port}/v1/deposits");

    let next = Arc::new(AtomicUsize::new(0));
    let acked = Arc::new(AtomicUsize::new(0));
    let results: Arc<Mutex<Vec<Acked>>> = Arc::new(Mutex::new(Vec::with_capacity(args.deposits)));
    let retries = Arc::new(AtomicUsize::new(0));
    let killed = Arc::new(Mutex::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..args.clients {
        let (client, url, next, acked, results, retries) = (
            client.clone(),
            url.clone(),
            next.clone(),
            acked.clone(),
            results.clone(),
            retries.clone(),
        );
        let (server, killed, bin, conf) = (
            server.clone(),
            killed.clone(),
            args.bin.clone(),
            conf.clone(),
        );
        let (users, authority_fp, total, kill_after) = (
            users.clone(),
            authority_fp.clone(),
            args.deposits,
            args.kill_after,
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= total {
                    return Ok::<(), String>(());
                }
                let user = users[(c + i) % users.len()].clone();
                let mut fp = [0u8; 32];
                OsRng.fill_bytes(&mut fp);
                let fp = hex::encode(fp);
                let mut salt = [0u8; 64];
                OsRng.fill_bytes(&mut salt);
                let mut packet = vec![0u8; 1200];
                OsRng.fill_bytes(&mut packet);
                let body = json!({
                    "volume_fingerprint": fp,
                    "salts": [hex::encode(salt)],
                    "authority_fingerprint": authority_fp,
                    "metadata": {"format": "veracrypt", "n": i},
                    "packet": B64.encode(&packet),
                });
                // Retry the same deposit until acknowledged: a deposit that was stored before a
                // crash comes back as "already in escrow" with its number.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let t0 = Instant::now();
                    let r = client
                        .post(&url)
                        .basic_auth(&user, Some("load test password"))
                        .json(&body)
                        .send()
                        .await;
                    let ok = match r {
                        Ok(r) if r.status().is_success() => {
                            let v: Value = r.json().await.map_err(|e| e.to_string())?;
                            let n = v["escrow_number"].as_i64().ok_or("no number")?;
                            if let Ok(mut g) = results.lock() {
                                g.push((user.clone(), fp.clone(), n, t0.elapsed()));
                            }
                            true
                        }
                        Ok(r) => {
                            eprintln!("deposit refused: {}", r.status());
                            false
                        }
                        Err(_) => false,
                    };
                    if ok {
                        break;
                    }
                    retries.fetch_add(1, Ordering::Relaxed);
                    if attempts > 200 {
                        return Err("deposit never acknowledged".to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                let done = acked.fetch_add(1, Ordering::SeqCst) + 1;
                if Some(done) == kill_after {
                    let mut k = killed.lock().map_err(|_| "poisoned")?;
                    if !*k {
                        *k = true;
                        let mut s = server.lock().map_err(|_| "poisoned")?;
                        let _ = s.kill(); // SIGKILL
                        let _ = s.wait();
                        eprintln!(
                            "SIGKILLed the server after {done} acknowledged deposits; restarting"
                        );
                        *s = start_server(&bin, &conf)?;
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    {
        let mut s = server.lock().map_err(|_| "poisoned")?;
        let _ = Command::new("kill")
            .args(["-TERM", &s.id().to_string()])
            .status();
        let _ = s.wait();
    }

    let results = results.lock().map_err(|_| "poisoned")?;
    let mut lat: Vec<Duration> = results.iter().map(|r| r.3).collect();
    lat.sort();
    // Check the database: every acknowledged (user, fingerprint, number) is stored, none twice.
    let conn =
        rusqlite::Connection::open(conf_dir.join("escrow.sqlite3")).map_err(|e| e.to_string())?;
    let mut stmt = conn
        .prepare("SELECT ESCROW_NUMBER, USER_NAME, VOLUME_FINGERPRINT FROM ESCROW")
        .map_err(|e| e.to_string())?;
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(|e| e.to_string())?
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let stored: HashMap<i64, (String, String)> = rows
        .iter()
        .map(|(n, u, f)| (*n, (u.clone(), f.clone())))
        .collect();
    let mut missing = 0;
    let mut numbers = HashSet::new();
    let mut dup_numbers = 0;
    for (u, f, n, _) in results.iter() {
        if !numbers.insert(*n) {
            dup_numbers += 1;
        }
        if stored.get(n) != Some(&(u.clone(), f.clone())) {
            missing += 1;
        }
    }
    let fps: HashSet<&String> = rows.iter().map(|r| &r.2).collect();
    let verify = run(Command::new(&args.bin)
        .arg("-c")
        .arg(&conf)
        .args(["audit", "verify"]))?;
    println!(
        "clients={} deposits acknowledged={} stored rows={} distinct fingerprints={} \
         missing={missing} numbers acknowledged twice={dup_numbers} retries={} killed={}",
        args.clients,
        results.len(),
        rows.len(),
        fps.len(),
        retries.load(Ordering::Relaxed),
        args.kill_after.is_some()
    );
    println!(
        "elapsed {:.1} s, {:.0} deposits/s, latency p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        elapsed.as_secs_f64(),
        results.len() as f64 / elapsed.as_secs_f64(),
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.90).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0,
    );
    print!("{verify}");
    if missing > 0 || dup_numbers > 0 || rows.len() != results.len() {
        return Err("FAILED: acknowledged deposits missing or duplicated".to_owned());
    }
    println!("OK");
    Ok(())
}
