//! The deposits use cases. Money moves in the ledger (over its gRPC contract, with entry ids
//! derived from the request ids, so a retried request writes the same entry once); this
//! module's own schema keeps products, accounts, holds, the accrual position, the answers to
//! requests (idempotency) and the events (outbox), each change in one transaction.
//!
//! A mutating request is: replay check → ledger call (idempotent) → one local transaction
//! that records the answer, the local change and its event. If the process dies between the
//! ledger call and the local transaction, the client's retry with the same request id
//! finds the ledger entry already there (replayed) and completes the local part.

mod accrual;
mod ledger;
mod recovery;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::{Db, TxError};
use corebank_kernel::{Clock, Currency, Money};
use corebank_outbox::{AggregateRef, NewEvent, Outbox, SchemaName};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tonic::transport::Channel;
use uuid::Uuid;

pub use accrual::AccrualReport;

use crate::domain::error::DepositsError;
use crate::domain::interest::{DayCount, PostingFrequency, RateTier};
use crate::domain::model::{
    Account, AccountStatus, Hold, HoldStatus, Product, ProductKind, entry_id_for,
};
use crate::store;

/// The aggregate type of deposit accounts' events.
pub const ACCOUNT_AGGREGATE: &str = "deposit_account";

/// A product as a client asks for it.
#[derive(Debug, Clone)]
pub struct NewProduct {
    pub code: String,
    pub name: String,
    pub kind: String,
    pub currency: String,
    pub rate_tiers: Vec<(String, String)>,
    pub day_count: String,
    pub posting_frequency: String,
    pub minimum_balance: String,
    pub overdraft_limit: String,
    pub overdraft_rate: String,
    pub dormancy_days: u32,
    pub per_transfer_limit: String,
    pub daily_transfer_limit: String,
}

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

/// A local change made together with a request's answer and event.
enum Change {
    InsertAccount(Box<Account>),
    Touch(Uuid),
    InsertHold(Hold),
    HoldStatus(Uuid, HoldStatus),
    /// Account, the status the caller saw, the new status, when it closed: refused with
    /// `account_status_changed` when the account is no longer in the status seen.
    Status(Uuid, AccountStatus, AccountStatus, Option<DateTime<Utc>>),
}

/// The deposits module.
#[derive(Clone)]
pub struct Deposits {
    db: Db,
    ledger: LedgerClient<Channel>,
    outbox: Outbox,
    clock: Arc<dyn Clock>,
    gl: Arc<Mutex<HashMap<(Currency, &'static str), Uuid>>>,
    /// Product versions never change once written, so they are kept once read.
    product_versions: Arc<Mutex<HashMap<(String, i64), Product>>>,
    /// How old an unanswered request must be before the job settles it (`recovery`).
    in_doubt_window: chrono::TimeDelta,
    /// Business days start at midnight here (`COREBANK_BUSINESS_TZ`).
    business_tz: chrono_tz::Tz,
}

impl std::fmt::Debug for Deposits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deposits").finish_non_exhaustive()
    }
}

pub(crate) fn money_text(amount: Decimal, currency: Currency) -> String {
    let mut rounded = amount.round_dp(currency.minor_units());
    rounded.rescale(currency.minor_units());
    rounded.to_string()
}

fn parse_money(field: &str, amount: &str, currency: Currency) -> Result<Money, DepositsError> {
    Money::parse(amount, currency).map_err(|e| DepositsError::invalid(field, e.to_string()))
}

fn parse_currency(code: &str) -> Result<Currency, DepositsError> {
    Currency::from_code(code).map_err(|e| DepositsError::invalid("currency", e.to_string()))
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, DepositsError> {
    // The kernel's rule, as the legacy adapter applies it: a random (version 4) UUID.
    corebank_kernel::id::parse_v4("id", id)
        .map_err(|e| DepositsError::invalid(field, e.to_string()))
}

fn optional_amount(
    field: &str,
    text: &str,
    currency: Currency,
) -> Result<Option<Decimal>, DepositsError> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    Ok(Some(parse_money(field, text, currency)?.amount()))
}

