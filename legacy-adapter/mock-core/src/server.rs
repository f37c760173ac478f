//! The OFS line server: connections, sign-on, faults and close of business in front of the
//! applications, and one SERIALIZABLE transaction per request.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use corebank_db::{Db, DbError, Transaction, TxError};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::faults::{FaultState, Faults};
use super::input::{Answer, Outcome, Reject, input_or_see, refuse};
use super::{apps, enquiry, loans, migration, transfer};
use corebank_legacy_ofs::bulk::{bulkable, parse_bulk_header};
use corebank_legacy_ofs::{
    Field, Function, Indicator, LINE_BYTES_MAX, OfsError, Process, Request, Response,
};

/// Connections served at once; more are closed at once.
pub(crate) const CONNECTIONS_MAX: usize = 512;
/// After shutdown, how long the open connections get to finish the request in hand before
/// they are aborted.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
pub(crate) const ADMIN_USER: &str = "ADMIN";
const ADMIN_APPLICATION: &str = "ADMIN.FAULTS";
pub(crate) const SYSTEM_ERROR: &str = "SYSTEM ERROR, TRY AGAIN";

/// The core's business date: today in UTC.
pub(crate) fn business_date() -> NaiveDate {
    chrono::Utc::now().date_naive()
}

pub(crate) fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

fn message_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

pub(crate) fn response_line(answer: &Answer) -> String {
    Response {
        transaction_id: answer.id.clone(),
        message_id: message_id(),
        indicator: answer.indicator,
        fields: answer.fields.clone(),
    }
    .to_line()
}

pub(crate) fn malformed_line(error: &OfsError) -> String {
    response_line(&Answer {
        id: String::new(),
        indicator: Indicator::Error,
        fields: vec![
            Field::new("MESSAGE", error.to_string()),
            Field::new("CODE", error.code()),
        ],
    })
}

/// The core's shared state.
#[derive(Debug)]
pub(crate) struct Core {
    pub db: Db,
    pub faults: FaultState,
    /// Writers take turns here before their transaction ([`Core::write_turn`]).
    writes: tokio::sync::Mutex<()>,
    /// Writers other than the account migration's pass here first, one at a time.
    others: tokio::sync::Mutex<()>,
    /// `None`: no admin password is set, so nobody may sign on as `ADMIN`.
    admin_password_sha256: Option<String>,
}

/// What to do with a connection after a request.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The answer: one line, or a bulk's lines joined by line feeds.
    Line(String),
    /// Close without answering (a dropped answer, or an outcome nobody knows).
    Close,
}

/// A writer's turn ([`Core::write_turn`]), until dropped.
pub(crate) struct WriteTurn<'a> {
    _turn: tokio::sync::MutexGuard<'a, ()>,
    _gate: Option<tokio::sync::MutexGuard<'a, ()>>,
}

/// The database lost the connection during COMMIT: nobody knows whether it committed.
#[derive(Debug)]
pub(crate) struct OutcomeUnknown;

/// The last sign-on that succeeded on a connection (user and password hash), so a
/// connection signs on against the database once.
#[derive(Debug, Default)]
pub(crate) struct Session {
    signed_on: Option<(String, String)>,
}

pub(crate) fn tx_name(application: &str) -> &'static str {
    match application {
        "CUSTOMER" => "legacy_core_customer",
        "ACCOUNT" => "legacy_core_account",
        "ACCOUNT.CLOSURE" => "legacy_core_account_closure",
        "FUNDS.TRANSFER" => "legacy_core_funds_transfer",
        "AC.LOCKED.EVENTS" => "legacy_core_locked_events",
        "AC.ACCOUNT.MIGRATION" => "legacy_core_account_migration",
        "LD.LOANS.AND.DEPOSITS" => "legacy_core_loans",
        "ENQUIRY.SELECT" => "legacy_core_enquiry",
        _ => "legacy_core_unknown",
    }
}

