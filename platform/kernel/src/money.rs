//! `Money`: an exact decimal amount in one currency, never a float.

use std::fmt;

use rust_decimal::Decimal;

use crate::currency::{Currency, CurrencyError};

/// Why an amount was refused. Each variant has a stable code (see [`MoneyError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error(transparent)]
    Currency(#[from] CurrencyError),
    #[error(
        "amount {input:?} is not a decimal number: {reason}; write it like \"100.25\" (digits, \
         an optional '-' and '.', no exponent or thousands separators)"
    )]
    InvalidAmount { input: String, reason: &'static str },
    #[error("amount {amount} has more decimals than {currency} allows ({minor_units})")]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        minor_units: u32,
    },
    #[error(
        "amount {amount} is too large: at most {} digits before the decimal point",
        Money::INTEGER_DIGITS_MAX
    )]
    AmountTooLarge { amount: String },
    #[error("currency mismatch: {left} and {right} cannot be combined")]
    CurrencyMismatch { left: Currency, right: Currency },
}

impl MoneyError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            MoneyError::Currency(inner) => inner.code(),
            MoneyError::InvalidAmount { .. } => "invalid_amount",
            MoneyError::TooManyDecimals { .. } => "too_many_decimals",
            MoneyError::AmountTooLarge { .. } => "amount_too_large",
            MoneyError::CurrencyMismatch { .. } => "currency_mismatch",
        }
    }
}

/// An amount of one currency. The amount always carries exactly the currency's minor units
/// (`"100.50"` for EUR, `"100"` for JPY) and fits the storage type `NUMERIC(28, 6)`.
///
/// The amount may be negative or zero: balances and differences are `Money` too. Whether an
/// amount must be positive (a posting, a payment) is the caller's rule.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// The largest number of digits before the decimal point. With at most four minor units
    /// (ISO 4217's largest), every amount fits `NUMERIC(28, 6)` and rust_decimal's 28 digits.
    pub const INTEGER_DIGITS_MAX: u32 = 22;

    /// Money from an exact decimal. Trailing zeros beyond the minor units are accepted
    /// (`1.500` EUR is `1.50` EUR); any other extra decimal is refused, never rounded.
    pub fn new(amount: Decimal, currency: Currency) -> Result<Money, MoneyError> {
        let normalized = amount.normalize();
        if normalized.scale() > currency.minor_units() {
            return Err(MoneyError::TooManyDecimals {
                amount: amount.to_string(),
                currency,
                minor_units: currency.minor_units(),
            });
        }
        if normalized.abs() >= integer_limit() {
            return Err(MoneyError::AmountTooLarge {
                amount: amount.to_string(),
            });
        }
        let mut exact = normalized;
        exact.rescale(currency.minor_units());
        // A zero keeps no sign: "-0.00" and "0.00" are the same amount.
        if exact.is_zero() {
            exact.set_sign_positive(true);
        }
        Ok(Money {
            amount: exact,
            currency,
        })
    }

    /// Money from its decimal string (`"-100.25"`) and a currency. The syntax is strict:
    /// an optional `-`, digits, and an optional `.` followed by digits.
    pub fn parse(amount: &str, currency: Currency) -> Result<Money, MoneyError> {
        let decimal = parse_decimal(amount)?;
        Money::new(decimal, currency)
    }

    /// Money from its decimal string and an ISO 4217 code.
    pub fn parse_with_code(amount: &str, currency_code: &str) -> Result<Money, MoneyError> {
        Money::parse(amount, Currency::from_code(currency_code)?)
    }

    /// Money from a whole number of minor units (cents for EUR).
    pub fn from_minor_units(minor_units: i64, currency: Currency) -> Result<Money, MoneyError> {
        let amount = Decimal::new(minor_units, currency.minor_units());
        Money::new(amount, currency)
    }

    /// Zero in this currency.
    pub fn zero(currency: Currency) -> Money {
        let mut amount = Decimal::ZERO;
        amount.rescale(currency.minor_units());
        Money { amount, currency }
    }

    pub fn amount(&self) -> Decimal {
        self.amount
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn is_zero(&self) -> bool {
        self.amount.is_zero()
    }

    pub fn is_positive(&self) -> bool {
        self.amount.is_sign_positive() && !self.amount.is_zero()
    }

    pub fn is_negative(&self) -> bool {
        self.amount.is_sign_negative() && !self.amount.is_zero()
    }

    /// The same amount with the opposite sign (always representable: the limit is symmetric).
    #[must_use]
    pub fn negated(&self) -> Money {
        let mut amount = -self.amount;
        if amount.is_zero() {
            amount.set_sign_positive(true);
        }
        Money {
            amount,
            currency: self.currency,
        }
    }

    /// The sum, refused when the currencies differ or the result passes the limit.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.checked(other, Decimal::checked_add)
    }

    /// The difference, refused when the currencies differ or the result passes the limit.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.checked(other, Decimal::checked_sub)
    }

    /// `operation` on the two amounts, refused when the currencies differ or the result
    /// passes the limit.
    fn checked(
        &self,
        other: &Money,
        operation: fn(Decimal, Decimal) -> Option<Decimal>,
    ) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        let result =
            operation(self.amount, other.amount).ok_or_else(|| MoneyError::AmountTooLarge {
                amount: "overflow".to_owned(),
            })?;
        Money::new(result, self.currency)
    }

    /// The amount as its canonical decimal string, with exactly the currency's minor units.
    pub fn amount_string(&self) -> String {
        self.amount.to_string()
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: self.currency,
                right: other.currency,
            })
        }
    }
}

