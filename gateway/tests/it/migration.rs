//! The account migration end to end (`corebank-migration`, ADR 0013): accounts opened on the
//! legacy core through the gateway move to the modern side with their money and holds, one
//! saga each, and channels follow them; an account the bank froze is refused and stays.

use std::time::Duration;

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::migration::v1 as mpb;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use corebank_gateway::auth::dev::Role;
use corebank_service::contract::error_code;
use corebank_service::internal::component_names::{DEPOSITS, GATEWAY, LEGACY_ADAPTER, MIGRATION};
use corebank_testkit::TestApp;
use serde_json::json;
use uuid::Uuid;

use crate::channel::{Stack, stack};
use crate::common::{self, Admin, Answer, spawn_gateway};

const PRODUCT: &str = "MIGRATE-1";

/// The migration component beside the stack, reaching its peers as `migration`.
async fn migration_component(stack: &Stack) -> TestApp {
    crate::crossings::migration_app(stack, Default::default()).await
}

fn start(id: &str, dry_run: bool) -> mpb::StartMigrationRequest {
    mpb::StartMigrationRequest {
        migration_id: id.to_owned(),
        product_code: PRODUCT.to_owned(),
        fraction: String::new(),
        dry_run,
        requested_by: "operator-a".to_owned(),
        customer_ids: vec![],
        rate_per_s: 0,
        max_error_ratio: String::new(),
        in_flight_max: 0,
    }
}

/// The answer to pausing the migration `id` for `reason`, as `operator`.
async fn pause(admin: &Admin, id: &str, operator: &str, reason: &str) -> Answer {
    let path = format!("/admin/v1/migrations/{id}/pause");
    admin
        .post(&path, operator, json!({ "reason": reason }))
        .await
}

/// A gateway replica whose admin API reaches the migration component `app`.
pub(crate) async fn admin_gateway(stack: &Stack, app: &TestApp) -> TestApp {
    let mut settings = stack.settings.clone();
    settings.gateway_migration_url = Some(app.internal_url(""));
    spawn_gateway(
        &settings,
        &stack.database,
        stack.legacy.internal_url(""),
        stack.modern.internal_url(""),
        &stack.shutdown,
    )
    .await
}

/// Opens `count` accounts of the product with `amount` each, through the channel API.
async fn funded_accounts(stack: &Stack, token: &str, count: usize, amount: &str) -> Vec<String> {
    let mut opened = Vec::new();
    for n in 1..=count {
        let customer = format!("cust-{n}");
        opened.push(
            stack
                .funded_account(token, &customer, PRODUCT, amount)
                .await,
        );
    }
    opened
}

/// The bank freezes `account` on the legacy core itself (a fraud check): it cannot move.
async fn bank_freezes(stack: &Stack, account: &str) {
    DepositsClient::new(stack.legacy.channel(GATEWAY, LEGACY_ADAPTER))
        .freeze_account(dpb::ChangeStatusRequest {
            request_id: Uuid::new_v4().to_string(),
            account_id: account.to_owned(),
            reason: "fraud check".to_owned(),
        })
        .await
        .unwrap();
}

