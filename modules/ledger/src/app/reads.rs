//! Reads: accounts, entries, balances as of any time, statements, the trial balance, and
//! the verification of every hash chain. Each runs in one read transaction, so what it
//! returns is a consistent snapshot.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use corebank_db::{Db, TxError};
use corebank_kernel::{AccountId, Currency, JournalEntryId};
use rust_decimal::Decimal;

use super::{AccountView, EntryView, from_tx_error};
use crate::domain::error::LedgerError;
use crate::domain::hash::{CHAIN_PARTITIONS, GENESIS_HASH, entry_hash};
use crate::domain::model::{Account, AccountType, Balances, Bucket, EntryKind};
use crate::store::{self, StatementCursor, StatementRow, StoreResult};

pub const STATEMENT_PAGE_SIZE_DEFAULT: u32 = 100;
pub const STATEMENT_PAGE_SIZE_MAX: u32 = 1_000;
/// Entries read per query while verifying a chain.
const VERIFY_PAGE_SIZE: i64 = 1_000;

async fn load_account(tx: &corebank_db::Transaction<'_>, id: AccountId) -> StoreResult<Account> {
    store::load_accounts(tx, &BTreeSet::from([id]))
        .await?
        .remove(&id)
        .ok_or(TxError::Abort(LedgerError::UnknownAccount {
            account_id: id,
        }))
}

pub(super) async fn account(db: &Db, id: AccountId) -> Result<AccountView, LedgerError> {
    db.run_tx("ledger_read_account", |tx| {
        Box::pin(async move {
            let account = load_account(&tx, id).await?;
            let balances = store::balances(&tx, id).await?;
            Ok(AccountView {
                account,
                balances,
                replayed: false,
            })
        })
    })
    .await
    .map_err(from_tx_error)
}

/// Several accounts with their balances, in the order of `ids`, from one snapshot.
pub(super) async fn accounts(db: &Db, ids: &[AccountId]) -> Result<Vec<AccountView>, LedgerError> {
    let wanted: BTreeSet<AccountId> = ids.iter().copied().collect();
    let wanted = &wanted;
    db.run_tx("ledger_read_accounts", |tx| {
        Box::pin(async move {
            let accounts = store::load_accounts(&tx, wanted).await?;
            let balances = store::lock_balances(&tx, wanted).await?;
            ids.iter()
                .map(|id| {
                    let account = accounts.get(id).cloned().ok_or(TxError::Abort(
                        LedgerError::UnknownAccount { account_id: *id },
                    ))?;
                    Ok(AccountView {
                        balances: balances.get(id).copied().unwrap_or_default(),
                        account,
                        replayed: false,
                    })
                })
                .collect()
        })
    })
    .await
    .map_err(from_tx_error)
}

async fn view(
    tx: &corebank_db::Transaction<'_>,
    entry: crate::domain::model::Entry,
) -> StoreResult<EntryView> {
    let hold = if entry.kind == EntryKind::Pending {
        store::hold(tx, entry.id).await?
    } else {
        None
    };
    Ok(EntryView {
        entry,
        hold,
        replayed: false,
    })
}

pub(super) async fn entry(db: &Db, id: JournalEntryId) -> Result<EntryView, LedgerError> {
    db.run_tx("ledger_read_entry", |tx| {
        Box::pin(async move {
            let entry = store::entries(&tx, &[id])
                .await?
                .remove(&id)
                .ok_or(TxError::Abort(LedgerError::UnknownEntry { entry_id: id }))?;
            view(&tx, entry).await
        })
    })
    .await
    .map_err(from_tx_error)
}

pub(super) async fn entry_by_external_ref(
    db: &Db,
    external_ref: &str,
) -> Result<EntryView, LedgerError> {
    db.run_tx("ledger_read_entry", |tx| {
        Box::pin(async move {
            let entry = store::entry_by_external_ref(&tx, external_ref)
                .await?
                .ok_or_else(|| {
                    TxError::Abort(LedgerError::invalid(
                        "external_ref",
                        format!("no entry has external_ref {external_ref:?}"),
                    ))
                })?;
            view(&tx, entry).await
        })
    })
    .await
    .map_err(from_tx_error)
}

