//! The text form shared by the value types that travel as strings (currencies, idempotency
//! keys): parsed with `FromStr`, and with serde, through the same fallible constructor that
//! validates them everywhere else, and written as their `Display` text.

/// Implements `FromStr`, `Serialize` and `Deserialize` for `$name` as its text: `$parse`
/// (a `fn(&str) -> Result<$name, $error>`) reads it and `Display` writes it.
macro_rules! text_form {
    ($name:ty, $error:ty, $parse:path) => {
        impl ::std::str::FromStr for $name {
            type Err = $error;
            fn from_str(input: &str) -> Result<Self, Self::Err> {
                $parse(input)
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                $parse(&text).map_err(::serde::de::Error::custom)
            }
        }
    };
}
