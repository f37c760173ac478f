//! Normalisation and comparison of a primary and a shadow answer: which fields are ignored
//! (ids and timestamps each side mints for itself), which decimal fields are compared
//! rounded to their scale, whether status codes count, and the field-by-field walk over the
//! JSON that lists every differing path. Also the redaction of personal data from what is
//! stored or shown.
//!
//! A rule names a field either by its key (`id` matches `id` at any depth) or by its dotted
//! path without array indexes (`balances_after.posted` matches that field only, and
//! `holds.id` matches the `id` of every element of `holds`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};

use super::Answer;

/// What replaces personal data in stored and shown payloads.
pub const REDACTED: &str = "<redacted>";

/// Differing paths listed per comparison at most; the last entry then says how many more.
pub const DIFFERENCES_MAX: usize = 100;

/// Keys whose values are personal data, redacted wherever they appear (whole value, even an
/// object or array). Any key ending in `_name` is personal too.
const PERSONAL_KEYS: &[&str] = &[
    "customer_id",
    "customer_ids",
    "customer",
    "name",
    "creditor",
    "creditor_account",
    "creditor_iban",
    "creditor_name",
    "debtor",
    "debtor_account",
    "debtor_iban",
    "debtor_name",
    "description",
    "remittance",
    "remittance_information",
    "narrative",
    "email",
    "phone",
    "address",
    "date_of_birth",
];

/// Whether the value under `key` is personal data.
pub fn is_personal(key: &str) -> bool {
    PERSONAL_KEYS.contains(&key) || key.ends_with("_name")
}

