//! The formats of the values the API takes, for the API reference, each built from the rule
//! the server applies so that the document cannot drift from the checks: amounts (the
//! kernel's decimal syntax, at most [`Money::INTEGER_DIGITS_MAX`] integer digits and the
//! currency's minor units), currencies (the kernel's ISO 4217 table), and text that must not
//! be blank or hold whitespace (Rust's `char::is_whitespace`, which the server's checks use).
//!
//! A schema-valid request is one the server takes as well formed: what it may still refuse
//! is a business matter (an unknown account, insufficient funds), answered 404 or 422.

use std::borrow::Cow;

use corebank_kernel::{Currency, Money};
use utoipa::openapi::schema::{
    AllOfBuilder, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::{KnownFormat, Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// The schema names of the formats below.
pub const AMOUNT_SCHEMA: &str = "Amount";
pub const CURRENCY_SCHEMA: &str = "Currency";
pub const AMOUNT_IN_CURRENCY_SCHEMA: &str = "AmountInCurrency";

/// The most decimals any currency the kernel knows allows (CLF, UYW).
const MINOR_UNITS_MAX: u32 = 4;

/// Unicode's White_Space, which `char::is_whitespace` (and so `str::trim`) follows, as
/// inclusive ranges. Spelled out rather than written `\s`: `\s` means another set in ECMA 262
/// (it adds U+FEFF) and in Python (it adds U+001C to U+001F), the two engines clients and
/// fuzzers check patterns with.
const WHITESPACE: &[(char, char)] = &[
    ('\u{9}', '\u{d}'),
    (' ', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

fn escaped(c: char) -> String {
    format!("\\u{:04X}", u32::from(c))
}

/// The whitespace ranges as the inside of a regex character class.
fn whitespace_class() -> String {
    WHITESPACE
        .iter()
        .map(|(first, last)| {
            if first == last {
                escaped(*first)
            } else {
                format!("{}-{}", escaped(*first), escaped(*last))
            }
        })
        .collect()
}

/// U+0000 (NUL), which no text the API takes may hold ([`crate::nul_text`]).
const NUL: &str = "\\u0000";

/// The pattern of any text the API takes: no NUL.
pub fn no_nul_pattern() -> String {
    format!("^[^{NUL}]*$")
}

/// The pattern of text that is not blank: some character that is not whitespace, and no NUL.
pub fn not_blank_pattern() -> String {
    format!("^[^{NUL}]*[^{}{NUL}][^{NUL}]*$", whitespace_class())
}

/// The pattern of text without any whitespace (nor NUL).
pub fn no_whitespace_pattern() -> String {
    format!("^[^{}{NUL}]*$", whitespace_class())
}

/// Gives every string schema under `schema` that says nothing of its content (no pattern,
/// enum or format) the [`no_nul_pattern`].
pub fn forbid_nul(schema: &mut RefOr<Schema>) {
    let RefOr::T(schema) = schema else {
        return;
    };
    match schema {
        Schema::Object(object) => {
            let is_string = match &object.schema_type {
                SchemaType::Type(Type::String) => true,
                SchemaType::Array(types) => types.contains(&Type::String),
                SchemaType::Type(_) | SchemaType::AnyValue => false,
            };
            if is_string
                && object.pattern.is_none()
                && object.enum_values.is_none()
                && object.format.is_none()
            {
                object.pattern = Some(no_nul_pattern());
            }
            for property in object.properties.values_mut() {
                forbid_nul(property);
            }
        }
        Schema::Array(array) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut array.items {
                forbid_nul(items);
            }
        }
        Schema::OneOf(one_of) => one_of.items.iter_mut().for_each(forbid_nul),
        Schema::AllOf(all_of) => all_of.items.iter_mut().for_each(forbid_nul),
        Schema::AnyOf(any_of) => any_of.items.iter_mut().for_each(forbid_nul),
        _ => {}
    }
}

/// Text that is not blank and has at most `characters_max` characters (the server counts
/// characters, as JSON Schema's `maxLength` does).
pub fn text(characters_max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(characters_max))
        .pattern(Some(not_blank_pattern()))
}

/// A string or `null` (an `Option` that serde reads `null` into as `None`): the string's
/// keywords (`pattern`, `maxLength`) apply to the string alone.
pub fn string_or_null() -> SchemaType {
    SchemaType::Array(vec![Type::String, Type::Null])
}

/// A schema type for a string that is one of the server's own list of names (an iterator of
/// `&str`): the list the server checks against is the one the document shows.
#[macro_export]
macro_rules! string_enum_schema {
    ($(#[$meta:meta])* $type:ident, $values:expr) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $type;

        impl utoipa::PartialSchema for $type {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some($values))
                    .into()
            }
        }

        impl utoipa::ToSchema for $type {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($type))
            }
        }
    };
}

