//! The bank's side of the rail, over HTTP with ISO 20022 XML: where the rail delivers
//! status reports (pacs.002) and inbound credit transfers (pacs.008). Only the rail's
//! certificate reaches these routes (`allowed_callers::RAIL_CALLBACKS`), and every delivery
//! is signed (`rail_signature`): the signature is verified before anything of the body is
//! read.
//!
//! - `POST /payments/rail/v1/pacs002`: 200 once stored; 422 malformed.
//! - `POST /payments/rail/v1/pacs008`: 200 with `credited` or `returned` (a repeated UETR
//!   answers the same again); 422 malformed; 503 when it could not be settled now (the rail
//!   sends it again, signed again).
//! - Either: 401 when the signature does not hold or the delivery was taken before
//!   (`signature_missing`, `signature_malformed`, `unknown_key`, `signature_invalid`,
//!   `signature_expired`, `replayed`); nothing of it is taken. 413 over
//!   [`RAIL_MESSAGE_BYTES_MAX`].
//!
//! Refusals and failures answer `{"code", "message", "retry_safe"}`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;

use crate::app::Payments;
use crate::app::rail::RAIL_MESSAGE_BYTES_MAX;
use crate::domain::error::PaymentsError;
use crate::rail_signature::{Exchange, VerifiedDelivery};

/// Where the bank takes the rail's messages.
pub const BASE: &str = "/payments/rail/v1";

pub fn router(payments: Payments) -> Router {
    Router::new()
        .route(&format!("{BASE}/pacs002"), post(pacs002))
        .route(&format!("{BASE}/pacs008"), post(pacs008))
        .layer(DefaultBodyLimit::max(RAIL_MESSAGE_BYTES_MAX))
        .with_state(payments)
}

/// A refusal or failure as the rail sees it. 5xx bodies say nothing of the cause, which is
/// logged here, once.
fn refused(error: &PaymentsError, path: &str) -> Response {
    let (status, retry_safe) = match error {
        PaymentsError::RailDelivery { .. } | PaymentsError::ActorNotAsserted { .. } => {
            (StatusCode::UNAUTHORIZED, false)
        }
        PaymentsError::InvalidArgument { .. } | PaymentsError::ExistsWithDifferent { .. } => {
            (StatusCode::UNPROCESSABLE_ENTITY, false)
        }
        PaymentsError::UnknownPayment { .. } => (StatusCode::NOT_FOUND, false),
        PaymentsError::PastPivot { .. }
        | PaymentsError::CannotCancel { .. }
        | PaymentsError::InvalidPaymentState { .. }
        | PaymentsError::FourEyesRequired { .. }
        | PaymentsError::Deposits { .. } => (StatusCode::CONFLICT, false),
        PaymentsError::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, true),
        PaymentsError::Internal { .. } => (StatusCode::INTERNAL_SERVER_ERROR, false),
    };
    let message = if status.is_server_error() {
        tracing::error!(http.path = path, error = %error, "a rail delivery failed");
        "the bank could not take this message now".to_owned()
    } else {
        if let PaymentsError::RailDelivery { refusal } = error {
            tracing::warn!(
                http.path = path,
                rail.refusal = refusal.code(),
                error = %refusal,
                "a rail delivery was refused"
            );
            metrics::counter!("corebank_payments_rail_deliveries_refused_total", "code" => refusal.code())
                .increment(1);
        }
        error.to_string()
    };
    (
        status,
        axum::Json(serde_json::json!({
            "code": error.code(),
            "message": message,
            "retry_safe": retry_safe,
        })),
    )
        .into_response()
}

/// The delivery, once its signature holds, and its body as text.
fn verified<'a>(
    payments: &Payments,
    path: &str,
    headers: &HeaderMap,
    body: &'a Bytes,
) -> Result<(VerifiedDelivery, &'a str), PaymentsError> {
    let exchange = Exchange::Request {
        method: "POST",
        path,
    };
    let delivery = payments
        .config
        .rail_keys
        .verify(headers, exchange, body, Utc::now().timestamp_millis())
        .map_err(|refusal| PaymentsError::RailDelivery { refusal })?;
    let xml = std::str::from_utf8(body)
        .map_err(|_| PaymentsError::invalid("body", "the message is not UTF-8"))?;
    Ok((delivery, xml))
}

/// A delivery from the rail whose signature holds, with its body as text: what both routes
/// take. A delivery refused by either check is answered before the route runs.
struct RailMessage {
    path: String,
    delivery: VerifiedDelivery,
    xml: String,
}

impl FromRequest<Payments> for RailMessage {
    type Rejection = Response;

    async fn from_request(request: Request, payments: &Payments) -> Result<RailMessage, Response> {
        let (OriginalUri(uri), headers, body) =
            <(OriginalUri, HeaderMap, Bytes)>::from_request(request, payments).await?;
        let path = uri.path();
        match verified(payments, path, &headers, &body) {
            Ok((delivery, xml)) => Ok(RailMessage {
                path: path.to_owned(),
                delivery,
                xml: xml.to_owned(),
            }),
            Err(error) => Err(refused(&error, path)),
        }
    }
}

async fn pacs002(State(payments): State<Payments>, message: RailMessage) -> Response {
    match payments
        .receive_status(&message.delivery, &message.xml)
        .await
    {
        Ok(()) => (StatusCode::OK, "stored").into_response(),
        Err(error) => refused(&error, &message.path),
    }
}

async fn pacs008(State(payments): State<Payments>, message: RailMessage) -> Response {
    match payments
        .receive_inbound(&message.delivery, &message.xml)
        .await
    {
        Ok(outcome) => (
            StatusCode::OK,
            format!("{} {} {}", outcome.status, outcome.uetr, outcome.reason)
                .trim_end()
                .to_owned(),
        )
            .into_response(),
        Err(error) => refused(&error, &message.path),
    }
}
