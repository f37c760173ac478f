//! The inbox: how a consumer processes each event once although the relay delivers at least
//! once. Inside the consumer's own transaction, before it acts on an event, it asks
//! [`Inbox::accept`]: an event already seen (by id, or by an aggregate sequence at or below
//! the last processed) is a duplicate to skip; one that jumps past the next sequence is a gap
//! (an earlier event has not arrived), refused so the consumer retries later.

use chrono::{DateTime, Utc};
use corebank_db::{Db, Transaction, TxError};

use crate::{OutboxError, OutboxEvent, SchemaName};

const CONSUMER_CHARS_MAX: usize = 100;

/// What the inbox says about an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InboxOutcome {
    /// The next event of its aggregate: process it (it is now recorded as processed, in the
    /// same transaction).
    New,
    /// Already processed: skip it.
    Duplicate,
}

/// The inbox of one consumer, in the consumer's schema (`inbox`, `inbox_positions`).
#[derive(Debug, Clone)]
pub struct Inbox {
    schema: SchemaName,
    consumer: String,
    seen: String,
    position: String,
    advance: String,
    record: String,
    prune: String,
}

impl Inbox {
    /// The inbox of `consumer` (1 to 100 of `a-z 0-9 _ . -`) in `schema`.
    pub fn new(schema: SchemaName, consumer: &str) -> Result<Inbox, OutboxError> {
        let valid = !consumer.is_empty()
            && consumer.len() <= CONSUMER_CHARS_MAX
            && consumer.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
            });
        if !valid {
            return Err(OutboxError::Invalid {
                field: "consumer",
                problem: format!(
                    "{consumer:?} must be 1 to {CONSUMER_CHARS_MAX} of a-z, 0-9, `_`, `.` or `-`"
                ),
            });
        }
        Ok(Inbox {
            seen: format!("SELECT 1 FROM {schema}.inbox WHERE consumer = $1 AND event_id = $2"),
            position: format!(
                "SELECT last_sequence FROM {schema}.inbox_positions \
                 WHERE consumer = $1 AND aggregatetype = $2 AND aggregateid = $3 FOR UPDATE"
            ),
            advance: format!(
                "INSERT INTO {schema}.inbox_positions (consumer, aggregatetype, aggregateid, last_sequence, updated_at) \
                 VALUES ($1, $2, $3, $4, now()) ON CONFLICT (consumer, aggregatetype, aggregateid) \
                 DO UPDATE SET last_sequence = EXCLUDED.last_sequence, updated_at = EXCLUDED.updated_at"
            ),
            record: format!(
                "INSERT INTO {schema}.inbox (consumer, event_id, aggregatetype, aggregateid, aggregate_sequence, processed_at) \
                 VALUES ($1, $2, $3, $4, $5, now()) ON CONFLICT (consumer, event_id) DO NOTHING"
            ),
            prune: format!(
                "DELETE FROM {schema}.inbox WHERE (consumer, event_id) IN \
                 (SELECT consumer, event_id FROM {schema}.inbox WHERE consumer = $1 AND processed_at < $2 LIMIT $3)"
            ),
            schema,
            consumer: consumer.to_owned(),
        })
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// Decides, in the consumer's transaction, whether `event` is new, and if so records it
    /// as processed (so the consumer must do its work in the same transaction). An
    /// aggregate's first event must have sequence 1.
    ///
    /// A gap is `TxError::Abort(OutboxError::InboxGap)` (converted into the caller's error):
    /// the transaction rolls back and the consumer should take the event again later.
    pub async fn accept<E: From<OutboxError>>(
        &self,
        tx: &Transaction<'_>,
        event: &OutboxEvent,
    ) -> Result<InboxOutcome, TxError<E>> {
        let seen = tx.prepare_cached(&self.seen).await?;
        if tx
            .query_opt(&seen, &[&self.consumer, &event.id])
            .await?
            .is_some()
        {
            return Ok(InboxOutcome::Duplicate);
        }
        let position = tx.prepare_cached(&self.position).await?;
        let last: i64 = match tx
            .query_opt(
                &position,
                &[&self.consumer, &event.aggregatetype, &event.aggregateid],
            )
            .await?
        {
            Some(row) => row.try_get(0)?,
            None => 0,
        };
        if event.aggregate_sequence <= last {
            return Ok(InboxOutcome::Duplicate);
        }
        if event.aggregate_sequence > last + 1 {
            return Err(TxError::Abort(E::from(OutboxError::InboxGap {
                consumer: self.consumer.clone(),
                event_id: event.id,
                aggregatetype: event.aggregatetype.clone(),
                aggregateid: event.aggregateid.clone(),
                expected: last + 1,
                found: event.aggregate_sequence,
            })));
        }
        let advance = tx.prepare_cached(&self.advance).await?;
        tx.execute(
            &advance,
            &[
                &self.consumer,
                &event.aggregatetype,
                &event.aggregateid,
                &event.aggregate_sequence,
            ],
        )
        .await?;
        let record = tx.prepare_cached(&self.record).await?;
        let recorded = tx
            .execute(
                &record,
                &[
                    &self.consumer,
                    &event.id,
                    &event.aggregatetype,
                    &event.aggregateid,
                    &event.aggregate_sequence,
                ],
            )
            .await?;
        if recorded == 0 {
            // Impossible after the check above inside one SERIALIZABLE transaction; a
            // concurrent duplicate is a serialization failure that run_tx retries.
            return Ok(InboxOutcome::Duplicate);
        }
        Ok(InboxOutcome::New)
    }

    /// Deletes up to `rows_max` inbox rows processed before `processed_before` (the
    /// positions still recognise those events as duplicates); returns how many.
    pub async fn prune(
        &self,
        db: &Db,
        processed_before: DateTime<Utc>,
        rows_max: i64,
    ) -> Result<u64, OutboxError> {
        let (sql, consumer) = (&self.prune, &self.consumer);
        let pruned = db
            .run_tx::<_, OutboxError, _>("inbox_prune", move |tx| {
                Box::pin(async move {
                    Ok(tx
                        .execute(sql, &[consumer, &processed_before, &rows_max])
                        .await?)
                })
            })
            .await?;
        Ok(pruned)
    }
}
