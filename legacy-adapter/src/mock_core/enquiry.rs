//! `ENQUIRY.SELECT`: read-only questions to the books. Rows come back as multi-values; a
//! page is cut (`MORE=Y`) at its `LIMIT` and also before the answer would pass the
//! protocol's limits on fields and line length.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use corebank_db::Transaction;
use rust_decimal::Decimal;

use super::apps::{self, available};
use super::books::{self, current_journal, locked_amount};
use super::input::{Answer, Input, Outcome, Record, amount_text, date_text, refuse};
use super::{loans, transfer};
use crate::ofs::{FIELDS_MAX, Field, LINE_BYTES_MAX, Request};

/// Fields and bytes a page may use, leaving room for the header and `MORE`.
const PAGE_FIELDS_MAX: usize = FIELDS_MAX - 10;
const PAGE_BYTES_MAX: usize = LINE_BYTES_MAX - 4_096;
const STMT_LIMIT_MAX: i64 = 200;
const STMT_LIMIT_DEFAULT: i64 = 50;
const EXPORT_LIMIT_MAX: i64 = 100;
const EXPORT_LIMIT_DEFAULT: i64 = 20;
/// The most rows of a list that has no cursor (accounts of a customer, locks of an account).
const LIST_ROWS_MAX: i64 = 999;

/// Rows added while they fit the protocol's limits.
#[derive(Debug, Default)]
struct Page {
    record: Record,
    bytes: usize,
    cut: bool,
}

impl Page {
    /// Adds the row if it fits; otherwise marks the page cut and says no.
    fn push(&mut self, row: Vec<Field>) -> bool {
        // Escaping at most doubles a value; ":999:999=" and the comma add 10.
        let bytes: usize = row
            .iter()
            .map(|f| f.name.len() + 2 * f.value.len() + 10)
            .sum();
        if self.cut
            || self.record.0.len() + row.len() > PAGE_FIELDS_MAX
            || self.bytes + bytes > PAGE_BYTES_MAX
        {
            self.cut = true;
            return false;
        }
        self.bytes += bytes;
        self.record.0.extend(row);
        true
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
            let input = Input::check(&request.fields, &["MNEMONIC"], &[])?;
            let mnemonic = input.required("MNEMONIC")?;
            let row = tx
                .query_opt("SELECT id FROM customers WHERE mnemonic = $1", &[&mnemonic])
                .await?
                .ok_or_else(|| refuse("MNEMONIC", "RECORD NOT FOUND"))?;
            vec![Field::new("CUSTOMER", row.get::<_, String>("id"))]
        }
        "ACCT.BY.ALT.ID" => {
            let input = Input::check(&request.fields, &["ALT.ACCT.ID"], &[])?;
            let alt = input.required("ALT.ACCT.ID")?;
            let row = tx
                .query_opt("SELECT id FROM accounts WHERE alt_acct_id = $1", &[&alt])
                .await?
                .ok_or_else(|| refuse("ALT.ACCT.ID", "RECORD NOT FOUND"))?;
            vec![Field::new("ACCOUNT", row.get::<_, String>("id"))]
        }
        "ACCTS.BY.CUSTOMER" => accounts_by_customer(tx, request).await?,
        "ACCT.EXPORT" => export(tx, request, today).await?,
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
    let input = Input::check(&request.fields, &["CUSTOMER"], &[])?;
    let customer = input
        .customer("CUSTOMER")?
        .ok_or_else(|| refuse("CUSTOMER", "MANDATORY INPUT"))?;
    let known = tx
        .query_opt("SELECT 1 FROM customers WHERE id = $1", &[&customer])
        .await?
        .is_some();
    if !known {
        return Err(refuse("CUSTOMER", "RECORD NOT FOUND"));
    }
    let rows = tx
        .query(
            "SELECT id FROM accounts WHERE customer = $1 ORDER BY id LIMIT $2",
            &[&customer, &(LIST_ROWS_MAX + 1)],
        )
        .await?;
    let mut page = Page::default();
    let max = usize::try_from(LIST_ROWS_MAX).unwrap_or(usize::MAX);
    for (index, row) in rows.iter().take(max).enumerate() {
        if !page.push(vec![row_field(
            "ACCOUNT",
            index + 1,
            row.get::<_, String>("id"),
        )]) {
            break;
        }
    }
    Ok(page.finish(rows.len() > max))
}

async fn export(tx: &Transaction<'_>, request: &Request, today: NaiveDate) -> Outcome<Vec<Field>> {
    let input = Input::check(
        &request.fields,
        &["PRODUCT.CODE", "AFTER", "LIMIT", "JOURNAL"],
        &[],
    )?;
    let product = input.text("PRODUCT.CODE").unwrap_or_default();
    let after = input.account("AFTER")?.unwrap_or_default();
    let limit = limit(&input, "LIMIT", EXPORT_LIMIT_DEFAULT, EXPORT_LIMIT_MAX)?;
    let current = current_journal(tx).await?;
    let journal = match journal_number(&input, "JOURNAL")? {
        Some(journal) if journal > current => return Err(refuse("JOURNAL", "INVALID VALUE")),
        Some(journal) => journal,
        None => current,
    };
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
    let locks_query = tx
        .prepare_cached(
            "SELECT id, amount, to_date FROM locked_events WHERE account = $1 \
             AND created_journal <= $2 AND (ended_journal IS NULL OR ended_journal > $2) \
             AND (to_date IS NULL OR to_date >= $3) ORDER BY id LIMIT $4",
        )
        .await?;
    let mut page = Page::default();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut shown = 0;
    for (index, row) in rows.iter().take(limit).enumerate() {
        let n = index + 1;
        let id: String = row.get("id");
        let balance: Decimal = tx.query_one(&balance_query, &[&id, &journal]).await?.get(0);
        let locks = tx
            .query(&locks_query, &[&id, &journal, &today, &LIST_ROWS_MAX])
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
        let mut record = Record::default();
        for (s, lock) in locks.iter().enumerate() {
            record
                .sub("LOCK.ID", n, s + 1, lock.get::<_, String>("id"))
                .sub("LOCK.AMOUNT", n, s + 1, amount_text(lock.get("amount")))
                .sub("LOCK.TO.DATE", n, s + 1, date_text(lock.get("to_date")));
        }
        fields.extend(record.into_fields());
        if !page.push(fields) {
            break;
        }
        shown = n;
    }
    let more = rows.len() > limit || shown < rows.len().min(limit);
    let mut fields = vec![Field::new("JOURNAL", journal.to_string())];
    fields.extend(page.finish(more));
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
    let mut record = Record::default();
    for (index, row) in accounts.iter().enumerate() {
        let n = index + 1;
        let currency: String = row.get("currency");
        let entries_total = entries.get(&currency).copied().unwrap_or_default();
        record
            .multi("CURRENCY", n, currency.clone())
            .multi("TOTAL", n, amount_text(row.get("total")))
            .multi("ENTRIES.TOTAL", n, amount_text(entries_total))
            .multi("ACCOUNTS", n, row.get::<_, i64>("accounts").to_string());
    }
    Ok(record.into_fields())
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
