//! The adapter against a real mock core (both on real PostgreSQL): the deposits and payments
//! contract suites, exactly-once under connections dropped after commit, close of business,
//! and the export for migration.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::legacy::v1 as lpb;
use corebank_api::legacy::v1::legacy_export_client::LegacyExportClient;
use corebank_api::legacy::v1::legacy_migration_client::LegacyMigrationClient;
use corebank_api::payments::v1 as ppb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_legacy::adapter::client::ClientConfig;
use corebank_legacy::adapter::{Adapter, AdapterConfig};
use corebank_legacy_core::CoreConfig;
use corebank_legacy_ofs::{Indicator, Response};
use corebank_service::contract::error_code;
use corebank_testkit::contract::assert_suite_passed;
use corebank_testkit::{TestApp, TestDatabase};
use rust_decimal::Decimal;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const ADMIN_PASSWORD: &str = "test-admin";

struct Bank {
    _database: TestDatabase,
    core_addr: SocketAddr,
    core_shutdown: CancellationToken,
    adapter: Arc<Adapter>,
    app: TestApp,
}

impl Drop for Bank {
    fn drop(&mut self) {
        self.core_shutdown.cancel();
    }
}

async fn bank(seed_customers: u32, call_timeout: Duration) -> Bank {
    bank_with(seed_customers, call_timeout, |_| {}).await
}

async fn bank_with(
    seed_customers: u32,
    call_timeout: Duration,
    tune: impl FnOnce(&mut CoreConfig),
) -> Bank {
    let database = TestDatabase::create().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let core_addr = listener.local_addr().unwrap();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    settings.legacy_admin_password = ADMIN_PASSWORD.to_owned();
    settings.legacy_seed_customers = seed_customers;
    let mut config = CoreConfig::from_settings(&settings).unwrap();
    tune(&mut config);
    let core_shutdown = CancellationToken::new();
    corebank_legacy_core::start(
        database.db_for("legacy_core"),
        listener,
        config,
        core_shutdown.clone(),
    )
    .await
    .unwrap();
    let client = ClientConfig {
        call_timeout,
        ..client_to(core_addr)
    };
    let (adapter, app) = serve_adapter(&database, client).await;
    Bank {
        _database: database,
        core_addr,
        core_shutdown,
        adapter,
        app,
    }
}

/// How the adapter calls the core at `addr` in these tests: as the core's test user, with a
/// breaker that does not open on a test's own refusals.
fn client_to(addr: SocketAddr) -> ClientConfig {
    ClientConfig {
        addr,
        user: "INPUTT".to_owned(),
        password: "123456".to_owned(),
        pool_size: 16,
        call_timeout: Duration::from_secs(5),
        breaker_failures: 1_000,
        breaker_open: Duration::from_millis(200),
        in_doubt: Duration::from_secs(60),
    }
}

/// The adapter on `database`, calling the core as `client` says, served by a test app.
async fn serve_adapter(database: &TestDatabase, client: ClientConfig) -> (Arc<Adapter>, TestApp) {
    let adapter = Arc::new(Adapter::new(
        database.db_for("legacy_adapter"),
        AdapterConfig { client },
    ));
    let component = corebank_legacy::adapter::component_of(Arc::clone(&adapter))
        .await
        .unwrap();
    (adapter, TestApp::spawn(component).await)
}

impl Bank {
    // The adapter's Deposits and Payments are called by the gateway (channels come in
    // through it); its LegacyExport by the migration tooling.
    async fn deposits(&self) -> DepositsClient<tonic::transport::Channel> {
        DepositsClient::new(self.app.channel("gateway", "legacy-adapter"))
    }

    async fn payments(&self) -> PaymentsClient<tonic::transport::Channel> {
        PaymentsClient::new(self.app.channel("gateway", "legacy-adapter"))
    }

    fn export(&self) -> LegacyExportClient<tonic::transport::Channel> {
        LegacyExportClient::new(self.app.channel("migration", "legacy-adapter"))
    }

    /// One raw OFS line to the core, and its answer.
    async fn ofs(&self, line: &str) -> Response {
        let stream = tokio::net::TcpStream::connect(self.core_addr)
            .await
            .unwrap();
        let (read, mut write) = stream.into_split();
        write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        let mut answer = String::new();
        BufReader::new(read).read_line(&mut answer).await.unwrap();
        Response::parse(answer.trim_end()).unwrap()
    }

