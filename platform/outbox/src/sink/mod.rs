//! Where a relay publishes: the [`Sink`] trait and its implementations, NATS JetStream
//! ([`nats::NatsSink`]), in-process subscribers ([`in_process::Subscribers`]), and
//! [`FanOut`] to several at once.

pub mod in_process;
pub mod nats;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::OutboxEvent;

/// What publishing one event returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SinkError>> + Send + 'a>>;

/// A destination for outbox events. `publish` returns once the event is durably accepted
/// (a broker's ack, a subscriber's ack): the relay deletes the event only after that. The
/// relay calls it at most once at a time per aggregate, in the aggregate's order, and may call
/// it again for an event already published (at least once): the sink or its consumers
/// deduplicate by event id.
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// A short name for logs and metrics, such as `nats`.
    fn name(&self) -> &str;

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a>;
}

/// Why a sink did not accept an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// Try again later (the broker is down, timed out, a subscriber is busy): the event stays
    /// in the outbox, and the later events of its aggregate wait behind it.
    #[error("{sink} could not take the event now: {message}")]
    Unavailable { sink: String, message: String },
    /// This event will never be accepted (too large, malformed for the sink, refused by a
    /// consumer for good): it is dead-lettered, and the later events of its aggregate are
    /// parked behind it until an operator replays them.
    #[error("{sink} refused the event for good: {message}")]
    Refused { sink: String, message: String },
}

impl SinkError {
    pub fn is_permanent(&self) -> bool {
        match self {
            SinkError::Unavailable { .. } => false,
            SinkError::Refused { .. } => true,
        }
    }
}

/// Publishes each event to every sink, one after the other. Accepted when all accept; a
/// permanent refusal by any is permanent; otherwise a temporary failure of any is temporary
/// (and the sinks that did accept get the event again on the retry).
#[derive(Debug, Clone)]
pub struct FanOut {
    sinks: Vec<Arc<dyn Sink>>,
    name: String,
}

impl FanOut {
    pub fn new(sinks: Vec<Arc<dyn Sink>>) -> FanOut {
        let name = sinks
            .iter()
            .map(|sink| sink.name().to_owned())
            .collect::<Vec<_>>()
            .join("+");
        FanOut { sinks, name }
    }

    pub fn is_empty(&self) -> bool {
        self.sinks.is_empty()
    }
}

impl Sink for FanOut {
    fn name(&self) -> &str {
        &self.name
    }

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a> {
        Box::pin(async move {
            let mut temporary = None;
            for sink in &self.sinks {
                match sink.publish(event).await {
                    Ok(()) => {}
                    Err(error @ SinkError::Refused { .. }) => return Err(error),
                    Err(error @ SinkError::Unavailable { .. }) => {
                        temporary.get_or_insert(error);
                    }
                }
            }
            temporary.map_or(Ok(()), Err)
        })
    }
}