/// An account's id: a UUID of version 4, as every id the platform makes is (the cores refuse
/// another version as malformed, `corebank_kernel::id::parse_v4`).
#[derive(Debug)]
pub struct AccountId;

impl PartialSchema for AccountId {
    fn schema() -> RefOr<Schema> {
        uuid()
            .pattern(Some(
                "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$",
            ))
            .description(Some("An account's id as the channel knows it: a UUID (version 4)."))
            .into()
    }
}

impl ToSchema for AccountId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AccountId")
    }
}

/// A UUID.
pub fn uuid() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
}

/// The fractional digits of a positive amount under one: `minor_units` digits at most, one
/// of them not zero (`05`, `5`, `50` for two).
fn nonzero_fraction(minor_units: u32) -> String {
    (0..minor_units)
        .map(|leading| {
            format!(
                "[0-9]{{{leading}}}[1-9][0-9]{{0,{}}}",
                minor_units - 1 - leading
            )
        })
        .collect::<Vec<_>>()
        .join("|")
}

/// A positive amount with at most `minor_units` decimals and
/// [`Money::INTEGER_DIGITS_MAX`] integer digits, in the canonical form: no leading zero
/// before another digit, no decimal past the minor units. (The kernel also takes leading
/// zeros, and trailing zeros past the minor units, which it drops; the document promises the
/// form every client writes and every answer uses, which the server always takes.)
pub fn amount_pattern(minor_units: u32) -> String {
    let integer = format!("[1-9][0-9]{{0,{}}}", Money::INTEGER_DIGITS_MAX - 1);
    if minor_units == 0 {
        return format!("^{integer}$");
    }
    format!(
        "^({integer}(\\.[0-9]{{1,{minor_units}}})?|0\\.({}))$",
        nonzero_fraction(minor_units)
    )
}

/// A positive decimal amount, a string (`"100.25"`).
#[derive(Debug)]
pub struct Amount;

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(amount_pattern(MINOR_UNITS_MAX)))
            .description(Some(format!(
                "A positive decimal amount, a string: digits, and a `.` with at most the \
                 currency's minor units of decimals (`100.25` EUR, `100` JPY, `1.500` KWD); \
                 at most {} digits before the point, no exponent, no sign, no thousands \
                 separators.",
                Money::INTEGER_DIGITS_MAX
            )))
            .examples(["100.25"])
            .into()
    }
}

impl ToSchema for Amount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(AMOUNT_SCHEMA)
    }
}

/// An ISO 4217 currency code.
#[derive(Debug)]
pub struct CurrencyCode;

impl PartialSchema for CurrencyCode {
    // An enum of the codes the kernel knows rather than only `^[A-Z]{3}$`: a well-formed
    // code the kernel does not know (`AAA`) is refused as `unknown_currency` (400), so only
    // the list makes every schema-valid request one the server takes as well formed.
    fn schema() -> RefOr<Schema> {
        let mut codes: Vec<&str> = Currency::all().map(|currency| currency.code()).collect();
        codes.sort_unstable();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[A-Z]{3}$"))
            .enum_values(Some(codes))
            .description(Some(
                "An ISO 4217 code with decimal minor units (funds and metal codes such as XAU \
                 are not currencies an account holds).",
            ))
            .examples(["EUR"])
            .into()
    }
}

