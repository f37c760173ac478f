//! The applications `CUSTOMER`, `ACCOUNT`, `ACCOUNT.CLOSURE` and `AC.LOCKED.EVENTS`, and
//! the id assignment they share with `FUNDS.TRANSFER` and `LD.LOANS.AND.DEPOSITS`.

use chrono::NaiveDate;
use corebank_db::Transaction;
use rust_decimal::Decimal;

use super::books::{
    self, ACCOUNT_SERIAL_BASE, CATEGORY_CASH, account_record, internal_account,
    is_currency_allowed, locked_amount, next_counter, next_journal, postable_account,
};
use super::input::{
    Answer, Input, Outcome, Record, amount_text, corrupt, date_text, is_caller_id, is_code, refuse,
};
use super::migration::posting_refusal;
use corebank_legacy_ofs::formats;
use corebank_legacy_ofs::{Function, Request};

/// Customer serials start above this (customer numbers are six digits and a check digit).
const CUSTOMER_SERIAL_BASE: i64 = 100_000;
/// How many counter values id assignment tries before giving up (a caller-assigned id may
/// have taken the one the counter gives).
const ID_ATTEMPTS_MAX: usize = 100;

/// The tables whose records have core- or caller-assigned ids.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Book {
    FundsTransfers,
    LockedEvents,
    Loans,
}

impl Book {
    fn table(self) -> &'static str {
        match self {
            Book::FundsTransfers => "funds_transfers",
            Book::LockedEvents => "locked_events",
            Book::Loans => "loans",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            Book::FundsTransfers => "FT",
            Book::LockedEvents => "ACLK",
            Book::Loans => "LD",
        }
    }
}

pub(crate) async fn exists(tx: &Transaction<'_>, book: Book, id: &str) -> Outcome<bool> {
    let row = tx
        .query_opt(
            &format!("SELECT 1 FROM {} WHERE id = $1", book.table()),
            &[&id],
        )
        .await?;
    Ok(row.is_some())
}

/// The id of a new record: the caller's (checked: prefix and 1-32 of `A-Z 0-9`; `LIVE
/// RECORD EXISTS` when taken) or the next free one of the core's counter (`FT`/`LD` +
/// `YYDDD` + 5 digits, `ACLK` + 10 digits). Call after [`next_journal`].
pub(crate) async fn new_id(
    tx: &Transaction<'_>,
    book: Book,
    requested: &str,
    today: NaiveDate,
) -> Outcome<String> {
    if !requested.is_empty() {
        if !is_caller_id(requested, book.prefix()) {
            return Err(refuse("ID", "INVALID VALUE"));
        }
        if exists(tx, book, requested).await? {
            return Err(refuse("ID", "LIVE RECORD EXISTS"));
        }
        return Ok(requested.to_owned());
    }
    let day = today.format("%y%j").to_string();
    for _ in 0..ID_ATTEMPTS_MAX {
        let id = match book {
            Book::LockedEvents => {
                let n = next_counter(tx, "ACLK", 0, 1).await?;
                format!("ACLK{n:010}")
            }
            Book::FundsTransfers | Book::Loans => {
                let prefix = book.prefix();
                let n = next_counter(tx, &format!("{prefix}{day}"), 0, 1).await?;
                if n > 99_999 {
                    return Err(corrupt(format!("{prefix} numbers of {day} are used up")));
                }
                format!("{prefix}{day}{n:05}")
            }
        };
        if !exists(tx, book, &id).await? {
            return Ok(id);
        }
    }
    Err(corrupt("no free id after many attempts"))
}

// ----- CUSTOMER -----

const CUSTOMER_COLUMNS: &str = "id, mnemonic, short_name, name_1, sector";

