//! Counters, kept per reactor thread without locks or atomics (each
//! thread owns its [`Stats`]) and summed when asked (SIGUSR1,
//! [`crate::Server::stats`]). Plain `u64`s: correct on 32-bit targets,
//! which have no 64-bit atomics, and no wrap at 4 GiB.

use std::fmt::Write as _;
use std::time::Duration;

/// Connection states, as counted and reported.
pub(crate) const STATES: [&str; 7] =
    ["handshake", "resolving", "connecting", "relaying", "bind_waiting", "udp", "closing"];

/// Why connections ended, as counted and logged (`end=`).
pub(crate) const ENDS: [&str; 21] = [
    "eof",
    "client_gone",
    "client_reset",
    "target_reset",
    "client_error",
    "target_error",
    "not_socks",
    "handshake_eof",
    "auth_failed",
    "no_method",
    "handshake_timeout",
    "resolve_timeout",
    "connect_timeout",
    "bind_timeout",
    "idle_timeout",
    "refused",
    "not_allowed",
    "shutdown",
    // Behind a balancer (--proxy-protocol), decided after the header.
    "bad_proxy_header",
    "not_in_allow",
    "over_per_ip",
];

/// Why a client was closed at accept, before any byte was read.
pub(crate) const TURNED_AWAY: [&str; 5] =
    ["not_in_allow", "over_per_ip", "over_max_conns", "no_descriptors", "not_a_balancer"];

/// One user's share.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserStats {
    /// The user name (escaped when reported).
    pub name: Box<[u8]>,
    /// Connections that authenticated as this user.
    pub conns: u64,
    /// Bytes client to target.
    pub up: u64,
    /// Bytes target to client.
    pub down: u64,
}

/// What the server has done: live figures and totals since start.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Time since the server started.
    pub uptime: Duration,
    /// Connections open now, by state ([`Stats::report`] names them).
    pub(crate) open: [u64; STATES.len()],
    /// Connections accepted and given a state machine.
    pub accepted: u64,
    pub(crate) turned_away: [u64; TURNED_AWAY.len()],
    pub(crate) ended: [u64; ENDS.len()],
    /// Requests refused, by SOCKS5 reply code (0x01 to 0x08).
    pub(crate) refused: [u64; 9],
    /// Bytes relayed client to target (TCP).
    pub bytes_up: u64,
    /// Bytes relayed target to client (TCP).
    pub bytes_down: u64,
    /// UDP datagrams relayed client to target.
    pub udp_up: u64,
    /// UDP datagrams relayed target to client.
    pub udp_down: u64,
    /// UDP payload bytes client to target.
    pub udp_bytes_up: u64,
    /// UDP payload bytes target to client.
    pub udp_bytes_down: u64,
    /// UDP datagrams dropped: wrong source, fragments, bad headers, denied
    /// or unknown reply sources, full socket buffers.
    pub udp_dropped: u64,
    /// Per user, for the users that authenticated.
    pub users: Vec<UserStats>,
    /// Connection-log and refusal lines held back by the rate limit.
    pub log_suppressed: u64,
    /// Relays handed to a bulk lane (see lanes.rs).
    pub bulk_moved: u64,
    /// Relays handed back from a lane after going quiet.
    pub bulk_returned: u64,
}

impl Stats {
    /// Connections open now.
    pub fn open_total(&self) -> u64 {
        self.open.iter().sum()
    }

    /// Connections that ended for `end` (one of the `end=` words of the
    /// connection log), since start.
    pub fn ended(&self, end: &str) -> u64 {
        ENDS.iter().position(|e| *e == end).map_or(0, |i| self.ended[i])
    }

    /// The index of `name` in `users`, added on first sight (an allocation
    /// once per user and thread, never per connection).
    pub(crate) fn user_slot(&mut self, name: &[u8]) -> Option<u16> {
        if let Some(i) = self.users.iter().position(|u| &*u.name == name) {
            return u16::try_from(i).ok();
        }
        let i = u16::try_from(self.users.len()).ok()?;
        self.users.push(UserStats { name: name.into(), ..UserStats::default() });
        Some(i)
    }

    /// Adds another thread's figures (users matched by name).
    pub fn merge(&mut self, o: &Stats) {
        let add = |a: &mut [u64], b: &[u64]| a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        add(&mut self.open, &o.open);
        add(&mut self.turned_away, &o.turned_away);
        add(&mut self.ended, &o.ended);
        add(&mut self.refused, &o.refused);
        self.accepted += o.accepted;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.udp_up += o.udp_up;
        self.udp_down += o.udp_down;
        self.udp_bytes_up += o.udp_bytes_up;
        self.udp_bytes_down += o.udp_bytes_down;
        self.udp_dropped += o.udp_dropped;
        self.log_suppressed += o.log_suppressed;
        self.bulk_moved += o.bulk_moved;
        self.bulk_returned += o.bulk_returned;
        for u in &o.users {
            match self.users.iter_mut().find(|m| m.name == u.name) {
                Some(m) => {
                    m.conns += u.conns;
                    m.up += u.up;
                    m.down += u.down;
                }
                None => self.users.push(u.clone()),
            }
        }
    }

