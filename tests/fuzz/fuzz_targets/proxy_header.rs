#![no_main]
//! proxy_header::parse: never panics, never claims more than it was
//! given, and decides from the header's own bytes.

use libfuzzer_sys::fuzz_target;
use socksd::parse::Parsed;
use socksd::proxy_header;

fuzz_target!(|data: &[u8]| {
    if let Ok(Parsed::Done(h, n)) = proxy_header::parse(data) {
        assert!(n > 0 && n <= data.len());
        assert_eq!(proxy_header::parse(&data[..n]), Ok(Parsed::Done(h, n)));
    }
});
