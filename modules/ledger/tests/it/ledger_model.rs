//! Model-based property test: random sequences of ledger operations run against the real
//! ledger and against a small in-memory model of its rules. Every outcome (applied, replayed,
//! or refused with which code) and every balance must agree, and the trial balance must sum
//! to zero after every step.

use std::sync::Arc;

use crate::common::*;
use chrono::{DateTime, TimeDelta, Utc};
use corebank_kernel::{AccountId, JournalEntryId, TestClock};
use corebank_ledger::app::EntryView;
use corebank_ledger::domain::command::Command;
use corebank_ledger::domain::error::LedgerError;
use corebank_ledger::domain::model::{
    AccountStatus, AccountType, BalanceLimit, EntryKind, LimitKind,
};
use corebank_ledger::{Ledger, LedgerConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rust_decimal::Decimal;

const ACCOUNTS: usize = 5;
const HOLD_TIMEOUT_SECONDS: u32 = 10;

#[derive(Debug, Clone)]
enum Op {
    Transfer {
        from: usize,
        to: usize,
        cents: i64,
        pending: bool,
        timeout: bool,
    },
    PostPending {
        hold: usize,
        cents: Option<i64>,
    },
    Void {
        hold: usize,
    },
    Expire,
    Reverse {
        entry: usize,
    },
    Freeze {
        account: usize,
        debits: bool,
        credits: bool,
    },
    SetLimit {
        account: usize,
        cents: i64,
    },
    Replay {
        entry: usize,
        change_amount: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..ACCOUNTS, 0..ACCOUNTS, 1_i64..5_000, any::<bool>(), any::<bool>())
            .prop_map(|(from, to, cents, pending, timeout)| Op::Transfer { from, to, cents, pending, timeout }),
        2 => (0..64_usize, proptest::option::of(1_i64..6_000)).prop_map(|(hold, cents)| Op::PostPending { hold, cents }),
        1 => (0..64_usize).prop_map(|hold| Op::Void { hold }),
        1 => Just(Op::Expire),
        1 => (0..64_usize).prop_map(|entry| Op::Reverse { entry }),
        1 => (0..ACCOUNTS, prop::bool::weighted(0.3), prop::bool::weighted(0.3))
            .prop_map(|(account, debits, credits)| Op::Freeze { account, debits, credits }),
        1 => (0..ACCOUNTS, 0_i64..3_000).prop_map(|(account, cents)| Op::SetLimit { account, cents }),
        1 => (0..64_usize, any::<bool>()).prop_map(|(entry, change_amount)| Op::Replay { entry, change_amount }),
    ]
}

