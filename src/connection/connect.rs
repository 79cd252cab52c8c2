//! CONNECT (RFC 1928 §4, SOCKS4): race the target's addresses (Happy
//! Eyeballs, RFC 8305; the decisions are [`Race`]'s), keep the first that
//! connects, reply and relay.
//!
//! Every attempt is an ordinary non-blocking connect from `--outgoing`
//! through `--outgoing-iface`, checked against the destination rules
//! first, with a descriptor from the budget and a token of its own
//! ([`Role::Attempt`]). The winner's token becomes the target's; the
//! others are closed at once, which gives their descriptors back.

use super::chain::Via;
use super::race::{Next, Race, MAX_ATTEMPTS};
use super::{Closed, Conn, Flow, State, Wait};
use crate::core::Core;
use crate::fds;
use crate::handshake::Proto;
use crate::outbound;
use crate::relay::Side;
use crate::reply::Reply;
use crate::resolver::Answer;
use crate::socks5;
use crate::token::{token, Role};
use log::{debug, info};
use mio::event::Event;
use mio::{Interest, Registry};
use std::net::SocketAddr;

/// A CONNECT in progress: the race and its attempts under way.
pub(super) struct Connecting {
    pub proto: Proto,
    pub race: Race,
    attempts: [Option<Side>; MAX_ATTEMPTS],
    /// Racing an upstream proxy's address, for this destination.
    via: Option<Via>,
}

impl Connecting {
    pub(super) fn new(proto: Proto, race: Race) -> Box<Connecting> {
        Box::new(Connecting { proto, race, attempts: Default::default(), via: None })
    }

    pub(super) fn chained(proto: Proto, race: Race, via: Via) -> Box<Connecting> {
        Box::new(Connecting { proto, race, attempts: Default::default(), via: Some(via) })
    }

    fn in_flight(&self) -> usize {
        self.attempts.iter().flatten().count()
    }
}

impl Conn {
    /// Moves the race on: starts the attempts that are due, arms the timer
    /// for the next decision, or gives up with the race's reply.
    pub(super) fn race(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        loop {
            let State::Connecting(c) = &mut self.state else { return Ok(()) };
            match c.race.next(core.now, c.in_flight()) {
                Next::Start(addr) => {
                    // An upstream is the operator's choice: the rules
                    // were applied to the destination instead.
                    let check = c.via.is_none();
                    if let Err(r) = start(self.key, &mut c.attempts, addr, check, core, reg) {
                        debug!("#{} {} connect {}: {:?}", self.id, self.peer, addr, r);
                        c.race.failed(r);
                    }
                }
                Next::Wait(at) => {
                    self.arm(at, core);
                    return self.flush_ctl();
                }
                Next::Fail(mut reply, timed_out) => {
                    let proto = c.proto;
                    let chained = c.via.is_some();
                    let known = !c.race.resolving();
                    self.end_race(core);
                    if chained {
                        // The upstream is out of reach, not the destination.
                        if !core.shared.cfg.log_connections && core.limit.allow(core.now) {
                            let up = self.upstream(core);
                            info!("#{} {} upstream {up} out of reach: {reply:?}", self.id, self.peer);
                        }
                        reply = Reply::GeneralFailure;
                    }
                    let why = match (timed_out, known) {
                        (true, false) => Closed::Timeout(Wait::Resolve),
                        (true, true) => Closed::Timeout(Wait::Connect),
                        (false, _) => Closed::Refused(reply),
                    };
                    return self.refuse(proto, why, core);
                }
            }
        }
    }

    /// One of the race's lookups answered.
    pub(super) fn race_answer(&mut self, a: Answer, core: &mut Core, reg: &Registry) -> Flow {
        let State::Connecting(c) = &mut self.state else { return Ok(()) };
        c.race.answer(a.family, a.result, core.now);
        self.race(core, reg)
    }

