//! `run_tx`: the one way to write. Every transaction runs at SERIALIZABLE, the isolation
//! CockroachDB always uses, and is retried whole when the database reports a serialization
//! failure or deadlock, with capped exponential backoff, full jitter and an overall deadline.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row, Statement};

use crate::{Db, DbError};

/// How `run_tx` retries. Every number has its unit in its name.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included.
    pub attempts_max: u32,
    /// The first backoff's upper bound; it doubles each attempt.
    pub backoff_initial_ms: u64,
    /// The cap on any single backoff.
    pub backoff_max_ms: u64,
    /// No new attempt starts after this long since the first began.
    pub deadline_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts_max: 100,
            backoff_initial_ms: 2,
            backoff_max_ms: 250,
            deadline_ms: 15_000,
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `attempt + 1`: uniform in [0, min(cap, initial * 2^attempt)].
    fn backoff(&self, attempt: u32) -> Duration {
        let exponent = attempt.min(20);
        let ceiling = self
            .backoff_initial_ms
            .saturating_mul(1_u64 << exponent)
            .min(self.backoff_max_ms)
            .max(1);
        Duration::from_millis(fastrand::u64(0..=ceiling))
    }
}

/// The failure of a transaction body or of the transaction itself.
#[derive(Debug, thiserror::Error)]
pub enum TxError<E> {
    /// The body decided to refuse (a business rule): rolled back, never retried.
    #[error("{0}")]
    Abort(E),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl<E> From<tokio_postgres::Error> for TxError<E> {
    fn from(error: tokio_postgres::Error) -> Self {
        TxError::Db(DbError::Query(error))
    }
}

/// Statements one connection keeps prepared at most. Past it (SQL built anew for each call
/// would fill the cache), a text statement is prepared for its one use, as tokio-postgres
/// does for any text statement.
pub const STATEMENTS_KEPT_MAX: usize = 512;

/// A transaction of the pool: deadpool's (to which it dereferences), whose `query`,
/// `query_one`, `query_opt` and `execute` keep each text statement prepared on its
/// connection. tokio-postgres prepares a text statement before each use (a round trip to
/// the server, and a parse there), then runs it (a second round trip); kept prepared, the
/// statement is parsed once per connection and each use is one round trip.
///
/// Text statements are kept only on a pool that plans each execution with its parameters
/// (`DbSettings::custom_plans`, the default), as PostgreSQL plans an unprepared statement:
/// kept and planned generically, a lookup planned while its table was tiny would go on
/// scanning it whole once it has grown.
pub struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
    keep_text: bool,
}

impl std::fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("statements_kept", &self.inner.statement_cache.size())
            .finish()
    }
}

impl<'a> std::ops::Deref for Transaction<'a> {
    type Target = deadpool_postgres::Transaction<'a>;
    fn deref(&self) -> &deadpool_postgres::Transaction<'a> {
        &self.inner
    }
}

/// A statement to run: SQL text (kept prepared on the connection), or a statement prepared
/// already.
#[derive(Debug, Clone, Copy)]
pub enum SqlRef<'s> {
    Text(&'s str),
    Prepared(&'s Statement),
}

/// What [`Transaction`]'s statements accept: text (`str`, `String`) or a [`Statement`].
pub trait Sql: Sync {
    fn sql(&self) -> SqlRef<'_>;
}

impl Sql for str {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Text(self)
    }
}

impl Sql for String {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Text(self)
    }
}

impl Sql for Statement {
    fn sql(&self) -> SqlRef<'_> {
        SqlRef::Prepared(self)
    }
}

impl<S: Sql + ?Sized> Sql for &S {
    fn sql(&self) -> SqlRef<'_> {
        (**self).sql()
    }
}

/// A statement's parameters.
type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl Transaction<'_> {
    /// The prepared statement of `sql`: kept on the connection, unless it keeps
    /// [`STATEMENTS_KEPT_MAX`] already.
    async fn statement<S: Sql + ?Sized>(
        &self,
        sql: &S,
    ) -> Result<Statement, tokio_postgres::Error> {
        match sql.sql() {
            SqlRef::Prepared(statement) => Ok(statement.clone()),
            SqlRef::Text(text)
                if self.keep_text && self.inner.statement_cache.size() < STATEMENTS_KEPT_MAX =>
            {
                self.inner.prepare_cached(text).await
            }
            SqlRef::Text(text) => self.inner.prepare(text).await,
        }
    }

    /// Like [`tokio_postgres::Transaction::query`], the statement kept prepared.
    pub async fn query<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Vec<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.inner.query(&statement, params).await
    }

    /// Like [`tokio_postgres::Transaction::query_one`], the statement kept prepared.
    pub async fn query_one<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Row, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.inner.query_one(&statement, params).await
    }

    /// Like [`tokio_postgres::Transaction::query_opt`], the statement kept prepared.
    pub async fn query_opt<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<Option<Row>, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.inner.query_opt(&statement, params).await
    }

    /// Like [`tokio_postgres::Transaction::execute`], the statement kept prepared.
    pub async fn execute<S: Sql + ?Sized>(
        &self,
        sql: &S,
        params: Params<'_>,
    ) -> Result<u64, tokio_postgres::Error> {
        let statement = self.statement(sql).await?;
        self.inner.execute(&statement, params).await
    }
}

