//! What every suite shares: the PostgreSQL server and its pgbench baseline (`server`), the
//! components under test (`servers`), closed- and open-loop load (`load`), where the CPU went
//! by component (`cpu`), and the figures: percentiles, the table and the JSON (`figures`). A
//! suite says what one request is (a `load::Client`) and which results it reports; `Run`
//! measures them.

pub mod cpu;
pub mod figures;
pub mod load;
pub mod server;
pub mod servers;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use corebank_service::Settings;
use serde_json::json;

use figures::{NamedResult, OPEN_LOOP_SUFFIX, Report};
use load::{Client, LATE_AFTER};
use server::Server;

/// Clients of an open loop per closed-loop client: the most requests it has in flight, so
/// that a server slower than the rate is seen as late and unsent requests rather than as an
/// ever longer queue.
pub const OPEN_LOOP_IN_FLIGHT_PER_CLIENT: usize = 2;
/// Set-up requests (opening and funding accounts) in flight at once.
const SETUP_IN_FLIGHT_MAX: usize = 32;
/// The lowest arrival rate an open loop runs at.
const OPEN_LOOP_RATE_MIN_PER_S: f64 = 1.0;

/// What every suite's options share: the pgbench baseline, the JSON file and the open loops.
#[derive(Debug, Clone, clap::Args)]
pub struct RunOptions {
    /// pgbench's scale factor (`pgbench -i -s`).
    #[arg(long, default_value_t = 10)]
    pub pgbench_scale: u32,
    /// pgbench's clients (`-c`); it runs with 2 threads (`-j 2`).
    #[arg(long, default_value_t = 32)]
    pub pgbench_clients: u32,
    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The open loops' arrival rate, in percent of the closed-loop throughput just measured
    /// for the same result (for the gateway: of the slowest path of the same operation).
    #[arg(long, default_value_t = 70, value_parser = clap::value_parser!(u32).range(1..=1_000))]
    pub open_loop_percent: u32,
    /// A fixed arrival rate for every open loop, in requests per second, instead of
    /// --open-loop-percent.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub open_loop_rate: Option<u32>,
}

/// What a suite measures with: its name (in the output, the JSON and its scratch database's
/// name), the unit of its requests, its closed loops' clients and phase length, and how long
/// its pgbench baseline runs.
pub struct Suite<'a> {
    name: &'static str,
    unit: &'static str,
    clients: usize,
    seconds: u64,
    pgbench_seconds: u64,
    options: &'a RunOptions,
}

impl<'a> Suite<'a> {
    /// The suite `name`, whose requests are `unit` (plural), sent by `clients` closed-loop
    /// clients for `seconds` a phase among `accounts` accounts; pgbench runs as long as a
    /// phase.
    pub fn new(
        name: &'static str,
        unit: &'static str,
        clients: usize,
        seconds: u64,
        accounts: usize,
        options: &'a RunOptions,
    ) -> anyhow::Result<Suite<'a>> {
        anyhow::ensure!(
            clients > 0 && seconds > 0 && accounts >= 2,
            "clients and seconds must be positive and accounts at least 2"
        );
        Ok(Suite {
            name,
            unit,
            clients,
            seconds,
            pgbench_seconds: seconds,
            options,
        })
    }

    /// The suite with its pgbench baseline running `pgbench_seconds` instead.
    pub fn with_pgbench_seconds(self, pgbench_seconds: u64) -> Suite<'a> {
        Suite {
            pgbench_seconds,
            ..self
        }
    }

    /// Starts the server, measures the pgbench baseline, creates the scratch database
    /// `corebank_bench_<name>` with every migration applied, and runs `measure` with a fresh
    /// `Run` on it; then drops the database and stops the server, whatever `measure` returned.
    pub async fn run(
        self,
        settings: &Settings,
        measure: impl AsyncFnOnce(Run<'a>) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let database = format!("corebank_bench_{}", self.name);
        Server::run(settings, async |server| {
            let (tps, url) = server
                .baseline_then_database(settings, self.options, self.pgbench_seconds, &database)
                .await?;
            let outcome = measure(Run::new(&self, tps, url)).await;
            server.drop_database(&database).await;
            outcome
        })
        .await
    }
}

/// A suite's options, as the harness runs them: the suite they make, and what it measures.
pub trait Measure {
    /// The suite these options make (`Suite::new`), or why they make none.
    fn suite(&self) -> anyhow::Result<Suite<'_>>;

