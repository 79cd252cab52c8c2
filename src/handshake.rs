//! The handshake's decisions, apart from any I/O: which method to pick
//! (RFC 1928 §3), whether a password is right (RFC 1929 §2), and what a
//! request asks for (RFC 1928 §4, SOCKS4 and 4a). [`decide`] reads the
//! bytes buffered so far and returns one owned [`Step`]; the connection
//! does the I/O. Pure, so the whole handshake is testable, and fuzzed,
//! without sockets.

use crate::auth;
use crate::parse::{Addr, Parsed};
use crate::reply::Reply;
use crate::socks4;
use crate::socks5::{self, method};
use std::net::{IpAddr, SocketAddr};

/// The protocol the client spoke, which decides the shape of its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// SOCKS4 or 4a.
    V4,
    /// SOCKS5.
    V5,
}

/// The destination of a CONNECT, owned (the handshake buffer is reused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An address (or a name that is an IP literal).
    Ip(SocketAddr),
    /// A name for the resolver, and the port.
    Name(Box<str>, u16),
}

/// What the handshake bytes at the front of the buffer ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The message is not complete yet: read more.
    NeedMore,
    /// Not SOCKS, or not answerable: close without a word.
    Drop,
    /// Consume `used` bytes, send `bytes`, go on in `next`.
    Answer {
        /// Bytes of the buffer this message took.
        used: usize,
        /// The answer (method choice or auth status).
        bytes: [u8; 2],
        /// Where the handshake goes on.
        next: Next,
    },
    /// Refuse the request with this reply, then close.
    Fail(Proto, Reply),
    /// Consume `used` bytes and connect.
    Connect {
        /// Bytes of the buffer this request took.
        used: usize,
        /// The protocol to reply in.
        proto: Proto,
        /// Where to connect.
        target: Target,
    },
    /// Consume `used` bytes and listen for a peer from `expect`.
    Bind {
        /// Bytes of the buffer this request took.
        used: usize,
        /// The protocol to reply in.
        proto: Proto,
        /// The peer the client expects.
        expect: Target,
    },
    /// Consume `used` bytes and open a UDP association; `expect` is the
    /// client's own idea of its UDP source, if it gave an IP.
    Udp {
        /// Bytes of the buffer this request took.
        used: usize,
        /// The client's UDP source, if the request named it.
        expect: Option<SocketAddr>,
    },
}

/// Where an [`Step::Answer`] leads.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Next {
    /// On to RFC 1929 username/password.
    Auth,
    /// On to GSS-API context establishment (RFC 1961).
    Gss,
    /// On to the request.
    Request,
    /// Close once the answer is sent (0xFF, or a failed login).
    Close,
}

/// The part of the configuration the handshake decisions depend on.
#[derive(Debug)]
pub struct Policy<'a> {
    /// The users (empty: no authentication).
    pub users: &'a [auth::User],
    /// SOCKS4 and 4a are served.
    pub socks4: bool,
    /// BIND is served.
    pub bind: bool,
    /// UDP ASSOCIATE is served.
    pub udp: bool,
    /// This client's IP authenticated before and `--auth-once` is on.
    pub trusted: bool,
    /// The GSS-API method is offered (`--gssapi`).
    pub gssapi: bool,
}

