//! The clearing rail simulator (`corebank serve rail-sim`, also in `corebank up`): a stand-in
//! for a real clearing system, over HTTP with ISO 20022 XML.
//!
//! - `POST {base}/pacs008`: takes a bank's credit transfer (202), then decides it after a
//!   random delay with the configured mix of outcomes: accepted (pacs.002 `ACSC`), rejected
//!   (`RJCT`, reason AC04) or silent (decided, but no pacs.002 is sent: the bank must ask).
//!   A malformed message or a creditor account listed in `refuse_accounts` gets 422.
//! - `GET {base}/payments/{uetr}`: 404 unknown, 202 still undecided, 200 with the pacs.002.
//! - `POST {base}/pacs004`: takes a bank's payment return.
//! - `POST {base}/inbound` (JSON): originates a credit transfer to the bank, as if another
//!   bank had sent it, and says how the bank answered.
//!
//! State is in memory: the simulator forgets everything when it stops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::app::messages;

/// Where the simulator lives on a server.
pub const BASE: &str = "/rail-sim/v1";

/// How the simulator behaves.
#[derive(Debug, Clone)]
pub struct RailConfig {
    /// Where the bank takes pacs.002 and inbound pacs.008, e.g.
    /// `http://127.0.0.1:8080/payments/rail/v1`.
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
            bank_url: "http://127.0.0.1:8080/payments/rail/v1".to_owned(),
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
    payments: Arc<Mutex<HashMap<Uuid, SimPayment>>>,
    returns: Arc<Mutex<Vec<String>>>,
    http: reqwest::Client,
}

/// The simulator's routes, to mount on a component.
pub fn router(config: RailConfig) -> Router {
    let rail = Rail {
        config: Arc::new(config),
        payments: Arc::new(Mutex::new(HashMap::new())),
        returns: Arc::new(Mutex::new(Vec::new())),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default(),
    };
    Router::new()
        .route(&format!("{BASE}/pacs008"), post(take_pacs008))
        .route(&format!("{BASE}/payments/{{uetr}}"), get(status))
        .route(&format!("{BASE}/pacs004"), post(take_pacs004))
        .route(&format!("{BASE}/returns"), get(list_returns))
        .route(&format!("{BASE}/inbound"), post(originate))
        .with_state(rail)
}

async fn take_pacs008(State(rail): State<Rail>, body: String) -> impl IntoResponse {
    let transfer = match messages::parse_inbound(&body) {
        Ok(transfer) => transfer,
        Err(error) => return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
    };
    if rail
        .config
        .refuse_accounts
        .contains(&transfer.creditor_account)
    {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the rail refuses payments to {}", transfer.creditor_account),
        );
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
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                "state poisoned".to_owned(),
            );
        }
    };
    if fresh {
        tokio::spawn(decide(rail, uetr));
    }
    (StatusCode::ACCEPTED, uetr.to_string())
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
    // The bank may be down for a moment: a few tries, then it has to ask.
    for attempt in 0..5_u32 {
        let sent = rail
            .http
            .post(format!("{}/pacs002", rail.config.bank_url))
            .header("content-type", "application/xml")
            .body(xml.clone())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100 * u64::from(attempt + 1))).await;
    }
}

async fn status(State(rail): State<Rail>, Path(uetr): Path<String>) -> impl IntoResponse {
    let Ok(uetr) = Uuid::parse_str(&uetr) else {
        return (StatusCode::BAD_REQUEST, "not a UETR".to_owned());
    };
    let payment = rail
        .payments
        .lock()
        .ok()
        .and_then(|p| p.get(&uetr).cloned());
    match payment {
        None => (StatusCode::NOT_FOUND, "unknown UETR".to_owned()),
        Some(SimPayment { decided: None, .. }) => (StatusCode::ACCEPTED, "pending".to_owned()),
        Some(SimPayment {
            decided: Some((status, reason)),
            msg_id,
            end_to_end_id,
        }) => match messages::pacs002_for(&msg_id, &end_to_end_id, uetr, &status, &reason) {
            Ok(xml) => (StatusCode::OK, xml),
            Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        },
    }
}

async fn take_pacs004(State(rail): State<Rail>, body: String) -> impl IntoResponse {
    let message_id = match messages::parse_return(&body) {
        Ok((message_id, _)) => message_id,
        Err(error) => return (StatusCode::UNPROCESSABLE_ENTITY, error.to_string()),
    };
    // A return sent again (same message id) is taken once, as a rail deduplicates.
    if let Ok(mut returns) = rail.returns.lock()
        && !returns
            .iter()
            .any(|stored| messages::parse_return(stored).is_ok_and(|(id, _)| id == message_id))
    {
        returns.push(body);
    }
    (StatusCode::ACCEPTED, String::new())
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
    match rail
        .http
        .post(format!("{}/pacs008", rail.config.bank_url))
        .header("content-type", "application/xml")
        .body(xml)
        .send()
        .await
    {
        Ok(response) => {
            let bank_status = response.status().as_u16();
            let bank_answer = response.text().await.unwrap_or_default();
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
