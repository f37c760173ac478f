//! Helpers for contract suites: checks that talk to an implementation only through its gRPC
//! contract and report what was wrong instead of panicking (so one suite can be pointed at
//! several implementations and report on each).

/// The stable error code of a refusal (`corebank-error-code` metadata), or "".
pub fn error_code(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("corebank-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// `Err(message)` unless `condition`.
pub fn expect(condition: bool, message: impl FnOnce() -> String) -> Result<(), String> {
    if condition { Ok(()) } else { Err(message()) }
}

/// Expects a refusal with this stable code.
pub fn refused<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    expected: &str,
) -> Result<(), String> {
    match result {
        Ok(value) => Err(format!("expected {expected}, got an answer: {value:?}")),
        Err(status) if error_code(&status) == expected => Ok(()),
        Err(status) => Err(format!(
            "expected {expected}, got {} ({:?}: {})",
            error_code(&status),
            status.code(),
            status.message()
        )),
    }
}

/// The answer of a call that must succeed, or what went wrong.
pub fn answer<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    what: &str,
) -> Result<T, String> {
    result.map(tonic::Response::into_inner).map_err(|s| {
        format!(
            "{what}: {} ({:?}): {}",
            error_code(&s),
            s.code(),
            s.message()
        )
    })
}
