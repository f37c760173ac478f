//! The gateway suite's set-up, through the gateway as a channel would: the benchmark's product
//! routed to the modern side under four eyes, accounts opened and funded, and one read along
//! each path to check that the modern side serves it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use corebank_gateway::auth::dev::Role;
use serde_json::{Value, json};
use uuid::Uuid;

use super::Stack;

/// The product the benchmark's accounts belong to, routed to the modern side.
const PRODUCT_CODE: &str = "BENCH-GW-CURRENT";
/// What each account is funded with: far more than the phases can move out of it.
const FUNDING_AMOUNT: &str = "1000000.00";

pub(crate) fn http_client() -> anyhow::Result<reqwest::Client> {
    // HTTP/1.1 with keep-alive, as a channel's backend would call: one connection per
    // client task in the phases, reused for every request.
    reqwest::Client::builder()
        .no_proxy()
        .tcp_nodelay(true)
        .build()
        .context("building the HTTP client")
}

/// A product on the modern side, routed there for every operation the benchmark uses,
/// through the admin API's four eyes: an operator proposes, an approver approves.
pub(super) async fn route_product_to_modern(
    stack: &Stack,
    http: &reqwest::Client,
    ttl: Duration,
) -> anyhow::Result<()> {
    stack
        .servers
        .create_product(
            &stack.modern_url,
            PRODUCT_CODE,
            "Gateway benchmark current account",
        )
        .await?;
    let operator = stack.token(Role::Operator, "bench-operator", ttl)?;
    let approver = stack.token(Role::Approver, "bench-approver", ttl)?;
    let rules: Vec<Value> = ["accounts.write", "accounts.read", "cash", "transfers"]
        .into_iter()
        .map(|operation| {
            json!({
                "product": PRODUCT_CODE,
                "operation": operation,
                "default_side": "modern",
                "shadow": false,
            })
        })
        .collect();
    let (status, proposed) = send_json(
        http.post(format!("{}/admin/v1/routes/proposals", stack.gateway_url))
            .bearer_auth(&operator)
            .json(&json!({ "rules": rules, "reason": "corebank bench gateway" })),
    )
    .await?;
    anyhow::ensure!(
        status == 201,
        "proposing the benchmark's route: {status} {proposed}"
    );
    let id = proposed
        .get("id")
        .and_then(Value::as_str)
        .with_context(|| format!("no id in the proposal: {proposed}"))?;
    let (status, approved) = send_json(
        http.post(format!(
            "{}/admin/v1/routes/proposals/{id}/approve",
            stack.gateway_url
        ))
        .bearer_auth(&approver)
        .json(&json!({})),
    )
    .await?;
    anyhow::ensure!(
        status == 200,
        "approving the benchmark's route: {status} {approved}"
    );
    println!(
        "gateway: {PRODUCT_CODE} routed to the modern side (proposed by bench-operator, approved by bench-approver)"
    );
    Ok(())
}

/// Sends a request: its status and JSON body (null when it has none).
async fn send_json(request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
    let response = request.send().await.context("calling the gateway")?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .context("reading the gateway's answer")?;
    Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
}

/// Opens `count` accounts through the gateway and funds each with a deposit: their ids.
pub(super) async fn open_accounts(
    stack: &Stack,
    http: &reqwest::Client,
    token: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let token: Arc<str> = Arc::from(token);
    crate::harness::set_up_each(count, |index| {
        let (http, token, base) = (http.clone(), Arc::clone(&token), stack.gateway_url.clone());
        async move {
            let (status, opened) = send_json(
                http.post(format!("{base}/v1/accounts"))
                    .bearer_auth(&token)
                    .header("idempotency-key", Uuid::new_v4().to_string())
                    .json(&json!({
                        "customer_id": format!("bench-customer-{index}"),
                        "product_code": PRODUCT_CODE,
                    })),
            )
            .await?;
            anyhow::ensure!(status == 201, "opening an account: {status} {opened}");
            let id = opened
                .get("id")
                .and_then(Value::as_str)
                .with_context(|| format!("no id in the opened account: {opened}"))?
                .to_owned();
            let (status, funded) = send_json(
                http.post(format!("{base}/v1/accounts/{id}/deposits"))
                    .bearer_auth(&token)
                    .header("idempotency-key", Uuid::new_v4().to_string())
                    .json(&json!({ "amount": FUNDING_AMOUNT, "currency": "EUR" })),
            )
            .await?;
            anyhow::ensure!(status == 201, "funding account {id}: {status} {funded}");
            Ok(id)
        }
    })
    .await
}

/// One balance read through `base`: it must succeed and be served by the modern side.
pub(super) async fn check_read(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    accounts: &[String],
) -> anyhow::Result<()> {
    let account = accounts.first().context("no accounts")?;
    let response = http
        .get(format!("{base}/v1/accounts/{account}/balance"))
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("reading a balance through {base}"))?;
    let status = response.status().as_u16();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response.text().await.unwrap_or_default();
    anyhow::ensure!(
        status == 200 && served_by == "modern",
        "reading a balance through {base}: {status}, served by {served_by:?}: {body}"
    );
    Ok(())
}
