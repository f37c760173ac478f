//! The XML underneath the messages: quick-xml reads the text, and this file gathers its
//! events into a small tree of elements (name, attributes, text, children), within limits on
//! size, depth, element count and attributes per element.
//!
//! quick-xml leaves some of what makes XML well-formed to its caller, so this file checks it:
//! names start with a letter or `_`; attributes are separated by white space and hold no `<`;
//! every character, written or referenced, is one XML allows; the only entities are the five
//! predefined ones; there is one root element with only white space, comments and processing
//! instructions around it. Document type declarations are refused outright, so no entity is
//! ever expanded from the input. quick-xml's errors are matched exhaustively into
//! `Iso20022Error::MalformedXml`, each with a fixed reason.

use std::borrow::Cow;

use quick_xml::Reader;
use quick_xml::errors::{Error, IllFormedError, SyntaxError};
use quick_xml::escape::{EscapeError, resolve_xml_entity, unescape_with};
use quick_xml::events::attributes::AttrError;
use quick_xml::events::{BytesRef, BytesStart, Event};

use super::error::Iso20022Error;

/// The largest message we read. A one-transaction pacs message is a few kilobytes; anything
/// near this size is not one of ours and is refused before it is parsed.
pub const MESSAGE_SIZE_BYTES_MAX: usize = 1024 * 1024;
/// The deepest element nesting we read (the deepest path we write is 6 levels).
const ELEMENT_DEPTH_MAX: usize = 32;
/// The most elements we read in one message.
const ELEMENT_COUNT_MAX: usize = 4096;
/// The most attributes we read on one element.
const ATTRIBUTE_COUNT_MAX: usize = 16;

/// Whether XML 1.0 allows this character in a document at all.
pub(super) fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r') || (ch >= ' ' && ch != '\u{FFFE}' && ch != '\u{FFFF}')
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    /// The name as written, prefix included (`Document`, `ns:Document`).
    pub qualified_name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The character data directly inside this element.
    pub text: String,
}

impl Element {
    fn new(qualified_name: &str) -> Element {
        Element {
            qualified_name: qualified_name.to_owned(),
            attributes: Vec::new(),
            children: Vec::new(),
            text: String::new(),
        }
    }

    /// The name without its prefix. Children are matched by it: a rail that prefixes
    /// every element is read like one that declares a default namespace.
    pub fn local_name(&self) -> &str {
        match self.qualified_name.split_once(':') {
            Some((_, local)) => local,
            None => &self.qualified_name,
        }
    }

