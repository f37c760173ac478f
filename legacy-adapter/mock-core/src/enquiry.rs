//! `ENQUIRY.SELECT`: read-only questions to the books. Rows come back as multi-values; a
//! page is cut (`MORE=Y`) at its `LIMIT` and also before the answer would pass the
//! protocol's limits on fields and line length, but always carries at least one row.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use corebank_db::Transaction;
use rust_decimal::Decimal;

use super::apps::{self, available};
use super::books::{self, current_journal, locked_amount};
use super::input::{
    Answer, Input, Outcome, Record, amount_text, corrupt, date_text, position, refuse,
};
use super::{loans, transfer};
use corebank_legacy_ofs::{FIELDS_MAX, Field, LINE_BYTES_MAX, Request};

/// Fields and bytes a page may use, leaving room for the header and `MORE`.
const PAGE_FIELDS_MAX: usize = FIELDS_MAX - 10;
const PAGE_BYTES_MAX: usize = LINE_BYTES_MAX - 4_096;
const STMT_LIMIT_MAX: i64 = 200;
const STMT_LIMIT_DEFAULT: i64 = 50;
const EXPORT_LIMIT_MAX: i64 = 100;
const EXPORT_LIMIT_DEFAULT: i64 = 20;
/// Locks read per account by `ACCT.EXPORT`: more than one page can hold (3 fields each), so
/// an account with more always answers `LOCKS.MORE=Y`.
const EXPORT_LOCKS_READ: i64 = 400;
const LOCKS_LIMIT_MAX: i64 = 200;
const LOCKS_LIMIT_DEFAULT: i64 = 100;
const ACCOUNTS_LIMIT_MAX: i64 = 500;
const ACCOUNTS_LIMIT_DEFAULT: i64 = 500;
/// The locks live at a journal number (`$2`) and on a date (`$3`), after a lock id (`$4`),
/// in id order (byte order, the same in `ACCT.EXPORT` and `ACCT.LOCKS`).
const LIVE_LOCKS_SQL: &str = "SELECT id, amount, to_date FROM locked_events WHERE account = $1 \
     AND created_journal <= $2 AND (ended_journal IS NULL OR ended_journal > $2) \
     AND (to_date IS NULL OR to_date >= $3) AND id COLLATE \"C\" > $4 \
     ORDER BY id COLLATE \"C\" LIMIT $5";

/// Rows added while they fit the protocol's limits.
#[derive(Debug, Default)]
struct Page {
    record: Record,
    bytes: usize,
    cut: bool,
}

/// The most bytes a row may take on the line: escaping at most doubles a value;
/// ":999:999=" and the comma add 10.
fn row_bytes(row: &[Field]) -> usize {
    row.iter()
        .map(|f| f.name.len() + 2 * f.value.len() + 10)
        .sum()
}

impl Page {
    fn is_empty(&self) -> bool {
        self.record.0.is_empty()
    }

    /// Whether `fields` more fields of `bytes` more bytes still fit.
    fn has_room(&self, fields: usize, bytes: usize) -> bool {
        !self.cut
            && self.record.0.len() + fields <= PAGE_FIELDS_MAX
            && self.bytes + bytes <= PAGE_BYTES_MAX
    }

    /// Adds the row if it fits; otherwise marks the page cut and says no.
    fn push(&mut self, row: Vec<Field>) -> bool {
        let bytes = row_bytes(&row);
        if !self.has_room(row.len(), bytes) {
            self.cut = true;
            return false;
        }
        self.bytes += bytes;
        self.record.0.extend(row);
        true
    }

    /// Ends the page before the next row: `MORE=Y`.
    fn cut(&mut self) {
        self.cut = true;
    }

    fn finish(mut self, more: bool) -> Vec<Field> {
        let more = more || self.cut;
        self.record.field("MORE", if more { "Y" } else { "N" });
        self.record.into_fields()
    }
}

fn row_field(name: &str, n: usize, value: impl Into<String>) -> Field {
    let mut record = Record::default();
    record.multi(name, n, value);
    record.0.remove(0)
}

fn limit(input: &Input<'_>, name: &str, default: i64, max: i64) -> Outcome<i64> {
    match input.text(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| refuse(name, "INVALID VALUE")),
    }
}

