//! Why a connection ended. Carried by the `Err` that ends it and logged
//! once, by the reactor, where the connection is removed.

use crate::reply::Reply;
use std::fmt;
use std::io::ErrorKind;

/// Which of a connection's sockets something happened on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum End {
    Client,
    Target,
}

/// What a deadline was waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    Handshake,
    Resolve,
    Connect,
    BindPeer,
    Idle,
}

/// The connection is finished and should be removed, for this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Both directions ended with EOF (or the UDP control connection did).
    Eof,
    /// The client went away before its request was answered.
    ClientGone,
    /// A read or write failed (a reset, most often).
    Io(End, ErrorKind),
    /// The first bytes were not a SOCKS greeting or request one can answer.
    NotSocks,
    /// The client closed in the middle of a handshake message.
    Handshake,
    /// RFC 1929: wrong user name or password.
    AuthFailed,
    /// RFC 1928 §3: no method the server accepts was offered (0xFF).
    NoMethod,
    Timeout(Wait),
    /// The request was refused with this reply.
    Refused(Reply),
    /// The server is stopping.
    Shutdown,
    /// Behind a balancer: no valid header, or the client it names is not
    /// served.
    Unwanted(super::proxied::Unwanted),
}

pub(crate) type Flow = Result<(), Closed>;

impl Closed {
    /// The index of this reason's word in [`crate::stats::ENDS`].
    pub(crate) fn end(&self) -> usize {
        let reset = |k: &ErrorKind| matches!(k, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe);
        match self {
            Closed::Eof => 0,
            Closed::ClientGone => 1,
            Closed::Io(End::Client, k) if reset(k) => 2,
            Closed::Io(End::Target, k) if reset(k) => 3,
            Closed::Io(End::Client, _) => 4,
            Closed::Io(End::Target, _) => 5,
            Closed::NotSocks => 6,
            Closed::Handshake => 7,
            Closed::AuthFailed => 8,
            Closed::NoMethod => 9,
            Closed::Timeout(Wait::Handshake) => 10,
            Closed::Timeout(Wait::Resolve) => 11,
            Closed::Timeout(Wait::Connect) => 12,
            Closed::Timeout(Wait::BindPeer) => 13,
            Closed::Timeout(Wait::Idle) => 14,
            Closed::Refused(Reply::NotAllowed) => 16,
            Closed::Refused(_) => 15,
            Closed::Shutdown => 17,
            Closed::Unwanted(u) => 18 + *u as usize,
        }
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Closed::Eof => f.write_str("eof"),
            Closed::ClientGone => f.write_str("client gone"),
            Closed::Io(End::Client, k) => write!(f, "client error: {k}"),
            Closed::Io(End::Target, k) => write!(f, "target error: {k}"),
            Closed::NotSocks => f.write_str("not SOCKS"),
            Closed::Handshake => f.write_str("handshake cut short"),
            Closed::AuthFailed => f.write_str("authentication failed"),
            Closed::NoMethod => f.write_str("no acceptable method"),
            Closed::Timeout(w) => {
                let what = match w {
                    Wait::Handshake => "handshake",
                    Wait::Resolve => "resolve",
                    Wait::Connect => "connect",
                    Wait::BindPeer => "bind peer",
                    Wait::Idle => "idle",
                };
                write!(f, "{what} timeout")
            }
            Closed::Refused(r) => write!(f, "refused: {r:?} (0x{:02x})", *r as u8),
            Closed::Shutdown => f.write_str("shut down"),
            Closed::Unwanted(u) => f.write_str(crate::stats::ENDS[18 + *u as usize]),
        }
    }
}
