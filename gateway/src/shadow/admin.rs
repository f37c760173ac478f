//! The shadow part of the admin API: `GET /admin/v1/shadow` (scope `routes:read`) lists the
//! stored mismatches newest first (paged with `limit` and `before`, filtered by `product`
//! and `operation`) and summarises this replica's counts per product and operation.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Shadow, store};
use crate::error::ApiError;
use crate::operator::{self, Context, Reply};
use crate::principal::scope;

/// Mismatches in one listing: the default and the most a caller may ask for.
const PAGE_SIZE_DEFAULT: i64 = 50;
const PAGE_SIZE_MAX: i64 = 500;

pub(super) fn routes(shadow: Shadow) -> axum::Router {
    axum::Router::new()
        .route("/admin/v1/shadow", get(list))
        .with_state(shadow)
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(list))]
struct ShadowApi;

impl Shadow {
    /// The `/admin/v1/shadow` part of the API reference.
    pub fn admin_openapi() -> utoipa::openapi::OpenApi {
        <ShadowApi as utoipa::OpenApi>::openapi()
    }
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    product: Option<String>,
    operation: Option<String>,
    limit: Option<String>,
    before: Option<String>,
}

#[utoipa::path(
    get, path = "/admin/v1/shadow", tag = "admin: shadow", operation_id = "list_shadow_mismatches",
    summary = "Shadow mismatches and counts",
    description = "Scope `routes:read`. Stored mismatches newest first (personal data redacted), and this replica's counts per product and operation.",
    params(
        ("product" = Option<String>, Query, description = "Only this product"),
        ("operation" = Option<String>, Query, description = "Only this operation"),
        ("limit" = Option<i64>, Query, description = "1 to 500; 50 when absent", minimum = 1, maximum = 500),
        ("before" = Option<String>, Query, format = Uuid, description = "The previous page's `next_before` (a mismatch id)"),
    ),
    responses((status = 200, description = "`{mismatches, next_before, summary, summary_scope}`", body = serde_json::Value))
)]
async fn list(
    State(shadow): State<Shadow>,
    context: Context,
    Query(query): Query<ListQuery>,
) -> Reply {
    operator::reader(context, scope::ROUTES_READ)?;
    let limit = match query.limit.as_deref() {
        None => PAGE_SIZE_DEFAULT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|limit| (1..=PAGE_SIZE_MAX).contains(limit))
            .ok_or_else(|| {
                ApiError::invalid(format!("limit: must be a number from 1 to {PAGE_SIZE_MAX}"))
            })?,
    };
    let before = query
        .before
        .as_deref()
        .map(|text| {
            Uuid::parse_str(text)
                .map_err(|_| ApiError::invalid("before: must be the id of a listed mismatch"))
        })
        .transpose()?;
    let empty_to_none = |text: Option<String>| text.filter(|text| !text.is_empty());
    let filter = store::Filter {
        product: empty_to_none(query.product),
        operation: empty_to_none(query.operation),
        before,
        limit,
    };
    let filter_ref = &filter;
    let mismatches = shadow
        .db()
        .run_tx("gateway_shadow_admin_list", |tx| {
            Box::pin(async move { store::list(&tx, filter_ref).await })
        })
        .await
        .map_err(ApiError::from)?;
    let next_before = (i64::try_from(mismatches.len()).unwrap_or(i64::MAX) == limit)
        .then(|| mismatches.last().map(|last| last.id))
        .flatten();
    let summary: Vec<Value> = shadow
        .counts()
        .into_iter()
        .filter(|((product, operation), _)| {
            filter
                .product
                .as_ref()
                .is_none_or(|wanted| wanted == product)
                && filter
                    .operation
                    .as_ref()
                    .is_none_or(|wanted| wanted == operation)
        })
        .map(|((product, operation), counts)| {
            json!({
                "product": product,
                "operation": operation,
                "compared": counts.compared,
                "matched": counts.matched,
                "mismatched": counts.mismatched,
                "dropped": counts.dropped,
                "shadow_errors": counts.shadow_errors,
                "automatic_rollbacks": counts.automatic_rollbacks,
            })
        })
        .collect();
    let mismatches = serde_json::to_value(&mismatches).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        Json(json!({
            "mismatches": mismatches,
            "next_before": next_before,
            "summary": summary,
            "summary_scope": "this gateway replica since it started; \
                              the Prometheus counters add up every replica",
        })),
    ))
}
