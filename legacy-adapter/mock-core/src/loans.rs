//! `LD.LOANS.AND.DEPOSITS`: loans disbursed at once with an annuity schedule, and the
//! repayments that `FUNDS.TRANSFER` type `LR` makes (oldest instalment first, interest
//! before principal).

use chrono::{Months, NaiveDate};
use corebank_db::Transaction;
use rust_decimal::{Decimal, RoundingStrategy};

use super::apps::{Book, new_id};
use super::books::{
    self, CATEGORY_LOANS_CONTROL, Posting, internal_account, is_currency_allowed, next_journal,
    postable_account,
};
use super::input::{Answer, Input, Outcome, Record, amount_text, corrupt, date_text, refuse};
use corebank_legacy_ofs::Request;

/// The longest term, in months: the answer carries four schedule fields per month, and
/// with 240 months (960 fields and the loan's own 9, plus `APPLICATION` in `TXN.BY.ID`) every
/// answer about a loan stays within the protocol's 1,000 fields.
pub(crate) const TERM_MONTHS_MAX: u32 = 240;
/// The highest annual rate, in percent.
const RATE_PERCENT_MAX: Decimal = Decimal::from_parts(100, 0, 0, false, 0);

/// One instalment of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Instalment {
    pub due_date: NaiveDate,
    pub principal: Decimal,
    pub interest: Decimal,
}

fn cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
}

/// The annuity schedule of `principal` at `rate_percent` a year over `term` months: the
/// instalment `P·r / (1 − (1 + r)^−n)` with `r` = rate / 1200, rounded half-even to cents;
/// each month's interest is the outstanding principal times `r`, rounded the same way; the
/// last instalment takes what rounding left, so the principals sum to `principal`. `None`
/// when the numbers do not fit.
pub(crate) fn annuity_schedule(
    principal: Decimal,
    rate_percent: Decimal,
    term: u32,
    value_date: NaiveDate,
) -> Option<Vec<Instalment>> {
    if term == 0 || term > TERM_MONTHS_MAX || principal <= Decimal::ZERO {
        return None;
    }
    let rate = rate_percent.checked_div(Decimal::from(1200))?;
    let instalment = if rate.is_zero() {
        cents(principal.checked_div(Decimal::from(term))?)
    } else {
        let growth = Decimal::ONE.checked_add(rate)?;
        let mut power = Decimal::ONE;
        for _ in 0..term {
            power = power.checked_mul(growth)?;
        }
        // P·r / (1 − (1 + r)^−n) = P·r·(1 + r)^n / ((1 + r)^n − 1)
        cents(
            principal
                .checked_mul(rate)?
                .checked_mul(power)?
                .checked_div(power.checked_sub(Decimal::ONE)?)?,
        )
    };
    let mut outstanding = principal;
    let mut schedule = Vec::new();
    for month in 1..=term {
        let interest = cents(outstanding.checked_mul(rate)?);
        let principal_part = if month == term {
            outstanding
        } else {
            (instalment - interest).max(Decimal::ZERO).min(outstanding)
        };
        outstanding -= principal_part;
        schedule.push(Instalment {
            due_date: value_date.checked_add_months(Months::new(month))?,
            principal: principal_part,
            interest,
        });
    }
    Some(schedule)
}

/// A rate as written: at least two decimals.
fn rate_text(rate: Decimal) -> String {
    let mut rate = rate.normalize();
    if rate.scale() < 2 {
        rate.rescale(2);
    }
    rate.to_string()
}

/// The loan as `LD.LOANS.AND.DEPOSITS` answers it, with its schedule.
pub(crate) async fn loan_record(
    tx: &Transaction<'_>,
    id: &str,
) -> Outcome<Option<Vec<corebank_legacy_ofs::Field>>> {
    let Some(loan) = tx
        .query_opt(
            "SELECT customer, currency, amount, interest_rate, term_months, drawdown_account, \
             value_date, outstanding_principal, status FROM loans WHERE id = $1",
            &[&id],
        )
        .await?
    else {
        return Ok(None);
    };
    let schedule = tx
        .query(
            "SELECT due_date, principal, interest, paid_principal, paid_interest \
             FROM loan_schedule WHERE loan_id = $1 ORDER BY number",
            &[&id],
        )
        .await?;
    let mut record = Record::default();
    record
        .field("CUSTOMER.ID", loan.get::<_, String>("customer"))
        .field("CURRENCY", loan.get::<_, String>("currency"))
        .field("AMOUNT", amount_text(loan.get("amount")))
        .field("INTEREST.RATE", rate_text(loan.get("interest_rate")))
        .field("TERM", loan.get::<_, i64>("term_months").to_string())
        .field(
            "DRAWDOWN.ACCOUNT",
            loan.get::<_, String>("drawdown_account"),
        )
        .field("VALUE.DATE", date_text(Some(loan.get("value_date"))));
    for (index, row) in schedule.iter().enumerate() {
        let n = index + 1;
        let paid: Decimal =
            row.get::<_, Decimal>("paid_principal") + row.get::<_, Decimal>("paid_interest");
        record
            .multi("SCHED.DATE", n, date_text(Some(row.get("due_date"))))
            .multi("SCHED.PRINCIPAL", n, amount_text(row.get("principal")))
            .multi("SCHED.INTEREST", n, amount_text(row.get("interest")))
            .multi("SCHED.PAID", n, amount_text(paid));
    }
    record
        .field(
            "OUTSTANDING.PRINCIPAL",
            amount_text(loan.get("outstanding_principal")),
        )
        .field("STATUS", loan.get::<_, String>("status"));
    Ok(Some(record.into_fields()))
}

