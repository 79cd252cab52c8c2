//! The GSS-API method on a connection (RFC 1961): context tokens (§3)
//! handed to the worker thread and its answers sent back, the protection
//! level (§4), and for protected connections the sealed reply and relay
//! (§5). Built with the cargo feature `gssapi` only.

use super::{Closed, Conn, End, Flow, State};
use crate::core::Core;
use crate::escape::Escaped;
use crate::gss::sealed::Sealed;
use crate::gss::worker::{Done, Job, Refused};
use crate::gss::{Accepted, Context};
use crate::gss_wire::{self as wire, Level, Mtyp};
use crate::parse::Parsed;
use log::{debug, info};
use mio::Registry;
use std::io::{ErrorKind, Write};

/// Context tokens a client may send (Kerberos takes one, SPNEGO a few).
const MAX_ROUNDS: u8 = 8;

/// A GSS-API negotiation in progress.
pub(super) struct Session {
    /// `None` while the worker runs a step with it.
    ctx: Option<Box<Context>>,
    established: bool,
    rounds: u8,
    /// A message for the client (a token, or the level's answer).
    out: Vec<u8>,
    sent: usize,
    /// The agreed level, applied once `out` is sent.
    agreed: Option<Level>,
}

impl Session {
    pub(super) fn new() -> Box<Session> {
        Box::new(Session {
            ctx: Some(Box::default()),
            established: false,
            rounds: 0,
            out: Vec::new(),
            sent: 0,
            agreed: None,
        })
    }

    fn frame(&mut self, mtyp: Mtyp, token: &[u8]) -> Flow {
        if token.is_empty() || token.len() > wire::MAX_TOKEN {
            return Err(Closed::AuthFailed);
        }
        self.out.clear();
        self.out.extend_from_slice(&wire::header(mtyp, token.len()));
        self.out.extend_from_slice(token);
        self.sent = 0;
        Ok(())
    }
}

impl Session {
    /// A context step is with the worker threads (to be cancelled on close).
    pub(super) fn stepping(&self) -> bool {
        self.ctx.is_none() && !self.established
    }
}

impl Conn {
    /// Refuses with the abort message (RFC 1961 §3), then closes.
    fn gss_abort(&mut self, core: &mut Core) -> Flow {
        self.ctl.push(&wire::ABORT)?;
        self.enter_closing(Closed::AuthFailed, core)
    }

