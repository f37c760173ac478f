//! The contract suite of `corebank.payments.v1.Payments`: what any implementation must do,
//! checked only through the gRPC contract (the legacy adapter runs it too). The caller
//! provides two deposit accounts in EUR: `funded` with at least 100.00 available, and
//! `other`, and a rail that accepts or rejects payments within 20 s.

use std::time::{Duration, Instant};

use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_service::contract::{
    ODD_AMOUNTS, ODD_IDS, UNKNOWN_CURRENCY, answer as grpc, expect, refused,
};
use tonic::transport::Channel;
use uuid::Uuid;

pub use corebank_service::contract::CheckResult;

/// The accounts the suite works with.
#[derive(Debug, Clone)]
pub struct Fixtures {
    pub funded: String,
    pub other: String,
}

type Client = PaymentsClient<Channel>;

fn payment_request(debtor: &str, amount: &str) -> pb::InitiatePaymentRequest {
    pb::InitiatePaymentRequest {
        request_id: Uuid::new_v4().to_string(),
        debtor_account_id: debtor.to_owned(),
        creditor: Some(pb::Party {
            name: "Contract Creditor".to_owned(),
            account: "DE44500105175407324931".to_owned(),
            agent_bic: "INGDDEFFXXX".to_owned(),
        }),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        end_to_end_id: "CONTRACT-E2E-1".to_owned(),
        remittance_information: "contract suite".to_owned(),
    }
}

async fn an_internal_transfer_moves_money_once(
    client: &mut Client,
    f: &Fixtures,
) -> Result<(), String> {
    let request = pb::InternalTransferRequest {
        request_id: Uuid::new_v4().to_string(),
        from_account_id: f.funded.clone(),
        to_account_id: f.other.clone(),
        amount: "10.00".to_owned(),
        currency: "EUR".to_owned(),
        description: "contract".to_owned(),
    };
    let first = grpc(
        client.internal_transfer(request.clone()).await,
        "InternalTransfer",
    )?;
    let again = grpc(
        client.internal_transfer(request.clone()).await,
        "InternalTransfer again",
    )?;
    expect(
        !first.replayed && again.replayed && again.entry_id == first.entry_id,
        || format!("first {first:?}, again {again:?}"),
    )?;
    let mut other = request;
    other.amount = "11.00".to_owned();
    refused(
        client.internal_transfer(other).await,
        "exists_with_different_content",
    )?;
    let mut too_much = payment_transfer(f, "100000000.00");
    too_much.request_id = Uuid::new_v4().to_string();
    refused(
        client.internal_transfer(too_much).await,
        "insufficient_funds",
    )
}

fn payment_transfer(f: &Fixtures, amount: &str) -> pb::InternalTransferRequest {
    pb::InternalTransferRequest {
        request_id: Uuid::new_v4().to_string(),
        from_account_id: f.funded.clone(),
        to_account_id: f.other.clone(),
        amount: amount.to_owned(),
        currency: "EUR".to_owned(),
        description: String::new(),
    }
}

async fn bad_requests_are_refused_with_stable_codes(
    client: &mut Client,
    f: &Fixtures,
) -> Result<(), String> {
    let mut bad_id = payment_request(&f.funded, "1.00");
    bad_id.request_id = "not-a-uuid".to_owned();
    refused(client.initiate_payment(bad_id).await, "invalid_argument")?;
    refused(
        client
            .initiate_payment(payment_request(&f.funded, "0"))
            .await,
        "invalid_argument",
    )?;
    refused(
        client
            .initiate_payment(payment_request(&f.funded, "1.001"))
            .await,
        "invalid_argument",
    )?;
    let mut bad_bic = payment_request(&f.funded, "1.00");
    if let Some(creditor) = bad_bic.creditor.as_mut() {
        creditor.agent_bic = "nope".to_owned();
    }
    refused(client.initiate_payment(bad_bic).await, "invalid_argument")?;
    refused(
        client
            .get_payment(pb::GetPaymentRequest {
                payment_id: Uuid::new_v4().to_string(),
            })
            .await,
        "unknown_payment",
    )?;
    refused(
        client
            .cancel_payment(pb::CancelPaymentRequest {
                payment_id: Uuid::new_v4().to_string(),
                reason: "contract".to_owned(),
                request_id: Uuid::new_v4().to_string(),
            })
            .await,
        "unknown_payment",
    )
}

/// The request id is checked before anything else: no payment is needed to see it refused.
async fn a_cancel_needs_a_request_id(client: &mut Client, _f: &Fixtures) -> Result<(), String> {
    for request_id in ["", "not-a-uuid"] {
        refused(
            client
                .cancel_payment(pb::CancelPaymentRequest {
                    payment_id: Uuid::new_v4().to_string(),
                    reason: "contract".to_owned(),
                    request_id: request_id.to_owned(),
                })
                .await,
            "invalid_argument",
        )?;
    }
    Ok(())
}

