//! The account directory's moves (`corebank.gateway.v1.AccountHomes`): the mark that makes
//! channels wait, the switch of home, and the change feed that takes both to every replica;
//! and a request racing the legacy core's freeze (`corebank.legacy.v1.LegacyMigration`).

use std::time::Duration;

use corebank_api::deposits::v1 as dpb;
use corebank_api::deposits::v1::deposits_client::DepositsClient;
use corebank_api::gateway::v1 as gpb;
use corebank_api::gateway::v1::account_homes_client::AccountHomesClient;
use corebank_api::legacy::v1 as lpb;
use corebank_api::legacy::v1::legacy_migration_client::LegacyMigrationClient;
use corebank_gateway::auth::dev::Role;
use corebank_service::contract::error_code;
use corebank_service::internal::component_names::{DEPOSITS, GATEWAY, MIGRATION, PAYMENTS};
use serde_json::json;
use uuid::Uuid;

use crate::channel::{Stack, stack};
use crate::common::{Answer, send, spawn_gateway};
use corebank_testkit::TestApp;

const PRODUCT: &str = "MOVE-1";
const CUSTOMER: &str = "cust-move";

fn begin(account: &str, move_id: &str) -> gpb::BeginMoveRequest {
    gpb::BeginMoveRequest {
        account_id: account.to_owned(),
        move_id: move_id.to_owned(),
        product_code: PRODUCT.to_owned(),
        customer_id: CUSTOMER.to_owned(),
        currency: "EUR".to_owned(),
        home: "legacy".to_owned(),
    }
}

