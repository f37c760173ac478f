//! Interest: accrued day by day into each account's accrued-interest ledger account and
//! posted to the account at each period end. One account at a time and one day at a time,
//! each day one idempotent ledger entry (its id derives from account and day) and one small
//! local transaction that moves the account's accrual position only if it is still where it
//! was read. Nothing is locked across accounts or across the run: payments keep flowing.

use chrono::NaiveDate;
use corebank_kernel::Money;
use rust_decimal::Decimal;
use serde_json::json;
use uuid::Uuid;

use super::{Deposits, money_text};
use crate::domain::error::DepositsError;
use crate::domain::interest::{accrual_entry_id, accrue_day, daily_interest, posting_entry_id};
use crate::domain::model::{Account, AccountStatus};
use crate::store;

/// What an accrual run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccrualReport {
    pub accounts: u64,
    pub accrual_entries: u64,
    pub postings: u64,
    /// Accounts that could not be accrued (the reason is logged); the next run retries them.
    pub failed: u64,
}

/// Accounts read per page of an accrual run.
const PAGE: i64 = 200;

impl Deposits {
    /// Accrues every open account up to and including `through`, posting at period ends.
    /// `progress(done, total)` is called after each account.
    pub async fn accrue(
        &self,
        through: NaiveDate,
        progress: &(dyn Fn(u64, u64) + Send + Sync),
    ) -> Result<AccrualReport, DepositsError> {
        let total = self
            .in_tx("deposits_accrual_count", |tx| {
                Box::pin(async move { store::count_to_accrue(&tx, through).await })
            })
            .await?;
        let total = u64::try_from(total).unwrap_or(0);
        let mut report = AccrualReport::default();
        let mut after = Uuid::nil();
        loop {
            let page = self
                .in_tx("deposits_accrual_page", |tx| {
                    Box::pin(
                        async move { store::accounts_to_accrue(&tx, through, after, PAGE).await },
                    )
                })
                .await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            for account in page {
                match self.accrue_account(account.id, through, false).await {
                    Ok(one) => {
                        report.accrual_entries += one.accrual_entries;
                        report.postings += one.postings;
                    }
                    Err(error) => {
                        report.failed += 1;
                        tracing::warn!(account.id = %account.id, %error, "interest accrual failed for this account; the next run retries it");
                    }
                }
                report.accounts += 1;
                progress(report.accounts, total);
            }
        }
        metrics::counter!("corebank_deposits_accrual_entries_total")
            .increment(report.accrual_entries);
        metrics::counter!("corebank_deposits_interest_postings_total").increment(report.postings);
        Ok(report)
    }

