//! The payments module's use of the ISO 20022 messages (`domain::iso20022`): which fields go
//! where.

use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::domain::error::PaymentsError;
use corebank_kernel::Currency;

use crate::domain::iso20022::{
    Bic, CreditTransfer, Iban, Max35Text, Max140Text, PaymentAmount, PaymentReturn, ReasonCode,
    StatusReport, TransactionStatus, Uetr,
};

/// The bank the rail simulator pretends inbound payments come from.
const OTHER_BANK_BIC: &str = "OTHRXXBBXXX";
/// The account at the other bank the simulator's inbound payments come from.
const OTHER_BANK_ACCOUNT: &str = "DE89370400440532013000";
/// The prefix of our deposit accounts as IBAN-shaped identifiers on the rail.
const ACCOUNT_PREFIX: &str = "CB00";

fn invalid(error: impl std::fmt::Display) -> PaymentsError {
    PaymentsError::invalid("message", error.to_string())
}

/// A deposit account id as an IBAN-shaped identifier the rail carries: `CB00` and the UUID
/// in base 36 (25 characters).
pub fn account_iban(id: Uuid) -> String {
    let mut value = id.as_u128();
    let mut digits = Vec::with_capacity(25);
    for _ in 0..25 {
        let digit = u32::try_from(value % 36).unwrap_or(0);
        digits.push(
            char::from_digit(digit, 36)
                .unwrap_or('0')
                .to_ascii_uppercase(),
        );
        value /= 36;
    }
    digits.reverse();
    format!("{ACCOUNT_PREFIX}{}", digits.into_iter().collect::<String>())
}

/// The deposit account an IBAN-shaped identifier of ours names (`None`: not one of ours).
pub fn account_of_iban(iban: &str) -> Option<Uuid> {
    let digits = iban.strip_prefix(ACCOUNT_PREFIX)?;
    if digits.len() != 25 {
        return None;
    }
    let mut value: u128 = 0;
    for c in digits.chars() {
        value = value
            .checked_mul(36)?
            .checked_add(u128::from(c.to_digit(36)?))?;
    }
    Some(Uuid::from_u128(value))
}

/// An inbound credit transfer, as the module needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub msg_id: String,
    pub end_to_end_id: String,
    pub uetr: Uuid,
    pub amount: Decimal,
    pub currency: String,
    pub debtor_name: String,
    pub debtor_account: String,
    pub creditor_name: String,
    /// Our deposit account id when the identifier is one of ours, else the identifier.
    pub creditor_account: String,
    pub creditor_agent_bic: String,
    pub remittance_information: String,
}

