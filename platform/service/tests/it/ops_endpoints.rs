//! The endpoints every component serves: liveness, readiness against a real database,
//! metrics (on the internal listener), request ids, gRPC health and PlatformInfo (on the
//! internal listener).

use corebank_api::platform::v1::GetVersionRequest;
use corebank_api::platform::v1::platform_info_client::PlatformInfoClient;
use corebank_db::{Db, DbSettings};
use corebank_service::{Component, InternalMode};
use corebank_testkit::health::assert_serving;
use corebank_testkit::{TestApp, TestDatabase, test_pki};

/// A client for plain-HTTP endpoints. reqwest is built without a crypto provider of its own
/// (internal clients pass theirs) and panics without one, even for `http://`: install ring,
/// the one every TLS object here uses (a no-op once installed).
fn plain_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

#[tokio::test]
async fn readyz_is_200_while_the_database_answers() {
    let database = TestDatabase::create().await;
    let app = TestApp::spawn(Component::new("ledger").with_db(database.db().clone())).await;
    let response = plain_http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    app.stop().await;
}

#[tokio::test]
async fn readyz_is_503_while_the_database_is_unreachable_and_healthz_stays_200() {
    // A port nothing listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = DbSettings::new(format!("postgres://postgres@127.0.0.1:{port}/corebank"));
    settings.connect_timeout_ms = 500;
    let db = Db::connect_lazy(&settings).unwrap();
    let app = TestApp::spawn(Component::new("ledger").with_db(db)).await;

    let response = plain_http().get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "database_unavailable");

    let alive = plain_http().get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(
        alive.status(),
        200,
        "liveness does not depend on the database"
    );
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_callers_id_is_kept() {
    let app = TestApp::spawn(Component::new("gateway")).await;
    let client = plain_http();

    let generated = client.get(app.url("/healthz")).send().await.unwrap();
    let id = generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);

    let kept = client
        .get(app.url("/healthz"))
        .header("x-request-id", "channel-42")
        .send()
        .await
        .unwrap();
    assert_eq!(kept.headers()["x-request-id"], "channel-42");

    let missing = client.get(app.url("/no/such/route")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text_format_on_the_internal_listener() {
    // The ledger's certificate only, as a process serving the ledger holds: the HTTP client
    // dials an IP address and so sends no server name to choose among several.
    let only_ledger = test_pki().only(&["ledger"]).unwrap();
    let app = TestApp::spawn_with(
        Component::new("ledger"),
        InternalMode::MutualTls(only_ledger),
    )
    .await;
    plain_http().get(app.url("/healthz")).send().await.unwrap();
    // Monitoring scrapes the internal listener with a certificate of its own; the public
    // listener does not serve metrics unless COREBANK_METRICS_PUBLIC=true.
    let public = plain_http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404);
    let response = app
        .http_client("monitoring", "ledger")
        .get(app.internal_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("corebank_http_requests_total{route=\"/healthz\",status=\"200\"}"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn grpc_health_and_platform_info_answer_any_component_on_the_internal_listener() {
    let app = TestApp::spawn(Component::new("deposits")).await;
    // Any component that proves who it is may ask; monitoring holds no other right.
    let channel = corebank_testkit::clients("monitoring")
        .endpoint(&app.internal_url(""), "deposits")
        .unwrap()
        .connect()
        .await
        .unwrap();

    assert_serving(channel.clone(), "").await;

    let mut info = PlatformInfoClient::new(channel);
    let version = info
        .get_version(GetVersionRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(version.component, "deposits");
    assert_eq!(version.version, env!("CARGO_PKG_VERSION"));
    app.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_request_in_flight_finish() {
    use axum::routing::get;
    // The handler says when it has the request, so the stop comes while it is in flight
    // however slow the machine (a fixed delay was not enough under load).
    let arrived = std::sync::Arc::new(tokio::sync::Notify::new());
    let in_handler = std::sync::Arc::clone(&arrived);
    let slow = axum::Router::new().route(
        "/slow",
        get(move || {
            let in_handler = std::sync::Arc::clone(&in_handler);
            async move {
                in_handler.notify_one();
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                "done"
            }
        }),
    );
    let app = TestApp::spawn(Component::new("gateway").with_public_routes(slow)).await;
    let url = app.url("/slow");
    let request = tokio::spawn(async move {
        plain_http()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    tokio::time::timeout(std::time::Duration::from_secs(30), arrived.notified())
        .await
        .expect("the request reaches the handler");
    app.stop().await;
    assert_eq!(request.await.unwrap(), "done");
}
