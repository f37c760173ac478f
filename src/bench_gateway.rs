//! `corebank bench gateway`: what the strangler-fig gateway costs. The same read and the
//! same internal transfer are called directly on the modern module over gRPC, through the
//! gateway (REST/JSON, JWT, routing, idempotency, audit), and through nginx as a plain
//! reverse proxy in front of the gateway, to price one ordinary proxy hop on the same
//! request; against pgbench's TPC-B on the same PostgreSQL in the same run.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1 as ppb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_gateway::auth::dev::{self, Role};
use corebank_service::internal::{InternalClients, component_names};
use corebank_service::{
    BoundListeners, Component, InternalMode, RunningServer, ServeOptions, Settings,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::bench::{
    Baseline, Server, baseline_then_database, drop_database, start_server, stop_server, summarize,
    write_json,
};

/// Options of `corebank bench gateway`.
#[derive(Debug, Clone, clap::Args)]
pub struct GatewayBenchOptions {
    /// Seconds each of the six measured phases runs (and pgbench's).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent clients in each phase, one request at a time each (default: pgbench's
    /// clients).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Accounts opened and funded through the gateway, which the requests spread over.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: usize,
    /// pgbench's scale factor (`pgbench -i -s`).
    #[arg(long, default_value_t = 10)]
    pub pgbench_scale: u32,
    /// pgbench's clients (`-c`); it runs with 2 threads (`-j 2`).
    #[arg(long, default_value_t = 32)]
    pub pgbench_clients: u32,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// HTTP/2 connections the direct gRPC clients share.
const GRPC_CHANNELS: usize = 8;
/// Requests in flight while accounts are opened and funded.
const SETUP_IN_FLIGHT_MAX: usize = 32;
/// The product the benchmark's accounts belong to, routed to the modern side.
const PRODUCT_CODE: &str = "BENCH-GW-CURRENT";
/// What each account is funded with: far more than the phases can move out of it.
const FUNDING_AMOUNT: &str = "1000000.00";
/// Customers the mock legacy core seeds (the legacy side is up, but serves no benchmark
/// traffic: the bench product is routed to the modern side).
const LEGACY_SEED_CUSTOMERS: u32 = 2;
/// Idle keep-alive connections nginx keeps to the gateway.
const NGINX_UPSTREAM_KEEPALIVE: u32 = 64;
/// How long nginx may take to accept connections.
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);
const NGINX_START_POLL: Duration = Duration::from_millis(50);
/// How often a running phase says how long it has left.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);
/// The targets of issue 7: the gateway adds at most this many times nginx's hop at p99…
const ADDED_P99_RATIO_MAX: f64 = 1.5;
/// …and moves at least this many internal transfers per pgbench TPC-B transaction.
const TRANSFER_RATIO_TO_BASELINE_MIN: f64 = 1.0;
/// Requests each server lets in at once.
const SERVER_REQUESTS_IN_FLIGHT_MAX: usize = 4_096;
const SERVER_SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

pub async fn gateway(settings: &Settings, options: &GatewayBenchOptions) -> anyhow::Result<()> {
    let clients = options
        .clients
        .unwrap_or_else(|| usize::try_from(options.pgbench_clients).unwrap_or(1));
    anyhow::ensure!(
        clients > 0 && options.accounts >= 2 && options.seconds > 0,
        "clients and seconds must be positive and accounts at least 2"
    );
    // Before anything slow: without nginx there is nothing to compare with.
    let nginx = find_nginx()?;
    let server = start_server(settings).await?;
    let outcome = run_suite(settings, options, clients, &nginx, &server).await;
    stop_server(&server).await?;
    outcome
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

#[derive(Debug, Clone, serde::Serialize)]
struct PhaseResult {
    name: &'static str,
    throughput_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    ratio_to_baseline: f64,
    requests: u64,
    failures: u64,
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
}

/// The modern side, the legacy side and the gateway, each on its own server on 127.0.0.1.
struct Stack {
    modern_url: String,
    /// The benchmark's direct calls stand in for the gateway (its certificate).
    clients: InternalClients,
    gateway_url: String,
    servers: Vec<RunningServer>,
    legacy_core_task: tokio::task::JoinHandle<()>,
    server_shutdown: CancellationToken,
    shutdown: CancellationToken,
    keys: dev::DevKeys,
    issuer: String,
}

impl Stack {
    async fn stop(self) -> anyhow::Result<()> {
        self.server_shutdown.cancel();
        for server in self.servers {
            server.stopped().await?;
        }
        self.shutdown.cancel();
        self.legacy_core_task
            .await
            .context("the legacy core task failed")?;
        Ok(())
    }

    fn token(&self, role: Role, subject: &str, ttl: Duration) -> anyhow::Result<String> {
        dev::mint(&self.keys, &self.issuer, role, subject, None, ttl)
            .with_context(|| format!("signing a dev token for {subject}"))
    }
}

async fn run_suite(
    settings: &Settings,
    options: &GatewayBenchOptions,
    clients: usize,
    nginx_binary: &Path,
    server: &Server,
) -> anyhow::Result<()> {
    let database = "corebank_bench_gateway";
    let (tps, url) = baseline_then_database(
        settings,
        server,
        Baseline {
            scale: options.pgbench_scale,
            clients: options.pgbench_clients,
            seconds: options.seconds,
        },
        database,
    )
    .await?;
    let scratch = tempfile::Builder::new()
        .prefix("corebank-bench-gateway-")
        .tempdir()
        .context("creating the benchmark's temporary folder")?;
    let stack = start_stack(settings, &url, scratch.path()).await?;
    let outcome = measure(options, clients, tps, nginx_binary, scratch.path(), &stack).await;
    stack.stop().await?;
    drop_database(server, database).await;
    let (results, nginx_url) = outcome?;
    report(options, clients, tps, &results, &nginx_url)
}

/// Starts the stack on 127.0.0.1:0 with the gateway trusting dev keys in `home`.
async fn start_stack(settings: &Settings, url: &str, home: &Path) -> anyhow::Result<Stack> {
    let mut settings = settings.clone();
    settings.home = home.to_path_buf();
    // The gateway trusts the dev keys under the benchmark's home, whatever the environment
    // says, and every port is a free one on 127.0.0.1.
    settings.jwt_jwks = None;
    settings.legacy_core_addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    // The benchmark runs the gateway on the dev keys it makes, as `up` does.
    settings.dev = true;
    let mut settings = crate::bench::with_bench_rail_keys(&settings)?;
    let keys = dev::ensure_dev_keys(home).context("creating the benchmark's dev keys")?;
    let mode = crate::bench::internal_mode(&settings)?;
    settings.insecure_internal = matches!(mode, InternalMode::Insecure);
    let scheme = if settings.insecure_internal {
        "http"
    } else {
        "https"
    };
    let shutdown = CancellationToken::new();
    let server_shutdown = CancellationToken::new();
    let serve_options = || ServeOptions {
        requests_in_flight_max: SERVER_REQUESTS_IN_FLIGHT_MAX,
        shutdown_grace: SERVER_SHUTDOWN_GRACE,
        metrics_public: false,
        internal: mode.clone(),
    };
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));

    // The modern side: ledger, deposits and payments on one server, calling each other
    // over gRPC (as `corebank bench payments`).
    let listeners = BoundListeners::bind(loopback, loopback).await?;
    let modern_url = format!("{scheme}://{}", listeners.internal_addr()?);
    let modern = Component::new("bench-modern")
        .merge(corebank_components::ledger(
            &settings,
            url,
            shutdown.clone(),
        )?)
        .merge(corebank_components::deposits(
            &settings,
            url,
            &modern_url,
            &mode,
            shutdown.clone(),
        )?)
        .merge(corebank_components::payments(
            &settings,
            url,
            &modern_url,
            &format!("{modern_url}{}", corebank_payments::rail_sim::BASE),
            &mode,
            shutdown.clone(),
        )?);
    let mut servers = vec![
        corebank_service::serve_on(listeners, modern, serve_options(), server_shutdown.clone())
            .await?,
    ];

    // The legacy side: the mock core and its adapter, as under `corebank up`.
    let (legacy_core, legacy_core_task, legacy_core_addr) =
        corebank_components::legacy_core(&settings, url, LEGACY_SEED_CUSTOMERS, shutdown.clone())
            .await?;
    let adapter = corebank_components::legacy_adapter(&settings, url, legacy_core_addr)
        .await?
        .merge(legacy_core);
    let legacy = corebank_service::serve(
        adapter,
        loopback,
        loopback,
        serve_options(),
        server_shutdown.clone(),
    )
    .await?;
    let legacy_url = legacy.internal_url();
    servers.push(legacy);

    // The gateway, on a server of its own: one real network hop in front of the modules.
    let gateway = corebank_components::gateway(
        &settings,
        url,
        &corebank_gateway::app::Upstream {
            legacy_url,
            modern_url: modern_url.clone(),
            clients: corebank_components::clients_as(&mode, component_names::GATEWAY)?,
        },
        shutdown.clone(),
    )
    .await?;
    let gateway = corebank_service::serve(
        gateway,
        loopback,
        loopback,
        serve_options(),
        server_shutdown.clone(),
    )
    .await?;
    let gateway_url = format!(
        "http://{}",
        gateway
            .public_addr
            .context("the gateway's server has no public listener")?
    );
    servers.push(gateway);
    println!("gateway: modern side on {modern_url}, gateway on {gateway_url}");
    Ok(Stack {
        modern_url,
        clients: corebank_components::clients_as(&mode, component_names::GATEWAY)?,
        gateway_url,
        servers,
        legacy_core_task,
        server_shutdown,
        shutdown,
        keys,
        issuer: settings.jwt_issuer.clone(),
    })
}

