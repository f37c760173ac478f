//! `corebank bench <suite>`: benchmarks measured against a baseline run in the same
//! invocation on the same PostgreSQL server. Durable settings throughout (fsync and
//! synchronous_commit on): a private server is started for the run unless DATABASE_URL is set.

use std::path::PathBuf;
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use corebank_api::ledger::v1 as pb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::Db;
use corebank_db::local::{LocalPostgres, PgBinaries, ServerTuning, free_port};
use corebank_db::url::{host_and_port, url_for};
use corebank_kernel::{AccountId, JournalEntryId, SystemClock};
use corebank_service::internal::component_names;
use corebank_service::internal::pki::dev::DevCa;
use corebank_service::{InternalMode, ServeOptions, Settings};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Options of `corebank bench ledger`.
#[derive(Debug, Clone, clap::Args)]
pub struct LedgerBenchOptions {
    /// Seconds each measured phase runs (pgbench, uniform, hot account).
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Concurrent ledger clients, each sending one transfer per request.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Customer accounts the uniform phase spreads transfers over.
    #[arg(long, default_value_t = 10_000)]
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

/// HTTP/2 connections the clients share.
const CHANNELS: usize = 8;
/// Accounts opened and funded per request during set-up.
const SETUP_BATCH: usize = 1_000;

pub(crate) struct Server {
    /// How to reach the server as its superuser, with database `postgres`.
    pub(crate) admin: tokio_postgres::Config,
    binaries_dir: Option<PathBuf>,
    pub(crate) private: Option<(LocalPostgres, tempfile::TempDir)>,
}

pub async fn ledger(settings: &Settings, options: &LedgerBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.clients > 0 && options.accounts >= 2 && options.seconds > 0,
        "clients, accounts and seconds must be positive"
    );
    let server = start_server(settings).await?;
    let outcome = run_ledger_suite(settings, options, &server).await;
    stop_server(&server).await?;
    outcome
}

pub(crate) async fn start_server(settings: &Settings) -> anyhow::Result<Server> {
    if let Some(url) = &settings.database_url {
        let mut admin: tokio_postgres::Config = url.parse().context("DATABASE_URL")?;
        admin.dbname("postgres");
        println!("server: DATABASE_URL ({})", corebank_db::url::redact(url));
        return Ok(Server {
            admin,
            binaries_dir: PgBinaries::find().ok().map(|b| b.dir().to_path_buf()),
            private: None,
        });
    }
    let binaries = PgBinaries::find()?;
    let dir = tempfile::Builder::new()
        .prefix("corebank-bench-")
        .tempdir()?;
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let local = LocalPostgres::new(binaries.clone(), dir.path().join("pg"));
    let port = free_port()?;
    println!(
        "server: private PostgreSQL in {} on 127.0.0.1:{port} (fsync on, synchronous_commit on)",
        local.data_dir().display()
    );
    let starting = local.clone();
    tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
        starting.init(&ServerTuning::durable())?;
        starting.start(port)?;
        Ok(())
    })
    .await??;
    let admin: tokio_postgres::Config = LocalPostgres::url(port, "postgres").parse()?;
    Ok(Server {
        admin,
        binaries_dir: Some(binaries.dir().to_path_buf()),
        private: Some((local, dir)),
    })
}

async fn admin_client(config: &tokio_postgres::Config) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .context("connecting to the benchmark's server")?;
    tokio::spawn(connection);
    Ok(client)
}

async fn scratch_database(server: &Server, name: &str) -> anyhow::Result<()> {
    let admin = admin_client(&server.admin).await?;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await?;
    Ok(())
}

pub(crate) async fn drop_database(server: &Server, name: &str) {
    if let Ok(admin) = admin_client(&server.admin).await {
        let _ = admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
    }
}

