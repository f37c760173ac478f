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
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use corebank_api::saga::v1 as spb;
use corebank_api::saga::v1::saga_admin_client::SagaAdminClient;
use corebank_api::saga::v1::saga_admin_server::SERVICE_NAME;
use corebank_db::Db;
use corebank_service::internal::assertion::AssertionSigner;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::approvals::{ApprovalKind, Approvals};
use crate::audit::{self, AuditRecord};
use crate::error::ApiError;
use crate::principal::{RequestContext, Surface, scope};
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
        .route("/admin/v1/sagas/{saga_id}/{action}", post(act))
        .with_state(state)
}

fn context(
    ctx: Option<axum::Extension<RequestContext>>,
    needed: &str,
) -> Result<RequestContext, ApiError> {
    let context = ctx
        .map(|axum::Extension(c)| c)
        .ok_or_else(|| ApiError::unauthenticated("no authenticated principal"))?;
    crate::auth::require_scope(&context.principal, needed).map_err(|e| e.api_error())?;
    Ok(context)
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

/// An operator action on a saga.
#[derive(Debug, Clone, Copy, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "kebab-case")]
pub enum SagaAction {
    Retry,
    Resume,
    ForceCompensate,
    MarkResolved,
}

impl SagaAction {
    /// The action named in the path (`retry`, `resume`, `force-compensate`, `mark-resolved`).
    pub fn from_path(action: &str) -> Option<SagaAction> {
        match action {
            "retry" => Some(SagaAction::Retry),
            "resume" => Some(SagaAction::Resume),
            "force-compensate" => Some(SagaAction::ForceCompensate),
            "mark-resolved" => Some(SagaAction::MarkResolved),
            _ => None,
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

/// `SagaAction` is a path parameter, not a body: utoipa refers to it without collecting it,
/// so it is registered here (or the document would hold a reference to nothing).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, detail, act), components(schemas(SagaAction)))]
struct SagasApi;

/// The `/admin/v1/sagas` part of the API reference.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <SagasApi as utoipa::OpenApi>::openapi()
}

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
        ("status" = Option<String>, Query, description = "`running`, `compensating`, `completed`, `compensated` or `paused`"),
        ("saga_type" = Option<String>, Query),
        ("business_key" = Option<String>, Query, description = "E.g. the payment's id"),
        ("page_size" = Option<u32>, Query, description = "50 when absent"),
        ("page_token" = Option<String>, Query, description = "The previous page's `next_page_token`"),
    ),
    responses((status = 200, description = "`{sagas: [saga], next_page_token}`", body = serde_json::Value))
)]
async fn list(
    State(state): State<Arc<Sagas>>,
    ctx: Option<axum::Extension<RequestContext>>,
    Query(query): Query<ListQuery>,
) -> Response {
    if let Err(error) = context(ctx, scope::ROUTES_READ) {
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
    params(("saga_id" = String, Path, description = "The saga's id")),
    responses((status = 200, description = "`{saga, steps, operator_actions, approvals}`: `approvals` are the four-eyes proposals on this saga (who proposed, who decided, the outcome)", body = serde_json::Value))
)]
async fn detail(
    State(state): State<Arc<Sagas>>,
    ctx: Option<axum::Extension<RequestContext>>,
    Path(saga_id): Path<String>,
) -> Response {
    if let Err(error) = context(ctx, scope::ROUTES_READ) {
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

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SagaActionBody)]
struct ActionBody {
    /// Required, not blank.
    reason: String,
    /// For `mark-resolved`: `completed` or `compensated`.
    #[serde(default)]
    resolution: Option<String>,
}

