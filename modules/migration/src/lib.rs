//! The account migration (ADR 0013): moving a product's existing accounts, with their money
//! and open holds, from the legacy core to the modern one while channels keep calling.
//!
//! - [`alerts`]: reconciliation breaks as alerts: acknowledged, then resolved with a
//!   correcting entry or accepted with a note, every transition kept.
//! - [`chunks`]: the saga that moves a chunk of accounts together, each step's calls sent
//!   at once; an account that cannot go on with the others goes on in a move of its own.
//! - [`crossings`]: cross-side transfers (ADR 0014): a saga that holds on the debtor's core,
//!   credits the creditor's against inter-core clearing, and captures the hold.
//! - [`app`]: a migration's plan (one export of the legacy books, the accounts chosen by a
//!   stable hash fraction, the refusals) and its start, one saga per account; reading it.
//! - [`feed`]: starts the planned moves of running migrations, within their window, rate and
//!   error threshold; pausing and resuming a migration.
//! - [`moves`]: the saga that moves one account: mark it moving in the gateway's directory,
//!   freeze it on the legacy core (the authoritative read), book it on modern (the pivot),
//!   empty the legacy account into suspense, switch its home, verify, unmark.
//! - [`pace`]: how many of a migration's moves run at once, found from how long each kept
//!   its account frozen.
//! - [`peers`]: the clients of the parts a move goes through.
//! - [`reconcile`]: the rules that prove the two books agree about what moved.
//! - [`lapsed`]: the rule that no hold whose time ran out still holds funds.
//! - [`shadowed`]: the rule that an account kept on both books agrees on both.
//! - [`snapshots`]: the rule that every moved account equals its snapshot on both books.
//! - [`returns`]: the saga that moves an account back (a rollback), the mirror of a move.
//! - [`grpc`]: `corebank.migration.v1.Migrations` and the component.
//! - [`store`]: the SQL of the `migration` schema.

pub mod alerts;
pub mod app;
pub mod chunks;
pub mod crossings;
pub mod feed;
pub mod grpc;
pub mod lapsed;
pub mod moves;
pub mod pace;
pub mod peers;
pub mod reconcile;
pub mod returns;
pub mod shadowed;
pub mod snapshots;
pub mod store;

use corebank_db::{DbError, TxError};

corebank_kernel::stable_codes! {
    /// Why a migration request was refused or failed.
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum MigrationError {
        #[error("{field}: {message}")]
        InvalidArgument { field: &'static str, message: String } => "invalid_argument",
        #[error("no migration {id}")]
        UnknownMigration { id: String } => "unknown_migration",
        #[error("account {account_id} is not moved in migration {migration_id} (or was moved back): {state}")]
        AccountNotMoved { migration_id: String, account_id: String, state: String } => "account_not_moved",
        #[error("migration {id} is {state}: {message}")]
        MigrationNotRunning { id: String, state: String, message: &'static str } => "migration_not_running",
        #[error("no reconciliation alert {id}")]
        UnknownAlert { id: String } => "unknown_alert",
        #[error("reconciliation alert {id} is {state}: it cannot be moved that way")]
        AlertClosed { id: String, state: String } => "alert_closed",
        #[error("no cross-side transfer {id}")]
        UnknownTransfer { id: String } => "unknown_transfer",
        #[error("account {account_id} is moving between the cores; retry shortly with the same request")]
        AccountMoving { account_id: String } => "account_moving",
        #[error("no reconciliation run {id}")]
        UnknownRun { id: String } => "unknown_reconciliation",
        #[error("migration {id} was started with another {field}")]
        ExistsWithDifferent { id: String, field: &'static str } => "exists_with_different_content",
        #[error("the {peer} is unavailable, retry later: {message}")]
        Unavailable { peer: &'static str, message: String } => "unavailable",
        #[error("internal error: {message}")]
        Internal { message: String } => "internal",
    }

    /// The stable code.
    pub fn code(&self) -> &'static str;
}

impl MigrationError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> MigrationError {
        MigrationError::InvalidArgument {
            field,
            message: message.into(),
        }
    }

    /// A peer's call that did not get through, with the peer's code and message.
    pub(crate) fn unavailable(peer: &'static str, status: &tonic::Status) -> MigrationError {
        MigrationError::Unavailable {
            peer,
            message: format!(
                "{}: {}",
                corebank_service::contract::error_code(status),
                status.message()
            ),
        }
    }

    fn internal(message: impl std::fmt::Display) -> MigrationError {
        MigrationError::Internal {
            message: message.to_string(),
        }
    }
}

impl From<TxError<MigrationError>> for MigrationError {
    fn from(error: TxError<MigrationError>) -> MigrationError {
        match error {
            TxError::Abort(error) => error,
            TxError::Db(DbError::Unavailable { message }) => MigrationError::Unavailable {
                peer: "migration database",
                message,
            },
            TxError::Db(other) => MigrationError::internal(other),
        }
    }
}

/// A name-based id in the UUIDv4 layout the other modules accept: the same parts always
/// give the same id, so every request a move makes is the same on every attempt.
pub fn derived_id(parts: &[&str]) -> uuid::Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("corebank.migration:{}", parts.join(":")).as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