/// The migration once `ready` holds for it (at most 30 s); the panic shows it as it was.
async fn until(
    migrations: &mut MigrationsClient<tonic::transport::Channel>,
    id: &str,
    ready: impl Fn(&mpb::Migration) -> bool,
) -> mpb::Migration {
    let mut last = None;
    for _ in 0..300 {
        let migration = migrations
            .get_migration(mpb::GetMigrationRequest {
                migration_id: id.to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        if ready(&migration) {
            return migration;
        }
        last = Some(migration);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("migration {id} did not get there within 30 s: {last:?}");
}

/// The migration once no account is moving any more (at most 30 s).
pub(crate) async fn finished(
    migrations: &mut MigrationsClient<tonic::transport::Channel>,
    id: &str,
) -> mpb::Migration {
    until(migrations, id, |migration| migration.status == "done").await
}

/// `account` is served by `side` with (posted, held) `balances`, and the hold channels know
/// as `hold` is released there.
async fn served_with_its_hold(
    stack: &Stack,
    token: &str,
    account: &str,
    side: &str,
    balances: (&str, &str),
    hold: &str,
) {
    let read = stack
        .get(&format!("/v1/accounts/{account}"), token)
        .await
        .expect(200);
    assert_eq!(read.header("x-served-by"), side, "{}", read.body);
    assert_eq!(
        (
            &read.body["balances"]["posted"],
            &read.body["balances"]["held"]
        ),
        (&json!(balances.0), &json!(balances.1)),
        "{}",
        read.body
    );
    let released = stack
        .post(
            &format!("/v1/accounts/{account}/holds/{hold}/release"),
            token,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(released.header("x-served-by"), side, "{}", released.body);
}

/// The result of `rule` in a reconciliation run's answer.
fn result_of<'r>(run: &'r serde_json::Value, rule: &str) -> &'r serde_json::Value {
    run["results"]
        .as_array()
        .and_then(|results| results.iter().find(|r| r["rule"] == rule))
        .unwrap_or_else(|| panic!("no {rule} in {run}"))
}

pub(crate) fn account<'m>(migration: &'m mpb::Migration, id: &str) -> &'m mpb::AccountMove {
    migration
        .accounts
        .iter()
        .find(|account| account.account_id == id)
        .unwrap_or_else(|| panic!("{id} is not in {migration:?}"))
}

