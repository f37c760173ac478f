//! The idempotency store against a real PostgreSQL: one owner per key, replays, mismatches,
//! leases taken over, retention.

use std::sync::Arc;
use std::time::Duration;

use corebank_gateway::audit::AuditRecord;
use corebank_gateway::idempotency::{Begin, Fingerprint, IdempotencyStore};
use corebank_testkit::TestDatabase;
use uuid::Uuid;

fn request<'a>(key: &'a str, body_hash: &'a str) -> Fingerprint<'a> {
    Fingerprint {
        client: "channel-app",
        key,
        method: "POST",
        path: "/v1/transfers",
        body_hash,
    }
}

fn record(outcome: &str) -> AuditRecord {
    AuditRecord {
        at: chrono::Utc::now(),
        actor: "channel-app".to_owned(),
        surface: "channel".to_owned(),
        action: "POST /v1/transfers".to_owned(),
        resource: "transfer".to_owned(),
        origin: "127.0.0.1".to_owned(),
        outcome: outcome.to_owned(),
        request_id: "req-1".to_owned(),
        route: None,
        details: serde_json::json!({}),
    }
}

fn store_of(database: &TestDatabase, lease: Duration, retention: Duration) -> IdempotencyStore {
    IdempotencyStore::new(database.db_for("gateway"), lease, retention)
}

/// Claims the key of `request`, which must be free to claim (`why` says why); answers the
/// owner.
async fn claimed(store: &IdempotencyStore, request: Fingerprint<'_>, why: &str) -> Uuid {
    let Begin::Proceed { owner, .. } = store.begin(request).await.unwrap() else {
        panic!("{why}");
    };
    owner
}

/// Whether `owner`'s answer `status` and `body` to `request` was stored, audited with the
/// status.
async fn completed(
    store: &IdempotencyStore,
    request: Fingerprint<'_>,
    owner: Uuid,
    status: u16,
    body: &serde_json::Value,
) -> bool {
    let audit = record(&status.to_string());
    store
        .complete(request, owner, status, body, &audit)
        .await
        .unwrap()
}

async fn audit_rows(database: &TestDatabase) -> i64 {
    database
        .db_for("gateway")
        .client()
        .await
        .unwrap()
        .query_one("SELECT COUNT(*) FROM audit_log", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_completed_request_replays_and_another_request_under_its_key_is_refused() {
    let database = TestDatabase::create().await;
    let store = store_of(
        &database,
        Duration::from_secs(30),
        Duration::from_secs(3_600),
    );
    let Begin::Proceed { owner, reclaimed } = store.begin(request("k1", "h1")).await.unwrap()
    else {
        panic!("a new key is claimed");
    };
    assert!(!reclaimed);
    assert!(matches!(
        store.begin(request("k1", "h1")).await.unwrap(),
        Begin::InFlight { retry_after_s } if retry_after_s >= 1
    ));
    let body = serde_json::json!({"entry_id": "e1", "amount": "10.00"});
    assert!(completed(&store, request("k1", "h1"), owner, 201, &body).await);
    assert_eq!(
        store.begin(request("k1", "h1")).await.unwrap(),
        Begin::Replay {
            status: 201,
            body,
            route: None
        }
    );
    assert_eq!(
        store.begin(request("k1", "other-body")).await.unwrap(),
        Begin::Mismatch
    );
    assert_eq!(
        audit_rows(&database).await,
        1,
        "the answer and its audit row together"
    );
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_one_key_have_one_owner() {
    let database = TestDatabase::create().await;
    let store = Arc::new(store_of(
        &database,
        Duration::from_secs(30),
        Duration::from_secs(3_600),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let store = Arc::clone(&store);
        tasks.spawn(async move { store.begin(request("same", "h")).await.unwrap() });
    }
    let mut owners = 0;
    let mut in_flight = 0;
    while let Some(begin) = tasks.join_next().await {
        match begin.unwrap() {
            Begin::Proceed { .. } => owners += 1,
            Begin::InFlight { .. } => in_flight += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((owners, in_flight), (1, 99));
}

#[tokio::test]
async fn a_key_whose_owner_crashed_is_taken_over_after_its_lease() {
    let database = TestDatabase::create().await;
    let store = store_of(
        &database,
        Duration::from_millis(200),
        Duration::from_secs(3_600),
    );
    let crashed = claimed(&store, request("k", "h"), "claimed").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let Begin::Proceed {
        owner: successor,
        reclaimed,
    } = store.begin(request("k", "h")).await.unwrap()
    else {
        panic!("the lease passed: the key is taken over");
    };
    assert!(reclaimed);
    // The crashed owner waking up stores nothing; the successor's answer is the one.
    let late = serde_json::json!({"late": true});
    assert!(!completed(&store, request("k", "h"), crashed, 201, &late).await);
    let body = serde_json::json!({"done": true});
    assert!(completed(&store, request("k", "h"), successor, 201, &body).await);
    assert_eq!(
        store.begin(request("k", "h")).await.unwrap(),
        Begin::Replay {
            status: 201,
            body,
            route: None
        }
    );
}

#[tokio::test]
async fn an_abandoned_key_runs_again_and_an_expired_one_is_free() {
    let database = TestDatabase::create().await;
    let store = store_of(
        &database,
        Duration::from_secs(30),
        Duration::from_millis(100),
    );
    let owner = claimed(&store, request("k", "h"), "claimed").await;
    store
        .abandon(request("k", "h"), owner, &record("503"))
        .await
        .unwrap();
    let owner = claimed(
        &store,
        request("k", "h"),
        "an abandoned key is claimed again",
    )
    .await;
    let empty = serde_json::json!({});
    completed(&store, request("k", "h"), owner, 200, &empty).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Past retention, even another request may use the key.
    assert!(matches!(
        store.begin(request("k", "new-body")).await.unwrap(),
        Begin::Proceed { .. }
    ));
    assert_eq!(audit_rows(&database).await, 2);
    let purge = store_of(&database, Duration::from_secs(30), Duration::from_millis(1));
    let owner = claimed(&purge, request("old", "h"), "claimed").await;
    completed(&purge, request("old", "h"), owner, 200, &empty).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(purge.purge_expired(100).await.unwrap(), 1);
}

#[tokio::test]
async fn a_retry_under_a_key_goes_to_the_side_its_first_attempt_went_to() {
    let database = TestDatabase::create().await;
    let store = store_of(
        &database,
        Duration::from_secs(30),
        Duration::from_secs(3_600),
    );
    let owner = claimed(&store, request("k", "h"), "claimed").await;
    assert_eq!(
        store
            .pin_side(request("k", "h"), owner, "legacy")
            .await
            .unwrap(),
        "legacy"
    );
    // The attempt failed in a way that is safe to retry; the retry finds the route changed.
    store
        .abandon(request("k", "h"), owner, &record("504"))
        .await
        .unwrap();
    let Begin::Proceed {
        owner: retry,
        reclaimed,
    } = store.begin(request("k", "h")).await.unwrap()
    else {
        panic!("an abandoned key is claimed again at once");
    };
    assert!(reclaimed);
    assert_eq!(
        store
            .pin_side(request("k", "h"), retry, "modern")
            .await
            .unwrap(),
        "legacy",
        "the retry goes where the first attempt went"
    );
    // The old owner can pin nothing any more.
    assert_eq!(
        store
            .pin_side(request("k", "h"), owner, "modern")
            .await
            .unwrap_err()
            .code,
        "request_in_flight"
    );
}
