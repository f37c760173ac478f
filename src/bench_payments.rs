//! `corebank bench payments`: internal transfers through the payments gRPC API (payments →
//! deposits → ledger, each over gRPC as in production, on one server), against pgbench's
//! TPC-B on the same PostgreSQL in the same run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_db::Db;
use corebank_service::internal::component_names;
use corebank_service::{BoundListeners, Component, InternalMode, ServeOptions, Settings};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bench::{Baseline, baseline_then_database, drop_database, start_server, stop_server};

/// Options of `corebank bench payments`.
#[derive(Debug, Clone, clap::Args)]
pub struct PaymentsBenchOptions {
    /// Seconds the measured phase runs (and pgbench's).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent clients, each sending one internal transfer per request.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Deposit accounts the transfers spread over.
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

pub async fn payments(settings: &Settings, options: &PaymentsBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.clients > 0 && options.accounts >= 2 && options.seconds > 0,
        "clients and seconds must be positive and accounts at least 2"
    );
    let server = start_server(settings).await?;
    let outcome = run_suite(settings, options, &server).await;
    stop_server(&server).await?;
    outcome
}

async fn run_suite(
    settings: &Settings,
    options: &PaymentsBenchOptions,
    server: &crate::bench::Server,
) -> anyhow::Result<()> {
    let database = "corebank_bench_payments";
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

    // Ledger, deposits and payments on one server, calling each other over gRPC.
    let shutdown = CancellationToken::new();
    let mode = crate::bench::internal_mode(settings)?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let listeners = BoundListeners::bind(loopback, loopback).await?;
    let own = format!(
        "{}://{}",
        if matches!(mode, InternalMode::Insecure) {
            "http"
        } else {
            "https"
        },
        listeners.internal_addr()?
    );
    let settings = &crate::bench::with_bench_rail_keys(settings)?;
    let component = Component::new("bench")
        .merge(corebank_components::ledger(
            settings,
            &url,
            shutdown.clone(),
        )?)
        .merge(corebank_components::deposits(
            settings,
            &url,
            &own,
            &mode,
            shutdown.clone(),
        )?)
        .merge(corebank_components::payments(
            settings,
            &url,
            &own,
            &format!("{own}{}", corebank_payments::rail_sim::BASE),
            &mode,
            shutdown.clone(),
        )?);
    let server_shutdown = CancellationToken::new();
    let running = corebank_service::serve_on(
        listeners,
        component,
        ServeOptions {
            requests_in_flight_max: 4_096,
            shutdown_grace: Duration::from_secs(5),
            metrics_public: false,
            internal: mode.clone(),
        },
        server_shutdown.clone(),
    )
    .await?;
    // The benchmark's clients stand in for the gateway, which calls payments.
    let clients = corebank_components::clients_as(&mode, component_names::GATEWAY)?;

    println!(
        "payments: opening and funding {} deposit accounts",
        options.accounts
    );
    let accounts = open_accounts(settings, &mode, &url, &own, options.accounts).await?;
    let accounts = Arc::new(accounts);
    let mut channels = Vec::new();
    for _ in 0..8 {
        channels.push(
            clients
                .endpoint(&own, component_names::PAYMENTS)?
                .connect()
                .await?,
        );
    }
    println!(
        "payments: internal_transfer: {} clients, one transfer per request, {} s",
        options.clients, options.seconds
    );
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..options.clients {
        let mut payments = PaymentsClient::new(channels[client % channels.len()].clone());
        let accounts = Arc::clone(&accounts);
        let mut rng = fastrand::Rng::with_seed(u64::try_from(client).unwrap_or(0) + 3);
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::with_capacity(8_192);
            let mut failures = 0_u64;
            while Instant::now() < deadline {
                let from = &accounts[rng.usize(..accounts.len())];
                let to = loop {
                    let to = &accounts[rng.usize(..accounts.len())];
                    if to != from {
                        break to;
                    }
                };
                let sent = Instant::now();
                let answer = payments
                    .internal_transfer(pb::InternalTransferRequest {
                        request_id: Uuid::new_v4().to_string(),
                        from_account_id: from.clone(),
                        to_account_id: to.clone(),
                        amount: format!("0.{:02}", rng.u32(1..100)),
                        currency: "EUR".to_owned(),
                        description: String::new(),
                    })
                    .await;
                match answer {
                    Ok(_) => latencies
                        .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Err(_) => failures += 1,
                }
            }
            (latencies, failures)
        }));
    }
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mut task_latencies, task_failures) = task.await?;
        latencies.append(&mut task_latencies);
        failures += task_failures;
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let percentile = |p: usize| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = (latencies.len() * p / 100).min(latencies.len() - 1);
        f64::from(latencies[index]) / 1_000.0
    };
    let transfers = u32::try_from(latencies.len()).unwrap_or(u32::MAX);
    let throughput = f64::from(transfers) / seconds;
    let (p50, p99) = (percentile(50), percentile(99));
    server_shutdown.cancel();
    running.stopped().await?;
    shutdown.cancel();
    drop_database(server, database).await;

    println!();
    println!("suite payments (baseline pgbench_tpcb {tps:.0} tps)");
    println!(
        "{:<18} {:>12} {:>9} {:>9} {:>10}",
        "result", "transfers/s", "p50 ms", "p99 ms", "x pgbench"
    );
    println!(
        "{:<18} {:>12.0} {:>9.1} {:>9.1} {:>10.2}   ({failures} failures)",
        "internal_transfer",
        throughput,
        p50,
        p99,
        throughput / tps
    );
    if let Some(path) = &options.json {
        let json = serde_json::json!({
            "suite": "payments",
            "baseline": { "name": "pgbench_tpcb", "tps": tps },
            "results": [{
                "name": "internal_transfer",
                "throughput_per_s": throughput,
                "p50_ms": p50,
                "p99_ms": p99,
                "ratio_to_baseline": throughput / tps,
                "transfers": transfers,
                "failures": failures,
                "seconds": seconds,
            }],
            "config": {
                "clients": options.clients,
                "accounts": options.accounts,
                "seconds": options.seconds,
                "pgbench_scale": options.pgbench_scale,
                "pgbench_clients": options.pgbench_clients,
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    Ok(())
}

/// Opens and funds `count` deposit accounts through the deposits module.
async fn open_accounts(
    settings: &Settings,
    mode: &InternalMode,
    url: &str,
    own: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let db = Db::connect_lazy(
        &settings
            .db_settings(url, "bench")
            .with_search_path("deposits"),
    )?;
    let deposits = corebank_deposits::app::Deposits::new(
        db.clone(),
        corebank_components::ledger_client(
            &corebank_components::clients_as(mode, component_names::DEPOSITS)?,
            own,
        )?,
        Arc::new(corebank_kernel::SystemClock),
    )?;
    deposits
        .create_product(corebank_deposits::app::NewProduct {
            code: "bench-current".to_owned(),
            name: "Benchmark current account".to_owned(),
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
        .await?;
    let mut accounts = Vec::with_capacity(count);
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..count {
        let deposits = deposits.clone();
        opening.spawn(async move {
            let account = deposits
                .open_account(
                    &Uuid::new_v4().to_string(),
                    &format!("bench-{i}"),
                    "bench-current",
                    None,
                )
                .await?;
            let id = account.id.to_string();
            deposits
                .cash(
                    "deposit",
                    &Uuid::new_v4().to_string(),
                    &id,
                    "1000000.00",
                    "EUR",
                    "",
                )
                .await?;
            Ok::<_, corebank_deposits::domain::error::DepositsError>(id)
        });
        if opening.len() >= 32
            && let Some(done) = opening.join_next().await
        {
            accounts.push(done??);
        }
    }
    while let Some(done) = opening.join_next().await {
        accounts.push(done??);
    }
    db.close();
    Ok(accounts)
}
