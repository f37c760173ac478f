//! Four eyes on operator actions (ADR 0012), through the gateway's admin API against a real
//! SagaAdmin (over the `demo` schema, served under the payments module's certificate as the
//! gateway expects): force-compensate and mark-resolved become proposals that only a second
//! operator can carry out; the proposer cannot approve, a decided or expired proposal cannot
//! be decided again, and retry and resume stay single-person. Payment screening proposals
//! are checked here up to the approval; their release and refusal end to end, through the
//! real payments module's PaymentsReview, are in `channel.rs`.

use crate::common;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::common::{Admin, Answer, spawn_gateway};
use corebank_gateway::auth::dev::{self, Role};
use corebank_saga::demo;
use corebank_saga::grpc::SagaAdminService;
use corebank_saga::{Executor, Status};
use corebank_service::Component;
use corebank_service::internal::{Allow, allowed_callers};
use corebank_testkit::{TestApp, TestDatabase};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

struct Stack {
    database: TestDatabase,
    executor: Executor,
    peer_down: Arc<AtomicBool>,
    _owner: TestApp,
    admin: Admin,
    keys: dev::DevKeys,
    shutdown: CancellationToken,
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn stack(approval_ttl_s: u64) -> Stack {
    let database = TestDatabase::create().await;
    let db = database.db_for("demo");
    let shutdown = CancellationToken::new();
    let peer_down = Arc::new(AtomicBool::new(true));
    let (executor, registry) = demo::peer_executor(&db, &peer_down).unwrap();
    executor.spawn(shutdown.clone());
    // The saga owner, answering with the payments module's certificate as the gateway
    // expects of its modern side.
    let owner = TestApp::spawn(Component::new("payments").with_db(db.clone()).with_grpc(
        SagaAdminService::new(db, registry).into_server(),
        Allow::only(allowed_callers::SAGA_ADMIN),
    ))
    .await;
    let mut settings = corebank_service::Settings::defaults().unwrap();
    let keys = common::dev_home(&mut settings, "approvals-test");
    settings.gateway_approval_ttl_s = approval_ttl_s;
    let gateway = spawn_gateway(
        &settings,
        &database,
        owner.internal_url(""),
        owner.internal_url(""),
        &shutdown,
    )
    .await;
    Stack {
        database,
        executor,
        peer_down,
        _owner: owner,
        admin: Admin::to(gateway),
        keys,
        shutdown,
    }
}

impl Stack {
    fn token(&self, role: Role, subject: &str) -> String {
        common::token(&self.keys, role, subject, None)
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> Answer {
        self.admin.post(path, token, body).await
    }

    /// The answer to deciding the proposal `approval` (`approve` or `reject`) with `reason`.
    async fn decide(&self, approval: &str, verdict: &str, token: &str, reason: &str) -> Answer {
        self.admin.decide(approval, verdict, token, reason).await
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.admin.get(path, token).await
    }

    /// Starts a saga whose peer is down and waits until it pauses.
    async fn paused_saga(&self) -> Uuid {
        let (id, status) = demo::settle_peer_saga(&self.executor, None).await.unwrap();
        assert_eq!(status, Status::Paused);
        id
    }

    /// The saga's operator actions as stored: (action, actor, proposed_by).
    async fn history(&self, id: Uuid) -> Vec<(String, String, String)> {
        corebank_saga::ops::get(&self.database.db_for("demo"), id)
            .await
            .unwrap()
            .operator_actions
            .into_iter()
            .map(|a| (a.action, a.actor, a.proposed_by))
            .collect()
    }

    async fn saga_status(&self, id: Uuid) -> String {
        corebank_saga::ops::get(&self.database.db_for("demo"), id)
            .await
            .unwrap()
            .instance
            .status
            .to_string()
    }

    /// The gateway's audit records for `resource`: (action, actor, outcome), oldest first.
    async fn audit(&self, resource: &str) -> Vec<(String, String, String)> {
        self.database
            .db_for("gateway")
            .client()
            .await
            .unwrap()
            .query(
                "SELECT action, actor, outcome FROM audit_log WHERE resource = $1 ORDER BY at",
                &[&resource],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect()
    }
}

#[tokio::test]
async fn a_force_compensate_is_carried_out_only_when_a_second_operator_approves_it() {
    let stack = stack(86_400).await;
    let id = stack.paused_saga().await;
    let alice = stack.token(Role::Operator, "alice");
    let alice_approver = stack.token(Role::Approver, "alice");
    let bob = stack.token(Role::Approver, "bob");

    let proposed = stack
        .post(
            &format!("/admin/v1/sagas/{id}/force-compensate"),
            &alice,
            json!({ "reason": "INC-21: the peer is gone" }),
        )
        .await
        .expect(202);
    assert_eq!(proposed.body["kind"], "saga_force_compensate");
    assert_eq!(proposed.body["status"], "pending");
    assert_eq!(proposed.body["proposed_by"], "alice");
    let approval = proposed.body["id"].as_str().unwrap().to_owned();
    // Nothing happened to the saga yet.
    assert_eq!(stack.saga_status(id).await, "paused");
    assert!(stack.history(id).await.is_empty());

    let pending = stack
        .get("/admin/v1/approvals?status=pending", &bob)
        .await
        .expect(200);
    assert_eq!(pending.body["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(pending.body["approvals"][0]["id"], approval.as_str());

    // The proposer cannot approve, even holding the approve scope; nothing changes.
    let own = stack
        .decide(&approval, "approve", &alice_approver, "looks fine to me")
        .await
        .expect(403);
    assert_eq!(own.body["code"], "four_eyes_required");
    // The operator scope alone does not approve.
    let no_scope = stack
        .decide(
            &approval,
            "approve",
            &stack.token(Role::Operator, "carol"),
            "me too",
        )
        .await
        .expect(403);
    assert_eq!(no_scope.body["code"], "forbidden");
    // A reason is required.
    stack
        .decide(&approval, "approve", &bob, " ")
        .await
        .expect(400);
    assert_eq!(stack.saga_status(id).await, "paused");

    let approved = stack
        .decide(&approval, "approve", &bob, "checked with the peer's team")
        .await
        .expect(200);
    assert_eq!(approved.body["approval"]["status"], "approved");
    assert_eq!(approved.body["approval"]["decided_by"], "bob");
    assert_eq!(approved.body["approval"]["outcome"], "done");
    assert_eq!(approved.body["result"]["status"], "compensating");
    assert_eq!(
        stack.history(id).await,
        [(
            "force_compensate".to_owned(),
            "bob".to_owned(),
            "alice".to_owned()
        )]
    );

    // The admin view of the saga: the approver acted, the proposal names both.
    let detail = stack
        .get(&format!("/admin/v1/sagas/{id}"), &bob)
        .await
        .expect(200);
    assert_eq!(detail.body["operator_actions"][0]["actor"], "bob");
    assert_eq!(detail.body["approvals"][0]["proposed_by"], "alice");
    assert_eq!(detail.body["approvals"][0]["decided_by"], "bob");
    assert_eq!(detail.body["approvals"][0]["outcome"], "done");

    // Approving twice, or rejecting after approval, is refused.
    let again = stack
        .decide(
            &approval,
            "approve",
            &stack.token(Role::Approver, "dave"),
            "again",
        )
        .await
        .expect(409);
    assert_eq!(again.body["code"], "proposal_not_pending");
    stack
        .decide(&approval, "reject", &bob, "too late")
        .await
        .expect(409);
    assert_eq!(stack.history(id).await.len(), 1);

    let outcomes: Vec<String> = stack
        .audit(&format!("approval:{approval}"))
        .await
        .into_iter()
        .map(|(action, actor, outcome)| format!("{action} {actor} {outcome}"))
        .collect();
    assert_eq!(
        outcomes,
        [
            "approvals.propose alice pending",
            "approvals.approve alice four_eyes_required",
            "approvals.approve carol forbidden",
            "approvals.approve bob approved",
            "approvals.execute bob done",
            "approvals.approve dave proposal_not_pending",
            "approvals.reject bob proposal_not_pending",
        ]
    );
}

#[tokio::test]
async fn a_mark_resolved_names_its_resolution_and_a_rejected_one_changes_nothing() {
    let stack = stack(86_400).await;
    let id = stack.paused_saga().await;
    let alice = stack.token(Role::Operator, "alice");
    let bob = stack.token(Role::Approver, "bob");

    let unresolved = stack
        .post(
            &format!("/admin/v1/sagas/{id}/mark-resolved"),
            &alice,
            json!({ "reason": "settled by hand", "resolution": "done" }),
        )
        .await
        .expect(400);
    assert_eq!(unresolved.body["code"], "invalid_argument");
    stack
        .post(
            &format!("/admin/v1/sagas/{id}/mark-resolved"),
            &bob,
            json!({ "reason": "settled by hand", "resolution": "completed" }),
        )
        .await
        .expect(403);

    let first = stack
        .post(
            &format!("/admin/v1/sagas/{id}/mark-resolved"),
            &alice,
            json!({ "reason": "wrong one", "resolution": "compensated" }),
        )
        .await
        .expect(202);
    let first = first.body["id"].as_str().unwrap().to_owned();
    let rejected = stack
        .decide(
            &first,
            "reject",
            &bob,
            "the money did arrive: completed, not compensated",
        )
        .await
        .expect(200);
    assert_eq!(rejected.body["status"], "rejected");
    let after_rejection = stack
        .decide(&first, "approve", &bob, "changed my mind")
        .await
        .expect(409);
    assert_eq!(after_rejection.body["code"], "proposal_not_pending");
    assert_eq!(stack.saga_status(id).await, "paused");
    assert!(stack.history(id).await.is_empty());

    let second = stack
        .post(
            &format!("/admin/v1/sagas/{id}/mark-resolved"),
            &alice,
            json!({ "reason": "settled by hand (INC-22)", "resolution": "completed" }),
        )
        .await
        .expect(202);
    assert_eq!(second.body["parameters"]["resolution"], "completed");
    let second = second.body["id"].as_str().unwrap().to_owned();
    let approved = stack
        .decide(&second, "approve", &bob, "ledger checked")
        .await
        .expect(200);
    assert_eq!(approved.body["result"]["status"], "completed");
    assert_eq!(
        stack.history(id).await,
        [(
            "mark_resolved".to_owned(),
            "bob".to_owned(),
            "alice".to_owned()
        )]
    );
    let listed = stack.get("/admin/v1/approvals?status=rejected", &bob).await;
    assert_eq!(listed.body["approvals"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["approvals"][0]["id"], first.as_str());
}

#[tokio::test]
async fn an_expired_proposal_cannot_be_approved() {
    let stack = stack(1).await;
    let id = stack.paused_saga().await;
    let alice = stack.token(Role::Operator, "alice");
    let bob = stack.token(Role::Approver, "bob");
    let proposed = stack
        .post(
            &format!("/admin/v1/sagas/{id}/force-compensate"),
            &alice,
            json!({ "reason": "INC-23" }),
        )
        .await
        .expect(202);
    let approval = proposed.body["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let expired = stack.get("/admin/v1/approvals?status=expired", &bob).await;
    assert_eq!(expired.body["approvals"][0]["id"], approval.as_str());
    let pending = stack.get("/admin/v1/approvals?status=pending", &bob).await;
    assert!(pending.body["approvals"].as_array().unwrap().is_empty());
    let refused = stack
        .decide(&approval, "approve", &bob, "late")
        .await
        .expect(409);
    assert_eq!(refused.body["code"], "proposal_expired");
    let shown = stack
        .get(&format!("/admin/v1/approvals/{approval}"), &bob)
        .await;
    assert_eq!(shown.body["status"], "expired");
    assert_eq!(stack.saga_status(id).await, "paused");
    assert!(stack.history(id).await.is_empty());
}

#[tokio::test]
async fn retry_and_resume_stay_single_person() {
    let stack = stack(86_400).await;
    let id = stack.paused_saga().await;
    let alice = stack.token(Role::Operator, "alice");
    stack.peer_down.store(false, Ordering::SeqCst);
    let resumed = stack
        .post(
            &format!("/admin/v1/sagas/{id}/resume"),
            &alice,
            json!({ "reason": "INC-24: peer back" }),
        )
        .await
        .expect(200);
    assert_eq!(resumed.body["status"], "running");
    assert_eq!(
        stack.history(id).await,
        [("resume".to_owned(), "alice".to_owned(), String::new())]
    );
    let listed = stack.get("/admin/v1/approvals", &alice).await;
    assert!(listed.body["approvals"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_screening_review_is_a_proposal_that_its_proposer_cannot_approve() {
    let stack = stack(86_400).await;
    let alice = stack.token(Role::Operator, "alice");
    let alice_approver = stack.token(Role::Approver, "alice");
    let bob = stack.token(Role::Approver, "bob");
    let payment = Uuid::new_v4();
    let path = format!("/admin/v1/payments/{payment}/screening-review");

    for (body, why) in [
        (
            json!({ "decision": "maybe", "reason": "x" }),
            "unknown decision",
        ),
        (json!({ "decision": "release" }), "no reason"),
        (
            json!({ "decision": "release", "reason": "  " }),
            "blank reason",
        ),
        (
            json!({ "decision": "release", "reason": "x", "extra": 1 }),
            "unknown field",
        ),
    ] {
        let refused = stack.post(&path, &alice, body).await;
        assert_eq!(refused.status, 400, "{why}: {}", refused.body);
        assert_eq!(refused.body["code"], "invalid_argument", "{why}");
    }
    stack
        .post(
            "/admin/v1/payments/not-a-payment/screening-review",
            &alice,
            json!({ "decision": "release", "reason": "x" }),
        )
        .await
        .expect(400);
    stack
        .post(&path, &bob, json!({ "decision": "refuse", "reason": "x" }))
        .await
        .expect(403);
    let listed = stack.get("/admin/v1/approvals", &bob).await;
    assert!(listed.body["approvals"].as_array().unwrap().is_empty());

    let proposed = stack
        .post(
            &path,
            &alice,
            json!({ "decision": "release", "reason": "false positive: name match only" }),
        )
        .await
        .expect(202);
    assert_eq!(proposed.body["kind"], "payment_screening_release");
    assert_eq!(proposed.body["target"], payment.to_string());
    let release = proposed.body["id"].as_str().unwrap().to_owned();
    let own = stack
        .decide(&release, "approve", &alice_approver, "mine")
        .await
        .expect(403);
    assert_eq!(own.body["code"], "four_eyes_required");

    let refuse = stack
        .post(
            &path,
            &alice,
            json!({ "decision": "refuse", "reason": "sanctions hit confirmed" }),
        )
        .await
        .expect(202);
    assert_eq!(refuse.body["kind"], "payment_screening_refuse");
    let refuse = refuse.body["id"].as_str().unwrap().to_owned();
    let rejected = stack
        .decide(&refuse, "reject", &bob, "we release it instead")
        .await
        .expect(200);
    assert_eq!(rejected.body["status"], "rejected");
    let pending = stack.get("/admin/v1/approvals?status=pending", &bob).await;
    assert_eq!(
        common::each(&pending.body["approvals"], "id"),
        [release.as_str()]
    );
}
