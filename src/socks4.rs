//! SOCKS4 and SOCKS4a wire formats. Pure parser and encoder.
//!
//! SOCKS4 has no RFC; the de-facto specs are "SOCKS: A protocol for TCP proxy
//! across firewalls" (Ying-Da Lee) and its 4A extension. USERID and the 4a
//! domain have no length field, so each is capped at [`MAX_FIELD`] bytes.

use crate::parse::{Addr, Parsed, MAX_FIELD};
use crate::reply::Reply4;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

/// VN of a SOCKS4 request.
pub const VERSION: u8 = 0x04;
/// Reply VN: replies carry 0, not 4.
pub const REPLY_VERSION: u8 = 0x00;
/// A SOCKS4 reply is always 8 bytes.
pub const REPLY_LEN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// CD of a SOCKS4 request.
pub enum Command {
    /// 1: CONNECT.
    Connect,
    /// 2: BIND.
    Bind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// Why a SOCKS4 request cannot be parsed.
pub enum Error {
    /// VN is not 4.
    Version(u8),
    /// CD is neither CONNECT nor BIND.
    Command(u8),
    /// USERID longer than [`MAX_FIELD`] without its terminating NUL.
    UserIdTooLong,
    /// 4a domain longer than [`MAX_FIELD`], or empty.
    BadDomain,
}

/// `VN CD DSTPORT DSTIP USERID 0 [DOMAIN 0]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// What the client asks for.
    pub cmd: Command,
    /// An IP for SOCKS4, a domain for SOCKS4a.
    pub dst: Addr<'a>,
    /// The USERID field (socksd ignores it).
    pub user: &'a [u8],
}

impl Request<'_> {
    /// SOCKS4a marks "the server resolves" with DSTIP 0.0.0.x, x != 0.
    fn is_4a(ip: [u8; 4]) -> bool {
        ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0
    }
}

/// Finds a NUL-terminated field at the start of `buf`, at most
/// [`MAX_FIELD`] bytes before the NUL. `Ok(None)` means "need more".
fn nul_field(buf: &[u8]) -> Result<Option<&[u8]>, ()> {
    let window = &buf[..buf.len().min(MAX_FIELD + 1)];
    match window.iter().position(|&b| b == 0) {
        Some(i) => Ok(Some(&buf[..i])),
        None if window.len() > MAX_FIELD => Err(()),
        None => Ok(None),
    }
}

/// Parses a SOCKS4 or SOCKS4a request.
///
/// ```
/// use socksd::parse::{Addr, Parsed};
/// use socksd::socks4::{parse_request, Error};
///
/// // SOCKS4a: DSTIP 0.0.0.1, then the user id and the name, NUL-terminated.
/// let req = b"\x04\x01\x00\x50\x00\x00\x00\x01bob\x00example.org\x00";
/// let Ok(Parsed::Done(r, _)) = parse_request(req) else { panic!() };
/// assert_eq!((r.user, r.dst), (&b"bob"[..], Addr::Domain(b"example.org", 80)));
/// // A user id with no NUL within 255 bytes is refused, not buffered.
/// let mut long = vec![4, 1, 0, 80, 1, 2, 3, 4];
/// long.extend([b'x'; 300]);
/// assert_eq!(parse_request(&long), Err(Error::UserIdTooLong));
/// ```
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request<'_>>, Error> {
    let Some(&ver) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    if ver != VERSION {
        return Err(Error::Version(ver));
    }
    let Some(&cd) = buf.get(1) else {
        return Ok(Parsed::Incomplete);
    };
    let cmd = match cd {
        0x01 => Command::Connect,
        0x02 => Command::Bind,
        other => return Err(Error::Command(other)),
    };
    let Some(head) = buf.get(..8) else {
        return Ok(Parsed::Incomplete);
    };
    let port = u16::from_be_bytes([head[2], head[3]]);
    let ip = [head[4], head[5], head[6], head[7]];
    let user = match nul_field(&buf[8..]) {
        Ok(Some(u)) => u,
        Ok(None) => return Ok(Parsed::Incomplete),
        Err(()) => return Err(Error::UserIdTooLong),
    };
    let mut used = 8 + user.len() + 1;
    let dst = if Request::is_4a(ip) {
        let name = match nul_field(&buf[used..]) {
            Ok(Some([])) => return Err(Error::BadDomain),
            Ok(Some(n)) => n,
            Ok(None) => return Ok(Parsed::Incomplete),
            Err(()) => return Err(Error::BadDomain),
        };
        used += name.len() + 1;
        Addr::Domain(name, port)
    } else {
        Addr::Ip(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
    };
    Ok(Parsed::Done(Request { cmd, dst, user }, used))
}

