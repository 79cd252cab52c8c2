//! Upstream chaining (`--upstream`): which destinations go through which
//! upstream proxy, and which directly. The first rule that matches wins;
//! what no rule matches goes directly.
//!
//! ```text
//! --upstream 'socks5://user:pass@10.0.0.1:1080 for .onion,10.8.0.0/16'
//! --upstream 'http://proxy.corp:3128 for .corp.example,:8443'   (an IP address, not a name)
//! --upstream 'direct for 10.0.0.0/8'
//! --upstream socks4a://192.0.2.9:1080                              (everything else)
//! ```

use crate::acl::Cidr;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Rules at most (each a flag).
pub const MAX_RULES: usize = 32;
/// Matches per rule at most.
pub const MAX_MATCHES: usize = 64;

/// The upstream's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// SOCKS5, names passed on unresolved (`socks5://`, `socks5h://`).
    Socks5,
    /// SOCKS4a (`socks4a://`, `socks4://`): IPv4 addresses and names.
    Socks4a,
    /// HTTP CONNECT (`http://`).
    Http,
}

/// A user name and password.
pub type Creds = (Box<[u8]>, Box<[u8]>);

/// An upstream proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// Its protocol.
    pub scheme: Scheme,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Credentials (RFC 1929, SOCKS4's USERID, or HTTP Basic), each at
    /// most 255 bytes.
    pub creds: Option<Creds>,
}

impl fmt::Display for Upstream {
    /// As logged: the scheme and address, never the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self.scheme {
            Scheme::Socks5 => "socks5",
            Scheme::Socks4a => "socks4a",
            Scheme::Http => "http",
        };
        write!(f, "{s}://{}", self.addr)
    }
}

/// What a rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// `*`: everything.
    Any,
    /// `.example.org`: that name and every name under it.
    Suffix(Box<str>),
    /// `host.example.org`: that name only.
    Name(Box<str>),
    /// An address in the network (addresses as requested: names are not
    /// resolved to be routed).
    Net(Cidr),
    /// `:443` or `:8000-8999`: the port.
    Ports(u16, u16),
}

/// One `--upstream`: where matching destinations go (`None`: directly).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The upstream, or `None` for `direct`.
    pub via: Option<Upstream>,
    matches: Vec<Match>,
}

impl fmt::Display for Match {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Match::Any => f.write_str("*"),
            Match::Suffix(s) => write!(f, ".{s}"),
            Match::Name(s) => f.write_str(s),
            Match::Net(c) => write!(f, "{c}"),
            Match::Ports(lo, hi) if lo == hi => write!(f, ":{lo}"),
            Match::Ports(lo, hi) => write!(f, ":{lo}-{hi}"),
        }
    }
}

impl fmt::Display for Rule {
    /// As `--check` shows it: credentials said, never shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.via {
            Some(u) => write!(f, "{u}{}", if u.creds.is_some() { " (with credentials)" } else { "" })?,
            None => f.write_str("direct")?,
        }
        for (i, m) in self.matches.iter().enumerate() {
            write!(f, "{}{m}", if i == 0 { " for " } else { "," })?;
        }
        Ok(())
    }
}

/// Every `--upstream`, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// The rules, first match wins.
    pub rules: Vec<Rule>,
}

/// A name as compared: ASCII case ignored, one trailing dot dropped.
fn ends_with_label(name: &str, suffix: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    let (n, s) = (name.as_bytes(), suffix.as_bytes());
    n.len() >= s.len()
        && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
        && (n.len() == s.len() || n[n.len() - s.len() - 1] == b'.')
}

impl Match {
    fn covers(&self, ip: Option<IpAddr>, name: Option<&str>, port: u16) -> bool {
        match self {
            Match::Any => true,
            Match::Suffix(s) => name.is_some_and(|n| ends_with_label(n, s)),
            Match::Name(s) => name.is_some_and(|n| n.strip_suffix('.').unwrap_or(n).eq_ignore_ascii_case(s)),
            Match::Net(c) => ip.is_some_and(|ip| c.contains(ip)),
            Match::Ports(lo, hi) => (*lo..=*hi).contains(&port),
        }
    }

    fn parse(s: &str) -> Result<Match, String> {
        if s == "*" {
            return Ok(Match::Any);
        }
        if let Some(p) = s.strip_prefix(':') {
            let (lo, hi) = p.split_once('-').unwrap_or((p, p));
            return match (lo.parse::<u16>(), hi.parse::<u16>()) {
                (Ok(lo), Ok(hi)) if lo > 0 && lo <= hi => Ok(Match::Ports(lo, hi)),
                _ => Err(format!("bad port or range '{s}' (:PORT or :LOW-HIGH)")),
            };
        }
        if let Ok(c) = s.parse::<Cidr>() {
            return Ok(Match::Net(c));
        }
        let name = s.strip_prefix('.').unwrap_or(s);
        let ok = !name.is_empty()
            && name.len() <= 253
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !ok {
            return Err(format!("'{s}' is not *, a network, :PORT, a name or .suffix"));
        }
        let name: Box<str> = name.to_ascii_lowercase().into();
        Ok(if s.starts_with('.') { Match::Suffix(name) } else { Match::Name(name) })
    }
}

