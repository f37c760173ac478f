//! Request fields parsed by the kernel's rules (`corebank_kernel`), exactly as the modern
//! modules parse them, so the same request gets the same answer on both sides: ids with
//! `id::parse_v4`, currencies with `Currency::from_code`, amounts with `Money::parse`. Every
//! refusal is `invalid_argument`, the code the modules give for the same faults (README,
//! "Protocol choices").

use corebank_kernel::{Currency, Money, id};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::Result;
use super::error::AdapterError;

/// The largest amount the core's two-decimal strings carry here (the core's own limit,
/// below the kernel's 22 integer digits).
pub(crate) const AMOUNT_MAX: Decimal = Decimal::from_parts(1_569_325_055, 23_283_064, 0, false, 2);

/// A client-chosen or served id (request, account, hold, payment): a random (version 4)
/// UUID, as the kernel's typed ids require.
pub(crate) fn parse_uuid(text: &str, field: &'static str) -> Result<Uuid> {
    id::parse_v4(field, text).map_err(|e| AdapterError::invalid(e.to_string()))
}

/// A client-chosen request id: a UUID version 4.
pub(crate) fn parse_request_id(text: &str) -> Result<Uuid> {
    parse_uuid(text, "request_id")
}

/// A currency the kernel knows (ISO 4217); whether the core keeps it is checked apart.
pub(crate) fn parse_currency(code: &str) -> Result<Currency> {
    Currency::from_code(code).map_err(|e| AdapterError::invalid(format!("currency: {e}")))
}

/// Whether `code` is a currency the kernel knows.
pub(crate) fn check_currency(code: &str) -> Result<()> {
    parse_currency(code).map(|_| ())
}

/// Money in `currency` by the kernel's strict syntax (`"-100.25"`: no `+`, no exponent, no
/// separators, no spaces; no more decimals than the currency has).
pub(crate) fn parse_money(text: &str, currency: &str, field: &str) -> Result<Money> {
    let currency = parse_currency(currency)?;
    Money::parse(text, currency).map_err(|e| AdapterError::invalid(format!("{field}: {e}")))
}

/// A canonical amount to move: money in `currency`, more than zero, and within what the
/// core's amount strings carry. Answers the amount with the currency's minor units.
pub(crate) fn parse_amount(text: &str, currency: &str) -> Result<Decimal> {
    let money = parse_money(text, currency, "amount")?;
    if !money.is_positive() {
        return Err(AdapterError::invalid(format!(
            "amount must be more than zero, not {text}"
        )));
    }
    if money.amount() > AMOUNT_MAX {
        return Err(AdapterError::invalid(format!(
            "amount {text} is above the legacy core's largest amount, {AMOUNT_MAX}"
        )));
    }
    Ok(money.amount())
}

/// An optional amount of a product (a limit, a minimum balance): empty is none.
pub(crate) fn optional_money(text: &str, currency: &str, field: &str) -> Result<Option<Decimal>> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    parse_money(text, currency, field).map(|money| Some(money.amount()))
}

/// An optional rate (a decimal, not money): empty is zero, as the modules read it.
pub(crate) fn optional_rate(text: &str, field: &str) -> Result<Decimal> {
    if text.trim().is_empty() {
        return Ok(Decimal::ZERO);
    }
    text.parse::<Decimal>()
        .map_err(|_| AdapterError::invalid(format!("{field} {text:?} is not a decimal number")))
}

/// The amount as the request fingerprint keeps it: the canonical money string when the
/// amount and currency parse (so `"10.0"` and `"10.00"` are one request, as in the
/// modules), else the text as sent (it is refused later, in the modules' order of checks).
pub(crate) fn fingerprint_amount(text: &str, currency: &str) -> String {
    match Money::parse_with_code(text, currency) {
        Ok(money) => money.amount_string(),
        Err(_) => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn amounts_follow_the_kernel_syntax_and_the_core_limit() {
        assert_eq!(parse_amount("10.5", "EUR").unwrap().to_string(), "10.50");
        assert_eq!(AMOUNT_MAX.to_string(), "999999999999999.99");
        assert!(parse_amount("999999999999999.99", "EUR").is_ok());
        for bad in [
            "0",
            "-0",
            "-1",
            "+1",
            "1_000",
            "1e3",
            " 1",
            "1 ",
            "0.001",
            "abc",
            "",
            "1000000000000000.00",
            "123456789012345678901234567890",
        ] {
            assert_eq!(
                parse_amount(bad, "EUR").unwrap_err().code(),
                "invalid_argument",
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_amount("1.00", "XXY").unwrap_err().code(),
            "invalid_argument"
        );
    }

    #[test]
    fn ids_must_be_random_uuids() {
        assert!(parse_uuid("7f3a0b1c-2d4e-4f60-8a9b-0c1d2e3f4a5b", "account_id").is_ok());
        for bad in [
            "",
            "not-a-uuid",
            "00000000-0000-0000-0000-000000000000",
            "018f3a5e-8d1c-7b2a-9c3d-4e5f6a7b8c9d",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
        ] {
            assert_eq!(
                parse_uuid(bad, "account_id").unwrap_err().code(),
                "invalid_argument",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn unknown_currencies_are_invalid_arguments() {
        assert!(check_currency("EUR").is_ok());
        for bad in ["XXY", "eur", "", "EURO"] {
            assert_eq!(check_currency(bad).unwrap_err().code(), "invalid_argument");
        }
    }

    #[test]
    fn fingerprints_see_amounts_as_money() {
        assert_eq!(fingerprint_amount("10.0", "EUR"), "10.00");
        assert_eq!(fingerprint_amount("10.00", "EUR"), "10.00");
        assert_ne!(
            fingerprint_amount("10.00", "EUR"),
            fingerprint_amount("10.01", "EUR")
        );
        assert_eq!(fingerprint_amount("+10", "EUR"), "+10");
    }
}
