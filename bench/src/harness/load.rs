//! Load generation over clients that each know what one request is (`Client`): a closed
//! loop, each client sending its next request when the answer to the previous one has
//! arrived.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

/// One client of the system under test: what one request is.
pub trait Client: Send + 'static {
    /// Sends one request and waits for its whole answer; a failure says what went wrong.
    fn send(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Latencies each client reserves room for at the start of a phase.
const LATENCIES_RESERVED: usize = 8_192;
/// How often a running phase says how long it has left.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// What a phase measured, before it is summarised.
#[derive(Debug, Default)]
pub struct Measured {
    /// The latency of each request that succeeded, in µs, in no particular order.
    pub latencies_us: Vec<u32>,
    pub failures: u64,
    /// What the first failure said.
    pub first_failure: Option<String>,
    /// From the start of the phase until the last answer arrived.
    pub seconds: f64,
}

/// One client's share of a phase.
#[derive(Debug, Default)]
struct Share {
    latencies_us: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
}

impl Share {
    fn record(&mut self, answer: Result<(), String>, since: Instant) {
        match answer {
            Ok(()) => self
                .latencies_us
                .push(u32::try_from(since.elapsed().as_micros()).unwrap_or(u32::MAX)),
            Err(failure) => {
                self.failures += 1;
                self.first_failure.get_or_insert(failure);
            }
        }
    }
}

/// Runs `clients` for `duration`, each sending its next request when the previous answer has
/// arrived; each latency runs from sending to the answer. `label` names the phase in the
/// progress lines.
pub async fn closed_loop<C: Client>(
    label: &str,
    clients: Vec<C>,
    duration: Duration,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let deadline = started + duration;
    let shares = run_clients(label, deadline, clients, move |mut client| async move {
        let mut share = Share::default();
        share.latencies_us.reserve(LATENCIES_RESERVED);
        loop {
            let sent = Instant::now();
            if sent >= deadline {
                break;
            }
            let answer = client.send().await;
            share.record(answer, sent);
        }
        share
    })
    .await?;
    Ok(gather(shares, started))
}

/// Runs each client as a task of its own with `drive`, saying every `PROGRESS_INTERVAL` how
/// long the phase has left: each client's share once all have finished.
async fn run_clients<C, D, F>(
    label: &str,
    deadline: Instant,
    clients: Vec<C>,
    drive: D,
) -> anyhow::Result<Vec<Share>>
where
    C: Client,
    D: Fn(C) -> F,
    F: Future<Output = Share> + Send + 'static,
{
    anyhow::ensure!(!clients.is_empty(), "a phase needs at least one client");
    let label = label.to_owned();
    let progress = tokio::spawn(async move {
        let mut ticks =
            tokio::time::interval_at(Instant::now() + PROGRESS_INTERVAL, PROGRESS_INTERVAL);
        loop {
            ticks.tick().await;
            let left_s = deadline
                .saturating_duration_since(Instant::now())
                .as_secs_f64()
                .round();
            if left_s < 1.0 {
                break;
            }
            println!("{label}: {left_s:.0} s left");
        }
    });
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(drive(client)))
        .collect();
    let mut shares = Vec::with_capacity(tasks.len());
    for task in tasks {
        shares.push(task.await.context("a load client failed")?);
    }
    progress.abort();
    Ok(shares)
}

fn gather(shares: Vec<Share>, started: Instant) -> Measured {
    let seconds = started.elapsed().as_secs_f64();
    let mut measured = Measured {
        seconds,
        ..Measured::default()
    };
    for mut share in shares {
        measured.latencies_us.append(&mut share.latencies_us);
        measured.failures += share.failures;
        measured.first_failure = measured.first_failure.or(share.first_failure);
    }
    measured
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that answers in 1 ms, except during `stall`, when it answers nothing until
    /// the stall ends.
    struct Stalling {
        started: Instant,
        stall: std::ops::Range<Duration>,
        failing: bool,
    }

    impl Client for Stalling {
        async fn send(&mut self) -> Result<(), String> {
            let now = self.started.elapsed();
            if self.stall.contains(&now) {
                tokio::time::sleep_until(self.started + self.stall.end).await;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if self.failing {
                Err("refused".to_owned())
            } else {
                Ok(())
            }
        }
    }

    fn clients(count: usize, stall: std::ops::Range<Duration>, failing: bool) -> Vec<Stalling> {
        let started = Instant::now();
        (0..count)
            .map(|_| Stalling {
                started,
                stall: stall.clone(),
                failing,
            })
            .collect()
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_measures_each_request_from_sending_to_its_answer() {
        let measured = closed_loop("test", clients(4, ms(200)..ms(500), false), ms(1_000))
            .await
            .unwrap();
        // 4 clients at 1 ms a request over 700 ms of service, and the four requests in flight
        // when the stall began, which saw all of it.
        assert!(measured.latencies_us.len() > 2_000);
        let waited: Vec<_> = measured
            .latencies_us
            .iter()
            .filter(|&&latency| latency > 1_000)
            .collect();
        assert_eq!(waited, [&301_000; 4]);
        assert_eq!(measured.failures, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_apart_and_the_first_is_kept() {
        let measured = closed_loop("test", clients(2, ms(0)..ms(0), true), ms(10))
            .await
            .unwrap();
        assert!(measured.latencies_us.is_empty());
        assert_eq!(measured.failures, 20);
        assert_eq!(measured.first_failure.as_deref(), Some("refused"));
    }
}
