//! Integers in request bodies as JSON has them: `5`, `5.0` and `5e0` are the same number, and
//! JSON Schema's `integer` (what the API reference says) admits all three; serde alone takes
//! only the first into an integer type. Fields use these with `deserialize_with`.

use serde::{Deserialize, Deserializer};

/// The largest integer an `f64` holds exactly (2^53): past it `5.0`-style integers are not
/// taken, as they may not be the number the client meant.
const F64_EXACT_MAX: f64 = 9_007_199_254_740_992.0;

fn integer_of<T: TryFrom<i64>, E: serde::de::Error>(number: &serde_json::Number) -> Result<T, E> {
    let whole = match number.as_i64() {
        Some(whole) => Some(whole),
        None => number
            .as_f64()
            .filter(|value| value.fract() == 0.0 && value.abs() <= F64_EXACT_MAX)
            .and_then(|value| format!("{value:.0}").parse::<i64>().ok()),
    };
    whole
        .and_then(|whole| T::try_from(whole).ok())
        .ok_or_else(|| {
            E::invalid_value(
                serde::de::Unexpected::Other(&number.to_string()),
                &"an integer in range",
            )
        })
}

/// An integer field.
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<i64>>(deserializer: D) -> Result<T, D::Error> {
    let number = serde_json::Number::deserialize(deserializer)?;
    integer_of(&number)
}

/// An optional integer field (`null` is absent); use with `#[serde(default)]`.
pub fn optional_integer<'de, D: Deserializer<'de>, T: TryFrom<i64>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(|number| integer_of::<T, D::Error>(&number))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "integer")]
        percent: u8,
        #[serde(default, deserialize_with = "optional_integer")]
        seconds: Option<u32>,
    }

    fn parse(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integers_written_as_whole_floats_are_the_same_integers() {
        let body = parse(r#"{"percent": 5.0, "seconds": 23484.0}"#).unwrap();
        assert_eq!((body.percent, body.seconds), (5, Some(23_484)));
        let body = parse(r#"{"percent": 1e2, "seconds": null}"#).unwrap();
        assert_eq!((body.percent, body.seconds), (100, None));
        assert_eq!(parse(r#"{"percent": 7}"#).unwrap().seconds, None);
    }

    #[test]
    fn fractions_and_numbers_out_of_range_are_refused() {
        for text in [
            r#"{"percent": 5.5}"#,
            r#"{"percent": 256}"#,
            r#"{"percent": -1}"#,
            r#"{"percent": 1, "seconds": 4294967296}"#,
            r#"{"percent": 1, "seconds": 1e300}"#,
            r#"{"percent": "5"}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