fn integer_limit() -> Decimal {
    // 10^22: the first amount with 23 integer digits.
    Decimal::from_i128_with_scale(10_i128.pow(Money::INTEGER_DIGITS_MAX), 0)
}

/// The length of the longest amount string we look at; anything longer cannot fit anyway.
const AMOUNT_STRING_LENGTH_MAX: usize = 64;

fn parse_decimal(input: &str) -> Result<Decimal, MoneyError> {
    let refuse = |reason: &'static str| MoneyError::InvalidAmount {
        input: input.chars().take(AMOUNT_STRING_LENGTH_MAX).collect(),
        reason,
    };
    if input.len() > AMOUNT_STRING_LENGTH_MAX {
        return Err(refuse("longer than 64 characters"));
    }
    let unsigned = input.strip_prefix('-').unwrap_or(input);
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    if whole.is_empty() {
        return Err(refuse("no digits before the decimal point"));
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(refuse("only digits may stand before the decimal point"));
    }
    if let Some(fraction) = fraction {
        if fraction.is_empty() {
            return Err(refuse("no digits after the decimal point"));
        }
        if !fraction.bytes().all(|b| b.is_ascii_digit()) {
            return Err(refuse("only digits may follow the decimal point"));
        }
    }
    let significant = whole.trim_start_matches('0');
    if significant.len() > usize::try_from(Money::INTEGER_DIGITS_MAX).unwrap_or(usize::MAX) {
        return Err(MoneyError::AmountTooLarge {
            amount: input.to_owned(),
        });
    }
    Decimal::from_str_exact(input).map_err(|_| refuse("more digits than 28"))
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// The JSON shape of money: `{"amount": "100.25", "currency": "EUR"}`, the amount a string.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MoneyJson {
    amount: String,
    currency: String,
}

