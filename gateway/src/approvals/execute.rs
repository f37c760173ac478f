//! The approved call: SagaAdmin `ForceCompensate`/`MarkResolved`, PaymentsReview
//! `DecideScreening` or Deposits `CreateProduct`, made for the approver (signed `x-corebank-actor`) with the proposer in
//! `proposed_by`.

use corebank_api::deposits::v1::deposits_server::SERVICE_NAME as DEPOSITS_SERVICE;
use corebank_api::payments::v1 as ppb;
use corebank_api::payments::v1::payments_review_server::SERVICE_NAME as REVIEW_SERVICE;
use corebank_api::saga::v1 as spb;
use corebank_api::saga::v1::saga_admin_server::SERVICE_NAME as SAGA_SERVICE;
use corebank_service::internal::assertion::{
    ACTOR_HEADER, ACTOR_SIGNATURE_HEADER, AssertionSigner,
};
use serde_json::{Value, json};

use super::{Approval, ApprovalKind, Approvals};
use crate::error::ApiError;

/// `message` as a call to `/<service>/<method>` made for `operator`: the operator named in
/// `x-corebank-actor` and, with mutual TLS, signed for this very method.
pub(crate) fn on_behalf_of<T>(
    signer: Option<&AssertionSigner>,
    message: T,
    path: &str,
    operator: &str,
) -> Result<tonic::Request<T>, ApiError> {
    // Metadata carries visible ASCII only, and the owners trim what they read: a subject
    // that would arrive altered could not match its signature, so it is refused here with a
    // message rather than upstream with a signature error.
    check_operator(operator)?;
    let mut request = tonic::Request::new(message);
    let actor = operator
        .parse()
        .map_err(|error| ApiError::internal(format!("the operator as metadata: {error}")))?;
    request.metadata_mut().insert(ACTOR_HEADER, actor);
    if let Some(signer) = signer {
        let signature = signer
            .sign(path, operator)
            .map_err(|error| ApiError::internal(format!("signing the operator: {error}")))?
            .parse()
            .map_err(|error| ApiError::internal(format!("the signature as metadata: {error}")))?;
        request
            .metadata_mut()
            .insert(ACTOR_SIGNATURE_HEADER, signature);
    }
    Ok(request)
}

/// Refuses an operator name that cannot travel in call metadata unchanged.
pub(crate) fn check_operator(operator: &str) -> Result<(), ApiError> {
    let printable = operator.bytes().all(|byte| (b' '..=b'~').contains(&byte));
    if !printable || operator.trim() != operator {
        return Err(ApiError::forbidden(
            "operator actions need a token whose subject is printable ASCII without \
             surrounding spaces: the operator's name travels to the owner in call metadata",
        ));
    }
    Ok(())
}

