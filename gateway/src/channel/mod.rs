//! The channel API `/v1` (REST/JSON) and the gateway's request pipeline: authentication,
//! idempotency, routing to a side, the call, the audit record, and the answer with
//! `X-Served-By`, `X-Route-Version` and `X-Route-Reason`.
//!
//! Where an account lives: a new account is opened on the side its product's rule picks
//! (ownership, canary bucket, default), which becomes its **home**; with a shadowing rule the
//! other side opens a copy on its own books. Every real request about the account goes to
//! its home (`X-Route-Reason: home` when the rule would pick the other side): a copy only
//! ever receives shadow traffic, because its balance is not the customer's money (payments
//! are never shadowed, and dropped shadows never reach it). Moving an account's home is the
//! account migration's job (it moves the balance and the holds), not a routing change.

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
use crate::shadow::{Answer, Shadow, ShadowJob};
use crate::upstream::{Upstreams, api_error_of};

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct GatewayState {
    pub auth: Authenticator,
    pub router: Router,
    pub upstreams: Upstreams,
    pub directory: Directory,
    pub idempotency: IdempotencyStore,
    pub shadow: Shadow,
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

/// The `/v1` operations for the API reference (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    open_account,
    get_account,
    get_balance,
    get_statement,
    deposit,
    withdraw,
    place_hold,
    release_hold,
    close_account,
    list_accounts,
    transfer,
    initiate_payment,
    get_payment,
    cancel_payment,
))]
struct ChannelApi;

/// The `/v1` part of the API reference.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ChannelApi as utoipa::OpenApi>::openapi()
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

/// An id in a side's answer: when it is not a UUID the side misbehaved after doing the work,
/// which is the side's failure (502), not the caller's.
fn side_answer_id(text: &str, what: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(text).map_err(|_| {
        tracing::error!(id = text, what, "a side answered an id that is not a UUID");
        ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_error",
            "a core answered something the gateway cannot read; retry later with the same Idempotency-Key",
        )
    })
}

/// Where a request goes, and why.
#[derive(Debug, Clone)]
struct Route {
    product: String,
    operation: &'static str,
    side: Side,
    decision: Decision,
    /// The rule would pick the other side, but the account's home serves it.
    not_on_side: bool,
}

impl Route {
    /// The side that gets a shadow copy, when the rule asks for one and the request was
    /// routed as decided.
    fn shadow_side(&self) -> Option<Side> {
        self.decision.shadow.is_some().then(|| self.side.other())
    }

    fn reason(&self) -> &'static str {
        if self.not_on_side {
            return "home";
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
        // A copy's id (an account's id on its non-home side) is not an account channels use.
        if self.directory.is_copy(account_id).await? {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_account",
                format!("no account {account_id}"),
            ));
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
                            home: side,
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
    fn route(&self, account: &AccountEntry, operation: &'static str) -> Route {
        let decision = self.router.table().decide(
            &account.product_code,
            operation,
            Some(&account.account_id.to_string()),
        );
        Route {
            product: account.product_code.clone(),
            operation,
            // Real requests go to the account's home, whatever the rule would pick: a copy
            // on the other side only ever receives shadow traffic (its balance is not the
            // customer's money), until an account migration moves the account.
            side: account.home,
            not_on_side: decision.primary != account.home,
            decision,
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
    /// Whose keys these are: the token's subject, and the customer it is bound to (two
    /// customers of one channel app never share a key space).
    client: String,
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
        let client = match &context.principal.customer_id {
            Some(customer) => format!(
                "{}:{}/customer:{customer}",
                context.principal.subject.len(),
                context.principal.subject
            ),
            None => context.principal.subject.clone(),
        };
        Ok(Mutation {
            action: format!("{method} {path}"),
            client,
            context,
            key,
            method,
            path,
            body_hash: idempotency::body_hash(body),
        })
    }

    fn fingerprint(&self) -> Fingerprint<'_> {
        Fingerprint {
            client: &self.client,
            key: &self.key,
            method: self.method.as_str(),
            path: &self.path,
            body_hash: &self.body_hash,
        }
    }

