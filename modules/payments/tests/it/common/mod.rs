//! A real ledger, deposits module, payments module and rail simulator on one test database,
//! each on its own internal listener with mutual TLS: payments calls deposits and the rail
//! as `payments`, the rail simulator calls the bank as `rail`, and both sign every message
//! with the same rail keys.
#![allow(dead_code, reason = "each test file uses part of the harness")]

pub mod sample_lists;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_deposits::app::{Deposits, NewProduct};
use corebank_deposits::grpc::component_of;
use corebank_kernel::{Clock, SystemClock};
use corebank_ledger::LedgerConfig;
use corebank_payments::app::outbound::{NewPayment, PaymentView, SagaOptions};
use corebank_payments::app::{Payments, PaymentsConfig, RAIL_CALL_TIMEOUT};
use corebank_payments::rail_signature::{self, Exchange, RailKeys};
use corebank_payments::rail_sim::RailConfig;
use corebank_service::internal::{Allow, allowed_callers, component_names};
use corebank_service::{BoundListeners, Component, InternalMode, RunningServer, ServeOptions};
use corebank_testkit::{TestApp, TestDatabase, test_pki};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

pub struct Harness {
    pub database: TestDatabase,
    pub deposits: Deposits,
    pub payments: Payments,
    /// The keys the bank and the rail simulator share.
    pub rail_keys: RailKeys,
    /// `https://<payments' internal listener>`: gRPC and the rail's callbacks.
    pub payments_url: String,
    rail_app: TestApp,
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

/// What the rail simulator reports after originating an inbound payment.
#[derive(Debug, serde::Deserialize)]
pub struct Originated {
    pub uetr: Uuid,
    pub bank_status: u16,
    pub bank_answer: String,
}

pub struct Setup {
    pub rail: RailConfig,
    pub saga: SagaOptions,
    pub status_wait: Duration,
    pub spawn_executor: bool,
    pub screening: corebank_payments::domain::screening::ScreeningRules,
    /// The sanctions lists screened against (none by default).
    pub sanctions: corebank_payments::app::sanctions::SanctionsList,
}

/// A rail that decides within 5 to 20 ms, with these weights of accepted, rejected and
/// silent outcomes.
pub fn quick_rail(accept: u32, reject: u32, silent: u32) -> RailConfig {
    RailConfig {
        accept,
        reject,
        silent,
        delay_ms: (5, 20),
        ..RailConfig::default()
    }
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            rail: quick_rail(100, 0, 0),
            saga: SagaOptions::default(),
            status_wait: Duration::from_secs(5),
            spawn_executor: true,
            screening: corebank_payments::domain::screening::ScreeningRules::default(),
            sanctions: corebank_payments::app::sanctions::SanctionsList::default(),
        }
    }
}

/// A harness whose saga executor is not running: a payment waits before its first step
/// until the test calls [`Harness::spawn_executor`].
pub async fn start_without_executor() -> Harness {
    start(Setup {
        spawn_executor: false,
        ..Setup::default()
    })
    .await
}

/// Sends `request` and reads its JSON answer.
async fn json_answer<T: serde::de::DeserializeOwned>(request: reqwest::RequestBuilder) -> T {
    request.send().await.unwrap().json().await.unwrap()
}

