//! The rail boundary (issue 12, "One door"): the bank takes a delivery only from the rail's
//! certificate, signed with a rail key over this body and path, recently, once; anything
//! else is refused and changes nothing. The simulator holds the bank to the same rules.

use crate::common::*;
use chrono::Utc;
use corebank_payments::app::messages;
use corebank_payments::rail_signature::{self, Exchange, RailKeys, SIGNATURE_WINDOW_MS};
use corebank_service::internal::component_names::{GATEWAY, PAYMENTS, RAIL};
use rust_decimal::Decimal;
use uuid::Uuid;

/// What a delivery could have changed: the creditor's books and the payments schema's rows.
#[derive(Debug, PartialEq, Eq)]
struct Books {
    creditor_posted: String,
    inbound_payments: i64,
    outbox_events: i64,
    status_reports: i64,
    deliveries_taken: i64,
}

async fn books(h: &Harness, creditor: &str) -> Books {
    let client = h.database.db_for("payments").client().await.unwrap();
    let count = async |sql: &str| -> i64 { client.query_one(sql, &[]).await.unwrap().get(0) };
    Books {
        creditor_posted: h.balances(creditor).await.0,
        inbound_payments: count("SELECT count(*) FROM payments WHERE direction = 'inbound'").await,
        outbox_events: count("SELECT count(*) FROM outbox").await,
        status_reports: count("SELECT count(*) FROM status_reports").await,
        deliveries_taken: count("SELECT count(*) FROM rail_deliveries").await,
    }
}

/// A pacs.008 another bank sends to `creditor` through the rail.
fn credit_transfer(creditor: &str, amount: &str) -> String {
    messages::inbound_pacs008(
        Uuid::new_v4(),
        creditor,
        amount.parse::<Decimal>().unwrap(),
        "EUR",
        "Max Mustermann",
    )
    .unwrap()
}

/// A started bank, a creditor account there with nothing on it, and a pacs.008 of 25.00 to
/// it: what every delivery test starts from.
async fn a_creditor_and_a_transfer_to_it() -> (Harness, String, String) {
    let h = start(Setup::default()).await;
    let creditor = h.account("0").await;
    let xml = credit_transfer(&creditor, "25.00");
    (h, creditor, xml)
}

/// Posts `xml` to the bank's pacs.008 endpoint from the rail's certificate, with `signature`.
async fn pacs008_from_the_rail(h: &Harness, signature: Option<&str>, xml: &str) -> Answer {
    h.post_to_bank(RAIL, "/pacs008", signature, xml).await
}

/// Asserts that the bank refused a delivery with `status` and the refusal `code`.
fn assert_refused(answer: &Answer, status: u16, code: &str) {
    assert_eq!((answer.status, answer.code()), (status, code.to_owned()));
}

#[tokio::test]
async fn a_forged_delivery_is_refused_with_401_and_changes_nothing() {
    let (h, creditor, xml) = a_creditor_and_a_transfer_to_it().await;
    let before = books(&h, &creditor).await;

    let unsigned = pacs008_from_the_rail(&h, None, &xml).await;
    assert_refused(&unsigned, 401, "signature_missing");
    // A key the bank does not hold, under a name it does not know, or under its own name.
    let stranger = RailKeys::generate("mallory").unwrap();
    let signature = h.signature(&stranger, "/pacs008", &xml);
    let unknown = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_refused(&unknown, 401, "unknown_key");
    let impostor = RailKeys::generate(h.rail_keys.signing_key_id()).unwrap();
    let signature = h.signature(&impostor, "/pacs008", &xml);
    let forged = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_refused(&forged, 401, "signature_invalid");
    let refusal: serde_json::Value = serde_json::from_str(&forged.body).unwrap();
    assert_eq!(refusal["retry_safe"], false);
    assert!(
        refusal["message"]
            .as_str()
            .unwrap()
            .contains("does not match")
    );
    let malformed = pacs008_from_the_rail(&h, Some("v1;kid=test-1;sig=x"), &xml).await;
    assert_refused(&malformed, 401, "signature_malformed");
    // Signed by the right key, but long ago.
    let path = "/payments/rail/v1/pacs008";
    let exchange = Exchange::Request {
        method: "POST",
        path,
    };
    let long_ago =
        Utc::now().timestamp_millis() - i64::try_from(SIGNATURE_WINDOW_MS).unwrap() - 1_000;
    let signature = h
        .rail_keys
        .sign_at(exchange, xml.as_bytes(), long_ago, Uuid::new_v4());
    let expired = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_refused(&expired, 401, "signature_expired");

    assert_eq!(books(&h, &creditor).await, before);
}