fn customer_record(row: &corebank_db::tokio_postgres::Row) -> Vec<corebank_legacy_ofs::Field> {
    let mut record = Record::default();
    record
        .field("MNEMONIC", row.get::<_, String>("mnemonic"))
        .field("SHORT.NAME", row.get::<_, String>("short_name"))
        .field("NAME.1", row.get::<_, String>("name_1"))
        .field("SECTOR", row.get::<_, String>("sector"));
    record.into_fields()
}

pub(crate) async fn customer(tx: &Transaction<'_>, request: &Request) -> Outcome<Answer> {
    match request.function {
        Function::Input => input_customer(tx, request).await,
        Function::See => {
            Input::check(&request.fields, &[], &[])?;
            let id = request.transaction_id.as_str();
            if formats::parse_customer_number(id).is_err() {
                return Err(refuse("ID", "INVALID CUSTOMER NUMBER"));
            }
            let row = tx
                .query_opt(
                    &format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"),
                    &[&id],
                )
                .await?
                .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
            Ok(Answer::done(id, customer_record(&row)))
        }
        Function::Authorise | Function::Reverse | Function::Delete => {
            Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED"))
        }
    }
}

async fn input_customer(tx: &Transaction<'_>, request: &Request) -> Outcome<Answer> {
    let input = Input::check(
        &request.fields,
        &["MNEMONIC", "SHORT.NAME", "NAME.1", "SECTOR"],
        &[],
    )?;
    let journal = next_journal(tx).await?;
    if !request.transaction_id.is_empty() {
        // Customers are never amended; the core assigns their numbers.
        let taken = tx
            .query_opt(
                "SELECT 1 FROM customers WHERE id = $1",
                &[&request.transaction_id],
            )
            .await?
            .is_some();
        return Err(refuse(
            "ID",
            if taken {
                "LIVE RECORD EXISTS"
            } else {
                "INVALID VALUE"
            },
        ));
    }
    let mnemonic = input.required("MNEMONIC")?;
    if !is_code(mnemonic, 35, |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.'
    }) {
        return Err(refuse("MNEMONIC", "INVALID VALUE"));
    }
    let short_name = input.required("SHORT.NAME")?;
    let name_1 = input.text("NAME.1").unwrap_or_default();
    let sector = input.text("SECTOR").unwrap_or("1001");
    if !is_code(sector, 4, |c| c.is_ascii_digit()) {
        return Err(refuse("SECTOR", "INVALID VALUE"));
    }
    let taken = tx
        .query_opt("SELECT 1 FROM customers WHERE mnemonic = $1", &[&mnemonic])
        .await?
        .is_some();
    if taken {
        return Err(refuse("MNEMONIC", "DUPLICATE"));
    }
    let mut id = None;
    for _ in 0..ID_ATTEMPTS_MAX {
        let serial = next_counter(tx, "CUSTOMER", CUSTOMER_SERIAL_BASE, 1).await?;
        let serial = u32::try_from(serial).map_err(|_| corrupt("customer serials used up"))?;
        if let Some(number) = formats::customer_number(serial) {
            id = Some(number);
            break;
        }
    }
    let id = id.ok_or_else(|| corrupt("customer serials used up"))?;
    let row = tx
        .query_one(
            &format!(
                "INSERT INTO customers (id, mnemonic, short_name, name_1, sector, created_journal) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CUSTOMER_COLUMNS}"
            ),
            &[&id, &mnemonic, &short_name, &name_1, &sector, &journal],
        )
        .await?;
    Ok(Answer::done(id, customer_record(&row)))
}

// ----- ACCOUNT -----

fn is_alt_acct_id(text: &str) -> bool {
    is_code(text, 64, |c| {
        c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.' || c == '-'
    })
}

