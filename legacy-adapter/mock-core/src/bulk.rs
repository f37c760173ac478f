//! Bulk OFS on the core's side ([`corebank_legacy_ofs::bulk`]): the messages of a bulk are
//! carried out in one SERIALIZABLE transaction (retried whole), and answered in order after
//! one commit. A refusal undoes only its own message: it rolls the transaction back, and the
//! bulk runs again without it (cheaper than a savepoint around every message, since bulks
//! are seldom refused anything). Each message still takes its own journal number; what
//! makes a bulk cheaper than its messages one by one is the one writer turn, transaction
//! and commit for the lot.
//!
//! Faults and close of business apply to a bulk as to one request, in the same order (close
//! of business, sign-on, injected error or timeout, latency, a dropped answer): one draw for
//! the lot.

use std::time::Instant;

use corebank_db::TxError;
use corebank_legacy_ofs::bulk::bulkable;
use corebank_legacy_ofs::{Indicator, Request};
use tokio_util::sync::CancellationToken;

use super::input::Answer;
use super::server::{
    Core, Injected, OutcomeUnknown, Reply, SYSTEM_ERROR, Session, business_date, count, db_failure,
    delivered, error_indicator, injected, is_write, log, malformed_line, offline, refused,
    response_line, route,
};

/// One message of a bulk: a request to carry out, or its answer already (refused before
/// it could run).
enum Message {
    Run(Request),
    Answered(String),
}

impl Core {
    /// Answers a bulk's lines (`Err`: a line that was not UTF-8, already answered).
    pub(crate) async fn handle_bulk(
        &self,
        lines: Vec<Result<String, String>>,
        session: &mut Session,
        shutdown: &CancellationToken,
    ) -> Reply {
        let started = Instant::now();
        let closed = self.faults.closed_now();
        let mut messages = Vec::with_capacity(lines.len());
        for line in lines {
            messages.push(match line.map(|text| Request::parse(&text)) {
                Err(reply) => Message::Answered(reply),
                Ok(Err(error)) => {
                    count("", error_indicator());
                    Message::Answered(malformed_line(&error))
                }
                Ok(Ok(request)) if closed => {
                    Message::Answered(response_line(&offline(request.transaction_id)))
                }
                Ok(Ok(request)) => self.admit(request, session).await,
            });
        }
        let faults = self.faults.faults();
        let to_run: Vec<&Request> = messages
            .iter()
            .filter_map(|message| match message {
                Message::Run(request) => Some(request),
                Message::Answered(_) => None,
            })
            .collect();
        let answers = match injected(&faults, shutdown).await {
            Some(Injected::Close) => return Reply::Close,
            Some(Injected::Error) => to_run
                .iter()
                .map(|request| Answer::error(request.transaction_id.clone(), "ID", SYSTEM_ERROR))
                .collect(),
            None => match self.execute_bulk(&to_run).await {
                Ok(answers) => answers,
                Err(OutcomeUnknown) => return Reply::Close,
            },
        };
        let wrote = to_run
            .iter()
            .zip(&answers)
            .any(|(request, answer)| is_write(request) && answer.indicator == Indicator::Done);
        if !delivered(&faults, wrote, shutdown).await {
            for request in &to_run {
                log(request, "dropped", started);
            }
            return Reply::Close;
        }
        let mut answers = to_run.iter().zip(answers);
        let lines: Vec<String> = messages
            .iter()
            .map(|message| match message {
                Message::Answered(line) => line.clone(),
                Message::Run(_) => match answers.next() {
                    Some((request, answer)) => {
                        log(request, answer.indicator.code(), started);
                        response_line(&answer)
                    }
                    None => response_line(&Answer::error(String::new(), "ID", SYSTEM_ERROR)),
                },
            })
            .collect();
        Reply::Line(lines.join("\n"))
    }

    /// A bulk's message, signed on and of a kind a bulk may carry, or its refusal.
    async fn admit(&self, request: Request, session: &mut Session) -> Message {
        let refusal = if bulkable(&request) {
            self.sign_on_refusal(&request, session).await
        } else {
            let id = request.transaction_id.clone();
            Some(Answer::error(id, "APPLICATION", "NOT ALLOWED IN A BULK"))
        };
        match refusal {
            None => Message::Run(request),
            Some(answer) => {
                count(&request.application, answer.indicator.code());
                Message::Answered(response_line(&answer))
            }
        }
    }

    /// Carries out `requests` in one transaction: their answers, in order. A message the
    /// applications refuse must change nothing, so its refusal rolls the transaction back
    /// and the bulk runs again without it (the others see the books as a savepoint per
    /// message would leave them: the messages before it applied, it not). A bulk nothing
    /// refuses, the usual one, runs once, without a savepoint's two round trips per message.
    async fn execute_bulk(&self, requests: &[&Request]) -> Result<Vec<Answer>, OutcomeUnknown> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn(requests).await;
        let today = business_date();
        let mut refused_at: Vec<Option<Answer>> = requests.iter().map(|_| None).collect();
        let result = loop {
            let skip: Vec<bool> = refused_at.iter().map(Option::is_some).collect();
            let skip = &skip;
            let run = self
                .db
                .run_tx("legacy_core_bulk", |tx| {
                    Box::pin(async move {
                        let mut answers = Vec::with_capacity(requests.len());
                        for (index, request) in requests.iter().enumerate() {
                            if skip[index] {
                                answers.push(None);
                                continue;
                            }
                            match route(&tx, request, today).await {
                                Ok(answer) => answers.push(Some(answer)),
                                Err(TxError::Abort(reject)) => {
                                    return Err(TxError::Abort((index, reject)));
                                }
                                Err(TxError::Db(error)) => return Err(TxError::Db(error)),
                            }
                        }
                        Ok(answers)
                    })
                })
                .await;
            match run {
                Ok(answers) => break Ok(answers),
                Err(TxError::Db(error)) => break Err(error),
                Err(TxError::Abort((index, reject))) => {
                    refused_at[index] = Some(refused(requests[index], reject));
                }
            }
        };
        match result {
            // Each message was either run or refused.
            Ok(answers) => Ok(answers
                .into_iter()
                .zip(refused_at)
                .zip(requests)
                .map(|((answer, refusal), request)| {
                    answer.or(refusal).unwrap_or_else(|| {
                        Answer::error(request.transaction_id.clone(), "ID", SYSTEM_ERROR)
                    })
                })
                .collect()),
            Err(error) => {
                let text = db_failure("OFS.BULK", &error)?;
                Ok(requests
                    .iter()
                    .map(|request| Answer::error(request.transaction_id.clone(), "ID", text))
                    .collect())
            }
        }
    }
}
