//! Reading one number back from a test database, as assertions need it.

use corebank_db::Db;
use tokio_postgres::types::ToSql;

/// The `INT8` in the first column of the one row `sql` answers with `params` (a count, a
/// sum, a partition). A query that fails stops the test, naming the statement.
pub async fn one_i64(db: &Db, sql: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
    let client = db
        .client()
        .await
        .expect("a connection to the test database");
    match client.query_one(sql, params).await {
        Ok(row) => row.get(0),
        Err(error) => panic!("{sql}: {error}"),
    }
}