    /// Attempt `i`'s socket raised an event.
    pub(super) fn attempt_event(&mut self, i: u8, ev: &Event, core: &mut Core, reg: &Registry) -> Flow {
        let State::Connecting(c) = &mut self.state else { return Ok(()) };
        let Some(side) = c.attempts.get_mut(usize::from(i)).and_then(Option::as_mut) else { return Ok(()) };
        side.mark(ev);
        match outbound::finished(&side.sock) {
            Ok(false) => Ok(()),
            Ok(true) => self.won(usize::from(i), core, reg),
            Err(e) => {
                debug!("#{} {} connect failed: {}", self.id, self.peer, e);
                c.attempts[usize::from(i)] = None;
                c.race.failed(Reply::from_io(&e));
                self.race(core, reg)
            }
        }
    }

    /// Ends a race that is over: the other attempts are closed (their
    /// descriptors go back) and lookups still out are taken off the
    /// resolver's queue (a running one's answer is dropped).
    fn end_race(&mut self, core: &mut Core) {
        let State::Connecting(c) = &mut self.state else { return };
        c.attempts = Default::default();
        if c.race.awaiting() {
            let client = core.client_key(self.peer.ip());
            core.shared.resolver.cancel(client, core.index, self.key, self.id);
        }
    }

    /// Attempt `i` connected first: it becomes the target.
    fn won(&mut self, i: usize, core: &mut Core, reg: &Registry) -> Flow {
        let State::Connecting(c) = &mut self.state else { return Ok(()) };
        let proto = c.proto;
        let via = c.via.take();
        let Some(mut t) = c.attempts[i].take() else { return Ok(()) };
        self.end_race(core);
        let both = Interest::READABLE | Interest::WRITABLE;
        if reg.reregister(&mut t.sock, token(self.key, Role::Target), both).is_err() {
            return self.fail(proto, Reply::GeneralFailure, core);
        }
        let local = t.sock.local_addr().unwrap_or(socks5::UNSPECIFIED);
        // Writable: that is how the connect completed. Readable only if an
        // event said so (re-registering reports what is pending anew).
        t.writable = true;
        self.rec.addr = t.sock.peer_addr().ok();
        debug!("#{} {} connected to {:?} from {}", self.id, self.peer, self.rec.addr, local);
        self.target = Some(t);
        if let Some(via) = via {
            return self.start_chain(proto, via, core);
        }
        self.reply(proto, Reply::Succeeded, local)?;
        self.enter_relay(core)
    }
}

/// Starts an attempt to `addr` in a free slot, or says why it could not
/// (the rules, no descriptor left, the socket call's error).
fn start(
    key: usize,
    attempts: &mut [Option<Side>; MAX_ATTEMPTS],
    addr: SocketAddr,
    check: bool,
    core: &mut Core,
    reg: &Registry,
) -> Result<(), Reply> {
    if check && !core.dest_allowed(addr) {
        return Err(Reply::NotAllowed);
    }
    let i = attempts.iter().position(Option::is_none).ok_or(Reply::GeneralFailure)?;
    let budget = fds::take(1).ok_or(Reply::GeneralFailure)?;
    let mut sock = outbound::connect(addr, &core.shared.source).map_err(|e| Reply::from_io(&e))?;
    reg.register(&mut sock, token(key, Role::Attempt(i as u8)), Interest::READABLE | Interest::WRITABLE)
        .map_err(|_| Reply::GeneralFailure)?;
    attempts[i] = Some(Side::new(sock, budget));
    Ok(())
}

#[cfg(test)]
mod tests {
    /// What a CONNECT holds while it races (reported in socksd(8), DUAL
    /// STACK): this box, and at most 2 × MAX_ADDRS addresses.
    #[test]
    fn a_race_is_small() {
        let size = std::mem::size_of::<super::Connecting>();
        println!("Connecting: {size} bytes");
        assert!(size <= 512, "{size}");
    }
}
