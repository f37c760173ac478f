//! The routing part of the admin API (`/admin/v1/routes`): read the active rules and their
//! history, propose a change, approve or reject it (four eyes: never the author), roll back
//! to an earlier version (a proposal too), and check a decision. Every mutating call, refused
//! or not, writes its audit record in the transaction of what it changes.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use corebank_db::{Transaction, TxError};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Router;
use super::bodies::{self, RouteDecisionBody, RouteProposalBody, RouteRollbackBody};
use super::store::{self, Proposal};
use super::table::{OPERATIONS, Side};
use crate::error::ApiError;
use crate::operator::{self, Actor, Context, Reply, authenticated, to_json};
use crate::principal::scope;

/// Versions or proposals in one listing: the default and the most a caller may ask for.
const PAGE_SIZE_DEFAULT: i64 = 100;
const PAGE_SIZE_MAX: i64 = 1_000;
/// Ownership entries shown with one version at most (the count is always exact).
const VERSION_OWNERSHIP_SHOWN_MAX: usize = 10_000;

pub(super) fn routes(router: Router) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/routes", get(active_routes))
        .route("/admin/v1/routes/versions", get(list_versions))
        .route("/admin/v1/routes/versions/{version}", get(one_version))
        .route(
            "/admin/v1/routes/proposals",
            get(list_proposals).post(create_proposal),
        )
        .route("/admin/v1/routes/proposals/{id}/approve", post(approve))
        .route("/admin/v1/routes/proposals/{id}/reject", post(reject))
        .route("/admin/v1/routes/rollback", post(rollback))
        .route("/admin/v1/routes/decide", get(decide))
        .with_state(router)
}

/// The caller of a mutating call, if it holds `needed`; a refusal is audited.
async fn writer(
    router: &Router,
    context: Context,
    needed: &str,
    action: &str,
    resource: &str,
) -> Result<Actor, ApiError> {
    let context = authenticated(context)?;
    operator::require(router.db(), &context, needed, action, resource).await?;
    Ok(Actor::of(&context))
}

fn conflict(code: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, code, message)
}

fn not_found(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// The schemas of query parameters are listed: utoipa refers to them without collecting them.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        active_routes,
        list_versions,
        one_version,
        list_proposals,
        create_proposal,
        approve,
        reject,
        rollback,
        decide,
    ),
    components(schemas(RouteProposalStatus, bodies::RouteOperation))
)]
struct RoutesApi;

impl Router {
    /// The `/admin/v1/routes` part of the API reference.
    pub fn admin_openapi() -> utoipa::openapi::OpenApi {
        <RoutesApi as utoipa::OpenApi>::openapi()
    }
}

// ---------------------------------------------------------------------------- reads

#[utoipa::path(
    get, path = "/admin/v1/routes", tag = "admin: routes", operation_id = "active_routes",
    summary = "The active route rules",
    description = "Scope `routes:read`. The active version's rules, ownership count and who activated it, with the version this replica routes by.",
    responses((status = 200, description = "`{version, rules, ownership_count, activated_at, activated_by, proposed_by, kind, reason, replica_version}`", body = serde_json::Value))
)]
async fn active_routes(State(router): State<Router>, context: Context) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let (meta, rules, ownership_count) = router
        .db()
        .run_tx("gateway_route_admin_active", |tx| {
            Box::pin(async move {
                let (version, _) = store::active(&tx, false).await?;
                let meta = store::version_meta_of(&tx, version).await?;
                let rules = store::rules_of(&tx, version).await?;
                let count = store::ownership_count(&tx, version).await?;
                Ok::<_, TxError<ApiError>>((meta, rules, count))
            })
        })
        .await?;
    let meta = meta.ok_or_else(|| ApiError::internal("the active route version has no row"))?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "version": meta.version,
            "rules": rules,
            "ownership_count": ownership_count,
            "activated_at": meta.activated_at,
            "activated_by": meta.approved_by,
            "proposed_by": meta.proposed_by,
            "kind": meta.kind,
            "reason": meta.reason,
            "replica_version": router.table().version(),
        })),
    ))
}

