//! The gateway component: authentication, routing, upstreams, idempotency and the HTTP
//! surfaces (`/v1`, `/admin/v1`) put together from settings.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};
use corebank_db::Db;
use corebank_service::internal::access::Allow;
use corebank_service::internal::assertion::AssertionSigner;
use corebank_service::internal::{InternalClients, allowed_callers};
use corebank_service::{Component, Settings};
use tokio_util::sync::CancellationToken;

use crate::auth::{AuthConfig, Authenticator};
use crate::channel::{self, GatewayState};
use crate::directory::Directory;
use crate::error::ApiError;
use crate::idempotency::IdempotencyStore;
use crate::principal::Surface;
use crate::routing::Router;
use crate::shadow::{Shadow, ShadowConfig};
use crate::upstream::Upstreams;

/// How often expired idempotency records are purged, and how many at a time.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);
const PURGE_BATCH_MAX: i64 = 1_000;

/// Where the two sides are, and how the gateway proves itself to them.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub legacy_url: String,
    pub modern_url: String,
    /// The gateway's internal clients (its certificate, or plain text in development).
    pub clients: InternalClients,
}

/// The gateway on `db` (search path `gateway`); its background tasks stop with `shutdown`.
pub async fn component(
    settings: &Settings,
    db: Db,
    upstream: &Upstream,
    shutdown: CancellationToken,
) -> Result<Component, ApiError> {
    let auth = Authenticator::new(AuthConfig::from_settings(settings))
        .await
        .map_err(|error| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                error.code(),
                error.to_string(),
            )
        })?;
    auth.spawn_refresh(shutdown.clone());
    let router = Router::load(db.clone()).await?;
    router.spawn_poller(
        Duration::from_millis(settings.gateway_route_poll_ms),
        shutdown.clone(),
    );
    let request_timeout = Duration::from_millis(settings.gateway_request_timeout_ms);
    let idempotency = IdempotencyStore::new(
        db.clone(),
        Duration::from_millis(settings.gateway_idempotency_lease_ms),
        Duration::from_secs(
            settings
                .gateway_idempotency_retention_h
                .saturating_mul(3_600),
        ),
    );
    spawn_purge(idempotency.clone(), shutdown.clone());
    let shadow = Shadow::start(
        db.clone(),
        router.clone(),
        ShadowConfig::new(settings.gateway_shadow_queue_max),
        shutdown.clone(),
    );
    let directory = Directory::new(db.clone());
    crate::homes::spawn_change_feed(
        directory.clone(),
        Duration::from_millis(settings.gateway_route_poll_ms),
        shutdown.clone(),
    );
    let upstreams = Upstreams::new(
        &upstream.clients,
        &upstream.legacy_url,
        &upstream.modern_url,
        request_timeout,
    )?;
    // The migration component: where the settings say, else on the modern side's address.
    let (migration_url, migration_setting) = match &settings.gateway_migration_url {
        Some(url) => (url.as_str(), "COREBANK_GATEWAY_MIGRATION_URL"),
        None => (upstream.modern_url.as_str(), "COREBANK_GATEWAY_MODERN_URL"),
    };
    let migrations_client = corebank_api::migration::v1::migrations_client::MigrationsClient::new(
        upstream
            .clients
            .endpoint(
                migration_url,
                corebank_service::internal::component_names::MIGRATION,
            )
            .map_err(|error| ApiError::internal(format!("{migration_setting}: {error}")))?
            .timeout(request_timeout)
            .connect_lazy(),
    );
    let payments_review = upstreams.payments_review();
    let state = Arc::new(GatewayState {
        auth,
        router: router.clone(),
        upstreams,
        directory: directory.clone(),
        idempotency,
        shadow: shadow.clone(),
        request_timeout,
        migration_hold: Duration::from_millis(settings.migration_hold_ms),
        crossings: migrations_client.clone(),
    });
    // The operator behind a saga action is signed with the key of the certificate the
    // gateway calls with, so SagaAdmin can check it against the connection.
    let signer = upstream
        .clients
        .identity()
        .map_err(|error| ApiError::internal(format!("the gateway's certificate: {error}")))?
        .map(|identity| AssertionSigner::new(&identity).map(Arc::new))
        .transpose()
        .map_err(|error| ApiError::internal(format!("the gateway's signing key: {error}")))?;
    let saga_admin = upstream
        .clients
        .endpoint(
            &upstream.modern_url,
            corebank_service::internal::component_names::PAYMENTS,
        )
        .map_err(|error| ApiError::internal(format!("COREBANK_GATEWAY_MODERN_URL: {error}")))?
        .timeout(request_timeout)
        .connect_lazy();
    // Four eyes on saga force-compensate and mark-resolved, screening decisions, product
    // definitions and migrations.
    let approvals = crate::approvals::Approvals::new(
        db.clone(),
        Duration::from_secs(settings.gateway_approval_ttl_s),
        corebank_api::saga::v1::saga_admin_client::SagaAdminClient::new(saga_admin.clone()),
        payments_review,
        state.upstreams.side(crate::routing::Side::Modern).deposits,
        migrations_client.clone(),
        signer.clone(),
    );
    let migrations = crate::migrations::Migrations::new(migrations_client, Arc::clone(&approvals));
    let products = crate::products::Products::new(
        state.upstreams.side(crate::routing::Side::Legacy).deposits,
        state.upstreams.side(crate::routing::Side::Modern).deposits,
        Arc::clone(&approvals),
    );
    let sagas = crate::sagas::router(saga_admin, db.clone(), signer, Arc::clone(&approvals))
        .merge(crate::approvals::admin::router(approvals));
    let admin = router
        .admin_router()
        .merge(shadow.admin_router())
        .merge(sagas)
        .merge(crate::products::router(products))
        .merge(crate::migrations::router(migrations))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate_admin,
        ));
    // The API reference (`/openapi.json`, `/docs`) is served without a token.
    let routes = channel::router(state)
        .merge(admin)
        .merge(crate::openapi::router())
        .layer(DefaultBodyLimit::max(settings.gateway_body_max_bytes))
        .layer(axum::middleware::from_fn_with_state(
            crate::nul_text::BodyLimit {
                bytes_max: settings.gateway_body_max_bytes,
            },
            crate::nul_text::refuse_nul,
        ))
        .layer(axum::middleware::from_fn(envelope_rejections));
    Ok(Component::new("gateway")
        .with_db(db)
        .with_public_routes(routes)
        .with_grpc(
            crate::homes::service(directory),
            Allow::only(allowed_callers::ACCOUNT_HOMES),
        ))
}

/// Refusals axum makes before a handler runs (a body over the limit, a wrong method) get
/// the one error envelope too.
async fn envelope_rejections(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => (
            "body_too_large",
            "the request body is larger than the gateway accepts (COREBANK_GATEWAY_BODY_MAX_BYTES)",
        ),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "this path does not take that method")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send JSON"),
        _ => ("invalid_argument", "the request could not be read"),
    };
    ApiError::new(status, code, message).into_response()
}

async fn authenticate_admin(
    State(state): State<Arc<GatewayState>>,
    request: Request,
    next: Next,
) -> Response {
    channel::authenticate(
        &state.auth,
        state.directory.db(),
        Surface::Admin,
        request,
        next,
    )
    .await
}

fn spawn_purge(store: IdempotencyStore, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(PURGE_INTERVAL);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            match store.purge_expired(PURGE_BATCH_MAX).await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(purged, "expired idempotency records purged"),
                Err(error) => tracing::warn!(error = %error, "idempotency purge failed"),
            }
        }
    });
}
