//! The gateway end to end: HTTP in, through routing to both real sides (the modern modules
//! on a real ledger; the mock legacy core behind its adapter), money in the ledger and in
//! the legacy books.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{Answer, send, spawn_gateway};
use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::deposits::v1::deposits_migration_server::DepositsMigrationServer;
use corebank_api::deposits::v1::deposits_server::DepositsServer;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::tokio_postgres::Row;
use corebank_db::tokio_postgres::types::ToSql;
use corebank_gateway::auth::dev::{self, Role};
use corebank_kernel::{Clock, SystemClock};
use corebank_service::Component;
use corebank_service::internal::component_names::{
    DEPOSITS, GATEWAY, LEDGER, LEGACY_ADAPTER, PAYMENTS, RAIL,
};
use corebank_service::internal::{Allow, allowed_callers};
use corebank_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub(crate) struct Stack {
    pub(crate) database: TestDatabase,
    _ledger: TestApp,
    _deposits_only: TestApp,
    /// Payments and deposits, the modern side.
    pub(crate) modern: TestApp,
    /// The legacy adapter in front of the mock core.
    pub(crate) legacy: TestApp,
    pub(crate) gateway: TestApp,
    /// Gateway replicas kept running behind `gateway` (see `crossings::crossing_stack`).
    pub(crate) spare: Vec<TestApp>,
    /// What the gateway was started with.
    pub(crate) settings: corebank_service::Settings,
    keys: dev::DevKeys,
    pub(crate) shutdown: CancellationToken,
    pub(crate) http: reqwest::Client,
    /// The mock core's OFS address (its `ADMIN` password is [`CORE_ADMIN_PASSWORD`]).
    legacy_core_addr: std::net::SocketAddr,
}

/// The mock core's `ADMIN` password in these tests, for its faults.
const CORE_ADMIN_PASSWORD: &str = "test-admin";

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A rail key for the payments module; nothing answers at its rail in these tests.
const RAIL_KEYS: &str = "test-1:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

