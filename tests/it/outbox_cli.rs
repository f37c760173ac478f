//! The operator's side of the outbox in the real binary: `corebank outbox dead-letters` and
//! `corebank outbox replay`, and `corebank serve relay` refusing to start with nowhere to
//! publish.

use crate::common;
use std::process::Command;
use std::sync::Arc;

use corebank_db::Db;
use corebank_outbox::{
    AggregateRef, NewEvent, Outbox, OutboxError, OutboxEvent, Relay, RelayConfig, SchemaName, Sink,
    SinkError, SinkFuture,
};
use corebank_testkit::TestDatabase;

/// Refuses every event of aggregate `poison`, accepts the rest.
#[derive(Debug)]
struct RefusePoison;

impl Sink for RefusePoison {
    fn name(&self) -> &str {
        "refuse-poison"
    }

    fn publish<'a>(&'a self, event: &'a OutboxEvent) -> SinkFuture<'a> {
        Box::pin(async move {
            if event.aggregateid == "poison" {
                Err(SinkError::Refused {
                    sink: "refuse-poison".to_owned(),
                    message: "malformed for the downstream system".to_owned(),
                })
            } else {
                Ok(())
            }
        })
    }
}

fn corebank(database: &TestDatabase, args: &[&str]) -> Command {
    let mut command = common::corebank(args);
    command.env("DATABASE_URL", database.url());
    command
}

async fn outbox_count(db: &Db) -> i64 {
    db.client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM demo.outbox", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn operators_list_dead_letters_and_replay_them_from_the_command_line() {
    let database = TestDatabase::create().await;
    let db = database.db();
    let demo = SchemaName::new("demo").unwrap();
    let events: Vec<NewEvent> = ["poison", "poison", "fine"]
        .iter()
        .enumerate()
        .map(|(n, id)| {
            NewEvent::new(
                AggregateRef::new("thing", *id).unwrap(),
                "thing.changed",
                serde_json::json!({ "n": n }),
            )
            .unwrap()
        })
        .collect();
    let outbox = Outbox::new(demo.clone());
    let (outbox_ref, events_ref) = (&outbox, &events);
    db.run_tx::<_, OutboxError, _>("test_append", move |tx| {
        Box::pin(async move { outbox_ref.append(&tx, events_ref).await })
    })
    .await
    .unwrap();
    let relay = Relay::new(
        db.clone(),
        Arc::new(RefusePoison),
        RelayConfig::new(vec![demo.clone()]),
    )
    .unwrap();
    relay.schema_relay(&demo).drain(10).await.unwrap();
    assert_eq!(outbox_count(db).await, 0);

    let stdout = common::succeeded(&mut corebank(
        &database,
        &["outbox", "dead-letters", "--schema", "demo"],
    ));
    assert!(stdout.contains("thing/poison#1  refused"), "{stdout}");
    assert!(
        stdout.contains("malformed for the downstream system"),
        "{stdout}"
    );
    assert!(stdout.contains("thing/poison#2  parked"), "{stdout}");
    assert!(stdout.contains("2 dead letters"), "{stdout}");

    let stderr = common::refused(&mut corebank(
        &database,
        &["outbox", "replay", "--schema", "demo"],
    ));
    assert!(
        stderr.contains("--all"),
        "replaying everything must be asked for"
    );

    let stdout = common::succeeded(&mut corebank(
        &database,
        &[
            "outbox",
            "replay",
            "--schema",
            "demo",
            "--aggregate-type",
            "thing",
            "--aggregate-id",
            "poison",
        ],
    ));
    assert!(
        stdout.contains("replayed 2 events into demo.outbox"),
        "{stdout}"
    );
    assert_eq!(outbox_count(db).await, 2);
}

#[test]
fn serve_relay_without_a_nats_url_refuses_to_start_and_says_what_to_set() {
    // With its certificate, so that the missing NATS URL is what stops it.
    let stderr = common::refused(
        common::internal_env(&mut common::corebank(&["serve", "relay"]))
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env_remove("COREBANK_NATS_URL"),
    );
    assert!(stderr.contains("COREBANK_NATS_URL"), "{stderr}");
    assert!(stderr.contains("nats://"), "{stderr}");
}
