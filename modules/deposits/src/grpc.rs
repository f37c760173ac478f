//! `corebank.deposits.v1.Deposits`: the gRPC face of the module. Refusals carry their stable
//! code in the `corebank-error-code` metadata.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use corebank_api::deposits::v1 as pb;
use corebank_api::deposits::v1::deposits_migration_server::{
    DepositsMigration as DepositsMigrationApi, DepositsMigrationServer,
};
use corebank_api::deposits::v1::deposits_server::{Deposits as DepositsApi, DepositsServer};
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::Db;
use corebank_kernel::Clock;
use corebank_service::internal::{Allow, allowed_callers};
use corebank_service::{Component, refusal};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

use crate::app::{
    AccountToImport, AccountView, BalancesView, Deposits, HoldToImport, HoldView, ImportView,
    MovementView, NewProduct, StatementView,
};
use crate::domain::error::DepositsError;
use crate::domain::model::Product;

/// How the component's background work runs.
#[derive(Debug, Clone)]
pub struct DepositsConfig {
    /// How often the scheduled job accrues interest up to yesterday, marks dormant accounts
    /// and closes expired holds.
    pub job_interval: Duration,
    /// How old a request waiting for its local answer must be before the job asks the
    /// ledger about it (`recover_in_doubt`).
    pub in_doubt_window: Duration,
    /// The bank's business time zone: business days start at its midnight.
    pub business_tz: chrono_tz::Tz,
}

impl Default for DepositsConfig {
    fn default() -> Self {
        DepositsConfig {
            job_interval: Duration::from_secs(3_600),
            in_doubt_window: Duration::from_secs(300),
            business_tz: chrono_tz::Tz::UTC,
        }
    }
}

/// The deposits component: the gRPC service and the scheduled job (stopped by `shutdown`).
pub fn component(
    db: Db,
    ledger: LedgerClient<Channel>,
    clock: Arc<dyn Clock>,
    config: DepositsConfig,
    shutdown: CancellationToken,
) -> Result<Component, DepositsError> {
    let deposits = Deposits::new(db, ledger, clock)?
        .with_in_doubt_window(config.in_doubt_window)
        .with_business_tz(config.business_tz);
    let job = deposits.clone();
    tokio::spawn(async move { job.run_scheduled(config.job_interval, shutdown).await });
    Ok(component_of(deposits))
}

/// The gRPC service of `deposits` as a component, without the scheduled job: what a test
/// serves when it drives the job itself.
pub fn component_of(deposits: Deposits) -> Component {
    Component::new("deposits")
        .with_db(deposits.db().clone())
        .with_grpc(
            DepositsMigrationServer::new(MigrationService {
                deposits: deposits.clone(),
            }),
            Allow::only(allowed_callers::DEPOSITS_MIGRATION),
        )
        .with_grpc(
            DepositsServer::new(DepositsService { deposits }),
            Allow::only(allowed_callers::DEPOSITS),
        )
}

/// `corebank.deposits.v1.DepositsMigration` (for the migration component only).
#[derive(Debug, Clone)]
pub struct MigrationService {
    deposits: Deposits,
}

impl MigrationService {
    pub fn new(deposits: Deposits) -> MigrationService {
        MigrationService { deposits }
    }
}

fn rfc3339(field: &str, text: &str) -> Result<Option<DateTime<Utc>>, DepositsError> {
    if text.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|at| Some(at.with_timezone(&Utc)))
        .map_err(|_| DepositsError::invalid(field, format!("{text:?} is not an RFC 3339 time")))
}

fn to_import(r: pb::ImportAccountRequest) -> Result<AccountToImport, DepositsError> {
    let opened_on = NaiveDate::parse_from_str(&r.opened_on, "%Y-%m-%d").map_err(|_| {
        DepositsError::invalid(
            "opened_on",
            format!("{:?} is not a date like 2026-11-25", r.opened_on),
        )
    })?;
    let holds = r
        .holds
        .into_iter()
        .enumerate()
        .map(|(index, hold)| {
            Ok(HoldToImport {
                expires_at: rfc3339(&format!("holds[{index}].expires_at"), &hold.expires_at)?,
                reference: hold.reference,
                amount: hold.amount,
            })
        })
        .collect::<Result<Vec<_>, DepositsError>>()?;
    Ok(AccountToImport {
        request_id: r.request_id,
        customer_id: r.customer_id,
        product_code: r.product_code,
        currency: r.currency,
        opened_on,
        opening_balance: r.opening_balance,
        accrued_interest: r.accrued_interest,
        holds,
        reference: r.reference,
    })
}

