//! Deterministic random inputs for every parser: thousands of cases from
//! fixed seeds with a small PRNG of our own. Each parser must not panic,
//! must never claim more bytes than it was given, and must decide a message
//! from its own bytes only (the same answer on the exact prefix it used).

mod common;

use common::Rng;
use socksd::gss_wire::{self, Mtyp};
use socksd::handshake::{decide, Phase, Policy};
use socksd::parse::Parsed;
use socksd::{proxy_header, socks4, socks5};

/// Valid messages to mutate, so that the cases reach deep into each parser.
fn seeds() -> Vec<Vec<u8>> {
    let mut v = vec![
        vec![5, 2, 0, 2],
        vec![1, 5, b'a', b'l', b'i', b'c', b'e', 2, b'p', b'w'],
        vec![5, 1, 0, 1, 127, 0, 0, 1, 0, 80],
        b"\x05\x01\x00\x03\x09localhost\x00\x50".to_vec(),
        b"\x04\x01\x00\x50\x7f\x00\x00\x01user\x00".to_vec(),
        b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.org\x00".to_vec(),
        vec![0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 1, 2, 3],
        vec![1, 1, 0, 3, 0x60, 0x82, 0x02],
        vec![1, 3, 0, 2, 0x05, 0x04],
    ];
    let mut v6 = vec![5, 3, 0, 4];
    v6.extend_from_slice(&[0; 15]);
    v6.extend_from_slice(&[1, 1, 187]);
    v.push(v6);
    // PROXY protocol headers, v1 and v2 (with a TLV).
    v.push(b"PROXY TCP4 192.0.2.7 198.51.100.1 40112 1080\r\n".to_vec());
    v.push(b"PROXY TCP6 2001:db8::7 2001:db8::1 1 65535\r\n".to_vec());
    let mut pp2 = b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x10".to_vec();
    pp2.extend_from_slice(&[192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0xb0, 4, 0x38, 5, 0, 1, b'x']);
    v.push(pp2);
    v
}

fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    match rng.below(4) {
        // Pure noise, with a plausible first byte half the time.
        0 => {
            let n = rng.below(600);
            let mut b = rng.bytes(n);
            if !b.is_empty() && rng.below(2) == 0 {
                b[0] = [0, 1, 4, 5][rng.below(4)];
            }
            b
        }
        // A valid message, cut short.
        1 => {
            let s = &seeds[rng.below(seeds.len())];
            s[..rng.below(s.len() + 1)].to_vec()
        }
        // A valid message with a few bytes changed, maybe extended.
        _ => {
            let mut s = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let i = rng.below(s.len());
                s[i] = rng.next() as u8;
            }
            if rng.below(2) == 0 {
                let extra = rng.below(300);
                s.extend(rng.bytes(extra));
            }
            s
        }
    }
}

/// Checks the contract of one parser on one input.
macro_rules! check {
    ($name:expr, $buf:expr, $parse:expr) => {{
        let buf: &[u8] = $buf;
        if let Ok(Parsed::Done(msg, n)) = $parse(buf) {
            assert!(n <= buf.len(), "{}: consumed {n} of {} bytes", $name, buf.len());
            assert!(n > 0, "{}: a message has at least one byte", $name);
            match $parse(&buf[..n]) {
                Ok(Parsed::Done(again, m)) => {
                    assert_eq!((again, m), (msg, n), "{}: depends on bytes past the message", $name)
                }
                other => panic!("{}: exact prefix gives {other:?}", $name),
            }
        }
    }};
}

#[test]
fn random_inputs_never_break_a_parser() {
    let seeds = seeds();
    let users = [socksd::auth::User::parse("alice:pw").unwrap()];
    let open = Policy { users: &[], socks4: true, bind: true, udp: true, trusted: false, gssapi: false };
    let closed = Policy { users: &users, socks4: false, bind: false, udp: false, trusted: false, gssapi: true };
    let mut cases = 0;
    for seed in 1..=8u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        for _ in 0..5000 {
            let buf = input(&mut rng, &seeds);
            check!("socks5 greeting", &buf, socks5::parse_greeting);
            check!("socks5 auth", &buf, socks5::parse_auth);
            check!("socks5 request", &buf, socks5::parse_request);
            check!("socks5 addr", &buf, socks5::parse_addr);
            check!("socks4 request", &buf, socks4::parse_request);
            check!("proxy header", &buf, proxy_header::parse);
            for mtyp in [Mtyp::Context, Mtyp::Protection, Mtyp::Data] {
                check!("gss frame", &buf, |b| gss_wire::parse(b, mtyp, 300));
            }
            if let Some((_, off)) = socks5::parse_udp_header(&buf) {
                assert!(off <= buf.len(), "udp header offset past the datagram");
            }
            for phase in [Phase::Greeting, Phase::Auth, Phase::Request] {
                for policy in [&open, &closed] {
                    use socksd::handshake::Step;
                    let used = match decide(phase, &buf, policy) {
                        Step::Answer { used, .. }
                        | Step::Connect { used, .. }
                        | Step::Bind { used, .. }
                        | Step::Udp { used, .. } => used,
                        _ => 0,
                    };
                    assert!(used <= buf.len(), "decide consumed past its input");
                }
            }
            cases += 1;
        }
    }
    assert_eq!(cases, 40_000);
}
