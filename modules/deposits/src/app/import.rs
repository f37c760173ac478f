//! Importing an account moved here from another core (ADR 0013): opened on the mapped
//! product with its opening date, its balance posted against the bank's **migration
//! clearing** account, each open hold re-placed with its remaining time and the other core's
//! reference, and its accrued interest carried into the accrual position. The ledger part
//! is one multi-entry request (`CreateTransfers`) whose entry ids derive from the request
//! id, so an import repeated after a crash writes nothing twice; the local part is one
//! transaction as for every request. Only the migration component calls it
//! (`corebank.deposits.v1.DepositsMigration`).

use chrono::{DateTime, NaiveDate, Utc};
use corebank_api::ledger::v1 as pb;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::accounts::AccountView;
use super::ledger::from_status;
use super::{Change, Deposits, money_text, parse_id, parse_money};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus, Hold, HoldStatus, entry_id_for};

/// Holds one import may carry at most.
pub const IMPORT_HOLDS_MAX: usize = 100;

/// An open hold on the other core, to re-place here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldToImport {
    /// The other core's id of the hold (its lock id), kept as the hold's reason.
    pub reference: String,
    pub amount: String,
    /// When it lapses; `None`: until released.
    pub expires_at: Option<DateTime<Utc>>,
}

/// An account to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountToImport {
    pub request_id: String,
    pub customer_id: String,
    pub product_code: String,
    pub currency: String,
    pub opened_on: NaiveDate,
    /// The posted balance on the other core (negative: overdrawn).
    pub opening_balance: String,
    /// Interest accrued on the other core and not yet posted to the account.
    pub accrued_interest: String,
    pub holds: Vec<HoldToImport>,
    /// The account on the other core (its number), for the entries' descriptions.
    pub reference: String,
}

/// A hold as the import placed it (or did not: it had lapsed before the import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedHoldView {
    pub reference: String,
    /// The hold's id here; `None` when it had lapsed and was not placed.
    pub hold_id: Option<Uuid>,
    pub amount: String,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What an import did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportView {
    pub account: AccountView,
    /// The ledger entry of the opening balance (`None` for a zero balance).
    pub opening_entry_id: Option<Uuid>,
    pub holds: Vec<ImportedHoldView>,
    #[serde(default)]
    pub replayed: bool,
}

