//! `corebank.payments.v1.Payments` served from the legacy core.
//!
//! The core books an outward payment at once (`FUNDS.TRANSFER` type `OT`: the customer is
//! debited, the clearing account credited) and hands it to its own clearing interface; it
//! has no saga and no status reports. So a payment the core accepts is `settled` with one
//! step (`book`), one it refuses is refused synchronously with the canonical code, and a
//! cancel always answers `past_pivot`.

use corebank_api::payments::v1 as pb;
use corebank_api::payments::v1::payments_server::{Payments, PaymentsServer};
use prost::Message as _;
use uuid::Uuid;

use super::adapter_service;
use super::deposits::TransferAsk;
use super::error::AdapterError;
use super::{
    Adapter, Result, check_currency, field, fingerprint, now_text, parse_amount, parse_uuid,
};
use super::{money, parse_request_id};

fn valid_bic(bic: &str) -> bool {
    let bytes = bic.as_bytes();
    (bytes.len() == 8 || bytes.len() == 11)
        && bytes[..6].iter().all(u8::is_ascii_uppercase)
        && bytes[6..]
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

impl Adapter {
    async fn internal_transfer(
        &self,
        r: pb::InternalTransferRequest,
    ) -> Result<pb::InternalTransferResult> {
        self.transfer_once("internal_transfer", TransferAsk::from(&r), |moved| {
            pb::InternalTransferResult {
                request_id: r.request_id.clone(),
                entry_id: moved.entry_id,
                amount: money(moved.amount),
                currency: r.currency.clone(),
                from_posted_after: moved.balances.posted,
                replayed: moved.existed,
            }
        })
        .await
    }

    async fn initiate_payment(&self, r: pb::InitiatePaymentRequest) -> Result<pb::Payment> {
        let request_id = parse_request_id(&r.request_id)?;
        let creditor = r.creditor.clone().unwrap_or_default();
        if creditor.name.trim().is_empty() || creditor.account.trim().is_empty() {
            return Err(AdapterError::invalid(
                "creditor name and account are required",
            ));
        }
        if !valid_bic(&creditor.agent_bic) {
            return Err(AdapterError::invalid(format!(
                "creditor agent_bic {:?} is not a BIC (8 or 11 characters)",
                creditor.agent_bic
            )));
        }
        if r.end_to_end_id.len() > 35 || r.remittance_information.len() > 140 {
            return Err(AdapterError::invalid(
                "end_to_end_id has at most 35 characters and remittance_information 140",
            ));
        }
        check_currency(&r.currency)?;
        let amount = parse_amount(&r.amount, &r.currency)?;
        let fp = fingerprint(
            "initiate_payment",
            &[
                &r.debtor_account_id,
                &creditor.name,
                &creditor.account,
                &creditor.agent_bic,
                &money(amount),
                &r.currency,
                &r.end_to_end_id,
                &r.remittance_information,
            ],
        );
        self.once(request_id, fp, async {
            let row = self.account_in(&r.debtor_account_id, &r.currency).await?;
            let end_to_end_id = if r.end_to_end_id.is_empty() {
                format!(
                    "E2E{}",
                    &request_id.simple().to_string()[..20].to_uppercase()
                )
            } else {
                r.end_to_end_id.clone()
            };
            let started_at = now_text();
            let mut extra = vec![
                field(
                    "BEN.CUSTOMER",
                    creditor.name.chars().take(70).collect::<String>(),
                ),
                field("BEN.ACCT.NO", creditor.account.clone()),
                field("BEN.BANK", creditor.agent_bic.clone()),
                field("END.TO.END.ID", end_to_end_id.clone()),
            ];
            if !r.remittance_information.is_empty() {
                extra.push(field("PAYMENT.DETAILS", r.remittance_information.clone()));
            }
            let (ft, _) = self
                .transfer_funds(super::deposits::Posting {
                    request_id,
                    kind: "OT",
                    debit: &row.account_no,
                    credit: "",
                    currency: &row.currency,
                    amount,
                    extra,
                })
                .await?;
            let ended_at = now_text();
            let payment = pb::Payment {
                id: super::derived_uuid("payment", &ft).to_string(),
                direction: "outbound".to_owned(),
                status: "settled".to_owned(),
                debtor_account_id: r.debtor_account_id.clone(),
                creditor: Some(creditor.clone()),
                amount: money(amount),
                currency: r.currency.clone(),
                end_to_end_id,
                uetr: Uuid::new_v4().to_string(),
                reason: String::new(),
                steps: vec![pb::PaymentStep {
                    step: "book".to_owned(),
                    direction: "do".to_owned(),
                    attempt: 1,
                    outcome: "done".to_owned(),
                    error: String::new(),
                    started_at,
                    ended_at: ended_at.clone(),
                }],
                created_at: ended_at.clone(),
                updated_at: ended_at,
                replayed: false,
            };
            let id = parse_uuid(&payment.id, "payment id")?;
            self.store
                .keep_payment(id, &ft, &payment.encode_to_vec())
                .await?;
            // A twin that got here first kept its own: answer that one.
            match self.store.payment(id).await? {
                Some(bytes) => pb::Payment::decode(bytes.as_slice())
                    .map_err(|e| AdapterError::internal(format!("stored payment unreadable: {e}"))),
                None => Ok(payment),
            }
        })
        .await
    }

    async fn payment(&self, payment_id: &str) -> Result<pb::Payment> {
        let id = parse_uuid(payment_id, "payment_id")?;
        let bytes = self
            .store
            .payment(id)
            .await?
            .ok_or_else(|| AdapterError::UnknownPayment {
                payment_id: payment_id.to_owned(),
            })?;
        pb::Payment::decode(bytes.as_slice())
            .map_err(|e| AdapterError::internal(format!("stored payment unreadable: {e}")))
    }
}

adapter_service! {
    /// The tonic service.
    PaymentsService: Payments, PaymentsServer {
        fn internal_transfer(pb::InternalTransferRequest) -> pb::InternalTransferResult =
            |adapter, r| adapter.internal_transfer(r).await;
        fn initiate_payment(pb::InitiatePaymentRequest) -> pb::Payment =
            |adapter, r| adapter.initiate_payment(r).await;
        fn get_payment(pb::GetPaymentRequest) -> pb::Payment =
            |adapter, r| adapter.payment(&r.payment_id).await;
        // The request id is checked as the modern module checks it, though the core has
        // nothing to cancel: the contract is the same on both sides.
        fn cancel_payment(pb::CancelPaymentRequest) -> pb::Payment =
            |adapter, r| match parse_request_id(&r.request_id) {
                Err(error) => Err(error),
                Ok(_) => match adapter.payment(&r.payment_id).await {
                    Ok(_) => Err(AdapterError::PastPivot),
                    Err(error) => Err(error),
                },
            };
    }
}

#[cfg(test)]
mod tests {
    use super::valid_bic;

    #[test]
    fn bics_are_checked() {
        assert!(valid_bic("INGDDEFFXXX"));
        assert!(valid_bic("INGDDEFF"));
        for bad in ["nope", "INGDDEF", "ingddeffxxx", "INGDDEFFXX", "1NGDDEFF"] {
            assert!(!valid_bic(bad), "{bad}");
        }
    }
}
