//! The UN Security Council consolidated list in its published XML form:
//! `<CONSOLIDATED_LIST><INDIVIDUALS><INDIVIDUAL><DATAID>…<FIRST_NAME>…<SECOND_NAME>…
//! <THIRD_NAME>…<FOURTH_NAME>…<INDIVIDUAL_ALIAS><ALIAS_NAME>…` and
//! `<ENTITIES><ENTITY><DATAID>…<FIRST_NAME>…<ENTITY_ALIAS><ALIAS_NAME>…`. Every other
//! element (dates, documents, addresses) is read past.

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{ListError, ListedParty};

/// The name of the list in hits.
pub const LIST: &str = "un_consolidated";

/// A party being read.
#[derive(Default)]
struct Reading {
    id: String,
    name_parts: Vec<String>,
    aliases: Vec<String>,
    line: usize,
}

fn line_of(text: &str, position: u64) -> usize {
    let end = usize::try_from(position)
        .unwrap_or(text.len())
        .min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The parties of the list in `text` (named `file` in errors).
pub fn parse(file: &str, text: &str) -> Result<Vec<ListedParty>, ListError> {
    let error = |position: u64, message: String| ListError {
        file: file.to_owned(),
        line: line_of(text, position),
        message,
    };
    // Text is not trimmed by the reader: an entity splits a text in three events, and the
    // spaces around it belong to the name. Values are trimmed when their element ends.
    let mut reader = Reader::from_str(text);
    let mut path: Vec<String> = Vec::new();
    let mut buffer = String::new();
    let mut current: Option<Reading> = None;
    let mut parties = Vec::new();
    loop {
        let position = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| error(reader.error_position(), e.to_string()))?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if path.is_empty() && name != "CONSOLIDATED_LIST" {
                    return Err(error(
                        position,
                        format!("the root element is {name}, not CONSOLIDATED_LIST"),
                    ));
                }
                if name == "INDIVIDUAL" || name == "ENTITY" {
                    current = Some(Reading {
                        line: line_of(text, position),
                        ..Reading::default()
                    });
                }
                path.push(name);
                buffer.clear();
            }
            Event::Text(t) => {
                buffer.push_str(&t.decode().map_err(|e| error(position, e.to_string()))?)
            }
            Event::CData(t) => {
                buffer.push_str(&t.decode().map_err(|e| error(position, e.to_string()))?)
            }
            Event::GeneralRef(reference) => {
                if let Some(c) = reference
                    .resolve_char_ref()
                    .map_err(|e| error(position, e.to_string()))?
                {
                    buffer.push(c);
                } else {
                    let name = reference
                        .decode()
                        .map_err(|e| error(position, e.to_string()))?;
                    let resolved = quick_xml::escape::resolve_predefined_entity(&name)
                        .ok_or_else(|| error(position, format!("unknown entity &{name};")))?;
                    buffer.push_str(resolved);
                }
            }
            Event::End(_) => {
                let Some(name) = path.pop() else {
                    return Err(error(position, "an end tag with no start".to_owned()));
                };
                let parent = path.last().map(String::as_str).unwrap_or_default();
                let value = buffer.trim().to_owned();
                buffer.clear();
                if let Some(reading) = current.as_mut() {
                    match (parent, name.as_str()) {
                        ("INDIVIDUAL" | "ENTITY", "DATAID") => reading.id = value,
                        (
                            "INDIVIDUAL" | "ENTITY",
                            "FIRST_NAME" | "SECOND_NAME" | "THIRD_NAME" | "FOURTH_NAME",
                        ) if !value.is_empty() => reading.name_parts.push(value),
                        ("INDIVIDUAL_ALIAS" | "ENTITY_ALIAS", "ALIAS_NAME")
                            if !value.is_empty() =>
                        {
                            reading.aliases.push(value);
                        }
                        (_, "INDIVIDUAL" | "ENTITY") => {
                            if let Some(done) = current.take() {
                                parties.push(finish(file, done)?);
                            }
                        }
                        _ => {}
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err(error(
            reader.buffer_position(),
            format!("the file ends inside <{}>", path.join("><")),
        ));
    }
    Ok(parties)
}

fn finish(file: &str, reading: Reading) -> Result<ListedParty, ListError> {
    let refuse = |message: &str| ListError {
        file: file.to_owned(),
        line: reading.line,
        message: message.to_owned(),
    };
    if reading.id.is_empty() {
        return Err(refuse("a listed party has no DATAID"));
    }
    if reading.name_parts.is_empty() {
        return Err(refuse("a listed party has no FIRST_NAME"));
    }
    let mut names = vec![reading.name_parts.join(" ")];
    names.extend(reading.aliases);
    Ok(ListedParty {
        list: LIST,
        id: reading.id,
        names,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIST_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<CONSOLIDATED_LIST dateGenerated="2026-12-01T00:00:00Z">
  <INDIVIDUALS>
    <INDIVIDUAL>
      <DATAID>6908555</DATAID>
      <VERSIONNUM>1</VERSIONNUM>
      <FIRST_NAME>RI</FIRST_NAME>
      <SECOND_NAME>WON</SECOND_NAME>
      <THIRD_NAME>HO</THIRD_NAME>
      <UN_LIST_TYPE>DPRK</UN_LIST_TYPE>
      <INDIVIDUAL_ALIAS><QUALITY>Good</QUALITY><ALIAS_NAME>Ri Won-ho</ALIAS_NAME></INDIVIDUAL_ALIAS>
      <INDIVIDUAL_ALIAS><QUALITY>Low</QUALITY><ALIAS_NAME/></INDIVIDUAL_ALIAS>
    </INDIVIDUAL>
  </INDIVIDUALS>
  <ENTITIES>
    <ENTITY>
      <DATAID>110404</DATAID>
      <FIRST_NAME>AL-NUR &amp; SONS TRADING</FIRST_NAME>
      <ENTITY_ALIAS><ALIAS_NAME>NUR TRADING</ALIAS_NAME></ENTITY_ALIAS>
    </ENTITY>
  </ENTITIES>
</CONSOLIDATED_LIST>
"#;

    #[test]
    fn individuals_and_entities_are_read_with_their_aliases() {
        let parties = parse("un.xml", LIST_XML).unwrap();
        assert_eq!(parties.len(), 2);
        assert_eq!(parties[0].id, "6908555");
        assert_eq!(parties[0].names, ["RI WON HO", "Ri Won-ho"]);
        assert_eq!(parties[1].names, ["AL-NUR & SONS TRADING", "NUR TRADING"]);
    }

    #[test]
    fn a_broken_file_is_refused_naming_the_file_and_the_line() {
        let broken = LIST_XML.replace("<SECOND_NAME>WON</SECOND_NAME>", "<SECOND_NAME>WON</THIRD>");
        let error = parse("lists/un.xml", &broken).unwrap_err();
        assert_eq!((error.file.as_str(), error.line), ("lists/un.xml", 8));
        let nameless = LIST_XML.replace("<FIRST_NAME>RI</FIRST_NAME>\n      <SECOND_NAME>WON</SECOND_NAME>\n      <THIRD_NAME>HO</THIRD_NAME>", "");
        let error = parse("un.xml", &nameless).unwrap_err();
        assert_eq!(error.line, 4, "{error}");
        let other = parse("un.xml", "<sdnList></sdnList>").unwrap_err();
        assert!(other.message.contains("CONSOLIDATED_LIST"), "{other}");
        let cut_at = LIST_XML.find("</INDIVIDUAL>").unwrap();
        let cut = parse("un.xml", &LIST_XML[..cut_at]).unwrap_err();
        assert!(cut.message.contains("ends inside"), "{cut}");
    }
}
