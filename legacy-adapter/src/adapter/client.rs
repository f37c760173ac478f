//! The adapter's OFS client: a pool of TCP connections to the core, a deadline per call, a
//! circuit breaker, and metrics per legacy application.
//!
//! The core's account migration inputs travel in bulks ([`corebank_legacy_ofs::bulk`]):
//! those that arrive while a connection is awaited go together, in one transaction of the
//! core, each with its own answer.
//!
//! A call ends in one of three ways, and the difference matters for money: an answer; the
//! request never left ([`CallError::NotSent`], safe to send again); or it left and no answer
//! came back ([`CallError::Unknown`]: the core may have done it, so the caller must ask
//! before sending it again).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{Semaphore, oneshot};

use corebank_legacy_ofs::bulk::{BULK_MAX, bulk_header, bulkable};
use corebank_legacy_ofs::{Indicator, LINE_BYTES_MAX, Request, Response};

/// How the client reaches the core.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    /// Connections kept open (and calls in flight) at most.
    pub pool_size: usize,
    /// The longest one call may take, waiting for a connection included.
    pub call_timeout: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before it lets calls through again.
    pub breaker_open: Duration,
    /// How long after a lost answer the core may still carry the request out (it was slow,
    /// not dead): until then a refusal of a later attempt is not final.
    pub in_doubt: Duration,
}

/// A call that got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// Nothing reached the core: no connection, or the breaker is open.
    #[error("the legacy core was not reached: {message}")]
    NotSent { message: String },
    /// The request was sent but no (readable) answer came back in time.
    #[error("no answer from the legacy core: {message}")]
    Unknown { message: String },
}

struct Connection {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    idle_since: Instant,
}

/// A pooled connection idle longer than this is closed rather than used: the core closes
/// idle connections after 300 s, and a request written into a connection the core has
/// closed would look like a lost answer.
pub const CONNECTION_IDLE_MAX: Duration = Duration::from_secs(60);

impl Connection {
    /// Whether the connection can carry a request: not idle too long, and not closed by
    /// the core meanwhile (a read that would not block means end of stream or stray bytes).
    fn usable(&self) -> bool {
        if self.idle_since.elapsed() > CONNECTION_IDLE_MAX || !self.reader.buffer().is_empty() {
            return false;
        }
        let mut probe = [0_u8; 1];
        matches!(
            self.reader.get_ref().try_read(&mut probe),
            Err(ref error) if error.kind() == std::io::ErrorKind::WouldBlock
        )
    }
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
    /// Once the open period has passed, one trial call goes through; the others keep
    /// failing fast until it answers.
    trial_in_flight: bool,
}

/// Whether a call may go through the breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// Closed: go.
    Go,
    /// Half-open: this call is the trial.
    Trial,
    /// Open (or a trial is in flight): fail fast, and do not count it as a failure (a
    /// rejection is not news about the core).
    Rejected,
}

/// A request waiting for a bulk, and where its answer goes.
type Waiting = (Request, oneshot::Sender<Result<Response, CallError>>);

/// The requests waiting for a bulk, and how many bulks are being sent.
#[derive(Default)]
struct BulkQueue {
    waiting: VecDeque<Waiting>,
    leaders: usize,
}

/// Bulks in flight at once at most.
pub const BULK_LEADERS: usize = 2;

struct Inner {
    config: ClientConfig,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
    breaker: Mutex<Breaker>,
    bulk: Mutex<BulkQueue>,
    bulks: AtomicU64,
    bulked: AtomicU64,
}

/// A cheap-to-clone handle on the pool.
#[derive(Clone)]
pub struct OfsClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OfsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfsClient")
            .field("addr", &self.inner.config.addr)
            .field("user", &self.inner.config.user)
            .finish_non_exhaustive()
    }
}

