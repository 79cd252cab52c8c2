//! What a connection leaves behind: its line in the connection log
//! (`--log-connections`) and its share of the counters, both written once,
//! when the reactor removes it.
//!
//! ```text
//! conn id=7 client=127.0.0.1:40112 proto=5 user=alice cmd=connect dest=example.org:80 addr=93.184.216.34:80 reply=0x00 up=75 down=1256 ms=102 end=eof
//! ```

use super::{Closed, Conn, State};
use crate::core::Core;
use crate::escape::Field;
use crate::handshake::Target;
use crate::reply::Reply;
use crate::stats::{Stats, ENDS};
use log::info;
use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

/// The figures a connection gathers for its record. No allocation unless
/// the connection log is on (then the requested name is kept).
pub(super) struct Record {
    started: Instant,
    /// "connect", "bind" or "udp", once the request is known.
    pub cmd: Option<&'static str>,
    /// The destination as requested (kept only for the connection log).
    pub dest: Option<Target>,
    /// The address connected (CONNECT), the peer (BIND), or the relay
    /// socket (UDP).
    pub addr: Option<SocketAddr>,
    /// The last reply sent.
    pub reply: Option<Reply>,
    /// The user's slot in this thread's [`Stats::users`].
    pub user: Option<u16>,
    /// SOCKS version spoken: "4", "4a" or "5".
    pub proto: Option<&'static str>,
    /// A user name that failed to log in (kept only for the connection log).
    pub tried: Option<Box<[u8]>>,
    /// The `--upstream` rule a CONNECT went through.
    pub via: Option<u8>,
    /// TCP bytes client to target and back.
    pub up: u64,
    pub down: u64,
}

impl Record {
    pub(super) fn new(now: Instant) -> Record {
        Record {
            started: now,
            cmd: None,
            dest: None,
            addr: None,
            reply: None,
            user: None,
            proto: None,
            tried: None,
            via: None,
            up: 0,
            down: 0,
        }
    }
}

/// The state as [`crate::stats::STATES`] counts it.
fn state_index(s: &State) -> usize {
    match s {
        State::Proxied | State::Greeting | State::Auth | State::Request => 0,
        #[cfg(feature = "gssapi")]
        State::Gss(_) => 0,
        State::Resolving(_) => 1,
        State::Connecting(c) if c.race.resolving() => 1,
        State::Connecting(_) | State::Chaining(_) => 2,
        State::Relaying => 3,
        State::BindWaiting { .. } => 4,
        State::Udp(_) => 5,
        State::Closing(_) => 6,
    }
}

impl Conn {
    /// Adds this open connection to a snapshot of the counters.
    pub fn count_live(&self, s: &mut Stats) {
        s.open[state_index(&self.state)] += 1;
        self.add_bytes(s);
    }

    fn add_bytes(&self, s: &mut Stats) {
        s.bytes_up += self.rec.up;
        s.bytes_down += self.rec.down;
        if let State::Udp(a) = &self.state {
            let c = a.counts();
            s.udp_up += c.dgrams_up;
            s.udp_down += c.dgrams_down;
            s.udp_bytes_up += c.bytes_up;
            s.udp_bytes_down += c.bytes_down;
            s.udp_dropped += c.dropped;
        }
        if let Some(u) = self.rec.user.and_then(|i| s.users.get_mut(usize::from(i))) {
            u.up += self.rec.up;
            u.down += self.rec.down;
        }
    }

    /// The connection is being removed for `why`: count it, and write its
    /// line when the connection log is on. Lines about connections that
    /// never relayed (refusals, failed logins, scans) are rate-limited.
    pub fn finish(&self, why: Closed, core: &mut Core) {
        let stats = &mut core.stats;
        stats.ended[why.end()] += 1;
        if let Closed::Refused(r) = why {
            if let Some(n) = stats.refused.get_mut(r as usize) {
                *n += 1;
            }
        }
        if let Some(u) = self.rec.user.and_then(|i| stats.users.get_mut(usize::from(i))) {
            u.conns += 1;
        }
        self.add_bytes(stats);
        if !core.shared.cfg.log_connections {
            return;
        }
        let served = self.rec.reply == Some(Reply::Succeeded);
        if !served && !core.limit.allow(core.now) {
            core.stats.log_suppressed += 1;
            return;
        }
        let held = std::mem::take(&mut core.limit.held);
        let routes = &core.shared.cfg.routes.rules;
        info!(target: "connlog", "{}", Line { c: self, why, now: core.now, held, users: &core.stats.users, routes });
    }
}

/// One connection-log line, formatted only if the logger takes it.
struct Line<'a> {
    c: &'a Conn,
    why: Closed,
    now: Instant,
    held: u64,
    users: &'a [crate::stats::UserStats],
    routes: &'a [crate::route::Rule],
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (c, r) = (self.c, &self.c.rec);
        write!(f, "conn id={} client={} proto={}", c.id, c.peer, r.proto.unwrap_or("-"))?;
        match (r.user.and_then(|i| self.users.get(usize::from(i))), &r.tried) {
            (Some(u), _) => write!(f, " user={}", Field(&u.name))?,
            (None, Some(t)) => write!(f, " user={}", Field(t))?,
            (None, None) => f.write_str(" user=-")?,
        }
        write!(f, " cmd={}", r.cmd.unwrap_or("-"))?;
        match &r.dest {
            Some(Target::Ip(a)) => write!(f, " dest={a}")?,
            Some(Target::Name(n, p)) => write!(f, " dest={}:{p}", Field(n.as_bytes()))?,
            None => f.write_str(" dest=-")?,
        }
        match r.addr {
            Some(a) => write!(f, " addr={a}")?,
            None => f.write_str(" addr=-")?,
        }
        // Through an upstream: addr is the upstream's.
        if let Some(u) = r.via.and_then(|i| self.routes.get(usize::from(i))?.via.as_ref()) {
            write!(f, " via={u}")?;
        }
        // The code sent, in the protocol's own terms (SOCKS4: 0x5a or 0x5b).
        match (r.reply, r.proto) {
            (Some(rep), Some("4" | "4a")) => write!(f, " reply=0x{:02x}", crate::reply::Reply4::from(rep) as u8)?,
            (Some(rep), _) => write!(f, " reply=0x{:02x}", rep as u8)?,
            (None, _) => f.write_str(" reply=-")?,
        }
        if let State::Udp(a) = &c.state {
            let u = a.counts();
            write!(
                f,
                " dgrams_up={} dgrams_down={} up={} down={} dropped={}",
                u.dgrams_up, u.dgrams_down, u.bytes_up, u.bytes_down, u.dropped
            )?;
        } else {
            write!(f, " up={} down={}", r.up, r.down)?;
        }
        let ms = crate::timer::millis(self.now.saturating_duration_since(r.started), false);
        write!(f, " ms={ms} end={}", ENDS[self.why.end()])?;
        if self.held > 0 {
            write!(f, " suppressed={}", self.held)?;
        }
        Ok(())
    }
}
