//! Crash test of the account migration: the migration component runs as its own process
//! (`corebank serve migration`) and the mock legacy core as another (`serve legacy-core`);
//! both are killed with SIGKILL at random moments while a product's accounts move, and
//! started again. Every account must end moved exactly once: its modern balance and holds
//! equal to what it had, and both books' clearing accounts holding exactly what moved.

use crate::common;
use crate::legacy_crash::Core;

use std::time::{Duration, Instant};

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::migration::v1 as mpb;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use corebank_service::InternalMode;
use corebank_service::internal::component_names::{
    self, DEPOSITS, GATEWAY, LEGACY_ADAPTER, MIGRATION,
};
use corebank_service::internal::{InternalClients, Pki};
use corebank_testkit::{TestApp, TestDatabase};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const PRODUCT: &str = "CRASH-1";
const ACCOUNTS: i64 = 12;
const KILLS: usize = 4;
const SETTLE_TIMEOUT: Duration = Duration::from_secs(180);

fn product() -> dpb::CreateProductRequest {
    dpb::CreateProductRequest {
        code: PRODUCT.to_owned(),
        name: PRODUCT.to_owned(),
        kind: "current".to_owned(),
        currency: "EUR".to_owned(),
        day_count: "act_365_fixed".to_owned(),
        posting_frequency: "monthly".to_owned(),
        overdraft_rate: "0".to_owned(),
        // Blank: no rate tiers, minimum balance, overdraft, dormancy or transfer limits.
        ..dpb::CreateProductRequest::default()
    }
}

