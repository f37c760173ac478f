//! The ledger's rules, scenario by scenario, against a real PostgreSQL.

use std::sync::Arc;

use crate::common::*;
use chrono::TimeDelta;
use corebank_kernel::{AccountId, JournalEntryId, TestClock};
use corebank_ledger::domain::command::Command;
use corebank_ledger::domain::model::{
    AccountStatus, AccountType, BalanceLimit, EntryKind, HoldStatus, LimitKind,
};

#[tokio::test]
async fn a_transfer_moves_money_and_the_books_balance() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    let view = transfer(&h.ledger, alice, bob, "30.25").await.unwrap();
    assert_eq!(view.entry.kind, EntryKind::Posted);
    assert!(!view.replayed);
    assert_eq!(posted(&h.ledger, alice).await, dec("69.75"));
    assert_eq!(posted(&h.ledger, bob).await, dec("30.25"));
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_debit_past_the_limit_is_refused_and_changes_nothing() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "10.00").await;
    let error = transfer(&h.ledger, alice, bob, "10.01").await.unwrap_err();
    assert_eq!(error.code(), "limit_exceeded");
    assert_eq!(posted(&h.ledger, alice).await, dec("10.00"));
    assert_eq!(posted(&h.ledger, bob).await, dec("0"));
    // An overdraft allowance lets the balance go that far below zero, and no further.
    h.ledger
        .set_limit(
            alice,
            BalanceLimit {
                kind: LimitKind::DebitsMustNotExceedCredits,
                amount: dec("5.00"),
            },
        )
        .await
        .unwrap();
    transfer(&h.ledger, alice, bob, "15.00").await.unwrap();
    assert_eq!(
        transfer_refusal(&h.ledger, alice, bob, "0.01").await,
        "limit_exceeded"
    );
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn the_same_id_with_the_same_content_replays_and_with_other_content_names_the_field() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    let id = JournalEntryId::generate();
    let first = h
        .ledger
        .submit(transfer_command(id, alice, bob, "10.00"))
        .await
        .unwrap();
    let again = h
        .ledger
        .submit(transfer_command(id, alice, bob, "10.00"))
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry, first.entry);
    assert_eq!(
        posted(&h.ledger, bob).await,
        dec("10.00"),
        "a replay has no second effect"
    );

    let error = h
        .ledger
        .submit(transfer_command(id, alice, bob, "11.00"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "exists_with_different_amount");
    let carol = customer(&h.ledger).await;
    let error = h
        .ledger
        .submit(transfer_command(id, alice, carol, "10.00"))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "exists_with_different_credit_account_id");
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_code_and_writes_nothing() {
    let h = start().await;
    let alice = customer(&h.ledger).await;
    let unknown = AccountId::generate();
    assert_eq!(
        transfer_refusal(&h.ledger, unknown, alice, "1.00").await,
        "unknown_account"
    );
    assert_eq!(
        transfer_refusal(&h.ledger, alice, alice, "0").await,
        "invalid_amount"
    );
    let usd = h
        .ledger
        .create_accounts(vec![corebank_ledger::app::NewAccount {
            id: AccountId::generate(),
            code: "usd-cash".to_owned(),
            name: "USD cash".to_owned(),
            currency: corebank_kernel::Currency::USD,
            account_type: AccountType::Asset,
            limit: BalanceLimit::NONE,
            external_ref: String::new(),
            metadata: Default::default(),
            balance_shards: 1,
        }])
        .await
        .unwrap()
        .pop()
        .unwrap()
        .unwrap()
        .account
        .id;
    assert_eq!(
        transfer_refusal(&h.ledger, usd, alice, "1.00").await,
        "currency_mismatch"
    );
    let count: i64 = h
        .database
        .db()
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM ledger.journal_entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 0);
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_hold_counts_against_available_and_posts_in_part() {
    let h = start().await;
    let (alice, merchant) = two_customers(&h.ledger, "100.00").await;
    let hold_id = JournalEntryId::generate();
    let hold = h
        .ledger
        .submit(hold_command(hold_id, alice, merchant, "60.00", 0))
        .await
        .unwrap();
    assert_eq!(
        hold.hold.map(|(status, _)| status),
        Some(HoldStatus::Pending)
    );
    assert_eq!(posted(&h.ledger, alice).await, dec("100.00"));
    assert_eq!(available(&h.ledger, alice).await, dec("40.00"));
    assert_eq!(
        transfer_refusal(&h.ledger, alice, merchant, "40.01").await,
        "limit_exceeded"
    );

    let post = Command::PostPending {
        id: JournalEntryId::generate(),
        pending_id: hold_id,
        amount: Some(dec("45.50")),
        description: String::new(),
    };
    let posted_view = h.ledger.submit(post).await.unwrap();
    assert_eq!(posted_view.entry.kind, EntryKind::PostPending);
    assert_eq!(posted(&h.ledger, alice).await, dec("54.50"));
    assert_eq!(
        available(&h.ledger, alice).await,
        dec("54.50"),
        "the rest of the hold is released"
    );
    assert_eq!(posted(&h.ledger, merchant).await, dec("45.50"));

    let again = Command::VoidPending {
        id: JournalEntryId::generate(),
        pending_id: hold_id,
        description: String::new(),
    };
    assert_eq!(refusal(&h.ledger, again).await, "pending_already_posted");
    assert_eq!(
        h.ledger.entry(hold_id).await.unwrap().hold.map(|(s, _)| s),
        Some(HoldStatus::Posted)
    );
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_hold_cannot_post_more_than_it_holds_and_can_be_voided() {
    let h = start().await;
    let (alice, merchant) = two_customers(&h.ledger, "100.00").await;
    let hold_id = JournalEntryId::generate();
    h.ledger
        .submit(hold_command(hold_id, alice, merchant, "20.00", 0))
        .await
        .unwrap();
    let too_much = Command::PostPending {
        id: JournalEntryId::generate(),
        pending_id: hold_id,
        amount: Some(dec("20.01")),
        description: String::new(),
    };
    assert_eq!(refusal(&h.ledger, too_much).await, "post_exceeds_pending");
    let void = Command::VoidPending {
        id: JournalEntryId::generate(),
        pending_id: hold_id,
        description: "cancelled".to_owned(),
    };
    h.ledger.submit(void).await.unwrap();
    assert_eq!(available(&h.ledger, alice).await, dec("100.00"));
    assert_eq!(posted(&h.ledger, merchant).await, dec("0"));
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_hold_expires_by_itself_after_its_timeout() {
    let clock = Arc::new(TestClock::new(chrono::Utc::now()));
    let h = start_with_clock(clock.clone()).await;
    let (alice, merchant) = two_customers(&h.ledger, "100.00").await;
    let hold_id = JournalEntryId::generate();
    h.ledger
        .submit(hold_command(hold_id, alice, merchant, "30.00", 60))
        .await
        .unwrap();
    assert_eq!(available(&h.ledger, alice).await, dec("70.00"));

    clock.advance(TimeDelta::seconds(61));
    let mut status = None;
    for _ in 0..50 {
        status = h.ledger.entry(hold_id).await.unwrap().hold.map(|(s, _)| s);
        if status == Some(HoldStatus::Expired) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        status,
        Some(HoldStatus::Expired),
        "the expirer runs every second"
    );
    assert_eq!(available(&h.ledger, alice).await, dec("100.00"));
    let post = Command::PostPending {
        id: JournalEntryId::generate(),
        pending_id: hold_id,
        amount: None,
        description: String::new(),
    };
    assert_eq!(refusal(&h.ledger, post).await, "pending_expired");
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn an_entry_is_reversed_once_by_a_linked_entry() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "50.00").await;
    let original = transfer(&h.ledger, alice, bob, "20.00").await.unwrap();
    let reversal = Command::Reverse {
        id: JournalEntryId::generate(),
        entry_id: original.entry.id,
        description: "mistake".to_owned(),
    };
    let reversed = h.ledger.submit(reversal).await.unwrap();
    assert_eq!(reversed.entry.kind, EntryKind::Reversal);
    assert_eq!(reversed.entry.linked_entry_id, Some(original.entry.id));
    assert_eq!(posted(&h.ledger, alice).await, dec("50.00"));
    assert_eq!(posted(&h.ledger, bob).await, dec("0.00"));
    let twice = Command::Reverse {
        id: JournalEntryId::generate(),
        entry_id: original.entry.id,
        description: String::new(),
    };
    assert_eq!(refusal(&h.ledger, twice).await, "already_reversed");
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn frozen_and_closed_accounts_refuse_postings_and_closing_needs_a_zero_balance() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "10.00").await;
    set_status(&h.ledger, alice, AccountStatus::Open, true, false).await;
    assert_eq!(
        transfer_refusal(&h.ledger, alice, bob, "1.00").await,
        "account_frozen"
    );
    set_status(&h.ledger, alice, AccountStatus::Open, false, false).await;
    assert_eq!(
        h.ledger
            .set_status(alice, AccountStatus::Closed, false, false)
            .await
            .unwrap_err()
            .code(),
        "cannot_close"
    );
    transfer(&h.ledger, alice, bob, "10.00").await.unwrap();
    set_status(&h.ledger, alice, AccountStatus::Closed, false, false).await;
    assert_eq!(
        transfer_refusal(&h.ledger, bob, alice, "1.00").await,
        "account_closed"
    );
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn balances_as_of_a_time_and_statements_with_running_balances_come_from_the_entries() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    let first = transfer(&h.ledger, alice, bob, "10.00").await.unwrap();
    let second = transfer(&h.ledger, alice, bob, "5.00").await.unwrap();
    transfer(&h.ledger, bob, alice, "1.00").await.unwrap();

    let (_, at_first) = h
        .ledger
        .balances_as_of_time(bob, first.entry.recorded_at)
        .await
        .unwrap();
    assert_eq!(at_first.credits_posted, dec("10"));
    let (_, at_second) = h
        .ledger
        .balances_as_of_time(bob, second.entry.recorded_at)
        .await
        .unwrap();
    assert_eq!(at_second.credits_posted, dec("15"));
    let today = first.entry.value_date;
    let (account, by_value_date) = h
        .ledger
        .balances_as_of_value_date(alice, today)
        .await
        .unwrap();
    assert_eq!(by_value_date.posted(account.account_type), dec("86.00"));

    let page1 = h.ledger.statement(alice, None, 2).await.unwrap();
    let running: Vec<String> = page1
        .lines
        .iter()
        .map(|l| l.running_balance.normalize().to_string())
        .collect();
    assert_eq!(running, vec!["100", "90"]);
    let page2 = h
        .ledger
        .statement(alice, page1.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    let running: Vec<String> = page2
        .lines
        .iter()
        .map(|l| l.running_balance.normalize().to_string())
        .collect();
    assert_eq!(running, vec!["85", "86"]);
    assert_eq!(
        page2.next_cursor,
        Some(page2.next_cursor.clone().unwrap()),
        "a full page offers a cursor"
    );
    let page3 = h
        .ledger
        .statement(alice, page2.next_cursor.as_deref(), 2)
        .await
        .unwrap();
    assert!(page3.lines.is_empty());
    assert_eq!(page3.next_cursor, None);
    assert_eq!(
        h.ledger
            .statement(alice, Some("garbage"), 2)
            .await
            .unwrap_err()
            .code(),
        "invalid_request"
    );
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn every_entry_writes_an_outbox_event_in_the_same_transaction() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "10.00").await;
    let entry = transfer(&h.ledger, alice, bob, "1.00").await.unwrap();
    let client = h.database.db().client().await.unwrap();
    let rows = client
        .query(
            "SELECT type, aggregate_sequence, payload, partition FROM ledger.outbox WHERE aggregateid = $1",
            &[&entry.entry.id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "ledger.entry.posted");
    assert_eq!(rows[0].get::<_, i64>(1), 1);
    let payload: serde_json::Value = rows[0].get(2);
    assert_eq!(payload["postings"].as_array().unwrap().len(), 2);
    // The relay partition is the outbox library's, so relays lease the ledger's events.
    assert_eq!(
        rows[0].get::<_, i64>(3),
        corebank_outbox::partition_of(
            "journal_entry",
            &entry.entry.id.to_string(),
            corebank_outbox::PARTITION_COUNT_DEFAULT
        )
    );
    let total: i64 = client
        .query_one("SELECT count(*) FROM ledger.outbox", &[])
        .await
        .unwrap()
        .get(0);
    let entries: i64 = client
        .query_one("SELECT count(*) FROM ledger.journal_entries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(total, entries);
}

#[tokio::test]
async fn verify_names_the_entry_whose_amount_was_changed_with_direct_sql() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(
            transfer(&h.ledger, alice, bob, "1.00")
                .await
                .unwrap()
                .entry
                .id,
        );
    }
    assert_eq!(h.ledger.verify().await.unwrap().first_broken, None);
    let tampered = ids[7];
    h.database
        .db()
        .client()
        .await
        .unwrap()
        .execute(
            "UPDATE ledger.postings SET amount = 1000 WHERE entry_id = $1 AND leg = 1",
            &[&tampered.as_uuid()],
        )
        .await
        .unwrap();
    let report = h.ledger.verify().await.unwrap();
    let (_, broken, problem) = report.first_broken.expect("the tampering must be found");
    assert_eq!(broken, tampered, "{problem}");
}

