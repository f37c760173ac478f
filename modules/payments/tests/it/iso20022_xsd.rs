//! The ISO 20022 messages (`domain::iso20022`) against the official XSDs vendored in
//! `modules/payments/xsd/` (validated with `xmllint`), read back into the same values, with
//! every reserved XML character escaped, and refused, never panicking, when malformed.

use std::path::PathBuf;
use std::process::Command;
use std::str::FromStr;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use corebank_kernel::Currency;
use corebank_payments::domain::iso20022::{
    Bic, CreditTransfer, Iban, Iso20022Error, Iso20022Message, Max35Text, Max140Text,
    PaymentAmount, PaymentReturn, ReasonCode, StatusReport, TransactionStatus, Uetr,
};
use rust_decimal::Decimal;
use uuid::Uuid;

const PACS_008_XSD: &str = "pacs.008.001.08.xsd";
const PACS_002_XSD: &str = "pacs.002.001.10.xsd";

fn xsd(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("xsd")
        .join(file)
}

/// Validates `xml` against the vendored schema with xmllint, failing with its output. A
/// missing xmllint fails the test: skipping would hide that nothing was checked.
fn assert_schema_valid(xsd_file: &str, xml: &str) {
    let version = Command::new("xmllint").arg("--version").output();
    if version.is_err() {
        panic!(
            "xmllint is not installed, so the ISO 20022 messages cannot be checked against \
             their XSDs: run `apt-get install libxml2-utils` (.ci/run installs it when missing)"
        );
    }
    let message = std::env::temp_dir().join(format!("corebank-iso20022-{}.xml", Uuid::new_v4()));
    std::fs::write(&message, xml).unwrap();
    let output = Command::new("xmllint")
        .arg("--noout")
        .arg("--nonet")
        .arg("--schema")
        .arg(xsd(xsd_file))
        .arg(&message)
        .output()
        .unwrap();
    std::fs::remove_file(&message).unwrap();
    assert!(
        output.status.success(),
        "xmllint refused the message against {xsd_file}:\n{}{}\nmessage:\n{xml}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn amount(text: &str, currency: Currency) -> PaymentAmount {
    PaymentAmount::new(Decimal::from_str(text).unwrap(), currency).unwrap()
}

fn created_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 15, 30).unwrap()
}

fn credit_transfer() -> CreditTransfer {
    CreditTransfer {
        message_id: Max35Text::new("CBNK20260302-000001").unwrap(),
        created_at: created_at(),
        end_to_end_id: Max35Text::new("INVOICE-2026-0042").unwrap(),
        uetr: Uetr::parse("8a562c67-ca16-48ba-b074-65581be6f011").unwrap(),
        instructed_amount: amount("1250.5", Currency::EUR),
        interbank_settlement_date: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
        debtor_name: Max140Text::new("Ada Lovelace").unwrap(),
        debtor_account: Iban::new("DE89370400440532013000").unwrap(),
        debtor_agent: Bic::new("CBNKDEFFXXX").unwrap(),
        creditor_name: Max140Text::new("Analytical Engines Ltd").unwrap(),
        creditor_account: Iban::new("GB29NWBK60161331926819").unwrap(),
        creditor_agent: Bic::new("NWBKGB2L").unwrap(),
        remittance_information: Some(Max140Text::new("Invoice 42, March").unwrap()),
    }
}

fn status_report(status: TransactionStatus, reason: Option<&str>) -> StatusReport {
    StatusReport {
        message_id: Max35Text::new("RAIL-STS-000777").unwrap(),
        created_at: created_at(),
        original_message_id: Max35Text::new("CBNK20260302-000001").unwrap(),
        original_end_to_end_id: Max35Text::new("INVOICE-2026-0042").unwrap(),
        original_uetr: Uetr::parse("8a562c67-ca16-48ba-b074-65581be6f011").unwrap(),
        status,
        reason: reason.map(|code| ReasonCode::new(code).unwrap()),
    }
}

fn payment_return() -> PaymentReturn {
    PaymentReturn {
        message_id: Max35Text::new("CBNK-RTR-000003").unwrap(),
        created_at: created_at(),
        original_message_id: Max35Text::new("OTHR20260302-99").unwrap(),
        original_end_to_end_id: Max35Text::new("E2E-FROM-OTHER-BANK").unwrap(),
        original_uetr: Uetr::parse("0f6c2a1e-3b4d-4e5f-9a6b-7c8d9e0f1a2b").unwrap(),
        returned_amount: amount("99.99", Currency::USD),
        reason: ReasonCode::new("AC04").unwrap(),
    }
}

