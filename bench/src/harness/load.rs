//! Load generation, closed loop and open loop, over clients that each know what one request
//! is (`Client`).
//!
//! Closed loop: each client sends its next request when the answer to the previous one has
//! arrived, so a server that stalls also stops the load, and the requests that would have
//! been sent during the stall are never measured (coordinated omission): p99 looks better
//! than a user would see it. Open loop: requests are due at a fixed arrival rate whatever the
//! server does, and each latency is counted from the time the request was due, not from the
//! time it could be sent, so a stall counts against every request that was due during it.
//! In flight is bounded by the number of clients; a request taken up after its time because
//! every client was busy is counted as late, and one still waiting when the phase ends as
//! unsent.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::time::Instant;

/// One client of the system under test: what one request is.
pub trait Client: Send + 'static {
    /// Sends one request and waits for its whole answer; a failure says what went wrong.
    fn send(&mut self) -> impl Future<Output = Result<(), String>> + Send;
}

/// A request taken up later than this after its time counts as late.
pub const LATE_AFTER: Duration = Duration::from_millis(1);
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
    /// The open loop's schedule; `None` for a closed loop.
    pub schedule: Option<Schedule>,
}

/// How an open loop kept to its schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The arrival rate asked for.
    pub rate_per_s: f64,
    /// Requests due during the phase.
    pub scheduled: u64,
    /// Requests taken up more than `LATE_AFTER` after their time, every client being busy.
    pub late: u64,
    /// Requests due during the phase that no client was free to send before it ended.
    pub unsent: u64,
    /// The clients: requests in flight at most.
    pub in_flight_max: usize,
}

/// One client's share of a phase.
#[derive(Debug, Default)]
struct Share {
    latencies_us: Vec<u32>,
    failures: u64,
    first_failure: Option<String>,
    late: u64,
    sent: u64,
}

