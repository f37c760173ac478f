//! How a repeated request's content is compared with the stored content: field by field,
//! amounts as money. Pure: no SQL, so stored rows written before this rule compare too.

use corebank_kernel::Money;
use serde_json::{Map, Value};

/// Whether `key` has the same value in the stored content and the new one. An `amount` is
/// compared as money in its request's `currency` ("10.0" and "10.00" EUR are one amount,
/// "10.00" and "10.01" are not); an amount that does not parse, and every other field, is
/// compared as written.
pub fn same_field(stored: &Map<String, Value>, content: &Map<String, Value>, key: &str) -> bool {
    let (old, new) = (stored.get(key), content.get(key));
    if key == "amount"
        && let (Some(old), Some(new)) = (money_of(stored, old), money_of(content, new))
    {
        return old == new;
    }
    old == new
}

/// The content's amount as money in the content's currency, when both parse.
fn money_of(content: &Map<String, Value>, amount: Option<&Value>) -> Option<Money> {
    let amount = amount?.as_str()?;
    let currency = content.get("currency")?.as_str()?;
    Money::parse_with_code(amount, currency).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;
    use serde_json::json;

    fn fields(amount: &str, currency: &str) -> Map<String, Value> {
        json!({"account_id": "a", "amount": amount, "currency": currency})
            .as_object()
            .unwrap()
            .clone()
    }

    #[test]
    fn amounts_written_differently_are_the_same_amount() {
        let stored = fields("10.0", "EUR");
        assert!(same_field(&stored, &fields("10.00", "EUR"), "amount"));
        assert!(same_field(&stored, &fields("10", "EUR"), "amount"));
        assert!(!same_field(&stored, &fields("10.01", "EUR"), "amount"));
    }

    #[test]
    fn amounts_that_do_not_parse_or_differ_in_currency_are_compared_as_written() {
        let stored = fields("10.00", "EUR");
        assert!(!same_field(&stored, &fields("+10.00", "EUR"), "amount"));
        assert!(!same_field(&stored, &fields("10.00", "USD"), "amount"));
        assert!(same_field(
            &fields("x", "EUR"),
            &fields("x", "EUR"),
            "amount"
        ));
        assert!(same_field(&stored, &fields("10.0", "EUR"), "account_id"));
        assert!(!same_field(
            &stored,
            &json!({}).as_object().unwrap().clone(),
            "amount"
        ));
    }
}
