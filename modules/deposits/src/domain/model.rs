//! Products and accounts, and the rules that need no I/O.

use chrono::{DateTime, NaiveDate, Utc};
use corebank_kernel::Currency;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::error::DepositsError;
use crate::domain::interest::{DayCount, PostingFrequency, RateTier, TieredRate};

/// Current or savings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    Current,
    Savings,
}

impl ProductKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProductKind::Current => "current",
            ProductKind::Savings => "savings",
        }
    }

    pub fn parse(s: &str) -> Option<ProductKind> {
        match s {
            "current" => Some(ProductKind::Current),
            "savings" => Some(ProductKind::Savings),
            _ => None,
        }
    }
}

/// One version of a deposit product.
#[derive(Debug, Clone, PartialEq)]
pub struct Product {
    pub code: String,
    pub version: i64,
    pub name: String,
    pub kind: ProductKind,
    pub currency: Currency,
    pub rate_tiers: Vec<RateTier>,
    pub day_count: DayCount,
    pub posting_frequency: PostingFrequency,
    pub minimum_balance: Decimal,
    pub overdraft_limit: Decimal,
    pub overdraft_rate: Decimal,
    pub dormancy_days: u32,
    pub per_transfer_limit: Option<Decimal>,
    pub daily_transfer_limit: Option<Decimal>,
    pub created_at: DateTime<Utc>,
}

impl Product {
    /// The rate table.
    pub fn rates(&self) -> Result<TieredRate, DepositsError> {
        TieredRate::new(self.rate_tiers.clone())
            .map_err(|e| DepositsError::invalid("rate_tiers", e.to_string()))
    }

    /// The ledger limit of an account of this product: an overdraft allowance, or (negative)
    /// the minimum balance to keep.
    pub fn ledger_limit_amount(&self) -> Decimal {
        if self.overdraft_limit > Decimal::ZERO {
            self.overdraft_limit
        } else {
            -self.minimum_balance
        }
    }

    /// Checks a new product; the version is assigned by the store.
    pub fn validate(&self) -> Result<(), DepositsError> {
        let code_ok = !self.code.is_empty()
            && self.code.len() <= 64
            && self
                .code
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !code_ok {
            return Err(DepositsError::invalid(
                "code",
                "1-64 characters of A-Z a-z 0-9 - _ .",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(DepositsError::invalid("name", "a product needs a name"));
        }
        self.rates()?;
        let money = |field: &'static str, amount: Decimal| -> Result<(), DepositsError> {
            if amount.is_sign_negative() && !amount.is_zero() {
                return Err(DepositsError::invalid(field, "must not be negative"));
            }
            corebank_kernel::Money::new(amount, self.currency)
                .map(|_| ())
                .map_err(|e| DepositsError::invalid(field, e.to_string()))
        };
        money("minimum_balance", self.minimum_balance)?;
        money("overdraft_limit", self.overdraft_limit)?;
        if let Some(limit) = self.per_transfer_limit {
            money("per_transfer_limit", limit)?;
        }
        if let Some(limit) = self.daily_transfer_limit {
            money("daily_transfer_limit", limit)?;
        }
        if self.minimum_balance > Decimal::ZERO && self.overdraft_limit > Decimal::ZERO {
            return Err(DepositsError::invalid(
                "overdraft_limit",
                "a product has a minimum balance or an overdraft, not both",
            ));
        }
        if self.kind == ProductKind::Savings && self.overdraft_limit > Decimal::ZERO {
            return Err(DepositsError::invalid(
                "overdraft_limit",
                "savings products have no overdraft",
            ));
        }
        if self.overdraft_rate < Decimal::ZERO || self.overdraft_rate > Decimal::ONE {
            return Err(DepositsError::invalid(
                "overdraft_rate",
                "a yearly rate as a fraction between 0 and 1 (0.12 is 12 %)",
            ));
        }
        Ok(())
    }
}

/// Where an account is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Active,
    Dormant,
    Frozen,
    /// Being closed: no new movements while the balance is swept out (ADR 0010).
    Closing,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Dormant => "dormant",
            AccountStatus::Frozen => "frozen",
            AccountStatus::Closing => "closing",
            AccountStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<AccountStatus> {
        match s {
            "active" => Some(AccountStatus::Active),
            "dormant" => Some(AccountStatus::Dormant),
            "frozen" => Some(AccountStatus::Frozen),
            "closing" => Some(AccountStatus::Closing),
            "closed" => Some(AccountStatus::Closed),
            _ => None,
        }
    }
}

