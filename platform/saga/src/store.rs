//! SQL for the saga tables, in whichever schema the caller's connection points at (the
//! owning module's). Every change of a saga the executor makes is fenced: it names the
//! lease generation it holds, and changes nothing if another executor took the saga over.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::{Transaction, TxError};
use serde_json::Value;
use uuid::Uuid;

use crate::SagaError;

pub type StoreResult<T> = Result<T, TxError<SagaError>>;

/// Where a saga is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Running,
    Compensating,
    Completed,
    Compensated,
    Paused,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Running,
        Status::Compensating,
        Status::Completed,
        Status::Compensated,
        Status::Paused,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Compensating => "compensating",
            Status::Completed => "completed",
            Status::Compensated => "compensated",
            Status::Paused => "paused",
        }
    }

    /// Completed or compensated: nothing more will happen.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Compensated)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = SagaError;
    fn from_str(s: &str) -> Result<Status, SagaError> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| SagaError::InvalidArgument {
                field: "status",
                message: format!(
                    "{s:?} is not a saga status (running, compensating, completed, compensated, paused)"
                ),
            })
    }
}

/// The durable state of one saga.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaInstance {
    pub id: Uuid,
    pub saga_type: String,
    pub version: i64,
    pub status: Status,
    pub input: Value,
    pub outputs: BTreeMap<String, Value>,
    /// Running: how many steps have completed (the next to do). Compensating: how many
    /// completed steps are still to undo (the next to undo is the one before).
    pub current_step: usize,
    /// Attempts made at the current step in the current direction.
    pub attempts: u32,
    /// The last attempt's outcome was unknown: the step's query runs first.
    pub awaiting_query: bool,
    pub next_attempt_at: DateTime<Utc>,
    pub lease_owner: String,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub generation: i64,
    /// Bumped by every write of the state: a write names the revision it was derived from.
    pub revision: i64,
    pub business_key: String,
    /// The business failure that made the saga compensate.
    pub failure: String,
    pub paused_reason: String,
    /// The status a paused saga resumes into.
    pub paused_from: Option<Status>,
    pub deadline_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One attempt in a saga's history.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub saga_id: Uuid,
    pub id: Uuid,
    pub step: usize,
    pub step_name: String,
    pub direction: String,
    pub attempt: u32,
    pub generation: i64,
    pub owner: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub outcome: String,
    pub output: Option<Value>,
    pub error: String,
}

/// One operator action in a saga's history.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorAction {
    pub id: Uuid,
    pub action: String,
    pub actor: String,
    /// Who proposed the action when it needed a second operator (four eyes): the `actor`
    /// approved it. Empty for single-person actions.
    pub proposed_by: String,
    pub reason: String,
    pub status_before: String,
    pub status_after: String,
    pub at: DateTime<Utc>,
}

fn corrupt(what: impl Into<String>) -> TxError<SagaError> {
    TxError::Abort(SagaError::Internal {
        message: format!("stored saga data does not parse: {}", what.into()),
    })
}

fn to_usize(value: i64) -> StoreResult<usize> {
    usize::try_from(value).map_err(|_| corrupt(format!("{value} is not a step index")))
}

fn to_u32(value: i64) -> StoreResult<u32> {
    u32::try_from(value).map_err(|_| corrupt(format!("{value} is not a count")))
}

pub(crate) fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) const INSTANCE_COLUMNS: &str = "id, saga_type, version, status, input, outputs, \
     current_step, attempts, awaiting_query, next_attempt_at, lease_owner, lease_expires_at, \
     generation, business_key, failure, paused_reason, paused_from, deadline_at, created_at, \
     updated_at, revision";

