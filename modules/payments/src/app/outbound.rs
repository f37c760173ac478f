//! The outbound payment saga, `payments.outbound` (version 2; version 1, kept for payments
//! started before, lacks step 4 and the sanctions lists):
//!
//! 1. `initiate` (database step): the payment's first event; its compensation records why
//!    the payment failed or was cancelled.
//! 2. `hold` (call): a hold on the debtor's deposit account; undone by releasing it.
//! 3. `screen` (database step): amount threshold, velocity, blocklist; a refusal unwinds.
//!    Then the creditor's name against the sanctions lists: a possible hit holds the
//!    payment (status `screening_review`, a `screening_reviews` row, an event).
//! 4. `screening_review` (database step): a held payment waits here, the saga paused
//!    ([`StepOutcome::Await`]), until `PaymentsReview/DecideScreening` records a four-eyes
//!    decision and resumes it: released, it goes on; refused, it unwinds.
//! 5. `send` (call, **the pivot**): the pacs.008 to the clearing rail. A lost answer is
//!    settled by asking the rail whether it has the UETR.
//! 6. `await_status` (call): the rail's pacs.002, received on the callback; when none came
//!    within `status_wait`, the rail is asked.
//! 7. `settle` (call): accepted → the hold is captured to the clearing account;
//!    rejected → the hold is released. Either way the saga completes (forward only).
//! 8. `record` (database step): the payment's final status and its event
//!    (`payments.outbound.settled|rejected`), exactly once with the saga's completion.
//!
//! A payment that unwinds before the pivot gets its `payments.outbound.failed` event from
//! the compensation of `initiate`, in the same way.
//!
//! Every call carries an idempotency key derived from (saga id, step, do/undo), and the
//! UETR and end-to-end id of the payment travel in every message.

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::payments::v1 as pb;
use corebank_kernel::{Currency, Money};
use corebank_saga::{
    Action, QueryOutcome, RetryPolicy, SagaDefinition, Status, Step, StepContext, StepOutcome,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Parts, PaymentRecord, Payments, derived_id, from_deposits, parse_id, tx_error};
use crate::app::sanctions::SanctionsList;
use crate::domain::error::PaymentsError;
use crate::domain::screening::screen;
use crate::store;

/// The saga type of outbound payments.
pub const SAGA_TYPE: &str = "payments.outbound";

/// Test switches for the saga's four tests.
#[derive(Debug, Clone, Default)]
pub struct SagaOptions {
    /// Run every action twice in a row (each must give the same answer).
    pub actions_twice: bool,
    /// Run every compensation twice in a row.
    pub compensations_twice: bool,
}

fn module(parts: &Parts) -> Result<&Parts, StepOutcome> {
    Ok(parts)
}

fn field<'a>(input: &'a Value, name: &str) -> &'a str {
    input.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// A deposits refusal as a step outcome: business refusals fail the step, the rest retry.
fn outcome_of(error: &PaymentsError) -> StepOutcome {
    match error {
        PaymentsError::Unavailable { .. } | PaymentsError::Internal { .. } => {
            StepOutcome::Transient(error.to_string())
        }
        other => StepOutcome::Failed(format!("{}: {other}", other.code())),
    }
}

type CallFn = fn(Arc<Parts>, StepContext) -> corebank_saga::BoxFuture<'static, StepOutcome>;

/// A call, run twice in a row when asked (the second must answer the same).
fn call(slot: &Arc<Parts>, f: CallFn, twice: bool) -> Action {
    let slot = Arc::clone(slot);
    Action::call(move |context| {
        let slot = Arc::clone(&slot);
        Box::pin(async move {
            let first = f(Arc::clone(&slot), context.clone()).await;
            if !twice || !matches!(first, StepOutcome::Done(_)) {
                return first;
            }
            let second = f(slot, context).await;
            if second == first {
                second
            } else {
                StepOutcome::Failed(format!(
                    "the second run answered {second:?}, the first {first:?}"
                ))
            }
        })
    })
}

