//! Every refusal of the ledger, each with a stable code.

use corebank_kernel::{AccountId, Currency, JournalEntryId};

/// Why the ledger refused a request or could not answer it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LedgerError {
    #[error("{field}: {message}")]
    InvalidRequest { field: String, message: String },
    #[error("{message}")]
    InvalidAmount { field: String, message: String },
    #[error("the entry does not balance in {currency}: debits {debits}, credits {credits}")]
    Unbalanced {
        currency: Currency,
        debits: String,
        credits: String,
    },
    #[error("leg {leg} is in {leg_currency} but account {account_id} holds {account_currency}")]
    CurrencyMismatch {
        leg: usize,
        account_id: AccountId,
        leg_currency: Currency,
        account_currency: Currency,
    },
    #[error("account {account_id} does not exist")]
    UnknownAccount { account_id: AccountId },
    #[error("account {account_id} is frozen for {direction}s")]
    AccountFrozen {
        account_id: AccountId,
        direction: &'static str,
    },
    #[error("account {account_id} is closed")]
    AccountClosed { account_id: AccountId },
    #[error("account {account_id} would pass its limit ({limit}): available {available}")]
    LimitExceeded {
        account_id: AccountId,
        limit: &'static str,
        available: String,
    },
    #[error("entry {entry_id} does not exist")]
    UnknownEntry { entry_id: JournalEntryId },
    #[error("entry {entry_id} is not a pending entry")]
    NotPending { entry_id: JournalEntryId },
    #[error("pending entry {pending_id} was already posted")]
    PendingAlreadyPosted { pending_id: JournalEntryId },
    #[error("pending entry {pending_id} was already voided")]
    PendingAlreadyVoided { pending_id: JournalEntryId },
    #[error("pending entry {pending_id} has expired")]
    PendingExpired { pending_id: JournalEntryId },
    #[error("cannot post {requested} of pending entry {pending_id}: only {pending} is held")]
    PostExceedsPending {
        pending_id: JournalEntryId,
        requested: String,
        pending: String,
    },
    #[error("entry {entry_id} ({kind}) cannot be reversed: only posted entries can")]
    NotReversible {
        entry_id: JournalEntryId,
        kind: &'static str,
    },
    #[error("entry {entry_id} was already reversed")]
    AlreadyReversed { entry_id: JournalEntryId },
    #[error("id {id} was used before with a different {field}")]
    ExistsWithDifferent { id: String, field: &'static str },
    #[error("account code {code:?} is taken by another account")]
    CodeTaken { code: String },
    #[error("account {account_id} cannot close: {reason}")]
    CannotClose {
        account_id: AccountId,
        reason: &'static str,
    },
    /// A sweep that cannot run: `code` is `sweep_source_not_frozen`,
    /// `sweep_source_has_pending` or `nothing_to_sweep`.
    #[error("account {account_id} cannot be swept: {reason}")]
    CannotSweep {
        account_id: AccountId,
        code: &'static str,
        reason: String,
    },
    #[error("the ledger is busy: {message}")]
    Unavailable { message: String },
    #[error(
        "the outcome is unknown (the database connection broke during commit); send the same request again with the same id to learn it"
    )]
    OutcomeUnknown,
    #[error("internal error")]
    Internal { message: String },
}

/// The kinds of [`LedgerError`]: what a caller can do about one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself is wrong: the same request can never pass.
    Invalid,
    /// The account or entry it names does not exist (yet).
    NotFound,
    /// The account's state or balance refuses it now; the same request may pass later.
    RefusedForNow,
    /// The state of the account or entry refuses it for good.
    RefusedForGood,
    /// Its id or code is taken by something else.
    Taken,
    /// The ledger is busy.
    Unavailable,
    /// The commit may or may not have happened.
    OutcomeUnknown,
    /// A fault of the ledger itself.
    Internal,
}

