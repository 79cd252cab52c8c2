//! Access control: which clients are served, which destinations may be
//! reached.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network, `ADDR/PREFIX` (a bare address is a /32 or /128).
///
/// ```
/// use socksd::acl::Cidr;
///
/// let lan: Cidr = "192.168.1.0/24".parse().unwrap();
/// assert!(lan.contains("192.168.1.77".parse().unwrap()));
/// assert!(lan.contains("::ffff:192.168.1.77".parse().unwrap())); // mapped spelling
/// assert!(!lan.contains("192.168.2.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) match IPv4 rules, so a
    /// rule cannot be sidestepped by spelling an address the other way.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = prefix as usize / 8;
    let rest = prefix % 8;
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xFFu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().map_err(|_| format!("'{s}' is not ADDR/PREFIX"))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p.parse::<u8>().ok().filter(|&p| p <= max).ok_or_else(|| format!("bad prefix in '{s}'"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The rules from `--allow`, `--allow-dest` and `--deny-dest`.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// `--allow`: client networks served (all when empty).
    pub allow: Vec<Cidr>,
    /// `--allow-dest`: destinations allowed (all when empty).
    pub allow_dest: Vec<Cidr>,
    /// `--deny-dest`: destinations refused, before `allow_dest`.
    pub deny_dest: Vec<Cidr>,
    /// `--deny-dest self`: every address of this host, asked of the kernel when a rule is checked.
    pub deny_self: bool,
}

/// The word `--deny-dest` takes for "this host".
pub const SELF: &str = "self";

/// Unspecified addresses: `0.0.0.0/8` and `::` (and their IPv4-mapped
/// spellings). On Linux, connecting or sending to them reaches the host's
/// own services, as loopback would; no real destination has them, so they
/// are refused whatever the rules say.
pub fn is_unspecified(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    }
}

impl Acl {
    /// With no `--allow`, every client is served.
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }

    /// The network rules alone: unspecified addresses never pass, deny
    /// rules win, and with any `--allow-dest` only those networks pass.
    /// `self` needs the kernel: see [`Acl::dest_allowed_at`].
    pub fn dest_allowed(&self, ip: IpAddr) -> bool {
        if is_unspecified(ip) || self.deny_dest.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow_dest.is_empty() || self.allow_dest.iter().any(|c| c.contains(ip))
    }

    /// Every rule, `self` included: `is_local` answers whether an address
    /// belongs to this host, and is asked only when `self` is denied.
    pub fn dest_allowed_at(
        &self,
        addr: std::net::SocketAddr,
        is_local: impl FnOnce(std::net::SocketAddr) -> bool,
    ) -> bool {
        self.dest_allowed(addr.ip()) && !(self.deny_self && is_local(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Cidr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn matching() {
        assert!(c("10.0.0.0/8").contains(ip("10.200.1.1")));
        assert!(!c("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(c("192.168.1.0/25").contains(ip("192.168.1.127")));
        assert!(!c("192.168.1.0/25").contains(ip("192.168.1.128")));
        assert!(c("0.0.0.0/0").contains(ip("1.2.3.4")));
        assert!(!c("0.0.0.0/0").contains(ip("::1")));
        assert!(c("127.0.0.1").contains(ip("::ffff:127.0.0.1")), "mapped addresses match IPv4 rules");
        assert!(c("fd00::/8").contains(ip("fd12::1")));
        assert!(c("::1").contains(ip("::1")));
        assert!(!c("::1").contains(ip("::2")));
        for bad in ["10.0.0.0/33", "::/129", "host/8", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        assert_eq!(c("10.1.2.3/8").to_string(), "10.1.2.3/8");
    }

    #[test]
    fn rules() {
        let acl = Acl {
            allow: vec![c("127.0.0.0/8")],
            allow_dest: vec![c("10.0.0.0/8")],
            deny_dest: vec![c("10.0.0.1")],
            deny_self: false,
        };
        assert!(acl.client_allowed(ip("127.0.0.5")));
        assert!(!acl.client_allowed(ip("192.0.2.1")));
        assert!(acl.dest_allowed(ip("10.0.0.2")));
        assert!(!acl.dest_allowed(ip("10.0.0.1")));
        assert!(!acl.dest_allowed(ip("192.0.2.1")));
        assert!(Acl::default().client_allowed(ip("::1")) && Acl::default().dest_allowed(ip("::1")));
    }

    #[test]
    fn unspecified_never_passes() {
        let open = Acl::default();
        for a in ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0", "::ffff:0.9.9.9"] {
            assert!(!open.dest_allowed(ip(a)), "{a}");
        }
        assert!(open.dest_allowed(ip("1.0.0.0")) && open.dest_allowed(ip("::2")));
    }

    #[test]
    fn self_asks_only_when_denied() {
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let open = Acl::default();
        assert!(open.dest_allowed_at(sa("192.0.2.1:80"), |_| panic!("not asked without self")));
        let router = Acl { deny_self: true, ..Acl::default() };
        assert!(!router.dest_allowed_at(sa("192.0.2.1:80"), |_| true));
        assert!(router.dest_allowed_at(sa("192.0.2.1:80"), |_| false));
    }
}
