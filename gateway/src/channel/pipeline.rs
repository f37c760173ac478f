//! The request pipeline every channel handler runs through. The life of one mutation, in
//! order (a transfer, for example: `transfers::transfer`):
//!
//! 1. `authenticate_channel` (in `mod.rs`) verified the token and left a [`RequestContext`];
//!    the handler receives it with the headers and body as a [`Call`], and
//!    [`Call::mutation`] takes it ([`context`]), checks the scope ([`scope_needed`]) and
//!    parses the body strictly ([`parse_body`]); [`Attempt`] carries this for the audit of a
//!    refusal, which [`mutate`] answers.
//! 2. [`Mutation::new`] names the request by client, `Idempotency-Key`, method, path and a
//!    hash of the body, and [`once`] asks the idempotency store to begin it: a completed key
//!    replays its first answer (`Idempotent-Replayed: true`, the first route's headers), a
//!    key in flight answers 409 `request_in_flight`, a key reused for another request 422
//!    `idempotency_key_reused`; each of these is audited.
//! 3. Before [`once`], the handler finds the account(s) ([`account_for`], checking the
//!    token's customer) and waits for one that an account migration is moving ([`settled`](super::moving::settled):
//!    held up to `COREBANK_MIGRATION_HOLD_MS`, then served on the account's home as it is
//!    then, or 503 `account_moving` with `Retry-After`, the key untouched; the core refuses
//!    a request that passed just before the mark, its key is freed, and `hold_moving` in
//!    `crate::move_hold` sends it again while its hold lasts). The work then runs under the
//!    gateway's request timeout: it asks
//!    `GatewayState::route` for the side (the account's home; for a new account, the
//!    product's rule) and calls that side's gRPC service. Opening an account pins the side
//!    it chose under the key ([`SidePin::side`]) so a retry never opens it elsewhere; other
//!    mutations follow the account's home, which only the account migration moves. It
//!    returns a [`Done`]: the answer or refusal, the [`Route`], and the shadow call when the
//!    rule shadows ([`shadow_of`]).
//! 4. [`once`] stores the answer under the key with the audit record in one transaction (a
//!    retry-safe refusal frees the key instead), hands the answer to the rollback window
//!    and the shadow call to the comparer without waiting ([`observe`]), and answers with
//!    `X-Served-By`, `X-Route-Version` and `X-Route-Reason` ([`respond`]).
//!
//! Reads take the shorter path, [`read`]: no key, no store, the same scope check, routing
//! and headers. A side's gRPC answer becomes the channel's with [`answered`].
//! Account-scoped mutations (cash, holds, closing) share [`account_mutation`]; cash and
//! closing, one request to the account's home, are [`forward_on_account`] end to end.

use super::{GatewayState, Shared, origin_of, request_id_of};
use crate::audit::{self, AuditRecord};
use crate::auth::{self};
use crate::directory::AccountEntry;
use crate::error::ApiError;
use crate::idempotency::{self, Begin, Fingerprint, IdempotencyStore};
use crate::principal::{RequestContext, Surface, scope};
use crate::routing::{Decision, Side};
use crate::shadow::{Answer, ShadowJob};
use crate::upstream::api_error_of;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use corebank_api::deposits::v1 as dpb;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

pub(super) fn context(
    request_context: Option<axum::Extension<RequestContext>>,
) -> Result<RequestContext, ApiError> {
    request_context
        .map(|axum::Extension(context)| context)
        .ok_or_else(|| ApiError::unauthenticated("no authenticated principal"))
}

pub(super) fn scope_needed(context: &RequestContext, needed: &str) -> Result<(), ApiError> {
    auth::require_scope(&context.principal, needed).map_err(|e| e.api_error())
}

pub(super) fn customer_allowed(
    context: &RequestContext,
    customer_id: &str,
) -> Result<(), ApiError> {
    auth::require_customer(&context.principal, customer_id).map_err(|e| e.api_error())
}

