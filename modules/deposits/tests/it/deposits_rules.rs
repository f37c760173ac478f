//! The deposits module against a real ledger and PostgreSQL: accounts, cash, limits,
//! holds, freezing, dormancy, closing, interest, idempotency and events.

use crate::common::*;
use chrono::{NaiveDate, TimeDelta};

async fn funded(
    h: &Harness,
    code: &str,
    tweak: impl FnOnce(&mut corebank_deposits::app::NewProduct),
    amount: &str,
) -> String {
    h.create_product(code, tweak).await;
    h.open_funded(code, amount).await
}

async fn events(h: &Harness, event_type: &str) -> i64 {
    h.deposits_value(
        "SELECT count(*) FROM outbox WHERE type = $1",
        &[&event_type],
    )
    .await
}

#[tokio::test]
async fn cash_moves_through_the_ledger_and_a_refusal_changes_nothing() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "100.00").await;
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(view.status, "active");
    assert_eq!(view.balances.posted, "100.00");
    assert_eq!(view.balances.available, "100.00");

    let out = h
        .deposits
        .movement("withdrawal", "cash", &id(), &account, "30.25", "EUR", "ATM")
        .await
        .unwrap();
    assert_eq!(out.balances_after.posted, "69.75");
    let refused = h.cash_refused("withdrawal", &account, "69.76").await;
    assert_eq!(refused.code(), "insufficient_funds");
    assert_eq!(h.posted(&account).await, "69.75");
    for (amount, currency, code) in [
        ("0", "EUR", "invalid_argument"),
        ("-1.00", "EUR", "invalid_argument"),
        ("1.001", "EUR", "invalid_argument"),
        ("1.00", "USD", "currency_mismatch"),
    ] {
        let refused = h
            .deposits
            .movement("deposit", "cash", &id(), &account, amount, currency, "")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{amount} {currency}");
    }
    assert_eq!(h.posted(&account).await, "69.75");
    assert_eq!(events(&h, "deposits.account.opened").await, 1);
    assert_eq!(events(&h, "deposits.money.deposited").await, 1);
    assert_eq!(events(&h, "deposits.money.withdrawn").await, 1);
    let statement = h.deposits.statement(&account, "", 50).await.unwrap();
    assert_eq!(statement.lines.len(), 2);
    assert_eq!(statement.lines[1].running_balance, "69.75");
}

#[tokio::test]
async fn the_same_request_replays_and_other_content_under_its_id_is_refused() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "100.00").await;
    let request = id();
    let first = h
        .deposits
        .movement("withdrawal", "cash", &request, &account, "10.00", "EUR", "")
        .await
        .unwrap();
    assert!(!first.replayed);
    let again = h
        .deposits
        .movement("withdrawal", "cash", &request, &account, "10.00", "EUR", "")
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry_id, first.entry_id);
    let other = h
        .deposits
        .movement("withdrawal", "cash", &request, &account, "11.00", "EUR", "")
        .await
        .unwrap_err();
    assert_eq!(other.code(), "exists_with_different_content");
    assert!(other.to_string().contains("amount"), "{other}");
    assert_eq!(h.posted(&account).await, "90.00");
    assert_eq!(events(&h, "deposits.money.withdrawn").await, 1);
}

#[tokio::test]
async fn a_minimum_balance_and_an_overdraft_are_kept_by_the_ledger() {
    let h = start().await;
    let savings = funded(
        &h,
        "savings",
        |p| {
            p.kind = "savings".to_owned();
            p.minimum_balance = "100.00".to_owned();
        },
        "150.00",
    )
    .await;
    let view = h.deposits.account_by_text(&savings).await.unwrap();
    assert_eq!(view.balances.available, "50.00");
    let refused = h.cash_refused("withdrawal", &savings, "50.01").await;
    assert_eq!(refused.code(), "insufficient_funds");
    h.cash_done("withdrawal", &savings, "50.00").await;

    let current = funded(
        &h,
        "overdraft",
        |p| p.overdraft_limit = "500.00".to_owned(),
        "0",
    )
    .await;
    h.cash_done("withdrawal", &current, "500.00").await;
    assert_eq!(h.posted(&current).await, "-500.00");
    let refused = h.cash_refused("withdrawal", &current, "0.01").await;
    assert_eq!(refused.code(), "insufficient_funds");

    let both = h
        .deposits
        .create_product(product("both", |p| {
            p.minimum_balance = "10.00".to_owned();
            p.overdraft_limit = "10.00".to_owned();
        }))
        .await
        .unwrap_err();
    assert_eq!(both.code(), "invalid_argument");
}