    /// Measures the suite's phases into `run`, on the scratch database at `run.url()`, and
    /// reports them.
    fn measure(
        &self,
        settings: &Settings,
        run: Run<'_>,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

/// Runs the suite `options` make, from the pgbench baseline to the report.
pub async fn run_suite(settings: &Settings, options: &impl Measure) -> anyhow::Result<()> {
    options
        .suite()?
        .run(settings, async |run| options.measure(settings, run).await)
        .await
}

/// One run of a suite: what every phase shares, and the results so far.
#[derive(Debug)]
pub struct Run<'a> {
    /// Concurrent clients of a closed loop.
    clients: usize,
    duration: Duration,
    options: &'a RunOptions,
    /// The scratch database the run measures on.
    url: String,
    report: Report,
}

impl<'a> Run<'a> {
    /// A run of `suite` on the scratch database at `url`, against `baseline_tps`.
    fn new(suite: &Suite<'a>, baseline_tps: f64, url: String) -> Run<'a> {
        let (clients, seconds, options) = (suite.clients, suite.seconds, suite.options);
        let in_flight_max = clients.saturating_mul(OPEN_LOOP_IN_FLIGHT_PER_CLIENT);
        Run {
            clients,
            duration: Duration::from_secs(seconds),
            options,
            url,
            report: Report {
                suite: suite.name,
                unit: suite.unit,
                baseline_tps,
                closed: Vec::new(),
                open: Vec::new(),
                config: json!({
                    "clients": clients,
                    "seconds": seconds,
                    "pgbench_scale": options.pgbench_scale,
                    "pgbench_clients": options.pgbench_clients,
                }),
                open_loop: json!({
                    "latency_from": "scheduled send time",
                    "rate_percent": options.open_loop_rate.is_none().then_some(options.open_loop_percent),
                    "fixed_rate_per_s": options.open_loop_rate,
                    "in_flight_max": in_flight_max,
                    "late_after_ms": LATE_AFTER.as_millis(),
                }),
            },
        }
    }

    /// Measures a closed loop of `self.clients` clients made by `make` (numbered from 0), each
    /// sending `what`: the result named `name`.
    pub async fn closed_loop<C: Client>(
        &mut self,
        name: &str,
        what: &str,
        make: impl FnMut(usize) -> anyhow::Result<C>,
    ) -> anyhow::Result<&mut NamedResult> {
        let intro = format!("{} clients, {what}", self.clients);
        let result = self
            .measure(name.to_owned(), &intro, self.clients, make, None)
            .await?;
        Ok(pushed(&mut self.report.closed, result))
    }

    /// Measures an open loop of clients made by `make`, at `--open-loop-rate`, or else at
    /// `--open-loop-percent` of the closed-loop throughput of the result `rate_of`: the
    /// result named `name` with `_open_loop` appended.
    pub async fn open_loop<C: Client>(
        &mut self,
        name: &str,
        what: &str,
        rate_of: &str,
        make: impl FnMut(usize) -> anyhow::Result<C>,
    ) -> anyhow::Result<&mut NamedResult> {
        let percent = self.options.open_loop_percent;
        let (rate_per_s, rate_of, basis) = match self.options.open_loop_rate {
            Some(fixed_per_s) => (f64::from(fixed_per_s), None, "--open-loop-rate".to_owned()),
            None => {
                let basis_per_s = self.result(rate_of)?.throughput_per_s;
                let rate_per_s = basis_per_s * f64::from(percent) / 100.0;
                (
                    rate_per_s.max(OPEN_LOOP_RATE_MIN_PER_S),
                    Some(rate_of.to_owned()),
                    format!("{percent}% of {rate_of}'s closed-loop throughput"),
                )
            }
        };
        let in_flight_max = self.clients.saturating_mul(OPEN_LOOP_IN_FLIGHT_PER_CLIENT);
        let intro =
            format!("{rate_per_s:.0}/s ({basis}), at most {in_flight_max} in flight, {what}");
        let name = format!("{name}{OPEN_LOOP_SUFFIX}");
        let result = self
            .measure(
                name,
                &intro,
                in_flight_max,
                make,
                Some((rate_per_s, rate_of)),
            )
            .await?;
        Ok(pushed(&mut self.report.open, result))
    }

    /// A closed loop, then an open loop at the rate its throughput gives, with clients made
    /// alike: the two results, to add a suite's own fields to.
    pub async fn both<C: Client>(
        &mut self,
        name: &str,
        what: &str,
        mut make: impl FnMut(usize) -> anyhow::Result<C>,
    ) -> anyhow::Result<[&mut NamedResult; 2]> {
        self.closed_loop(name, what, &mut make).await?;
        self.open_loop(name, what, name, make).await?;
        let closed = self.report.closed.last_mut();
        let open = self.report.open.last_mut();
        closed
            .zip(open)
            .map(|(closed, open)| [closed, open])
            .context("the results just measured are missing")
    }

    /// The URL of the scratch database the run measures on.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The result named `name`, closed or open loop.
    pub fn result(&self, name: &str) -> anyhow::Result<&NamedResult> {
        self.report.find(name)
    }

    /// Runs one phase, open loop at `open_loop`'s rate (with the result it came from) or else
    /// closed loop, and says what it measured.
    async fn measure<C: Client>(
        &self,
        name: String,
        intro: &str,
        clients: usize,
        make: impl FnMut(usize) -> anyhow::Result<C>,
        open_loop: Option<(f64, Option<String>)>,
    ) -> anyhow::Result<NamedResult> {
        let (suite, unit) = (self.report.suite, self.report.unit);
        let label = format!("{suite}: {name}");
        println!("{label}: {intro}, {} s", self.duration.as_secs());
        let clients = (0..clients).map(make).collect::<anyhow::Result<_>>()?;
        let result = match open_loop {
            None => {
                let measured = load::closed_loop(&label, clients, self.duration).await?;
                NamedResult::new(name, measured, self.report.baseline_tps)
            }
            Some((rate_per_s, rate_of)) => {
                let measured = load::open_loop(&label, clients, self.duration, rate_per_s).await?;
                let schedule = measured.schedule;
                let mut result = NamedResult::new(name, measured, self.report.baseline_tps);
                result.open_loop = schedule.map(|schedule| (schedule, rate_of));
                result
            }
        };
        let schedule = result
            .open_loop
            .as_ref()
            .map_or_else(String::new, |(s, _)| {
                format!(", {} late, {} unsent", s.late, s.unsent)
            });
        println!(
            "{label}: {:.0} {unit}/s, p50 {:.2} ms, p99 {:.2} ms, {:.2}x pgbench ({} failures{schedule})",
            result.throughput_per_s,
            result.p50_ms,
            result.p99_ms,
            result.ratio_to_baseline,
            result.failures
        );
        if let Some(failure) = &result.first_failure {
            println!("{label}: first failure: {failure}");
        }
        Ok(result)
    }

    /// The results, to print and write.
    pub fn report(self) -> Report {
        self.report
    }

    /// Prints the results with `notes` after the table, and writes them with the suite's own
    /// `config` fields to the `--json` file when one is given.
    pub fn finish(self, notes: &str, config: serde_json::Value) -> anyhow::Result<()> {
        self.report.print(notes);
        self.report
            .write_json(self.options.json.as_deref(), config, serde_json::Map::new())
    }
}

/// Runs `set_up` for each of `0..count`, `SETUP_IN_FLIGHT_MAX` at a time (opening and funding
/// accounts): what each returned, in the order they finished.
pub async fn set_up_each<T, F>(
    count: usize,
    mut set_up: impl FnMut(usize) -> F,
) -> anyhow::Result<Vec<T>>
where
    T: Send + 'static,
    F: Future<Output = anyhow::Result<T>> + Send + 'static,
{
    let mut done = Vec::with_capacity(count);
    let mut running = tokio::task::JoinSet::new();
    for index in 0..count {
        running.spawn(set_up(index));
        if running.len() >= SETUP_IN_FLIGHT_MAX
            && let Some(finished) = running.join_next().await
        {
            done.push(finished??);
        }
    }
    while let Some(finished) = running.join_next().await {
        done.push(finished??);
    }
    Ok(done)
}

/// Adds `result` to `results`: the result, to add a suite's own fields to.
fn pushed(results: &mut Vec<NamedResult>, result: NamedResult) -> &mut NamedResult {
    let index = results.len();
    results.push(result);
    &mut results[index]
}

/// A gRPC call's answer as a load client reports it: nothing when it succeeded, else what
/// failed.
pub fn grpc_outcome<T>(answer: Result<tonic::Response<T>, tonic::Status>) -> Result<(), String> {
    answer
        .map(drop)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// Two different accounts of `accounts`, at random: a transfer's two sides (each suite has
/// at least two accounts).
pub fn two_accounts<'a>(rng: &mut fastrand::Rng, accounts: &'a [String]) -> (&'a str, &'a str) {
    let count = accounts.len().max(1);
    let from = rng.usize(..count);
    // Any account but `from`, each as likely.
    let to = (from + 1 + rng.usize(..count.saturating_sub(1).max(1))) % count;
    let account = |index: usize| accounts.get(index).map_or("", String::as_str);
    (account(from), account(to))
}

/// A random amount from 0.01 to 0.99: what the suites' transfers move.
pub fn small_amount(rng: &mut fastrand::Rng) -> String {
    format!("0.{:02}", rng.u32(1..100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_always_between_two_different_accounts_and_every_pair_comes_up() {
        let accounts: Vec<String> = ["a", "b", "c"].map(str::to_owned).to_vec();
        let mut rng = fastrand::Rng::with_seed(1);
        let mut pairs = std::collections::HashSet::new();
        for _ in 0..1_000 {
            let (from, to) = two_accounts(&mut rng, &accounts);
            assert_ne!(from, to);
            pairs.insert((from, to));
        }
        assert_eq!(pairs.len(), 6);
    }

    #[test]
    fn amounts_are_between_one_cent_and_ninety_nine() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..1_000 {
            let amount = small_amount(&mut rng);
            let cents: u32 = amount.strip_prefix("0.").unwrap().parse().unwrap();
            assert!((1..=99).contains(&cents), "{amount}");
            assert_eq!(amount.len(), 4, "{amount}");
        }
    }
}