    /// The namespace this element declares for its own prefix, if it declares it.
    pub fn namespace(&self) -> Option<&str> {
        match self.qualified_name.split_once(':') {
            Some((prefix, _)) => self.attribute(&format!("xmlns:{prefix}")),
            None => self.attribute("xmlns"),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    pub fn child(&self, local_name: &str) -> Option<&Element> {
        self.children(local_name).next()
    }

    pub fn children<'a, 'n>(
        &'a self,
        local_name: &'n str,
    ) -> impl Iterator<Item = &'a Element> + use<'a, 'n> {
        self.children
            .iter()
            .filter(move |child| child.local_name() == local_name)
    }
}

/// Parses a whole document and returns its root element.
pub(super) fn parse(input: &str) -> Result<Element, Iso20022Error> {
    if input.len() > MESSAGE_SIZE_BYTES_MAX {
        return Err(Iso20022Error::LimitExceeded {
            limit_name: "message_size_bytes_max",
            limit: MESSAGE_SIZE_BYTES_MAX,
        });
    }
    // quick-xml skips a byte order mark without counting it; errors count it, as bytes of
    // the input.
    let skipped = if input.starts_with('\u{FEFF}') {
        '\u{FEFF}'.len_utf8()
    } else {
        0
    };
    let at =
        |position: u64| usize::try_from(position).map_or(usize::MAX, |p| p.saturating_add(skipped));
    let mut reader = Reader::from_str(input);
    // The checks this file relies on quick-xml for, set here rather than left to its defaults.
    let config = reader.config_mut();
    config.check_end_names = true;
    config.allow_unmatched_ends = false;
    config.allow_dangling_amp = false;
    config.trim_text(false);
    let mut tree = Tree::default();
    loop {
        let position = at(reader.buffer_position());
        let refuse = |reason| malformed(position, reason);
        let event = reader
            .read_event()
            .map_err(|error| malformed(at(reader.error_position()), reason(&error)))?;
        match event {
            Event::Start(start) => tree.open(element(&start, position)?, position)?,
            Event::Empty(start) => tree.empty(element(&start, position)?, position)?,
            // quick-xml has checked that the end tag names the element it closes.
            Event::End(_) => tree.close(position)?,
            Event::Text(text) => {
                let text = text.xml10_content().map_err(|_| refuse(NOT_UTF8))?;
                tree.text(&text, position)?;
            }
            Event::CData(data) => {
                let text = data.xml10_content().map_err(|_| refuse(NOT_UTF8))?;
                tree.text(&text, position)?;
            }
            Event::GeneralRef(reference) => {
                let text = resolve(&reference).map_err(refuse)?;
                tree.text(&text, position)?;
            }
            Event::DocType(_) => return Err(refuse(DOCUMENT_TYPE_REFUSED)),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => {}
            Event::Eof => return tree.finish(position),
        }
    }
}

fn malformed(position: usize, reason: &'static str) -> Iso20022Error {
    Iso20022Error::MalformedXml { position, reason }
}

// The reasons given in more than one place.
const NOT_UTF8: &str = "text that is not UTF-8";
const DOCUMENT_TYPE_REFUSED: &str = "document type declarations are refused";
const NOT_AN_XML_CHARACTER: &str = "a character XML does not allow";
const UNKNOWN_ENTITY: &str = "an unknown entity";
const DANGLING_AMPERSAND: &str = "a '&' that starts no entity or character reference";
const BAD_CHARACTER_REFERENCE: &str = "a character reference to no XML character";
const NOT_CLOSED: &str = "the document ends before every element is closed";

/// The elements read so far: the open ones, innermost last, and the root once it is closed.
#[derive(Default)]
struct Tree {
    open: Vec<Element>,
    root: Option<Element>,
    element_count: usize,
}

impl Tree {
    /// Counts a new element, refused past the limit or after the root element.
    fn count(&mut self, position: usize) -> Result<(), Iso20022Error> {
        if self.root.is_some() {
            return Err(malformed(position, "content after the root element"));
        }
        self.element_count = self.element_count.saturating_add(1);
        if self.element_count > ELEMENT_COUNT_MAX {
            return Err(Iso20022Error::LimitExceeded {
                limit_name: "element_count_max",
                limit: ELEMENT_COUNT_MAX,
            });
        }
        Ok(())
    }

    fn open(&mut self, element: Element, position: usize) -> Result<(), Iso20022Error> {
        self.count(position)?;
        if self.open.len() >= ELEMENT_DEPTH_MAX {
            return Err(Iso20022Error::LimitExceeded {
                limit_name: "element_depth_max",
                limit: ELEMENT_DEPTH_MAX,
            });
        }
        self.open.push(element);
        Ok(())
    }

    fn empty(&mut self, element: Element, position: usize) -> Result<(), Iso20022Error> {
        self.count(position)?;
        self.attach(element);
        Ok(())
    }

    fn close(&mut self, position: usize) -> Result<(), Iso20022Error> {
        let finished = self
            .open
            .pop()
            .ok_or_else(|| malformed(position, "an end tag without a start tag"))?;
        self.attach(finished);
        Ok(())
    }

    fn attach(&mut self, element: Element) {
        match self.open.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }

    /// Character data, appended to the open element; outside the root only white space.
    fn text(&mut self, text: &str, position: usize) -> Result<(), Iso20022Error> {
        if !text.chars().all(is_xml_char) {
            return Err(malformed(position, NOT_AN_XML_CHARACTER));
        }
        match self.open.last_mut() {
            Some(current) => current.text.push_str(text),
            None if text
                .chars()
                .all(|ch| matches!(ch, ' ' | '\t' | '\r' | '\n')) => {}
            None if self.root.is_some() => {
                return Err(malformed(position, "content after the root element"));
            }
            None => return Err(malformed(position, "text before the root element")),
        }
        Ok(())
    }

