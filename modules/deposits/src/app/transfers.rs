//! Transfers between two deposit accounts, within the source product's per-transfer and
//! daily limits.

use chrono::{DateTime, Utc};
use corebank_db::TxError;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    BalancesView, Change, Deposits, first_difference, money_text, parse_currency, parse_id,
    positive_money, recovery,
};
use crate::domain::error::DepositsError;
use crate::domain::model::entry_id_for;
use crate::store;

/// A transfer between two deposit accounts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferView {
    pub request_id: Uuid,
    pub from_account_id: Uuid,
    pub to_account_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub entry_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub balances_after: BalancesView,
    #[serde(default)]
    pub replayed: bool,
}

impl Deposits {
    /// One ledger entry from one deposit account to another, within the source product's
    /// per-transfer and daily limits. The daily amount is reserved before the ledger moves
    /// the money (so concurrent transfers cannot pass the limit together) and given back if
    /// the ledger refuses.
    pub async fn transfer(
        &self,
        request_id: &str,
        from_account_id: &str,
        to_account_id: &str,
        amount: &str,
        currency: &str,
        description: &str,
    ) -> Result<TransferView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let from_id = parse_id("from_account_id", from_account_id)?;
        let to_id = parse_id("to_account_id", to_account_id)?;
        let content = json!({
            "from_account_id": from_id,
            "to_account_id": to_id,
            "amount": amount,
            "currency": currency,
            "description": description,
        });
        if from_id == to_id {
            return Err(DepositsError::invalid(
                "to_account_id",
                "the same account as from_account_id",
            ));
        }
        // The earlier answer, both accounts, read at once.
        let (stored, from, to) = self
            .in_tx("deposits_transfer_read", |tx| {
                Box::pin(async move {
                    let (stored, from, to) = tokio::join!(
                        store::request(&tx, request_id),
                        store::account(&tx, from_id),
                        store::account(&tx, to_id)
                    );
                    Ok((stored?, from?, to?))
                })
            })
            .await?;
        if let Some(stored) = stored {
            if stored.kind != "transfer" {
                return Err(DepositsError::ExistsWithDifferent {
                    request_id: request_id.to_string(),
                    field: "kind".to_owned(),
                });
            }
            if let Some(field) = first_difference(&stored.content, &content) {
                return Err(DepositsError::ExistsWithDifferent {
                    request_id: request_id.to_string(),
                    field,
                });
            }
            let mut view: TransferView =
                serde_json::from_value(stored.response).map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                })?;
            view.replayed = true;
            return Ok(view);
        }
        let unknown = |id: Uuid| DepositsError::UnknownAccount {
            account_id: id.to_string(),
        };
        let from = from.ok_or_else(|| unknown(from_id))?;
        let to = to.ok_or_else(|| unknown(to_id))?;
        let request_currency = parse_currency(currency)?;
        if request_currency != from.currency || request_currency != to.currency {
            return Err(DepositsError::CurrencyMismatch {
                expected: from.currency.code().to_owned(),
                got: format!("{currency} (to an account in {})", to.currency.code()),
            });
        }
        let money = positive_money(amount, from.currency)?;
        from.check_debit()?;
        to.check_credit()?;
        let product = self
            .product(&from.product_code, Some(from.product_version))
            .await?;
        if let Some(limit) = product.per_transfer_limit
            && money.amount() > limit
        {
            return Err(DepositsError::TransferLimitExceeded {
                amount: money.amount_string(),
                limit: money_text(limit, from.currency),
            });
        }
        let day = self.business_today();
        let daily = product.daily_transfer_limit;
        // Only a daily limit needs the reservation.
        if daily.is_some() {
            self.in_tx("deposits_reserve_transfer", |tx| {
                Box::pin(async move {
                    match store::reserve_transfer(
                        &tx,
                        request_id,
                        from_id,
                        day,
                        money.amount(),
                        daily,
                    )
                    .await?
                    {
                        Ok(()) => Ok(()),
                        // Refused: nothing of this attempt may stay.
                        Err(used) => Err(TxError::Abort(DepositsError::DailyLimitExceeded {
                            account_id: from_id.to_string(),
                            limit: daily
                                .map(|l| money_text(l, money.currency()))
                                .unwrap_or_default(),
                            used: money_text(used, money.currency()),
                        })),
                    }
                })
            })
            .await?;
        }
        let entry_id = entry_id_for("transfer", request_id);
        let description = if description.is_empty() {
            format!("transfer to {to_id}")
        } else {
            description.to_owned()
        };
        self.note_in_doubt(request_id, "transfer", &content, entry_id)
            .await?;
        let moved = self
            .ledger_transfer(
                entry_id,
                from.ledger_account_id,
                to.ledger_account_id,
                money,
                &description,
                &from,
                false,
                0,
            )
            .await;
        if let Err(error) = moved {
            // A definite refusal gives the reservation back; an unknown outcome keeps it
            // (the retry of this request, or the in-doubt recovery, settles it).
            self.settle_ledger_failure(request_id, &error).await?;
            if daily.is_some() && !recovery::outcome_unknown(&error) {
                self.in_tx("deposits_release_transfer", |tx| {
                    Box::pin(async move { store::release_transfer(&tx, request_id).await })
                })
                .await?;
            }
            return Err(error);
        }
        let balances_after = self.balances(&from).await?;
        let view = TransferView {
            request_id,
            from_account_id: from_id,
            to_account_id: to_id,
            amount: money.amount_string(),
            currency: from.currency.code().to_owned(),
            entry_id,
            recorded_at: self.now(),
            balances_after,
            replayed: false,
        };
        self.commit_transfer(&content, &view).await
    }

    /// Records the answer `view` to a transfer with its change and its two events: sent by
    /// the source account, received by the target.
    pub(super) async fn commit_transfer(
        &self,
        content: &Value,
        view: &TransferView,
    ) -> Result<TransferView, DepositsError> {
        let (from_id, to_id) = (view.from_account_id, view.to_account_id);
        let payload = json!({
            "from_account_id": from_id,
            "to_account_id": to_id,
            "amount": view.amount,
            "currency": view.currency,
            "entry_id": view.entry_id,
            "request_id": view.request_id,
        });
        let events = [
            self.event(from_id, "deposits.transfer.sent", payload.clone())?,
            self.event(to_id, "deposits.transfer.received", payload)?,
        ];
        self.commit(
            view.request_id,
            "transfer",
            content,
            view,
            &[Change::Touch(from_id)],
            &events,
        )
        .await
    }
}
