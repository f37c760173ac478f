//! Importing an account moved here from another core (ADR 0013): opened on the mapped
//! product with its opening date, its balance posted against the bank's **migration
//! clearing** account, each open hold re-placed with its remaining time and the other core's
//! reference, and its accrued interest carried into the accrual position. The ledger part
//! is one multi-entry request (`CreateTransfers`) whose entry ids derive from the request
//! id, so an import repeated after a crash writes nothing twice; the local part is one
//! transaction as for every request. Accounts moved together are imported together
//! (`ImportAccounts`): the same reads and writes, each made once for all of them. Only the
//! migration component calls it (`corebank.deposits.v1.DepositsMigration`).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use corebank_api::ledger::v1 as pb;
use corebank_outbox::NewEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::accounts::AccountView;
use super::ledger::{from_refusal, from_status, ledger_accounts_of};
use super::{Change, Commit, Deposits, money_text, parse_id, parse_money, same_request};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus, Hold, HoldStatus, Product, entry_id_for};
use crate::store;

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

/// Accounts one bulk import (`ImportAccounts`) may carry at most.
pub const IMPORT_ACCOUNTS_MAX: usize = 256;

/// The request kind imports are recorded under.
const IMPORT_KIND: &str = "import_account";

/// An import that passed its checks and was not made before.
struct Fresh<'r> {
    /// Its place in the batch.
    index: usize,
    request_id: Uuid,
    content: Value,
    request: &'r AccountToImport,
}

/// An import ready for the ledger: the account, its entries, and what it answers.
struct Built {
    index: usize,
    request_id: Uuid,
    content: Value,
    account: Account,
    ledger_accounts: [pb::CreateAccountRequest; 2],
    transfers: Vec<pb::CreateTransferRequest>,
    placed: Vec<Hold>,
    holds: Vec<ImportedHoldView>,
    opening_entry_id: Option<Uuid>,
    event: NewEvent,
}

/// An import's request id and content (what a repeat must match), after the checks that
/// need nothing read.
fn checked(request: &AccountToImport) -> Result<(Uuid, Value), DepositsError> {
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
    Ok((request_id, content))
}

/// The answers of a batch, filled in as each import ends.
struct Answers(Vec<Option<Result<ImportView, DepositsError>>>);

impl Answers {
    fn set(&mut self, index: usize, answer: Result<ImportView, DepositsError>) {
        if let Some(slot) = self.0.get_mut(index) {
            *slot = Some(answer);
        }
    }

    fn done(self) -> Vec<Result<ImportView, DepositsError>> {
        self.0
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| {
                    Err(DepositsError::Internal {
                        message: "the import ended without an answer".to_owned(),
                    })
                })
            })
            .collect()
    }
}

impl Deposits {
    /// Imports an account moved from another core.
    pub async fn import_account(
        &self,
        request: &AccountToImport,
    ) -> Result<ImportView, DepositsError> {
        self.import_accounts(std::slice::from_ref(request))
            .await?
            .pop()
            .unwrap_or_else(|| {
                Err(DepositsError::Internal {
                    message: "the import answered nothing".to_owned(),
                })
            })
    }

