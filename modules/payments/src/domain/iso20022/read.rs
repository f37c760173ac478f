//! Reading the three messages from XML, tolerantly: prefixes or a default namespace, comments,
//! optional elements the module does not use, and the places ISO 20022 lets a sender put a
//! value (the transaction or the whole group) are all accepted. Only the elements we use are
//! looked at, and every refusal names the message and the path of the element.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use corebank_kernel::{Currency, Money};

use super::error::{Iso20022Error, excerpt};
use super::types::{
    Bic, CreditTransfer, Iban, Iso20022Message, Max35Text, Max140Text, PACS_002_MESSAGE_NAME,
    PACS_002_NAMESPACE, PACS_004_MESSAGE_NAME, PACS_004_NAMESPACE, PACS_008_MESSAGE_NAME,
    PACS_008_NAMESPACE, PaymentAmount, PaymentReturn, ReasonCode, StatusReport, TransactionStatus,
    Uetr,
};
use super::xml::{self, Element};

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
    /// Reads a pacs.008.001.08 with one transaction.
    pub fn parse_pacs008(xml: &str) -> Result<CreditTransfer, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_008_NAMESPACE, PACS_008_MESSAGE_NAME)?;
        read_credit_transfer(&root)
    }
}

impl StatusReport {
    /// Reads a pacs.002.001.10 with one transaction status.
    pub fn parse_pacs002(xml: &str) -> Result<StatusReport, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_002_NAMESPACE, PACS_002_MESSAGE_NAME)?;
        read_status_report(&root)
    }
}

impl PaymentReturn {
    /// Reads a pacs.004.001.09 with one transaction.
    pub fn parse_pacs004(xml: &str) -> Result<PaymentReturn, Iso20022Error> {
        let root = xml::parse(xml)?;
        expect_namespace(&root, PACS_004_NAMESPACE, PACS_004_MESSAGE_NAME)?;
        read_payment_return(&root)
    }
}

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
    fn new(message: &'static str) -> Reader {
        Reader { message }
    }

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

    /// The id of the credit transfer a status report or a return is about: the transaction's
    /// (`OrgnlGrpInf/OrgnlMsgId`), or failing that the whole group's.
    fn original_message_id(
        &self,
        tx: &Element,
        tx_path: &str,
        group: Option<&Element>,
        group_path: &str,
    ) -> Result<Max35Text, Iso20022Error> {
        match (self.find(tx, "OrgnlGrpInf/OrgnlMsgId"), group) {
            (Some(_), _) => self.max35(tx, tx_path, "OrgnlGrpInf/OrgnlMsgId"),
            (None, Some(group)) => self.max35(group, group_path, "OrgnlMsgId"),
            (None, None) => Err(self.missing(tx_path, "OrgnlGrpInf/OrgnlMsgId")),
        }
    }

    /// The message body `body_name` under the `Document` root, its group header and the
    /// header's path.
    fn group_header<'e>(
        &self,
        root: &'e Element,
        body_name: &str,
    ) -> Result<(&'e Element, &'e Element, String), Iso20022Error> {
        let body = self.element(root, "Document", body_name)?;
        let header = self.element(body, body_name, "GrpHdr")?;
        Ok((body, header, format!("{body_name}/GrpHdr")))
    }

    /// The only transaction `tx_name` of the message body `body_name`, and its path.
    fn transaction<'e>(
        &self,
        body: &'e Element,
        body_name: &str,
        tx_name: &str,
    ) -> Result<(&'e Element, String), Iso20022Error> {
        let tx = self.single(body, body_name, tx_name)?;
        Ok((tx, format!("{body_name}/{tx_name}")))
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
    let r = Reader::new(PACS_008_MESSAGE_NAME);
    let (body, header, header_path) = r.group_header(root, "FIToFICstmrCdtTrf")?;
    r.one_transaction(header, &header_path)?;
    let (tx, tx_path) = r.transaction(body, "FIToFICstmrCdtTrf", "CdtTrfTxInf")?;

    let instructed_amount = r.amount(tx, &tx_path, "IntrBkSttlmAmt")?;
    if r.find(tx, "InstdAmt").is_some() {
        let instructed = r.amount(tx, &tx_path, "InstdAmt")?;
        if instructed != instructed_amount {
            return Err(r.unsupported(format!(
                "the instructed amount {instructed} differs from the interbank settlement \
                 amount {instructed_amount}: charges and currency exchange are not handled"
            )));
        }
    }
    // The settlement date is the transaction's, or failing that the whole message's.
    let interbank_settlement_date = if r.find(tx, "IntrBkSttlmDt").is_some() {
        r.date(tx, &tx_path, "IntrBkSttlmDt")?
    } else if r.find(header, "IntrBkSttlmDt").is_some() {
        r.date(header, &header_path, "IntrBkSttlmDt")?
    } else {
        return Err(r.missing(&tx_path, "IntrBkSttlmDt"));
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
                Some(_) => Some(r.max140(tx, &tx_path, "RmtInf/Ustrd")?),
                None => None,
            }
        }
    };

    Ok(CreditTransfer {
        message_id: r.max35(header, &header_path, "MsgId")?,
        created_at: r.date_time(header, &header_path, "CreDtTm")?,
        end_to_end_id: r.max35(tx, &tx_path, "PmtId/EndToEndId")?,
        uetr: r.uetr(tx, &tx_path, "PmtId/UETR")?,
        instructed_amount,
        interbank_settlement_date,
        debtor_name: r.max140(tx, &tx_path, "Dbtr/Nm")?,
        debtor_account: r.iban(tx, &tx_path, "DbtrAcct/Id/IBAN")?,
        debtor_agent: r.bic(tx, &tx_path, "DbtrAgt/FinInstnId/BICFI")?,
        creditor_name: r.max140(tx, &tx_path, "Cdtr/Nm")?,
        creditor_account: r.iban(tx, &tx_path, "CdtrAcct/Id/IBAN")?,
        creditor_agent: r.bic(tx, &tx_path, "CdtrAgt/FinInstnId/BICFI")?,
        remittance_information,
    })
}