#[tokio::test]
async fn a_products_accounts_move_to_modern_with_their_money_and_holds_and_channels_follow() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let mut opened = Vec::new();
    for (customer, amount) in [("cust-a", "50.00"), ("cust-b", "10.00"), ("cust-c", "5.00")] {
        let account = stack
            .open_account(&token, customer, PRODUCT)
            .await
            .expect(201);
        assert_eq!(account.header("x-served-by"), "legacy");
        let id = account.body["id"].as_str().unwrap().to_owned();
        stack.deposit(&token, &id, amount).await.expect(201);
        opened.push(id);
    }
    let (a, b, frozen) = (&opened[0], &opened[1], &opened[2]);
    let hold = stack
        .post(
            &format!("/v1/accounts/{a}/holds"),
            &token,
            json!({ "amount": "20.00", "currency": "EUR", "reason": "card" }),
        )
        .await
        .expect(201);
    let hold_id = hold.body["id"].as_str().unwrap().to_owned();
    // The bank froze one account itself: it cannot move.
    bank_freezes(&stack, frozen).await;

    let app = migration_component(&stack).await;
    let refused = MigrationsClient::new(app.channel(DEPOSITS, MIGRATION))
        .start_migration(start(&Uuid::new_v4().to_string(), true))
        .await
        .unwrap_err();
    assert_eq!(error_code(&refused), "permission_denied");
    let mut migrations = MigrationsClient::new(app.channel(GATEWAY, MIGRATION));
    // Operators come through the gateway's admin API: a replica that knows where the
    // migration component is.
    let admin = Admin::to(admin_gateway(&stack, &app).await);
    let operator = stack.token(Role::Operator, "operator-a", None);
    let approver = stack.token(Role::Approver, "approver-b", None);

    // A dry run plans and moves nothing.
    let dry = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "dry_run": true, "reason": "how many?" }),
        )
        .await
        .expect(200);
    assert_eq!(dry.body["status"], "dry_run", "{}", dry.body);
    assert_eq!(dry.body["planned"], 3, "{}", dry.body);
    let planned_a = dry.body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|account| account["account_id"] == a.as_str())
        .unwrap();
    assert_eq!(
        (
            &planned_a["posted"],
            &planned_a["held"],
            &planned_a["holds"]
        ),
        (&json!("50.00"), &json!("20.00"), &json!(1))
    );
    let still = stack
        .get(&format!("/v1/accounts/{a}"), &token)
        .await
        .expect(200);
    assert_eq!(still.header("x-served-by"), "legacy");
    // A batch may be limited to a list of customers.
    let one = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "dry_run": true, "customer_ids": ["cust-b"], "reason": "one customer" }),
        )
        .await
        .expect(200);
    assert_eq!(
        (&one.body["planned"], &one.body["customers"]),
        (&json!(1), &json!(1)),
        "{}",
        one.body
    );
    assert_eq!(
        one.body["accounts"][0]["account_id"],
        b.as_str(),
        "{}",
        one.body
    );

    // The real one goes under four eyes.
    let proposed = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "reason": "wave 1" }),
        )
        .await
        .expect(202);
    assert_eq!(
        proposed.body["kind"], "migration_start",
        "{}",
        proposed.body
    );
    let approval = proposed.body["id"].as_str().unwrap().to_owned();
    let id = proposed.body["parameters"]["migration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let own = admin.decide(&approval, "approve", &operator, "mine").await;
    assert_eq!(own.status, 403, "{}", own.body);
    let approved = admin
        .decide(&approval, "approve", &approver, "the plan is as agreed")
        .await
        .expect(200);
    assert_eq!(
        approved.body["approval"]["outcome"], "done",
        "{}",
        approved.body
    );
    assert_eq!(
        approved.body["result"]["accounts"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let done = finished(&mut migrations, &id).await;
    let followed = admin
        .get(&format!("/admin/v1/migrations/{id}"), &operator)
        .await
        .expect(200);
    assert_eq!(followed.body["moved"], 2, "{}", followed.body);
    let listed = admin
        .get("/admin/v1/migrations", &operator)
        .await
        .expect(200);
    let newest = &listed.body["migrations"][0];
    assert_eq!(
        (&newest["migration_id"], &newest["moved"]),
        (&json!(id), &json!(2)),
        "{}",
        listed.body
    );
    assert_eq!(
        listed.body["migrations"].as_array().unwrap().len(),
        3,
        "two dry runs and the migration"
    );
    assert_eq!(
        followed.body["requested_by"], "operator-a, approved by approver-b",
        "{}",
        followed.body
    );
    assert_eq!(
        (done.moved, done.refused, done.failed),
        (2, 1, 0),
        "{done:?}"
    );
    let moved = account(&done, a);
    assert_eq!(
        (
            moved.state.as_str(),
            moved.posted.as_str(),
            moved.held.as_str(),
            moved.holds
        ),
        ("moved", "50.00", "20.00", 1)
    );
    assert!(!moved.modern_id.is_empty());
    assert_eq!(account(&done, b).state, "moved");
    let stayed = account(&done, frozen);
    assert_eq!(stayed.state, "refused");
    assert!(stayed.reason.starts_with("account_frozen"), "{stayed:?}");

    // Channels are served from modern, with the same balances and the same hold.
    served_with_its_hold(&stack, &token, a, "modern", ("50.00", "20.00"), &hold_id).await;
    let after = stack
        .get(&format!("/v1/accounts/{a}"), &token)
        .await
        .expect(200);
    assert_eq!(
        after.body["balances"]["available"], "50.00",
        "{}",
        after.body
    );
    stack.deposit(&token, b, "1.00").await.expect(201);
    // The refused move undid itself: no mark left, so the core's own refusal answers.
    let still_frozen = stack.deposit(&token, frozen, "1.00").await.expect(422);
    assert_eq!(
        still_frozen.body["code"], "account_frozen",
        "{}",
        still_frozen.body
    );
    let stayed_on_legacy = stack
        .get(&format!("/v1/accounts/{frozen}"), &token)
        .await
        .expect(200);
    assert_eq!(stayed_on_legacy.header("x-served-by"), "legacy");

    // The legacy accounts are empty and take nothing more.
    let mut legacy = DepositsClient::new(stack.legacy.channel(GATEWAY, LEGACY_ADAPTER));
    let emptied = legacy
        .get_account(dpb::GetAccountRequest {
            account_id: a.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(emptied.balances.unwrap().posted, "0.00");

    // The books agree: what moved sits in the modern clearing and the legacy suspense.
    let reconcile = || {
        admin.post(
            "/admin/v1/reconciliation",
            &operator,
            json!({ "reason": "after wave 1" }),
        )
    };
    let clean = reconcile().await.expect(201);
    assert_eq!(
        (&clean.body["checked"], &clean.body["breaks"]),
        (&json!(3), &json!(0)),
        "{}",
        clean.body
    );
    // Each moved account equals its snapshot on both books.
    let snapshots = result_of(&clean.body, "moved_accounts_match_snapshots");
    assert_eq!(
        (
            &snapshots["rule"],
            &snapshots["ok"],
            &snapshots["evidence"]["accounts"]
        ),
        (
            &json!("moved_accounts_match_snapshots"),
            &json!(true),
            &json!(2)
        ),
        "{snapshots}"
    );
    let result = result_of(&clean.body, "migration_clearing_nets_suspense");
    assert_eq!(
        (&result["rule"], &result["subject"], &result["expected"]),
        (
            &json!("migration_clearing_nets_suspense"),
            &json!("EUR"),
            &json!("60.00")
        ),
        "{result}"
    );
    assert_eq!(
        result["evidence"]["legacy_suspense"]["balance"], "60.00",
        "{result}"
    );
    assert_eq!(
        result["evidence"]["modern_clearing"]["balance"], "60.00",
        "{result}"
    );

    // A break made by hand in SQL on either book is found, with the figures that show it.
    let sql = |schema: &'static str, statement: &'static str| {
        let db = stack.database.db_for(schema);
        async move {
            db.client()
                .await
                .unwrap()
                .execute(statement, &[])
                .await
                .unwrap();
        }
    };
    sql(
        "legacy_core",
        "UPDATE accounts SET working_balance = working_balance + 1 \
         WHERE category = 12900 AND currency = 'EUR'",
    )
    .await;
    let broken = reconcile().await.expect(201);
    assert_eq!(broken.body["breaks"], 1, "{}", broken.body);
    let found = result_of(&broken.body, "migration_clearing_nets_suspense");
    assert_eq!(found["ok"], false);
    assert_eq!(
        found["evidence"]["legacy_suspense"]["balance"], "61.00",
        "{found}"
    );
    sql(
        "legacy_core",
        "UPDATE accounts SET working_balance = working_balance - 1 \
         WHERE category = 12900 AND currency = 'EUR'",
    )
    .await;
    sql(
        "ledger",
        "UPDATE account_balances SET debits_posted = debits_posted + 2 \
         WHERE account_id = (SELECT id FROM accounts WHERE code = 'deposits.migration_clearing.EUR') \
         AND shard = 0",
    )
    .await;
    let modern_break = reconcile().await.expect(201);
    let found = result_of(&modern_break.body, "migration_clearing_nets_suspense");
    assert_eq!(found["ok"], false, "{found}");
    assert_eq!(
        found["evidence"]["modern_clearing"]["balance"], "62.00",
        "{found}"
    );
    assert_eq!(
        found["evidence"]["legacy_suspense"]["balance"], "60.00",
        "{found}"
    );
    let run = modern_break.body["run_id"].as_str().unwrap();
    let kept = admin
        .get(&format!("/admin/v1/reconciliation/{run}"), &operator)
        .await
        .expect(200);
    assert_eq!(
        kept.body, modern_break.body,
        "a run is kept as it was found"
    );
    // Each break is an alert, raised once while it stands: someone acknowledges it, then
    // resolves it with the correcting entry. Every transition is kept and audited.
    admin
        .get("/admin/v1/reconciliation-alerts?state=", &operator)
        .await
        .expect(400);
    let open = admin
        .get("/admin/v1/reconciliation-alerts?state=open", &operator)
        .await
        .expect(200);
    let alerts = open.body["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{}", open.body);
    let alert = &alerts[0];
    assert_eq!(
        (
            &alert["rule"],
            &alert["subject"],
            &alert["run_id"],
            &alert["last_run_id"]
        ),
        (
            &json!("migration_clearing_nets_suspense"),
            &json!("EUR"),
            &broken.body["run_id"],
            &modern_break.body["run_id"]
        ),
        "{alert}"
    );
    let alert_id = alert["alert_id"].as_str().unwrap().to_owned();
    let change = |action: &'static str, body: serde_json::Value| {
        let path = format!("/admin/v1/reconciliation-alerts/{alert_id}/{action}");
        let (admin, operator) = (&admin, &operator);
        async move { admin.post(&path, operator, body).await }
    };
    let acknowledged = change("acknowledge", json!({})).await.expect(200);
    assert_eq!(
        acknowledged.body["state"], "acknowledged",
        "{}",
        acknowledged.body
    );
    let no_entry = change("resolve", json!({ "note": "fixed" }))
        .await
        .expect(400);
    assert!(
        no_entry.body["message"]
            .as_str()
            .unwrap()
            .contains("correcting_entry"),
        "{}",
        no_entry.body
    );
    let resolved = change(
        "resolve",
        json!({ "note": "a test posted by hand", "correcting_entry": "ledger entry reversing +2.00" }),
    )
    .await
    .expect(200);
    assert_eq!(
        (
            &resolved.body["state"],
            &resolved.body["changed_by"],
            &resolved.body["correcting_entry"]
        ),
        (
            &json!("resolved"),
            &json!("operator-a"),
            &json!("ledger entry reversing +2.00")
        ),
        "{}",
        resolved.body
    );
    assert_eq!(
        common::each(&resolved.body["events"], "state"),
        ["open", "acknowledged", "resolved"]
    );
    change(
        "resolve",
        json!({ "note": "again", "correcting_entry": "same" }),
    )
    .await
    .expect(200);
    let closed = change("accept", json!({ "note": "too late" }))
        .await
        .expect(409);
    assert_eq!(closed.body["code"], "alert_closed", "{}", closed.body);
    let audited = stack
        .audited(
            "resource = $1",
            &[&format!("reconciliation_alert:{alert_id}")],
        )
        .await;
    assert_eq!(audited, 5, "every call on the alert is audited");
    sql(
        "ledger",
        "UPDATE account_balances SET debits_posted = debits_posted - 2 \
         WHERE account_id = (SELECT id FROM accounts WHERE code = 'deposits.migration_clearing.EUR') \
         AND shard = 0",
    )
    .await;

    // One account goes back to legacy under four eyes, with what it holds now (10.00, the
    // 1.00 deposited on modern, and a hold placed there).
    let card = stack
        .post(
            &format!("/v1/accounts/{b}/holds"),
            &token,
            json!({ "amount": "2.00", "currency": "EUR", "reason": "card", "expires_in_seconds": 86_400 }),
        )
        .await
        .expect(201);
    assert_eq!(card.header("x-served-by"), "modern");
    let card = card.body["id"].as_str().unwrap().to_owned();
    let proposed = admin
        .post(
            &format!("/admin/v1/migrations/{id}/accounts/{b}/rollback"),
            &operator,
            json!({ "reason": "the customer asked" }),
        )
        .await
        .expect(202);
    assert_eq!(
        proposed.body["kind"], "migration_rollback",
        "{}",
        proposed.body
    );
    let rollback = proposed.body["id"].as_str().unwrap().to_owned();
    let approved = admin
        .decide(&rollback, "approve", &approver, "agreed")
        .await
        .expect(200);
    assert_eq!(
        approved.body["result"]["state"], "returning",
        "{}",
        approved.body
    );
    until(&mut migrations, &id, |now| {
        account(now, b).state == "returned"
    })
    .await;
    served_with_its_hold(&stack, &token, b, "legacy", ("11.00", "2.00"), &card).await;
    let after_return = reconcile().await.expect(201);
    assert_eq!(after_return.body["breaks"], 0, "{}", after_return.body);
    let still_open = admin
        .get("/admin/v1/reconciliation-alerts?state=open", &operator)
        .await
        .expect(200);
    assert_eq!(
        still_open.body["alerts"],
        json!([]),
        "clean runs raise nothing"
    );
    // 60.00 moved, 11.00 came back (the 10.00 moved and 1.00 deposited on modern).
    assert_eq!(
        result_of(&after_return.body, "migration_clearing_nets_suspense")["expected"],
        "49.00",
        "{}",
        after_return.body
    );

    // The same start again answers the same migration; another one finds nothing to move
    // but the account that came back.
    let again = migrations
        .start_migration(start(&id, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.moved, again.refused), (1, 1));
    assert_eq!(account(&again, b).state, "returned");
    let second = Uuid::new_v4().to_string();
    migrations
        .start_migration(start(&second, false))
        .await
        .unwrap();
    let second = finished(&mut migrations, &second).await;
    assert_eq!(account(&second, a).state, "refused");
    assert!(account(&second, a).reason.starts_with("account_moving"));
}

#[tokio::test]
async fn a_migration_through_a_faulty_legacy_core_moves_every_account_exactly_once() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let mut expected = rust_decimal::Decimal::ZERO;
    let mut opened = Vec::new();
    for n in 1..=6_i64 {
        let account = stack
            .open_account(&token, &format!("cust-{n}"), PRODUCT)
            .await
            .expect(201);
        let id = account.body["id"].as_str().unwrap().to_owned();
        let amount = rust_decimal::Decimal::new(n * 1_000 + 25, 2);
        expected += amount;
        stack
            .deposit(&token, &id, &amount.to_string())
            .await
            .expect(201);
        stack
            .post(
                &format!("/v1/accounts/{id}/holds"),
                &token,
                json!({ "amount": "1.00", "currency": "EUR", "reason": "card" }),
            )
            .await
            .expect(201);
        opened.push((id, amount));
    }
    // The core now loses answers after committing, fails some requests and is slow: the
    // moves settle lost answers by asking, and repeat nothing.
    stack
        .legacy_faults(
            "LATENCY.MAX.MS=10,LATENCY.MIN.MS=1,ERROR.RATE=0.15,DROP.AFTER.COMMIT.RATE=0.3",
        )
        .await;
    let app = migration_component(&stack).await;
    let mut migrations = MigrationsClient::new(app.channel(GATEWAY, MIGRATION));
    let id = Uuid::new_v4().to_string();
    migrations.start_migration(start(&id, false)).await.unwrap();
    let done = finished(&mut migrations, &id).await;
    stack
        .legacy_faults("ERROR.RATE=0,DROP.AFTER.COMMIT.RATE=0,LATENCY.MIN.MS=0,LATENCY.MAX.MS=0")
        .await;
    assert_eq!(
        (done.moved, done.failed, done.refused),
        (6, 0, 0),
        "{done:?}"
    );
    for (account, amount) in &opened {
        let moved = crate::migration::account(&done, account);
        assert_eq!(moved.posted, amount.to_string(), "{moved:?}");
        assert_eq!((moved.held.as_str(), moved.holds), ("1.00", 1), "{moved:?}");
        let read = stack
            .get(&format!("/v1/accounts/{account}"), &token)
            .await
            .expect(200);
        assert_eq!(read.header("x-served-by"), "modern");
        assert_eq!(
            read.body["balances"]["posted"],
            amount.to_string(),
            "{}",
            read.body
        );
    }
    // Nothing doubled on either book: both clearing accounts hold exactly what moved.
    let run = crate::crossings::reconciled(&app).await;
    assert_eq!(run.breaks, 0, "{run:?}");
    let clearing = crate::crossings::rule_result(&run, "migration_clearing_nets_suspense");
    assert_eq!(clearing.expected, expected.to_string(), "{run:?}");
}

#[tokio::test]
async fn a_paused_migration_starts_no_more_moves_until_a_second_operator_resumes_it() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let opened = funded_accounts(&stack, &token, 6, "12.00").await;
    let app = migration_component(&stack).await;
    let mut migrations = MigrationsClient::new(app.channel(GATEWAY, MIGRATION));
    let admin = Admin::to(admin_gateway(&stack, &app).await);
    let operator = stack.token(Role::Operator, "operator-a", None);
    let approver = stack.token(Role::Approver, "approver-b", None);

    let bad = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "max_error_ratio": "1.5", "reason": "too lax" }),
        )
        .await
        .expect(400);
    assert!(
        bad.body["message"]
            .as_str()
            .unwrap()
            .contains("max_error_ratio"),
        "{}",
        bad.body
    );
    let wide = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "in_flight_max": 65, "reason": "too wide" }),
        )
        .await
        .expect(400);
    assert!(
        wide.body["message"]
            .as_str()
            .unwrap()
            .contains("in_flight_max"),
        "{}",
        wide.body
    );
    // Two moves a second, two at a time: the operator has time to pause it.
    let proposed = admin
        .post(
            "/admin/v1/migrations",
            &operator,
            json!({ "product_code": PRODUCT, "rate_per_s": 2, "in_flight_max": 2.0, "reason": "slowly" }),
        )
        .await
        .expect(202);
    let id = proposed.body["parameters"]["migration_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let approval = proposed.body["id"].as_str().unwrap().to_owned();
    admin
        .decide(&approval, "approve", &approver, "as agreed")
        .await
        .expect(200);
    let paused = pause(&admin, &id, &operator, "the branch reports an odd balance")
        .await
        .expect(200);
    assert_eq!(
        (
            &paused.body["control"],
            &paused.body["control_changed_by"],
            &paused.body["rate_per_s"]
        ),
        (&json!("paused"), &json!("operator-a"), &json!(2)),
        "{}",
        paused.body
    );
    assert_eq!(paused.body["in_flight_max"], 2, "{}", paused.body);
    // The moves under way finish; no other starts while it is paused.
    let settled = until(&mut migrations, &id, |m| m.moving == 0).await;
    assert_eq!(settled.status, "paused", "{settled:?}");
    assert!(settled.planned >= 3, "{settled:?}");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = until(&mut migrations, &id, |_| true).await;
    assert_eq!(
        (later.planned, later.moved),
        (settled.planned, settled.moved),
        "{later:?}"
    );
    for account in &opened {
        let state = &crate::migration::account(&later, account).state;
        let read = stack
            .get(&format!("/v1/accounts/{account}"), &token)
            .await
            .expect(200);
        let side = if state == "moved" { "modern" } else { "legacy" };
        assert_eq!(read.header("x-served-by"), side, "{state}");
    }
    // Pausing again answers it as it is; resuming takes a second operator.
    pause(&admin, &id, &operator, "again").await.expect(200);
    let unknown = pause(&admin, &Uuid::new_v4().to_string(), &operator, "which one?")
        .await
        .expect(404);
    assert_eq!(unknown.body["code"], "not_found", "{}", unknown.body);
    let resume = admin
        .post(
            &format!("/admin/v1/migrations/{id}/resume"),
            &operator,
            json!({ "reason": "the balance was explained" }),
        )
        .await
        .expect(202);
    assert_eq!(resume.body["kind"], "migration_resume", "{}", resume.body);
    let resume_id = resume.body["id"].as_str().unwrap().to_owned();
    admin
        .decide(&resume_id, "approve", &operator, "mine")
        .await
        .expect(403);
    let resumed = admin
        .decide(&resume_id, "approve", &approver, "agreed")
        .await
        .expect(200);
    assert_eq!(
        resumed.body["result"]["control"], "running",
        "{}",
        resumed.body
    );
    finished(&mut migrations, &id).await;
    // Once every planned move has started, the feeder is done with it.
    let done = until(&mut migrations, &id, |m| m.control == "fed").await;
    assert_eq!((done.moved, done.failed), (6, 0), "{done:?}");
    let late = pause(&admin, &id, &operator, "too late").await.expect(409);
    assert_eq!(late.body["code"], "migration_not_running", "{}", late.body);
}

