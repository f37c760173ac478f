//! The SQL of `gateway.approvals`: four-eyes proposals of operator actions.

use chrono::{DateTime, Utc};
use corebank_db::Transaction;
use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::tokio_postgres::{Error, Row};
use uuid::Uuid;

use super::{Approval, ApprovalKind, ApprovalStatus};

const COLUMNS: &str = "id, kind, target, parameters, reason, proposed_by, proposed_at, \
                       expires_at, status, decided_by, decided_at, decision_reason, outcome";

fn approval_of(row: &Row) -> Result<Approval, Error> {
    let kind: String = row.try_get("kind")?;
    let status: String = row.try_get("status")?;
    Ok(Approval {
        id: row.try_get("id")?,
        // The table's CHECK constraints admit only the names these parse.
        kind: ApprovalKind::parse(&kind).unwrap_or(ApprovalKind::SagaForceCompensate),
        target: row.try_get("target")?,
        parameters: row.try_get("parameters")?,
        reason: row.try_get("reason")?,
        proposed_by: row.try_get("proposed_by")?,
        proposed_at: row.try_get("proposed_at")?,
        expires_at: row.try_get("expires_at")?,
        status: ApprovalStatus::parse(&status).unwrap_or(ApprovalStatus::Pending),
        decided_by: row.try_get("decided_by")?,
        decided_at: row.try_get("decided_at")?,
        decision_reason: row.try_get("decision_reason")?,
        outcome: row.try_get("outcome")?,
    })
}

pub(super) async fn insert(tx: &Transaction<'_>, approval: &Approval) -> Result<(), Error> {
    tx.execute(
        "INSERT INTO approvals (id, kind, target, parameters, reason, proposed_by, proposed_at, \
         expires_at, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &approval.id,
            &approval.kind.name(),
            &approval.target,
            &approval.parameters,
            &approval.reason,
            &approval.proposed_by,
            &approval.proposed_at,
            &approval.expires_at,
            &approval.status.name(),
        ],
    )
    .await?;
    Ok(())
}

pub(super) async fn for_update(tx: &Transaction<'_>, id: Uuid) -> Result<Option<Approval>, Error> {
    by_id(tx, id, " FOR UPDATE").await
}

pub(super) async fn one(tx: &Transaction<'_>, id: Uuid) -> Result<Option<Approval>, Error> {
    by_id(tx, id, "").await
}

/// Proposal `id`, read with `locking` (empty, or a locking clause).
async fn by_id(tx: &Transaction<'_>, id: Uuid, locking: &str) -> Result<Option<Approval>, Error> {
    let row = tx
        .query_opt(
            &format!("SELECT {COLUMNS} FROM approvals WHERE id = $1{locking}"),
            &[&id],
        )
        .await?;
    row.as_ref().map(approval_of).transpose()
}

/// Proposals with `status` as of `now` (a pending one past its expiry counts as expired),
/// oldest first.
pub(super) async fn list(
    tx: &Transaction<'_>,
    status: Option<ApprovalStatus>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Approval>, Error> {
    // `$1` is the limit; `$2`, when the filter needs it, `now` or the status.
    let status_name = status.map(ApprovalStatus::name);
    let (condition, filter_parameter): (&str, Option<&(dyn ToSql + Sync)>) = match status {
        None => ("", None),
        Some(ApprovalStatus::Pending) => {
            ("WHERE status = 'pending' AND expires_at > $2", Some(&now))
        }
        Some(ApprovalStatus::Expired) => (
            "WHERE status = 'expired' OR (status = 'pending' AND expires_at <= $2)",
            Some(&now),
        ),
        Some(ApprovalStatus::Approved | ApprovalStatus::Rejected) => {
            ("WHERE status = $2", Some(&status_name))
        }
    };
    let mut parameters: Vec<&(dyn ToSql + Sync)> = vec![&limit];
    parameters.extend(filter_parameter);
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM approvals {condition} ORDER BY proposed_at, id LIMIT $1"
            ),
            &parameters,
        )
        .await?;
    rows.iter()
        .map(|row| approval_of(row).map(|approval| approval.as_of(now)))
        .collect()
}

/// The proposals on `target` (a saga's or a payment's id), oldest first; at most `limit`.
pub(super) async fn for_target(
    tx: &Transaction<'_>,
    target: &str,
    limit: i64,
) -> Result<Vec<Approval>, Error> {
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM approvals WHERE target = $1 ORDER BY proposed_at, id LIMIT $2"
            ),
            &[&target, &limit],
        )
        .await?;
    rows.iter().map(approval_of).collect()
}

/// Records a decision: `status` by `decided_by` at `at`, with the decider's reason.
pub(super) async fn decide(
    tx: &Transaction<'_>,
    id: Uuid,
    status: ApprovalStatus,
    decided_by: Option<&str>,
    at: DateTime<Utc>,
    reason: Option<&str>,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE approvals SET status = $2, decided_by = $3, decided_at = $4, \
         decision_reason = $5 WHERE id = $1",
        &[&id, &status.name(), &decided_by, &at, &reason],
    )
    .await?;
    Ok(())
}

/// Records the owner's answer to an approved proposal's call.
pub(super) async fn set_outcome(
    tx: &Transaction<'_>,
    id: Uuid,
    outcome: &str,
) -> Result<(), Error> {
    tx.execute(
        "UPDATE approvals SET outcome = $2 WHERE id = $1",
        &[&id, &outcome],
    )
    .await?;
    Ok(())
}
