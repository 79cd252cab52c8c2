//! UDP ASSOCIATE's control side (RFC 1928 §7): open the association, reply
//! with its relay address, then keep it while the control connection
//! lives. The datagrams themselves are [`crate::udp`]'s.

use super::{Conn, Flow, State};
use crate::core::Core;
use crate::handshake::Proto;
use crate::reply::Reply;
use crate::socks5;
use crate::udp::Assoc;
use log::{debug, info};
use mio::Registry;
use std::net::SocketAddr;

impl Conn {
    /// The relay socket goes on the address the client reached us on, so
    /// BND is an address it can reach (or `--udp-advertise` behind NAT).
    pub(super) fn start_udp(&mut self, expect: Option<SocketAddr>, core: &mut Core, reg: &Registry) -> Flow {
        self.rec.cmd = Some("udp");
        let local = match self.client.sock.local_addr() {
            Ok(a) => a.ip().to_canonical(),
            Err(_) => return self.fail(Proto::V5, Reply::GeneralFailure, core),
        };
        let client_key = core.client_key(self.peer.ip());
        let opened = Assoc::open(local, self.peer.ip().to_canonical(), client_key, expect, &core.shared)
            .and_then(|mut a| a.register(self.key, reg).map(|()| a));
        let a = match opened {
            Ok(a) => a,
            Err(e) => {
                info!("#{} {} udp associate: {}", self.id, self.peer, e);
                return self.fail(Proto::V5, Reply::GeneralFailure, core);
            }
        };
        let relay = a.relay_addr().unwrap_or(socks5::UNSPECIFIED);
        let bnd = SocketAddr::new(core.shared.cfg.udp_advertise.unwrap_or(relay.ip()), relay.port());
        self.rec.addr = Some(bnd);
        debug!("#{} {} udp associate on {}", self.id, self.peer, relay);
        self.reply(Proto::V5, Reply::Succeeded, bnd)?;
        self.enter(State::Udp(Box::new(a)));
        self.start_idle_clock(core);
        self.udp(core, reg)
    }

    /// Relays datagrams, and watches the control connection, whose end (EOF
    /// or error) ends the association. Bytes the client sends on it mean
    /// nothing and are discarded.
    pub(super) fn udp(&mut self, core: &mut Core, reg: &Registry) -> Flow {
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
}