impl ToSchema for CurrencyCode {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(CURRENCY_SCHEMA)
    }
}

/// The codes of the currencies with `minor_units` decimals, sorted.
fn codes_with(minor_units: u32) -> Vec<&'static str> {
    let mut codes: Vec<&str> = Currency::all()
        .filter(|currency| currency.minor_units() == minor_units)
        .map(|currency| currency.code())
        .collect();
    codes.sort_unstable();
    codes
}

/// `amount` and `currency` together: an amount has at most its currency's minor units of
/// decimals. One branch per number of minor units the kernel knows.
#[derive(Debug)]
pub struct AmountInCurrency;

impl PartialSchema for AmountInCurrency {
    fn schema() -> RefOr<Schema> {
        let mut one_of = OneOfBuilder::new().description(Some(
            "An amount has at most its currency's minor units of decimals.",
        ));
        for minor_units in 0..=MINOR_UNITS_MAX {
            let codes = codes_with(minor_units);
            if codes.is_empty() {
                continue;
            }
            one_of = one_of.item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property(
                        "currency",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .enum_values(Some(codes)),
                    )
                    .property(
                        "amount",
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(amount_pattern(minor_units))),
                    )
                    .required("currency")
                    .required("amount"),
            );
        }
        one_of.into()
    }
}

impl ToSchema for AmountInCurrency {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed(AMOUNT_IN_CURRENCY_SCHEMA)
    }
}

