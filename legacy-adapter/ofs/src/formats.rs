//! The legacy core's own formats, which the adapter translates to and from the canonical
//! ones: account numbers (currency, serial and check digits), customer numbers, `YYYYMMDD`
//! dates and two-decimal amount strings.
//!
//! Account number: the three-letter currency, an eight-digit serial and two check digits by
//! ISO 7064 MOD 97-10 (as IBANs use) over the serial and the currency's letters, e.g.
//! `EUR1000001781`. Customer number: a six-digit serial and one MOD 11 check digit (a check
//! value of 10 is never issued), e.g. `1000039`. Both check digits catch every single wrong
//! digit and every swap of two neighbours.

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Why a legacy value is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {problem}")]
pub struct FormatError {
    pub what: &'static str,
    pub value: String,
    pub problem: String,
}

impl FormatError {
    pub fn code(&self) -> &'static str {
        "legacy_format"
    }
}

fn error(what: &'static str, value: &str, problem: impl Into<String>) -> FormatError {
    FormatError {
        what,
        value: value.to_owned(),
        problem: problem.into(),
    }
}

/// MOD 97-10 over a string of digits and upper-case letters (A = 10 … Z = 35).
fn mod97(text: &str) -> Option<u32> {
    let mut remainder: u32 = 0;
    for c in text.chars() {
        let value = c.to_digit(36)?;
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    Some(remainder)
}

/// The account number of `serial` (below 100,000,000) in `currency`.
pub fn account_number(currency: &str, serial: u32) -> Result<String, FormatError> {
    if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(error("currency", currency, "three upper-case letters"));
    }
    if serial >= 100_000_000 {
        return Err(error("serial", &serial.to_string(), "at most eight digits"));
    }
    let body = format!("{serial:08}");
    let remainder = mod97(&format!("{body}{currency}00"))
        .ok_or_else(|| error("account number", &body, "not digits"))?;
    Ok(format!("{currency}{body}{:02}", 98 - remainder))
}

/// Checks an account number: its currency and serial.
pub fn parse_account_number(text: &str) -> Result<(String, u32), FormatError> {
    let valid_shape = text.len() == 13
        && text.is_char_boundary(3)
        && text[..3].chars().all(|c| c.is_ascii_uppercase())
        && text[3..].chars().all(|c| c.is_ascii_digit());
    if !valid_shape {
        return Err(error(
            "account number",
            text,
            "three letters and ten digits, like EUR1000001781",
        ));
    }
    let (currency, rest) = text.split_at(3);
    let (body, check) = rest.split_at(8);
    if mod97(&format!("{body}{currency}{check}")) != Some(1) {
        return Err(error(
            "account number",
            text,
            "the check digits do not match",
        ));
    }
    let serial = body
        .parse()
        .map_err(|_| error("account number", text, "not a serial"))?;
    Ok((currency.to_owned(), serial))
}

fn mod11_check(body: &str) -> Option<u32> {
    let sum: u32 = body
        .chars()
        .rev()
        .zip(2_u32..)
        .map(|(c, weight)| c.to_digit(10).map(|d| d * weight))
        .sum::<Option<u32>>()?;
    Some((11 - sum % 11) % 11)
}

/// The customer number of `serial`, or `None` for the serials whose check would be 10 (the
/// core skips them).
pub fn customer_number(serial: u32) -> Option<String> {
    if serial >= 1_000_000 {
        return None;
    }
    let body = format!("{serial:06}");
    match mod11_check(&body)? {
        10 => None,
        check => Some(format!("{body}{check}")),
    }
}

/// Checks a customer number and gives its serial.
pub fn parse_customer_number(text: &str) -> Result<u32, FormatError> {
    if text.len() != 7 || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(error("customer number", text, "seven digits, like 1000039"));
    }
    let (body, check) = text.split_at(6);
    if mod11_check(body).map(|c| c.to_string()) != Some(check.to_owned()) {
        return Err(error(
            "customer number",
            text,
            "the check digit does not match",
        ));
    }
    body.parse()
        .map_err(|_| error("customer number", text, "not a serial"))
}

/// A date as the core writes it.
pub fn legacy_date(date: NaiveDate) -> String {
    date.format("%Y%m%d").to_string()
}

/// A `YYYYMMDD` date.
pub fn parse_legacy_date(text: &str) -> Result<NaiveDate, FormatError> {
    if text.len() != 8 || !text.chars().all(|c| c.is_ascii_digit()) {
        return Err(error("date", text, "eight digits, YYYYMMDD"));
    }
    NaiveDate::parse_from_str(text, "%Y%m%d").map_err(|_| error("date", text, "no such day"))
}

