//! The consumer side: the inbox (dedup by event id and by aggregate sequence, gaps refused)
//! and in-process subscribers whose acknowledgements decide what the relay deletes.

use std::sync::Arc;

use crate::common::{append, demo, demo_relay, event, outbox_count};
use chrono::Utc;
use corebank_db::Db;
use corebank_outbox::sink::in_process::{Filter, Subscribers};
use corebank_outbox::{Inbox, InboxOutcome, OutboxError, OutboxEvent, dead_letters};
use corebank_testkit::TestDatabase;
use uuid::Uuid;

fn incoming(aggregateid: &str, sequence: i64) -> OutboxEvent {
    OutboxEvent {
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
    }
}

/// Runs `inbox.accept` in a transaction of its own, as a consumer would around its work.
async fn accept(db: &Db, inbox: &Inbox, event: &OutboxEvent) -> Result<InboxOutcome, OutboxError> {
    db.run_tx::<_, OutboxError, _>("test_consume", move |tx| {
        Box::pin(async move { inbox.accept(&tx, event).await })
    })
    .await
    .map_err(OutboxError::from)
}

#[tokio::test]
async fn the_inbox_skips_duplicates_and_refuses_gaps_until_the_missing_event_arrives() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let inbox = Inbox::new(demo(), "ledger-watcher").unwrap();

    let first = incoming("a", 1);
    assert_eq!(accept(db, &inbox, &first).await.unwrap(), InboxOutcome::New);
    assert_eq!(
        accept(db, &inbox, &first).await.unwrap(),
        InboxOutcome::Duplicate,
        "the same event id again"
    );
    let mut republished = incoming("a", 1);
    republished.id = Uuid::new_v4();
    assert_eq!(
        accept(db, &inbox, &republished).await.unwrap(),
        InboxOutcome::Duplicate,
        "an old sequence of the aggregate"
    );

    let third = incoming("a", 3);
    let gap = accept(db, &inbox, &third).await.unwrap_err();
    assert_eq!(gap.code(), "inbox_gap");
    assert!(gap.is_retry_safe());
    let message = gap.to_string();
    assert!(
        message.contains("sequence 3 but 2 is the next one"),
        "{message}"
    );
    assert!(message.contains("retry later"), "{message}");

    assert_eq!(
        accept(db, &inbox, &incoming("a", 2)).await.unwrap(),
        InboxOutcome::New
    );
    assert_eq!(accept(db, &inbox, &third).await.unwrap(), InboxOutcome::New);
    // Another aggregate starts at 1; another consumer has its own positions.
    let gap = accept(db, &inbox, &incoming("b", 2)).await.unwrap_err();
    assert_eq!(gap.code(), "inbox_gap");
    let other = Inbox::new(demo(), "auditor").unwrap();
    assert_eq!(accept(db, &other, &first).await.unwrap(), InboxOutcome::New);

    // Pruning old inbox rows keeps recognising their events as duplicates by position.
    let pruned = inbox
        .prune(db, Utc::now() + chrono::Duration::seconds(1), 100)
        .await
        .unwrap();
    assert_eq!(pruned, 3);
    assert_eq!(
        accept(db, &inbox, &first).await.unwrap(),
        InboxOutcome::Duplicate
    );

    assert!(Inbox::new(demo(), "Bad Name").is_err());
}

#[tokio::test]
async fn in_process_subscribers_receive_events_in_order_and_their_answers_decide() {
    let database = TestDatabase::create().await;
    let db = database.db().clone();
    let subscribers = Subscribers::new();
    let mut watcher = subscribers.subscribe("watcher", Filter::schema("demo"), 16);
    let mut other_schema = subscribers.subscribe("elsewhere", Filter::schema("ledger"), 16);
    assert_eq!(subscribers.count(), 2);

    // The watcher consumes through its inbox; it refuses a#3 for good and asks for b#1
    // again once.
    let consumer_db = db.clone();
    let consumer = tokio::spawn(async move {
        let inbox = Inbox::new(demo(), "watcher").unwrap();
        let mut processed = Vec::new();
        let mut asked_again = false;
        while let Some(delivery) = watcher.recv().await {
            let event = delivery.event().clone();
            if event.aggregateid == "a" && event.aggregate_sequence == 3 {
                delivery.refuse("a#3 cannot be processed");
                continue;
            }
            if event.aggregateid == "b" && !asked_again {
                asked_again = true;
                delivery.retry_later("busy");
                continue;
            }
            match accept(&consumer_db, &inbox, &event).await.unwrap() {
                InboxOutcome::New => processed.push(event.describe()),
                InboxOutcome::Duplicate => {}
            }
            delivery.ack();
            if processed.len() == 3 {
                break;
            }
        }
        processed
    });

    append(
        &db,
        &[
            event("a", 1),
            event("a", 2),
            event("a", 3),
            event("a", 4),
            event("b", 1),
        ],
    )
    .await;
    let mut schema_relay = demo_relay(&db, Arc::new(subscribers.clone()), "relay-a");
    for _ in 0..20 {
        schema_relay.step().await.unwrap();
        if outbox_count(&db).await == 0 {
            break;
        }
    }
    let processed = consumer.await.unwrap();
    assert_eq!(processed, vec!["thing/a#1", "thing/a#2", "thing/b#1"]);
    assert_eq!(outbox_count(&db).await, 0);
    let letters = dead_letters(&db, &demo(), None, 10).await.unwrap();
    assert_eq!(
        letters
            .iter()
            .map(|l| l.event.aggregate_sequence)
            .collect::<Vec<_>>(),
        vec![3, 4],
        "a#3 refused, a#4 parked behind it"
    );
    assert!(
        other_schema.try_recv().is_none(),
        "a filter on another schema receives nothing"
    );
}
