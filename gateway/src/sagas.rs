//! The sagas' operator actions on the admin surface (`/admin/v1/sagas`): the modern side's
//! `corebank.saga.v1.SagaAdmin` (the payments module's sagas), with the operator's identity
//! from the token and every action in the audit trail.
//!
//! SagaAdmin believes no name written in a request body: the gateway tells it who acts in
//! `x-corebank-actor` metadata signed with the gateway's certificate key
//! (`corebank_service::internal::assertion`), which SagaAdmin checks against the certificate
//! the connection proved.

use std::sync::Arc;

use axum::Router as HttpRouter;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use corebank_api::saga::v1 as spb;
use corebank_api::saga::v1::saga_admin_client::SagaAdminClient;
use corebank_api::saga::v1::saga_admin_server::SERVICE_NAME;
use corebank_db::Db;
use corebank_service::internal::assertion::AssertionSigner;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::approvals::{ApprovalKind, Approvals};
use crate::audit;
use crate::error::ApiError;
use crate::operator::{self, Actor, Context, parse_body};
use crate::principal::{RequestContext, scope};
use crate::routing::Side;
use crate::upstream::api_error_of;

#[derive(Debug, Clone)]
struct Sagas {
    client: SagaAdminClient<Channel>,
    db: Db,
    /// Signs the operator of each action with the gateway's certificate key; `None` when
    /// internal calls are plain text (`COREBANK_INSECURE_INTERNAL=true`), where SagaAdmin
    /// takes the name as it comes.
    signer: Option<Arc<AssertionSigner>>,
    /// Where force-compensate and mark-resolved become proposals (four eyes).
    approvals: Arc<Approvals>,
}

/// The routes, calling SagaAdmin at `channel` (the modern side) and asserting operators
/// with `signer`.
pub fn router(
    channel: Channel,
    db: Db,
    signer: Option<Arc<AssertionSigner>>,
    approvals: Arc<Approvals>,
) -> HttpRouter {
    let state = Arc::new(Sagas {
        client: SagaAdminClient::new(channel),
        db,
        signer,
        approvals,
    });
    HttpRouter::new()
        .route("/admin/v1/sagas", get(list))
        .route("/admin/v1/sagas/{saga_id}", get(detail))
        .route("/admin/v1/sagas/{saga_id}/retry", post(retry))
        .route("/admin/v1/sagas/{saga_id}/resume", post(resume))
        .route(
            "/admin/v1/sagas/{saga_id}/force-compensate",
            post(force_compensate),
        )
        .route(
            "/admin/v1/sagas/{saga_id}/mark-resolved",
            post(mark_resolved),
        )
        .with_state(state)
}

pub(crate) fn saga_json(s: &spb::Saga) -> Value {
    json!({
        "id": s.id, "saga_type": s.saga_type, "version": s.version, "status": s.status,
        "current_step": s.current_step, "attempts": s.attempts, "next_attempt_at": s.next_attempt_at,
        "business_key": s.business_key, "failure": s.failure, "paused_reason": s.paused_reason,
        "paused_from": s.paused_from, "deadline_at": s.deadline_at,
        "created_at": s.created_at, "updated_at": s.updated_at,
    })
}

/// An operator action on a saga: one route each, since each takes its own body (only
/// mark-resolved names a resolution), which one path with an `{action}` parameter could not
/// describe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SagaAction {
    Retry,
    Resume,
    ForceCompensate,
    MarkResolved,
}

impl SagaAction {
    /// The action as its path names it, and the audit trail after `sagas.`.
    pub fn path_name(self) -> &'static str {
        match self {
            SagaAction::Retry => "retry",
            SagaAction::Resume => "resume",
            SagaAction::ForceCompensate => "force-compensate",
            SagaAction::MarkResolved => "mark-resolved",
        }
    }

    /// The SagaAdmin method that carries it out.
    fn method(self) -> &'static str {
        match self {
            SagaAction::Retry => "RetryNow",
            SagaAction::Resume => "Resume",
            SagaAction::ForceCompensate => "ForceCompensate",
            SagaAction::MarkResolved => "MarkResolved",
        }
    }
}

/// A SagaAdmin call ready to send, its operator asserted.
enum SagaCall {
    RetryNow(tonic::Request<spb::OperatorRequest>),
    Resume(tonic::Request<spb::OperatorRequest>),
}

