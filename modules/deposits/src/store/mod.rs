//! SQL for the `deposits` schema, and nothing else.

mod lifecycle;
pub use lifecycle::{
    InDoubt, change_status, forget_in_doubt, in_doubt_before, note_in_doubt, pin_product_version,
};

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::{Transaction, TxError};
use corebank_kernel::Currency;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::DepositsError;
use crate::domain::interest::{DayCount, PostingFrequency, RateTier};
use crate::domain::model::{Account, AccountStatus, Hold, HoldStatus, Product, ProductKind};

mod request;

pub use request::same_field;

pub type StoreResult<T> = Result<T, TxError<DepositsError>>;

fn corrupt(what: impl Into<String>) -> TxError<DepositsError> {
    TxError::Abort(DepositsError::Internal {
        message: format!("stored deposits data does not parse: {}", what.into()),
    })
}

fn currency(code: &str) -> StoreResult<Currency> {
    Currency::from_code(code).map_err(|e| corrupt(e.to_string()))
}

const PRODUCT_COLUMNS: &str = "code, version, name, kind, currency, rate_tiers, day_count, \
     posting_frequency, minimum_balance, overdraft_limit, overdraft_rate, dormancy_days, \
     per_transfer_limit, daily_transfer_limit, created_at";

fn product_from_row(row: &Row) -> StoreResult<Product> {
    let tiers: Vec<(String, String)> = serde_json::from_value(row.get("rate_tiers"))
        .map_err(|e| corrupt(format!("rate_tiers: {e}")))?;
    let rate_tiers = tiers
        .into_iter()
        .map(|(from, rate)| {
            Ok(RateTier {
                from_balance: from.parse().map_err(|_| corrupt("rate tier balance"))?,
                annual_rate: rate.parse().map_err(|_| corrupt("rate tier rate"))?,
            })
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Product {
        code: row.get("code"),
        version: row.get("version"),
        name: row.get("name"),
        kind: ProductKind::parse(row.get("kind")).ok_or_else(|| corrupt("kind"))?,
        currency: currency(row.get("currency"))?,
        rate_tiers,
        day_count: DayCount::parse(row.get("day_count")).map_err(|_| corrupt("day_count"))?,
        posting_frequency: PostingFrequency::parse(row.get("posting_frequency"))
            .map_err(|_| corrupt("posting_frequency"))?,
        minimum_balance: row.get("minimum_balance"),
        overdraft_limit: row.get("overdraft_limit"),
        overdraft_rate: row.get("overdraft_rate"),
        dormancy_days: u32::try_from(row.get::<_, i64>("dormancy_days"))
            .map_err(|_| corrupt("dormancy_days"))?,
        per_transfer_limit: row.get("per_transfer_limit"),
        daily_transfer_limit: row.get("daily_transfer_limit"),
        created_at: row.get("created_at"),
    })
}

/// The tiers as stored: pairs of decimal strings.
fn tiers_json(tiers: &[RateTier]) -> Value {
    Value::Array(
        tiers
            .iter()
            .map(|t| {
                serde_json::json!([
                    t.from_balance.normalize().to_string(),
                    t.annual_rate.normalize().to_string()
                ])
            })
            .collect(),
    )
}

/// Stores `product` as the next version of its code; returns the version.
pub async fn insert_product(tx: &Transaction<'_>, product: &Product) -> StoreResult<i64> {
    let latest = tx
        .query_opt(
            "SELECT max(version) FROM products WHERE code = $1",
            &[&product.code],
        )
        .await?
        .and_then(|row| row.get::<_, Option<i64>>(0))
        .unwrap_or(0);
    let version = latest + 1;
    let dormancy = i64::from(product.dormancy_days);
    tx.execute(
        &format!(
            "INSERT INTO products ({PRODUCT_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
        ),
        &[
            &product.code,
            &version,
            &product.name,
            &product.kind.as_str(),
            &product.currency.code(),
            &tiers_json(&product.rate_tiers),
            &product.day_count.as_str(),
            &product.posting_frequency.as_str(),
            &product.minimum_balance,
            &product.overdraft_limit,
            &product.overdraft_rate,
            &dormancy,
            &product.per_transfer_limit,
            &product.daily_transfer_limit,
            &product.created_at,
        ],
    )
    .await?;
    Ok(version)
}

/// A product version (`None`: the newest).
pub async fn product(
    tx: &Transaction<'_>,
    code: &str,
    version: Option<i64>,
) -> StoreResult<Option<Product>> {
    let row = match version {
        Some(version) => {
            tx.query_opt(
                &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE code = $1 AND version = $2"),
                &[&code, &version],
            )
            .await?
        }
        None => {
            tx.query_opt(
                &format!(
                    "SELECT {PRODUCT_COLUMNS} FROM products WHERE code = $1 ORDER BY version DESC LIMIT 1"
                ),
                &[&code],
            )
            .await?
        }
    };
    row.as_ref().map(product_from_row).transpose()
}

/// The newest version of every product.
pub async fn latest_products(tx: &Transaction<'_>) -> StoreResult<Vec<Product>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {PRODUCT_COLUMNS} FROM products p WHERE version = \
                 (SELECT max(version) FROM products q WHERE q.code = p.code) ORDER BY code"
            ),
            &[],
        )
        .await?;
    rows.iter().map(product_from_row).collect()
}

