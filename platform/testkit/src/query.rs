//! Reading values back from a test database, as assertions need them.

use corebank_db::Db;
use tokio_postgres::types::{FromSqlOwned, ToSql};

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

/// The first two columns of every row `sql` answers with `params`, in its order (the leases
/// a relay holds, the effects a saga recorded). A query that fails stops the test, naming
/// the statement.
pub async fn pairs<A: FromSqlOwned, B: FromSqlOwned>(
    db: &Db,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Vec<(A, B)> {
    let client = db
        .client()
        .await
        .expect("a connection to the test database");
    match client.query(sql, params).await {
        Ok(rows) => rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        Err(error) => panic!("{sql}: {error}"),
    }
}
