//! Parity between the two sides' definitions of one product code: every field that changes
//! what an account of the product does (kind, currency, rate tiers, day count, posting
//! frequency, minimum balance, overdraft, dormancy, transfer limits), compared by value
//! (`0` and `0.00` are the same amount, an empty limit is no limit), each difference named.
//! The display name is shown but not compared: two sides may call one product differently.

use corebank_api::deposits::v1 as pb;
use rust_decimal::Decimal;
use serde::Serialize;

/// How the two definitions of one code compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    /// Both sides define it and every compared field agrees.
    Equal,
    /// Both sides define it; `differences` names each field that does not agree.
    Different,
    /// Only the legacy core has it: its accounts cannot move to modern yet.
    LegacyOnly,
    /// Only the modern side has it.
    ModernOnly,
}

/// One field on which the two definitions disagree, as each side states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Difference {
    /// The field's name in the product definition (`rate_tiers`, `day_count`, …).
    pub field: String,
    pub legacy: String,
    pub modern: String,
}

/// The compared fields, each as a normalised text (equal texts are equal values), in the
/// order the definition lists them.
fn compared(product: &pb::Product) -> [(&'static str, String); 11] {
    [
        ("kind", product.kind.clone()),
        ("currency", product.currency.clone()),
        ("rate_tiers", tiers(&product.rate_tiers)),
        ("day_count", product.day_count.clone()),
        ("posting_frequency", product.posting_frequency.clone()),
        ("minimum_balance", amount(&product.minimum_balance)),
        ("overdraft_limit", amount(&product.overdraft_limit)),
        ("overdraft_rate", amount(&product.overdraft_rate)),
        ("dormancy_days", dormancy(product.dormancy_days)),
        ("per_transfer_limit", limit(&product.per_transfer_limit)),
        ("daily_transfer_limit", limit(&product.daily_transfer_limit)),
    ]
}

/// `legacy` against `modern`: the parity and every difference.
pub fn compare(
    legacy: Option<&pb::Product>,
    modern: Option<&pb::Product>,
) -> (Parity, Vec<Difference>) {
    match (legacy, modern) {
        (Some(legacy), Some(modern)) => {
            let differences: Vec<Difference> = compared(legacy)
                .into_iter()
                .zip(compared(modern))
                .filter(|((_, legacy), (_, modern))| legacy != modern)
                .map(|((field, legacy), (_, modern))| Difference {
                    field: field.to_owned(),
                    legacy,
                    modern,
                })
                .collect();
            let parity = if differences.is_empty() {
                Parity::Equal
            } else {
                Parity::Different
            };
            (parity, differences)
        }
        (Some(_), None) => (Parity::LegacyOnly, Vec::new()),
        (None, Some(_) | None) => (Parity::ModernOnly, Vec::new()),
    }
}

/// An amount or rate by value; text that is not a number stays as sent, so that it shows.
fn amount(text: &str) -> String {
    let text = text.trim();
    if text.is_empty() {
        return "0".to_owned();
    }
    text.parse::<Decimal>()
        .map(|value| value.normalize().to_string())
        .unwrap_or_else(|_| text.to_owned())
}

/// A transfer limit: empty is none.
fn limit(text: &str) -> String {
    if text.trim().is_empty() {
        "none".to_owned()
    } else {
        amount(text)
    }
}

fn dormancy(days: u32) -> String {
    if days == 0 {
        "never".to_owned()
    } else {
        format!("{days} days")
    }
}

/// The tiers by threshold: `from 0: 0.5; from 10000: 1`. No tiers is one tier of 0 from 0,
/// as deposits stores it.
fn tiers(tiers: &[pb::RateTier]) -> String {
    if tiers.is_empty() {
        return "from 0: 0".to_owned();
    }
    let mut normalised: Vec<(String, String)> = tiers
        .iter()
        .map(|tier| (amount(&tier.from_balance), amount(&tier.annual_rate)))
        .collect();
    normalised.sort_by(|a, b| {
        let key = |text: &str| text.parse::<Decimal>().unwrap_or(Decimal::MAX);
        key(&a.0).cmp(&key(&b.0)).then_with(|| a.0.cmp(&b.0))
    });
    normalised
        .iter()
        .map(|(from, rate)| format!("from {from}: {rate}"))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(code: &str) -> pb::Product {
        pb::Product {
            code: code.to_owned(),
            name: "Current account".to_owned(),
            kind: "current".to_owned(),
            currency: "EUR".to_owned(),
            day_count: "act_365_fixed".to_owned(),
            posting_frequency: "monthly".to_owned(),
            minimum_balance: "0".to_owned(),
            ..pb::Product::default()
        }
    }

    #[test]
    fn equal_values_written_differently_are_at_parity_and_the_name_is_not_compared() {
        let legacy = product("P");
        let mut modern = product("P");
        modern.name = "Another name".to_owned();
        modern.minimum_balance = "0.00".to_owned();
        modern.overdraft_rate = String::new();
        modern.rate_tiers = Vec::new();
        assert_eq!(
            compare(Some(&legacy), Some(&modern)),
            (Parity::Equal, Vec::new())
        );
    }

    #[test]
    fn every_differing_field_is_named_with_both_sides_values() {
        let mut legacy = product("P");
        legacy.rate_tiers = vec![
            pb::RateTier {
                from_balance: "10000".to_owned(),
                annual_rate: "0.010".to_owned(),
            },
            pb::RateTier {
                from_balance: "0".to_owned(),
                annual_rate: "0.005".to_owned(),
            },
        ];
        let mut modern = product("P");
        modern.rate_tiers = vec![pb::RateTier {
            from_balance: "0".to_owned(),
            annual_rate: "0.005".to_owned(),
        }];
        modern.day_count = "act_360".to_owned();
        modern.daily_transfer_limit = "5000".to_owned();
        let (parity, differences) = compare(Some(&legacy), Some(&modern));
        assert_eq!(parity, Parity::Different);
        let named: Vec<(&str, &str, &str)> = differences
            .iter()
            .map(|d| (d.field.as_str(), d.legacy.as_str(), d.modern.as_str()))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "rate_tiers",
                    "from 0: 0.005; from 10000: 0.01",
                    "from 0: 0.005"
                ),
                ("day_count", "act_365_fixed", "act_360"),
                ("daily_transfer_limit", "none", "5000"),
            ]
        );
    }

    #[test]
    fn a_code_on_one_side_only_says_which() {
        let only = product("P");
        assert_eq!(compare(Some(&only), None).0, Parity::LegacyOnly);
        assert_eq!(compare(None, Some(&only)).0, Parity::ModernOnly);
    }
}