const ACCOUNT_COLUMNS: &str = "id, customer_id, product_code, product_version, currency, status, \
     ledger_account_id, accrued_account_id, opened_on, last_customer_activity_at, closed_at, \
     accrued_through, period_precise, period_posted, created_at";

fn account_from_row(row: &Row) -> StoreResult<Account> {
    Ok(Account {
        id: row.get("id"),
        customer_id: row.get("customer_id"),
        product_code: row.get("product_code"),
        product_version: row.get("product_version"),
        currency: currency(row.get("currency"))?,
        status: AccountStatus::parse(row.get("status")).ok_or_else(|| corrupt("status"))?,
        ledger_account_id: row.get("ledger_account_id"),
        accrued_account_id: row.get("accrued_account_id"),
        opened_on: row.get("opened_on"),
        last_customer_activity_at: row.get("last_customer_activity_at"),
        closed_at: row.get("closed_at"),
        accrued_through: row.get("accrued_through"),
        period_precise: row.get("period_precise"),
        period_posted: row.get("period_posted"),
        created_at: row.get("created_at"),
    })
}

pub async fn insert_account(tx: &Transaction<'_>, account: &Account) -> StoreResult<bool> {
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) VALUES \
                 ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[
                &account.id,
                &account.customer_id,
                &account.product_code,
                &account.product_version,
                &account.currency.code(),
                &account.status.as_str(),
                &account.ledger_account_id,
                &account.accrued_account_id,
                &account.opened_on,
                &account.last_customer_activity_at,
                &account.closed_at,
                &account.accrued_through,
                &account.period_precise,
                &account.period_posted,
                &account.created_at,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn account(tx: &Transaction<'_>, id: Uuid) -> StoreResult<Option<Account>> {
    tx.query_opt(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(account_from_row)
    .transpose()
}

/// The accounts with these ids (unknown ones are simply absent).
pub async fn accounts(tx: &Transaction<'_>, ids: &[Uuid]) -> StoreResult<HashMap<Uuid, Account>> {
    let rows = tx
        .query(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ANY($1)"),
            &[&ids],
        )
        .await?;
    rows.iter()
        .map(|row| account_from_row(row).map(|account| (account.id, account)))
        .collect()
}

pub async fn accounts_of(tx: &Transaction<'_>, customer_id: &str) -> StoreResult<Vec<Account>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE customer_id = $1 ORDER BY created_at, id"
            ),
            &[&customer_id],
        )
        .await?;
    rows.iter().map(account_from_row).collect()
}

