//! Interest arithmetic, free of I/O: day-count conventions, posting periods, slab rate tiers,
//! daily accrual, cumulative half-even rounding and the deterministic ids of accrual and
//! posting journal entries. `docs/INTEREST.md` explains each rule with worked examples.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use rust_decimal::{Decimal, RoundingStrategy};
use sha2::{Digest, Sha256};
use uuid::Uuid;

corebank_kernel::stable_codes! {
    /// Why an interest rule or computation was refused. Each variant has a stable code (see
    /// [`InterestError::code`]).
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum InterestError {
        #[error(
            "unknown day-count convention {code:?}: expected one of \"act_365_fixed\", \
             \"act_360\", \"act_act_isda\", \"thirty_360\""
        )]
        UnknownDayCount { code: String } => "unknown_day_count",
        #[error(
            "unknown posting frequency {code:?}: expected one of \"monthly\", \"quarterly\", \
             \"annually\""
        )]
        UnknownPostingFrequency { code: String } => "unknown_posting_frequency",
        #[error("a rate chart needs at least one tier, starting at balance 0")]
        NoTiers => "no_rate_tiers",
        #[error("a rate chart has {count} tiers; at most {max} are allowed")]
        TooManyTiers { count: usize, max: usize } => "too_many_rate_tiers",
        #[error("the lowest rate tier starts at {from_balance}; it must start at 0")]
        FirstTierNotAtZero { from_balance: Decimal } => "first_rate_tier_not_at_zero",
        #[error("two rate tiers start at the same balance {from_balance}")]
        DuplicateTier { from_balance: Decimal } => "duplicate_rate_tier",
        #[error(
            "annual rate {rate} is out of range: write it as a fraction from 0 to 1 \
             (0.025 is 2.5 %)"
        )]
        RateOutOfRange { rate: Decimal } => "rate_out_of_range",
        #[error("date {date} is at the end of the supported calendar")]
        DateOutOfRange { date: NaiveDate } => "date_out_of_range",
        #[error("interest arithmetic overflowed the decimal range")]
        Overflow => "interest_overflow",
    }

    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str;
}

/// How long an input code may be when it is echoed back in an error.
const ECHOED_CODE_CHARS_MAX: usize = 32;

fn echoed(code: &str) -> String {
    code.chars().take(ECHOED_CODE_CHARS_MAX).collect()
}

/// A day-count convention: how the time between two dates becomes a fraction of a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum DayCount {
    /// Actual days ÷ 365, whatever the year (ISDA 2006 §4.16(d)).
    #[serde(rename = "act_365_fixed")]
    Act365Fixed,
    /// Actual days ÷ 360 (ISDA 2006 §4.16(e)).
    #[serde(rename = "act_360")]
    Act360,
    /// Actual/Actual (ISDA), ISDA 2006 §4.16(b): the days falling in a leap year ÷ 366 plus
    /// the days falling in a non-leap year ÷ 365.
    #[serde(rename = "act_act_isda")]
    ActActIsda,
    /// 30/360 US Bond Basis, ISDA 2006 §4.16(f): every month counts 30 days. D1 = 31 becomes
    /// 30; D2 = 31 becomes 30 when D1 (after that change) is 30.
    #[serde(rename = "thirty_360")]
    Thirty360,
}

/// A fraction `numerator / denominator` of a year, kept apart so that money is multiplied
/// by the numerator before it is divided by the denominator (exact whenever it can be).
#[derive(Debug, Clone, Copy)]
struct YearPart {
    numerator: i64,
    denominator: i64,
}

impl YearPart {
    const NONE: YearPart = YearPart {
        numerator: 0,
        denominator: 1,
    };
}

impl DayCount {
    /// Every convention, in the order of the codes' documentation.
    pub const ALL: [DayCount; 4] = [
        DayCount::Act365Fixed,
        DayCount::Act360,
        DayCount::ActActIsda,
        DayCount::Thirty360,
    ];

    /// The stable code, as stored with a product version.
    pub fn as_str(self) -> &'static str {
        match self {
            DayCount::Act365Fixed => "act_365_fixed",
            DayCount::Act360 => "act_360",
            DayCount::ActActIsda => "act_act_isda",
            DayCount::Thirty360 => "thirty_360",
        }
    }

    /// The convention with this stable code; anything else is refused.
    pub fn parse(code: &str) -> Result<DayCount, InterestError> {
        DayCount::ALL
            .into_iter()
            .find(|day_count| day_count.as_str() == code)
            .ok_or_else(|| InterestError::UnknownDayCount { code: echoed(code) })
    }

    /// The fraction of a year from `start` (included) to `end` (excluded) under this
    /// convention. It is zero when the dates are equal and negative when `end` comes first
    /// (the fraction from `end` to `start`, negated).
    ///
    /// Decimal division keeps 28 significant digits, so fractions such as 31/365 are
    /// rounded there; interest is computed without this intermediate rounding (the amount is
    /// multiplied by the day count before it is divided by the year's length).
    pub fn year_fraction(self, start: NaiveDate, end: NaiveDate) -> Decimal {
        // Cannot overflow or divide by zero: numerators are at most a few hundred million
        // days or years, denominators are 1, 360, 365 or 366.
        self.parts(start, end)
            .into_iter()
            .filter(|part| part.numerator != 0)
            .map(|part| Decimal::from(part.numerator) / Decimal::from(part.denominator))
            .sum()
    }

    /// `annual_amount` × the year fraction from `start` to `end`, multiplying before
    /// dividing so that `365 × 1/365` is exactly 1.
    fn scale(
        self,
        annual_amount: Decimal,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Decimal, InterestError> {
        self.parts(start, end)
            .into_iter()
            .filter(|part| part.numerator != 0)
            .try_fold(Decimal::ZERO, |total, part| {
                annual_amount
                    .checked_mul(Decimal::from(part.numerator))
                    .and_then(|product| product.checked_div(Decimal::from(part.denominator)))
                    .and_then(|share| total.checked_add(share))
                    .ok_or(InterestError::Overflow)
            })
    }

    /// The year fraction as at most three parts whose sum it is.
    fn parts(self, start: NaiveDate, end: NaiveDate) -> [YearPart; 3] {
        if end < start {
            return self.parts(end, start).map(|part| YearPart {
                numerator: -part.numerator,
                denominator: part.denominator,
            });
        }
        let actual_days = (end - start).num_days();
        match self {
            DayCount::Act365Fixed => [
                YearPart {
                    numerator: actual_days,
                    denominator: 365,
                },
                YearPart::NONE,
                YearPart::NONE,
            ],
            DayCount::Act360 => [
                YearPart {
                    numerator: actual_days,
                    denominator: 360,
                },
                YearPart::NONE,
                YearPart::NONE,
            ],
            DayCount::ActActIsda => act_act_isda_parts(start, end),
            DayCount::Thirty360 => [
                YearPart {
                    numerator: thirty_360_days(start, end),
                    denominator: 360,
                },
                YearPart::NONE,
                YearPart::NONE,
            ],
        }
    }
}

