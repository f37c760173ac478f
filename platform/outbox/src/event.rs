//! Events: the one an application asks to append ([`NewEvent`]), and the one a relay reads
//! back and hands to sinks and consumers ([`OutboxEvent`]).

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{OutboxError, PAYLOAD_BYTES_MAX};

const AGGREGATE_TYPE_CHARS_MAX: usize = 63;
const AGGREGATE_ID_CHARS_MAX: usize = 255;
const EVENT_TYPE_CHARS_MAX: usize = 255;
const TRACE_CONTEXT_CHARS_MAX: usize = 512;

/// An aggregate: the thing whose events are ordered (an account, a journal entry, a saga).
/// The type is a lower-case identifier (it becomes a NATS subject token); the id is any
/// non-empty text without spaces or control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AggregateRef {
    aggregatetype: String,
    aggregateid: String,
}

impl AggregateRef {
    pub fn new(
        aggregatetype: impl Into<String>,
        aggregateid: impl Into<String>,
    ) -> Result<AggregateRef, OutboxError> {
        let aggregatetype = aggregatetype.into();
        let aggregateid = aggregateid.into();
        check_aggregate_type(&aggregatetype)?;
        if aggregateid.is_empty()
            || aggregateid.chars().count() > AGGREGATE_ID_CHARS_MAX
            || aggregateid
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(OutboxError::Invalid {
                field: "aggregateid",
                problem: format!(
                    "{aggregateid:?} must be 1 to {AGGREGATE_ID_CHARS_MAX} characters without \
                     spaces or control characters"
                ),
            });
        }
        Ok(AggregateRef {
            aggregatetype,
            aggregateid,
        })
    }

    pub fn aggregatetype(&self) -> &str {
        &self.aggregatetype
    }

    pub fn aggregateid(&self) -> &str {
        &self.aggregateid
    }

    /// The relay partition of this aggregate among `partition_count`.
    pub fn partition(&self, partition_count: u32) -> i64 {
        crate::partition_of(&self.aggregatetype, &self.aggregateid, partition_count)
    }
}

impl std::fmt::Display for AggregateRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.aggregatetype, self.aggregateid)
    }
}

fn check_aggregate_type(aggregatetype: &str) -> Result<(), OutboxError> {
    let valid = aggregatetype
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase())
        && aggregatetype
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && aggregatetype.len() <= AGGREGATE_TYPE_CHARS_MAX;
    if valid {
        Ok(())
    } else {
        Err(OutboxError::Invalid {
            field: "aggregatetype",
            problem: format!(
                "{aggregatetype:?} must be a lower-case identifier of at most \
                 {AGGREGATE_TYPE_CHARS_MAX} characters, such as `journal_entry`"
            ),
        })
    }
}

/// An event to append: validated when it is made, so appending cannot refuse it. Its id
/// (a UUIDv4) is chosen here, once, so a transaction retried whole writes the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    id: Uuid,
    aggregate: AggregateRef,
    event_type: String,
    payload: serde_json::Value,
    trace_context: String,
}

impl NewEvent {
    /// An event of `event_type` (such as `ledger.entry.posted`: letters, digits, `_`, `.`,
    /// `-`) about `aggregate`, carrying `payload` (at most [`PAYLOAD_BYTES_MAX`] serialized).
    pub fn new(
        aggregate: AggregateRef,
        event_type: &str,
        payload: serde_json::Value,
    ) -> Result<NewEvent, OutboxError> {
        let valid_type = !event_type.is_empty()
            && event_type.len() <= EVENT_TYPE_CHARS_MAX
            && event_type
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !valid_type {
            return Err(OutboxError::Invalid {
                field: "type",
                problem: format!(
                    "{event_type:?} must be 1 to {EVENT_TYPE_CHARS_MAX} letters, digits, `_`, `.` \
                     or `-`, such as `ledger.entry.posted`"
                ),
            });
        }
        let size = serde_json::to_vec(&payload)
            .map_err(|error| OutboxError::Invalid {
                field: "payload",
                problem: error.to_string(),
            })?
            .len();
        if size > PAYLOAD_BYTES_MAX {
            return Err(OutboxError::Invalid {
                field: "payload",
                problem: format!(
                    "{size} bytes serialized, more than the {PAYLOAD_BYTES_MAX} an event may carry"
                ),
            });
        }
        Ok(NewEvent {
            id: Uuid::new_v4(),
            aggregate,
            event_type: event_type.to_owned(),
            payload,
            trace_context: String::new(),
        })
    }

