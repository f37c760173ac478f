//! Talking to the core safely: inputs that are applied exactly once even when answers are
//! lost, and reads that are simply retried.
//!
//! Every input the adapter sends carries an id derived from the canonical request id (or a
//! unique field derived from it), so the core itself refuses a second copy
//! (`LIVE RECORD EXISTS`, `DUPLICATE`). When an answer is lost, the adapter asks the core
//! whether the input took effect ([`Probe`]) before it sends it again; when the core says
//! the record exists, the adapter reads it and answers from it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use corebank_legacy_ofs::{Field, Function, Indicator, Process, Request, Response};

use super::client::{CallError, OfsClient};
use super::error::{AdapterError, refusal, says};
use super::store::Store;

/// How to find out whether an input took effect: a read, and what in its answer means "done".
pub struct Probe {
    pub request: Request,
    pub done: Box<dyn Fn(&Response) -> bool + Send + Sync>,
}

impl std::fmt::Debug for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Probe")
            .field("request", &self.request.application)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// `S` on `application` for `id`: done when the record exists.
    pub fn exists(application: &str, id: &str) -> Probe {
        Probe {
            request: see_request(application, id),
            done: Box::new(|response| response.indicator == Indicator::Done),
        }
    }

    /// `S` on `application` for `id`: done when `field` of the record is `value`.
    pub fn field_is(application: &str, id: &str, field: &'static str, value: String) -> Probe {
        Probe {
            request: see_request(application, id),
            done: Box::new(move |response| {
                response.indicator == Indicator::Done
                    && response.field(field).unwrap_or_default() == value
            }),
        }
    }

    /// An enquiry that answers `field` (non-empty) when the record exists.
    pub fn enquiry(name: &str, selection: Vec<(&str, String)>, field: &'static str) -> Probe {
        Probe {
            request: enquiry_request(name, selection),
            done: Box::new(move |response| {
                response.indicator == Indicator::Done
                    && !response.field(field).unwrap_or_default().is_empty()
            }),
        }
    }
}

/// The name an input is remembered by while in doubt: the application, the function, the
/// id and the probe's selection (which carries the unique field of inputs without an id).
fn doubt_key(request: &Request, probe: &Probe) -> String {
    let selection: Vec<&str> = probe
        .request
        .fields
        .iter()
        .map(|f| f.value.as_str())
        .collect();
    format!(
        "{}/{}/{}/{}",
        request.application,
        request.function.code(),
        request.transaction_id,
        selection.join(",")
    )
}

/// What an input came to.
#[derive(Debug, Clone)]
pub struct Done {
    /// The input's answer, or the probe's answer when the record was found instead.
    pub record: Response,
    /// The core had it already before this call (a repeat).
    pub existed: bool,
}

impl Done {
    /// The id of a record the core numbered itself: `field` of the probe's answer when the
    /// probe found the record, else the id the core gave the input.
    pub fn new_id(&self, field: &str) -> String {
        self.record
            .field(field)
            .filter(|id| !id.is_empty())
            .map_or_else(|| self.record.transaction_id.clone(), str::to_owned)
    }
}

/// A new request with no sign-on (the client adds it).
pub fn request(application: &str, function: Function, id: &str, fields: Vec<Field>) -> Request {
    Request {
        application: application.to_owned(),
        version: String::new(),
        function,
        process: Process::Process,
        authorisers: None,
        user: String::new(),
        password: String::new(),
        transaction_id: id.to_owned(),
        fields,
    }
}

pub fn see_request(application: &str, id: &str) -> Request {
    request(application, Function::See, id, Vec::new())
}

pub fn enquiry_request(name: &str, selection: Vec<(&str, String)>) -> Request {
    request(
        "ENQUIRY.SELECT",
        Function::See,
        name,
        selection
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(field, value)| Field::new(field, value))
            .collect(),
    )
}

/// The core, as the adapter uses it.
#[derive(Debug, Clone)]
pub struct Legacy {
    client: OfsClient,
    /// Where inputs in doubt are remembered (across calls, replicas and restarts).
    store: Store,
    /// Inputs whose outcome was lost and settled by asking the core (for tests and logs).
    ambiguous: Arc<AtomicU64>,
}

