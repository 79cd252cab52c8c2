//! The PROXY protocol header a load balancer puts in front of a client's
//! bytes (HAProxy's `proxy-protocol.txt`, versions 1 and 2). Pure parser,
//! no allocation: the header says who the client really is.
//!
//! ```text
//! v1: "PROXY TCP4 192.0.2.7 198.51.100.1 40112 1080\r\n"   (at most 107 bytes)
//! v2: \r\n\r\n\0\r\nQUIT\n, ver|cmd, family|transport, length (BE), addresses, TLVs
//! ```

use crate::parse::Parsed;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v2 signature (spec §2.2).
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// A v1 line is at most 107 bytes, CRLF included (spec §2.1).
pub const V1_MAX: usize = 107;
/// The most a v2 header's address block and TLVs may take here: the
/// addresses take at most 216 bytes (two Unix paths), and the TLVs
/// HAProxy sends (ALPN, authority, SSL, unique id) fit well inside. A
/// longer header is refused rather than buffered.
pub const V2_MAX_BODY: usize = 512;

/// What a header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A relayed connection: the client's address, and the one it
    /// connected to on the balancer.
    Proxy {
        /// The client.
        src: SocketAddr,
        /// The address the client connected to.
        dst: SocketAddr,
    },
    /// The balancer's own connection (a health check: v2 LOCAL), or one
    /// whose addresses are not given (v1 UNKNOWN, v2 UNSPEC or Unix):
    /// the connection's own endpoints stand (spec §2.1, §2.2).
    Local,
}

/// Why the bytes are not a header socksd accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Neither signature: the balancer did not send one.
    Missing,
    /// A v1 line that breaks the grammar, or is too long.
    V1,
    /// A v2 version other than 2, or a command other than LOCAL or PROXY.
    V2Version(u8),
    /// A v2 family byte that is not defined, or an address block shorter
    /// than its family needs.
    V2Address,
    /// A v2 body longer than [`V2_MAX_BODY`].
    V2TooLong(usize),
}

impl Error {
    /// For the log line.
    pub fn what(self) -> &'static str {
        match self {
            Error::Missing => "none sent",
            Error::V1 => "a bad v1 line",
            Error::V2Version(_) => "a v2 version or command not known",
            Error::V2Address => "a bad v2 address block",
            Error::V2TooLong(_) => "a v2 header too long",
        }
    }
}

/// Parses a header from the front of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed<Header>, Error> {
    const V1: &[u8] = b"PROXY ";
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] == V2_SIGNATURE[..n] {
        return if n < V2_SIGNATURE.len() { Ok(Parsed::Incomplete) } else { v2(buf) };
    }
    let n = buf.len().min(V1.len());
    if buf[..n] == V1[..n] {
        return if n < V1.len() { Ok(Parsed::Incomplete) } else { v1(buf) };
    }
    Err(Error::Missing)
}

/// `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, or `PROXY UNKNOWN ...\r\n`.
fn v1(buf: &[u8]) -> Result<Parsed<Header>, Error> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX { Err(Error::V1) } else { Ok(Parsed::Incomplete) };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| Error::V1)?;
    let used = end + 2;
    let mut f = line.split(' ');
    let family = f.next().ok_or(Error::V1)?;
    if family == "UNKNOWN" {
        // "the receiver must ignore anything presented before the CRLF".
        return Ok(Parsed::Done(Header::Local, used));
    }
    let v6 = match family {
        "TCP4" => false,
        "TCP6" => true,
        _ => return Err(Error::V1),
    };
    let ip = |s: Option<&str>| -> Result<IpAddr, Error> {
        let s = s.ok_or(Error::V1)?;
        let ip = if v6 { s.parse::<Ipv6Addr>().map(IpAddr::V6) } else { s.parse::<Ipv4Addr>().map(IpAddr::V4) };
        ip.map_err(|_| Error::V1)
    };
    let port = |s: Option<&str>| -> Result<u16, Error> {
        let s = s.ok_or(Error::V1)?;
        // Digits only, no leading zero (u16's parser would take "+80").
        let ok = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
        if !ok {
            return Err(Error::V1);
        }
        s.parse().map_err(|_| Error::V1)
    };
    let (src, dst) = (ip(f.next())?, ip(f.next())?);
    let (sport, dport) = (port(f.next())?, port(f.next())?);
    if f.next().is_some() {
        return Err(Error::V1);
    }
    Ok(Parsed::Done(Header::Proxy { src: SocketAddr::new(src, sport), dst: SocketAddr::new(dst, dport) }, used))
}

