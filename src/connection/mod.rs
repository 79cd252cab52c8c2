//! One client connection: an explicit state machine driven by readiness
//! events, resolver answers and timers.
//!
//! ```text
//! Greeting ─┬─> (SOCKS5) Auth? ─> Request ─┬─> Resolving? ─> Connecting ─> Relaying
//!           └─> (SOCKS4/4a) ───────────────┤                  │ (next address)
//!                                           ├─> Resolving? ─> BindWaiting ─> Relaying
//!                                           └─> Udp (SOCKS5)
//! any failure ─> Closing (reply queued, write side shut, input drained)
//! ```
//!
//! The decisions are made by the pure [`crate::handshake::decide`]; the
//! files here do the I/O. This one holds the connection, its states, the
//! dispatch of events and timers, and the relay; the others each one path:
//! `negotiate` (handshake bytes in, answers out), `closing` (control bytes,
//! replies, linger), `connect`, `bind` and `udp` (the association's control
//! side). Every state change goes through [`Conn::enter`], which traces it.

mod bind;
mod chain;
mod closed;
mod closing;
mod connect;
#[cfg(feature = "gssapi")]
mod gss;
mod moving;
mod negotiate;
mod proxied;
mod race;
mod record;
mod relaying;
mod udp;

pub(crate) use closed::{Closed, End, Flow, Wait};

use crate::clients::Slot;
use crate::core::Core;
use crate::fds::Fds;
use crate::handshake::Proto;
use crate::relay::{Half, Side};
use crate::token::Role;
use crate::udp::Assoc;
use bind::Targets;
use closing::Ctl;
use connect::Connecting;
use log::trace;
use mio::event::Event;
use mio::Registry;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Instant;

/// What a request asks of the server besides a UDP association.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Command {
    Connect,
    Bind,
}

impl Command {
    pub(super) fn verb(self) -> &'static str {
        match self {
            Command::Connect => "connect",
            Command::Bind => "bind",
        }
    }
}

enum State {
    /// `--proxy-protocol`: the balancer's header, naming the client.
    Proxied,
    /// First bytes: a SOCKS5 greeting or a SOCKS4/4a request.
    Greeting,
    /// RFC 1929 username/password sub-negotiation.
    Auth,
    /// GSS-API (RFC 1961): context tokens, then the protection level.
    #[cfg(feature = "gssapi")]
    Gss(Box<gss::Session>),
    /// SOCKS5 request.
    Request,
    /// Waiting for the resolver pool (for the peer a BIND expects).
    Resolving(Proto),
    /// CONNECT: the target's addresses are looked up and raced (Happy
    /// Eyeballs), non-blocking connects under way.
    Connecting(Box<Connecting>),
    /// CONNECT through an upstream proxy (`--upstream`): connected to it,
    /// asking it for the destination.
    Chaining(Box<chain::Chain>),
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
    /// into a reset that destroys the reply. Then closed for this reason.
    Closing(Closed),
}

impl State {
    fn name(&self) -> &'static str {
        match self {
            State::Proxied => "ProxyHeader",
            State::Greeting => "Greeting",
            State::Auth => "Auth",
            #[cfg(feature = "gssapi")]
            State::Gss(_) => "Gss",
            State::Request => "Request",
            State::Resolving(_) => "Resolving",
            State::Connecting(_) => "Connecting",
            State::Chaining(_) => "Chaining",
            State::Relaying => "Relaying",
            State::BindWaiting { .. } => "BindWaiting",
            State::Udp(_) => "Udp",
            State::Closing(_) => "Closing",
        }
    }

    /// Waiting for something other than the client: the client's end must
    /// be watched for (see [`Conn::client_gone`]).
    fn waiting(&self) -> bool {
        matches!(self, State::Resolving(_) | State::Connecting(_) | State::Chaining(_) | State::BindWaiting { .. })
    }
}