#[derive(Debug, Clone)]
struct ModelAccount {
    id: AccountId,
    limit: LimitKind,
    allowance: i64,
    debits_frozen: bool,
    credits_frozen: bool,
    dp: i64,
    cp: i64,
    dpe: i64,
    cpe: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HoldState {
    Pending,
    Posted,
    Voided,
    Expired,
}

#[derive(Debug, Clone)]
struct ModelEntry {
    id: JournalEntryId,
    kind: EntryKind,
    command: Command,
    /// Posted effects: (debited account, credited account, cents).
    posted: Option<(usize, usize, i64)>,
    reversed: bool,
}

#[derive(Debug, Clone)]
struct ModelHold {
    id: JournalEntryId,
    from: usize,
    to: usize,
    cents: i64,
    state: HoldState,
    expires_at: Option<DateTime<Utc>>,
}

impl ModelEntry {
    fn new(
        id: JournalEntryId,
        kind: EntryKind,
        command: Command,
        posted: Option<(usize, usize, i64)>,
    ) -> ModelEntry {
        ModelEntry {
            id,
            kind,
            command,
            posted,
            reversed: false,
        }
    }
}

struct Model {
    accounts: Vec<ModelAccount>,
    entries: Vec<ModelEntry>,
    holds: Vec<ModelHold>,
}

fn money(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

impl Model {
    fn frozen(&self, account: usize, debit: bool) -> bool {
        if debit {
            self.accounts[account].debits_frozen
        } else {
            self.accounts[account].credits_frozen
        }
    }

    /// The refusal a debit of `debit` and credit of `credit` (posted or pending) would meet.
    fn limit_refusal(&self, debit: usize, credit: usize, cents: i64) -> Option<&'static str> {
        let d = &self.accounts[debit];
        if d.limit == LimitKind::DebitsMustNotExceedCredits
            && d.dp + d.dpe + cents > d.cp + d.allowance
        {
            return Some("limit_exceeded");
        }
        let c = &self.accounts[credit];
        if c.limit == LimitKind::CreditsMustNotExceedDebits
            && c.cp + c.cpe + cents > c.dp + c.allowance
        {
            return Some("limit_exceeded");
        }
        None
    }
}

async fn open_accounts(ledger: &corebank_ledger::Ledger) -> Vec<ModelAccount> {
    let specs = [
        (AccountType::Asset, LimitKind::None, 0, 1),
        (
            AccountType::Liability,
            LimitKind::DebitsMustNotExceedCredits,
            0,
            1,
        ),
        (
            AccountType::Liability,
            LimitKind::DebitsMustNotExceedCredits,
            2_000,
            1,
        ),
        (AccountType::Income, LimitKind::None, 0, 4),
        (
            AccountType::Asset,
            LimitKind::CreditsMustNotExceedDebits,
            1_000,
            1,
        ),
    ];
    let mut accounts = Vec::new();
    for (account_type, limit, allowance, shards) in specs {
        let id = open_sharded(ledger, account_type, limit, &money(allowance), shards).await;
        accounts.push(ModelAccount {
            id,
            limit,
            allowance,
            debits_frozen: false,
            credits_frozen: false,
            dp: 0,
            cp: 0,
            dpe: 0,
            cpe: 0,
        });
    }
    accounts
}

fn code_of<T>(result: &Result<T, LedgerError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(error) => Box::leak(error.code().into_boxed_str()),
    }
}

/// Submits `command` at `step` and checks that the ledger answers as the model `expected`
/// (`ok` or the refusal's code).
async fn submit_expecting(
    ledger: &Ledger,
    step: usize,
    command: &Command,
    expected: &str,
) -> Result<Result<EntryView, LedgerError>, TestCaseError> {
    let result = ledger.submit(command.clone()).await;
    prop_assert_eq!(code_of(&result), expected, "step {}: {:?}", step, command);
    Ok(result)
}

