//! What every application shares: the answer it builds, the refusals it makes (with the
//! stable error texts of the README), and reading a request's fields with their formats.

use chrono::NaiveDate;
use corebank_db::TxError;
use rust_decimal::Decimal;

use corebank_legacy_ofs::formats;
use corebank_legacy_ofs::{Field, Function, Indicator, POSITION_MAX, Request};

/// The longest value any field may carry.
pub(crate) const VALUE_CHARS_MAX: usize = 256;
/// The largest amount the core takes (its columns hold more; this keeps sums far from any
/// limit).
pub(crate) const AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0);

/// An answer before it is written: the id, the indicator and the fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    pub id: String,
    pub indicator: Indicator,
    pub fields: Vec<Field>,
}

impl Answer {
    pub(crate) fn done(id: impl Into<String>, fields: Vec<Field>) -> Answer {
        Answer {
            id: id.into(),
            indicator: Indicator::Done,
            fields,
        }
    }

    pub(crate) fn error(id: impl Into<String>, field: &str, text: impl Into<String>) -> Answer {
        Answer {
            id: id.into(),
            indicator: Indicator::Error,
            fields: vec![Field::new(field, text)],
        }
    }
}

/// Why a transaction body stopped (it is rolled back in every case).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reject {
    /// `-1`: the text stands in place of the field's value.
    Field { field: String, text: String },
    /// `-2`: a warning the caller must accept.
    Override { text: String },
    /// `PROCESS=VALIDATE`: the checks passed; this is what would have been answered.
    Validated(Answer),
    /// Stored data breaks an invariant: answered as a system error and logged.
    Corrupt(String),
}

pub(crate) type Outcome<T> = Result<T, TxError<Reject>>;

/// The answer of an application whose records are input and seen, never authorised,
/// reversed or deleted: `input` carries out an Input; a See answers the record `record`
/// finds, or RECORD NOT FOUND. Neither runs unless the request's function asks for it.
pub(crate) async fn input_or_see(
    request: &Request,
    input: impl Future<Output = Outcome<Answer>>,
    record: impl Future<Output = Outcome<Option<Vec<Field>>>>,
) -> Outcome<Answer> {
    match request.function {
        Function::Input => input.await,
        Function::See => {
            Input::check(&request.fields, &[], &[])?;
            let fields = record
                .await?
                .ok_or_else(|| refuse("ID", "RECORD NOT FOUND"))?;
            Ok(Answer::done(request.transaction_id.as_str(), fields))
        }
        Function::Authorise | Function::Reverse | Function::Delete => {
            Err(refuse("FUNCTION", "FUNCTION NOT ALLOWED"))
        }
    }
}

/// A `-1` refusal of `field` with `text`.
pub(crate) fn refuse(field: &str, text: impl Into<String>) -> TxError<Reject> {
    TxError::Abort(Reject::Field {
        field: field.to_owned(),
        text: text.into(),
    })
}

pub(crate) fn corrupt(what: impl Into<String>) -> TxError<Reject> {
    TxError::Abort(Reject::Corrupt(what.into()))
}

/// An amount as the core writes it: two decimals.
pub(crate) fn amount_text(amount: Decimal) -> String {
    if amount.is_zero() {
        return "0.00".to_owned();
    }
    let mut rounded = amount.round_dp(2);
    rounded.rescale(2);
    rounded.to_string()
}

pub(crate) fn date_text(date: Option<NaiveDate>) -> String {
    date.map(formats::legacy_date).unwrap_or_default()
}

/// A 1-based position, capped at the protocol's highest.
pub(crate) fn position(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(POSITION_MAX).min(POSITION_MAX)
}

/// The fields of an answer, in order.
#[derive(Debug, Default)]
pub(crate) struct Record(pub Vec<Field>);

impl Record {
    pub(crate) fn field(&mut self, name: &str, value: impl Into<String>) -> &mut Record {
        self.0.push(Field::new(name, value));
        self
    }

    pub(crate) fn multi(&mut self, name: &str, n: usize, value: impl Into<String>) -> &mut Record {
        self.sub(name, n, 1, value)
    }

    pub(crate) fn sub(
        &mut self,
        name: &str,
        n: usize,
        s: usize,
        value: impl Into<String>,
    ) -> &mut Record {
        self.0.push(Field {
            name: name.to_owned(),
            multi_value: position(n),
            sub_value: position(s),
            value: value.into(),
        });
        self
    }

    pub(crate) fn into_fields(self) -> Vec<Field> {
        self.0
    }
}

/// A request's fields, checked against what the application allows.
#[derive(Debug)]
pub(crate) struct Input<'r> {
    fields: &'r [Field],
}

