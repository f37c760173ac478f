//! Shadow comparison and automatic rollback: the primary's answer goes to the caller; the
//! same canonical request runs on the other side (against its own books) from a bounded
//! queue, never slowing the primary; both answers are normalised and compared field by
//! field; mismatches are stored (personal data redacted) and counted; and a sliding window
//! per (product, operation) over the modern side's errors and the mismatches sends the rule
//! back to legacy when a rate passes its threshold. `/admin/v1/shadow` lists and summarises.
//!
//! What the channel handlers do per request: [`Shadow::observe_primary`] with every
//! primary answer (shadowed or not), then, when the decision asks for a shadow,
//! [`Shadow::submit`] with a [`ShadowJob`]. The primary's outcome is counted once, by
//! `observe_primary`; a job counts only the shadow's own outcome and the comparison.

mod admin;
mod normalize;
mod store;
mod window;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::Utc;
use corebank_db::Db;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::routing::{Router, Side};

pub use normalize::{
    DIFFERENCES_MAX, Difference, FieldRules, NormalizationRules, REDACTED, compare, is_personal,
    redact,
};
pub use store::Mismatch;
use window::{Tally, Window, bucket_of};

/// A shadow call that has not answered after this long counts as a shadow error.
pub const SHADOW_RUN_TIMEOUT_MS: u64 = 10_000;
/// Workers per gateway replica at most, whatever the configuration asks.
pub const WORKERS_MAX: usize = 64;
/// Stored mismatches are deleted after this many days.
pub const MISMATCH_RETENTION_DAYS: i64 = 30;
/// How often the retention sweep runs, and how many rows one sweep deletes at most.
const RETENTION_SWEEP_INTERVAL_S: u64 = 3_600;
const RETENTION_SWEEP_ROWS_MAX: i64 = 10_000;
/// A stored payload larger than this (serialised, after redaction) is replaced by a note
/// of its size.
pub const STORED_PAYLOAD_BYTES_MAX: usize = 64 * 1024;
/// (product, operation) pairs tracked at most (counts and rollback windows); products come
/// from the catalog, so this is never reached in practice, but memory stays bounded.
const TRACKED_RULES_MAX: usize = 10_000;

/// One answer of a side: the HTTP status and the gateway's JSON body (or error envelope).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// Whether the side failed rather than answered: a 5xx, or the envelope code
    /// `unavailable` (whatever its status); never a 503 `account_moving`.
    pub fn is_failure(&self) -> bool {
        let code = self.body.get("code").and_then(Value::as_str);
        // An account migration's freeze (503 `account_moving`) is the migration working,
        // not the side failing: counted, a busy migration would roll its own product back.
        code != Some(crate::homes::MOVING_CODE)
            && (self.status >= 500 || code == Some("unavailable"))
    }
}

/// One shadow run: the primary's answer and a future that sends the same canonical
/// request to the other side's own books.
pub struct ShadowJob {
    pub product: String,
    pub operation: String,
    pub primary_side: Side,
    pub shadow_side: Side,
    /// The channel request's `X-Request-ID`, for the mismatch record.
    pub request_id: String,
    /// What the caller got.
    pub primary: Answer,
    /// The shadow call; it answers the shadow side's [`Answer`] (5xx or `unavailable` when
    /// it failed).
    pub run: Pin<Box<dyn Future<Output = Answer> + Send>>,
}

impl fmt::Debug for ShadowJob {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("ShadowJob")
            .field("product", &self.product)
            .field("operation", &self.operation)
            .field("primary_side", &self.primary_side)
            .field("shadow_side", &self.shadow_side)
            .field("request_id", &self.request_id)
            .field("primary_status", &self.primary.status)
            .finish_non_exhaustive()
    }
}

