//! The deposits use cases. Money moves in the ledger (over its gRPC contract, with entry ids
//! derived from the request ids, so a retried request writes the same entry once); this
//! module's own schema keeps products, accounts, holds, the accrual position, the answers to
//! requests (idempotency) and the events (outbox), each change in one transaction.
//!
//! A mutating request is: replay check → ledger call (idempotent) → one local transaction
//! that records the answer, the local change and its event. If the process dies between the
//! ledger call and the local transaction, the client's retry with the same request id
//! finds the ledger entry already there (replayed) and completes the local part.

mod accounts;
mod accrual;
mod cash;
mod closing;
mod holds;
mod import;
mod ledger;
mod products;
mod recovery;
mod scheduled;
mod status;
mod transfers;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use corebank_api::ledger::v1::ledger_client::LedgerClient;
use corebank_db::{Db, Tx, TxError, TxFuture};
use corebank_kernel::{Clock, Currency, Money};
use corebank_outbox::{AggregateRef, NewEvent, Outbox, SchemaName};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use tonic::transport::Channel;
use uuid::Uuid;

pub use accounts::{AccountView, BalancesView, StatementLineView, StatementView};
pub use accrual::AccrualReport;
pub use cash::MovementView;
pub use holds::HoldView;
pub use import::{
    AccountToImport, ClearingView, ExportView, ExportedHoldView, HoldToImport, IMPORT_ACCOUNTS_MAX,
    IMPORT_HOLDS_MAX, ImportView, ImportedHoldView,
};
pub use products::NewProduct;
pub use transfers::TransferView;

use crate::domain::error::DepositsError;
use crate::domain::model::{Account, AccountStatus, Hold, HoldStatus, Product};
use crate::store;

/// The aggregate type of deposit accounts' events.
pub const ACCOUNT_AGGREGATE: &str = "deposit_account";

/// A local change made together with a request's answer and event.
enum Change {
    InsertAccount(Box<Account>),
    Touch(Uuid),
    InsertHold(Hold),
    HoldStatus(Uuid, HoldStatus),
    /// Account, the status the caller saw, the new status, when it closed: refused with
    /// `account_status_changed` when the account is no longer in the status seen.
    Status(Uuid, AccountStatus, AccountStatus, Option<DateTime<Utc>>),
}

/// The deposits module.
#[derive(Clone)]
pub struct Deposits {
    db: Db,
    ledger: LedgerClient<Channel>,
    outbox: Outbox,
    clock: Arc<dyn Clock>,
    gl: Arc<Mutex<HashMap<(Currency, &'static str), Uuid>>>,
    /// Product versions never change once written, so they are kept once read.
    product_versions: Arc<Mutex<HashMap<(String, i64), Product>>>,
    /// How old an unanswered request must be before the job settles it (`recovery`).
    in_doubt_window: chrono::TimeDelta,
    /// Business days start at midnight here (`COREBANK_BUSINESS_TZ`).
    business_tz: chrono_tz::Tz,
}

impl std::fmt::Debug for Deposits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deposits").finish_non_exhaustive()
    }
}

pub(crate) fn money_text(amount: Decimal, currency: Currency) -> String {
    let mut rounded = amount.round_dp(currency.minor_units());
    rounded.rescale(currency.minor_units());
    rounded.to_string()
}

fn parse_money(field: &str, amount: &str, currency: Currency) -> Result<Money, DepositsError> {
    Money::parse(amount, currency).map_err(|e| DepositsError::invalid(field, e.to_string()))
}

/// `amount` in `currency`, which must be more than zero.
fn positive_money(amount: &str, currency: Currency) -> Result<Money, DepositsError> {
    let money = parse_money("amount", amount, currency)?;
    if money.amount() <= Decimal::ZERO {
        return Err(DepositsError::invalid("amount", "must be more than zero"));
    }
    Ok(money)
}

/// `amount` in `currency`, which must be the currency of `account`, and more than zero.
fn money_of(account: &Account, amount: &str, currency: &str) -> Result<Money, DepositsError> {
    if parse_currency(currency)? != account.currency {
        return Err(DepositsError::CurrencyMismatch {
            expected: account.currency.code().to_owned(),
            got: currency.to_owned(),
        });
    }
    positive_money(amount, account.currency)
}

fn parse_currency(code: &str) -> Result<Currency, DepositsError> {
    Currency::from_code(code).map_err(|e| DepositsError::invalid("currency", e.to_string()))
}

fn parse_id(field: &str, id: &str) -> Result<Uuid, DepositsError> {
    // The kernel's rule, as the legacy adapter applies it: a random (version 4) UUID.
    corebank_kernel::id::parse_v4("id", id)
        .map_err(|e| DepositsError::invalid(field, e.to_string()))
}

fn tx_error(error: TxError<DepositsError>) -> DepositsError {
    match error {
        TxError::Abort(error) => error,
        TxError::Db(error) => error.into(),
    }
}

impl Deposits {
    /// Runs `body` in a retried transaction named `name`, with the module's own error.
    async fn in_tx<'env, T, F>(&self, name: &'static str, body: F) -> Result<T, DepositsError>
    where
        F: for<'t> FnMut(Tx<'t, 'env>) -> TxFuture<'t, T, DepositsError> + Send + 'env,
        T: Send,
    {
        self.db.run_tx(name, body).await.map_err(tx_error)
    }
}

