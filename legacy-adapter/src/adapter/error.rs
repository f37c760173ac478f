//! The adapter's refusals, with the same stable codes as the modern modules, and how the
//! core's error texts map onto them.

use corebank_service::refusal;
use tonic::Status;

use corebank_legacy_ofs::{Indicator, Response};

corebank_kernel::stable_codes! {
    /// A refusal or failure of the adapter, named by the canonical stable code.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum AdapterError {
        #[error("invalid argument: {message}")]
        InvalidArgument { message: String } => "invalid_argument",
        #[error("unknown product {code}")]
        UnknownProduct { code: String } => "unknown_product",
        #[error("unknown account {account_id}")]
        UnknownAccount { account_id: String } => "unknown_account",
        #[error("unknown hold {hold_id}")]
        UnknownHold { hold_id: String } => "unknown_hold",
        #[error("unknown payment {payment_id}")]
        UnknownPayment { payment_id: String } => "unknown_payment",
        #[error("the account is frozen: {message}")]
        AccountFrozen { message: String } => "account_frozen",
        #[error("the account is closed: {message}")]
        AccountClosed { message: String } => "account_closed",
        #[error("currency mismatch: {message}")]
        CurrencyMismatch { message: String } => "currency_mismatch",
        #[error("insufficient funds: {message}")]
        InsufficientFunds { message: String } => "insufficient_funds",
        #[error("the transfer exceeds the product's per-transfer limit of {limit}")]
        TransferLimitExceeded { limit: String } => "transfer_limit_exceeded",
        #[error("the transfer exceeds the product's daily limit: {message}")]
        DailyLimitExceeded { message: String } => "daily_limit_exceeded",
        #[error("request {request_id} was already made with other content")]
        ExistsWithDifferent { request_id: String } => "exists_with_different_content",
        #[error("the hold is not held: {message}")]
        HoldNotHeld { message: String } => "hold_not_held",
        #[error("the account cannot be closed: {message}")]
        CannotClose { message: String } => "cannot_close",
        #[error("the account's status does not allow it: {message}")]
        InvalidStatus { message: String } => "invalid_account_status",
        #[error("the payment was booked on the legacy core already and cannot be cancelled")]
        PastPivot => "past_pivot",
        #[error("the legacy core cannot do this: {message}")]
        NotSupported { message: String } => "not_supported_by_legacy",
        #[error("the account is being moved to the other core; retry with the same request id shortly: {message}")]
        AccountMoving { message: String } => "account_moving",
        #[error("the account was moved to the other core: {message}")]
        AccountMigrated { message: String } => "account_migrated",
        #[error("the legacy core is unavailable, retry later: {message}")]
        Unavailable { message: String } => "unavailable",
        #[error("internal error: {message}")]
        Internal { message: String } => "internal",
    }

    /// The stable code (the same as the modern modules').
    pub fn code(&self) -> &'static str;
}

impl AdapterError {
    pub fn invalid(message: impl Into<String>) -> AdapterError {
        AdapterError::InvalidArgument {
            message: message.into(),
        }
    }

    pub fn internal(message: impl Into<String>) -> AdapterError {
        AdapterError::Internal {
            message: message.into(),
        }
    }

    /// The gRPC status: the code in `corebank-error-code`, internal details only in the log.
    pub fn status(&self) -> Status {
        let code = match self {
            AdapterError::InvalidArgument { .. } | AdapterError::CurrencyMismatch { .. } => {
                tonic::Code::InvalidArgument
            }
            AdapterError::UnknownProduct { .. }
            | AdapterError::UnknownAccount { .. }
            | AdapterError::UnknownHold { .. }
            | AdapterError::UnknownPayment { .. } => tonic::Code::NotFound,
            AdapterError::ExistsWithDifferent { .. } => tonic::Code::AlreadyExists,
            AdapterError::Unavailable { .. } | AdapterError::AccountMoving { .. } => {
                tonic::Code::Unavailable
            }
            AdapterError::NotSupported { .. } => tonic::Code::Unimplemented,
            AdapterError::Internal { .. } => tonic::Code::Internal,
            _ => tonic::Code::FailedPrecondition,
        };
        let internal_detail = match self {
            AdapterError::Internal { message } => Some(message.as_str()),
            _ => None,
        };
        refusal::status_of("legacy adapter", code, self.code(), self, internal_detail)
    }
}

impl From<corebank_db::DbError> for AdapterError {
    fn from(error: corebank_db::DbError) -> AdapterError {
        match error {
            corebank_db::DbError::Unavailable { message } => AdapterError::Unavailable { message },
            other => AdapterError::internal(other.to_string()),
        }
    }
}

impl From<corebank_db::TxError<AdapterError>> for AdapterError {
    fn from(error: corebank_db::TxError<AdapterError>) -> AdapterError {
        match error {
            corebank_db::TxError::Abort(error) => error,
            corebank_db::TxError::Db(error) => error.into(),
        }
    }
}