fn imported(view: &ImportView) -> pb::ImportedAccount {
    pb::ImportedAccount {
        account: Some(account(&view.account)),
        opening_entry_id: view
            .opening_entry_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        holds: view
            .holds
            .iter()
            .map(|hold| pb::ImportedHold {
                reference: hold.reference.clone(),
                hold_id: hold.hold_id.map(|id| id.to_string()).unwrap_or_default(),
                amount: hold.amount.clone(),
                expires_at: hold.expires_at.map(time).unwrap_or_default(),
            })
            .collect(),
        replayed: view.replayed,
    }
}

#[tonic::async_trait]
impl DepositsMigrationApi for MigrationService {
    async fn import_account(
        &self,
        request: Request<pb::ImportAccountRequest>,
    ) -> Answer<pb::ImportedAccount> {
        let imported_view = match to_import(request.into_inner()) {
            Ok(import) => self.deposits.import_account(&import).await,
            Err(error) => Err(error),
        };
        answer(imported_view, imported)
    }

    async fn import_accounts(
        &self,
        request: Request<pb::ImportAccountsRequest>,
    ) -> Answer<pb::ImportAccountsResponse> {
        let asked = request.into_inner().accounts;
        // An import that cannot be read is refused alone, as the others are checked.
        let mut unread = Vec::new();
        let mut places = Vec::with_capacity(asked.len());
        let mut requests: Vec<AccountToImport> = Vec::with_capacity(asked.len());
        for (index, one) in asked.into_iter().enumerate() {
            match to_import(one) {
                Ok(import) => {
                    places.push(index);
                    requests.push(import);
                }
                Err(error) => unread.push((index, error)),
            }
        }
        let done = self
            .deposits
            .import_accounts(&requests)
            .await
            .map_err(|e| status_of(&e))?;
        let mut results: Vec<Option<pb::ImportAccountResult>> =
            (0..places.len() + unread.len()).map(|_| None).collect();
        let refused = |error: &DepositsError| pb::ImportAccountResult {
            imported: None,
            code: error.code().to_owned(),
            message: match error {
                DepositsError::Internal { message } => {
                    tracing::error!(error = %message, "an import of a bulk failed");
                    "internal error (the deposits log has the detail)".to_owned()
                }
                other => other.to_string(),
            },
        };
        for (index, answer) in places.iter().zip(done) {
            results[*index] = Some(match answer {
                Ok(view) => pb::ImportAccountResult {
                    imported: Some(imported(&view)),
                    code: String::new(),
                    message: String::new(),
                },
                Err(error) => refused(&error),
            });
        }
        for (index, error) in &unread {
            results[*index] = Some(refused(error));
        }
        Ok(Response::new(pb::ImportAccountsResponse {
            results: results.into_iter().flatten().collect(),
        }))
    }

    async fn export_account(
        &self,
        request: Request<pb::ExportAccountRequest>,
    ) -> Answer<pb::ExportedAccount> {
        let r = request.into_inner();
        answer(
            self.deposits
                .export_account(&r.request_id, &r.account_id, &r.reference)
                .await,
            |exported| pb::ExportedAccount {
                account: Some(account(&exported.account)),
                paid_out: exported.paid_out.clone(),
                holds: exported
                    .holds
                    .iter()
                    .map(|hold| pb::ExportedHold {
                        hold_id: hold.hold_id.to_string(),
                        amount: hold.amount.clone(),
                        expires_at: hold.expires_at.map(time).unwrap_or_default(),
                        reason: hold.reason.clone(),
                    })
                    .collect(),
                replayed: exported.replayed,
            },
        )
    }

    async fn list_lapsed_holds(
        &self,
        request: Request<pb::ListLapsedHoldsRequest>,
    ) -> Answer<pb::LapsedHolds> {
        let r = request.into_inner();
        let grace = std::time::Duration::from_secs(u64::from(r.grace_seconds));
        answer(
            self.deposits.lapsed_holds(grace, r.limit).await,
            |(holds, read_at)| pb::LapsedHolds {
                holds: holds
                    .iter()
                    .map(|(hold, ledger)| pb::LapsedHold {
                        hold_id: hold.id.to_string(),
                        account_id: hold.account_id.to_string(),
                        amount: hold.amount.clone(),
                        currency: hold.currency.clone(),
                        expires_at: hold.expires_at.map(time).unwrap_or_default(),
                        ledger_status: ledger.as_str().to_owned(),
                    })
                    .collect(),
                read_at: time(*read_at),
            },
        )
    }

