//! Saga definitions as data: a named, versioned list of steps, each with its action, an
//! optional compensation and query, a retry policy, a per-attempt timeout and a pivot flag.
//! The code an action runs is bound by the step; everything else is plain data that the
//! executor and the operators read.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use corebank_db::{DbError, Transaction};
use serde_json::Value;
use uuid::Uuid;

/// A boxed, sendable future.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What one attempt of an action or compensation came to.
#[derive(Debug, Clone, PartialEq)]
pub enum StepOutcome {
    /// It took effect; the value is the step's output, kept for later steps.
    Done(Value),
    /// A business refusal: never retried; the saga compensates (or, past the pivot, pauses).
    Failed(String),
    /// Worth trying again after a backoff (a timeout that surely did nothing, a busy peer).
    Transient(String),
    /// It may or may not have taken effect (a call that timed out): the step's query decides
    /// before anything is retried or compensated.
    Unknown(String),
    /// It waits for a person (a review, a four-eyes decision): the saga pauses at this step
    /// with the reason, nothing is retried, and resuming it runs the step again, which then
    /// finds the decision. Nothing the attempt wrote is kept (a database step's transaction
    /// is rolled back): record what the person must see in an earlier step.
    Await(String),
}

/// What a step's query found out about an action whose outcome was unknown.
#[derive(Debug, Clone, PartialEq)]
pub enum QueryOutcome {
    /// The action took effect, with this output.
    Applied(Value),
    /// It did not: the action may be tried again.
    NotApplied,
    /// Still unknown: ask again later.
    Unknown(String),
}

/// Which way a step runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Do,
    Undo,
    Query,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Do => "do",
            Direction::Undo => "undo",
            Direction::Query => "query",
        }
    }
}

/// Everything an action knows about the saga it runs for.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub saga_id: Uuid,
    pub saga_type: String,
    pub step: usize,
    pub step_name: String,
    pub direction: Direction,
    /// `saga:<id>:<step name>:<do|undo>`: the same on every attempt and every replica, so
    /// the callee can deduplicate. Queries get the key of the action they ask about.
    pub idempotency_key: String,
    pub input: Value,
    /// Outputs of the steps that completed, by step name.
    pub outputs: BTreeMap<String, Value>,
    /// 1 on the first attempt.
    pub attempt: u32,
    /// The fencing generation of the lease this attempt runs under.
    pub generation: i64,
    /// The executor running the attempt.
    pub owner: String,
}

impl StepContext {
    /// The deterministic key for (saga, step, direction).
    pub fn key_for(saga_id: Uuid, step_name: &str, direction: Direction) -> String {
        let direction = match direction {
            Direction::Do | Direction::Query => "do",
            Direction::Undo => "undo",
        };
        format!("saga:{saga_id}:{step_name}:{direction}")
    }
}

/// What a database action returns: its outcome, or the database error that rolls back the
/// executor's transaction.
pub type DbFuture<'a> = BoxFuture<'a, Result<StepOutcome, DbError>>;

/// An action that runs inside the executor's own transaction: its writes commit together
/// with the saga's progress (or not at all), fenced by the lease generation. Exactly once.
pub type DbActionFn =
    Arc<dyn for<'a> Fn(&'a Transaction<'a>, &'a StepContext) -> DbFuture<'a> + Send + Sync>;

/// An action that calls out (another module, a rail): at least once, deduplicated by the
/// callee through the idempotency key.
pub type CallActionFn = Arc<dyn Fn(StepContext) -> BoxFuture<'static, StepOutcome> + Send + Sync>;

/// Asks whether a call whose outcome was unknown took effect.
pub type QueryFn = Arc<dyn Fn(StepContext) -> BoxFuture<'static, QueryOutcome> + Send + Sync>;

/// The code a step runs, one way or the other.
#[derive(Clone)]
pub enum Action {
    Db(DbActionFn),
    Call(CallActionFn),
}

impl fmt::Debug for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Db(_) => "Action::Db",
            Action::Call(_) => "Action::Call",
        })
    }
}

impl Action {
    /// An action run in the executor's transaction.
    pub fn db<F>(f: F) -> Action
    where
        F: for<'a> Fn(&'a Transaction<'a>, &'a StepContext) -> DbFuture<'a> + Send + Sync + 'static,
    {
        Action::Db(Arc::new(f))
    }

    /// An action that calls out.
    pub fn call<F>(f: F) -> Action
    where
        F: Fn(StepContext) -> BoxFuture<'static, StepOutcome> + Send + Sync + 'static,
    {
        Action::Call(Arc::new(f))
    }

    /// An action that calls out, run twice in a row when `twice` (a saga's test of every
    /// action run twice): a second answer that is not the first fails the step.
    pub fn call_twice_if<F>(twice: bool, f: F) -> Action
    where
        F: Fn(StepContext) -> BoxFuture<'static, StepOutcome> + Send + Sync + 'static,
    {
        if !twice {
            return Action::call(f);
        }
        let f = Arc::new(f);
        Action::call(move |context| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let first = f(context.clone()).await;
                if !matches!(first, StepOutcome::Done(_)) {
                    return first;
                }
                let second = f(context).await;
                if second == first {
                    second
                } else {
                    StepOutcome::Failed(format!(
                        "the second run answered {second:?}, the first {first:?}"
                    ))
                }
            })
        })
    }
}

