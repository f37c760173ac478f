//! The OFS codec: any request or response written and read back is the same; malformed
//! input, from a corpus and at random, is refused with an error and never panics.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test fails loudly, helpers included"
)]

use corebank_legacy_ofs::{Field, Function, Indicator, OfsError, Process, Request, Response};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    "[A-Z][A-Z0-9.]{0,20}"
}

/// Any text, including the characters OFS must escape.
fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just(','),
            Just('/'),
            Just('\\'),
            Just('\n'),
            Just('\r'),
            Just('='),
            Just(':'),
            any::<char>(),
        ],
        0..24,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

fn field() -> impl Strategy<Value = Field> {
    (name(), 1_u16..=999, 1_u16..=999, value()).prop_map(|(name, multi_value, sub_value, value)| {
        Field {
            name,
            multi_value,
            sub_value,
            value,
        }
    })
}

prop_compose! {
    fn request()(
        application in name(),
        version in prop_oneof![Just(String::new()), name()],
        function in prop_oneof![
            Just(Function::Input),
            Just(Function::Authorise),
            Just(Function::Reverse),
            Just(Function::See),
            Just(Function::Delete)
        ],
        process in prop_oneof![Just(Process::Process), Just(Process::Validate)],
        authorisers in proptest::option::of(any::<u8>()),
        user in value(),
        password in value(),
        transaction_id in value(),
        fields in prop::collection::vec(field(), 0..8),
    ) -> Request {
        Request {
            application,
            version,
            function,
            process,
            authorisers,
            user,
            password,
            transaction_id,
            fields,
        }
    }
}

fn response() -> impl Strategy<Value = Response> {
    (
        value(),
        value(),
        prop_oneof![
            Just(Indicator::Done),
            Just(Indicator::Error),
            Just(Indicator::Override),
            Just(Indicator::Offline)
        ],
        prop::collection::vec(field(), 0..8),
    )
        .prop_map(|(transaction_id, message_id, indicator, fields)| Response {
            transaction_id,
            message_id,
            indicator,
            fields,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn a_request_reads_back_as_written(request in request()) {
        let line = request.to_line();
        prop_assert!(!line.contains('\n') && !line.contains('\r'), "one line: {line:?}");
        // Empty-valued trailing fields are kept: an empty value is still a field.
        let read = Request::parse(&format!("{line}\n")).unwrap();
        prop_assert_eq!(read, request);
    }

    #[test]
    fn a_response_reads_back_as_written(response in response()) {
        let line = response.to_line();
        prop_assert!(!line.contains('\n'));
        prop_assert_eq!(Response::parse(&line).unwrap(), response);
    }

    #[test]
    fn any_text_is_read_or_refused_without_a_panic(text in "\\PC{0,200}") {
        let _ = Request::parse(&text);
        let _ = Response::parse(&text);
    }

    #[test]
    fn any_cut_of_a_valid_message_is_read_or_refused_without_a_panic(request in request(), cut in 0_usize..400) {
        let line = request.to_line();
        let mut end = cut.min(line.len());
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        let _ = Request::parse(&line[..end]);
        let _ = Response::parse(&line[..end]);
    }
}

#[test]
fn a_corpus_of_malformed_messages_is_refused_with_a_reason() {
    let corpus = [
        "",
        "\n",
        ",,,",
        "FUNDS.TRANSFER",
        "FUNDS.TRANSFER,/I/PROCESS",
        "funds.transfer,/I/PROCESS,U/P,",
        "FUNDS.TRANSFER,/X/PROCESS,U/P,",
        "FUNDS.TRANSFER,/I/MAYBE,U/P,",
        "FUNDS.TRANSFER,/I/PROCESS//999,U/P,",
        "FUNDS.TRANSFER,/I/PROCESS,USER,",
        "FUNDS.TRANSFER,/I/PROCESS,U/P/Q,",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT:0=1",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT:1:1:1=1",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT:x=1",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,amount=1",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT=1\\q",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,,AMOUNT=1\\",
        "FUNDS.TRANSFER,/I/PROCESS,U/P,\nDEBIT=1",
    ];
    for text in corpus {
        let error = Request::parse(text).unwrap_err();
        assert!(
            matches!(error, OfsError::Malformed { .. }),
            "{text:?}: {error:?}"
        );
        assert!(!error.to_string().is_empty());
    }
    for text in [
        "",
        "1",
        "A/B",
        "A/B/7",
        "A/B/1,X",
        "A/B/1,X:1000=1",
        "A/B\\x/1",
    ] {
        assert!(Response::parse(text).is_err(), "{text:?}");
    }
    let huge = format!("FUNDS.TRANSFER,/I/PROCESS,U/P,,A={}", "x".repeat(70_000));
    assert_eq!(Request::parse(&huge).unwrap_err().code(), "ofs_too_long");
    let many = format!("FUNDS.TRANSFER,/I/PROCESS,U/P,{}", ",A=1".repeat(1_001));
    assert_eq!(
        Request::parse(&many).unwrap_err().code(),
        "ofs_too_many_fields"
    );
}

/// Replays the cargo-fuzz corpus (`legacy-adapter/ofs/fuzz/corpus/`, grown by
/// `cargo +nightly fuzz run ofs_request|ofs_response`): each input is read or refused without
/// a panic, and what is read writes back to a line that reads back the same.
#[test]
fn the_fuzz_corpus_is_read_or_refused_and_round_trips() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut replayed = 0;
    for (target, is_request) in [("ofs_request", true), ("ofs_response", false)] {
        let dir = root.join(target);
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            replayed += 1;
            let Ok(text) = std::str::from_utf8(&bytes) else {
                continue;
            };
            if is_request {
                if let Ok(request) = Request::parse(text) {
                    assert_eq!(Request::parse(&request.to_line()).ok(), Some(request));
                }
            } else if let Ok(response) = Response::parse(text) {
                assert_eq!(Response::parse(&response.to_line()).ok(), Some(response));
            }
        }
    }
    assert!(replayed >= 8, "the corpus is missing: {replayed} inputs");
}
