//! The writer and the relay against a real PostgreSQL (the `demo` schema's outbox): order
//! per aggregate, sequences that survive deletes, fencing, dead letters and replay, lag.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly"
)]

mod common;

use std::sync::Arc;

use common::{RecordingSink, Rule, aggregate, append, config, demo, event, outbox_count};
use corebank_outbox::{
    DeadLetterStatus, Outbox, OutboxError, Relay, dead_letters, partition_of, replay_dead_letters,
};
use corebank_testkit::TestDatabase;

/// Every aggregate's sequences, as published, must be exactly 1..=n in order.
fn assert_each_aggregate_in_order(sink: &RecordingSink, expected_per_aggregate: i64) {
    for (aggregate, sequences) in sink.sequences() {
        assert_eq!(
            sequences,
            (1..=expected_per_aggregate).collect::<Vec<_>>(),
            "aggregate {aggregate} was published out of order or with gaps/duplicates"
        );
    }
}

#[tokio::test]
async fn events_are_published_once_in_order_per_aggregate_and_then_removed() {
    let database = TestDatabase::create().await;
    let db = database.db();
    // 12 aggregates × 9 events, written in transactions that each touch several aggregates
    // (and some the same aggregate twice), so batches of 7 cut aggregates at every place.
    for round in 0..3_u32 {
        let mut events = Vec::new();
        for thing in 0..12 {
            for n in 0..3 {
                events.push(event(&format!("t{thing:02}"), round * 3 + n));
            }
        }
        let appended = append(db, &events).await;
        assert_eq!(appended.len(), 36);
        for written in &appended {
            assert_eq!(written.partition, written.aggregate.partition(16));
        }
    }
    assert_eq!(outbox_count(db).await, 108);

    let sink = RecordingSink::default();
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    let report = schema_relay.drain(200).await.unwrap();

    assert_eq!(report.published, 108, "{report:?}");
    assert_eq!(
        sink.accepted().len(),
        108,
        "each event published exactly once"
    );
    assert_eq!(sink.sequences().len(), 12);
    assert_each_aggregate_in_order(&sink, 9);
    assert_eq!(outbox_count(db).await, 0, "published events are deleted");
    let lag = schema_relay.measure_lag().await.unwrap();
    assert_eq!(lag.events, 0);
    assert_eq!(lag.dead_letters, 0);
    // Payloads and ids arrive as written.
    let first = &sink.accepted()[0];
    assert_eq!(first.event_type, "thing.changed");
    assert_eq!(first.schema, "demo");
    assert_eq!(
        first.partition,
        partition_of("thing", &first.aggregateid, 16)
    );
}

#[tokio::test]
async fn sequences_continue_after_the_relay_deletes_published_rows() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let first = append(db, &[event("a", 1), event("a", 2), event("a", 3)]).await;
    assert_eq!(
        first
            .iter()
            .map(|e| e.aggregate_sequence)
            .collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    let sink = RecordingSink::default();
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    schema_relay.drain(10).await.unwrap();
    assert_eq!(outbox_count(db).await, 0);

    let later = append(db, &[event("a", 4), event("b", 1), event("a", 5)]).await;
    let sequences: Vec<(String, i64)> = later
        .iter()
        .map(|e| (e.aggregate.aggregateid().to_owned(), e.aggregate_sequence))
        .collect();
    assert_eq!(
        sequences,
        vec![
            ("a".to_owned(), 4),
            ("b".to_owned(), 1),
            ("a".to_owned(), 5)
        ]
    );
    schema_relay.drain(10).await.unwrap();
    assert_each_aggregate_in_order_prefix(&sink, "a", 5);
    assert_each_aggregate_in_order_prefix(&sink, "b", 1);
}

fn assert_each_aggregate_in_order_prefix(sink: &RecordingSink, aggregate: &str, last: i64) {
    assert_eq!(
        sink.sequences().get(aggregate).cloned().unwrap_or_default(),
        (1..=last).collect::<Vec<_>>(),
        "aggregate {aggregate}"
    );
}

