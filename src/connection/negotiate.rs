//! The handshake's I/O: read until [`decide`] can say something, send its
//! answers, and start what the request asks for (resolving a name first
//! when it gives one).

use super::bind::Targets;
use super::connect::Connecting;
use super::race::Race;
use super::{Closed, Command, Conn, End, Flow, State};
use crate::core::Core;
use crate::escape::Escaped;
use crate::handshake::{decide, Next, Phase, Policy, Proto, Step, Target};
use crate::parse::Parsed;
use crate::resolver::{Answer, Job, Refused};
use crate::socks5;
use log::{debug, info};
use mio::Registry;
use std::io::ErrorKind;

impl Conn {
    fn phase(&self) -> Option<Phase> {
        match self.state {
            State::Greeting => Some(Phase::Greeting),
            State::Auth => Some(Phase::Auth),
            State::Request => Some(Phase::Request),
            _ => None,
        }
    }

    pub(super) fn handshake(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        while let Some(phase) = self.phase() {
            // The user an --auth-once address logged in as.
            let mut known: Option<Box<[u8]>>;
            let step = {
                let users = core.shared.users();
                let cfg = &core.shared.cfg;
                known = (cfg.auth_once && phase == Phase::Greeting)
                    .then(|| core.shared.auth_once_user(self.peer.ip()))
                    .flatten();
                let trusted = known.is_some();
                #[cfg(feature = "gssapi")]
                let gssapi = cfg.gssapi.is_some();
                #[cfg(not(feature = "gssapi"))]
                let gssapi = false;
                let policy = Policy {
                    users: &users,
                    socks4: !cfg.no_socks4,
                    bind: !cfg.no_bind,
                    udp: !cfg.no_udp,
                    trusted,
                    gssapi,
                };
                #[cfg(feature = "gssapi")]
                let buf = self.request_bytes()?;
                #[cfg(not(feature = "gssapi"))]
                let buf = self.up.pending();
                decide(phase, buf, &policy)
            };
            match step {
                Step::NeedMore => {
                    if !self.read_handshake(core)? {
                        break;
                    }
                }
                Step::Drop => return Err(Closed::NotSocks),
                Step::Answer { used, bytes, next } => {
                    self.rec.proto = Some("5");
                    if phase == Phase::Greeting && bytes[1] == socks5::method::NO_AUTH {
                        // Let in by --auth-once: that address's user.
                        if let Some(user) = known.take() {
                            self.rec.user = core.stats.user_slot(&user);
                        }
                    }
                    if phase == Phase::Auth && next == Next::Request {
                        if let Ok(Parsed::Done(c, _)) = socks5::parse_auth(self.up.pending()) {
                            if core.shared.cfg.auth_once {
                                core.shared.auth_once_remember(self.peer.ip(), c.user);
                            }
                            self.rec.user = core.stats.user_slot(c.user);
                        }
                    }
                    if phase == Phase::Auth && next == Next::Close {
                        if let Ok(Parsed::Done(c, _)) = socks5::parse_auth(self.up.pending()) {
                            if core.shared.cfg.log_connections {
                                // One event, one line: the connection's.
                                self.rec.tried = Some(c.user.into());
                            } else if core.limit.allow(core.now) {
                                info!("#{} {} authentication failed for user {}", self.id, self.peer, Escaped(c.user));
                            }
                        }
                    }
                    self.up.consume(used);
                    self.ctl.push(&bytes)?;
                    match next {
                        Next::Auth => self.enter(State::Auth),
                        #[cfg(feature = "gssapi")]
                        Next::Gss => {
                            self.enter(State::Gss(super::gss::Session::new()));
                            return self.gss(core, reg);
                        }
                        #[cfg(not(feature = "gssapi"))]
                        Next::Gss => return Err(Closed::NoMethod),
                        Next::Request => self.enter(State::Request),
                        Next::Close => {
                            let why = if phase == Phase::Auth { Closed::AuthFailed } else { Closed::NoMethod };
                            return self.enter_closing(why, core);
                        }
                    }
                }
                Step::Fail(proto, reply) => {
                    // What was asked, for the connection log, though refused.
                    self.note_proto(phase, proto);
                    if let Some((cmd, target, _)) = crate::handshake::asked(phase, self.up.pending()) {
                        self.rec.cmd = Some(cmd);
                        if core.shared.cfg.log_connections {
                            self.rec.dest = Some(target);
                        }
                    }
                    return self.fail(proto, reply, core);
                }
                Step::Connect { used, proto, target } => {
                    self.note_proto(phase, proto);
                    self.take_request(used);
                    self.up.release_if_empty(&mut core.pool);
                    return self.start(proto, target, Command::Connect, core, reg);
                }
                Step::Bind { used, proto, expect } => {
                    self.note_proto(phase, proto);
                    self.take_request(used);
                    self.up.release_if_empty(&mut core.pool);
                    return self.start(proto, expect, Command::Bind, core, reg);
                }
                // RFC 1961 §5 would need every datagram wrapped: not offered.
                #[cfg(feature = "gssapi")]
                Step::Udp { .. } if self.sealed.is_some() => {
                    return self.fail(Proto::V5, crate::reply::Reply::CommandNotSupported, core)
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

    /// The protocol the client spoke, as the connection log names it.
    fn note_proto(&mut self, phase: Phase, proto: Proto) {
        let socks4a = || crate::handshake::asked(phase, self.up.pending()).is_some_and(|(_, _, a)| a);
        self.rec.proto = Some(match proto {
            Proto::V5 => "5",
            Proto::V4 if socks4a() => "4a",
            Proto::V4 => "4",
        });
    }

    /// Reads more handshake bytes; `Ok(false)` when none can be read now.
    pub(super) fn read_handshake(&mut self, core: &mut Core) -> Result<bool, Closed> {
        if self.up.eof {
            return Err(Closed::Handshake);
        }
        if !self.client.readable {
            self.up.release_if_empty(&mut core.pool);
            return Ok(false);
        }
        match self.up.read_from(&mut self.client.sock, &mut core.pool) {
            Ok((0, _)) => self.up.eof = true,
            // Short read: the queue is drained, unless an EOF is pending
            // behind it (see relay.rs).
            Ok((n, room)) if n < room && !self.client.read_closed => self.client.readable = false,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.readable = false,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(Closed::Io(End::Client, e.kind())),
        }
        Ok(true)
    }

    /// The request parser took `used` bytes.
    fn take_request(&mut self, used: usize) {
        #[cfg(feature = "gssapi")]
        self.consume_request(used);
        #[cfg(not(feature = "gssapi"))]
        self.up.consume(used);
    }

    /// CONNECT to `target`, or BIND and wait for a peer from `target`;
    /// names are resolved first either way.
    fn start(&mut self, proto: Proto, target: Target, cmd: Command, core: &mut Core, reg: &Registry) -> Flow {
        let until = core.now + core.shared.cfg.connect_timeout;
        self.rec.cmd = Some(cmd.verb());
        if core.shared.cfg.log_connections {
            self.rec.dest = Some(target.clone());
        }
        if cmd == Command::Connect && !core.shared.cfg.routes.rules.is_empty() {
            if let Some(flow) = self.route(proto, &target, until, core, reg) {
                return flow;
            }
        }
        match target {
            Target::Ip(sa) => {
                debug!("#{} {} {} {}", self.id, self.peer, cmd.verb(), sa);
                match cmd {
                    Command::Bind => self.open_bind(proto, Targets::One(sa), core, reg),
                    Command::Connect => {
                        self.enter(State::Connecting(Connecting::new(proto, Race::for_addr(sa, until))));
                        self.race(core, reg)
                    }
                }
            }
            Target::Name(name, port) => {
                debug!("#{} {} {} {}:{}", self.id, self.peer, cmd.verb(), Escaped(name.as_bytes()), port);
                let client = core.client_key(self.peer.ip());
                let race = cmd == Command::Connect;
                let job = Job { name, port, reactor: core.index, key: self.key, id: self.id, client, race };
                if let Err(Refused(reply)) = core.shared.resolver.submit(job, core.now) {
                    return self.fail(proto, reply, core);
                }
                if race {
                    self.enter(State::Connecting(Connecting::new(proto, Race::for_name(until))));
                    return self.race(core, reg);
                }
                self.enter(State::Resolving(proto));
                self.set_deadline(until, core);
                self.flush_ctl()
            }
        }
    }

    /// The resolver answered one of this connection's lookups.
    pub fn on_resolved(&mut self, answer: Answer, core: &mut Core, reg: &Registry) -> Flow {
        match self.state {
            State::Connecting(_) => self.race_answer(answer, core, reg),
            State::Resolving(proto) => match answer.result {
                Ok(addrs) => self.open_bind(proto, Targets::Many(addrs), core, reg),
                Err(reply) => self.fail(proto, reply, core),
            },
            State::Udp(ref mut a) => {
                a.on_resolved(answer.result, self.key, core, reg);
                Ok(())
            }
            _ => Ok(()),
        }
    }
}
