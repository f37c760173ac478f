//! The saga that moves one account from the legacy core to the modern one (`account_move`).
//!
//! 0. `drain`: the account's cross-side transfers have settled ([`crate::crossings`]); none
//!    starts from now on. An account busy for too long is refused `account_busy`.
//! 1. `mark`: the gateway's directory marks the account moving (channels get 503
//!    `account_moving` with `Retry-After`); undone by clearing the mark.
//! 2. `freeze`: the legacy core stops postings to it and answers it as it then is: the
//!    snapshot (balance, live holds), read after the freeze so nothing can change it; undone
//!    by a thaw. Refusals (`account_frozen`, `account_closed`, `account_migrated`) end the
//!    move before anything moved.
//! 3. `book` (the pivot): modern deposits imports it: opened on the product, the balance
//!    against migration clearing, each hold re-placed with its remaining time. From here the
//!    move only goes forward: a step that cannot finish pauses the saga for an operator.
//! 4. `empty`: the legacy account's balance goes to the core's migration suspense account,
//!    its holds are released, and the core refuses postings to it from then on.
//! 5. `switch`: the gateway serves it from modern (every replica within one poll).
//! 6. `verify`: the modern balance and holds equal the snapshot to the cent.
//! 7. `unmark`: channels are served again; 8. `record`: the move's figures, in the saga's
//!    own transaction.
//!
//! Every call's request id derives from (migration, account, step) ([`crate::derived_id`]),
//! and every callee is idempotent by it or by the account's state, so a step repeated after
//! a crash (of this process or a peer) changes nothing twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDate, SecondsFormat, TimeZone, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::gateway::v1 as gpb;
use corebank_api::legacy::v1 as lpb;
use corebank_saga::{
    Action, BoxFuture, NewSaga, RetryPolicy, SagaDefinition, Step, StepContext, StepOutcome,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::derived_id;
use crate::peers::Peers;

/// The saga type.
pub const SAGA_TYPE: &str = "account_move";

/// The codes with which a move is refused before anything moved: the account stays on
/// legacy, as it was, and the migration lists it as refused with the code.
pub const REFUSAL_CODES: &[&str] = &[
    "account_frozen",
    "account_closed",
    "account_migrated",
    "account_moving",
    "unknown_product",
    "currency_mismatch",
    "account_busy",
];

/// The refusal in a saga's failure (`step <name> failed: <code>: <message>`).
pub fn refusal_of(failure: &str) -> &str {
    failure
        .split_once(" failed: ")
        .map_or(failure, |(_, refusal)| refusal)
}

/// Whether a compensated move's failure is a refusal (the account stays on legacy, as it
/// was, by rule) rather than an error.
pub fn is_refusal(failure: &str) -> bool {
    let code = refusal_of(failure).split(':').next().unwrap_or_default();
    REFUSAL_CODES.contains(&code)
}

/// What a move knows from the start: the saga's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveInput {
    pub migration_id: String,
    pub account_id: String,
    pub legacy_account_number: String,
    pub customer_id: String,
    pub product_code: String,
    pub currency: String,
    pub opened_on: String,
}

impl MoveInput {
    pub fn to_json(&self) -> Value {
        json!({
            "migration_id": self.migration_id,
            "account_id": self.account_id,
            "legacy_account_number": self.legacy_account_number,
            "customer_id": self.customer_id,
            "product_code": self.product_code,
            "currency": self.currency,
            "opened_on": self.opened_on,
        })
    }

    pub(crate) fn of(context: &StepContext) -> MoveInput {
        MoveInput::from_json(&context.input)
    }

    /// A move's input as [`MoveInput::to_json`] wrote it.
    pub(crate) fn from_json(input: &Value) -> MoveInput {
        let field = |name: &str| text(input, name);
        MoveInput {
            migration_id: field("migration_id"),
            account_id: field("account_id"),
            legacy_account_number: field("legacy_account_number"),
            customer_id: field("customer_id"),
            product_code: field("product_code"),
            currency: field("currency"),
            opened_on: field("opened_on"),
        }
    }

    /// The gateway's name for this move of the account.
    pub fn move_id(&self) -> String {
        format!("{}:{}", self.migration_id, self.account_id)
    }

