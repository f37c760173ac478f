//! The channel API's JSON: request bodies (parsed strictly: unknown fields are refused) and
//! answers built from the canonical gRPC messages. The answer builders' shapes are
//! described for the API reference (`/openapi.json`) by the schema types at the end.

use corebank_api::deposits::v1 as dpb;
use corebank_api::migration::v1 as mpb;
use corebank_api::payments::v1 as ppb;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::openapi::formats;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    /// Whose account it is. Required with a token not bound to a customer; a
    /// customer-bound token may leave it out (its own customer) or name only its own.
    #[serde(default)]
    #[schema(schema_with = customer_id, required = true)]
    pub customer_id: Option<String>,
    /// The product the account is opened on (its rule picks the side); 404
    /// `unknown_product` when no core has it.
    #[schema(example = "CURRENT-EUR")]
    pub product_code: String,
    /// The opening day; today when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub opened_on: Option<String>,
}

/// The customer ids the cores take: not blank, at most [`CUSTOMER_ID_LENGTH_MAX`]
/// characters.
fn customer_id() -> utoipa::openapi::schema::ObjectBuilder {
    formats::text(CUSTOMER_ID_LENGTH_MAX)
}

/// A customer id's length limit (the deposits module's).
pub const CUSTOMER_ID_LENGTH_MAX: usize = 128;

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashBody {
    #[schema(value_type = formats::Amount)]
    pub amount: String,
    /// The account's currency (else 400 `currency_mismatch`).
    #[schema(value_type = formats::CurrencyCode)]
    pub currency: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    #[schema(value_type = formats::Amount)]
    pub amount: String,
    /// The account's currency (else 400 `currency_mismatch`).
    #[schema(value_type = formats::CurrencyCode)]
    pub currency: String,
    #[serde(default)]
    pub reason: Option<String>,
    /// The hold lapses after this many seconds; never when absent or 0.
    #[serde(default, deserialize_with = "crate::json_integer::optional_integer")]
    pub expires_in_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    #[schema(value_type = formats::AccountId)]
    pub from_account_id: String,
    /// May be another customer's account, on the same core as the source.
    #[schema(value_type = formats::AccountId)]
    pub to_account_id: String,
    #[schema(value_type = formats::Amount)]
    pub amount: String,
    /// The accounts' currency (else 400 `currency_mismatch`).
    #[schema(value_type = formats::CurrencyCode)]
    pub currency: String,
    #[serde(default)]
    pub description: Option<String>,
}

/// The creditor, as ISO 20022 bounds it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PartyBody {
    #[schema(schema_with = party_name)]
    pub name: String,
    /// The account at the party's bank (an IBAN, or the bank's own account id).
    #[schema(schema_with = party_account)]
    pub account: String,
    /// The party's bank: a BIC of 8 or 11 capital letters and digits.
    #[schema(pattern = "^[A-Z0-9]{8}([A-Z0-9]{3})?$")]
    pub agent_bic: String,
}

fn party_name() -> utoipa::openapi::schema::ObjectBuilder {
    formats::text(140)
}

fn party_account() -> utoipa::openapi::schema::ObjectBuilder {
    formats::text(34)
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    #[schema(value_type = formats::AccountId)]
    pub debtor_account_id: String,
    pub creditor: PartyBody,
    #[schema(value_type = formats::Amount)]
    pub amount: String,
    /// The debtor account's currency (else 400 `currency_mismatch`).
    #[schema(value_type = formats::CurrencyCode)]
    pub currency: String,
    /// ISO 20022's end-to-end id; one is made when absent.
    #[serde(default)]
    #[schema(max_length = 35)]
    pub end_to_end_id: Option<String>,
    #[serde(default)]
    #[schema(max_length = 140)]
    pub remittance_information: Option<String>,
}

/// The request bodies that carry an amount and its currency.
pub const MONEY_BODIES: &[&str] = &["CashBody", "HoldBody", "TransferBody", "PaymentBody"];

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