#[tokio::test]
async fn concurrent_writers_of_one_aggregate_get_distinct_consecutive_sequences() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let writers = (0..8).map(|w| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut sequences = Vec::new();
            for n in 0..5 {
                let appended = append(&db, &[event("hot", w * 10 + n)]).await;
                sequences.push(appended[0].aggregate_sequence);
            }
            sequences
        })
    });
    let mut all: Vec<i64> = Vec::new();
    for writer in writers {
        all.extend(writer.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (1..=40).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_relay_that_lost_its_lease_cannot_delete_what_it_published() {
    let database = TestDatabase::create().await;
    let db = database.db();
    append(db, &[event("a", 1), event("a", 2), event("b", 1)]).await;
    let sink = RecordingSink::default();
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut stale = relay.schema_relay(&demo());
    let leases = stale.renew_leases().await.unwrap();
    assert_eq!(leases.len(), 16, "a lone relay holds every partition");

    let batch = stale.fetch_batch().await.unwrap();
    assert_eq!(batch.events.len(), 3);
    let outcome = stale.publish_batch(&batch).await;
    assert_eq!(sink.accepted().len(), 3);

    // Meanwhile its leases expired and another relay took every partition over.
    db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second' WHERE owner = 'relay-a'",
            &[],
        )
        .await
        .unwrap();
    let other = Relay::new(
        db.clone(),
        Arc::new(RecordingSink::default()),
        config("relay-b"),
    )
    .unwrap()
    .schema_relay(&demo());
    let mut other = other;
    let taken = other.renew_leases().await.unwrap();
    assert_eq!(taken.len(), 16);
    for lease in &taken {
        let old = leases
            .iter()
            .find(|l| l.partition == lease.partition)
            .unwrap();
        assert_eq!(
            lease.generation,
            old.generation + 1,
            "a takeover bumps the generation"
        );
    }

    let report = stale.finish_batch(&batch, &outcome).await.unwrap();
    assert_eq!(report.published, 0, "{report:?}");
    assert!(!report.lost_partitions.is_empty());
    assert_eq!(
        outbox_count(db).await,
        3,
        "the fenced relay deleted nothing: the new holder publishes the events again"
    );
    let still_held: Vec<i64> = stale.leases().iter().map(|l| l.partition).collect();
    assert!(
        report
            .lost_partitions
            .iter()
            .all(|lost| !still_held.contains(lost)),
        "it forgets the partitions it found lost"
    );

    // A relay whose lease merely expired, with nobody taking over, is fenced as well.
    let sink_c = RecordingSink::default();
    let mut expired = Relay::new(db.clone(), Arc::new(sink_c.clone()), config("relay-c"))
        .unwrap()
        .schema_relay(&demo());
    db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second'",
            &[],
        )
        .await
        .unwrap();
    expired.renew_leases().await.unwrap();
    let batch = expired.fetch_batch().await.unwrap();
    let outcome = expired.publish_batch(&batch).await;
    db.client()
        .await
        .unwrap()
        .execute(
            "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second'",
            &[],
        )
        .await
        .unwrap();
    let report = expired.finish_batch(&batch, &outcome).await.unwrap();
    assert_eq!(report.published, 0);
    assert_eq!(outbox_count(db).await, 3);

    // The holder in good standing deletes them.
    other.renew_leases().await.unwrap();
    let report = other.drain(10).await.unwrap();
    assert_eq!(report.published, 3, "{report:?}");
    assert_eq!(outbox_count(db).await, 0);
}

#[tokio::test]
async fn two_relays_share_the_partitions_without_overlap() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = Arc::new(RecordingSink::default());
    let mut a = Relay::new(db.clone(), sink.clone(), config("relay-a"))
        .unwrap()
        .schema_relay(&demo());
    let mut b = Relay::new(db.clone(), sink.clone(), config("relay-b"))
        .unwrap()
        .schema_relay(&demo());
    assert_eq!(a.renew_leases().await.unwrap().len(), 16);
    // The newcomer takes one partition, which makes it visible; the first then gives back
    // its extras and the newcomer claims them.
    assert_eq!(b.renew_leases().await.unwrap().len(), 1);
    assert_eq!(a.renew_leases().await.unwrap().len(), 8);
    assert_eq!(b.renew_leases().await.unwrap().len(), 8);
    let held_a: Vec<i64> = a.leases().iter().map(|l| l.partition).collect();
    let held_b: Vec<i64> = b.leases().iter().map(|l| l.partition).collect();
    assert!(
        held_a.iter().all(|p| !held_b.contains(p)),
        "{held_a:?} {held_b:?}"
    );

    // Each publishes only its own partitions; together, everything, once, in order.
    let mut events = Vec::new();
    for thing in 0..30 {
        for n in 0..3 {
            events.push(event(&format!("x{thing}"), n));
        }
    }
    append(db, &events).await;
    let from_a = a.drain(100).await.unwrap();
    let from_b = b.drain(100).await.unwrap();
    assert!(from_a.published > 0 && from_b.published > 0);
    assert_eq!(from_a.published + from_b.published, 90);
    assert_each_aggregate_in_order(&sink, 3);

    // A relay that stops gives its leases back at once.
    a.release_leases().await.unwrap();
    assert_eq!(b.renew_leases().await.unwrap().len(), 16);
}

