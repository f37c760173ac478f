//! A real ledger and the deposits module on one test database, with one test clock.
#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::tokio_postgres::types::{FromSql, ToSql};
use corebank_deposits::app::{
    AccountView, Deposits, HoldView, MovementView, NewProduct, TransferView,
};
use corebank_deposits::domain::error::DepositsError;
use corebank_deposits::grpc::component_of;
use corebank_kernel::{Clock, TestClock};
use corebank_ledger::LedgerConfig;
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
    let deposits_app = TestApp::spawn(component_of(deposits.clone())).await;
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

    /// Cash of `kind` in EUR under a fresh request id.
    async fn cash_eur(
        &self,
        kind: &'static str,
        account: &str,
        amount: &str,
    ) -> Result<MovementView, DepositsError> {
        self.deposits
            .movement(kind, "cash", &id(), account, amount, "EUR", "")
            .await
    }

    /// Cash of `kind` in EUR under a fresh request id, which must be done.
    pub async fn cash_done(&self, kind: &'static str, account: &str, amount: &str) -> MovementView {
        self.cash_eur(kind, account, amount).await.unwrap()
    }

    /// Cash of `kind` in EUR under a fresh request id, which must be refused.
    pub async fn cash_refused(
        &self,
        kind: &'static str,
        account: &str,
        amount: &str,
    ) -> DepositsError {
        self.cash_eur(kind, account, amount).await.unwrap_err()
    }

    /// A new product (or version) `code`, with the defaults of `product` and `tweak`.
    pub async fn create_product(&self, code: &str, tweak: impl FnOnce(&mut NewProduct)) {
        self.deposits
            .create_product(product(code, tweak))
            .await
            .unwrap();
    }

    /// The id of a new account of `customer` in product `code`, opened under a fresh
    /// request id.
    pub async fn open_account(&self, customer: &str, code: &str) -> String {
        self.deposits
            .open_account(&id(), customer, code, None)
            .await
            .unwrap()
            .id
            .to_string()
    }

    /// A new account of "customer-1" in product `code`, with `amount` deposited unless it
    /// is "0".
    pub async fn open_funded(&self, code: &str, amount: &str) -> String {
        let account_id = self.open_account("customer-1", code).await;
        if amount != "0" {
            self.cash_done("deposit", &account_id, amount).await;
        }
        account_id
    }

    /// The posted balance of `account`.
    pub async fn posted(&self, account: &str) -> String {
        let view = self.deposits.account_by_text(account).await.unwrap();
        view.balances.posted
    }

    /// A status change under a fresh request id.
    pub async fn change_status(
        &self,
        action: &'static str,
        account: &str,
        reason: &str,
    ) -> Result<AccountView, DepositsError> {
        self.deposits
            .change_status(action, &id(), account, reason)
            .await
    }

    /// The account closed at the customer's request, which must be done.
    pub async fn close(&self, account: &str) -> AccountView {
        self.change_status("close", account, "customer request")
            .await
            .unwrap()
    }

    /// A transfer in EUR without a description, under a fresh request id.
    pub async fn transfer_eur(
        &self,
        from: &str,
        to: &str,
        amount: &str,
    ) -> Result<TransferView, DepositsError> {
        self.deposits
            .transfer(&id(), from, to, amount, "EUR", "")
            .await
    }

    /// The release of a hold under a fresh request id.
    pub async fn release_hold(&self, hold: &str) -> Result<HoldView, DepositsError> {
        self.deposits.release_hold(&id(), hold).await
    }

    /// The first column of the one row `sql` answers in the deposits schema.
    pub async fn deposits_value<T: for<'a> FromSql<'a>>(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> T {
        let client = self.database.db_for("deposits").client().await.unwrap();
        client.query_one(sql, params).await.unwrap().get(0)
    }

    /// Runs one statement in the deposits schema.
    pub async fn deposits_execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) {
        let client = self.database.db_for("deposits").client().await.unwrap();
        client.execute(sql, params).await.unwrap();
    }
}

pub fn id() -> String {
    Uuid::new_v4().to_string()
}

/// A product with sensible defaults; `tweak` changes what a test needs.
pub fn product(code: &str, tweak: impl FnOnce(&mut NewProduct)) -> NewProduct {
    let mut new = NewProduct {
        rate_tiers: vec![("0".to_owned(), "0.0365".to_owned())],
        overdraft_rate: "0".to_owned(),
        ..NewProduct::current(code, &format!("Product {code}"))
    };
    tweak(&mut new);
    new
}
