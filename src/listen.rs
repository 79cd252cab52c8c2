//! The listening sockets, and the claim that keeps two socksd processes
//! of one user from silently sharing a port.
//!
//! Each reactor binds its own socket with SO_REUSEPORT and the kernel
//! spreads new connections across them. SO_REUSEPORT would just as well
//! let a second socksd join the port (Linux allows it between processes
//! of the same effective user only), so an instance that did not opt in
//! with `--reuse-port` holds a claim while it runs: an abstract Unix
//! socket named `socksd/ADDR:PORT`, which the kernel releases when the
//! process ends however it ends (no file to clean up). Every start checks
//! the claims of running instances whose address overlaps its own (the
//! same port and family, and the same address or a wildcard on either
//! side: 0.0.0.0:P takes 127.0.0.1:P's clients and the reverse): an
//! exclusive instance refuses any overlap, a `--reuse-port` one an
//! exclusive instance's.
//!
//! Abstract names carry no permissions, so any local user can bind one. A
//! claim counts only when its holder is a process of this same user,
//! asked of the kernel (SO_PEERCRED): another user's socket cannot share
//! our port anyway, so a name taken by a stranger neither stops socksd
//! nor stands for an instance of it.

use crate::outbound;
use log::warn;
use mio::net::TcpListener;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

const BACKLOG: i32 = 1024;

/// A bound listener for one reactor.
pub fn bind(addr: SocketAddr, keepalive: Option<std::time::Duration>) -> io::Result<TcpListener> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    sock.set_reuse_address(true)?;
    // Each reactor binds its own socket; the kernel spreads connections.
    // Another process may join only if it deliberately does the same (see
    // the claims, and --reuse-port).
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        // [::]:1080 and 0.0.0.0:1080 can then be listened on side by side.
        sock.set_only_v6(true)?;
    }
    // Accepted sockets inherit TCP_NODELAY and keepalive from the listener
    // on Linux: a few setsockopts here instead of per client.
    sock.set_tcp_nodelay(true)?;
    if let Some(idle) = keepalive {
        outbound::set_keepalive(&sock, idle)?;
    }
    sock.set_nonblocking(true)?;
    sock.bind(&SockAddr::from(addr))?;
    sock.listen(BACKLOG)?;
    Ok(TcpListener::from_std(sock.into()))
}

/// Fails if a socket that does not share ports (no SO_REUSEPORT) could
/// not bind `addr` now: some process already serves it.
pub fn probe_free(addr: SocketAddr) -> io::Result<()> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    // Ignore connections of an earlier run lingering in TIME_WAIT.
    sock.set_reuse_address(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&SockAddr::from(addr))
}

/// Whether listening on `a` and on `b` would share clients: the same
/// port and family, and the same address or a wildcard on either side.
pub fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// An exclusive instance's claim on a listen address, held while it runs.
pub struct Claim {
    #[cfg(target_os = "linux")]
    _sock: std::os::unix::net::UnixListener,
}

