//! Moving an account between the cores, as the gateway sees it (ADR 0013): the account
//! directory's move mark and switch of home, served on the internal listener to the
//! migration component (`corebank.gateway.v1.AccountHomes`), and the change feed that takes
//! each change to every replica's directory cache within one poll.
//!
//! The life of a move here: `BeginMove` marks the account (channel requests that would
//! change it are answered 503 `account_moving` with `Retry-After`, before their idempotency
//! key is taken); `SwitchHome` gives it its new home and its ids there; `EndMove` clears
//! the mark. Each writes a numbered row to `directory_changes` in the same transaction, and
//! every replica's [`spawn_change_feed`] drops the accounts it reads there from its cache.
//! `ChangeHomes` makes several of these changes (a chunk of moves at one step) in one
//! transaction, each done or refused on its own.

use std::time::Duration;

use chrono::{DateTime, Utc};
use corebank_api::gateway::v1 as pb;
use corebank_api::gateway::v1::account_homes_server::{AccountHomes, AccountHomesServer};
use corebank_db::tokio_postgres::Row;
use corebank_db::{DbError, Transaction, TxError};
use tokio_util::sync::CancellationToken;
use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use crate::directory::{AccountEntry, Directory, entry};
use crate::move_hold::HOLD_POLL;
use crate::routing::Side;

/// The seconds a channel is told to wait (`Retry-After`) before retrying a request on a
/// moving account.
pub const MOVING_RETRY_AFTER_S: u32 = 1;

/// The stable code of a request refused because an account it touches is moving, by the
/// gateway or by the core handing the account over.
pub const MOVING_CODE: &str = "account_moving";

/// How long the feed keeps a change: a replica that has not polled for this long drops its
/// whole cache rather than miss one.
pub const CHANGES_KEPT: Duration = Duration::from_secs(3_600);

/// Changes read per poll at most; the rest on the next.
const CHANGES_PER_POLL_MAX: i64 = 10_000;

/// Polls between two purges of old changes.
const POLLS_PER_PURGE: u64 = 600;

/// The most changes one `ChangeHomes` call takes.
const CHANGES_PER_CALL_MAX: usize = 1_000;

/// A move id is at most this long.
const MOVE_ID_LENGTH_MAX: usize = 200;

/// Why a directory change is refused, with its stable code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Unknown(String),
    #[error("{0}")]
    Moving(String),
    #[error("{0}")]
    NotMoving(String),
}

impl Refusal {
    /// The gRPC code and the stable code.
    fn codes(&self) -> (Code, &'static str) {
        match self {
            Refusal::Invalid(_) => (Code::InvalidArgument, "invalid_argument"),
            Refusal::Unknown(_) => (Code::NotFound, "unknown_account"),
            Refusal::Moving(_) => (Code::FailedPrecondition, MOVING_CODE),
            Refusal::NotMoving(_) => (Code::FailedPrecondition, "not_moving"),
        }
    }

    fn status(&self) -> Status {
        let (code, error_code) = self.codes();
        corebank_service::refusal::status_of("gateway", code, error_code, self, None)
    }
}

fn status_of(error: TxError<Refusal>) -> Status {
    match error {
        TxError::Abort(refusal) => refusal.status(),
        TxError::Db(DbError::Unavailable { message }) => corebank_service::refusal::status_of(
            "gateway",
            Code::Unavailable,
            "unavailable",
            &"the gateway's database is unavailable; retry",
            Some(&message),
        ),
        TxError::Db(other) => corebank_service::refusal::status_of(
            "gateway",
            Code::Internal,
            "internal",
            &"internal error",
            Some(&other.to_string()),
        ),
    }
}

fn account_id(text: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(text).map_err(|_| Refusal::Invalid(format!("account_id {text:?}: not a UUID")))
}

fn move_id(text: &str) -> Result<String, Refusal> {
    if text.is_empty()
        || text.chars().count() > MOVE_ID_LENGTH_MAX
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Refusal::Invalid(format!(
            "move_id: 1 to {MOVE_ID_LENGTH_MAX} characters without spaces"
        )));
    }
    Ok(text.to_owned())
}

fn side(field: &str, text: &str) -> Result<Side, Refusal> {
    Side::parse(text).ok_or_else(|| Refusal::Invalid(format!("{field}: legacy or modern")))
}

