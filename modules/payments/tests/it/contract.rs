//! The payments contract suite (`corebank_payments::contract`) against this module's own
//! gRPC server. The legacy adapter runs the same suite against itself.

use crate::common;
use corebank_api::payments::v1::payments_client::PaymentsClient;

#[tokio::test]
async fn the_payments_module_passes_the_payments_contract_suite() {
    let h = common::start(common::Setup::default()).await;
    let fixtures = corebank_payments::contract::Fixtures {
        funded: h.account("1000.00").await,
        other: h.account("0").await,
    };
    // Channels reach payments through the gateway: the suite calls as the gateway.
    let client = PaymentsClient::new(h.payments_channel());
    let results = corebank_payments::contract::run(client, &fixtures).await;
    assert_eq!(results.len(), 7);
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{}: {e}", r.name)))
        .collect();
    assert!(
        failures.is_empty(),
        "contract failures:\n{}",
        failures.join("\n")
    );
}
