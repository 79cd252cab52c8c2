//! SOCKS version 5 wire formats (RFC 1928) and username/password
//! sub-negotiation (RFC 1929). Pure parsers and encoders over byte slices.

use crate::parse::{Addr, Parsed};
use crate::reply::Reply;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

/// VER of every SOCKS5 message but the RFC 1929 ones.
pub const VERSION: u8 = 0x05;
/// RFC 1929 §2: the sub-negotiation has its own version number.
pub const AUTH_VERSION: u8 = 0x01;

/// Authentication methods (RFC 1928 §3).
pub mod method {
    /// No authentication required.
    pub const NO_AUTH: u8 = 0x00;
    /// GSSAPI (RFC 1961).
    pub const GSSAPI: u8 = 0x01;
    /// Username/password (RFC 1929).
    pub const USER_PASS: u8 = 0x02;
    /// The server's answer when none is acceptable.
    pub const NO_ACCEPTABLE: u8 = 0xFF;
}

/// Address types (RFC 1928 §5).
pub mod atyp {
    /// An IPv4 address, 4 bytes.
    pub const IPV4: u8 = 0x01;
    /// A domain name, a length byte and up to 255 bytes.
    pub const DOMAIN: u8 = 0x03;
    /// An IPv6 address, 16 bytes.
    pub const IPV6: u8 = 0x04;
}

/// Longest reply: VER REP RSV ATYP + 16-byte IPv6 + port.
pub const MAX_REPLY: usize = 22;

/// Why a SOCKS5 message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// VER was not 0x05 (or 0x01 in the RFC 1929 sub-negotiation).
    Version(u8),
    /// CMD is not CONNECT, BIND or UDP ASSOCIATE.
    Command(u8),
    /// ATYP is not 1, 3 or 4.
    AddressType(u8),
    /// A domain name of length zero.
    EmptyDomain,
}

impl Error {
    /// The REP code a request error is answered with (RFC 1928 §6).
    pub fn reply(self) -> Reply {
        match self {
            Error::Version(_) => Reply::GeneralFailure,
            Error::Command(_) => Reply::CommandNotSupported,
            Error::AddressType(_) => Reply::AddressTypeNotSupported,
            Error::EmptyDomain => Reply::HostUnreachable,
        }
    }
}

/// Method-selection message (RFC 1928 §3): the methods the client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Greeting<'a> {
    /// The METHODS the client offers.
    pub methods: &'a [u8],
}

impl Greeting<'_> {
    /// Whether the client offers `method`.
    pub fn offers(&self, method: u8) -> bool {
        self.methods.contains(&method)
    }
}

/// `VER NMETHODS METHODS...`. NMETHODS = 0 parses; no method is then
/// acceptable and the server answers 0xFF.
///
/// ```
/// use socksd::parse::Parsed;
/// use socksd::socks5::{method, parse_greeting};
///
/// assert_eq!(parse_greeting(&[5, 2]), Ok(Parsed::Incomplete));
/// let Ok(Parsed::Done(g, used)) = parse_greeting(&[5, 2, 0, 2, 0xAA]) else { panic!() };
/// assert!(g.offers(method::USER_PASS));
/// assert_eq!(used, 4); // the 0xAA after it is not part of the greeting
/// ```
pub fn parse_greeting(buf: &[u8]) -> Result<Parsed<Greeting<'_>>, Error> {
    let Some(&ver) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    if ver != VERSION {
        return Err(Error::Version(ver));
    }
    let Some(&n) = buf.get(1) else {
        return Ok(Parsed::Incomplete);
    };
    let end = 2 + n as usize;
    match buf.get(2..end) {
        Some(methods) => Ok(Parsed::Done(Greeting { methods }, end)),
        None => Ok(Parsed::Incomplete),
    }
}

/// Username/password request (RFC 1929 §2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// UNAME.
    pub user: &'a [u8],
    /// PASSWD.
    pub pass: &'a [u8],
}

