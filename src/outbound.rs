//! Outgoing TCP connections: non-blocking, with the configured source
//! address and interface.

use mio::net::TcpStream;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// Where outgoing connections come from (`--outgoing`, `--outgoing-iface`),
/// and how dead peers are noticed (`--keepalive`). Applied to every socket
/// socksd opens towards the outside: CONNECT targets, BIND listeners and
/// UDP out sockets.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub addr: Option<IpAddr>,
    pub iface: Option<String>,
    pub keepalive: Option<Duration>,
}

impl Source {
    /// Binds `sock` to the interface and, when it has `family_v4`'s family,
    /// the source address. A source address of the other family cannot
    /// reach such a peer: EAFNOSUPPORT (reply 0x03), never a silent switch
    /// to another source.
    pub fn apply(&self, sock: &Socket, family_v4: bool, port: u16) -> io::Result<()> {
        if let Some(iface) = &self.iface {
            sock.bind_device(Some(iface.as_bytes()))?;
        }
        match self.addr {
            Some(ip) if ip.is_ipv4() != family_v4 => Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT)),
            Some(ip) => sock.bind(&SockAddr::from(SocketAddr::new(ip, port))),
            None => Ok(()),
        }
    }
}

/// TCP keepalive: the first probe after `idle` without traffic, then one
/// every quarter of that (at least a second); four unanswered probes end
/// the connection, so a peer that vanished (behind a NAT, powered off) is
/// noticed about twice `idle` after it went silent.
pub fn set_keepalive(sock: &Socket, idle: Duration) -> io::Result<()> {
    let interval = (idle / 4).max(Duration::from_secs(1));
    let ka = socket2::TcpKeepalive::new().with_time(idle).with_interval(interval).with_retries(4);
    sock.set_tcp_keepalive(&ka)
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
    if let Some(idle) = src.keepalive {
        set_keepalive(&sock, idle)?;
    }
    src.apply(&sock, to.is_ipv4(), 0)?;
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

/// A listener for one BIND peer on `ip` (never a wildcard: the caller picks
/// a real address), through `--outgoing-iface`, with keepalive inherited
/// by the peer's socket: backlog 1, non-blocking.
pub fn listen_once(ip: IpAddr, src: &Source) -> io::Result<mio::net::TcpListener> {
    if ip.is_unspecified() {
        return Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
    }
    let addr = SocketAddr::new(ip, 0);
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM.nonblocking(), Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    if let Some(iface) = &src.iface {
        sock.bind_device(Some(iface.as_bytes()))?;
    }
    if let Some(idle) = src.keepalive {
        set_keepalive(&sock, idle)?;
    }
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(1)?;
    Ok(mio::net::TcpListener::from_std(sock.into()))
}
