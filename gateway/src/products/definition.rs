//! A product as the admin API shows it (either side's) and as an operator proposes it for the
//! modern side: serde types that are also the API reference's schemas, so the document
//! cannot drift from what is parsed. Well-formedness is checked here (400); the product rules
//! (a minimum balance or an overdraft, not both; an amount's decimals in its currency; rate
//! bounds) are deposits' own, asked without storing anything when the proposal is made, and
//! a definition they refuse is answered 422 `invalid_product`.

use corebank_api::deposits::v1 as pb;
use serde::{Deserialize, Deserializer, Serialize};

/// The longest product code deposits takes.
pub const CODE_LENGTH_MAX: usize = 64;
/// The longest display name the admin API takes, in characters.
pub const NAME_LENGTH_MAX: usize = 200;
/// Rate tiers one product may have.
pub const RATE_TIERS_MAX: usize = 20;
/// Digits on either side of a decimal point in a product's amounts and rates.
const DECIMAL_DIGITS_MAX: usize = 12;

/// The pattern of a product code: deposits' rule.
pub fn code_pattern() -> String {
    format!("^[A-Za-z0-9._-]{{1,{CODE_LENGTH_MAX}}}$")
}

/// Whether `code` is a product code deposits takes.
pub fn is_code(code: &str) -> bool {
    (1..=CODE_LENGTH_MAX).contains(&code.len())
        && code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn decimal_pattern() -> String {
    format!("^[0-9]{{1,{DECIMAL_DIGITS_MAX}}}(\\.[0-9]{{1,{DECIMAL_DIGITS_MAX}}})?$")
}

/// A non-negative decimal as text (`1500`, `0.0125`), as [`decimal_pattern`] says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecimalText(String);

impl DecimalText {
    fn parse(text: &str) -> Option<DecimalText> {
        let (whole, fraction) = match text.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (text, None),
        };
        let digits = |part: &str| {
            (1..=DECIMAL_DIGITS_MAX).contains(&part.len())
                && part.bytes().all(|b| b.is_ascii_digit())
        };
        (digits(whole) && fraction.is_none_or(digits)).then(|| DecimalText(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for DecimalText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<DecimalText, D::Error> {
        let text = String::deserialize(deserializer)?;
        DecimalText::parse(&text).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "{text:?} is not a non-negative decimal (at most {DECIMAL_DIGITS_MAX} digits on \
                 either side of the point)"
            ))
        })
    }
}

fn decimal_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(decimal_pattern()))
}

/// An optional decimal: the string, or `null` (read as absent).
fn optional_decimal_schema() -> utoipa::openapi::schema::ObjectBuilder {
    decimal_schema().schema_type(crate::openapi::formats::string_or_null())
}

fn code_schema() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .pattern(Some(code_pattern()))
}

fn name_schema() -> utoipa::openapi::schema::ObjectBuilder {
    crate::openapi::formats::text(NAME_LENGTH_MAX)
}

/// A code: deposits' rule, checked where it is read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductCode(String);

impl ProductCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for ProductCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProductCode, D::Error> {
        let code = String::deserialize(deserializer)?;
        if is_code(&code) {
            Ok(ProductCode(code))
        } else {
            Err(serde::de::Error::custom(format!(
                "code {code:?}: 1 to {CODE_LENGTH_MAX} characters of A-Z a-z 0-9 - _ ."
            )))
        }
    }
}

/// A display name: not blank, at most [`NAME_LENGTH_MAX`] characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProductName(String);

impl<'de> Deserialize<'de> for ProductName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ProductName, D::Error> {
        let name = String::deserialize(deserializer)?;
        if name.trim().is_empty() || name.chars().count() > NAME_LENGTH_MAX {
            return Err(serde::de::Error::custom(format!(
                "name: not blank, at most {NAME_LENGTH_MAX} characters"
            )));
        }
        Ok(ProductName(name))
    }
}

/// What kind of account a product opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    Current,
    Savings,
}

/// How interest days are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DayCount {
    #[serde(rename = "act_365_fixed")]
    Act365Fixed,
    #[serde(rename = "act_360")]
    Act360,
    ActActIsda,
    #[serde(rename = "thirty_360")]
    Thirty360,
}

/// When accrued interest is posted to the account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PostingFrequency {
    Monthly,
    Quarterly,
    Annually,
}

fn name_of<T: Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// One rate tier: the whole balance earns the rate of the highest tier it reaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateTierDefinition {
    #[schema(schema_with = decimal_schema)]
    pub from_balance: DecimalText,
    /// A yearly rate as a fraction: `0.0125` is 1.25%.
    #[schema(schema_with = decimal_schema)]
    pub annual_rate: DecimalText,
}

