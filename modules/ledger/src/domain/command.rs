//! The commands that write journal entries, validated once at the edge, and their canonical
//! form: what is stored with each entry to tell a replay from a conflicting reuse of its id.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use corebank_kernel::{AccountId, Currency, JournalEntryId, Money};
use rust_decimal::Decimal;

use crate::domain::error::LedgerError;
use crate::domain::model::Direction;

/// Legs per entry, at most.
pub const LEGS_MAX: usize = 64;
pub const DESCRIPTION_LENGTH_MAX: usize = 512;
pub const EXTERNAL_REF_LENGTH_MAX: usize = 128;
pub const METADATA_ENTRIES_MAX: usize = 32;
pub const METADATA_KEY_LENGTH_MAX: usize = 64;
pub const METADATA_VALUE_LENGTH_MAX: usize = 512;
/// A hold may be set to expire at most this far ahead (a year).
pub const TIMEOUT_SECONDS_MAX: u32 = 366 * 24 * 3600;

/// One leg of a new entry: a positive amount debited or credited to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leg {
    pub account_id: AccountId,
    pub direction: Direction,
    pub amount: Money,
}

impl Leg {
    /// The two legs that move `amount` from `debit` to `credit`.
    pub fn transfer(debit: AccountId, credit: AccountId, amount: Money) -> Vec<Leg> {
        vec![
            Leg {
                account_id: debit,
                direction: Direction::Debit,
                amount,
            },
            Leg {
                account_id: credit,
                direction: Direction::Credit,
                amount,
            },
        ]
    }
}

/// A new entry: posted at once, or pending (a hold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: JournalEntryId,
    pub legs: Vec<Leg>,
    pub value_date: Option<NaiveDate>,
    pub description: String,
    pub external_ref: String,
    pub metadata: BTreeMap<String, String>,
    pub pending: bool,
    /// For pending entries: seconds until the hold expires by itself; 0 for never.
    pub timeout_seconds: u32,
    /// A charge the bank makes (overdraft interest, fees) that may take an account past its
    /// limit: the limit check is skipped, and the entry records it in its metadata under
    /// [`BANK_CHARGE_METADATA_KEY`] (hashed with it, so audited). Only deposits may send it.
    pub bank_charge_may_exceed_limit: bool,
}

/// The metadata key that records an entry written with `bank_charge_may_exceed_limit`;
/// reserved: a client cannot set it itself.
pub const BANK_CHARGE_METADATA_KEY: &str = "corebank.bank_charge_may_exceed_limit";

impl NewEntry {
    /// An entry of `legs` posted at once, with nothing else: no value date, description,
    /// reference or metadata.
    pub fn posted(id: JournalEntryId, legs: Vec<Leg>) -> NewEntry {
        NewEntry {
            id,
            legs,
            value_date: None,
            description: String::new(),
            external_ref: String::new(),
            metadata: BTreeMap::new(),
            pending: false,
            timeout_seconds: 0,
            bank_charge_may_exceed_limit: false,
        }
    }

