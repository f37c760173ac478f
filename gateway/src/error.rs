//! The one error envelope of the gateway's HTTP APIs:
//! `{"code": "...", "message": "...", "retry_safe": bool}` with a stable code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP refusal or failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, snake_case.
    pub code: String,
    pub message: String,
    /// Whether sending the same request again (with the same idempotency key) is safe and
    /// may succeed.
    pub retry_safe: bool,
    /// When to try again, in seconds (the `Retry-After` header), if the answer says.
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code: code.to_owned(),
            message: message.into(),
            // A 501 will not change by trying again; other 5xx and 429 may.
            retry_safe: (status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED)
                || status == StatusCode::TOO_MANY_REQUESTS,
            retry_after_s: None,
        }
    }

    /// The same refusal, telling the client to try again after `seconds` (`Retry-After`).
    #[must_use]
    pub fn with_retry_after(mut self, seconds: u32) -> ApiError {
        self.retry_after_s = Some(seconds);
        self
    }

    pub fn unauthenticated(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_argument", message)
    }

    pub fn internal(message: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %message, "internal gateway error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "code": self.code,
            "message": self.message,
            "retry_safe": self.retry_safe,
        })
    }
}

/// The error envelope as the API reference (`/openapi.json`) describes it: the shape of
/// [`ApiError::body`].
#[derive(Debug, Clone, utoipa::ToSchema)]
#[schema(example = json!({
    "code": "idempotency_key_required",
    "message": "every mutating request needs an Idempotency-Key header",
    "retry_safe": false,
}))]
pub struct ErrorBody {
    /// Stable, snake_case: clients branch on it (the message is for people).
    pub code: String,
    pub message: String,
    /// Whether sending the same request again (with the same idempotency key) is safe and
    /// may succeed.
    pub retry_safe: bool,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if self.code == crate::homes::MOVING_CODE && self.retry_safe {
            // The channel surface may send it again itself (`crate::move_hold`).
            response.extensions_mut().insert(crate::move_hold::Moving);
        }
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        if self.status == StatusCode::UNAUTHORIZED
            && let Ok(value) = "Bearer".parse()
        {
            response
                .headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

impl From<corebank_db::DbError> for ApiError {
    fn from(error: corebank_db::DbError) -> ApiError {
        match error {
            corebank_db::DbError::Unavailable { message } => {
                tracing::warn!(error = %message, "the gateway's database is unavailable");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the gateway's database is unavailable; retry later",
                )
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<corebank_db::TxError<ApiError>> for ApiError {
    fn from(error: corebank_db::TxError<ApiError>) -> ApiError {
        match error {
            corebank_db::TxError::Abort(error) => error,
            corebank_db::TxError::Db(error) => error.into(),
        }
    }
}