impl fmt::Display for DayCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DayCount {
    type Err = InterestError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        DayCount::parse(code)
    }
}

fn days_in_year(date: NaiveDate) -> i64 {
    if date.leap_year() { 366 } else { 365 }
}

/// Actual/Actual (ISDA) for `start <= end`: the days left in the first year over that year's
/// length, one for each whole calendar year between, and the days of the last year before
/// `end` over that year's length.
fn act_act_isda_parts(start: NaiveDate, end: NaiveDate) -> [YearPart; 3] {
    if start.year() == end.year() {
        return [
            YearPart {
                numerator: (end - start).num_days(),
                denominator: days_in_year(start),
            },
            YearPart::NONE,
            YearPart::NONE,
        ];
    }
    let days_to_next_year = days_in_year(start) - i64::from(start.ordinal0());
    let whole_years = i64::from(end.year()) - i64::from(start.year()) - 1;
    let days_into_last_year = i64::from(end.ordinal0());
    [
        YearPart {
            numerator: days_to_next_year,
            denominator: days_in_year(start),
        },
        YearPart {
            numerator: whole_years,
            denominator: 1,
        },
        YearPart {
            numerator: days_into_last_year,
            denominator: days_in_year(end),
        },
    ]
}

/// The 30/360 US Bond Basis day count (ISDA 2006 §4.16(f)) for `start <= end`.
fn thirty_360_days(start: NaiveDate, end: NaiveDate) -> i64 {
    let day_start = if start.day() == 31 { 30 } else { start.day() };
    // After the first rule, "D1 is 30 or 31" is "day_start is 30".
    let day_end = if end.day() == 31 && day_start == 30 {
        30
    } else {
        end.day()
    };
    360 * (i64::from(end.year()) - i64::from(start.year()))
        + 30 * (i64::from(end.month()) - i64::from(start.month()))
        + (i64::from(day_end) - i64::from(day_start))
}

/// How often accrued interest is posted to the account: at the end of each calendar month,
/// quarter or year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostingFrequency {
    Monthly,
    Quarterly,
    Annually,
}

impl PostingFrequency {
    /// Every frequency.
    pub const ALL: [PostingFrequency; 3] = [
        PostingFrequency::Monthly,
        PostingFrequency::Quarterly,
        PostingFrequency::Annually,
    ];

    /// The stable code, as stored with a product version.
    pub fn as_str(self) -> &'static str {
        match self {
            PostingFrequency::Monthly => "monthly",
            PostingFrequency::Quarterly => "quarterly",
            PostingFrequency::Annually => "annually",
        }
    }

    /// The frequency with this stable code; anything else is refused.
    pub fn parse(code: &str) -> Result<PostingFrequency, InterestError> {
        PostingFrequency::ALL
            .into_iter()
            .find(|frequency| frequency.as_str() == code)
            .ok_or_else(|| InterestError::UnknownPostingFrequency { code: echoed(code) })
    }

    /// Whether `date` is the last day of its period: the last day of the month; March 31,
    /// June 30, September 30 or December 31; December 31.
    pub fn is_period_end(self, date: NaiveDate) -> bool {
        let last_day_of_month = date.day() == u32::from(date.num_days_in_month());
        match self {
            PostingFrequency::Monthly => last_day_of_month,
            PostingFrequency::Quarterly => last_day_of_month && date.month().is_multiple_of(3),
            PostingFrequency::Annually => date.month() == 12 && date.day() == 31,
        }
    }

    /// The first day of the period that contains `date`.
    pub fn period_start(self, date: NaiveDate) -> NaiveDate {
        // Day 1 of the date's own month, and month 1, 4, 7 or 10 of the date's own year on
        // day 1, always exist, so chrono's `None` cannot happen; `date` is only a fallback
        // to stay panic-free.
        match self {
            PostingFrequency::Monthly => date.with_day(1).unwrap_or(date),
            PostingFrequency::Quarterly => {
                let first_month_of_quarter = date.month0() / 3 * 3 + 1;
                date.with_day(1)
                    .and_then(|first| first.with_month(first_month_of_quarter))
                    .unwrap_or(date)
            }
            PostingFrequency::Annually => date.with_ordinal(1).unwrap_or(date),
        }
    }
}

impl fmt::Display for PostingFrequency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for PostingFrequency {
    type Err = InterestError;
    fn from_str(code: &str) -> Result<Self, Self::Err> {
        PostingFrequency::parse(code)
    }
}

/// One row of a rate chart: balances from `from_balance` up to the next tier's start earn
/// `annual_rate`, a fraction (0.025 is 2.5 % a year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateTier {
    pub from_balance: Decimal,
    pub annual_rate: Decimal,
}

/// A validated rate chart of slab tiers: the whole balance earns the rate of the highest
/// tier it reaches (as Apache Fineract's savings interest rate charts do), not a blend of
/// each band's rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TieredRate {
    /// Sorted by `from_balance`, the first at zero, no two at the same balance.
    tiers: Vec<RateTier>,
}

impl TieredRate {
    /// The largest number of tiers in one chart.
    pub const TIERS_MAX: usize = 16;

    /// A chart from tiers in any order. Refused unless there is at least one and at most
    /// [`TieredRate::TIERS_MAX`] tiers, the lowest starts at 0 (so no tier starts below it),
    /// no two start at the same balance, and every rate is between 0 and 1.
    pub fn new(mut tiers: Vec<RateTier>) -> Result<TieredRate, InterestError> {
        if tiers.len() > TieredRate::TIERS_MAX {
            return Err(InterestError::TooManyTiers {
                count: tiers.len(),
                max: TieredRate::TIERS_MAX,
            });
        }
        if let Some(tier) = tiers.iter().find(|tier| !is_valid_rate(tier.annual_rate)) {
            return Err(InterestError::RateOutOfRange {
                rate: tier.annual_rate,
            });
        }
        tiers.sort_by_key(|tier| tier.from_balance);
        let first = tiers.first().ok_or(InterestError::NoTiers)?;
        if !first.from_balance.is_zero() {
            return Err(InterestError::FirstTierNotAtZero {
                from_balance: first.from_balance,
            });
        }
        let duplicate = tiers.windows(2).find_map(|pair| match pair {
            [lower, upper] if lower.from_balance == upper.from_balance => Some(upper.from_balance),
            _ => None,
        });
        if let Some(from_balance) = duplicate {
            return Err(InterestError::DuplicateTier { from_balance });
        }
        Ok(TieredRate { tiers })
    }

    /// A chart with one rate for every balance.
    pub fn flat(annual_rate: Decimal) -> Result<TieredRate, InterestError> {
        TieredRate::new(vec![RateTier {
            from_balance: Decimal::ZERO,
            annual_rate,
        }])
    }

    /// The tiers, sorted by `from_balance`.
    pub fn tiers(&self) -> &[RateTier] {
        &self.tiers
    }