pub(crate) async fn account(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    match request.function {
        Function::Input if request.transaction_id.is_empty() => {
            open_account(tx, request, today).await
        }
        Function::Input => amend_account(tx, request, today).await,
        Function::See => {
            Input::check(&request.fields, &[], &[])?;
            let id = request.transaction_id.as_str();
            if formats::parse_account_number(id).is_err() {
                return Err(refuse("ID", "INVALID ACCOUNT NUMBER"));
            }
            let account = books::account(tx, id)
                .await?
                .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
            let locked = locked_amount(tx, id, today).await?;
            Ok(Answer::done(id, account_record(&account, locked)))
        }
        Function::Authorise | Function::Reverse | Function::Delete => {
            Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED"))
        }
    }
}

async fn open_account(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let input = Input::check(
        &request.fields,
        &[
            "CUSTOMER",
            "CATEGORY",
            "CURRENCY",
            "ACCOUNT.TITLE.1",
            "ALT.ACCT.ID",
            "PRODUCT.CODE",
            "OPENING.DATE",
        ],
        &[],
    )?;
    let journal = next_journal(tx).await?;
    let customer = input
        .customer("CUSTOMER")?
        .ok_or_else(|| refuse("CUSTOMER", "MANDATORY INPUT"))?;
    let category: i64 = match input.text("CATEGORY").unwrap_or("1001") {
        "1001" => 1001,
        "6001" => 6001,
        _ => return Err(refuse("CATEGORY", "INVALID VALUE")),
    };
    let currency = input.required("CURRENCY")?;
    if !is_currency_allowed(currency) {
        return Err(refuse("CURRENCY", "CURRENCY NOT ALLOWED"));
    }
    let title = input.text("ACCOUNT.TITLE.1").unwrap_or_default();
    let alt_acct_id = input.text("ALT.ACCT.ID");
    if alt_acct_id.is_some_and(|alt| !is_alt_acct_id(alt)) {
        return Err(refuse("ALT.ACCT.ID", "INVALID VALUE"));
    }
    let product_code = input.text("PRODUCT.CODE").unwrap_or_default();
    if product_code.chars().count() > 64 {
        return Err(refuse("PRODUCT.CODE", "INVALID VALUE"));
    }
    let opening_date = input.date("OPENING.DATE")?.unwrap_or(today);
    books::existing_customer(tx, "CUSTOMER", &customer).await?;
    if let Some(alt) = alt_acct_id {
        let taken = tx
            .query_opt("SELECT 1 FROM accounts WHERE alt_acct_id = $1", &[&alt])
            .await?
            .is_some();
        if taken {
            return Err(refuse("ALT.ACCT.ID", "DUPLICATE"));
        }
    }
    let serial = next_counter(tx, "ACCOUNT", ACCOUNT_SERIAL_BASE, 1).await?;
    let serial = u32::try_from(serial).map_err(|_| corrupt("account serials used up"))?;
    let id = formats::account_number(currency, serial).map_err(|e| corrupt(e.to_string()))?;
    tx.execute(
        "INSERT INTO accounts (id, customer, category, currency, title, alt_acct_id, \
         product_code, opening_date, posting_restrict, closure_date, working_balance, \
         opened_journal, closed_journal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '', NULL, 0, $9, NULL)",
        &[
            &id,
            &customer,
            &category,
            &currency,
            &title,
            &alt_acct_id,
            &product_code,
            &opening_date,
            &journal,
        ],
    )
    .await?;
    let account = books::account(tx, &id)
        .await?
        .ok_or_else(|| corrupt("the account just opened is missing"))?;
    Ok(Answer::done(id, account_record(&account, Decimal::ZERO)))
}

/// An existing customer account named by the request's id, for a change.
async fn customer_account_to_change(tx: &Transaction<'_>, id: &str) -> Outcome<books::AccountRow> {
    let account = open_customer_account(tx, id).await?;
    // An account being moved, or moved away, is the migration's to change.
    if let Some(text @ ("ACCOUNT MIGRATING" | "ACCOUNT MIGRATED")) =
        posting_refusal(&account.posting_restrict)
    {
        return Err(refuse("ID", text));
    }
    Ok(account)
}

