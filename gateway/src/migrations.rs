//! `/admin/v1/migrations`: moving a product's existing accounts from the legacy core to the
//! modern one (ADR 0013), through the migration component (`corebank.migration.v1`).
//!
//! A dry run is answered at once (the plan: which accounts would move, which are refused
//! and why; nothing moves). A real migration is a proposal (`migration_start`) that another
//! operator approves (scope `migrations:approve`); only the approval makes the migration
//! component start moving accounts. `GET /admin/v1/migrations/{id}` follows it, account by
//! account. One operator may pause a migration at once (a brake waits for nobody); resuming
//! it is a proposal (`migration_resume`) another operator approves.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use corebank_api::migration::v1 as pb;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::approvals::{ApprovalKind, Approvals};
use crate::error::ApiError;
use crate::operator::{self, Context, Reply};
use crate::principal::scope;
use crate::routing::Side;
use crate::upstream::api_error_of;

/// The migration component's client and the approvals a start goes through.
#[derive(Debug, Clone)]
pub struct Migrations {
    pub(crate) client: MigrationsClient<Channel>,
    pub(crate) approvals: Arc<Approvals>,
}

impl Migrations {
    pub fn new(client: MigrationsClient<Channel>, approvals: Arc<Approvals>) -> Arc<Migrations> {
        Arc::new(Migrations { client, approvals })
    }
}

/// The routes, over `migrations`.
pub fn router(migrations: Arc<Migrations>) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/migrations", post(propose).get(list))
        .route("/admin/v1/migrations/{migration_id}", get(migration))
        .route("/admin/v1/migrations/{migration_id}/pause", post(pause))
        .route(
            "/admin/v1/migrations/{migration_id}/resume",
            post(propose_resume),
        )
        .route(
            "/admin/v1/migrations/{migration_id}/accounts/{account_id}/rollback",
            post(propose_rollback),
        )
        .with_state(Arc::clone(&migrations))
        .merge(crate::reconciliation::router(migrations))
}

/// The pattern of a fraction: more than 0, at most 1, as a decimal.
fn fraction_pattern() -> String {
    "^(0\\.[0-9]{0,5}[1-9][0-9]{0,3}|1(\\.0{1,9})?)$".to_owned()
}

fn fraction_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(crate::openapi::formats::string_or_null())
        .pattern(Some(fraction_pattern()))
}

fn customers_schema() -> utoipa::openapi::schema::ArrayBuilder {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            utoipa::openapi::schema::Type::Array,
            utoipa::openapi::schema::Type::Null,
        ]))
        .items(crate::openapi::formats::text(128).min_length(Some(1)))
        .max_items(Some(CUSTOMERS_MAX))
}

/// Customers one migration may be limited to through this API: the longest such list fits
/// the gateway's request body limit (the migration component takes up to 10,000; more
/// customers go in several batches).
const CUSTOMERS_MAX: usize = 50;

/// The pattern of an error ratio: 0 to 1, as a decimal.
fn ratio_pattern() -> String {
    "^(0(\\.[0-9]{1,6})?|1(\\.0{1,6})?)$".to_owned()
}

fn ratio_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(crate::openapi::formats::string_or_null())
        .pattern(Some(ratio_pattern()))
}

/// Whether `text` is an error ratio the migration takes: 0 to 1.
fn is_ratio(text: &str) -> bool {
    let (whole, part) = text.split_once('.').unwrap_or((text, ""));
    let digits = part.len() <= 6 && part.bytes().all(|b| b.is_ascii_digit());
    let dotted_empty = text.contains('.') && part.is_empty();
    !dotted_empty
        && digits
        && match whole {
            "0" => true,
            "1" => part.bytes().all(|b| b == b'0'),
            _ => false,
        }
}

/// The most moves a second a migration may be given.
const RATE_MAX: u32 = 10_000;

fn rate_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            utoipa::openapi::schema::Type::Integer,
            utoipa::openapi::schema::Type::Null,
        ]))
        .minimum(Some(0))
        .maximum(Some(RATE_MAX))
}

/// The widest in-flight window a migration may be given.
const IN_FLIGHT_MAX: u32 = 64;