fn offline() -> AdapterError {
    AdapterError::Unavailable {
        message: "the legacy core is closed for business (close of business); retry later"
            .to_owned(),
    }
}

impl Legacy {
    pub fn new(client: OfsClient, store: Store) -> Legacy {
        Legacy {
            client,
            store,
            ambiguous: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Inputs so far whose outcome was lost on the way and settled by asking the core.
    pub fn ambiguous_outcomes(&self) -> u64 {
        self.ambiguous.load(Ordering::Relaxed)
    }

    pub fn client(&self) -> &OfsClient {
        &self.client
    }

    /// How long one operation may keep trying: a few call timeouts.
    fn budget(&self) -> Duration {
        self.client
            .config()
            .call_timeout
            .saturating_mul(3)
            .max(Duration::from_secs(2))
    }

    async fn pause(attempt: u32) {
        let ceiling = 10_u64.saturating_mul(1_u64 << attempt.min(6)).min(500);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(1..=ceiling))).await;
    }

    /// Inputs the new record `id` of `application` with `fields` (`input`, probing whether the
    /// record exists).
    pub async fn input_new(
        &self,
        application: &str,
        id: &str,
        fields: Vec<Field>,
    ) -> Result<Done, AdapterError> {
        let request = request(application, Function::Input, id, fields);
        self.input(request, &Probe::exists(application, id)).await
    }

    /// Sends an input so that it takes effect once: lost answers are settled by `probe`
    /// before anything is sent again; an override (`-2`) is accepted and sent again; an
    /// injected `SYSTEM ERROR` (nothing done) is retried. A refusal is mapped to its
    /// canonical code; close of business fails fast with `unavailable`.
    pub async fn input(&self, request: Request, probe: &Probe) -> Result<Done, AdapterError> {
        let deadline = Instant::now() + self.budget();
        let key = doubt_key(&request, probe);
        let mut request = request;
        let mut attempt = 0_u32;
        // Set once an attempt's outcome was lost: a record found later is this call's own.
        let mut sent_before = false;
        loop {
            attempt = attempt.saturating_add(1);
            let unknown = match self.client.call(request.clone()).await {
                Ok(response) => match response.indicator {
                    Indicator::Done => {
                        return Ok(Done {
                            record: response,
                            existed: false,
                        });
                    }
                    Indicator::Override => {
                        if request.field("OVERRIDE.ACCEPTED").is_some() {
                            return Err(AdapterError::internal(format!(
                                "the legacy core asked for an override again: {:?}",
                                response.fields
                            )));
                        }
                        tracing::info!(
                            application = %request.application,
                            id = %request.transaction_id,
                            overrides = ?response.fields.iter().map(|f| f.value.as_str()).collect::<Vec<_>>(),
                            "accepting the legacy core's override"
                        );
                        metrics::counter!("legacy_adapter_overrides_total", "application" => request.application.clone())
                            .increment(1);
                        request.fields.push(Field::new("OVERRIDE.ACCEPTED", "YES"));
                        continue;
                    }
                    Indicator::Offline => return Err(offline()),
                    Indicator::Error => {
                        if says(&response, "LIVE RECORD EXISTS") || says(&response, "DUPLICATE") {
                            return match self.probe(probe, deadline).await? {
                                Some(record) => Ok(Done {
                                    record,
                                    existed: !sent_before,
                                }),
                                None => Err(AdapterError::internal(format!(
                                    "the legacy core says {} exists but does not show it",
                                    request.transaction_id
                                ))),
                            };
                        }
                        if says(&response, "SYSTEM ERROR") && Instant::now() < deadline {
                            Self::pause(attempt).await;
                            continue;
                        }
                        return self
                            .refused(&response, probe, &key, sent_before, deadline)
                            .await;
                    }
                },
                Err(CallError::NotSent { message }) => {
                    if self.client.breaker_open() || Instant::now() >= deadline {
                        return Err(AdapterError::Unavailable { message });
                    }
                    Self::pause(attempt).await;
                    continue;
                }
                Err(CallError::Unknown { message }) => message,
            };
            // The outcome is unknown: ask before sending again.
            sent_before = true;
            self.ambiguous.fetch_add(1, Ordering::Relaxed);
            let until = chrono::Utc::now()
                + chrono::Duration::from_std(self.client.config().in_doubt)
                    .unwrap_or_else(|_| chrono::Duration::seconds(60));
            self.store.mark_in_doubt(&key, until).await?;
            metrics::counter!("legacy_adapter_ambiguous_total", "application" => request.application.clone())
                .increment(1);
            tracing::info!(
                application = %request.application,
                id = %request.transaction_id,
                reason = %unknown,
                "legacy outcome unknown; asking the core"
            );
            if let Some(record) = self.probe(probe, deadline).await? {
                return Ok(Done {
                    record,
                    existed: false,
                });
            }
            if Instant::now() >= deadline {
                return Err(AdapterError::Unavailable {
                    message: format!(
                        "the legacy core's outcome stayed unknown ({unknown}); retrying with the \
                         same request_id is safe"
                    ),
                });
            }
        }
    }

