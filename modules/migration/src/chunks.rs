//! The saga that moves a chunk of accounts together (`accounts_move`): the steps of
//! [`crate::moves`], each taken for every account of the chunk at once.
//!
//! A move of one account costs about ten saga saves (one per step) beside the calls it
//! makes; a chunk pays them once for all its accounts. Its steps on the gateway's directory
//! (`mark`, `switch`, `unmark`) and on modern (`book`: `ImportAccounts`; `verify`:
//! `GetAccounts`) are one call for all its accounts, each served in one transaction (one
//! ledger request for the accounts, one for the entries); its steps on the legacy core
//! (`freeze`, `empty`) send each account's call together, so that the legacy adapter
//! gathers them into bulks. Every account's part of a call is the one the move of one
//! account would make, with the same request id (from migration, account and step), so a
//! step repeated after a crash changes nothing twice.
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

use corebank_api::deposits::v1 as dpb;
use corebank_api::gateway::v1 as gpb;
use corebank_saga::{
    Action, BoxFuture, Registry, SagaDefinition, Started, Step, StepContext, StepOutcome,
};
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
            let own = still_in(&context);
            let calls: Vec<tokio::task::JoinHandle<StepOutcome>> = own
                .iter()
                .map(|account| {
                    let (peers, account) = (Arc::clone(&peers), account.clone());
                    tokio::spawn(async move {
                        tokio::time::timeout(ACCOUNT_CALL_TIMEOUT, run(peers, account))
                            .await
                            .unwrap_or_else(|_| {
                                StepOutcome::Unknown(format!(
                                    "no answer within {} ms",
                                    ACCOUNT_CALL_TIMEOUT.as_millis()
                                ))
                            })
                    })
                })
                .collect();
            let mut outcomes = Vec::with_capacity(calls.len());
            for call in calls {
                outcomes.push(call.await.unwrap_or_else(|error| {
                    StepOutcome::Unknown(format!("the call ended: {error}"))
                }));
            }
            sorted(&own, outcomes)
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
    for_all(peers, move |peers, own| {
        Box::pin(async move {
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
                .await
                .map(|response| response.into_inner().results);
            let results = match results_of(&own, answer, "the directory") {
                Ok(results) => results,
                Err(outcome) => return outcome,
            };
            let outcomes = own.iter().zip(results).map(|(account, result)| {
                let outcome = match result.home {
                    Some(home) if result.code.is_empty() => moves::at_home(home),
                    _ => StepOutcome::Failed(format!("{}: {}", result.code, result.message)),
                };
                answered(&peers, account, outcome)
            });
            sorted(&own, outcomes)
        })
    })
}

/// A chunk's step that makes one call for all its accounts still in it: `run` with them
/// (with none left, there is nothing to do).
fn for_all<F>(peers: &Arc<Peers>, run: F) -> Action
where
    F: Fn(Arc<Peers>, Vec<StepContext>) -> BoxFuture<'static, StepOutcome> + Send + Sync + 'static,
{
    let peers = Arc::clone(peers);
    Action::call(move |context| {
        let own = still_in(&context);
        if own.is_empty() {
            return Box::pin(async { step_output(Map::new(), Map::new()) });
        }
        run(Arc::clone(&peers), own)
    })
}

/// A chunk's call for all its accounts that failed as a whole: tried again (every call is
/// idempotent, account by account), unless it was refused as a whole; every account is then
/// handed over, to make the calls of its own.
fn whole_call_failed(status: tonic::Status, own: &[StepContext]) -> StepOutcome {
    match moves::outcome(Err::<tonic::Response<()>, _>(status), |()| {
        StepOutcome::Done(Value::Null)
    }) {
        StepOutcome::Failed(why) => {
            all_handed_over(own, &format!("the chunk's call was refused: {why}"))
        }
        again => again,
    }
}

