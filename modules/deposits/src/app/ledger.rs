//! The ledger, through its gRPC contract: the deposits module never reads the ledger's
//! schema. Every entry id is derived from a request id (or an accrual day), so repeating a
//! call writes nothing new.

use corebank_api::ledger::v1 as pb;
use corebank_kernel::{Currency, Money};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::{BalancesView, Deposits, StatementLineView, StatementView, money_text};
use crate::domain::error::DepositsError;
use crate::domain::model::{Account, HoldStatus, Product, entry_id_for};
use crate::store;

/// A ledger refusal or failure as a deposits error.
pub(crate) fn from_status(status: &tonic::Status) -> DepositsError {
    let code = corebank_service::contract::error_code(status);
    from_failure(&code, status.message(), status.code())
}

pub(crate) fn from_failure(code: &str, message: &str, grpc: tonic::Code) -> DepositsError {
    match (code, grpc) {
        ("limit_exceeded", _) => DepositsError::InsufficientFunds {
            account_id: String::new(),
            available: message.to_owned(),
        },
        // The ledger cannot tell whether it wrote the entry: to the caller this is a failure
        // to retry with the same request id (which replays or completes it), never a
        // definite refusal that an idempotency store would keep as the answer.
        ("outcome_unknown", _) => DepositsError::Unavailable {
            message: format!(
                "the ledger cannot tell whether it wrote the entry ({message}); send the same \
                 request again with the same request id"
            ),
        },
        (_, tonic::Code::Unavailable | tonic::Code::DeadlineExceeded) | ("unavailable", _) => {
            DepositsError::Unavailable {
                message: format!("the ledger: {message}"),
            }
        }
        ("", _) => DepositsError::Internal {
            message: format!("the ledger answered {grpc:?}: {message}"),
        },
        (code, _) => DepositsError::Ledger {
            code: code.to_owned(),
            message: message.to_owned(),
        },
    }
}

/// A refusal the ledger answered inside its result (an entry's, or a batch item's) rather
/// than as a status: a definite one, like a failed precondition.
pub(crate) fn from_refusal(failure: &pb::Failure) -> DepositsError {
    from_failure(
        &failure.code,
        &failure.message,
        tonic::Code::FailedPrecondition,
    )
}

/// Whether the ledger wrote the entry: its refusal, or a missing answer, as the module's
/// error.
fn entry_written(
    answer: Result<tonic::Response<pb::EntryResult>, tonic::Status>,
) -> Result<(), DepositsError> {
    let result = answer.map_err(|s| from_status(&s))?.into_inner();
    match result.outcome {
        Some(pb::entry_result::Outcome::Entry(_)) => Ok(()),
        Some(pb::entry_result::Outcome::Failure(failure)) => Err(from_refusal(&failure)),
        None => Err(DepositsError::Internal {
            message: "the ledger answered nothing".to_owned(),
        }),
    }
}

fn parse_amount(text: &str) -> Result<Decimal, DepositsError> {
    text.parse().map_err(|_| DepositsError::Internal {
        message: format!("the ledger sent the amount {text:?}"),
    })
}

/// The ledger account type and code prefix of each role of the bank's own accounts.
fn gl_role(role: &str) -> (pb::AccountType, &'static str) {
    match role {
        "cash" => (pb::AccountType::Asset, "cash"),
        "clearing" => (pb::AccountType::Asset, "clearing"),
        "interest_expense" => (pb::AccountType::Expense, "interest_expense"),
        "overdraft_interest_income" => (pb::AccountType::Income, "overdraft_interest_income"),
        // What the other core owes for accounts moved here (ADR 0013): with the other
        // core's migration suspense account, it nets to zero.
        "migration_clearing" => (pb::AccountType::Asset, "migration_clearing"),
        // What the other core owes for cross-side transfers (ADR 0014): money received
        // from it less money sent to it. With the other core's inter-core clearing account,
        // it nets to zero once every transfer has settled.
        "inter_core_clearing" => (pb::AccountType::Asset, "inter_core_clearing"),
        _ => (pb::AccountType::Liability, "holds_suspense"),
    }
}

