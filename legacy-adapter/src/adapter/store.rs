//! The adapter's own schema (`legacy_adapter`): the maps between canonical ids and the
//! core's numbers, the canonical product catalogue, answers by request id, daily-limit
//! reservations and booked payments. Every statement runs in `run_tx`.

use chrono::{DateTime, NaiveDate, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::tokio_postgres::types::{FromSql, ToSql};
use corebank_db::{Db, TxError};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::error::AdapterError;

type Result<T> = std::result::Result<T, AdapterError>;
/// A statement's parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// A canonical account and where it lives on the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    pub account_id: Uuid,
    pub account_no: String,
    pub customer_id: String,
    pub product_code: String,
    pub product_version: i64,
    pub currency: String,
}

/// One version of a canonical product.
#[derive(Debug, Clone)]
pub struct ProductRow {
    pub code: String,
    pub version: i64,
    pub kind: String,
    pub currency: String,
    pub per_transfer_limit: Option<Decimal>,
    pub daily_transfer_limit: Option<Decimal>,
    pub definition: Vec<u8>,
}

/// A canonical hold and the core's lock.
#[derive(Debug, Clone)]
pub struct HoldRow {
    pub hold_id: Uuid,
    pub lock_id: String,
    pub account_id: Uuid,
    pub reason: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub placed_at: DateTime<Utc>,
}

fn product(row: &Row) -> ProductRow {
    ProductRow {
        code: row.get("code"),
        version: row.get("version"),
        kind: row.get("kind"),
        currency: row.get("currency"),
        per_transfer_limit: row.get("per_transfer_limit"),
        daily_transfer_limit: row.get("daily_transfer_limit"),
        definition: row.get("definition"),
    }
}

fn account(row: &Row) -> AccountRow {
    AccountRow {
        account_id: row.get("account_id"),
        account_no: row.get("account_no"),
        customer_id: row.get("customer_id"),
        product_code: row.get("product_code"),
        product_version: row.get("product_version"),
        currency: row.get("currency"),
    }
}

/// The store over the adapter's schema.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
}

