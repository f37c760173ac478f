//! What a test asserts of a contract suite (`corebank_deposits::contract`,
//! `corebank_payments::contract`), whichever implementation it ran against.

/// Every check of a contract suite passed, and there were `count` of them; a failure names
/// every check that failed and why.
pub fn assert_suite_passed<'a>(
    checks: impl IntoIterator<Item = (&'a str, &'a Result<(), String>)>,
    count: usize,
) {
    let checks: Vec<_> = checks.into_iter().collect();
    let failures: Vec<String> = checks
        .iter()
        .filter_map(|(name, outcome)| outcome.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert_eq!(checks.len(), count);
    assert!(
        failures.is_empty(),
        "contract failures:\n{}",
        failures.join("\n")
    );
}
