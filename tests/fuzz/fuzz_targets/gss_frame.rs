#![no_main]
//! RFC 1961 framing and the protection-level choice: any bytes, any
//! expected type and bound; the parser never reads past its input or
//! returns a token over the bound.

use libfuzzer_sys::fuzz_target;
use socksd::gss_wire::{header, parse, Level, Levels, Mtyp, HEADER};
use socksd::parse::Parsed;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else { return };
    let want = [Mtyp::Context, Mtyp::Protection, Mtyp::Data][usize::from(sel % 3)];
    let max = usize::from(sel) * 257 + 1;
    if let Ok(Parsed::Done(token, used)) = parse(rest, want, max) {
        assert!(!token.is_empty() && token.len() <= max && used == HEADER + token.len() && used <= rest.len());
        assert_eq!(header(want, token.len())[..], rest[..HEADER]);
    }
    if let Ok(levels) = Levels::parse(&String::from_utf8_lossy(rest)) {
        let chosen = levels.choose(Level::from_octet(sel));
        assert!(levels.has(chosen), "the levels are never empty");
    }
});
