//! The request bodies of `/admin/v1/routes`: serde types that are also the API reference's
//! schemas (one set of types, so the document cannot drift from what is parsed), and their
//! checks beyond the JSON's shape. A refusal names the field by its path in the body
//! (`rules[3].canary.percent: …`).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use utoipa::openapi::schema::{ObjectBuilder, Type};

use super::store::OwnershipChange;
use super::table::{self, Canary, RouteRule, Side};
use crate::error::ApiError;
use crate::openapi::formats;

/// Rules in one proposal at most.
const PROPOSAL_RULES_MAX: usize = 1_000;
/// Ownership changes in one proposal at most.
const PROPOSAL_OWNERSHIP_CHANGES_MAX: usize = 10_000;
/// A reason is at most this long.
const REASON_LENGTH_MAX: usize = 2_000;

/// A canary: this share of the product's accounts goes to `side`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryBody {
    pub side: Side,
    /// 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    #[serde(deserialize_with = "crate::json_integer::integer")]
    pub percent: u8,
}

/// One rule: where a product's operation goes.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRuleBody {
    /// A product code, or `*` for every product without a rule of its own.
    #[schema(schema_with = identifier)]
    pub product: String,
    #[schema(value_type = RouteOperation)]
    pub operation: String,
    pub default_side: Side,
    #[serde(default)]
    pub canary: Option<CanaryBody>,
    /// The canary bucket's salt; `{product}:{operation}` when absent.
    #[serde(default)]
    #[schema(schema_with = salt)]
    pub salt: Option<String>,
    /// Whether the other side gets a shadow copy to compare; false when absent.
    #[serde(default)]
    pub shadow: Option<bool>,
}

/// One account's owner: `side` to pin it there, absent to unpin it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OwnershipBody {
    #[schema(schema_with = identifier)]
    pub account_id: String,
    #[serde(default)]
    pub side: Option<Side>,
}

/// `POST /admin/v1/routes/proposals`: the whole rule set, ownership changes, or both.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteProposalBody {
    /// The complete new rule set (at most 1000 rules); unchanged when absent.
    #[serde(default)]
    pub rules: Option<Vec<RouteRuleBody>>,
    /// At most 10000 changes.
    #[serde(default)]
    pub ownership: Option<Vec<OwnershipBody>>,
    /// When to activate on approval (RFC 3339); at once when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activate_at: Option<String>,
    #[serde(default)]
    #[schema(required = true, schema_with = required_reason_schema)]
    pub reason: Option<String>,
    /// The version this change was written against: 409 `stale_proposal` if it is no
    /// longer active.
    #[serde(default, deserialize_with = "crate::json_integer::optional_integer")]
    pub base_version: Option<i64>,
}

/// `POST /admin/v1/routes/rollback`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRollbackBody {
    /// An earlier version than the active one.
    #[serde(default, deserialize_with = "crate::json_integer::optional_integer")]
    #[schema(required = true, value_type = i64)]
    pub to_version: Option<i64>,
    #[serde(default)]
    #[schema(required = true, schema_with = required_reason_schema)]
    pub reason: Option<String>,
    /// When to activate on approval (RFC 3339); at once when absent.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub activate_at: Option<String>,
}

/// An approval's or a rejection's note.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteDecisionBody {
    #[serde(default)]
    #[schema(schema_with = optional_reason_schema)]
    pub reason: Option<String>,
}

// The bodies' schemas for what the checks below refuse, built from the same limits.

/// A product code or an account id of the ownership table ([`table::validate_rule`],
/// [`table::validate_account_id`]).
fn identifier() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(table::IDENTIFIER_LENGTH_MAX))
        .pattern(Some(formats::no_whitespace_pattern()))
}

crate::string_enum_schema!(
    /// An operation a route rule names.
    RouteOperation,
    table::OPERATIONS.iter().copied()
);

fn salt() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(formats::string_or_null())
        .min_length(Some(1))
        .max_length(Some(table::IDENTIFIER_LENGTH_MAX))
}

fn required_reason_schema() -> ObjectBuilder {
    formats::text(REASON_LENGTH_MAX).description(Some(format!(
        "1 to {REASON_LENGTH_MAX} characters, not blank."
    )))
}

fn optional_reason_schema() -> ObjectBuilder {
    required_reason_schema().schema_type(formats::string_or_null())
}

/// A JSON object of type `T` (an empty body is `{}`), or a refusal naming the field by its
/// path: `rules[0].canary.percent: …`, `reason: required`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value = if body.is_empty() {
        serde_json::Value::Object(serde_json::Map::new())
    } else {
        serde_json::from_slice(body)
            .map_err(|error| ApiError::invalid(format!("body: not valid JSON: {error}")))?
    };
    if !value.is_object() {
        return Err(ApiError::invalid("body: must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let message = error.into_inner().to_string();
        let prefix = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
        match message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            Some(field) => ApiError::invalid(format!("{prefix}{field}: required")),
            None if path == "." => ApiError::invalid(format!("body: {message}")),
            None => ApiError::invalid(format!("{path}: {message}")),
        }
    })
}

/// A reason given: 1 to 2000 characters.
pub fn reason(reason: Option<String>) -> Result<Option<String>, ApiError> {
    match reason {
        Some(reason) if reason.trim().is_empty() || reason.chars().count() > REASON_LENGTH_MAX => {
            Err(ApiError::invalid(format!(
                "reason: must be 1 to {REASON_LENGTH_MAX} characters"
            )))
        }
        other => Ok(other),
    }
}

/// A reason that must be given.
pub fn required_reason(given: Option<String>) -> Result<String, ApiError> {
    reason(given)?.ok_or_else(|| ApiError::invalid("reason: required"))
}

