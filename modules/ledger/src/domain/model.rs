//! Accounts, balances, legs and entries.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use corebank_kernel::{AccountId, Currency, JournalEntryId};
use rust_decimal::Decimal;

use crate::domain::error::LedgerError;

/// The type of an account, which decides its normal side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountType {
    Asset,
    Liability,
    Equity,
    Income,
    Expense,
}

impl AccountType {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Asset => "asset",
            AccountType::Liability => "liability",
            AccountType::Equity => "equity",
            AccountType::Income => "income",
            AccountType::Expense => "expense",
        }
    }

    pub fn parse(text: &str) -> Option<AccountType> {
        [
            AccountType::Asset,
            AccountType::Liability,
            AccountType::Equity,
            AccountType::Income,
            AccountType::Expense,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }

    /// The side on which the balance grows: debit for assets and expenses, credit otherwise.
    pub fn normal_side(self) -> Direction {
        match self {
            AccountType::Asset | AccountType::Expense => Direction::Debit,
            AccountType::Liability | AccountType::Equity | AccountType::Income => Direction::Credit,
        }
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Debit,
    Credit,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Debit => "debit",
            Direction::Credit => "credit",
        }
    }

    pub fn parse(text: &str) -> Option<Direction> {
        match text {
            "debit" => Some(Direction::Debit),
            "credit" => Some(Direction::Credit),
            _ => None,
        }
    }

    pub fn opposite(self) -> Direction {
        match self {
            Direction::Debit => Direction::Credit,
            Direction::Credit => Direction::Debit,
        }
    }
}

/// Whether a posting moves posted or pending amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bucket {
    Posted,
    Pending,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Posted => "posted",
            Bucket::Pending => "pending",
        }
    }

    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "posted" => Some(Bucket::Posted),
            "pending" => Some(Bucket::Pending),
            _ => None,
        }
    }
}

/// What an account's balance may not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    None,
    /// Debits (posted + pending) may exceed posted credits by at most the limit amount.
    DebitsMustNotExceedCredits,
    /// Credits (posted + pending) may exceed posted debits by at most the limit amount.
    CreditsMustNotExceedDebits,
}

impl LimitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::None => "none",
            LimitKind::DebitsMustNotExceedCredits => "debits_must_not_exceed_credits",
            LimitKind::CreditsMustNotExceedDebits => "credits_must_not_exceed_debits",
        }
    }

    pub fn parse(text: &str) -> Option<LimitKind> {
        [
            LimitKind::None,
            LimitKind::DebitsMustNotExceedCredits,
            LimitKind::CreditsMustNotExceedDebits,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }

    /// The direction this limit restricts, if any.
    pub fn restricts(self) -> Option<Direction> {
        match self {
            LimitKind::None => None,
            LimitKind::DebitsMustNotExceedCredits => Some(Direction::Debit),
            LimitKind::CreditsMustNotExceedDebits => Some(Direction::Credit),
        }
    }
}

/// A balance limit: the kind and the allowance (an overdraft or credit line; zero for none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceLimit {
    pub kind: LimitKind,
    pub amount: Decimal,
}

impl BalanceLimit {
    pub const NONE: BalanceLimit = BalanceLimit {
        kind: LimitKind::None,
        amount: Decimal::ZERO,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountStatus {
    Open,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Open => "open",
            AccountStatus::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<AccountStatus> {
        match text {
            "open" => Some(AccountStatus::Open),
            "closed" => Some(AccountStatus::Closed),
            _ => None,
        }
    }
}

/// An account as the write path needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub id: AccountId,
    pub code: String,
    pub name: String,
    pub currency: Currency,
    pub account_type: AccountType,
    pub limit: BalanceLimit,
    pub status: AccountStatus,
    pub debits_frozen: bool,
    pub credits_frozen: bool,
    pub external_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub balance_shards: u32,
    pub created_at: DateTime<Utc>,
}

/// The four running totals of an account (or of one of its balance shards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    pub debits_posted: Decimal,
    pub credits_posted: Decimal,
    pub debits_pending: Decimal,
    pub credits_pending: Decimal,
}

impl Balances {
    pub fn add(&mut self, other: &Balances) {
        self.debits_posted += other.debits_posted;
        self.credits_posted += other.credits_posted;
        self.debits_pending += other.debits_pending;
        self.credits_pending += other.credits_pending;
    }

