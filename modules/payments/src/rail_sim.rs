//! The clearing rail simulator (`corebank serve rail-sim`, also in `corebank up`): a stand-in
//! for a real clearing system, over HTTP with ISO 20022 XML, on the internal listener.
//!
//! The bank's endpoints (only the bank's payments module may call them,
//! `allowed_callers::RAIL_ENDPOINTS`) take only messages signed with a rail key
//! (`rail_signature`), verified before anything is parsed, each delivery once; a refusal is
//! 401 `{"code", "message", "retry_safe"}`:
//!
//! - `POST {base}/pacs008`: takes a bank's credit transfer (202), then decides it after a
//!   random delay with the configured mix of outcomes: accepted (pacs.002 `ACSC`), rejected
//!   (`RJCT`, reason AC04) or silent (decided, but no pacs.002 is sent: the bank must ask).
//!   A malformed message or a creditor account listed in `refuse_accounts` gets 422.
//! - `GET {base}/payments/{uetr}`: 404 unknown, 202 still undecided, 200 with the pacs.002;
//!   the answer is signed.
//! - `POST {base}/pacs004`: takes a bank's payment return.
//!
//! The controls, for the rail's own operators (`allowed_callers::RAIL_CONTROLS`), need no
//! signature:
//!
//! - `POST {base}/inbound` (JSON): originates a credit transfer to the bank, as if another
//!   bank had sent it, and says how the bank answered.
//! - `GET {base}/returns`: the returns (pacs.004) the bank sent.
//!
//! What the simulator sends the bank (pacs.002, inbound pacs.008) it signs, each attempt as
//! a new delivery, and sends with the rail's certificate.
//!
//! State is in memory: the simulator forgets everything when it stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, OriginalUri, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use corebank_service::Component;
use corebank_service::internal::{Allow, allowed_callers};
use reqwest::Url;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::messages;
use crate::app::rail::{RAIL_MESSAGE_BYTES_MAX, read_limited};
use crate::rail_signature::{self, DELIVERY_MEMORY_MS, Exchange, RailKeys, Refusal};

/// Where the simulator lives on a server.
pub const BASE: &str = "/rail-sim/v1";
/// The controls under [`BASE`], for the rail's own operators: no signature, and only the
/// rail's certificate may call them.
pub const CONTROLS: [&str; 2] = ["/rail-sim/v1/inbound", "/rail-sim/v1/returns"];
/// How many delivery ids the simulator remembers at most; beyond that, and with none old
/// enough to forget, it refuses deliveries (503) rather than forget one a replay could use.
const DELIVERIES_REMEMBERED_MAX: usize = 100_000;
/// How many times a pacs.002 is offered to the bank before the bank has to ask.
const CALLBACK_ATTEMPTS_MAX: u32 = 5;

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct RailConfig {
    /// Where the bank takes pacs.002 and inbound pacs.008 (the payments component's internal
    /// listener), e.g. `https://127.0.0.1:8081/payments/rail/v1`.
    pub bank_url: String,
    /// Weights of accepted, rejected and silent outcomes.
    pub accept: u32,
    pub reject: u32,
    pub silent: u32,
    /// The delay before deciding, picked uniformly in this range (ms).
    pub delay_ms: (u64, u64),
    /// Creditor accounts whose payments the rail refuses outright (422), for tests.
    pub refuse_accounts: Vec<String>,
}

impl Default for RailConfig {
    fn default() -> Self {
        RailConfig {
            bank_url: "https://127.0.0.1:8081/payments/rail/v1".to_owned(),
            accept: 90,
            reject: 8,
            silent: 2,
            delay_ms: (20, 200),
            refuse_accounts: Vec::new(),
        }
    }
}

