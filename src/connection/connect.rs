//! CONNECT (RFC 1928 §4, SOCKS4): try the target's addresses in turn, each
//! with a share of the connect timeout, then reply and relay.

use super::{Closed, Conn, Flow, State, Wait};
use crate::core::Core;
use crate::fds;
use crate::handshake::Proto;
use crate::outbound;
use crate::relay::Side;
use crate::reply::Reply;
use crate::socks5;
use crate::token::{token, Role};
use log::debug;
use mio::{Interest, Registry};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Shortest slice of the connect timeout given to one address of several.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// Addresses to try in turn (one, from the request, or a resolver's list).
pub(super) enum Targets {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Targets {
    pub(super) fn get(&self, i: usize) -> Option<SocketAddr> {
        match self {
            Targets::One(a) => (i == 0).then_some(*a),
            Targets::Many(v) => v.get(i).copied(),
        }
    }

    pub(super) fn len(&self) -> usize {
        match self {
            Targets::One(_) => 1,
            Targets::Many(v) => v.len(),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

/// A CONNECT's progress through its addresses.
pub(super) struct Attempts {
    proto: Proto,
    targets: Targets,
    /// The address to try next.
    next: usize,
    /// The whole connect timeout ends here.
    until: Instant,
    /// The reply if no address is left: the last failure's.
    last: Reply,
}

impl Attempts {
    pub(super) fn new(proto: Proto, targets: Targets, until: Instant, last: Reply) -> Attempts {
        Attempts { proto, targets, next: 0, until, last }
    }
}

impl Conn {
    /// Starts connecting to the next address that can be tried; each gets
    /// a share of the time left.
    pub(super) fn connect(&mut self, mut a: Attempts, core: &mut Core, reg: &Registry) -> Flow {
        while let Some(addr) = a.targets.get(a.next) {
            a.next += 1;
            if !core.dest_allowed(addr) {
                debug!("#{} {} {}: destination denied by rules", self.id, self.peer, addr);
                a.last = Reply::NotAllowed;
                continue;
            }
            let Some(budget) = fds::take(1) else {
                debug!("#{} {} connect {}: out of descriptors", self.id, self.peer, addr);
                return self.fail(a.proto, Reply::GeneralFailure, core);
            };
            let mut sock = match outbound::connect(addr, &core.shared.source) {
                Ok(s) => s,
                Err(e) => {
                    debug!("#{} {} connect {}: {}", self.id, self.peer, addr, e);
                    a.last = Reply::from_io(&e);
                    continue;
                }
            };
            if reg.register(&mut sock, token(self.key, Role::Target), Interest::READABLE | Interest::WRITABLE).is_err()
            {
                a.last = Reply::GeneralFailure;
                continue;
            }
            let left = a.until.saturating_duration_since(core.now);
            let tries = (a.targets.len() + 1 - a.next) as u32;
            let slice = (left / tries).max(MIN_ATTEMPT).min(left);
            self.target = Some(Side::new(sock, budget));
            self.enter(State::Connecting(a));
            self.set_deadline(core.now + slice, core);
            return self.flush_ctl();
        }
        self.fail(a.proto, a.last, core)
    }

    /// The target socket raised an event while connecting.
    pub(super) fn check_connect(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        let Some(t) = self.target.as_ref() else {
            return Ok(());
        };
        match outbound::finished(&t.sock) {
            Ok(false) => Ok(()),
            Ok(true) => self.connected(core),
            Err(e) => {
                debug!("#{} {} connect failed: {}", self.id, self.peer, e);
                self.next_attempt(Reply::from_io(&e), core, reg)
            }
        }
    }

    /// The current attempt failed with `reply`: try the next address while
    /// time is left, else answer with `reply`.
    pub(super) fn next_attempt(&mut self, reply: Reply, core: &mut Core, reg: &Registry) -> Flow {
        self.target = None;
        // Taken out to be rebuilt; `enter` shows the change as from Connecting.
        let State::Connecting(mut a) = std::mem::replace(&mut self.state, State::Closing(Closed::Eof)) else {
            return Err(Closed::Eof);
        };
        if core.now >= a.until {
            let why = match reply {
                Reply::TtlExpired => Closed::Timeout(Wait::Connect),
                r => Closed::Refused(r),
            };
            return self.refuse(a.proto, why, core);
        }
        a.last = reply;
        self.connect(a, core, reg)
    }

    fn connected(&mut self, core: &mut Core) -> Flow {
        let State::Connecting(Attempts { proto, .. }) = self.state else {
            return Err(Closed::Eof);
        };
        let Some(t) = self.target.as_mut() else { return Err(Closed::Eof) };
        let local = t.sock.local_addr().unwrap_or(socks5::UNSPECIFIED);
        // Writable: that is how the connect completed. Readable only if an
        // event said so: anything the target sends raises its own edge.
        t.writable = true;
        self.rec.addr = t.sock.peer_addr().ok();
        debug!("#{} {} connected from {}", self.id, self.peer, local);
        self.reply(proto, Reply::Succeeded, local)?;
        self.enter_relay(core)
    }
}