/// When the automatic rollback trips for a (product, operation).
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPolicy {
    /// The sliding window (kept as 20 buckets, so it slides in steps of `window / 20`).
    pub window: Duration,
    /// Modern-side answers (for the error rate) or comparisons (for the mismatch rate) seen
    /// in the window before that rate can trip.
    pub requests_min: u64,
    /// The modern side's failures (5xx, `unavailable`) per answer, as a fraction; trips
    /// when passed (strictly above).
    pub error_rate_max: f64,
    /// Mismatches per comparison, as a fraction; trips when passed.
    pub mismatch_rate_max: f64,
}

impl Default for RollbackPolicy {
    /// 60 s, at least 50 answers, 5 % errors, 5 % mismatches.
    fn default() -> RollbackPolicy {
        RollbackPolicy {
            window: Duration::from_secs(60),
            requests_min: 50,
            error_rate_max: 0.05,
            mismatch_rate_max: 0.05,
        }
    }
}

/// The shadow's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ShadowConfig {
    /// Jobs waiting at most (the `gateway_shadow_queue_max` setting); beyond it a job is
    /// dropped and counted.
    pub queue_max: usize,
    /// Jobs run concurrently (1 to [`WORKERS_MAX`]).
    pub workers: usize,
    pub rules: NormalizationRules,
    pub rollback: RollbackPolicy,
}

impl ShadowConfig {
    /// `queue_max` with 4 workers, the default normalisation and rollback policy.
    pub fn new(queue_max: usize) -> ShadowConfig {
        ShadowConfig {
            queue_max,
            workers: 4,
            rules: NormalizationRules::default(),
            rollback: RollbackPolicy::default(),
        }
    }
}

/// The counts of one (product, operation) on this replica since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ShadowCounts {
    /// Shadow runs whose answers were compared (`matched + mismatched`).
    pub compared: u64,
    pub matched: u64,
    pub mismatched: u64,
    /// Jobs dropped because the queue was full (or the shadow shut down).
    pub dropped: u64,
    /// Shadow runs that failed (5xx, `unavailable`, timeout): not compared.
    pub shadow_errors: u64,
    /// Automatic rollbacks tripped.
    pub automatic_rollbacks: u64,
}

type RuleKey = (String, String);

#[derive(Debug, Default)]
struct State {
    counts: BTreeMap<RuleKey, ShadowCounts>,
    windows: HashMap<RuleKey, Window>,
    /// Rules whose automatic rollback is running: not judged again until it finished.
    rolling_back: HashSet<RuleKey>,
}

#[derive(Debug)]
struct Inner {
    db: Db,
    router: Router,
    sender: mpsc::Sender<ShadowJob>,
    /// The rules of each operation, merged once at start; `common` for any other.
    rules: HashMap<String, FieldRules>,
    common: FieldRules,
    rollback: RollbackPolicy,
    started: Instant,
    state: Mutex<State>,
}

/// The shadow comparison of this gateway replica. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shadow {
    inner: Arc<Inner>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Match,
    Mismatch,
    ShadowError,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Match => "match",
            Outcome::Mismatch => "mismatch",
            Outcome::ShadowError => "shadow_error",
        }
    }
}

/// `value` redacted, or a note of its size when it is too large to store.
fn stored_payload(value: &Value) -> Value {
    let redacted = redact(value);
    let bytes = redacted.to_string().len();
    if bytes > STORED_PAYLOAD_BYTES_MAX {
        json!({ "truncated": true, "bytes": bytes })
    } else {
        redacted
    }
}

