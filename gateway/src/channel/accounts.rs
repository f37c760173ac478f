//! `/v1/accounts` and `/v1/customers/{id}/accounts`: opening (on the side the product's rule
//! picks, with a shadow copy when the rule shadows), reading, statements, listing, closing.

use super::Shared;
use super::json as wire;
use super::pipeline::{
    Call, Ctx, Done, Mutation, Outcome, Route, account_for, answered, context, customer_allowed,
    forward_on_account, mutate, parse_body, read, scope_needed, shadow_of, shadow_request_id,
    side_answer_id, side_id,
};
use crate::directory::AccountEntry;
use crate::error::ApiError;
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use corebank_api::deposits::v1 as dpb;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

pub(super) async fn open_on(
    state: Shared,
    side: Side,
    request_id: String,
    customer_id: String,
    product_code: String,
    opened_on: String,
) -> Result<dpb::Account, ApiError> {
    state
        .upstreams
        .side(side)
        .deposits
        .open_account(dpb::OpenAccountRequest {
            request_id,
            customer_id,
            product_code,
            opened_on,
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| api_error_of(&status, side))
}

#[utoipa::path(
    post, path = "/v1/accounts", tag = "accounts",
    summary = "Open an account",
    description = "Opens an account on the side the product's rule picks (scope `accounts:write`). A customer-bound token opens for its own customer.",
    request_body = wire::OpenAccountBody,
    responses((status = 201, description = "The account, opened", body = wire::AccountAnswer))
)]
pub(super) async fn open_account(State(state): State<Shared>, call: Call) -> Response {
    let attempt = call.attempt("accounts.open");
    let prepared = (|| {
        let context = context(call.ctx)?;
        scope_needed(&context, scope::ACCOUNTS_WRITE)?;
        let (parsed, value) = parse_body::<wire::OpenAccountBody>(&call.body)?;
        let customer_id = match (&parsed.customer_id, &context.principal.customer_id) {
            (Some(given), _) => given.clone(),
            (None, Some(bound)) => bound.clone(),
            (None, None) => return Err(ApiError::invalid("customer_id is required")),
        };
        customer_allowed(&context, &customer_id)?;
        let mutation = Mutation::new(
            context,
            &call.headers,
            Method::POST,
            "/v1/accounts".to_owned(),
            &value,
        )?;
        Ok((mutation, parsed, customer_id))
    })();
    let resource = prepared.map(|(mutation, parsed, customer_id)| {
        (
            mutation,
            format!("customer:{customer_id}"),
            (parsed, customer_id),
        )
    });
    mutate(
        &state,
        attempt,
        resource,
        |state, (parsed, customer_id), request_id, pin| async move {
            // A new account is routed by its product; its canary bucket is the request's.
            let decision = state.router.table().decide(
                &parsed.product_code,
                "accounts.write",
                Some(&request_id),
            );
            // A retry under the same key goes where the first attempt went.
            let side = match pin.side(decision.primary).await {
                Ok(side) => side,
                Err(error) => return Done::refused(error),
            };
            let route = Route {
                product: parsed.product_code.clone(),
                operation: "accounts.write",
                side,
                not_on_side: side != decision.primary,
                decision,
            };
            let opened_on = parsed.opened_on.clone().unwrap_or_default();
            let opened = open_on(
                Arc::clone(&state),
                route.side,
                request_id.clone(),
                customer_id.clone(),
                parsed.product_code.clone(),
                opened_on.clone(),
            )
            .await;
            let account = match opened {
                Ok(account) => account,
                Err(error) => return Done::routed(Err(error), route, None),
            };
            let id = match side_answer_id(&account.id, "the side's account id") {
                Ok(id) => id,
                Err(error) => return Done::routed(Err(error), route, None),
            };
            let (legacy_id, modern_id) = match route.side {
                Side::Legacy => (Some(id), None),
                Side::Modern => (None, Some(id)),
            };
            let recorded = state
                .directory
                .record(&AccountEntry {
                    account_id: id,
                    home: route.side,
                    product_code: account.product_code.clone(),
                    customer_id: account.customer_id.clone(),
                    currency: account.currency.clone(),
                    legacy_id,
                    modern_id,
                    move_id: None,
                })
                .await;
            if let Err(error) = recorded {
                return Done::routed(Err(error), route, None);
            }
            // With a shadow, the other side opens its own copy, noted in the directory.
            let shadow = shadow_of(&route, true, |side| {
                let state = Arc::clone(&state);
                let (customer_id, product_code) =
                    (customer_id.clone(), parsed.product_code.clone());
                let shadow_id = shadow_request_id(&request_id);
                let channel_id = account.id.clone();
                async move {
                    let copy = open_on(
                        Arc::clone(&state),
                        side,
                        shadow_id,
                        customer_id,
                        product_code,
                        opened_on,
                    )
                    .await?;
                    let copy_id = side_answer_id(&copy.id, "the shadow side's account id")?;
                    state.directory.set_side_id(id, side, copy_id).await?;
                    Ok((StatusCode::CREATED, wire::account(&copy, &channel_id)))
                }
            });
            let outcome = Ok((StatusCode::CREATED, wire::account(&account, &account.id)));
            Done::routed(outcome, route, shadow)
        },
    )
    .await
}

