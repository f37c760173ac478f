//! A small, bounded XML reader: elements, attributes, text, the five predefined entities and
//! character references, comments, processing instructions and CDATA. Document type
//! declarations are refused outright, so no entity is ever expanded from the input. Every
//! slice of the input is taken with `get`, so no input can make it panic.

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
    let mut parser = Parser {
        input,
        position: 0,
        element_count: 0,
    };
    if parser.starts_with("\u{FEFF}") {
        parser.position = "\u{FEFF}".len();
    }
    parser.skip_misc()?;
    if parser.at_end() {
        return Err(parser.error("there is no root element"));
    }
    if !parser.starts_with("<") {
        return Err(parser.error("text before the root element"));
    }
    let root = parser.element()?;
    parser.skip_misc()?;
    if !parser.at_end() {
        return Err(parser.error("content after the root element"));
    }
    Ok(root)
}

struct Parser<'a> {
    input: &'a str,
    position: usize,
    element_count: usize,
}

impl<'a> Parser<'a> {
    fn error(&self, reason: &'static str) -> Iso20022Error {
        Iso20022Error::MalformedXml {
            position: self.position,
            reason,
        }
    }

    fn rest(&self) -> &'a str {
        self.input.get(self.position..).unwrap_or("")
    }

    fn at_end(&self) -> bool {
        self.position >= self.input.len()
    }

    fn starts_with(&self, prefix: &str) -> bool {
        self.rest().starts_with(prefix)
    }

    fn peek(&self) -> Option<u8> {
        self.input.as_bytes().get(self.position).copied()
    }

    fn advance(&mut self, bytes: usize) {
        self.position = self.position.saturating_add(bytes);
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.advance(1);
        }
    }

    /// Returns the text up to `terminator` and moves past the terminator.
    fn take_until(
        &mut self,
        terminator: &str,
        reason: &'static str,
    ) -> Result<&'a str, Iso20022Error> {
        let rest = self.rest();
        let end = rest.find(terminator).ok_or_else(|| self.error(reason))?;
        let taken = rest.get(..end).ok_or_else(|| self.error(reason))?;
        self.advance(end.saturating_add(terminator.len()));
        Ok(taken)
    }

    /// Skips what may stand around the root element: white space, comments and
    /// processing instructions (the XML declaration among them).
    fn skip_misc(&mut self) -> Result<(), Iso20022Error> {
        loop {
            self.skip_whitespace();
            if self.starts_with("<!--") {
                self.advance(4);
                self.take_until("-->", "a comment is not closed")?;
            } else if self.starts_with("<?") {
                self.advance(2);
                self.take_until("?>", "a processing instruction is not closed")?;
            } else if self.starts_with("<!") {
                return Err(self.error("document type declarations are refused"));
            } else {
                return Ok(());
            }
        }
    }

    fn name(&mut self) -> Result<&'a str, Iso20022Error> {
        let rest = self.rest();
        let end = rest
            .find(|ch: char| {
                ch.is_whitespace() || matches!(ch, '/' | '>' | '<' | '=' | '"' | '\'' | '&')
            })
            .unwrap_or(rest.len());
        let name = rest.get(..end).unwrap_or("");
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|ch| ch.is_alphabetic() || ch == '_');
        if !starts_well {
            return Err(self.error("an element or attribute name is missing or malformed"));
        }
        self.advance(end);
        Ok(name)
    }

    /// Reads a start tag from its `<`; returns the element and whether it was `<x/>`.
    fn start_tag(&mut self) -> Result<(Element, bool), Iso20022Error> {
        self.advance(1);
        let name = self.name()?;
        let mut element = Element::new(name);
        loop {
            let had_space = matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n'));
            self.skip_whitespace();
            if self.starts_with("/>") {
                self.advance(2);
                return Ok((element, true));
            }
            if self.starts_with(">") {
                self.advance(1);
                return Ok((element, false));
            }
            if self.at_end() {
                return Err(self.error("the document ends inside a tag"));
            }
            if !had_space {
                return Err(self.error("attributes must be separated by white space"));
            }
            let attribute_name = self.name()?;
            self.skip_whitespace();
            if !self.starts_with("=") {
                return Err(self.error("an attribute has no value"));
            }
            self.advance(1);
            self.skip_whitespace();
            let quote = match self.peek() {
                Some(b'"') => "\"",
                Some(b'\'') => "'",
                _ => return Err(self.error("an attribute value is not quoted")),
            };
            self.advance(1);
            let value_position = self.position;
            let raw = self.take_until(quote, "an attribute value is not closed")?;
            if raw.contains('<') {
                return Err(Iso20022Error::MalformedXml {
                    position: value_position,
                    reason: "'<' inside an attribute value",
                });
            }
            let value = decode(raw, value_position)?;
            if element.attribute(attribute_name).is_some() {
                return Err(self.error("an attribute appears twice"));
            }
            if element.attributes.len() >= ATTRIBUTE_COUNT_MAX {
                return Err(Iso20022Error::LimitExceeded {
                    limit_name: "attribute_count_max",
                    limit: ATTRIBUTE_COUNT_MAX,
                });
            }
            element.attributes.push((attribute_name.to_owned(), value));
        }
    }

    fn count_element(&mut self) -> Result<(), Iso20022Error> {
        self.element_count = self.element_count.saturating_add(1);
        if self.element_count > ELEMENT_COUNT_MAX {
            return Err(Iso20022Error::LimitExceeded {
                limit_name: "element_count_max",
                limit: ELEMENT_COUNT_MAX,
            });
        }
        Ok(())
    }

    /// Reads one element with everything inside it, starting at its `<`. Open elements
    /// wait on an explicit stack, bounded by the depth limit, not on the call stack.
    fn element(&mut self) -> Result<Element, Iso20022Error> {
        self.count_element()?;
        let (root, closed) = self.start_tag()?;
        if closed {
            return Ok(root);
        }
        let mut open = vec![root];
        loop {
            if self.at_end() {
                return Err(self.error("the document ends before every element is closed"));
            }
            if !self.starts_with("<") {
                let text_position = self.position;
                let rest = self.rest();
                let end = rest
                    .find('<')
                    .ok_or_else(|| self.error("the document ends inside text"))?;
                let raw = rest.get(..end).unwrap_or("");
                self.advance(end);
                let text = decode(raw, text_position)?;
                if let Some(current) = open.last_mut() {
                    current.text.push_str(&text);
                }
            } else if self.starts_with("<!--") {
                self.advance(4);
                self.take_until("-->", "a comment is not closed")?;
            } else if self.starts_with("<![CDATA[") {
                self.advance(9);
                let raw = self.take_until("]]>", "a CDATA section is not closed")?;
                if !raw.chars().all(is_xml_char) {
                    return Err(self.error("a character XML does not allow"));
                }
                if let Some(current) = open.last_mut() {
                    current.text.push_str(&normalize_line_ends(raw));
                }
            } else if self.starts_with("<?") {
                self.advance(2);
                self.take_until("?>", "a processing instruction is not closed")?;
            } else if self.starts_with("<!") {
                return Err(self.error("a declaration inside an element"));
            } else if self.starts_with("</") {
                self.advance(2);
                let name = self.name()?;
                self.skip_whitespace();
                if !self.starts_with(">") {
                    return Err(self.error("an end tag is not closed"));
                }
                self.advance(1);
                let finished = open
                    .pop()
                    .ok_or_else(|| self.error("an end tag without a start tag"))?;
                if finished.qualified_name != name {
                    return Err(self.error("an end tag does not match its start tag"));
                }
                match open.last_mut() {
                    Some(parent) => parent.children.push(finished),
                    None => return Ok(finished),
                }
            } else {
                self.count_element()?;
                let (element, closed) = self.start_tag()?;
                if closed {
                    if let Some(parent) = open.last_mut() {
                        parent.children.push(element);
                    }
                } else {
                    if open.len() >= ELEMENT_DEPTH_MAX {
                        return Err(Iso20022Error::LimitExceeded {
                            limit_name: "element_depth_max",
                            limit: ELEMENT_DEPTH_MAX,
                        });
                    }
                    open.push(element);
                }
            }
        }
    }
}