/// Accounts that may need interest up to `through` (not closed, not accrued that far yet),
/// after `after` in id order, `limit` at a time.
pub async fn accounts_to_accrue(
    tx: &Transaction<'_>,
    through: NaiveDate,
    after: Uuid,
    limit: i64,
) -> StoreResult<Vec<Account>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE status <> 'closed' \
                 AND accrued_through < $1 AND id > $2 ORDER BY id LIMIT $3"
            ),
            &[&through, &after, &limit],
        )
        .await?;
    rows.iter().map(account_from_row).collect()
}

/// How many accounts need interest up to `through`.
pub async fn count_to_accrue(tx: &Transaction<'_>, through: NaiveDate) -> StoreResult<i64> {
    Ok(tx
        .query_one(
            "SELECT count(*) FROM accounts WHERE status <> 'closed' AND accrued_through < $1",
            &[&through],
        )
        .await?
        .get(0))
}

/// Moves an account's accrual position, if it is still where the caller read it.
pub async fn advance_accrual(
    tx: &Transaction<'_>,
    id: Uuid,
    from: NaiveDate,
    through: NaiveDate,
    period_precise: Decimal,
    period_posted: Decimal,
) -> StoreResult<bool> {
    Ok(tx
        .execute(
            "UPDATE accounts SET accrued_through = $3, period_precise = $4, period_posted = $5 \
             WHERE id = $1 AND accrued_through = $2",
            &[&id, &from, &through, &period_precise, &period_posted],
        )
        .await?
        == 1)
}

/// Empties the posting period after a posting outside a period end (closing), if the
/// position is still where it was read.
pub async fn reset_period(
    tx: &Transaction<'_>,
    id: Uuid,
    through: NaiveDate,
    posted: Decimal,
) -> StoreResult<bool> {
    Ok(tx
        .execute(
            "UPDATE accounts SET period_precise = 0, period_posted = 0 \
             WHERE id = $1 AND accrued_through = $2 AND period_posted = $3",
            &[&id, &through, &posted],
        )
        .await?
        == 1)
}

/// Records customer activity now; a dormant account wakes up.
pub async fn touch(tx: &Transaction<'_>, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
    tx.execute(
        "UPDATE accounts SET last_customer_activity_at = greatest(last_customer_activity_at, $2), \
         status = CASE WHEN status = 'dormant' THEN 'active' ELSE status END WHERE id = $1",
        &[&id, &at],
    )
    .await?;
    Ok(())
}

/// Active accounts with no customer activity since `before`, of products with dormancy,
/// become dormant: how many.
pub async fn mark_dormant(
    tx: &Transaction<'_>,
    product_code: &str,
    product_version: i64,
    before: DateTime<Utc>,
) -> StoreResult<Vec<Uuid>> {
    let rows = tx
        .query(
            "UPDATE accounts SET status = 'dormant' WHERE status = 'active' AND product_code = $1 \
             AND product_version = $2 AND last_customer_activity_at < $3 RETURNING id",
            &[&product_code, &product_version, &before],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Every product version with dormancy.
pub async fn products_with_dormancy(tx: &Transaction<'_>) -> StoreResult<Vec<Product>> {
    let rows = tx
        .query(
            &format!("SELECT {PRODUCT_COLUMNS} FROM products WHERE dormancy_days > 0"),
            &[],
        )
        .await?;
    rows.iter().map(product_from_row).collect()
}

/// A stored request: its kind, canonical content and answer.
#[derive(Debug)]
pub struct StoredRequest {
    pub kind: String,
    pub content: Value,
    pub response: Value,
}

pub async fn request(tx: &Transaction<'_>, id: Uuid) -> StoreResult<Option<StoredRequest>> {
    Ok(tx
        .query_opt(
            "SELECT kind, content, response FROM requests WHERE request_id = $1",
            &[&id],
        )
        .await?
        .map(|row| StoredRequest {
            kind: row.get(0),
            content: row.get(1),
            response: row.get(2),
        }))
}

/// The requests recorded under any of `ids`.
pub async fn requests(
    tx: &Transaction<'_>,
    ids: &[Uuid],
) -> StoreResult<HashMap<Uuid, StoredRequest>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = tx
        .query(
            "SELECT request_id, kind, content, response FROM requests WHERE request_id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            (
                row.get(0),
                StoredRequest {
                    kind: row.get(1),
                    content: row.get(2),
                    response: row.get(3),
                },
            )
        })
        .collect())
}