    /// Adds one posting's effect.
    pub fn apply(&mut self, direction: Direction, bucket: Bucket, amount: Decimal) {
        let total = match (direction, bucket) {
            (Direction::Debit, Bucket::Posted) => &mut self.debits_posted,
            (Direction::Credit, Bucket::Posted) => &mut self.credits_posted,
            (Direction::Debit, Bucket::Pending) => &mut self.debits_pending,
            (Direction::Credit, Bucket::Pending) => &mut self.credits_pending,
        };
        *total += amount;
    }

    /// The posted balance on the account type's normal side.
    pub fn posted(&self, account_type: AccountType) -> Decimal {
        match account_type.normal_side() {
            Direction::Debit => self.debits_posted - self.credits_posted,
            Direction::Credit => self.credits_posted - self.debits_posted,
        }
    }

    /// The posted balance less what pending entries hold against it.
    pub fn available(&self, account_type: AccountType) -> Decimal {
        match account_type.normal_side() {
            Direction::Debit => self.debits_posted - self.credits_posted - self.credits_pending,
            Direction::Credit => self.credits_posted - self.debits_posted - self.debits_pending,
        }
    }

    /// Whether these totals respect `limit`.
    pub fn within(&self, limit: &BalanceLimit) -> bool {
        match limit.kind {
            LimitKind::None => true,
            LimitKind::DebitsMustNotExceedCredits => {
                self.debits_posted + self.debits_pending <= self.credits_posted + limit.amount
            }
            LimitKind::CreditsMustNotExceedDebits => {
                self.credits_posted + self.credits_pending <= self.debits_posted + limit.amount
            }
        }
    }

    pub fn is_zero(&self) -> bool {
        self.debits_posted == self.credits_posted
            && self.debits_pending.is_zero()
            && self.credits_pending.is_zero()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Posted,
    Pending,
    PostPending,
    VoidPending,
    ExpirePending,
    Reversal,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Posted => "posted",
            EntryKind::Pending => "pending",
            EntryKind::PostPending => "post_pending",
            EntryKind::VoidPending => "void_pending",
            EntryKind::ExpirePending => "expire_pending",
            EntryKind::Reversal => "reversal",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        [
            EntryKind::Posted,
            EntryKind::Pending,
            EntryKind::PostPending,
            EntryKind::VoidPending,
            EntryKind::ExpirePending,
            EntryKind::Reversal,
        ]
        .into_iter()
        .find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldStatus {
    Pending,
    Posted,
    Voided,
    Expired,
}

impl HoldStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldStatus::Pending => "pending",
            HoldStatus::Posted => "posted",
            HoldStatus::Voided => "voided",
            HoldStatus::Expired => "expired",
        }
    }

    pub fn parse(text: &str) -> Option<HoldStatus> {
        [
            HoldStatus::Pending,
            HoldStatus::Posted,
            HoldStatus::Voided,
            HoldStatus::Expired,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    /// The refusal for resolving a hold that is no longer pending.
    pub fn already_resolved(self, pending_id: JournalEntryId) -> Option<LedgerError> {
        match self {
            HoldStatus::Pending => None,
            HoldStatus::Posted => Some(LedgerError::PendingAlreadyPosted { pending_id }),
            HoldStatus::Voided => Some(LedgerError::PendingAlreadyVoided { pending_id }),
            HoldStatus::Expired => Some(LedgerError::PendingExpired { pending_id }),
        }
    }
}

/// One account effect of an entry, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Posting {
    pub account_id: AccountId,
    pub direction: Direction,
    pub bucket: Bucket,
    /// Positive, except a hold's release (negative, pending bucket).
    pub amount: Decimal,
    pub currency: Currency,
}

/// A journal entry as stored (and hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: JournalEntryId,
    pub kind: EntryKind,
    pub linked_entry_id: Option<JournalEntryId>,
    pub value_date: NaiveDate,
    pub recorded_at: DateTime<Utc>,
    pub description: String,
    pub external_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub postings: Vec<Posting>,
    pub chain_partition: u32,
    pub chain_sequence: u64,
    pub prev_hash: String,
    pub hash: String,
}

/// The state of a pending entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub entry_id: JournalEntryId,
    pub status: HoldStatus,
    pub expires_at: Option<DateTime<Utc>>,
    /// The pending entry's postings (all in the pending bucket).
    pub postings: Vec<Posting>,
}
