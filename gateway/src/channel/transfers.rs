//! `/v1/transfers`: one transfer between two accounts. On one core it is one call there;
//! between an account the legacy core keeps and one the modern side keeps it is a saga the
//! migration component runs (ADR 0014), answered 201 when it ends within the request's
//! time and 202 with `Location` otherwise; `GET /v1/transfers/{id}` follows it.

use super::Shared;

use super::json as wire;
use super::moving::settled;
use super::pipeline::{
    Call, Ctx, Done, Outcome, account_for, answered, mutate, parse_id, read, shadow_of,
    shadow_request_id,
};
use super::with_location;
use crate::directory::AccountEntry;
use crate::error::ApiError;
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use corebank_api::migration::v1 as mpb;
use corebank_api::payments::v1 as ppb;
use std::sync::Arc;
use uuid::Uuid;

pub(super) async fn transfer_call(
    state: Shared,
    side: Side,
    request: ppb::InternalTransferRequest,
    from: String,
    to: String,
) -> Outcome {
    let answer = state
        .upstreams
        .side(side)
        .payments
        .internal_transfer(request)
        .await;
    answered(answer, side, StatusCode::CREATED, |t| {
        wire::transfer(t, &from, &to)
    })
}

#[utoipa::path(
    post, path = "/v1/transfers", tag = "money",
    summary = "Transfer between two accounts",
    description = "Scope `accounts:write`; a customer-bound token must own the source account. When the two accounts are kept by different cores (one still on the legacy core, one moved), the transfer runs as a saga through the cores' inter-core clearing accounts: 201 when it ends within the request's time, else 202 with `Location` to follow it; a refusal of either core fails it with nothing moved (422 with that core's code). While either account is moving between the cores: 503 `account_moving` with `Retry-After`.",
    request_body = wire::TransferBody,
    responses(
        (status = 201, description = "The transfer, booked: on one core the entry; across the cores the finished transfer", body = wire::TransferBooked),
        (status = 202, description = "A transfer across the cores, still running", body = wire::CrossTransferAnswer,
            headers(("Location" = String, description = "Where to follow the transfer: `/v1/transfers/{id}`"))),
    )
)]
pub(super) async fn transfer(State(state): State<Shared>, call: Call) -> Response {
    let attempt = call.attempt("transfers.create");
    let prepared = async {
        let (mutation, parsed) =
            call.mutation::<wire::TransferBody>(scope::ACCOUNTS_WRITE, "/v1/transfers".to_owned())?;
        let from = account_for(&state, &mutation.context, &parsed.from_account_id).await?;
        // The destination may be another customer's account: only the source is bound.
        let to = state
            .account(parse_id(&parsed.to_account_id, "to_account_id")?)
            .await?;
        let until = state.hold_until();
        let from = settled(&state, from, until).await?;
        let to = settled(&state, to, until).await?;
        let resource = format!("account:{}", parsed.from_account_id);
        Ok::<_, ApiError>((mutation, resource, (parsed, from, to)))
    };
    let prepared = prepared.await;
    let response = mutate(
        &state,
        attempt,
        prepared,
        |state, (parsed, from, to), request_id, _pin| async move {
            let route = state.route(&from, "transfers");
            let request =
                |request_id: String, from_id: Uuid, to_id: Uuid| ppb::InternalTransferRequest {
                    request_id,
                    from_account_id: from_id.to_string(),
                    to_account_id: to_id.to_string(),
                    amount: parsed.amount.clone(),
                    currency: parsed.currency.clone(),
                    description: parsed.description.clone().unwrap_or_default(),
                };
            // Both accounts must be kept by the side that moves the money: their homes. The
            // destination's copy on that side (a shadowed product) is shadow books, not the
            // customer's money, and must never be credited.
            let Some(from_id) = from.id_on(route.side) else {
                return Done::refused(ApiError::internal("routed to a side without the account"));
            };
            let Some(to_id) = to.id_on(route.side).filter(|_| to.home == route.side) else {
                // Kept by the other core: a crossing, never shadowed (a copy would move money).
                let outcome =
                    across(&state, request_id, route.side, from_id, &from, &to, &parsed).await;
                return Done::routed(outcome, route, None);
            };
            let (from_text, to_text) =
                (parsed.from_account_id.clone(), parsed.to_account_id.clone());
            let outcome = transfer_call(
                Arc::clone(&state),
                route.side,
                request(request_id.clone(), from_id, to_id),
                from_text.clone(),
                to_text.clone(),
            )
            .await;
            let copies = route
                .shadow_side()
                .and_then(|side| Some((from.id_on(side)?, to.id_on(side)?)));
            let shadow = shadow_of(&route, copies.is_some() && outcome.is_ok(), |side| {
                let (f, t) = copies.unwrap_or((from_id, to_id));
                transfer_call(
                    Arc::clone(&state),
                    side,
                    request(shadow_request_id(&request_id), f, t),
                    from_text,
                    to_text,
                )
            });
            Done::routed(outcome, route, shadow)
        },
    )
    .await;
    with_location(response, "/v1/transfers").await
}