/// Every way of cutting a message short is refused, and none panics.
fn assert_every_truncation_is_refused(xml: &str, parse: impl Fn(&str) -> bool) {
    let mut cut_points = 0;
    for end in 0..xml.trim_end().len() {
        if let Some(prefix) = xml.get(..end) {
            cut_points += 1;
            assert!(!parse(prefix), "a message cut at byte {end} was accepted");
        }
    }
    assert!(cut_points > 500);
}

#[test]
fn a_credit_transfer_is_valid_against_the_official_pacs_008_001_08_schema() {
    assert_schema_valid(PACS_008_XSD, &credit_transfer().to_pacs008());
    let without_remittance = CreditTransfer {
        remittance_information: None,
        ..credit_transfer()
    };
    assert_schema_valid(PACS_008_XSD, &without_remittance.to_pacs008());
}

#[test]
fn a_credit_transfer_carries_clearing_settlement_shared_charges_and_the_uetr() {
    let xml = credit_transfer().to_pacs008();
    assert!(xml.contains("xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\""));
    assert!(xml.contains("<SttlmMtd>CLRG</SttlmMtd>"));
    assert!(xml.contains("<ChrgBr>SLEV</ChrgBr>"));
    assert!(xml.contains("<NbOfTxs>1</NbOfTxs>"));
    assert!(xml.contains("<UETR>8a562c67-ca16-48ba-b074-65581be6f011</UETR>"));
    assert!(xml.contains("<CreDtTm>2026-03-02T09:15:30Z</CreDtTm>"));
    assert!(xml.contains("<IntrBkSttlmAmt Ccy=\"EUR\">1250.50</IntrBkSttlmAmt>"));
    assert!(xml.contains("<InstdAmt Ccy=\"EUR\">1250.50</InstdAmt>"));
}

#[test]
fn amounts_are_written_with_exactly_the_currencys_minor_units() {
    for (text, currency, written) in [
        ("1250.5", Currency::EUR, "1250.50"),
        ("7", Currency::USD, "7.00"),
        ("1500", Currency::JPY, "1500"),
        ("1.5", Currency::KWD, "1.500"),
        ("0.0001", Currency::from_code("CLF").unwrap(), "0.0001"),
        ("9999999999999999.99", Currency::EUR, "9999999999999999.99"),
    ] {
        let transfer = CreditTransfer {
            instructed_amount: amount(text, currency),
            ..credit_transfer()
        };
        let xml = transfer.to_pacs008();
        let element = format!(
            "<IntrBkSttlmAmt Ccy=\"{}\">{written}</IntrBkSttlmAmt>",
            currency.code()
        );
        assert!(xml.contains(&element), "{element} not in\n{xml}");
        assert_schema_valid(PACS_008_XSD, &xml);
        assert_eq!(CreditTransfer::parse_pacs008(&xml).unwrap(), transfer);
    }
}

#[test]
fn a_status_report_is_valid_against_the_official_pacs_002_001_10_schema_for_every_status() {
    for (status, reason) in [
        (TransactionStatus::AcceptedCustomerProfile, None),
        (TransactionStatus::AcceptedSettlementCompleted, None),
        (TransactionStatus::Rejected, Some("AC04")),
        (TransactionStatus::Rejected, Some("AM04")),
        (TransactionStatus::Pending, None),
    ] {
        let report = status_report(status, reason);
        let xml = report.to_pacs002();
        assert!(xml.contains(&format!("<TxSts>{}</TxSts>", status.code())));
        assert_schema_valid(PACS_002_XSD, &xml);
        assert_eq!(StatusReport::parse_pacs002(&xml).unwrap(), report);
    }
}

#[test]
fn a_credit_transfer_reads_back_as_the_same_value() {
    let transfer = credit_transfer();
    assert_eq!(
        CreditTransfer::parse_pacs008(&transfer.to_pacs008()).unwrap(),
        transfer
    );
    let precise = CreditTransfer {
        created_at: Utc.timestamp_opt(1_772_442_930, 123_456_789).unwrap(),
        remittance_information: None,
        ..credit_transfer()
    };
    assert_eq!(
        CreditTransfer::parse_pacs008(&precise.to_pacs008()).unwrap(),
        precise
    );
    assert_schema_valid(PACS_008_XSD, &precise.to_pacs008());
}

