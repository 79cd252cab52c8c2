//! One client connection: an explicit state machine driven by readiness
//! events, resolver answers and timers.
//!
//! ```text
//! Greeting ─┬─> (SOCKS5) Auth? ─> Request ─┬─> Resolving ─> Connecting ─> Relaying
//!           └─> (SOCKS4/4a) ───────────────┤                  │ (next address)
//!                                           ├─> [Resolving] ─> BindWaiting ─> Relaying
//!                                           └─> UdpAssociated (SOCKS5)
//! any failure ─> Closing (reply queued, write side shut, input drained)
//! ```
//!
//! Parsing is done by the pure functions in [`crate::socks4`] and
//! [`crate::socks5`]; [`decide`] turns a parsed message into an owned
//! [`Step`], and the methods here do the I/O.

use crate::auth;
use crate::clients::Slot;
use crate::escape::Escaped;
use crate::fds::{self, Fds};
use crate::outbound;
use crate::parse::{Addr, Parsed};
use crate::reactor::Core;
use crate::relay::{Half, Side};
use crate::reply::{Reply, Reply4};
use crate::resolver::{Job, Refused};
use crate::socks4;
use crate::socks5::{self, method};
use crate::udp::{self, Assoc};
use log::{debug, info};
use mio::event::Event;
use mio::{Interest, Registry, Token};
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Token roles: each socket of a connection has its own token,
/// `key << ROLE_BITS | role`. The UDP roles are in [`crate::udp`].
pub const ROLE_BITS: usize = 3;
pub const CLIENT: usize = 0;
/// The CONNECT target, or the peer a BIND accepted.
pub const TARGET: usize = 1;
/// The BIND listener.
pub const LISTENER: usize = 2;

pub fn token(key: usize, role: usize) -> Token {
    Token(key << ROLE_BITS | role)
}

/// How long a failed connection may take to read its reply before it is
/// closed, and how much of the client's input is discarded meanwhile.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_DISCARD: usize = 64 * 1024;
/// Shortest slice of the connect timeout given to one address of several.
const MIN_ATTEMPT: Duration = Duration::from_millis(250);

/// The connection is finished and should be removed.
#[derive(Debug)]
pub struct Closed;
pub type Flow = Result<(), Closed>;

/// The protocol the client spoke, which decides the shape of its replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    V4,
    V5,
}

/// The destination of a CONNECT, owned (the handshake buffer is reused).
#[derive(Debug, PartialEq, Eq)]
pub enum Target {
    Ip(SocketAddr),
    Name(Box<str>, u16),
}

/// Addresses to try in turn.
pub enum Targets {
    One(SocketAddr),
    Many(Vec<SocketAddr>),
}

impl Targets {
    fn get(&self, i: usize) -> Option<SocketAddr> {
        match self {
            Targets::One(a) => (i == 0).then_some(*a),
            Targets::Many(v) => v.get(i).copied(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Targets::One(_) => 1,
            Targets::Many(v) => v.len(),
        }
    }
}

enum State {
    /// First bytes: a SOCKS5 greeting or a SOCKS4/4a request.
    Greeting,
    /// RFC 1929 username/password sub-negotiation.
    Auth,
    /// SOCKS5 request.
    Request,
    /// Waiting for the resolver pool (for a CONNECT target, or for the
    /// peer a BIND expects).
    Resolving {
        proto: Proto,
        bind: bool,
    },
    /// A non-blocking connect to `targets[next - 1]` is under way.
    Connecting {
        proto: Proto,
        targets: Targets,
        next: usize,
        until: Instant,
    },
    Relaying,
    /// BIND: listening for the one peer; the first reply is sent.
    BindWaiting {
        proto: Proto,
        listener: mio::net::TcpListener,
        _budget: Fds,
        expect: Targets,
    },
    /// UDP ASSOCIATE: datagrams relayed while the control connection lives.
    Udp(Box<Assoc>),
    /// A failure reply is queued; the write side is shut once it is sent,
    /// and input is discarded until EOF so that the close does not turn
    /// into a reset that destroys the reply.
    Closing,
}

/// What the handshake bytes at the front of the buffer ask for.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    NeedMore,
    /// Not SOCKS, or not answerable: close without a word.
    Drop,
    /// Consume `used` bytes, send `bytes`, go on in `next`.
    Answer {
        used: usize,
        bytes: [u8; 2],
        next: Next,
    },
    /// Refuse the request with this reply, then close.
    Fail(Proto, Reply),
    /// Consume `used` bytes and connect.
    Connect {
        used: usize,
        proto: Proto,
        target: Target,
    },
    /// Consume `used` bytes and listen for a peer from `expect`.
    Bind {
        used: usize,
        proto: Proto,
        expect: Target,
    },
    /// Consume `used` bytes and open a UDP association; `expect` is the
    /// client's own idea of its UDP source, if it gave an IP.
    Udp {
        used: usize,
        expect: Option<SocketAddr>,
    },
}

/// Where an [`Step::Answer`] leads.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Next {
    Auth,
    Request,
    Close,
}

