//! The account directory (`gateway.accounts`) and the payments the gateway started
//! (`gateway.payments`): what routing needs to know about an account (its product and
//! customer) and where each side keeps it.

use chrono::{DateTime, Utc};
use corebank_db::tokio_postgres::Row;
use corebank_db::tokio_postgres::types::ToSql;
use corebank_db::{Db, TxError};
use uuid::Uuid;

use crate::error::ApiError;
use crate::move_hold::MoveWatch;
use crate::routing::Side;

/// An account as the gateway knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountEntry {
    pub account_id: Uuid,
    /// The side that keeps the account's real books.
    pub home: Side,
    pub product_code: String,
    pub customer_id: String,
    pub currency: String,
    pub legacy_id: Option<Uuid>,
    pub modern_id: Option<Uuid>,
    /// The account migration moving the account, while it moves (`crate::homes`): requests
    /// that would change it are answered 503 `account_moving` until the move ends.
    pub move_id: Option<String>,
}

impl AccountEntry {
    /// The account's id on `side`, if that side holds it.
    pub fn id_on(&self, side: Side) -> Option<Uuid> {
        match side {
            Side::Legacy => self.legacy_id,
            Side::Modern => self.modern_id,
        }
    }
}

/// A hold placed through the gateway, and its id on each side that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldEntry {
    pub hold_id: Uuid,
    pub account_id: Uuid,
    pub legacy_id: Option<Uuid>,
    pub modern_id: Option<Uuid>,
}

impl HoldEntry {
    pub fn id_on(&self, side: Side) -> Option<Uuid> {
        match side {
            Side::Legacy => self.legacy_id,
            Side::Modern => self.modern_id,
        }
    }
}

/// A payment the gateway started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentEntry {
    pub payment_id: Uuid,
    pub side: Side,
    pub account_id: Uuid,
    pub customer_id: String,
    pub created_at: DateTime<Utc>,
}

/// Accounts kept in memory at most, and for how long: an account's product and customer do
/// not change, a shadow copy's id only means a shadow is skipped while the entry is stale,
/// and a move (its mark and its switch of home) reaches every replica's cache through the
/// directory's change feed (`crate::homes`), so reads need no database round trip.
pub const ACCOUNT_CACHE_MAX: usize = 100_000;
pub const ACCOUNT_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

type Cache = std::sync::Arc<
    std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, AccountEntry)>>,
>;

#[derive(Debug, Clone)]
pub struct Directory {
    db: Db,
    cache: Cache,
    moves: std::sync::Arc<MoveWatch>,
}

pub(crate) fn entry(row: &Row) -> AccountEntry {
    let account_id: Uuid = row.get("account_id");
    let legacy_id: Option<Uuid> = row.get("legacy_id");
    let home = row
        .get::<_, Option<&str>>("home")
        .and_then(Side::parse)
        .unwrap_or(if legacy_id == Some(account_id) {
            Side::Legacy
        } else {
            Side::Modern
        });
    AccountEntry {
        account_id,
        home,
        product_code: row.get("product_code"),
        customer_id: row.get("customer_id"),
        currency: row.get("currency"),
        legacy_id: row.get("legacy_id"),
        modern_id: row.get("modern_id"),
        move_id: row.get("move_id"),
    }
}

fn hold_entry(row: &Row) -> HoldEntry {
    HoldEntry {
        hold_id: row.get("hold_id"),
        account_id: row.get("account_id"),
        legacy_id: row.get("legacy_id"),
        modern_id: row.get("modern_id"),
    }
}

fn payment_entry(row: &Row) -> PaymentEntry {
    PaymentEntry {
        payment_id: row.get("payment_id"),
        side: Side::parse(row.get::<_, &str>("side")).unwrap_or(Side::Legacy),
        account_id: row.get("account_id"),
        customer_id: row.get("customer_id"),
        created_at: row.get("created_at"),
    }
}

/// A statement's parameter.
type Parameter<'a> = &'a (dyn ToSql + Sync);

impl Directory {
    pub fn new(db: Db) -> Directory {
        Directory {
            db,
            cache: Cache::default(),
            moves: std::sync::Arc::default(),
        }
    }

