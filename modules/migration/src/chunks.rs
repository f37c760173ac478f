//! The saga that moves a chunk of accounts together (`accounts_move`): the steps of
//! [`crate::moves`], each taken for every account of the chunk at once.
//!
//! A move of one account costs about ten saga saves (one per step) beside the calls it
//! makes; a chunk pays them once for all its accounts, and each of its steps sends its
//! accounts' calls together, so that the legacy adapter gathers them into bulks and the
//! ledger into group commits. Every call is the one the move of one account would make,
//! with the same request id (from migration, account and step), so a step repeated after
//! a crash changes nothing twice.
//!
//! An account that does not go on with the others is handed over to a move of its own:
//! - at `drain`, an account with a cross-side transfer under way;
//! - at any other step, an account whose call was refused, failed, timed out or was not
//!   answered.
//!
//! The chunk takes it out of its later steps, and at `record` starts the account's own
//! move ([`crate::moves`], the same saga id the feeder gives it) from the step it got to,
//! with the outputs of the steps it passed ([`corebank_saga::adopt`]). That move ends it as
//! a move of one account would: a refusal at `freeze` unmarks it and leaves it on legacy,
//! a failure past `book` waits for an operator, and a peer that was away is waited for. The
//! chunk itself never fails, so it has no compensation.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use corebank_api::gateway::v1 as gpb;
use corebank_saga::{Action, Registry, SagaDefinition, Started, Step, StepContext, StepOutcome};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::moves::{self, CallFn, MoveInput, PATIENT, output, output_list, text};
use crate::peers::Peers;
use crate::{derived_id, store};

/// The saga type.
pub const SAGA_TYPE: &str = "accounts_move";

/// The most accounts a chunk takes.
pub const CHUNK_MAX: usize = 16;

/// How long one account's call in a chunk's step may take before the account is handed
/// over to its own move.
const ACCOUNT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A chunk's step may take its accounts' slowest call and some.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many accounts the feeder puts in one chunk when `window` moves may be under way: a
/// quarter of the window (so that chunks at different steps keep every peer busy), at most
/// [`CHUNK_MAX`]. One account is moved by its own saga.
pub fn chunk_size(window: i64) -> usize {
    usize::try_from(window / 4).unwrap_or(1).clamp(1, CHUNK_MAX)
}

/// The saga id of a chunk whose first account (in account order) is `first_account`: each
/// account starts one move, so the id is the chunk's on every replica.
pub fn saga_id(migration_id: &str, first_account: &str) -> Uuid {
    derived_id(&["chunk", migration_id, first_account])
}

/// A chunk's saga input: the moves of its accounts.
pub fn input(migration_id: &str, accounts: &[MoveInput]) -> Value {
    json!({
        "migration_id": migration_id,
        "accounts": accounts.iter().map(MoveInput::to_json).collect::<Vec<_>>(),
    })
}

/// The moves of a chunk's accounts, from its input.
fn accounts(context: &StepContext) -> &[Value] {
    context.input["accounts"]
        .as_array()
        .map_or(&[], Vec::as_slice)
}

/// The accounts handed over to their own move in the steps done so far, with the step and
/// why.
fn handed_over(context: &StepContext) -> BTreeMap<String, (String, String)> {
    let mut over = BTreeMap::new();
    for (step, out) in &context.outputs {
        if let Some(accounts) = out["handed_over"].as_object() {
            for (account, why) in accounts {
                over.insert(
                    account.clone(),
                    (step.clone(), why.as_str().unwrap_or_default().to_owned()),
                );
            }
        }
    }
    over
}

/// The context one account's step would have in its own move: its input, and what the
/// chunk's steps so far answered for it.
fn account_context(context: &StepContext, account: &Value) -> StepContext {
    let id = text(account, "account_id");
    let outputs = context
        .outputs
        .iter()
        .filter_map(|(step, out)| {
            out["accounts"]
                .get(&id)
                .map(|answer| (step.clone(), answer.clone()))
        })
        .collect();
    StepContext {
        saga_type: moves::SAGA_TYPE.to_owned(),
        input: account.clone(),
        outputs,
        ..context.clone()
    }
}