/// The results of a chunk's call for all `own` accounts, one for each in their order; or the
/// step's outcome when the call failed as a whole ([`whole_call_failed`]) or `peer` answered
/// for some accounts only (every account then leaves the chunk).
fn results_of<R>(
    own: &[StepContext],
    answer: Result<Vec<R>, tonic::Status>,
    peer: &str,
) -> Result<Vec<R>, StepOutcome> {
    let results = answer.map_err(|status| whole_call_failed(status, own))?;
    if results.len() != own.len() {
        let why = format!(
            "{peer} answered {} of {} accounts",
            results.len(),
            own.len()
        );
        return Err(all_handed_over(own, &why));
    }
    Ok(results)
}

/// A chunk's step output from each of `own` accounts' outcomes, in their order: the answers
/// of those done, and why each of the others is handed over to its own move.
fn sorted(own: &[StepContext], outcomes: impl IntoIterator<Item = StepOutcome>) -> StepOutcome {
    let mut answers = Map::new();
    let mut handed = Map::new();
    for (account, outcome) in own.iter().zip(outcomes) {
        let id = text(&account.input, "account_id");
        match outcome {
            StepOutcome::Done(answer) => {
                answers.insert(id, answer);
            }
            other => {
                handed.insert(id, json!(why(&other)));
            }
        }
    }
    step_output(answers, handed)
}

/// `book` for a chunk: one `ImportAccounts` call with the import of each account still in
/// the chunk, which deposits makes with one ledger request for their accounts, one for
/// their entries and one local transaction. An account whose import is refused is handed
/// over to its own move (which repeats the same import, by the same request id).
fn book(peers: Arc<Peers>, own: Vec<StepContext>) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let (imports, legacy_holds): (Vec<_>, Vec<_>) =
            own.iter().map(moves::import_request).unzip();
        let answer = peers
            .import
            .clone()
            .import_accounts(dpb::ImportAccountsRequest { accounts: imports })
            .await
            .map(|response| response.into_inner().results);
        let results = match results_of(&own, answer, "deposits") {
            Ok(results) => results,
            Err(outcome) => return outcome,
        };
        let outcomes = results
            .into_iter()
            .zip(&legacy_holds)
            .map(|(result, holds)| match result.imported {
                Some(imported) if result.code.is_empty() => {
                    StepOutcome::Done(moves::booked(imported, holds))
                }
                _ => StepOutcome::Failed(format!("{}: {}", result.code, result.message)),
            });
        sorted(&own, outcomes)
    })
}

/// `verify` for a chunk: one `GetAccounts` call reads every account still in the chunk on
/// modern (their balances from one read of the ledger), each checked against its snapshot
/// as its own move checks it. An account that does not match is handed over to its own
/// move, which reads it again and waits for an operator if it still does not.
fn verify(peers: Arc<Peers>, own: Vec<StepContext>) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let account_ids = own
            .iter()
            .map(|account| output(account, "book", "modern_id"))
            .collect();
        let answer = peers
            .modern
            .clone()
            .get_accounts(dpb::GetAccountsRequest { account_ids })
            .await
            .map(|response| response.into_inner().accounts);
        let accounts = match results_of(&own, answer, "deposits") {
            Ok(accounts) => accounts,
            Err(outcome) => return outcome,
        };
        let outcomes = own
            .iter()
            .zip(&accounts)
            .map(|(account, modern)| moves::verified(account, modern));
        sorted(&own, outcomes)
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
    // A step that makes one call for all the chunk's accounts.
    let bulk =
        |name: &str, action: Action| Step::new(name, action).retry(PATIENT).timeout(STEP_TIMEOUT);
    SagaDefinition::new(
        SAGA_TYPE,
        1,
        vec![
            drain(),
            bulk("mark", homes(peers, ask_mark, answered_mark)),
            step("freeze", moves::freeze),
            bulk("book", for_all(peers, book)).pivot(),
            step("empty", moves::empty),
            bulk("switch", homes(peers, ask_switch, answered_as_is)),
            bulk("verify", for_all(peers, verify)),
            bulk("unmark", homes(peers, ask_unmark, answered_unmark)),
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