    fn cached(&self, account_id: Uuid) -> Option<AccountEntry> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(&account_id)
            .filter(|(at, _)| at.elapsed() < ACCOUNT_CACHE_TTL)
            .map(|(_, entry)| entry.clone())
    }

    /// Whether this replica has the account in its cache (the change feed drops an account
    /// when the directory changes it).
    pub(crate) fn is_cached(&self, account_id: Uuid) -> bool {
        self.cached(account_id).is_some()
    }

    fn remember(&self, entry: &AccountEntry) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= ACCOUNT_CACHE_MAX {
                cache.clear();
            }
            cache.insert(entry.account_id, (std::time::Instant::now(), entry.clone()));
        }
    }

    /// Drops the account from this replica's cache: the next read finds it in the database.
    pub(crate) fn forget(&self, account_id: Uuid) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(&account_id);
        }
    }

    /// Drops every cached account (the change feed lost its place).
    pub(crate) fn forget_all(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// What this replica's change feed and its held requests share ([`crate::move_hold`]).
    pub(crate) fn moves(&self) -> &MoveWatch {
        &self.moves
    }

    /// The account as it is once no migration moves it: while one does, the request waits
    /// (until `until` at the latest) for this replica's change feed to drop the account
    /// from the cache, and reads it again. The latest entry either way: still marked moving
    /// when the move outlasted the wait, or when [`crate::move_hold::HELD_MAX`] requests
    /// are held already.
    pub async fn settled(
        &self,
        entry: AccountEntry,
        until: tokio::time::Instant,
    ) -> Result<AccountEntry, ApiError> {
        if entry.move_id.is_none() || tokio::time::Instant::now() >= until {
            return Ok(entry);
        }
        let Some(mut held) = self.moves.hold() else {
            return Ok(entry);
        };
        let account_id = entry.account_id;
        let mut latest = entry;
        loop {
            // Read after subscribing: a change applied in between is not missed.
            match self.account(account_id).await? {
                Some(entry) => latest = entry,
                None => return Ok(latest),
            }
            if latest.move_id.is_none() {
                return Ok(latest);
            }
            match tokio::time::timeout_at(until, held.changes.changed()).await {
                Ok(Ok(())) => {}
                Err(_) | Ok(Err(_)) => return Ok(latest),
            }
        }
    }

    /// The rows `sql` selects, each read by `read`, in a transaction (`name`) of its own.
    async fn rows<T: Send>(
        &self,
        name: &'static str,
        sql: &str,
        parameters: &[Parameter<'_>],
        read: fn(&Row) -> T,
    ) -> Result<Vec<T>, ApiError> {
        Ok(self
            .db
            .run_tx(name, |tx| {
                Box::pin(async move {
                    let rows = tx.query(sql, parameters).await?;
                    Ok::<_, TxError<ApiError>>(rows.iter().map(read).collect())
                })
            })
            .await?)
    }

    /// The row `sql` selects, if any, read by `read`.
    async fn row<T: Send>(
        &self,
        name: &'static str,
        sql: &str,
        parameters: &[Parameter<'_>],
        read: fn(&Row) -> T,
    ) -> Result<Option<T>, ApiError> {
        Ok(self
            .rows(name, sql, parameters, read)
            .await?
            .into_iter()
            .next())
    }

    /// Runs `sql` in a transaction (`name`) of its own.
    async fn execute(
        &self,
        name: &'static str,
        sql: &str,
        parameters: &[Parameter<'_>],
    ) -> Result<(), ApiError> {
        self.db
            .run_tx(name, |tx| {
                Box::pin(async move {
                    tx.execute(sql, parameters).await?;
                    Ok::<_, TxError<ApiError>>(())
                })
            })
            .await?;
        Ok(())
    }

    pub async fn account(&self, account_id: Uuid) -> Result<Option<AccountEntry>, ApiError> {
        if let Some(entry) = self.cached(account_id) {
            return Ok(Some(entry));
        }
        let found = self
            .row(
                "gateway_directory_account",
                "SELECT * FROM accounts WHERE account_id = $1",
                &[&account_id],
                entry,
            )
            .await?;
        if let Some(entry) = &found {
            self.remember(entry);
        }
        Ok(found)
    }

    /// Whether `id` is the id of a copy (an account's id on its non-home side): copies are
    /// never addressed by channels.
    pub async fn is_copy(&self, id: Uuid) -> Result<bool, ApiError> {
        let copy = self
            .row(
                "gateway_directory_is_copy",
                "SELECT 1 FROM accounts WHERE (legacy_id = $1 OR modern_id = $1) \
                 AND account_id <> $1 LIMIT 1",
                &[&id],
                |_| (),
            )
            .await?;
        Ok(copy.is_some())
    }

    pub async fn accounts_of(&self, customer_id: &str) -> Result<Vec<AccountEntry>, ApiError> {
        self.rows(
            "gateway_directory_accounts_of",
            "SELECT * FROM accounts WHERE customer_id = $1 ORDER BY opened_at, account_id",
            &[&customer_id],
            entry,
        )
        .await
    }

    /// Records an account (a second record of the same id keeps the first) and answers the
    /// entry as stored.
    pub async fn record(&self, account: &AccountEntry) -> Result<AccountEntry, ApiError> {
        let stored = self
            .db
            .run_tx("gateway_directory_record", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "INSERT INTO accounts (account_id, product_code, customer_id, currency, \
                         legacy_id, modern_id, home, opened_at) VALUES ($1, $2, $3, $4, $5, $6, $7, now()) \
                         ON CONFLICT (account_id) DO NOTHING",
                        &[
                            &account.account_id,
                            &account.product_code,
                            &account.customer_id,
                            &account.currency,
                            &account.legacy_id,
                            &account.modern_id,
                            &account.home.as_str(),
                        ],
                    )
                    .await?;
                    let row = tx
                        .query_one(
                            "SELECT * FROM accounts WHERE account_id = $1",
                            &[&account.account_id],
                        )
                        .await?;
                    Ok::<_, TxError<ApiError>>(entry(&row))
                })
            })
            .await?;
        self.remember(&stored);
        Ok(stored)
    }

    /// Notes the account's id on `side` (its shadow copy there was opened).
    pub async fn set_side_id(
        &self,
        account_id: Uuid,
        side: Side,
        id: Uuid,
    ) -> Result<(), ApiError> {
        let sql = match side {
            Side::Legacy => {
                "UPDATE accounts SET legacy_id = $2 WHERE account_id = $1 AND legacy_id IS NULL"
            }
            Side::Modern => {
                "UPDATE accounts SET modern_id = $2 WHERE account_id = $1 AND modern_id IS NULL"
            }
        };
        self.execute("gateway_directory_set_side_id", sql, &[&account_id, &id])
            .await?;
        self.forget(account_id);
        Ok(())
    }

    /// Records a hold placed on `side` under `side_id` (the channel's id when new).
    pub async fn record_hold(
        &self,
        hold_id: Uuid,
        account_id: Uuid,
        side: Side,
        side_id: Uuid,
    ) -> Result<(), ApiError> {
        let sql = match side {
            Side::Legacy => {
                "INSERT INTO holds (hold_id, account_id, legacy_id) VALUES ($1, $2, $3) \
                             ON CONFLICT (hold_id) DO UPDATE SET legacy_id = excluded.legacy_id"
            }
            Side::Modern => {
                "INSERT INTO holds (hold_id, account_id, modern_id) VALUES ($1, $2, $3) \
                             ON CONFLICT (hold_id) DO UPDATE SET modern_id = excluded.modern_id"
            }
        };
        self.execute(
            "gateway_directory_record_hold",
            sql,
            &[&hold_id, &account_id, &side_id],
        )
        .await
    }

    pub async fn hold(&self, hold_id: Uuid) -> Result<Option<HoldEntry>, ApiError> {
        self.row(
            "gateway_directory_hold",
            "SELECT * FROM holds WHERE hold_id = $1",
            &[&hold_id],
            hold_entry,
        )
        .await
    }

    pub async fn record_payment(&self, payment: &PaymentEntry) -> Result<(), ApiError> {
        self.execute(
            "gateway_directory_record_payment",
            "INSERT INTO payments (payment_id, side, account_id, customer_id, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_id) DO NOTHING",
            &[
                &payment.payment_id,
                &payment.side.as_str(),
                &payment.account_id,
                &payment.customer_id,
                &payment.created_at,
            ],
        )
        .await
    }

    pub async fn payment(&self, payment_id: Uuid) -> Result<Option<PaymentEntry>, ApiError> {
        self.row(
            "gateway_directory_payment",
            "SELECT * FROM payments WHERE payment_id = $1",
            &[&payment_id],
            payment_entry,
        )
        .await
    }
}