impl Deposits {
    /// Imports an account moved from another core.
    pub async fn import_account(
        &self,
        request: &AccountToImport,
    ) -> Result<ImportView, DepositsError> {
        let request_id = parse_id("request_id", &request.request_id)?;
        if request.customer_id.trim().is_empty() || request.customer_id.len() > 128 {
            return Err(DepositsError::invalid("customer_id", "1-128 characters"));
        }
        if request.reference.trim().is_empty() || request.reference.len() > 64 {
            return Err(DepositsError::invalid("reference", "1-64 characters"));
        }
        if request.holds.len() > IMPORT_HOLDS_MAX {
            return Err(DepositsError::invalid(
                "holds",
                format!("at most {IMPORT_HOLDS_MAX}"),
            ));
        }
        let content = json!({
            "customer_id": request.customer_id,
            "product_code": request.product_code,
            "currency": request.currency,
            "opened_on": request.opened_on,
            "opening_balance": request.opening_balance,
            "accrued_interest": request.accrued_interest,
            "holds": request.holds.iter().map(|hold| json!({
                "reference": hold.reference,
                "amount": hold.amount,
                "expires_at": hold.expires_at,
            })).collect::<Vec<_>>(),
            "reference": request.reference,
        });
        if let Some(stored) = self.replay(request_id, "import_account", &content).await? {
            let mut view: ImportView =
                serde_json::from_value(stored).map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                })?;
            view.account = self.account(view.account.id).await?;
            view.replayed = true;
            return Ok(view);
        }
        let product = self
            .pinned_product(request_id, &request.product_code)
            .await?;
        if request.currency != product.currency.code() {
            return Err(DepositsError::CurrencyMismatch {
                expected: product.currency.code().to_owned(),
                got: request.currency.clone(),
            });
        }
        let currency = product.currency;
        let balance = parse_money("opening_balance", &request.opening_balance, currency)?;
        let accrued = parse_money("accrued_interest", &request.accrued_interest, currency)?;
        if accrued.amount() < Decimal::ZERO {
            return Err(DepositsError::invalid(
                "accrued_interest",
                "must not be negative",
            ));
        }
        let now = self.now();
        let id = entry_id_for("account", request_id);
        let today = self.business_today();
        let account = Account {
            id,
            customer_id: request.customer_id.clone(),
            product_code: product.code.clone(),
            product_version: product.version,
            currency,
            status: AccountStatus::Active,
            ledger_account_id: entry_id_for("ledger-account", id),
            accrued_account_id: entry_id_for("accrued-account", id),
            opened_on: request.opened_on,
            last_customer_activity_at: now,
            closed_at: None,
            // The other core accrued up to yesterday; this one goes on from today.
            accrued_through: today.pred_opt().unwrap_or(today),
            period_precise: accrued.amount(),
            period_posted: accrued.amount(),
            created_at: now,
        };
        self.open_ledger_accounts(&account, &product).await?;
        let clearing = self.gl_account(currency, "migration_clearing").await?;
        let suspense = self.gl_account(currency, "holds_suspense").await?;
        let transfer = |id: Uuid, debit: Uuid, credit: Uuid, amount: Decimal, what: String| {
            pb::CreateTransferRequest {
                id: id.to_string(),
                debit_account_id: debit.to_string(),
                credit_account_id: credit.to_string(),
                amount: money_text(amount, currency),
                currency: currency.code().to_owned(),
                value_date: String::new(),
                description: what,
                external_ref: request.reference.clone(),
                metadata: Default::default(),
                pending: false,
                timeout_seconds: 0,
            }
        };
        // In order: the balance first, so the holds find it.
        let mut transfers = Vec::new();
        let opening_entry_id = (!balance.amount().is_zero()).then(|| {
            let entry = entry_id_for("import-opening", request_id);
            let what = format!("opening balance moved from {}", request.reference);
            transfers.push(if balance.amount() > Decimal::ZERO {
                transfer(
                    entry,
                    clearing,
                    account.ledger_account_id,
                    balance.amount(),
                    what,
                )
            } else {
                transfer(
                    entry,
                    account.ledger_account_id,
                    clearing,
                    -balance.amount(),
                    what,
                )
            });
            entry
        });
        if accrued.amount() > Decimal::ZERO {
            transfers.push(transfer(
                entry_id_for("import-accrued", request_id),
                clearing,
                account.accrued_account_id,
                accrued.amount(),
                format!("accrued interest moved from {}", request.reference),
            ));
        }
        let mut holds = Vec::with_capacity(request.holds.len());
        let mut placed = Vec::new();
        for (index, hold) in request.holds.iter().enumerate() {
            let money = parse_money(&format!("holds[{index}].amount"), &hold.amount, currency)?;
            if money.amount() <= Decimal::ZERO {
                return Err(DepositsError::invalid(
                    format!("holds[{index}].amount"),
                    "must be more than zero",
                ));
            }
            if hold.reference.trim().is_empty() || hold.reference.len() > 64 {
                return Err(DepositsError::invalid(
                    format!("holds[{index}].reference"),
                    "1-64 characters",
                ));
            }
            // A hold that lapsed while its account moved holds nothing any more.
            let remaining = match hold.expires_at {
                None => Some(0),
                Some(at) => u32::try_from((at - now).num_seconds())
                    .ok()
                    .filter(|seconds| *seconds > 0),
            };
            let hold_id = remaining.map(|seconds| {
                let hold_id = entry_id_for(&format!("import-hold:{}", hold.reference), request_id);
                let mut pending = transfer(
                    hold_id,
                    account.ledger_account_id,
                    suspense,
                    money.amount(),
                    format!("hold: {}", hold.reference),
                );
                pending.pending = true;
                pending.timeout_seconds = seconds;
                transfers.push(pending);
                placed.push(Hold {
                    id: hold_id,
                    account_id: id,
                    amount: money.amount(),
                    currency,
                    reason: hold.reference.clone(),
                    status: HoldStatus::Held,
                    expires_at: hold.expires_at,
                    placed_at: now,
                });
                hold_id
            });
            holds.push(ImportedHoldView {
                reference: hold.reference.clone(),
                hold_id,
                amount: money_text(money.amount(), currency),
                expires_at: hold.expires_at,
            });
        }
        if !transfers.is_empty() {
            self.create_ledger_transfers(transfers).await?;
        }
        let event = self.event(
            id,
            "deposits.account.imported",
            json!({
                "account_id": id,
                "customer_id": request.customer_id,
                "product_code": product.code,
                "product_version": product.version,
                "currency": currency.code(),
                "opened_on": request.opened_on,
                "opening_balance": money_text(balance.amount(), currency),
                "accrued_interest": money_text(accrued.amount(), currency),
                "holds": placed.len(),
                "reference": request.reference,
            }),
        )?;
        let mut changes = vec![Change::InsertAccount(Box::new(account.clone()))];
        changes.extend(placed.into_iter().map(Change::InsertHold));
        let stored = ImportView {
            account: self.view(&account).await?,
            opening_entry_id,
            holds,
            replayed: false,
        };
        // The view was read from the ledger after the import's entries: nothing else can
        // have posted to the account before this commit makes it known.
        self.commit(
            request_id,
            "import_account",
            &content,
            &stored,
            &changes,
            &[event],
        )
        .await
    }
}

/// The bank's migration clearing account in a currency, as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClearingView {
    pub currency: String,
    /// `None` while nothing was ever imported in the currency.
    pub ledger_account_id: Option<Uuid>,
    /// Its posted balance on its normal (debit) side.
    pub balance: String,
    pub read_at: DateTime<Utc>,
}

