//! The relay: publishes the outboxes of several schemas to a sink, in order per aggregate, at
//! least once, then deletes what was published.
//!
//! Each schema's outbox is split into partitions (a stable hash of the aggregate), leased to
//! relays through `outbox_leases (partition, owner, expires_at, generation)`. A relay only
//! ever claims partitions that are free (given back) or expired, never one another relay
//! holds live: publishes cannot be fenced, so two live holders could interleave an
//! aggregate's events. Rebalancing is voluntary instead: every relay also keeps a presence
//! row in the same table (a negative `partition`, see `leases::presence_key`), so each sees how many
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

mod batch;
mod leases;
mod statements;

use batch::count_as_f64;
pub(crate) use batch::event_of;
use leases::LeaseRow;
use statements::{Statements, UNPARTITIONED_AGGREGATES_MAX};

use crate::{OutboxError, OutboxEvent, PARTITION_COUNT_DEFAULT, SchemaName, Sink, SinkError};

/// Failed steps in a row before the relay warns (fewer are logged at INFO: the next attempt
/// usually gets past a statement that met a busy moment).
pub const FAILURES_TO_WARN: u32 = 3;

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

    fn publish_timeout(&self) -> Duration {
        Duration::from_millis(self.config.publish_timeout_ms)
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
    ///
    /// A failed step is logged at INFO; [`FAILURES_TO_WARN`] in a row at WARN.
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
                    // One failed step that the next attempt gets past (a statement that met
                    // a busy moment) is noted; failures in a row are a warning, and then
                    // one in twenty while they last.
                    if failures == FAILURES_TO_WARN || failures.is_multiple_of(20) {
                        tracing::warn!(
                            outbox.schema = %self.schema,
                            relay.failures = failures,
                            error = %error,
                            error.code = error.code(),
                            "outbox relay step failed; retrying with backoff"
                        );
                    } else if failures < FAILURES_TO_WARN {
                        tracing::info!(
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

#[cfg(test)]
mod tests {
    use super::batch::aggregate_runs;
    use super::leases::{plan_leases, presence_key, quota_of};
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
