//! The route table of one version and the routing decision: which side (legacy or modern)
//! is primary for a request, and whether the other side gets a shadow copy.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The operations a route rule can name: the gateway's fixed vocabulary.
pub const OPERATIONS: &[&str] = &[
    "accounts.read",
    "accounts.write",
    "cash",
    "holds",
    "transfers",
    "payments",
];

/// The product of a rule that applies to every product without a rule of its own.
pub const ANY_PRODUCT: &str = "*";

/// Canary buckets: an account falls in one of this many, so a percentage maps to
/// `percent * 100` buckets.
pub const CANARY_BUCKETS: u64 = 10_000;

/// Which implementation serves a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The monolith, through the legacy adapter.
    Legacy,
    /// The modern modules.
    Modern,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Legacy => "legacy",
            Side::Modern => "modern",
        }
    }

    pub fn parse(text: &str) -> Option<Side> {
        match text {
            "legacy" => Some(Side::Legacy),
            "modern" => Some(Side::Modern),
            _ => None,
        }
    }

    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Legacy => Side::Modern,
            Side::Modern => Side::Legacy,
        }
    }
}

/// A side for a percentage of accounts, chosen by stable hash buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub side: Side,
    /// 0..=100.
    pub percent: u8,
}

/// The routing of one (product, operation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteRule {
    /// A product code, or `*` for any product without a rule of its own.
    pub product: String,
    /// One of [`OPERATIONS`].
    pub operation: String,
    pub default_side: Side,
    pub canary: Option<Canary>,
    /// Mixed into the canary hash, so two rules with the same percentage pick different
    /// accounts, and changing the salt reshuffles them. Keep it when only the percentage
    /// changes, so accounts already in the canary stay there.
    pub salt: String,
    /// Whether the other side gets a shadow copy.
    pub shadow: bool,
}

/// Why the primary side was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The account is explicitly owned by that side.
    Ownership,
    /// The account's bucket falls in the rule's canary.
    Canary,
    /// The rule's default side.
    Default,
    /// No rule for the product or `*`: the legacy core stays primary.
    NoRule,
}

/// A routing decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub primary: Side,
    /// The other side when the rule asks for a shadow copy.
    pub shadow: Option<Side>,
    /// The route table version that decided.
    pub version: i64,
    pub reason: Reason,
}

/// The canary bucket of an account under a salt: SHA-256 of `salt`, a NUL byte and the
/// account id, its first eight bytes as a big-endian number, modulo [`CANARY_BUCKETS`].
/// Stable across processes, releases and platforms: the same account always lands in the
/// same bucket, so it stays on the same side while the rule's percentage does not shrink.
pub fn canary_bucket(salt: &str, account_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update(salt.as_bytes());
    // The separator keeps ("ab", "c") and ("a", "bc") apart.
    hasher.update([0_u8]);
    hasher.update(account_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0_u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first) % CANARY_BUCKETS
}

/// Why a rule set or ownership list is not acceptable: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidRoute {
    pub field: String,
    pub message: String,
    /// Set when each part is well formed but they do not fit together (a rule given twice,
    /// a canary to the default side): the stable code of that refusal, which the admin API
    /// answers 422 rather than 400, as no schema of the body can say it.
    pub inconsistency: Option<&'static str>,
}

impl InvalidRoute {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InvalidRoute {
        InvalidRoute {
            field: field.into(),
            message: message.into(),
            inconsistency: None,
        }
    }

    /// Well-formed parts that do not fit together; `code` is the stable code.
    pub fn inconsistent(
        field: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> InvalidRoute {
        InvalidRoute {
            inconsistency: Some(code),
            ..InvalidRoute::new(field, message)
        }
    }
}

/// Product codes and account ids are at most this long.
pub const IDENTIFIER_LENGTH_MAX: usize = 128;

/// Checks one rule; `field` names it in the message (e.g. `rules[2]`).
pub fn validate_rule(rule: &RouteRule, field: &str) -> Result<(), InvalidRoute> {
    let product = rule.product.as_str();
    if product.is_empty() {
        return Err(InvalidRoute::new(
            format!("{field}.product"),
            "must not be empty",
        ));
    }
    if product.chars().count() > IDENTIFIER_LENGTH_MAX || product.chars().any(char::is_whitespace) {
        return Err(InvalidRoute::new(
            format!("{field}.product"),
            format!("must be at most {IDENTIFIER_LENGTH_MAX} characters without spaces"),
        ));
    }
    if !OPERATIONS.contains(&rule.operation.as_str()) {
        return Err(InvalidRoute::new(
            format!("{field}.operation"),
            format!(
                "unknown operation {:?}; one of {}",
                rule.operation,
                OPERATIONS.join(", ")
            ),
        ));
    }
    if rule.salt.is_empty() || rule.salt.chars().count() > IDENTIFIER_LENGTH_MAX {
        return Err(InvalidRoute::new(
            format!("{field}.salt"),
            format!("must be 1 to {IDENTIFIER_LENGTH_MAX} characters"),
        ));
    }
    if let Some(canary) = rule.canary {
        if canary.percent > 100 {
            return Err(InvalidRoute::new(
                format!("{field}.canary.percent"),
                "must be between 0 and 100",
            ));
        }
        if canary.side == rule.default_side {
            return Err(InvalidRoute::inconsistent(
                format!("{field}.canary.side"),
                "canary_on_default_side",
                "must differ from default_side (a canary sends some accounts to the other side)",
            ));
        }
    }
    Ok(())
}

/// Checks a whole rule set: every rule, and no (product, operation) twice.
pub fn validate_rules(rules: &[RouteRule]) -> Result<(), InvalidRoute> {
    let mut seen = HashMap::with_capacity(rules.len());
    for (index, rule) in rules.iter().enumerate() {
        let field = format!("rules[{index}]");
        validate_rule(rule, &field)?;
        if let Some(first) = seen.insert((rule.product.as_str(), rule.operation.as_str()), index) {
            return Err(InvalidRoute::inconsistent(
                field,
                "duplicate_route_rule",
                format!(
                    "duplicate rule for product {:?} and operation {:?} (also rules[{first}])",
                    rule.product, rule.operation
                ),
            ));
        }
    }
    Ok(())
}

/// Checks an account id of the ownership table.
pub fn validate_account_id(account_id: &str, field: &str) -> Result<(), InvalidRoute> {
    if account_id.is_empty()
        || account_id.chars().count() > IDENTIFIER_LENGTH_MAX
        || account_id.chars().any(char::is_whitespace)
    {
        return Err(InvalidRoute::new(
            field,
            format!("must be 1 to {IDENTIFIER_LENGTH_MAX} characters without spaces"),
        ));
    }
    Ok(())
}

/// The routing of one version: its rules and its explicit account ownership. Built only
/// through [`RouteTable::new`], which refuses an invalid rule set, so a table in memory is
/// always one a decision can be made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable {
    version: i64,
    rules: Vec<RouteRule>,
    /// (product, operation) → index in `rules`.
    index: HashMap<(String, String), usize>,
    ownership: HashMap<String, Side>,
}

