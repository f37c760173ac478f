//! `corebank bench gateway`: what the strangler-fig gateway costs. The same read and the
//! same internal transfer are called directly on the modern module over gRPC, through the
//! gateway (REST/JSON, JWT, routing, idempotency, audit), and through nginx as a plain
//! reverse proxy in front of the gateway, to price one ordinary proxy hop on the same
//! request; against pgbench's TPC-B on the same PostgreSQL in the same run.
//!
//! The three paths of an operation run their open loops at one rate, a share of the slowest
//! path's closed-loop throughput, so that their latencies compare.

mod nginx;
pub(crate) mod setup;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_gateway::auth::dev::{self, Role};
use corebank_service::Settings;
use corebank_service::internal::component_names;
use serde_json::{Map, json};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::harness::figures::{OPEN_LOOP_SUFFIX, Report};
use crate::harness::load::Client;
use crate::harness::servers::{GRPC_CHANNELS, Servers, channel_for};
use crate::harness::{Run, RunOptions, Suite, grpc_outcome, small_amount, two_accounts};
use nginx::Nginx;

/// Options of `corebank bench gateway`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayBenchOptions {
    /// Seconds each of the six measured phases runs (and pgbench's, and each of the six open
    /// loops).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent clients in each phase, one request at a time each (default: pgbench's
    /// clients).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Accounts opened and funded through the gateway, which the requests spread over.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    #[command(flatten)]
    pub run: RunOptions,
}

/// Customers the mock legacy core seeds (the legacy side is up, but serves no benchmark
/// traffic: the bench product is routed to the modern side).
const LEGACY_SEED_CUSTOMERS: u32 = 2;
/// The targets of issue 7: the gateway adds at most this many times nginx's hop at p99…
const ADDED_P99_RATIO_MAX: f64 = 1.5;
/// …and moves at least this many internal transfers per pgbench TPC-B transaction.
const TRANSFER_RATIO_TO_BASELINE_MIN: f64 = 1.0;
/// The measured phases: each operation along each path, closed loop and open loop.
const PHASES: u64 = 12;

pub async fn run(settings: &Settings, options: &GatewayBenchOptions) -> anyhow::Result<()> {
    let clients = options
        .clients
        .unwrap_or_else(|| usize::try_from(options.run.pgbench_clients).unwrap_or(1));
    let suite = Suite::new(
        "gateway",
        "requests",
        clients,
        options.seconds,
        options.accounts,
        &options.run,
    )?;
    // Before anything slow: without nginx there is nothing to compare with.
    let nginx = nginx::find_nginx()?;
    suite
        .run(settings, async |run| {
            run_suite(settings, options, clients, &nginx, run).await
        })
        .await
}

/// The request measured in a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// `Deposits/GetAccount`, or `GET /v1/accounts/{id}/balance`.
    Read,
    /// `Payments/InternalTransfer`, or `POST /v1/transfers`.
    Transfer,
}

/// How a phase reaches the module.
#[derive(Debug, Clone)]
enum Via {
    /// gRPC on the modern module itself.
    Direct,
    /// HTTP/1.1 with keep-alive to this base URL (the gateway, or nginx before it).
    Http(String),
}

/// The modern side, the legacy side and the gateway, each on its own server on 127.0.0.1.
pub(crate) struct Stack {
    pub(crate) servers: Servers,
    pub(crate) modern_url: String,
    /// The legacy adapter's internal URL, and the gateway's (its `AccountHomes`).
    pub(crate) legacy_url: String,
    pub(crate) gateway_internal_url: String,
    /// The gateway's public URL.
    pub(crate) gateway_url: String,
    /// The settings the components were made with (home, dev keys, internal mode).
    pub(crate) settings: Settings,
    keys: dev::DevKeys,
    issuer: String,
}

impl Stack {
    pub(crate) fn token(&self, role: Role, subject: &str, ttl: Duration) -> anyhow::Result<String> {
        dev::mint(&self.keys, &self.issuer, role, subject, None, ttl)
            .with_context(|| format!("signing a dev token for {subject}"))
    }
}

async fn run_suite(
    settings: &Settings,
    options: &GatewayBenchOptions,
    clients: usize,
    nginx_binary: &Path,
    mut run: Run<'_>,
) -> anyhow::Result<()> {
    let scratch = tempfile::Builder::new()
        .prefix("corebank-bench-gateway-")
        .tempdir()
        .context("creating the benchmark's temporary folder")?;
    let stack = start_stack(settings, run.url(), scratch.path(), LEGACY_SEED_CUSTOMERS).await?;
    let outcome = measure(options, &mut run, nginx_binary, scratch.path(), &stack).await;
    stack.servers.stop().await?;
    let nginx_url = outcome?;
    report(options, clients, run.report(), &nginx_url)
}

