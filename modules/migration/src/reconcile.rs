//! Reconciliation (ADR 0013): proving that the two books agree about what moved, each result
//! kept with its evidence (what was read, from where, and when).
//!
//! Rule `migration_clearing_nets_suspense`, per currency: the balances the moved accounts
//! had when they were frozen add up to the modern migration clearing account's debit
//! balance and to the legacy migration suspense account's balance, so the two net to zero
//! across the books. A break is a difference on either side (a posting made by hand to
//! either account, a move that booked one side only). Run it while no migration is moving
//! accounts: an account between its emptying and its end counts on one side only.
//!
//! Rule `inter_core_clearing_nets`, per currency of the cross-side transfers (ADR 0014):
//! the modern inter-core clearing account's debit balance less the legacy one's balance
//! equals what the transfers between their credit and their capture hold (zero once all
//! have settled). A break is a posting to either account that no transfer made.
//!
//! Rule `moved_accounts_match_snapshots` ([`crate::snapshots`]), per currency: every
//! account moved (and not moved back) equals its snapshot on both books.
//!
//! Rule `expired_holds_hold_nothing` ([`crate::lapsed`]): no hold whose time ran out still
//! holds funds on the modern ledger.
//!
//! Rule `shadowed_accounts_agree` ([`crate::shadowed`]), per currency: an account kept on
//! both books has the same posted balance and amount held on each.
//!
//! Each break becomes an alert ([`crate::alerts`]) in the run's own transaction.

use chrono::{DateTime, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::legacy::v1 as lpb;
use corebank_db::{Transaction, TxError};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::MigrationError;
use crate::app::Migrations;
use crate::moves::amount;

/// The rules' names.
pub const CLEARING_RULE: &str = "migration_clearing_nets_suspense";
pub const INTER_CORE_RULE: &str = "inter_core_clearing_nets";

/// The cross-side transfers' currencies.
const CROSSED_QUERY: &str = "SELECT DISTINCT currency FROM crossings ORDER BY currency";

/// One result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub rule: String,
    pub subject: String,
    pub ok: bool,
    pub expected: String,
    pub actual: String,
    pub evidence: Value,
}

/// A run and its results.
#[derive(Debug, Clone, PartialEq)]
pub struct RunView {
    pub run_id: Uuid,
    pub requested_by: String,
    pub started_at: DateTime<Utc>,
    pub results: Vec<ResultRow>,
}

impl RunView {
    pub fn breaks(&self) -> usize {
        self.results.iter().filter(|result| !result.ok).count()
    }
}

type Result<T> = std::result::Result<T, MigrationError>;

/// The differing accounts a per-account rule's evidence names at most.
pub(crate) const SHOWN_MAX: usize = 20;

/// A per-account rule's result for `subject`: `accounts` checked, `differ` those that are
/// not `agreeing` (the first [`SHOWN_MAX`] named), with `sources` (what was read, from
/// where, when) added to the evidence.
pub(crate) fn accounts_result(
    rule: &str,
    subject: String,
    accounts: usize,
    differ: Vec<Value>,
    agreeing: &str,
    sources: Value,
) -> ResultRow {
    let mut evidence = json!({
        "accounts": accounts,
        "differ": differ.len(),
        "shown": differ.iter().take(SHOWN_MAX).cloned().collect::<Vec<_>>(),
    });
    if let (Some(evidence), Value::Object(sources)) = (evidence.as_object_mut(), sources) {
        evidence.extend(sources);
    }
    ResultRow {
        rule: rule.to_owned(),
        subject,
        ok: differ.is_empty(),
        expected: format!("{accounts} accounts {agreeing}"),
        actual: format!(
            "{} {agreeing}, {} not",
            accounts - differ.len(),
            differ.len()
        ),
        evidence,
    }
}

/// Every account a migration planned, with its state, (once moved) its frozen balance and
/// (once moved back) what came back: the moved ones are summed per currency, less what
/// came back; every currency seen is checked.
const MOVED_QUERY: &str = "SELECT currency, posted, returned, state FROM account_moves";

async fn moved_by_currency(
    tx: &Transaction<'_>,
) -> std::result::Result<Vec<(String, Decimal, i64)>, TxError<MigrationError>> {
    let rows = tx.query(MOVED_QUERY, &[]).await?;
    let mut sums: Vec<(String, Decimal, i64)> = Vec::new();
    for row in rows {
        let currency: String = row.get("currency");
        let moved = row.get::<_, String>("state") == "moved";
        // What moved, less what came back when it was moved back.
        let posted = if moved {
            amount(row.get("posted")) - amount(row.get("returned"))
        } else {
            Decimal::ZERO
        };
        match sums.iter_mut().find(|(known, _, _)| *known == currency) {
            Some((_, sum, count)) => {
                *sum += posted;
                *count += i64::from(moved);
            }
            None => sums.push((currency, posted, i64::from(moved))),
        }
    }
    sums.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(sums)
}