/// pgbench's built-in TPC-B on a scratch database: its tps.
async fn pgbench(server: &Server, scale: u32, clients: u32, seconds: u64) -> anyhow::Result<f64> {
    let pgbench = server
        .binaries_dir
        .as_ref()
        .map(|dir| dir.join("pgbench"))
        .filter(|path| path.is_file())
        .or_else(|| Some(PathBuf::from("pgbench")))
        .context("pgbench not found")?;
    let database = "corebank_bench_pgbench";
    scratch_database(server, database).await?;
    let (host, port) = host_and_port(&server.admin);
    let user = server.admin.get_user().unwrap_or("postgres").to_owned();
    let password = server
        .admin
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let run = |args: Vec<String>| {
        let pgbench = pgbench.clone();
        let (host, user, password) = (host.clone(), user.clone(), password.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let mut command = Process::new(&pgbench);
                command
                    .args(["-h", &host, "-p", &port.to_string(), "-U", &user])
                    .args(&args)
                    .arg(database);
                if let Some(password) = password {
                    command.env("PGPASSWORD", password);
                }
                // TPC-B as pgbench is normally run: READ COMMITTED, whatever the server's default.
                command.env(
                    "PGOPTIONS",
                    "-c default_transaction_isolation=read\\ committed",
                );
                command.output()
            })
            .await?
            .context("running pgbench (install PostgreSQL's client package, which has it)")
        }
    };
    println!("baseline: pgbench -i -s {} (loading)", scale);
    let init = run(vec![
        "-i".into(),
        "-q".into(),
        "-s".into(),
        scale.to_string(),
    ])
    .await?;
    if !init.status.success() {
        bail!(
            "pgbench -i failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    println!(
        "baseline: pgbench -c {} -j 2 -T {} (TPC-B)",
        clients, seconds
    );
    let bench = run(vec![
        "-c".into(),
        clients.to_string(),
        "-j".into(),
        "2".into(),
        "-T".into(),
        seconds.to_string(),
    ])
    .await?;
    drop_database(server, database).await;
    let stdout = String::from_utf8_lossy(&bench.stdout);
    if !bench.status.success() {
        bail!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&bench.stderr)
        );
    }
    stdout
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        })
        .with_context(|| format!("no tps line in pgbench's output:\n{stdout}"))
}

/// How the pgbench baseline runs.
pub(crate) struct Baseline {
    pub(crate) scale: u32,
    pub(crate) clients: u32,
    pub(crate) seconds: u64,
}

/// Runs the pgbench baseline, then creates the scratch database `database` with every
/// migration applied: the baseline's tps and the database's URL.
pub(crate) async fn baseline_then_database(
    settings: &Settings,
    server: &Server,
    baseline: Baseline,
    database: &str,
) -> anyhow::Result<(f64, String)> {
    let tps = pgbench(server, baseline.scale, baseline.clients, baseline.seconds).await?;
    println!("baseline: pgbench_tpcb {tps:.0} tps");
    scratch_database(server, database).await?;
    let url = url_for(&server.admin, database);
    let db = Db::connect_lazy(&settings.db_settings(&url, "bench"))?;
    corebank_db::migrate::apply(&db, &corebank_db::migrate::embedded()?).await?;
    db.close();
    Ok((tps, url))
}

/// Stops the benchmark's private PostgreSQL, if it started one.
pub(crate) async fn stop_server(server: &Server) -> anyhow::Result<()> {
    if let Some((local, _dir)) = &server.private {
        println!("stopping the benchmark's PostgreSQL");
        let local = local.clone();
        tokio::task::spawn_blocking(move || local.stop()).await??;
    }
    Ok(())
}

#[derive(Debug, Clone, serde::Serialize)]
struct PhaseResult {
    name: &'static str,
    throughput_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    ratio_to_baseline: f64,
    transfers: u64,
    failures: u64,
    seconds: f64,
}

