//! A payment as the module stores it: outbound or inbound, with what it is about.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

/// A payment as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRecord {
    pub id: Uuid,
    pub request_id: Uuid,
    pub direction: String,
    pub status: String,
    pub debtor_account_id: String,
    pub debtor_name: String,
    pub creditor_name: String,
    pub creditor_account: String,
    pub creditor_agent_bic: String,
    pub amount: Decimal,
    pub currency: String,
    pub end_to_end_id: String,
    pub uetr: Uuid,
    pub remittance_information: String,
    pub reason: String,
    pub content: Value,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}
