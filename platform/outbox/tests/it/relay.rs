//! The writer and the relay against a real PostgreSQL (the `demo` schema's outbox): order
//! per aggregate, sequences that survive deletes, fencing, dead letters and replay, lag.

use std::sync::Arc;

use crate::common::{
    RecordingSink, Rule, aggregate, append, config, demo, demo_relay, event, execute, outbox_count,
    recording_relay,
};
use corebank_db::Db;
use corebank_outbox::{
    DeadLetterStatus, Outbox, OutboxError, Relay, SchemaRelay, dead_letters, partition_of,
    replay_dead_letters,
};
use corebank_testkit::TestDatabase;
use corebank_testkit::query::{one_i64, pairs};

/// Each of `expected`'s aggregates, as published, is exactly 1..=its last sequence in order,
/// and the outbox is empty.
async fn assert_published_in_order_and_removed(
    sink: &RecordingSink,
    db: &Db,
    expected: &[(&str, i64)],
) {
    for (aggregate, last) in expected {
        assert_aggregate_in_order(sink, aggregate, *last);
    }
    assert_eq!(outbox_count(db).await, 0);
}

/// Drains `relay`, then checks [`assert_published_in_order_and_removed`].
async fn drain_in_order(
    relay: &mut SchemaRelay,
    sink: &RecordingSink,
    db: &Db,
    expected: &[(&str, i64)],
) {
    relay.drain(10).await.unwrap();
    assert_published_in_order_and_removed(sink, db, expected).await;
}

/// Nothing waits in the `demo` schema's dead letters.
async fn assert_no_dead_letters(db: &Db) {
    let waiting = dead_letters(db, &demo(), None, 10).await.unwrap();
    assert!(waiting.is_empty(), "{waiting:?}");
}

/// Every aggregate's sequences, as published, must be exactly 1..=n in order.
fn assert_each_aggregate_in_order(sink: &RecordingSink, expected_per_aggregate: i64) {
    for aggregate in sink.sequences().keys() {
        assert_aggregate_in_order(sink, aggregate, expected_per_aggregate);
    }
}

/// `aggregate`'s sequences, as published, must be exactly 1..=last in order.
fn assert_aggregate_in_order(sink: &RecordingSink, aggregate: &str, last: i64) {
    assert_eq!(
        sink.sequences().get(aggregate).cloned().unwrap_or_default(),
        (1..=last).collect::<Vec<_>>(),
        "aggregate {aggregate} was published out of order or with gaps/duplicates"
    );
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

    let (sink, mut schema_relay) = recording_relay(db, "relay-a");
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
    let (sink, mut schema_relay) = recording_relay(db, "relay-a");
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
    assert_aggregate_in_order(&sink, "a", 5);
    assert_aggregate_in_order(&sink, "b", 1);
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
    let mut stale = demo_relay(db, Arc::new(sink.clone()), "relay-a");
    let leases = stale.renew_leases().await.unwrap();
    assert_eq!(leases.len(), 16, "a lone relay holds every partition");

    let batch = stale.fetch_batch().await.unwrap();
    assert_eq!(batch.events.len(), 3);
    let outcome = stale.publish_batch(&batch).await;
    assert_eq!(sink.accepted().len(), 3);

    // Meanwhile its leases expired and another relay took every partition over.
    execute(db, "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second' WHERE owner = 'relay-a'").await;
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
    let mut expired = demo_relay(db, Arc::new(sink_c.clone()), "relay-c");
    execute(
        db,
        "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second'",
    )
    .await;
    expired.renew_leases().await.unwrap();
    let batch = expired.fetch_batch().await.unwrap();
    let outcome = expired.publish_batch(&batch).await;
    execute(
        db,
        "UPDATE demo.outbox_leases SET expires_at = now() - INTERVAL '1 second'",
    )
    .await;
    let report = expired.finish_batch(&batch, &outcome).await.unwrap();
    assert_eq!(report.published, 0);
    assert_eq!(outbox_count(db).await, 3);

    // The holder in good standing deletes them.
    other.renew_leases().await.unwrap();
    let report = other.drain(10).await.unwrap();
    assert_eq!(report.published, 3, "{report:?}");
    assert_eq!(outbox_count(db).await, 0);
}

