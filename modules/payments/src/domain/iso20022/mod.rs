//! The ISO 20022 messages the payments module exchanges with a clearing rail: the credit
//! transfer it sends (pacs.008.001.08), the status report it receives (pacs.002.001.10) and
//! the payment return that moves money back (pacs.004.001.09). Pure and free of I/O:
//!
//! - `types`: each message as a struct of validated values (`Max35Text`, `Bic`, `Iban`,
//!   `PaymentAmount`, …), and the namespaces that name the messages;
//! - `write`: each message written to XML by hand, every text escaped by quick-xml (why by
//!   hand: see `write.rs`);
//! - `read`: each message read back, looking only at the elements we use;
//! - `xml`: underneath `read`, quick-xml's events gathered into a bounded tree of elements,
//!   with the checks of well-formed XML that quick-xml leaves to its caller;
//! - `error`: why a value or a message was refused.
//!
//! Every value type here is validated once, when it is built (`Max35Text::new`, `Bic::new`,
//! …), against the rule its ISO 20022 type sets in the official XSD (`modules/payments/xsd/`).
//! That is why writing a message cannot fail: a `CreditTransfer` that exists is one the
//! schema accepts. Reading can fail, and always does so with an `Iso20022Error`, never a panic.

mod error;
mod read;
mod types;
mod write;
mod xml;

pub use error::Iso20022Error;
pub use types::{
    Bic, CreditTransfer, Iban, Iso20022Message, Max35Text, Max140Text, PACS_002_MESSAGE_NAME,
    PACS_002_NAMESPACE, PACS_004_MESSAGE_NAME, PACS_004_NAMESPACE, PACS_008_MESSAGE_NAME,
    PACS_008_NAMESPACE, PaymentAmount, PaymentReturn, ReasonCode, StatusReport, TransactionStatus,
    Uetr,
};
pub use xml::MESSAGE_SIZE_BYTES_MAX;
