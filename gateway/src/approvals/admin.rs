//! `/admin/v1/approvals`: the queue of four-eyes proposals, and approving or rejecting one;
//! `POST /admin/v1/payments/{id}/screening-review` proposes a screening decision (the saga
//! proposals come from `/admin/v1/sagas/{id}/force-compensate|mark-resolved`). Every step
//! is in the audit trail, written in the transaction of what it records.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{TimeDelta, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Approval, ApprovalKind, ApprovalStatus, Approvals, execute, store};
use crate::audit;
use crate::error::ApiError;
use crate::operator::{
    self, Actor, Context, Reply, authenticated, checked_reason, parse_body, reason_schema, to_json,
};
use crate::principal::{RequestContext, scope};
use crate::routing::Side;
use crate::upstream::api_error_of;

/// Proposals in one listing: the default and the most a caller may ask for.
const PAGE_SIZE_DEFAULT: i64 = 100;
const PAGE_SIZE_MAX: i64 = 1_000;

/// The routes, over `approvals`.
pub fn router(approvals: Arc<Approvals>) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/approvals", get(list))
        .route("/admin/v1/approvals/{id}", get(one))
        .route("/admin/v1/approvals/{id}/approve", post(approve))
        .route("/admin/v1/approvals/{id}/reject", post(reject))
        .route(
            "/admin/v1/payments/{payment_id}/screening-review",
            post(propose_screening_review),
        )
        .with_state(approvals)
}

/// Stores a proposal of `kind` on `target` by the caller (who must hold `routes:write`),
/// audited in the same transaction; answers 202 with it.
pub(crate) async fn propose(
    approvals: &Approvals,
    context: &RequestContext,
    kind: ApprovalKind,
    target: &str,
    parameters: Value,
    reason: &str,
) -> Reply {
    let resource = format!("{}:{target}", kind.target_kind());
    operator::require(
        &approvals.db,
        context,
        scope::ROUTES_WRITE,
        "approvals.propose",
        &resource,
    )
    .await?;
    let reason = checked_reason(reason)?;
    if !kind.is_target(target) {
        return Err(ApiError::invalid(if kind == ApprovalKind::ProductDefine {
            format!("{target:?} is not a product code")
        } else {
            format!(
                "{target:?} is not an id of a {} (a UUID)",
                kind.target_kind()
            )
        }));
    }
    execute::check_operator(&context.principal.subject)?;
    let now = Utc::now();
    let ttl = TimeDelta::from_std(approvals.ttl).map_err(ApiError::internal)?;
    let approval = Approval {
        id: Uuid::new_v4(),
        kind,
        target: target.to_owned(),
        parameters,
        reason,
        proposed_by: context.principal.subject.clone(),
        proposed_at: now,
        expires_at: now + ttl,
        status: ApprovalStatus::Pending,
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        outcome: None,
    };
    let audited = Actor::of(context).record(
        "approvals.propose",
        &approval.resource(),
        "pending",
        json!({
            "kind": kind.name(), "target": target, "parameters": approval.parameters,
            "reason": approval.reason, "expires_at": approval.expires_at,
        }),
    );
    let (approval_ref, audited) = (&approval, &audited);
    approvals
        .db
        .run_tx("gateway_approval_propose", |tx| {
            Box::pin(async move {
                store::insert(&tx, approval_ref).await?;
                audit::append(&tx, audited).await?;
                Ok::<_, corebank_db::TxError<ApiError>>(())
            })
        })
        .await?;
    tracing::info!(
        approval.id = %approval.id,
        approval.kind = kind.name(),
        approval.target = target,
        approval.proposed_by = approval.proposed_by,
        "operator action proposed; another operator must approve it"
    );
    Ok((StatusCode::ACCEPTED, Json(to_json(&approval)?)))
}

/// `{"decision": "release" | "refuse", "reason": "..."}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScreeningReviewBody {
    pub decision: ScreeningDecision,
    #[schema(schema_with = reason_schema)]
    pub reason: String,
}

/// A screening decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ScreeningDecision {
    /// The payment goes on to the rail.
    Release,
    /// The payment fails and its hold is released.
    Refuse,
}