/// Places the payment's hold, or finds it: Deposits/PlaceHold is idempotent by request id,
/// and the request id is derived from the `hold` step's do-key, so every call (the action,
/// its retries, its query, the compensation) names the same hold.
async fn hold_for(payments: &Parts, context: &StepContext) -> Result<String, PaymentsError> {
    let input = &context.input;
    let key = StepContext::key_for(context.saga_id, "hold", corebank_saga::Direction::Do);
    payments
        .deposits
        .clone()
        .place_hold(dpb::PlaceHoldRequest {
            request_id: derived_id("hold", &key).to_string(),
            account_id: field(input, "debtor_account_id").to_owned(),
            amount: field(input, "amount").to_owned(),
            currency: field(input, "currency").to_owned(),
            reason: format!("outbound payment {}", context.saga_id),
            expires_in_seconds: 0,
        })
        .await
        .map(|hold| hold.into_inner().id)
        .map_err(|status| from_deposits(&status))
}

fn place_hold(
    slot: Arc<Parts>,
    context: StepContext,
) -> corebank_saga::BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        match hold_for(&slot, &context).await {
            Ok(hold_id) => StepOutcome::Done(json!({ "hold_id": hold_id })),
            // No answer: the hold may be in place; the query (the same idempotent call)
            // decides, and a forced compensation releases it.
            Err(error @ (PaymentsError::Unavailable { .. } | PaymentsError::Internal { .. })) => {
                StepOutcome::Unknown(error.to_string())
            }
            Err(error) => outcome_of(&error),
        }
    })
}

fn hold_placed(slot: &Arc<Parts>) -> corebank_saga::definition::QueryFn {
    let slot = Arc::clone(slot);
    Arc::new(move |context: StepContext| {
        let slot = Arc::clone(&slot);
        Box::pin(async move {
            match hold_for(&slot, &context).await {
                Ok(hold_id) => QueryOutcome::Applied(json!({ "hold_id": hold_id })),
                Err(
                    error @ (PaymentsError::Unavailable { .. } | PaymentsError::Internal { .. }),
                ) => QueryOutcome::Unknown(error.to_string()),
                Err(_) => QueryOutcome::NotApplied,
            }
        })
    })
}

fn release_hold(
    slot: Arc<Parts>,
    context: StepContext,
) -> corebank_saga::BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let payments = match module(&slot) {
            Ok(payments) => payments,
            Err(outcome) => return outcome,
        };
        let hold_id = match context
            .outputs
            .get("hold")
            .and_then(|o| o.get("hold_id"))
            .and_then(Value::as_str)
        {
            Some(hold_id) => hold_id.to_owned(),
            // The hold's outcome was never known: find it (placing it if it never was) so
            // that releasing it leaves nothing behind.
            None => match hold_for(payments, &context).await {
                Ok(hold_id) => hold_id,
                Err(PaymentsError::Deposits { .. } | PaymentsError::InvalidArgument { .. }) => {
                    return StepOutcome::Done(json!({ "released": false }));
                }
                Err(error) => return StepOutcome::Transient(error.to_string()),
            },
        };
        let hold_id = hold_id.as_str();
        let answer = payments
            .deposits
            .clone()
            .release_hold(dpb::ReleaseHoldRequest {
                request_id: derived_id("release", &context.idempotency_key).to_string(),
                hold_id: hold_id.to_owned(),
            })
            .await;
        match answer {
            Ok(_) => StepOutcome::Done(json!({ "released": true })),
            Err(status) => match from_deposits(&status) {
                // Released or expired already: nothing left to undo.
                PaymentsError::Deposits { code, .. } if code == "hold_not_held" => {
                    StepOutcome::Done(json!({ "released": true }))
                }
                other => StepOutcome::Transient(other.to_string()),
            },
        }
    })
}