impl<'r> Input<'r> {
    /// Refuses a field not in `single` or `multi` (`FIELD NOT ALLOWED`), a single-valued
    /// field at another position than 1:1, a position given twice, or a value that is too
    /// long (`INVALID VALUE`).
    pub(crate) fn check(
        fields: &'r [Field],
        single: &[&str],
        multi: &[&str],
    ) -> Outcome<Input<'r>> {
        for (index, field) in fields.iter().enumerate() {
            let is_single = single.contains(&field.name.as_str());
            let is_multi = multi.contains(&field.name.as_str());
            if !is_single && !is_multi {
                return Err(refuse(&field.name, "FIELD NOT ALLOWED"));
            }
            if is_single && (field.multi_value != 1 || field.sub_value != 1) {
                return Err(refuse(&field.name, "INVALID VALUE"));
            }
            if is_multi && field.sub_value != 1 {
                return Err(refuse(&field.name, "INVALID VALUE"));
            }
            if field.value.chars().count() > VALUE_CHARS_MAX {
                return Err(refuse(&field.name, "INVALID VALUE"));
            }
            let repeated = fields[..index].iter().any(|earlier| {
                earlier.name == field.name
                    && earlier.multi_value == field.multi_value
                    && earlier.sub_value == field.sub_value
            });
            if repeated {
                return Err(refuse(&field.name, "INVALID VALUE"));
            }
        }
        Ok(Input { fields })
    }

    /// Whether the field was sent at all (even empty).
    pub(crate) fn given(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.name == name)
    }

    /// The value at 1:1, `None` when absent or empty.
    pub(crate) fn text(&self, name: &str) -> Option<&'r str> {
        self.fields
            .iter()
            .find(|f| f.name == name && f.multi_value == 1 && f.sub_value == 1)
            .map(|f| f.value.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn required(&self, name: &str) -> Outcome<&'r str> {
        self.text(name)
            .ok_or_else(|| refuse(name, "MANDATORY INPUT"))
    }

    /// The multi-values of a field in order of position, empty ones left out.
    pub(crate) fn lines(&self, name: &str) -> Vec<String> {
        let mut values: Vec<&Field> = self
            .fields
            .iter()
            .filter(|f| f.name == name && !f.value.is_empty())
            .collect();
        values.sort_by_key(|f| f.multi_value);
        values.into_iter().map(|f| f.value.clone()).collect()
    }

    /// A positive two-decimal amount, at most [`AMOUNT_MAX`].
    pub(crate) fn amount(&self, name: &str) -> Outcome<Option<Decimal>> {
        let Some(text) = self.text(name) else {
            return Ok(None);
        };
        match formats::parse_legacy_amount(text) {
            Ok(amount) if amount > Decimal::ZERO && amount <= AMOUNT_MAX => Ok(Some(amount)),
            _ => Err(refuse(name, "INVALID AMOUNT")),
        }
    }

    pub(crate) fn required_amount(&self, name: &str) -> Outcome<Decimal> {
        self.amount(name)?
            .ok_or_else(|| refuse(name, "MANDATORY INPUT"))
    }

    pub(crate) fn date(&self, name: &str) -> Outcome<Option<NaiveDate>> {
        self.text(name)
            .map(|text| formats::parse_legacy_date(text).map_err(|_| refuse(name, "INVALID DATE")))
            .transpose()
    }

    /// The text of `name` when `check` accepts it, else refused with `refusal`.
    fn checked<T, E>(
        &self,
        name: &str,
        check: fn(&str) -> Result<T, E>,
        refusal: &str,
    ) -> Outcome<Option<String>> {
        self.text(name)
            .map(|text| {
                check(text)
                    .map(|_| text.to_owned())
                    .map_err(|_| refuse(name, refusal))
            })
            .transpose()
    }

    /// A well-formed account number (its existence is checked by the caller).
    pub(crate) fn account(&self, name: &str) -> Outcome<Option<String>> {
        self.checked(
            name,
            formats::parse_account_number,
            "INVALID ACCOUNT NUMBER",
        )
    }

    pub(crate) fn required_account(&self, name: &str) -> Outcome<String> {
        self.account(name)?
            .ok_or_else(|| refuse(name, "MANDATORY INPUT"))
    }

    pub(crate) fn customer(&self, name: &str) -> Outcome<Option<String>> {
        self.checked(
            name,
            formats::parse_customer_number,
            "INVALID CUSTOMER NUMBER",
        )
    }
}

/// `prefix` followed by 1-32 of `A-Z 0-9`: a caller-assigned id.
pub(crate) fn is_caller_id(id: &str, prefix: &str) -> bool {
    id.strip_prefix(prefix).is_some_and(|rest| {
        (1..=32).contains(&rest.len())
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    })
}

/// 1 to `max` characters, each allowed by `allowed`.
pub(crate) fn is_code(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> bool {
    (1..=max).contains(&text.chars().count()) && text.chars().all(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_written_with_two_decimals() {
        assert_eq!(amount_text(Decimal::new(15, 0)), "15.00");
        assert_eq!(amount_text(Decimal::new(-310, 2)), "-3.10");
        assert_eq!(amount_text(Decimal::new(0, 2)), "0.00");
        assert_eq!(amount_text(-Decimal::new(0, 2)), "0.00");
        assert!(is_caller_id("FT12AB", "FT"));
        assert!(!is_caller_id("FT", "FT"));
        assert!(!is_caller_id("FTab", "FT"));
    }
}