#[tokio::test]
async fn a_refused_event_is_dead_lettered_and_the_rest_of_its_aggregate_parked_behind_it() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = RecordingSink::default();
    sink.rule("a", 2, Rule::Refuse);
    append(
        db,
        &[
            event("a", 1),
            event("a", 2),
            event("a", 3),
            event("b", 1),
            event("a", 4),
            event("b", 2),
        ],
    )
    .await;
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    let report = schema_relay.drain(10).await.unwrap();
    assert_eq!(report.refused, 1, "{report:?}");
    assert_eq!(report.parked, 2, "{report:?}");

    assert_eq!(sink.sequences().get("a"), Some(&vec![1]));
    assert_eq!(
        sink.sequences().get("b"),
        Some(&vec![1, 2]),
        "other aggregates go on"
    );
    assert_eq!(outbox_count(db).await, 0);

    let letters = dead_letters(db, &demo(), Some(&aggregate("a")), 100)
        .await
        .unwrap();
    let summary: Vec<(i64, DeadLetterStatus)> = letters
        .iter()
        .map(|l| (l.event.aggregate_sequence, l.status))
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, DeadLetterStatus::Refused),
            (3, DeadLetterStatus::Parked),
            (4, DeadLetterStatus::Parked),
        ]
    );
    assert!(
        letters[0].reason.contains("poison"),
        "{}",
        letters[0].reason
    );
    assert!(letters[1].reason.contains("#2"), "{}", letters[1].reason);

    // A later event of the aggregate is parked too: it must not overtake the refused one.
    append(db, &[event("a", 5), event("b", 3)]).await;
    let report = schema_relay.drain(10).await.unwrap();
    assert_eq!(report.parked, 1, "{report:?}");
    assert_eq!(sink.sequences().get("a"), Some(&vec![1]));
    assert_eq!(sink.sequences().get("b"), Some(&vec![1, 2, 3]));
    let lag = schema_relay.measure_lag().await.unwrap();
    assert_eq!((lag.events, lag.dead_letters), (0, 4));
}