pub(crate) async fn input_loan(
    tx: &Transaction<'_>,
    request: &Request,
    today: NaiveDate,
) -> Outcome<Answer> {
    let input = Input::check(
        &request.fields,
        &[
            "CUSTOMER.ID",
            "CURRENCY",
            "AMOUNT",
            "INTEREST.RATE",
            "TERM",
            "DRAWDOWN.ACCOUNT",
            "VALUE.DATE",
        ],
        &[],
    )?;
    let journal = next_journal(tx).await?;
    let id = new_id(tx, Book::Loans, &request.transaction_id, today).await?;
    let customer = input
        .customer("CUSTOMER.ID")?
        .ok_or_else(|| refuse("CUSTOMER.ID", "MANDATORY INPUT"))?;
    let currency = input.required("CURRENCY")?;
    if !is_currency_allowed(currency) {
        return Err(refuse("CURRENCY", "CURRENCY NOT ALLOWED"));
    }
    let amount = input.required_amount("AMOUNT")?;
    let rate_text = input.required("INTEREST.RATE")?;
    let rate = rate_text
        .chars()
        .all(|c| c.is_ascii_digit() || c == '.')
        .then(|| rate_text.parse::<Decimal>().ok())
        .flatten()
        .filter(|rate| *rate <= RATE_PERCENT_MAX && rate.scale() <= 6)
        .ok_or_else(|| refuse("INTEREST.RATE", "INVALID VALUE"))?;
    let term = input
        .required("TERM")?
        .parse::<u32>()
        .ok()
        .filter(|term| (1..=TERM_MONTHS_MAX).contains(term))
        .ok_or_else(|| refuse("TERM", "INVALID VALUE"))?;
    let drawdown_id = input.required_account("DRAWDOWN.ACCOUNT")?;
    let value_date = input.date("VALUE.DATE")?.unwrap_or(today);
    books::existing_customer(tx, "CUSTOMER.ID", &customer).await?;
    let drawdown = postable_account(tx, "DRAWDOWN.ACCOUNT", &drawdown_id).await?;
    if drawdown.customer.as_deref() != Some(customer.as_str()) {
        return Err(refuse("DRAWDOWN.ACCOUNT", "INVALID VALUE"));
    }
    if drawdown.currency != currency {
        return Err(refuse("DRAWDOWN.ACCOUNT", "CURRENCY MISMATCH"));
    }
    let schedule = annuity_schedule(amount, rate, term, value_date)
        .ok_or_else(|| refuse("INTEREST.RATE", "INVALID VALUE"))?;
    let control = internal_account(currency, CATEGORY_LOANS_CONTROL)?;
    books::post(
        tx,
        &Posting {
            journal,
            reference: &id,
            booking_date: today,
            value_date,
            narrative: "LOAN DISBURSEMENT",
            legs: vec![(control, -amount), (drawdown_id.clone(), amount)],
        },
    )
    .await?;
    let term_months = i64::from(term);
    tx.execute(
        "INSERT INTO loans (id, customer, currency, amount, interest_rate, term_months, \
         drawdown_account, value_date, outstanding_principal, status, journal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $4, 'CURRENT', $9)",
        &[
            &id,
            &customer,
            &currency,
            &amount,
            &rate,
            &term_months,
            &drawdown_id,
            &value_date,
            &journal,
        ],
    )
    .await?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO loan_schedule (loan_id, number, due_date, principal, interest, \
             paid_principal, paid_interest) VALUES ($1, $2, $3, $4, $5, 0, 0)",
        )
        .await?;
    for (number, instalment) in (1_i64..).zip(&schedule) {
        tx.execute(
            &insert,
            &[
                &id,
                &number,
                &instalment.due_date,
                &instalment.principal,
                &instalment.interest,
            ],
        )
        .await?;
    }
    let fields = loan_record(tx, &id)
        .await?
        .ok_or_else(|| corrupt("the loan just made is missing"))?;
    Ok(Answer::done(id, fields))
}