    /// The module's request id: the key, per client.
    fn request_id(&self) -> String {
        idempotency::request_id_for(&self.client, &self.key).to_string()
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

/// What a request's work came to.
type Outcome = Result<(StatusCode, Value), ApiError>;

/// The same request on the shadow side's own books.
type ShadowRun = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>;

/// A request's work: its outcome, where it went, and its shadow run (if the rule shadows
/// and the shadow side holds what the request touches).
struct Done {
    outcome: Outcome,
    route: Option<Route>,
    shadow: Option<ShadowRun>,
}

impl Done {
    fn refused(error: ApiError) -> Done {
        Done {
            outcome: Err(error),
            route: None,
            shadow: None,
        }
    }
}

fn answer_of(outcome: &Outcome) -> Answer {
    match outcome {
        Ok((status, body)) => Answer {
            status: status.as_u16(),
            body: body.clone(),
        },
        Err(error) => Answer {
            status: error.status.as_u16(),
            body: error.body(),
        },
    }
}

/// The request id the shadow side gets: derived from the primary's, so a shadow that runs
/// twice is applied once on the shadow side too.
fn shadow_request_id(request_id: &str) -> String {
    idempotency::request_id_for("shadow", request_id).to_string()
}

/// Feeds the rollback window, and queues the shadow run (never waiting).
fn observe(state: &GatewayState, done: &mut Done, request_id: &str) {
    let Some(route) = &done.route else {
        return;
    };
    let primary = answer_of(&done.outcome);
    // The rollback window judges the side, not the gateway: the gateway's own failures
    // (its database, its bugs) are left out.
    let gateway_failure = done.outcome.as_ref().err().is_some_and(|error| {
        error.code == "internal" || error.message.starts_with("the gateway's database")
    });
    if !gateway_failure {
        state
            .shadow
            .observe_primary(&route.product, route.operation, route.side, &primary);
    }
    if let (Some(shadow_side), Some(run)) = (route.shadow_side(), done.shadow.take()) {
        state.shadow.submit(ShadowJob {
            product: route.product.clone(),
            operation: route.operation.to_owned(),
            primary_side: route.side,
            shadow_side,
            request_id: request_id.to_owned(),
            primary,
            run,
        });
    }
}

/// Runs a mutation once per idempotency key: replays a completed one, refuses one in
/// flight (409, `Retry-After`) or a key reused for another request (422); otherwise `work`
/// runs and its answer is stored with its audit record. A failure that is safe to retry
/// gives the key back (the module dedupes the retry by the same request id).
/// A mutating request as the audit trail names it, for refusals made before it ran (no
/// token or scope, a bad body, a missing key, an unknown or another customer's account).
struct Attempt {
    actor: String,
    origin: String,
    request_id: String,
    action: &'static str,
}

impl Attempt {
    fn of(ctx: &Ctx, headers: &HeaderMap, action: &'static str) -> Attempt {
        let context = ctx.as_ref().map(|axum::Extension(c)| c);
        Attempt {
            actor: context.map_or_else(|| "anonymous".to_owned(), |c| c.principal.subject.clone()),
            origin: context.map_or_else(|| origin_of(headers), |c| c.origin.clone()),
            request_id: context.map_or_else(|| request_id_of(headers), |c| c.request_id.clone()),
            action,
        }
    }

    async fn refused(&self, state: &GatewayState, error: ApiError) -> Response {
        let record = AuditRecord {
            at: Utc::now(),
            actor: self.actor.clone(),
            surface: Surface::Channel.name().to_owned(),
            action: self.action.to_owned(),
            resource: "-".to_owned(),
            origin: self.origin.clone(),
            outcome: error.code.clone(),
            request_id: self.request_id.clone(),
            route: None,
            details: json!({ "status": error.status.as_u16() }),
        };
        if let Err(failure) = audit::append_alone(state.directory.db(), &record).await {
            tracing::error!(error = %failure, "a refused request could not be audited");
        }
        error.into_response()
    }
}

/// Pins the side a mutation is sent to, for retries under its key.
#[derive(Debug, Clone)]
struct SidePin {
    store: IdempotencyStore,
    client: String,
    key: String,
    method: String,
    path: String,
    body_hash: String,
    owner: Uuid,
}

impl SidePin {
    /// The side to send to: `decided`, unless an earlier attempt under this key went
    /// elsewhere.
    async fn side(&self, decided: Side) -> Result<Side, ApiError> {
        let pinned = self
            .store
            .pin_side(
                Fingerprint {
                    client: &self.client,
                    key: &self.key,
                    method: &self.method,
                    path: &self.path,
                    body_hash: &self.body_hash,
                },
                self.owner,
                decided.as_str(),
            )
            .await?;
        Side::parse(&pinned).ok_or_else(|| ApiError::internal(format!("pinned side {pinned:?}")))
    }
}

async fn once<F, Fut>(state: &GatewayState, mutation: Mutation, resource: &str, work: F) -> Response
where
    F: FnOnce(String, SidePin) -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    let begin = state.idempotency.begin(mutation.fingerprint()).await;
    let answered = match &begin {
        Ok(Begin::Replay { status, .. }) => Some(format!("replayed {status}")),
        Ok(Begin::InFlight { .. }) => Some("request_in_flight".to_owned()),
        Ok(Begin::Mismatch) => Some("idempotency_key_reused".to_owned()),
        Ok(Begin::Proceed { .. }) | Err(_) => None,
    };
    if let Some(outcome) = answered {
        let record = mutation.audit(resource, &outcome, None, json!({}));
        if let Err(failure) = audit::append_alone(state.directory.db(), &record).await {
            tracing::error!(error = %failure, "an idempotent answer could not be audited");
        }
    }
    let owner = match begin {
        Err(error) => return error.into_response(),
        Ok(Begin::Replay {
            status,
            body,
            route,
        }) => {
            let mut response = respond(
                StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                body,
                None,
            );
            let headers = response.headers_mut();
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            // The first answer's route, as it was.
            if let Some(route) = route {
                for (header, field) in [
                    ("x-served-by", "side"),
                    ("x-route-version", "version"),
                    ("x-route-reason", "reason"),
                ] {
                    let value = match &route[field] {
                        Value::String(text) => text.clone(),
                        Value::Null => continue,
                        other => other.to_string(),
                    };
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        headers.insert(header, value);
                    }
                }
            }
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
    let pin = SidePin {
        store: state.idempotency.clone(),
        client: mutation.client.clone(),
        key: mutation.key.clone(),
        method: mutation.method.as_str().to_owned(),
        path: mutation.path.clone(),
        body_hash: mutation.body_hash.clone(),
        owner,
    };
    let work = tokio::time::timeout(state.request_timeout, work(mutation.request_id(), pin));
    let mut done = match work.await {
        Ok(done) => done,
        Err(_) => Done::refused(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long; retry with the same Idempotency-Key",
        )),
    };
    let (status, body, retry_safe) = match &done.outcome {
        Ok((status, body)) => (*status, body.clone(), false),
        Err(error) => (error.status, error.body(), error.retry_safe),
    };
    let record = mutation.audit(resource, status.as_str(), done.route.as_ref(), json!({}));
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
    observe(state, &mut done, &mutation.context.request_id);
    match done.outcome {
        Ok((status, body)) => respond(status, body, done.route.as_ref()),
        Err(error) => refusal(error, done.route.as_ref()),
    }
}

/// Reads run without idempotency keys.
async fn read<F, Fut>(state: &GatewayState, request_id: &str, work: F) -> Response
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    let mut done = match tokio::time::timeout(state.request_timeout, work()).await {
        Ok(done) => done,
        Err(_) => Done::refused(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the request took too long",
        )),
    };
    observe(state, &mut done, request_id);
    match done.outcome {
        Ok((status, body)) => respond(status, body, done.route.as_ref()),
        Err(error) => refusal(error, done.route.as_ref()),
    }
}