    /// The saga that moves this account alone: its id derives from (migration, account), so
    /// every replica starts the same one.
    pub(crate) fn own_saga(&self) -> NewSaga {
        NewSaga {
            id: derived_id(&["saga", &self.migration_id, &self.account_id]),
            saga_type: SAGA_TYPE.to_owned(),
            input: self.to_json(),
            business_key: self.account_id.clone(),
        }
    }

    /// The request id of `step` of this move.
    pub(crate) fn request_id(&self, step: &str) -> String {
        derived_id(&[&self.migration_id, &self.account_id, step]).to_string()
    }
}

/// A peer's answer as a step's outcome: refusals are final; an unreachable, slow or failing
/// peer is tried again (every call is idempotent).
pub(crate) fn outcome<T>(
    answer: Result<tonic::Response<T>, tonic::Status>,
    done: impl FnOnce(T) -> StepOutcome,
) -> StepOutcome {
    match answer {
        Ok(response) => done(response.into_inner()),
        Err(status) => {
            let code = corebank_service::contract::error_code(&status);
            let text = format!("{code}: {}", status.message());
            match status.code() {
                // A peer's own failure is no refusal: the call is idempotent by its request
                // id, so it is tried again (and the saga pauses if it keeps failing).
                tonic::Code::Unavailable
                | tonic::Code::ResourceExhausted
                | tonic::Code::Internal => StepOutcome::Transient(text),
                tonic::Code::DeadlineExceeded | tonic::Code::Cancelled | tonic::Code::Unknown => {
                    StepOutcome::Unknown(text)
                }
                _ => StepOutcome::Failed(text),
            }
        }
    }
}

/// A field of a JSON object as text (empty when it is missing or no text).
pub(crate) fn text(object: &Value, field: &str) -> String {
    object[field].as_str().unwrap_or_default().to_owned()
}

/// A step's output field as text.
pub(crate) fn output(context: &StepContext, step: &str, field: &str) -> String {
    context
        .outputs
        .get(step)
        .map(|out| text(out, field))
        .unwrap_or_default()
}

/// A step's output field as a list, such as the holds it answered (empty without one).
pub(crate) fn output_list<'c>(context: &'c StepContext, step: &str, field: &str) -> &'c [Value] {
    context
        .outputs
        .get(step)
        .and_then(|out| out[field].as_array())
        .map_or(&[], Vec::as_slice)
}

pub(crate) fn amount(text: &str) -> Decimal {
    text.parse().unwrap_or_default()
}

/// A legacy hold's last day in force as the instant it lapses: the end of that day (UTC,
/// the core's business day), RFC 3339; empty stays empty (until released).
pub(crate) fn lapses_at(to_date: &str) -> String {
    NaiveDate::parse_from_str(to_date, "%Y-%m-%d")
        .ok()
        .and_then(|day| day.succ_opt())
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .map(|midnight| {
            Utc.from_utc_datetime(&midnight)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .unwrap_or_default()
}

pub(crate) type CallFn = fn(Arc<Peers>, StepContext) -> BoxFuture<'static, StepOutcome>;

/// The legacy adapter's request for the move's account.
pub(crate) fn legacy_request(context: &StepContext) -> lpb::AccountMoveRequest {
    lpb::AccountMoveRequest {
        account_id: MoveInput::of(context).account_id,
    }
}

/// A directory change done: where the account lives now.
pub(crate) fn at_home(home: gpb::AccountHome) -> StepOutcome {
    StepOutcome::Done(json!({ "home": home.home }))
}

pub(crate) fn call(peers: &Arc<Peers>, run: CallFn) -> Action {
    let peers = Arc::clone(peers);
    Action::call(move |context| run(Arc::clone(&peers), context))
}

/// The gateway's request that marks the account moving as `move_id` (on `home` now).
pub(crate) fn begin_request(
    input: &MoveInput,
    move_id: String,
    home: &str,
) -> gpb::BeginMoveRequest {
    gpb::BeginMoveRequest {
        account_id: input.account_id.clone(),
        move_id,
        product_code: input.product_code.clone(),
        customer_id: input.customer_id.clone(),
        currency: input.currency.clone(),
        home: home.to_owned(),
    }
}

/// Marks the account moving in the gateway's directory as `move_id` (on `home` now).
pub(crate) async fn begin_move(
    peers: &Peers,
    input: &MoveInput,
    move_id: String,
    home: &str,
) -> StepOutcome {
    let answer = peers
        .homes
        .clone()
        .begin_move(begin_request(input, move_id, home))
        .await;
    outcome(answer, at_home)
}

/// The gateway's request that clears the mark `move_id` of the account.
pub(crate) fn end_request(input: &MoveInput, move_id: String) -> gpb::EndMoveRequest {
    gpb::EndMoveRequest {
        account_id: input.account_id.clone(),
        move_id,
    }
}

/// Clears the mark `move_id` of the account in the gateway's directory.
pub(crate) async fn end_move(peers: &Peers, input: &MoveInput, move_id: String) -> StepOutcome {
    let answer = peers
        .homes
        .clone()
        .end_move(end_request(input, move_id))
        .await;
    outcome(answer, at_home)
}

/// Switches the account's home in the gateway's directory to `home`, where its id is `id`
/// and its holds are `holds`, under the mark `move_id`.
pub(crate) async fn switch_home(
    peers: &Peers,
    input: &MoveInput,
    move_id: String,
    home: &str,
    id: String,
    holds: Vec<gpb::HoldHome>,
) -> StepOutcome {
    let answer = peers
        .homes
        .clone()
        .switch_home(gpb::SwitchHomeRequest {
            account_id: input.account_id.clone(),
            move_id,
            home: home.to_owned(),
            id,
            holds,
        })
        .await;
    outcome(answer, at_home)
}

pub(crate) fn mark(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        marked(begin_move(&peers, &input, input.move_id(), "legacy").await)
    })
}

