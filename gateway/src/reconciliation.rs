//! `/admin/v1/reconciliation` and `/admin/v1/reconciliation-alerts`: proving that the two
//! books agree about what the account migration moved (ADR 0013), through the migration
//! component (`corebank.migration.v1`): a run of the rules with its evidence, kept; each
//! break an alert that an operator acknowledges, then resolves or accepts (audited).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use corebank_api::migration::v1 as pb;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::error::ApiError;
use crate::migrations::{Migrations, conflict_or_upstream, not_found_or_upstream};
use crate::operator::{self, Context, Reply};
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;

/// The routes, over the migration component's client.
pub fn router(migrations: Arc<Migrations>) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/reconciliation", post(reconcile))
        .route("/admin/v1/reconciliation/{run_id}", get(reconciliation))
        .route("/admin/v1/reconciliation-alerts", get(alerts))
        .route(
            "/admin/v1/reconciliation-alerts/{alert_id}/{action}",
            post(change_alert),
        )
        .with_state(migrations)
}

/// `{"reason": "..."}`: why the books are reconciled now.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    #[schema(schema_with = operator::reason_schema)]
    pub reason: String,
}

/// One rule's result, with its evidence.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReconciliationResultView {
    /// `migration_clearing_nets_suspense`.
    pub rule: String,
    /// What it was checked for (a currency).
    pub subject: String,
    pub ok: bool,
    pub expected: String,
    pub actual: String,
    /// What was read, from where and when.
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

/// A reconciliation run.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReconciliationView {
    pub run_id: String,
    pub requested_by: String,
    pub started_at: String,
    pub checked: u64,
    /// Results that are not `ok`.
    pub breaks: u64,
    pub results: Vec<ReconciliationResultView>,
}

impl From<pb::Reconciliation> for ReconciliationView {
    fn from(run: pb::Reconciliation) -> ReconciliationView {
        ReconciliationView {
            run_id: run.run_id,
            requested_by: run.requested_by,
            started_at: run.started_at,
            checked: run.checked,
            breaks: run.breaks,
            results: run
                .results
                .into_iter()
                .map(|result| ReconciliationResultView {
                    rule: result.rule,
                    subject: result.subject,
                    ok: result.ok,
                    expected: result.expected,
                    actual: result.actual,
                    evidence: serde_json::from_str(&result.evidence)
                        .unwrap_or(serde_json::Value::String(result.evidence)),
                })
                .collect(),
        }
    }
}

#[utoipa::path(
    post, path = "/admin/v1/reconciliation", tag = "admin: migrations",
    operation_id = "reconcile",
    summary = "Reconcile the two books now",
    description = "Scope `routes:write`. Runs the reconciliation rules and keeps each result with its evidence (the figures read, from where and when): `migration_clearing_nets_suspense`, per currency, checks that the balances the moved accounts had when frozen add up to the modern migration clearing account and to the legacy migration suspense account, so that the two net to zero. `breaks` counts the results that are not `ok`. Run it while no migration is moving accounts.",
    request_body = ReconcileBody,
    responses((status = 201, description = "The run", body = ReconciliationView))
)]
async fn reconcile(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: ReconcileBody = operator::parse_body(&body, r#"{"reason": "..."}"#)?;
    operator::require(
        migrations.approvals.db(),
        &context,
        scope::ROUTES_WRITE,
        "reconciliation.run",
        "reconciliation",
    )
    .await?;
    operator::checked_reason(&body.reason)?;
    let run = migrations
        .client
        .clone()
        .reconcile(pb::ReconcileRequest {
            run_id: Uuid::new_v4().to_string(),
            requested_by: context.principal.subject.clone(),
        })
        .await
        .map_err(|status| api_error_of(&status, Side::Modern))?;
    let view = ReconciliationView::from(run.into_inner());
    tracing::info!(
        run = %view.run_id,
        breaks = view.breaks,
        operator = %context.principal.subject,
        reason = %body.reason,
        "reconciliation run"
    );
    Ok((StatusCode::CREATED, Json(operator::to_json(&view)?)))
}

#[utoipa::path(
    get, path = "/admin/v1/reconciliation/{run_id}", tag = "admin: migrations",
    operation_id = "get_reconciliation",
    summary = "A reconciliation run, as it was kept",
    description = "Scope `routes:read`.",
    params(("run_id" = String, Path, description = "The run's id (a UUID)")),
    responses((status = 200, description = "The run", body = ReconciliationView))
)]
async fn reconciliation(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path(run_id): Path<String>,
) -> Result<Json<ReconciliationView>, ApiError> {
    operator::reader(context, scope::ROUTES_READ)?;
    if Uuid::parse_str(&run_id).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no reconciliation run {run_id:?}"),
        ));
    }
    let found = migrations
        .client
        .clone()
        .get_reconciliation(pb::GetReconciliationRequest { run_id })
        .await
        .map_err(not_found_or_upstream)?;
    Ok(Json(ReconciliationView::from(found.into_inner())))
}