    /// Accrues one account day by day up to `through`; with `final_posting`, posts whatever
    /// the period holds on the last day even if it is not a period end (closing).
    pub(crate) async fn accrue_account(
        &self,
        account_id: Uuid,
        through: NaiveDate,
        final_posting: bool,
    ) -> Result<AccrualReport, DepositsError> {
        let mut account = self.load_account(account_id).await?;
        let product = self
            .product(&account.product_code, Some(account.product_version))
            .await?;
        let rates = product.rates()?;
        let minor_units = account.currency.minor_units();
        let mut report = AccrualReport::default();
        while account.accrued_through < through && account.status != AccountStatus::Closed {
            let Some(day) = account.accrued_through.succ_opt() else {
                break;
            };
            let balance = self.balance_on(account.ledger_account_id, day).await?;
            let precise = daily_interest(
                balance,
                &rates,
                product.overdraft_rate,
                product.day_count,
                day,
            )?;
            let (period_precise, amount) = accrue_day(
                account.period_precise,
                account.period_posted,
                precise,
                minor_units,
            )?;
            if !amount.is_zero() {
                self.post_interest_leg(
                    &account,
                    accrual_entry_id(account.id, day),
                    amount,
                    day,
                    false,
                )
                .await?;
                report.accrual_entries += 1;
            }
            let mut period_posted = account.period_posted + amount;
            let mut period_precise = period_precise;
            let mut posted_event = None;
            let period_end =
                product.posting_frequency.is_period_end(day) || (final_posting && day == through);
            if period_end {
                if !period_posted.is_zero() {
                    self.post_interest_leg(
                        &account,
                        posting_entry_id(account.id, day),
                        period_posted,
                        day,
                        true,
                    )
                    .await?;
                    report.postings += 1;
                    posted_event = Some(self.event(
                        account.id,
                        "deposits.interest.posted",
                        json!({
                            "account_id": account.id,
                            "period_end": day,
                            "amount": money_text(period_posted, account.currency),
                            "currency": account.currency.code(),
                            "entry_id": posting_entry_id(account.id, day),
                        }),
                    )?);
                }
                period_posted = Decimal::ZERO;
                period_precise = Decimal::ZERO;
            }
            let from = account.accrued_through;
            let outbox = &self.outbox;
            let event = posted_event.as_ref();
            let moved = self
                .in_tx("deposits_accrual_advance", |tx| {
                    Box::pin(async move {
                        let moved = store::advance_accrual(
                            &tx,
                            account_id,
                            from,
                            day,
                            period_precise,
                            period_posted,
                        )
                        .await?;
                        if moved && let Some(event) = event {
                            outbox.append_one::<DepositsError>(&tx, event).await?;
                        }
                        Ok(moved)
                    })
                })
                .await?;
            if !moved {
                // Another run moved this account meanwhile: start again from where it is.
                account = self.load_account(account_id).await?;
                continue;
            }
            account.accrued_through = day;
            account.period_precise = period_precise;
            account.period_posted = period_posted;
        }
        // Closing: what the period holds is posted now, even when the days were accrued
        // before (by the scheduled job) and the loop above had nothing left to do.
        if final_posting
            && account.accrued_through >= through
            && !account.period_posted.is_zero()
            && account.status != AccountStatus::Closed
        {
            let day = account.accrued_through;
            let amount = account.period_posted;
            self.post_interest_leg(
                &account,
                posting_entry_id(account.id, day),
                amount,
                day,
                true,
            )
            .await?;
            report.postings += 1;
            let event = self.event(
                account.id,
                "deposits.interest.posted",
                json!({
                    "account_id": account.id,
                    "period_end": day,
                    "amount": money_text(amount, account.currency),
                    "currency": account.currency.code(),
                    "entry_id": posting_entry_id(account.id, day),
                }),
            )?;
            let outbox = &self.outbox;
            let event = &event;
            self.in_tx("deposits_accrual_final_posting", |tx| {
                Box::pin(async move {
                    let reset = store::reset_period(&tx, account_id, day, amount).await?;
                    if reset {
                        outbox.append_one::<DepositsError>(&tx, event).await?;
                    }
                    Ok(())
                })
            })
            .await?;
        }
        Ok(report)
    }

    /// One interest entry. Accrual (`posting` false): interest the bank owes goes from
    /// interest expense to the accrued account; overdraft interest the customer owes goes
    /// from the accrued account to overdraft income. Posting: the period's total moves
    /// between the accrued account and the customer's account.
    async fn post_interest_leg(
        &self,
        account: &Account,
        id: Uuid,
        amount: Decimal,
        day: NaiveDate,
        posting: bool,
    ) -> Result<(), DepositsError> {
        let money =
            Money::new(amount.abs(), account.currency).map_err(|e| DepositsError::Internal {
                message: e.to_string(),
            })?;
        let owed_to_customer = amount > Decimal::ZERO;
        if posting && !owed_to_customer {
            // Overdraft interest the customer owes: a bank charge, which an account already
            // at its overdraft limit must still take (else every run fails on it).
            return self
                .ledger_bank_charge(
                    id,
                    account.ledger_account_id,
                    account.accrued_account_id,
                    money,
                    "overdraft interest",
                    day,
                )
                .await;
        }
        let (debit, credit, description) = match (posting, owed_to_customer) {
            (false, true) => (
                self.gl_account(account.currency, "interest_expense")
                    .await?,
                account.accrued_account_id,
                "interest accrued",
            ),
            (false, false) => (
                account.accrued_account_id,
                self.gl_account(account.currency, "overdraft_interest_income")
                    .await?,
                "overdraft interest accrued",
            ),
            (true, true) => (
                account.accrued_account_id,
                account.ledger_account_id,
                "interest",
            ),
            (true, false) => (
                account.ledger_account_id,
                account.accrued_account_id,
                "overdraft interest",
            ),
        };
        self.ledger_entry(id, debit, credit, money, description, Some(day), false, 0)
            .await
    }
}