    /// A refusal of an input. When an earlier attempt's answer was lost (in this call, or
    /// in one within the in-doubt window), the core may still carry that attempt out late,
    /// so the refusal is final only if the probe finds nothing and the window has passed;
    /// inside the window the caller is told to retry later.
    async fn refused(
        &self,
        response: &Response,
        probe: &Probe,
        key: &str,
        sent_before: bool,
        deadline: Instant,
    ) -> Result<Done, AdapterError> {
        let until = self.store.in_doubt_until(key).await?;
        if !sent_before && until.is_none() {
            return Err(refusal(response));
        }
        if let Some(record) = self.probe(probe, deadline).await? {
            return Ok(Done {
                record,
                existed: !sent_before,
            });
        }
        match until {
            Some(until) => Err(AdapterError::Unavailable {
                message: format!(
                    "the core refused this attempt ({}), but an earlier attempt whose answer was \
                     lost may still be carried out until {}; retry with the same request_id after that",
                    super::error::error_text(response).1,
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            }),
            None => Err(refusal(response)),
        }
    }

    /// Whether the probe finds the input done: `Some(answer)` or `None` (not done).
    async fn probe(
        &self,
        probe: &Probe,
        deadline: Instant,
    ) -> Result<Option<Response>, AdapterError> {
        let response = self.read_until(probe.request.clone(), deadline).await?;
        Ok((probe.done)(&response).then_some(response))
    }

    /// A read (`S` or an enquiry), retried while no answer comes; a `-1` answer is returned
    /// as it is (the caller decides what `RECORD NOT FOUND` means).
    pub async fn read(&self, request: Request) -> Result<Response, AdapterError> {
        self.read_until(request, Instant::now() + self.budget())
            .await
    }

    async fn read_until(
        &self,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, AdapterError> {
        let mut attempt = 0_u32;
        loop {
            attempt = attempt.saturating_add(1);
            let problem = match self.client.call(request.clone()).await {
                Ok(response) if response.indicator == Indicator::Offline => return Err(offline()),
                Ok(response) if says(&response, "SYSTEM ERROR") => "an injected error".to_owned(),
                Ok(response) => return Ok(response),
                Err(error) => {
                    if self.client.breaker_open() {
                        return Err(AdapterError::Unavailable {
                            message: error.to_string(),
                        });
                    }
                    error.to_string()
                }
            };
            if Instant::now() >= deadline {
                return Err(AdapterError::Unavailable { message: problem });
            }
            Self::pause(attempt).await;
        }
    }

    /// An enquiry that must succeed (`-1` is mapped to its canonical refusal).
    pub async fn enquiry(
        &self,
        name: &str,
        selection: Vec<(&str, String)>,
    ) -> Result<Response, AdapterError> {
        let response = self.read(enquiry_request(name, selection)).await?;
        if response.indicator == Indicator::Done {
            Ok(response)
        } else {
            Err(refusal(&response))
        }
    }

    /// `S` of a record: `None` when the core has no such record.
    pub async fn see(&self, application: &str, id: &str) -> Result<Option<Response>, AdapterError> {
        let response = self.read(see_request(application, id)).await?;
        match response.indicator {
            Indicator::Done => Ok(Some(response)),
            _ if says(&response, "RECORD NOT FOUND") => Ok(None),
            _ => Err(refusal(&response)),
        }
    }
}
