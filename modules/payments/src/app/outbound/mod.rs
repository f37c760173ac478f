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

mod screening;
mod steps;

pub(crate) use screening::{hit_reason, hits_json};
use screening::{review_step, screen_step};
use steps::{
    await_status, call, hold_placed, initiated, place_hold, rail_knows, record_step, release_hold,
    send, settle, unwound,
};

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