#[tokio::test]
async fn a_hot_account_spread_over_shards_sums_every_shard() {
    let h = start().await;
    let fees = open_sharded(&h.ledger, AccountType::Income, LimitKind::None, "0", 8).await;
    let alice = customer(&h.ledger).await;
    fund(&h.ledger, alice, "1000.00").await;
    // Each batch writes one shard row of the account, picked at random: 40 batches of
    // one transfer each leave all 40 on a single row with a chance of 8^-39.
    for _ in 0..40 {
        transfer(&h.ledger, alice, fees, "2.50").await.unwrap();
    }
    assert_eq!(posted(&h.ledger, fees).await, dec("100.00"));
    let used: i64 = h
        .database
        .db()
        .client()
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM ledger.account_balances WHERE account_id = $1 AND credits_posted > 0",
            &[&fees.as_uuid()],
        )
        .await
        .unwrap()
        .get(0);
    assert!(used > 1, "postings spread over several shards");
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_negative_limit_amount_is_a_minimum_balance_kept_on_the_account() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    h.ledger
        .set_limit(
            alice,
            BalanceLimit {
                kind: LimitKind::DebitsMustNotExceedCredits,
                amount: dec("-20.00"),
            },
        )
        .await
        .unwrap();
    let error = transfer(&h.ledger, alice, bob, "80.01").await.unwrap_err();
    assert_eq!(error.code(), "limit_exceeded");
    assert_eq!(posted(&h.ledger, alice).await, dec("100.00"));
    transfer(&h.ledger, alice, bob, "80.00").await.unwrap();
    assert_eq!(posted(&h.ledger, alice).await, dec("20.00"));
    // Deposits are never refused by a floor.
    fund(&h.ledger, alice, "5.00").await;
    assert_books_hold(&h).await;
}
