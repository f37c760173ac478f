//! The books: the journal counter, id counters, accounts and their balances, and postings
//! (statement entries that sum to zero). All SQL on accounts and entries lives here.

use chrono::NaiveDate;
use corebank_db::tokio_postgres::Row;
use corebank_db::{Db, Transaction, TxError};
use rust_decimal::Decimal;

use super::input::{Outcome, Record, Reject, amount_text, corrupt, date_text, refuse};
use corebank_legacy_ofs::formats;

/// The currencies the core keeps internal accounts for.
pub(crate) const CURRENCIES: [&str; 4] = ["CHF", "EUR", "GBP", "USD"];
pub(crate) const CATEGORY_CASH: u32 = 10_001;
pub(crate) const CATEGORY_CLEARING: u32 = 12_810;
pub(crate) const CATEGORY_LOANS_CONTROL: u32 = 21_050;
pub(crate) const CATEGORY_MIGRATION_SUSPENSE: u32 = 12_900;
pub(crate) const CATEGORY_INTER_CORE_CLEARING: u32 = 12_950;
pub(crate) const CATEGORY_INTEREST_INCOME: u32 = 52_000;
const INTERNAL_CATEGORIES: [(u32, &str); 6] = [
    (CATEGORY_CASH, "CASH"),
    (CATEGORY_CLEARING, "CLEARING"),
    (CATEGORY_MIGRATION_SUSPENSE, "MIGRATION SUSPENSE"),
    (CATEGORY_INTER_CORE_CLEARING, "INTER-CORE CLEARING"),
    (CATEGORY_LOANS_CONTROL, "LOANS CONTROL"),
    (CATEGORY_INTEREST_INCOME, "INTEREST INCOME"),
];
/// Customer account serials start above this.
pub(crate) const ACCOUNT_SERIAL_BASE: i64 = 10_000_000;
/// The most legs one posting may have.
const LEGS_MAX: usize = 16;