impl Store {
    pub fn new(db: Db) -> Store {
        Store { db }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Runs the one statement `sql` with `params` in a transaction of its own (`name`).
    async fn execute(
        &self,
        name: &'static str,
        sql: &'static str,
        params: Params<'_>,
    ) -> Result<()> {
        self.db
            .run_tx(name, |tx| {
                Box::pin(async move {
                    tx.execute(sql, params).await?;
                    Ok::<_, TxError<AdapterError>>(())
                })
            })
            .await?;
        Ok(())
    }

    /// The row the query `sql` finds with `params`, if any, as `read` makes it: one read in a
    /// transaction of its own (`name`).
    async fn read_opt<T: Send>(
        &self,
        name: &'static str,
        sql: &'static str,
        params: Params<'_>,
        read: fn(&Row) -> T,
    ) -> Result<Option<T>> {
        Ok(self
            .db
            .run_tx(name, |tx| {
                Box::pin(async move {
                    let row = tx.query_opt(sql, params).await?;
                    Ok::<_, TxError<AdapterError>>(row.as_ref().map(read))
                })
            })
            .await?)
    }

    /// Every row the query `sql` finds with `params`, as `read` makes them: one read in a
    /// transaction of its own (`name`).
    async fn read_all<T: Send>(
        &self,
        name: &'static str,
        sql: &'static str,
        params: Params<'_>,
        read: fn(&Row) -> T,
    ) -> Result<Vec<T>> {
        Ok(self
            .db
            .run_tx(name, |tx| {
                Box::pin(async move {
                    let rows = tx.query(sql, params).await?;
                    Ok::<_, TxError<AdapterError>>(rows.iter().map(read).collect())
                })
            })
            .await?)
    }

    /// Adds the next version of `code` (version 1 when new) and answers it.
    pub async fn add_product(
        &self,
        new: &ProductRow,
        build: impl Fn(i64) -> Vec<u8> + Send + Sync,
    ) -> Result<i64> {
        let build = &build;
        Ok(self
            .db
            .run_tx("legacy_adapter_add_product", |tx| {
                Box::pin(async move {
                    let version: i64 = tx
                        .query_one(
                            "SELECT COALESCE(MAX(version), 0) + 1 FROM products WHERE code = $1",
                            &[&new.code],
                        )
                        .await?
                        .get(0);
                    tx.execute(
                        "INSERT INTO products (code, version, kind, currency, per_transfer_limit, \
                         daily_transfer_limit, definition, created_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, now())",
                        &[
                            &new.code,
                            &version,
                            &new.kind,
                            &new.currency,
                            &new.per_transfer_limit,
                            &new.daily_transfer_limit,
                            &build(version),
                        ],
                    )
                    .await?;
                    Ok::<_, TxError<AdapterError>>(version)
                })
            })
            .await?)
    }

    /// Adds version 1 of `code` unless the product exists (the legacy products at start).
    pub async fn ensure_product(&self, new: &ProductRow) -> Result<()> {
        self.execute(
            "legacy_adapter_ensure_product",
            "INSERT INTO products (code, version, kind, currency, per_transfer_limit, \
             daily_transfer_limit, definition, created_at) \
             VALUES ($1, 1, $2, $3, $4, $5, $6, now()) ON CONFLICT (code, version) DO NOTHING",
            &[
                &new.code,
                &new.kind,
                &new.currency,
                &new.per_transfer_limit,
                &new.daily_transfer_limit,
                &new.definition,
            ],
        )
        .await
    }

    /// Version `version` of `code` (0: the newest).
    pub async fn product(&self, code: &str, version: i64) -> Result<Option<ProductRow>> {
        if version == 0 {
            let sql = "SELECT * FROM products WHERE code = $1 ORDER BY version DESC LIMIT 1";
            self.read_opt("legacy_adapter_product", sql, &[&code], product)
                .await
        } else {
            let sql = "SELECT * FROM products WHERE code = $1 AND version = $2";
            self.read_opt("legacy_adapter_product", sql, &[&code, &version], product)
                .await
        }
    }

    /// The newest version of every product.
    pub async fn products(&self) -> Result<Vec<ProductRow>> {
        self.read_all(
            "legacy_adapter_products",
            "SELECT p.* FROM products p WHERE p.version = \
             (SELECT MAX(q.version) FROM products q WHERE q.code = p.code) ORDER BY p.code",
            &[],
            product,
        )
        .await
    }

    pub async fn customer_no(&self, customer_id: &str) -> Result<Option<String>> {
        let sql = "SELECT customer_no FROM customers WHERE customer_id = $1";
        self.read_opt("legacy_adapter_customer", sql, &[&customer_id], first)
            .await
    }

    /// The canonical id of a core customer number, if mapped.
    pub async fn customer_id_of(&self, customer_no: &str) -> Result<Option<String>> {
        let sql = "SELECT customer_id FROM customers WHERE customer_no = $1";
        self.read_opt("legacy_adapter_customer_of", sql, &[&customer_no], first)
            .await
    }

    pub async fn map_customer(&self, customer_id: &str, customer_no: &str) -> Result<()> {
        self.execute(
            "legacy_adapter_map_customer",
            "INSERT INTO customers (customer_id, customer_no) VALUES ($1, $2) \
             ON CONFLICT (customer_id) DO NOTHING",
            &[&customer_id, &customer_no],
        )
        .await
    }

    /// Maps an account (a second mapping of the same id is a no-op) and answers the row as
    /// stored.
    pub async fn map_account(&self, row: &AccountRow) -> Result<AccountRow> {
        Ok(self
            .db
            .run_tx("legacy_adapter_map_account", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO accounts (account_id, account_no, customer_id, product_code, \
                         product_version, currency) VALUES ($1, $2, $3, $4, $5, $6) \
                         ON CONFLICT (account_id) DO NOTHING",
                        &[
                            &row.account_id,
                            &row.account_no,
                            &row.customer_id,
                            &row.product_code,
                            &row.product_version,
                            &row.currency,
                        ],
                    )
                    .await?;
                    let stored = tx
                        .query_one(
                            "SELECT * FROM accounts WHERE account_id = $1",
                            &[&row.account_id],
                        )
                        .await?;
                    Ok::<_, TxError<AdapterError>>(account(&stored))
                })
            })
            .await?)
    }

    pub async fn account(&self, account_id: Uuid) -> Result<Option<AccountRow>> {
        let sql = "SELECT * FROM accounts WHERE account_id = $1";
        self.read_opt("legacy_adapter_account", sql, &[&account_id], account)
            .await
    }

    pub async fn accounts_of(&self, customer_id: &str) -> Result<Vec<AccountRow>> {
        let sql = "SELECT * FROM accounts WHERE customer_id = $1 ORDER BY account_no";
        self.read_all("legacy_adapter_accounts_of", sql, &[&customer_id], account)
            .await
    }

    pub async fn map_hold(&self, hold: &HoldRow) -> Result<()> {
        self.execute(
            "legacy_adapter_map_hold",
            "INSERT INTO holds (hold_id, lock_id, account_id, reason, expires_at, placed_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (hold_id) DO NOTHING",
            &[
                &hold.hold_id,
                &hold.lock_id,
                &hold.account_id,
                &hold.reason,
                &hold.expires_at,
                &hold.placed_at,
            ],
        )
        .await
    }

    pub async fn hold(&self, hold_id: Uuid) -> Result<Option<HoldRow>> {
        let sql = "SELECT * FROM holds WHERE hold_id = $1";
        self.read_opt("legacy_adapter_hold", sql, &[&hold_id], |r| HoldRow {
            hold_id: r.get("hold_id"),
            lock_id: r.get("lock_id"),
            account_id: r.get("account_id"),
            reason: r.get("reason"),
            expires_at: r.get("expires_at"),
            placed_at: r.get("placed_at"),
        })
        .await
    }

    /// The answer stored for `request_id`: (fingerprint, encoded answer).
    pub async fn answer(&self, request_id: Uuid) -> Result<Option<(String, Vec<u8>)>> {
        let sql = "SELECT fingerprint, answer FROM requests WHERE request_id = $1";
        self.read_opt("legacy_adapter_answer", sql, &[&request_id], |r| {
            (r.get(0), r.get(1))
        })
        .await
    }

    /// Stores the answer unless one is stored already; answers what is stored.
    pub async fn keep_answer(
        &self,
        request_id: Uuid,
        fingerprint: &str,
        answer: &[u8],
    ) -> Result<(String, Vec<u8>)> {
        Ok(self
            .db
            .run_tx("legacy_adapter_keep_answer", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO requests (request_id, fingerprint, answer, created_at) \
                         VALUES ($1, $2, $3, now()) ON CONFLICT (request_id) DO NOTHING",
                        &[&request_id, &fingerprint, &answer],
                    )
                    .await?;
                    let row = tx
                        .query_one(
                            "SELECT fingerprint, answer FROM requests WHERE request_id = $1",
                            &[&request_id],
                        )
                        .await?;
                    Ok::<_, TxError<AdapterError>>((row.get(0), row.get(1)))
                })
            })
            .await?)
    }

    /// Reserves `amount` of `account_id`'s daily limit on `day` for `request_id` (again for
    /// the same request: nothing more); refused when it would pass `limit`.
    pub async fn reserve(
        &self,
        request_id: Uuid,
        account_id: Uuid,
        day: NaiveDate,
        amount: Decimal,
        limit: Decimal,
    ) -> Result<()> {
        self.db
            .run_tx("legacy_adapter_reserve", |tx| {
                Box::pin(async move {
                    let existing = tx
                        .query_opt(
                            "SELECT account_id, amount FROM limit_reservations WHERE request_id = $1",
                            &[&request_id],
                        )
                        .await?;
                    if let Some(row) = existing {
                        let (account, reserved): (Uuid, Decimal) = (row.get(0), row.get(1));
                        return if account == account_id && reserved == amount {
                            Ok(())
                        } else {
                            Err(TxError::Abort(AdapterError::ExistsWithDifferent {
                                request_id: request_id.to_string(),
                            }))
                        };
                    }
                    let used: Decimal = tx
                        .query_one(
                            "SELECT COALESCE(SUM(amount), 0) FROM limit_reservations \
                             WHERE account_id = $1 AND day = $2",
                            &[&account_id, &day],
                        )
                        .await?
                        .get(0);
                    if used.checked_add(amount).is_none_or(|total| total > limit) {
                        return Err(TxError::Abort(AdapterError::DailyLimitExceeded {
                            message: format!(
                                "{} used of {} today; {} more asked",
                                used.normalize(),
                                limit.normalize(),
                                amount.normalize()
                            ),
                        }));
                    }
                    tx.execute(
                        "INSERT INTO limit_reservations (request_id, account_id, day, amount) VALUES ($1, $2, $3, $4)",
                        &[&request_id, &account_id, &day, &amount],
                    )
                    .await?;
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    /// Gives a reservation back (the core refused the transfer).
    pub async fn unreserve(&self, request_id: Uuid) -> Result<()> {
        let sql = "DELETE FROM limit_reservations WHERE request_id = $1";
        self.execute("legacy_adapter_unreserve", sql, &[&request_id])
            .await
    }

    /// Marks an input whose answer was lost as in doubt until `until`.
    pub async fn mark_in_doubt(&self, legacy_key: &str, until: DateTime<Utc>) -> Result<()> {
        self.execute(
            "legacy_adapter_mark_in_doubt",
            "INSERT INTO in_doubt (legacy_key, until) VALUES ($1, $2) \
             ON CONFLICT (legacy_key) DO UPDATE SET until = excluded.until",
            &[&legacy_key, &until],
        )
        .await
    }

    /// Until when an input is in doubt, if it is now.
    pub async fn in_doubt_until(&self, legacy_key: &str) -> Result<Option<DateTime<Utc>>> {
        let sql = "SELECT until FROM in_doubt WHERE legacy_key = $1 AND until > now()";
        self.read_opt("legacy_adapter_in_doubt", sql, &[&legacy_key], first)
            .await
    }

    pub async fn keep_payment(&self, payment_id: Uuid, ft_id: &str, payment: &[u8]) -> Result<()> {
        self.execute(
            "legacy_adapter_keep_payment",
            "INSERT INTO payments (payment_id, ft_id, payment, created_at) \
             VALUES ($1, $2, $3, now()) ON CONFLICT (payment_id) DO NOTHING",
            &[&payment_id, &ft_id, &payment],
        )
        .await
    }

    pub async fn payment(&self, payment_id: Uuid) -> Result<Option<Vec<u8>>> {
        let sql = "SELECT payment FROM payments WHERE payment_id = $1";
        self.read_opt("legacy_adapter_payment", sql, &[&payment_id], first)
            .await
    }
}

/// A row's first column.
fn first<T: for<'a> FromSql<'a>>(row: &Row) -> T {
    row.get(0)
}
