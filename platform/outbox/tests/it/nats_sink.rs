//! The NATS JetStream sink against a real server (`NATS_URL`, default
//! nats://127.0.0.1:4222). Each test skips, saying so, when no NATS server answers there.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{append, demo, demo_relay, event};
use chrono::Utc;
use corebank_outbox::async_nats;
use corebank_outbox::async_nats::jetstream;
use corebank_outbox::sink::nats::{self, NatsSink, NatsSinkConfig};
use corebank_outbox::{Inbox, InboxOutcome, OutboxError, OutboxEvent, Sink, SinkError};
use corebank_testkit::TestDatabase;
use futures_util::StreamExt as _;

fn nats_url() -> String {
    std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

/// A connection to the test NATS server, or `None` after printing why the test skips. Under
/// `CI=true` (where .ci/run starts one) a missing server fails the test instead.
async fn nats_or_skip(test: &str) -> Option<async_nats::Client> {
    let url = nats_url();
    let missing =
        match tokio::time::timeout(Duration::from_secs(3), async_nats::connect(url.as_str())).await
        {
            Ok(Ok(client)) => return Some(client),
            Ok(Err(error)) => format!(
                "no NATS server answers at {url} ({error}); start nats-server -js or set NATS_URL"
            ),
            Err(_) => format!(
                "no NATS server answered at {url} within 3 s; start nats-server -js or set NATS_URL"
            ),
        };
    common::skipped(test, &missing, ".ci/run starts one (nats-server -js)")
}

fn unique_prefix() -> String {
    format!("cbtest{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Every message of a stream, in stream order, through an ordered consumer.
async fn read_stream(
    client: &async_nats::Client,
    stream: &str,
    count: usize,
) -> Vec<async_nats::Message> {
    let jetstream = jetstream::new(client.clone());
    let stream = jetstream.get_stream(stream).await.unwrap();
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    let mut read = Vec::new();
    while read.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stream has fewer messages than expected")
            .unwrap()
            .unwrap();
        read.push(message.message);
    }
    read
}

async fn stream_message_count(client: &async_nats::Client, stream: &str) -> u64 {
    let jetstream = jetstream::new(client.clone());
    let mut stream = jetstream.get_stream(stream).await.unwrap();
    stream.info().await.unwrap().state.messages
}

#[tokio::test]
async fn the_nats_sink_publishes_each_event_with_its_id_as_message_id_and_the_broker_drops_repeats()
{
    let Some(client) = nats_or_skip("nats_sink_publishes").await else {
        return;
    };
    let database = TestDatabase::create().await;
    let db = database.db();
    let prefix = unique_prefix();
    let mut sink_config = NatsSinkConfig::new(&nats_url());
    sink_config.subject_prefix = prefix.clone();
    let sink = Arc::new(NatsSink::connect(sink_config, false).await.unwrap());
    let stream_name = sink.stream_name("demo");

    let written = append(
        db,
        &[
            event("a", 1),
            event("b", 1),
            event("a", 2),
            event("a", 3),
            event("b", 2),
        ],
    )
    .await;
    let report = demo_relay(db, sink.clone(), "relay-nats")
        .drain(10)
        .await
        .unwrap();
    assert_eq!(report.published, 5, "{report:?}");

    let messages = read_stream(&client, &stream_name, 5).await;
    let inbox = Inbox::new(demo(), "nats-test").unwrap();
    let mut per_aggregate: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for message in &messages {
        assert_eq!(message.subject.as_str(), format!("{prefix}.demo.thing"));
        let decoded = nats::decode_message(message).unwrap();
        let headers = message.headers.as_ref().unwrap();
        assert_eq!(
            headers.get("Nats-Msg-Id").unwrap().as_str(),
            decoded.id.to_string()
        );
        let original = written.iter().find(|w| w.id == decoded.id).unwrap();
        assert_eq!(decoded.aggregate_sequence, original.aggregate_sequence);
        assert_eq!(decoded.event_type, "thing.changed");
        assert_eq!(decoded.partition, original.partition);
        let outcome = db
            .run_tx::<_, OutboxError, _>("test_consume", |tx| {
                let (inbox, decoded) = (&inbox, &decoded);
                Box::pin(async move { inbox.accept(&tx, decoded).await })
            })
            .await
            .unwrap();
        assert_eq!(outcome, InboxOutcome::New);
        per_aggregate
            .entry(decoded.aggregateid.clone())
            .or_default()
            .push(decoded.aggregate_sequence);
    }
    assert_eq!(per_aggregate["a"], vec![1, 2, 3]);
    assert_eq!(per_aggregate["b"], vec![1, 2]);

    // Publishing an event again (a relay that crashed before deleting it) is acknowledged,
    // and JetStream drops the copy: same Nats-Msg-Id within the duplicate window.
    let again = nats::decode_message(&messages[0]).unwrap();
    sink.publish(&again).await.unwrap();
    assert_eq!(stream_message_count(&client, &stream_name).await, 5);

    jetstream::new(client.clone())
        .delete_stream(&stream_name)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_event_too_large_for_the_nats_server_is_refused_for_good() {
    let Some(client) = nats_or_skip("nats_sink_too_large").await else {
        return;
    };
    let mut sink_config = NatsSinkConfig::new(&nats_url());
    sink_config.subject_prefix = unique_prefix();
    let sink = NatsSink::connect(sink_config, false).await.unwrap();
    let too_large = client.server_info().max_payload + 1;
    let event = OutboxEvent {
        schema: "demo".to_owned(),
        id: uuid::Uuid::new_v4(),
        aggregatetype: "thing".to_owned(),
        aggregateid: "big".to_owned(),
        aggregate_sequence: 1,
        event_type: "thing.changed".to_owned(),
        payload: serde_json::Value::String("x".repeat(too_large)),
        trace_context: String::new(),
        created_at: Utc::now(),
        partition: 0,
    };
    let error = sink.publish(&event).await.unwrap_err();
    assert!(matches!(error, SinkError::Refused { .. }), "{error}");
    assert!(error.is_permanent());
    jetstream::new(client.clone())
        .delete_stream(sink.stream_name("demo"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_nats_sink_reports_a_server_that_does_not_answer_as_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let mut sink_config = NatsSinkConfig::new("nats://127.0.0.1:1");
    sink_config.timeout_ms = 500;
    let error = NatsSink::connect(sink_config, false).await.unwrap_err();
    assert_eq!(error.code(), "nats_unavailable");
    assert!(error.to_string().contains("nats://127.0.0.1:1"), "{error}");
}
