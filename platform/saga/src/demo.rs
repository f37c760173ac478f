//! The demo saga, `demo.transfer`: moves an amount between two accounts of the `demo` schema
//! in three steps, on real rows, so the orchestrator can be tested, crashed and benchmarked
//! end to end.
//!
//! 1. `reserve` (database step): takes the amount off the source account; undone by
//!    `release`. Refused (a business failure) when the balance is short.
//! 2. `notify` (an outside call, or a database step when `remote_notify` is off): records
//!    the transfer on the "remote" side, by idempotency key; undone by `retract`. Its query
//!    tells whether a call whose answer was lost took effect.
//! 3. `settle` (database step, the pivot): credits the destination account. Refused when the
//!    account does not exist, which unwinds steps 2 and 1.
//!
//! Every effect is keyed by the step's idempotency key, so an action run twice applies once.
//! The input may name a step at which to inject a business failure (`fail_at`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use corebank_db::{Db, DbError, Transaction};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::definition::{
    Action, QueryOutcome, Registry, RetryPolicy, SagaDefinition, Step, StepContext, StepOutcome,
};
use crate::executor::{Executor, ExecutorConfig, NewSaga};
use crate::{SagaError, Status};

/// The demo saga's type name.
pub const SAGA_TYPE: &str = "demo.transfer";

/// How the demo saga is put together.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Step 2 as an outside call (its own connection, a call log, a query) rather than a
    /// database step.
    pub remote_notify: bool,
    /// How long the outside call takes.
    pub call_delay: Duration,
    /// Run every action twice in a row (idempotency check).
    pub actions_twice: bool,
    /// Run every compensation twice in a row.
    pub compensations_twice: bool,
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

impl Default for DemoOptions {
    fn default() -> Self {
        DemoOptions {
            remote_notify: true,
            call_delay: Duration::ZERO,
            actions_twice: false,
            compensations_twice: false,
            retry: RetryPolicy {
                attempts: 10,
                initial_backoff: Duration::from_millis(20),
                max_backoff: Duration::from_millis(500),
                jitter: 0.2,
            },
            timeout: Duration::from_secs(5),
        }
    }
}

/// The input of one demo transfer.
pub fn input(from: &str, to: &str, amount: i64, fail_at: Option<&str>) -> Value {
    json!({ "from": from, "to": to, "amount": amount, "fail_at": fail_at })
}

/// Opens (or resets) a demo account.
pub async fn open_account(db: &Db, id: &str, balance: i64) -> Result<(), DbError> {
    let client = db.client().await?;
    client
        .execute(
            "INSERT INTO demo_accounts (id, balance) VALUES ($1, $2) \
             ON CONFLICT (id) DO UPDATE SET balance = excluded.balance",
            &[&id, &balance],
        )
        .await?;
    Ok(())
}

/// A demo account's balance (None when it does not exist).
pub async fn balance(db: &Db, id: &str) -> Result<Option<i64>, DbError> {
    let client = db.client().await?;
    Ok(client
        .query_opt("SELECT balance FROM demo_accounts WHERE id = $1", &[&id])
        .await?
        .map(|row| row.get(0)))
}

struct Transfer {
    from: String,
    to: String,
    amount: i64,
    fail_at: Option<String>,
}

fn transfer_of(context: &StepContext) -> Result<Transfer, StepOutcome> {
    let text = |field: &str| {
        context
            .input
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (Some(from), Some(to), Some(amount)) = (
        text("from"),
        text("to"),
        context.input.get("amount").and_then(Value::as_i64),
    ) else {
        return Err(StepOutcome::Failed(
            "the input needs from, to and amount".to_owned(),
        ));
    };
    Ok(Transfer {
        from,
        to,
        amount,
        fail_at: text("fail_at"),
    })
}

/// Records an effect under the context's key: false when it was recorded before.
async fn record_effect(tx: &Transaction<'_>, context: &StepContext) -> Result<bool, DbError> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO demo_effects (key, saga_id, step, direction, owner, generation, applied_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (key) DO NOTHING",
        )
        .await?;
    let inserted = tx
        .execute(
            &statement,
            &[
                &context.idempotency_key,
                &context.saga_id,
                &context.step_name,
                &context.direction.as_str(),
                &context.owner,
                &context.generation,
                &Utc::now(),
            ],
        )
        .await?;
    Ok(inserted == 1)
}