/// A crossing's request to the migration component: the source on `side`, the destination
/// on its home.
async fn across(
    state: &Shared,
    request_id: String,
    side: Side,
    from_id: Uuid,
    from: &AccountEntry,
    to: &AccountEntry,
    parsed: &wire::TransferBody,
) -> Outcome {
    let Some(to_id) = to.id_on(to.home) else {
        return Err(ApiError::internal("the destination has no id on its home"));
    };
    // Half the request's time, so that the answer (201 or 202) comes back within it.
    let wait_ms = u32::try_from(state.request_timeout.as_millis() / 2)
        .unwrap_or(u32::MAX)
        .min(10_000);
    let answer = state
        .crossings
        .clone()
        .transfer_across(mpb::TransferAcrossRequest {
            transfer_id: request_id,
            from_side: side.as_str().to_owned(),
            from_account_id: from_id.to_string(),
            from_reference: from.account_id.to_string(),
            to_side: to.home.as_str().to_owned(),
            to_account_id: to_id.to_string(),
            to_reference: to.account_id.to_string(),
            amount: parsed.amount.clone(),
            currency: parsed.currency.clone(),
            description: parsed.description.clone().unwrap_or_default(),
            wait_ms,
        })
        .await;
    crossing_outcome(answer, side)
}

/// A crossing as the channel gets it: 201 completed, 202 pending, or the refusal that
/// failed it.
fn crossing_outcome(
    answer: Result<tonic::Response<mpb::CrossTransfer>, tonic::Status>,
    side: Side,
) -> Outcome {
    let transfer = answer
        .map_err(|status| api_error_of(&status, side))?
        .into_inner();
    match transfer.status.as_str() {
        "completed" => Ok((StatusCode::CREATED, wire::cross_transfer(&transfer))),
        "failed" => Err(failure_of(&transfer)),
        _ => Ok((StatusCode::ACCEPTED, wire::cross_transfer(&transfer))),
    }
}

/// The refusal that failed a crossing, as a same-side transfer would have been refused.
fn failure_of(transfer: &mpb::CrossTransfer) -> ApiError {
    let status = match transfer.failure_code.as_str() {
        "invalid_argument" | "currency_mismatch" => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let code = if transfer.failure_code.is_empty() {
        "transfer_failed"
    } else {
        transfer.failure_code.as_str()
    };
    ApiError::new(
        status,
        code,
        format!(
            "the transfer across the cores failed and nothing moved: {}",
            transfer.failure_message
        ),
    )
}

#[utoipa::path(
    get, path = "/v1/transfers/{transfer_id}", tag = "money",
    summary = "Read a transfer across the cores",
    description = "Scope `accounts:read`; a customer-bound token must own the source account. Transfers on one core answer with their entry when made and are read on the accounts' statements.",
    params(("transfer_id" = String, Path, format = Uuid, description = "The transfer's id (a UUID), as its 201 or 202 answered it")),
    responses((status = 200, description = "The transfer as it stands", body = wire::CrossTransferAnswer))
)]
pub(super) async fn get_transfer(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(transfer_id): Path<String>,
) -> Response {
    let prepare = |state: Shared, context| async move {
        let id = parse_id(&transfer_id, "transfer id")?;
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_transfer",
                format!("no transfer across the cores {transfer_id}"),
            )
        };
        let transfer = state
            .crossings
            .clone()
            .get_cross_transfer(mpb::GetCrossTransferRequest {
                transfer_id: id.to_string(),
            })
            .await
            .map_err(|status| match status.code() {
                tonic::Code::NotFound => unknown(),
                _ => api_error_of(&status, Side::Modern),
            })?
            .into_inner();
        // Only the source's owner sees it (another customer's transfer is unknown to them).
        let from = parse_id(&transfer.from_reference, "the transfer's source")?;
        let owner = state.account(from).await?;
        if super::pipeline::customer_allowed(&context, &owner.customer_id).is_err() {
            return Err(unknown());
        }
        Ok(transfer)
    };
    read(
        &state,
        ctx,
        scope::ACCOUNTS_READ,
        prepare,
        |_state, transfer| async move {
            Done::unrouted(Ok((StatusCode::OK, wire::cross_transfer(&transfer))))
        },
    )
    .await
}
