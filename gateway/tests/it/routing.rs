//! Routing: the decision order, canary spread and stickiness, four-eyes approval, scheduled
//! activation, stale proposals, rollback, replicas picking up a new version within a
//! second, the automatic rollback, and the audit row of every admin action. Real
//! PostgreSQL, one database per test.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::common::{APPROVE, Http, READ, WRITE, test_principal};
use corebank_gateway::routing::{Canary, Reason, RouteRule, RouteTable, Router, Side};
use corebank_testkit::{TestApp, TestDatabase};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const ALL: &str = "routes:read routes:write routes:approve";

struct Harness {
    db: TestDatabase,
    router: Router,
    http: Http,
}

async fn serve(router: &Router) -> TestApp {
    let routes = router
        .admin_router()
        .layer(axum::middleware::from_fn(test_principal));
    TestApp::spawn(corebank_service::Component::new("gateway-test").with_public_routes(routes))
        .await
}

impl Harness {
    async fn start() -> Harness {
        let db = TestDatabase::create().await;
        let router = Router::load(db.db_for("gateway")).await.unwrap();
        let app = serve(&router).await;
        Harness {
            db,
            router,
            http: Http::to(app),
        }
    }

    /// (actor, action, outcome) of every audit row, oldest first.
    async fn audit_rows(&self) -> Vec<(String, String, String, Value)> {
        let client = self.db.db().client().await.unwrap();
        client
            .query(
                "SELECT actor, action, outcome, details FROM gateway.audit_log ORDER BY at",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
            .collect()
    }
}

fn rule(product: &str, operation: &str, default_side: Side) -> RouteRule {
    RouteRule {
        product: product.to_owned(),
        operation: operation.to_owned(),
        default_side,
        canary: None,
        salt: format!("{product}:{operation}"),
        shadow: false,
    }
}

/// CURRENT's transfers on legacy, with a canary of `percent` on modern.
fn current_transfers_canary(percent: u8) -> RouteRule {
    RouteRule {
        canary: Some(Canary {
            side: Side::Modern,
            percent,
        }),
        ..rule("CURRENT", "transfers", Side::Legacy)
    }
}

fn transfers_canary(percent: u8) -> Value {
    json!({
        "rules": [{
            "product": "CURRENT",
            "operation": "transfers",
            "default_side": "legacy",
            "canary": {"side": "modern", "percent": percent},
        }],
        "reason": "start the transfers canary",
    })
}

#[test]
fn ownership_beats_canary_beats_default_and_the_product_rule_beats_the_wildcard() {
    let mut canary_everyone = current_transfers_canary(100);
    canary_everyone.shadow = true;
    let wildcard = rule("*", "transfers", Side::Modern);
    let ownership = HashMap::from([("owned".to_owned(), Side::Legacy)]);
    let table = RouteTable::new(7, vec![canary_everyone, wildcard], ownership).unwrap();

    let owned = table.decide("CURRENT", "transfers", Some("owned"));
    assert_eq!(
        (owned.primary, owned.reason),
        (Side::Legacy, Reason::Ownership)
    );
    assert_eq!(
        owned.shadow,
        Some(Side::Modern),
        "the rule's shadow flag still applies"
    );
    assert_eq!(owned.version, 7);

    let canary = table.decide("CURRENT", "transfers", Some("anyone"));
    assert_eq!(
        (canary.primary, canary.reason),
        (Side::Modern, Reason::Canary)
    );
    assert_eq!(canary.shadow, Some(Side::Legacy));

    let no_account = table.decide("CURRENT", "transfers", None);
    assert_eq!(
        (no_account.primary, no_account.reason),
        (Side::Legacy, Reason::Default)
    );

    let fallback = table.decide("SAVINGS", "transfers", Some("anyone"));
    assert_eq!(
        (fallback.primary, fallback.reason),
        (Side::Modern, Reason::Default)
    );
    assert_eq!(fallback.shadow, None);

    let nobody = table.decide("SAVINGS", "payments", Some("anyone"));
    assert_eq!(
        (nobody.primary, nobody.shadow, nobody.reason, nobody.version),
        (Side::Legacy, None, Reason::NoRule, 7)
    );
    let owned_without_rule = table.decide("SAVINGS", "payments", Some("owned"));
    assert_eq!(owned_without_rule.reason, Reason::Ownership);
}

#[test]
fn a_ten_percent_canary_lands_within_tolerance_sticks_and_a_new_salt_reshuffles() {
    let canary = current_transfers_canary(10);
    let mut resalted = canary.clone();
    resalted.salt = "another salt".to_owned();
    let table = RouteTable::new(1, vec![canary], HashMap::new()).unwrap();
    let other = RouteTable::new(2, vec![resalted], HashMap::new()).unwrap();

    let accounts: Vec<String> = (0..20_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let modern = |table: &RouteTable| -> BTreeSet<String> {
        accounts
            .iter()
            .filter(|account| {
                table.decide("CURRENT", "transfers", Some(account)).primary == Side::Modern
            })
            .cloned()
            .collect()
    };
    let first = modern(&table);
    let share = f64::from(u32::try_from(first.len()).unwrap()) / 20_000.0;
    assert!((0.085..=0.115).contains(&share), "canary share {share}");
    assert_eq!(
        first,
        modern(&table),
        "the same account always gets the same side"
    );

    let reshuffled = modern(&other);
    let kept = first.intersection(&reshuffled).count();
    assert!(
        kept < first.len() / 4,
        "a new salt picks other accounts ({kept} of {} kept)",
        first.len()
    );
}

#[tokio::test]
async fn invalid_rules_are_refused_naming_the_field() {
    let harness = Harness::start().await;
    const MALFORMED: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "invalid_argument");
    // Each part well formed, the parts not fitting together: no schema can say it, so 422.
    let inconsistent = |code| (StatusCode::UNPROCESSABLE_ENTITY, code);
    let cases = [
        (
            json!({"rules": [{"product": "", "operation": "cash", "default_side": "legacy"}], "reason": "r"}),
            "rules[0].product",
            MALFORMED,
        ),
        (
            json!({"rules": [{"product": "P", "operation": "teleport", "default_side": "legacy"}], "reason": "r"}),
            "rules[0].operation",
            MALFORMED,
        ),
        (
            json!({"rules": [{"product": "P", "operation": "cash", "default_side": "legacy", "canary": {"side": "modern", "percent": 101}}], "reason": "r"}),
            "rules[0].canary.percent",
            MALFORMED,
        ),
        (
            json!({"rules": [{"product": "P", "operation": "cash", "default_side": "sideways"}], "reason": "r"}),
            "rules[0].default_side",
            MALFORMED,
        ),
        (
            json!({"ownership": [{"account_id": "a", "side": "modern"}]}),
            "reason",
            MALFORMED,
        ),
        (
            json!({"rules": [{"product": "P", "operation": "cash", "default_side": "legacy"}, {"product": "P", "operation": "cash", "default_side": "modern"}], "reason": "r"}),
            "rules[1]",
            inconsistent("duplicate_route_rule"),
        ),
        (
            json!({"rules": [{"product": "P", "operation": "cash", "default_side": "legacy", "canary": {"side": "legacy", "percent": 5}}], "reason": "r"}),
            "rules[0].canary.side",
            inconsistent("canary_on_default_side"),
        ),
        (
            json!({"reason": "r"}),
            "rules",
            inconsistent("empty_proposal"),
        ),
    ];
    for (body, field, (status, code)) in cases {
        let error = harness
            .http
            .expect(
                status,
                "POST",
                "/admin/v1/routes/proposals",
                Some(("alice", WRITE)),
                Some(body),
            )
            .await;
        assert_eq!(error["code"], code, "{field}: {error}");
        assert!(
            error["message"].as_str().unwrap().starts_with(field),
            "{field}: {error}"
        );
    }
    let proposals = harness
        .http
        .expect(
            StatusCode::OK,
            "GET",
            "/admin/v1/routes/proposals",
            Some(("alice", READ)),
            None,
        )
        .await;
    assert_eq!(
        proposals["proposals"],
        json!([]),
        "a refusal stores nothing"
    );
    let _ = harness
        .http
        .expect(
            StatusCode::UNAUTHORIZED,
            "GET",
            "/admin/v1/routes",
            None,
            None,
        )
        .await;
}

#[tokio::test]
async fn the_author_cannot_approve_their_own_change_but_another_approver_can() {
    let harness = Harness::start().await;
    let id = harness.http.propose("alice", transfers_canary(10)).await;

    let (status, error) = harness.http.approve("alice", ALL, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "four_eyes_required");

    let (status, error) = harness.http.approve("carol", WRITE, &id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(error["code"], "forbidden");
    assert_eq!(harness.router.table().version(), 0, "nothing is active yet");

    let (status, approved) = harness.http.approve("bob", APPROVE, &id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "active");
    assert_eq!(approved["activated_version"], 1);
    assert_eq!(harness.router.table().version(), 1);

    let active = harness
        .http
        .expect_read(StatusCode::OK, "/admin/v1/routes")
        .await;
    assert_eq!(active["version"], 1);
    assert_eq!(active["activated_by"], "bob");
    assert_eq!(active["proposed_by"], "alice");
    assert_eq!(active["rules"][0]["canary"]["percent"], 10);

    let decision = harness
        .http
        .expect_read(
            StatusCode::OK,
            "/admin/v1/routes/decide?product=CURRENT&operation=transfers",
        )
        .await;
    assert_eq!(
        decision,
        json!({"primary": "legacy", "shadow": null, "version": 1, "reason": "default"})
    );

    let versions = harness
        .http
        .expect_read(StatusCode::OK, "/admin/v1/routes/versions")
        .await;
    assert_eq!(versions["versions"][0]["approved_by"], "bob");
    assert_eq!(versions["versions"][1]["version"], 0);

    let rows = harness.audit_rows().await;
    let approvals: Vec<(&str, &str)> = rows
        .iter()
        .filter(|row| row.1 == "routes.approve")
        .map(|row| (row.0.as_str(), row.2.as_str()))
        .collect();
    assert_eq!(
        approvals,
        [
            ("alice", "four_eyes_required"),
            ("carol", "forbidden"),
            ("bob", "active")
        ]
    );
    assert!(
        rows.iter()
            .any(|row| row.0 == "alice" && row.1 == "routes.propose" && row.2 == "proposed")
    );
}

#[tokio::test]
async fn an_approved_change_scheduled_for_later_is_activated_by_the_poller() {
    let harness = Harness::start().await;
    let activate_at = chrono::Utc::now() + chrono::Duration::milliseconds(1_500);
    let mut body = transfers_canary(20);
    body["activate_at"] = json!(activate_at.to_rfc3339());
    let id = harness.http.propose("alice", body).await;
    let (status, approved) = harness.http.approve("bob", APPROVE, &id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["status"], "scheduled");
    assert_eq!(harness.router.table().version(), 0);

    let shutdown = CancellationToken::new();
    harness
        .router
        .spawn_poller(Duration::from_millis(100), shutdown.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while harness.router.table().version() == 0 {
        assert!(
            Instant::now() < deadline,
            "the scheduled version never became active"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(chrono::Utc::now() >= activate_at, "not before its time");
    shutdown.cancel();

    let (_, proposals) = harness
        .http
        .read("/admin/v1/routes/proposals?status=active")
        .await;
    assert_eq!(proposals["proposals"][0]["id"], id.as_str());
    assert_eq!(proposals["proposals"][0]["activated_version"], 1);
    let rows = harness.audit_rows().await;
    assert!(rows.iter().any(|row| row.0 == "system:route-scheduler"
        && row.1 == "routes.activate"
        && row.2 == "active"));
}

#[tokio::test]
async fn a_proposal_whose_base_is_no_longer_active_is_refused_as_stale() {
    let harness = Harness::start().await;
    let first = harness.http.propose("alice", transfers_canary(10)).await;
    let second = harness.http.propose("erin", transfers_canary(50)).await;
    let (status, _) = harness.http.approve("bob", APPROVE, &first).await;
    assert_eq!(status, StatusCode::OK);

    let (status, error) = harness.http.approve("bob", APPROVE, &second).await;
    assert_eq!(status, StatusCode::CONFLICT, "{error}");
    assert_eq!(error["code"], "stale_proposal");
    assert_eq!(harness.router.table().version(), 1);
    let table = harness.router.table();
    assert_eq!(
        table.rules()[0].canary.unwrap().percent,
        10,
        "the newer version stays"
    );

    let (_, stale) = harness
        .http
        .read("/admin/v1/routes/proposals?status=stale")
        .await;
    assert_eq!(stale["proposals"][0]["id"], second.as_str());

    let mut against_old = transfers_canary(30);
    against_old["base_version"] = json!(0);
    let (status, error) = harness
        .http
        .post("/admin/v1/routes/proposals", ("alice", WRITE), against_old)
        .await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::CONFLICT, json!("stale_proposal"))
    );
}

#[tokio::test]
async fn a_rollback_restores_an_earlier_versions_rules_once_approved() {
    let harness = Harness::start().await;
    let id = harness.http.propose("alice", transfers_canary(10)).await;
    harness.http.approve("bob", APPROVE, &id).await;
    let id = harness
        .http
        .propose(
            "alice",
            json!({
                "rules": [{"product": "*", "operation": "cash", "default_side": "modern"}],
                "ownership": [{"account_id": "acct-1", "side": "modern"}],
                "reason": "cash moves to modern",
            }),
        )
        .await;
    harness.http.approve("bob", APPROVE, &id).await;
    assert_eq!(harness.router.table().version(), 2);

    let rollback = harness
        .http
        .expect(
            StatusCode::CREATED,
            "POST",
            "/admin/v1/routes/rollback",
            Some(("alice", WRITE)),
            Some(json!({"to_version": 1, "reason": "cash mismatches"})),
        )
        .await;
    assert_eq!(rollback["kind"], "rollback");
    assert_eq!(
        harness.router.table().version(),
        2,
        "a rollback needs approval too"
    );
    let id = rollback["id"].as_str().unwrap();
    let (status, _) = harness.http.approve("alice", ALL, id).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, approved) = harness.http.approve("bob", APPROVE, id).await;
    assert_eq!(status, StatusCode::OK, "{approved}");

    let table = harness.router.table();
    assert_eq!(table.version(), 3);
    let (_, version_one) = harness.http.read("/admin/v1/routes/versions/1").await;
    let (_, version_three) = harness.http.read("/admin/v1/routes/versions/3").await;
    assert_eq!(version_three["rules"], version_one["rules"]);
    assert_eq!(version_three["ownership_count"], 0);
    assert_eq!(version_three["rolled_back_to"], 1);
    assert_eq!(version_three["kind"], "rollback");
    assert_eq!(
        table.decide("X", "cash", Some("acct-1")).reason,
        Reason::NoRule,
        "version 2's rule and ownership are gone"
    );

    let rows = harness.audit_rows().await;
    assert!(
        rows.iter()
            .any(|row| row.1 == "routes.rollback" && row.2 == "proposed")
    );
}

#[tokio::test]
async fn two_replicas_see_a_new_version_within_a_second_of_its_approval() {
    let harness = Harness::start().await;
    let replica = Router::load(harness.db.db_for("gateway")).await.unwrap();
    let shutdown = CancellationToken::new();
    for router in [&harness.router, &replica] {
        router.spawn_poller(Duration::from_millis(100), shutdown.clone());
    }
    let id = harness.http.propose("alice", transfers_canary(10)).await;
    let (status, _) = harness.http.approve("bob", APPROVE, &id).await;
    assert_eq!(status, StatusCode::OK);
    let approved = Instant::now();
    for router in [&harness.router, &replica] {
        while router.table().version() != 1 {
            assert!(
                approved.elapsed() < Duration::from_secs(1),
                "a replica still routes with version {}",
                router.table().version()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    assert!(approved.elapsed() < Duration::from_secs(1));
    shutdown.cancel();
}

#[tokio::test]
async fn the_automatic_rollback_sends_a_canary_rule_back_to_legacy_and_is_audited() {
    let harness = Harness::start().await;
    let mut body = transfers_canary(100);
    body["ownership"] = json!([{"account_id": "migrated", "side": "modern"}]);
    let id = harness.http.propose("alice", body).await;
    harness.http.approve("bob", APPROVE, &id).await;
    let before = harness.router.table();
    assert_eq!(
        before
            .decide("CURRENT", "transfers", Some("anyone"))
            .primary,
        Side::Modern
    );

    let version = harness
        .router
        .automatic_rollback("CURRENT", "transfers", "modern error rate 12% over 60 s")
        .await
        .unwrap();
    assert_eq!(version, 2);
    let table = harness.router.table();
    assert_eq!(table.version(), 2);
    let decision = table.decide("CURRENT", "transfers", Some("anyone"));
    assert_eq!(
        (decision.primary, decision.reason),
        (Side::Legacy, Reason::Default)
    );
    assert_eq!(
        table
            .decide("CURRENT", "transfers", Some("migrated"))
            .primary,
        Side::Modern,
        "explicit ownership is untouched"
    );

    let again = harness
        .router
        .automatic_rollback("CURRENT", "transfers", "still failing")
        .await
        .unwrap();
    assert_eq!(again, 2, "nothing left to roll back writes no version");

    let rows = harness.audit_rows().await;
    let automatic: Vec<_> = rows
        .iter()
        .filter(|row| row.0 == "system:auto-rollback" && row.1 == "routes.automatic_rollback")
        .collect();
    assert_eq!(automatic.len(), 2);
    assert_eq!(automatic[0].2, "active");
    assert_eq!(automatic[0].3["reason"], "modern error rate 12% over 60 s");
    assert_eq!(automatic[1].2, "unchanged");

    let (_, version) = harness.http.read("/admin/v1/routes/versions/2").await;
    assert_eq!(version["kind"], "automatic_rollback");
    assert_eq!(version["approved_by"], "system:auto-rollback");
}

#[tokio::test]
async fn every_admin_action_leaves_its_audit_row() {
    let harness = Harness::start().await;
    let id = harness.http.propose("alice", transfers_canary(10)).await;
    let _ = harness
        .http
        .expect(
            StatusCode::OK,
            "POST",
            &format!("/admin/v1/routes/proposals/{id}/reject"),
            Some(("bob", APPROVE)),
            Some(json!({"reason": "not this week"})),
        )
        .await;
    let (status, error) = harness.http.approve("bob", APPROVE, &id).await;
    assert_eq!(
        (status, error["code"].clone()),
        (StatusCode::CONFLICT, json!("proposal_not_pending"))
    );
    let _ = harness
        .http
        .expect(
            StatusCode::FORBIDDEN,
            "POST",
            "/admin/v1/routes/proposals",
            Some(("reader", READ)),
            Some(transfers_canary(5)),
        )
        .await;
    let (status, _) = harness
        .http
        .post(
            "/admin/v1/routes/rollback",
            ("alice", WRITE),
            json!({"to_version": 0, "reason": "nothing to roll back to"}),
        )
        .await;
    // Well formed, refused by the routes' state: a conflict (the API reference's 409).
    assert_eq!(status, StatusCode::CONFLICT);

    let rows: Vec<(String, String, String)> = harness
        .audit_rows()
        .await
        .into_iter()
        .map(|(actor, action, outcome, _)| (actor, action, outcome))
        .collect();
    let expected = [
        ("alice", "routes.propose", "proposed"),
        ("bob", "routes.reject", "rejected"),
        ("bob", "routes.approve", "proposal_not_pending"),
        ("reader", "routes.propose", "forbidden"),
        ("alice", "routes.rollback", "not_an_earlier_version"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(rows, expected);
}