type Ctx = Option<axum::Extension<RequestContext>>;

/// The shadow run of a call, when the route shadows and `ids` (the shadow side's ids of
/// what the request touches) are all there.
fn shadow_of<F, Fut>(route: &Route, ready: bool, call: F) -> Option<ShadowRun>
where
    F: FnOnce(Side) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let side = route.shadow_side()?;
    if !ready {
        return None;
    }
    let run = call(side);
    Some(Box::pin(async move { answer_of(&run.await) }))
}

async fn open_on(
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
    request_body = json::OpenAccountBody,
    responses((status = 201, description = "The account, opened", body = json::AccountAnswer))
)]
async fn open_account(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "accounts.open");
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
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("customer:{customer_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, pin| async move {
        let state = worker;
        // A new account is routed by its product; its canary bucket is the request's.
        let decision =
            state
                .router
                .table()
                .decide(&parsed.product_code, "accounts.write", Some(&request_id));
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
            Err(error) => {
                return Done {
                    outcome: Err(error),
                    route: Some(route),
                    shadow: None,
                };
            }
        };
        let id = match side_answer_id(&account.id, "the side's account id") {
            Ok(id) => id,
            Err(error) => {
                return Done {
                    outcome: Err(error),
                    route: Some(route),
                    shadow: None,
                };
            }
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
            })
            .await;
        if let Err(error) = recorded {
            return Done {
                outcome: Err(error),
                route: Some(route),
                shadow: None,
            };
        }
        // With a shadow, the other side opens its own copy, noted in the directory.
        let shadow = shadow_of(&route, true, |side| {
            let state = Arc::clone(&state);
            let (customer_id, product_code) = (customer_id.clone(), parsed.product_code.clone());
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
                Ok((StatusCode::CREATED, json::account(&copy, &channel_id)))
            }
        });
        Done {
            outcome: Ok((StatusCode::CREATED, json::account(&account, &account.id))),
            route: Some(route),
            shadow,
        }
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

