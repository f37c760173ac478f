//! Sanctions screening in the payments saga (ADR 0011), against lists loaded from files in
//! their published formats (written here): a possible hit holds an outbound payment before
//! the pivot, paused in `screening_review` with its hold in place, and an inbound one
//! uncredited; `PaymentsReview/DecideScreening` (the gateway only, for a signed approver
//! other than the proposer) releases or refuses it. A near miss passes; the threshold is
//! the payment currency's.

use crate::common::{Harness, Setup, assert_reason, error_code as code, hold_released, start};
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_review_client::PaymentsReviewClient;
use corebank_payments::app::sanctions::SanctionsList;
use corebank_payments::domain::sanctions::matching::similarity;
use corebank_service::internal::component_names;
use corebank_testkit::on_behalf_of;
use uuid::Uuid;

/// The lists, written as files and loaded as the module loads them at start.
fn lists(thresholds: &str) -> SanctionsList {
    let dir = tempfile::tempdir().unwrap();
    crate::common::sample_lists::lists(&dir, thresholds)
}

async fn screening(thresholds: &str) -> Harness {
    start(Setup {
        sanctions: lists(thresholds),
        ..Setup::default()
    })
    .await
}

/// A DecideScreening request as `signer` sends it, for the operator `approver` (signed with
/// `signer`'s key, as the gateway signs).
fn decision(
    signer: &str,
    approver: Option<&str>,
    payment: Uuid,
    decision: &str,
    proposed_by: &str,
) -> tonic::Request<pb::DecideScreeningRequest> {
    let message = pb::DecideScreeningRequest {
        payment_id: payment.to_string(),
        decision: decision.to_owned(),
        proposed_by: proposed_by.to_owned(),
        reason: format!("{decision}: reviewed against the listing"),
    };
    match approver {
        Some(approver) => on_behalf_of(
            signer,
            message,
            "/corebank.payments.v1.PaymentsReview/DecideScreening",
            approver,
        ),
        None => tonic::Request::new(message),
    }
}

fn review_client(h: &Harness, me: &str) -> PaymentsReviewClient<tonic::transport::Channel> {
    PaymentsReviewClient::new(h.channel_as(me))
}

/// The gateway deciding for `approver` what `proposer` proposed.
async fn decide(
    h: &Harness,
    payment: Uuid,
    verdict: &str,
    proposer: &str,
    approver: &str,
) -> Result<pb::Payment, tonic::Status> {
    review_client(h, component_names::GATEWAY)
        .decide_screening(decision(
            component_names::GATEWAY,
            Some(approver),
            payment,
            verdict,
            proposer,
        ))
        .await
        .map(tonic::Response::into_inner)
}

impl Harness {
    /// Asserts that the gateway deciding as [`decide`] does is refused with `expected` (a code).
    async fn assert_refused(
        &self,
        payment: Uuid,
        verdict: &str,
        proposer: &str,
        approver: &str,
        expected: &str,
    ) {
        let refusal = decide(self, payment, verdict, proposer, approver)
            .await
            .unwrap_err();
        assert_eq!(code(&refusal), expected, "{refusal:?}");
    }
}

/// `caller` releasing what alice proposed, signed by `signer` for `approver`: the refusal.
async fn release_refused(
    h: &Harness,
    caller: &str,
    signer: &str,
    approver: Option<&str>,
    payment: Uuid,
) -> tonic::Status {
    review_client(h, caller)
        .decide_screening(decision(signer, approver, payment, "release", "alice"))
        .await
        .unwrap_err()
}

/// The stored review of `payment`: (decision, proposed_by, approved_by, first hit's list).
async fn review_row(h: &Harness, payment: Uuid) -> (String, String, String, String) {
    let client = h.database.db_for("payments");
    client
        .run_tx("test_review", |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        "SELECT decision, proposed_by, approved_by, hits FROM screening_reviews \
                         WHERE payment_id = $1",
                        &[&payment],
                    )
                    .await?;
                let hits: serde_json::Value = row.get(3);
                Ok::<_, corebank_db::TxError<std::convert::Infallible>>((
                    row.get(0),
                    row.get(1),
                    row.get(2),
                    hits[0]["list"].as_str().unwrap_or_default().to_owned(),
                ))
            })
        })
        .await
        .unwrap()
}

/// The id of the inbound payment with `uetr`.
async fn inbound_payment(h: &Harness, uetr: Uuid) -> Uuid {
    h.database
        .db_for("payments")
        .run_tx("test_inbound_id", |tx| {
            Box::pin(async move {
                let row = tx
                    .query_one(
                        "SELECT id FROM payments WHERE uetr = $1 AND direction = 'inbound'",
                        &[&uetr],
                    )
                    .await?;
                Ok::<Uuid, corebank_db::TxError<std::convert::Infallible>>(row.get(0))
            })
        })
        .await
        .unwrap()
}

/// A harness screening at 0.93, a debtor account holding 100.00, and a payment of `amount`
/// from it to `creditor`, started and held by screening.
async fn held_from_a_new_debtor(amount: &str, creditor: &str) -> (Harness, String, Uuid) {
    let h = screening("*:0.93").await;
    let debtor = h.account("100.00").await;
    let payment = held(&h, &debtor, amount, creditor).await;
    (h, debtor, payment)
}