#[tokio::test]
async fn an_altered_delivery_is_refused_with_401_and_changes_nothing() {
    let (h, creditor, signed) = a_creditor_and_a_transfer_to_it().await;
    let before = books(&h, &creditor).await;
    let altered = signed.replace("25.00", "2500.00");
    assert_ne!(signed, altered);

    // A valid signature over another body.
    let signature = h.signature(&h.rail_keys, "/pacs008", &signed);
    let answer = pacs008_from_the_rail(&h, Some(&signature), &altered).await;
    assert_refused(&answer, 401, "signature_invalid");
    // A valid signature over this body, for another path (a pacs.002's).
    let signature = h.signature(&h.rail_keys, "/pacs002", &signed);
    let answer = pacs008_from_the_rail(&h, Some(&signature), &signed).await;
    assert_refused(&answer, 401, "signature_invalid");

    assert_eq!(books(&h, &creditor).await, before);
}

#[tokio::test]
async fn a_replayed_delivery_is_refused_with_401_replayed_and_the_credit_is_taken_once() {
    let (h, creditor, xml) = a_creditor_and_a_transfer_to_it().await;
    let signature = h.signature(&h.rail_keys, "/pacs008", &xml);

    let first = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.starts_with("credited"), "{}", first.body);
    let after_first = books(&h, &creditor).await;
    assert_eq!(
        after_first,
        Books {
            creditor_posted: "25.00".to_owned(),
            inbound_payments: 1,
            outbox_events: 1,
            status_reports: 0,
            deliveries_taken: 1,
        }
    );

    // The same signed request again, byte for byte.
    let replay = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_refused(&replay, 401, "replayed");
    assert_eq!(books(&h, &creditor).await, after_first);

    // A pacs.002 replayed is refused the same way.
    let report = messages::pacs002_for("MSG", "E2E", Uuid::new_v4(), "ACSC", "").unwrap();
    let signature = h.signature(&h.rail_keys, "/pacs002", &report);
    let stored = h
        .post_to_bank(RAIL, "/pacs002", Some(&signature), &report)
        .await;
    assert_eq!(stored.status, 200, "{}", stored.body);
    let replay = h
        .post_to_bank(RAIL, "/pacs002", Some(&signature), &report)
        .await;
    assert_refused(&replay, 401, "replayed");
    let after_reports = books(&h, &creditor).await;
    assert_eq!(after_reports.status_reports, 1);
    assert_eq!(after_reports.deliveries_taken, 2);
}

#[tokio::test]
async fn a_properly_signed_delivery_is_taken_once_and_a_redelivery_of_its_uetr_changes_nothing() {
    let (h, creditor, xml) = a_creditor_and_a_transfer_to_it().await;

    let first = h.deliver("/pacs008", &xml).await;
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body.starts_with("credited"), "{}", first.body);
    // The rail delivers the same payment again, signed again (a new delivery): the bank
    // answers the same, and credits it once (by UETR).
    let again = h.deliver("/pacs008", &xml).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (200, first.body.as_str())
    );
    assert_eq!(
        books(&h, &creditor).await,
        Books {
            creditor_posted: "25.00".to_owned(),
            inbound_payments: 1,
            outbox_events: 1,
            status_reports: 0,
            deliveries_taken: 2,
        }
    );
}