/// An open customer account named by the request's id (errors name `ID`).
pub(crate) async fn open_customer_account(
    tx: &Transaction<'_>,
    id: &str,
) -> Outcome<books::AccountRow> {
    if formats::parse_account_number(id).is_err() {
        return Err(refuse("ID", "INVALID ACCOUNT NUMBER"));
    }
    let account = books::account(tx, id)
        .await?
        .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
    if account.is_internal() {
        // The core keeps its internal accounts itself.
        return Err(refuse("ID", "INVALID VALUE"));
    }
    if account.closure_date.is_some() {
        return Err(refuse("ID", "ACCOUNT CLOSED"));
    }
    Ok(account)
}

async fn amend_account(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let input = Input::check(
        &request.fields,
        &["POSTING.RESTRICT", "ACCOUNT.TITLE.1"],
        &[],
    )?;
    next_journal(tx).await?;
    let id = request.transaction_id.as_str();
    let account = customer_account_to_change(tx, id).await?;
    let restrict = if input.given("POSTING.RESTRICT") {
        match input.text("POSTING.RESTRICT").unwrap_or_default() {
            value @ ("" | "3") => value.to_owned(),
            _ => return Err(refuse("POSTING.RESTRICT", "INVALID VALUE")),
        }
    } else {
        account.posting_restrict.clone()
    };
    let title = if input.given("ACCOUNT.TITLE.1") {
        input.text("ACCOUNT.TITLE.1").unwrap_or_default().to_owned()
    } else {
        account.title.clone()
    };
    tx.execute(
        "UPDATE accounts SET posting_restrict = $2, title = $3 WHERE id = $1",
        &[&id, &restrict, &title],
    )
    .await?;
    let account = books::account(tx, id)
        .await?
        .ok_or_else(|| corrupt("the account just amended is missing"))?;
    let locked = locked_amount(tx, id, today).await?;
    Ok(Answer::done(id, account_record(&account, locked)))
}

// ----- ACCOUNT.CLOSURE -----

pub(crate) async fn account_closure(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    if request.function != Function::Input {
        return Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED"));
    }
    let input = Input::check(&request.fields, &["SETTLEMENT.ACCT"], &[])?;
    let journal = next_journal(tx).await?;
    let id = request.transaction_id.as_str();
    if id.is_empty() {
        return Err(refuse("ID", "MANDATORY INPUT"));
    }
    let account = customer_account_to_change(tx, id).await?;
    if account.posting_restrict == "3" {
        return Err(refuse("ID", "POSTING RESTRICTED"));
    }
    if locked_amount(tx, id, today).await? > Decimal::ZERO {
        return Err(refuse("ID", "LOCKED EVENTS OPEN"));
    }
    if account.working_balance < Decimal::ZERO {
        return Err(refuse("ID", "ACCOUNT OVERDRAWN"));
    }
    let settlement = match input.account("SETTLEMENT.ACCT")? {
        Some(settlement) => settlement,
        None => internal_account(&account.currency, CATEGORY_CASH)?,
    };
    if settlement == id {
        return Err(refuse("SETTLEMENT.ACCT", "INVALID VALUE"));
    }
    let settlement_account = postable_account(tx, "SETTLEMENT.ACCT", &settlement).await?;
    if settlement_account.currency != account.currency {
        return Err(refuse("SETTLEMENT.ACCT", "CURRENCY MISMATCH"));
    }
    let balance = account.working_balance;
    let entries = if balance > Decimal::ZERO {
        books::pay_out(
            tx,
            journal,
            id,
            settlement.clone(),
            balance,
            today,
            "ACCOUNT CLOSURE",
        )
        .await?
    } else {
        Vec::new()
    };
    tx.execute(
        "UPDATE accounts SET closure_date = $2, closed_journal = $3 WHERE id = $1",
        &[&id, &today, &journal],
    )
    .await?;
    let mut record = Record::default();
    record
        .field("TOTAL.BALANCE", amount_text(balance))
        .field("SETTLEMENT.ACCT", settlement)
        .field("CLOSURE.DATE", date_text(Some(today)));
    for (n, entry) in entries.iter().enumerate() {
        record.multi("STMT.NOS", n + 1, entry.to_string());
    }
    Ok(Answer::done(id, record.into_fields()))
}

