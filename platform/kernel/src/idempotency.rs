//! `IdempotencyKey`: the client-chosen key that makes a mutating call safe to retry. One rule
//! set for the whole bank: the gateway's `Idempotency-Key` header is parsed with it, and its
//! codes are the ones the gateway's OpenAPI document publishes. (Request ids inside the bank,
//! which the gateway derives from the key, are typed UUIDv4 ids: see [`crate::id`].)

use std::fmt;

/// A validated idempotency key: 1 to 255 printable ASCII characters (`!` to `~`: no space,
/// no control character, nothing outside ASCII).
///
/// These are the rules the gateway has published for its `Idempotency-Key` header since the
/// start, so no client's key is refused that was accepted before; printable ASCII is safe
/// in a header and in a log line, and keys reach SQL only as parameters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdempotencyKey(String);

/// Why an idempotency key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyKeyError {
    #[error("idempotency key is empty; send a unique key per operation, such as a UUID")]
    Empty,
    #[error(
        "idempotency key is {length} characters long; at most {} are allowed",
        IdempotencyKey::LENGTH_MAX
    )]
    TooLong { length: usize },
    #[error(
        "idempotency key has the character {character:?} at position {position}; \
         only printable ASCII characters ('!' to '~') are allowed"
    )]
    BadCharacter { character: char, position: usize },
}

impl IdempotencyKeyError {
    /// The stable, machine-readable code of this error: the codes the gateway publishes
    /// (a missing or empty key is `idempotency_key_required`, any other fault
    /// `invalid_idempotency_key`); the message says which fault it is.
    pub fn code(&self) -> &'static str {
        match self {
            IdempotencyKeyError::Empty => "idempotency_key_required",
            IdempotencyKeyError::TooLong { .. } | IdempotencyKeyError::BadCharacter { .. } => {
                "invalid_idempotency_key"
            }
        }
    }
}

impl IdempotencyKey {
    pub const LENGTH_MAX: usize = 255;

    pub fn parse(input: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        if input.is_empty() {
            return Err(IdempotencyKeyError::Empty);
        }
        let length = input.chars().count();
        if length > Self::LENGTH_MAX {
            return Err(IdempotencyKeyError::TooLong { length });
        }
        if let Some((position, character)) = input
            .chars()
            .enumerate()
            .find(|(_, c)| !c.is_ascii_graphic())
        {
            return Err(IdempotencyKeyError::BadCharacter {
                character,
                position,
            });
        }
        Ok(IdempotencyKey(input.to_owned()))
    }

    /// The key for one step of a larger operation (a saga step), derived so that a retry of
    /// the same step produces the same key: `"{parent}:{step}"`.
    pub fn derive(&self, step: &str) -> Result<IdempotencyKey, IdempotencyKeyError> {
        IdempotencyKey::parse(&format!("{}:{step}", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdempotencyKey({})", self.0)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

text_form!(IdempotencyKey, IdempotencyKeyError, IdempotencyKey::parse);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_outside_the_rules_are_refused_with_a_code() {
        assert_eq!(
            IdempotencyKey::parse("").unwrap_err().code(),
            "idempotency_key_required"
        );
        let long = "a".repeat(256);
        assert_eq!(
            IdempotencyKey::parse(&long).unwrap_err().code(),
            "invalid_idempotency_key"
        );
        assert!(IdempotencyKey::parse(&"a".repeat(255)).is_ok());
        let error = IdempotencyKey::parse("pay ment").unwrap_err();
        assert_eq!(error.code(), "invalid_idempotency_key");
        assert!(error.to_string().contains("position 3"));
        for bad in ["tab\there", "caf\u{e9}", " leading", "nul\u{0}"] {
            assert_eq!(
                IdempotencyKey::parse(bad).unwrap_err().code(),
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_the_gateway_always_accepted_are_accepted() {
        for key in [
            "3f0e8d5c-5b7a-4c1e-9a57-2f1d0c8b9e61",
            "order/2026/42",
            "base64+key/with==",
            "a",
            "{\"json\":1}",
        ] {
            assert_eq!(IdempotencyKey::parse(key).unwrap().as_str(), key);
        }
    }

    #[test]
    fn derived_keys_are_stable_per_step() {
        let key = IdempotencyKey::parse("saga-7").unwrap();
        assert_eq!(key.derive("debit").unwrap(), key.derive("debit").unwrap());
        assert_ne!(key.derive("debit").unwrap(), key.derive("credit").unwrap());
        assert_eq!(key.derive("debit").unwrap().as_str(), "saga-7:debit");
    }

    proptest! {
        #[test]
        fn keys_from_the_allowed_alphabet_are_accepted(input in "[!-~]{1,255}") {
            let key = IdempotencyKey::parse(&input).unwrap();
            prop_assert_eq!(key.as_str(), input.as_str());
        }

        #[test]
        fn any_string_is_accepted_only_if_it_follows_the_rules(input in "\\PC{0,260}") {
            let valid = !input.is_empty()
                && input.chars().count() <= 255
                && input.chars().all(|c| c.is_ascii_graphic());
            prop_assert_eq!(IdempotencyKey::parse(&input).is_ok(), valid);
        }
    }
}
