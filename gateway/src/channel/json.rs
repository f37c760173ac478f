//! The channel API's JSON: request bodies (parsed strictly: unknown fields are refused) and
//! answers built from the canonical gRPC messages.

use corebank_api::deposits::v1 as dpb;
use corebank_api::payments::v1 as ppb;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    /// Defaults to the token's customer for a customer-bound token.
    #[serde(default)]
    pub customer_id: Option<String>,
    pub product_code: String,
    #[serde(default)]
    pub opened_on: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CashBody {
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub expires_in_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    pub from_account_id: String,
    pub to_account_id: String,
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyBody {
    pub name: String,
    pub account: String,
    pub agent_bic: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    pub debtor_account_id: String,
    pub creditor: PartyBody,
    pub amount: String,
    pub currency: String,
    #[serde(default)]
    pub end_to_end_id: Option<String>,
    #[serde(default)]
    pub remittance_information: Option<String>,
}

pub fn balances(b: Option<&dpb::Balances>) -> Value {
    let b = b.cloned().unwrap_or_default();
    json!({
        "posted": b.posted,
        "held": b.held,
        "available": b.available,
        "accrued_interest": b.accrued_interest,
    })
}

/// An account under the id the channel knows it by.
pub fn account(a: &dpb::Account, id: &str) -> Value {
    json!({
        "id": id,
        "customer_id": a.customer_id,
        "product_code": a.product_code,
        "product_version": a.product_version,
        "currency": a.currency,
        "status": a.status,
        "balances": balances(a.balances.as_ref()),
        "opened_on": a.opened_on,
        "closed_at": a.closed_at,
    })
}

pub fn movement(m: &dpb::Movement, account_id: &str) -> Value {
    json!({
        "account_id": account_id,
        "kind": m.kind,
        "amount": m.amount,
        "currency": m.currency,
        "entry_id": m.entry_id,
        "recorded_at": m.recorded_at,
        "balances_after": balances(m.balances_after.as_ref()),
    })
}

pub fn hold(h: &dpb::Hold, account_id: &str) -> Value {
    json!({
        "id": h.id,
        "account_id": account_id,
        "amount": h.amount,
        "currency": h.currency,
        "reason": h.reason,
        "status": h.status,
        "expires_at": h.expires_at,
        "placed_at": h.placed_at,
    })
}

pub fn transfer(t: &ppb::InternalTransferResult, from: &str, to: &str) -> Value {
    json!({
        "from_account_id": from,
        "to_account_id": to,
        "amount": t.amount,
        "currency": t.currency,
        "entry_id": t.entry_id,
        "from_posted_after": t.from_posted_after,
    })
}

pub fn statement(s: &dpb::Statement, account_id: &str) -> Value {
    json!({
        "account_id": account_id,
        "currency": s.currency,
        "lines": s.lines.iter().map(|l| json!({
            "entry_id": l.entry_id,
            "recorded_at": l.recorded_at,
            "value_date": l.value_date,
            "direction": l.direction,
            "bucket": l.bucket,
            "amount": l.amount,
            "description": l.description,
            "running_balance": l.running_balance,
        })).collect::<Vec<_>>(),
        "next_cursor": s.next_cursor,
    })
}

pub fn payment(p: &ppb::Payment, debtor_account_id: &str) -> Value {
    let creditor = p.creditor.clone().unwrap_or_default();
    json!({
        "id": p.id,
        "direction": p.direction,
        "status": p.status,
        "debtor_account_id": debtor_account_id,
        "creditor": {
            "name": creditor.name,
            "account": creditor.account,
            "agent_bic": creditor.agent_bic,
        },
        "amount": p.amount,
        "currency": p.currency,
        "end_to_end_id": p.end_to_end_id,
        "uetr": p.uetr,
        "reason": p.reason,
        "steps": p.steps.iter().map(|s| json!({
            "step": s.step,
            "direction": s.direction,
            "attempt": s.attempt,
            "outcome": s.outcome,
            "error": s.error,
            "started_at": s.started_at,
            "ended_at": s.ended_at,
        })).collect::<Vec<_>>(),
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}
