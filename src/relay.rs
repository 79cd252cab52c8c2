//! One direction of a relay: bytes from a source socket to a destination
//! socket through one fixed buffer, with explicit edge-triggered readiness.
//!
//! Readiness is tracked per socket ([`Side`]): an edge-triggered event sets
//! the flag, and only `WouldBlock` clears it. A loop that stops early for any
//! other reason (buffer full, budget spent) leaves the flag set, so the work
//! is resumed without waiting for an edge that will never come.

use crate::buffer::{Buf, Pool};
use crate::fds::Fds;
use crate::pipe::{Pipe, PipePool};
use mio::net::TcpStream;
use std::io::{self, ErrorKind, Read, Write};
use std::net::Shutdown;

/// A socket, its share of the descriptor budget, and what the last events
/// said about it.
pub struct Side {
    pub sock: TcpStream,
    _budget: Fds,
    pub readable: bool,
    pub writable: bool,
    /// The peer's FIN (EPOLLRDHUP) or an error has been reported: an EOF or
    /// error is waiting behind any data, and no further edge will announce
    /// it.
    pub read_closed: bool,
}

impl Side {
    pub fn new(sock: TcpStream, budget: Fds) -> Side {
        Side { sock, _budget: budget, readable: false, writable: false, read_closed: false }
    }

    /// Applies one event's readiness. Errors and hang-ups count as ready:
    /// the next read or write reports them.
    pub fn mark(&mut self, ev: &mio::event::Event) {
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.readable = true;
        }
        if ev.is_read_closed() || ev.is_error() {
            self.read_closed = true;
        }
        if ev.is_writable() || ev.is_write_closed() || ev.is_error() {
            self.writable = true;
        }
    }
}

/// One direction's buffer and end-of-stream state. Bytes in flight sit
/// either in the buffer (copy path, and handshake leftovers) or in a pipe
/// (splice path), never both.
#[derive(Default)]
pub struct Half {
    buf: Option<Buf>,
    start: usize,
    end: usize,
    pipe: Option<Pipe>,
    /// Bytes waiting in `pipe`.
    in_pipe: usize,
    /// The source returned EOF.
    pub eof: bool,
    /// `shutdown(Write)` has been sent to the destination.
    pub shut: bool,
}

/// A relay error, and which socket it came from.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the destination failed.
    Write(io::Error),
}

/// What one [`Half::pump`] call did.
pub struct Pumped {
    pub bytes: usize,
    /// The budget ran out with work left: call again soon.
    pub more: bool,
}

impl Half {
    pub fn pending(&self) -> &[u8] {
        match &self.buf {
            Some(b) => &b[self.start..self.end],
            None => &[],
        }
    }

    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// This direction is finished: EOF read, everything written and the
    /// destination told.
    pub fn done(&self) -> bool {
        self.eof && self.shut && self.is_empty() && self.in_pipe == 0
    }

