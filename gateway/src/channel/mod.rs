//! The channel API `/v1` (REST/JSON) and the gateway's request pipeline: authentication,
//! idempotency, routing to a side, the call, the audit record, and the answer with
//! `X-Served-By`, `X-Route-Version` and `X-Route-Reason`.
//!
//! Where an account lives: an account is opened on the side its rule picks (with a copy on
//! the other side's own books when the rule shadows), and the directory keeps its id on
//! each side that holds it. Later requests go to the side the rule picks for the account
//! (ownership, canary bucket, default) when that side holds it, and otherwise to the side
//! that does (`X-Route-Reason: not_on_side`): money never moves on books that do not hold
//! the account.

pub mod json;

use std::sync::Arc;
use std::time::Duration;

use axum::Router as HttpRouter;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use corebank_api::deposits::v1 as dpb;
use corebank_api::payments::v1 as ppb;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::audit::{self, AuditRecord};
use crate::auth::{self, Authenticator};
use crate::directory::{AccountEntry, Directory, PaymentEntry};
use crate::error::ApiError;
use crate::idempotency::{self, Begin, Fingerprint, IdempotencyStore};
use crate::principal::{RequestContext, Surface, scope};
use crate::routing::{Decision, Router, Side};
use crate::upstream::{Upstreams, api_error_of};

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct GatewayState {
    pub auth: Authenticator,
    pub router: Router,
    pub upstreams: Upstreams,
    pub directory: Directory,
    pub idempotency: IdempotencyStore,
    pub request_timeout: Duration,
}

type Shared = Arc<GatewayState>;

/// The `/v1` routes, behind authentication for the channel surface.
pub fn router(state: Shared) -> HttpRouter {
    HttpRouter::new()
        .route("/v1/accounts", post(open_account))
        .route("/v1/accounts/{account_id}", get(get_account))
        .route("/v1/accounts/{account_id}/balance", get(get_balance))
        .route("/v1/accounts/{account_id}/statement", get(get_statement))
        .route("/v1/accounts/{account_id}/deposits", post(deposit))
        .route("/v1/accounts/{account_id}/withdrawals", post(withdraw))
        .route("/v1/accounts/{account_id}/holds", post(place_hold))
        .route(
            "/v1/accounts/{account_id}/holds/{hold_id}/release",
            post(release_hold),
        )
        .route("/v1/accounts/{account_id}/close", post(close_account))
        .route("/v1/customers/{customer_id}/accounts", get(list_accounts))
        .route("/v1/transfers", post(transfer))
        .route("/v1/payments", post(initiate_payment))
        .route("/v1/payments/{payment_id}", get(get_payment))
        .route("/v1/payments/{payment_id}/cancel", post(cancel_payment))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate_channel,
        ))
        .with_state(state)
}

/// The client's address for the audit trail: the first `X-Forwarded-For` entry (behind a
/// proxy), else `X-Real-IP`, else `unknown` (the peer address is not kept by the server).
pub fn origin_of(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Verifies the token for `surface`, records refusals in the audit trail, and hands the
/// handlers a [`RequestContext`].
pub async fn authenticate(
    auth: &Authenticator,
    db: &corebank_db::Db,
    surface: Surface,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let origin = origin_of(headers);
    let request_id = request_id_of(headers);
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match auth.authenticate(authorization.as_deref(), surface).await {
        Ok(principal) => {
            request.extensions_mut().insert(RequestContext {
                principal,
                origin,
                request_id,
            });
            next.run(request).await
        }
        Err(error) => {
            let api = error.api_error();
            let record = AuditRecord {
                at: Utc::now(),
                actor: "anonymous".to_owned(),
                surface: surface.name().to_owned(),
                action: "auth.refused".to_owned(),
                resource: format!("{} {}", request.method(), request.uri().path()),
                origin,
                outcome: error.code().to_owned(),
                request_id,
                route: None,
                details: json!({ "status": api.status.as_u16() }),
            };
            if let Err(failure) = audit::append_alone(db, &record).await {
                tracing::error!(error = %failure, "an authentication failure could not be audited");
            }
            api.into_response()
        }
    }
}

async fn authenticate_channel(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(
        &state.auth,
        state.directory.db(),
        Surface::Channel,
        request,
        next,
    )
    .await
}

fn context(
    request_context: Option<axum::Extension<RequestContext>>,
) -> Result<RequestContext, ApiError> {
    request_context
        .map(|axum::Extension(context)| context)
        .ok_or_else(|| ApiError::unauthenticated("no authenticated principal"))
}

fn scope_needed(context: &RequestContext, needed: &str) -> Result<(), ApiError> {
    auth::require_scope(&context.principal, needed).map_err(|e| e.api_error())
}

fn customer_allowed(context: &RequestContext, customer_id: &str) -> Result<(), ApiError> {
    auth::require_customer(&context.principal, customer_id).map_err(|e| e.api_error())
}

fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<(T, Value), ApiError> {
    let value: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid(format!("the body is not JSON: {e}")))?
    };
    let parsed = serde_json::from_value(value.clone())
        .map_err(|e| ApiError::invalid(format!("the body is not a valid request: {e}")))?;
    Ok((parsed, value))
}