/// Starts the stack on 127.0.0.1:0 with the gateway trusting dev keys in `home`, the mock
/// legacy core seeded with `legacy_seed` customers.
pub(crate) async fn start_stack(
    settings: &Settings,
    url: &str,
    home: &Path,
    legacy_seed: u32,
) -> anyhow::Result<Stack> {
    let mut settings = settings.clone();
    settings.home = home.to_path_buf();
    // The gateway trusts the dev keys under the benchmark's home, whatever the environment
    // says, and every port is a free one on 127.0.0.1.
    settings.jwt_jwks = None;
    settings.legacy_core_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // The benchmark runs the gateway on the dev keys it makes, as `up` does.
    settings.dev = true;
    let keys = dev::ensure_dev_keys(home).context("creating the benchmark's dev keys")?;
    let mut servers = Servers::new(&settings)?;
    settings.insecure_internal = matches!(servers.mode(), corebank_service::InternalMode::Insecure);

    // The modern side: ledger, deposits and payments on one server, calling each other
    // over gRPC (as `corebank bench payments`).
    let modern_url = servers.modern_side(&settings, url).await?;

    // The legacy side: the mock core and its adapter, as under `corebank up`.
    let (legacy_core, legacy_core_task, legacy_core_addr) =
        corebank_components::legacy_core(&settings, url, legacy_seed, servers.shutdown.clone())
            .await?;
    servers.keep_task(legacy_core_task);
    let adapter = corebank_components::legacy_adapter(&settings, url, legacy_core_addr)
        .await?
        .merge(legacy_core);
    let legacy_url = servers.serve(adapter).await?.internal_url();

    // The gateway, on a server of its own: one real network hop in front of the modules.
    let gateway = corebank_components::gateway(
        &settings,
        url,
        &corebank_gateway::app::Upstream {
            legacy_url: legacy_url.clone(),
            modern_url: modern_url.clone(),
            clients: corebank_components::clients_as(servers.mode(), component_names::GATEWAY)?,
        },
        servers.shutdown.clone(),
    )
    .await?;
    let gateway_server = servers.serve(gateway).await?;
    let gateway_internal_url = gateway_server.internal_url();
    let gateway_url = format!(
        "http://{}",
        gateway_server
            .public_addr
            .context("the gateway's server has no public listener")?
    );
    println!("gateway: modern side on {modern_url}, gateway on {gateway_url}");
    Ok(Stack {
        servers,
        modern_url,
        legacy_url,
        gateway_internal_url,
        gateway_url,
        keys,
        issuer: settings.jwt_issuer.clone(),
        settings,
    })
}

