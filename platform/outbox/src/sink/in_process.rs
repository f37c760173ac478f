//! In-process subscribers: modules running in the same process as the relay (as in
//! `corebank up`) receive events over bounded tokio channels and acknowledge each one after
//! processing it, so delivery is at least once here too: an event is deleted from the outbox
//! only after every matching subscriber has acknowledged it.

use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, oneshot};

use super::{Sink, SinkError, SinkFuture};
use crate::OutboxEvent;

const SINK_NAME: &str = "in_process";

/// Which events a subscriber wants: all, or those of one schema and/or aggregate type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub schema: Option<String>,
    pub aggregatetype: Option<String>,
}

impl Filter {
    /// Every event.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// The events of one schema's outbox.
    pub fn schema(schema: &str) -> Filter {
        Filter {
            schema: Some(schema.to_owned()),
            aggregatetype: None,
        }
    }

    /// The same, narrowed to one aggregate type.
    #[must_use]
    pub fn aggregatetype(mut self, aggregatetype: &str) -> Filter {
        self.aggregatetype = Some(aggregatetype.to_owned());
        self
    }

    fn matches(&self, event: &OutboxEvent) -> bool {
        self.schema.as_ref().is_none_or(|s| *s == event.schema)
            && self
                .aggregatetype
                .as_ref()
                .is_none_or(|t| *t == event.aggregatetype)
    }
}

/// A subscriber's answer about one delivery.
#[derive(Debug)]
enum Verdict {
    Processed,
    RetryLater(String),
    Refused(String),
}

/// One event handed to a subscriber. Answer it with [`ack`](Delivery::ack) once processed
/// (after the consumer's transaction committed); dropping it unanswered counts as "retry
/// later".
#[derive(Debug)]
pub struct Delivery {
    event: Arc<OutboxEvent>,
    answer: oneshot::Sender<Verdict>,
}

impl Delivery {
    pub fn event(&self) -> &OutboxEvent {
        &self.event
    }

    /// Processed: the relay may delete the event.
    pub fn ack(self) {
        let _ = self.answer.send(Verdict::Processed);
    }

    /// Not processed now (a gap in the aggregate's sequence, a busy dependency): the relay
    /// delivers it again later, and the aggregate's later events wait.
    pub fn retry_later(self, reason: &str) {
        let _ = self.answer.send(Verdict::RetryLater(reason.to_owned()));
    }

    /// Never processable: the relay dead-letters it and parks the aggregate's later events.
    pub fn refuse(self, reason: &str) {
        let _ = self.answer.send(Verdict::Refused(reason.to_owned()));
    }
}

/// The receiving end of a subscription. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    name: String,
    receiver: mpsc::Receiver<Delivery>,
}

impl Subscription {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next delivery; `None` once the subscribers' registry is gone.
    pub async fn recv(&mut self) -> Option<Delivery> {
        self.receiver.recv().await
    }

    /// A delivery already waiting, if any.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        self.receiver.try_recv().ok()
    }
}

#[derive(Debug)]
struct Subscriber {
    name: String,
    filter: Filter,
    sender: mpsc::Sender<Delivery>,
}

/// The registry of in-process subscribers, and the sink that delivers to them. Cheap to
/// clone: clones share the registry. An event no subscriber wants is accepted at once.
#[derive(Debug, Clone, Default)]
pub struct Subscribers {
    subscribers: Arc<Mutex<Vec<Subscriber>>>,
}

impl Subscribers {
    pub fn new() -> Subscribers {
        Subscribers::default()
    }

    /// Subscribes `name` to the events `filter` selects, with room for `queue_depth_max`
    /// deliveries waiting (at least 1): a full queue makes the relay wait, then retry later.
    pub fn subscribe(&self, name: &str, filter: Filter, queue_depth_max: usize) -> Subscription {
        let (sender, receiver) = mpsc::channel(queue_depth_max.max(1));
        if let Ok(mut subscribers) = self.subscribers.lock() {
            subscribers.push(Subscriber {
                name: name.to_owned(),
                filter,
                sender,
            });
        }
        Subscription {
            name: name.to_owned(),
            receiver,
        }
    }

    /// How many subscriptions are live.
    pub fn count(&self) -> usize {
        self.subscribers.lock().map_or(0, |mut subscribers| {
            subscribers.retain(|s| !s.sender.is_closed());
            subscribers.len()
        })
    }

    fn matching(&self, event: &OutboxEvent) -> Vec<(String, mpsc::Sender<Delivery>)> {
        self.subscribers.lock().map_or_else(
            |_| Vec::new(),
            |mut subscribers| {
                subscribers.retain(|s| !s.sender.is_closed());
                subscribers
                    .iter()
                    .filter(|s| s.filter.matches(event))
                    .map(|s| (s.name.clone(), s.sender.clone()))
                    .collect()
            },
        )
    }
}

async fn deliver(
    name: String,
    sender: mpsc::Sender<Delivery>,
    event: Arc<OutboxEvent>,
) -> Result<(), SinkError> {
    let unavailable = |message: String| SinkError::Unavailable {
        sink: format!("{SINK_NAME}:{name}"),
        message,
    };
    let (answer, verdict) = oneshot::channel();
    if sender.send(Delivery { event, answer }).await.is_err() {
        // Unsubscribed meanwhile: nobody left to deliver to.
        return Ok(());
    }
    match verdict.await {
        Ok(Verdict::Processed) => Ok(()),
        Ok(Verdict::RetryLater(reason)) => Err(unavailable(reason)),
        Ok(Verdict::Refused(reason)) => Err(SinkError::Refused {
            sink: format!("{SINK_NAME}:{name}"),
            message: reason,
        }),
        Err(_) => Err(unavailable(
            "the subscriber dropped the delivery without answering".to_owned(),
        )),
    }
}

impl Sink for Subscribers {
    fn name(&self) -> &str {
        SINK_NAME
    }

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a> {
        Box::pin(async move {
            let targets = self.matching(event);
            if targets.is_empty() {
                return Ok(());
            }
            let event = Arc::new(event.clone());
            let results = futures_util::future::join_all(
                targets
                    .into_iter()
                    .map(|(name, sender)| deliver(name, sender, Arc::clone(&event))),
            )
            .await;
            let mut temporary = None;
            for result in results {
                match result {
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
