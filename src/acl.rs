//! Access control: which clients are served, which destinations may be
//! reached.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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
    /// The network of `net` with `prefix` bits (at most the family's).
    pub fn new(net: IpAddr, prefix: u8) -> Cidr {
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        Cidr { net, prefix: prefix.min(max) }
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }

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

/// A destination rule (`--allow-dest`, `--deny-dest`): a network, and
/// perhaps a port or a port range.
///
/// ```text
/// 10.0.0.0/8            the network, every port
/// 0.0.0.0/0:25          every IPv4 host, port 25
/// [2001:db8::/32]:1-1023  an IPv6 network (in brackets with a port), ports 1-1023
/// *:25                  every host of both families, port 25
/// ```
///
/// ```
/// use socksd::acl::DestRule;
///
/// let smtp: DestRule = "*:25".parse().unwrap();
/// assert!(smtp.contains("192.0.2.1:25".parse().unwrap(), true));
/// assert!(smtp.contains("[2001:db8::1]:25".parse().unwrap(), true));
/// assert!(!smtp.contains("192.0.2.1:587".parse().unwrap(), true));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DestRule {
    /// `None`: every address of both families.
    net: Option<Cidr>,
    /// Inclusive; `None`: every port.
    ports: Option<(u16, u16)>,
}

impl DestRule {
    /// Whether `addr` is covered. A port of 0 is not known (the peer a
    /// BIND expects often names none): a rule with ports then matches
    /// only if `unknown_port_matches`.
    pub fn contains(&self, addr: std::net::SocketAddr, unknown_port_matches: bool) -> bool {
        let net = self.net.is_none_or(|n| n.contains(addr.ip()));
        let port = match (self.ports, addr.port()) {
            (None, _) => true,
            (Some(_), 0) => unknown_port_matches,
            (Some((lo, hi)), p) => (lo..=hi).contains(&p),
        };
        net && port
    }
}

impl From<Cidr> for DestRule {
    fn from(net: Cidr) -> DestRule {
        DestRule { net: Some(net), ports: None }
    }
}

impl FromStr for DestRule {
    type Err = String;
    fn from_str(s: &str) -> Result<DestRule, String> {
        let bad_ports = || format!("bad port or port range in '{s}' (PORT or LOW-HIGH, 1 to 65535)");
        let ports = |p: &str| -> Result<(u16, u16), String> {
            let (lo, hi) = p.split_once('-').unwrap_or((p, p));
            let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad_ports())?, hi.parse().map_err(|_| bad_ports())?);
            if lo == 0 || lo > hi {
                return Err(bad_ports());
            }
            Ok((lo, hi))
        };
        if let Some(p) = s.strip_prefix("*:") {
            return Ok(DestRule { net: None, ports: Some(ports(p)?) });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (net, p) = rest.split_once("]:").ok_or_else(|| format!("'{s}' is not [IPv6 NETWORK]:PORT"))?;
            return Ok(DestRule { net: Some(net.parse()?), ports: Some(ports(p)?) });
        }
        // An IPv6 network holds colons: a port needs the brackets.
        match s.rsplit_once(':') {
            Some((net, p)) if !net.contains(':') => Ok(DestRule { net: Some(net.parse()?), ports: Some(ports(p)?) }),
            _ => Ok(DestRule { net: Some(s.parse()?), ports: None }),
        }
    }
}

impl fmt::Display for DestRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.net, self.ports) {
            (None, _) => f.write_str("*")?,
            (Some(n), Some(_)) if n.net.is_ipv6() => write!(f, "[{n}]")?,
            (Some(n), _) => write!(f, "{n}")?,
        }
        match self.ports {
            Some((lo, hi)) if lo == hi => write!(f, ":{lo}"),
            Some((lo, hi)) => write!(f, ":{lo}-{hi}"),
            None => Ok(()),
        }
    }
}

