//! What operators do to sagas. Every change records who did it and why, in the same
//! transaction, and moves the fencing generation on, so an executor still holding the saga
//! changes nothing more.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use corebank_db::{Db, TxError};
use uuid::Uuid;

use crate::definition::{Registry, SagaDefinition};
use crate::store::{self, ListFilter, OperatorAction, SagaInstance, Status, StepRecord};
use crate::{SagaError, from_tx_error};

/// One saga with everything that happened to it.
#[derive(Debug, Clone, PartialEq)]
pub struct SagaDetail {
    pub instance: SagaInstance,
    pub steps: Vec<StepRecord>,
    pub operator_actions: Vec<OperatorAction>,
}

/// Who asks for an operator action, and why. Both are required.
#[derive(Debug, Clone)]
pub struct Actor {
    pub who: String,
    pub why: String,
}

impl Actor {
    fn check(&self) -> Result<(), SagaError> {
        if self.who.trim().is_empty() {
            return Err(SagaError::InvalidArgument {
                field: "actor",
                message: "say who is acting".to_owned(),
            });
        }
        if self.why.trim().is_empty() {
            return Err(SagaError::InvalidArgument {
                field: "reason",
                message: "say why (it goes into the saga's history)".to_owned(),
            });
        }
        Ok(())
    }
}

/// Four eyes (ADR 0012): an action that needs two operators names its proposer, who is
/// never the operator who carries it out (the approver, `actor`).
pub fn check_four_eyes(actor: &Actor, proposed_by: &str) -> Result<(), SagaError> {
    let proposed_by = proposed_by.trim();
    if proposed_by.is_empty() {
        return Err(SagaError::FourEyesRequired {
            message: "name the operator who proposed the action (proposed_by); another \
                      operator approves it"
                .to_owned(),
        });
    }
    if proposed_by == actor.who.trim() {
        return Err(SagaError::FourEyesRequired {
            message: format!(
                "{proposed_by:?} proposed the action and cannot also approve it: another \
                 operator must"
            ),
        });
    }
    Ok(())
}

/// The terminal state an operator settles a saga in by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    Completed,
    Compensated,
}

/// Sagas matching `filter`, newest first; at most 500 a page.
pub async fn list(db: &Db, filter: ListFilter) -> Result<Vec<SagaInstance>, SagaError> {
    let mut filter = filter;
    filter.limit = filter.limit.clamp(1, 500);
    let filter = &filter;
    db.run_tx("saga_list", |tx| {
        Box::pin(async move { store::list(&tx, filter).await })
    })
    .await
    .map_err(from_tx_error)
}

/// One saga with its step history and operator actions.
pub async fn get(db: &Db, id: Uuid) -> Result<SagaDetail, SagaError> {
    db.run_tx("saga_get", |tx| {
        Box::pin(async move {
            let instance = store::load(&tx, id).await?.ok_or_else(|| not_found(id))?;
            let (steps, actions) =
                tokio::join!(store::steps(&tx, id), store::operator_actions(&tx, id));
            Ok(SagaDetail {
                instance,
                steps: steps?,
                operator_actions: actions?,
            })
        })
    })
    .await
    .map_err(from_tx_error)
}

fn not_found(id: Uuid) -> TxError<SagaError> {
    TxError::Abort(SagaError::NotFound { id: id.to_string() })
}

/// Refuses to change a saga while an executor is running one of its steps: the operator
/// would otherwise start the same step elsewhere, or undo around a step still in flight.
fn not_leased(instance: &SagaInstance, now: DateTime<Utc>) -> Result<(), TxError<SagaError>> {
    match instance.lease_expires_at {
        Some(until) if !instance.lease_owner.is_empty() && until > now => {
            Err(TxError::Abort(SagaError::InvalidState {
                id: instance.id.to_string(),
                status: instance.status.to_string(),
                message: format!(
                    "executor {} is running a step (lease until {}); try again when it has finished",
                    instance.lease_owner,
                    until.to_rfc3339()
                ),
            }))
        }
        _ => Ok(()),
    }
}

fn invalid(instance: &SagaInstance, message: &str) -> TxError<SagaError> {
    TxError::Abort(SagaError::InvalidState {
        id: instance.id.to_string(),
        status: instance.status.to_string(),
        message: message.to_owned(),
    })
}

/// The definition the saga runs under, refused when this build does not know it.
fn definition_of(
    registry: &Registry,
    instance: &SagaInstance,
) -> Result<Arc<SagaDefinition>, TxError<SagaError>> {
    registry
        .get(&instance.saga_type, instance.version)
        .ok_or_else(|| {
            TxError::Abort(SagaError::UnknownType {
                saga_type: format!("{} v{}", instance.saga_type, instance.version),
            })
        })
}