/// When balances are read as of: a record time (every bucket), or a value date (what was
/// posted with a value date on or before it).
#[derive(Debug, Clone, Copy)]
pub(super) enum AsOf {
    RecordTime(DateTime<Utc>),
    ValueDate(NaiveDate),
}

pub(super) async fn balances_as_of(
    db: &Db,
    id: AccountId,
    as_of: AsOf,
) -> Result<(Account, Balances), LedgerError> {
    db.run_tx("ledger_read_balance", |tx| {
        Box::pin(async move {
            let account = load_account(&tx, id).await?;
            let balances = match as_of {
                AsOf::RecordTime(at) => store::balances_as_of_time(&tx, id, at).await?,
                AsOf::ValueDate(date) => store::balances_as_of_value_date(&tx, id, date).await?,
            };
            Ok((account, balances))
        })
    })
    .await
    .map_err(from_tx_error)
}

/// A statement line: the posting as stored, and the posted balance after it.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementLine {
    pub posting: StatementRow,
    pub running_balance: Decimal,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatementPage {
    pub account: Account,
    pub lines: Vec<StatementLine>,
    pub next_cursor: Option<String>,
}

fn encode_cursor(cursor: &StatementCursor) -> String {
    format!(
        "{}_{}_{}",
        cursor.recorded_at.timestamp_micros(),
        cursor.entry_id.simple(),
        cursor.leg
    )
}

fn decode_cursor(text: &str) -> Result<StatementCursor, LedgerError> {
    let bad = || {
        LedgerError::invalid(
            "cursor",
            "not a cursor from a previous page; start again without one",
        )
    };
    let mut parts = text.split('_');
    let micros: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let entry_id = parts
        .next()
        .and_then(|p| uuid::Uuid::try_parse(p).ok())
        .ok_or_else(bad)?;
    let leg: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    if parts.next().is_some() {
        return Err(bad());
    }
    let recorded_at = DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(bad)?;
    Ok(StatementCursor {
        recorded_at,
        entry_id,
        leg,
    })
}

pub(super) async fn statement(
    db: &Db,
    id: AccountId,
    cursor: Option<&str>,
    page_size: u32,
) -> Result<StatementPage, LedgerError> {
    let after = cursor
        .filter(|c| !c.is_empty())
        .map(decode_cursor)
        .transpose()?;
    let page_size = match page_size {
        0 => STATEMENT_PAGE_SIZE_DEFAULT,
        size if size <= STATEMENT_PAGE_SIZE_MAX => size,
        _ => {
            return Err(LedgerError::invalid(
                "page_size",
                format!("1 to {STATEMENT_PAGE_SIZE_MAX}"),
            ));
        }
    };
    db.run_tx("ledger_read_statement", |tx| {
        Box::pin(async move {
            let account = load_account(&tx, id).await?;
            let (opening, rows) =
                store::statement_page(&tx, id, after, i64::from(page_size)).await?;
            let mut running = opening.posted(account.account_type);
            let normal = account.account_type.normal_side();
            let mut lines = Vec::with_capacity(rows.len());
            let mut last = None;
            for row in rows {
                if row.bucket == Bucket::Posted {
                    if row.direction == normal {
                        running += row.amount;
                    } else {
                        running -= row.amount;
                    }
                }
                last = Some(StatementCursor {
                    recorded_at: row.recorded_at,
                    entry_id: row.entry_id.as_uuid(),
                    leg: row.leg,
                });
                lines.push(StatementLine {
                    posting: row,
                    running_balance: running,
                });
            }
            let full = lines.len() == usize::try_from(page_size).unwrap_or(usize::MAX);
            let next_cursor = if full {
                last.as_ref().map(encode_cursor)
            } else {
                None
            };
            Ok(StatementPage {
                account,
                lines,
                next_cursor,
            })
        })
    })
    .await
    .map_err(from_tx_error)
}

