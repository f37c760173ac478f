//! Running one step of a saga: the action (a call, or a database step committed with the
//! saga's new state), its outcome (done, a business failure, a retry, an unknown outcome
//! settled by the step's query, a pause for an operator or a person's decision), and the
//! fenced saves that record it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use corebank_db::{DbError, TxError};
use serde_json::Value;
use uuid::Uuid;

use crate::definition::{
    Action, Direction, QueryOutcome, SagaDefinition, Step, StepContext, StepOutcome,
};
use crate::store::{self, SagaInstance, Status, StepRecord};
use crate::{SagaError, from_tx_error};

use super::{Executor, Interrupt, Next, lease_delta, release};

impl Executor {
    /// One attempt (or one bookkeeping move) of a saga.
    pub(super) async fn step_once(
        &self,
        definition: &SagaDefinition,
        instance: SagaInstance,
    ) -> Next {
        let now = Utc::now();
        if matches!(instance.status, Status::Running | Status::Compensating)
            && instance.deadline_at.is_some_and(|deadline| now > deadline)
        {
            let reason = format!(
                "the saga's deadline passed while it was {}",
                instance.status
            );
            return self.pause(instance, reason, None).await;
        }
        match instance.status {
            Status::Running => {
                let index = instance.current_step;
                let Some(step) = definition.steps.get(index) else {
                    let mut done = instance;
                    done.status = Status::Completed;
                    release(&mut done);
                    return self.finish(done, None).await;
                };
                if instance.awaiting_query
                    && let Some(query) = &step.query
                {
                    return self.run_query(definition, step, query, instance).await;
                }
                self.run_action(definition, step, Direction::Do, instance)
                    .await
            }
            Status::Compensating => {
                let mut instance = instance;
                while instance.current_step > 0
                    && definition
                        .steps
                        .get(instance.current_step - 1)
                        .is_some_and(|step| step.compensation.is_none())
                {
                    instance.current_step -= 1;
                }
                if instance.current_step == 0 {
                    instance.status = Status::Compensated;
                    release(&mut instance);
                    return self.finish(instance, None).await;
                }
                let Some(step) = definition.steps.get(instance.current_step - 1) else {
                    return Next::Stop;
                };
                self.run_action(definition, step, Direction::Undo, instance)
                    .await
            }
            Status::Completed | Status::Compensated | Status::Paused => Next::Stop,
        }
    }

    /// An attempt must end before the lease does, or another executor could start the same
    /// step: renews the lease first when it would not outlast the step's timeout. False when
    /// the saga is no longer this executor's.
    async fn ensure_lease(&self, instance: &mut SagaInstance, step: &Step) -> bool {
        let margin = step.timeout + Duration::from_secs(1);
        if instance
            .lease_expires_at
            .is_some_and(|until| until >= Utc::now() + lease_delta(margin))
        {
            return true;
        }
        instance.lease_expires_at =
            Some(Utc::now() + lease_delta(self.inner.config.lease.max(margin * 2)));
        match self.save(instance, None).await {
            Ok(true) => {
                instance.revision += 1;
                true
            }
            Ok(false) | Err(_) => false,
        }
    }

    fn context(
        &self,
        instance: &SagaInstance,
        step: &Step,
        index: usize,
        direction: Direction,
    ) -> StepContext {
        StepContext {
            saga_id: instance.id,
            saga_type: instance.saga_type.clone(),
            step: index,
            step_name: step.name.clone(),
            direction,
            idempotency_key: StepContext::key_for(instance.id, &step.name, direction),
            input: instance.input.clone(),
            outputs: instance.outputs.clone(),
            attempt: instance.attempts.saturating_add(1),
            generation: instance.generation,
            owner: self.inner.config.owner.clone(),
        }
    }