/// `mark`'s output: when the account was marked, for the move's frozen window.
pub(crate) fn marked(outcome: StepOutcome) -> StepOutcome {
    match outcome {
        StepOutcome::Done(mut marked) => {
            marked["marked_at"] = json!(Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true));
            StepOutcome::Done(marked)
        }
        other => other,
    }
}

/// `unmark` as the move's own step: once the mark is cleared, says how long the account
/// stayed frozen, for the feeder's pace ([`crate::pace`]).
pub(crate) fn unmark_moved(
    peers: Arc<Peers>,
    context: StepContext,
) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        let outcome = end_move(&peers, &input, input.move_id()).await;
        report_frozen(&peers, &context, &outcome);
        outcome
    })
}

/// Once `unmark` is done, tells the pace how long the account stayed frozen.
pub(crate) fn report_frozen(peers: &Peers, context: &StepContext, outcome: &StepOutcome) {
    let input = MoveInput::of(context);
    let marked_at = chrono::DateTime::parse_from_rfc3339(&output(context, "mark", "marked_at"));
    if let (StepOutcome::Done(_), Ok(marked_at), Ok(migration)) = (
        outcome,
        marked_at,
        uuid::Uuid::parse_str(&input.migration_id),
    ) {
        let marked_at = marked_at.with_timezone(&Utc);
        let frozen = (Utc::now() - marked_at).to_std().unwrap_or_default();
        peers.pace.frozen(migration, marked_at, frozen);
    }
}

fn unmark(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        end_move(&peers, &input, input.move_id()).await
    })
}

pub(crate) fn freeze(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let answer = peers
            .legacy
            .clone()
            .freeze_account(legacy_request(&context))
            .await;
        outcome(answer, |frozen| {
            let holds: Vec<Value> = frozen
                .holds
                .iter()
                .map(|hold| {
                    json!({
                        "hold_id": hold.hold_id,
                        "legacy_id": hold.legacy_id,
                        "amount": hold.amount,
                        "to_date": hold.to_date,
                    })
                })
                .collect();
            StepOutcome::Done(json!({
                "posted": frozen.posted,
                "held": frozen.held,
                "holds": holds,
                "journal": frozen.journal,
            }))
        })
    })
}

pub(crate) fn thaw(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let answer = peers
            .legacy
            .clone()
            .thaw_account(legacy_request(&context))
            .await;
        outcome(answer, |thawed| {
            StepOutcome::Done(json!({ "state": thawed.state }))
        })
    })
}

