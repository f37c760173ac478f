//! `run_tx` and the migrations runner against a real PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use corebank_db::migrate::{self, MigrateError};
use corebank_db::{DbError, TxError, TxFuture};
use corebank_testkit::TestDatabase;
use corebank_testkit::query::one_i64;

#[derive(Debug, PartialEq, Eq)]
struct Refused(&'static str);

/// A database of its own with an empty `notes` table.
async fn with_notes() -> TestDatabase {
    let database = TestDatabase::create().await;
    let client = database.db().client().await.unwrap();
    client
        .batch_execute("CREATE TABLE notes (id INT8 PRIMARY KEY)")
        .await
        .unwrap();
    database
}

#[tokio::test]
async fn a_refusal_from_the_body_rolls_back_and_is_not_retried() {
    let database = with_notes().await;
    let db = database.db();
    let calls = AtomicU32::new(0);
    let outcome = db
        .run_tx("refused", |tx| -> TxFuture<'_, (), Refused> {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.execute("INSERT INTO notes (id) VALUES (1)", &[]).await?;
                Err(TxError::Abort(Refused("limit_exceeded")))
            })
        })
        .await;
    assert!(matches!(
        outcome,
        Err(TxError::Abort(Refused("limit_exceeded")))
    ));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let count = one_i64(db, "SELECT count(*) FROM notes", &[]).await;
    assert_eq!(
        count, 0,
        "the refused transaction's insert must have been rolled back"
    );
}

#[tokio::test]
async fn transactions_run_at_serializable() {
    let database = TestDatabase::create().await;
    let level: String = database
        .db()
        .run_tx::<_, std::convert::Infallible, _>("isolation", |tx| -> TxFuture<'_, String, _> {
            Box::pin(async move {
                Ok(tx
                    .query_one("SHOW transaction_isolation", &[])
                    .await?
                    .get(0))
            })
        })
        .await
        .unwrap();
    assert_eq!(level, "serializable");
}

#[tokio::test]
async fn a_connection_lost_during_commit_is_reported_as_outcome_unknown_and_not_retried() {
    let database = with_notes().await;
    let db = database.db();
    let killer = db.client().await.unwrap();
    let calls = AtomicU32::new(0);
    let killer = &killer;
    let calls_ref = &calls;
    let outcome = db
        .run_tx::<(), std::convert::Infallible, _>("lost_commit", |tx| -> TxFuture<'_, (), _> {
            calls_ref.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.execute("INSERT INTO notes (id) VALUES (1)", &[]).await?;
                let pid: i32 = tx.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
                // The body's work is done; the connection dies before COMMIT's answer arrives.
                killer
                    .execute("SELECT pg_terminate_backend($1)", &[&pid])
                    .await?;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                Ok(())
            })
        })
        .await;
    match outcome {
        Err(TxError::Db(error @ DbError::OutcomeUnknown { .. })) => {
            assert_eq!(error.code(), "outcome_unknown");
            assert!(!error.is_retry_safe());
        }
        other => panic!("expected outcome_unknown, got {other:?}"),
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "an unknown outcome must never be retried blindly"
    );
}

#[tokio::test]
async fn a_statement_error_is_returned_at_once_with_its_sqlstate() {
    let database = TestDatabase::create().await;
    let calls = AtomicU32::new(0);
    let outcome = database
        .db()
        .run_tx::<(), std::convert::Infallible, _>("bad_sql", |tx| -> TxFuture<'_, (), _> {
            calls.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tx.execute("SELECT * FROM no_such_table", &[]).await?;
                Ok(())
            })
        })
        .await;
    let Err(TxError::Db(error)) = outcome else {
        panic!("expected a database error")
    };
    assert_eq!(error.sql_state().map(|s| s.code()), Some("42P01"));
    assert!(!error.is_retry_safe());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

fn fixture_migrations(name: &str) -> Vec<migrate::Migration> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    migrate::load_dir(&dir).unwrap()
}

/// A fresh database with the fixture migrations `name` applied once: the database, the
/// migrations and what applying them answered.
async fn with_fixture_applied(
    name: &str,
) -> (
    TestDatabase,
    Vec<migrate::Migration>,
    Result<migrate::MigrationReport, MigrateError>,
) {
    let database = TestDatabase::create().await;
    let migrations = fixture_migrations(name);
    let applied = migrate::apply(database.db(), &migrations).await;
    (database, migrations, applied)
}

#[tokio::test]
async fn migrations_apply_once_per_component_schema_and_record_their_checksums() {
    let (database, migrations, first) = with_fixture_applied("migrations").await;
    let db = database.db();
    let first = first.unwrap();
    assert_eq!(
        first.applied,
        vec![
            "alpha/0001_create_widgets.sql",
            "alpha/0002_add_widget_colour.sql",
            "beta/0001_create_gadgets.sql"
        ]
    );
    let second = migrate::apply(db, &migrations).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, 3);

    // Both schemas' tables are in place.
    db.client()
        .await
        .unwrap()
        .batch_execute(
            "INSERT INTO alpha.widgets (id, colour) VALUES (gen_random_uuid(), 'red'); \
             INSERT INTO beta.gadgets (id) VALUES (gen_random_uuid())",
        )
        .await
        .unwrap();
    let recorded = one_i64(db, "SELECT count(*) FROM alpha.schema_migrations", &[]).await;
    assert_eq!(recorded, 2);
}

#[tokio::test]
async fn an_applied_migration_that_was_edited_is_refused_by_name() {
    let (database, mut migrations, first) = with_fixture_applied("migrations").await;
    let db = database.db();
    first.unwrap();
    migrations[0].sql.push_str("\n-- edited later");
    migrations[0].checksum = "0000000000000000".to_owned();
    let error = migrate::apply(db, &migrations).await.unwrap_err();
    assert!(matches!(error, MigrateError::Edited { .. }));
    assert!(
        error.to_string().contains("alpha/0001_create_widgets.sql"),
        "{error}"
    );
}

#[tokio::test]
async fn concurrent_runners_apply_each_migration_exactly_once() {
    let database = TestDatabase::create().await;
    let db = Arc::new(database.db().clone());
    let migrations = Arc::new(fixture_migrations("migrations"));
    let runners: Vec<_> = (0..4)
        .map(|_| {
            let db = Arc::clone(&db);
            let migrations = Arc::clone(&migrations);
            tokio::spawn(async move { migrate::apply(&db, &migrations).await })
        })
        .collect();
    let mut applied = 0;
    for runner in runners {
        applied += runner.await.unwrap().unwrap().applied.len();
    }
    assert_eq!(
        applied, 3,
        "each migration is applied by exactly one runner"
    );
}

#[tokio::test]
async fn a_failing_migration_names_its_file_and_leaves_nothing_behind() {
    let (database, _, applied) = with_fixture_applied("broken_migrations").await;
    let error = applied.unwrap_err();
    assert!(
        error.to_string().contains("gamma/0001_broken.sql"),
        "{error}"
    );
    let recorded = one_i64(
        database.db(),
        "SELECT count(*) FROM gamma.schema_migrations",
        &[],
    )
    .await;
    assert_eq!(recorded, 0);
}