    fn finish(self, position: usize) -> Result<Element, Iso20022Error> {
        if !self.open.is_empty() {
            return Err(malformed(position, NOT_CLOSED));
        }
        self.root
            .ok_or_else(|| malformed(position, "there is no root element"))
    }
}

/// The element a start tag opens, with its attributes decoded.
fn element(start: &BytesStart<'_>, position: usize) -> Result<Element, Iso20022Error> {
    let refuse = |reason| malformed(position, reason);
    let mut element = Element::new(name(start.name().as_ref()).map_err(refuse)?);
    if !attributes_are_separated(start.attributes_raw()) {
        return Err(refuse("attributes must be separated by white space"));
    }
    // quick-xml refuses an attribute without `=`, an unquoted or unclosed value and an
    // attribute that appears twice.
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|error| refuse(reason(&error.into())))?;
        let key = name(attribute.key.as_ref()).map_err(refuse)?;
        let raw = std::str::from_utf8(&attribute.value).map_err(|_| refuse(NOT_UTF8))?;
        if raw.contains('<') {
            return Err(refuse("'<' inside an attribute value"));
        }
        // XML reads every line end as a line feed, before references are replaced.
        let raw = raw.replace("\r\n", "\n").replace('\r', "\n");
        let value = unescape_with(&raw, resolve_xml_entity)
            .map_err(|error| refuse(escape_reason(&error)))?;
        if !value.chars().all(is_xml_char) {
            return Err(refuse(NOT_AN_XML_CHARACTER));
        }
        if element.attributes.len() >= ATTRIBUTE_COUNT_MAX {
            return Err(Iso20022Error::LimitExceeded {
                limit_name: "attribute_count_max",
                limit: ATTRIBUTE_COUNT_MAX,
            });
        }
        element
            .attributes
            .push((key.to_owned(), value.into_owned()));
    }
    Ok(element)
}

/// An element or attribute name: it starts with a letter or `_`, and holds no white space
/// and none of the characters that end a name.
fn name(bytes: &[u8]) -> Result<&str, &'static str> {
    let malformed = "an element or attribute name is missing or malformed";
    let name = std::str::from_utf8(bytes).map_err(|_| malformed)?;
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|ch| ch.is_alphabetic() || ch == '_');
    let ends_early = name.contains(|ch: char| {
        ch.is_whitespace() || matches!(ch, '/' | '>' | '<' | '=' | '"' | '\'' | '&')
    });
    if starts_well && !ends_early {
        Ok(name)
    } else {
        Err(malformed)
    }
}

/// Whether white space follows every quoted value but the last (`a="1" b="2"`, never
/// `a="1"b="2"`). quick-xml reads both; XML allows only the first.
fn attributes_are_separated(raw: &[u8]) -> bool {
    let mut quote = None;
    let mut value_just_closed = false;
    for &byte in raw {
        if value_just_closed && !matches!(byte, b' ' | b'\t' | b'\r' | b'\n') {
            return false;
        }
        value_just_closed = false;
        match quote {
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            Some(open) if byte == open => {
                quote = None;
                value_just_closed = true;
            }
            _ => {}
        }
    }
    true
}

/// The text of an entity or character reference: one of the five predefined entities, or a
/// character XML allows.
fn resolve(reference: &BytesRef<'_>) -> Result<Cow<'static, str>, &'static str> {
    match reference.resolve_char_ref() {
        Ok(Some(ch)) if is_xml_char(ch) => Ok(Cow::Owned(ch.to_string())),
        Ok(Some(_)) | Err(_) => Err(BAD_CHARACTER_REFERENCE),
        Ok(None) => {
            let name = reference.decode().map_err(|_| NOT_UTF8)?;
            resolve_xml_entity(&name)
                .map(Cow::Borrowed)
                .ok_or(UNKNOWN_ENTITY)
        }
    }
}

