//! Handing a bulk relay over to a bulk thread (see `crate::lanes` for why).
//!
//! A connection moves once, whole: its sockets, its buffers and any bytes
//! in flight in its pipes go with it. Only a plain relay moves: never one in
//! the handshake (a resolver answer or a GSS-API step is addressed to this
//! thread), a UDP association, a protected GSS-API relay, or one with
//! control bytes still to send.

use super::{Conn, State};
use crate::core::Core;
use crate::token::{token, Role};
use mio::{Interest, Registry};
use std::io;

impl Conn {
    /// The last turn spent a whole budget with more waiting, and nothing
    /// but relaying is left to do: this connection is a bulk transfer.
    pub fn wants_bulk_lane(&self) -> bool {
        #[cfg(feature = "gssapi")]
        if self.sealed.is_some() {
            return false;
        }
        self.bulk && matches!(self.state, State::Relaying) && self.ctl.is_empty()
    }

    /// Takes the sockets out of this thread's poll. The thread's timer
    /// entry and resume-list entry become stale: both are checked against
    /// the connection's id (or find its slot empty) and are ignored.
    pub fn detach(&mut self, reg: &Registry) -> io::Result<()> {
        reg.deregister(&mut self.client.sock)?;
        if let Some(t) = self.target.as_mut() {
            reg.deregister(&mut t.sock)?;
        }
        self.timer_at = None;
        self.queued = false;
        Ok(())
    }

    /// Settles in under its new slab `key`: registers the sockets, re-arms
    /// the idle clock and asks for a turn at once (the readiness it had is
    /// kept, so nothing waits for an edge that came before the move).
    pub fn attach(&mut self, key: usize, core: &mut Core, reg: &Registry) -> io::Result<()> {
        self.key = key;
        let both = Interest::READABLE | Interest::WRITABLE;
        reg.register(&mut self.client.sock, token(key, Role::Client), both)?;
        if let Some(t) = self.target.as_mut() {
            reg.register(&mut t.sock, token(key, Role::Target), both)?;
        }
        if let Some(idle) = core.shared.cfg.idle_timeout {
            self.arm(self.last_active + idle, core);
        }
        self.queue(core);
        Ok(())
    }
}
