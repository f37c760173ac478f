//! Writing the three messages as XML: pacs.008.001.08, pacs.002.001.10 and pacs.004.001.09.
//!
//! Written by hand, as indented text, on purpose: each message is a fixed sequence of some
//! thirty elements, and a line per element reads like the XSD it follows, which quick-xml's
//! `Writer` would only wrap in events and `Result`s that cannot fail here. What must be
//! exact is delegated: every text and attribute value goes through quick-xml's `escape`
//! (all five reserved characters), and the element names are constants of this file. The
//! values are validated when they are built, so a message that exists is one the XSD accepts
//! (`tests/iso20022_xsd.rs` checks each against it with xmllint).

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use quick_xml::escape::escape;

use super::types::{
    Bic, CreditTransfer, Iban, Max35Text, Max140Text, PACS_002_NAMESPACE, PACS_004_NAMESPACE,
    PACS_008_MESSAGE_NAME, PACS_008_NAMESPACE, PaymentAmount, PaymentReturn, ReasonCode,
    StatusReport, Uetr,
};

impl CreditTransfer {
    /// The pacs.008.001.08 document for this credit transfer.
    pub fn to_pacs008(&self) -> String {
        let mut w = Writer::new(PACS_008_NAMESPACE);
        w.open("FIToFICstmrCdtTrf");
        w.cleared_group_header(&self.message_id, self.created_at);
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
        w.original(
            &self.original_message_id,
            &self.original_end_to_end_id,
            &self.original_uetr,
        );
        w.leaf("TxSts", self.status.code());
        if let Some(reason) = &self.reason {
            w.reason("StsRsnInf", reason);
        }
        w.close("TxInfAndSts");
        w.close("FIToFIPmtStsRpt");
        w.finish()
    }
}

impl PaymentReturn {
    /// The pacs.004.001.09 document for this payment return.
    pub fn to_pacs004(&self) -> String {
        let mut w = Writer::new(PACS_004_NAMESPACE);
        w.open("PmtRtr");
        w.cleared_group_header(&self.message_id, self.created_at);
        w.open("TxInf");
        w.original(
            &self.original_message_id,
            &self.original_end_to_end_id,
            &self.original_uetr,
        );
        w.amount("RtrdIntrBkSttlmAmt", &self.returned_amount);
        w.leaf("ChrgBr", "SLEV");
        w.reason("RtrRsnInf", &self.reason);
        w.close("TxInf");
        w.close("PmtRtr");
        w.finish()
    }
}

fn format_date_time(at: DateTime<Utc>) -> String {
    // As many fractional digits as the instant has, so that reading it back is exact.
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn format_date(date: NaiveDate) -> String {
    date.format("%Y-%m-%d").to_string()
}

/// Writes an indented document. Element names are the constants of this file; every text
/// and attribute value goes through quick-xml's `escape`.
struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn new(namespace: &str) -> Writer {
        let mut out = String::with_capacity(2048);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Document xmlns=\"");
        out.push_str(&escape(namespace));
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
            self.out.push_str(&escape(value));
            self.out.push('"');
        }
        self.out.push('>');
        self.out.push_str(&escape(text));
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push_str(">\n");
    }

    /// An amount with exactly its currency's minor units: `<X Ccy="EUR">100.50</X>`.
    fn amount(&mut self, name: &str, amount: &PaymentAmount) {
        let text = amount.money().amount_string();
        self.leaf_with_attribute(name, Some(("Ccy", amount.currency().code())), &text);
    }

    /// The group header of a message with one transaction settled through the clearing
    /// system (pacs.008, pacs.004).
    fn cleared_group_header(&mut self, message_id: &Max35Text, created_at: DateTime<Utc>) {
        self.open("GrpHdr");
        self.leaf("MsgId", message_id.as_str());
        self.leaf("CreDtTm", &format_date_time(created_at));
        self.leaf("NbOfTxs", "1");
        self.open("SttlmInf");
        self.leaf("SttlmMtd", "CLRG");
        self.close("SttlmInf");
        self.close("GrpHdr");
    }

    /// The credit transfer a status report or a return is about (pacs.002, pacs.004).
    fn original(&mut self, message_id: &Max35Text, end_to_end_id: &Max35Text, uetr: &Uetr) {
        self.open("OrgnlGrpInf");
        self.leaf("OrgnlMsgId", message_id.as_str());
        self.leaf("OrgnlMsgNmId", PACS_008_MESSAGE_NAME);
        self.close("OrgnlGrpInf");
        self.leaf("OrgnlEndToEndId", end_to_end_id.as_str());
        self.leaf("OrgnlUETR", &uetr.to_string());
    }

    /// A reason given by its code: `<StsRsnInf><Rsn><Cd>AC04</Cd></Rsn></StsRsnInf>`.
    fn reason(&mut self, name: &str, reason: &ReasonCode) {
        self.nested_leaf(name, "Rsn", "Cd", reason.as_str());
    }

    fn party(&mut self, name: &str, party_name: &Max140Text) {
        self.open(name);
        self.leaf("Nm", party_name.as_str());
        self.close(name);
    }

    fn account(&mut self, name: &str, iban: &Iban) {
        self.nested_leaf(name, "Id", "IBAN", iban.as_str());
    }

    fn agent(&mut self, name: &str, bic: &Bic) {
        self.nested_leaf(name, "FinInstnId", "BICFI", bic.as_str());
    }

    /// `<outer><inner><name>text</name></inner></outer>`.
    fn nested_leaf(&mut self, outer: &str, inner: &str, name: &str, text: &str) {
        self.open(outer);
        self.open(inner);
        self.leaf(name, text);
        self.close(inner);
        self.close(outer);
    }

    fn finish(mut self) -> String {
        self.out.push_str("</Document>\n");
        self.out
    }
}