#[test]
fn a_payment_return_reads_back_as_the_same_value() {
    let payment_return = payment_return();
    let xml = payment_return.to_pacs004();
    assert!(xml.contains("xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.004.001.09\""));
    assert!(xml.contains("<RtrdIntrBkSttlmAmt Ccy=\"USD\">99.99</RtrdIntrBkSttlmAmt>"));
    assert!(xml.contains("<OrgnlMsgNmId>pacs.008.001.08</OrgnlMsgNmId>"));
    assert!(xml.contains("<SttlmMtd>CLRG</SttlmMtd>"));
    assert!(xml.contains("<Cd>AC04</Cd>"));
    assert_eq!(PaymentReturn::parse_pacs004(&xml).unwrap(), payment_return);
}

#[test]
fn any_of_the_three_messages_is_recognised_by_its_namespace() {
    let transfer = credit_transfer();
    let report = status_report(TransactionStatus::Rejected, Some("AC04"));
    let payment_return = payment_return();
    assert_eq!(
        Iso20022Message::parse(&transfer.to_pacs008()).unwrap(),
        Iso20022Message::CreditTransfer(transfer)
    );
    assert_eq!(
        Iso20022Message::parse(&report.to_pacs002()).unwrap(),
        Iso20022Message::StatusReport(report)
    );
    assert_eq!(
        Iso20022Message::parse(&payment_return.to_pacs004()).unwrap(),
        Iso20022Message::PaymentReturn(payment_return)
    );
}

#[test]
fn reserved_xml_characters_in_names_and_remittance_are_escaped_and_read_back() {
    let tricky = "O'Brien & <Sons> \"Ltd\"";
    let transfer = CreditTransfer {
        debtor_name: Max140Text::new(tricky).unwrap(),
        creditor_name: Max140Text::new("A&B <b>not bold</b> & 'quotes'").unwrap(),
        remittance_information: Some(Max140Text::new("</Ustrd><Ustrd>injected & ]]> é€").unwrap()),
        end_to_end_id: Max35Text::new("<&>\"'").unwrap(),
        ..credit_transfer()
    };
    let xml = transfer.to_pacs008();
    assert!(xml.contains("<Nm>O&apos;Brien &amp; &lt;Sons&gt; &quot;Ltd&quot;</Nm>"));
    assert!(xml.contains("<EndToEndId>&lt;&amp;&gt;&quot;&apos;</EndToEndId>"));
    assert!(xml.contains("<Ustrd>&lt;/Ustrd&gt;&lt;Ustrd&gt;injected &amp; ]]&gt; é€</Ustrd>"));
    assert_eq!(xml.matches("<Ustrd>").count(), 1);
    assert_schema_valid(PACS_008_XSD, &xml);
    assert_eq!(CreditTransfer::parse_pacs008(&xml).unwrap(), transfer);

    let report = StatusReport {
        original_end_to_end_id: Max35Text::new("a<b&c>d\"e'f").unwrap(),
        ..status_report(TransactionStatus::Rejected, Some("AM04"))
    };
    let xml = report.to_pacs002();
    assert_schema_valid(PACS_002_XSD, &xml);
    assert_eq!(StatusReport::parse_pacs002(&xml).unwrap(), report);

    let returned = PaymentReturn {
        original_message_id: Max35Text::new("'&'<>\"").unwrap(),
        ..payment_return()
    };
    assert_eq!(
        PaymentReturn::parse_pacs004(&returned.to_pacs004()).unwrap(),
        returned
    );
}

#[test]
fn truncated_messages_are_refused_without_panicking() {
    assert_every_truncation_is_refused(&credit_transfer().to_pacs008(), |xml| {
        CreditTransfer::parse_pacs008(xml).is_ok()
    });
    assert_every_truncation_is_refused(
        &status_report(TransactionStatus::Rejected, Some("AC04")).to_pacs002(),
        |xml| StatusReport::parse_pacs002(xml).is_ok(),
    );
    assert_every_truncation_is_refused(&payment_return().to_pacs004(), |xml| {
        PaymentReturn::parse_pacs004(xml).is_ok()
    });
    let cut = credit_transfer().to_pacs008();
    let error = CreditTransfer::parse_pacs008(cut.get(..cut.len() / 2).unwrap()).unwrap_err();
    assert_eq!(error.code(), "iso20022_malformed_xml");
}

