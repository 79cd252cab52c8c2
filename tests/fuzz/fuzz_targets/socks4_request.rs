#![no_main]
//! socks4::parse_request: never panics, never consumes more than it was given, and decides a
//! message from its own bytes only.

use libfuzzer_sys::fuzz_target;
use socksd::parse::Parsed;
use socksd::{socks4, socks5};

fuzz_target!(|data: &[u8]| {
    let _ = (socks4::VERSION, socks5::VERSION);
    if let Ok(Parsed::Done(msg, n)) = socks4::parse_request(data) {
        assert!(n > 0 && n <= data.len());
        match socks4::parse_request(&data[..n]) {
            Ok(Parsed::Done(again, m)) => assert!(again == msg && m == n),
            _ => panic!("the exact prefix parses differently"),
        }
    }
});
