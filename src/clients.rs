//! Per-client limits: connections (`--max-conns-per-ip`) and UDP relay
//! ports from `--udp-ports` (`--udp-ports-per-ip`).
//!
//! A "client" is an IPv4 address, or an IPv6 /64: one host on a LAN
//! gets a whole /64 and can pick any address in it, so counting single
//! IPv6 addresses would not limit anybody.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The unit limits are counted in.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
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

    /// One more of `kind` for the client at `ip`, unless it is at its limit.
    /// With no limit for that kind, nothing is counted and `Ok(None)` is
    /// returned.
    pub fn take(self: &Arc<Self>, ip: IpAddr, kind: Kind) -> Result<Option<Slot>, AtLimit> {
        let max = match kind {
            Kind::Conn => self.max_conns,
            Kind::UdpPort => self.max_udp_ports,
        };
        if max == 0 {
            return Ok(None);
        }
        let key = client_key(ip);
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
    fn limits_per_client_and_ipv6_per_64() {
        let c = Clients::new(2, 1);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = c.take(ip("10.0.0.1"), Kind::Conn).unwrap();
        let b = c.take(ip("::ffff:10.0.0.1"), Kind::Conn).unwrap();
        assert!(c.take(ip("10.0.0.1"), Kind::Conn).is_err(), "mapped spelling is the same client");
        assert!(c.take(ip("10.0.0.2"), Kind::Conn).is_ok());
        drop(a);
        assert!(c.take(ip("10.0.0.1"), Kind::Conn).is_ok());
        drop(b);
        let _p = c.take(ip("fd00::1"), Kind::UdpPort).unwrap();
        assert!(c.take(ip("fd00::9999"), Kind::UdpPort).is_err(), "same /64");
        assert!(c.take(ip("fd00:0:0:1::1"), Kind::UdpPort).is_ok());
        let open = Clients::new(0, 0);
        assert!(open.take(ip("10.0.0.1"), Kind::Conn).unwrap().is_none());
    }
}