#[tokio::test]
async fn a_migration_whose_moves_fail_past_its_error_ratio_stops_by_itself() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let mut opened = funded_accounts(&stack, &token, 5, "3.00").await;
    // The feeder starts moves in account order: the first two are the ones the adapter no
    // longer finds on the core. Their moves fail (not a refusal: something is wrong with
    // the books, and the batch must stop).
    opened.sort();
    let adapter = stack.database.db_for("legacy_adapter");
    let client = adapter.client().await.unwrap();
    let broken: Vec<Uuid> = opened[..2]
        .iter()
        .map(|id| Uuid::parse_str(id).unwrap())
        .collect();
    for (n, account) in broken.iter().enumerate() {
        client
            .execute(
                "UPDATE accounts SET account_no = $2 WHERE account_id = $1",
                &[account, &format!("9999990{n}")],
            )
            .await
            .unwrap();
    }
    let app = migration_component(&stack).await;
    let mut migrations = MigrationsClient::new(app.channel(GATEWAY, MIGRATION));
    let id = Uuid::new_v4().to_string();
    // One move a second, stopping at the first failure (ratio 0).
    let request = mpb::StartMigrationRequest {
        rate_per_s: 1,
        max_error_ratio: "0".to_owned(),
        ..start(&id, false)
    };
    migrations.start_migration(request).await.unwrap();
    let stopped = until(&mut migrations, &id, |m| {
        m.status == "stopped" && m.moving == 0
    })
    .await;
    assert_eq!(stopped.control, "stopped", "{stopped:?}");
    assert!(
        stopped.control_reason.starts_with("error_rate: 1 of"),
        "{stopped:?}"
    );
    assert_eq!(stopped.control_changed_by, "migration feeder");
    assert!(stopped.failed >= 1 && stopped.planned >= 1, "{stopped:?}");
    let failed = stopped
        .accounts
        .iter()
        .find(|account| account.state == "failed")
        .unwrap();
    assert!(
        broken.contains(&Uuid::parse_str(&failed.account_id).unwrap()),
        "{failed:?}"
    );
    // Stopped, it starts nothing more on its own.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let later = until(&mut migrations, &id, |_| true).await;
    assert_eq!(later.planned, stopped.planned, "{later:?}");
    // Resumed with the cause understood, it runs on: each resume accepts the failures so
    // far, so the other broken account stops it once more at most, and the rest move.
    let mut resumes = 0;
    let done = loop {
        migrations
            .resume_migration(mpb::ControlMigrationRequest {
                migration_id: id.clone(),
                requested_by: "operator-a, approved by approver-b".to_owned(),
                reason: "two accounts are known broken".to_owned(),
            })
            .await
            .unwrap();
        resumes += 1;
        let settled = until(&mut migrations, &id, |m| {
            m.control != "running" && m.moving == 0
        })
        .await;
        if settled.control == "fed" || resumes == 3 {
            break settled;
        }
    };
    assert_eq!(done.control, "fed", "{done:?}");
    assert_eq!(
        (done.moved, done.failed, done.planned, done.status.as_str()),
        (3, 2, 0, "done"),
        "{done:?}"
    );
}

