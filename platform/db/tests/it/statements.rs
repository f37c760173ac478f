//! Text statements in a transaction are kept prepared on their connection
//! (`corebank_db::Transaction`): parsed once, then one round trip per use.

use corebank_db::{STATEMENTS_KEPT_MAX, TxError};
use corebank_testkit::TestDatabase;

/// How many statements the server holds prepared for the session that runs the query.
const PREPARED_HERE: &str = "SELECT count(*) FROM pg_prepared_statements";

#[tokio::test]
async fn a_text_statement_is_prepared_once_per_connection_and_then_only_run() {
    let database = TestDatabase::create().await;
    let mut settings = TestDatabase::settings_for(database.url());
    // One connection, so that every transaction below finds the statements of the others.
    settings.pool_size_max = 1;
    let db = corebank_db::Db::connect_lazy(&settings).unwrap();
    let sql = "SELECT $1::BIGINT + 1";
    let (sum, kept) = db
        .run_tx("statements_first", |tx| {
            Box::pin(async move {
                let sum: i64 = tx.query_one(sql, &[&41_i64]).await?.get(0);
                let kept = tx.statement_cache.size();
                Ok::<_, TxError<()>>((sum, kept))
            })
        })
        .await
        .unwrap();
    assert_eq!(sum, 42);
    assert_eq!(kept, 1, "the text statement is kept prepared");
    let (again, kept, on_server) = db
        .run_tx("statements_again", |tx| {
            Box::pin(async move {
                let owned = sql.to_owned();
                let again: i64 = tx.query_one(&owned, &[&1_i64]).await?.get(0);
                let more = tx
                    .query_opt(sql, &[&2_i64])
                    .await?
                    .map(|row| row.get::<_, i64>(0));
                assert_eq!(more, Some(3));
                let kept = tx.statement_cache.size();
                let on_server: i64 = tx.query_one(PREPARED_HERE, &[]).await?.get(0);
                Ok::<_, TxError<()>>((again, kept, on_server))
            })
        })
        .await
        .unwrap();
    assert_eq!(again, 2);
    assert_eq!(kept, 1, "the same text, however passed, is prepared once");
    assert_eq!(
        on_server, 2,
        "the server holds that statement and the one counting them, no other"
    );
}

#[tokio::test]
async fn past_the_most_statements_kept_a_text_statement_is_prepared_for_its_one_use() {
    let database = TestDatabase::create().await;
    let mut settings = TestDatabase::settings_for(database.url());
    settings.pool_size_max = 1;
    let db = corebank_db::Db::connect_lazy(&settings).unwrap();
    let (kept, answers_right) = db
        .run_tx("statements_many", |tx| {
            Box::pin(async move {
                let mut right = true;
                for n in 0..STATEMENTS_KEPT_MAX + 10 {
                    // SQL built anew for each call: a different text every time.
                    let sql = format!("SELECT {n}::BIGINT + $1::BIGINT");
                    let sum: i64 = tx.query_one(&sql, &[&1_i64]).await?.get(0);
                    right &= sum == i64::try_from(n).unwrap() + 1;
                }
                Ok::<_, TxError<()>>((tx.statement_cache.size(), right))
            })
        })
        .await
        .unwrap();
    assert!(answers_right);
    assert_eq!(kept, STATEMENTS_KEPT_MAX, "the cache stops at its most");
}

#[tokio::test]
async fn a_pool_with_generic_plans_keeps_no_text_statement() {
    let database = TestDatabase::create().await;
    let mut settings = TestDatabase::settings_for(database.url());
    settings.pool_size_max = 1;
    settings.custom_plans = false;
    let db = corebank_db::Db::connect_lazy(&settings).unwrap();
    let (sum, kept, on_server) = db
        .run_tx("statements_generic", |tx| {
            Box::pin(async move {
                let sum: i64 = tx
                    .query_one("SELECT $1::BIGINT + 1", &[&1_i64])
                    .await?
                    .get(0);
                let kept = tx.statement_cache.size();
                let on_server: i64 = tx.query_one(PREPARED_HERE, &[]).await?.get(0);
                Ok::<_, TxError<()>>((sum, kept, on_server))
            })
        })
        .await
        .unwrap();
    assert_eq!(sum, 2);
    assert_eq!(kept, 0, "kept, it would be planned generically");
    assert_eq!(on_server, 1, "only the statement counting, for its one use");
}