fn answer(row: &Row) -> pb::AccountHome {
    let account = entry(row);
    let moving_since: Option<DateTime<Utc>> = row.get("moving_since");
    let id = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    pb::AccountHome {
        account_id: account.account_id.to_string(),
        home: account.home.as_str().to_owned(),
        legacy_id: id(account.legacy_id),
        modern_id: id(account.modern_id),
        move_id: account.move_id.unwrap_or_default(),
        moving_since: moving_since
            .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default(),
    }
}

async fn account_row(tx: &Transaction<'_>, account_id: Uuid) -> Result<Row, TxError<Refusal>> {
    tx.query_opt(
        "SELECT * FROM accounts WHERE account_id = $1",
        &[&account_id],
    )
    .await?
    .ok_or_else(|| {
        TxError::Abort(Refusal::Unknown(format!(
            "the directory has no account {account_id}"
        )))
    })
}

/// Numbers a change to `account_id` in the feed: MAX + 1 in this SERIALIZABLE transaction,
/// so the numbers have no gaps and follow commit order.
async fn note_change(
    tx: &Transaction<'_>,
    account_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), TxError<Refusal>> {
    tx.execute(
        "INSERT INTO directory_changes (seq, account_id, changed_at) \
         SELECT COALESCE(MAX(seq), 0) + 1, $1, $2 FROM directory_changes",
        &[&account_id, &now],
    )
    .await?;
    Ok(())
}

