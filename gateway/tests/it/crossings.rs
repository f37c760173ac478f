//! Transfers across the cores (ADR 0014): between an account the legacy core keeps and one
//! the modern side keeps, through the channel API, as the migration component's
//! `cross_side_transfer` saga; its four saga tests, a faulty legacy core, and how it keeps
//! out of an account's move.

use std::time::Duration;

use corebank_api::migration::v1 as mpb;
use corebank_api::migration::v1::migrations_client::MigrationsClient;
use corebank_gateway::auth::dev::Role;
use corebank_migration::crossings::SagaOptions;
use corebank_migration::peers::Peers;
use corebank_service::internal::component_names::{DEPOSITS, GATEWAY, LEGACY_ADAPTER, MIGRATION};
use corebank_testkit::TestApp;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::channel::{Stack, rule, shadowed, stack};
use crate::common::Answer;

/// The migration component beside `stack`, reaching its peers as `migration`, with the
/// cross-side transfer saga's test switches `options`.
pub(crate) async fn migration_app(stack: &Stack, options: SagaOptions) -> TestApp {
    let peers = Peers::new(
        stack.gateway.channel(MIGRATION, GATEWAY),
        stack.legacy.channel(MIGRATION, LEGACY_ADAPTER),
        stack.modern.channel(MIGRATION, DEPOSITS),
    );
    let executor = corebank_saga::ExecutorConfig {
        poll_interval: Duration::from_millis(50),
        ..corebank_saga::ExecutorConfig::new()
    };
    let (component, _) = corebank_migration::grpc::component_with(
        stack.database.db_for("migration"),
        peers,
        executor,
        options,
        stack.shutdown.clone(),
    )
    .unwrap();
    TestApp::spawn(component).await
}

/// A stack whose gateway sends transfers across the cores to a migration component (with
/// the saga's test switches `options`), and that component.
pub(crate) async fn crossing_stack(options: SagaOptions) -> (Stack, TestApp) {
    let mut stack = stack().await;
    let migration = migration_app(&stack, options).await;
    let replica = crate::migration::admin_gateway(&stack, &migration).await;
    let first = std::mem::replace(&mut stack.gateway, replica);
    stack.spare.push(first);
    (stack, migration)
}

/// A legacy account (`LEGACY-CURRENT`, no rule: the legacy core keeps it) of `customer`
/// with `amount` on it.
async fn legacy_account(stack: &Stack, token: &str, customer: &str, amount: &str) -> String {
    stack
        .funded_account(token, customer, "LEGACY-CURRENT", amount)
        .await
}

fn transfer(from: &str, to: &str, amount: &str) -> Value {
    json!({ "from_account_id": from, "to_account_id": to, "amount": amount, "currency": "EUR" })
}