/// An account's balances from the ledger's view of its customer account and the posted
/// balance of the account its interest accrues on.
fn balances_view(
    account: &Account,
    customer: &pb::Account,
    accrued_posted: &str,
) -> Result<BalancesView, DepositsError> {
    let balance = customer.balance.clone().unwrap_or_default();
    let allowance = customer
        .limit
        .as_ref()
        .map(|l| l.limit_amount.as_str())
        .filter(|a| !a.is_empty())
        .map(parse_amount)
        .transpose()?
        .unwrap_or_default();
    let available = parse_amount(&balance.available)? + allowance;
    Ok(BalancesView {
        posted: money_text(parse_amount(&balance.posted)?, account.currency),
        held: money_text(parse_amount(&balance.debits_pending)?, account.currency),
        available: money_text(available, account.currency),
        accrued_interest: money_text(parse_amount(accrued_posted)?, account.currency),
    })
}

/// The ledger accounts of a deposit account: the customer's (its limit: the overdraft, or
/// the minimum balance as a floor) and the one interest accrues on.
pub(crate) fn ledger_accounts_of(
    account: &Account,
    product: &Product,
) -> [pb::CreateAccountRequest; 2] {
    let currency = account.currency.code().to_owned();
    let limit = product.ledger_limit_amount();
    let mut limit_amount = limit.round_dp(account.currency.minor_units());
    limit_amount.rescale(account.currency.minor_units());
    let make = |id: Uuid, code: String, limit: Option<pb::BalanceLimit>| pb::CreateAccountRequest {
        id: id.to_string(),
        code,
        name: format!("Deposit account {} ({})", account.id, account.customer_id),
        currency: currency.clone(),
        r#type: pb::AccountType::Liability.into(),
        limit,
        external_ref: account.id.to_string(),
        metadata: [("customer_id".to_owned(), account.customer_id.clone())].into(),
        balance_shards: 1,
    };
    [
        make(
            account.ledger_account_id,
            format!("deposits.account.{}", account.id),
            Some(pb::BalanceLimit {
                kind: pb::LimitKind::DebitsMustNotExceedCredits.into(),
                limit_amount: limit_amount.to_string(),
            }),
        ),
        make(
            account.accrued_account_id,
            format!("deposits.accrued.{}", account.id),
            Some(pb::BalanceLimit {
                kind: pb::LimitKind::None.into(),
                limit_amount: String::new(),
            }),
        ),
    ]
}

impl Deposits {
    /// The bank's ledger account for (currency, role), opened on first use.
    pub(crate) async fn gl_account(
        &self,
        currency: Currency,
        role: &'static str,
    ) -> Result<Uuid, DepositsError> {
        if let Some(id) = self
            .gl
            .lock()
            .ok()
            .and_then(|known| known.get(&(currency, role)).copied())
        {
            return Ok(id);
        }
        let stored = self
            .in_tx("deposits_gl_account", |tx| {
                Box::pin(async move { store::gl_account(&tx, currency, role).await })
            })
            .await?;
        let id = match stored {
            Some(id) => id,
            None => {
                let id = entry_id_for(&format!("gl-{role}"), Uuid::nil());
                let id = entry_id_for(currency.code(), id);
                let (account_type, code) = gl_role(role);
                let request = pb::CreateAccountRequest {
                    id: id.to_string(),
                    code: format!("deposits.{code}.{}", currency.code()),
                    name: format!("Deposits {code} {}", currency.code()),
                    currency: currency.code().to_owned(),
                    r#type: account_type.into(),
                    limit: Some(pb::BalanceLimit {
                        kind: pb::LimitKind::None.into(),
                        limit_amount: String::new(),
                    }),
                    external_ref: String::new(),
                    metadata: Default::default(),
                    balance_shards: 8,
                };
                self.create_ledger_accounts(vec![request]).await?;
                self.in_tx("deposits_gl_account_insert", |tx| {
                    Box::pin(async move { store::insert_gl_account(&tx, currency, role, id).await })
                })
                .await?;
                id
            }
        };
        if let Ok(mut known) = self.gl.lock() {
            known.insert((currency, role), id);
        }
        Ok(id)
    }