#[utoipa::path(
    post, path = "/admin/v1/payments/{payment_id}/screening-review", tag = "admin: approvals",
    operation_id = "propose_screening_review",
    summary = "Propose releasing or refusing a payment held by screening",
    description = "Scope `routes:write`. Stores a proposal (`payment_screening_release` or `payment_screening_refuse`); another operator with `payments:approve` approves it, and only then does the payments module decide. Audited.",
    params(("payment_id" = String, Path, format = Uuid, description = "The payment's id (a UUID)")),
    request_body = ScreeningReviewBody,
    responses((status = 202, description = "The proposal, `pending`", body = Approval))
)]
async fn propose_screening_review(
    State(approvals): State<Arc<Approvals>>,
    context: Context,
    Path(payment_id): Path<String>,
    body: Bytes,
) -> Reply {
    let context = authenticated(context)?;
    let body: ScreeningReviewBody = parse_body(
        &body,
        r#"{"decision": "release" | "refuse", "reason": "..."}"#,
    )?;
    let kind = match body.decision {
        ScreeningDecision::Release => ApprovalKind::PaymentScreeningRelease,
        ScreeningDecision::Refuse => ApprovalKind::PaymentScreeningRefuse,
    };
    propose(
        &approvals,
        &context,
        kind,
        &payment_id,
        json!({}),
        &body.reason,
    )
    .await
}

crate::string_enum_schema!(
    /// Where a proposal stands; empty is the same as absent.
    ApprovalStatusFilter,
    ApprovalStatus::ALL.iter().map(|status| status.name()).chain([""])
);

#[derive(Debug, Deserialize)]
struct ListQuery {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[utoipa::path(
    get, path = "/admin/v1/approvals", tag = "admin: approvals", operation_id = "list_approvals",
    summary = "Four-eyes proposals of operator actions, oldest first",
    description = "Scope `routes:read`.",
    params(
        ("status" = Option<ApprovalStatusFilter>, Query, description = "Only proposals that stand so; all when absent or empty"),
        ("limit" = Option<i64>, Query, description = "1 to 1000; 100 when absent", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, description = "`{approvals: [approval]}`", body = serde_json::Value))
)]
async fn list(
    State(approvals): State<Arc<Approvals>>,
    context: Context,
    Query(query): Query<ListQuery>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(name) => Some(ApprovalStatus::parse(name).ok_or_else(|| {
            ApiError::invalid(format!(
                "status {name:?}: pending, approved, rejected or expired"
            ))
        })?),
    };
    let limit = query.limit.unwrap_or(PAGE_SIZE_DEFAULT);
    if !(1..=PAGE_SIZE_MAX).contains(&limit) {
        return Err(ApiError::invalid(format!("limit: 1 to {PAGE_SIZE_MAX}")));
    }
    let listed = approvals
        .db
        .run_tx("gateway_approval_list", |tx| {
            Box::pin(async move {
                Ok::<_, corebank_db::TxError<ApiError>>(
                    store::list(&tx, status, Utc::now(), limit).await?,
                )
            })
        })
        .await?;
    let listed = listed.iter().map(to_json).collect::<Result<Vec<_>, _>>()?;
    Ok((StatusCode::OK, Json(json!({ "approvals": listed }))))
}

fn approval_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id).map_err(|_| ApiError::invalid("id: not an approval id (a UUID)"))
}

fn not_found(id: Uuid) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no approval {id}"),
    )
}

#[utoipa::path(
    get, path = "/admin/v1/approvals/{id}", tag = "admin: approvals", operation_id = "get_approval",
    summary = "One proposal",
    description = "Scope `routes:read`.",
    params(("id" = String, Path, format = Uuid, description = "The proposal's id (a UUID)")),
    responses((status = 200, description = "The proposal", body = Approval))
)]
async fn one(
    State(approvals): State<Arc<Approvals>>,
    context: Context,
    Path(id): Path<String>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let id = approval_id(&id)?;
    let found = approvals
        .db
        .run_tx("gateway_approval_get", |tx| {
            Box::pin(
                async move { Ok::<_, corebank_db::TxError<ApiError>>(store::one(&tx, id).await?) },
            )
        })
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok((StatusCode::OK, Json(to_json(&found.as_of(Utc::now()))?)))
}