// ----- AC.LOCKED.EVENTS -----

const LOCK_COLUMNS: &str = "id, account, amount, from_date, to_date, description, status";

/// A lock as stored, with its status on `today` (`EXPIRED` when live past its `TO.DATE`).
#[derive(Debug, Clone)]
pub(crate) struct Lock {
    pub account: String,
    pub amount: Decimal,
    pub from_date: NaiveDate,
    pub to_date: Option<NaiveDate>,
    pub description: String,
    pub status: String,
}

impl Lock {
    fn from_row(row: &corebank_db::tokio_postgres::Row, today: NaiveDate) -> Lock {
        let to_date: Option<NaiveDate> = row.get("to_date");
        let stored: String = row.get("status");
        let status = if stored == "LIVE" && to_date.is_some_and(|to| to < today) {
            "EXPIRED".to_owned()
        } else {
            stored
        };
        Lock {
            account: row.get("account"),
            amount: row.get("amount"),
            from_date: row.get("from_date"),
            to_date,
            description: row.get("description"),
            status,
        }
    }

    pub(crate) fn record(&self) -> Vec<corebank_legacy_ofs::Field> {
        let mut record = Record::default();
        record
            .field("ACCOUNT.NUMBER", self.account.clone())
            .field("LOCKED.AMOUNT", amount_text(self.amount))
            .field("FROM.DATE", date_text(Some(self.from_date)))
            .field("TO.DATE", date_text(self.to_date))
            .field("DESCRIPTION", self.description.clone())
            .field("STATUS", self.status.clone());
        record.into_fields()
    }
}

pub(crate) async fn lock(
    tx: &Transaction<'_>,
    id: &str,
    today: NaiveDate,
) -> Outcome<Option<Lock>> {
    let row = tx
        .query_opt(
            &format!("SELECT {LOCK_COLUMNS} FROM locked_events WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(row.map(|row| Lock::from_row(&row, today)))
}

/// The account's locks that hold funds on `today`, by id.
pub(crate) async fn live_locks(
    tx: &Transaction<'_>,
    account: &str,
    today: NaiveDate,
) -> Outcome<Vec<(String, Lock)>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {LOCK_COLUMNS} FROM locked_events WHERE account = $1 AND status = 'LIVE' \
                 AND (to_date IS NULL OR to_date >= $2) ORDER BY id"
            ),
            &[&account, &today],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("id"), Lock::from_row(row, today)))
        .collect())
}

/// A lock to place on an account, live from `from_date` until `to_date` (open-ended when
/// `None`).
#[derive(Debug)]
pub(crate) struct NewLock<'a> {
    pub account: &'a str,
    pub amount: Decimal,
    pub from_date: NaiveDate,
    pub to_date: Option<NaiveDate>,
    pub description: &'a str,
}

/// Places `lock` as the live lock `id` at `journal` (its funds are checked by the caller).
pub(crate) async fn place_lock(
    tx: &Transaction<'_>,
    id: &str,
    lock: &NewLock<'_>,
    journal: i64,
) -> Outcome<()> {
    tx.execute(
        "INSERT INTO locked_events (id, account, amount, from_date, to_date, description, \
         status, created_journal, ended_journal) \
         VALUES ($1, $2, $3, $4, $5, $6, 'LIVE', $7, NULL)",
        &[
            &id,
            &lock.account,
            &lock.amount,
            &lock.from_date,
            &lock.to_date,
            &lock.description,
            &journal,
        ],
    )
    .await?;
    Ok(())
}

