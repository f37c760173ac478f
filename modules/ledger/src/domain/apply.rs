//! Applying a batch of commands to the ledger's state, in memory: the heart of group
//! commit. The store loads what the batch touches, `apply_batch` decides every command's
//! outcome in order (a refused command leaves no trace, and does not affect its
//! neighbours), and the store writes the result in the same transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use corebank_kernel::{AccountId, JournalEntryId, Money};
use rust_decimal::Decimal;

use crate::domain::command::{CanonicalRequest, Command};
use crate::domain::error::LedgerError;
use crate::domain::hash::{entry_hash, partition_of};
use crate::domain::model::{
    Account, AccountStatus, Balances, Bucket, Direction, Entry, EntryKind, Hold, HoldStatus,
    Posting,
};

/// A posted entry that a reversal may target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalTarget {
    pub kind: EntryKind,
    pub postings: Vec<Posting>,
    pub reversed: bool,
}

/// The last entry of a hash chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainHead {
    pub sequence: u64,
    pub hash: String,
}

/// What a batch reads before it decides: everything its commands touch.
#[derive(Debug, Default)]
pub struct BatchState {
    pub accounts: HashMap<AccountId, Account>,
    /// Totals over all shards, for the accounts whose limits this batch must check.
    pub checked_balances: HashMap<AccountId, Balances>,
    pub holds: HashMap<JournalEntryId, Hold>,
    pub targets: HashMap<JournalEntryId, ReversalTarget>,
    /// Ids already used, with the request that used them.
    pub existing: HashMap<JournalEntryId, CanonicalRequest>,
    pub heads: HashMap<u32, ChainHead>,
    /// Which balance row of a sharded account this batch writes to (modulo its shard count).
    /// One row per account per batch: the batch's changes to a hot account add up into a
    /// single update, and concurrent batches (other replicas) most likely pick other rows.
    pub shard_pick: u32,
}

/// One command's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied(Box<Entry>),
    /// The id was used before with the same content: the original entry stands.
    Replayed(JournalEntryId),
    Refused(LedgerError),
}

/// What a batch writes.
#[derive(Debug, Default)]
pub struct BatchWrites {
    pub entries: Vec<(Entry, CanonicalRequest)>,
    /// Summed balance changes per (account, shard): one row update each.
    pub deltas: BTreeMap<(AccountId, u32), Balances>,
    pub new_holds: Vec<(JournalEntryId, Option<DateTime<Utc>>)>,
    pub resolved_holds: Vec<(JournalEntryId, HoldStatus, JournalEntryId, DateTime<Utc>)>,
    pub heads: BTreeMap<u32, ChainHead>,
}

/// The pending entries and entries to reverse that `commands` refer to.
pub fn referenced_entries(commands: &[Command]) -> BTreeSet<JournalEntryId> {
    commands
        .iter()
        .filter_map(|command| match command {
            Command::PostPending { pending_id, .. }
            | Command::VoidPending { pending_id, .. }
            | Command::ExpirePending { pending_id, .. } => Some(*pending_id),
            Command::Reverse { entry_id, .. } => Some(*entry_id),
            Command::Entry(_) | Command::Sweep { .. } => None,
        })
        .collect()
}

/// Every account `commands` touch, given the holds and targets already loaded.
pub fn referenced_accounts(state: &BatchState, commands: &[Command]) -> BTreeSet<AccountId> {
    let mut accounts = BTreeSet::new();
    for command in commands {
        match command {
            Command::Entry(entry) => accounts.extend(entry.legs.iter().map(|leg| leg.account_id)),
            Command::PostPending { pending_id, .. }
            | Command::VoidPending { pending_id, .. }
            | Command::ExpirePending { pending_id, .. } => {
                if let Some(hold) = state.holds.get(pending_id) {
                    accounts.extend(hold.postings.iter().map(|p| p.account_id));
                }
            }
            Command::Reverse { entry_id, .. } => {
                if let Some(target) = state.targets.get(entry_id) {
                    accounts.extend(target.postings.iter().map(|p| p.account_id));
                }
            }
            Command::Sweep { source, target, .. } => accounts.extend([*source, *target]),
        }
    }
    accounts
}

