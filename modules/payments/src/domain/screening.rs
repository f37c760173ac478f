//! Screening of outbound payments: amount threshold, velocity, blocklist. A refusal is a
//! business failure of the payment (its hold is released); it names the rule.

use rust_decimal::Decimal;

/// The screening rules in force.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreeningRules {
    /// A single payment above this is refused (in the payment's currency).
    pub max_amount: Decimal,
    /// More payments than this from one account within an hour are refused.
    pub max_per_hour: i64,
}

impl Default for ScreeningRules {
    fn default() -> Self {
        ScreeningRules {
            max_amount: Decimal::from(100_000),
            max_per_hour: 100,
        }
    }
}

/// What screening decides, from the payment and what the store found.
pub fn screen(
    rules: &ScreeningRules,
    amount: Decimal,
    payments_in_last_hour: i64,
    blocklisted: Option<&str>,
) -> Result<(), String> {
    if let Some(reason) = blocklisted {
        return Err(format!("screening: the creditor is blocklisted ({reason})"));
    }
    if amount > rules.max_amount {
        return Err(format!(
            "screening: {amount} is above the single-payment threshold of {}",
            rules.max_amount
        ));
    }
    if payments_in_last_hour > rules.max_per_hour {
        return Err(format!(
            "screening: {payments_in_last_hour} payments from this account within an hour (at most {})",
            rules.max_per_hour
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_refuses_and_names_itself() {
        let rules = ScreeningRules {
            max_amount: Decimal::from(1_000),
            max_per_hour: 3,
        };
        assert_eq!(screen(&rules, Decimal::from(1_000), 3, None), Ok(()));
        assert!(
            screen(&rules, Decimal::new(100_001, 2), 0, None)
                .is_err_and(|e| e.contains("threshold"))
        );
        assert!(screen(&rules, Decimal::ONE, 4, None).is_err_and(|e| e.contains("within an hour")));
        assert!(
            screen(&rules, Decimal::ONE, 0, Some("sanctions list"))
                .is_err_and(|e| e.contains("sanctions list"))
        );
    }
}