/// The part of the configuration the handshake decisions depend on.
pub struct Policy<'a> {
    pub users: &'a [auth::User],
    pub socks4: bool,
    pub bind: bool,
    pub udp: bool,
    /// This client's IP authenticated before and `--auth-once` is on.
    pub trusted: bool,
}

/// Decides the next handshake step from the buffered bytes. Pure: no I/O,
/// so the whole handshake logic is testable without sockets.
pub fn decide(phase: Phase, buf: &[u8], policy: &Policy<'_>) -> Step {
    match phase {
        Phase::Greeting => match buf.first() {
            None => Step::NeedMore,
            Some(&socks5::VERSION) => greeting(buf, policy),
            Some(&socks4::VERSION) => socks4_request(buf, policy),
            Some(_) => Step::Drop,
        },
        Phase::Auth => match socks5::parse_auth(buf) {
            Ok(Parsed::Incomplete) => Step::NeedMore,
            Ok(Parsed::Done(c, used)) => {
                let ok = auth::verify(policy.users, c.user, c.pass);
                let next = if ok { Next::Request } else { Next::Close };
                Step::Answer { used, bytes: socks5::encode_auth_reply(ok), next }
            }
            // RFC 1929 §2: any failure status, then close.
            Err(_) => Step::Answer { used: 0, bytes: socks5::encode_auth_reply(false), next: Next::Close },
        },
        Phase::Request => match socks5::parse_request(buf) {
            Ok(Parsed::Incomplete) => Step::NeedMore,
            Err(e) => Step::Fail(Proto::V5, e.reply()),
            Ok(Parsed::Done(req, used)) => match req.cmd {
                socks5::Command::Connect => connect_step(Proto::V5, used, req.dst),
                socks5::Command::Bind if policy.bind => bind_step(Proto::V5, used, req.dst),
                socks5::Command::UdpAssociate if policy.udp => {
                    let expect = match req.dst {
                        Addr::Ip(sa) => Some(sa),
                        Addr::Domain(..) => None,
                    };
                    Step::Udp { used, expect }
                }
                _ => Step::Fail(Proto::V5, Reply::CommandNotSupported),
            },
        },
    }
}

/// The handshake phases [`decide`] handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Greeting,
    Auth,
    Request,
}

/// RFC 1928 §3: with users configured only username/password (0x02) is
/// acceptable, otherwise only no-auth (0x00); else 0xFF.
fn greeting(buf: &[u8], policy: &Policy<'_>) -> Step {
    match socks5::parse_greeting(buf) {
        Ok(Parsed::Incomplete) => Step::NeedMore,
        Err(_) => Step::Drop,
        Ok(Parsed::Done(g, used)) => {
            let (m, next) = if !policy.users.is_empty() {
                if policy.trusted && g.offers(method::NO_AUTH) {
                    (method::NO_AUTH, Next::Request)
                } else if g.offers(method::USER_PASS) {
                    (method::USER_PASS, Next::Auth)
                } else {
                    (method::NO_ACCEPTABLE, Next::Close)
                }
            } else if g.offers(method::NO_AUTH) {
                (method::NO_AUTH, Next::Request)
            } else {
                (method::NO_ACCEPTABLE, Next::Close)
            };
            Step::Answer { used, bytes: [socks5::VERSION, m], next }
        }
    }
}

fn socks4_request(buf: &[u8], policy: &Policy<'_>) -> Step {
    // SOCKS4 has no password: with users configured it would bypass them.
    if !policy.socks4 || !policy.users.is_empty() {
        return Step::Fail(Proto::V4, Reply::NotAllowed);
    }
    match socks4::parse_request(buf) {
        Ok(Parsed::Incomplete) => Step::NeedMore,
        Err(_) => Step::Fail(Proto::V4, Reply::GeneralFailure),
        Ok(Parsed::Done(req, used)) => match req.cmd {
            socks4::Command::Connect => connect_step(Proto::V4, used, req.dst),
            socks4::Command::Bind if policy.bind => bind_step(Proto::V4, used, req.dst),
            socks4::Command::Bind => Step::Fail(Proto::V4, Reply::CommandNotSupported),
        },
    }
}

fn connect_step(proto: Proto, used: usize, dst: Addr<'_>) -> Step {
    match owned_target(dst) {
        Some(target) => Step::Connect { used, proto, target },
        None => Step::Fail(proto, Reply::HostUnreachable),
    }
}

fn bind_step(proto: Proto, used: usize, dst: Addr<'_>) -> Step {
    match owned_target(dst) {
        Some(expect) => Step::Bind { used, proto, expect },
        None => Step::Fail(proto, Reply::HostUnreachable),
    }
}

/// A domain that is an IP literal is used as is; anything else goes to the
/// resolver, provided it could be a host name at all.
fn owned_target(dst: Addr<'_>) -> Option<Target> {
    Some(match dst {
        Addr::Ip(sa) => Target::Ip(sa),
        Addr::Domain(name, port) => match std::str::from_utf8(name) {
            Ok(s) if !s.contains('\0') => match s.parse::<IpAddr>() {
                Ok(ip) => Target::Ip(SocketAddr::new(ip, port)),
                Err(_) => Target::Name(s.into(), port),
            },
            _ => return None,
        },
    })
}

