//! The ISO 20022 messages the payments module exchanges with a clearing rail: the credit
//! transfer it sends (pacs.008.001.08), the status report it receives (pacs.002.001.10) and
//! the payment return that moves money back (pacs.004.001.09). Pure and free of I/O: each
//! message is a struct of validated values, written to XML by hand with every text escaped,
//! and read back by a small, bounded, tolerant parser that looks only at the elements we use.
//!
//! Every value type here is validated once, when it is built (`Max35Text::new`, `Bic::new`,
//! …), against the rule its ISO 20022 type sets in the official XSD (`modules/payments/xsd/`).
//! That is why writing a message cannot fail: a `CreditTransfer` that exists is one the
//! schema accepts. Reading can fail, and always does so with an `Iso20022Error`, never a panic.

use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use corebank_kernel::{Currency, Money};
use rust_decimal::Decimal;

use xml::Element;

/// The namespace of FIToFICustomerCreditTransferV08.
pub const PACS_008_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08";
/// The namespace of FIToFIPaymentStatusReportV10.
pub const PACS_002_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10";
/// The namespace of PaymentReturnV09.
pub const PACS_004_NAMESPACE: &str = "urn:iso:std:iso:20022:tech:xsd:pacs.004.001.09";

/// The message name of a credit transfer, as other messages refer to it (`OrgnlMsgNmId`).
pub const PACS_008_MESSAGE_NAME: &str = "pacs.008.001.08";
/// The message name of a status report.
pub const PACS_002_MESSAGE_NAME: &str = "pacs.002.001.10";
/// The message name of a payment return.
pub const PACS_004_MESSAGE_NAME: &str = "pacs.004.001.09";

/// The largest message we read. A one-transaction pacs message is a few kilobytes; anything
/// near this size is not one of ours and is refused before it is parsed.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 1024 * 1024;
/// The deepest element nesting we read (the deepest path we write is 6 levels).
const ELEMENT_DEPTH_MAX: usize = 32;
/// The most elements we read in one message.
const ELEMENT_COUNT_MAX: usize = 4096;
/// The most attributes we read on one element.
const ATTRIBUTE_COUNT_MAX: usize = 16;
/// The longest excerpt of refused input an error carries.
const EXCERPT_CHARS_MAX: usize = 64;
/// ISO 20022 amounts (`ActiveCurrencyAndAmount`) carry at most 18 digits in all.
const AMOUNT_TOTAL_DIGITS_MAX: usize = 18;

/// Why a value or a message was refused. Each variant has a stable code ([`Iso20022Error::code`]);
/// none is worth retrying as is ([`Iso20022Error::is_retryable`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Iso20022Error {
    /// A value does not fit its ISO 20022 type (a 36-character `Max35Text`, a malformed BIC).
    #[error("{kind} {input:?} is refused: {reason}")]
    InvalidValue {
        kind: &'static str,
        input: String,
        reason: String,
    },
    /// The text is not well-formed XML (truncated, mismatched tags, a stray `&`, …).
    #[error("the message is not well-formed XML (at byte {position}): {reason}")]
    MalformedXml {
        position: usize,
        reason: &'static str,
    },
    /// The message passes one of the parser's limits (size, depth, element count).
    #[error("the message passes the limit {limit_name} = {limit}")]
    LimitExceeded {
        limit_name: &'static str,
        limit: usize,
    },
    /// Well-formed XML, but not the message expected (another root element or namespace).
    #[error("expected a {expected} document, found {found}")]
    UnexpectedDocument {
        expected: &'static str,
        found: String,
    },
    /// An element the message needs is absent.
    #[error("{message}: the element {path} is missing")]
    MissingElement { message: &'static str, path: String },
    /// An element is present but its content is refused (a bad amount, date, BIC, …).
    #[error("{message}: the element {path} is invalid: {reason}")]
    InvalidElement {
        message: &'static str,
        path: String,
        reason: String,
    },
    /// A valid message that uses something this module does not handle (several
    /// transactions, an unknown status, a proprietary reason).
    #[error("{message}: not supported: {reason}")]
    Unsupported {
        message: &'static str,
        reason: String,
    },
}

impl Iso20022Error {
    /// The stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Iso20022Error::InvalidValue { .. } => "iso20022_invalid_value",
            Iso20022Error::MalformedXml { .. } => "iso20022_malformed_xml",
            Iso20022Error::LimitExceeded { .. } => "iso20022_limit_exceeded",
            Iso20022Error::UnexpectedDocument { .. } => "iso20022_unexpected_document",
            Iso20022Error::MissingElement { .. } => "iso20022_missing_element",
            Iso20022Error::InvalidElement { .. } => "iso20022_invalid_element",
            Iso20022Error::Unsupported { .. } => "iso20022_unsupported",
        }
    }

    /// Whether the same input could succeed later. Never: a message or value that is refused
    /// now is refused the same way every time, so a retry needs different input.
    pub fn is_retryable(&self) -> bool {
        match self {
            Iso20022Error::InvalidValue { .. }
            | Iso20022Error::MalformedXml { .. }
            | Iso20022Error::LimitExceeded { .. }
            | Iso20022Error::UnexpectedDocument { .. }
            | Iso20022Error::MissingElement { .. }
            | Iso20022Error::InvalidElement { .. }
            | Iso20022Error::Unsupported { .. } => false,
        }
    }
}

fn excerpt(text: &str) -> String {
    text.chars().take(EXCERPT_CHARS_MAX).collect()
}

fn invalid_value(kind: &'static str, input: &str, reason: impl Into<String>) -> Iso20022Error {
    Iso20022Error::InvalidValue {
        kind,
        input: excerpt(input),
        reason: reason.into(),
    }
}

/// Whether XML 1.0 allows this character in a document at all.
fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r') || (ch >= ' ' && ch != '\u{FFFE}' && ch != '\u{FFFF}')
}

/// Checks free text against an ISO 20022 `MaxNText`: 1 to `chars_max` characters. Control
/// characters (line breaks included) are refused too: XML would alter some of them, and no
/// name, reference or remittance line on a clearing rail needs one.
fn check_text(kind: &'static str, text: &str, chars_max: usize) -> Result<(), Iso20022Error> {
    let chars = text.chars().count();
    if chars == 0 {
        return Err(invalid_value(kind, text, "it is empty"));
    }
    if chars > chars_max {
        return Err(invalid_value(
            kind,
            text,
            format!("it has {chars} characters, more than {chars_max}"),
        ));
    }
    if text.chars().any(|ch| ch.is_control() || !is_xml_char(ch)) {
        return Err(invalid_value(
            kind,
            text,
            "it contains a control character or one XML does not allow",
        ));
    }
    Ok(())
}

