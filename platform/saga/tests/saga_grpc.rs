//! `corebank.saga.v1.SagaAdmin` over a real server: operators find a paused saga, read its
//! history, are refused with stable codes when a request is incomplete, and resume it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use corebank_api::saga::v1 as pb;
use corebank_api::saga::v1::saga_admin_client::SagaAdminClient;
use corebank_saga::grpc::SagaAdminService;
use corebank_saga::{
    Action, Executor, ExecutorConfig, NewSaga, Registry, RetryPolicy, SagaDefinition, Status, Step,
    StepOutcome,
};
use corebank_service::Component;
use corebank_testkit::{TestApp, TestDatabase};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

fn code(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("corebank-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn operators_find_a_paused_saga_read_its_history_and_resume_it() {
    let database = TestDatabase::create().await;
    let db = database.db_for("demo");
    let peer_down = Arc::new(AtomicBool::new(true));
    let down = Arc::clone(&peer_down);
    let step = Step::new(
        "call_peer",
        Action::call(move |_| {
            let down = Arc::clone(&down);
            Box::pin(async move {
                if down.load(Ordering::SeqCst) {
                    StepOutcome::Transient("peer unreachable".to_owned())
                } else {
                    StepOutcome::Done(json!({ "ok": true }))
                }
            })
        }),
    )
    .retry(RetryPolicy {
        attempts: 2,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(5),
        jitter: 0.0,
    });
    let mut registry = Registry::new();
    registry
        .register(SagaDefinition::new("test.peer", 1, vec![step]))
        .unwrap();
    let registry = Arc::new(registry);
    let executor = Executor::new(
        db.clone(),
        Arc::clone(&registry),
        ExecutorConfig {
            poll_interval: Duration::from_millis(20),
            ..ExecutorConfig::new()
        },
    );
    let shutdown = CancellationToken::new();
    executor.spawn(shutdown.clone());
    let app = TestApp::spawn(
        Component::new("demo")
            .with_db(db.clone())
            .with_grpc(SagaAdminService::new(db.clone(), Arc::clone(&registry)).into_server()),
    )
    .await;
    let mut client = SagaAdminClient::connect(app.url("")).await.unwrap();

    let id = Uuid::new_v4();
    let settled = executor.watchers().watch(id);
    executor
        .start(NewSaga {
            id,
            saga_type: "test.peer".to_owned(),
            input: json!({ "payment": 1 }),
            business_key: "payment-77".to_owned(),
        })
        .await
        .unwrap();
    assert_eq!(settled.await.unwrap(), Status::Paused);

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

    let detail = client
        .get_saga(pb::GetSagaRequest { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
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
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(code(&refused), "invalid_argument");
    let refused = client
        .resume(pb::OperatorRequest {
            id: id.to_string(),
            actor: "ops-7".to_owned(),
            reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "invalid_argument");
    let refused = client
        .mark_resolved(pb::MarkResolvedRequest {
            id: id.to_string(),
            actor: "ops-7".to_owned(),
            reason: "checked".to_owned(),
            resolution: "done".to_owned(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "invalid_argument");
    let refused = client
        .get_saga(pb::GetSagaRequest {
            id: Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    assert_eq!(code(&refused), "saga_not_found");

    peer_down.store(false, Ordering::SeqCst);
    let settled = executor.watchers().watch(id);
    let resumed = client
        .resume(pb::OperatorRequest {
            id: id.to_string(),
            actor: "ops-7".to_owned(),
            reason: "INC-12: peer back up".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resumed.status, "running");
    executor.nudge();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), settled)
            .await
            .unwrap()
            .unwrap(),
        Status::Completed
    );
    let detail = client
        .get_saga(pb::GetSagaRequest { id: id.to_string() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(detail.saga.unwrap().status, "completed");
    assert_eq!(detail.operator_actions.len(), 1);
    assert_eq!(detail.operator_actions[0].reason, "INC-12: peer back up");
    shutdown.cancel();
    app.stop().await;
}