/// Control bytes (method, auth status, replies) waiting to reach the client
/// ahead of relayed data. The longest sequence is 2 + 2 + 22 bytes.
#[derive(Default)]
struct Ctl {
    buf: [u8; 32],
    start: usize,
    end: usize,
}

impl Ctl {
    fn push(&mut self, bytes: &[u8]) -> Flow {
        if self.end + bytes.len() > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let dst = self.buf.get_mut(self.end..self.end + bytes.len()).ok_or(Closed)?;
        dst.copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    fn is_empty(&self) -> bool {
        self.start == self.end
    }
}

pub struct Conn {
    key: usize,
    id: u64,
    peer: SocketAddr,
    /// This client's place under `--max-conns-per-ip`.
    _slot: Option<Slot>,
    client: Side,
    target: Option<Side>,
    state: State,
    /// Client to target. During the handshake its buffer holds the
    /// handshake bytes, so anything pipelined after the request is already
    /// in place to be relayed.
    up: Half,
    /// Target to client.
    down: Half,
    ctl: Ctl,
    /// Deadline of the current state (handshake, connect, linger).
    deadline: Option<Instant>,
    /// The timer entry this connection relies on.
    timer_at: Option<Instant>,
    last_active: Instant,
    /// Already in the reactor's resume list.
    queued: bool,
}

impl Conn {
    pub fn new(
        key: usize,
        id: u64,
        sock: mio::net::TcpStream,
        budget: Fds,
        slot: Option<Slot>,
        peer: SocketAddr,
        core: &mut Core,
    ) -> Conn {
        let mut c = Conn {
            key,
            id,
            peer,
            _slot: slot,
            client: Side::new(sock, budget),
            target: None,
            state: State::Greeting,
            up: Half::default(),
            down: Half::default(),
            ctl: Ctl::default(),
            deadline: None,
            timer_at: None,
            last_active: core.now,
            queued: false,
        };
        c.set_deadline(core.now + core.shared.cfg.handshake_timeout, core);
        c
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    /// Gives the relay buffers back and takes a lookup nobody waits for
    /// out of the resolver's queue; the sockets close when dropped.
    pub fn release(&mut self, core: &mut Core) {
        let resolving = match &self.state {
            State::Resolving { .. } => true,
            State::Udp(a) => a.resolving(),
            _ => false,
        };
        if resolving {
            core.shared.resolver.cancel(core.index, self.key, self.id);
        }
        self.up.release(&mut core.pool, core.pipes.as_mut());
        self.down.release(&mut core.pool, core.pipes.as_mut());
    }

    pub fn on_event(&mut self, role: usize, ev: &Event, core: &mut Core, reg: &Registry) -> Flow {
        match role {
            CLIENT => {
                self.client.mark(ev);
                let waiting = matches!(
                    self.state,
                    State::Resolving { .. } | State::Connecting { .. } | State::BindWaiting { .. }
                );
                if waiting && self.client_gone(ev) {
                    return Err(Closed);
                }
            }
            TARGET => {
                let Some(t) = self.target.as_mut() else {
                    return Ok(());
                };
                t.mark(ev);
                if matches!(self.state, State::Connecting { .. }) {
                    return self.check_connect(core, reg);
                }
            }
            LISTENER => {
                if matches!(self.state, State::BindWaiting { .. }) {
                    return self.accept_peer(core, reg);
                }
                return Ok(());
            }
            udp::ROLE_RELAY | udp::ROLE_OUT4 | udp::ROLE_OUT6 => {
                if let State::Udp(a) = &mut self.state {
                    a.mark(role);
                }
            }
            _ => return Ok(()),
        }
        self.drive(core, reg)
    }

    /// While the request is resolving, connecting or waiting for a BIND
    /// peer, nothing is read from the client, so its end must be noticed
    /// here: a reset, or a FIN with nothing sent after the request, means
    /// nobody is left to answer, and the slot is freed at once. A FIN
    /// behind pipelined data is a half-close and is honoured.
    fn client_gone(&self, ev: &Event) -> bool {
        if ev.is_error() {
            return true;
        }
        if !self.client.read_closed || !self.up.is_empty() {
            return false;
        }
        let mut b = [0u8; 1];
        match self.client.sock.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted),
        }
    }

    /// Continues after the relay budget ran out.
    pub fn resume(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        self.queued = false;
        self.drive(core, reg)
    }

    fn drive(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        match self.state {
            State::Greeting | State::Auth | State::Request => self.handshake(core, reg),
            State::Resolving { .. } | State::Connecting { .. } | State::BindWaiting { .. } => self.flush_ctl(),
            State::Relaying => self.relay(core),
            State::Udp(_) => self.udp(core, reg),
            State::Closing => self.linger(core),
        }
    }

    fn phase(&self) -> Option<Phase> {
        match self.state {
            State::Greeting => Some(Phase::Greeting),
            State::Auth => Some(Phase::Auth),
            State::Request => Some(Phase::Request),
            _ => None,
        }
    }