/// One transition of an alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertEventView {
    /// The state reached: `open`, `acknowledged`, `resolved` or `accepted`.
    pub state: String,
    pub changed_by: String,
    pub changed_at: String,
    pub note: String,
    pub correcting_entry: String,
}

/// A reconciliation break as an alert.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    pub alert_id: String,
    /// The rule that broke, and what it was checked for (a currency).
    pub rule: String,
    pub subject: String,
    /// `open`, `acknowledged`, `resolved` (with `correcting_entry`) or `accepted` (with
    /// `note`).
    pub state: String,
    /// The run that raised it, and the latest run that found the break still.
    pub run_id: String,
    pub last_run_id: String,
    pub expected: String,
    pub actual: String,
    pub raised_at: String,
    pub changed_by: String,
    pub changed_at: String,
    pub note: String,
    pub correcting_entry: String,
    /// Every transition, oldest first.
    pub events: Vec<AlertEventView>,
}

impl From<pb::Alert> for AlertView {
    fn from(a: pb::Alert) -> AlertView {
        AlertView {
            alert_id: a.alert_id,
            rule: a.rule,
            subject: a.subject,
            state: a.state,
            run_id: a.run_id,
            last_run_id: a.last_run_id,
            expected: a.expected,
            actual: a.actual,
            raised_at: a.raised_at,
            changed_by: a.changed_by,
            changed_at: a.changed_at,
            note: a.note,
            correcting_entry: a.correcting_entry,
            events: a
                .events
                .into_iter()
                .map(|e| AlertEventView {
                    state: e.state,
                    changed_by: e.changed_by,
                    changed_at: e.changed_at,
                    note: e.note,
                    correcting_entry: e.correcting_entry,
                })
                .collect(),
        }
    }
}

/// The newest alerts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AlertList {
    pub alerts: Vec<AlertView>,
}

/// `?state=`: only the alerts in this state.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `open`, `acknowledged`, `resolved` or `accepted`; absent: every state.
    #[param(pattern = "^(open|acknowledged|resolved|accepted)$")]
    pub state: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/reconciliation-alerts", tag = "admin: migrations",
    operation_id = "list_reconciliation_alerts",
    summary = "Reconciliation alerts, newest first",
    description = "Scope `routes:read`. Each break a reconciliation run finds is raised as an alert (once: a later run finding the same break still names itself in `last_run_id`; a difference accepted is not raised again while it stays the same), with every transition in `events`. At most 50.",
    params(AlertQuery),
    responses((status = 200, description = "The alerts", body = AlertList))
)]
async fn alerts(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    query: Result<axum::extract::Query<AlertQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AlertList>, ApiError> {
    operator::reader(context, scope::ROUTES_READ)?;
    let axum::extract::Query(query) =
        query.map_err(|rejection| ApiError::invalid(rejection.body_text()))?;
    let query_has_state = query.state.is_some();
    // Absent: every state; present, it must name one.
    let state = query.state.unwrap_or_default();
    if query_has_state
        && !["open", "acknowledged", "resolved", "accepted"].contains(&state.as_str())
    {
        return Err(ApiError::invalid(format!(
            "state {state:?} is not open, acknowledged, resolved or accepted"
        )));
    }
    let listed = migrations
        .client
        .clone()
        .list_alerts(pb::ListAlertsRequest { state, limit: 50 })
        .await
        .map_err(|status| api_error_of(&status, Side::Modern))?;
    Ok(Json(AlertList {
        alerts: listed
            .into_inner()
            .alerts
            .into_iter()
            .map(AlertView::from)
            .collect(),
    }))
}

/// `{"note"?, "correcting_entry"?}`: what the operator says with the transition.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertChangeBody {
    /// Required to resolve or accept: what was found, and why it is settled.
    #[schema(schema_with = note_schema)]
    #[serde(default)]
    pub note: Option<String>,
    /// Required to resolve: the entry that corrected the books (its id on the book it was
    /// posted to).
    #[schema(schema_with = entry_schema)]
    #[serde(default)]
    pub correcting_entry: Option<String>,
}

