//! Opening accounts and changing their limits and status.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use corebank_db::{Transaction, TxError};
use corebank_kernel::{AccountId, Currency, Money};
use uuid::Uuid;

use crate::domain::command::{EXTERNAL_REF_LENGTH_MAX, validate_metadata, validate_text};
use crate::domain::error::LedgerError;
use crate::domain::model::{
    Account, AccountStatus, AccountType, BalanceLimit, Balances, LimitKind,
};
use crate::store::{self, StoreResult, corrupt};

/// Balance rows an account may be spread over, at most.
pub const BALANCE_SHARDS_MAX: u32 = 64;
pub const CODE_LENGTH_MAX: usize = 64;
pub const NAME_LENGTH_MAX: usize = 200;

/// A request to open an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    pub id: AccountId,
    pub code: String,
    pub name: String,
    pub currency: Currency,
    pub account_type: AccountType,
    pub limit: BalanceLimit,
    pub external_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub balance_shards: u32,
}

/// The stored form of an account request, for idempotency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct AccountRequest {
    code: String,
    name: String,
    currency: String,
    account_type: String,
    limit_kind: String,
    limit_amount: String,
    external_ref: String,
    metadata: BTreeMap<String, String>,
    balance_shards: u32,
}

impl AccountRequest {
    fn of(account: &NewAccount) -> AccountRequest {
        AccountRequest {
            code: account.code.clone(),
            name: account.name.clone(),
            currency: account.currency.code().to_owned(),
            account_type: account.account_type.as_str().to_owned(),
            limit_kind: account.limit.kind.as_str().to_owned(),
            limit_amount: account.limit.amount.normalize().to_string(),
            external_ref: account.external_ref.clone(),
            metadata: account.metadata.clone(),
            balance_shards: account.balance_shards,
        }
    }

    fn first_difference(&self, other: &AccountRequest) -> Option<&'static str> {
        [
            (self.code != other.code, "code"),
            (self.name != other.name, "name"),
            (self.currency != other.currency, "currency"),
            (self.account_type != other.account_type, "type"),
            (self.limit_kind != other.limit_kind, "limit"),
            (self.limit_amount != other.limit_amount, "limit_amount"),
            (self.external_ref != other.external_ref, "external_ref"),
            (self.metadata != other.metadata, "metadata"),
            (
                self.balance_shards != other.balance_shards,
                "balance_shards",
            ),
        ]
        .into_iter()
        .find_map(|(differs, field)| differs.then_some(field))
    }
}

/// Checks a limit's amount against the currency (a negative amount is a minimum balance),
/// and that "none" carries no amount.
pub fn validate_limit(limit: &BalanceLimit, currency: Currency) -> Result<(), LedgerError> {
    if limit.kind == LimitKind::None && !limit.amount.is_zero() {
        return Err(LedgerError::invalid(
            "limit.limit_amount",
            "an account without a limit has no limit amount",
        ));
    }
    // A negative amount is a floor: the balance must stay at least that far on the normal
    // side (a savings account's minimum balance).
    Money::new(limit.amount.abs(), currency).map_err(|error| LedgerError::InvalidAmount {
        field: "limit.limit_amount".to_owned(),
        message: error.to_string(),
    })?;
    Ok(())
}

impl NewAccount {
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.code.is_empty() || self.code.chars().count() > CODE_LENGTH_MAX {
            return Err(LedgerError::invalid(
                "code",
                format!("1 to {CODE_LENGTH_MAX} characters"),
            ));
        }
        validate_text("code", &self.code, CODE_LENGTH_MAX)?;
        if self.name.is_empty() {
            return Err(LedgerError::invalid("name", "an account needs a name"));
        }
        validate_text("name", &self.name, NAME_LENGTH_MAX)?;
        validate_text("external_ref", &self.external_ref, EXTERNAL_REF_LENGTH_MAX)?;
        validate_metadata(&self.metadata)?;
        validate_limit(&self.limit, self.currency)?;
        if self.balance_shards == 0 || self.balance_shards > BALANCE_SHARDS_MAX {
            return Err(LedgerError::invalid(
                "balance_shards",
                format!("1 to {BALANCE_SHARDS_MAX}"),
            ));
        }
        Ok(())
    }
}