pub(crate) async fn stack() -> Stack {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    // The modern side: ledger, deposits, and payments + deposits on one server.
    let ledger = TestApp::spawn(corebank_ledger::grpc::component(
        database.db_for("ledger"),
        Arc::clone(&clock),
        corebank_ledger::LedgerConfig::default(),
        shutdown.clone(),
    ))
    .await;
    let deposits = corebank_deposits::app::Deposits::new(
        database.db_for("deposits"),
        LedgerClient::new(ledger.channel(DEPOSITS, LEDGER)),
        Arc::clone(&clock),
    )
    .unwrap();
    let deposits_only = TestApp::spawn(
        Component::new("deposits")
            .with_db(database.db_for("deposits"))
            .with_grpc(
                DepositsServer::new(corebank_deposits::grpc::DepositsService::new(
                    deposits.clone(),
                )),
                Allow::only(allowed_callers::DEPOSITS),
            ),
    )
    .await;
    let rail_http = corebank_testkit::clients(PAYMENTS)
        .http_client(RAIL, Duration::from_secs(5))
        .unwrap();
    let (payments, _) = corebank_payments::grpc::component(
        database.db_for("payments"),
        DepositsClient::new(deposits_only.channel(PAYMENTS, DEPOSITS)),
        corebank_payments::app::PaymentsConfig {
            // One listed party, for the screening review through the admin API.
            sanctions: Arc::new(corebank_payments::app::sanctions::SanctionsList::new(
                vec![corebank_payments::domain::sanctions::ListedParty {
                    list: "un_consolidated",
                    id: "6908555".to_owned(),
                    names: vec!["IVAN PETROVICH SIDOROV".to_owned()],
                }],
                corebank_payments::domain::sanctions::matching::Thresholds::default(),
            )),
            ..corebank_payments::app::PaymentsConfig::new(
                "https://127.0.0.1:9/rail-sim/v1",
                corebank_payments::rail_signature::RailKeys::parse("COREBANK_RAIL_KEYS", RAIL_KEYS)
                    .unwrap(),
                rail_http,
            )
        },
        shutdown.clone(),
    )
    .unwrap();
    let modern = TestApp::spawn(
        payments.merge(
            Component::new("deposits")
                .with_grpc(
                    DepositsServer::new(corebank_deposits::grpc::DepositsService::new(
                        deposits.clone(),
                    )),
                    Allow::only(allowed_callers::DEPOSITS),
                )
                .with_grpc(
                    DepositsMigrationServer::new(corebank_deposits::grpc::MigrationService::new(
                        deposits,
                    )),
                    Allow::only(allowed_callers::DEPOSITS_MIGRATION),
                ),
        ),
    )
    .await;
    // The legacy side: the mock core and its adapter.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = listener.local_addr().unwrap();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    settings.legacy_seed_customers = 2;
    settings.legacy_admin_password = CORE_ADMIN_PASSWORD.to_owned();
    corebank_legacy_core::start(
        database.db_for("legacy_core"),
        listener,
        corebank_legacy_core::CoreConfig::from_settings(&settings).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let mut adapter_config = corebank_legacy::adapter::AdapterConfig::from_settings(&settings);
    adapter_config.client.addr = core_addr;
    let legacy = TestApp::spawn(
        corebank_legacy::adapter::component(database.db_for("legacy_adapter"), adapter_config)
            .await
            .unwrap(),
    )
    .await;
    // The gateway, trusting dev keys in a home of its own (development mode), calling both
    // sides' internal listeners with its certificate.
    let keys = common::dev_home(&mut settings, "gateway-test");
    settings.gateway_route_poll_ms = 100;
    let gateway = spawn_gateway(
        &settings,
        &database,
        legacy.internal_url(""),
        modern.internal_url(""),
        &shutdown,
    )
    .await;
    Stack {
        _ledger: ledger,
        _deposits_only: deposits_only,
        modern,
        legacy,
        database,
        gateway,
        spare: Vec::new(),
        settings,
        keys,
        shutdown,
        http: reqwest::Client::new(),
        legacy_core_addr: core_addr,
    }
}

impl Stack {
    /// Sets the mock core's faults (`ADMIN.FAULTS` fields, e.g. `ERROR.RATE=0.1`).
    pub(crate) async fn legacy_faults(&self, fields: &str) {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
        let stream = tokio::net::TcpStream::connect(self.legacy_core_addr)
            .await
            .unwrap();
        let (read, mut write) = stream.into_split();
        write
            .write_all(
                format!("ADMIN.FAULTS,/I/PROCESS,ADMIN/{CORE_ADMIN_PASSWORD},,{fields}\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = String::new();
        tokio::io::BufReader::new(read)
            .read_line(&mut answer)
            .await
            .unwrap();
        assert!(
            answer.contains("/1,"),
            "the core refused the faults: {answer}"
        );
    }

    pub(crate) fn token(&self, role: Role, subject: &str, customer: Option<&str>) -> String {
        common::token(&self.keys, role, subject, customer)
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        send(&self.http, method, self.gateway.url(path), token, key, body).await
    }

    pub(crate) async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        let key = Uuid::new_v4().to_string();
        self.call(
            reqwest::Method::POST,
            path,
            Some(token),
            Some(&key),
            Some(body),
        )
        .await
    }

    /// A deposit of `amount` EUR on `account` through the gateway, under a new key.
    pub(crate) async fn deposit(&self, token: &str, account: &str, amount: &str) -> Answer {
        self.post(
            &format!("/v1/accounts/{account}/deposits"),
            token,
            json!({ "amount": amount, "currency": "EUR" }),
        )
        .await
    }

    /// A new account of `product` for `customer` with `amount` EUR deposited on it.
    pub(crate) async fn funded_account(
        &self,
        token: &str,
        customer: &str,
        product: &str,
        amount: &str,
    ) -> String {
        let opened = self
            .open_account(token, customer, product)
            .await
            .expect(201);
        let id = opened.body["id"].as_str().unwrap().to_owned();
        self.deposit(token, &id, amount).await.expect(201);
        id
    }

    /// An account of a new product `code` kept by legacy and shadowed on modern (accounts,
    /// reads and cash), once its shadow copy exists.
    pub(crate) async fn shadowed_account(&self, token: &str, code: &str, customer: &str) -> String {
        self.product_on_both_sides(code).await;
        self.route(json!([
            shadowed(code, "accounts.write"),
            shadowed(code, "accounts.read"),
            shadowed(code, "cash"),
        ]))
        .await;
        let opened = self.open_account(token, customer, code).await.expect(201);
        assert_eq!(opened.header("x-served-by"), "legacy");
        // The copy is opened by the shadow run, after the answer.
        shadow_summary(self, "accounts.write", 1).await;
        opened.body["id"].as_str().unwrap().to_owned()
    }

    /// The answer to deciding the proposal `approval` (`approve` or `reject`) with `reason`.
    pub(crate) async fn decide(
        &self,
        approval: &str,
        verdict: &str,
        token: &str,
        reason: &str,
    ) -> Answer {
        let path = format!("/admin/v1/approvals/{approval}/{verdict}");
        self.post(&path, token, json!({ "reason": reason })).await
    }

    /// How many of the gateway's audit records `condition` (SQL on `audit_log`, with
    /// `params`) selects.
    pub(crate) async fn audited(&self, condition: &str, params: &[&(dyn ToSql + Sync)]) -> i64 {
        let query = format!("SELECT COUNT(*) FROM audit_log WHERE {condition}");
        self.gateway_row(&query, params).await.get(0)
    }

    /// The account's id on the modern side, as the gateway's directory has it.
    pub(crate) async fn modern_id_of(&self, account: &str) -> Option<Uuid> {
        let query = "SELECT modern_id FROM accounts WHERE account_id = $1";
        let account = Uuid::parse_str(account).unwrap();
        self.gateway_row(query, &[&account]).await.get(0)
    }

    /// The one row `query` (with `params`) selects in the gateway's database.
    async fn gateway_row(&self, query: &str, params: &[&(dyn ToSql + Sync)]) -> Row {
        let client = self.database.db_for("gateway").client().await.unwrap();
        client.query_one(query, params).await.unwrap()
    }

    /// A transfer under the idempotency key `key`.
    pub(crate) async fn transfer_with_key(&self, token: &str, key: &str, body: Value) -> Answer {
        self.call(
            reqwest::Method::POST,
            "/v1/transfers",
            Some(token),
            Some(key),
            Some(body),
        )
        .await
    }

    /// The answer to opening an account of `product` for `customer`.
    pub(crate) async fn open_account(&self, token: &str, customer: &str, product: &str) -> Answer {
        let body = json!({ "customer_id": customer, "product_code": product });
        self.post("/v1/accounts", token, body).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Answer {
        self.call(reqwest::Method::GET, path, Some(token), None, None)
            .await
    }

    /// An account of a new product `code` routed to the modern side (accounts, cash and
    /// payments), for `customer`, with 100.00 EUR on it.
    pub(crate) async fn modern_payer(&self, code: &str, customer: &str) -> String {
        let token = self.token(Role::Channel, "mobile-app", None);
        self.product_on_both_sides(code).await;
        self.route(json!([
            rule(code, "accounts.write", "modern"),
            rule(code, "cash", "modern"),
            rule(code, "payments", "modern"),
        ]))
        .await;
        let opened = self.open_account(&token, customer, code).await;
        let account = opened.body["id"].as_str().unwrap().to_owned();
        self.deposit(&token, &account, "100.00").await.expect(201);
        account
    }

    /// `GET path` until its `status` is `wanted` (5 s at most); the last body.
    async fn until_status(&self, path: &str, token: &str, wanted: &str) -> Value {
        let mut seen = Value::Null;
        for _ in 0..200 {
            seen = self.get(path, token).await.body;
            if seen["status"] == wanted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(seen["status"], wanted, "{path}: {seen}");
        seen
    }

    /// A product on both sides (each keeps its own catalogue).
    pub(crate) async fn product_on_both_sides(&self, code: &str) {
        let sides = [(&self.modern, DEPOSITS), (&self.legacy, LEGACY_ADAPTER)];
        for (app, server) in sides {
            DepositsClient::new(app.channel(GATEWAY, server))
                .create_product(dpb::CreateProductRequest {
                    code: code.to_owned(),
                    name: code.to_owned(),
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
                    validate_only: false,
                })
                .await
                .unwrap();
        }
    }

    /// A route change through four eyes: `operator-a` proposes, `approver-b` approves.
    pub(crate) async fn route(&self, rules: Value) -> i64 {
        let operator = self.token(Role::Operator, "operator-a", None);
        let approver = self.token(Role::Approver, "approver-b", None);
        let proposed = self
            .call(
                reqwest::Method::POST,
                "/admin/v1/routes/proposals",
                Some(&operator),
                None,
                Some(json!({ "rules": rules, "reason": "test" })),
            )
            .await;
        assert_eq!(proposed.status, 201, "{}", proposed.body);
        let id = proposed.body["id"].as_str().unwrap().to_owned();
        let approved = self
            .call(
                reqwest::Method::POST,
                &format!("/admin/v1/routes/proposals/{id}/approve"),
                Some(&approver),
                None,
                Some(json!({})),
            )
            .await;
        assert_eq!(approved.status, 200, "{}", approved.body);
        let active = self.get("/admin/v1/routes", &operator).await;
        active.body["version"].as_i64().unwrap()
    }
}

pub(crate) fn rule(product: &str, operation: &str, side: &str) -> Value {
    json!({ "product": product, "operation": operation, "default_side": side, "shadow": false })
}

#[tokio::test]
async fn requests_flow_from_http_through_both_sides_to_the_ledger_and_the_legacy_books() {
    let stack = stack().await;
    let channel = stack.token(Role::Channel, "mobile-app", None);

    // No rules: the legacy core serves everything.
    let opened = stack
        .open_account(&channel, "cust-1", "LEGACY-CURRENT")
        .await
        .expect(201);
    assert_eq!(opened.header("x-served-by"), "legacy");
    assert_eq!(opened.header("x-route-reason"), "no_rule");
    let legacy_account = opened.body["id"].as_str().unwrap().to_owned();
    let deposit = json!({ "amount": "100.00", "currency": "EUR" });
    let key = Uuid::new_v4().to_string();
    let path = format!("/v1/accounts/{legacy_account}/deposits");
    let first = stack
        .call(
            reqwest::Method::POST,
            &path,
            Some(&channel),
            Some(&key),
            Some(deposit.clone()),
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let again = stack
        .call(
            reqwest::Method::POST,
            &path,
            Some(&channel),
            Some(&key),
            Some(deposit),
        )
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), "true");
    assert_eq!(again.header("x-served-by"), "legacy");
    assert_eq!(
        again.header("x-route-version"),
        first.header("x-route-version")
    );
    assert_eq!(again.body, first.body);
    let other = stack
        .call(
            reqwest::Method::POST,
            &path,
            Some(&channel),
            Some(&key),
            Some(json!({ "amount": "5.00", "currency": "EUR" })),
        )
        .await;
    assert_eq!(other.status, 422);
    assert_eq!(other.body["code"], "idempotency_key_reused");
    let no_key = stack
        .call(
            reqwest::Method::POST,
            &path,
            Some(&channel),
            None,
            Some(json!({ "amount": "5.00", "currency": "EUR" })),
        )
        .await;
    assert_eq!(no_key.status, 400);
    assert_eq!(no_key.body["code"], "idempotency_key_required");
    let balance = stack
        .get(&format!("/v1/accounts/{legacy_account}/balance"), &channel)
        .await;
    assert_eq!(
        balance.body["balances"]["posted"], "100.00",
        "{}",
        balance.body
    );

    // Migration: product GW-CURRENT goes to the modern side, through four eyes.
    stack.product_on_both_sides("GW-CURRENT").await;
    let version = stack
        .route(json!([
            rule("GW-CURRENT", "accounts.write", "modern"),
            rule("GW-CURRENT", "accounts.read", "modern"),
            rule("GW-CURRENT", "cash", "modern"),
            rule("GW-CURRENT", "transfers", "modern"),
        ]))
        .await;
    let mut modern_accounts = Vec::new();
    for _ in 0..2 {
        let opened = stack
            .open_account(&channel, "cust-2", "GW-CURRENT")
            .await
            .expect(201);
        assert_eq!(opened.header("x-served-by"), "modern");
        assert_eq!(opened.header("x-route-version"), version.to_string());
        modern_accounts.push(opened.body["id"].as_str().unwrap().to_owned());
    }
    stack
        .deposit(&channel, &modern_accounts[0], "80.00")
        .await
        .expect(201);
    let moved = stack
        .post(
            "/v1/transfers",
            &channel,
            json!({
                "from_account_id": modern_accounts[0],
                "to_account_id": modern_accounts[1],
                "amount": "30.00",
                "currency": "EUR",
            }),
        )
        .await
        .expect(201);
    assert_eq!(moved.header("x-served-by"), "modern");
    assert_eq!(moved.body["from_posted_after"], "50.00");
    let to = stack
        .get(&format!("/v1/accounts/{}", modern_accounts[1]), &channel)
        .await;
    assert_eq!(to.body["balances"]["posted"], "30.00", "{}", to.body);
    // The legacy account still lives on the legacy side.
    let legacy_read = stack
        .get(&format!("/v1/accounts/{legacy_account}"), &channel)
        .await;
    assert_eq!(legacy_read.header("x-served-by"), "legacy");
    // A transfer between accounts kept by different cores: crossings.rs.
    // A refusal of the module keeps its stable code.
    let overdraw = stack
        .post(
            &format!("/v1/accounts/{legacy_account}/withdrawals"),
            &channel,
            json!({ "amount": "1000.00", "currency": "EUR" }),
        )
        .await;
    assert_eq!(overdraw.status, 422);
    assert_eq!(overdraw.body["code"], "insufficient_funds");
}

#[tokio::test]
async fn a_hundred_concurrent_requests_with_one_key_have_one_effect() {
    let stack = Arc::new(stack().await);
    let channel = stack.token(Role::Channel, "mobile-app", None);
    let opened = stack
        .open_account(&channel, "cust-9", "LEGACY-CURRENT")
        .await;
    let account = opened.body["id"].as_str().unwrap().to_owned();
    let key = Uuid::new_v4().to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let stack = Arc::clone(&stack);
        let (channel, key, account) = (channel.clone(), key.clone(), account.clone());
        tasks.spawn(async move {
            stack
                .call(
                    reqwest::Method::POST,
                    &format!("/v1/accounts/{account}/deposits"),
                    Some(&channel),
                    Some(&key),
                    Some(json!({ "amount": "1.00", "currency": "EUR" })),
                )
                .await
        });
    }
    let mut created = 0;
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        match answer.status {
            201 => created += 1,
            409 => {
                assert_eq!(answer.body["code"], "request_in_flight");
                assert!(!answer.header("retry-after").is_empty());
            }
            other => panic!("unexpected {other}: {}", answer.body),
        }
    }
    assert!(created >= 1);
    let balance = stack
        .get(&format!("/v1/accounts/{account}/balance"), &channel)
        .await;
    assert_eq!(
        balance.body["balances"]["posted"], "1.00",
        "one effect, not {created}"
    );
}

#[tokio::test]
async fn tokens_are_checked_per_surface_and_customer_and_refusals_are_audited() {
    let stack = stack().await;
    let anonymous = stack
        .call(reqwest::Method::GET, "/v1/accounts/x", None, None, None)
        .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.body["code"], "unauthenticated");
    // An operator's token is for the admin surface only.
    let operator = stack.token(Role::Operator, "operator-a", None);
    let wrong_surface = stack
        .get(&format!("/v1/accounts/{}", Uuid::new_v4()), &operator)
        .await;
    assert_eq!(wrong_surface.status, 401);
    // A token bound to one customer cannot touch another's account.
    let channel = stack.token(Role::Channel, "mobile-app", None);
    let opened = stack
        .open_account(&channel, "alice", "LEGACY-CURRENT")
        .await;
    let alices = opened.body["id"].as_str().unwrap().to_owned();
    let bob = stack.token(Role::Channel, "mobile-app", Some("bob"));
    let refused = stack.get(&format!("/v1/accounts/{alices}"), &bob).await;
    assert_eq!(refused.status, 403);
    assert_eq!(refused.body["code"], "forbidden");
    let alice = stack.token(Role::Channel, "mobile-app", Some("alice"));
    stack
        .get(&format!("/v1/accounts/{alices}"), &alice)
        .await
        .expect(200);
    // The refused authentications are in the audit trail.
    let refusals = stack.audited("action = 'auth.refused'", &[]).await;
    assert_eq!(refusals, 2);
}

