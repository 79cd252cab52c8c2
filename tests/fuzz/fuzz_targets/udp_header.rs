#![no_main]
//! socks5::parse_udp_header: never panics; DATA starts inside the datagram.

use libfuzzer_sys::fuzz_target;
use socksd::socks5;

fuzz_target!(|data: &[u8]| {
    if let Some((_, off)) = socks5::parse_udp_header(data) {
        assert!(off <= data.len());
    }
});
