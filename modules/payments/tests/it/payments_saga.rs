//! The outbound payment saga end to end (real ledger, deposits, PostgreSQL and the rail
//! simulator over HTTP with ISO 20022 XML): the four saga tests (success; every action
//! twice; a failure at each step before the pivot unwinds to a clean state; the unwinding
//! twice), the rail's rejections and silences, cancelling, and inbound payments.

use std::time::Duration;

use crate::common::*;
use corebank_payments::app::outbound::SagaOptions;
use corebank_payments::rail_sim::RailConfig;

/// A creditor account on the sanctions list of the unwinding tests.
const BLOCKED_ACCOUNT: &str = "DE02120300000000202051";

/// A creditor account the refusing rail refuses ([`refusing_rail`]).
const REFUSED_ACCOUNT: &str = "DE89370400440532013000";

fn step_names(view: &corebank_payments::app::outbound::PaymentView, outcome: &str) -> Vec<String> {
    view.steps
        .iter()
        .filter(|s| s.outcome == outcome)
        .map(|s| format!("{}:{}", s.step, s.direction))
        .collect()
}

#[tokio::test]
async fn a_payment_is_held_screened_sent_accepted_and_settled_once() {
    let h = start(Setup::default()).await;
    let debtor = h.account("1000.00").await;
    let new = h.payment(&debtor, "250.00");
    let started = h.payments.initiate(new.clone()).await.unwrap();
    assert!(!started.replayed);
    assert_eq!(started.record.end_to_end_id, "INV-2026-0042");
    let done = h.settled(started.record.id).await;
    assert_eq!(done.status, "settled", "{:?}", done.steps);
    assert_eq!(
        step_names(&done, "done"),
        [
            "initiate:do",
            "hold:do",
            "screen:do",
            "screening_review:do",
            "send:do",
            "await_status:do",
            "settle:do",
            "record:do"
        ]
    );
    h.assert_balances(&debtor, ("750.00", "0.00", "750.00"))
        .await;
    // The same request again: the same payment, marked replayed; other content: refused.
    let again = h.payments.initiate(new.clone()).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.record.id, started.record.id);
    assert_eq!(again.record.uetr, started.record.uetr);
    let mut other = new;
    other.amount = "251.00".to_owned();
    let refused = h.payments.initiate(other).await.unwrap_err();
    assert_eq!(refused.code(), "exists_with_different_content");
    assert_eq!(h.balances(&debtor).await.0, "750.00");
}

#[tokio::test]
async fn every_action_run_twice_gives_the_same_result() {
    let h = start(Setup {
        saga: SagaOptions {
            actions_twice: true,
            compensations_twice: false,
        },
        ..Setup::default()
    })
    .await;
    let debtor = h.account("1000.00").await;
    let started = h.pay(&debtor, "250.00").await;
    let done = h.settled(started.record.id).await;
    assert_eq!(done.status, "settled", "{:?}", done.steps);
    h.assert_balances(&debtor, ("750.00", "0.00", "750.00"))
        .await;
}

async fn failure_at_each_step_unwinds(h: &Harness) {
    // hold: more than the account has.
    let debtor = h.account("100.00").await;
    let failed = h.pay(&debtor, "100.01").await;
    let failed = h.settled(failed.record.id).await;
    assert_eq!(failed.status, "failed");
    assert_reason(&failed, "insufficient_funds");
    h.assert_balances(&debtor, ("100.00", "0.00", "100.00"))
        .await;

    // screen: the creditor is blocklisted; the hold is released.
    h.payments
        .block(BLOCKED_ACCOUNT, "sanctions list 7")
        .await
        .unwrap();
    let blocked = h.pay_to(&debtor, "40.00", BLOCKED_ACCOUNT).await;
    let blocked = h.settled(blocked.record.id).await;
    assert_eq!(blocked.status, "failed");
    assert_reason(&blocked, "sanctions list 7");
    assert!(hold_released(&blocked), "{:?}", blocked.steps);
    h.assert_balances(&debtor, ("100.00", "0.00", "100.00"))
        .await;

    // send (the pivot itself): the rail refuses the message; the hold is released.
    let refused = h.pay_to(&debtor, "40.00", REFUSED_ACCOUNT).await;
    let refused = h.settled(refused.record.id).await;
    assert_eq!(refused.status, "failed");
    assert_reason(&refused, "refused the pacs.008");
    h.assert_balances(&debtor, ("100.00", "0.00", "100.00"))
        .await;
}

/// A rail that decides but never sends its pacs.002: the bank has to ask (after
/// `status_wait`).
fn silent_rail(status_wait: Duration) -> Setup {
    Setup {
        rail: quick_rail(0, 0, 1),
        status_wait,
        ..Setup::default()
    }
}

/// A rail that accepts every payment but those to [`REFUSED_ACCOUNT`].
fn refusing_rail() -> Setup {
    Setup {
        rail: RailConfig {
            refuse_accounts: vec![REFUSED_ACCOUNT.to_owned()],
            ..quick_rail(100, 0, 0)
        },
        ..Setup::default()
    }
}