fn note_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::formats::text(2_000).schema_type(crate::openapi::formats::string_or_null())
}

fn entry_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::formats::text(128).schema_type(crate::openapi::formats::string_or_null())
}

#[utoipa::path(
    post, path = "/admin/v1/reconciliation-alerts/{alert_id}/{action}", tag = "admin: migrations",
    operation_id = "change_reconciliation_alert",
    summary = "Acknowledge, resolve or accept a reconciliation alert",
    description = "Scope `routes:write`; audited (`reconciliation.alert.<action>`). `acknowledge` an open alert (someone is on it); `resolve` an open or acknowledged one with `correcting_entry` (the entry that corrected the books) and a `note`; `accept` it with a `note` (the difference stands, and is not raised again while it stays the same). The same action again answers the alert as it is; 409 `alert_closed` for another action on a closed alert; 400 when a required field is missing.",
    params(
        ("alert_id" = String, Path, description = "The alert's id (a UUID)"),
        ("action" = String, Path, description = "`acknowledge`, `resolve` or `accept`", pattern = "^(acknowledge|resolve|accept)$"),
    ),
    request_body = AlertChangeBody,
    responses((status = 200, description = "The alert", body = AlertView))
)]
async fn change_alert(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path((alert_id, action)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: AlertChangeBody =
        operator::parse_body(&body, r#"{"note"?: "...", "correcting_entry"?: "..."}"#)?;
    if Uuid::parse_str(&alert_id).is_err()
        || !["acknowledge", "resolve", "accept"].contains(&action.as_str())
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no alert {alert_id:?} to {action}"),
        ));
    }
    let audit_action = format!("reconciliation.alert.{action}");
    let resource = format!("reconciliation_alert:{alert_id}");
    operator::require(
        migrations.approvals.db(),
        &context,
        scope::ROUTES_WRITE,
        &audit_action,
        &resource,
    )
    .await?;
    let note = body.note.unwrap_or_default();
    let correcting_entry = body.correcting_entry.unwrap_or_default();
    let answer = migrations
        .client
        .clone()
        .change_alert(pb::ChangeAlertRequest {
            alert_id,
            action,
            requested_by: context.principal.subject.clone(),
            note: note.clone(),
            correcting_entry: correcting_entry.clone(),
        })
        .await;
    let reply = answer
        .map(|changed| AlertView::from(changed.into_inner()))
        .map_err(|status| conflict_or_upstream(status, "alert_closed"));
    let outcome = match &reply {
        Ok(view) => view.state.clone(),
        Err(error) => error.code.clone(),
    };
    crate::audit::append_alone(
        migrations.approvals.db(),
        &operator::Actor::of(&context).record(
            &audit_action,
            &resource,
            &outcome,
            json!({ "note": note, "correcting_entry": correcting_entry }),
        ),
    )
    .await?;
    let view = reply?;
    Ok((StatusCode::OK, Json(operator::to_json(&view)?)))
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(reconcile, reconciliation, alerts, change_alert),
        components(schemas(
            AlertChangeBody,
            AlertView,
            AlertEventView,
            AlertList,
            ReconcileBody,
            ReconciliationView,
            ReconciliationResultView
        ))
    )]
    struct Doc;
    <Doc as utoipa::OpenApi>::openapi()
}