pub(crate) fn book(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let (request, legacy_holds) = import_request(&context);
        let answer = peers.import.clone().import_account(request).await;
        outcome(answer, |imported| {
            StepOutcome::Done(booked(imported, &legacy_holds))
        })
    })
}

/// The holds of a frozen account: the legacy lock id of each, and the canonical
/// (legacy-derived) hold id that channels know.
pub(crate) type LegacyHolds = Vec<(String, String)>;

/// The import that books the move's account on modern, from its frozen snapshot.
pub(crate) fn import_request(context: &StepContext) -> (dpb::ImportAccountRequest, LegacyHolds) {
    let input = MoveInput::of(context);
    let frozen_holds = output_list(context, "freeze", "holds");
    let holds: Vec<dpb::HoldToImport> = frozen_holds
        .iter()
        .map(|hold| dpb::HoldToImport {
            reference: text(hold, "legacy_id"),
            amount: text(hold, "amount"),
            expires_at: lapses_at(&text(hold, "to_date")),
        })
        .collect();
    let legacy_holds = frozen_holds
        .iter()
        .map(|hold| (text(hold, "legacy_id"), text(hold, "hold_id")))
        .collect();
    let request = dpb::ImportAccountRequest {
        request_id: input.request_id("book"),
        customer_id: input.customer_id.clone(),
        product_code: input.product_code.clone(),
        currency: input.currency.clone(),
        opened_on: input.opened_on.clone(),
        opening_balance: output(context, "freeze", "posted"),
        // The legacy core accrues nothing on deposit accounts (its export has no accrued
        // figure): there is nothing to carry.
        accrued_interest: "0".to_owned(),
        holds,
        reference: input.legacy_account_number.clone(),
    };
    (request, legacy_holds)
}

/// `book`'s output from the import's answer: the account's id on modern, what its holds
/// hold, and each hold's new id beside the one channels know.
pub(crate) fn booked(imported: dpb::ImportedAccount, legacy_holds: &LegacyHolds) -> Value {
    let mut held = Decimal::new(0, 2);
    let mut placed = Vec::new();
    for hold in &imported.holds {
        if hold.hold_id.is_empty() {
            continue;
        }
        held += amount(&hold.amount);
        let canonical = legacy_holds
            .iter()
            .find(|(legacy, _)| *legacy == hold.reference)
            .map(|(_, canonical)| canonical.clone())
            .unwrap_or_default();
        placed.push(json!({ "hold_id": canonical, "modern_id": hold.hold_id }));
    }
    json!({
        "modern_id": imported.account.map(|account| account.id).unwrap_or_default(),
        "held": held.to_string(),
        "holds": placed,
    })
}

pub(crate) fn empty(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let posted = amount(&output(&context, "freeze", "posted"));
        let answer = peers
            .legacy
            .clone()
            .empty_account(legacy_request(&context))
            .await;
        outcome(answer, |emptied| {
            if amount(&emptied.moved) != posted {
                return StepOutcome::Failed(format!(
                    "snapshot_mismatch: the legacy core moved {} to suspense, the snapshot \
                     had {posted}",
                    emptied.moved
                ));
            }
            StepOutcome::Done(json!({
                "moved": emptied.moved,
                "suspense_account": emptied.suspense_account,
                "released": emptied.released_hold_ids,
                "journal": emptied.emptied_journal,
            }))
        })
    })
}

pub(crate) fn switch(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let answer = peers
            .homes
            .clone()
            .switch_home(switch_request(&context))
            .await;
        outcome(answer, at_home)
    })
}

/// The gateway's request that serves the moved account from modern, its holds under their
/// new ids.
pub(crate) fn switch_request(context: &StepContext) -> gpb::SwitchHomeRequest {
    let input = MoveInput::of(context);
    let holds = output_list(context, "book", "holds")
        .iter()
        .map(|hold| gpb::HoldHome {
            hold_id: text(hold, "hold_id"),
            id: text(hold, "modern_id"),
        })
        .collect();
    gpb::SwitchHomeRequest {
        account_id: input.account_id.clone(),
        move_id: input.move_id(),
        home: "modern".to_owned(),
        id: output(context, "book", "modern_id"),
        holds,
    }
}