async fn run_ledger_suite(
    settings: &Settings,
    options: &LedgerBenchOptions,
    server: &Server,
) -> anyhow::Result<()> {
    let database = "corebank_bench_ledger";
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

    let shutdown = CancellationToken::new();
    let ledger_db = Db::connect_lazy(
        &settings
            .db_settings(&url, "ledger")
            .with_search_path("ledger"),
    )?;
    let component = corebank_ledger::grpc::component(
        ledger_db,
        Arc::new(SystemClock),
        corebank_ledger::LedgerConfig::default(),
        shutdown.clone(),
    );
    let server_shutdown = CancellationToken::new();
    let mode = internal_mode(settings)?;
    let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let running = corebank_service::serve(
        component,
        loopback,
        loopback,
        ServeOptions {
            requests_in_flight_max: 4_096,
            shutdown_grace: Duration::from_secs(5),
            metrics_public: false,
            internal: mode.clone(),
        },
        server_shutdown.clone(),
    )
    .await?;
    // The benchmark's clients stand in for deposits, which posts to the ledger.
    let clients = corebank_components::clients_as(&mode, component_names::DEPOSITS)?;
    let mut channels = Vec::with_capacity(CHANNELS);
    for _ in 0..CHANNELS {
        channels.push(
            clients
                .endpoint(&running.internal_url(), component_names::LEDGER)?
                .connect()
                .await?,
        );
    }

    println!("ledger: opening and funding {} accounts", options.accounts);
    let (customers, cash, hot) = set_up(&channels[0], options.accounts).await?;

    let mut results = Vec::new();
    for (name, hot_account) in [("uniform", None), ("hot_account", Some(hot.clone()))] {
        println!(
            "ledger: {name}: {} clients, one transfer per request, {} s",
            options.clients, options.seconds
        );
        let before = batch_totals();
        let phase = run_phase(&channels, &customers, hot_account, options).await?;
        let after = batch_totals();
        let batches = after.0 - before.0;
        if batches > 0.0 {
            println!(
                "ledger: {name}: {batches:.0} batches, {:.1} entries and {:.2} ms each on average",
                (after.1 - before.1) / batches,
                (after.2 - before.2) * 1_000.0 / batches
            );
        }
        let result = PhaseResult {
            name,
            ratio_to_baseline: phase.throughput / tps,
            throughput_per_s: phase.throughput,
            p50_ms: phase.p50_ms,
            p99_ms: phase.p99_ms,
            transfers: phase.transfers,
            failures: phase.failures,
            seconds: phase.seconds,
        };
        println!(
            "ledger: {name}: {:.0} transfers/s, p50 {:.1} ms, p99 {:.1} ms, {:.2}x pgbench ({} failures)",
            result.throughput_per_s,
            result.p50_ms,
            result.p99_ms,
            result.ratio_to_baseline,
            result.failures
        );
        results.push(result);
    }
    let _ = cash;

    let mut client = LedgerClient::new(channels[0].clone());
    let trial = client
        .get_trial_balance(pb::GetTrialBalanceRequest::default())
        .await?
        .into_inner();
    let balanced = trial.difference_by_currency.values().all(|d| d == "0");
    server_shutdown.cancel();
    running.stopped().await?;
    shutdown.cancel();
    drop_database(server, database).await;

    println!();
    println!(
        "suite ledger (baseline pgbench_tpcb {tps:.0} tps; books balanced after the run: {balanced})"
    );
    println!(
        "{:<12} {:>14} {:>9} {:>9} {:>10}",
        "result", "transfers/s", "p50 ms", "p99 ms", "x pgbench"
    );
    for r in &results {
        println!(
            "{:<12} {:>14.0} {:>9.1} {:>9.1} {:>10.2}",
            r.name, r.throughput_per_s, r.p50_ms, r.p99_ms, r.ratio_to_baseline
        );
    }
    if let Some(path) = &options.json {
        let json = serde_json::json!({
            "suite": "ledger",
            "baseline": { "name": "pgbench_tpcb", "tps": tps },
            "results": results,
            "config": {
                "clients": options.clients,
                "accounts": options.accounts,
                "seconds": options.seconds,
                "pgbench_scale": options.pgbench_scale,
                "pgbench_clients": options.pgbench_clients,
                "books_balanced": balanced,
            },
        });
        write_json(path, &json)?;
    }
    anyhow::ensure!(
        balanced,
        "the trial balance did not sum to zero after the run"
    );
    Ok(())
}