fn send(slot: Arc<Parts>, context: StepContext) -> corebank_saga::BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let payments = match module(&slot) {
            Ok(payments) => payments,
            Err(outcome) => return outcome,
        };
        let xml = match super::messages::pacs008_for(
            &payments.config.bank_bic,
            context.saga_id,
            &context.input,
        ) {
            Ok(xml) => xml,
            Err(error) => return StepOutcome::Failed(error.to_string()),
        };
        let url = match super::rail::endpoint(&payments.config.rail_url, "/pacs008") {
            Ok(url) => url,
            Err(error) => return StepOutcome::Failed(error.to_string()),
        };
        match payments.call_rail(reqwest::Method::POST, &url, xml).await {
            Ok(response) if response.status().is_success() => {
                StepOutcome::Done(json!({ "sent": true }))
            }
            Ok(response) if response.status().is_client_error() => {
                let code = response.status();
                let body = super::rail::read_limited(response, super::rail::RAIL_MESSAGE_BYTES_MAX)
                    .await
                    .map(|body| String::from_utf8_lossy(&body).into_owned())
                    .unwrap_or_default();
                StepOutcome::Failed(format!("the rail refused the pacs.008 ({code}): {body}"))
            }
            Ok(response) => {
                StepOutcome::Unknown(format!("the rail answered {}", response.status()))
            }
            Err(error) => StepOutcome::Unknown(format!("no answer from the rail: {error}")),
        }
    })
}

/// Whether the rail knows the payment: what settles a `send` whose answer was lost.
fn rail_knows(slot: &Arc<Parts>) -> corebank_saga::definition::QueryFn {
    let slot = Arc::clone(slot);
    Arc::new(move |context: StepContext| {
        let slot = Arc::clone(&slot);
        Box::pin(async move {
            let payments = &*slot;
            match super::rail::rail_status(payments, field(&context.input, "uetr")).await {
                Ok(Some(_)) => QueryOutcome::Applied(json!({ "sent": true })),
                Ok(None) => QueryOutcome::NotApplied,
                Err(error) => QueryOutcome::Unknown(error.to_string()),
            }
        })
    })
}

fn await_status(
    slot: Arc<Parts>,
    context: StepContext,
) -> corebank_saga::BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let payments = match module(&slot) {
            Ok(payments) => payments,
            Err(outcome) => return outcome,
        };
        let Ok(uetr) = Uuid::parse_str(field(&context.input, "uetr")) else {
            return StepOutcome::Failed("the payment has no UETR".to_owned());
        };
        let received = payments
            .db
            .run_tx("payments_status_report", |tx| {
                Box::pin(async move { store::status_report(&tx, uetr).await })
            })
            .await;
        let report = match received {
            Ok(Some(report)) => Some(report),
            Ok(None) => {
                // No pacs.002 yet: after the wait, ask the rail instead of waiting forever.
                let sent_at = context
                    .input
                    .get("initiated_at")
                    .and_then(Value::as_str)
                    .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.with_timezone(&Utc))
                    .unwrap_or_else(Utc::now);
                let waited = Utc::now() - sent_at;
                if waited < TimeDelta::from_std(payments.config.status_wait).unwrap_or_default() {
                    None
                } else {
                    match super::rail::rail_status(payments, &uetr.to_string()).await {
                        Ok(Some(Some(report))) if report.0 == "ACSC" || report.0 == "RJCT" => {
                            Some(report)
                        }
                        Ok(_) => None,
                        Err(error) => return StepOutcome::Transient(error.to_string()),
                    }
                }
            }
            Err(error) => return StepOutcome::Transient(error.to_string()),
        };
        match report {
            Some((status, reason)) if status == "RJCT" => {
                StepOutcome::Done(json!({ "status": "rejected", "reason": reason }))
            }
            Some((status, _)) if status == "ACSC" => {
                StepOutcome::Done(json!({ "status": "accepted" }))
            }
            Some(_) => StepOutcome::Transient("the rail's status is not final yet".to_owned()),
            None => StepOutcome::Transient("waiting for the rail's pacs.002".to_owned()),
        }
    })
}

