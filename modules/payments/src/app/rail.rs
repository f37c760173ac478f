//! The bank's side of the rail boundary: its calls to the rail, each signed
//! (`rail_signature`), the rail's signed answers about a payment, and the memory of the
//! deliveries the rail made to the bank (`payments.rail_deliveries`), which refuses a
//! replay and forgets what no replay can reuse.

use std::time::Duration;

use chrono::{TimeDelta, Utc};
use corebank_db::{Transaction, TxError};
use reqwest::{Method, Url};
use uuid::Uuid;

use super::{Parts, Payments, tx_error};
use crate::domain::error::PaymentsError;
use crate::rail_signature::{self, DELIVERY_MEMORY_MS, Exchange, Refusal, VerifiedDelivery};
use crate::store;

/// The largest message either side of the rail boundary takes, in or out: a pacs.008 of one
/// transaction is a few kilobytes.
pub const RAIL_MESSAGE_BYTES_MAX: usize = 1024 * 1024;
/// How often each replica forgets the deliveries no replay can reuse.
const DELIVERY_PURGE_INTERVAL: Duration = Duration::from_secs(60);
/// At most this many rows per purge transaction, so that a purge never holds many locks.
const DELIVERY_PURGE_BATCH_ROWS_MAX: i64 = 1_000;
/// At most this many purge transactions per run: 10,000 deliveries a minute, far above what
/// a rail sends; a backlog beyond that waits for the next run.
const DELIVERY_PURGE_BATCHES_PER_RUN_MAX: u32 = 10;

/// The rail's URL for `suffix` (`/pacs008`) under the configured base (`rail_url`).
pub(crate) fn endpoint(rail_url: &str, suffix: &str) -> Result<Url, PaymentsError> {
    let text = format!("{}{suffix}", rail_url.trim_end_matches('/'));
    Url::parse(&text).map_err(|error| {
        PaymentsError::invalid(
            "rail_url",
            format!("{rail_url:?} is not a URL like https://127.0.0.1:8082/rail-sim/v1: {error}"),
        )
    })
}