fn journal_number(input: &Input<'_>, name: &str) -> Outcome<Option<i64>> {
    input
        .text(name)
        .map(|text| {
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| refuse(name, "INVALID VALUE"))
        })
        .transpose()
}

/// The id `sql` finds for the one selection field `by`, answered as the field `answer`.
async fn id_by(
    tx: &Transaction<'_>,
    request: &Request,
    by: &str,
    sql: &str,
    answer: &str,
) -> Outcome<Vec<Field>> {
    let input = Input::check(&request.fields, &[by], &[])?;
    let key = input.required(by)?;
    let row = tx
        .query_opt(sql, &[&key])
        .await?
        .ok_or_else(|| refuse(by, "RECORD NOT FOUND"))?;
    Ok(vec![Field::new(answer, row.get::<_, String>("id"))])
}

pub(crate) async fn enquiry(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let name = request.transaction_id.as_str();
    let fields = match name {
        "ACCT.BALANCE" => account_balance(tx, request, today).await?,
        "STMT.ENT.BOOK" => statement(tx, request).await?,
        "TXN.BY.ID" => transaction_by_id(tx, request, today).await?,
        "CUSTOMER.BY.MNEMONIC" => {
            let sql = "SELECT id FROM customers WHERE mnemonic = $1";
            id_by(tx, request, "MNEMONIC", sql, "CUSTOMER").await?
        }
        "ACCT.BY.ALT.ID" => {
            let sql = "SELECT id FROM accounts WHERE alt_acct_id = $1";
            id_by(tx, request, "ALT.ACCT.ID", sql, "ACCOUNT").await?
        }
        "ACCTS.BY.CUSTOMER" => accounts_by_customer(tx, request).await?,
        "ACCT.EXPORT" => export(tx, request, today).await?,
        "ACCT.LOCKS" => account_locks(tx, request, today).await?,
        "BOOKS.BALANCE" => books_balance(tx, request).await?,
        _ => return Err(refuse("ID", "RECORD NOT FOUND")),
    };
    Ok(Answer::done(name, fields))
}

async fn account_balance(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Vec<Field>> {
    let input = Input::check(&request.fields, &["ACCOUNT"], &[])?;
    let id = input.required_account("ACCOUNT")?;
    let account = books::account(tx, &id)
        .await?
        .ok_or_else(|| refuse("ACCOUNT", "MISSING ACCOUNT"))?;
    let locked = locked_amount(tx, &id, today).await?;
    let available = available(tx, &account, today).await?;
    let mut record = Record::default();
    record
        .field("ACCOUNT", id)
        .field("WORKING.BALANCE", amount_text(account.working_balance))
        .field("LOCKED.AMOUNT", amount_text(locked))
        .field("AVAILABLE.BALANCE", amount_text(available))
        .field("CURRENCY", account.currency.clone())
        .field("CUSTOMER", account.customer.clone().unwrap_or_default())
        .field("CATEGORY", account.category.to_string())
        .field("PRODUCT.CODE", account.product_code.clone())
        .field(
            "ALT.ACCT.ID",
            account.alt_acct_id.clone().unwrap_or_default(),
        )
        .field("POSTING.RESTRICT", account.posting_restrict.clone())
        .field("OPENING.DATE", date_text(Some(account.opening_date)))
        .field("CLOSURE.DATE", date_text(account.closure_date));
    Ok(record.into_fields())
}

async fn statement(tx: &Transaction<'_>, request: &Request) -> Outcome<Vec<Field>> {
    let input = Input::check(
        &request.fields,
        &["ACCOUNT", "AFTER", "LIMIT", "UP.TO.JOURNAL"],
        &[],
    )?;
    let id = input.required_account("ACCOUNT")?;
    let after = match input.text("AFTER") {
        None => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| refuse("AFTER", "INVALID VALUE"))?,
    };
    let limit = limit(&input, "LIMIT", STMT_LIMIT_DEFAULT, STMT_LIMIT_MAX)?;
    let up_to = journal_number(&input, "UP.TO.JOURNAL")?.unwrap_or(i64::MAX);
    if books::account(tx, &id).await?.is_none() {
        return Err(refuse("ACCOUNT", "MISSING ACCOUNT"));
    }
    // Entry ids grow with the journal, so the entries up to a journal number are a prefix.
    let opening: Decimal = tx
        .query_one(
            "SELECT COALESCE(sum(amount), 0) FROM stmt_entries \
             WHERE account = $1 AND id <= $2 AND journal <= $3",
            &[&id, &after, &up_to],
        )
        .await?
        .get(0);
    let rows = tx
        .query(
            "SELECT id, trans_reference, booking_date, value_date, amount, narrative, journal \
             FROM stmt_entries WHERE account = $1 AND id > $2 AND journal <= $3 \
             ORDER BY id LIMIT $4",
            &[&id, &after, &up_to, &(limit + 1)],
        )
        .await?;
    let mut balance = opening;
    let mut page = Page::default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    for (index, row) in rows.iter().take(limit).enumerate() {
        let n = index + 1;
        let amount: Decimal = row.get("amount");
        let next_balance = balance + amount;
        let fits = page.push(vec![
            row_field("ENTRY.ID", n, row.get::<_, i64>("id").to_string()),
            row_field(
                "TRANS.REFERENCE",
                n,
                row.get::<_, String>("trans_reference"),
            ),
            row_field("BOOKING.DATE", n, date_text(Some(row.get("booking_date")))),
            row_field("VALUE.DATE", n, date_text(Some(row.get("value_date")))),
            row_field("AMOUNT", n, amount_text(amount)),
            row_field("NARRATIVE", n, row.get::<_, String>("narrative")),
            row_field("BALANCE", n, amount_text(next_balance)),
            row_field("JOURNAL", n, row.get::<_, i64>("journal").to_string()),
        ]);
        if !fits {
            break;
        }
        balance = next_balance;
    }
    Ok(page.finish(rows.len() > limit))
}