/// A read of one account: checked, routed, called on the primary and (when the rule
/// shadows) on the shadow side's copy.
pub(super) async fn account_read<F, Fut>(
    state: Shared,
    ctx: Ctx,
    account_id: String,
    call: F,
) -> Response
where
    F: Fn(Shared, Side, String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let prepare =
        |state: Shared, context| async move { account_for(&state, &context, &account_id).await };
    read(
        &state,
        ctx,
        scope::ACCOUNTS_READ,
        prepare,
        |state, account| async move {
            let route = state.route(&account, "accounts.read");
            let outcome = match side_id(&account, route.side) {
                Err(error) => Err(error),
                Ok(id) => call(Arc::clone(&state), route.side, id).await,
            };
            let shadow_id = route.shadow_side().and_then(|side| account.id_on(side));
            let shadow = shadow_of(&route, shadow_id.is_some(), |side| {
                call(
                    Arc::clone(&state),
                    side,
                    shadow_id.map(|id| id.to_string()).unwrap_or_default(),
                )
            });
            Done::routed(outcome, route, shadow)
        },
    )
    .await
}

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}", tag = "accounts",
    summary = "Read an account",
    description = "Scope `accounts:read`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    responses((status = 200, description = "The account", body = wire::AccountAnswer))
)]
pub(super) async fn get_account(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    account_answer(state, ctx, account_id, wire::account).await
}

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/balance", tag = "accounts",
    summary = "Read an account's balances",
    description = "Scope `accounts:read`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    responses((status = 200, description = "The balances", body = wire::BalanceAnswer))
)]
pub(super) async fn get_balance(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    account_answer(state, ctx, account_id, wire::balance).await
}

