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
            let opening = modern.get(&account.account_id).copied();
            let legacy_ok = book.found
                && book.posted.is_zero()
                && book.held.is_zero()
                && book.emptied == account.snapshot;
            let modern_ok = opening == Some(account.snapshot);
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
                    "modern_opening": opening.map_or_else(|| json!("unreadable"), |o| json!(o.to_string())),
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

    /// Each moved account's opening balance on modern, as its import posted it (`None`
    /// when the statement could not be read).
    async fn modern_openings(
        &self,
        moved: &[Moved],
    ) -> Result<BTreeMap<Uuid, Decimal>, MigrationError> {
        let mut openings = BTreeMap::new();
        let permits = Arc::new(tokio::sync::Semaphore::new(READS_AT_ONCE));
        let mut reads = tokio::task::JoinSet::new();
        for account in moved {
            let permit = Arc::clone(&permits).acquire_owned().await.map_err(|e| {
                MigrationError::Internal {
                    message: e.to_string(),
                }
            })?;
            let mut deposits = self.peers().modern.clone();
            let (id, modern_id) = (account.account_id, account.modern_id.clone());
            reads.spawn(async move {
                let _permit = permit;
                let statement = deposits
                    .get_statement(dpb::GetStatementRequest {
                        account_id: modern_id,
                        cursor: String::new(),
                        page_size: 10,
                    })
                    .await;
                (id, statement.map(tonic::Response::into_inner))
            });
            while let Some(done) = reads.try_join_next() {
                if let Ok((id, Ok(statement))) = done {
                    openings.insert(id, opening_of(&statement));
                }
            }
        }
        while let Some(done) = reads.join_next().await {
            if let Ok((id, Ok(statement))) = done {
                openings.insert(id, opening_of(&statement));
            }
        }
        Ok(openings)
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