pub(crate) async fn route(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let id = request.transaction_id.as_str();
    match request.application.as_str() {
        "CUSTOMER" => Box::pin(apps::customer(tx, request)).await,
        "ACCOUNT" => Box::pin(apps::account(tx, request, today)).await,
        "ACCOUNT.CLOSURE" => Box::pin(apps::account_closure(tx, request, today)).await,
        "FUNDS.TRANSFER" => {
            let input = transfer::input_transfer(tx, request, today);
            Box::pin(input_or_see(
                request,
                input,
                transfer::transfer_record(tx, id),
            ))
            .await
        }
        "AC.LOCKED.EVENTS" => Box::pin(apps::locked_events(tx, request, today)).await,
        "AC.ACCOUNT.MIGRATION" => Box::pin(migration::account_migration(tx, request, today)).await,
        "LD.LOANS.AND.DEPOSITS" => {
            let input = loans::input_loan(tx, request, today);
            Box::pin(input_or_see(request, input, loans::loan_record(tx, id))).await
        }
        "ENQUIRY.SELECT" => Box::pin(enquiry::enquiry(tx, request, today)).await,
        _ => Err(refuse("APPLICATION", "UNKNOWN APPLICATION")),
    }
}

/// Whether a request changes the books when it succeeds.
pub(crate) fn is_write(request: &Request) -> bool {
    request.application != "ENQUIRY.SELECT"
        && request.process == Process::Process
        && matches!(request.function, Function::Input | Function::Reverse)
}

impl Core {
    pub(crate) fn new(db: Db, faults: FaultState, admin_password: &str) -> Core {
        Core {
            db,
            faults,
            writes: tokio::sync::Mutex::new(()),
            others: tokio::sync::Mutex::new(()),
            admin_password_sha256: (!admin_password.is_empty()).then(|| sha256_hex(admin_password)),
        }
    }