#[tokio::test]
async fn a_failure_injected_at_each_step_before_the_pivot_unwinds_to_a_clean_state() {
    let h = start(refusing_rail()).await;
    failure_at_each_step_unwinds(&h).await;
}

#[tokio::test]
async fn the_unwinding_run_twice_leaves_the_same_clean_state() {
    let h = start(Setup {
        saga: SagaOptions {
            actions_twice: false,
            compensations_twice: true,
        },
        ..refusing_rail()
    })
    .await;
    failure_at_each_step_unwinds(&h).await;
}

#[tokio::test]
async fn a_rejection_by_the_rail_releases_the_hold_and_a_silent_rail_is_asked() {
    let h = start(Setup {
        rail: quick_rail(0, 1, 0),
        ..Setup::default()
    })
    .await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "200.00").await;
    let done = h.settled(started.record.id).await;
    assert_eq!(done.status, "rejected");
    assert_eq!(
        done.reason,
        "AC04",
        "{:?}",
        h.payments.payment(started.record.id).await.unwrap().steps
    );
    h.assert_balances(&debtor, ("500.00", "0.00", "500.00"))
        .await;

    let h = start(silent_rail(Duration::from_millis(300))).await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "200.00").await;
    let done = h.settled(started.record.id).await;
    assert_eq!(done.status, "settled", "{:?}", done.steps);
    assert!(
        done.steps
            .iter()
            .any(|s| s.step == "await_status" && s.outcome == "transient"),
        "it waited for a pacs.002 before asking the rail"
    );
    assert_eq!(h.balances(&debtor).await.0, "300.00");
}

#[tokio::test]
async fn a_payment_can_be_cancelled_until_the_pivot_and_not_after() {
    let h = start_without_executor().await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "100.00").await;
    assert_eq!(started.status, "initiated");
    let cancelled = h
        .payments
        .cancel(&id(), started.record.id, "changed my mind")
        .await
        .unwrap();
    assert_eq!(cancelled.status, "unwinding");
    h.spawn_executor();
    let cancelled = h.settled(started.record.id).await;
    assert_eq!(cancelled.status, "cancelled");
    assert!(
        cancelled.reason.contains("changed my mind") || cancelled.reason.contains("forced"),
        "{}",
        cancelled.reason
    );
    assert_eq!(h.balances(&debtor).await.2, "500.00");

    // A silent rail and a long wait keep a payment past its pivot.
    let h = start(silent_rail(Duration::from_secs(60))).await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "100.00").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let view = h.payments.payment(started.record.id).await.unwrap();
        if view.status == "sent" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not sent: {:?}",
            view.steps
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = loop {
        match h
            .payments
            .cancel(&id(), started.record.id, "too late")
            .await
        {
            Err(error) if error.code() == "cannot_cancel" => {
                // A step is running right now: the answer comes once it has finished.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            other => break other.unwrap_err(),
        }
    };
    assert_eq!(refused.code(), "past_pivot");
    assert_eq!(
        h.balances(&debtor).await.1,
        "100.00",
        "still held, awaiting the rail"
    );
}

#[tokio::test]
async fn an_inbound_payment_is_credited_once_by_uetr_and_an_unknown_beneficiary_gets_a_return() {
    let h = start(Setup::default()).await;
    let creditor = h.account("0").await;
    // The rail's operators drive the simulator's controls with the rail's certificate.
    let originate = async |account: &str, uetr: Option<uuid::Uuid>| {
        h.originate_inbound(account, "Max Mustermann", "75.50", uetr)
            .await
    };
    let first = originate(&creditor, None).await;
    assert_eq!(first.bank_status, 200, "{}", first.bank_answer);
    assert!(
        first.bank_answer.starts_with("credited"),
        "{}",
        first.bank_answer
    );
    // The rail delivers the same payment again: credited once.
    let again = originate(&creditor, Some(first.uetr)).await;
    assert_eq!(again.bank_status, 200);
    assert!(
        again.bank_answer.starts_with("credited"),
        "{}",
        again.bank_answer
    );
    assert_eq!(h.balances(&creditor).await.0, "75.50");

    let nobody = uuid::Uuid::new_v4().to_string();
    let unknown = originate(&nobody, None).await;
    assert!(
        unknown.bank_answer.starts_with("returned"),
        "{}",
        unknown.bank_answer
    );
    assert!(
        unknown.bank_answer.ends_with("AC01"),
        "{}",
        unknown.bank_answer
    );
    // Delivered again: the same answer, and the rail holds one return.
    let again = originate(&nobody, Some(unknown.uetr)).await;
    assert!(
        again.bank_answer.starts_with("returned"),
        "{}",
        again.bank_answer
    );
    // A known UETR with other content is refused and changes nothing.
    let other = h
        .originate_inbound(&creditor, "Max Mustermann", "99.00", Some(first.uetr))
        .await;
    assert_eq!(other.bank_status, 422, "{}", other.bank_answer);
    assert_eq!(h.balances(&creditor).await.0, "75.50");
    let returns = h.rail_returns().await;
    assert_eq!(returns.len(), 1);
    assert!(returns[0].contains("pacs.004"), "{}", returns[0]);
    assert!(returns[0].contains(&unknown.uetr.to_string()));
}

