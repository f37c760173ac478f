//! `/v1/accounts/{id}/deposits` and `/withdrawals`: cash in and out, on the account's home.

use super::Shared;
use super::json as wire;
use super::pipeline::{Ctx, Outcome, account_mutation_or_refusal, forward_on_account, once};
use crate::routing::Side;
use crate::upstream::api_error_of;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use corebank_api::deposits::v1 as dpb;
use std::sync::Arc;

/// One call on `side` about an account, as a future that owns what it needs.
pub(super) async fn cash_call(
    state: Shared,
    side: Side,
    request: dpb::CashRequest,
    deposit: bool,
    channel_id: String,
) -> Outcome {
    let mut clients = state.upstreams.side(side);
    let answer = if deposit {
        clients.deposits.deposit(request).await
    } else {
        clients.deposits.withdraw(request).await
    };
    answer
        .map(|m| {
            (
                StatusCode::CREATED,
                wire::movement(&m.into_inner(), &channel_id),
            )
        })
        .map_err(|s| api_error_of(&s, side))
}

pub(super) async fn cash(
    state: Shared,
    ctx: Ctx,
    headers: HeaderMap,
    account_id: String,
    body: Bytes,
    deposit: bool,
) -> Response {
    let path = format!(
        "/v1/accounts/{account_id}/{}",
        if deposit { "deposits" } else { "withdrawals" }
    );
    let (mutation, parsed, account) = match account_mutation_or_refusal::<wire::CashBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        "accounts.cash",
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(refused) => return refused,
    };
    let resource = format!("account:{account_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, _pin| {
        forward_on_account(
            &worker,
            &account,
            "cash",
            &request_id,
            &account_id,
            |request_id, id| dpb::CashRequest {
                request_id,
                account_id: id.to_string(),
                amount: parsed.amount.clone(),
                currency: parsed.currency.clone(),
                description: parsed.description.clone().unwrap_or_default(),
                channel: String::new(),
            },
            move |state, side, request, channel_id| {
                cash_call(state, side, request, deposit, channel_id)
            },
            false,
        )
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/deposits", tag = "money",
    summary = "Deposit cash",
    description = "Scope `accounts:write`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = wire::CashBody,
    responses((status = 201, description = "The deposit, booked", body = wire::MovementAnswer))
)]
pub(super) async fn deposit(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    cash(state, ctx, headers, account_id, body, true).await
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/withdrawals", tag = "money",
    summary = "Withdraw cash",
    description = "Scope `accounts:write`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = wire::CashBody,
    responses((status = 201, description = "The withdrawal, booked", body = wire::MovementAnswer))
)]
pub(super) async fn withdraw(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    cash(state, ctx, headers, account_id, body, false).await
}