    /// Drives the negotiation: sends what is queued, reads the client's
    /// next message, and acts on it.
    pub(super) fn gss(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        self.flush_ctl()?;
        loop {
            let State::Gss(s) = &mut self.state else { return self.handshake(core, reg) };
            while s.sent < s.out.len() && self.client.writable {
                match self.client.sock.write(&s.out[s.sent..]) {
                    Ok(0) => return Err(Closed::Io(End::Client, ErrorKind::WriteZero)),
                    Ok(n) => s.sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Closed::Io(End::Client, e.kind())),
                }
            }
            if s.sent < s.out.len() || s.ctx.is_none() {
                return Ok(());
            }
            if let Some(level) = s.agreed {
                let ctx = s.ctx.take().unwrap_or_default();
                if level != Level::None {
                    let sealed = Sealed::new(ctx, level == Level::Confidentiality).map_err(|e| {
                        info!("#{} {} GSS-API: {}", self.id, self.peer, Escaped(e.as_bytes()));
                        Closed::AuthFailed
                    })?;
                    self.sealed = Some(Box::new(sealed));
                }
                debug!("#{} {} GSS-API protection: {}", self.id, self.peer, level.name());
                self.enter(State::Request);
                continue;
            }
            let want = if s.established { Mtyp::Protection } else { Mtyp::Context };
            let max = core.shared.cfg.buffer_size - wire::HEADER;
            match wire::parse(self.up.pending(), want, max) {
                Ok(Parsed::Incomplete) => {
                    if !self.read_handshake(core)? {
                        return Ok(());
                    }
                }
                Err(e) => {
                    debug!("#{} {} GSS-API message refused: {e:?}", self.id, self.peer);
                    return self.gss_abort(core);
                }
                Ok(Parsed::Done(token, used)) if !s.established => {
                    s.rounds += 1;
                    if s.rounds > MAX_ROUNDS {
                        return self.gss_abort(core);
                    }
                    let Some(ctx) = s.ctx.take() else { return Ok(()) };
                    let job = Job { reactor: core.index, key: self.key, id: self.id, ctx, token: token.into() };
                    self.up.consume(used);
                    let client = core.client_key(self.peer.ip());
                    let shared = core.shared.clone();
                    let Some(worker) = shared.gss.as_ref() else { return self.gss_abort(core) };
                    if let Err(why) = worker.submit(client, job) {
                        // Rate-limited, like every line a flood could multiply.
                        if core.limit.allow(core.now) {
                            let what = match why {
                                Refused::Client => "this client has its share of the GSS-API threads' queue",
                                Refused::Full => "the GSS-API threads' queue is full",
                            };
                            info!("#{} {} GSS-API: refused: {what}", self.id, self.peer);
                        } else {
                            core.stats.log_suppressed += 1;
                        }
                        return self.gss_abort(core);
                    }
                    return Ok(());
                }
                Ok(Parsed::Done(token, used)) => {
                    let Some(ctx) = s.ctx.as_ref() else { return Ok(()) };
                    // NEC's clients (and curl --socks5-gssapi-nec) send the
                    // octet in clear; a wrapped token is never one byte.
                    let nec = token.len() == 1;
                    let mut octet = [0u8; 64];
                    let proposed = if nec {
                        Some(token[0])
                    } else {
                        match ctx.unwrap_into(token, &mut octet) {
                            Ok((1, _)) => Some(octet[0]),
                            _ => None,
                        }
                    };
                    let Some(proposed) = proposed else { return self.gss_abort(core) };
                    let levels = core.shared.cfg.gssapi.as_ref().map(|g| g.levels).unwrap_or_default();
                    let level = levels.choose(Level::from_octet(proposed));
                    let answer = [level as u8];
                    let mut wrapped = [0u8; 256];
                    let token = if nec {
                        &answer[..]
                    } else {
                        match ctx.wrap_into(false, &answer, &mut wrapped) {
                            Ok(n) => &wrapped[..n],
                            Err(_) => return self.gss_abort(core),
                        }
                    };
                    s.frame(Mtyp::Protection, token)?;
                    s.agreed = Some(level);
                    self.up.consume(used);
                }
            }
        }
    }

    /// The worker finished a step of this connection's context.
    pub fn on_gss(&mut self, done: Done, core: &mut Core, reg: &Registry) -> Flow {
        let State::Gss(s) = &mut self.state else { return Ok(()) };
        s.ctx = Some(done.ctx);
        match done.result {
            Ok(Accepted::Continue(token)) => s.frame(Mtyp::Context, token.as_slice())?,
            Ok(Accepted::Done(last, principal)) => {
                let admitted = core.shared.cfg.gssapi.as_ref().is_some_and(|g| g.admits(&principal));
                if !admitted {
                    if core.limit.allow(core.now) {
                        info!(
                            "#{} {} GSS-API principal not allowed: {}",
                            self.id,
                            self.peer,
                            Escaped(principal.as_bytes())
                        );
                    }
                    return self.gss_abort(core);
                }
                debug!("#{} {} GSS-API authenticated {}", self.id, self.peer, Escaped(principal.as_bytes()));
                self.rec.user = core.stats.user_slot(principal.as_bytes());
                s.established = true;
                if let Some(t) = last {
                    s.frame(Mtyp::Context, t.as_slice())?;
                }
            }
            Err(e) => {
                // The library's text quotes the client's ticket (its
                // service name and realm): escaped like any client text.
                if core.limit.allow(core.now) {
                    info!("#{} {} GSS-API authentication failed: {}", self.id, self.peer, Escaped(e.as_bytes()));
                } else {
                    core.stats.log_suppressed += 1;
                }
                return self.gss_abort(core);
            }
        }
        self.gss(core, reg)
    }

    /// A protected connection's request bytes so far (unwrapped); else the
    /// handshake buffer's.
    pub(super) fn request_bytes(&mut self) -> Result<&[u8], Closed> {
        match self.sealed.as_mut() {
            Some(s) => {
                let n = s.take_raw(self.up.pending());
                self.up.consume(n);
                s.request().map_err(|e| Closed::Io(End::Client, e.kind()))
            }
            None => Ok(self.up.pending()),
        }
    }

    /// The request parser took `n` bytes.
    pub(super) fn consume_request(&mut self, n: usize) {
        match self.sealed.as_mut() {
            Some(s) => s.consume_request(n),
            None => self.up.consume(n),
        }
    }

    /// Control bytes of a protected connection: sealed as one message,
    /// and taken off `ctl` only once sent, so that "ctl is empty" still
    /// means "delivered".
    pub(super) fn flush_sealed_ctl(&mut self) -> Flow {
        let Some(s) = self.sealed.as_mut() else { return Ok(()) };
        if !self.ctl.is_empty() && !s.ctl_sealed {
            s.seal(self.ctl.pending()).map_err(|e| Closed::Io(End::Client, e.kind()))?;
            s.ctl_sealed = true;
        }
        if s.flush(&mut self.client).map_err(|e| Closed::Io(End::Client, e.kind()))? && s.ctl_sealed {
            s.ctl_sealed = false;
            self.ctl.clear();
        }
        Ok(())
    }

    /// The relay of a protected connection (RFC 1961 §5).
    pub(super) fn relay_sealed(&mut self, core: &mut Core) -> Flow {
        self.flush_ctl()?;
        let (Some(s), Some(t)) = (self.sealed.as_mut(), self.target.as_mut()) else { return Err(Closed::Eof) };
        let budget = core.budget;
        // Frames the client sent right behind its request may still be in
        // the handshake buffer (a --buffer-size above one frame holds
        // more than the frame window takes at once): they go first, as
        // the window makes room, before anything more is read.
        let mut up = crate::relay::Pumped { bytes: 0, more: false };
        loop {
            let n = s.take_raw(self.up.pending());
            self.up.consume(n);
            let hold = !self.up.is_empty();
            let p = s
                .pump_up(&mut self.client, t, budget, hold)
                .map_err(|f| super::relaying::fault(f, End::Client, End::Target))?;
            up.bytes += p.bytes;
            up.more |= p.more;
            // Done with the leftovers, or the window is full until the
            // target takes more.
            if !hold || p.bytes == 0 {
                break;
            }
        }
        self.up.release_if_empty(&mut core.pool);
        let down = if self.ctl.is_empty() {
            s.pump_down(t, &mut self.client, budget).map_err(|f| super::relaying::fault(f, End::Target, End::Client))?
        } else {
            crate::relay::Pumped { bytes: 0, more: false }
        };
        if up.bytes + down.bytes > 0 {
            self.last_active = core.now;
            self.rec.up += up.bytes as u64;
            self.rec.down += down.bytes as u64;
        }
        if s.done() {
            return Err(Closed::Eof);
        }
        if up.more || down.more {
            self.queue(core);
        }
        Ok(())
    }
}