    /// Imports several accounts at once (at most [`IMPORT_ACCOUNTS_MAX`]), each as
    /// [`Deposits::import_account`] imports one, with the same request ids and answers:
    /// one read of the requests made before, one pin of the products, one ledger request
    /// opening the accounts and one writing their entries, one read of their balances and
    /// one local transaction. Each account has its own answer (a refused one refuses only
    /// itself); a failure of the ledger or the database fails the whole call, which is
    /// then safe to repeat.
    pub async fn import_accounts(
        &self,
        requests: &[AccountToImport],
    ) -> Result<Vec<Result<ImportView, DepositsError>>, DepositsError> {
        if requests.len() > IMPORT_ACCOUNTS_MAX {
            return Err(DepositsError::invalid(
                "accounts",
                format!("at most {IMPORT_ACCOUNTS_MAX} accounts per import"),
            ));
        }
        let mut answers = Answers(requests.iter().map(|_| None).collect());
        let mut checked_ones = Vec::with_capacity(requests.len());
        let mut seen = HashSet::new();
        for (index, request) in requests.iter().enumerate() {
            match checked(request) {
                Ok((request_id, _)) if !seen.insert(request_id) => answers.set(
                    index,
                    Err(DepositsError::invalid(
                        "request_id",
                        format!("{request_id} appears more than once in the import"),
                    )),
                ),
                Ok((request_id, content)) => checked_ones.push(Fresh {
                    index,
                    request_id,
                    content,
                    request,
                }),
                Err(error) => answers.set(index, Err(error)),
            }
        }
        let fresh = self.replayed(checked_ones, &mut answers).await?;
        let built = self.build_imports(fresh, &mut answers).await?;
        let built = self.open_imported(built, &mut answers).await?;
        let built = self.book_imported(built, &mut answers).await?;
        let views = self
            .views(&built.iter().map(|one| &one.account).collect::<Vec<_>>())
            .await?;
        // The views were read from the ledger after the imports' entries: nothing else can
        // have posted to the accounts before this commit makes them known.
        let mut stored = Vec::with_capacity(built.len());
        let mut changes = Vec::with_capacity(built.len());
        for (one, view) in built.iter().zip(views) {
            let answer = ImportView {
                account: view,
                opening_entry_id: one.opening_entry_id,
                holds: one.holds.clone(),
                replayed: false,
            };
            stored.push(
                serde_json::to_value(&answer).map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                })?,
            );
            let mut local = vec![Change::InsertAccount(Box::new(one.account.clone()))];
            local.extend(one.placed.iter().cloned().map(Change::InsertHold));
            changes.push(local);
        }
        let commits: Vec<Commit<'_>> = built
            .iter()
            .zip(stored)
            .zip(&changes)
            .map(|((one, answer), changes)| Commit {
                request_id: one.request_id,
                kind: IMPORT_KIND,
                content: &one.content,
                answer,
                changes,
                events: std::slice::from_ref(&one.event),
            })
            .collect();
        let recorded = self.commit_all(&commits).await?;
        for (one, answer) in built.iter().zip(recorded) {
            answers.set(
                one.index,
                serde_json::from_value(answer).map_err(|e| DepositsError::Internal {
                    message: e.to_string(),
                }),
            );
        }
        Ok(answers.done())
    }

    /// Answers the imports made before (their stored answer, the account as it stands now)
    /// or refuses them (the same id with another content); the others are fresh.
    async fn replayed<'r>(
        &self,
        checked: Vec<Fresh<'r>>,
        answers: &mut Answers,
    ) -> Result<Vec<Fresh<'r>>, DepositsError> {
        let ids: Vec<Uuid> = checked.iter().map(|one| one.request_id).collect();
        let ids = &ids;
        let stored = self
            .in_tx("deposits_replay", |tx| {
                Box::pin(async move { store::requests(&tx, ids).await })
            })
            .await?;
        let mut fresh = Vec::with_capacity(checked.len());
        for one in checked {
            let Some(stored) = stored.get(&one.request_id) else {
                fresh.push(one);
                continue;
            };
            if let Err(error) = same_request(one.request_id, stored, IMPORT_KIND, &one.content) {
                answers.set(one.index, Err(error));
                continue;
            }
            let answer = match serde_json::from_value::<ImportView>(stored.response.clone()) {
                Ok(mut view) => self.account(view.account.id).await.map(|account| {
                    view.account = account;
                    view.replayed = true;
                    view
                }),
                Err(error) => Err(DepositsError::Internal {
                    message: error.to_string(),
                }),
            };
            answers.set(one.index, answer);
        }
        Ok(fresh)
    }

    /// Each fresh import's product (pinned to its request, all in one transaction) and
    /// account, with the ledger requests that open and fund it.
    async fn build_imports(
        &self,
        fresh: Vec<Fresh<'_>>,
        answers: &mut Answers,
    ) -> Result<Vec<Built>, DepositsError> {
        let mut newest: HashMap<&str, Result<Product, DepositsError>> = HashMap::new();
        for one in &fresh {
            let code = one.request.product_code.as_str();
            if !newest.contains_key(code) {
                let product = self.product(code, None).await;
                newest.insert(code, product);
            }
        }
        let mut wanted = Vec::with_capacity(fresh.len());
        let mut known = Vec::with_capacity(fresh.len());
        for one in fresh {
            match newest.get(one.request.product_code.as_str()) {
                Some(Ok(product)) => {
                    wanted.push((
                        one.request_id,
                        one.request.product_code.clone(),
                        product.version,
                    ));
                    known.push((one, product.clone()));
                }
                Some(Err(error)) => answers.set(one.index, Err(error.clone())),
                None => {}
            }
        }
        let pins = self.pin_products(&wanted).await?;
        let mut built = Vec::with_capacity(known.len());
        for ((one, newest), pin) in known.into_iter().zip(pins) {
            let product = self
                .pinned_version(one.request_id, &one.request.product_code, newest, pin)
                .await;
            let index = one.index;
            let made = match product {
                Ok(product) => self.build_import(one, &product).await,
                Err(error) => Err(error),
            };
            match made {
                Ok(one) => built.push(one),
                Err(error) => answers.set(index, Err(error)),
            }
        }
        Ok(built)
    }

    /// One import made ready for the ledger on `product`.
    async fn build_import(
        &self,
        fresh: Fresh<'_>,
        product: &Product,
    ) -> Result<Built, DepositsError> {
        let Fresh {
            index,
            request_id,
            content,
            request,
        } = fresh;
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
        for (n, hold) in request.holds.iter().enumerate() {
            let money = parse_money(&format!("holds[{n}].amount"), &hold.amount, currency)?;
            if money.amount() <= Decimal::ZERO {
                return Err(DepositsError::invalid(
                    format!("holds[{n}].amount"),
                    "must be more than zero",
                ));
            }
            if hold.reference.trim().is_empty() || hold.reference.len() > 64 {
                return Err(DepositsError::invalid(
                    format!("holds[{n}].reference"),
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
        Ok(Built {
            index,
            request_id,
            content,
            ledger_accounts: ledger_accounts_of(&account, product),
            account,
            transfers,
            placed,
            holds,
            opening_entry_id,
            event,
        })
    }

    /// Opens the imports' ledger accounts in one ledger request; an import whose accounts
    /// the ledger refuses is answered with the refusal.
    async fn open_imported(
        &self,
        built: Vec<Built>,
        answers: &mut Answers,
    ) -> Result<Vec<Built>, DepositsError> {
        if built.is_empty() {
            return Ok(built);
        }
        let accounts = built
            .iter()
            .flat_map(|one| one.ledger_accounts.iter().cloned())
            .collect();
        let results = self
            .ledger
            .clone()
            .create_accounts(pb::CreateAccountsRequest { accounts })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner()
            .results;
        let refusals: Vec<Option<DepositsError>> = results
            .chunks(2)
            .map(|pair| {
                pair.iter().find_map(|result| match &result.outcome {
                    Some(pb::account_result::Outcome::Failure(failure)) => {
                        Some(from_refusal(failure))
                    }
                    _ => None,
                })
            })
            .collect();
        if refusals.len() != built.len() {
            return Err(DepositsError::Internal {
                message: format!(
                    "the ledger answered {} of {} accounts",
                    results.len(),
                    built.len() * 2
                ),
            });
        }
        Ok(keep_unrefused(built, refusals, answers))
    }

    /// Writes the imports' entries in one ledger request; the first entry of an import that
    /// the ledger refuses is the import's refusal.
    async fn book_imported(
        &self,
        built: Vec<Built>,
        answers: &mut Answers,
    ) -> Result<Vec<Built>, DepositsError> {
        let transfers: Vec<pb::CreateTransferRequest> = built
            .iter()
            .flat_map(|one| one.transfers.iter().cloned())
            .collect();
        if transfers.is_empty() {
            return Ok(built);
        }
        let count = transfers.len();
        let results = self
            .ledger
            .clone()
            .create_transfers(pb::CreateTransfersRequest { transfers })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner()
            .results;
        if results.len() != count {
            return Err(DepositsError::Internal {
                message: format!("the ledger answered {} of {count} entries", results.len()),
            });
        }
        let mut results = results.into_iter();
        let refusals = built
            .iter()
            .map(|one| {
                results
                    .by_ref()
                    .take(one.transfers.len())
                    .find_map(|result| match result.outcome {
                        Some(pb::entry_result::Outcome::Failure(failure)) => {
                            Some(from_refusal(&failure))
                        }
                        _ => None,
                    })
            })
            .collect();
        Ok(keep_unrefused(built, refusals, answers))
    }
}

/// The imports the ledger did not refuse; each refused one is answered with its refusal.
fn keep_unrefused(
    built: Vec<Built>,
    refusals: Vec<Option<DepositsError>>,
    answers: &mut Answers,
) -> Vec<Built> {
    built
        .into_iter()
        .zip(refusals)
        .filter_map(|(one, refusal)| match refusal {
            Some(error) => {
                answers.set(one.index, Err(error));
                None
            }
            None => Some(one),
        })
        .collect()
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
