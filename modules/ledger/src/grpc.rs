//! The gRPC handlers of `corebank.ledger.v1.Ledger`: parse at the edge into domain commands,
//! call the app layer, map results and refusals back. Every refusal carries its stable code
//! in the `corebank-error-code` metadata (and in `Failure.code` inside batches).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use corebank_api::ledger::v1 as pb;
use corebank_api::ledger::v1::ledger_server::LedgerServer;
use corebank_kernel::{AccountId, Clock, Currency, JournalEntryId, Money};
use corebank_service::internal::{Allow, allowed_callers};
use corebank_service::{Component, refusal};
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use crate::app::{AccountView, EntryView, Ledger, LedgerConfig, NewAccount};
use crate::domain::command::{Command, Leg, NewEntry};
use crate::domain::error::{ErrorClass, LedgerError};
use crate::domain::model::{
    Account, AccountStatus, AccountType, BalanceLimit, Balances, Direction, EntryKind, HoldStatus,
    LimitKind,
};

/// Items in one batch request, at most.
pub const REQUEST_ITEMS_MAX: usize = 8_192;

/// The ledger as a component: its gRPC service, its database for readiness, its batcher.
pub fn component(
    db: corebank_db::Db,
    clock: Arc<dyn Clock>,
    config: LedgerConfig,
    shutdown: CancellationToken,
) -> Component {
    component_of(Ledger::start(db, clock, config, shutdown))
}

/// A started ledger as a component: ready while its database answers and its batcher runs.
pub fn component_of(ledger: Ledger) -> Component {
    Component::new("ledger")
        .with_db(ledger.db().clone())
        .with_readiness(ledger.readiness())
        .with_grpc(
            LedgerServer::new(LedgerService { ledger }),
            Allow::only(allowed_callers::LEDGER),
        )
}

/// The tonic service.
#[derive(Debug, Clone)]
pub struct LedgerService {
    ledger: Ledger,
}

impl LedgerService {
    pub fn new(ledger: Ledger) -> LedgerService {
        LedgerService { ledger }
    }
}

/// A refusal as a gRPC status. Internal details never leave the process.
pub fn status_of(error: &LedgerError) -> Status {
    let code = match error.class() {
        ErrorClass::Invalid => tonic::Code::InvalidArgument,
        ErrorClass::NotFound => tonic::Code::NotFound,
        ErrorClass::RefusedForNow | ErrorClass::RefusedForGood => tonic::Code::FailedPrecondition,
        ErrorClass::Taken => tonic::Code::AlreadyExists,
        ErrorClass::Unavailable => tonic::Code::Unavailable,
        ErrorClass::OutcomeUnknown => tonic::Code::Unknown,
        ErrorClass::Internal => tonic::Code::Internal,
    };
    let internal_detail = match error {
        LedgerError::Internal { message } => Some(message.as_str()),
        _ => None,
    };
    let mut status = refusal::status_of("ledger", code, &error.code(), error, internal_detail);
    if let Ok(value) = error.retry_safe().to_string().parse() {
        status.metadata_mut().insert("corebank-retry-safe", value);
    }
    status
}

fn failure(error: &LedgerError) -> pb::Failure {
    let message = match error {
        LedgerError::Internal { .. } => "internal error".to_owned(),
        other => other.to_string(),
    };
    pb::Failure {
        code: error.code(),
        message,
        retry_safe: error.retry_safe(),
    }
}

fn invalid(field: &str, message: impl Into<String>) -> LedgerError {
    LedgerError::invalid(field, message)
}

fn parse_account_id(field: &str, text: &str) -> Result<AccountId, LedgerError> {
    AccountId::parse(text).map_err(|e| invalid(field, format!("{field}: {e}")))
}

fn parse_entry_id(field: &str, text: &str) -> Result<JournalEntryId, LedgerError> {
    JournalEntryId::parse(text).map_err(|e| invalid(field, format!("{field}: {e}")))
}

fn parse_currency(field: &str, text: &str) -> Result<Currency, LedgerError> {
    Currency::from_code(text).map_err(|e| invalid(field, format!("{field}: {e}")))
}

fn parse_money(field: &str, amount: &str, currency: Currency) -> Result<Money, LedgerError> {
    Money::parse(amount, currency).map_err(|e| LedgerError::InvalidAmount {
        field: field.to_owned(),
        message: format!("{field}: {e}"),
    })
}