async fn check(h: &Harness, clock: &TestClock, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ledger = &h.ledger;
    let mut model = Model {
        accounts: open_accounts(ledger).await,
        entries: Vec::new(),
        holds: Vec::new(),
    };
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Transfer {
                from,
                to,
                cents,
                pending,
                timeout,
            } => {
                if from == to {
                    continue;
                }
                let id = JournalEntryId::generate();
                let timeout_seconds = if pending && timeout {
                    HOLD_TIMEOUT_SECONDS
                } else {
                    0
                };
                let command = if pending {
                    hold_command(
                        id,
                        model.accounts[from].id,
                        model.accounts[to].id,
                        &money(cents),
                        timeout_seconds,
                    )
                } else {
                    transfer_command(
                        id,
                        model.accounts[from].id,
                        model.accounts[to].id,
                        &money(cents),
                    )
                };
                let expected = if model.frozen(from, true) || model.frozen(to, false) {
                    "account_frozen"
                } else {
                    model.limit_refusal(from, to, cents).unwrap_or("ok")
                };
                let result = submit_expecting(ledger, step, &command, expected).await?;
                if let Ok(view) = result {
                    if pending {
                        model.accounts[from].dpe += cents;
                        model.accounts[to].cpe += cents;
                        let expires_at = view.hold.and_then(|(_, at)| at);
                        model.holds.push(ModelHold {
                            id,
                            from,
                            to,
                            cents,
                            state: HoldState::Pending,
                            expires_at,
                        });
                        model
                            .entries
                            .push(ModelEntry::new(id, EntryKind::Pending, command, None));
                    } else {
                        model.accounts[from].dp += cents;
                        model.accounts[to].cp += cents;
                        let posted = Some((from, to, cents));
                        model
                            .entries
                            .push(ModelEntry::new(id, EntryKind::Posted, command, posted));
                    }
                }
            }
            Op::PostPending { .. } | Op::Void { .. } if model.holds.is_empty() => {}
            Op::PostPending { hold, cents } => {
                let index = hold % model.holds.len();
                let h_ = model.holds[index].clone();
                let now = clock_now(clock);
                let expected = if let Some(code) = hold_not_live(&h_, now) {
                    code
                } else if cents.is_some_and(|c| c > h_.cents) {
                    "post_exceeds_pending"
                } else if model.frozen(h_.from, true) || model.frozen(h_.to, false) {
                    "account_frozen"
                } else {
                    "ok"
                };
                let id = JournalEntryId::generate();
                let command = Command::PostPending {
                    id,
                    pending_id: h_.id,
                    amount: cents.map(|c| Decimal::new(c, 2)),
                    description: String::new(),
                };
                let result = submit_expecting(ledger, step, &command, expected).await?;
                if result.is_ok() {
                    let posted_cents = cents.unwrap_or(h_.cents);
                    let (from, to) = (h_.from, h_.to);
                    model.accounts[from].dpe -= h_.cents;
                    model.accounts[to].cpe -= h_.cents;
                    model.accounts[from].dp += posted_cents;
                    model.accounts[to].cp += posted_cents;
                    model.holds[index].state = HoldState::Posted;
                    let posted = Some((from, to, posted_cents));
                    model.entries.push(ModelEntry::new(
                        id,
                        EntryKind::PostPending,
                        command,
                        posted,
                    ));
                }
            }
            Op::Void { hold } => {
                let index = hold % model.holds.len();
                let h_ = model.holds[index].clone();
                let now = clock_now(clock);
                let expected = hold_not_live(&h_, now).unwrap_or("ok");
                let command = Command::VoidPending {
                    id: JournalEntryId::generate(),
                    pending_id: h_.id,
                    description: String::new(),
                };
                let result = submit_expecting(ledger, step, &command, expected).await?;
                if result.is_ok() {
                    model.accounts[h_.from].dpe -= h_.cents;
                    model.accounts[h_.to].cpe -= h_.cents;
                    model.holds[index].state = HoldState::Voided;
                }
            }
            Op::Expire => {
                clock.advance(TimeDelta::seconds(i64::from(HOLD_TIMEOUT_SECONDS) + 1));
                let now = clock_now(clock);
                ledger.expire_due(10_000).await.unwrap();
                for hold in &mut model.holds {
                    if hold.state == HoldState::Pending
                        && hold.expires_at.is_some_and(|at| at <= now)
                    {
                        hold.state = HoldState::Expired;
                        model.accounts[hold.from].dpe -= hold.cents;
                        model.accounts[hold.to].cpe -= hold.cents;
                    }
                }
            }
            Op::Reverse { entry } => {
                if model.entries.is_empty() {
                    continue;
                }
                let index = entry % model.entries.len();
                let target = model.entries[index].clone();
                let expected = match (target.kind, target.posted) {
                    (EntryKind::Posted | EntryKind::PostPending, Some(_)) if target.reversed => {
                        "already_reversed"
                    }
                    (EntryKind::Posted | EntryKind::PostPending, Some((from, to, cents))) => {
                        // The reversal debits the credited account and credits the debited one.
                        if model.frozen(to, true) || model.frozen(from, false) {
                            "account_frozen"
                        } else {
                            model.limit_refusal(to, from, cents).unwrap_or("ok")
                        }
                    }
                    _ => "not_reversible",
                };
                let command = Command::Reverse {
                    id: JournalEntryId::generate(),
                    entry_id: target.id,
                    description: String::new(),
                };
                let result = submit_expecting(ledger, step, &command, expected).await?;
                if result.is_ok()
                    && let Some((from, to, cents)) = target.posted
                {
                    model.accounts[to].dp += cents;
                    model.accounts[from].cp += cents;
                    model.entries[index].reversed = true;
                }
            }
            Op::Freeze {
                account,
                debits,
                credits,
            } => {
                ledger
                    .set_status(
                        model.accounts[account].id,
                        AccountStatus::Open,
                        debits,
                        credits,
                    )
                    .await
                    .unwrap();
                model.accounts[account].debits_frozen = debits;
                model.accounts[account].credits_frozen = credits;
            }
            Op::SetLimit { account, cents } => {
                let kind = model.accounts[account].limit;
                if kind == LimitKind::None {
                    continue;
                }
                ledger
                    .set_limit(
                        model.accounts[account].id,
                        BalanceLimit {
                            kind,
                            amount: Decimal::new(cents, 2),
                        },
                    )
                    .await
                    .unwrap();
                model.accounts[account].allowance = cents;
            }
            Op::Replay {
                entry,
                change_amount,
            } => {
                let Some(target) = (!model.entries.is_empty())
                    .then(|| model.entries[entry % model.entries.len()].clone())
                else {
                    continue;
                };
                let Command::Entry(mut original) = target.command.clone() else {
                    continue;
                };
                if change_amount {
                    for leg in &mut original.legs {
                        leg.amount = leg.amount.checked_add(&eur("0.01")).unwrap();
                    }
                }
                let result = ledger.submit(Command::Entry(original)).await;
                if change_amount {
                    prop_assert_eq!(
                        code_of(&result),
                        "exists_with_different_amount",
                        "step {}",
                        step
                    );
                } else {
                    prop_assert!(
                        result.as_ref().is_ok_and(|v| v.replayed),
                        "step {}: a replay, got {:?}",
                        step,
                        result
                    );
                }
            }
        }
        let report = ledger.trial_balance(None).await.unwrap();
        prop_assert!(
            report.balanced(),
            "step {}: trial balance {:?}",
            step,
            report.difference_by_currency
        );
    }
    for account in &model.accounts {
        let view = ledger.account(account.id).await.unwrap();
        let b = view.balances;
        prop_assert_eq!(
            (
                b.debits_posted,
                b.credits_posted,
                b.debits_pending,
                b.credits_pending
            ),
            (
                Decimal::new(account.dp, 2),
                Decimal::new(account.cp, 2),
                Decimal::new(account.dpe, 2),
                Decimal::new(account.cpe, 2)
            ),
            "balances of {:?}",
            account
        );
    }
    Ok(())
}

