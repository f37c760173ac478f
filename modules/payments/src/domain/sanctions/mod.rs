//! Sanctions lists as the screening reads them: every listed party with its names (the
//! primary name and its aliases), from the lists' published formats (`ofac`), and the fuzzy
//! matching of a payment's party name against them (`matching`). `un`: the UN Security
//! Council consolidated list (XML); `ofac`: OFAC's SDN list (CSV).

pub mod matching;
pub mod ofac;
pub mod un;

/// One listed party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedParty {
    /// The list it comes from (`ofac_sdn`, `un_consolidated`).
    pub list: &'static str,
    /// The party's id on that list (OFAC `ent_num`, UN `DATAID`).
    pub id: String,
    /// The primary name first, then the aliases.
    pub names: Vec<String>,
}

/// A list file that does not parse: which file, which line, what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sanctions list {file}, line {line}: {message}")]
pub struct ListError {
    pub file: String,
    pub line: usize,
    pub message: String,
}
