//! ISO 4217 currencies with their minor units, looked up from a static table.

use std::fmt;

/// A currency from ISO 4217, with the number of decimals (minor units) its amounts may carry.
///
/// Only codes in the active ISO 4217 list with decimal minor units are known; funds codes
/// with no minor units (XAU, XDR, …) are deliberately absent because no account holds them.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_units: u32,
}

/// Why a currency code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CurrencyError {
    #[error("unknown currency {code:?}: expected an ISO 4217 code such as \"EUR\" or \"USD\"")]
    Unknown { code: String },
}

impl CurrencyError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            CurrencyError::Unknown { .. } => "unknown_currency",
        }
    }
}

/// Currencies whose amounts have no decimals.
const ZERO_DECIMALS: &[&str] = &[
    "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
    "VUV", "XAF", "XOF", "XPF",
];
/// Currencies whose amounts have three decimals.
const THREE_DECIMALS: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
/// Currencies whose amounts have four decimals.
const FOUR_DECIMALS: &[&str] = &["CLF", "UYW"];
/// Currencies whose amounts have two decimals: the rest of the active ISO 4217 list.
const TWO_DECIMALS: &[&str] = &[
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BMD", "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE",
    "CHF", "CHW", "CNY", "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP",
    "ERN", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP",
    "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR",
    "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD",
    "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL",
    "THB", "TJS", "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS",
    "VED", "VES", "XCD", "XCG", "YER", "ZAR", "ZMW", "ZWG",
];

const TABLES: [(&[&str], u32); 4] = [
    (ZERO_DECIMALS, 0),
    (TWO_DECIMALS, 2),
    (THREE_DECIMALS, 3),
    (FOUR_DECIMALS, 4),
];

impl Currency {
    /// A currency from the tables above (or one of the constants that name them).
    const fn known(code: &'static str, minor_units: u32) -> Currency {
        Currency { code, minor_units }
    }

    pub const EUR: Currency = Currency::known("EUR", 2);
    pub const USD: Currency = Currency::known("USD", 2);
    pub const GBP: Currency = Currency::known("GBP", 2);
    pub const JPY: Currency = Currency::known("JPY", 0);
    pub const KWD: Currency = Currency::known("KWD", 3);

    /// The currency with this ISO 4217 code. Codes are upper case; anything else is refused
    /// rather than guessed at.
    pub fn from_code(code: &str) -> Result<Currency, CurrencyError> {
        TABLES
            .iter()
            .find_map(|(table, minor_units)| {
                table
                    .iter()
                    .find(|known| **known == code)
                    .map(|known| Currency::known(known, *minor_units))
            })
            .ok_or_else(|| CurrencyError::Unknown {
                code: code.chars().take(16).collect(),
            })
    }

    /// The three-letter ISO 4217 code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimals an amount in this currency may carry.
    pub fn minor_units(&self) -> u32 {
        self.minor_units
    }

    /// Every known currency, for listings and property tests.
    pub fn all() -> impl Iterator<Item = Currency> {
        TABLES.iter().flat_map(|(table, minor_units)| {
            table.iter().map(|code| Currency::known(code, *minor_units))
        })
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

text_form!(Currency, CurrencyError, Currency::from_code);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_carry_their_minor_units() {
        assert_eq!(Currency::from_code("EUR").unwrap().minor_units(), 2);
        assert_eq!(Currency::from_code("JPY").unwrap().minor_units(), 0);
        assert_eq!(Currency::from_code("KWD").unwrap().minor_units(), 3);
        assert_eq!(Currency::from_code("CLF").unwrap().minor_units(), 4);
    }

    #[test]
    fn unknown_and_lower_case_codes_are_refused() {
        for code in ["eur", "XXX", "", "EURO", "XAU"] {
            let error = Currency::from_code(code).unwrap_err();
            assert_eq!(error.code(), "unknown_currency", "{code}");
        }
    }

    #[test]
    fn the_table_has_no_code_twice() {
        let mut codes: Vec<&str> = Currency::all().map(|c| c.code()).collect();
        let total = codes.len();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), total);
        assert!(
            codes
                .iter()
                .all(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()))
        );
    }

    #[test]
    fn the_named_constants_agree_with_the_table() {
        for constant in [
            Currency::EUR,
            Currency::USD,
            Currency::GBP,
            Currency::JPY,
            Currency::KWD,
        ] {
            assert_eq!(Currency::from_code(constant.code()).unwrap(), constant);
            assert_eq!(
                Currency::from_code(constant.code()).unwrap().minor_units(),
                constant.minor_units()
            );
        }
    }
}