pub(super) fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<(T, Value), ApiError> {
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

pub(super) fn parse_id(text: &str, what: &str) -> Result<Uuid, ApiError> {
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
pub(super) fn side_answer_id(text: &str, what: &str) -> Result<Uuid, ApiError> {
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
pub(super) struct Route {
    pub(super) product: String,
    pub(super) operation: &'static str,
    pub(super) side: Side,
    pub(super) decision: Decision,
    /// The rule would pick the other side, but the account's home serves it.
    pub(super) not_on_side: bool,
}

impl Route {
    /// The side that gets a shadow copy, when the rule asks for one and the request was
    /// routed as decided.
    pub(super) fn shadow_side(&self) -> Option<Side> {
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
    pub(super) async fn account(&self, account_id: Uuid) -> Result<AccountEntry, ApiError> {
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
                            move_id: None,
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
    pub(super) fn route(&self, account: &AccountEntry, operation: &'static str) -> Route {
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

pub(super) fn side_id(account: &AccountEntry, side: Side) -> Result<String, ApiError> {
    account.id_on(side).map(|id| id.to_string()).ok_or_else(|| {
        ApiError::internal(format!(
            "account {} has no copy on the {} side",
            account.account_id,
            side.as_str()
        ))
    })
}

/// The answer to the channel: the outcome, with the route's headers when it was routed.
fn respond(outcome: Outcome, route: Option<&Route>) -> Response {
    let mut response = match outcome {
        Ok((status, body)) => (status, axum::Json(body)).into_response(),
        Err(error) => error.into_response(),
    };
    if let Some(route) = route {
        route.headers(&mut response);
    }
    response
}

/// A side's answer as the channel's: rendered with `status`, or the side's refusal.
pub(super) fn answered<M>(
    answer: Result<tonic::Response<M>, tonic::Status>,
    side: Side,
    status: StatusCode,
    render: impl FnOnce(&M) -> Value,
) -> Outcome {
    answer
        .map(|message| (status, render(&message.into_inner())))
        .map_err(|refusal| api_error_of(&refusal, side))
}

/// A mutating request's frame: its key, what it stands for, and who sent it.
pub(super) struct Mutation {
    pub(super) context: RequestContext,
    /// Whose keys these are: the token's subject, and the customer it is bound to (two
    /// customers of one channel app never share a key space).
    pub(super) client: String,
    pub(super) key: String,
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) body_hash: String,
    pub(super) action: String,
}

impl Mutation {
    pub(super) fn new(
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
pub(super) type Outcome = Result<(StatusCode, Value), ApiError>;

/// The same request on the shadow side's own books.
type ShadowRun = std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>;

/// A request's work: its outcome, where it went, and its shadow run (if the rule shadows
/// and the shadow side holds what the request touches).
pub(super) struct Done {
    pub(super) outcome: Outcome,
    pub(super) route: Option<Route>,
    pub(super) shadow: Option<ShadowRun>,
}

impl Done {
    pub(super) fn refused(error: ApiError) -> Done {
        Done {
            outcome: Err(error),
            route: None,
            shadow: None,
        }
    }

    /// Work that went to `route`'s side.
    pub(super) fn routed(outcome: Outcome, route: Route, shadow: Option<ShadowRun>) -> Done {
        Done {
            outcome,
            route: Some(route),
            shadow,
        }
    }

    /// Work that is not routed by a rule (a payment's own side, the directory).
    pub(super) fn unrouted(outcome: Outcome) -> Done {
        Done {
            outcome,
            route: None,
            shadow: None,
        }
    }
}

/// Runs `work` under the gateway's request timeout; `late` is what a timeout tells the caller.
async fn timed(
    state: &GatewayState,
    work: impl std::future::Future<Output = Done>,
    late: &'static str,
) -> Done {
    match tokio::time::timeout(state.request_timeout, work).await {
        Ok(done) => done,
        Err(_) => Done::refused(ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", late)),
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
pub(super) fn shadow_request_id(request_id: &str) -> String {
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
pub(super) struct Attempt {
    pub(super) actor: String,
    pub(super) origin: String,
    pub(super) request_id: String,
    pub(super) action: &'static str,
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

    pub(super) async fn refused(&self, state: &GatewayState, error: ApiError) -> Response {
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
pub(super) struct SidePin {
    pub(super) store: IdempotencyStore,
    pub(super) client: String,
    pub(super) key: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) body_hash: String,
    pub(super) owner: Uuid,
}

impl SidePin {
    /// The side to send to: `decided`, unless an earlier attempt under this key went
    /// elsewhere.
    pub(super) async fn side(&self, decided: Side) -> Result<Side, ApiError> {
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

pub(super) async fn once<F, Fut>(
    state: &GatewayState,
    mutation: Mutation,
    resource: &str,
    work: F,
) -> Response
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
                Ok((StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)),
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
    let mut done = timed(
        state,
        work(mutation.request_id(), pin),
        "the request took too long; retry with the same Idempotency-Key",
    )
    .await;
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
    respond(done.outcome, done.route.as_ref())
}

/// What a mutation's handler prepared before it runs: the request's frame, the audit
/// record's resource, and what the work needs.
pub(super) type Prepared<T> = Result<(Mutation, String, T), ApiError>;

/// A mutating request end to end: a refusal while `prepared` is audited and answered;
/// otherwise `work` runs [`once`] under the key, with what was prepared.
pub(super) async fn mutate<T, F, Fut>(
    state: &Shared,
    attempt: Attempt,
    prepared: Prepared<T>,
    work: F,
) -> Response
where
    F: FnOnce(Shared, T, String, SidePin) -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    let (mutation, resource, prepared) = match prepared {
        Ok(prepared) => prepared,
        Err(error) => return attempt.refused(state, error).await,
    };
    let worker = Arc::clone(state);
    // Boxed: the work's future, held with the store's, is larger than a handler should
    // carry on its stack.
    Box::pin(once(state, mutation, &resource, |request_id, pin| {
        work(worker, prepared, request_id, pin)
    }))
    .await
}

/// Reads run without idempotency keys: the token needs scope `needed`, `prepare` finds what
/// is read (checking the token's customer), and `work` reads it.
pub(super) async fn read<P, PFut, T, F, Fut>(
    state: &Shared,
    ctx: Ctx,
    needed: &'static str,
    prepare: P,
    work: F,
) -> Response
where
    P: FnOnce(Shared, RequestContext) -> PFut,
    PFut: std::future::Future<Output = Result<T, ApiError>>,
    F: FnOnce(Shared, T) -> Fut,
    Fut: std::future::Future<Output = Done>,
{
    let request_id = ctx
        .as_ref()
        .map(|c| c.0.request_id.clone())
        .unwrap_or_default();
    let worker = Arc::clone(state);
    let run = async move {
        let prepared = async {
            let context = context(ctx)?;
            scope_needed(&context, needed)?;
            prepare(Arc::clone(&worker), context).await
        };
        match prepared.await {
            Ok(prepared) => work(worker, prepared).await,
            Err(error) => Done::refused(error),
        }
    };
    let mut done = timed(state, run, "the request took too long").await;
    observe(state, &mut done, &request_id);
    respond(done.outcome, done.route.as_ref())
}

pub(super) type Ctx = Option<axum::Extension<RequestContext>>;

/// The shadow run of a call, when the route shadows and `ids` (the shadow side's ids of
/// what the request touches) are all there.
pub(super) fn shadow_of<F, Fut>(route: &Route, ready: bool, call: F) -> Option<ShadowRun>
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

/// The account, with the customer binding checked.
pub(super) async fn account_for(
    state: &GatewayState,
    context: &RequestContext,
    account_id: &str,
) -> Result<AccountEntry, ApiError> {
    let id = parse_id(account_id, "account id")?;
    let account = state.account(id).await?;
    customer_allowed(context, &account.customer_id)?;
    Ok(account)
}

/// A mutating request as its handler takes it (after any path parameters): the
/// authenticated context, when there is one, the headers (for the `Idempotency-Key` and the
/// audit trail) and the body.
pub(super) struct Call {
    pub(super) ctx: Ctx,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
}

impl<S: Send + Sync> FromRequest<S> for Call {
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Call, Response> {
        let ctx = request
            .extensions()
            .get::<RequestContext>()
            .cloned()
            .map(axum::Extension);
        let headers = request.headers().clone();
        let kept = request
            .extensions()
            .get::<crate::move_hold::BodyKept>()
            .cloned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if let Some(kept) = kept {
            kept.keep(&body);
        }
        Ok(Call { ctx, headers, body })
    }
}

impl Call {
    /// The request as the audit trail names it, for a refusal before it runs.
    pub(super) fn attempt(&self, action: &'static str) -> Attempt {
        Attempt::of(&self.ctx, &self.headers, action)
    }

    /// The frame of the mutation: context taken, scope `needed` checked, body parsed, key
    /// read.
    pub(super) fn mutation<T: DeserializeOwned>(
        self,
        needed: &str,
        path: String,
    ) -> Result<(Mutation, T), ApiError> {
        let context = context(self.ctx)?;
        scope_needed(&context, needed)?;
        let (parsed, value) = parse_body::<T>(&self.body)?;
        let mutation = Mutation::new(context, &self.headers, Method::POST, path, &value)?;
        Ok((mutation, parsed))
    }
}

/// The frame of an account-addressed mutation (scope `accounts:write`): [`Call::mutation`],
/// and the account found; its resource is the account.
pub(super) async fn account_mutation<T: DeserializeOwned>(
    state: &GatewayState,
    call: Call,
    path: String,
    account_id: &str,
) -> Prepared<(T, AccountEntry)> {
    let (mutation, parsed) = call.mutation::<T>(scope::ACCOUNTS_WRITE, path)?;
    let account = account_for(state, &mutation.context, account_id).await?;
    let account = super::moving::settled(state, account, state.hold_until()).await?;
    Ok((mutation, format!("account:{account_id}"), (parsed, account)))
}

/// One request about an account, end to end: [`account_mutation`] with a body of `T`
/// (refused and audited as `action`), then the request to the account's home with the
/// request id and (when the rule for `operation` shadows, the copy exists, and
/// `shadow_after_failure` or the primary succeeded) to the copy with the derived shadow
/// request id. `build` makes the side's request from the body, a request id and the side's
/// account id; `send` sends it.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per operation, each names them all"
)]
pub(super) async fn forward_on_account<T, R, B, F, Fut>(
    state: &Shared,
    call: Call,
    action: &'static str,
    path: String,
    channel_id: &str,
    operation: &'static str,
    build: B,
    send: F,
    shadow_after_failure: bool,
) -> Response
where
    T: DeserializeOwned,
    B: Fn(&T, String, Uuid) -> R,
    F: Fn(Shared, Side, R, String) -> Fut,
    Fut: std::future::Future<Output = Outcome> + Send + 'static,
{
    let attempt = call.attempt(action);
    let prepared = account_mutation::<T>(state, call, path, channel_id).await;
    mutate(
        state,
        attempt,
        prepared,
        |state, (parsed, account), request_id, _pin| {
            let route = state.route(&account, operation);
            let primary = account.id_on(route.side).map(|id| {
                send(
                    Arc::clone(&state),
                    route.side,
                    build(&parsed, request_id.clone(), id),
                    channel_id.to_owned(),
                )
            });
            let copy = route
                .shadow_side()
                .and_then(|side| Some((side, account.id_on(side)?)));
            let shadow_call = copy.map(|(side, id)| {
                send(
                    Arc::clone(&state),
                    side,
                    build(&parsed, shadow_request_id(&request_id), id),
                    channel_id.to_owned(),
                )
            });
            async move {
                let Some(primary) = primary else {
                    return Done::refused(ApiError::internal(
                        "routed to a side without the account",
                    ));
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
        },
    )
    .await
}
