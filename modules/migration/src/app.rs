//! A migration: its plan from one export of the legacy books, its start (the plan stored,
//! 500 accounts a transaction, then its control; the feeder, [`crate::feed`], starts the
//! moves in chunks), and how it stands.
//!
//! The plan chooses a product's accounts, all or a stable hash fraction of them (a canary of
//! accounts: the same accounts for the same fraction, and a larger fraction keeps the
//! smaller one's), and refuses with a stable code those that cannot move: `account_closed`,
//! `no_modern_product` (no modern product of the code), `product_not_at_parity` (another
//! currency), `account_moving` (another migration moves or moved it). A dry run stores the
//! plan and starts nothing. The moves of a stored plan are started by the feeder
//! ([`crate::feed`]), within the migration's controls (window, rate, error threshold, pause).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use corebank_api::deposits::v1 as dpb;
use corebank_api::legacy::v1 as lpb;
use corebank_db::Db;
use corebank_saga::{Executor, NewSaga, Registry};
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::feed::FeedState;
use crate::moves::{MoveInput, is_refusal, refusal_of};
use crate::peers::Peers;
use crate::store::{self, ControlRow, MigrationRow, MoveRow, PlannedMove};
use crate::{MigrationError, derived_id};

/// Moves stored per transaction.
const MOVES_PER_TX: usize = 500;

/// What a start asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartRequest {
    pub migration_id: String,
    pub product_code: String,
    /// Empty: all the product's accounts.
    pub fraction: String,
    pub dry_run: bool,
    pub requested_by: String,
    /// Only these customers' accounts; empty: every customer's.
    pub customer_ids: Vec<String>,
    /// Moves started a second at most; 0: the in-flight window alone decides.
    pub rate_per_s: u32,
    /// Moves under way at once at most (1 to 64); 0: 64.
    pub in_flight_max: u32,
    /// 0 to 1: the share of failed or mismatched moves past which the migration stops by
    /// itself; empty: [`DEFAULT_MAX_ERROR_RATIO`].
    pub max_error_ratio: String,
}

/// The error ratio a migration stops at unless its start names another.
pub const DEFAULT_MAX_ERROR_RATIO: &str = "0.05";

/// The highest rate a migration may be given (moves a second).
pub const RATE_MAX: u32 = 10_000;

/// Customers one migration may be limited to at most.
pub const CUSTOMERS_MAX: usize = 10_000;

/// Migrations one list answers at most.
pub const LIST_MAX: u32 = 100;

/// One account's move as the migration reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveView {
    pub account_id: Uuid,
    pub legacy_account_number: String,
    /// planned | moving | moved | refused | failed
    pub state: String,
    pub reason: String,
    pub posted: String,
    pub held: String,
    pub holds: i64,
    pub modern_id: String,
    pub saga_id: Option<Uuid>,
}

/// A migration and how it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationView {
    pub migration: MigrationRow,
    /// running | paused | stopped | done | dry_run
    pub status: &'static str,
    /// Accounts per state.
    pub counts: std::collections::BTreeMap<String, u64>,
    /// Each account (empty in a list of migrations).
    pub accounts: Vec<MoveView>,
    /// How its moves are started (none for a dry run).
    pub control: Option<ControlRow>,
}

impl MigrationView {
    /// The migration with `counts` of accounts per state: running while any moves, unless
    /// its control holds it (paused or stopped).
    fn new(
        migration: MigrationRow,
        counts: std::collections::BTreeMap<String, u64>,
        accounts: Vec<MoveView>,
        control: Option<ControlRow>,
    ) -> MigrationView {
        let active = ["moving", "planned", "returning"]
            .iter()
            .any(|state| counts.get(*state).is_some_and(|n| *n > 0));
        let held = control.as_ref().map_or("", |c| c.state.as_str());
        let status = if migration.dry_run {
            "dry_run"
        } else if active && held == "paused" {
            "paused"
        } else if active && held == "stopped" {
            "stopped"
        } else if active {
            "running"
        } else {
            "done"
        };
        MigrationView {
            migration,
            status,
            counts,
            accounts,
            control,
        }
    }