/// `retry`, `resume`: done at once, the operator (the token's subject) and the reason going
/// to the saga's own record and to the audit trail. `force-compensate`, `mark-resolved`:
/// four eyes (ADR 0012), a proposal that another operator approves at
/// `/admin/v1/approvals/{id}/approve`.
#[utoipa::path(
    post, path = "/admin/v1/sagas/{saga_id}/{action}", tag = "admin: sagas", operation_id = "act_on_saga",
    summary = "An operator action on a saga",
    description = "Scope `routes:write`. `retry` and `resume` are done at once (200, the saga after the action). `force-compensate` and `mark-resolved` need four eyes: they answer 202 with a proposal (kind `saga_force_compensate` or `saga_mark_resolved`) that another operator with `sagas:approve` approves at `/admin/v1/approvals/{id}/approve`; only then is the saga changed, with both names in its history. The operator (the token's subject) and the reason go to the saga's own record and to the audit trail.",
    params(
        ("saga_id" = String, Path, description = "The saga's id"),
        ("action" = SagaAction, Path, description = "`retry`, `resume`, `force-compensate` or `mark-resolved`"),
    ),
    request_body = ActionBody,
    responses(
        (status = 200, description = "`retry`, `resume`: the saga after the action", body = serde_json::Value),
        (status = 202, description = "`force-compensate`, `mark-resolved`: the proposal, `pending`", body = crate::approvals::Approval),
    )
)]
async fn act(
    State(state): State<Arc<Sagas>>,
    ctx: Option<axum::Extension<RequestContext>>,
    Path((saga_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let context = match context(ctx, scope::ROUTES_WRITE) {
        Ok(context) => context,
        Err(error) => return error.into_response(),
    };
    let parsed: ActionBody = match serde_json::from_slice(&body) {
        Ok(parsed) => parsed,
        Err(error) => {
            return ApiError::invalid(format!("the body must be {{\"reason\": \"...\"}}: {error}"))
                .into_response();
        }
    };
    if parsed.reason.trim().is_empty() {
        return ApiError::invalid("reason is required").into_response();
    }
    let Some(saga_action) = SagaAction::from_path(&action) else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no saga action {action:?}: retry, resume, force-compensate or mark-resolved"),
        )
        .into_response();
    };
    let actor = context.principal.subject.clone();
    // The body's `actor` repeats the asserted operator, so that a SagaAdmin not yet checking
    // assertions (during a rolling upgrade) still records who acted; a newer one only
    // compares it with the assertion.
    let operator_request = || spb::OperatorRequest {
        id: saga_id.clone(),
        actor: actor.clone(),
        reason: parsed.reason.clone(),
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
            return propose(&state, &context, saga_action, &saga_id, &parsed).await;
        }
    };
    let call = match call {
        Ok(call) => call,
        Err(error) => return error.into_response(),
    };
    // The request is in the audit trail before the saga is touched: the action may take
    // effect even if the outcome record below could not be written.
    let intent = AuditRecord {
        at: Utc::now(),
        actor: actor.clone(),
        surface: Surface::Admin.name().to_owned(),
        action: format!("sagas.{action}"),
        resource: format!("saga:{saga_id}"),
        origin: context.origin.clone(),
        outcome: "requested".to_owned(),
        request_id: context.request_id.clone(),
        route: None,
        details: json!({ "reason": parsed.reason, "resolution": parsed.resolution }),
    };
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
    let record = AuditRecord {
        at: Utc::now(),
        actor,
        surface: Surface::Admin.name().to_owned(),
        action: format!("sagas.{action}"),
        resource: format!("saga:{saga_id}"),
        origin: context.origin.clone(),
        outcome,
        request_id: context.request_id.clone(),
        route: None,
        details: json!({ "reason": parsed.reason, "resolution": parsed.resolution }),
    };
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
    action: SagaAction,
    saga_id: &str,
    body: &ActionBody,
) -> Response {
    let (kind, parameters) = match action {
        SagaAction::MarkResolved => match body.resolution.as_deref() {
            Some(resolution @ ("completed" | "compensated")) => (
                ApprovalKind::SagaMarkResolved,
                json!({ "resolution": resolution }),
            ),
            other => {
                return ApiError::invalid(format!(
                    "resolution {other:?}: say \"completed\" or \"compensated\""
                ))
                .into_response();
            }
        },
        SagaAction::ForceCompensate | SagaAction::Retry | SagaAction::Resume => {
            if body.resolution.is_some() {
                return ApiError::invalid("resolution is for mark-resolved only").into_response();
            }
            (ApprovalKind::SagaForceCompensate, json!({}))
        }
    };
    crate::approvals::admin::propose(
        &state.approvals,
        context,
        kind,
        saga_id,
        parameters,
        &body.reason,
    )
    .await
    .into_response()
}