    /// Checks everything that does not need the database: leg count, positive amounts,
    /// balance per currency, text lengths, timeout only on holds.
    pub fn validate(&self) -> Result<(), LedgerError> {
        if self.legs.len() < 2 {
            return Err(LedgerError::invalid(
                "legs",
                "an entry needs at least two legs",
            ));
        }
        if self.legs.len() > LEGS_MAX {
            return Err(LedgerError::invalid(
                "legs",
                format!("an entry has at most {LEGS_MAX} legs"),
            ));
        }
        let mut sums: BTreeMap<&'static str, (Currency, Decimal, Decimal)> = BTreeMap::new();
        for (index, leg) in self.legs.iter().enumerate() {
            if !leg.amount.is_positive() {
                return Err(LedgerError::InvalidAmount {
                    field: format!("legs[{index}].amount"),
                    message: format!(
                        "legs[{index}].amount must be positive, got {}",
                        leg.amount.amount_string()
                    ),
                });
            }
            let sum = sums.entry(leg.amount.currency().code()).or_insert((
                leg.amount.currency(),
                Decimal::ZERO,
                Decimal::ZERO,
            ));
            match leg.direction {
                Direction::Debit => sum.1 += leg.amount.amount(),
                Direction::Credit => sum.2 += leg.amount.amount(),
            }
        }
        for (currency, debits, credits) in sums.values() {
            if debits != credits {
                return Err(LedgerError::Unbalanced {
                    currency: *currency,
                    debits: debits.to_string(),
                    credits: credits.to_string(),
                });
            }
        }
        validate_text("description", &self.description, DESCRIPTION_LENGTH_MAX)?;
        validate_text("external_ref", &self.external_ref, EXTERNAL_REF_LENGTH_MAX)?;
        validate_metadata(&self.metadata)?;
        if self.metadata.contains_key(BANK_CHARGE_METADATA_KEY) {
            return Err(LedgerError::invalid(
                "metadata",
                format!("{BANK_CHARGE_METADATA_KEY} is written by the ledger"),
            ));
        }
        if self.pending && self.bank_charge_may_exceed_limit {
            return Err(LedgerError::invalid(
                "bank_charge_may_exceed_limit",
                "only a posted entry can be a bank charge",
            ));
        }
        if !self.pending && self.timeout_seconds != 0 {
            return Err(LedgerError::invalid(
                "timeout_seconds",
                "only a pending entry can time out",
            ));
        }
        if self.timeout_seconds > TIMEOUT_SECONDS_MAX {
            return Err(LedgerError::invalid(
                "timeout_seconds",
                format!("at most {TIMEOUT_SECONDS_MAX} seconds (a year)"),
            ));
        }
        Ok(())
    }
}

/// Checks a free-text field's length.
pub fn validate_text(field: &str, text: &str, length_max: usize) -> Result<(), LedgerError> {
    if text.chars().count() > length_max {
        return Err(LedgerError::invalid(
            field,
            format!("at most {length_max} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(LedgerError::invalid(
            field,
            "control characters are not allowed",
        ));
    }
    Ok(())
}

/// Checks a metadata map's size and its keys' and values' lengths.
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), LedgerError> {
    if metadata.len() > METADATA_ENTRIES_MAX {
        return Err(LedgerError::invalid(
            "metadata",
            format!("at most {METADATA_ENTRIES_MAX} entries"),
        ));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > METADATA_KEY_LENGTH_MAX {
            return Err(LedgerError::invalid(
                "metadata",
                format!("keys are 1 to {METADATA_KEY_LENGTH_MAX} characters"),
            ));
        }
        validate_text(
            &format!("metadata[{key}]"),
            value,
            METADATA_VALUE_LENGTH_MAX,
        )?;
    }
    Ok(())
}

/// Something that writes one journal entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Entry(NewEntry),
    /// Posts a hold in full (`amount` None) or in part.
    PostPending {
        id: JournalEntryId,
        pending_id: JournalEntryId,
        amount: Option<Decimal>,
        description: String,
    },
    VoidPending {
        id: JournalEntryId,
        pending_id: JournalEntryId,
        description: String,
    },
    /// Written by the expirer, never by clients.
    ExpirePending {
        id: JournalEntryId,
        pending_id: JournalEntryId,
    },
    Reverse {
        id: JournalEntryId,
        entry_id: JournalEntryId,
        description: String,
    },
    /// Moves the whole posted balance of `source` to `target`, the amount decided inside the
    /// batch's transaction (closing an account pays out exactly what is there). The source
    /// must have its debits and credits frozen (so nothing else can change what is swept)
    /// and nothing pending. A repeat with the same id replays the original entry and
    /// amount.
    Sweep {
        id: JournalEntryId,
        source: AccountId,
        target: AccountId,
        description: String,
        external_ref: String,
    },
}

impl Command {
    /// The id of the entry this command writes: its idempotency key.
    pub fn id(&self) -> JournalEntryId {
        match self {
            Command::Entry(entry) => entry.id,
            Command::PostPending { id, .. }
            | Command::VoidPending { id, .. }
            | Command::ExpirePending { id, .. }
            | Command::Reverse { id, .. }
            | Command::Sweep { id, .. } => *id,
        }
    }