#[test]
fn a_document_with_the_wrong_root_element_or_namespace_is_refused() {
    let transfer = credit_transfer().to_pacs008();
    let wrong_root = transfer
        .replace("<Document ", "<Message ")
        .replace("</Document>", "</Message>");
    let error = CreditTransfer::parse_pacs008(&wrong_root).unwrap_err();
    assert_eq!(error.code(), "iso20022_unexpected_document");
    assert!(error.to_string().contains("<Message>"), "{error}");

    let no_namespace = transfer.replace(
        " xmlns=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\"",
        "",
    );
    assert_eq!(
        CreditTransfer::parse_pacs008(&no_namespace)
            .unwrap_err()
            .code(),
        "iso20022_unexpected_document"
    );

    let report = status_report(TransactionStatus::AcceptedSettlementCompleted, None).to_pacs002();
    assert_eq!(
        CreditTransfer::parse_pacs008(&report).unwrap_err().code(),
        "iso20022_unexpected_document"
    );
    assert_eq!(
        StatusReport::parse_pacs002(&transfer).unwrap_err().code(),
        "iso20022_unexpected_document"
    );
    assert_eq!(
        PaymentReturn::parse_pacs004(&transfer).unwrap_err().code(),
        "iso20022_unexpected_document"
    );
    let other_version = transfer.replace("pacs.008.001.08", "pacs.008.001.13");
    assert_eq!(
        Iso20022Message::parse(&other_version).unwrap_err().code(),
        "iso20022_unexpected_document"
    );
}

#[test]
fn a_bad_amount_is_refused() {
    let xml = credit_transfer().to_pacs008();
    let settlement = "<IntrBkSttlmAmt Ccy=\"EUR\">1250.50</IntrBkSttlmAmt>";
    for replacement in [
        "<IntrBkSttlmAmt Ccy=\"EUR\">abc</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\"></IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">-1250.50</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">0.00</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">1250.505</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">1e3</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">1,250.50</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"EUR\">99999999999999999.99</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt Ccy=\"XXX\">1250.50</IntrBkSttlmAmt>",
        "<IntrBkSttlmAmt>1250.50</IntrBkSttlmAmt>",
    ] {
        let bad = xml.replace(settlement, replacement);
        let error = CreditTransfer::parse_pacs008(&bad).unwrap_err();
        assert_eq!(
            error.code(),
            "iso20022_invalid_element",
            "{replacement}: {error}"
        );
        assert!(
            error.to_string().contains("CdtTrfTxInf/IntrBkSttlmAmt"),
            "{error}"
        );
    }
    let mismatch = xml.replace(
        "<InstdAmt Ccy=\"EUR\">1250.50</InstdAmt>",
        "<InstdAmt Ccy=\"EUR\">1260.50</InstdAmt>",
    );
    assert_eq!(
        CreditTransfer::parse_pacs008(&mismatch).unwrap_err().code(),
        "iso20022_unsupported"
    );
    let returned = payment_return().to_pacs004().replace(">99.99<", ">99.9x<");
    assert_eq!(
        PaymentReturn::parse_pacs004(&returned).unwrap_err().code(),
        "iso20022_invalid_element"
    );
}