#[derive(Debug, Deserialize)]
struct VersionsQuery {
    before: Option<i64>,
    limit: Option<i64>,
}

fn page_size(limit: Option<i64>) -> Result<i64, ApiError> {
    match limit {
        None => Ok(PAGE_SIZE_DEFAULT),
        Some(limit) if (1..=PAGE_SIZE_MAX).contains(&limit) => Ok(limit),
        Some(_) => Err(ApiError::invalid(format!(
            "limit: must be between 1 and {PAGE_SIZE_MAX}"
        ))),
    }
}

#[utoipa::path(
    get, path = "/admin/v1/routes/versions", tag = "admin: routes", operation_id = "list_route_versions",
    summary = "Route versions, newest first",
    description = "Scope `routes:read`.",
    params(
        ("before" = Option<i64>, Query, description = "Only versions before this one"),
        ("limit" = Option<i64>, Query, description = "1 to 1000; 100 when absent", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, description = "`{versions: [version metadata]}`", body = serde_json::Value))
)]
async fn list_versions(
    State(router): State<Router>,
    context: Context,
    Query(query): Query<VersionsQuery>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let limit = page_size(query.limit)?;
    let before = query.before;
    let versions = router
        .db()
        .run_tx("gateway_route_admin_versions", |tx| {
            Box::pin(async move { store::versions(&tx, before, limit).await })
        })
        .await?;
    Ok((StatusCode::OK, Json(json!({ "versions": versions }))))
}

#[utoipa::path(
    get, path = "/admin/v1/routes/versions/{version}", tag = "admin: routes", operation_id = "route_version",
    summary = "One route version: its rules and account ownership",
    description = "Scope `routes:read`. Ownership is listed up to 10000 entries (`ownership_truncated`); the count is exact.",
    params(("version" = i64, Path, description = "The route version")),
    responses((status = 200, description = "The version's metadata with `rules`, `ownership_count`, `ownership_truncated` and `ownership`", body = serde_json::Value))
)]
async fn one_version(
    State(router): State<Router>,
    context: Context,
    Path(version): Path<i64>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let found = router
        .db()
        .run_tx("gateway_route_admin_version", |tx| {
            Box::pin(async move {
                let Some(meta) = store::version_meta_of(&tx, version).await? else {
                    return Ok(None);
                };
                let rules = store::rules_of(&tx, version).await?;
                let ownership = store::ownership_of(&tx, version).await?;
                Ok::<_, TxError<ApiError>>(Some((meta, rules, ownership)))
            })
        })
        .await?;
    let Some((meta, rules, ownership)) = found else {
        return Err(not_found(format!("no route version {version}")));
    };
    let count = ownership.len();
    let mut owned: Vec<(String, Side)> = ownership.into_iter().collect();
    owned.sort_by(|left, right| left.0.cmp(&right.0));
    owned.truncate(VERSION_OWNERSHIP_SHOWN_MAX);
    let ownership: Vec<Value> = owned
        .into_iter()
        .map(|(account_id, side)| json!({ "account_id": account_id, "side": side }))
        .collect();
    let mut body = to_json(&meta)?;
    if let Some(object) = body.as_object_mut() {
        object.insert("rules".to_owned(), to_json(&rules)?);
        object.insert("ownership_count".to_owned(), json!(count));
        object.insert(
            "ownership_truncated".to_owned(),
            json!(count > ownership.len()),
        );
        object.insert("ownership".to_owned(), Value::Array(ownership));
    }
    Ok((StatusCode::OK, Json(body)))
}

#[derive(Debug, Deserialize)]
struct ProposalsQuery {
    status: Option<String>,
    limit: Option<i64>,
}

const STATUSES: &[&str] = &["proposed", "scheduled", "active", "rejected", "stale"];

crate::string_enum_schema!(
    /// Where a route change proposal stands.
    RouteProposalStatus,
    STATUSES.iter().copied()
);