/// Opens these accounts; a repeated id with the same content is a replay.
pub async fn create(
    tx: &Transaction<'_>,
    requests: &[NewAccount],
    now: DateTime<Utc>,
) -> StoreResult<Vec<Result<(Account, bool), LedgerError>>> {
    let ids: Vec<Uuid> = requests.iter().map(|r| r.id.as_uuid()).collect();
    let codes: Vec<&str> = requests.iter().map(|r| r.code.as_str()).collect();
    let existing_rows = tx
        .query(
            &tx.prepare_cached(
                "SELECT id, code, request FROM accounts WHERE id = ANY($1) OR code = ANY($2)",
            )
            .await?,
            &[&ids, &codes],
        )
        .await?;
    let mut by_id: HashMap<AccountId, AccountRequest> = HashMap::new();
    let mut taken_codes: HashMap<String, AccountId> = HashMap::new();
    for row in &existing_rows {
        let id = store::account_id(row.get(0))?;
        taken_codes.insert(row.get(1), id);
        by_id.insert(
            id,
            serde_json::from_value(row.get(2))
                .map_err(|e| corrupt(format!("account request: {e}")))?,
        );
    }

    let mut outcomes: Vec<Result<(AccountId, bool), LedgerError>> =
        Vec::with_capacity(requests.len());
    let mut to_insert: Vec<&NewAccount> = Vec::new();
    for request in requests {
        let canonical = AccountRequest::of(request);
        if let Some(stored) = by_id.get(&request.id) {
            outcomes.push(match stored.first_difference(&canonical) {
                None => Ok((request.id, true)),
                Some(field) => Err(LedgerError::ExistsWithDifferent {
                    id: request.id.to_string(),
                    field,
                }),
            });
            continue;
        }
        if let Err(error) = request.validate() {
            outcomes.push(Err(error));
            continue;
        }
        if taken_codes
            .get(&request.code)
            .is_some_and(|owner| *owner != request.id)
        {
            outcomes.push(Err(LedgerError::CodeTaken {
                code: request.code.clone(),
            }));
            continue;
        }
        taken_codes.insert(request.code.clone(), request.id);
        by_id.insert(request.id, canonical);
        to_insert.push(request);
        outcomes.push(Ok((request.id, false)));
    }

    if !to_insert.is_empty() {
        let insert = tx
            .prepare_cached(
                "INSERT INTO accounts (id, code, name, currency, account_type, limit_kind, limit_amount, status, \
                 debits_frozen, credits_frozen, external_ref, metadata, balance_shards, request, created_at) \
                 SELECT id, code, name, currency, account_type, limit_kind, limit_amount, 'open', false, false, \
                 external_ref, metadata, balance_shards, request, $12 \
                 FROM UNNEST($1::UUID[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], $6::TEXT[], $7::NUMERIC[], \
                 $8::TEXT[], $9::JSONB[], $10::INT8[], $11::JSONB[]) \
                 AS a(id, code, name, currency, account_type, limit_kind, limit_amount, external_ref, metadata, \
                 balance_shards, request)",
            )
            .await?;
        let ids: Vec<Uuid> = to_insert.iter().map(|a| a.id.as_uuid()).collect();
        let codes: Vec<&str> = to_insert.iter().map(|a| a.code.as_str()).collect();
        let names: Vec<&str> = to_insert.iter().map(|a| a.name.as_str()).collect();
        let currencies: Vec<&str> = to_insert.iter().map(|a| a.currency.code()).collect();
        let types: Vec<&str> = to_insert.iter().map(|a| a.account_type.as_str()).collect();
        let kinds: Vec<&str> = to_insert.iter().map(|a| a.limit.kind.as_str()).collect();
        let amounts: Vec<rust_decimal::Decimal> =
            to_insert.iter().map(|a| a.limit.amount).collect();
        let refs: Vec<&str> = to_insert.iter().map(|a| a.external_ref.as_str()).collect();
        let metadata = to_insert
            .iter()
            .map(|a| serde_json::to_value(&a.metadata))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        let shards: Vec<i64> = to_insert
            .iter()
            .map(|a| i64::from(a.balance_shards))
            .collect();
        let canonical = to_insert
            .iter()
            .map(|a| serde_json::to_value(AccountRequest::of(a)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(e.to_string()))?;
        tx.execute(
            &insert,
            &[
                &ids,
                &codes,
                &names,
                &currencies,
                &types,
                &kinds,
                &amounts,
                &refs,
                &metadata,
                &shards,
                &canonical,
                &now,
            ],
        )
        .await?;

        let mut shard_accounts = Vec::new();
        let mut shard_numbers = Vec::new();
        for account in &to_insert {
            for shard in 0..account.balance_shards {
                shard_accounts.push(account.id.as_uuid());
                shard_numbers.push(i64::from(shard));
            }
        }
        let insert_shards = tx
            .prepare_cached(
                "INSERT INTO account_balances (account_id, shard) SELECT * FROM UNNEST($1::UUID[], $2::INT8[])",
            )
            .await?;
        tx.execute(&insert_shards, &[&shard_accounts, &shard_numbers])
            .await?;
    }

    let wanted: BTreeSet<AccountId> = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok().map(|(id, _)| *id))
        .collect();
    let accounts = store::load_accounts(tx, &wanted).await?;
    outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Ok((id, replayed)) => accounts
                .get(&id)
                .cloned()
                .map(|account| Ok((account, replayed)))
                .ok_or_else(|| corrupt(format!("account {id} vanished"))),
            Err(error) => Ok(Err(error)),
        })
        .collect()
}

