//! Freezing, unfreezing and closing (ADR 0010). Every status change is conditional: it
//! moves the account from the status the caller read, and refuses with
//! `account_status_changed` when another change got there first, so a freeze and a close
//! racing each other cannot both win. The ledger follows the deposits status, never the
//! other way round, and is never asked to reopen a closed ledger account.
//!
//! Closing is a status of its own: the account goes to `closing` (movements are refused
//! from then on), the final interest is posted, the ledger account is frozen, and one
//! ledger sweep pays out whatever it holds, the amount decided inside the ledger's
//! transaction: a deposit racing the close is either in the sweep or refused, never lost.

use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::{AccountView, Change, Deposits, money_text, parse_id, tx_error};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus};
use crate::store;

/// How often the ledger's freeze is set again when the deposits status moved while it was
/// being set, at most.
const FREEZE_SYNC_ROUNDS_MAX: usize = 3;

/// The refusal of a status change whose expected status was no longer there.
pub(super) fn changed(account_id: Uuid, expected: AccountStatus) -> DepositsError {
    DepositsError::StatusChanged {
        account_id: account_id.to_string(),
        expected: expected.as_str().to_owned(),
    }
}

fn closing_refused(account_id: Uuid, reason: impl Into<String>) -> DepositsError {
    DepositsError::CannotClose {
        account_id: account_id.to_string(),
        reason: reason.into(),
    }
}

impl Deposits {
    /// `freeze`, `unfreeze` or `close`.
    pub async fn change_status(
        &self,
        action: &'static str,
        request_id: &str,
        account_id: &str,
        reason: &str,
    ) -> Result<AccountView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let account_id = parse_id("account_id", account_id)?;
        if !matches!(action, "freeze" | "unfreeze" | "close") {
            return Err(DepositsError::invalid(
                "action",
                "`freeze`, `unfreeze` or `close`",
            ));
        }
        let content = json!({ "account_id": account_id, "reason": reason });
        if self.replay(request_id, action, &content).await?.is_some() {
            // A retry completes what the first attempt may have left half done: the ledger's
            // freeze follows the status recorded here.
            if action != "close" {
                self.sync_ledger_freeze(account_id).await?;
            }
            return self.account(account_id).await;
        }
        let account = self.load_account(account_id).await?;
        let (from, to, event_type) = match (action, account.status) {
            (_, AccountStatus::Closed) => {
                return Err(DepositsError::AccountClosed {
                    account_id: account_id.to_string(),
                });
            }
            ("close", AccountStatus::Frozen) => {
                return Err(closing_refused(account_id, "the account is frozen"));
            }
            ("close", _) => return self.close(account, request_id, &content, reason).await,
            (_, AccountStatus::Closing)
            | ("freeze", AccountStatus::Frozen)
            | ("unfreeze", AccountStatus::Active | AccountStatus::Dormant) => {
                return Err(DepositsError::InvalidStatus {
                    status: account.status.as_str().to_owned(),
                    message: format!("cannot {action} it"),
                });
            }
            ("freeze", from) => (from, AccountStatus::Frozen, "deposits.account.frozen"),
            (_, from) => (from, AccountStatus::Active, "deposits.account.unfrozen"),
        };
        let event = self.event(
            account_id,
            event_type,
            json!({ "account_id": account_id, "reason": reason,
                    "at": self.now().to_rfc3339_opts(SecondsFormat::Micros, true) }),
        )?;
        self.commit(
            request_id,
            action,
            &content,
            &json!({ "account_id": account_id }),
            &[Change::Status(account_id, from, to, None)],
            &[event],
        )
        .await?;
        self.sync_ledger_freeze(account_id).await?;
        self.account(account_id).await
    }

    /// Makes the ledger account's freeze match the deposits status (frozen or closing:
    /// frozen; otherwise not), reading the status again afterwards in case it moved
    /// meanwhile. A closed account is left alone.
    async fn sync_ledger_freeze(&self, account_id: Uuid) -> Result<(), DepositsError> {
        let mut account = self.load_account(account_id).await?;
        for _ in 0..FREEZE_SYNC_ROUNDS_MAX {
            if account.status == AccountStatus::Closed {
                return Ok(());
            }
            let frozen = matches!(
                account.status,
                AccountStatus::Frozen | AccountStatus::Closing
            );
            self.ledger_set_frozen(&account, frozen).await?;
            let now = self.load_account(account_id).await?;
            if now.status == account.status {
                return Ok(());
            }
            account = now;
        }
        tracing::warn!(account.id = %account_id, "the account's status kept changing while its ledger freeze was set");
        Ok(())
    }

    /// Closes an account: checks, `closing`, final interest, freeze, sweep, ledger accounts
    /// closed, `closed`. An account found `closing` (an earlier attempt stopped half way) is
    /// taken on from where it is.
    async fn close(
        &self,
        account: Account,
        request_id: Uuid,
        content: &serde_json::Value,
        reason: &str,
    ) -> Result<AccountView, DepositsError> {
        let account_id = account.id;
        let resuming = account.status == AccountStatus::Closing;
        if !resuming {
            self.check_closable(&account).await?;
            let from = account.status;
            self.db
                .run_tx("deposits_begin_closing", |tx| {
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
                .await
                .map_err(tx_error)?;
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
        let paid_out = match self.ledger_sweep(&account).await? {
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
            "deposits.account.closed",
            json!({ "account_id": account_id, "reason": reason,
                    "paid_out": paid_out, "currency": account.currency.code(),
                    "at": now.to_rfc3339_opts(SecondsFormat::Micros, true) }),
        )?;
        self.commit(
            request_id,
            "close",
            content,
            &json!({ "account_id": account_id, "paid_out": paid_out }),
            &[Change::Status(
                account_id,
                AccountStatus::Closing,
                AccountStatus::Closed,
                Some(now),
            )],
            &[event],
        )
        .await?;
        self.account(account_id).await
    }

    /// What must hold before closing starts: no open holds, no debt.
    async fn check_closable(&self, account: &Account) -> Result<(), DepositsError> {
        let account_id = account.id;
        let holds = self
            .db
            .run_tx("deposits_open_holds", |tx| {
                Box::pin(async move { store::open_holds(&tx, account_id).await })
            })
            .await
            .map_err(tx_error)?;
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
        self.db
            .run_tx("deposits_abandon_closing", |tx| {
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
            .await
            .map_err(tx_error)?;
        tracing::warn!(account.id = %account_id, "closing abandoned: the ledger refused the payout");
        Ok(())
    }
}

impl Deposits {
    /// The product version an `OpenAccount` request opens on: the newest when the request is
    /// first seen, pinned before anything reaches the ledger, so a retry after a crash opens
    /// the same account on the same version even when a newer one was published meanwhile.
    pub(super) async fn pinned_product(
        &self,
        request_id: Uuid,
        product_code: &str,
    ) -> Result<crate::domain::model::Product, DepositsError> {
        let newest = self.product(product_code, None).await?;
        let now = self.now();
        let chosen = newest.version;
        let (pinned_code, pinned) = self
            .db
            .run_tx("deposits_pin_product", |tx| {
                Box::pin(async move {
                    store::pin_product_version(&tx, request_id, product_code, chosen, now).await
                })
            })
            .await
            .map_err(tx_error)?;
        if pinned_code != product_code {
            return Err(DepositsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field: "product_code".to_owned(),
            });
        }
        if pinned == chosen {
            return Ok(newest);
        }
        self.product(product_code, Some(pinned)).await
    }
}