/// The accounts still in the chunk (not handed over in an earlier step), each as its own
/// move's step would see it.
fn still_in(context: &StepContext) -> Vec<StepContext> {
    let over = handed_over(context);
    accounts(context)
        .iter()
        .filter(|account| !over.contains_key(&text(account, "account_id")))
        .map(|account| account_context(context, account))
        .collect()
}

/// A chunk's step output: each account's answer, and the accounts handed over with why.
fn step_output(answers: Map<String, Value>, handed: Map<String, Value>) -> StepOutcome {
    StepOutcome::Done(json!({ "accounts": answers, "handed_over": handed }))
}

/// Every one of `accounts` handed over, for the same reason.
fn all_handed_over(accounts: &[StepContext], why: &str) -> StepOutcome {
    let handed = accounts
        .iter()
        .map(|account| (text(&account.input, "account_id"), json!(why)))
        .collect();
    step_output(Map::new(), handed)
}

/// Why an account leaves the chunk, from its call's outcome.
fn why(outcome: &StepOutcome) -> String {
    match outcome {
        StepOutcome::Done(_) => String::new(),
        StepOutcome::Failed(message) => format!("failed: {message}"),
        StepOutcome::Transient(message) => format!("not done: {message}"),
        StepOutcome::Unknown(message) => format!("no answer: {message}"),
        StepOutcome::Await(message) => format!("waits: {message}"),
    }
}

/// A chunk's step: the move's step `run` for each of its accounts still in it, all at
/// once. Its output: each account's answer (`accounts`), and the accounts handed over to
/// their own move, with why (`handed_over`).
fn each(peers: &Arc<Peers>, run: CallFn) -> Action {
    let peers = Arc::clone(peers);
    Action::call(move |context| {
        let peers = Arc::clone(&peers);
        Box::pin(async move {
            let calls: Vec<(String, tokio::task::JoinHandle<StepOutcome>)> = still_in(&context)
                .into_iter()
                .map(|own| {
                    let id = text(&own.input, "account_id");
                    let peers = Arc::clone(&peers);
                    let call = tokio::spawn(async move {
                        tokio::time::timeout(ACCOUNT_CALL_TIMEOUT, run(peers, own))
                            .await
                            .unwrap_or_else(|_| {
                                StepOutcome::Unknown(format!(
                                    "no answer within {} ms",
                                    ACCOUNT_CALL_TIMEOUT.as_millis()
                                ))
                            })
                    });
                    (id, call)
                })
                .collect();
            let mut answers = Map::new();
            let mut handed = Map::new();
            for (account, call) in calls {
                match call.await {
                    Ok(StepOutcome::Done(answer)) => {
                        answers.insert(account, answer);
                    }
                    Ok(other) => {
                        handed.insert(account, json!(why(&other)));
                    }
                    Err(error) => {
                        handed.insert(account, json!(format!("the call ended: {error}")));
                    }
                }
            }
            step_output(answers, handed)
        })
    })
}

/// What a chunk's directory step asks the gateway for one account.
type AskFn = fn(&StepContext) -> gpb::home_change::Change;

/// What the step makes of the account's answer: its output, as the move's own step would.
type AnsweredFn = fn(&Peers, &StepContext, StepOutcome) -> StepOutcome;

/// A chunk's step on the gateway's directory: one `ChangeHomes` call with the change of
/// each account still in the chunk, in one transaction there. An account whose change is
/// refused is handed over to its own move. A call that fails as a whole is tried again (it
/// is idempotent, change by change), unless it was refused as a whole (every account is
/// then handed over, to make the calls of its own).
fn homes(peers: &Arc<Peers>, ask: AskFn, answered: AnsweredFn) -> Action {
    let peers = Arc::clone(peers);
    Action::call(move |context| {
        let peers = Arc::clone(&peers);
        Box::pin(async move {
            let own = still_in(&context);
            if own.is_empty() {
                return step_output(Map::new(), Map::new());
            }
            let changes = own
                .iter()
                .map(|account| gpb::HomeChange {
                    change: Some(ask(account)),
                })
                .collect();
            let answer = peers
                .homes
                .clone()
                .change_homes(gpb::ChangeHomesRequest { changes })
                .await;
            let results = match answer {
                Ok(response) => response.into_inner().results,
                Err(status) => {
                    return match moves::outcome(
                        Err::<tonic::Response<gpb::ChangeHomesResponse>, _>(status),
                        |_| StepOutcome::Done(Value::Null),
                    ) {
                        StepOutcome::Failed(why) => {
                            all_handed_over(&own, &format!("the chunk's call was refused: {why}"))
                        }
                        again => again,
                    };
                }
            };
            if results.len() != own.len() {
                let why = format!(
                    "the directory answered {} of {} changes",
                    results.len(),
                    own.len()
                );
                return all_handed_over(&own, &why);
            }
            let mut answers = Map::new();
            let mut handed = Map::new();
            for (account, result) in own.iter().zip(results) {
                let outcome = match result.home {
                    Some(home) if result.code.is_empty() => moves::at_home(home),
                    _ => StepOutcome::Failed(format!("{}: {}", result.code, result.message)),
                };
                let id = text(&account.input, "account_id");
                match answered(&peers, account, outcome) {
                    StepOutcome::Done(answer) => {
                        answers.insert(id, answer);
                    }
                    other => {
                        handed.insert(id, json!(why(&other)));
                    }
                }
            }
            step_output(answers, handed)
        })
    })
}

