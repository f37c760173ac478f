//! `/v1/payments`: outbound payments (answered 202: their saga runs on), reading one, and
//! cancelling it before its pivot.

use super::json as wire;
use super::moving::settled;
use super::pipeline::{
    Call, Ctx, Done, account_for, answered, customer_allowed, mutate, parse_id, read,
    side_answer_id,
};
use super::with_location;
use super::{GatewayState, Shared};
use crate::directory::PaymentEntry;
use crate::error::ApiError;
use crate::principal::{RequestContext, scope};
use crate::upstream::api_error_of;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::Utc;
use corebank_api::payments::v1 as ppb;

#[utoipa::path(
    post, path = "/v1/payments", tag = "payments",
    summary = "Start a payment",
    description = "Scope `payments:write`. The payment runs as a saga: the answer is 202 with `Location` to follow it. Payments are never shadowed.",
    request_body = wire::PaymentBody,
    responses((status = 202, description = "The payment, started", body = wire::PaymentAnswer,
        headers(("Location" = String, description = "Where to follow the payment: `/v1/payments/{payment_id}`"))))
)]
pub(super) async fn initiate_payment(State(state): State<Shared>, call: Call) -> Response {
    let attempt = call.attempt("payments.initiate");
    let prepared = async {
        let (mutation, parsed) =
            call.mutation::<wire::PaymentBody>(scope::PAYMENTS_WRITE, "/v1/payments".to_owned())?;
        let debtor = account_for(&state, &mutation.context, &parsed.debtor_account_id).await?;
        let debtor = settled(&state, debtor, state.hold_until()).await?;
        let resource = format!("account:{}", parsed.debtor_account_id);
        Ok::<_, ApiError>((mutation, resource, (parsed, debtor)))
    };
    let prepared = prepared.await;
    let response = mutate(
        &state,
        attempt,
        prepared,
        |state, (parsed, debtor), request_id, _pin| async move {
            // Payments are never shadowed: a copy would be a second real payment.
            let mut route = state.route(&debtor, "payments");
            route.decision.shadow = None;
            let Some(id) = debtor.id_on(route.side) else {
                return Done::refused(ApiError::internal("routed to a side without the account"));
            };
            let started = state
                .upstreams
                .side(route.side)
                .payments
                .initiate_payment(ppb::InitiatePaymentRequest {
                    request_id,
                    debtor_account_id: id.to_string(),
                    creditor: Some(ppb::Party {
                        name: parsed.creditor.name.clone(),
                        account: parsed.creditor.account.clone(),
                        agent_bic: parsed.creditor.agent_bic.clone(),
                    }),
                    amount: parsed.amount.clone(),
                    currency: parsed.currency.clone(),
                    end_to_end_id: parsed.end_to_end_id.clone().unwrap_or_default(),
                    remittance_information: parsed
                        .remittance_information
                        .clone()
                        .unwrap_or_default(),
                })
                .await;
            let outcome = match started {
                Err(status) => Err(api_error_of(&status, route.side)),
                Ok(answer) => {
                    let payment = answer.into_inner();
                    match side_answer_id(&payment.id, "the side's payment id") {
                        Err(error) => Err(error),
                        Ok(payment_id) => state
                            .directory
                            .record_payment(&PaymentEntry {
                                payment_id,
                                side: route.side,
                                account_id: debtor.account_id,
                                customer_id: debtor.customer_id.clone(),
                                created_at: Utc::now(),
                            })
                            .await
                            .map(|()| {
                                (
                                    StatusCode::ACCEPTED,
                                    wire::payment(&payment, &parsed.debtor_account_id),
                                )
                            }),
                    }
                }
            };
            Done::routed(outcome, route, None)
        },
    )
    .await;
    // 202 with where to follow the payment.
    with_location(response, "/v1/payments").await
}

