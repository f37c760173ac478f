//! `corebank up` from nothing: the real binary, in an empty directory, with no DATABASE_URL.
//! It must initialize and start its own PostgreSQL, migrate, serve, answer `/healthz`, and on
//! SIGINT stop everything it started.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common;

/// Generous: the first run initializes a durable PostgreSQL cluster.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

struct KillOnDrop(Child);

/// A directory removed when the test ends (the data of a root `up` lives outside the test's
/// temporary directory).
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if self.0.starts_with("/var/lib/corebank") {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn up_starts_from_nothing_answers_healthz_and_stops_cleanly_on_ctrl_c() {
    // reqwest is built without a TLS provider of its own.
    corebank_service::internal::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    // Closed to others, as a home directory usually is: when the tests run as root,
    // PostgreSQL runs as `postgres`, which cannot enter it, and `up` keeps the data where
    // that user can work (and says where).
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let root = corebank_db::local::running_as_root();
    let data_dir = if root {
        let home = std::path::absolute(dir.path().join(".corebank")).unwrap();
        let name = home
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "-");
        std::path::Path::new("/var/lib/corebank")
            .join(name)
            .join("pg")
    } else {
        dir.path().join(".corebank/pg")
    };
    let _cleanup = RemoveOnDrop(data_dir.parent().unwrap().to_path_buf());

    let child = Command::new(env!("CARGO_BIN_EXE_corebank"))
        .arg("up")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("COREBANK_HTTP_ADDR", "127.0.0.1:0")
        .env("COREBANK_INTERNAL_ADDR", "127.0.0.1:0")
        .env("COREBANK_LEGACY_CORE_ADDR", "127.0.0.1:0")
        .env("COREBANK_LEGACY_ADAPTER_ADDR", "127.0.0.1:0")
        .env("COREBANK_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let stderr = child.0.stderr.take().unwrap();
    // Logs at warn and above, kept to check that a clean run logs no warning.
    let logs = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<String>>()
    });
    let (lines_tx, lines) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut printed = Vec::new();
    let base_url = loop {
        let line = lines.recv_timeout(READY_TIMEOUT).unwrap_or_else(|_| {
            panic!(
                "no ready line in time; printed so far:\n{}",
                printed.join("\n")
            )
        });
        printed.push(line.clone());
        if let Some(url) = line.trim().strip_prefix("public ") {
            break url.trim().to_owned();
        }
    };
    // The internal listener is printed next to the public one, and speaks TLS.
    let internal_url = {
        let line = lines.recv_timeout(READY_TIMEOUT).unwrap();
        printed.push(line.clone());
        line.trim()
            .strip_prefix("internal ")
            .unwrap_or_else(|| panic!("the internal listener follows the public one: {line:?}"))
            .trim()
            .to_owned()
    };
    assert!(
        internal_url.starts_with("https://127.0.0.1:"),
        "{internal_url}"
    );
    assert!(
        printed.iter().any(|l| l.contains("corebank is ready")),
        "{printed:?}"
    );
    // The rest of the ready block names the legacy adapter's address.
    let adapter_url = loop {
        let line = lines.recv_timeout(READY_TIMEOUT).unwrap();
        printed.push(line.clone());
        if let Some(rest) = line.trim().strip_prefix("legacy adapter gRPC on") {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    assert!(
        printed
            .iter()
            .any(|l| l.contains("initializing PostgreSQL")),
        "{printed:?}"
    );
    // Then the dev tokens, one per role.
    let mut in_tokens = false;
    let mut tokens = std::collections::BTreeMap::new();
    while !tokens.contains_key("auditor") {
        let line = lines.recv_timeout(READY_TIMEOUT).unwrap();
        printed.push(line.clone());
        in_tokens |= line.starts_with("dev tokens");
        if in_tokens && let Some((role, token)) = line.trim().split_once(char::is_whitespace) {
            tokens.insert(role.to_owned(), token.trim().to_owned());
        }
    }
    let channel_token = tokens["channel"].clone();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let health = reqwest::get(format!("{base_url}/healthz")).await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = reqwest::get(format!("{base_url}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200, "the private database must answer");
        // The README's tour: a channel opens an account through the gateway with the
        // printed token; nothing is routed yet, so the legacy core serves it.
        let opened = reqwest::Client::new()
            .post(format!("{base_url}/v1/accounts"))
            .bearer_auth(&channel_token)
            .header("idempotency-key", "up-test-1")
            .json(
                &serde_json::json!({ "customer_id": "1000012", "product_code": "LEGACY-CURRENT" }),
            )
            .send()
            .await
            .unwrap();
        let status = opened.status();
        let headers = opened.headers().clone();
        let body = opened.text().await.unwrap();
        assert_eq!(status, 201, "{body}");
        assert_eq!(
            headers.get("x-served-by").and_then(|v| v.to_str().ok()),
            Some("legacy")
        );
        let reference = reqwest::get(format!("{base_url}/openapi.json"))
            .await
            .unwrap();
        assert_eq!(reference.status(), 200);
        // One door: nothing internal answers on the public port.
        let http = reqwest::Client::new();
        // Service names from the generated code, so that a path cannot be misspelt into a
        // 404 that proves nothing.
        let grpc = |service: &str, method: &str| format!("/{service}/{method}");
        let paths = [
            grpc(
                corebank_api::ledger::v1::ledger_server::SERVICE_NAME,
                "CreateTransfer",
            ),
            grpc(
                corebank_api::ledger::v1::ledger_server::SERVICE_NAME,
                "GetTrialBalance",
            ),
            grpc(
                corebank_api::saga::v1::saga_admin_server::SERVICE_NAME,
                "RetryNow",
            ),
            grpc(
                corebank_api::saga::v1::saga_admin_server::SERVICE_NAME,
                "MarkResolved",
            ),
            grpc(
                corebank_api::deposits::v1::deposits_server::SERVICE_NAME,
                "Deposit",
            ),
            grpc(
                corebank_api::payments::v1::payments_server::SERVICE_NAME,
                "InternalTransfer",
            ),
            grpc(
                corebank_api::legacy::v1::legacy_export_server::SERVICE_NAME,
                "ExportAccounts",
            ),
            grpc(
                corebank_api::legacy::v1::legacy_migration_server::SERVICE_NAME,
                "EmptyAccount",
            ),
            grpc(
                corebank_api::deposits::v1::deposits_migration_server::SERVICE_NAME,
                "ImportAccount",
            ),
            grpc(
                corebank_api::gateway::v1::account_homes_server::SERVICE_NAME,
                "SwitchHome",
            ),
            grpc(
                corebank_api::migration::v1::migrations_server::SERVICE_NAME,
                "StartMigration",
            ),
            grpc(
                corebank_api::platform::v1::platform_info_server::SERVICE_NAME,
                "GetVersion",
            ),
            "/grpc.health.v1.Health/Check".to_owned(),
            "/payments/rail/v1/pacs008".to_owned(),
            "/payments/rail/v1/pacs002".to_owned(),
            "/rail-sim/v1/pacs008".to_owned(),
            "/rail-sim/v1/inbound".to_owned(),
        ];
        for path in paths {
            let answer = http
                .post(format!("{base_url}{path}"))
                .header("content-type", "application/grpc")
                .body(vec![0_u8; 5])
                .send()
                .await
                .unwrap();
            assert_eq!(answer.status(), 404, "{path} on the public port");
        }
        let metrics = reqwest::get(format!("{base_url}/metrics")).await.unwrap();
        assert_eq!(
            metrics.status(),
            404,
            "/metrics is internal unless COREBANK_METRICS_PUBLIC"
        );
    });
    // `up` made a development CA and a certificate per component, keys readable by their
    // owner only.
    let certs = dir.path().join(".corebank/certs");
    for file in [
        "ca.key",
        "gateway.key",
        "ledger.key",
        "rail.key",
        "migration.key",
    ] {
        let mode = std::fs::metadata(certs.join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    assert!(adapter_url.starts_with("https://"), "{adapter_url}");
    assert!(
        data_dir.join("postmaster.pid").exists(),
        "PostgreSQL runs in {}",
        data_dir.display()
    );

    // The seeded legacy core, exported through the adapter for migration.
    let export = dir.path().join("current.jsonl");
    let exported = Command::new(env!("CARGO_BIN_EXE_corebank"))
        .args([
            "legacy",
            "export",
            "--product",
            "LEGACY-CURRENT",
            "--adapter",
        ])
        .arg(&adapter_url)
        .arg("--out")
        .arg(&export)
        // The export calls the adapter with the migration tooling's certificate, which
        // `up` made under this directory's .corebank/certs.
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let accounts: Vec<serde_json::Value> = std::fs::read_to_string(&export)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(
        accounts.len(),
        51,
        "corebank up seeds 50 legacy customers, and one account was opened through the gateway"
    );
    assert_eq!(
        accounts
            .iter()
            .filter(|a| a["posted"].as_str().is_some_and(|p| p != "0.00"))
            .count(),
        50,
        "the seeded accounts are funded"
    );
    assert!(
        String::from_utf8_lossy(&exported.stderr).contains("exported 51 accounts"),
        "progress is reported"
    );

    // The tour goes on: a canary of the product's accounts moves to the modern side under
    // four eyes, and the books reconcile.
    migrate_a_canary_and_reconcile(
        dir.path(),
        &base_url,
        &tokens["operator"],
        &tokens["approver"],
    );

    // Let the background tasks (the ledger's hold expirer runs every second) touch the
    // database, so stopping has open connections to close in the right order.
    std::thread::sleep(Duration::from_millis(2_500));
    let pid = child.0.id().to_string();
    // The shell's own `kill`: a minimal machine may have no kill binary (procps).
    let signalled = Command::new("sh")
        .args(["-c", &format!("kill -INT {pid}")])
        .status()
        .unwrap();
    assert!(signalled.success());
    let deadline = std::time::Instant::now() + STOP_TIMEOUT;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "corebank up did not stop after SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "corebank up exited with {status}");
    let rest: Vec<String> = lines.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.contains("corebank stopped")),
        "{rest:?}"
    );
    assert!(
        data_dir.join("PG_VERSION").exists(),
        "the data is in {}: {printed:?}",
        data_dir.display()
    );
    if root {
        assert!(
            printed
                .iter()
                .any(|l| l.contains("cannot enter") && l.contains(&data_dir.display().to_string())),
            "a root up says where the data went: {printed:?}"
        );
    }
    assert!(
        !data_dir.join("postmaster.pid").exists(),
        "the private PostgreSQL must be stopped with corebank"
    );
    // Components stop before their database does: no connection errors on the way out.
    let logs = logs.join().unwrap();
    assert!(
        logs.is_empty(),
        "a clean start and stop logs no warning: {logs:#?}"
    );
}

#[test]
fn up_refuses_a_misspelt_setting_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = common::refused(
        common::corebank(&["up"])
            .current_dir(dir.path())
            .env("COREBANK_LISTEN_ADRESS", "127.0.0.1:0"),
    );
    assert!(
        stderr.contains("COREBANK_LISTEN_ADRESS is not a corebank setting"),
        "{stderr}"
    );
    assert!(
        !dir.path().join(".corebank").exists(),
        "nothing is started before settings are valid"
    );
}