    /// The annual rate the whole `balance` earns: that of the highest tier whose
    /// `from_balance` is at most `balance`. A negative balance reaches no tier and earns 0;
    /// overdraft interest has its own rate (see [`daily_interest`]).
    pub fn rate_for(&self, balance: Decimal) -> Decimal {
        self.tiers
            .iter()
            .rev()
            .find(|tier| tier.from_balance <= balance)
            .map_or(Decimal::ZERO, |tier| tier.annual_rate)
    }
}

fn is_valid_rate(rate: Decimal) -> bool {
    (Decimal::ZERO..=Decimal::ONE).contains(&rate)
}

/// The unrounded interest for the one day `[day, day + 1)` on the end-of-day `balance`:
/// a positive balance earns `balance × rates.rate_for(balance) × year fraction`; a negative
/// balance (an overdraft) costs `balance × overdraft_rate × year fraction`, a negative amount
/// the customer owes; a zero balance earns nothing.
///
/// The year fraction is that of `day_count` from `day` to the next day, applied by
/// multiplying before dividing, so 10,000 × 0.0365 for one Act/365 day is exactly 1.
/// Refused when `overdraft_rate` is not between 0 and 1.
pub fn daily_interest(
    balance: Decimal,
    rates: &TieredRate,
    overdraft_rate: Decimal,
    day_count: DayCount,
    day: NaiveDate,
) -> Result<Decimal, InterestError> {
    if !is_valid_rate(overdraft_rate) {
        return Err(InterestError::RateOutOfRange {
            rate: overdraft_rate,
        });
    }
    let next_day = day
        .succ_opt()
        .ok_or(InterestError::DateOutOfRange { date: day })?;
    let annual_rate = if balance > Decimal::ZERO {
        rates.rate_for(balance)
    } else if balance < Decimal::ZERO {
        overdraft_rate
    } else {
        return Ok(Decimal::ZERO);
    };
    let annual_interest = balance
        .checked_mul(annual_rate)
        .ok_or(InterestError::Overflow)?;
    day_count.scale(annual_interest, day, next_day)
}

/// One day's accrual in a posting period: `precise` is the day's unrounded interest (see
/// [`daily_interest`]); `amount` is what was accrued in money for that day by cumulative
/// rounding (see [`accrue_day`]), which may be zero or differ from `precise` rounded alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accrual {
    pub day: NaiveDate,
    pub precise: Decimal,
    pub amount: Decimal,
}

/// `amount` rounded half to even ("banker's rounding") to `minor_units` decimals, the
/// currency's (`Currency::minor_units`: 0 for JPY, 2 for EUR, 3 for BHD). Negative amounts
/// round symmetrically: -0.125 becomes -0.12.
pub fn round_half_even(amount: Decimal, minor_units: u32) -> Decimal {
    amount.round_dp_with_strategy(minor_units, RoundingStrategy::MidpointNearestEven)
}

/// Cumulative rounding for one more day of a period: adds `today_precise` to the period's
/// unrounded total and returns `(new_precise_total, amount_to_post_today)`, where the amount
/// is the new total rounded half to even to `minor_units` decimals minus what the period has
/// already posted. After any number of days, the posted amounts add up to the period's
/// precise total rounded once, so rounding never drifts (a naive rounding of each day alone
/// would).
pub fn accrue_day(
    period_precise_so_far: Decimal,
    period_posted_so_far: Decimal,
    today_precise: Decimal,
    minor_units: u32,
) -> Result<(Decimal, Decimal), InterestError> {
    let new_precise_total = period_precise_so_far
        .checked_add(today_precise)
        .ok_or(InterestError::Overflow)?;
    let amount_to_post_today = round_half_even(new_precise_total, minor_units)
        .checked_sub(period_posted_so_far)
        .ok_or(InterestError::Overflow)?;
    Ok((new_precise_total, amount_to_post_today))
}

/// The id of the journal entry that accrues `account`'s interest for `day`. The same account
/// and day always give the same id, so a retried or replayed accrual is recognised by the
/// ledger as the same entry instead of being accrued twice.
pub fn accrual_entry_id(account: Uuid, day: NaiveDate) -> Uuid {
    deterministic_id(&format!("corebank.deposits.accrual:{account}:{day}"))
}

/// The id of the journal entry that posts `account`'s accrued interest for the period ending
/// on `period_end`. Deterministic for the same reason as [`accrual_entry_id`].
pub fn posting_entry_id(account: Uuid, period_end: NaiveDate) -> Uuid {
    deterministic_id(&format!("corebank.deposits.posting:{account}:{period_end}"))
}

