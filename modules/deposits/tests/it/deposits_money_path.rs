//! The money path under races and crashes (ADR 0010): status changes as compare-and-set,
//! closing by one ledger sweep, retried requests that keep their first choices.

use std::time::Duration;

use crate::common::*;
use corebank_api::ledger::v1 as ledger_pb;
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_deposits::app::NewProduct;
use rust_decimal::Decimal;
use uuid::Uuid;

/// A product that pays no interest, with what `tweak` changes.
async fn zero_rate_product(h: &Harness, code: &str, tweak: impl FnOnce(&mut NewProduct)) {
    h.create_product(code, |p| {
        p.rate_tiers = vec![("0".to_owned(), "0".to_owned())];
        tweak(p);
    })
    .await;
}

fn ledger(h: &Harness) -> LedgerClient<tonic::transport::Channel> {
    LedgerClient::new(h.ledger_app.channel("deposits", "ledger"))
}

async fn ledger_account(h: &Harness, account_id: &str) -> ledger_pb::Account {
    let account_id: Uuid = account_id.parse().unwrap();
    let ledger_account_id: Uuid = h
        .deposits_value(
            "SELECT ledger_account_id FROM accounts WHERE id = $1",
            &[&account_id],
        )
        .await;
    ledger(h)
        .get_account(ledger_pb::GetAccountRequest {
            account_id: ledger_account_id.to_string(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn assert_books_balance(h: &Harness) {
    let trial = ledger(h)
        .get_trial_balance(ledger_pb::GetTrialBalanceRequest {
            as_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    for (currency, difference) in &trial.difference_by_currency {
        assert_eq!(
            difference.parse::<Decimal>().unwrap(),
            Decimal::ZERO,
            "{currency}"
        );
    }
}

/// From here on, recording the answer to a request that the constraint `check` refuses fails, as if the
/// process died between the ledger call and its local transaction.
async fn crash_before_commit(h: &Harness, check: &str) {
    h.deposits_execute(
        &format!("ALTER TABLE requests ADD CONSTRAINT test_crash_before_commit {check}"),
        &[],
    )
    .await;
}

/// Answers are recorded again, as after a restart.
async fn restart_after_crash(h: &Harness) {
    h.deposits_execute(
        "ALTER TABLE requests DROP CONSTRAINT test_crash_before_commit",
        &[],
    )
    .await;
}

async fn paid_out(h: &Harness, account_id: &str) -> Decimal {
    let text: String = h
        .deposits_value(
            "SELECT payload->>'paid_out' FROM outbox WHERE type = 'deposits.account.closed' \
             AND aggregateid = $1",
            &[&account_id],
        )
        .await;
    text.parse().unwrap()
}

#[tokio::test]
async fn deposits_racing_a_close_are_either_in_the_payout_or_refused() {
    let h = start().await;
    zero_rate_product(&h, "racing", |_| {}).await;
    for _round in 0..3 {
        let account = h.open_funded("racing", "100.00").await;
        let deposits: Vec<_> = (0..24_u64)
            .map(|i| {
                let deposits = h.deposits.clone();
                let account = account.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(i)).await;
                    deposits
                        .movement("deposit", "cash", &id(), &account, "1.00", "EUR", "")
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(4)).await;
        let closed = h.close(&account).await;
        assert_eq!(closed.status, "closed");
        let mut acknowledged = Decimal::ZERO;
        for deposit in deposits {
            match deposit.await.unwrap() {
                Ok(movement) => acknowledged += movement.amount.parse::<Decimal>().unwrap(),
                Err(error) => assert!(
                    matches!(error.code(), "account_closed" | "account_frozen"),
                    "{error:?}"
                ),
            }
        }
        assert_eq!(
            paid_out(&h, &account).await,
            Decimal::from(100) + acknowledged,
            "every acknowledged deposit is paid out"
        );
        let customer = ledger_account(&h, &account).await;
        assert_eq!(customer.status, i32::from(ledger_pb::AccountStatus::Closed));
        assert_eq!(
            customer.balance.unwrap().posted.parse::<Decimal>().unwrap(),
            Decimal::ZERO
        );
    }
    assert_books_balance(&h).await;
}

#[tokio::test]
async fn a_freeze_racing_a_close_never_lets_both_win_and_the_ledger_follows() {
    let h = start().await;
    zero_rate_product(&h, "contested", |_| {}).await;
    for delay_ms in 0..10_u64 {
        let account = h.open_funded("contested", "10.00").await;
        let closing = {
            let deposits = h.deposits.clone();
            let account = account.clone();
            tokio::spawn(async move {
                deposits
                    .change_status("close", &id(), &account, "customer request")
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        let frozen = h.change_status("freeze", &account, "court order").await;
        let closed = closing.await.unwrap();
        assert!(
            frozen.is_ok() != closed.is_ok(),
            "exactly one wins: freeze {frozen:?}, close {closed:?}"
        );
        for refusal in [frozen.as_ref().err(), closed.as_ref().err()]
            .into_iter()
            .flatten()
        {
            assert!(
                matches!(
                    refusal.code(),
                    "account_status_changed"
                        | "account_closed"
                        | "cannot_close"
                        | "invalid_account_status"
                ),
                "{refusal:?}"
            );
        }
        let status = h.deposits.account_by_text(&account).await.unwrap().status;
        let ledger_account = ledger_account(&h, &account).await;
        if closed.is_ok() {
            assert_eq!(status, "closed");
            assert_eq!(
                ledger_account.status,
                i32::from(ledger_pb::AccountStatus::Closed)
            );
        } else {
            assert_eq!(status, "frozen");
            assert_eq!(
                ledger_account.status,
                i32::from(ledger_pb::AccountStatus::Open)
            );
            assert!(ledger_account.debits_frozen && ledger_account.credits_frozen);
        }
    }
    assert_books_balance(&h).await;
}

#[tokio::test]
async fn an_account_left_closing_refuses_a_freeze_and_a_later_close_finishes_it() {
    let h = start().await;
    zero_rate_product(&h, "halfway", |_| {}).await;
    let account = h.open_funded("halfway", "42.00").await;
    // A close that stopped half way: the account is `closing` (nothing may move it), and
    // its ledger account was frozen already.
    let account_uuid: Uuid = account.parse().unwrap();
    h.deposits_execute(
        "UPDATE accounts SET status = 'closing' WHERE id = $1",
        &[&account_uuid],
    )
    .await;
    let before = ledger_account(&h, &account).await;
    let refused = h
        .change_status("freeze", &account, "court order")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "invalid_account_status");
    let refused = h.cash_refused("deposit", &account, "1.00").await;
    assert_eq!(refused.code(), "account_closed");
    let after = ledger_account(&h, &account).await;
    assert_eq!(
        (after.status, after.debits_frozen, after.credits_frozen),
        (before.status, before.debits_frozen, before.credits_frozen),
        "a refused freeze leaves the ledger as it was"
    );

    let closed = h.close(&account).await;
    assert_eq!(closed.status, "closed");
    assert_eq!(closed.balances.posted, "0.00");
    assert_eq!(paid_out(&h, &account).await, Decimal::from(42));
    // Closed stays closed: a freeze now is refused and the ledger account stays closed.
    let refused = h
        .change_status("freeze", &account, "court order")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "account_closed");
    assert_eq!(
        ledger_account(&h, &account).await.status,
        i32::from(ledger_pb::AccountStatus::Closed)
    );
    assert_books_balance(&h).await;
}

#[tokio::test]
async fn a_retried_open_account_keeps_the_product_version_its_first_attempt_chose() {
    let h = start().await;
    zero_rate_product(&h, "versioned", |_| {}).await;
    // The first attempt reaches the ledger and then dies before its answer is recorded.
    crash_before_commit(&h, "CHECK (kind <> 'open_account')").await;
    let request_id = id();
    h.deposits
        .open_account(&request_id, "customer-7", "versioned", None)
        .await
        .unwrap_err();
    restart_after_crash(&h).await;
    // Meanwhile a new version is published, with another overdraft.
    h.create_product("versioned", |p| {
        p.overdraft_limit = "50.00".to_owned();
    })
    .await;
    let retried = h
        .deposits
        .open_account(&request_id, "customer-7", "versioned", None)
        .await
        .unwrap();
    assert_eq!(retried.product_version, 1);
    assert_eq!(retried.balances.available, "0.00");
    let again = h
        .deposits
        .open_account(&request_id, "customer-7", "versioned", None)
        .await
        .unwrap();
    assert_eq!(again.id, retried.id);
    assert_eq!(again.product_version, 1);
    // A new request opens on the newest version.
    let fresh = h
        .deposits
        .open_account(&id(), "customer-7", "versioned", None)
        .await
        .unwrap();
    assert_eq!(fresh.product_version, 2);
}

#[tokio::test]
async fn overdraft_interest_is_posted_to_an_account_already_at_its_overdraft_limit() {
    let h = start().await;
    zero_rate_product(&h, "overdrawn", |p| {
        p.overdraft_limit = "100.00".to_owned();
        p.overdraft_rate = "0.12".to_owned();
    })
    .await;
    let account = h.open_account("customer-9", "overdrawn").await;
    h.cash_done("withdrawal", &account, "100.00").await;
    h.clock.set(at(2026, 2, 2));
    let through = chrono::NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
    let report = h.deposits.accrue(through, &|_, _| {}).await.unwrap();
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.postings, 1, "{report:?}");
    let view = h.deposits.account_by_text(&account).await.unwrap();
    // 31 days of 12 % a year on 100.00: 1.02, charged past the limit.
    assert_eq!(view.balances.posted, "-101.02");
    assert_eq!(view.balances.accrued_interest, "0.00");
    // The customer still cannot take more.
    let refused = h.cash_refused("withdrawal", &account, "0.01").await;
    assert_eq!(refused.code(), "insufficient_funds");
    // A second run changes nothing.
    let again = h.deposits.accrue(through, &|_, _| {}).await.unwrap();
    assert_eq!((again.failed, again.postings), (0, 0));
    assert_books_balance(&h).await;
}

async fn count(h: &Harness, sql: &str, account: &str) -> i64 {
    let account: Uuid = account.parse().unwrap();
    h.deposits_value(sql, &[&account]).await
}

#[tokio::test]
async fn a_deposit_written_in_the_ledger_but_not_here_is_completed_by_the_job() {
    let h = start().await;
    zero_rate_product(&h, "doubtful", |_| {}).await;
    let account = h.open_funded("doubtful", "10.00").await;
    // The process dies between the ledger call and its local transaction.
    crash_before_commit(&h, "CHECK (kind <> 'deposit') NOT VALID").await;
    let request_id = id();
    let lost_deposit = || {
        h.deposits.movement(
            "deposit",
            "cash",
            &request_id,
            &account,
            "5.0",
            "EUR",
            "lost answer",
        )
    };
    lost_deposit().await.unwrap_err();
    restart_after_crash(&h).await;
    let deposited = "SELECT count(*) FROM outbox WHERE type = 'deposits.money.deposited' AND aggregateid = $1::UUID::TEXT";
    assert_eq!(
        count(&h, deposited, &account).await,
        1,
        "only the first deposit"
    );
    // Within the window nothing is touched: the request may still be on its way.
    assert_eq!(h.deposits.recover_in_doubt().await.unwrap(), 0);
    h.clock.advance(chrono::TimeDelta::minutes(6));
    assert_eq!(h.deposits.recover_in_doubt().await.unwrap(), 1);
    assert_eq!(
        count(&h, deposited, &account).await,
        2,
        "the event is written"
    );
    assert_eq!(h.posted(&account).await, "15.00");
    // The client's late retry gets the completed answer; nothing moves twice.
    let retried = lost_deposit().await.unwrap();
    assert!(retried.replayed);
    assert_eq!(retried.amount, "5.00");
    assert_eq!(h.posted(&account).await, "15.00");
    assert_eq!(h.deposits.recover_in_doubt().await.unwrap(), 0);
    assert_books_balance(&h).await;
}

#[tokio::test]
async fn a_daily_limit_reservation_left_by_an_unknown_outcome_is_given_back() {
    let h = start().await;
    zero_rate_product(&h, "limited", |p| {
        p.daily_transfer_limit = "100.00".to_owned();
    })
    .await;
    let from = h.open_funded("limited", "500.00").await;
    let to = h.open_funded("limited", "0.01").await;
    // A transfer reserved 80.00 of today's limit, noted itself in doubt, and the process
    // died before the ledger wrote anything.
    let request_id = Uuid::new_v4();
    let from_id: Uuid = from.parse().unwrap();
    let to_id: Uuid = to.parse().unwrap();
    let now = corebank_kernel::Clock::now(h.clock.as_ref());
    let today = now.date_naive();
    let content = serde_json::json!({
        "from_account_id": from_id, "to_account_id": to_id, "amount": "80.00",
        "currency": "EUR", "description": "",
    });
    let amount: Decimal = "80.00".parse().unwrap();
    h.deposits_execute("INSERT INTO transfer_reservations (request_id, account_id, day, amount) VALUES ($1, $2, $3, $4)",
            &[&request_id, &from_id, &today, &amount]).await;
    h.deposits_execute(
        "INSERT INTO daily_transfers (account_id, day, total) VALUES ($1, $2, $3)",
        &[&from_id, &today, &amount],
    )
    .await;
    h.deposits_execute(
        "INSERT INTO requests_in_doubt (request_id, kind, content, entry_id, created_at) \
             VALUES ($1, 'transfer', $2, $3, $4)",
        &[&request_id, &content, &Uuid::new_v4(), &now],
    )
    .await;
    let refused = h.transfer_eur(&from, &to, "30.00").await.unwrap_err();
    assert_eq!(refused.code(), "daily_limit_exceeded");

    h.clock.advance(chrono::TimeDelta::minutes(6));
    assert_eq!(h.deposits.recover_in_doubt().await.unwrap(), 1);
    h.transfer_eur(&from, &to, "100.00").await.unwrap();
    assert_eq!(
        count(
            &h,
            "SELECT count(*) FROM requests_in_doubt WHERE $1::UUID IS NOT NULL",
            &from
        )
        .await,
        0
    );
    assert_books_balance(&h).await;
}

#[tokio::test]
async fn business_days_start_at_midnight_in_the_banks_time_zone() {
    use chrono::TimeZone;
    // 2026-01-01 10:30 UTC is 23:30 on Jan 1 in Auckland (UTC+13); an hour later it is
    // already Jan 2 there, while still Jan 1 in UTC.
    let h = start_at(chrono::Utc.with_ymd_and_hms(2026, 1, 1, 10, 30, 0).unwrap()).await;
    let deposits = h
        .deposits
        .clone()
        .with_business_tz(chrono_tz::Pacific::Auckland);
    deposits
        .create_product(product("auckland", |p| {
            p.rate_tiers = vec![("0".to_owned(), "0".to_owned())];
            p.daily_transfer_limit = "100.00".to_owned();
        }))
        .await
        .unwrap();
    let open = |customer: &'static str| {
        let deposits = deposits.clone();
        async move {
            deposits
                .open_account(&id(), customer, "auckland", None)
                .await
                .unwrap()
        }
    };
    let from = open("customer-a").await;
    assert_eq!(
        from.opened_on,
        chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
    );
    let to = open("customer-b").await;
    let (from, to) = (from.id.to_string(), to.id.to_string());
    deposits
        .movement("deposit", "cash", &id(), &from, "500.00", "EUR", "")
        .await
        .unwrap();
    deposits
        .transfer(&id(), &from, &to, "80.00", "EUR", "")
        .await
        .unwrap();
    assert_eq!(
        deposits
            .transfer(&id(), &from, &to, "80.00", "EUR", "")
            .await
            .unwrap_err()
            .code(),
        "daily_limit_exceeded"
    );
    // Past midnight in Auckland: a new business day, with its own limit.
    h.clock.advance(chrono::TimeDelta::hours(1));
    assert_eq!(
        deposits.business_today(),
        chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
    );
    deposits
        .transfer(&id(), &from, &to, "80.00", "EUR", "")
        .await
        .unwrap();
    let late = open("customer-c").await;
    assert_eq!(
        late.opened_on,
        chrono::NaiveDate::from_ymd_opt(2026, 1, 2).unwrap()
    );
    assert_books_balance(&h).await;
}