/// The rules from `--allow`, `--allow-dest` and `--deny-dest`.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    /// `--allow`: client networks served (all when empty).
    pub allow: Vec<Cidr>,
    /// `--allow-dest`: destinations allowed (all when empty).
    pub allow_dest: Vec<DestRule>,
    /// `--deny-dest`: destinations refused, before `allow_dest`.
    pub deny_dest: Vec<DestRule>,
    /// `--deny-dest self`: every address of this host, asked of the kernel when a rule is checked.
    pub deny_self: bool,
    /// `--nat64-prefix`: network-specific NAT64 prefixes, beside the
    /// well-known [`NAT64_WKP`].
    pub nat64: Vec<Cidr>,
}

/// The well-known NAT64 prefix, 64:ff9b::/96 (RFC 6052 §2.1).
pub const NAT64_WKP: Cidr = Cidr { net: IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0)), prefix: 96 };

/// The prefix lengths RFC 6052 §2.2 defines for NAT64.
pub const NAT64_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// The IPv4 address that `ip` embeds under the NAT64 `prefix` (RFC 6052
/// §2.2): after the prefix, skipping bits 64 to 71, which are always zero
/// ("u"); for a /96, the last 32 bits. `None` outside the prefix, or for a
/// length §2.2 does not define.
///
/// ```
/// use socksd::acl::{nat64_embedded, Cidr, NAT64_WKP};
///
/// let v4 = |s: &str, p: &str| nat64_embedded(s.parse().unwrap(), &p.parse().unwrap());
/// // RFC 6052 §2.4's examples: 192.0.2.33 under 2001:db8::/32 and /64.
/// assert_eq!(v4("2001:db8:c000:221::", "2001:db8::/32"), Some("192.0.2.33".parse().unwrap()));
/// assert_eq!(v4("2001:db8:122:344:c0:2:2100:0", "2001:db8:122:344::/64"), Some("192.0.2.33".parse().unwrap()));
/// assert_eq!(nat64_embedded("64:ff9b::192.0.2.33".parse().unwrap(), &NAT64_WKP), Some("192.0.2.33".parse().unwrap()));
/// ```
pub fn nat64_embedded(ip: Ipv6Addr, prefix: &Cidr) -> Option<Ipv4Addr> {
    if !prefix.contains(IpAddr::V6(ip)) || !NAT64_LENGTHS.contains(&prefix.prefix) {
        return None;
    }
    let b = ip.octets();
    let at = usize::from(prefix.prefix / 8);
    let octets: [u8; 4] = if at == 12 {
        [b[12], b[13], b[14], b[15]]
    } else {
        // The 15 bytes without the "u" octet (byte 8).
        let mut without_u = [0u8; 15];
        without_u[..8].copy_from_slice(&b[..8]);
        without_u[8..].copy_from_slice(&b[9..]);
        [without_u[at], without_u[at + 1], without_u[at + 2], without_u[at + 3]]
    };
    Some(Ipv4Addr::from(octets))
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
    /// Only loopback clients are served (`--allow` names loopback
    /// networks alone): no open proxy whatever the listen address.
    pub fn loopback_clients_only(&self) -> bool {
        !self.allow.is_empty()
            && self.allow.iter().all(|c| match c.net {
                IpAddr::V4(n) => n.is_loopback() && c.prefix >= 8,
                IpAddr::V6(n) => n.is_loopback() && c.prefix == 128,
            })
    }

    /// With no `--allow`, every client is served.
    pub fn client_allowed(&self, ip: IpAddr) -> bool {
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }

    /// The IPv4 address `ip` reaches through NAT64, if it is in the
    /// well-known prefix or a `--nat64-prefix`.
    pub fn nat64(&self, ip: IpAddr) -> Option<Ipv4Addr> {
        let IpAddr::V6(v6) = ip.to_canonical() else { return None };
        std::iter::once(&NAT64_WKP).chain(&self.nat64).find_map(|p| nat64_embedded(v6, p))
    }

    /// The network and port rules alone: unspecified addresses never
    /// pass, deny rules win, and with any `--allow-dest` only what they
    /// cover passes. An address under a NAT64 prefix is also the IPv4
    /// address it embeds: the IPv4 rules hold for it too (a deny of either
    /// form denies; an allow of either form allows). Port 0 (not known)
    /// meets no deny rule with ports, and every allow rule with ports.
    /// `self` needs the kernel: see [`Acl::dest_allowed_at`].
    pub fn dest_allowed(&self, addr: std::net::SocketAddr) -> bool {
        let v4 = self.nat64(addr.ip()).map(|v4| std::net::SocketAddr::new(IpAddr::V4(v4), addr.port()));
        let forms = || std::iter::once(addr).chain(v4);
        if forms().any(|a| is_unspecified(a.ip()) || self.deny_dest.iter().any(|r| r.contains(a, false))) {
            return false;
        }
        self.allow_dest.is_empty() || forms().any(|a| self.allow_dest.iter().any(|r| r.contains(a, true)))
    }

    /// The rules for a name sent unresolved to an upstream proxy, which
    /// resolves it: only rules for every host (`*:PORT`) can apply, so
    /// with any `--allow-dest` of networks the name is refused unless a
    /// `*:PORT` rule allows its port.
    pub fn name_allowed(&self, port: u16) -> bool {
        let any = |r: &DestRule| r.net.is_none() && r.contains(std::net::SocketAddr::from(([0, 0, 0, 1], port)), true);
        !self.deny_dest.iter().any(any) && (self.allow_dest.is_empty() || self.allow_dest.iter().any(any))
    }

    /// Every rule, `self` included: `is_local` answers whether an address
    /// belongs to this host, and is asked only when `self` is denied (for
    /// a NAT64 address, of the IPv4 address it embeds too).
    pub fn dest_allowed_at(
        &self,
        addr: std::net::SocketAddr,
        mut is_local: impl FnMut(std::net::SocketAddr) -> bool,
    ) -> bool {
        if !self.dest_allowed(addr) {
            return false;
        }
        if !self.deny_self {
            return true;
        }
        let v4 = self.nat64(addr.ip()).map(|v4| std::net::SocketAddr::new(IpAddr::V4(v4), addr.port()));
        !(is_local(addr) || v4.is_some_and(is_local))
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
    /// `ip` at port 80, for the destination rules.
    fn at(s: &str) -> std::net::SocketAddr {
        std::net::SocketAddr::new(ip(s), 80)
    }
    fn r(s: &str) -> DestRule {
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
            allow_dest: vec![r("10.0.0.0/8")],
            deny_dest: vec![r("10.0.0.1")],
            ..Acl::default()
        };
        assert!(acl.client_allowed(ip("127.0.0.5")));
        assert!(!acl.client_allowed(ip("192.0.2.1")));
        assert!(acl.dest_allowed(at("10.0.0.2")));
        assert!(!acl.dest_allowed(at("10.0.0.1")));
        assert!(!acl.dest_allowed(at("192.0.2.1")));
        assert!(Acl::default().client_allowed(ip("::1")) && Acl::default().dest_allowed(at("::1")));
    }

    #[test]
    fn loopback_only_allow_lists() {
        let only =
            |v: &[&str]| Acl { allow: v.iter().map(|s| c(s)).collect(), ..Acl::default() }.loopback_clients_only();
        assert!(only(&["127.0.0.0/8"]) && only(&["127.0.0.1", "::1"]));
        assert!(!only(&[]) && !only(&["127.0.0.0/7"]) && !only(&["127.0.0.0/8", "10.0.0.0/8"]) && !only(&["::/0"]));
    }

    #[test]
    fn unspecified_never_passes() {
        let open = Acl::default();
        for a in ["0.0.0.0", "0.1.2.3", "::", "::ffff:0.0.0.0", "::ffff:0.9.9.9"] {
            assert!(!open.dest_allowed(at(a)), "{a}");
        }
        assert!(open.dest_allowed(at("1.0.0.0")) && open.dest_allowed(at("::2")));
    }

    #[test]
    fn port_rules() {
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        for (rule, shown) in [
            ("0.0.0.0/0:25", "0.0.0.0/0:25"),
            ("*:25", "*:25"),
            ("*:1-1023", "*:1-1023"),
            ("[2001:db8::/32]:443", "[2001:db8::/32]:443"),
            ("2001:db8::/32", "2001:db8::/32"),
            ("10.0.0.0/8", "10.0.0.0/8"),
        ] {
            assert_eq!(r(rule).to_string(), shown);
        }
        for bad in ["*:0", "*:2-1", "*:", "10.0.0.0/8:x", "[::1]", "[::1]:70000", "*"] {
            assert!(bad.parse::<DestRule>().is_err(), "{bad}");
        }
        let acl = Acl { deny_dest: vec![r("*:25"), r("[::1]:22")], ..Acl::default() };
        assert!(!acl.dest_allowed(sa("192.0.2.1:25")) && !acl.dest_allowed(sa("[2001:db8::1]:25")));
        assert!(acl.dest_allowed(sa("192.0.2.1:587")));
        assert!(!acl.dest_allowed(sa("[::1]:22")) && acl.dest_allowed(sa("[::1]:80")));
        assert!(!acl.dest_allowed(sa("[64:ff9b::c000:201]:25")), "through NAT64 too");
        assert!(acl.dest_allowed(sa("192.0.2.1:0")), "an unknown port meets no deny rule with ports");
        let web = Acl { allow_dest: vec![r("*:80"), r("*:443")], ..Acl::default() };
        assert!(web.dest_allowed(sa("192.0.2.1:443")) && !web.dest_allowed(sa("192.0.2.1:22")));
        assert!(web.dest_allowed(sa("192.0.2.1:0")), "and every allow rule with ports");
    }

    /// RFC 6052 §2.4: 192.0.2.33 under each prefix length of §2.2.
    #[test]
    fn nat64_embedding_at_every_prefix_length() {
        let want: Ipv4Addr = "192.0.2.33".parse().unwrap();
        for (prefix, addr) in [
            ("2001:db8::/32", "2001:db8:c000:221::"),
            ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
            ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
            ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
            ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
            ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
            ("64:ff9b::/96", "64:ff9b::c000:221"),
        ] {
            let v6: Ipv6Addr = addr.parse().unwrap();
            assert_eq!(nat64_embedded(v6, &c(prefix)), Some(want), "{addr} under {prefix}");
        }
        assert_eq!(nat64_embedded("2001:db9::1".parse().unwrap(), &c("2001:db8::/32")), None, "outside");
        assert_eq!(nat64_embedded("2001:db8::1".parse().unwrap(), &c("2001:db8::/33")), None, "no such length");
    }

    #[test]
    fn ipv4_rules_hold_under_nat64() {
        let acl = Acl { deny_dest: vec![r("192.0.2.0/24")], nat64: vec![c("2001:db8:64::/96")], ..Acl::default() };
        assert!(!acl.dest_allowed(at("64:ff9b::192.0.2.33")), "the well-known prefix");
        assert!(!acl.dest_allowed(at("2001:db8:64::192.0.2.33")), "a network-specific prefix");
        assert!(acl.dest_allowed(at("64:ff9b::198.51.100.1")), "other IPv4 hosts");
        assert!(!Acl::default().dest_allowed(at("64:ff9b::")), "0.0.0.0 embedded is unspecified");
        let only = Acl { allow_dest: vec![r("198.51.100.0/24")], ..Acl::default() };
        assert!(only.dest_allowed(at("64:ff9b::198.51.100.1")), "an IPv4 allow admits its NAT64 form");
        assert!(!only.dest_allowed(at("64:ff9b::192.0.2.1")));
        let sa = |s: &str| s.parse::<std::net::SocketAddr>().unwrap();
        let router = Acl { deny_self: true, ..Acl::default() };
        assert!(!router.dest_allowed_at(sa("[64:ff9b::c000:201]:80"), |a| a.ip() == ip("192.0.2.1")));
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
