//! Any bytes: the request parser answers or refuses, never panics; what it reads writes back
//! to a line that reads back the same.
#![no_main]

#[path = "../../src/ofs.rs"]
#[allow(dead_code, reason = "the targets use part of the codec")]
mod ofs;

use ofs::Request;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(request) = Request::parse(text) {
        let line = request.to_line();
        assert_eq!(Request::parse(&line).ok(), Some(request), "{line:?}");
    }
});
