//! A module's refusal as a gRPC status: the stable code in the `corebank-error-code`
//! metadata, and internal details only in the log, never in the answer.

use tonic::{Code, Status};

/// The metadata key that carries a refusal's stable code.
pub const ERROR_CODE_KEY: &str = "corebank-error-code";

/// A refusal as a gRPC status with its stable `error_code`. The caller sees `error`'s text,
/// except for an internal error: its `internal_detail` is logged here, once, and the caller
/// sees only "internal error". `component` names the module in that log line.
pub fn status_of(
    component: &str,
    code: Code,
    error_code: &str,
    error: &dyn std::fmt::Display,
    internal_detail: Option<&str>,
) -> Status {
    let message = match internal_detail {
        Some(detail) => {
            tracing::error!(error = %detail, "internal {component} error");
            "internal error".to_owned()
        }
        None => error.to_string(),
    };
    let mut status = Status::new(code, message);
    if let Ok(value) = error_code.parse() {
        status.metadata_mut().insert(ERROR_CODE_KEY, value);
    }
    status
}