#[test]
fn missing_or_invalid_elements_are_refused_with_their_path() {
    let xml = credit_transfer().to_pacs008();
    let cases = [
        (
            "<UETR>8a562c67-ca16-48ba-b074-65581be6f011</UETR>",
            "",
            "iso20022_missing_element",
            "PmtId/UETR",
        ),
        (
            "<UETR>8a562c67-ca16-48ba-b074-65581be6f011</UETR>",
            "<UETR>8a562c67-ca16-18ba-b074-65581be6f011</UETR>",
            "iso20022_invalid_element",
            "PmtId/UETR",
        ),
        (
            "<BICFI>NWBKGB2L</BICFI>",
            "<BICFI>nwbkgb2l</BICFI>",
            "iso20022_invalid_element",
            "CdtrAgt/FinInstnId/BICFI",
        ),
        (
            "<IBAN>GB29NWBK60161331926819</IBAN>",
            "<IBAN>29GBNWBK</IBAN>",
            "iso20022_invalid_element",
            "CdtrAcct/Id/IBAN",
        ),
        (
            "<MsgId>CBNK20260302-000001</MsgId>",
            "<MsgId>123456789012345678901234567890123456</MsgId>",
            "iso20022_invalid_element",
            "GrpHdr/MsgId",
        ),
        (
            "<CreDtTm>2026-03-02T09:15:30Z</CreDtTm>",
            "<CreDtTm>yesterday</CreDtTm>",
            "iso20022_invalid_element",
            "GrpHdr/CreDtTm",
        ),
        (
            "<IntrBkSttlmDt>2026-03-02</IntrBkSttlmDt>",
            "<IntrBkSttlmDt>2026-02-30</IntrBkSttlmDt>",
            "iso20022_invalid_element",
            "IntrBkSttlmDt",
        ),
        (
            "<Nm>Ada Lovelace</Nm>",
            "<Nm></Nm>",
            "iso20022_invalid_element",
            "Dbtr/Nm",
        ),
        (
            "<NbOfTxs>1</NbOfTxs>",
            "<NbOfTxs>2</NbOfTxs>",
            "iso20022_unsupported",
            "NbOfTxs",
        ),
    ];
    for (from, to, code, path) in cases {
        let bad = xml.replace(from, to);
        let error = CreditTransfer::parse_pacs008(&bad).unwrap_err();
        assert_eq!(error.code(), code, "{to}: {error}");
        assert!(error.to_string().contains(path), "{to}: {error}");
        assert!(!error.is_retryable());
    }

    let report = status_report(TransactionStatus::Rejected, Some("AC04")).to_pacs002();
    let unknown_status = report.replace("<TxSts>RJCT</TxSts>", "<TxSts>ACSP</TxSts>");
    assert_eq!(
        StatusReport::parse_pacs002(&unknown_status)
            .unwrap_err()
            .code(),
        "iso20022_unsupported"
    );
    let proprietary = report.replace("<Cd>AC04</Cd>", "<Prtry>SOMETHING</Prtry>");
    assert_eq!(
        StatusReport::parse_pacs002(&proprietary)
            .unwrap_err()
            .code(),
        "iso20022_unsupported"
    );
    let returned = payment_return().to_pacs004();
    let without_reason = returned.replace("<Cd>AC04</Cd>", "");
    assert_eq!(
        PaymentReturn::parse_pacs004(&without_reason)
            .unwrap_err()
            .code(),
        "iso20022_unsupported"
    );
}

#[test]
fn several_transactions_in_one_message_are_refused() {
    let xml = credit_transfer().to_pacs008();
    let start = xml.find("  <CdtTrfTxInf>").unwrap();
    let end = xml.find("</CdtTrfTxInf>\n").unwrap() + "</CdtTrfTxInf>\n".len();
    let transaction = xml.get(start..end).unwrap();
    let doubled = xml.replacen(transaction, &transaction.repeat(2), 1);
    let error = CreditTransfer::parse_pacs008(&doubled).unwrap_err();
    assert_eq!(error.code(), "iso20022_unsupported", "{error}");
}

#[test]
fn messages_written_by_other_senders_are_read_tolerantly() {
    // A prefixed namespace, comments, CRLF line ends, an offset time, the settlement date on
    // the group header and the original message id only at group level.
    let report = "\u{FEFF}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n\
        <!-- from the rail -->\r\n\
        <ps:Document xmlns:ps=\"urn:iso:std:iso:20022:tech:xsd:pacs.002.001.10\">\r\n\
        <ps:FIToFIPmtStsRpt><ps:GrpHdr><ps:MsgId>RAIL-1</ps:MsgId>\
        <ps:CreDtTm>2026-03-02T10:15:30+01:00</ps:CreDtTm></ps:GrpHdr>\
        <ps:OrgnlGrpInfAndSts><ps:OrgnlMsgId>CBNK-1</ps:OrgnlMsgId>\
        <ps:OrgnlMsgNmId>pacs.008.001.08</ps:OrgnlMsgNmId></ps:OrgnlGrpInfAndSts>\
        <ps:TxInfAndSts><ps:OrgnlEndToEndId>E2E &#x26; 1</ps:OrgnlEndToEndId>\
        <ps:OrgnlUETR>8a562c67-ca16-48ba-b074-65581be6f011</ps:OrgnlUETR>\
        <ps:TxSts>ACSC</ps:TxSts></ps:TxInfAndSts></ps:FIToFIPmtStsRpt></ps:Document>\r\n";
    assert_schema_valid(PACS_002_XSD, report);
    let read = StatusReport::parse_pacs002(report).unwrap();
    assert_eq!(read.message_id.as_str(), "RAIL-1");
    assert_eq!(read.created_at, created_at());
    assert_eq!(read.original_message_id.as_str(), "CBNK-1");
    assert_eq!(read.original_end_to_end_id.as_str(), "E2E & 1");
    assert_eq!(read.status, TransactionStatus::AcceptedSettlementCompleted);
    assert_eq!(read.reason, None);

    let transfer = credit_transfer().to_pacs008();
    let moved_date = transfer
        .replace("      <IntrBkSttlmDt>2026-03-02</IntrBkSttlmDt>\n", "")
        .replace(
            "      <SttlmInf>",
            "      <IntrBkSttlmDt>2026-03-02</IntrBkSttlmDt>\n      <SttlmInf>",
        );
    assert_schema_valid(PACS_008_XSD, &moved_date);
    assert_eq!(
        CreditTransfer::parse_pacs008(&moved_date).unwrap(),
        credit_transfer()
    );
}

