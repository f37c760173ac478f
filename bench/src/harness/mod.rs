//! What every suite shares: the PostgreSQL server and its pgbench baseline (`server`), the
//! components under test (`servers`), load generation (`load`), and the figures:
//! percentiles, the table and the JSON (`figures`). A suite says what one request is (a
//! `load::Client`) and which results it reports; `Run` measures them.

pub mod figures;
pub mod load;
pub mod server;
pub mod servers;

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use figures::{NamedResult, Report};
use load::Client;

/// Set-up requests (opening and funding accounts) in flight at once.
const SETUP_IN_FLIGHT_MAX: usize = 32;

/// What every suite's options share: the pgbench baseline and the JSON file.
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
}

/// One run of a suite: what every phase shares, and the results so far.
#[derive(Debug)]
pub struct Run {
    /// Concurrent clients.
    clients: usize,
    duration: Duration,
    report: Report,
}

impl Run {
    /// A run of `suite`, whose requests are `unit` (plural), against `baseline_tps`.
    pub fn new(
        suite: &'static str,
        unit: &'static str,
        baseline_tps: f64,
        clients: usize,
        seconds: u64,
        options: &RunOptions,
    ) -> Run {
        Run {
            clients,
            duration: Duration::from_secs(seconds),
            report: Report {
                suite,
                unit,
                baseline_tps,
                results: Vec::new(),
                config: json!({
                    "clients": clients,
                    "seconds": seconds,
                    "pgbench_scale": options.pgbench_scale,
                    "pgbench_clients": options.pgbench_clients,
                }),
            },
        }
    }

    /// Measures a closed loop of `self.clients` clients made by `make` (numbered from 0), each
    /// sending `what`, and says what it measured: the result named `name`, to add a suite's
    /// own fields to.
    pub async fn closed_loop<C: Client>(
        &mut self,
        name: &str,
        what: &str,
        make: impl FnMut(usize) -> anyhow::Result<C>,
    ) -> anyhow::Result<&mut NamedResult> {
        let (suite, unit) = (self.report.suite, self.report.unit);
        let label = format!("{suite}: {name}");
        println!(
            "{label}: {} clients, {what}, {} s",
            self.clients,
            self.duration.as_secs()
        );
        let clients = (0..self.clients).map(make).collect::<anyhow::Result<_>>()?;
        let measured = load::closed_loop(&label, clients, self.duration).await?;
        let result = NamedResult::new(name.to_owned(), measured, self.report.baseline_tps);
        println!(
            "{label}: {:.0} {unit}/s, p50 {:.2} ms, p99 {:.2} ms, {:.2}x pgbench ({} failures)",
            result.throughput_per_s,
            result.p50_ms,
            result.p99_ms,
            result.ratio_to_baseline,
            result.failures
        );
        if let Some(failure) = &result.first_failure {
            println!("{label}: first failure: {failure}");
        }
        self.report.results.push(result);
        let index = self.report.results.len() - 1;
        Ok(&mut self.report.results[index])
    }

    /// The results, to print and write.
    pub fn report(self) -> Report {
        self.report
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
