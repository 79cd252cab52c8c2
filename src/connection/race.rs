//! Happy Eyeballs (RFC 8305): which of a CONNECT's addresses to try next,
//! and when. Pure: the connection (`connect.rs`) does the I/O and asks
//! [`Race::next`] what to do after every answer, attempt outcome and
//! timer.
//!
//! - §3: the IPv6 and IPv4 answers arrive on their own; an attempt
//!   starts with the first usable one, except that an IPv4 answer first
//!   waits [`RESOLUTION_DELAY`] for the IPv6 one.
//! - §4: the families alternate, IPv6 first, each in the resolver's order
//!   (RFC 6724's); an answer that arrives late joins the alternation.
//! - §5: the next attempt starts [`ATTEMPT_DELAY`] after the last one, or
//!   at once when an attempt fails, while the earlier ones go on; the
//!   first to connect wins.
//! - The whole CONNECT ends at its deadline (`--connect-timeout`, which
//!   covers the lookups too), with the most telling failure seen.

use crate::reply::Reply;
use crate::resolver::Family;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// §3: how long an IPv4 answer waits for the IPv6 one.
pub(crate) const RESOLUTION_DELAY: Duration = Duration::from_millis(50);
/// §5: the Connection Attempt Delay (the RFC's recommended value).
pub(crate) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);
/// Attempts in flight at once (each a socket and a token role).
pub(crate) const MAX_ATTEMPTS: usize = crate::token::ATTEMPT_ROLES;

/// What the connection should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start an attempt to this address.
    Start(SocketAddr),
    /// Nothing until this time (or an answer, or an attempt's outcome).
    Wait(Instant),
    /// Give up: every address failed, or the deadline passed (`true`).
    Fail(Reply, bool),
}

/// A CONNECT's addresses and its progress through them.
#[derive(Debug)]
pub(crate) struct Race {
    /// Addresses not tried yet: [IPv4, IPv6], each in the resolver's order.
    pending: [Vec<SocketAddr>; 2],
    /// An answer is still expected: [IPv4, IPv6].
    awaited: [bool; 2],
    /// When the IPv4 answer came (the Resolution Delay runs from it).
    v4_at: Option<Instant>,
    /// The family of the last attempt started (the next one alternates).
    last_v6: Option<bool>,
    /// The next attempt may start then (none: at once).
    next_at: Option<Instant>,
    until: Instant,
    /// An address was known at some point (else a timeout is the lookup's).
    known: bool,
    /// The most telling failure so far.
    failure: Option<Reply>,
}

/// How much a failure tells the client, to pick the reply when every
/// address failed: a target that refused says most (the service is
/// down), then the host and the network being unreachable; a timeout
/// says little, a rule only when nothing was tried.
fn weight(r: Reply) -> u8 {
    match r {
        Reply::ConnectionRefused => 6,
        Reply::HostUnreachable => 5,
        Reply::NetworkUnreachable => 4,
        Reply::TtlExpired => 3,
        Reply::NotAllowed => 2,
        _ => 1,
    }
}

fn index(v6: bool) -> usize {
    usize::from(v6)
}

impl Race {
    /// A race for a name: both answers awaited, until `until`.
    pub fn for_name(until: Instant) -> Race {
        Race {
            pending: [Vec::new(), Vec::new()],
            awaited: [true, true],
            v4_at: None,
            last_v6: None,
            next_at: None,
            until,
            known: false,
            failure: None,
        }
    }

    /// A race of one address (a literal target).
    pub fn for_addr(addr: SocketAddr, until: Instant) -> Race {
        let mut r = Race::for_name(until);
        r.awaited = [false, false];
        r.pending[index(addr.is_ipv6())].push(addr);
        r.known = true;
        r
    }

    /// Lookups are still out: the race is resolving rather than connecting.
    pub fn resolving(&self) -> bool {
        !self.known && self.awaited.iter().any(|&a| a)
    }

    /// Any answer still expected (to be cancelled if the race ends first).
    pub fn awaiting(&self) -> bool {
        self.awaited.iter().any(|&a| a)
    }

