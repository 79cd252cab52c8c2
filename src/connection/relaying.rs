//! Relaying: both directions of a CONNECT or BIND once the target is
//! there, each up to the round's budget, through pooled buffers or pipes
//! (`crate::relay`); and the idle clock that applies from then on.

use super::{Closed, Conn, End, Flow, State};
use crate::core::Core;
use crate::relay::Fault;

impl Conn {
    pub(super) fn enter_relay(&mut self, core: &mut Core) -> Flow {
        self.enter(State::Relaying);
        self.start_idle_clock(core);
        self.relay(core)
    }

    /// From here on only `--idle-timeout` applies (to relays and UDP
    /// associations alike).
    pub(super) fn start_idle_clock(&mut self, core: &mut Core) {
        self.deadline = None;
        self.last_active = core.now;
        if let Some(idle) = core.shared.cfg.idle_timeout {
            self.arm(core.now + idle, core);
        }
    }

    /// Both directions, each up to the round's budget; control bytes
    /// (BIND's second reply) go to the client before any relayed byte.
    pub(super) fn relay(&mut self, core: &mut Core) -> Flow {
        #[cfg(feature = "gssapi")]
        if self.sealed.is_some() {
            return self.relay_sealed(core);
        }
        self.flush_ctl()?;
        let t = self.target.as_mut().ok_or(Closed::Eof)?;
        let budget = core.budget;
        let up = self
            .up
            .pump(&mut self.client, t, &mut core.pool, core.pipes.as_mut(), budget)
            .map_err(|f| fault(f, End::Client, End::Target))?;
        let (down_bytes, down_more) = if self.ctl.is_empty() {
            let d = self
                .down
                .pump(t, &mut self.client, &mut core.pool, core.pipes.as_mut(), budget)
                .map_err(|f| fault(f, End::Target, End::Client))?;
            (d.bytes, d.more)
        } else {
            (0, false)
        };
        if up.bytes + down_bytes > 0 {
            self.last_active = core.now;
            self.rec.up += up.bytes as u64;
            self.rec.down += down_bytes as u64;
        }
        if self.up.done() && self.down.done() {
            return Err(Closed::Eof);
        }
        self.bulk = up.more || down_more;
        if self.bulk {
            self.last_bulk = core.now;
            self.queue(core);
        }
        Ok(())
    }
}

/// A relay fault as a reason, given which end the direction reads from and
/// which it writes to.
pub(super) fn fault(f: Fault, src: End, dst: End) -> Closed {
    match f {
        Fault::Read(e) => Closed::Io(src, e.kind()),
        Fault::Write(e) => Closed::Io(dst, e.kind()),
    }
}
