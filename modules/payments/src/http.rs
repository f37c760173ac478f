//! The bank's side of the rail, over HTTP with ISO 20022 XML: where the rail delivers
//! status reports (pacs.002) and inbound credit transfers (pacs.008).
//!
//! - `POST /payments/rail/v1/pacs002`: 200 once stored; 422 malformed.
//! - `POST /payments/rail/v1/pacs008`: 200 with `credited` or `returned` (a repeated UETR
//!   answers the same again); 422 malformed; 503 when it could not be settled now (the rail
//!   sends it again).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

use crate::app::Payments;
use crate::domain::error::PaymentsError;

/// Where the bank takes the rail's messages.
pub const BASE: &str = "/payments/rail/v1";

pub fn router(payments: Payments) -> Router {
    Router::new()
        .route(&format!("{BASE}/pacs002"), post(pacs002))
        .route(&format!("{BASE}/pacs008"), post(pacs008))
        .with_state(payments)
}

fn status_of(error: &PaymentsError) -> StatusCode {
    match error {
        PaymentsError::InvalidArgument { .. } => StatusCode::UNPROCESSABLE_ENTITY,
        PaymentsError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

async fn pacs002(State(payments): State<Payments>, body: String) -> (StatusCode, String) {
    match payments.receive_status(&body).await {
        Ok(()) => (StatusCode::OK, "stored".to_owned()),
        Err(error) => (status_of(&error), format!("{}: {error}", error.code())),
    }
}

async fn pacs008(State(payments): State<Payments>, body: String) -> (StatusCode, String) {
    match payments.receive_inbound(&body).await {
        Ok(outcome) => (
            StatusCode::OK,
            format!("{} {} {}", outcome.status, outcome.uetr, outcome.reason)
                .trim_end()
                .to_owned(),
        ),
        Err(error) => (status_of(&error), format!("{}: {error}", error.code())),
    }
}
