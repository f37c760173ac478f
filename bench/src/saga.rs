//! `corebank bench saga`: the demo saga with three database steps, driven by one executor
//! and then by two executor replicas side by side, against pgbench's TPC-B on the same server
//! in the same run. Each client starts a saga and waits until it settles.

use std::sync::Arc;
use std::time::Duration;

use corebank_db::{Db, DbSettings};
use corebank_saga::demo::{self, DemoOptions};
use corebank_saga::{Executor, ExecutorConfig, NewSaga, Registry, Status, Watchers};
use corebank_service::Settings;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::harness::load::Client;
use crate::harness::{Measure, OPEN_LOOP_IN_FLIGHT_PER_CLIENT, Run, RunOptions, Suite};

/// Options of `corebank bench saga`.
#[derive(Debug, Clone, clap::Args)]
pub struct SagaBenchOptions {
    /// Seconds each measured phase runs (one replica, two replicas, and each open loop).
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
    #[command(flatten)]
    pub run: RunOptions,
}

/// Steps of the demo saga, each a database transaction.
const STEPS: u32 = 3;
/// What each demo account starts with.
const OPENING_BALANCE: i64 = 1_000_000_000;
/// Accounts inserted per statement during set-up.
const SETUP_BATCH: usize = 1_000;
/// How long a client waits for its saga to settle before counting it as failed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);

impl Measure for SagaBenchOptions {
    fn suite(&self) -> anyhow::Result<Suite<'_>> {
        anyhow::ensure!(self.pool > 0, "pool must be positive");
        Ok(Suite::new(
            "saga",
            "sagas",
            self.clients,
            self.seconds,
            self.accounts,
            &self.run,
        )?
        .with_pgbench_seconds(self.pgbench_seconds))
    }

    async fn measure(&self, settings: &Settings, mut run: Run<'_>) -> anyhow::Result<()> {
        let mut db_settings = settings
            .db_settings(run.url(), "demo")
            .with_search_path("demo");
        db_settings.pool_size_max = self.pool;
        let setup = Db::connect_lazy(&db_settings)?;
        println!("saga: opening {} demo accounts", self.accounts);
        let accounts: Vec<String> = (0..self.accounts).map(|i| format!("bench-{i}")).collect();
        {
            let client = setup.client().await?;
            for chunk in accounts.chunks(SETUP_BATCH) {
                client
                    .execute(
                        "INSERT INTO demo_accounts (id, balance) SELECT unnest($1::TEXT[]), $2::INT8",
                        &[&chunk.to_vec(), &OPENING_BALANCE],
                    )
                    .await?;
            }
        }
        let accounts = Arc::new(accounts);

        for (name, replicas) in [("replicas_1", 1_usize), ("replicas_2", 2)] {
            let what = format!(
                "{replicas} executor(s), {STEPS} database steps per saga, latency from start to completion"
            );
            let executors = Executors::start(&db_settings, replicas, self.clients)?;
            let measured = run
                .both(name, &what, |index| {
                    Ok(Sagas {
                        executor: executors.for_client(index),
                        accounts: Arc::clone(&accounts),
                        rng: fastrand::Rng::with_seed(u64::try_from(index).unwrap_or(0) + 11),
                    })
                })
                .await;
            executors.stop();
            for result in measured? {
                result.extra.insert("replicas".into(), json!(replicas));
            }
        }

        // Every saga that completed moved its amount exactly once: the books still hold the
        // total they started with.
        let client = setup.client().await?;
        let total = count(
            &client,
            "SELECT coalesce(sum(balance), 0)::INT8 FROM demo_accounts",
        )
        .await?;
        let expected = i64::try_from(self.accounts)? * OPENING_BALANCE;
        let open = count(
            &client,
            "SELECT count(*) FROM saga_instances WHERE status NOT IN ('completed', 'compensated')",
        )
        .await?;
        drop(client);
        setup.close();

        run.finish(
            &format!(
                "; money conserved: {}; sagas left open: {open}",
                total == expected
            ),
            json!({
                "accounts": self.accounts,
                "pool_per_replica": self.pool,
                "steps": STEPS,
                "pgbench_seconds": self.pgbench_seconds,
                "money_conserved": total == expected,
                "sagas_left_open": open,
            }),
        )?;
        anyhow::ensure!(
            total == expected,
            "money was created or lost: {total} against {expected}"
        );
        anyhow::ensure!(open == 0, "{open} sagas did not settle");
        Ok(())
    }
}

/// The one INT8 the query `sql` answers: a sum or a count, to check the run by.
async fn count(client: &tokio_postgres::Client, sql: &str) -> anyhow::Result<i64> {
    Ok(client.query_one(sql, &[]).await?.get(0))
}

/// A phase's executor replicas, each with a pool of its own, sharing the watchers that tell
/// a client its saga has settled.
struct Executors {
    executors: Vec<Executor>,
    pools: Vec<Db>,
    shutdown: CancellationToken,
}

impl Executors {
    fn start(
        db_settings: &DbSettings,
        replicas: usize,
        clients: usize,
    ) -> anyhow::Result<Executors> {
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
                    // An open loop has this many sagas in flight at most.
                    max_in_flight: clients.max(1) * OPEN_LOOP_IN_FLIGHT_PER_CLIENT,
                    ..ExecutorConfig::new()
                },
                Arc::clone(&watchers),
            );
            executor.spawn(shutdown.clone());
            executors.push(executor);
            pools.push(db);
        }
        Ok(Executors {
            executors,
            pools,
            shutdown,
        })
    }

    /// The replica client `index` starts its sagas on: the clients take turns.
    fn for_client(&self, index: usize) -> Option<Executor> {
        self.executors
            .get(index % self.executors.len().max(1))
            .cloned()
    }

    fn stop(self) {
        self.shutdown.cancel();
        for db in self.pools {
            db.close();
        }
    }
}

/// A client starting one demo saga between two random accounts per request, and waiting for
/// it to complete.
struct Sagas {
    executor: Option<Executor>,
    accounts: Arc<Vec<String>>,
    rng: fastrand::Rng,
}

impl Client for Sagas {
    async fn send(&mut self) -> Result<(), String> {
        let executor = self.executor.as_ref().ok_or("no executor")?;
        let accounts = &self.accounts;
        let from = &accounts[self.rng.usize(..accounts.len())];
        let to = &accounts[self.rng.usize(..accounts.len())];
        let id = Uuid::new_v4();
        let settled = executor.watchers().watch(id);
        executor
            .start(NewSaga {
                id,
                saga_type: demo::SAGA_TYPE.to_owned(),
                input: demo::input(from, to, self.rng.i64(1..1_000), None),
                business_key: String::new(),
            })
            .await
            .map_err(|error| format!("starting a saga: {error}"))?;
        match tokio::time::timeout(SETTLE_TIMEOUT, settled).await {
            Ok(Ok(Status::Completed)) => Ok(()),
            Ok(Ok(status)) => Err(format!("the saga settled {status:?}")),
            Ok(Err(error)) => Err(format!("watching the saga: {error}")),
            Err(_) => Err(format!(
                "the saga did not settle within {} s",
                SETTLE_TIMEOUT.as_secs()
            )),
        }
    }
}