fn parse_id(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_argument",
            format!("{what} {text:?} is not a UUID"),
        )
    })
}

/// Where a request goes, and why.
#[derive(Debug, Clone, Copy)]
struct Route {
    side: Side,
    decision: Decision,
    /// The decided side does not hold the account: served by the side that does.
    not_on_side: bool,
}

impl Route {
    fn reason(&self) -> &'static str {
        if self.not_on_side {
            return "not_on_side";
        }
        match self.decision.reason {
            crate::routing::Reason::Ownership => "ownership",
            crate::routing::Reason::Canary => "canary",
            crate::routing::Reason::Default => "default",
            crate::routing::Reason::NoRule => "no_rule",
        }
    }

    fn json(&self) -> Value {
        json!({
            "side": self.side.as_str(),
            "version": self.decision.version,
            "reason": self.reason(),
            "shadow": self.decision.shadow.map(Side::as_str),
        })
    }

    fn headers(&self, response: &mut Response) {
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(self.side.as_str()) {
            headers.insert("x-served-by", value);
        }
        if let Ok(value) = HeaderValue::from_str(&self.decision.version.to_string()) {
            headers.insert("x-route-version", value);
        }
        if let Ok(value) = HeaderValue::from_str(self.reason()) {
            headers.insert("x-route-reason", value);
        }
    }
}

impl GatewayState {
    /// The account, from the directory, or found on a side (an account the gateway has not
    /// seen: one from before the gateway, on the legacy core, or opened on a side directly).
    async fn account(&self, account_id: Uuid) -> Result<AccountEntry, ApiError> {
        if let Some(entry) = self.directory.account(account_id).await? {
            return Ok(entry);
        }
        for side in [Side::Legacy, Side::Modern] {
            let mut clients = self.upstreams.side(side);
            match clients
                .deposits
                .get_account(dpb::GetAccountRequest {
                    account_id: account_id.to_string(),
                })
                .await
            {
                Ok(found) => {
                    let found = found.into_inner();
                    let (legacy_id, modern_id) = match side {
                        Side::Legacy => (Some(account_id), None),
                        Side::Modern => (None, Some(account_id)),
                    };
                    return self
                        .directory
                        .record(&AccountEntry {
                            account_id,
                            product_code: found.product_code,
                            customer_id: found.customer_id,
                            currency: found.currency,
                            legacy_id,
                            modern_id,
                        })
                        .await;
                }
                Err(status) if status.code() == tonic::Code::NotFound => {}
                Err(status) => return Err(api_error_of(&status, side)),
            }
        }
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_account",
            format!("no account {account_id}"),
        ))
    }

    /// The side for `operation` on `account`.
    fn route(&self, account: &AccountEntry, operation: &str) -> Route {
        let decision = self.router.table().decide(
            &account.product_code,
            operation,
            Some(&account.account_id.to_string()),
        );
        if account.id_on(decision.primary).is_some() {
            return Route {
                side: decision.primary,
                decision,
                not_on_side: false,
            };
        }
        Route {
            side: decision.primary.other(),
            decision,
            not_on_side: true,
        }
    }
}

fn side_id(account: &AccountEntry, side: Side) -> Result<String, ApiError> {
    account.id_on(side).map(|id| id.to_string()).ok_or_else(|| {
        ApiError::internal(format!(
            "account {} has no copy on the {} side",
            account.account_id,
            side.as_str()
        ))
    })
}

fn respond(status: StatusCode, body: Value, route: Option<&Route>) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(route) = route {
        route.headers(&mut response);
    }
    response
}

