//! The relay's SQL for one schema, prepared once per connection.

use super::*;

/// The SQL of one schema's relay.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) ensure_leases: String,
    pub(super) lock_leases: String,
    pub(super) renew_leases: String,
    pub(super) claim_leases: String,
    pub(super) release_leases: String,
    pub(super) release_all: String,
    pub(super) announce: String,
    pub(super) live_owners: String,
    pub(super) forget_stale_presence: String,
    pub(super) leave: String,
    pub(super) fetch: String,
    pub(super) dead_letter_refused: String,
    pub(super) dead_letter_parked: String,
    pub(super) delete: String,
    pub(super) lag: String,
    pub(super) dead_letter_count: String,
    pub(super) unpartitioned: String,
    pub(super) assign_partitions: String,
}

impl Statements {
    pub(super) fn new(schema: &SchemaName) -> Statements {
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
pub(super) const UNPARTITIONED_AGGREGATES_MAX: i64 = 1_000;