#[utoipa::path(
    get, path = "/admin/v1/routes/proposals", tag = "admin: routes", operation_id = "list_route_proposals",
    summary = "Route change proposals",
    description = "Scope `routes:read`.",
    params(
        ("status" = Option<RouteProposalStatus>, Query, description = "Only proposals that stand so; all when absent"),
        ("limit" = Option<i64>, Query, description = "1 to 1000; 100 when absent", minimum = 1, maximum = 1000),
    ),
    responses((status = 200, description = "`{proposals: [proposal]}`", body = serde_json::Value))
)]
async fn list_proposals(
    State(router): State<Router>,
    context: Context,
    Query(query): Query<ProposalsQuery>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let limit = page_size(query.limit)?;
    if let Some(status) = &query.status
        && !STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::invalid(format!(
            "status: one of {}",
            STATUSES.join(", ")
        )));
    }
    let status = query.status.as_deref();
    let proposals = router
        .db()
        .run_tx("gateway_route_admin_proposals", |tx| {
            Box::pin(async move { store::proposals(&tx, status, limit).await })
        })
        .await?;
    Ok((StatusCode::OK, Json(json!({ "proposals": proposals }))))
}

#[derive(Debug, Deserialize)]
struct DecideQuery {
    product: Option<String>,
    operation: Option<String>,
    account_id: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/routes/decide", tag = "admin: routes", operation_id = "decide_route",
    summary = "Where a request would go",
    description = "Scope `routes:read`. The decision of this replica's active table.",
    params(
        ("product" = String, Query, min_length = 1, description = "The product code"),
        ("operation" = bodies::RouteOperation, Query, description = "The routed operation"),
        ("account_id" = Option<String>, Query, description = "The account, for ownership and the canary bucket"),
    ),
    responses((status = 200, description = "`{primary, shadow, version, reason}`", body = serde_json::Value))
)]
async fn decide(
    State(router): State<Router>,
    context: Context,
    Query(query): Query<DecideQuery>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let product = query
        .product
        .filter(|product| !product.is_empty())
        .ok_or_else(|| ApiError::invalid("product: required"))?;
    let operation = query
        .operation
        .filter(|operation| OPERATIONS.contains(&operation.as_str()))
        .ok_or_else(|| ApiError::invalid(format!("operation: one of {}", OPERATIONS.join(", "))))?;
    let account_id = query.account_id.filter(|account_id| !account_id.is_empty());
    let decision = router
        .table()
        .decide(&product, &operation, account_id.as_deref());
    Ok((StatusCode::OK, Json(to_json(&decision)?)))
}

// ------------------------------------------------------------------------------ writes

#[utoipa::path(
    post, path = "/admin/v1/routes/proposals", tag = "admin: routes", operation_id = "propose_route_change",
    summary = "Propose a route change",
    description = "Scope `routes:write`. Another operator with `routes:approve` must approve it (four eyes). Audited.",
    request_body = RouteProposalBody,
    responses((status = 201, description = "The proposal, `proposed`", body = serde_json::Value))
)]
async fn create_proposal(State(router): State<Router>, context: Context, body: Bytes) -> Reply {
    let actor = writer(
        &router,
        context,
        scope::ROUTES_WRITE,
        "routes.propose",
        "route_proposal",
    )
    .await?;
    let body: RouteProposalBody = bodies::parse(&body)?;
    let rules = bodies::rules(body.rules)?;
    let ownership = bodies::ownership(body.ownership)?;
    if rules.is_none() && ownership.is_empty() {
        // Each field may be absent, not both: no schema of the body says it, so 422.
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_proposal",
            "rules: a proposal must give the rules or at least one ownership change",
        ));
    }
    let mut proposal = new_proposal(
        "change",
        &actor,
        bodies::required_reason(body.reason)?,
        bodies::activate_at(body.activate_at.as_deref())?,
    );
    proposal.base_version = body.base_version.unwrap_or_default();
    proposal.rules = rules;
    proposal.ownership = ownership;
    store_proposal(&router, &actor, proposal, body.base_version).await
}