fn refusal(error: ApiError, route: Option<&Route>) -> Response {
    let mut response = error.into_response();
    if let Some(route) = route {
        route.headers(&mut response);
    }
    response
}

/// A mutating request's frame: its key, what it stands for, and who sent it.
struct Mutation {
    context: RequestContext,
    key: String,
    method: Method,
    path: String,
    body_hash: String,
    action: String,
}

impl Mutation {
    fn new(
        context: RequestContext,
        headers: &HeaderMap,
        method: Method,
        path: String,
        body: &Value,
    ) -> Result<Mutation, ApiError> {
        let key =
            idempotency::parse_key(headers.get("idempotency-key").and_then(|v| v.to_str().ok()))?;
        Ok(Mutation {
            action: format!("{method} {path}"),
            context,
            key,
            method,
            path,
            body_hash: idempotency::body_hash(body),
        })
    }

    fn fingerprint(&self) -> Fingerprint<'_> {
        Fingerprint {
            client: &self.context.principal.subject,
            key: &self.key,
            method: self.method.as_str(),
            path: &self.path,
            body_hash: &self.body_hash,
        }
    }

    /// The module's request id: the key, per client.
    fn request_id(&self) -> String {
        idempotency::request_id_for(&self.context.principal.subject, &self.key).to_string()
    }

    fn audit(
        &self,
        resource: &str,
        outcome: &str,
        route: Option<&Route>,
        details: Value,
    ) -> AuditRecord {
        AuditRecord {
            at: Utc::now(),
            actor: self.context.principal.subject.clone(),
            surface: Surface::Channel.name().to_owned(),
            action: self.action.clone(),
            resource: resource.to_owned(),
            origin: self.context.origin.clone(),
            outcome: outcome.to_owned(),
            request_id: self.context.request_id.clone(),
            route: route.map(Route::json),
            details,
        }
    }
}

/// What a mutation's work came to.
type Outcome = Result<(StatusCode, Value), ApiError>;

/// Runs a mutation once per idempotency key: replays a completed one, refuses one in
/// flight (409, `Retry-After`) or a key reused for another request (422); otherwise `work`
/// runs and its answer is stored with its audit record. A failure that is safe to retry
/// gives the key back (the module dedupes the retry by the same request id).
async fn once<F, Fut>(state: &GatewayState, mutation: Mutation, resource: &str, work: F) -> Response
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = (Outcome, Option<Route>)>,
{
    let owner = match state.idempotency.begin(mutation.fingerprint()).await {
        Err(error) => return error.into_response(),
        Ok(Begin::Replay { status, body }) => {
            let mut response = respond(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
                None,
            );
            response
                .headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            return response;
        }
        Ok(Begin::InFlight { retry_after_s }) => {
            let mut response = ApiError::new(
                StatusCode::CONFLICT,
                "request_in_flight",
                "a request with this Idempotency-Key is still being processed; retry after the Retry-After seconds",
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after_s.to_string()) {
                response.headers_mut().insert("retry-after", value);
            }
            return response;
        }
        Ok(Begin::Mismatch) => {
            return ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was used for a different request (method, path or body); use a new key",
            )
            .into_response();
        }
        Ok(Begin::Proceed { owner, .. }) => owner,
    };
    let work = tokio::time::timeout(state.request_timeout, work(mutation.request_id()));
    let (outcome, route) = match work.await {
        Ok(done) => done,
        Err(_) => (
            Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "timeout",
                "the request took too long; retry with the same Idempotency-Key",
            )),
            None,
        ),
    };
    let (status, body, retry_safe) = match &outcome {
        Ok((status, body)) => (*status, body.clone(), false),
        Err(error) => (error.status, error.body(), error.retry_safe),
    };
    let record = mutation.audit(resource, status.as_str(), route.as_ref(), json!({}));
    let stored = if retry_safe {
        state
            .idempotency
            .abandon(mutation.fingerprint(), owner, &record)
            .await
    } else {
        state
            .idempotency
            .complete(
                mutation.fingerprint(),
                owner,
                status.as_u16(),
                &body,
                &record,
            )
            .await
            .map(|_| ())
    };
    if let Err(error) = stored {
        return error.into_response();
    }
    match outcome {
        Ok((status, body)) => respond(status, body, route.as_ref()),
        Err(error) => refusal(error, route.as_ref()),
    }
}

