//! Flag values, parsed and checked: seconds, numbers, ranges and NAT64
//! prefixes. Pure; each error is the one line the binary prints.

use crate::acl::Cidr;
use std::time::Duration;

/// A bad flag or value: one line for stderr; the binary exits with 2.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgError(pub String);

/// The longest duration any timeout flag takes.
const MAX_SECONDS: u64 = 86_400;

/// Parses decimal seconds ("10", "0.5", "2.250") exactly, without floating
/// point (whose parsing tables would cost a router build some 15 KB).
fn parse_seconds(v: &str) -> Option<Duration> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if (int.is_empty() && frac.is_empty())
        || frac.len() > 9
        || !(int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    let secs: u64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let nanos: u32 = if frac.is_empty() { 0 } else { frac.parse::<u32>().ok()? * 10u32.pow(9 - frac.len() as u32) };
    Some(Duration::new(secs, nanos))
}

pub(crate) fn seconds(flag: &str, v: &str, allow_zero: bool) -> Result<Duration, ArgError> {
    let bad = || ArgError(format!("invalid value for --{flag}: '{v}' (seconds, e.g. 10 or 0.5)"));
    let d = parse_seconds(v).ok_or_else(bad)?;
    if d > Duration::from_secs(MAX_SECONDS) || (d.is_zero() && !allow_zero) {
        return Err(bad());
    }
    Ok(d)
}

pub(crate) fn number(flag: &str, v: &str, min: usize, max: usize) -> Result<usize, ArgError> {
    match v.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(ArgError(format!("invalid value for --{flag}: '{v}' (a number from {min} to {max})"))),
    }
}

pub(crate) fn port_range(v: &str) -> Result<(u16, u16), ArgError> {
    let bad = || ArgError(format!("invalid value for --udp-ports: '{v}' (LOW-HIGH, 1 to 65535)"));
    let (lo, hi) = v.split_once('-').ok_or_else(bad)?;
    let (lo, hi): (u16, u16) = (lo.parse().map_err(|_| bad())?, hi.parse().map_err(|_| bad())?);
    if lo == 0 || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

/// `--nat64-prefix`: an IPv6 prefix of a length RFC 6052 §2.2 defines.
pub(crate) fn nat64_prefix(v: &str) -> Result<Cidr, ArgError> {
    let bad = |why: &str| ArgError(format!("invalid value for --nat64-prefix: '{v}' ({why})"));
    let p: Cidr = v.parse().map_err(|e: String| bad(&e))?;
    if !v.contains(':') || !v.contains('/') || !crate::acl::NAT64_LENGTHS.contains(&p.prefix_len()) {
        return Err(bad("an IPv6 prefix of length 32, 40, 48, 56, 64 or 96, RFC 6052"));
    }
    Ok(p)
}

/// Every `--upstream`, in order.
pub(crate) fn routes(specs: &[String]) -> Result<crate::route::Routes, ArgError> {
    let mut r = crate::route::Routes::default();
    for u in specs {
        r.add(u).map_err(|e| ArgError(format!("invalid value for --upstream: '{u}': {e}")))?;
    }
    Ok(r)
}

/// `--proxy-protocol` and its `--proxy-protocol-from` networks: both or
/// neither, since without the list anyone could name any client.
pub(crate) fn balancers(on: bool, from: &[String]) -> Result<Vec<Cidr>, ArgError> {
    let mut nets = Vec::new();
    for v in from {
        nets.push(v.parse::<Cidr>().map_err(|e| ArgError(format!("invalid value for --proxy-protocol-from: {e}")))?);
    }
    match (on, nets.is_empty()) {
        (true, true) => Err(ArgError(
            "--proxy-protocol needs --proxy-protocol-from CIDR: the balancers' addresses (nobody else may name a client)"
                .into(),
        )),
        (false, false) => Err(ArgError("--proxy-protocol-from is only meaningful with --proxy-protocol".into())),
        _ => Ok(nets),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact() {
        assert_eq!(parse_seconds("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds(".25"), Some(Duration::from_millis(250)));
        assert_eq!(parse_seconds("3."), Some(Duration::from_secs(3)));
        assert_eq!(parse_seconds("1.000000001"), Some(Duration::new(1, 1)));
        for bad in ["", ".", "-1", "1e3", "nan", "1.0000000001", "1,5", " 1", "0x10"] {
            assert_eq!(parse_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn nat64_prefixes() {
        assert!(nat64_prefix("2001:db8:64::/96").is_ok());
        assert!(nat64_prefix("2001:db8::/32").is_ok());
        for bad in ["64:ff9b::/95", "10.0.0.0/8", "64:ff9b::", "x/96"] {
            assert!(nat64_prefix(bad).is_err(), "{bad}");
        }
    }
}
