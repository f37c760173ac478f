//! Helpers shared by the ledger's integration tests.
#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::collections::BTreeMap;
use std::sync::Arc;

use corebank_kernel::{AccountId, Clock, Currency, JournalEntryId, Money, SystemClock};
use corebank_ledger::app::{EntryView, NewAccount};
use corebank_ledger::domain::command::{Command, Leg, NewEntry};
use corebank_ledger::domain::error::LedgerError;
use corebank_ledger::domain::model::{AccountStatus, AccountType, BalanceLimit, LimitKind};
use corebank_ledger::{Ledger, LedgerConfig};
use corebank_testkit::TestDatabase;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

pub struct Harness {
    pub database: TestDatabase,
    pub ledger: Ledger,
    pub shutdown: CancellationToken,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn start() -> Harness {
    start_with_clock(Arc::new(SystemClock)).await
}

pub async fn start_with_clock(clock: Arc<dyn Clock>) -> Harness {
    start_with(clock, LedgerConfig::default()).await
}

pub async fn start_with(clock: Arc<dyn Clock>, config: LedgerConfig) -> Harness {
    let database = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let ledger = Ledger::start(database.db_for("ledger"), clock, config, shutdown.clone());
    Harness {
        database,
        ledger,
        shutdown,
    }
}

impl Harness {
    /// A second ledger process on the same database: its own batcher, its own pool.
    pub fn replica(&self) -> Ledger {
        let db = self.database.db_for("ledger");
        Ledger::start(
            db,
            Arc::new(SystemClock),
            LedgerConfig::default(),
            self.shutdown.clone(),
        )
    }
}

pub fn eur(amount: &str) -> Money {
    Money::parse(amount, Currency::EUR).unwrap()
}

pub async fn open(
    ledger: &Ledger,
    account_type: AccountType,
    limit: LimitKind,
    overdraft: &str,
) -> AccountId {
    open_sharded(ledger, account_type, limit, overdraft, 1).await
}

pub async fn open_sharded(
    ledger: &Ledger,
    account_type: AccountType,
    limit: LimitKind,
    overdraft: &str,
    shards: u32,
) -> AccountId {
    let id = AccountId::generate();
    let request = NewAccount {
        id,
        code: format!("test-{id}"),
        name: format!("{} account", account_type.as_str()),
        currency: Currency::EUR,
        account_type,
        limit: BalanceLimit {
            kind: limit,
            amount: overdraft.parse().unwrap(),
        },
        external_ref: String::new(),
        metadata: BTreeMap::new(),
        balance_shards: shards,
    };
    let mut results = ledger.create_accounts(vec![request]).await.unwrap();
    results.pop().unwrap().unwrap();
    id
}

/// A customer deposit account: a liability that may not go below zero.
pub async fn customer(ledger: &Ledger) -> AccountId {
    open(
        ledger,
        AccountType::Liability,
        LimitKind::DebitsMustNotExceedCredits,
        "0",
    )
    .await
}

/// The bank's cash: an asset without a limit.
pub async fn cash(ledger: &Ledger) -> AccountId {
    open(ledger, AccountType::Asset, LimitKind::None, "0").await
}

pub fn transfer_command(
    id: JournalEntryId,
    debit: AccountId,
    credit: AccountId,
    amount: &str,
) -> Command {
    Command::Entry(NewEntry::posted(
        id,
        Leg::transfer(debit, credit, eur(amount)),
    ))
}

pub fn hold_command(
    id: JournalEntryId,
    debit: AccountId,
    credit: AccountId,
    amount: &str,
    timeout_seconds: u32,
) -> Command {
    match transfer_command(id, debit, credit, amount) {
        Command::Entry(mut entry) => {
            entry.pending = true;
            entry.timeout_seconds = timeout_seconds;
            Command::Entry(entry)
        }
        other => other,
    }
}

pub async fn transfer(
    ledger: &Ledger,
    debit: AccountId,
    credit: AccountId,
    amount: &str,
) -> Result<EntryView, LedgerError> {
    ledger
        .submit(transfer_command(
            JournalEntryId::generate(),
            debit,
            credit,
            amount,
        ))
        .await
}

/// Two customer accounts, the first funded with `amount` from cash.
pub async fn two_customers(ledger: &Ledger, amount: &str) -> (AccountId, AccountId) {
    let first = customer(ledger).await;
    let second = customer(ledger).await;
    fund(ledger, first, amount).await;
    (first, second)
}

/// Deposits `amount` into a customer account from cash.
pub async fn fund(ledger: &Ledger, customer: AccountId, amount: &str) {
    let cash = cash(ledger).await;
    transfer(ledger, cash, customer, amount).await.unwrap();
}

pub async fn posted(ledger: &Ledger, account: AccountId) -> Decimal {
    let view = ledger.account(account).await.unwrap();
    view.balances.posted(view.account.account_type)
}

pub async fn available(ledger: &Ledger, account: AccountId) -> Decimal {
    let view = ledger.account(account).await.unwrap();
    view.balances.available(view.account.account_type)
}

pub fn dec(text: &str) -> Decimal {
    text.parse().unwrap()
}

/// The invariants every scenario ends with: the trial balance sums to zero, every balance
/// row agrees with the postings, every hash chain is intact.
pub async fn assert_books_hold(harness: &Harness) {
    let report = harness.ledger.trial_balance(None).await.unwrap();
    assert!(
        report.balanced(),
        "trial balance does not sum to zero: {:?}",
        report.difference_by_currency
    );
    let client = harness.database.db().client().await.unwrap();
    let mismatches = client
        .query(
            "WITH rows AS (SELECT account_id, sum(debits_posted) dp, sum(credits_posted) cp, sum(debits_pending) dpe, \
             sum(credits_pending) cpe FROM ledger.account_balances GROUP BY account_id), \
             sums AS (SELECT account_id, \
             coalesce(sum(CASE WHEN direction = 'debit' AND bucket = 'posted' THEN amount END), 0) dp, \
             coalesce(sum(CASE WHEN direction = 'credit' AND bucket = 'posted' THEN amount END), 0) cp, \
             coalesce(sum(CASE WHEN direction = 'debit' AND bucket = 'pending' THEN amount END), 0) dpe, \
             coalesce(sum(CASE WHEN direction = 'credit' AND bucket = 'pending' THEN amount END), 0) cpe \
             FROM ledger.postings GROUP BY account_id) \
             SELECT r.account_id FROM rows r LEFT JOIN sums s ON s.account_id = r.account_id \
             WHERE r.dp <> coalesce(s.dp, 0) OR r.cp <> coalesce(s.cp, 0) OR r.dpe <> coalesce(s.dpe, 0) \
             OR r.cpe <> coalesce(s.cpe, 0)",
            &[],
        )
        .await
        .unwrap();
    assert!(
        mismatches.is_empty(),
        "{} accounts' balances disagree with their postings",
        mismatches.len()
    );
    let verify = harness.ledger.verify().await.unwrap();
    assert_eq!(verify.first_broken, None, "a hash chain is broken");
}

/// The code of the refusal of `command`, which must be refused.
pub async fn refusal(ledger: &Ledger, command: Command) -> String {
    ledger.submit(command).await.unwrap_err().code()
}

/// The code of the refusal of a transfer, which must be refused.
pub async fn transfer_refusal(
    ledger: &Ledger,
    debit: AccountId,
    credit: AccountId,
    amount: &str,
) -> String {
    transfer(ledger, debit, credit, amount)
        .await
        .unwrap_err()
        .code()
}

/// Sets an account's status and freezes, which must be allowed.
pub async fn set_status(
    ledger: &Ledger,
    account: AccountId,
    status: AccountStatus,
    debits_frozen: bool,
    credits_frozen: bool,
) {
    ledger
        .set_status(account, status, debits_frozen, credits_frozen)
        .await
        .unwrap();
}