#[test]
fn migrate_without_a_database_url_says_how_to_set_one() {
    let stderr = common::refused(common::corebank(&["migrate"]).env_remove("DATABASE_URL"));
    assert!(stderr.contains("DATABASE_URL is not set"), "{stderr}");
}

/// `corebank migrate-accounts` (a dry run, then a canary proposed by the operator, approved
/// by the approver over the admin API, and followed to its end) and `corebank reconcile`.
fn migrate_a_canary_and_reconcile(
    dir: &std::path::Path,
    base_url: &str,
    operator: &str,
    approver: &str,
) {
    let corebank = |args: &[&str]| {
        let mut command = common::corebank(args);
        command
            .args(["--gateway", base_url])
            .current_dir(dir)
            .env("COREBANK_TOKEN", operator)
            .env_remove("DATABASE_URL");
        command
    };
    let plan = common::succeeded(&mut corebank(&[
        "migrate-accounts",
        "--product",
        "LEGACY-CURRENT",
        "--dry-run",
    ]));
    assert!(
        plan.contains("dry run (nothing moved): 51 accounts of LEGACY-CURRENT"),
        "{plan}"
    );

    let mut migrating = corebank(&[
        "migrate-accounts",
        "--product",
        "LEGACY-CURRENT",
        "--fraction",
        "0.2",
        "--reason",
        "canary",
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = migrating.stderr.take().unwrap();
    let (said, heard) = mpsc::channel::<String>();
    // Lines end in `\n`, and the progress bar redraws itself after `\r`.
    std::thread::spawn(move || {
        let mut line = Vec::new();
        for byte in std::io::Read::bytes(BufReader::new(stderr)).map_while(Result::ok) {
            if byte == b'\n' || byte == b'\r' {
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                if said.send(text).is_err() {
                    return;
                }
            } else {
                line.push(byte);
            }
        }
    });
    let mut said_so_far = Vec::new();
    let approval = loop {
        let line = heard
            .recv_timeout(READY_TIMEOUT)
            .unwrap_or_else(|_| panic!("no proposal announced: {said_so_far:?}"));
        said_so_far.push(line.clone());
        if let Some(rest) = line.strip_prefix("proposed migration ") {
            let approval = rest.split(" as ").nth(1).unwrap();
            break approval.split(';').next().unwrap().trim().to_owned();
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let approved = reqwest::Client::new()
            .post(format!("{base_url}/admin/v1/approvals/{approval}/approve"))
            .bearer_auth(approver)
            .json(&serde_json::json!({ "reason": "the canary as agreed" }))
            .send()
            .await
            .unwrap();
        let status = approved.status();
        assert_eq!(status, 200, "{}", approved.text().await.unwrap());
    });
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    let finished = loop {
        if let Some(status) = migrating.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the canary did not finish in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut outcome = String::new();
    std::io::Read::read_to_string(&mut migrating.stdout.take().unwrap(), &mut outcome).unwrap();
    let progress: Vec<String> = heard.try_iter().collect();
    assert!(finished.success(), "{outcome}{progress:?}");
    assert!(outcome.contains("0 failed"), "{outcome}");
    assert!(
        !outcome.contains(" 0 moved"),
        "a fifth of 51 accounts moved: {outcome}"
    );
    assert!(
        progress.iter().any(|line| line.contains("accounts")),
        "progress is shown: {progress:?}"
    );

    let report = common::succeeded(&mut corebank(&[
        "reconcile",
        "--reason",
        "after the canary",
    ]));
    assert!(
        report.contains("ok    migration_clearing_nets_suspense EUR"),
        "{report}"
    );
    assert!(report.contains("0 breaks"), "{report}");
}
