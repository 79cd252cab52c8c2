//! CONNECT through an upstream proxy (`--upstream`, [`crate::route`]):
//! connect.rs races the upstream's one address; once connected, this asks
//! the upstream for the destination in its protocol
//! ([`crate::upstream_wire`]) and answers the client with what the
//! upstream said. Non-blocking, under the same connect timeout. The
//! upstream's answer is read into the target-to-client buffer, so bytes
//! the destination sends right behind it are relayed, not lost.

use super::connect::Connecting;
use super::race::Race;
use super::{Closed, Conn, Flow, State, Wait};
use crate::core::Core;
use crate::escape::Escaped;
use crate::handshake::{Proto, Target};
use crate::parse::Parsed;
use crate::reply::Reply;
use crate::route::{Scheme, Upstream};
use crate::socks5;
use crate::upstream_wire::{self as wire, Bad, Dest};
use log::{debug, info};
use mio::Registry;
use std::io::{ErrorKind, Write};
use std::time::Instant;

/// What a CONNECT routed to an upstream carries until the upstream is
/// connected.
pub(super) struct Via {
    pub dest: Target,
    /// The connect timeout's end, for the whole exchange.
    pub until: Instant,
}

/// The answer awaited from the upstream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Step {
    /// SOCKS5: the method it chose.
    Method,
    /// SOCKS5: RFC 1929's status.
    Auth,
    /// The reply to the CONNECT (SOCKS5, SOCKS4a or HTTP).
    Reply,
}

/// An answer read from the upstream.
enum Answer {
    /// Whether it chose username/password.
    Method(bool),
    /// Whether it accepted the credentials.
    Auth(bool),
    Reply(Reply),
}

/// The exchange with the upstream.
pub(super) struct Chain {
    pub proto: Proto,
    via: Via,
    step: Step,
    /// Bytes for the upstream, and how many are sent.
    out: Vec<u8>,
    sent: usize,
}

impl Via {
    fn dest(&self) -> Dest<'_> {
        match &self.dest {
            Target::Ip(a) => Dest::Ip(*a),
            Target::Name(n, p) => Dest::Name(n, *p),
        }
    }
}