/// Takes the next journal number. Every write transaction calls this first: the update of
/// the one row serialises writers (a monolith's global lock, on purpose).
pub(crate) async fn next_journal(tx: &Transaction<'_>) -> Outcome<i64> {
    let row = tx
        .query_one(
            "UPDATE journal SET last_number = last_number + 1 WHERE id = 1 RETURNING last_number",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// The last journal number committed.
pub(crate) async fn current_journal(tx: &Transaction<'_>) -> Outcome<i64> {
    let row = tx
        .query_one("SELECT last_number FROM journal WHERE id = 1", &[])
        .await?;
    Ok(row.get(0))
}

/// Hands out `count` values of the counter `name` (the first one ever is `start + 1`);
/// returns the last of them.
pub(crate) async fn next_counter(
    tx: &Transaction<'_>,
    name: &str,
    start: i64,
    count: i64,
) -> Outcome<i64> {
    let row = tx
        .query_one(
            "INSERT INTO counters (name, last_value) VALUES ($1, $2::INT8 + $3::INT8) \
             ON CONFLICT (name) DO UPDATE SET last_value = counters.last_value + $3::INT8 \
             RETURNING last_value",
            &[&name, &start, &count],
        )
        .await?;
    Ok(row.get(0))
}

pub(crate) fn is_currency_allowed(currency: &str) -> bool {
    CURRENCIES.contains(&currency)
}

/// The internal account of `currency` and `category`.
pub(crate) fn internal_account(currency: &str, category: u32) -> Outcome<String> {
    formats::account_number(currency, category).map_err(|e| corrupt(e.to_string()))
}

/// One account as stored.
#[derive(Debug, Clone)]
pub(crate) struct AccountRow {
    pub id: String,
    pub customer: Option<String>,
    pub category: i64,
    pub currency: String,
    pub title: String,
    pub alt_acct_id: Option<String>,
    pub product_code: String,
    pub opening_date: NaiveDate,
    pub posting_restrict: String,
    pub closure_date: Option<NaiveDate>,
    pub working_balance: Decimal,
}

impl AccountRow {
    pub(crate) fn is_internal(&self) -> bool {
        self.customer.is_none()
    }
}

pub(crate) const ACCOUNT_COLUMNS: &str = "id, customer, category, currency, title, alt_acct_id, \
     product_code, opening_date, posting_restrict, closure_date, working_balance, \
     migration_state";

pub(crate) fn account_from_row(row: &Row) -> AccountRow {
    AccountRow {
        id: row.get("id"),
        customer: row.get("customer"),
        category: row.get("category"),
        currency: row.get("currency"),
        title: row.get("title"),
        alt_acct_id: row.get("alt_acct_id"),
        product_code: row.get("product_code"),
        opening_date: row.get("opening_date"),
        // A move's state shows as the core's own restriction codes (90, 91).
        posting_restrict: match row.get::<_, &str>("migration_state") {
            "MIGRATING" => super::migration::RESTRICT_MIGRATING.to_owned(),
            "MIGRATED" => super::migration::RESTRICT_MIGRATED.to_owned(),
            _ => row.get("posting_restrict"),
        },
        closure_date: row.get("closure_date"),
        working_balance: row.get("working_balance"),
    }
}

pub(crate) async fn account(tx: &Transaction<'_>, id: &str) -> Outcome<Option<AccountRow>> {
    let row = tx
        .query_opt(
            &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.as_ref().map(account_from_row))
}

/// The sum of the account's live locks on `today` (a lock lapses after its `TO.DATE`).
pub(crate) async fn locked_amount(
    tx: &Transaction<'_>,
    account: &str,
    today: NaiveDate,
) -> Outcome<Decimal> {
    let row = tx
        .query_one(
            "SELECT COALESCE(sum(amount), 0) FROM locked_events \
             WHERE account = $1 AND status = 'LIVE' AND (to_date IS NULL OR to_date >= $2)",
            &[&account, &today],
        )
        .await?;
    Ok(row.get(0))
}

/// An account that may be posted to: it exists (`MISSING ACCOUNT`), is open (`ACCOUNT
/// CLOSED`) and has no posting restriction (`POSTING RESTRICTED`, or `ACCOUNT MIGRATING` /
/// `ACCOUNT MIGRATED` while and after it moves to another core); errors name `field`.
pub(crate) async fn postable_account(
    tx: &Transaction<'_>,
    field: &str,
    id: &str,
) -> Outcome<AccountRow> {
    let account = account(tx, id)
        .await?
        .ok_or_else(|| refuse(field, "MISSING ACCOUNT"))?;
    if account.closure_date.is_some() {
        return Err(refuse(field, "ACCOUNT CLOSED"));
    }
    if let Some(text) = super::migration::posting_refusal(&account.posting_restrict) {
        return Err(refuse(field, text));
    }
    Ok(account)
}

/// The account as `ACCOUNT` answers it.
pub(crate) fn account_record(
    account: &AccountRow,
    locked: Decimal,
) -> Vec<corebank_legacy_ofs::Field> {
    let mut record = Record::default();
    record
        .field("CUSTOMER", account.customer.clone().unwrap_or_default())
        .field("CATEGORY", account.category.to_string())
        .field("CURRENCY", account.currency.clone())
        .field("ACCOUNT.TITLE.1", account.title.clone())
        .field(
            "ALT.ACCT.ID",
            account.alt_acct_id.clone().unwrap_or_default(),
        )
        .field("PRODUCT.CODE", account.product_code.clone())
        .field("OPENING.DATE", date_text(Some(account.opening_date)))
        .field("WORKING.BALANCE", amount_text(account.working_balance))
        .field("LOCKED.AMOUNT", amount_text(locked))
        .field("POSTING.RESTRICT", account.posting_restrict.clone())
        .field("CLOSURE.DATE", date_text(account.closure_date));
    record.into_fields()
}

/// What a posting books.
#[derive(Debug)]
pub(crate) struct Posting<'a> {
    pub journal: i64,
    pub reference: &'a str,
    pub booking_date: NaiveDate,
    pub value_date: NaiveDate,
    pub narrative: &'a str,
    /// (account, signed amount): credits positive, debits negative.
    pub legs: Vec<(String, Decimal)>,
}

/// Books a posting: one statement entry per leg, and each account's working balance moved
/// in the same transaction. Refuses (as corrupt) legs that do not sum to zero. Returns the
/// entry ids.
///
/// One statement does it all (the entry ids taken from the `STMT.ENTRY` counter, the
/// entries, the balances): a posting is written while the core's writers wait their turn
/// behind it, so its round trips to the database are every writer's.
pub(crate) async fn post(tx: &Transaction<'_>, posting: &Posting<'_>) -> Outcome<Vec<i64>> {
    let total: Decimal = posting.legs.iter().map(|(_, amount)| *amount).sum();
    if !total.is_zero() || posting.legs.is_empty() || posting.legs.len() > LEGS_MAX {
        return Err(corrupt(format!(
            "posting {} does not balance or has too many legs: {:?}",
            posting.reference, posting.legs
        )));
    }
    let (accounts, amounts): (Vec<&str>, Vec<Decimal>) = posting
        .legs
        .iter()
        .filter(|(_, amount)| !amount.is_zero())
        .map(|(account, amount)| (account.as_str(), *amount))
        .unzip();
    let count = i64::try_from(accounts.len()).map_err(|_| corrupt("leg count"))?;
    let mut distinct = accounts.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let distinct = i64::try_from(distinct.len()).map_err(|_| corrupt("leg count"))?;
    // The legs in order (`n` from 1): the entry of leg n is the counter's value before this
    // posting plus n (the counter taken as `next_counter` takes it, folded into this
    // statement). An account on two legs is moved once, by their sum.
    let statement = tx
        .prepare_cached(
            "WITH legs AS ( \
               SELECT account, amount, n FROM UNNEST($1::TEXT[], $2::NUMERIC[]) \
                 WITH ORDINALITY AS l(account, amount, n) \
             ), counter AS ( \
               INSERT INTO counters (name, last_value) VALUES ('STMT.ENTRY', $3::INT8) \
               ON CONFLICT (name) DO UPDATE SET last_value = counters.last_value + $3::INT8 \
               RETURNING last_value \
             ), entries AS ( \
               INSERT INTO stmt_entries (id, account, amount, journal, trans_reference, \
                 booking_date, value_date, narrative) \
               SELECT counter.last_value - $3::INT8 + legs.n, legs.account, legs.amount, $4, \
                 $5, $6, $7, $8 \
               FROM legs CROSS JOIN counter \
               RETURNING id \
             ), moved AS ( \
               UPDATE accounts SET working_balance = working_balance + l.amount \
               FROM (SELECT account, sum(amount) AS amount FROM legs GROUP BY account) AS l \
               WHERE accounts.id = l.account \
               RETURNING accounts.id \
             ) \
             SELECT (SELECT count(*) FROM moved), \
                    ARRAY(SELECT id FROM entries ORDER BY id)",
        )
        .await?;
    let row = tx
        .query_one(
            &statement,
            &[
                &accounts,
                &amounts,
                &count,
                &posting.journal,
                &posting.reference,
                &posting.booking_date,
                &posting.value_date,
                &posting.narrative,
            ],
        )
        .await?;
    let moved: i64 = row.get(0);
    if moved != distinct {
        return Err(corrupt(format!(
            "posting {} names an unknown account: {accounts:?}",
            posting.reference
        )));
    }
    Ok(row.get(1))
}

/// Books `amount` out of `account` into `to` on `today` (referenced by the account), as the
/// closing or moving of an account does; returns the entry ids.
pub(crate) async fn pay_out(
    tx: &Transaction<'_>,
    journal: i64,
    account: &str,
    to: String,
    amount: Decimal,
    today: NaiveDate,
    narrative: &str,
) -> Outcome<Vec<i64>> {
    post(
        tx,
        &Posting {
            journal,
            reference: account,
            booking_date: today,
            value_date: today,
            narrative,
            legs: vec![(account.to_owned(), -amount), (to, amount)],
        },
    )
    .await
}

/// Creates the internal accounts (six categories in each currency) if they are missing.
pub(crate) async fn ensure_internal_accounts(db: &Db, today: NaiveDate) -> Result<(), String> {
    let mut accounts = Vec::new();
    for currency in CURRENCIES {
        for (category, name) in INTERNAL_CATEGORIES {
            let id = formats::account_number(currency, category).map_err(|e| e.to_string())?;
            accounts.push((
                id,
                currency,
                i64::from(category),
                format!("{name} {currency}"),
            ));
        }
    }
    let accounts = &accounts;
    db.run_tx("legacy_core_internal_accounts", |tx| {
        Box::pin(async move {
            for (id, currency, category, title) in accounts {
                tx.execute(
                    "INSERT INTO accounts (id, customer, category, currency, title, alt_acct_id, \
                     product_code, opening_date, posting_restrict, closure_date, \
                     working_balance, opened_journal, closed_journal) \
                     VALUES ($1, NULL, $2, $3, $4, NULL, '', $5, '', NULL, 0, 0, NULL) \
                     ON CONFLICT (id) DO NOTHING",
                    &[id, category, currency, title, &today],
                )
                .await?;
            }
            Ok::<_, TxError<Reject>>(())
        })
    })
    .await
    .map_err(|e| format!("cannot create the internal accounts: {e:?}"))
}

/// Refuses `field` with RECORD NOT FOUND unless the customer `customer` exists.
pub(crate) async fn existing_customer(
    tx: &Transaction<'_>,
    field: &str,
    customer: &str,
) -> Outcome<()> {
    let known = tx
        .query_opt("SELECT 1 FROM customers WHERE id = $1", &[&customer])
        .await?
        .is_some();
    if known {
        Ok(())
    } else {
        Err(refuse(field, "RECORD NOT FOUND"))
    }
}