fn window_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::Array(vec![
            utoipa::openapi::schema::Type::Integer,
            utoipa::openapi::schema::Type::Null,
        ]))
        .minimum(Some(1))
        .maximum(Some(IN_FLIGHT_MAX))
}

fn code_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(crate::products::definition::code_pattern()))
}

/// Whether `text` is a fraction the migration takes: more than 0 and at most 1.
fn is_fraction(text: &str) -> bool {
    let Ok(value) = text.parse::<rust_decimal::Decimal>() else {
        return false;
    };
    text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.len() <= 11
        && value > rust_decimal::Decimal::ZERO
        && value <= rust_decimal::Decimal::ONE
}

/// `{"product_code", "fraction"?, "dry_run"?, "reason"}`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MigrationBody {
    /// The product whose legacy accounts move to the modern product of the same code.
    #[schema(schema_with = code_schema)]
    pub product_code: String,
    /// More than 0, at most 1: the accounts whose stable hash falls below it (a canary of
    /// accounts; a larger fraction later keeps these). Absent: all.
    #[schema(schema_with = fraction_schema)]
    #[serde(default)]
    pub fraction: Option<String>,
    /// Plan only: answer which accounts would move and which are refused; nothing moves,
    /// nothing needs approving.
    #[serde(default)]
    pub dry_run: bool,
    /// Only these customers' accounts (at most 50: more go in several batches). Absent:
    /// every customer's.
    #[schema(schema_with = customers_schema)]
    #[serde(default)]
    pub customer_ids: Option<Vec<String>>,
    /// Moves started a second at most (0 to 10,000). Absent or 0: as many as the in-flight
    /// window (64 moves under way) lets.
    #[schema(schema_with = rate_schema)]
    #[serde(default, deserialize_with = "crate::json_integer::optional_integer")]
    pub rate_per_s: Option<u32>,
    /// 0 to 1: the migration stops by itself once its failed or mismatched moves pass this
    /// share of those settled (taken over at least 20 moves). Absent: 0.05.
    #[schema(schema_with = ratio_schema)]
    #[serde(default)]
    pub max_error_ratio: Option<String>,
    /// Moves under way at once at most (1 to 64). Absent: 64. A smaller window shortens
    /// each move, and each account's time answering 503, when the cores are busy.
    #[schema(schema_with = window_schema)]
    #[serde(default, deserialize_with = "crate::json_integer::optional_integer")]
    pub in_flight_max: Option<u32>,
    #[schema(schema_with = operator::reason_schema)]
    pub reason: String,
}

/// One account of a migration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AccountMoveView {
    pub account_id: String,
    pub legacy_account_number: String,
    /// `planned`, `moving`, `moved`, `refused`, `failed`, `returning` (moving back to
    /// legacy) or `returned`.
    pub state: String,
    /// Why it was refused or failed: a stable code first (`account_frozen: …`).
    pub reason: String,
    /// The balance and holds it moved with (once moved; planned: as exported).
    pub posted: String,
    pub held: String,
    pub holds: u32,
    /// Its id on the modern side, once moved.
    pub modern_id: String,
}

/// A migration, account by account.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MigrationView {
    pub migration_id: String,
    pub product_code: String,
    pub fraction: String,
    pub dry_run: bool,
    pub requested_by: String,
    /// How many customers it was limited to (0: every customer's accounts).
    pub customers: u32,
    /// `running`, `paused`, `stopped` (by itself, past its error ratio), `done` or
    /// `dry_run`.
    pub status: String,
    /// How its moves are started: `running`, `paused`, `stopped` or `fed` (every planned
    /// move has started); empty for a dry run. With the last change's reason, by whom, when.
    pub control: String,
    pub control_reason: String,
    pub control_changed_by: String,
    pub control_changed_at: String,
    /// Moves started a second at most (0: no rate).
    pub rate_per_s: u32,
    /// The share of failed or mismatched moves it stops at.
    pub max_error_ratio: String,
    /// Moves under way at once at most.
    pub in_flight_max: u32,
    /// The journal number of the legacy export the plan was made from.
    pub journal: u64,
    pub planned: u64,
    pub moving: u64,
    pub moved: u64,
    pub refused: u64,
    pub failed: u64,
    pub accounts: Vec<AccountMoveView>,
    pub created_at: String,
}

