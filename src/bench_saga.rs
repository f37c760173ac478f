//! `corebank bench saga`: the demo saga with three database steps, driven by one executor
//! and then by two executor replicas side by side, against pgbench's TPC-B on the same server
//! in the same run. Each client starts a saga, waits until it settles, and starts the next.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corebank_db::Db;
use corebank_saga::demo::{self, DemoOptions};
use corebank_saga::{Executor, ExecutorConfig, NewSaga, Registry, Status, Watchers};
use corebank_service::Settings;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bench::{
    Baseline, Server, baseline_then_database, drop_database, start_server, stop_server,
};

/// Options of `corebank bench saga`.
#[derive(Debug, Clone, clap::Args)]
pub struct SagaBenchOptions {
    /// Seconds each measured phase runs (one replica, two replicas).
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,
    /// Concurrent clients, each starting a saga and waiting for it to settle (the same
    /// concurrency as the pgbench baseline's `-c 32`).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Demo accounts the sagas move money between.
    #[arg(long, default_value_t = 10_000)]
    pub accounts: usize,
    /// Database connections per executor replica.
    #[arg(long, default_value_t = 24)]
    pub pool: usize,
    /// Seconds pgbench's TPC-B baseline runs.
    #[arg(long, default_value_t = 10)]
    pub pgbench_seconds: u64,
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

#[derive(Debug, Clone, serde::Serialize)]
struct SagaPhase {
    name: &'static str,
    replicas: usize,
    throughput_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    ratio_to_baseline: f64,
    sagas: u64,
    failures: u64,
    seconds: f64,
}

pub async fn saga(settings: &Settings, options: &SagaBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.clients > 0 && options.accounts >= 2 && options.seconds > 0 && options.pool > 0,
        "clients, pool and seconds must be positive and accounts at least 2"
    );
    let server = start_server(settings).await?;
    let outcome = run_suite(settings, options, &server).await;
    stop_server(&server).await?;
    outcome
}

async fn run_suite(
    settings: &Settings,
    options: &SagaBenchOptions,
    server: &Server,
) -> anyhow::Result<()> {
    let database = "corebank_bench_saga";
    let (tps, url) = baseline_then_database(
        settings,
        server,
        Baseline {
            scale: options.pgbench_scale,
            clients: options.pgbench_clients,
            seconds: options.pgbench_seconds,
        },
        database,
    )
    .await?;

    let mut db_settings = settings.db_settings(&url, "demo").with_search_path("demo");
    db_settings.pool_size_max = options.pool;
    let setup = Db::connect_lazy(&db_settings)?;
    println!("saga: opening {} demo accounts", options.accounts);
    let accounts: Vec<String> = (0..options.accounts)
        .map(|i| format!("bench-{i}"))
        .collect();
    {
        let client = setup.client().await?;
        for chunk in accounts.chunks(1_000) {
            client
                .execute(
                    "INSERT INTO demo_accounts (id, balance) SELECT unnest($1::TEXT[]), 1000000000",
                    &[&chunk.to_vec()],
                )
                .await?;
        }
    }
    let accounts = Arc::new(accounts);

    let mut results = Vec::new();
    for (name, replicas) in [("replicas_1", 1_usize), ("replicas_2", 2)] {
        println!(
            "saga: {name}: {replicas} executor(s), {} clients, three database steps per saga, {} s",
            options.clients, options.seconds
        );
        let phase = run_phase(&db_settings, replicas, &accounts, options).await?;
        let result = SagaPhase {
            name,
            replicas,
            ratio_to_baseline: phase.0 / tps,
            throughput_per_s: phase.0,
            p50_ms: phase.1,
            p99_ms: phase.2,
            sagas: phase.3,
            failures: phase.4,
            seconds: phase.5,
        };
        println!(
            "saga: {name}: {:.0} sagas/s, p50 {:.1} ms, p99 {:.1} ms start to completion, {:.2}x pgbench ({} failures)",
            result.throughput_per_s,
            result.p50_ms,
            result.p99_ms,
            result.ratio_to_baseline,
            result.failures
        );
        results.push(result);
    }

    // Every saga that completed moved its amount exactly once: the books still hold the
    // total they started with.
    let client = setup.client().await?;
    let total: i64 = client
        .query_one(
            "SELECT coalesce(sum(balance), 0)::INT8 FROM demo_accounts",
            &[],
        )
        .await?
        .get(0);
    let expected = i64::try_from(options.accounts)? * 1_000_000_000;
    let open: i64 = client
        .query_one(
            "SELECT count(*) FROM saga_instances WHERE status NOT IN ('completed', 'compensated')",
            &[],
        )
        .await?
        .get(0);
    drop(client);
    setup.close();
    drop_database(server, database).await;

    println!();
    println!(
        "suite saga (baseline pgbench_tpcb {tps:.0} tps; money conserved: {}; sagas left open: {open})",
        total == expected
    );
    println!(
        "{:<12} {:>10} {:>9} {:>9} {:>10}",
        "result", "sagas/s", "p50 ms", "p99 ms", "x pgbench"
    );
    for r in &results {
        println!(
            "{:<12} {:>10.0} {:>9.1} {:>9.1} {:>10.2}",
            r.name, r.throughput_per_s, r.p50_ms, r.p99_ms, r.ratio_to_baseline
        );
    }
    if let Some(path) = &options.json {
        let json = serde_json::json!({
            "suite": "saga",
            "baseline": { "name": "pgbench_tpcb", "tps": tps },
            "results": results,
            "config": {
                "clients": options.clients,
                "accounts": options.accounts,
                "seconds": options.seconds,
                "pool_per_replica": options.pool,
                "steps": 3,
                "pgbench_scale": options.pgbench_scale,
                "pgbench_clients": options.pgbench_clients,
                "pgbench_seconds": options.pgbench_seconds,
                "money_conserved": total == expected,
                "sagas_left_open": open,
            },
        });
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("figures written to {}", path.display());
    }
    anyhow::ensure!(
        total == expected,
        "money was created or lost: {total} against {expected}"
    );
    anyhow::ensure!(open == 0, "{open} sagas did not settle");
    Ok(())
}