/// An account's balances under the id the channel knows it by.
pub fn balance(a: &dpb::Account, id: &str) -> Value {
    json!({
        "account_id": id,
        "currency": a.currency,
        "balances": balances(a.balances.as_ref()),
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

/// A cross-side transfer (ADR 0014) under the ids the channel knows.
pub fn cross_transfer(t: &mpb::CrossTransfer) -> Value {
    let mut answer = json!({
        "id": t.transfer_id,
        "status": t.status,
        "from_account_id": t.from_reference,
        "to_account_id": t.to_reference,
        "amount": t.amount,
        "currency": t.currency,
        "description": t.description,
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    });
    if !t.failure_code.is_empty() {
        answer["failure"] = json!({ "code": t.failure_code, "message": t.failure_message });
    }
    answer
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

// ------------------------------------------------------------- answer schemas (reference)
//
// The answers above are built as JSON; these types describe the same shapes for the API
// reference only (a test checks that the builders' keys and the schemas' fields agree).
// Amounts and balances are decimal strings; times are RFC 3339 strings, empty when unset.

/// An account's balances, decimal strings in the account's currency.
#[derive(Debug, Clone, ToSchema)]
pub struct BalancesAnswer {
    /// Credits minus debits: what the customer has.
    #[schema(example = "250.00")]
    pub posted: String,
    /// Open holds and pending debits.
    pub held: String,
    /// What can be spent now: posted minus held plus any overdraft allowance.
    pub available: String,
    /// Interest accrued since the last posting, not yet on the account.
    pub accrued_interest: String,
}

/// An account, under the id the channel knows it by.
#[derive(Debug, Clone, ToSchema)]
pub struct AccountAnswer {
    pub id: String,
    pub customer_id: String,
    pub product_code: String,
    pub product_version: i64,
    #[schema(example = "EUR")]
    pub currency: String,
    /// `active`, `dormant`, `frozen` or `closed`.
    pub status: String,
    pub balances: BalancesAnswer,
    pub opened_on: String,
    /// Empty while the account is open.
    pub closed_at: String,
}

/// `GET /v1/accounts/{account_id}/balance`.
#[derive(Debug, Clone, ToSchema)]
pub struct BalanceAnswer {
    pub account_id: String,
    pub currency: String,
    pub balances: BalancesAnswer,
}

/// A deposit or a withdrawal, as booked.
#[derive(Debug, Clone, ToSchema)]
pub struct MovementAnswer {
    pub account_id: String,
    /// `deposit` or `withdrawal`.
    pub kind: String,
    pub amount: String,
    pub currency: String,
    /// The ledger entry that moved the money.
    pub entry_id: String,
    pub recorded_at: String,
    pub balances_after: BalancesAnswer,
}

/// A hold on an account's funds.
#[derive(Debug, Clone, ToSchema)]
pub struct HoldAnswer {
    /// The hold's id on the channel (the one to release it by).
    pub id: String,
    pub account_id: String,
    pub amount: String,
    pub currency: String,
    pub reason: String,
    /// `held`, `released`, `expired` or `captured`.
    pub status: String,
    pub expires_at: String,
    pub placed_at: String,
}

/// A transfer between two accounts on the same core.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct TransferAnswer {
    pub from_account_id: String,
    pub to_account_id: String,
    pub amount: String,
    pub currency: String,
    pub entry_id: String,
    /// The source account's posted balance after the transfer.
    pub from_posted_after: String,
}

/// A transfer between accounts kept by different cores (ADR 0014): a saga that holds the
/// amount on the source's core, credits the destination's, then takes the hold.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct CrossTransferAnswer {
    /// The transfer's id: `GET /v1/transfers/{id}` follows it.
    #[schema(format = Uuid)]
    pub id: String,
    /// `completed`, `pending` (it runs on; it ends completed or failed) or `failed`
    /// (unwound: nothing moved).
    pub status: String,
    pub from_account_id: String,
    pub to_account_id: String,
    pub amount: String,
    pub currency: String,
    pub description: String,
    /// Why it failed (a refusal of either core), when it failed.
    pub failure: Option<FailureAnswer>,
    pub created_at: String,
    pub updated_at: String,
}

/// The stable code and message of a failure.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
pub struct FailureAnswer {
    pub code: String,
    pub message: String,
}

/// What a transfer answers when it is booked: on one core, the entry; across the cores, the
/// transfer that finished within the request's time.
#[derive(Debug, Clone, serde::Serialize, ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "an OpenAPI schema: the answers are built as JSON")]
pub enum TransferBooked {
    OneCore(TransferAnswer),
    AcrossCores(CrossTransferAnswer),
}

/// One line of a statement.
#[derive(Debug, Clone, ToSchema)]
pub struct StatementLineAnswer {
    pub entry_id: String,
    pub recorded_at: String,
    pub value_date: String,
    /// `credit` (money in) or `debit` (money out).
    pub direction: String,
    /// `posted` or `pending`.
    pub bucket: String,
    pub amount: String,
    pub description: String,
    pub running_balance: String,
}

/// A page of an account's statement.
#[derive(Debug, Clone, ToSchema)]
pub struct StatementAnswer {
    pub account_id: String,
    pub currency: String,
    pub lines: Vec<StatementLineAnswer>,
    /// Give it as `cursor` for the next page; empty on the last page.
    pub next_cursor: String,
}

/// `GET /v1/customers/{customer_id}/accounts`.
#[derive(Debug, Clone, ToSchema)]
pub struct CustomerAccountsAnswer {
    pub customer_id: String,
    pub account_ids: Vec<String>,
}

/// The creditor of a payment.
#[derive(Debug, Clone, ToSchema)]
pub struct PartyAnswer {
    pub name: String,
    /// The account at the party's bank (an IBAN, or the bank's own account id).
    pub account: String,
    /// The party's bank (BIC).
    pub agent_bic: String,
}

/// One step of a payment's saga.
#[derive(Debug, Clone, ToSchema)]
pub struct PaymentStepAnswer {
    pub step: String,
    /// `do`, `undo` or `query`.
    pub direction: String,
    pub attempt: u32,
    /// `done`, `failed`, `transient`, `unknown`, `applied` or `not_applied`.
    pub outcome: String,
    pub error: String,
    pub started_at: String,
    pub ended_at: String,
}

/// A payment and where it stands.
#[derive(Debug, Clone, ToSchema)]
pub struct PaymentAnswer {
    pub id: String,
    /// `outbound` or `inbound`.
    pub direction: String,
    /// Outbound: `initiated`, `held`, `screened`, `sent`, `settling`, `settled`, `rejected`,
    /// `unwinding`, `cancelled`, `failed`, `attention`; inbound: `received`, `credited`,
    /// `returned`.
    pub status: String,
    pub debtor_account_id: String,
    pub creditor: PartyAnswer,
    pub amount: String,
    pub currency: String,
    pub end_to_end_id: String,
    /// The ISO 20022 UETR: the same on every hop.
    pub uetr: String,
    pub reason: String,
    pub steps: Vec<PaymentStepAnswer>,
    pub created_at: String,
    pub updated_at: String,
}