impl From<pb::AccountMove> for AccountMoveView {
    fn from(a: pb::AccountMove) -> AccountMoveView {
        AccountMoveView {
            account_id: a.account_id,
            legacy_account_number: a.legacy_account_number,
            state: a.state,
            reason: a.reason,
            posted: a.posted,
            held: a.held,
            holds: a.holds,
            modern_id: a.modern_id,
        }
    }
}

impl From<pb::Migration> for MigrationView {
    fn from(m: pb::Migration) -> MigrationView {
        MigrationView {
            migration_id: m.migration_id,
            product_code: m.product_code,
            fraction: m.fraction,
            dry_run: m.dry_run,
            requested_by: m.requested_by,
            customers: m.customers,
            status: m.status,
            control: m.control,
            control_reason: m.control_reason,
            control_changed_by: m.control_changed_by,
            control_changed_at: m.control_changed_at,
            rate_per_s: m.rate_per_s,
            max_error_ratio: m.max_error_ratio,
            in_flight_max: m.in_flight_max,
            journal: m.journal,
            planned: m.planned,
            moving: m.moving,
            moved: m.moved,
            refused: m.refused,
            failed: m.failed,
            accounts: m.accounts.into_iter().map(AccountMoveView::from).collect(),
            created_at: m.created_at,
        }
    }
}

/// The migration component's request to start `migration_id`.
pub(crate) fn start_request(
    migration_id: &str,
    product_code: &str,
    fraction: &str,
    dry_run: bool,
    requested_by: &str,
    customer_ids: Vec<String>,
) -> pb::StartMigrationRequest {
    pb::StartMigrationRequest {
        migration_id: migration_id.to_owned(),
        product_code: product_code.to_owned(),
        fraction: fraction.to_owned(),
        dry_run,
        requested_by: requested_by.to_owned(),
        customer_ids,
        rate_per_s: 0,
        max_error_ratio: String::new(),
        in_flight_max: 0,
    }
}