/// The accounts whose limits some command may strain: their balances must be read (and
/// locked) before the batch decides. Every other account only receives a blind increment.
pub fn accounts_to_check(state: &BatchState, commands: &[Command]) -> BTreeSet<AccountId> {
    let restricted = |account_id: AccountId, direction: Direction| {
        state
            .accounts
            .get(&account_id)
            .and_then(|account| account.limit.kind.restricts())
            .is_some_and(|restricted| restricted == direction)
    };
    let mut checked = BTreeSet::new();
    for command in commands {
        match command {
            Command::Entry(entry) => {
                for leg in &entry.legs {
                    if restricted(leg.account_id, leg.direction) {
                        checked.insert(leg.account_id);
                    }
                }
            }
            Command::Reverse { entry_id, .. } => {
                if let Some(target) = state.targets.get(entry_id) {
                    for posting in &target.postings {
                        if restricted(posting.account_id, posting.direction.opposite()) {
                            checked.insert(posting.account_id);
                        }
                    }
                }
            }
            // The amount of a sweep is the source's balance: always read (and locked).
            Command::Sweep { source, target, .. } => {
                checked.insert(*source);
                if state
                    .accounts
                    .get(target)
                    .and_then(|account| account.limit.kind.restricts())
                    .is_some()
                {
                    checked.insert(*target);
                }
            }
            // Resolving a hold never raises a restricted total: it moves pending amounts
            // to posted (no more than was held) or releases them.
            Command::PostPending { .. }
            | Command::VoidPending { .. }
            | Command::ExpirePending { .. } => {}
        }
    }
    checked
}

/// The balance row of an account with `balance_shards` rows that a batch with `shard_pick`
/// writes to. Any row will do: an account's balance is the sum of its rows.
pub fn shard_of(shard_pick: u32, balance_shards: u32) -> u32 {
    shard_pick % balance_shards.max(1)
}

/// Decides every command in order against `state`, which it updates as it goes.
/// `recorded_at` is the batch's record time: the n-th applied entry is stamped n µs later, so
/// entries of one batch keep the order they were applied in.
pub fn apply_batch(
    state: &mut BatchState,
    commands: &[Command],
    recorded_at: DateTime<Utc>,
) -> (Vec<Outcome>, BatchWrites) {
    let mut writes = BatchWrites::default();
    let mut outcomes = Vec::with_capacity(commands.len());
    let mut applied: i64 = 0;
    for command in commands {
        let id = command.id();
        let canonical = command.canonical();
        if let Some(stored) = state.existing.get(&id) {
            outcomes.push(match stored.first_difference(&canonical) {
                None => Outcome::Replayed(id),
                Some(field) => Outcome::Refused(LedgerError::ExistsWithDifferent {
                    id: id.to_string(),
                    field,
                }),
            });
            continue;
        }
        let at = recorded_at + TimeDelta::microseconds(applied);
        match apply_one(state, command, at) {
            Ok(planned) => {
                applied += 1;
                let entry = commit(state, &mut writes, command, planned, at);
                state.existing.insert(id, canonical.clone());
                writes.entries.push((entry.clone(), canonical));
                outcomes.push(Outcome::Applied(Box::new(entry)));
            }
            Err(error) => outcomes.push(Outcome::Refused(error)),
        }
    }
    (outcomes, writes)
}

/// A command's effects, decided but not yet applied.
struct Planned {
    kind: EntryKind,
    linked_entry_id: Option<JournalEntryId>,
    postings: Vec<Posting>,
    hold_resolution: Option<HoldStatus>,
}

fn account(state: &BatchState, account_id: AccountId) -> Result<&Account, LedgerError> {
    state
        .accounts
        .get(&account_id)
        .ok_or(LedgerError::UnknownAccount { account_id })
}

/// Refuses a new posted or pending amount on a closed account or in a frozen direction.
fn check_open(account: &Account, direction: Direction) -> Result<(), LedgerError> {
    if account.status == AccountStatus::Closed {
        return Err(LedgerError::AccountClosed {
            account_id: account.id,
        });
    }
    let frozen = match direction {
        Direction::Debit => account.debits_frozen,
        Direction::Credit => account.credits_frozen,
    };
    if frozen {
        return Err(LedgerError::AccountFrozen {
            account_id: account.id,
            direction: direction.as_str(),
        });
    }
    Ok(())
}

