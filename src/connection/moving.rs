//! Handing a relay between an accepting reactor and a bulk lane (see
//! `crate::lanes` for why).
//!
//! A connection moves whole: its sockets, its buffers and any bytes in
//! flight in its pipes go with it. Only a plain relay moves: never one in
//! the handshake (a resolver answer or a GSS-API step is addressed to this
//! thread), a UDP association, a protected GSS-API relay, or one with
//! control bytes still to send.

use super::{Closed, Conn, Flow, State, Wait};
use crate::core::Core;
use crate::token::{token, Role};
use mio::{Interest, Registry};
use std::io;
use std::time::Duration;

/// A relay on a lane goes back to an accepting reactor after this long
/// without a turn that ran out of budget.
pub(crate) const QUIET: Duration = Duration::from_secs(1);

impl Conn {
    /// A plain relay, which alone may move.
    fn movable(&self) -> bool {
        #[cfg(feature = "gssapi")]
        if self.sealed.is_some() {
            return false;
        }
        matches!(self.state, State::Relaying) && self.ctl.is_empty()
    }

    /// The last turn spent a whole budget with more waiting: a bulk
    /// transfer, for a lane.
    pub fn wants_bulk_lane(&self) -> bool {
        self.bulk && self.movable()
    }

    /// On a lane, no bulk turn for [`QUIET`]: back to an accepting reactor.
    pub fn wants_front(&self) -> bool {
        self.back && self.movable()
    }

    /// A relay's timer on a lane: the idle timeout as anywhere, and the
    /// hand-back once no turn has run out of budget for [`QUIET`].
    pub(super) fn lane_timer(&mut self, core: &mut Core) -> Flow {
        let idle = core.shared.cfg.idle_timeout.map(|d| self.last_active + d);
        if idle.is_some_and(|t| t <= core.now) {
            return Err(Closed::Timeout(Wait::Idle));
        }
        let back = self.last_bulk + QUIET;
        if back <= core.now {
            self.back = true;
            return Ok(());
        }
        self.arm(back, core);
        if let Some(t) = idle {
            self.arm(t, core);
        }
        Ok(())
    }

    /// Takes the sockets out of this thread's poll. The thread's timer
    /// entry and resume-list entry become stale: both are checked against
    /// the connection's id (or find its slot empty) and are ignored. The
    /// user goes by name: a slot means something only on its own thread.
    pub fn detach(&mut self, core: &Core, reg: &Registry) -> io::Result<()> {
        reg.deregister(&mut self.client.sock)?;
        if let Some(t) = self.target.as_mut() {
            reg.deregister(&mut t.sock)?;
        }
        self.moving_user =
            self.rec.user.take().and_then(|i| core.stats.users.get(usize::from(i))).map(|u| u.name.clone());
        self.timer_at = None;
        self.queued = false;
        Ok(())
    }

    /// Takes the user's slot in this thread's counters, after a move (or
    /// a move that failed: the connection is then closed here).
    pub fn arrive(&mut self, core: &mut Core) {
        if let Some(name) = self.moving_user.take() {
            self.rec.user = core.stats.user_slot(&name);
        }
    }

    /// Settles in under its new slab `key`: registers the sockets, re-arms
    /// the clocks and asks for a turn at once (the readiness it had is
    /// kept, so nothing waits for an edge that came before the move).
    pub fn attach(&mut self, key: usize, core: &mut Core, reg: &Registry) -> io::Result<()> {
        self.key = key;
        self.bulk = false;
        self.back = false;
        self.arrive(core);
        let both = Interest::READABLE | Interest::WRITABLE;
        reg.register(&mut self.client.sock, token(key, Role::Client), both)?;
        if let Some(t) = self.target.as_mut() {
            reg.register(&mut t.sock, token(key, Role::Target), both)?;
        }
        if core.lane.is_some() {
            self.last_bulk = core.now;
            self.arm(core.now + QUIET, core);
        }
        if let Some(idle) = core.shared.cfg.idle_timeout {
            self.arm(self.last_active + idle, core);
        }
        self.queue(core);
        Ok(())
    }
}