/// Attempts and backoff of one step (each direction gets the same policy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; when they run out the saga pauses.
    pub attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// 0.0 to 1.0: the share of each backoff that is random.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The pause before attempt `next` (2 for the first retry): exponential, capped, jittered.
    pub fn backoff(&self, next: u32) -> Duration {
        let exponent = next.saturating_sub(2).min(30);
        let base = self
            .initial_backoff
            .saturating_mul(1_u32 << exponent)
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter * fastrand::f64();
        base.mul_f64(factor)
    }
}

/// One step of a saga.
#[derive(Clone)]
pub struct Step {
    pub name: String,
    pub action: Action,
    pub compensation: Option<Action>,
    /// Asked when the action's outcome is unknown; without one, an unknown outcome is retried
    /// (the action must then be idempotent by its key, which every action should be).
    pub query: Option<QueryFn>,
    pub retry: RetryPolicy,
    pub timeout: Duration,
    /// Once this step has completed, the saga only goes forward.
    pub pivot: bool,
}

impl fmt::Debug for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Step")
            .field("name", &self.name)
            .field("action", &self.action)
            .field("compensation", &self.compensation)
            .field("query", &self.query.is_some())
            .field("retry", &self.retry)
            .field("timeout", &self.timeout)
            .field("pivot", &self.pivot)
            .finish()
    }
}

impl Step {
    pub fn new(name: impl Into<String>, action: Action) -> Step {
        Step {
            name: name.into(),
            action,
            compensation: None,
            query: None,
            retry: RetryPolicy::default(),
            timeout: Duration::from_secs(10),
            pivot: false,
        }
    }

    #[must_use]
    pub fn compensate_with(mut self, compensation: Action) -> Step {
        self.compensation = Some(compensation);
        self
    }

    #[must_use]
    pub fn query_with(mut self, query: QueryFn) -> Step {
        self.query = Some(query);
        self
    }

    #[must_use]
    pub fn retry(mut self, retry: RetryPolicy) -> Step {
        self.retry = retry;
        self
    }

    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Step {
        self.timeout = timeout;
        self
    }

    #[must_use]
    pub fn pivot(mut self) -> Step {
        self.pivot = true;
        self
    }
}

/// A named, versioned saga type.
#[derive(Debug, Clone)]
pub struct SagaDefinition {
    pub name: String,
    pub version: i64,
    pub steps: Vec<Step>,
    /// From the start: past it, a saga still running or compensating pauses.
    pub deadline: Option<Duration>,
}

impl SagaDefinition {
    pub fn new(name: impl Into<String>, version: i64, steps: Vec<Step>) -> SagaDefinition {
        SagaDefinition {
            name: name.into(),
            version,
            steps,
            deadline: None,
        }
    }

    #[must_use]
    pub fn deadline(mut self, deadline: Duration) -> SagaDefinition {
        self.deadline = Some(deadline);
        self
    }

    /// The index of the pivot step, if there is one.
    pub fn pivot(&self) -> Option<usize> {
        self.steps.iter().position(|step| step.pivot)
    }
}

/// The definitions an executor knows, by (name, version).
#[derive(Debug, Clone, Default)]
pub struct Registry {
    definitions: BTreeMap<(String, i64), Arc<SagaDefinition>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a definition; a second one under the same name and version is refused.
    pub fn register(&mut self, definition: SagaDefinition) -> Result<(), crate::SagaError> {
        let key = (definition.name.clone(), definition.version);
        if definition.steps.is_empty() {
            return Err(crate::SagaError::InvalidDefinition {
                name: key.0,
                message: "a saga needs at least one step".to_owned(),
            });
        }
        if definition.steps.iter().filter(|s| s.pivot).count() > 1 {
            return Err(crate::SagaError::InvalidDefinition {
                name: key.0,
                message: "a saga has at most one pivot step".to_owned(),
            });
        }
        if self.definitions.contains_key(&key) {
            return Err(crate::SagaError::InvalidDefinition {
                name: key.0,
                message: format!("version {} is registered already", key.1),
            });
        }
        self.definitions.insert(key, Arc::new(definition));
        Ok(())
    }

    /// The definition a running saga was started with.
    pub fn get(&self, name: &str, version: i64) -> Option<Arc<SagaDefinition>> {
        self.definitions
            .get(&(name.to_owned(), version))
            .map(Arc::clone)
    }

    /// The saga types this registry knows.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .definitions
            .keys()
            .map(|(name, _)| name.clone())
            .collect();
        names.dedup();
        names
    }

    /// The newest version of a saga type: what new sagas start on.
    pub fn latest(&self, name: &str) -> Option<Arc<SagaDefinition>> {
        self.definitions
            .range((name.to_owned(), i64::MIN)..=(name.to_owned(), i64::MAX))
            .next_back()
            .map(|(_, definition)| Arc::clone(definition))
    }
}