/// `corebank.gateway.v1.AccountHomes` on this replica's directory.
#[derive(Debug, Clone)]
pub struct HomesService {
    directory: Directory,
    /// Changes take turns on this replica before their transaction: each one numbers itself
    /// after the last (`MAX(seq) + 1`), so concurrent ones would conflict and retry.
    turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// The service, to mount on the gateway's internal listener (for `migration` only).
pub fn service(directory: Directory) -> AccountHomesServer<HomesService> {
    AccountHomesServer::new(HomesService {
        directory,
        turn: std::sync::Arc::default(),
    })
}

/// What one call changes on the account's directory row.
#[derive(Debug)]
enum Change {
    /// Mark it moving by this move (recording it first when the gateway has not seen it).
    Begin {
        recorded: AccountEntry,
        move_id: String,
    },
    /// Give it this home, its id there and its holds' ids there.
    Switch {
        move_id: String,
        home: Side,
        id: Uuid,
        holds: Vec<(Uuid, Uuid)>,
    },
    /// Clear this move's mark.
    End { move_id: String },
    /// Nothing: read it.
    Read,
}

/// Applies `change` to the account's row; whether it changed anything.
async fn apply(
    tx: &Transaction<'_>,
    account: Uuid,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<bool, TxError<Refusal>> {
    match change {
        Change::Begin { recorded, move_id } => {
            // An account from before the gateway is recorded as the export has it.
            tx.execute(
                "INSERT INTO accounts (account_id, product_code, customer_id, currency, \
                 legacy_id, modern_id, home, opened_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (account_id) DO NOTHING",
                &[
                    &account,
                    &recorded.product_code,
                    &recorded.customer_id,
                    &recorded.currency,
                    &recorded.legacy_id,
                    &recorded.modern_id,
                    &recorded.home.as_str(),
                    &now,
                ],
            )
            .await?;
            let current = entry(&account_row(tx, account).await?);
            match current.move_id.as_deref() {
                Some(moving) if moving == move_id => Ok(false),
                Some(moving) => Err(TxError::Abort(Refusal::Moving(format!(
                    "account {account} is being moved by {moving}"
                )))),
                None => {
                    tx.execute(
                        "UPDATE accounts SET move_id = $2, moving_since = $3 WHERE account_id = $1",
                        &[&account, move_id, &now],
                    )
                    .await?;
                    Ok(true)
                }
            }
        }
        Change::Switch {
            move_id,
            home,
            id,
            holds,
        } => {
            let current = entry(&account_row(tx, account).await?);
            if current.move_id.as_deref() != Some(move_id.as_str()) {
                return Err(TxError::Abort(Refusal::NotMoving(format!(
                    "account {account} is not being moved by {move_id}"
                ))));
            }
            let (column, old_column) = match home {
                Side::Legacy => ("legacy_id", "modern_id"),
                Side::Modern => ("modern_id", "legacy_id"),
            };
            // A hold is named by its id on the old home (or the id channels know it by):
            // the hold channels know gets its id on the new home.
            for (old_id, side_id) in holds {
                let updated = tx
                    .execute(
                        &format!(
                            "UPDATE holds SET {column} = $3 WHERE account_id = $2 \
                             AND (hold_id = $1 OR {old_column} = $1)"
                        ),
                        &[old_id, &account, side_id],
                    )
                    .await?;
                if updated == 0 {
                    tx.execute(
                        &format!(
                            "INSERT INTO holds (hold_id, account_id, {column}) VALUES ($1, $2, $3)"
                        ),
                        &[old_id, &account, side_id],
                    )
                    .await?;
                }
            }
            if current.home == *home && current.id_on(*home) == Some(*id) {
                return Ok(false);
            }
            tx.execute(
                &format!("UPDATE accounts SET home = $2, {column} = $3 WHERE account_id = $1"),
                &[&account, &home.as_str(), id],
            )
            .await?;
            Ok(true)
        }
        Change::End { move_id } => {
            let ended = tx
                .execute(
                    "UPDATE accounts SET move_id = NULL, moving_since = NULL \
                     WHERE account_id = $1 AND move_id = $2",
                    &[&account, move_id],
                )
                .await?;
            Ok(ended > 0)
        }
        Change::Read => Ok(false),
    }
}

impl HomesService {
    /// Applies `change` to the account's row and answers the row as it then is; the account
    /// leaves this replica's cache at once (the others' on their next poll).
    async fn change(
        &self,
        name: &'static str,
        account: Uuid,
        change: Change,
    ) -> Result<Response<pb::AccountHome>, Status> {
        let change = &change;
        // Reads number nothing: they need no turn.
        let turn = match change {
            Change::Read => None,
            _ => Some(self.turn.lock().await),
        };
        let row = self
            .directory
            .db()
            .run_tx(name, |tx| {
                Box::pin(async move { changed_row(&tx, account, change, Utc::now()).await })
            })
            .await
            .map_err(status_of)?;
        drop(turn);
        self.directory.forget(account);
        self.directory.moves().changed();
        Ok(Response::new(answer(&row)))
    }
}

/// A `BeginMove` as the change it asks for.
fn begin_change(request: pb::BeginMoveRequest) -> Result<(Uuid, Change), Refusal> {
    let home = side("home", &request.home)?;
    for (field, value) in [
        ("product_code", &request.product_code),
        ("customer_id", &request.customer_id),
        ("currency", &request.currency),
    ] {
        if value.is_empty() {
            return Err(Refusal::Invalid(format!("{field}: required")));
        }
    }
    let id = account_id(&request.account_id)?;
    let move_id = move_id(&request.move_id)?;
    let recorded = AccountEntry {
        account_id: id,
        home,
        product_code: request.product_code,
        customer_id: request.customer_id,
        currency: request.currency,
        legacy_id: (home == Side::Legacy).then_some(id),
        modern_id: (home == Side::Modern).then_some(id),
        move_id: None,
    };
    Ok((id, Change::Begin { recorded, move_id }))
}

/// A `SwitchHome` as the change it asks for.
fn switch_change(request: &pb::SwitchHomeRequest) -> Result<(Uuid, Change), Refusal> {
    let holds = request
        .holds
        .iter()
        .enumerate()
        .map(|(index, hold)| {
            let parse = |field: &str, text: &str| {
                Uuid::parse_str(text)
                    .map_err(|_| Refusal::Invalid(format!("holds[{index}].{field}: not a UUID")))
            };
            Ok((parse("hold_id", &hold.hold_id)?, parse("id", &hold.id)?))
        })
        .collect::<Result<Vec<_>, Refusal>>()?;
    let id =
        Uuid::parse_str(&request.id).map_err(|_| Refusal::Invalid("id: not a UUID".to_owned()))?;
    Ok((
        account_id(&request.account_id)?,
        Change::Switch {
            move_id: move_id(&request.move_id)?,
            home: side("home", &request.home)?,
            id,
            holds,
        },
    ))
}

/// An `EndMove` as the change it asks for.
fn end_change(request: &pb::EndMoveRequest) -> Result<(Uuid, Change), Refusal> {
    Ok((
        account_id(&request.account_id)?,
        Change::End {
            move_id: move_id(&request.move_id)?,
        },
    ))
}

/// Applies `change` to the account's row, numbers it in the feed if it changed anything,
/// and reads the row as it then is.
async fn changed_row(
    tx: &Transaction<'_>,
    account: Uuid,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<Row, TxError<Refusal>> {
    if apply(tx, account, change, now).await? {
        note_change(tx, account, now).await?;
    }
    account_row(tx, account).await
}

/// One change of a `ChangeHomes` call, in its transaction: the account as it then is, or
/// the change's refusal (which wrote nothing: every refusal comes before a write).
async fn apply_one(
    tx: &Transaction<'_>,
    account: Uuid,
    change: &Change,
    now: DateTime<Utc>,
) -> Result<Result<pb::AccountHome, Refusal>, TxError<Refusal>> {
    match changed_row(tx, account, change, now).await {
        Ok(row) => Ok(Ok(answer(&row))),
        Err(TxError::Abort(refusal)) => Ok(Err(refusal)),
        Err(other) => Err(other),
    }
}

#[tonic::async_trait]
impl AccountHomes for HomesService {
    async fn begin_move(
        &self,
        request: Request<pb::BeginMoveRequest>,
    ) -> Result<Response<pb::AccountHome>, Status> {
        let (id, change) =
            begin_change(request.into_inner()).map_err(|refusal| refusal.status())?;
        self.change("gateway_homes_begin_move", id, change).await
    }

    async fn switch_home(
        &self,
        request: Request<pb::SwitchHomeRequest>,
    ) -> Result<Response<pb::AccountHome>, Status> {
        let (account, change) =
            switch_change(request.get_ref()).map_err(|refusal| refusal.status())?;
        self.change("gateway_homes_switch_home", account, change)
            .await
    }

    async fn end_move(
        &self,
        request: Request<pb::EndMoveRequest>,
    ) -> Result<Response<pb::AccountHome>, Status> {
        let (account, change) =
            end_change(request.get_ref()).map_err(|refusal| refusal.status())?;
        self.change("gateway_homes_end_move", account, change).await
    }

    async fn change_homes(
        &self,
        request: Request<pb::ChangeHomesRequest>,
    ) -> Result<Response<pb::ChangeHomesResponse>, Status> {
        use pb::home_change::Change as Asked;
        let changes = request.into_inner().changes;
        if changes.is_empty() || changes.len() > CHANGES_PER_CALL_MAX {
            return Err(Refusal::Invalid(format!(
                "changes: 1 to {CHANGES_PER_CALL_MAX}, not {}",
                changes.len()
            ))
            .status());
        }
        let parsed: Vec<Result<(Uuid, Change), Refusal>> = changes
            .into_iter()
            .enumerate()
            .map(|(index, change)| match change.change {
                Some(Asked::BeginMove(asked)) => begin_change(asked),
                Some(Asked::SwitchHome(asked)) => switch_change(&asked),
                Some(Asked::EndMove(asked)) => end_change(&asked),
                None => Err(Refusal::Invalid(format!(
                    "changes[{index}]: one of begin_move, switch_home, end_move"
                ))),
            })
            .collect();
        let parsed_ref = &parsed;
        let turn = self.turn.lock().await;
        let results = self
            .directory
            .db()
            .run_tx("gateway_homes_change_homes", |tx| {
                Box::pin(async move {
                    let now = Utc::now();
                    let mut results = Vec::with_capacity(parsed_ref.len());
                    for item in parsed_ref {
                        results.push(match item {
                            Err(refusal) => Err(refusal.clone()),
                            Ok((account, change)) => apply_one(&tx, *account, change, now).await?,
                        });
                    }
                    Ok(results)
                })
            })
            .await
            .map_err(status_of)?;
        drop(turn);
        for (account, _) in parsed.iter().flatten() {
            self.directory.forget(*account);
        }
        self.directory.moves().changed();
        let results = results
            .into_iter()
            .map(|result| match result {
                Ok(home) => pb::HomeChangeResult {
                    home: Some(home),
                    ..Default::default()
                },
                Err(refusal) => pb::HomeChangeResult {
                    home: None,
                    code: refusal.codes().1.to_owned(),
                    message: refusal.to_string(),
                },
            })
            .collect();
        Ok(Response::new(pb::ChangeHomesResponse { results }))
    }

    async fn get_home(
        &self,
        request: Request<pb::GetHomeRequest>,
    ) -> Result<Response<pb::AccountHome>, Status> {
        let account = account_id(&request.get_ref().account_id).map_err(|r| r.status())?;
        self.change("gateway_homes_get_home", account, Change::Read)
            .await
    }

    async fn list_shadowed(
        &self,
        request: Request<pb::ListShadowedRequest>,
    ) -> Result<Response<pb::ListShadowedResponse>, Status> {
        let request = request.into_inner();
        let after = if request.after_account_id.is_empty() {
            Uuid::nil()
        } else {
            account_id(&request.after_account_id).map_err(|r| r.status())?
        };
        let limit = match request.limit {
            0 => 500,
            1..=1_000 => i64::from(request.limit),
            _ => {
                return Err(Refusal::Invalid("limit: 1 to 1000 (0: 500)".to_owned()).status());
            }
        };
        let rows = self
            .directory
            .db()
            .run_tx("gateway_homes_list_shadowed", |tx| {
                Box::pin(async move {
                    Ok::<_, TxError<Refusal>>(
                        tx.query(
                            "SELECT * FROM accounts WHERE account_id > $1 \
                             AND legacy_id IS NOT NULL AND modern_id IS NOT NULL \
                             ORDER BY account_id LIMIT $2",
                            &[&after, &limit],
                        )
                        .await?,
                    )
                })
            })
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::ListShadowedResponse {
            accounts: rows.iter().map(answer).collect(),
        }))
    }
}

/// Polls the directory's change feed every `poll` (every [`HOLD_POLL`] while a request is
/// held for a move) until `shutdown`, dropping each changed account from this replica's
/// cache, and now and then purges changes older than [`CHANGES_KEPT`].
pub fn spawn_change_feed(directory: Directory, poll: Duration, shutdown: CancellationToken) {
    tokio::spawn(async move {
        let mut feed = ChangeFeed::new(directory.clone());
        let mut polls: u64 = 0;
        // The first poll at once: it finds the replica's place in the feed before the
        // replica caches anything a later change could make stale.
        let mut pause = Duration::ZERO;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
                () = directory.moves().first_held() => {}
            }
            pause = if directory.moves().holding() {
                HOLD_POLL.min(poll)
            } else {
                poll
            };
            if let Err(error) = feed.poll().await {
                tracing::warn!(error = %error, "the account directory's change feed could not be read");
            }
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(POLLS_PER_PURGE)
                && let Err(error) = feed.purge().await
            {
                tracing::warn!(error = %error, "old account directory changes could not be purged");
            }
        }
    });
}