/// Records a request's answer; false when the id was recorded already.
pub async fn insert_request(
    tx: &Transaction<'_>,
    id: Uuid,
    kind: &str,
    content: &Value,
    response: &Value,
    at: DateTime<Utc>,
) -> StoreResult<bool> {
    Ok(tx
        .execute(
            "INSERT INTO requests (request_id, kind, content, response, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (request_id) DO NOTHING",
            &[&id, &kind, content, response, &at],
        )
        .await?
        == 1)
}

const HOLD_COLUMNS: &str =
    "id, account_id, amount, currency, reason, status, expires_at, placed_at";

fn hold_from_row(row: &Row) -> StoreResult<Hold> {
    Ok(Hold {
        id: row.get("id"),
        account_id: row.get("account_id"),
        amount: row.get("amount"),
        currency: currency(row.get("currency"))?,
        reason: row.get("reason"),
        status: HoldStatus::parse(row.get("status")).ok_or_else(|| corrupt("hold status"))?,
        expires_at: row.get("expires_at"),
        placed_at: row.get("placed_at"),
    })
}

pub async fn insert_hold(tx: &Transaction<'_>, hold: &Hold) -> StoreResult<()> {
    tx.execute(
        &format!(
            "INSERT INTO holds ({HOLD_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO NOTHING"
        ),
        &[
            &hold.id,
            &hold.account_id,
            &hold.amount,
            &hold.currency.code(),
            &hold.reason,
            &hold.status.as_str(),
            &hold.expires_at,
            &hold.placed_at,
        ],
    )
    .await?;
    Ok(())
}

pub async fn hold(tx: &Transaction<'_>, id: Uuid) -> StoreResult<Option<Hold>> {
    tx.query_opt(
        &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE id = $1"),
        &[&id],
    )
    .await?
    .as_ref()
    .map(hold_from_row)
    .transpose()
}

pub async fn open_holds(tx: &Transaction<'_>, account_id: Uuid) -> StoreResult<Vec<Hold>> {
    let rows = tx
        .query(
            &format!("SELECT {HOLD_COLUMNS} FROM holds WHERE account_id = $1 AND status = 'held'"),
            &[&account_id],
        )
        .await?;
    rows.iter().map(hold_from_row).collect()
}

/// Holds still `held` whose time ran out by `by`, the longest lapsed first, at most `limit`.
pub async fn held_lapsed_by(
    tx: &Transaction<'_>,
    by: chrono::DateTime<chrono::Utc>,
    limit: i64,
) -> StoreResult<Vec<Hold>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE status = 'held' \
                 AND expires_at IS NOT NULL AND expires_at <= $1 ORDER BY expires_at, id LIMIT $2"
            ),
            &[&by, &limit],
        )
        .await?;
    rows.iter().map(hold_from_row).collect()
}

/// Every hold an account ever had, whatever its status.
pub async fn holds_of(tx: &Transaction<'_>, account_id: Uuid) -> StoreResult<Vec<Hold>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {HOLD_COLUMNS} FROM holds WHERE account_id = $1 ORDER BY placed_at, id"
            ),
            &[&account_id],
        )
        .await?;
    rows.iter().map(hold_from_row).collect()
}