/// `GetAccount` on the account's side, rendered by `render` under the channel's id.
pub(super) async fn account_answer(
    state: Shared,
    ctx: Ctx,
    account_id: String,
    render: fn(&dpb::Account, &str) -> Value,
) -> Response {
    let channel_id = account_id.clone();
    account_read(state, ctx, account_id, move |state, side, id| {
        let channel_id = channel_id.clone();
        async move {
            let request = dpb::GetAccountRequest { account_id: id };
            let answer = state
                .upstreams
                .side(side)
                .deposits
                .get_account(request)
                .await;
            answered(answer, side, StatusCode::OK, |a| render(a, &channel_id))
        }
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
pub(super) struct StatementQuery {
    #[serde(default)]
    pub(super) cursor: Option<String>,
    #[serde(default)]
    pub(super) page_size: Option<u32>,
}

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/statement", tag = "accounts",
    summary = "Read a page of an account's statement",
    description = "Scope `accounts:read`. Paged: give the answer's `next_cursor` as `cursor` for the next page.",
    params(
        ("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`; the first page when absent"),
        ("page_size" = Option<i64>, Query, minimum = 0, maximum = 4_294_967_295_i64, description = "Lines per page: 50 when absent; more than 200 is taken as 200"),
    ),
    responses((status = 200, description = "A page of the statement", body = wire::StatementAnswer))
)]
pub(super) async fn get_statement(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
    Query(query): Query<StatementQuery>,
) -> Response {
    let channel_id = account_id.clone();
    let cursor = query.cursor.unwrap_or_default();
    let page_size = query.page_size.unwrap_or(50).min(200);
    account_read(state, ctx, account_id, move |state, side, id| {
        let (channel_id, cursor) = (channel_id.clone(), cursor.clone());
        async move {
            let request = dpb::GetStatementRequest {
                account_id: id,
                cursor,
                page_size,
            };
            let answer = state
                .upstreams
                .side(side)
                .deposits
                .get_statement(request)
                .await;
            answered(answer, side, StatusCode::OK, |s| {
                wire::statement(s, &channel_id)
            })
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/accounts", tag = "accounts",
    summary = "List a customer's accounts",
    description = "Scope `accounts:read`; a customer-bound token reads only its own customer.",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses((status = 200, description = "The customer's account ids", body = wire::CustomerAccountsAnswer))
)]
pub(super) async fn list_accounts(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(customer_id): Path<String>,
) -> Response {
    let prepare =
        |_, context| async move { customer_allowed(&context, &customer_id).map(|()| customer_id) };
    read(
        &state,
        ctx,
        scope::ACCOUNTS_READ,
        prepare,
        |state: Shared, customer_id: String| async move {
            // The gateway's own directory, plus any the legacy core holds for the customer.
            let mut ids: Vec<String> = match state.directory.accounts_of(&customer_id).await {
                Ok(entries) => entries.iter().map(|e| e.account_id.to_string()).collect(),
                Err(error) => return Done::refused(error),
            };
            let mut legacy = state.upstreams.side(Side::Legacy);
            if let Ok(listed) = legacy
                .deposits
                .list_accounts(dpb::ListAccountsRequest {
                    customer_id: customer_id.clone(),
                })
                .await
            {
                for account in listed.into_inner().accounts {
                    // The legacy side also lists the copies it keeps for the gateway's shadows.
                    let copy = match Uuid::parse_str(&account.id) {
                        Ok(id) => state.directory.is_copy(id).await.unwrap_or(true),
                        Err(_) => true,
                    };
                    if !copy && !ids.contains(&account.id) {
                        ids.push(account.id);
                    }
                }
            }
            let listed = json!({ "customer_id": customer_id, "account_ids": ids });
            Done::unrouted(Ok((StatusCode::OK, listed)))
        },
    )
    .await
}

pub(super) async fn close_call(
    state: Shared,
    side: Side,
    request: dpb::ChangeStatusRequest,
    channel_id: String,
) -> Outcome {
    let answer = state
        .upstreams
        .side(side)
        .deposits
        .close_account(request)
        .await;
    answered(answer, side, StatusCode::OK, |a| {
        wire::account(a, &channel_id)
    })
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/close", tag = "accounts",
    summary = "Close an account",
    description = "Scope `accounts:write`.",
    params(("account_id" = crate::openapi::formats::AccountId, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body(content = wire::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The account, closed", body = wire::AccountAnswer))
)]
pub(super) async fn close_account(
    State(state): State<Shared>,
    Path(account_id): Path<String>,
    call: Call,
) -> Response {
    let path = format!("/v1/accounts/{account_id}/close");
    forward_on_account(
        &state,
        call,
        "accounts.close",
        path,
        &account_id,
        "accounts.write",
        |parsed: &wire::ReasonBody, request_id, id| dpb::ChangeStatusRequest {
            request_id,
            account_id: id.to_string(),
            reason: parsed.reason.clone().unwrap_or_default(),
        },
        close_call,
        true,
    )
    .await
}