/// Decides the next handshake step from the buffered bytes. Pure: no I/O,
/// so the whole handshake logic is testable without sockets.
pub fn decide(phase: Phase, buf: &[u8], policy: &Policy<'_>) -> Step {
    match phase {
        Phase::Greeting => match buf.first() {
            None => Step::NeedMore,
            Some(&socks5::VERSION) => greeting(buf, policy),
            Some(&socks4::VERSION) => socks4_request(buf, policy),
            Some(_) => Step::Drop,
        },
        Phase::Auth => match socks5::parse_auth(buf) {
            Ok(Parsed::Incomplete) => Step::NeedMore,
            Ok(Parsed::Done(c, used)) => {
                let ok = auth::verify(policy.users, c.user, c.pass);
                let next = if ok { Next::Request } else { Next::Close };
                Step::Answer { used, bytes: socks5::encode_auth_reply(ok), next }
            }
            // RFC 1929 §2: any failure status, then close.
            Err(_) => Step::Answer { used: 0, bytes: socks5::encode_auth_reply(false), next: Next::Close },
        },
        Phase::Request => match socks5::parse_request(buf) {
            Ok(Parsed::Incomplete) => Step::NeedMore,
            Err(e) => Step::Fail(Proto::V5, e.reply()),
            Ok(Parsed::Done(req, used)) => match req.cmd {
                socks5::Command::Connect => connect_step(Proto::V5, used, req.dst),
                socks5::Command::Bind if policy.bind => bind_step(Proto::V5, used, req.dst),
                socks5::Command::UdpAssociate if policy.udp => {
                    let expect = match req.dst {
                        Addr::Ip(sa) => Some(sa),
                        Addr::Domain(..) => None,
                    };
                    Step::Udp { used, expect }
                }
                _ => Step::Fail(Proto::V5, Reply::CommandNotSupported),
            },
        },
    }
}

/// The handshake phases [`decide`] handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// The first message: a SOCKS5 greeting or a SOCKS4 request.
    Greeting,
    /// RFC 1929 username/password.
    Auth,
    /// The SOCKS5 request.
    Request,
}

/// RFC 1928 §3: the server picks one of the client's methods. With
/// authentication configured (users, GSS-API or both) no-auth is accepted
/// only from a `--auth-once` address; the preference is then no-auth
/// (trusted), GSS-API (no password on the wire), username/password.
/// Without, only no-auth. Nothing acceptable: 0xFF.
fn greeting(buf: &[u8], policy: &Policy<'_>) -> Step {
    match socks5::parse_greeting(buf) {
        Ok(Parsed::Incomplete) => Step::NeedMore,
        Err(_) => Step::Drop,
        Ok(Parsed::Done(g, used)) => {
            let users = !policy.users.is_empty();
            let (m, next) = if ((!users && !policy.gssapi) || policy.trusted) && g.offers(method::NO_AUTH) {
                (method::NO_AUTH, Next::Request)
            } else if policy.gssapi && g.offers(method::GSSAPI) {
                (method::GSSAPI, Next::Gss)
            } else if users && g.offers(method::USER_PASS) {
                (method::USER_PASS, Next::Auth)
            } else {
                (method::NO_ACCEPTABLE, Next::Close)
            };
            Step::Answer { used, bytes: [socks5::VERSION, m], next }
        }
    }
}

fn socks4_request(buf: &[u8], policy: &Policy<'_>) -> Step {
    // SOCKS4 has no password: with users or GSS-API configured it would
    // bypass them. Refused once the request is whole, so that the
    // connection log can say what it asked.
    let refused = !policy.socks4 || !policy.users.is_empty() || policy.gssapi;
    match socks4::parse_request(buf) {
        Ok(Parsed::Incomplete) => Step::NeedMore,
        _ if refused => Step::Fail(Proto::V4, Reply::NotAllowed),
        Err(_) => Step::Fail(Proto::V4, Reply::GeneralFailure),
        Ok(Parsed::Done(req, used)) => match req.cmd {
            socks4::Command::Connect => connect_step(Proto::V4, used, req.dst),
            socks4::Command::Bind if policy.bind => bind_step(Proto::V4, used, req.dst),
            socks4::Command::Bind => Step::Fail(Proto::V4, Reply::CommandNotSupported),
        },
    }
}

fn connect_step(proto: Proto, used: usize, dst: Addr<'_>) -> Step {
    match owned_target(dst) {
        Some(target) => Step::Connect { used, proto, target },
        None => Step::Fail(proto, Reply::HostUnreachable),
    }
}

fn bind_step(proto: Proto, used: usize, dst: Addr<'_>) -> Step {
    match owned_target(dst) {
        Some(expect) => Step::Bind { used, proto, expect },
        None => Step::Fail(proto, Reply::HostUnreachable),
    }
}

