//! The payments contract suite (`corebank_payments::contract`) against this module's own
//! gRPC server. The legacy adapter runs the same suite against itself.

use crate::common;
use corebank_api::payments::v1::payments_client::PaymentsClient;
use corebank_testkit::contract::assert_suite_passed;

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
    assert_suite_passed(results.iter().map(|r| (r.name, &r.outcome)), 7);
}