/// An amount as the core writes it: two decimals, no sign for positive amounts.
pub fn legacy_amount(amount: Decimal) -> Result<String, FormatError> {
    let mut rounded = amount;
    rounded.rescale(2);
    if rounded != amount {
        return Err(error(
            "amount",
            &amount.to_string(),
            "the core keeps two decimals; this one would be rounded",
        ));
    }
    Ok(rounded.to_string())
}

/// A two-decimal amount string (`150.00`, `-3.10`).
pub fn parse_legacy_amount(text: &str) -> Result<Decimal, FormatError> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let shaped = digits.split_once('.').is_some_and(|(units, cents)| {
        !units.is_empty()
            && units.len() <= 18
            && units.chars().all(|c| c.is_ascii_digit())
            && cents.len() == 2
            && cents.chars().all(|c| c.is_ascii_digit())
    });
    if !shaped {
        return Err(error(
            "amount",
            text,
            "digits, a dot and two decimals, like 150.00",
        ));
    }
    text.parse()
        .map_err(|_| error("amount", text, "not a number"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    #[test]
    fn account_numbers_carry_their_currency_and_check_digits() {
        let number = account_number("EUR", 10_000_017).unwrap();
        // 98 - (1000001714302700 mod 97) = 81: the serial, E=14 U=30 R=27, then 00, as IBANs do.
        assert_eq!(number, "EUR1000001781");
        assert_eq!(customer_number(100_003).unwrap(), "1000039");
        assert_eq!(
            parse_account_number(&number).unwrap(),
            ("EUR".to_owned(), 10_000_017)
        );
        assert!(account_number("eur", 1).is_err());
        assert!(account_number("EUR", 100_000_000).is_err());
        assert!(parse_account_number("EUR100000171").is_err());
        assert!(parse_account_number("").is_err());
        assert!(parse_account_number("ÉUR1000001752").is_err());
    }

    /// `parse` refuses every text `number` becomes with one wrong digit from position `first`
    /// on, or with two different neighbours there swapped.
    fn assert_typos_are_caught<T, E>(number: &str, first: usize, parse: fn(&str) -> Result<T, E>) {
        let digits: Vec<char> = number.chars().collect();
        for i in first..digits.len() {
            for d in '0'..='9' {
                if d != digits[i] {
                    let mut wrong = digits.clone();
                    wrong[i] = d;
                    let wrong: String = wrong.into_iter().collect();
                    assert!(parse(&wrong).is_err(), "{wrong}");
                }
            }
            if i + 1 < digits.len() && digits[i] != digits[i + 1] {
                let mut swapped = digits.clone();
                swapped.swap(i, i + 1);
                let swapped: String = swapped.into_iter().collect();
                assert!(parse(&swapped).is_err(), "{swapped}");
            }
        }
    }

    #[test]
    fn every_wrong_digit_and_every_swap_of_neighbours_is_caught() {
        for serial in [0, 7, 10_000_017, 12_345_678, 99_999_999] {
            for (currency, number) in [
                ("EUR", account_number("EUR", serial).unwrap()),
                ("USD", account_number("USD", serial).unwrap()),
            ] {
                assert!(parse_account_number(&number).is_ok(), "{currency} {number}");
                // The digits after the currency.
                assert_typos_are_caught(&number, 3, parse_account_number);
            }
        }
        for serial in 0..2_000 {
            let Some(number) = customer_number(serial) else {
                continue;
            };
            assert_eq!(parse_customer_number(&number).unwrap(), serial);
            assert_typos_are_caught(&number, 0, parse_customer_number);
        }
    }

    #[test]
    fn dates_and_amounts_in_the_cores_formats() {
        let day = NaiveDate::from_ymd_opt(2026, 2, 28).unwrap();
        assert_eq!(legacy_date(day), "20260228");
        assert_eq!(parse_legacy_date("20260228").unwrap(), day);
        for bad in ["20260230", "2026-02-28", "2026022", "2026022x"] {
            assert!(parse_legacy_date(bad).is_err(), "{bad}");
        }
        assert_eq!(legacy_amount(Decimal::new(15, 0)).unwrap(), "15.00");
        assert_eq!(legacy_amount(Decimal::new(-310, 2)).unwrap(), "-3.10");
        assert!(legacy_amount(Decimal::new(1001, 3)).is_err());
        assert_eq!(
            parse_legacy_amount("150.00").unwrap(),
            Decimal::new(15000, 2)
        );
        assert_eq!(parse_legacy_amount("-3.10").unwrap(), Decimal::new(-310, 2));
        for bad in ["150", "150.0", "150.000", "1,50", ".50", "-", "", "1e5.00"] {
            assert!(parse_legacy_amount(bad).is_err(), "{bad}");
        }
    }
}