impl OfsClient {
    pub fn new(config: ClientConfig) -> OfsClient {
        let permits = Semaphore::new(config.pool_size.max(1));
        OfsClient {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
                permits,
                breaker: Mutex::new(Breaker::default()),
                bulk: Mutex::new(BulkQueue::default()),
                bulks: AtomicU64::new(0),
                bulked: AtomicU64::new(0),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Whether the breaker is open now (calls fail fast).
    pub fn breaker_open(&self) -> bool {
        self.inner
            .breaker
            .lock()
            .ok()
            .and_then(|b| b.open_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Sends `request` with the adapter's sign-on and waits for the answer.
    pub async fn call(&self, mut request: Request) -> Result<Response, CallError> {
        request.user.clone_from(&self.inner.config.user);
        request.password.clone_from(&self.inner.config.password);
        let application = request.application.clone();
        let started = Instant::now();
        let admission = self.admit();
        if admission == Admission::Rejected {
            metrics::counter!("legacy_adapter_calls_total", "application" => application, "outcome" => "breaker_open")
                .increment(1);
            return Err(CallError::NotSent {
                message: "the circuit breaker is open after repeated failures".to_owned(),
            });
        }
        let result = if bulkable(&request) {
            self.call_bulked(request).await
        } else {
            self.call_signed(&request).await
        };
        let outcome = match &result {
            Ok(response) => match response.indicator {
                Indicator::Done => "ok",
                Indicator::Error => "error",
                Indicator::Override => "override",
                Indicator::Offline => "offline",
            },
            Err(CallError::NotSent { .. }) => "not_sent",
            Err(CallError::Unknown { .. }) => "unknown",
        };
        metrics::counter!("legacy_adapter_calls_total", "application" => application.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!("legacy_adapter_call_seconds", "application" => application.clone())
            .record(started.elapsed().as_secs_f64());
        if let Err(error) = &result {
            tracing::warn!(%application, %error, "legacy call failed");
        }
        self.record(result.is_ok(), admission == Admission::Trial);
        result
    }

    fn admit(&self) -> Admission {
        let Ok(mut breaker) = self.inner.breaker.lock() else {
            return Admission::Go;
        };
        match breaker.open_until {
            None => Admission::Go,
            Some(until) if Instant::now() < until => Admission::Rejected,
            Some(_) if breaker.trial_in_flight => Admission::Rejected,
            Some(_) => {
                breaker.trial_in_flight = true;
                Admission::Trial
            }
        }
    }

    fn record(&self, success: bool, trial: bool) {
        let Ok(mut breaker) = self.inner.breaker.lock() else {
            return;
        };
        if trial {
            breaker.trial_in_flight = false;
        }
        if success {
            breaker.failures = 0;
            breaker.open_until = None;
            return;
        }
        breaker.failures = breaker.failures.saturating_add(1);
        // A failed trial opens the breaker again; otherwise it opens once failures reach
        // the threshold (calls already in flight when it opened do not prolong it).
        let open = breaker
            .open_until
            .is_some_and(|until| Instant::now() < until);
        if trial || (!open && breaker.failures >= self.inner.config.breaker_failures) {
            if !trial {
                tracing::warn!(
                    failures = breaker.failures,
                    open_ms = self.inner.config.breaker_open.as_millis(),
                    "legacy core circuit breaker opened"
                );
                metrics::counter!("legacy_adapter_breaker_opened_total").increment(1);
            }
            breaker.open_until = Some(Instant::now() + self.inner.config.breaker_open);
        }
    }

    async fn call_signed(&self, request: &Request) -> Result<Response, CallError> {
        let deadline = Instant::now() + self.inner.config.call_timeout;
        let (permit, connection) = self.checkout(deadline).await?;
        let mut answers = self
            .exchange(connection, std::slice::from_ref(request), deadline)
            .await?;
        drop(permit);
        answers.pop().ok_or_else(|| CallError::Unknown {
            message: "no answer".to_owned(),
        })
    }

    /// Sends a request that may travel in a bulk ([`bulkable`]): it joins the bulk being
    /// gathered, and is sent with the others that arrived meanwhile once a connection is
    /// free (up to [`BULK_MAX`] a bulk, [`BULK_LEADERS`] bulks in flight). Each gets its own
    /// answer; a bulk without one leaves each of its requests unknown.
    async fn call_bulked(&self, request: Request) -> Result<Response, CallError> {
        let (sender, receiver) = oneshot::channel();
        let lead = {
            let mut queue = self
                .inner
                .bulk
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            queue.waiting.push_back((request, sender));
            let lead = queue.leaders < BULK_LEADERS;
            if lead {
                queue.leaders += 1;
            }
            lead
        };
        if lead {
            // Its own task: a caller that gives up must not strand the bulk it gathered.
            let client = self.clone();
            tokio::spawn(async move { client.lead_bulks().await });
        }
        receiver.await.unwrap_or_else(|_| {
            Err(CallError::Unknown {
                message: "the bulk carrying the request ended without an answer".to_owned(),
            })
        })
    }

    /// Sends bulks of the waiting requests until none is left.
    async fn lead_bulks(&self) {
        loop {
            let deadline = Instant::now() + self.inner.config.call_timeout;
            // A connection first: whatever arrives while it is awaited joins this bulk.
            let checked_out = self.checkout(deadline).await;
            let bulk: Vec<Waiting> = {
                let mut queue = self
                    .inner
                    .bulk
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if queue.waiting.is_empty() {
                    queue.leaders -= 1;
                    drop(queue);
                    if let Ok((_permit, connection)) = checked_out {
                        self.check_in(connection);
                    }
                    return;
                }
                let take = queue.waiting.len().min(BULK_MAX);
                queue.waiting.drain(..take).collect()
            };
            let result = match checked_out {
                Ok((permit, connection)) => {
                    let requests: Vec<Request> =
                        bulk.iter().map(|(request, _)| request.clone()).collect();
                    let answers = self.exchange(connection, &requests, deadline).await;
                    drop(permit);
                    answers
                }
                Err(error) => Err(error),
            };
            self.inner.bulks.fetch_add(1, Ordering::Relaxed);
            self.inner.bulked.fetch_add(
                u64::try_from(bulk.len()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
            metrics::histogram!("legacy_adapter_bulk_size")
                .record(f64::from(u32::try_from(bulk.len()).unwrap_or(u32::MAX)));
            match result {
                Ok(answers) => {
                    for ((_, answer), response) in bulk.into_iter().zip(answers) {
                        let _ = answer.send(Ok(response));
                    }
                }
                Err(error) => {
                    for (_, answer) in bulk {
                        let _ = answer.send(Err(error.clone()));
                    }
                }
            }
        }
    }

    /// Bulks sent so far, and the requests they carried.
    pub fn bulk_stats(&self) -> (u64, u64) {
        (
            self.inner.bulks.load(Ordering::Relaxed),
            self.inner.bulked.load(Ordering::Relaxed),
        )
    }

    /// A connection to the core and the permit that counts it, by `deadline`.
    async fn checkout(
        &self,
        deadline: Instant,
    ) -> Result<(tokio::sync::SemaphorePermit<'_>, Connection), CallError> {
        let permit = tokio::time::timeout_at(deadline.into(), self.inner.permits.acquire())
            .await
            .map_err(|_| CallError::NotSent {
                message: format!(
                    "all {} connections stayed busy for the whole call timeout",
                    self.inner.config.pool_size
                ),
            })?
            .map_err(|_| CallError::NotSent {
                message: "the client is closed".to_owned(),
            })?;
        let pooled = self.inner.idle.lock().ok().and_then(|mut idle| {
            // Newest last: stale ones are dropped (closed) on the way.
            while let Some(connection) = idle.pop() {
                if connection.usable() {
                    return Some(connection);
                }
            }
            None
        });
        if let Some(connection) = pooled {
            return Ok((permit, connection));
        }
        let stream =
            tokio::time::timeout_at(deadline.into(), TcpStream::connect(self.inner.config.addr))
                .await
                .map_err(|_| CallError::NotSent {
                    message: format!("connecting to {} timed out", self.inner.config.addr),
                })?
                .map_err(|error| CallError::NotSent {
                    message: format!(
                        "connecting to {} failed: {error} (is the legacy core running? \
                         check COREBANK_LEGACY_CORE_ADDR)",
                        self.inner.config.addr
                    ),
                })?;
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        Ok((
            permit,
            Connection {
                reader: BufReader::new(read),
                writer: write,
                idle_since: Instant::now(),
            },
        ))
    }

    /// Sends `requests` on `connection` (more than one as a bulk) and reads their answers,
    /// by `deadline`; the connection goes back to the pool once they are all read.
    async fn exchange(
        &self,
        mut connection: Connection,
        requests: &[Request],
        deadline: Instant,
    ) -> Result<Vec<Response>, CallError> {
        let mut lines = String::new();
        if requests.len() > 1 {
            lines.push_str(&bulk_header(requests.len()));
            lines.push('\n');
        }
        for request in requests {
            lines.push_str(&request.to_line());
            lines.push('\n');
        }
        let exchange = async {
            connection
                .writer
                .write_all(lines.as_bytes())
                .await
                .map_err(|error| format!("writing failed: {error}"))?;
            let mut answers = Vec::with_capacity(requests.len());
            for _ in requests {
                let mut answer = String::new();
                let read = (&mut connection.reader)
                    .take(u64::try_from(LINE_BYTES_MAX).unwrap_or(u64::MAX) + 2)
                    .read_line(&mut answer)
                    .await
                    .map_err(|error| format!("reading failed: {error}"))?;
                if read == 0 || !answer.ends_with('\n') {
                    return Err("the connection closed before the answer ended".to_owned());
                }
                answers.push(
                    Response::parse(answer.trim_end_matches(['\r', '\n']))
                        .map_err(|error| format!("the answer is unreadable: {error}"))?,
                );
            }
            Ok(answers)
        };
        let answers = match tokio::time::timeout_at(deadline.into(), exchange).await {
            Err(_) => {
                return Err(CallError::Unknown {
                    message: format!(
                        "no answer within {} ms",
                        self.inner.config.call_timeout.as_millis()
                    ),
                });
            }
            Ok(Err(message)) => return Err(CallError::Unknown { message }),
            Ok(Ok(answers)) => answers,
        };
        self.check_in(connection);
        Ok(answers)
    }

    /// Puts a connection whose exchanges are all answered back in the pool.
    fn check_in(&self, mut connection: Connection) {
        connection.idle_since = Instant::now();
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.push(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn client(open: Duration) -> OfsClient {
        OfsClient::new(ClientConfig {
            addr: "127.0.0.1:9".parse().unwrap(),
            user: "U".to_owned(),
            password: "P".to_owned(),
            pool_size: 1,
            call_timeout: Duration::from_millis(100),
            breaker_failures: 2,
            breaker_open: open,
            in_doubt: Duration::from_secs(60),
        })
    }

    #[test]
    fn rejected_calls_do_not_keep_the_breaker_open_and_one_trial_goes_through() {
        let client = client(Duration::from_millis(50));
        client.record(false, false);
        assert_eq!(client.admit(), Admission::Go);
        client.record(false, false);
        assert!(client.breaker_open());
        // Many callers keep knocking while it is open: none of that prolongs it.
        for _ in 0..100 {
            assert_eq!(client.admit(), Admission::Rejected);
        }
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(client.admit(), Admission::Trial);
        assert_eq!(client.admit(), Admission::Rejected, "one trial at a time");
        // A failed trial opens it again; a successful one closes it.
        client.record(false, true);
        assert!(client.breaker_open());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(client.admit(), Admission::Trial);
        client.record(true, true);
        assert!(!client.breaker_open());
        assert_eq!(client.admit(), Admission::Go);
    }
}