/// A payment of `amount` from `debtor` to `creditor`, started and held by screening.
async fn held(h: &Harness, debtor: &str, amount: &str, creditor: &str) -> Uuid {
    let mut listed = h.payment(debtor, amount);
    listed.creditor_name = creditor.to_owned();
    let payment = h.payments.initiate(listed).await.unwrap().record.id;
    let seen = h
        .until(payment, &["screening_review", "settled", "failed"])
        .await;
    assert_eq!(
        seen.status, "screening_review",
        "{creditor}: {:?}",
        seen.steps
    );
    payment
}

#[tokio::test]
async fn a_un_hit_waits_in_review_with_its_hold_and_a_four_eyes_release_sends_it() {
    let (h, debtor, payment) = held_from_a_new_debtor("40.00", "Sidorov, Ivan Petrovich").await;
    let held = h.payments.payment(payment).await.unwrap();
    assert_reason(&held, "un_consolidated 6908555");
    // The hold stays in place while the payment waits; nothing went to the rail.
    h.assert_balances(&debtor, ("100.00", "40.00", "60.00"))
        .await;
    assert!(!held.steps.iter().any(|s| s.step == "send"));
    let saga = corebank_saga::ops::get(h.payments.db(), payment)
        .await
        .unwrap();
    assert_eq!(saga.instance.status, corebank_saga::Status::Paused);
    assert_eq!(saga.instance.version, 2);
    // Still waiting a while later: waiting for a person is not retried away.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        h.payments.payment(payment).await.unwrap().status,
        "screening_review"
    );

    // The proposer cannot approve their own proposal, nor can nobody propose.
    h.assert_refused(payment, "release", "alice", "alice", "four_eyes_required")
        .await;
    h.assert_refused(payment, "release", " ", "bob", "four_eyes_required")
        .await;
    h.assert_refused(payment, "maybe", "alice", "bob", "invalid_argument")
        .await;
    assert_eq!(
        review_row(&h, payment).await.0,
        "",
        "refusals changed nothing"
    );

    let released = decide(&h, payment, "release", "alice", "bob")
        .await
        .unwrap();
    assert!(!released.replayed);
    let settled = h.settled(payment).await;
    assert_eq!(settled.status, "settled", "{:?}", settled.steps);
    assert!(
        settled
            .steps
            .iter()
            .any(|s| s.step == "screening_review" && s.direction == "do" && s.outcome == "done")
    );
    h.assert_balances(&debtor, ("60.00", "0.00", "60.00")).await;
    assert_eq!(
        review_row(&h, payment).await,
        (
            "release".into(),
            "alice".into(),
            "bob".into(),
            "un_consolidated".into()
        )
    );
    // The decision is in the saga's history, with both operators.
    let actions = corebank_saga::ops::get(h.payments.db(), payment)
        .await
        .unwrap()
        .operator_actions;
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0].action, "screening_release");
    assert_eq!(
        (actions[0].actor.as_str(), actions[0].proposed_by.as_str()),
        ("bob", "alice")
    );
    // The same decision again answers the same; the other one is refused.
    let again = decide(&h, payment, "release", "alice", "bob")
        .await
        .unwrap();
    assert!(again.replayed);
    assert_eq!(again.status, "settled");
    h.assert_refused(payment, "refuse", "carol", "dave", "invalid_payment_state")
        .await;
    h.stop().await;
}

#[tokio::test]
async fn an_ofac_alias_hit_refused_on_review_fails_and_releases_its_hold() {
    let (h, debtor, payment) = held_from_a_new_debtor("25.00", "Aero Caribbean").await;
    let held = h.payments.payment(payment).await.unwrap();
    assert_reason(&held, "ofac_sdn 36");

    let refused = decide(&h, payment, "refuse", "alice", "bob").await.unwrap();
    assert!(!refused.replayed);
    let failed = h.settled(payment).await;
    assert_eq!(failed.status, "failed");
    assert_reason(&failed, "refused on review by bob (proposed by alice)");
    assert!(hold_released(&failed), "{:?}", failed.steps);
    h.assert_balances(&debtor, ("100.00", "0.00", "100.00"))
        .await;
    assert_eq!(review_row(&h, payment).await.3, "ofac_sdn");
    // A payment screening did not hold has nothing to decide.
    let clean = h.pay(&debtor, "1.00").await.record.id;
    assert_eq!(h.settled(clean).await.status, "settled");
    h.assert_refused(clean, "release", "alice", "bob", "invalid_payment_state")
        .await;
    let unknown = Uuid::new_v4();
    h.assert_refused(unknown, "release", "alice", "bob", "unknown_payment")
        .await;
    h.stop().await;
}