/// Where one replica is in the feed.
#[derive(Debug)]
pub struct ChangeFeed {
    directory: Directory,
    /// The last change this replica applied; `None` before its first poll.
    last: Option<i64>,
}

impl ChangeFeed {
    pub fn new(directory: Directory) -> ChangeFeed {
        ChangeFeed {
            directory,
            last: None,
        }
    }

    /// Reads the changes past the last one applied and drops their accounts from the cache.
    /// The first poll only finds its place (the cache holds nothing older than it).
    pub async fn poll(&mut self) -> Result<usize, DbError> {
        let last = self.last;
        let rows = self
            .directory
            .db()
            .run_tx("gateway_directory_changes", |tx| {
                Box::pin(async move {
                    Ok::<_, TxError<DbError>>(match last {
                        None => {
                            tx.query(
                                "SELECT COALESCE(MAX(seq), 0) AS seq, NULL::UUID AS account_id \
                                 FROM directory_changes",
                                &[],
                            )
                            .await?
                        }
                        Some(last) => {
                            tx.query(
                                "SELECT seq, account_id FROM directory_changes WHERE seq > $1 \
                                 ORDER BY seq LIMIT $2",
                                &[&last, &CHANGES_PER_POLL_MAX],
                            )
                            .await?
                        }
                    })
                })
            })
            .await
            .map_err(|error| match error {
                TxError::Abort(error) | TxError::Db(error) => error,
            })?;
        let mut applied = 0;
        for row in &rows {
            let seq: i64 = row.get("seq");
            if let Some(account) = row.get::<_, Option<Uuid>>("account_id") {
                // A gap: the changes between were purged before this replica read them.
                if self.last.is_some_and(|last| seq > last + 1) {
                    self.directory.forget_all();
                }
                self.directory.forget(account);
                applied += 1;
            }
            self.last = Some(seq);
        }
        if applied > 0 {
            self.directory.moves().changed();
        }
        Ok(applied)
    }

    /// Deletes the changes older than [`CHANGES_KEPT`].
    async fn purge(&self) -> Result<(), DbError> {
        let before = Utc::now() - CHANGES_KEPT;
        self.directory
            .db()
            .run_tx("gateway_directory_changes_purge", |tx| {
                Box::pin(async move {
                    tx.execute(
                        "DELETE FROM directory_changes WHERE changed_at < $1",
                        &[&before],
                    )
                    .await?;
                    Ok::<_, TxError<DbError>>(())
                })
            })
            .await
            .map_err(|error| match error {
                TxError::Abort(error) | TxError::Db(error) => error,
            })
    }
}
