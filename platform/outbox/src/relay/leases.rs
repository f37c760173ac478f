//! Partition leases: renewing (claiming free or expired partitions, giving back those above
//! this relay's quota), releasing them at shutdown, and the plan a renewal follows.

use super::*;

impl SchemaRelay {
    pub(super) fn all_partitions(&self) -> Vec<i64> {
        (0..self.config.partition_count).map(i64::from).collect()
    }

    pub(super) fn lease_duration(&self) -> Duration {
        Duration::from_millis(self.config.lease_duration_ms)
    }

    pub(super) fn renewal_due(&self) -> bool {
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
                    // Renewals first, then claims: both answer the leases now held.
                    for (statement, partitions) in [
                        (&sql.renew_leases, &plan.renew),
                        (&sql.claim_leases, &plan.claim),
                    ] {
                        if partitions.is_empty() {
                            continue;
                        }
                        let rows = tx
                            .query(statement, &[partitions, &duration_ms, owner_ref])
                            .await?;
                        held.extend(rows.iter().map(lease_of).collect::<Result<Vec<_>, _>>()?);
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
}

pub(super) fn lease_of(row: &Row) -> Result<Lease, PgError> {
    Ok(Lease {
        partition: row.try_get(0)?,
        generation: row.try_get(1)?,
    })
}

#[derive(Debug, Clone)]
pub(super) struct LeaseRow {
    pub(super) partition: i64,
    pub(super) owner: String,
    pub(super) generation: i64,
    pub(super) live: bool,
}

impl LeaseRow {
    pub(super) fn from_row(row: &Row) -> Result<LeaseRow, PgError> {
        Ok(LeaseRow {
            partition: row.try_get(0)?,
            owner: row.try_get(1)?,
            generation: row.try_get(2)?,
            live: row.try_get(3)?,
        })
    }
}

#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct LeasePlan {
    pub(super) renew: Vec<i64>,
    pub(super) claim: Vec<i64>,
    pub(super) release: Vec<i64>,
    /// The partitions this relay should hold, and among how many live relays.
    pub(super) quota: usize,
    pub(super) relays: usize,
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
pub(super) fn quota_of(
    relays: &BTreeSet<String>,
    me: &str,
    partition_count: usize,
) -> (usize, usize) {
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
pub(super) fn plan_leases(
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
