//! Reconciliation rule `moved_accounts_match_snapshots` (issue 15): every account moved and
//! not moved back equals, on both books, the snapshot its move took when it froze it.
//!
//! - The legacy book (one `LegacyExport` per product moved, each account with its
//!   statement): the account holds nothing now (posted and held zero), and the posting
//!   that emptied it (`MIGRATED TO NEW CORE`, its last) moved exactly the snapshot's
//!   balance to suspense.
//! - The modern book (`Deposits/GetStatement` of the modern account, its first lines): the
//!   opening balance the import posted (`opening balance moved from <number>`) is exactly
//!   the snapshot's balance.
//!
//! Later postings on modern are the customer's business and do not matter here; the move's
//! `verify` step compared the whole balance and the holds when the account was still
//! frozen. One result per currency; the evidence names up to 20 accounts that differ, with
//! their figures.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use corebank_api::deposits::v1 as dpb;
use corebank_api::legacy::v1 as lpb;
use corebank_db::TxError;
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::MigrationError;
use crate::app::Migrations;
use crate::moves::amount;
use crate::reconcile::{ResultRow, accounts_result};

/// The rule's name.
pub const SNAPSHOT_RULE: &str = "moved_accounts_match_snapshots";

/// Modern statements read at once.
const READS_AT_ONCE: usize = 32;

/// How often a statement read that met a passing failure (a busy or restarting peer) is
/// made before the account is reported unreadable, and the wait before the first retry
/// (doubled each time).
const READ_ATTEMPTS: u32 = 5;
const READ_RETRY_WAIT: std::time::Duration = std::time::Duration::from_millis(100);

/// The accounts moved and not moved back, with their snapshots and products.
const MOVED_ACCOUNTS_QUERY: &str = "SELECT m.account_id, m.legacy_account_number, m.currency, \
     m.posted, m.modern_id, g.product_code FROM account_moves m \
     JOIN migrations g ON g.id = m.migration_id \
     WHERE m.state = 'moved' AND m.returned = '' ORDER BY m.currency, m.account_id";

/// The legacy core's narrative of the posting that empties a moved account.
const EMPTIED_NARRATIVE: &str = "MIGRATED TO NEW CORE";

/// The modern import's description of an opening balance.
const OPENING_PREFIX: &str = "opening balance moved from";

#[derive(Debug, Clone)]
struct Moved {
    account_id: Uuid,
    legacy_number: String,
    currency: String,
    snapshot: Decimal,
    modern_id: String,
    product: String,
}

/// What one book says of a moved account.
#[derive(Debug, Clone, Default)]
struct Legacy {
    found: bool,
    posted: Decimal,
    held: Decimal,
    /// The last emptying posting, signed as it left the account (positive: money out).
    emptied: Decimal,
}

/// A statement line as money into the account (credit positive, debit negative).
fn signed(direction: &str, text: &str) -> Decimal {
    if direction == "debit" {
        -amount(text)
    } else {
        amount(text)
    }
}