#[tokio::test]
async fn an_internal_transfer_goes_through_deposits_once() {
    let h = start(Setup::default()).await;
    let from = h.account("100.00").await;
    let to = h.account("0").await;
    let request = id();
    let first = h
        .payments
        .internal_transfer(&request, &from, &to, "30.00", "EUR", "rent")
        .await
        .unwrap();
    assert_eq!(first.from_posted_after, "70.00");
    let again = h
        .payments
        .internal_transfer(&request, &from, &to, "30.00", "EUR", "rent")
        .await
        .unwrap();
    assert!(again.replayed);
    let refused = h
        .payments
        .internal_transfer(&id(), &from, &to, "70.01", "EUR", "")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "insufficient_funds");
    assert_eq!(h.balances(&to).await.0, "30.00");
}

#[tokio::test]
async fn every_outcome_leaves_its_event_in_the_outbox() {
    let h = start(refusing_rail()).await;
    let debtor = h.account("1000.00").await;
    let ok = h.pay(&debtor, "10.00").await;
    assert_eq!(h.settled(ok.record.id).await.status, "settled");
    let refused = h.pay_to(&debtor, "10.00", REFUSED_ACCOUNT).await;
    assert_eq!(h.settled(refused.record.id).await.status, "failed");
    let client = h.database.db_for("payments").client().await.unwrap();
    let events: Vec<(String, String)> = client
        .query(
            "SELECT aggregateid, type FROM outbox ORDER BY aggregateid, aggregate_sequence",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let of = |id: uuid::Uuid| -> Vec<&str> {
        events
            .iter()
            .filter(|(aggregate, _)| *aggregate == id.to_string())
            .map(|(_, t)| t.as_str())
            .collect()
    };
    assert_eq!(
        of(ok.record.id),
        ["payments.outbound.initiated", "payments.outbound.settled"]
    );
    assert_eq!(
        of(refused.record.id),
        ["payments.outbound.initiated", "payments.outbound.failed"]
    );
}

#[tokio::test]
async fn only_a_final_status_report_settles_a_payment() {
    // A silent rail: the test plays the rail's reports itself.
    let h = start(silent_rail(Duration::from_secs(60))).await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "100.00").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.payments.payment(started.record.id).await.unwrap().status != "sent" {
        assert!(std::time::Instant::now() < deadline, "not sent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let report = |status: &str, reason: &str| {
        corebank_payments::app::messages::pacs002_for(
            "MSG",
            &started.record.end_to_end_id,
            started.record.uetr,
            status,
            reason,
        )
        .unwrap()
    };
    // Each report is delivered as the rail does: signed, from the rail's certificate.
    let post = async |xml: String| h.deliver("/pacs002", &xml).await.status;
    // ACCP (checks passed) is not final: the payment keeps waiting, and a rejection after it
    // still counts.
    assert_eq!(post(report("ACCP", "")).await, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        h.payments.payment(started.record.id).await.unwrap().status,
        "sent"
    );
    assert_eq!(post(report("RJCT", "AM04")).await, 200);
    let done = h.settled(started.record.id).await;
    assert_eq!(
        (done.status.as_str(), done.reason.as_str()),
        ("rejected", "AM04")
    );
    h.assert_balances(&debtor, ("500.00", "0.00", "500.00"))
        .await;
    // A malformed report is refused and changes nothing.
    assert_eq!(post("<not-iso/>".to_owned()).await, 422);
}

#[tokio::test]
async fn velocity_counts_only_payments_that_were_not_refused_or_failed() {
    let h = start(Setup {
        screening: corebank_payments::domain::screening::ScreeningRules {
            max_amount: rust_decimal::Decimal::from(1_000),
            max_per_hour: 2,
        },
        ..Setup::default()
    })
    .await;
    let debtor = h.account("5000.00").await;
    // Three payments over the threshold: refused by screening, each one failed.
    for _ in 0..3 {
        let started = h.pay(&debtor, "1500.00").await;
        let done = h.settled(started.record.id).await;
        assert_eq!(done.status, "failed", "{:?}", done.steps);
    }
    // The refusals used none of the account's allowance of two an hour.
    for _ in 0..2 {
        let started = h.pay(&debtor, "10.00").await;
        let done = h.settled(started.record.id).await;
        assert_eq!(done.status, "settled", "{:?}", done.steps);
    }
    let third = h.pay(&debtor, "10.00").await;
    let done = h.settled(third.record.id).await;
    assert_eq!(done.status, "failed", "{:?}", done.steps);
    assert_reason(&done, "within an hour");
    assert_eq!(h.balances(&debtor).await.0, "4980.00");
}
