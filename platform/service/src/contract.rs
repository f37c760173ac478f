//! Helpers for contract suites: checks that talk to an implementation only through its gRPC
//! contract and report what was wrong instead of panicking (so one suite can be pointed at
//! several implementations and report on each).

/// The outcome of one check of a suite: its name, and `Err(what was wrong)` when it failed.
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub name: &'static str,
    pub outcome: Result<(), String>,
}

/// Runs each named check (`async fn check(&mut client, fixtures) -> Result<(), String>`)
/// with a clone of `client` and `fixtures`, in order, and answers their
/// [`CheckResult`]s: `contract_checks!(client, fixtures; first_check, second_check)`.
#[macro_export]
macro_rules! contract_checks {
    ($client:expr, $fixtures:expr; $($check:ident),+ $(,)?) => {{
        let mut results = Vec::new();
        $(
            let mut client = $client.clone();
            results.push($crate::contract::CheckResult {
                name: stringify!($check),
                outcome: $check(&mut client, $fixtures).await,
            });
        )+
        results
    }};
}

/// Amount strings that are not canonical decimals, or not amounts of EUR: a `+` sign,
/// separators, an exponent, a leading space, more decimals than EUR has, a negative zero and
/// thirty digits. Every implementation refuses each with `invalid_argument` (the kernel's
/// `Money::parse` rules).
pub const ODD_AMOUNTS: [&str; 7] = [
    "+1",
    "1_000",
    "1e3",
    " 1",
    "0.001",
    "-0",
    "123456789012345678901234567890",
];

/// Ids that are not random UUIDs (the kernel's `id::parse_v4` rule): not a UUID, empty, the
/// nil UUID, a version 1 and a version 7 UUID, and one with the version 4 digit but not the
/// RFC 4122 variant. Every implementation refuses each with `invalid_argument`.
pub const ODD_IDS: [&str; 6] = [
    "not-a-uuid",
    "",
    "00000000-0000-0000-0000-000000000000",
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "018f3a5e-8d1c-7b2a-9c3d-4e5f6a7b8c9d",
    "3f0e8d5c-5b7a-4c1e-0a57-2f1d0c8b9e61",
];

/// A currency code of the right shape that ISO 4217 does not know: `invalid_argument`, not
/// `currency_mismatch` (it is no currency at all).
pub const UNKNOWN_CURRENCY: &str = "XXY";

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