    async fn get_migration_clearing(
        &self,
        request: Request<pb::GetMigrationClearingRequest>,
    ) -> Answer<pb::MigrationClearing> {
        let request = request.into_inner();
        answer(
            self.deposits
                .migration_clearing(&request.currency, &request.account)
                .await,
            |clearing| pb::MigrationClearing {
                currency: clearing.currency.clone(),
                ledger_account_id: clearing
                    .ledger_account_id
                    .map(|id| id.to_string())
                    .unwrap_or_default(),
                balance: clearing.balance.clone(),
                read_at: time(clearing.read_at),
            },
        )
    }
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct DepositsService {
    deposits: Deposits,
}

impl DepositsService {
    pub fn new(deposits: Deposits) -> DepositsService {
        DepositsService { deposits }
    }
}

/// A refusal as a gRPC status; internal details stay in the log.
pub fn status_of(error: &DepositsError) -> Status {
    let code = match error {
        DepositsError::InvalidArgument { .. } | DepositsError::CurrencyMismatch { .. } => {
            tonic::Code::InvalidArgument
        }
        DepositsError::UnknownProduct { .. }
        | DepositsError::UnknownAccount { .. }
        | DepositsError::UnknownHold { .. } => tonic::Code::NotFound,
        DepositsError::ExistsWithDifferent { .. } => tonic::Code::AlreadyExists,
        DepositsError::Unavailable { .. } => tonic::Code::Unavailable,
        DepositsError::Internal { .. } => tonic::Code::Internal,
        DepositsError::AccountFrozen { .. }
        | DepositsError::AccountDormant { .. }
        | DepositsError::AccountClosed { .. }
        | DepositsError::InsufficientFunds { .. }
        | DepositsError::TransferLimitExceeded { .. }
        | DepositsError::DailyLimitExceeded { .. }
        | DepositsError::HoldNotHeld { .. }
        | DepositsError::CannotClose { .. }
        | DepositsError::InvalidStatus { .. }
        | DepositsError::StatusChanged { .. }
        | DepositsError::Ledger { .. } => tonic::Code::FailedPrecondition,
    };
    let internal_detail = match error {
        DepositsError::Internal { message } => Some(message.as_str()),
        _ => None,
    };
    refusal::status_of("deposits", code, error.code(), error, internal_detail)
}

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn balances(view: &BalancesView) -> pb::Balances {
    pb::Balances {
        posted: view.posted.clone(),
        held: view.held.clone(),
        available: view.available.clone(),
        accrued_interest: view.accrued_interest.clone(),
    }
}

fn account(view: &AccountView) -> pb::Account {
    pb::Account {
        id: view.id.to_string(),
        customer_id: view.customer_id.clone(),
        product_code: view.product_code.clone(),
        product_version: view.product_version,
        currency: view.currency.clone(),
        status: view.status.clone(),
        balances: Some(balances(&view.balances)),
        opened_on: view.opened_on.to_string(),
        last_customer_activity_at: time(view.last_customer_activity_at),
        closed_at: view.closed_at.map(time).unwrap_or_default(),
        accrued_through: view.accrued_through.to_string(),
    }
}

fn product(product: &Product) -> pb::Product {
    let money = |amount: rust_decimal::Decimal| crate::app::money_text(amount, product.currency);
    pb::Product {
        code: product.code.clone(),
        version: product.version,
        name: product.name.clone(),
        kind: product.kind.as_str().to_owned(),
        currency: product.currency.code().to_owned(),
        rate_tiers: product
            .rate_tiers
            .iter()
            .map(|t| pb::RateTier {
                from_balance: money(t.from_balance),
                annual_rate: t.annual_rate.normalize().to_string(),
            })
            .collect(),
        day_count: product.day_count.as_str().to_owned(),
        posting_frequency: product.posting_frequency.as_str().to_owned(),
        minimum_balance: money(product.minimum_balance),
        overdraft_limit: money(product.overdraft_limit),
        overdraft_rate: product.overdraft_rate.normalize().to_string(),
        dormancy_days: product.dormancy_days,
        per_transfer_limit: product.per_transfer_limit.map(money).unwrap_or_default(),
        daily_transfer_limit: product.daily_transfer_limit.map(money).unwrap_or_default(),
        created_at: time(product.created_at),
    }
}

fn movement(view: &MovementView) -> pb::Movement {
    pb::Movement {
        request_id: view.request_id.to_string(),
        account_id: view.account_id.to_string(),
        kind: view.kind.clone(),
        amount: view.amount.clone(),
        currency: view.currency.clone(),
        entry_id: view.entry_id.to_string(),
        recorded_at: time(view.recorded_at),
        balances_after: Some(balances(&view.balances_after)),
        replayed: view.replayed,
    }
}

fn hold(view: &HoldView) -> pb::Hold {
    pb::Hold {
        id: view.id.to_string(),
        account_id: view.account_id.to_string(),
        amount: view.amount.clone(),
        currency: view.currency.clone(),
        reason: view.reason.clone(),
        status: view.status.clone(),
        expires_at: view.expires_at.map(time).unwrap_or_default(),
        placed_at: time(view.placed_at),
        replayed: view.replayed,
    }
}

fn statement(view: StatementView) -> pb::Statement {
    pb::Statement {
        account_id: view.account_id.to_string(),
        currency: view.currency,
        lines: view
            .lines
            .into_iter()
            .map(|l| pb::StatementLine {
                entry_id: l.entry_id,
                recorded_at: l.recorded_at,
                value_date: l.value_date,
                direction: l.direction,
                bucket: l.bucket,
                amount: l.amount,
                description: l.description,
                running_balance: l.running_balance,
            })
            .collect(),
        next_cursor: view.next_cursor,
    }
}

fn date(field: &str, text: &str) -> Result<Option<NaiveDate>, Status> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            status_of(&DepositsError::invalid(
                field,
                format!("{text:?} is not a date like 2026-11-25"),
            ))
        })
}

