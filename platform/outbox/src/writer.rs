//! The writer: appends events to a schema's outbox inside the caller's transaction, each
//! with the next sequence of its aggregate, taken under the aggregate's counter row lock.

use std::collections::{BTreeMap, HashMap};

use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::{Transaction, TxError};
use uuid::Uuid;

use crate::{AggregateRef, NewEvent, OutboxError, PARTITION_COUNT_DEFAULT, SchemaName};

/// What an append wrote for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendedEvent {
    pub id: Uuid,
    pub aggregate: AggregateRef,
    pub aggregate_sequence: i64,
    pub partition: i64,
}

/// The outbox of one schema, as writers see it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    schema: SchemaName,
    partition_count: u32,
    bump_sequences: String,
    insert_events: String,
}

impl Outbox {
    /// The outbox of `schema` (which holds `outbox` and `outbox_sequences`), split into
    /// [`PARTITION_COUNT_DEFAULT`] relay partitions.
    pub fn new(schema: SchemaName) -> Outbox {
        Outbox::with_partition_count(schema, PARTITION_COUNT_DEFAULT)
    }

    /// The same with another partition count: it must be the relays' (`RelayConfig`).
    pub fn with_partition_count(schema: SchemaName, partition_count: u32) -> Outbox {
        // The input is sorted by aggregate, so concurrent writers lock counter rows in one
        // order. Each aggregate appears once: the upsert adds its number of new events.
        let bump_sequences = format!(
            "INSERT INTO {schema}.outbox_sequences AS q (aggregatetype, aggregateid, last_sequence) \
             SELECT t, i, n FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INT8[]) AS u(t, i, n) ORDER BY t, i \
             ON CONFLICT (aggregatetype, aggregateid) \
             DO UPDATE SET last_sequence = q.last_sequence + EXCLUDED.last_sequence \
             RETURNING aggregatetype, aggregateid, last_sequence"
        );
        let insert_events = format!(
            "INSERT INTO {schema}.outbox (id, aggregatetype, aggregateid, aggregate_sequence, type, \
             payload, trace_context, created_at, partition) \
             SELECT id, t, i, q, ty, p, tc, now(), part FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], \
             $4::INT8[], $5::TEXT[], $6::JSONB[], $7::TEXT[], $8::INT8[]) AS e(id, t, i, q, ty, p, tc, part)"
        );
        Outbox {
            schema,
            partition_count: partition_count.max(1),
            bump_sequences,
            insert_events,
        }
    }

    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    pub fn partition_count(&self) -> u32 {
        self.partition_count
    }

    /// Appends `events` in the caller's transaction (inside `Db::run_tx`): two statements
    /// whatever their number. Events of one aggregate get consecutive sequences in the order
    /// given, after those already written. Concurrent writers of one aggregate wait for each
    /// other on its counter row (SERIALIZABLE may make the later one retry).
    ///
    /// A failed statement is returned as `TxError::Db`, so `run_tx` retries what it can; a
    /// broken invariant comes back as `TxError::Abort(OutboxError::Corrupt)` converted into
    /// the caller's error type.
    pub async fn append<E: From<OutboxError>>(
        &self,
        tx: &Transaction<'_>,
        events: &[NewEvent],
    ) -> Result<Vec<AppendedEvent>, TxError<E>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut counts: BTreeMap<(&str, &str), i64> = BTreeMap::new();
        for event in events {
            *counts
                .entry((
                    event.aggregate().aggregatetype(),
                    event.aggregate().aggregateid(),
                ))
                .or_insert(0) += 1;
        }
        let types: Vec<&str> = counts.keys().map(|(t, _)| *t).collect();
        let ids: Vec<&str> = counts.keys().map(|(_, i)| *i).collect();
        let numbers: Vec<i64> = counts.values().copied().collect();
        let statement = tx.prepare_cached(&self.bump_sequences).await?;
        let rows = tx.query(&statement, &[&types, &ids, &numbers]).await?;
        // The last sequence of each aggregate after this append.
        let mut last: HashMap<(String, String), i64> = HashMap::with_capacity(rows.len());
        for row in &rows {
            last.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
        }

        let mut next: HashMap<(&str, &str), i64> = HashMap::with_capacity(counts.len());
        for ((aggregatetype, aggregateid), count) in &counts {
            let Some(last_sequence) =
                last.get(&((*aggregatetype).to_owned(), (*aggregateid).to_owned()))
            else {
                return Err(corrupt(
                    &self.schema,
                    format!("no sequence came back for {aggregatetype}/{aggregateid}"),
                ));
            };
            next.insert((*aggregatetype, *aggregateid), last_sequence - count + 1);
        }

        let mut appended = Vec::with_capacity(events.len());
        let mut e_id = Vec::with_capacity(events.len());
        let mut e_type = Vec::with_capacity(events.len());
        let mut e_aggregate = Vec::with_capacity(events.len());
        let mut e_sequence = Vec::with_capacity(events.len());
        let mut e_event_type = Vec::with_capacity(events.len());
        let mut e_payload = Vec::with_capacity(events.len());
        let mut e_trace = Vec::with_capacity(events.len());
        let mut e_partition = Vec::with_capacity(events.len());
        for event in events {
            let aggregate = event.aggregate();
            let key = (aggregate.aggregatetype(), aggregate.aggregateid());
            let Some(sequence) = next.get_mut(&key) else {
                return Err(corrupt(
                    &self.schema,
                    format!("no sequence for {aggregate}"),
                ));
            };
            let partition = aggregate.partition(self.partition_count);
            e_id.push(event.id());
            e_type.push(aggregate.aggregatetype());
            e_aggregate.push(aggregate.aggregateid());
            e_sequence.push(*sequence);
            e_event_type.push(event.event_type());
            e_payload.push(event.payload());
            e_trace.push(event.trace_context());
            e_partition.push(partition);
            appended.push(AppendedEvent {
                id: event.id(),
                aggregate: aggregate.clone(),
                aggregate_sequence: *sequence,
                partition,
            });
            *sequence += 1;
        }
        let statement = tx.prepare_cached(&self.insert_events).await?;
        let params: [&(dyn ToSql + Sync); 8] = [
            &e_id,
            &e_type,
            &e_aggregate,
            &e_sequence,
            &e_event_type,
            &e_payload,
            &e_trace,
            &e_partition,
        ];
        let inserted = tx.execute(&statement, &params).await?;
        if usize::try_from(inserted).ok() != Some(events.len()) {
            return Err(corrupt(
                &self.schema,
                format!("{inserted} rows written for {} events", events.len()),
            ));
        }
        Ok(appended)
    }

    /// Appends one event; see [`Outbox::append`].
    pub async fn append_one<E: From<OutboxError>>(
        &self,
        tx: &Transaction<'_>,
        event: &NewEvent,
    ) -> Result<AppendedEvent, TxError<E>> {
        let mut appended = self.append(tx, std::slice::from_ref(event)).await?;
        appended
            .pop()
            .ok_or_else(|| corrupt(&self.schema, "one event appended, none reported".to_owned()))
    }
}

fn corrupt<E: From<OutboxError>>(schema: &SchemaName, message: String) -> TxError<E> {
    TxError::Abort(E::from(OutboxError::Corrupt {
        schema: schema.to_string(),
        table: "outbox",
        message,
    }))
}