/// A modern product as an operator proposes it: a new code, or the next version of one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductDefinition {
    #[schema(schema_with = code_schema)]
    pub code: ProductCode,
    #[schema(schema_with = name_schema)]
    pub name: ProductName,
    pub kind: ProductKind,
    #[schema(value_type = crate::openapi::formats::CurrencyCode)]
    pub currency: String,
    /// None: one tier of 0 from 0.
    #[serde(default)]
    #[schema(max_items = 20)]
    pub rate_tiers: Vec<RateTierDefinition>,
    pub day_count: DayCount,
    pub posting_frequency: PostingFrequency,
    /// Absent: 0.
    #[serde(default)]
    #[schema(schema_with = optional_decimal_schema)]
    pub minimum_balance: Option<DecimalText>,
    /// Absent: 0 (no overdraft).
    #[serde(default)]
    #[schema(schema_with = optional_decimal_schema)]
    pub overdraft_limit: Option<DecimalText>,
    /// The yearly rate charged on an overdrawn balance, as a fraction. Absent: 0.
    #[serde(default)]
    #[schema(schema_with = optional_decimal_schema)]
    pub overdraft_rate: Option<DecimalText>,
    /// Days without a customer movement before the account is dormant; 0 or absent: never.
    #[serde(default, deserialize_with = "crate::json_integer::integer")]
    #[schema(minimum = 0, maximum = 36_500)]
    pub dormancy_days: u32,
    /// The most one transfer out of an account may move; absent: no limit.
    #[serde(default)]
    #[schema(schema_with = optional_decimal_schema)]
    pub per_transfer_limit: Option<DecimalText>,
    /// The most transfers out of an account may move in one business day; absent: no limit.
    #[serde(default)]
    #[schema(schema_with = optional_decimal_schema)]
    pub daily_transfer_limit: Option<DecimalText>,
}

/// The most days of dormancy a definition may name (a hundred years).
pub const DORMANCY_DAYS_MAX: u32 = 36_500;

impl ProductDefinition {
    /// What the admin API refuses as malformed beyond the types: too many tiers, too long a
    /// dormancy.
    pub fn check(&self) -> Result<(), String> {
        if corebank_kernel::Currency::from_code(&self.currency).is_err() {
            return Err(format!("currency {:?}: an ISO 4217 code", self.currency));
        }
        if self.rate_tiers.len() > RATE_TIERS_MAX {
            return Err(format!("rate_tiers: at most {RATE_TIERS_MAX}"));
        }
        if self.dormancy_days > DORMANCY_DAYS_MAX {
            return Err(format!("dormancy_days: at most {DORMANCY_DAYS_MAX}"));
        }
        Ok(())
    }

    /// Deposits' `CreateProduct` for it; `validate_only` asks without storing.
    pub fn request(&self, validate_only: bool) -> pb::CreateProductRequest {
        let text = |value: &Option<DecimalText>| {
            value
                .as_ref()
                .map(|value| value.as_str().to_owned())
                .unwrap_or_default()
        };
        pb::CreateProductRequest {
            code: self.code.0.clone(),
            name: self.name.0.clone(),
            kind: name_of(self.kind),
            currency: self.currency.clone(),
            rate_tiers: self
                .rate_tiers
                .iter()
                .map(|tier| pb::RateTier {
                    from_balance: tier.from_balance.0.clone(),
                    annual_rate: tier.annual_rate.0.clone(),
                })
                .collect(),
            day_count: name_of(self.day_count),
            posting_frequency: name_of(self.posting_frequency),
            minimum_balance: text(&self.minimum_balance),
            overdraft_limit: text(&self.overdraft_limit),
            overdraft_rate: text(&self.overdraft_rate),
            dormancy_days: self.dormancy_days,
            per_transfer_limit: text(&self.per_transfer_limit),
            daily_transfer_limit: text(&self.daily_transfer_limit),
            validate_only,
        }
    }
}

/// One rate tier as a side states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RateTierView {
    pub from_balance: String,
    pub annual_rate: String,
}

/// How a product pays interest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct InterestView {
    pub rate_tiers: Vec<RateTierView>,
    pub day_count: String,
    pub posting_frequency: String,
}

/// What a product lets a balance do: stay above a minimum or go below zero to a limit, and
/// after how many quiet days the account turns dormant (0: never).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BalanceRulesView {
    pub minimum_balance: String,
    pub overdraft_limit: String,
    pub overdraft_rate: String,
    pub dormancy_days: u32,
}

