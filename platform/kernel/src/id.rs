//! Typed UUIDv4 identifiers, so that an account id can never be passed where a journal entry
//! id is expected.
//!
//! Random (version 4) UUIDs are the only kind accepted: they spread writes across
//! CockroachDB ranges, where time-ordered ids would make one range hot.

use uuid::Uuid;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error(
        "{kind} {input:?} is not a UUID: write it like \"3f0e8d5c-5b7a-4c1e-9a57-2f1d0c8b9e61\""
    )]
    Malformed { kind: &'static str, input: String },
    #[error("{kind} {input} is not a random (version 4) UUID; generate ids with UUIDv4")]
    NotVersion4 { kind: &'static str, input: String },
}

impl IdError {
    /// The stable, machine-readable code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            IdError::Malformed { .. } => "invalid_id",
            IdError::NotVersion4 { .. } => "id_not_uuid_v4",
        }
    }
}

/// Checks that a UUID is a random version-4 UUID; `kind` names the id in the error.
pub fn require_v4(kind: &'static str, uuid: Uuid) -> Result<Uuid, IdError> {
    if uuid.get_version() == Some(uuid::Version::Random)
        && uuid.get_variant() == uuid::Variant::RFC4122
    {
        Ok(uuid)
    } else {
        Err(IdError::NotVersion4 {
            kind,
            input: uuid.to_string(),
        })
    }
}

/// Parses a UUIDv4 from text; `kind` names the id in the error.
pub fn parse_v4(kind: &'static str, input: &str) -> Result<Uuid, IdError> {
    let uuid = Uuid::try_parse(input).map_err(|_| IdError::Malformed {
        kind,
        input: input.chars().take(64).collect(),
    })?;
    require_v4(kind, uuid)
}

/// Declares a typed id: a newtype over a UUIDv4 with parsing, display and serde as a string.
#[macro_export]
macro_rules! typed_id {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(::uuid::Uuid);

        impl $name {
            /// The name of this kind of id, as used in error messages.
            pub const KIND: &'static str = $kind;

            /// A fresh random id.
            pub fn generate() -> Self {
                Self(::uuid::Uuid::new_v4())
            }

            /// The id for this UUID, refused unless it is a version-4 UUID.
            pub fn from_uuid(uuid: ::uuid::Uuid) -> Result<Self, $crate::id::IdError> {
                $crate::id::require_v4($kind, uuid).map(Self)
            }

            /// Parses the id from its hyphenated text form.
            pub fn parse(input: &str) -> Result<Self, $crate::id::IdError> {
                $crate::id::parse_v4($kind, input).map(Self)
            }

            pub fn as_uuid(&self) -> ::uuid::Uuid {
                self.0
            }
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                ::std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::id::IdError;
            fn from_str(input: &str) -> Result<Self, Self::Err> {
                Self::parse(input)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(&self.0)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// A ledger account.
    AccountId,
    "account id"
);
typed_id!(
    /// A journal entry; chosen by the client, it is also the entry's idempotency key.
    JournalEntryId,
    "journal entry id"
);
typed_id!(
    /// A transfer: the two-leg journal entry.
    TransferId,
    "transfer id"
);
typed_id!(
    /// A saga instance.
    SagaId,
    "saga id"
);
typed_id!(
    /// An event written to an outbox.
    EventId,
    "event id"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_are_version_4_and_round_trip_through_text() {
        let id = AccountId::generate();
        assert_eq!(id.as_uuid().get_version_num(), 4);
        assert_eq!(AccountId::parse(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn an_id_that_is_not_a_uuid_is_refused_naming_its_kind() {
        let error = AccountId::parse("acct-1").unwrap_err();
        assert_eq!(error.code(), "invalid_id");
        assert!(error.to_string().starts_with("account id"));
    }

    #[test]
    fn non_random_uuids_are_refused() {
        let nil = AccountId::parse("00000000-0000-0000-0000-000000000000").unwrap_err();
        assert_eq!(nil.code(), "id_not_uuid_v4");
        let version_7 = JournalEntryId::parse("018f3a5e-8d1c-7b2a-9c3d-4e5f6a7b8c9d").unwrap_err();
        assert_eq!(version_7.code(), "id_not_uuid_v4");
    }

    #[test]
    fn ids_are_json_strings() {
        let id = SagaId::generate();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<SagaId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<SagaId>("\"nope\"").is_err());
    }

    proptest! {
        #[test]
        fn any_random_uuid_is_accepted(bytes in proptest::array::uniform16(any::<u8>())) {
            let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
            prop_assert_eq!(TransferId::from_uuid(uuid).unwrap().as_uuid(), uuid);
        }
    }
}