pub(crate) struct Conn {
    key: usize,
    id: u64,
    peer: SocketAddr,
    /// This client's place under `--max-conns-per-ip`.
    _slot: Option<Slot>,
    client: Side,
    target: Option<Side>,
    state: State,
    /// The name of the state last entered through [`Conn::enter`], for the
    /// trace (a state taken out to be rebuilt still shows as it was).
    shown: &'static str,
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
    /// The last relay turn ran out of budget (see `moving.rs`).
    bulk: bool,
    /// When a relay turn last ran out of budget.
    last_bulk: Instant,
    /// On a lane, no bulk turn for a while: hand back (see `moving.rs`).
    back: bool,
    /// The user's name while moving between threads: the record's user
    /// slot indexes the counters of the thread it is on.
    moving_user: Option<Box<[u8]>>,
    /// What the connection log and the counters report (see record.rs).
    rec: record::Record,
    /// A GSS-API context with per-message protection (RFC 1961 §5).
    #[cfg(feature = "gssapi")]
    sealed: Option<Box<crate::gss::sealed::Sealed>>,
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
            shown: State::Greeting.name(),
            up: Half::default(),
            down: Half::default(),
            ctl: Ctl::default(),
            deadline: None,
            timer_at: None,
            last_active: core.now,
            queued: false,
            bulk: false,
            last_bulk: core.now,
            back: false,
            moving_user: None,
            rec: record::Record::new(core.now),
            #[cfg(feature = "gssapi")]
            sealed: None,
        };
        trace!("#{} {} accepted: Greeting", id, peer);
        c.set_deadline(core.now + core.shared.cfg.handshake_timeout, core);
        c
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The one way into a new state, so that `-vv` shows every change.
    fn enter(&mut self, next: State) {
        trace!("#{} {} {} -> {}", self.id, self.peer, self.shown, next.name());
        self.shown = next.name();
        self.state = next;
    }

    /// Gives the relay buffers back and takes a lookup nobody waits for
    /// out of the resolver's queue; the sockets close when dropped.
    pub fn release(&mut self, core: &mut Core) {
        let resolving = match &self.state {
            State::Resolving(_) => true,
            State::Connecting(c) => c.race.awaiting(),
            State::Udp(a) => a.resolving(),
            _ => false,
        };
        if resolving {
            let client = core.client_key(self.peer.ip());
            core.shared.resolver.cancel(client, core.index, self.key, self.id);
        }
        #[cfg(feature = "gssapi")]
        if matches!(&self.state, State::Gss(s) if s.stepping()) {
            let client = core.client_key(self.peer.ip());
            if let Some(w) = core.shared.gss.as_ref() {
                w.cancel(client, core.index, self.key, self.id);
            }
        }
        self.up.release(&mut core.pool, core.pipes.as_mut());
        self.down.release(&mut core.pool, core.pipes.as_mut());
    }

    pub fn on_event(&mut self, role: Role, ev: &Event, core: &mut Core, reg: &Registry) -> Flow {
        match role {
            Role::Client => {
                self.client.mark(ev);
                if self.state.waiting() && self.client_gone(ev) {
                    return Err(Closed::ClientGone);
                }
            }
            Role::Target => {
                let Some(t) = self.target.as_mut() else {
                    return Ok(());
                };
                t.mark(ev);
            }
            Role::Attempt(i) => return self.attempt_event(i, ev, core, reg),
            Role::Listener => {
                if matches!(self.state, State::BindWaiting { .. }) {
                    return self.accept_peer(core, reg);
                }
                return Ok(());
            }
            Role::UdpRelay | Role::UdpOut4 | Role::UdpOut6 => {
                if let State::Udp(a) = &mut self.state {
                    a.mark(role);
                }
            }
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
            State::Proxied => self.proxy_header(core, reg),
            State::Greeting | State::Auth | State::Request => self.handshake(core, reg),
            #[cfg(feature = "gssapi")]
            State::Gss(_) => self.gss(core, reg),
            State::Resolving(_) | State::Connecting(_) | State::BindWaiting { .. } => self.flush_ctl(),
            State::Chaining(_) => self.chain(core),
            State::Relaying => self.relay(core),
            State::Udp(_) => self.udp(core, reg),
            State::Closing(why) => self.linger(why, core),
        }
    }

    /// Asks the reactor to call [`Conn::resume`] next round.
    fn queue(&mut self, core: &mut Core) {
        if !self.queued {
            self.queued = true;
            core.ready.push((self.key, self.id));
        }
    }

    /// A timer entry came due. Only the entry this connection relies on
    /// counts; when the deadline has moved on, the entry is re-armed.
    pub fn on_timer(&mut self, at: Instant, core: &mut Core, reg: &Registry) -> Flow {
        if self.timer_at != Some(at) {
            return Ok(());
        }
        self.timer_at = None;
        if core.lane.is_some() && matches!(self.state, State::Relaying) {
            return self.lane_timer(core);
        }
        if matches!(self.state, State::Connecting(_)) {
            // The race keeps its own clock: delays and its deadline.
            return self.race(core, reg);
        }
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
            State::Proxied | State::Greeting | State::Auth | State::Request => Err(Closed::Timeout(Wait::Handshake)),
            #[cfg(feature = "gssapi")]
            State::Gss(_) => Err(Closed::Timeout(Wait::Handshake)),
            State::Resolving(proto) => self.refuse(proto, Closed::Timeout(Wait::Resolve), core),
            State::BindWaiting { proto, .. } => self.refuse(proto, Closed::Timeout(Wait::BindPeer), core),
            State::Connecting(_) => self.race(core, reg),
            State::Chaining(_) => self.chain_timeout(core),
            State::Relaying | State::Udp(_) => Err(Closed::Timeout(Wait::Idle)),
            State::Closing(why) => Err(why),
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
