//! `corebank.saga.v1.SagaAdmin` over a real server, behind the internal listener's mutual
//! TLS: operators (through the gateway) find a paused saga, read its history, are refused
//! with stable codes when a request is incomplete, and resume it; the operator recorded is
//! the one the gateway signed for, and nobody else can say who acts.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use corebank_api::saga::v1 as pb;
use corebank_api::saga::v1::saga_admin_client::SagaAdminClient;
use corebank_saga::grpc::SagaAdminService;
use corebank_saga::{Executor, Status, demo};
use corebank_service::Component;
use corebank_service::contract::error_code as code;
use corebank_service::internal::assertion::ACTOR_HEADER;
use corebank_service::internal::{Allow, allowed_callers};
use corebank_testkit::{TestApp, TestDatabase};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

/// The component the test mounts SagaAdmin in (its certificate answers).
const SERVER: &str = "demo";

/// `status` is a refusal with the gRPC `grpc_code` and the stable `error_code`.
fn assert_refused(status: &tonic::Status, grpc_code: tonic::Code, error_code: &str) {
    assert_eq!(status.code(), grpc_code);
    assert_eq!(code(status), error_code);
}

/// A resume that the gateway signed for the operator ops-7.
fn resume_by_ops_7(request: pb::OperatorRequest) -> tonic::Request<pb::OperatorRequest> {
    from_gateway(request, "Resume", "ops-7")
}

/// Resumes the saga `id` as the gateway does for ops-7 (the body naming `body_actor`, with
/// `reason`) and checks that it runs again.
async fn resume_running_as_ops_7(
    client: &mut SagaAdminClient<Channel>,
    id: Uuid,
    body_actor: &str,
    reason: &str,
) {
    let request = resume_by_ops_7(operator_request(id, body_actor, reason));
    let resumed = client.resume(request).await.unwrap().into_inner();
    assert_eq!(resumed.status, "running");
}

/// A force-compensate proposed by `proposed_by` that the gateway signed for the operator
/// ops-7.
fn compensate_by_ops_7(
    proposed_by: &str,
    request: pb::OperatorRequest,
) -> tonic::Request<pb::OperatorRequest> {
    let request = pb::OperatorRequest {
        proposed_by: proposed_by.to_owned(),
        ..request
    };
    from_gateway(request, "ForceCompensate", "ops-7")
}

/// The saga `id` as SagaAdmin shows it.
async fn saga_detail(client: &mut SagaAdminClient<Channel>, id: Uuid) -> pb::SagaDetail {
    let request = pb::GetSagaRequest { id: id.to_string() };
    client.get_saga(request).await.unwrap().into_inner()
}

/// A saga whose only step fails until `peer_down` is cleared, behind a SagaAdmin mounted as
/// the payments module mounts it: callable by the gateway alone.
struct Fixture {
    _database: TestDatabase,
    executor: Executor,
    peer_down: Arc<AtomicBool>,
    app: TestApp,
    shutdown: CancellationToken,
}

impl Fixture {
    async fn start() -> Fixture {
        let database = TestDatabase::create().await;
        let db = database.db_for("demo");
        let peer_down = Arc::new(AtomicBool::new(true));
        let (executor, registry) = demo::peer_executor(&db, &peer_down).unwrap();
        let shutdown = CancellationToken::new();
        executor.spawn(shutdown.clone());
        let app = TestApp::spawn(Component::new("demo").with_db(db.clone()).with_grpc(
            SagaAdminService::new(db, registry).into_server(),
            Allow::only(allowed_callers::SAGA_ADMIN),
        ))
        .await;
        Fixture {
            _database: database,
            executor,
            peer_down,
            app,
            shutdown,
        }
    }

    /// A fixture with a saga paused for `business_key`, and SagaAdmin as the gateway calls it.
    async fn with_paused_saga(business_key: &str) -> (Fixture, SagaAdminClient<Channel>, Uuid) {
        let fixture = Fixture::start().await;
        let gateway = fixture.client_as("gateway");
        let id = fixture.paused_saga(business_key).await;
        (fixture, gateway, id)
    }

    /// The one operator action recorded for the saga `id`, as the store has it: `action`.
    async fn only_operator_action(
        &self,
        id: Uuid,
        action: &str,
    ) -> corebank_saga::store::OperatorAction {
        let mut history = corebank_saga::ops::get(&self._database.db_for("demo"), id)
            .await
            .unwrap()
            .operator_actions;
        assert_eq!(history.len(), 1, "{history:?}");
        assert_eq!(history[0].action, action);
        history.remove(0)
    }

    /// SagaAdmin, called with the certificate of `component`.
    fn client_as(&self, component: &str) -> SagaAdminClient<Channel> {
        SagaAdminClient::new(self.app.channel(component, SERVER))
    }