pub(crate) fn verify(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let answer = peers
            .modern
            .clone()
            .get_account(dpb::GetAccountRequest {
                account_id: output(&context, "book", "modern_id"),
            })
            .await;
        outcome(answer, |account| verified(&context, &account))
    })
}

/// `verify`'s outcome for the account as modern answers it: done when its posted balance
/// and what it holds equal the frozen snapshot and the holds booked, to the cent.
pub(crate) fn verified(context: &StepContext, account: &dpb::Account) -> StepOutcome {
    let posted = amount(&output(context, "freeze", "posted"));
    let held = amount(&output(context, "book", "held"));
    let balances = account.balances.clone().unwrap_or_default();
    let (modern_posted, modern_held) = (amount(&balances.posted), amount(&balances.held));
    if modern_posted != posted || modern_held != held {
        return StepOutcome::Failed(format!(
            "snapshot_mismatch: modern has {modern_posted} posted and {modern_held} held, the \
             move expected {posted} and {held}"
        ));
    }
    StepOutcome::Done(json!({ "posted": balances.posted, "held": balances.held }))
}

/// The move's figures in `account_moves`, in the executor's transaction.
fn record() -> Action {
    Action::db(|tx, context| {
        Box::pin(async move {
            let input = MoveInput::of(context);
            let holds = output_list(context, "book", "holds").len();
            crate::store::record_moved(
                tx,
                &input,
                &output(context, "freeze", "posted"),
                &output(context, "book", "held"),
                i64::try_from(holds).unwrap_or(i64::MAX),
                &output(context, "book", "modern_id"),
            )
            .await?;
            Ok(StepOutcome::Done(json!({})))
        })
    })
}

/// A step calling a peer, patient with it: a peer that is down for a while (a restart, a
/// close of business) is waited for, up to about three minutes, before the saga pauses.
pub(crate) fn patient_step(peers: &Arc<Peers>, name: &str, run: CallFn) -> Step {
    Step::new(name, call(peers, run)).retry(PATIENT)
}

/// Up to about three minutes of retries, for a peer that is down for a while.
pub(crate) const PATIENT: RetryPolicy = RetryPolicy {
    attempts: 20,
    initial_backoff: Duration::from_millis(200),
    max_backoff: Duration::from_secs(10),
    jitter: 0.2,
};

/// The `account_move` saga over `peers`, in both its versions (see [`both_versions`]).
pub fn definitions(peers: &Arc<Peers>) -> [SagaDefinition; 2] {
    both_versions(SAGA_TYPE, || {
        let step = |name: &str, run: CallFn| patient_step(peers, name, run);
        vec![
            step("mark", mark).compensate_with(call(peers, unmark)),
            step("freeze", freeze).compensate_with(call(peers, thaw)),
            step("book", book).pivot(),
            step("empty", empty),
            step("switch", switch),
            step("verify", verify),
            step("unmark", unmark_moved),
            Step::new("record", record()),
        ]
    })
}

/// A saga that changes an account's home (a move, a return) from version 1's `steps`:
/// version 2, which first waits for the account's cross-side transfers to settle
/// ([`crate::crossings::drain_step`]), and version 1, for the sagas started before
/// cross-side transfers existed.
pub(crate) fn both_versions(saga_type: &str, steps: impl Fn() -> Vec<Step>) -> [SagaDefinition; 2] {
    let mut drained = steps();
    drained.insert(0, crate::crossings::drain_step());
    [
        SagaDefinition::new(saga_type, 2, drained),
        SagaDefinition::new(saga_type, 1, steps()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_lapses_at_the_end_of_its_last_day() {
        assert_eq!(lapses_at("2026-12-31"), "2027-01-01T00:00:00Z");
        assert_eq!(lapses_at(""), "");
    }

    #[test]
    fn every_request_of_a_move_is_named_by_migration_account_and_step() {
        let input = MoveInput {
            migration_id: "m".to_owned(),
            account_id: "a".to_owned(),
            legacy_account_number: String::new(),
            customer_id: String::new(),
            product_code: String::new(),
            currency: String::new(),
            opened_on: String::new(),
        };
        assert_eq!(input.request_id("book"), input.request_id("book"));
        assert_ne!(input.request_id("book"), input.request_id("empty"));
        assert_eq!(input.move_id(), "m:a");
    }
}