/// Ends a live lock (`REVERSED` or `CAPTURED`) at `journal`.
pub(crate) async fn end_lock(
    tx: &Transaction<'_>,
    id: &str,
    status: &str,
    journal: i64,
) -> Outcome<()> {
    tx.execute(
        "UPDATE locked_events SET status = $2, ended_journal = $3 WHERE id = $1",
        &[&id, &status, &journal],
    )
    .await?;
    Ok(())
}

pub(crate) async fn locked_events(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    match request.function {
        Function::Input => input_lock(tx, request, today).await,
        Function::Reverse => {
            Input::check(&request.fields, &[], &[])?;
            let journal = next_journal(tx).await?;
            let id = request.transaction_id.as_str();
            let mut lock = lock(tx, id, today)
                .await?
                .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
            // The locks of an account being moved, or moved away, are the migration's: a
            // release that raced the move is refused as the account is, not as the lock
            // (which the move may have ended already) is.
            if let Some(account) = books::account(tx, &lock.account).await?
                && let Some(text @ ("ACCOUNT MIGRATING" | "ACCOUNT MIGRATED")) =
                    super::migration::posting_refusal(&account.posting_restrict)
            {
                return Err(refuse("ID", text));
            }
            if lock.status != "LIVE" {
                return Err(refuse(
                    "ID",
                    format!("LOCK NOT LIVE, STATUS {}", lock.status),
                ));
            }
            end_lock(tx, id, "REVERSED", journal).await?;
            lock.status = "REVERSED".to_owned();
            Ok(Answer::done(id, lock.record()))
        }
        Function::See => {
            Input::check(&request.fields, &[], &[])?;
            let id = request.transaction_id.as_str();
            let lock = lock(tx, id, today)
                .await?
                .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
            Ok(Answer::done(id, lock.record()))
        }
        Function::Authorise | Function::Delete => Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED")),
    }
}

/// The available balance: working balance minus live locks.
pub(crate) async fn available(
    tx: &Transaction<'_>,
    account: &books::AccountRow,
    today: NaiveDate,
) -> Outcome<Decimal> {
    Ok(account.working_balance - locked_amount(tx, &account.id, today).await?)
}

async fn input_lock(tx: &Transaction<'_>, request: &Request, today: NaiveDate) -> Outcome<Answer> {
    let input = Input::check(
        &request.fields,
        &[
            "ACCOUNT.NUMBER",
            "LOCKED.AMOUNT",
            "FROM.DATE",
            "TO.DATE",
            "DESCRIPTION",
        ],
        &[],
    )?;
    let journal = next_journal(tx).await?;
    let id = new_id(tx, Book::LockedEvents, &request.transaction_id, today).await?;
    let account_id = input.required_account("ACCOUNT.NUMBER")?;
    let amount = input.required_amount("LOCKED.AMOUNT")?;
    let from_date = input.date("FROM.DATE")?.unwrap_or(today);
    let to_date = input.date("TO.DATE")?;
    if to_date.is_some_and(|to| to < from_date || to < today) {
        return Err(refuse("TO.DATE", "INVALID DATE"));
    }
    let description = input.text("DESCRIPTION").unwrap_or_default();
    let account = postable_account(tx, "ACCOUNT.NUMBER", &account_id).await?;
    if account.is_internal() {
        return Err(refuse("ACCOUNT.NUMBER", "INVALID VALUE"));
    }
    let available = available(tx, &account, today).await?;
    if available < amount {
        return Err(refuse(
            "LOCKED.AMOUNT",
            format!("INSUFFICIENT FUNDS, AVAILABLE {}", amount_text(available)),
        ));
    }
    let placed = NewLock {
        account: &account_id,
        amount,
        from_date,
        to_date,
        description,
    };
    place_lock(tx, &id, &placed, journal).await?;
    let lock = lock(tx, &id, today)
        .await?
        .ok_or_else(|| corrupt("the lock just placed is missing"))?;
    Ok(Answer::done(id, lock.record()))
}
