//! `/v1/transfers`: one transfer between two accounts with the same home.

use super::Shared;

use super::json as wire;
use super::pipeline::{
    Attempt, Ctx, Done, Mutation, Outcome, account_for, context, once, parse_body, parse_id,
    scope_needed, shadow_of, shadow_request_id,
};
use crate::error::ApiError;
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
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
    state
        .upstreams
        .side(side)
        .payments
        .internal_transfer(request)
        .await
        .map(|t| {
            (
                StatusCode::CREATED,
                wire::transfer(&t.into_inner(), &from, &to),
            )
        })
        .map_err(|s| api_error_of(&s, side))
}

#[utoipa::path(
    post, path = "/v1/transfers", tag = "money",
    summary = "Transfer between two accounts",
    description = "Scope `accounts:write`; a customer-bound token must own the source account. Both accounts must be kept by the same core (else 422 `accounts_on_different_sides`: use a payment).",
    request_body = wire::TransferBody,
    responses((status = 201, description = "The transfer, booked", body = wire::TransferAnswer))
)]
pub(super) async fn transfer(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "transfers.create");
    let prepared = async {
        let context = context(ctx)?;
        scope_needed(&context, scope::ACCOUNTS_WRITE)?;
        let (parsed, value) = parse_body::<wire::TransferBody>(&body)?;
        let mutation = Mutation::new(
            context,
            &headers,
            Method::POST,
            "/v1/transfers".to_owned(),
            &value,
        )?;
        let from = account_for(&state, &mutation.context, &parsed.from_account_id).await?;
        // The destination may be another customer's account: only the source is bound.
        let to = state
            .account(parse_id(&parsed.to_account_id, "to_account_id")?)
            .await?;
        Ok::<_, ApiError>((mutation, parsed, from, to))
    };
    let (mutation, parsed, from, to) = match prepared.await {
        Ok(prepared) => prepared,
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("account:{}", parsed.from_account_id);
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, _pin| async move {
        let state = worker;
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
            return Done {
                outcome: Err(ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "accounts_on_different_sides",
                    "the two accounts are kept by different cores; a transfer between them is a payment",
                )),
                route: Some(route),
                shadow: None,
            };
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
        Done { outcome, route: Some(route), shadow }
    })
    .await
}