#[derive(Debug, Clone, PartialEq)]
pub struct TrialBalanceReport {
    pub as_of: DateTime<Utc>,
    pub lines: Vec<(Currency, AccountType, Decimal, Decimal)>,
    /// Per currency, debits − credits: zero when the books balance.
    pub difference_by_currency: BTreeMap<&'static str, Decimal>,
}

impl TrialBalanceReport {
    pub fn balanced(&self) -> bool {
        self.difference_by_currency.values().all(Decimal::is_zero)
    }
}

pub(super) async fn trial_balance(
    db: &Db,
    at: DateTime<Utc>,
) -> Result<TrialBalanceReport, LedgerError> {
    let lines = db
        .run_tx("ledger_read_trial_balance", |tx| {
            Box::pin(async move { store::trial_balance(&tx, at).await })
        })
        .await
        .map_err(from_tx_error)?;
    let mut difference_by_currency: BTreeMap<&'static str, Decimal> = BTreeMap::new();
    for (currency, _, debits, credits) in &lines {
        *difference_by_currency.entry(currency.code()).or_default() += *debits - *credits;
    }
    let report = TrialBalanceReport {
        as_of: at,
        lines,
        difference_by_currency,
    };
    // Every entry balances per currency, so the sums must too: checked again on the way out.
    if !report.balanced() {
        tracing::error!(differences = ?report.difference_by_currency, "trial balance does not sum to zero");
        metrics::counter!("corebank_ledger_trial_balance_unbalanced_total").increment(1);
    }
    Ok(report)
}

/// The outcome of recomputing every hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub entries_checked: u64,
    /// The first entry (partition, id, problem) whose hash or link does not hold.
    pub first_broken: Option<(u32, JournalEntryId, String)>,
}

pub(super) async fn verify(db: &Db) -> Result<VerifyReport, LedgerError> {
    let mut checked = 0_u64;
    for partition in 0..CHAIN_PARTITIONS {
        let mut expected_sequence = 1_u64;
        let mut prev_hash = GENESIS_HASH.to_owned();
        loop {
            let after = expected_sequence - 1;
            let page = db
                .run_tx("ledger_verify", |tx| {
                    Box::pin(async move {
                        store::chain_page(&tx, partition, after, VERIFY_PAGE_SIZE).await
                    })
                })
                .await
                .map_err(from_tx_error)?;
            let page_len = page.len();
            for entry in page {
                checked += 1;
                let problem = if entry.chain_sequence != expected_sequence {
                    Some(format!(
                        "sequence {} where {expected_sequence} was expected (an entry is missing)",
                        entry.chain_sequence
                    ))
                } else if entry.prev_hash != prev_hash {
                    Some("its link to the previous entry does not match".to_owned())
                } else if entry_hash(&entry) != entry.hash {
                    Some(
                        "its content does not match its hash (changed after it was written)"
                            .to_owned(),
                    )
                } else {
                    None
                };
                if let Some(problem) = problem {
                    return Ok(VerifyReport {
                        entries_checked: checked,
                        first_broken: Some((partition, entry.id, problem)),
                    });
                }
                prev_hash = entry.hash;
                expected_sequence += 1;
            }
            if i64::try_from(page_len).unwrap_or(i64::MAX) < VERIFY_PAGE_SIZE {
                break;
            }
        }
        let head = db
            .run_tx("ledger_verify", |tx| {
                Box::pin(async move { store::chain_head(&tx, partition).await })
            })
            .await
            .map_err(from_tx_error)?;
        if head.sequence != expected_sequence - 1 || head.hash != prev_hash {
            tracing::error!(
                chain.partition = partition,
                "chain head does not match its last entry"
            );
            return Ok(VerifyReport {
                entries_checked: checked,
                first_broken: Some((
                    partition,
                    JournalEntryId::generate(),
                    format!(
                        "the chain head says sequence {} but the chain ends at {}",
                        head.sequence,
                        expected_sequence - 1
                    ),
                )),
            });
        }
    }
    Ok(VerifyReport {
        entries_checked: checked,
        first_broken: None,
    })
}
