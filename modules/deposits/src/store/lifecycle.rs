//! SQL for an account's status changes, which are conditional (compare-and-set on the
//! status the caller saw), and for the choices a request pins on its first attempt.

use chrono::{DateTime, Utc};
use corebank_db::Transaction;
use uuid::Uuid;

use super::StoreResult;
use crate::domain::model::AccountStatus;

/// Moves an account from `expected` to `status` (and stamps `closed_at` when given), only if
/// it is still `expected`: false when it is not (someone changed it meanwhile).
pub async fn change_status(
    tx: &Transaction<'_>,
    id: Uuid,
    expected: AccountStatus,
    status: AccountStatus,
    closed_at: Option<DateTime<Utc>>,
) -> StoreResult<bool> {
    Ok(tx
        .execute(
            "UPDATE accounts SET status = $3, closed_at = coalesce($4, closed_at) \
             WHERE id = $1 AND status = $2",
            &[&id, &expected.as_str(), &status.as_str(), &closed_at],
        )
        .await?
        == 1)
}

/// The product version the first attempt of `request_id` chose: `chosen` when this is the
/// first attempt, the earlier choice otherwise (a request pins one product code).
pub async fn pin_product_version(
    tx: &Transaction<'_>,
    request_id: Uuid,
    product_code: &str,
    chosen: i64,
    at: DateTime<Utc>,
) -> StoreResult<(String, i64)> {
    tx.execute(
        "INSERT INTO request_pins (request_id, product_code, product_version, created_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
        &[&request_id, &product_code, &chosen, &at],
    )
    .await?;
    let row = tx
        .query_one(
            "SELECT product_code, product_version FROM request_pins WHERE request_id = $1",
            &[&request_id],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