    /// The same event carrying a W3C `traceparent` (printable ASCII, at most 512 characters),
    /// forwarded by sinks so a consumer's span can join the writer's trace.
    pub fn with_trace_context(mut self, traceparent: &str) -> Result<NewEvent, OutboxError> {
        if traceparent.len() > TRACE_CONTEXT_CHARS_MAX
            || !traceparent.chars().all(|c| c.is_ascii_graphic())
        {
            return Err(OutboxError::Invalid {
                field: "trace_context",
                problem: format!(
                    "must be at most {TRACE_CONTEXT_CHARS_MAX} printable ASCII characters without spaces"
                ),
            });
        }
        self.trace_context = traceparent.to_owned();
        Ok(self)
    }

    pub fn id(&self) -> Uuid {
        self.id
    }

    pub fn aggregate(&self) -> &AggregateRef {
        &self.aggregate
    }

    pub fn event_type(&self) -> &str {
        &self.event_type
    }

    pub fn payload(&self) -> &serde_json::Value {
        &self.payload
    }

    pub fn trace_context(&self) -> &str {
        &self.trace_context
    }
}

/// An event as stored in an outbox: what a relay publishes and a consumer receives. A plain
/// record: the relay reads it from rows it trusts, a consumer decodes it from a message.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    /// The schema whose outbox it came from (the component that owns it).
    pub schema: String,
    pub id: Uuid,
    pub aggregatetype: String,
    pub aggregateid: String,
    /// 1 for an aggregate's first event, then one more for each later event.
    pub aggregate_sequence: i64,
    pub event_type: String,
    pub payload: serde_json::Value,
    /// A W3C `traceparent`, or empty.
    pub trace_context: String,
    pub created_at: DateTime<Utc>,
    pub partition: i64,
}

impl OutboxEvent {
    /// `aggregatetype/aggregateid#sequence`, for logs and messages.
    pub fn describe(&self) -> String {
        format!(
            "{}/{}#{}",
            self.aggregatetype, self.aggregateid, self.aggregate_sequence
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn aggregates_and_events_are_checked_when_made() {
        assert!(AggregateRef::new("journal_entry", "e-1").is_ok());
        assert!(AggregateRef::new("Journal", "e-1").is_err());
        assert!(AggregateRef::new("journal.entry", "e-1").is_err());
        assert!(AggregateRef::new("journal_entry", "").is_err());
        assert!(AggregateRef::new("journal_entry", "a b").is_err());
        let aggregate = AggregateRef::new("account", "a-1").unwrap();
        assert!(NewEvent::new(aggregate.clone(), "account.opened", serde_json::json!({})).is_ok());
        assert!(NewEvent::new(aggregate.clone(), "", serde_json::json!({})).is_err());
        assert!(NewEvent::new(aggregate.clone(), "a b", serde_json::json!({})).is_err());
        let huge = serde_json::Value::String("x".repeat(PAYLOAD_BYTES_MAX));
        let error = NewEvent::new(aggregate.clone(), "account.opened", huge).unwrap_err();
        assert_eq!(error.code(), "invalid_argument");
        let event = NewEvent::new(aggregate, "account.opened", serde_json::json!({})).unwrap();
        assert!(event.clone().with_trace_context("00-abc-def-01").is_ok());
        assert!(event.with_trace_context("has space").is_err());
    }
}
