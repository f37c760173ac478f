//! The server every component runs: its HTTP routes and gRPC services on one port (HTTP/1.1
//! and HTTP/2 are told apart per connection), plus `/healthz`, `/readyz`, `/metrics`, the
//! standard gRPC health service and `PlatformInfo`. Every request gets an `x-request-id`
//! (kept when the caller sent one, echoed in the response, carried in the log span).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, State};
use axum::http::{Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::serve::ListenerExt as _;
use corebank_api::platform::v1::platform_info_server::PlatformInfoServer;
use corebank_db::Db;
use tokio_util::sync::CancellationToken;
use tonic::server::NamedService;
use tower::limit::ConcurrencyLimitLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::VersionService;

/// A component as a server sees it: a name, HTTP routes, gRPC services, and the database
/// its readiness depends on.
#[derive(Debug)]
pub struct Component {
    name: &'static str,
    router: Router,
    grpc_services: Vec<&'static str>,
    db: Option<Db>,
}

impl Component {
    pub fn new(name: &'static str) -> Component {
        Component {
            name,
            router: Router::new(),
            grpc_services: Vec::new(),
            db: None,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The component is ready only while this database answers.
    #[must_use]
    pub fn with_db(mut self, db: Db) -> Component {
        self.db = Some(db);
        self
    }

    /// Adds HTTP routes.
    #[must_use]
    pub fn with_routes(mut self, routes: Router) -> Component {
        self.router = self.router.merge(routes);
        self
    }

    /// Adds a gRPC service (a tonic `…Server`), reported as serving by gRPC health.
    #[must_use]
    pub fn with_grpc<S>(mut self, service: S) -> Component
    where
        S: tower::Service<Request<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: IntoResponse,
        S::Future: Send + 'static,
    {
        self.router = self
            .router
            .route_service(&format!("/{}/{{*rest}}", S::NAME), service);
        self.grpc_services.push(S::NAME);
        self
    }

    /// Combines another component's routes into this one (`corebank up` serves several
    /// components on one port).
    #[must_use]
    pub fn merge(mut self, other: Component) -> Component {
        self.router = self.router.merge(other.router);
        self.grpc_services.extend(other.grpc_services);
        if self.db.is_none() {
            self.db = other.db;
        }
        self
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: {source}; free the port or set COREBANK_LISTEN_ADDR \
         (port 0 picks a free one)"
    )]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A server that is accepting connections.
#[derive(Debug)]
pub struct RunningServer {
    pub local_addr: SocketAddr,
    pub component: &'static str,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Waits until the server has stopped (after its shutdown token was cancelled).
    pub async fn stopped(self) -> std::io::Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(join_error) => Err(std::io::Error::other(join_error)),
        }
    }
}

/// How a server runs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    pub requests_in_flight_max: usize,
    pub shutdown_grace: Duration,
}

impl ServeOptions {
    pub fn from_settings(settings: &crate::Settings) -> ServeOptions {
        ServeOptions {
            requests_in_flight_max: settings.requests_in_flight_max,
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
        }
    }
}

/// Binds `addr` and serves `component` until `shutdown` is cancelled; requests in flight
/// then get `shutdown_grace` to finish.
pub async fn serve(
    component: Component,
    addr: SocketAddr,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    serve_on(listener, component, options, shutdown).await
}

/// Serves `component` on a listener bound beforehand (so components built before the
/// server starts can already know its address, e.g. to call each other in `corebank up`).
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    component: Component,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let name = component.name;
    // Install the recorder before the first request, so no early metric is lost.
    crate::metrics::handle();

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    for service in &component.grpc_services {
        health_reporter
            .set_service_status(*service, tonic_health::ServingStatus::Serving)
            .await;
    }
    let readiness = component.db.clone();
    let component = component
        .with_grpc(health_service)
        .with_grpc(PlatformInfoServer::new(VersionService::new(name)));

    let app = component
        .router
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(middleware::from_fn(record_http_metrics))
        .layer(ConcurrencyLimitLayer::new(options.requests_in_flight_max))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid));

    tracing::info!(component = name, address = %local_addr, "listening");
    let grace = options.shutdown_grace;
    let task = tokio::spawn(async move {
        // No Nagle delay: with several streams on one connection, a small response must not
        // wait for the client's delayed ACK of the previous one (40 ms on Linux).
        let listener = listener.tap_io(|tcp| {
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%error, "cannot set TCP_NODELAY");
            }
        });
        let graceful =
            axum::serve(listener, app).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let cut_off = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = graceful => result,
            () = cut_off => {
                tracing::warn!(component = name, grace_ms = grace.as_millis(), "requests still in flight after the grace period: cut");
                Ok(())
            }
        }
    });
    Ok(RunningServer {
        local_addr,
        component: name,
        task,
    })
}

fn request_span(request: &Request<Body>) -> tracing::Span {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.path = %request.uri().path(),
        request.id = %request_id,
    )
}

async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({ "status": "alive" }))
}

async fn readyz(State(db): State<Option<Db>>) -> Response {
    let Some(db) = db else {
        return axum::Json(serde_json::json!({ "status": "ready", "checks": {} })).into_response();
    };
    match db.ping().await {
        Ok(()) => axum::Json(serde_json::json!({
            "status": "ready",
            "checks": { "database": "ok" },
        }))
        .into_response(),
        Err(error) => {
            tracing::warn!(error = %error, "not ready: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({
                    "status": "unavailable",
                    "checks": { "database": error.code() },
                })),
            )
                .into_response()
        }
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        crate::metrics::handle().render(),
    )
}

async fn not_found(request: Request<Body>) -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(serde_json::json!({
            "code": "not_found",
            "message": format!("no route for {} {}", request.method(), request.uri().path()),
            "retry_safe": false,
        })),
    )
        .into_response()
}

async fn record_http_metrics(request: Request<Body>, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!("corebank_http_requests_total", "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("corebank_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
