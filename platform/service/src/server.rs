//! The server every component runs, on two listeners (ADR 0009):
//!
//! - **public** (`COREBANK_HTTP_ADDR`): only what channels, operators and regulators may
//!   reach (the gateway's `/v1`, `/admin/v1`, its docs), plus `/healthz` and `/readyz`, and
//!   `/metrics` only when `COREBANK_METRICS_PUBLIC=true`;
//! - **internal** (`COREBANK_INTERNAL_ADDR`): gRPC services and internal HTTP routes (the
//!   rail's callbacks), behind mutual TLS and each service's list of allowed callers, plus
//!   health, metrics, gRPC health and `PlatformInfo` for any verified component.
//!
//! HTTP/1.1 and HTTP/2 are told apart per connection. Every request gets an `x-request-id`
//! (kept when the caller sent one, echoed in the response, carried in the log span).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::MatchedPath;
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
use crate::internal::access::AccessState;
use crate::internal::{
    AccessPolicy, Allow, PeerIdentity, Pki, PlainListener, TlsListener, enforce,
};
use crate::readiness::{HealthGroup, Readiness, ReadinessCheck, readyz};

/// A component as a server sees it: a name, public HTTP routes, internal gRPC services and
/// HTTP routes with who may call each, and what its readiness depends on (its database and
/// checks of its own). Merged components keep their readiness apart (`readiness`).
#[derive(Debug)]
pub struct Component {
    name: &'static str,
    public: Router,
    internal: Router,
    policy: AccessPolicy,
    /// This component's own group first, then those of the components merged into it.
    health: Vec<HealthGroup>,
}

impl Component {
    pub fn new(name: &'static str) -> Component {
        Component {
            name,
            public: Router::new(),
            internal: Router::new(),
            policy: AccessPolicy::default(),
            health: vec![HealthGroup::default()],
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The component is ready only while this database answers.
    #[must_use]
    pub fn with_db(mut self, db: Db) -> Component {
        self.own_health().db = Some(db);
        self
    }

    /// The component is ready only while `check` holds (`/readyz`, and gRPC health for this
    /// component's services).
    #[must_use]
    pub fn with_readiness(mut self, check: ReadinessCheck) -> Component {
        self.own_health().checks.push(check);
        self
    }

    fn own_health(&mut self) -> &mut HealthGroup {
        if self.health.is_empty() {
            self.health.push(HealthGroup::default());
        }
        &mut self.health[0]
    }

    /// Adds routes to the public listener (the gateway's surfaces only).
    #[must_use]
    pub fn with_public_routes(mut self, routes: Router) -> Component {
        self.public = self.public.merge(routes);
        self
    }

    /// Adds HTTP routes under `prefix` to the internal listener, callable by `allow`.
    #[must_use]
    pub fn with_internal_routes(mut self, prefix: &str, routes: Router, allow: Allow) -> Component {
        self.internal = self.internal.merge(routes);
        self.policy.allow(prefix, allow);
        self
    }

    /// Adds a gRPC service (a tonic `…Server`) to the internal listener, callable by
    /// `allow`; reported as serving by gRPC health.
    #[must_use]
    pub fn with_grpc<S>(mut self, service: S, allow: Allow) -> Component
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
        self.internal = self
            .internal
            .route_service(&format!("/{}/{{*rest}}", S::NAME), service);
        self.policy.allow(format!("/{}/", S::NAME), allow);
        self.own_health().services.push(S::NAME);
        self
    }

    /// Combines another component's routes into this one (`corebank up` serves several
    /// components on one pair of listeners).
    #[must_use]
    pub fn merge(mut self, other: Component) -> Component {
        self.public = self.public.merge(other.public);
        self.internal = self.internal.merge(other.internal);
        self.policy.merge(other.policy);
        self.health.extend(other.health);
        self
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr} ({listener}): {source}; free the port or set {setting} \
         (port 0 picks a free one)"
    )]
    Bind {
        addr: SocketAddr,
        listener: &'static str,
        setting: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the internal listener's TLS: {0}")]
    Tls(#[from] crate::internal::PkiError),
}

/// A server that is accepting connections on its listeners.
#[derive(Debug)]
pub struct RunningServer {
    /// `None` for a server with no public listener (`corebank up`'s legacy adapter and rail
    /// simulator: nothing of theirs is public).
    pub public_addr: Option<SocketAddr>,
    pub internal_addr: SocketAddr,
    pub component: &'static str,
    /// Whether the internal listener speaks mutual TLS (else plain text).
    pub internal_tls: bool,
    public: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    internal: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// `https://<internal address>` (or `http://` in plain-text mode).
    pub fn internal_url(&self) -> String {
        let scheme = if self.internal_tls { "https" } else { "http" };
        format!("{scheme}://{}", self.internal_addr)
    }

    /// Waits until both listeners have stopped (after the shutdown token was cancelled).
    pub async fn stopped(self) -> std::io::Result<()> {
        let public = match self.public {
            Some(task) => join(task).await,
            None => Ok(()),
        };
        let internal = join(self.internal).await;
        public.and(internal)
    }
}

async fn join(task: tokio::task::JoinHandle<std::io::Result<()>>) -> std::io::Result<()> {
    match task.await {
        Ok(result) => result,
        Err(join_error) => Err(std::io::Error::other(join_error)),
    }
}

/// How the internal listener authenticates its callers.
#[derive(Debug, Clone)]
pub enum InternalMode {
    /// Mutual TLS: this process's identities and the CA it trusts.
    MutualTls(Pki),
    /// Plain text (`COREBANK_INSECURE_INTERNAL=true`): callers only name themselves.
    Insecure,
}

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub requests_in_flight_max: usize,
    pub shutdown_grace: Duration,
    /// Serve `/metrics` on the public listener too (`COREBANK_METRICS_PUBLIC`).
    pub metrics_public: bool,
    pub internal: InternalMode,
}