/// `drain` for a chunk: each account's move is touched (so that a cross-side transfer that
/// read it while starting conflicts with this), and an account with a transfer under way
/// is handed over to its own move, which waits for it.
fn drain() -> Step {
    Step::new(
        "drain",
        Action::db(|tx, context| {
            Box::pin(async move {
                let mut drained = Map::new();
                let mut busy = Map::new();
                for account in accounts(context) {
                    let input = MoveInput::from_json(account);
                    store::touch_move(tx, &input).await?;
                    let id = Uuid::parse_str(&input.account_id).unwrap_or_default();
                    let under_way = store::crossings_under_way(tx, id).await?;
                    if under_way.is_empty() {
                        drained.insert(input.account_id, json!({}));
                    } else {
                        busy.insert(
                            input.account_id,
                            json!(format!(
                                "{} cross-side transfer(s) under way",
                                under_way.len()
                            )),
                        );
                    }
                }
                Ok(step_output(drained, busy))
            })
        }),
    )
}

/// `record` for a chunk, in the executor's transaction: each moved account's figures, and
/// each account handed over, its own move started from the step it got to.
fn record(moves: Arc<Registry>) -> Action {
    Action::db(move |tx, context| {
        let moves = Arc::clone(&moves);
        Box::pin(async move {
            let Some(single) = moves.latest(moves::SAGA_TYPE) else {
                return Ok(StepOutcome::Transient(
                    "the account_move saga is not registered".to_owned(),
                ));
            };
            let chunk_id = context.saga_id;
            let over = handed_over(context);
            let mut moved = 0_u32;
            for account in accounts(context) {
                let own = account_context(context, account);
                let input = MoveInput::from_json(account);
                let Some((step, why)) = over.get(&input.account_id) else {
                    let holds = output_list(&own, "book", "holds").len();
                    store::record_moved(
                        tx,
                        &input,
                        &output(&own, "freeze", "posted"),
                        &output(&own, "book", "held"),
                        i64::try_from(holds).unwrap_or(i64::MAX),
                        &output(&own, "book", "modern_id"),
                    )
                    .await?;
                    moved += 1;
                    continue;
                };
                let from_step = single
                    .steps
                    .iter()
                    .position(|candidate| candidate.name == *step)
                    .unwrap_or(0);
                let outputs: BTreeMap<String, Value> = own
                    .outputs
                    .into_iter()
                    .filter(|(done, _)| {
                        single.steps[..from_step]
                            .iter()
                            .any(|before| before.name == *done)
                    })
                    .collect();
                let new = input.own_saga();
                match corebank_saga::adopt(tx, &moves, &new, from_step, outputs).await {
                    Ok(Started::New(_) | Started::Existing(_)) => {}
                    Err(corebank_db::TxError::Db(error)) => return Err(error),
                    Err(corebank_db::TxError::Abort(error)) => {
                        return Ok(StepOutcome::Transient(format!(
                            "account {}'s own move could not start: {error}",
                            input.account_id
                        )));
                    }
                }
                store::hand_over(tx, &input, chunk_id, new.id).await?;
                tracing::info!(
                    migration = %input.migration_id,
                    account = %input.account_id,
                    step = %step,
                    why = %why,
                    "account handed over from its chunk to a move of its own"
                );
            }
            Ok(StepOutcome::Done(
                json!({ "moved": moved, "handed_over": over.len() }),
            ))
        })
    })
}

