//! The executor: claims due sagas under a lease with a fencing generation, and drives each
//! one step after another until it completes, compensates, pauses or has to wait.
//!
//! Every change it writes names the generation it holds (`save_fenced`): once another
//! executor (or an operator) has taken the saga over, the old holder's writes change nothing
//! and it stops. A database action runs inside the same transaction as that fenced write, so
//! its effect and the saga's progress commit together, exactly once. An attempt never runs
//! longer than its timeout, and the lease is renewed to outlast it, so two executors never
//! run the same step at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use corebank_db::{Db, Transaction, TxError};
use serde_json::Value;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, oneshot};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::definition::{Registry, StepOutcome};
use crate::store::{self, SagaInstance, Status, StoreResult};
use crate::{SagaError, from_tx_error};

mod step;

/// How an executor runs.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Who holds the leases: unique per executor (host, process, a random part).
    pub owner: String,
    /// How long a claim lasts without renewal; an executor that dies is replaced after this.
    pub lease: Duration,
    /// How often to look for due sagas when nothing wakes the executor.
    pub poll_interval: Duration,
    /// Sagas driven at once.
    pub max_in_flight: usize,
    /// Sagas claimed per claim transaction.
    pub claim_batch: i64,
}

impl ExecutorConfig {
    /// Defaults with a fresh owner name.
    pub fn new() -> ExecutorConfig {
        ExecutorConfig {
            owner: default_owner(),
            lease: Duration::from_secs(15),
            poll_interval: Duration::from_millis(250),
            max_in_flight: 128,
            claim_batch: 32,
        }
    }
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig::new()
    }
}

/// `<host>:<pid>:<random>`.
pub fn default_owner() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    let random = Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
}

/// A saga to start.
#[derive(Debug, Clone)]
pub struct NewSaga {
    /// The idempotency key of the start: starting the same id again finds the first.
    pub id: Uuid,
    pub saga_type: String,
    pub input: Value,
    /// What operators look the saga up by (a payment id, say).
    pub business_key: String,
}

/// What a start did.
#[derive(Debug, Clone, PartialEq)]
pub enum Started {
    New(SagaInstance),
    /// The id was started before with the same type and input: that saga, as it is now.
    Existing(SagaInstance),
}

impl Started {
    pub fn instance(&self) -> &SagaInstance {
        match self {
            Started::New(instance) | Started::Existing(instance) => instance,
        }
    }
}

/// Starts a saga inside the caller's transaction, so the caller's own changes and the saga
/// commit together. Idempotent by saga id. The saga is due at once: call
/// [`Executor::nudge`] after the commit to have a local executor pick it up without waiting.
pub async fn start(
    tx: &Transaction<'_>,
    registry: &Registry,
    new: &NewSaga,
) -> StoreResult<Started> {
    start_leased(tx, registry, new, None, None).await
}

/// Starts a saga that takes over work another one began, in the caller's transaction: the
/// saga's steps before `from_step` count as done, with `outputs` (by step name) as their
/// outputs, and the executor goes on from `from_step`. For a saga that hands each of its
/// items over to a saga of its own when the item cannot go on with the others (the account
/// migration's chunk of moves hands one account over to the move of that one account at the
/// step it got to). Starting the same id again finds the first, as [`start`] does.
pub async fn adopt(
    tx: &Transaction<'_>,
    registry: &Registry,
    new: &NewSaga,
    from_step: usize,
    outputs: BTreeMap<String, Value>,
) -> StoreResult<Started> {
    start_leased(tx, registry, new, None, Some((from_step, outputs))).await
}