    /// The turn of a request that takes the journal counter: writers queue here, in order,
    /// one at a time. The counter row serialises them anyway (the monolith's global lock);
    /// queueing in the process first means a writer never spends a SERIALIZABLE transaction
    /// only to lose that row to another writer's commit and start again, which under load
    /// made most of the core's work retries.
    ///
    /// The account migration's inputs go first: each ends or starts an account's freeze,
    /// during which that account's customers wait. Other writers pass one at a time through
    /// a gate before they queue for the turn, so a migration input waits behind at most one
    /// of them (and the migration's own inputs before it).
    pub(crate) async fn write_turn(&self, requests: &[&Request]) -> Option<WriteTurn<'_>> {
        let writes = requests.iter().any(|request| {
            request.application != "ENQUIRY.SELECT"
                && matches!(request.function, Function::Input | Function::Reverse)
        });
        if !writes {
            return None;
        }
        let urgent = requests.iter().all(|request| bulkable(request));
        let gate = if urgent {
            None
        } else {
            Some(self.others.lock().await)
        };
        Some(WriteTurn {
            _turn: self.writes.lock().await,
            _gate: gate,
        })
    }

    /// Carries out a request in one SERIALIZABLE transaction (retried whole), with no
    /// sign-on or faults: the applications' answer.
    pub(crate) async fn execute(&self, request: &Request) -> Result<Answer, OutcomeUnknown> {
        let _turn = self.write_turn(&[request]).await;
        let today = business_date();
        let validate = request.process == Process::Validate;
        let result = self
            .db
            .run_tx(tx_name(&request.application), |tx| {
                Box::pin(async move {
                    let answer = route(&tx, request, today).await?;
                    if validate {
                        return Err(TxError::Abort(Reject::Validated(answer)));
                    }
                    Ok(answer)
                })
            })
            .await;
        match result {
            Ok(answer) => Ok(answer),
            Err(TxError::Abort(reject)) => Ok(refused(request, reject)),
            Err(TxError::Db(error)) => db_failure(&request.application, &error)
                .map(|text| Answer::error(request.transaction_id.clone(), "ID", text)),
        }
    }

    fn is_admin(&self, request: &Request) -> bool {
        request.user == ADMIN_USER
            && self
                .admin_password_sha256
                .as_deref()
                .is_some_and(|hash| hash == sha256_hex(&request.password))
    }

    /// Checks the sign-on: `ADMIN` against the setting, anyone else against `users`.
    pub(crate) async fn signed_on(
        &self,
        request: &Request,
        session: &mut Session,
    ) -> Result<bool, DbError> {
        if request.user == ADMIN_USER {
            return Ok(self.is_admin(request));
        }
        let hash = sha256_hex(&request.password);
        if session
            .signed_on
            .as_ref()
            .is_some_and(|(user, known)| *user == request.user && *known == hash)
        {
            return Ok(true);
        }
        let user = request.user.as_str();
        let stored = self
            .db
            .run_tx("legacy_core_sign_on", |tx| {
                Box::pin(async move {
                    let row = tx
                        .query_opt(
                            "SELECT password_sha256 FROM users WHERE name = $1",
                            &[&user],
                        )
                        .await?;
                    Ok::<_, TxError<Reject>>(row.map(|row| row.get::<_, String>(0)))
                })
            })
            .await
            .map_err(|error| match error {
                TxError::Db(error) => error,
                TxError::Abort(_) => DbError::Unavailable {
                    message: "sign-on aborted".to_owned(),
                },
            })?;
        let ok = stored.is_some_and(|stored| stored == hash);
        if ok {
            session.signed_on = Some((request.user.clone(), hash));
        }
        Ok(ok)
    }

    fn admin(&self, request: &Request) -> Answer {
        let id = request.transaction_id.clone();
        if !self.is_admin(request) {
            return Answer::error(id, "USER", "SECURITY VIOLATION");
        }
        match request.function {
            Function::Input => match self.faults.apply(&request.fields) {
                Ok(()) => Answer::done(id, self.faults.fields()),
                Err((field, text)) => Answer::error(id, &field, text),
            },
            Function::See => Answer::done(id, self.faults.fields()),
            Function::Authorise | Function::Reverse | Function::Delete => {
                Answer::error(id, "FUNCTION", "FUNCTION NOT ALLOWED")
            }
        }
    }

    /// Answers one line (or decides to close the connection without an answer).
    async fn handle(
        &self,
        text: &str,
        session: &mut Session,
        shutdown: &CancellationToken,
    ) -> Reply {
        let started = Instant::now();
        let request = match Request::parse(text) {
            Ok(request) => request,
            Err(error) => {
                count("", error_indicator());
                tracing::info!(error = %error, error.code = error.code(), "legacy core refused a malformed line");
                return Reply::Line(malformed_line(&error));
            }
        };
        if request.application == ADMIN_APPLICATION {
            // Never delayed, faulted or closed: the operator's way in.
            let answer = self.admin(&request);
            log(&request, answer.indicator.code(), started);
            return Reply::Line(response_line(&answer));
        }
        let faults = self.faults.faults();
        let answer = match self.answer(&request, &faults, session, shutdown).await {
            Some(answer) => answer,
            None => {
                log(&request, "closed", started);
                return Reply::Close;
            }
        };
        let wrote = is_write(&request) && answer.indicator == Indicator::Done;
        if !delivered(&faults, wrote, shutdown).await {
            log(&request, "dropped", started);
            return Reply::Close;
        }
        log(&request, answer.indicator.code(), started);
        Reply::Line(response_line(&answer))
    }

    /// The answer before latency; `None` closes the connection unanswered.
    async fn answer(
        &self,
        request: &Request,
        faults: &Faults,
        session: &mut Session,
        shutdown: &CancellationToken,
    ) -> Option<Answer> {
        let id = request.transaction_id.clone();
        if self.faults.closed_now() {
            return Some(offline(id));
        }
        if let Some(refusal) = self.sign_on_refusal(request, session).await {
            return Some(refusal);
        }
        match injected(faults, shutdown).await {
            Some(Injected::Error) => return Some(Answer::error(id, "ID", SYSTEM_ERROR)),
            Some(Injected::Close) => return None,
            None => {}
        }
        self.execute(request).await.ok()
    }
}

impl Core {
    /// The answer to a request whose sign-on fails; `None` when it signs on.
    pub(crate) async fn sign_on_refusal(
        &self,
        request: &Request,
        session: &mut Session,
    ) -> Option<Answer> {
        let id = request.transaction_id.clone();
        match self.signed_on(request, session).await {
            Ok(true) => None,
            Ok(false) => Some(Answer::error(id, "USER", "SECURITY VIOLATION")),
            Err(error) => {
                tracing::warn!(error = %error, "legacy core sign-on could not be checked");
                Some(Answer::error(id, "ID", SYSTEM_ERROR))
            }
        }
    }
}