/// Never print a password, not even in a debug dump.
impl std::fmt::Debug for Credentials<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &String::from_utf8_lossy(self.user))
            .field("pass", &"<redacted>")
            .finish()
    }
}

/// `VER=1 ULEN UNAME PLEN PASSWD`. Zero lengths parse (RFC 1929 asks for
/// 1..255); they can match no user, so they fail at verification with a
/// proper status reply instead of a bare close.
pub fn parse_auth(buf: &[u8]) -> Result<Parsed<Credentials<'_>>, Error> {
    let Some(&ver) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    if ver != AUTH_VERSION {
        return Err(Error::Version(ver));
    }
    let Some(&ulen) = buf.get(1) else {
        return Ok(Parsed::Incomplete);
    };
    let uend = 2 + ulen as usize;
    let Some(&plen) = buf.get(uend) else {
        return Ok(Parsed::Incomplete);
    };
    let pend = uend + 1 + plen as usize;
    if buf.len() < pend {
        return Ok(Parsed::Incomplete);
    }
    let creds = Credentials { user: &buf[2..uend], pass: &buf[uend + 1..pend] };
    Ok(Parsed::Done(creds, pend))
}

/// RFC 1929 §2 reply: STATUS 0x00 is success, anything else failure.
pub fn encode_auth_reply(ok: bool) -> [u8; 2] {
    [AUTH_VERSION, if ok { 0x00 } else { 0x01 }]
}

/// Request commands (RFC 1928 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// 0x01: CONNECT.
    Connect,
    /// 0x02: BIND.
    Bind,
    /// 0x03: UDP ASSOCIATE.
    UdpAssociate,
}

/// `VER CMD RSV ATYP DST.ADDR DST.PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// CMD.
    pub cmd: Command,
    /// DST.ADDR and DST.PORT.
    pub dst: Addr<'a>,
}

/// Parses a request. RSV is not checked: RFC 1928 says it is reserved, and
/// rejecting a nonzero value would only break sloppy clients.
///
/// ```
/// use socksd::parse::{Addr, Parsed};
/// use socksd::reply::Reply;
/// use socksd::socks5::{parse_request, Command};
///
/// let req = b"\x05\x01\x00\x03\x0bexample.org\x01\xbb";
/// let Ok(Parsed::Done(r, n)) = parse_request(req) else { panic!() };
/// assert_eq!((r.cmd, r.dst, n), (Command::Connect, Addr::Domain(b"example.org", 443), req.len()));
/// // An unknown address type is answered with reply 0x08.
/// assert_eq!(parse_request(&[5, 1, 0, 9]).unwrap_err().reply(), Reply::AddressTypeNotSupported);
/// ```
pub fn parse_request(buf: &[u8]) -> Result<Parsed<Request<'_>>, Error> {
    let Some(&ver) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    if ver != VERSION {
        return Err(Error::Version(ver));
    }
    let Some(&cmd) = buf.get(1) else {
        return Ok(Parsed::Incomplete);
    };
    let cmd = match cmd {
        0x01 => Command::Connect,
        0x02 => Command::Bind,
        0x03 => Command::UdpAssociate,
        other => return Err(Error::Command(other)),
    };
    match parse_addr(buf.get(3..).unwrap_or(&[]))? {
        Parsed::Incomplete => Ok(Parsed::Incomplete),
        Parsed::Done(dst, n) => Ok(Parsed::Done(Request { cmd, dst }, 3 + n)),
    }
}