/// The reason for one of quick-xml's errors. Every variant is named, so that a new one in a
/// later quick-xml is a decision, not a default.
fn reason(error: &Error) -> &'static str {
    match error {
        Error::Syntax(syntax) => match syntax {
            SyntaxError::InvalidBangMarkup => {
                "a '<!' that starts no comment, CDATA section or declaration"
            }
            SyntaxError::UnclosedPIOrXmlDecl => "a processing instruction is not closed",
            SyntaxError::UnclosedComment => "a comment is not closed",
            SyntaxError::UnclosedDoctype => DOCUMENT_TYPE_REFUSED,
            SyntaxError::UnclosedCData => "a CDATA section is not closed",
            SyntaxError::UnclosedTag => "the document ends inside a tag",
        },
        Error::IllFormed(ill_formed) => match ill_formed {
            IllFormedError::MissingDeclVersion(_) => "the XML declaration has no version",
            IllFormedError::MissingDoctypeName => DOCUMENT_TYPE_REFUSED,
            IllFormedError::MissingEndTag(_) => NOT_CLOSED,
            IllFormedError::UnmatchedEndTag(_) => "an end tag without a start tag",
            IllFormedError::MismatchedEndTag { .. } => "an end tag does not match its start tag",
            IllFormedError::DoubleHyphenInComment => "a comment holds '--'",
            IllFormedError::UnclosedReference => DANGLING_AMPERSAND,
        },
        Error::InvalidAttr(attribute) => match attribute {
            AttrError::ExpectedEq(_) | AttrError::ExpectedValue(_) => "an attribute has no value",
            AttrError::UnquotedValue(_) => "an attribute value is not quoted",
            AttrError::ExpectedQuote(..) => "an attribute value is not closed",
            AttrError::Duplicated(..) => "an attribute appears twice",
        },
        Error::Escape(escape) => escape_reason(escape),
        Error::Encoding(_) => NOT_UTF8,
        Error::Io(_) => "the input could not be read",
        Error::Namespace(_) => "a namespace is declared wrongly",
    }
}