/// The binary form: 16 bytes, then the address block and TLVs.
fn v2(buf: &[u8]) -> Result<Parsed<Header>, Error> {
    if buf.len() < 16 {
        // The version and command are checked as soon as they are here.
        if let Some(&vc) = buf.get(12) {
            check_version(vc)?;
        }
        return Ok(Parsed::Incomplete);
    }
    let local = check_version(buf[12])?;
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_MAX_BODY {
        return Err(Error::V2TooLong(len));
    }
    // The family byte is checked before the body is waited for.
    let need = match fam >> 4 {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Err(Error::V2Address),
    };
    if !matches!(fam & 0x0f, 0..=2) || len < need {
        return Err(Error::V2Address);
    }
    let Some(body) = buf.get(16..16 + len) else { return Ok(Parsed::Incomplete) };
    let used = 16 + len;
    if local {
        return Ok(Parsed::Done(Header::Local, used));
    }
    let port = |i: usize| u16::from_be_bytes([body[i], body[i + 1]]);
    let header = match fam >> 4 {
        1 => {
            let ip = |i: usize| IpAddr::V4(Ipv4Addr::new(body[i], body[i + 1], body[i + 2], body[i + 3]));
            Header::Proxy { src: SocketAddr::new(ip(0), port(8)), dst: SocketAddr::new(ip(4), port(10)) }
        }
        2 => {
            let ip = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&body[i..i + 16]);
                IpAddr::V6(Ipv6Addr::from(o))
            };
            Header::Proxy { src: SocketAddr::new(ip(0), port(32)), dst: SocketAddr::new(ip(16), port(34)) }
        }
        // UNSPEC and Unix sockets: no address to take.
        _ => Header::Local,
    };
    Ok(Parsed::Done(header, used))
}