    async fn faults(&self, settings: &str) {
        let answer = self
            .ofs(&format!(
                "ADMIN.FAULTS,/I/PROCESS,ADMIN/{ADMIN_PASSWORD},,{settings}"
            ))
            .await;
        assert_eq!(answer.indicator, Indicator::Done, "{answer:?}");
    }

    /// The core's books: (currency, total of working balances) for every currency.
    async fn books(&self) -> Vec<(String, String)> {
        let answer = self
            .ofs("ENQUIRY.SELECT,/S/PROCESS,INPUTT/123456,BOOKS.BALANCE")
            .await;
        assert_eq!(answer.indicator, Indicator::Done, "{answer:?}");
        let mut rows = Vec::new();
        for position in 1..=99_u16 {
            let value = |name: &str| {
                answer
                    .fields
                    .iter()
                    .find(|f| f.name == name && f.multi_value == position)
                    .map(|f| f.value.clone())
            };
            match (value("CURRENCY"), value("TOTAL")) {
                (Some(currency), Some(total)) => rows.push((currency, total)),
                _ => break,
            }
        }
        rows
    }

    async fn open_funded(&self, customer: &str, amount: &str) -> String {
        let mut client = self.deposits().await;
        let account = client
            .open_account(dpb::OpenAccountRequest {
                request_id: Uuid::new_v4().to_string(),
                customer_id: customer.to_owned(),
                product_code: "LEGACY-CURRENT".to_owned(),
                opened_on: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        if amount != "0" {
            client.deposit(cash(&account.id, amount)).await.unwrap();
        }
        account.id
    }

    async fn posted(&self, account_id: &str) -> Decimal {
        let account = self.account(account_id).await;
        account.balances.unwrap().posted.parse().unwrap()
    }

    /// `field` of the first LEGACY-CURRENT account in the core's own export.
    async fn first_current_account(&self, field: &str) -> String {
        let exported = self
            .ofs("ENQUIRY.SELECT,/S/PROCESS,INPUTT/123456,ACCT.EXPORT,PRODUCT.CODE=LEGACY-CURRENT")
            .await;
        exported.field(field).unwrap().to_owned()
    }

    /// The account as the adapter serves it.
    async fn account(&self, account_id: &str) -> dpb::Account {
        let request = dpb::GetAccountRequest {
            account_id: account_id.to_owned(),
        };
        self.deposits()
            .await
            .get_account(request)
            .await
            .unwrap()
            .into_inner()
    }

    /// The accounts of `customer` as the adapter lists them.
    async fn accounts_of(&self, customer: String) -> Vec<dpb::Account> {
        let request = dpb::ListAccountsRequest {
            customer_id: customer,
        };
        let listed = self.deposits().await.list_accounts(request).await.unwrap();
        listed.into_inner().accounts
    }

    /// A withdrawal that must be done.
    async fn withdrawn(&self, request: dpb::CashRequest) -> dpb::Movement {
        let movement = self.deposits().await.withdraw(request).await.unwrap();
        movement.into_inner()
    }
}

fn cash(account_id: &str, amount: &str) -> dpb::CashRequest {
    dpb::CashRequest {
        request_id: Uuid::new_v4().to_string(),
        account_id: account_id.to_owned(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        description: "test".to_owned(),
        channel: String::new(),
    }
}

fn assert_books_balance(books: &[(String, String)]) {
    assert!(!books.is_empty(), "BOOKS.BALANCE listed no currency");
    for (currency, total) in books {
        assert_eq!(
            total, "0.00",
            "the legacy books of {currency} do not balance"
        );
    }
}

#[tokio::test]
async fn the_deposits_contract_suite_passes_against_the_adapter() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let results = corebank_deposits::contract::run(bank.deposits().await, "legacy").await;
    assert_suite_passed(results.iter().map(|r| (r.name, &r.outcome)), 11);
    assert_books_balance(&bank.books().await);
}

#[tokio::test]
async fn the_payments_contract_suite_passes_against_the_adapter() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let fixtures = corebank_payments::contract::Fixtures {
        funded: bank.open_funded("payments-contract", "500.00").await,
        other: bank.open_funded("payments-contract", "0").await,
    };
    let results = corebank_payments::contract::run(bank.payments().await, &fixtures).await;
    assert_suite_passed(results.iter().map(|r| (r.name, &r.outcome)), 7);
    // 10.00 moved once, and the 5.00 payment went to the clearing account.
    assert_eq!(bank.posted(&fixtures.funded).await, Decimal::new(48_500, 2));
    assert_eq!(bank.posted(&fixtures.other).await, Decimal::new(1_000, 2));
    assert_books_balance(&bank.books().await);
}

/// 1,000 transfers while the core drops a third of its connections right after committing:
/// every transfer is applied exactly once and the books balance.
#[tokio::test]
async fn transfers_are_applied_exactly_once_when_the_core_drops_connections_after_commit() {
    const TRANSFERS: usize = 1_000;
    const ACCOUNTS: usize = 8;
    let bank = bank(0, Duration::from_secs(5)).await;
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        accounts.push(bank.open_funded("ambiguity", "1000.00").await);
    }
    bank.faults("DROP.AFTER.COMMIT.RATE=0.3").await;
    let accounts = Arc::new(accounts);
    let mut tasks = tokio::task::JoinSet::new();
    let workers = 16;
    for worker in 0..workers {
        let accounts = Arc::clone(&accounts);
        let mut client = bank.payments().await;
        tasks.spawn(async move {
            let mut moved = vec![Decimal::ZERO; ACCOUNTS];
            for n in (worker..TRANSFERS).step_by(workers) {
                let (from, to) = (n % ACCOUNTS, (n * 3 + 1) % ACCOUNTS);
                let (from, to) = if from == to {
                    (from, (to + 1) % ACCOUNTS)
                } else {
                    (from, to)
                };
                let request = ppb::InternalTransferRequest {
                    request_id: Uuid::new_v4().to_string(),
                    from_account_id: accounts[from].clone(),
                    to_account_id: accounts[to].clone(),
                    amount: "1.25".to_owned(),
                    currency: "EUR".to_owned(),
                    description: format!("transfer {n}"),
                };
                // A call that still ends without a verdict is simply sent again with the same
                // request id, as a channel would.
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    match client.internal_transfer(request.clone()).await {
                        Ok(_) => break,
                        Err(status) if error_code(&status) == "unavailable" && attempts < 20 => {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(status) => panic!("transfer {n}: {status:?}"),
                    }
                }
                moved[from] -= Decimal::new(125, 2);
                moved[to] += Decimal::new(125, 2);
            }
            moved
        });
    }
    let mut expected = vec![Decimal::new(100_000, 2); ACCOUNTS];
    while let Some(moved) = tasks.join_next().await {
        for (total, delta) in expected.iter_mut().zip(moved.unwrap()) {
            *total += delta;
        }
    }
    bank.faults("DROP.AFTER.COMMIT.RATE=0").await;
    let ambiguous = bank.adapter.ambiguous_outcomes();
    assert!(
        ambiguous >= 100,
        "only {ambiguous} outcomes were lost: the fault did not really happen"
    );
    for (account, want) in accounts.iter().zip(&expected) {
        assert_eq!(bank.posted(account).await, *want, "account {account}");
    }
    // Each account's statement has its deposit and exactly one line per transfer it took part in.
    let mut lines = 0;
    for account in accounts.iter() {
        let mut cursor = String::new();
        loop {
            let page = bank
                .deposits()
                .await
                .get_statement(dpb::GetStatementRequest {
                    account_id: account.clone(),
                    cursor: cursor.clone(),
                    page_size: 200,
                })
                .await
                .unwrap()
                .into_inner();
            lines += page.lines.len();
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
    }
    assert_eq!(lines, ACCOUNTS + 2 * TRANSFERS);
    assert_books_balance(&bank.books().await);
}

#[tokio::test]
async fn close_of_business_fails_fast_with_unavailable_and_changes_nothing() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let account = bank.open_funded("cob", "50.00").await;
    bank.faults("COB=ON").await;
    let mut client = bank.deposits().await;
    let started = Instant::now();
    let refused = client.withdraw(cash(&account, "10.00")).await.unwrap_err();
    assert_eq!(error_code(&refused), "unavailable", "{refused:?}");
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(
        refused.message().contains("retry later"),
        "{}",
        refused.message()
    );
    let read = client
        .get_account(dpb::GetAccountRequest {
            account_id: account.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&read), "unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "close of business took {:?} to report",
        started.elapsed()
    );
    bank.faults("COB=OFF").await;
    assert_eq!(bank.posted(&account).await, Decimal::new(5_000, 2));
}