#[tokio::test]
async fn concurrent_withdrawals_never_break_the_limit() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "1000.00").await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let deposits = h.deposits.clone();
        let account = account.clone();
        tasks.push(tokio::spawn(async move {
            deposits
                .movement("withdrawal", "cash", &id(), &account, "30.00", "EUR", "")
                .await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => accepted += 1,
            Err(error) => assert_eq!(error.code(), "insufficient_funds"),
        }
    }
    assert_eq!(accepted, 33);
    assert_eq!(h.posted(&account).await, "10.00");
}

#[tokio::test]
async fn a_hold_lowers_the_available_balance_until_released_or_expired() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "100.00").await;
    let hold = h
        .deposits
        .place_hold(&id(), &account, "70.00", "EUR", "card authorisation", 0)
        .await
        .unwrap();
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(
        (
            view.balances.posted.as_str(),
            view.balances.held.as_str(),
            view.balances.available.as_str()
        ),
        ("100.00", "70.00", "30.00")
    );
    let refused = h.cash_refused("withdrawal", &account, "30.01").await;
    assert_eq!(refused.code(), "insufficient_funds");
    let released = h.release_hold(&hold.id.to_string()).await.unwrap();
    assert_eq!(released.status, "released");
    let again = h.release_hold(&hold.id.to_string()).await.unwrap_err();
    assert_eq!(again.code(), "hold_not_held");
    assert_eq!(
        h.deposits
            .account_by_text(&account)
            .await
            .unwrap()
            .balances
            .available,
        "100.00"
    );

    // A hold with a timeout: the ledger expires it, and deposits records that.
    let expiring = h
        .deposits
        .place_hold(&id(), &account, "40.00", "EUR", "pre-authorisation", 60)
        .await
        .unwrap();
    h.clock.advance(TimeDelta::seconds(61));
    let started = std::time::Instant::now();
    loop {
        if h.deposits.expire_holds().await.unwrap() == 1 {
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the hold did not expire"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(view.balances.available, "100.00");
    assert_eq!(events(&h, "deposits.hold.expired").await, 1);
    let refused = h.release_hold(&expiring.id.to_string()).await.unwrap_err();
    assert_eq!(refused.code(), "hold_not_held");
}

#[tokio::test]
async fn frozen_and_dormant_accounts_refuse_what_they_must() {
    let h = start().await;
    let account = funded(&h, "current", |p| p.dormancy_days = 30, "100.00").await;
    h.change_status("freeze", &account, "court order 12")
        .await
        .unwrap();
    for kind in ["deposit", "withdrawal"] {
        let refused = h.cash_refused(kind, &account, "1.00").await;
        assert_eq!(refused.code(), "account_frozen", "{kind}");
    }
    h.change_status("unfreeze", &account, "order lifted")
        .await
        .unwrap();

    h.clock.advance(TimeDelta::days(31));
    assert_eq!(h.deposits.mark_dormant().await.unwrap(), 1);
    let refused = h.cash_refused("withdrawal", &account, "1.00").await;
    assert_eq!(refused.code(), "account_dormant");
    h.cash_done("deposit", &account, "1.00").await;
    assert_eq!(
        h.deposits.account_by_text(&account).await.unwrap().status,
        "active"
    );
    assert_eq!(events(&h, "deposits.account.dormant").await, 1);
}

#[tokio::test]
async fn interest_accrues_daily_posts_monthly_and_a_second_run_changes_nothing() {
    // 10,000.00 EUR at 3.65 % Actual/365: exactly 1.00 a day (docs/INTEREST.md).
    let h = start_at(at(2026, 1, 1)).await;
    let account = funded(&h, "saver", |_| {}, "10000.00").await;
    h.clock.set(at(2026, 2, 10));
    let through = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
    let report = h.deposits.accrue(through, &|_, _| {}).await.unwrap();
    assert_eq!(
        (
            report.accounts,
            report.accrual_entries,
            report.postings,
            report.failed
        ),
        (1, 31, 1, 0)
    );
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(view.balances.posted, "10031.00");
    assert_eq!(view.balances.accrued_interest, "0.00");
    assert_eq!(view.accrued_through, through);

    let again = h.deposits.accrue(through, &|_, _| {}).await.unwrap();
    assert_eq!(
        (again.accounts, again.accrual_entries, again.postings),
        (0, 0, 0)
    );
    assert_eq!(h.posted(&account).await, "10031.00");

    // Five more days: accrued, not yet posted (10,031.00 × 3.65 % / 365 = 1.0031 a day).
    let report = h
        .deposits
        .accrue(NaiveDate::from_ymd_opt(2026, 2, 5).unwrap(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!(report.postings, 0);
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(view.balances.accrued_interest, "5.02");
    assert_eq!(events(&h, "deposits.interest.posted").await, 1);
}

#[tokio::test]
async fn closing_posts_the_final_interest_pays_out_and_refuses_with_open_holds() {
    let h = start_at(at(2026, 3, 1)).await;
    let account = funded(&h, "saver", |_| {}, "10000.00").await;
    let hold = h
        .deposits
        .place_hold(&id(), &account, "1.00", "EUR", "pending card", 0)
        .await
        .unwrap();
    h.clock.set(at(2026, 3, 11));
    let refused = h
        .change_status("close", &account, "customer request")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "cannot_close");
    h.release_hold(&hold.id.to_string()).await.unwrap();
    let closed = h.close(&account).await;
    assert_eq!(closed.status, "closed");
    // Interest for Mar 1..10: ten days at 1.00, posted at closing, then paid out.
    assert_eq!(closed.balances.posted, "0.00");
    assert_eq!(closed.balances.accrued_interest, "0.00");
    let statement = h.deposits.statement(&account, "", 50).await.unwrap();
    let amounts: Vec<&str> = statement.lines.iter().map(|l| l.amount.as_str()).collect();
    assert_eq!(
        amounts,
        ["10000.00", "1.00", "-1.00", "10.00", "10010.00"],
        "{statement:?}"
    );
    let refused = h.cash_refused("deposit", &account, "1.00").await;
    assert_eq!(refused.code(), "account_closed");
}

#[tokio::test]
async fn transfers_keep_the_per_transfer_and_daily_limits_even_when_concurrent() {
    let h = start().await;
    let from = funded(
        &h,
        "limited",
        |p| {
            p.per_transfer_limit = "150.00".to_owned();
            p.daily_transfer_limit = "1000.00".to_owned();
        },
        "5000.00",
    )
    .await;
    let to = h.open_account("customer-2", "limited").await;
    let refused = h.transfer_eur(&from, &to, "150.01").await.unwrap_err();
    assert_eq!(refused.code(), "transfer_limit_exceeded");

    let mut tasks = Vec::new();
    for _ in 0..20 {
        let deposits = h.deposits.clone();
        let (from, to) = (from.clone(), to.clone());
        tasks.push(tokio::spawn(async move {
            deposits
                .transfer(&id(), &from, &to, "100.00", "EUR", "rent share")
                .await
        }));
    }
    let mut accepted = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(view) => {
                assert!(!view.replayed);
                accepted += 1;
            }
            Err(error) => assert_eq!(error.code(), "daily_limit_exceeded"),
        }
    }
    assert_eq!(accepted, 10);
    assert_eq!(h.posted(&from).await, "4000.00");
    assert_eq!(h.posted(&to).await, "1000.00");
    assert_eq!(events(&h, "deposits.transfer.sent").await, 10);
    assert_eq!(events(&h, "deposits.transfer.received").await, 10);

    // The next day the limit starts again; a transfer the ledger refuses gives its share back.
    h.clock.advance(TimeDelta::days(1));
    let poor = funded(
        &h,
        "limited-2",
        |p| p.daily_transfer_limit = "100.00".to_owned(),
        "50.00",
    )
    .await;
    let refused = h.transfer_eur(&poor, &to, "60.00").await.unwrap_err();
    assert_eq!(refused.code(), "insufficient_funds");
    h.transfer_eur(&poor, &to, "50.00").await.unwrap();
    h.transfer_eur(&from, &to, "100.00").await.unwrap();
}

