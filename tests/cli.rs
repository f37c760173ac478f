//! The `migrate` and `config` commands of the real binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

use std::process::Command;

use corebank_testkit::TestDatabase;

#[tokio::test]
async fn migrate_applies_every_embedded_migration_to_database_url_and_is_idempotent() {
    let database = TestDatabase::create().await;
    for _ in 0..2 {
        let output = Command::new(env!("CARGO_BIN_EXE_corebank"))
            .arg("migrate")
            .env("DATABASE_URL", database.url())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            stdout.contains("migrations: 0 applied"),
            "the test database starts migrated: {stdout}"
        );
    }
}

#[test]
fn config_lists_every_setting_with_its_default() {
    let output = Command::new(env!("CARGO_BIN_EXE_corebank"))
        .arg("config")
        .env_remove("COREBANK_LOG")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    for spec in corebank_service::settings::SETTINGS {
        assert!(
            stdout.contains(spec.name),
            "{} missing from `corebank config`",
            spec.name
        );
    }
    assert!(stdout.contains("info (default)"), "{stdout}");
}
