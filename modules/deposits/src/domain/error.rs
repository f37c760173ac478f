//! Every refusal of the deposits module, each with a stable code.

corebank_kernel::stable_codes! {
    /// Why a deposits request was refused or failed.
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub enum DepositsError {
        #[error("{field}: {message}")]
        InvalidArgument { field: String, message: String } => "invalid_argument",
        #[error("no product {code}")]
        UnknownProduct { code: String } => "unknown_product",
        #[error("no deposit account {account_id}")]
        UnknownAccount { account_id: String } => "unknown_account",
        #[error("no hold {hold_id}")]
        UnknownHold { hold_id: String } => "unknown_hold",
        #[error("account {account_id} is frozen")]
        AccountFrozen { account_id: String } => "account_frozen",
        #[error("account {account_id} is dormant: a deposit by the customer reactivates it")]
        AccountDormant { account_id: String } => "account_dormant",
        #[error("account {account_id} is closed")]
        AccountClosed { account_id: String } => "account_closed",
        #[error("the account is in {expected}, the request in {got}")]
        CurrencyMismatch { expected: String, got: String } => "currency_mismatch",
        #[error("account {account_id} cannot give that much: {available} available")]
        InsufficientFunds {
            account_id: String,
            available: String,
        } => "insufficient_funds",
        #[error("{amount} is more than the product allows per transfer ({limit})")]
        TransferLimitExceeded { amount: String, limit: String } => "transfer_limit_exceeded",
        #[error(
            "the transfer would take today's transfers from account {account_id} past {limit} \
             ({used} used)"
        )]
        DailyLimitExceeded {
            account_id: String,
            limit: String,
            used: String,
        } => "daily_limit_exceeded",
        #[error("request {request_id} was made before with a different {field}")]
        ExistsWithDifferent {
            request_id: String,
            field: String,
        } => "exists_with_different_content",
        #[error("hold {hold_id} is {status}, not held")]
        HoldNotHeld { hold_id: String, status: String } => "hold_not_held",
        #[error("account {account_id} cannot close: {reason}")]
        CannotClose { account_id: String, reason: String } => "cannot_close",
        #[error("account {account_id} is no longer {expected}: its status changed meanwhile")]
        StatusChanged {
            account_id: String,
            expected: String,
        } => "account_status_changed",
        #[error("the account is {status}: {message}")]
        InvalidStatus { status: String, message: String } => "invalid_account_status",
        #[error("the ledger refused: {message} ({code})")]
        Ledger { code: String, message: String } => code.as_str(),
        #[error("unavailable: {message}")]
        Unavailable { message: String } => "unavailable",
        #[error("internal error: {message}")]
        Internal { message: String } => "internal",
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &str;
}

impl DepositsError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> DepositsError {
        DepositsError::InvalidArgument {
            field: field.into(),
            message: message.into(),
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