impl Share {
    fn record(&mut self, answer: Result<(), String>, since: Instant) {
        self.sent += 1;
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
    Ok(gather(shares, started, None))
}

/// Runs an open loop for `duration`: requests due at `rate_per_s`, evenly spaced from the
/// start, each taken up by the first of `clients` that is free. Each latency runs from the
/// time the request was due to the answer.
pub async fn open_loop<C: Client>(
    label: &str,
    clients: Vec<C>,
    duration: Duration,
    rate_per_s: f64,
) -> anyhow::Result<Measured> {
    anyhow::ensure!(
        rate_per_s.is_finite() && rate_per_s > 0.0,
        "an open loop needs a positive arrival rate, not {rate_per_s}"
    );
    let interval = Duration::from_secs_f64(1.0 / rate_per_s).max(Duration::from_nanos(1));
    let scheduled = u64::try_from(duration.as_nanos().div_ceil(interval.as_nanos()))
        .context("too many requests for one phase")?;
    let in_flight_max = clients.len();
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let shares = run_clients(label, deadline, clients, move |mut client| {
        let next = Arc::clone(&next);
        async move {
            let mut share = Share::default();
            share.latencies_us.reserve(LATENCIES_RESERVED);
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= scheduled {
                    break;
                }
                let Some(due) = u32::try_from(index)
                    .ok()
                    .and_then(|index| interval.checked_mul(index))
                    .map(|offset| started + offset)
                else {
                    break;
                };
                let now = Instant::now();
                if now >= deadline {
                    // Due during the phase, but no client was free before it ended.
                    break;
                }
                if now < due {
                    tokio::time::sleep_until(due).await;
                } else if now - due > LATE_AFTER {
                    share.late += 1;
                }
                let answer = client.send().await;
                share.record(answer, due);
            }
            share
        }
    })
    .await?;
    let sent: u64 = shares.iter().map(|share| share.sent).sum();
    let late = shares.iter().map(|share| share.late).sum();
    let schedule = Schedule {
        rate_per_s,
        scheduled,
        late,
        unsent: scheduled.saturating_sub(sent),
        in_flight_max,
    };
    Ok(gather(shares, started, Some(schedule)))
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

fn gather(shares: Vec<Share>, started: Instant, schedule: Option<Schedule>) -> Measured {
    let seconds = started.elapsed().as_secs_f64();
    let mut measured = Measured {
        seconds,
        schedule,
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
    /// the stall ends; the time it answered each request.
    struct Stalling {
        started: Instant,
        stall: std::ops::Range<Duration>,
        service: Duration,
        failing: bool,
    }

    impl Client for Stalling {
        async fn send(&mut self) -> Result<(), String> {
            let now = self.started.elapsed();
            if self.stall.contains(&now) {
                tokio::time::sleep_until(self.started + self.stall.end).await;
            }
            tokio::time::sleep(self.service).await;
            if self.failing {
                Err("refused".to_owned())
            } else {
                Ok(())
            }
        }
    }

    fn clients(count: usize, stall: std::ops::Range<Duration>, service: Duration) -> Vec<Stalling> {
        let started = Instant::now();
        (0..count)
            .map(|_| Stalling {
                started,
                stall: stall.clone(),
                service,
                failing: false,
            })
            .collect()
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// An open loop of `clients` at 100 requests a second for a second, which schedules 100
    /// requests: what it measured, and how it kept to its schedule.
    async fn one_second_at_100_per_s(clients: Vec<Stalling>) -> (Measured, Schedule) {
        let measured = open_loop("test", clients, ms(1_000), 100.0).await.unwrap();
        let schedule = measured.schedule.unwrap();
        assert_eq!(schedule.scheduled, 100);
        (measured, schedule)
    }

    /// The requests that waited over 100 ms for their answer.
    fn waited_over_100_ms(measured: &Measured) -> usize {
        measured
            .latencies_us
            .iter()
            .filter(|&&latency| latency > 100_000)
            .count()
    }

    fn percentile(measured: &Measured, percent: usize) -> f64 {
        let mut sorted = measured.latencies_us.clone();
        sorted.sort_unstable();
        super::super::figures::percentile_ms(&sorted, percent)
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_sends_every_request_on_time_to_a_server_that_keeps_up() {
        let (measured, schedule) = one_second_at_100_per_s(clients(4, ms(0)..ms(0), ms(1))).await;
        assert_eq!((schedule.late, schedule.unsent), (0, 0));
        assert_eq!(measured.latencies_us.len(), 100);
        assert!(
            measured
                .latencies_us
                .iter()
                .all(|&latency| latency == 1_000)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_counts_a_stall_from_the_time_each_request_was_due() {
        // The server stalls from 200 ms to 500 ms; 4 clients, a request due every 10 ms.
        let (measured, schedule) =
            one_second_at_100_per_s(clients(4, ms(200)..ms(500), ms(1))).await;
        assert_eq!(
            schedule.unsent, 0,
            "the backlog clears before the phase ends"
        );
        assert_eq!(measured.latencies_us.len(), 100);
        // The request due at 200 ms waits the whole stall (301 ms with its 1 ms of service).
        // The four clients are stuck from 230 ms, so the 26 requests due from 240 to 490 ms
        // are taken up late, when the stall ends, and the one due at 500 ms behind them.
        assert_eq!(measured.latencies_us.iter().max(), Some(&301_000));
        assert_eq!(schedule.late, 27);
        // Every request due from 200 to 400 ms waited over 100 ms.
        assert_eq!(waited_over_100_ms(&measured), 21);
        assert!(percentile(&measured, 99) > 250.0);
        assert!(percentile(&measured, 50) < 50.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_loop_hides_the_same_stall_behind_the_requests_it_did_not_send() {
        let measured = closed_loop("test", clients(4, ms(200)..ms(500), ms(1)), ms(1_000))
            .await
            .unwrap();
        // 4 clients at 1 ms a request over 700 ms of service: thousands of fast requests,
        // and only the four that were in flight when the stall began saw it.
        assert!(measured.latencies_us.len() > 2_000);
        assert_eq!(waited_over_100_ms(&measured), 4);
        assert!(percentile(&measured, 99) <= 1.0);
        assert_eq!(measured.schedule, None);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_faster_than_its_server_counts_what_it_could_not_send() {
        // One client, 100 ms a request, a request due every 10 ms for a second.
        let (measured, schedule) = one_second_at_100_per_s(clients(1, ms(0)..ms(0), ms(100))).await;
        assert_eq!(measured.latencies_us.len(), 10);
        assert_eq!(schedule.unsent, 90);
        assert_eq!(schedule.late, 9);
        assert_eq!(schedule.in_flight_max, 1);
        // The tenth request was due at 90 ms and answered at 1 s.
        assert_eq!(measured.latencies_us.iter().max(), Some(&910_000));
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_apart_and_the_first_is_kept() {
        let mut failing = clients(2, ms(0)..ms(0), ms(1));
        for client in &mut failing {
            client.failing = true;
        }
        let measured = open_loop("test", failing, ms(100), 100.0).await.unwrap();
        assert!(measured.latencies_us.is_empty());
        assert_eq!(measured.failures, 10);
        assert_eq!(measured.first_failure.as_deref(), Some("refused"));
        assert_eq!(measured.schedule.unwrap().unsent, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_loop_refuses_a_rate_that_is_not_positive() {
        for rate_per_s in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            let outcome = open_loop("test", clients(1, ms(0)..ms(0), ms(1)), ms(10), rate_per_s);
            assert!(outcome.await.is_err(), "{rate_per_s}");
        }
    }
}
