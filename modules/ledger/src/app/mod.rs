//! The ledger's use cases and transaction boundaries. Writes of entries go through one
//! batcher per process (group commit): requests that arrive together are decided and
//! written in one SERIALIZABLE transaction, each with its own outcome.

pub mod accounts;
mod batcher;
mod reads;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use corebank_db::{Db, DbError, TxError};
use corebank_kernel::{AccountId, Clock, JournalEntryId};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use accounts::NewAccount;
pub use reads::{StatementLine, StatementPage, TrialBalanceReport, VerifyReport};

use crate::domain::command::Command;
use crate::domain::error::LedgerError;
use crate::domain::model::{Account, AccountStatus, BalanceLimit, Balances, Entry, HoldStatus};

/// Limits of the write path. Every queue and batch is bounded.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Commands decided in one database transaction, at most.
    pub batch_size_max: usize,
    /// Commands waiting for the batcher, at most; callers wait for room beyond that.
    pub queue_depth_max: usize,
    /// How often the expirer looks for holds past their timeout.
    pub expire_interval_ms: u64,
    /// Holds expired per pass, at most.
    pub expire_batch_max: i64,
    /// How long the supervisor waits before restarting a batcher that panicked.
    pub batcher_restart_backoff_ms: u64,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            batch_size_max: 1_024,
            queue_depth_max: 16_384,
            expire_interval_ms: 1_000,
            expire_batch_max: 256,
            batcher_restart_backoff_ms: 200,
        }
    }
}

/// An entry as a caller sees it: the stored entry, its hold's state (for pending entries),
/// and whether this answer is a replay of an earlier request with the same id.
#[derive(Debug, Clone, PartialEq)]
pub struct EntryView {
    pub entry: Entry,
    pub hold: Option<(HoldStatus, Option<DateTime<Utc>>)>,
    pub replayed: bool,
}

/// An account with its current balances.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountView {
    pub account: Account,
    pub balances: Balances,
    pub replayed: bool,
}

type Reply = oneshot::Sender<Result<EntryView, LedgerError>>;

struct Job {
    command: Command,
    reply: Reply,
}

/// The ledger service. Cheap to clone; the batcher and the expirer stop with the token given
/// to [`Ledger::start`].
#[derive(Clone)]
pub struct Ledger {
    db: Db,
    clock: Arc<dyn Clock>,
    jobs: mpsc::Sender<Job>,
    batcher: Arc<batcher::BatcherState>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("db", &self.db).finish()
    }
}

/// Maps a failed transaction to what callers are told.
pub(crate) fn from_tx_error(error: TxError<LedgerError>) -> LedgerError {
    match error {
        TxError::Abort(error) => error,
        TxError::Db(DbError::OutcomeUnknown { .. }) => LedgerError::OutcomeUnknown,
        TxError::Db(error) => {
            tracing::error!(
                error = %error,
                code = error.code(),
                sqlstate = error.sql_state().map(|s| s.code()),
                detail = ?std::error::Error::source(&error),
                "ledger transaction failed"
            );
            if error.is_retry_safe() {
                LedgerError::Unavailable {
                    message: error.code().to_owned(),
                }
            } else {
                LedgerError::Internal {
                    message: error.code().to_owned(),
                }
            }
        }
    }
}