/// Reads run without idempotency; they are audited only when refused by routing errors.
async fn read<F, Fut>(state: &GatewayState, work: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = (Outcome, Option<Route>)>,
{
    match tokio::time::timeout(state.request_timeout, work()).await {
        Ok((Ok((status, body)), route)) => respond(status, body, route.as_ref()),
        Ok((Err(error), route)) => refusal(error, route.as_ref()),
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long",
        )
        .into_response(),
    }
}

type Ctx = Option<axum::Extension<RequestContext>>;

async fn open_account(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = (|| {
        let context = context(ctx)?;
        scope_needed(&context, scope::ACCOUNTS_WRITE)?;
        let (parsed, value) = parse_body::<json::OpenAccountBody>(&body)?;
        let customer_id = match (&parsed.customer_id, &context.principal.customer_id) {
            (Some(given), _) => given.clone(),
            (None, Some(bound)) => bound.clone(),
            (None, None) => return Err(ApiError::invalid("customer_id is required")),
        };
        customer_allowed(&context, &customer_id)?;
        let mutation = Mutation::new(
            context,
            &headers,
            Method::POST,
            "/v1/accounts".to_owned(),
            &value,
        )?;
        Ok((mutation, parsed, customer_id))
    })();
    let (mutation, parsed, customer_id) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("customer:{customer_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        // The new account is routed by its product; its canary bucket is the request's.
        let decision =
            state
                .router
                .table()
                .decide(&parsed.product_code, "accounts.write", Some(&request_id));
        let route = Route {
            side: decision.primary,
            decision,
            not_on_side: false,
        };
        let mut clients = state.upstreams.side(route.side);
        let opened = clients
            .deposits
            .open_account(dpb::OpenAccountRequest {
                request_id,
                customer_id: customer_id.clone(),
                product_code: parsed.product_code.clone(),
                opened_on: parsed.opened_on.clone().unwrap_or_default(),
            })
            .await;
        let outcome = match opened {
            Err(status) => Err(api_error_of(&status, route.side)),
            Ok(answer) => {
                let account = answer.into_inner();
                match parse_id(&account.id, "the side's account id") {
                    Err(error) => Err(error),
                    Ok(id) => {
                        let (legacy_id, modern_id) = match route.side {
                            Side::Legacy => (Some(id), None),
                            Side::Modern => (None, Some(id)),
                        };
                        state
                            .directory
                            .record(&AccountEntry {
                                account_id: id,
                                product_code: account.product_code.clone(),
                                customer_id: account.customer_id.clone(),
                                currency: account.currency.clone(),
                                legacy_id,
                                modern_id,
                            })
                            .await
                            .map(|_| (StatusCode::CREATED, json::account(&account, &account.id)))
                    }
                }
            }
        };
        (outcome, Some(route))
    })
    .await
}

/// The account, with the customer binding checked.
async fn account_for(
    state: &GatewayState,
    context: &RequestContext,
    account_id: &str,
) -> Result<AccountEntry, ApiError> {
    let id = parse_id(account_id, "account id")?;
    let account = state.account(id).await?;
    customer_allowed(context, &account.customer_id)?;
    Ok(account)
}

async fn get_account(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    read(&state, || async {
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            account_for(&state, &context, &account_id).await
        };
        let account = match prepared.await {
            Ok(account) => account,
            Err(error) => return (Err(error), None),
        };
        let route = state.route(&account, "accounts.read");
        let outcome = match side_id(&account, route.side) {
            Err(error) => Err(error),
            Ok(id) => state
                .upstreams
                .side(route.side)
                .deposits
                .get_account(dpb::GetAccountRequest { account_id: id })
                .await
                .map(|a| (StatusCode::OK, json::account(&a.into_inner(), &account_id)))
                .map_err(|s| api_error_of(&s, route.side)),
        };
        (outcome, Some(route))
    })
    .await
}

async fn get_balance(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    read(&state, || async {
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            account_for(&state, &context, &account_id).await
        };
        let account = match prepared.await {
            Ok(account) => account,
            Err(error) => return (Err(error), None),
        };
        let route = state.route(&account, "accounts.read");
        let outcome = match side_id(&account, route.side) {
            Err(error) => Err(error),
            Ok(id) => state
                .upstreams
                .side(route.side)
                .deposits
                .get_account(dpb::GetAccountRequest { account_id: id })
                .await
                .map(|a| {
                    let a = a.into_inner();
                    (
                        StatusCode::OK,
                        json!({
                            "account_id": account_id,
                            "currency": a.currency,
                            "balances": json::balances(a.balances.as_ref()),
                        }),
                    )
                })
                .map_err(|s| api_error_of(&s, route.side)),
        };
        (outcome, Some(route))
    })
    .await
}