/// Reads a body of at most `bytes_max` bytes.
pub(crate) async fn read_limited(
    mut response: reqwest::Response,
    bytes_max: usize,
) -> Result<Vec<u8>, PaymentsError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| PaymentsError::Unavailable {
            message: format!("the rail's answer broke off: {error}"),
        })?
    {
        if body.len().saturating_add(chunk.len()) > bytes_max {
            return Err(PaymentsError::Unavailable {
                message: format!("the rail's answer is longer than {bytes_max} bytes"),
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl Parts {
    /// Sends `body` (ISO 20022 XML, or nothing) to `url` at the rail, signed as a new
    /// delivery. Each call signs again: a retry is a new delivery of the same message.
    pub(crate) async fn call_rail(
        &self,
        method: Method,
        url: &Url,
        body: String,
    ) -> Result<reqwest::Response, PaymentsError> {
        let signature = self.config.rail_keys.sign(
            Exchange::Request {
                method: method.as_str(),
                path: url.path(),
            },
            body.as_bytes(),
        );
        let mut request = self
            .config
            .rail_http
            .request(method, url.clone())
            .header(rail_signature::HEADER, signature);
        if !body.is_empty() {
            request = request.header("content-type", "application/xml").body(body);
        }
        request
            .send()
            .await
            .map_err(|error| PaymentsError::Unavailable {
                message: format!("the rail did not answer: {error}"),
            })
    }
}

/// What the rail says of a UETR: `None` unknown, `Some(None)` known but undecided,
/// `Some(Some((status, reason)))` decided. The rail signs its answer: one that does not
/// verify is taken as no answer (the saga asks again) and logged.
pub async fn rail_status(
    payments: &Parts,
    uetr: &str,
) -> Result<Option<Option<(String, String)>>, PaymentsError> {
    let uetr = Uuid::parse_str(uetr)
        .map_err(|_| PaymentsError::invalid("uetr", format!("{uetr:?} is not a UETR")))?;
    let url = endpoint(&payments.config.rail_url, &format!("/payments/{uetr}"))?;
    let response = payments.call_rail(Method::GET, &url, String::new()).await?;
    let status = response.status().as_u16();
    if !matches!(status, 200 | 202 | 404) {
        // Nothing is taken from any other answer (a refusal of our signature, a failure):
        // it only says the question must be asked again.
        return Err(PaymentsError::Unavailable {
            message: format!("the rail answered {status}"),
        });
    }
    let headers = response.headers().clone();
    let body = read_limited(response, RAIL_MESSAGE_BYTES_MAX).await?;
    // The answer is bound to the path asked (the UETR) and to its status. It is not
    // remembered as a delivery: it comes back on the connection the bank opened to the
    // rail's certificate, for the request it just made, so nobody else can replay it there.
    let exchange = Exchange::Response {
        status,
        path: url.path(),
    };
    if let Err(refusal) =
        payments
            .config
            .rail_keys
            .verify(&headers, exchange, &body, Utc::now().timestamp_millis())
    {
        tracing::warn!(
            payment.uetr = %uetr,
            rail.refusal = refusal.code(),
            error = %refusal,
            "the rail's answer about a payment was refused"
        );
        return Err(PaymentsError::Unavailable {
            message: format!("the rail's answer about {uetr} was refused: {refusal}"),
        });
    }
    if status == 404 {
        return Ok(None);
    }
    if status == 202 {
        return Ok(Some(None));
    }
    let xml = String::from_utf8(body).map_err(|_| PaymentsError::Unavailable {
        message: "the rail's pacs.002 is not UTF-8".to_owned(),
    })?;
    let (_, status, reason) = super::messages::parse_status(&xml)?;
    Ok(Some(Some((status, reason))))
}

/// Takes a verified delivery from the rail, in the transaction of its effect: a delivery id
/// taken before aborts the transaction as `replayed`, so a replay changes nothing.
pub(crate) async fn take_delivery(
    tx: &Transaction<'_>,
    delivery: &VerifiedDelivery,
) -> Result<(), TxError<PaymentsError>> {
    if store::record_rail_delivery(tx, delivery, Utc::now()).await? {
        return Ok(());
    }
    Err(TxError::Abort(PaymentsError::RailDelivery {
        refusal: Refusal::Replayed {
            delivery_id: delivery.delivery_id(),
        },
    }))
}

impl Payments {
    /// Forgets the deliveries received more than [`DELIVERY_MEMORY_MS`] ago (a replay of
    /// one is refused as expired by its timestamp), in bounded batches; returns how many
    /// went. Every replica may run it: the batches only delete.
    pub async fn purge_rail_deliveries(&self) -> Result<u64, PaymentsError> {
        let memory =
            TimeDelta::from_std(Duration::from_millis(DELIVERY_MEMORY_MS)).map_err(|error| {
                PaymentsError::Internal {
                    message: format!("the delivery memory does not fit a time span: {error}"),
                }
            })?;
        let before = Utc::now() - memory;
        let mut purged: u64 = 0;
        for _ in 0..DELIVERY_PURGE_BATCHES_PER_RUN_MAX {
            let deleted = self
                .db
                .run_tx("payments_rail_deliveries_purge", |tx| {
                    Box::pin(async move {
                        store::purge_rail_deliveries(&tx, before, DELIVERY_PURGE_BATCH_ROWS_MAX)
                            .await
                    })
                })
                .await
                .map_err(tx_error)?;
            purged = purged.saturating_add(deleted);
            if i64::try_from(deleted).unwrap_or(i64::MAX) < DELIVERY_PURGE_BATCH_ROWS_MAX {
                break;
            }
        }
        Ok(purged)
    }
}

/// Purges old deliveries every [`DELIVERY_PURGE_INTERVAL`] until `shutdown`.
pub(crate) async fn purge_deliveries_until(
    payments: Payments,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticks = tokio::time::interval(DELIVERY_PURGE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match payments.purge_rail_deliveries().await {
            Ok(0) => {}
            Ok(purged) => tracing::debug!(
                rail.deliveries_purged = purged,
                "old rail deliveries forgotten"
            ),
            // The next run tries again; until then the table only keeps a few rows longer.
            Err(error) => tracing::warn!(error = %error, "purging old rail deliveries failed"),
        }
    }
}