impl Ledger {
    /// Starts the batcher and the hold expirer.
    pub fn start(
        db: Db,
        clock: Arc<dyn Clock>,
        config: LedgerConfig,
        shutdown: CancellationToken,
    ) -> Ledger {
        let (jobs, queue) = mpsc::channel(config.queue_depth_max);
        let state = Arc::new(batcher::BatcherState::new(shutdown.clone()));
        let ledger = Ledger {
            db: db.clone(),
            clock: Arc::clone(&clock),
            jobs,
            batcher: Arc::clone(&state),
        };
        batcher::spawn(
            batcher::BatcherSetup {
                db,
                clock,
                batch_size_max: config.batch_size_max,
                restart_backoff: std::time::Duration::from_millis(
                    config.batcher_restart_backoff_ms,
                ),
                state,
            },
            queue,
        );
        tokio::spawn(batcher::expire_loop(ledger.clone(), config, shutdown));
        ledger
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Ready while the batcher runs: down from a panic until its restart.
    pub fn readiness(&self) -> corebank_service::ReadinessCheck {
        let state = Arc::clone(&self.batcher);
        corebank_service::ReadinessCheck::new("ledger_batcher", move || {
            let alive = state.is_alive();
            async move {
                if alive {
                    Ok(())
                } else {
                    Err("restarting".to_owned())
                }
            }
        })
    }

    /// How often the batcher was restarted since this process started.
    pub fn batcher_restarts(&self) -> u64 {
        self.batcher.restarts()
    }

    /// Fault injection for tests (feature `fault-injection`, never in a shipped build): the
    /// batcher panics when it next takes a batch, with that batch's requests in hand.
    #[cfg(feature = "fault-injection")]
    pub fn inject_batcher_panic(&self) {
        self.batcher
            .panic_next_batch
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Writes one entry (or resolves a hold, or reverses an entry).
    pub async fn submit(&self, command: Command) -> Result<EntryView, LedgerError> {
        command.validate()?;
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { command, reply })
            .await
            .map_err(|_| LedgerError::Unavailable {
                message: "the ledger is shutting down".to_owned(),
            })?;
        answer.await.unwrap_or_else(|_| Err(self.batcher.dropped()))
    }

    /// Writes several entries: they join the same batch where they can, and each has its
    /// own outcome, in order.
    pub async fn submit_many(&self, commands: Vec<Command>) -> Vec<Result<EntryView, LedgerError>> {
        let mut answers = Vec::with_capacity(commands.len());
        for command in commands {
            if let Err(error) = command.validate() {
                answers.push(Err(error));
                continue;
            }
            let (reply, answer) = oneshot::channel();
            if self.jobs.send(Job { command, reply }).await.is_err() {
                answers.push(Err(LedgerError::Unavailable {
                    message: "the ledger is shutting down".to_owned(),
                }));
                continue;
            }
            answers.push(Ok(answer));
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Ok(answer) => answer.await.unwrap_or_else(|_| Err(self.batcher.dropped())),
                Err(error) => Err(error),
            });
        }
        results
    }

    /// Opens accounts; each has its own outcome.
    pub async fn create_accounts(
        &self,
        requests: Vec<NewAccount>,
    ) -> Result<Vec<Result<AccountView, LedgerError>>, LedgerError> {
        let now = self.clock.now();
        let requests = &requests;
        let outcomes = self
            .db
            .run_tx("ledger_create_accounts", |tx| {
                Box::pin(async move { accounts::create(&tx, requests, now).await })
            })
            .await
            .map_err(from_tx_error)?;
        Ok(outcomes
            .into_iter()
            .map(|outcome| {
                outcome.map(|(account, replayed)| AccountView {
                    account,
                    balances: Balances::default(),
                    replayed,
                })
            })
            .collect())
    }

    pub async fn account(&self, id: AccountId) -> Result<AccountView, LedgerError> {
        reads::account(&self.db, id).await
    }

    /// Several accounts with their balances, in the order of `ids` (an id asked twice is
    /// answered twice), from one snapshot.
    pub async fn accounts(&self, ids: &[AccountId]) -> Result<Vec<AccountView>, LedgerError> {
        reads::accounts(&self.db, ids).await
    }

    pub async fn set_limit(
        &self,
        id: AccountId,
        limit: BalanceLimit,
    ) -> Result<AccountView, LedgerError> {
        self.db
            .run_tx("ledger_set_limit", |tx| {
                Box::pin(async move { accounts::set_limit(&tx, id, limit).await })
            })
            .await
            .map_err(from_tx_error)?;
        self.account(id).await
    }

    pub async fn set_status(
        &self,
        id: AccountId,
        status: AccountStatus,
        debits_frozen: bool,
        credits_frozen: bool,
    ) -> Result<AccountView, LedgerError> {
        self.db
            .run_tx("ledger_set_status", |tx| {
                Box::pin(async move {
                    accounts::set_status(&tx, id, status, debits_frozen, credits_frozen).await
                })
            })
            .await
            .map_err(from_tx_error)?;
        self.account(id).await
    }

    pub async fn entry(&self, id: JournalEntryId) -> Result<EntryView, LedgerError> {
        reads::entry(&self.db, id).await
    }

    pub async fn entry_by_external_ref(
        &self,
        external_ref: &str,
    ) -> Result<EntryView, LedgerError> {
        reads::entry_by_external_ref(&self.db, external_ref).await
    }

    pub async fn balances_as_of_time(
        &self,
        id: AccountId,
        at: DateTime<Utc>,
    ) -> Result<(Account, Balances), LedgerError> {
        reads::balances_as_of(&self.db, id, reads::AsOf::RecordTime(at)).await
    }

    pub async fn balances_as_of_value_date(
        &self,
        id: AccountId,
        date: chrono::NaiveDate,
    ) -> Result<(Account, Balances), LedgerError> {
        reads::balances_as_of(&self.db, id, reads::AsOf::ValueDate(date)).await
    }

    pub async fn statement(
        &self,
        id: AccountId,
        cursor: Option<&str>,
        page_size: u32,
    ) -> Result<StatementPage, LedgerError> {
        reads::statement(&self.db, id, cursor, page_size).await
    }

    pub async fn trial_balance(
        &self,
        at: Option<DateTime<Utc>>,
    ) -> Result<TrialBalanceReport, LedgerError> {
        reads::trial_balance(&self.db, at.unwrap_or_else(|| self.clock.now())).await
    }

    pub async fn verify(&self) -> Result<VerifyReport, LedgerError> {
        reads::verify(&self.db).await
    }

    /// Expires every hold past its timeout now, instead of waiting for the expirer's next
    /// pass; returns how many it expired.
    pub async fn expire_due(&self, limit: i64) -> Result<usize, LedgerError> {
        batcher::expire_due(self, limit).await
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
