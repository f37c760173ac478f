//! The ledger under concurrent load, with two ledger processes' worth of batchers and pools
//! on one database (as two replicas would run): limits hold, crossing transfers never surface
//! a deadlock or serialization failure, and one id has exactly one effect.

use crate::common::*;
use corebank_kernel::JournalEntryId;

/// Submits every command at once, spread over the harness's ledger and a replica.
async fn run_all(
    h: &Harness,
    commands: Vec<corebank_ledger::domain::command::Command>,
) -> Vec<Result<corebank_ledger::app::EntryView, corebank_ledger::domain::error::LedgerError>> {
    let ledgers = [h.ledger.clone(), h.replica()];
    let tasks: Vec<_> = commands
        .into_iter()
        .enumerate()
        .map(|(index, command)| {
            let ledger = ledgers[index % ledgers.len()].clone();
            tokio::spawn(async move { ledger.submit(command).await })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await.unwrap());
    }
    results
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_debits_never_overdraw_an_account_with_a_limit() {
    let h = start().await;
    let (alice, shop) = two_customers(&h.ledger, "500.00").await;

    let commands = (0..1_000)
        .map(|_| transfer_command(JournalEntryId::generate(), alice, shop, "1.00"))
        .collect();
    let results = run_all(&h, commands).await;
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let refused: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.code()))
        .collect();
    assert_eq!(
        accepted, 500,
        "exactly the funded number of debits is accepted"
    );
    assert!(
        refused.iter().all(|code| code == "limit_exceeded"),
        "only limit refusals: {refused:?}"
    );
    assert_eq!(posted(&h.ledger, alice).await, dec("0.00"));
    assert_eq!(posted(&h.ledger, shop).await, dec("500.00"));
    assert_books_hold(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crossing_transfers_under_load_never_surface_a_deadlock_or_serialization_failure() {
    let h = start().await;
    let (a, b) = two_customers(&h.ledger, "10000.00").await;
    fund(&h.ledger, b, "10000.00").await;
    let commands = (0..800)
        .map(|i| {
            if i % 2 == 0 {
                transfer_command(JournalEntryId::generate(), a, b, "1.00")
            } else {
                transfer_command(JournalEntryId::generate(), b, a, "2.00")
            }
        })
        .collect();
    let results = run_all(&h, commands).await;
    let errors: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    assert!(errors.is_empty(), "errors reached callers: {errors:?}");
    assert_eq!(posted(&h.ledger, a).await, dec("10400.00"));
    assert_eq!(posted(&h.ledger, b).await, dec("9600.00"));
    assert_books_hold(&h).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_requests_with_one_id_have_exactly_one_effect() {
    let h = start().await;
    let (alice, bob) = two_customers(&h.ledger, "100.00").await;
    let id = JournalEntryId::generate();
    let commands = (0..100)
        .map(|_| transfer_command(id, alice, bob, "7.00"))
        .collect();
    let results = run_all(&h, commands).await;
    let views: Vec<_> = results
        .into_iter()
        .map(|r| r.expect("a repeat is answered, not refused"))
        .collect();
    assert_eq!(
        views.iter().filter(|v| !v.replayed).count(),
        1,
        "exactly one request applied it"
    );
    assert!(
        views
            .iter()
            .all(|v| v.entry.id == id && v.entry.hash == views[0].entry.hash)
    );
    assert_eq!(posted(&h.ledger, bob).await, dec("7.00"));
    assert_eq!(posted(&h.ledger, alice).await, dec("93.00"));
    assert_books_hold(&h).await;
}
