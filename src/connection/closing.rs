//! Control bytes to the client, replies, and the way out of a refused
//! request: the reply is sent, the write side shut, and the client's
//! input drained until its EOF, so that closing does not turn into a reset
//! that destroys the reply before the client reads it.

use super::{Closed, Conn, End, Flow, State};
use crate::core::Core;
use crate::handshake::Proto;
use crate::reply::{Reply, Reply4};
use crate::socks4;
use crate::socks5;
use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// How long a refused connection may take to read its reply before it is
/// closed, and how much of the client's input is discarded meanwhile.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_MAX_DISCARD: usize = 64 * 1024;

/// Control bytes (method, auth status, replies) waiting to reach the client
/// ahead of relayed data. The longest sequence is the method choice, the
/// auth status and BIND's two replies: 2 + 2 + 22 + 22 bytes.
pub(super) struct Ctl {
    buf: [u8; 48],
    start: usize,
    end: usize,
}

impl Default for Ctl {
    fn default() -> Ctl {
        Ctl { buf: [0; 48], start: 0, end: 0 }
    }
}

impl Ctl {
    pub(super) fn push(&mut self, bytes: &[u8]) -> Flow {
        if self.end + bytes.len() > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let dst = self
            .buf
            .get_mut(self.end..self.end + bytes.len())
            .ok_or(Closed::Io(End::Client, ErrorKind::OutOfMemory))?;
        dst.copy_from_slice(bytes);
        self.end += bytes.len();
        Ok(())
    }

    pub(super) fn is_empty(&self) -> bool {
        self.start == self.end
    }

    #[cfg(feature = "gssapi")]
    pub(super) fn pending(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    #[cfg(feature = "gssapi")]
    pub(super) fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }
}

impl Conn {
    /// Queues a reply in the client's protocol.
    pub(super) fn reply(&mut self, proto: Proto, reply: Reply, bnd: SocketAddr) -> Flow {
        self.rec.reply = Some(reply);
        match proto {
            Proto::V5 => {
                let mut out = [0u8; socks5::MAX_REPLY];
                let n = socks5::encode_reply(reply, bnd, &mut out);
                self.ctl.push(&out[..n])
            }
            Proto::V4 => self.ctl.push(&socks4::encode_reply(Reply4::from(reply), bnd)),
        }
    }

    /// Refuses the request with `reply`, then closes.
    pub(super) fn fail(&mut self, proto: Proto, reply: Reply, core: &mut Core) -> Flow {
        self.refuse(proto, Closed::Refused(reply), core)
    }

    /// Refuses the request for `why` (a timeout is answered 0x06), then
    /// closes for that reason.
    pub(super) fn refuse(&mut self, proto: Proto, why: Closed, core: &mut Core) -> Flow {
        let reply = match why {
            Closed::Refused(r) => r,
            Closed::Timeout(_) => Reply::TtlExpired,
            _ => Reply::GeneralFailure,
        };
        self.reply(proto, reply, socks5::UNSPECIFIED)?;
        self.enter_closing(why, core)
    }

    pub(super) fn enter_closing(&mut self, why: Closed, core: &mut Core) -> Flow {
        self.enter(State::Closing(why));
        self.target = None;
        self.up.release(&mut core.pool, core.pipes.as_mut());
        self.set_deadline(core.now + LINGER, core);
        self.linger(why, core)
    }

    /// Whatever ends the linger (EOF, an error, a client that keeps
    /// sending), the connection closes for the reason it was refused.
    pub(super) fn linger(&mut self, why: Closed, core: &mut Core) -> Flow {
        self.flush_ctl().map_err(|_| why)?;
        if !self.ctl.is_empty() {
            return Ok(());
        }
        if !self.down.shut {
            self.down.shut = true;
            let _ = self.client.sock.shutdown(std::net::Shutdown::Write);
        }
        match self.discard_input(core, LINGER_MAX_DISCARD) {
            Ok(false) => Ok(()),
            Ok(true) | Err(_) => Err(why),
        }
    }

    /// Reads and drops what the client sends, through the scratch buffer,
    /// until it would block. `Err` on EOF or error; `Ok(true)` when more
    /// than `limit` bytes went and the client may still have more.
    pub(super) fn discard_input(&mut self, core: &mut Core, limit: usize) -> Result<bool, Closed> {
        let mut discarded = 0;
        while self.client.readable {
            match self.client.sock.read(&mut core.scratch) {
                Ok(0) => return Err(Closed::Eof),
                Ok(n) => {
                    discarded += n;
                    if discarded > limit {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Io(End::Client, e.kind())),
            }
        }
        Ok(false)
    }

    /// Sends queued control bytes while the client takes them.
    pub(super) fn flush_ctl(&mut self) -> Flow {
        #[cfg(feature = "gssapi")]
        if self.sealed.is_some() {
            return self.flush_sealed_ctl();
        }
        while !self.ctl.is_empty() && self.client.writable {
            let ctl = &mut self.ctl;
            match self.client.sock.write(&ctl.buf[ctl.start..ctl.end]) {
                Ok(0) => return Err(Closed::Io(End::Client, ErrorKind::WriteZero)),
                Ok(n) => {
                    ctl.start += n;
                    if ctl.is_empty() {
                        ctl.start = 0;
                        ctl.end = 0;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => self.client.writable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Closed::Io(End::Client, e.kind())),
            }
        }
        Ok(())
    }
}