#[cfg(target_os = "linux")]
mod linux {
    use std::net::SocketAddr;
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixListener, UnixStream};

    pub const PREFIX: &str = "socksd/";

    pub fn name(addr: SocketAddr) -> std::io::Result<UnixAddr> {
        UnixAddr::from_abstract_name(format!("{PREFIX}{addr}").as_bytes())
    }

    pub fn listen(addr: SocketAddr) -> std::io::Result<UnixListener> {
        UnixListener::bind_addr(&name(addr)?)
    }

    /// Whether a process of this user listens on `addr`'s claim.
    pub fn ours(addr: SocketAddr) -> bool {
        let Ok(ua) = name(addr) else { return false };
        match UnixStream::connect_addr(&ua) {
            Ok(s) => crate::sys::peer_uid(&s) == Some(crate::sys::euid()),
            // Nobody, or a socket of another kind (not a claim).
            Err(_) => false,
        }
    }

    /// The addresses named by claims in this network namespace.
    pub fn claimed() -> Vec<SocketAddr> {
        let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
        let mut out: Vec<SocketAddr> = table
            .lines()
            .filter_map(|l| l.split_whitespace().nth(7)?.strip_prefix('@')?.strip_prefix(PREFIX)?.parse().ok())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

impl Claim {
    /// Claims `addr` for an exclusive instance: `Ok(None)` when the name
    /// is held by another user (a stranger's socket, which stands for no
    /// instance of ours: said, and gone on without).
    #[cfg(target_os = "linux")]
    pub fn take(addr: SocketAddr) -> io::Result<Option<Claim>> {
        match linux::listen(addr) {
            Ok(sock) => Ok(Some(Claim { _sock: sock })),
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && !linux::ours(addr) => {
                warn!("listen on {addr}: another user holds socksd's claim name for it; going on without the claim");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn take(_addr: SocketAddr) -> io::Result<Option<Claim>> {
        Ok(Some(Claim {}))
    }
}

/// A running exclusive instance of this user whose address overlaps
/// `addr` (`addr` itself included).
#[cfg(target_os = "linux")]
pub fn exclusive_overlapping(addr: SocketAddr) -> Option<SocketAddr> {
    linux::claimed().into_iter().find(|&c| overlap(c, addr) && linux::ours(c))
}

#[cfg(not(target_os = "linux"))]
pub fn exclusive_overlapping(_addr: SocketAddr) -> Option<SocketAddr> {
    None
}

fn in_use(addr: SocketAddr, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::AddrInUse, format!("listen on {addr}: address in use ({why})"))
}

/// Why `addr` could not be bound, in words that send the operator the
/// right way: not an address of this host, a privileged port, in use.
pub fn bind_error(addr: SocketAddr, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EADDRINUSE) => format!(
            "listen on {addr}: address in use by another process ({e}; --reuse-port shares a port between socksd processes that all opt in)"
        ),
        Some(libc::EADDRNOTAVAIL) => format!("listen on {addr}: not an address of this host ({e})"),
        Some(libc::EACCES | libc::EPERM) if addr.port() < 1024 => format!(
            "listen on {addr}: ports below 1024 need root or the CAP_NET_BIND_SERVICE capability ({e})"
        ),
        _ => format!("listen on {addr}: {e}"),
    }
}

fn bind_failed(addr: SocketAddr, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), bind_error(addr, &e))
}

/// The claims a start must respect: an exclusive instance refuses any
/// running exclusive instance it overlaps; a `--reuse-port` one, too (it
/// would take the exclusive one's clients).
fn check(addr: SocketAddr, reuse_port: bool) -> io::Result<()> {
    match exclusive_overlapping(addr) {
        Some(other) if other == addr && !reuse_port => Err(in_use(addr, "another socksd serves it")),
        Some(other) if other == addr => Err(in_use(addr, "a socksd without --reuse-port serves it")),
        Some(other) => Err(in_use(addr, &format!("a socksd without --reuse-port serves {other}, which overlaps it"))),
        None => Ok(()),
    }
}

/// Binds one listener per thread on `want`, refusing an address another
/// process serves. Returns the listeners, the bound address (port 0
/// resolved) and the claim to hold, if any.
pub fn listen_on(
    want: SocketAddr,
    threads: usize,
    reuse_port: bool,
    keepalive: Option<std::time::Duration>,
) -> io::Result<(Vec<TcpListener>, SocketAddr, Option<Claim>)> {
    let mut claim = None;
    if want.port() != 0 {
        check(want, reuse_port)?;
        if !reuse_port {
            claim = Claim::take(want).map_err(|_| in_use(want, "another socksd serves it"))?;
            probe_free(want).map_err(|e| bind_failed(want, e))?;
        }
    }
    let bind = |a| bind(a, keepalive).map_err(|e| bind_failed(a, e));
    let first = bind(want)?;
    // With port 0 the kernel picks a port; the other threads join it.
    let addr = first.local_addr()?;
    if want.port() == 0 && !reuse_port {
        claim = Claim::take(addr).map_err(|_| in_use(addr, "another socksd serves it"))?;
    }
    let mut ls = vec![first];
    for _ in 1..threads {
        ls.push(bind(addr)?);
    }
    if reuse_port {
        // An exclusive instance may have started meanwhile; it keeps the address.
        check(addr, true)?;
    }
    Ok((ls, addr, claim))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_addresses() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(overlap(a("0.0.0.0:1080"), a("127.0.0.1:1080")));
        assert!(overlap(a("127.0.0.1:1080"), a("0.0.0.0:1080")));
        assert!(overlap(a("127.0.0.1:1080"), a("127.0.0.1:1080")));
        assert!(overlap(a("[::]:1080"), a("[::1]:1080")));
        assert!(!overlap(a("127.0.0.1:1080"), a("127.0.0.2:1080")), "two addresses");
        assert!(!overlap(a("0.0.0.0:1080"), a("0.0.0.0:1081")), "two ports");
        assert!(!overlap(a("0.0.0.0:1080"), a("[::]:1080")), "two families (IPv6 listeners are v6-only)");
    }
}
