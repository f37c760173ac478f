//! OFS, the line protocol of the mock legacy core (modelled on Temenos T24's Open Financial
//! Service). One message per line.
//!
//! Request:
//! `APPLICATION,VERSION/FUNCTION/PROCESS//NO.OF.AUTH,USER/PASSWORD,TXN.ID,FIELD:MV:SV=VALUE,…`
//! e.g. `FUNDS.TRANSFER,/I/PROCESS//0,INPUTT/123456,,DEBIT.ACCT.NO:1:1=EUR10000017,DEBIT.AMOUNT:1:1=150.00`
//!
//! Response: `TXN.ID/MSG.ID/INDICATOR,FIELD:MV:SV=VALUE,…` with indicator `1` (done), `-1`
//! (error: the error text stands in place of the bad field's value), `-2` (override: a
//! warning the caller must accept) or `-3` (offline: the core is closed, e.g. during its
//! close of business).
//!
//! Field positions: `FIELD=V` and `FIELD::=V` mean multi-value 1, sub-value 1; `FIELD:2=V`
//! multi-value 2; `FIELD:2:3=V` sub-value 3 of multi-value 2. Written, a field always
//! carries both (`FIELD:1:1=V`).
//!
//! Escaping: inside every value, id, user and password, `\` escapes the characters that
//! would otherwise end it: `\,` comma, `\/` slash, `\\` backslash, `\n` line feed, `\r`
//! carriage return. Application, version and field names are upper-case letters, digits and
//! dots, and need none. Anything malformed is an error naming where, never a panic.

use std::fmt::Write as _;

/// The longest line the core reads.
pub const LINE_BYTES_MAX: usize = 64 * 1024;
/// The most fields in one message.
pub const FIELDS_MAX: usize = 1_000;
/// The highest multi- or sub-value position.
pub const POSITION_MAX: u16 = 999;

/// Why a line is not OFS.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfsError {
    #[error("the message is {bytes} bytes; at most {LINE_BYTES_MAX} are read")]
    TooLong { bytes: usize },
    #[error("the message has more than {FIELDS_MAX} fields")]
    TooManyFields,
    #[error("{part}: {message}")]
    Malformed { part: String, message: String },
}

impl OfsError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            OfsError::TooLong { .. } => "ofs_too_long",
            OfsError::TooManyFields => "ofs_too_many_fields",
            OfsError::Malformed { .. } => "ofs_malformed",
        }
    }
}

fn malformed(part: impl Into<String>, message: impl Into<String>) -> OfsError {
    OfsError::Malformed {
        part: part.into(),
        message: message.into(),
    }
}

/// What a request asks the application to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// `I`: input (create or amend).
    Input,
    /// `A`: authorise.
    Authorise,
    /// `R`: reverse.
    Reverse,
    /// `S`: see (read).
    See,
    /// `D`: delete an unauthorised record.
    Delete,
}

impl Function {
    pub fn code(self) -> char {
        match self {
            Function::Input => 'I',
            Function::Authorise => 'A',
            Function::Reverse => 'R',
            Function::See => 'S',
            Function::Delete => 'D',
        }
    }

    pub fn from_code(code: &str) -> Option<Function> {
        match code {
            "I" => Some(Function::Input),
            "A" => Some(Function::Authorise),
            "R" => Some(Function::Reverse),
            "S" => Some(Function::See),
            "D" => Some(Function::Delete),
            _ => None,
        }
    }
}

/// Whether a request is carried out or only checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    Process,
    Validate,
}

impl Process {
    pub fn code(self) -> &'static str {
        match self {
            Process::Process => "PROCESS",
            Process::Validate => "VALIDATE",
        }
    }
}

/// One `FIELD:MV:SV=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    /// 1-based.
    pub multi_value: u16,
    /// 1-based.
    pub sub_value: u16,
    pub value: String,
}

impl Field {
    /// A single-valued field.
    pub fn new(name: &str, value: impl Into<String>) -> Field {
        Field {
            name: name.to_owned(),
            multi_value: 1,
            sub_value: 1,
            value: value.into(),
        }
    }
}