fn read_status_report(root: &Element) -> Result<StatusReport, Iso20022Error> {
    let r = Reader::new(PACS_002_MESSAGE_NAME);
    let (body, header, header_path) = r.group_header(root, "FIToFIPmtStsRpt")?;
    let (tx, tx_path) = r.transaction(body, "FIToFIPmtStsRpt", "TxInfAndSts")?;
    let group_path = "FIToFIPmtStsRpt/OrgnlGrpInfAndSts";
    let group = body.child("OrgnlGrpInfAndSts");

    let original_message_id = r.original_message_id(tx, &tx_path, group, group_path)?;
    // Likewise the status: the transaction's, or the whole group's.
    let status_code = match (r.find(tx, "TxSts"), group.and_then(|g| g.child("GrpSts"))) {
        (Some(status), _) | (None, Some(status)) => status.text.trim(),
        (None, None) => return Err(r.missing(&tx_path, "TxSts")),
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
            Some(r.reason(tx, &tx_path, "StsRsnInf/Rsn/Cd")?)
        }
        Some(_) => return Err(r.unsupported("a proprietary status reason (Rsn/Prtry)")),
    };

    Ok(StatusReport {
        message_id: r.max35(header, &header_path, "MsgId")?,
        created_at: r.date_time(header, &header_path, "CreDtTm")?,
        original_message_id,
        original_end_to_end_id: r.max35(tx, &tx_path, "OrgnlEndToEndId")?,
        original_uetr: r.uetr(tx, &tx_path, "OrgnlUETR")?,
        status,
        reason,
    })
}

fn read_payment_return(root: &Element) -> Result<PaymentReturn, Iso20022Error> {
    let r = Reader::new(PACS_004_MESSAGE_NAME);
    let (body, header, header_path) = r.group_header(root, "PmtRtr")?;
    r.one_transaction(header, &header_path)?;
    let (tx, tx_path) = r.transaction(body, "PmtRtr", "TxInf")?;
    let group_path = "PmtRtr/OrgnlGrpInf";
    let group = body.child("OrgnlGrpInf");

    let original_message_id = r.original_message_id(tx, &tx_path, group, group_path)?;
    // The reason is the transaction's, or failing that the whole group's.
    let reason_path = "RtrRsnInf/Rsn/Cd";
    let proprietary = || r.unsupported("a proprietary return reason (Rsn/Prtry)");
    let reason = if let Some(reason) = r.find(tx, "RtrRsnInf/Rsn") {
        if reason.child("Cd").is_none() {
            return Err(proprietary());
        }
        r.reason(tx, &tx_path, reason_path)?
    } else if let Some(group) = group.filter(|g| r.find(g, "RtrRsnInf/Rsn").is_some()) {
        if r.find(group, reason_path).is_none() {
            return Err(proprietary());
        }
        r.reason(group, group_path, reason_path)?
    } else {
        return Err(r.missing(&tx_path, reason_path));
    };

    Ok(PaymentReturn {
        message_id: r.max35(header, &header_path, "MsgId")?,
        created_at: r.date_time(header, &header_path, "CreDtTm")?,
        original_message_id,
        original_end_to_end_id: r.max35(tx, &tx_path, "OrgnlEndToEndId")?,
        original_uetr: r.uetr(tx, &tx_path, "OrgnlUETR")?,
        returned_amount: r.amount(tx, &tx_path, "RtrdIntrBkSttlmAmt")?,
        reason,
    })
}
