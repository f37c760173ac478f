//! Requests in doubt (ADR 0010): a deposit, withdrawal or transfer notes itself in
//! `requests_in_doubt` before it reaches the ledger and is forgotten with its answer (same
//! transaction) or on a definite refusal. If the process dies in between, the scheduled job
//! settles it on its own once it is older than the in-doubt window: it asks the ledger for
//! the entry (its id derives from the request id) and completes the request (answer and
//! event) when the entry exists, or forgets it and gives back its daily-limit reservation
//! when it does not. The client's retry is no longer needed for the event to be written.

use corebank_kernel::Money;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Change, Deposits, MovementView, TransferView, parse_currency, parse_money};
use crate::domain::error::DepositsError;
use crate::store;

/// Requests settled per pass of the scheduled job, at most.
const IN_DOUBT_BATCH_MAX: i64 = 100;

/// Whether a failed ledger call may still have written its entry.
pub(super) fn outcome_unknown(error: &DepositsError) -> bool {
    match error {
        DepositsError::Unavailable { .. } | DepositsError::Internal { .. } => true,
        DepositsError::Ledger { code, .. } => code == "outcome_unknown",
        _ => false,
    }
}

fn field<'a>(content: &'a Value, name: &str) -> Result<&'a str, DepositsError> {
    content[name]
        .as_str()
        .ok_or_else(|| DepositsError::Internal {
            message: format!("a request in doubt has no {name}"),
        })
}

fn uuid_field(content: &Value, name: &str) -> Result<Uuid, DepositsError> {
    field(content, name)?
        .parse()
        .map_err(|_| DepositsError::Internal {
            message: format!("a request in doubt has a bad {name}"),
        })
}

impl Deposits {
    /// Sets how old an unanswered request must be before the scheduled job settles it.
    pub fn with_in_doubt_window(mut self, window: std::time::Duration) -> Deposits {
        self.in_doubt_window =
            chrono::TimeDelta::from_std(window).unwrap_or(chrono::TimeDelta::minutes(5));
        self
    }

    /// Sets the bank's business time zone (`COREBANK_BUSINESS_TZ`).
    pub fn with_business_tz(mut self, business_tz: chrono_tz::Tz) -> Deposits {
        self.business_tz = business_tz;
        self
    }

    /// Today in the bank's business time zone: the day of daily limits, of opening, and the
    /// day interest is accrued up to (the day before).
    pub fn business_today(&self) -> chrono::NaiveDate {
        self.now().with_timezone(&self.business_tz).date_naive()
    }

    /// Notes a request about to reach the ledger.
    pub(super) async fn note_in_doubt(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
        entry_id: Uuid,
    ) -> Result<(), DepositsError> {
        let now = self.now();
        self.in_tx("deposits_note_in_doubt", |tx| {
            Box::pin(async move {
                store::note_in_doubt(&tx, request_id, kind, content, entry_id, now).await
            })
        })
        .await
    }

    /// After a ledger refusal: a definite one takes the request out of doubt (an unknown
    /// outcome leaves it for the client's retry or the scheduled job).
    pub(super) async fn settle_ledger_failure(
        &self,
        request_id: Uuid,
        error: &DepositsError,
    ) -> Result<(), DepositsError> {
        if outcome_unknown(error) {
            return Ok(());
        }
        self.in_tx("deposits_forget_in_doubt", |tx| {
            Box::pin(async move { store::forget_in_doubt(&tx, request_id).await })
        })
        .await
    }

    /// Settles the requests in doubt for longer than the window: how many.
    pub async fn recover_in_doubt(&self) -> Result<usize, DepositsError> {
        let before = self.now() - self.in_doubt_window;
        let due = self
            .in_tx("deposits_in_doubt", |tx| {
                Box::pin(
                    async move { store::in_doubt_before(&tx, before, IN_DOUBT_BATCH_MAX).await },
                )
            })
            .await?;
        let mut settled = 0;
        for (request_id, kind, content, entry_id) in due {
            match self
                .settle_in_doubt(request_id, &kind, &content, entry_id)
                .await
            {
                Ok(()) => settled += 1,
                Err(error) => {
                    tracing::warn!(request.id = %request_id, request.kind = %kind, %error, "a request in doubt could not be settled; the next run tries again");
                }
            }
        }
        Ok(settled)
    }

    async fn settle_in_doubt(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
        entry_id: Uuid,
    ) -> Result<(), DepositsError> {
        if self.ledger_entry_of(entry_id).await?.is_some() {
            tracing::info!(request.id = %request_id, request.kind = %kind, "completing a request whose ledger entry exists");
            self.complete_in_doubt(request_id, kind, content, entry_id)
                .await
        } else {
            tracing::info!(request.id = %request_id, request.kind = %kind, "failing a request whose ledger entry does not exist");
            self.in_tx("deposits_fail_in_doubt", |tx| {
                Box::pin(async move {
                    store::release_transfer(&tx, request_id).await?;
                    store::forget_in_doubt(&tx, request_id).await
                })
            })
            .await
        }
    }

    /// Writes the answer and event the request would have written.
    async fn complete_in_doubt(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
        entry_id: Uuid,
    ) -> Result<(), DepositsError> {
        let currency = parse_currency(field(content, "currency")?)?;
        let money: Money = parse_money("amount", field(content, "amount")?, currency)?;
        let payload_amount = money.amount_string();
        if kind == "transfer" {
            let from_id = uuid_field(content, "from_account_id")?;
            let to_id = uuid_field(content, "to_account_id")?;
            let from = self.load_account(from_id).await?;
            let view = TransferView {
                request_id,
                from_account_id: from_id,
                to_account_id: to_id,
                amount: payload_amount,
                currency: currency.code().to_owned(),
                entry_id,
                recorded_at: self.now(),
                balances_after: self.balances(&from).await?,
                replayed: false,
            };
            self.commit_transfer(content, &view).await?;
            return Ok(());
        }
        let (kind, event_type): (&'static str, &str) = match kind {
            "deposit" => ("deposit", "deposits.money.deposited"),
            "withdrawal" => ("withdrawal", "deposits.money.withdrawn"),
            other => {
                return Err(DepositsError::Internal {
                    message: format!("a request in doubt of kind {other:?}"),
                });
            }
        };
        let account_id = uuid_field(content, "account_id")?;
        let account = self.load_account(account_id).await?;
        let movement = MovementView {
            request_id,
            account_id,
            kind: kind.to_owned(),
            amount: payload_amount,
            currency: currency.code().to_owned(),
            entry_id,
            recorded_at: self.now(),
            balances_after: self.balances(&account).await?,
            replayed: false,
        };
        let event = self.event(
            account_id,
            event_type,
            json!({
                "account_id": account_id, "amount": movement.amount,
                "currency": movement.currency, "entry_id": entry_id, "request_id": request_id,
            }),
        )?;
        let _: MovementView = self
            .commit(
                request_id,
                kind,
                content,
                &movement,
                &[Change::Touch(account_id)],
                &[event],
            )
            .await?;
        Ok(())
    }
}