/// Sets up the accounts, starts nginx and runs the six phases: the results and nginx's URL.
async fn measure(
    options: &GatewayBenchOptions,
    clients: usize,
    tps: f64,
    nginx_binary: &Path,
    scratch: &Path,
    stack: &Stack,
) -> anyhow::Result<(Vec<PhaseResult>, String)> {
    // Long enough for set-up, seven phases and slack.
    let ttl = Duration::from_secs(options.seconds.saturating_mul(8).saturating_add(3_600));
    let channel_token = stack.token(Role::Channel, "bench-channel", ttl)?;
    let http = http_client()?;
    route_product_to_modern(stack, &http, ttl).await?;
    println!(
        "gateway: opening and funding {} accounts through the gateway",
        options.accounts
    );
    let accounts = Arc::new(open_accounts(stack, &http, &channel_token, options.accounts).await?);

    let mut nginx = Nginx::start(nginx_binary, scratch, &stack.gateway_url).await?;
    let nginx_url = nginx.url.clone();
    println!("gateway: nginx in front of the gateway on {nginx_url}");
    let outcome = async {
        // One check per path before measuring: the account is served by the modern side.
        for base in [&stack.gateway_url, &nginx_url] {
            check_read(&http, base, &channel_token, &accounts).await?;
        }
        let mut channels = Vec::with_capacity(GRPC_CHANNELS);
        for _ in 0..GRPC_CHANNELS {
            // One process serves Deposits and Payments on the modern side: a connection made
            // to its deposits certificate carries both the reads and the transfers.
            channels.push(
                stack
                    .clients
                    .endpoint(&stack.modern_url, component_names::DEPOSITS)?
                    .connect()
                    .await?,
            );
        }
        let phases = [
            ("direct_read", Operation::Read, Via::Direct),
            (
                "gateway_read",
                Operation::Read,
                Via::Http(stack.gateway_url.clone()),
            ),
            (
                "nginx_gateway_read",
                Operation::Read,
                Via::Http(nginx_url.clone()),
            ),
            ("direct_transfer", Operation::Transfer, Via::Direct),
            (
                "gateway_transfer",
                Operation::Transfer,
                Via::Http(stack.gateway_url.clone()),
            ),
            (
                "nginx_gateway_transfer",
                Operation::Transfer,
                Via::Http(nginx_url.clone()),
            ),
        ];
        let mut results = Vec::with_capacity(phases.len());
        for (index, (name, operation, via)) in phases.into_iter().enumerate() {
            println!(
                "gateway: {name} ({} of 6): {clients} clients, one request at a time each, {} s",
                index + 1,
                options.seconds
            );
            let result = run_phase(
                name,
                operation,
                &via,
                &channels,
                &accounts,
                &channel_token,
                clients,
                options.seconds,
                tps,
            )
            .await?;
            println!(
                "gateway: {name}: {:.0}/s, p50 {:.2} ms, p99 {:.2} ms ({} failures)",
                result.throughput_per_s, result.p50_ms, result.p99_ms, result.failures
            );
            if let Some(failure) = &result.first_failure {
                println!("gateway: {name}: first failure: {failure}");
            }
            anyhow::ensure!(
                result.requests > 0,
                "{name}: no request succeeded ({} failed; the first: {})",
                result.failures,
                result.first_failure.as_deref().unwrap_or("none recorded")
            );
            results.push(result);
        }
        Ok::<_, anyhow::Error>(results)
    }
    .await;
    nginx.stop().await;
    Ok((outcome?, nginx_url))
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    // HTTP/1.1 with keep-alive, as a channel's backend would call: one connection per
    // client task in the phases, reused for every request.
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// A product on the modern side, routed there for every operation the benchmark uses,
/// through the admin API's four eyes: an operator proposes, an approver approves.
async fn route_product_to_modern(
    stack: &Stack,
    http: &reqwest::Client,
    ttl: Duration,
) -> anyhow::Result<()> {
    DepositsClient::new(
        stack
            .clients
            .endpoint(&stack.modern_url, component_names::DEPOSITS)?
            .connect_lazy(),
    )
    .create_product(dpb::CreateProductRequest {
        code: PRODUCT_CODE.to_owned(),
        name: "Gateway benchmark current account".to_owned(),
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
    .context("creating the benchmark's product on the modern side")?;
    let operator = stack.token(Role::Operator, "bench-operator", ttl)?;
    let approver = stack.token(Role::Approver, "bench-approver", ttl)?;
    let rules: Vec<Value> = ["accounts.write", "accounts.read", "cash", "transfers"]
        .into_iter()
        .map(|operation| {
            json!({
                "product": PRODUCT_CODE,
                "operation": operation,
                "default_side": "modern",
                "shadow": false,
            })
        })
        .collect();
    let (status, proposed) = send_json(
        http.post(format!("{}/admin/v1/routes/proposals", stack.gateway_url))
            .bearer_auth(&operator)
            .json(&json!({ "rules": rules, "reason": "corebank bench gateway" })),
    )
    .await?;
    anyhow::ensure!(
        status == 201,
        "proposing the benchmark's route: {status} {proposed}"
    );
    let id = proposed
        .get("id")
        .and_then(Value::as_str)
        .with_context(|| format!("no id in the proposal: {proposed}"))?;
    let (status, approved) = send_json(
        http.post(format!(
            "{}/admin/v1/routes/proposals/{id}/approve",
            stack.gateway_url
        ))
        .bearer_auth(&approver)
        .json(&json!({})),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "approving the benchmark's route: {status} {approved}"
    );
    println!(
        "gateway: {PRODUCT_CODE} routed to the modern side (proposed by bench-operator, approved by bench-approver)"
    );
    Ok(())
}

/// Sends a request: its status and JSON body (null when it has none).
async fn send_json(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await.context("calling the gateway")?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .context("reading the gateway's answer")?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Opens `count` accounts through the gateway and funds each with a deposit: their ids.
async fn open_accounts(
    stack: &Stack,
    http: &reqwest::Client,
    token: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let token: Arc<str> = Arc::from(token);
    let mut accounts = Vec::with_capacity(count);
    let mut opening = tokio::task::JoinSet::new();
    for index in 0..count {
        let (http, token, base) = (http.clone(), Arc::clone(&token), stack.gateway_url.clone());
        opening.spawn(async move {
            let (status, opened) = send_json(
                http.post(format!("{base}/v1/accounts"))
                    .bearer_auth(&token)
                    .header("idempotency-key", Uuid::new_v4().to_string())
                    .json(&json!({
                        "customer_id": format!("bench-customer-{index}"),
                        "product_code": PRODUCT_CODE,
                    })),
            )
            .await?;
            anyhow::ensure!(status == 201, "opening an account: {status} {opened}");
            let id = opened
                .get("id")
                .and_then(Value::as_str)
                .with_context(|| format!("no id in the opened account: {opened}"))?
                .to_owned();
            let (status, funded) = send_json(
                http.post(format!("{base}/v1/accounts/{id}/deposits"))
                    .bearer_auth(&token)
                    .header("idempotency-key", Uuid::new_v4().to_string())
                    .json(&json!({ "amount": FUNDING_AMOUNT, "currency": "EUR" })),
            )
            .await?;
            anyhow::ensure!(status == 201, "funding account {id}: {status} {funded}");
            Ok(id)
        });
        if opening.len() >= SETUP_IN_FLIGHT_MAX
            && let Some(done) = opening.join_next().await
        {
            accounts.push(done??);
        }
    }
    while let Some(done) = opening.join_next().await {
        accounts.push(done??);
    }
    Ok(accounts)
}

/// One balance read through `base`: it must succeed and be served by the modern side.
async fn check_read(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    accounts: &[String],
) -> anyhow::Result<()> {
    let account = accounts.first().context("no accounts")?;
    let response = http
        .get(format!("{base}/v1/accounts/{account}/balance"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reading a balance through {base}"))?;
    let status = response.status().as_u16();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == 200 && served_by == "modern",
        "reading a balance through {base}: {status}, served by {served_by:?}: {body}"
    );
    Ok(())
}

/// Runs `clients` clients for `seconds`, each sending one `operation` at a time along
/// `via`, between random accounts.
#[expect(
    clippy::too_many_arguments,
    reason = "one phase's whole description; a struct would only rename them"
)]
async fn run_phase(
    name: &'static str,
    operation: Operation,
    via: &Via,
    channels: &[Channel],
    accounts: &Arc<Vec<String>>,
    token: &str,
    clients: usize,
    seconds: u64,
    tps: f64,
) -> anyhow::Result<PhaseResult> {
    let authorization: Arc<str> = Arc::from(format!("Bearer {token}"));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let progress = tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(
            tokio::time::Instant::now() + PROGRESS_INTERVAL,
            PROGRESS_INTERVAL,
        );
        loop {
            ticks.tick().await;
            let left_s = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .round();
            if left_s < 1.0 {
                break;
            }
            println!("gateway: {name}: {left_s:.0} s left");
        }
    });
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let channel = channels
            .get(client % channels.len().max(1))
            .context("no gRPC channel")?
            .clone();
        let mut deposits = DepositsClient::new(channel.clone());
        let mut payments = PaymentsClient::new(channel);
        // A client of its own per task: one keep-alive connection each.
        let http = http_client()?;
        let via = via.clone();
        let accounts = Arc::clone(accounts);
        let authorization = Arc::clone(&authorization);
        let mut rng = fastrand::Rng::with_seed(u64::try_from(client).unwrap_or(0) + 7);
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(16_384);
            let mut failures = 0_u64;
            let mut first_failure: Option<String> = None;
            while Instant::now() < deadline {
                let from = &accounts[rng.usize(..accounts.len())];
                let sent = Instant::now();
                let answer = match (operation, &via) {
                    (Operation::Read, Via::Direct) => deposits
                        .get_account(dpb::GetAccountRequest {
                            account_id: from.clone(),
                        })
                        .await
                        .map(drop)
                        .map_err(|status| format!("{:?}: {}", status.code(), status.message())),
                    (Operation::Read, Via::Http(base)) => {
                        let request = http
                            .get(format!("{base}/v1/accounts/{from}/balance"))
                            .header(reqwest::header::AUTHORIZATION, &*authorization);
                        expect_status(request, 200).await
                    }
                    (Operation::Transfer, via) => {
                        let to = loop {
                            let to = &accounts[rng.usize(..accounts.len())];
                            if to != from {
                                break to;
                            }
                        };
                        let amount = format!("0.{:02}", rng.u32(1..100));
                        match via {
                            Via::Direct => payments
                                .internal_transfer(ppb::InternalTransferRequest {
                                    request_id: Uuid::new_v4().to_string(),
                                    from_account_id: from.clone(),
                                    to_account_id: to.clone(),
                                    amount,
                                    currency: "EUR".to_owned(),
                                    description: String::new(),
                                })
                                .await
                                .map(drop)
                                .map_err(|status| {
                                    format!("{:?}: {}", status.code(), status.message())
                                }),
                            Via::Http(base) => {
                                let request = http
                                    .post(format!("{base}/v1/transfers"))
                                    .header(reqwest::header::AUTHORIZATION, &*authorization)
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
                };
                let elapsed_us = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                match answer {
                    Ok(()) => latencies_us.push(elapsed_us),
                    Err(failure) => {
                        failures += 1;
                        first_failure.get_or_insert(failure);
                    }
                }
            }
            (latencies_us, failures, first_failure)
        }));
    }
    let mut latencies_us = Vec::new();
    let mut failures = 0;
    let mut first_failure = None;
    for task in tasks {
        let (mut task_latencies, task_failures, task_first) = task.await?;
        latencies_us.append(&mut task_latencies);
        failures += task_failures;
        first_failure = first_failure.or(task_first);
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.abort();
    let summary = summarize(latencies_us, seconds);
    Ok(PhaseResult {
        name,
        throughput_per_s: summary.throughput_per_s,
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        ratio_to_baseline: summary.throughput_per_s / tps,
        requests: summary.count,
        failures,
        seconds,
        first_failure,
    })
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

/// nginx as a plain reverse proxy in front of the gateway: a child process of this one,
/// killed when the benchmark ends (or when this value is dropped, on an error).
struct Nginx {
    child: tokio::process::Child,
    url: String,
}

/// Debian's nginx, or the first on PATH.
fn find_nginx() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/sbin/nginx"))
        .chain(on_path)
        .find(|path| path.is_file())
        .context(
            "nginx not found (neither /usr/sbin/nginx nor on PATH): the gateway benchmark \
             prices one nginx hop in front of the gateway; install Debian's package with \
             `apt-get install nginx-light`",
        )
}

impl Nginx {
    async fn start(binary: &Path, scratch: &Path, gateway_url: &str) -> anyhow::Result<Nginx> {
        let dir = scratch.join("nginx");
        for sub in ["", "client_body", "proxy"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let upstream = gateway_url
            .strip_prefix("http://")
            .with_context(|| format!("the gateway's URL {gateway_url} is not http://"))?;
        let port = corebank_db::local::free_port()?;
        let config = nginx_config(&dir, upstream, port);
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let error_log = dir.join("error.log");
        let mut child = tokio::process::Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "nginx exited at start ({status}): {}",
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if started.elapsed() > NGINX_START_TIMEOUT {
                let _ = child.start_kill();
                bail!(
                    "nginx did not listen on {addr} within {} s: {}",
                    NGINX_START_TIMEOUT.as_secs(),
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            tokio::time::sleep(NGINX_START_POLL).await;
        }
        Ok(Nginx {
            child,
            url: format!("http://{addr}"),
        })
    }

    async fn stop(&mut self) {
        // One process (master_process off): killing it leaves nothing behind.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A plain reverse proxy: one process, HTTP/1.1 keep-alive on both sides, no access log,
/// everything it writes under `dir`.
fn nginx_config(dir: &Path, upstream: &str, port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream corebank_gateway {{
        server {upstream};
        keepalive {NGINX_UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://corebank_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
    )
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

fn added_latency(direct: &PhaseResult, gateway: &PhaseResult, nginx: &PhaseResult) -> AddedLatency {
    let gateway_added = gateway.p99_ms - direct.p99_ms;
    let nginx_added = nginx.p99_ms - gateway.p99_ms;
    let ratio = (nginx_added > 0.0).then(|| gateway_added / nginx_added);
    AddedLatency {
        gateway_added_p99_ms: gateway_added,
        nginx_added_p99_ms: nginx_added,
        ratio,
        target_ratio_max: ADDED_P99_RATIO_MAX,
        target_met: ratio.is_some_and(|ratio| ratio <= ADDED_P99_RATIO_MAX),
        gateway_added_p50_ms: gateway.p50_ms - direct.p50_ms,
        nginx_added_p50_ms: nginx.p50_ms - gateway.p50_ms,
    }
}

fn report(
    options: &GatewayBenchOptions,
    clients: usize,
    tps: f64,
    results: &[PhaseResult],
    nginx_url: &str,
) -> anyhow::Result<()> {
    let find = |name: &str| {
        results
            .iter()
            .find(|result| result.name == name)
            .with_context(|| format!("no result {name}"))
    };
    let read = added_latency(
        find("direct_read")?,
        find("gateway_read")?,
        find("nginx_gateway_read")?,
    );
    let transfer = added_latency(
        find("direct_transfer")?,
        find("gateway_transfer")?,
        find("nginx_gateway_transfer")?,
    );
    let transfer_ratio = find("gateway_transfer")?.ratio_to_baseline;

    println!();
    println!(
        "suite gateway (baseline pgbench_tpcb {tps:.0} tps; {clients} clients, {} s per result)",
        options.seconds
    );
    println!(
        "{:<24} {:>12} {:>9} {:>9} {:>10} {:>9}",
        "result", "requests/s", "p50 ms", "p99 ms", "x pgbench", "failures"
    );
    for r in results {
        println!(
            "{:<24} {:>12.0} {:>9.2} {:>9.2} {:>10.2} {:>9}",
            r.name, r.throughput_per_s, r.p50_ms, r.p99_ms, r.ratio_to_baseline, r.failures
        );
    }
    println!();
    println!(
        "{:<10} {:>22} {:>22} {:>8} {:>14}",
        "added p99", "gateway (- direct) ms", "nginx (- gateway) ms", "ratio", "target <= 1.5"
    );
    for (name, added) in [("read", &read), ("transfer", &transfer)] {
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
    println!(
        "gateway_transfer / pgbench tps: {transfer_ratio:.2} (target >= {TRANSFER_RATIO_TO_BASELINE_MIN:.0}: {})",
        if transfer_ratio >= TRANSFER_RATIO_TO_BASELINE_MIN {
            "met"
        } else {
            "missed"
        }
    );
    if let Some(path) = &options.json {
        let figures = json!({
            "suite": "gateway",
            "baseline": { "name": "pgbench_tpcb", "tps": tps },
            "results": results,
            "added_latency": { "read": read, "transfer": transfer },
            "gateway_transfer_ratio_to_baseline": transfer_ratio,
            "target_gateway_transfer_ratio_to_baseline_min": TRANSFER_RATIO_TO_BASELINE_MIN,
            "config": {
                "clients": clients,
                "accounts": options.accounts,
                "seconds": options.seconds,
                "pgbench_scale": options.pgbench_scale,
                "pgbench_clients": options.pgbench_clients,
                "nginx": nginx_url,
                "http": "HTTP/1.1 keep-alive, one connection per client",
                "grpc_channels": GRPC_CHANNELS,
            },
        });
        write_json(path, &figures)?;
    }
    Ok(())
}
