//! `/v1/accounts/{id}/deposits` and `/withdrawals`: cash in and out, on the account's home.

use super::Shared;
use super::json as wire;
use super::pipeline::{Call, Outcome, answered, forward_on_account};
use crate::routing::Side;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use corebank_api::deposits::v1 as dpb;

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
    answered(answer, side, StatusCode::CREATED, |m| {
        wire::movement(m, &channel_id)
    })
}

pub(super) async fn cash(state: Shared, account_id: String, call: Call, deposit: bool) -> Response {
    let path = format!(
        "/v1/accounts/{account_id}/{}",
        if deposit { "deposits" } else { "withdrawals" }
    );
    forward_on_account(
        &state,
        call,
        "accounts.cash",
        path,
        &account_id,
        "cash",
        |parsed: &wire::CashBody, request_id, id| dpb::CashRequest {
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
    .await
}

/// The two cash handlers differ only in their direction and their API reference.
macro_rules! cash_handler {
    ($name:ident, $path:tt, $summary:tt, $answer:tt, $deposit:tt) => {
        #[utoipa::path(
            post, path = $path, tag = "money",
            summary = $summary,
            description = "Scope `accounts:write`.",
            params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
            request_body = wire::CashBody,
            responses((status = 201, description = $answer, body = wire::MovementAnswer))
        )]
        pub(super) async fn $name(
            State(state): State<Shared>,
            Path(account_id): Path<String>,
            call: Call,
        ) -> Response {
            cash(state, account_id, call, $deposit).await
        }
    };
}

cash_handler!(
    deposit,
    "/v1/accounts/{account_id}/deposits",
    "Deposit cash",
    "The deposit, booked",
    true
);
cash_handler!(
    withdraw,
    "/v1/accounts/{account_id}/withdrawals",
    "Withdraw cash",
    "The withdrawal, booked",
    false
);