/// `ATYP ADDR PORT`, shared by requests and UDP headers (RFC 1928 §5, §7).
pub fn parse_addr(buf: &[u8]) -> Result<Parsed<Addr<'_>>, Error> {
    let Some(&ty) = buf.first() else {
        return Ok(Parsed::Incomplete);
    };
    let port_at = |at: usize| buf.get(at..at + 2).map(|p| u16::from_be_bytes([p[0], p[1]]));
    match ty {
        atyp::IPV4 => match (buf.get(1..5), port_at(5)) {
            (Some(ip), Some(port)) => {
                let ip = Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]);
                let sa = SocketAddr::V4(SocketAddrV4::new(ip, port));
                Ok(Parsed::Done(Addr::Ip(sa), 7))
            }
            _ => Ok(Parsed::Incomplete),
        },
        atyp::IPV6 => match (buf.get(1..17), port_at(17)) {
            (Some(ip), Some(port)) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(ip);
                let sa = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(octets), port, 0, 0));
                Ok(Parsed::Done(Addr::Ip(sa), 19))
            }
            _ => Ok(Parsed::Incomplete),
        },
        atyp::DOMAIN => {
            let Some(&len) = buf.get(1) else {
                return Ok(Parsed::Incomplete);
            };
            if len == 0 {
                return Err(Error::EmptyDomain);
            }
            let end = 2 + len as usize;
            match (buf.get(2..end), port_at(end)) {
                (Some(name), Some(port)) => Ok(Parsed::Done(Addr::Domain(name, port), end + 2)),
                _ => Ok(Parsed::Incomplete),
            }
        }
        other => Err(Error::AddressType(other)),
    }
}

/// Writes `ATYP ADDR PORT` for an IP address; returns the length (7 or 19).
pub fn encode_addr(addr: SocketAddr, out: &mut [u8]) -> usize {
    match addr {
        SocketAddr::V4(a) => {
            out[0] = atyp::IPV4;
            out[1..5].copy_from_slice(&a.ip().octets());
            out[5..7].copy_from_slice(&a.port().to_be_bytes());
            7
        }
        SocketAddr::V6(a) => {
            out[0] = atyp::IPV6;
            out[1..17].copy_from_slice(&a.ip().octets());
            out[17..19].copy_from_slice(&a.port().to_be_bytes());
            19
        }
    }
}

/// `VER REP RSV ATYP BND.ADDR BND.PORT` (RFC 1928 §6); returns the length.
pub fn encode_reply(rep: Reply, bnd: SocketAddr, out: &mut [u8; MAX_REPLY]) -> usize {
    out[0] = VERSION;
    out[1] = rep as u8;
    out[2] = 0;
    3 + encode_addr(bnd, &mut out[3..])
}

/// The BND address of a failure reply: 0.0.0.0:0.
pub const UNSPECIFIED: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0));

/// Header of a UDP relay datagram (RFC 1928 §7): `RSV(2) FRAG ATYP DST PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpHeader<'a> {
    /// FRAG: 0 for a whole datagram.
    pub frag: u8,
    /// DST.ADDR and DST.PORT.
    pub dst: Addr<'a>,
}

/// Parses the header of one whole datagram; returns it and the offset of
/// DATA. A datagram is never "incomplete": a short one is an error.
pub fn parse_udp_header(dgram: &[u8]) -> Option<(UdpHeader<'_>, usize)> {
    let frag = *dgram.get(2)?;
    match parse_addr(dgram.get(3..)?) {
        Ok(Parsed::Done(dst, n)) => Some((UdpHeader { frag, dst }, 3 + n)),
        _ => None,
    }
}