#[tokio::test]
async fn a_captured_hold_goes_to_clearing_and_clearing_can_credit_an_account() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "100.00").await;
    let hold = h
        .deposits
        .place_hold(&id(), &account, "40.00", "EUR", "outbound payment", 0)
        .await
        .unwrap();
    let request = id();
    let captured = h
        .deposits
        .capture_hold(&request, &hold.id.to_string(), "clearing")
        .await
        .unwrap();
    assert_eq!(captured.status, "captured");
    assert!(
        h.deposits
            .capture_hold(&request, &hold.id.to_string(), "clearing")
            .await
            .unwrap()
            .replayed
    );
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(
        (
            view.balances.posted.as_str(),
            view.balances.held.as_str(),
            view.balances.available.as_str()
        ),
        ("60.00", "0.00", "60.00")
    );
    let refused = h.release_hold(&hold.id.to_string()).await.unwrap_err();
    assert_eq!(refused.code(), "hold_not_held");
    let refused = h
        .deposits
        .capture_hold(&id(), &hold.id.to_string(), "moon")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_argument");

    let received = h
        .deposits
        .movement(
            "deposit",
            "clearing",
            &id(),
            &account,
            "25.00",
            "EUR",
            "inbound payment",
        )
        .await
        .unwrap();
    assert_eq!(received.balances_after.posted, "85.00");
    assert_eq!(events(&h, "deposits.hold.captured").await, 1);
}