impl RailConfig {
    /// `accept=90,reject=8,silent=2`.
    pub fn parse_outcomes(&mut self, text: &str) -> Result<(), String> {
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: write outcome=weight, e.g. accept=90"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("{part:?}: the weight is not a whole number"))?;
            match name.trim() {
                "accept" => self.accept = weight,
                "reject" => self.reject = weight,
                "silent" => self.silent = weight,
                other => {
                    return Err(format!(
                        "{other:?}: the outcomes are accept, reject and silent"
                    ));
                }
            }
        }
        if self.accept + self.reject + self.silent == 0 {
            return Err("at least one outcome needs a weight above 0".to_owned());
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct SimPayment {
    msg_id: String,
    end_to_end_id: String,
    /// None until decided: `ACSC` or `RJCT` with a reason.
    decided: Option<(String, String)>,
}

#[derive(Clone)]
struct Rail {
    config: Arc<RailConfig>,
    keys: RailKeys,
    http: reqwest::Client,
    payments: Arc<Mutex<HashMap<Uuid, SimPayment>>>,
    returns: Arc<Mutex<Vec<String>>>,
    deliveries: Arc<Mutex<DeliveryMemory>>,
}

/// The delivery ids the simulator has taken, with when (unix ms): a bounded stand-in for
/// the bank's `payments.rail_deliveries`.
#[derive(Debug, Default)]
struct DeliveryMemory {
    taken_at_ms: HashMap<Uuid, i64>,
}

enum Remembered {
    New,
    Replayed,
    Full,
}

impl DeliveryMemory {
    fn take(&mut self, delivery_id: Uuid, now_ms: i64) -> Remembered {
        if self.taken_at_ms.contains_key(&delivery_id) {
            return Remembered::Replayed;
        }
        if self.taken_at_ms.len() >= DELIVERIES_REMEMBERED_MAX {
            // A delivery older than the memory is refused as expired: it may be forgotten.
            self.taken_at_ms
                .retain(|_, taken_at_ms| now_ms.abs_diff(*taken_at_ms) <= DELIVERY_MEMORY_MS);
            if self.taken_at_ms.len() >= DELIVERIES_REMEMBERED_MAX {
                return Remembered::Full;
            }
        }
        self.taken_at_ms.insert(delivery_id, now_ms);
        Remembered::New
    }
}

/// The simulator's routes, to mount on a component (see [`component`]): it verifies what
/// the bank sends with `keys`, and signs with them what it sends the bank with `http` (mutual
/// TLS as `rail`, answered only by the payments module's certificate:
/// `InternalClients::http_client(component_names::PAYMENTS, …)`).
pub fn router(config: RailConfig, keys: RailKeys, http: reqwest::Client) -> Router {
    let rail = Rail {
        config: Arc::new(config),
        keys,
        http,
        payments: Arc::new(Mutex::new(HashMap::new())),
        returns: Arc::new(Mutex::new(Vec::new())),
        deliveries: Arc::new(Mutex::new(DeliveryMemory::default())),
    };
    Router::new()
        .route(&format!("{BASE}/pacs008"), post(take_pacs008))
        .route(&format!("{BASE}/payments/{{uetr}}"), get(status))
        .route(&format!("{BASE}/pacs004"), post(take_pacs004))
        .route(&format!("{BASE}/returns"), get(list_returns))
        .route(&format!("{BASE}/inbound"), post(originate))
        .layer(DefaultBodyLimit::max(RAIL_MESSAGE_BYTES_MAX))
        .with_state(rail)
}

/// The simulator as a component of its own: its endpoints for the bank's payments module,
/// its controls for the rail's operators.
pub fn component(config: RailConfig, keys: RailKeys, http: reqwest::Client) -> Component {
    let mut component = Component::new("rail-sim").with_internal_routes(
        BASE,
        router(config, keys, http),
        Allow::only(allowed_callers::RAIL_ENDPOINTS),
    );
    // The longest prefix decides who may call: the controls are the rail's own.
    for control in CONTROLS {
        component = component.with_internal_routes(
            control,
            Router::new(),
            Allow::only(allowed_callers::RAIL_CONTROLS),
        );
    }
    component
}

/// Why the simulator did not take a delivery.
enum NotTaken {
    Signature(Refusal),
    MemoryFull,
    StatePoisoned,
}

impl NotTaken {
    fn into_response(self, path: &str) -> Response {
        let (status, code, message, retry_safe) = match self {
            NotTaken::Signature(refusal) => {
                tracing::warn!(
                    http.path = path,
                    rail.refusal = refusal.code(),
                    error = %refusal,
                    "the rail simulator refused a delivery"
                );
                (
                    StatusCode::UNAUTHORIZED,
                    refusal.code(),
                    refusal.to_string(),
                    false,
                )
            }
            NotTaken::MemoryFull => (
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the simulator remembers too many deliveries; send again later".to_owned(),
                true,
            ),
            NotTaken::StatePoisoned => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "state poisoned".to_owned(),
                false,
            ),
        };
        (
            status,
            axum::Json(serde_json::json!({
                "code": code,
                "message": message,
                "retry_safe": retry_safe,
            })),
        )
            .into_response()
    }
}

/// Checks the bank's signature on a request and takes its delivery once.
fn verify_delivery(
    rail: &Rail,
    method: &str,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(), NotTaken> {
    let now_ms = Utc::now().timestamp_millis();
    let delivery = rail
        .keys
        .verify(headers, Exchange::Request { method, path }, body, now_ms)
        .map_err(NotTaken::Signature)?;
    let mut deliveries = rail
        .deliveries
        .lock()
        .map_err(|_| NotTaken::StatePoisoned)?;
    match deliveries.take(delivery.delivery_id(), now_ms) {
        Remembered::New => Ok(()),
        Remembered::Replayed => Err(NotTaken::Signature(Refusal::Replayed {
            delivery_id: delivery.delivery_id(),
        })),
        Remembered::Full => Err(NotTaken::MemoryFull),
    }
}

/// The bank's URL for `suffix` (`/pacs002`) under the configured `bank_url`.
fn bank_endpoint(rail: &Rail, suffix: &str) -> Result<Url, String> {
    let text = format!("{}{suffix}", rail.config.bank_url.trim_end_matches('/'));
    Url::parse(&text).map_err(|error| {
        format!(
            "the bank's URL {:?} (COREBANK_RAIL_BANK_URL) is not a URL: {error}",
            rail.config.bank_url
        )
    })
}

/// Posts `xml` to the bank at `url`, signed as a new delivery.
async fn deliver(rail: &Rail, url: &Url, xml: &str) -> reqwest::Result<reqwest::Response> {
    let signature = rail.keys.sign(
        Exchange::Request {
            method: "POST",
            path: url.path(),
        },
        xml.as_bytes(),
    );
    rail.http
        .post(url.clone())
        .header(rail_signature::HEADER, signature)
        .header("content-type", "application/xml")
        .body(xml.to_owned())
        .send()
        .await
}

/// A message the bank posted, as text, once its signature holds and its delivery is taken:
/// what the routes that take messages read. A request that fails either check is answered
/// before the route runs.
struct PostedXml(String);

impl FromRequest<Rail> for PostedXml {
    type Rejection = Response;

    async fn from_request(request: Request, rail: &Rail) -> Result<PostedXml, Response> {
        let (OriginalUri(uri), headers, body) =
            <(OriginalUri, HeaderMap, Bytes)>::from_request(request, rail).await?;
        if let Err(refusal) = verify_delivery(rail, "POST", uri.path(), &headers, &body) {
            return Err(refusal.into_response(uri.path()));
        }
        String::from_utf8(body.to_vec())
            .map(PostedXml)
            .map_err(|_| (StatusCode::UNPROCESSABLE_ENTITY, "not UTF-8").into_response())
    }
}

async fn take_pacs008(State(rail): State<Rail>, PostedXml(body): PostedXml) -> Response {
    let transfer = match messages::parse_inbound(&body) {
        Ok(transfer) => transfer,
        Err(error) => return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).into_response(),
    };
    if rail
        .config
        .refuse_accounts
        .contains(&transfer.creditor_account)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the rail refuses payments to {}", transfer.creditor_account),
        )
            .into_response();
    }
    let uetr = transfer.uetr;
    let fresh = match rail.payments.lock() {
        Ok(mut payments) => {
            let fresh = !payments.contains_key(&uetr);
            payments.entry(uetr).or_insert_with(|| SimPayment {
                msg_id: transfer.msg_id.clone(),
                end_to_end_id: transfer.end_to_end_id.clone(),
                decided: None,
            });
            fresh
        }
        Err(_) => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "state poisoned").into_response();
        }
    };
    if fresh {
        tokio::spawn(decide(rail, uetr));
    }
    (StatusCode::ACCEPTED, uetr.to_string()).into_response()
}

