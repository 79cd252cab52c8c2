//! What socksd says to an upstream proxy, and how it reads the answers
//! (upstream chaining, `--upstream`): SOCKS5 (RFC 1928, with RFC 1929
//! credentials; names passed on unresolved), SOCKS4a, and HTTP CONNECT
//! (RFC 9110 §9.3.6, Basic credentials per RFC 7617). Pure: the encoders
//! append to a buffer, the parsers read from the front of one.

use crate::parse::Parsed;
use crate::reply::Reply;
use crate::socks5;
use std::io::Write as _;
use std::net::SocketAddr;

/// The destination asked of the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest<'a> {
    /// An address.
    Ip(SocketAddr),
    /// A name the upstream resolves (at most 255 bytes), and the port.
    Name(&'a str, u16),
}

/// The upstream broke its protocol (or sent more than [`HTTP_MAX`] bytes
/// of response head).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bad;

/// The longest HTTP response head read before giving up.
pub const HTTP_MAX: usize = 4096;

/// The SOCKS5 greeting: no authentication, and username/password when
/// there are credentials.
pub fn socks5_greeting(creds: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(if creds { &[5, 2, 0, 2] } else { &[5, 1, 0] });
}

/// RFC 1929's request (each field at most 255 bytes; the flag parser
/// checks).
pub fn socks5_auth(user: &[u8], pass: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&[1, user.len() as u8]);
    out.extend_from_slice(user);
    out.push(pass.len() as u8);
    out.extend_from_slice(pass);
}

/// A SOCKS5 CONNECT for `dest`.
pub fn socks5_connect(dest: Dest, out: &mut Vec<u8>) {
    out.extend_from_slice(&[5, 1, 0]);
    match dest {
        Dest::Ip(a) => {
            let mut b = [0u8; 19];
            let n = socks5::encode_addr(a, &mut b);
            out.extend_from_slice(&b[..n]);
        }
        Dest::Name(name, port) => {
            out.extend_from_slice(&[socks5::atyp::DOMAIN, name.len() as u8]);
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
}

/// A SOCKS4a CONNECT (SOCKS4 for an IPv4 address); SOCKS4 has no IPv6.
pub fn socks4a_connect(dest: Dest, user: &[u8], out: &mut Vec<u8>) -> Result<(), Reply> {
    let (ip, port, name) = match dest {
        Dest::Ip(SocketAddr::V4(a)) => (a.ip().octets(), a.port(), None),
        Dest::Ip(SocketAddr::V6(_)) => return Err(Reply::AddressTypeNotSupported),
        Dest::Name(n, port) => ([0, 0, 0, 1], port, Some(n)),
    };
    out.extend_from_slice(&[4, 1]);
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&ip);
    out.extend_from_slice(user);
    out.push(0);
    if let Some(n) = name {
        out.extend_from_slice(n.as_bytes());
        out.push(0);
    }
    Ok(())
}

/// `CONNECT host:port HTTP/1.1` with `Host` and, with credentials,
/// `Proxy-Authorization: Basic`.
pub fn http_connect(dest: Dest, creds: Option<(&[u8], &[u8])>, out: &mut Vec<u8>) {
    let mut authority = Vec::with_capacity(64);
    let _ = match dest {
        Dest::Ip(a) => write!(authority, "{a}"),
        Dest::Name(n, port) => write!(authority, "{n}:{port}"),
    };
    out.extend_from_slice(b"CONNECT ");
    out.extend_from_slice(&authority);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(&authority);
    out.extend_from_slice(b"\r\n");
    if let Some((user, pass)) = creds {
        out.extend_from_slice(b"Proxy-Authorization: Basic ");
        let mut plain = Vec::with_capacity(user.len() + pass.len() + 1);
        plain.extend_from_slice(user);
        plain.push(b':');
        plain.extend_from_slice(pass);
        base64(&plain, out);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// RFC 4648 §4 base64, padded.
fn base64(data: &[u8], out: &mut Vec<u8>) {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for c in data.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] } else { b'=' });
        }
    }
}

