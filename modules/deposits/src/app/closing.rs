//! Closing an account (ADR 0010), which `change_status` (`status`) hands on here once it has
//! refused what cannot close. Closing is a status of its own: the account goes to `closing`
//! (movements are refused from then on), the final interest is posted, the ledger account is
//! frozen, and one ledger sweep pays out whatever it holds, the amount decided inside the
//! ledger's transaction: a deposit racing the close is either in the sweep or refused, never
//! lost.

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::status::changed;
use super::{AccountView, Change, Deposits, money_text};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus};
use crate::store;

pub(super) fn closing_refused(account_id: Uuid, reason: impl Into<String>) -> DepositsError {
    DepositsError::CannotClose {
        account_id: account_id.to_string(),
        reason: reason.into(),
    }
}

/// Where a closing account's money goes, and how the close is recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Payout {
    /// The bank's account it goes to (`cash`, or `migration_clearing` for an account moved
    /// to another core).
    pub role: &'static str,
    /// The purpose the sweep's entry id derives from (with the account's id).
    pub sweep: &'static str,
    pub description: &'static str,
    /// The request kind recorded, and the event.
    pub kind: &'static str,
    pub event: &'static str,
}

/// A customer's close: paid out in cash.
pub(crate) const CLOSE: Payout = Payout {
    role: "cash",
    sweep: "closure-sweep",
    description: "closure payout",
    kind: "close",
    event: "deposits.account.closed",
};

impl Deposits {
    /// Closes an account: checks, `closing`, final interest, freeze, sweep, ledger accounts
    /// closed, `closed`. An account found `closing` (an earlier attempt stopped half way) is
    /// taken on from where it is.
    pub(super) async fn close(
        &self,
        account: Account,
        request_id: Uuid,
        content: &serde_json::Value,
        reason: &str,
    ) -> Result<AccountView, DepositsError> {
        self.close_with(
            account,
            request_id,
            content,
            reason,
            &CLOSE,
            (serde_json::Map::new(), Vec::new()),
        )
        .await
        .map(|(view, _)| view)
    }

    /// [`Deposits::close`], paying out as `payout` says; `extra` is stored with the answer
    /// (with `paid_out`) and its changes are made with the close. Answers the account and
    /// the amount paid out.
    pub(super) async fn close_with(
        &self,
        account: Account,
        request_id: Uuid,
        content: &serde_json::Value,
        reason: &str,
        payout: &Payout,
        extra: (serde_json::Map<String, serde_json::Value>, Vec<Change>),
    ) -> Result<(AccountView, String), DepositsError> {
        let account_id = account.id;
        let resuming = account.status == AccountStatus::Closing;
        if !resuming {
            self.check_closable(&account).await?;
            let from = account.status;
            self.in_tx("deposits_begin_closing", |tx| {
                Box::pin(async move {
                    if store::change_status(&tx, account_id, from, AccountStatus::Closing, None)
                        .await?
                    {
                        Ok(())
                    } else {
                        Err(corebank_db::TxError::Abort(changed(account_id, from)))
                    }
                })
            })
            .await?;
        } else {
            // The final interest posting credits the account: an earlier attempt may have
            // frozen it already. Nothing else can move it (deposits refuses `closing`).
            self.ledger_set_frozen(&account, false).await?;
        }
        let yesterday = self
            .business_today()
            .pred_opt()
            .unwrap_or(account.opened_on);
        self.accrue_account(account_id, yesterday, true).await?;
        let account = self.load_account(account_id).await?;
        self.ledger_set_limit(&account, Decimal::ZERO).await?;
        self.ledger_set_frozen(&account, true).await?;
        let paid_out = match self.ledger_sweep(&account, payout).await? {
            Ok(amount) => amount,
            Err(code) => {
                let why = match code.as_str() {
                    "nothing_to_sweep" => "the account is overdrawn; repay it first".to_owned(),
                    "sweep_source_has_pending" => "open holds; release them first".to_owned(),
                    other => format!("the ledger refused the payout ({other})"),
                };
                self.abandon_close(&account).await?;
                return Err(closing_refused(account_id, why));
            }
        };
        self.ledger_close_accounts(&account).await?;
        let now = self.now();
        let paid_out = money_text(paid_out, account.currency);
        let event = self.event(
            account_id,
            payout.event,
            json!({ "account_id": account_id, "reason": reason,
                    "paid_out": paid_out, "currency": account.currency.code(),
                    "at": now.to_rfc3339_opts(SecondsFormat::Micros, true) }),
        )?;
        let (mut answer, mut changes) = extra;
        answer.insert("account_id".to_owned(), json!(account_id));
        answer.insert("paid_out".to_owned(), json!(paid_out));
        changes.push(Change::Status(
            account_id,
            AccountStatus::Closing,
            AccountStatus::Closed,
            Some(now),
        ));
        let stored: serde_json::Value = self
            .commit(
                request_id,
                payout.kind,
                content,
                &serde_json::Value::Object(answer),
                &changes,
                &[event],
            )
            .await?;
        let paid_out = stored["paid_out"].as_str().unwrap_or_default().to_owned();
        Ok((self.account(account_id).await?, paid_out))
    }

    /// What must hold before closing starts: no open holds, no debt.
    async fn check_closable(&self, account: &Account) -> Result<(), DepositsError> {
        let account_id = account.id;
        let holds = self
            .in_tx("deposits_open_holds", |tx| {
                Box::pin(async move { store::open_holds(&tx, account_id).await })
            })
            .await?;
        if !holds.is_empty() {
            return Err(closing_refused(
                account_id,
                format!("{} open hold(s); release them first", holds.len()),
            ));
        }
        let balances = self.balances(account).await?;
        if balances.posted.starts_with('-') {
            return Err(closing_refused(
                account_id,
                format!(
                    "the account is overdrawn ({} {}); repay it first",
                    balances.posted,
                    account.currency.code()
                ),
            ));
        }
        Ok(())
    }

    /// Gives a `closing` account back when the ledger refused its payout (a hold or a debt
    /// that arrived while closing began): the ledger first (limit, freeze), then the status,
    /// so a crash in between leaves it `closing`, which a later close takes on.
    async fn abandon_close(&self, account: &Account) -> Result<(), DepositsError> {
        let product = self
            .product(&account.product_code, Some(account.product_version))
            .await?;
        self.ledger_set_limit(account, product.ledger_limit_amount())
            .await?;
        self.ledger_set_frozen(account, false).await?;
        let account_id = account.id;
        self.in_tx("deposits_abandon_closing", |tx| {
            Box::pin(async move {
                store::change_status(
                    &tx,
                    account_id,
                    AccountStatus::Closing,
                    AccountStatus::Active,
                    None,
                )
                .await
            })
        })
        .await?;
        tracing::warn!(account.id = %account_id, "closing abandoned: the ledger refused the payout");
        Ok(())
    }
}