/// URL percent-escapes (`%20` for a space, `%40` for `@`, `%3A` for `:`;
/// RFC 3986 §2.1), so that any user name or password can be given.
fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| format!("bad %-escape in '{s}' (%XX)"))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// `SCHEME://[USER[:PASS]@]IP:PORT` or `direct`.
fn upstream(s: &str) -> Result<Option<Upstream>, String> {
    if s == "direct" {
        return Ok(None);
    }
    let (scheme, rest) = s.split_once("://").ok_or_else(|| format!("'{s}' is not SCHEME://HOST:PORT or direct"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "socks5" | "socks5h" => Scheme::Socks5,
        "socks4a" | "socks4" => Scheme::Socks4a,
        "http" => Scheme::Http,
        other => return Err(format!("unknown scheme '{other}' (socks5, socks4a or http)")),
    };
    let (creds, host) = match rest.rsplit_once('@') {
        Some((c, h)) => {
            let (u, p) = c.split_once(':').unwrap_or((c, ""));
            let (u, p) = (unescape(u)?, unescape(p)?);
            if u.is_empty() || u.len() > 255 || p.len() > 255 {
                return Err("user and password: 1 to 255 bytes each".into());
            }
            (Some((u.into(), p.into())), h)
        }
        None => (None, rest),
    };
    let addr = host
        .trim_end_matches('/')
        .parse()
        .map_err(|_| format!("'{host}' is not IP:PORT (an address, IPv6 in brackets: names are not resolved here)"))?;
    Ok(Some(Upstream { scheme, addr, creds }))
}

impl Routes {
    /// Adds one `--upstream` value: `UPSTREAM [for MATCH,...]`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        if self.rules.len() >= MAX_RULES {
            return Err(format!("at most {MAX_RULES} rules"));
        }
        let mut words = spec.split_whitespace();
        let via = upstream(words.next().ok_or("empty")?)?;
        let matches = match (words.next(), words.next(), words.next()) {
            (None, _, _) => vec![Match::Any],
            (Some("for"), Some(list), None) => {
                let mut m = Vec::new();
                for s in list.split(',') {
                    if m.len() == MAX_MATCHES {
                        return Err(format!("at most {MAX_MATCHES} matches in a rule"));
                    }
                    m.push(Match::parse(s)?);
                }
                m
            }
            _ => return Err("expected UPSTREAM [for MATCH,MATCH,...]".into()),
        };
        self.rules.push(Rule { via, matches });
        Ok(())
    }

    /// The rule for a destination (its address, or its name, and port):
    /// its index and upstream, or `None` to go directly.
    pub fn pick(&self, ip: Option<IpAddr>, name: Option<&str>, port: u16) -> Option<(usize, &Upstream)> {
        let (i, rule) =
            self.rules.iter().enumerate().find(|(_, r)| r.matches.iter().any(|m| m.covers(ip, name, port)))?;
        rule.via.as_ref().map(|u| (i, u))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(specs: &[&str]) -> Routes {
        let mut r = Routes::default();
        for s in specs {
            r.add(s).unwrap();
        }
        r
    }

    #[test]
    fn first_match_wins() {
        let r = routes(&[
            "socks5://u:p:q@10.0.0.1:1080 for .onion,10.8.0.0/16",
            "direct for 10.0.0.0/8,:25",
            "http://[2001:db8::1]:3128 for intranet,.corp.example",
            "socks4a://192.0.2.9:1080",
        ]);
        let via = |ip: Option<&str>, name: Option<&str>, port: u16| {
            r.pick(ip.map(|i| i.parse().unwrap()), name, port).map(|(i, u)| (i, u.to_string()))
        };
        assert_eq!(via(None, Some("abc.ONION."), 80), Some((0, "socks5://10.0.0.1:1080".into())));
        assert_eq!(via(None, Some("onion"), 80), Some((0, "socks5://10.0.0.1:1080".into())));
        assert_eq!(via(None, Some("xonion"), 80).map(|v| v.0), Some(3));
        assert_eq!(via(Some("10.8.1.1"), None, 80).map(|v| v.0), Some(0));
        assert_eq!(via(Some("10.9.1.1"), None, 80), None);
        assert_eq!(via(None, Some("mail.example"), 25), None);
        assert_eq!(via(None, Some("Intranet"), 443), Some((2, "http://[2001:db8::1]:3128".into())));
        assert_eq!(via(None, Some("a.intranet"), 443).map(|v| v.0), Some(3));
        assert_eq!(via(None, Some("x.corp.example"), 443).map(|v| v.0), Some(2));
        assert_eq!(r.rules[0].via.as_ref().unwrap().creds, Some((b"u".to_vec().into(), b"p:q".to_vec().into())));
        let r = routes(&["socks5://u%3Ax:p%20q%40@10.0.0.1:1080"]);
        assert_eq!(r.rules[0].via.as_ref().unwrap().creds, Some((b"u:x".to_vec().into(), b"p q@".to_vec().into())));
        assert!(Routes::default().add("socks5://u:%2@10.0.0.1:1080").is_err());
        assert_eq!(Routes::default().pick(None, Some("a"), 1), None, "no rule: directly");
    }

    #[test]
    fn bad_rules() {
        for bad in [
            "",
            "ftp://10.0.0.1:21",
            "socks5://proxy.example:1080",
            "socks5://10.0.0.1",
            "socks5://10.0.0.1:1080 for",
            "socks5://10.0.0.1:1080 to .onion",
            "socks5://10.0.0.1:1080 for .onion, .exit",
            "socks5://10.0.0.1:1080 for :0",
            "socks5://10.0.0.1:1080 for :9-8",
            "socks5://10.0.0.1:1080 for a/b",
            "socks5://@10.0.0.1:1080",
        ] {
            assert!(Routes::default().add(bad).is_err(), "{bad}");
        }
    }
}
