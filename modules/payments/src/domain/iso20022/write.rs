//! Writing the three messages as XML: pacs.008.001.08, pacs.002.001.10 and pacs.004.001.09.
//! Written by hand, as indented text: the element names are constants of this file and every
//! text and attribute value is escaped, so a message that exists is one the XSD accepts.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use super::types::{
    Bic, CreditTransfer, Iban, Max140Text, PACS_002_NAMESPACE, PACS_004_NAMESPACE,
    PACS_008_MESSAGE_NAME, PACS_008_NAMESPACE, PaymentAmount, PaymentReturn, StatusReport,
};

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
}

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
