//! Status changes (ADR 0010): freezing, unfreezing, closing (whose steps are in `closing`)
//! and dormancy. Every status change is conditional: it moves the account from the status
//! the caller read, and refuses with `account_status_changed` when another change got there
//! first, so a freeze and a close racing each other cannot both win. The ledger follows the
//! deposits status, never the other way round, and is never asked to reopen a closed ledger
//! account.

use chrono::SecondsFormat;
use corebank_db::TxError;
use serde_json::json;
use uuid::Uuid;

use super::closing::closing_refused;
use super::{AccountView, Change, Deposits, parse_id};
use crate::domain::error::DepositsError;
use crate::domain::model::AccountStatus;
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

    /// Active accounts without customer activity for their product's dormancy period become
    /// dormant (with an event each): how many.
    pub async fn mark_dormant(&self) -> Result<usize, DepositsError> {
        let now = self.now();
        let products = self
            .in_tx("deposits_dormancy_products", |tx| {
                Box::pin(async move { store::products_with_dormancy(&tx).await })
            })
            .await?;
        let mut marked = 0;
        for product in products {
            let before = now - chrono::TimeDelta::days(i64::from(product.dormancy_days));
            let outbox = &self.outbox;
            let product = &product;
            let this = self;
            marked += self
                .in_tx("deposits_mark_dormant", |tx| {
                    Box::pin(async move {
                        let ids =
                            store::mark_dormant(&tx, &product.code, product.version, before).await?;
                        let events = ids
                            .iter()
                            .map(|id| {
                                this.event(
                                    *id,
                                    "deposits.account.dormant",
                                    json!({ "account_id": id, "dormancy_days": product.dormancy_days }),
                                )
                            })
                            .collect::<Result<Vec<_>, DepositsError>>()
                            .map_err(TxError::Abort)?;
                        outbox.append::<DepositsError>(&tx, &events).await?;
                        Ok(ids.len())
                    })
                })
                .await?;
        }
        Ok(marked)
    }
}
