//! Sanctions lists loaded from files in their published formats (written here into a temp
//! directory), and names screened against them with per-currency thresholds.

use crate::common::sample_lists::{lists, write};
use corebank_payments::app::sanctions::{SanctionsFiles, SanctionsList};
use corebank_payments::domain::sanctions::matching::Thresholds;

#[test]
fn an_exact_un_name_and_an_ofac_alias_hit_and_a_stranger_passes() {
    let dir = tempfile::tempdir().unwrap();
    let list = lists(&dir, "EUR:0.92,USD:0.90,*:0.93");
    assert_eq!(list.len(), 3);
    let exact = list.screen("Sidorov, Ivan Petrovich", "EUR");
    assert_eq!(exact.len(), 1);
    assert_eq!(
        (exact[0].list, exact[0].id.as_str()),
        ("un_consolidated", "6908555")
    );
    assert!(exact[0].score > 0.999);
    let alias = list.screen("Aero Caribbean", "EUR");
    assert_eq!(alias.len(), 1);
    assert_eq!(
        (alias[0].list, alias[0].listed_name.as_str()),
        ("ofac_sdn", "AERO-CARIBBEAN")
    );
    assert!(list.screen("Erika Mustermann", "EUR").is_empty());
}

#[test]
fn a_near_miss_passes_below_the_threshold_and_the_threshold_is_per_currency() {
    let dir = tempfile::tempdir().unwrap();
    let list = lists(&dir, "EUR:0.99,USD:0.90,*:0.93");
    // Close to "IVAN PETROVICH SIDOROV", not the same: held in USD, passes in EUR.
    assert!(list.screen("Ivan Petrovic Sidorova", "EUR").is_empty());
    assert_eq!(list.screen("Ivan Petrovic Sidorova", "USD").len(), 1);
}

#[test]
fn no_list_configured_is_an_empty_list_and_a_broken_file_names_its_line() {
    let empty = SanctionsList::load(&SanctionsFiles::default(), Thresholds::default()).unwrap();
    assert!(empty.is_empty());
    assert!(empty.screen("Ivan Petrovich Sidorov", "EUR").is_empty());

    let dir = tempfile::tempdir().unwrap();
    let broken = write(&dir, "sdn.csv", "36,\"AEROCARIBBEAN AIRLINES\",-0- \n");
    let error = SanctionsList::load(
        &SanctionsFiles {
            ofac_sdn_csv: Some(broken.clone()),
            ..SanctionsFiles::default()
        },
        Thresholds::default(),
    )
    .unwrap_err();
    assert_eq!(error.file, broken.display().to_string());
    assert_eq!(error.line, 1);
    let missing = SanctionsList::load(
        &SanctionsFiles {
            un_xml: Some(dir.path().join("absent.xml")),
            ..SanctionsFiles::default()
        },
        Thresholds::default(),
    )
    .unwrap_err();
    assert!(missing.to_string().contains("absent.xml"), "{missing}");
}