fn settle(
    slot: Arc<Parts>,
    context: StepContext,
) -> corebank_saga::BoxFuture<'static, StepOutcome> {
    Box::pin(async move {
        let payments = match module(&slot) {
            Ok(payments) => payments,
            Err(outcome) => return outcome,
        };
        let accepted = context
            .outputs
            .get("await_status")
            .and_then(|o| o.get("status"))
            .and_then(Value::as_str)
            == Some("accepted");
        let Some(hold_id) = context
            .outputs
            .get("hold")
            .and_then(|o| o.get("hold_id"))
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return StepOutcome::Failed("the payment has no hold".to_owned());
        };
        let request_id = derived_id("settle", &context.idempotency_key).to_string();
        let mut deposits = payments.deposits.clone();
        let answer = if accepted {
            deposits
                .capture_hold(dpb::CaptureHoldRequest {
                    request_id,
                    hold_id,
                    destination: "clearing".to_owned(),
                })
                .await
        } else {
            deposits
                .release_hold(dpb::ReleaseHoldRequest {
                    request_id,
                    hold_id,
                })
                .await
        };
        match answer {
            Ok(_) => StepOutcome::Done(
                json!({ "settled": if accepted { "captured" } else { "released" } }),
            ),
            Err(status) => match from_deposits(&status) {
                PaymentsError::Unavailable { .. } | PaymentsError::Internal { .. } => {
                    StepOutcome::Transient(status.message().to_owned())
                }
                // After the pivot there is no unwinding: the saga pauses for an operator.
                other => StepOutcome::Failed(other.to_string()),
            },
        }
    })
}

fn screen_step<'a>(
    tx: &'a corebank_db::Transaction<'a>,
    context: &'a StepContext,
    rules: crate::domain::screening::ScreeningRules,
    sanctions: Option<Arc<SanctionsList>>,
) -> corebank_saga::BoxFuture<'a, Result<StepOutcome, corebank_db::DbError>> {
    Box::pin(async move {
        let input = &context.input;
        let amount: Decimal = field(input, "amount").parse().unwrap_or_default();
        let debtor = field(input, "debtor_account_id").to_owned();
        let entries = vec![
            field(input, "creditor_account").to_owned(),
            field(input, "creditor_name").to_owned(),
        ];
        let since = Utc::now() - TimeDelta::hours(1);
        let (count, blocked) = tokio::join!(
            store::count_since(tx, &debtor, since),
            store::blocklisted(tx, &entries)
        );
        let count = count.map_err(db_error)?;
        let blocked = blocked.map_err(db_error)?;
        if let Err(reason) = screen(&rules, amount, count, blocked.as_deref()) {
            return Ok(StepOutcome::Failed(reason));
        }
        let Some(sanctions) = sanctions else {
            // Version 1 of the saga, kept for payments started before the lists were read.
            return Ok(StepOutcome::Done(json!({ "screened": true })));
        };
        let name = field(input, "creditor_name");
        let hits = sanctions.screen(name, field(input, "currency"));
        if !hits.is_empty() {
            // A possible hit holds the payment for a four-eyes review (ADR 0011): what was
            // found is kept for the reviewers, and the payment says it waits.
            let found = hits_json(&hits);
            store::reviews::hold(tx, context.saga_id, "outbound", name, &found, Utc::now())
                .await
                .map_err(db_error)?;
            record_outcome(tx, context, "screening_review", &hit_reason(&hits)).await?;
            metrics::counter!("corebank_payments_screening_holds_total", "direction" => "outbound")
                .increment(1);
            return Ok(StepOutcome::Done(
                json!({ "screened": true, "hits": found }),
            ));
        }
        Ok(StepOutcome::Done(json!({ "screened": true, "hits": [] })))
    })
}

/// Possible hits as stored and shown to reviewers.
pub(crate) fn hits_json(hits: &[crate::domain::sanctions::matching::Hit]) -> Value {
    Value::Array(
        hits.iter()
            .map(|hit| {
                json!({
                    "list": hit.list,
                    "id": hit.id,
                    "listed_name": hit.listed_name,
                    "score": (hit.score * 1000.0).round() / 1000.0,
                })
            })
            .collect(),
    )
}

/// Why a payment waits: its best possible hit, and how many more there are.
pub(crate) fn hit_reason(hits: &[crate::domain::sanctions::matching::Hit]) -> String {
    let Some(best) = hits.first() else {
        return String::new();
    };
    let more = match hits.len() - 1 {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "screening: possible sanctions hit on {:?} ({} {}, score {:.3}){more}: awaiting a four-eyes review",
        best.listed_name, best.list, best.id, best.score
    )
}