#[tokio::test]
async fn a_chunk_moves_its_accounts_together_and_hands_a_refused_one_over_to_a_move_of_its_own() {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let opened = funded_accounts(&stack, &token, 4, "10.00").await;
    // A pace of 8 moves under way puts the four accounts in two chunks of two: the frozen
    // one is in a chunk whatever the accounts' order.
    let frozen = &opened[3];
    bank_freezes(&stack, frozen).await;
    let app = migration_component(&stack).await;
    let mut migrations = MigrationsClient::new(app.channel(GATEWAY, MIGRATION));
    let id = Uuid::new_v4().to_string();
    migrations.start_migration(start(&id, false)).await.unwrap();
    let done = finished(&mut migrations, &id).await;
    assert_eq!(
        (done.moved, done.refused, done.failed),
        (3, 1, 0),
        "{done:?}"
    );
    let stayed = account(&done, frozen);
    assert!(stayed.reason.starts_with("account_frozen"), "{stayed:?}");

    let db = stack.database.db_for("migration");
    let client = db.client().await.unwrap();
    let sagas: Vec<(String, String, i64)> = client
        .query(
            "SELECT saga_type, status, count(*) FROM saga_instances \
             WHERE saga_type <> 'cross_side_transfer' GROUP BY 1, 2 ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    assert_eq!(
        sagas,
        [
            ("account_move".to_owned(), "compensated".to_owned(), 1),
            ("accounts_move".to_owned(), "completed".to_owned(), 2),
        ],
        "two chunks; the frozen account's own move ended it"
    );
    // The frozen account's own move went on from the chunk's freeze: it marked nothing
    // itself, and its compensation cleared the chunk's mark.
    let steps: Vec<(String, String)> = client
        .query(
            "SELECT s.step_name, s.direction FROM saga_steps s \
             JOIN saga_instances i ON i.id = s.saga_id \
             WHERE i.saga_type = 'account_move' ORDER BY s.started_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let step = |name: &str, direction: &str| (name.to_owned(), direction.to_owned());
    assert_eq!(steps.first(), Some(&step("freeze", "do")), "{steps:?}");
    assert!(!steps.contains(&step("mark", "do")), "{steps:?}");
    assert!(steps.contains(&step("mark", "undo")), "{steps:?}");
    let still_frozen = stack.deposit(&token, frozen, "1.00").await.expect(422);
    assert_eq!(
        still_frozen.body["code"], "account_frozen",
        "{}",
        still_frozen.body
    );
    for account in &opened[..3] {
        let read = stack
            .get(&format!("/v1/accounts/{account}"), &token)
            .await
            .expect(200);
        assert_eq!(read.header("x-served-by"), "modern");
        assert_eq!(read.body["balances"]["posted"], "10.00", "{}", read.body);
    }
}
