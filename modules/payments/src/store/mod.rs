//! SQL for the `payments` schema, and nothing else.

pub mod cancels;
pub mod reviews;

use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::{Transaction, TxError};
use uuid::Uuid;

use crate::domain::error::PaymentsError;
use crate::domain::payment::PaymentRecord;
use crate::rail_signature::VerifiedDelivery;

pub type StoreResult<T> = Result<T, TxError<PaymentsError>>;

const COLUMNS: &str = "id, request_id, direction, status, debtor_account_id, debtor_name, \
     creditor_name, creditor_account, creditor_agent_bic, amount, currency, end_to_end_id, uetr, \
     remittance_information, reason, content, created_at, updated_at";

fn record(row: &Row) -> PaymentRecord {
    PaymentRecord {
        id: row.get("id"),
        request_id: row.get("request_id"),
        direction: row.get("direction"),
        status: row.get("status"),
        debtor_account_id: row.get("debtor_account_id"),
        debtor_name: row.get("debtor_name"),
        creditor_name: row.get("creditor_name"),
        creditor_account: row.get("creditor_account"),
        creditor_agent_bic: row.get("creditor_agent_bic"),
        amount: row.get("amount"),
        currency: row.get("currency"),
        end_to_end_id: row.get("end_to_end_id"),
        uetr: row.get("uetr"),
        remittance_information: row.get("remittance_information"),
        reason: row.get("reason"),
        content: row.get("content"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

/// Inserts a payment unless one exists with its request id (or UETR and direction);
/// returns the one stored.
pub async fn insert(
    tx: &Transaction<'_>,
    payment: &PaymentRecord,
) -> StoreResult<(PaymentRecord, bool)> {
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO payments ({COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18) \
                 ON CONFLICT DO NOTHING"
            ),
            &[
                &payment.id,
                &payment.request_id,
                &payment.direction,
                &payment.status,
                &payment.debtor_account_id,
                &payment.debtor_name,
                &payment.creditor_name,
                &payment.creditor_account,
                &payment.creditor_agent_bic,
                &payment.amount,
                &payment.currency,
                &payment.end_to_end_id,
                &payment.uetr,
                &payment.remittance_information,
                &payment.reason,
                &payment.content,
                &payment.created_at,
                &payment.updated_at,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok((payment.clone(), true));
    }
    let existing = tx
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM payments WHERE request_id = $1 \
                 OR (uetr = $2 AND direction = $3) LIMIT 1"
            ),
            &[&payment.request_id, &payment.uetr, &payment.direction],
        )
        .await?
        .ok_or_else(|| {
            TxError::Abort(PaymentsError::Internal {
                message: "a payment conflicted and then could not be found".to_owned(),
            })
        })?;
    Ok((record(&existing), false))
}

pub async fn by_id(tx: &Transaction<'_>, id: Uuid) -> StoreResult<Option<PaymentRecord>> {
    Ok(tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM payments WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(record))
}

pub async fn set_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE payments SET status = $2, reason = $3, updated_at = $4 WHERE id = $1",
        &[&id, &status, &reason, &at],
    )
    .await?;
    Ok(())
}

/// Outbound payments from an account since a time that were not refused, failed or
/// cancelled (velocity screening): a payment screening refused must not use up the
/// account's allowance, or one refusal would lead to more.
pub async fn count_since(
    tx: &Transaction<'_>,
    debtor_account_id: &str,
    since: DateTime<Utc>,
) -> StoreResult<i64> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM payments WHERE debtor_account_id = $1 AND direction = 'outbound' \
             AND created_at >= $2 AND status NOT IN ('failed', 'rejected', 'cancelled')",
            &[&debtor_account_id, &since],
        )
        .await?
        .get(0))
}

/// The blocklist's reason for any of `entries`.
pub async fn blocklisted(tx: &Transaction<'_>, entries: &[String]) -> StoreResult<Option<String>> {
    Ok(tx
        .query_opt(
            "SELECT reason FROM blocklist WHERE entry = ANY($1) ORDER BY entry LIMIT 1",
            &[&entries],
        )
        .await?
        .map(|row| row.get(0)))
}

pub async fn add_to_blocklist(
    tx: &Transaction<'_>,
    entry: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO blocklist (entry, reason, added_at) VALUES ($1, $2, $3) \
         ON CONFLICT (entry) DO UPDATE SET reason = excluded.reason",
        &[&entry, &reason, &at],
    )
    .await?;
    Ok(())
}

/// Records a pacs.002 (the first one for a UETR wins).
pub async fn insert_status_report(
    tx: &Transaction<'_>,
    uetr: Uuid,
    status: &str,
    reason: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO status_reports (uetr, status, reason, received_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (uetr) DO NOTHING",
        &[&uetr, &status, &reason, &at],
    )
    .await?;
    Ok(())
}

pub async fn status_report(
    tx: &Transaction<'_>,
    uetr: Uuid,
) -> StoreResult<Option<(String, String)>> {
    Ok(tx
        .query_opt(
            "SELECT status, reason FROM status_reports WHERE uetr = $1",
            &[&uetr],
        )
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

/// Records a signed delivery from the rail; `false` when its delivery id was taken before
/// (a replay). Concurrent copies of one delivery meet on the primary key: one inserts, the
/// others find its row.
pub async fn record_rail_delivery(
    tx: &Transaction<'_>,
    delivery: &VerifiedDelivery,
    received_at: DateTime<Utc>,
) -> StoreResult<bool> {
    let inserted = tx
        .execute(
            "INSERT INTO rail_deliveries (delivery_id, key_id, signed_at, received_at, path) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (delivery_id) DO NOTHING",
            &[
                &delivery.delivery_id(),
                &delivery.key_id(),
                &delivery.signed_at(),
                &received_at,
                &delivery.path(),
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Forgets at most `rows_max` of the oldest deliveries received before `before`; returns
/// how many went.
pub async fn purge_rail_deliveries(
    tx: &Transaction<'_>,
    before: DateTime<Utc>,
    rows_max: i64,
) -> StoreResult<u64> {
    Ok(tx
        .execute(
            "DELETE FROM rail_deliveries WHERE delivery_id IN (\
                 SELECT delivery_id FROM rail_deliveries WHERE received_at < $1 \
                 ORDER BY received_at LIMIT $2)",
            &[&before, &rows_max],
        )
        .await?)
}