async fn start_leased(
    tx: &Transaction<'_>,
    registry: &Registry,
    new: &NewSaga,
    lease: Option<(&str, DateTime<Utc>)>,
    taken_over: Option<(usize, BTreeMap<String, Value>)>,
) -> StoreResult<Started> {
    let definition = registry.latest(&new.saga_type).ok_or_else(|| {
        TxError::Abort(SagaError::UnknownType {
            saga_type: new.saga_type.clone(),
        })
    })?;
    let now = Utc::now();
    let (current_step, outputs) = taken_over.unwrap_or_default();
    if current_step > definition.steps.len() {
        return Err(TxError::Abort(SagaError::InvalidArgument {
            field: "from_step",
            message: format!(
                "a {} saga has {} steps: it cannot go on from step {current_step}",
                definition.name,
                definition.steps.len()
            ),
        }));
    }
    let instance = SagaInstance {
        id: new.id,
        saga_type: definition.name.clone(),
        version: definition.version,
        status: Status::Running,
        input: new.input.clone(),
        outputs,
        current_step,
        attempts: 0,
        awaiting_query: false,
        next_attempt_at: now,
        lease_owner: lease.map(|(owner, _)| owner.to_owned()).unwrap_or_default(),
        lease_expires_at: lease.map(|(_, until)| until),
        generation: i64::from(lease.is_some()),
        revision: 0,
        business_key: new.business_key.clone(),
        failure: String::new(),
        paused_reason: String::new(),
        paused_from: None,
        deadline_at: definition
            .deadline
            .and_then(|d| TimeDelta::from_std(d).ok())
            .map(|d| now + d),
        created_at: now,
        updated_at: now,
    };
    match store::insert(tx, &instance).await? {
        None => {
            metrics::counter!("corebank_saga_started_total", "saga_type" => instance.saga_type.clone())
                .increment(1);
            Ok(Started::New(instance))
        }
        Some(existing) => {
            let field = if existing.saga_type != instance.saga_type {
                Some("saga_type")
            } else if existing.input != instance.input {
                Some("input")
            } else if existing.business_key != instance.business_key {
                Some("business_key")
            } else {
                None
            };
            match field {
                Some(field) => Err(TxError::Abort(SagaError::ExistsWithDifferent {
                    id: new.id.to_string(),
                    field,
                })),
                None => Ok(Started::Existing(existing)),
            }
        }
    }
}

/// Whoever waits for sagas to end: several executors in one process may share one.
#[derive(Debug, Default)]
pub struct Watchers {
    waiting: Mutex<HashMap<Uuid, oneshot::Sender<Status>>>,
}

impl Watchers {
    pub fn new() -> Arc<Watchers> {
        Arc::new(Watchers::default())
    }

    /// Resolves when this executor (or another sharing these watchers) sees the saga end
    /// (completed, compensated) or pause. Register before starting the saga.
    pub fn watch(&self, id: Uuid) -> oneshot::Receiver<Status> {
        let (sender, receiver) = oneshot::channel();
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(id, sender);
        }
        receiver
    }

    /// Stops waiting for the saga (a waiter that gave up), so that nothing is kept for it.
    pub fn forget(&self, id: Uuid) {
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.remove(&id);
        }
    }

    fn settled(&self, id: Uuid, status: Status) {
        let sender = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(sender) = sender {
            let _ = sender.send(status);
        }
    }
}

/// A saga executor. Cheap to clone; several may run against one schema, in one process or
/// many.
#[derive(Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    registry: Arc<Registry>,
    config: ExecutorConfig,
    wake: Notify,
    permits: Arc<Semaphore>,
    backlog: std::sync::atomic::AtomicBool,
    watchers: Arc<Watchers>,
    types: Vec<String>,
    /// Cancelled when the executor stops: every saga being driven stops with it.
    stop: CancellationToken,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("owner", &self.inner.config.owner)
            .finish_non_exhaustive()
    }
}

/// How an attempt ended, for the drive loop.
enum Next {
    /// Saved; keep going with this state.
    Continue(Box<SagaInstance>),
    /// Saved and released until `next_attempt_at`.
    Wait(DateTime<Utc>),
    /// Done with it: terminal, paused, or no longer ours.
    Stop,
}

/// Why a step's transaction was rolled back on purpose.
#[derive(Debug)]
enum Interrupt {
    LostLease,
    Store(SagaError),
    Outcome(StepOutcome),
}

impl Executor {
    pub fn new(db: Db, registry: Arc<Registry>, config: ExecutorConfig) -> Executor {
        Executor::with_watchers(db, registry, config, Watchers::new())
    }

    /// An executor that reports settled sagas to shared `watchers`.
    pub fn with_watchers(
        db: Db,
        registry: Arc<Registry>,
        config: ExecutorConfig,
        watchers: Arc<Watchers>,
    ) -> Executor {
        let types = registry_types(&registry);
        Executor {
            inner: Arc::new(Inner {
                db,
                permits: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
                registry,
                config,
                wake: Notify::new(),
                backlog: std::sync::atomic::AtomicBool::new(false),
                watchers,
                types,
                stop: CancellationToken::new(),
            }),
        }
    }

    pub fn owner(&self) -> &str {
        &self.inner.config.owner
    }

    pub fn watchers(&self) -> &Arc<Watchers> {
        &self.inner.watchers
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.inner.registry
    }