fn pending_hold(
    state: &BatchState,
    pending_id: JournalEntryId,
    at: DateTime<Utc>,
) -> Result<&Hold, LedgerError> {
    let Some(hold) = state.holds.get(&pending_id) else {
        return Err(if state.targets.contains_key(&pending_id) {
            LedgerError::NotPending {
                entry_id: pending_id,
            }
        } else {
            LedgerError::UnknownEntry {
                entry_id: pending_id,
            }
        });
    };
    if let Some(error) = hold.status.already_resolved(pending_id) {
        return Err(error);
    }
    if hold.expires_at.is_some_and(|expires_at| expires_at <= at) {
        return Err(LedgerError::PendingExpired { pending_id });
    }
    Ok(hold)
}

/// What the batch knows of entry `id` (a hold, a reversal target), or `unknown_entry`.
fn known_entry<T>(
    entries: &HashMap<JournalEntryId, T>,
    id: JournalEntryId,
) -> Result<&T, LedgerError> {
    entries
        .get(&id)
        .ok_or(LedgerError::UnknownEntry { entry_id: id })
}

impl Hold {
    /// The entry that ends this hold, of pending entry `pending_id`, without posting it
    /// (`kind` voids or expires it): its held amounts go back to being available.
    fn released(
        &self,
        pending_id: JournalEntryId,
        kind: EntryKind,
        resolution: HoldStatus,
    ) -> Planned {
        Planned {
            kind,
            linked_entry_id: Some(pending_id),
            postings: releases(self).collect(),
            hold_resolution: Some(resolution),
        }
    }
}

fn releases(hold: &Hold) -> impl Iterator<Item = Posting> + '_ {
    hold.postings.iter().map(|posting| Posting {
        amount: -posting.amount,
        ..posting.clone()
    })
}

fn apply_one(
    state: &BatchState,
    command: &Command,
    at: DateTime<Utc>,
) -> Result<Planned, LedgerError> {
    command.validate()?;
    let planned = match command {
        Command::Entry(entry) => {
            let bucket = if entry.pending {
                Bucket::Pending
            } else {
                Bucket::Posted
            };
            let mut postings = Vec::with_capacity(entry.legs.len());
            for (index, leg) in entry.legs.iter().enumerate() {
                let account = account(state, leg.account_id)?;
                if account.currency != leg.amount.currency() {
                    return Err(LedgerError::CurrencyMismatch {
                        leg: index,
                        account_id: account.id,
                        leg_currency: leg.amount.currency(),
                        account_currency: account.currency,
                    });
                }
                check_open(account, leg.direction)?;
                postings.push(Posting {
                    account_id: leg.account_id,
                    direction: leg.direction,
                    bucket,
                    amount: leg.amount.amount(),
                    currency: leg.amount.currency(),
                });
            }
            Planned {
                kind: if entry.pending {
                    EntryKind::Pending
                } else {
                    EntryKind::Posted
                },
                linked_entry_id: None,
                postings,
                hold_resolution: None,
            }
        }
        Command::PostPending {
            pending_id, amount, ..
        } => {
            let hold = pending_hold(state, *pending_id, at)?;
            let posted_amount = match amount {
                None => None,
                Some(requested) => Some(partial_amount(hold, *pending_id, *requested)?),
            };
            let mut postings: Vec<Posting> = releases(hold).collect();
            for posting in &hold.postings {
                let account = account(state, posting.account_id)?;
                check_open(account, posting.direction)?;
                postings.push(Posting {
                    bucket: Bucket::Posted,
                    amount: posted_amount.unwrap_or(posting.amount),
                    ..posting.clone()
                });
            }
            Planned {
                kind: EntryKind::PostPending,
                linked_entry_id: Some(*pending_id),
                postings,
                hold_resolution: Some(HoldStatus::Posted),
            }
        }
        Command::VoidPending { pending_id, .. } => {
            let hold = pending_hold(state, *pending_id, at)?;
            hold.released(*pending_id, EntryKind::VoidPending, HoldStatus::Voided)
        }
        Command::ExpirePending { pending_id, .. } => {
            let hold = known_entry(&state.holds, *pending_id)?;
            if let Some(error) = hold.status.already_resolved(*pending_id) {
                return Err(error);
            }
            if hold.expires_at.is_none_or(|expires_at| expires_at > at) {
                return Err(LedgerError::invalid(
                    "pending_entry_id",
                    "the hold is not due to expire yet",
                ));
            }
            hold.released(*pending_id, EntryKind::ExpirePending, HoldStatus::Expired)
        }
        Command::Reverse { entry_id, .. } => {
            let target = known_entry(&state.targets, *entry_id)?;
            if !matches!(target.kind, EntryKind::Posted | EntryKind::PostPending) {
                return Err(LedgerError::NotReversible {
                    entry_id: *entry_id,
                    kind: target.kind.as_str(),
                });
            }
            if target.reversed {
                return Err(LedgerError::AlreadyReversed {
                    entry_id: *entry_id,
                });
            }
            let mut postings = Vec::new();
            for posting in target
                .postings
                .iter()
                .filter(|p| p.bucket == Bucket::Posted)
            {
                let direction = posting.direction.opposite();
                check_open(account(state, posting.account_id)?, direction)?;
                postings.push(Posting {
                    direction,
                    ..posting.clone()
                });
            }
            Planned {
                kind: EntryKind::Reversal,
                linked_entry_id: Some(*entry_id),
                postings,
                hold_resolution: None,
            }
        }
        Command::Sweep { source, target, .. } => Planned {
            kind: EntryKind::Posted,
            linked_entry_id: None,
            postings: sweep_postings(state, *source, *target)?,
            hold_resolution: None,
        },
    };
    // A bank charge may pass a limit (the flag is recorded with the entry, see `commit`).
    let bank_charge =
        matches!(command, Command::Entry(entry) if entry.bank_charge_may_exceed_limit);
    if !bank_charge {
        check_limits(state, &planned.postings)?;
    }
    Ok(planned)
}