/// A deposit account as this module keeps it (its money is in the ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: Uuid,
    pub customer_id: String,
    pub product_code: String,
    pub product_version: i64,
    pub currency: Currency,
    pub status: AccountStatus,
    pub ledger_account_id: Uuid,
    pub accrued_account_id: Uuid,
    pub opened_on: NaiveDate,
    pub last_customer_activity_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Interest is accrued up to and including this day (the day before opening at first).
    pub accrued_through: NaiveDate,
    /// The current posting period's interest, unrounded, and what of it went to the ledger.
    pub period_precise: Decimal,
    pub period_posted: Decimal,
    pub created_at: DateTime<Utc>,
}

impl Account {
    /// Refuses money out of an account that cannot give it.
    pub fn check_debit(&self) -> Result<(), DepositsError> {
        match self.status {
            AccountStatus::Active => Ok(()),
            AccountStatus::Dormant => Err(DepositsError::AccountDormant {
                account_id: self.id.to_string(),
            }),
            AccountStatus::Frozen => Err(DepositsError::AccountFrozen {
                account_id: self.id.to_string(),
            }),
            // A closing account refuses as a closed one does: its balance is being paid out.
            AccountStatus::Closing | AccountStatus::Closed => Err(DepositsError::AccountClosed {
                account_id: self.id.to_string(),
            }),
        }
    }

    /// Refuses money into an account that cannot take it (a dormant one can: a customer's
    /// deposit wakes it).
    pub fn check_credit(&self) -> Result<(), DepositsError> {
        match self.status {
            AccountStatus::Active | AccountStatus::Dormant => Ok(()),
            AccountStatus::Frozen => Err(DepositsError::AccountFrozen {
                account_id: self.id.to_string(),
            }),
            // A closing account refuses as a closed one does: its balance is being paid out.
            AccountStatus::Closing | AccountStatus::Closed => Err(DepositsError::AccountClosed {
                account_id: self.id.to_string(),
            }),
        }
    }

    /// Whether the account has gone `dormancy_days` without customer activity by `today`.
    pub fn is_dormant_by(&self, dormancy_days: u32, today: NaiveDate) -> bool {
        dormancy_days > 0
            && self.status == AccountStatus::Active
            && (today - self.last_customer_activity_at.date_naive()).num_days()
                >= i64::from(dormancy_days)
    }
}

/// A hold's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Held,
    Released,
    Expired,
    Captured,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Held => "held",
            HoldStatus::Released => "released",
            HoldStatus::Expired => "expired",
            HoldStatus::Captured => "captured",
        }
    }

    pub fn parse(s: &str) -> Option<HoldStatus> {
        match s {
            "held" => Some(HoldStatus::Held),
            "released" => Some(HoldStatus::Released),
            "expired" => Some(HoldStatus::Expired),
            "captured" => Some(HoldStatus::Captured),
            _ => None,
        }
    }
}

/// A lien on an account.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub id: Uuid,
    pub account_id: Uuid,
    pub amount: Decimal,
    pub currency: Currency,
    pub reason: String,
    pub status: HoldStatus,
    pub expires_at: Option<DateTime<Utc>>,
    pub placed_at: DateTime<Utc>,
}

/// The id of the ledger entry a request makes, derived from the request id so a retried
/// request writes the same entry (the ledger accepts only UUIDv4-shaped ids).
pub fn entry_id_for(purpose: &str, request_id: Uuid) -> Uuid {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("corebank.deposits.{purpose}:{request_id}").as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}
