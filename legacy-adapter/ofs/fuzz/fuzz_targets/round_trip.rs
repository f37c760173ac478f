//! What every target checks of one codec: any bytes are read or refused, never with a panic,
//! and what is read writes back to a line that reads back the same.

#[path = "../../src/ofs.rs"]
#[allow(dead_code, reason = "the targets use part of the codec")]
pub mod ofs;

/// Reads `data` with `parse` when it is text; what it reads, `to_line` writes back to a line
/// that `parse` must read back the same.
pub fn check<T, E>(data: &[u8], parse: fn(&str) -> Result<T, E>, to_line: fn(&T) -> String)
where
    T: PartialEq + std::fmt::Debug,
{
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(value) = parse(text) {
        let line = to_line(&value);
        assert_eq!(parse(&line).ok(), Some(value), "{line:?}");
    }
}
