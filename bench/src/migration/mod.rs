//! `corebank bench migration`: a whole product's accounts move from the legacy core to the
//! modern one while channels keep calling them (issue 15).
//!
//! The mock legacy core is seeded with `--accounts` customers, each with one account in
//! `LEGACY-CURRENT` (every fifth with a hold, every seventh with a loan paid into it). The
//! modern side gets the product's equivalent. Then `--clients` channel clients call those
//! accounts through the gateway (deposits, a hold placed and released, transfers between two
//! of them: across the cores while one has moved and the other not, answered 201 or 202 and
//! then followed to their end), each with an idempotency key and honouring `Retry-After` (the same key again
//! after the wait), while the whole product is migrated. When every account is settled the
//! load stops, the books are reconciled, and every account's balance is checked to the cent
//! against its exported balance and the effects its clients were told of.
//!
//! Reported (result `migration`): accounts a second, total time, whether it reconciled,
//! requests that failed with anything but a retried 503 (by code), effects applied twice or
//! lost (accounts whose balance is above or below what was acknowledged), and the wait on a
//! frozen account at p99 (from the request's first send to its answer, for every request the
//! gateway held for a move or answered 503); against pgbench's TPC-B on the same server in
//! the same run. Where a move's time went is reported per step of its saga (`move_steps`),
//! a transfer across the cores' per step of its (`crossing_steps`), and the client requests'
//! times by kind: operation and serving side (`request_kinds`), with the longest waits on a
//! frozen account named by kind, so that what sets the p99 is seen.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use corebank_api::legacy::v1 as lpb;
use corebank_api::legacy::v1::legacy_export_client::LegacyExportClient;
use corebank_api::migration::v1 as mpb;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use corebank_gateway::auth::dev::Role;
use corebank_service::Settings;
use corebank_service::internal::component_names;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::gateway::{Stack, setup::http_client, start_stack};
use crate::harness::cpu::{self, CpuUse};
use crate::harness::figures::precise;
use crate::harness::{RunOptions, Suite};

mod report;

use report::{Figures, report, sorted, step_times};

/// How many of the longest waits on a frozen account the report names.
const LONGEST_WAITS_SHOWN: usize = 5;
/// The product migrated: the mock core's current accounts.
const PRODUCT: &str = "LEGACY-CURRENT";
/// The target of issue 15: the whole product migrated and reconciled within this.
const TARGET_TOTAL_S: f64 = 600.0;
/// The goal for the wait on a frozen account, at p99.
const FREEZE_WAIT_P99_GOAL_MS: f64 = 1_000.0;

/// Options of `corebank bench migration`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrationBenchOptions {
    /// Customers the mock legacy core is seeded with, each with one account in the migrated
    /// product (the seed goes through the core's applications, one step at a time: large
    /// seeds take minutes before anything is measured).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: u32,
    /// Channel clients calling the accounts through the gateway while they move (0: the
    /// migration alone, to see what the load costs it).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Moves started a second at most (default: as many as the in-flight window lets).
    #[arg(long)]
    pub rate_per_s: Option<u32>,
    /// Moves under way at once at most (1 to 64; default 64).
    #[arg(long)]
    pub in_flight_max: Option<u32>,
    /// Seconds pgbench's baseline runs.
    #[arg(long, default_value_t = 30)]
    pub pgbench_seconds: u64,
    /// Give up when the migration has not settled within this many seconds.
    #[arg(long, default_value_t = 3_600)]
    pub timeout_s: u64,
    #[command(flatten)]
    pub run: RunOptions,
}