/// Version 2, command LOCAL (`true`) or PROXY (`false`).
fn check_version(vc: u8) -> Result<bool, Error> {
    match vc {
        0x20 => Ok(true),
        0x21 => Ok(false),
        _ => Err(Error::V2Version(vc)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2_header(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend([0x20 | cmd, fam]);
        h.extend((body.len() as u16).to_be_bytes());
        h.extend(body);
        h
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 40112 1080\r\nGET";
        let want = Header::Proxy { src: "192.0.2.7:40112".parse().unwrap(), dst: "198.51.100.1:1080".parse().unwrap() };
        assert_eq!(parse(h), Ok(Parsed::Done(want, h.len() - 3)));
        let h = b"PROXY TCP6 2001:db8::7 2001:db8::1 0 65535\r\n";
        let want =
            Header::Proxy { src: "[2001:db8::7]:0".parse().unwrap(), dst: "[2001:db8::1]:65535".parse().unwrap() };
        assert_eq!(parse(h), Ok(Parsed::Done(want, h.len())));
        assert_eq!(parse(b"PROXY UNKNOWN whatever\r\n"), Ok(Parsed::Done(Header::Local, 24)));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), Ok(Parsed::Done(Header::Local, 15)));
    }

    #[test]
    fn v1_in_pieces_and_bad_lines() {
        let h = b"PROXY TCP4 192.0.2.7 198.51.100.1 40112 1080\r\n";
        for i in 0..h.len() {
            assert_eq!(parse(&h[..i]), Ok(Parsed::Incomplete), "{i} bytes");
        }
        for bad in [
            &b"PROXY TCP4 192.0.2.7 198.51.100.1 40112 +1080\r\n"[..],
            b"PROXY TCP4 192.0.2.7 198.51.100.1 040112 1080\r\n",
            b"PROXY TCP4 2001:db8::7 198.51.100.1 1 1\r\n",
            b"PROXY TCP6 192.0.2.7 198.51.100.1 1 1\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 65536\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1 1 1\r\n",
            b"PROXY TCP4 192.0.2.7  198.51.100.1 1 1\r\n",
            b"PROXY UDP4 192.0.2.7 198.51.100.1 1 1\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 1\r\n",
        ] {
            assert_eq!(parse(bad), Err(Error::V1), "{}", String::from_utf8_lossy(bad));
        }
        // No CRLF within 107 bytes.
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 200]].concat();
        assert_eq!(parse(&long[..106]), Ok(Parsed::Incomplete));
        assert_eq!(parse(&long[..107]), Err(Error::V1));
        assert_eq!(parse(b"\x05\x01\x00"), Err(Error::Missing));
        assert_eq!(parse(b"PROXX"), Err(Error::Missing));
    }

    #[test]
    fn v2_families_and_local() {
        let body4 = [192, 0, 2, 7, 198, 51, 100, 1, 0x9c, 0xb0, 0x04, 0x38];
        let h = v2_header(1, 0x11, &body4);
        let want = Header::Proxy { src: "192.0.2.7:40112".parse().unwrap(), dst: "198.51.100.1:1080".parse().unwrap() };
        assert_eq!(parse(&h), Ok(Parsed::Done(want, 28)));
        for i in 0..h.len() {
            assert_eq!(parse(&h[..i]), Ok(Parsed::Incomplete), "{i} bytes");
        }
        // TLVs after the addresses are skipped.
        let mut with_tlv = body4.to_vec();
        with_tlv.extend([0x04, 0x00, 0x01, 0xaa]);
        assert_eq!(parse(&v2_header(1, 0x11, &with_tlv)), Ok(Parsed::Done(want, 32)));
        let mut body6 = [0u8; 36];
        body6[0] = 0x20;
        body6[1] = 0x01;
        body6[15] = 7;
        body6[32..34].copy_from_slice(&443u16.to_be_bytes());
        let Ok(Parsed::Done(Header::Proxy { src, .. }, 52)) = parse(&v2_header(1, 0x21, &body6)) else { panic!() };
        assert_eq!(src, "[2001::7]:443".parse::<SocketAddr>().unwrap());
        // A health check, UNSPEC, Unix.
        assert_eq!(parse(&v2_header(0, 0x00, &[])), Ok(Parsed::Done(Header::Local, 16)));
        assert_eq!(parse(&v2_header(0, 0x11, &body4)), Ok(Parsed::Done(Header::Local, 28)));
        assert_eq!(parse(&v2_header(1, 0x00, &[])), Ok(Parsed::Done(Header::Local, 16)));
        assert_eq!(parse(&v2_header(1, 0x31, &[0; 216])), Ok(Parsed::Done(Header::Local, 232)));
    }

    #[test]
    fn v2_refusals() {
        let mut h = v2_header(1, 0x11, &[0; 12]);
        h[12] = 0x11;
        assert_eq!(parse(&h[..13]), Err(Error::V2Version(0x11)));
        h[12] = 0x22;
        assert_eq!(parse(&h), Err(Error::V2Version(0x22)));
        assert_eq!(parse(&v2_header(1, 0x11, &[0; 11])), Err(Error::V2Address));
        assert_eq!(parse(&v2_header(1, 0x41, &[0; 12])), Err(Error::V2Address));
        assert_eq!(parse(&v2_header(1, 0x13, &[0; 12])), Err(Error::V2Address));
        let mut long = v2_header(1, 0x11, &[0; 12]);
        long[14..16].copy_from_slice(&513u16.to_be_bytes());
        assert_eq!(parse(&long), Err(Error::V2TooLong(513)));
    }
}