    /// Drops `n` bytes from the front (the handshake parser consumed them).
    pub fn consume(&mut self, n: usize) {
        self.start += n;
        debug_assert!(self.start <= self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Reads once from `src` into the free space after the pending bytes,
    /// moving them to the front first if the tail is full. Used by the
    /// handshake. Returns the bytes read (0 on EOF) and the room there was;
    /// `WouldBlock` when drained.
    pub fn read_from(&mut self, src: &mut TcpStream, pool: &mut Pool) -> io::Result<(usize, usize)> {
        let buf = self.buf.get_or_insert_with(|| pool.take());
        if self.end == buf.len() && self.start > 0 {
            buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == buf.len() {
            return Err(io::Error::new(ErrorKind::OutOfMemory, "handshake buffer full"));
        }
        let room = buf.len() - self.end;
        let n = src.read(&mut buf[self.end..])?;
        self.end += n;
        Ok((n, room))
    }

    /// Returns the buffer to the pool if it holds nothing.
    pub fn release_if_empty(&mut self, pool: &mut Pool) {
        if self.is_empty() {
            if let Some(b) = self.buf.take() {
                pool.give(b);
            }
        }
    }

    /// Returns the buffer and pipe whatever they hold (the connection is
    /// closing). A pipe with bytes in it is closed, never reused.
    pub fn release(&mut self, pool: &mut Pool, pipes: Option<&mut PipePool>) {
        if let Some(b) = self.buf.take() {
            pool.give(b);
        }
        self.start = 0;
        self.end = 0;
        if let Some(p) = self.pipe.take() {
            if let (0, Some(pp)) = (self.in_pipe, pipes) {
                pp.give(p);
            }
        }
        self.in_pipe = 0;
    }

    /// Nothing in flight: buffer and pipe go back for others to use.
    fn release_idle(&mut self, pool: &mut Pool, pipes: Option<&mut PipePool>) {
        self.release_if_empty(pool);
        if self.in_pipe == 0 {
            if let (Some(p), Some(pp)) = (self.pipe.take(), pipes) {
                pp.give(p);
            }
        }
    }

    /// Moves bytes from `src` to `dst` until one of them would block, EOF
    /// is passed on, or `budget` bytes have been written. A full buffer or
    /// pipe stops reading (back-pressure): what a direction holds never
    /// exceeds one buffer or one pipe. Any error ends the relay.
    ///
    /// Each call starts by copying: one `read` into the buffer. A short read
    /// proves the socket drained, so a small message costs a read and a
    /// write. Only a read that fills the buffer (a bulk stream) switches the
    /// rest of the call to splice(2) through a pipe, when `pipes` is given:
    /// two calls per pipeful instead of two per buffer, and no copy through
    /// user space.
    pub fn pump(
        &mut self,
        src: &mut Side,
        dst: &mut Side,
        pool: &mut Pool,
        mut pipes: Option<&mut PipePool>,
        budget: usize,
    ) -> Result<Pumped, Fault> {
        let mut bytes = 0;
        let mut bulk = false;
        loop {
            if self.start < self.end || self.in_pipe > 0 {
                if !dst.writable {
                    break;
                }
                let r = match (&self.buf, &self.pipe) {
                    (Some(b), _) if self.start < self.end => dst.sock.write(&b[self.start..self.end]),
                    (_, Some(p)) => p.drain(&dst.sock, self.in_pipe),
                    _ => unreachable!("bytes in flight live in the buffer or the pipe"),
                };
                // Only a short write() proves the send buffer full (so room
                // will raise a new edge); a short splice is not relied on.
                let copy = self.start < self.end;
                let want = if copy { self.end - self.start } else { self.in_pipe };
                match r {
                    Ok(0) => return Err(Fault::Write(ErrorKind::WriteZero.into())),
                    Ok(n) => {
                        bytes += n;
                        if copy {
                            self.consume(n);
                            if n < want {
                                dst.writable = false;
                            }
                        } else {
                            self.in_pipe -= n;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => dst.writable = false,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(Fault::Write(e)),
                }
                continue;
            }
            if self.eof {
                if !self.shut {
                    self.shut = true;
                    // The peer may already be gone; the other direction
                    // reports that on its own.
                    let _ = dst.sock.shutdown(Shutdown::Write);
                }
                // A finished direction holds nothing while the other one
                // carries on.
                self.release_idle(pool, pipes);
                break;
            }
            if !src.readable {
                self.release_idle(pool, pipes);
                break;
            }
            if bytes >= budget {
                return Ok(Pumped { bytes, more: true });
            }
            // In a bulk burst, splice when a pipe can be had; copy
            // otherwise (for instance when descriptors run short).
            if let (true, Some(pp)) = (bulk, pipes.as_deref_mut()) {
                if self.pipe.is_none() {
                    self.pipe = pp.take().ok();
                }
                if let Some(p) = &self.pipe {
                    match p.fill(&src.sock, pp.chunk) {
                        Ok(0) => self.eof = true,
                        Ok(n) => self.in_pipe = n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => src.readable = false,
                        Err(e) if e.kind() == ErrorKind::Interrupted => {}
                        Err(e) => return Err(Fault::Read(e)),
                    }
                    continue;
                }
            }
            let buf = self.buf.get_or_insert_with(|| pool.take());
            match src.sock.read(&mut buf[..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end = n;
                    // A short read emptied the receive queue; data that
                    // arrives later raises a new edge (as nginx relies on
                    // with EPOLLET). Saves the read that would say EAGAIN
                    // -- unless the peer's FIN was reported: then the EOF
                    // waits behind the data, with no edge to come.
                    // A full read means more is waiting: splice the rest.
                    if n == buf.len() {
                        bulk = true;
                    } else if !src.read_closed {
                        src.readable = false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => src.readable = false,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(Fault::Read(e)),
            }
        }
        Ok(Pumped { bytes, more: false })
    }
}