async fn decide(rail: Rail, uetr: Uuid) {
    let (low, high) = rail.config.delay_ms;
    tokio::time::sleep(Duration::from_millis(fastrand::u64(low..=high.max(low)))).await;
    let total = rail.config.accept + rail.config.reject + rail.config.silent;
    let pick = fastrand::u32(0..total.max(1));
    let (status, reason, silent) = if pick < rail.config.accept {
        ("ACSC", "", false)
    } else if pick < rail.config.accept + rail.config.reject {
        ("RJCT", "AC04", false)
    } else {
        ("ACSC", "", true)
    };
    let payment = rail.payments.lock().ok().and_then(|mut payments| {
        payments.get_mut(&uetr).map(|p| {
            p.decided = Some((status.to_owned(), reason.to_owned()));
            p.clone()
        })
    });
    let Some(payment) = payment else { return };
    if silent {
        return;
    }
    let Ok(xml) = messages::pacs002_for(
        &payment.msg_id,
        &payment.end_to_end_id,
        uetr,
        status,
        reason,
    ) else {
        return;
    };
    let url = match bank_endpoint(&rail, "/pacs002") {
        Ok(url) => url,
        Err(error) => {
            tracing::error!(error, "the rail simulator cannot deliver a pacs.002");
            return;
        }
    };
    // The bank may be down for a moment: a few tries (each signed anew), then it has to ask.
    for attempt in 0..CALLBACK_ATTEMPTS_MAX {
        let sent = deliver(&rail, &url, &xml).await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
    }
}

/// The answer to the bank's question about a UETR, signed for the path it asked.
fn signed_answer(rail: &Rail, path: &str, status: StatusCode, body: String) -> Response {
    let signature = rail.keys.sign(
        Exchange::Response {
            status: status.as_u16(),
            path,
        },
        body.as_bytes(),
    );
    (status, [(rail_signature::HEADER, signature)], body).into_response()
}

