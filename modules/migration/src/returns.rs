//! The saga that moves an account back to the legacy core (`account_return`, a rollback):
//! the mirror of [`crate::moves`].
//!
//! 0. `drain`: the account's cross-side transfers have settled, as for a move.
//! 1. `mark`: the gateway's directory marks the account moving; undone by clearing it.
//! 2. `export` (the pivot): modern deposits releases the account's holds, posts its final
//!    interest, sweeps its balance to migration clearing and closes it. Refused (an
//!    overdrawn account), the account stays on modern as it was.
//! 3. `restore`: the legacy core books that balance back from suspense and places the holds
//!    again as new locks (the account stays frozen); the balance must equal what modern
//!    handed back.
//! 4. `switch`: the gateway serves it from legacy, its holds under their new ids.
//! 5. `thaw`, 6. `unmark`: channels are served again; 7. `record`: what came back.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::gateway::v1 as gpb;
use corebank_api::legacy::v1 as lpb;
use corebank_saga::{Action, BoxFuture, SagaDefinition, Step, StepContext, StepOutcome};
use serde_json::{Value, json};

use crate::moves::{
    CallFn, MoveInput, amount, begin_move, both_versions, call, end_move, legacy_request, outcome,
    output, output_list, patient_step, switch_home, text, thaw,
};
use crate::peers::Peers;

/// The saga type.
pub const SAGA_TYPE: &str = "account_return";

/// The core keeps at most this much of a lock's description.
const REFERENCE_CHARS_MAX: usize = 35;

fn return_id(input: &MoveInput) -> String {
    format!("return:{}:{}", input.migration_id, input.account_id)
}

fn modern_id(context: &StepContext) -> String {
    text(&context.input, "modern_id")
}

/// The last day a hold lapsing at `expires_at` is in force (the core's `TO.DATE`).
fn last_day(expires_at: &str) -> String {
    DateTime::parse_from_rfc3339(expires_at)
        .map(|at| {
            (at.with_timezone(&Utc) - TimeDelta::seconds(1))
                .date_naive()
                .to_string()
        })
        .unwrap_or_default()
}

fn mark(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        begin_move(&peers, &input, return_id(&input), "modern").await
    })
}

fn unmark(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        end_move(&peers, &input, return_id(&input)).await
    })
}

fn export(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        let answer = peers
            .import
            .clone()
            .export_account(dpb::ExportAccountRequest {
                request_id: input.request_id("return-export"),
                account_id: modern_id(&context),
                reference: input.legacy_account_number.clone(),
            })
            .await;
        outcome(answer, |exported| {
            let holds: Vec<Value> = exported
                .holds
                .iter()
                .map(|hold| {
                    json!({
                        "hold_id": hold.hold_id,
                        "amount": hold.amount,
                        "expires_at": hold.expires_at,
                        "reason": hold.reason,
                    })
                })
                .collect();
            StepOutcome::Done(json!({ "paid_out": exported.paid_out, "holds": holds }))
        })
    })
}

fn restore(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let paid_out = output(&context, "export", "paid_out");
        let holds = output_list(&context, "export", "holds")
            .iter()
            .map(|hold| lpb::HoldToRestore {
                amount: text(hold, "amount"),
                to_date: last_day(&text(hold, "expires_at")),
                reference: text(hold, "reason")
                    .chars()
                    .take(REFERENCE_CHARS_MAX)
                    .collect(),
            })
            .collect();
        let answer = peers
            .legacy
            .clone()
            .restore_account(lpb::RestoreAccountRequest {
                account_id: legacy_request(&context).account_id,
                amount: paid_out.clone(),
                holds,
            })
            .await;
        outcome(answer, |restored| {
            if amount(&restored.posted) != amount(&paid_out) {
                return StepOutcome::Failed(format!(
                    "snapshot_mismatch: the legacy core holds {} after the return, modern \
                     handed back {paid_out}",
                    restored.posted
                ));
            }
            let holds: Vec<String> = restored.holds.iter().map(|h| h.hold_id.clone()).collect();
            StepOutcome::Done(json!({ "posted": restored.posted, "holds": holds }))
        })
    })
}

fn switch(peers: Arc<Peers>, context: StepContext) -> BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let input = MoveInput::of(&context);
        let placed = output_list(&context, "restore", "holds");
        // The core answers its live locks in the order it placed them.
        let holds = output_list(&context, "export", "holds")
            .iter()
            .zip(placed)
            .map(|(hold, id)| gpb::HoldHome {
                hold_id: text(hold, "hold_id"),
                id: id.as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let legacy_id = input.account_id.clone();
        switch_home(
            &peers,
            &input,
            return_id(&input),
            "legacy",
            legacy_id,
            holds,
        )
        .await
    })
}

/// What came back, in `account_moves`, in the executor's transaction.
fn record() -> Action {
    Action::db(|tx, context| {
        Box::pin(async move {
            let input = MoveInput::of(context);
            crate::store::record_returned(tx, &input, &output(context, "export", "paid_out"))
                .await?;
            Ok(StepOutcome::Done(json!({})))
        })
    })
}

/// The `account_return` saga over `peers`, in both its versions (see
/// [`crate::moves::both_versions`]).
pub fn definitions(peers: &Arc<Peers>) -> [SagaDefinition; 2] {
    both_versions(SAGA_TYPE, || {
        let step = |name: &str, run: CallFn| patient_step(peers, name, run);
        vec![
            step("mark", mark).compensate_with(call(peers, unmark)),
            step("export", export).pivot(),
            step("restore", restore),
            step("switch", switch),
            step("thaw", thaw),
            step("unmark", unmark),
            Step::new("record", record()),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hold_lapsing_at_midnight_was_in_force_the_day_before() {
        assert_eq!(last_day("2027-01-01T00:00:00Z"), "2026-12-31");
        assert_eq!(last_day("2026-12-31T15:30:00Z"), "2026-12-31");
        assert_eq!(last_day(""), "");
    }
}