#[derive(Debug, serde::Deserialize)]
struct StatementQuery {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    page_size: Option<u32>,
}

async fn get_statement(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
    Query(query): Query<StatementQuery>,
) -> Response {
    read(&state, || async {
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            account_for(&state, &context, &account_id).await
        };
        let account = match prepared.await {
            Ok(account) => account,
            Err(error) => return (Err(error), None),
        };
        let route = state.route(&account, "accounts.read");
        let outcome = match side_id(&account, route.side) {
            Err(error) => Err(error),
            Ok(id) => state
                .upstreams
                .side(route.side)
                .deposits
                .get_statement(dpb::GetStatementRequest {
                    account_id: id,
                    cursor: query.cursor.clone().unwrap_or_default(),
                    page_size: query.page_size.unwrap_or(50).min(200),
                })
                .await
                .map(|s| {
                    (
                        StatusCode::OK,
                        json::statement(&s.into_inner(), &account_id),
                    )
                })
                .map_err(|s| api_error_of(&s, route.side)),
        };
        (outcome, Some(route))
    })
    .await
}

async fn list_accounts(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(customer_id): Path<String>,
) -> Response {
    read(&state, || async {
        let prepared = (|| {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            customer_allowed(&context, &customer_id)
        })();
        if let Err(error) = prepared {
            return (Err(error), None);
        }
        // The gateway's own directory, plus any the legacy core holds for the customer.
        let mut ids: Vec<String> = match state.directory.accounts_of(&customer_id).await {
            Ok(entries) => entries.iter().map(|e| e.account_id.to_string()).collect(),
            Err(error) => return (Err(error), None),
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
                if !ids.contains(&account.id) {
                    ids.push(account.id);
                }
            }
        }
        (
            Ok((
                StatusCode::OK,
                json!({ "customer_id": customer_id, "account_ids": ids }),
            )),
            None,
        )
    })
    .await
}

/// The frame of an account-addressed mutation: context checked, body parsed, account found.
async fn account_mutation<T: DeserializeOwned>(
    state: &GatewayState,
    ctx: Ctx,
    headers: &HeaderMap,
    path: String,
    account_id: &str,
    body: &Bytes,
    needed: &str,
) -> Result<(Mutation, T, AccountEntry), ApiError> {
    let context = context(ctx)?;
    scope_needed(&context, needed)?;
    let (parsed, value) = parse_body::<T>(body)?;
    let mutation = Mutation::new(context, headers, Method::POST, path, &value)?;
    let account = account_for(state, &mutation.context, account_id).await?;
    Ok((mutation, parsed, account))
}

async fn cash(
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
    let (mutation, parsed, account) = match account_mutation::<json::CashBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        scope::ACCOUNTS_WRITE,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("account:{account_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        let route = state.route(&account, "cash");
        let id = match side_id(&account, route.side) {
            Ok(id) => id,
            Err(error) => return (Err(error), Some(route)),
        };
        let request = dpb::CashRequest {
            request_id,
            account_id: id,
            amount: parsed.amount.clone(),
            currency: parsed.currency.clone(),
            description: parsed.description.clone().unwrap_or_default(),
            channel: String::new(),
        };
        let mut clients = state.upstreams.side(route.side);
        let answer = if deposit {
            clients.deposits.deposit(request).await
        } else {
            clients.deposits.withdraw(request).await
        };
        let outcome = answer
            .map(|m| {
                (
                    StatusCode::CREATED,
                    json::movement(&m.into_inner(), &account_id),
                )
            })
            .map_err(|s| api_error_of(&s, route.side));
        (outcome, Some(route))
    })
    .await
}

async fn deposit(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    cash(state, ctx, headers, account_id, body, true).await
}

async fn withdraw(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    cash(state, ctx, headers, account_id, body, false).await
}

