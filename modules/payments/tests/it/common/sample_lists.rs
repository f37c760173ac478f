//! Sanctions lists in their published formats, small enough to read, written into a test's
//! temp directory: the UN consolidated list (XML) and OFAC's SDN list with its aliases (CSV).
#![allow(dead_code, reason = "each test file uses part of it")]

use corebank_payments::app::sanctions::{SanctionsFiles, SanctionsList};
use corebank_payments::domain::sanctions::matching::Thresholds;

pub const UN_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST dateGenerated="2026-12-01T00:00:00Z">
  <INDIVIDUALS>
    <INDIVIDUAL>
      <DATAID>6908555</DATAID>
      <FIRST_NAME>IVAN</FIRST_NAME>
      <SECOND_NAME>PETROVICH</SECOND_NAME>
      <THIRD_NAME>SIDOROV</THIRD_NAME>
      <INDIVIDUAL_ALIAS><ALIAS_NAME>Vanya Sidorov</ALIAS_NAME></INDIVIDUAL_ALIAS>
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES>
    <ENTITY>
      <DATAID>110404</DATAID>
      <FIRST_NAME>NUR TRADING COMPANY</FIRST_NAME>
    </ENTITY>
  </ENTITIES>
</CONSOLIDATED_LIST>
"#;

pub const SDN_CSV: &str =
    "36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n\u{1a}";
pub const ALT_CSV: &str = "36,12,\"aka\",\"AERO-CARIBBEAN\",-0- \r\n";

pub fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}

pub fn lists(dir: &tempfile::TempDir, thresholds: &str) -> SanctionsList {
    SanctionsList::load(
        &SanctionsFiles {
            un_xml: Some(write(dir, "consolidated.xml", UN_XML)),
            ofac_sdn_csv: Some(write(dir, "sdn.csv", SDN_CSV)),
            ofac_alt_csv: Some(write(dir, "alt.csv", ALT_CSV)),
        },
        Thresholds::parse(thresholds).unwrap(),
    )
    .unwrap()
}