pub(super) async fn payment_for(
    state: &GatewayState,
    context: &RequestContext,
    payment_id: &str,
) -> Result<PaymentEntry, ApiError> {
    let id = parse_id(payment_id, "payment id")?;
    let payment = state.directory.payment(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_payment",
            format!("no payment {payment_id}"),
        )
    })?;
    customer_allowed(context, &payment.customer_id)?;
    Ok(payment)
}

#[utoipa::path(
    get, path = "/v1/payments/{payment_id}", tag = "payments",
    summary = "Read a payment",
    description = "Scope `accounts:read`.",
    params(("payment_id" = String, Path, format = Uuid, description = "The payment's id (a UUID)")),
    responses((status = 200, description = "The payment", body = wire::PaymentAnswer))
)]
pub(super) async fn get_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(payment_id): Path<String>,
) -> Response {
    let prepare = |state: Shared, context| async move {
        let payment = payment_for(&state, &context, &payment_id).await?;
        Ok((payment, payment_id))
    };
    read(
        &state,
        ctx,
        scope::ACCOUNTS_READ,
        prepare,
        |state, (payment, payment_id)| async move {
            let request = ppb::GetPaymentRequest { payment_id };
            let answer = state
                .upstreams
                .side(payment.side)
                .payments
                .get_payment(request)
                .await;
            let account_id = payment.account_id.to_string();
            Done::unrouted(answered(answer, payment.side, StatusCode::OK, |p| {
                wire::payment(p, &account_id)
            }))
        },
    )
    .await
}

#[utoipa::path(
    post, path = "/v1/payments/{payment_id}/cancel", tag = "payments",
    summary = "Cancel a payment",
    description = "Scope `payments:write`; possible while the payment has not been sent.",
    params(("payment_id" = String, Path, format = Uuid, description = "The payment's id (a UUID)")),
    request_body(content = wire::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The payment, cancelled", body = wire::PaymentAnswer))
)]
pub(super) async fn cancel_payment(
    State(state): State<Shared>,
    Path(payment_id): Path<String>,
    call: Call,
) -> Response {
    let attempt = call.attempt("payments.cancel");
    let prepared = async {
        let (mutation, parsed) = call.mutation::<wire::ReasonBody>(
            scope::PAYMENTS_WRITE,
            format!("/v1/payments/{payment_id}/cancel"),
        )?;
        let payment = payment_for(&state, &mutation.context, &payment_id).await?;
        Ok::<_, ApiError>((mutation, format!("payment:{payment_id}"), (parsed, payment)))
    };
    let prepared = prepared.await;
    mutate(
        &state,
        attempt,
        prepared,
        |state, (parsed, payment), request_id, _pin| async move {
            let request = ppb::CancelPaymentRequest {
                payment_id: payment_id.clone(),
                reason: parsed.reason.clone().unwrap_or_default(),
                request_id,
            };
            let answer = state
                .upstreams
                .side(payment.side)
                .payments
                .cancel_payment(request)
                .await;
            let account_id = payment.account_id.to_string();
            let outcome = answered(answer, payment.side, StatusCode::OK, |p| {
                wire::payment(p, &account_id)
            });
            // Cancelling is idempotent by its goal: a payment already cancelled (by this
            // request's lost first attempt, or another) answers as cancelled. The contract's
            // CancelPayment carries no request id to dedupe by.
            let outcome = match outcome {
                Err(error) if error.code != "past_pivot" && error.code != "unknown_payment" => {
                    let now = state
                        .upstreams
                        .side(payment.side)
                        .payments
                        .get_payment(ppb::GetPaymentRequest {
                            payment_id: payment_id.clone(),
                        })
                        .await
                        .map(tonic::Response::into_inner);
                    match now {
                        Ok(found) if found.status == "cancelled" || found.status == "unwinding" => {
                            Ok((StatusCode::OK, wire::payment(&found, &account_id)))
                        }
                        _ => Err(error),
                    }
                }
                other => other,
            };
            Done::unrouted(outcome)
        },
    )
    .await
}