/// The future a transaction body returns; borrowed from the transaction it runs in.
pub type TxFuture<'t, T, E> = Pin<Box<dyn Future<Output = Result<T, TxError<E>>> + Send + 't>>;

/// The transaction a body runs in (it dereferences to [`Transaction`], so `query`,
/// `execute` and the rest of deadpool's transaction are at hand).
///
/// The second lifetime is the body's environment: declaring `'env: 't` lets a body borrow
/// from the caller's stack across `.await` without cloning what it reads.
#[derive(Clone, Copy)]
pub struct Tx<'t, 'env: 't> {
    transaction: &'t Transaction<'t>,
    _env: PhantomData<&'env ()>,
}

impl<'t> std::ops::Deref for Tx<'t, '_> {
    type Target = Transaction<'t>;
    fn deref(&self) -> &Transaction<'t> {
        self.transaction
    }
}

impl std::fmt::Debug for Tx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The transaction was certainly rolled back and running it again may succeed.
    Retryable,
    /// The connection broke: before COMMIT the transaction was rolled back; during COMMIT
    /// nobody knows.
    ConnectionLost,
    /// Anything else: a definite failure that a retry would repeat.
    Fatal,
}

pub(crate) fn classify(error: &tokio_postgres::Error) -> ErrorClass {
    classify_code(error.code(), error.is_closed() || is_io_error(error))
}

/// [`classify`] by the error's SQLSTATE (`None`: it has none) and whether the connection
/// broke.
fn classify_code(code: Option<&SqlState>, broken: bool) -> ErrorClass {
    match code {
        Some(code)
            if *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::T_R_DEADLOCK_DETECTED =>
        {
            ErrorClass::Retryable
        }
        // 53200: the server ran out of (shared) memory, most often its table of SERIALIZABLE
        // predicate locks, which the transactions under way share (PostgreSQL's
        // `max_pred_locks_per_transaction`). The transaction is rolled back, and the table
        // empties as the others end: it is run again, with the same backoff as a
        // serialization failure.
        Some(code) if *code == SqlState::OUT_OF_MEMORY => ErrorClass::Retryable,
        // A statement pipelined behind one that failed is refused with 25P02; the cause may
        // be a serialization failure whose answer was read later. The transaction is
        // certainly rolled back, so running it again is safe; a definite cause shows up
        // again on the next attempt, where it is checked first.
        Some(code) if *code == SqlState::IN_FAILED_SQL_TRANSACTION => ErrorClass::Retryable,
        Some(code)
            if code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::T_R_STATEMENT_COMPLETION_UNKNOWN =>
        {
            ErrorClass::ConnectionLost
        }
        Some(_) => ErrorClass::Fatal,
        None if broken => ErrorClass::ConnectionLost,
        None => ErrorClass::Fatal,
    }
}

fn is_io_error(error: &tokio_postgres::Error) -> bool {
    std::error::Error::source(error).is_some_and(|source| source.is::<std::io::Error>())
}

fn reason_label(error: &tokio_postgres::Error) -> &'static str {
    match error.code() {
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED => "deadlock",
        Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE => "serialization_failure",
        Some(code) if *code == SqlState::IN_FAILED_SQL_TRANSACTION => {
            "aborted_by_earlier_statement"
        }
        Some(code) if *code == SqlState::OUT_OF_MEMORY => "out_of_shared_memory",
        _ => "connection_lost",
    }
}

enum Attempt<T, E> {
    Done(T),
    Retry(tokio_postgres::Error),
    Failed(TxError<E>),
}

