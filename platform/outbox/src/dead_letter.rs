//! Dead letters: listing them, and replaying them (moving them back into the outbox, whole
//! aggregates at a time, so the relay publishes them again in their order).

use chrono::{DateTime, Utc};
use corebank_db::Db;

use crate::{AggregateRef, OutboxError, OutboxEvent, SchemaName};

/// Aggregates replayed per page when replaying everything.
const REPLAY_AGGREGATES_PER_PAGE: i64 = 100;
/// Dead letters listed at most per call.
pub const DEAD_LETTERS_LISTED_MAX: usize = 1_000;

/// Why an event is in the dead letters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStatus {
    /// The sink refused it for good.
    Refused,
    /// It waits behind a refused event of the same aggregate.
    Parked,
}

impl DeadLetterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterStatus::Refused => "refused",
            DeadLetterStatus::Parked => "parked",
        }
    }
}

/// One dead-lettered event.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub event: OutboxEvent,
    pub status: DeadLetterStatus,
    pub reason: String,
    pub dead_lettered_at: DateTime<Utc>,
}

/// The dead letters of `schema` (of one aggregate, or all), in aggregate order, at most
/// `limit` (capped at [`DEAD_LETTERS_LISTED_MAX`]).
pub async fn dead_letters(
    db: &Db,
    schema: &SchemaName,
    aggregate: Option<&AggregateRef>,
    limit: usize,
) -> Result<Vec<DeadLetter>, OutboxError> {
    let limit = i64::try_from(limit.min(DEAD_LETTERS_LISTED_MAX)).unwrap_or(0);
    let columns = "id, aggregatetype, aggregateid, aggregate_sequence, type, payload, trace_context, \
                   created_at, partition, status, reason, dead_lettered_at";
    let client = db.client().await?;
    let rows = match aggregate {
        Some(aggregate) => {
            client
                .query(
                    &format!(
                        "SELECT {columns} FROM {schema}.outbox_dead_letters \
                         WHERE aggregatetype = $1 AND aggregateid = $2 \
                         ORDER BY aggregate_sequence LIMIT $3"
                    ),
                    &[&aggregate.aggregatetype(), &aggregate.aggregateid(), &limit],
                )
                .await?
        }
        None => {
            client
                .query(
                    &format!(
                        "SELECT {columns} FROM {schema}.outbox_dead_letters \
                         ORDER BY aggregatetype, aggregateid, aggregate_sequence LIMIT $1"
                    ),
                    &[&limit],
                )
                .await?
        }
    };
    rows.iter()
        .map(|row| {
            let status: String = row.try_get(9)?;
            let status = match status.as_str() {
                "refused" => DeadLetterStatus::Refused,
                "parked" => DeadLetterStatus::Parked,
                other => {
                    return Err(OutboxError::Corrupt {
                        schema: schema.to_string(),
                        table: "outbox_dead_letters",
                        message: format!("unknown status {other:?}"),
                    });
                }
            };
            Ok(DeadLetter {
                event: crate::relay::event_of(schema, row)?,
                status,
                reason: row.try_get(10)?,
                dead_lettered_at: row.try_get(11)?,
            })
        })
        .collect()
}

/// Moves the dead letters of one aggregate (or of every aggregate, one transaction per
/// aggregate) back into `schema`'s outbox, keeping their ids, sequences and partitions: the
/// relay then publishes them again, in their order, before the aggregate's later events.
/// Returns how many events were moved. Fix what made the sink refuse first: an event refused
/// again goes back to the dead letters.
pub async fn replay_dead_letters(
    db: &Db,
    schema: &SchemaName,
    aggregate: Option<&AggregateRef>,
) -> Result<u64, OutboxError> {
    if let Some(aggregate) = aggregate {
        return replay_aggregate(
            db,
            schema,
            aggregate.aggregatetype(),
            aggregate.aggregateid(),
        )
        .await;
    }
    let page = format!(
        "SELECT DISTINCT aggregatetype, aggregateid FROM {schema}.outbox_dead_letters \
         WHERE (aggregatetype, aggregateid) > ($1::TEXT, $2::TEXT) \
         ORDER BY aggregatetype, aggregateid LIMIT $3"
    );
    let mut cursor = (String::new(), String::new());
    let mut moved = 0_u64;
    loop {
        let rows = {
            let client = db.client().await?;
            client
                .query(&page, &[&cursor.0, &cursor.1, &REPLAY_AGGREGATES_PER_PAGE])
                .await?
        };
        let Some(last) = rows.last() else {
            break;
        };
        let next = (last.try_get(0)?, last.try_get(1)?);
        for row in &rows {
            let aggregatetype: String = row.try_get(0)?;
            let aggregateid: String = row.try_get(1)?;
            moved += replay_aggregate(db, schema, &aggregatetype, &aggregateid).await?;
        }
        cursor = next;
    }
    Ok(moved)
}

async fn replay_aggregate(
    db: &Db,
    schema: &SchemaName,
    aggregatetype: &str,
    aggregateid: &str,
) -> Result<u64, OutboxError> {
    let columns = "aggregatetype, aggregateid, aggregate_sequence, id, type, payload, trace_context, \
                   created_at, partition";
    let restore = format!(
        "INSERT INTO {schema}.outbox ({columns}) SELECT {columns} FROM {schema}.outbox_dead_letters \
         WHERE aggregatetype = $1 AND aggregateid = $2"
    );
    let forget = format!(
        "DELETE FROM {schema}.outbox_dead_letters WHERE aggregatetype = $1 AND aggregateid = $2"
    );
    let (restore, forget) = (&restore, &forget);
    let moved = db
        .run_tx::<_, OutboxError, _>("outbox_replay_dead_letters", move |tx| {
            Box::pin(async move {
                let restored = tx.execute(restore, &[&aggregatetype, &aggregateid]).await?;
                let forgotten = tx.execute(forget, &[&aggregatetype, &aggregateid]).await?;
                if restored != forgotten {
                    return Err(corebank_db::TxError::Abort(OutboxError::Corrupt {
                        schema: schema.to_string(),
                        table: "outbox_dead_letters",
                        message: format!(
                            "{restored} events restored but {forgotten} dead letters removed for {aggregatetype}/{aggregateid}"
                        ),
                    }));
                }
                Ok(restored)
            })
        })
        .await?;
    if moved > 0 {
        tracing::info!(
            outbox.schema = %schema,
            outbox.aggregate = %format!("{aggregatetype}/{aggregateid}"),
            outbox.events = moved,
            "replayed dead letters into the outbox"
        );
        metrics::counter!("corebank_outbox_replayed_total", "schema" => schema.to_string())
            .increment(moved);
    }
    Ok(moved)
}