/// The two postings that move the whole posted balance of `source` to `target`, decided on
/// the balances this batch read (and locked): whatever was committed before is swept.
fn sweep_postings(
    state: &BatchState,
    source: AccountId,
    target: AccountId,
) -> Result<Vec<Posting>, LedgerError> {
    let from = account(state, source)?;
    let to = account(state, target)?;
    if from.status == AccountStatus::Closed {
        return Err(LedgerError::AccountClosed { account_id: source });
    }
    // Frozen both ways, nothing can change the balance between the sweep and what follows
    // it (closing the account): the amount swept is final.
    if !(from.debits_frozen && from.credits_frozen) {
        return Err(LedgerError::CannotSweep {
            account_id: source,
            code: "sweep_source_not_frozen",
            reason: "freeze its debits and credits first".to_owned(),
        });
    }
    if from.currency != to.currency {
        return Err(LedgerError::CurrencyMismatch {
            leg: 1,
            account_id: target,
            leg_currency: from.currency,
            account_currency: to.currency,
        });
    }
    let Some(balances) = state.checked_balances.get(&source) else {
        return Err(LedgerError::Internal {
            message: format!("the balance of account {source} was not loaded for its sweep"),
        });
    };
    if !(balances.debits_pending.is_zero() && balances.credits_pending.is_zero()) {
        return Err(LedgerError::CannotSweep {
            account_id: source,
            code: "sweep_source_has_pending",
            reason: "it has pending amounts (holds); resolve them first".to_owned(),
        });
    }
    let (source_side, balance) = match from.account_type.normal_side() {
        Direction::Debit => (
            Direction::Credit,
            balances.debits_posted - balances.credits_posted,
        ),
        Direction::Credit => (
            Direction::Debit,
            balances.credits_posted - balances.debits_posted,
        ),
    };
    if balance <= Decimal::ZERO {
        return Err(LedgerError::CannotSweep {
            account_id: source,
            code: "nothing_to_sweep",
            reason: format!("its posted balance is {}", balance.normalize()),
        });
    }
    check_open(to, source_side.opposite())?;
    Ok(vec![
        Posting {
            account_id: source,
            direction: source_side,
            bucket: Bucket::Posted,
            amount: balance,
            currency: from.currency,
        },
        Posting {
            account_id: target,
            direction: source_side.opposite(),
            bucket: Bucket::Posted,
            amount: balance,
            currency: from.currency,
        },
    ])
}

