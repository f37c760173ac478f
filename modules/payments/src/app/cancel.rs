//! Cancelling an outbound payment that has not reached the rail, by request id: the first
//! request with an id decides; a retry with it answers the payment (`replayed`), the same id
//! with another payment or reason is refused (`exists_with_different_content`).
//!
//! The request is claimed (`pending`) before the saga is told and marked `cancelled` after,
//! in two transactions: the saga's operator operations run their own. A crash in between
//! leaves a pending claim; its retry finds the saga's recorded cancellation and completes.
//! A refused cancellation changes nothing, so its claim is dropped and the id stays free.

use chrono::Utc;
use uuid::Uuid;

use super::outbound::PaymentView;
use super::{Payments, parse_id, tx_error};
use crate::domain::error::PaymentsError;
use crate::store::cancels::{self, CancelRequest, CancelState};

/// What the customer's cancellation records as the saga's operator action.
fn customer_reason(reason: &str) -> String {
    if reason.trim().is_empty() {
        "cancelled by the customer".to_owned()
    } else {
        format!("cancelled by the customer: {reason}")
    }
}

impl Payments {
    /// Cancels payment `id` for request `request_id` (a UUIDv4, required): its hold is
    /// released. Refused past the pivot (`past_pivot`).
    pub async fn cancel(
        &self,
        request_id: &str,
        id: Uuid,
        reason: &str,
    ) -> Result<PaymentView, PaymentsError> {
        let request_id = parse_id("request_id", request_id)?;
        let view = self.payment(id).await?;
        if view.record.direction != "outbound" {
            return Err(PaymentsError::CannotCancel {
                payment_id: id.to_string(),
                message: "only outbound payments can be cancelled".to_owned(),
            });
        }
        let asked = CancelRequest {
            request_id,
            payment_id: id,
            reason: reason.to_owned(),
            state: CancelState::Pending,
        };
        let asked_ref = &asked;
        let (stored, claimed) = self
            .db
            .run_tx("payments_cancel_claim", |tx| {
                Box::pin(async move { cancels::claim(&tx, asked_ref, Utc::now()).await })
            })
            .await
            .map_err(tx_error)?;
        if stored.payment_id != id || stored.reason != reason {
            let field = if stored.payment_id != id {
                "payment_id"
            } else {
                "reason"
            };
            return Err(PaymentsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field: field.to_owned(),
            });
        }
        if stored.state == CancelState::Cancelled {
            let mut view = self.payment(id).await?;
            view.replayed = true;
            return Ok(view);
        }
        let why = customer_reason(reason);
        let actor = corebank_saga::ops::Actor {
            who: "customer".to_owned(),
            why: why.clone(),
        };
        let told =
            corebank_saga::ops::force_compensate(&self.db, self.executor.registry(), id, &actor)
                .await;
        if let Err(error) = told {
            // A claim left pending by a crash after the saga was told: its history says so.
            let done_before = !claimed && self.cancelled_before(id, &why).await?;
            if !done_before {
                self.db
                    .run_tx("payments_cancel_drop", |tx| {
                        Box::pin(async move { cancels::drop_pending(&tx, request_id).await })
                    })
                    .await
                    .map_err(tx_error)?;
                return Err(error.into());
            }
        }
        self.db
            .run_tx("payments_cancel_done", |tx| {
                Box::pin(async move { cancels::mark_cancelled(&tx, request_id).await })
            })
            .await
            .map_err(tx_error)?;
        tracing::info!(payment.id = %id, request.id = %request_id, "payment cancelled by the customer");
        self.executor.nudge();
        let mut view = self.payment(id).await?;
        view.replayed = !claimed;
        Ok(view)
    }

    /// Whether the payment's saga was force-compensated for the customer with `why`.
    async fn cancelled_before(&self, id: Uuid, why: &str) -> Result<bool, PaymentsError> {
        let detail = corebank_saga::ops::get(&self.db, id).await?;
        Ok(detail
            .operator_actions
            .iter()
            .any(|a| a.action == "force_compensate" && a.actor == "customer" && a.reason == why))
    }
}