impl Deposits {
    /// The migration clearing account of `currency` (`account`: `migration`, the default)
    /// or its inter-core clearing account (`inter_core`), read from the ledger now.
    pub async fn migration_clearing(
        &self,
        currency: &str,
        account: &str,
    ) -> Result<ClearingView, DepositsError> {
        let currency = super::parse_currency(currency)?;
        let role = match account {
            "" | "migration" => "migration_clearing",
            "inter_core" => "inter_core_clearing",
            _ => {
                return Err(DepositsError::invalid(
                    "account",
                    "`migration` or `inter_core`",
                ));
            }
        };
        let known = self
            .in_tx("deposits_migration_clearing", |tx| {
                Box::pin(async move { crate::store::gl_account(&tx, currency, role).await })
            })
            .await?;
        let read_at = self.now();
        let Some(id) = known else {
            return Ok(ClearingView {
                currency: currency.code().to_owned(),
                ledger_account_id: None,
                balance: money_text(Decimal::ZERO, currency),
                read_at,
            });
        };
        let balance = self
            .ledger
            .clone()
            .get_balance(pb::GetBalanceRequest {
                account_id: id.to_string(),
                as_of: None,
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        let posted: Decimal = balance
            .posted
            .parse()
            .map_err(|_| DepositsError::Internal {
                message: format!("the ledger sent the balance {:?}", balance.posted),
            })?;
        Ok(ClearingView {
            currency: currency.code().to_owned(),
            ledger_account_id: Some(id),
            balance: money_text(posted, currency),
            read_at,
        })
    }
}

/// A hold an export released, to place again on the other core.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportedHoldView {
    pub hold_id: Uuid,
    pub amount: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// What an export (an account moving back to the other core) did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportView {
    pub account: AccountView,
    /// The balance moved to the migration clearing account.
    pub paid_out: String,
    /// The holds released here, to be placed again there.
    pub holds: Vec<ExportedHoldView>,
    pub replayed: bool,
}

/// Where an exported account's money goes: the migration clearing account.
const EXPORT: super::closing::Payout = super::closing::Payout {
    role: "migration_clearing",
    sweep: "export-sweep",
    description: "moved to the other core",
    kind: "export_account",
    event: "deposits.account.exported",
};

impl Deposits {
    /// Moves an account back to the other core: its open holds released (those still
    /// holding funds answered, to be placed there again), its final interest posted, its
    /// balance swept to the migration clearing account, and the account closed. Once per
    /// request id; an overdrawn account is refused (`cannot_close`).
    pub async fn export_account(
        &self,
        request_id: &str,
        account_id: &str,
        reference: &str,
    ) -> Result<ExportView, DepositsError> {
        let request_id = parse_id("request_id", request_id)?;
        let account_id = parse_id("account_id", account_id)?;
        if reference.trim().is_empty() || reference.len() > 64 {
            return Err(DepositsError::invalid("reference", "1-64 characters"));
        }
        let content = json!({ "account_id": account_id, "reference": reference });
        if let Some(stored) = self.replay(request_id, EXPORT.kind, &content).await? {
            let holds: Vec<ExportedHoldView> = serde_json::from_value(stored["holds"].clone())
                .map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                })?;
            return Ok(ExportView {
                account: self.account(account_id).await?,
                paid_out: stored["paid_out"].as_str().unwrap_or_default().to_owned(),
                holds,
                replayed: true,
            });
        }
        let account = self.load_account(account_id).await?;
        if account.status == AccountStatus::Closed {
            return Err(DepositsError::AccountClosed {
                account_id: account_id.to_string(),
            });
        }
        let known = self
            .in_tx("deposits_export_holds", |tx| {
                Box::pin(async move { crate::store::holds_of(&tx, account_id).await })
            })
            .await?;
        let mut holds = Vec::with_capacity(known.len());
        for hold in known {
            let release = entry_id_for("export-release", hold.id);
            let status = match hold.status {
                HoldStatus::Held => self.ledger_void(release, hold.id).await?,
                // Released by an earlier attempt of this export (its release entry is in
                // the ledger), or by someone before it.
                HoldStatus::Released if self.ledger_entry_of(release).await?.is_some() => {
                    HoldStatus::Released
                }
                _ => continue,
            };
            // Recorded at once (the ledger's void is done), so the close finds no open hold.
            let hold_id = hold.id;
            self.in_tx("deposits_export_release", |tx| {
                Box::pin(async move { crate::store::set_hold_status(&tx, hold_id, status).await })
            })
            .await?;
            if status == HoldStatus::Released {
                holds.push(ExportedHoldView {
                    hold_id: hold.id,
                    amount: money_text(hold.amount, hold.currency),
                    expires_at: hold.expires_at,
                    reason: hold.reason.clone(),
                });
            }
        }
        let mut extra = serde_json::Map::new();
        extra.insert(
            "holds".to_owned(),
            serde_json::to_value(&holds).map_err(|e| DepositsError::Internal {
                message: e.to_string(),
            })?,
        );
        let (account, paid_out) = self
            .close_with(
                account,
                request_id,
                &content,
                &format!("moved to the other core: {reference}"),
                &EXPORT,
                (extra, Vec::new()),
            )
            .await?;
        Ok(ExportView {
            account,
            paid_out,
            holds,
            replayed: false,
        })
    }
}