/// How a repayment splits over a loan's instalments.
#[derive(Debug, Clone)]
pub(crate) struct Repayment {
    pub loan_id: String,
    pub principal: Decimal,
    pub interest: Decimal,
    /// (instalment number, principal paid now, interest paid now)
    pub parts: Vec<(i64, Decimal, Decimal)>,
    pub liquidates: bool,
}

/// Splits `amount` over the loan's unpaid instalments, oldest first, interest before
/// principal. Refuses an unknown loan (`CREDIT.ACCT.NO=RECORD NOT FOUND`), another
/// currency (`CURRENCY MISMATCH`) and more than is owed (`DEBIT.AMOUNT=INVALID AMOUNT`).
pub(crate) async fn plan_repayment(
    tx: &Transaction<'_>,
    loan_id: &str,
    currency: &str,
    amount: Decimal,
) -> Outcome<Repayment> {
    let loan = tx
        .query_opt("SELECT currency FROM loans WHERE id = $1", &[&loan_id])
        .await?
        .ok_or_else(|| refuse("CREDIT.ACCT.NO", "RECORD NOT FOUND"))?;
    if loan.get::<_, String>("currency") != currency {
        return Err(refuse("CREDIT.ACCT.NO", "CURRENCY MISMATCH"));
    }
    let rows = tx
        .query(
            "SELECT number, principal - paid_principal AS principal_due, \
             interest - paid_interest AS interest_due FROM loan_schedule \
             WHERE loan_id = $1 ORDER BY number",
            &[&loan_id],
        )
        .await?;
    let owed: Decimal = rows
        .iter()
        .map(|row| row.get::<_, Decimal>("principal_due") + row.get::<_, Decimal>("interest_due"))
        .sum();
    if amount > owed {
        return Err(refuse("DEBIT.AMOUNT", "INVALID AMOUNT"));
    }
    let mut left = amount;
    let mut repayment = Repayment {
        loan_id: loan_id.to_owned(),
        principal: Decimal::ZERO,
        interest: Decimal::ZERO,
        parts: Vec::new(),
        liquidates: amount == owed,
    };
    for row in &rows {
        if left.is_zero() {
            break;
        }
        let interest = left.min(row.get::<_, Decimal>("interest_due"));
        left -= interest;
        let principal = left.min(row.get::<_, Decimal>("principal_due"));
        left -= principal;
        if !(interest.is_zero() && principal.is_zero()) {
            repayment
                .parts
                .push((row.get("number"), principal, interest));
            repayment.principal += principal;
            repayment.interest += interest;
        }
    }
    if !left.is_zero() {
        return Err(corrupt(format!(
            "loan {loan_id}: repayment left {left} over"
        )));
    }
    Ok(repayment)
}

/// Records a planned repayment on the loan and its schedule.
pub(crate) async fn apply_repayment(tx: &Transaction<'_>, repayment: &Repayment) -> Outcome<()> {
    let update = tx
        .prepare_cached(
            "UPDATE loan_schedule SET paid_principal = paid_principal + $3, \
             paid_interest = paid_interest + $4 WHERE loan_id = $1 AND number = $2",
        )
        .await?;
    for (number, principal, interest) in &repayment.parts {
        tx.execute(&update, &[&repayment.loan_id, number, principal, interest])
            .await?;
    }
    let status = if repayment.liquidates {
        "LIQUIDATED"
    } else {
        "CURRENT"
    };
    tx.execute(
        "UPDATE loans SET outstanding_principal = outstanding_principal - $2, status = $3 \
         WHERE id = $1",
        &[&repayment.loan_id, &repayment.principal, &status],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    #[test]
    fn an_annuity_schedule_repays_exactly_the_principal() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        for (principal, rate, term) in [
            (Decimal::new(1_000_000, 2), Decimal::new(750, 2), 12),
            (Decimal::new(1_234_567, 2), Decimal::new(3, 0), 240),
            (Decimal::new(10_000, 2), Decimal::ZERO, 7),
            (Decimal::new(1, 2), Decimal::new(99, 0), 3),
        ] {
            let schedule = annuity_schedule(principal, rate, term, day).unwrap();
            assert_eq!(schedule.len(), usize::try_from(term).unwrap());
            let total: Decimal = schedule.iter().map(|i| i.principal).sum();
            assert_eq!(total, principal);
            assert!(schedule.iter().all(|i| i.principal >= Decimal::ZERO));
        }
        // 10,000.00 at 7.5% over 12 months: the textbook instalment is 867.57.
        let schedule =
            annuity_schedule(Decimal::new(1_000_000, 2), Decimal::new(750, 2), 12, day).unwrap();
        assert_eq!(schedule[0].interest, Decimal::new(6250, 2));
        assert_eq!(
            schedule[0].principal + schedule[0].interest,
            Decimal::new(86_757, 2)
        );
        assert_eq!(
            schedule[0].due_date,
            NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
        );
        assert!(annuity_schedule(Decimal::ONE, Decimal::ONE, TERM_MONTHS_MAX + 1, day).is_none());
    }
}