fn decimal(field: &str, text: &str) -> Result<Decimal, DepositsError> {
    if text.trim().is_empty() {
        return Ok(Decimal::ZERO);
    }
    text.parse::<Decimal>()
        .map_err(|_| DepositsError::invalid(field, format!("{text:?} is not a decimal number")))
}

fn tx_error(error: TxError<DepositsError>) -> DepositsError {
    match error {
        TxError::Abort(error) => error,
        TxError::Db(error) => error.into(),
    }
}

/// The first field of `stored` that `content` differs in.
fn first_difference(stored: &Value, content: &Value) -> Option<String> {
    let (Some(stored), Some(content)) = (stored.as_object(), content.as_object()) else {
        return (stored != content).then(|| "content".to_owned());
    };
    content
        .iter()
        .find(|(key, _)| !store::same_field(stored, content, key))
        .map(|(key, _)| key.clone())
        .or_else(|| {
            stored
                .keys()
                .find(|key| !content.contains_key(*key))
                .cloned()
        })
}

impl Deposits {
    pub fn new(
        db: Db,
        ledger: LedgerClient<Channel>,
        clock: Arc<dyn Clock>,
    ) -> Result<Deposits, DepositsError> {
        Ok(Deposits {
            db,
            ledger,
            outbox: Outbox::new(SchemaName::new("deposits")?),
            clock,
            gl: Arc::new(Mutex::new(HashMap::new())),
            product_versions: Arc::new(Mutex::new(HashMap::new())),
            in_doubt_window: chrono::TimeDelta::minutes(5),
            business_tz: chrono_tz::Tz::UTC,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // ----- products -----

    /// A new product, or the next version of its code.
    pub async fn create_product(&self, new: NewProduct) -> Result<Product, DepositsError> {
        let currency = parse_currency(&new.currency)?;
        let kind = ProductKind::parse(&new.kind)
            .ok_or_else(|| DepositsError::invalid("kind", "current or savings"))?;
        let rate_tiers = if new.rate_tiers.is_empty() {
            vec![RateTier {
                from_balance: Decimal::ZERO,
                annual_rate: Decimal::ZERO,
            }]
        } else {
            new.rate_tiers
                .iter()
                .map(|(from, rate)| {
                    Ok(RateTier {
                        from_balance: decimal("rate_tiers.from_balance", from)?,
                        annual_rate: decimal("rate_tiers.annual_rate", rate)?,
                    })
                })
                .collect::<Result<Vec<_>, DepositsError>>()?
        };
        let mut product = Product {
            code: new.code,
            version: 0,
            name: new.name,
            kind,
            currency,
            rate_tiers,
            day_count: DayCount::parse(&new.day_count)
                .map_err(|e| DepositsError::invalid("day_count", e.to_string()))?,
            posting_frequency: PostingFrequency::parse(&new.posting_frequency)
                .map_err(|e| DepositsError::invalid("posting_frequency", e.to_string()))?,
            minimum_balance: optional_amount("minimum_balance", &new.minimum_balance, currency)?
                .unwrap_or_default(),
            overdraft_limit: optional_amount("overdraft_limit", &new.overdraft_limit, currency)?
                .unwrap_or_default(),
            overdraft_rate: decimal("overdraft_rate", &new.overdraft_rate)?,
            dormancy_days: new.dormancy_days,
            per_transfer_limit: optional_amount(
                "per_transfer_limit",
                &new.per_transfer_limit,
                currency,
            )?,
            daily_transfer_limit: optional_amount(
                "daily_transfer_limit",
                &new.daily_transfer_limit,
                currency,
            )?,
            created_at: self.now(),
        };
        product.validate()?;
        let product_ref = &product;
        let version = self
            .db
            .run_tx("deposits_create_product", |tx| {
                Box::pin(async move { store::insert_product(&tx, product_ref).await })
            })
            .await
            .map_err(tx_error)?;
        product.version = version;
        Ok(product)
    }

    pub async fn product(
        &self,
        code: &str,
        version: Option<i64>,
    ) -> Result<Product, DepositsError> {
        if let Some(version) = version
            && let Some(known) = self
                .product_versions
                .lock()
                .ok()
                .and_then(|known| known.get(&(code.to_owned(), version)).cloned())
        {
            return Ok(known);
        }
        let product = self
            .db
            .run_tx("deposits_product", |tx| {
                Box::pin(async move { store::product(&tx, code, version).await })
            })
            .await
            .map_err(tx_error)?
            .ok_or_else(|| DepositsError::UnknownProduct {
                code: code.to_owned(),
            })?;
        if let Ok(mut known) = self.product_versions.lock() {
            known.insert((product.code.clone(), product.version), product.clone());
        }
        Ok(product)
    }

    pub async fn products(&self) -> Result<Vec<Product>, DepositsError> {
        self.db
            .run_tx("deposits_products", |tx| {
                Box::pin(async move { store::latest_products(&tx).await })
            })
            .await
            .map_err(tx_error)
    }

    // ----- requests -----

    /// The stored answer to `request_id`, if it was made before with the same content.
    async fn replay(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
    ) -> Result<Option<Value>, DepositsError> {
        let stored = self
            .db
            .run_tx("deposits_replay", |tx| {
                Box::pin(async move { store::request(&tx, request_id).await })
            })
            .await
            .map_err(tx_error)?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.kind != kind {
            return Err(DepositsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field: "kind".to_owned(),
            });
        }
        if let Some(field) = first_difference(&stored.content, content) {
            return Err(DepositsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field,
            });
        }
        Ok(Some(stored.response))
    }

    /// Records the answer, the local changes and the events of a request in one
    /// transaction. When the request id was recorded meanwhile, the stored answer wins.
    async fn commit<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
        answer: &T,
        changes: &[Change],
        events: &[NewEvent],
    ) -> Result<T, DepositsError> {
        let now = self.now();
        let outbox = &self.outbox;
        let response = &serde_json::to_value(answer).map_err(|e| DepositsError::Internal {
            message: e.to_string(),
        })?;
        let stored = self
            .db
            .run_tx("deposits_commit", |tx| {
                Box::pin(async move {
                    store::forget_in_doubt(&tx, request_id).await?;
                    if !store::insert_request(&tx, request_id, kind, content, response, now).await?
                    {
                        let stored = store::request(&tx, request_id).await?;
                        return Ok(stored.map_or_else(|| response.clone(), |s| s.response));
                    }
                    for change in changes {
                        match change {
                            Change::InsertAccount(account) => {
                                store::insert_account(&tx, account).await?;
                            }
                            Change::Touch(id) => store::touch(&tx, *id, now).await?,
                            Change::InsertHold(hold) => store::insert_hold(&tx, hold).await?,
                            Change::HoldStatus(id, status) => {
                                store::set_hold_status(&tx, *id, *status).await?;
                            }
                            Change::Status(id, from, to, closed_at) => {
                                if !store::change_status(&tx, *id, *from, *to, *closed_at).await? {
                                    return Err(TxError::Abort(status::changed(*id, *from)));
                                }
                            }
                        }
                    }
                    outbox.append::<DepositsError>(&tx, events).await?;
                    Ok(response.clone())
                })
            })
            .await
            .map_err(tx_error)?;
        serde_json::from_value(stored).map_err(|e| DepositsError::Internal {
            message: e.to_string(),
        })
    }