/// The method the upstream chose: `Ok(true)` for username/password,
/// `Ok(false)` for none; `Err` when it accepts neither (0xFF) or chose
/// one that was not offered.
pub fn socks5_method(buf: &[u8], creds: bool) -> Result<Parsed<bool>, Bad> {
    match buf {
        [] | [5] => Ok(Parsed::Incomplete),
        [5, 0, ..] => Ok(Parsed::Done(false, 2)),
        [5, 2, ..] if creds => Ok(Parsed::Done(true, 2)),
        _ => Err(Bad),
    }
}

/// RFC 1929's status: `true` when the credentials were accepted.
pub fn socks5_auth_status(buf: &[u8]) -> Result<Parsed<bool>, Bad> {
    match buf {
        [] | [1] => Ok(Parsed::Incomplete),
        [1, status, ..] => Ok(Parsed::Done(*status == 0, 2)),
        _ => Err(Bad),
    }
}

/// A SOCKS5 reply: its code (an unknown one is a general failure).
pub fn socks5_reply(buf: &[u8]) -> Result<Parsed<Reply>, Bad> {
    match buf {
        [] | [5] | [5, _] | [5, _, _] => Ok(Parsed::Incomplete),
        [5, rep, 0, rest @ ..] => match socks5::parse_addr(rest).map_err(|_| Bad)? {
            Parsed::Incomplete => Ok(Parsed::Incomplete),
            Parsed::Done(_, n) => Ok(Parsed::Done(reply(*rep), 3 + n)),
        },
        _ => Err(Bad),
    }
}

fn reply(code: u8) -> Reply {
    match code {
        0 => Reply::Succeeded,
        2 => Reply::NotAllowed,
        3 => Reply::NetworkUnreachable,
        4 => Reply::HostUnreachable,
        5 => Reply::ConnectionRefused,
        6 => Reply::TtlExpired,
        7 => Reply::CommandNotSupported,
        8 => Reply::AddressTypeNotSupported,
        _ => Reply::GeneralFailure,
    }
}

/// A SOCKS4 reply (8 bytes): granted (90), or a failure. SOCKS4 says
/// nothing of why; 92 and 93 are the identd's refusals.
pub fn socks4_reply(buf: &[u8]) -> Result<Parsed<Reply>, Bad> {
    let Some(b) = buf.get(..8) else { return Ok(Parsed::Incomplete) };
    match b[..2] {
        [0, 90] => Ok(Parsed::Done(Reply::Succeeded, 8)),
        [0, 92 | 93] => Ok(Parsed::Done(Reply::NotAllowed, 8)),
        [0, _] => Ok(Parsed::Done(Reply::GeneralFailure, 8)),
        _ => Err(Bad),
    }
}

