//! `corebank.saga.v1.SagaAdmin`: the operator actions over gRPC, for any component that owns
//! sagas. Refusals carry their stable code in the `corebank-error-code` metadata.
//!
//! The operator an action is recorded under is the one the calling component asserts in
//! signed metadata (`x-corebank-actor`, checked by
//! [`assertion::actor_of`](corebank_service::internal::assertion::actor_of) against the
//! certificate the connection proved), never the `actor` field of the request: any
//! component allowed to call could write any name there, while only the gateway holds the
//! key that signs for the operator whose token it verified.
//!
//! Four eyes (ADR 0012), enforced here too and not only in the gateway: `ForceCompensate`
//! and `MarkResolved` are refused with `four_eyes_required` (FAILED_PRECONDITION) unless
//! `proposed_by` names an operator other than the asserted one, who approved the action.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use corebank_api::saga::v1 as pb;
use corebank_api::saga::v1::saga_admin_server::{SagaAdmin, SagaAdminServer};
use corebank_db::Db;
use corebank_service::internal::{Caller, assertion};
use tonic::{Request, Response, Status as GrpcStatus};
use uuid::Uuid;

use crate::SagaError;
use crate::definition::Registry;
use crate::ops::{self, Actor, Resolution};
use crate::store::{ListFilter, SagaInstance, Status};

/// The tonic service over one schema's sagas.
#[derive(Debug, Clone)]
pub struct SagaAdminService {
    db: Db,
    registry: Arc<Registry>,
}

impl SagaAdminService {
    pub fn new(db: Db, registry: Arc<Registry>) -> SagaAdminService {
        SagaAdminService { db, registry }
    }

    pub fn into_server(self) -> SagaAdminServer<SagaAdminService> {
        SagaAdminServer::new(self)
    }
}