/// A request to the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub application: String,
    pub version: String,
    pub function: Function,
    pub process: Process,
    /// `NO.OF.AUTH`: how many authorisations the record needs (`None`: the version's).
    pub authorisers: Option<u8>,
    pub user: String,
    pub password: String,
    /// Empty: the core assigns one (a new record).
    pub transaction_id: String,
    pub fields: Vec<Field>,
}

/// How the core answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    /// `1`
    Done,
    /// `-1`: refused; the error text is in place of the bad field's value.
    Error,
    /// `-2`: an override (a warning) must be accepted.
    Override,
    /// `-3`: the core is offline (close of business).
    Offline,
}

impl Indicator {
    pub fn code(self) -> &'static str {
        match self {
            Indicator::Done => "1",
            Indicator::Error => "-1",
            Indicator::Override => "-2",
            Indicator::Offline => "-3",
        }
    }

    pub fn from_code(code: &str) -> Option<Indicator> {
        match code {
            "1" => Some(Indicator::Done),
            "-1" => Some(Indicator::Error),
            "-2" => Some(Indicator::Override),
            "-3" => Some(Indicator::Offline),
            _ => None,
        }
    }
}

/// The core's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub transaction_id: String,
    pub message_id: String,
    pub indicator: Indicator,
    pub fields: Vec<Field>,
}

impl Response {
    /// The value of a single-valued field (position 1:1).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name && f.multi_value == 1 && f.sub_value == 1)
            .map(|f| f.value.as_str())
    }
}

/// Escapes a value for OFS.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ',' => out.push_str("\\,"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            other => out.push(other),
        }
    }
    out
}

/// Undoes [`escape`].
pub fn unescape(text: &str, part: &str) -> Result<String, OfsError> {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some(',') => out.push(','),
            Some('/') => out.push('/'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => {
                return Err(malformed(part, format!("unknown escape \\{other}")));
            }
            None => return Err(malformed(part, "a lone \\ at the end")),
        }
    }
    Ok(out)
}

/// Splits on `separator` where it is not escaped, keeping escapes in the pieces.
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            pieces.push(&text[start..index]);
            start = index + c.len_utf8();
        }
    }
    pieces.push(&text[start..]);
    pieces
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '.')
}

fn check_name(text: &str, part: &str) -> Result<(), OfsError> {
    if is_name(text) {
        Ok(())
    } else {
        Err(malformed(
            part,
            format!("{text:?} is not a name (A-Z, 0-9 and dots, 1-64 characters)"),
        ))
    }
}

fn write_field(out: &mut String, field: &Field) {
    let _ = write!(
        out,
        ",{}:{}:{}={}",
        field.name,
        field.multi_value,
        field.sub_value,
        escape(&field.value)
    );
}

fn parse_position(text: &str, part: &str) -> Result<u16, OfsError> {
    if text.is_empty() {
        return Ok(1);
    }
    match text.parse::<u16>() {
        Ok(n) if (1..=POSITION_MAX).contains(&n) => Ok(n),
        _ => Err(malformed(
            part,
            format!("{text:?} is not a position from 1 to {POSITION_MAX}"),
        )),
    }
}

fn parse_field(token: &str, index: usize) -> Result<Field, OfsError> {
    let part = format!("field {index}");
    let (left, value) = token
        .split_once('=')
        .ok_or_else(|| malformed(&part, "no = between the field and its value"))?;
    let mut positions = left.split(':');
    let name = positions.next().unwrap_or_default();
    check_name(name, &part)?;
    let multi_value = parse_position(positions.next().unwrap_or_default(), &part)?;
    let sub_value = parse_position(positions.next().unwrap_or_default(), &part)?;
    if positions.next().is_some() {
        return Err(malformed(&part, "more than two positions (FIELD:MV:SV)"));
    }
    Ok(Field {
        name: name.to_owned(),
        multi_value,
        sub_value,
        value: unescape(value, &part)?,
    })
}

