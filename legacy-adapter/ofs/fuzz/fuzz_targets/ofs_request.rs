//! Any bytes: the request parser answers or refuses, never panics; what it reads writes back
//! to a line that reads back the same.
#![no_main]

mod round_trip;

use libfuzzer_sys::fuzz_target;
use round_trip::ofs::Request;

fuzz_target!(|data: &[u8]| round_trip::check(data, Request::parse, Request::to_line));
