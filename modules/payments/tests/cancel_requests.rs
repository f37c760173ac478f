//! CancelPayment by request id, through gRPC as the gateway calls it: required, a retry
//! answers the first outcome (`replayed`), other content under the same id is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

mod common;

use common::{Setup, error_code as code, start};
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;

#[tokio::test]
async fn a_cancel_is_idempotent_by_request_id_and_refuses_other_content() {
    // The executor is not running: the payment waits before its first step.
    let h = start(Setup {
        spawn_executor: false,
        ..Setup::default()
    })
    .await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "100.00").await;
    let mut client = PaymentsClient::new(h.payments_channel());
    let ask = |request_id: &str, reason: &str| pb::CancelPaymentRequest {
        payment_id: started.record.id.to_string(),
        reason: reason.to_owned(),
        request_id: request_id.to_owned(),
    };

    let missing = client.cancel_payment(ask("", "no id")).await.unwrap_err();
    assert_eq!(code(&missing), "invalid_argument");
    assert!(missing.message().contains("request_id"), "{missing:?}");
    assert_eq!(
        h.payments.payment(started.record.id).await.unwrap().status,
        "initiated",
        "a refused cancel changes nothing"
    );

    let request_id = common::id();
    let first = client
        .cancel_payment(ask(&request_id, "changed my mind"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status, "unwinding");
    assert!(!first.replayed);
    let again = client
        .cancel_payment(ask(&request_id, "changed my mind"))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.id, first.id);

    let other = client
        .cancel_payment(ask(&request_id, "another reason"))
        .await
        .unwrap_err();
    assert_eq!(code(&other), "exists_with_different_content");
    assert!(other.message().contains("reason"), "{other:?}");

    // A second request id for a payment already cancelled is refused by the saga.
    let second = client
        .cancel_payment(ask(&common::id(), "changed my mind"))
        .await
        .unwrap_err();
    assert_eq!(code(&second), "cannot_cancel");

    h.spawn_executor();
    let cancelled = h.settled(started.record.id).await;
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(h.balances(&debtor).await.2, "500.00");
    let replay_after = client
        .cancel_payment(ask(&request_id, "changed my mind"))
        .await
        .unwrap()
        .into_inner();
    assert!(replay_after.replayed);
    assert_eq!(replay_after.status, "cancelled");
}