/// Relays `a` and `b` publishing to one sink, `a` started first and holding every
/// partition.
async fn a_holding_every_partition_and_b(
    db: &Db,
) -> (Arc<RecordingSink>, SchemaRelay, SchemaRelay) {
    let sink = Arc::new(RecordingSink::default());
    let mut a = demo_relay(db, sink.clone(), "relay-a");
    let b = demo_relay(db, sink.clone(), "relay-b");
    assert_eq!(a.renew_leases().await.unwrap().len(), 16);
    (sink, a, b)
}

#[tokio::test]
async fn two_relays_share_the_partitions_without_overlap() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let (sink, mut a, mut b) = a_holding_every_partition_and_b(db).await;
    // The newcomer takes no live partition: it makes itself known; the first then gives
    // back its extras and the newcomer claims them.
    assert_eq!(b.renew_leases().await.unwrap().len(), 0);
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
    let sink = RecordingSink::with_rule("a", 2, Rule::Refuse);
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
    let mut schema_relay = demo_relay(db, Arc::new(sink.clone()), "relay-a");
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
    let sink = RecordingSink::with_rule("a", 2, Rule::Refuse);
    sink.rule("c", 1, Rule::Refuse);
    append(
        db,
        &[event("a", 1), event("a", 2), event("a", 3), event("c", 1)],
    )
    .await;
    let mut schema_relay = demo_relay(db, Arc::new(sink.clone()), "relay-a");
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
    assert_aggregate_in_order(&sink, "a", 5);
    assert_eq!(
        dead_letters(db, &demo(), None, 100).await.unwrap().len(),
        2,
        "the other aggregate stays dead until replayed"
    );

    // Replaying everything restores the rest.
    assert_eq!(replay_dead_letters(db, &demo(), None).await.unwrap(), 2);
    schema_relay.drain(10).await.unwrap();
    assert_aggregate_in_order(&sink, "c", 2);
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
    let sink = RecordingSink::with_rule("a", 2, Rule::FailTimes(2));
    append(
        db,
        &[event("a", 1), event("a", 2), event("a", 3), event("b", 1)],
    )
    .await;
    let mut schema_relay = demo_relay(db, Arc::new(sink.clone()), "relay-a");
    let first = schema_relay.step().await.unwrap();
    assert_eq!(first.published, 2, "{first:?}");
    assert_eq!(first.deferred, 2, "{first:?}");
    assert_eq!(outbox_count(db).await, 2);
    for _ in 0..5 {
        schema_relay.step().await.unwrap();
    }
    assert_published_in_order_and_removed(&sink, db, &[("a", 3), ("b", 1)]).await;
    assert_no_dead_letters(db).await;
}