/// XML reads every line end as a line feed.
fn normalize_line_ends(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

/// Replaces entity and character references and normalizes line ends. `position` is
/// where `raw` starts in the input, for errors.
fn decode(raw: &str, position: usize) -> Result<String, Iso20022Error> {
    let error = |reason| Iso20022Error::MalformedXml { position, reason };
    if !raw.chars().all(is_xml_char) {
        return Err(error("a character XML does not allow"));
    }
    let raw = normalize_line_ends(raw);
    if !raw.contains('&') {
        return Ok(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw.as_str();
    while let Some(ampersand) = rest.find('&') {
        out.push_str(rest.get(..ampersand).unwrap_or(""));
        let after = rest.get(ampersand.saturating_add(1)..).unwrap_or("");
        let semicolon = after
            .find(';')
            .filter(|end| *end <= 10)
            .ok_or_else(|| error("a '&' that starts no entity or character reference"))?;
        let reference = after.get(..semicolon).unwrap_or("");
        let decoded = match reference {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let number = if let Some(hex) = reference
                    .strip_prefix("#x")
                    .or_else(|| reference.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(decimal) = reference.strip_prefix('#') {
                    decimal.parse::<u32>().ok()
                } else {
                    return Err(error("an unknown entity"));
                };
                number
                    .and_then(char::from_u32)
                    .filter(|ch| is_xml_char(*ch))
                    .ok_or_else(|| error("a character reference to no XML character"))?
            }
        };
        out.push(decoded);
        rest = after.get(semicolon.saturating_add(1)..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

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
        for input in [
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
        ] {
            let error = parse(input).unwrap_err();
            assert_eq!(error.code(), "iso20022_malformed_xml", "{input:?}: {error}");
        }
    }

    #[test]
    fn depth_and_element_count_are_bounded() {
        let deep = format!("{}{}", "<a>".repeat(40), "</a>".repeat(40));
        assert_eq!(
            parse(&deep).unwrap_err(),
            Iso20022Error::LimitExceeded {
                limit_name: "element_depth_max",
                limit: ELEMENT_DEPTH_MAX
            }
        );
        let wide = format!("<a>{}</a>", "<b/>".repeat(ELEMENT_COUNT_MAX));
        assert_eq!(
            parse(&wide).unwrap_err(),
            Iso20022Error::LimitExceeded {
                limit_name: "element_count_max",
                limit: ELEMENT_COUNT_MAX
            }
        );
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
}
