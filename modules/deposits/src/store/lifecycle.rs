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

/// A request about to reach the ledger, to be settled if its answer never comes.
pub async fn note_in_doubt(
    tx: &Transaction<'_>,
    request_id: Uuid,
    kind: &str,
    content: &serde_json::Value,
    entry_id: Uuid,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO requests_in_doubt (request_id, kind, content, entry_id, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING",
        &[&request_id, &kind, content, &entry_id, &at],
    )
    .await?;
    Ok(())
}

/// The request is answered or definitely refused: no longer in doubt.
pub async fn forget_in_doubt(tx: &Transaction<'_>, request_id: Uuid) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM requests_in_doubt WHERE request_id = $1",
        &[&request_id],
    )
    .await?;
    Ok(())
}

/// A request in doubt: id, kind, content, ledger entry id.
pub type InDoubt = (Uuid, String, serde_json::Value, Uuid);

/// Requests in doubt since before `before`, oldest first, `limit` at a time.
pub async fn in_doubt_before(
    tx: &Transaction<'_>,
    before: DateTime<Utc>,
    limit: i64,
) -> StoreResult<Vec<InDoubt>> {
    let rows = tx
        .query(
            "SELECT request_id, kind, content, entry_id FROM requests_in_doubt \
             WHERE created_at < $1 ORDER BY created_at LIMIT $2",
            &[&before, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect())
}
