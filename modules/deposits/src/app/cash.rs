//! Money in and out of an account: deposits and withdrawals through the bank's cash or
//! clearing account.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{BalancesView, Change, Deposits, money_of, parse_id};
use crate::domain::error::DepositsError;
use crate::domain::model::entry_id_for;

/// A deposit or withdrawal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MovementView {
    pub request_id: Uuid,
    pub account_id: Uuid,
    pub kind: String,
    pub amount: String,
    pub currency: String,
    pub entry_id: Uuid,
    pub recorded_at: DateTime<Utc>,
    pub balances_after: BalancesView,
    #[serde(default)]
    pub replayed: bool,
}

impl Deposits {
    /// Money in (`deposit`) or out (`withdrawal`) through the bank's account for `channel`
    /// (`cash`: the teller; `clearing`: the clearing system; `inter_core`: the other core,
    /// for a cross-side transfer).
    #[allow(clippy::too_many_arguments, reason = "a movement's every field, once")]
    pub async fn movement(
        &self,
        kind: &'static str,
        channel: &str,
        request_id: &str,
        account_id: &str,
        amount: &str,
        currency: &str,
        description: &str,
    ) -> Result<MovementView, DepositsError> {
        let channel: &'static str = match channel {
            "" | "cash" => "cash",
            "clearing" => "clearing",
            "inter_core" => "inter_core_clearing",
            other => {
                return Err(DepositsError::invalid(
                    "channel",
                    format!("{other:?}: `cash`, `clearing` or `inter_core`"),
                ));
            }
        };
        let request_id = parse_id("request_id", request_id)?;
        let account_id = parse_id("account_id", account_id)?;
        let mut content = json!({
            "account_id": account_id,
            "amount": amount,
            "currency": currency,
            "description": description,
        });
        if channel != "cash"
            && let Some(fields) = content.as_object_mut()
        {
            fields.insert("channel".to_owned(), json!(channel));
        }
        if let Some(stored) = self.replay(request_id, kind, &content).await? {
            let mut movement: MovementView =
                serde_json::from_value(stored).map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                })?;
            movement.replayed = true;
            return Ok(movement);
        }
        let account = self.load_account(account_id).await?;
        let money = money_of(&account, amount, currency)?;
        match kind {
            "deposit" => account.check_credit()?,
            _ => account.check_debit()?,
        }
        let cash = self.gl_account(account.currency, channel).await?;
        let entry_id = entry_id_for(kind, request_id);
        let (debit, credit) = if kind == "deposit" {
            (cash, account.ledger_account_id)
        } else {
            (account.ledger_account_id, cash)
        };
        let description = if description.is_empty() {
            format!("{kind} {}", request_id)
        } else {
            description.to_owned()
        };
        self.note_in_doubt(request_id, kind, &content, entry_id)
            .await?;
        let moved = self
            .ledger_transfer(
                entry_id,
                debit,
                credit,
                money,
                &description,
                &account,
                false,
                0,
            )
            .await;
        if let Err(error) = moved {
            self.settle_ledger_failure(request_id, &error).await?;
            return Err(error);
        }
        let balances_after = self.balances(&account).await?;
        let movement = MovementView {
            request_id,
            account_id,
            kind: kind.to_owned(),
            amount: money.amount_string(),
            currency: account.currency.code().to_owned(),
            entry_id,
            recorded_at: self.now(),
            balances_after,
            replayed: false,
        };
        let event_type = if kind == "deposit" {
            "deposits.money.deposited"
        } else {
            "deposits.money.withdrawn"
        };
        let event = self.event(
            account_id,
            event_type,
            json!({
                "account_id": account_id,
                "amount": movement.amount,
                "currency": movement.currency,
                "entry_id": entry_id,
                "request_id": request_id,
            }),
        )?;
        self.commit(
            request_id,
            kind,
            &content,
            &movement,
            &[Change::Touch(account_id)],
            &[event],
        )
        .await
    }
}
