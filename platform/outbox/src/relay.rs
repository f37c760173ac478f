//! The relay: publishes the outboxes of several schemas to a sink, in order per aggregate, at
//! least once, then deletes what was published.
//!
//! Each schema's outbox is split into partitions (a stable hash of the aggregate), leased to
//! relays through `outbox_leases (partition, owner, expires_at, generation)`. A relay only
//! ever claims partitions that are free (given back) or expired, never one another relay
//! holds live: publishes cannot be fenced, so two live holders could interleave an
//! aggregate's events. Rebalancing is voluntary instead: every relay also keeps a presence
//! row in the same table (a negative `partition`, see [`presence_key`]), so each sees how many
//! relays are live, works out its quota, and gives back partitions above it between batches,
//! never with a batch in flight; a newcomer claims them at its next renewal. Claiming bumps
//! the generation; every delete (and every move to the dead letters) happens in a
//! transaction that first checks the relay still holds the partition with the generation it
//! fetched under (fencing), so a relay that lost its lease while publishing changes nothing.
//!
//! A batch is read in aggregate order (`partition, aggregatetype, aggregateid,
//! aggregate_sequence`) from a cursor that moves round the leased partitions, so each
//! aggregate in a batch starts at its oldest event. One statement reads the events together
//! with whether their aggregate has dead letters or rows still without a partition, so all
//! three come from one snapshot. Aggregates are published concurrently, each one's events one
//! after the other: a refused event is dead-lettered and the rest of its aggregate parked
//! behind it; after a temporary failure the rest of the aggregate waits for the next round.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corebank_db::Db;
use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::tokio_postgres::{Error as PgError, Row};
use futures_util::StreamExt as _;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{OutboxError, OutboxEvent, PARTITION_COUNT_DEFAULT, SchemaName, Sink, SinkError};

/// How a relay works. Every number has its unit in its name.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The schemas whose `outbox` this relay publishes.
    pub schemas: Vec<SchemaName>,
    /// This relay's name in `outbox_leases.owner`: unique per running relay.
    pub owner: String,
    /// Partitions per outbox; the writers' count (`Outbox::with_partition_count`).
    pub partition_count: u32,
    /// Events read (and published) at most per batch.
    pub batch_size_max: usize,
    /// How long a claimed or renewed lease lasts. Renewed every third of it.
    pub lease_duration_ms: u64,
    /// The pause when an outbox has nothing to publish.
    pub poll_interval_ms: u64,
    /// How long one publish may take before it counts as a temporary failure.
    pub publish_timeout_ms: u64,
    /// Aggregates published at once within a batch.
    pub publishes_in_flight_max: usize,
    /// How often the lag gauges are measured.
    pub lag_interval_ms: u64,
    /// The lag count stops counting here (the gauge then reads "at least this many").
    pub lag_events_counted_max: i64,
    /// The longest pause after repeated failures.
    pub backoff_max_ms: u64,
}

impl RelayConfig {
    /// The defaults for `schemas`, with a fresh owner name.
    pub fn new(schemas: Vec<SchemaName>) -> RelayConfig {
        let unique = Uuid::new_v4().simple().to_string();
        RelayConfig {
            schemas,
            owner: format!(
                "relay-{}-{}",
                std::process::id(),
                unique.get(..12).unwrap_or(&unique)
            ),
            partition_count: PARTITION_COUNT_DEFAULT,
            batch_size_max: 256,
            lease_duration_ms: 15_000,
            poll_interval_ms: 100,
            publish_timeout_ms: 5_000,
            publishes_in_flight_max: 64,
            lag_interval_ms: 5_000,
            lag_events_counted_max: 1_000_000,
            backoff_max_ms: 5_000,
        }
    }

    /// Refuses settings that cannot work together.
    pub fn validate(&self) -> Result<(), OutboxError> {
        let invalid =
            |field: &'static str, problem: String| Err(OutboxError::Invalid { field, problem });
        if self.owner.is_empty() || self.owner.len() > 200 {
            return invalid("owner", "must be 1 to 200 characters".to_owned());
        }
        if self.partition_count == 0 || self.partition_count > 4_096 {
            return invalid("partition_count", "must be 1 to 4096".to_owned());
        }
        if self.batch_size_max == 0 || self.batch_size_max > 100_000 {
            return invalid("batch_size_max", "must be 1 to 100000".to_owned());
        }
        if self.publishes_in_flight_max == 0 {
            return invalid("publishes_in_flight_max", "must be at least 1".to_owned());
        }
        if self.publish_timeout_ms == 0 {
            return invalid("publish_timeout_ms", "must be at least 1".to_owned());
        }
        if self.lease_duration_ms < self.publish_timeout_ms.saturating_mul(2) {
            return invalid(
                "lease_duration_ms",
                format!(
                    "{} ms leaves no time to publish: make it at least twice the publish timeout ({} ms)",
                    self.lease_duration_ms, self.publish_timeout_ms
                ),
            );
        }
        Ok(())
    }
}

/// A partition this relay holds, and the generation it holds it under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lease {
    pub partition: i64,
    pub generation: i64,
}

/// Events read from an outbox for publishing, with the leases they were read under.
#[derive(Debug, Clone)]
pub struct Batch {
    pub schema: SchemaName,
    /// In aggregate order; each aggregate starts at its oldest event still in the outbox.
    pub events: Vec<OutboxEvent>,
    /// partition → generation, as held when the batch was read.
    pub leases: BTreeMap<i64, i64>,
    /// Aggregates of the batch with dead letters: (type, id) → the lowest dead sequence.
    pub blocked: HashMap<(String, String), i64>,
    /// Aggregates of the batch that still have rows without a partition (written by a
    /// binary older than the partition column). Those rows are earlier events the batch
    /// cannot contain, so the aggregate is held back until the relay gives them theirs.
    pub unpartitioned: HashSet<(String, String)>,
}

/// What became of one event of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The sink accepted it: delete it.
    Published,
    /// The sink refused it for good: dead-letter it.
    Refused { reason: String },
    /// An earlier event of its aggregate is dead: park it behind that one.
    Parked { behind_sequence: i64 },
    /// Not published this time (a temporary failure, here or earlier in its aggregate).
    Deferred { reason: String },
}

/// One outcome per event of a [`Batch`], in the same order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub outcomes: Vec<EventOutcome>,
}

/// What one [`SchemaRelay::step`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepReport {
    pub leases_held: usize,
    pub fetched: usize,
    /// Accepted by the sink and deleted from the outbox.
    pub published: usize,
    pub refused: usize,
    pub parked: usize,
    pub deferred: usize,
    /// Partitions found taken by another relay when the batch was finished: none of their
    /// results were applied.
    pub lost_partitions: Vec<i64>,
}