/// A copy of `value` with every personal field's value replaced by [`REDACTED`].
pub fn redact(value: &Value) -> Value {
    match value {
        Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| {
                    let value = if is_personal(key) {
                        Value::String(REDACTED.to_owned())
                    } else {
                        redact(value)
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// The normalisation of one operation's answers (or the part common to all operations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldRules {
    /// Fields left out of the comparison (keys or dotted paths).
    pub ignored: BTreeSet<String>,
    /// Decimal fields (keys or dotted paths) compared as decimals rounded to this many
    /// fractional digits, half away from zero, so `"10.5"` equals `"10.50"` and, at scale
    /// 2, `"10.004"` equals `"10.00"`. Both strings and JSON numbers are read.
    pub decimal_scales: BTreeMap<String, u32>,
    /// Whether the HTTP status codes must be equal; `None` inherits the common rule.
    pub compare_status: Option<bool>,
}

impl FieldRules {
    fn ignored<const N: usize>(fields: [&str; N]) -> FieldRules {
        FieldRules {
            ignored: fields.iter().map(|field| (*field).to_owned()).collect(),
            ..FieldRules::default()
        }
    }

    /// `self` with `more` on top: ignored fields added, scales overridden, the status rule
    /// overridden when `more` has one.
    fn merged(&self, more: &FieldRules) -> FieldRules {
        let mut merged = self.clone();
        merged.ignored.extend(more.ignored.iter().cloned());
        merged.decimal_scales.extend(
            more.decimal_scales
                .iter()
                .map(|(field, scale)| (field.clone(), *scale)),
        );
        if more.compare_status.is_some() {
            merged.compare_status = more.compare_status;
        }
        merged
    }

    fn names(set: &BTreeSet<String>, key: Option<&str>, path: &str) -> bool {
        key.is_some_and(|key| set.contains(key)) || set.contains(path)
    }

    fn is_ignored(&self, key: Option<&str>, path: &str) -> bool {
        Self::names(&self.ignored, key, path)
    }

    fn scale_of(&self, key: Option<&str>, path: &str) -> Option<u32> {
        self.decimal_scales
            .get(path)
            .or_else(|| key.and_then(|key| self.decimal_scales.get(key)))
            .copied()
    }
}

/// The normalisation rules of every operation: a common part and each operation's own on
/// top of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizationRules {
    pub common: FieldRules,
    /// Per operation (one of `routing::OPERATIONS`), merged over `common`.
    pub operations: BTreeMap<String, FieldRules>,
}

impl Default for NormalizationRules {
    /// The defaults:
    /// - ignored everywhere: what each side mints for itself or words its own way —
    ///   `entry_id`, `journal_entry_id`, `transaction_id`, `posting_id`, `uetr`,
    ///   `request_id`, the timestamps (`recorded_at`, `created_at`, `updated_at`,
    ///   `placed_at`, `expires_at`, `released_at`, `captured_at`, `completed_at`,
    ///   `value_date_time`), `replayed`, `steps`, `served_by`, `route_version`, and an error
    ///   envelope's `message` (the stable `code` and `retry_safe` are compared);
    /// - ignored per operation: the `id` of what the operation creates (`accounts.write`:
    ///   `id` and `account_id` of a new account; `holds`: `id`, `hold_id`; `transfers`:
    ///   `id`, `transfer_id`; `payments`: `id`, `payment_id`, `status_url`; `cash`: `id`).
    ///   `accounts.read` compares `id`: both sides must describe the same account;
    /// - money (`amount`, `posted`, `available`, `pending`, `held`, `balance`,
    ///   `ledger_balance`, `overdraft_limit`, `fee`, `total`) compared at scale 2, rates
    ///   (`rate`, `interest_rate`) at scale 6;
    /// - other strings that both look like decimals with a fraction (`-?\d+\.\d+`) are
    ///   compared as decimals without rounding; any other string exactly (so account
    ///   numbers `"000123"` and `"123"` differ);
    /// - status codes compared.
    fn default() -> NormalizationRules {
        let mut common = FieldRules::ignored([
            "entry_id",
            "journal_entry_id",
            "transaction_id",
            "posting_id",
            "uetr",
            "request_id",
            "recorded_at",
            "created_at",
            "updated_at",
            "placed_at",
            "expires_at",
            "released_at",
            "captured_at",
            "completed_at",
            "value_date_time",
            "replayed",
            "steps",
            "served_by",
            "route_version",
            "message",
        ]);
        for money in [
            "amount",
            "posted",
            "available",
            "pending",
            "held",
            "balance",
            "ledger_balance",
            "overdraft_limit",
            "fee",
            "total",
        ] {
            common.decimal_scales.insert(money.to_owned(), 2);
        }
        for rate in ["rate", "interest_rate"] {
            common.decimal_scales.insert(rate.to_owned(), 6);
        }
        common.compare_status = Some(true);
        let operations = [
            ("accounts.read", FieldRules::default()),
            ("accounts.write", FieldRules::ignored(["id", "account_id"])),
            ("cash", FieldRules::ignored(["id"])),
            ("holds", FieldRules::ignored(["id", "hold_id"])),
            ("transfers", FieldRules::ignored(["id", "transfer_id"])),
            (
                "payments",
                FieldRules::ignored(["id", "payment_id", "status_url"]),
            ),
        ]
        .into_iter()
        .map(|(operation, rules)| (operation.to_owned(), rules))
        .collect();
        NormalizationRules { common, operations }
    }
}

impl NormalizationRules {
    /// The rules for `operation`: the common part with the operation's own on top.
    pub fn for_operation(&self, operation: &str) -> FieldRules {
        match self.operations.get(operation) {
            Some(own) => self.common.merged(own),
            None => self.common.clone(),
        }
    }

    /// These rules with `more` added on top of `operation`'s own.
    pub fn with_operation(mut self, operation: &str, more: FieldRules) -> NormalizationRules {
        let entry = self.operations.entry(operation.to_owned()).or_default();
        *entry = entry.merged(&more);
        self
    }
}

/// One differing path: the primary's and the shadow's value there (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    /// `status`, or the dotted JSON path (`balances_after.posted`, `entries[2].amount`);
    /// `body` when the answers' roots differ in kind.
    pub path: String,
    pub primary: Option<Value>,
    pub shadow: Option<Value>,
    /// Whether the path goes through a personal field (its values are never shown).
    pub personal: bool,
}

impl fmt::Display for Difference {
    /// `balances_after.posted: "59.50" vs "60.00"`; personal values as `<redacted>`.
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |value: &Option<Value>| match value {
            None => "<absent>".to_owned(),
            Some(_) if self.personal => REDACTED.to_owned(),
            Some(value) => redact(value).to_string(),
        };
        write!(
            formatter,
            "{}: {} vs {}",
            self.path,
            show(&self.primary),
            show(&self.shadow)
        )
    }
}