/// Step `screening_review` (version 2): a payment with a possible hit waits here, paused,
/// until two operators decide (`PaymentsReview/DecideScreening`); a release goes on to the
/// rail, a refusal fails the payment and its hold is released by the compensations.
fn review_step<'a>(
    tx: &'a corebank_db::Transaction<'a>,
    context: &'a StepContext,
) -> corebank_saga::BoxFuture<'a, Result<StepOutcome, corebank_db::DbError>> {
    Box::pin(async move {
        let held = context
            .outputs
            .get("screen")
            .and_then(|o| o.get("hits"))
            .and_then(Value::as_array)
            .is_some_and(|hits| !hits.is_empty());
        if !held {
            return Ok(StepOutcome::Done(json!({ "review": "not_needed" })));
        }
        let review = store::reviews::get(tx, context.saga_id)
            .await
            .map_err(db_error)?;
        Ok(match review {
            Some(r) if r.decision == "release" => StepOutcome::Done(json!({
                "review": "released",
                "proposed_by": r.proposed_by,
                "approved_by": r.approved_by,
                "reason": r.reason,
            })),
            Some(r) if r.decision == "refuse" => StepOutcome::Failed(format!(
                "screening: refused on review by {} (proposed by {}): {}",
                r.approved_by, r.proposed_by, r.reason
            )),
            _ => StepOutcome::Await(format!(
                "{REVIEW_STEP}: a possible sanctions hit awaits a four-eyes decision \
                 (PaymentsReview/DecideScreening)"
            )),
        })
    })
}

/// The outbox of the payments schema.
fn outbox() -> Result<corebank_outbox::Outbox, corebank_db::DbError> {
    corebank_outbox::SchemaName::new("payments")
        .map(corebank_outbox::Outbox::new)
        .map_err(|e| corebank_db::DbError::Unavailable {
            message: e.to_string(),
        })
}

/// Writes a payment's status and its event, in the step's transaction.
async fn record_outcome(
    tx: &corebank_db::Transaction<'_>,
    context: &StepContext,
    status: &str,
    reason: &str,
) -> Result<(), corebank_db::DbError> {
    let payment_id = context.saga_id;
    store::set_status(tx, payment_id, status, reason, Utc::now())
        .await
        .map_err(db_error)?;
    let event = corebank_outbox::NewEvent::new(
        corebank_outbox::AggregateRef::new("payment", payment_id.to_string()).map_err(|e| {
            corebank_db::DbError::Unavailable {
                message: e.to_string(),
            }
        })?,
        &format!("payments.outbound.{status}"),
        json!({
            "payment_id": payment_id,
            "uetr": field(&context.input, "uetr"),
            "end_to_end_id": field(&context.input, "end_to_end_id"),
            "debtor_account_id": field(&context.input, "debtor_account_id"),
            "amount": field(&context.input, "amount"),
            "currency": field(&context.input, "currency"),
            "reason": reason,
        }),
    )
    .map_err(|e| corebank_db::DbError::Unavailable {
        message: e.to_string(),
    })?;
    outbox()?
        .append_one::<PaymentsError>(tx, &event)
        .await
        .map_err(db_error)?;
    Ok(())
}

fn record_step<'a>(
    tx: &'a corebank_db::Transaction<'a>,
    context: &'a StepContext,
) -> corebank_saga::BoxFuture<'a, Result<StepOutcome, corebank_db::DbError>> {
    Box::pin(async move {
        let answer = context.outputs.get("await_status");
        let rejected =
            answer.and_then(|o| o.get("status")).and_then(Value::as_str) == Some("rejected");
        let reason = answer
            .and_then(|o| o.get("reason"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let status = if rejected { "rejected" } else { "settled" };
        record_outcome(tx, context, status, reason).await?;
        Ok(StepOutcome::Done(json!({ "status": status })))
    })
}

/// Step `initiate`: the payment's first event.
fn initiated<'a>(
    tx: &'a corebank_db::Transaction<'a>,
    context: &'a StepContext,
) -> corebank_saga::BoxFuture<'a, Result<StepOutcome, corebank_db::DbError>> {
    Box::pin(async move {
        record_outcome(tx, context, "initiated", "").await?;
        Ok(StepOutcome::Done(json!({ "recorded": true })))
    })
}