#[tokio::test]
async fn rows_written_without_a_partition_are_given_theirs_before_they_are_relayed() {
    let database = TestDatabase::create().await;
    let db = database.db();
    execute(db, "INSERT INTO demo.outbox (id, aggregatetype, aggregateid, aggregate_sequence, type, payload, \
             created_at, partition) VALUES (gen_random_uuid(), 'thing', 'old', 1, 'thing.changed', '{}', now(), -1)").await;
    let (sink, mut schema_relay) = recording_relay(db, "relay-a");
    assert_eq!(schema_relay.assign_missing_partitions().await.unwrap(), 1);
    let partition = one_i64(db, "SELECT partition FROM demo.outbox", &[]).await;
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

/// Writes `thing/<id>#1` as a binary older than the partition column did (partition -1),
/// with the writer's counter at 1, so the next append for it is #2.
async fn append_old_row_without_a_partition(db: &corebank_db::Db, id: &str) {
    let client = db.client().await.unwrap();
    client
        .execute(
            "INSERT INTO demo.outbox (id, aggregatetype, aggregateid, aggregate_sequence, type, payload, \
             created_at, partition) VALUES (gen_random_uuid(), 'thing', $1, 1, 'thing.changed', '{}', now(), -1)",
            &[&id],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO demo.outbox_sequences (aggregatetype, aggregateid, last_sequence) VALUES ('thing', $1, 1)",
            &[&id],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_old_row_without_a_partition_is_published_before_the_later_events_of_its_aggregate() {
    let database = TestDatabase::create().await;
    let db = database.db();
    append_old_row_without_a_partition(db, "old").await;
    let later = append(db, &[event("old", 2), event("old", 3), event("new", 1)]).await;
    assert_eq!(later[0].aggregate_sequence, 2);
    // No housekeeping round in between: every step gives old rows their partition first.
    let (sink, mut schema_relay) = recording_relay(db, "relay-a");
    drain_in_order(&mut schema_relay, &sink, db, &[("old", 3), ("new", 1)]).await;
}

#[tokio::test]
async fn a_batch_holds_back_an_aggregate_that_still_has_rows_without_a_partition() {
    let database = TestDatabase::create().await;
    let db = database.db();
    append_old_row_without_a_partition(db, "old").await;
    append(db, &[event("old", 2), event("new", 1)]).await;
    let (sink, mut schema_relay) = recording_relay(db, "relay-a");
    schema_relay.renew_leases().await.unwrap();
    // Read before anything gave `old#1` its partition (as when more old rows wait than one
    // round assigns, or an old binary still writes): `old#2` is in the batch, `old#1` not.
    let batch = schema_relay.fetch_batch().await.unwrap();
    let in_batch: Vec<String> = batch.events.iter().map(|e| e.describe()).collect();
    assert!(in_batch.contains(&"thing/old#2".to_owned()), "{in_batch:?}");
    let outcome = schema_relay.publish_batch(&batch).await;
    schema_relay.finish_batch(&batch, &outcome).await.unwrap();
    assert_eq!(
        sink.sequences().get("old"),
        None,
        "old#2 must wait for old#1, which has no partition yet"
    );
    assert_aggregate_in_order(&sink, "new", 1);
    drain_in_order(&mut schema_relay, &sink, db, &[("old", 2)]).await;
}

#[tokio::test]
async fn a_replay_committed_while_a_batch_is_read_cannot_let_a_later_event_overtake_it() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = RecordingSink::with_rule("x", 3, Rule::Refuse);
    append(db, &(1..=6).map(|n| event("x", n)).collect::<Vec<_>>()).await;
    let mut schema_relay = demo_relay(db, Arc::new(sink.clone()), "relay-a");
    schema_relay.drain(10).await.unwrap();
    assert_eq!(sink.sequences().get("x"), Some(&vec![1, 2]));
    assert_eq!(dead_letters(db, &demo(), None, 10).await.unwrap().len(), 4);
    sink.clear_rules();
    append(db, &[event("x", 7)]).await;

    // An operator's replay of x#3..x#6 runs while the relay reads its next batch: the
    // dead letters are locked, so the relay's read waits on them, and the replay commits
    // meanwhile.
    let mut operator = db.client().await.unwrap();
    let replay = operator.transaction().await.unwrap();
    replay
        .batch_execute("LOCK TABLE demo.outbox_dead_letters IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let reading = tokio::spawn(async move {
        let batch = schema_relay.fetch_batch().await.unwrap();
        (schema_relay, batch)
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let waiting = one_i64(
            db,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND wait_event_type = 'Lock'",
            &[],
        )
        .await;
        if waiting > 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the relay never waited for the dead letters"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let columns = "aggregatetype, aggregateid, aggregate_sequence, id, type, payload, \
                   trace_context, created_at, partition";
    replay
        .batch_execute(&format!(
            "INSERT INTO demo.outbox ({columns}) SELECT {columns} FROM demo.outbox_dead_letters; \
             DELETE FROM demo.outbox_dead_letters"
        ))
        .await
        .unwrap();
    replay.commit().await.unwrap();

    let (mut schema_relay, batch) = reading.await.unwrap();
    let outcome = schema_relay.publish_batch(&batch).await;
    schema_relay.finish_batch(&batch, &outcome).await.unwrap();
    drain_in_order(&mut schema_relay, &sink, db, &[("x", 7)]).await;
    assert_no_dead_letters(db).await;
}

async fn live_partitions_of(db: &corebank_db::Db, owner: &str) -> Vec<(i64, i64)> {
    pairs(
        db,
        "SELECT partition, generation FROM demo.outbox_leases \
         WHERE owner = $1 AND partition >= 0 AND expires_at > now() ORDER BY partition",
        &[&owner],
    )
    .await
}

#[tokio::test]
async fn a_newcomer_never_takes_a_live_lease_and_the_holder_gives_back_extras_but_not_its_batch_in_flight()
 {
    let database = TestDatabase::create().await;
    let db = database.db();
    let (sink, mut a, mut b) = a_holding_every_partition_and_b(db).await;
    let mut events = Vec::new();
    for thing in 0..30 {
        events.push(event(&format!("x{thing}"), 1));
    }
    append(db, &events).await;
    let held_before = live_partitions_of(db, "relay-a").await;
    assert_eq!(held_before.len(), 16);

    // A batch is in flight at `a` when `b` starts.
    let batch = a.fetch_batch().await.unwrap();
    assert!(!batch.events.is_empty());
    assert!(
        b.renew_leases().await.unwrap().is_empty(),
        "every partition is leased to a live relay: the newcomer must wait for one to be given back"
    );
    assert_eq!(
        live_partitions_of(db, "relay-a").await,
        held_before,
        "nothing changed hands"
    );
    // The holder's next renewal sees two relays and gives back its extras, but never a
    // partition of the batch it is still publishing.
    let kept = a.renew_leases().await.unwrap();
    assert_eq!(kept.len(), 8);
    for event in &batch.events {
        let generation = batch.leases[&event.partition];
        assert!(
            kept.iter()
                .any(|l| l.partition == event.partition && l.generation == generation),
            "partition {} of the batch in flight was given back",
            event.partition
        );
    }
    let outcome = a.publish_batch(&batch).await;
    let report = a.finish_batch(&batch, &outcome).await.unwrap();
    assert!(report.lost_partitions.is_empty(), "{report:?}");
    assert_eq!(report.published, batch.events.len(), "{report:?}");

    // The newcomer then claims what was given back, each with a new generation.
    let claimed = b.renew_leases().await.unwrap();
    assert_eq!(claimed.len(), 8);
    for lease in &claimed {
        let (_, old_generation) = held_before
            .iter()
            .find(|(partition, _)| *partition == lease.partition)
            .unwrap();
        assert_eq!(lease.generation, old_generation + 1);
    }
    let from_a = a.drain(100).await.unwrap();
    let from_b = b.drain(100).await.unwrap();
    assert!(from_a.lost_partitions.is_empty() && from_b.lost_partitions.is_empty());
    assert_eq!(sink.accepted().len(), 30, "each event once");
    assert_eq!(outbox_count(db).await, 0);
}

#[tokio::test]
async fn a_relay_started_next_to_a_running_one_gets_its_share_within_a_few_lease_periods() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let sink = Arc::new(RecordingSink::default());
    let quick = |owner: &str| {
        let mut config = config(owner);
        config.lease_duration_ms = 900;
        config.publish_timeout_ms = 300;
        config
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let a = Relay::new(db.clone(), sink.clone(), quick("relay-a")).unwrap();
    let running_a = tokio::spawn(a.run(shutdown.clone()));
    let writer_db = db.clone();
    let writer_stop = shutdown.clone();
    let writer = tokio::spawn(async move {
        let mut written = 0_u32;
        while !writer_stop.is_cancelled() && written < 40 {
            let events: Vec<_> = (0..20)
                .map(|t| event(&format!("w{t:02}"), written))
                .collect();
            append(&writer_db, &events).await;
            written += 1;
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        written
    });
    let wait_for = |owner: &'static str, count: usize, within_ms: u64| {
        let db = db.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_millis(within_ms);
            loop {
                if live_partitions_of(&db, owner).await.len() == count {
                    return;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{owner} did not hold {count} partitions within {within_ms} ms"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    wait_for("relay-a", 16, 3_000).await;
    let b = Relay::new(db.clone(), sink.clone(), quick("relay-b")).unwrap();
    let running_b = tokio::spawn(b.run(shutdown.clone()));
    // Three lease periods: `a` sees `b` at its next renewal (a third of a lease), `b`
    // claims what `a` gave back at its own.
    wait_for("relay-b", 8, 2_700).await;
    wait_for("relay-a", 8, 500).await;

    let written = writer.await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while outbox_count(db).await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the outbox did not drain"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    shutdown.cancel();
    running_a.await.unwrap();
    running_b.await.unwrap();
    assert_eq!(sink.sequences().len(), 20);
    // Partitions changed hands only when given back between batches: no event was
    // published twice, and each aggregate's in order.
    assert_each_aggregate_in_order(&sink, i64::from(written));
    assert!(
        live_partitions_of(db, "relay-a").await.is_empty()
            && live_partitions_of(db, "relay-b").await.is_empty(),
        "stopped relays give their leases back"
    );
}