    async fn run_action(
        &self,
        definition: &SagaDefinition,
        step: &Step,
        direction: Direction,
        mut instance: SagaInstance,
    ) -> Next {
        let index = match direction {
            Direction::Undo => instance.current_step.saturating_sub(1),
            Direction::Do | Direction::Query => instance.current_step,
        };
        let Some(action) = (match direction {
            Direction::Undo => step.compensation.as_ref(),
            Direction::Do | Direction::Query => Some(&step.action),
        }) else {
            return Next::Stop;
        };
        if !self.ensure_lease(&mut instance, step).await {
            return Next::Stop;
        }
        let context = self.context(&instance, step, index, direction);
        let started_at = Utc::now();
        let clock = Instant::now();
        let outcome = match action {
            Action::Db(action) => {
                match self
                    .run_db_action(
                        definition, step, direction, action, &context, &instance, started_at,
                    )
                    .await
                {
                    DbAttempt::Committed(next) => {
                        observe(definition, step, direction, "done", clock);
                        return Next::Continue(next);
                    }
                    // The stored state moved on without this attempt: another executor took
                    // over, or an earlier attempt whose COMMIT seemed lost did commit.
                    DbAttempt::Lost => {
                        return match self.reload(&instance).await {
                            Some(reloaded) => Next::Continue(Box::new(reloaded)),
                            None => Next::Stop,
                        };
                    }
                    // The connection died during COMMIT: the stored state tells whether it
                    // happened. If not, this was one failed attempt.
                    DbAttempt::Reload => match self.reload(&instance).await {
                        Some(reloaded) if reloaded.revision != instance.revision => {
                            return Next::Continue(Box::new(reloaded));
                        }
                        Some(_) => StepOutcome::Transient(
                            "the connection was lost during COMMIT and the step did not commit"
                                .to_owned(),
                        ),
                        None => return Next::Stop,
                    },
                    DbAttempt::Outcome(outcome) => outcome,
                }
            }
            Action::Call(action) => tokio::time::timeout(step.timeout, action(context.clone()))
                .await
                .unwrap_or_else(|_| {
                    StepOutcome::Unknown(format!(
                        "no answer within the step's timeout of {} ms",
                        step.timeout.as_millis()
                    ))
                }),
        };
        let label = outcome_label(&outcome);
        observe(definition, step, direction, label, clock);
        let record = |output: Option<Value>, error: String| {
            attempt_record(&context, started_at, label, output, error)
        };
        match outcome {
            StepOutcome::Done(output) => {
                let record = record(Some(output.clone()), String::new());
                let next = self.succeeded(definition, step, direction, instance, output);
                self.save_and_go_on(next, Some(&record)).await
            }
            StepOutcome::Failed(message) if direction == Direction::Do => {
                let record = record(None, message.clone());
                self.business_failure(definition, step, instance, message, record)
                    .await
            }
            StepOutcome::Unknown(message) if direction == Direction::Do && step.query.is_some() => {
                let record = record(None, message.clone());
                instance.awaiting_query = true;
                self.retry_later(step, direction, instance, message, record)
                    .await
            }
            StepOutcome::Await(reason) => {
                let record = record(None, reason.clone());
                self.pause(instance, reason, Some(&record)).await
            }
            StepOutcome::Failed(message)
            | StepOutcome::Transient(message)
            | StepOutcome::Unknown(message) => {
                let record = record(None, message.clone());
                self.retry_later(step, direction, instance, message, record)
                    .await
            }
        }
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one attempt's whole context, passed down once"
    )]
    async fn run_db_action(
        &self,
        definition: &SagaDefinition,
        step: &Step,
        direction: Direction,
        action: &crate::definition::DbActionFn,
        context: &StepContext,
        instance: &SagaInstance,
        started_at: DateTime<Utc>,
    ) -> DbAttempt {
        let timeout = step.timeout;
        let attempt = self.inner.db.run_tx("saga_step", |tx| {
            let action = Arc::clone(action);
            Box::pin(async move {
                // Only the action is timed: cutting the transaction short during COMMIT
                // would leave its outcome unknown.
                let outcome = match tokio::time::timeout(timeout, action(&tx, context)).await {
                    Ok(outcome) => outcome.map_err(TxError::Db)?,
                    Err(_) => StepOutcome::Transient(format!(
                        "the step did not finish within its timeout of {} ms (rolled back)",
                        timeout.as_millis()
                    )),
                };
                match outcome {
                    StepOutcome::Done(output) => {
                        let record = attempt_record(
                            context,
                            started_at,
                            "done",
                            Some(output.clone()),
                            String::new(),
                        );
                        let next =
                            self.succeeded(definition, step, direction, instance.clone(), output);
                        let saved = store::save_fenced(&tx, &next, Some(&record))
                            .await
                            .map_err(|error| match error {
                                TxError::Db(error) => TxError::Db(error),
                                TxError::Abort(error) => TxError::Abort(Interrupt::Store(error)),
                            })?;
                        if saved {
                            let mut next = next;
                            next.revision += 1;
                            Ok(next)
                        } else {
                            Err(TxError::Abort(Interrupt::LostLease))
                        }
                    }
                    other => Err(TxError::Abort(Interrupt::Outcome(other))),
                }
            })
        });
        match attempt.await {
            Ok(next) => {
                if next.status.is_terminal() {
                    self.settled(&next);
                }
                DbAttempt::Committed(Box::new(next))
            }
            Err(TxError::Abort(Interrupt::LostLease)) => DbAttempt::Lost,
            Err(TxError::Abort(Interrupt::Outcome(outcome))) => DbAttempt::Outcome(outcome),
            Err(TxError::Abort(Interrupt::Store(error))) => DbAttempt::Outcome(
                StepOutcome::Transient(format!("saving the step failed: {error}")),
            ),
            // The commit may have happened: the stored state tells.
            Err(TxError::Db(DbError::OutcomeUnknown { .. })) => DbAttempt::Reload,
            Err(TxError::Db(error)) => DbAttempt::Outcome(StepOutcome::Transient(format!(
                "the step's transaction failed: {error}"
            ))),
        }
    }

    /// The state after a successful attempt.
    fn succeeded(
        &self,
        definition: &SagaDefinition,
        step: &Step,
        direction: Direction,
        mut instance: SagaInstance,
        output: Value,
    ) -> SagaInstance {
        let now = Utc::now();
        instance.attempts = 0;
        instance.awaiting_query = false;
        instance.next_attempt_at = now;
        instance.updated_at = now;
        match direction {
            Direction::Do | Direction::Query => {
                instance.outputs.insert(step.name.clone(), output);
                instance.current_step += 1;
                if instance.current_step >= definition.steps.len() {
                    instance.status = Status::Completed;
                    release(&mut instance);
                } else {
                    instance.lease_expires_at = Some(now + lease_delta(self.inner.config.lease));
                }
            }
            Direction::Undo => {
                instance.current_step = instance.current_step.saturating_sub(1);
                instance.lease_expires_at = Some(now + lease_delta(self.inner.config.lease));
            }
        }
        instance
    }

    async fn run_query(
        &self,
        definition: &SagaDefinition,
        step: &Step,
        query: &crate::definition::QueryFn,
        mut instance: SagaInstance,
    ) -> Next {
        if !self.ensure_lease(&mut instance, step).await {
            return Next::Stop;
        }
        let index = instance.current_step;
        let context = self.context(&instance, step, index, Direction::Query);
        let started_at = Utc::now();
        let clock = Instant::now();
        let answer = tokio::time::timeout(step.timeout, query(context.clone()))
            .await
            .unwrap_or_else(|_| QueryOutcome::Unknown("the query timed out".to_owned()));
        let (label, output, error) = match &answer {
            QueryOutcome::Applied(output) => ("applied", Some(output.clone()), String::new()),
            QueryOutcome::NotApplied => ("not_applied", None, String::new()),
            QueryOutcome::Unknown(message) => ("unknown", None, message.clone()),
        };
        observe(definition, step, Direction::Query, label, clock);
        let record = attempt_record(&context, started_at, label, output, error);
        match answer {
            QueryOutcome::Applied(output) => {
                let next = self.succeeded(definition, step, Direction::Do, instance, output);
                self.save_and_go_on(next, Some(&record)).await
            }
            QueryOutcome::NotApplied => {
                // Nothing happened: the action may run again, as the next attempt.
                instance.awaiting_query = false;
                instance.updated_at = Utc::now();
                self.save_and_go_on(instance, Some(&record)).await
            }
            QueryOutcome::Unknown(message) => {
                self.retry_later(step, Direction::Do, instance, message, record)
                    .await
            }
        }
    }

    async fn business_failure(
        &self,
        definition: &SagaDefinition,
        step: &Step,
        mut instance: SagaInstance,
        message: String,
        record: StepRecord,
    ) -> Next {
        if definition
            .pivot()
            .is_some_and(|pivot| instance.current_step > pivot)
        {
            let reason = format!(
                "step {} failed after the pivot (forward recovery only): {message}",
                step.name
            );
            return self.pause(instance, reason, Some(&record)).await;
        }
        let now = Utc::now();
        instance.status = Status::Compensating;
        instance.failure = format!("step {} failed: {message}", step.name);
        instance.attempts = 0;
        instance.awaiting_query = false;
        instance.next_attempt_at = now;
        instance.updated_at = now;
        metrics::counter!("corebank_saga_compensations_total", "saga_type" => instance.saga_type.clone())
            .increment(1);
        self.save_and_go_on(instance, Some(&record)).await
    }

    async fn retry_later(
        &self,
        step: &Step,
        direction: Direction,
        mut instance: SagaInstance,
        message: String,
        record: StepRecord,
    ) -> Next {
        let attempts = instance.attempts.saturating_add(1);
        if attempts >= step.retry.attempts {
            let reason = format!(
                "step {} ({}) gave up after {attempts} attempts: {message}",
                step.name,
                direction.as_str()
            );
            return self.pause(instance, reason, Some(&record)).await;
        }
        metrics::counter!("corebank_saga_step_retries_total", "saga_type" => instance.saga_type.clone(), "step" => step.name.clone())
            .increment(1);
        let now = Utc::now();
        instance.attempts = attempts;
        instance.next_attempt_at = now + lease_delta(step.retry.backoff(attempts + 1));
        instance.updated_at = now;
        release(&mut instance);
        let at = instance.next_attempt_at;
        match self.save(&instance, Some(&record)).await {
            Ok(true) => Next::Wait(at),
            Ok(false) | Err(_) => Next::Stop,
        }
    }

    async fn pause(
        &self,
        mut instance: SagaInstance,
        reason: String,
        record: Option<&StepRecord>,
    ) -> Next {
        tracing::warn!(saga.id = %instance.id, saga.saga_type = %instance.saga_type, %reason, "saga paused: it needs an operator");
        metrics::counter!("corebank_saga_paused_total", "saga_type" => instance.saga_type.clone())
            .increment(1);
        let now = Utc::now();
        instance.paused_from = Some(instance.status);
        instance.status = Status::Paused;
        instance.paused_reason = reason;
        instance.updated_at = now;
        release(&mut instance);
        self.finish(instance, record).await
    }

    /// Saves a state that ends the drive (terminal or paused) and tells the watchers.
    async fn finish(&self, instance: SagaInstance, record: Option<&StepRecord>) -> Next {
        if let Ok(true) = self.save(&instance, record).await {
            self.settled(&instance);
        }
        Next::Stop
    }

    fn settled(&self, instance: &SagaInstance) {
        metrics::counter!("corebank_saga_settled_total", "saga_type" => instance.saga_type.clone(), "status" => instance.status.as_str())
            .increment(1);
        self.inner.watchers.settled(instance.id, instance.status);
    }

    async fn save_and_go_on(
        &self,
        mut instance: SagaInstance,
        record: Option<&StepRecord>,
    ) -> Next {
        match self.save(&instance, record).await {
            Ok(true) if instance.status.is_terminal() => {
                self.settled(&instance);
                Next::Stop
            }
            Ok(true) => {
                instance.revision += 1;
                Next::Continue(Box::new(instance))
            }
            Ok(false) | Err(_) => Next::Stop,
        }
    }

    /// A fenced write in a transaction of its own: whether this executor still held the saga.
    pub(super) async fn save(
        &self,
        instance: &SagaInstance,
        record: Option<&StepRecord>,
    ) -> Result<bool, SagaError> {
        let saved = self
            .inner
            .db
            .run_tx("saga_save", |tx| {
                Box::pin(async move { store::save_fenced(&tx, instance, record).await })
            })
            .await
            .map_err(from_tx_error);
        match &saved {
            Ok(false) => {
                tracing::info!(saga.id = %instance.id, "the saga was taken over; leaving it")
            }
            Err(error) => {
                tracing::warn!(saga.id = %instance.id, %error, "saving the saga failed; its lease will lapse and it will be resumed");
            }
            Ok(true) => {}
        }
        saved
    }

    /// The stored state, if this executor still holds the saga.
    async fn reload(&self, instance: &SagaInstance) -> Option<SagaInstance> {
        let id = instance.id;
        let stored = self
            .inner
            .db
            .run_tx("saga_load", |tx| {
                Box::pin(async move { store::load(&tx, id).await })
            })
            .await
            .ok()
            .flatten()?;
        (stored.generation == instance.generation && stored.lease_owner == instance.lease_owner)
            .then_some(stored)
    }
}

