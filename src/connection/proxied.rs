//! Behind a load balancer (`--proxy-protocol`): the connection starts
//! with a PROXY protocol header naming the real client, and only then is
//! the client admitted, by the rules the reactor applies at accept to a
//! direct one (`--allow`, `--max-conns-per-ip`), so that every rule,
//! limit, log line and counter acts on the client, not on the balancer.

use super::{Closed, Conn, Flow, State};
use crate::core::Core;
use crate::parse::Parsed;
use crate::proxy_header::{self, Header};
use log::{debug, info};
use mio::Registry;
use std::net::SocketAddr;

/// Why a client named by a header is not served, as the counters say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unwanted {
    /// No valid header (or none at all) from the balancer.
    Header,
    /// The client is outside `--allow`.
    NotAllowed,
    /// The client holds its `--max-conns-per-ip`.
    OverPerIp,
}

impl Conn {
    /// Starts in the header state: the peer is the balancer until the
    /// header says otherwise.
    pub fn await_proxy_header(&mut self) {
        self.enter(State::Proxied);
    }

    pub(super) fn proxy_header(&mut self, core: &mut Core, reg: &Registry) -> Flow {
        let (header, used) = loop {
            match proxy_header::parse(self.up.pending()) {
                Ok(Parsed::Done(h, used)) => break (h, used),
                Ok(Parsed::Incomplete) => {
                    if !self.read_handshake(core)? {
                        return Ok(());
                    }
                }
                Err(e) => {
                    if core.limit.allow(core.now) && !core.shared.cfg.log_connections {
                        info!("#{} {}: no valid PROXY protocol header ({}); closed", self.id, self.peer, e.what());
                    }
                    return Err(Closed::Unwanted(Unwanted::Header));
                }
            }
        };
        self.up.consume(used);
        if let Header::Proxy { src, .. } = header {
            let balancer = self.peer;
            self.peer = SocketAddr::new(src.ip().to_canonical(), src.port());
            debug!("#{} {} via {balancer}", self.id, self.peer);
            match core.admit(self.peer.ip()) {
                Ok(slot) => self._slot = slot,
                Err(0) => return Err(Closed::Unwanted(Unwanted::NotAllowed)),
                Err(_) => {
                    if core.limit.allow(core.now) && !core.shared.cfg.log_connections {
                        let held = std::mem::take(&mut core.limit.held);
                        let max = core.shared.clients.max_conns();
                        info!("{}: closed: over_per_ip (it holds {max} connections, --max-conns-per-ip; {held} such lines suppressed)", self.peer);
                    }
                    return Err(Closed::Unwanted(Unwanted::OverPerIp));
                }
            }
        }
        // A LOCAL header (the balancer's health check) leaves the
        // balancer as the peer: it may speak SOCKS for itself.
        self.enter(State::Greeting);
        self.handshake(core, reg)
    }
}