pub async fn run(settings: &Settings, options: &MigrationBenchOptions) -> anyhow::Result<()> {
    let accounts = usize::try_from(options.accounts).unwrap_or(usize::MAX);
    let suite = Suite::new(
        "migration",
        "accounts",
        options.clients.max(1),
        options.pgbench_seconds,
        accounts,
        &options.run,
    )?;
    suite
        .run(settings, async |run| {
            let url = run.url().to_owned();
            let baseline_tps = run.report().baseline_tps;
            let scratch = tempfile::Builder::new()
                .prefix("corebank-bench-migration-")
                .tempdir()
                .context("creating the benchmark's temporary folder")?;
            println!(
                "seeding the mock legacy core with {} customers (one step at a time)",
                options.accounts
            );
            let seeding = Instant::now();
            let mut stack = start_stack(settings, &url, scratch.path(), options.accounts).await?;
            println!("seeded in {:.0} s", seeding.elapsed().as_secs_f64());
            let outcome = measure(options, &url, &mut stack).await;
            stack.servers.stop().await?;
            let figures = outcome?;
            report(options, baseline_tps, &figures)
        })
        .await
}

/// One account as exported before the migration.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    posted: Decimal,
}

/// What the clients were told took effect, per account (acknowledged money in and out).
#[derive(Debug, Default)]
struct Ledgers {
    by_account: Mutex<BTreeMap<String, Decimal>>,
    /// Transfers across the cores answered 202 (still running): (id, from, to, amount),
    /// counted once they end.
    pending: Mutex<Vec<(String, String, String, Decimal)>>,
}

impl Ledgers {
    fn add(&self, account: &str, amount: Decimal) {
        let mut accounts = self.by_account.lock().unwrap_or_else(|e| e.into_inner());
        *accounts.entry(account.to_owned()).or_default() += amount;
    }
}

/// What the clients saw.
#[derive(Debug, Default)]
struct Seen {
    requests: u64,
    retried_503: u64,
    failed_by_code: BTreeMap<String, u64>,
    /// Every request's time, from its first sending to its answer, by kind: the operation
    /// and the side that served it (`x-served-by`), a transfer across the cores apart.
    kinds_us: BTreeMap<String, Vec<u32>>,
    /// Every wait on a frozen account.
    waits: Vec<Wait>,
}

/// A request's wait on a frozen account.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Wait {
    /// From the request's first sending to its answer.
    whole_us: u32,
    /// The part the freeze took: until the last sending, plus that sending's hold at the
    /// gateway (its `x-move-held-ms`); the rest is the request's own service.
    part_us: u32,
    kind: String,
}

