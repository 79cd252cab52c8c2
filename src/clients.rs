//! Per-client limits: connections (`--max-conns-per-ip`) and UDP relay
//! ports from `--udp-ports` (`--udp-ports-per-ip`); the resolver's
//! per-client share uses the same unit.
//!
//! A "client" is an IPv4 address; an IPv6 address when it is on one of
//! this host's own links; and an IPv6 /64 otherwise. On a LAN every host
//! shares the segment's one /64 (SLAAC, DHCPv6), so counting the /64 would
//! make one busy host lock out all the others; those hosts are on the
//! router's own link, and each is counted alone. A remote host, though,
//! is given a whole /64 by its network and can pick any address in it:
//! counting its single addresses would let it escape every limit by
//! rotating, so a remote /64 counts as one client. (A LAN host can rotate
//! too, but only within the router's own segment, where its neighbour
//! entries show it.)

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The unit limits are counted in. `on_link` answers whether an IPv6
/// address is on one of this host's links (asked only for IPv6, not for
/// loopback).
pub fn client_key(ip: IpAddr, on_link: impl FnOnce(Ipv6Addr) -> bool) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) if v6.is_loopback() || on_link(v6) => IpAddr::V6(v6),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[derive(Default, Clone, Copy)]
struct Held {
    conns: u32,
    udp_ports: u32,
}

/// What every client holds, shared by the reactor threads. The lock is
/// held for one hash-map update at a time.
#[derive(Default)]
pub struct Clients {
    max_conns: usize,
    max_udp_ports: usize,
    held: Mutex<HashMap<IpAddr, Held>>,
}

/// The client already holds all it may of that kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtLimit;

/// Which count a [`Slot`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Conn,
    UdpPort,
}

/// One unit of a client's allowance, given back on drop.
pub struct Slot {
    clients: Arc<Clients>,
    key: IpAddr,
    kind: Kind,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self.clients.held.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = map.get_mut(&self.key) {
            match self.kind {
                Kind::Conn => h.conns = h.conns.saturating_sub(1),
                Kind::UdpPort => h.udp_ports = h.udp_ports.saturating_sub(1),
            }
            if h.conns == 0 && h.udp_ports == 0 {
                map.remove(&self.key);
            }
        }
    }
}

impl Clients {
    /// Limits of 0 mean "no limit".
    pub fn new(max_conns: usize, max_udp_ports: usize) -> Arc<Clients> {
        Arc::new(Clients { max_conns, max_udp_ports, held: Mutex::new(HashMap::with_capacity(256)) })
    }

    /// The per-client connection cap (0: none).
    pub fn max_conns(&self) -> usize {
        self.max_conns
    }

    /// One more of `kind` for the client `key` ([`client_key`]), unless it
    /// is at its limit. With no limit for that kind, nothing is counted
    /// and `Ok(None)` is returned.
    pub fn take(self: &Arc<Self>, key: IpAddr, kind: Kind) -> Result<Option<Slot>, AtLimit> {
        let max = match kind {
            Kind::Conn => self.max_conns,
            Kind::UdpPort => self.max_udp_ports,
        };
        if max == 0 {
            return Ok(None);
        }
        let mut map = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key).or_default();
        let n = match kind {
            Kind::Conn => &mut h.conns,
            Kind::UdpPort => &mut h.udp_ports,
        };
        if *n as usize >= max {
            return Err(AtLimit);
        }
        *n += 1;
        Ok(Some(Slot { clients: self.clone(), key, kind }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_remote_ipv6_per_64() {
        let c = Clients::new(2, 1);
        let remote = |s: &str| client_key(s.parse().unwrap(), |_| false);
        let a = c.take(remote("10.0.0.1"), Kind::Conn).unwrap();
        let b = c.take(remote("::ffff:10.0.0.1"), Kind::Conn).unwrap();
        assert!(c.take(remote("10.0.0.1"), Kind::Conn).is_err(), "mapped spelling is the same client");
        assert!(c.take(remote("10.0.0.2"), Kind::Conn).is_ok());
        drop(a);
        assert!(c.take(remote("10.0.0.1"), Kind::Conn).is_ok());
        drop(b);
        let _p = c.take(remote("2001:db8::1"), Kind::UdpPort).unwrap();
        assert!(c.take(remote("2001:db8::9999"), Kind::UdpPort).is_err(), "same remote /64");
        assert!(c.take(remote("2001:db8:0:1::1"), Kind::UdpPort).is_ok());
        let open = Clients::new(0, 0);
        assert!(open.take(remote("10.0.0.1"), Kind::Conn).unwrap().is_none());
    }

    #[test]
    fn ipv6_hosts_on_this_hosts_links_count_alone() {
        let lan: crate::acl::Cidr = "fd12:3456:789a::1/64".parse().unwrap();
        let key = |s: &str| client_key(s.parse().unwrap(), |v6| lan.contains(IpAddr::V6(v6)));
        assert_eq!(key("fd12:3456:789a::100"), "fd12:3456:789a::100".parse::<IpAddr>().unwrap());
        assert_ne!(key("fd12:3456:789a::100"), key("fd12:3456:789a::101"), "two LAN hosts, two clients");
        assert_eq!(key("2001:db8::1"), key("2001:db8::2"), "a remote /64 is one client");
        assert_eq!(key("::1"), "::1".parse::<IpAddr>().unwrap());
        assert_eq!(key("192.0.2.7"), "192.0.2.7".parse::<IpAddr>().unwrap());
        let asked = std::cell::Cell::new(false);
        client_key("::1".parse().unwrap(), |_| {
            asked.set(true);
            false
        });
        assert!(!asked.get(), "loopback needs no interface list");
    }
}