#[tokio::test]
async fn only_the_gateway_with_a_signed_approver_may_decide() {
    let (deposits, gateway) = (component_names::DEPOSITS, component_names::GATEWAY);
    let (h, _, payment) = held_from_a_new_debtor("10.00", "NUR TRADING COMPANY").await;
    // Another component, even with a well-formed signature of its own: not on the list.
    let outsider = release_refused(&h, deposits, deposits, Some("bob"), payment).await;
    assert_eq!(
        outsider.code(),
        tonic::Code::PermissionDenied,
        "{outsider:?}"
    );
    // The gateway without naming the approver, or with a signature by another key.
    let unsigned = release_refused(&h, gateway, gateway, None, payment).await;
    assert_eq!(
        unsigned.code(),
        tonic::Code::Unauthenticated,
        "{unsigned:?}"
    );
    assert_eq!(code(&unsigned), "actor_not_asserted");
    let forged = release_refused(&h, gateway, deposits, Some("bob"), payment).await;
    assert_eq!(code(&forged), "actor_not_asserted", "{forged:?}");
    // Nothing was decided.
    assert_eq!(review_row(&h, payment).await.0, "");
    assert_eq!(
        h.payments.payment(payment).await.unwrap().status,
        "screening_review"
    );
    h.stop().await;
}

#[tokio::test]
async fn a_near_miss_passes_and_the_threshold_is_the_payment_currencys() {
    let near = "Ivan Petrov Sidorenko";
    let score = similarity(near, "IVAN PETROVICH SIDOROV");
    assert!(
        (0.80..0.99).contains(&score),
        "pick another near name: {score}"
    );
    let below = format!("{:.2}", (score * 100.0).ceil() / 100.0 + 0.01);
    let above = format!("{:.2}", (score * 100.0).floor() / 100.0 - 0.01);

    // EUR has a stricter threshold than the score: a near miss, paid as usual, although the
    // default would have held it.
    let h = screening(&format!("EUR:{below},*:{above}")).await;
    let debtor = h.account("100.00").await;
    let mut payment = h.payment(&debtor, "10.00");
    payment.creditor_name = near.to_owned();
    let passed = h.payments.initiate(payment).await.unwrap().record.id;
    let passed = h.settled(passed).await;
    assert_eq!(passed.status, "settled", "{:?}", passed.steps);
    h.stop().await;

    // EUR's threshold below the score: the same name is held.
    let h = screening(&format!("EUR:{above},*:{below}")).await;
    let debtor = h.account("100.00").await;
    held(&h, &debtor, "10.00", near).await;
    h.stop().await;
}

#[tokio::test]
async fn an_inbound_payment_from_a_listed_debtor_waits_uncredited_until_released_or_refused() {
    let h = screening("*:0.93").await;
    let creditor = h.account("0").await;
    let originate = async |debtor: &str, uetr: Option<Uuid>| {
        h.originate_inbound(&creditor, debtor, "75.50", uetr).await
    };
    let held = originate("Nur Trading Company", None).await;
    assert_eq!(held.bank_status, 200, "{}", held.bank_answer);
    assert!(
        held.bank_answer.starts_with("screening_review"),
        "{}",
        held.bank_answer
    );
    assert_eq!(h.balances(&creditor).await.0, "0.00");
    // Delivered again: still held, still uncredited.
    let again = originate("Nur Trading Company", Some(held.uetr)).await;
    assert!(
        again.bank_answer.starts_with("screening_review"),
        "{}",
        again.bank_answer
    );
    let payment = inbound_payment(&h, held.uetr).await;
    assert_eq!(
        h.payments.payment(payment).await.unwrap().status,
        "screening_review"
    );
    h.assert_refused(payment, "release", "carol", "carol", "four_eyes_required")
        .await;

    let released = decide(&h, payment, "release", "carol", "dave")
        .await
        .unwrap();
    assert_eq!(released.status, "credited");
    assert_eq!(h.balances(&creditor).await.0, "75.50");
    assert_eq!(
        review_row(&h, payment).await,
        (
            "release".into(),
            "carol".into(),
            "dave".into(),
            "un_consolidated".into()
        )
    );
    // Released twice: credited once.
    assert!(
        decide(&h, payment, "release", "carol", "dave")
            .await
            .unwrap()
            .replayed
    );
    assert_eq!(h.balances(&creditor).await.0, "75.50");

    // Another, refused: never credited, and no return is sent to a listed party.
    let second = originate("Nur Trading Compani", None).await;
    assert!(
        second.bank_answer.starts_with("screening_review"),
        "{}",
        second.bank_answer
    );
    let second = inbound_payment(&h, second.uetr).await;
    let refused = decide(&h, second, "refuse", "carol", "dave").await.unwrap();
    assert_eq!(refused.status, "refused");
    assert!(
        refused.reason.contains("refused on review by dave"),
        "{}",
        refused.reason
    );
    assert_eq!(h.balances(&creditor).await.0, "75.50");
    let returns = h.rail_returns().await;
    assert!(returns.is_empty(), "{returns:?}");
    // A name nowhere near the lists is credited at once.
    let clean = originate("Max Mustermann", None).await;
    assert!(
        clean.bank_answer.starts_with("credited"),
        "{}",
        clean.bank_answer
    );
    assert_eq!(h.balances(&creditor).await.0, "151.00");
    h.stop().await;
}