#[utoipa::path(
    post, path = "/admin/v1/routes/rollback", tag = "admin: routes", operation_id = "propose_route_rollback",
    summary = "Propose a rollback to an earlier version",
    description = "Scope `routes:write`. A proposal like any other: another operator approves it. Audited.",
    request_body = RouteRollbackBody,
    responses((status = 201, description = "The rollback proposal, `proposed`", body = serde_json::Value))
)]
async fn rollback(State(router): State<Router>, context: Context, body: Bytes) -> Reply {
    let actor = writer(
        &router,
        context,
        scope::ROUTES_WRITE,
        "routes.rollback",
        "route_proposal",
    )
    .await?;
    let body: RouteRollbackBody = bodies::parse(&body)?;
    let to_version = body
        .to_version
        .ok_or_else(|| ApiError::invalid("to_version: required, an integer"))?;
    let mut proposal = new_proposal(
        "rollback",
        &actor,
        bodies::required_reason(body.reason)?,
        bodies::activate_at(body.activate_at.as_deref())?,
    );
    proposal.rollback_to = Some(to_version);
    store_proposal(&router, &actor, proposal, None).await
}

/// A proposal of `kind` by `actor`, of no content and on no version yet.
fn new_proposal(
    kind: &str,
    actor: &Actor,
    reason: String,
    activate_at: Option<DateTime<Utc>>,
) -> Proposal {
    Proposal {
        id: Uuid::new_v4(),
        kind: kind.to_owned(),
        base_version: 0,
        rules: None,
        ownership: Vec::new(),
        rollback_to: None,
        activate_at,
        reason,
        author: actor.subject.clone(),
        created_at: Utc::now(),
        status: "proposed".to_owned(),
        decided_by: None,
        decided_at: None,
        decision_reason: None,
        activated_version: None,
        activated_at: None,
    }
}

/// Stores `proposal` (a change that, if `based_on` a version, must be based on the active
/// one; or a rollback) against the active version, audited in the same transaction; a
/// refusal by the routes' state is audited too. Answers 201 with the proposal.
async fn store_proposal(
    router: &Router,
    actor: &Actor,
    proposal: Proposal,
    based_on: Option<i64>,
) -> Reply {
    let (action, transaction) = match proposal.rollback_to {
        None => ("routes.propose", "gateway_route_propose"),
        Some(_) => ("routes.rollback", "gateway_route_rollback"),
    };
    let proposal = &proposal;
    let created = router
        .db()
        .run_tx(transaction, |tx| {
            Box::pin(async move {
                let (active, _) = store::active(&tx, false).await?;
                let mut proposal = proposal.clone();
                let resource = format!("route_proposal:{}", proposal.id);
                if let Some((refusal, details)) =
                    refusal_of_proposal(&tx, &proposal, based_on, active).await?
                {
                    actor
                        .audit(&tx, action, &resource, &refusal.code, details)
                        .await?;
                    return Ok(Err(refusal));
                }
                proposal.base_version = active;
                store::insert_proposal(&tx, &proposal).await?;
                let details = match proposal.rollback_to {
                    None => json!({
                        "base_version": active,
                        "rules": proposal.rules,
                        "ownership_changes": proposal.ownership.len(),
                        "activate_at": proposal.activate_at,
                        "reason": proposal.reason,
                    }),
                    Some(to_version) => json!({
                        "base_version": active,
                        "to_version": to_version,
                        "activate_at": proposal.activate_at,
                        "reason": proposal.reason,
                    }),
                };
                actor
                    .audit(&tx, action, &resource, "proposed", details)
                    .await?;
                Ok(Ok(proposal))
            })
        })
        .await??;
    Ok((StatusCode::CREATED, Json(to_json(&created)?)))
}