/// The answer while the core is closed for business.
pub(crate) fn offline(id: String) -> Answer {
    Answer {
        id,
        indicator: Indicator::Offline,
        fields: vec![Field::new("STATUS", "CLOSE OF BUSINESS IN PROGRESS")],
    }
}

/// What the faults in force do to a request (or a bulk) before it runs.
pub(crate) enum Injected {
    /// Answered `SYSTEM ERROR`, not run.
    Error,
    /// Shut down during an injected timeout: closed unanswered.
    Close,
}

/// Draws the injected error and timeout for a request (or a bulk) about to run; `None`:
/// run it (after any injected delay).
pub(crate) async fn injected(faults: &Faults, shutdown: &CancellationToken) -> Option<Injected> {
    if fastrand::f64() < faults.error_rate {
        return Some(Injected::Error);
    }
    if fastrand::f64() < faults.timeout_rate {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(faults.timeout_ms)) => {}
            () = shutdown.cancelled() => return Some(Injected::Close),
        }
    }
    None
}

/// Waits the injected latency before an answer is written, and draws whether an answer
/// that `wrote` is dropped after its commit: `false` closes the connection unanswered.
pub(crate) async fn delivered(faults: &Faults, wrote: bool, shutdown: &CancellationToken) -> bool {
    let latency = faults.latency();
    if !latency.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(latency) => {}
            () = shutdown.cancelled() => {}
        }
    }
    !(wrote && fastrand::f64() < faults.drop_after_commit_rate)
}

/// A request's refusal as its answer.
pub(crate) fn refused(request: &Request, reject: Reject) -> Answer {
    let id = request.transaction_id.clone();
    match reject {
        Reject::Field { field, text } => Answer::error(id, &field, text),
        Reject::Override { text } => Answer {
            id,
            indicator: Indicator::Override,
            fields: vec![Field::new("OVERRIDE", text)],
        },
        Reject::Validated(answer) => answer,
        Reject::Corrupt(message) => {
            tracing::error!(application = %request.application, error = %message, "legacy core books break an invariant");
            Answer::error(id, "ID", SYSTEM_ERROR)
        }
    }
}

/// A transaction the database failed: the error text to answer (nothing was done), or
/// [`OutcomeUnknown`] when the commit's outcome was lost (the connection is then closed).
pub(crate) fn db_failure(
    application: &str,
    error: &DbError,
) -> Result<&'static str, OutcomeUnknown> {
    if let DbError::OutcomeUnknown { .. } = error {
        tracing::error!(%application, error = %error, "legacy core write outcome unknown: closing the connection");
        return Err(OutcomeUnknown);
    }
    tracing::warn!(%application, error = ?error, error.code = error.code(), "legacy core database error");
    Ok(SYSTEM_ERROR)
}

pub(crate) fn error_indicator() -> &'static str {
    Indicator::Error.code()
}

pub(crate) fn count(application: &str, indicator: &str) {
    metrics::counter!(
        "legacy_core_requests_total",
        "application" => application.to_owned(),
        "indicator" => indicator.to_owned()
    )
    .increment(1);
}

pub(crate) fn log(request: &Request, indicator: &str, started: Instant) {
    count(&request.application, indicator);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        application = %request.application,
        function = %request.function.code(),
        indicator,
        txn.id = %request.transaction_id,
        elapsed_ms,
        "legacy core answered"
    );
}

/// Serves OFS on `listener` until `shutdown`, then waits for the open connections to end.
pub(crate) async fn serve(
    listener: TcpListener,
    core: Arc<Core>,
    limits: Limits,
    shutdown: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(CONNECTIONS_MAX));
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                        tracing::warn!(peer = %peer, connections.max = CONNECTIONS_MAX, "legacy core at its connection limit: closing");
                        drop(stream);
                        continue;
                    };
                    let core = Arc::clone(&core);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        connection(stream, &core, limits, &shutdown).await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    tracing::warn!(error = %error, "legacy core accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Every connection stops reading and writing at shutdown; the grace only bounds a
    // request still being carried out.
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "legacy core connections still busy after the shutdown grace: aborting them"
        );
        connections.shutdown().await;
    }
    tracing::info!("legacy core stopped");
}