/// A server presenting only `component`'s certificate: a client that dials an IP address
/// sends no server name, and must still meet the component it means.
fn serving_as(component: &str) -> InternalMode {
    InternalMode::MutualTls(test_pki().only(&[component]).unwrap())
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
    let ledger = LedgerClient::new(ledger_app.channel("deposits", "ledger"));
    let deposits = Deposits::new(database.db_for("deposits"), ledger, clock).unwrap();
    let deposits_app = TestApp::spawn(component_of(deposits.clone())).await;
    let deposits_client = DepositsClient::new(deposits_app.channel("payments", "deposits"));
    let rail_keys = RailKeys::generate("test-1").unwrap();

    // Payments' listener is bound first, so that the rail simulator knows where the bank is.
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = BoundListeners::bind_internal(loopback, "payments test listener")
        .await
        .unwrap();
    let payments_url = format!("https://{}", listeners.internal_addr().unwrap());
    let rail_app = TestApp::spawn_with(
        corebank_payments::rail_sim::component(
            RailConfig {
                bank_url: format!("{payments_url}{}", corebank_payments::http::BASE),
                ..setup.rail
            },
            rail_keys.clone(),
            corebank_testkit::clients(component_names::RAIL)
                .http_client(component_names::PAYMENTS, Duration::from_secs(5))
                .unwrap(),
        ),
        serving_as(component_names::RAIL),
    )
    .await;
    let rail_http = corebank_testkit::clients(component_names::PAYMENTS)
        .http_client(component_names::RAIL, RAIL_CALL_TIMEOUT)
        .unwrap();
    let config = PaymentsConfig {
        status_wait: setup.status_wait,
        screening: setup.screening.clone(),
        sanctions: Arc::new(setup.sanctions.clone()),
        executor: corebank_saga::ExecutorConfig {
            poll_interval: Duration::from_millis(20),
            ..corebank_saga::ExecutorConfig::new()
        },
        ..PaymentsConfig::new(
            rail_app.internal_url(corebank_payments::rail_sim::BASE),
            rail_keys.clone(),
            rail_http,
        )
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
    let component = Component::new("payments")
        .with_db(database.db_for("payments"))
        .with_internal_routes(
            corebank_payments::http::BASE,
            corebank_payments::http::router(payments.clone()),
            Allow::only(allowed_callers::RAIL_CALLBACKS),
        )
        .with_grpc(
            corebank_api::payments::v1::payments_server::PaymentsServer::new(
                corebank_payments::grpc::PaymentsService::new(payments.clone()),
            ),
            Allow::only(allowed_callers::PAYMENTS),
        )
        .with_grpc(
            corebank_api::payments::v1::payments_review_server::PaymentsReviewServer::new(
                corebank_payments::grpc::ReviewService::new(payments.clone()),
            ),
            Allow::only(allowed_callers::PAYMENTS_REVIEW),
        );
    let server = corebank_service::serve_on(
        listeners,
        component,
        ServeOptions {
            requests_in_flight_max: 256,
            shutdown_grace: Duration::from_secs(2),
            metrics_public: false,
            internal: serving_as(component_names::PAYMENTS),
        },
        shutdown.clone(),
    )
    .await
    .unwrap();
    Harness {
        database,
        deposits,
        payments,
        rail_keys,
        payments_url,
        rail_app,
        _ledger_app: ledger_app,
        _deposits_app: deposits_app,
        server: Some(server),
        shutdown,
    }
}

#[allow(unused_imports, reason = "each test file uses part of the harness")]
pub use corebank_service::contract::error_code;

/// Asserts that the payment's reason names `part`.
pub fn assert_reason(view: &PaymentView, part: &str) {
    assert!(view.reason.contains(part), "{}", view.reason);
}

/// Whether the payment's hold was released by its saga's compensation.
pub fn hold_released(view: &PaymentView) -> bool {
    view.steps
        .iter()
        .any(|s| s.step == "hold" && s.direction == "undo" && s.outcome == "done")
}

pub fn id() -> String {
    Uuid::new_v4().to_string()
}

/// A bank's answer to a delivery: HTTP status and body.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl Answer {
    /// The `code` of a JSON refusal.
    pub fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Harness {
    /// A current account funded with `amount`.
    pub async fn account(&self, amount: &str) -> String {
        let code = format!("pay-{}", &Uuid::new_v4().simple().to_string()[..8]);
        self.deposits
            .create_product(NewProduct {
                overdraft_rate: "0".to_owned(),
                ..NewProduct::current(&code, "Payments test")
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
                .movement("deposit", "cash", &id(), &account, amount, "EUR", "")
                .await
                .unwrap();
        }
        account
    }

    /// Asserts (posted, held, available) of a deposit account.
    pub async fn assert_balances(&self, account: &str, expected: (&str, &str, &str)) {
        let (posted, held, available) = self.balances(account).await;
        assert_eq!(
            (posted.as_str(), held.as_str(), available.as_str()),
            expected,
            "balances of {account} (posted, held, available)"
        );
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

    /// Starts the usual payment of `amount` from `debtor` ([`Harness::payment`]).
    pub async fn pay(&self, debtor: &str, amount: &str) -> PaymentView {
        self.payments
            .initiate(self.payment(debtor, amount))
            .await
            .unwrap()
    }

    /// Starts the usual payment of `amount` from `debtor`, to `creditor_account` instead.
    pub async fn pay_to(&self, debtor: &str, amount: &str, creditor_account: &str) -> PaymentView {
        let payment = NewPayment {
            creditor_account: creditor_account.to_owned(),
            ..self.payment(debtor, amount)
        };
        self.payments.initiate(payment).await.unwrap()
    }

    /// Waits until the payment reaches a final status.
    pub async fn settled(&self, payment_id: Uuid) -> PaymentView {
        self.until(
            payment_id,
            &["settled", "rejected", "failed", "cancelled", "attention"],
        )
        .await
    }

    /// Waits until the payment reaches one of `statuses`.
    pub async fn until(&self, payment_id: Uuid, statuses: &[&str]) -> PaymentView {
        let started = Instant::now();
        loop {
            let view = self.payments.payment(payment_id).await.unwrap();
            if statuses.contains(&view.status.as_str()) {
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

    /// A gRPC channel to payments, calling as the gateway (the only component that may).
    pub fn payments_channel(&self) -> Channel {
        self.channel_as(component_names::GATEWAY)
    }

    /// A gRPC channel to payments, calling with `me`'s certificate.
    pub fn channel_as(&self, me: &str) -> Channel {
        corebank_testkit::clients(me)
            .endpoint(&self.payments_url, component_names::PAYMENTS)
            .unwrap()
            .connect_lazy()
    }

    /// `https://<payments>/payments/rail/v1<suffix>`: where the rail delivers.
    pub fn bank_url(&self, suffix: &str) -> String {
        format!(
            "{}{}{suffix}",
            self.payments_url,
            corebank_payments::http::BASE
        )
    }

    /// `https://<rail simulator>/rail-sim/v1<suffix>`.
    pub fn rail_url(&self, suffix: &str) -> String {
        self.rail_app
            .internal_url(&format!("{}{suffix}", corebank_payments::rail_sim::BASE))
    }

    /// An HTTP client calling the bank as `me` (the rail, or a component with no business
    /// there).
    pub fn client_to_bank(&self, me: &str) -> reqwest::Client {
        corebank_testkit::clients(me)
            .http_client(component_names::PAYMENTS, Duration::from_secs(30))
            .unwrap()
    }

    /// An HTTP client of the rail's operators, for the simulator's controls.
    pub fn rail_operator(&self) -> reqwest::Client {
        corebank_testkit::clients(component_names::RAIL)
            .http_client(component_names::RAIL, Duration::from_secs(30))
            .unwrap()
    }

    /// The returns (pacs.004 messages) the rail simulator has received, as its operators
    /// read them.
    pub async fn rail_returns(&self) -> Vec<String> {
        json_answer(self.rail_operator().get(self.rail_url("/returns"))).await
    }

    /// The rail simulator originates an inbound credit transfer in EUR to `creditor_account`
    /// (again under `uetr` when given), driven by the rail's operators, and reports what the
    /// bank answered.
    pub async fn originate_inbound(
        &self,
        creditor_account: &str,
        debtor_name: &str,
        amount: &str,
        uetr: Option<Uuid>,
    ) -> Originated {
        let inbound = serde_json::json!({
            "creditor_account": creditor_account,
            "amount": amount,
            "currency": "EUR",
            "debtor_name": debtor_name,
            "uetr": uetr,
        });
        json_answer(
            self.rail_operator()
                .post(self.rail_url("/inbound"))
                .json(&inbound),
        )
        .await
    }

    /// The header signing `body` for `POST /payments/rail/v1<suffix>` with `keys`, as a new
    /// delivery.
    pub fn signature(&self, keys: &RailKeys, suffix: &str, body: &str) -> String {
        let url = self.bank_url(suffix);
        let path = url.split_once("//").unwrap().1;
        let path = &path[path.find('/').unwrap()..];
        keys.sign(
            Exchange::Request {
                method: "POST",
                path,
            },
            body.as_bytes(),
        )
    }

    /// Posts `body` to the bank's `suffix` as `me`, with `signature` (if any).
    pub async fn post_to_bank(
        &self,
        me: &str,
        suffix: &str,
        signature: Option<&str>,
        body: &str,
    ) -> Answer {
        let mut request = self
            .client_to_bank(me)
            .post(self.bank_url(suffix))
            .header("content-type", "application/xml")
            .body(body.to_owned());
        if let Some(signature) = signature {
            request = request.header(rail_signature::HEADER, signature);
        }
        let response = request.send().await.unwrap();
        Answer {
            status: response.status().as_u16(),
            body: response.text().await.unwrap(),
        }
    }

    /// Delivers `body` to the bank's `suffix` as the rail does: signed with the shared keys,
    /// from the rail's certificate.
    pub async fn deliver(&self, suffix: &str, body: &str) -> Answer {
        let signature = self.signature(&self.rail_keys, suffix, body);
        self.post_to_bank(component_names::RAIL, suffix, Some(&signature), body)
            .await
    }

    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.stopped().await;
        }
    }
}