/// A partial post applies the same amount to every leg, so it needs legs of one amount.
fn partial_amount(
    hold: &Hold,
    pending_id: JournalEntryId,
    requested: Decimal,
) -> Result<Decimal, LedgerError> {
    let Some(first) = hold.postings.first() else {
        return Err(LedgerError::Internal {
            message: format!("hold {pending_id} has no postings"),
        });
    };
    if hold.postings.iter().any(|p| p.amount != first.amount) {
        return Err(LedgerError::invalid(
            "amount",
            "a pending entry whose legs differ in amount can only be posted in full",
        ));
    }
    let money =
        Money::new(requested, first.currency).map_err(|error| LedgerError::InvalidAmount {
            field: "amount".to_owned(),
            message: error.to_string(),
        })?;
    if money.amount() > first.amount {
        return Err(LedgerError::PostExceedsPending {
            pending_id,
            requested: money.amount_string(),
            pending: Money::new(first.amount, first.currency)
                .map_or_else(|_| first.amount.to_string(), |m| m.amount_string()),
        });
    }
    Ok(money.amount())
}

fn deltas_by_account(postings: &[Posting]) -> BTreeMap<AccountId, Balances> {
    let mut deltas: BTreeMap<AccountId, Balances> = BTreeMap::new();
    for posting in postings {
        deltas.entry(posting.account_id).or_default().apply(
            posting.direction,
            posting.bucket,
            posting.amount,
        );
    }
    deltas
}

fn check_limits(state: &BatchState, postings: &[Posting]) -> Result<(), LedgerError> {
    for (account_id, delta) in deltas_by_account(postings) {
        let account = account(state, account_id)?;
        let Some(restricted) = account.limit.kind.restricts() else {
            continue;
        };
        let raises = match restricted {
            Direction::Debit => delta.debits_posted + delta.debits_pending > Decimal::ZERO,
            Direction::Credit => delta.credits_posted + delta.credits_pending > Decimal::ZERO,
        };
        if !raises {
            continue;
        }
        let Some(current) = state.checked_balances.get(&account_id) else {
            return Err(LedgerError::Internal {
                message: format!(
                    "the balance of account {account_id} was not loaded for its limit check"
                ),
            });
        };
        let mut after = *current;
        after.add(&delta);
        if !after.within(&account.limit) {
            return Err(LedgerError::LimitExceeded {
                account_id,
                limit: account.limit.kind.as_str(),
                available: (current.available(account.account_type) + account.limit.amount)
                    .normalize()
                    .to_string(),
            });
        }
    }
    Ok(())
}

