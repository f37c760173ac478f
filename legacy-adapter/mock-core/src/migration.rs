//! `AC.ACCOUNT.MIGRATION`: the core's side of moving a customer account to another core
//! (ADR 0013). The record's id is the account number; input (`I`) takes one `ACTION`:
//!
//! - `FREEZE`: postings to the account stop (shown as `POSTING.RESTRICT` 90, refused
//!   `ACCOUNT MIGRATING`; kept in the account's `migration_state`, apart from the bank's own
//!   restriction); the answer is the account as it then is, with its live locks: the move's
//!   authoritative read, since nothing can change it afterwards.
//! - `THAW`: lifts a freeze that was not followed by `EMPTY` (a move given up).
//! - `EMPTY`: of a frozen account, moves its whole balance to the currency's migration
//!   suspense account (category 12900), ends its live locks (`REVERSED`), and marks it
//!   migrated (`POSTING.RESTRICT` 91, refused `ACCOUNT MIGRATED`). The books stay balanced.
//! - `RESTORE`: of a migrated account (moving back), books `AMOUNT` from the suspense
//!   account back to it and places a lock for each `LOCK.AMOUNT`/`LOCK.TO.DATE`/
//!   `LOCK.DESCRIPTION` (multi-values), and leaves it frozen (`MIGRATING`) until a `THAW`.
//!
//! Each action is idempotent by the account's state: repeating one that took effect answers
//! the same record (an `EMPTY` repeated answers the first one's figures), so a caller that
//! lost an answer simply asks again. `S` answers the record without changing anything.

use chrono::NaiveDate;
use corebank_db::Transaction;
use rust_decimal::Decimal;

use super::apps::{Book, NewLock, end_lock, live_locks, new_id, open_customer_account, place_lock};
use super::books::{
    self, CATEGORY_MIGRATION_SUSPENSE, account_record, internal_account, locked_amount,
    next_journal,
};
use super::input::{Answer, Input, Outcome, Record, amount_text, date_text, refuse};
use corebank_legacy_ofs::{Function, Request};

/// `POSTING.RESTRICT` of an account being moved: postings refused `ACCOUNT MIGRATING`.
pub(crate) const RESTRICT_MIGRATING: &str = "90";
/// `POSTING.RESTRICT` of an account moved away: postings refused `ACCOUNT MIGRATED`.
pub(crate) const RESTRICT_MIGRATED: &str = "91";

/// The refusal text for postings to an account under `restrict`, if it refuses them.
pub(crate) fn posting_refusal(restrict: &str) -> Option<&'static str> {
    match restrict {
        "3" => Some("POSTING RESTRICTED"),
        RESTRICT_MIGRATING => Some("ACCOUNT MIGRATING"),
        RESTRICT_MIGRATED => Some("ACCOUNT MIGRATED"),
        _ => None,
    }
}

/// The account's state in a move, as the record's `STATUS` says it.
fn state(restrict: &str) -> &'static str {
    match restrict {
        RESTRICT_MIGRATING => "MIGRATING",
        RESTRICT_MIGRATED => "MIGRATED",
        "3" => "RESTRICTED",
        _ => "OPEN",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Freeze,
    Thaw,
    Empty,
    Restore,
}