type Answer<T> = Result<Response<T>, Status>;

fn answer<T, U>(result: Result<T, DepositsError>, map: impl FnOnce(&T) -> U) -> Answer<U> {
    result
        .map(|value| Response::new(map(&value)))
        .map_err(|e| status_of(&e))
}

impl DepositsService {
    async fn movement(&self, kind: &'static str, r: pb::CashRequest) -> Answer<pb::Movement> {
        answer(
            self.deposits
                .movement(
                    kind,
                    &r.channel,
                    &r.request_id,
                    &r.account_id,
                    &r.amount,
                    &r.currency,
                    &r.description,
                )
                .await,
            movement,
        )
    }

    async fn change_status(
        &self,
        action: &'static str,
        r: pb::ChangeStatusRequest,
    ) -> Answer<pb::Account> {
        answer(
            self.deposits
                .change_status(action, &r.request_id, &r.account_id, &r.reason)
                .await,
            account,
        )
    }
}

#[tonic::async_trait]
impl DepositsApi for DepositsService {
    async fn create_product(
        &self,
        request: Request<pb::CreateProductRequest>,
    ) -> Answer<pb::Product> {
        let r = request.into_inner();
        let new = NewProduct {
            code: r.code,
            name: r.name,
            kind: r.kind,
            currency: r.currency,
            rate_tiers: r
                .rate_tiers
                .into_iter()
                .map(|t| (t.from_balance, t.annual_rate))
                .collect(),
            day_count: r.day_count,
            posting_frequency: r.posting_frequency,
            minimum_balance: r.minimum_balance,
            overdraft_limit: r.overdraft_limit,
            overdraft_rate: r.overdraft_rate,
            dormancy_days: r.dormancy_days,
            per_transfer_limit: r.per_transfer_limit,
            daily_transfer_limit: r.daily_transfer_limit,
        };
        if r.validate_only {
            return answer(self.deposits.checked_product(new), product);
        }
        answer(self.deposits.create_product(new).await, product)
    }

    async fn get_product(&self, request: Request<pb::GetProductRequest>) -> Answer<pb::Product> {
        let r = request.into_inner();
        let version = (r.version > 0).then_some(r.version);
        answer(self.deposits.product(&r.code, version).await, product)
    }

    async fn list_products(
        &self,
        _request: Request<pb::ListProductsRequest>,
    ) -> Answer<pb::ListProductsResponse> {
        answer(self.deposits.products().await, |products| {
            pb::ListProductsResponse {
                products: products.iter().map(product).collect(),
            }
        })
    }

    async fn open_account(&self, request: Request<pb::OpenAccountRequest>) -> Answer<pb::Account> {
        let r = request.into_inner();
        let opened_on = date("opened_on", &r.opened_on)?;
        answer(
            self.deposits
                .open_account(&r.request_id, &r.customer_id, &r.product_code, opened_on)
                .await,
            account,
        )
    }