/// The compensation of `initiate`, which runs last when a payment unwinds: it records that
/// the payment failed, or was cancelled, with the reason.
fn unwound<'a>(
    tx: &'a corebank_db::Transaction<'a>,
    context: &'a StepContext,
) -> corebank_saga::BoxFuture<'a, Result<StepOutcome, corebank_db::DbError>> {
    Box::pin(async move {
        let failure: String = tx
            .query_opt(
                "SELECT failure FROM saga_instances WHERE id = $1",
                &[&context.saga_id],
            )
            .await?
            .map(|row| row.get(0))
            .unwrap_or_default();
        let cancellation: Option<String> = tx
            .query_opt(
                "SELECT reason FROM saga_operator_actions WHERE saga_id = $1 \
                 AND action = 'force_compensate' ORDER BY at DESC LIMIT 1",
                &[&context.saga_id],
            )
            .await?
            .map(|row| row.get(0));
        let (status, reason) = match cancellation {
            Some(reason) => ("cancelled", reason),
            None => ("failed", failure),
        };
        record_outcome(tx, context, status, &reason).await?;
        Ok(StepOutcome::Done(json!({ "status": status })))
    })
}

fn db_error(error: corebank_db::TxError<PaymentsError>) -> corebank_db::DbError {
    match error {
        corebank_db::TxError::Db(error) => error,
        corebank_db::TxError::Abort(error) => corebank_db::DbError::Unavailable {
            message: error.to_string(),
        },
    }
}

/// The step a payment with a possible sanctions hit waits at (version 2).
pub const REVIEW_STEP: &str = "screening_review";

/// The saga definitions: version 2 (new payments: the sanctions lists are consulted and a
/// possible hit waits in `screening_review`) and version 1 (without, for payments started
/// before). Their steps work with the module's `parts`.
pub fn definitions(slot: Arc<Parts>, options: &SagaOptions) -> Vec<SagaDefinition> {
    vec![definition(&slot, options, 1), definition(&slot, options, 2)]
}

fn definition(slot: &Arc<Parts>, options: &SagaOptions, version: i64) -> SagaDefinition {
    let twice = options.actions_twice;
    let undo_twice = options.compensations_twice;
    let screening_slot = Arc::clone(slot);
    let screen_action = Action::db(move |tx, context| {
        let rules = screening_slot.config.screening.clone();
        let sanctions = (version >= 2).then(|| Arc::clone(&screening_slot.config.sanctions));
        screen_step(tx, context, rules, sanctions)
    });
    let quick = RetryPolicy {
        attempts: 8,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(5),
        jitter: 0.2,
    };
    let waiting = RetryPolicy {
        attempts: 200,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(500),
        jitter: 0.2,
    };
    let mut steps = vec![
        Step::new("initiate", Action::db(initiated))
            .compensate_with(Action::db(unwound))
            .retry(quick),
        Step::new("hold", call(slot, place_hold, twice))
            .compensate_with(call(slot, release_hold, undo_twice))
            .query_with(hold_placed(slot))
            .retry(quick),
        Step::new("screen", screen_action).retry(quick),
    ];
    if version >= 2 {
        steps.push(Step::new(REVIEW_STEP, Action::db(review_step)).retry(quick));
    }
    steps.extend([
        Step::new("send", call(slot, send, twice))
            .query_with(rail_knows(slot))
            .retry(quick)
            .pivot(),
        Step::new("await_status", call(slot, await_status, twice)).retry(waiting),
        Step::new("settle", call(slot, settle, twice)).retry(quick),
        Step::new("record", Action::db(record_step)).retry(quick),
    ]);
    SagaDefinition::new(SAGA_TYPE, version, steps)
}

/// What a client asks to pay.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub request_id: String,
    pub debtor_account_id: String,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_agent_bic: String,
    pub amount: String,
    pub currency: String,
    pub end_to_end_id: String,
    pub remittance_information: String,
}

/// A payment as clients see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentView {
    pub record: PaymentRecord,
    pub status: String,
    pub reason: String,
    pub steps: Vec<pb::PaymentStep>,
    pub replayed: bool,
}

