//! Crash test of the legacy boundary: the mock core runs as its own process
//! (`corebank serve legacy-core`) and is killed with SIGKILL, again and again, while channels
//! send transfers through the adapter. Channels retry what ended `unavailable` with the same
//! request id, as the adapter advises. Every transfer must be applied exactly once, and the
//! core's books must balance.

use crate::common;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1 as ppb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_legacy::adapter::client::ClientConfig;
use corebank_legacy::adapter::{Adapter, AdapterConfig};
use corebank_service::contract::error_code;
use corebank_testkit::{TestApp, TestDatabase};
use rust_decimal::Decimal;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use uuid::Uuid;

const ACCOUNTS: usize = 6;
const TRANSFERS: usize = 400;
const WORKERS: usize = 8;
const KILLS: usize = 4;

/// The mock legacy core, `corebank serve legacy-core`, listening on `addr`.
pub(crate) struct Core {
    pub(crate) process: common::Process,
    pub(crate) addr: SocketAddr,
}

impl Core {
    /// Not started yet.
    pub(crate) fn new(url: &str, addr: SocketAddr) -> Core {
        Core::with_faults(url, addr, "")
    }

    /// Not started yet; starts with `faults` (`COREBANK_LEGACY_FAULTS`).
    pub(crate) fn with_faults(url: &str, addr: SocketAddr, faults: &str) -> Core {
        let mut command = common::serve("legacy-core", url);
        command
            .env("COREBANK_LEGACY_CORE_ADDR", addr.to_string())
            .env("COREBANK_LEGACY_FAULTS", faults)
            .env("COREBANK_DB_POOL_SIZE_MAX", "8");
        Core {
            process: common::Process::stopped("the legacy core", command),
            addr,
        }
    }

    /// Waits until the core answers an enquiry.
    pub(crate) async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if books(self.addr).await.is_some() {
                return;
            }
            assert!(Instant::now() < deadline, "the legacy core did not come up");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// `BOOKS.BALANCE`: the total of every account per currency, when the core answers.
async fn books(addr: SocketAddr) -> Option<Vec<(String, String)>> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (read, mut write) = stream.into_split();
    write
        .write_all(b"ENQUIRY.SELECT,/S/PROCESS,INPUTT/123456,BOOKS.BALANCE\n")
        .await
        .ok()?;
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await.ok()?;
    let answer = corebank_legacy_ofs::Response::parse(line.trim_end()).ok()?;
    if answer.indicator != corebank_legacy_ofs::Indicator::Done {
        return None;
    }
    let value = |name: &str, position: u16| {
        answer
            .fields
            .iter()
            .find(|f| f.name == name && f.multi_value == position)
            .map(|f| f.value.clone())
    };
    Some(
        (1..=99)
            .map_while(|p| Some((value("CURRENCY", p)?, value("TOTAL", p)?)))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_core_killed_mid_flight_loses_nothing_and_applies_nothing_twice() {
    let database = TestDatabase::create().await;
    let mut core = Core::new(database.url(), common::free_addr());
    core.process.spawn();
    core.ready().await;

    let adapter = Arc::new(Adapter::new(
        database.db_for("legacy_adapter"),
        AdapterConfig {
            client: ClientConfig {
                addr: core.addr,
                user: "INPUTT".to_owned(),
                password: "123456".to_owned(),
                pool_size: 16,
                call_timeout: Duration::from_secs(2),
                breaker_failures: 20,
                breaker_open: Duration::from_millis(100),
                in_doubt: Duration::from_secs(60),
            },
        },
    ));
    let app = TestApp::spawn(
        corebank_legacy::adapter::component_of(Arc::clone(&adapter))
            .await
            .unwrap(),
    )
    .await;
    let mut deposits = DepositsClient::new(app.channel("gateway", "legacy-adapter"));
    let mut accounts = Vec::new();
    for _ in 0..ACCOUNTS {
        let account = deposits
            .open_account(common::opening("crash-customer", "LEGACY-CURRENT"))
            .await
            .unwrap()
            .into_inner();
        deposits
            .deposit(common::cash_deposit(&account.id, "1000.00", ""))
            .await
            .unwrap();
        accounts.push(account.id);
    }
    let accounts = Arc::new(accounts);

    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let accounts = Arc::clone(&accounts);
        let mut payments = PaymentsClient::new(app.channel("gateway", "legacy-adapter"));
        tasks.spawn(async move {
            let mut moved = vec![Decimal::ZERO; ACCOUNTS];
            let mut retries = 0_usize;
            for n in (worker..TRANSFERS).step_by(WORKERS) {
                let from = n % ACCOUNTS;
                let to = (from + 1 + n % (ACCOUNTS - 1)) % ACCOUNTS;
                let request = ppb::InternalTransferRequest {
                    request_id: Uuid::new_v4().to_string(),
                    from_account_id: accounts[from].clone(),
                    to_account_id: accounts[to].clone(),
                    amount: "0.75".to_owned(),
                    currency: "EUR".to_owned(),
                    description: format!("crash {n}"),
                };
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    match payments.internal_transfer(request.clone()).await {
                        Ok(_) => break,
                        Err(status)
                            if error_code(&status) == "unavailable"
                                && Instant::now() < deadline =>
                        {
                            retries += 1;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(status) => panic!("transfer {n}: {status:?}"),
                    }
                }
                moved[from] -= Decimal::new(75, 2);
                moved[to] += Decimal::new(75, 2);
            }
            (moved, retries)
        });
    }

    // Kill the core at random moments while the transfers run, and start it again.
    let mut rng = fastrand::Rng::with_seed(11);
    for _ in 0..KILLS {
        tokio::time::sleep(Duration::from_millis(rng.u64(300..900))).await;
        core.process.kill();
        tokio::time::sleep(Duration::from_millis(rng.u64(50..300))).await;
        core.process.spawn();
    }

    let mut expected = vec![Decimal::new(100_000, 2); ACCOUNTS];
    let mut retries = 0;
    while let Some(outcome) = tasks.join_next().await {
        let (moved, worker_retries) = outcome.unwrap();
        retries += worker_retries;
        for (total, delta) in expected.iter_mut().zip(moved) {
            *total += delta;
        }
    }
    core.ready().await;
    eprintln!(
        "legacy crash test: {KILLS} kills, {retries} calls retried by channels, {} outcomes settled by asking the core",
        adapter.ambiguous_outcomes()
    );
    assert!(
        retries > 0 || adapter.ambiguous_outcomes() > 0,
        "the kills never hit a request in flight: the test proved nothing"
    );
    for (account, want) in accounts.iter().zip(&expected) {
        let posted: Decimal = deposits
            .get_account(dpb::GetAccountRequest {
                account_id: account.clone(),
            })
            .await
            .unwrap()
            .into_inner()
            .balances
            .unwrap()
            .posted
            .parse()
            .unwrap();
        assert_eq!(
            posted, *want,
            "account {account}: a transfer was lost or doubled"
        );
    }
    let books = books(core.addr).await.unwrap();
    assert!(!books.is_empty());
    for (currency, total) in books {
        assert_eq!(
            total, "0.00",
            "the legacy books of {currency} do not balance"
        );
    }
}