#[tokio::test]
async fn a_timed_out_input_is_settled_by_asking_the_core_and_applied_once() {
    // The core sits on every request longer than the adapter waits, then does it.
    let bank = bank(0, Duration::from_millis(300)).await;
    let account = bank.open_funded("timeouts", "100.00").await;
    bank.faults("TIMEOUT.RATE=1,TIMEOUT.MS=600").await;
    let request = cash(&account, "30.00");
    let outcome = bank.deposits().await.withdraw(request.clone()).await;
    bank.faults("TIMEOUT.RATE=0").await;
    // Whatever the first call said, the same request id again settles it, applied once.
    if let Err(status) = &outcome {
        assert_eq!(error_code(status), "unavailable", "{status:?}");
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let again = bank.withdrawn(request).await;
    assert_eq!(again.balances_after.unwrap().posted, "70.00");
    assert_eq!(bank.posted(&account).await, Decimal::new(7_000, 2));
}

#[tokio::test]
async fn the_export_streams_every_account_of_a_product_as_of_one_journal_number() {
    let bank = bank(6, Duration::from_secs(5)).await;
    let export = |product: &str| {
        let mut client = bank.export();
        let product = product.to_owned();
        async move {
            let mut stream = client
                .export_accounts(lpb::ExportAccountsRequest {
                    product_code: product,
                })
                .await
                .unwrap()
                .into_inner();
            let mut accounts = Vec::new();
            while let Some(account) = stream.message().await.unwrap() {
                accounts.push(account);
            }
            accounts
        }
    };
    let current = export("LEGACY-CURRENT").await;
    assert_eq!(current.len(), 6, "{current:?}");
    let journal = current[0].journal;
    let mut holds = 0;
    for (n, account) in current.iter().enumerate() {
        assert_eq!(account.journal, journal);
        assert_eq!(account.sequence, u64::try_from(n + 1).unwrap());
        // The balance is the statement's last running balance, and the sum of its lines.
        let sum: Decimal = account
            .statement
            .iter()
            .map(|l| {
                let amount: Decimal = l.amount.parse().unwrap();
                if l.direction == "debit" {
                    -amount
                } else {
                    amount
                }
            })
            .sum();
        assert_eq!(sum.to_string(), account.posted, "{account:?}");
        assert_eq!(
            account.statement.last().map(|l| l.running_balance.clone()),
            Some(account.posted.clone())
        );
        let held: Decimal = account
            .holds
            .iter()
            .map(|h| h.amount.parse::<Decimal>().unwrap())
            .sum();
        assert_eq!(format!("{held:.2}"), account.held);
        holds += account.holds.len();
        // The exported id is the one the adapter serves the account under.
        let served = bank.account(&account.account_id).await;
        assert_eq!(served.balances.unwrap().posted, account.posted);
    }
    assert!(holds >= 1, "the seed's holds are missing from the export");
    assert_eq!(export("LEGACY-SAVINGS").await.len(), 6);
    assert!(export("NO-SUCH-PRODUCT").await.is_empty());

    // A later export sees a later state; the earlier one is unchanged by it.
    let first = &current[0];
    bank.deposits()
        .await
        .deposit(cash(&first.account_id, "1.00"))
        .await
        .unwrap();
    let later = export("LEGACY-CURRENT").await;
    assert!(later[0].journal > journal);
    let before: Decimal = first.posted.parse().unwrap();
    assert_eq!(later[0].posted, (before + Decimal::ONE).to_string());
    assert_eq!(later[0].statement.len(), first.statement.len() + 1);

    // The export is for the migration tooling only: the gateway is refused.
    let refused = LegacyExportClient::new(bank.app.channel("gateway", "legacy-adapter"))
        .export_accounts(lpb::ExportAccountsRequest {
            product_code: "LEGACY-CURRENT".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "permission_denied", "{refused:?}");
}

#[tokio::test]
async fn accounts_the_core_had_before_the_adapter_are_served_under_stable_ids() {
    let bank = bank(3, Duration::from_secs(5)).await;
    // The seed's first customer, by the core's own customer number.
    let customer = bank.first_current_account("CUSTOMER").await;
    let listed = bank.accounts_of(customer.clone()).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let mut products: Vec<&str> = listed.iter().map(|a| a.product_code.as_str()).collect();
    products.sort_unstable();
    assert_eq!(products, ["LEGACY-CURRENT", "LEGACY-SAVINGS"]);
    // Listing again gives the same ids.
    let again = bank.accounts_of(customer).await;
    assert_eq!(
        listed.iter().map(|a| &a.id).collect::<Vec<_>>(),
        again.iter().map(|a| &a.id).collect::<Vec<_>>()
    );
    // What the core cannot do is said so.
    let refused = bank
        .deposits()
        .await
        .accrue_interest(dpb::AccrueInterestRequest {
            as_of: "2026-11-25".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "not_supported_by_legacy");
}

#[tokio::test]
async fn the_breaker_opens_when_the_core_is_unreachable_and_closes_when_it_is_back() {
    let database = TestDatabase::create().await;
    // An address where nothing listens yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = ClientConfig {
        pool_size: 4,
        call_timeout: Duration::from_millis(500),
        breaker_failures: 3,
        breaker_open: Duration::from_millis(400),
        ..client_to(addr)
    };
    let (adapter, app) = serve_adapter(&database, client).await;
    let mut client = DepositsClient::new(app.channel("gateway", "legacy-adapter"));
    // A core customer number: the adapter must ask the core for its accounts.
    let list = || dpb::ListAccountsRequest {
        customer_id: "1000039".to_owned(),
    };
    let refused = client.list_accounts(list()).await.unwrap_err();
    assert_eq!(error_code(&refused), "unavailable", "{refused:?}");
    assert!(
        adapter.legacy_breaker_open(),
        "three failed connects open the breaker"
    );
    let started = Instant::now();
    let fast = client.list_accounts(list()).await.unwrap_err();
    assert_eq!(error_code(&fast), "unavailable");
    assert!(
        fast.message().contains("circuit breaker"),
        "{}",
        fast.message()
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "an open breaker fails fast, not after {:?}",
        started.elapsed()
    );

    // The core comes up on that address; once the breaker's time is over, calls go through.
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let mut settings = corebank_service::Settings::defaults().unwrap();
    // Customers 1000012, 1000020 and 1000039.
    settings.legacy_seed_customers = 3;
    let shutdown = CancellationToken::new();
    corebank_legacy_core::start(
        database.db_for("legacy_core"),
        listener,
        CoreConfig::from_settings(&settings).unwrap(),
        shutdown.clone(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let listed = client.list_accounts(list()).await.unwrap().into_inner();
    assert_eq!(
        listed.accounts.len(),
        2,
        "the seeded customer's two accounts"
    );
    assert!(!adapter.legacy_breaker_open());
    shutdown.cancel();
}

/// The core sits on the first attempt (it was slow, not dead); meanwhile the account is
/// frozen, so the adapter's second attempt is refused. That refusal must not reach the
/// channel as final: the first attempt lands once the account is unfrozen, and the channel's
/// retry with the same request id finds it.
#[tokio::test]
async fn a_refusal_after_a_lost_answer_is_not_final_while_the_first_attempt_may_land() {
    let bank = bank(0, Duration::from_millis(300)).await;
    let account = bank.open_funded("in-doubt", "100.00").await;
    // The core's number of the one account there is.
    let number = bank.first_current_account("ACCOUNT").await;
    bank.faults("TIMEOUT.RATE=1,TIMEOUT.MS=1500").await;
    let request = cash(&account, "30.00");
    let first = {
        let mut client = bank.deposits().await;
        let request = request.clone();
        tokio::spawn(async move { client.withdraw(request).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    bank.faults("TIMEOUT.RATE=0").await;
    let frozen = bank
        .ofs(&format!(
            "ACCOUNT,/I/PROCESS,INPUTT/123456,{number},POSTING.RESTRICT=3"
        ))
        .await;
    assert_eq!(frozen.indicator, Indicator::Done, "{frozen:?}");
    let answer = first.await.unwrap().unwrap_err();
    assert_eq!(
        error_code(&answer),
        "unavailable",
        "the refusal of the second attempt was passed on as final: {answer:?}"
    );
    assert!(
        answer.message().contains("same request_id"),
        "{}",
        answer.message()
    );
    let unfrozen = bank
        .ofs(&format!(
            "ACCOUNT,/I/PROCESS,INPUTT/123456,{number},POSTING.RESTRICT="
        ))
        .await;
    assert_eq!(unfrozen.indicator, Indicator::Done, "{unfrozen:?}");
    // The first attempt lands when the core wakes up.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let retried = bank.withdrawn(request).await;
    assert_eq!(retried.balances_after.unwrap().posted, "70.00");
    assert_eq!(bank.posted(&account).await, Decimal::new(7_000, 2));
}

#[tokio::test]
async fn a_daily_reservation_belongs_to_one_request_and_its_content() {
    let database = TestDatabase::create().await;
    let store = corebank_legacy::adapter::store::Store::new(database.db_for("legacy_adapter"));
    let (request, account) = (Uuid::new_v4(), Uuid::new_v4());
    let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
    let limit = Decimal::from(100);
    store
        .reserve(request, account, day, Decimal::from(60), limit)
        .await
        .unwrap();
    // The same request again reserves nothing more; with another amount it is refused.
    store
        .reserve(request, account, day, Decimal::from(60), limit)
        .await
        .unwrap();
    let other = store
        .reserve(request, account, day, Decimal::from(90), limit)
        .await
        .unwrap_err();
    assert_eq!(other.code(), "exists_with_different_content");
    let over = store
        .reserve(Uuid::new_v4(), account, day, Decimal::from(41), limit)
        .await
        .unwrap_err();
    assert_eq!(over.code(), "daily_limit_exceeded");
    store
        .reserve(Uuid::new_v4(), account, day, Decimal::from(40), limit)
        .await
        .unwrap();
}

#[tokio::test]
async fn canonical_answers_look_like_the_modern_modules_and_ids_are_not_confused() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let account = bank.open_funded("alice", "10").await;
    let mut client = bank.deposits().await;
    let movement = client
        .deposit(cash(&account, "5.5"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(movement.amount, "5.50");
    assert_eq!(movement.balances_after.unwrap().posted, "15.50");
    let mut not_v4 = cash(&account, "1.00");
    not_v4.request_id = "00000000-0000-1000-8000-000000000000".to_owned();
    let refused = client.deposit(not_v4).await.unwrap_err();
    assert_eq!(error_code(&refused), "invalid_argument");
    let mut long = cash(&account, "1.00");
    long.description = "x".repeat(141);
    assert_eq!(
        error_code(&client.deposit(long).await.unwrap_err()),
        "invalid_argument"
    );
    // Alice's core customer number, used as a canonical customer id, is not Alice.
    let alice_number = bank
        .ofs(&format!(
            "ENQUIRY.SELECT,/S/PROCESS,INPUTT/123456,CUSTOMER.BY.MNEMONIC,MNEMONIC={}",
            corebank_legacy::adapter::mnemonic("alice")
        ))
        .await
        .field("CUSTOMER")
        .unwrap()
        .to_owned();
    let listed = client
        .list_accounts(dpb::ListAccountsRequest {
            customer_id: alice_number,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.accounts.is_empty(), "{:?}", listed.accounts);
}

/// The core closes connections that stay idle; the adapter must not mistake a pooled
/// connection the core closed for a lost answer (which would put the request in doubt).
#[tokio::test]
async fn connections_the_core_closed_while_idle_are_not_mistaken_for_lost_answers() {
    let bank = bank_with(0, Duration::from_secs(5), |config| {
        config.idle_timeout = Duration::from_millis(200);
    })
    .await;
    let from = bank.open_funded("idle", "10.00").await;
    let to = bank.open_funded("idle", "0").await;
    let before = bank.adapter.ambiguous_outcomes();
    // Every pooled connection is now closed by the core.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = bank
        .payments()
        .await
        .internal_transfer(ppb::InternalTransferRequest {
            request_id: Uuid::new_v4().to_string(),
            from_account_id: from.clone(),
            to_account_id: to,
            amount: "20.00".to_owned(),
            currency: "EUR".to_owned(),
            description: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "insufficient_funds", "{refused:?}");
    assert_eq!(bank.adapter.ambiguous_outcomes(), before);
}

#[tokio::test]
async fn an_account_with_more_holds_than_a_page_is_exported_with_all_of_them() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let account = bank.open_funded("many-holds", "1000.00").await;
    let number = bank.first_current_account("ACCOUNT").await;
    for n in 0..400 {
        let lock = bank
            .ofs(&format!(
                "AC.LOCKED.EVENTS,/I/PROCESS,INPUTT/123456,,ACCOUNT.NUMBER={number},LOCKED.AMOUNT=1.00,DESCRIPTION=hold {n}"
            ))
            .await;
        assert_eq!(lock.indicator, Indicator::Done, "{lock:?}");
    }
    let mut client = bank.export();
    let mut stream = client
        .export_accounts(lpb::ExportAccountsRequest {
            product_code: "LEGACY-CURRENT".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let exported = stream.message().await.unwrap().unwrap();
    assert!(stream.message().await.unwrap().is_none());
    assert_eq!(exported.account_id, account);
    assert_eq!(exported.holds.len(), 400);
    assert_eq!(exported.held, "400.00");
    let mut ids: Vec<&str> = exported
        .holds
        .iter()
        .map(|h| h.legacy_id.as_str())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 400, "a hold was exported twice");
}

#[tokio::test]
async fn concurrent_moves_reach_the_core_in_bulks_and_each_gets_its_own_answer() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let mut accounts = Vec::new();
    for n in 0..12 {
        accounts.push(bank.open_funded(&format!("cust-bulk-{n}"), "5.00").await);
    }
    let unknown = Uuid::new_v4().to_string();
    accounts.push(unknown.clone());
    // Every exchange with the core takes 150 ms: the freezes that arrive meanwhile wait for
    // a bulk (two at a time) rather than a connection each.
    bank.faults("LATENCY.MIN.MS=150,LATENCY.MAX.MS=150").await;
    let moves = LegacyMigrationClient::new(bank.app.channel("migration", "legacy-adapter"));
    let (bulks_before, bulked_before) = bank.adapter.bulk_stats();
    let frozen: Vec<_> = accounts
        .iter()
        .map(|account| {
            let mut moves = moves.clone();
            let request = lpb::AccountMoveRequest {
                account_id: account.clone(),
            };
            tokio::spawn(async move { moves.freeze_account(request).await })
        })
        .collect();
    for (account, answer) in accounts.iter().zip(frozen) {
        let answer = answer.await.unwrap();
        if *account == unknown {
            assert_eq!(error_code(&answer.unwrap_err()), "unknown_account");
            continue;
        }
        let frozen = answer.unwrap().into_inner();
        assert_eq!(
            (
                frozen.account_id.as_str(),
                frozen.state.as_str(),
                frozen.posted.as_str()
            ),
            (account.as_str(), "moving", "5.00")
        );
    }
    let (bulks, bulked) = bank.adapter.bulk_stats();
    assert_eq!(
        bulked - bulked_before,
        12,
        "each freeze went in a bulk once"
    );
    assert!(
        bulks - bulks_before <= 6,
        "{} bulks for 12 freezes",
        bulks - bulks_before
    );
    bank.faults("LATENCY.MIN.MS=0,LATENCY.MAX.MS=0").await;
    assert_books_balance(&bank.books().await);
}

#[tokio::test]
async fn an_account_moved_away_is_frozen_then_emptied_into_suspense_and_refuses_postings_after() {
    let bank = bank(0, Duration::from_secs(5)).await;
    let customer = "cust-mover";
    let account = bank.open_funded(customer, "100.00").await;
    let hold = bank
        .deposits()
        .await
        .place_hold(dpb::PlaceHoldRequest {
            request_id: Uuid::new_v4().to_string(),
            account_id: account.clone(),
            amount: "30.00".to_owned(),
            currency: "EUR".to_owned(),
            reason: "card".to_owned(),
            expires_in_seconds: 0,
        })
        .await
        .unwrap()
        .into_inner();
    let mut moves = LegacyMigrationClient::new(bank.app.channel("migration", "legacy-adapter"));
    let request = || lpb::AccountMoveRequest {
        account_id: account.clone(),
    };

    // Only the migration may move accounts.
    let refused = LegacyMigrationClient::new(bank.app.channel("gateway", "legacy-adapter"))
        .freeze_account(request())
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "permission_denied", "{refused:?}");
    let early = moves.empty_account(request()).await.unwrap_err();
    assert_eq!(error_code(&early), "invalid_account_status", "{early:?}");

    // The freeze is the authoritative read; channels are then told to come back.
    let frozen = moves.freeze_account(request()).await.unwrap().into_inner();
    assert_eq!(frozen.state, "moving");
    assert_eq!(
        (frozen.posted.as_str(), frozen.held.as_str()),
        ("100.00", "30.00")
    );
    assert_eq!(frozen.holds.len(), 1);
    assert_eq!(frozen.holds[0].hold_id, hold.id);
    assert_eq!(frozen.holds[0].amount, "30.00");
    assert!(frozen.journal > 0);
    let again = moves.freeze_account(request()).await.unwrap().into_inner();
    assert_eq!(
        (again.state, again.posted, again.holds),
        (
            frozen.state.clone(),
            frozen.posted.clone(),
            frozen.holds.clone()
        ),
        "a repeated freeze changes nothing"
    );
    let waiting = bank
        .deposits()
        .await
        .deposit(cash(&account, "1.00"))
        .await
        .unwrap_err();
    assert_eq!(waiting.code(), tonic::Code::Unavailable);
    assert_eq!(error_code(&waiting), "account_moving", "{waiting:?}");

    let emptied = moves.empty_account(request()).await.unwrap().into_inner();
    assert_eq!(emptied.state, "migrated");
    assert_eq!(
        (emptied.posted.as_str(), emptied.moved.as_str()),
        ("0.00", "100.00")
    );
    assert_eq!(emptied.released_hold_ids, vec![hold.id.clone()]);
    assert!(emptied.holds.is_empty());
    assert!(emptied.emptied_journal > frozen.journal);
    assert!(!emptied.suspense_account.is_empty());
    let repeated = moves.empty_account(request()).await.unwrap().into_inner();
    assert_eq!(
        (repeated.moved.as_str(), repeated.emptied_journal),
        ("100.00", emptied.emptied_journal)
    );
    assert_books_balance(&bank.books().await);

    // Moved away: the core refuses postings with its own error, and a thaw is refused.
    let after = bank
        .deposits()
        .await
        .deposit(cash(&account, "1.00"))
        .await
        .unwrap_err();
    assert_eq!(error_code(&after), "account_migrated", "{after:?}");
    let thaw = moves.thaw_account(request()).await.unwrap_err();
    assert_eq!(error_code(&thaw), "account_migrated", "{thaw:?}");

    // Moving back: what the other core hands back returns from suspense, holds as new locks.
    let tomorrow = (chrono::Utc::now().date_naive() + chrono::TimeDelta::days(1)).to_string();
    let restore = lpb::RestoreAccountRequest {
        account_id: account.clone(),
        amount: "90.00".to_owned(),
        holds: vec![lpb::HoldToRestore {
            amount: "10.00".to_owned(),
            to_date: tomorrow.clone(),
            reference: "modern hold".to_owned(),
        }],
    };
    let restored = moves
        .restore_account(restore.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (
            restored.state.as_str(),
            restored.posted.as_str(),
            restored.held.as_str()
        ),
        ("moving", "90.00", "10.00")
    );
    assert_eq!(restored.holds.len(), 1);
    assert_eq!(restored.holds[0].to_date, tomorrow);
    assert_ne!(
        restored.holds[0].hold_id, hold.id,
        "a new lock, a new hold id"
    );
    let again = moves.restore_account(restore).await.unwrap().into_inner();
    assert_eq!(
        (again.posted, again.holds),
        (restored.posted, restored.holds)
    );
    let thawed = moves.thaw_account(request()).await.unwrap().into_inner();
    assert_eq!(thawed.state, "open");
    bank.deposits()
        .await
        .deposit(cash(&account, "1.00"))
        .await
        .unwrap();
    assert_eq!(bank.posted(&account).await, Decimal::new(9_100, 2));
    assert_books_balance(&bank.books().await);
}