impl Migrations {
    /// The rule's results, one per currency of the accounts moved.
    pub(crate) async fn snapshot_results(&self) -> Result<Vec<ResultRow>, MigrationError> {
        let moved = self
            .db()
            .run_tx("migration_reconcile_moved_accounts", |tx| {
                Box::pin(async move {
                    let rows = tx.query(MOVED_ACCOUNTS_QUERY, &[]).await?;
                    Ok::<_, TxError<MigrationError>>(
                        rows.iter()
                            .map(|row| Moved {
                                account_id: row.get("account_id"),
                                legacy_number: row.get("legacy_account_number"),
                                currency: row.get("currency"),
                                snapshot: amount(row.get("posted")),
                                modern_id: row.get("modern_id"),
                                product: row.get("product_code"),
                            })
                            .collect::<Vec<_>>(),
                    )
                })
            })
            .await?;
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        let legacy_read_at = Utc::now();
        let legacy = self.legacy_figures(&moved).await?;
        let modern_read_at = Utc::now();
        let modern = self.modern_openings(&moved).await?;
        let mut by_currency: BTreeMap<&str, (usize, Vec<Value>)> = BTreeMap::new();
        for account in &moved {
            let entry = by_currency.entry(&account.currency).or_default();
            entry.0 += 1;
            let book = legacy.get(&account.account_id).cloned().unwrap_or_default();
            let opening = modern
                .get(&account.account_id)
                .cloned()
                .unwrap_or_else(|| Err("not read".to_owned()));
            let legacy_ok = book.found
                && book.posted.is_zero()
                && book.held.is_zero()
                && book.emptied == account.snapshot;
            let modern_ok = opening.as_ref() == Ok(&account.snapshot);
            if !(legacy_ok && modern_ok) {
                entry.1.push(json!({
                    "account_id": account.account_id,
                    "legacy_account_number": account.legacy_number,
                    "snapshot": account.snapshot.to_string(),
                    "legacy": if book.found {
                        json!({
                            "posted": book.posted.to_string(),
                            "held": book.held.to_string(),
                            "emptied": book.emptied.to_string(),
                        })
                    } else {
                        json!("not in the export")
                    },
                    "modern_opening": match &opening {
                        Ok(opening) => json!(opening.to_string()),
                        Err(why) => json!(format!("unreadable: {why}")),
                    },
                }));
            }
        }
        Ok(by_currency
            .into_iter()
            .map(|(currency, (accounts, differ))| {
                accounts_result(
                    SNAPSHOT_RULE,
                    currency.to_owned(),
                    accounts,
                    differ,
                    "as their snapshots",
                    json!({
                        "query": MOVED_ACCOUNTS_QUERY,
                        "legacy": {
                            "read_at": legacy_read_at,
                            "via": "corebank.legacy.v1.LegacyExport/ExportAccounts per product (ACCT.EXPORT, STMT.ENT.BOOK): posted, held, the last `MIGRATED TO NEW CORE` posting",
                        },
                        "modern": {
                            "read_at": modern_read_at,
                            "via": "corebank.deposits.v1.Deposits/GetStatement of each modern account: the import's opening balance line",
                        },
                    }),
                )
            })
            .collect())
    }

    /// Each moved account as the legacy books have it now, one export per product.
    async fn legacy_figures(
        &self,
        moved: &[Moved],
    ) -> Result<BTreeMap<Uuid, Legacy>, MigrationError> {
        let mut products: Vec<&str> = moved.iter().map(|m| m.product.as_str()).collect();
        products.sort_unstable();
        products.dedup();
        let wanted: std::collections::BTreeSet<Uuid> = moved.iter().map(|m| m.account_id).collect();
        let mut figures = BTreeMap::new();
        for product in products {
            for account in self.export(product).await? {
                let Ok(id) = Uuid::parse_str(&account.account_id) else {
                    continue;
                };
                if !wanted.contains(&id) {
                    continue;
                }
                figures.insert(id, legacy_of(&account));
            }
        }
        Ok(figures)
    }

    /// Each moved account's opening balance on modern, as its import posted it, or why
    /// its statement could not be read (after [`READ_ATTEMPTS`] reads, for a passing
    /// failure).
    async fn modern_openings(
        &self,
        moved: &[Moved],
    ) -> Result<BTreeMap<Uuid, Result<Decimal, String>>, MigrationError> {
        let mut openings = BTreeMap::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(READS_AT_ONCE));
        let mut reads = tokio::task::JoinSet::new();
        let mut keep = |done: Result<(Uuid, Result<dpb::Statement, String>), _>| {
            if let Ok((id, statement)) = done {
                openings.insert(id, statement.map(|statement| opening_of(&statement)));
            }
        };
        for account in moved {
            let permit = Arc::clone(&permits).acquire_owned().await.map_err(|e| {
                MigrationError::Internal {
                    message: e.to_string(),
                }
            })?;
            let deposits = self.peers().modern.clone();
            let (id, modern_id) = (account.account_id, account.modern_id.clone());
            reads.spawn(async move {
                let _permit = permit;
                let statement = patiently(|| {
                    let mut deposits = deposits.clone();
                    let account_id = modern_id.clone();
                    async move {
                        deposits
                            .get_statement(dpb::GetStatementRequest {
                                account_id,
                                cursor: String::new(),
                                page_size: 10,
                            })
                            .await
                            .map(tonic::Response::into_inner)
                    }
                })
                .await;
                (id, statement)
            });
            while let Some(done) = reads.try_join_next() {
                keep(done);
            }
        }
        while let Some(done) = reads.join_next().await {
            keep(done);
        }
        Ok(openings)
    }
}