pub(crate) fn instance_from_row(row: &Row) -> StoreResult<SagaInstance> {
    let status: &str = row.get("status");
    let paused_from: &str = row.get("paused_from");
    Ok(SagaInstance {
        id: row.get("id"),
        saga_type: row.get("saga_type"),
        version: row.get("version"),
        status: status.parse().map_err(|_| corrupt("status"))?,
        input: row.get("input"),
        outputs: serde_json::from_value(row.get("outputs"))
            .map_err(|e| corrupt(format!("outputs: {e}")))?,
        current_step: to_usize(row.get("current_step"))?,
        attempts: to_u32(row.get("attempts"))?,
        awaiting_query: row.get("awaiting_query"),
        next_attempt_at: row.get("next_attempt_at"),
        lease_owner: row.get("lease_owner"),
        lease_expires_at: row.get("lease_expires_at"),
        generation: row.get("generation"),
        revision: row.get("revision"),
        business_key: row.get("business_key"),
        failure: row.get("failure"),
        paused_reason: row.get("paused_reason"),
        paused_from: if paused_from.is_empty() {
            None
        } else {
            Some(paused_from.parse().map_err(|_| corrupt("paused_from"))?)
        },
        deadline_at: row.get("deadline_at"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn outputs_json(outputs: &BTreeMap<String, Value>) -> Value {
    Value::Object(
        outputs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Inserts a new saga, or finds the one already there under this id. `Ok(None)` when it was
/// inserted, `Ok(Some(existing))` when the id was taken.
pub(crate) async fn insert(
    tx: &Transaction<'_>,
    instance: &SagaInstance,
) -> StoreResult<Option<SagaInstance>> {
    let statement = tx
        .prepare_cached(&format!(
            "INSERT INTO saga_instances ({INSTANCE_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21) \
             ON CONFLICT (id) DO NOTHING"
        ))
        .await?;
    let inserted = tx
        .execute(
            &statement,
            &[
                &instance.id,
                &instance.saga_type,
                &instance.version,
                &instance.status.as_str(),
                &instance.input,
                &outputs_json(&instance.outputs),
                &to_i64(instance.current_step),
                &i64::from(instance.attempts),
                &instance.awaiting_query,
                &instance.next_attempt_at,
                &instance.lease_owner,
                &instance.lease_expires_at,
                &instance.generation,
                &instance.business_key,
                &instance.failure,
                &instance.paused_reason,
                &instance.paused_from.map_or("", Status::as_str),
                &instance.deadline_at,
                &instance.created_at,
                &instance.updated_at,
                &instance.revision,
            ],
        )
        .await?;
    if inserted == 1 {
        return Ok(None);
    }
    load(tx, instance.id).await
}

/// One saga by id.
pub async fn load(tx: &Transaction<'_>, id: Uuid) -> StoreResult<Option<SagaInstance>> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM saga_instances WHERE id = $1"
        ))
        .await?;
    tx.query_opt(&statement, &[&id])
        .await?
        .as_ref()
        .map(instance_from_row)
        .transpose()
}

/// Takes up to `limit` due sagas that nobody holds, under a new lease and generation.
pub(crate) async fn claim(
    tx: &Transaction<'_>,
    owner: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
    types: &[String],
) -> StoreResult<Vec<SagaInstance>> {
    let statement = tx
        .prepare_cached(&format!(
            "UPDATE saga_instances SET lease_owner = $1, lease_expires_at = $2, \
             generation = generation + 1, updated_at = $3 \
             WHERE id IN (SELECT id FROM saga_instances \
                 WHERE status IN ('running', 'compensating') AND next_attempt_at <= $3 \
                 AND (lease_expires_at IS NULL OR lease_expires_at < $3) AND saga_type = ANY($5) \
                 ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
             AND (lease_expires_at IS NULL OR lease_expires_at < $3) \
             RETURNING {INSTANCE_COLUMNS}"
        ))
        .await?;
    let rows = tx
        .query(&statement, &[&owner, &lease_until, &now, &limit, &types])
        .await?;
    rows.iter().map(instance_from_row).collect()
}

/// Writes the executor's new state of a saga, if it still holds the lease of `generation`
/// and the stored state is still the one this was derived from (`revision`). With a record,
/// the attempt's history row is written by the same statement, only if the state was.
/// Returns whether it was; the stored revision is then `instance.revision + 1`.
pub(crate) async fn save_fenced(
    tx: &Transaction<'_>,
    instance: &SagaInstance,
    record: Option<&StepRecord>,
) -> StoreResult<bool> {
    const UPDATE: &str = "UPDATE saga_instances SET status = $3, outputs = $4, current_step = $5, \
         attempts = $6, awaiting_query = $7, next_attempt_at = $8, lease_owner = $9, \
         lease_expires_at = $10, failure = $11, paused_reason = $12, paused_from = $13, \
         updated_at = $14, revision = revision + 1 \
         WHERE id = $1 AND generation = $2 AND revision = $15";
    let outputs = outputs_json(&instance.outputs);
    let current_step = to_i64(instance.current_step);
    let attempts = i64::from(instance.attempts);
    let paused_from = instance.paused_from.map_or("", Status::as_str);
    let status = instance.status.as_str();
    let mut params: Vec<&(dyn corebank_db::tokio_postgres::types::ToSql + Sync)> = vec![
        &instance.id,
        &instance.generation,
        &status,
        &outputs,
        &current_step,
        &attempts,
        &instance.awaiting_query,
        &instance.next_attempt_at,
        &instance.lease_owner,
        &instance.lease_expires_at,
        &instance.failure,
        &instance.paused_reason,
        &paused_from,
        &instance.updated_at,
        &instance.revision,
    ];
    let Some(record) = record else {
        let statement = tx.prepare_cached(UPDATE).await?;
        return Ok(tx.execute(&statement, &params).await? == 1);
    };
    let step = to_i64(record.step);
    let attempt = i64::from(record.attempt);
    let record_params: [&(dyn corebank_db::tokio_postgres::types::ToSql + Sync); 11] = [
        &record.id,
        &step,
        &record.step_name,
        &record.direction,
        &attempt,
        &record.owner,
        &record.started_at,
        &record.ended_at,
        &record.outcome,
        &record.output,
        &record.error,
    ];
    params.extend(record_params);
    let statement = tx
        .prepare_cached(&format!(
            "WITH saved AS ({UPDATE} RETURNING id, generation) \
             INSERT INTO saga_steps (saga_id, id, step, step_name, direction, attempt, generation, \
             owner, started_at, ended_at, outcome, output, error) \
             SELECT saved.id, $16, $17, $18, $19, $20, saved.generation, $21, $22, $23, $24, $25, $26 \
             FROM saved"
        ))
        .await?;
    Ok(tx.execute(&statement, &params).await? == 1)
}

/// A saga's step history, oldest first.
pub async fn steps(tx: &Transaction<'_>, saga_id: Uuid) -> StoreResult<Vec<StepRecord>> {
    let statement = tx
        .prepare_cached(
            "SELECT saga_id, id, step, step_name, direction, attempt, generation, owner, \
             started_at, ended_at, outcome, output, error FROM saga_steps WHERE saga_id = $1 \
             ORDER BY started_at, ended_at, id",
        )
        .await?;
    let rows = tx.query(&statement, &[&saga_id]).await?;
    rows.iter()
        .map(|row| {
            Ok(StepRecord {
                saga_id: row.get(0),
                id: row.get(1),
                step: to_usize(row.get(2))?,
                step_name: row.get(3),
                direction: row.get(4),
                attempt: to_u32(row.get(5))?,
                generation: row.get(6),
                owner: row.get(7),
                started_at: row.get(8),
                ended_at: row.get(9),
                outcome: row.get(10),
                output: row.get(11),
                error: row.get(12),
            })
        })
        .collect()
}

/// A saga's operator actions, oldest first.
pub async fn operator_actions(
    tx: &Transaction<'_>,
    saga_id: Uuid,
) -> StoreResult<Vec<OperatorAction>> {
    let statement = tx
        .prepare_cached(
            "SELECT id, action, actor, reason, status_before, status_after, at, proposed_by \
             FROM saga_operator_actions WHERE saga_id = $1 ORDER BY at, id",
        )
        .await?;
    let rows = tx.query(&statement, &[&saga_id]).await?;
    Ok(rows
        .iter()
        .map(|row| OperatorAction {
            id: row.get(0),
            action: row.get(1),
            actor: row.get(2),
            reason: row.get(3),
            status_before: row.get(4),
            status_after: row.get(5),
            at: row.get(6),
            proposed_by: row.get(7),
        })
        .collect())
}

/// Records an operator action.
pub(crate) async fn insert_operator_action(
    tx: &Transaction<'_>,
    saga_id: Uuid,
    action: &OperatorAction,
) -> StoreResult<()> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO saga_operator_actions (saga_id, id, action, actor, reason, status_before, \
             status_after, at, proposed_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &saga_id,
            &action.id,
            &action.action,
            &action.actor,
            &action.reason,
            &action.status_before,
            &action.status_after,
            &action.at,
            &action.proposed_by,
        ],
    )
    .await?;
    Ok(())
}

/// Writes an operator's change of a saga: any executor holding it loses its lease (the
/// generation moves on), so its next fenced write changes nothing.
pub(crate) async fn save_by_operator(
    tx: &Transaction<'_>,
    instance: &SagaInstance,
) -> StoreResult<()> {
    let statement = tx
        .prepare_cached(
            "UPDATE saga_instances SET status = $2, current_step = $3, attempts = $4, \
             awaiting_query = $5, next_attempt_at = $6, lease_owner = '', lease_expires_at = NULL, \
             generation = generation + 1, failure = $7, paused_reason = $8, paused_from = $9, \
             updated_at = $10, revision = revision + 1 WHERE id = $1",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &instance.id,
            &instance.status.as_str(),
            &to_i64(instance.current_step),
            &i64::from(instance.attempts),
            &instance.awaiting_query,
            &instance.next_attempt_at,
            &instance.failure,
            &instance.paused_reason,
            &instance.paused_from.map_or("", Status::as_str),
            &instance.updated_at,
        ],
    )
    .await?;
    Ok(())
}

/// What operators search by. Empty fields match everything.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub status: Option<Status>,
    pub saga_type: Option<String>,
    pub business_key: Option<String>,
    /// Only sagas created before this time (older than an age).
    pub created_before: Option<DateTime<Utc>>,
    /// Paging: sagas created strictly before this (created_at, id), newest first.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// Sagas matching `filter`, newest first.
pub async fn list(tx: &Transaction<'_>, filter: &ListFilter) -> StoreResult<Vec<SagaInstance>> {
    let statement = tx
        .prepare_cached(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM saga_instances \
             WHERE ($1::TEXT IS NULL OR status = $1) AND ($2::TEXT IS NULL OR saga_type = $2) \
             AND ($3::TEXT IS NULL OR business_key = $3) \
             AND ($4::TIMESTAMPTZ IS NULL OR created_at < $4) \
             AND ($5::TIMESTAMPTZ IS NULL OR (created_at, id) < ($5, $6)) \
             ORDER BY created_at DESC, id DESC LIMIT $7"
        ))
        .await?;
    let (after_at, after_id) = match filter.after {
        Some((at, id)) => (Some(at), id),
        None => (None, Uuid::nil()),
    };
    let rows = tx
        .query(
            &statement,
            &[
                &filter.status.map(Status::as_str),
                &filter.saga_type,
                &filter.business_key,
                &filter.created_before,
                &after_at,
                &after_id,
                &filter.limit,
            ],
        )
        .await?;
    rows.iter().map(instance_from_row).collect()
}

/// How many sagas there are in each status.
pub async fn count_by_status(tx: &Transaction<'_>) -> StoreResult<Vec<(String, Status, i64)>> {
    let statement = tx
        .prepare_cached(
            "SELECT saga_type, status, count(*) FROM saga_instances GROUP BY saga_type, status",
        )
        .await?;
    let rows = tx.query(&statement, &[]).await?;
    rows.iter()
        .map(|row| {
            let status: &str = row.get(1);
            Ok((
                row.get(0),
                status.parse().map_err(|_| corrupt("status"))?,
                row.get(2),
            ))
        })
        .collect()
}
