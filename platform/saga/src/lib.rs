//! A durable saga orchestrator that needs no cluster of its own: a saga's state and history
//! live in the owning module's schema (PostgreSQL here, CockroachDB in production).
//!
//! - [`definition`]: saga types as data (steps, compensations, queries, retry policies,
//!   timeouts, pivot) and the [`Registry`] of them, by name and version.
//! - [`executor`]: claims due sagas under a lease with a fencing generation, runs their
//!   steps, retries with backoff, compensates in reverse order and pauses what needs a human.
//! - [`ops`]: what operators do to a saga (list, get, retry now, resume, force-compensate,
//!   mark resolved), each recorded with who and why; [`grpc`] serves them.
//! - [`gauges`]: the `corebank_sagas{saga_type,status}` gauge.
//! - [`store`]: the SQL.
//! - [`demo`]: a three-step saga over the `demo` schema's own rows, used by the tests, the
//!   crash test and `corebank bench saga`.

pub mod definition;
#[cfg(feature = "demo")]
pub mod demo;
pub mod executor;
pub mod gauges;
pub mod grpc;
pub mod ops;
pub mod store;

pub use definition::{
    Action, BoxFuture, DbFuture, Direction, QueryOutcome, Registry, RetryPolicy, SagaDefinition,
    Step, StepContext, StepOutcome,
};
pub use executor::{Executor, ExecutorConfig, NewSaga, Started, Watchers, adopt, start};
pub use store::{SagaInstance, Status, StepRecord};

use corebank_db::{DbError, TxError};

corebank_kernel::stable_codes! {
    /// Why a saga operation was refused or failed. Every variant has a stable [`SagaError::code`].
    #[derive(Debug, Clone, thiserror::Error)]
    pub enum SagaError {
        #[error("saga definition {name} is invalid: {message}")]
        InvalidDefinition { name: String, message: String } => "invalid_definition",
        #[error("no saga type {saga_type} is registered with this executor")]
        UnknownType { saga_type: String } => "unknown_saga_type",
        #[error("saga {id} exists with a different {field}")]
        ExistsWithDifferent { id: String, field: &'static str } => "exists_with_different_content",
        #[error("no saga {id}")]
        NotFound { id: String } => "saga_not_found",
        #[error("saga {id} is {status}: {message}")]
        InvalidState {
            id: String,
            status: String,
            message: String,
        } => "invalid_saga_state",
        #[error("saga {id} is past its pivot step: only forward recovery is possible")]
        PastPivot { id: String } => "past_pivot",
        #[error("{field}: {message}")]
        InvalidArgument {
            field: &'static str,
            message: String,
        } => "invalid_argument",
        /// The call does not prove which operator acts: no assertion, or one that does not
        /// verify against the calling component's certificate.
        #[error("{reason}")]
        ActorNotAsserted { reason: String } => "actor_not_asserted",
        /// The request names an operator other than the one the caller signed for.
        #[error(
            "the request's actor {claimed:?} is not the operator {asserted:?} the gateway \
             asserted: the actor comes from the gateway's verified token; leave the field empty"
        )]
        ActorMismatch { asserted: String, claimed: String } => "actor_mismatch",
        /// An action that needs two operators (force-compensate, mark-resolved) names no
        /// proposer, or names the approver as its own proposer.
        #[error("four eyes required: {message}")]
        FourEyesRequired { message: String } => "four_eyes_required",
        #[error("the database is unavailable: {message}")]
        Unavailable { message: String } => "unavailable",
        #[error("internal error: {message}")]
        Internal { message: String } => "internal",
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str;
}

/// Folds a transaction's failure into a [`SagaError`].
pub fn from_tx_error(error: TxError<SagaError>) -> SagaError {
    match error {
        TxError::Abort(error) => error,
        TxError::Db(DbError::Unavailable { message }) => SagaError::Unavailable { message },
        TxError::Db(other) => SagaError::Internal {
            message: other.to_string(),
        },
    }
}