fn parse_fields(tokens: &[&str]) -> Result<Vec<Field>, OfsError> {
    if tokens.len() > FIELDS_MAX {
        return Err(OfsError::TooManyFields);
    }
    tokens
        .iter()
        .enumerate()
        .filter(|(_, token)| !token.is_empty())
        .map(|(index, token)| parse_field(token, index + 1))
        .collect()
}

fn line_of(text: &str) -> Result<&str, OfsError> {
    if text.len() > LINE_BYTES_MAX {
        return Err(OfsError::TooLong { bytes: text.len() });
    }
    let line = text.strip_suffix('\n').unwrap_or(text);
    let line = line.strip_suffix('\r').unwrap_or(line);
    if line.contains('\n') || line.contains('\r') {
        return Err(malformed("message", "more than one line"));
    }
    if line.is_empty() {
        return Err(malformed("message", "empty"));
    }
    Ok(line)
}

/// A line: `header`, then each of `fields`.
fn line_with_fields(header: std::fmt::Arguments<'_>, fields: &[Field]) -> String {
    let mut out = String::with_capacity(128);
    let _ = out.write_fmt(header);
    for field in fields {
        write_field(&mut out, field);
    }
    out
}

impl Request {
    /// The request as one OFS line (without the line feed).
    pub fn to_line(&self) -> String {
        line_with_fields(
            format_args!(
                "{},{}/{}/{}//{},{}/{},{}",
                self.application,
                self.version,
                self.function.code(),
                self.process.code(),
                self.authorisers.map(|n| n.to_string()).unwrap_or_default(),
                escape(&self.user),
                escape(&self.password),
                escape(&self.transaction_id)
            ),
            &self.fields,
        )
    }

    /// Reads one request line.
    pub fn parse(text: &str) -> Result<Request, OfsError> {
        let line = line_of(text)?;
        let tokens = split_unescaped(line, ',');
        if tokens.len() < 4 {
            return Err(malformed(
                "message",
                "a request needs APPLICATION,VERSION/FUNCTION/PROCESS//AUTH,USER/PASSWORD,TXN.ID",
            ));
        }
        let application = tokens[0];
        check_name(application, "application")?;
        let options = split_unescaped(tokens[1], '/');
        // VERSION/FUNCTION/PROCESS//NO.OF.AUTH: the empty piece between the two slashes is
        // the (unused) GTS control.
        let (version, function, process, authorisers) = match options.as_slice() {
            [version, function, process] => (*version, *function, *process, ""),
            [version, function, process, _, authorisers] => {
                (*version, *function, *process, *authorisers)
            }
            _ => {
                return Err(malformed(
                    "options",
                    "expected VERSION/FUNCTION/PROCESS//NO.OF.AUTH",
                ));
            }
        };
        if !version.is_empty() {
            check_name(version, "version")?;
        }
        let function = Function::from_code(function)
            .ok_or_else(|| malformed("function", format!("{function:?}: one of I, A, R, S, D")))?;
        let process = match process {
            "" | "PROCESS" => Process::Process,
            "VALIDATE" => Process::Validate,
            other => {
                return Err(malformed(
                    "process",
                    format!("{other:?}: PROCESS or VALIDATE"),
                ));
            }
        };
        let authorisers = if authorisers.is_empty() {
            None
        } else {
            Some(authorisers.parse::<u8>().map_err(|_| {
                malformed(
                    "authorisers",
                    format!("{authorisers:?} is not a number from 0 to 255"),
                )
            })?)
        };
        let sign_on = split_unescaped(tokens[2], '/');
        let [user, password] = sign_on.as_slice() else {
            return Err(malformed("sign-on", "expected USER/PASSWORD"));
        };
        Ok(Request {
            application: application.to_owned(),
            version: version.to_owned(),
            function,
            process,
            authorisers,
            user: unescape(user, "user")?,
            password: unescape(password, "password")?,
            transaction_id: unescape(tokens[3], "transaction id")?,
            fields: parse_fields(&tokens[4..])?,
        })
    }

    /// The value of a single-valued field (position 1:1).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|f| f.name == name && f.multi_value == 1 && f.sub_value == 1)
            .map(|f| f.value.as_str())
    }
}

