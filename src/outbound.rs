//! Outgoing TCP connections: non-blocking, with the configured source
//! address and interface.

use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};

/// Where outgoing connections come from (`--outgoing`, `--outgoing-iface`).
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub addr: Option<IpAddr>,
    pub iface: Option<String>,
}

/// Starts a non-blocking connect to `to`. The connect completes later: the
/// socket turns writable, and `take_error` tells how it went.
///
/// A source address of the other family cannot reach `to`; that fails with
/// EAFNOSUPPORT (reply 0x03) rather than silently using another source.
pub fn connect(to: SocketAddr, src: &Source) -> io::Result<TcpStream> {
    // Non-blocking from the socket() call itself: no fcntl round trips.
    let sock = Socket::new(Domain::for_address(to), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    sock.set_tcp_nodelay(true)?;
    if let Some(iface) = &src.iface {
        sock.bind_device(Some(iface.as_bytes()))?;
    }
    if let Some(ip) = src.addr {
        if ip.is_ipv4() != to.is_ipv4() {
            return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
        }
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    match sock.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    Ok(TcpStream::from_std(sock.into()))
}

/// How a pending connect ended: `Ok(true)` connected, `Ok(false)` still in
/// progress (a spurious wake-up), `Err` failed.
pub fn finished(sock: &TcpStream) -> io::Result<bool> {
    if let Some(e) = sock.take_error()? {
        return Err(e);
    }
    match sock.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A listener for one BIND peer: backlog 1, non-blocking.
pub fn listen_once(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(1)?;
    Ok(mio::net::TcpListener::from_std(sock.into()))
}