impl ServeOptions {
    pub fn from_settings(settings: &crate::Settings, internal: InternalMode) -> ServeOptions {
        ServeOptions {
            requests_in_flight_max: settings.requests_in_flight_max,
            shutdown_grace: Duration::from_millis(settings.shutdown_grace_ms),
            metrics_public: settings.metrics_public,
            internal,
        }
    }
}

/// The listeners, bound.
#[derive(Debug)]
pub struct BoundListeners {
    pub public: Option<tokio::net::TcpListener>,
    pub internal: tokio::net::TcpListener,
}

impl BoundListeners {
    /// Binds both addresses.
    pub async fn bind(
        public: SocketAddr,
        internal: SocketAddr,
    ) -> Result<BoundListeners, ServeError> {
        let public_listener = tokio::net::TcpListener::bind(public)
            .await
            .map_err(|source| ServeError::Bind {
                addr: public,
                listener: "public",
                setting: "COREBANK_HTTP_ADDR",
                source,
            })?;
        let mut bound = BoundListeners::bind_internal(internal, "COREBANK_INTERNAL_ADDR").await?;
        bound.public = Some(public_listener);
        Ok(bound)
    }

    /// Binds only an internal listener (a server with nothing public); `setting` is the one
    /// to change when the address is taken.
    pub async fn bind_internal(
        internal: SocketAddr,
        setting: &'static str,
    ) -> Result<BoundListeners, ServeError> {
        let internal_listener =
            tokio::net::TcpListener::bind(internal)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: internal,
                    listener: "internal",
                    setting,
                    source,
                })?;
        Ok(BoundListeners {
            public: None,
            internal: internal_listener,
        })
    }

    pub fn public_addr(&self) -> std::io::Result<Option<SocketAddr>> {
        self.public
            .as_ref()
            .map(tokio::net::TcpListener::local_addr)
            .transpose()
    }

    pub fn internal_addr(&self) -> std::io::Result<SocketAddr> {
        self.internal.local_addr()
    }
}

/// Binds `public` and `internal` and serves `component` until `shutdown` is cancelled;
/// requests in flight then get `shutdown_grace` to finish.
pub async fn serve(
    component: Component,
    public: SocketAddr,
    internal: SocketAddr,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let listeners = BoundListeners::bind(public, internal).await?;
    serve_on(listeners, component, options, shutdown).await
}