impl RouteTable {
    /// The table of `version`; refuses rules that [`validate_rules`] refuses.
    pub fn new(
        version: i64,
        rules: Vec<RouteRule>,
        ownership: HashMap<String, Side>,
    ) -> Result<RouteTable, InvalidRoute> {
        validate_rules(&rules)?;
        let index = rules
            .iter()
            .enumerate()
            .map(|(position, rule)| ((rule.product.clone(), rule.operation.clone()), position))
            .collect();
        Ok(RouteTable {
            version,
            rules,
            index,
            ownership,
        })
    }

    /// The empty table: the legacy core serves everything.
    pub fn empty(version: i64) -> RouteTable {
        RouteTable {
            version,
            rules: Vec::new(),
            index: HashMap::new(),
            ownership: HashMap::new(),
        }
    }

    pub fn version(&self) -> i64 {
        self.version
    }

    pub fn rules(&self) -> &[RouteRule] {
        &self.rules
    }

    pub fn ownership(&self) -> &HashMap<String, Side> {
        &self.ownership
    }

    /// The rule that applies to (product, operation): the product's own, else `*`'s.
    pub fn rule_for(&self, product: &str, operation: &str) -> Option<&RouteRule> {
        let key = |product: &str| (product.to_owned(), operation.to_owned());
        self.index
            .get(&key(product))
            .or_else(|| self.index.get(&key(ANY_PRODUCT)))
            .and_then(|position| self.rules.get(*position))
    }

    /// Which side is primary, in this order: the account's explicit ownership, the rule's
    /// canary bucket, the rule's default; with no rule (for the product or `*`) the legacy
    /// core stays primary. The shadow is the other side when the rule asks for one.
    pub fn decide(&self, product: &str, operation: &str, account_id: Option<&str>) -> Decision {
        let rule = self.rule_for(product, operation);
        let shadow_of = |primary: Side| rule.filter(|rule| rule.shadow).map(|_| primary.other());
        let decision = |primary: Side, reason: Reason| Decision {
            primary,
            shadow: shadow_of(primary),
            version: self.version,
            reason,
        };
        if let Some(side) = account_id.and_then(|account_id| self.ownership.get(account_id)) {
            return decision(*side, Reason::Ownership);
        }
        let Some(rule) = rule else {
            return decision(Side::Legacy, Reason::NoRule);
        };
        if let (Some(canary), Some(account_id)) = (rule.canary, account_id)
            && canary_bucket(&rule.salt, account_id) < u64::from(canary.percent) * 100
        {
            return decision(canary.side, Reason::Canary);
        }
        decision(rule.default_side, Reason::Default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(product: &str, operation: &str) -> RouteRule {
        RouteRule {
            product: product.to_owned(),
            operation: operation.to_owned(),
            default_side: Side::Legacy,
            canary: None,
            salt: "s".to_owned(),
            shadow: false,
        }
    }

    #[test]
    fn buckets_are_stable_and_in_range() {
        let first = canary_bucket("salt", "account-1");
        assert_eq!(first, canary_bucket("salt", "account-1"));
        assert!(first < CANARY_BUCKETS);
        assert_ne!(canary_bucket("ab", "c"), canary_bucket("a", "bc"));
    }

    #[test]
    fn invalid_rules_are_refused_naming_the_field() {
        let mut bad = rule("", "cash");
        assert_eq!(
            validate_rules(&[bad.clone()]).unwrap_err().field,
            "rules[0].product"
        );
        bad.product = "P".to_owned();
        bad.operation = "teleport".to_owned();
        assert_eq!(
            validate_rules(&[bad.clone()]).unwrap_err().field,
            "rules[0].operation"
        );
        bad.operation = "cash".to_owned();
        bad.canary = Some(Canary {
            side: Side::Modern,
            percent: 101,
        });
        assert_eq!(
            validate_rules(&[bad]).unwrap_err().field,
            "rules[0].canary.percent"
        );
        let duplicate = validate_rules(&[rule("P", "cash"), rule("P", "cash")]).unwrap_err();
        assert_eq!(duplicate.field, "rules[1]");
    }
}