/// `{"reason": "..."}`: why the approver approves or rejects.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalDecisionBody {
    #[schema(schema_with = reason_schema)]
    pub reason: String,
}

/// The refusal, if any, of deciding `approval` as `decider` at `now`.
fn refusal_of(
    approval: &Approval,
    decider: &str,
    approving: bool,
    now: chrono::DateTime<Utc>,
) -> Option<ApiError> {
    let conflict = |code: &str, message: String| ApiError::new(StatusCode::CONFLICT, code, message);
    match approval.status {
        ApprovalStatus::Pending if approval.expires_at <= now => Some(conflict(
            "proposal_expired",
            format!(
                "the proposal expired at {}; propose again",
                approval.expires_at.to_rfc3339()
            ),
        )),
        ApprovalStatus::Pending => None,
        other => Some(conflict(
            "proposal_not_pending",
            format!("the proposal is {}, not pending", other.name()),
        )),
    }
    .or_else(|| {
        (approving && approval.proposed_by == decider).then(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "four_eyes_required",
                format!(
                    "the proposer of an operator action cannot approve it: another operator \
                     with {} must",
                    approval.kind.approve_scope()
                ),
            )
        })
    })
}

/// Decides proposal `id` as the caller: checks the kind's approve scope, the proposal's
/// state and (approving) four eyes, then records the decision and its audit record in one
/// transaction. A refusal is audited too. Returns the proposal as decided.
async fn decide(
    approvals: &Approvals,
    context: &RequestContext,
    id: &str,
    body: &[u8],
    approving: bool,
) -> Result<Approval, ApiError> {
    let action = if approving {
        "approvals.approve"
    } else {
        "approvals.reject"
    };
    let resource = format!("approval:{id}");
    let id = approval_id(id)?;
    let body: ApprovalDecisionBody = parse_body(body, r#"{"reason": "..."}"#)?;
    let note = checked_reason(&body.reason)?;
    if approving {
        execute::check_operator(&context.principal.subject)?;
    }
    let (resource_ref, note_ref) = (&resource, &note);
    let decided = approvals
        .db
        .run_tx("gateway_approval_decide", |tx| {
            Box::pin(async move {
                let now = Utc::now();
                let Some(approval) = store::for_update(&tx, id).await? else {
                    return Ok(Err(not_found(id)));
                };
                let needed = approval.kind.approve_scope();
                let refusal = if context.principal.has_scope(needed) {
                    refusal_of(&approval, &context.principal.subject, approving, now)
                } else {
                    Some(ApiError::forbidden(format!(
                        "this needs the scope {needed}"
                    )))
                };
                let details = json!({
                    "kind": approval.kind.name(), "target": approval.target,
                    "proposed_by": approval.proposed_by, "reason": note_ref,
                });
                if let Some(refusal) = refusal {
                    if refusal.code == "proposal_expired" {
                        store::decide(&tx, id, ApprovalStatus::Expired, None, now, None).await?;
                    }
                    audit::append(
                        &tx,
                        &Actor::of(context).record(action, resource_ref, &refusal.code, details),
                    )
                    .await?;
                    return Ok(Err(refusal));
                }
                let status = if approving {
                    ApprovalStatus::Approved
                } else {
                    ApprovalStatus::Rejected
                };
                store::decide(
                    &tx,
                    id,
                    status,
                    Some(&context.principal.subject),
                    now,
                    Some(note_ref),
                )
                .await?;
                audit::append(
                    &tx,
                    &Actor::of(context).record(action, resource_ref, status.name(), details),
                )
                .await?;
                Ok(store::for_update(&tx, id)
                    .await?
                    .ok_or_else(|| ApiError::internal("the decided approval vanished")))
            })
        })
        .await??;
    Ok(decided)
}

#[utoipa::path(
    post, path = "/admin/v1/approvals/{id}/approve", tag = "admin: approvals", operation_id = "approve_approval",
    summary = "Approve a proposal (never its proposer), which carries it out",
    description = "Scope `sagas:approve` for saga kinds, `payments:approve` for payment kinds, `products:approve` for `product_define`, `migrations:approve` for `migration_start`, `migration_rollback` and `migration_resume`. The gateway then calls the owner with the approver as the asserted operator and the proposer as `proposed_by`; the answer is the owner's (`{approval, result}`, or its refusal, recorded as the proposal's `outcome`). 403 `four_eyes_required` for the proposer, 409 `proposal_not_pending` once decided, 409 `proposal_expired` past its expiry. Audited.",
    params(("id" = String, Path, format = Uuid, description = "The proposal's id (a UUID)")),
    request_body = ApprovalDecisionBody,
    responses((status = 200, description = "`{approval, result}`: the proposal and the saga or payment after the action", body = serde_json::Value))
)]
async fn approve(
    State(approvals): State<Arc<Approvals>>,
    context: Context,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let context = authenticated(context)?;
    let approved = decide(&approvals, &context, &id, &body, true).await?;
    let approver = context.principal.subject.clone();
    let answer = execute::call(&approvals, &approved, &approver).await?;
    let (outcome, side_error) = match &answer {
        Ok(_) => ("done".to_owned(), None),
        Err(status) => {
            let error = api_error_of(status, Side::Modern);
            (error.code.clone(), Some(error))
        }
    };
    tracing::info!(
        approval.id = %approved.id,
        approval.kind = approved.kind.name(),
        approval.target = approved.target,
        approval.proposed_by = approved.proposed_by,
        approval.approved_by = approver,
        approval.outcome = outcome,
        "approved operator action carried out"
    );
    let audited = Actor::of(&context).record(
        "approvals.execute",
        &approved.resource(),
        &outcome,
        json!({ "kind": approved.kind.name(), "target": approved.target,
                "proposed_by": approved.proposed_by }),
    );
    let (id, outcome_ref, audited) = (approved.id, &outcome, &audited);
    let approved = approvals
        .db
        .run_tx("gateway_approval_outcome", |tx| {
            Box::pin(async move {
                store::set_outcome(&tx, id, outcome_ref).await?;
                audit::append(&tx, audited).await?;
                Ok(store::one(&tx, id)
                    .await?
                    .ok_or_else(|| ApiError::internal("the approved approval vanished")))
            })
        })
        .await??;
    match (answer, side_error) {
        (Ok(result), _) => Ok((
            StatusCode::OK,
            Json(json!({ "approval": to_json(&approved)?, "result": result })),
        )),
        (Err(_), Some(error)) => Err(error),
        (Err(status), None) => Err(api_error_of(&status, Side::Modern)),
    }
}