#[tokio::test]
async fn a_cross_side_transfer_moves_through_the_inter_core_clearing_account() {
    let h = start().await;
    let account = funded(&h, "current", |_| {}, "100.00").await;
    let clearing = |h: &Harness| {
        let deposits = h.deposits.clone();
        async move {
            deposits
                .migration_clearing("EUR", "inter_core")
                .await
                .unwrap()
                .balance
        }
    };
    // Nothing crossed yet: the account is not even opened on the ledger.
    assert_eq!(clearing(&h).await, "0.00");
    // Money in from the other core: the inter-core account's debit balance grows.
    let received = h
        .deposits
        .movement(
            "deposit",
            "inter_core",
            &id(),
            &account,
            "25.00",
            "EUR",
            "from the other core",
        )
        .await
        .unwrap();
    assert_eq!(received.balances_after.posted, "125.00");
    assert_eq!(clearing(&h).await, "25.00");
    // Money out to the other core: a hold captured into the inter-core account.
    let hold = h
        .deposits
        .place_hold(&id(), &account, "40.00", "EUR", "cross-side transfer", 0)
        .await
        .unwrap();
    let captured = h
        .deposits
        .capture_hold(&id(), &hold.id.to_string(), "inter_core")
        .await
        .unwrap();
    assert_eq!(captured.status, "captured");
    assert_eq!(clearing(&h).await, "-15.00");
    // The migration clearing account is another account, untouched.
    assert_eq!(
        h.deposits
            .migration_clearing("EUR", "migration")
            .await
            .unwrap()
            .balance,
        "0.00"
    );
    let view = h.deposits.account_by_text(&account).await.unwrap();
    assert_eq!(view.balances.posted, "85.00");
    // Any other name is refused, naming the field.
    let refused = h
        .deposits
        .migration_clearing("EUR", "moon")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_argument");
    let refused = h
        .deposits
        .movement("deposit", "moon", &id(), &account, "1.00", "EUR", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_argument");
}

#[tokio::test]
async fn closing_posts_interest_the_job_already_accrued() {
    let h = start_at(at(2026, 3, 1)).await;
    let account = funded(&h, "saver", |_| {}, "10000.00").await;
    h.clock.set(at(2026, 3, 11));
    // The scheduled job ran last night: Mar 1..10 accrued, not yet posted (mid-month).
    let report = h
        .deposits
        .accrue(NaiveDate::from_ymd_opt(2026, 3, 10).unwrap(), &|_, _| {})
        .await
        .unwrap();
    assert_eq!((report.accrual_entries, report.postings), (10, 0));
    let closed = h.close(&account).await;
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.balances.accrued_interest, "0.00");
    let statement = h.deposits.statement(&account, "", 50).await.unwrap();
    let amounts: Vec<&str> = statement.lines.iter().map(|l| l.amount.as_str()).collect();
    assert_eq!(amounts, ["10000.00", "10.00", "10010.00"], "{statement:?}");
    assert_eq!(events(&h, "deposits.interest.posted").await, 1);
}

#[tokio::test]
async fn a_transfer_refused_by_the_daily_limit_stays_refused_when_retried() {
    let h = start().await;
    let from = funded(
        &h,
        "daily",
        |p| p.daily_transfer_limit = "100.00".to_owned(),
        "500.00",
    )
    .await;
    let to = h.open_account("customer-3", "daily").await;
    h.transfer_eur(&from, &to, "90.00").await.unwrap();
    let request = id();
    for _ in 0..3 {
        let refused = h
            .deposits
            .transfer(&request, &from, &to, "50.00", "EUR", "")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "daily_limit_exceeded");
    }
    assert_eq!(h.posted(&from).await, "410.00");
    // What is left of the day's limit is still there.
    h.transfer_eur(&from, &to, "10.00").await.unwrap();
}
