//! A dead batcher must not look healthy: a panic in the batcher answers the requests it held
//! with a retry-safe `unavailable`, takes `/readyz` and gRPC health down until the
//! supervisor has restarted it, counts the restart, and the ledger then writes again.

use std::sync::Arc;
use std::time::Duration;

use crate::wire::*;
use corebank_api::ledger::v1 as pb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_kernel::{JournalEntryId, SystemClock};
use corebank_ledger::{Ledger, LedgerConfig};
use corebank_service::InternalMode;
use corebank_testkit::{TestApp, TestDatabase, test_pki};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const LEDGER_SERVICE: &str = "corebank.ledger.v1.Ledger";

/// A transfer of 1.00 under the entry id `id`.
fn transfer_of_one(id: &str, debit: &str, credit: &str) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        id: id.to_owned(),
        ..transfer(debit, credit, "1.00")
    }
}

/// Opens an account without a limit; answers its id.
async fn open(
    client: &mut LedgerClient<tonic::transport::Channel>,
    code: &str,
    account_type: pb::AccountType,
) -> String {
    let request = account(code, account_type, pb::LimitKind::None, "");
    let result = client.create_account(request).await.unwrap().into_inner();
    match result.outcome {
        Some(pb::account_result::Outcome::Account(account)) => account.id,
        other => panic!("the account was not opened: {other:?}"),
    }
}

async fn health(client: &mut HealthClient<tonic::transport::Channel>, service: &str) -> i32 {
    client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

/// Whether the ledger's gRPC health reports `status` within `limit`.
async fn health_becomes(
    client: &HealthClient<tonic::transport::Channel>,
    status: ServingStatus,
    limit: Duration,
) -> bool {
    eventually(limit, || async {
        let mut client = client.clone();
        health(&mut client, LEDGER_SERVICE).await == i32::from(status)
    })
    .await
}

/// `GET path` on the ledger's internal listener, as the monitoring.
async fn monitoring_get(app: &TestApp, path: &str) -> reqwest::Response {
    app.http_client("monitoring", "ledger")
        .get(app.internal_url(path))
        .send()
        .await
        .unwrap()
}

/// Polls `probe` every 50 ms until it returns true, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if probe().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn a_panicking_batcher_is_restarted_and_reported_down_meanwhile() {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    // A long backoff keeps the batcher down long enough to see it from outside.
    let ledger = Ledger::start(
        database.db_for("ledger"),
        Arc::new(SystemClock),
        LedgerConfig {
            batcher_restart_backoff_ms: 2_500,
            ..LedgerConfig::default()
        },
        shutdown.clone(),
    );
    // The ledger's certificate only, as a process serving the ledger holds (an HTTP client
    // dialling an IP address sends no server name to choose among several).
    let app = TestApp::spawn_with(
        corebank_ledger::grpc::component_of(ledger.clone()),
        InternalMode::MutualTls(test_pki().only(&["ledger"]).unwrap()),
    )
    .await;
    let mut client = LedgerClient::new(app.channel("deposits", "ledger"));
    let mut health_client = HealthClient::new(app.channel("deposits", "ledger"));
    let http = reqwest::Client::new();

    let cash = open(&mut client, "cash", pb::AccountType::Asset).await;
    let customer = open(&mut client, "customer", pb::AccountType::Liability).await;
    let ok = client
        .create_transfer(transfer(&cash, &customer, "1.00"))
        .await;
    assert!(ok.is_ok(), "{ok:?}");
    assert!(
        health_becomes(
            &health_client,
            ServingStatus::Serving,
            Duration::from_secs(5)
        )
        .await,
        "the ledger's gRPC health never reported SERVING"
    );
    let ready = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ledger.batcher_restarts(), 0);

    // The batcher panics with this request in hand: the caller gets a retry-safe refusal.
    ledger.inject_batcher_panic();
    let held_id = JournalEntryId::generate().to_string();
    let refused = client
        .create_transfer(transfer_of_one(&held_id, &cash, &customer))
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::Unavailable, "unavailable");
    assert!(refused.message().contains("retry"), "{}", refused.message());
    // The supervisor counts the restart once the panicked task has unwound (the refusal
    // reaches the caller as the batch's replies are dropped, a moment before).
    assert!(
        eventually(Duration::from_secs(2), || async {
            ledger.batcher_restarts() == 1
        })
        .await,
        "the restart was not counted"
    );

    // While it is down: /readyz says so, and so does gRPC health (within its 1 s interval).
    let down = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["checks"]["ledger_batcher"], "restarting", "{body}");
    assert_eq!(body["checks"]["database"], "ok", "{body}");
    let internal_down = monitoring_get(&app, "/readyz").await;
    assert_eq!(internal_down.status(), 503);
    assert!(
        health_becomes(
            &health_client,
            ServingStatus::NotServing,
            Duration::from_millis(2_000)
        )
        .await,
        "gRPC health kept reporting SERVING while the batcher was down"
    );
    assert_eq!(
        health(&mut health_client, "").await,
        i32::from(ServingStatus::NotServing)
    );

    // A request sent meanwhile waits for the restart rather than failing.
    let queued_id = JournalEntryId::generate().to_string();
    let queued = client
        .create_transfer(transfer_of_one(&queued_id, &cash, &customer))
        .await;
    assert!(queued.is_ok(), "{queued:?}");

    // Back up: ready, SERVING, and the refused request can be retried with its id, once.
    assert!(
        eventually(Duration::from_secs(3), || async {
            http.get(app.url("/readyz")).send().await.unwrap().status() == 200
        })
        .await,
        "/readyz did not come back after the restart"
    );
    assert!(
        health_becomes(
            &health_client,
            ServingStatus::Serving,
            Duration::from_secs(3)
        )
        .await,
        "gRPC health did not come back after the restart"
    );
    let mut replayed = Vec::new();
    for _ in 0..2 {
        let sent = client
            .create_transfer(transfer_of_one(&held_id, &cash, &customer))
            .await
            .unwrap();
        replayed.push(sent.into_inner().replayed);
    }
    assert_eq!(
        replayed,
        [false, true],
        "the held request must reach the books on its retry, and only once"
    );

    let internal_metrics = monitoring_get(&app, "/metrics").await.text().await.unwrap();
    assert!(
        internal_metrics
            .lines()
            .any(|line| line.starts_with("corebank_ledger_batcher_restarts_total")),
        "no restart counter in the metrics: {internal_metrics}"
    );
    let verify = client.verify(pb::VerifyRequest::default()).await.unwrap();
    assert!(verify.into_inner().intact);
    shutdown.cancel();
}