/// The limits payments applies to transfers out of an account; absent: no limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct TransferLimitsView {
    pub per_transfer: Option<String>,
    pub daily: Option<String>,
}

/// A product version as one side's catalogue holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ProductView {
    pub code: String,
    pub version: i64,
    pub name: String,
    pub kind: String,
    pub currency: String,
    pub interest: InterestView,
    pub balance_rules: BalanceRulesView,
    pub transfer_limits: TransferLimitsView,
    /// When this version was written (RFC 3339).
    pub created_at: String,
}

impl From<&pb::Product> for ProductView {
    fn from(product: &pb::Product) -> ProductView {
        let limit = |text: &str| (!text.trim().is_empty()).then(|| text.to_owned());
        let tier = |tier: &pb::RateTier| RateTierView {
            from_balance: tier.from_balance.clone(),
            annual_rate: tier.annual_rate.clone(),
        };
        ProductView {
            code: product.code.clone(),
            version: product.version,
            name: product.name.clone(),
            kind: product.kind.clone(),
            currency: product.currency.clone(),
            interest: InterestView {
                rate_tiers: product.rate_tiers.iter().map(tier).collect(),
                day_count: product.day_count.clone(),
                posting_frequency: product.posting_frequency.clone(),
            },
            balance_rules: BalanceRulesView {
                minimum_balance: product.minimum_balance.clone(),
                overdraft_limit: product.overdraft_limit.clone(),
                overdraft_rate: product.overdraft_rate.clone(),
                dormancy_days: product.dormancy_days,
            },
            transfer_limits: TransferLimitsView {
                per_transfer: limit(&product.per_transfer_limit),
                daily: limit(&product.daily_transfer_limit),
            },
            created_at: product.created_at.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_codes_and_names_are_read_as_the_schema_says() {
        assert!(DecimalText::parse("0.0125").is_some());
        assert!(DecimalText::parse("1500").is_some());
        for bad in ["", "-1", "1.", ".5", "1e3", "1,5", " 1", "1234567890123"] {
            assert!(DecimalText::parse(bad).is_none(), "{bad:?} was taken");
        }
        assert!(is_code("LEGACY-CURRENT"));
        assert!(!is_code("A B") && !is_code("") && !is_code(&"A".repeat(65)));
        let refused: Result<ProductName, _> = serde_json::from_str(r#""  ""#);
        assert!(refused.is_err());
    }

    #[test]
    fn a_definition_becomes_deposits_request_with_absent_values_empty() {
        let definition: ProductDefinition = serde_json::from_value(serde_json::json!({
            "code": "SAVER-1", "name": "Saver", "kind": "savings", "currency": "EUR",
            "rate_tiers": [{"from_balance": "0", "annual_rate": "0.01"}],
            "day_count": "act_act_isda", "posting_frequency": "quarterly",
            "daily_transfer_limit": "5000"
        }))
        .unwrap_or_else(|error| panic!("{error}"));
        let request = definition.request(true);
        assert_eq!(
            (
                request.kind.as_str(),
                request.day_count.as_str(),
                request.posting_frequency.as_str()
            ),
            ("savings", "act_act_isda", "quarterly")
        );
        assert_eq!(request.minimum_balance, "");
        assert_eq!(request.daily_transfer_limit, "5000");
        assert!(request.validate_only);
        let unknown: Result<ProductDefinition, _> = serde_json::from_value(serde_json::json!({
            "code": "X", "name": "X", "kind": "loan", "currency": "EUR",
            "day_count": "act_360", "posting_frequency": "monthly"
        }));
        assert!(unknown.is_err());
    }

    #[test]
    fn dormancy_written_as_a_whole_float_is_the_same_number_of_days() {
        let definition = |days: serde_json::Value| {
            serde_json::from_value::<ProductDefinition>(serde_json::json!({
                "code": "SAVER-1", "name": "Saver", "kind": "savings", "currency": "EUR",
                "day_count": "act_365_fixed", "posting_frequency": "monthly",
                "dormancy_days": days
            }))
        };
        let days = |value| definition(value).map(|product| product.dormancy_days).ok();
        assert_eq!(days(serde_json::json!(4605.0)), Some(4605));
        assert_eq!(days(serde_json::json!(730)), Some(730));
        assert_eq!(days(serde_json::json!(1.5)), None);
        assert_eq!(days(serde_json::json!(-1)), None);
    }
}
