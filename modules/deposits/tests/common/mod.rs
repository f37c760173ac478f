//! A real ledger and the deposits module on one test database, with one test clock.
#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_deposits::app::{Deposits, NewProduct};
use corebank_deposits::grpc::DepositsService;
use corebank_kernel::{Clock, TestClock};
use corebank_ledger::LedgerConfig;
use corebank_service::Component;
use corebank_service::internal::{Allow, allowed_callers};
use corebank_testkit::{TestApp, TestDatabase};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct Harness {
    pub database: TestDatabase,
    pub clock: Arc<TestClock>,
    pub deposits: Deposits,
    pub ledger_app: TestApp,
    pub deposits_app: TestApp,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0)
        .single()
        .expect("a valid date")
}

pub async fn start() -> Harness {
    start_at(at(2026, 1, 1)).await
}

pub async fn start_at(now: DateTime<Utc>) -> Harness {
    let database = TestDatabase::create().await;
    let clock = Arc::new(TestClock::new(now));
    let shared_clock: Arc<dyn Clock> = clock.clone();
    let shutdown = CancellationToken::new();
    let ledger_component = corebank_ledger::grpc::component(
        database.db_for("ledger"),
        Arc::clone(&shared_clock),
        LedgerConfig::default(),
        shutdown.clone(),
    );
    let ledger_app = TestApp::spawn(ledger_component).await;
    // Deposits calls the ledger as itself, as it does in production.
    let channel = ledger_app.channel("deposits", "ledger");
    let deposits = Deposits::new(
        database.db_for("deposits"),
        LedgerClient::new(channel),
        Arc::clone(&shared_clock),
    )
    .unwrap();
    let deposits_app = TestApp::spawn(
        Component::new("deposits")
            .with_db(database.db_for("deposits"))
            .with_grpc(
                corebank_api::deposits::v1::deposits_server::DepositsServer::new(
                    DepositsService::new(deposits.clone()),
                ),
                Allow::only(allowed_callers::DEPOSITS),
            ),
    )
    .await;
    Harness {
        database,
        clock,
        deposits,
        ledger_app,
        deposits_app,
        shutdown,
    }
}

impl Harness {
    pub async fn client(&self) -> DepositsClient<Channel> {
        // Channels reach deposits through the gateway: the tests call as the gateway.
        DepositsClient::new(self.deposits_app.channel("gateway", "deposits"))
    }
}

pub fn id() -> String {
    Uuid::new_v4().to_string()
}

/// A product with sensible defaults; `tweak` changes what a test needs.
pub fn product(code: &str, tweak: impl FnOnce(&mut NewProduct)) -> NewProduct {
    let mut new = NewProduct {
        code: code.to_owned(),
        name: format!("Product {code}"),
        kind: "current".to_owned(),
        currency: "EUR".to_owned(),
        rate_tiers: vec![("0".to_owned(), "0.0365".to_owned())],
        day_count: "act_365_fixed".to_owned(),
        posting_frequency: "monthly".to_owned(),
        minimum_balance: String::new(),
        overdraft_limit: String::new(),
        overdraft_rate: "0".to_owned(),
        dormancy_days: 0,
        per_transfer_limit: String::new(),
        daily_transfer_limit: String::new(),
    };
    tweak(&mut new);
    new
}
