//! Reply codes, and how local errors map onto them.

use std::io;

/// SOCKS5 reply field REP (RFC 1928 §6). SOCKS4 knows only "granted" and
/// "rejected", so every failure below becomes 0x5B there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply {
    /// 0x00: the request was granted.
    Succeeded = 0x00,
    /// 0x01: general SOCKS server failure.
    GeneralFailure = 0x01,
    /// 0x02: connection not allowed by ruleset.
    NotAllowed = 0x02,
    /// 0x03: network unreachable.
    NetworkUnreachable = 0x03,
    /// 0x04: host unreachable (or the name did not resolve).
    HostUnreachable = 0x04,
    /// 0x05: connection refused.
    ConnectionRefused = 0x05,
    /// 0x06: TTL expired (socksd: a timeout).
    TtlExpired = 0x06,
    /// 0x07: command not supported.
    CommandNotSupported = 0x07,
    /// 0x08: address type not supported.
    AddressTypeNotSupported = 0x08,
}

impl Reply {
    /// The reply for a failed connect or a failed local socket call.
    pub fn from_io(err: &io::Error) -> Reply {
        if err.kind() == io::ErrorKind::ConnectionRefused {
            return Reply::ConnectionRefused;
        }
        match err.raw_os_error() {
            Some(libc::ENETUNREACH) | Some(libc::ENETDOWN) => Reply::NetworkUnreachable,
            // EAFNOSUPPORT / EADDRNOTAVAIL: e.g. an IPv6 target on a host
            // without IPv6, or --outgoing of the other family.
            Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL) => Reply::NetworkUnreachable,
            Some(libc::EHOSTUNREACH) | Some(libc::EHOSTDOWN) => Reply::HostUnreachable,
            Some(libc::ETIMEDOUT) => Reply::TtlExpired,
            Some(libc::ECONNREFUSED) => Reply::ConnectionRefused,
            Some(libc::EACCES) | Some(libc::EPERM) => Reply::NotAllowed,
            _ => Reply::GeneralFailure,
        }
    }
}

/// SOCKS4 reply field CD.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Reply4 {
    /// 90: request granted.
    Granted = 0x5A,
    /// 91: request rejected or failed.
    Rejected = 0x5B,
}

impl From<Reply> for Reply4 {
    fn from(r: Reply) -> Reply4 {
        if r == Reply::Succeeded {
            Reply4::Granted
        } else {
            Reply4::Rejected
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping() {
        let e = |n| io::Error::from_raw_os_error(n);
        assert_eq!(Reply::from_io(&e(libc::ECONNREFUSED)), Reply::ConnectionRefused);
        assert_eq!(Reply::from_io(&e(libc::ENETUNREACH)), Reply::NetworkUnreachable);
        assert_eq!(Reply::from_io(&e(libc::EHOSTUNREACH)), Reply::HostUnreachable);
        assert_eq!(Reply::from_io(&e(libc::ETIMEDOUT)), Reply::TtlExpired);
        assert_eq!(Reply::from_io(&e(libc::EIO)), Reply::GeneralFailure);
        assert_eq!(Reply4::from(Reply::Succeeded), Reply4::Granted);
        assert_eq!(Reply4::from(Reply::HostUnreachable), Reply4::Rejected);
    }
}