/// A deposit of 7.00 under `key` at `url`, sent in a task of its own and still held by the
/// gateway 300 ms later (not answered 503): the task.
async fn sent_and_held(
    http: &reqwest::Client,
    url: String,
    token: &str,
    key: &str,
) -> tokio::task::JoinHandle<Answer> {
    let (http, token, key) = (http.clone(), token.to_owned(), key.to_owned());
    let sent = tokio::spawn(async move { deposit(&http, url, &token, &key, "7.00").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !sent.is_finished(),
        "the refused request is held, not answered 503"
    );
    sent
}

/// Another gateway replica over the stack's directory and cores, with `settings`.
async fn replica(stack: &Stack, settings: &corebank_service::Settings) -> TestApp {
    spawn_gateway(
        settings,
        &stack.database,
        stack.legacy.internal_url(""),
        stack.modern.internal_url(""),
        &stack.shutdown,
    )
    .await
}

/// A deposit of `amount` EUR through the gateway at `url`, under `key`.
async fn deposit(
    http: &reqwest::Client,
    url: String,
    token: &str,
    key: &str,
    amount: &str,
) -> Answer {
    send(
        http,
        reqwest::Method::POST,
        url,
        Some(token),
        Some(key),
        Some(json!({ "amount": amount, "currency": "EUR" })),
    )
    .await
}

async fn read(http: &reqwest::Client, url: String, token: &str) -> Answer {
    send(http, reqwest::Method::GET, url, Some(token), None, None)
        .await
        .expect(200)
}

/// The account booked on modern by hand (as the move's booking step will), with `amount`;
/// its modern id.
async fn book_on_modern(stack: &Stack, amount: &str) -> String {
    let mut modern = DepositsClient::new(stack.modern.channel(GATEWAY, DEPOSITS));
    let booked = modern
        .open_account(dpb::OpenAccountRequest {
            request_id: Uuid::new_v4().to_string(),
            customer_id: CUSTOMER.to_owned(),
            product_code: PRODUCT.to_owned(),
            opened_on: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    modern
        .deposit(dpb::CashRequest {
            request_id: Uuid::new_v4().to_string(),
            account_id: booked.id.clone(),
            amount: amount.to_owned(),
            currency: "EUR".to_owned(),
            description: "opening balance".to_owned(),
            channel: String::new(),
        })
        .await
        .unwrap();
    booked.id
}

/// Switches the account's home to modern (its id there `booked`) and ends the move
/// `move_id`, as the move's last steps do.
async fn switch_and_end(
    homes: &mut AccountHomesClient<tonic::transport::Channel>,
    account: &str,
    move_id: &str,
    booked: String,
) {
    homes
        .switch_home(gpb::SwitchHomeRequest {
            account_id: account.to_owned(),
            move_id: move_id.to_owned(),
            home: "modern".to_owned(),
            id: booked,
            holds: vec![],
        })
        .await
        .unwrap();
    homes
        .end_move(gpb::EndMoveRequest {
            account_id: account.to_owned(),
            move_id: move_id.to_owned(),
        })
        .await
        .unwrap();
}

/// A stack with the product on both sides and a channel's account opened on legacy through
/// the gateway, holding 50.00: the stack, the channel's token and the account's id.
async fn legacy_account() -> (Stack, String, String) {
    let stack = stack().await;
    let token = stack.token(Role::Channel, "mobile-app", None);
    stack.product_on_both_sides(PRODUCT).await;
    let opened = stack
        .open_account(&token, CUSTOMER, PRODUCT)
        .await
        .expect(201);
    assert_eq!(opened.header("x-served-by"), "legacy");
    let account = opened.body["id"].as_str().unwrap().to_owned();
    stack.deposit(&token, &account, "50.00").await.expect(201);
    (stack, token, account)
}

/// A second account of the customer, opened on legacy through the gateway: its id.
async fn another_account(stack: &Stack, token: &str) -> String {
    stack
        .open_account(token, CUSTOMER, PRODUCT)
        .await
        .expect(201)
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// The deposit of 7.00 under `key` runs at the first URL, on modern, and the second replays it.
async fn runs_once_on_modern(http: &reqwest::Client, urls: [String; 2], token: &str, key: &str) {
    let [first, again] = urls;
    let done = deposit(http, first, token, key, "7.00").await.expect(201);
    assert_eq!(done.header("x-served-by"), "modern", "{}", done.body);
    let replayed = deposit(http, again, token, key, "7.00").await.expect(201);
    assert_eq!(replayed.header("idempotent-replayed"), "true");
}

/// The deposit of 7.00 under `key` at `url` is answered 503 `account_moving`, safe to retry
/// after one second; the answer.
async fn told_to_wait(http: &reqwest::Client, url: String, token: &str, key: &str) -> Answer {
    let waiting = deposit(http, url, token, key, "7.00").await.expect(503);
    assert_eq!(waiting.body["code"], "account_moving", "{}", waiting.body);
    assert_eq!(waiting.body["retry_safe"], true);
    assert_eq!(waiting.header("retry-after"), "1");
    waiting
}

/// The held deposit `sent` under `key` is answered 201 on modern after a hold of at least
/// `held_at_least_ms` (and less than the 2 s hold), and the same key replays that answer.
async fn served_on_modern_once(
    stack: &Stack,
    token: &str,
    deposits: &str,
    sent: tokio::task::JoinHandle<Answer>,
    key: &str,
    held_at_least_ms: u64,
) {
    let done = sent.await.unwrap().expect(201);
    assert_eq!(done.header("x-served-by"), "modern", "{}", done.body);
    let waited = held_ms(&done);
    assert!(
        (held_at_least_ms..1_900).contains(&waited),
        "held {waited} ms"
    );
    let replayed = deposit(&stack.http, stack.gateway.url(deposits), token, key, "7.00")
        .await
        .expect(201);
    assert_eq!(replayed.header("idempotent-replayed"), "true");
}

/// The rest of the move `move_id` of the frozen `account` (emptied on legacy, booked on
/// modern, its home switched, the mark cleared), during which the deposit `sent` under `key`
/// was held: it is served on modern once, after the core refused it `refused` times.
async fn moved_and_served_once(
    stack: &Stack,
    token: &str,
    account: &str,
    move_id: &str,
    sent: tokio::task::JoinHandle<Answer>,
    key: &str,
    refused: i64,
) {
    let mut legacy = LegacyMigrationClient::new(stack.legacy.channel(MIGRATION, "legacy-adapter"));
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    let emptied = legacy
        .empty_account(lpb::AccountMoveRequest {
            account_id: account.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let booked = book_on_modern(stack, &emptied.moved).await;
    switch_and_end(&mut homes, account, move_id, booked).await;
    let deposits = format!("/v1/accounts/{account}/deposits");
    served_on_modern_once(stack, token, &deposits, sent, key, 300).await;
    let resource = format!("account:{account}");
    let audited = stack
        .audited("resource = $1 AND outcome = '503'", &[&resource])
        .await;
    assert_eq!(audited, refused, "attempts the core refused");
}

/// How long the gateway held the request for a move (`x-move-held-ms`), in milliseconds.
fn held_ms(answer: &Answer) -> u64 {
    answer
        .header("x-move-held-ms")
        .parse()
        .unwrap_or_else(|_| panic!("no x-move-held-ms in {:?}", answer.headers))
}

#[tokio::test]
async fn a_moving_account_makes_its_channels_wait_and_serves_them_from_its_new_home_after() {
    let (stack, token, account) = legacy_account().await;
    let deposits = format!("/v1/accounts/{account}/deposits");
    let path = format!("/v1/accounts/{account}");
    // A second replica over the same directory, with the account in its cache, that does
    // not hold requests on a moving account.
    let mut answers_at_once = stack.settings.clone();
    answers_at_once.migration_hold_ms = 0;
    let replica = replica(&stack, &answers_at_once).await;
    let before = read(&stack.http, replica.url(&path), &token).await;
    assert_eq!(
        before.body["balances"]["posted"], "50.00",
        "{}",
        before.body
    );

    // Only the migration component moves accounts.
    let stranger = AccountHomesClient::new(stack.gateway.channel(PAYMENTS, GATEWAY))
        .begin_move(begin(&account, "m1:a"))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    let began = homes
        .begin_move(begin(&account, "m1:a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (began.move_id.as_str(), began.home.as_str()),
        ("m1:a", "legacy")
    );
    assert_eq!(began.legacy_id, account);
    let again = homes
        .begin_move(begin(&account, "m1:a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, began, "the same move again answers the same");
    let overtaking = homes.begin_move(begin(&account, "m2:a")).await.unwrap_err();
    assert_eq!(error_code(&overtaking), "account_moving");
    let malformed = homes
        .begin_move(begin("not-a-uuid", "m1:a"))
        .await
        .unwrap_err();
    assert_eq!(error_code(&malformed), "invalid_argument");

    // This replica holds the channel's request for the hold (2 s by default), then tells it
    // to wait; the other, which does not hold, tells it at once from its next poll (100 ms
    // here). Both before the key is taken; reads are still served, by the home.
    let key = Uuid::new_v4().to_string();
    let held = told_to_wait(&stack.http, stack.gateway.url(&deposits), &token, &key).await;
    assert!(
        (1_900..5_000).contains(&held_ms(&held)),
        "{:?}",
        held.headers
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = told_to_wait(&stack.http, replica.url(&deposits), &token, &key).await;
    assert_eq!(waiting.header("x-move-held-ms"), "", "not held");
    let during = read(&stack.http, replica.url(&path), &token).await;
    assert_eq!(
        during.body["balances"]["posted"], "50.00",
        "{}",
        during.body
    );

    // The move books the account on modern (here by hand) and switches its home.
    let booked = book_on_modern(&stack, "50.00").await;
    let switch = |move_id: &str| gpb::SwitchHomeRequest {
        account_id: account.clone(),
        move_id: move_id.to_owned(),
        home: "modern".to_owned(),
        id: booked.clone(),
        holds: vec![],
    };
    let not_this_move = homes.switch_home(switch("m2:a")).await.unwrap_err();
    assert_eq!(error_code(&not_this_move), "not_moving");
    let switched = homes
        .switch_home(switch("m1:a"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (switched.home.as_str(), switched.modern_id.as_str()),
        ("modern", booked.as_str())
    );
    assert_eq!(
        homes
            .switch_home(switch("m1:a"))
            .await
            .unwrap()
            .into_inner(),
        switched
    );
    deposit(
        &stack.http,
        stack.gateway.url(&deposits),
        &token,
        &key,
        "7.00",
    )
    .await
    .expect(503);
    let ended = homes
        .end_move(gpb::EndMoveRequest {
            account_id: account.clone(),
            move_id: "m1:a".to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (ended.move_id.as_str(), ended.moving_since.as_str()),
        ("", "")
    );

    // The request that waited runs once, on the new home, on either replica.
    tokio::time::sleep(Duration::from_millis(300)).await;
    runs_once_on_modern(
        &stack.http,
        [replica.url(&deposits), stack.gateway.url(&deposits)],
        &token,
        &key,
    )
    .await;
    for gateway in [&stack.gateway, &replica] {
        let after = read(&stack.http, gateway.url(&path), &token).await;
        assert_eq!(after.body["balances"]["posted"], "57.00", "{}", after.body);
        assert_eq!(after.header("x-served-by"), "modern");
    }
    let home = homes
        .get_home(gpb::GetHomeRequest {
            account_id: account.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((home.home.as_str(), home.move_id.as_str()), ("modern", ""));
}

#[tokio::test]
async fn a_request_the_core_refuses_as_it_freezes_is_sent_again_while_its_hold_lasts_and_runs_once_on_the_new_home()
 {
    let (stack, token, account) = legacy_account().await;
    let deposits = format!("/v1/accounts/{account}/deposits");

    // The core freezes the account before the gateway's mark is set: a request that passes
    // the gateway is refused by the core.
    let mut legacy = LegacyMigrationClient::new(stack.legacy.channel(MIGRATION, "legacy-adapter"));
    let request = || lpb::AccountMoveRequest {
        account_id: account.clone(),
    };
    let frozen = legacy.freeze_account(request()).await.unwrap().into_inner();
    assert_eq!(
        (frozen.state.as_str(), frozen.posted.as_str()),
        ("moving", "50.00")
    );
    // Nothing changes while it is held: the gateway sends it again while its hold lasts,
    // then tells it to retry, having held it for its one budget, not one per sending.
    let told = Uuid::new_v4().to_string();
    let waiting = told_to_wait(&stack.http, stack.gateway.url(&deposits), &token, &told).await;
    let waited = held_ms(&waiting);
    assert!((1_900..3_000).contains(&waited), "held {waited} ms");

    // Another request arrives, and the move goes on within its hold: the gateway's mark,
    // the legacy account emptied, the account booked on modern (here by hand), its home
    // switched, the mark cleared.
    let resent = Uuid::new_v4().to_string();
    let sent = sent_and_held(&stack.http, stack.gateway.url(&deposits), &token, &resent).await;
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    homes.begin_move(begin(&account, "m1:race")).await.unwrap();
    let emptied = legacy.empty_account(request()).await.unwrap().into_inner();
    assert_eq!(emptied.moved, "50.00");
    let booked = book_on_modern(&stack, &emptied.moved).await;
    switch_and_end(&mut homes, &account, "m1:race", booked).await;

    // The held one is served on modern, once; the one told to retry runs once there too;
    // the legacy account takes nothing more.
    served_on_modern_once(&stack, &token, &deposits, sent, &resent, 300).await;
    runs_once_on_modern(
        &stack.http,
        [stack.gateway.url(&deposits), stack.gateway.url(&deposits)],
        &token,
        &told,
    )
    .await;
    let after = read(
        &stack.http,
        stack.gateway.url(&format!("/v1/accounts/{account}")),
        &token,
    )
    .await;
    assert_eq!(after.body["balances"]["posted"], "64.00", "{}", after.body);
    let on_legacy = legacy.freeze_account(request()).await.unwrap_err();
    assert_eq!(error_code(&on_legacy), "account_migrated");
}

#[tokio::test]
async fn a_replica_that_has_not_seen_the_mark_sends_the_refused_request_again_once_and_holds_it_until_the_move_ends()
 {
    let (stack, token, account) = legacy_account().await;
    let deposits = format!("/v1/accounts/{account}/deposits");
    // A replica whose feed polls once a minute, with the account in its cache from before
    // the move.
    let mut slow = stack.settings.clone();
    slow.gateway_route_poll_ms = 60_000;
    let replica = replica(&stack, &slow).await;
    let path = format!("/v1/accounts/{account}");
    read(&stack.http, replica.url(&path), &token).await;

    // The move marks the account (on the other replica) and the core freezes it; a deposit
    // reaches the replica, which still has it unmarked.
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    homes.begin_move(begin(&account, "m1:stale")).await.unwrap();
    let mut legacy = LegacyMigrationClient::new(stack.legacy.channel(MIGRATION, "legacy-adapter"));
    let request = || lpb::AccountMoveRequest {
        account_id: account.clone(),
    };
    legacy.freeze_account(request()).await.unwrap();
    let key = Uuid::new_v4().to_string();
    let sent = sent_and_held(&stack.http, replica.url(&deposits), &token, &key).await;
    // The core refused it once: sent again, it read the account as the directory had it
    // (moving) and waited for the move's end instead of reaching the core again.
    moved_and_served_once(&stack, &token, &account, "m1:stale", sent, &key, 1).await;
    let after = read(&stack.http, replica.url(&path), &token).await;
    assert_eq!(after.body["balances"]["posted"], "57.00", "{}", after.body);
}

#[tokio::test]
async fn a_request_refused_before_its_accounts_mark_is_stored_waits_for_that_mark_not_for_other_accounts_changes()
 {
    let (stack, token, account) = legacy_account().await;
    let deposits = format!("/v1/accounts/{account}/deposits");
    let other = another_account(&stack, &token).await;

    // The core refuses the account before any mark (as the migration component refuses a
    // cross-side transfer while a move drains it): refused, and refused again when sent
    // again at once with the account read afresh.
    let mut legacy = LegacyMigrationClient::new(stack.legacy.channel(MIGRATION, "legacy-adapter"));
    let request = || lpb::AccountMoveRequest {
        account_id: account.clone(),
    };
    legacy.freeze_account(request()).await.unwrap();
    let key = Uuid::new_v4().to_string();
    let sent = sent_and_held(&stack.http, stack.gateway.url(&deposits), &token, &key).await;

    // Other accounts change meanwhile, as they do every poll while a migration runs: the
    // held request is not sent again for them.
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    for round in 0..4 {
        let move_id = format!("m1:other-{round}");
        homes.begin_move(begin(&other, &move_id)).await.unwrap();
        homes
            .end_move(gpb::EndMoveRequest {
                account_id: other.clone(),
                move_id,
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(80)).await;
    }

    // Its own mark comes: sent again, it waits for the move's end and runs once on modern.
    homes.begin_move(begin(&account, "m1:late")).await.unwrap();
    moved_and_served_once(&stack, &token, &account, "m1:late", sent, &key, 2).await;
}

#[tokio::test]
async fn a_request_on_a_moving_account_is_held_until_the_move_ends_and_runs_once_on_the_new_home() {
    let (stack, token, account) = legacy_account().await;
    let deposits = format!("/v1/accounts/{account}/deposits");
    // A second replica, which learns of the move's end from its change feed only.
    let replica = replica(&stack, &stack.settings).await;
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    homes.begin_move(begin(&account, "m1:hold")).await.unwrap();

    // One request on each replica, each under its own key, arrives while the account moves.
    let held = |url: String, key: String| {
        let (http, token) = (stack.http.clone(), token.clone());
        tokio::spawn(async move { deposit(&http, url, &token, &key, "7.00").await })
    };
    let keys = [Uuid::new_v4().to_string(), Uuid::new_v4().to_string()];
    let on_replica = held(replica.url(&deposits), keys[0].clone());
    let on_mover = held(stack.gateway.url(&deposits), keys[1].clone());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        !on_replica.is_finished() && !on_mover.is_finished(),
        "both are held"
    );

    // The move books the account on modern (here by hand), switches its home and ends.
    let booked = book_on_modern(&stack, "50.00").await;
    switch_and_end(&mut homes, &account, "m1:hold", booked).await;

    // Each is served on the new home, having waited no 503, and runs once.
    for (request, key) in [(on_replica, &keys[0]), (on_mover, &keys[1])] {
        served_on_modern_once(&stack, &token, &deposits, request, key, 400).await;
    }
    let after = read(
        &stack.http,
        stack.gateway.url(&format!("/v1/accounts/{account}")),
        &token,
    )
    .await;
    assert_eq!(after.body["balances"]["posted"], "64.00", "{}", after.body);
}

/// A change of `ChangeHomes`.
fn change(change: gpb::home_change::Change) -> gpb::HomeChange {
    gpb::HomeChange {
        change: Some(change),
    }
}

#[tokio::test]
async fn changes_of_several_accounts_in_one_call_are_each_done_or_refused_alone() {
    let (stack, token, account) = legacy_account().await;
    let other = another_account(&stack, &token).await;
    let mut homes = AccountHomesClient::new(stack.gateway.channel(MIGRATION, GATEWAY));
    // The other account is already moved by another move: its mark is refused, the
    // account's is done, and a change without a kind is refused with what was wrong.
    homes.begin_move(begin(&other, "m0:b")).await.unwrap();
    use gpb::home_change::Change as C;
    let marked = homes
        .change_homes(gpb::ChangeHomesRequest {
            changes: vec![
                change(C::BeginMove(begin(&account, "m1:a"))),
                change(C::BeginMove(begin(&other, "m1:b"))),
                gpb::HomeChange { change: None },
            ],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert_eq!(marked.len(), 3);
    let home = marked[0].home.clone().unwrap();
    assert_eq!(
        (home.move_id.as_str(), marked[0].code.as_str()),
        ("m1:a", "")
    );
    assert_eq!(marked[1].code, "account_moving", "{:?}", marked[1]);
    assert!(marked[1].home.is_none());
    assert_eq!(marked[2].code, "invalid_argument");
    assert!(
        marked[2].message.contains("changes[2]"),
        "{}",
        marked[2].message
    );
    let still = homes
        .get_home(gpb::GetHomeRequest {
            account_id: other.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.move_id, "m0:b", "a refused change changes nothing");

    // The channel's request waits on the marked account, as after BeginMove.
    let key = Uuid::new_v4().to_string();
    let deposits = format!("/v1/accounts/{account}/deposits");
    let waiting = sent_and_held(&stack.http, stack.gateway.url(&deposits), &token, &key).await;

    // Switch and end in one call each, as a chunk of moves does; the same calls again
    // answer the same.
    let booked = book_on_modern(&stack, "50.00").await;
    let switch = || {
        change(C::SwitchHome(gpb::SwitchHomeRequest {
            account_id: account.clone(),
            move_id: "m1:a".to_owned(),
            home: "modern".to_owned(),
            id: booked.clone(),
            holds: vec![],
        }))
    };
    let end = || {
        change(C::EndMove(gpb::EndMoveRequest {
            account_id: account.clone(),
            move_id: "m1:a".to_owned(),
        }))
    };
    for _ in 0..2 {
        let switched = homes
            .change_homes(gpb::ChangeHomesRequest {
                changes: vec![switch()],
            })
            .await
            .unwrap()
            .into_inner()
            .results;
        let home = switched[0].home.clone().unwrap();
        assert_eq!(
            (home.home.as_str(), home.modern_id.as_str()),
            ("modern", booked.as_str())
        );
    }
    let ended = homes
        .change_homes(gpb::ChangeHomesRequest {
            changes: vec![end(), end()],
        })
        .await
        .unwrap()
        .into_inner()
        .results;
    assert!(ended.iter().all(|result| {
        result.code.is_empty()
            && result
                .home
                .as_ref()
                .is_some_and(|home| home.move_id.is_empty())
    }));
    let answered = waiting.await.unwrap();
    assert_eq!(answered.status, 201, "{}", answered.body);
    assert_eq!(answered.header("x-served-by"), "modern");

    // An empty call, or one over the most, is refused as a whole.
    let empty = homes
        .change_homes(gpb::ChangeHomesRequest { changes: vec![] })
        .await
        .unwrap_err();
    assert_eq!(error_code(&empty), "invalid_argument");
    let stranger = AccountHomesClient::new(stack.gateway.channel(PAYMENTS, GATEWAY))
        .change_homes(gpb::ChangeHomesRequest {
            changes: vec![end()],
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), tonic::Code::PermissionDenied);
}
