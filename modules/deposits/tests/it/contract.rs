//! The deposits contract suite (`corebank_deposits::contract`) against this module's own
//! gRPC server. The legacy adapter runs the same suite against itself.

use crate::common;
#[tokio::test]
async fn the_deposits_module_passes_the_deposits_contract_suite() {
    let h = common::start().await;
    let results = corebank_deposits::contract::run(h.client().await, "modern").await;
    assert_eq!(results.len(), 11);
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