fn ask_mark(account: &StepContext) -> gpb::home_change::Change {
    let input = MoveInput::of(account);
    gpb::home_change::Change::BeginMove(moves::begin_request(&input, input.move_id(), "legacy"))
}

fn answered_mark(_: &Peers, _: &StepContext, outcome: StepOutcome) -> StepOutcome {
    moves::marked(outcome)
}

fn ask_switch(account: &StepContext) -> gpb::home_change::Change {
    gpb::home_change::Change::SwitchHome(moves::switch_request(account))
}

fn answered_as_is(_: &Peers, _: &StepContext, outcome: StepOutcome) -> StepOutcome {
    outcome
}

fn ask_unmark(account: &StepContext) -> gpb::home_change::Change {
    let input = MoveInput::of(account);
    gpb::home_change::Change::EndMove(moves::end_request(&input, input.move_id()))
}

fn answered_unmark(peers: &Peers, account: &StepContext, outcome: StepOutcome) -> StepOutcome {
    moves::report_frozen(peers, account, &outcome);
    outcome
}

/// The `accounts_move` saga over `peers`; `moves` holds the move of one account, which an
/// account handed over goes on in.
pub fn definition(peers: &Arc<Peers>, moves: Arc<Registry>) -> SagaDefinition {
    let step = |name: &str, run: CallFn| {
        Step::new(name, each(peers, run))
            .retry(PATIENT)
            .timeout(STEP_TIMEOUT)
    };
    let directory =
        |name: &str, action: Action| Step::new(name, action).retry(PATIENT).timeout(STEP_TIMEOUT);
    SagaDefinition::new(
        SAGA_TYPE,
        1,
        vec![
            drain(),
            directory("mark", homes(peers, ask_mark, answered_mark)),
            step("freeze", moves::freeze),
            step("book", moves::book).pivot(),
            step("empty", moves::empty),
            directory("switch", homes(peers, ask_switch, answered_as_is)),
            step("verify", moves::verify),
            directory("unmark", homes(peers, ask_unmark, answered_unmark)),
            Step::new("record", record(moves)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_a_quarter_of_the_window_between_one_and_the_most() {
        assert_eq!(chunk_size(1), 1);
        assert_eq!(chunk_size(8), 2);
        assert_eq!(chunk_size(64), CHUNK_MAX);
        assert_eq!(chunk_size(1_000), CHUNK_MAX);
    }

    #[test]
    fn an_account_handed_over_leaves_the_later_steps_with_what_it_answered_before() {
        let account = |id: &str| {
            json!({ "migration_id": "m", "account_id": id, "legacy_account_number": "",
                    "customer_id": "", "product_code": "", "currency": "EUR",
                    "opened_on": "" })
        };
        let mut outputs = BTreeMap::new();
        outputs.insert(
            "mark".to_owned(),
            json!({ "accounts": { "a": { "home": "legacy" }, "b": { "home": "legacy" } },
                    "handed_over": {} }),
        );
        outputs.insert(
            "freeze".to_owned(),
            json!({ "accounts": { "a": { "posted": "10.00" } },
                    "handed_over": { "b": "failed: account_frozen: posting restricted" } }),
        );
        let context = StepContext {
            saga_id: Uuid::nil(),
            saga_type: SAGA_TYPE.to_owned(),
            step: 3,
            step_name: "book".to_owned(),
            direction: corebank_saga::Direction::Do,
            idempotency_key: String::new(),
            input: json!({ "migration_id": "m", "accounts": [account("a"), account("b")] }),
            outputs,
            attempt: 1,
            generation: 1,
            owner: String::new(),
        };
        let over = handed_over(&context);
        assert_eq!(
            over.get("b"),
            Some(&(
                "freeze".to_owned(),
                "failed: account_frozen: posting restricted".to_owned()
            ))
        );
        assert!(!over.contains_key("a"));
        let own = account_context(&context, &accounts(&context)[0]);
        assert_eq!(own.saga_type, moves::SAGA_TYPE);
        assert_eq!(output(&own, "freeze", "posted"), "10.00");
        assert_eq!(output(&own, "mark", "home"), "legacy");
        let other = account_context(&context, &accounts(&context)[1]);
        assert!(!other.outputs.contains_key("freeze"));
    }
}
