//! Opening accounts and reading them: one account, a customer's accounts, a statement.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::{Change, Deposits, parse_id};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus, entry_id_for};
use crate::store;

/// An account's balances, from the ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancesView {
    pub posted: String,
    pub held: String,
    pub available: String,
    pub accrued_interest: String,
}

/// An account as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountView {
    pub id: Uuid,
    pub customer_id: String,
    pub product_code: String,
    pub product_version: i64,
    pub currency: String,
    pub status: String,
    pub balances: BalancesView,
    pub opened_on: NaiveDate,
    pub last_customer_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    pub accrued_through: NaiveDate,
}

/// A statement line.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementLineView {
    pub entry_id: String,
    pub recorded_at: String,
    pub value_date: String,
    pub direction: String,
    pub bucket: String,
    pub amount: String,
    pub description: String,
    pub running_balance: String,
}

/// A page of an account's statement.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementView {
    pub account_id: Uuid,
    pub currency: String,
    pub lines: Vec<StatementLineView>,
    pub next_cursor: String,
}

impl Deposits {
    pub(crate) async fn load_account(&self, id: Uuid) -> Result<Account, DepositsError> {
        self.in_tx("deposits_account", |tx| {
            Box::pin(async move { store::account(&tx, id).await })
        })
        .await?
        .ok_or_else(|| DepositsError::UnknownAccount {
            account_id: id.to_string(),
        })
    }