/// Every difference between the two answers under `rules`, at most [`DIFFERENCES_MAX`]
/// (the walk stops there). Empty: the answers match.
pub fn compare(rules: &FieldRules, primary: &Answer, shadow: &Answer) -> Vec<Difference> {
    let mut walk = Walk {
        rules,
        differences: Vec::new(),
        more: 0,
    };
    if rules.compare_status.unwrap_or(true) && primary.status != shadow.status {
        walk.differ(
            "status",
            false,
            Some(Value::from(primary.status)),
            Some(Value::from(shadow.status)),
        );
    }
    walk.value(
        &Location::root(),
        None,
        Some(&primary.body),
        Some(&shadow.body),
    );
    let mut differences = walk.differences;
    if walk.more > 0 {
        differences.push(Difference {
            path: format!("… and {} more", walk.more),
            primary: None,
            shadow: None,
            personal: false,
        });
    }
    differences
}

/// Where the walk is: the path as shown (with indexes), the path rules name (without), and
/// whether a personal key lies on it.
#[derive(Debug, Clone)]
struct Location {
    shown: String,
    named: String,
    personal: bool,
}

impl Location {
    fn root() -> Location {
        Location {
            shown: String::new(),
            named: String::new(),
            personal: false,
        }
    }

    fn field(&self, key: &str) -> Location {
        let join = |base: &str| {
            if base.is_empty() {
                key.to_owned()
            } else {
                format!("{base}.{key}")
            }
        };
        Location {
            shown: join(&self.shown),
            named: join(&self.named),
            personal: self.personal || is_personal(key),
        }
    }

    fn index(&self, index: usize) -> Location {
        Location {
            shown: format!("{}[{index}]", self.shown),
            named: self.named.clone(),
            personal: self.personal,
        }
    }

    fn shown(&self) -> &str {
        if self.shown.is_empty() {
            "body"
        } else {
            &self.shown
        }
    }
}

struct Walk<'r> {
    rules: &'r FieldRules,
    differences: Vec<Difference>,
    /// Differences found beyond the cap.
    more: usize,
}

impl Walk<'_> {
    fn differ(
        &mut self,
        path: &str,
        personal: bool,
        primary: Option<Value>,
        shadow: Option<Value>,
    ) {
        if self.differences.len() >= DIFFERENCES_MAX {
            self.more = self.more.saturating_add(1);
            return;
        }
        self.differences.push(Difference {
            path: path.to_owned(),
            primary,
            shadow,
            personal,
        });
    }

    /// Compares the values at `location`, whose last key is `key` (none at the root or in
    /// an array).
    fn value(
        &mut self,
        location: &Location,
        key: Option<&str>,
        primary: Option<&Value>,
        shadow: Option<&Value>,
    ) {
        match (primary, shadow) {
            (None, None) => {}
            (Some(Value::Object(primary)), Some(Value::Object(shadow))) => {
                self.objects(location, primary, shadow);
            }
            (Some(Value::Array(primary)), Some(Value::Array(shadow))) => {
                let length = primary.len().max(shadow.len());
                for index in 0..length {
                    self.value(
                        &location.index(index),
                        key,
                        primary.get(index),
                        shadow.get(index),
                    );
                }
            }
            (Some(primary), Some(shadow)) => {
                if !self.scalars_equal(location, key, primary, shadow) {
                    self.differ(
                        location.shown(),
                        location.personal,
                        Some(primary.clone()),
                        Some(shadow.clone()),
                    );
                }
            }
            (primary, shadow) => self.differ(
                location.shown(),
                location.personal,
                primary.cloned(),
                shadow.cloned(),
            ),
        }
    }

    fn objects(
        &mut self,
        location: &Location,
        primary: &Map<String, Value>,
        shadow: &Map<String, Value>,
    ) {
        let keys: BTreeSet<&String> = primary.keys().chain(shadow.keys()).collect();
        for key in keys {
            let field = location.field(key);
            if self.rules.is_ignored(Some(key), &field.named) {
                continue;
            }
            self.value(&field, Some(key), primary.get(key), shadow.get(key));
        }
    }

    fn scalars_equal(
        &self,
        location: &Location,
        key: Option<&str>,
        primary: &Value,
        shadow: &Value,
    ) -> bool {
        if primary == shadow {
            return true;
        }
        match self.rules.scale_of(key, &location.named) {
            Some(scale) => match (decimal_of(primary), decimal_of(shadow)) {
                (Some(primary), Some(shadow)) => {
                    let round = |value: Decimal| {
                        value.round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero)
                    };
                    round(primary) == round(shadow)
                }
                _ => false,
            },
            None => match (primary, shadow) {
                (Value::Number(_), Value::Number(_)) => {
                    matches!((decimal_of(primary), decimal_of(shadow)), (Some(a), Some(b)) if a == b)
                }
                (Value::String(a), Value::String(b)) if has_fraction(a) && has_fraction(b) => {
                    matches!((decimal_of(primary), decimal_of(shadow)), (Some(a), Some(b)) if a == b)
                }
                _ => false,
            },
        }
    }
}

