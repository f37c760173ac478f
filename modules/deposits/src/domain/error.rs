//! Every refusal of the deposits module, each with a stable code.

/// Why a deposits request was refused or failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DepositsError {
    #[error("{field}: {message}")]
    InvalidArgument { field: String, message: String },
    #[error("no product {code}")]
    UnknownProduct { code: String },
    #[error("no deposit account {account_id}")]
    UnknownAccount { account_id: String },
    #[error("no hold {hold_id}")]
    UnknownHold { hold_id: String },
    #[error("account {account_id} is frozen")]
    AccountFrozen { account_id: String },
    #[error("account {account_id} is dormant: a deposit by the customer reactivates it")]
    AccountDormant { account_id: String },
    #[error("account {account_id} is closed")]
    AccountClosed { account_id: String },
    #[error("the account is in {expected}, the request in {got}")]
    CurrencyMismatch { expected: String, got: String },
    #[error("account {account_id} cannot give that much: {available} available")]
    InsufficientFunds {
        account_id: String,
        available: String,
    },
    #[error("{amount} is more than the product allows per transfer ({limit})")]
    TransferLimitExceeded { amount: String, limit: String },
    #[error(
        "the transfer would take today's transfers from account {account_id} past {limit} ({used} used)"
    )]
    DailyLimitExceeded {
        account_id: String,
        limit: String,
        used: String,
    },
    #[error("request {request_id} was made before with a different {field}")]
    ExistsWithDifferent { request_id: String, field: String },
    #[error("hold {hold_id} is {status}, not held")]
    HoldNotHeld { hold_id: String, status: String },
    #[error("account {account_id} cannot close: {reason}")]
    CannotClose { account_id: String, reason: String },
    #[error("account {account_id} is no longer {expected}: its status changed meanwhile")]
    StatusChanged {
        account_id: String,
        expected: String,
    },
    #[error("the account is {status}: {message}")]
    InvalidStatus { status: String, message: String },
    #[error("the ledger refused: {message} ({code})")]
    Ledger { code: String, message: String },
    #[error("unavailable: {message}")]
    Unavailable { message: String },
    #[error("internal error: {message}")]
    Internal { message: String },
}

impl DepositsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> DepositsError {
        DepositsError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &str {
        match self {
            DepositsError::InvalidArgument { .. } => "invalid_argument",
            DepositsError::UnknownProduct { .. } => "unknown_product",
            DepositsError::UnknownAccount { .. } => "unknown_account",
            DepositsError::UnknownHold { .. } => "unknown_hold",
            DepositsError::AccountFrozen { .. } => "account_frozen",
            DepositsError::AccountDormant { .. } => "account_dormant",
            DepositsError::AccountClosed { .. } => "account_closed",
            DepositsError::CurrencyMismatch { .. } => "currency_mismatch",
            DepositsError::InsufficientFunds { .. } => "insufficient_funds",
            DepositsError::TransferLimitExceeded { .. } => "transfer_limit_exceeded",
            DepositsError::DailyLimitExceeded { .. } => "daily_limit_exceeded",
            DepositsError::ExistsWithDifferent { .. } => "exists_with_different_content",
            DepositsError::HoldNotHeld { .. } => "hold_not_held",
            DepositsError::CannotClose { .. } => "cannot_close",
            DepositsError::InvalidStatus { .. } => "invalid_account_status",
            DepositsError::StatusChanged { .. } => "account_status_changed",
            DepositsError::Ledger { code, .. } => code.as_str(),
            DepositsError::Unavailable { .. } => "unavailable",
            DepositsError::Internal { .. } => "internal",
        }
    }
}

impl From<corebank_db::DbError> for DepositsError {
    fn from(error: corebank_db::DbError) -> DepositsError {
        match error {
            corebank_db::DbError::Unavailable { message } => DepositsError::Unavailable { message },
            other => DepositsError::Internal {
                message: other.to_string(),
            },
        }
    }
}

impl From<corebank_outbox::OutboxError> for DepositsError {
    fn from(error: corebank_outbox::OutboxError) -> DepositsError {
        DepositsError::Internal {
            message: error.to_string(),
        }
    }
}

impl From<crate::domain::interest::InterestError> for DepositsError {
    fn from(error: crate::domain::interest::InterestError) -> DepositsError {
        DepositsError::InvalidArgument {
            field: "interest".to_owned(),
            message: error.to_string(),
        }
    }
}
