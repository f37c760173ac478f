//! Database access for every corebank component: the connection pool, `run_tx` (every write
//! transaction runs SERIALIZABLE and is retried whole on a serialization failure), the
//! migrations runner with its portability lint, and a private PostgreSQL server started
//! from the machine's own binaries.

pub mod lint;
pub mod local;
pub mod migrate;
mod pool;
mod tx;
pub mod url;

pub use pool::{Db, DbSettings};
pub use tokio_postgres;
pub use tx::{RetryPolicy, STATEMENTS_KEPT_MAX, Sql, SqlRef, Transaction, Tx, TxError, TxFuture};

/// 64-bit FNV-1a over the concatenated chunks: a stable, fast, non-cryptographic hash. Stable
/// means stored values may depend on it (migration checksums, outbox partitions): never change
/// its constants.
pub fn fnv1a<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    chunks.into_iter().flatten().fold(OFFSET, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(PRIME)
    })
}

/// What went wrong talking to the database. `is_retry_safe` tells a caller whether
/// repeating the whole operation can do harm.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database setting {setting} is invalid: {message}")]
    Config {
        setting: &'static str,
        message: String,
    },
    #[error("no database connection could be had: {message}")]
    Unavailable { message: String },
    #[error("database statement failed: {}", describe(.0))]
    Query(#[from] tokio_postgres::Error),
    #[error(
        "transaction {tx} still failed with a serialization conflict after {attempts} attempts \
         over {elapsed_ms} ms"
    )]
    RetriesExhausted {
        tx: &'static str,
        attempts: u32,
        elapsed_ms: u64,
        #[source]
        last: tokio_postgres::Error,
    },
    /// The connection failed while COMMIT was in flight: the transaction may or may not have
    /// committed. Never retried blindly; the caller must find out (by idempotency key) first.
    #[error("transaction {tx}: the connection was lost during COMMIT, the outcome is unknown")]
    OutcomeUnknown {
        tx: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// A driver error with what the server said, when it said something: its SQLSTATE and
/// message (tokio-postgres' own text is only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(server) => format!(
            "{} (SQLSTATE {}): {}",
            server.severity(),
            server.code().code(),
            server.message()
        ),
        None => error.to_string(),
    }
}

impl DbError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            DbError::Config { .. } => "database_config_invalid",
            DbError::Unavailable { .. } => "database_unavailable",
            DbError::Query(_) => "database_error",
            DbError::RetriesExhausted { .. } => "database_contention",
            DbError::OutcomeUnknown { .. } => "outcome_unknown",
        }
    }

    /// Whether repeating the whole operation is safe: true when nothing was committed.
    pub fn is_retry_safe(&self) -> bool {
        match self {
            DbError::Config { .. } => false,
            DbError::Unavailable { .. } => true,
            DbError::Query(error) => tx::classify(error) == tx::ErrorClass::Retryable,
            DbError::RetriesExhausted { .. } => true,
            DbError::OutcomeUnknown { .. } => false,
        }
    }

    /// The SQLSTATE of the underlying database error, if there is one.
    pub fn sql_state(&self) -> Option<&tokio_postgres::error::SqlState> {
        match self {
            DbError::Query(error)
            | DbError::RetriesExhausted { last: error, .. }
            | DbError::OutcomeUnknown { source: error, .. } => error.code(),
            DbError::Config { .. } | DbError::Unavailable { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv1a_matches_the_published_test_vectors_and_ignores_chunk_boundaries() {
        assert_eq!(super::fnv1a([b"".as_slice()]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(super::fnv1a([b"a".as_slice()]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(super::fnv1a([b"foobar".as_slice()]), 0x8594_4171_f739_67e8);
        assert_eq!(
            super::fnv1a([b"foo".as_slice(), b"bar".as_slice()]),
            super::fnv1a([b"foobar".as_slice()])
        );
    }
}
