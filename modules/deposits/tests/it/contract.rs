//! The deposits contract suite (`corebank_deposits::contract`) against this module's own
//! gRPC server. The legacy adapter runs the same suite against itself.

use crate::common;
use corebank_testkit::contract::assert_suite_passed;

#[tokio::test]
async fn the_deposits_module_passes_the_deposits_contract_suite() {
    let h = common::start().await;
    let results = corebank_deposits::contract::run(h.client().await, "modern").await;
    assert_suite_passed(results.iter().map(|r| (r.name, &r.outcome)), 11);
}