async fn measure(
    options: &MigrationBenchOptions,
    url: &str,
    stack: &mut Stack,
) -> anyhow::Result<Figures> {
    let mode = stack.servers.mode().clone();
    let migration = corebank_components::migration(
        &stack.settings,
        url,
        &stack.gateway_internal_url,
        &stack.legacy_url,
        &stack.modern_url,
        &mode,
        stack.servers.shutdown.clone(),
    )?;
    let migration_url = stack.servers.serve(migration).await?.internal_url();
    // Channels call a gateway replica that knows where the migration component is: it runs
    // their transfers across the cores (ADR 0014). Replicas share the directory.
    let mut replica_settings = stack.settings.clone();
    replica_settings.gateway_migration_url = Some(migration_url.clone());
    let replica = corebank_components::gateway(
        &replica_settings,
        url,
        &corebank_gateway::app::Upstream {
            legacy_url: stack.legacy_url.clone(),
            modern_url: stack.modern_url.clone(),
            clients: corebank_components::clients_as(&mode, component_names::GATEWAY)?,
        },
        stack.servers.shutdown.clone(),
    )
    .await?;
    let replica = stack.servers.serve(replica).await?;
    stack.gateway_url = format!(
        "http://{}",
        replica
            .public_addr
            .context("the gateway replica's server has no public listener")?
    );
    let as_migration = corebank_components::clients_as(&mode, component_names::MIGRATION)?;
    corebank_gateway::products::seed_modern_equivalents(
        &as_migration,
        &stack.legacy_url,
        &stack.modern_url,
    )
    .await
    .context("giving the modern side the legacy core's products")?;
    let seeded = export(&as_migration, &stack.legacy_url).await?;
    anyhow::ensure!(
        seeded.len() >= 2,
        "the legacy core has {} {PRODUCT} accounts: at least 2 are needed",
        seeded.len()
    );
    println!("{} {PRODUCT} accounts exported", seeded.len());

    // The channel clients, until the migration settles.
    let token = stack.token(
        Role::Channel,
        "bench-migration",
        Duration::from_secs(86_400),
    )?;
    let ids: Arc<Vec<String>> = Arc::new(seeded.iter().map(|a| a.id.clone()).collect());
    let ledgers = Arc::new(Ledgers::default());
    let stop = CancellationToken::new();
    let mut clients = Vec::with_capacity(options.clients);
    for n in 0..options.clients {
        let mut client = Channel {
            http: http_client()?,
            base: stack.gateway_url.clone(),
            authorization: format!("Bearer {token}"),
            accounts: Arc::clone(&ids),
            ledgers: Arc::clone(&ledgers),
            rng: fastrand::Rng::with_seed(u64::try_from(n).unwrap_or(0)),
            seen: Seen::default(),
        };
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                client.one().await;
            }
            client.seen
        }));
    }
    // Let the load settle before the migration starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let gateway_as = corebank_components::clients_as(&mode, component_names::GATEWAY)?;
    let mut migrations = MigrationsClient::new(
        gateway_as
            .endpoint(&migration_url, component_names::MIGRATION)?
            .connect_lazy(),
    );
    let id = Uuid::new_v4().to_string();
    // One connection of the bench's own, for the CPU samples and the sagas' step history.
    let db = corebank_db::Db::connect_lazy(
        &stack
            .settings
            .db_settings(url, "bench")
            .with_search_path("migration"),
    )?;
    let sampler = db.client().await?;
    let cpu_before = cpu::sample(&sampler).await?;
    let started = Instant::now();
    migrations
        .start_migration(mpb::StartMigrationRequest {
            migration_id: id.clone(),
            product_code: PRODUCT.to_owned(),
            fraction: String::new(),
            dry_run: false,
            requested_by: "corebank bench migration".to_owned(),
            customer_ids: Vec::new(),
            rate_per_s: options.rate_per_s.unwrap_or(0),
            max_error_ratio: String::new(),
            in_flight_max: options.in_flight_max.unwrap_or(0),
        })
        .await
        .context("starting the migration")?;
    let plan_s = started.elapsed().as_secs_f64();
    println!("planned and started in {plan_s:.1} s");
    let settled = follow(&mut migrations, &id, started, options.timeout_s).await;
    let cpu = CpuUse::between(&cpu_before, &cpu::sample(&sampler).await?);
    stop.cancel();
    let mut seen = Seen::default();
    for client in clients {
        let client = client.await.context("a channel client")?;
        seen.requests += client.requests;
        seen.retried_503 += client.retried_503;
        for (code, count) in client.failed_by_code {
            *seen.failed_by_code.entry(code).or_default() += count;
        }
        seen.waits.extend(client.waits);
        for (kind, us) in client.kinds_us {
            seen.kinds_us.entry(kind).or_default().extend(us);
        }
    }
    let settled = settled?;
    settle_pending(stack, &token, &ledgers, &mut seen).await?;
    let reconciling = Instant::now();
    let run = migrations
        .reconcile(mpb::ReconcileRequest {
            run_id: Uuid::new_v4().to_string(),
            requested_by: "corebank bench migration".to_owned(),
        })
        .await
        .context("reconciling")?
        .into_inner();
    let reconcile_s = reconciling.elapsed().as_secs_f64();
    println!("reconciled in {reconcile_s:.1} s");
    for result in run.results.iter().filter(|result| !result.ok) {
        println!(
            "  break: {} ({}): expected {}, found {}; evidence {}",
            result.rule, result.subject, result.expected, result.actual, result.evidence
        );
    }
    let total_s = started.elapsed().as_secs_f64();
    let (doubled, lost) = check_balances(stack, &token, &seeded, &ledgers).await?;
    let steps = step_times(&sampler, &["account_move", "accounts_move"]).await?;
    let crossing_steps = step_times(&sampler, &["cross_side_transfer"]).await?;
    drop(sampler);
    db.close();
    Ok(Figures {
        accounts: u64::try_from(seeded.len()).unwrap_or(u64::MAX),
        moved: settled.moved,
        refused: settled.refused,
        failed_moves: settled.failed,
        total_s,
        plan_s,
        reconcile_s,
        reconciled: run.breaks == 0 && settled.failed == 0,
        breaks: run.breaks,
        requests: seen.requests,
        retried_503: seen.retried_503,
        failed_by_code: seen.failed_by_code,
        doubled,
        lost,
        freeze_waits_us: sorted(seen.waits.iter().map(|wait| wait.whole_us).collect()),
        frozen_parts_us: sorted(seen.waits.iter().map(|wait| wait.part_us).collect()),
        longest_waits: {
            let mut waits = seen.waits;
            waits.sort_unstable_by(|a, b| b.cmp(a));
            waits.truncate(LONGEST_WAITS_SHOWN);
            waits
        },
        latencies_us: sorted(seen.kinds_us.values().flatten().copied().collect()),
        kinds_us: seen
            .kinds_us
            .into_iter()
            .map(|(kind, us)| (kind, sorted(us)))
            .collect(),
        steps,
        crossing_steps,
        cpu,
    })
}