async fn place_hold(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/accounts/{account_id}/holds");
    let (mutation, parsed, account) = match account_mutation::<json::HoldBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        scope::ACCOUNTS_WRITE,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("account:{account_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        let route = state.route(&account, "holds");
        let id = match side_id(&account, route.side) {
            Ok(id) => id,
            Err(error) => return (Err(error), Some(route)),
        };
        let outcome = state
            .upstreams
            .side(route.side)
            .deposits
            .place_hold(dpb::PlaceHoldRequest {
                request_id,
                account_id: id,
                amount: parsed.amount.clone(),
                currency: parsed.currency.clone(),
                reason: parsed.reason.clone().unwrap_or_default(),
                expires_in_seconds: parsed.expires_in_seconds.unwrap_or(0),
            })
            .await
            .map(|h| {
                (
                    StatusCode::CREATED,
                    json::hold(&h.into_inner(), &account_id),
                )
            })
            .map_err(|s| api_error_of(&s, route.side));
        (outcome, Some(route))
    })
    .await
}

async fn release_hold(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((account_id, hold_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/accounts/{account_id}/holds/{hold_id}/release");
    let (mutation, _, account) = match account_mutation::<json::ReasonBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        scope::ACCOUNTS_WRITE,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("hold:{hold_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        // A hold lives where it was placed: on the account's side for holds.
        let route = state.route(&account, "holds");
        let outcome = state
            .upstreams
            .side(route.side)
            .deposits
            .release_hold(dpb::ReleaseHoldRequest {
                request_id,
                hold_id: hold_id.clone(),
            })
            .await
            .map_err(|s| api_error_of(&s, route.side))
            .and_then(|h| {
                let h = h.into_inner();
                if h.account_id == side_id(&account, route.side)? {
                    Ok((StatusCode::OK, json::hold(&h, &account_id)))
                } else {
                    Err(ApiError::new(
                        StatusCode::NOT_FOUND,
                        "unknown_hold",
                        format!("account {account_id} has no hold {hold_id}"),
                    ))
                }
            });
        (outcome, Some(route))
    })
    .await
}

async fn close_account(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/accounts/{account_id}/close");
    let (mutation, parsed, account) = match account_mutation::<json::ReasonBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        scope::ACCOUNTS_WRITE,
    )
    .await
    {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("account:{account_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        let route = state.route(&account, "accounts.write");
        let id = match side_id(&account, route.side) {
            Ok(id) => id,
            Err(error) => return (Err(error), Some(route)),
        };
        let outcome = state
            .upstreams
            .side(route.side)
            .deposits
            .close_account(dpb::ChangeStatusRequest {
                request_id,
                account_id: id,
                reason: parsed.reason.clone().unwrap_or_default(),
            })
            .await
            .map(|a| (StatusCode::OK, json::account(&a.into_inner(), &account_id)))
            .map_err(|s| api_error_of(&s, route.side));
        (outcome, Some(route))
    })
    .await
}

async fn transfer(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = async {
        let context = context(ctx)?;
        scope_needed(&context, scope::ACCOUNTS_WRITE)?;
        let (parsed, value) = parse_body::<json::TransferBody>(&body)?;
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
        Err(error) => return error.into_response(),
    };
    let resource = format!("account:{}", parsed.from_account_id);
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        let route = state.route(&from, "transfers");
        // Both accounts must be on the side that moves the money.
        let (from_id, to_id) = match (from.id_on(route.side), to.id_on(route.side)) {
            (Some(f), Some(t)) => (f, t),
            _ => {
                return (
                    Err(ApiError::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "accounts_on_different_sides",
                        "the two accounts are kept by different cores; a transfer between them is a payment",
                    )),
                    Some(route),
                );
            }
        };
        let outcome = state
            .upstreams
            .side(route.side)
            .payments
            .internal_transfer(ppb::InternalTransferRequest {
                request_id,
                from_account_id: from_id.to_string(),
                to_account_id: to_id.to_string(),
                amount: parsed.amount.clone(),
                currency: parsed.currency.clone(),
                description: parsed.description.clone().unwrap_or_default(),
            })
            .await
            .map(|t| (StatusCode::CREATED, json::transfer(&t.into_inner(), &parsed.from_account_id, &parsed.to_account_id)))
            .map_err(|s| api_error_of(&s, route.side));
        (outcome, Some(route))
    })
    .await
}