fn bic_ok(bic: &str) -> bool {
    (bic.len() == 8 || bic.len() == 11)
        && bic
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Payments {
    /// Validates and starts an outbound payment; the saga runs on.
    pub async fn initiate(&self, new: NewPayment) -> Result<PaymentView, PaymentsError> {
        let request_id = parse_id("request_id", &new.request_id)?;
        parse_id("debtor_account_id", &new.debtor_account_id)?;
        let currency = Currency::from_code(&new.currency)
            .map_err(|e| PaymentsError::invalid("currency", e.to_string()))?;
        let money = Money::parse(&new.amount, currency)
            .map_err(|e| PaymentsError::invalid("amount", e.to_string()))?;
        if money.amount() <= Decimal::ZERO {
            return Err(PaymentsError::invalid("amount", "must be more than zero"));
        }
        if new.creditor_name.trim().is_empty() || new.creditor_name.len() > 140 {
            return Err(PaymentsError::invalid("creditor.name", "1-140 characters"));
        }
        if new.creditor_account.trim().is_empty() || new.creditor_account.len() > 34 {
            return Err(PaymentsError::invalid(
                "creditor.account",
                "1-34 characters",
            ));
        }
        if !bic_ok(&new.creditor_agent_bic) {
            return Err(PaymentsError::invalid(
                "creditor.agent_bic",
                "a BIC: 8 or 11 capital letters and digits",
            ));
        }
        if new.end_to_end_id.len() > 35 {
            return Err(PaymentsError::invalid(
                "end_to_end_id",
                "at most 35 characters",
            ));
        }
        let content = json!({
            "debtor_account_id": new.debtor_account_id,
            "creditor_name": new.creditor_name,
            "creditor_account": new.creditor_account,
            "creditor_agent_bic": new.creditor_agent_bic,
            "amount": money.amount_string(),
            "currency": currency.code(),
            "end_to_end_id": new.end_to_end_id,
            "remittance_information": new.remittance_information,
        });
        let id = derived_id("payment", &request_id.to_string());
        let uetr = derived_id("uetr", &request_id.to_string());
        let end_to_end_id = if new.end_to_end_id.is_empty() {
            id.simple().to_string()[..32].to_owned()
        } else {
            new.end_to_end_id.clone()
        };
        let now = Utc::now();
        let record = PaymentRecord {
            id,
            request_id,
            direction: "outbound".to_owned(),
            status: "initiated".to_owned(),
            debtor_account_id: new.debtor_account_id.clone(),
            debtor_name: String::new(),
            creditor_name: new.creditor_name.clone(),
            creditor_account: new.creditor_account.clone(),
            creditor_agent_bic: new.creditor_agent_bic.clone(),
            amount: money.amount(),
            currency: currency.code().to_owned(),
            end_to_end_id: end_to_end_id.clone(),
            uetr,
            remittance_information: new.remittance_information.clone(),
            reason: String::new(),
            content: content.clone(),
            created_at: now,
            updated_at: now,
        };
        let saga_input = json!({
            "payment_id": id,
            "debtor_account_id": record.debtor_account_id,
            "creditor_name": record.creditor_name,
            "creditor_account": record.creditor_account,
            "creditor_agent_bic": record.creditor_agent_bic,
            "amount": money.amount_string(),
            "currency": record.currency,
            "end_to_end_id": end_to_end_id,
            "uetr": uetr,
            "remittance_information": record.remittance_information,
            "initiated_at": now.to_rfc3339(),
        });
        let registry = Arc::clone(self.executor.registry());
        let record_ref = &record;
        let saga_input = &saga_input;
        let (stored, inserted) = self
            .db
            .run_tx("payments_initiate", |tx| {
                let registry = Arc::clone(&registry);
                Box::pin(async move {
                    let (stored, inserted) = store::insert(&tx, record_ref).await?;
                    if inserted {
                        corebank_saga::start(
                            &tx,
                            &registry,
                            &corebank_saga::NewSaga {
                                id: stored.id,
                                saga_type: SAGA_TYPE.to_owned(),
                                input: saga_input.clone(),
                                business_key: stored.uetr.to_string(),
                            },
                        )
                        .await
                        .map_err(|e| match e {
                            corebank_db::TxError::Abort(e) => corebank_db::TxError::Abort(e.into()),
                            corebank_db::TxError::Db(e) => corebank_db::TxError::Db(e),
                        })?;
                    }
                    Ok((stored, inserted))
                })
            })
            .await
            .map_err(tx_error)?;
        if !inserted {
            if stored.content != content {
                let field = content
                    .as_object()
                    .and_then(|fields| {
                        fields
                            .iter()
                            .find(|(k, v)| stored.content.get(*k) != Some(*v))
                            .map(|(k, _)| k.clone())
                    })
                    .unwrap_or_else(|| "content".to_owned());
                return Err(PaymentsError::ExistsWithDifferent {
                    request_id: request_id.to_string(),
                    field,
                });
            }
            let mut view = self.payment(stored.id).await?;
            view.replayed = true;
            return Ok(view);
        }
        metrics::counter!("corebank_payments_outbound_initiated_total").increment(1);
        self.executor.nudge();
        self.payment(id).await
    }

    /// A payment with its saga's steps.
    pub async fn payment(&self, id: Uuid) -> Result<PaymentView, PaymentsError> {
        let record = self
            .db
            .run_tx("payments_get", |tx| {
                Box::pin(async move { store::by_id(&tx, id).await })
            })
            .await
            .map_err(tx_error)?
            .ok_or_else(|| PaymentsError::UnknownPayment {
                payment_id: id.to_string(),
            })?;
        if record.direction == "inbound" {
            return Ok(PaymentView {
                status: record.status.clone(),
                reason: record.reason.clone(),
                record,
                steps: Vec::new(),
                replayed: false,
            });
        }
        let detail = corebank_saga::ops::get(&self.db, id).await?;
        let saga = &detail.instance;
        let outputs = &saga.outputs;
        // The step the saga is at (the next to do), by name: versions number them apart.
        let at = self
            .executor
            .registry()
            .get(&saga.saga_type, saga.version)
            .and_then(|d| d.steps.get(saga.current_step).map(|s| s.name.clone()));
        let at = at.as_deref();
        let (status, reason) = match saga.status {
            Status::Completed => match outputs
                .get("await_status")
                .and_then(|o| o.get("status"))
                .and_then(Value::as_str)
            {
                Some("rejected") => (
                    "rejected",
                    outputs["await_status"]
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                ),
                _ => ("settled", String::new()),
            },
            Status::Compensating => ("unwinding", saga.failure.clone()),
            Status::Compensated => {
                if saga.failure.contains("cancelled") || saga.failure.contains("forced") {
                    ("cancelled", saga.failure.clone())
                } else {
                    ("failed", saga.failure.clone())
                }
            }
            Status::Paused
                if at == Some(REVIEW_STEP)
                    && saga.paused_from == Some(Status::Running)
                    && record.status == "screening_review" =>
            {
                ("screening_review", record.reason.clone())
            }
            Status::Paused => ("attention", saga.paused_reason.clone()),
            Status::Running => match at.unwrap_or_default() {
                "initiate" | "hold" => ("initiated", String::new()),
                "screen" => ("held", String::new()),
                // Decided, and about to go on: the decision says which way.
                REVIEW_STEP if record.status == "screening_review" => {
                    match detail.operator_actions.last().map(|a| a.action.as_str()) {
                        Some("screening_release") => ("screened", String::new()),
                        Some("screening_refuse") => ("unwinding", record.reason.clone()),
                        _ => ("screening_review", record.reason.clone()),
                    }
                }
                REVIEW_STEP | "send" => ("screened", String::new()),
                "await_status" => ("sent", String::new()),
                // The rail answered; the hold is being captured or released.
                _ => ("settling", String::new()),
            },
        };
        let steps = detail
            .steps
            .iter()
            .map(|s| pb::PaymentStep {
                step: s.step_name.clone(),
                direction: s.direction.clone(),
                attempt: s.attempt,
                outcome: s.outcome.clone(),
                error: s.error.clone(),
                started_at: s.started_at.to_rfc3339(),
                ended_at: s.ended_at.to_rfc3339(),
            })
            .collect();
        Ok(PaymentView {
            record,
            status: status.to_owned(),
            reason,
            steps,
            replayed: false,
        })
    }
}