async fn status(
    State(rail): State<Rail>,
    Path(uetr): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> Response {
    if let Err(refusal) = verify_delivery(&rail, "GET", uri.path(), &headers, b"") {
        return refusal.into_response(uri.path());
    }
    let Ok(uetr) = Uuid::parse_str(&uetr) else {
        return (StatusCode::BAD_REQUEST, "not a UETR").into_response();
    };
    let payment = rail
        .payments
        .lock()
        .ok()
        .and_then(|p| p.get(&uetr).cloned());
    let (status, body) = match payment {
        None => (StatusCode::NOT_FOUND, "unknown UETR".to_owned()),
        Some(SimPayment { decided: None, .. }) => (StatusCode::ACCEPTED, "pending".to_owned()),
        Some(SimPayment {
            decided: Some((status, reason)),
            msg_id,
            end_to_end_id,
        }) => match messages::pacs002_for(&msg_id, &end_to_end_id, uetr, &status, &reason) {
            Ok(xml) => (StatusCode::OK, xml),
            Err(error) => {
                return (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response();
            }
        },
    };
    signed_answer(&rail, uri.path(), status, body)
}

async fn take_pacs004(State(rail): State<Rail>, PostedXml(body): PostedXml) -> Response {
    let message_id = match messages::parse_return(&body) {
        Ok((message_id, _)) => message_id,
        Err(error) => return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).into_response(),
    };
    // A return sent again (same message id) is taken once, as a rail deduplicates.
    if let Ok(mut returns) = rail.returns.lock()
        && !returns
            .iter()
            .any(|stored| messages::parse_return(stored).is_ok_and(|(id, _)| id == message_id))
    {
        returns.push(body);
    }
    StatusCode::ACCEPTED.into_response()
}

async fn list_returns(State(rail): State<Rail>) -> impl IntoResponse {
    let returns = rail.returns.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(returns)
}

/// A credit transfer another bank sends to ours.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginateRequest {
    pub creditor_account: String,
    /// A decimal string, e.g. "25.00".
    pub amount: String,
    pub currency: String,
    pub debtor_name: String,
    /// Chosen when absent; send the same one again to deliver the payment twice.
    pub uetr: Option<Uuid>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OriginateAnswer {
    pub uetr: Uuid,
    /// The bank's HTTP status.
    pub bank_status: u16,
    pub bank_answer: String,
}

async fn originate(
    State(rail): State<Rail>,
    axum::Json(request): axum::Json<OriginateRequest>,
) -> impl IntoResponse {
    let uetr = request.uetr.unwrap_or_else(Uuid::new_v4);
    let Ok(amount) = request.amount.parse::<Decimal>() else {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{:?} is not an amount", request.amount),
        )
            .into_response();
    };
    let xml = match messages::inbound_pacs008(
        uetr,
        &request.creditor_account,
        amount,
        &request.currency,
        &request.debtor_name,
    ) {
        Ok(xml) => xml,
        Err(error) => return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()).into_response(),
    };
    let url = match bank_endpoint(&rail, "/pacs008") {
        Ok(url) => url,
        Err(error) => return (StatusCode::INTERNAL_SERVER_ERROR, error).into_response(),
    };
    match deliver(&rail, &url, &xml).await {
        Ok(response) => {
            let bank_status = response.status().as_u16();
            let bank_answer = read_limited(response, RAIL_MESSAGE_BYTES_MAX)
                .await
                .map(|body| String::from_utf8_lossy(&body).into_owned())
                .unwrap_or_default();
            axum::Json(OriginateAnswer {
                uetr,
                bank_status,
                bank_answer,
            })
            .into_response()
        }
        Err(error) => (
            StatusCode::BAD_GATEWAY,
            format!("the bank did not answer: {error}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_simulator_refuses_a_delivery_id_twice_and_forgets_only_what_is_old() {
        let mut memory = DeliveryMemory::default();
        let first = Uuid::new_v4();
        assert!(matches!(memory.take(first, 1_000), Remembered::New));
        assert!(matches!(memory.take(first, 2_000), Remembered::Replayed));
        // Full of recent deliveries: refuse rather than forget one a replay could use.
        for _ in 1..DELIVERIES_REMEMBERED_MAX {
            memory.taken_at_ms.insert(Uuid::new_v4(), 2_000);
        }
        assert!(matches!(
            memory.take(Uuid::new_v4(), 3_000),
            Remembered::Full
        ));
        // Once they are older than the memory, they make room.
        let later = 3_000 + i64::try_from(DELIVERY_MEMORY_MS).unwrap_or(i64::MAX);
        assert!(matches!(
            memory.take(Uuid::new_v4(), later),
            Remembered::New
        ));
        assert_eq!(memory.taken_at_ms.len(), 1);
    }
}