macro_rules! max_text {
    ($(#[$meta:meta])* $name:ident, $kind:literal, $chars_max:literal) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// The most characters this text may have.
            pub const CHARS_MAX: usize = $chars_max;

            pub fn new(text: impl Into<String>) -> Result<$name, Iso20022Error> {
                let text = text.into();
                check_text($kind, &text, Self::CHARS_MAX)?;
                Ok($name(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Iso20022Error;
            fn from_str(text: &str) -> Result<$name, Iso20022Error> {
                $name::new(text)
            }
        }
    };
}

max_text!(
    /// ISO 20022 `Max35Text`: 1 to 35 characters. Message ids and end-to-end ids.
    Max35Text,
    "Max35Text",
    35
);
max_text!(
    /// ISO 20022 `Max140Text`: 1 to 140 characters. Party names and unstructured remittance
    /// information.
    Max140Text,
    "Max140Text",
    140
);

/// A BIC (ISO 9362), as ISO 20022's `BICFIDec2014Identifier`: 8 or 11 upper-case letters and
/// digits, with the country code (letters 5 and 6) in letters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Bic(String);

impl Bic {
    pub fn new(text: impl Into<String>) -> Result<Bic, Iso20022Error> {
        let text = text.into();
        let bytes = text.as_bytes();
        let upper_or_digit = |b: &u8| b.is_ascii_uppercase() || b.is_ascii_digit();
        let shaped = (bytes.len() == 8 || bytes.len() == 11)
            && bytes.iter().all(upper_or_digit)
            && bytes
                .get(4..6)
                .is_some_and(|country| country.iter().all(u8::is_ascii_uppercase));
        if !shaped {
            return Err(invalid_value(
                "BIC",
                &text,
                "expected 8 or 11 upper-case letters and digits with letters in places 5 and 6, \
                 like \"DEUTDEFF\" or \"DEUTDEFF500\"",
            ));
        }
        Ok(Bic(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An IBAN-like account identifier, as ISO 20022's `IBAN2007Identifier`: two upper-case
/// letters (the country), two digits (the check digits) and 1 to 30 letters and digits. Only
/// the shape is checked, not the check digits: the rail's accounts need not be real IBANs.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Iban(String);

impl Iban {
    pub fn new(text: impl Into<String>) -> Result<Iban, Iso20022Error> {
        let text = text.into();
        let bytes = text.as_bytes();
        let shaped = (5..=34).contains(&bytes.len())
            && bytes
                .get(0..2)
                .is_some_and(|c| c.iter().all(u8::is_ascii_uppercase))
            && bytes
                .get(2..4)
                .is_some_and(|c| c.iter().all(u8::is_ascii_digit))
            && bytes
                .get(4..)
                .is_some_and(|c| c.iter().all(u8::is_ascii_alphanumeric));
        if !shaped {
            return Err(invalid_value(
                "IBAN",
                &text,
                "expected two upper-case letters, two digits and 1 to 30 letters or digits, \
                 like \"DE89370400440532013000\"",
            ));
        }
        Ok(Iban(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ISO 20022 external reason code (`ExternalStatusReason1Code`,
/// `ExternalReturnReason1Code`): 1 to 4 upper-case letters and digits, like `AC04` (closed
/// account) or `AM04` (insufficient funds).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ReasonCode(String);

impl ReasonCode {
    pub fn new(text: impl Into<String>) -> Result<ReasonCode, Iso20022Error> {
        let text = text.into();
        let shaped = (1..=4).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !shaped {
            return Err(invalid_value(
                "reason code",
                &text,
                "expected 1 to 4 upper-case letters and digits, like \"AC04\"",
            ));
        }
        Ok(ReasonCode(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! debug_and_display_as_str {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Iso20022Error;
            fn from_str(text: &str) -> Result<$name, Iso20022Error> {
                $name::new(text)
            }
        }
    )*};
}

debug_and_display_as_str!(Bic, Iban, ReasonCode);

corebank_kernel::typed_id!(
    /// The Unique End-to-end Transaction Reference of a payment: a UUIDv4 that stays the same
    /// on every message about the payment, on every rail it crosses. Inbound payments and
    /// their returns are matched by it.
    Uetr,
    "UETR"
);

/// The amount of a payment as ISO 20022 carries it (`ActiveCurrencyAndAmount`): positive,
/// with exactly the currency's minor units, and at most 18 digits in all.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaymentAmount(Money);

impl PaymentAmount {
    /// The amount, refused when it is not positive, has more decimals than the currency
    /// allows (trailing zeros aside) or more than 18 digits.
    pub fn new(amount: Decimal, currency: Currency) -> Result<PaymentAmount, Iso20022Error> {
        let money = Money::new(amount, currency)
            .map_err(|error| invalid_value("amount", &amount.to_string(), error.to_string()))?;
        PaymentAmount::from_money(money)
    }

    /// The amount of this money, refused when it is not positive or has more than 18 digits.
    pub fn from_money(money: Money) -> Result<PaymentAmount, Iso20022Error> {
        let text = money.amount_string();
        if !money.is_positive() {
            return Err(invalid_value(
                "amount",
                &text,
                "a payment amount must be positive",
            ));
        }
        let digits = text
            .trim_start_matches('0')
            .bytes()
            .filter(u8::is_ascii_digit)
            .count();
        if digits > AMOUNT_TOTAL_DIGITS_MAX {
            return Err(invalid_value(
                "amount",
                &text,
                format!("ISO 20022 amounts carry at most {AMOUNT_TOTAL_DIGITS_MAX} digits"),
            ));
        }
        Ok(PaymentAmount(money))
    }

    pub fn money(&self) -> Money {
        self.0
    }

    pub fn amount(&self) -> Decimal {
        self.0.amount()
    }

    pub fn currency(&self) -> Currency {
        self.0.currency()
    }
}

impl fmt::Debug for PaymentAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for PaymentAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The status of one payment in a pacs.002 (`ExternalPaymentTransactionStatus1Code`): the
/// four this module acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionStatus {
    /// `ACCP`: the checks before settlement passed.
    AcceptedCustomerProfile,
    /// `ACSC`: settled on the rail; the payment is final.
    AcceptedSettlementCompleted,
    /// `RJCT`: rejected; the reason code says why.
    Rejected,
    /// `PDNG`: still being processed; another status report follows.
    Pending,
}

impl TransactionStatus {
    /// The ISO 20022 code.
    pub fn code(&self) -> &'static str {
        match self {
            TransactionStatus::AcceptedCustomerProfile => "ACCP",
            TransactionStatus::AcceptedSettlementCompleted => "ACSC",
            TransactionStatus::Rejected => "RJCT",
            TransactionStatus::Pending => "PDNG",
        }
    }

    /// The status for an ISO 20022 code; `None` for codes this module does not handle.
    pub fn from_code(code: &str) -> Option<TransactionStatus> {
        match code {
            "ACCP" => Some(TransactionStatus::AcceptedCustomerProfile),
            "ACSC" => Some(TransactionStatus::AcceptedSettlementCompleted),
            "RJCT" => Some(TransactionStatus::Rejected),
            "PDNG" => Some(TransactionStatus::Pending),
            _ => None,
        }
    }
}

impl fmt::Display for TransactionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A customer credit transfer from our bank (the debtor agent) to another (the creditor
/// agent): one pacs.008.001.08 with one transaction, settled through the clearing system
/// (`CLRG`), each party bearing its own charges (`SLEV`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTransfer {
    /// The message's own id (`GrpHdr/MsgId`), unique per sender.
    pub message_id: Max35Text,
    /// When the message was created (`GrpHdr/CreDtTm`).
    pub created_at: DateTime<Utc>,
    /// The debtor's reference, carried unchanged to the creditor (`PmtId/EndToEndId`).
    pub end_to_end_id: Max35Text,
    /// The payment's UETR (`PmtId/UETR`).
    pub uetr: Uetr,
    /// The instructed amount. With no charges deducted (`SLEV`) and no currency exchange it
    /// is also the interbank settlement amount: the message carries it as both.
    pub instructed_amount: PaymentAmount,
    /// The day the rail settles the payment (`IntrBkSttlmDt`).
    pub interbank_settlement_date: NaiveDate,
    pub debtor_name: Max140Text,
    pub debtor_account: Iban,
    pub debtor_agent: Bic,
    pub creditor_name: Max140Text,
    pub creditor_account: Iban,
    pub creditor_agent: Bic,
    /// Unstructured remittance information (`RmtInf/Ustrd`), if any.
    pub remittance_information: Option<Max140Text>,
}

/// A status report about one payment: one pacs.002.001.10 with one transaction status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The report's own id (`GrpHdr/MsgId`).
    pub message_id: Max35Text,
    /// When the report was created (`GrpHdr/CreDtTm`).
    pub created_at: DateTime<Utc>,
    /// The id of the pacs.008 reported on.
    pub original_message_id: Max35Text,
    pub original_end_to_end_id: Max35Text,
    pub original_uetr: Uetr,
    pub status: TransactionStatus,
    /// Why, for a rejection (`AC04`, `AM04`, …).
    pub reason: Option<ReasonCode>,
}

/// The return of a settled payment: one pacs.004.001.09 with one transaction, settled through
/// the clearing system (`CLRG`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentReturn {
    /// The return's own id (`GrpHdr/MsgId`).
    pub message_id: Max35Text,
    /// When the return was created (`GrpHdr/CreDtTm`).
    pub created_at: DateTime<Utc>,
    /// The id of the pacs.008 whose payment is returned.
    pub original_message_id: Max35Text,
    pub original_end_to_end_id: Max35Text,
    pub original_uetr: Uetr,
    /// The amount returned (`RtrdIntrBkSttlmAmt`).
    pub returned_amount: PaymentAmount,
    /// Why (`AC01` wrong account number, `AC04` closed account, …).
    pub reason: ReasonCode,
}

/// Any of the three messages, for a receiver that learns which one arrived from the message
/// itself (its namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iso20022Message {
    CreditTransfer(CreditTransfer),
    StatusReport(StatusReport),
    PaymentReturn(PaymentReturn),
}

impl Iso20022Message {
    /// Reads whichever of the three messages this is.
    pub fn parse(xml: &str) -> Result<Iso20022Message, Iso20022Error> {
        let root = xml::parse(xml)?;
        let expected = "pacs.008.001.08, pacs.002.001.10 or pacs.004.001.09";
        match document_namespace(&root, expected)? {
            PACS_008_NAMESPACE => read_credit_transfer(&root).map(Iso20022Message::CreditTransfer),
            PACS_002_NAMESPACE => read_status_report(&root).map(Iso20022Message::StatusReport),
            PACS_004_NAMESPACE => read_payment_return(&root).map(Iso20022Message::PaymentReturn),
            other => Err(Iso20022Error::UnexpectedDocument {
                expected,
                found: format!("namespace {:?}", excerpt(other)),
            }),
        }
    }
}

impl CreditTransfer {
    /// The pacs.008.001.08 document for this credit transfer.
    pub fn to_pacs008(&self) -> String {
        let mut w = Writer::new(PACS_008_NAMESPACE);
        w.open("FIToFICstmrCdtTrf");
        w.open("GrpHdr");
        w.leaf("MsgId", self.message_id.as_str());
        w.leaf("CreDtTm", &format_date_time(self.created_at));
        w.leaf("NbOfTxs", "1");
        w.open("SttlmInf");
        w.leaf("SttlmMtd", "CLRG");
        w.close("SttlmInf");
        w.close("GrpHdr");
        w.open("CdtTrfTxInf");
        w.open("PmtId");
        w.leaf("EndToEndId", self.end_to_end_id.as_str());
        w.leaf("UETR", &self.uetr.to_string());
        w.close("PmtId");
        w.amount("IntrBkSttlmAmt", &self.instructed_amount);
        w.leaf(
            "IntrBkSttlmDt",
            &format_date(self.interbank_settlement_date),
        );
        w.amount("InstdAmt", &self.instructed_amount);
        w.leaf("ChrgBr", "SLEV");
        w.party("Dbtr", &self.debtor_name);
        w.account("DbtrAcct", &self.debtor_account);
        w.agent("DbtrAgt", &self.debtor_agent);
        w.agent("CdtrAgt", &self.creditor_agent);
        w.party("Cdtr", &self.creditor_name);
        w.account("CdtrAcct", &self.creditor_account);
        if let Some(remittance) = &self.remittance_information {
            w.open("RmtInf");
            w.leaf("Ustrd", remittance.as_str());
            w.close("RmtInf");
        }
        w.close("CdtTrfTxInf");
        w.close("FIToFICstmrCdtTrf");
        w.finish()
    }

    /// Reads a pacs.008.001.08 with one transaction.
    pub fn parse_pacs008(xml: &str) -> Result<CreditTransfer, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_008_NAMESPACE, PACS_008_MESSAGE_NAME)?;
        read_credit_transfer(&root)
    }
}

impl StatusReport {
    /// The pacs.002.001.10 document for this status report.
    pub fn to_pacs002(&self) -> String {
        let mut w = Writer::new(PACS_002_NAMESPACE);
        w.open("FIToFIPmtStsRpt");
        w.open("GrpHdr");
        w.leaf("MsgId", self.message_id.as_str());
        w.leaf("CreDtTm", &format_date_time(self.created_at));
        w.close("GrpHdr");
        w.open("TxInfAndSts");
        w.open("OrgnlGrpInf");
        w.leaf("OrgnlMsgId", self.original_message_id.as_str());
        w.leaf("OrgnlMsgNmId", PACS_008_MESSAGE_NAME);
        w.close("OrgnlGrpInf");
        w.leaf("OrgnlEndToEndId", self.original_end_to_end_id.as_str());
        w.leaf("OrgnlUETR", &self.original_uetr.to_string());
        w.leaf("TxSts", self.status.code());
        if let Some(reason) = &self.reason {
            w.open("StsRsnInf");
            w.open("Rsn");
            w.leaf("Cd", reason.as_str());
            w.close("Rsn");
            w.close("StsRsnInf");
        }
        w.close("TxInfAndSts");
        w.close("FIToFIPmtStsRpt");
        w.finish()
    }

    /// Reads a pacs.002.001.10 with one transaction status.
    pub fn parse_pacs002(xml: &str) -> Result<StatusReport, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_002_NAMESPACE, PACS_002_MESSAGE_NAME)?;
        read_status_report(&root)
    }
}

impl PaymentReturn {
    /// The pacs.004.001.09 document for this payment return.
    pub fn to_pacs004(&self) -> String {
        let mut w = Writer::new(PACS_004_NAMESPACE);
        w.open("PmtRtr");
        w.open("GrpHdr");
        w.leaf("MsgId", self.message_id.as_str());
        w.leaf("CreDtTm", &format_date_time(self.created_at));
        w.leaf("NbOfTxs", "1");
        w.open("SttlmInf");
        w.leaf("SttlmMtd", "CLRG");
        w.close("SttlmInf");
        w.close("GrpHdr");
        w.open("TxInf");
        w.open("OrgnlGrpInf");
        w.leaf("OrgnlMsgId", self.original_message_id.as_str());
        w.leaf("OrgnlMsgNmId", PACS_008_MESSAGE_NAME);
        w.close("OrgnlGrpInf");
        w.leaf("OrgnlEndToEndId", self.original_end_to_end_id.as_str());
        w.leaf("OrgnlUETR", &self.original_uetr.to_string());
        w.amount("RtrdIntrBkSttlmAmt", &self.returned_amount);
        w.leaf("ChrgBr", "SLEV");
        w.open("RtrRsnInf");
        w.open("Rsn");
        w.leaf("Cd", self.reason.as_str());
        w.close("Rsn");
        w.close("RtrRsnInf");
        w.close("TxInf");
        w.close("PmtRtr");
        w.finish()
    }

    /// Reads a pacs.004.001.09 with one transaction.
    pub fn parse_pacs004(xml: &str) -> Result<PaymentReturn, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_004_NAMESPACE, PACS_004_MESSAGE_NAME)?;
        read_payment_return(&root)
    }
}

// ---------------------------------------------------------------------------------------------
// Writing.

fn format_date_time(at: DateTime<Utc>) -> String {
    // As many fractional digits as the instant has, so that reading it back is exact.
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Escapes text for element content and attribute values: all five characters XML reserves.
fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            other => out.push(other),
        }
    }
}

