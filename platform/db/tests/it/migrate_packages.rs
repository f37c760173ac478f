//! Table packages (the outbox's, the saga library's) instantiated per schema: a fresh database
//! gets the package's tables before the component's own, and a database migrated while the
//! same tables were the component's own files adopts them, losing nothing and running
//! nothing twice.

use std::path::Path;

use corebank_db::migrate;
use corebank_testkit::TestDatabase;
use corebank_testkit::query::one_i64;

const WIDGETS: &str = "CREATE TABLE widgets (id UUID PRIMARY KEY, colour TEXT NOT NULL);\n";

/// The real outbox package's files.
fn outbox_package() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../outbox/migrations/outbox");
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            (
                path.file_name().unwrap().to_str().unwrap().to_owned(),
                std::fs::read_to_string(&path).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// `<tmp>/migrations/<component>/…` as before the packages: the outbox's first file as the
/// component's own `0002_create_outbox.sql`.
fn old_layout(root: &Path, component: &str) {
    let own = root.join("migrations").join(component);
    write(&own.join("0001_create_widgets.sql"), WIDGETS);
    let (_, create_outbox) = outbox_package().into_iter().next().unwrap();
    write(&own.join("0002_create_outbox.sql"), &create_outbox);
}

/// The same component with the outbox as a package it uses.
fn new_layout(root: &Path, component: &str) {
    let own = root.join("migrations").join(component);
    write(&own.join("0001_create_widgets.sql"), WIDGETS);
    write(&own.join("uses"), "# the transactional outbox\noutbox\n");
    for (name, sql) in outbox_package() {
        write(
            &root.join("platform/outbox/migrations/outbox").join(name),
            &sql,
        );
    }
}

#[tokio::test]
async fn a_fresh_schema_gets_the_package_first_and_an_old_one_adopts_it_without_loss() {
    let database = TestDatabase::create().await;
    let db = database.db();

    // Fresh: the package's tables, then the component's own.
    let fresh = tempfile::tempdir().unwrap();
    new_layout(fresh.path(), "fresh_co");
    let migrations = migrate::load_dir(&fresh.path().join("migrations")).unwrap();
    let report = migrate::apply(db, &migrations).await.unwrap();
    let package: Vec<String> = outbox_package()
        .iter()
        .map(|(name, _)| format!("fresh_co/outbox/{name}"))
        .collect();
    let mut expected = package.clone();
    expected.push("fresh_co/0001_create_widgets.sql".to_owned());
    assert_eq!(report.applied, expected);
    assert!(report.adopted.is_empty());

    // Migrated while the outbox was the component's own file, with an event in it.
    let old = tempfile::tempdir().unwrap();
    old_layout(old.path(), "old_co");
    let before = migrate::load_dir(&old.path().join("migrations")).unwrap();
    migrate::apply(db, &before).await.unwrap();
    let client = db.client().await.unwrap();
    client
        .execute(
            "INSERT INTO old_co.outbox (aggregatetype, aggregateid, aggregate_sequence, id, type, \
             payload, created_at, partition) VALUES ('thing', 'a-1', 1, gen_random_uuid(), \
             'thing.made', '{}', now(), 3)",
            &[],
        )
        .await
        .unwrap();

    let upgraded = tempfile::tempdir().unwrap();
    new_layout(upgraded.path(), "old_co");
    let after = migrate::load_dir(&upgraded.path().join("migrations")).unwrap();
    let report = migrate::apply(db, &after).await.unwrap();
    assert_eq!(report.adopted, ["old_co/outbox/0001_create_outbox.sql"]);
    assert_eq!(
        report.applied,
        package[1..]
            .iter()
            .map(|path| path.replace("fresh_co", "old_co"))
            .collect::<Vec<_>>(),
        "the package's files the old layout did not have run once"
    );
    assert_eq!(report.already_applied, 1, "the widgets file");
    let kept = one_i64(db, "SELECT count(*) FROM old_co.outbox", &[]).await;
    assert_eq!(
        kept, 1,
        "the event written before the upgrade is still there"
    );

    // Again: everything is in place.
    let again = migrate::apply(db, &after).await.unwrap();
    assert!(
        again.applied.is_empty() && again.adopted.is_empty(),
        "{again:?}"
    );
    assert_eq!(again.already_applied, after.len());
}

#[test]
fn a_use_of_an_unknown_package_is_refused_naming_it() {
    let root = tempfile::tempdir().unwrap();
    write(
        &root.path().join("migrations/acme/0001_create_widgets.sql"),
        WIDGETS,
    );
    write(&root.path().join("migrations/acme/uses"), "outbox\nsagas\n");
    for (name, sql) in outbox_package() {
        write(
            &root
                .path()
                .join("platform/outbox/migrations/outbox")
                .join(name),
            &sql,
        );
    }
    std::fs::create_dir_all(root.path().join("platform/saga/migrations")).unwrap();
    std::fs::create_dir_all(root.path().join("platform/outbox/migrations/inbox")).unwrap();
    let error = migrate::load_dir(&root.path().join("migrations")).unwrap_err();
    assert!(error.to_string().contains("acme/uses"), "{error}");
    assert!(error.to_string().contains("\"sagas\""), "{error}");
}