#[utoipa::path(
    post, path = "/admin/v1/approvals/{id}/reject", tag = "admin: approvals", operation_id = "reject_approval",
    summary = "Reject a proposal",
    description = "Scope `sagas:approve` for saga kinds, `payments:approve` for payment kinds, `products:approve` for `product_define`, `migrations:approve` for `migration_start`, `migration_rollback` and `migration_resume` (the proposer may withdraw their own). Nothing is called. 409 `proposal_not_pending` once decided, 409 `proposal_expired` past its expiry. Audited.",
    params(("id" = String, Path, format = Uuid, description = "The proposal's id (a UUID)")),
    request_body = ApprovalDecisionBody,
    responses((status = 200, description = "The proposal, `rejected`", body = Approval))
)]
async fn reject(
    State(approvals): State<Arc<Approvals>>,
    context: Context,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let context = authenticated(context)?;
    let rejected = decide(&approvals, &context, &id, &body, false).await?;
    Ok((StatusCode::OK, Json(to_json(&rejected)?)))
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list, one, approve, reject, propose_screening_review),
    components(schemas(
        Approval,
        ApprovalKind,
        ApprovalStatus,
        ApprovalStatusFilter,
        ApprovalDecisionBody,
        ScreeningReviewBody,
        ScreeningDecision
    ))
)]
struct ApprovalsApi;

/// The `/admin/v1/approvals` part of the API reference.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ApprovalsApi as utoipa::OpenApi>::openapi()
}