/// `activate_at`, an RFC 3339 time.
pub fn activate_at(text: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    text.map(|text| {
        DateTime::parse_from_rfc3339(text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|error| {
                ApiError::invalid(format!("activate_at: not an RFC 3339 time: {error}"))
            })
    })
    .transpose()
}

fn invalid(error: table::InvalidRoute) -> ApiError {
    match error.inconsistency {
        Some(code) => ApiError::new(
            axum::http::StatusCode::UNPROCESSABLE_ENTITY,
            code,
            error.to_string(),
        ),
        None => ApiError::invalid(error.to_string()),
    }
}

impl RouteRuleBody {
    fn rule(self, path: &str) -> Result<RouteRule, ApiError> {
        let canary = self
            .canary
            .map(|canary| {
                if canary.percent > 100 {
                    return Err(ApiError::invalid(format!(
                        "{path}.canary.percent: must be an integer from 0 to 100"
                    )));
                }
                Ok(Canary {
                    side: canary.side,
                    percent: canary.percent,
                })
            })
            .transpose()?;
        // The default salt is stable, so re-proposing a rule keeps its canary accounts.
        let salt = self
            .salt
            .unwrap_or_else(|| format!("{}:{}", self.product, self.operation));
        Ok(RouteRule {
            product: self.product,
            operation: self.operation,
            default_side: self.default_side,
            canary,
            salt,
            shadow: self.shadow.unwrap_or(false),
        })
    }
}

/// The rule set of a proposal, checked as a whole (at most 1000, one rule per product and
/// operation).
pub fn rules(given: Option<Vec<RouteRuleBody>>) -> Result<Option<Vec<RouteRule>>, ApiError> {
    let Some(given) = given else {
        return Ok(None);
    };
    if given.len() > PROPOSAL_RULES_MAX {
        return Err(ApiError::invalid(format!(
            "rules: at most {PROPOSAL_RULES_MAX}"
        )));
    }
    let rules = given
        .into_iter()
        .enumerate()
        .map(|(index, rule)| rule.rule(&format!("rules[{index}]")))
        .collect::<Result<Vec<_>, _>>()?;
    table::validate_rules(&rules).map_err(invalid)?;
    Ok(Some(rules))
}

/// The ownership changes of a proposal: each account once, with a valid id.
pub fn ownership(given: Option<Vec<OwnershipBody>>) -> Result<Vec<OwnershipChange>, ApiError> {
    let given = given.unwrap_or_default();
    if given.len() > PROPOSAL_OWNERSHIP_CHANGES_MAX {
        return Err(ApiError::invalid(format!(
            "ownership: at most {PROPOSAL_OWNERSHIP_CHANGES_MAX} changes"
        )));
    }
    let mut seen = HashSet::with_capacity(given.len());
    given
        .into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let path = format!("ownership[{index}].account_id");
            table::validate_account_id(&entry.account_id, &path).map_err(invalid)?;
            // Well formed, each entry alone: the proposal as a whole cannot be carried out
            // (422), which no schema of the body can say.
            if !seen.insert(entry.account_id.clone()) {
                return Err(ApiError::new(
                    axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "duplicate_ownership_change",
                    format!("{path}: account {:?} appears twice", entry.account_id),
                ));
            }
            Ok(OwnershipChange {
                account_id: entry.account_id,
                side: entry.side,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal<T: DeserializeOwned + std::fmt::Debug>(body: &str) -> String {
        parse::<T>(body.as_bytes()).unwrap_err().message
    }

    #[test]
    fn refusals_name_the_field_by_its_path() {
        let rule = r#"{"product":"P","operation":"cash","default_side":"legacy"}"#;
        for (body, starts) in [
            ("[1]", "body: must be a JSON object"),
            ("{", "body: not valid JSON"),
            (r#"{"reason":"r"} x"#, "body: not valid JSON"),
            (r#"{"reason":"r","extra":1}"#, "extra: unknown field"),
            (
                r#"{"rules":[{"operation":"cash","default_side":"legacy"}]}"#,
                "rules[0].product: required",
            ),
            (
                r#"{"rules":[{"product":"P","operation":"cash","default_side":"sideways"}]}"#,
                "rules[0].default_side: unknown variant",
            ),
            (
                &format!(
                    r#"{{"rules":[{rule},{{"product":"P","operation":"cash","default_side":"legacy","canary":{{"side":"modern","percent":300}}}}]}}"#
                ),
                "rules[1].canary.percent: invalid value",
            ),
            (r#"{"base_version":"x"}"#, "base_version: invalid type"),
        ] {
            let message = refusal::<RouteProposalBody>(body);
            assert!(message.starts_with(starts), "{body}: {message}");
        }
        assert!(parse::<RouteDecisionBody>(b"").unwrap().reason.is_none());
    }

    #[test]
    fn checks_beyond_the_shape_name_the_field_too() {
        let body: RouteProposalBody = parse(
            br#"{"rules":[{"product":"P","operation":"cash","default_side":"legacy","canary":{"side":"modern","percent":101}}]}"#,
        )
        .unwrap();
        let error = rules(body.rules).unwrap_err();
        assert!(
            error.message.starts_with("rules[0].canary.percent"),
            "{}",
            error.message
        );
        assert_eq!(
            required_reason(None).unwrap_err().message,
            "reason: required"
        );
        assert!(required_reason(Some(" ".into())).is_err());
        let twice: RouteProposalBody =
            parse(br#"{"ownership":[{"account_id":"a","side":"modern"},{"account_id":"a"}]}"#)
                .unwrap();
        let error = ownership(twice.ownership).unwrap_err();
        assert!(
            error.message.starts_with("ownership[1].account_id"),
            "{}",
            error.message
        );
    }
}