/// `body` (a request body's schema) with its amount tied to its currency.
pub fn with_amount_in_currency(body: RefOr<Schema>) -> RefOr<Schema> {
    AllOfBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .item(body)
        .item(Ref::from_schema_name(AMOUNT_IN_CURRENCY_SCHEMA))
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitespace_ranges_are_what_rust_calls_whitespace() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            let listed = WHITESPACE
                .iter()
                .any(|(first, last)| (*first..=*last).contains(&c));
            assert_eq!(listed, c.is_whitespace(), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn the_amount_pattern_is_built_from_the_kernel_limits() {
        assert_eq!(amount_pattern(0), "^[1-9][0-9]{0,21}$");
        assert_eq!(
            amount_pattern(2),
            "^([1-9][0-9]{0,21}(\\.[0-9]{1,2})?|0\\.([0-9]{0}[1-9][0-9]{0,1}|[0-9]{1}[1-9][0-9]{0,0}))$"
        );
    }

    #[test]
    fn text_patterns_follow_rust_whitespace() {
        let not_blank = regex::Regex::new(&not_blank_pattern()).unwrap();
        let no_whitespace = regex::Regex::new(&no_whitespace_pattern()).unwrap();
        let no_nul = regex::Regex::new(&no_nul_pattern()).unwrap();
        for text in ["a", " a ", "\u{a0}x", "\u{feff}", "\u{1c}"] {
            assert!(not_blank.is_match(text), "{text:?}");
            assert_eq!(
                !text.trim().is_empty(),
                not_blank.is_match(text),
                "{text:?}"
            );
        }
        for text in ["", " ", "\t\n", "\u{3000}\u{2028}\u{85}", "a\u{0}", "\u{0}"] {
            assert!(!not_blank.is_match(text), "{text:?}");
        }
        assert!(no_nul.is_match("any text at all\n"));
        assert!(!no_nul.is_match("a\u{0}b"));
        assert!(!no_whitespace.is_match("A\u{0}B"));
        assert!(no_whitespace.is_match("CURRENT-EUR"));
        assert!(!no_whitespace.is_match("CURRENT EUR"));
        assert!(!no_whitespace.is_match("A\u{2009}B"));
    }

    fn currency_with(minor_units: u32) -> Currency {
        Currency::all()
            .find(|c| c.minor_units() == minor_units)
            .unwrap()
    }

    /// Whatever the pattern lets through, the kernel takes as a positive amount.
    #[test]
    fn every_amount_the_pattern_admits_the_kernel_takes() {
        for minor_units in [0, 2, 3, 4] {
            let pattern = amount_pattern(minor_units);
            // Generation matches the whole string: the anchors go.
            let unanchored = pattern.trim_start_matches('^').trim_end_matches('$');
            let strategy = proptest::string::string_regex(unanchored).unwrap();
            let currency = currency_with(minor_units);
            proptest::test_runner::TestRunner::default()
                .run(&strategy, |text| {
                    let money = Money::parse(&text, currency);
                    proptest::prop_assert!(
                        money.as_ref().is_ok_and(Money::is_positive),
                        "{:?}: {:?}",
                        text,
                        money
                    );
                    Ok(())
                })
                .unwrap();
        }
    }

    proptest::proptest! {
        /// Every positive amount the kernel writes, the pattern admits.
        #[test]
        fn every_positive_amount_in_canonical_form_matches(
            minor_units in proptest::sample::select(vec![0_u32, 2, 3, 4]),
            whole in 0_u128..10_u128.pow(22),
            fraction in 0_u32..10_000,
        ) {
            let currency = currency_with(minor_units);
            let fraction = fraction % 10_u32.pow(minor_units);
            let text = if minor_units == 0 {
                whole.to_string()
            } else {
                format!("{whole}.{fraction:0width$}", width = usize::try_from(minor_units).unwrap())
            };
            let money = Money::parse(&text, currency).unwrap();
            proptest::prop_assume!(money.is_positive());
            let pattern = regex::Regex::new(&amount_pattern(minor_units)).unwrap();
            proptest::prop_assert!(pattern.is_match(&money.amount_string()), "{}", money.amount_string());
            let negated = format!("-{}", money.amount_string());
            proptest::prop_assert!(!pattern.is_match(&negated), "{}", negated);
        }
    }

    #[test]
    fn amounts_the_kernel_refuses_do_not_match() {
        for (minor_units, text) in [
            (2, "0"),
            (2, "0.00"),
            (2, "1.234"),
            (0, "1.5"),
            (2, "1e3"),
            (2, "1,000.00"),
            (2, ".5"),
            (2, "5."),
            (2, "-1.00"),
            (2, "+1.00"),
            (2, "12345678901234567890123"),
        ] {
            let pattern = regex::Regex::new(&amount_pattern(minor_units)).unwrap();
            assert!(!pattern.is_match(text), "{text:?} matches");
        }
    }

    #[test]
    fn the_account_id_pattern_admits_version_4_uuids_only() {
        let RefOr::T(Schema::Object(schema)) = AccountId::schema() else {
            panic!("an object schema");
        };
        let pattern = regex::Regex::new(schema.pattern.as_deref().unwrap()).unwrap();
        for _ in 0..100 {
            let id = uuid::Uuid::new_v4();
            assert!(pattern.is_match(&id.to_string()));
            assert!(pattern.is_match(&id.to_string().to_uppercase()));
            assert!(corebank_kernel::id::parse_v4("account", &id.to_string()).is_ok());
        }
        for text in [
            "00000000-0000-0000-0000-000000000000",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "e3e70682-c209-1cac-a29f-6fbed82c07cd",
            "e3e70682-c209-4cac-c29f-6fbed82c07cd",
        ] {
            assert!(!pattern.is_match(text), "{text}");
            assert!(
                corebank_kernel::id::parse_v4("account", text).is_err(),
                "{text}"
            );
        }
    }

    #[test]
    fn every_currency_is_in_one_branch() {
        let listed: usize = (0..=MINOR_UNITS_MAX).map(|m| codes_with(m).len()).sum();
        assert_eq!(listed, Currency::all().count());
        assert!(Currency::all().all(|c| c.minor_units() <= MINOR_UNITS_MAX));
    }
}