async fn an_outbound_payment_reaches_a_final_status(
    client: &mut Client,
    f: &Fixtures,
) -> Result<(), String> {
    let request = payment_request(&f.funded, "5.00");
    let started = grpc(
        client.initiate_payment(request.clone()).await,
        "InitiatePayment",
    )?;
    expect(
        !started.uetr.is_empty() && started.end_to_end_id == "CONTRACT-E2E-1",
        || format!("started {started:?}"),
    )?;
    let again = grpc(
        client.initiate_payment(request).await,
        "InitiatePayment again",
    )?;
    expect(
        again.replayed && again.id == started.id && again.uetr == started.uetr,
        || format!("again {again:?}"),
    )?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let payment = grpc(
            client
                .get_payment(pb::GetPaymentRequest {
                    payment_id: started.id.clone(),
                })
                .await,
            "GetPayment",
        )?;
        if payment.status == "settled" || payment.status == "rejected" {
            return expect(
                !payment.steps.is_empty() && payment.uetr == started.uetr,
                || format!("final {payment:?}"),
            );
        }
        if Instant::now() > deadline {
            return Err(format!(
                "still {} after 20 s: {:?}",
                payment.status, payment.steps
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn odd_amounts_are_invalid_arguments(
    client: &mut Client,
    f: &Fixtures,
) -> Result<(), String> {
    for amount in ODD_AMOUNTS {
        refused(
            client
                .initiate_payment(payment_request(&f.funded, amount))
                .await,
            "invalid_argument",
        )
        .map_err(|e| format!("InitiatePayment of {amount:?}: {e}"))?;
        refused(
            client.internal_transfer(payment_transfer(f, amount)).await,
            "invalid_argument",
        )
        .map_err(|e| format!("InternalTransfer of {amount:?}: {e}"))?;
    }
    Ok(())
}

async fn odd_ids_are_invalid_arguments(client: &mut Client, f: &Fixtures) -> Result<(), String> {
    for id in ODD_IDS {
        let with = |what: &str, e: String| format!("{what} with the id {id:?}: {e}");
        let mut odd_request = payment_request(&f.funded, "1.00");
        odd_request.request_id = id.to_owned();
        refused(
            client.initiate_payment(odd_request).await,
            "invalid_argument",
        )
        .map_err(|e| with("InitiatePayment (request_id)", e))?;
        refused(
            client.initiate_payment(payment_request(id, "1.00")).await,
            "invalid_argument",
        )
        .map_err(|e| with("InitiatePayment (debtor_account_id)", e))?;
        let mut odd_transfer = payment_transfer(f, "1.00");
        odd_transfer.request_id = id.to_owned();
        refused(
            client.internal_transfer(odd_transfer).await,
            "invalid_argument",
        )
        .map_err(|e| with("InternalTransfer (request_id)", e))?;
        let mut odd_creditor = payment_transfer(f, "1.00");
        odd_creditor.to_account_id = id.to_owned();
        refused(
            client.internal_transfer(odd_creditor).await,
            "invalid_argument",
        )
        .map_err(|e| with("InternalTransfer (to_account_id)", e))?;
        refused(
            client
                .get_payment(pb::GetPaymentRequest {
                    payment_id: id.to_owned(),
                })
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("GetPayment", e))?;
        refused(
            client
                .cancel_payment(pb::CancelPaymentRequest {
                    payment_id: id.to_owned(),
                    reason: "contract".to_owned(),
                    request_id: Uuid::new_v4().to_string(),
                })
                .await,
            "invalid_argument",
        )
        .map_err(|e| with("CancelPayment", e))?;
    }
    Ok(())
}

async fn an_unknown_currency_is_an_invalid_argument(
    client: &mut Client,
    f: &Fixtures,
) -> Result<(), String> {
    let mut payment = payment_request(&f.funded, "1.00");
    payment.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.initiate_payment(payment).await, "invalid_argument")?;
    let mut transfer = payment_transfer(f, "1.00");
    transfer.currency = UNKNOWN_CURRENCY.to_owned();
    refused(client.internal_transfer(transfer).await, "invalid_argument")
}

/// Runs every check against the implementation behind `client`.
pub async fn run(client: Client, fixtures: &Fixtures) -> Vec<CheckResult> {
    corebank_service::contract_checks!(client, fixtures;
        an_internal_transfer_moves_money_once,
        bad_requests_are_refused_with_stable_codes,
        a_cancel_needs_a_request_id,
        an_outbound_payment_reaches_a_final_status,
        odd_amounts_are_invalid_arguments,
        odd_ids_are_invalid_arguments,
        an_unknown_currency_is_an_invalid_argument,
    )
}