pub async fn set_hold_status(
    tx: &Transaction<'_>,
    id: Uuid,
    status: HoldStatus,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE holds SET status = $2 WHERE id = $1 AND status = 'held'",
        &[&id, &status.as_str()],
    )
    .await?;
    Ok(())
}

/// The bank's ledger account for (currency, role), if known.
pub async fn gl_account(
    tx: &Transaction<'_>,
    currency: Currency,
    role: &str,
) -> StoreResult<Option<Uuid>> {
    Ok(tx
        .query_opt(
            "SELECT ledger_account_id FROM gl_accounts WHERE currency = $1 AND role = $2",
            &[&currency.code(), &role],
        )
        .await?
        .map(|row| row.get(0)))
}

pub async fn insert_gl_account(
    tx: &Transaction<'_>,
    currency: Currency,
    role: &str,
    id: Uuid,
) -> StoreResult<()> {
    tx.execute(
        "INSERT INTO gl_accounts (currency, role, ledger_account_id) VALUES ($1, $2, $3) \
         ON CONFLICT (currency, role) DO NOTHING",
        &[&currency.code(), &role, &id],
    )
    .await?;
    Ok(())
}

/// Reserves `amount` of `account`'s transfers on `day` within `limit` (none: unlimited), once
/// per request. `Ok(Err(used))` when the limit would be passed: the caller must then roll
/// the transaction back (the reservation row is already written).
pub async fn reserve_transfer(
    tx: &Transaction<'_>,
    request_id: Uuid,
    account_id: Uuid,
    day: NaiveDate,
    amount: Decimal,
    limit: Option<Decimal>,
) -> StoreResult<Result<(), Decimal>> {
    let inserted = tx
        .execute(
            "INSERT INTO transfer_reservations (request_id, account_id, day, amount) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (request_id) DO NOTHING",
            &[&request_id, &account_id, &day, &amount],
        )
        .await?;
    if inserted == 0 {
        // Reserved before by this request: once, and only for the same amount.
        let reserved: Option<(Uuid, Decimal)> = tx
            .query_opt(
                "SELECT account_id, amount FROM transfer_reservations WHERE request_id = $1",
                &[&request_id],
            )
            .await?
            .map(|row| (row.get(0), row.get(1)));
        return match reserved {
            Some((account, reserved)) if account == account_id && reserved == amount => Ok(Ok(())),
            _ => Err(TxError::Abort(DepositsError::ExistsWithDifferent {
                request_id: request_id.to_string(),
                field: "amount".to_owned(),
            })),
        };
    }
    let used: Decimal = tx
        .query_opt(
            "SELECT total FROM daily_transfers WHERE account_id = $1 AND day = $2",
            &[&account_id, &day],
        )
        .await?
        .map(|row| row.get(0))
        .unwrap_or_default();
    if let Some(limit) = limit
        && used + amount > limit
    {
        return Ok(Err(used));
    }
    tx.execute(
        "INSERT INTO daily_transfers (account_id, day, total) VALUES ($1, $2, $3) \
         ON CONFLICT (account_id, day) DO UPDATE SET total = daily_transfers.total + excluded.total",
        &[&account_id, &day, &amount],
    )
    .await?;
    Ok(Ok(()))
}

/// Gives back what a refused transfer reserved.
pub async fn release_transfer(tx: &Transaction<'_>, request_id: Uuid) -> StoreResult<()> {
    let reserved = tx
        .query_opt(
            "DELETE FROM transfer_reservations WHERE request_id = $1 RETURNING account_id, day, amount",
            &[&request_id],
        )
        .await?;
    if let Some(row) = reserved {
        let (account_id, day, amount): (Uuid, NaiveDate, Decimal) =
            (row.get(0), row.get(1), row.get(2));
        tx.execute(
            "UPDATE daily_transfers SET total = total - $3 WHERE account_id = $1 AND day = $2",
            &[&account_id, &day, &amount],
        )
        .await?;
    }
    Ok(())
}