/// A read of one account: checked, routed, called on the primary and (when the rule
/// shadows) on the shadow side's copy.
async fn account_read<F, Fut>(state: Shared, ctx: Ctx, account_id: String, call: F) -> Response
where
    F: Fn(Shared, Side, String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let request_id = ctx
        .as_ref()
        .map(|c| c.0.request_id.clone())
        .unwrap_or_default();
    let worker = Arc::clone(&state);
    read(&state, &request_id, || async move {
        let state = worker;
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            account_for(&state, &context, &account_id).await
        };
        let account = match prepared.await {
            Ok(account) => account,
            Err(error) => return Done::refused(error),
        };
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
        Done {
            outcome,
            route: Some(route),
            shadow,
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}", tag = "accounts",
    summary = "Read an account",
    description = "Scope `accounts:read`.",
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    responses((status = 200, description = "The account", body = json::AccountAnswer))
)]
async fn get_account(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    account_answer(state, ctx, account_id, json::account).await
}

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/balance", tag = "accounts",
    summary = "Read an account's balances",
    description = "Scope `accounts:read`.",
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    responses((status = 200, description = "The balances", body = json::BalanceAnswer))
)]
async fn get_balance(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(account_id): Path<String>,
) -> Response {
    account_answer(state, ctx, account_id, json::balance).await
}

/// `GetAccount` on the account's side, rendered by `render` under the channel's id.
async fn account_answer(
    state: Shared,
    ctx: Ctx,
    account_id: String,
    render: fn(&dpb::Account, &str) -> Value,
) -> Response {
    let channel_id = account_id.clone();
    account_read(state, ctx, account_id, move |state, side, id| {
        let channel_id = channel_id.clone();
        async move {
            state
                .upstreams
                .side(side)
                .deposits
                .get_account(dpb::GetAccountRequest { account_id: id })
                .await
                .map(|a| (StatusCode::OK, render(&a.into_inner(), &channel_id)))
                .map_err(|s| api_error_of(&s, side))
        }
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

#[utoipa::path(
    get, path = "/v1/accounts/{account_id}/statement", tag = "accounts",
    summary = "Read a page of an account's statement",
    description = "Scope `accounts:read`. Paged: give the answer's `next_cursor` as `cursor` for the next page.",
    params(
        ("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it"),
        ("cursor" = Option<String>, Query, description = "The previous page's `next_cursor`; the first page when absent"),
        ("page_size" = Option<u32>, Query, description = "Lines per page: 50 when absent, 200 at most", maximum = 200),
    ),
    responses((status = 200, description = "A page of the statement", body = json::StatementAnswer))
)]
async fn get_statement(
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
            state
                .upstreams
                .side(side)
                .deposits
                .get_statement(dpb::GetStatementRequest {
                    account_id: id,
                    cursor,
                    page_size,
                })
                .await
                .map(|s| {
                    (
                        StatusCode::OK,
                        json::statement(&s.into_inner(), &channel_id),
                    )
                })
                .map_err(|s| api_error_of(&s, side))
        }
    })
    .await
}