    async fn create_ledger_accounts(
        &self,
        accounts: Vec<pb::CreateAccountRequest>,
    ) -> Result<(), DepositsError> {
        let response = self
            .ledger
            .clone()
            .create_accounts(pb::CreateAccountsRequest { accounts })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        for result in response.results {
            if let Some(pb::account_result::Outcome::Failure(failure)) = result.outcome {
                return Err(from_refusal(&failure));
            }
        }
        Ok(())
    }

    /// The customer's ledger account (its limit: the overdraft, or the minimum balance as a
    /// floor) and the one interest accrues on.
    pub(crate) async fn open_ledger_accounts(
        &self,
        account: &Account,
        product: &Product,
    ) -> Result<(), DepositsError> {
        self.create_ledger_accounts(ledger_accounts_of(account, product).to_vec())
            .await
    }

    /// One two-leg entry. A limit refusal names the account.
    #[allow(clippy::too_many_arguments, reason = "an entry's every field, once")]
    pub(crate) async fn ledger_transfer(
        &self,
        id: Uuid,
        debit: Uuid,
        credit: Uuid,
        money: Money,
        description: &str,
        account: &Account,
        pending: bool,
        timeout_seconds: u32,
    ) -> Result<(), DepositsError> {
        self.ledger_entry(
            id,
            debit,
            credit,
            money,
            description,
            None,
            pending,
            timeout_seconds,
        )
        .await
        .map_err(|error| match error {
            DepositsError::InsufficientFunds { available, .. } => {
                DepositsError::InsufficientFunds {
                    account_id: account.id.to_string(),
                    available,
                }
            }
            other => other,
        })
    }

    #[allow(clippy::too_many_arguments, reason = "an entry's every field, once")]
    pub(crate) async fn ledger_entry(
        &self,
        id: Uuid,
        debit: Uuid,
        credit: Uuid,
        money: Money,
        description: &str,
        value_date: Option<chrono::NaiveDate>,
        pending: bool,
        timeout_seconds: u32,
    ) -> Result<(), DepositsError> {
        let request = pb::CreateTransferRequest {
            id: id.to_string(),
            debit_account_id: debit.to_string(),
            credit_account_id: credit.to_string(),
            amount: money.amount_string(),
            currency: money.currency().code().to_owned(),
            value_date: value_date.map(|d| d.to_string()).unwrap_or_default(),
            description: description.to_owned(),
            external_ref: String::new(),
            metadata: Default::default(),
            pending,
            timeout_seconds,
        };
        let answer = self.ledger.clone().create_transfer(request).await;
        entry_written(answer)
    }

    /// A charge the bank makes to a customer's account (overdraft interest): posted even
    /// when it takes the account past its overdraft limit, with the ledger's explicit flag
    /// `bank_charge_may_exceed_limit`, which the ledger records with the entry (ADR 0010).
    /// The customer's own movements never use it.
    pub(crate) async fn ledger_bank_charge(
        &self,
        id: Uuid,
        customer: Uuid,
        bank: Uuid,
        money: Money,
        description: &str,
        value_date: chrono::NaiveDate,
    ) -> Result<(), DepositsError> {
        let leg = |account: Uuid, direction: pb::Direction| pb::Leg {
            account_id: account.to_string(),
            direction: direction.into(),
            amount: money.amount_string(),
            currency: money.currency().code().to_owned(),
            bucket: String::new(),
        };
        let answer = self
            .ledger
            .clone()
            .post_entry(pb::PostEntryRequest {
                id: id.to_string(),
                legs: vec![
                    leg(customer, pb::Direction::Debit),
                    leg(bank, pb::Direction::Credit),
                ],
                value_date: value_date.to_string(),
                description: description.to_owned(),
                external_ref: String::new(),
                metadata: Default::default(),
                pending: false,
                timeout_seconds: 0,
                bank_charge_may_exceed_limit: true,
            })
            .await;
        entry_written(answer)
    }

