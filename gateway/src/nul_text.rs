//! Text with U+0000 (NUL) in it, refused at the edge: PostgreSQL stores no NUL in `TEXT` or
//! `JSONB`, so such text reaching a store (the audit trail, the directory, a core's tables)
//! failed there as a 5xx. One check for the whole gateway, before any handler: the path,
//! the query and a JSON body's strings (keys too) are refused with 400 `invalid_argument`.
//! The API reference says the same: no string it describes admits U+0000.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// The most body bytes read to look for NUL: the gateway's body limit.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit {
    pub bytes_max: usize,
}

fn refused(where_: &str) -> Response {
    ApiError::invalid(format!(
        "{where_}: text must not contain U+0000 (NUL), which the gateway cannot store"
    ))
    .into_response()
}

/// Whether percent-decoding `text` gives a NUL (`%00`; a raw NUL cannot be in a URI).
fn decodes_to_nul(text: &str) -> bool {
    text.as_bytes().windows(3).any(|window| window == b"%00")
}

/// Whether any string (or object key) in `value` holds a NUL.
pub fn holds_nul(value: &Value) -> bool {
    match value {
        Value::String(text) => text.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, inner)| key.contains('\0') || holds_nul(inner)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The middleware: refuses a request whose path, query or JSON body holds a NUL.
pub async fn refuse_nul(State(limit): State<BodyLimit>, request: Request, next: Next) -> Response {
    if decodes_to_nul(request.uri().path()) {
        return refused("path");
    }
    if request.uri().query().is_some_and(decodes_to_nul) {
        return refused("query");
    }
    let (parts, body) = request.into_parts();
    let bytes: Bytes = match axum::body::to_bytes(body, limit.bytes_max).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is larger than the gateway accepts (COREBANK_GATEWAY_BODY_MAX_BYTES)",
            )
            .into_response();
        }
    };
    // Only a JSON body can carry a NUL (escaped as `\u0000`); anything else the handler
    // refuses as it always did.
    if serde_json::from_slice::<Value>(&bytes).is_ok_and(|value| holds_nul(&value)) {
        return refused("body");
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_nul_anywhere_in_a_json_value_is_found() {
        assert!(holds_nul(&json!({ "a": ["x", { "b": "y\u{0}" }] })));
        assert!(holds_nul(&json!({ "\u{0}": 1 })));
        assert!(!holds_nul(
            &json!({ "a": ["x", { "b": "\\u0000" }], "n": 0 })
        ));
    }

    #[test]
    fn a_percent_encoded_nul_is_found() {
        assert!(decodes_to_nul("/v1/customers/a%00b/accounts"));
        assert!(!decodes_to_nul("/v1/customers/a%2500b/accounts"));
        assert!(!decodes_to_nul("product=a&operation=cash"));
    }
}
