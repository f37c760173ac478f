//! `/v1/accounts/{id}/holds`: placing a hold, and releasing it, on the account's home.

use super::Shared;
use super::json as wire;
use super::pipeline::{
    Call, Done, Outcome, account_mutation, answered, mutate, parse_id, shadow_of,
    shadow_request_id, side_answer_id,
};
use crate::error::ApiError;
use crate::routing::Side;
use crate::upstream::api_error_of;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use corebank_api::deposits::v1 as dpb;
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

pub(super) async fn hold_call(
    state: Shared,
    side: Side,
    request: dpb::PlaceHoldRequest,
    channel_id: String,
    record: Option<(Uuid, Uuid)>,
) -> Outcome {
    let hold = state
        .upstreams
        .side(side)
        .deposits
        .place_hold(request)
        .await
        .map_err(|s| api_error_of(&s, side))?
        .into_inner();
    let side_hold = side_answer_id(&hold.id, "the side's hold id")?;
    // The channel's hold id is the primary's; a shadow copy is noted under it.
    let channel_hold = match record {
        Some((channel_hold, account)) => {
            state
                .directory
                .record_hold(channel_hold, account, side, side_hold)
                .await?;
            channel_hold
        }
        None => side_hold,
    };
    let mut body = wire::hold(&hold, &channel_id);
    body["id"] = json!(channel_hold.to_string());
    Ok((StatusCode::CREATED, body))
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/holds", tag = "money",
    summary = "Place a hold on an account's funds",
    description = "Scope `accounts:write`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = wire::HoldBody,
    responses((status = 201, description = "The hold, placed", body = wire::HoldAnswer))
)]
pub(super) async fn place_hold(
    State(state): State<Shared>,
    Path(account_id): Path<String>,
    call: Call,
) -> Response {
    let attempt = call.attempt("holds.place");
    let path = format!("/v1/accounts/{account_id}/holds");
    let prepared = account_mutation::<wire::HoldBody>(&state, call, path, &account_id).await;
    mutate(
        &state,
        attempt,
        prepared,
        |state, (parsed, account), request_id, _pin| async move {
            let route = state.route(&account, "holds");
            let request = |request_id: String, id: Uuid| dpb::PlaceHoldRequest {
                request_id,
                account_id: id.to_string(),
                amount: parsed.amount.clone(),
                currency: parsed.currency.clone(),
                reason: parsed.reason.clone().unwrap_or_default(),
                expires_in_seconds: parsed.expires_in_seconds.unwrap_or(0),
            };
            let Some(id) = account.id_on(route.side) else {
                return Done::refused(ApiError::internal("routed to a side without the account"));
            };
            let primary = hold_call(
                Arc::clone(&state),
                route.side,
                request(request_id.clone(), id),
                account_id.clone(),
                None,
            )
            .await;
            // The primary's hold is recorded with the account it belongs to.
            let outcome = match primary {
                Ok((status, body)) => {
                    let hold_id = body["id"].as_str().and_then(|h| Uuid::parse_str(h).ok());
                    match hold_id {
                        Some(hold_id) => state
                            .directory
                            .record_hold(hold_id, account.account_id, route.side, hold_id)
                            .await
                            .map(|()| (status, body)),
                        None => Err(ApiError::internal("a hold answer without an id")),
                    }
                }
                Err(error) => Err(error),
            };
            let channel_hold = outcome
                .as_ref()
                .ok()
                .and_then(|(_, body)| body["id"].as_str().and_then(|h| Uuid::parse_str(h).ok()));
            let copy = route.shadow_side().and_then(|side| account.id_on(side));
            let shadow = shadow_of(&route, copy.is_some() && channel_hold.is_some(), |side| {
                hold_call(
                    Arc::clone(&state),
                    side,
                    request(shadow_request_id(&request_id), copy.unwrap_or(id)),
                    account_id.clone(),
                    channel_hold.map(|hold| (hold, account.account_id)),
                )
            });
            Done::routed(outcome, route, shadow)
        },
    )
    .await
}

pub(super) async fn release_call(
    state: Shared,
    side: Side,
    request: dpb::ReleaseHoldRequest,
    channel_id: String,
    channel_hold: String,
) -> Outcome {
    let answer = state
        .upstreams
        .side(side)
        .deposits
        .release_hold(request)
        .await;
    let (status, mut body) = answered(answer, side, StatusCode::OK, |hold| {
        wire::hold(hold, &channel_id)
    })?;
    body["id"] = json!(channel_hold);
    Ok((status, body))
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/holds/{hold_id}/release", tag = "money",
    summary = "Release a hold",
    description = "Scope `accounts:write`. The hold is released on the side it was placed on.",
    params(
        ("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it"),
        ("hold_id" = String, Path, format = Uuid, description = "The hold's id (a UUID) from its placement"),
    ),
    request_body(content = wire::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The hold, released", body = wire::HoldAnswer))
)]
pub(super) async fn release_hold(
    State(state): State<Shared>,
    Path((account_id, hold_id)): Path<(String, String)>,
    call: Call,
) -> Response {
    let attempt = call.attempt("holds.release");
    let path = format!("/v1/accounts/{account_id}/holds/{hold_id}/release");
    let prepared = async {
        let (mutation, _, (_, account)) =
            account_mutation::<wire::ReasonBody>(&state, call, path, &account_id).await?;
        let hold = state
            .directory
            .hold(parse_id(&hold_id, "hold id")?)
            .await?
            .filter(|hold| hold.account_id == account.account_id)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_hold",
                    format!("account {account_id} has no hold {hold_id}"),
                )
            })?;
        Ok::<_, ApiError>((mutation, format!("hold:{hold_id}"), (account, hold)))
    };
    let prepared = prepared.await;
    mutate(
        &state,
        attempt,
        prepared,
        |state, (account, hold), request_id, _pin| async move {
            let route = state.route(&account, "holds");
            // A hold is released where it was placed.
            let Some(side_hold) = hold
                .id_on(route.side)
                .or_else(|| hold.id_on(route.side.other()))
            else {
                return Done::refused(ApiError::internal("a recorded hold without a side id"));
            };
            let side = if hold.id_on(route.side).is_some() {
                route.side
            } else {
                route.side.other()
            };
            let request = |request_id: String, id: Uuid| dpb::ReleaseHoldRequest {
                request_id,
                hold_id: id.to_string(),
            };
            let outcome = release_call(
                Arc::clone(&state),
                side,
                request(request_id.clone(), side_hold),
                account_id.clone(),
                hold_id.clone(),
            )
            .await;
            let copy = route
                .shadow_side()
                .filter(|s| *s != side)
                .and_then(|s| hold.id_on(s));
            let shadow = shadow_of(&route, copy.is_some(), |shadow_side| {
                release_call(
                    Arc::clone(&state),
                    shadow_side,
                    request(shadow_request_id(&request_id), copy.unwrap_or(side_hold)),
                    account_id.clone(),
                    hold_id.clone(),
                )
            });
            Done::routed(outcome, route, shadow)
        },
    )
    .await
}
