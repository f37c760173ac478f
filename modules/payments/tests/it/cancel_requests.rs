//! CancelPayment by request id, through gRPC as the gateway calls it: required, a retry
//! answers the first outcome (`replayed`), other content under the same id is refused.

use crate::common;
use crate::common::{error_code as code, start_without_executor};
use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;

#[tokio::test]
async fn a_cancel_is_idempotent_by_request_id_and_refuses_other_content() {
    let h = start_without_executor().await;
    let debtor = h.account("500.00").await;
    let started = h.pay(&debtor, "100.00").await;
    let mut client = PaymentsClient::new(h.payments_channel());
    let mut cancel = async |request_id: &str, reason: &str| {
        let request = pb::CancelPaymentRequest {
            payment_id: started.record.id.to_string(),
            reason: reason.to_owned(),
            request_id: request_id.to_owned(),
        };
        client
            .cancel_payment(request)
            .await
            .map(tonic::Response::into_inner)
    };

    let missing = cancel("", "no id").await.unwrap_err();
    assert_eq!(code(&missing), "invalid_argument");
    assert!(missing.message().contains("request_id"), "{missing:?}");
    assert_eq!(
        h.payments.payment(started.record.id).await.unwrap().status,
        "initiated",
        "a refused cancel changes nothing"
    );

    let request_id = common::id();
    let first = cancel(&request_id, "changed my mind").await.unwrap();
    assert_eq!(first.status, "unwinding");
    assert!(!first.replayed);
    let again = cancel(&request_id, "changed my mind").await.unwrap();
    assert!(again.replayed, "{again:?}");
    assert_eq!(again.id, first.id);

    let other = cancel(&request_id, "another reason").await.unwrap_err();
    assert_eq!(code(&other), "exists_with_different_content");
    assert!(other.message().contains("reason"), "{other:?}");

    // A second request id for a payment already cancelled is refused by the saga.
    let second = cancel(&common::id(), "changed my mind").await.unwrap_err();
    assert_eq!(code(&second), "cannot_cancel");

    h.spawn_executor();
    let cancelled = h.settled(started.record.id).await;
    assert_eq!(cancelled.status, "cancelled");
    assert_eq!(h.balances(&debtor).await.2, "500.00");
    let replay_after = cancel(&request_id, "changed my mind").await.unwrap();
    assert!(replay_after.replayed);
    assert_eq!(replay_after.status, "cancelled");
}