/// (batches, entries in them, seconds spent) so far, from the ledger's own metrics.
fn batch_totals() -> (f64, f64, f64) {
    let rendered = corebank_service::metrics::handle().render();
    let value = |name: &str| {
        rendered
            .lines()
            .find(|line| line.starts_with(name) && line[name.len()..].starts_with(' '))
            .and_then(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("corebank_ledger_batch_size_count"),
        value("corebank_ledger_batch_size_sum"),
        value("corebank_ledger_batch_duration_seconds_sum"),
    )
}

fn account_request(
    code: String,
    account_type: pb::AccountType,
    limit: pb::LimitKind,
    shards: u32,
) -> pb::CreateAccountRequest {
    pb::CreateAccountRequest {
        id: AccountId::generate().to_string(),
        name: code.clone(),
        code,
        currency: "EUR".to_owned(),
        r#type: account_type.into(),
        limit: Some(pb::BalanceLimit {
            kind: limit.into(),
            limit_amount: String::new(),
        }),
        balance_shards: shards,
        ..Default::default()
    }
}

fn transfer(debit: &str, credit: &str, amount: String) -> pb::CreateTransferRequest {
    pb::CreateTransferRequest {
        id: JournalEntryId::generate().to_string(),
        debit_account_id: debit.to_owned(),
        credit_account_id: credit.to_owned(),
        amount,
        currency: "EUR".to_owned(),
        ..Default::default()
    }
}

/// Opens the customers, the bank's cash and the hot income account, and funds every customer.
async fn set_up(channel: &Channel, count: usize) -> anyhow::Result<(Vec<String>, String, String)> {
    let mut client = LedgerClient::new(channel.clone());
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mut requests = vec![
        account_request(
            format!("cash-{run}"),
            pb::AccountType::Asset,
            pb::LimitKind::None,
            1,
        ),
        account_request(
            format!("fees-{run}"),
            pb::AccountType::Income,
            pb::LimitKind::None,
            16,
        ),
    ];
    requests.extend((0..count).map(|i| {
        account_request(
            format!("customer-{run}-{i}"),
            pb::AccountType::Liability,
            pb::LimitKind::DebitsMustNotExceedCredits,
            1,
        )
    }));
    let mut ids = Vec::with_capacity(requests.len());
    for chunk in requests.chunks(SETUP_BATCH) {
        let response = client
            .create_accounts(pb::CreateAccountsRequest {
                accounts: chunk.to_vec(),
            })
            .await?
            .into_inner();
        for result in response.results {
            match result.outcome {
                Some(pb::account_result::Outcome::Account(account)) => ids.push(account.id),
                other => bail!("opening an account failed: {other:?}"),
            }
        }
    }
    let cash = ids[0].clone();
    let hot = ids[1].clone();
    let customers: Vec<String> = ids[2..].to_vec();
    for chunk in customers.chunks(SETUP_BATCH) {
        let transfers = chunk
            .iter()
            .map(|customer| transfer(&cash, customer, "1000000.00".to_owned()))
            .collect();
        let response = client
            .create_transfers(pb::CreateTransfersRequest { transfers })
            .await?
            .into_inner();
        if let Some(failed) = response
            .results
            .iter()
            .find(|r| !matches!(r.outcome, Some(pb::entry_result::Outcome::Entry(_))))
        {
            bail!("funding failed: {failed:?}");
        }
    }
    Ok((customers, cash, hot))
}

struct Phase {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    transfers: u64,
    failures: u64,
    seconds: f64,
}

async fn run_phase(
    channels: &[Channel],
    customers: &[String],
    hot: Option<String>,
    options: &LedgerBenchOptions,
) -> anyhow::Result<Phase> {
    let customers = Arc::new(customers.to_vec());
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(options.clients);
    for client_index in 0..options.clients {
        let mut client = LedgerClient::new(channels[client_index % channels.len()].clone());
        let customers = Arc::clone(&customers);
        let hot = hot.clone();
        let mut rng = fastrand::Rng::with_seed(u64::try_from(client_index).unwrap_or(0) + 1);
        tasks.push(tokio::spawn(async move {
            let mut latencies_us: Vec<u32> = Vec::with_capacity(8_192);
            let mut failures = 0_u64;
            while Instant::now() < deadline {
                let debit = &customers[rng.usize(..customers.len())];
                let credit = match &hot {
                    Some(hot) => hot.clone(),
                    None => loop {
                        let candidate = &customers[rng.usize(..customers.len())];
                        if candidate != debit {
                            break candidate.clone();
                        }
                    },
                };
                let amount = format!("0.{:02}", rng.u32(1..100));
                let sent = Instant::now();
                let response = client
                    .create_transfer(transfer(debit, &credit, amount))
                    .await;
                let elapsed = u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX);
                match response {
                    Ok(_) => latencies_us.push(elapsed),
                    Err(_) => failures += 1,
                }
            }
            (latencies_us, failures)
        }));
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (mut task_latencies, task_failures) = task.await?;
        latencies.append(&mut task_latencies);
        failures += task_failures;
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = summarize(latencies, seconds);
    Ok(Phase {
        throughput: summary.throughput_per_s,
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        transfers: summary.count,
        failures,
        seconds,
    })
}

/// Throughput and latency percentiles of one measured phase.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Summary {
    pub(crate) throughput_per_s: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p99_ms: f64,
    /// Requests that succeeded.
    pub(crate) count: u64,
}