/// Why the routes' state refuses `proposal` while version `active` is active, if it does,
/// with the refusal's audit details. The request is well formed then: a refusal is a
/// conflict (or a rollback to a version that never was).
async fn refusal_of_proposal(
    tx: &Transaction<'_>,
    proposal: &Proposal,
    based_on: Option<i64>,
    active: i64,
) -> Result<Option<(ApiError, Value)>, TxError<ApiError>> {
    let Some(to_version) = proposal.rollback_to else {
        return Ok(based_on.filter(|base| *base != active).map(|base| {
            (
                conflict(
                    "stale_proposal",
                    format!("base_version {base} is not the active version {active}"),
                ),
                json!({ "base_version": base, "active_version": active }),
            )
        }));
    };
    let refusal = if to_version >= active {
        Some(conflict(
            "not_an_earlier_version",
            format!("to_version: must be earlier than the active version {active}"),
        ))
    } else if !store::version_exists(tx, to_version).await? {
        Some(not_found(format!("no route version {to_version}")))
    } else {
        None
    };
    Ok(refusal.map(|refusal| {
        (
            refusal,
            json!({ "to_version": to_version, "active_version": active }),
        )
    }))
}

/// A decision on a proposal, as the caller asked for it.
struct Decision {
    /// The decider, who holds `routes:approve`.
    actor: Actor,
    /// The proposal, as the audit trail names it.
    resource: String,
    id: Uuid,
    /// The decider's note, if any.
    note: Option<String>,
}

impl Decision {
    /// The caller's decision on proposal `id` with `body`; a caller without `routes:approve`
    /// is refused, and the refusal audited as `action`.
    async fn of(
        router: &Router,
        context: Context,
        id: &str,
        body: &[u8],
        action: &str,
    ) -> Result<Decision, ApiError> {
        let resource = format!("route_proposal:{id}");
        let actor = writer(router, context, scope::ROUTES_APPROVE, action, &resource).await?;
        let id =
            Uuid::parse_str(id).map_err(|_| ApiError::invalid("id: not a proposal id (a UUID)"))?;
        let body: RouteDecisionBody = bodies::parse(body)?;
        let note = bodies::reason(body.reason)?;
        Ok(Decision {
            actor,
            resource,
            id,
            note,
        })
    }
}

fn no_proposal(id: Uuid) -> ApiError {
    not_found(format!("no route proposal {id}"))
}

/// Proposal `id` as just decided (it is there: it was read for update in this transaction).
async fn reread(
    tx: &Transaction<'_>,
    id: Uuid,
) -> Result<Result<Proposal, ApiError>, TxError<ApiError>> {
    Ok(store::proposal_for_update(tx, id)
        .await?
        .ok_or_else(|| ApiError::internal(format!("the decided route proposal {id} vanished"))))
}