/// A refusal as a gRPC status; internal details stay in the log.
pub fn status_of(error: &SagaError) -> GrpcStatus {
    let code = match error {
        SagaError::InvalidArgument { .. }
        | SagaError::InvalidDefinition { .. }
        | SagaError::ActorMismatch { .. } => tonic::Code::InvalidArgument,
        SagaError::ActorNotAsserted { .. } => tonic::Code::Unauthenticated,
        SagaError::NotFound { .. } | SagaError::UnknownType { .. } => tonic::Code::NotFound,
        SagaError::InvalidState { .. }
        | SagaError::PastPivot { .. }
        | SagaError::FourEyesRequired { .. } => tonic::Code::FailedPrecondition,
        SagaError::ExistsWithDifferent { .. } => tonic::Code::AlreadyExists,
        SagaError::Unavailable { .. } => tonic::Code::Unavailable,
        SagaError::Internal { .. } => tonic::Code::Internal,
    };
    let message = match error {
        SagaError::Internal { message } => {
            tracing::error!(error = %message, "internal saga error");
            "internal error".to_owned()
        }
        other => other.to_string(),
    };
    let mut status = GrpcStatus::new(code, message);
    if let Ok(value) = error.code().parse() {
        status.metadata_mut().insert("corebank-error-code", value);
    }
    status
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn saga_of(instance: &SagaInstance) -> pb::Saga {
    pb::Saga {
        id: instance.id.to_string(),
        saga_type: instance.saga_type.clone(),
        version: instance.version,
        status: instance.status.to_string(),
        input: instance.input.to_string(),
        outputs: serde_json::to_string(&instance.outputs).unwrap_or_default(),
        current_step: u64::try_from(instance.current_step).unwrap_or(u64::MAX),
        attempts: instance.attempts,
        next_attempt_at: time(instance.next_attempt_at),
        lease_owner: instance.lease_owner.clone(),
        lease_expires_at: instance.lease_expires_at.map(time).unwrap_or_default(),
        generation: instance.generation,
        business_key: instance.business_key.clone(),
        failure: instance.failure.clone(),
        paused_reason: instance.paused_reason.clone(),
        paused_from: instance
            .paused_from
            .map(|s| s.to_string())
            .unwrap_or_default(),
        deadline_at: instance.deadline_at.map(time).unwrap_or_default(),
        created_at: time(instance.created_at),
        updated_at: time(instance.updated_at),
    }
}

fn parse_id(id: &str) -> Result<Uuid, GrpcStatus> {
    Uuid::parse_str(id).map_err(|_| {
        status_of(&SagaError::InvalidArgument {
            field: "id",
            message: format!("{id:?} is not a UUID"),
        })
    })
}

/// The verified operator of an action request and the request's body.
fn operator_action<T: OperatorFields>(request: Request<T>) -> Result<(Actor, T), GrpcStatus> {
    let actor = operator(&request)?;
    Ok((actor, request.into_inner()))
}

/// The answer to an operator action: the saga as it is now, or the refusal.
fn saga_answer(saga: Result<SagaInstance, SagaError>) -> Result<Response<pb::Saga>, GrpcStatus> {
    saga.map(|saga| Response::new(saga_of(&saga)))
        .map_err(|e| status_of(&e))
}

/// The operator fields of an action request.
trait OperatorFields {
    /// The `actor` field: ignored in favour of the assertion, kept for older gateways.
    fn claimed_actor(&self) -> &str;
    fn reason(&self) -> &str;
}

impl OperatorFields for pb::OperatorRequest {
    fn claimed_actor(&self) -> &str {
        &self.actor
    }

    fn reason(&self) -> &str {
        &self.reason
    }
}

impl OperatorFields for pb::MarkResolvedRequest {
    fn claimed_actor(&self) -> &str {
        &self.actor
    }

    fn reason(&self) -> &str {
        &self.reason
    }
}

/// Who acts, from the caller's verified assertion, and why. The request's own `actor` field
/// may be empty or repeat the asserted operator (older gateways fill it in); any other name
/// is refused rather than silently replaced, so a caller that tries learns that it cannot.
fn operator<T: OperatorFields>(request: &Request<T>) -> Result<Actor, GrpcStatus> {
    let asserted = assertion::actor_of(request).map_err(|error| {
        tracing::warn!(
            caller.component = Caller::of(request).map(Caller::component).unwrap_or_default(),
            error = %error,
            "saga operator action refused: no verified operator"
        );
        status_of(&SagaError::ActorNotAsserted {
            reason: error.to_string(),
        })
    })?;
    let body = request.get_ref();
    let claimed = body.claimed_actor().trim();
    if !claimed.is_empty() && claimed != asserted {
        return Err(status_of(&SagaError::ActorMismatch {
            asserted,
            claimed: claimed.to_owned(),
        }));
    }
    Ok(Actor {
        who: asserted,
        why: body.reason().to_owned(),
    })
}

/// `<created_at micros>:<id>` of the last saga on a page.
fn page_token(instance: &SagaInstance) -> String {
    format!("{}:{}", instance.created_at.timestamp_micros(), instance.id)
}

fn parse_page_token(token: &str) -> Result<(DateTime<Utc>, Uuid), GrpcStatus> {
    let bad = || {
        status_of(&SagaError::InvalidArgument {
            field: "page_token",
            message: "pass back the next_page_token of the previous page unchanged".to_owned(),
        })
    };
    let (micros, id) = token.split_once(':').ok_or_else(bad)?;
    let micros: i64 = micros.parse().map_err(|_| bad())?;
    let at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok((at, Uuid::parse_str(id).map_err(|_| bad())?))
}

#[tonic::async_trait]
impl SagaAdmin for SagaAdminService {
    async fn list_sagas(
        &self,
        request: Request<pb::ListSagasRequest>,
    ) -> Result<Response<pb::ListSagasResponse>, GrpcStatus> {
        let request = request.into_inner();
        let status = if request.status.is_empty() {
            None
        } else {
            Some(
                request
                    .status
                    .parse::<Status>()
                    .map_err(|e| status_of(&e))?,
            )
        };
        let limit = match request.page_size {
            0 => 50,
            n => i64::from(n.min(500)),
        };
        let created_before = (request.older_than_seconds > 0).then(|| {
            Utc::now()
                - TimeDelta::seconds(i64::try_from(request.older_than_seconds).unwrap_or(i64::MAX))
        });
        let after = if request.page_token.is_empty() {
            None
        } else {
            Some(parse_page_token(&request.page_token)?)
        };
        let filter = ListFilter {
            status,
            saga_type: (!request.saga_type.is_empty()).then_some(request.saga_type),
            business_key: (!request.business_key.is_empty()).then_some(request.business_key),
            created_before,
            after,
            limit,
        };
        let sagas = ops::list(&self.db, filter)
            .await
            .map_err(|e| status_of(&e))?;
        let full = i64::try_from(sagas.len()).unwrap_or(i64::MAX) >= limit;
        let next_page_token = if full {
            sagas.last().map(page_token).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListSagasResponse {
            sagas: sagas.iter().map(saga_of).collect(),
            next_page_token,
        }))
    }

    async fn get_saga(
        &self,
        request: Request<pb::GetSagaRequest>,
    ) -> Result<Response<pb::SagaDetail>, GrpcStatus> {
        let id = parse_id(&request.into_inner().id)?;
        let detail = ops::get(&self.db, id).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::SagaDetail {
            saga: Some(saga_of(&detail.instance)),
            steps: detail
                .steps
                .iter()
                .map(|s| pb::StepAttempt {
                    step: u64::try_from(s.step).unwrap_or(u64::MAX),
                    step_name: s.step_name.clone(),
                    direction: s.direction.clone(),
                    attempt: s.attempt,
                    generation: s.generation,
                    owner: s.owner.clone(),
                    started_at: time(s.started_at),
                    ended_at: time(s.ended_at),
                    outcome: s.outcome.clone(),
                    output: s.output.as_ref().map(|o| o.to_string()).unwrap_or_default(),
                    error: s.error.clone(),
                })
                .collect(),
            operator_actions: detail
                .operator_actions
                .iter()
                .map(|a| pb::OperatorAction {
                    action: a.action.clone(),
                    actor: a.actor.clone(),
                    proposed_by: a.proposed_by.clone(),
                    reason: a.reason.clone(),
                    status_before: a.status_before.clone(),
                    status_after: a.status_after.clone(),
                    at: time(a.at),
                })
                .collect(),
        }))
    }

    async fn retry_now(
        &self,
        request: Request<pb::OperatorRequest>,
    ) -> Result<Response<pb::Saga>, GrpcStatus> {
        let (actor, request) = operator_action(request)?;
        saga_answer(ops::retry_now(&self.db, parse_id(&request.id)?, &actor).await)
    }

    async fn resume(
        &self,
        request: Request<pb::OperatorRequest>,
    ) -> Result<Response<pb::Saga>, GrpcStatus> {
        let (actor, request) = operator_action(request)?;
        saga_answer(ops::resume(&self.db, parse_id(&request.id)?, &actor).await)
    }

    async fn force_compensate(
        &self,
        request: Request<pb::OperatorRequest>,
    ) -> Result<Response<pb::Saga>, GrpcStatus> {
        let (actor, request) = operator_action(request)?;
        let id = parse_id(&request.id)?;
        let proposed_by = request.proposed_by.trim();
        saga_answer(
            ops::force_compensate_approved(&self.db, &self.registry, id, &actor, proposed_by).await,
        )
    }

    async fn mark_resolved(
        &self,
        request: Request<pb::MarkResolvedRequest>,
    ) -> Result<Response<pb::Saga>, GrpcStatus> {
        let (actor, request) = operator_action(request)?;
        let id = parse_id(&request.id)?;
        ops::check_four_eyes(&actor, request.proposed_by.trim()).map_err(|e| status_of(&e))?;
        let resolution = match request.resolution.as_str() {
            "completed" => Resolution::Completed,
            "compensated" => Resolution::Compensated,
            other => {
                return Err(status_of(&SagaError::InvalidArgument {
                    field: "resolution",
                    message: format!("{other:?}: say \"completed\" or \"compensated\""),
                }));
            }
        };
        let proposed_by = request.proposed_by.trim();
        saga_answer(
            ops::mark_resolved_approved(&self.db, id, resolution, &actor, proposed_by).await,
        )
    }
}