enum DbAttempt {
    Committed(Box<SagaInstance>),
    Lost,
    Reload,
    Outcome(StepOutcome),
}

/// The history row of one attempt described by `context`, ending now.
fn attempt_record(
    context: &StepContext,
    started_at: DateTime<Utc>,
    outcome: &str,
    output: Option<Value>,
    error: String,
) -> StepRecord {
    StepRecord {
        saga_id: context.saga_id,
        id: Uuid::new_v4(),
        step: context.step,
        step_name: context.step_name.clone(),
        direction: context.direction.as_str().to_owned(),
        attempt: context.attempt,
        generation: context.generation,
        owner: context.owner.clone(),
        started_at,
        ended_at: Utc::now(),
        outcome: outcome.to_owned(),
        output,
        error,
    }
}

fn outcome_label(outcome: &StepOutcome) -> &'static str {
    match outcome {
        StepOutcome::Done(_) => "done",
        StepOutcome::Failed(_) => "failed",
        StepOutcome::Transient(_) => "transient",
        StepOutcome::Unknown(_) => "unknown",
        StepOutcome::Await(_) => "awaiting",
    }
}

fn observe(
    definition: &SagaDefinition,
    step: &Step,
    direction: Direction,
    outcome: &'static str,
    clock: Instant,
) {
    metrics::histogram!(
        "corebank_saga_step_duration_seconds",
        "saga_type" => definition.name.clone(),
        "step" => step.name.clone(),
        "direction" => direction.as_str(),
        "outcome" => outcome,
    )
    .record(clock.elapsed().as_secs_f64());
}