#[utoipa::path(
    post, path = "/admin/v1/migrations", tag = "admin: migrations",
    operation_id = "propose_migration",
    summary = "Plan a migration of a product's accounts, or propose starting one",
    description = "Scope `routes:write`. The plan comes from one export of the legacy books: the product's accounts (all, or the stable hash `fraction` of them), each `planned` or `refused` with a stable code (`account_closed`, `no_modern_product`, `product_not_at_parity`, `account_moving`). With `dry_run` the plan is answered at once (200) and nothing moves. Otherwise the answer is a `migration_start` proposal (202); another operator with `migrations:approve` approves it at `/admin/v1/approvals/{id}/approve`, and only then do the accounts start moving, one saga each: channels calling a moving account get 503 `account_moving` with `Retry-After`.",
    request_body = MigrationBody,
    responses(
        (status = 200, description = "The dry run's plan", body = MigrationView),
        (status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval),
    )
)]
async fn propose(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: MigrationBody = operator::parse_body(
        &body,
        r#"{"product_code": "...", "fraction"?: "0.1", "dry_run"?: false, "rate_per_s"?: 50, "max_error_ratio"?: "0.05", "in_flight_max"?: 16, "reason": "..."}"#,
    )?;
    if !crate::products::definition::is_code(&body.product_code) {
        return Err(ApiError::invalid(format!(
            "product_code {:?} is not a product code",
            body.product_code
        )));
    }
    let fraction = body.fraction.clone().unwrap_or_default();
    if body.fraction.is_some() && !is_fraction(&fraction) {
        return Err(ApiError::invalid(format!(
            "fraction {fraction:?} is not a decimal more than 0 and at most 1"
        )));
    }
    let customer_ids = body.customer_ids.clone().unwrap_or_default();
    if customer_ids.len() > CUSTOMERS_MAX
        || customer_ids
            .iter()
            .any(|id| id.trim().is_empty() || id.chars().count() > 128)
    {
        return Err(ApiError::invalid(format!(
            "customer_ids: at most {CUSTOMERS_MAX} customer ids of 1-128 characters, not blank"
        )));
    }
    let rate_per_s = body.rate_per_s.unwrap_or_default();
    if rate_per_s > RATE_MAX {
        return Err(ApiError::invalid(format!(
            "rate_per_s {rate_per_s} is more than {RATE_MAX} moves a second"
        )));
    }
    let max_error_ratio = body.max_error_ratio.clone().unwrap_or_default();
    if body.max_error_ratio.is_some() && !is_ratio(&max_error_ratio) {
        return Err(ApiError::invalid(format!(
            "max_error_ratio {max_error_ratio:?} is not a decimal from 0 to 1"
        )));
    }
    let in_flight_max = body.in_flight_max.unwrap_or_default();
    if body.in_flight_max.is_some() && !(1..=IN_FLIGHT_MAX).contains(&in_flight_max) {
        return Err(ApiError::invalid(format!(
            "in_flight_max {in_flight_max} is not from 1 to {IN_FLIGHT_MAX}"
        )));
    }
    let migration_id = Uuid::new_v4().to_string();
    if body.dry_run {
        crate::auth::require_scope(&context.principal, scope::ROUTES_WRITE)
            .map_err(|error| error.api_error())?;
        let planned = migrations
            .client
            .clone()
            .start_migration(start_request(
                &migration_id,
                &body.product_code,
                &fraction,
                true,
                &context.principal.subject,
                customer_ids,
            ))
            .await
            .map_err(|status| api_error_of(&status, Side::Modern))?;
        let view = MigrationView::from(planned.into_inner());
        return Ok((StatusCode::OK, Json(operator::to_json(&view)?)));
    }
    crate::approvals::admin::propose(
        &migrations.approvals,
        &context,
        ApprovalKind::MigrationStart,
        &body.product_code,
        json!({
            "migration_id": migration_id,
            "fraction": fraction,
            "customer_ids": customer_ids,
            "rate_per_s": rate_per_s,
            "max_error_ratio": max_error_ratio,
            "in_flight_max": in_flight_max,
        }),
        &body.reason,
    )
    .await
}

/// The newest migrations.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MigrationList {
    /// Newest first, at most 20, each with its counts (`accounts` left empty).
    pub migrations: Vec<MigrationView>,
}

#[utoipa::path(
    get, path = "/admin/v1/migrations", tag = "admin: migrations",
    operation_id = "list_migrations",
    summary = "The newest migrations, with their counts",
    description = "Scope `routes:read`. At most 20, newest first; `GET /admin/v1/migrations/{migration_id}` has each one account by account.",
    responses((status = 200, description = "The migrations", body = MigrationList))
)]
async fn list(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
) -> Result<Json<MigrationList>, ApiError> {
    operator::reader(context, scope::ROUTES_READ)?;
    let listed = migrations
        .client
        .clone()
        .list_migrations(pb::ListMigrationsRequest { limit: 20 })
        .await
        .map_err(|status| api_error_of(&status, Side::Modern))?;
    Ok(Json(MigrationList {
        migrations: listed
            .into_inner()
            .migrations
            .into_iter()
            .map(MigrationView::from)
            .collect(),
    }))
}

#[utoipa::path(
    get, path = "/admin/v1/migrations/{migration_id}", tag = "admin: migrations",
    operation_id = "get_migration",
    summary = "A migration, account by account",
    description = "Scope `routes:read`. Each account's state (`planned`, `moving`, `moved`, `refused`, `failed`, with the reason's stable code first), its figures and its modern id once moved; `status` is `running` while any account moves. The migration's id is in the approved proposal's `parameters`.",
    params(("migration_id" = String, Path, description = "The migration's id (a UUID)")),
    responses((status = 200, description = "The migration", body = MigrationView))
)]
async fn migration(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path(migration_id): Path<String>,
) -> Result<Json<MigrationView>, ApiError> {
    operator::reader(context, scope::ROUTES_READ)?;
    migration_id_of(&migration_id)?;
    let found = migrations
        .client
        .clone()
        .get_migration(pb::GetMigrationRequest { migration_id })
        .await
        .map_err(not_found_or_upstream)?;
    Ok(Json(MigrationView::from(found.into_inner())))
}