/// The owner's answer to an approved call: the saga or payment after it, as JSON.
pub(super) async fn call(
    approvals: &Approvals,
    approval: &Approval,
    approver: &str,
) -> Result<Result<Value, tonic::Status>, ApiError> {
    let signer = approvals.signer.as_deref();
    let reason = approval.reason.clone();
    let proposed_by = approval.proposed_by.clone();
    match approval.kind {
        ApprovalKind::SagaForceCompensate => {
            let request = on_behalf_of(
                signer,
                spb::OperatorRequest {
                    id: approval.target.clone(),
                    actor: approver.to_owned(),
                    reason,
                    proposed_by,
                },
                &format!("/{SAGA_SERVICE}/ForceCompensate"),
                approver,
            )?;
            let mut client = approvals.sagas.clone();
            Ok(client
                .force_compensate(request)
                .await
                .map(|saga| crate::sagas::saga_json(&saga.into_inner())))
        }
        ApprovalKind::SagaMarkResolved => {
            let resolution = approval
                .parameters
                .get("resolution")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let request = on_behalf_of(
                signer,
                spb::MarkResolvedRequest {
                    id: approval.target.clone(),
                    actor: approver.to_owned(),
                    reason,
                    resolution,
                    proposed_by,
                },
                &format!("/{SAGA_SERVICE}/MarkResolved"),
                approver,
            )?;
            let mut client = approvals.sagas.clone();
            Ok(client
                .mark_resolved(request)
                .await
                .map(|saga| crate::sagas::saga_json(&saga.into_inner())))
        }
        ApprovalKind::PaymentScreeningRelease | ApprovalKind::PaymentScreeningRefuse => {
            let decision = if approval.kind == ApprovalKind::PaymentScreeningRelease {
                "release"
            } else {
                "refuse"
            };
            let request = on_behalf_of(
                signer,
                ppb::DecideScreeningRequest {
                    payment_id: approval.target.clone(),
                    decision: decision.to_owned(),
                    proposed_by,
                    reason,
                },
                &format!("/{REVIEW_SERVICE}/DecideScreening"),
                approver,
            )?;
            let mut client = approvals.review.clone();
            Ok(client.decide_screening(request).await.map(|payment| {
                let payment = payment.into_inner();
                json!({ "id": payment.id, "status": payment.status })
            }))
        }
        ApprovalKind::ProductDefine => {
            let definition: crate::products::definition::ProductDefinition =
                serde_json::from_value(approval.parameters.clone()).map_err(|error| {
                    ApiError::internal(format!("a stored product definition: {error}"))
                })?;
            let request = on_behalf_of(
                signer,
                definition.request(false),
                &format!("/{DEPOSITS_SERVICE}/CreateProduct"),
                approver,
            )?;
            let mut client = approvals.products.clone();
            Ok(client.create_product(request).await.map(|product| {
                let view = crate::products::definition::ProductView::from(&product.into_inner());
                serde_json::to_value(view).unwrap_or(Value::Null)
            }))
        }
        ApprovalKind::MigrationStart => {
            let text = |name: &str| {
                approval
                    .parameters
                    .get(name)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            let customer_ids = approval
                .parameters
                .get("customer_ids")
                .and_then(Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            let mut request = crate::migrations::start_request(
                &text("migration_id"),
                &approval.target,
                &text("fraction"),
                false,
                &format!("{proposed_by}, approved by {approver}"),
                customer_ids,
            );
            request.rate_per_s = approval
                .parameters
                .get("rate_per_s")
                .and_then(Value::as_u64)
                .and_then(|rate| u32::try_from(rate).ok())
                .unwrap_or_default();
            request.max_error_ratio = text("max_error_ratio");
            request.in_flight_max = approval
                .parameters
                .get("in_flight_max")
                .and_then(Value::as_u64)
                .and_then(|window| u32::try_from(window).ok())
                .unwrap_or_default();
            let mut client = approvals.migrations.clone();
            Ok(client.start_migration(request).await.map(|started| {
                let view = crate::migrations::MigrationView::from(started.into_inner());
                serde_json::to_value(view).unwrap_or(Value::Null)
            }))
        }
        ApprovalKind::MigrationRollback => {
            let migration_id = approval
                .parameters
                .get("migration_id")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let mut client = approvals.migrations.clone();
            Ok(client
                .return_account(corebank_api::migration::v1::ReturnAccountRequest {
                    migration_id,
                    account_id: approval.target.clone(),
                    requested_by: format!("{proposed_by}, approved by {approver}"),
                })
                .await
                .map(|account| {
                    let view = crate::migrations::AccountMoveView::from(account.into_inner());
                    serde_json::to_value(view).unwrap_or(Value::Null)
                }))
        }
        ApprovalKind::MigrationResume => {
            let mut client = approvals.migrations.clone();
            Ok(client
                .resume_migration(corebank_api::migration::v1::ControlMigrationRequest {
                    migration_id: approval.target.clone(),
                    requested_by: format!("{proposed_by}, approved by {approver}"),
                    reason: approval.reason.clone(),
                })
                .await
                .map(|migration| {
                    let view = crate::migrations::MigrationView::from(migration.into_inner());
                    serde_json::to_value(view).unwrap_or(Value::Null)
                }))
        }
    }
}