/// A read made again, up to [`READ_ATTEMPTS`] times, while it meets a passing failure
/// (the peer unavailable, busy, slow or failing inside): a reconciliation reports what the
/// books say, not that a peer was busy when it asked. Any other refusal is final. The
/// error is the last one's code and message.
async fn patiently<T, F, Fut>(mut read: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    let mut wait = READ_RETRY_WAIT;
    let mut attempt = 1;
    loop {
        match read().await {
            Ok(answer) => return Ok(answer),
            Err(status) => {
                let passing = matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::ResourceExhausted
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Aborted
                        | tonic::Code::Internal
                );
                if !passing || attempt >= READ_ATTEMPTS {
                    let code = corebank_service::contract::error_code(&status);
                    return Err(format!(
                        "{code}: {} (after {attempt} reads)",
                        status.message()
                    ));
                }
                tracing::debug!(code = ?status.code(), attempt, "a statement read failed for now; reading it again");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
        }
    }
}

/// A legacy account's figures from its export.
fn legacy_of(account: &lpb::ExportedAccount) -> Legacy {
    let emptied = account
        .statement
        .iter()
        .rev()
        .find(|line| line.description.starts_with(EMPTIED_NARRATIVE))
        .map_or(Decimal::ZERO, |line| -signed(&line.direction, &line.amount));
    Legacy {
        found: true,
        posted: amount(&account.posted),
        held: amount(&account.held),
        emptied,
    }
}

/// The import's opening balance on a modern statement (zero when it posted none: the
/// account moved empty).
fn opening_of(statement: &dpb::Statement) -> Decimal {
    statement
        .lines
        .iter()
        .find(|line| line.description.starts_with(OPENING_PREFIX))
        .map_or(Decimal::ZERO, |line| signed(&line.direction, &line.amount))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_read_that_meets_a_passing_failure_is_made_again_and_a_refusal_is_final() {
        let reads = std::sync::atomic::AtomicU32::new(0);
        let busy_twice = patiently(|| {
            let n = reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(tonic::Status::resource_exhausted(
                        "too many requests at once",
                    ))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(busy_twice, Ok(2));
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 3);

        let reads = std::sync::atomic::AtomicU32::new(0);
        let refused: Result<(), String> = patiently(|| {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err(tonic::Status::not_found("no such account")) }
        })
        .await;
        assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
        let why = refused.unwrap_err();
        assert!(
            why.contains("no such account") && why.contains("after 1 reads"),
            "{why}"
        );

        let reads = std::sync::atomic::AtomicU32::new(0);
        let down: Result<(), String> = patiently(|| {
            reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { Err(tonic::Status::unavailable("connection refused")) }
        })
        .await;
        assert_eq!(
            reads.load(std::sync::atomic::Ordering::SeqCst),
            READ_ATTEMPTS
        );
        assert!(down.unwrap_err().contains("connection refused"));
    }

    fn line(direction: &str, amount: &str, description: &str) -> lpb::ExportedLine {
        lpb::ExportedLine {
            direction: direction.to_owned(),
            amount: amount.to_owned(),
            description: description.to_owned(),
            ..Default::default()
        }
    }

    #[test]
    fn the_last_emptying_posting_is_what_left_the_account() {
        let account = lpb::ExportedAccount {
            posted: "0.00".to_owned(),
            held: "0.00".to_owned(),
            statement: vec![
                line("credit", "50.00", "CASH DEPOSIT"),
                line("debit", "50.00", EMPTIED_NARRATIVE),
                line("credit", "10.00", "RESTORED FROM OTHER CORE"),
                line("debit", "10.00", EMPTIED_NARRATIVE),
            ],
            ..Default::default()
        };
        let figures = legacy_of(&account);
        assert_eq!(figures.emptied, Decimal::new(1000, 2));
        assert!(figures.found && figures.posted.is_zero());
        // An overdrawn account was emptied by a credit: it moved a negative balance.
        let overdrawn = lpb::ExportedAccount {
            statement: vec![line("credit", "5.00", EMPTIED_NARRATIVE)],
            ..Default::default()
        };
        assert_eq!(legacy_of(&overdrawn).emptied, Decimal::new(-500, 2));
    }

    #[test]
    fn the_opening_balance_is_the_imports_line_or_zero() {
        let statement = dpb::Statement {
            lines: vec![dpb::StatementLine {
                direction: "credit".to_owned(),
                amount: "42.00".to_owned(),
                description: format!("{OPENING_PREFIX} 10000001"),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(opening_of(&statement), Decimal::new(4200, 2));
        assert_eq!(opening_of(&dpb::Statement::default()), Decimal::ZERO);
    }
}