impl Shadow {
    /// Starts the worker(s) that run jobs from a bounded queue of `queue_max`, until
    /// `shutdown`, and the retention sweep of stored mismatches. `db`'s search path must be
    /// the gateway's schema.
    pub fn start(
        db: Db,
        router: Router,
        config: ShadowConfig,
        shutdown: CancellationToken,
    ) -> Shadow {
        // A channel needs room for one job at least.
        let (sender, receiver) = mpsc::channel(config.queue_max.max(1));
        let rules = config
            .rules
            .operations
            .keys()
            .map(|operation| (operation.clone(), config.rules.for_operation(operation)))
            .collect();
        let shadow = Shadow {
            inner: Arc::new(Inner {
                db,
                router,
                sender,
                rules,
                common: config.rules.common.clone(),
                rollback: config.rollback,
                started: Instant::now(),
                state: Mutex::new(State::default()),
            }),
        };
        let receiver = Arc::new(tokio::sync::Mutex::new(receiver));
        for _ in 0..config.workers.clamp(1, WORKERS_MAX) {
            tokio::spawn(shadow.clone().work(Arc::clone(&receiver), shutdown.clone()));
        }
        tokio::spawn(shadow.clone().sweep(shutdown));
        shadow
    }

    /// Never waits: a full queue drops the job and counts it
    /// (`corebank_gateway_shadow_dropped_total{product,operation}`); answers whether it was
    /// queued.
    pub fn submit(&self, job: ShadowJob) -> bool {
        let job = match self.inner.sender.try_send(job) {
            Ok(()) => return true,
            Err(mpsc::error::TrySendError::Full(job) | mpsc::error::TrySendError::Closed(job)) => {
                job
            }
        };
        metrics::counter!(
            "corebank_gateway_shadow_dropped_total",
            "product" => job.product.clone(),
            "operation" => job.operation.clone(),
        )
        .increment(1);
        let mut state = self.state();
        if let Some(counts) = counts_of(&mut state, &job.product, &job.operation) {
            counts.dropped = counts.dropped.saturating_add(1);
        }
        false
    }

    /// Records the primary's outcome for the rollback window even when no shadow runs.
    /// Only the modern side's answers count (the window judges the modern side); a failure
    /// is a 5xx or `unavailable`.
    pub fn observe_primary(&self, product: &str, operation: &str, side: Side, answer: &Answer) {
        if side != Side::Modern {
            return;
        }
        let tally = Tally {
            modern_outcomes: 1,
            modern_errors: u64::from(answer.is_failure()),
            ..Tally::default()
        };
        self.judge(product, operation, &tally);
    }

    /// The counts per (product, operation) on this replica since it started.
    pub fn counts(&self) -> BTreeMap<(String, String), ShadowCounts> {
        self.state().counts.clone()
    }