    /// Opens an account for a customer on the newest version of a product.
    pub async fn open_account(
        &self,
        request_id: &str,
        customer_id: &str,
        product_code: &str,
        opened_on: Option<NaiveDate>,
    ) -> Result<AccountView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        if customer_id.trim().is_empty() || customer_id.len() > 128 {
            return Err(DepositsError::invalid("customer_id", "1-128 characters"));
        }
        let content = json!({
            "customer_id": customer_id,
            "product_code": product_code,
            "opened_on": opened_on,
        });
        if let Some(stored) = self.replay(request_id, "open_account", &content).await? {
            let id: Uuid = serde_json::from_value(stored["account_id"].clone()).map_err(|e| {
                DepositsError::Internal {
                    message: e.to_string(),
                }
            })?;
            return self.account(id).await;
        }
        let product = self.pinned_product(request_id, product_code).await?;
        let now = self.now();
        let opened_on = opened_on.unwrap_or_else(|| self.business_today());
        let id = entry_id_for("account", request_id);
        let account = Account {
            id,
            customer_id: customer_id.to_owned(),
            product_code: product.code.clone(),
            product_version: product.version,
            currency: product.currency,
            status: AccountStatus::Active,
            ledger_account_id: entry_id_for("ledger-account", id),
            accrued_account_id: entry_id_for("accrued-account", id),
            opened_on,
            last_customer_activity_at: now,
            closed_at: None,
            accrued_through: opened_on.pred_opt().unwrap_or(opened_on),
            period_precise: Decimal::ZERO,
            period_posted: Decimal::ZERO,
            created_at: now,
        };
        self.open_ledger_accounts(&account, &product).await?;
        let event = self.event(
            id,
            "deposits.account.opened",
            json!({
                "account_id": id,
                "customer_id": customer_id,
                "product_code": product.code,
                "product_version": product.version,
                "currency": product.currency.code(),
                "opened_on": opened_on,
            }),
        )?;
        self.commit(
            request_id,
            "open_account",
            &content,
            &json!({ "account_id": id }),
            &[Change::InsertAccount(Box::new(account))],
            &[event],
        )
        .await?;
        self.account(id).await
    }

    /// An account with its balances.
    pub async fn account(&self, id: Uuid) -> Result<AccountView, DepositsError> {
        let account = self.load_account(id).await?;
        self.view(&account).await
    }

    pub async fn account_by_text(&self, id: &str) -> Result<AccountView, DepositsError> {
        self.account(parse_id("account_id", id)?).await
    }

    pub async fn accounts_of(&self, customer_id: &str) -> Result<Vec<AccountView>, DepositsError> {
        let accounts = self
            .in_tx("deposits_accounts_of", |tx| {
                Box::pin(async move { store::accounts_of(&tx, customer_id).await })
            })
            .await?;
        self.views(&accounts.iter().collect::<Vec<_>>()).await
    }

    /// Several accounts by id (at most [`ACCOUNTS_READ_MAX`]), in the order asked.
    pub async fn accounts_by_text(
        &self,
        ids: &[String],
    ) -> Result<Vec<AccountView>, DepositsError> {
        if ids.len() > ACCOUNTS_READ_MAX {
            return Err(DepositsError::invalid(
                "account_ids",
                format!("at most {ACCOUNTS_READ_MAX} ids"),
            ));
        }
        let ids = ids
            .iter()
            .enumerate()
            .map(|(index, id)| parse_id(&format!("account_ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = &ids;
        let found = self
            .in_tx("deposits_accounts", |tx| {
                Box::pin(async move { store::accounts(&tx, ids).await })
            })
            .await?;
        let accounts = ids
            .iter()
            .map(|id| {
                found.get(id).ok_or_else(|| DepositsError::UnknownAccount {
                    account_id: id.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.views(&accounts).await
    }

    pub(super) async fn view(&self, account: &Account) -> Result<AccountView, DepositsError> {
        let balances = self.balances(account).await?;
        Ok(account_view(account, balances))
    }

    /// The views of several accounts, in order, their balances from one read of the ledger.
    pub(super) async fn views(
        &self,
        accounts: &[&Account],
    ) -> Result<Vec<AccountView>, DepositsError> {
        let balances = self.balances_of_all(accounts).await?;
        Ok(accounts
            .iter()
            .zip(balances)
            .map(|(account, balances)| account_view(account, balances))
            .collect())
    }

    pub async fn statement(
        &self,
        account_id: &str,
        cursor: &str,
        page_size: u32,
    ) -> Result<StatementView, DepositsError> {
        let account = self
            .load_account(parse_id("account_id", account_id)?)
            .await?;
        self.ledger_statement(&account, cursor, page_size).await
    }

    /// The product version an `OpenAccount` request opens on: the newest when the request is
    /// first seen, pinned before anything reaches the ledger, so a retry after a crash opens
    /// the same account on the same version even when a newer one was published meanwhile.
    pub(super) async fn pinned_product(
        &self,
        request_id: Uuid,
        product_code: &str,
    ) -> Result<crate::domain::model::Product, DepositsError> {
        let newest = self.product(product_code, None).await?;
        let wanted = [(request_id, product_code.to_owned(), newest.version)];
        let pin =
            self.pin_products(&wanted)
                .await?
                .pop()
                .ok_or_else(|| DepositsError::Internal {
                    message: "the product pin answered nothing".to_owned(),
                })?;
        self.pinned_version(request_id, product_code, newest, pin)
            .await
    }

    /// The product a request opens on, from its pin (code, version): the newest when it was
    /// pinned to it; refused when the request was pinned to another product before.
    pub(super) async fn pinned_version(
        &self,
        request_id: Uuid,
        product_code: &str,
        newest: crate::domain::model::Product,
        (pinned_code, pinned): (String, i64),
    ) -> Result<crate::domain::model::Product, DepositsError> {
        if pinned_code != product_code {
            return Err(DepositsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field: "product_code".to_owned(),
            });
        }
        if pinned == newest.version {
            return Ok(newest);
        }
        self.product(product_code, Some(pinned)).await
    }

    /// Pins each request to a product version (the one given, unless the request was pinned
    /// before), in one transaction; answers each request's pinned (code, version).
    pub(super) async fn pin_products(
        &self,
        wanted: &[(Uuid, String, i64)],
    ) -> Result<Vec<(String, i64)>, DepositsError> {
        if wanted.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.now();
        self.in_tx("deposits_pin_product", |tx| {
            Box::pin(async move {
                let mut pins = Vec::with_capacity(wanted.len());
                for (request_id, code, version) in wanted {
                    pins.push(
                        store::pin_product_version(&tx, *request_id, code, *version, now).await?,
                    );
                }
                Ok(pins)
            })
        })
        .await
    }
}

/// Accounts one read by id may ask for at most.
pub const ACCOUNTS_READ_MAX: usize = 1_000;

/// An account as answered, with its balances.
fn account_view(account: &Account, balances: BalancesView) -> AccountView {
    AccountView {
        id: account.id,
        customer_id: account.customer_id.clone(),
        product_code: account.product_code.clone(),
        product_version: account.product_version,
        currency: account.currency.code().to_owned(),
        status: account.status.as_str().to_owned(),
        balances,
        opened_on: account.opened_on,
        last_customer_activity_at: account.last_customer_activity_at,
        closed_at: account.closed_at,
        accrued_through: account.accrued_through,
    }
}
