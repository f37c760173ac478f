//! The `migrate`, `config`, `serve` and `bench` commands of the real binary.

use std::process::Command;

use corebank_testkit::TestDatabase;

use crate::common;

#[tokio::test]
async fn migrate_applies_every_embedded_migration_to_database_url_and_is_idempotent() {
    let database = TestDatabase::create().await;
    for _ in 0..2 {
        let stdout =
            common::succeeded(common::corebank(&["migrate"]).env("DATABASE_URL", database.url()));
        assert!(
            stdout.contains("migrations: 0 applied"),
            "the test database starts migrated: {stdout}"
        );
    }
}

#[test]
fn config_lists_every_setting_with_its_default() {
    let stdout = common::succeeded(common::corebank(&["config"]).env_remove("COREBANK_LOG"));
    for spec in corebank_service::settings::SETTINGS {
        assert!(
            stdout.contains(spec.name),
            "{} missing from `corebank config`",
            spec.name
        );
    }
    assert!(stdout.contains("info (default)"), "{stdout}");
}

#[test]
fn serve_refuses_a_development_ca_and_plain_text_outside_dev_mode() {
    let certs = tempfile::tempdir().unwrap();
    corebank_service::internal::pki::dev::ensure_dir(
        certs.path(),
        "corebank.internal",
        &["ledger"],
    )
    .unwrap();
    let serve = |extra: &[(&str, &str)]| {
        let mut command = common::corebank(&["serve", "ledger"]);
        command
            .env("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none")
            .env("COREBANK_TLS_DIR", certs.path())
            .env("COREBANK_HTTP_ADDR", "127.0.0.1:0")
            .env("COREBANK_INTERNAL_ADDR", "127.0.0.1:0")
            .env_remove("COREBANK_DEV");
        for (name, value) in extra {
            command.env(name, value);
        }
        common::refused(&mut command)
    };
    let stderr = serve(&[]);
    assert!(stderr.contains("holds a CA's private key"), "{stderr}");
    assert!(stderr.contains("COREBANK_TLS_CA"), "{stderr}");
    let stderr = serve(&[("COREBANK_INSECURE_INTERNAL", "true")]);
    assert!(stderr.contains("needs COREBANK_DEV=true"), "{stderr}");
}

#[tokio::test]
async fn migrate_leaves_the_mocks_out_unless_asked_for_them() {
    let database = TestDatabase::create().await;
    let (client, connection) = tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let name = format!("cb_migrate_{}", uuid::Uuid::new_v4().simple());
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, _) = database.url().rsplit_once('/').unwrap();
    let url = format!("{base}/{name}");
    let schemas = |url: String| async move {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .query(
                "SELECT schema_name::TEXT FROM information_schema.schemata",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let migrate = |args: &[&str]| {
        common::succeeded(
            common::corebank(&["migrate"])
                .args(args)
                .env("DATABASE_URL", &url),
        )
    };
    let stdout = migrate(&[]);
    assert!(stdout.contains("--with-mocks adds them"), "{stdout}");
    let real = schemas(url.clone()).await;
    for schema in [
        "ledger",
        "deposits",
        "payments",
        "gateway",
        "legacy_adapter",
    ] {
        assert!(real.iter().any(|s| s == schema), "{schema} in {real:?}");
    }
    for mock in ["legacy_core", "demo"] {
        assert!(!real.iter().any(|s| s == mock), "{mock} in {real:?}");
    }
    migrate(&["--with-mocks"]);
    let with_mocks = schemas(url.clone()).await;
    for mock in ["legacy_core", "demo"] {
        assert!(
            with_mocks.iter().any(|s| s == mock),
            "{mock} in {with_mocks:?}"
        );
    }
    client
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

/// Figures are compared from run to run: each suite keeps the flags it had, and every suite
/// takes the open-loop flags.
#[test]
fn every_bench_suite_keeps_its_flags_and_takes_the_open_loop_ones() {
    let shared = [
        "--seconds",
        "--clients",
        "--accounts",
        "--pgbench-scale",
        "--pgbench-clients",
        "--json",
        "--open-loop-percent",
        "--open-loop-rate",
    ];
    for (suite, own) in [
        ("ledger", &[][..]),
        ("payments", &[][..]),
        ("saga", &["--pool", "--pgbench-seconds"][..]),
        ("gateway", &[][..]),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_corebank"))
            .args(["bench", suite, "--help"])
            .output()
            .unwrap();
        assert!(output.status.success(), "bench {suite} --help");
        let help = String::from_utf8_lossy(&output.stdout);
        for flag in shared.iter().chain(own) {
            assert!(help.contains(flag), "bench {suite} lacks {flag}:\n{help}");
        }
    }
    let output = Command::new(env!("CARGO_BIN_EXE_corebank"))
        .args(["bench", "ledger", "--open-loop-percent", "0"])
        .output()
        .unwrap();
    assert!(!output.status.success(), "an open loop at 0% is refused");
}