fn escape_reason(error: &EscapeError) -> &'static str {
    match error {
        EscapeError::UnrecognizedEntity(..) => UNKNOWN_ENTITY,
        EscapeError::UnterminatedEntity(_) => DANGLING_AMPERSAND,
        EscapeError::InvalidCharRef(_) => BAD_CHARACTER_REFERENCE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_malformed(inputs: &[&str]) {
        for input in inputs {
            let error = parse(input).unwrap_err();
            assert_eq!(error.code(), "iso20022_malformed_xml", "{input:?}: {error}");
        }
    }

    #[test]
    fn entities_character_references_and_cdata_are_decoded() {
        let root = parse(
            "<?xml version=\"1.0\"?><!-- hi --><a x='1 &amp; 2'>&lt;&#65;&#x42;<![CDATA[<&>]]></a>",
        )
        .unwrap();
        assert_eq!(root.text, "<AB<&>");
        assert_eq!(root.attribute("x"), Some("1 & 2"));
    }

    #[test]
    fn prefixed_elements_are_matched_by_local_name() {
        let root =
            parse("<p:Document xmlns:p=\"urn:x\"><p:A><p:B>b</p:B></p:A></p:Document>").unwrap();
        assert_eq!(root.local_name(), "Document");
        assert_eq!(root.namespace(), Some("urn:x"));
        assert_eq!(root.child("A").unwrap().child("B").unwrap().text, "b");
    }

    #[test]
    fn malformed_documents_are_refused() {
        assert_malformed(&[
            "",
            "text",
            "<a>",
            "<a></b>",
            "<a><b></a></b>",
            "<a>&unknown;</a>",
            "<a>& </a>",
            "<a>&#0;</a>",
            "<a x=1></a>",
            "<a x='1' x='2'></a>",
            "<a x='1'y='2'></a>",
            "<a></a><b></b>",
            "<a></a>trailing",
            "<!DOCTYPE a [<!ENTITY e \"boom\">]><a>&e;</a>",
            "<a><!-- unclosed </a>",
            "<a>\u{1}</a>",
            "</a>",
            "<1a></1a>",
        ]);
    }

    #[test]
    fn depth_and_element_count_are_bounded() {
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        let wide = format!("<a>{}</a>", "<b/>".repeat(ELEMENT_COUNT_MAX));
        for (document, limit_name, limit) in [
            (deep, "element_depth_max", ELEMENT_DEPTH_MAX),
            (wide, "element_count_max", ELEMENT_COUNT_MAX),
        ] {
            assert_eq!(
                parse(&document).unwrap_err(),
                Iso20022Error::LimitExceeded { limit_name, limit }
            );
        }
        let large = format!("<a>{}</a>", "x".repeat(MESSAGE_SIZE_BYTES_MAX));
        assert_eq!(parse(&large).unwrap_err().code(), "iso20022_limit_exceeded");
    }

    #[test]
    fn multibyte_text_never_splits_a_character() {
        let root = parse("<a>é&amp;ü€</a>").unwrap();
        assert_eq!(root.text, "é&ü€");
        for end in 0.."<a>é&amp;ü€</a>".len() {
            if let Some(prefix) = "<a>é&amp;ü€</a>".get(..end) {
                assert!(parse(prefix).is_err());
            }
        }
    }

    #[test]
    fn a_default_namespace_and_a_prefixed_one_read_alike() {
        let default =
            parse("<Document xmlns=\"urn:x\"><A><B c=\"d\">b</B></A></Document>").unwrap();
        let prefixed =
            parse("<p:Document xmlns:p=\"urn:x\"><p:A><p:B c=\"d\">b</p:B></p:A></p:Document>")
                .unwrap();
        for root in [&default, &prefixed] {
            assert_eq!(root.local_name(), "Document");
            assert_eq!(root.namespace(), Some("urn:x"));
            let leaf = root.child("A").unwrap().child("B").unwrap();
            assert_eq!((leaf.text.as_str(), leaf.attribute("c")), ("b", Some("d")));
        }
        // A prefix declared for another element says nothing of the root's namespace.
        let undeclared = parse("<Document xmlns:p=\"urn:x\"><p:A/></Document>").unwrap();
        assert_eq!(undeclared.namespace(), None);
    }

    #[test]
    fn cdata_is_text_as_written_and_every_line_end_reads_as_a_line_feed() {
        let root = parse("<a>x\r\ny\rz<![CDATA[<b>&amp;\r\n]]]]><![CDATA[>]]></a>").unwrap();
        assert_eq!(root.text, "x\ny\nz<b>&amp;\n]]>");
        let root = parse("<a b=\"1\r\n2\" c=\"&#13;\">&#13;&#10;</a>").unwrap();
        assert_eq!(root.attribute("b"), Some("1\n2"));
        assert_eq!(root.attribute("c"), Some("\r"));
        assert_eq!(root.text, "\r\n");
    }

    #[test]
    fn character_references_are_read_as_xml_defines_them() {
        // Leading zeros are allowed; only a lower-case `x` starts a hexadecimal reference, and
        // no sign is allowed (xmllint reads these the same way).
        assert_eq!(parse("<a>&#0065;&#x0000000042;</a>").unwrap().text, "AB");
        assert_eq!(parse("<a>&#x1F600;&#128512;</a>").unwrap().text, "😀😀");
        assert_malformed(&[
            "<a>&#X41;</a>",
            "<a>&#+65;</a>",
            "<a>&#x;</a>",
            "<a>&#xD800;</a>",
            "<a>&#x110000;</a>",
            "<a>&#xFFFE;</a>",
            "<a x='&#1;'/>",
            "<a x='&unknown;'/>",
            "<a x='&amp'/>",
        ]);
    }

    #[test]
    fn only_white_space_comments_and_processing_instructions_stand_around_the_root() {
        let root =
            parse("\u{FEFF}<?xml version=\"1.0\"?>\r\n<!-- c --><?pi a>b?>\t<a/> <!-- d -->\n")
                .unwrap();
        assert_eq!(root.local_name(), "a");
        assert_malformed(&[
            "\u{FEFF}\u{FEFF}<a/>",
            "&amp;<a/>",
            "<a/>&amp;",
            "<![CDATA[x]]><a/>",
            "<a/><![CDATA[x]]>",
            "<a/>\u{A0}",
            "<?>x?><a/>",
        ]);
    }

    #[test]
    fn attributes_are_separated_quoted_named_and_free_of_a_less_than_sign() {
        let root = parse("<a x\t=\n'1'\ny=\"'\" z='\"'/>").unwrap();
        assert_eq!(root.attribute("x"), Some("1"));
        assert_eq!(root.attribute("y"), Some("'"));
        assert_eq!(root.attribute("z"), Some("\""));
        assert_malformed(&[
            "<a x='1'y='2'/>",
            "<a x='<'/>",
            "<a ='1'/>",
            "<a 1='1'/>",
            "<a b c='1'/>",
            "<a b=/>",
            "<a x='1'/ >",
            "<a\u{A0}/>",
        ]);
        let many = format!(
            "<a {}/>",
            (0..=ATTRIBUTE_COUNT_MAX)
                .map(|n| format!("x{n}='1' "))
                .collect::<String>()
        );
        assert_eq!(
            parse(&many).unwrap_err(),
            Iso20022Error::LimitExceeded {
                limit_name: "attribute_count_max",
                limit: ATTRIBUTE_COUNT_MAX
            }
        );
    }

    #[test]
    fn declarations_are_refused_inside_an_element_too() {
        assert_malformed(&["<a><!DOCTYPE a></a>", "<a><!ELEMENT a></a>", "<a><!x></a>"]);
    }
}