/// The account row, locked until commit.
async fn lock_account(tx: &Transaction<'_>, id: AccountId) -> StoreResult<Account> {
    let statement = tx
        .prepare_cached(
            "SELECT id, code, name, currency, account_type, limit_kind, limit_amount, status, debits_frozen, \
             credits_frozen, external_ref, metadata, balance_shards, created_at FROM accounts WHERE id = $1 FOR UPDATE",
        )
        .await?;
    match tx.query_opt(&statement, &[&id.as_uuid()]).await? {
        Some(row) => store::account_from_row(&row),
        None => Err(TxError::Abort(LedgerError::UnknownAccount {
            account_id: id,
        })),
    }
}

pub async fn set_limit(
    tx: &Transaction<'_>,
    id: AccountId,
    limit: BalanceLimit,
) -> StoreResult<()> {
    let account = lock_account(tx, id).await?;
    validate_limit(&limit, account.currency).map_err(TxError::Abort)?;
    let statement = tx
        .prepare_cached("UPDATE accounts SET limit_kind = $2, limit_amount = $3 WHERE id = $1")
        .await?;
    tx.execute(
        &statement,
        &[&id.as_uuid(), &limit.kind.as_str(), &limit.amount],
    )
    .await?;
    Ok(())
}

pub async fn set_status(
    tx: &Transaction<'_>,
    id: AccountId,
    status: AccountStatus,
    debits_frozen: bool,
    credits_frozen: bool,
) -> StoreResult<()> {
    let account = lock_account(tx, id).await?;
    if account.status == AccountStatus::Closed && status == AccountStatus::Open {
        return Err(TxError::Abort(LedgerError::invalid(
            "status",
            "a closed account stays closed",
        )));
    }
    if status == AccountStatus::Closed {
        let balances: Balances = store::lock_balances(tx, &BTreeSet::from([id]))
            .await?
            .remove(&id)
            .unwrap_or_default();
        if !(balances.debits_pending.is_zero() && balances.credits_pending.is_zero()) {
            return Err(TxError::Abort(LedgerError::CannotClose {
                account_id: id,
                reason: "it has open holds",
            }));
        }
        if balances.debits_posted != balances.credits_posted {
            return Err(TxError::Abort(LedgerError::CannotClose {
                account_id: id,
                reason: "its balance is not zero",
            }));
        }
    }
    let statement = tx
        .prepare_cached("UPDATE accounts SET status = $2, debits_frozen = $3, credits_frozen = $4 WHERE id = $1")
        .await?;
    tx.execute(
        &statement,
        &[
            &id.as_uuid(),
            &status.as_str(),
            &debits_frozen,
            &credits_frozen,
        ],
    )
    .await?;
    Ok(())
}