impl Sagas {
    /// `message` as a call to SagaAdmin's `action` made for `operator`: the operator named in
    /// `x-corebank-actor` and, with mutual TLS, signed for this very method.
    fn on_behalf_of<T>(
        &self,
        message: T,
        action: SagaAction,
        operator: &str,
    ) -> Result<tonic::Request<T>, ApiError> {
        crate::approvals::execute::on_behalf_of(
            self.signer.as_deref(),
            message,
            &format!("/{SERVICE_NAME}/{}", action.method()),
            operator,
        )
    }
}

/// `SagaStatus` is listed: utoipa refers to a query parameter's schema without collecting it.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, detail, retry, resume, force_compensate, mark_resolved),
    components(schemas(SagaStatus))
)]
struct SagasApi;

/// The `/admin/v1/sagas` part of the API reference.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <SagasApi as utoipa::OpenApi>::openapi()
}

/// The statuses SagaAdmin filters by (`corebank_saga::Status`; a test checks they agree).
pub const SAGA_STATUSES: &[&str] = &[
    "running",
    "compensating",
    "completed",
    "compensated",
    "paused",
];

crate::string_enum_schema!(
    /// Where a saga stands; empty is the same as absent.
    SagaStatus,
    SAGA_STATUSES.iter().copied().chain([""])
);

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    saga_type: Option<String>,
    #[serde(default)]
    business_key: Option<String>,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    page_token: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/sagas", tag = "admin: sagas", operation_id = "list_sagas",
    summary = "The payments module's sagas",
    description = "Scope `routes:read`.",
    params(
        ("status" = Option<SagaStatus>, Query, description = "Only sagas that stand so; all when absent"),
        ("saga_type" = Option<String>, Query),
        ("business_key" = Option<String>, Query, description = "E.g. the payment's id"),
        ("page_size" = Option<i64>, Query, minimum = 0, maximum = 4_294_967_295_i64, description = "50 when absent or 0; more than 500 is taken as 500"),
        ("page_token" = Option<String>, Query, pattern = "^(-?[0-9]{1,16}:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})?$", description = "The previous page's `next_page_token`, unchanged; empty is the first page"),
    ),
    responses((status = 200, description = "`{sagas: [saga], next_page_token}`", body = serde_json::Value))
)]
async fn list(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(error) = operator::reader(ctx, scope::ROUTES_READ) {
        return error.into_response();
    }
    let mut client = state.client.clone();
    match client
        .list_sagas(spb::ListSagasRequest {
            status: query.status.unwrap_or_default(),
            saga_type: query.saga_type.unwrap_or_default(),
            business_key: query.business_key.unwrap_or_default(),
            older_than_seconds: 0,
            page_size: query.page_size.unwrap_or(50),
            page_token: query.page_token.unwrap_or_default(),
        })
        .await
    {
        Ok(listed) => {
            let listed = listed.into_inner();
            axum::Json(json!({
                "sagas": listed.sagas.iter().map(saga_json).collect::<Vec<_>>(),
                "next_page_token": listed.next_page_token,
            }))
            .into_response()
        }
        Err(status) => api_error_of(&status, Side::Modern).into_response(),
    }
}

#[utoipa::path(
    get, path = "/admin/v1/sagas/{saga_id}", tag = "admin: sagas", operation_id = "get_saga",
    summary = "One saga with its steps and operator actions",
    description = "Scope `routes:read`.",
    params(("saga_id" = String, Path, format = Uuid, description = "The saga's id")),
    responses((status = 200, description = "`{saga, steps, operator_actions, approvals}`: `approvals` are the four-eyes proposals on this saga (who proposed, who decided, the outcome)", body = serde_json::Value))
)]
async fn detail(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Path(saga_id): Path<String>,
) -> Response {
    if let Err(error) = operator::reader(ctx, scope::ROUTES_READ) {
        return error.into_response();
    }
    // The saga's history names who proposed and who approved each four-eyes action; the
    // gateway's approvals add the proposals not (yet) carried out.
    let approvals = match state.approvals.on_target(&saga_id).await {
        Ok(approvals) => approvals,
        Err(error) => return error.into_response(),
    };
    let mut client = state.client.clone();
    match client.get_saga(spb::GetSagaRequest { id: saga_id }).await {
        Ok(found) => {
            let found = found.into_inner();
            axum::Json(json!({
                "saga": found.saga.as_ref().map(saga_json),
                "steps": found.steps.iter().map(|s| json!({
                    "step": s.step, "step_name": s.step_name, "direction": s.direction,
                    "attempt": s.attempt, "outcome": s.outcome, "error": s.error,
                    "started_at": s.started_at, "ended_at": s.ended_at,
                })).collect::<Vec<_>>(),
                "operator_actions": found.operator_actions.iter().map(|a| json!({
                    "action": a.action, "actor": a.actor, "proposed_by": a.proposed_by,
                    "reason": a.reason,
                    "status_before": a.status_before, "status_after": a.status_after, "at": a.at,
                })).collect::<Vec<_>>(),
                "approvals": approvals,
            }))
            .into_response()
        }
        Err(status) => api_error_of(&status, Side::Modern).into_response(),
    }
}

