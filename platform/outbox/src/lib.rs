//! The transactional outbox: a component appends the events of a state change to its own
//! schema's `outbox` table in the same transaction as the change ([`Outbox::append`]); a relay
//! ([`Relay`]) publishes them to a [`Sink`] in order per aggregate, at least once, under
//! partition leases with fencing, then deletes them; an event a sink refuses for good is
//! dead-lettered with the later events of its aggregate parked behind it, until
//! [`replay_dead_letters`] puts them back; consumers deduplicate with an [`Inbox`].
//!
//! Tables, in the schema of the component that owns the events (see `migrations/demo/`):
//! `outbox`, `outbox_leases` (partition leases, and the relays' presence rows under negative
//! keys) and `outbox_dead_letters`, which the relay needs; `outbox_sequences` (the
//! per-aggregate counter) only where events are written with [`Outbox::append`]. A component
//! that numbers its aggregates' events itself writes its `outbox` rows directly and has no
//! counter: the ledger does (a journal entry's events have known sequences), so
//! `Outbox::append` does not work on the `ledger` schema. In a consumer's schema: `inbox` and
//! `inbox_positions`.

mod dead_letter;
mod event;
mod inbox;
mod relay;
pub mod sink;
mod writer;

use corebank_db::{DbError, TxError};

/// The NATS client this crate is built with, for consumers of [`sink::nats::NatsSink`]'s streams.
pub use async_nats;

pub use dead_letter::{DeadLetter, DeadLetterStatus, dead_letters, replay_dead_letters};
pub use event::{AggregateRef, NewEvent, OutboxEvent};
pub use inbox::{Inbox, InboxOutcome};
pub use relay::{
    Batch, BatchOutcome, EventOutcome, Lag, Lease, Relay, RelayConfig, SchemaRelay, StepReport,
};
pub use sink::{FanOut, Sink, SinkError, SinkFuture};
pub use writer::{AppendedEvent, Outbox};

/// The number of relay partitions an outbox is split into unless configured otherwise. The
/// writers and the relays of one schema must agree on it: an event's partition is computed
/// when it is written.
pub const PARTITION_COUNT_DEFAULT: u32 = 16;

/// The largest payload an event may carry, serialized: NATS refuses messages over its
/// `max_payload` (1 MiB by default), headers included.
pub const PAYLOAD_BYTES_MAX: usize = 900 * 1024;

/// The relay partition of an aggregate: FNV-1a of `aggregatetype`, a zero byte and
/// `aggregateid`, modulo `partition_count`. Stable forever: stored rows depend on it.
pub fn partition_of(aggregatetype: &str, aggregateid: &str, partition_count: u32) -> i64 {
    let hash = corebank_db::fnv1a([aggregatetype.as_bytes(), &[0_u8], aggregateid.as_bytes()]);
    let count = u64::from(partition_count.max(1));
    // The remainder is below `partition_count`, a u32, so both conversions succeed.
    u32::try_from(hash % count).map_or(0, i64::from)
}

/// The name of a schema that holds an outbox (or an inbox): a lower-case SQL identifier,
/// so it can be spliced into statements and NATS subjects as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaName(String);

impl SchemaName {
    pub fn new(name: &str) -> Result<SchemaName, OutboxError> {
        let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && name.len() <= 63;
        if valid {
            Ok(SchemaName(name.to_owned()))
        } else {
            Err(OutboxError::Invalid {
                field: "schema",
                problem: format!(
                    "{name:?} is not a schema name: use a lower-case identifier such as `ledger`"
                ),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for SchemaName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why an outbox, relay or inbox operation failed. Every variant has a stable [`code`] and
/// says whether a retry is safe.
///
/// [`code`]: OutboxError::code
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(
        "the relay lost its lease on partition {partition} of {schema}.outbox (it held generation \
         {generation}): another relay took over, so this one's results were not applied"
    )]
    LeaseLost {
        schema: String,
        partition: i64,
        generation: i64,
    },
    #[error(
        "inbox of {consumer}: event {event_id} of {aggregatetype}/{aggregateid} has sequence \
         {found} but {expected} is the next one: an earlier event has not arrived yet, retry later"
    )]
    InboxGap {
        consumer: String,
        event_id: uuid::Uuid,
        aggregatetype: String,
        aggregateid: String,
        expected: i64,
        found: i64,
    },
    #[error("NATS at {url}: {message}")]
    Nats { url: String, message: String },
    #[error("cannot decode an outbox event from a message: {message}")]
    Decode { message: String },
    #[error("{schema}.{table} holds a row the outbox cannot use: {message}")]
    Corrupt {
        schema: String,
        table: &'static str,
        message: String,
    },
}

impl OutboxError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            OutboxError::Invalid { .. } => "invalid_argument",
            OutboxError::Database(error) => error.code(),
            OutboxError::LeaseLost { .. } => "outbox_lease_lost",
            OutboxError::InboxGap { .. } => "inbox_gap",
            OutboxError::Nats { .. } => "nats_unavailable",
            OutboxError::Decode { .. } => "event_undecodable",
            OutboxError::Corrupt { .. } => "outbox_corrupt",
        }
    }

    /// Whether repeating the operation can succeed and do no harm.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            OutboxError::Invalid { .. } => false,
            OutboxError::Database(error) => error.is_retry_safe(),
            OutboxError::LeaseLost { .. } => true,
            OutboxError::InboxGap { .. } => true,
            OutboxError::Nats { .. } => true,
            OutboxError::Decode { .. } => false,
            OutboxError::Corrupt { .. } => false,
        }
    }
}

impl From<corebank_db::tokio_postgres::Error> for OutboxError {
    fn from(error: corebank_db::tokio_postgres::Error) -> Self {
        OutboxError::Database(DbError::Query(error))
    }
}

impl From<TxError<OutboxError>> for OutboxError {
    fn from(error: TxError<OutboxError>) -> Self {
        match error {
            TxError::Abort(error) => error,
            TxError::Db(error) => OutboxError::Database(error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn partitions_are_stable_and_spread() {
        // Stored rows depend on these values: they must never change.
        assert_eq!(
            partition_of("journal_entry", "a", 16),
            partition_of("journal_entry", "a", 16)
        );
        let expected = corebank_db::fnv1a([b"journal_entry\0a".as_slice()]) % 16;
        assert_eq!(
            partition_of("journal_entry", "a", 16),
            i64::try_from(expected).unwrap()
        );
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let partition = partition_of("account", &format!("acc-{i}"), 16);
            assert!((0..16).contains(&partition));
            seen.insert(partition);
        }
        assert_eq!(seen.len(), 16, "200 aggregates reach every partition");
        assert_eq!(partition_of("account", "x", 0), 0);
        assert_eq!(partition_of("account", "x", 1), 0);
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(SchemaName::new("ledger").is_ok());
        for bad in ["", "Ledger", "1x", "a-b", "a.b", "x; DROP"] {
            assert!(SchemaName::new(bad).is_err(), "{bad}");
        }
    }
}