/// Writes an indented document. Element names are the constants of this file; every text
/// and attribute value goes through [`escape_into`].
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn new(namespace: &str) -> Writer {
        let mut out = String::with_capacity(2048);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"");
        escape_into(&mut out, namespace);
        out.push_str("\">\n");
        Writer { out, depth: 1 }
    }

    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        self.out.push_str(">\n");
        self.depth = self.depth.saturating_add(1);
    }

    fn close(&mut self, name: &str) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.leaf_with_attribute(name, None, text);
    }

    fn leaf_with_attribute(&mut self, name: &str, attribute: Option<(&str, &str)>, text: &str) {
        self.indent();
        self.out.push('<');
        self.out.push_str(name);
        if let Some((attribute_name, value)) = attribute {
            self.out.push(' ');
            self.out.push_str(attribute_name);
            self.out.push_str("=\"");
            escape_into(&mut self.out, value);
            self.out.push('"');
        }
        self.out.push('>');
        escape_into(&mut self.out, text);
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// An amount with exactly its currency's minor units: `<X Ccy="EUR">100.50</X>`.
    fn amount(&mut self, name: &str, amount: &PaymentAmount) {
        let text = amount.money().amount_string();
        self.leaf_with_attribute(name, Some(("Ccy", amount.currency().code())), &text);
    }

    fn party(&mut self, name: &str, party_name: &Max140Text) {
        self.open(name);
        self.leaf("Nm", party_name.as_str());
        self.close(name);
    }

    fn account(&mut self, name: &str, iban: &Iban) {
        self.open(name);
        self.open("Id");
        self.leaf("IBAN", iban.as_str());
        self.close("Id");
        self.close(name);
    }

    fn agent(&mut self, name: &str, bic: &Bic) {
        self.open(name);
        self.open("FinInstnId");
        self.leaf("BICFI", bic.as_str());
        self.close("FinInstnId");
        self.close(name);
    }

    fn finish(mut self) -> String {
        self.out.push_str("</Document>\n");
        self.out
    }
}