/// `{"reason": "..."}`: why the operator acts.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SagaActionBody)]
struct ActionBody {
    #[schema(schema_with = operator::reason_schema)]
    reason: String,
}

/// How a saga marked resolved ended.
#[derive(Debug, Clone, Copy, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
enum Resolution {
    /// The saga's work is done (settled by hand).
    Completed,
    /// The saga's work is undone.
    Compensated,
}

impl Resolution {
    fn name(self) -> &'static str {
        match self {
            Resolution::Completed => "completed",
            Resolution::Compensated => "compensated",
        }
    }
}

/// `{"reason": "...", "resolution": "completed" | "compensated"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SagaResolutionBody)]
struct ResolutionBody {
    #[schema(schema_with = operator::reason_schema)]
    reason: String,
    resolution: Resolution,
}

const SAGA_ID: &str = "The saga's id (a UUID)";

#[utoipa::path(
    post, path = "/admin/v1/sagas/{saga_id}/retry", tag = "admin: sagas", operation_id = "retry_saga",
    summary = "Retry a saga's step now",
    description = "Scope `routes:write`. Done at once; the operator (the token's subject) and the reason go to the saga's own record and to the audit trail.",
    params(("saga_id" = String, Path, format = Uuid, description = SAGA_ID)),
    request_body = ActionBody,
    responses((status = 200, description = "The saga after the action", body = serde_json::Value))
)]
async fn retry(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Path(saga_id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, ctx, &saga_id, SagaAction::Retry, &body).await
}

#[utoipa::path(
    post, path = "/admin/v1/sagas/{saga_id}/resume", tag = "admin: sagas", operation_id = "resume_saga",
    summary = "Resume a paused saga",
    description = "Scope `routes:write`. Done at once; the operator (the token's subject) and the reason go to the saga's own record and to the audit trail.",
    params(("saga_id" = String, Path, format = Uuid, description = SAGA_ID)),
    request_body = ActionBody,
    responses((status = 200, description = "The saga after the action", body = serde_json::Value))
)]
async fn resume(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Path(saga_id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, ctx, &saga_id, SagaAction::Resume, &body).await
}

#[utoipa::path(
    post, path = "/admin/v1/sagas/{saga_id}/force-compensate", tag = "admin: sagas", operation_id = "propose_saga_force_compensate",
    summary = "Propose undoing a saga",
    description = "Scope `routes:write`. Four eyes (ADR 0012): a proposal (kind `saga_force_compensate`) that another operator with `sagas:approve` approves at `/admin/v1/approvals/{id}/approve`; only then is the saga changed, with both names in its history. Audited.",
    params(("saga_id" = String, Path, format = Uuid, description = SAGA_ID)),
    request_body = ActionBody,
    responses((status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval))
)]
async fn force_compensate(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Path(saga_id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, ctx, &saga_id, SagaAction::ForceCompensate, &body).await
}

#[utoipa::path(
    post, path = "/admin/v1/sagas/{saga_id}/mark-resolved", tag = "admin: sagas", operation_id = "propose_saga_mark_resolved",
    summary = "Propose marking a saga resolved",
    description = "Scope `routes:write`. Four eyes (ADR 0012): a proposal (kind `saga_mark_resolved`, with its resolution) that another operator with `sagas:approve` approves at `/admin/v1/approvals/{id}/approve`; only then is the saga changed, with both names in its history. Audited.",
    params(("saga_id" = String, Path, format = Uuid, description = SAGA_ID)),
    request_body = ResolutionBody,
    responses((status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval))
)]
async fn mark_resolved(
    State(state): State<Arc<Sagas>>,
    ctx: Context,
    Path(saga_id): Path<String>,
    body: Bytes,
) -> Response {
    act(&state, ctx, &saga_id, SagaAction::MarkResolved, &body).await
}