/// A UUIDv4-shaped id (the ledger accepts no other) from the first 16 bytes of the SHA-256
/// of `text`, with the version and variant bits set.
fn deterministic_id(text: &str) -> Uuid {
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use std::str::FromStr;

    use corebank_kernel::{Currency, JournalEntryId};

    use super::*;

    fn d(text: &str) -> Decimal {
        Decimal::from_str(text).unwrap()
    }

    fn date(year: i32, month: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(year, month, day).unwrap()
    }

    /// Decimal division keeps 28 significant digits; non-terminating examples are compared
    /// at 10 decimals, which is far finer than any currency.
    fn at_10_decimals(value: Decimal) -> Decimal {
        value.round_dp(10)
    }

    fn flat(rate: &str) -> TieredRate {
        TieredRate::flat(d(rate)).unwrap()
    }

    /// Accrues `balance` every day from `first` to `end` (excluded) with cumulative rounding
    /// and returns the period's precise total, the sum of what was posted and each day.
    fn accrue_period(
        balance: Decimal,
        rates: &TieredRate,
        overdraft_rate: Decimal,
        day_count: DayCount,
        first: NaiveDate,
        end: NaiveDate,
        minor_units: u32,
    ) -> (Decimal, Decimal, Vec<Accrual>) {
        let mut precise_total = Decimal::ZERO;
        let mut posted_total = Decimal::ZERO;
        let mut accruals = Vec::new();
        for day in first.iter_days().take_while(|day| *day < end) {
            let precise = daily_interest(balance, rates, overdraft_rate, day_count, day).unwrap();
            let (new_total, amount) =
                accrue_day(precise_total, posted_total, precise, minor_units).unwrap();
            precise_total = new_total;
            posted_total += amount;
            accruals.push(Accrual {
                day,
                precise,
                amount,
            });
        }
        (precise_total, posted_total, accruals)
    }

    // ---- Day-count codes --------------------------------------------------------------

    #[test]
    fn day_count_codes_round_trip_and_unknown_codes_are_refused() {
        for day_count in DayCount::ALL {
            assert_eq!(DayCount::parse(day_count.as_str()).unwrap(), day_count);
            assert_eq!(day_count.as_str().parse::<DayCount>().unwrap(), day_count);
            let json = serde_json::to_string(&day_count).unwrap();
            assert_eq!(json, format!("\"{}\"", day_count.as_str()));
        }
        assert_eq!(DayCount::Act365Fixed.as_str(), "act_365_fixed");
        assert_eq!(DayCount::Act360.as_str(), "act_360");
        assert_eq!(DayCount::ActActIsda.as_str(), "act_act_isda");
        assert_eq!(DayCount::Thirty360.as_str(), "thirty_360");
        for code in ["", "ACT_360", "act/360", "30_360", "actual_365"] {
            assert_eq!(
                DayCount::parse(code).unwrap_err().code(),
                "unknown_day_count"
            );
        }
    }

    #[test]
    fn posting_frequency_codes_round_trip_and_unknown_codes_are_refused() {
        for frequency in PostingFrequency::ALL {
            assert_eq!(
                PostingFrequency::parse(frequency.as_str()).unwrap(),
                frequency
            );
            let json = serde_json::to_string(&frequency).unwrap();
            assert_eq!(json, format!("\"{}\"", frequency.as_str()));
        }
        assert_eq!(PostingFrequency::Monthly.as_str(), "monthly");
        assert_eq!(PostingFrequency::Quarterly.as_str(), "quarterly");
        assert_eq!(PostingFrequency::Annually.as_str(), "annually");
        for code in ["", "Monthly", "yearly", "weekly"] {
            assert_eq!(
                PostingFrequency::parse(code).unwrap_err().code(),
                "unknown_posting_frequency"
            );
        }
    }

    // ---- Year fractions ---------------------------------------------------------------

    #[test]
    fn act_365_fixed_divides_actual_days_by_365_even_in_a_leap_year() {
        // 2023-03-01 → 2023-05-13: 31 (March) + 30 (April) + 12 = 73 days; 73/365 = 0.2.
        let fraction = DayCount::Act365Fixed.year_fraction(date(2023, 3, 1), date(2023, 5, 13));
        assert_eq!(fraction, d("0.2"));
        // 2024 has 366 days: 366/365 = 1.00273972602739…
        let fraction = DayCount::Act365Fixed.year_fraction(date(2024, 1, 1), date(2025, 1, 1));
        assert_eq!(at_10_decimals(fraction), d("1.0027397260"));
        // January: 31/365 = 0.08493150684931…
        let fraction = DayCount::Act365Fixed.year_fraction(date(2024, 1, 1), date(2024, 2, 1));
        assert_eq!(at_10_decimals(fraction), d("0.0849315068"));
    }

    #[test]
    fn act_360_divides_actual_days_by_360() {
        // 2023-01-01 → 2023-04-01: 31 + 28 + 31 = 90 days; 90/360 = 0.25.
        let fraction = DayCount::Act360.year_fraction(date(2023, 1, 1), date(2023, 4, 1));
        assert_eq!(fraction, d("0.25"));
        // A whole year of 365 days: 365/360 = 1.0138888…
        let fraction = DayCount::Act360.year_fraction(date(2023, 1, 1), date(2024, 1, 1));
        assert_eq!(at_10_decimals(fraction), d("1.0138888889"));
    }

    #[test]
    fn act_act_isda_splits_the_period_at_each_new_year() {
        // 2023-12-15 → 2024-01-15: 17 days in 2023 (Dec 15..31) over 365, 14 days in 2024
        // (Jan 1..14) over 366: 17/365 + 14/366 = 0.046575342… + 0.038251366… = 0.0848267085…
        let fraction = DayCount::ActActIsda.year_fraction(date(2023, 12, 15), date(2024, 1, 15));
        assert_eq!(at_10_decimals(fraction), d("0.0848267086"));
        // The leap year 2024 is exactly one year: 366/366.
        let fraction = DayCount::ActActIsda.year_fraction(date(2024, 1, 1), date(2025, 1, 1));
        assert_eq!(fraction, d("1"));
        // 2023-07-01 → 2025-07-01: 184 days of 2023 over 365, all of 2024 (1), 181 days of 2025
        // over 365: 184/365 + 1 + 181/365 = 1 + 365/365 = 2.
        let fraction = DayCount::ActActIsda.year_fraction(date(2023, 7, 1), date(2025, 7, 1));
        assert_eq!(at_10_decimals(fraction), d("2"));
        // Inside one leap year: February 2024 is 29/366 = 0.0792349726…
        let fraction = DayCount::ActActIsda.year_fraction(date(2024, 2, 1), date(2024, 3, 1));
        assert_eq!(at_10_decimals(fraction), d("0.0792349727"));
    }

    #[test]
    fn thirty_360_counts_every_month_as_30_days_with_the_31st_rules() {
        let days = |start, end| thirty_360_days(start, end);
        // Jan 31 → Mar 31: D1 31 → 30; D2 31 with D1 30 → 30: 30 × (3 − 1) + (30 − 30) = 60.
        assert_eq!(days(date(2023, 1, 31), date(2023, 3, 31)), 60);
        let fraction = DayCount::Thirty360.year_fraction(date(2023, 1, 31), date(2023, 3, 31));
        assert_eq!(at_10_decimals(fraction), d("0.1666666667"));
        // Feb 28 → Mar 31 (2023): D1 28 stays, so D2 31 stays: 30 × 1 + (31 − 28) = 33.
        assert_eq!(days(date(2023, 2, 28), date(2023, 3, 31)), 33);
        let fraction = DayCount::Thirty360.year_fraction(date(2023, 2, 28), date(2023, 3, 31));
        assert_eq!(at_10_decimals(fraction), d("0.0916666667"));
        // Jan 30 → Jan 31: D1 30, so D2 31 → 30: no day at all.
        assert_eq!(days(date(2024, 1, 30), date(2024, 1, 31)), 0);
        // Jan 29 → Jan 31: D1 29, so D2 stays 31: 2 days.
        assert_eq!(days(date(2024, 1, 29), date(2024, 1, 31)), 2);
        // Jan 31 → Feb 28 (2023): D1 31 → 30: 30 × 1 + (28 − 30) = 28 (no end-of-February rule).
        assert_eq!(days(date(2023, 1, 31), date(2023, 2, 28)), 28);
        // Feb 28 2023 → Mar 1: 30 × 1 + (1 − 28) = 3; Feb 29 2024 → Mar 1: 30 + (1 − 29) = 2.
        assert_eq!(days(date(2023, 2, 28), date(2023, 3, 1)), 3);
        assert_eq!(days(date(2024, 2, 29), date(2024, 3, 1)), 2);
        // Dec 31 2023 → Jan 31 2024: 360 × 1 + 30 × (1 − 12) + (30 − 30) = 30.
        assert_eq!(days(date(2023, 12, 31), date(2024, 1, 31)), 30);
        // Jan 15 → Jul 15: 30 × 6 = 180 days, half a year.
        let fraction = DayCount::Thirty360.year_fraction(date(2024, 1, 15), date(2024, 7, 15));
        assert_eq!(fraction, d("0.5"));
    }

    #[test]
    fn a_year_fraction_is_zero_for_equal_dates_and_negated_when_the_dates_are_swapped() {
        let (start, end) = (date(2023, 12, 15), date(2024, 1, 15));
        for day_count in DayCount::ALL {
            assert_eq!(day_count.year_fraction(start, start), Decimal::ZERO);
            assert_eq!(
                day_count.year_fraction(end, start),
                -day_count.year_fraction(start, end),
                "{day_count}"
            );
        }
    }

    // ---- Daily interest for each convention -------------------------------------------
    //
    // 10,000.00 EUR at 3.65 % a year: 10,000 × 0.0365 = 365.00 of interest per "year".

    #[test]
    fn one_day_of_interest_under_each_convention() {
        let balance = d("10000.00");
        let rates = flat("0.0365");
        let one_day = |day_count, day| {
            daily_interest(balance, &rates, Decimal::ZERO, day_count, day).unwrap()
        };
        // Act/365 Fixed: 365 × 1/365 = 1, exactly (multiplied before divided).
        assert_eq!(one_day(DayCount::Act365Fixed, date(2024, 1, 10)), d("1"));
        // Act/360: 365 × 1/360 = 1.0138888…
        assert_eq!(
            at_10_decimals(one_day(DayCount::Act360, date(2024, 1, 10))),
            d("1.0138888889")
        );
        // Act/Act ISDA: a day of 2023 is 365 × 1/365 = 1; a day of 2024 is 365/366 = 0.9972677…
        assert_eq!(one_day(DayCount::ActActIsda, date(2023, 1, 10)), d("1"));
        assert_eq!(
            at_10_decimals(one_day(DayCount::ActActIsda, date(2024, 1, 10))),
            d("0.9972677596")
        );
        // 30/360: an ordinary day is 365 × 1/360 = 1.0138888…
        assert_eq!(
            at_10_decimals(one_day(DayCount::Thirty360, date(2024, 1, 10))),
            d("1.0138888889")
        );
        // 30/360 on Jan 30 (→ Jan 31: 0 days) earns nothing; on Jan 31 (→ Feb 1: D1 → 30,
        // 30 + 1 − 30 = 1 day) one day; on Feb 28 2023 (→ Mar 1: 3 days) 365 × 3/360 =
        // 3.041666…; on Feb 29 2024 (→ Mar 1: 2 days) 365 × 2/360 = 2.027777…
        assert_eq!(one_day(DayCount::Thirty360, date(2024, 1, 30)), d("0"));
        assert_eq!(
            at_10_decimals(one_day(DayCount::Thirty360, date(2024, 1, 31))),
            d("1.0138888889")
        );
        assert_eq!(
            at_10_decimals(one_day(DayCount::Thirty360, date(2023, 2, 28))),
            d("3.0416666667")
        );
        assert_eq!(
            at_10_decimals(one_day(DayCount::Thirty360, date(2024, 2, 29))),
            d("2.0277777778")
        );
    }

    /// The daily accruals of 10,000.00 EUR at 3.65 % from `first` to `end`, per convention:
    /// (precise total at 10 decimals, posted total in cents).
    fn month_of_interest(
        day_count: DayCount,
        first: NaiveDate,
        end: NaiveDate,
    ) -> (Decimal, Decimal) {
        let (precise, posted, _) = accrue_period(
            d("10000.00"),
            &flat("0.0365"),
            Decimal::ZERO,
            day_count,
            first,
            end,
            Currency::EUR.minor_units(),
        );
        (at_10_decimals(precise), posted)
    }

    /// `month_of_interest` from `first` to `end` is `expected` (precise, posted) under each
    /// convention, in the order Act/365 Fixed, Act/360, Act/Act ISDA, 30/360.
    fn assert_each_convention((first, end): (NaiveDate, NaiveDate), expected: [(&str, &str); 4]) {
        let conventions = [
            DayCount::Act365Fixed,
            DayCount::Act360,
            DayCount::ActActIsda,
            DayCount::Thirty360,
        ];
        for (day_count, (precise, posted)) in conventions.into_iter().zip(expected) {
            assert_eq!(
                month_of_interest(day_count, first, end),
                (d(precise), d(posted)),
                "{day_count:?}"
            );
        }
    }

    #[test]
    fn a_31_day_month_of_interest_under_each_convention() {
        assert_each_convention(
            (date(2024, 1, 1), date(2024, 2, 1)),
            [
                // 31 days × 1 = 31.00.
                ("31", "31.00"),
                // 365 × 31/360 = 11315/360 = 31.430555… → 31.43.
                ("31.4305555556", "31.43"),
                // 365 × 31/366 = 11315/366 = 30.915300546… → 30.92.
                ("30.9153005464", "30.92"),
                // 29 days of 1/360 (Jan 1..29), Jan 30 → 31 is 0, Jan 31 → Feb 1 is 1: 30 days;
                // 365 × 30/360 = 30.416666… → 30.42.
                ("30.4166666667", "30.42"),
            ],
        );
    }

    #[test]
    fn february_of_a_leap_year_under_each_convention() {
        assert_each_convention(
            (date(2024, 2, 1), date(2024, 3, 1)),
            [
                // 29 days × 1 = 29.00.
                ("29", "29.00"),
                // 365 × 29/360 = 10585/360 = 29.402777… → 29.40.
                ("29.4027777778", "29.40"),
                // 365 × 29/366 = 10585/366 = 28.920765027… → 28.92.
                ("28.9207650273", "28.92"),
                // Feb 1..28: 28 days of 1, Feb 29 → Mar 1: 2 days: 30; 365 × 30/360 → 30.42.
                ("30.4166666667", "30.42"),
            ],
        );
    }

    #[test]
    fn february_of_a_common_year_under_each_convention() {
        assert_each_convention(
            (date(2023, 2, 1), date(2023, 3, 1)),
            [
                // 28 days × 1 = 28.00.
                ("28", "28.00"),
                // 365 × 28/360 = 10220/360 = 28.388888… → 28.39.
                ("28.3888888889", "28.39"),
                // 2023 is not a leap year: 365 × 28/365 = 28.00.
                ("28", "28.00"),
                // Feb 1..27: 27 days of 1, Feb 28 → Mar 1: 3 days: 30; 365 × 30/360 → 30.42.
                ("30.4166666667", "30.42"),
            ],
        );
    }

    #[test]
    fn interest_across_a_year_boundary_under_each_convention() {
        let (first, end) = (date(2023, 12, 15), date(2024, 1, 15));
        assert_eq!(thirty_360_days(first, end), 30);
        assert_each_convention(
            (first, end),
            [
                // 31 actual days × 1 = 31.00.
                ("31", "31.00"),
                // 365 × 31/360 = 31.430555… → 31.43.
                ("31.4305555556", "31.43"),
                // 17 days of 2023: 365 × 17/365 = 17; 14 days of 2024: 365 × 14/366 = 5110/366 =
                // 13.961748633…; total 30.961748633… → 30.96.
                ("30.9617486339", "30.96"),
                // Dec 15..29: 15 days of 1; Dec 30 → 31: D1 30, so D2 31 → 30: 0 days; Dec 31 →
                // Jan 1: D1 → 30, 360 × 1 + 30 × (1 − 12) + (1 − 30) = 1 day; Jan 1..14: 14 days.
                // 15 + 0 + 1 + 14 = 30 days, the direct count Dec 15 → Jan 15 (360 − 330 + 0);
                // 365 × 30/360 = 30.416666… → 30.42.
                ("30.4166666667", "30.42"),
            ],
        );
    }

    #[test]
    fn daily_thirty_360_gives_every_calendar_month_exactly_30_days() {
        let rates = flat("0.0365");
        for (year, month) in [(2023, 2), (2024, 2), (2024, 1), (2024, 4), (2024, 12)] {
            let first = date(year, month, 1);
            let end = first.checked_add_months(chrono::Months::new(1)).unwrap();
            let (precise, _, _) = accrue_period(
                d("10000.00"),
                &rates,
                Decimal::ZERO,
                DayCount::Thirty360,
                first,
                end,
                2,
            );
            // 365 × 30/360 = 30.416666…
            assert_eq!(at_10_decimals(precise), d("30.4166666667"), "{first}");
        }
    }

    // ---- Slab tiers and overdraft -------------------------------------------------------

    fn three_tiers() -> TieredRate {
        // Given out of order on purpose: the chart sorts them.
        TieredRate::new(vec![
            RateTier {
                from_balance: d("10000.00"),
                annual_rate: d("0.03"),
            },
            RateTier {
                from_balance: d("0"),
                annual_rate: d("0.01"),
            },
            RateTier {
                from_balance: d("1000.00"),
                annual_rate: d("0.02"),
            },
        ])
        .unwrap()
    }

    #[test]
    fn the_whole_balance_earns_the_rate_of_the_highest_tier_it_reaches() {
        let rates = three_tiers();
        assert_eq!(
            rates
                .tiers()
                .iter()
                .map(|tier| tier.from_balance)
                .collect::<Vec<_>>(),
            vec![d("0"), d("1000.00"), d("10000.00")]
        );
        assert_eq!(rates.rate_for(d("0")), d("0.01"));
        assert_eq!(rates.rate_for(d("999.99")), d("0.01"));
        // Exactly on a boundary: the tier that starts there.
        assert_eq!(rates.rate_for(d("1000.00")), d("0.02"));
        assert_eq!(rates.rate_for(d("9999.99")), d("0.02"));
        assert_eq!(rates.rate_for(d("10000.00")), d("0.03"));
        assert_eq!(rates.rate_for(d("250000")), d("0.03"));
        // A negative balance reaches no tier.
        assert_eq!(rates.rate_for(d("-0.01")), d("0"));
    }

    #[test]
    fn slab_tiers_apply_one_rate_to_the_whole_balance_for_a_day() {
        let rates = three_tiers();
        let day = date(2023, 6, 1);
        let one_day = |balance| {
            daily_interest(d(balance), &rates, d("0.10"), DayCount::Act365Fixed, day).unwrap()
        };
        // 10,000.00 × 0.03 / 365 = 300/365 = 0.821917808… (not 1,000 × 1 % plus 9,000 × 2 %
        // plus 0.01 × 3 %, as banded tiers would give).
        assert_eq!(at_10_decimals(one_day("10000.00")), d("0.8219178082"));
        // 9,999.99 × 0.02 / 365 = 199.9998/365 = 0.547944657…
        assert_eq!(at_10_decimals(one_day("9999.99")), d("0.5479446575"));
        // 1,000.00 × 0.02 / 365 = 20/365 = 0.054794520…
        assert_eq!(at_10_decimals(one_day("1000.00")), d("0.0547945205"));
        // 730.00 × 0.01 / 365 = 7.3/365 = 0.02.
        assert_eq!(one_day("730.00"), d("0.02"));
        assert_eq!(one_day("0"), d("0"));
    }

    #[test]
    fn an_overdrawn_balance_owes_interest_at_the_overdraft_rate() {
        let rates = three_tiers();
        let day = date(2024, 3, 15);
        // −2,000.00 × 0.1825 / 365 = −365/365 = −1 (the tiers play no part).
        let owed = daily_interest(
            d("-2000.00"),
            &rates,
            d("0.1825"),
            DayCount::Act365Fixed,
            day,
        )
        .unwrap();
        assert_eq!(owed, d("-1"));
        // −2,000.00 × 0.18 / 360 = −360/360 = −1.
        let owed = daily_interest(d("-2000.00"), &rates, d("0.18"), DayCount::Act360, day).unwrap();
        assert_eq!(owed, d("-1"));
        // −500.00 × 0.12 / 366 (a day of 2024) = −60/366 = −0.163934426…
        let owed =
            daily_interest(d("-500.00"), &rates, d("0.12"), DayCount::ActActIsda, day).unwrap();
        assert_eq!(at_10_decimals(owed), d("-0.1639344262"));
        // With no overdraft rate an overdraft costs nothing.
        let owed = daily_interest(
            d("-500.00"),
            &rates,
            Decimal::ZERO,
            DayCount::Thirty360,
            day,
        )
        .unwrap();
        assert_eq!(owed, d("0"));
    }

    #[test]
    fn a_month_of_overdraft_interest_is_rounded_half_to_even_like_a_credit() {
        // −1,000.00 at 10 % Act/365 over April 2023 (30 days): −100/365 a day, in total
        // −3000/365 = −8.219178082… → −8.22.
        let (precise, posted, accruals) = accrue_period(
            d("-1000.00"),
            &flat("0.02"),
            d("0.10"),
            DayCount::Act365Fixed,
            date(2023, 4, 1),
            date(2023, 5, 1),
            2,
        );
        assert_eq!(at_10_decimals(precise), d("-8.2191780822"));
        assert_eq!(posted, d("-8.22"));
        assert!(
            accruals
                .iter()
                .all(|accrual| accrual.amount <= Decimal::ZERO)
        );
    }

    #[test]
    fn a_rate_chart_is_refused_unless_it_is_well_formed() {
        let tier = |from: &str, rate: &str| RateTier {
            from_balance: d(from),
            annual_rate: d(rate),
        };
        assert_eq!(TieredRate::new(vec![]).unwrap_err(), InterestError::NoTiers);
        assert_eq!(
            TieredRate::new(vec![tier("100", "0.01")])
                .unwrap_err()
                .code(),
            "first_rate_tier_not_at_zero"
        );
        assert_eq!(
            TieredRate::new(vec![tier("0", "0.01"), tier("-5", "0.01")])
                .unwrap_err()
                .code(),
            "first_rate_tier_not_at_zero"
        );
        assert_eq!(
            TieredRate::new(vec![
                tier("0", "0.01"),
                tier("1000", "0.02"),
                tier("1000.00", "0.03")
            ])
            .unwrap_err(),
            InterestError::DuplicateTier {
                from_balance: d("1000")
            }
        );
        assert_eq!(
            TieredRate::new(vec![tier("0", "1.5")]).unwrap_err().code(),
            "rate_out_of_range"
        );
        assert_eq!(
            TieredRate::new(vec![tier("0", "-0.001")])
                .unwrap_err()
                .code(),
            "rate_out_of_range"
        );
        let too_many = (0..=TieredRate::TIERS_MAX)
            .map(|index| tier(&index.to_string(), "0.01"))
            .collect();
        assert_eq!(
            TieredRate::new(too_many).unwrap_err().code(),
            "too_many_rate_tiers"
        );
        // The edges of the rate range are allowed.
        assert!(TieredRate::new(vec![tier("0", "0"), tier("1", "1")]).is_ok());
    }

    #[test]
    fn an_overdraft_rate_out_of_range_is_refused() {
        let rates = flat("0.01");
        for overdraft_rate in ["-0.01", "1.01"] {
            let error = daily_interest(
                d("100"),
                &rates,
                d(overdraft_rate),
                DayCount::Act360,
                date(2024, 1, 1),
            )
            .unwrap_err();
            assert_eq!(error.code(), "rate_out_of_range");
        }
        let error = daily_interest(d("100"), &rates, d("0.1"), DayCount::Act360, NaiveDate::MAX)
            .unwrap_err();
        assert_eq!(error.code(), "date_out_of_range");
    }

    // ---- Cumulative half-even rounding ------------------------------------------------

    #[test]
    fn half_even_rounding_sends_ties_to_the_even_digit() {
        // Two decimals (EUR): 0.125 → 0.12, 0.135 → 0.14, 0.145 → 0.14, −0.125 → −0.12.
        let eur = Currency::EUR.minor_units();
        assert_eq!(round_half_even(d("0.125"), eur), d("0.12"));
        assert_eq!(round_half_even(d("0.135"), eur), d("0.14"));
        assert_eq!(round_half_even(d("0.145"), eur), d("0.14"));
        assert_eq!(round_half_even(d("-0.125"), eur), d("-0.12"));
        assert_eq!(round_half_even(d("0.1251"), eur), d("0.13"));
        // No decimals (JPY): 2.5 → 2, 3.5 → 4, 0.5 → 0.
        let jpy = Currency::JPY.minor_units();
        assert_eq!(round_half_even(d("2.5"), jpy), d("2"));
        assert_eq!(round_half_even(d("3.5"), jpy), d("4"));
        assert_eq!(round_half_even(d("0.5"), jpy), d("0"));
        // Three decimals (BHD, KWD): 0.0125 → 0.012, 1.0015 → 1.002.
        let bhd = Currency::from_code("BHD").unwrap().minor_units();
        assert_eq!(bhd, 3);
        assert_eq!(round_half_even(d("0.0125"), bhd), d("0.012"));
        assert_eq!(round_half_even(d("1.0015"), bhd), d("1.002"));
    }

    #[test]
    fn accrue_day_posts_the_rounded_total_minus_what_was_posted() {
        // Day 1: 0 + 0.125 = 0.125 → 0.12, post 0.12 − 0 = 0.12.
        assert_eq!(
            accrue_day(d("0"), d("0"), d("0.125"), 2).unwrap(),
            (d("0.125"), d("0.12"))
        );
        // Day 2: 0.125 + 0.010 = 0.135 → 0.14, post 0.14 − 0.12 = 0.02.
        assert_eq!(
            accrue_day(d("0.125"), d("0.12"), d("0.010"), 2).unwrap(),
            (d("0.135"), d("0.02"))
        );
        // JPY: 2.5 → 2, then 2.5 + 1 = 3.5 → 4, post 4 − 2 = 2.
        assert_eq!(
            accrue_day(d("0"), d("0"), d("2.5"), 0).unwrap(),
            (d("2.5"), d("2"))
        );
        assert_eq!(
            accrue_day(d("2.5"), d("2"), d("1"), 0).unwrap(),
            (d("3.5"), d("2"))
        );
        assert_eq!(
            accrue_day(Decimal::MAX, d("0"), d("1"), 2).unwrap_err(),
            InterestError::Overflow
        );
    }

    #[test]
    fn cumulative_rounding_over_a_30_day_month_does_not_drift() {
        // 10,000.00 EUR at 2.5 % Act/365 over April 2023: 250/365 = 0.684931506… a day.
        // Rounded alone, each day is 0.68: 30 × 0.68 = 20.40.
        // The month's precise total is 30 × 250/365 = 7500/365 = 20.547945205… → 20.55.
        let (precise, posted, accruals) = accrue_period(
            d("10000.00"),
            &flat("0.025"),
            Decimal::ZERO,
            DayCount::Act365Fixed,
            date(2023, 4, 1),
            date(2023, 5, 1),
            Currency::EUR.minor_units(),
        );
        assert_eq!(accruals.len(), 30);
        assert_eq!(at_10_decimals(accruals[0].precise), d("0.6849315068"));
        assert_eq!(at_10_decimals(precise), d("20.5479452055"));
        assert_eq!(posted, d("20.55"));
        assert_eq!(posted, round_half_even(precise, 2));
        let naive: Decimal = accruals
            .iter()
            .map(|accrual| round_half_even(accrual.precise, 2))
            .sum();
        assert_eq!(naive, d("20.40"));
        // Running totals 0.684…, 1.369…, 2.054…, 2.739…, 3.424… round to 0.68, 1.37, 2.05,
        // 2.74, 3.42, so the first days post 0.68, 0.69, 0.68, 0.69, 0.68.
        let first_five: Vec<Decimal> = accruals
            .iter()
            .take(5)
            .map(|accrual| accrual.amount)
            .collect();
        assert_eq!(
            first_five,
            vec![d("0.68"), d("0.69"), d("0.68"), d("0.69"), d("0.68")]
        );
        // Every day, what has been posted is the running precise total rounded once.
        let mut precise_so_far = Decimal::ZERO;
        let mut posted_so_far = Decimal::ZERO;
        for accrual in &accruals {
            precise_so_far += accrual.precise;
            posted_so_far += accrual.amount;
            assert_eq!(
                posted_so_far,
                round_half_even(precise_so_far, 2),
                "{}",
                accrual.day
            );
        }
    }

    #[test]
    fn cumulative_rounding_accrues_amounts_too_small_to_round_alone() {
        // 1,000.00 EUR at 0.146 % Act/365: 1000 × 0.00146 / 365 = 1.46/365 = 0.004 a day,
        // 0.00 when rounded alone, so naive rounding would never pay anything. Over 30 days
        // the precise total is 0.120 → 0.12. Running totals 0.004, 0.008, 0.012, 0.016 round
        // to 0.00, 0.01, 0.01, 0.02: the first days post 0.00, 0.01, 0.00, 0.01.
        let (precise, posted, accruals) = accrue_period(
            d("1000.00"),
            &flat("0.00146"),
            Decimal::ZERO,
            DayCount::Act365Fixed,
            date(2023, 6, 1),
            date(2023, 7, 1),
            2,
        );
        assert_eq!(accruals[0].precise, d("0.004"));
        assert_eq!(precise, d("0.12"));
        assert_eq!(posted, d("0.12"));
        let first_four: Vec<Decimal> = accruals
            .iter()
            .take(4)
            .map(|accrual| accrual.amount)
            .collect();
        assert_eq!(first_four, vec![d("0.00"), d("0.01"), d("0.00"), d("0.01")]);
    }

    #[test]
    fn cumulative_rounding_in_yen_does_not_drift() {
        // 1,000,000 JPY at 0.1 % Act/365 over June 2023: 1000/365 = 2.739726… yen a day, 3
        // when rounded alone: 30 × 3 = 90 (8 yen too many). Precise total 30000/365 =
        // 82.191780… → 82.
        let (precise, posted, accruals) = accrue_period(
            d("1000000"),
            &flat("0.001"),
            Decimal::ZERO,
            DayCount::Act365Fixed,
            date(2023, 6, 1),
            date(2023, 7, 1),
            Currency::JPY.minor_units(),
        );
        assert_eq!(at_10_decimals(precise), d("82.1917808219"));
        assert_eq!(posted, d("82"));
        let naive: Decimal = accruals
            .iter()
            .map(|accrual| round_half_even(accrual.precise, 0))
            .sum();
        assert_eq!(naive, d("90"));
        assert!(accruals.iter().all(|accrual| accrual.amount.scale() == 0));
    }

    // ---- Period ends ------------------------------------------------------------------

    #[test]
    fn monthly_periods_end_on_the_last_day_of_each_month() {
        let monthly = PostingFrequency::Monthly;
        assert!(monthly.is_period_end(date(2024, 1, 31)));
        assert!(!monthly.is_period_end(date(2024, 2, 28)));
        assert!(monthly.is_period_end(date(2024, 2, 29)));
        assert!(monthly.is_period_end(date(2023, 2, 28)));
        assert!(monthly.is_period_end(date(2024, 4, 30)));
        assert!(!monthly.is_period_end(date(2024, 4, 29)));
        assert!(monthly.is_period_end(date(2024, 12, 31)));
        assert_eq!(monthly.period_start(date(2024, 2, 29)), date(2024, 2, 1));
        assert_eq!(monthly.period_start(date(2024, 2, 15)), date(2024, 2, 1));
        assert_eq!(monthly.period_start(date(2024, 3, 1)), date(2024, 3, 1));
    }

    #[test]
    fn quarterly_periods_end_on_march_june_september_and_december_ends() {
        let quarterly = PostingFrequency::Quarterly;
        for end in [
            date(2024, 3, 31),
            date(2024, 6, 30),
            date(2024, 9, 30),
            date(2024, 12, 31),
        ] {
            assert!(quarterly.is_period_end(end), "{end}");
        }
        for not_end in [
            date(2024, 1, 31),
            date(2024, 2, 29),
            date(2024, 6, 29),
            date(2024, 3, 30),
        ] {
            assert!(!quarterly.is_period_end(not_end), "{not_end}");
        }
        assert_eq!(quarterly.period_start(date(2024, 2, 29)), date(2024, 1, 1));
        assert_eq!(quarterly.period_start(date(2024, 5, 20)), date(2024, 4, 1));
        assert_eq!(quarterly.period_start(date(2024, 9, 30)), date(2024, 7, 1));
        assert_eq!(
            quarterly.period_start(date(2024, 12, 31)),
            date(2024, 10, 1)
        );
        assert_eq!(quarterly.period_start(date(2024, 1, 1)), date(2024, 1, 1));
    }

    #[test]
    fn annual_periods_end_on_december_31() {
        let annually = PostingFrequency::Annually;
        assert!(annually.is_period_end(date(2024, 12, 31)));
        assert!(annually.is_period_end(date(2023, 12, 31)));
        assert!(!annually.is_period_end(date(2024, 12, 30)));
        assert!(!annually.is_period_end(date(2024, 6, 30)));
        assert!(!annually.is_period_end(date(2024, 2, 29)));
        assert_eq!(annually.period_start(date(2024, 2, 29)), date(2024, 1, 1));
        assert_eq!(annually.period_start(date(2024, 12, 31)), date(2024, 1, 1));
    }

    #[test]
    fn a_period_ends_exactly_on_the_day_before_the_next_one_starts() {
        for frequency in PostingFrequency::ALL {
            for day in date(2023, 1, 1).iter_days().take(731) {
                let next = day.succ_opt().unwrap();
                assert_eq!(
                    frequency.is_period_end(day),
                    frequency.period_start(next) == next,
                    "{frequency} {day}"
                );
                assert!(frequency.period_start(day) <= day);
                assert_eq!(
                    frequency.period_start(frequency.period_start(day)),
                    frequency.period_start(day)
                );
            }
        }
    }

    // ---- Deterministic ids ------------------------------------------------------------

    #[test]
    fn entry_ids_are_deterministic_version_4_and_distinct() {
        let account = Uuid::parse_str("1b4e28ba-2fa1-41d2-883f-0016d3cca427").unwrap();
        let other_account = Uuid::parse_str("9f1c2b3a-4d5e-4f60-8a7b-1c2d3e4f5a6b").unwrap();
        let day = date(2024, 1, 31);
        assert_eq!(
            accrual_entry_id(account, day),
            accrual_entry_id(account, day)
        );
        assert_eq!(
            posting_entry_id(account, day),
            posting_entry_id(account, day)
        );
        assert_ne!(
            accrual_entry_id(account, day),
            accrual_entry_id(account, date(2024, 2, 1))
        );
        assert_ne!(
            accrual_entry_id(account, day),
            accrual_entry_id(other_account, day)
        );
        assert_ne!(
            posting_entry_id(account, day),
            posting_entry_id(other_account, day)
        );
        assert_ne!(
            accrual_entry_id(account, day),
            posting_entry_id(account, day)
        );
        for id in [
            accrual_entry_id(account, day),
            posting_entry_id(account, day),
        ] {
            assert_eq!(id.get_version_num(), 4);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert!(JournalEntryId::from_uuid(id).is_ok());
        }
    }

    #[test]
    fn entry_ids_do_not_change_between_releases() {
        // Pinned, because replays must find the entries earlier releases wrote. Computed
        // outside this code: the SHA-256 of the text (`printf %s '…' | sha256sum`) begins
        // f52925cd de363b05 5a4834b9 03f418a1; the version nibble 3 becomes 4 (…-4b05-…)
        // and the variant byte 5a becomes 9a (…-9a48-…).
        let account = Uuid::parse_str("1b4e28ba-2fa1-41d2-883f-0016d3cca427").unwrap();
        assert_eq!(
            accrual_entry_id(account, date(2024, 1, 31)).to_string(),
            "f52925cd-de36-4b05-9a48-34b903f418a1"
        );
        // Likewise for "corebank.deposits.posting:1b4e28ba-…-0016d3cca427:2024-01-31".
        assert_eq!(
            posting_entry_id(account, date(2024, 1, 31)).to_string(),
            "527b4f74-86ce-431d-876c-d791b2b091b6"
        );
    }
}
