//! OFAC's SDN list in its published CSV form: `sdn.csv` (no header; ent_num, SDN_Name,
//! SDN_Type, Program, Title, Call_Sign, Vess_type, Tonnage, GRT, Vess_flag, Vess_owner,
//! Remarks; `-0-` means empty) and, optionally, `alt.csv` (ent_num, alt_num, alt_type,
//! alt_name, alt_remarks): the aliases. The files end with an ASCII SUB (0x1A), skipped.

use std::collections::BTreeMap;

use super::{ListError, ListedParty};

/// The name of the list in hits.
pub const LIST: &str = "ofac_sdn";

/// The fields of one CSV record: comma-separated, a field in double quotes may hold commas
/// and doubled quotes. One record a line (OFAC's files have no line breaks in fields).
fn fields(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut was_quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => current.push(c),
            (false, '"') if current.trim().is_empty() && !was_quoted => {
                current.clear();
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                out.push(std::mem::take(&mut current));
                was_quoted = false;
            }
            (false, c) => current.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".to_owned());
    }
    out.push(current);
    Ok(out)
}

/// `-0-` (OFAC's empty) as empty, the rest trimmed.
fn value(field: &str) -> &str {
    let field = field.trim();
    if field == "-0-" { "" } else { field }
}

/// The records of a file: (line number, fields), blank lines and the final SUB skipped.
fn records<'a>(
    file: &'a str,
    text: &'a str,
    columns: usize,
) -> impl Iterator<Item = Result<(usize, Vec<String>), ListError>> + 'a {
    text.lines().enumerate().filter_map(move |(index, line)| {
        let line = line.trim_end_matches(['\r', '\u{1a}']);
        if line.trim().is_empty() {
            return None;
        }
        let error = |message: String| ListError {
            file: file.to_owned(),
            line: index + 1,
            message,
        };
        Some(match fields(line) {
            Ok(fields) if fields.len() == columns => Ok((index + 1, fields)),
            Ok(fields) => Err(error(format!(
                "{} fields where {columns} were expected",
                fields.len()
            ))),
            Err(message) => Err(error(message)),
        })
    })
}

/// The parties of `sdn.csv` (named `sdn_file` in errors), with the aliases of `alt.csv`
/// when given.
pub fn parse(
    sdn_file: &str,
    sdn: &str,
    alt: Option<(&str, &str)>,
) -> Result<Vec<ListedParty>, ListError> {
    let mut parties: BTreeMap<String, ListedParty> = BTreeMap::new();
    for record in records(sdn_file, sdn, 12) {
        let (line, fields) = record?;
        let id = value(&fields[0]).to_owned();
        let name = value(&fields[1]).to_owned();
        if id.is_empty() || id.parse::<u64>().is_err() {
            return Err(ListError {
                file: sdn_file.to_owned(),
                line,
                message: format!("ent_num {id:?} is not a number"),
            });
        }
        if name.is_empty() {
            return Err(ListError {
                file: sdn_file.to_owned(),
                line,
                message: "SDN_Name is empty".to_owned(),
            });
        }
        parties.insert(
            id.clone(),
            ListedParty {
                list: LIST,
                id,
                names: vec![name],
            },
        );
    }
    if let Some((alt_file, alt)) = alt {
        for record in records(alt_file, alt, 5) {
            let (line, fields) = record?;
            let id = value(&fields[0]);
            let name = value(&fields[3]);
            let Some(party) = parties.get_mut(id) else {
                return Err(ListError {
                    file: alt_file.to_owned(),
                    line,
                    message: format!("ent_num {id:?} is not in the SDN file"),
                });
            };
            if !name.is_empty() {
                party.names.push(name.to_owned());
            }
        }
    }
    Ok(parties.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDN: &str = "36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n\
173,\"ANGLO-CARIBBEAN CO., LTD.\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \r\n\u{1a}";
    const ALT: &str = "36,12,\"aka\",\"AERO-CARIBBEAN\",-0- \r\n";

    #[test]
    fn the_published_sdn_and_alt_files_parse_with_their_aliases() {
        let parties = parse("sdn.csv", SDN, Some(("alt.csv", ALT))).unwrap();
        assert_eq!(parties.len(), 2);
        let aero = parties.iter().find(|p| p.id == "36").unwrap();
        assert_eq!(aero.names, ["AEROCARIBBEAN AIRLINES", "AERO-CARIBBEAN"]);
        let anglo = parties.iter().find(|p| p.id == "173").unwrap();
        assert_eq!(anglo.names, ["ANGLO-CARIBBEAN CO., LTD."]);
    }

    #[test]
    fn a_broken_file_is_refused_naming_the_file_and_the_line() {
        let broken = "36,\"AEROCARIBBEAN AIRLINES\",-0- ,\"CUBA\",-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- ,-0- \n\
37,\"UNCLOSED,-0- \n";
        let error = parse("lists/sdn.csv", broken, None).unwrap_err();
        assert_eq!((error.file.as_str(), error.line), ("lists/sdn.csv", 2));
        let short = "36,\"A\",-0- \n";
        assert!(
            parse("sdn.csv", short, None)
                .unwrap_err()
                .message
                .contains("3 fields")
        );
        let orphan = "99,1,\"aka\",\"X\",-0- \n";
        let error = parse("sdn.csv", SDN, Some(("alt.csv", orphan))).unwrap_err();
        assert_eq!((error.file.as_str(), error.line), ("alt.csv", 1));
    }
}