/// The transfer once it is no longer pending (at most 30 s).
async fn settled(stack: &Stack, token: &str, answer: &Answer) -> Value {
    let id = answer.body["id"].as_str().unwrap().to_owned();
    for _ in 0..300 {
        let read = stack
            .get(&format!("/v1/transfers/{id}"), token)
            .await
            .expect(200);
        if read.body["status"] != "pending" {
            return read.body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("transfer {id} still pending after 30 s");
}

/// (posted, held, available) of an account, as the channel reads it.
async fn balances(stack: &Stack, token: &str, account: &str) -> (String, String, String) {
    let read = stack
        .get(&format!("/v1/accounts/{account}"), token)
        .await
        .expect(200);
    let b = &read.body["balances"];
    let text = |name: &str| b[name].as_str().unwrap_or_default().to_owned();
    (text("posted"), text("held"), text("available"))
}

/// The account has `posted`, nothing held, and all of it available.
async fn unheld(stack: &Stack, token: &str, account: &str, posted: &str) {
    assert_eq!(
        balances(stack, token, account).await,
        (posted.to_owned(), "0.00".to_owned(), posted.to_owned()),
        "account {account}"
    );
}

/// A reconciliation run now.
pub(crate) async fn reconciled(migration: &TestApp) -> mpb::Reconciliation {
    MigrationsClient::new(migration.channel(GATEWAY, MIGRATION))
        .reconcile(mpb::ReconcileRequest {
            run_id: Uuid::new_v4().to_string(),
            requested_by: "test".to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The result of `rule` in `run` (its first, for a rule run per subject).
pub(crate) fn rule_result<'r>(
    run: &'r mpb::Reconciliation,
    rule: &str,
) -> &'r mpb::ReconciliationResult {
    run.results
        .iter()
        .find(|result| result.rule == rule)
        .unwrap_or_else(|| panic!("{rule} did not run: {run:?}"))
}

/// A reconciliation run now, and its inter-core rule's result for EUR.
async fn inter_core(migration: &TestApp) -> mpb::ReconciliationResult {
    reconciled(migration)
        .await
        .results
        .into_iter()
        .find(|result| result.rule == "inter_core_clearing_nets" && result.subject == "EUR")
        .expect("the inter-core rule ran for EUR")
}

/// Transfers both ways between a legacy and a modern account, each to a completed end, and
/// what both books and the clearing accounts say afterwards.
async fn both_ways(stack: &Stack, migration: &TestApp) {
    let token = stack.token(Role::Channel, "mobile-app", None);
    let legacy = legacy_account(stack, &token, "cust-1", "100.00").await;
    let modern = stack.modern_payer("GW-XMOD", "cust-2").await;

    let key = Uuid::new_v4().to_string();
    let out = stack
        .transfer_with_key(&token, &key, transfer(&legacy, &modern, "30.00"))
        .await;
    assert_eq!(out.status, 201, "{}", out.body);
    assert_eq!(out.body["status"], "completed", "{}", out.body);
    assert_eq!(out.header("x-served-by"), "legacy");
    assert_eq!(out.body["from_account_id"], legacy.as_str());
    assert_eq!(out.body["to_account_id"], modern.as_str());
    // The same key again answers the same, and moves nothing more.
    let again = stack
        .transfer_with_key(&token, &key, transfer(&legacy, &modern, "30.00"))
        .await;
    assert_eq!((again.status, &again.body), (201, &out.body));
    unheld(stack, &token, &legacy, "70.00").await;
    unheld(stack, &token, &modern, "130.00").await;

    let back = stack
        .post("/v1/transfers", &token, transfer(&modern, &legacy, "20.00"))
        .await;
    assert_eq!(back.status, 201, "{}", back.body);
    assert_eq!(back.header("x-served-by"), "modern");
    unheld(stack, &token, &legacy, "90.00").await;
    unheld(stack, &token, &modern, "110.00").await;
    let read = stack
        .get(
            &format!("/v1/transfers/{}", out.body["id"].as_str().unwrap()),
            &token,
        )
        .await
        .expect(200);
    assert_eq!(read.body, out.body);

    // Each core's inter-core clearing account holds 10.00 (30 in one way, 20 the other)
    // and the two net to zero.
    let rule = inter_core(migration).await;
    assert!(rule.ok, "{rule:?}");
    assert_eq!(rule.expected, "0", "{rule:?}");
    assert!(
        rule.actual.contains("clearing 10.00 less legacy 10.00"),
        "{rule:?}"
    );
}

#[tokio::test]
async fn a_transfer_across_the_cores_moves_the_money_once_and_the_clearing_accounts_net_to_zero() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    both_ways(&stack, &migration).await;

    // Only the source's owner reads a transfer; an unknown one is 404.
    let token = stack.token(Role::Channel, "mobile-app", None);
    let own = legacy_account(&stack, &token, "cust-3", "5.00").await;
    let modern = stack.modern_payer("GW-XMOD2", "cust-4").await;
    let done = stack
        .post("/v1/transfers", &token, transfer(&own, &modern, "5.00"))
        .await
        .expect(201);
    let path = format!("/v1/transfers/{}", done.body["id"].as_str().unwrap());
    let stranger = stack.token(Role::Channel, "someone", Some("cust-9"));
    let hidden = stack.get(&path, &stranger).await.expect(404);
    assert_eq!(hidden.body["code"], "unknown_transfer");
    let owner = stack.token(Role::Channel, "owner", Some("cust-3"));
    stack.get(&path, &owner).await.expect(200);
    let unknown = stack
        .get(&format!("/v1/transfers/{}", Uuid::new_v4()), &token)
        .await
        .expect(404);
    assert_eq!(unknown.body["code"], "unknown_transfer");
}

#[tokio::test]
async fn every_action_of_a_transfer_across_the_cores_run_twice_gives_the_same_result() {
    let (stack, migration) = crossing_stack(SagaOptions {
        actions_twice: true,
        compensations_twice: false,
    })
    .await;
    both_ways(&stack, &migration).await;
}

/// A refusal at the hold (more than the account has) and at the credit (a closed account):
/// each unwinds to what was there before, with the refusal's own code.
async fn failures_unwind(stack: &Stack, migration: &TestApp) {
    let token = stack.token(Role::Channel, "mobile-app", None);
    let legacy = legacy_account(stack, &token, "cust-1", "100.00").await;
    let modern = stack.modern_payer("GW-XFAIL", "cust-2").await;

    // hold: more than the legacy account has.
    let refused = stack
        .post(
            "/v1/transfers",
            &token,
            transfer(&legacy, &modern, "100.01"),
        )
        .await
        .expect(422);
    assert_eq!(
        refused.body["code"], "insufficient_funds",
        "{}",
        refused.body
    );
    unheld(stack, &token, &legacy, "100.00").await;

    // credit: the legacy account it goes to is closed; the modern hold is released.
    let closed = stack
        .open_account(&token, "cust-5", "LEGACY-CURRENT")
        .await
        .expect(201);
    let closed = closed.body["id"].as_str().unwrap().to_owned();
    stack
        .post(&format!("/v1/accounts/{closed}/close"), &token, json!({}))
        .await
        .expect(200);
    let refused = stack
        .post("/v1/transfers", &token, transfer(&modern, &closed, "40.00"))
        .await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert_eq!(refused.body["code"], "account_closed", "{}", refused.body);
    unheld(stack, &token, &modern, "100.00").await;
    // Nothing crossed: the clearing accounts were never touched.
    let rule = inter_core(migration).await;
    assert!(rule.ok, "{rule:?}");
    assert!(rule.actual.contains("= 0"), "{rule:?}");
}

#[tokio::test]
async fn a_failure_injected_at_each_step_before_the_pivot_unwinds_to_a_clean_state() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    failures_unwind(&stack, &migration).await;
}

#[tokio::test]
async fn the_unwinding_of_a_transfer_across_the_cores_run_twice_leaves_the_same_clean_state() {
    let (stack, migration) = crossing_stack(SagaOptions {
        actions_twice: false,
        compensations_twice: true,
    })
    .await;
    failures_unwind(&stack, &migration).await;
}

#[tokio::test]
async fn transfers_across_a_faulty_legacy_core_are_applied_exactly_once() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let legacy = legacy_account(&stack, &token, "cust-1", "100.00").await;
    let modern = stack.modern_payer("GW-XFLT", "cust-2").await;
    // The core loses answers after committing, fails some requests and is slow: each step
    // settles a lost answer by asking again with the same request id.
    stack
        .legacy_faults(
            "LATENCY.MAX.MS=10,LATENCY.MIN.MS=1,ERROR.RATE=0.15,DROP.AFTER.COMMIT.RATE=0.3",
        )
        .await;
    for n in 0..6 {
        let (from, to) = if n % 2 == 0 {
            (&legacy, &modern)
        } else {
            (&modern, &legacy)
        };
        let key = Uuid::new_v4().to_string();
        let body = transfer(from, to, if n % 2 == 0 { "7.00" } else { "2.00" });
        // The channel retries what the gateway could not finish (503s) with the same key.
        let mut answer = None;
        for _ in 0..50 {
            let sent = stack.transfer_with_key(&token, &key, body.clone()).await;
            if sent.status != 503 && sent.status != 502 {
                answer = Some(sent);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let answer = answer.expect("the transfer was answered within 50 tries");
        assert!(
            answer.status == 201 || answer.status == 202,
            "{} {}",
            answer.status,
            answer.body
        );
        assert_eq!(
            settled(&stack, &token, &answer).await["status"],
            "completed"
        );
    }
    stack
        .legacy_faults("ERROR.RATE=0,DROP.AFTER.COMMIT.RATE=0,LATENCY.MIN.MS=0,LATENCY.MAX.MS=0")
        .await;
    // 3 × 7.00 out of legacy, 3 × 2.00 back: 15.00 crossed, nothing twice.
    unheld(&stack, &token, &legacy, "85.00").await;
    unheld(&stack, &token, &modern, "115.00").await;
    let rule = inter_core(&migration).await;
    assert!(rule.ok, "{rule:?}");
}

#[tokio::test]
async fn a_transfer_never_credits_the_shadow_copy_of_an_account_kept_by_the_other_core() {
    let (stack, _migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    // The payer's home is modern; the payee's is legacy, with a shadow copy on modern.
    let payer = stack.modern_payer("GW-TMOD", "cust-t").await;
    stack.product_on_both_sides("GW-TLEG").await;
    stack
        .route(json!([
            rule("GW-TMOD", "accounts.write", "modern"),
            rule("GW-TMOD", "cash", "modern"),
            rule("GW-TMOD", "transfers", "modern"),
            shadowed("GW-TLEG", "accounts.write"),
        ]))
        .await;
    let opened = stack
        .open_account(&token, "cust-u", "GW-TLEG")
        .await
        .expect(201);
    assert_eq!(opened.header("x-served-by"), "legacy");
    let payee = opened.body["id"].as_str().unwrap().to_owned();
    // The shadow copy is opened by the shadow run, after the answer.
    let mut copy = None;
    for _ in 0..100 {
        copy = stack.modern_id_of(&payee).await;
        if copy.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let copy = copy.expect("the shadow run opened the copy on modern");

    // The transfer crosses to the payee's home (legacy), not to its copy on modern.
    let crossed = stack
        .post(
            "/v1/transfers",
            &token,
            json!({ "from_account_id": payer, "to_account_id": payee, "amount": "10.00", "currency": "EUR" }),
        )
        .await;
    assert_eq!(crossed.status, 201, "{}", crossed.body);
    unheld(&stack, &token, &payer, "90.00").await;
    let payee_read = stack
        .get(&format!("/v1/accounts/{payee}"), &token)
        .await
        .expect(200);
    assert_eq!(payee_read.header("x-served-by"), "legacy");
    assert_eq!(payee_read.body["balances"]["posted"], "10.00");
    let copy_read = corebank_api::deposits::v1::deposits_client::DepositsClient::new(
        stack.modern.channel(GATEWAY, DEPOSITS),
    )
    .get_account(corebank_api::deposits::v1::GetAccountRequest {
        account_id: copy.to_string(),
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(copy_read.balances.unwrap().posted, "0.00");
}

/// A migration of `product` started at the component (the four eyes are the gateway's, and
/// tested there).
async fn migrate(migration: &TestApp, product: &str) -> mpb::Migration {
    let mut migrations = MigrationsClient::new(migration.channel(GATEWAY, MIGRATION));
    let id = Uuid::new_v4().to_string();
    migrations
        .start_migration(mpb::StartMigrationRequest {
            migration_id: id.clone(),
            product_code: product.to_owned(),
            fraction: String::new(),
            dry_run: false,
            requested_by: "operator-a".to_owned(),
            customer_ids: vec![],
            rate_per_s: 0,
            max_error_ratio: String::new(),
            in_flight_max: 0,
        })
        .await
        .unwrap();
    crate::migration::finished(&mut migrations, &id).await
}

/// Runs `sql` in the migration component's schema.
async fn in_migration_schema(
    stack: &Stack,
    sql: &str,
    params: &[&(dyn corebank_db::tokio_postgres::types::ToSql + Sync)],
) {
    stack
        .database
        .db_for("migration")
        .client()
        .await
        .unwrap()
        .execute(sql, params)
        .await
        .unwrap();
}

/// A saga of `saga_type` in `status`, written as the executor would have left it.
async fn seeded_saga(stack: &Stack, id: Uuid, saga_type: &str, status: &str, step: i64) {
    in_migration_schema(
        stack,
        "INSERT INTO saga_instances (id, saga_type, version, status, input, outputs, \
         current_step, next_attempt_at, paused_reason, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, '{}', '{}', $4, now() + INTERVAL '1 hour', $5, now(), now())",
        &[
            &id,
            &saga_type,
            &status,
            &step,
            &(if status == "paused" { "seeded" } else { "" }),
        ],
    )
    .await;
}

#[tokio::test]
async fn a_move_gives_up_an_account_whose_transfer_across_waits_for_an_operator() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides("MIG-BUSY").await;
    let mut accounts = Vec::new();
    for customer in ["cust-a", "cust-b"] {
        let opened = stack
            .open_account(&token, customer, "MIG-BUSY")
            .await
            .expect(201);
        accounts.push(opened.body["id"].as_str().unwrap().to_owned());
    }
    // A transfer from the first account paused past its credit (an operator must look).
    let transfer = Uuid::new_v4();
    let busy = Uuid::parse_str(&accounts[0]).unwrap();
    in_migration_schema(
        &stack,
        "INSERT INTO crossings (transfer_id, from_side, from_account_id, from_reference, \
         to_side, to_account_id, to_reference, amount, currency, description, created_at) \
         VALUES ($1, 'legacy', $2, $2, 'modern', $3, $3, '1.00', 'EUR', '', now())",
        &[&transfer, &busy, &Uuid::new_v4()],
    )
    .await;
    seeded_saga(&stack, transfer, "cross_side_transfer", "paused", 2).await;

    let done = migrate(&migration, "MIG-BUSY").await;
    let given_up = crate::migration::account(&done, &accounts[0]);
    assert_eq!(given_up.state, "refused", "{given_up:?}");
    assert!(given_up.reason.starts_with("account_busy"), "{given_up:?}");
    assert_eq!(
        crate::migration::account(&done, &accounts[1]).state,
        "moved"
    );
    // It stays where it was, served as ever.
    let read = stack
        .get(&format!("/v1/accounts/{}", accounts[0]), &token)
        .await
        .expect(200);
    assert_eq!(read.header("x-served-by"), "legacy");
}

#[tokio::test]
async fn a_transfer_across_is_refused_while_either_account_moves_until_the_move_clears_its_mark() {
    let (stack, _migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let legacy = legacy_account(&stack, &token, "cust-1", "50.00").await;
    let modern = stack.modern_payer("GW-XMOV", "cust-2").await;
    // The legacy account's move has started (its saga runs on, elsewhere).
    let saga = Uuid::new_v4();
    seeded_saga(&stack, saga, "account_move", "running", 0).await;
    in_migration_schema(
        &stack,
        "INSERT INTO account_moves (migration_id, account_id, legacy_account_number, \
         customer_id, currency, state, saga_id, updated_at) \
         VALUES ($1, $2, 'L', 'cust-1', 'EUR', 'moving', $3, now())",
        &[&Uuid::new_v4(), &Uuid::parse_str(&legacy).unwrap(), &saga],
    )
    .await;
    for (from, to) in [(&legacy, &modern), (&modern, &legacy)] {
        let refused = stack
            .post("/v1/transfers", &token, transfer(from, to, "5.00"))
            .await
            .expect(503);
        assert_eq!(refused.body["code"], "account_moving", "{}", refused.body);
        assert!(!refused.header("retry-after").is_empty());
    }
    unheld(&stack, &token, &legacy, "50.00").await;
    unheld(&stack, &token, &modern, "100.00").await;

    // Once the move has cleared the gateway's mark, only its own record is left: transfers
    // are no longer refused (the gateway, seeing no mark, would have nothing to wait for).
    in_migration_schema(
        &stack,
        "UPDATE saga_instances SET outputs = '{\"unmark\": {}}', current_step = 8 WHERE id = $1",
        &[&saga],
    )
    .await;
    let done = stack
        .post("/v1/transfers", &token, transfer(&legacy, &modern, "5.00"))
        .await
        .expect(201);
    assert_eq!(done.body["status"], "completed", "{}", done.body);
    unheld(&stack, &token, &legacy, "45.00").await;
    unheld(&stack, &token, &modern, "105.00").await;

    // Once the move has switched the account's home, a transfer that still names the legacy
    // core for it (its sender read the directory before the switch) is refused as moving,
    // safe to send again, and nothing moves: on legacy it would fail as migrated.
    in_migration_schema(
        &stack,
        "UPDATE account_moves SET state = 'moved' WHERE saga_id = $1",
        &[&saga],
    )
    .await;
    let refused = stack
        .post("/v1/transfers", &token, transfer(&legacy, &modern, "5.00"))
        .await
        .expect(503);
    assert_eq!(refused.body["code"], "account_moving", "{}", refused.body);
    assert_eq!(refused.body["retry_safe"], true, "{}", refused.body);
    unheld(&stack, &token, &legacy, "45.00").await;
    unheld(&stack, &token, &modern, "105.00").await;
}

#[tokio::test]
async fn transfers_across_racing_a_migration_all_land_once_and_both_books_reconcile() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides("MIG-RACE").await;
    let mut movers = Vec::new();
    for n in 0..6 {
        movers.push(
            stack
                .funded_account(&token, &format!("cust-{n}"), "MIG-RACE", "50.00")
                .await,
        );
    }
    let modern = stack.modern_payer("GW-XRACE", "cust-m").await;
    let stack = std::sync::Arc::new(stack);
    // A channel sends 1.00 from each account to the modern one and back, over and over,
    // retrying 503s with the same key, while the product migrates.
    let sender = {
        let stack = std::sync::Arc::clone(&stack);
        let (token, movers, modern) = (token.clone(), movers.clone(), modern.clone());
        tokio::spawn(async move {
            let mut sent = 0_u32;
            let mut unexpected = Vec::new();
            for round in 0..4 {
                for account in &movers {
                    let (from, to) = if round % 2 == 0 {
                        (account, &modern)
                    } else {
                        (&modern, account)
                    };
                    let key = Uuid::new_v4().to_string();
                    loop {
                        let answer = stack
                            .transfer_with_key(&token, &key, transfer(from, to, "1.00"))
                            .await;
                        match answer.status {
                            503 => tokio::time::sleep(Duration::from_millis(50)).await,
                            201 | 202 => {
                                sent += 1;
                                break;
                            }
                            _ => {
                                unexpected.push(format!("{} {}", answer.status, answer.body));
                                break;
                            }
                        }
                    }
                }
            }
            (sent, unexpected)
        })
    };
    let done = migrate(&migration, "MIG-RACE").await;
    let (sent, unexpected) = sender.await.unwrap();
    assert!(unexpected.is_empty(), "{unexpected:?}");
    assert_eq!(sent, 24);
    assert_eq!(
        (done.moved, done.refused, done.failed),
        (6, 0, 0),
        "{done:?}"
    );
    // Two rounds out and two back: every account is where it started, on its new home.
    for account in &movers {
        let read = stack
            .get(&format!("/v1/accounts/{account}"), &token)
            .await
            .expect(200);
        assert_eq!(read.header("x-served-by"), "modern");
        assert_eq!(read.body["balances"]["posted"], "50.00", "{}", read.body);
    }
    unheld(&stack, &token, &modern, "100.00").await;
    let run = reconciled(&migration).await;
    assert_eq!(run.breaks, 0, "{run:?}");
    let rules: Vec<&str> = run.results.iter().map(|r| r.rule.as_str()).collect();
    assert_eq!(
        rules,
        [
            "expired_holds_hold_nothing",
            "inter_core_clearing_nets",
            "migration_clearing_nets_suspense",
            "moved_accounts_match_snapshots"
        ]
    );

    // A posting made by hand in SQL to a moved account on the legacy book breaks the rule
    // that every moved account equals its snapshot, naming the account.
    let broken = crate::migration::account(&done, &movers[2]);
    stack
        .database
        .db_for("legacy_core")
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE stmt_entries SET amount = amount + 1 \
             WHERE account = $1 AND narrative = 'MIGRATED TO NEW CORE'",
            &[&broken.legacy_account_number],
        )
        .await
        .unwrap();
    let run = reconciled(&migration).await;
    let snapshots = rule_result(&run, "moved_accounts_match_snapshots");
    assert!(!snapshots.ok, "{snapshots:?}");
    assert_eq!(snapshots.actual, "5 as their snapshots, 1 not");
    let evidence: Value = serde_json::from_str(&snapshots.evidence).unwrap();
    assert_eq!(evidence["shown"][0]["account_id"], movers[2].as_str());
    // The snapshot depends on when the freeze fell among the transfers: the entry that
    // emptied the account now shows 1.00 less than it, and the account 1.00 left.
    let shown = &evidence["shown"][0];
    let figure =
        |value: &Value| -> rust_decimal::Decimal { value.as_str().unwrap().parse().unwrap() };
    assert_eq!(
        figure(&shown["snapshot"]) - figure(&shown["legacy"]["emptied"]),
        rust_decimal::Decimal::ONE,
        "{evidence}"
    );
    assert_eq!(shown["legacy"]["posted"], "1.00", "{evidence}");
}

#[tokio::test]
async fn reconciliation_finds_a_hold_whose_time_ran_out_but_still_holds_funds() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let account = stack.modern_payer("GW-XLAPSE", "cust-1").await;
    let hold = stack
        .post(
            &format!("/v1/accounts/{account}/holds"),
            &token,
            json!({ "amount": "30.00", "currency": "EUR", "reason": "card" }),
        )
        .await
        .expect(201);
    let rule = |run: mpb::Reconciliation| rule_result(&run, "expired_holds_hold_nothing").clone();
    let clean = rule(reconciled(&migration).await);
    assert!(clean.ok, "{clean:?}");
    assert_eq!(clean.subject, "modern");

    // By hand in SQL, the hold's time ran out an hour ago on deposits' books; the ledger
    // still holds its funds (its pending entry has no timeout).
    let modern_id = stack.modern_id_of(&account).await.unwrap();
    let changed = stack
        .database
        .db_for("deposits")
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE holds SET expires_at = now() - INTERVAL '1 hour' WHERE account_id = $1",
            &[&modern_id],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let broken = rule(reconciled(&migration).await);
    assert!(!broken.ok, "{broken:?}");
    assert!(broken.actual.starts_with("1 still held"), "{broken:?}");
    let evidence: Value = serde_json::from_str(&broken.evidence).unwrap();
    let held = &evidence["still_held"][0];
    assert_eq!(
        (&held["amount"], &held["ledger_status"]),
        (&json!("30.00"), &json!("held")),
        "{evidence}"
    );
    assert!(!hold.body["id"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn reconciliation_finds_a_shadowed_account_whose_books_differ() {
    let (stack, migration) = crossing_stack(SagaOptions::default()).await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    let account = stack.shadowed_account(&token, "GW-XSHADOW", "cust-s").await;
    stack.deposit(&token, &account, "50.00").await.expect(201);
    crate::channel::shadow_summary(&stack, "cash", 1).await;
    let rule = |run: mpb::Reconciliation| rule_result(&run, "shadowed_accounts_agree").clone();
    let clean = rule(reconciled(&migration).await);
    assert!(clean.ok, "{clean:?}");
    assert_eq!(
        (clean.subject.as_str(), clean.actual.as_str()),
        ("EUR", "1 equal on both books, 0 not")
    );

    // A posting made on the shadow books alone (straight to the modern copy, around the
    // gateway) is a break that names the account and both books' figures.
    let copy = stack.modern_id_of(&account).await.unwrap();
    corebank_api::deposits::v1::deposits_client::DepositsClient::new(
        stack.modern.channel(GATEWAY, DEPOSITS),
    )
    .deposit(corebank_api::deposits::v1::CashRequest {
        request_id: Uuid::new_v4().to_string(),
        account_id: copy.to_string(),
        amount: "1.00".to_owned(),
        currency: "EUR".to_owned(),
        description: "by hand".to_owned(),
        channel: String::new(),
    })
    .await
    .unwrap();
    let broken = rule(reconciled(&migration).await);
    assert!(!broken.ok, "{broken:?}");
    let evidence: Value = serde_json::from_str(&broken.evidence).unwrap();
    let shown = &evidence["shown"][0];
    assert_eq!(shown["account_id"], account.as_str());
    assert_eq!(
        (&shown["legacy"]["posted"], &shown["modern"]["posted"]),
        (&json!("50.00"), &json!("51.00")),
        "{evidence}"
    );
}