    fn handshake(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        while let Some(phase) = self.phase() {
            let step = {
                let users = core.shared.users();
                let cfg = &core.shared.cfg;
                let trusted = cfg.auth_once && phase == Phase::Greeting && core.shared.auth_once_knows(self.peer.ip());
                let policy =
                    Policy { users: &users, socks4: !cfg.no_socks4, bind: !cfg.no_bind, udp: !cfg.no_udp, trusted };
                decide(phase, self.up.pending(), &policy)
            };
            match step {
                Step::NeedMore => {
                    if self.up.eof {
                        return Err(Closed);
                    }
                    if !self.client.readable {
                        self.up.release_if_empty(&mut core.pool);
                        break;
                    }
                    match self.up.read_from(&mut self.client.sock, &mut core.pool) {
                        Ok((0, _)) => self.up.eof = true,
                        // Short read: the queue is drained, unless an EOF is
                        // pending behind it (see relay.rs).
                        Ok((n, room)) if n < room && !self.client.read_closed => self.client.readable = false,
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.readable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(_) => return Err(Closed),
                    }
                }
                Step::Drop => return Err(Closed),
                Step::Answer { used, bytes, next } => {
                    if phase == Phase::Auth && next == Next::Request && core.shared.cfg.auth_once {
                        core.shared.auth_once_remember(self.peer.ip());
                    }
                    if phase == Phase::Auth && next == Next::Close {
                        if let Ok(Parsed::Done(c, _)) = socks5::parse_auth(self.up.pending()) {
                            info!("#{} {} authentication failed for user {}", self.id, self.peer, Escaped(c.user));
                        }
                    }
                    self.up.consume(used);
                    self.ctl.push(&bytes)?;
                    match next {
                        Next::Auth => self.state = State::Auth,
                        Next::Request => self.state = State::Request,
                        Next::Close => return self.enter_closing(core),
                    }
                }
                Step::Fail(proto, reply) => return self.fail(proto, reply, core),
                Step::Connect { used, proto, target } => {
                    self.up.consume(used);
                    self.up.release_if_empty(&mut core.pool);
                    return self.start(proto, target, false, core, reg);
                }
                Step::Bind { used, proto, expect } => {
                    self.up.consume(used);
                    self.up.release_if_empty(&mut core.pool);
                    return self.start(proto, expect, true, core, reg);
                }
                Step::Udp { used, expect } => {
                    // Nothing may follow the request on a control connection.
                    self.up.consume(used);
                    self.up.release(&mut core.pool, None);
                    return self.start_udp(expect, core, reg);
                }
            }
        }
        self.flush_ctl()
    }

    /// CONNECT to `target`, or (`bind`) listen for a peer from `target`;
    /// names are resolved first either way.
    fn start(&mut self, proto: Proto, target: Target, bind: bool, core: &mut Core, reg: &Registry) -> Flow {
        let what = if bind { "bind" } else { "connect" };
        let until = core.now + core.shared.cfg.connect_timeout;
        match target {
            Target::Ip(sa) if bind => {
                debug!("#{} {} bind, peer {}", self.id, self.peer, sa);
                self.open_bind(proto, Targets::One(sa), core, reg)
            }
            Target::Ip(sa) => {
                debug!("#{} {} connect {}", self.id, self.peer, sa);
                self.connect(proto, Targets::One(sa), 0, until, Reply::GeneralFailure, core, reg)
            }
            Target::Name(name, port) => {
                debug!("#{} {} {} {}:{}", self.id, self.peer, what, Escaped(name.as_bytes()), port);
                let client = crate::clients::client_key(self.peer.ip());
                let job = Job { name, port, reactor: core.index, key: self.key, id: self.id, client };
                if let Err(Refused(reply)) = core.shared.resolver.submit(job, core.now) {
                    return self.fail(proto, reply, core);
                }
                self.state = State::Resolving { proto, bind };
                self.set_deadline(until, core);
                self.flush_ctl()
            }
        }
    }

