//! What the rail delivers: inbound credit transfers (pacs.008) and status reports (pacs.002)
//! for our outbound payments.
//!
//! An inbound payment is credited at most once, by UETR: the payment row (unique by UETR and
//! direction) is written first, the credit's request id is derived from the UETR, so a
//! repeated delivery — or a retry after a crash — finds the same row and the same credit.
//! An unknown or closed beneficiary gets a return (pacs.004) instead. A debtor whose name
//! may be on a sanctions list holds the payment, uncredited, for a four-eyes review.
//!
//! Each message comes as a delivery whose signature the handler verified before anything
//! was parsed; the delivery id is recorded in the transaction of the message's first
//! effect, so a replayed delivery is refused (`replayed`) and changes nothing.

use chrono::{DateTime, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_db::TxError;
use corebank_outbox::{AggregateRef, NewEvent, Outbox, SchemaName};
use serde_json::json;
use uuid::Uuid;

use super::messages::{self, Inbound};
use super::rail::{self, take_delivery};
use super::{PaymentRecord, Payments, derived_id, from_deposits, tx_error};
use crate::domain::error::PaymentsError;
use crate::rail_signature::VerifiedDelivery;
use crate::store;

/// The payment row an inbound credit transfer starts as.
fn inbound_record(inbound: &Inbound, now: DateTime<Utc>) -> PaymentRecord {
    PaymentRecord {
        id: derived_id("inbound", &inbound.uetr.to_string()),
        request_id: derived_id("inbound-request", &inbound.uetr.to_string()),
        direction: "inbound".to_owned(),
        status: "received".to_owned(),
        debtor_account_id: inbound.debtor_account.clone(),
        debtor_name: inbound.debtor_name.clone(),
        creditor_name: inbound.creditor_name.clone(),
        creditor_account: inbound.creditor_account.clone(),
        creditor_agent_bic: inbound.creditor_agent_bic.clone(),
        amount: inbound.amount,
        currency: inbound.currency.clone(),
        end_to_end_id: inbound.end_to_end_id.clone(),
        uetr: inbound.uetr,
        remittance_information: inbound.remittance_information.clone(),
        reason: String::new(),
        content: json!({ "msg_id": inbound.msg_id }),
        created_at: now,
        updated_at: now,
    }
}

/// What became of an inbound payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundOutcome {
    pub payment_id: Uuid,
    pub uetr: Uuid,
    /// credited | returned | screening_review (held: a possible sanctions hit)
    pub status: String,
    pub reason: String,
    /// A delivery of a UETR seen before.
    pub duplicate: bool,
}

impl Payments {
    /// Takes an inbound pacs.008, delivered by the rail as `delivery` (its signature
    /// verified, the body not yet read).
    pub async fn receive_inbound(
        &self,
        delivery: &VerifiedDelivery,
        xml: &str,
    ) -> Result<InboundOutcome, PaymentsError> {
        // The delivery is taken, and the message read, in the transaction that stores the
        // payment: a replayed delivery is refused before anything is parsed and changes
        // nothing, and a message that does not parse leaves its delivery untaken.
        let (inbound, stored, inserted) = self
            .db
            .run_tx("payments_inbound_receive", |tx| {
                Box::pin(async move {
                    take_delivery(&tx, delivery).await?;
                    let inbound = messages::parse_inbound(xml).map_err(TxError::Abort)?;
                    let (stored, inserted) =
                        store::insert(&tx, &inbound_record(&inbound, Utc::now())).await?;
                    Ok((inbound, stored, inserted))
                })
            })
            .await
            .map_err(tx_error)?;
        // The same UETR with other content is not this payment delivered again.
        if stored.amount != inbound.amount
            || stored.currency != inbound.currency
            || stored.creditor_account != inbound.creditor_account
        {
            return Err(PaymentsError::invalid(
                "uetr",
                format!(
                    "{} was delivered before with another amount, currency or creditor account",
                    inbound.uetr
                ),
            ));
        }
        if stored.status != "received" {
            return Ok(InboundOutcome {
                payment_id: stored.id,
                uetr: stored.uetr,
                status: stored.status,
                reason: stored.reason,
                duplicate: true,
            });
        }
        // The debtor's name against the sanctions lists: a possible hit is stored, not
        // credited, until two operators decide (ADR 0011).
        let hits = self
            .config
            .sanctions
            .screen(&inbound.debtor_name, &inbound.currency);
        if !hits.is_empty() {
            let reason = super::outbound::hit_reason(&hits);
            let found = super::outbound::hits_json(&hits);
            self.finish_inbound(
                stored.id,
                &inbound,
                "screening_review",
                &reason,
                Some((&inbound.debtor_name, &found)),
            )
            .await?;
            metrics::counter!("corebank_payments_screening_holds_total", "direction" => "inbound")
                .increment(1);
            return Ok(InboundOutcome {
                payment_id: stored.id,
                uetr: stored.uetr,
                status: "screening_review".to_owned(),
                reason,
                duplicate: !inserted,
            });
        }
        let (status, reason) = self.credit_or_return(stored.id, &inbound).await?;
        Ok(InboundOutcome {
            payment_id: stored.id,
            uetr: stored.uetr,
            status,
            reason,
            duplicate: !inserted,
        })
    }

