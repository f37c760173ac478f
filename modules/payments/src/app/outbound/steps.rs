//! The outbound saga's steps other than screening: the hold, the pacs.008 to the rail and
//! the wait for its pacs.002, settling the hold, and the payment's recorded status and events.

use corebank_db::Transaction;
use corebank_saga::DbFuture;

use super::*;

pub(super) fn field<'a>(input: &'a Value, name: &str) -> &'a str {
    input.get(name).and_then(Value::as_str).unwrap_or_default()
}

/// A deposits refusal as a step outcome: business refusals fail the step, the rest retry.
pub(super) fn outcome_of(error: &PaymentsError) -> StepOutcome {
    match error {
        PaymentsError::Unavailable { .. } | PaymentsError::Internal { .. } => {
            StepOutcome::Transient(error.to_string())
        }
        other => StepOutcome::Failed(format!("{}: {other}", other.code())),
    }
}

/// What a call action returns.
pub(super) type CallFuture = corebank_saga::BoxFuture<'static, StepOutcome>;

pub(super) type CallFn = fn(Arc<Parts>, StepContext) -> CallFuture;

/// A call, run twice in a row when asked (the second must answer the same).
pub(super) fn call(slot: &Arc<Parts>, f: CallFn, twice: bool) -> Action {
    let slot = Arc::clone(slot);
    Action::call_twice_if(twice, move |context| f(Arc::clone(&slot), context))
}

/// Places the payment's hold, or finds it: Deposits/PlaceHold is idempotent by request id,
/// and the request id is derived from the `hold` step's do-key, so every call (the action,
/// its retries, its query, the compensation) names the same hold.
pub(super) async fn hold_for(
    payments: &Parts,
    context: &StepContext,
) -> Result<String, PaymentsError> {
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

pub(super) fn place_hold(slot: Arc<Parts>, context: StepContext) -> CallFuture {
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

pub(super) fn hold_placed(slot: &Arc<Parts>) -> corebank_saga::definition::QueryFn {
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

pub(super) fn release_hold(slot: Arc<Parts>, context: StepContext) -> CallFuture {
    Box::pin(async move {
        let payments = &*slot;
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

pub(super) fn send(slot: Arc<Parts>, context: StepContext) -> CallFuture {
    Box::pin(async move {
        let payments = &*slot;
        let xml = match crate::app::messages::pacs008_for(
            &payments.config.bank_bic,
            context.saga_id,
            &context.input,
        ) {
            Ok(xml) => xml,
            Err(error) => return StepOutcome::Failed(error.to_string()),
        };
        let url = match crate::app::rail::endpoint(&payments.config.rail_url, "/pacs008") {
            Ok(url) => url,
            Err(error) => return StepOutcome::Failed(error.to_string()),
        };
        match payments.call_rail(reqwest::Method::POST, &url, xml).await {
            Ok(response) if response.status().is_success() => {
                StepOutcome::Done(json!({ "sent": true }))
            }
            Ok(response) if response.status().is_client_error() => {
                let code = response.status();
                let body = crate::app::rail::read_limited(
                    response,
                    crate::app::rail::RAIL_MESSAGE_BYTES_MAX,
                )
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
pub(super) fn rail_knows(slot: &Arc<Parts>) -> corebank_saga::definition::QueryFn {
    let slot = Arc::clone(slot);
    Arc::new(move |context: StepContext| {
        let slot = Arc::clone(&slot);
        Box::pin(async move {
            let payments = &*slot;
            match crate::app::rail::rail_status(payments, field(&context.input, "uetr")).await {
                Ok(Some(_)) => QueryOutcome::Applied(json!({ "sent": true })),
                Ok(None) => QueryOutcome::NotApplied,
                Err(error) => QueryOutcome::Unknown(error.to_string()),
            }
        })
    })
}

pub(super) fn await_status(slot: Arc<Parts>, context: StepContext) -> CallFuture {
    Box::pin(async move {
        let payments = &*slot;
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
                    match crate::app::rail::rail_status(payments, &uetr.to_string()).await {
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

pub(super) fn settle(slot: Arc<Parts>, context: StepContext) -> CallFuture {
    Box::pin(async move {
        let payments = &*slot;
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

/// The outbox of the payments schema.
pub(super) fn outbox() -> Result<corebank_outbox::Outbox, corebank_db::DbError> {
    corebank_outbox::SchemaName::new("payments")
        .map(corebank_outbox::Outbox::new)
        .map_err(|e| corebank_db::DbError::Unavailable {
            message: e.to_string(),
        })
}

/// Writes a payment's status and its event, in the step's transaction.
pub(super) async fn record_outcome(
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

pub(super) fn record_step<'a>(tx: &'a Transaction<'a>, context: &'a StepContext) -> DbFuture<'a> {
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
pub(super) fn initiated<'a>(tx: &'a Transaction<'a>, context: &'a StepContext) -> DbFuture<'a> {
    Box::pin(async move {
        record_outcome(tx, context, "initiated", "").await?;
        Ok(StepOutcome::Done(json!({ "recorded": true })))
    })
}

/// The compensation of `initiate`, which runs last when a payment unwinds: it records that
/// the payment failed, or was cancelled, with the reason.
pub(super) fn unwound<'a>(tx: &'a Transaction<'a>, context: &'a StepContext) -> DbFuture<'a> {
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

pub(super) fn db_error(error: corebank_db::TxError<PaymentsError>) -> corebank_db::DbError {
    match error {
        corebank_db::TxError::Db(error) => error,
        corebank_db::TxError::Abort(error) => corebank_db::DbError::Unavailable {
            message: error.to_string(),
        },
    }
}
