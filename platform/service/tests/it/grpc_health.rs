//! gRPC health tells the truth: it follows the same checks as `/readyz`, per service. Two
//! components share one server (as in `corebank up`); a failing check of one takes its own
//! service and the overall status to NOT_SERVING, leaves the other's SERVING, makes
//! `/readyz` answer 503, and all of it comes back when the check holds again.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response};
use corebank_service::{Component, ReadinessCheck};
use corebank_testkit::TestApp;
use corebank_testkit::health::health_status;
use tonic::server::NamedService;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// A gRPC service that answers nothing useful: only its name matters here.
#[derive(Clone)]
struct Named<const ALPHA: bool>;

impl NamedService for Named<true> {
    const NAME: &'static str = "corebank.test.v1.Alpha";
}

impl NamedService for Named<false> {
    const NAME: &'static str = "corebank.test.v1.Beta";
}

impl<const ALPHA: bool> tower::Service<Request<Body>> for Named<ALPHA> {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Body>) -> Self::Future {
        std::future::ready(Ok(Response::new(Body::empty())))
    }
}

/// Overall, alpha and beta all serving.
const ALL_SERVING: [ServingStatus; 3] = [ServingStatus::Serving; 3];

/// Waits (at most 3 s, past the 1 s re-evaluation) until the three statuses (overall, alpha,
/// beta) are as given.
async fn expect_statuses(
    client: &mut HealthClient<tonic::transport::Channel>,
    [overall, alpha, beta]: [ServingStatus; 3],
) {
    let want = [i32::from(overall), i32::from(alpha), i32::from(beta)];
    let mut seen = [0; 3];
    for _ in 0..60 {
        seen = [
            health_status(client, "").await,
            health_status(client, "corebank.test.v1.Alpha").await,
            health_status(client, "corebank.test.v1.Beta").await,
        ];
        if seen == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gRPC health is {seen:?}, expected {want:?} (overall, alpha, beta)");
}

#[tokio::test]
async fn grpc_health_follows_each_components_readiness_checks() {
    let alpha_ok = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&alpha_ok);
    let alpha = Component::new("ledger")
        .with_readiness(ReadinessCheck::new("alpha_worker", move || {
            let ok = flag.load(Ordering::Acquire);
            async move {
                if ok {
                    Ok(())
                } else {
                    Err("stopped".to_owned())
                }
            }
        }))
        .with_grpc(
            Named::<true>,
            corebank_service::internal::Allow::AnyInternalComponent,
        );
    let beta = Component::new("deposits").with_grpc(
        Named::<false>,
        corebank_service::internal::Allow::AnyInternalComponent,
    );
    let app = TestApp::spawn(alpha.merge(beta)).await;
    let mut client = HealthClient::new(app.channel("monitoring", "ledger"));
    let http = reqwest::Client::new();

    // Ready from the first call: the first evaluation happens before the listeners open.
    assert_eq!(
        health_status(&mut client, "").await,
        i32::from(ServingStatus::Serving)
    );
    expect_statuses(&mut client, ALL_SERVING).await;
    let ready = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["checks"]["alpha_worker"], "ok", "{body}");

    alpha_ok.store(false, Ordering::Release);
    let down = http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(down.status(), 503);
    let body: serde_json::Value = down.json().await.unwrap();
    assert_eq!(body["status"], "unavailable", "{body}");
    assert_eq!(body["checks"]["alpha_worker"], "stopped", "{body}");
    let alpha_down = [
        ServingStatus::NotServing,
        ServingStatus::NotServing,
        ServingStatus::Serving,
    ];
    expect_statuses(&mut client, alpha_down).await;

    alpha_ok.store(true, Ordering::Release);
    expect_statuses(&mut client, ALL_SERVING).await;
    assert_eq!(
        http.get(app.url("/readyz")).send().await.unwrap().status(),
        200
    );
    app.stop().await;
}