/// `{"reason": "..."}`: why a migration is paused or resumed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    #[schema(schema_with = operator::reason_schema)]
    pub reason: String,
}

/// A migration id from the path, or 404.
fn migration_id_of(migration_id: &str) -> Result<(), ApiError> {
    match Uuid::parse_str(migration_id) {
        Ok(_) => Ok(()),
        Err(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no migration {migration_id:?}"),
        )),
    }
}

#[utoipa::path(
    post, path = "/admin/v1/migrations/{migration_id}/pause", tag = "admin: migrations",
    operation_id = "pause_migration",
    summary = "Pause a migration now",
    description = "Scope `routes:write`; no second operator: a brake waits for nobody. The migration starts no more moves; moves under way finish, so no account stays frozen or answering 503 while it waits. Pausing a paused or stopped migration answers it as it stands. 409 `migration_not_running` for a dry run, or once every planned move has started (a moved account moves back by rollback). Audited (`migration.pause`). Resuming is a proposal: `POST /admin/v1/migrations/{migration_id}/resume`.",
    params(("migration_id" = String, Path, description = "The migration's id (a UUID)")),
    request_body = ControlBody,
    responses((status = 200, description = "The migration, `paused`", body = MigrationView))
)]
async fn pause(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path(migration_id): Path<String>,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: ControlBody = operator::parse_body(&body, r#"{"reason": "..."}"#)?;
    migration_id_of(&migration_id)?;
    let resource = format!("migration:{migration_id}");
    operator::require(
        migrations.approvals.db(),
        &context,
        scope::ROUTES_WRITE,
        "migration.pause",
        &resource,
    )
    .await?;
    let reason = operator::checked_reason(&body.reason)?;
    let actor = operator::Actor::of(&context);
    let answer = migrations
        .client
        .clone()
        .pause_migration(pb::ControlMigrationRequest {
            migration_id,
            requested_by: context.principal.subject.clone(),
            reason: reason.clone(),
        })
        .await;
    let (outcome, reply) = match answer {
        Ok(paused) => {
            let view = MigrationView::from(paused.into_inner());
            ("paused".to_owned(), Ok(view))
        }
        Err(status) => {
            let error = conflict_or_upstream(status, "migration_not_running");
            (error.code.clone(), Err(error))
        }
    };
    crate::audit::append_alone(
        migrations.approvals.db(),
        &actor.record(
            "migration.pause",
            &resource,
            &outcome,
            json!({ "reason": reason }),
        ),
    )
    .await?;
    let view = reply?;
    Ok((StatusCode::OK, Json(operator::to_json(&view)?)))
}

#[utoipa::path(
    post, path = "/admin/v1/migrations/{migration_id}/resume", tag = "admin: migrations",
    operation_id = "propose_resume",
    summary = "Propose resuming a paused or stopped migration",
    description = "Scope `routes:write`. The answer is a `migration_resume` proposal (202); another operator with `migrations:approve` approves it at `/admin/v1/approvals/{id}/approve`, and only then does the migration start its planned moves again (a migration that stopped by itself past its error ratio starts again with its counts as they are: look at its failed accounts first). The approval answers the owner's refusal `migration_not_running` for a dry run.",
    params(("migration_id" = String, Path, description = "The migration's id (a UUID)")),
    request_body = ControlBody,
    responses((status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval))
)]
async fn propose_resume(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path(migration_id): Path<String>,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: ControlBody = operator::parse_body(&body, r#"{"reason": "..."}"#)?;
    migration_id_of(&migration_id)?;
    crate::approvals::admin::propose(
        &migrations.approvals,
        &context,
        ApprovalKind::MigrationResume,
        &migration_id,
        json!({}),
        &body.reason,
    )
    .await
}

/// `{"reason": "..."}`: why the account moves back.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    #[schema(schema_with = operator::reason_schema)]
    pub reason: String,
}