/// A request to record ([`Deposits::commit_all`]): its answer, local changes and events.
struct Commit<'a> {
    request_id: Uuid,
    kind: &'a str,
    content: &'a Value,
    answer: Value,
    changes: &'a [Change],
    events: &'a [NewEvent],
}

/// Whether `stored` is the request `request_id` made again: the same kind, the same content.
fn same_request(
    request_id: Uuid,
    stored: &store::StoredRequest,
    kind: &str,
    content: &Value,
) -> Result<(), DepositsError> {
    if stored.kind != kind {
        return Err(DepositsError::ExistsWithDifferent {
            request_id: request_id.to_string(),
            field: "kind".to_owned(),
        });
    }
    match first_difference(&stored.content, content) {
        Some(field) => Err(DepositsError::ExistsWithDifferent {
            request_id: request_id.to_string(),
            field,
        }),
        None => Ok(()),
    }
}

/// The first field of `stored` that `content` differs in.
fn first_difference(stored: &Value, content: &Value) -> Option<String> {
    let (Some(stored), Some(content)) = (stored.as_object(), content.as_object()) else {
        return (stored != content).then(|| "content".to_owned());
    };
    content
        .iter()
        .find(|(key, _)| !store::same_field(stored, content, key))
        .map(|(key, _)| key.clone())
        .or_else(|| {
            stored
                .keys()
                .find(|key| !content.contains_key(*key))
                .cloned()
        })
}

impl Deposits {
    pub fn new(
        db: Db,
        ledger: LedgerClient<Channel>,
        clock: Arc<dyn Clock>,
    ) -> Result<Deposits, DepositsError> {
        Ok(Deposits {
            db,
            ledger,
            outbox: Outbox::new(SchemaName::new("deposits")?),
            clock,
            gl: Arc::new(Mutex::new(HashMap::new())),
            product_versions: Arc::new(Mutex::new(HashMap::new())),
            in_doubt_window: chrono::TimeDelta::minutes(5),
            business_tz: chrono_tz::Tz::UTC,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    // ----- requests -----

    /// The stored answer to `request_id`, if it was made before with the same content.
    async fn replay(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
    ) -> Result<Option<Value>, DepositsError> {
        let stored = self
            .in_tx("deposits_replay", |tx| {
                Box::pin(async move { store::request(&tx, request_id).await })
            })
            .await?;
        stored
            .map(|stored| {
                same_request(request_id, &stored, kind, content).map(|()| stored.response)
            })
            .transpose()
    }

    /// Records the answer, the local changes and the events of a request in one
    /// transaction. When the request id was recorded meanwhile, the stored answer wins.
    async fn commit<T: Serialize + serde::de::DeserializeOwned>(
        &self,
        request_id: Uuid,
        kind: &str,
        content: &Value,
        answer: &T,
        changes: &[Change],
        events: &[NewEvent],
    ) -> Result<T, DepositsError> {
        let answer = serde_json::to_value(answer).map_err(|e| DepositsError::Internal {
            message: e.to_string(),
        })?;
        let request = Commit {
            request_id,
            kind,
            content,
            answer,
            changes,
            events,
        };
        let stored = self.commit_all(std::slice::from_ref(&request)).await?;
        let stored = stored.into_iter().next().unwrap_or(request.answer);
        serde_json::from_value(stored).map_err(|e| DepositsError::Internal {
            message: e.to_string(),
        })
    }

    /// Records several requests as [`Deposits::commit`] records one, all in one
    /// transaction; answers each request's stored answer, in order.
    async fn commit_all(&self, requests: &[Commit<'_>]) -> Result<Vec<Value>, DepositsError> {
        let now = self.now();
        let outbox = &self.outbox;
        self.in_tx("deposits_commit", |tx| {
            Box::pin(async move {
                let mut answers = Vec::with_capacity(requests.len());
                for request in requests {
                    let id = request.request_id;
                    store::forget_in_doubt(&tx, id).await?;
                    if !store::insert_request(
                        &tx,
                        id,
                        request.kind,
                        request.content,
                        &request.answer,
                        now,
                    )
                    .await?
                    {
                        let stored = store::request(&tx, id).await?;
                        answers.push(stored.map_or_else(|| request.answer.clone(), |s| s.response));
                        continue;
                    }
                    for change in request.changes {
                        match change {
                            Change::InsertAccount(account) => {
                                store::insert_account(&tx, account).await?;
                            }
                            Change::Touch(id) => store::touch(&tx, *id, now).await?,
                            Change::InsertHold(hold) => store::insert_hold(&tx, hold).await?,
                            Change::HoldStatus(id, status) => {
                                store::set_hold_status(&tx, *id, *status).await?;
                            }
                            Change::Status(id, from, to, closed_at) => {
                                if !store::change_status(&tx, *id, *from, *to, *closed_at).await? {
                                    return Err(TxError::Abort(status::changed(*id, *from)));
                                }
                            }
                        }
                    }
                    outbox.append::<DepositsError>(&tx, request.events).await?;
                    answers.push(request.answer.clone());
                }
                Ok(answers)
            })
        })
        .await
    }

    fn event(
        &self,
        account_id: Uuid,
        event_type: &str,
        payload: Value,
    ) -> Result<NewEvent, DepositsError> {
        Ok(NewEvent::new(
            AggregateRef::new(ACCOUNT_AGGREGATE, account_id.to_string())?,
            event_type,
            payload,
        )?)
    }
}