impl serde::Serialize for Money {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        MoneyJson {
            amount: self.amount_string(),
            currency: self.currency.code().to_owned(),
        }
        .serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Money {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = MoneyJson::deserialize(deserializer)?;
        Money::parse_with_code(&raw.amount, &raw.currency).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn eur(amount: &str) -> Money {
        Money::parse(amount, Currency::EUR).unwrap()
    }

    #[test]
    fn amounts_are_printed_with_exactly_the_currency_minor_units() {
        assert_eq!(eur("100").amount_string(), "100.00");
        assert_eq!(eur("100.5").amount_string(), "100.50");
        assert_eq!(
            Money::parse("7", Currency::JPY).unwrap().amount_string(),
            "7"
        );
        assert_eq!(
            Money::parse("1.2", Currency::KWD).unwrap().amount_string(),
            "1.200"
        );
    }

    #[test]
    fn an_amount_with_more_decimals_than_the_currency_is_refused() {
        let error = Money::parse("100.255", Currency::EUR).unwrap_err();
        assert_eq!(error.code(), "too_many_decimals");
        let error = Money::parse("1.5", Currency::JPY).unwrap_err();
        assert_eq!(error.code(), "too_many_decimals");
    }

    #[test]
    fn trailing_zeros_beyond_the_minor_units_lose_nothing_and_are_accepted() {
        assert_eq!(eur("1.500"), eur("1.5"));
    }

    #[test]
    fn malformed_amounts_are_refused_with_a_reason() {
        for input in [
            "", "-", ".5", "5.", "1e3", "+1", " 1", "1,000.00", "1.2.3", "0x10", "NaN", "--1",
        ] {
            let error = Money::parse(input, Currency::EUR).unwrap_err();
            assert_eq!(error.code(), "invalid_amount", "input {input:?}");
        }
    }

    #[test]
    fn amounts_past_the_limit_are_refused() {
        let error = Money::parse("10000000000000000000000", Currency::EUR).unwrap_err();
        assert_eq!(error.code(), "amount_too_large");
        assert!(Money::parse("9999999999999999999999.99", Currency::EUR).is_ok());
        let max = eur("9999999999999999999999.99");
        assert_eq!(
            max.checked_add(&eur("0.01")).unwrap_err().code(),
            "amount_too_large"
        );
    }

    #[test]
    fn money_of_different_currencies_does_not_add() {
        let usd = Money::parse("1", Currency::USD).unwrap();
        let error = eur("1").checked_add(&usd).unwrap_err();
        assert_eq!(error.code(), "currency_mismatch");
    }

    #[test]
    fn negative_zero_is_plain_zero() {
        assert_eq!(eur("-0.00"), Money::zero(Currency::EUR));
        assert_eq!(eur("-0").amount_string(), "0.00");
        assert!(!eur("-0").is_negative());
    }

    #[test]
    fn json_uses_decimal_strings_and_validates_on_the_way_in() {
        let json = serde_json::to_string(&eur("100.25")).unwrap();
        assert_eq!(json, r#"{"amount":"100.25","currency":"EUR"}"#);
        let back: Money = serde_json::from_str(&json).unwrap();
        assert_eq!(back, eur("100.25"));
        let bad = serde_json::from_str::<Money>(r#"{"amount":"1.001","currency":"EUR"}"#);
        assert!(bad.unwrap_err().to_string().contains("more decimals"));
        let float = serde_json::from_str::<Money>(r#"{"amount":1.5,"currency":"EUR"}"#);
        assert!(float.is_err(), "a JSON number is not accepted as an amount");
    }

    #[test]
    fn minor_units_convert_exactly() {
        assert_eq!(
            Money::from_minor_units(12_345, Currency::EUR).unwrap(),
            eur("123.45")
        );
        assert_eq!(
            Money::from_minor_units(-5, Currency::KWD)
                .unwrap()
                .amount_string(),
            "-0.005"
        );
    }

    fn currency() -> impl Strategy<Value = Currency> {
        let all: Vec<Currency> = Currency::all().collect();
        proptest::sample::select(all)
    }

    /// Any amount in range, as minor units: up to 18 digits so sums stay in range too.
    fn minor_units() -> impl Strategy<Value = i64> {
        -999_999_999_999_999_999_i64..=999_999_999_999_999_999_i64
    }

    proptest! {
        #[test]
        fn printing_then_parsing_gives_the_same_money(units in minor_units(), currency in currency()) {
            let money = Money::from_minor_units(units, currency).unwrap();
            let printed = money.amount_string();
            let parsed = Money::parse(&printed, currency).unwrap();
            prop_assert_eq!(parsed, money);
            prop_assert_eq!(parsed.amount_string(), printed);
        }

        #[test]
        fn the_printed_amount_has_exactly_the_minor_units(units in minor_units(), currency in currency()) {
            let printed = Money::from_minor_units(units, currency).unwrap().amount_string();
            let decimals = printed.split_once('.').map_or(0, |(_, fraction)| fraction.len());
            prop_assert_eq!(decimals, usize::try_from(currency.minor_units()).unwrap());
        }

        #[test]
        fn addition_matches_integer_arithmetic(a in minor_units(), b in minor_units(), currency in currency()) {
            let left = Money::from_minor_units(a, currency).unwrap();
            let right = Money::from_minor_units(b, currency).unwrap();
            let expected = Money::new(
                Decimal::from_i128_with_scale(i128::from(a) + i128::from(b), currency.minor_units()),
                currency,
            ).unwrap();
            prop_assert_eq!(left.checked_add(&right).unwrap(), expected);
            prop_assert_eq!(left.checked_add(&right).unwrap().checked_sub(&right).unwrap(), left);
        }

        #[test]
        fn subtraction_is_addition_of_the_negation(a in minor_units(), b in minor_units(), currency in currency()) {
            let left = Money::from_minor_units(a, currency).unwrap();
            let right = Money::from_minor_units(b, currency).unwrap();
            prop_assert_eq!(left.checked_sub(&right).unwrap(), left.checked_add(&right.negated()).unwrap());
        }

        #[test]
        fn arbitrary_strings_never_panic_and_accepted_ones_round_trip(input in "\\PC{0,40}") {
            if let Ok(money) = Money::parse(&input, Currency::EUR) {
                let reparsed = Money::parse(&money.amount_string(), Currency::EUR).unwrap();
                prop_assert_eq!(reparsed, money);
            }
        }

        #[test]
        fn digit_strings_with_extra_decimals_are_refused(whole in "[0-9]{1,10}", fraction in "[0-9]{2}[1-9]") {
            let input = format!("{whole}.{fraction}");
            prop_assert_eq!(Money::parse(&input, Currency::EUR).unwrap_err().code(), "too_many_decimals");
        }
    }
}