async fn adjust(
    tx: &Transaction<'_>,
    account: &str,
    delta: i64,
    require_funds: bool,
) -> Result<bool, DbError> {
    let statement = tx
        .prepare_cached(
            "UPDATE demo_accounts SET balance = balance + $2 WHERE id = $1 AND ($3 = false OR balance + $2 >= 0)",
        )
        .await?;
    Ok(tx
        .execute(&statement, &[&account, &delta, &require_funds])
        .await?
        == 1)
}

/// The demo's database steps; each runs in the orchestrator's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DbStep {
    Reserve,
    Release,
    Notify,
    Retract,
    Settle,
}

impl DbStep {
    /// The step's name where the input may inject a business failure into it.
    fn failure_point(self) -> Option<&'static str> {
        match self {
            DbStep::Reserve => Some("reserve"),
            DbStep::Notify => Some("notify"),
            DbStep::Settle => Some("settle"),
            DbStep::Release | DbStep::Retract => None,
        }
    }

    async fn run(
        self,
        tx: &Transaction<'_>,
        context: &StepContext,
    ) -> Result<StepOutcome, DbError> {
        // Retracting needs only the key of the call it undoes, not the transfer.
        if self == DbStep::Retract {
            return retract_in_tx(tx, context).await;
        }
        let transfer = match transfer_of(context) {
            Ok(transfer) => transfer,
            Err(outcome) => return Ok(outcome),
        };
        if let Some(point) = self.failure_point()
            && transfer.fail_at.as_deref() == Some(point)
        {
            return Ok(StepOutcome::Failed(format!("injected failure at {point}")));
        }
        match self {
            DbStep::Reserve => Ok(outcome(
                adjust_once(tx, context, &transfer.from, -transfer.amount, true).await?,
                json!({ "reserved": transfer.amount }),
                || format!("account {} cannot give {}", transfer.from, transfer.amount),
            )),
            DbStep::Release => {
                adjust_once(tx, context, &transfer.from, transfer.amount, false).await?;
                Ok(StepOutcome::Done(json!({ "released": transfer.amount })))
            }
            DbStep::Notify => notify_in_tx(tx, context).await,
            DbStep::Retract => retract_in_tx(tx, context).await,
            DbStep::Settle => Ok(outcome(
                adjust_once(tx, context, &transfer.to, transfer.amount, false).await?,
                json!({ "settled": transfer.amount }),
                || format!("account {} does not exist", transfer.to),
            )),
        }
    }
}

/// Applies `delta` to `account` once per idempotency key: false when the account refused it
/// (short of funds, or missing). A repeated run finds the effect recorded and changes nothing.
async fn adjust_once(
    tx: &Transaction<'_>,
    context: &StepContext,
    account: &str,
    delta: i64,
    require_funds: bool,
) -> Result<bool, DbError> {
    Ok(!record_effect(tx, context).await? || adjust(tx, account, delta, require_funds).await?)
}

/// Done with `output` when the step's effect applied, otherwise a business failure.
fn outcome(applied: bool, output: Value, refusal: impl FnOnce() -> String) -> StepOutcome {
    if applied {
        StepOutcome::Done(output)
    } else {
        StepOutcome::Failed(refusal())
    }
}

