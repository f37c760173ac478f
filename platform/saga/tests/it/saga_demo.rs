//! The saga orchestrator against a real PostgreSQL, on the demo saga whose steps write real
//! rows: the four tests every saga type gets (success; every action twice; a failure at each
//! step unwinds; the unwinding twice), then unknown outcomes, retries and pausing, the pivot,
//! idempotent starts inside the caller's transaction, fencing, deadlines and operator actions.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use corebank_db::{Db, TxError};
use corebank_saga::demo::{self, DemoOptions};
use corebank_saga::ops::{self, Actor, Resolution, SagaDetail};
use corebank_saga::{
    Action, Executor, ExecutorConfig, NewSaga, QueryOutcome, Registry, RetryPolicy, SagaDefinition,
    SagaError, Started, Status, Step, StepOutcome,
};
use corebank_testkit::TestDatabase;
use serde_json::json;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Harness {
    _database: TestDatabase,
    db: Db,
    executor: Executor,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn fast_config() -> ExecutorConfig {
    ExecutorConfig {
        lease: Duration::from_secs(5),
        poll_interval: Duration::from_millis(20),
        ..ExecutorConfig::new()
    }
}

async fn harness_with(build: impl FnOnce(&Db) -> Vec<SagaDefinition>) -> Harness {
    let database = TestDatabase::create().await;
    let db = database.db_for("demo");
    let mut registry = Registry::new();
    for definition in build(&db) {
        registry.register(definition).unwrap();
    }
    let executor = Executor::new(db.clone(), Arc::new(registry), fast_config());
    let shutdown = CancellationToken::new();
    executor.spawn(shutdown.clone());
    Harness {
        _database: database,
        db,
        executor,
        shutdown,
    }
}

/// The demo saga with the default options, as `change` adjusts them.
async fn demo_harness(change: impl FnOnce(&mut DemoOptions)) -> Harness {
    let mut options = DemoOptions::default();
    change(&mut options);
    harness_with(|db| vec![demo::definition(db, &options)]).await
}

fn actor() -> Actor {
    Actor {
        who: "operator-7".to_owned(),
        why: "ticket OPS-42".to_owned(),
    }
}

async fn accounts(h: &Harness) -> (String, String) {
    let suffix = Uuid::new_v4().simple().to_string();
    let (from, to) = (format!("from-{suffix}"), format!("to-{suffix}"));
    demo::open_account(&h.db, &from, 1_000).await.unwrap();
    demo::open_account(&h.db, &to, 0).await.unwrap();
    (from, to)
}

/// Starts the saga `id`.
async fn start(
    h: &Harness,
    id: Uuid,
    saga_type: &str,
    input: serde_json::Value,
    business_key: String,
) {
    h.executor
        .start(NewSaga {
            id,
            saga_type: saga_type.to_owned(),
            input,
            business_key,
        })
        .await
        .unwrap();
}

/// Nudges the executor and waits at most 10 s for the saga that `settled` watches to settle.
async fn nudged_until_settled(h: &Harness, settled: oneshot::Receiver<Status>) -> Status {
    h.executor.nudge();
    tokio::time::timeout(Duration::from_secs(10), settled)
        .await
        .unwrap()
        .unwrap()
}

/// Starts a saga and waits for it to settle (completed, compensated or paused).
async fn run(h: &Harness, saga_type: &str, input: serde_json::Value) -> (Uuid, Status) {
    let id = Uuid::new_v4();
    let settled = h.executor.watchers().watch(id);
    start(h, id, saga_type, input, format!("key-{id}")).await;
    let status = tokio::time::timeout(Duration::from_secs(20), settled)
        .await
        .expect("the saga settles within 20 s")
        .unwrap();
    (id, status)
}

/// Polls the saga `id` every 20 ms until `reached` holds, for at most 10 s (then fails with
/// `failure`); answers the detail that reached it.
async fn detail_once(
    h: &Harness,
    id: Uuid,
    failure: &str,
    reached: impl Fn(&SagaDetail) -> bool,
) -> SagaDetail {
    let started = std::time::Instant::now();
    loop {
        let detail = ops::get(&h.db, id).await.unwrap();
        if reached(&detail) {
            return detail;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a saga of `saga_type` with an empty input and checks it settles as `expected`.
async fn settled_as(h: &Harness, saga_type: &str, expected: Status) -> Uuid {
    let (id, status) = run(h, saga_type, json!({})).await;
    assert_eq!(status, expected, "{saga_type}");
    id
}

/// A counter shared with a step, and the step's copy of it.
fn counter_and_copy(initial: u32) -> (Arc<AtomicU32>, Arc<AtomicU32>) {
    let counter = Arc::new(AtomicU32::new(initial));
    let copy = Arc::clone(&counter);
    (counter, copy)
}

/// Three attempts, backing off from `initial_backoff_ms` up to `max_backoff_ms`.
fn three_attempts(initial_backoff_ms: u64, max_backoff_ms: u64, jitter: f64) -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        initial_backoff: Duration::from_millis(initial_backoff_ms),
        max_backoff: Duration::from_millis(max_backoff_ms),
        jitter,
    }
}

async fn count(db: &Db, sql: &str, id: Uuid) -> i64 {
    corebank_testkit::query::one_i64(db, sql, &[&id]).await
}

async fn effects(db: &Db, id: Uuid) -> Vec<(String, String)> {
    corebank_testkit::query::pairs(
        db,
        "SELECT step, direction FROM demo_effects WHERE saga_id = $1 ORDER BY applied_at",
        &[&id],
    )
    .await
}

/// The outside calls recorded for the saga `id` (by key: applied ones only).
async fn calls_recorded(h: &Harness, id: Uuid) -> i64 {
    count(
        &h.db,
        "SELECT count(*) FROM demo_calls WHERE saga_id = $1",
        id,
    )
    .await
}

async fn balances(h: &Harness, from: &str, to: &str) -> (i64, i64) {
    (
        demo::balance(&h.db, from).await.unwrap().unwrap(),
        demo::balance(&h.db, to).await.unwrap().unwrap(),
    )
}

async fn assert_completed_once(h: &Harness, id: Uuid, from: &str, to: &str) {
    assert_eq!(balances(h, from, to).await, (900, 100));
    // The database steps record their effects; the outside call records its own.
    let applied: Vec<String> = effects(&h.db, id)
        .await
        .into_iter()
        .map(|(step, direction)| {
            assert_eq!(direction, "do");
            step
        })
        .filter(|step| step != "notify")
        .collect();
    assert_eq!(applied, ["reserve", "settle"]);
    assert_eq!(calls_recorded(h, id).await, 1);
    let detail = ops::get(&h.db, id).await.unwrap();
    assert_eq!(detail.instance.status, Status::Completed);
    assert_eq!(detail.instance.current_step, 3);
    assert_eq!(detail.instance.lease_owner, "");
    let done: Vec<&str> = detail.steps.iter().map(|s| s.step_name.as_str()).collect();
    assert_eq!(done, ["reserve", "notify", "settle"]);
    assert!(detail.steps.iter().all(|s| s.outcome == "done"));
}

async fn assert_unwound(h: &Harness, id: Uuid, from: &str, to: &str) {
    assert_eq!(
        balances(h, from, to).await,
        (1_000, 0),
        "money back where it was"
    );
    assert_eq!(
        calls_recorded(h, id).await,
        0,
        "the outside call was retracted"
    );
    let detail = ops::get(&h.db, id).await.unwrap();
    assert_eq!(detail.instance.status, Status::Compensated);
    assert!(
        detail.instance.failure.contains("failed"),
        "{}",
        detail.instance.failure
    );
}

/// A demo transfer of 100 between two new accounts runs to completion, each step once;
/// answers the saga and the accounts.
async fn transfer_completes_once(h: &Harness) -> (Uuid, String, String) {
    let (from, to) = accounts(h).await;
    let (id, status) = run(h, demo::SAGA_TYPE, demo::input(&from, &to, 100, None)).await;
    assert_eq!(status, Status::Completed);
    assert_completed_once(h, id, &from, &to).await;
    (id, from, to)
}

/// A demo transfer of 100 between two new accounts that fails at `step` is compensated
/// and leaves nothing behind; answers the saga.
async fn transfer_unwinds(h: &Harness, step: &str) -> Uuid {
    let (from, to) = accounts(h).await;
    let (id, status) = run(h, demo::SAGA_TYPE, demo::input(&from, &to, 100, Some(step))).await;
    assert_eq!(status, Status::Compensated, "failure at {step}");
    assert_unwound(h, id, &from, &to).await;
    id
}

#[tokio::test]
async fn a_saga_runs_every_step_once_and_completes() {
    let h = demo_harness(|_| {}).await;
    transfer_completes_once(&h).await;
}

#[tokio::test]
async fn every_action_run_twice_gives_the_same_result() {
    let h = demo_harness(|options| options.actions_twice = true).await;
    let (id, _, _) = transfer_completes_once(&h).await;
    // The outside call really ran twice (two log rows per key) and applied once.
    assert_eq!(
        count(
            &h.db,
            "SELECT count(*) FROM demo_call_log l JOIN demo_calls c ON c.key = l.key WHERE c.saga_id = $1",
            id
        )
        .await,
        2
    );
}

#[tokio::test]
async fn a_failure_injected_at_each_step_unwinds_to_a_clean_state() {
    let h = demo_harness(|_| {}).await;
    for step in ["reserve", "notify", "settle"] {
        let id = transfer_unwinds(&h, step).await;
        let undone: Vec<(String, String)> = effects(&h.db, id)
            .await
            .into_iter()
            .filter(|(_, direction)| direction == "undo")
            .collect();
        let expected: Vec<(String, String)> = match step {
            "reserve" => vec![],
            // notify failed before its effect: only reserve is undone.
            "notify" => vec![("reserve".to_owned(), "undo".to_owned())],
            // Undone in reverse order: notify (an outside call, not in demo_effects), then
            // reserve.
            _ => vec![("reserve".to_owned(), "undo".to_owned())],
        };
        assert_eq!(undone, expected, "failure at {step}");
        let detail = ops::get(&h.db, id).await.unwrap();
        let undo_order: Vec<&str> = detail
            .steps
            .iter()
            .filter(|s| s.direction == "undo")
            .map(|s| s.step_name.as_str())
            .collect();
        let expected_order: &[&str] = match step {
            "reserve" => &[],
            "notify" => &["reserve"],
            _ => &["notify", "reserve"],
        };
        assert_eq!(undo_order, expected_order, "failure at {step}");
    }
}

#[tokio::test]
async fn the_unwinding_run_twice_leaves_the_same_clean_state() {
    let h = demo_harness(|options| options.compensations_twice = true).await;
    for step in ["notify", "settle"] {
        transfer_unwinds(&h, step).await;
    }
}

#[tokio::test]
async fn a_business_refusal_compensates_and_the_database_steps_variant_behaves_the_same() {
    let h = demo_harness(|options| options.remote_notify = false).await;
    let (_, from, to) = transfer_completes_once(&h).await;
    // Too much: reserve refuses, nothing to undo.
    let (id, status) = run(&h, demo::SAGA_TYPE, demo::input(&from, &to, 5_000, None)).await;
    assert_eq!(status, Status::Compensated);
    assert!(
        ops::get(&h.db, id)
            .await
            .unwrap()
            .instance
            .failure
            .contains("cannot give")
    );
    // Unknown destination: settle refuses, notify and reserve are undone.
    let (id, status) = run(&h, demo::SAGA_TYPE, demo::input(&from, "nobody", 100, None)).await;
    assert_eq!(status, Status::Compensated);
    assert_eq!(demo::balance(&h.db, &from).await.unwrap(), Some(900));
    assert_eq!(calls_recorded(&h, id).await, 0);
}

/// A one-step saga whose call applies its effect but loses the answer the first time.
fn lost_answer_saga(db: &Db, with_query: bool, calls: Arc<AtomicU32>) -> SagaDefinition {
    let db_for_call = db.clone();
    let action = Action::call(move |context| {
        let db = db_for_call.clone();
        let calls = Arc::clone(&calls);
        Box::pin(async move {
            let client = db.client().await.unwrap();
            client
                .execute(
                    "INSERT INTO demo_calls (key, saga_id, received_at) VALUES ($1, $2, now()) \
                     ON CONFLICT (key) DO NOTHING",
                    &[&context.idempotency_key, &context.saga_id],
                )
                .await
                .unwrap();
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                StepOutcome::Unknown("the answer was lost".to_owned())
            } else {
                StepOutcome::Done(json!({ "second": true }))
            }
        })
    });
    let mut step = Step::new("call", action).retry(three_attempts(10, 10, 0.0));
    if with_query {
        let db = db.clone();
        step = step.query_with(Arc::new(move |context| {
            let db = db.clone();
            Box::pin(async move {
                let client = db.client().await.unwrap();
                match client
                    .query_opt(
                        "SELECT 1 FROM demo_calls WHERE key = $1",
                        &[&context.idempotency_key],
                    )
                    .await
                    .unwrap()
                {
                    Some(_) => QueryOutcome::Applied(json!({ "found": true })),
                    None => QueryOutcome::NotApplied,
                }
            })
        }));
    }
    SagaDefinition::new("test.lost_answer", 1, vec![step])
}

/// Runs the lost-answer saga to completion; answers how often its call ran.
async fn lost_answer_completes(with_query: bool) -> (Harness, Uuid, u32) {
    let (calls, counter) = counter_and_copy(0);
    let h = harness_with(move |db| vec![lost_answer_saga(db, with_query, counter)]).await;
    let id = settled_as(&h, "test.lost_answer", Status::Completed).await;
    let calls = calls.load(Ordering::SeqCst);
    (h, id, calls)
}

#[tokio::test]
async fn an_unknown_outcome_is_settled_by_the_query_before_anything_is_retried() {
    let (h, id, calls) = lost_answer_completes(true).await;
    assert_eq!(calls, 1, "the query, not a second call");
    let detail = ops::get(&h.db, id).await.unwrap();
    let outcomes: Vec<(&str, &str)> = detail
        .steps
        .iter()
        .map(|s| (s.direction.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, [("do", "unknown"), ("query", "applied")]);
    assert_eq!(detail.instance.outputs["call"], json!({ "found": true }));
}

#[tokio::test]
async fn without_a_query_an_unknown_outcome_is_retried_with_the_same_key() {
    let (h, id, calls) = lost_answer_completes(false).await;
    assert_eq!(calls, 2);
    assert_eq!(
        calls_recorded(&h, id).await,
        1,
        "the same key both times: one effect"
    );
}

/// A step whose action answers done at once, and whose compensation answers `undone`.
fn done_step(name: &str, undone: serde_json::Value) -> Step {
    Step::new(
        name,
        Action::call(|_| Box::pin(async { StepOutcome::Done(json!({})) })),
    )
    .compensate_with(Action::call(move |_| {
        let undone = undone.clone();
        Box::pin(async move { StepOutcome::Done(undone) })
    }))
}

/// A one-step saga whose action answers transient while `failing` is set.
fn flaky_saga(failing: Arc<AtomicU32>, pivot_then_fail: bool) -> SagaDefinition {
    let policy = three_attempts(5, 20, 0.5);
    let flaky = Step::new(
        "flaky",
        Action::call(move |_| {
            let failing = Arc::clone(&failing);
            Box::pin(async move {
                if failing.load(Ordering::SeqCst) > 0 {
                    StepOutcome::Transient("peer busy".to_owned())
                } else {
                    StepOutcome::Done(json!({}))
                }
            })
        }),
    )
    .retry(policy);
    if !pivot_then_fail {
        return SagaDefinition::new("test.flaky", 1, vec![flaky]);
    }
    let done = |name: &str| done_step(name, json!({}));
    let refuse = Step::new(
        "after_pivot",
        Action::call(|_| Box::pin(async { StepOutcome::Failed("refused".to_owned()) })),
    );
    SagaDefinition::new(
        "test.pivot",
        1,
        vec![done("before"), done("pivot").pivot(), refuse],
    )
}

#[tokio::test]
async fn retries_run_out_into_a_paused_saga_that_an_operator_resumes() {
    let (failing, flag) = counter_and_copy(1);
    let h = harness_with(move |_| vec![flaky_saga(flag, false)]).await;
    let id = settled_as(&h, "test.flaky", Status::Paused).await;
    let detail = ops::get(&h.db, id).await.unwrap();
    assert_eq!(detail.steps.len(), 3, "three attempts");
    assert!(detail.steps.iter().all(|s| s.outcome == "transient"));
    assert!(
        detail
            .instance
            .paused_reason
            .contains("gave up after 3 attempts"),
        "{}",
        detail.instance.paused_reason
    );
    assert_eq!(detail.instance.paused_from, Some(Status::Running));

    // Refusals name what is wrong and change nothing.
    let no_reason = Actor {
        who: "operator-7".to_owned(),
        why: " ".to_owned(),
    };
    assert_eq!(
        ops::resume(&h.db, id, &no_reason).await.unwrap_err().code(),
        "invalid_argument"
    );
    assert_eq!(
        ops::retry_now(&h.db, id, &actor())
            .await
            .unwrap_err()
            .code(),
        "invalid_saga_state"
    );
    assert_eq!(
        ops::resume(&h.db, Uuid::new_v4(), &actor())
            .await
            .unwrap_err()
            .code(),
        "saga_not_found"
    );

    failing.store(0, Ordering::SeqCst);
    let settled = h.executor.watchers().watch(id);
    let resumed = ops::resume(&h.db, id, &actor()).await.unwrap();
    assert_eq!(resumed.status, Status::Running);
    let status = nudged_until_settled(&h, settled).await;
    assert_eq!(status, Status::Completed);
    let detail = ops::get(&h.db, id).await.unwrap();
    assert_eq!(detail.operator_actions.len(), 1);
    let action = &detail.operator_actions[0];
    assert_eq!(
        (
            action.action.as_str(),
            action.actor.as_str(),
            action.reason.as_str(),
            action.status_before.as_str(),
            action.status_after.as_str()
        ),
        ("resume", "operator-7", "ticket OPS-42", "paused", "running")
    );
}

#[tokio::test]
async fn after_the_pivot_only_forward_recovery_is_possible() {
    let h = harness_with(|_| vec![flaky_saga(Arc::new(AtomicU32::new(0)), true)]).await;
    // A failure past the pivot pauses.
    let id = settled_as(&h, "test.pivot", Status::Paused).await;
    let detail = ops::get(&h.db, id).await.unwrap();
    assert!(detail.instance.paused_reason.contains("after the pivot"));
    assert!(detail.steps.iter().all(|s| s.direction == "do"));
    let refused = ops::force_compensate(&h.db, h.executor.registry(), id, &actor())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "past_pivot");
    let resolved = ops::mark_resolved(&h.db, id, Resolution::Completed, &actor())
        .await
        .unwrap();
    assert_eq!(resolved.status, Status::Completed);
    assert_eq!(ops::get(&h.db, id).await.unwrap().operator_actions.len(), 1);
}

/// Starts `new` in a transaction of the caller's that first writes a row of its own
/// (`caller-row`), then commits, or rolls back when `commit` is false.
async fn start_with_a_row_of_the_callers(
    h: &Harness,
    new: &NewSaga,
    commit: bool,
) -> Result<Started, TxError<SagaError>> {
    let registry = Arc::clone(h.executor.registry());
    h.db.run_tx("test_caller", |tx| {
        let registry = Arc::clone(&registry);
        Box::pin(async move {
            tx.execute(
                "INSERT INTO demo_accounts (id, balance) VALUES ('caller-row', 1)",
                &[],
            )
            .await?;
            let started = corebank_saga::start(&tx, &registry, new).await?;
            if !commit {
                return Err(TxError::Abort(SagaError::Internal {
                    message: "the caller changed its mind".to_owned(),
                }));
            }
            Ok(started)
        })
    })
    .await
}

#[tokio::test]
async fn starting_is_idempotent_and_commits_with_the_callers_own_changes() {
    let h = demo_harness(|_| {}).await;
    let (from, to) = accounts(&h).await;
    let new = NewSaga {
        id: Uuid::new_v4(),
        saga_type: demo::SAGA_TYPE.to_owned(),
        input: demo::input(&from, &to, 100, None),
        business_key: "payment-1".to_owned(),
    };

    // Rolled back with the caller's transaction: neither the caller's row nor the saga.
    let rolled_back = start_with_a_row_of_the_callers(&h, &new, false).await;
    assert!(
        matches!(rolled_back, Err(TxError::Abort(SagaError::Internal { .. }))),
        "{rolled_back:?}"
    );
    assert_eq!(demo::balance(&h.db, "caller-row").await.unwrap(), None);
    assert!(ops::get(&h.db, new.id).await.is_err());

    // Committed with it: both, and the executor runs the saga once nudged.
    let settled = h.executor.watchers().watch(new.id);
    let started = start_with_a_row_of_the_callers(&h, &new, true)
        .await
        .unwrap();
    assert!(matches!(started, Started::New(_)));
    assert_eq!(nudged_until_settled(&h, settled).await, Status::Completed);
    assert_eq!(demo::balance(&h.db, "caller-row").await.unwrap(), Some(1));

    // The same id again: the existing saga; with other content: refused, naming the field.
    let again = h.executor.start(new.clone()).await.unwrap();
    match again {
        Started::Existing(instance) => assert_eq!(instance.status, Status::Completed),
        Started::New(_) => panic!("started twice"),
    }
    let mut different = new.clone();
    different.input = demo::input(&from, &to, 101, None);
    match h.executor.start(different).await.unwrap_err() {
        SagaError::ExistsWithDifferent { field, .. } => assert_eq!(field, "input"),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(balances(&h, &from, &to).await, (900, 100));

    let listed = ops::list(
        &h.db,
        corebank_saga::store::ListFilter {
            business_key: Some("payment-1".to_owned()),
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, new.id);
}

#[tokio::test]
async fn an_executor_that_lost_its_lease_changes_nothing_more() {
    // A step that waits until released, so the saga can be taken over mid-step.
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let entered = Arc::new(tokio::sync::Notify::new());
    let (gate_in, entered_in) = (Arc::clone(&gate), Arc::clone(&entered));
    let slow = Step::new(
        "slow",
        Action::call(move |context| {
            let gate = Arc::clone(&gate_in);
            let entered = Arc::clone(&entered_in);
            Box::pin(async move {
                if context.attempt == 1 {
                    entered.notify_one();
                    let _ = gate.acquire().await;
                }
                StepOutcome::Done(json!({ "generation": context.generation }))
            })
        }),
    )
    .timeout(Duration::from_secs(10));
    let h = harness_with(move |_| vec![SagaDefinition::new("test.slow", 1, vec![slow])]).await;
    let id = Uuid::new_v4();
    start(&h, id, "test.slow", json!({}), String::new()).await;
    entered.notified().await;
    let held = ops::get(&h.db, id).await.unwrap().instance;

    // While an executor runs a step, operators cannot pull the saga from under it.
    let refused = ops::retry_now(&h.db, id, &actor()).await.unwrap_err();
    assert_eq!(refused.code(), "invalid_saga_state");
    assert!(
        refused.to_string().contains("is running a step"),
        "{refused}"
    );
    let refused = ops::force_compensate(&h.db, h.executor.registry(), id, &actor())
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_saga_state");

    // Another executor takes the saga over, as it would once the lease had lapsed: a new
    // generation, the attempt counted.
    h.db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE saga_instances SET generation = generation + 1, lease_owner = 'other', \
             lease_expires_at = now() - interval '1 second', attempts = 1, revision = revision + 1 \
             WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap();
    // The old attempt now finishes: its success must change nothing. The saga is then
    // claimed again (the other executor "died") and completes under a newer generation.
    gate.add_permits(10);
    let done = detail_once(&h, id, "the saga did not complete", |detail| {
        detail.instance.status == Status::Completed
    })
    .await;
    let done_rows: Vec<_> = done.steps.iter().filter(|s| s.outcome == "done").collect();
    assert_eq!(
        done_rows.len(),
        1,
        "the fenced-out success left no history row"
    );
    assert!(done_rows[0].generation > held.generation + 1);
    assert_eq!(
        done.instance.outputs["slow"],
        json!({ "generation": done_rows[0].generation })
    );
}

#[tokio::test]
async fn a_database_step_rerun_from_a_stale_read_does_not_apply_twice() {
    // The step's earlier attempt "committed meanwhile" (done here on another connection:
    // its effect and the saga's progress); the rerun in hand must roll back whole.
    let first = Arc::new(AtomicU32::new(0));
    let h = harness_with(move |db| {
        let db = db.clone();
        let step = Step::new(
            "bump",
            Action::db(move |tx, context| {
                let db = db.clone();
                let first = Arc::clone(&first);
                Box::pin(async move {
                    if first.fetch_add(1, Ordering::SeqCst) == 0 {
                        let other = db.client().await?;
                        other
                            .execute(
                                "UPDATE demo_accounts SET balance = balance + 1 WHERE id = 'stale'",
                                &[],
                            )
                            .await?;
                        other
                            .execute(
                                "UPDATE saga_instances SET current_step = 1, status = 'completed', \
                                 outputs = '{\"bump\": {}}', lease_owner = '', lease_expires_at = NULL, \
                                 revision = revision + 1 WHERE id = $1",
                                &[&context.saga_id],
                            )
                            .await?;
                    }
                    tx.execute(
                        "UPDATE demo_accounts SET balance = balance + 1 WHERE id = 'stale'",
                        &[],
                    )
                    .await?;
                    Ok(StepOutcome::Done(json!({})))
                })
            }),
        );
        vec![SagaDefinition::new("test.stale", 1, vec![step])]
    })
    .await;
    demo::open_account(&h.db, "stale", 0).await.unwrap();
    let id = Uuid::new_v4();
    start(&h, id, "test.stale", json!({}), String::new()).await;
    detail_once(&h, id, "the saga did not settle", |detail| {
        detail.instance.status == Status::Completed && detail.instance.lease_owner.is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        demo::balance(&h.db, "stale").await.unwrap(),
        Some(1),
        "the effect was applied once"
    );
    let detail = ops::get(&h.db, id).await.unwrap();
    assert!(
        detail.steps.iter().all(|s| s.outcome != "done"),
        "the rolled-back rerun recorded nothing"
    );
}

#[tokio::test]
async fn forcing_compensation_of_a_step_with_an_unknown_outcome_undoes_that_step_too() {
    let (undone, counter) = counter_and_copy(0);
    let h = harness_with(move |_| {
        let step = Step::new(
            "maybe",
            Action::call(|_| Box::pin(async { StepOutcome::Unknown("no answer".to_owned()) })),
        )
        .compensate_with(Action::call(move |_| {
            let counter = Arc::clone(&counter);
            Box::pin(async move {
                counter.fetch_add(1, Ordering::SeqCst);
                StepOutcome::Done(json!({}))
            })
        }))
        .query_with(Arc::new(|_| {
            Box::pin(async { QueryOutcome::Unknown("still no answer".to_owned()) })
        }))
        .retry(three_attempts(5, 5, 0.0));
        vec![SagaDefinition::new("test.maybe", 1, vec![step])]
    })
    .await;
    let id = settled_as(&h, "test.maybe", Status::Paused).await;
    assert!(ops::get(&h.db, id).await.unwrap().instance.awaiting_query);
    let settled = h.executor.watchers().watch(id);
    ops::force_compensate(&h.db, h.executor.registry(), id, &actor())
        .await
        .unwrap();
    assert_eq!(nudged_until_settled(&h, settled).await, Status::Compensated);
    assert_eq!(
        undone.load(Ordering::SeqCst),
        1,
        "the uncertain step was undone"
    );
}

#[tokio::test]
async fn a_saga_past_its_deadline_pauses_with_the_reason() {
    let h = harness_with(|_| {
        // The step never stops failing.
        let mut definition = flaky_saga(Arc::new(AtomicU32::new(1)), false);
        definition.steps[0].retry.attempts = 1_000;
        definition.steps[0].retry.initial_backoff = Duration::from_millis(20);
        vec![definition.deadline(Duration::from_millis(300))]
    })
    .await;
    let id = settled_as(&h, "test.flaky", Status::Paused).await;
    let detail = ops::get(&h.db, id).await.unwrap();
    assert!(
        detail.instance.paused_reason.contains("deadline"),
        "{}",
        detail.instance.paused_reason
    );
    assert!(detail.steps.len() > 1, "it retried until the deadline");
}

/// A saga whose second step waits for a person: it answers `Await` until `decided` is set.
fn awaiting_saga(decided: Arc<AtomicU32>, calls: Arc<AtomicU32>) -> SagaDefinition {
    let wait = Step::new(
        "review",
        Action::call(move |_| {
            let decided = Arc::clone(&decided);
            let calls = Arc::clone(&calls);
            Box::pin(async move {
                calls.fetch_add(1, Ordering::SeqCst);
                match decided.load(Ordering::SeqCst) {
                    0 => StepOutcome::Await("review: waits for two people".to_owned()),
                    1 => StepOutcome::Done(json!({ "released": true })),
                    _ => StepOutcome::Failed("refused on review".to_owned()),
                }
            })
        }),
    );
    let first = done_step("first", json!({ "undone": true }));
    SagaDefinition::new("test.await", 1, vec![first, wait])
}

#[tokio::test]
async fn a_step_awaiting_a_person_pauses_without_retries_until_a_decision_resumes_it() {
    let decided = Arc::new(AtomicU32::new(0));
    let calls = Arc::new(AtomicU32::new(0));
    let (flag, counter) = (Arc::clone(&decided), Arc::clone(&calls));
    let h = harness_with(move |_| vec![awaiting_saga(flag, counter)]).await;
    let registry = Arc::clone(h.executor.registry());
    let decide = |id: Uuid, step: &'static str| {
        let (db, registry) = (h.db.clone(), Arc::clone(&registry));
        async move {
            db.run_tx("test_decide", |tx| {
                let registry = Arc::clone(&registry);
                Box::pin(async move {
                    ops::decide_in(&tx, id, step, &registry, &actor(), "proposer-1", "release")
                        .await
                })
            })
            .await
        }
    };

    // Released: paused once at `review` (one attempt, no retries), then completed.
    let released = settled_as(&h, "test.await", Status::Paused).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "waiting is not retried");
    let paused = ops::get(&h.db, released).await.unwrap();
    assert_eq!(paused.instance.current_step, 1);
    assert!(
        paused
            .instance
            .paused_reason
            .contains("waits for two people")
    );
    assert_eq!(paused.steps.last().unwrap().outcome, "awaiting");
    // A decision for another step is refused and changes nothing.
    let wrong = decide(released, "first").await.unwrap_err();
    assert!(
        matches!(wrong, TxError::Abort(SagaError::InvalidState { .. })),
        "{wrong:?}"
    );
    assert_eq!(
        ops::get(&h.db, released).await.unwrap().instance.status,
        Status::Paused
    );

    decided.store(1, Ordering::SeqCst);
    let settled = h.executor.watchers().watch(released);
    let resumed = decide(released, "review").await.unwrap();
    assert_eq!(resumed.status, Status::Running);
    let status = nudged_until_settled(&h, settled).await;
    assert_eq!(status, Status::Completed);
    let detail = ops::get(&h.db, released).await.unwrap();
    assert_eq!(detail.operator_actions.len(), 1);
    assert_eq!(detail.operator_actions[0].action, "release");
    assert_eq!(detail.operator_actions[0].actor, "operator-7");
    assert_eq!(detail.operator_actions[0].proposed_by, "proposer-1");
    // Decided again once completed: refused.
    assert!(decide(released, "review").await.is_err());

    // Refused: the step fails after the decision and the saga unwinds.
    decided.store(0, Ordering::SeqCst);
    let refused = settled_as(&h, "test.await", Status::Paused).await;
    decided.store(2, Ordering::SeqCst);
    let settled = h.executor.watchers().watch(refused);
    decide(refused, "review").await.unwrap();
    let status = nudged_until_settled(&h, settled).await;
    assert_eq!(status, Status::Compensated);
}

/// A three-step saga (`a`, `b`, `c`) whose steps count their runs in `runs` (one counter
/// each) and answer what they saw of the step before them.
fn counted_saga(runs: Arc<[AtomicU32; 3]>) -> SagaDefinition {
    let step = |index: usize, name: &'static str, before: &'static str| {
        let runs = Arc::clone(&runs);
        Step::new(
            name,
            Action::call(move |context| {
                runs[index].fetch_add(1, Ordering::SeqCst);
                let saw = context
                    .outputs
                    .get(before)
                    .map_or(json!(null), |out| out["value"].clone());
                Box::pin(async move { StepOutcome::Done(json!({ "value": index, "saw": saw })) })
            }),
        )
    };
    SagaDefinition::new(
        "test.adopted",
        1,
        vec![step(0, "a", ""), step(1, "b", "a"), step(2, "c", "b")],
    )
}

#[tokio::test]
async fn an_adopted_saga_goes_on_from_its_step_with_the_outputs_it_was_given() {
    let runs: Arc<[AtomicU32; 3]> = Arc::new(Default::default());
    let counted = Arc::clone(&runs);
    let h = harness_with(move |_| vec![counted_saga(counted)]).await;
    let registry = Arc::clone(h.executor.registry());
    let new = NewSaga {
        id: Uuid::new_v4(),
        saga_type: "test.adopted".to_owned(),
        input: json!({}),
        business_key: "item-1".to_owned(),
    };
    let adopt = |from_step: usize| {
        let registry = Arc::clone(&registry);
        let new = new.clone();
        let db = h.db.clone();
        async move {
            db.run_tx("test_adopt", |tx| {
                let registry = Arc::clone(&registry);
                let new = new.clone();
                Box::pin(async move {
                    let outputs = [("a".to_owned(), json!({ "value": "from the chunk" }))]
                        .into_iter()
                        .collect();
                    corebank_saga::adopt(&tx, &registry, &new, from_step, outputs).await
                })
            })
            .await
        }
    };
    // Past its last step: refused, naming the field, and nothing is stored.
    match adopt(4).await.unwrap_err() {
        TxError::Abort(error) => assert_eq!(error.code(), "invalid_argument"),
        other => panic!("{other:?}"),
    }
    assert!(ops::get(&h.db, new.id).await.is_err());

    let settled = h.executor.watchers().watch(new.id);
    assert!(matches!(adopt(1).await.unwrap(), Started::New(_)));
    assert_eq!(nudged_until_settled(&h, settled).await, Status::Completed);
    let counts: Vec<u32> = runs.iter().map(|n| n.load(Ordering::SeqCst)).collect();
    assert_eq!(counts, [0, 1, 1], "a is taken as done; b and c run once");
    let detail = ops::get(&h.db, new.id).await.unwrap();
    assert_eq!(detail.instance.outputs["b"]["saw"], "from the chunk");
    assert_eq!(detail.instance.outputs["c"]["saw"], 1);
    assert_eq!(detail.instance.outputs["a"]["value"], "from the chunk");
    // The same id again finds it.
    assert!(matches!(adopt(1).await.unwrap(), Started::Existing(_)));
    assert_eq!(runs[1].load(Ordering::SeqCst), 1);
}
