//! SQL for `cancel_requests`: cancellations by request id.

use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::{Transaction, TxError};
use uuid::Uuid;

use super::StoreResult;
use crate::domain::error::PaymentsError;

/// Where a cancellation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelState {
    /// Claimed; the saga may or may not have been told yet.
    Pending,
    /// The saga was told: the payment is unwinding or unwound.
    Cancelled,
}

impl CancelState {
    fn as_str(self) -> &'static str {
        match self {
            CancelState::Pending => "pending",
            CancelState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<CancelState, TxError<PaymentsError>> {
        match text {
            "pending" => Ok(CancelState::Pending),
            "cancelled" => Ok(CancelState::Cancelled),
            other => Err(TxError::Abort(PaymentsError::Internal {
                message: format!("a cancel request is stored in an unknown state {other:?}"),
            })),
        }
    }
}

/// A cancellation as asked and stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelRequest {
    pub request_id: Uuid,
    pub payment_id: Uuid,
    pub reason: String,
    pub state: CancelState,
}

fn request(row: &Row) -> StoreResult<CancelRequest> {
    Ok(CancelRequest {
        request_id: row.get("request_id"),
        payment_id: row.get("payment_id"),
        reason: row.get("reason"),
        state: CancelState::parse(row.get("state"))?,
    })
}

/// Claims `asked.request_id` as pending unless it was claimed before; returns the stored
/// request and whether this call claimed it.
pub async fn claim(
    tx: &Transaction<'_>,
    asked: &CancelRequest,
    at: DateTime<Utc>,
) -> StoreResult<(CancelRequest, bool)> {
    let inserted = tx
        .execute(
            "INSERT INTO cancel_requests (request_id, payment_id, reason, state, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING",
            &[
                &asked.request_id,
                &asked.payment_id,
                &asked.reason,
                &CancelState::Pending.as_str(),
                &at,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok((asked.clone(), true));
    }
    let row = tx
        .query_one(
            "SELECT request_id, payment_id, reason, state FROM cancel_requests \
             WHERE request_id = $1",
            &[&asked.request_id],
        )
        .await?;
    Ok((request(&row)?, false))
}

/// Frees a claim whose cancellation was refused (nothing changed).
pub async fn drop_pending(tx: &Transaction<'_>, request_id: Uuid) -> StoreResult<()> {
    tx.execute(
        "DELETE FROM cancel_requests WHERE request_id = $1 AND state = 'pending'",
        &[&request_id],
    )
    .await?;
    Ok(())
}

pub async fn mark_cancelled(tx: &Transaction<'_>, request_id: Uuid) -> StoreResult<()> {
    tx.execute(
        "UPDATE cancel_requests SET state = 'cancelled' WHERE request_id = $1",
        &[&request_id],
    )
    .await?;
    Ok(())
}