/// The body of `action`: its reason, not blank, and a mark-resolved's resolution.
fn parse_action_body(
    action: SagaAction,
    body: &[u8],
) -> Result<(String, Option<Resolution>), ApiError> {
    let parsed = match action {
        SagaAction::MarkResolved => parse_body::<ResolutionBody>(
            body,
            r#"{"reason": "...", "resolution": "completed" | "compensated"}"#,
        )
        .map(|parsed| (parsed.reason, Some(parsed.resolution)))?,
        SagaAction::Retry | SagaAction::Resume | SagaAction::ForceCompensate => {
            parse_body::<ActionBody>(body, r#"{"reason": "..."}"#)
                .map(|parsed| (parsed.reason, None))?
        }
    };
    if parsed.0.trim().is_empty() {
        return Err(ApiError::invalid("reason is required"));
    }
    Ok(parsed)
}

/// `retry`, `resume`: done at once, the operator (the token's subject) and the reason going
/// to the saga's own record and to the audit trail. `force-compensate`, `mark-resolved`:
/// four eyes (ADR 0012), a proposal that another operator approves at
/// `/admin/v1/approvals/{id}/approve`.
async fn act(
    state: &Sagas,
    ctx: Context,
    saga_id: &str,
    saga_action: SagaAction,
    body: &[u8],
) -> Response {
    let context = match operator::reader(ctx, scope::ROUTES_WRITE) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let (reason, resolution) = match parse_action_body(saga_action, body) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let action = saga_action.path_name();
    let actor = context.principal.subject.clone();
    // The body's `actor` repeats the asserted operator, so that a SagaAdmin not yet checking
    // assertions (during a rolling upgrade) still records who acted; a newer one only
    // compares it with the assertion.
    let operator_request = || spb::OperatorRequest {
        id: saga_id.to_owned(),
        actor: actor.clone(),
        reason: reason.clone(),
        proposed_by: String::new(),
    };
    // Built before anything is recorded: a subject that cannot be asserted is refused
    // without an audit record of a request that never left the gateway.
    let call = match saga_action {
        SagaAction::Resume => state
            .on_behalf_of(operator_request(), saga_action, &actor)
            .map(SagaCall::Resume),
        SagaAction::Retry => state
            .on_behalf_of(operator_request(), saga_action, &actor)
            .map(SagaCall::RetryNow),
        // Four eyes: a proposal, carried out only when another operator approves it.
        SagaAction::ForceCompensate | SagaAction::MarkResolved => {
            return propose(state, &context, saga_id, &reason, resolution).await;
        }
    };
    let call = match call {
        Ok(call) => call,
        Err(error) => return error.into_response(),
    };
    // The request is in the audit trail before the saga is touched: the action may take
    // effect even if the outcome record below could not be written.
    let operator = Actor::of(&context);
    let (action, resource) = (format!("sagas.{action}"), format!("saga:{saga_id}"));
    let intent = operator.record(&action, &resource, "requested", json!({ "reason": reason }));
    if let Err(error) = audit::append_alone(&state.db, &intent).await {
        return ApiError::from(error).into_response();
    }
    let mut client = state.client.clone();
    let result = match call {
        SagaCall::RetryNow(request) => client.retry_now(request).await,
        SagaCall::Resume(request) => client.resume(request).await,
    };
    let outcome = match &result {
        Ok(_) => "200".to_owned(),
        Err(status) => api_error_of(status, Side::Modern).code,
    };
    let record = operator.record(&action, &resource, &outcome, json!({ "reason": reason }));
    if let Err(error) = audit::append_alone(&state.db, &record).await {
        return ApiError::from(error).into_response();
    }
    match result {
        Ok(saga) => axum::Json(saga_json(&saga.into_inner())).into_response(),
        Err(status) => api_error_of(&status, Side::Modern).into_response(),
    }
}

/// Force-compensate and mark-resolved as four-eyes proposals: a mark-resolved names its
/// resolution now, so that the approver approves exactly what was proposed.
async fn propose(
    state: &Sagas,
    context: &RequestContext,
    saga_id: &str,
    reason: &str,
    resolution: Option<Resolution>,
) -> Response {
    let (kind, parameters) = match resolution {
        Some(resolution) => (
            ApprovalKind::SagaMarkResolved,
            json!({ "resolution": resolution.name() }),
        ),
        None => (ApprovalKind::SagaForceCompensate, json!({})),
    };
    crate::approvals::admin::propose(&state.approvals, context, kind, saga_id, parameters, reason)
        .await
        .into_response()
}