/// Writes the header naming `src` in front of a reply datagram; returns its
/// length (10 or 22).
pub fn encode_udp_header(src: SocketAddr, out: &mut [u8]) -> usize {
    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    3 + encode_addr(src, &mut out[3..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greeting() {
        assert_eq!(parse_greeting(&[]), Ok(Parsed::Incomplete));
        assert_eq!(parse_greeting(&[5]), Ok(Parsed::Incomplete));
        assert_eq!(parse_greeting(&[5, 2, 0]), Ok(Parsed::Incomplete));
        let g = parse_greeting(&[5, 2, 0, 2, 9]).unwrap();
        assert_eq!(g, Parsed::Done(Greeting { methods: &[0, 2] }, 4));
        assert_eq!(parse_greeting(&[5, 0]), Ok(Parsed::Done(Greeting { methods: &[] }, 2)));
        assert_eq!(parse_greeting(&[4, 1, 0]), Err(Error::Version(4)));
    }

    #[test]
    fn auth() {
        let msg = [1, 3, b'b', b'o', b'b', 2, b'p', b'w', 0xAA];
        for n in 0..8 {
            assert_eq!(parse_auth(&msg[..n]), Ok(Parsed::Incomplete), "prefix {n}");
        }
        let Ok(Parsed::Done(c, 8)) = parse_auth(&msg) else { panic!() };
        assert_eq!((c.user, c.pass), (&b"bob"[..], &b"pw"[..]));
        assert!(!format!("{c:?}").contains("pw"));
        assert_eq!(parse_auth(&[5, 1, 0]), Err(Error::Version(5)));
        assert!(matches!(parse_auth(&[1, 0, 0]), Ok(Parsed::Done(_, 3))));
        assert_eq!(encode_auth_reply(false), [1, 1]);
    }

    #[test]
    fn requests() {
        let v4 = [5, 1, 0, 1, 127, 0, 0, 1, 0x1F, 0x90, 0xEE];
        for n in 0..10 {
            assert_eq!(parse_request(&v4[..n]), Ok(Parsed::Incomplete), "prefix {n}");
        }
        let sa: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        assert_eq!(parse_request(&v4), Ok(Parsed::Done(Request { cmd: Command::Connect, dst: Addr::Ip(sa) }, 10)));
        let mut v6 = vec![5, 2, 0, 4];
        v6.extend_from_slice(&[0; 15]);
        v6.extend_from_slice(&[1, 0, 80]);
        let sa: SocketAddr = "[::1]:80".parse().unwrap();
        assert_eq!(parse_request(&v6), Ok(Parsed::Done(Request { cmd: Command::Bind, dst: Addr::Ip(sa) }, 22)));
        let dom = [5, 3, 0, 3, 3, b'a', b'b', b'c', 0, 53];
        assert_eq!(
            parse_request(&dom),
            Ok(Parsed::Done(Request { cmd: Command::UdpAssociate, dst: Addr::Domain(b"abc", 53) }, 10))
        );
        assert_eq!(parse_request(&[5, 9, 0, 1]), Err(Error::Command(9)));
        assert_eq!(parse_request(&[5, 1, 0, 7]), Err(Error::AddressType(7)));
        assert_eq!(parse_request(&[5, 1, 0, 3, 0, 0, 80]), Err(Error::EmptyDomain));
        assert_eq!(parse_request(&[4, 1]), Err(Error::Version(4)));
        assert_eq!(Error::Command(9).reply(), Reply::CommandNotSupported);
        assert_eq!(Error::AddressType(7).reply(), Reply::AddressTypeNotSupported);
    }

    #[test]
    fn replies_round_trip() {
        let mut out = [0u8; MAX_REPLY];
        let n = encode_reply(Reply::Succeeded, "10.1.2.3:4660".parse().unwrap(), &mut out);
        assert_eq!(&out[..n], &[5, 0, 0, 1, 10, 1, 2, 3, 0x12, 0x34]);
        let sa: SocketAddr = "[2001:db8::7]:443".parse().unwrap();
        let n = encode_reply(Reply::ConnectionRefused, sa, &mut out);
        assert_eq!(n, 22);
        assert_eq!(out[1], 5);
        assert_eq!(parse_addr(&out[3..n]), Ok(Parsed::Done(Addr::Ip(sa), 19)));
    }

    #[test]
    fn udp_header() {
        let mut d = [0u8; 32];
        let src: SocketAddr = "192.0.2.1:53".parse().unwrap();
        let n = encode_udp_header(src, &mut d);
        d[n..n + 3].copy_from_slice(b"xyz");
        let (h, off) = parse_udp_header(&d[..n + 3]).unwrap();
        assert_eq!((h.frag, h.dst, off), (0, Addr::Ip(src), n));
        assert_eq!(parse_udp_header(&d[..n - 1]), None);
        assert_eq!(parse_udp_header(&[0, 0]), None);
    }
}