/// An HTTP response head up to its blank line: 2xx opens the tunnel; the
/// other codes map to the nearest SOCKS reply.
pub fn http_reply(buf: &[u8]) -> Result<Parsed<Reply>, Bad> {
    let window = &buf[..buf.len().min(HTTP_MAX)];
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        // Not HTTP at all is known from the first bytes.
        let n = window.len().min(5);
        if window[..n] != b"HTTP/"[..n] || window.len() >= HTTP_MAX {
            return Err(Bad);
        }
        return Ok(Parsed::Incomplete);
    };
    // "HTTP/1.x SP 3DIGIT SP reason"
    let status = window.get(8..13).ok_or(Bad)?;
    if !window.starts_with(b"HTTP/1.") || status[0] != b' ' || !status[1..4].iter().all(u8::is_ascii_digit) {
        return Err(Bad);
    }
    let code = (status[1] - b'0') as u16 * 100 + (status[2] - b'0') as u16 * 10 + (status[3] - b'0') as u16;
    let rep = match code {
        200..=299 => Reply::Succeeded,
        401 | 403 | 407 => Reply::NotAllowed,
        404 | 502 | 503 => Reply::HostUnreachable,
        408 | 504 => Reply::TtlExpired,
        _ => Reply::GeneralFailure,
    };
    Ok(Parsed::Done(rep, end + 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_byte_for_byte() {
        let mut o = Vec::new();
        socks5_greeting(true, &mut o);
        socks5_auth(b"al", b"pw!", &mut o);
        assert_eq!(o, b"\x05\x02\x00\x02\x01\x02al\x03pw!");
        o.clear();
        socks5_connect(Dest::Name("x.onion", 80), &mut o);
        assert_eq!(o, b"\x05\x01\x00\x03\x07x.onion\x00\x50");
        o.clear();
        socks5_connect(Dest::Ip("10.0.0.1:443".parse().unwrap()), &mut o);
        assert_eq!(o, b"\x05\x01\x00\x01\x0a\x00\x00\x01\x01\xbb");
        o.clear();
        socks4a_connect(Dest::Name("h", 80), b"u", &mut o).unwrap();
        assert_eq!(o, b"\x04\x01\x00\x50\x00\x00\x00\x01u\x00h\x00");
        assert_eq!(
            socks4a_connect(Dest::Ip("[::1]:1".parse().unwrap()), b"", &mut o),
            Err(Reply::AddressTypeNotSupported)
        );
        o.clear();
        http_connect(Dest::Ip("[2001:db8::1]:443".parse().unwrap()), Some((b"Aladdin", b"open sesame")), &mut o);
        // RFC 7617 §2's example credentials.
        assert_eq!(
            String::from_utf8(o).unwrap(),
            "CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: [2001:db8::1]:443\r\nProxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        for (plain, enc) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg==")] {
            let mut o = Vec::new();
            base64(plain.as_bytes(), &mut o);
            assert_eq!(o, enc.as_bytes(), "RFC 4648 §10");
        }
    }

    #[test]
    fn answers() {
        assert_eq!(socks5_method(&[5], true), Ok(Parsed::Incomplete));
        assert_eq!(socks5_method(&[5, 0], true), Ok(Parsed::Done(false, 2)));
        assert_eq!(socks5_method(&[5, 2], true), Ok(Parsed::Done(true, 2)));
        assert_eq!(socks5_method(&[5, 2], false), Err(Bad));
        assert_eq!(socks5_method(&[5, 0xff], true), Err(Bad));
        assert_eq!(socks5_auth_status(&[1, 0]), Ok(Parsed::Done(true, 2)));
        assert_eq!(socks5_auth_status(&[1, 1]), Ok(Parsed::Done(false, 2)));
        let ok = b"\x05\x00\x00\x01\x7f\x00\x00\x01\x04\x38data";
        assert_eq!(socks5_reply(ok), Ok(Parsed::Done(Reply::Succeeded, 10)));
        for i in 0..10 {
            assert_eq!(socks5_reply(&ok[..i]), Ok(Parsed::Incomplete), "{i}");
        }
        assert_eq!(socks5_reply(b"\x05\x05\x00\x03\x01h\x00\x00"), Ok(Parsed::Done(Reply::ConnectionRefused, 8)));
        assert_eq!(socks5_reply(b"\x05\x09\x00\x01\0\0\0\0\0\0"), Ok(Parsed::Done(Reply::GeneralFailure, 10)));
        assert_eq!(socks5_reply(b"\x04\x00"), Err(Bad));
        assert_eq!(socks4_reply(b"\x00\x5a\x00\x00\x00\x00\x00\x00x"), Ok(Parsed::Done(Reply::Succeeded, 8)));
        assert_eq!(socks4_reply(b"\x00\x5b\x00\x00\x00\x00\x00\x00"), Ok(Parsed::Done(Reply::GeneralFailure, 8)));
        assert_eq!(socks4_reply(b"\x00\x5a"), Ok(Parsed::Incomplete));
        let r = b"HTTP/1.1 200 Connection established\r\nProxy-agent: x\r\n\r\nSSH-2.0";
        assert_eq!(http_reply(r), Ok(Parsed::Done(Reply::Succeeded, r.len() - 7)));
        assert_eq!(http_reply(&r[..20]), Ok(Parsed::Incomplete));
        assert_eq!(http_reply(b"HTTP/1.0 407 Auth\r\n\r\n"), Ok(Parsed::Done(Reply::NotAllowed, 21)));
        assert_eq!(http_reply(b"HTTP/1.0 502 Bad\r\n\r\n"), Ok(Parsed::Done(Reply::HostUnreachable, 20)));
        assert_eq!(http_reply(b"SSH-2.0"), Err(Bad));
        assert_eq!(http_reply(b"HTTP/1.1 2x0 no\r\n\r\n"), Err(Bad));
        let long = [b"HTTP/1.1 200 OK\r\nX: ".as_slice(), &[b'a'; HTTP_MAX]].concat();
        assert_eq!(http_reply(&long), Err(Bad));
    }
}