#[utoipa::path(
    get, path = "/v1/customers/{customer_id}/accounts", tag = "accounts",
    summary = "List a customer's accounts",
    description = "Scope `accounts:read`; a customer-bound token reads only its own customer.",
    params(("customer_id" = String, Path, description = "The customer's id")),
    responses((status = 200, description = "The customer's account ids", body = json::CustomerAccountsAnswer))
)]
async fn list_accounts(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(customer_id): Path<String>,
) -> Response {
    let request_id = ctx
        .as_ref()
        .map(|c| c.0.request_id.clone())
        .unwrap_or_default();
    let worker = Arc::clone(&state);
    read(&state, &request_id, || async move {
        let state = worker;
        let prepared = (|| {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            customer_allowed(&context, &customer_id)
        })();
        if let Err(error) = prepared {
            return Done::refused(error);
        }
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
        Done {
            outcome: Ok((
                StatusCode::OK,
                json!({ "customer_id": customer_id, "account_ids": ids }),
            )),
            route: None,
            shadow: None,
        }
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

/// [`account_mutation`], with a refusal audited and answered.
async fn account_mutation_or_refusal<T: DeserializeOwned>(
    state: &GatewayState,
    ctx: Ctx,
    headers: &HeaderMap,
    path: String,
    account_id: &str,
    body: &Bytes,
    label: &'static str,
) -> Result<(Mutation, T, AccountEntry), Response> {
    let attempt = Attempt::of(&ctx, headers, label);
    match account_mutation::<T>(
        state,
        ctx,
        headers,
        path,
        account_id,
        body,
        scope::ACCOUNTS_WRITE,
    )
    .await
    {
        Ok(prepared) => Ok(prepared),
        Err(error) => Err(attempt.refused(state, error).await),
    }
}

/// One request about an account: to its home with `request_id`, and (when the rule shadows,
/// the copy exists, and `shadow_after_failure` or the primary succeeded) to the copy with
/// the derived shadow request id. `build` makes the side's request for a request id and the
/// side's account id; `call` sends it.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per operation, each names them all"
)]
fn forward_on_account<R, B, F, Fut>(
    state: &Shared,
    account: &AccountEntry,
    operation: &'static str,
    request_id: &str,
    channel_id: &str,
    build: B,
    call: F,
    shadow_after_failure: bool,
) -> impl std::future::Future<Output = Done> + use<R, B, F, Fut>
where
    B: Fn(String, Uuid) -> R,
    F: Fn(Shared, Side, R, String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let route = state.route(account, operation);
    let primary = account.id_on(route.side).map(|id| {
        call(
            Arc::clone(state),
            route.side,
            build(request_id.to_owned(), id),
            channel_id.to_owned(),
        )
    });
    let copy = route
        .shadow_side()
        .and_then(|side| Some((side, account.id_on(side)?)));
    let shadow_call = copy.map(|(side, id)| {
        call(
            Arc::clone(state),
            side,
            build(shadow_request_id(request_id), id),
            channel_id.to_owned(),
        )
    });
    async move {
        let Some(primary) = primary else {
            return Done::refused(ApiError::internal("routed to a side without the account"));
        };
        let outcome = primary.await;
        let ready = shadow_call.is_some() && (shadow_after_failure || outcome.is_ok());
        let shadow = shadow_call
            .filter(|_| ready)
            .and_then(|run| shadow_of(&route, true, |_| run));
        Done {
            outcome,
            route: Some(route),
            shadow,
        }
    }
}

/// One call on `side` about an account, as a future that owns what it needs.
async fn cash_call(
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
                json::movement(&m.into_inner(), &channel_id),
            )
        })
        .map_err(|s| api_error_of(&s, side))
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
    let (mutation, parsed, account) = match account_mutation_or_refusal::<json::CashBody>(
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
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = json::CashBody,
    responses((status = 201, description = "The deposit, booked", body = json::MovementAnswer))
)]
async fn deposit(
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
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = json::CashBody,
    responses((status = 201, description = "The withdrawal, booked", body = json::MovementAnswer))
)]
async fn withdraw(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    cash(state, ctx, headers, account_id, body, false).await
}