async fn initiate_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let prepared = async {
        let context = context(ctx)?;
        scope_needed(&context, scope::PAYMENTS_WRITE)?;
        let (parsed, value) = parse_body::<json::PaymentBody>(&body)?;
        let mutation = Mutation::new(
            context,
            &headers,
            Method::POST,
            "/v1/payments".to_owned(),
            &value,
        )?;
        let debtor = account_for(&state, &mutation.context, &parsed.debtor_account_id).await?;
        Ok::<_, ApiError>((mutation, parsed, debtor))
    };
    let (mutation, parsed, debtor) = match prepared.await {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("account:{}", parsed.debtor_account_id);
    let worker = Arc::clone(&state);
    let mut response = once(&state, mutation, &resource, |request_id| async move {
        let state = worker;
        let route = state.route(&debtor, "payments");
        let id = match side_id(&debtor, route.side) {
            Ok(id) => id,
            Err(error) => return (Err(error), Some(route)),
        };
        let started = state
            .upstreams
            .side(route.side)
            .payments
            .initiate_payment(ppb::InitiatePaymentRequest {
                request_id,
                debtor_account_id: id,
                creditor: Some(ppb::Party {
                    name: parsed.creditor.name.clone(),
                    account: parsed.creditor.account.clone(),
                    agent_bic: parsed.creditor.agent_bic.clone(),
                }),
                amount: parsed.amount.clone(),
                currency: parsed.currency.clone(),
                end_to_end_id: parsed.end_to_end_id.clone().unwrap_or_default(),
                remittance_information: parsed.remittance_information.clone().unwrap_or_default(),
            })
            .await;
        let outcome = match started {
            Err(status) => Err(api_error_of(&status, route.side)),
            Ok(answer) => {
                let payment = answer.into_inner();
                match parse_id(&payment.id, "the side's payment id") {
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
                                json::payment(&payment, &parsed.debtor_account_id),
                            )
                        }),
                }
            }
        };
        (outcome, Some(route))
    })
    .await;
    // 202 with where to follow the payment.
    if response.status() == StatusCode::ACCEPTED {
        let location = axum::body::to_bytes(std::mem::take(response.body_mut()), 1 << 20).await;
        if let Ok(bytes) = location {
            if let Some(id) = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["id"].as_str().map(str::to_owned))
                && let Ok(value) = HeaderValue::from_str(&format!("/v1/payments/{id}"))
            {
                response
                    .headers_mut()
                    .insert(axum::http::header::LOCATION, value);
            }
            *response.body_mut() = axum::body::Body::from(bytes);
        }
    }
    response
}

async fn payment_for(
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

async fn get_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(payment_id): Path<String>,
) -> Response {
    read(&state, || async {
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            payment_for(&state, &context, &payment_id).await
        };
        let payment = match prepared.await {
            Ok(payment) => payment,
            Err(error) => return (Err(error), None),
        };
        let outcome = state
            .upstreams
            .side(payment.side)
            .payments
            .get_payment(ppb::GetPaymentRequest {
                payment_id: payment_id.clone(),
            })
            .await
            .map(|p| {
                (
                    StatusCode::OK,
                    json::payment(&p.into_inner(), &payment.account_id.to_string()),
                )
            })
            .map_err(|s| api_error_of(&s, payment.side));
        (outcome, None)
    })
    .await
}

async fn cancel_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Response {
    let prepared = async {
        let context = context(ctx)?;
        scope_needed(&context, scope::PAYMENTS_WRITE)?;
        let (parsed, value) = parse_body::<json::ReasonBody>(&body)?;
        let mutation = Mutation::new(
            context,
            &headers,
            Method::POST,
            format!("/v1/payments/{payment_id}/cancel"),
            &value,
        )?;
        let payment = payment_for(&state, &mutation.context, &payment_id).await?;
        Ok::<_, ApiError>((mutation, parsed, payment))
    };
    let (mutation, parsed, payment) = match prepared.await {
        Ok(prepared) => prepared,
        Err(error) => return error.into_response(),
    };
    let resource = format!("payment:{payment_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |_request_id| async move {
        let state = worker;
        let outcome = state
            .upstreams
            .side(payment.side)
            .payments
            .cancel_payment(ppb::CancelPaymentRequest {
                payment_id: payment_id.clone(),
                reason: parsed.reason.clone().unwrap_or_default(),
            })
            .await
            .map(|p| {
                (
                    StatusCode::OK,
                    json::payment(&p.into_inner(), &payment.account_id.to_string()),
                )
            })
            .map_err(|s| api_error_of(&s, payment.side));
        (outcome, None)
    })
    .await
}
