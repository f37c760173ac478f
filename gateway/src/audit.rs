//! The audit trail (`gateway.audit_log`): who did what to which resource, when, from where,
//! with what outcome and which route decision. Written in the same transaction as what it
//! records; append-only.

use chrono::{DateTime, Utc};
use corebank_db::Transaction;
use uuid::Uuid;

/// One audit record.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub at: DateTime<Utc>,
    /// The principal's subject, or `anonymous` for a refused authentication.
    pub actor: String,
    /// `channel`, `admin` or `audit`.
    pub surface: String,
    /// e.g. `POST /v1/transfers`, `routes.propose`, `auth.refused`.
    pub action: String,
    /// What was acted on, e.g. an account id or a route rule.
    pub resource: String,
    /// The client's address.
    pub origin: String,
    /// e.g. `201`, `approved`, or a refusal code.
    pub outcome: String,
    pub request_id: String,
    /// The route decision (side, rule version), when one was made.
    pub route: Option<serde_json::Value>,
    pub details: serde_json::Value,
}

/// Appends `record` in the caller's transaction.
pub async fn append(
    tx: &Transaction<'_>,
    record: &AuditRecord,
) -> Result<(), corebank_db::tokio_postgres::Error> {
    tx.execute(
        "INSERT INTO audit_log (id, at, actor, surface, action, resource, origin, outcome, \
         request_id, route, details) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &Uuid::new_v4(),
            &record.at,
            &record.actor,
            &record.surface,
            &record.action,
            &record.resource,
            &record.origin,
            &record.outcome,
            &record.request_id,
            &record.route,
            &record.details,
        ],
    )
    .await?;
    Ok(())
}

/// Appends `record` in a transaction of its own (what is recorded changed nothing, e.g. a
/// refused authentication).
pub async fn append_alone(
    db: &corebank_db::Db,
    record: &AuditRecord,
) -> Result<(), corebank_db::DbError> {
    db.run_tx("gateway_audit_append", |tx| {
        Box::pin(async move {
            append(&tx, record).await?;
            Ok::<_, corebank_db::TxError<std::convert::Infallible>>(())
        })
    })
    .await
    .map_err(|error| match error {
        corebank_db::TxError::Db(error) => error,
        corebank_db::TxError::Abort(never) => match never {},
    })
}