    fn event(
        &self,
        account_id: Uuid,
        event_type: &str,
        payload: Value,
    ) -> Result<NewEvent, DepositsError> {
        Ok(NewEvent::new(
            AggregateRef::new(ACCOUNT_AGGREGATE, account_id.to_string())?,
            event_type,
            payload,
        )?)
    }

    // ----- accounts -----

    pub(crate) async fn load_account(&self, id: Uuid) -> Result<Account, DepositsError> {
        self.db
            .run_tx("deposits_account", |tx| {
                Box::pin(async move { store::account(&tx, id).await })
            })
            .await
            .map_err(tx_error)?
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
            .db
            .run_tx("deposits_accounts_of", |tx| {
                Box::pin(async move { store::accounts_of(&tx, customer_id).await })
            })
            .await
            .map_err(tx_error)?;
        let mut views = Vec::with_capacity(accounts.len());
        for account in &accounts {
            views.push(self.view(account).await?);
        }
        Ok(views)
    }

    async fn view(&self, account: &Account) -> Result<AccountView, DepositsError> {
        let balances = self.balances(account).await?;
        Ok(AccountView {
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
        })
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

    // ----- money in and out -----

    /// Cash in (`deposit`) or out (`withdrawal`) through the bank's cash account.
    pub async fn cash(
        &self,
        kind: &'static str,
        request_id: &str,
        account_id: &str,
        amount: &str,
        currency: &str,
        description: &str,
    ) -> Result<MovementView, DepositsError> {
        self.movement(
            kind,
            "cash",
            request_id,
            account_id,
            amount,
            currency,
            description,
        )
        .await
    }

    /// Money in (`deposit`) or out (`withdrawal`) through the bank's account for `channel`
    /// (`cash`: the teller; `clearing`: the clearing system).
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
            other => {
                return Err(DepositsError::invalid(
                    "channel",
                    format!("{other:?}: `cash` or `clearing`"),
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
        let request_currency = parse_currency(currency)?;
        if request_currency != account.currency {
            return Err(DepositsError::CurrencyMismatch {
                expected: account.currency.code().to_owned(),
                got: currency.to_owned(),
            });
        }
        let money = parse_money("amount", amount, account.currency)?;
        if money.amount() <= Decimal::ZERO {
            return Err(DepositsError::invalid("amount", "must be more than zero"));
        }
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

    // ----- transfers -----

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
            .db
            .run_tx("deposits_transfer_read", |tx| {
                Box::pin(async move {
                    let (stored, from, to) = tokio::join!(
                        store::request(&tx, request_id),
                        store::account(&tx, from_id),
                        store::account(&tx, to_id)
                    );
                    Ok((stored?, from?, to?))
                })
            })
            .await
            .map_err(tx_error)?;
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
        let money = parse_money("amount", amount, from.currency)?;
        if money.amount() <= Decimal::ZERO {
            return Err(DepositsError::invalid("amount", "must be more than zero"));
        }
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
            self.db
                .run_tx("deposits_reserve_transfer", |tx| {
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
                .await
                .map_err(tx_error)?;
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
                self.db
                    .run_tx("deposits_release_transfer", |tx| {
                        Box::pin(async move { store::release_transfer(&tx, request_id).await })
                    })
                    .await
                    .map_err(tx_error)?;
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
        let payload = json!({
            "from_account_id": from_id,
            "to_account_id": to_id,
            "amount": view.amount,
            "currency": view.currency,
            "entry_id": entry_id,
            "request_id": request_id,
        });
        let events = [
            self.event(from_id, "deposits.transfer.sent", payload.clone())?,
            self.event(to_id, "deposits.transfer.received", payload)?,
        ];
        self.commit(
            request_id,
            "transfer",
            &content,
            &view,
            &[Change::Touch(from_id)],
            &events,
        )
        .await
    }

    // ----- holds -----

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
        if parse_currency(currency)? != account.currency {
            return Err(DepositsError::CurrencyMismatch {
                expected: account.currency.code().to_owned(),
                got: currency.to_owned(),
            });
        }
        let money = parse_money("amount", amount, account.currency)?;
        if money.amount() <= Decimal::ZERO {
            return Err(DepositsError::invalid("amount", "must be more than zero"));
        }
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
            .db
            .run_tx("deposits_hold", |tx| {
                Box::pin(async move { store::hold(&tx, hold_id).await })
            })
            .await
            .map_err(tx_error)?
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
    /// and the amount moves on to the bank's account for `destination` (`clearing`).
    pub async fn capture_hold(
        &self,
        request_id: &str,
        hold_id: &str,
        destination: &str,
    ) -> Result<HoldView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let hold_id = parse_id("hold_id", hold_id)?;
        if destination != "clearing" {
            return Err(DepositsError::invalid("destination", "`clearing`"));
        }
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
        let clearing = self.gl_account(hold.currency, "clearing").await?;
        let money =
            Money::new(hold.amount, hold.currency).map_err(|e| DepositsError::Internal {
                message: e.to_string(),
            })?;
        self.ledger_entry(
            entry_id_for("capture-to", request_id),
            suspense,
            clearing,
            money,
            "captured hold sent to clearing",
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

    /// Marks holds whose time ran out (the ledger expired their pending entries) as
    /// expired here too, with their events: how many.
    pub async fn expire_holds(&self) -> Result<usize, DepositsError> {
        let now = self.now();
        let due: Vec<Hold> = self
            .db
            .run_tx("deposits_due_holds", |tx| {
                Box::pin(async move {
                    let rows = tx
                        .query(
                            "SELECT id FROM holds WHERE status = 'held' AND expires_at IS NOT NULL \
                             AND expires_at <= $1 LIMIT 500",
                            &[&now],
                        )
                        .await?;
                    let mut holds = Vec::with_capacity(rows.len());
                    for row in &rows {
                        if let Some(hold) = store::hold(&tx, row.get(0)).await? {
                            holds.push(hold);
                        }
                    }
                    Ok(holds)
                })
            })
            .await
            .map_err(tx_error)?;
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
            self.db
                .run_tx("deposits_expire_hold", |tx| {
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
                .await
                .map_err(tx_error)?;
            expired += 1;
        }
        Ok(expired)
    }

    /// Active accounts without customer activity for their product's dormancy period become
    /// dormant (with an event each): how many.
    pub async fn mark_dormant(&self) -> Result<usize, DepositsError> {
        let now = self.now();
        let products = self
            .db
            .run_tx("deposits_dormancy_products", |tx| {
                Box::pin(async move { store::products_with_dormancy(&tx).await })
            })
            .await
            .map_err(tx_error)?;
        let mut marked = 0;
        for product in products {
            let before = now - chrono::TimeDelta::days(i64::from(product.dormancy_days));
            let outbox = &self.outbox;
            let product = &product;
            let this = self;
            marked += self
                .db
                .run_tx("deposits_mark_dormant", |tx| {
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
                .await
                .map_err(tx_error)?;
        }
        Ok(marked)
    }

    /// The scheduled job: interest up to yesterday, dormancy, expired holds; every
    /// `interval` until `shutdown`.
    pub async fn run_scheduled(
        &self,
        interval: std::time::Duration,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        loop {
            let yesterday = self.business_today().pred_opt();
            if let Some(yesterday) = yesterday {
                match self.accrue(yesterday, &|_, _| {}).await {
                    Ok(report) if report.accounts > 0 => {
                        tracing::info!(accounts = report.accounts, entries = report.accrual_entries, postings = report.postings, failed = report.failed, through = %yesterday, "interest accrued");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "interest accrual failed; the next run tries again")
                    }
                }
            }
            if let Err(error) = self.mark_dormant().await {
                tracing::warn!(%error, "marking dormant accounts failed");
            }
            if let Err(error) = self.expire_holds().await {
                tracing::warn!(%error, "closing expired holds failed");
            }
            if let Err(error) = self.recover_in_doubt().await {
                tracing::warn!(%error, "settling requests in doubt failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}