    /// How many accounts are in `state`.
    pub fn count(&self, state: &str) -> u64 {
        self.counts.get(state).copied().unwrap_or(0)
    }
}

/// The migration use cases.
#[derive(Debug, Clone)]
pub struct Migrations {
    db: Db,
    peers: Arc<Peers>,
    registry: Arc<Registry>,
    executor: Executor,
    feed: Arc<FeedState>,
}

/// Where an account falls in `[0, 1)`: stable, from its id alone.
pub fn bucket(account_id: &str) -> Decimal {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("corebank.migration.bucket:{account_id}").as_bytes());
    let mut first = [0_u8; 4];
    first.copy_from_slice(&digest[..4]);
    Decimal::from(u32::from_be_bytes(first)) / Decimal::from(u64::from(u32::MAX) + 1)
}

fn parse_fraction(text: &str) -> Result<Decimal, MigrationError> {
    if text.is_empty() {
        return Ok(Decimal::ONE);
    }
    let fraction: Decimal = text
        .parse()
        .map_err(|_| MigrationError::invalid("fraction", format!("{text:?} is not a number")))?;
    if fraction <= Decimal::ZERO || fraction > Decimal::ONE {
        return Err(MigrationError::invalid(
            "fraction",
            format!("{text} is not more than 0 and at most 1"),
        ));
    }
    Ok(fraction)
}

fn parse_ratio(text: &str) -> Result<String, MigrationError> {
    if text.is_empty() {
        return Ok(DEFAULT_MAX_ERROR_RATIO.to_owned());
    }
    let ratio: Decimal = text.parse().map_err(|_| {
        MigrationError::invalid("max_error_ratio", format!("{text:?} is not a number"))
    })?;
    if ratio < Decimal::ZERO || ratio > Decimal::ONE {
        return Err(MigrationError::invalid(
            "max_error_ratio",
            format!("{text} is not between 0 and 1"),
        ));
    }
    Ok(ratio.normalize().to_string())
}

