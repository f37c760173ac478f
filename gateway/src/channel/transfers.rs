//! `/v1/transfers`: one transfer between two accounts with the same home.

use super::Shared;

use super::json as wire;
use super::pipeline::{
    Call, Done, Outcome, account_for, answered, mutate, not_moving, parse_id, shadow_of,
    shadow_request_id,
};
use crate::error::ApiError;
use crate::principal::scope;
use crate::routing::Side;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
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
    description = "Scope `accounts:write`; a customer-bound token must own the source account. Both accounts must be kept by the same core (else 422 `accounts_on_different_sides`: use a payment).",
    request_body = wire::TransferBody,
    responses((status = 201, description = "The transfer, booked", body = wire::TransferAnswer))
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
        not_moving(&from)?;
        not_moving(&to)?;
        let resource = format!("account:{}", parsed.from_account_id);
        Ok::<_, ApiError>((mutation, resource, (parsed, from, to)))
    };
    let prepared = prepared.await;
    mutate(&state, attempt, prepared, |state, (parsed, from, to), request_id, _pin| async move {
        let route = state.route(&from, "transfers");
        let request = |request_id: String, from_id: Uuid, to_id: Uuid| ppb::InternalTransferRequest {
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
        let (Some(from_id), Some(to_id)) = (
            from.id_on(route.side),
            to.id_on(route.side).filter(|_| to.home == route.side),
        ) else {
            let refusal = ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "accounts_on_different_sides",
                "the two accounts are kept by different cores; a transfer between them is a payment",
            );
            return Done::routed(Err(refusal), route, None);
        };
        let (from_text, to_text) = (parsed.from_account_id.clone(), parsed.to_account_id.clone());
        let outcome = transfer_call(
                Arc::clone(&state), route.side, request(request_id.clone(), from_id, to_id), from_text.clone(), to_text.clone()).await;
        let copies = route
            .shadow_side()
            .and_then(|side| Some((from.id_on(side)?, to.id_on(side)?)));
        let shadow = shadow_of(&route, copies.is_some() && outcome.is_ok(), |side| {
            let (f, t) = copies.unwrap_or((from_id, to_id));
            transfer_call(
                Arc::clone(&state), side, request(shadow_request_id(&request_id), f, t), from_text, to_text)
        });
        Done::routed(outcome, route, shadow)
    })
    .await
}
