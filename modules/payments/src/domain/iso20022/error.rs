//! Why an ISO 20022 value or message was refused: one error type for the value types, the
//! XML reader and the message readers, each variant with a stable code.

/// The longest excerpt of refused input an error carries.
const EXCERPT_CHARS_MAX: usize = 64;

corebank_kernel::stable_codes! {
    /// Why a value or a message was refused. Each variant has a stable code
    /// ([`Iso20022Error::code`]); none is worth retrying as is ([`Iso20022Error::is_retryable`]).
    #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
    pub enum Iso20022Error {
        /// A value does not fit its ISO 20022 type (a 36-character `Max35Text`, a malformed BIC).
        #[error("{kind} {input:?} is refused: {reason}")]
        InvalidValue {
            kind: &'static str,
            input: String,
            reason: String,
        } => "iso20022_invalid_value",
        /// The text is not well-formed XML (truncated, mismatched tags, a stray `&`, …).
        #[error("the message is not well-formed XML (at byte {position}): {reason}")]
        MalformedXml {
            position: usize,
            reason: &'static str,
        } => "iso20022_malformed_xml",
        /// The message passes one of the parser's limits (size, depth, element count).
        #[error("the message passes the limit {limit_name} = {limit}")]
        LimitExceeded {
            limit_name: &'static str,
            limit: usize,
        } => "iso20022_limit_exceeded",
        /// Well-formed XML, but not the message expected (another root element or namespace).
        #[error("expected a {expected} document, found {found}")]
        UnexpectedDocument {
            expected: &'static str,
            found: String,
        } => "iso20022_unexpected_document",
        /// An element the message needs is absent.
        #[error("{message}: the element {path} is missing")]
        MissingElement { message: &'static str, path: String } => "iso20022_missing_element",
        /// An element is present but its content is refused (a bad amount, date, BIC, …).
        #[error("{message}: the element {path} is invalid: {reason}")]
        InvalidElement {
            message: &'static str,
            path: String,
            reason: String,
        } => "iso20022_invalid_element",
        /// A valid message that uses something this module does not handle (several
        /// transactions, an unknown status, a proprietary reason).
        #[error("{message}: not supported: {reason}")]
        Unsupported {
            message: &'static str,
            reason: String,
        } => "iso20022_unsupported",
    }

    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str;
}

impl Iso20022Error {
    /// Whether the same input could succeed later. Never: a message or value that is refused
    /// now is refused the same way every time, so a retry needs different input. This holds
    /// for every variant alike, not variant by variant: the readers are pure functions of
    /// their input (no I/O, no clock, no state), so no refusal of theirs can be transient.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

pub(super) fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS_MAX).collect()
}

pub(super) fn invalid_value(
    kind: &'static str,
    input: &str,
    reason: impl Into<String>,
) -> Iso20022Error {
    Iso20022Error::InvalidValue {
        kind,
        input: excerpt(input),
        reason: reason.into(),
    }
}