#[utoipa::path(
    post, path = "/admin/v1/routes/proposals/{id}/approve", tag = "admin: routes", operation_id = "approve_route_proposal",
    summary = "Approve a proposal (never its author)",
    description = "Scope `routes:approve`. Activates it now, or schedules it for its `activate_at`; 403 `four_eyes_required` for its author, 409 `stale_proposal` when another version became active since it was proposed. Audited.",
    params(("id" = String, Path, format = Uuid, description = "The proposal's id (a UUID)")),
    request_body(content = RouteDecisionBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The proposal, `active` or `scheduled`", body = serde_json::Value))
)]
async fn approve(
    State(router): State<Router>,
    context: Context,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let Decision {
        actor,
        resource,
        id,
        note,
    } = Decision::of(&router, context, &id, &body, "routes.approve").await?;
    let (actor, resource, note) = (&actor, &resource, &note);
    let approved = router
        .db()
        .run_tx("gateway_route_approve", |tx| {
            Box::pin(async move {
                let now = Utc::now();
                let proposal = store::proposal_for_update(&tx, id).await?;
                let refusal = match &proposal {
                    None => Some(no_proposal(id)),
                    Some(proposal) if proposal.status != "proposed" => Some(conflict(
                        "proposal_not_pending",
                        format!("the proposal is {}, not proposed", proposal.status),
                    )),
                    Some(proposal) if proposal.author == actor.subject => Some(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "four_eyes_required",
                        "the author of a route change cannot approve it: another operator with \
                     routes:approve must",
                    )),
                    Some(_) => None,
                };
                let details = json!({ "note": note });
                let proposal = match (proposal, refusal) {
                    (Some(proposal), None) => proposal,
                    (_, refusal) => {
                        let refusal = refusal
                            .unwrap_or_else(|| ApiError::internal("approval without a proposal"));
                        actor
                            .audit(&tx, "routes.approve", resource, &refusal.code, details)
                            .await?;
                        return Ok(Err(refusal));
                    }
                };
                let decided = Some((actor.subject.as_str(), now, note.as_deref()));
                let (active, _) = store::active(&tx, false).await?;
                let stale = || {
                    conflict(
                        "stale_proposal",
                        format!(
                            "the proposal was based on version {} but version {active} is active; \
                         propose again against the active version",
                            proposal.base_version
                        ),
                    )
                };
                let outcome = if active != proposal.base_version {
                    store::set_status(&tx, id, "stale", decided, None).await?;
                    Err(stale())
                } else if proposal.activate_at.is_some_and(|at| at > now) {
                    store::set_status(&tx, id, "scheduled", decided, None).await?;
                    Ok("scheduled")
                } else {
                    store::set_status(&tx, id, "proposed", decided, None).await?;
                    match super::activate_proposal(&tx, &proposal, &actor.subject, now).await? {
                        Some(_) => Ok("active"),
                        None => Err(stale()),
                    }
                };
                let code = match &outcome {
                    Ok(status) => (*status).to_owned(),
                    Err(refusal) => refusal.code.clone(),
                };
                actor
                    .audit(
                        &tx,
                        "routes.approve",
                        resource,
                        &code,
                        json!({
                            "note": note,
                            "author": proposal.author,
                            "base_version": proposal.base_version,
                            "activate_at": proposal.activate_at,
                        }),
                    )
                    .await?;
                match outcome {
                    Ok(_) => reread(&tx, id).await,
                    Err(refusal) => Ok(Err(refusal)),
                }
            })
        })
        .await??;
    // This replica routes with the new version at once; the others within a poll.
    router.refresh().await?;
    Ok((StatusCode::OK, Json(to_json(&approved)?)))
}

#[utoipa::path(
    post, path = "/admin/v1/routes/proposals/{id}/reject", tag = "admin: routes", operation_id = "reject_route_proposal",
    summary = "Reject a proposal",
    description = "Scope `routes:approve`. Audited.",
    params(("id" = String, Path, format = Uuid, description = "The proposal's id (a UUID)")),
    request_body(content = RouteDecisionBody, description = "Optional: an empty body is the same as `{}`"),
    responses((status = 200, description = "The proposal, `rejected`", body = serde_json::Value))
)]
async fn reject(
    State(router): State<Router>,
    context: Context,
    Path(id): Path<String>,
    body: Bytes,
) -> Reply {
    let Decision {
        actor,
        resource,
        id,
        note,
    } = Decision::of(&router, context, &id, &body, "routes.reject").await?;
    let (actor, resource, note) = (&actor, &resource, &note);
    let rejected = router
        .db()
        .run_tx("gateway_route_reject", |tx| {
            Box::pin(async move {
                let now = Utc::now();
                let proposal = store::proposal_for_update(&tx, id).await?;
                let refusal = match &proposal {
                    None => Some(no_proposal(id)),
                    Some(proposal)
                        if !matches!(proposal.status.as_str(), "proposed" | "scheduled") =>
                    {
                        Some(conflict(
                            "proposal_not_pending",
                            format!(
                                "the proposal is {}, not proposed or scheduled",
                                proposal.status
                            ),
                        ))
                    }
                    Some(_) => None,
                };
                let code = refusal
                    .as_ref()
                    .map_or_else(|| "rejected".to_owned(), |refusal| refusal.code.clone());
                actor
                    .audit(
                        &tx,
                        "routes.reject",
                        resource,
                        &code,
                        json!({ "note": note }),
                    )
                    .await?;
                if let Some(refusal) = refusal {
                    return Ok(Err(refusal));
                }
                let decided = Some((actor.subject.as_str(), now, note.as_deref()));
                store::set_status(&tx, id, "rejected", decided, None).await?;
                reread(&tx, id).await
            })
        })
        .await??;
    Ok((StatusCode::OK, Json(to_json(&rejected)?)))
}
