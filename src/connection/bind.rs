//! BIND (RFC 1928 §4; SOCKS4 likewise): listen for the one peer the client
//! expects, reply with the listening address, and reply again with the
//! peer's when it connects.

use super::{Closed, Conn, Flow, State};
use crate::core::Core;
use crate::fds;
use crate::handshake::Proto;
use crate::outbound;
use crate::relay::Side;
use crate::reply::Reply;
use crate::socks5;
use crate::token::{token, Role};
use log::{debug, info};
use mio::{Interest, Registry};
use std::io::ErrorKind;
use std::net::SocketAddr;

/// The peer a BIND expects: one address (from the request), or a name's.
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

    fn len(&self) -> usize {
        match self {
            Targets::One(_) => 1,
            Targets::Many(v) => v.len(),
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }
}

impl Conn {
    /// The expected peer must pass the destination rules; an unspecified
    /// address admits any peer, which is checked when it connects. The
    /// listener takes the expected peer's address family: on `--outgoing`
    /// if it has that family, else on the address the client came in on,
    /// else on an address of that family on the same interface. Never on a
    /// wildcard address, which would take peers from every interface (the
    /// WAN included): with no such address the reply is 0x03.
    pub(super) fn open_bind(&mut self, proto: Proto, expect: Targets, core: &mut Core, reg: &Registry) -> Flow {
        let Some(want) = expect.get(0) else {
            return self.fail(proto, Reply::HostUnreachable, core);
        };
        if !want.ip().is_unspecified() && !expect.iter().any(|a| core.dest_allowed(a)) {
            debug!("#{} {} bind: expected peer {} denied by rules", self.id, self.peer, want);
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
            debug!(
                "#{} {} bind: no {} address to listen on near the client",
                self.id,
                self.peer,
                if v4 { "IPv4" } else { "IPv6" }
            );
            return self.fail(proto, Reply::NetworkUnreachable, core);
        };
        let Some(budget) = fds::take(1) else {
            return self.fail(proto, Reply::GeneralFailure, core);
        };
        let listener = match outbound::listen_once(ip, &core.shared.source) {
            Ok(mut l) => match reg.register(&mut l, token(self.key, Role::Listener), Interest::READABLE) {
                Ok(()) => l,
                Err(_) => return self.fail(proto, Reply::GeneralFailure, core),
            },
            Err(e) => return self.fail(proto, Reply::from_io(&e), core),
        };
        let bnd = listener.local_addr().unwrap_or(socks5::UNSPECIFIED);
        debug!("#{} {} bind listening on {}", self.id, self.peer, bnd);
        self.reply(proto, Reply::Succeeded, bnd)?;
        self.enter(State::BindWaiting { proto, listener, _budget: budget, expect });
        self.set_deadline(core.now + core.shared.cfg.bind_timeout, core);
        self.flush_ctl()
    }

    /// The BIND listener is readable: take its one connection, check the
    /// peer, send the second reply and relay. An unspecified expected
    /// address (0.0.0.0 or ::) admits any peer.
    pub(super) fn accept_peer(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        let State::BindWaiting { listener, proto, .. } = &self.state else {
            return Ok(());
        };
        let proto = *proto;
        let (mut sock, peer) = match listener.accept() {
            Ok(p) => p,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::Interrupted | ErrorKind::ConnectionAborted
                ) =>
            {
                return Ok(());
            }
            Err(e) => return self.fail(proto, Reply::from_io(&e), core),
        };
        // The listener accepts exactly one connection: it is dropped here,
        // with its descriptor, before the peer's is counted. (Taken out;
        // `enter` shows the change as from BindWaiting.)
        let State::BindWaiting { expect, .. } = std::mem::replace(&mut self.state, State::Closing(Closed::Eof)) else {
            return Err(Closed::Eof);
        };
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        let expected = expect.iter().any(|e| e.ip().is_unspecified() || e.ip().to_canonical() == peer.ip());
        if !expected {
            info!("#{} {} bind: peer {} is not the expected host; refused", self.id, self.peer, peer);
            return self.fail(proto, Reply::NotAllowed, core);
        }
        // The peer is a destination too: the same rules decide who it may be.
        if !core.dest_allowed(peer) {
            info!("#{} {} bind: peer {} denied by rules; refused", self.id, self.peer, peer);
            return self.fail(proto, Reply::NotAllowed, core);
        }
        let Some(budget) = fds::take(1) else {
            return self.fail(proto, Reply::GeneralFailure, core);
        };
        if reg.register(&mut sock, token(self.key, Role::Target), Interest::READABLE | Interest::WRITABLE).is_err() {
            return self.fail(proto, Reply::GeneralFailure, core);
        }
        let _ = sock.set_nodelay(true);
        let mut side = Side::new(sock, budget);
        side.readable = true;
        side.writable = true;
        self.target = Some(side);
        self.rec.addr = Some(peer);
        debug!("#{} {} bind: peer {} connected", self.id, self.peer, peer);
        self.reply(proto, Reply::Succeeded, peer)?;
        self.enter_relay(core)
    }
}
