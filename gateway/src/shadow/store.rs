//! The shadow comparison's SQL (`gateway.shadow_mismatches`). Every function runs inside
//! the caller's `run_tx` transaction; none has a side effect outside it.

use chrono::{DateTime, Utc};
use corebank_db::{Transaction, TxError};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use crate::error::ApiError;

pub(crate) type TxResult<T> = Result<T, TxError<ApiError>>;

/// One stored mismatch, its payloads already redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub product: String,
    pub operation: String,
    pub primary_side: String,
    pub shadow_side: String,
    pub request_id: String,
    pub primary_status: i64,
    pub shadow_status: i64,
    /// `path: primary vs shadow`, one per differing path.
    pub differences: Value,
    pub primary_answer: Value,
    pub shadow_answer: Value,
}

pub(crate) async fn insert(tx: &Transaction<'_>, mismatch: &Mismatch) -> TxResult<()> {
    tx.execute(
        "INSERT INTO shadow_mismatches (id, at, product, operation, primary_side, shadow_side, \
         request_id, primary_status, shadow_status, differences, primary_answer, shadow_answer) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        &[
            &mismatch.id,
            &mismatch.at,
            &mismatch.product,
            &mismatch.operation,
            &mismatch.primary_side,
            &mismatch.shadow_side,
            &mismatch.request_id,
            &mismatch.primary_status,
            &mismatch.shadow_status,
            &mismatch.differences,
            &mismatch.primary_answer,
            &mismatch.shadow_answer,
        ],
    )
    .await?;
    Ok(())
}

/// What the admin listing asks for.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub product: Option<String>,
    pub operation: Option<String>,
    /// Only mismatches older than this one (keyset paging, newest first).
    pub before: Option<Uuid>,
    pub limit: i64,
}

/// Mismatches newest first (ties broken by id), filtered.
pub(crate) async fn list(tx: &Transaction<'_>, filter: &Filter) -> TxResult<Vec<Mismatch>> {
    let rows = tx
        .query(
            "SELECT id, at, product, operation, primary_side, shadow_side, request_id, \
             primary_status, shadow_status, differences, primary_answer, shadow_answer \
             FROM shadow_mismatches \
             WHERE ($1::TEXT IS NULL OR product = $1) \
               AND ($2::TEXT IS NULL OR operation = $2) \
               AND ($3::UUID IS NULL OR (at, id) < \
                    (SELECT at, id FROM shadow_mismatches WHERE id = $3)) \
             ORDER BY at DESC, id DESC LIMIT $4",
            &[
                &filter.product,
                &filter.operation,
                &filter.before,
                &filter.limit,
            ],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Mismatch {
                id: row.try_get("id")?,
                at: row.try_get("at")?,
                product: row.try_get("product")?,
                operation: row.try_get("operation")?,
                primary_side: row.try_get("primary_side")?,
                shadow_side: row.try_get("shadow_side")?,
                request_id: row.try_get("request_id")?,
                primary_status: row.try_get("primary_status")?,
                shadow_status: row.try_get("shadow_status")?,
                differences: row.try_get("differences")?,
                primary_answer: row.try_get("primary_answer")?,
                shadow_answer: row.try_get("shadow_answer")?,
            })
        })
        .collect()
}

/// Deletes at most `rows_max` mismatches recorded before `cutoff`; answers how many.
pub(crate) async fn prune(
    tx: &Transaction<'_>,
    cutoff: DateTime<Utc>,
    rows_max: i64,
) -> TxResult<u64> {
    let deleted = tx
        .execute(
            "DELETE FROM shadow_mismatches WHERE id IN \
             (SELECT id FROM shadow_mismatches WHERE at < $1 ORDER BY at LIMIT $2)",
            &[&cutoff, &rows_max],
        )
        .await?;
    Ok(deleted)
}