fn parse_date(field: &str, text: &str) -> Result<Option<NaiveDate>, LedgerError> {
    if text.is_empty() {
        return Ok(None);
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| {
            invalid(
                field,
                format!("{field}: {text:?} is not a date written YYYY-MM-DD"),
            )
        })
}

fn parse_time(field: &str, text: &str) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|_| {
            invalid(
                field,
                format!("{field}: {text:?} is not an RFC 3339 time such as 2026-11-25T10:00:00Z"),
            )
        })
}

fn parse_direction(field: &str, value: i32) -> Result<Direction, LedgerError> {
    match pb::Direction::try_from(value) {
        Ok(pb::Direction::Debit) => Ok(Direction::Debit),
        Ok(pb::Direction::Credit) => Ok(Direction::Credit),
        Ok(pb::Direction::Unspecified) | Err(_) => {
            Err(invalid(field, format!("{field}: DEBIT or CREDIT")))
        }
    }
}

fn parse_account_type(value: i32) -> Result<AccountType, LedgerError> {
    match pb::AccountType::try_from(value) {
        Ok(pb::AccountType::Asset) => Ok(AccountType::Asset),
        Ok(pb::AccountType::Liability) => Ok(AccountType::Liability),
        Ok(pb::AccountType::Equity) => Ok(AccountType::Equity),
        Ok(pb::AccountType::Income) => Ok(AccountType::Income),
        Ok(pb::AccountType::Expense) => Ok(AccountType::Expense),
        Ok(pb::AccountType::Unspecified) | Err(_) => Err(invalid(
            "type",
            "type: ASSET, LIABILITY, EQUITY, INCOME or EXPENSE",
        )),
    }
}

fn parse_limit(
    limit: Option<&pb::BalanceLimit>,
    currency: Currency,
) -> Result<BalanceLimit, LedgerError> {
    let Some(limit) = limit else {
        return Ok(BalanceLimit::NONE);
    };
    let kind = match pb::LimitKind::try_from(limit.kind) {
        Ok(pb::LimitKind::Unspecified | pb::LimitKind::None) => LimitKind::None,
        Ok(pb::LimitKind::DebitsMustNotExceedCredits) => LimitKind::DebitsMustNotExceedCredits,
        Ok(pb::LimitKind::CreditsMustNotExceedDebits) => LimitKind::CreditsMustNotExceedDebits,
        Err(_) => return Err(invalid("limit.kind", "limit.kind: unknown value")),
    };
    let amount = if limit.limit_amount.is_empty() {
        Decimal::ZERO
    } else {
        parse_money("limit.limit_amount", &limit.limit_amount, currency)?.amount()
    };
    Ok(BalanceLimit { kind, amount })
}