    /// A lookup answered. `Any` answers both families at once.
    pub fn answer(&mut self, family: Family, result: Result<Vec<SocketAddr>, Reply>, now: Instant) {
        let families: &[bool] = match family {
            Family::V4 => &[false],
            Family::V6 => &[true],
            Family::Any => &[false, true],
        };
        for &v6 in families {
            self.awaited[index(v6)] = false;
        }
        // One family's lookup failing tells nothing while the other's
        // addresses are tried; with none at all the reply is 0x04.
        let Ok(addrs) = result else { return };
        for a in addrs {
            if families.contains(&a.is_ipv6()) {
                self.pending[index(a.is_ipv6())].push(a);
                self.known = true;
            }
        }
        if families.contains(&false) && !self.pending[0].is_empty() {
            self.v4_at = Some(now);
        }
    }

    /// An attempt (or the address itself, by the rules) failed: the next
    /// may start at once.
    pub fn failed(&mut self, r: Reply) {
        if self.failure.is_none_or(|f| weight(r) > weight(f)) {
            self.failure = Some(r);
        }
        self.next_at = None;
    }

    /// What to do now, with `in_flight` attempts under way.
    pub fn next(&mut self, now: Instant, in_flight: usize) -> Next {
        if now >= self.until {
            let r = if self.known { self.failure.unwrap_or(Reply::TtlExpired) } else { Reply::TtlExpired };
            return Next::Fail(r, true);
        }
        // §4: alternate families, IPv6 first.
        let prefer_v6 = self.last_v6.is_none_or(|v6| !v6);
        let v6 = if !self.pending[index(prefer_v6)].is_empty() {
            prefer_v6
        } else if !self.pending[index(!prefer_v6)].is_empty() {
            !prefer_v6
        } else {
            if in_flight == 0 && !self.awaiting() {
                return Next::Fail(self.failure.unwrap_or(Reply::HostUnreachable), false);
            }
            return Next::Wait(self.until);
        };
        if in_flight >= MAX_ATTEMPTS {
            return Next::Wait(self.until);
        }
        // §3: an IPv4 answer waits a little for the IPv6 one.
        if self.last_v6.is_none() && !v6 && self.awaited[1] {
            if let Some(at) = self.v4_at.map(|t| t + RESOLUTION_DELAY).filter(|&at| now < at) {
                return Next::Wait(at.min(self.until));
            }
        }
        // §5: the Connection Attempt Delay, unless nothing is under way.
        if let Some(at) = self.next_at.filter(|&at| in_flight > 0 && now < at) {
            return Next::Wait(at.min(self.until));
        }
        let addr = self.pending[index(v6)].remove(0);
        self.last_v6 = Some(v6);
        self.next_at = Some(now + ATTEMPT_DELAY);
        Next::Start(addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn t0() -> (Instant, Instant) {
        let t = Instant::now();
        (t, t + Duration::from_secs(10))
    }

    #[test]
    fn families_alternate_ipv6_first() {
        let (t, until) = t0();
        let mut r = Race::for_name(until);
        r.answer(Family::V4, Ok(vec![a("192.0.2.1:80"), a("192.0.2.2:80")]), t);
        r.answer(Family::V6, Ok(vec![a("[2001:db8::1]:80"), a("[2001:db8::2]:80"), a("[2001:db8::3]:80")]), t);
        let mut order = Vec::new();
        let mut now = t;
        for n in 0..5 {
            match r.next(now, n) {
                Next::Start(x) => order.push(x),
                other => panic!("{other:?}"),
            }
            now += ATTEMPT_DELAY;
        }
        assert_eq!(
            order,
            [a("[2001:db8::1]:80"), a("192.0.2.1:80"), a("[2001:db8::2]:80"), a("192.0.2.2:80"), a("[2001:db8::3]:80")]
        );
        assert_eq!(r.next(now, 5), Next::Wait(until), "nothing left but the attempts under way");
        assert_eq!(r.next(now, 0), Next::Fail(Reply::HostUnreachable, false));
    }

    #[test]
    fn the_next_attempt_waits_the_delay_unless_one_failed() {
        let (t, until) = t0();
        let mut r = Race::for_name(until);
        r.answer(Family::V6, Ok(vec![a("[2001:db8::1]:80")]), t);
        r.answer(Family::V4, Ok(vec![a("192.0.2.1:80"), a("192.0.2.2:80")]), t);
        assert_eq!(r.next(t, 0), Next::Start(a("[2001:db8::1]:80")));
        assert_eq!(r.next(t, 1), Next::Wait(t + ATTEMPT_DELAY), "the IPv6 attempt goes on");
        assert_eq!(r.next(t + ATTEMPT_DELAY, 1), Next::Start(a("192.0.2.1:80")), "then IPv4 beside it");
        let now = t + ATTEMPT_DELAY + Duration::from_millis(10);
        r.failed(Reply::ConnectionRefused);
        assert_eq!(r.next(now, 1), Next::Start(a("192.0.2.2:80")), "a failure starts the next at once");
    }

    #[test]
    fn an_ipv4_answer_waits_the_resolution_delay_for_ipv6() {
        let (t, until) = t0();
        let mut r = Race::for_name(until);
        assert!(r.resolving());
        assert_eq!(r.next(t, 0), Next::Wait(until), "no answer yet");
        r.answer(Family::V4, Ok(vec![a("192.0.2.1:80")]), t);
        assert_eq!(r.next(t, 0), Next::Wait(t + RESOLUTION_DELAY));
        // IPv6 answers within the delay: it goes first.
        let mut early = Race::for_name(until);
        early.answer(Family::V4, Ok(vec![a("192.0.2.1:80")]), t);
        early.answer(Family::V6, Ok(vec![a("[2001:db8::1]:80")]), t + Duration::from_millis(20));
        assert_eq!(early.next(t + Duration::from_millis(20), 0), Next::Start(a("[2001:db8::1]:80")));
        // It does not: IPv4 starts when the delay is over; IPv6 joins later.
        let later = t + RESOLUTION_DELAY;
        assert_eq!(r.next(later, 0), Next::Start(a("192.0.2.1:80")));
        r.answer(Family::V6, Ok(vec![a("[2001:db8::1]:80")]), later + Duration::from_secs(2));
        assert_eq!(r.next(later + Duration::from_secs(2), 1), Next::Start(a("[2001:db8::1]:80")));
        // A failed IPv6 lookup does not hold IPv4 back.
        let mut failed = Race::for_name(until);
        failed.answer(Family::V6, Err(Reply::HostUnreachable), t);
        failed.answer(Family::V4, Ok(vec![a("192.0.2.1:80")]), t);
        assert_eq!(failed.next(t, 0), Next::Start(a("192.0.2.1:80")));
    }

    #[test]
    fn the_most_telling_failure_and_the_deadline() {
        let (t, until) = t0();
        let mut r = Race::for_name(until);
        r.answer(Family::V6, Ok(vec![a("[2001:db8::1]:80")]), t);
        r.answer(Family::V4, Ok(vec![a("192.0.2.1:80")]), t);
        assert!(matches!(r.next(t, 0), Next::Start(_)));
        r.failed(Reply::NetworkUnreachable);
        assert!(matches!(r.next(t, 0), Next::Start(_)));
        r.failed(Reply::ConnectionRefused);
        r.failed(Reply::NotAllowed);
        assert_eq!(r.next(t, 0), Next::Fail(Reply::ConnectionRefused, false));
        // Only rules: "not allowed".
        let mut denied = Race::for_addr(a("192.0.2.1:80"), until);
        assert!(matches!(denied.next(t, 0), Next::Start(_)));
        denied.failed(Reply::NotAllowed);
        assert_eq!(denied.next(t, 0), Next::Fail(Reply::NotAllowed, false));
        // The deadline: a lookup's timeout (no address), or the connect's.
        let mut slow = Race::for_name(until);
        assert_eq!(slow.next(until, 0), Next::Fail(Reply::TtlExpired, true));
        assert!(!slow.known);
        let mut hanging = Race::for_addr(a("192.0.2.1:80"), until);
        assert!(matches!(hanging.next(t, 0), Next::Start(_)));
        assert_eq!(hanging.next(until, 1), Next::Fail(Reply::TtlExpired, true));
        // Both lookups failed.
        let mut none = Race::for_name(until);
        none.answer(Family::V6, Err(Reply::HostUnreachable), t);
        none.answer(Family::V4, Err(Reply::HostUnreachable), t);
        assert_eq!(none.next(t, 0), Next::Fail(Reply::HostUnreachable, false));
    }
}
