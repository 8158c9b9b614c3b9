//! Group commit of deposits.
//!
//! Every deposit used to be its own transaction, and so its own fsync, on the one SQLite
//! connection: under load the deposits queued behind each other's fsync. Here one writer thread
//! takes whatever deposits are queued when it becomes free, stores them in one transaction
//! ([`Store::deposit_batch`]: one commit, one fsync) and only then answers each of them. Nothing
//! waits for a batch to fill: a lone deposit is committed at once, and under load the batch is
//! whatever arrived during the previous commit, so the wait is at most one commit long.
//!
//! An answer is sent only after the commit returned: an acknowledged deposit is as durable as
//! the backend's commit (SQLite: WAL with `synchronous=FULL`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

use super::api::log_line;
use super::store::{AuditEvent, DepositOutcome, NewEntry, Store, StoreError};

/// The most deposits committed in one transaction (bounds how long one commit holds the
/// database, and so the wait of the deposits arriving meanwhile).
pub const MAX_BATCH: usize = 256;
/// Deposits that may wait for the writer before submitters wait to queue.
const QUEUE: usize = 4 * MAX_BATCH;

type Reply = oneshot::Sender<Result<DepositOutcome, StoreError>>;

struct Job {
    entry: NewEntry,
    event: AuditEvent,
    reply: Reply,
}

/// Counts of what the writer did, for logs and tests.
#[derive(Debug, Default)]
pub struct BatchStats {
    batches: AtomicU64,
    deposits: AtomicU64,
}

impl BatchStats {
    /// Transactions committed (or attempted) so far.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
    /// Deposits handed to those transactions.
    pub fn deposits(&self) -> u64 {
        self.deposits.load(Ordering::Relaxed)
    }
}

/// The queue in front of the deposit writer thread. Dropping it (the last clone of its sender)
/// lets the writer finish the queued deposits and stop.
#[derive(Debug)]
pub struct DepositQueue {
    jobs: mpsc::Sender<Job>,
    stats: Arc<BatchStats>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").finish_non_exhaustive()
    }
}

impl DepositQueue {
    /// Starts the writer thread over `store`.
    ///
    /// # Errors
    /// The operating system refused a new thread.
    pub fn start(store: Arc<Store>) -> std::io::Result<DepositQueue> {
        let (jobs, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(BatchStats::default());
        let counts = stats.clone();
        std::thread::Builder::new()
            .name("escrow-deposits".to_owned())
            .spawn(move || writer(&store, rx, &counts))?;
        Ok(DepositQueue { jobs, stats })
    }

    /// Stores a deposit in the next group commit and returns its outcome once that commit is
    /// done.
    ///
    /// # Errors
    /// The store's error for this deposit, or for the whole transaction; an error when the
    /// writer has stopped.
    pub async fn deposit(
        &self,
        entry: NewEntry,
        event: AuditEvent,
    ) -> Result<DepositOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job {
                entry,
                event,
                reply,
            })
            .await
            .map_err(|_| StoreError::msg("the deposit writer has stopped"))?;
        answer
            .await
            .map_err(|_| StoreError::msg("the deposit writer stopped before answering"))?
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> Arc<BatchStats> {
        self.stats.clone()
    }
}

fn writer(store: &Store, mut rx: mpsc::Receiver<Job>, stats: &BatchStats) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut replies: Vec<Reply> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next {
            batch.push((job.entry, job.event));
            replies.push(job.reply);
            next = if batch.len() < MAX_BATCH {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        stats.batches.fetch_add(1, Ordering::Relaxed);
        stats
            .deposits
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // A panic in the store must not stop every later deposit: its batch's requesters see
        // their answers dropped (an internal error), and the writer goes on.
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.deposit_batch(&batch)))
        {
            Ok(results) => {
                for (reply, result) in replies.drain(..).zip(results) {
                    // A requester that went away (client disconnected) needs no answer.
                    let _ = reply.send(result);
                }
            }
            Err(_) => log_line("storage error: the deposit writer panicked; its batch failed"),
        }
        replies.clear();
        batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::escrow::server::store::UserRecord;

    fn entry(user: &str, n: usize) -> NewEntry {
        NewEntry {
            user: user.to_owned(),
            volume_fingerprint: format!("{n:032x}"),
            salts: vec![format!("{n:0128x}")],
            authority_fingerprint: "ab".repeat(32),
            metadata: "{}".to_owned(),
            packet: vec![1, 2, 3],
            recovery: false,
            created_at: None,
            origin: "local".to_owned(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queued_deposits_are_all_answered_after_their_commit() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod");
        let url = format!("sqlite:{}", dir.path().join("e.sqlite3").display());
        let key = super::super::store::AuditKey::generate().expect("audit key");
        let store = Arc::new(
            Store::open(&url, dir.path())
                .and_then(|s| s.with_audit_key(key))
                .expect("store"),
        );
        store
            .add_user(
                &UserRecord {
                    name: "u".to_owned(),
                    password_hash: "x".to_owned(),
                    admin: false,
                    export: false,
                    import: false,
                    escrow_required: false,
                },
                &AuditEvent::new("test", "local", "user_add"),
            )
            .expect("user");
        let queue = Arc::new(DepositQueue::start(store.clone()).expect("writer"));
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..64 {
            let queue = queue.clone();
            tasks.spawn(async move {
                let ev = AuditEvent::new("u", "127.0.0.1:1", "deposit");
                queue.deposit(entry("u", n % 48), ev).await
            });
        }
        let outcomes: Vec<DepositOutcome> = tasks
            .join_all()
            .await
            .into_iter()
            .map(|r| r.expect("stored"))
            .collect();
        // 48 volumes, 16 of them twice: 48 numbers, 16 answers "already in escrow".
        let numbers: std::collections::HashSet<i64> = outcomes.iter().map(|o| o.number).collect();
        assert_eq!(numbers.len(), 48);
        assert_eq!(outcomes.iter().filter(|o| o.already_in_escrow).count(), 16);
        let stats = queue.stats();
        assert_eq!(stats.deposits(), 64);
        assert!((1..=64).contains(&stats.batches()));
        let own = store.own_entries("u").expect("entries");
        assert_eq!(own.len(), 48);
        assert!(store.verify_audit().expect("verify").problems.is_empty());
    }
}
