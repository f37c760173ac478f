//! The four-eyes decision on a payment that sanctions screening held (ADR 0011):
//! `PaymentsReview/DecideScreening`. One operator proposed it in the gateway, another (the
//! approver, whom the gateway asserts) approves it; both are kept with the decision.
//!
//! - Outbound: the decision is stored and the saga, paused in `screening_review`, resumed in
//!   the same transaction (recorded as its operator action `screening_release` or
//!   `screening_refuse`): released, the payment goes on to the rail; refused, it fails and
//!   its hold is released by the compensations.
//! - Inbound: released, the payment is credited (or returned when it cannot be); refused,
//!   it stays uncredited as `refused` (no return: returning funds to a listed party is a
//!   transfer to it; the amount stays on the clearing account for the compliance report).
//!   The decision is stored first; the credit or the refusal follows, and a repeat of the
//!   same decision completes it when a crash came between.

use chrono::Utc;
use corebank_saga::ops::Actor;

use super::messages::Inbound;
use super::outbound::{PaymentView, REVIEW_STEP};
use super::{PaymentRecord, Payments, parse_id, tx_error};
use crate::domain::error::PaymentsError;
use crate::store;
use crate::store::reviews::ScreeningReview;

/// A reviewer's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Release,
    Refuse,
}

impl Decision {
    pub fn parse(text: &str) -> Result<Decision, PaymentsError> {
        match text {
            "release" => Ok(Decision::Release),
            "refuse" => Ok(Decision::Refuse),
            other => Err(PaymentsError::invalid(
                "decision",
                format!("{other:?} is not a decision: release or refuse"),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Release => "release",
            Decision::Refuse => "refuse",
        }
    }
}

/// The message an inbound payment came in, as stored.
fn inbound_of(record: &PaymentRecord) -> Inbound {
    Inbound {
        msg_id: record
            .content
            .get("msg_id")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        end_to_end_id: record.end_to_end_id.clone(),
        uetr: record.uetr,
        amount: record.amount,
        currency: record.currency.clone(),
        debtor_name: record.debtor_name.clone(),
        debtor_account: record.debtor_account_id.clone(),
        creditor_name: record.creditor_name.clone(),
        creditor_account: record.creditor_account.clone(),
        creditor_agent_bic: record.creditor_agent_bic.clone(),
        remittance_information: record.remittance_information.clone(),
    }
}

impl Payments {
    /// Decides on a payment held for review: `approver` approves what `proposed_by`
    /// proposed. Deciding the same way again answers the payment (`replayed`); deciding
    /// the other way, or on a payment not held, is refused (`invalid_payment_state`).
    pub async fn decide_screening(
        &self,
        payment_id: &str,
        decision: &str,
        proposed_by: &str,
        approver: &str,
        reason: &str,
    ) -> Result<PaymentView, PaymentsError> {
        let id = parse_id("payment_id", payment_id)?;
        let decision = Decision::parse(decision)?;
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(PaymentsError::invalid(
                "reason",
                "say why: it is kept with the decision for auditors",
            ));
        }
        let (proposed_by, approver) = (proposed_by.trim(), approver.trim());
        let actor = Actor {
            who: approver.to_owned(),
            why: reason.to_owned(),
        };
        // The saga library's four-eyes rule (ADR 0012), the one SagaAdmin applies.
        corebank_saga::ops::check_four_eyes(&actor, proposed_by).map_err(|error| match error {
            corebank_saga::SagaError::FourEyesRequired { message } => {
                PaymentsError::FourEyesRequired { message }
            }
            other => other.into(),
        })?;
        let registry = std::sync::Arc::clone(self.executor.registry());
        let actor = &actor;
        let (record, replayed) = self
            .db
            .run_tx("payments_decide_screening", |tx| {
                let registry = std::sync::Arc::clone(&registry);
                Box::pin(async move {
                    let record = store::by_id(&tx, id).await?.ok_or_else(|| {
                        corebank_db::TxError::Abort(PaymentsError::UnknownPayment {
                            payment_id: id.to_string(),
                        })
                    })?;
                    let state = |message: String| {
                        corebank_db::TxError::Abort(PaymentsError::InvalidPaymentState {
                            payment_id: id.to_string(),
                            message,
                        })
                    };
                    let Some(review) = store::reviews::get(&tx, id).await? else {
                        return Err(state(
                            "screening did not hold it for review: there is nothing to decide"
                                .to_owned(),
                        ));
                    };
                    if !review.decision.is_empty() {
                        return if review.decision == decision.as_str() {
                            Ok((record, true))
                        } else {
                            Err(state(format!(
                                "it was decided already: {} by {} (proposed by {})",
                                review.decision, review.approved_by, review.proposed_by
                            )))
                        };
                    }
                    let decided = ScreeningReview {
                        decision: decision.as_str().to_owned(),
                        proposed_by: proposed_by.to_owned(),
                        approved_by: approver.to_owned(),
                        reason: reason.to_owned(),
                        decided_at: Some(Utc::now()),
                        ..review
                    };
                    store::reviews::decide(&tx, &decided).await?;
                    if record.direction == "outbound" {
                        let action = match decision {
                            Decision::Release => "screening_release",
                            Decision::Refuse => "screening_refuse",
                        };
                        corebank_saga::ops::decide_in(
                            &tx,
                            id,
                            REVIEW_STEP,
                            &registry,
                            actor,
                            proposed_by,
                            action,
                        )
                        .await
                        .map_err(|error| match error {
                            corebank_db::TxError::Db(error) => corebank_db::TxError::Db(error),
                            corebank_db::TxError::Abort(
                                corebank_saga::SagaError::InvalidState { message, .. },
                            ) => state(message),
                            corebank_db::TxError::Abort(other) => {
                                corebank_db::TxError::Abort(other.into())
                            }
                        })?;
                    }
                    Ok((record, false))
                })
            })
            .await
            .map_err(tx_error)?;
        tracing::info!(
            payment.id = %id,
            decision = decision.as_str(),
            proposed_by,
            approved_by = approver,
            replayed,
            "screening review decided"
        );
        if record.direction == "outbound" {
            self.executor.nudge();
        } else if record.status == "screening_review" {
            // Inbound: the decision's effect, also when a repeat finds it not yet taken.
            let inbound = inbound_of(&record);
            match decision {
                Decision::Release => {
                    self.credit_or_return(id, &inbound).await?;
                }
                Decision::Refuse => {
                    let why = format!(
                        "screening: refused on review by {approver} (proposed by {proposed_by}): {reason}"
                    );
                    self.finish_inbound(id, &inbound, "refused", &why, None)
                        .await?;
                }
            }
        }
        if !replayed {
            metrics::counter!("corebank_payments_screening_decisions_total", "decision" => decision.as_str())
                .increment(1);
        }
        let mut view = self.payment(id).await?;
        view.replayed = replayed;
        Ok(view)
    }
}