/// What posting or voiding `hold` at `now` is refused with because the hold is no longer
/// pending, if it is not.
fn hold_not_live(hold: &ModelHold, now: DateTime<Utc>) -> Option<&'static str> {
    match hold.state {
        HoldState::Posted => Some("pending_already_posted"),
        HoldState::Voided => Some("pending_already_voided"),
        HoldState::Expired => Some("pending_expired"),
        HoldState::Pending if hold.expires_at.is_some_and(|at| at <= now) => {
            Some("pending_expired")
        }
        HoldState::Pending => None,
    }
}

fn clock_now(clock: &TestClock) -> DateTime<Utc> {
    use corebank_kernel::Clock as _;
    clock.now()
}

#[test]
fn random_operation_sequences_agree_with_the_model() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(TestClock::new(Utc::now()));
    // The background expirer stays out of the way: the model expires holds explicitly.
    let config = LedgerConfig {
        expire_interval_ms: 24 * 3_600_000,
        ..LedgerConfig::default()
    };
    let harness = runtime.block_on(start_with(clock.clone(), config));
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(24);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let result = runner.run(&proptest::collection::vec(op(), 1..40), |ops| {
        runtime.block_on(check(&harness, &clock, ops))
    });
    runtime.block_on(assert_books_hold(&harness));
    drop(harness);
    if let Err(error) = result {
        panic!("{error}");
    }
}