pub(crate) async fn account_migration(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let id = request.transaction_id.as_str();
    match request.function {
        Function::Input => {
            let input = Input::check(
                &request.fields,
                &["ACTION", "AMOUNT"],
                &["LOCK.AMOUNT", "LOCK.TO.DATE", "LOCK.DESCRIPTION"],
            )?;
            let action = match input.required("ACTION")? {
                "FREEZE" => Action::Freeze,
                "THAW" => Action::Thaw,
                "EMPTY" => Action::Empty,
                "RESTORE" => Action::Restore,
                _ => return Err(refuse("ACTION", "INVALID VALUE")),
            };
            if action != Action::Restore
                && let Some(extra) = request.fields.iter().find(|field| field.name != "ACTION")
            {
                return Err(refuse(&extra.name, "FIELD NOT ALLOWED"));
            }
            let journal = next_journal(tx).await?;
            let account = movable_account(tx, id).await?;
            let restrict = account.posting_restrict.as_str();
            match (action, restrict) {
                (Action::Freeze, "") => set_restrict(tx, id, RESTRICT_MIGRATING).await?,
                (Action::Freeze, RESTRICT_MIGRATING) | (Action::Thaw, "") => {}
                (Action::Thaw, RESTRICT_MIGRATING) => set_restrict(tx, id, "").await?,
                (Action::Empty, RESTRICT_MIGRATING) => {
                    empty(tx, &account, journal, today).await?;
                }
                (Action::Empty, RESTRICT_MIGRATED) => {}
                (Action::Restore, RESTRICT_MIGRATED) => {
                    restore(tx, &account, &input, request, journal, today).await?;
                }
                // Restored already: a repeat changes nothing.
                (Action::Restore, RESTRICT_MIGRATING) => {}
                (Action::Freeze | Action::Thaw, RESTRICT_MIGRATED) => {
                    return Err(refuse("ID", "ACCOUNT MIGRATED"));
                }
                (Action::Restore, _) => return Err(refuse("ID", "ACCOUNT NOT MIGRATED")),
                (Action::Freeze, _) => return Err(refuse("ID", "POSTING RESTRICTED")),
                (Action::Thaw | Action::Empty, _) => {
                    return Err(refuse("ID", "ACCOUNT NOT MIGRATING"));
                }
            }
            Ok(Answer::done(id, record(tx, id, today).await?))
        }
        Function::See => {
            Input::check(&request.fields, &[], &[])?;
            movable_account(tx, id).await?;
            Ok(Answer::done(id, record(tx, id, today).await?))
        }
        _ => Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED")),
    }
}

/// A customer account named by the id, open (a closed one has nothing to move).
async fn movable_account(tx: &Transaction<'_>, id: &str) -> Outcome<books::AccountRow> {
    if id.is_empty() {
        return Err(refuse("ID", "MANDATORY INPUT"));
    }
    open_customer_account(tx, id).await
}

/// Sets the account's state in a move: `RESTRICT_MIGRATING`, `RESTRICT_MIGRATED`, or none
/// (`""`, the move given up). Kept apart from the bank's own restriction, which a move only
/// starts from when there is none.
async fn set_restrict(tx: &Transaction<'_>, id: &str, restrict: &str) -> Outcome<()> {
    let state = match restrict {
        RESTRICT_MIGRATING => "MIGRATING",
        RESTRICT_MIGRATED => "MIGRATED",
        _ => "",
    };
    tx.execute(
        "UPDATE accounts SET migration_state = $2 WHERE id = $1",
        &[&id, &state],
    )
    .await?;
    Ok(())
}

/// Moves the balance to suspense, ends the live locks and marks the account migrated, and
/// keeps what it did in `account_migrations`.
async fn empty(
    tx: &Transaction<'_>,
    account: &books::AccountRow,
    journal: i64,
    today: NaiveDate,
) -> Outcome<()> {
    let id = account.id.as_str();
    let suspense = internal_account(&account.currency, CATEGORY_MIGRATION_SUSPENSE)?;
    let balance = account.working_balance;
    if !balance.is_zero() {
        books::pay_out(
            tx,
            journal,
            id,
            suspense,
            balance,
            today,
            "MIGRATED TO NEW CORE",
        )
        .await?;
    }
    let locks = live_locks(tx, id, today).await?;
    for (lock_id, _) in &locks {
        end_lock(tx, lock_id, "REVERSED", journal).await?;
    }
    let released: Vec<&str> = locks.iter().map(|(lock_id, _)| lock_id.as_str()).collect();
    tx.execute(
        "INSERT INTO account_migrations (account, moved_amount, released_locks, \
         emptied_journal, emptied_on) VALUES ($1, $2, $3, $4, $5)",
        &[&id, &balance, &released.join(" "), &journal, &today],
    )
    .await?;
    set_restrict(tx, id, RESTRICT_MIGRATED).await
}

/// The values of a multi-valued field by position (1-based), empty ones kept.
fn by_position(request: &Request, name: &str) -> std::collections::BTreeMap<u16, String> {
    request
        .fields
        .iter()
        .filter(|field| field.name == name)
        .map(|field| (field.multi_value, field.value.clone()))
        .collect()
}

