//! Helpers shared by the outbox tests: a sink that records what it is given and can be told
//! to refuse or fail, and short cuts to append events and read the `demo` outbox.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code,
    reason = "test helpers fail loudly; each test binary uses some of them"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use corebank_db::Db;
use corebank_outbox::{
    AggregateRef, AppendedEvent, NewEvent, Outbox, OutboxError, OutboxEvent, Relay, RelayConfig,
    SchemaName, SchemaRelay, Sink, SinkError, SinkFuture,
};

pub fn demo() -> SchemaName {
    SchemaName::new("demo").unwrap()
}

pub fn aggregate(id: &str) -> AggregateRef {
    AggregateRef::new("thing", id).unwrap()
}

pub fn event(id: &str, n: u32) -> NewEvent {
    NewEvent::new(
        aggregate(id),
        "thing.changed",
        serde_json::json!({ "thing": id, "n": n }),
    )
    .unwrap()
}

/// Appends `events` in one transaction.
pub async fn append(db: &Db, events: &[NewEvent]) -> Vec<AppendedEvent> {
    let outbox = Outbox::new(demo());
    let outbox = &outbox;
    db.run_tx::<_, OutboxError, _>("test_append", move |tx| {
        Box::pin(async move { outbox.append(&tx, events).await })
    })
    .await
    .unwrap()
}

/// A relay configuration for tests: short timings, small batches.
pub fn config(owner: &str) -> RelayConfig {
    let mut config = RelayConfig::new(vec![demo()]);
    config.owner = owner.to_owned();
    config.batch_size_max = 7;
    config.lease_duration_ms = 5_000;
    config.publish_timeout_ms = 1_000;
    config.poll_interval_ms = 10;
    config
}

/// The relay `owner` of the `demo` schema, publishing to `sink`.
pub fn demo_relay(db: &Db, sink: Arc<dyn Sink>, owner: &str) -> SchemaRelay {
    Relay::new(db.clone(), sink, config(owner))
        .unwrap()
        .schema_relay(&demo())
}

/// The relay `owner` of the `demo` schema, publishing to a fresh [`RecordingSink`], and
/// that sink.
pub fn recording_relay(db: &Db, owner: &str) -> (RecordingSink, SchemaRelay) {
    let sink = RecordingSink::default();
    let relay = demo_relay(db, Arc::new(sink.clone()), owner);
    (sink, relay)
}

/// `None`, after saying why `test` skips: `missing` names what it needs and how to provide
/// it. Under `CI=true`, where .ci/run provides it (`ci_provides`), the test fails instead.
pub fn skipped<T>(test: &str, missing: &str, ci_provides: &str) -> Option<T> {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{test}: {missing}; under CI=true {ci_provides}"
    );
    #[expect(clippy::print_stderr, reason = "a skipped test says so")]
    {
        eprintln!("SKIPPED {test}: {missing}");
    }
    None
}

/// Runs one statement, which must succeed.
pub async fn execute(db: &Db, sql: &str) {
    db.client().await.unwrap().execute(sql, &[]).await.unwrap();
}

pub async fn outbox_count(db: &Db) -> i64 {
    corebank_testkit::query::one_i64(db, "SELECT count(*) FROM demo.outbox", &[]).await
}

/// How the recording sink treats an event, by (aggregate id, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Refuse it for good.
    Refuse,
    /// Fail temporarily this many more times.
    FailTimes(u32),
}

/// A sink that records every event it accepts, in order, and follows its rules.
#[derive(Debug, Default, Clone)]
pub struct RecordingSink {
    accepted: Arc<Mutex<Vec<OutboxEvent>>>,
    rules: Arc<Mutex<HashMap<(String, i64), Rule>>>,
    attempts: Arc<Mutex<usize>>,
}

impl RecordingSink {
    /// A sink with one rule from the start.
    pub fn with_rule(aggregateid: &str, sequence: i64, rule: Rule) -> RecordingSink {
        let sink = RecordingSink::default();
        sink.rule(aggregateid, sequence, rule);
        sink
    }

    pub fn rule(&self, aggregateid: &str, sequence: i64, rule: Rule) {
        self.rules
            .lock()
            .unwrap()
            .insert((aggregateid.to_owned(), sequence), rule);
    }

    pub fn clear_rules(&self) {
        self.rules.lock().unwrap().clear();
    }

    pub fn accepted(&self) -> Vec<OutboxEvent> {
        self.accepted.lock().unwrap().clone()
    }

    pub fn attempts(&self) -> usize {
        *self.attempts.lock().unwrap()
    }

    /// The sequences accepted per aggregate id, in the order accepted.
    pub fn sequences(&self) -> BTreeMap<String, Vec<i64>> {
        let mut by_aggregate: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        for event in self.accepted() {
            by_aggregate
                .entry(event.aggregateid.clone())
                .or_default()
                .push(event.aggregate_sequence);
        }
        by_aggregate
    }
}

impl Sink for RecordingSink {
    fn name(&self) -> &str {
        "recording"
    }

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a> {
        Box::pin(async move {
            *self.attempts.lock().unwrap() += 1;
            let key = (event.aggregateid.clone(), event.aggregate_sequence);
            let mut rules = self.rules.lock().unwrap();
            match rules.get_mut(&key) {
                Some(Rule::Refuse) => {
                    return Err(SinkError::Refused {
                        sink: "recording".to_owned(),
                        message: format!("{} is poison", event.describe()),
                    });
                }
                Some(Rule::FailTimes(times)) if *times > 0 => {
                    *times -= 1;
                    return Err(SinkError::Unavailable {
                        sink: "recording".to_owned(),
                        message: "try later".to_owned(),
                    });
                }
                Some(Rule::FailTimes(_)) | None => {}
            }
            drop(rules);
            self.accepted.lock().unwrap().push(event.clone());
            Ok(())
        })
    }
}