    /// The block SIGUSR1 logs: `key=value` lines, zero counts left out of
    /// the by-reason lists.
    pub fn report(&self) -> Vec<String> {
        let named = |names: &[&str], v: &[u64]| {
            let mut s = String::new();
            for (n, c) in names.iter().zip(v).filter(|(_, c)| **c > 0) {
                let _ = write!(s, " {n}={c}");
            }
            if s.is_empty() {
                s.push_str(" none");
            }
            s
        };
        let mut out = vec![
            format!("stats uptime_s={}", self.uptime.as_secs()),
            format!("stats open total={}{}", self.open_total(), named(&STATES, &self.open)),
            format!("stats accepted={}{}", self.accepted, named(&TURNED_AWAY, &self.turned_away)),
            format!("stats closed{}", named(&ENDS, &self.ended)),
        ];
        let mut refused = String::from("stats refused");
        for (code, n) in self.refused.iter().enumerate().filter(|(_, n)| **n > 0) {
            let _ = write!(refused, " 0x{code:02x}={n}");
        }
        if self.refused.iter().all(|n| *n == 0) {
            refused.push_str(" none");
        }
        out.push(refused);
        out.push(format!("stats bytes up={} down={}", self.bytes_up, self.bytes_down));
        out.push(format!(
            "stats udp dgrams_up={} dgrams_down={} bytes_up={} bytes_down={} dropped={}",
            self.udp_up, self.udp_down, self.udp_bytes_up, self.udp_bytes_down, self.udp_dropped
        ));
        for u in &self.users {
            out.push(format!(
                "stats user name={} conns={} up={} down={}",
                crate::escape::Field(&u.name),
                u.conns,
                u.up,
                u.down
            ));
        }
        out.push(format!("stats bulk_moved={} returned={}", self.bulk_moved, self.bulk_returned));
        out.push(format!("stats log_suppressed={}", self.log_suppressed));
        out
    }
}

/// A request for every reactor's counters: each thread adds its snapshot
/// to `sum` and counts itself in; the asker waits on `done`.
#[derive(Debug, Default)]
pub(crate) struct Collect {
    pub sum: std::sync::Mutex<(usize, Stats)>,
    pub done: std::sync::Condvar,
}

/// A token bucket for lines a flood could multiply (refusals, failed
/// logins): a burst of [`BURST`], then [`PER_SEC`] a second; the rest are
/// counted, and the count is told on the next line let through.
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: u32,
    last: Option<std::time::Instant>,
    /// Suppressed since the last line let through.
    pub held: u64,
}

const BURST: u32 = 20;
const PER_SEC: u32 = 10;

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit { tokens: BURST, last: None, held: 0 }
    }
}

impl RateLimit {
    /// Whether a line may be written now; if not, it is counted.
    pub(crate) fn allow(&mut self, now: std::time::Instant) -> bool {
        let last = *self.last.get_or_insert(now);
        let earned = crate::timer::millis(now.saturating_duration_since(last), false) * u64::from(PER_SEC) / 1000;
        if earned > 0 {
            self.tokens = (u64::from(self.tokens) + earned).min(u64::from(BURST)) as u32;
            self.last = Some(now);
        }
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.held += 1;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn merge_and_users() {
        let mut a = Stats::default();
        let i = a.user_slot(b"alice").unwrap();
        a.users[usize::from(i)].up = 5;
        a.bytes_up = u64::from(u32::MAX) + 10;
        let mut b = Stats::default();
        b.user_slot(b"bob");
        b.bytes_up = u64::from(u32::MAX);
        a.merge(&b);
        assert_eq!(a.bytes_up, 2 * u64::from(u32::MAX) + 10, "no wrap at 4 GiB");
        assert_eq!(a.users.len(), 2);
        assert_eq!(a.user_slot(b"alice"), Some(0));
        assert!(a.report().iter().any(|l| l == "stats user name=alice conns=0 up=5 down=0"));
    }

    #[test]
    fn rate_limit_bursts_then_counts() {
        let mut r = RateLimit::default();
        let t = Instant::now();
        let allowed = (0..100).filter(|_| r.allow(t)).count();
        assert_eq!(allowed, BURST as usize);
        assert_eq!(r.held, 100 - BURST as u64);
        assert!(r.allow(t + Duration::from_millis(200)), "refilled");
    }
}
