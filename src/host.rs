//! The host's own addresses, asked of the kernel (Linux).
//!
//! `--deny-dest self` must cover every address that reaches this host:
//! loopback, the unspecified addresses, and whatever the interfaces carry
//! right now (a WAN address changes on reconnect, an IPv6 prefix is
//! renumbered). Rather than keep a copy of the interface list, socksd asks
//! the kernel the question that matters: would it accept this address as
//! a local one? Binding a UDP socket to it succeeds exactly for local,
//! broadcast and multicast addresses (which reach the host too), and fails
//! with EADDRNOTAVAIL for everything else. Answers are cached per reactor
//! thread for [`FRESH`], so a burst to one destination costs one check.

use socket2::{Domain, SockAddr, Socket, Type};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

/// How long a locality answer is trusted: an address added to an
/// interface is covered within this time.
pub const FRESH: Duration = Duration::from_secs(1);
const SLOTS: usize = 64;

/// True when `addr`'s IP is an address of this host, or one that the host
/// itself receives (broadcast, multicast). Fails closed: when the kernel
/// cannot be asked (out of descriptors, say), the answer is "local".
pub fn is_local(addr: SocketAddr) -> bool {
    let probe = key(addr);
    if probe.ip().is_loopback() || probe.ip().is_unspecified() {
        return true;
    }
    let Ok(sock) = Socket::new(Domain::for_address(probe), Type::DGRAM.cloexec(), None) else {
        return true;
    };
    match sock.bind(&SockAddr::from(probe)) {
        Ok(()) => true,
        Err(e) => e.raw_os_error() != Some(libc::EADDRNOTAVAIL),
    }
}

/// A per-thread cache of [`is_local`] answers: direct-mapped, fixed size,
/// never allocates after creation.
pub struct LocalCache {
    slots: Box<[Option<(SocketAddr, bool, Instant)>]>,
}

impl Default for LocalCache {
    fn default() -> LocalCache {
        LocalCache { slots: vec![None; SLOTS].into_boxed_slice() }
    }
}

impl LocalCache {
    pub fn is_local(&mut self, addr: SocketAddr, now: Instant) -> bool {
        let addr = key(addr);
        let slot = &mut self.slots[slot_of(&addr)];
        if let Some((a, local, at)) = *slot {
            if a == addr && now.saturating_duration_since(at) < FRESH {
                return local;
            }
        }
        let local = is_local(addr);
        *slot = Some((addr, local, now));
        local
    }
}

/// What locality depends on: the canonical IP and, for IPv6, the scope
/// (a link-local address differs per interface); never the port.
fn key(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(a) => match a.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), 0),
            None => SocketAddr::V6(std::net::SocketAddrV6::new(*a.ip(), 0, 0, a.scope_id())),
        },
        SocketAddr::V4(a) => SocketAddr::new(IpAddr::V4(*a.ip()), 0),
    }
}

fn slot_of(a: &SocketAddr) -> usize {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| h = (h ^ b as u32).wrapping_mul(0x0100_0193);
    match a {
        SocketAddr::V4(v) => v.ip().octets().into_iter().for_each(&mut eat),
        SocketAddr::V6(v) => {
            v.ip().octets().into_iter().for_each(&mut eat);
            v.scope_id().to_be_bytes().into_iter().for_each(&mut eat);
        }
    }
    h as usize % SLOTS
}

/// This host's IPv6 prefixes (its interfaces' addresses with their
/// prefix lengths), asked of the kernel at most once per [`FRESH`] and
/// kept per reactor thread: whether an IPv6 client is on one of this
/// host's own links (see [`crate::clients::client_key`]).
#[derive(Default)]
pub struct OnLink {
    prefixes: Vec<(Ipv6Addr, u8)>,
    at: Option<Instant>,
}

impl OnLink {
    pub fn contains(&mut self, ip: Ipv6Addr, now: Instant) -> bool {
        if self.at.is_none_or(|t| now.saturating_duration_since(t) >= FRESH) {
            self.at = Some(now);
            self.prefixes.clear();
            crate::sys::each_interface_addr(|_, a, len| {
                if let IpAddr::V6(v6) = a {
                    self.prefixes.push((v6, len));
                }
            });
        }
        self.prefixes.iter().any(|&(net, len)| crate::acl::Cidr::new(IpAddr::V6(net), len).contains(IpAddr::V6(ip)))
    }
}

/// An address of the other family on the interface that carries `near`:
/// where a BIND for an IPv6 peer listens when the client came in over IPv4
/// (and the reverse). Link-local IPv6 addresses are skipped: a reply has no
/// room for their scope.
pub fn sibling_addr(near: IpAddr, want_v4: bool) -> Option<IpAddr> {
    let near = near.to_canonical();
    let mut iface: Option<Vec<u8>> = None;
    let mut found: Option<IpAddr> = None;
    // Two passes over one snapshot: find the interface, then its address.
    crate::sys::each_interface_addr(|name, ip, _| {
        if iface.is_none() && ip == near {
            iface = Some(name.to_vec());
        }
    });
    let iface = iface?;
    crate::sys::each_interface_addr(|name, ip, _| {
        let usable = match ip {
            IpAddr::V4(_) => want_v4,
            IpAddr::V6(v6) => !want_v4 && (v6.segments()[0] & 0xffc0) != 0xfe80,
        };
        if found.is_none() && usable && name == iface.as_slice() {
            found = Some(ip);
        }
    });
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_unspecified_are_local() {
        for a in ["127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "0.0.0.0:1", "[::]:1", "[::ffff:127.0.0.1]:1"] {
            assert!(is_local(a.parse().unwrap()), "{a}");
        }
        // TEST-NET-3 is never configured here.
        assert!(!is_local("203.0.113.77:1".parse().unwrap()));
        let mut c = LocalCache::default();
        let now = Instant::now();
        assert!(c.is_local("127.0.0.1:5".parse().unwrap(), now));
        assert!(!c.is_local("203.0.113.77:5".parse().unwrap(), now));
    }

    #[test]
    fn sibling_of_loopback() {
        if cfg!(target_endian = "big") && std::env::var_os("SOCKSD_EMULATOR").is_some() {
            eprintln!("SKIP under emulation: qemu-user does not translate netlink for big-endian guests");
            return;
        }
        assert_eq!(sibling_addr("127.0.0.1".parse().unwrap(), true), Some("127.0.0.1".parse().unwrap()));
        if let Some(v6) = sibling_addr("127.0.0.1".parse().unwrap(), false) {
            assert_eq!(v6, "::1".parse::<IpAddr>().unwrap());
        }
    }
}