/// Books `AMOUNT` from suspense back to a migrated account, places its locks again, and
/// leaves it frozen for the move back; forgets the emptying (the account may move again).
async fn restore(
    tx: &Transaction<'_>,
    account: &books::AccountRow,
    input: &Input<'_>,
    request: &Request,
    journal: i64,
    today: NaiveDate,
) -> Outcome<()> {
    let id = account.id.as_str();
    // Zero is a balance too: only an empty AMOUNT is missing.
    let amount = match input.text("AMOUNT") {
        Some("0.00") => Decimal::ZERO,
        Some(_) => input.required_amount("AMOUNT")?,
        None => return Err(refuse("AMOUNT", "MANDATORY INPUT")),
    };
    let amounts = by_position(request, "LOCK.AMOUNT");
    let days = by_position(request, "LOCK.TO.DATE");
    let descriptions = by_position(request, "LOCK.DESCRIPTION");
    let mut locks = Vec::with_capacity(amounts.len());
    for (position, text) in &amounts {
        let locked = corebank_legacy_ofs::formats::parse_legacy_amount(text)
            .ok()
            .filter(|locked| *locked > Decimal::ZERO)
            .ok_or_else(|| refuse("LOCK.AMOUNT", "INVALID AMOUNT"))?;
        let to_date = match days.get(position).map(String::as_str).unwrap_or_default() {
            "" => None,
            day => Some(
                corebank_legacy_ofs::formats::parse_legacy_date(day)
                    .ok()
                    .filter(|day| *day >= today)
                    .ok_or_else(|| refuse("LOCK.TO.DATE", "INVALID DATE"))?,
            ),
        };
        locks.push(NewLock {
            account: id,
            amount: locked,
            from_date: today,
            to_date,
            description: descriptions
                .get(position)
                .map(String::as_str)
                .unwrap_or_default(),
        });
    }
    let held: Decimal = locks.iter().map(|lock| lock.amount).sum();
    if held > amount {
        return Err(refuse(
            "LOCK.AMOUNT",
            format!("INSUFFICIENT FUNDS, AVAILABLE {}", amount_text(amount)),
        ));
    }
    if !amount.is_zero() {
        let suspense = internal_account(&account.currency, CATEGORY_MIGRATION_SUSPENSE)?;
        books::pay_out(
            tx,
            journal,
            &suspense,
            id.to_owned(),
            amount,
            today,
            "MIGRATED BACK FROM NEW CORE",
        )
        .await?;
    }
    for lock in &locks {
        let lock_id = new_id(tx, Book::LockedEvents, "", today).await?;
        place_lock(tx, &lock_id, lock, journal).await?;
    }
    tx.execute("DELETE FROM account_migrations WHERE account = $1", &[&id])
        .await?;
    set_restrict(tx, id, RESTRICT_MIGRATING).await
}

/// The account's record, its live locks, and what its emptying did (once emptied).
async fn record(
    tx: &Transaction<'_>,
    id: &str,
    today: NaiveDate,
) -> Outcome<Vec<corebank_legacy_ofs::Field>> {
    let account = books::account(tx, id)
        .await?
        .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
    let locked = locked_amount(tx, id, today).await?;
    let mut record = Record(account_record(&account, locked));
    record
        .field("STATUS", state(&account.posting_restrict))
        .field("JOURNAL", books::current_journal(tx).await?.to_string());
    for (n, (lock_id, lock)) in live_locks(tx, id, today).await?.iter().enumerate() {
        record
            .multi("LOCK.ID", n + 1, lock_id.clone())
            .multi("LOCK.AMOUNT", n + 1, amount_text(lock.amount))
            .multi("LOCK.TO.DATE", n + 1, date_text(lock.to_date));
    }
    let emptied = tx
        .query_opt(
            "SELECT moved_amount, released_locks, emptied_journal, emptied_on \
             FROM account_migrations WHERE account = $1",
            &[&id],
        )
        .await?;
    if let Some(emptied) = emptied {
        let released: String = emptied.get("released_locks");
        record
            .field(
                "MOVED.AMOUNT",
                amount_text(emptied.get::<_, Decimal>("moved_amount")),
            )
            .field(
                "SUSPENSE.ACCT",
                internal_account(&account.currency, CATEGORY_MIGRATION_SUSPENSE)?,
            )
            .field(
                "EMPTIED.JOURNAL",
                emptied.get::<_, i64>("emptied_journal").to_string(),
            )
            .field("EMPTIED.ON", date_text(Some(emptied.get("emptied_on"))));
        for (n, lock_id) in released.split_whitespace().enumerate() {
            record.multi("RELEASED.LOCK", n + 1, lock_id);
        }
    }
    Ok(record.into_fields())
}