    async fn get_account(&self, request: Request<pb::GetAccountRequest>) -> Answer<pb::Account> {
        let r = request.into_inner();
        answer(self.deposits.account_by_text(&r.account_id).await, account)
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Answer<pb::ListAccountsResponse> {
        let r = request.into_inner();
        answer(
            self.deposits.accounts_by_text(&r.account_ids).await,
            |views| pb::ListAccountsResponse {
                accounts: views.iter().map(account).collect(),
            },
        )
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Answer<pb::ListAccountsResponse> {
        let r = request.into_inner();
        answer(self.deposits.accounts_of(&r.customer_id).await, |views| {
            pb::ListAccountsResponse {
                accounts: views.iter().map(account).collect(),
            }
        })
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Answer<pb::Statement> {
        let r = request.into_inner();
        self.deposits
            .statement(&r.account_id, &r.cursor, r.page_size)
            .await
            .map(|view| Response::new(statement(view)))
            .map_err(|e| status_of(&e))
    }

    async fn deposit(&self, request: Request<pb::CashRequest>) -> Answer<pb::Movement> {
        self.movement("deposit", request.into_inner()).await
    }

    async fn withdraw(&self, request: Request<pb::CashRequest>) -> Answer<pb::Movement> {
        self.movement("withdrawal", request.into_inner()).await
    }

    async fn transfer(&self, request: Request<pb::TransferRequest>) -> Answer<pb::TransferResult> {
        let r = request.into_inner();
        answer(
            self.deposits
                .transfer(
                    &r.request_id,
                    &r.from_account_id,
                    &r.to_account_id,
                    &r.amount,
                    &r.currency,
                    &r.description,
                )
                .await,
            |view| pb::TransferResult {
                request_id: view.request_id.to_string(),
                from_account_id: view.from_account_id.to_string(),
                to_account_id: view.to_account_id.to_string(),
                amount: view.amount.clone(),
                currency: view.currency.clone(),
                entry_id: view.entry_id.to_string(),
                recorded_at: time(view.recorded_at),
                balances_after: Some(balances(&view.balances_after)),
                replayed: view.replayed,
            },
        )
    }

    async fn place_hold(&self, request: Request<pb::PlaceHoldRequest>) -> Answer<pb::Hold> {
        let r = request.into_inner();
        answer(
            self.deposits
                .place_hold(
                    &r.request_id,
                    &r.account_id,
                    &r.amount,
                    &r.currency,
                    &r.reason,
                    r.expires_in_seconds,
                )
                .await,
            hold,
        )
    }

    async fn release_hold(&self, request: Request<pb::ReleaseHoldRequest>) -> Answer<pb::Hold> {
        let r = request.into_inner();
        answer(
            self.deposits.release_hold(&r.request_id, &r.hold_id).await,
            hold,
        )
    }

    async fn capture_hold(&self, request: Request<pb::CaptureHoldRequest>) -> Answer<pb::Hold> {
        let r = request.into_inner();
        answer(
            self.deposits
                .capture_hold(&r.request_id, &r.hold_id, &r.destination)
                .await,
            hold,
        )
    }

    async fn freeze_account(
        &self,
        request: Request<pb::ChangeStatusRequest>,
    ) -> Answer<pb::Account> {
        self.change_status("freeze", request.into_inner()).await
    }

    async fn unfreeze_account(
        &self,
        request: Request<pb::ChangeStatusRequest>,
    ) -> Answer<pb::Account> {
        self.change_status("unfreeze", request.into_inner()).await
    }

    async fn close_account(
        &self,
        request: Request<pb::ChangeStatusRequest>,
    ) -> Answer<pb::Account> {
        self.change_status("close", request.into_inner()).await
    }

    async fn accrue_interest(
        &self,
        request: Request<pb::AccrueInterestRequest>,
    ) -> Answer<pb::AccrueInterestResponse> {
        let r = request.into_inner();
        let Some(as_of) = date("as_of", &r.as_of)? else {
            return Err(status_of(&DepositsError::invalid(
                "as_of",
                "a date like 2026-11-25",
            )));
        };
        answer(self.deposits.accrue(as_of, &|_, _| {}).await, |report| {
            pb::AccrueInterestResponse {
                accounts: report.accounts,
                accrual_entries: report.accrual_entries,
                postings: report.postings,
                accrued_through: as_of.to_string(),
            }
        })
    }
}
