//! Reconciliation rule `shadowed_accounts_agree` (issue 15): an account kept on both books
//! (a shadowed product's: its home's books and the other core's shadow books) has the same
//! posted balance and the same amount held on each.
//!
//! The accounts come from the gateway's directory (`AccountHomes/ListShadowed`, in pages);
//! accounts a migration moved, or is moving, are left out: their old copy was emptied on
//! purpose. Each is read on both cores (`Deposits/GetAccount`). The canonical contract
//! answers the amount held, not the holds one by one, so holds are compared by amount.
//! Shadow runs follow their primary by a moment: run it while channels are quiet, or read a
//! break twice before acting on it.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use corebank_api::deposits::v1 as dpb;
use corebank_api::gateway::v1 as gpb;
use corebank_db::TxError;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::MigrationError;
use crate::app::Migrations;
use crate::reconcile::{ResultRow, accounts_result};

/// The rule's name.
pub const SHADOWED_RULE: &str = "shadowed_accounts_agree";

/// Accounts per page of the directory.
const PAGE: u32 = 500;

/// The accounts a migration moved or moves (either way): not shadow copies.
const MOVED_QUERY: &str = "SELECT DISTINCT account_id FROM account_moves \
     WHERE state IN ('moving', 'moved')";

/// (posted, held) of an account as a core answers it.
fn figures(account: &dpb::Account) -> (String, String) {
    let balances = account.balances.clone().unwrap_or_default();
    (balances.posted, balances.held)
}

impl Migrations {
    /// The rule's results, one per currency of the shadowed accounts.
    pub(crate) async fn shadowed_results(&self) -> Result<Vec<ResultRow>, MigrationError> {
        let moved: BTreeSet<Uuid> = self
            .db()
            .run_tx("migration_reconcile_moved_ids", |tx| {
                Box::pin(async move {
                    let rows = tx.query(MOVED_QUERY, &[]).await?;
                    Ok::<_, TxError<MigrationError>>(
                        rows.iter().map(|row| row.get("account_id")).collect(),
                    )
                })
            })
            .await?;
        let read_at = Utc::now();
        let mut by_currency: BTreeMap<String, (usize, Vec<Value>)> = BTreeMap::new();
        let mut after = String::new();
        loop {
            let page = self
                .peers()
                .homes
                .clone()
                .list_shadowed(gpb::ListShadowedRequest {
                    after_account_id: after.clone(),
                    limit: PAGE,
                })
                .await
                .map_err(|status| MigrationError::unavailable("gateway", &status))?
                .into_inner()
                .accounts;
            let Some(last) = page.last() else {
                break;
            };
            after = last.account_id.clone();
            for home in &page {
                let skip = Uuid::parse_str(&home.account_id).map_or(true, |id| moved.contains(&id));
                if skip || !home.move_id.is_empty() {
                    continue;
                }
                let (legacy, modern) = self.both_copies(home).await?;
                let entry = by_currency.entry(legacy.currency.clone()).or_default();
                entry.0 += 1;
                if figures(&legacy) != figures(&modern) {
                    let (posted, held) = figures(&legacy);
                    let (modern_posted, modern_held) = figures(&modern);
                    entry.1.push(json!({
                        "account_id": home.account_id,
                        "home": home.home,
                        "legacy": { "id": home.legacy_id, "posted": posted, "held": held },
                        "modern": { "id": home.modern_id, "posted": modern_posted, "held": modern_held },
                    }));
                }
            }
            if page.len() < usize::try_from(PAGE).unwrap_or(usize::MAX) {
                break;
            }
        }
        Ok(by_currency
            .into_iter()
            .map(|(currency, (accounts, differ))| {
                accounts_result(
                    SHADOWED_RULE,
                    currency,
                    accounts,
                    differ,
                    "equal on both books",
                    json!({
                        "read_at": read_at,
                        "left_out": MOVED_QUERY,
                        "via": "corebank.gateway.v1.AccountHomes/ListShadowed, then corebank.deposits.v1.Deposits/GetAccount on each core",
                    }),
                )
            })
            .collect())
    }

    /// The account as each core answers it.
    async fn both_copies(
        &self,
        home: &gpb::AccountHome,
    ) -> Result<(dpb::Account, dpb::Account), MigrationError> {
        let mut legacy = self.peers().legacy_deposits.clone();
        let mut modern = self.peers().modern.clone();
        let (legacy, modern) = tokio::join!(
            legacy.get_account(dpb::GetAccountRequest {
                account_id: home.legacy_id.clone(),
            }),
            modern.get_account(dpb::GetAccountRequest {
                account_id: home.modern_id.clone(),
            }),
        );
        Ok((
            legacy
                .map_err(|status| MigrationError::unavailable("legacy adapter", &status))?
                .into_inner(),
            modern
                .map_err(|status| MigrationError::unavailable("modern deposits", &status))?
                .into_inner(),
        ))
    }
}
