//! Readiness: what a component needs before it can take requests (its database, and checks
//! of its own such as the ledger's batcher), answered by `/readyz` and by gRPC health.
//!
//! Checks are grouped by the component that declared them: in `corebank up` several
//! components share one server, and a service is reported NOT_SERVING only when a check of
//! its own component fails (the ledger's batcher being down does not take deposits' service
//! down). `/readyz` and the overall gRPC health service (`""`) are ready only when every
//! group is. gRPC health is re-evaluated every second, so watchers see a change within that.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use corebank_db::Db;
use tokio_util::sync::CancellationToken;

/// How often gRPC health follows the checks.
pub(crate) const HEALTH_INTERVAL: Duration = Duration::from_secs(1);

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// One condition a component's readiness depends on: `Ok` when it holds, otherwise a short
/// stable reason (shown in `/readyz`'s `checks`).
#[derive(Clone)]
pub struct ReadinessCheck {
    name: &'static str,
    check: Arc<dyn Fn() -> CheckFuture + Send + Sync>,
}

impl std::fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl ReadinessCheck {
    /// A check that runs `check` each time readiness is asked.
    pub fn new<F, Fut>(name: &'static str, check: F) -> ReadinessCheck
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        ReadinessCheck {
            name,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    async fn run(&self) -> Result<(), String> {
        (self.check)().await
    }
}

/// The checks of one component, and the gRPC services they stand for.
#[derive(Debug, Clone, Default)]
pub(crate) struct HealthGroup {
    pub(crate) services: Vec<&'static str>,
    pub(crate) db: Option<Db>,
    pub(crate) checks: Vec<ReadinessCheck>,
}

/// Every group of a server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Readiness {
    groups: Arc<Vec<HealthGroup>>,
}

/// One evaluation: each check's answer by name, and whether each group is ready.
struct Report {
    checks: serde_json::Map<String, serde_json::Value>,
    groups_ready: Vec<bool>,
}

impl Report {
    fn ready(&self) -> bool {
        self.groups_ready.iter().all(|ready| *ready)
    }
}

impl Readiness {
    pub(crate) fn new(groups: Vec<HealthGroup>) -> Readiness {
        Readiness {
            groups: Arc::new(groups),
        }
    }

    async fn evaluate(&self) -> Report {
        let mut checks = serde_json::Map::new();
        let mut groups_ready = Vec::with_capacity(self.groups.len());
        for group in self.groups.iter() {
            let mut ready = true;
            if let Some(db) = &group.db {
                match db.ping().await {
                    Ok(()) => {
                        checks.entry("database").or_insert_with(|| "ok".into());
                    }
                    Err(error) => {
                        ready = false;
                        checks.insert("database".to_owned(), error.code().into());
                    }
                }
            }
            for check in &group.checks {
                match check.run().await {
                    Ok(()) => {
                        checks.insert(check.name().to_owned(), "ok".into());
                    }
                    Err(reason) => {
                        ready = false;
                        checks.insert(check.name().to_owned(), reason.into());
                    }
                }
            }
            groups_ready.push(ready);
        }
        Report {
            checks,
            groups_ready,
        }
    }

    /// Sets gRPC health from one evaluation (each group's services and the overall service
    /// `""`) if it differs from `last`; answers what it published.
    async fn publish(
        &self,
        reporter: &tonic_health::server::HealthReporter,
        last: Option<&Vec<bool>>,
    ) -> Vec<bool> {
        let report = self.evaluate().await;
        if last != Some(&report.groups_ready) {
            if !report.ready() {
                tracing::warn!(checks = ?report.checks, "not ready: gRPC health reports NOT_SERVING");
            } else if last.is_some() {
                tracing::info!("ready again: gRPC health reports SERVING");
            }
            reporter
                .set_service_status("", serving(report.ready()))
                .await;
            for (group, ready) in self.groups.iter().zip(&report.groups_ready) {
                for service in &group.services {
                    reporter.set_service_status(*service, serving(*ready)).await;
                }
            }
        }
        report.groups_ready
    }

    /// The first evaluation, before the server takes calls (bounded: a database that does
    /// not answer leaves everything NOT_SERVING for [`Readiness::follow`] to correct).
    pub(crate) async fn publish_first(
        &self,
        reporter: &tonic_health::server::HealthReporter,
    ) -> Option<Vec<bool>> {
        tokio::time::timeout(HEALTH_INTERVAL * 2, self.publish(reporter, None))
            .await
            .ok()
    }

    /// Keeps gRPC health in step with the checks, every [`HEALTH_INTERVAL`], until
    /// `shutdown`.
    pub(crate) async fn follow(
        self,
        reporter: tonic_health::server::HealthReporter,
        mut last: Option<Vec<bool>>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(HEALTH_INTERVAL) => {}
                () = shutdown.cancelled() => return,
            }
            last = Some(self.publish(&reporter, last.as_ref()).await);
        }
    }
}

fn serving(ready: bool) -> tonic_health::ServingStatus {
    if ready {
        tonic_health::ServingStatus::Serving
    } else {
        tonic_health::ServingStatus::NotServing
    }
}

/// `/readyz`: 200 with every check's answer, or 503 naming the ones that failed.
pub(crate) async fn readyz(State(readiness): State<Readiness>) -> Response {
    let report = readiness.evaluate().await;
    if report.ready() {
        axum::Json(serde_json::json!({ "status": "ready", "checks": report.checks }))
            .into_response()
    } else {
        tracing::warn!(checks = ?report.checks, "not ready");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "checks": report.checks })),
        )
            .into_response()
    }
}