/// How far behind an outbox is.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// Events waiting, counted up to `lag_events_counted_max`.
    pub events: i64,
    /// Age of the oldest waiting event among those counted; zero when none wait.
    pub oldest_age: Duration,
    /// Events in the dead letters (refused and parked), counted up to the same bound.
    pub dead_letters: i64,
}

/// The SQL of one schema's relay.
#[derive(Debug)]
struct Statements {
    ensure_leases: String,
    lock_leases: String,
    renew_leases: String,
    claim_leases: String,
    release_leases: String,
    release_all: String,
    announce: String,
    live_owners: String,
    forget_stale_presence: String,
    leave: String,
    fetch: String,
    dead_letter_refused: String,
    dead_letter_parked: String,
    delete: String,
    lag: String,
    dead_letter_count: String,
    unpartitioned: String,
    assign_partitions: String,
}

impl Statements {
    fn new(schema: &SchemaName) -> Statements {
        let leases = format!("{schema}.outbox_leases");
        let outbox = format!("{schema}.outbox");
        let dead = format!("{schema}.outbox_dead_letters");
        let lease_until = "now() + $2::INT8 * INTERVAL '1 millisecond'";
        let dead_letter = |status: &str, condition: &str| {
            format!(
                "INSERT INTO {dead} (aggregatetype, aggregateid, aggregate_sequence, id, type, payload, \
                 trace_context, created_at, partition, status, reason, dead_lettered_at) \
                 SELECT o.aggregatetype, o.aggregateid, o.aggregate_sequence, o.id, o.type, o.payload, \
                 o.trace_context, o.created_at, o.partition, '{status}', d.reason, now() \
                 FROM {outbox} o JOIN UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::INT8[], $5::TEXT[]) \
                 AS d(id, t, i, q, reason) ON o.aggregatetype = d.t AND o.aggregateid = d.i \
                 AND o.aggregate_sequence = d.q AND o.id = d.id {condition} RETURNING id"
            )
        };
        Statements {
            ensure_leases: format!(
                "INSERT INTO {leases} (partition, owner, expires_at, generation) \
                 SELECT p, '', now(), 0 FROM UNNEST($1::INT8[]) AS l(p) ON CONFLICT (partition) DO NOTHING"
            ),
            lock_leases: format!(
                "SELECT partition, owner, generation, expires_at > now() FROM {leases} \
                 WHERE partition = ANY($1) ORDER BY partition FOR UPDATE"
            ),
            renew_leases: format!(
                "UPDATE {leases} SET expires_at = {lease_until} \
                 WHERE partition = ANY($1) AND owner = $3 RETURNING partition, generation"
            ),
            claim_leases: format!(
                "UPDATE {leases} SET owner = $3, generation = generation + 1, expires_at = {lease_until} \
                 WHERE partition = ANY($1) RETURNING partition, generation"
            ),
            release_leases: format!(
                "UPDATE {leases} SET owner = '', expires_at = now() WHERE partition = ANY($1) AND owner = $2"
            ),
            release_all: format!(
                "UPDATE {leases} SET owner = '', expires_at = now() WHERE owner = $1 AND partition >= 0"
            ),
            // Presence rows (negative keys) say a relay is alive; they own no events.
            announce: format!(
                "INSERT INTO {leases} (partition, owner, expires_at, generation) \
                 VALUES ($1, $3, {lease_until}, 0) \
                 ON CONFLICT (partition) DO UPDATE SET owner = EXCLUDED.owner, expires_at = EXCLUDED.expires_at"
            ),
            live_owners: format!(
                "SELECT DISTINCT owner FROM {leases} WHERE owner <> '' AND expires_at > now()"
            ),
            // A relay that died leaves its presence row; it is removed once it has been
            // expired for a whole lease, so the table stays as small as the live relays.
            forget_stale_presence: format!(
                "DELETE FROM {leases} WHERE partition < 0 AND expires_at < now() - $1::INT8 * INTERVAL '1 millisecond'"
            ),
            leave: format!("DELETE FROM {leases} WHERE partition < 0 AND owner = $1"),
            // The events, each with the lowest sequence of its aggregate's dead letters and
            // whether its aggregate still has rows without a partition: one statement, so
            // one snapshot (a replay or a partition assignment committed between two reads
            // could otherwise let a later event overtake earlier ones).
            fetch: format!(
                "SELECT o.id, o.aggregatetype, o.aggregateid, o.aggregate_sequence, o.type, o.payload, \
                 o.trace_context, o.created_at, o.partition, \
                 (SELECT min(d.aggregate_sequence) FROM {dead} d \
                  WHERE d.aggregatetype = o.aggregatetype AND d.aggregateid = o.aggregateid), \
                 EXISTS (SELECT 1 FROM {outbox} u WHERE u.partition = -1 \
                  AND u.aggregatetype = o.aggregatetype AND u.aggregateid = o.aggregateid) \
                 FROM {outbox} o WHERE o.partition = ANY($1) \
                 AND (o.partition, o.aggregatetype, o.aggregateid) > ($2::INT8, $3::TEXT, $4::TEXT) \
                 ORDER BY o.partition, o.aggregatetype, o.aggregateid, o.aggregate_sequence LIMIT $5"
            ),
            dead_letter_refused: dead_letter("refused", ""),
            // Parked only while the aggregate still has a dead letter to wait behind (an
            // operator may have replayed it since the batch was read).
            dead_letter_parked: dead_letter(
                "parked",
                &format!(
                    "WHERE EXISTS (SELECT 1 FROM {dead} x WHERE x.aggregatetype = o.aggregatetype \
                     AND x.aggregateid = o.aggregateid)"
                ),
            ),
            delete: format!(
                "DELETE FROM {outbox} WHERE (aggregatetype, aggregateid, aggregate_sequence, id) IN \
                 (SELECT t, i, q, id FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::INT8[]) AS d(id, t, i, q))"
            ),
            lag: format!(
                "SELECT count(*), min(created_at), now() FROM (SELECT created_at FROM {outbox} LIMIT $1) AS o"
            ),
            dead_letter_count: format!("SELECT count(*) FROM (SELECT 1 FROM {dead} LIMIT $1) AS d"),
            unpartitioned: format!(
                "SELECT DISTINCT aggregatetype, aggregateid FROM {outbox} WHERE partition = -1 LIMIT $1"
            ),
            assign_partitions: format!(
                "UPDATE {outbox} AS o SET partition = u.p FROM UNNEST($1::TEXT[], $2::TEXT[], $3::INT8[]) \
                 AS u(t, i, p) WHERE o.aggregatetype = u.t AND o.aggregateid = u.i AND o.partition = -1"
            ),
        }
    }
}

/// Aggregates given a partition at most per step.
const UNPARTITIONED_AGGREGATES_MAX: i64 = 1_000;

/// The relay of all configured schemas. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Relay {
    db: Db,
    sink: Arc<dyn Sink>,
    config: Arc<RelayConfig>,
}