    /// Credits an inbound payment, or returns it (pacs.004) when it cannot be credited, and
    /// records which with its event. Safe to repeat: the credit's request id is derived from
    /// the UETR.
    pub(crate) async fn credit_or_return(
        &self,
        payment_id: Uuid,
        inbound: &Inbound,
    ) -> Result<(String, String), PaymentsError> {
        let (status, reason) = match self.credit(inbound).await? {
            None => ("credited", String::new()),
            Some(reason) => {
                self.send_return(inbound, &reason).await?;
                ("returned", reason)
            }
        };
        self.finish_inbound(payment_id, inbound, status, &reason, None)
            .await?;
        metrics::counter!("corebank_payments_inbound_total", "status" => status).increment(1);
        Ok((status.to_owned(), reason))
    }

    /// Writes an inbound payment's status and its event (`payments.inbound.<status>`); with
    /// `held`, the screened name and possible hits of a payment held for review.
    pub(crate) async fn finish_inbound(
        &self,
        payment_id: Uuid,
        inbound: &Inbound,
        status: &str,
        reason: &str,
        held: Option<(&str, &serde_json::Value)>,
    ) -> Result<(), PaymentsError> {
        let event_type = format!("payments.inbound.{status}");
        let event = NewEvent::new(
            AggregateRef::new("payment", payment_id.to_string())?,
            &event_type,
            json!({
                "payment_id": payment_id,
                "uetr": inbound.uetr,
                "end_to_end_id": inbound.end_to_end_id,
                "creditor_account": inbound.creditor_account,
                "amount": inbound.amount.normalize().to_string(),
                "currency": inbound.currency,
                "reason": reason,
            }),
        )?;
        let outbox = Outbox::new(SchemaName::new("payments")?);
        let (event_ref, outbox_ref) = (&event, &outbox);
        self.db
            .run_tx("payments_inbound_settle", |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    if let Some((name, hits)) = held {
                        store::reviews::hold(&tx, payment_id, "inbound", name, hits, now).await?;
                    }
                    store::set_status(&tx, payment_id, status, reason, now).await?;
                    outbox_ref
                        .append_one::<PaymentsError>(&tx, event_ref)
                        .await?;
                    Ok(())
                })
            })
            .await
            .map_err(tx_error)
    }

    /// Credits the beneficiary from the clearing account; `Some(reason code)` when the
    /// payment must be returned instead.
    async fn credit(&self, inbound: &Inbound) -> Result<Option<String>, PaymentsError> {
        if Uuid::parse_str(&inbound.creditor_account).is_err() {
            return Ok(Some("AC01".to_owned()));
        }
        let answer = self
            .deposits
            .clone()
            .deposit(dpb::CashRequest {
                request_id: derived_id("inbound-credit", &inbound.uetr.to_string()).to_string(),
                account_id: inbound.creditor_account.clone(),
                amount: inbound.amount.normalize().to_string(),
                currency: inbound.currency.clone(),
                description: format!(
                    "payment from {} ({})",
                    inbound.debtor_name, inbound.end_to_end_id
                ),
                channel: "clearing".to_owned(),
            })
            .await;
        match answer {
            Ok(_) => Ok(None),
            Err(status) => match from_deposits(&status) {
                PaymentsError::Deposits { code, .. } => Ok(Some(
                    match code.as_str() {
                        "unknown_account" => "AC01",
                        "account_closed" => "AC04",
                        "account_frozen" => "AC06",
                        "currency_mismatch" => "AM03",
                        _ => "NARR",
                    }
                    .to_owned(),
                )),
                PaymentsError::InvalidArgument { .. } => Ok(Some("AM09".to_owned())),
                other => Err(other),
            },
        }
    }

    async fn send_return(&self, inbound: &Inbound, reason: &str) -> Result<(), PaymentsError> {
        let xml = messages::pacs004_for(&self.config.bank_bic, inbound, reason)?;
        let url = rail::endpoint(&self.config.rail_url, "/pacs004")?;
        let response = self
            .call_rail(reqwest::Method::POST, &url, xml)
            .await
            .map_err(|error| PaymentsError::Unavailable {
                message: format!("the rail did not take the return: {error}"),
            })?;
        if !response.status().is_success() {
            return Err(PaymentsError::Unavailable {
                message: format!("the rail answered {} to the return", response.status()),
            });
        }
        Ok(())
    }

    /// Takes a pacs.002 for one of our outbound payments, delivered by the rail as `delivery`
    /// (its signature verified, the body not yet read), and wakes its saga.
    pub async fn receive_status(
        &self,
        delivery: &VerifiedDelivery,
        xml: &str,
    ) -> Result<(), PaymentsError> {
        // As for a pacs.008: the delivery is taken in the transaction that stores the report.
        let is_final = self
            .db
            .run_tx("payments_status_receive", |tx| {
                Box::pin(async move {
                    take_delivery(&tx, delivery).await?;
                    let (uetr, status, reason) =
                        messages::parse_status(xml).map_err(TxError::Abort)?;
                    if status != "ACSC" && status != "RJCT" {
                        // Not final (ACCP, PDNG): the rail sends another report, or is asked
                        // later. Only a final report is stored, so a later rejection is never
                        // shadowed.
                        return Ok(false);
                    }
                    store::insert_status_report(&tx, uetr, &status, &reason, Utc::now()).await?;
                    Ok(true)
                })
            })
            .await
            .map_err(tx_error)?;
        if is_final {
            self.executor.nudge();
        }
        Ok(())
    }

    /// Adds an entry (a creditor account or name) to the screening blocklist.
    pub async fn block(&self, entry: &str, reason: &str) -> Result<(), PaymentsError> {
        self.db
            .run_tx("payments_block", |tx| {
                Box::pin(
                    async move { store::add_to_blocklist(&tx, entry, reason, Utc::now()).await },
                )
            })
            .await
            .map_err(tx_error)
    }
}