    /// Look for due sagas now rather than at the next poll.
    pub fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// Starts a saga in a transaction of its own and, when this executor has room, begins
    /// driving it at once under its own lease (no claim round trip).
    pub async fn start(&self, new: NewSaga) -> Result<Started, SagaError> {
        let permit = Arc::clone(&self.inner.permits).try_acquire_owned().ok();
        let owner = self.inner.config.owner.clone();
        let lease_until = Utc::now() + lease_delta(self.inner.config.lease);
        let leased = permit.is_some();
        let registry = Arc::clone(&self.inner.registry);
        let new_ref = &new;
        let owner_ref = owner.as_str();
        let started = self
            .inner
            .db
            .run_tx("saga_start", |tx| {
                let registry = Arc::clone(&registry);
                Box::pin(async move {
                    let lease = leased.then_some((owner_ref, lease_until));
                    start_leased(&tx, &registry, new_ref, lease, None).await
                })
            })
            .await
            .map_err(from_tx_error)?;
        match (&started, permit) {
            (Started::New(instance), Some(permit)) => {
                let executor = self.clone();
                let instance = instance.clone();
                let stop = self.inner.stop.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        () = executor.drive(instance, permit) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
            (Started::New(_), None) => self.nudge(),
            (Started::Existing(_), _) => {}
        }
        Ok(started)
    }

    /// Runs the claim loop until `shutdown`. Sagas being driven then stop where they are,
    /// as a crash would stop them: an attempt in flight is cut (a database step rolls back),
    /// and their leases lapse so that any replica resumes them.
    pub fn spawn(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let executor = self.clone();
        let stop = self.inner.stop.clone();
        tokio::spawn(async move {
            shutdown.cancelled().await;
            stop.cancel();
        });
        let shutdown = self.inner.stop.clone();
        tokio::spawn(async move { executor.claim_loop(shutdown).await })
    }

    async fn claim_loop(&self, shutdown: CancellationToken) {
        tracing::info!(owner = %self.inner.config.owner, "saga executor started");
        let inner = &self.inner;
        loop {
            tokio::select! {
                () = inner.wake.notified() => {}
                () = tokio::time::sleep(inner.config.poll_interval) => {}
                () = shutdown.cancelled() => break,
            }
            loop {
                let room = inner.permits.available_permits();
                if room == 0 {
                    inner
                        .backlog
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    break;
                }
                let limit = i64::try_from(room)
                    .unwrap_or(i64::MAX)
                    .min(inner.config.claim_batch);
                let claimed = match self.claim(limit).await {
                    Ok(claimed) => claimed,
                    Err(error) => {
                        tracing::warn!(%error, "claiming due sagas failed; trying again at the next poll");
                        break;
                    }
                };
                let full = i64::try_from(claimed.len()).unwrap_or(i64::MAX) >= limit;
                inner
                    .backlog
                    .store(full, std::sync::atomic::Ordering::Relaxed);
                for instance in claimed {
                    let Ok(permit) = Arc::clone(&inner.permits).acquire_owned().await else {
                        return;
                    };
                    let executor = self.clone();
                    let stop = shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            () = executor.drive(instance, permit) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
                if !full {
                    break;
                }
            }
        }
        tracing::info!(owner = %self.inner.config.owner, "saga executor stopped");
    }

    async fn claim(&self, limit: i64) -> Result<Vec<SagaInstance>, SagaError> {
        let owner = self.inner.config.owner.as_str();
        let lease = lease_delta(self.inner.config.lease);
        let types = &self.inner.types;
        self.inner
            .db
            .run_tx("saga_claim", |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    store::claim(&tx, owner, now, now + lease, limit, types).await
                })
            })
            .await
            .map_err(from_tx_error)
    }

    /// Drives one saga it holds the lease of, until it ends, pauses, waits or is lost.
    async fn drive(&self, mut instance: SagaInstance, permit: OwnedSemaphorePermit) {
        let Some(definition) = self
            .inner
            .registry
            .get(&instance.saga_type, instance.version)
        else {
            let reason = format!(
                "this executor does not know version {} of saga type {}",
                instance.version, instance.saga_type
            );
            tracing::warn!(saga.id = %instance.id, %reason, "handing the saga back");
            let mut released = instance.clone();
            released.next_attempt_at = Utc::now() + lease_delta(self.inner.config.lease);
            release(&mut released);
            let _ = self.save(&released, None).await;
            return;
        };
        loop {
            let next = self.step_once(&definition, instance).await;
            match next {
                Next::Continue(state) => instance = *state,
                Next::Wait(at) => {
                    let executor = self.clone();
                    let pause = (at - Utc::now()).to_std().unwrap_or_default();
                    tokio::spawn(async move {
                        tokio::time::sleep(pause).await;
                        executor.nudge();
                    });
                    break;
                }
                Next::Stop => break,
            }
        }
        drop(permit);
        if self
            .inner
            .backlog
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            self.nudge();
        }
    }
}

fn release(instance: &mut SagaInstance) {
    instance.lease_owner.clear();
    instance.lease_expires_at = None;
}

fn lease_delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

fn registry_types(registry: &Registry) -> Vec<String> {
    registry.names()
}

/// Kept here for callers that found it under the executor.
pub use crate::gauges::spawn_status_gauges;
