//! The outcome shared by every wire parser.
//!
//! Parsers are pure functions over a byte slice: they never allocate, never
//! read past the slice and never keep state between calls. A message that is
//! not complete yet yields [`Parsed::Incomplete`]; the caller reads more and
//! calls again with the longer slice.

/// Result of parsing one message from the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<T> {
    /// More bytes are needed before the message can be decided.
    Incomplete,
    /// A whole message, and how many bytes of the input it took.
    Done(T, usize),
}

/// A destination as it appears on the wire: an IP socket address, or a
/// domain name (borrowed from the input buffer) and a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addr<'a> {
    /// An IPv4 or IPv6 address and port.
    Ip(std::net::SocketAddr),
    /// A domain name (as sent, unchecked) and port.
    Domain(&'a [u8], u16),
}

/// Longest variable-length field accepted anywhere (user id, domain name,
/// username, password). RFC 1928 and RFC 1929 length bytes cap these at 255
/// already; SOCKS4 has no length field, so the cap is ours.
pub const MAX_FIELD: usize = 255;