impl Conn {
    /// The upstream of this connection's rule.
    pub(super) fn upstream<'a>(&self, core: &'a Core) -> &'a Upstream {
        let rule = self.rec.via.map_or(0, usize::from);
        core.shared.cfg.routes.rules[rule].via.as_ref().expect("a chained rule has an upstream")
    }

    /// A CONNECT that a `--upstream` rule sends through an upstream: the
    /// destination rules first, then a race of the upstream's address.
    /// `None`: the destination goes directly.
    pub(super) fn route(
        &mut self,
        proto: Proto,
        target: &Target,
        until: Instant,
        core: &mut Core,
        reg: &Registry,
    ) -> Option<Flow> {
        let (ip, name, port) = match target {
            Target::Ip(a) => (Some(a.ip()), None, a.port()),
            Target::Name(n, p) => (None, Some(&**n), *p),
        };
        let (rule, up) = core.shared.cfg.routes.pick(ip, name, port)?;
        let addr = up.addr;
        self.rec.via = Some(rule as u8);
        let allowed = match target {
            Target::Ip(a) => core.dest_allowed(*a),
            Target::Name(_, p) => core.shared.cfg.acl.name_allowed(*p),
        };
        if !allowed {
            return Some(self.fail(proto, Reply::NotAllowed, core));
        }
        let via = Via { dest: target.clone(), until };
        self.enter(State::Connecting(Connecting::chained(proto, Race::for_addr(addr, until), via)));
        Some(self.race(core, reg))
    }

    /// Connected to the upstream: send the first message.
    pub(super) fn start_chain(&mut self, proto: Proto, via: Via, core: &mut Core) -> Flow {
        let up = self.upstream(core);
        let creds = up.creds.as_ref().map(|(u, p)| (&u[..], &p[..]));
        let mut out = Vec::with_capacity(300);
        let step = match up.scheme {
            Scheme::Socks5 => {
                wire::socks5_greeting(creds.is_some(), &mut out);
                Step::Method
            }
            Scheme::Socks4a => {
                if let Err(r) = wire::socks4a_connect(via.dest(), creds.map_or(&[][..], |c| c.0), &mut out) {
                    return self.fail(proto, r, core);
                }
                Step::Reply
            }
            Scheme::Http => {
                wire::http_connect(via.dest(), creds, &mut out);
                Step::Reply
            }
        };
        let until = via.until;
        self.enter(State::Chaining(Box::new(Chain { proto, via, step, out, sent: 0 })));
        self.set_deadline(until, core);
        self.chain(core)
    }

    /// Sends what is due, reads the upstream's answer, and moves on.
    pub(super) fn chain(&mut self, core: &mut Core) -> Flow {
        loop {
            let State::Chaining(c) = &mut self.state else { return Ok(()) };
            let Some(t) = self.target.as_mut() else { return Err(Closed::Eof) };
            while c.sent < c.out.len() {
                if !t.writable {
                    return self.flush_ctl();
                }
                match t.sock.write(&c.out[c.sent..]) {
                    Ok(n) => c.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => t.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return self.upstream_failed(&format!("write: {e}"), Reply::GeneralFailure, core),
                }
            }
            let creds = self.upstream(core).creds.is_some();
            let scheme = self.upstream(core).scheme;
            let State::Chaining(c) = &mut self.state else { return Ok(()) };
            let buf = self.down.pending();
            let answer = match (c.step, scheme) {
                (Step::Method, _) => wire::socks5_method(buf, creds).map(|p| map(p, Answer::Method)),
                (Step::Auth, _) => wire::socks5_auth_status(buf).map(|p| map(p, Answer::Auth)),
                (Step::Reply, Scheme::Socks5) => wire::socks5_reply(buf).map(|p| map(p, Answer::Reply)),
                (Step::Reply, Scheme::Socks4a) => wire::socks4_reply(buf).map(|p| map(p, Answer::Reply)),
                (Step::Reply, Scheme::Http) => wire::http_reply(buf).map(|p| map(p, Answer::Reply)),
            };
            let (answer, used) = match answer {
                Err(Bad) => return self.upstream_failed("broke its protocol", Reply::GeneralFailure, core),
                Ok(Parsed::Incomplete) => {
                    if !self.read_upstream(core)? {
                        return self.flush_ctl();
                    }
                    continue;
                }
                Ok(Parsed::Done(a, used)) => (a, used),
            };
            self.down.consume(used);
            let State::Chaining(c) = &mut self.state else { return Ok(()) };
            c.out.clear();
            c.sent = 0;
            match answer {
                Answer::Method(true) => {
                    let up = self.upstream(core);
                    let (u, p) = up.creds.as_ref().map(|(u, p)| (&u[..], &p[..])).unwrap_or_default();
                    let State::Chaining(c) = &mut self.state else { return Ok(()) };
                    wire::socks5_auth(u, p, &mut c.out);
                    c.step = Step::Auth;
                }
                Answer::Auth(false) => {
                    return self.upstream_failed("refused the credentials", Reply::GeneralFailure, core)
                }
                Answer::Method(false) | Answer::Auth(true) => {
                    wire::socks5_connect(c.via.dest(), &mut c.out);
                    c.step = Step::Reply;
                }
                Answer::Reply(r) => return self.chained(r, core),
            }
        }
    }

    /// Reads the upstream's answer; `Ok(false)` when nothing more can be
    /// read now.
    fn read_upstream(&mut self, core: &mut Core) -> Result<bool, Closed> {
        let Some(t) = self.target.as_mut() else { return Err(Closed::Eof) };
        if !t.readable {
            return Ok(false);
        }
        match self.down.read_from(&mut t.sock, &mut core.pool) {
            Ok((0, _)) => {
                self.upstream_failed("closed the connection", Reply::GeneralFailure, core)?;
                return Ok(false);
            }
            Ok((n, room)) if n < room && !t.read_closed => t.readable = false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => t.readable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                self.upstream_failed(&format!("read: {e}"), Reply::GeneralFailure, core)?;
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The upstream answered the CONNECT with `reply`.
    fn chained(&mut self, reply: Reply, core: &mut Core) -> Flow {
        let State::Chaining(c) = &self.state else { return Ok(()) };
        let proto = c.proto;
        if reply != Reply::Succeeded {
            return self.upstream_failed(&format!("refused (0x{:02x})", reply as u8), reply, core);
        }
        let local = self.target.as_ref().and_then(|t| t.sock.local_addr().ok()).unwrap_or(socks5::UNSPECIFIED);
        debug!("#{} {} through {}", self.id, self.peer, self.upstream(core));
        self.reply(proto, Reply::Succeeded, local)?;
        self.enter_relay(core)
    }

    /// The upstream failed the request: say which, and refuse with `reply`.
    fn upstream_failed(&mut self, what: &str, reply: Reply, core: &mut Core) -> Flow {
        let State::Chaining(c) = &self.state else { return Ok(()) };
        let proto = c.proto;
        if !core.shared.cfg.log_connections && core.limit.allow(core.now) {
            let dest = match &c.via.dest {
                Target::Ip(a) => a.to_string(),
                Target::Name(n, p) => format!("{}:{p}", Escaped(n.as_bytes())),
            };
            info!("#{} {} upstream {} {what} for {dest}", self.id, self.peer, self.upstream(core));
        }
        self.refuse(proto, Closed::Refused(reply), core)
    }

    /// The chain's deadline passed.
    pub(super) fn chain_timeout(&mut self, core: &mut Core) -> Flow {
        let State::Chaining(c) = &self.state else { return Ok(()) };
        let proto = c.proto;
        self.refuse(proto, Closed::Timeout(Wait::Connect), core)
    }
}

fn map<T, U>(p: Parsed<T>, f: impl FnOnce(T) -> U) -> Parsed<U> {
    match p {
        Parsed::Incomplete => Parsed::Incomplete,
        Parsed::Done(v, n) => Parsed::Done(f(v), n),
    }
}