async fn hold_call(
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
    let mut body = json::hold(&hold, &channel_id);
    body["id"] = json!(channel_hold.to_string());
    Ok((StatusCode::CREATED, body))
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/holds", tag = "money",
    summary = "Place a hold on an account's funds",
    description = "Scope `accounts:write`.",
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body = json::HoldBody,
    responses((status = 201, description = "The hold, placed", body = json::HoldAnswer))
)]
async fn place_hold(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "holds.place");
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
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("account:{account_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, _pin| async move {
        let state = worker;
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
        Done {
            outcome,
            route: Some(route),
            shadow,
        }
    })
    .await
}

async fn release_call(
    state: Shared,
    side: Side,
    request: dpb::ReleaseHoldRequest,
    channel_id: String,
    channel_hold: String,
) -> Outcome {
    let hold = state
        .upstreams
        .side(side)
        .deposits
        .release_hold(request)
        .await
        .map_err(|s| api_error_of(&s, side))?
        .into_inner();
    let mut body = json::hold(&hold, &channel_id);
    body["id"] = json!(channel_hold);
    Ok((StatusCode::OK, body))
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/holds/{hold_id}/release", tag = "money",
    summary = "Release a hold",
    description = "Scope `accounts:write`. The hold is released on the side it was placed on.",
    params(
        ("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it"),
        ("hold_id" = String, Path, description = "The hold's id (a UUID) from its placement"),
    ),
    request_body(content = json::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The hold, released", body = json::HoldAnswer))
)]
async fn release_hold(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path((account_id, hold_id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "holds.release");
    let path = format!("/v1/accounts/{account_id}/holds/{hold_id}/release");
    let prepared = async {
        let (mutation, _, account) = account_mutation::<json::ReasonBody>(
            &state,
            ctx,
            &headers,
            path,
            &account_id,
            &body,
            scope::ACCOUNTS_WRITE,
        )
        .await?;
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
        Ok::<_, ApiError>((mutation, account, hold))
    };
    let (mutation, account, hold) = match prepared.await {
        Ok(prepared) => prepared,
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("hold:{hold_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, _pin| async move {
        let state = worker;
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
        Done {
            outcome,
            route: Some(route),
            shadow,
        }
    })
    .await
}

async fn close_call(
    state: Shared,
    side: Side,
    request: dpb::ChangeStatusRequest,
    channel_id: String,
) -> Outcome {
    state
        .upstreams
        .side(side)
        .deposits
        .close_account(request)
        .await
        .map(|a| (StatusCode::OK, json::account(&a.into_inner(), &channel_id)))
        .map_err(|s| api_error_of(&s, side))
}

#[utoipa::path(
    post, path = "/v1/accounts/{account_id}/close", tag = "accounts",
    summary = "Close an account",
    description = "Scope `accounts:write`.",
    params(("account_id" = String, Path, description = "The account's id (a UUID) as the channel knows it")),
    request_body(content = json::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The account, closed", body = json::AccountAnswer))
)]
async fn close_account(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(account_id): Path<String>,
    body: Bytes,
) -> Response {
    let path = format!("/v1/accounts/{account_id}/close");
    let (mutation, parsed, account) = match account_mutation_or_refusal::<json::ReasonBody>(
        &state,
        ctx,
        &headers,
        path,
        &account_id,
        &body,
        "accounts.close",
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
            "accounts.write",
            &request_id,
            &account_id,
            |request_id, id| dpb::ChangeStatusRequest {
                request_id,
                account_id: id.to_string(),
                reason: parsed.reason.clone().unwrap_or_default(),
            },
            close_call,
            true,
        )
    })
    .await
}

async fn transfer_call(
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
                json::transfer(&t.into_inner(), &from, &to),
            )
        })
        .map_err(|s| api_error_of(&s, side))
}