impl Db {
    /// Runs `body` in a SERIALIZABLE transaction and commits it, retrying the whole
    /// transaction on a serialization failure or deadlock (SQLSTATE 40001 or 40P01), or on a
    /// connection lost before COMMIT. `name` labels logs and metrics.
    ///
    /// The body may run several times: it must have no side effects outside the transaction.
    /// A connection lost while COMMIT is in flight returns [`DbError::OutcomeUnknown`] and is
    /// never retried here.
    pub async fn run_tx<'env, T, E, F>(
        &self,
        name: &'static str,
        mut body: F,
    ) -> Result<T, TxError<E>>
    where
        F: for<'t> FnMut(Tx<'t, 'env>) -> TxFuture<'t, T, E> + Send + 'env,
        T: Send,
        E: Send,
    {
        let started = Instant::now();
        let deadline = started + Duration::from_millis(self.retry.deadline_ms);
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let error = match self.attempt(name, &mut body).await {
                Attempt::Done(value) => {
                    metrics::counter!("corebank_db_tx_total", "tx" => name, "outcome" => "committed")
                        .increment(1);
                    metrics::histogram!("corebank_db_tx_duration_seconds", "tx" => name)
                        .record(started.elapsed().as_secs_f64());
                    return Ok(value);
                }
                Attempt::Failed(error) => {
                    let outcome = match &error {
                        TxError::Abort(_) => "aborted",
                        TxError::Db(DbError::OutcomeUnknown { .. }) => "outcome_unknown",
                        TxError::Db(_) => "failed",
                    };
                    metrics::counter!("corebank_db_tx_total", "tx" => name, "outcome" => outcome)
                        .increment(1);
                    return Err(error);
                }
                Attempt::Retry(error) => error,
            };
            let pause = self.retry.backoff(attempt);
            if attempt >= self.retry.attempts_max || Instant::now() + pause > deadline {
                metrics::counter!("corebank_db_tx_total", "tx" => name, "outcome" => "retries_exhausted")
                    .increment(1);
                tracing::warn!(tx = name, tx.attempts = attempt, error = %error, "transaction gave up retrying");
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                return Err(TxError::Db(DbError::RetriesExhausted {
                    tx: name,
                    attempts: attempt,
                    elapsed_ms,
                    last: error,
                }));
            }
            metrics::counter!("corebank_db_tx_retries_total", "tx" => name, "reason" => reason_label(&error))
                .increment(1);
            tracing::debug!(tx = name, tx.attempt = attempt, backoff_ms = pause.as_millis(), error = %error, "retrying transaction");
            tokio::time::sleep(pause).await;
        }
    }

    async fn attempt<'env, T, E, F>(&self, name: &'static str, body: &mut F) -> Attempt<T, E>
    where
        F: for<'t> FnMut(Tx<'t, 'env>) -> TxFuture<'t, T, E> + Send + 'env,
        T: Send,
        E: Send,
    {
        let mut client = match self.client().await {
            Ok(client) => client,
            Err(error) => return Attempt::Failed(TxError::Db(error)),
        };
        let transaction = match client
            .build_transaction()
            .isolation_level(IsolationLevel::Serializable)
            .start()
            .await
        {
            Ok(inner) => Transaction {
                inner,
                keep_text: self.settings.custom_plans,
            },
            Err(error) => return retry_or_fail(error),
        };
        let value = match body(Tx {
            transaction: &transaction,
            _env: PhantomData,
        })
        .await
        {
            Ok(value) => value,
            // A statement failure inside the body: the transaction is rolled back when it is
            // dropped, so a retryable failure or a lost connection can safely run again.
            Err(TxError::Db(DbError::Query(error))) => return retry_or_fail(error),
            Err(other) => return Attempt::Failed(other),
        };
        match transaction.inner.commit().await {
            Ok(()) => Attempt::Done(value),
            Err(error) => match classify(&error) {
                ErrorClass::Retryable => Attempt::Retry(error),
                ErrorClass::ConnectionLost => {
                    tracing::error!(tx = name, error = %error, "connection lost during COMMIT: outcome unknown");
                    Attempt::Failed(TxError::Db(DbError::OutcomeUnknown {
                        tx: name,
                        source: error,
                    }))
                }
                ErrorClass::Fatal => Attempt::Failed(TxError::Db(DbError::Query(error))),
            },
        }
    }
}

fn retry_or_fail<T, E>(error: tokio_postgres::Error) -> Attempt<T, E> {
    match classify(&error) {
        ErrorClass::Retryable | ErrorClass::ConnectionLost => Attempt::Retry(error),
        ErrorClass::Fatal => Attempt::Failed(TxError::Db(DbError::Query(error))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transaction_refused_for_want_of_shared_memory_is_run_again_as_a_conflict_is() {
        let class = |code: &SqlState| classify_code(Some(code), false);
        assert_eq!(class(&SqlState::OUT_OF_MEMORY), ErrorClass::Retryable);
        assert_eq!(
            class(&SqlState::T_R_SERIALIZATION_FAILURE),
            ErrorClass::Retryable
        );
        assert_eq!(class(&SqlState::ADMIN_SHUTDOWN), ErrorClass::ConnectionLost);
        // What a retry would only repeat is final.
        assert_eq!(class(&SqlState::UNIQUE_VIOLATION), ErrorClass::Fatal);
        assert_eq!(class(&SqlState::DISK_FULL), ErrorClass::Fatal);
        assert_eq!(classify_code(None, true), ErrorClass::ConnectionLost);
        assert_eq!(classify_code(None, false), ErrorClass::Fatal);
    }

    #[test]
    fn backoff_stays_under_its_cap_and_grows_with_attempts() {
        let policy = RetryPolicy {
            attempts_max: 10,
            backoff_initial_ms: 2,
            backoff_max_ms: 50,
            deadline_ms: 1_000,
        };
        for attempt in 0..40 {
            let ceiling = (2_u64 << attempt.min(20)).min(50);
            for _ in 0..50 {
                assert!(policy.backoff(attempt) <= Duration::from_millis(ceiling));
            }
        }
    }
}
