//! Group commit: the batcher takes every request waiting in its queue (up to the batch
//! size), decides them in one SERIALIZABLE transaction and answers each. While one batch
//! commits, the next one fills, so batches grow with load and the cost of a commit is shared.
//!
//! A batch that fails as a whole for a reason other than contention (which `run_tx` retries)
//! is split: each command is then tried in a transaction of its own, so one poisoned request
//! cannot fail its neighbours.
//!
//! The batcher is supervised: if it panics (or stops while the ledger is not shutting down)
//! it is restarted after a short backoff, `corebank_ledger_batcher_restarts_total` counts it,
//! readiness (`/readyz`, gRPC health) reports it down meanwhile, and the requests it held
//! are answered `unavailable` (retry-safe: every command carries its own id, so a retry
//! replays an entry that did commit). Requests still queued wait for the restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use corebank_db::{Db, DbError, Transaction, TxError};
use corebank_kernel::{AccountId, Clock, JournalEntryId};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, mpsc};
use tokio_util::sync::CancellationToken;

use super::{EntryView, Job, Ledger, LedgerConfig, from_tx_error};
use crate::domain::apply::{
    BatchState, Outcome, accounts_to_check, apply_batch, referenced_accounts, referenced_entries,
};
use crate::domain::command::Command;
use crate::domain::error::LedgerError;
use crate::domain::hash::partition_of;
use crate::domain::model::{Direction, EntryKind};
use crate::store::{self, StoreResult};

/// Connections the batcher's own pool keeps: one in use, one spare for a retry while the
/// broken one is replaced.
const BATCHER_CONNECTIONS: usize = 2;

/// What the ledger knows of its batcher while it runs: whether it is up, how often it was
/// restarted, and whether the ledger is shutting down (which tells a caller whose request
/// was dropped why).
#[derive(Debug)]
pub(crate) struct BatcherState {
    alive: AtomicBool,
    restarts: AtomicU64,
    /// The last record time given out, in microseconds: record times stay monotonic across
    /// restarts.
    last_recorded_micros: AtomicI64,
    shutdown: CancellationToken,
    #[cfg(feature = "fault-injection")]
    pub(crate) panic_next_batch: AtomicBool,
}

impl BatcherState {
    pub(crate) fn new(shutdown: CancellationToken) -> BatcherState {
        BatcherState {
            alive: AtomicBool::new(false),
            restarts: AtomicU64::new(0),
            last_recorded_micros: AtomicI64::new(0),
            shutdown,
            #[cfg(feature = "fault-injection")]
            panic_next_batch: AtomicBool::new(false),
        }
    }

    pub(crate) fn is_alive(&self) -> bool {
        self.alive.load(Ordering::Acquire)
    }

    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Acquire)
    }

    /// What a caller is told when the batcher dropped its request without an answer.
    pub(crate) fn dropped(&self) -> LedgerError {
        if self.shutdown.is_cancelled() {
            LedgerError::Unavailable {
                message: "the ledger is shutting down".to_owned(),
            }
        } else {
            LedgerError::Unavailable {
                message: "the ledger's batcher restarted while it held this request; \
                          retry with the same id (an entry that committed is replayed)"
                    .to_owned(),
            }
        }
    }
}

/// How the batcher runs.
pub(super) struct BatcherSetup {
    pub(super) db: Db,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) batch_size_max: usize,
    pub(super) restart_backoff: Duration,
    pub(super) state: Arc<BatcherState>,
}

/// Starts the batcher on a thread and runtime of its own, with a pool of its own, so that
/// the round trips of the write path never queue behind request handling on the shared
/// runtime. Falls back to the shared runtime if the thread cannot be started.
pub(super) fn spawn(setup: BatcherSetup, queue: mpsc::Receiver<Job>) {
    let BatcherSetup { db, .. } = &setup;
    let db = db
        .sibling(BATCHER_CONNECTIONS)
        .unwrap_or_else(|_| db.clone());
    let setup = BatcherSetup { db, ..setup };
    let started = std::thread::Builder::new()
        .name("ledger-batcher".to_owned())
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(supervise(setup, queue)),
                Err(error) => tracing::error!(%error, "the ledger batcher's runtime did not start"),
            }
        });
    if let Err(error) = started {
        tracing::error!(%error, "the ledger batcher's thread did not start");
    }
}