/// The first field of a `-1` answer whose value holds the error text: (field, text).
pub fn error_text(response: &Response) -> (String, String) {
    response
        .fields
        .first()
        .map(|f| (f.name.clone(), f.value.clone()))
        .unwrap_or_default()
}

/// Whether a `-1` answer's text starts with `prefix` (texts are stable, README).
pub fn says(response: &Response, prefix: &str) -> bool {
    response.indicator == Indicator::Error
        && response.fields.iter().any(|f| f.value.starts_with(prefix))
}

/// An error text's prefix and the canonical refusal it stands for.
type Rule = (&'static str, fn(String) -> AdapterError);

/// The canonical refusal for a `-1` (or `-3`) answer of the core.
pub fn refusal(response: &Response) -> AdapterError {
    if response.indicator == Indicator::Offline {
        return AdapterError::Unavailable {
            message: "the legacy core is closed for business (close of business); retry later"
                .to_owned(),
        };
    }
    let (field, text) = error_text(response);
    let message = format!("the legacy core refused {field}: {text}");
    let account_field = matches!(
        field.as_str(),
        "DEBIT.ACCT.NO" | "CREDIT.ACCT.NO" | "ACCOUNT.NUMBER" | "ACCOUNT" | "DRAWDOWN.ACCOUNT"
    );
    if account_field
        && (text.starts_with("RECORD NOT FOUND") || text.starts_with("MISSING ACCOUNT"))
    {
        return AdapterError::UnknownAccount {
            account_id: format!("the core's {field}"),
        };
    }
    let rules: [Rule; 15] = [
        ("ACCOUNT MIGRATING", |message| AdapterError::AccountMoving {
            message,
        }),
        ("ACCOUNT MIGRATED", |message| {
            AdapterError::AccountMigrated { message }
        }),
        ("ACCOUNT NOT MIGRATING", |message| {
            AdapterError::InvalidStatus { message }
        }),
        ("ACCOUNT NOT MIGRATED", |message| {
            AdapterError::InvalidStatus { message }
        }),
        ("INSUFFICIENT FUNDS", |message| {
            AdapterError::InsufficientFunds { message }
        }),
        ("ACCOUNT CLOSED", |message| AdapterError::AccountClosed {
            message,
        }),
        ("POSTING RESTRICTED", |message| {
            AdapterError::AccountFrozen { message }
        }),
        ("CURRENCY MISMATCH", |message| {
            AdapterError::CurrencyMismatch { message }
        }),
        ("CURRENCY NOT ALLOWED", |message| {
            AdapterError::CurrencyMismatch { message }
        }),
        ("LOCK NOT LIVE", |message| AdapterError::HoldNotHeld {
            message,
        }),
        ("LOCKED EVENTS OPEN", |message| AdapterError::CannotClose {
            message,
        }),
        ("ACCOUNT OVERDRAWN", |message| AdapterError::CannotClose {
            message,
        }),
        ("SYSTEM ERROR", |message| AdapterError::Unavailable {
            message,
        }),
        ("SECURITY VIOLATION", |message| {
            AdapterError::internal(format!(
                "{message} (check COREBANK_LEGACY_USER and COREBANK_LEGACY_PASSWORD)"
            ))
        }),
        ("INVALID", |message| AdapterError::InvalidArgument {
            message,
        }),
    ];
    for (prefix, make) in rules {
        if text.starts_with(prefix) {
            return make(message);
        }
    }
    AdapterError::internal(message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn answer(text: &str) -> Response {
        Response::parse(&format!("FT1/m1/-1,DEBIT.AMOUNT:1:1={text}")).unwrap()
    }

    #[test]
    fn core_error_texts_map_to_canonical_codes() {
        let cases = [
            (
                "INSUFFICIENT FUNDS\\, AVAILABLE 12.00",
                "insufficient_funds",
            ),
            ("ACCOUNT CLOSED", "account_closed"),
            ("POSTING RESTRICTED", "account_frozen"),
            ("ACCOUNT MIGRATING", "account_moving"),
            ("ACCOUNT MIGRATED", "account_migrated"),
            ("ACCOUNT NOT MIGRATING", "invalid_account_status"),
            ("ACCOUNT NOT MIGRATED", "invalid_account_status"),
            ("CURRENCY MISMATCH", "currency_mismatch"),
            ("LOCK NOT LIVE\\, STATUS REVERSED", "hold_not_held"),
            ("LOCKED EVENTS OPEN", "cannot_close"),
            ("SYSTEM ERROR\\, TRY AGAIN", "unavailable"),
            ("INVALID AMOUNT", "invalid_argument"),
            ("SOMETHING NEW", "internal"),
        ];
        for (text, code) in cases {
            assert_eq!(refusal(&answer(text)).code(), code, "{text}");
        }
        let offline =
            Response::parse("FT1/m1/-3,STATUS:1:1=CLOSE OF BUSINESS IN PROGRESS").unwrap();
        assert_eq!(refusal(&offline).code(), "unavailable");
    }
}