    /// Checks what does not need the database.
    pub fn validate(&self) -> Result<(), LedgerError> {
        match self {
            Command::Entry(entry) => entry.validate(),
            Command::PostPending {
                amount,
                description,
                ..
            } => {
                if let Some(amount) = amount
                    && *amount <= Decimal::ZERO
                {
                    return Err(LedgerError::InvalidAmount {
                        field: "amount".to_owned(),
                        message: format!("amount must be positive, got {amount}"),
                    });
                }
                validate_text("description", description, DESCRIPTION_LENGTH_MAX)
            }
            Command::VoidPending { description, .. } | Command::Reverse { description, .. } => {
                validate_text("description", description, DESCRIPTION_LENGTH_MAX)
            }
            Command::ExpirePending { .. } => Ok(()),
            Command::Sweep {
                source,
                target,
                description,
                external_ref,
                ..
            } => {
                if source == target {
                    return Err(LedgerError::invalid(
                        "target_account_id",
                        "a sweep needs two different accounts",
                    ));
                }
                validate_text("description", description, DESCRIPTION_LENGTH_MAX)?;
                validate_text("external_ref", external_ref, EXTERNAL_REF_LENGTH_MAX)
            }
        }
    }

    /// The canonical form stored with the entry.
    pub fn canonical(&self) -> CanonicalRequest {
        let mut canonical = CanonicalRequest::default();
        match self {
            Command::Entry(entry) => {
                canonical.kind = if entry.pending { "pending" } else { "entry" }.to_owned();
                canonical.legs = entry
                    .legs
                    .iter()
                    .map(|leg| CanonicalLeg {
                        account_id: leg.account_id.to_string(),
                        direction: leg.direction.as_str().to_owned(),
                        amount: leg.amount.amount_string(),
                        currency: leg.amount.currency().code().to_owned(),
                    })
                    .collect();
                canonical.value_date = entry.value_date.map(|d| d.to_string());
                canonical.description.clone_from(&entry.description);
                canonical.external_ref.clone_from(&entry.external_ref);
                canonical.metadata.clone_from(&entry.metadata);
                canonical.timeout_seconds = entry.timeout_seconds;
                canonical.bank_charge_may_exceed_limit = entry.bank_charge_may_exceed_limit;
            }
            Command::PostPending {
                pending_id,
                amount,
                description,
                ..
            } => {
                canonical.kind = "post_pending".to_owned();
                canonical.linked_entry_id = Some(pending_id.to_string());
                canonical.amount = amount.map(|a| a.normalize().to_string());
                canonical.description.clone_from(description);
            }
            Command::VoidPending {
                pending_id,
                description,
                ..
            } => {
                canonical.kind = "void_pending".to_owned();
                canonical.linked_entry_id = Some(pending_id.to_string());
                canonical.description.clone_from(description);
            }
            Command::ExpirePending { pending_id, .. } => {
                canonical.kind = "expire_pending".to_owned();
                canonical.linked_entry_id = Some(pending_id.to_string());
            }
            Command::Reverse {
                entry_id,
                description,
                ..
            } => {
                canonical.kind = "reverse".to_owned();
                canonical.linked_entry_id = Some(entry_id.to_string());
                canonical.description.clone_from(description);
            }
            // The amount is not part of the request: it is decided by the ledger, and a
            // replay answers with the entry (and amount) first written.
            Command::Sweep {
                source,
                target,
                description,
                external_ref,
                ..
            } => {
                canonical.kind = "sweep".to_owned();
                canonical.legs = [(source, "debit"), (target, "credit")]
                    .into_iter()
                    .map(|(account_id, direction)| CanonicalLeg {
                        account_id: account_id.to_string(),
                        direction: direction.to_owned(),
                        amount: String::new(),
                        currency: String::new(),
                    })
                    .collect();
                canonical.description.clone_from(description);
                canonical.external_ref.clone_from(external_ref);
            }
        }
        canonical
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanonicalLeg {
    pub account_id: String,
    pub direction: String,
    pub amount: String,
    pub currency: String,
}

/// A write request reduced to what decides its effect, in a fixed field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CanonicalRequest {
    pub kind: String,
    #[serde(default)]
    pub legs: Vec<CanonicalLeg>,
    #[serde(default)]
    pub value_date: Option<String>,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub external_ref: String,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub timeout_seconds: u32,
    #[serde(default)]
    pub linked_entry_id: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    #[serde(default)]
    pub bank_charge_may_exceed_limit: bool,
}

impl CanonicalRequest {
    /// The first field in which `other` differs from this (stored) request, named as the
    /// client knows it; None when they are the same request.
    pub fn first_difference(&self, other: &CanonicalRequest) -> Option<&'static str> {
        if self.kind != other.kind {
            return Some("kind");
        }
        if self.legs.len() != other.legs.len() {
            return Some("legs");
        }
        let is_transfer = self.legs.len() == 2
            && self.legs[0].direction == "debit"
            && self.legs[1].direction == "credit";
        for (index, (stored, new)) in self.legs.iter().zip(&other.legs).enumerate() {
            if stored.account_id != new.account_id {
                let sweep = self.kind == "sweep";
                return Some(match (is_transfer, index) {
                    (true, 0) if sweep => "source_account_id",
                    (true, _) if sweep => "target_account_id",
                    (true, 0) => "debit_account_id",
                    (true, _) => "credit_account_id",
                    (false, _) => "account_id",
                });
            }
            if stored.direction != new.direction {
                return Some("direction");
            }
            if stored.amount != new.amount {
                return Some("amount");
            }
            if stored.currency != new.currency {
                return Some("currency");
            }
        }
        if self.linked_entry_id != other.linked_entry_id {
            return Some(match self.kind.as_str() {
                "reverse" => "entry_id",
                _ => "pending_entry_id",
            });
        }
        // Then the entry-wide fields, the first that differs.
        [
            (self.amount != other.amount, "amount"),
            (self.value_date != other.value_date, "value_date"),
            (self.description != other.description, "description"),
            (self.external_ref != other.external_ref, "external_ref"),
            (self.metadata != other.metadata, "metadata"),
            (self.timeout_seconds != other.timeout_seconds, "timeout"),
            (
                self.bank_charge_may_exceed_limit != other.bank_charge_may_exceed_limit,
                "bank_charge_may_exceed_limit",
            ),
        ]
        .into_iter()
        .find_map(|(differs, field)| differs.then_some(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(amount: &str) -> NewEntry {
        let money = Money::parse(amount, Currency::EUR).unwrap();
        NewEntry::posted(
            JournalEntryId::generate(),
            Leg::transfer(AccountId::generate(), AccountId::generate(), money),
        )
    }

    #[test]
    fn an_unbalanced_entry_is_refused() {
        let mut entry = transfer("10.00");
        entry.legs[1].amount = Money::parse("9.99", Currency::EUR).unwrap();
        assert_eq!(entry.validate().unwrap_err().code(), "unbalanced");
    }

    #[test]
    fn zero_and_negative_amounts_are_refused() {
        let mut entry = transfer("0");
        assert_eq!(entry.validate().unwrap_err().code(), "invalid_amount");
        entry = transfer("-5");
        assert_eq!(entry.validate().unwrap_err().code(), "invalid_amount");
    }

    #[test]
    fn the_first_difference_is_named_as_the_client_knows_it() {
        let entry = transfer("10.00");
        let stored = Command::Entry(entry.clone()).canonical();
        assert_eq!(stored.first_difference(&stored), None);

        let mut other = entry.clone();
        other.legs[0].amount = Money::parse("11", Currency::EUR).unwrap();
        other.legs[1].amount = Money::parse("11", Currency::EUR).unwrap();
        assert_eq!(
            stored.first_difference(&Command::Entry(other).canonical()),
            Some("amount")
        );

        let mut other = entry.clone();
        other.legs[1].account_id = AccountId::generate();
        assert_eq!(
            stored.first_difference(&Command::Entry(other).canonical()),
            Some("credit_account_id")
        );

        let mut other = entry;
        other.description = "changed".to_owned();
        assert_eq!(
            stored.first_difference(&Command::Entry(other).canonical()),
            Some("description")
        );
    }
}