async fn notify_in_tx(tx: &Transaction<'_>, context: &StepContext) -> Result<StepOutcome, DbError> {
    if record_effect(tx, context).await? {
        let statement = tx
            .prepare_cached(
                "INSERT INTO demo_calls (key, saga_id, received_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .await?;
        tx.execute(
            &statement,
            &[&context.idempotency_key, &context.saga_id, &Utc::now()],
        )
        .await?;
    }
    Ok(StepOutcome::Done(json!({ "notified": true })))
}

async fn retract_in_tx(
    tx: &Transaction<'_>,
    context: &StepContext,
) -> Result<StepOutcome, DbError> {
    if record_effect(tx, context).await? {
        let key = StepContext::key_for(context.saga_id, &context.step_name, crate::Direction::Do);
        tx.execute("DELETE FROM demo_calls WHERE key = $1", &[&key])
            .await?;
    }
    Ok(StepOutcome::Done(json!({ "retracted": true })))
}

/// The outside call: a connection and transaction of its own, like a peer service would
/// have, logging when it ran and deduplicating by key.
async fn remote_call(
    db: Db,
    context: StepContext,
    delay: Duration,
    undo: bool,
) -> Result<StepOutcome, DbError> {
    let started_at = Utc::now();
    let fail = transfer_of(&context)
        .ok()
        .and_then(|t| t.fail_at)
        .is_some_and(|step| step == "notify");
    if fail && !undo {
        return Ok(StepOutcome::Failed("injected failure at notify".to_owned()));
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let context = &context;
    db.run_tx("demo_remote_call", |tx| {
        Box::pin(async move {
            let do_key =
                StepContext::key_for(context.saga_id, &context.step_name, crate::Direction::Do);
            if undo {
                tx.execute("DELETE FROM demo_calls WHERE key = $1", &[&do_key])
                    .await?;
            } else {
                tx.execute(
                    "INSERT INTO demo_calls (key, saga_id, received_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO NOTHING",
                    &[&do_key, &context.saga_id, &Utc::now()],
                )
                .await?;
            }
            tx.execute(
                "INSERT INTO demo_call_log (id, key, owner, generation, started_at, ended_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &Uuid::new_v4(),
                    &context.idempotency_key,
                    &context.owner,
                    &context.generation,
                    &started_at,
                    &Utc::now(),
                ],
            )
            .await?;
            Ok::<_, corebank_db::TxError<DbError>>(())
        })
    })
    .await
    .map_err(|error| match error {
        corebank_db::TxError::Db(error) | corebank_db::TxError::Abort(error) => error,
    })?;
    Ok(StepOutcome::Done(
        json!({ if undo { "retracted" } else { "notified" }: true }),
    ))
}

/// A database action, run twice in the same transaction when `twice` (the second run must
/// find the first's effect and answer the same).
fn db_action(step: DbStep, twice: bool) -> Action {
    Action::db(move |tx, context| {
        Box::pin(async move {
            let first = step.run(tx, context).await?;
            if !twice || !matches!(first, StepOutcome::Done(_)) {
                return Ok(first);
            }
            let second = step.run(tx, context).await?;
            if second == first {
                Ok(second)
            } else {
                Ok(StepOutcome::Failed(format!(
                    "the second run answered {second:?}, the first {first:?}"
                )))
            }
        })
    })
}

fn call_action(db: &Db, delay: Duration, undo: bool, twice: bool) -> Action {
    let db = db.clone();
    Action::call(move |context| {
        let db = db.clone();
        Box::pin(async move {
            let runs = if twice { 2 } else { 1 };
            let mut last = StepOutcome::Transient("not run".to_owned());
            for _ in 0..runs {
                last = match remote_call(db.clone(), context.clone(), delay, undo).await {
                    Ok(outcome) => outcome,
                    Err(error) => StepOutcome::Unknown(format!("the call failed: {error}")),
                };
                if !matches!(last, StepOutcome::Done(_)) {
                    break;
                }
            }
            last
        })
    })
}

fn notify_query(db: &Db) -> crate::definition::QueryFn {
    let db = db.clone();
    Arc::new(move |context: StepContext| {
        let db = db.clone();
        Box::pin(async move {
            let client = match db.client().await {
                Ok(client) => client,
                Err(error) => return QueryOutcome::Unknown(error.to_string()),
            };
            match client
                .query_opt(
                    "SELECT 1 FROM demo_calls WHERE key = $1",
                    &[&context.idempotency_key],
                )
                .await
            {
                Ok(Some(_)) => QueryOutcome::Applied(json!({ "notified": true })),
                Ok(None) => QueryOutcome::NotApplied,
                Err(error) => QueryOutcome::Unknown(error.to_string()),
            }
        })
    })
}

/// The demo saga's definition (version 1). `db` is the demo schema's pool, used by the
/// outside call.
pub fn definition(db: &Db, options: &DemoOptions) -> SagaDefinition {
    let twice = options.actions_twice;
    let undo_twice = options.compensations_twice;
    let notify = if options.remote_notify {
        Step::new("notify", call_action(db, options.call_delay, false, twice))
            .compensate_with(call_action(db, options.call_delay, true, undo_twice))
            .query_with(notify_query(db))
    } else {
        Step::new("notify", db_action(DbStep::Notify, twice))
            .compensate_with(db_action(DbStep::Retract, undo_twice))
    };
    let steps = vec![
        Step::new("reserve", db_action(DbStep::Reserve, twice))
            .compensate_with(db_action(DbStep::Release, undo_twice)),
        notify,
        Step::new("settle", db_action(DbStep::Settle, twice)).pivot(),
    ];
    SagaDefinition::new(
        SAGA_TYPE,
        1,
        steps
            .into_iter()
            .map(|step| step.retry(options.retry).timeout(options.timeout))
            .collect(),
    )
}

/// The saga type [`peer_executor`] registers [`peer_saga`] as.
pub const PEER_SAGA_TYPE: &str = "test.peer";

/// How often [`peer_executor`] looks for due sagas: often, so tests do not wait.
const PEER_POLL_INTERVAL_MS: u64 = 20;

/// The fixture of tests of operator actions: an executor over `db` that runs [`peer_saga`]
/// (as [`PEER_SAGA_TYPE`], failing while `peer_down` is set), and its registry. Not spawned.
pub fn peer_executor(
    db: &Db,
    peer_down: &Arc<AtomicBool>,
) -> Result<(Executor, Arc<Registry>), SagaError> {
    let mut registry = Registry::new();
    registry.register(peer_saga(PEER_SAGA_TYPE, Arc::clone(peer_down)))?;
    let registry = Arc::new(registry);
    let config = ExecutorConfig {
        poll_interval: Duration::from_millis(PEER_POLL_INTERVAL_MS),
        ..ExecutorConfig::new()
    };
    let executor = Executor::new(db.clone(), Arc::clone(&registry), config);
    Ok((executor, registry))
}

/// Starts a [`PEER_SAGA_TYPE`] saga on `executor` for `business_key` (or else for its own
/// id) and waits until it settles: its id and the status it settled in, `paused` while the
/// peer is down.
pub async fn settle_peer_saga(
    executor: &Executor,
    business_key: Option<&str>,
) -> Result<(Uuid, Status), SagaError> {
    let id = Uuid::new_v4();
    let settled = executor.watchers().watch(id);
    executor
        .start(NewSaga {
            id,
            saga_type: PEER_SAGA_TYPE.to_owned(),
            input: json!({ "payment": 1 }),
            business_key: business_key.map_or_else(|| id.to_string(), str::to_owned),
        })
        .await?;
    let status = settled.await.map_err(|_| SagaError::Internal {
        message: format!("the executor stopped before saga {id} settled"),
    })?;
    Ok((id, status))
}

/// A one-step saga of `saga_type` for tests of operator actions: its step, `call_peer`,
/// answers transient ("peer unreachable") while `peer_down` is set and done once it is
/// cleared. Two quick attempts, so a saga started while the peer is down soon pauses.
pub fn peer_saga(saga_type: &str, peer_down: Arc<AtomicBool>) -> SagaDefinition {
    let step = Step::new(
        "call_peer",
        Action::call(move |_| {
            let down = Arc::clone(&peer_down);
            Box::pin(async move {
                if down.load(Ordering::SeqCst) {
                    StepOutcome::Transient("peer unreachable".to_owned())
                } else {
                    StepOutcome::Done(json!({ "ok": true }))
                }
            })
        }),
    )
    .retry(RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
        jitter: 0.0,
    });
    SagaDefinition::new(saga_type, 1, vec![step])
}