// ---------------------------------------------------------------------------------------------
// Reading.

/// The namespace of a well-formed `Document` root, or why the root is not one.
fn document_namespace<'a>(
    root: &'a Element,
    expected: &'static str,
) -> Result<&'a str, Iso20022Error> {
    if root.local_name() != "Document" {
        return Err(Iso20022Error::UnexpectedDocument {
            expected,
            found: format!("the root element <{}>", excerpt(&root.qualified_name)),
        });
    }
    root.namespace()
        .ok_or_else(|| Iso20022Error::UnexpectedDocument {
            expected,
            found: "a Document without a namespace".to_owned(),
        })
}

fn expect_namespace(
    root: &Element,
    namespace: &'static str,
    message: &'static str,
) -> Result<(), Iso20022Error> {
    let found = document_namespace(root, message)?;
    if found == namespace {
        Ok(())
    } else {
        Err(Iso20022Error::UnexpectedDocument {
            expected: message,
            found: format!("namespace {:?}", excerpt(found)),
        })
    }
}

/// Reads the elements of one message, naming the message and the full path in its errors.
struct Reader {
    message: &'static str,
}

impl Reader {
    fn find<'e>(&self, from: &'e Element, path: &str) -> Option<&'e Element> {
        path.split('/')
            .try_fold(from, |element, name| element.child(name))
    }

    fn missing(&self, base: &str, path: &str) -> Iso20022Error {
        Iso20022Error::MissingElement {
            message: self.message,
            path: format!("{base}/{path}"),
        }
    }

    fn invalid(&self, base: &str, path: &str, reason: impl Into<String>) -> Iso20022Error {
        Iso20022Error::InvalidElement {
            message: self.message,
            path: format!("{base}/{path}"),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, reason: impl Into<String>) -> Iso20022Error {
        Iso20022Error::Unsupported {
            message: self.message,
            reason: reason.into(),
        }
    }

    fn element<'e>(
        &self,
        from: &'e Element,
        base: &str,
        path: &str,
    ) -> Result<&'e Element, Iso20022Error> {
        self.find(from, path)
            .ok_or_else(|| self.missing(base, path))
    }

    /// The only child of this name: missing and repeated are both refused.
    fn single<'e>(
        &self,
        from: &'e Element,
        base: &str,
        name: &str,
    ) -> Result<&'e Element, Iso20022Error> {
        let mut matches = from.children(name);
        let first = matches.next().ok_or_else(|| self.missing(base, name))?;
        if matches.next().is_some() {
            return Err(self.unsupported(format!(
                "more than one {base}/{name}: only one transaction per message is handled"
            )));
        }
        Ok(first)
    }

    fn text<'e>(
        &self,
        from: &'e Element,
        base: &str,
        path: &str,
    ) -> Result<&'e str, Iso20022Error> {
        self.element(from, base, path)
            .map(|element| element.text.as_str())
    }

    fn max35(&self, from: &Element, base: &str, path: &str) -> Result<Max35Text, Iso20022Error> {
        Max35Text::new(self.text(from, base, path)?)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn max140(&self, from: &Element, base: &str, path: &str) -> Result<Max140Text, Iso20022Error> {
        Max140Text::new(self.text(from, base, path)?)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn bic(&self, from: &Element, base: &str, path: &str) -> Result<Bic, Iso20022Error> {
        Bic::new(self.text(from, base, path)?)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn iban(&self, from: &Element, base: &str, path: &str) -> Result<Iban, Iso20022Error> {
        if self.find(from, path).is_none() {
            let account = path.trim_end_matches("/IBAN");
            if self.find(from, &format!("{account}/Othr")).is_some() {
                return Err(self.unsupported(format!(
                    "{base}/{account} is identified by Othr: only IBANs are handled"
                )));
            }
        }
        Iban::new(self.text(from, base, path)?)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn uetr(&self, from: &Element, base: &str, path: &str) -> Result<Uetr, Iso20022Error> {
        let text = self.text(from, base, path)?;
        // Only the hyphenated form the schema allows; the kernel's parser also takes others.
        if text.len() != 36 {
            return Err(self.invalid(base, path, "expected a hyphenated UUIDv4 (36 characters)"));
        }
        Uetr::parse(text).map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn reason(&self, from: &Element, base: &str, path: &str) -> Result<ReasonCode, Iso20022Error> {
        ReasonCode::new(self.text(from, base, path)?)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    fn date_time(
        &self,
        from: &Element,
        base: &str,
        path: &str,
    ) -> Result<DateTime<Utc>, Iso20022Error> {
        // xs:dateTime collapses white space around the value.
        let text = self.text(from, base, path)?.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(at.with_timezone(&Utc));
        }
        // xs:dateTime may leave out the offset; such a time is read as UTC.
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .map(|naive| naive.and_utc())
            .map_err(|_| {
                self.invalid(
                    base,
                    path,
                    format!(
                        "{:?} is not an ISO date and time like \"2026-01-15T10:30:00Z\"",
                        excerpt(text)
                    ),
                )
            })
    }

    fn date(&self, from: &Element, base: &str, path: &str) -> Result<NaiveDate, Iso20022Error> {
        let text = self.text(from, base, path)?.trim();
        NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
            self.invalid(
                base,
                path,
                format!("{:?} is not an ISO date like \"2026-01-15\"", excerpt(text)),
            )
        })
    }

    fn amount(
        &self,
        from: &Element,
        base: &str,
        path: &str,
    ) -> Result<PaymentAmount, Iso20022Error> {
        let element = self.element(from, base, path)?;
        let code = element
            .attribute("Ccy")
            .ok_or_else(|| self.invalid(base, path, "the currency attribute Ccy is missing"))?;
        let currency = Currency::from_code(code.trim())
            .map_err(|error| self.invalid(base, path, error.to_string()))?;
        let money = Money::parse(element.text.trim(), currency)
            .map_err(|error| self.invalid(base, path, error.to_string()))?;
        PaymentAmount::from_money(money)
            .map_err(|error| self.invalid(base, path, error.to_string()))
    }

    /// `NbOfTxs`, when present, must say one transaction.
    fn one_transaction(&self, header: &Element, base: &str) -> Result<(), Iso20022Error> {
        match self.find(header, "NbOfTxs") {
            Some(count) if count.text.trim() != "1" => Err(self.unsupported(format!(
                "{base}/NbOfTxs is {:?}: only one transaction per message is handled",
                excerpt(count.text.trim())
            ))),
            _ => Ok(()),
        }
    }
}

fn read_credit_transfer(root: &Element) -> Result<CreditTransfer, Iso20022Error> {
    let r = Reader {
        message: PACS_008_MESSAGE_NAME,
    };
    let body = r.element(root, "Document", "FIToFICstmrCdtTrf")?;
    let header_path = "FIToFICstmrCdtTrf/GrpHdr";
    let header = r.element(body, "FIToFICstmrCdtTrf", "GrpHdr")?;
    r.one_transaction(header, header_path)?;
    let tx = r.single(body, "FIToFICstmrCdtTrf", "CdtTrfTxInf")?;
    let tx_path = "FIToFICstmrCdtTrf/CdtTrfTxInf";

    let instructed_amount = r.amount(tx, tx_path, "IntrBkSttlmAmt")?;
    if r.find(tx, "InstdAmt").is_some() {
        let instructed = r.amount(tx, tx_path, "InstdAmt")?;
        if instructed != instructed_amount {
            return Err(r.unsupported(format!(
                "the instructed amount {instructed} differs from the interbank settlement \
                 amount {instructed_amount}: charges and currency exchange are not handled"
            )));
        }
    }
    // The settlement date is the transaction's, or failing that the whole message's.
    let interbank_settlement_date = if r.find(tx, "IntrBkSttlmDt").is_some() {
        r.date(tx, tx_path, "IntrBkSttlmDt")?
    } else if r.find(header, "IntrBkSttlmDt").is_some() {
        r.date(header, header_path, "IntrBkSttlmDt")?
    } else {
        return Err(r.missing(tx_path, "IntrBkSttlmDt"));
    };
    let remittance_information = match r.find(tx, "RmtInf") {
        None => None,
        Some(remittance) => {
            let mut lines = remittance.children("Ustrd");
            let first = lines.next();
            if lines.next().is_some() {
                return Err(r.unsupported("more than one RmtInf/Ustrd line"));
            }
            match first {
                Some(_) => Some(r.max140(tx, tx_path, "RmtInf/Ustrd")?),
                None => None,
            }
        }
    };

    Ok(CreditTransfer {
        message_id: r.max35(header, header_path, "MsgId")?,
        created_at: r.date_time(header, header_path, "CreDtTm")?,
        end_to_end_id: r.max35(tx, tx_path, "PmtId/EndToEndId")?,
        uetr: r.uetr(tx, tx_path, "PmtId/UETR")?,
        instructed_amount,
        interbank_settlement_date,
        debtor_name: r.max140(tx, tx_path, "Dbtr/Nm")?,
        debtor_account: r.iban(tx, tx_path, "DbtrAcct/Id/IBAN")?,
        debtor_agent: r.bic(tx, tx_path, "DbtrAgt/FinInstnId/BICFI")?,
        creditor_name: r.max140(tx, tx_path, "Cdtr/Nm")?,
        creditor_account: r.iban(tx, tx_path, "CdtrAcct/Id/IBAN")?,
        creditor_agent: r.bic(tx, tx_path, "CdtrAgt/FinInstnId/BICFI")?,
        remittance_information,
    })
}

fn read_status_report(root: &Element) -> Result<StatusReport, Iso20022Error> {
    let r = Reader {
        message: PACS_002_MESSAGE_NAME,
    };
    let body = r.element(root, "Document", "FIToFIPmtStsRpt")?;
    let header_path = "FIToFIPmtStsRpt/GrpHdr";
    let header = r.element(body, "FIToFIPmtStsRpt", "GrpHdr")?;
    let tx = r.single(body, "FIToFIPmtStsRpt", "TxInfAndSts")?;
    let tx_path = "FIToFIPmtStsRpt/TxInfAndSts";
    let group_path = "FIToFIPmtStsRpt/OrgnlGrpInfAndSts";
    let group = body.child("OrgnlGrpInfAndSts");

    // The original message id is the transaction's, or failing that the group's.
    let original_message_id = match (r.find(tx, "OrgnlGrpInf/OrgnlMsgId"), group) {
        (Some(_), _) => r.max35(tx, tx_path, "OrgnlGrpInf/OrgnlMsgId")?,
        (None, Some(group)) => r.max35(group, group_path, "OrgnlMsgId")?,
        (None, None) => return Err(r.missing(tx_path, "OrgnlGrpInf/OrgnlMsgId")),
    };
    // Likewise the status: the transaction's, or the whole group's.
    let status_code = match (r.find(tx, "TxSts"), group.and_then(|g| g.child("GrpSts"))) {
        (Some(status), _) | (None, Some(status)) => status.text.trim(),
        (None, None) => return Err(r.missing(tx_path, "TxSts")),
    };
    let status = TransactionStatus::from_code(status_code).ok_or_else(|| {
        r.unsupported(format!(
            "the status {:?}: only ACCP, ACSC, RJCT and PDNG are handled",
            excerpt(status_code)
        ))
    })?;
    let reason = match r.find(tx, "StsRsnInf/Rsn") {
        None => None,
        Some(reason) if reason.child("Cd").is_some() => {
            Some(r.reason(tx, tx_path, "StsRsnInf/Rsn/Cd")?)
        }
        Some(_) => return Err(r.unsupported("a proprietary status reason (Rsn/Prtry)")),
    };

    Ok(StatusReport {
        message_id: r.max35(header, header_path, "MsgId")?,
        created_at: r.date_time(header, header_path, "CreDtTm")?,
        original_message_id,
        original_end_to_end_id: r.max35(tx, tx_path, "OrgnlEndToEndId")?,
        original_uetr: r.uetr(tx, tx_path, "OrgnlUETR")?,
        status,
        reason,
    })
}

fn read_payment_return(root: &Element) -> Result<PaymentReturn, Iso20022Error> {
    let r = Reader {
        message: PACS_004_MESSAGE_NAME,
    };
    let body = r.element(root, "Document", "PmtRtr")?;
    let header_path = "PmtRtr/GrpHdr";
    let header = r.element(body, "PmtRtr", "GrpHdr")?;
    r.one_transaction(header, header_path)?;
    let tx = r.single(body, "PmtRtr", "TxInf")?;
    let tx_path = "PmtRtr/TxInf";
    let group_path = "PmtRtr/OrgnlGrpInf";
    let group = body.child("OrgnlGrpInf");

    let original_message_id = match (r.find(tx, "OrgnlGrpInf/OrgnlMsgId"), group) {
        (Some(_), _) => r.max35(tx, tx_path, "OrgnlGrpInf/OrgnlMsgId")?,
        (None, Some(group)) => r.max35(group, group_path, "OrgnlMsgId")?,
        (None, None) => return Err(r.missing(tx_path, "OrgnlGrpInf/OrgnlMsgId")),
    };
    // The reason is the transaction's, or failing that the whole group's.
    let reason_path = "RtrRsnInf/Rsn/Cd";
    let proprietary = || r.unsupported("a proprietary return reason (Rsn/Prtry)");
    let reason = if let Some(reason) = r.find(tx, "RtrRsnInf/Rsn") {
        if reason.child("Cd").is_none() {
            return Err(proprietary());
        }
        r.reason(tx, tx_path, reason_path)?
    } else if let Some(group) = group.filter(|g| r.find(g, "RtrRsnInf/Rsn").is_some()) {
        if r.find(group, reason_path).is_none() {
            return Err(proprietary());
        }
        r.reason(group, group_path, reason_path)?
    } else {
        return Err(r.missing(tx_path, reason_path));
    };

    Ok(PaymentReturn {
        message_id: r.max35(header, header_path, "MsgId")?,
        created_at: r.date_time(header, header_path, "CreDtTm")?,
        original_message_id,
        original_end_to_end_id: r.max35(tx, tx_path, "OrgnlEndToEndId")?,
        original_uetr: r.uetr(tx, tx_path, "OrgnlUETR")?,
        returned_amount: r.amount(tx, tx_path, "RtrdIntrBkSttlmAmt")?,
        reason,
    })
}

/// A small, bounded XML reader: elements, attributes, text, the five predefined entities and
/// character references, comments, processing instructions and CDATA. Document type
/// declarations are refused outright, so no entity is ever expanded from the input. Every
/// slice of the input is taken with `get`, so no input can make it panic.
mod xml {
    use super::{
        ATTRIBUTE_COUNT_MAX, ELEMENT_COUNT_MAX, ELEMENT_DEPTH_MAX, Iso20022Error,
        MESSAGE_SIZE_BYTES_MAX, is_xml_char,
    };

    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(super) struct Element {
        /// The name as written, prefix included (`Document`, `ns:Document`).
        pub qualified_name: String,
        pub attributes: Vec<(String, String)>,
        pub children: Vec<Element>,
        /// The character data directly inside this element.
        pub text: String,
    }

    impl Element {
        fn new(qualified_name: &str) -> Element {
            Element {
                qualified_name: qualified_name.to_owned(),
                attributes: Vec::new(),
                children: Vec::new(),
                text: String::new(),
            }
        }

        /// The name without its prefix. Children are matched by it: a rail that prefixes
        /// every element is read like one that declares a default namespace.
        pub fn local_name(&self) -> &str {
            match self.qualified_name.split_once(':') {
                Some((_, local)) => local,
                None => &self.qualified_name,
            }
        }

        /// The namespace this element declares for its own prefix, if it declares it.
        pub fn namespace(&self) -> Option<&str> {
            match self.qualified_name.split_once(':') {
                Some((prefix, _)) => self.attribute(&format!("xmlns:{prefix}")),
                None => self.attribute("xmlns"),
            }
        }

        pub fn attribute(&self, name: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.as_str())
        }

        pub fn child(&self, local_name: &str) -> Option<&Element> {
            self.children(local_name).next()
        }

        pub fn children<'a, 'n>(
            &'a self,
            local_name: &'n str,
        ) -> impl Iterator<Item = &'a Element> + use<'a, 'n> {
            self.children
                .iter()
                .filter(move |child| child.local_name() == local_name)
        }
    }

    /// Parses a whole document and returns its root element.
    pub(super) fn parse(input: &str) -> Result<Element, Iso20022Error> {
        if input.len() > MESSAGE_SIZE_BYTES_MAX {
            return Err(Iso20022Error::LimitExceeded {
                limit_name: "message_size_bytes_max",
                limit: MESSAGE_SIZE_BYTES_MAX,
            });
        }
        let mut parser = Parser {
            input,
            position: 0,
            element_count: 0,
        };
        if parser.starts_with("\u{FEFF}") {
            parser.position = "\u{FEFF}".len();
        }
        parser.skip_misc()?;
        if parser.at_end() {
            return Err(parser.error("there is no root element"));
        }
        if !parser.starts_with("<") {
            return Err(parser.error("text before the root element"));
        }
        let root = parser.element()?;
        parser.skip_misc()?;
        if !parser.at_end() {
            return Err(parser.error("content after the root element"));
        }
        Ok(root)
    }

    struct Parser<'a> {
        input: &'a str,
        position: usize,
        element_count: usize,
    }

    impl<'a> Parser<'a> {
        fn error(&self, reason: &'static str) -> Iso20022Error {
            Iso20022Error::MalformedXml {
                position: self.position,
                reason,
            }
        }

        fn rest(&self) -> &'a str {
            self.input.get(self.position..).unwrap_or("")
        }

        fn at_end(&self) -> bool {
            self.position >= self.input.len()
        }

        fn starts_with(&self, prefix: &str) -> bool {
            self.rest().starts_with(prefix)
        }

        fn peek(&self) -> Option<u8> {
            self.input.as_bytes().get(self.position).copied()
        }

        fn advance(&mut self, bytes: usize) {
            self.position = self.position.saturating_add(bytes);
        }

        fn skip_whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                self.advance(1);
            }
        }

        /// Returns the text up to `terminator` and moves past the terminator.
        fn take_until(
            &mut self,
            terminator: &str,
            reason: &'static str,
        ) -> Result<&'a str, Iso20022Error> {
            let rest = self.rest();
            let end = rest.find(terminator).ok_or_else(|| self.error(reason))?;
            let taken = rest.get(..end).ok_or_else(|| self.error(reason))?;
            self.advance(end.saturating_add(terminator.len()));
            Ok(taken)
        }

        /// Skips what may stand around the root element: white space, comments and
        /// processing instructions (the XML declaration among them).
        fn skip_misc(&mut self) -> Result<(), Iso20022Error> {
            loop {
                self.skip_whitespace();
                if self.starts_with("<!--") {
                    self.advance(4);
                    self.take_until("-->", "a comment is not closed")?;
                } else if self.starts_with("<?") {
                    self.advance(2);
                    self.take_until("?>", "a processing instruction is not closed")?;
                } else if self.starts_with("<!") {
                    return Err(self.error("document type declarations are refused"));
                } else {
                    return Ok(());
                }
            }
        }

        fn name(&mut self) -> Result<&'a str, Iso20022Error> {
            let rest = self.rest();
            let end = rest
                .find(|ch: char| {
                    ch.is_whitespace() || matches!(ch, '/' | '>' | '<' | '=' | '"' | '\'' | '&')
                })
                .unwrap_or(rest.len());
            let name = rest.get(..end).unwrap_or("");
            let starts_well = name
                .chars()
                .next()
                .is_some_and(|ch| ch.is_alphabetic() || ch == '_');
            if !starts_well {
                return Err(self.error("an element or attribute name is missing or malformed"));
            }
            self.advance(end);
            Ok(name)
        }

        /// Reads a start tag from its `<`; returns the element and whether it was `<x/>`.
        fn start_tag(&mut self) -> Result<(Element, bool), Iso20022Error> {
            self.advance(1);
            let name = self.name()?;
            let mut element = Element::new(name);
            loop {
                let had_space = matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n'));
                self.skip_whitespace();
                if self.starts_with("/>") {
                    self.advance(2);
                    return Ok((element, true));
                }
                if self.starts_with(">") {
                    self.advance(1);
                    return Ok((element, false));
                }
                if self.at_end() {
                    return Err(self.error("the document ends inside a tag"));
                }
                if !had_space {
                    return Err(self.error("attributes must be separated by white space"));
                }
                let attribute_name = self.name()?;
                self.skip_whitespace();
                if !self.starts_with("=") {
                    return Err(self.error("an attribute has no value"));
                }
                self.advance(1);
                self.skip_whitespace();
                let quote = match self.peek() {
                    Some(b'"') => "\"",
                    Some(b'\'') => "'",
                    _ => return Err(self.error("an attribute value is not quoted")),
                };
                self.advance(1);
                let value_position = self.position;
                let raw = self.take_until(quote, "an attribute value is not closed")?;
                if raw.contains('<') {
                    return Err(Iso20022Error::MalformedXml {
                        position: value_position,
                        reason: "'<' inside an attribute value",
                    });
                }
                let value = decode(raw, value_position)?;
                if element.attribute(attribute_name).is_some() {
                    return Err(self.error("an attribute appears twice"));
                }
                if element.attributes.len() >= ATTRIBUTE_COUNT_MAX {
                    return Err(Iso20022Error::LimitExceeded {
                        limit_name: "attribute_count_max",
                        limit: ATTRIBUTE_COUNT_MAX,
                    });
                }
                element.attributes.push((attribute_name.to_owned(), value));
            }
        }

        fn count_element(&mut self) -> Result<(), Iso20022Error> {
            self.element_count = self.element_count.saturating_add(1);
            if self.element_count > ELEMENT_COUNT_MAX {
                return Err(Iso20022Error::LimitExceeded {
                    limit_name: "element_count_max",
                    limit: ELEMENT_COUNT_MAX,
                });
            }
            Ok(())
        }

        /// Reads one element with everything inside it, starting at its `<`. Open elements
        /// wait on an explicit stack, bounded by the depth limit, not on the call stack.
        fn element(&mut self) -> Result<Element, Iso20022Error> {
            self.count_element()?;
            let (root, closed) = self.start_tag()?;
            if closed {
                return Ok(root);
            }
            let mut open = vec![root];
            loop {
                if self.at_end() {
                    return Err(self.error("the document ends before every element is closed"));
                }
                if !self.starts_with("<") {
                    let text_position = self.position;
                    let rest = self.rest();
                    let end = rest
                        .find('<')
                        .ok_or_else(|| self.error("the document ends inside text"))?;
                    let raw = rest.get(..end).unwrap_or("");
                    self.advance(end);
                    let text = decode(raw, text_position)?;
                    if let Some(current) = open.last_mut() {
                        current.text.push_str(&text);
                    }
                } else if self.starts_with("<!--") {
                    self.advance(4);
                    self.take_until("-->", "a comment is not closed")?;
                } else if self.starts_with("<![CDATA[") {
                    self.advance(9);
                    let raw = self.take_until("]]>", "a CDATA section is not closed")?;
                    if !raw.chars().all(is_xml_char) {
                        return Err(self.error("a character XML does not allow"));
                    }
                    if let Some(current) = open.last_mut() {
                        current.text.push_str(&normalize_line_ends(raw));
                    }
                } else if self.starts_with("<?") {
                    self.advance(2);
                    self.take_until("?>", "a processing instruction is not closed")?;
                } else if self.starts_with("<!") {
                    return Err(self.error("a declaration inside an element"));
                } else if self.starts_with("</") {
                    self.advance(2);
                    let name = self.name()?;
                    self.skip_whitespace();
                    if !self.starts_with(">") {
                        return Err(self.error("an end tag is not closed"));
                    }
                    self.advance(1);
                    let finished = open
                        .pop()
                        .ok_or_else(|| self.error("an end tag without a start tag"))?;
                    if finished.qualified_name != name {
                        return Err(self.error("an end tag does not match its start tag"));
                    }
                    match open.last_mut() {
                        Some(parent) => parent.children.push(finished),
                        None => return Ok(finished),
                    }
                } else {
                    self.count_element()?;
                    let (element, closed) = self.start_tag()?;
                    if closed {
                        if let Some(parent) = open.last_mut() {
                            parent.children.push(element);
                        }
                    } else {
                        if open.len() >= ELEMENT_DEPTH_MAX {
                            return Err(Iso20022Error::LimitExceeded {
                                limit_name: "element_depth_max",
                                limit: ELEMENT_DEPTH_MAX,
                            });
                        }
                        open.push(element);
                    }
                }
            }
        }
    }

    /// XML reads every line end as a line feed.
    fn normalize_line_ends(text: &str) -> String {
        text.replace("\r\n", "\n").replace('\r', "\n")
    }

    /// Replaces entity and character references and normalizes line ends. `position` is
    /// where `raw` starts in the input, for errors.
    fn decode(raw: &str, position: usize) -> Result<String, Iso20022Error> {
        let error = |reason| Iso20022Error::MalformedXml { position, reason };
        if !raw.chars().all(is_xml_char) {
            return Err(error("a character XML does not allow"));
        }
        let raw = normalize_line_ends(raw);
        if !raw.contains('&') {
            return Ok(raw);
        }
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        while let Some(ampersand) = rest.find('&') {
            out.push_str(rest.get(..ampersand).unwrap_or(""));
            let after = rest.get(ampersand.saturating_add(1)..).unwrap_or("");
            let semicolon = after
                .find(';')
                .filter(|end| *end <= 10)
                .ok_or_else(|| error("a '&' that starts no entity or character reference"))?;
            let reference = after.get(..semicolon).unwrap_or("");
            let decoded = match reference {
                "lt" => '<',
                "gt" => '>',
                "amp" => '&',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let number = if let Some(hex) = reference
                        .strip_prefix("#x")
                        .or_else(|| reference.strip_prefix("#X"))
                    {
                        u32::from_str_radix(hex, 16).ok()
                    } else if let Some(decimal) = reference.strip_prefix('#') {
                        decimal.parse::<u32>().ok()
                    } else {
                        return Err(error("an unknown entity"));
                    };
                    number
                        .and_then(char::from_u32)
                        .filter(|ch| is_xml_char(*ch))
                        .ok_or_else(|| error("a character reference to no XML character"))?
                }
            };
            out.push(decoded);
            rest = after.get(semicolon.saturating_add(1)..).unwrap_or("");
        }
        out.push_str(rest);
        Ok(out)
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

        use super::*;

        #[test]
        fn entities_character_references_and_cdata_are_decoded() {
            let root = parse(
                "<?xml version=\"1.0\"?><!-- hi --><a x='1 &amp; 2'>&lt;&#65;&#x42;<![CDATA[<&>]]></a>",
            )
            .unwrap();
            assert_eq!(root.text, "<AB<&>");
            assert_eq!(root.attribute("x"), Some("1 & 2"));
        }

        #[test]
        fn prefixed_elements_are_matched_by_local_name() {
            let root = parse("<p:Document xmlns:p=\"urn:x\"><p:A><p:B>b</p:B></p:A></p:Document>")
                .unwrap();
            assert_eq!(root.local_name(), "Document");
            assert_eq!(root.namespace(), Some("urn:x"));
            assert_eq!(root.child("A").unwrap().child("B").unwrap().text, "b");
        }

        #[test]
        fn malformed_documents_are_refused() {
            for input in [
                "",
                "text",
                "<a>",
                "<a></b>",
                "<a><b></a></b>",
                "<a>&unknown;</a>",
                "<a>& </a>",
                "<a>&#0;</a>",
                "<a x=1></a>",
                "<a x='1' x='2'></a>",
                "<a x='1'y='2'></a>",
                "<a></a><b></b>",
                "<a></a>trailing",
                "<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
                "<a><!-- unclosed </a>",
                "<a>\u{1}</a>",
                "</a>",
                "<1a></1a>",
            ] {
                let error = parse(input).unwrap_err();
                assert_eq!(error.code(), "iso20022_malformed_xml", "{input:?}: {error}");
            }
        }

        #[test]
        fn depth_and_element_count_are_bounded() {
            let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
            assert_eq!(
                parse(&deep).unwrap_err(),
                Iso20022Error::LimitExceeded {
                    limit_name: "element_depth_max",
                    limit: ELEMENT_DEPTH_MAX
                }
            );
            let wide = format!("<a>{}</a>", "<b/>".repeat(ELEMENT_COUNT_MAX));
            assert_eq!(
                parse(&wide).unwrap_err(),
                Iso20022Error::LimitExceeded {
                    limit_name: "element_count_max",
                    limit: ELEMENT_COUNT_MAX
                }
            );
            let large = format!("<a>{}</a>", "x".repeat(MESSAGE_SIZE_BYTES_MAX));
            assert_eq!(parse(&large).unwrap_err().code(), "iso20022_limit_exceeded");
        }

        #[test]
        fn multibyte_text_never_splits_a_character() {
            let root = parse("<a>é&amp;ü€</a>").unwrap();
            assert_eq!(root.text, "é&ü€");
            for end in 0.."<a>é&amp;ü€</a>".len() {
                if let Some(prefix) = "<a>é&amp;ü€</a>".get(..end) {
                    assert!(parse(prefix).is_err());
                }
            }
        }
    }
}
