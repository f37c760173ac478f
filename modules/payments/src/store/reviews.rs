//! SQL for `screening_reviews`: payments held by sanctions screening, and the decision on
//! each.

use chrono::{DateTime, Utc};
use corebank_db::Transaction;
use corebank_db::tokio_postgres::Row;
use serde_json::Value;
use uuid::Uuid;

use super::StoreResult;

/// A payment held for review, with its decision once taken.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreeningReview {
    pub payment_id: Uuid,
    pub direction: String,
    pub screened_name: String,
    pub hits: Value,
    pub held_at: DateTime<Utc>,
    /// `release`, `refuse`, or empty while the payment waits.
    pub decision: String,
    pub proposed_by: String,
    pub approved_by: String,
    pub reason: String,
    pub decided_at: Option<DateTime<Utc>>,
}

fn review(row: &Row) -> ScreeningReview {
    ScreeningReview {
        payment_id: row.get("payment_id"),
        direction: row.get("direction"),
        screened_name: row.get("screened_name"),
        hits: row.get("hits"),
        held_at: row.get("held_at"),
        decision: row.get("decision"),
        proposed_by: row.get("proposed_by"),
        approved_by: row.get("approved_by"),
        reason: row.get("reason"),
        decided_at: row.get("decided_at"),
    }
}

const COLUMNS: &str = "payment_id, direction, screened_name, hits, held_at, decision, \
     proposed_by, approved_by, reason, decided_at";

/// Holds `payment_id` for review; a second hold of the same payment (a retried step)
/// changes nothing.
pub async fn hold(
    tx: &Transaction<'_>,
    payment_id: Uuid,
    direction: &str,
    screened_name: &str,
    hits: &Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO screening_reviews (payment_id, direction, screened_name, hits, held_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING",
        &[&payment_id, &direction, &screened_name, hits, &at],
    )
    .await?;
    Ok(())
}

/// The review of `payment_id`, if screening held it.
pub async fn get(tx: &Transaction<'_>, payment_id: Uuid) -> StoreResult<Option<ScreeningReview>> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM screening_reviews WHERE payment_id = $1"),
            &[&payment_id],
        )
        .await?;
    Ok(row.as_ref().map(review))
}

/// Records the decision on a payment still waiting; whether it was waiting.
pub async fn decide(tx: &Transaction<'_>, decided: &ScreeningReview) -> StoreResult<bool> {
    let changed = tx
        .execute(
            "UPDATE screening_reviews SET decision = $2, proposed_by = $3, approved_by = $4, \
             reason = $5, decided_at = $6 WHERE payment_id = $1 AND decision = ''",
            &[
                &decided.payment_id,
                &decided.decision,
                &decided.proposed_by,
                &decided.approved_by,
                &decided.reason,
                &decided.decided_at,
            ],
        )
        .await?;
    Ok(changed == 1)
}
