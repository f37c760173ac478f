//! `corebank.payments.v1.Payments`, and the component that serves it with the rail callbacks.

use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_review_server::{
    PaymentsReview as PaymentsReviewApi, PaymentsReviewServer,
};
use corebank_api::payments::v1::payments_server::{Payments as PaymentsApi, PaymentsServer};
use corebank_db::Db;
use corebank_service::internal::{Allow, Caller, allowed_callers, assertion};
use corebank_service::{Component, refusal};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::app::outbound::{NewPayment, PaymentView, SagaOptions};
use crate::app::{Payments, PaymentsConfig, parse_id};
use crate::domain::error::PaymentsError;

/// The payments component: gRPC, the rail's callbacks, the saga executor (stopped by
/// `shutdown`) and the saga operators' API.
pub fn component(
    db: Db,
    deposits: DepositsClient<Channel>,
    config: PaymentsConfig,
    shutdown: CancellationToken,
) -> Result<(Component, Payments), PaymentsError> {
    let payments = Payments::new(db.clone(), deposits, config, SagaOptions::default())?;
    payments.spawn(shutdown);
    let admin = corebank_saga::grpc::SagaAdminService::new(
        db.clone(),
        std::sync::Arc::clone(payments.executor().registry()),
    );
    let component = Component::new("payments")
        .with_db(db)
        .with_internal_routes(
            crate::http::BASE,
            crate::http::router(payments.clone()),
            Allow::only(allowed_callers::RAIL_CALLBACKS),
        )
        .with_grpc(
            PaymentsServer::new(PaymentsService {
                payments: payments.clone(),
            }),
            Allow::only(allowed_callers::PAYMENTS),
        )
        .with_grpc(
            admin.into_server(),
            Allow::only(allowed_callers::SAGA_ADMIN),
        )
        .with_grpc(
            PaymentsReviewServer::new(ReviewService::new(payments.clone())),
            Allow::only(allowed_callers::PAYMENTS_REVIEW),
        );
    Ok((component, payments))
}

#[derive(Debug, Clone)]
pub struct PaymentsService {
    payments: Payments,
}

impl PaymentsService {
    pub fn new(payments: Payments) -> PaymentsService {
        PaymentsService { payments }
    }
}

/// A refusal as a gRPC status with its stable code.
pub fn status_of(error: &PaymentsError) -> Status {
    let code = match error {
        PaymentsError::InvalidArgument { .. } => tonic::Code::InvalidArgument,
        PaymentsError::UnknownPayment { .. } => tonic::Code::NotFound,
        PaymentsError::ExistsWithDifferent { .. } => tonic::Code::AlreadyExists,
        PaymentsError::PastPivot { .. }
        | PaymentsError::CannotCancel { .. }
        | PaymentsError::InvalidPaymentState { .. }
        | PaymentsError::FourEyesRequired { .. }
        | PaymentsError::Deposits { .. } => tonic::Code::FailedPrecondition,
        // Only the rail's HTTP deliveries are signed; kept exhaustive all the same.
        PaymentsError::RailDelivery { .. } | PaymentsError::ActorNotAsserted { .. } => {
            tonic::Code::Unauthenticated
        }
        PaymentsError::Unavailable { .. } => tonic::Code::Unavailable,
        PaymentsError::Internal { .. } => tonic::Code::Internal,
    };
    let internal_detail = match error {
        PaymentsError::Internal { message } => Some(message.as_str()),
        _ => None,
    };
    refusal::status_of("payments", code, error.code(), error, internal_detail)
}

fn payment(view: &PaymentView) -> pb::Payment {
    let r = &view.record;
    pb::Payment {
        id: r.id.to_string(),
        direction: r.direction.clone(),
        status: view.status.clone(),
        debtor_account_id: r.debtor_account_id.clone(),
        creditor: Some(pb::Party {
            name: r.creditor_name.clone(),
            account: r.creditor_account.clone(),
            agent_bic: r.creditor_agent_bic.clone(),
        }),
        amount: r.amount.normalize().to_string(),
        currency: r.currency.clone(),
        end_to_end_id: r.end_to_end_id.clone(),
        uetr: r.uetr.to_string(),
        reason: view.reason.clone(),
        steps: view.steps.clone(),
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
        replayed: view.replayed,
    }
}

#[tonic::async_trait]
impl PaymentsApi for PaymentsService {
    async fn internal_transfer(
        &self,
        request: Request<pb::InternalTransferRequest>,
    ) -> Result<Response<pb::InternalTransferResult>, Status> {
        let r = request.into_inner();
        let result = self
            .payments
            .internal_transfer(
                &r.request_id,
                &r.from_account_id,
                &r.to_account_id,
                &r.amount,
                &r.currency,
                &r.description,
            )
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::InternalTransferResult {
            request_id: result.request_id,
            entry_id: result.entry_id,
            amount: result.amount,
            currency: result.currency,
            from_posted_after: result.from_posted_after,
            replayed: result.replayed,
        }))
    }

    async fn initiate_payment(
        &self,
        request: Request<pb::InitiatePaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let r = request.into_inner();
        let creditor = r.creditor.unwrap_or_default();
        let view = self
            .payments
            .initiate(NewPayment {
                request_id: r.request_id,
                debtor_account_id: r.debtor_account_id,
                creditor_name: creditor.name,
                creditor_account: creditor.account,
                creditor_agent_bic: creditor.agent_bic,
                amount: r.amount,
                currency: r.currency,
                end_to_end_id: r.end_to_end_id,
                remittance_information: r.remittance_information,
            })
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(payment(&view)))
    }

    async fn get_payment(
        &self,
        request: Request<pb::GetPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let id =
            parse_id("payment_id", &request.into_inner().payment_id).map_err(|e| status_of(&e))?;
        let view = self.payments.payment(id).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(payment(&view)))
    }

    async fn cancel_payment(
        &self,
        request: Request<pb::CancelPaymentRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let r = request.into_inner();
        // The request id first: a request without one is refused whatever it names.
        parse_id("request_id", &r.request_id).map_err(|e| status_of(&e))?;
        let id = parse_id("payment_id", &r.payment_id).map_err(|e| status_of(&e))?;
        let view = self
            .payments
            .cancel(&r.request_id, id, &r.reason)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(payment(&view)))
    }
}

/// `corebank.payments.v1.PaymentsReview`: the four-eyes decision on a payment screening
/// held. The approver is the operator the gateway signed for (`x-corebank-actor`), never a
/// field of the request.
#[derive(Debug, Clone)]
pub struct ReviewService {
    payments: Payments,
}

impl ReviewService {
    pub fn new(payments: Payments) -> ReviewService {
        ReviewService { payments }
    }
}

#[tonic::async_trait]
impl PaymentsReviewApi for ReviewService {
    async fn decide_screening(
        &self,
        request: Request<pb::DecideScreeningRequest>,
    ) -> Result<Response<pb::Payment>, Status> {
        let approver = assertion::actor_of(&request).map_err(|error| {
            tracing::warn!(
                caller.component = Caller::of(&request).map(Caller::component).unwrap_or_default(),
                error = %error,
                "screening decision refused: no verified operator"
            );
            status_of(&PaymentsError::ActorNotAsserted {
                message: format!(
                    "{error}: decisions come through the gateway, which signs for the operator"
                ),
            })
        })?;
        let r = request.into_inner();
        let view = self
            .payments
            .decide_screening(
                &r.payment_id,
                &r.decision,
                &r.proposed_by,
                &approver,
                &r.reason,
            )
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(payment(&view)))
    }
}
