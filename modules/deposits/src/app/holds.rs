//! Holds: placing, releasing and capturing them, and marking those whose time ran out as
//! expired.

use chrono::{DateTime, Utc};
use corebank_kernel::Money;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Change, Deposits, money_of, money_text, parse_id};
use crate::domain::error::DepositsError;
use crate::domain::model::{Hold, HoldStatus, entry_id_for};
use crate::store;

/// A hold as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldView {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: String,
    pub currency: String,
    pub reason: String,
    pub status: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub placed_at: DateTime<Utc>,
    #[serde(default)]
    pub replayed: bool,
}

impl HoldView {
    fn of(hold: &Hold) -> HoldView {
        HoldView {
            id: hold.id,
            account_id: hold.account_id,
            amount: money_text(hold.amount, hold.currency),
            currency: hold.currency.code().to_owned(),
            reason: hold.reason.clone(),
            status: hold.status.as_str().to_owned(),
            expires_at: hold.expires_at,
            placed_at: hold.placed_at,
            replayed: false,
        }
    }
}

impl Deposits {
    pub async fn place_hold(
        &self,
        request_id: &str,
        account_id: &str,
        amount: &str,
        currency: &str,
        reason: &str,
        expires_in_seconds: u32,
    ) -> Result<HoldView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let account_id = parse_id("account_id", account_id)?;
        let content = json!({
            "account_id": account_id,
            "amount": amount,
            "currency": currency,
            "reason": reason,
            "expires_in_seconds": expires_in_seconds,
        });
        if let Some(hold) = self
            .replayed_hold(request_id, "place_hold", &content)
            .await?
        {
            return Ok(hold);
        }
        let account = self.load_account(account_id).await?;
        let money = money_of(&account, amount, currency)?;
        account.check_debit()?;
        let suspense = self.gl_account(account.currency, "holds_suspense").await?;
        let id = entry_id_for("hold", request_id);
        let now = self.now();
        self.ledger_transfer(
            id,
            account.ledger_account_id,
            suspense,
            money,
            &format!("hold: {reason}"),
            &account,
            true,
            expires_in_seconds,
        )
        .await?;
        let hold = Hold {
            id,
            account_id,
            amount: money.amount(),
            currency: account.currency,
            reason: reason.to_owned(),
            status: HoldStatus::Held,
            expires_at: (expires_in_seconds > 0)
                .then(|| now + chrono::TimeDelta::seconds(i64::from(expires_in_seconds))),
            placed_at: now,
        };
        let view = HoldView::of(&hold);
        let event = self.event(
            account_id,
            "deposits.hold.placed",
            json!({ "hold_id": id, "account_id": account_id, "amount": view.amount,
                    "currency": view.currency, "reason": reason, "expires_at": view.expires_at }),
        )?;
        self.commit(
            request_id,
            "place_hold",
            &content,
            &view,
            &[Change::InsertHold(hold)],
            &[event],
        )
        .await
    }

    pub async fn release_hold(
        &self,
        request_id: &str,
        hold_id: &str,
    ) -> Result<HoldView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let hold_id = parse_id("hold_id", hold_id)?;
        let content = json!({ "hold_id": hold_id });
        if let Some(hold) = self
            .replayed_hold(request_id, "release_hold", &content)
            .await?
        {
            return Ok(hold);
        }
        let hold = self.held_hold(hold_id).await?;
        let status = self
            .ledger_void(entry_id_for("release", request_id), hold_id)
            .await?;
        let mut released = hold.clone();
        released.status = status;
        let view = HoldView::of(&released);
        let event_type = if status == HoldStatus::Expired {
            "deposits.hold.expired"
        } else {
            "deposits.hold.released"
        };
        let event = self.event(
            hold.account_id,
            event_type,
            json!({ "hold_id": hold_id, "account_id": hold.account_id }),
        )?;
        self.commit(
            request_id,
            "release_hold",
            &content,
            &view,
            &[Change::HoldStatus(hold_id, status)],
            &[event],
        )
        .await
    }

    /// A hold that is still held (refused otherwise, naming its status).
    async fn held_hold(&self, hold_id: Uuid) -> Result<Hold, DepositsError> {
        let hold = self
            .in_tx("deposits_hold", |tx| {
                Box::pin(async move { store::hold(&tx, hold_id).await })
            })
            .await?
            .ok_or_else(|| DepositsError::UnknownHold {
                hold_id: hold_id.to_string(),
            })?;
        if hold.status != HoldStatus::Held {
            return Err(DepositsError::HoldNotHeld {
                hold_id: hold_id.to_string(),
                status: hold.status.as_str().to_owned(),
            });
        }
        Ok(hold)
    }

    /// The earlier answer to a hold request, marked as a replay.
    async fn replayed_hold(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
    ) -> Result<Option<HoldView>, DepositsError> {
        let Some(stored) = self.replay(request_id, kind, content).await? else {
            return Ok(None);
        };
        let mut hold: HoldView =
            serde_json::from_value(stored).map_err(|e| DepositsError::Internal {
                message: e.to_string(),
            })?;
        hold.replayed = true;
        Ok(Some(hold))
    }

    /// Takes a held amount: the hold's pending entry is posted (customer → holds suspense)
    /// and the amount moves on to the bank's account for `destination` (`clearing`, or
    /// `inter_core` for a cross-side transfer).
    pub async fn capture_hold(
        &self,
        request_id: &str,
        hold_id: &str,
        destination: &str,
    ) -> Result<HoldView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let hold_id = parse_id("hold_id", hold_id)?;
        let role = match destination {
            "" | "clearing" => "clearing",
            "inter_core" => "inter_core_clearing",
            _ => {
                return Err(DepositsError::invalid(
                    "destination",
                    "`clearing` or `inter_core`",
                ));
            }
        };
        let destination = if destination.is_empty() {
            "clearing"
        } else {
            destination
        };
        let content = json!({ "hold_id": hold_id, "destination": destination });
        if let Some(hold) = self
            .replayed_hold(request_id, "capture_hold", &content)
            .await?
        {
            return Ok(hold);
        }
        let hold = self.held_hold(hold_id).await?;
        self.ledger_post_pending(entry_id_for("capture", request_id), hold_id)
            .await?;
        let suspense = self.gl_account(hold.currency, "holds_suspense").await?;
        let clearing = self.gl_account(hold.currency, role).await?;
        let money =
            Money::new(hold.amount, hold.currency).map_err(|e| DepositsError::Internal {
                message: e.to_string(),
            })?;
        self.ledger_entry(
            entry_id_for("capture-to", request_id),
            suspense,
            clearing,
            money,
            if role == "clearing" {
                "captured hold sent to clearing"
            } else {
                "captured hold sent to the other core"
            },
            None,
            false,
            0,
        )
        .await?;
        let mut captured = hold.clone();
        captured.status = HoldStatus::Captured;
        let view = HoldView::of(&captured);
        let event = self.event(
            hold.account_id,
            "deposits.hold.captured",
            json!({ "hold_id": hold_id, "account_id": hold.account_id, "amount": view.amount,
                    "currency": view.currency, "destination": destination }),
        )?;
        self.commit(
            request_id,
            "capture_hold",
            &content,
            &view,
            &[
                Change::HoldStatus(hold_id, HoldStatus::Captured),
                Change::Touch(hold.account_id),
            ],
            &[event],
        )
        .await
    }

    /// Holds that lapsed more than `grace` ago and are still `held` here, each with the
    /// ledger's status of its pending entry now (`held`: it still holds funds), the
    /// longest lapsed first, at most `limit` (1 to 1,000; 0: 100).
    pub async fn lapsed_holds(
        &self,
        grace: std::time::Duration,
        limit: u32,
    ) -> Result<(Vec<(HoldView, HoldStatus)>, DateTime<Utc>), DepositsError> {
        let limit = match limit {
            0 => 100,
            1..=1_000 => i64::from(limit),
            _ => return Err(DepositsError::invalid("limit", "1 to 1000 (0: 100)")),
        };
        let read_at = self.now();
        let before = read_at
            - chrono::TimeDelta::from_std(grace)
                .map_err(|_| DepositsError::invalid("grace_seconds", "too large"))?;
        let lapsed: Vec<Hold> = self
            .in_tx("deposits_lapsed_holds", |tx| {
                Box::pin(async move { store::held_lapsed_by(&tx, before, limit).await })
            })
            .await?;
        let mut answered = Vec::with_capacity(lapsed.len());
        for hold in lapsed {
            let ledger = self.ledger_hold_status(hold.id).await?;
            answered.push((HoldView::of(&hold), ledger));
        }
        Ok((answered, read_at))
    }

    /// Marks holds whose time ran out (the ledger expired their pending entries) as
    /// expired here too, with their events: how many.
    pub async fn expire_holds(&self) -> Result<usize, DepositsError> {
        let now = self.now();
        let due: Vec<Hold> = self
            .in_tx("deposits_due_holds", |tx| {
                Box::pin(async move { store::held_lapsed_by(&tx, now, 500).await })
            })
            .await?;
        let mut expired = 0;
        for hold in due {
            if self.ledger_hold_status(hold.id).await? != HoldStatus::Expired {
                continue;
            }
            let event = self.event(
                hold.account_id,
                "deposits.hold.expired",
                json!({ "hold_id": hold.id, "account_id": hold.account_id }),
            )?;
            let outbox = &self.outbox;
            let event = &event;
            self.in_tx("deposits_expire_hold", |tx| {
                Box::pin(async move {
                    let changed = tx
                        .execute(
                            "UPDATE holds SET status = 'expired' WHERE id = $1 AND status = 'held'",
                            &[&hold.id],
                        )
                        .await?;
                    if changed == 1 {
                        outbox.append_one::<DepositsError>(&tx, event).await?;
                    }
                    Ok(())
                })
            })
            .await?;
            expired += 1;
        }
        Ok(expired)
    }
}