fn metadata_of(map: &std::collections::HashMap<String, String>) -> BTreeMap<String, String> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn parse_new_account(request: &pb::CreateAccountRequest) -> Result<NewAccount, LedgerError> {
    let id = if request.id.is_empty() {
        AccountId::generate()
    } else {
        parse_account_id("id", &request.id)?
    };
    let currency = parse_currency("currency", &request.currency)?;
    Ok(NewAccount {
        id,
        code: request.code.clone(),
        name: request.name.clone(),
        currency,
        account_type: parse_account_type(request.r#type)?,
        limit: parse_limit(request.limit.as_ref(), currency)?,
        external_ref: request.external_ref.clone(),
        metadata: metadata_of(&request.metadata),
        balance_shards: request.balance_shards.max(1),
    })
}

fn parse_entry(request: &pb::PostEntryRequest) -> Result<Command, LedgerError> {
    let id = parse_entry_id("id", &request.id)?;
    let mut legs = Vec::with_capacity(request.legs.len());
    for (index, leg) in request.legs.iter().enumerate() {
        let currency = parse_currency(&format!("legs[{index}].currency"), &leg.currency)?;
        legs.push(Leg {
            account_id: parse_account_id(&format!("legs[{index}].account_id"), &leg.account_id)?,
            direction: parse_direction(&format!("legs[{index}].direction"), leg.direction)?,
            amount: parse_money(&format!("legs[{index}].amount"), &leg.amount, currency)?,
        });
    }
    Ok(Command::Entry(NewEntry {
        id,
        legs,
        value_date: parse_date("value_date", &request.value_date)?,
        description: request.description.clone(),
        external_ref: request.external_ref.clone(),
        metadata: metadata_of(&request.metadata),
        pending: request.pending,
        timeout_seconds: request.timeout_seconds,
        bank_charge_may_exceed_limit: request.bank_charge_may_exceed_limit,
    }))
}

/// Refuses the bank-charge flag from any caller but the deposits module (its accrual).
fn check_bank_charge<T>(
    request: &Request<T>,
    entries: &[pb::PostEntryRequest],
) -> Result<(), Status> {
    let flagged = entries
        .iter()
        .any(|entry| entry.bank_charge_may_exceed_limit);
    let caller = corebank_service::internal::Caller::of(request).map(|c| c.component());
    if flagged && caller != Some(corebank_service::internal::component_names::DEPOSITS) {
        return Err(Status::permission_denied(
            "bank_charge_may_exceed_limit is for the deposits module's charges only",
        ));
    }
    Ok(())
}

fn parse_transfer(request: &pb::CreateTransferRequest) -> Result<Command, LedgerError> {
    let id = parse_entry_id("id", &request.id)?;
    let currency = parse_currency("currency", &request.currency)?;
    let amount = parse_money("amount", &request.amount, currency)?;
    let debit = parse_account_id("debit_account_id", &request.debit_account_id)?;
    let credit = parse_account_id("credit_account_id", &request.credit_account_id)?;
    if debit == credit {
        return Err(invalid(
            "credit_account_id",
            "a transfer needs two different accounts",
        ));
    }
    Ok(Command::Entry(NewEntry {
        id,
        legs: Leg::transfer(debit, credit, amount),
        value_date: parse_date("value_date", &request.value_date)?,
        description: request.description.clone(),
        external_ref: request.external_ref.clone(),
        metadata: metadata_of(&request.metadata),
        pending: request.pending,
        timeout_seconds: request.timeout_seconds,
        bank_charge_may_exceed_limit: false,
    }))
}

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn money_text(amount: Decimal, currency: Currency) -> String {
    Money::new(amount, currency)
        .map_or_else(|_| amount.normalize().to_string(), |m| m.amount_string())
}

fn account_type_pb(account_type: AccountType) -> pb::AccountType {
    match account_type {
        AccountType::Asset => pb::AccountType::Asset,
        AccountType::Liability => pb::AccountType::Liability,
        AccountType::Equity => pb::AccountType::Equity,
        AccountType::Income => pb::AccountType::Income,
        AccountType::Expense => pb::AccountType::Expense,
    }
}

fn direction_pb(direction: Direction) -> pb::Direction {
    match direction {
        Direction::Debit => pb::Direction::Debit,
        Direction::Credit => pb::Direction::Credit,
    }
}

fn entry_kind_pb(kind: EntryKind) -> pb::EntryKind {
    match kind {
        EntryKind::Posted => pb::EntryKind::Posted,
        EntryKind::Pending => pb::EntryKind::Pending,
        EntryKind::PostPending => pb::EntryKind::PostPending,
        EntryKind::VoidPending => pb::EntryKind::VoidPending,
        EntryKind::ExpirePending => pb::EntryKind::ExpirePending,
        EntryKind::Reversal => pb::EntryKind::Reversal,
    }
}

fn hold_status_pb(status: HoldStatus) -> pb::HoldStatus {
    match status {
        HoldStatus::Pending => pb::HoldStatus::Pending,
        HoldStatus::Posted => pb::HoldStatus::Posted,
        HoldStatus::Voided => pb::HoldStatus::Voided,
        HoldStatus::Expired => pb::HoldStatus::Expired,
    }
}

fn balance_pb(account: &Account, balances: &Balances, as_of: String) -> pb::Balance {
    let currency = account.currency;
    pb::Balance {
        account_id: account.id.to_string(),
        currency: currency.code().to_owned(),
        debits_posted: money_text(balances.debits_posted, currency),
        credits_posted: money_text(balances.credits_posted, currency),
        debits_pending: money_text(balances.debits_pending, currency),
        credits_pending: money_text(balances.credits_pending, currency),
        posted: money_text(balances.posted(account.account_type), currency),
        available: money_text(balances.available(account.account_type), currency),
        as_of,
    }
}

fn account_pb(view: &AccountView) -> pb::Account {
    let account = &view.account;
    pb::Account {
        id: account.id.to_string(),
        code: account.code.clone(),
        name: account.name.clone(),
        currency: account.currency.code().to_owned(),
        r#type: account_type_pb(account.account_type).into(),
        limit: Some(pb::BalanceLimit {
            kind: match account.limit.kind {
                LimitKind::None => pb::LimitKind::None,
                LimitKind::DebitsMustNotExceedCredits => pb::LimitKind::DebitsMustNotExceedCredits,
                LimitKind::CreditsMustNotExceedDebits => pb::LimitKind::CreditsMustNotExceedDebits,
            }
            .into(),
            limit_amount: money_text(account.limit.amount, account.currency),
        }),
        status: match account.status {
            AccountStatus::Open => pb::AccountStatus::Open,
            AccountStatus::Closed => pb::AccountStatus::Closed,
        }
        .into(),
        debits_frozen: account.debits_frozen,
        credits_frozen: account.credits_frozen,
        external_ref: account.external_ref.clone(),
        metadata: account
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        balance: Some(balance_pb(account, &view.balances, String::new())),
        balance_shards: account.balance_shards,
        created_at: time_text(account.created_at),
    }
}

fn entry_pb(view: &EntryView) -> pb::Entry {
    let entry = &view.entry;
    pb::Entry {
        id: entry.id.to_string(),
        kind: entry_kind_pb(entry.kind).into(),
        legs: entry
            .postings
            .iter()
            .map(|p| pb::Leg {
                account_id: p.account_id.to_string(),
                direction: direction_pb(p.direction).into(),
                amount: money_text(p.amount, p.currency),
                currency: p.currency.code().to_owned(),
                bucket: p.bucket.as_str().to_owned(),
            })
            .collect(),
        value_date: entry.value_date.to_string(),
        recorded_at: time_text(entry.recorded_at),
        description: entry.description.clone(),
        external_ref: entry.external_ref.clone(),
        metadata: entry
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        linked_entry_id: entry
            .linked_entry_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        hold_status: view
            .hold
            .map_or(pb::HoldStatus::Unspecified, |(status, _)| {
                hold_status_pb(status)
            })
            .into(),
        expires_at: view
            .hold
            .and_then(|(_, at)| at)
            .map(time_text)
            .unwrap_or_default(),
        chain_partition: u64::from(entry.chain_partition),
        chain_sequence: entry.chain_sequence,
        hash: entry.hash.clone(),
    }
}

fn entry_result(result: Result<EntryView, LedgerError>) -> pb::EntryResult {
    match result {
        Ok(view) => pb::EntryResult {
            replayed: view.replayed,
            outcome: Some(pb::entry_result::Outcome::Entry(entry_pb(&view))),
        },
        Err(error) => pb::EntryResult {
            replayed: false,
            outcome: Some(pb::entry_result::Outcome::Failure(failure(&error))),
        },
    }
}

/// A single write answers with its entry, or with an error status carrying the code.
fn single(result: Result<EntryView, LedgerError>) -> Result<Response<pb::EntryResult>, Status> {
    match result {
        Ok(view) => Ok(Response::new(entry_result(Ok(view)))),
        Err(error) => Err(status_of(&error)),
    }
}

fn check_items(count: usize) -> Result<(), Status> {
    if count > REQUEST_ITEMS_MAX {
        return Err(status_of(&invalid(
            "items",
            format!("at most {REQUEST_ITEMS_MAX} items per request"),
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn create_account(
        &self,
        request: Request<pb::CreateAccountRequest>,
    ) -> Result<Response<pb::AccountResult>, Status> {
        let account = parse_new_account(request.get_ref()).map_err(|e| status_of(&e))?;
        let mut results = self
            .ledger
            .create_accounts(vec![account])
            .await
            .map_err(|e| status_of(&e))?;
        match results.pop() {
            Some(Ok(view)) => Ok(Response::new(pb::AccountResult {
                replayed: view.replayed,
                outcome: Some(pb::account_result::Outcome::Account(account_pb(&view))),
            })),
            Some(Err(error)) => Err(status_of(&error)),
            None => Err(status_of(&LedgerError::Internal {
                message: "no result for the account".to_owned(),
            })),
        }
    }

    async fn create_accounts(
        &self,
        request: Request<pb::CreateAccountsRequest>,
    ) -> Result<Response<pb::CreateAccountsResponse>, Status> {
        let requests = &request.get_ref().accounts;
        check_items(requests.len())?;
        let parsed: Vec<Result<NewAccount, LedgerError>> =
            requests.iter().map(parse_new_account).collect();
        let valid: Vec<NewAccount> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let mut created = self
            .ledger
            .create_accounts(valid)
            .await
            .map_err(|e| status_of(&e))?
            .into_iter();
        let results = parsed
            .into_iter()
            .map(|p| {
                let outcome = match p {
                    Ok(_) => created.next().unwrap_or_else(|| {
                        Err(LedgerError::Internal {
                            message: "missing result".to_owned(),
                        })
                    }),
                    Err(error) => Err(error),
                };
                match outcome {
                    Ok(view) => pb::AccountResult {
                        replayed: view.replayed,
                        outcome: Some(pb::account_result::Outcome::Account(account_pb(&view))),
                    },
                    Err(error) => pb::AccountResult {
                        replayed: false,
                        outcome: Some(pb::account_result::Outcome::Failure(failure(&error))),
                    },
                }
            })
            .collect();
        Ok(Response::new(pb::CreateAccountsResponse { results }))
    }

    async fn get_account(
        &self,
        request: Request<pb::GetAccountRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let id = parse_account_id("account_id", &request.get_ref().account_id)
            .map_err(|e| status_of(&e))?;
        let view = self.ledger.account(id).await.map_err(|e| status_of(&e))?;
        Ok(Response::new(account_pb(&view)))
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Result<Response<pb::GetAccountsResponse>, Status> {
        let asked = &request.get_ref().account_ids;
        check_items(asked.len())?;
        let ids = asked
            .iter()
            .enumerate()
            .map(|(index, id)| parse_account_id(&format!("account_ids[{index}]"), id))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| status_of(&e))?;
        let views = self
            .ledger
            .accounts(&ids)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::GetAccountsResponse {
            accounts: views.iter().map(account_pb).collect(),
        }))
    }

    async fn set_balance_limit(
        &self,
        request: Request<pb::SetBalanceLimitRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.get_ref();
        let id = parse_account_id("account_id", &request.account_id).map_err(|e| status_of(&e))?;
        let current = self.ledger.account(id).await.map_err(|e| status_of(&e))?;
        let limit = parse_limit(request.limit.as_ref(), current.account.currency)
            .map_err(|e| status_of(&e))?;
        let view = self
            .ledger
            .set_limit(id, limit)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(account_pb(&view)))
    }

    async fn set_account_status(
        &self,
        request: Request<pb::SetAccountStatusRequest>,
    ) -> Result<Response<pb::Account>, Status> {
        let request = request.get_ref();
        let id = parse_account_id("account_id", &request.account_id).map_err(|e| status_of(&e))?;
        let status = match pb::AccountStatus::try_from(request.status) {
            Ok(pb::AccountStatus::Open) => AccountStatus::Open,
            Ok(pb::AccountStatus::Closed) => AccountStatus::Closed,
            Ok(pb::AccountStatus::Unspecified) | Err(_) => {
                return Err(status_of(&invalid("status", "status: OPEN or CLOSED")));
            }
        };
        let view = self
            .ledger
            .set_status(id, status, request.debits_frozen, request.credits_frozen)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(account_pb(&view)))
    }

    async fn post_entry(
        &self,
        request: Request<pb::PostEntryRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        check_bank_charge(&request, std::slice::from_ref(request.get_ref()))?;
        self.submit_one(parse_entry(request.get_ref())).await
    }

    async fn post_entries(
        &self,
        request: Request<pb::PostEntriesRequest>,
    ) -> Result<Response<pb::PostEntriesResponse>, Status> {
        let entries = &request.get_ref().entries;
        check_items(entries.len())?;
        check_bank_charge(&request, entries)?;
        Ok(Response::new(
            self.submit_parsed(entries.iter().map(parse_entry).collect())
                .await,
        ))
    }

    async fn create_transfer(
        &self,
        request: Request<pb::CreateTransferRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        self.submit_one(parse_transfer(request.get_ref())).await
    }

    async fn create_transfers(
        &self,
        request: Request<pb::CreateTransfersRequest>,
    ) -> Result<Response<pb::PostEntriesResponse>, Status> {
        let transfers = &request.get_ref().transfers;
        check_items(transfers.len())?;
        Ok(Response::new(
            self.submit_parsed(transfers.iter().map(parse_transfer).collect())
                .await,
        ))
    }

    async fn post_pending(
        &self,
        request: Request<pb::PostPendingRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        let request = request.get_ref();
        self.submit_one((|| {
            let amount =
                if request.amount.is_empty() {
                    None
                } else {
                    Some(request.amount.parse::<Decimal>().map_err(|_| {
                        LedgerError::InvalidAmount {
                            field: "amount".to_owned(),
                            message: format!("amount {:?} is not a decimal number", request.amount),
                        }
                    })?)
                };
            Ok::<_, LedgerError>(Command::PostPending {
                id: parse_entry_id("id", &request.id)?,
                pending_id: parse_entry_id("pending_entry_id", &request.pending_entry_id)?,
                amount,
                description: request.description.clone(),
            })
        })())
        .await
    }

    async fn void_pending(
        &self,
        request: Request<pb::VoidPendingRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        let request = request.get_ref();
        self.submit_one((|| {
            Ok::<_, LedgerError>(Command::VoidPending {
                id: parse_entry_id("id", &request.id)?,
                pending_id: parse_entry_id("pending_entry_id", &request.pending_entry_id)?,
                description: request.description.clone(),
            })
        })())
        .await
    }

    async fn reverse_entry(
        &self,
        request: Request<pb::ReverseEntryRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        let request = request.get_ref();
        self.submit_one((|| {
            Ok::<_, LedgerError>(Command::Reverse {
                id: parse_entry_id("id", &request.id)?,
                entry_id: parse_entry_id("entry_id", &request.entry_id)?,
                description: request.description.clone(),
            })
        })())
        .await
    }

    async fn sweep_account(
        &self,
        request: Request<pb::SweepAccountRequest>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        let request = request.get_ref();
        self.submit_one((|| {
            Ok::<_, LedgerError>(Command::Sweep {
                id: parse_entry_id("id", &request.id)?,
                source: parse_account_id("source_account_id", &request.source_account_id)?,
                target: parse_account_id("target_account_id", &request.target_account_id)?,
                description: request.description.clone(),
                external_ref: request.external_ref.clone(),
            })
        })())
        .await
    }

    async fn get_entry(
        &self,
        request: Request<pb::GetEntryRequest>,
    ) -> Result<Response<pb::Entry>, Status> {
        let view = match &request.get_ref().key {
            Some(pb::get_entry_request::Key::EntryId(id)) => {
                let id = parse_entry_id("entry_id", id).map_err(|e| status_of(&e))?;
                self.ledger.entry(id).await
            }
            Some(pb::get_entry_request::Key::ExternalRef(external_ref)) => {
                self.ledger.entry_by_external_ref(external_ref).await
            }
            None => Err(invalid("key", "give entry_id or external_ref")),
        }
        .map_err(|e| status_of(&e))?;
        Ok(Response::new(entry_pb(&view)))
    }

    async fn get_balance(
        &self,
        request: Request<pb::GetBalanceRequest>,
    ) -> Result<Response<pb::Balance>, Status> {
        let request = request.get_ref();
        let id = parse_account_id("account_id", &request.account_id).map_err(|e| status_of(&e))?;
        let (account, balances, as_of) = match &request.as_of {
            None => {
                let view = self.ledger.account(id).await.map_err(|e| status_of(&e))?;
                (view.account, view.balances, String::new())
            }
            Some(pb::get_balance_request::AsOf::RecordTime(text)) => {
                let at = parse_time("record_time", text).map_err(|e| status_of(&e))?;
                let (account, balances) = self
                    .ledger
                    .balances_as_of_time(id, at)
                    .await
                    .map_err(|e| status_of(&e))?;
                (account, balances, time_text(at))
            }
            Some(pb::get_balance_request::AsOf::ValueDate(text)) => {
                let date = parse_date("value_date", text)
                    .and_then(|d| d.ok_or_else(|| invalid("value_date", "value_date: YYYY-MM-DD")))
                    .map_err(|e| status_of(&e))?;
                let (account, balances) = self
                    .ledger
                    .balances_as_of_value_date(id, date)
                    .await
                    .map_err(|e| status_of(&e))?;
                (account, balances, date.to_string())
            }
        };
        Ok(Response::new(balance_pb(&account, &balances, as_of)))
    }

    async fn get_statement(
        &self,
        request: Request<pb::GetStatementRequest>,
    ) -> Result<Response<pb::Statement>, Status> {
        let request = request.get_ref();
        let id = parse_account_id("account_id", &request.account_id).map_err(|e| status_of(&e))?;
        let page = self
            .ledger
            .statement(id, Some(&request.cursor), request.page_size)
            .await
            .map_err(|e| status_of(&e))?;
        let currency = page.account.currency;
        Ok(Response::new(pb::Statement {
            account_id: id.to_string(),
            currency: currency.code().to_owned(),
            lines: page
                .lines
                .iter()
                .map(|line| pb::StatementLine {
                    entry_id: line.posting.entry_id.to_string(),
                    kind: entry_kind_pb(line.posting.kind).into(),
                    recorded_at: time_text(line.posting.recorded_at),
                    value_date: line.posting.value_date.to_string(),
                    direction: direction_pb(line.posting.direction).into(),
                    bucket: line.posting.bucket.as_str().to_owned(),
                    amount: money_text(line.posting.amount, currency),
                    description: line.posting.description.clone(),
                    running_balance: money_text(line.running_balance, currency),
                })
                .collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn get_trial_balance(
        &self,
        request: Request<pb::GetTrialBalanceRequest>,
    ) -> Result<Response<pb::TrialBalance>, Status> {
        let as_of = &request.get_ref().as_of;
        let at = if as_of.is_empty() {
            None
        } else {
            Some(parse_time("as_of", as_of).map_err(|e| status_of(&e))?)
        };
        let report = self
            .ledger
            .trial_balance(at)
            .await
            .map_err(|e| status_of(&e))?;
        Ok(Response::new(pb::TrialBalance {
            as_of: time_text(report.as_of),
            lines: report
                .lines
                .iter()
                .map(
                    |(currency, account_type, debits, credits)| pb::TrialBalanceLine {
                        currency: currency.code().to_owned(),
                        r#type: account_type_pb(*account_type).into(),
                        debits: money_text(*debits, *currency),
                        credits: money_text(*credits, *currency),
                    },
                )
                .collect(),
            difference_by_currency: report
                .difference_by_currency
                .iter()
                .map(|(code, difference)| ((*code).to_owned(), difference.normalize().to_string()))
                .collect(),
        }))
    }

    async fn verify(
        &self,
        _request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let report = self.ledger.verify().await.map_err(|e| status_of(&e))?;
        Ok(Response::new(match report.first_broken {
            None => pb::VerifyResponse {
                intact: true,
                entries_checked: report.entries_checked,
                ..Default::default()
            },
            Some((partition, id, problem)) => pb::VerifyResponse {
                intact: false,
                entries_checked: report.entries_checked,
                first_broken_entry_id: id.to_string(),
                first_broken_partition: u64::from(partition),
                problem,
            },
        }))
    }
}

impl LedgerService {
    /// Submits one command parsed from a request, or answers why it does not parse.
    async fn submit_one(
        &self,
        command: Result<Command, LedgerError>,
    ) -> Result<Response<pb::EntryResult>, Status> {
        let command = command.map_err(|e| status_of(&e))?;
        single(self.ledger.submit(command).await)
    }

    async fn submit_parsed(
        &self,
        parsed: Vec<Result<Command, LedgerError>>,
    ) -> pb::PostEntriesResponse {
        let valid: Vec<Command> = parsed
            .iter()
            .filter_map(|p| p.as_ref().ok().cloned())
            .collect();
        let mut submitted = self.ledger.submit_many(valid).await.into_iter();
        let results = parsed
            .into_iter()
            .map(|p| match p {
                Ok(_) => entry_result(submitted.next().unwrap_or_else(|| {
                    Err(LedgerError::Internal {
                        message: "missing result".to_owned(),
                    })
                })),
                Err(error) => entry_result(Err(error)),
            })
            .collect();
        pb::PostEntriesResponse { results }
    }
}