/// Runs the batcher, and again after each panic or unexpected stop, until shutdown; then
/// answers whatever still waits, so no caller hangs.
async fn supervise(setup: BatcherSetup, queue: mpsc::Receiver<Job>) {
    let queue = Arc::new(Mutex::new(queue));
    let state = Arc::clone(&setup.state);
    loop {
        state.alive.store(true, Ordering::Release);
        let task = tokio::spawn(run(
            setup.db.clone(),
            Arc::clone(&setup.clock),
            setup.batch_size_max,
            Arc::clone(&queue),
            Arc::clone(&state),
        ));
        let ended = task.await;
        if state.shutdown.is_cancelled() {
            break;
        }
        state.alive.store(false, Ordering::Release);
        let restarts = state.restarts.fetch_add(1, Ordering::AcqRel) + 1;
        metrics::counter!("corebank_ledger_batcher_restarts_total").increment(1);
        match ended {
            Err(error) if error.is_panic() => tracing::error!(
                batcher.restarts = restarts,
                panic = %panic_message(error.into_panic()),
                "the ledger batcher panicked: its requests in flight were answered unavailable; restarting it"
            ),
            Err(error) => tracing::error!(
                batcher.restarts = restarts,
                %error,
                "the ledger batcher was cancelled; restarting it"
            ),
            Ok(()) => tracing::error!(
                batcher.restarts = restarts,
                "the ledger batcher stopped while the ledger is not shutting down; restarting it"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(setup.restart_backoff) => {}
            () = state.shutdown.cancelled() => break,
        }
    }
    state.alive.store(false, Ordering::Release);
    let mut queue = queue.lock().await;
    queue.close();
    while let Ok(job) = queue.try_recv() {
        let _ = job.reply.send(Err(state.dropped()));
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(not a string)".to_owned()
    }
}

/// Takes batches off the queue and decides them, until shutdown (or a panic).
async fn run(
    db: Db,
    clock: Arc<dyn Clock>,
    batch_size_max: usize,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
    state: Arc<BatcherState>,
) {
    let mut queue = queue.lock().await;
    let mut last_recorded_at =
        DateTime::<Utc>::from_timestamp_micros(state.last_recorded_micros.load(Ordering::Acquire))
            .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    loop {
        let first = tokio::select! {
            job = queue.recv() => job,
            () = state.shutdown.cancelled() => None,
        };
        let Some(first) = first else { break };
        let mut jobs = Vec::with_capacity(batch_size_max.min(256));
        jobs.push(first);
        while jobs.len() < batch_size_max {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        #[cfg(feature = "fault-injection")]
        #[allow(clippy::panic, reason = "the fault this test hook exists to inject")]
        if state.panic_next_batch.swap(false, Ordering::AcqRel) {
            panic!(
                "fault injection: the ledger batcher panics with {} requests in hand",
                jobs.len()
            );
        }
        let recorded_at = next_recorded_at(clock.now(), &mut last_recorded_at, jobs.len());
        state
            .last_recorded_micros
            .store(last_recorded_at.timestamp_micros(), Ordering::Release);
        process(&db, jobs, recorded_at).await;
    }
}

/// Record times only move forward, microsecond by microsecond, even if the clock steps back.
fn next_recorded_at(now: DateTime<Utc>, last: &mut DateTime<Utc>, count: usize) -> DateTime<Utc> {
    let now_micros = DateTime::<Utc>::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now);
    let start = now_micros.max(*last + TimeDelta::microseconds(1));
    *last = start + TimeDelta::microseconds(i64::try_from(count).unwrap_or(i64::MAX));
    start
}

async fn process(db: &Db, jobs: Vec<Job>, recorded_at: DateTime<Utc>) {
    let started = Instant::now();
    let commands: Vec<Command> = jobs.iter().map(|job| job.command.clone()).collect();
    metrics::histogram!("corebank_ledger_batch_size")
        .record(f64::from(u32::try_from(commands.len()).unwrap_or(u32::MAX)));
    let commands_ref = &commands;
    let outcome = db
        .run_tx("ledger_batch", |tx| {
            Box::pin(async move { run_batch(&tx, commands_ref, recorded_at).await })
        })
        .await;
    match outcome {
        Ok(results) => {
            metrics::histogram!("corebank_ledger_batch_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(TxError::Db(DbError::OutcomeUnknown { .. })) => {
            for job in jobs {
                let _ = job.reply.send(Err(LedgerError::OutcomeUnknown));
            }
        }
        Err(error) if jobs.len() > 1 && splits(&error) => {
            tracing::warn!(
                batch.size = jobs.len(),
                error = %error,
                detail = ?error,
                "batch failed as a whole: trying each command alone"
            );
            for (index, job) in jobs.into_iter().enumerate() {
                let single =
                    recorded_at + TimeDelta::microseconds(i64::try_from(index).unwrap_or(0));
                Box::pin(process(db, vec![job], single)).await;
            }
        }
        Err(error) => {
            let error = from_tx_error(error);
            for job in jobs {
                let _ = job.reply.send(Err(error.clone()));
            }
        }
    }
}

/// Whether a failed batch should be retried command by command: a definite failure that
/// one command may have caused (a constraint, or a stored row the code could not read).
fn splits(error: &TxError<LedgerError>) -> bool {
    match error {
        TxError::Abort(_) => true,
        TxError::Db(DbError::Query(_)) => true,
        TxError::Db(
            DbError::Config { .. }
            | DbError::Unavailable { .. }
            | DbError::RetriesExhausted { .. }
            | DbError::OutcomeUnknown { .. },
        ) => false,
    }
}

/// One attempt at a batch: load what it touches, decide, write, and read back replays.
async fn run_batch(
    tx: &Transaction<'_>,
    commands: &[Command],
    recorded_at: DateTime<Utc>,
) -> StoreResult<Vec<Result<EntryView, LedgerError>>> {
    let mut state = BatchState {
        shard_pick: fastrand::u32(..),
        ..BatchState::default()
    };
    let ids: BTreeSet<JournalEntryId> = commands.iter().map(Command::id).collect();
    // Everything that can be read up front goes out at once: the ids already used, the
    // holds and entries referred to, the chain heads, the accounts named by new entries, and
    // (speculatively) the balances of the accounts they debit, which are the ones limits
    // usually guard. What only the holds or reversals reveal follows in a second round.
    let partitions: BTreeSet<u32> = ids.iter().map(|id| partition_of(*id)).collect();
    let referenced = referenced_entries(commands);
    let named: BTreeSet<AccountId> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Entry(entry) => Some(entry.legs.iter().map(|leg| leg.account_id)),
            _ => None,
        })
        .flatten()
        .collect();
    let debited: BTreeSet<AccountId> = commands
        .iter()
        .filter_map(|command| match command {
            Command::Entry(entry) => Some(
                entry
                    .legs
                    .iter()
                    .filter(|leg| leg.direction == Direction::Debit)
                    .map(|leg| leg.account_id),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let (existing, referenced, heads, accounts, balances) = tokio::join!(
        store::load_existing(tx, &ids),
        store::load_referenced(tx, &referenced),
        store::lock_heads(tx, &partitions),
        store::load_accounts(tx, &named),
        store::lock_balances(tx, &debited),
    );
    // Checked in the order the statements were sent: after a failure PostgreSQL refuses the
    // rest, so the first failure is the cause.
    state.existing = existing?;
    (state.holds, state.targets) = referenced?;
    state.heads = heads?;
    state.accounts = accounts?;
    state.checked_balances = balances?;

    let missing: BTreeSet<AccountId> = referenced_accounts(&state, commands)
        .into_iter()
        .filter(|id| !state.accounts.contains_key(id))
        .collect();
    if !missing.is_empty() {
        state
            .accounts
            .extend(store::load_accounts(tx, &missing).await?);
    }
    let unlocked: BTreeSet<AccountId> = accounts_to_check(&state, commands)
        .into_iter()
        .filter(|id| !state.checked_balances.contains_key(id) && !debited.contains(id))
        .collect();
    if !unlocked.is_empty() {
        state
            .checked_balances
            .extend(store::lock_balances(tx, &unlocked).await?);
    }

    let (outcomes, writes) = apply_batch(&mut state, commands, recorded_at);
    store::write_batch(tx, &writes).await?;

    let replayed: Vec<JournalEntryId> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Outcome::Replayed(id) => Some(*id),
            Outcome::Applied(_) | Outcome::Refused(_) => None,
        })
        .collect();
    let mut originals = if replayed.is_empty() {
        Default::default()
    } else {
        store::entries(tx, &replayed).await?
    };

    let mut results = Vec::with_capacity(outcomes.len());
    for outcome in outcomes {
        results.push(match outcome {
            Outcome::Applied(entry) => {
                let hold = (entry.kind == EntryKind::Pending)
                    .then(|| state.holds.get(&entry.id).map(|h| (h.status, h.expires_at)))
                    .flatten();
                Ok(EntryView {
                    entry: *entry,
                    hold,
                    replayed: false,
                })
            }
            Outcome::Replayed(id) => {
                let entry = match originals.remove(&id) {
                    Some(entry) => entry,
                    // The same id twice in one batch: the first is in this batch's writes.
                    None => store::entries(tx, &[id])
                        .await?
                        .remove(&id)
                        .ok_or_else(|| {
                            TxError::Abort(LedgerError::Internal {
                                message: format!("replayed entry {id} not found"),
                            })
                        })?,
                };
                let hold = if entry.kind == EntryKind::Pending {
                    store::hold(tx, id).await?
                } else {
                    None
                };
                Ok(EntryView {
                    entry,
                    hold,
                    replayed: true,
                })
            }
            Outcome::Refused(error) => Err(error),
        });
    }
    let applied = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|v| !v.replayed))
        .count();
    metrics::counter!("corebank_ledger_entries_total", "outcome" => "applied")
        .increment(u64::try_from(applied).unwrap_or(0));
    Ok(results)
}