/// How long a connection may stay silent and how long an answer may take to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
}

/// Writes one answer line; `false` when the connection must close (write failed, did not
/// finish within the write timeout, or shutdown).
async fn send(
    write: &mut OwnedWriteHalf,
    reply: &str,
    limits: Limits,
    shutdown: &CancellationToken,
) -> bool {
    let bytes = format!("{reply}\n");
    tokio::select! {
        biased;
        written = tokio::time::timeout(limits.write_timeout, write.write_all(bytes.as_bytes())) => {
            match written {
                Ok(Ok(())) => true,
                Ok(Err(_)) => false,
                Err(_) => {
                    tracing::warn!(
                        write_timeout_ms = u64::try_from(limits.write_timeout.as_millis()).unwrap_or(u64::MAX),
                        "legacy core could not write an answer in time (the client does not read): closing"
                    );
                    false
                }
            }
        }
        () = shutdown.cancelled() => false,
    }
}

/// The next line of a connection: its text (`Err`: the reply to a line that is not UTF-8);
/// `None` when the connection must close (ended, idle, shutdown, or a line too long or cut
/// short, which has been answered or logged).
async fn next_line(
    reader: &mut BufReader<OwnedReadHalf>,
    write: &mut OwnedWriteHalf,
    limits: Limits,
    shutdown: &CancellationToken,
) -> Option<Result<String, String>> {
    // A line may be LINE_BYTES_MAX bytes and its CR LF; one byte more proves it too long.
    let read_max = u64::try_from(LINE_BYTES_MAX + 3).unwrap_or(u64::MAX);
    let mut line = Vec::new();
    let mut limited = reader.take(read_max);
    let read = tokio::select! {
        () = shutdown.cancelled() => return None,
        read = tokio::time::timeout(limits.idle_timeout, limited.read_until(b'\n', &mut line)) => read,
    };
    let Ok(read) = read else {
        tracing::info!(
            idle_timeout_ms = u64::try_from(limits.idle_timeout.as_millis()).unwrap_or(u64::MAX),
            "legacy core closed a connection that sent no complete line in time"
        );
        return None;
    };
    match read {
        Ok(0) | Err(_) => return None,
        Ok(_) => {}
    }
    let terminated = line.ends_with(b"\n");
    if terminated {
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
    }
    if line.len() > LINE_BYTES_MAX {
        count("", error_indicator());
        let reply = malformed_line(&OfsError::TooLong { bytes: line.len() });
        send(write, &reply, limits, shutdown).await;
        return None;
    }
    if !terminated {
        // The input ended inside a line: a request cut short is never carried out (its
        // missing tail could be the field that makes it safe, e.g. LOCKED.EVENT.ID).
        count("", error_indicator());
        tracing::info!(
            bytes = line.len(),
            "legacy core closed a connection whose last line had no line feed: not executed"
        );
        return None;
    }
    Some(String::from_utf8(line).map_err(|_| {
        malformed_line(&OfsError::Malformed {
            part: "message".to_owned(),
            message: "not UTF-8".to_owned(),
        })
    }))
}

async fn connection(stream: TcpStream, core: &Core, limits: Limits, shutdown: &CancellationToken) {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut session = Session::default();
    loop {
        let Some(line) = next_line(&mut reader, &mut write, limits, shutdown).await else {
            return;
        };
        let reply = match line {
            Ok(text) => match parse_bulk_header(&text) {
                None => core.handle(&text, &mut session, shutdown).await,
                Some(Err(error)) => {
                    count("", error_indicator());
                    Reply::Line(malformed_line(&error))
                }
                Some(Ok(messages)) => {
                    let mut lines = Vec::with_capacity(messages);
                    for _ in 0..messages {
                        match next_line(&mut reader, &mut write, limits, shutdown).await {
                            Some(line) => lines.push(line),
                            None => return,
                        }
                    }
                    core.handle_bulk(lines, &mut session, shutdown).await
                }
            },
            Err(reply) => Reply::Line(reply),
        };
        match reply {
            Reply::Line(reply) => {
                if !send(&mut write, &reply, limits, shutdown).await {
                    return;
                }
            }
            Reply::Close => return,
        }
    }
}