    /// Starts a saga for `business_key` and waits until it pauses.
    async fn paused_saga(&self, business_key: &str) -> Uuid {
        let (id, status) = demo::settle_peer_saga(&self.executor, Some(business_key))
            .await
            .unwrap();
        assert_eq!(status, Status::Paused);
        id
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.app.stop().await;
    }
}

/// `message` for SagaAdmin's `method`, for `actor`, signed as `signer` (a component's key).
fn signed_by<T>(signer: &str, message: T, method: &str, actor: &str) -> tonic::Request<T> {
    let path = format!("/corebank.saga.v1.SagaAdmin/{method}");
    corebank_testkit::on_behalf_of(signer, message, &path, actor)
}

/// `message` as the gateway sends it for the operator `actor`.
fn from_gateway<T>(message: T, method: &str, actor: &str) -> tonic::Request<T> {
    signed_by("gateway", message, method, actor)
}

fn operator_request(id: Uuid, actor: &str, reason: &str) -> pb::OperatorRequest {
    pb::OperatorRequest {
        id: id.to_string(),
        actor: actor.to_owned(),
        reason: reason.to_owned(),
        proposed_by: String::new(),
    }
}

#[tokio::test]
async fn operators_find_a_paused_saga_read_its_history_and_resume_it() {
    let (fixture, mut client, id) = Fixture::with_paused_saga("payment-77").await;

    let listed = client
        .list_sagas(pb::ListSagasRequest {
            status: "paused".to_owned(),
            business_key: "payment-77".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.sagas.len(), 1);
    assert_eq!(listed.sagas[0].id, id.to_string());
    assert!(listed.sagas[0].paused_reason.contains("peer unreachable"));
    assert!(listed.next_page_token.is_empty());

    let detail = saga_detail(&mut client, id).await;
    assert_eq!(detail.steps.len(), 2);
    assert!(detail.steps.iter().all(|s| s.outcome == "transient"));
    assert_eq!(detail.steps[1].attempt, 2);

    let refused = client
        .list_sagas(pb::ListSagasRequest {
            status: "stuck".to_owned(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::InvalidArgument, "invalid_argument");
    let refused = client
        .resume(resume_by_ops_7(operator_request(id, "", "")))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "invalid_argument");
    let refused = client
        .mark_resolved(from_gateway(
            pb::MarkResolvedRequest {
                id: id.to_string(),
                actor: String::new(),
                reason: "checked".to_owned(),
                resolution: "done".to_owned(),
                proposed_by: "ops-3".to_owned(),
            },
            "MarkResolved",
            "ops-7",
        ))
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "invalid_argument");
    let refused = client
        .get_saga(pb::GetSagaRequest {
            id: Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_refused(&refused, tonic::Code::NotFound, "saga_not_found");

    fixture.peer_down.store(false, Ordering::SeqCst);
    let settled = fixture.executor.watchers().watch(id);
    // The body leaves `actor` empty: who acts is the gateway's signed assertion.
    resume_running_as_ops_7(&mut client, id, "", "INC-12: peer back up").await;
    fixture.executor.nudge();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .unwrap()
            .unwrap(),
        Status::Completed
    );
    let detail = saga_detail(&mut client, id).await;
    assert_eq!(detail.saga.unwrap().status, "completed");
    assert_eq!(detail.operator_actions.len(), 1);
    assert_eq!(detail.operator_actions[0].actor, "ops-7");
    assert_eq!(detail.operator_actions[0].reason, "INC-12: peer back up");
    fixture.stop().await;
}

#[tokio::test]
async fn the_operator_recorded_is_the_one_the_gateway_signed_for_and_no_one_else() {
    let (fixture, mut gateway, id) = Fixture::with_paused_saga("payment-78").await;
    let untouched = |detail: &pb::SagaDetail| {
        detail.operator_actions.is_empty()
            && detail
                .saga
                .as_ref()
                .is_some_and(|saga| saga.status == "paused")
    };

    // A body naming someone else than the signed operator is refused, not overridden.
    let forged = gateway
        .force_compensate(compensate_by_ops_7(
            "ops-3",
            operator_request(id, "mallory", "cover my tracks"),
        ))
        .await
        .unwrap_err();
    assert_refused(&forged, tonic::Code::InvalidArgument, "actor_mismatch");
    assert!(
        forged.message().contains("gateway's verified token"),
        "{}",
        forged.message()
    );

    // No assertion at all: the body alone says nothing about who acts.
    let missing = gateway
        .resume(operator_request(id, "ops-7", "no assertion"))
        .await
        .unwrap_err();
    assert_refused(&missing, tonic::Code::Unauthenticated, "actor_not_asserted");

    // The operator named but not signed.
    let mut unsigned = tonic::Request::new(operator_request(id, "", "unsigned"));
    unsigned
        .metadata_mut()
        .insert(ACTOR_HEADER, "ops-7".parse().unwrap());
    let refused = gateway.resume(unsigned).await.unwrap_err();
    assert_refused(&refused, tonic::Code::Unauthenticated, "actor_not_asserted");

    // A signature for another operator, and one for another method, do not transfer.
    let mut swapped = resume_by_ops_7(operator_request(id, "", "swapped"));
    swapped
        .metadata_mut()
        .insert(ACTOR_HEADER, "mallory".parse().unwrap());
    let refused = gateway.resume(swapped).await.unwrap_err();
    assert_eq!(code(&refused), "actor_not_asserted");
    let replayed = resume_by_ops_7(operator_request(id, "", "replayed"));
    let refused = gateway.force_compensate(replayed).await.unwrap_err();
    assert_refused(&refused, tonic::Code::Unauthenticated, "actor_not_asserted");

    // Another component may not call SagaAdmin at all, signed or not.
    let mut payments = fixture.client_as("payments");
    let denied = payments
        .resume(signed_by(
            "payments",
            operator_request(id, "", "payments acting"),
            "Resume",
            "ops-7",
        ))
        .await
        .unwrap_err();
    assert_refused(&denied, tonic::Code::PermissionDenied, "permission_denied");
    let denied = payments
        .list_sagas(pb::ListSagasRequest::default())
        .await
        .unwrap_err();
    assert_eq!(denied.code(), tonic::Code::PermissionDenied);

    let detail = saga_detail(&mut gateway, id).await;
    assert!(untouched(&detail), "{detail:?}");

    // The body may repeat the signed operator (older gateways fill it in).
    resume_running_as_ops_7(&mut gateway, id, "ops-7", "INC-13: peer back up").await;
    let detail = saga_detail(&mut gateway, id).await;
    assert_eq!(detail.operator_actions.len(), 1);
    assert_eq!(detail.operator_actions[0].actor, "ops-7");
    fixture.stop().await;
}

#[tokio::test]
async fn force_compensate_and_mark_resolved_need_a_proposer_who_is_not_the_approver() {
    let (fixture, mut gateway, id) = Fixture::with_paused_saga("payment-79").await;
    let compensate = |proposed_by: &str| {
        compensate_by_ops_7(
            proposed_by,
            operator_request(id, "", "INC-14: give the money back"),
        )
    };
    let resolve = |proposed_by: &str| {
        from_gateway(
            pb::MarkResolvedRequest {
                id: id.to_string(),
                actor: String::new(),
                reason: "INC-14: settled by hand".to_owned(),
                resolution: "compensated".to_owned(),
                proposed_by: proposed_by.to_owned(),
            },
            "MarkResolved",
            "ops-7",
        )
    };

    // No proposer, a blank one, or the approver proposing to themself: refused, nothing
    // changes.
    for proposed_by in ["", "  ", "ops-7", " ops-7 "] {
        let refusals = [
            gateway
                .force_compensate(compensate(proposed_by))
                .await
                .err(),
            gateway.mark_resolved(resolve(proposed_by)).await.err(),
        ];
        for refused in refusals {
            let refused = refused.unwrap();
            assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
            assert_eq!(code(&refused), "four_eyes_required", "{proposed_by:?}");
        }
    }
    let detail = saga_detail(&mut gateway, id).await;
    assert!(detail.operator_actions.is_empty(), "{detail:?}");
    assert_eq!(detail.saga.unwrap().status, "paused");

    // Proposed by ops-3, approved by ops-7: done, and both names are in the history.
    let resolved = gateway
        .mark_resolved(resolve("ops-3"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.status, "compensated");
    let action = fixture.only_operator_action(id, "mark_resolved").await;
    assert_eq!(action.actor, "ops-7");
    assert_eq!(action.proposed_by, "ops-3");
    assert_eq!(action.reason, "INC-14: settled by hand");
    fixture.stop().await;
}

#[tokio::test]
async fn a_force_compensate_approved_by_a_second_operator_records_both() {
    let (fixture, mut gateway, id) = Fixture::with_paused_saga("payment-80").await;
    let compensated = gateway
        .force_compensate(compensate_by_ops_7(
            "ops-3",
            operator_request(id, "", "INC-15: the peer is gone for good"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(compensated.status, "compensating");
    let recorded = fixture.only_operator_action(id, "force_compensate").await;
    assert_eq!(
        (recorded.actor.as_str(), recorded.proposed_by.as_str()),
        ("ops-7", "ops-3")
    );
    // GetSaga shows both names too.
    let detail = saga_detail(&mut gateway, id).await;
    let action = &detail.operator_actions[0];
    assert_eq!(
        (action.actor.as_str(), action.proposed_by.as_str()),
        ("ops-7", "ops-3")
    );
    fixture.stop().await;
}
