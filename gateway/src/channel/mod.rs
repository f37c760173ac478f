//! The channel API `/v1` (REST/JSON) and the gateway's request pipeline: authentication,
//! idempotency, routing to a side, the call, the audit record, and the answer with
//! `X-Served-By`, `X-Route-Version` and `X-Route-Reason`.
//!
//! Where an account lives: a new account is opened on the side its product's rule picks
//! (ownership, canary bucket, default), which becomes its **home**; with a shadowing rule the
//! other side opens a copy on its own books. Every real request about the account goes to
//! its home (`X-Route-Reason: home` when the rule would pick the other side): a copy only
//! ever receives shadow traffic, because its balance is not the customer's money (payments
//! are never shadowed, and dropped shadows never reach it). Moving an account's home is the
//! account migration's job (it moves the balance and the holds), not a routing change.

mod accounts;
mod cash;
mod holds;
pub mod json;
mod moving;
mod payments;
mod pipeline;
mod transfers;

use crate::audit::{self, AuditRecord};
use crate::auth::Authenticator;
use crate::directory::Directory;
use crate::idempotency::IdempotencyStore;
use crate::principal::{RequestContext, Surface};
use crate::routing::Router;
use crate::shadow::Shadow;
use crate::upstream::Upstreams;
use axum::Router as HttpRouter;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Everything the handlers share.
#[derive(Debug, Clone)]
pub struct GatewayState {
    pub auth: Authenticator,
    pub router: Router,
    pub upstreams: Upstreams,
    pub directory: Directory,
    pub idempotency: IdempotencyStore,
    pub shadow: Shadow,
    pub request_timeout: Duration,
    /// How long a request on a moving account is held before its 503 (`crate::move_hold`).
    pub migration_hold: Duration,
    /// The migration component, which runs cross-side transfers (ADR 0014).
    pub crossings:
        corebank_api::migration::v1::migrations_client::MigrationsClient<tonic::transport::Channel>,
}

type Shared = Arc<GatewayState>;

/// The `/v1` routes, behind authentication for the channel surface.
pub fn router(state: Shared) -> HttpRouter {
    HttpRouter::new()
        .route("/v1/accounts", post(accounts::open_account))
        .route("/v1/accounts/{account_id}", get(accounts::get_account))
        .route(
            "/v1/accounts/{account_id}/balance",
            get(accounts::get_balance),
        )
        .route(
            "/v1/accounts/{account_id}/statement",
            get(accounts::get_statement),
        )
        .route("/v1/accounts/{account_id}/deposits", post(cash::deposit))
        .route(
            "/v1/accounts/{account_id}/withdrawals",
            post(cash::withdraw),
        )
        .route("/v1/accounts/{account_id}/holds", post(holds::place_hold))
        .route(
            "/v1/accounts/{account_id}/holds/{hold_id}/release",
            post(holds::release_hold),
        )
        .route(
            "/v1/accounts/{account_id}/close",
            post(accounts::close_account),
        )
        .route(
            "/v1/customers/{customer_id}/accounts",
            get(accounts::list_accounts),
        )
        .route("/v1/transfers", post(transfers::transfer))
        .route("/v1/transfers/{transfer_id}", get(transfers::get_transfer))
        .route("/v1/payments", post(payments::initiate_payment))
        .route("/v1/payments/{payment_id}", get(payments::get_payment))
        .route(
            "/v1/payments/{payment_id}/cancel",
            post(payments::cancel_payment),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            authenticate_channel,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::move_hold::hold_moving,
        ))
        .with_state(state)
}

/// The `/v1` operations for the API reference (`crate::openapi`).
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        accounts::open_account,
        accounts::get_account,
        accounts::get_balance,
        accounts::get_statement,
        cash::deposit,
        cash::withdraw,
        holds::place_hold,
        holds::release_hold,
        accounts::close_account,
        accounts::list_accounts,
        transfers::transfer,
        transfers::get_transfer,
        payments::initiate_payment,
        payments::get_payment,
        payments::cancel_payment,
    ),
    components(schemas(crate::openapi::formats::AccountId))
)]
struct ChannelApi;

/// The `/v1` part of the API reference.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <ChannelApi as utoipa::OpenApi>::openapi()
}

/// The client's address for the audit trail: the first `X-Forwarded-For` entry (behind a
/// proxy), else `X-Real-IP`, else `unknown` (the peer address is not kept by the server).
pub fn origin_of(headers: &HeaderMap) -> String {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .or_else(|| headers.get("x-real-ip").and_then(|v| v.to_str().ok()))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

pub fn request_id_of(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Verifies the token for `surface`, records refusals in the audit trail, and hands the
/// handlers a [`RequestContext`].
pub async fn authenticate(
    auth: &Authenticator,
    db: &corebank_db::Db,
    surface: Surface,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let origin = origin_of(headers);
    let request_id = request_id_of(headers);
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match auth.authenticate(authorization.as_deref(), surface).await {
        Ok(principal) => {
            request.extensions_mut().insert(RequestContext {
                principal,
                origin,
                request_id,
            });
            next.run(request).await
        }
        Err(error) => {
            let api = error.api_error();
            let record = AuditRecord {
                at: Utc::now(),
                actor: "anonymous".to_owned(),
                surface: surface.name().to_owned(),
                action: "auth.refused".to_owned(),
                resource: format!("{} {}", request.method(), request.uri().path()),
                origin,
                outcome: error.code().to_owned(),
                request_id,
                route: None,
                details: json!({ "status": api.status.as_u16() }),
            };
            if let Err(failure) = audit::append_alone(db, &record).await {
                tracing::error!(error = %failure, "an authentication failure could not be audited");
            }
            api.into_response()
        }
    }
}

async fn authenticate_channel(
    State(state): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    authenticate(
        &state.auth,
        state.directory.db(),
        Surface::Channel,
        request,
        next,
    )
    .await
}

/// A 202 (work that runs on) gets `Location`: `{collection}/{id}`, the answer's `id`.
async fn with_location(
    mut response: axum::response::Response,
    collection: &str,
) -> axum::response::Response {
    if response.status() != axum::http::StatusCode::ACCEPTED {
        return response;
    }
    let Ok(bytes) = axum::body::to_bytes(std::mem::take(response.body_mut()), 1 << 20).await else {
        return response;
    };
    if let Some(id) = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["id"].as_str().map(str::to_owned))
        && let Ok(value) = axum::http::HeaderValue::from_str(&format!("{collection}/{id}"))
    {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, value);
    }
    *response.body_mut() = axum::body::Body::from(bytes);
    response
}