/// Summarises the latencies (in µs) of the requests that succeeded during `seconds`.
pub(crate) fn summarize(mut latencies_us: Vec<u32>, seconds: f64) -> Summary {
    latencies_us.sort_unstable();
    let count = u64::try_from(latencies_us.len()).unwrap_or(u64::MAX);
    Summary {
        throughput_per_s: f64::from(u32::try_from(count).unwrap_or(u32::MAX)) / seconds,
        p50_ms: percentile_ms(&latencies_us, 50),
        p99_ms: percentile_ms(&latencies_us, 99),
        count,
    }
}

/// The `percent`th percentile of latencies sorted in µs, in ms (0 when there are none).
pub(crate) fn percentile_ms(sorted_us: &[u32], percent: usize) -> f64 {
    let Some(last) = sorted_us.len().checked_sub(1) else {
        return 0.0;
    };
    let index = (sorted_us.len() * percent / 100).min(last);
    sorted_us
        .get(index)
        .map_or(0.0, |latency_us| f64::from(*latency_us) / 1_000.0)
}

/// Writes a suite's figures (DESIGN.md's format) to `path` and says so.
pub(crate) fn write_json(
    path: &std::path::Path,
    figures: &serde_json::Value,
) -> anyhow::Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(figures)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("figures written to {}", path.display());
    Ok(())
}

/// The internal network a benchmark runs on: mutual TLS with a development CA made in
/// memory for the run (every component's certificate), as in production; plain text only
/// with `COREBANK_INSECURE_INTERNAL=true`, to measure what TLS costs.
pub fn internal_mode(settings: &Settings) -> anyhow::Result<InternalMode> {
    if settings.insecure_internal {
        println!("internal calls: plain text (COREBANK_INSECURE_INTERNAL=true)");
        return Ok(InternalMode::Insecure);
    }
    let ca = DevCa::generate(&settings.tls_trust_domain, "benchmark")?;
    println!("internal calls: mutual TLS (a development CA made for this run)");
    Ok(InternalMode::MutualTls(ca.pki(component_names::ALL)?))
}

/// `settings` with a rail key made for this run when `COREBANK_RAIL_KEYS` is not set (the
/// benchmark runs the bank's side of the rail, which refuses to start without one).
pub fn with_bench_rail_keys(settings: &Settings) -> anyhow::Result<Settings> {
    let mut settings = settings.clone();
    if settings.rail_keys.is_none() {
        settings.rail_keys =
            Some(corebank_payments::rail_signature::RailKeys::generate_setting("bench")?);
    }
    Ok(settings)
}