/// `VN=0 CD DSTPORT DSTIP`. `addr` is the bound address for BIND; CONNECT
/// clients ignore it, and an IPv6 address is sent as 0.0.0.0 since it does
/// not fit.
pub fn encode_reply(cd: Reply4, addr: SocketAddr) -> [u8; REPLY_LEN] {
    let (ip, port) = match addr {
        SocketAddr::V4(a) => (a.ip().octets(), a.port()),
        SocketAddr::V6(a) => ([0; 4], a.port()),
    };
    let p = port.to_be_bytes();
    [REPLY_VERSION, cd as u8, p[0], p[1], ip[0], ip[1], ip[2], ip[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks4_connect() {
        let msg = [4, 1, 0, 80, 10, 0, 0, 1, b'u', 0, 0xAB];
        for n in 0..10 {
            assert_eq!(parse_request(&msg[..n]), Ok(Parsed::Incomplete), "prefix {n}");
        }
        let Ok(Parsed::Done(r, 10)) = parse_request(&msg) else { panic!() };
        assert_eq!(r.cmd, Command::Connect);
        assert_eq!(r.user, b"u");
        assert_eq!(r.dst, Addr::Ip("10.0.0.1:80".parse().unwrap()));
    }

    #[test]
    fn socks4a_domain() {
        let msg = b"\x04\x01\x01\xbb\x00\x00\x00\x07\x00example.org\x00";
        let Ok(Parsed::Done(r, n)) = parse_request(msg) else { panic!() };
        assert_eq!(n, msg.len());
        assert_eq!(r.dst, Addr::Domain(b"example.org", 443));
        assert!(r.user.is_empty());
        assert_eq!(parse_request(&msg[..msg.len() - 1]), Ok(Parsed::Incomplete));
        assert_eq!(parse_request(b"\x04\x01\x00\x50\x00\x00\x00\x01\x00\x00"), Err(Error::BadDomain));
    }

    #[test]
    fn caps() {
        let mut msg = vec![4, 1, 0, 80, 1, 2, 3, 4];
        msg.extend(std::iter::repeat_n(b'a', MAX_FIELD));
        assert_eq!(parse_request(&msg), Ok(Parsed::Incomplete));
        msg.push(b'a');
        assert_eq!(parse_request(&msg), Err(Error::UserIdTooLong));
        let mut ok = vec![4, 1, 0, 80, 1, 2, 3, 4];
        ok.extend(std::iter::repeat_n(b'a', MAX_FIELD));
        ok.push(0);
        assert!(matches!(parse_request(&ok), Ok(Parsed::Done(_, _))));
        let mut dom = vec![4, 1, 0, 80, 0, 0, 0, 1, 0];
        dom.extend(std::iter::repeat_n(b'd', MAX_FIELD + 1));
        assert_eq!(parse_request(&dom), Err(Error::BadDomain));
    }

    #[test]
    fn bad_header() {
        assert_eq!(parse_request(&[5]), Err(Error::Version(5)));
        assert_eq!(parse_request(&[4, 3]), Err(Error::Command(3)));
        assert!(
            matches!(parse_request(&[4, 2, 0, 21, 1, 2, 3, 4, 0]), Ok(Parsed::Done(r, 9)) if r.cmd == Command::Bind)
        );
    }

    #[test]
    fn reply() {
        let r = encode_reply(Reply4::Granted, "1.2.3.4:258".parse().unwrap());
        assert_eq!(r, [0, 0x5A, 1, 2, 1, 2, 3, 4]);
        let r = encode_reply(Reply4::Rejected, "[::1]:1".parse().unwrap());
        assert_eq!(r, [0, 0x5B, 0, 1, 0, 0, 0, 0]);
    }
}