    /// `GET /admin/v1/shadow` (scope `routes:read`): stored mismatches newest first, paged
    /// with `limit` and `before`, filtered by `product` and `operation`, and this replica's
    /// summary per product and operation.
    pub fn admin_router(&self) -> axum::Router {
        admin::routes(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is counters and windows, each updated in one step: a panic elsewhere
        // cannot leave it half-written.
        match self.inner.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn rules_for(&self, operation: &str) -> &FieldRules {
        self.inner
            .rules
            .get(operation)
            .unwrap_or(&self.inner.common)
    }

    async fn work(
        self,
        receiver: Arc<tokio::sync::Mutex<mpsc::Receiver<ShadowJob>>>,
        shutdown: CancellationToken,
    ) {
        loop {
            let job = tokio::select! {
                () = shutdown.cancelled() => break,
                job = async { receiver.lock().await.recv().await } => job,
            };
            let Some(job) = job else { break };
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.run(job) => {}
            }
        }
    }

    /// Runs one job: the shadow call, the comparison, the counts, the stored mismatch.
    async fn run(&self, job: ShadowJob) {
        let timeout = Duration::from_millis(SHADOW_RUN_TIMEOUT_MS);
        let answer = tokio::time::timeout(timeout, job.run)
            .await
            .unwrap_or_else(|_| Answer {
                status: 504,
                body: json!({
                    "code": "timeout",
                    "message": format!("the shadow call did not answer within {SHADOW_RUN_TIMEOUT_MS} ms"),
                    "retry_safe": true,
                }),
            });
        let shadow_is_modern = job.shadow_side == Side::Modern;
        let (outcome, differences) = if answer.is_failure() {
            (Outcome::ShadowError, Vec::new())
        } else {
            let differences = compare(self.rules_for(&job.operation), &job.primary, &answer);
            let outcome = if differences.is_empty() {
                Outcome::Match
            } else {
                Outcome::Mismatch
            };
            (outcome, differences)
        };
        // Stored before it is counted: the summary never counts a mismatch that the list
        // does not have yet.
        match outcome {
            Outcome::Match => {}
            Outcome::ShadowError => tracing::debug!(
                shadow.product = job.product,
                shadow.operation = job.operation,
                shadow.side = job.shadow_side.as_str(),
                shadow.status = answer.status,
                request.id = job.request_id,
                "shadow call failed"
            ),
            Outcome::Mismatch => {
                let mismatch = Mismatch {
                    id: Uuid::new_v4(),
                    at: Utc::now(),
                    product: job.product.clone(),
                    operation: job.operation.clone(),
                    primary_side: job.primary_side.as_str().to_owned(),
                    shadow_side: job.shadow_side.as_str().to_owned(),
                    request_id: job.request_id.clone(),
                    primary_status: i64::from(job.primary.status),
                    shadow_status: i64::from(answer.status),
                    differences: differences
                        .iter()
                        .map(|difference| Value::String(difference.to_string()))
                        .collect(),
                    primary_answer: stored_payload(&job.primary.body),
                    shadow_answer: stored_payload(&answer.body),
                };
                self.store_mismatch(mismatch).await;
            }
        }
        metrics::counter!(
            "corebank_gateway_shadow_total",
            "product" => job.product.clone(),
            "operation" => job.operation.clone(),
            "outcome" => outcome.label(),
        )
        .increment(1);
        {
            let mut state = self.state();
            if let Some(counts) = counts_of(&mut state, &job.product, &job.operation) {
                match outcome {
                    Outcome::Match => {
                        counts.compared = counts.compared.saturating_add(1);
                        counts.matched = counts.matched.saturating_add(1);
                    }
                    Outcome::Mismatch => {
                        counts.compared = counts.compared.saturating_add(1);
                        counts.mismatched = counts.mismatched.saturating_add(1);
                    }
                    Outcome::ShadowError => {
                        counts.shadow_errors = counts.shadow_errors.saturating_add(1);
                    }
                }
            }
        }
        let tally = Tally {
            modern_outcomes: u64::from(shadow_is_modern),
            modern_errors: u64::from(shadow_is_modern && outcome == Outcome::ShadowError),
            compared: u64::from(outcome != Outcome::ShadowError),
            mismatched: u64::from(outcome == Outcome::Mismatch),
        };
        self.judge(&job.product, &job.operation, &tally);
    }

    async fn store_mismatch(&self, mismatch: Mismatch) {
        tracing::info!(
            shadow.product = mismatch.product,
            shadow.operation = mismatch.operation,
            shadow.primary_side = mismatch.primary_side,
            request.id = mismatch.request_id,
            shadow.differences = %mismatch.differences,
            "shadow mismatch"
        );
        let mismatch = &mismatch;
        let stored = self
            .inner
            .db
            .run_tx("gateway_shadow_mismatch_insert", |tx| {
                Box::pin(async move { store::insert(&tx, mismatch).await })
            })
            .await;
        if let Err(error) = stored {
            tracing::warn!(
                error = %error,
                request.id = mismatch.request_id,
                "a shadow mismatch could not be stored (it is counted)"
            );
        }
    }

    /// Adds `tally` to the rule's window and trips the automatic rollback when a rate
    /// passed its threshold: once, then the window starts again.
    fn judge(&self, product: &str, operation: &str, tally: &Tally) {
        let policy = &self.inner.rollback;
        let bucket = bucket_of(self.inner.started.elapsed(), policy.window);
        let reason = {
            let mut state = self.state();
            let key = (product.to_owned(), operation.to_owned());
            if !state.windows.contains_key(&key) && state.windows.len() >= TRACKED_RULES_MAX {
                return;
            }
            let window = state.windows.entry(key.clone()).or_default();
            window.record(bucket, tally);
            if state.rolling_back.contains(&key) {
                return;
            }
            let window = state.windows.entry(key.clone()).or_default();
            let Some(reason) = window.verdict(bucket, policy) else {
                return;
            };
            window.reset();
            state.rolling_back.insert(key);
            if let Some(counts) = counts_of(&mut state, product, operation) {
                counts.automatic_rollbacks = counts.automatic_rollbacks.saturating_add(1);
            }
            reason
        };
        metrics::counter!(
            "corebank_gateway_auto_rollbacks_total",
            "product" => product.to_owned(),
            "operation" => operation.to_owned(),
        )
        .increment(1);
        tracing::warn!(
            route.product = product,
            route.operation = operation,
            reason,
            "automatic rollback to legacy tripped"
        );
        let shadow = self.clone();
        let (product, operation) = (product.to_owned(), operation.to_owned());
        tokio::spawn(async move {
            let rolled_back = shadow
                .inner
                .router
                .automatic_rollback(&product, &operation, &reason)
                .await;
            if let Err(error) = rolled_back {
                tracing::error!(
                    error = %error,
                    route.product = product,
                    route.operation = operation,
                    "the automatic rollback to legacy failed; it trips again on the next breach"
                );
            }
            let mut state = shadow.state();
            let key = (product, operation);
            // What the window saw while the rollback ran was routed by the old rule.
            if let Some(window) = state.windows.get_mut(&key) {
                window.reset();
            }
            state.rolling_back.remove(&key);
        });
    }

    /// Deletes mismatches older than the retention, every hour, until `shutdown`.
    async fn sweep(self, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(Duration::from_secs(RETENTION_SWEEP_INTERVAL_S));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = interval.tick() => {}
            }
            let cutoff = Utc::now() - chrono::Duration::days(MISMATCH_RETENTION_DAYS);
            let swept = self
                .inner
                .db
                .run_tx("gateway_shadow_mismatch_sweep", |tx| {
                    Box::pin(
                        async move { store::prune(&tx, cutoff, RETENTION_SWEEP_ROWS_MAX).await },
                    )
                })
                .await;
            match swept {
                Ok(0) => {}
                Ok(deleted) => {
                    tracing::info!(shadow.deleted = deleted, "old shadow mismatches deleted")
                }
                Err(error) => {
                    tracing::warn!(error = %error, "old shadow mismatches could not be deleted")
                }
            }
        }
    }

    pub(crate) fn db(&self) -> &Db {
        &self.inner.db
    }
}

/// The counts of (product, operation), unless too many pairs are tracked already.
fn counts_of<'s>(
    state: &'s mut State,
    product: &str,
    operation: &str,
) -> Option<&'s mut ShadowCounts> {
    let key = (product.to_owned(), operation.to_owned());
    if !state.counts.contains_key(&key) && state.counts.len() >= TRACKED_RULES_MAX {
        return None;
    }
    Some(state.counts.entry(key).or_default())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Answer;

    fn answer(status: u16, code: &str) -> Answer {
        Answer {
            status,
            body: json!({ "code": code, "message": "m" }),
        }
    }

    #[test]
    fn a_side_fails_with_a_5xx_or_unavailable_but_not_with_a_move_in_progress() {
        assert!(answer(500, "internal").is_failure());
        assert!(answer(504, "timeout").is_failure());
        assert!(answer(422, "unavailable").is_failure());
        assert!(!answer(422, "insufficient_funds").is_failure());
        assert!(!answer(201, "").is_failure());
        // A move's freeze refused it: the rollback window must not count it against modern.
        assert!(!answer(503, crate::homes::MOVING_CODE).is_failure());
    }
}