#[utoipa::path(
    post, path = "/v1/transfers", tag = "money",
    summary = "Transfer between two accounts",
    description = "Scope `accounts:write`; a customer-bound token must own the source account. Both accounts must be kept by the same core (else 422 `accounts_on_different_sides`: use a payment).",
    request_body = json::TransferBody,
    responses((status = 201, description = "The transfer, booked", body = json::TransferAnswer))
)]
async fn transfer(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "transfers.create");
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
        // Both accounts must be on the side that moves the money.
        let (Some(from_id), Some(to_id)) = (from.id_on(route.side), to.id_on(route.side)) else {
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

#[utoipa::path(
    post, path = "/v1/payments", tag = "payments",
    summary = "Start a payment",
    description = "Scope `payments:write`. The payment runs as a saga: the answer is 202 with `Location` to follow it. Payments are never shadowed.",
    request_body = json::PaymentBody,
    responses((status = 202, description = "The payment, started", body = json::PaymentAnswer,
        headers(("Location" = String, description = "Where to follow the payment: `/v1/payments/{payment_id}`"))))
)]
async fn initiate_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "payments.initiate");
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
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("account:{}", parsed.debtor_account_id);
    let worker = Arc::clone(&state);
    let mut response = once(&state, mutation, &resource, |request_id, _pin| async move {
        let state = worker;
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
                remittance_information: parsed.remittance_information.clone().unwrap_or_default(),
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
                                json::payment(&payment, &parsed.debtor_account_id),
                            )
                        }),
                }
            }
        };
        Done {
            outcome,
            route: Some(route),
            shadow: None,
        }
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

#[utoipa::path(
    get, path = "/v1/payments/{payment_id}", tag = "payments",
    summary = "Read a payment",
    description = "Scope `accounts:read`.",
    params(("payment_id" = String, Path, description = "The payment's id (a UUID)")),
    responses((status = 200, description = "The payment", body = json::PaymentAnswer))
)]
async fn get_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    Path(payment_id): Path<String>,
) -> Response {
    let request_id = ctx
        .as_ref()
        .map(|c| c.0.request_id.clone())
        .unwrap_or_default();
    let worker = Arc::clone(&state);
    read(&state, &request_id, || async move {
        let state = worker;
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, scope::ACCOUNTS_READ)?;
            payment_for(&state, &context, &payment_id).await
        };
        let payment = match prepared.await {
            Ok(payment) => payment,
            Err(error) => return Done::refused(error),
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
        Done {
            outcome,
            route: None,
            shadow: None,
        }
    })
    .await
}

#[utoipa::path(
    post, path = "/v1/payments/{payment_id}/cancel", tag = "payments",
    summary = "Cancel a payment",
    description = "Scope `payments:write`; possible while the payment has not been sent.",
    params(("payment_id" = String, Path, description = "The payment's id (a UUID)")),
    request_body(content = json::ReasonBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The payment, cancelled", body = json::PaymentAnswer))
)]
async fn cancel_payment(
    State(state): State<Shared>,
    ctx: Ctx,
    headers: HeaderMap,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Response {
    let attempt = Attempt::of(&ctx, &headers, "payments.cancel");
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
        Err(error) => return attempt.refused(&state, error).await,
    };
    let resource = format!("payment:{payment_id}");
    let worker = Arc::clone(&state);
    once(&state, mutation, &resource, |request_id, _pin| async move {
        let state = worker;
        let outcome = state
            .upstreams
            .side(payment.side)
            .payments
            .cancel_payment(ppb::CancelPaymentRequest {
                payment_id: payment_id.clone(),
                reason: parsed.reason.clone().unwrap_or_default(),
                request_id,
            })
            .await
            .map(|p| {
                (
                    StatusCode::OK,
                    json::payment(&p.into_inner(), &payment.account_id.to_string()),
                )
            })
            .map_err(|s| api_error_of(&s, payment.side));
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
                        Ok((
                            StatusCode::OK,
                            json::payment(&found, &payment.account_id.to_string()),
                        ))
                    }
                    _ => Err(error),
                }
            }
            other => other,
        };
        Done {
            outcome,
            route: None,
            shadow: None,
        }
    })
    .await
}