/// Serves `component` on listeners bound beforehand (so components built before the server
/// starts can already know its addresses, e.g. to call each other in `corebank up`).
pub async fn serve_on(
    listeners: BoundListeners,
    component: Component,
    options: ServeOptions,
    shutdown: CancellationToken,
) -> Result<RunningServer, ServeError> {
    let bind_error = |listener, setting| {
        move |source| ServeError::Bind {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            listener,
            setting,
            source,
        }
    };
    let public_addr = listeners
        .public_addr()
        .map_err(bind_error("public", "COREBANK_HTTP_ADDR"))?;
    let internal_addr = listeners
        .internal
        .local_addr()
        .map_err(bind_error("internal", "COREBANK_INTERNAL_ADDR"))?;
    let name = component.name;
    // Install the recorder before the first request, so no early metric is lost.
    crate::metrics::handle();

    // gRPC health follows the readiness checks: evaluated once before the listeners open,
    // then every second.
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_service_status("", tonic_health::ServingStatus::NotServing)
        .await;
    for service in component.health.iter().flat_map(|group| &group.services) {
        health_reporter
            .set_service_status(*service, tonic_health::ServingStatus::NotServing)
            .await;
    }
    let readiness = Readiness::new(component.health.clone());
    let first = readiness.publish_first(&health_reporter).await;
    tokio::spawn(
        readiness
            .clone()
            .follow(health_reporter, first, shutdown.child_token()),
    );
    let component = component
        .with_grpc(health_service, Allow::AnyInternalComponent)
        .with_grpc(
            PlatformInfoServer::new(VersionService::new(name)),
            Allow::AnyInternalComponent,
        );

    let mut public = component
        .public
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness.clone()));
    if options.metrics_public {
        public = public.route("/metrics", get(metrics_text));
    }
    let public = with_common_layers(public.fallback(not_found), &options);
    let insecure = matches!(options.internal, InternalMode::Insecure);
    let access = Arc::new(AccessState {
        policy: Arc::new(component.policy),
        insecure,
    });
    let internal = component
        .internal
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(readiness))
        .route("/metrics", get(metrics_text))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(access, enforce));
    let internal = with_common_layers(internal, &options);

    let grace = options.shutdown_grace;
    let public_task = listeners.public.map(|listener| {
        tracing::info!(component = name, address = ?public_addr, "listening (public)");
        spawn_server(
            name,
            "public",
            listener.tap_io(|tcp| {
                // No Nagle delay: with several streams on one connection, a small response
                // must not wait for the client's delayed ACK of the previous one (40 ms).
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(%error, "cannot set TCP_NODELAY");
                }
            }),
            public.into_make_service(),
            grace,
            shutdown.clone(),
        )
    });
    let internal_task = match &options.internal {
        InternalMode::MutualTls(pki) => {
            let config = crate::internal::server_config(pki)?;
            let listener = TlsListener::new(listeners.internal, config, pki.trust_domain())
                .map_err(bind_error("internal", "COREBANK_INTERNAL_ADDR"))?;
            tracing::info!(component = name, address = %internal_addr, "listening (internal, mutual TLS)");
            spawn_server(
                name,
                "internal",
                listener,
                internal.into_make_service_with_connect_info::<PeerIdentity>(),
                grace,
                shutdown,
            )
        }
        InternalMode::Insecure => {
            tracing::warn!(
                component = name,
                address = %internal_addr,
                "COREBANK_INSECURE_INTERNAL=true: the internal listener speaks plain text and \
                 callers are not authenticated; never run a bank like this"
            );
            spawn_server(
                name,
                "internal",
                PlainListener(listeners.internal),
                internal.into_make_service_with_connect_info::<PeerIdentity>(),
                grace,
                shutdown,
            )
        }
    };
    Ok(RunningServer {
        public_addr,
        internal_addr,
        component: name,
        internal_tls: !insecure,
        public: public_task,
        internal: internal_task,
    })
}

/// What both listeners add around their routes (each sets its own fallback first, so that
/// on the internal listener an unknown path is answered only after the access check).
fn with_common_layers(router: Router, options: &ServeOptions) -> Router {
    router
        .layer(middleware::from_fn(record_http_metrics))
        .layer(ConcurrencyLimitLayer::new(options.requests_in_flight_max))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn spawn_server<L, M, S>(
    name: &'static str,
    which: &'static str,
    listener: L,
    make_service: M,
    grace: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<std::io::Result<()>>
where
    L: axum::serve::Listener,
    L::Addr: std::fmt::Debug,
    M: for<'a> tower::Service<axum::serve::IncomingStream<'a, L>, Error = Infallible, Response = S>
        + Send
        + 'static,
    for<'a> <M as tower::Service<axum::serve::IncomingStream<'a, L>>>::Future: Send,
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    tokio::spawn(async move {
        let graceful = axum::serve(listener, make_service)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned());
        let cut_off = async {
            shutdown.cancelled().await;
            tokio::time::sleep(grace).await;
        };
        tokio::select! {
            result = graceful.into_future() => result,
            () = cut_off => {
                tracing::warn!(component = name, listener = which, grace_ms = grace.as_millis(), "requests still in flight after the grace period: cut");
                Ok(())
            }
        }
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