async fn stored(
    tx: &Transaction<'_>,
    run_id: Uuid,
) -> std::result::Result<Option<RunView>, TxError<MigrationError>> {
    let Some(run) = tx
        .query_opt(
            "SELECT requested_by, started_at FROM reconciliation_runs WHERE id = $1",
            &[&run_id],
        )
        .await?
    else {
        return Ok(None);
    };
    let results = tx
        .query(
            "SELECT rule, subject, ok, expected, actual, evidence FROM reconciliation_results \
             WHERE run_id = $1 ORDER BY rule, subject",
            &[&run_id],
        )
        .await?
        .iter()
        .map(|row| ResultRow {
            rule: row.get("rule"),
            subject: row.get("subject"),
            ok: row.get("ok"),
            expected: row.get("expected"),
            actual: row.get("actual"),
            evidence: row.get("evidence"),
        })
        .collect();
    Ok(Some(RunView {
        run_id,
        requested_by: run.get("requested_by"),
        started_at: run.get("started_at"),
        results,
    }))
}

impl Migrations {
    /// Runs the rules now and keeps the results; the same run id again answers that run.
    pub async fn reconcile(&self, run_id: &str, requested_by: &str) -> Result<RunView> {
        let id = corebank_kernel::id::parse_v4("reconciliation", run_id)
            .map_err(|e| MigrationError::invalid("run_id", e.to_string()))?;
        let requested_by = requested_by.trim();
        if requested_by.is_empty() || requested_by.len() > 128 {
            return Err(MigrationError::invalid("requested_by", "1-128 characters"));
        }
        if let Some(run) = self.reconciliation_of(id).await? {
            return Ok(run);
        }
        let started_at = Utc::now();
        let moved = self
            .db()
            .run_tx("migration_reconcile_read", |tx| {
                Box::pin(async move { moved_by_currency(&tx).await })
            })
            .await?;
        let mut results = Vec::with_capacity(moved.len());
        for (currency, expected, accounts) in moved {
            results.push(self.clearing_result(&currency, expected, accounts).await?);
        }
        let crossed: Vec<String> = self
            .db()
            .run_tx("migration_reconcile_crossed", |tx| {
                Box::pin(async move {
                    let rows = tx.query(CROSSED_QUERY, &[]).await?;
                    Ok::<_, TxError<MigrationError>>(
                        rows.iter().map(|row| row.get("currency")).collect(),
                    )
                })
            })
            .await?;
        for currency in crossed {
            results.push(self.inter_core_result(&currency).await?);
        }
        results.extend(self.snapshot_results().await?);
        results.push(self.lapsed_result().await?);
        results.extend(self.shadowed_results().await?);
        let breaks = results.iter().filter(|result| !result.ok).count();
        let run = RunView {
            run_id: id,
            requested_by: requested_by.to_owned(),
            started_at,
            results,
        };
        let stored_run = &run;
        self.db()
            .run_tx("migration_reconcile_store", |tx| {
                Box::pin(async move {
                    let inserted = tx
                        .execute(
                            "INSERT INTO reconciliation_runs (id, requested_by, started_at) \
                             VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING",
                            &[
                                &stored_run.run_id,
                                &stored_run.requested_by,
                                &stored_run.started_at,
                            ],
                        )
                        .await?;
                    if inserted == 0 {
                        return Ok(());
                    }
                    crate::alerts::raise(
                        &tx,
                        stored_run.run_id,
                        &stored_run.results,
                        stored_run.started_at,
                    )
                    .await?;
                    for result in &stored_run.results {
                        tx.execute(
                            "INSERT INTO reconciliation_results (run_id, rule, subject, ok, \
                             expected, actual, evidence) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                            &[
                                &stored_run.run_id,
                                &result.rule,
                                &result.subject,
                                &result.ok,
                                &result.expected,
                                &result.actual,
                                &result.evidence,
                            ],
                        )
                        .await?;
                    }
                    Ok::<_, TxError<MigrationError>>(())
                })
            })
            .await?;
        tracing::info!(run = %id, breaks, "reconciliation run");
        self.reconciliation(run_id).await
    }

    /// A run as it was kept.
    pub async fn reconciliation(&self, run_id: &str) -> Result<RunView> {
        let id =
            Uuid::parse_str(run_id).map_err(|_| MigrationError::invalid("run_id", "not a UUID"))?;
        self.reconciliation_of(id)
            .await?
            .ok_or_else(|| MigrationError::UnknownRun { id: id.to_string() })
    }

    async fn reconciliation_of(&self, id: Uuid) -> Result<Option<RunView>> {
        Ok(self
            .db()
            .run_tx("migration_reconciliation_get", |tx| {
                Box::pin(async move { stored(&tx, id).await })
            })
            .await?)
    }

    /// What the transfers in `currency` between their credit and their capture hold now,
    /// and how many they are.
    async fn crossings_in_flight(&self, currency: &str) -> Result<(Decimal, usize)> {
        let amounts = self
            .db()
            .run_tx("migration_reconcile_in_flight", |tx| {
                Box::pin(async move { crate::store::crossings_in_flight(&tx, currency).await })
            })
            .await?;
        Ok((amounts.iter().map(|a| amount(a)).sum(), amounts.len()))
    }

    /// The inter-core rule for one currency: both clearing accounts now, less what the
    /// transfers between their credit and their capture hold (read before and after the
    /// balances: a transfer that settles while they are read is left out, and the rule is
    /// judged only when both reads agree).
    async fn inter_core_result(&self, currency: &str) -> Result<ResultRow> {
        let (held_before, _) = self.crossings_in_flight(currency).await?;
        let legacy = self
            .peers()
            .legacy
            .clone()
            .get_suspense(lpb::GetSuspenseRequest {
                currency: currency.to_owned(),
                account: "inter_core".to_owned(),
            })
            .await
            .map_err(|status| MigrationError::unavailable("legacy adapter", &status))?
            .into_inner();
        let legacy_read_at = Utc::now();
        let modern = self
            .peers()
            .import
            .clone()
            .get_migration_clearing(dpb::GetMigrationClearingRequest {
                currency: currency.to_owned(),
                account: "inter_core".to_owned(),
            })
            .await
            .map_err(|status| MigrationError::unavailable("modern deposits", &status))?
            .into_inner();
        let (held_after, transfers) = self.crossings_in_flight(currency).await?;
        let (legacy_balance, modern_balance) = (amount(&legacy.balance), amount(&modern.balance));
        let difference = modern_balance - legacy_balance;
        // A transfer that settled between the reads may be on either side of the
        // difference: either figure explains it.
        let ok = difference == held_after || difference == held_before;
        Ok(ResultRow {
            rule: INTER_CORE_RULE.to_owned(),
            subject: currency.to_owned(),
            ok,
            expected: held_after.to_string(),
            actual: format!(
                "modern inter-core clearing {modern_balance} less legacy {legacy_balance} = {difference}"
            ),
            evidence: json!({
                "in_flight": {
                    "transfers": transfers,
                    "total": held_after.to_string(),
                    "total_before_reads": held_before.to_string(),
                    "query": "crossings whose saga is past its credit and not ended (store::crossings_in_flight)",
                },
                "legacy_inter_core": {
                    "account": legacy.account_number,
                    "balance": legacy.balance,
                    "read_at": legacy_read_at,
                    "via": "corebank.legacy.v1.LegacyMigration/GetSuspense account=inter_core (ACCT.BALANCE)",
                },
                "modern_inter_core": {
                    "ledger_account_id": modern.ledger_account_id,
                    "balance": modern.balance,
                    "read_at": modern.read_at,
                    "via": "corebank.deposits.v1.DepositsMigration/GetMigrationClearing account=inter_core (Ledger/GetBalance)",
                },
            }),
        })
    }

    /// The clearing rule for one currency: what moved, as both books hold it now.
    async fn clearing_result(
        &self,
        currency: &str,
        expected: Decimal,
        accounts: i64,
    ) -> Result<ResultRow> {
        let suspense = self
            .peers()
            .legacy
            .clone()
            .get_suspense(lpb::GetSuspenseRequest {
                currency: currency.to_owned(),
                account: "migration".to_owned(),
            })
            .await
            .map_err(|status| MigrationError::unavailable("legacy adapter", &status))?
            .into_inner();
        let suspense_read_at = Utc::now();
        let clearing = self
            .peers()
            .import
            .clone()
            .get_migration_clearing(dpb::GetMigrationClearingRequest {
                currency: currency.to_owned(),
                account: "migration".to_owned(),
            })
            .await
            .map_err(|status| MigrationError::unavailable("modern deposits", &status))?
            .into_inner();
        let (legacy, modern) = (amount(&suspense.balance), amount(&clearing.balance));
        Ok(ResultRow {
            rule: CLEARING_RULE.to_owned(),
            subject: currency.to_owned(),
            ok: legacy == expected && modern == expected,
            expected: expected.to_string(),
            actual: format!("legacy suspense {legacy}, modern clearing {modern}"),
            evidence: json!({
                "moved": {
                    "accounts": accounts,
                    "total": expected.to_string(),
                    "query": MOVED_QUERY,
                },
                "legacy_suspense": {
                    "account": suspense.account_number,
                    "balance": suspense.balance,
                    "read_at": suspense_read_at,
                    "via": "corebank.legacy.v1.LegacyMigration/GetSuspense (ACCT.BALANCE)",
                },
                "modern_clearing": {
                    "ledger_account_id": clearing.ledger_account_id,
                    "balance": clearing.balance,
                    "read_at": clearing.read_at,
                    "via": "corebank.deposits.v1.DepositsMigration/GetMigrationClearing (Ledger/GetBalance)",
                },
            }),
        })
    }
}