fn commit(
    state: &mut BatchState,
    writes: &mut BatchWrites,
    command: &Command,
    planned: Planned,
    at: DateTime<Utc>,
) -> Entry {
    let id = command.id();
    for (account_id, delta) in deltas_by_account(&planned.postings) {
        if let Some(balances) = state.checked_balances.get_mut(&account_id) {
            balances.add(&delta);
        }
        let shards = state
            .accounts
            .get(&account_id)
            .map_or(1, |a| a.balance_shards);
        writes
            .deltas
            .entry((account_id, shard_of(state.shard_pick, shards)))
            .or_default()
            .add(&delta);
    }
    let (value_date, description, external_ref, metadata) = match command {
        Command::Sweep {
            description,
            external_ref,
            ..
        } => (
            at.date_naive(),
            description.clone(),
            external_ref.clone(),
            BTreeMap::new(),
        ),
        Command::Entry(entry) => {
            let mut metadata = entry.metadata.clone();
            if entry.bank_charge_may_exceed_limit {
                metadata.insert(
                    crate::domain::command::BANK_CHARGE_METADATA_KEY.to_owned(),
                    "true".to_owned(),
                );
            }
            (
                entry.value_date.unwrap_or_else(|| at.date_naive()),
                entry.description.clone(),
                entry.external_ref.clone(),
                metadata,
            )
        }
        Command::PostPending { description, .. }
        | Command::VoidPending { description, .. }
        | Command::Reverse { description, .. } => (
            at.date_naive(),
            description.clone(),
            String::new(),
            BTreeMap::new(),
        ),
        Command::ExpirePending { .. } => (
            at.date_naive(),
            "expired".to_owned(),
            String::new(),
            BTreeMap::new(),
        ),
    };
    let partition = partition_of(id);
    let head = state.heads.get(&partition).cloned().unwrap_or(ChainHead {
        sequence: 0,
        hash: crate::domain::hash::GENESIS_HASH.to_owned(),
    });
    let mut entry = Entry {
        id,
        kind: planned.kind,
        linked_entry_id: planned.linked_entry_id,
        value_date,
        recorded_at: at,
        description,
        external_ref,
        metadata,
        postings: planned.postings,
        chain_partition: partition,
        chain_sequence: head.sequence + 1,
        prev_hash: head.hash,
        hash: String::new(),
    };
    entry.hash = entry_hash(&entry);
    let new_head = ChainHead {
        sequence: entry.chain_sequence,
        hash: entry.hash.clone(),
    };
    state.heads.insert(partition, new_head.clone());
    writes.heads.insert(partition, new_head);

    if let (Some(status), Some(pending_id)) = (planned.hold_resolution, planned.linked_entry_id) {
        if let Some(hold) = state.holds.get_mut(&pending_id) {
            hold.status = status;
        }
        writes.resolved_holds.push((pending_id, status, id, at));
    }
    match entry.kind {
        EntryKind::Pending => {
            let timeout = match command {
                Command::Entry(new) if new.timeout_seconds > 0 => {
                    Some(at + TimeDelta::seconds(i64::from(new.timeout_seconds)))
                }
                _ => None,
            };
            state.holds.insert(
                id,
                Hold {
                    entry_id: id,
                    status: HoldStatus::Pending,
                    expires_at: timeout,
                    postings: entry.postings.clone(),
                },
            );
            writes.new_holds.push((id, timeout));
        }
        EntryKind::Posted | EntryKind::PostPending => {
            state.targets.insert(
                id,
                ReversalTarget {
                    kind: entry.kind,
                    postings: entry.postings.clone(),
                    reversed: false,
                },
            );
        }
        EntryKind::Reversal => {
            if let Some(target) = planned
                .linked_entry_id
                .and_then(|linked| state.targets.get_mut(&linked))
            {
                target.reversed = true;
            }
        }
        EntryKind::VoidPending | EntryKind::ExpirePending => {}
    }
    entry
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use std::collections::BTreeMap;

    use corebank_kernel::{Currency, Money};

    use super::*;
    use crate::domain::command::{Leg, NewEntry};
    use crate::domain::model::{AccountStatus, AccountType, BalanceLimit, LimitKind};

    fn account(account_type: AccountType, shards: u32) -> Account {
        Account {
            id: AccountId::generate(),
            code: String::new(),
            name: String::new(),
            currency: Currency::from_code("EUR").unwrap(),
            account_type,
            limit: BalanceLimit {
                kind: LimitKind::None,
                amount: Decimal::ZERO,
            },
            status: AccountStatus::Open,
            debits_frozen: false,
            credits_frozen: false,
            external_ref: String::new(),
            metadata: BTreeMap::new(),
            balance_shards: shards,
            created_at: DateTime::<Utc>::UNIX_EPOCH,
        }
    }

    fn transfer(debit: AccountId, credit: AccountId) -> Command {
        let amount = Money::parse("1.00", Currency::from_code("EUR").unwrap()).unwrap();
        Command::Entry(NewEntry::posted(
            JournalEntryId::generate(),
            Leg::transfer(debit, credit, amount),
        ))
    }

    #[test]
    fn a_batch_adds_its_changes_to_a_sharded_account_into_one_row() {
        let cash = account(AccountType::Asset, 1);
        let fees = account(AccountType::Income, 16);
        let mut state = BatchState {
            shard_pick: 21,
            ..BatchState::default()
        };
        state.accounts.insert(cash.id, cash.clone());
        state.accounts.insert(fees.id, fees.clone());
        let commands: Vec<Command> = (0..50).map(|_| transfer(cash.id, fees.id)).collect();
        let (outcomes, writes) = apply_batch(&mut state, &commands, Utc::now());
        assert!(
            outcomes
                .iter()
                .all(|outcome| matches!(outcome, Outcome::Applied(_)))
        );
        let fee_rows: Vec<_> = writes
            .deltas
            .iter()
            .filter(|((id, _), _)| *id == fees.id)
            .collect();
        assert_eq!(fee_rows.len(), 1, "one balance row of the hot account");
        let ((_, shard), delta) = fee_rows[0];
        assert_eq!(*shard, 21 % 16);
        assert_eq!(delta.credits_posted, Decimal::from(50));
    }
}