/// (sagas/s, p50 ms, p99 ms, sagas, failures, seconds)
async fn run_phase(
    db_settings: &corebank_db::DbSettings,
    replicas: usize,
    accounts: &Arc<Vec<String>>,
    options: &SagaBenchOptions,
) -> anyhow::Result<(f64, f64, f64, u64, u64, f64)> {
    let shutdown = CancellationToken::new();
    let watchers = Watchers::new();
    let mut executors = Vec::with_capacity(replicas);
    let mut pools = Vec::with_capacity(replicas);
    for _ in 0..replicas {
        let db = Db::connect_lazy(db_settings)?;
        let mut registry = Registry::new();
        registry.register(demo::definition(
            &db,
            &DemoOptions {
                remote_notify: false,
                ..DemoOptions::default()
            },
        ))?;
        let executor = Executor::with_watchers(
            db.clone(),
            Arc::new(registry),
            ExecutorConfig {
                max_in_flight: options.clients.max(1) * 2,
                ..ExecutorConfig::new()
            },
            Arc::clone(&watchers),
        );
        executor.spawn(shutdown.clone());
        executors.push(executor);
        pools.push(db);
    }
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(options.clients);
    for client in 0..options.clients {
        let executor = executors[client % replicas].clone();
        let accounts = Arc::clone(accounts);
        let mut rng = fastrand::Rng::with_seed(u64::try_from(client).unwrap_or(0) + 11);
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(4_096);
            let mut failures = 0_u64;
            while Instant::now() < deadline {
                let from = &accounts[rng.usize(..accounts.len())];
                let to = &accounts[rng.usize(..accounts.len())];
                let id = Uuid::new_v4();
                let settled = executor.watchers().watch(id);
                let sent = Instant::now();
                let start = executor
                    .start(NewSaga {
                        id,
                        saga_type: demo::SAGA_TYPE.to_owned(),
                        input: demo::input(from, to, rng.i64(1..1_000), None),
                        business_key: String::new(),
                    })
                    .await;
                let outcome = match start {
                    Ok(_) => tokio::time::timeout(Duration::from_secs(30), settled).await,
                    Err(_) => {
                        failures += 1;
                        continue;
                    }
                };
                match outcome {
                    Ok(Ok(Status::Completed)) => latencies_us
                        .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    _ => failures += 1,
                }
            }
            (latencies_us, failures)
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
    shutdown.cancel();
    for db in pools {
        db.close();
    }
    latencies.sort_unstable();
    let percentile = |p: usize| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let index = (latencies.len() * p / 100).min(latencies.len() - 1);
        f64::from(latencies[index]) / 1_000.0
    };
    let sagas = u64::try_from(latencies.len()).unwrap_or(u64::MAX);
    Ok((
        f64::from(u32::try_from(sagas).unwrap_or(u32::MAX)) / seconds,
        percentile(50),
        percentile(99),
        sagas,
        failures,
        seconds,
    ))
}