pub(crate) fn shadowed(product: &str, operation: &str) -> Value {
    json!({ "product": product, "operation": operation, "default_side": "legacy", "shadow": true })
}

/// Polls the shadow summary until `compared` reaches `at_least` for the operation.
pub(crate) async fn shadow_summary(stack: &Stack, operation: &str, at_least: u64) -> Value {
    let operator = stack.token(Role::Operator, "operator-a", None);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let listed = stack.get("/admin/v1/shadow", &operator).await.expect(200);
        let row = listed.body["summary"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["operation"] == operation).cloned());
        if let Some(row) = row
            && row["compared"].as_u64().unwrap_or(0) >= at_least
        {
            return listed.body;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no shadow comparison for {operation}: {}",
            listed.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_shadowed_product_runs_on_both_books_and_a_difference_is_caught() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let account = stack.shadowed_account(&token, "GW-SHADOW", "cust-s").await;
    stack.deposit(&token, &account, "50.00").await.expect(201);
    let summary = shadow_summary(&stack, "cash", 1).await;
    let cash = summary["summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["operation"] == "cash")
        .unwrap()
        .clone();
    assert_eq!(cash["mismatched"], 0, "{summary}");
    let read = stack.get(&format!("/v1/accounts/{account}"), &token).await;
    assert_eq!(read.status, 200);
    // The modern copy is shadow books, not an account channels may use.
    let copy = stack.modern_id_of(&account).await.unwrap();
    let refused = stack
        .get(&format!("/v1/accounts/{copy}"), &token)
        .await
        .expect(404);
    assert_eq!(refused.body["code"], "unknown_account");
    let summary = shadow_summary(&stack, "accounts.read", 1).await;
    assert!(
        summary["mismatches"].as_array().unwrap().is_empty(),
        "the two books agree: {summary}"
    );

    // Money moved on the legacy books behind the gateway's back: the next read differs.
    let legacy_id = account.clone();
    DepositsClient::new(stack.legacy.channel(GATEWAY, LEGACY_ADAPTER))
        .deposit(dpb::CashRequest {
            request_id: Uuid::new_v4().to_string(),
            account_id: legacy_id,
            amount: "5.00".to_owned(),
            currency: "EUR".to_owned(),
            description: String::new(),
            channel: String::new(),
        })
        .await
        .unwrap();
    let read = stack.get(&format!("/v1/accounts/{account}"), &token).await;
    assert_eq!(read.body["balances"]["posted"], "55.00");
    let summary = shadow_summary(&stack, "accounts.read", 2).await;
    let mismatches = summary["mismatches"].as_array().unwrap();
    assert_eq!(mismatches.len(), 1, "{summary}");
    let text = mismatches[0].to_string();
    assert!(text.contains("posted"), "{text}");
    assert!(
        !text.contains("cust-s"),
        "personal data is redacted: {text}"
    );
}

#[tokio::test]
async fn payments_start_with_202_and_their_sagas_are_operated_through_the_admin_api() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let account = stack.modern_payer("GW-PAY", "cust-p").await;
    let started = stack
        .post(
            "/v1/payments",
            &token,
            json!({
                "debtor_account_id": account,
                "creditor": { "name": "Creditor", "account": "DE44500105175407324931", "agent_bic": "INGDDEFFXXX" },
                "amount": "10.00",
                "currency": "EUR",
            }),
        )
        .await
.expect(202);
    let payment_id = started.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        started.header("location"),
        format!("/v1/payments/{payment_id}")
    );
    assert_eq!(started.header("x-served-by"), "modern");
    stack
        .get(&format!("/v1/payments/{payment_id}"), &token)
        .await
        .expect(200);
    // Cancelling twice (two keys, as after a lost answer) answers cancelled both times, or
    // past_pivot if the payment reached the rail first.
    // A saga busy with a step answers 409 cannot_cancel (retry-safe): try again.
    let cancel_key = Uuid::new_v4().to_string();
    let cancel_path = format!("/v1/payments/{payment_id}/cancel");
    let mut first_cancel = stack
        .call(
            reqwest::Method::POST,
            &cancel_path,
            Some(&token),
            Some(&cancel_key),
            Some(json!({})),
        )
        .await;
    for _ in 0..100 {
        if first_cancel.body["code"] != "cannot_cancel" {
            break;
        }
        assert_eq!(first_cancel.status, 409);
        tokio::time::sleep(Duration::from_millis(50)).await;
        first_cancel = stack
            .call(
                reqwest::Method::POST,
                &cancel_path,
                Some(&token),
                Some(&cancel_key),
                Some(json!({})),
            )
            .await;
    }
    if first_cancel.status == 200 {
        let second = stack
            .post(
                &format!("/v1/payments/{payment_id}/cancel"),
                &token,
                json!({}),
            )
            .await
            .expect(200);
        assert!(
            ["cancelled", "unwinding"]
                .contains(&second.body["status"].as_str().unwrap_or_default()),
            "{}",
            second.body
        );
    } else {
        assert_eq!(
            first_cancel.body["code"], "past_pivot",
            "{}",
            first_cancel.body
        );
    }

    // The payment's saga, seen and operated by a migration operator.
    let operator = stack.token(Role::Operator, "operator-a", None);
    let listed = stack.get("/admin/v1/sagas", &operator).await.expect(200);
    assert!(
        listed.body["sagas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == payment_id.as_str()),
        "{}",
        listed.body
    );
    stack
        .get(&format!("/admin/v1/sagas/{payment_id}"), &operator)
        .await
        .expect(200);
    let approver = stack.token(Role::Approver, "approver-b", None);
    let refused = stack
        .call(
            reqwest::Method::POST,
            &format!("/admin/v1/sagas/{payment_id}/retry"),
            Some(&approver),
            None,
            Some(json!({ "reason": "no write scope" })),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let retried = stack
        .call(
            reqwest::Method::POST,
            &format!("/admin/v1/sagas/{payment_id}/retry"),
            Some(&operator),
            None,
            Some(json!({ "reason": "rail is back" })),
        )
        .await;
    // Retry is done, or refused by the saga's state (it settled, or an executor holds it).
    // SagaAdmin checks the gateway's signed operator before the saga's state, so either
    // answer shows the assertion verified; without it the answer would be a 502.
    assert!(
        retried.status == 200 || retried.body["code"] == "invalid_saga_state",
        "{}",
        retried.body
    );
    if retried.status == 200 {
        // Recorded under the operator whose token the gateway verified, as it signed it.
        let detail = stack
            .get(&format!("/admin/v1/sagas/{payment_id}"), &operator)
            .await;
        let actors = common::each(&detail.body["operator_actions"], "actor");
        assert_eq!(actors, ["operator-a"], "{}", detail.body);
    }
    let audited = stack
        .audited(
            "action = 'sagas.retry' AND actor = 'operator-a' AND outcome <> 'requested'",
            &[],
        )
        .await;
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn bodies_over_the_limit_and_unknown_fields_are_refused_and_change_nothing() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let huge = json!({ "customer_id": "x".repeat(70 * 1024), "product_code": "LEGACY-CURRENT" });
    let refused = stack.post("/v1/accounts", &token, huge).await.expect(413);
    assert_eq!(refused.body["code"], "body_too_large");
    let unknown = stack
        .post(
            "/v1/accounts",
            &token,
            json!({ "customer_id": "c", "product_code": "LEGACY-CURRENT", "colour": "red" }),
        )
        .await
        .expect(400);
    assert_eq!(unknown.body["code"], "invalid_argument");
    assert!(unknown.body["message"].as_str().unwrap().contains("colour"));
    let listed = stack.get("/v1/customers/c/accounts", &token).await;
    assert_eq!(listed.body["account_ids"], json!([]), "{}", listed.body);
    // Refused before they ran, and still in the audit trail.
    let audited: Vec<(String, String)> = stack
        .database
        .db_for("gateway")
        .client()
        .await
        .unwrap()
        .query(
            "SELECT action, outcome FROM audit_log WHERE actor = 'mobile-app' ORDER BY at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert!(
        audited.contains(&("accounts.open".to_owned(), "invalid_argument".to_owned())),
        "{audited:?}"
    );
}

#[tokio::test]
async fn customers_of_one_channel_app_never_share_idempotency_keys() {
    let stack = stack().await;
    let key = Uuid::new_v4().to_string();
    let mut opened = Vec::new();
    for customer in ["cust-a", "cust-b"] {
        let token = stack.token(Role::Channel, "mobile-app", Some(customer));
        let answer = stack
            .call(
                reqwest::Method::POST,
                "/v1/accounts",
                Some(&token),
                Some(&key),
                Some(json!({ "product_code": "LEGACY-CURRENT" })),
            )
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        assert!(answer.header("idempotent-replayed").is_empty());
        assert_eq!(answer.body["customer_id"], customer);
        opened.push(answer.body["id"].as_str().unwrap().to_owned());
    }
    assert_ne!(opened[0], opened[1]);
}

#[tokio::test]
async fn a_payment_held_by_screening_is_released_or_refused_by_two_operators() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let account = stack.modern_payer("GW-SCR", "cust-s").await;
    let alice = stack.token(Role::Operator, "alice", None);
    let bob = stack.token(Role::Approver, "bob", None);
    // Two payments to a listed name: both wait for review, their money held.
    let mut held = Vec::new();
    for amount in ["10.00", "20.00"] {
        let started = stack
            .post(
                "/v1/payments",
                &token,
                json!({
                    "debtor_account_id": account,
                    "creditor": { "name": "Ivan Petrovich Sidorov", "account": "DE44500105175407324931", "agent_bic": "INGDDEFFXXX" },
                    "amount": amount,
                    "currency": "EUR",
                }),
            )
            .await
.expect(202);
        let id = started.body["id"].as_str().unwrap().to_owned();
        stack
            .until_status(&format!("/v1/payments/{id}"), &token, "screening_review")
            .await;
        held.push(id);
    }
    let balance = stack.get(&format!("/v1/accounts/{account}"), &token).await;
    assert_eq!(
        balance.body["balances"]["held"], "30.00",
        "{}",
        balance.body
    );

    // alice proposes the decision on `payment`, bob approves it: the approval's answer.
    let decide = |payment: String, decision: &'static str, reason: &'static str| {
        let (stack, alice, bob) = (&stack, alice.clone(), bob.clone());
        async move {
            let proposed = stack
                .post(
                    &format!("/admin/v1/payments/{payment}/screening-review"),
                    &alice,
                    json!({ "decision": decision, "reason": reason }),
                )
                .await
                .expect(202);
            let approval = proposed.body["id"].as_str().unwrap().to_owned();
            let approved = stack
                .decide(&approval, "approve", &bob, "agreed")
                .await
                .expect(200);
            assert_eq!(
                approved.body["approval"]["outcome"], "done",
                "{}",
                approved.body
            );
            approved.body
        }
    };

    // Refused: the payment fails and its hold is released.
    let approved = decide(
        held[0].clone(),
        "refuse",
        "the listing matches the beneficiary",
    )
    .await;
    assert!(
        ["unwinding", "failed"].contains(&approved["result"]["status"].as_str().unwrap()),
        "{approved}"
    );
    let failed = stack
        .until_status(&format!("/v1/payments/{}", held[0]), &token, "failed")
        .await;
    assert!(
        failed["reason"]
            .as_str()
            .unwrap()
            .contains("refused on review by bob (proposed by alice)"),
        "{failed}"
    );
    let balance = stack.get(&format!("/v1/accounts/{account}"), &token).await;
    assert_eq!(
        balance.body["balances"]["held"], "20.00",
        "{}",
        balance.body
    );

    // Released: it leaves review for the rail (which does not answer in this stack).
    let approved = decide(
        held[1].clone(),
        "release",
        "a namesake: other date of birth",
    )
    .await;
    assert_ne!(
        approved["result"]["status"], "screening_review",
        "{approved}"
    );
    let detail = stack
        .get(&format!("/admin/v1/sagas/{}", held[1]), &alice)
        .await
        .expect(200);
    assert!(
        detail.body.to_string().contains("screening_release"),
        "{}",
        detail.body
    );
}