async fn transaction_by_id(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Vec<Field>> {
    let input = Input::check(&request.fields, &["ID"], &[])?;
    let id = input.required("ID")?;
    let found = if id.starts_with("ACLK") {
        apps::lock(tx, id, today)
            .await?
            .map(|lock| ("AC.LOCKED.EVENTS", lock.record()))
    } else if id.starts_with("FT") {
        transfer::transfer_record(tx, id)
            .await?
            .map(|fields| ("FUNDS.TRANSFER", fields))
    } else if id.starts_with("LD") {
        loans::loan_record(tx, id)
            .await?
            .map(|fields| ("LD.LOANS.AND.DEPOSITS", fields))
    } else {
        None
    };
    let (application, record) = found.ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
    let mut fields = vec![Field::new("APPLICATION", application)];
    fields.extend(record);
    Ok(fields)
}

async fn accounts_by_customer(tx: &Transaction<'_>, request: &Request) -> Outcome<Vec<Field>> {
    let input = Input::check(&request.fields, &["CUSTOMER", "AFTER", "LIMIT"], &[])?;
    let customer = input
        .customer("CUSTOMER")?
        .ok_or_else(|| refuse("CUSTOMER", "MANDATORY INPUT"))?;
    let after = input.account("AFTER")?.unwrap_or_default();
    let limit = limit(&input, "LIMIT", ACCOUNTS_LIMIT_DEFAULT, ACCOUNTS_LIMIT_MAX)?;
    books::existing_customer(tx, "CUSTOMER", &customer).await?;
    let rows = tx
        .query(
            "SELECT id FROM accounts WHERE customer = $1 AND id > $2 ORDER BY id LIMIT $3",
            &[&customer, &after, &(limit + 1)],
        )
        .await?;
    let mut page = Page::default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    for (index, row) in rows.iter().take(limit).enumerate() {
        if !page.push(vec![row_field(
            "ACCOUNT",
            index + 1,
            row.get::<_, String>("id"),
        )]) {
            break;
        }
    }
    Ok(page.finish(rows.len() > limit))
}

/// A lock as a row: `LOCK.ID`, `LOCK.AMOUNT`, `LOCK.TO.DATE` (empty when it has none) at
/// `n:s`.
fn lock_row(lock: &corebank_db::tokio_postgres::Row, n: usize, s: usize) -> [Field; 3] {
    let at = |name: &str, value: String| Field {
        name: name.to_owned(),
        multi_value: position(n),
        sub_value: position(s),
        value,
    };
    [
        at("LOCK.ID", lock.get("id")),
        at("LOCK.AMOUNT", amount_text(lock.get("amount"))),
        at("LOCK.TO.DATE", date_text(lock.get("to_date"))),
    ]
}

/// The journal number a paged enquiry reads at: the given one (at most the current one,
/// else `INVALID VALUE`) or the current one.
async fn read_journal(tx: &Transaction<'_>, input: &Input<'_>) -> Outcome<i64> {
    let current = current_journal(tx).await?;
    match journal_number(input, "JOURNAL")? {
        Some(journal) if journal > current => Err(refuse("JOURNAL", "INVALID VALUE")),
        Some(journal) => Ok(journal),
        None => Ok(current),
    }
}

async fn export(tx: &Transaction<'_>, request: &Request, today: NaiveDate) -> Outcome<Vec<Field>> {
    let input = Input::check(
        &request.fields,
        &["PRODUCT.CODE", "AFTER", "LIMIT", "JOURNAL", "AS.OF.DATE"],
        &[],
    )?;
    let product = input.text("PRODUCT.CODE").unwrap_or_default();
    let after = input.account("AFTER")?.unwrap_or_default();
    let limit = limit(&input, "LIMIT", EXPORT_LIMIT_DEFAULT, EXPORT_LIMIT_MAX)?;
    let journal = read_journal(tx, &input).await?;
    let as_of = input.date("AS.OF.DATE")?.unwrap_or(today);
    let filter = if product.is_empty() {
        "$4 = ''"
    } else {
        "product_code = $4"
    };
    let rows = tx
        .query(
            &format!(
                "SELECT id, customer, currency, category, opening_date, closure_date, \
                 closed_journal FROM accounts \
                 WHERE customer IS NOT NULL AND opened_journal <= $1 AND id > $2 AND {filter} \
                 ORDER BY id LIMIT $3"
            ),
            &[&journal, &after, &(limit + 1), &product],
        )
        .await?;
    let balance_query = tx
        .prepare_cached(
            "SELECT COALESCE(sum(amount), 0) FROM stmt_entries WHERE account = $1 AND journal <= $2",
        )
        .await?;
    let locks_query = tx.prepare_cached(LIVE_LOCKS_SQL).await?;
    let mut page = Page::default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let read_max = usize::try_from(EXPORT_LOCKS_READ).unwrap_or(usize::MAX);
    let mut shown = 0;
    for (index, row) in rows.iter().take(limit).enumerate() {
        let n = index + 1;
        let id: String = row.get("id");
        let balance: Decimal = tx.query_one(&balance_query, &[&id, &journal]).await?.get(0);
        let locks = tx
            .query(
                &locks_query,
                &[&id, &journal, &as_of, &"", &(EXPORT_LOCKS_READ + 1)],
            )
            .await?;
        let closed_journal: Option<i64> = row.get("closed_journal");
        let closure_date: Option<NaiveDate> = row.get("closure_date");
        let closure = closure_date.filter(|_| closed_journal.is_some_and(|j| j <= journal));
        let mut fields = vec![
            row_field("ACCOUNT", n, id.clone()),
            row_field(
                "CUSTOMER",
                n,
                row.get::<_, Option<String>>("customer").unwrap_or_default(),
            ),
            row_field("CURRENCY", n, row.get::<_, String>("currency")),
            row_field("CATEGORY", n, row.get::<_, i64>("category").to_string()),
            row_field("OPENING.DATE", n, date_text(Some(row.get("opening_date")))),
            row_field("CLOSURE.DATE", n, date_text(closure)),
            row_field("WORKING.BALANCE", n, amount_text(balance)),
        ];
        // The locks that fit after the account's fields and its LOCKS.MORE.
        let lock_rows: Vec<[Field; 3]> = locks
            .iter()
            .take(read_max)
            .enumerate()
            .map(|(s, lock)| lock_row(lock, n, s + 1))
            .collect();
        let mut room_fields = fields.len() + 1;
        let mut room_bytes = row_bytes(&fields) + 30;
        let mut fitting = 0;
        for lock in &lock_rows {
            let bytes = row_bytes(lock);
            if !page.has_room(room_fields + lock.len(), room_bytes + bytes) {
                break;
            }
            room_fields += lock.len();
            room_bytes += bytes;
            fitting += 1;
        }
        let all_locks = fitting == locks.len();
        if !all_locks && !page.is_empty() {
            // Not all its locks fit here: the account starts the next page, where it has
            // the whole page to itself.
            page.cut();
            break;
        }
        for lock in lock_rows.into_iter().take(fitting) {
            fields.extend(lock);
        }
        fields.push(row_field(
            "LOCKS.MORE",
            n,
            if all_locks { "N" } else { "Y" },
        ));
        if !page.push(fields) {
            break;
        }
        shown = n;
    }
    let more = rows.len() > limit || shown < rows.len().min(limit);
    let mut fields = vec![
        Field::new("JOURNAL", journal.to_string()),
        Field::new("AS.OF.DATE", date_text(Some(as_of))),
    ];
    fields.extend(page.finish(more));
    Ok(fields)
}

/// `ACCT.LOCKS`: an account's locks live at a journal number and on a date, in the order
/// `ACCT.EXPORT` lists them, from after a lock id.
async fn account_locks(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Vec<Field>> {
    let input = Input::check(
        &request.fields,
        &["ACCOUNT", "JOURNAL", "AS.OF.DATE", "AFTER", "LIMIT"],
        &[],
    )?;
    let id = input.required_account("ACCOUNT")?;
    if input.text("JOURNAL").is_none() {
        return Err(refuse("JOURNAL", "MANDATORY INPUT"));
    }
    let journal = read_journal(tx, &input).await?;
    let as_of = input.date("AS.OF.DATE")?.unwrap_or(today);
    let after = input.text("AFTER").unwrap_or_default();
    let limit = limit(&input, "LIMIT", LOCKS_LIMIT_DEFAULT, LOCKS_LIMIT_MAX)?;
    if books::account(tx, &id).await?.is_none() {
        return Err(refuse("ACCOUNT", "MISSING ACCOUNT"));
    }
    let rows = tx
        .query(
            LIVE_LOCKS_SQL,
            &[&id, &journal, &as_of, &after, &(limit + 1)],
        )
        .await?;
    let mut page = Page::default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    for (index, row) in rows.iter().take(limit).enumerate() {
        if !page.push(lock_row(row, index + 1, 1).into()) {
            break;
        }
    }
    let mut fields = vec![
        Field::new("ACCOUNT", id),
        Field::new("JOURNAL", journal.to_string()),
        Field::new("AS.OF.DATE", date_text(Some(as_of))),
    ];
    fields.extend(page.finish(rows.len() > limit));
    Ok(fields)
}

async fn books_balance(tx: &Transaction<'_>, request: &Request) -> Outcome<Vec<Field>> {
    Input::check(&request.fields, &[], &[])?;
    let accounts = tx
        .query(
            "SELECT currency, sum(working_balance) AS total, count(*) AS accounts \
             FROM accounts GROUP BY currency ORDER BY currency",
            &[],
        )
        .await?;
    let entries = tx
        .query(
            "SELECT a.currency, sum(e.amount) AS total FROM stmt_entries e \
             JOIN accounts a ON a.id = e.account GROUP BY a.currency",
            &[],
        )
        .await?;
    let entries: BTreeMap<String, Decimal> = entries
        .iter()
        .map(|row| (row.get("currency"), row.get("total")))
        .collect();
    // One row per currency, and only the few allowed currencies have accounts: a page
    // always holds them all. Should it not, the answer is an error, never a silent cut.
    let mut page = Page::default();
    for (index, row) in accounts.iter().enumerate() {
        let n = index + 1;
        let currency: String = row.get("currency");
        let entries_total = entries.get(&currency).copied().unwrap_or_default();
        let fits = page.push(vec![
            row_field("CURRENCY", n, currency.clone()),
            row_field("TOTAL", n, amount_text(row.get("total"))),
            row_field("ENTRIES.TOTAL", n, amount_text(entries_total)),
            row_field("ACCOUNTS", n, row.get::<_, i64>("accounts").to_string()),
        ]);
        if !fits {
            return Err(corrupt(
                "BOOKS.BALANCE has more currencies than one answer holds",
            ));
        }
    }
    Ok(page.record.into_fields())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_stops_before_the_protocols_limits() {
        let mut page = Page::default();
        let mut rows = 0;
        while page.push(
            (0..8)
                .map(|i| row_field("F", i + 1, "x".repeat(30)))
                .collect(),
        ) {
            rows += 1;
        }
        assert!(rows * 8 <= PAGE_FIELDS_MAX);
        let fields = page.finish(false);
        assert_eq!(fields.last().map(|f| f.value.as_str()), Some("Y"));
    }
}