/// The migration, as a process of its own calling the parts at these URLs.
fn migration_process(url: &str, addr: std::net::SocketAddr, peers: [String; 3]) -> common::Process {
    let [gateway, adapter, deposits] = peers;
    let mut command = common::serve("migration", url);
    command
        .env("COREBANK_INTERNAL_ADDR", addr.to_string())
        .env("COREBANK_MIGRATION_GATEWAY_URL", gateway)
        .env("COREBANK_MIGRATION_LEGACY_URL", adapter)
        .env("COREBANK_DEPOSITS_URL", deposits)
        .env("COREBANK_SAGA_LEASE_MS", "1000")
        .env("COREBANK_SAGA_POLL_MS", "50")
        .env("COREBANK_DB_POOL_SIZE_MAX", "8");
    common::Process::start("the migration", command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_killed_again_and_again_moves_every_account_exactly_once() {
    let database = TestDatabase::create().await;
    let url = database.url().to_owned();
    // The in-process parts trust the same development CA as the processes.
    let pki = Pki::load_dir(
        common::certs_dir(),
        "corebank.internal",
        component_names::ALL,
    )
    .unwrap();
    let mode = InternalMode::MutualTls(pki.clone());
    let clients = |me: &str| InternalClients::mutual_tls(pki.clone(), me).unwrap();
    let shutdown = CancellationToken::new();
    let home = tempfile::tempdir().unwrap();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    settings.dev = true;
    settings.home = home.path().to_path_buf();
    settings.gateway_route_poll_ms = 100;

    // A slow core, so that the kills land while accounts are moving.
    let mut core = Core::with_faults(&url, common::free_addr(), "latency_ms=20-60");
    core.process.spawn();
    core.ready().await;
    // Every in-process part serves under the processes' mutual TLS.
    let spawn = |component| TestApp::spawn_with(component, mode.clone());
    let ledger =
        spawn(corebank_components::ledger(&settings, &url, shutdown.clone()).unwrap()).await;
    let deposits = spawn(
        corebank_components::deposits(
            &settings,
            &url,
            &ledger.internal_url(""),
            &mode,
            shutdown.clone(),
        )
        .unwrap(),
    )
    .await;
    let adapter = spawn(
        corebank_components::legacy_adapter(&settings, &url, core.addr)
            .await
            .unwrap(),
    )
    .await;
    let gateway = spawn(
        corebank_components::gateway(
            &settings,
            &url,
            &corebank_gateway::app::Upstream {
                legacy_url: adapter.internal_url(""),
                modern_url: deposits.internal_url(""),
                clients: clients(GATEWAY),
            },
            shutdown.clone(),
        )
        .await
        .unwrap(),
    )
    .await;
    let channel = |app: &TestApp, me: &str, server: &str| {
        clients(me)
            .endpoint(&app.internal_url(""), server)
            .unwrap()
            .connect_lazy()
    };
    let mut legacy = DepositsClient::new(channel(&adapter, GATEWAY, LEGACY_ADAPTER));
    let mut modern = DepositsClient::new(channel(&deposits, GATEWAY, DEPOSITS));
    legacy.create_product(product()).await.unwrap();
    modern.create_product(product()).await.unwrap();
    let mut expected = Decimal::ZERO;
    let mut opened = Vec::new();
    for n in 1..=ACCOUNTS {
        let account = legacy
            .open_account(common::opening(&format!("crash-{n}"), PRODUCT))
            .await
            .unwrap()
            .into_inner();
        let amount = Decimal::new(n * 1_000 + 50, 2);
        legacy
            .deposit(common::cash_deposit(
                &account.id,
                &amount.to_string(),
                "crash test",
            ))
            .await
            .unwrap();
        legacy
            .place_hold(dpb::PlaceHoldRequest {
                request_id: Uuid::new_v4().to_string(),
                account_id: account.id.clone(),
                amount: "1.00".to_owned(),
                currency: "EUR".to_owned(),
                reason: "card".to_owned(),
                expires_in_seconds: 0,
            })
            .await
            .unwrap();
        expected += amount;
        opened.push((account.id, amount));
    }

    let addr = common::free_addr();
    let mut process = migration_process(
        &url,
        addr,
        [
            gateway.internal_url(""),
            adapter.internal_url(""),
            deposits.internal_url(""),
        ],
    );
    let migrations_channel = clients(GATEWAY)
        .endpoint(&format!("https://{addr}"), MIGRATION)
        .unwrap()
        .connect_lazy();
    let mut migrations = MigrationsClient::new(migrations_channel);
    let id = Uuid::new_v4().to_string();
    let start = mpb::StartMigrationRequest {
        migration_id: id.clone(),
        product_code: PRODUCT.to_owned(),
        fraction: String::new(),
        dry_run: false,
        requested_by: "crash test".to_owned(),
        customer_ids: vec![],
        rate_per_s: 0,
        max_error_ratio: String::new(),
        in_flight_max: 0,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while migrations.start_migration(start.clone()).await.is_err() {
        assert!(Instant::now() < deadline, "the migration did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Kill the migration (and once the legacy core) while accounts move.
    for kill in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(fastrand::u64(150..500))).await;
        if kill == 0 {
            let now = migrations
                .get_migration(mpb::GetMigrationRequest {
                    migration_id: id.clone(),
                })
                .await
                .unwrap()
                .into_inner();
            assert!(
                now.moved < now.planned + now.moving + now.moved,
                "killed mid-way: {now:?}"
            );
            assert_eq!(
                now.status, "running",
                "the first kill lands while accounts move"
            );
        }
        process.crash_and_restart();
        if kill == 1 {
            core.process.crash_and_restart();
            core.ready().await;
        }
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let done = loop {
        if let Ok(now) = migrations
            .get_migration(mpb::GetMigrationRequest {
                migration_id: id.clone(),
            })
            .await
            && now.get_ref().status == "done"
        {
            break now.into_inner();
        }
        assert!(
            Instant::now() < deadline,
            "the migration did not settle in time"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (done.moved, done.failed, done.refused),
        (u64::try_from(ACCOUNTS).unwrap(), 0, 0),
        "{done:?}"
    );
    assert!(process.starts > KILLS, "the migration was restarted");
    let mut reader = DepositsClient::new(channel(&deposits, MIGRATION, DEPOSITS));
    for (account, amount) in &opened {
        let moved = done
            .accounts
            .iter()
            .find(|moved| &moved.account_id == account)
            .unwrap();
        assert_eq!(moved.posted, amount.to_string(), "{moved:?}");
        let balances = reader
            .get_account(dpb::GetAccountRequest {
                account_id: moved.modern_id.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .balances
            .unwrap();
        assert_eq!(
            (balances.posted, balances.held),
            (amount.to_string(), "1.00".to_owned()),
            "{account} moved once, with its hold"
        );
    }
    let run = migrations
        .reconcile(mpb::ReconcileRequest {
            run_id: Uuid::new_v4().to_string(),
            requested_by: "crash test".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.breaks, 0, "{run:?}");
    let clearing = run
        .results
        .iter()
        .find(|r| r.rule == "migration_clearing_nets_suspense")
        .unwrap();
    assert_eq!(clearing.expected, expected.to_string(), "{run:?}");
    shutdown.cancel();
}