#[test]
fn cdata_character_references_and_a_prefixed_root_read_as_the_plain_message() {
    let xml = credit_transfer()
        .to_pacs008()
        .replace(
            "<Document xmlns=",
            "<p:Document xmlns:p=\"urn:iso:std:iso:20022:tech:xsd:pacs.008.001.08\" xmlns=",
        )
        .replace("</Document>", "</p:Document>")
        .replace(
            "<Nm>Ada Lovelace</Nm>",
            "<Nm><![CDATA[Ada]]> &#x4C;ove&#108;ace<!-- a comment --></Nm>",
        )
        .replace(
            "<Ustrd>Invoice 42, March</Ustrd>",
            "<Ustrd><![CDATA[Invoice 42]]>, <![CDATA[March]]></Ustrd>",
        );
    assert!(xml.contains("<p:Document ") && xml.contains("<Nm><![CDATA[Ada]]>"));
    assert!(xml.contains("<Ustrd><![CDATA["));
    assert_schema_valid(PACS_008_XSD, &xml);
    assert_eq!(
        CreditTransfer::parse_pacs008(&xml).unwrap(),
        credit_transfer()
    );
}

#[test]
fn value_types_refuse_what_the_schemas_refuse() {
    assert!(Max35Text::new("x".repeat(35)).is_ok());
    assert!(Max140Text::new("é".repeat(140)).is_ok());
    for refused in [
        Max35Text::new("x".repeat(36)).map(|_| ()),
        Max35Text::new("").map(|_| ()),
        Max35Text::new("line\nbreak").map(|_| ()),
        Max140Text::new("é".repeat(141)).map(|_| ()),
        Max140Text::new("nul\u{0}").map(|_| ()),
        Bic::new("DEUTDEFF50").map(|_| ()),
        Bic::new("DEUT1EFF").map(|_| ()),
        Bic::new("deutdeff").map(|_| ()),
        Iban::new("DE8").map(|_| ()),
        Iban::new("de89370400440532013000").map(|_| ()),
        Iban::new(format!("DE89{}", "1".repeat(31))).map(|_| ()),
        ReasonCode::new("AC045").map(|_| ()),
        ReasonCode::new("ac04").map(|_| ()),
        ReasonCode::new("").map(|_| ()),
        PaymentAmount::new(Decimal::ZERO, Currency::EUR).map(|_| ()),
        PaymentAmount::new(Decimal::from_str("-1").unwrap(), Currency::EUR).map(|_| ()),
        PaymentAmount::new(Decimal::from_str("1.001").unwrap(), Currency::EUR).map(|_| ()),
        PaymentAmount::new(
            Decimal::from_str("10000000000000000").unwrap(),
            Currency::EUR,
        )
        .map(|_| ()),
    ] {
        let error: Iso20022Error = refused.unwrap_err();
        assert_eq!(error.code(), "iso20022_invalid_value", "{error}");
        assert!(!error.is_retryable());
    }
    assert!(Uetr::parse("8a562c67-ca16-18ba-b074-65581be6f011").is_err());
    assert_eq!(
        TransactionStatus::from_code("RJCT"),
        Some(TransactionStatus::Rejected)
    );
    assert_eq!(TransactionStatus::from_code("ACCC"), None);
}