/// The two catalogues by code: `code` → (parity, the differing fields).
async fn catalogue(stack: &Stack, token: &str) -> Vec<(String, String, Vec<String>)> {
    let listed = stack.get("/admin/v1/products", token).await.expect(200);
    listed.body["products"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            let fields = pair["differences"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["field"].as_str().unwrap().to_owned())
                .collect();
            (
                pair["code"].as_str().unwrap().to_owned(),
                pair["parity"].as_str().unwrap().to_owned(),
                fields,
            )
        })
        .collect()
}

#[tokio::test]
async fn both_catalogues_show_side_by_side_and_a_modern_product_is_defined_only_under_four_eyes() {
    let stack = stack().await;
    let alice = stack.token(Role::Operator, "alice", None);
    let bob = stack.token(Role::Approver, "bob", None);
    let legacy_only = |code: &str| (code.to_owned(), "legacy_only".to_owned(), Vec::new());
    assert_eq!(
        catalogue(&stack, &alice).await,
        [legacy_only("LEGACY-CURRENT"), legacy_only("LEGACY-SAVINGS")]
    );
    let definition = |day_count: &str| {
        json!({
            "code": "LEGACY-CURRENT", "name": "Current account", "kind": "current",
            "currency": "EUR", "day_count": day_count, "posting_frequency": "monthly",
            "overdraft_rate": "0"
        })
    };

    // A definition deposits' rules refuse is answered 422 with its reason; nothing is stored.
    let mut both = definition("act_365_fixed");
    both["minimum_balance"] = json!("10");
    both["overdraft_limit"] = json!("100");
    let refused = stack
        .post(
            "/admin/v1/products/proposals",
            &alice,
            json!({ "product": both, "reason": "try" }),
        )
        .await
        .expect(422);
    assert_eq!(refused.body["code"], "invalid_product", "{}", refused.body);
    // A malformed one is 400 from the gateway itself.
    stack
        .post(
            "/admin/v1/products/proposals",
            &alice,
            json!({ "product": definition("every_other_day"), "reason": "try" }),
        )
        .await
        .expect(400);

    // A proposal stores nothing until another operator approves it.
    let propose = |day_count: &'static str| {
        let (stack, alice) = (&stack, alice.clone());
        async move {
            let proposed = stack
                .post(
                    "/admin/v1/products/proposals",
                    &alice,
                    json!({ "product": definition(day_count), "reason": "the modern twin" }),
                )
                .await
                .expect(202);
            assert_eq!(proposed.body["kind"], "product_define", "{}", proposed.body);
            assert_eq!(proposed.body["target"], "LEGACY-CURRENT");
            proposed.body["id"].as_str().unwrap().to_owned()
        }
    };
    let first = propose("act_360").await;
    assert_eq!(catalogue(&stack, &alice).await[0].1, "legacy_only");
    let approve = |id: String, token: String| {
        let stack = &stack;
        async move {
            stack
                .decide(&id, "approve", &token, "checked against the legacy terms")
                .await
        }
    };
    let own = approve(first.clone(), alice.clone()).await;
    assert_eq!(own.status, 403, "{}", own.body);
    let approved = approve(first, bob.clone()).await.expect(200);
    assert_eq!(
        approved.body["approval"]["outcome"], "done",
        "{}",
        approved.body
    );
    assert_eq!(approved.body["result"]["version"], 1, "{}", approved.body);

    // Defined with another day count: the difference is named, with both values.
    let listed = stack.get("/admin/v1/products", &alice).await.expect(200);
    let current = &listed.body["products"][0];
    assert_eq!(current["parity"], "different", "{current}");
    assert_eq!(
        current["differences"],
        json!([{ "field": "day_count", "legacy": "act_365_fixed", "modern": "act_360" }])
    );
    assert_eq!(current["modern"]["interest"]["day_count"], "act_360");

    // Its next version, approved, brings the two to parity.
    let second = propose("act_365_fixed").await;
    let approved = approve(second, bob).await.expect(200);
    assert_eq!(approved.body["result"]["version"], 2, "{}", approved.body);
    assert_eq!(
        catalogue(&stack, &alice).await,
        [
            ("LEGACY-CURRENT".to_owned(), "equal".to_owned(), Vec::new()),
            legacy_only("LEGACY-SAVINGS")
        ]
    );
}