#[tokio::test]
async fn replaying_dead_letters_publishes_them_in_order_before_later_events() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = RecordingSink::default();
    sink.rule("a", 2, Rule::Refuse);
    sink.rule("c", 1, Rule::Refuse);
    append(
        db,
        &[event("a", 1), event("a", 2), event("a", 3), event("c", 1)],
    )
    .await;
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    schema_relay.drain(10).await.unwrap();
    append(db, &[event("a", 4), event("c", 2)]).await;
    schema_relay.drain(10).await.unwrap();
    assert_eq!(dead_letters(db, &demo(), None, 100).await.unwrap().len(), 5);

    // The cause is fixed; replay one aggregate, then write another event for it.
    sink.clear_rules();
    let moved = replay_dead_letters(db, &demo(), Some(&aggregate("a")))
        .await
        .unwrap();
    assert_eq!(moved, 3);
    append(db, &[event("a", 5)]).await;
    schema_relay.drain(10).await.unwrap();
    assert_each_aggregate_in_order_prefix(&sink, "a", 5);
    assert_eq!(
        dead_letters(db, &demo(), None, 100).await.unwrap().len(),
        2,
        "the other aggregate stays dead until replayed"
    );

    // Replaying everything restores the rest.
    assert_eq!(replay_dead_letters(db, &demo(), None).await.unwrap(), 2);
    schema_relay.drain(10).await.unwrap();
    assert_each_aggregate_in_order_prefix(&sink, "c", 2);
    assert!(
        dead_letters(db, &demo(), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(outbox_count(db).await, 0);
}

#[tokio::test]
async fn a_temporary_failure_holds_back_the_rest_of_its_aggregate_until_a_retry_succeeds() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = RecordingSink::default();
    sink.rule("a", 2, Rule::FailTimes(2));
    append(
        db,
        &[event("a", 1), event("a", 2), event("a", 3), event("b", 1)],
    )
    .await;
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    let first = schema_relay.step().await.unwrap();
    assert_eq!(first.published, 2, "{first:?}");
    assert_eq!(first.deferred, 2, "{first:?}");
    assert_eq!(outbox_count(db).await, 2);
    for _ in 0..5 {
        schema_relay.step().await.unwrap();
    }
    assert_each_aggregate_in_order_prefix(&sink, "a", 3);
    assert_each_aggregate_in_order_prefix(&sink, "b", 1);
    assert_eq!(outbox_count(db).await, 0);
    assert!(
        dead_letters(db, &demo(), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn rows_written_without_a_partition_are_given_theirs_before_they_are_relayed() {
    let database = TestDatabase::create().await;
    let db = database.db();
    db.client()
        .await
        .unwrap()
        .execute(
            "INSERT INTO demo.outbox (id, aggregatetype, aggregateid, aggregate_sequence, type, payload, \
             created_at, partition) VALUES (gen_random_uuid(), 'thing', 'old', 1, 'thing.changed', '{}', now(), -1)",
            &[],
        )
        .await
        .unwrap();
    let sink = RecordingSink::default();
    let relay = Relay::new(db.clone(), Arc::new(sink.clone()), config("relay-a")).unwrap();
    let mut schema_relay = relay.schema_relay(&demo());
    assert_eq!(schema_relay.assign_missing_partitions().await.unwrap(), 1);
    let partition: i64 = db
        .client()
        .await
        .unwrap()
        .query_one("SELECT partition FROM demo.outbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(partition, partition_of("thing", "old", 16));
    schema_relay.drain(10).await.unwrap();
    assert_eq!(sink.accepted().len(), 1);
}

#[tokio::test]
async fn the_lag_counts_waiting_events_and_the_age_of_the_oldest() {
    let database = TestDatabase::create().await;
    let db = database.db();
    append(db, &[event("a", 1), event("b", 1)]).await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let relay = Relay::new(
        db.clone(),
        Arc::new(RecordingSink::default()),
        config("relay-a"),
    )
    .unwrap();
    let lag = relay.schema_relay(&demo()).measure_lag().await.unwrap();
    assert_eq!(lag.events, 2);
    assert!(
        lag.oldest_age >= std::time::Duration::from_millis(40),
        "{lag:?}"
    );
}

#[tokio::test]
async fn the_writer_appends_nothing_when_the_transaction_rolls_back() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let outbox = Outbox::new(demo());
    let outbox = &outbox;
    let events = [event("a", 1)];
    let events = &events;
    let refused = db
        .run_tx::<(), OutboxError, _>("test_rollback", move |tx| {
            Box::pin(async move {
                outbox.append(&tx, events).await?;
                Err(corebank_db::TxError::Abort(OutboxError::Invalid {
                    field: "test",
                    problem: "the business rule said no".to_owned(),
                }))
            })
        })
        .await;
    assert!(refused.is_err());
    assert_eq!(outbox_count(db).await, 0);
    // The counter row rolled back too: the next event is still the aggregate's first.
    assert_eq!(append(db, &[event("a", 2)]).await[0].aggregate_sequence, 1);
}

#[tokio::test]
async fn a_relay_refuses_a_configuration_that_cannot_work() {
    let database = TestDatabase::create().await;
    let mut bad = config("relay-a");
    bad.lease_duration_ms = 1_000;
    bad.publish_timeout_ms = 900;
    let error = Relay::new(
        database.db().clone(),
        Arc::new(RecordingSink::default()),
        bad,
    )
    .unwrap_err();
    assert_eq!(error.code(), "invalid_argument");
    assert!(error.to_string().contains("lease_duration_ms"), "{error}");
}