impl Migrations {
    pub fn new(
        db: Db,
        peers: Arc<Peers>,
        registry: Arc<Registry>,
        executor: Executor,
    ) -> Migrations {
        Migrations {
            db,
            peers,
            registry,
            executor,
            feed: Arc::new(FeedState::default()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    pub(crate) fn executor(&self) -> &Executor {
        &self.executor
    }

    pub(crate) fn feed_state(&self) -> &FeedState {
        &self.feed
    }

    pub(crate) fn peers(&self) -> &Peers {
        &self.peers
    }

    /// Plans the migration and, unless a dry run, starts its moves; the same id again
    /// answers it as it stands.
    pub async fn start(&self, request: &StartRequest) -> Result<MigrationView, MigrationError> {
        let id = corebank_kernel::id::parse_v4("migration", &request.migration_id)
            .map_err(|e| MigrationError::invalid("migration_id", e.to_string()))?;
        let code = request.product_code.trim();
        if code.is_empty() || code.len() > 64 {
            return Err(MigrationError::invalid("product_code", "1-64 characters"));
        }
        let fraction = parse_fraction(&request.fraction)?;
        let requested_by = request.requested_by.trim();
        if requested_by.is_empty() || requested_by.len() > 128 {
            return Err(MigrationError::invalid("requested_by", "1-128 characters"));
        }
        if request.customer_ids.len() > CUSTOMERS_MAX {
            return Err(MigrationError::invalid(
                "customer_ids",
                format!("at most {CUSTOMERS_MAX}"),
            ));
        }
        if let Some(bad) = request
            .customer_ids
            .iter()
            .find(|id| id.trim().is_empty() || id.chars().count() > 128)
        {
            return Err(MigrationError::invalid(
                "customer_ids",
                format!("{bad:?} is not a customer id (1-128 characters, not blank)"),
            ));
        }
        if request.rate_per_s > RATE_MAX {
            return Err(MigrationError::invalid(
                "rate_per_s",
                format!("at most {RATE_MAX} moves a second (0: no rate)"),
            ));
        }
        let max_error_ratio = parse_ratio(&request.max_error_ratio)?;
        let in_flight_max = match request.in_flight_max {
            0 => crate::feed::IN_FLIGHT_MAX,
            n if i64::from(n) <= crate::feed::IN_FLIGHT_MAX => i64::from(n),
            _ => {
                return Err(MigrationError::invalid(
                    "in_flight_max",
                    format!("at most {} moves under way", crate::feed::IN_FLIGHT_MAX),
                ));
            }
        };
        let mut customers = request.customer_ids.clone();
        customers.sort();
        customers.dedup();
        if let Some((existing, control)) = self.row(id).await? {
            let field = if existing.product_code != code {
                Some("product_code")
            } else if existing.fraction != request.fraction {
                Some("fraction")
            } else if existing.dry_run != request.dry_run {
                Some("dry_run")
            } else if existing.customers != customers {
                Some("customer_ids")
            } else if control.as_ref().is_some_and(|c| {
                c.rate_per_s != i64::from(request.rate_per_s)
                    || c.max_error_ratio != max_error_ratio
                    || c.in_flight_max != in_flight_max
            }) {
                Some("rate_per_s")
            } else {
                None
            };
            if let Some(field) = field {
                return Err(MigrationError::ExistsWithDifferent {
                    id: id.to_string(),
                    field,
                });
            }
            // A start without its control was interrupted while storing its plan: it is
            // planned again (what was stored stays) and finished.
            if existing.dry_run || control.is_some() {
                return self.get(&request.migration_id).await;
            }
        }
        let modern_currency = self.modern_currency(code).await?;
        let exported = self.export(code).await?;
        let journal = exported.first().map_or(0, |account| account.journal);
        let migration = MigrationRow {
            id,
            product_code: code.to_owned(),
            fraction: request.fraction.clone(),
            dry_run: request.dry_run,
            requested_by: requested_by.to_owned(),
            journal: i64::try_from(journal).unwrap_or(i64::MAX),
            created_at: Utc::now(),
            customers,
        };
        let planned: Vec<PlannedMove> = exported
            .iter()
            .filter(|account| bucket(&account.account_id) < fraction)
            .filter(|account| {
                migration.customers.is_empty()
                    || migration
                        .customers
                        .binary_search(&account.customer_id)
                        .is_ok()
            })
            .map(|account| plan(id, account, modern_currency.as_deref()))
            .collect();
        tracing::info!(
            migration = %id,
            product = code,
            accounts = planned.len(),
            dry_run = request.dry_run,
            "migration planned"
        );
        let migration = &migration;
        self.db
            .run_tx("migration_start", |tx| {
                Box::pin(async move { store::insert_migration(&tx, migration).await })
            })
            .await
            .map_err(MigrationError::from)?;
        for chunk in planned.chunks(MOVES_PER_TX) {
            self.store_chunk(migration, chunk).await?;
        }
        if !request.dry_run {
            // Only a whole plan gets its control, which lets the feeder start its moves.
            let control = ControlRow {
                migration_id: id,
                state: "running".to_owned(),
                rate_per_s: i64::from(request.rate_per_s),
                in_flight_max,
                max_error_ratio,
                errors_accepted: 0,
                settled_accepted: 0,
                reason: String::new(),
                changed_by: requested_by.to_owned(),
                changed_at: Utc::now(),
            };
            let control = &control;
            self.db
                .run_tx("migration_control", |tx| {
                    Box::pin(async move { store::insert_control(&tx, control).await })
                })
                .await?;
            self.feed.wake.notify_one();
        }
        self.get(&request.migration_id).await
    }

    /// Stores a chunk of the plan, refusing accounts another migration moves, in one
    /// transaction.
    async fn store_chunk(
        &self,
        migration: &MigrationRow,
        chunk: &[PlannedMove],
    ) -> Result<(), MigrationError> {
        self.db
            .run_tx("migration_store_plan", |tx| {
                Box::pin(async move {
                    let mut accounts = Vec::with_capacity(chunk.len());
                    for planned in chunk {
                        accounts.push(Uuid::parse_str(&planned.input.account_id).map_err(|e| {
                            corebank_db::TxError::Abort(MigrationError::internal(e))
                        })?);
                    }
                    let elsewhere = store::moved_elsewhere(&tx, &accounts, migration.id).await?;
                    let mut moves = Vec::with_capacity(chunk.len());
                    for (planned, account) in chunk.iter().zip(&accounts) {
                        let mut planned = planned.clone();
                        if planned.state == "planned" && elsewhere.contains(account) {
                            planned.state = "refused";
                            planned.reason =
                                "account_moving: another migration moves or moved it".to_owned();
                        }
                        moves.push(planned);
                    }
                    store::insert_moves(&tx, migration.id, &moves, Utc::now()).await
                })
            })
            .await
            .map_err(MigrationError::from)
    }

    /// The modern product's currency, or `None` when modern has no product of the code.
    async fn modern_currency(&self, code: &str) -> Result<Option<String>, MigrationError> {
        let answer = self
            .peers
            .modern
            .clone()
            .get_product(dpb::GetProductRequest {
                code: code.to_owned(),
                version: 0,
            })
            .await;
        match answer {
            Ok(product) => Ok(Some(product.into_inner().currency)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(MigrationError::unavailable("modern deposits", &status)),
        }
    }

    /// Every account of the product, from one export of the legacy books.
    pub(crate) async fn export(
        &self,
        code: &str,
    ) -> Result<Vec<lpb::ExportedAccount>, MigrationError> {
        let mut stream = self
            .peers
            .export
            .clone()
            .export_accounts(lpb::ExportAccountsRequest {
                product_code: code.to_owned(),
            })
            .await
            .map_err(|status| MigrationError::unavailable("legacy adapter", &status))?
            .into_inner();
        let mut accounts = Vec::new();
        while let Some(account) = stream
            .message()
            .await
            .map_err(|status| MigrationError::unavailable("legacy adapter", &status))?
        {
            accounts.push(account);
        }
        Ok(accounts)
    }

    /// The migration and its control.
    async fn row(
        &self,
        id: Uuid,
    ) -> Result<Option<(MigrationRow, Option<ControlRow>)>, MigrationError> {
        Ok(self
            .db
            .run_tx("migration_get", |tx| {
                Box::pin(async move {
                    let Some(migration) = store::migration(&tx, id).await? else {
                        return Ok(None);
                    };
                    Ok(Some((migration, store::control(&tx, id).await?)))
                })
            })
            .await?)
    }

    /// Starts moving one moved account back to the legacy core (idempotent); answers it.
    pub async fn return_account(
        &self,
        migration_id: &str,
        account_id: &str,
        requested_by: &str,
    ) -> Result<MoveView, MigrationError> {
        let migration = Uuid::parse_str(migration_id)
            .map_err(|_| MigrationError::invalid("migration_id", "not a UUID"))?;
        let account = Uuid::parse_str(account_id)
            .map_err(|_| MigrationError::invalid("account_id", "not a UUID"))?;
        if requested_by.trim().is_empty() || requested_by.len() > 128 {
            return Err(MigrationError::invalid("requested_by", "1-128 characters"));
        }
        let registry = &self.registry;
        let saga_id = derived_id(&["return", migration_id, account_id]);
        let row = self
            .db
            .run_tx("migration_return_account", |tx| {
                Box::pin(async move {
                    let Some(row) = store::account_move(&tx, migration, account).await? else {
                        return Err(corebank_db::TxError::Abort(
                            MigrationError::UnknownMigration {
                                id: format!("{migration} (account {account})"),
                            },
                        ));
                    };
                    if row.return_saga_id == Some(saga_id) {
                        return Ok(row);
                    }
                    let state = view(row.clone()).state;
                    if state != "moved" || row.return_saga_id.is_some() {
                        return Err(corebank_db::TxError::Abort(
                            MigrationError::AccountNotMoved {
                                migration_id: migration.to_string(),
                                account_id: account.to_string(),
                                state,
                            },
                        ));
                    }
                    let product_code = store::migration(&tx, migration)
                        .await?
                        .map(|m| m.product_code)
                        .unwrap_or_default();
                    let input = MoveInput {
                        migration_id: migration.to_string(),
                        account_id: account.to_string(),
                        legacy_account_number: row.legacy_account_number.clone(),
                        customer_id: row.customer_id.clone(),
                        product_code,
                        currency: row.currency.clone(),
                        opened_on: String::new(),
                    };
                    let mut saga_input = input.to_json();
                    saga_input["modern_id"] = serde_json::json!(row.modern_id);
                    saga_input["requested_by"] = serde_json::json!(requested_by);
                    start_saga(
                        &tx,
                        registry,
                        NewSaga {
                            id: saga_id,
                            saga_type: crate::returns::SAGA_TYPE.to_owned(),
                            input: saga_input,
                            business_key: account.to_string(),
                        },
                    )
                    .await?;
                    store::set_return_saga(&tx, migration, account, saga_id).await?;
                    let row = store::account_move(&tx, migration, account).await?;
                    row.ok_or_else(|| {
                        corebank_db::TxError::Abort(MigrationError::internal("the move vanished"))
                    })
                })
            })
            .await?;
        self.executor.nudge();
        tracing::info!(migration = %migration, account = %account, requested_by, "account return started");
        Ok(view(row))
    }

    /// The newest migrations as they stand (at most [`LIST_MAX`]; 0: 20).
    pub async fn list(&self, limit: u32) -> Result<Vec<MigrationView>, MigrationError> {
        let limit = i64::from(if limit == 0 { 20 } else { limit.min(LIST_MAX) });
        let rows = self
            .db
            .run_tx("migration_list", |tx| {
                Box::pin(async move { store::migrations(&tx, limit).await })
            })
            .await?;
        let mut views = Vec::with_capacity(rows.len());
        for migration in rows {
            let id = migration.id;
            let (grouped, control) = self
                .db
                .run_tx("migration_list_counts", |tx| {
                    Box::pin(async move {
                        Ok((
                            store::move_counts(&tx, id).await?,
                            store::control(&tx, id).await?,
                        ))
                    })
                })
                .await?;
            let mut counts = std::collections::BTreeMap::new();
            for (standing, accounts) in grouped {
                *counts.entry(view(standing).state).or_insert(0) +=
                    u64::try_from(accounts).unwrap_or(0);
            }
            views.push(MigrationView::new(migration, counts, Vec::new(), control));
        }
        Ok(views)
    }

    /// A migration as it stands.
    pub async fn get(&self, migration_id: &str) -> Result<MigrationView, MigrationError> {
        let id = Uuid::parse_str(migration_id)
            .map_err(|_| MigrationError::invalid("migration_id", "not a UUID"))?;
        let (migration, moves, control) = self
            .db
            .run_tx("migration_get_moves", |tx| {
                Box::pin(async move {
                    let Some(migration) = store::migration(&tx, id).await? else {
                        return Err(corebank_db::TxError::Abort(
                            MigrationError::UnknownMigration { id: id.to_string() },
                        ));
                    };
                    Ok((
                        migration,
                        store::moves(&tx, id).await?,
                        store::control(&tx, id).await?,
                    ))
                })
            })
            .await?;
        let accounts: Vec<MoveView> = moves.into_iter().map(view).collect();
        let mut counts = std::collections::BTreeMap::new();
        for account in &accounts {
            *counts.entry(account.state.clone()).or_insert(0) += 1;
        }
        Ok(MigrationView::new(migration, counts, accounts, control))
    }

    /// Stops starting the migration's planned moves (those under way finish); a paused or
    /// stopped migration answers as it stands.
    pub async fn pause(
        &self,
        migration_id: &str,
        requested_by: &str,
        reason: &str,
    ) -> Result<MigrationView, MigrationError> {
        self.control(migration_id, requested_by, reason, "paused")
            .await
    }

    /// Starts a paused or stopped migration's planned moves again; a running (or fed)
    /// migration answers as it stands.
    pub async fn resume(
        &self,
        migration_id: &str,
        requested_by: &str,
        reason: &str,
    ) -> Result<MigrationView, MigrationError> {
        let view = self
            .control(migration_id, requested_by, reason, "running")
            .await?;
        self.feed.wake.notify_one();
        Ok(view)
    }

    async fn control(
        &self,
        migration_id: &str,
        requested_by: &str,
        reason: &str,
        to: &'static str,
    ) -> Result<MigrationView, MigrationError> {
        let id = Uuid::parse_str(migration_id)
            .map_err(|_| MigrationError::invalid("migration_id", "not a UUID"))?;
        let requested_by = requested_by.trim();
        if requested_by.is_empty() || requested_by.len() > 128 {
            return Err(MigrationError::invalid("requested_by", "1-128 characters"));
        }
        if reason.trim().is_empty() || reason.chars().count() > 2_000 {
            return Err(MigrationError::invalid(
                "reason",
                "1-2000 characters, not blank",
            ));
        }
        let changed = self
            .db
            .run_tx("migration_control_change", |tx| {
                Box::pin(async move {
                    let Some(control) = store::control(&tx, id).await? else {
                        let exists = store::migration(&tx, id).await?.is_some();
                        return Err(corebank_db::TxError::Abort(if exists {
                            MigrationError::MigrationNotRunning {
                                id: id.to_string(),
                                state: "dry_run".to_owned(),
                                message: "a dry run moves nothing",
                            }
                        } else {
                            MigrationError::UnknownMigration { id: id.to_string() }
                        }));
                    };
                    let from = control.state.as_str();
                    match (from, to) {
                        ("running", "paused") => {
                            store::change_control(&tx, id, from, to, reason, requested_by).await
                        }
                        ("paused" | "stopped", "running") => {
                            // The errors so far are accepted with the resume: the ratio
                            // weighs the moves settled after it.
                            let tally = crate::feed::tally(&tx, id, true).await?;
                            store::accept_errors(&tx, id, tally.errors, tally.settled).await?;
                            store::change_control(&tx, id, from, to, reason, requested_by).await
                        }
                        ("fed", "paused") => Err(corebank_db::TxError::Abort(
                            MigrationError::MigrationNotRunning {
                                id: id.to_string(),
                                state: control.state.clone(),
                                message: "every planned move has started: nothing is left to \
                                          pause (a moved account moves back by rollback)",
                            },
                        )),
                        _ => Ok(false),
                    }
                })
            })
            .await?;
        if changed {
            tracing::info!(migration = %id, to, requested_by, reason, "migration control changed");
        }
        self.get(migration_id).await
    }
}

/// Starts `saga` in the caller's transaction (a saga refusal is this component's fault).
pub(crate) async fn start_saga(
    tx: &corebank_db::Transaction<'_>,
    registry: &Registry,
    saga: NewSaga,
) -> Result<(), corebank_db::TxError<MigrationError>> {
    corebank_saga::start(tx, registry, &saga)
        .await
        .map(|_| ())
        .map_err(|error| match error {
            corebank_db::TxError::Abort(saga) => {
                corebank_db::TxError::Abort(MigrationError::internal(saga))
            }
            corebank_db::TxError::Db(db) => corebank_db::TxError::Db(db),
        })
}

/// The plan for one exported account.
fn plan(
    migration_id: Uuid,
    account: &lpb::ExportedAccount,
    modern_currency: Option<&str>,
) -> PlannedMove {
    let refusal = if !account.closed_on.is_empty() {
        Some(format!("account_closed: closed on {}", account.closed_on))
    } else if modern_currency.is_none() {
        Some(format!(
            "no_modern_product: the modern side has no product {}",
            account.product_code
        ))
    } else if modern_currency != Some(account.currency.as_str()) {
        Some(format!(
            "product_not_at_parity: the account is in {}, the modern product in {}",
            account.currency,
            modern_currency.unwrap_or_default()
        ))
    } else {
        None
    };
    PlannedMove {
        input: MoveInput {
            migration_id: migration_id.to_string(),
            account_id: account.account_id.clone(),
            legacy_account_number: account.legacy_account_number.clone(),
            customer_id: account.customer_id.clone(),
            product_code: account.product_code.clone(),
            currency: account.currency.clone(),
            opened_on: account.opened_on.clone(),
        },
        state: if refusal.is_some() {
            "refused"
        } else {
            "planned"
        },
        reason: refusal.unwrap_or_default(),
        posted: account.posted.clone(),
        held: account.held.clone(),
        holds: i64::try_from(account.holds.len()).unwrap_or(i64::MAX),
        saga_id: None,
    }
}

/// A stored move as reported: a move's saga decides how it stands, and then its return's.
fn view(row: MoveRow) -> MoveView {
    let (state, reason) = match (row.state.as_str(), row.saga_status.as_str()) {
        _ if !row.returned.is_empty() => ("returned".to_owned(), String::new()),
        ("moved", _) | ("moving", "completed") if row.return_saga_id.is_some() => {
            match row.return_status.as_str() {
                "compensated" => (
                    "moved".to_owned(),
                    format!("return refused: {}", refusal_of(&row.return_failure)),
                ),
                "paused" => ("returning".to_owned(), "paused".to_owned()),
                _ => ("returning".to_owned(), String::new()),
            }
        }
        ("moving", "completed") => ("moved".to_owned(), String::new()),
        ("moving", "compensated") => {
            let state = if is_refusal(&row.saga_failure) {
                "refused"
            } else {
                "failed"
            };
            (state.to_owned(), refusal_of(&row.saga_failure).to_owned())
        }
        ("moving", "paused") => ("moving".to_owned(), format!("paused: {}", row.saga_paused)),
        _ => (row.state.clone(), row.reason.clone()),
    };
    MoveView {
        account_id: row.account_id,
        legacy_account_number: row.legacy_account_number,
        state,
        reason,
        posted: row.posted,
        held: row.held,
        holds: row.holds,
        modern_id: row.modern_id,
        saga_id: row.saga_id,
    }
}

/// When a migration was made, for answers.
pub fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_larger_fraction_keeps_the_accounts_of_a_smaller_one() {
        let ids: Vec<String> = (0..1_000).map(|n| format!("account-{n}")).collect();
        let chosen = |fraction: Decimal| -> Vec<&String> {
            ids.iter().filter(|id| bucket(id) < fraction).collect()
        };
        let tenth = chosen(Decimal::new(1, 1));
        let half = chosen(Decimal::new(5, 1));
        assert!(tenth.iter().all(|id| half.contains(id)));
        assert!((60..=140).contains(&tenth.len()), "{}", tenth.len());
        assert_eq!(chosen(Decimal::ONE).len(), 1_000);
    }

    #[test]
    fn a_fraction_is_more_than_zero_and_at_most_one() {
        assert_eq!(parse_fraction(""), Ok(Decimal::ONE));
        assert_eq!(parse_fraction("0.1"), Ok(Decimal::new(1, 1)));
        for bad in ["0", "1.5", "-0.1", "a tenth"] {
            assert_eq!(parse_fraction(bad).unwrap_err().code(), "invalid_argument");
        }
    }
}