/// Makes `change` to the stored saga and records it. An action that needs four eyes names
/// its proposer (`proposed_by`, checked by [`check_four_eyes`]); `actor` approves it.
async fn operate(
    db: &Db,
    id: Uuid,
    actor: &Actor,
    proposed_by: Option<&str>,
    change: Change<'_>,
) -> Result<SagaInstance, SagaError> {
    if let Some(proposed_by) = proposed_by {
        check_four_eyes(actor, proposed_by)?;
    }
    let proposed_by = proposed_by.map_or("", str::trim);
    actor.check()?;
    let apply = |instance: &mut SagaInstance, now: DateTime<Utc>| change.apply(instance, now);
    let apply = &apply;
    db.run_tx("saga_operator", |tx| {
        Box::pin(
            async move { operate_in(&tx, id, actor, proposed_by, change.action(), apply).await },
        )
    })
    .await
    .map_err(from_tx_error)
}

/// [`operate`] in the caller's transaction.
async fn operate_in<F>(
    tx: &corebank_db::Transaction<'_>,
    id: Uuid,
    actor: &Actor,
    proposed_by: &str,
    action: &str,
    change: &F,
) -> Result<SagaInstance, TxError<SagaError>>
where
    F: Fn(&mut SagaInstance, DateTime<Utc>) -> Result<(), TxError<SagaError>> + Send + Sync,
{
    let mut instance = store::load(tx, id).await?.ok_or_else(|| not_found(id))?;
    let before = instance.status;
    let now = Utc::now();
    change(&mut instance, now)?;
    instance.updated_at = now;
    store::save_by_operator(tx, &instance).await?;
    store::insert_operator_action(
        tx,
        id,
        &OperatorAction {
            id: Uuid::new_v4(),
            action: action.to_owned(),
            actor: actor.who.clone(),
            proposed_by: proposed_by.to_owned(),
            reason: actor.why.clone(),
            status_before: before.to_string(),
            status_after: instance.status.to_string(),
            at: now,
        },
    )
    .await?;
    instance.generation += 1;
    instance.lease_owner.clear();
    instance.lease_expires_at = None;
    Ok(instance)
}

/// A person's decision for a saga waiting at step `step` (one that answered
/// [`StepOutcome::Await`](crate::StepOutcome::Await)), in the caller's transaction, which
/// stores the decision where the step reads it: the saga is recorded as having had `action`
/// done to it by `actor` (proposed by `proposed_by`, when four eyes applied) and goes on
/// now, so the step runs again and finds the decision. A saga that has not paused yet (the
/// step is still to run, or running) is taken over and made due; one anywhere else is
/// refused.
pub async fn decide_in(
    tx: &corebank_db::Transaction<'_>,
    id: Uuid,
    step: &str,
    registry: &Registry,
    actor: &Actor,
    proposed_by: &str,
    action: &str,
) -> Result<SagaInstance, TxError<SagaError>> {
    actor.check().map_err(TxError::Abort)?;
    let change = |instance: &mut SagaInstance, now: DateTime<Utc>| {
        let definition = definition_of(registry, instance)?;
        let at = definition
            .steps
            .get(instance.current_step)
            .is_some_and(|s| s.name == step);
        match instance.status {
            Status::Paused if at && instance.paused_from == Some(Status::Running) => {
                instance.status = Status::Running;
                instance.paused_from = None;
                instance.paused_reason.clear();
            }
            // The step may be running right now. Taking the saga over is safe: a step that
            // awaits a person writes nothing (its transaction rolls back) and the executor's
            // pause is fenced by the generation this bumps, so the step runs again, due now,
            // and finds the decision.
            Status::Running if at => {}
            _ => {
                return Err(invalid(
                    instance,
                    &format!("the saga is not waiting at step {step}"),
                ));
            }
        }
        instance.attempts = 0;
        instance.next_attempt_at = now;
        Ok(())
    };
    operate_in(tx, id, actor, proposed_by, action, &change).await
}

/// A running or compensating saga waiting for its backoff: due now.
pub async fn retry_now(db: &Db, id: Uuid, actor: &Actor) -> Result<SagaInstance, SagaError> {
    operate(db, id, actor, None, Change::RetryNow).await
}

/// A paused saga goes on where it stopped, with fresh attempts.
pub async fn resume(db: &Db, id: Uuid, actor: &Actor) -> Result<SagaInstance, SagaError> {
    operate(db, id, actor, None, Change::Resume).await
}

/// Undo what a running or paused saga did so far, in reverse order. Refused past the pivot.
/// For the owning module's own use (a customer's cancellation): an operator's
/// force-compensate goes through [`force_compensate_approved`].
pub async fn force_compensate(
    db: &Db,
    registry: &Registry,
    id: Uuid,
    actor: &Actor,
) -> Result<SagaInstance, SagaError> {
    operate(db, id, actor, None, Change::Compensate(registry)).await
}

/// An operator's force-compensate: `proposed_by` proposed it, `actor` approved it (four
/// eyes, [`check_four_eyes`]); both go into the saga's history.
pub async fn force_compensate_approved(
    db: &Db,
    registry: &Registry,
    id: Uuid,
    actor: &Actor,
    proposed_by: &str,
) -> Result<SagaInstance, SagaError> {
    operate(
        db,
        id,
        actor,
        Some(proposed_by),
        Change::Compensate(registry),
    )
    .await
}