#[tokio::test]
async fn a_signed_delivery_from_another_components_certificate_is_refused_with_403() {
    let (h, creditor, xml) = a_creditor_and_a_transfer_to_it().await;
    let before = books(&h, &creditor).await;
    let signature = h.signature(&h.rail_keys, "/pacs008", &xml);

    for intruder in [GATEWAY, PAYMENTS] {
        let answer = h
            .post_to_bank(intruder, "/pacs008", Some(&signature), &xml)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (403, "permission_denied".to_owned()),
            "{intruder}: {}",
            answer.body
        );
    }
    assert_eq!(books(&h, &creditor).await, before);
    // The refused attempts used up nothing: the rail's own delivery of it is taken.
    let from_the_rail = pacs008_from_the_rail(&h, Some(&signature), &xml).await;
    assert_eq!(from_the_rail.status, 200, "{}", from_the_rail.body);
    assert_eq!(books(&h, &creditor).await.creditor_posted, "25.00");
}

#[tokio::test]
async fn the_rail_simulator_takes_only_what_the_bank_signed_once_from_the_banks_certificate() {
    let h = start(Setup::default()).await;
    let debtor = h.account("0").await;
    let xml = messages::pacs008_for(
        "CBNKXXAAXXX",
        Uuid::new_v4(),
        &serde_json::json!({
            "uetr": Uuid::new_v4(), "debtor_account_id": debtor, "amount": "10.00",
            "currency": "EUR", "end_to_end_id": "E2E-1", "creditor_name": "Erika Mustermann",
            "creditor_account": "DE44500105175407324931", "creditor_agent_bic": "INGDDEFFXXX",
            "remittance_information": "",
        }),
    )
    .unwrap();
    let url = h.rail_url("/pacs008");
    let path = "/rail-sim/v1/pacs008";
    let sign = |keys: &RailKeys| {
        keys.sign(
            Exchange::Request {
                method: "POST",
                path,
            },
            xml.as_bytes(),
        )
    };
    let send = |client: reqwest::Client, signature: Option<String>| {
        let (url, xml) = (url.clone(), xml.clone());
        async move {
            let mut request = client.post(url).body(xml);
            if let Some(signature) = signature {
                request = request.header(rail_signature::HEADER, signature);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            (status, body["code"].as_str().unwrap_or_default().to_owned())
        }
    };
    let bank = || {
        corebank_testkit::clients(PAYMENTS)
            .http_client(RAIL, std::time::Duration::from_secs(30))
            .unwrap()
    };
    assert_eq!(
        send(bank(), None).await,
        (401, "signature_missing".to_owned())
    );
    let forged = sign(&RailKeys::generate(h.rail_keys.signing_key_id()).unwrap());
    assert_eq!(
        send(bank(), Some(forged)).await,
        (401, "signature_invalid".to_owned())
    );
    let signature = sign(&h.rail_keys);
    let gateway = corebank_testkit::clients(GATEWAY)
        .http_client(RAIL, std::time::Duration::from_secs(30))
        .unwrap();
    assert_eq!(
        send(gateway, Some(signature.clone())).await,
        (403, "permission_denied".to_owned())
    );
    assert_eq!(send(bank(), Some(signature.clone())).await.0, 202);
    assert_eq!(
        send(bank(), Some(signature)).await,
        (401, "replayed".to_owned())
    );
    // The controls are the rail operators' own: the bank may not originate payments.
    let control = bank().get(h.rail_url("/returns")).send().await.unwrap();
    assert_eq!(control.status(), 403);
}

#[tokio::test]
async fn deliveries_older_than_twice_the_window_are_forgotten_and_newer_ones_kept() {
    let h = start_without_executor().await;
    let client = h.database.db_for("payments").client().await.unwrap();
    let insert = async |age_seconds: i64| {
        client
            .execute(
                "INSERT INTO rail_deliveries (delivery_id, key_id, signed_at, received_at, path) \
                 VALUES ($1, 'test-1', now(), now() - $2::INT8 * INTERVAL '1 second', '/p')",
                &[&Uuid::new_v4(), &age_seconds],
            )
            .await
            .unwrap();
    };
    for _ in 0..3 {
        insert(11 * 60).await;
    }
    insert(9 * 60).await;
    insert(0).await;
    assert_eq!(h.payments.purge_rail_deliveries().await.unwrap(), 3);
    assert_eq!(h.payments.purge_rail_deliveries().await.unwrap(), 0);
    let kept: i64 = client
        .query_one("SELECT count(*) FROM rail_deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, 2);
}