fn text(input: &Value, name: &str) -> String {
    input
        .get(name)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn amount(amount: Decimal, currency: &str) -> Result<PaymentAmount, PaymentsError> {
    let currency = Currency::from_code(currency).map_err(invalid)?;
    PaymentAmount::new(amount, currency).map_err(invalid)
}

fn short_id(prefix: &str, id: Uuid) -> Result<Max35Text, PaymentsError> {
    Max35Text::new(format!(
        "{prefix}{}",
        &id.simple().to_string()[..32 - prefix.len()]
    ))
    .map_err(invalid)
}

fn uetr(id: Uuid) -> Result<Uetr, PaymentsError> {
    Uetr::from_uuid(id).map_err(invalid)
}

/// The pacs.008 of an outbound payment (the saga's input).
pub fn pacs008_for(
    bank_bic: &str,
    payment_id: Uuid,
    input: &Value,
) -> Result<String, PaymentsError> {
    let id = Uuid::parse_str(&text(input, "uetr")).map_err(invalid)?;
    let debtor = Uuid::parse_str(&text(input, "debtor_account_id")).map_err(invalid)?;
    let value: Decimal = text(input, "amount").parse().map_err(invalid)?;
    let remittance = text(input, "remittance_information");
    let transfer = CreditTransfer {
        message_id: short_id("", payment_id)?,
        created_at: Utc::now(),
        end_to_end_id: Max35Text::new(text(input, "end_to_end_id")).map_err(invalid)?,
        uetr: uetr(id)?,
        instructed_amount: amount(value, &text(input, "currency"))?,
        interbank_settlement_date: Utc::now().date_naive(),
        debtor_name: Max140Text::new("corebank customer").map_err(invalid)?,
        debtor_account: Iban::new(account_iban(debtor)).map_err(invalid)?,
        debtor_agent: Bic::new(bank_bic).map_err(invalid)?,
        creditor_name: Max140Text::new(text(input, "creditor_name")).map_err(invalid)?,
        creditor_account: Iban::new(text(input, "creditor_account")).map_err(invalid)?,
        creditor_agent: Bic::new(text(input, "creditor_agent_bic")).map_err(invalid)?,
        remittance_information: if remittance.is_empty() {
            None
        } else {
            Some(Max140Text::new(remittance).map_err(invalid)?)
        },
    };
    Ok(transfer.to_pacs008())
}

/// A pacs.008 another bank sends to ours (the rail simulator originates it): to the deposit
/// account `creditor_account` (a UUID) or to any IBAN-shaped identifier.
pub fn inbound_pacs008(
    id: Uuid,
    creditor_account: &str,
    value: Decimal,
    currency: &str,
    debtor_name: &str,
) -> Result<String, PaymentsError> {
    let creditor = match Uuid::parse_str(creditor_account) {
        Ok(account) => account_iban(account),
        Err(_) => creditor_account.to_owned(),
    };
    Ok(CreditTransfer {
        message_id: short_id("IN", id)?,
        created_at: Utc::now(),
        end_to_end_id: short_id("E2E", id)?,
        uetr: uetr(id)?,
        instructed_amount: amount(value, currency)?,
        interbank_settlement_date: Utc::now().date_naive(),
        debtor_name: Max140Text::new(debtor_name).map_err(invalid)?,
        debtor_account: Iban::new(OTHER_BANK_ACCOUNT).map_err(invalid)?,
        debtor_agent: Bic::new(OTHER_BANK_BIC).map_err(invalid)?,
        creditor_name: Max140Text::new("corebank customer").map_err(invalid)?,
        creditor_account: Iban::new(creditor).map_err(invalid)?,
        creditor_agent: Bic::new("CBNKXXAAXXX").map_err(invalid)?,
        remittance_information: None,
    }
    .to_pacs008())
}

/// Reads a pacs.008.
pub fn parse_inbound(xml: &str) -> Result<Inbound, PaymentsError> {
    let transfer = CreditTransfer::parse_pacs008(xml).map_err(invalid)?;
    let creditor = transfer.creditor_account.as_str();
    Ok(Inbound {
        msg_id: transfer.message_id.as_str().to_owned(),
        end_to_end_id: transfer.end_to_end_id.as_str().to_owned(),
        uetr: transfer.uetr.as_uuid(),
        amount: transfer.instructed_amount.amount(),
        currency: transfer.instructed_amount.currency().code().to_owned(),
        debtor_name: transfer.debtor_name.as_str().to_owned(),
        debtor_account: transfer.debtor_account.as_str().to_owned(),
        creditor_name: transfer.creditor_name.as_str().to_owned(),
        creditor_account: account_of_iban(creditor)
            .map_or_else(|| creditor.to_owned(), |id| id.to_string()),
        creditor_agent_bic: transfer.creditor_agent.as_str().to_owned(),
        remittance_information: transfer
            .remittance_information
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
    })
}

/// The pacs.002 answering a payment (`status`: ACSC, ACCP, RJCT or PDNG).
pub fn pacs002_for(
    msg_id: &str,
    end_to_end_id: &str,
    id: Uuid,
    status: &str,
    reason: &str,
) -> Result<String, PaymentsError> {
    Ok(StatusReport {
        message_id: short_id("STS", Uuid::new_v4())?,
        created_at: Utc::now(),
        original_message_id: Max35Text::new(msg_id).map_err(invalid)?,
        original_end_to_end_id: Max35Text::new(end_to_end_id).map_err(invalid)?,
        original_uetr: uetr(id)?,
        status: TransactionStatus::from_code(status)
            .ok_or_else(|| PaymentsError::invalid("status", format!("{status:?}")))?,
        reason: if reason.is_empty() {
            None
        } else {
            Some(ReasonCode::new(reason).map_err(invalid)?)
        },
    }
    .to_pacs002())
}

/// Reads a pacs.002: (UETR, status code, reason code).
pub fn parse_status(xml: &str) -> Result<(Uuid, String, String), PaymentsError> {
    let report = StatusReport::parse_pacs002(xml).map_err(invalid)?;
    Ok((
        report.original_uetr.as_uuid(),
        report.status.code().to_owned(),
        report
            .reason
            .map(|r| r.as_str().to_owned())
            .unwrap_or_default(),
    ))
}

/// The pacs.004 returning an inbound payment.
pub fn pacs004_for(
    _bank_bic: &str,
    inbound: &Inbound,
    reason: &str,
) -> Result<String, PaymentsError> {
    Ok(PaymentReturn {
        // The same return for the same payment, however often it is sent.
        message_id: short_id(
            "RTR",
            super::derived_id("return", &inbound.uetr.to_string()),
        )?,
        created_at: Utc::now(),
        original_message_id: Max35Text::new(inbound.msg_id.clone()).map_err(invalid)?,
        original_end_to_end_id: Max35Text::new(inbound.end_to_end_id.clone()).map_err(invalid)?,
        original_uetr: uetr(inbound.uetr)?,
        returned_amount: amount(inbound.amount, &inbound.currency)?,
        reason: ReasonCode::new(reason).map_err(invalid)?,
    }
    .to_pacs004())
}

/// Reads a pacs.004: its message id and the UETR it returns.
pub fn parse_return(xml: &str) -> Result<(String, Uuid), PaymentsError> {
    PaymentReturn::parse_pacs004(xml)
        .map(|r| (r.message_id.as_str().to_owned(), r.original_uetr.as_uuid()))
        .map_err(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deposit_account_travels_as_an_iban_shaped_identifier_and_back() {
        for _ in 0..200 {
            let id = Uuid::new_v4();
            let iban = account_iban(id);
            assert_eq!(iban.len(), 29);
            assert!(Iban::new(iban.clone()).is_ok(), "{iban}");
            assert_eq!(account_of_iban(&iban), Some(id));
        }
        assert_eq!(account_of_iban("DE44500105175407324931"), None);
        assert_eq!(account_of_iban("CB00!!!!"), None);
    }

    #[test]
    fn an_outbound_payment_becomes_a_pacs008_that_reads_back() {
        let uetr = Uuid::new_v4();
        let debtor = Uuid::new_v4();
        let input = serde_json::json!({
            "uetr": uetr, "debtor_account_id": debtor, "amount": "12.30", "currency": "EUR",
            "end_to_end_id": "E2E-1", "creditor_name": "A & B <Ltd>",
            "creditor_account": "DE44500105175407324931", "creditor_agent_bic": "INGDDEFFXXX",
            "remittance_information": "",
        });
        let xml = pacs008_for("CBNKXXAAXXX", Uuid::new_v4(), &input).unwrap();
        let inbound = parse_inbound(&xml).unwrap();
        assert_eq!(inbound.uetr, uetr);
        assert_eq!(inbound.amount, Decimal::new(1230, 2));
        assert_eq!(inbound.creditor_name, "A & B <Ltd>");
        assert_eq!(inbound.debtor_account, account_iban(debtor));
        let status = pacs002_for("MSG1", "E2E-1", uetr, "RJCT", "AC04").unwrap();
        assert_eq!(
            parse_status(&status).unwrap(),
            (uetr, "RJCT".to_owned(), "AC04".to_owned())
        );
    }
}
