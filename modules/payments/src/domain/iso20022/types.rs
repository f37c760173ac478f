//! The ISO 20022 value types (`Max35Text`, `Max140Text`, `Bic`, `Iban`, `ReasonCode`,
//! `Uetr`, `PaymentAmount`, `TransactionStatus`) and the three messages built from them
//! (`CreditTransfer`, `StatusReport`, `PaymentReturn`). Each value is checked once, when it is
//! built, against the rule of its type in the official XSD.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use corebank_kernel::{Currency, Money};
use rust_decimal::Decimal;

use super::error::{Iso20022Error, invalid_value};
use super::xml::is_xml_char;

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

/// ISO 20022 amounts (`ActiveCurrencyAndAmount`) carry at most 18 digits in all.
const AMOUNT_TOTAL_DIGITS_MAX: usize = 18;

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

/// `Debug` and `Display` as the text itself, and `FromStr` through the checking constructor.
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

        debug_and_display_as_str!($name);
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