/// The id of the entry that expires a hold: derived from the hold's id, so every replica
/// that expires the same hold writes the same entry (and all but one replay it).
pub(crate) fn expiry_id(pending_id: JournalEntryId) -> JournalEntryId {
    let digest = Sha256::digest(format!("corebank.ledger.expire:{pending_id}").as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    JournalEntryId::from_uuid(uuid).unwrap_or_else(|_| JournalEntryId::generate())
}

/// Expires holds past their timeout, every `expire_interval_ms`, through the batcher.
pub(super) async fn expire_loop(ledger: Ledger, config: LedgerConfig, shutdown: CancellationToken) {
    let interval = Duration::from_millis(config.expire_interval_ms.max(1));
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = expire_due(&ledger, config.expire_batch_max).await {
            tracing::warn!(error = %error, "hold expiry pass failed; the next pass tries again");
        }
    }
}

/// One expiry pass: how many holds it expired.
pub(crate) async fn expire_due(ledger: &Ledger, limit: i64) -> Result<usize, LedgerError> {
    let now = ledger.clock().now();
    let due = ledger
        .db
        .run_tx("ledger_due_holds", |tx| {
            Box::pin(async move { store::due_holds(&tx, now, limit).await })
        })
        .await
        .map_err(from_tx_error)?;
    if due.is_empty() {
        return Ok(0);
    }
    let commands = due
        .iter()
        .map(|pending_id| Command::ExpirePending {
            id: expiry_id(*pending_id),
            pending_id: *pending_id,
        })
        .collect();
    let results = ledger.submit_many(commands).await;
    let expired = results
        .iter()
        .filter(|r| r.as_ref().is_ok_and(|v| !v.replayed))
        .count();
    if expired > 0 {
        tracing::info!(holds.expired = expired, "expired holds");
        metrics::counter!("corebank_ledger_holds_expired_total")
            .increment(u64::try_from(expired).unwrap_or(0));
    }
    Ok(expired)
}