    /// Voids a hold's pending entry: released, or expired if its time ran out first.
    pub(crate) async fn ledger_void(
        &self,
        id: Uuid,
        pending: Uuid,
    ) -> Result<HoldStatus, DepositsError> {
        let answer = self
            .ledger
            .clone()
            .void_pending(pb::VoidPendingRequest {
                id: id.to_string(),
                pending_entry_id: pending.to_string(),
                description: "hold released".to_owned(),
            })
            .await;
        match answer {
            Ok(response) => match response.into_inner().outcome {
                Some(pb::entry_result::Outcome::Failure(failure)) => match failure.code.as_str() {
                    "pending_expired" => Ok(HoldStatus::Expired),
                    _ => Err(from_refusal(&failure)),
                },
                _ => Ok(HoldStatus::Released),
            },
            Err(status) => match from_status(&status) {
                DepositsError::Ledger { code, .. } if code == "pending_expired" => {
                    Ok(HoldStatus::Expired)
                }
                other => Err(other),
            },
        }
    }

    /// Posts a hold's pending entry in full.
    pub(crate) async fn ledger_post_pending(
        &self,
        id: Uuid,
        pending: Uuid,
    ) -> Result<(), DepositsError> {
        let result = self
            .ledger
            .clone()
            .post_pending(pb::PostPendingRequest {
                id: id.to_string(),
                pending_entry_id: pending.to_string(),
                amount: String::new(),
                description: "hold captured".to_owned(),
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        match result.outcome {
            Some(pb::entry_result::Outcome::Failure(failure)) => Err(from_refusal(&failure)),
            _ => Ok(()),
        }
    }

    /// The ledger's entry `id`, or `None` when the ledger has none (`unknown_entry`).
    pub(crate) async fn ledger_entry_of(
        &self,
        id: Uuid,
    ) -> Result<Option<pb::Entry>, DepositsError> {
        let found = self
            .ledger
            .clone()
            .get_entry(pb::GetEntryRequest {
                key: Some(pb::get_entry_request::Key::EntryId(id.to_string())),
            })
            .await;
        match found {
            Ok(entry) => Ok(Some(entry.into_inner())),
            Err(status) => match from_status(&status) {
                DepositsError::Ledger { code, .. } if code == "unknown_entry" => Ok(None),
                other => Err(other),
            },
        }
    }

    /// The ledger's view of a hold.
    pub(crate) async fn ledger_hold_status(
        &self,
        pending: Uuid,
    ) -> Result<HoldStatus, DepositsError> {
        let entry = self
            .ledger
            .clone()
            .get_entry(pb::GetEntryRequest {
                key: Some(pb::get_entry_request::Key::EntryId(pending.to_string())),
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok(match pb::HoldStatus::try_from(entry.hold_status) {
            Ok(pb::HoldStatus::Posted) => HoldStatus::Captured,
            Ok(pb::HoldStatus::Voided) => HoldStatus::Released,
            Ok(pb::HoldStatus::Expired) => HoldStatus::Expired,
            _ => HoldStatus::Held,
        })
    }

    /// Balances from the ledger: the customer's account and the interest accrued on it.
    pub(crate) async fn balances(&self, account: &Account) -> Result<BalancesView, DepositsError> {
        self.balances_of_all(&[account])
            .await?
            .pop()
            .ok_or_else(|| DepositsError::Internal {
                message: "the ledger answered no balances".to_owned(),
            })
    }

    /// The balances of several accounts, in order, from one read of the ledger.
    pub(crate) async fn balances_of_all(
        &self,
        accounts: &[&Account],
    ) -> Result<Vec<BalancesView>, DepositsError> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let account_ids = accounts
            .iter()
            .flat_map(|account| {
                [
                    account.ledger_account_id.to_string(),
                    account.accrued_account_id.to_string(),
                ]
            })
            .collect();
        let read = self
            .ledger
            .clone()
            .get_accounts(pb::GetAccountsRequest { account_ids })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner()
            .accounts;
        if read.len() != accounts.len() * 2 {
            return Err(DepositsError::Internal {
                message: format!(
                    "the ledger answered {} of {} accounts",
                    read.len(),
                    accounts.len() * 2
                ),
            });
        }
        accounts
            .iter()
            .zip(read.chunks_exact(2))
            .map(|(account, pair)| {
                let accrued = pair[1].balance.clone().unwrap_or_default();
                balances_view(account, &pair[0], &accrued.posted)
            })
            .collect()
    }

    /// The posted balance of a ledger account as of the end of a value date.
    pub(crate) async fn balance_on(
        &self,
        ledger_account: Uuid,
        day: chrono::NaiveDate,
    ) -> Result<Decimal, DepositsError> {
        let balance = self
            .ledger
            .clone()
            .get_balance(pb::GetBalanceRequest {
                account_id: ledger_account.to_string(),
                as_of: Some(pb::get_balance_request::AsOf::ValueDate(day.to_string())),
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        parse_amount(&balance.posted)
    }

    pub(crate) async fn ledger_statement(
        &self,
        account: &Account,
        cursor: &str,
        page_size: u32,
    ) -> Result<StatementView, DepositsError> {
        let statement = self
            .ledger
            .clone()
            .get_statement(pb::GetStatementRequest {
                account_id: account.ledger_account_id.to_string(),
                cursor: cursor.to_owned(),
                page_size,
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        Ok(StatementView {
            account_id: account.id,
            currency: account.currency.code().to_owned(),
            lines: statement
                .lines
                .into_iter()
                .map(|line| StatementLineView {
                    entry_id: line.entry_id,
                    recorded_at: line.recorded_at,
                    value_date: line.value_date,
                    direction: match pb::Direction::try_from(line.direction) {
                        Ok(pb::Direction::Debit) => "debit".to_owned(),
                        _ => "credit".to_owned(),
                    },
                    bucket: line.bucket,
                    amount: line.amount,
                    description: line.description,
                    running_balance: line.running_balance,
                })
                .collect(),
            next_cursor: statement.next_cursor,
        })
    }

    /// Sets the freeze of the customer's ledger account (debits and credits). A ledger
    /// account already closed is left as it is: freezing never reopens it.
    pub(crate) async fn ledger_set_frozen(
        &self,
        account: &Account,
        frozen: bool,
    ) -> Result<(), DepositsError> {
        let mut ledger = self.ledger.clone();
        let current = ledger
            .get_account(pb::GetAccountRequest {
                account_id: account.ledger_account_id.to_string(),
            })
            .await
            .map_err(|s| from_status(&s))?
            .into_inner();
        if current.status == i32::from(pb::AccountStatus::Closed) {
            return Err(DepositsError::AccountClosed {
                account_id: account.id.to_string(),
            });
        }
        if current.debits_frozen == frozen && current.credits_frozen == frozen {
            return Ok(());
        }
        ledger
            .set_account_status(pb::SetAccountStatusRequest {
                account_id: account.ledger_account_id.to_string(),
                status: pb::AccountStatus::Open.into(),
                debits_frozen: frozen,
                credits_frozen: frozen,
            })
            .await
            .map_err(|s| from_status(&s))?;
        Ok(())
    }

    /// Sets the customer's ledger limit: `amount` for the product's own, or zero to lift a
    /// minimum balance before the account is emptied.
    pub(crate) async fn ledger_set_limit(
        &self,
        account: &Account,
        amount: Decimal,
    ) -> Result<(), DepositsError> {
        self.ledger
            .clone()
            .set_balance_limit(pb::SetBalanceLimitRequest {
                account_id: account.ledger_account_id.to_string(),
                limit: Some(pb::BalanceLimit {
                    kind: pb::LimitKind::DebitsMustNotExceedCredits.into(),
                    limit_amount: money_text(amount, account.currency),
                }),
            })
            .await
            .map_err(|s| from_status(&s))?;
        Ok(())
    }

    /// Sweeps the whole posted balance of the (frozen) customer's ledger account to the
    /// bank's cash in one ledger entry whose amount the ledger decides inside its own
    /// transaction: the amount paid out. The entry id derives from the account, so every
    /// attempt at closing it writes the same entry once (a retry replays the amount).
    /// `Ok(None)` when the ledger refused: `nothing_to_sweep` with a zero balance is
    /// `Ok(Some(0))`; what else it refused is returned as the ledger's code.
    pub(crate) async fn ledger_sweep(
        &self,
        account: &Account,
        payout: &super::closing::Payout,
    ) -> Result<Result<Decimal, String>, DepositsError> {
        let target = self.gl_account(account.currency, payout.role).await?;
        let answer = self
            .ledger
            .clone()
            .sweep_account(pb::SweepAccountRequest {
                id: entry_id_for(payout.sweep, account.id).to_string(),
                source_account_id: account.ledger_account_id.to_string(),
                target_account_id: target.to_string(),
                description: payout.description.to_owned(),
                external_ref: String::new(),
            })
            .await;
        let refused = match answer {
            Ok(result) => match result.into_inner().outcome {
                Some(pb::entry_result::Outcome::Entry(entry)) => {
                    let amount = entry
                        .legs
                        .first()
                        .map(|leg| parse_amount(&leg.amount))
                        .transpose()?
                        .unwrap_or_default();
                    return Ok(Ok(amount));
                }
                Some(pb::entry_result::Outcome::Failure(failure)) => failure.code,
                None => {
                    return Err(DepositsError::Internal {
                        message: "the ledger answered nothing".to_owned(),
                    });
                }
            },
            Err(status) => match from_status(&status) {
                DepositsError::Ledger { code, .. } => code,
                other => return Err(other),
            },
        };
        if refused == "nothing_to_sweep"
            && parse_amount(&self.balances(account).await?.posted)?.is_zero()
        {
            return Ok(Ok(Decimal::ZERO));
        }
        Ok(Err(refused))
    }

    /// Closes both ledger accounts of a deposit account (emptied first).
    pub(crate) async fn ledger_close_accounts(
        &self,
        account: &Account,
    ) -> Result<(), DepositsError> {
        let mut ledger = self.ledger.clone();
        for id in [account.ledger_account_id, account.accrued_account_id] {
            ledger
                .set_account_status(pb::SetAccountStatusRequest {
                    account_id: id.to_string(),
                    status: pb::AccountStatus::Closed.into(),
                    debits_frozen: false,
                    credits_frozen: false,
                })
                .await
                .map_err(|s| from_status(&s))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_ledger_outcome_is_retry_safe_and_a_refusal_is_not() {
        let unknown = from_failure("outcome_unknown", "connection lost", tonic::Code::Unknown);
        assert!(
            matches!(unknown, DepositsError::Unavailable { .. }),
            "{unknown:?}"
        );
        assert!(super::super::recovery::outcome_unknown(&unknown));
        let refused = from_failure("account_frozen", "frozen", tonic::Code::FailedPrecondition);
        assert!(
            matches!(refused, DepositsError::Ledger { .. }),
            "{refused:?}"
        );
    }
}
