//! Fuzzy matching of a party's name against listed names: both are normalised (case,
//! diacritics folded to ASCII where simple, punctuation and whitespace, token order) and
//! compared with Jaro-Winkler; a score at or above the currency's threshold is a possible
//! hit.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use super::ListedParty;

/// The name as compared: lower case ASCII where the letters fold simply, punctuation as
/// space, tokens sorted (so "Doe, John" and "John Doe" are the same name).
pub fn normalise(name: &str) -> String {
    let mut folded = String::with_capacity(name.len());
    for c in name.nfkd().filter(|c| !is_combining_mark(*c)) {
        match c {
            'ß' => folded.push_str("ss"),
            'æ' | 'Æ' => folded.push_str("ae"),
            'œ' | 'Œ' => folded.push_str("oe"),
            'ø' | 'Ø' => folded.push('o'),
            'ł' | 'Ł' => folded.push('l'),
            'đ' | 'Đ' => folded.push('d'),
            'þ' | 'Þ' => folded.push_str("th"),
            c if c.is_alphanumeric() => folded.extend(c.to_lowercase()),
            // Apostrophes join ("O'Neil" is "oneil"); other punctuation separates.
            '\'' | '’' | '`' => {}
            _ => folded.push(' '),
        }
    }
    let mut tokens: Vec<&str> = folded.split_whitespace().collect();
    tokens.sort_unstable();
    tokens.join(" ")
}

/// The Jaro-Winkler similarity of two names after normalisation, 0.0 to 1.0.
pub fn similarity(a: &str, b: &str) -> f64 {
    strsim::jaro_winkler(&normalise(a), &normalise(b))
}

/// The match thresholds by currency, with a default (`*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Thresholds {
    by_currency: BTreeMap<String, f64>,
    default: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            by_currency: BTreeMap::new(),
            default: 0.93,
        }
    }
}

impl Thresholds {
    /// Parses `EUR:0.92,USD:0.90,*:0.93`: each threshold between 0.5 and 1.0; `*` is the
    /// default (0.93 when absent).
    pub fn parse(text: &str) -> Result<Thresholds, String> {
        let mut thresholds = Thresholds::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (currency, value) = item
                .split_once(':')
                .ok_or_else(|| format!("{item:?} is not CURRENCY:THRESHOLD"))?;
            let value: Decimal = value
                .trim()
                .parse()
                .map_err(|_| format!("{value:?} is not a number"))?;
            if value < Decimal::new(5, 1) || value > Decimal::ONE {
                return Err(format!("{item:?}: a threshold is between 0.5 and 1.0"));
            }
            let value: f64 = value.to_string().parse().map_err(|_| item.to_owned())?;
            let currency = currency.trim();
            if currency == "*" {
                thresholds.default = value;
            } else if currency.len() == 3 && currency.chars().all(|c| c.is_ascii_uppercase()) {
                thresholds.by_currency.insert(currency.to_owned(), value);
            } else {
                return Err(format!("{currency:?} is not a currency code or *"));
            }
        }
        Ok(thresholds)
    }

    /// The threshold for payments in `currency`.
    pub fn for_currency(&self, currency: &str) -> f64 {
        self.by_currency
            .get(currency)
            .copied()
            .unwrap_or(self.default)
    }
}

/// A listed name a party's name matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub list: &'static str,
    pub id: String,
    pub listed_name: String,
    pub score: f64,
}

/// Listed parties with every name normalised once (when the lists are loaded), so that
/// screening a payment compares against prepared names instead of normalising the whole list
/// again for each payment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartyIndex {
    parties: Vec<(ListedParty, Vec<String>)>,
}

impl PartyIndex {
    pub fn new(parties: Vec<ListedParty>) -> PartyIndex {
        PartyIndex {
            parties: parties
                .into_iter()
                .map(|party| {
                    let normalised = party.names.iter().map(|n| normalise(n)).collect();
                    (party, normalised)
                })
                .collect(),
        }
    }

    /// How many parties are listed.
    pub fn len(&self) -> usize {
        self.parties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    /// Every listed party whose name or alias scores at least `threshold` against `name`
    /// (the best of its names), best first.
    pub fn hits(&self, name: &str, threshold: f64) -> Vec<Hit> {
        let wanted = normalise(name);
        if wanted.is_empty() {
            return Vec::new();
        }
        let mut found: Vec<Hit> = self
            .parties
            .iter()
            .filter_map(|(party, normalised)| {
                party
                    .names
                    .iter()
                    .zip(normalised)
                    .map(|(listed, prepared)| (listed, strsim::jaro_winkler(&wanted, prepared)))
                    .filter(|(_, score)| *score >= threshold)
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(listed, score)| Hit {
                        list: party.list,
                        id: party.id.clone(),
                        listed_name: listed.clone(),
                        score,
                    })
            })
            .collect();
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn party(id: &str, names: &[&str]) -> ListedParty {
        ListedParty {
            list: "test",
            id: id.to_owned(),
            names: names.iter().map(|n| (*n).to_owned()).collect(),
        }
    }

    #[test]
    fn names_are_normalised_for_case_diacritics_punctuation_and_order() {
        assert_eq!(normalise("  MÜLLER,   José-María "), "jose maria muller");
        assert_eq!(normalise("Doe, John"), normalise("john DOE"));
        assert_eq!(normalise("Straße Øster"), "oster strasse");
        assert_eq!(normalise("O'Neil"), "oneil");
        assert_eq!(normalise("..."), "");
    }

    #[test]
    fn an_alias_hits_and_a_distant_name_does_not() {
        let list = PartyIndex::new(vec![party(
            "36",
            &["AEROCARIBBEAN AIRLINES", "AERO-CARIBBEAN"],
        )]);
        let found = list.hits("Aero Caribbean", 0.92);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].listed_name, "AERO-CARIBBEAN");
        assert!(list.hits("Erika Mustermann", 0.80).is_empty());
        assert!(list.hits("", 0.5).is_empty());
    }

    #[test]
    fn a_near_miss_passes_one_currency_and_is_held_in_another() {
        let list = PartyIndex::new(vec![party("1", &["Ivan Petrovich Sidorov"])]);
        let score = similarity("Ivan Petrovic Sidorova", "Ivan Petrovich Sidorov");
        assert!(score > 0.90 && score < 0.99, "{score}");
        let thresholds = Thresholds::parse("EUR:0.99, USD:0.90, *:0.95").unwrap();
        assert!(
            list.hits("Ivan Petrovic Sidorova", thresholds.for_currency("EUR"))
                .is_empty()
        );
        assert_eq!(
            list.hits("Ivan Petrovic Sidorova", thresholds.for_currency("USD"))
                .len(),
            1
        );
        assert_eq!(thresholds.for_currency("GBP"), 0.95);
        assert_eq!(Thresholds::default().for_currency("EUR"), 0.93);
    }

    #[test]
    fn bad_thresholds_are_refused() {
        for bad in ["EUR", "EUR:x", "EUR:1.5", "EUR:0.2", "eur:0.9", "EURO:0.9"] {
            assert!(Thresholds::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Thresholds::parse("").unwrap(), Thresholds::default());
    }
}