#[utoipa::path(
    post, path = "/admin/v1/migrations/{migration_id}/accounts/{account_id}/rollback",
    tag = "admin: migrations", operation_id = "propose_rollback",
    summary = "Propose moving one moved account back to the legacy core",
    description = "Scope `routes:write`. The answer is a `migration_rollback` proposal (202); another operator with `migrations:approve` approves it at `/admin/v1/approvals/{id}/approve`, and only then does the account move back, in a saga of its own: the modern account's holds released and its balance swept to migration clearing and closed, the legacy account refunded from suspense with its holds placed again, the gateway serving it from legacy. Channels calling it meanwhile get 503 `account_moving`. The approval answers the owner's refusal `account_not_moved` when the account is not moved in that migration (or moved back already); an overdrawn account is not moved back (its state says `return refused`).",
    params(
        ("migration_id" = String, Path, description = "The migration's id (a UUID)"),
        ("account_id" = String, Path, description = "The account's id (a UUID)"),
    ),
    request_body = RollbackBody,
    responses((status = 202, description = "The proposal, `pending`", body = crate::approvals::Approval))
)]
async fn propose_rollback(
    State(migrations): State<Arc<Migrations>>,
    context: Context,
    Path((migration_id, account_id)): Path<(String, String)>,
    body: Bytes,
) -> Reply {
    let context = operator::authenticated(context)?;
    let body: RollbackBody = operator::parse_body(&body, r#"{"reason": "..."}"#)?;
    if Uuid::parse_str(&migration_id).is_err() || Uuid::parse_str(&account_id).is_err() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no account {account_id:?} in a migration {migration_id:?}"),
        ));
    }
    crate::approvals::admin::propose(
        &migrations.approvals,
        &context,
        ApprovalKind::MigrationRollback,
        &account_id,
        json!({ "migration_id": migration_id }),
        &body.reason,
    )
    .await
}

/// The migration component's refusal of a change in the state it is in (gRPC
/// `FailedPrecondition`) as 409 `code`; its other answers as [`not_found_or_upstream`].
pub(crate) fn conflict_or_upstream(status: tonic::Status, code: &str) -> ApiError {
    match status.code() {
        tonic::Code::FailedPrecondition => {
            ApiError::new(StatusCode::CONFLICT, code, status.message().to_owned())
        }
        _ => not_found_or_upstream(status),
    }
}

/// The migration component's answer as the gateway's error: its unknown ids are 404
/// `not_found`.
pub(crate) fn not_found_or_upstream(status: tonic::Status) -> ApiError {
    match status.code() {
        tonic::Code::NotFound => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            status.message().to_owned(),
        ),
        _ => api_error_of(&status, Side::Modern),
    }
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    #[derive(utoipa::OpenApi)]
    #[openapi(
        paths(propose, list, migration, pause, propose_resume, propose_rollback),
        components(schemas(
            ControlBody,
            RollbackBody,
            MigrationBody,
            MigrationView,
            MigrationList,
            AccountMoveView
        ))
    )]
    struct Doc;
    let mut document = <Doc as utoipa::OpenApi>::openapi();
    document.merge(crate::reconciliation::openapi());
    document
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fraction_is_more_than_zero_and_at_most_one_and_matches_its_pattern() {
        let pattern = regex::Regex::new(&fraction_pattern()).unwrap();
        for good in ["0.1", "0.05", "1", "1.0", "0.5"] {
            assert!(is_fraction(good), "{good}");
            assert!(pattern.is_match(good), "{good}");
        }
        for bad in ["0", "0.0", "1.5", "-0.1", "a", "2", ".5"] {
            assert!(!is_fraction(bad) || !pattern.is_match(bad), "{bad}");
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }

    #[test]
    fn an_error_ratio_is_from_zero_to_one() {
        let pattern = regex::Regex::new(&ratio_pattern()).unwrap();
        for good in ["0", "0.05", "1", "1.0", "0.000001"] {
            assert!(is_ratio(good), "{good}");
            assert!(pattern.is_match(good), "{good}");
        }
        for bad in [
            "",
            "1.5",
            "-0.1",
            "a",
            "2",
            ".5",
            "0.0000001",
            "0.05 ",
            "0.",
            "1.01",
        ] {
            assert!(!is_ratio(bad), "{bad}");
            assert!(!pattern.is_match(bad), "{bad}");
        }
    }
}