impl Response {
    /// The response as one OFS line (without the line feed).
    pub fn to_line(&self) -> String {
        line_with_fields(
            format_args!(
                "{}/{}/{}",
                escape(&self.transaction_id),
                escape(&self.message_id),
                self.indicator.code()
            ),
            &self.fields,
        )
    }

    /// Reads one response line.
    pub fn parse(text: &str) -> Result<Response, OfsError> {
        let line = line_of(text)?;
        let tokens = split_unescaped(line, ',');
        let header = split_unescaped(tokens[0], '/');
        let [transaction_id, message_id, indicator] = header.as_slice() else {
            return Err(malformed("header", "expected TXN.ID/MSG.ID/INDICATOR"));
        };
        let indicator = Indicator::from_code(indicator).ok_or_else(|| {
            malformed("indicator", format!("{indicator:?}: one of 1, -1, -2, -3"))
        })?;
        Ok(Response {
            transaction_id: unescape(transaction_id, "transaction id")?,
            message_id: unescape(message_id, "message id")?,
            indicator,
            fields: parse_fields(&tokens[1..])?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a test fails loudly")]

    use super::*;

    #[test]
    fn the_design_example_reads_as_documented() {
        let request = Request::parse(
            "FUNDS.TRANSFER,/I/PROCESS,INPUTT/123456,,DEBIT.ACCT.NO::=EUR10000017,DEBIT.AMOUNT::=150.00\n",
        )
        .unwrap();
        assert_eq!(request.application, "FUNDS.TRANSFER");
        assert_eq!(request.version, "");
        assert_eq!(request.function, Function::Input);
        assert_eq!(request.process, Process::Process);
        assert_eq!(request.authorisers, None);
        assert_eq!(
            (request.user.as_str(), request.password.as_str()),
            ("INPUTT", "123456")
        );
        assert_eq!(request.transaction_id, "");
        assert_eq!(request.field("DEBIT.ACCT.NO"), Some("EUR10000017"));
        assert_eq!(request.field("DEBIT.AMOUNT"), Some("150.00"));
        assert_eq!(
            request.to_line(),
            "FUNDS.TRANSFER,/I/PROCESS//,INPUTT/123456,,DEBIT.ACCT.NO:1:1=EUR10000017,DEBIT.AMOUNT:1:1=150.00"
        );
    }

    #[test]
    fn an_error_response_carries_the_text_in_place_of_the_bad_value() {
        let response = Response::parse(
            "FT2633100001/7f3a/-1,DEBIT.AMOUNT:1:1=INSUFFICIENT FUNDS\\, AVAILABLE 12.00",
        )
        .unwrap();
        assert_eq!(response.indicator, Indicator::Error);
        assert_eq!(
            response.field("DEBIT.AMOUNT"),
            Some("INSUFFICIENT FUNDS, AVAILABLE 12.00")
        );
        assert_eq!(
            response.to_line(),
            "FT2633100001/7f3a/-1,DEBIT.AMOUNT:1:1=INSUFFICIENT FUNDS\\, AVAILABLE 12.00"
        );
    }

    #[test]
    fn positions_and_escapes_are_read() {
        let request = Request::parse(
            "CUSTOMER,PERSON/I/VALIDATE//2,US\\/ER/p\\\\w\\,d,100123,STREET:2=Rue de la Paix\\, 2,NAME:1:3=A\\/B",
        )
        .unwrap();
        assert_eq!(request.version, "PERSON");
        assert_eq!(request.process, Process::Validate);
        assert_eq!(request.authorisers, Some(2));
        assert_eq!(
            (request.user.as_str(), request.password.as_str()),
            ("US/ER", "p\\w,d")
        );
        assert_eq!(
            request.fields[0],
            Field {
                name: "STREET".to_owned(),
                multi_value: 2,
                sub_value: 1,
                value: "Rue de la Paix, 2".to_owned()
            }
        );
        assert_eq!(
            request.fields[1],
            Field {
                name: "NAME".to_owned(),
                multi_value: 1,
                sub_value: 3,
                value: "A/B".to_owned()
            }
        );
    }
}
