//! The sanctions lists screening reads, loaded from the files settings name: the UN
//! consolidated list (XML) and OFAC's SDN list (CSV, with its optional alias CSV). None
//! named is an empty list, with a warning; a file that cannot be read or parsed stops the
//! start with an error naming the file and line.

use std::path::PathBuf;

use crate::domain::sanctions::matching::{Hit, PartyIndex, Thresholds};
use crate::domain::sanctions::{ListError, ListedParty, ofac, un};

/// The list files, as settings name them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SanctionsFiles {
    /// `COREBANK_SANCTIONS_UN_XML`
    pub un_xml: Option<PathBuf>,
    /// `COREBANK_SANCTIONS_OFAC_SDN_CSV`
    pub ofac_sdn_csv: Option<PathBuf>,
    /// `COREBANK_SANCTIONS_OFAC_ALT_CSV`: only with the SDN file.
    pub ofac_alt_csv: Option<PathBuf>,
}

/// Every listed party, and the thresholds names are matched with.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SanctionsList {
    parties: PartyIndex,
    thresholds: Thresholds,
}

fn read(path: &PathBuf) -> Result<String, ListError> {
    std::fs::read_to_string(path).map_err(|error| ListError {
        file: path.display().to_string(),
        line: 0,
        message: format!("cannot be read: {error}"),
    })
}

impl SanctionsList {
    /// Loads the files named; an empty list, with a warning, when none is.
    pub fn load(
        files: &SanctionsFiles,
        thresholds: Thresholds,
    ) -> Result<SanctionsList, ListError> {
        let mut parties = Vec::new();
        if let Some(path) = &files.un_xml {
            let loaded = un::parse(&path.display().to_string(), &read(path)?)?;
            tracing::info!(file = %path.display(), parties = loaded.len(), "UN consolidated list loaded");
            parties.extend(loaded);
        }
        match (&files.ofac_sdn_csv, &files.ofac_alt_csv) {
            (Some(sdn), alt) => {
                let alt_text = alt.as_ref().map(read).transpose()?;
                let alt_name = alt.as_ref().map(|p| p.display().to_string());
                let loaded = ofac::parse(
                    &sdn.display().to_string(),
                    &read(sdn)?,
                    alt_name.as_deref().zip(alt_text.as_deref()),
                )?;
                tracing::info!(file = %sdn.display(), parties = loaded.len(), "OFAC SDN list loaded");
                parties.extend(loaded);
            }
            (None, Some(alt)) => {
                return Err(ListError {
                    file: alt.display().to_string(),
                    line: 0,
                    message: "an OFAC alias file needs the SDN file it belongs to".to_owned(),
                });
            }
            (None, None) => {}
        }
        Ok(SanctionsList {
            parties: PartyIndex::new(parties),
            thresholds,
        })
    }

    /// A list of `parties` (read from files elsewhere, or made by a test).
    pub fn new(parties: Vec<ListedParty>, thresholds: Thresholds) -> SanctionsList {
        SanctionsList {
            parties: PartyIndex::new(parties),
            thresholds,
        }
    }

    /// How many parties are listed.
    pub fn len(&self) -> usize {
        self.parties.len()
    }

    pub fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    /// The listed parties `name` may be, for a payment in `currency`, best first.
    pub fn screen(&self, name: &str, currency: &str) -> Vec<Hit> {
        self.parties
            .hits(name, self.thresholds.for_currency(currency))
    }
}