/// The product's accounts as the legacy books have them now.
async fn export(
    clients: &corebank_service::internal::InternalClients,
    legacy_url: &str,
) -> anyhow::Result<Vec<Seeded>> {
    let mut export = LegacyExportClient::new(
        clients
            .endpoint(legacy_url, component_names::LEGACY_ADAPTER)?
            .connect_lazy(),
    );
    let mut stream = export
        .export_accounts(lpb::ExportAccountsRequest {
            product_code: PRODUCT.to_owned(),
        })
        .await
        .context("exporting the legacy accounts")?
        .into_inner();
    let mut seeded = Vec::new();
    while let Some(account) = stream.message().await? {
        if account.closed_on.is_empty() {
            seeded.push(Seeded {
                id: account.account_id,
                posted: account.posted.parse().unwrap_or_default(),
            });
        }
    }
    Ok(seeded)
}

/// Follows the migration until no account is planned or moving, with a progress line.
async fn follow(
    migrations: &mut MigrationsClient<tonic::transport::Channel>,
    id: &str,
    started: Instant,
    timeout_s: u64,
) -> anyhow::Result<mpb::Migration> {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let listed = migrations
            .list_migrations(mpb::ListMigrationsRequest { limit: 1 })
            .await
            .context("following the migration")?
            .into_inner();
        let now = listed
            .migrations
            .into_iter()
            .find(|migration| migration.migration_id == id)
            .context("the migration is not listed")?;
        let total = now.planned + now.moving + now.moved + now.refused + now.failed;
        let done = now.moved + now.refused + now.failed;
        let elapsed = started.elapsed().as_secs_f64();
        let rate = precise(done) / elapsed.max(0.001);
        let eta = if rate > 0.0 {
            precise(total.saturating_sub(done)) / rate
        } else {
            0.0
        };
        println!(
            "migrating: {done}/{total} settled ({} moved, {} failed) in {elapsed:.0} s, {rate:.1}/s, ETA {eta:.0} s, status {}",
            now.moved, now.failed, now.status
        );
        if now.status == "done" {
            return Ok(now);
        }
        anyhow::ensure!(
            now.status != "stopped",
            "the migration stopped by itself: {}",
            now.control_reason
        );
        anyhow::ensure!(
            elapsed < precise(timeout_s),
            "the migration did not settle within --timeout-s {timeout_s}"
        );
    }
}

