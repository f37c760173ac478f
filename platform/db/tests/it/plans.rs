//! How a pool's connections plan prepared statements (`DbSettings::custom_plans`).

use corebank_db::Db;
use corebank_testkit::TestDatabase;

/// The plan that a connection of `db` uses for a lookup of a batch of ids in a table that
/// had 5 rows (analyzed) when the lookup was first run six times, and has 20,005 now.
async fn lookup_plan_after_growth(db: &Db) -> String {
    let client = db.client().await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS grown (id UUID PRIMARY KEY, request JSONB NOT NULL);
             DELETE FROM grown;
             INSERT INTO grown SELECT gen_random_uuid(), '{}' FROM generate_series(1, 5);
             ANALYZE grown;
             PREPARE lookup (UUID[]) AS SELECT id FROM grown WHERE id = ANY($1);",
        )
        .await
        .unwrap();
    for _ in 0..6 {
        client
            .batch_execute("EXECUTE lookup (ARRAY[gen_random_uuid()])")
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "INSERT INTO grown SELECT gen_random_uuid(), '{}' FROM generate_series(1, 20000)",
        )
        .await
        .unwrap();
    let plan = client
        .simple_query("EXPLAIN EXECUTE lookup (ARRAY[gen_random_uuid()])")
        .await
        .unwrap();
    client.batch_execute("DEALLOCATE lookup").await.unwrap();
    plan.iter()
        .filter_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn a_pool_with_custom_plans_looks_a_grown_table_up_by_its_index() {
    let database = TestDatabase::create().await;
    // Without custom plans, the generic plan made while the table was tiny is kept, and
    // scans the whole table once it has grown (until the table is analyzed again).
    let mut settings = TestDatabase::settings_for(database.url());
    settings.custom_plans = false;
    let generic = lookup_plan_after_growth(&Db::connect_lazy(&settings).unwrap()).await;
    assert!(generic.contains("Seq Scan"), "{generic}");
    // The default plans each execution with its parameters.
    assert!(TestDatabase::settings_for(database.url()).custom_plans);
    let plan = lookup_plan_after_growth(database.db()).await;
    assert!(plan.contains("Index"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");
}