/// A decimal string or JSON number as a decimal.
fn decimal_of(value: &Value) -> Option<Decimal> {
    match value {
        Value::String(text) => Decimal::from_str(text.trim()).ok(),
        Value::Number(number) => Decimal::from_str(&number.to_string())
            .or_else(|_| Decimal::from_scientific(&number.to_string()))
            .ok(),
        _ => None,
    }
}

/// `-?\d+\.\d+`.
fn has_fraction(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let Some((whole, fraction)) = digits.split_once('.') else {
        return false;
    };
    let all_digits =
        |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_digit());
    all_digits(whole) && all_digits(fraction)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn answer(status: u16, body: Value) -> Answer {
        Answer { status, body }
    }

    fn paths(operation: &str, primary: &Answer, shadow: &Answer) -> Vec<String> {
        compare(
            &NormalizationRules::default().for_operation(operation),
            primary,
            shadow,
        )
        .iter()
        .map(ToString::to_string)
        .collect()
    }

    #[test]
    fn ids_timestamps_and_trailing_zeros_do_not_count() {
        let primary = answer(
            201,
            json!({"id": "t-1", "entry_id": "e-1", "recorded_at": "2025-01-01T00:00:00Z",
                   "amount": "10.5", "balances_after": {"posted": "59.50"}, "rate": 0.5}),
        );
        let shadow = answer(
            201,
            json!({"id": "LT-9", "entry_id": "FT123", "recorded_at": "2025-01-01T00:00:01Z",
                   "amount": "10.50", "balances_after": {"posted": "59.5"}, "rate": 0.50}),
        );
        assert!(paths("transfers", &primary, &shadow).is_empty());
    }

    #[test]
    fn every_differing_path_is_listed_with_both_values() {
        let primary = answer(
            201,
            json!({"balances_after": {"posted": "59.50"}, "entries": [{"amount": "1.00"}], "state": "done"}),
        );
        let shadow = answer(
            200,
            json!({"balances_after": {"posted": "60.00"}, "entries": [{"amount": "1.00"}, {"amount": "2.00"}]}),
        );
        assert_eq!(
            paths("transfers", &primary, &shadow),
            vec![
                "status: 201 vs 200",
                "balances_after.posted: \"59.50\" vs \"60.00\"",
                "entries[1]: <absent> vs {\"amount\":\"2.00\"}",
                "state: \"done\" vs <absent>",
            ]
        );
    }

    #[test]
    fn amounts_round_to_their_scale_but_account_numbers_compare_exactly() {
        let primary = answer(200, json!({"amount": "10.004", "account": "000123"}));
        let shadow = answer(200, json!({"amount": "10.00", "account": "123"}));
        assert_eq!(
            paths("accounts.read", &primary, &shadow),
            vec!["account: \"000123\" vs \"123\""]
        );
        let read = answer(200, json!({"id": "A1"}));
        let other = answer(200, json!({"id": "A2"}));
        assert_eq!(
            paths("accounts.read", &read, &other).len(),
            1,
            "reads compare ids"
        );
    }

    #[test]
    fn personal_values_are_never_shown_or_stored() {
        let primary = answer(
            200,
            json!({"creditor_name": "Alice", "customer_id": "C1",
                                         "details": {"description": "rent"}}),
        );
        let shadow = answer(
            200,
            json!({"creditor_name": "Bob", "customer_id": "C1",
                                        "details": {"description": "rent"}}),
        );
        assert_eq!(
            paths("payments", &primary, &shadow),
            vec!["creditor_name: <redacted> vs <redacted>"]
        );
        assert_eq!(
            redact(&primary.body),
            json!({"creditor_name": REDACTED, "customer_id": REDACTED,
                   "details": {"description": REDACTED}})
        );
    }

    #[test]
    fn rules_name_fields_by_key_or_by_path() {
        let rules = NormalizationRules::default()
            .with_operation("cash", FieldRules::ignored(["outer.note"]));
        let rules = rules.for_operation("cash");
        let primary = answer(200, json!({"outer": {"note": "a"}, "note": "a"}));
        let shadow = answer(200, json!({"outer": {"note": "b"}, "note": "b"}));
        let differences: Vec<String> = compare(&rules, &primary, &shadow)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(differences, vec!["note: \"a\" vs \"b\""]);
    }
}
