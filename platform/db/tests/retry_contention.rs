//! `run_tx` under real contention: opposing transfers between a few rows of a test table,
//! from many tasks at once, must all succeed (retried where the database refused them), keep
//! the total, and show the retries in the Prometheus metric.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

use std::sync::Arc;

use corebank_db::{TxError, TxFuture};
use corebank_testkit::TestDatabase;
use corebank_testkit::query::one_i64;

const TASKS: usize = 16;
const TRANSFERS_PER_TASK: usize = 50;
const ACCOUNTS: i64 = 4;
const OPENING_BALANCE: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opposing_transfers_under_contention_all_commit_and_preserve_the_total() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    metrics::set_global_recorder(recorder).expect("this test binary installs the only recorder");

    let database = TestDatabase::create().await;
    let db = database.db().clone();
    let client = db.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE contention_accounts (id INT8 PRIMARY KEY, balance INT8 NOT NULL)",
        )
        .await
        .unwrap();
    for id in 0..ACCOUNTS {
        client
            .execute(
                "INSERT INTO contention_accounts (id, balance) VALUES ($1, $2)",
                &[&id, &OPENING_BALANCE],
            )
            .await
            .unwrap();
    }
    drop(client);

    let db = Arc::new(db);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let db = Arc::clone(&db);
        tasks.push(tokio::spawn(async move {
            for transfer in 0..TRANSFERS_PER_TASK {
                // Even tasks move money one way round the ring, odd tasks the other way, so
                // transactions cross each other's rows constantly.
                let step = i64::try_from(task * TRANSFERS_PER_TASK + transfer).unwrap();
                let from = step % ACCOUNTS;
                let to = if task % 2 == 0 { (from + 1) % ACCOUNTS } else { (from + ACCOUNTS - 1) % ACCOUNTS };
                let amount = 1 + step % 7;
                db.run_tx::<(), std::convert::Infallible, _>("contention_transfer", |tx| -> TxFuture<'_, (), _> {
                    Box::pin(async move {
                        // Lock both rows in id order, as every write path here does; what
                        // remains are serialization failures, which run_tx must absorb.
                        let rows = tx
                            .query(
                                "SELECT id, balance FROM contention_accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                                &[&vec![from, to]],
                            )
                            .await?;
                        let balance: i64 = rows.iter().find(|row| row.get::<_, i64>(0) == from).map_or(0, |row| row.get(1));
                        tx.execute(
                            "UPDATE contention_accounts SET balance = $2 WHERE id = $1",
                            &[&from, &(balance - amount)],
                        )
                        .await?;
                        tx.execute(
                            "UPDATE contention_accounts SET balance = balance + $2 WHERE id = $1",
                            &[&to, &amount],
                        )
                        .await?;
                        Ok(())
                    })
                })
                .await
                .map_err(|error: TxError<std::convert::Infallible>| error.to_string())?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await
            .unwrap()
            .expect("no error may reach a caller of run_tx");
    }

    let total = one_i64(
        &db,
        "SELECT sum(balance)::INT8 FROM contention_accounts",
        &[],
    )
    .await;
    assert_eq!(
        total,
        OPENING_BALANCE * ACCOUNTS,
        "money was created or destroyed"
    );

    let rendered = metrics.render();
    let committed = counter(
        &rendered,
        "corebank_db_tx_total",
        &["tx=\"contention_transfer\"", "outcome=\"committed\""],
    );
    assert_eq!(
        committed,
        TASKS * TRANSFERS_PER_TASK,
        "every transfer commits exactly once\n{rendered}"
    );
    let retries = counter(
        &rendered,
        "corebank_db_tx_retries_total",
        &["tx=\"contention_transfer\""],
    );
    assert!(
        retries > 0,
        "contention this heavy must have caused retries\n{rendered}"
    );
}

/// The sum of a counter's samples whose labels include all of `labels`.
fn counter(rendered: &str, name: &str, labels: &[&str]) -> usize {
    rendered
        .lines()
        .filter(|line| line.starts_with(&format!("{name}{{")))
        .filter(|line| labels.iter().all(|label| line.contains(label)))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<usize>().ok())
        .sum()
}