    pub fn on_resolved(&mut self, result: Result<Vec<SocketAddr>, Reply>, core: &mut Core, reg: &Registry) -> Flow {
        match self.state {
            State::Resolving { proto, bind: false } => match result {
                Ok(addrs) => {
                    let until = self.deadline.unwrap_or(core.now);
                    self.connect(proto, Targets::Many(addrs), 0, until, Reply::HostUnreachable, core, reg)
                }
                Err(reply) => self.fail(proto, reply, core),
            },
            State::Resolving { proto, bind: true } => match result {
                Ok(addrs) => self.open_bind(proto, Targets::Many(addrs), core, reg),
                Err(reply) => self.fail(proto, reply, core),
            },
            State::Udp(ref mut a) => {
                a.on_resolved(result, self.key, core, reg);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Starts connecting to the first address from `next` on that can be
    /// tried; each gets a share of the time left until `until`.
    #[allow(clippy::too_many_arguments)]
    fn connect(
        &mut self,
        proto: Proto,
        targets: Targets,
        mut next: usize,
        until: Instant,
        mut last: Reply,
        core: &mut Core,
        reg: &Registry,
    ) -> Flow {
        while let Some(addr) = targets.get(next) {
            next += 1;
            if !core.dest_allowed(addr) {
                debug!("#{} {}: destination denied by rules", self.id, addr);
                last = Reply::NotAllowed;
                continue;
            }
            let Some(budget) = fds::take(1) else {
                debug!("#{} connect {}: out of descriptors", self.id, addr);
                return self.fail(proto, Reply::GeneralFailure, core);
            };
            let mut sock = match outbound::connect(addr, &core.shared.source) {
                Ok(s) => s,
                Err(e) => {
                    debug!("#{} connect {}: {}", self.id, addr, e);
                    last = Reply::from_io(&e);
                    continue;
                }
            };
            if reg.register(&mut sock, token(self.key, TARGET), Interest::READABLE | Interest::WRITABLE).is_err() {
                last = Reply::GeneralFailure;
                continue;
            }
            let left = until.saturating_duration_since(core.now);
            let tries = (targets.len() + 1 - next) as u32;
            let slice = (left / tries).max(MIN_ATTEMPT).min(left);
            self.target = Some(Side::new(sock, budget));
            self.state = State::Connecting { proto, targets, next, until };
            self.set_deadline(core.now + slice, core);
            return self.flush_ctl();
        }
        self.fail(proto, last, core)
    }

    fn check_connect(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        let Some(t) = self.target.as_ref() else {
            return Ok(());
        };
        match outbound::finished(&t.sock) {
            Ok(false) => Ok(()),
            Ok(true) => self.connected(core),
            Err(e) => {
                debug!("#{} connect failed: {}", self.id, e);
                self.next_attempt(Reply::from_io(&e), core, reg)
            }
        }
    }

    /// The current attempt failed with `reply`: try the next address while
    /// time is left, else answer with `reply`.
    fn next_attempt(&mut self, reply: Reply, core: &mut Core, reg: &Registry) -> Flow {
        self.target = None;
        let State::Connecting { proto, targets, next, until } = std::mem::replace(&mut self.state, State::Closing)
        else {
            return Err(Closed);
        };
        if core.now >= until {
            return self.fail(proto, reply, core);
        }
        self.connect(proto, targets, next, until, reply, core, reg)
    }

    fn connected(&mut self, core: &mut Core) -> Flow {
        let State::Connecting { proto, .. } = self.state else {
            return Err(Closed);
        };
        let t = self.target.as_mut().ok_or(Closed)?;
        let local = t.sock.local_addr().unwrap_or(socks5::UNSPECIFIED);
        // Writable: that is how the connect completed. Readable only if an
        // event said so: anything the target sends raises its own edge.
        t.writable = true;
        debug!("#{} connected from {}", self.id, local);
        self.reply(proto, Reply::Succeeded, local)?;
        self.enter_relay(core)
    }

    fn enter_relay(&mut self, core: &mut Core) -> Flow {
        self.state = State::Relaying;
        self.start_idle_clock(core);
        self.relay(core)
    }

    /// From here on only `--idle-timeout` applies (to relays and UDP
    /// associations alike).
    fn start_idle_clock(&mut self, core: &mut Core) {
        self.deadline = None;
        self.last_active = core.now;
        if let Some(idle) = core.shared.cfg.idle_timeout {
            self.arm(core.now + idle, core);
        }
    }

    /// BIND (RFC 1928 §4; SOCKS4 likewise): listen for the one peer the
    /// client expects, and answer with the listening address.
    ///
    /// The expected peer must pass the destination rules; an unspecified
    /// address admits any peer, which is checked when it connects. The
    /// listener takes the expected peer's address family: on `--outgoing`
    /// if it has that family, else on the address the client came in on,
    /// else on an address of that family on the same interface. Never on a
    /// wildcard address, which would take peers from every interface (the
    /// WAN included): with no such address the reply is 0x03.
    fn open_bind(&mut self, proto: Proto, expect: Targets, core: &mut Core, reg: &Registry) -> Flow {
        let Some(want) = expect.get(0) else {
            return self.fail(proto, Reply::HostUnreachable, core);
        };
        if !want.ip().is_unspecified() && !(0..expect.len()).filter_map(|i| expect.get(i)).any(|a| core.dest_allowed(a))
        {
            debug!("#{} bind: expected peer {} denied by rules", self.id, want);
            return self.fail(proto, Reply::NotAllowed, core);
        }
        let v4 = want.ip().to_canonical().is_ipv4();
        let local = self.client.sock.local_addr().ok().map(|a| a.ip().to_canonical());
        let ip = match (core.shared.cfg.outgoing, local) {
            (Some(o), _) if o.is_ipv4() == v4 => Some(o),
            (_, Some(l)) if l.is_ipv4() == v4 => Some(l),
            (_, Some(l)) => crate::host::sibling_addr(l, v4),
            (_, None) => None,
        };
        let Some(ip) = ip else {
            debug!("#{} bind: no {} address to listen on near the client", self.id, if v4 { "IPv4" } else { "IPv6" });
            return self.fail(proto, Reply::NetworkUnreachable, core);
        };
        let Some(budget) = fds::take(1) else {
            return self.fail(proto, Reply::GeneralFailure, core);
        };
        let listener = match outbound::listen_once(ip, &core.shared.source) {
            Ok(mut l) => match reg.register(&mut l, token(self.key, LISTENER), Interest::READABLE) {
                Ok(()) => l,
                Err(_) => return self.fail(proto, Reply::GeneralFailure, core),
            },
            Err(e) => return self.fail(proto, Reply::from_io(&e), core),
        };
        let bnd = listener.local_addr().unwrap_or(socks5::UNSPECIFIED);
        debug!("#{} bind listening on {}", self.id, bnd);
        self.reply(proto, Reply::Succeeded, bnd)?;
        self.state = State::BindWaiting { proto, listener, _budget: budget, expect };
        self.set_deadline(core.now + core.shared.cfg.bind_timeout, core);
        self.flush_ctl()
    }

    /// The BIND listener is readable: take its one connection, check the
    /// peer, send the second reply and relay. An unspecified expected
    /// address (0.0.0.0 or ::) admits any peer.
    fn accept_peer(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        let State::BindWaiting { listener, .. } = &self.state else {
            return Ok(());
        };
        let (mut sock, peer) = match listener.accept() {
            Ok(p) => p,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == ErrorKind::Interrupted || e.kind() == ErrorKind::ConnectionAborted => {
                return Ok(());
            }
            Err(e) => {
                let State::BindWaiting { proto, .. } = self.state else { return Err(Closed) };
                return self.fail(proto, Reply::from_io(&e), core);
            }
        };
        // Dropping the listener here: it accepts exactly one connection.
        let State::BindWaiting { proto, expect, .. } = std::mem::replace(&mut self.state, State::Closing) else {
            return Err(Closed);
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let expected = (0..expect.len())
            .filter_map(|i| expect.get(i))
            .any(|e| e.ip().is_unspecified() || e.ip().to_canonical() == peer.ip());
        if !expected {
            info!("#{} bind: peer {} is not the expected host; refused", self.id, peer);
            return self.fail(proto, Reply::NotAllowed, core);
        }
        // The peer is a destination too: the same rules decide who it may be.
        if !core.dest_allowed(peer) {
            info!("#{} bind: peer {} denied by rules; refused", self.id, peer);
            return self.fail(proto, Reply::NotAllowed, core);
        }
        let Some(budget) = fds::take(1) else {
            return self.fail(proto, Reply::GeneralFailure, core);
        };
        if reg.register(&mut sock, token(self.key, TARGET), Interest::READABLE | Interest::WRITABLE).is_err() {
            return self.fail(proto, Reply::GeneralFailure, core);
        }
        let _ = sock.set_nodelay(true);
        let mut side = Side::new(sock, budget);
        side.readable = true;
        side.writable = true;
        self.target = Some(side);
        debug!("#{} bind: peer {} connected", self.id, peer);
        self.reply(proto, Reply::Succeeded, peer)?;
        self.enter_relay(core)
    }

    /// UDP ASSOCIATE (RFC 1928 §7): the relay socket goes on the address the
    /// client reached us on, so BND is an address it can reach (or
    /// `--udp-advertise` behind NAT).
    fn start_udp(&mut self, expect: Option<SocketAddr>, core: &mut Core, reg: &Registry) -> Flow {
        let local = match self.client.sock.local_addr() {
            Ok(a) => a.ip().to_canonical(),
            Err(_) => return self.fail(Proto::V5, Reply::GeneralFailure, core),
        };
        let opened = Assoc::open(local, self.peer.ip().to_canonical(), expect, &core.shared)
            .and_then(|mut a| a.register(self.key, reg).map(|()| a));
        let a = match opened {
            Ok(a) => a,
            Err(e) => {
                info!("#{} udp associate: {}", self.id, e);
                return self.fail(Proto::V5, Reply::GeneralFailure, core);
            }
        };
        let relay = a.relay_addr().unwrap_or(socks5::UNSPECIFIED);
        let bnd = SocketAddr::new(core.shared.cfg.udp_advertise.unwrap_or(relay.ip()), relay.port());
        debug!("#{} {} udp associate on {}", self.id, self.peer, relay);
        self.reply(Proto::V5, Reply::Succeeded, bnd)?;
        self.state = State::Udp(Box::new(a));
        self.start_idle_clock(core);
        self.udp(core, reg)
    }

    /// An association: relay datagrams, and watch the control connection,
    /// whose end (EOF or error) ends the association. Bytes the client
    /// sends on it mean nothing and are discarded.
    fn udp(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        self.flush_ctl()?;
        if self.discard_input(core, core.budget)? {
            self.queue(core);
        }
        let State::Udp(a) = &mut self.state else { return Ok(()) };
        let (moved, more) = a.pump(self.key, self.id, core, reg);
        if moved > 0 {
            self.last_active = core.now;
        }
        if more {
            self.queue(core);
        }
        Ok(())
    }

    fn queue(&mut self, core: &mut Core) {
        if !self.queued {
            self.queued = true;
            core.ready.push(self.key);
        }
    }

    fn reply(&mut self, proto: Proto, reply: Reply, bnd: SocketAddr) -> Flow {
        match proto {
            Proto::V5 => {
                let mut out = [0u8; socks5::MAX_REPLY];
                let n = socks5::encode_reply(reply, bnd, &mut out);
                self.ctl.push(&out[..n])
            }
            Proto::V4 => self.ctl.push(&socks4::encode_reply(Reply4::from(reply), bnd)),
        }
    }

    fn fail(&mut self, proto: Proto, reply: Reply, core: &mut Core) -> Flow {
        debug!("#{} {} refused: {:?}", self.id, self.peer, reply);
        self.reply(proto, reply, socks5::UNSPECIFIED)?;
        self.enter_closing(core)
    }

    fn enter_closing(&mut self, core: &mut Core) -> Flow {
        self.state = State::Closing;
        self.target = None;
        self.up.release(&mut core.pool, core.pipes.as_mut());
        self.set_deadline(core.now + LINGER, core);
        self.linger(core)
    }

    fn linger(&mut self, core: &mut Core) -> Flow {
        self.flush_ctl()?;
        if !self.ctl.is_empty() {
            return Ok(());
        }
        if !self.down.shut {
            self.down.shut = true;
            let _ = self.client.sock.shutdown(std::net::Shutdown::Write);
        }
        // A client that keeps sending while we wait for its EOF is closed.
        match self.discard_input(core, LINGER_MAX_DISCARD)? {
            true => Err(Closed),
            false => Ok(()),
        }
    }

    /// Reads and drops what the client sends, through the scratch buffer,
    /// until it would block. `Err` on EOF or error; `Ok(true)` when more
    /// than `limit` bytes went and the client may still have more.
    fn discard_input(&mut self, core: &mut Core, limit: usize) -> Result<bool, Closed> {
        let mut discarded = 0;
        while self.client.readable {
            match self.client.sock.read(&mut core.scratch) {
                Ok(0) => return Err(Closed),
                Ok(n) => {
                    discarded += n;
                    if discarded > limit {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Closed),
            }
        }
        Ok(false)
    }

    fn flush_ctl(&mut self) -> Flow {
        while !self.ctl.is_empty() && self.client.writable {
            match self.client.sock.write(&self.ctl.buf[self.ctl.start..self.ctl.end]) {
                Ok(0) => return Err(Closed),
                Ok(n) => {
                    self.ctl.start += n;
                    if self.ctl.is_empty() {
                        self.ctl.start = 0;
                        self.ctl.end = 0;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Err(Closed),
            }
        }
        Ok(())
    }

    fn relay(&mut self, core: &mut Core) -> Flow {
        self.flush_ctl()?;
        let t = self.target.as_mut().ok_or(Closed)?;
        let budget = core.budget;
        let up = self.up.pump(&mut self.client, t, &mut core.pool, core.pipes.as_mut(), budget).map_err(|_| Closed)?;
        let (down_bytes, down_more) = if self.ctl.is_empty() {
            let d =
                self.down.pump(t, &mut self.client, &mut core.pool, core.pipes.as_mut(), budget).map_err(|_| Closed)?;
            (d.bytes, d.more)
        } else {
            (0, false)
        };
        if up.bytes + down_bytes > 0 {
            self.last_active = core.now;
        }
        if self.up.done() && self.down.done() {
            return Err(Closed);
        }
        if up.more || down_more {
            self.queue(core);
        }
        Ok(())
    }

    /// A timer entry came due. Only the entry this connection relies on
    /// counts; when the deadline has moved on, the entry is re-armed.
    pub fn on_timer(&mut self, at: Instant, core: &mut Core, reg: &Registry) -> Flow {
        if self.timer_at != Some(at) {
            return Ok(());
        }
        self.timer_at = None;
        let due = match self.state {
            State::Relaying | State::Udp(_) => core.shared.cfg.idle_timeout.map(|d| self.last_active + d),
            _ => self.deadline,
        };
        let Some(due) = due else { return Ok(()) };
        if due > core.now {
            self.arm(due, core);
            return Ok(());
        }
        match self.state {
            State::Greeting | State::Auth | State::Request => {
                debug!("#{} {} handshake timeout", self.id, self.peer);
                Err(Closed)
            }
            State::Resolving { proto, .. } => self.fail(proto, Reply::TtlExpired, core),
            State::BindWaiting { proto, .. } => {
                debug!("#{} bind: no peer in time", self.id);
                self.fail(proto, Reply::TtlExpired, core)
            }
            State::Connecting { .. } => self.next_attempt(Reply::TtlExpired, core, reg),
            State::Relaying | State::Udp(_) => {
                debug!("#{} {} idle timeout", self.id, self.peer);
                Err(Closed)
            }
            State::Closing => Err(Closed),
        }
    }

    fn set_deadline(&mut self, at: Instant, core: &mut Core) {
        self.deadline = Some(at);
        self.arm(at, core);
    }

    /// Makes sure a timer entry fires no later than `at`.
    fn arm(&mut self, at: Instant, core: &mut Core) {
        if self.timer_at.is_none_or(|t| at < t) {
            core.timers.push(at, self.key, self.id);
            self.timer_at = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open() -> Policy<'static> {
        Policy { users: &[], socks4: true, bind: true, udp: true, trusted: false }
    }

    #[test]
    fn method_selection() {
        let p = open();
        assert_eq!(decide(Phase::Greeting, &[], &p), Step::NeedMore);
        assert_eq!(decide(Phase::Greeting, &[5, 1], &p), Step::NeedMore);
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 2, 0], &p),
            Step::Answer { used: 4, bytes: [5, 0], next: Next::Request }
        );
        assert_eq!(
            decide(Phase::Greeting, &[5, 1, 2], &p),
            Step::Answer { used: 3, bytes: [5, 0xFF], next: Next::Close }
        );
        assert_eq!(decide(Phase::Greeting, &[5, 0], &p), Step::Answer { used: 2, bytes: [5, 0xFF], next: Next::Close });
        let users = [auth::User::parse("u:p").unwrap()];
        let p = Policy { users: &users, socks4: true, bind: true, udp: true, trusted: false };
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 0, 2], &p),
            Step::Answer { used: 4, bytes: [5, 2], next: Next::Auth }
        );
        assert_eq!(
            decide(Phase::Greeting, &[5, 1, 0], &p),
            Step::Answer { used: 3, bytes: [5, 0xFF], next: Next::Close }
        );
        assert_eq!(
            decide(Phase::Auth, b"\x01\x01u\x01p", &p),
            Step::Answer { used: 5, bytes: [1, 0], next: Next::Request }
        );
        assert_eq!(
            decide(Phase::Auth, b"\x01\x01u\x01x", &p),
            Step::Answer { used: 5, bytes: [1, 1], next: Next::Close }
        );
        let t = Policy { users: &users, socks4: true, bind: true, udp: true, trusted: true };
        assert_eq!(
            decide(Phase::Greeting, &[5, 2, 0, 2], &t),
            Step::Answer { used: 4, bytes: [5, 0], next: Next::Request },
            "--auth-once: a known IP may skip the password"
        );
        // With users, SOCKS4 would bypass authentication.
        assert_eq!(decide(Phase::Greeting, &[4, 1, 0, 80], &p), Step::Fail(Proto::V4, Reply::NotAllowed));
        assert_eq!(decide(Phase::Greeting, b"GET / HTTP/1.1", &p), Step::Drop);
    }

    #[test]
    fn requests() {
        let p = open();
        let r = decide(Phase::Request, &[5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 1, 2, 3], &p);
        assert_eq!(
            r,
            Step::Connect { used: 10, proto: Proto::V5, target: Target::Ip("127.0.0.1:80".parse().unwrap()) }
        );
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x09localhost\x00\x50", &p);
        assert_eq!(r, Step::Connect { used: 16, proto: Proto::V5, target: Target::Name("localhost".into(), 80) });
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x03::1\x00\x50", &p);
        assert_eq!(r, Step::Connect { used: 10, proto: Proto::V5, target: Target::Ip("[::1]:80".parse().unwrap()) });
        let r = decide(Phase::Request, b"\x05\x01\x00\x03\x02\xff\xfe\x00\x50", &p);
        assert_eq!(r, Step::Fail(Proto::V5, Reply::HostUnreachable));
        let bind = [5, 2, 0, 1, 127, 0, 0, 1, 0, 0];
        assert_eq!(
            decide(Phase::Request, &bind, &p),
            Step::Bind { used: 10, proto: Proto::V5, expect: Target::Ip("127.0.0.1:0".parse().unwrap()) }
        );
        let udp = [5, 3, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            decide(Phase::Request, &udp, &p),
            Step::Udp { used: 10, expect: Some("0.0.0.0:0".parse().unwrap()) }
        );
        let closed = Policy { users: &[], socks4: true, bind: false, udp: false, trusted: false };
        assert_eq!(decide(Phase::Request, &bind, &closed), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &udp, &closed), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        let s4bind = [4, 2, 0, 21, 127, 0, 0, 1, 0];
        assert_eq!(decide(Phase::Greeting, &s4bind, &closed), Step::Fail(Proto::V4, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &[5, 0x7f, 0, 1], &p), Step::Fail(Proto::V5, Reply::CommandNotSupported));
        assert_eq!(decide(Phase::Request, &[5, 1, 0, 9], &p), Step::Fail(Proto::V5, Reply::AddressTypeNotSupported));
        let r = decide(Phase::Greeting, b"\x04\x01\x00\x50\x00\x00\x00\x01me\x00example.org\x00", &p);
        assert_eq!(r, Step::Connect { used: 23, proto: Proto::V4, target: Target::Name("example.org".into(), 80) });
        let p4 = Policy { users: &[], socks4: false, bind: false, udp: false, trusted: false };
        assert_eq!(decide(Phase::Greeting, &[4], &p4), Step::Fail(Proto::V4, Reply::NotAllowed));
    }
}