/// Sets up the accounts, starts nginx and runs the phases into `run`: nginx's URL.
async fn measure(
    options: &GatewayBenchOptions,
    run: &mut Run<'_>,
    nginx_binary: &Path,
    scratch: &Path,
    stack: &Stack,
) -> anyhow::Result<String> {
    // Long enough for set-up, every phase and slack.
    let ttl = Duration::from_secs(
        options
            .seconds
            .saturating_mul(PHASES + 2)
            .saturating_add(3_600),
    );
    let channel_token = stack.token(Role::Channel, "bench-channel", ttl)?;
    let http = setup::http_client()?;
    setup::route_product_to_modern(stack, &http, ttl).await?;
    println!(
        "gateway: opening and funding {} accounts through the gateway",
        options.accounts
    );
    let accounts =
        Arc::new(setup::open_accounts(stack, &http, &channel_token, options.accounts).await?);

    let mut nginx = Nginx::start(nginx_binary, scratch, &stack.gateway_url).await?;
    let nginx_url = nginx.url.clone();
    println!("gateway: nginx in front of the gateway on {nginx_url}");
    let outcome = async {
        // One check per path before measuring: the account is served by the modern side.
        for base in [&stack.gateway_url, &nginx_url] {
            setup::check_read(&http, base, &channel_token, &accounts).await?;
        }
        // One process serves Deposits and Payments on the modern side: a connection made to
        // its deposits certificate carries both the reads and the transfers.
        let channels = stack
            .servers
            .channels(
                component_names::GATEWAY,
                &stack.modern_url,
                component_names::DEPOSITS,
            )
            .await?;
        let authorization: Arc<str> = Arc::from(format!("Bearer {channel_token}"));
        let mut phase = 0;
        for (operation, what, prefix) in [
            (Operation::Read, "one balance read per request", "read"),
            (Operation::Transfer, "one transfer per request", "transfer"),
        ] {
            let paths = [
                (format!("direct_{prefix}"), Via::Direct),
                (
                    format!("gateway_{prefix}"),
                    Via::Http(stack.gateway_url.clone()),
                ),
                (
                    format!("nginx_gateway_{prefix}"),
                    Via::Http(nginx_url.clone()),
                ),
            ];
            let make = |via: &Via| {
                let (via, channels) = (via.clone(), &channels);
                let (accounts, authorization) = (&accounts, &authorization);
                move |index: usize| {
                    let channel = channel_for(channels, index)?;
                    Ok(Requests {
                        operation,
                        via: via.clone(),
                        deposits: DepositsClient::new(channel.clone()),
                        payments: PaymentsClient::new(channel),
                        // A client of its own per task: one keep-alive connection each.
                        http: setup::http_client()?,
                        accounts: Arc::clone(accounts),
                        authorization: Arc::clone(authorization),
                        rng: fastrand::Rng::with_seed(u64::try_from(index).unwrap_or(0) + 7),
                    })
                }
            };
            for (name, via) in &paths {
                phase += 1;
                let what = format!("{what} ({phase} of {PHASES})");
                let result = run.closed_loop(name, &what, make(via)).await?;
                anyhow::ensure!(
                    result.succeeded > 0,
                    "{name}: no request succeeded ({} failed; the first: {})",
                    result.failures,
                    result.first_failure.as_deref().unwrap_or("none recorded")
                );
            }
            // The three paths at one rate, which the slowest of them keeps up with.
            let mut slowest = (f64::INFINITY, String::new());
            for (name, _) in &paths {
                let throughput_per_s = run.result(name)?.throughput_per_s;
                if throughput_per_s < slowest.0 {
                    slowest = (throughput_per_s, name.clone());
                }
            }
            for (name, via) in &paths {
                phase += 1;
                let what = format!("{what} ({phase} of {PHASES})");
                run.open_loop(name, &what, &slowest.1, make(via)).await?;
            }
        }
        Ok::<_, anyhow::Error>(())
    }
    .await;
    nginx.stop().await;
    outcome?;
    Ok(nginx_url)
}

/// A client sending one `operation` at a time along `via`, between random accounts.
struct Requests {
    operation: Operation,
    via: Via,
    deposits: DepositsClient<Channel>,
    payments: PaymentsClient<Channel>,
    http: reqwest::Client,
    accounts: Arc<Vec<String>>,
    authorization: Arc<str>,
    rng: fastrand::Rng,
}

impl Client for Requests {
    async fn send(&mut self) -> Result<(), String> {
        match self.operation {
            Operation::Read => self.read().await,
            Operation::Transfer => self.transfer().await,
        }
    }
}

impl Requests {
    /// One balance read of a random account.
    async fn read(&mut self) -> Result<(), String> {
        let account = &self.accounts[self.rng.usize(..self.accounts.len())];
        match &self.via {
            Via::Direct => grpc_outcome(
                self.deposits
                    .get_account(dpb::GetAccountRequest {
                        account_id: account.clone(),
                    })
                    .await,
            ),
            Via::Http(base) => {
                let request = self
                    .http
                    .get(format!("{base}/v1/accounts/{account}/balance"))
                    .header(reqwest::header::AUTHORIZATION, &*self.authorization);
                expect_status(request, 200).await
            }
        }
    }

    /// One internal transfer between two random accounts.
    async fn transfer(&mut self) -> Result<(), String> {
        let (from, to) = two_accounts(&mut self.rng, &self.accounts);
        let amount = small_amount(&mut self.rng);
        match &self.via {
            Via::Direct => grpc_outcome(
                self.payments
                    .internal_transfer(crate::payments::internal_transfer(from, to, amount))
                    .await,
            ),
            Via::Http(base) => {
                let request = self
                    .http
                    .post(format!("{base}/v1/transfers"))
                    .header(reqwest::header::AUTHORIZATION, &*self.authorization)
                    .header("idempotency-key", Uuid::new_v4().to_string())
                    .json(&json!({
                        "from_account_id": from,
                        "to_account_id": to,
                        "amount": amount,
                        "currency": "EUR",
                    }));
                expect_status(request, 201).await
            }
        }
    }
}

/// Sends `request` and reads its whole answer: a failure unless the status is `expected`.
async fn expect_status(request: reqwest::RequestBuilder, expected: u16) -> Result<(), String> {
    let response = request.send().await.map_err(|error| error.to_string())?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|error| error.to_string())?;
    if status == expected {
        Ok(())
    } else {
        Err(format!("{status} {}", String::from_utf8_lossy(&body)))
    }
}

