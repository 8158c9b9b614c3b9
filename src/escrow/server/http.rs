//! The HTTPS listener: TLS (rustls, ring provider) in front of HTTP/1.1 connections, the TCP
//! peer address handed to the API, and a graceful stop that lets running requests finish.

use super::ldap::{Directory, DirectoryError};
use super::upstream::{Upstream, UpstreamConfig, UpstreamError};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tower::ServiceExt;

use super::api::{AppState, log_line, router};
use super::auth::{Throttle, Verifier};
use super::authority::{AuthorityKey, AuthorityKeyError};
use super::batch::DepositQueue;
use super::config::Config;
use super::store::{Store, StoreError};

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send request headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stop waits for running requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The certificate or key file is unusable.
    #[error("TLS: {path}: {message}")]
    Tls {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The authority key file is unusable.
    #[error(transparent)]
    Authority(#[from] AuthorityKeyError),
    /// The database could not be opened or migrated.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The `<LDAP>` files (CA certificate, search account password) are unusable.
    #[error("LDAP: {0}")]
    Directory(#[from] DirectoryError),
    /// The `<UPSTREAM>` files are unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

fn tls_config(cert: &Path, key: &Path) -> Result<ServerConfig, ServerError> {
    let tls_err = |path: &Path, message: String| ServerError::Tls {
        path: path.to_owned(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, format!("cannot read the certificate: {e}")))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, format!("not a PEM certificate chain: {e}")))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no CERTIFICATE block found".to_owned()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| tls_err(key, format!("no usable PEM private key: {e}")))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(key, format!("certificate and key do not fit together: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A bound, ready escrow server.
pub struct Server {
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<AppState>,
    local_addr: SocketAddr,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Loads the TLS files and the authority key, opens (and migrates) the database with the
    /// audit key (keying the audit chain on the first start with one) and binds the listen
    /// address. Port 0 picks a free port (see [`Server::local_addr`]).
    ///
    /// # Errors
    /// See [`ServerError`].
    pub async fn bind(config: Config) -> Result<Server, ServerError> {
        let tls = tls_config(&config.tls_certificate, &config.tls_key)?;
        let authority = AuthorityKey::load(&config.authority_public_key)?;
        let directory = config.ldap.as_ref().map(Directory::new).transpose()?;
        if let Some(up) = config.upstream.clone() {
            // Checked here, so that a wrong file stops the start; the pusher makes its own
            // (its blocking HTTP client lives on its own thread).
            tokio::task::spawn_blocking(move || Upstream::new(&up).map(drop))
                .await
                .map_err(|e| UpstreamError::Setup(format!("check failed: {e}")))??;
        }
        let url = config.database_url.clone();
        let audit_key = config.audit_key.clone();
        let store = tokio::task::spawn_blocking(move || {
            Store::open_keyed(&url, Path::new("."), &audit_key)
        })
        .await
        .map_err(|e| StoreError::msg(format!("database task failed: {e}")))??;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let store = Arc::new(store);
        let deposits = DepositQueue::start(store.clone())
            .map_err(|e| StoreError::msg(format!("cannot start the deposit writer: {e}")))?;
        let state = Arc::new(AppState {
            store,
            throttle: Throttle::new(config.throttle),
            authority,
            config,
            verifier: Verifier::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
            deposits,
            sessions: Default::default(),
            directory,
        });
        Ok(Server {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            state,
            local_addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// What the handlers share, for counters and caches ([`AppState::verifier`]'s checks, the
    /// deposit writer's batches) in tests and diagnostics. Holding it keeps the database open
    /// after the server stops.
    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Serves until `shutdown` completes, then stops accepting, lets running requests finish
    /// (up to 10 s) and returns.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let app = router(self.state.clone());
        let graceful = GracefulShutdown::new();
        log_line(&format!("listening on https://{}", self.local_addr));
        let pusher = self
            .state
            .config
            .upstream
            .clone()
            .map(|up| start_pusher(&self.state, up));
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                () = &mut shutdown => break,
                r = self.listener.accept() => r,
            };
            let (tcp, peer) = match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and similar: wait a little instead of spinning.
                    log_line(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = self.acceptor.clone();
            let app = app.clone();
            let watcher = graceful.watcher();
            tokio::spawn(async move {
                let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        log_line(&format!("{peer} TLS handshake failed: {e}"));
                        return;
                    }
                    Err(_) => {
                        log_line(&format!("{peer} TLS handshake timed out"));
                        return;
                    }
                };
                let service =
                    hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        app.clone().oneshot(req)
                    });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(tls), service);
                // Errors here are clients going away mid-request; nothing to do.
                let _ = watcher.watch(conn).await;
            });
        }
        drop(self.listener);
        if let Some((stop, thread)) = pusher {
            drop(stop);
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        log_line("stopping: waiting for running requests");
        if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
            .await
            .is_err()
        {
            log_line("stopping: some connections did not finish in time");
        }
        log_line("stopped");
    }
}

/// Starts the thread that pushes entries to the upstream every interval (the first push one
/// interval after the start); it stops when the returned sender is dropped, after the push
/// under way.
fn start_pusher(
    state: &Arc<AppState>,
    cfg: UpstreamConfig,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let store = state.store.clone();
    let name = state.config.server_name.clone();
    let thread = std::thread::spawn(move || {
        let up = match Upstream::new(&cfg) {
            Ok(u) => u,
            Err(e) => {
                log_line(&format!("no pushes to the upstream: {e}"));
                return;
            }
        };
        log_line(&format!(
            "pushing new entries to {} every {} s",
            up.url(),
            up.interval().as_secs()
        ));
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            stopped.recv_timeout(up.interval())
        {
            match up.push_all(&store, &name) {
                Ok(0) => {}
                Ok(n) => log_line(&format!("pushed {n} entries to {}", up.url())),
                Err(e) => log_line(&format!(
                    "push to the upstream failed (tried again later): {e}"
                )),
            }
        }
    });
    (stop, thread)
}