/// Settles a paused saga by hand, after the operator put things right outside it. An
/// operator's request goes through [`mark_resolved_approved`] (four eyes).
pub async fn mark_resolved(
    db: &Db,
    id: Uuid,
    resolution: Resolution,
    actor: &Actor,
) -> Result<SagaInstance, SagaError> {
    operate(db, id, actor, None, Change::Resolve(resolution)).await
}

/// [`mark_resolved`] proposed by `proposed_by` and approved by `actor` (four eyes); both go
/// into the saga's history.
pub async fn mark_resolved_approved(
    db: &Db,
    id: Uuid,
    resolution: Resolution,
    actor: &Actor,
    proposed_by: &str,
) -> Result<SagaInstance, SagaError> {
    operate(
        db,
        id,
        actor,
        Some(proposed_by),
        Change::Resolve(resolution),
    )
    .await
}

/// What an operator action does to a saga, checked against its state first.
#[derive(Clone, Copy)]
enum Change<'a> {
    RetryNow,
    Resume,
    Compensate(&'a Registry),
    Resolve(Resolution),
}

impl Change<'_> {
    /// The action's name in the saga's history.
    fn action(self) -> &'static str {
        match self {
            Change::RetryNow => "retry_now",
            Change::Resume => "resume",
            Change::Compensate(_) => "force_compensate",
            Change::Resolve(_) => "mark_resolved",
        }
    }

    fn apply(
        self,
        instance: &mut SagaInstance,
        now: DateTime<Utc>,
    ) -> Result<(), TxError<SagaError>> {
        match self {
            Change::RetryNow => retry(instance, now),
            Change::Resume => resumption(instance, now),
            Change::Compensate(registry) => compensation(registry, instance, now),
            Change::Resolve(resolution) => settlement(resolution, instance),
        }
    }
}

/// A retry now: the saga is due at once.
fn retry(instance: &mut SagaInstance, now: DateTime<Utc>) -> Result<(), TxError<SagaError>> {
    if !matches!(instance.status, Status::Running | Status::Compensating) {
        return Err(invalid(
            instance,
            "only a running or compensating saga can be retried now (resume a paused one)",
        ));
    }
    not_leased(instance, now)?;
    instance.next_attempt_at = now;
    Ok(())
}

/// A resume: the saga goes back to the status it was paused from.
fn resumption(instance: &mut SagaInstance, now: DateTime<Utc>) -> Result<(), TxError<SagaError>> {
    let Some(from) = instance
        .paused_from
        .filter(|_| instance.status == Status::Paused)
    else {
        return Err(invalid(instance, "only a paused saga can be resumed"));
    };
    instance.status = from;
    instance.paused_from = None;
    instance.paused_reason.clear();
    instance.attempts = 0;
    instance.next_attempt_at = now;
    if instance.deadline_at.is_some_and(|deadline| deadline < now) {
        // The operator takes the time over: a resumed saga is not paused again at once.
        instance.deadline_at = None;
    }
    Ok(())
}

/// A force-compensate: the saga turns to compensating from where it is.
fn compensation(
    registry: &Registry,
    instance: &mut SagaInstance,
    now: DateTime<Utc>,
) -> Result<(), TxError<SagaError>> {
    let forward = match instance.status {
        Status::Running => true,
        Status::Paused => instance.paused_from == Some(Status::Running),
        _ => false,
    };
    let compensating =
        instance.status == Status::Paused && instance.paused_from == Some(Status::Compensating);
    if !forward && !compensating {
        return Err(invalid(
            instance,
            "only a running saga, or a paused one, can be compensated",
        ));
    }
    let definition = definition_of(registry, instance)?;
    not_leased(instance, now)?;
    // A step whose outcome is still unknown may have taken effect: it is undone too (a
    // compensation must be harmless where its action did nothing). At the pivot, such a
    // step counts as past it.
    let uncertain = forward && instance.awaiting_query;
    if forward
        && definition.pivot().is_some_and(|pivot| {
            instance.current_step > pivot || (uncertain && instance.current_step == pivot)
        })
    {
        return Err(TxError::Abort(SagaError::PastPivot {
            id: instance.id.to_string(),
        }));
    }
    if uncertain {
        instance.current_step += 1;
    }
    instance.status = Status::Compensating;
    instance.paused_from = None;
    instance.paused_reason.clear();
    instance.awaiting_query = false;
    instance.attempts = 0;
    instance.next_attempt_at = now;
    if instance.failure.is_empty() {
        instance.failure = "compensation forced by an operator".to_owned();
    }
    Ok(())
}

/// A mark-resolved: the paused saga ends as `resolution`.
fn settlement(
    resolution: Resolution,
    instance: &mut SagaInstance,
) -> Result<(), TxError<SagaError>> {
    if instance.status != Status::Paused {
        return Err(invalid(
            instance,
            "only a paused saga can be resolved by hand",
        ));
    }
    instance.status = match resolution {
        Resolution::Completed => Status::Completed,
        Resolution::Compensated => Status::Compensated,
    };
    instance.paused_from = None;
    Ok(())
}
