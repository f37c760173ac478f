//! A real ledger, deposits module, payments module and rail simulator on one test database.
#![allow(dead_code, reason = "each test file uses part of the harness")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_deposits::app::{Deposits, NewProduct};
use corebank_deposits::grpc::DepositsService;
use corebank_kernel::{Clock, SystemClock};
use corebank_ledger::LedgerConfig;
use corebank_payments::app::outbound::{NewPayment, PaymentView, SagaOptions};
use corebank_payments::app::{Payments, PaymentsConfig};
use corebank_payments::rail_sim::RailConfig;
use corebank_service::{Component, RunningServer, ServeOptions};
use corebank_testkit::{TestApp, TestDatabase};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct Harness {
    pub database: TestDatabase,
    pub deposits: Deposits,
    pub payments: Payments,
    pub url: String,
    _ledger_app: TestApp,
    _deposits_app: TestApp,
    server: Option<RunningServer>,
    shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub struct Setup {
    pub rail: RailConfig,
    pub saga: SagaOptions,
    pub status_wait: Duration,
    pub spawn_executor: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            rail: RailConfig {
                accept: 100,
                reject: 0,
                silent: 0,
                delay_ms: (5, 20),
                ..RailConfig::default()
            },
            saga: SagaOptions::default(),
            status_wait: Duration::from_secs(5),
            spawn_executor: true,
        }
    }
}

pub async fn start(setup: Setup) -> Harness {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ledger_app = TestApp::spawn(corebank_ledger::grpc::component(
        database.db_for("ledger"),
        Arc::clone(&clock),
        LedgerConfig::default(),
        shutdown.clone(),
    ))
    .await;
    let ledger = LedgerClient::new(
        Channel::from_shared(ledger_app.url(""))
            .unwrap()
            .connect_lazy(),
    );
    let deposits = Deposits::new(database.db_for("deposits"), ledger, clock).unwrap();
    let deposits_app = TestApp::spawn(
        Component::new("deposits")
            .with_db(database.db_for("deposits"))
            .with_grpc(
                corebank_api::deposits::v1::deposits_server::DepositsServer::new(
                    DepositsService::new(deposits.clone()),
                ),
            ),
    )
    .await;
    let deposits_client = DepositsClient::new(
        Channel::from_shared(deposits_app.url(""))
            .unwrap()
            .connect_lazy(),
    );
    // Payments and the rail simulator on one server, each calling the other by its URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let config = PaymentsConfig {
        rail_url: format!("{url}{}", corebank_payments::rail_sim::BASE),
        status_wait: setup.status_wait,
        executor: corebank_saga::ExecutorConfig {
            poll_interval: Duration::from_millis(20),
            ..corebank_saga::ExecutorConfig::new()
        },
        ..PaymentsConfig::default()
    };
    let payments = Payments::new(
        database.db_for("payments"),
        deposits_client,
        config,
        setup.saga,
    )
    .unwrap();
    if setup.spawn_executor {
        payments.spawn(shutdown.clone());
    }
    let rail = RailConfig {
        bank_url: format!("{url}{}", corebank_payments::http::BASE),
        ..setup.rail
    };
    let component = Component::new("payments")
        .with_db(database.db_for("payments"))
        .with_routes(corebank_payments::http::router(payments.clone()))
        .with_routes(corebank_payments::rail_sim::router(rail))
        .with_grpc(
            corebank_api::payments::v1::payments_server::PaymentsServer::new(
                corebank_payments::grpc::PaymentsService::new(payments.clone()),
            ),
        );
    let server = corebank_service::serve_on(
        listener,
        component,
        ServeOptions {
            requests_in_flight_max: 256,
            shutdown_grace: Duration::from_secs(2),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    Harness {
        database,
        deposits,
        payments,
        url,
        _ledger_app: ledger_app,
        _deposits_app: deposits_app,
        server: Some(server),
        shutdown,
    }
}

pub fn id() -> String {
    Uuid::new_v4().to_string()
}

impl Harness {
    /// A current account funded with `amount`.
    pub async fn account(&self, amount: &str) -> String {
        let code = format!("pay-{}", &Uuid::new_v4().simple().to_string()[..8]);
        self.deposits
            .create_product(NewProduct {
                code: code.clone(),
                name: "Payments test".to_owned(),
                kind: "current".to_owned(),
                currency: "EUR".to_owned(),
                rate_tiers: vec![],
                day_count: "act_365_fixed".to_owned(),
                posting_frequency: "monthly".to_owned(),
                minimum_balance: String::new(),
                overdraft_limit: String::new(),
                overdraft_rate: "0".to_owned(),
                dormancy_days: 0,
                per_transfer_limit: String::new(),
                daily_transfer_limit: String::new(),
            })
            .await
            .unwrap();
        let account = self
            .deposits
            .open_account(&id(), "customer-p", &code, None)
            .await
            .unwrap()
            .id
            .to_string();
        if amount != "0" {
            self.deposits
                .cash("deposit", &id(), &account, amount, "EUR", "")
                .await
                .unwrap();
        }
        account
    }

    /// (posted, held, available) of a deposit account.
    pub async fn balances(&self, account: &str) -> (String, String, String) {
        let b = self
            .deposits
            .account_by_text(account)
            .await
            .unwrap()
            .balances;
        (b.posted, b.held, b.available)
    }

    pub fn payment(&self, debtor: &str, amount: &str) -> NewPayment {
        NewPayment {
            request_id: id(),
            debtor_account_id: debtor.to_owned(),
            creditor_name: "Erika Mustermann".to_owned(),
            creditor_account: "DE44500105175407324931".to_owned(),
            creditor_agent_bic: "INGDDEFFXXX".to_owned(),
            amount: amount.to_owned(),
            currency: "EUR".to_owned(),
            end_to_end_id: "INV-2026-0042".to_owned(),
            remittance_information: "Invoice 2026-0042".to_owned(),
        }
    }

    /// Waits until the payment reaches a final status.
    pub async fn settled(&self, payment_id: Uuid) -> PaymentView {
        let started = Instant::now();
        loop {
            let view = self.payments.payment(payment_id).await.unwrap();
            if ["settled", "rejected", "failed", "cancelled", "attention"]
                .contains(&view.status.as_str())
            {
                return view;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "payment {payment_id} still {} after 20 s: {:?}",
                view.status,
                view.steps
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Starts the saga executor (for a harness set up without it).
    pub fn spawn_executor(&self) {
        self.payments.spawn(self.shutdown.clone());
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.stopped().await;
        }
    }
}