impl Relay {
    /// A relay over `db` (any search path: statements name their schema) into `sink`.
    pub fn new(db: Db, sink: Arc<dyn Sink>, config: RelayConfig) -> Result<Relay, OutboxError> {
        config.validate()?;
        if config.schemas.is_empty() {
            return Err(OutboxError::Invalid {
                field: "schemas",
                problem: "name at least one schema whose outbox to relay".to_owned(),
            });
        }
        Ok(Relay {
            db,
            sink,
            config: Arc::new(config),
        })
    }

    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    /// The relay of one schema, to drive step by step (tests, tools).
    pub fn schema_relay(&self, schema: &SchemaName) -> SchemaRelay {
        SchemaRelay {
            db: self.db.clone(),
            schema: schema.clone(),
            sink: Arc::clone(&self.sink),
            config: Arc::clone(&self.config),
            sql: Arc::new(Statements::new(schema)),
            leases: BTreeMap::new(),
            lease_deadline: None,
            renewed_at: None,
            lease_rows_ready: false,
            in_flight: BTreeSet::new(),
            cursor: start_cursor(),
        }
    }

    /// Relays every configured schema until `shutdown` is cancelled, then gives its leases
    /// back so another relay takes over at once.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            relay.owner = %self.config.owner,
            relay.schemas = %self.config.schemas.iter().map(SchemaName::as_str).collect::<Vec<_>>().join(","),
            relay.sink = self.sink.name(),
            "outbox relay started"
        );
        let relays = self
            .config
            .schemas
            .iter()
            .map(|schema| self.schema_relay(schema).run(shutdown.clone()));
        futures_util::future::join_all(relays).await;
        tracing::info!(relay.owner = %self.config.owner, "outbox relay stopped");
    }
}

fn start_cursor() -> (i64, String, String) {
    (-1, String::new(), String::new())
}

/// The relay of one schema's outbox.
#[derive(Debug)]
pub struct SchemaRelay {
    db: Db,
    schema: SchemaName,
    sink: Arc<dyn Sink>,
    config: Arc<RelayConfig>,
    sql: Arc<Statements>,
    /// partition → generation.
    leases: BTreeMap<i64, i64>,
    /// Until when the leases surely hold, by this process's clock (measured from before the
    /// transaction that renewed them).
    lease_deadline: Option<Instant>,
    renewed_at: Option<Instant>,
    lease_rows_ready: bool,
    /// The partitions of the batch fetched and not yet finished: never given back, since
    /// another relay could claim them while this one still publishes from them.
    in_flight: BTreeSet<i64>,
    /// Where the next batch starts: after this (partition, aggregatetype, aggregateid).
    cursor: (i64, String, String),
}

impl SchemaRelay {
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    pub fn owner(&self) -> &str {
        &self.config.owner
    }

    /// The leases held, as of the last renewal.
    pub fn leases(&self) -> Vec<Lease> {
        self.leases
            .iter()
            .map(|(partition, generation)| Lease {
                partition: *partition,
                generation: *generation,
            })
            .collect()
    }

    fn all_partitions(&self) -> Vec<i64> {
        (0..self.config.partition_count).map(i64::from).collect()
    }

    fn lease_duration(&self) -> Duration {
        Duration::from_millis(self.config.lease_duration_ms)
    }

    fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.config.publish_timeout_ms)
    }

    fn renewal_due(&self) -> bool {
        let Some(renewed_at) = self.renewed_at else {
            return true;
        };
        let third = self.lease_duration() / 3;
        if renewed_at.elapsed() >= third {
            return true;
        }
        // Renew early rather than start a batch the lease may not outlast.
        !self.leases.is_empty()
            && self.lease_deadline.is_some_and(|deadline| {
                deadline.saturating_duration_since(Instant::now()) < self.publish_timeout() * 2
            })
    }

    /// Renews this relay's presence and the leases it holds, claims free or expired
    /// partitions up to its quota (see [`quota_of`]: the partitions divided among the live
    /// relays), gives back those above it, and returns what is held now. It never takes a
    /// partition another relay holds live, and never gives back one of the batch in flight
    /// (between [`fetch_batch`](Self::fetch_batch) and [`finish_batch`](Self::finish_batch)):
    /// [`step`](Self::step) renews between batches.
    pub async fn renew_leases(&mut self) -> Result<Vec<Lease>, OutboxError> {
        let started = Instant::now();
        let partitions = self.all_partitions();
        if !self.lease_rows_ready {
            let sql = Arc::clone(&self.sql);
            let partitions = &partitions;
            self.db
                .run_tx::<_, OutboxError, _>("outbox_relay_lease_rows", move |tx| {
                    let sql = Arc::clone(&sql);
                    Box::pin(async move {
                        tx.execute(&sql.ensure_leases, &[partitions]).await?;
                        Ok(())
                    })
                })
                .await?;
            self.lease_rows_ready = true;
        }
        let owner = self.config.owner.clone();
        let duration_ms = i64::try_from(self.config.lease_duration_ms).unwrap_or(i64::MAX);
        let presence = presence_key(&owner);
        let sql = Arc::clone(&self.sql);
        let (partitions, owner_ref, in_flight) = (&partitions, &owner, &self.in_flight);
        let (held, plan) = self
            .db
            .run_tx::<_, OutboxError, _>("outbox_relay_leases", move |tx| {
                let sql = Arc::clone(&sql);
                Box::pin(async move {
                    // Locking the partition rows first queues concurrent renewals one
                    // behind the other.
                    let rows = tx.query(&sql.lock_leases, &[partitions]).await?;
                    let rows: Vec<LeaseRow> = rows
                        .iter()
                        .map(LeaseRow::from_row)
                        .collect::<Result<_, _>>()?;
                    tx.execute(&sql.announce, &[&presence, &duration_ms, owner_ref])
                        .await?;
                    tx.execute(&sql.forget_stale_presence, &[&duration_ms])
                        .await?;
                    let mut relays = BTreeSet::new();
                    for row in tx.query(&sql.live_owners, &[]).await? {
                        relays.insert(row.try_get::<_, String>(0)?);
                    }
                    let plan = plan_leases(&rows, &relays, owner_ref, partitions.len(), in_flight);
                    let mut held = Vec::new();
                    if !plan.renew.is_empty() {
                        let renewed = tx
                            .query(&sql.renew_leases, &[&plan.renew, &duration_ms, owner_ref])
                            .await?;
                        held.extend(
                            renewed
                                .iter()
                                .map(lease_of)
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    if !plan.claim.is_empty() {
                        let claimed = tx
                            .query(&sql.claim_leases, &[&plan.claim, &duration_ms, owner_ref])
                            .await?;
                        held.extend(
                            claimed
                                .iter()
                                .map(lease_of)
                                .collect::<Result<Vec<_>, _>>()?,
                        );
                    }
                    if !plan.release.is_empty() {
                        tx.execute(&sql.release_leases, &[&plan.release, owner_ref])
                            .await?;
                    }
                    held.sort();
                    Ok((held, plan))
                })
            })
            .await?;
        if !plan.release.is_empty() {
            tracing::info!(
                outbox.schema = %self.schema,
                relay.owner = %self.config.owner,
                relay.quota = plan.quota,
                relay.relays = plan.relays,
                lease.partitions = ?plan.release,
                "gave outbox partitions back: more relays are live, so this one's quota is smaller"
            );
        }
        let now_held: BTreeMap<i64, i64> = held
            .iter()
            .map(|lease| (lease.partition, lease.generation))
            .collect();
        for (partition, generation) in &self.leases {
            if now_held.get(partition) != Some(generation) {
                tracing::info!(
                    outbox.schema = %self.schema,
                    relay.owner = %self.config.owner,
                    lease.partition = partition,
                    lease.generation = generation,
                    "outbox partition lease given up or lost"
                );
            }
        }
        for (partition, generation) in &now_held {
            if self.leases.get(partition) != Some(generation) {
                tracing::debug!(
                    outbox.schema = %self.schema,
                    relay.owner = %self.config.owner,
                    lease.partition = partition,
                    lease.generation = generation,
                    "outbox partition lease claimed"
                );
            }
        }
        self.leases = now_held;
        self.lease_deadline = Some(started + self.lease_duration());
        self.renewed_at = Some(started);
        metrics::gauge!("corebank_outbox_leases_held", "schema" => self.schema.to_string())
            .set(f64::from(u32::try_from(held.len()).unwrap_or(u32::MAX)));
        Ok(held)
    }

    /// Gives every lease of this relay back and removes its presence (on shutdown, after
    /// the last batch), so the other relays take over without waiting for them to expire.
    pub async fn release_leases(&mut self) -> Result<(), OutboxError> {
        let sql = Arc::clone(&self.sql);
        let owner = &self.config.owner;
        self.db
            .run_tx::<_, OutboxError, _>("outbox_relay_release", move |tx| {
                let sql = Arc::clone(&sql);
                Box::pin(async move {
                    tx.execute(&sql.release_all, &[owner]).await?;
                    tx.execute(&sql.leave, &[owner]).await?;
                    Ok(())
                })
            })
            .await?;
        self.leases.clear();
        self.lease_deadline = None;
        self.renewed_at = None;
        self.in_flight.clear();
        Ok(())
    }

    /// Reads the next batch from the leased partitions, continuing after the previous one
    /// and starting over from the first partition at the end. Until the batch is finished,
    /// its partitions are not given back.
    pub async fn fetch_batch(&mut self) -> Result<Batch, OutboxError> {
        let mut batch = Batch {
            schema: self.schema.clone(),
            events: Vec::new(),
            leases: self.leases.clone(),
            blocked: HashMap::new(),
            unpartitioned: HashSet::new(),
        };
        self.in_flight.clear();
        if self.leases.is_empty() {
            return Ok(batch);
        }
        let partitions: Vec<i64> = self.leases.keys().copied().collect();
        let limit = i64::try_from(self.config.batch_size_max).unwrap_or(i64::MAX);
        let client = self.db.client().await?;
        let statement = client.prepare_cached(&self.sql.fetch).await?;
        let mut rows = Vec::new();
        for _ in 0..2 {
            let (partition, aggregatetype, aggregateid) = &self.cursor;
            let params: [&(dyn ToSql + Sync); 5] =
                [&partitions, partition, aggregatetype, aggregateid, &limit];
            rows = client.query(&statement, &params).await?;
            let at_start = self.cursor == start_cursor();
            if !rows.is_empty() || at_start {
                break;
            }
            // Nothing after the cursor: start over from the first partition.
            self.cursor = start_cursor();
        }
        for row in &rows {
            let event = event_of(&self.schema, row)?;
            let dead_from: Option<i64> = row.try_get(9)?;
            let unpartitioned: bool = row.try_get(10)?;
            if dead_from.is_some() || unpartitioned {
                let key = (event.aggregatetype.clone(), event.aggregateid.clone());
                if let Some(sequence) = dead_from {
                    batch.blocked.insert(key.clone(), sequence);
                }
                if unpartitioned {
                    batch.unpartitioned.insert(key);
                }
            }
            if !batch.leases.contains_key(&event.partition) {
                return Err(OutboxError::Corrupt {
                    schema: self.schema.to_string(),
                    table: "outbox",
                    message: format!(
                        "the relay read {} from partition {}, which it does not hold",
                        event.describe(),
                        event.partition
                    ),
                });
            }
            self.in_flight.insert(event.partition);
            batch.events.push(event);
        }
        self.cursor = match batch.events.last() {
            Some(last) if batch.events.len() >= self.config.batch_size_max => (
                last.partition,
                last.aggregatetype.clone(),
                last.aggregateid.clone(),
            ),
            _ => start_cursor(),
        };
        Ok(batch)
    }

    /// Publishes a batch: aggregates concurrently (up to `publishes_in_flight_max`), each
    /// aggregate's events in order, stopping at its first failure. Changes nothing in the
    /// database.
    pub async fn publish_batch(&self, batch: &Batch) -> BatchOutcome {
        let mut outcomes = vec![
            EventOutcome::Deferred {
                reason: "not attempted".to_owned(),
            };
            batch.events.len()
        ];
        let groups = aggregate_runs(&batch.events);
        let results: Vec<(Range<usize>, Vec<EventOutcome>)> = futures_util::stream::iter(groups)
            .map(|range| async move {
                let outcome = self.publish_aggregate(batch, range.clone()).await;
                (range, outcome)
            })
            .buffer_unordered(self.config.publishes_in_flight_max)
            .collect()
            .await;
        for (range, group) in results {
            for (slot, outcome) in outcomes[range].iter_mut().zip(group) {
                *slot = outcome;
            }
        }
        BatchOutcome { outcomes }
    }

    async fn publish_aggregate(&self, batch: &Batch, range: Range<usize>) -> Vec<EventOutcome> {
        let events = &batch.events[range];
        let Some(first) = events.first() else {
            return Vec::new();
        };
        let key = (first.aggregatetype.clone(), first.aggregateid.clone());
        if batch.unpartitioned.contains(&key) {
            return events
                .iter()
                .map(|_| EventOutcome::Deferred {
                    reason: "an earlier event of its aggregate has no partition yet (written \
                             before the partition column); it goes first once it has one"
                        .to_owned(),
                })
                .collect();
        }
        if let Some(behind_sequence) = batch.blocked.get(&key) {
            return events
                .iter()
                .map(|_| EventOutcome::Parked {
                    behind_sequence: *behind_sequence,
                })
                .collect();
        }
        let mut outcomes = Vec::with_capacity(events.len());
        let mut refused_sequence: Option<i64> = None;
        let mut deferred = false;
        for event in events {
            if let Some(behind_sequence) = refused_sequence {
                outcomes.push(EventOutcome::Parked { behind_sequence });
                continue;
            }
            if deferred {
                outcomes.push(EventOutcome::Deferred {
                    reason: "an earlier event of its aggregate was not published".to_owned(),
                });
                continue;
            }
            let lease_left = self.lease_deadline.map_or(Duration::ZERO, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            if lease_left <= self.publish_timeout() {
                deferred = true;
                outcomes.push(EventOutcome::Deferred {
                    reason: "the lease may end before a publish could finish".to_owned(),
                });
                continue;
            }
            let outcome = match tokio::time::timeout(
                self.publish_timeout(),
                self.sink.publish(event),
            )
            .await
            {
                Ok(Ok(())) => {
                    metrics::counter!("corebank_outbox_published_total", "schema" => self.schema.to_string())
                            .increment(1);
                    EventOutcome::Published
                }
                Ok(Err(error @ SinkError::Refused { .. })) => {
                    tracing::error!(
                        outbox.schema = %self.schema,
                        event.id = %event.id,
                        event.aggregate = %event.describe(),
                        error = %error,
                        "the sink refused an outbox event for good: dead-lettering it"
                    );
                    EventOutcome::Refused {
                        reason: error.to_string(),
                    }
                }
                Ok(Err(error @ SinkError::Unavailable { .. })) => {
                    metrics::counter!("corebank_outbox_publish_failures_total", "schema" => self.schema.to_string())
                            .increment(1);
                    EventOutcome::Deferred {
                        reason: error.to_string(),
                    }
                }
                Err(_) => {
                    metrics::counter!("corebank_outbox_publish_failures_total", "schema" => self.schema.to_string())
                            .increment(1);
                    EventOutcome::Deferred {
                        reason: format!(
                            "{} did not answer within {} ms",
                            self.sink.name(),
                            self.config.publish_timeout_ms
                        ),
                    }
                }
            };
            match &outcome {
                EventOutcome::Refused { .. } => refused_sequence = Some(event.aggregate_sequence),
                EventOutcome::Deferred { .. } => deferred = true,
                EventOutcome::Published | EventOutcome::Parked { .. } => {}
            }
            outcomes.push(outcome);
        }
        outcomes
    }

    /// Applies a published batch in one transaction, for the partitions still held under
    /// the generation the batch was read with: deletes what was published, moves refused
    /// and parked events to the dead letters. The results of partitions lost meanwhile are
    /// dropped (their events are published again by the new holder).
    pub async fn finish_batch(
        &mut self,
        batch: &Batch,
        outcome: &BatchOutcome,
    ) -> Result<StepReport, OutboxError> {
        // Nothing more is published from this batch: its partitions may be given back.
        self.in_flight.clear();
        let mut report = StepReport {
            leases_held: self.leases.len(),
            fetched: batch.events.len(),
            ..StepReport::default()
        };
        let mut published = EventKeys::default();
        let mut refused = EventKeys::default();
        let mut parked = EventKeys::default();
        for (event, result) in batch.events.iter().zip(&outcome.outcomes) {
            match result {
                EventOutcome::Published => published.push(event, String::new()),
                EventOutcome::Refused { reason } => refused.push(event, reason.clone()),
                EventOutcome::Parked { behind_sequence } => parked.push(
                    event,
                    format!(
                        "parked behind event #{behind_sequence} of {}/{}, which was refused",
                        event.aggregatetype, event.aggregateid
                    ),
                ),
                EventOutcome::Deferred { .. } => report.deferred += 1,
            }
        }
        if published.is_empty() && refused.is_empty() && parked.is_empty() {
            return Ok(report);
        }
        let partitions: Vec<i64> = batch
            .events
            .iter()
            .map(|event| event.partition)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let sql = Arc::clone(&self.sql);
        let owner = &self.config.owner;
        let (partitions_ref, published_ref, refused_ref, parked_ref) =
            (&partitions, &published, &refused, &parked);
        let applied = self
            .db
            .run_tx::<_, OutboxError, _>("outbox_relay_finish", move |tx| {
                let sql = Arc::clone(&sql);
                Box::pin(async move {
                    let rows = tx.query(&sql.lock_leases, &[partitions_ref]).await?;
                    let mut held = BTreeSet::new();
                    for row in &rows {
                        let lease = LeaseRow::from_row(row)?;
                        if lease.live
                            && lease.owner == *owner
                            && batch.leases.get(&lease.partition) == Some(&lease.generation)
                        {
                            held.insert(lease.partition);
                        }
                    }
                    let lost: Vec<i64> = partitions_ref
                        .iter()
                        .filter(|p| !held.contains(p))
                        .copied()
                        .collect();
                    let refused = refused_ref.within(&held);
                    let parked = parked_ref.within(&held);
                    let mut deleted = published_ref.within(&held);
                    let published_count = deleted.len();
                    let mut moved_refused = 0_usize;
                    let mut moved_parked = 0_usize;
                    if !refused.is_empty() {
                        let ids = tx
                            .query(&sql.dead_letter_refused, &refused.params())
                            .await?;
                        moved_refused = ids.len();
                        deleted.extend_moved(&refused, &ids)?;
                    }
                    if !parked.is_empty() {
                        let ids = tx.query(&sql.dead_letter_parked, &parked.params()).await?;
                        moved_parked = ids.len();
                        deleted.extend_moved(&parked, &ids)?;
                    }
                    if !deleted.is_empty() {
                        tx.execute(&sql.delete, &deleted.key_params()).await?;
                    }
                    Ok((published_count, moved_refused, moved_parked, lost))
                })
            })
            .await?;
        let (published_count, moved_refused, moved_parked, lost) = applied;
        report.published = published_count;
        report.refused = moved_refused;
        report.parked = moved_parked;
        let schema_label = self.schema.to_string();
        if moved_refused > 0 {
            metrics::counter!("corebank_outbox_dead_lettered_total", "schema" => schema_label.clone(), "status" => "refused")
                .increment(u64::try_from(moved_refused).unwrap_or(u64::MAX));
        }
        if moved_parked > 0 {
            metrics::counter!("corebank_outbox_dead_lettered_total", "schema" => schema_label.clone(), "status" => "parked")
                .increment(u64::try_from(moved_parked).unwrap_or(u64::MAX));
        }
        for partition in &lost {
            metrics::counter!("corebank_outbox_lease_lost_total", "schema" => schema_label.clone())
                .increment(1);
            tracing::warn!(
                outbox.schema = %self.schema,
                relay.owner = %self.config.owner,
                lease.partition = partition,
                "outbox partition taken over by another relay mid-batch: its results were not applied, the new holder publishes them again"
            );
            self.leases.remove(partition);
        }
        report.lost_partitions = lost;
        Ok(report)
    }

    /// One round: renews leases when due (between batches, so partitions given back have
    /// nothing in flight), gives rows written without a partition theirs, reads a batch,
    /// publishes it, applies the results.
    pub async fn step(&mut self) -> Result<StepReport, OutboxError> {
        if self.renewal_due() {
            self.renew_leases().await?;
        }
        if self.leases.is_empty() {
            return Ok(StepReport::default());
        }
        // One indexed read that finds nothing once old rows are gone (the outbox index
        // leads with the partition). The batch holds back aggregates it still finds with
        // such rows, so this is about latency; order holds either way.
        let assigned = self.assign_missing_partitions().await?;
        if assigned > 0 {
            tracing::info!(outbox.schema = %self.schema, outbox.aggregates = assigned, "gave outbox rows written without a partition their partition");
        }
        let batch = self.fetch_batch().await?;
        if batch.events.is_empty() {
            return Ok(StepReport {
                leases_held: self.leases.len(),
                ..StepReport::default()
            });
        }
        let outcome = self.publish_batch(&batch).await;
        self.finish_batch(&batch, &outcome).await
    }

    /// Steps until the leased partitions are empty or `steps_max` steps were taken; returns
    /// the sum of the reports (tests and tools).
    pub async fn drain(&mut self, steps_max: usize) -> Result<StepReport, OutboxError> {
        let mut total = StepReport::default();
        for _ in 0..steps_max {
            let report = self.step().await?;
            total.leases_held = report.leases_held;
            total.fetched += report.fetched;
            total.published += report.published;
            total.refused += report.refused;
            total.parked += report.parked;
            total.deferred += report.deferred;
            total.lost_partitions.extend(report.lost_partitions.iter());
            if report.fetched == 0 && self.cursor == start_cursor() {
                break;
            }
        }
        Ok(total)
    }

    /// Measures the lag and sets the gauges `corebank_outbox_lag_events`,
    /// `corebank_outbox_lag_seconds` and `corebank_outbox_dead_letters`.
    pub async fn measure_lag(&self) -> Result<Lag, OutboxError> {
        let client = self.db.client().await?;
        let cap = self.config.lag_events_counted_max;
        let row = client.query_one(&self.sql.lag, &[&cap]).await?;
        let events: i64 = row.try_get(0)?;
        let oldest: Option<DateTime<Utc>> = row.try_get(1)?;
        let now: DateTime<Utc> = row.try_get(2)?;
        let oldest_age = oldest
            .and_then(|oldest| (now - oldest).to_std().ok())
            .unwrap_or(Duration::ZERO);
        let dead_letters: i64 = client
            .query_one(&self.sql.dead_letter_count, &[&cap])
            .await?
            .try_get(0)?;
        let schema = self.schema.to_string();
        metrics::gauge!("corebank_outbox_lag_events", "schema" => schema.clone())
            .set(count_as_f64(events));
        metrics::gauge!("corebank_outbox_lag_seconds", "schema" => schema.clone())
            .set(oldest_age.as_secs_f64());
        metrics::gauge!("corebank_outbox_dead_letters", "schema" => schema)
            .set(count_as_f64(dead_letters));
        Ok(Lag {
            events,
            oldest_age,
            dead_letters,
        })
    }

    /// Gives a partition to rows written without one (by a binary older than the partition
    /// column); returns how many aggregates were assigned.
    pub async fn assign_missing_partitions(&self) -> Result<usize, OutboxError> {
        let client = self.db.client().await?;
        let rows = client
            .query(&self.sql.unpartitioned, &[&UNPARTITIONED_AGGREGATES_MAX])
            .await?;
        drop(client);
        if rows.is_empty() {
            return Ok(0);
        }
        let mut types = Vec::with_capacity(rows.len());
        let mut ids = Vec::with_capacity(rows.len());
        let mut partitions = Vec::with_capacity(rows.len());
        for row in &rows {
            let aggregatetype: String = row.try_get(0)?;
            let aggregateid: String = row.try_get(1)?;
            partitions.push(crate::partition_of(
                &aggregatetype,
                &aggregateid,
                self.config.partition_count,
            ));
            types.push(aggregatetype);
            ids.push(aggregateid);
        }
        let sql = Arc::clone(&self.sql);
        let (types, ids, partitions) = (&types, &ids, &partitions);
        self.db
            .run_tx::<_, OutboxError, _>("outbox_relay_assign_partitions", move |tx| {
                let sql = Arc::clone(&sql);
                Box::pin(async move {
                    tx.execute(&sql.assign_partitions, &[types, ids, partitions])
                        .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(types.len())
    }

    /// Relays this schema until `shutdown` is cancelled, then releases its leases.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let poll = Duration::from_millis(self.config.poll_interval_ms);
        let lag_interval = Duration::from_millis(self.config.lag_interval_ms.max(1));
        let mut failures: u32 = 0;
        let mut next_housekeeping = Instant::now();
        while !shutdown.is_cancelled() {
            if Instant::now() >= next_housekeeping {
                next_housekeeping = Instant::now() + lag_interval;
                if let Err(error) = self.housekeeping().await {
                    tracing::warn!(outbox.schema = %self.schema, error = %error, "outbox lag measurement failed");
                }
            }
            let pause = match self.step().await {
                Ok(report) => {
                    let progressed = report.published + report.refused + report.parked > 0;
                    if report.deferred > 0 && !progressed {
                        failures = failures.saturating_add(1);
                        if failures == 1 || failures.is_multiple_of(20) {
                            tracing::warn!(
                                outbox.schema = %self.schema,
                                relay.sink = self.sink.name(),
                                relay.failures = failures,
                                "outbox events could not be published; retrying with backoff"
                            );
                        }
                        self.backoff(failures)
                    } else {
                        failures = 0;
                        if report.fetched == 0 {
                            poll
                        } else {
                            Duration::ZERO
                        }
                    }
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    if failures == 1 || failures.is_multiple_of(20) {
                        tracing::warn!(
                            outbox.schema = %self.schema,
                            relay.failures = failures,
                            error = %error,
                            error.code = error.code(),
                            "outbox relay step failed; retrying with backoff"
                        );
                    }
                    self.backoff(failures)
                }
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(pause) => {}
                }
            }
        }
        if let Err(error) = self.release_leases().await {
            tracing::info!(outbox.schema = %self.schema, error = %error, "could not give the outbox leases back; they expire by themselves");
        }
    }

    async fn housekeeping(&self) -> Result<(), OutboxError> {
        self.measure_lag().await?;
        Ok(())
    }

    fn backoff(&self, failures: u32) -> Duration {
        let ceiling = self
            .config
            .poll_interval_ms
            .max(10)
            .saturating_mul(1_u64 << failures.min(16))
            .min(self.config.backoff_max_ms.max(1));
        Duration::from_millis(fastrand::u64(ceiling / 2..=ceiling))
    }
}

fn count_as_f64(count: i64) -> f64 {
    // Gauges are f64; counts beyond 2^32 are far past any bound set here.
    f64::from(u32::try_from(count.max(0)).unwrap_or(u32::MAX))
}

/// The index ranges of consecutive events of one aggregate.
fn aggregate_runs(events: &[OutboxEvent]) -> Vec<Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for index in 1..=events.len() {
        let boundary = match (events.get(index - 1), events.get(index)) {
            (Some(previous), Some(next)) => {
                previous.aggregatetype != next.aggregatetype
                    || previous.aggregateid != next.aggregateid
            }
            _ => true,
        };
        if boundary {
            runs.push(start..index);
            start = index;
        }
    }
    runs
}

/// An outbox row (the outbox's columns in their order, as the relay and the dead-letter
/// reads select them) as an event.
pub(crate) fn event_of(schema: &SchemaName, row: &Row) -> Result<OutboxEvent, OutboxError> {
    Ok(OutboxEvent {
        schema: schema.to_string(),
        id: row.try_get(0)?,
        aggregatetype: row.try_get(1)?,
        aggregateid: row.try_get(2)?,
        aggregate_sequence: row.try_get(3)?,
        event_type: row.try_get(4)?,
        payload: row.try_get(5)?,
        trace_context: row.try_get(6)?,
        created_at: row.try_get(7)?,
        partition: row.try_get(8)?,
    })
}

fn lease_of(row: &Row) -> Result<Lease, PgError> {
    Ok(Lease {
        partition: row.try_get(0)?,
        generation: row.try_get(1)?,
    })
}

#[derive(Debug, Clone)]
struct LeaseRow {
    partition: i64,
    owner: String,
    generation: i64,
    live: bool,
}

impl LeaseRow {
    fn from_row(row: &Row) -> Result<LeaseRow, PgError> {
        Ok(LeaseRow {
            partition: row.try_get(0)?,
            owner: row.try_get(1)?,
            generation: row.try_get(2)?,
            live: row.try_get(3)?,
        })
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
struct LeasePlan {
    renew: Vec<i64>,
    claim: Vec<i64>,
    release: Vec<i64>,
    /// The partitions this relay should hold, and among how many live relays.
    quota: usize,
    relays: usize,
}

/// The key of `owner`'s presence row in `outbox_leases`: a negative number (partitions are
/// 0 and up), from a stable hash of the owner name. Two live relays sharing a key (odds of
/// about one in 2^62 per pair) would count as one, which only skews the quotas.
pub(crate) fn presence_key(owner: &str) -> i64 {
    const PRESENCE_KEYS: u64 = 1 << 62;
    let hash = corebank_db::fnv1a([owner.as_bytes()]) % PRESENCE_KEYS;
    // Below 2^62, so the conversion succeeds and the negation cannot overflow.
    -1 - i64::try_from(hash).unwrap_or(0)
}

/// How many of `partition_count` partitions `me` should hold among the live `relays`:
/// an even split, the first relays by name holding one more when it does not divide, so the
/// quotas add up to exactly the partitions and every relay gets at least one while there are
/// no more relays than partitions.
fn quota_of(relays: &BTreeSet<String>, me: &str, partition_count: usize) -> (usize, usize) {
    let mut everyone: BTreeSet<&str> = relays.iter().map(String::as_str).collect();
    everyone.insert(me);
    let count = everyone.len();
    let rank = everyone.iter().position(|owner| *owner == me).unwrap_or(0);
    let quota = partition_count / count + usize::from(rank < partition_count % count);
    (quota, count)
}

/// Decides which partitions `me` renews, claims and gives back, given the partitions' lease
/// rows and the live relays (owners of a live lease or presence row). It keeps up to its
/// quota (the batch in flight always), gives back the rest, and claims free or expired
/// partitions up to its quota. It never claims a live lease of another relay: a newcomer
/// waits until the holders, which see it through its presence row, give partitions back.
fn plan_leases(
    rows: &[LeaseRow],
    relays: &BTreeSet<String>,
    me: &str,
    partition_count: usize,
    in_flight: &BTreeSet<i64>,
) -> LeasePlan {
    let (quota, relay_count) = quota_of(relays, me, partition_count);
    let mine: Vec<i64> = rows
        .iter()
        .filter(|row| row.live && row.owner == me)
        .map(|row| row.partition)
        .collect();
    let mut plan = LeasePlan {
        quota,
        relays: relay_count,
        ..LeasePlan::default()
    };
    plan.renew = mine
        .iter()
        .filter(|partition| in_flight.contains(partition))
        .copied()
        .collect();
    for partition in mine {
        if in_flight.contains(&partition) {
            continue;
        }
        if plan.renew.len() < quota {
            plan.renew.push(partition);
        } else {
            plan.release.push(partition);
        }
    }
    plan.renew.sort_unstable();
    let free: Vec<i64> = rows
        .iter()
        .filter(|row| !row.live || row.owner.is_empty())
        .map(|row| row.partition)
        .collect();
    let wanted = quota.saturating_sub(plan.renew.len());
    if wanted > 0 && !free.is_empty() {
        // Start at a random free partition, so relays starting together spread out.
        let offset = fastrand::usize(..free.len());
        plan.claim = free
            .iter()
            .cycle()
            .skip(offset)
            .take(wanted.min(free.len()))
            .copied()
            .collect();
        plan.claim.sort_unstable();
    }
    plan
}

/// The keys (and reasons) of some events of a batch, as statement parameters.
#[derive(Debug, Default)]
struct EventKeys {
    ids: Vec<Uuid>,
    types: Vec<String>,
    aggregates: Vec<String>,
    sequences: Vec<i64>,
    partitions: Vec<i64>,
    reasons: Vec<String>,
}

impl EventKeys {
    fn push(&mut self, event: &OutboxEvent, reason: String) {
        self.ids.push(event.id);
        self.types.push(event.aggregatetype.clone());
        self.aggregates.push(event.aggregateid.clone());
        self.sequences.push(event.aggregate_sequence);
        self.partitions.push(event.partition);
        self.reasons.push(reason);
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    fn len(&self) -> usize {
        self.ids.len()
    }

    /// Those in the partitions of `held`.
    fn within(&self, held: &BTreeSet<i64>) -> EventKeys {
        let mut kept = EventKeys::default();
        for index in 0..self.ids.len() {
            if held.contains(&self.partitions[index]) {
                kept.ids.push(self.ids[index]);
                kept.types.push(self.types[index].clone());
                kept.aggregates.push(self.aggregates[index].clone());
                kept.sequences.push(self.sequences[index]);
                kept.partitions.push(self.partitions[index]);
                kept.reasons.push(self.reasons[index].clone());
            }
        }
        kept
    }

    /// Adds the events of `moved` whose ids came back from a dead-letter insert.
    fn extend_moved(&mut self, moved: &EventKeys, returned: &[Row]) -> Result<(), PgError> {
        let mut ids = BTreeSet::new();
        for row in returned {
            ids.insert(row.try_get::<_, Uuid>(0)?);
        }
        for index in 0..moved.ids.len() {
            if ids.contains(&moved.ids[index]) {
                self.ids.push(moved.ids[index]);
                self.types.push(moved.types[index].clone());
                self.aggregates.push(moved.aggregates[index].clone());
                self.sequences.push(moved.sequences[index]);
                self.partitions.push(moved.partitions[index]);
                self.reasons.push(String::new());
            }
        }
        Ok(())
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.ids,
            &self.types,
            &self.aggregates,
            &self.sequences,
            &self.reasons,
        ]
    }

    fn key_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.ids, &self.types, &self.aggregates, &self.sequences]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: i64, owner: &str, live: bool) -> LeaseRow {
        LeaseRow {
            partition,
            owner: owner.to_owned(),
            generation: 1,
            live,
        }
    }

    fn relays(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    fn none() -> BTreeSet<i64> {
        BTreeSet::new()
    }

    #[test]
    fn a_lone_relay_claims_every_partition() {
        let rows: Vec<LeaseRow> = (0..16).map(|p| row(p, "", false)).collect();
        let plan = plan_leases(&rows, &relays(&[]), "a", 16, &none());
        assert_eq!(plan.claim, (0..16).collect::<Vec<_>>());
        assert!(plan.renew.is_empty() && plan.release.is_empty());
        assert_eq!((plan.quota, plan.relays), (16, 1));
    }

    #[test]
    fn a_newcomer_takes_nothing_live_and_the_holder_gives_back_half() {
        let mut rows: Vec<LeaseRow> = (0..16).map(|p| row(p, "a", true)).collect();
        // `b` has announced itself: both see two live relays.
        let live = relays(&["a", "b"]);
        let newcomer = plan_leases(&rows, &live, "b", 16, &none());
        assert!(newcomer.claim.is_empty(), "{newcomer:?}");
        assert_eq!(newcomer.quota, 8);
        let first = plan_leases(&rows, &live, "a", 16, &none());
        assert_eq!(first.renew, (0..8).collect::<Vec<_>>());
        assert_eq!(first.release, (8..16).collect::<Vec<_>>());
        assert!(first.claim.is_empty());
        for released in &first.release {
            rows[usize::try_from(*released).unwrap_or(0)] = row(*released, "", false);
        }
        let second = plan_leases(&rows, &live, "b", 16, &none());
        assert_eq!(second.claim, (8..16).collect::<Vec<_>>());
    }

    #[test]
    fn the_partitions_of_the_batch_in_flight_are_never_given_back() {
        let rows: Vec<LeaseRow> = (0..16).map(|p| row(p, "a", true)).collect();
        let in_flight: BTreeSet<i64> = [3, 12, 14].into_iter().collect();
        let plan = plan_leases(&rows, &relays(&["a", "b"]), "a", 16, &in_flight);
        for partition in &in_flight {
            assert!(plan.renew.contains(partition), "{plan:?}");
            assert!(!plan.release.contains(partition), "{plan:?}");
        }
        assert_eq!(plan.renew.len(), 8);
        assert_eq!(plan.release.len(), 8);
        // More in flight than the quota: all of them are kept, until the next renewal.
        let in_flight: BTreeSet<i64> = (0..10).collect();
        let plan = plan_leases(&rows, &relays(&["a", "b"]), "a", 16, &in_flight);
        assert_eq!(plan.renew, (0..10).collect::<Vec<_>>());
        assert_eq!(plan.release, (10..16).collect::<Vec<_>>());
    }

    #[test]
    fn quotas_add_up_to_the_partitions_and_give_every_relay_some() {
        for relay_count in 1..=20_usize {
            let names: Vec<String> = (0..relay_count).map(|r| format!("relay-{r:02}")).collect();
            let live: BTreeSet<String> = names.iter().cloned().collect();
            let quotas: Vec<usize> = names
                .iter()
                .map(|name| quota_of(&live, name, 16).0)
                .collect();
            assert_eq!(quotas.iter().sum::<usize>(), 16, "{relay_count} relays");
            if relay_count <= 16 {
                assert!(quotas.iter().all(|q| *q >= 1), "{quotas:?}");
            }
            let (smallest, largest) = (quotas.iter().min(), quotas.iter().max());
            assert!(largest.zip(smallest).is_some_and(|(l, s)| l - s <= 1));
        }
        // A relay not yet among the live ones counts itself.
        assert_eq!(quota_of(&relays(&["a"]), "b", 16), (8, 2));
    }

    #[test]
    fn expired_leases_are_claimed_and_live_ones_of_others_are_left_alone() {
        let mut rows: Vec<LeaseRow> = (0..4).map(|p| row(p, "a", true)).collect();
        rows.extend((4..8).map(|p| row(p, "dead", false)));
        let plan = plan_leases(&rows, &relays(&["a", "b"]), "b", 8, &none());
        assert_eq!(plan.claim, vec![4, 5, 6, 7]);
        assert!(plan.release.is_empty());
        // With three relays live, `b`'s quota is 3 (8 = 3 + 3 + 2): it still takes nothing
        // of `a`'s.
        let plan = plan_leases(&rows, &relays(&["a", "b", "c"]), "b", 8, &none());
        assert_eq!(plan.claim.len(), 3);
        assert!(plan.claim.iter().all(|p| *p >= 4), "{plan:?}");
    }

    #[test]
    fn presence_keys_are_negative_and_stable() {
        let key = presence_key("relay-1-abc");
        assert!(key < 0);
        assert_eq!(key, presence_key("relay-1-abc"));
        assert_ne!(key, presence_key("relay-2-abc"));
    }

    #[test]
    fn runs_group_consecutive_events_of_an_aggregate() {
        let event = |aggregateid: &str, sequence: i64| OutboxEvent {
            schema: "demo".to_owned(),
            id: Uuid::new_v4(),
            aggregatetype: "thing".to_owned(),
            aggregateid: aggregateid.to_owned(),
            aggregate_sequence: sequence,
            event_type: "thing.changed".to_owned(),
            payload: serde_json::json!({}),
            trace_context: String::new(),
            created_at: Utc::now(),
            partition: 0,
        };
        let events = vec![event("a", 1), event("a", 2), event("b", 1), event("c", 4)];
        assert_eq!(aggregate_runs(&events), vec![0..2, 2..3, 3..4]);
        assert!(aggregate_runs(&[]).is_empty());
    }
}