/// The gateway's added p99 beside nginx's for one operation.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct AddedLatency {
    gateway_added_p99_ms: f64,
    nginx_added_p99_ms: f64,
    /// gateway's added p99 ÷ nginx's; null when nginx added nothing measurable.
    ratio: Option<f64>,
    target_ratio_max: f64,
    target_met: bool,
    gateway_added_p50_ms: f64,
    nginx_added_p50_ms: f64,
}

impl AddedLatency {
    /// For the operation `operation` (`read`), of the results whose names end in `suffix`
    /// (the closed loop's, or the open loop's).
    fn of(report: &Report, operation: &str, suffix: &str) -> anyhow::Result<AddedLatency> {
        let find = |path: &str| report.find(&format!("{path}{operation}{suffix}"));
        let (direct, gateway, nginx) =
            (find("direct_")?, find("gateway_")?, find("nginx_gateway_")?);
        let gateway_added = gateway.p99_ms - direct.p99_ms;
        let nginx_added = nginx.p99_ms - gateway.p99_ms;
        let ratio = (nginx_added > 0.0).then(|| gateway_added / nginx_added);
        Ok(AddedLatency {
            gateway_added_p99_ms: gateway_added,
            nginx_added_p99_ms: nginx_added,
            ratio,
            target_ratio_max: ADDED_P99_RATIO_MAX,
            target_met: ratio.is_some_and(|ratio| ratio <= ADDED_P99_RATIO_MAX),
            gateway_added_p50_ms: gateway.p50_ms - direct.p50_ms,
            nginx_added_p50_ms: nginx.p50_ms - gateway.p50_ms,
        })
    }
}

fn report(
    options: &GatewayBenchOptions,
    clients: usize,
    mut report: Report,
    nginx_url: &str,
) -> anyhow::Result<()> {
    let added = |suffix: &str| -> anyhow::Result<[(&'static str, AddedLatency); 2]> {
        Ok([
            ("read", AddedLatency::of(&report, "read", suffix)?),
            ("transfer", AddedLatency::of(&report, "transfer", suffix)?),
        ])
    };
    let (added, added_open_loop) = (added("")?, added(OPEN_LOOP_SUFFIX)?);
    let transfer_ratio = report.find("gateway_transfer")?.ratio_to_baseline;

    report.print(&format!(
        "; {clients} clients, {} s per result",
        options.seconds
    ));
    for (title, added) in [("added p99", &added), ("open loop", &added_open_loop)] {
        println!();
        println!(
            "{:<10} {:>22} {:>22} {:>8} {:>14}",
            title, "gateway (- direct) ms", "nginx (- gateway) ms", "ratio", "target <= 1.5"
        );
        for (name, added) in added {
            println!(
                "{:<10} {:>22.2} {:>22.2} {:>8} {:>14}",
                name,
                added.gateway_added_p99_ms,
                added.nginx_added_p99_ms,
                added
                    .ratio
                    .map_or_else(|| "n/a".to_owned(), |ratio| format!("{ratio:.2}")),
                if added.target_met { "met" } else { "missed" }
            );
        }
    }
    println!(
        "gateway_transfer / pgbench tps: {transfer_ratio:.2} (target >= {TRANSFER_RATIO_TO_BASELINE_MIN:.0}: {})",
        if transfer_ratio >= TRANSFER_RATIO_TO_BASELINE_MIN {
            "met"
        } else {
            "missed"
        }
    );
    // A failure's text helps here more than anywhere: a proxy's refusal says which hop.
    for result in report.closed.iter_mut().chain(&mut report.open) {
        if let Some(failure) = &result.first_failure {
            result.extra.insert("first_failure".into(), json!(failure));
        }
    }
    let mut figures = Map::new();
    for (field, [(_, read), (_, transfer)]) in [
        ("added_latency", added),
        ("added_latency_open_loop", added_open_loop),
    ] {
        figures.insert(field.into(), json!({ "read": read, "transfer": transfer }));
    }
    figures.insert(
        "gateway_transfer_ratio_to_baseline".into(),
        json!(transfer_ratio),
    );
    figures.insert(
        "target_gateway_transfer_ratio_to_baseline_min".into(),
        json!(TRANSFER_RATIO_TO_BASELINE_MIN),
    );
    report.write_json(
        options.run.json.as_deref(),
        json!({
            "accounts": options.accounts,
            "nginx": nginx_url,
            "http": "HTTP/1.1 keep-alive, one connection per client",
            "grpc_channels": GRPC_CHANNELS,
        }),
        figures,
    )
}
