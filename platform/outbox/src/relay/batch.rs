//! One batch: read in aggregate order under the leases held, published aggregate by
//! aggregate (each one's events in order), and finished in a fenced transaction that deletes
//! what was published and dead-letters what was refused.

use super::*;

impl SchemaRelay {
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

    pub(super) async fn publish_aggregate(
        &self,
        batch: &Batch,
        range: Range<usize>,
    ) -> Vec<EventOutcome> {
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
}

pub(super) fn count_as_f64(count: i64) -> f64 {
    // Gauges are f64; counts beyond 2^32 are far past any bound set here.
    f64::from(u32::try_from(count.max(0)).unwrap_or(u32::MAX))
}

/// The index ranges of consecutive events of one aggregate.
pub(super) fn aggregate_runs(events: &[OutboxEvent]) -> Vec<Range<usize>> {
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

/// The keys (and reasons) of some events of a batch, as statement parameters.
#[derive(Debug, Default)]
pub(super) struct EventKeys {
    pub(super) ids: Vec<Uuid>,
    pub(super) types: Vec<String>,
    pub(super) aggregates: Vec<String>,
    pub(super) sequences: Vec<i64>,
    pub(super) partitions: Vec<i64>,
    pub(super) reasons: Vec<String>,
}

impl EventKeys {
    pub(super) fn push(&mut self, event: &OutboxEvent, reason: String) {
        self.ids.push(event.id);
        self.types.push(event.aggregatetype.clone());
        self.aggregates.push(event.aggregateid.clone());
        self.sequences.push(event.aggregate_sequence);
        self.partitions.push(event.partition);
        self.reasons.push(reason);
    }

    /// Adds the event at `index` of `other`, with `reason`.
    fn push_from(&mut self, other: &EventKeys, index: usize, reason: String) {
        self.ids.push(other.ids[index]);
        self.types.push(other.types[index].clone());
        self.aggregates.push(other.aggregates[index].clone());
        self.sequences.push(other.sequences[index]);
        self.partitions.push(other.partitions[index]);
        self.reasons.push(reason);
    }

    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Those in the partitions of `held`.
    pub(super) fn within(&self, held: &BTreeSet<i64>) -> EventKeys {
        let mut kept = EventKeys::default();
        for index in 0..self.ids.len() {
            if held.contains(&self.partitions[index]) {
                kept.push_from(self, index, self.reasons[index].clone());
            }
        }
        kept
    }

    /// Adds the events of `moved` whose ids came back from a dead-letter insert.
    pub(super) fn extend_moved(
        &mut self,
        moved: &EventKeys,
        returned: &[Row],
    ) -> Result<(), PgError> {
        let mut ids = BTreeSet::new();
        for row in returned {
            ids.insert(row.try_get::<_, Uuid>(0)?);
        }
        for index in 0..moved.ids.len() {
            if ids.contains(&moved.ids[index]) {
                self.push_from(moved, index, String::new());
            }
        }
        Ok(())
    }

    pub(super) fn params(&self) -> [&(dyn ToSql + Sync); 5] {
        [
            &self.ids,
            &self.types,
            &self.aggregates,
            &self.sequences,
            &self.reasons,
        ]
    }

    pub(super) fn key_params(&self) -> [&(dyn ToSql + Sync); 4] {
        [&self.ids, &self.types, &self.aggregates, &self.sequences]
    }
}
