//! The sweep: the whole posted balance of a frozen account moved in one entry whose amount
//! the ledger decides inside its own transaction.

use crate::common::*;
use corebank_kernel::{AccountId, JournalEntryId};
use corebank_ledger::domain::command::Command;
use corebank_ledger::domain::model::AccountStatus;

fn sweep(id: JournalEntryId, source: AccountId, target: AccountId) -> Command {
    Command::Sweep {
        id,
        source,
        target,
        description: "closure payout".to_owned(),
        external_ref: String::new(),
    }
}

/// A started ledger, a customer account and the bank's till: what every sweep starts from.
async fn customer_and_till() -> (Harness, AccountId, AccountId) {
    let h = start().await;
    let alice = customer(&h.ledger).await;
    let till = cash(&h.ledger).await;
    (h, alice, till)
}

#[tokio::test]
async fn a_sweep_moves_the_whole_balance_and_a_repeat_replays_the_same_amount() {
    let (h, alice, till) = customer_and_till().await;
    fund(&h.ledger, alice, "70.00").await;
    fund(&h.ledger, alice, "2.55").await;
    set_status(&h.ledger, alice, AccountStatus::Open, true, true).await;
    let id = JournalEntryId::generate();
    let first = h.ledger.submit(sweep(id, alice, till)).await.unwrap();
    assert!(!first.replayed);
    let amounts: Vec<_> = first.entry.postings.iter().map(|p| p.amount).collect();
    assert_eq!(amounts, vec![dec("72.55"), dec("72.55")]);
    assert_eq!(posted(&h.ledger, alice).await, dec("0"));

    // A retry after a crash: the same entry, the same amount, nothing moved twice.
    let again = h.ledger.submit(sweep(id, alice, till)).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.entry.id, first.entry.id);
    assert_eq!(again.entry.postings, first.entry.postings);
    assert_eq!(posted(&h.ledger, alice).await, dec("0"));

    // The same id naming another target is a different request.
    let other = cash(&h.ledger).await;
    assert_eq!(
        refusal(&h.ledger, sweep(id, alice, other)).await,
        "exists_with_different_target_account_id"
    );
    // The account is empty now and can close.
    set_status(&h.ledger, alice, AccountStatus::Closed, false, false).await;
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_sweep_needs_a_frozen_source_without_holds_and_something_to_sweep() {
    let (h, alice, till) = customer_and_till().await;
    fund(&h.ledger, alice, "10.00").await;
    assert_eq!(
        refusal(&h.ledger, sweep(JournalEntryId::generate(), alice, till)).await,
        "sweep_source_not_frozen"
    );
    h.ledger
        .submit(hold_command(
            JournalEntryId::generate(),
            alice,
            till,
            "1.00",
            0,
        ))
        .await
        .unwrap();
    set_status(&h.ledger, alice, AccountStatus::Open, true, true).await;
    assert_eq!(
        refusal(&h.ledger, sweep(JournalEntryId::generate(), alice, till)).await,
        "sweep_source_has_pending"
    );
    assert_eq!(posted(&h.ledger, alice).await, dec("10.00"));

    let empty = customer(&h.ledger).await;
    set_status(&h.ledger, empty, AccountStatus::Open, true, true).await;
    assert_eq!(
        refusal(&h.ledger, sweep(JournalEntryId::generate(), empty, till)).await,
        "nothing_to_sweep"
    );
    assert_eq!(
        refusal(&h.ledger, sweep(JournalEntryId::generate(), empty, empty)).await,
        "invalid_request"
    );
    assert_books_hold(&h).await;
}

#[tokio::test]
async fn a_sweep_takes_every_deposit_committed_before_it_and_later_ones_are_refused() {
    let (h, alice, till) = customer_and_till().await;
    let payout = cash(&h.ledger).await;
    let deposits: Vec<_> = (0..40)
        .map(|_| {
            let ledger = h.ledger.clone();
            tokio::spawn(async move { transfer(&ledger, till, alice, "1.00").await })
        })
        .collect();
    tokio::task::yield_now().await;
    set_status(&h.ledger, alice, AccountStatus::Open, true, true).await;
    let swept = h
        .ledger
        .submit(sweep(JournalEntryId::generate(), alice, payout))
        .await;
    let mut acknowledged = 0_u32;
    for deposit in deposits {
        match deposit.await.unwrap() {
            Ok(_) => acknowledged += 1,
            Err(error) => assert_eq!(error.code(), "account_frozen"),
        }
    }
    let swept_amount = match swept {
        Ok(view) => view.entry.postings[0].amount,
        Err(error) => {
            assert_eq!(error.code(), "nothing_to_sweep");
            dec("0")
        }
    };
    assert_eq!(swept_amount, rust_decimal::Decimal::from(acknowledged));
    assert_eq!(posted(&h.ledger, alice).await, dec("0"));
    assert_books_hold(&h).await;
}