/// Accounts whose balance is above what was acknowledged (an effect applied twice) and below
/// it (an acknowledged effect lost), read through the gateway from each account's home.
async fn check_balances(
    stack: &Stack,
    token: &str,
    seeded: &[Seeded],
    ledgers: &Ledgers,
) -> anyhow::Result<(u64, u64)> {
    let http = http_client()?;
    let acknowledged = ledgers
        .by_account
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let (mut doubled, mut lost) = (0, 0);
    for (n, account) in seeded.iter().enumerate() {
        let expected = account.posted + acknowledged.get(&account.id).copied().unwrap_or_default();
        let answer: Value = http
            .get(format!("{}/v1/accounts/{}", stack.gateway_url, account.id))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let posted: Decimal = answer["balances"]["posted"]
            .as_str()
            .and_then(|text| text.parse().ok())
            .with_context(|| format!("account {}: {answer}", account.id))?;
        if posted > expected {
            doubled += 1;
        } else if posted < expected {
            lost += 1;
        }
        if n > 0 && n % 10_000 == 0 {
            println!("checked {n}/{} balances", seeded.len());
        }
    }
    Ok((doubled, lost))
}

/// Follows the transfers across the cores that were answered 202 to their end: completed
/// ones count in the ledgers, failed ones among the failed requests.
async fn settle_pending(
    stack: &Stack,
    token: &str,
    ledgers: &Ledgers,
    seen: &mut Seen,
) -> anyhow::Result<()> {
    let pending = std::mem::take(&mut *ledgers.pending.lock().unwrap_or_else(|e| e.into_inner()));
    if pending.is_empty() {
        return Ok(());
    }
    println!(
        "following {} transfers across the cores to their end",
        pending.len()
    );
    let http = http_client()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    for (id, from, to, amount) in pending {
        loop {
            let answer: Value = http
                .get(format!("{}/v1/transfers/{id}", stack.gateway_url))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            match answer["status"].as_str() {
                Some("completed") => {
                    ledgers.add(&from, -amount);
                    ledgers.add(&to, amount);
                    break;
                }
                Some("failed") => {
                    let code = answer["failure"]["code"].as_str().unwrap_or("no_code");
                    *seen
                        .failed_by_code
                        .entry(format!("transfer failed {code}"))
                        .or_default() += 1;
                    break;
                }
                _ if Instant::now() > deadline => {
                    anyhow::bail!("transfer {id} still pending after 2 minutes: {answer}");
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
    Ok(())
}

/// A channel's backend calling the accounts through the gateway.
struct Channel {
    http: reqwest::Client,
    base: String,
    authorization: String,
    accounts: Arc<Vec<String>>,
    ledgers: Arc<Ledgers>,
    rng: fastrand::Rng,
    seen: Seen,
}

/// How one request ended, after its retries.
enum Ended {
    Done(Value),
    /// Counted among the failed requests, by code.
    Failed,
}

impl Channel {
    /// One operation on random accounts: a deposit, a hold placed and released, or a
    /// transfer.
    async fn one(&mut self) {
        let account = self.accounts[self.rng.usize(..self.accounts.len())].clone();
        match self.rng.u8(0..3) {
            0 => {
                let amount = Decimal::new(100, 2);
                let path = format!("/v1/accounts/{account}/deposits");
                let body = json!({ "amount": amount.to_string(), "currency": "EUR" });
                if let Ended::Done(_) = self.call("deposit", &path, &body, 201).await {
                    self.ledgers.add(&account, amount);
                }
            }
            1 => {
                let path = format!("/v1/accounts/{account}/holds");
                let body = json!({ "amount": "0.50", "currency": "EUR", "reason": "bench" });
                if let Ended::Done(hold) = self.call("hold", &path, &body, 201).await {
                    let hold = hold["id"].as_str().unwrap_or_default().to_owned();
                    let path = format!("/v1/accounts/{account}/holds/{hold}/release");
                    let _ = self.call("release", &path, &json!({}), 200).await;
                }
            }
            _ => {
                let to = loop {
                    let to = &self.accounts[self.rng.usize(..self.accounts.len())];
                    if *to != account {
                        break to.clone();
                    }
                };
                let amount = Decimal::new(i64::from(self.rng.u32(1..100)), 2);
                let body = json!({
                    "from_account_id": account,
                    "to_account_id": to,
                    "amount": amount.to_string(),
                    "currency": "EUR",
                });
                if let Ended::Done(answer) =
                    self.call("transfer", "/v1/transfers", &body, 201).await
                {
                    if answer["status"] == "pending" {
                        // A transfer across the cores still running: counted once it ends.
                        let id = answer["id"].as_str().unwrap_or_default().to_owned();
                        self.ledgers
                            .pending
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push((id, account, to, amount));
                    } else {
                        self.ledgers.add(&account, -amount);
                        self.ledgers.add(&to, amount);
                    }
                }
            }
        }
    }

    /// POSTs `body` to `path` with one idempotency key, again after each 503's
    /// `Retry-After`, until it answers something else.
    async fn call(&mut self, kind: &str, path: &str, body: &Value, expected: u16) -> Ended {
        let key = Uuid::new_v4().to_string();
        // The wait on a frozen account runs from the first send, once the gateway held the
        // request for a move (`x-move-held-ms`) or answered it 503.
        let sent = Instant::now();
        let mut frozen = false;
        self.seen.requests += 1;
        loop {
            let last_sent = Instant::now();
            let answer = self
                .http
                .post(format!("{}{path}", self.base))
                .header(reqwest::header::AUTHORIZATION, &self.authorization)
                .header("idempotency-key", &key)
                .json(body)
                .send()
                .await;
            let response = match answer {
                Ok(response) => response,
                Err(error) => return self.failed(format!("transport: {error}")),
            };
            let status = response.status().as_u16();
            let served_by = response
                .headers()
                .get("x-served-by")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("unrouted")
                .to_owned();
            let held_ms = response
                .headers()
                .get("x-move-held-ms")
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.parse::<u64>().ok());
            frozen |= held_ms.is_some();
            if status == 503 {
                let wait = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|text| text.parse::<u64>().ok());
                if let Some(seconds) = wait {
                    frozen = true;
                    self.seen.retried_503 += 1;
                    tokio::time::sleep(Duration::from_secs(seconds)).await;
                    continue;
                }
            }
            let value: Value = response.json().await.unwrap_or(Value::Null);
            let micros = |time: Duration| u32::try_from(time.as_micros()).unwrap_or(u32::MAX);
            let whole_us = micros(sent.elapsed());
            let kind = kind_of(kind, &served_by, &value);
            if frozen {
                let held = Duration::from_millis(held_ms.unwrap_or(0));
                self.seen.waits.push(Wait {
                    whole_us,
                    part_us: micros(last_sent.duration_since(sent) + held),
                    kind: kind.clone(),
                });
            }
            self.seen.kinds_us.entry(kind).or_default().push(whole_us);
            // A transfer across the cores that runs on is answered 202 (and ends later).
            if status == expected || (expected == 201 && status == 202) {
                return Ended::Done(value);
            }
            let code = value["code"].as_str().unwrap_or("no_code").to_owned();
            return self.failed(format!("{status} {code}"));
        }
    }

    fn failed(&mut self, what: String) -> Ended {
        *self.seen.failed_by_code.entry(what).or_default() += 1;
        Ended::Failed
    }
}

/// A request's kind in the report: its operation and the side that served it; a transfer
/// answered as one across the cores (it has a `status`) apart, by the side it left from.
fn kind_of(operation: &str, served_by: &str, answer: &Value) -> String {
    if operation == "transfer" && answer.get("status").is_some() {
        format!("{operation} across from {served_by}")
    } else {
        format!("{operation} on {served_by}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_counted_by_its_operation_and_serving_side_a_crossing_apart() {
        let entry = json!({ "entry_id": "e", "balances": {} });
        let crossing = json!({ "id": "t", "status": "completed" });
        assert_eq!(kind_of("transfer", "legacy", &entry), "transfer on legacy");
        assert_eq!(
            kind_of("transfer", "legacy", &crossing),
            "transfer across from legacy"
        );
        assert_eq!(kind_of("deposit", "modern", &crossing), "deposit on modern");
        assert_eq!(
            kind_of("hold", "unrouted", &Value::Null),
            "hold on unrouted"
        );
    }
}