/// What a request in `buf` asks, whether or not it is granted (for the
/// connection log): the command's verb, the destination, and whether it
/// is SOCKS4a (a SOCKS4 request naming a host). `None` when `buf` holds
/// no whole request of `phase`.
pub fn asked(phase: Phase, buf: &[u8]) -> Option<(&'static str, Target, bool)> {
    match (phase, buf.first()) {
        (Phase::Greeting, Some(&socks4::VERSION)) => match socks4::parse_request(buf) {
            Ok(Parsed::Done(r, _)) => {
                let verb = if r.cmd == socks4::Command::Bind { "bind" } else { "connect" };
                let socks4a = matches!(r.dst, Addr::Domain(..));
                Some((verb, owned_target(r.dst)?, socks4a))
            }
            _ => None,
        },
        (Phase::Request, _) => match socks5::parse_request(buf) {
            Ok(Parsed::Done(r, _)) => {
                let verb = match r.cmd {
                    socks5::Command::Connect => "connect",
                    socks5::Command::Bind => "bind",
                    socks5::Command::UdpAssociate => "udp",
                };
                Some((verb, owned_target(r.dst)?, false))
            }
            _ => None,
        },
        _ => None,
    }
}

/// A domain that is an IP literal is used as is; anything else goes to the
/// resolver, provided it could be a host name at all.
fn owned_target(dst: Addr<'_>) -> Option<Target> {
    Some(match dst {
        Addr::Ip(sa) => Target::Ip(sa),
        Addr::Domain(name, port) => match std::str::from_utf8(name) {
            Ok(s) if !s.contains('\0') => match s.parse::<IpAddr>() {
                Ok(ip) => Target::Ip(SocketAddr::new(ip, port)),
                Err(_) => Target::Name(s.into(), port),
            },
            _ => return None,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Policy<'static> {
        Policy { users: &[], socks4: true, bind: true, udp: true, trusted: false, gssapi: false }
    }

    #[test]
    fn method_selection() {
        let p = open();
        assert_eq!(decide(Phase::Greeting, &[], &p), Step::NeedMore);
        assert_eq!(decide(Phase::Greeting, &[5, 1], &p), Step::NeedMore);
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 2, 0], &p),
            Step::Answer { used: 4, bytes: [5, 0], next: Next::Request }
        );
        assert_eq!(
            decide(Phase::Greeting, &[5, 1, 2], &p),
            Step::Answer { used: 3, bytes: [5, 0xFF], next: Next::Close }
        );
        assert_eq!(decide(Phase::Greeting, &[5, 0], &p), Step::Answer { used: 2, bytes: [5, 0xFF], next: Next::Close });
        let users = [auth::User::parse("u:p").unwrap()];
        let p = Policy { users: &users, socks4: true, bind: true, udp: true, trusted: false, gssapi: false };
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 0, 2], &p),
            Step::Answer { used: 4, bytes: [5, 2], next: Next::Auth }
        );
        assert_eq!(
            decide(Phase::Greeting, &[5, 1, 0], &p),
            Step::Answer { used: 3, bytes: [5, 0xFF], next: Next::Close }
        );
        assert_eq!(
            decide(Phase::Auth, b"\x01\x01u\x01p", &p),
            Step::Answer { used: 5, bytes: [1, 0], next: Next::Request }
        );
        assert_eq!(
            decide(Phase::Auth, b"\x01\x01u\x01x", &p),
            Step::Answer { used: 5, bytes: [1, 1], next: Next::Close }
        );
        let t = Policy { users: &users, socks4: true, bind: true, udp: true, trusted: true, gssapi: false };
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 0, 2], &t),
            Step::Answer { used: 4, bytes: [5, 0], next: Next::Request },
            "--auth-once: a known IP may skip the password"
        );
        // With users, SOCKS4 would bypass authentication.
        assert_eq!(
            decide(Phase::Greeting, &[4, 1, 0, 80, 127, 0, 0, 1, 0], &p),
            Step::Fail(Proto::V4, Reply::NotAllowed)
        );
        assert_eq!(decide(Phase::Greeting, &[4, 1, 0, 80], &p), Step::NeedMore, "refused once whole");
        assert_eq!(decide(Phase::Greeting, b"GET / HTTP/1.1", &p), Step::Drop);
    }

    #[test]
    fn gssapi_preference() {
        let users = [auth::User::parse("u:p").unwrap()];
        let g = Policy { users: &[], socks4: true, bind: true, udp: true, trusted: false, gssapi: true };
        let answer = |p: &Policy<'_>, offer: &[u8]| match decide(Phase::Greeting, offer, p) {
            Step::Answer { bytes, next, .. } => (bytes[1], next),
            s => panic!("{s:?}"),
        };
        assert_eq!(answer(&g, &[5, 2, 0, 1]), (1, Next::Gss), "GSS-API required: no-auth is not enough");
        assert_eq!(answer(&g, &[5, 1, 0]), (0xFF, Next::Close));
        assert_eq!(answer(&g, &[5, 1, 2]), (0xFF, Next::Close), "no users: no password method");
        let both = Policy { users: &users, ..g };
        assert_eq!(answer(&both, &[5, 2, 2, 1]), (1, Next::Gss), "GSS-API before username/password");
        assert_eq!(answer(&both, &[5, 1, 2]), (2, Next::Auth));
        let trusted = Policy { trusted: true, ..both };
        assert_eq!(answer(&trusted, &[5, 3, 1, 2, 0]), (0, Next::Request));
        let off = Policy { gssapi: false, ..both };
        assert_eq!(
            answer(&off, &[5, 1, 1]),
            (0xFF, Next::Close),
            "a client offering only GSS-API to a server without it"
        );
        assert_eq!(
            decide(Phase::Greeting, &[4, 1, 0, 80, 127, 0, 0, 1, 0], &g),
            Step::Fail(Proto::V4, Reply::NotAllowed)
        );
    }

    #[test]
    fn requests() {
        let p = open();
        let r = decide(Phase::Request, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 1, 2, 3], &p);
        assert_eq!(
            r,
            Step::Connect { used: 10, proto: Proto::V5, target: Target::Ip("127.0.0.1:80".parse().unwrap()) }
        );
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x09localhost\x00\x50", &p);
        assert_eq!(r, Step::Connect { used: 16, proto: Proto::V5, target: Target::Name("localhost".into(), 80) });
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x03::1\x00\x50", &p);
        assert_eq!(r, Step::Connect { used: 10, proto: Proto::V5, target: Target::Ip("[::1]:80".parse().unwrap()) });
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x02\xff\xfe\x00\x50", &p);
        assert_eq!(r, Step::Fail(Proto::V5, Reply::HostUnreachable));
        let bind = [5, 2, 0, 1, 127, 0, 0, 1, 0, 0];
        assert_eq!(
            decide(Phase::Request, &bind, &p),
            Step::Bind { used: 10, proto: Proto::V5, expect: Target::Ip("127.0.0.1:0".parse().unwrap()) }
        );
        let udp = [5, 3, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decide(Phase::Request, &udp, &p),
            Step::Udp { used: 10, expect: Some("0.0.0.0:0".parse().unwrap()) }
        );
        let closed = Policy { users: &[], socks4: true, bind: false, udp: false, trusted: false, gssapi: false };
        assert_eq!(decide(Phase::Request, &bind, &closed), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &udp, &closed), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        let s4bind = [4, 2, 0, 21, 127, 0, 0, 1, 0];
        assert_eq!(decide(Phase::Greeting, &s4bind, &closed), Step::Fail(Proto::V4, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &[5, 0x7f, 0, 1], &p), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &[5, 1, 0, 9], &p), Step::Fail(Proto::V5, Reply::AddressTypeNotSupported));
        let r = decide(Phase::Greeting, b"\x04\x01\x00\x50\x00\x00\x00\x01me\x00example.org\x00", &p);
        assert_eq!(r, Step::Connect { used: 23, proto: Proto::V4, target: Target::Name("example.org".into(), 80) });
        let p4 = Policy { users: &[], socks4: false, bind: false, udp: false, trusted: false, gssapi: false };
        assert_eq!(
            decide(Phase::Greeting, &[4, 1, 0, 80, 127, 0, 0, 1, 0], &p4),
            Step::Fail(Proto::V4, Reply::NotAllowed)
        );
    }
}