impl LedgerError {
    /// The stable, machine-readable code.
    pub fn code(&self) -> String {
        match self {
            LedgerError::InvalidRequest { .. } => "invalid_request".to_owned(),
            LedgerError::InvalidAmount { .. } => "invalid_amount".to_owned(),
            LedgerError::Unbalanced { .. } => "unbalanced".to_owned(),
            LedgerError::CurrencyMismatch { .. } => "currency_mismatch".to_owned(),
            LedgerError::UnknownAccount { .. } => "unknown_account".to_owned(),
            LedgerError::AccountFrozen { .. } => "account_frozen".to_owned(),
            LedgerError::AccountClosed { .. } => "account_closed".to_owned(),
            LedgerError::LimitExceeded { .. } => "limit_exceeded".to_owned(),
            LedgerError::UnknownEntry { .. } => "unknown_entry".to_owned(),
            LedgerError::NotPending { .. } => "not_pending".to_owned(),
            LedgerError::PendingAlreadyPosted { .. } => "pending_already_posted".to_owned(),
            LedgerError::PendingAlreadyVoided { .. } => "pending_already_voided".to_owned(),
            LedgerError::PendingExpired { .. } => "pending_expired".to_owned(),
            LedgerError::PostExceedsPending { .. } => "post_exceeds_pending".to_owned(),
            LedgerError::NotReversible { .. } => "not_reversible".to_owned(),
            LedgerError::AlreadyReversed { .. } => "already_reversed".to_owned(),
            LedgerError::ExistsWithDifferent { field, .. } => {
                format!("exists_with_different_{field}")
            }
            LedgerError::CodeTaken { .. } => "code_taken".to_owned(),
            LedgerError::CannotClose { .. } => "cannot_close".to_owned(),
            LedgerError::CannotSweep { code, .. } => (*code).to_owned(),
            LedgerError::Unavailable { .. } => "unavailable".to_owned(),
            LedgerError::OutcomeUnknown => "outcome_unknown".to_owned(),
            LedgerError::Internal { .. } => "internal".to_owned(),
        }
    }

    /// What kind of refusal this is: it decides the gRPC status and whether a retry is safe.
    pub fn class(&self) -> ErrorClass {
        match self {
            LedgerError::InvalidRequest { .. }
            | LedgerError::InvalidAmount { .. }
            | LedgerError::Unbalanced { .. }
            | LedgerError::CurrencyMismatch { .. } => ErrorClass::Invalid,
            LedgerError::UnknownAccount { .. } | LedgerError::UnknownEntry { .. } => {
                ErrorClass::NotFound
            }
            LedgerError::AccountFrozen { .. } | LedgerError::LimitExceeded { .. } => {
                ErrorClass::RefusedForNow
            }
            LedgerError::AccountClosed { .. }
            | LedgerError::NotPending { .. }
            | LedgerError::PendingAlreadyPosted { .. }
            | LedgerError::PendingAlreadyVoided { .. }
            | LedgerError::PendingExpired { .. }
            | LedgerError::PostExceedsPending { .. }
            | LedgerError::NotReversible { .. }
            | LedgerError::AlreadyReversed { .. }
            | LedgerError::CannotClose { .. }
            | LedgerError::CannotSweep { .. } => ErrorClass::RefusedForGood,
            LedgerError::ExistsWithDifferent { .. } | LedgerError::CodeTaken { .. } => {
                ErrorClass::Taken
            }
            LedgerError::Unavailable { .. } => ErrorClass::Unavailable,
            LedgerError::OutcomeUnknown => ErrorClass::OutcomeUnknown,
            LedgerError::Internal { .. } => ErrorClass::Internal,
        }
    }

    /// Whether the same request, sent again, may succeed (and can do no harm).
    pub fn retry_safe(&self) -> bool {
        match self.class() {
            ErrorClass::Unavailable | ErrorClass::OutcomeUnknown | ErrorClass::Internal => true,
            // Balances and states change: the same request may pass later.
            ErrorClass::NotFound | ErrorClass::RefusedForNow => true,
            ErrorClass::Invalid | ErrorClass::RefusedForGood | ErrorClass::Taken => false,
        }
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> LedgerError {
        LedgerError::InvalidRequest {
            field: field.into(),
            message: message.into(),
        }
    }
}
